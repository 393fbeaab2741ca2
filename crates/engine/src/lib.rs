//! kiln: a daemonless, rootless OCI image builder.
//!
//! Data flows one way through one module per pipeline stage:
//! `walk` (sorted, normalized entries) → `layer` (tar → diff_id → compress → digest, one pass) → `image` (config +
//! manifest, raw bytes beside parsed values) → `store` (OCI layout) / `registry` (distribution API) →
//! `versions`/`tags` (which tags to write, never moving one) → `output` (what stdout says).
//! The `kiln` binary is a thin CLI over this library (`cli` turns flags into a typed plan, `commands` runs it).

pub mod base;
pub mod build;
pub mod cache;
pub mod digest;
pub mod docker_archive;
pub mod error;
pub mod events;
pub mod fsx;
pub mod git;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod pin;
pub mod platform;
pub mod publish;
pub mod push;
pub mod reference;
pub mod registry;
pub mod settings;
pub mod split;
pub mod store;
pub mod tag;
pub mod tags;
pub mod target;
pub mod template;
pub mod versions;
pub mod walk;

pub use digest::Digest;
pub use error::{Error, Result};
