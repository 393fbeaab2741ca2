//! kiln's engine: from a build output directory to a published, versioned image, with no terminal in it.
//!
//! Data flows one way through one module per pipeline stage: `walk` (sorted, normalized entries) → `split`
//! (content-defined parts) → `layer` (tar → diff_id → compress → digest, one pass; `cache` for what is unchanged) →
//! `image` (config + manifest, raw bytes beside parsed values) → a medium: `store` (an OCI layout), `registry`
//! (the distribution API), `docker_archive` → `publish` (which tags to write, never moving a version).
//! [`sbom`] describes what a build added (its files as the layer writer hashed them, the packages found in them,
//! the base image by digest) as an SPDX or CycloneDX document.
//!
//! The public API is small on purpose (the rest is crate-private, so the compiler sees dead code): typed plans in
//! ([`build::BuildPlan`], [`push::PushPlan`], [`pin::PinRequest`]), results out ([`Published`]), progress and
//! messages through [`events::Events`]; the engine never prints. The value rules the plans are made with are in
//! [`settings`].

pub mod build;
pub mod events;
pub mod fsx;
pub mod inspect;
pub mod pin;
pub mod provenance;
pub mod push;
pub mod referrers;
pub mod sbom;
pub mod settings;
pub mod tags;

mod attest;
mod base;
mod cache;
mod digest;
mod docker_archive;
mod error;
mod git;
mod image;
mod layer;
mod platform;
mod publish;
mod reference;
mod registry;
mod split;
mod store;
mod tag;
mod target;
mod template;
mod versions;
mod walk;

pub use attest::AttestRequest;
pub use base::platforms;
pub use digest::Digest;
pub use error::{Error, Result};
pub use image::{ConfigSpec, Json, PlatformSpec, history};
pub use layer::{Compression, CompressionKind};
pub use publish::tagging::TagRequest;
pub use publish::{LayerOut, Plan as TagPolicy, Published, SETTLE_FLOOR};
pub use reference::{Reference, normalize_registry};
pub use registry::{Client, ClientOptions, Repository, login};
pub use split::Split;
pub use store::Layout;
pub use tag::Tag;
pub use target::Target;
pub use versions::Scheme;
pub use walk::normalize_dest;
