//! Reading a base's tree ([`BaseTree`]) from its layers: each layer's index from the layer cache, or from the
//! layer blob (a layout base's file, or a registry base's blob fetched into the cache layout, verified), then kept.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::Instant;

use super::load::{BaseSource, LoadedBase};
use super::record;
use super::tree::{BaseTree, LayerIndex, index_layer};
use crate::cache::LayerCache;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::events::{Report, human_bytes};
use crate::store::Layout;

/// The tree of `base`, reading each layer at most once per machine (`cache_dir`'s layer cache keeps the index;
/// a registry base's blobs are fetched into `cache_dir`'s layout, where a later copy of the base takes them from).
pub fn read_tree(base: &mut LoadedBase, cache_dir: &Path, report: &Report) -> Result<BaseTree> {
    let started = Instant::now();
    let records = LayerCache::new(cache_dir.join("layers"));
    let mut tree = BaseTree::new(base.base.name.clone());
    let (mut read, mut bytes) = (0, 0);
    for d in base.layer_digests()? {
        let key = format!("base-{}", d.hex());
        let index = match records.get_raw(&key).and_then(|r| record::decode(&r)) {
            Some(i) => i,
            None => {
                let (index, size) = index_blob(base, &d, cache_dir)?;
                records.put_raw(&key, &record::encode(&index));
                (read, bytes) = (read + 1, bytes + size);
                index
            }
        };
        tree.apply(&index);
    }
    if read > 0 {
        report.step(format_args!(
            "read the file tree of base image {}: {read} layer{} ({}) in {} ms",
            tree.name,
            if read == 1 { "" } else { "s" },
            human_bytes(bytes),
            started.elapsed().as_millis()
        ));
    }
    Ok(tree)
}

/// Index one layer blob of `base`. Returns the index and the blob size. A registry base's blob is fetched into
/// the cache layout, which verifies it as it arrives (and holds only blobs kiln verified); a layout base's blob is
/// checked against its digest while it is read.
fn index_blob(
    base: &mut LoadedBase,
    digest: &Digest,
    cache_dir: &Path,
) -> Result<(LayerIndex, u64)> {
    let (path, verified) = match &base.source {
        BaseSource::Layout(l) => (l.blob_path(digest), false),
        BaseSource::Registry { .. } => {
            let (layout, _) = Layout::open_or_create(&cache_dir.join("layout"))?;
            base.ensure_blob(&layout, digest)?;
            let path = layout.blob_path(digest);
            base.fetched = Some(layout);
            (path, true)
        }
    };
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    let mut hashed = HashingReader(HashingWriter::new(io::sink()), file, !verified);
    let index = index_layer(&mut hashed).map_err(|e| Error::Image {
        what: format!("layer {digest} of base image {}", base.base.name),
        reason: format!("cannot be read as a tar: {e}"),
    })?;
    // The tar may end before the blob does (padding after the end-of-archive blocks): read the rest too.
    io::copy(&mut hashed, &mut io::sink()).map_err(|e| Error::io(&path, e))?;
    let (got, _, _) = hashed.0.finish();
    if !verified && got != *digest {
        return Err(Error::Image {
            what: format!("base image {}", base.base.name),
            reason: format!("blob {digest} ({}) has digest {got}", path.display()),
        });
    }
    Ok((index, size))
}

/// A reader that hashes what it reads, when its flag says so.
struct HashingReader<R>(HashingWriter<io::Sink>, R, bool);

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.1.read(buf)?;
        if self.2 {
            io::Write::write_all(&mut self.0, &buf[..n])?;
        }
        Ok(n)
    }
}
