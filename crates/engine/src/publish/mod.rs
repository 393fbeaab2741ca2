//! The tag policy: which tags to write where, never moving a version. Generic over [`TagTarget`] so an OCI
//! layout and a registry behave the same.
//!
//! # Guarantees (and their limits)
//!
//! * **Check before write.** Every tag is resolved before anything is written. A non-floating tag that already
//!   points to another image is refused with exit code 3 (`TagExists`) and *nothing* is written, unless
//!   `--force-tag`. A tag already pointing to this image is left alone. Floating tags (`latest`, `main`, …) are
//!   refused unless `--allow-floating`; when allowed they are moved freely and written last.
//! * **Version first.** The version tag is written before any other tag, so `latest` never points to an image
//!   that has no version.
//! * **Reuse.** If this image already carries a version of the scheme (among the [`REUSE_LOOKBACK`] highest),
//!   that version is reported and nothing new is minted (`--always-new` opts out).
//! * **Races (auto and semver).** A registry has no atomic "create tag if absent". kiln resolves the version
//!   just before writing it, writes it, waits `settle`, and reads it back. If it now points to another image, or
//!   the registry refused the write (immutable tags: ECR, Harbor, Artifact Registry), the version was lost to
//!   another publisher: kiln re-lists and takes the next free version, up to `max_race_retries` times, and
//!   reports the lost versions. Explicit and git versions are never retried: losing them is `TagExists`.
//!
//!   Limit: with mutable tags, a publisher B whose pre-write check happened *before* A's write, but whose write
//!   lands *after* A's read-back, overwrites A's verified version. The window is B's check-to-write time (one
//!   round trip) plus registry replication lag, so `settle` must exceed that; it cannot be closed without
//!   registry support. Registries with immutable tags close it (the losing write is refused). A local OCI
//!   layout closes it with its lock. Extra tags are checked just before their write but not read back.
//! * **No rollback.** Failing after the version was written (an extra tag taken meanwhile, a refused write)
//!   leaves the version in place; the error says so.
//!
//! Files: `known_layers` (the repository's recent layers by diff_id, for runners without a cache), `policy` (the rules above: plan, claim, write), `tagging` (from a build to its tags: versions, templates,
//! a layout's tags), `remote` (publishing an image to a registry repository), `published` (the result).

pub mod known_layers;
mod policy;
mod published;
mod registry_tags;
pub mod remote;
pub mod tagging;

pub use policy::{Plan, SETTLE_FLOOR, TagTarget, WriteOutcome, settle_time};
pub use published::{LayerOut, Published};
pub use registry_tags::RemoteTags;
