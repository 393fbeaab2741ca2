//! What `kiln push` was asked to do.

use std::path::PathBuf;

use crate::publish::tagging::TagRequest;
use crate::reference::Reference;
use crate::registry::ClientOptions;
use crate::target::Target;

/// What `kiln push` was asked to do, validated.
#[derive(Debug, Clone)]
pub struct PushPlan {
    /// A layout (`oci:PATH[:TAG|@DIGEST]`) or a docker archive.
    pub source: Target,
    pub destination: Reference,
    pub tagging: TagRequest,
    pub registry: ClientOptions,
    /// The cache directory: a docker archive is imported into its `layout/` before it is pushed.
    pub cache: PathBuf,
}
