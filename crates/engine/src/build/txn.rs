//! The blobs a build adds to a layout, so a failed build can take them out again.

use std::collections::HashSet;

use crate::digest::Digest;
use crate::publish::known_layers::KnownLayers;
use crate::registry::LayerStreams;
use crate::store::Layout;

/// Blobs this build added, removed again if it fails so the layout is left as it was.
pub(crate) struct Txn<'a> {
    pub layout: &'a Layout,
    pub new_blobs: Vec<Digest>,
    /// Blob names present before this build (target layouts only: the cache layout is never rolled back).
    pub before: &'a HashSet<String>,
    /// Where big new layers are uploaded while they are written, when they may be pushed early.
    pub streams: Option<&'a LayerStreams>,
    /// The target repository's recent layers, for a layer the layer cache misses (a registry build).
    pub known: &'a KnownLayers,
    /// Per-file digests of the layers built in this run, for the SBOM (`attest`).
    pub collected: &'a crate::attest::Collected,
}

impl<'a> Txn<'a> {
    /// A transaction over the same layout for another thread: it tracks its own new blobs, merged back by the
    /// caller, so a failure anywhere rolls all of them back.
    pub fn fork(&self) -> Txn<'a> {
        Txn {
            layout: self.layout,
            new_blobs: Vec::new(),
            before: self.before,
            streams: self.streams,
            known: self.known,
            collected: self.collected,
        }
    }

    /// Whether this build added `d` (it was not in the layout when the build started).
    pub fn is_new(&self, d: &Digest) -> bool {
        !self.before.contains(d.hex())
    }

    pub fn track(&mut self, added: bool, d: &Digest) {
        if added {
            self.new_blobs.push(d.clone());
        }
    }

    pub fn rollback(&self) {
        for d in &self.new_blobs {
            let _ = std::fs::remove_file(self.layout.blob_path(d));
        }
    }
}
