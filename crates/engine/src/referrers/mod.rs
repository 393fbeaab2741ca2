//! OCI 1.1 referrers: documents about an image (an SBOM, build provenance) attached to it without changing it,
//! as artifact manifests whose `subject` is the image's manifest (or index), and read back.
//!
//! An artifact manifest (image-spec 1.1, "Guidelines for Artifact Usage") is an image manifest with an
//! `artifactType`, the empty config (`{}`), one layer (the document) and the `subject`. Its bytes depend only on
//! what the caller gives (canonical JSON), so attaching the same document twice makes the same digest: that is
//! how a repeated attach is recognised and adds nothing.
//!
//! Where they go:
//! - a registry (`remote`): the manifest is `PUT` by digest. A registry that answers with `OCI-Subject` keeps the
//!   list itself (the referrers API). Else kiln keeps it, in the referrers tag schema: the tag `sha256-<hex>` of
//!   the subject holds an image index of its referrers, read-modified-written with a read-back (concurrent
//!   attachers all end up listed). That tag is meant to be rewritten: it is written directly, never through the
//!   tag policy of `publish` (no floating/overwrite guard applies to it).
//! - a local layout (`local`): the manifest is an untagged entry of `index.json` (with its `artifactType`).
//!
//! Files: `artifact` (the documents, and the choice among referrers), `remote` (registries), `local` (layouts),
//! `target` (the same for a `Target` as the CLI names it).

mod artifact;
mod local;
mod remote;
mod target;

pub use artifact::{
    Artifact, AttachOptions, Attached, EMPTY_BYTES, EMPTY_DIGEST, EMPTY_MEDIA_TYPE, How,
    PROVENANCE_TYPES, SBOM_TYPES, pick,
};
pub use local::{attach_layout, list_layout};
pub use remote::{attach_registry, fallback_tag, list_registry};
pub use target::{Document, Referrers, attach, document, list};

#[cfg(test)]
mod tests;
