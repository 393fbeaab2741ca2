//! Base images: read from a local layout (`oci:PATH:TAG`) or a registry (`REGISTRY/REPO:TAG|@DIGEST`), without
//! unpacking anything. A registry index is resolved to the wanted platform. Base blobs are fetched only when the
//! destination needs a copy (a registry destination on the same registry mounts them instead).

//!
//! Files: `load` (the base's manifest, config and blobs), `tree` (which paths its layers hold, after whiteouts),
//! `record` (a layer's index as a cache record), `read` (the tree of a loaded base, read once per machine).

mod load;
mod read;
mod record;
mod tree;

pub use load::{BaseSource, LoadedBase, fetch_image, load, platforms, select_platform};
pub use read::read_tree;
