//! The layers of one image: each part of each source directory is taken from the layer cache when its input is
//! unchanged, else built in one pass (tar → diff_id → compression → blob), reusing the gzip blocks of its slot's
//! last build, and announced for an early push.

use super::early::Finished;
use super::plan::BuildPlan;
use super::txn::Txn;
use crate::cache::{self, CachedLayer, LayerCache, SlotBlocks};
use crate::digest::Digest;
use crate::error::{Result, ResultExt};
use crate::events::Report;
use crate::layer::{self, Compression, LayerOptions};
use crate::registry::StreamTee;
use crate::store::Layout;
use crate::walk;

/// One image layer: a run of a source's entries (all of them unless the source is split), how messages name it,
/// its history text and how it is written.
pub(super) struct Part<'a> {
    pub entries: &'a [walk::Entry],
    pub label: String,
    pub created_by: String,
    pub opts: LayerOptions,
}

/// Every part's layer, in order. Two parts build at once: each compresses on every core, but a layer's tail
/// (reading its last files, the last blocks, finishing the blob) leaves cores idle that the next part fills.
pub(super) fn build_parts(
    txn: &mut Txn<'_>,
    plan: &BuildPlan,
    cache: Option<&LayerCache>,
    parts: &[Part<'_>],
    early: Option<&Finished>,
    report: &Report,
) -> Result<Vec<CachedLayer>> {
    if parts.len() == 1 {
        let p = &parts[0];
        return Ok(vec![layer_for(txn, plan, cache, p, early, report)?]);
    }
    let proto = txn.fork();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: std::sync::Mutex<Vec<Option<Result<CachedLayer>>>> =
        std::sync::Mutex::new((0..parts.len()).map(|_| None).collect());
    let worker = || {
        // Each worker tracks the blobs it adds; merged below so a failure rolls all of them back.
        let mut t = proto.fork();
        use std::sync::atomic::Ordering::Relaxed;
        while !failed.load(Relaxed) {
            let i = next.fetch_add(1, Relaxed);
            let Some(p) = parts.get(i) else { break };
            let r = layer_for(&mut t, plan, cache, p, early, report);
            failed.fetch_or(r.is_err(), Relaxed);
            results.lock().expect("results")[i] = Some(r);
        }
        t.new_blobs
    };
    let added: Vec<Vec<Digest>> = std::thread::scope(|s| {
        let second = s.spawn(worker);
        let first = worker();
        vec![first, second.join().expect("a layer build panicked")]
    });
    txn.new_blobs.extend(added.into_iter().flatten());
    // Parts are taken in order, so a failed one comes before any never started: the first error is returned.
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map_while(|r| r)
        .collect::<Result<Vec<_>>>()
}

/// A part's layer: the cached blob when its input is unchanged, else built now (and announced for an early push).
fn layer_for(
    txn: &mut Txn<'_>,
    plan: &BuildPlan,
    cache: Option<&LayerCache>,
    part: &Part<'_>,
    early: Option<&Finished>,
    report: &Report,
) -> Result<CachedLayer> {
    let opts = &part.opts;
    let key = LayerCache::key(part.entries, opts);
    let hit = cache.and_then(|c| c.get(&key));
    if let Some(h) = hit.filter(|h| reuse_blob(txn, &plan.cache, h)) {
        if let Some((c, s)) = cache.zip(LayerCache::slot(part.entries, opts)) {
            c.touch_slot(&s);
        }
        report.step(format_args!(
            "layer {} from {}: unchanged, reused",
            h.digest.short(),
            part.label
        ));
        report.record(|s| {
            s.compression = Some(compression_name(opts.compression));
            s.layers_reused += 1;
            s.tar_bytes += h.tar_size;
            s.blob_bytes += h.size;
        });
        return Ok(h);
    }
    if let Some(l) = from_registry(txn, cache, part, report)? {
        return Ok(l);
    }
    if let Some(f) = early {
        f.compressing();
    }
    // A gzip layer records where its blocks are, and reuses those of its slot's last build that recur.
    let slot = cache
        .filter(|_| matches!(opts.compression, Compression::Gzip { .. }))
        .zip(LayerCache::slot(part.entries, opts));
    let old = slot
        .as_ref()
        .and_then(|(c, s)| old_blocks(txn.layout, &plan.cache, &c.blocks(s)?))
        .map(std::sync::Arc::new);
    let reuse = layer::Reuse {
        record: slot.is_some(),
        old: old.clone(),
    };
    let (l, blocks) = build_layer(txn, part, reuse, report)?;
    if let Some(n) = old.map(|o| o.damaged()).filter(|n| *n > 0) {
        report.debug(format_args!(
            "layer from {}: {n} compressed blocks of its last build were damaged on disk (CRC mismatch), \
             compressed again",
            part.label
        ));
    }
    if let Some(tx) = early {
        tx.layer(&l.digest, l.size);
    }
    if let Some(c) = cache {
        c.put(&key, &l);
    }
    if let Some((c, s)) = slot {
        let record = SlotBlocks {
            digest: l.digest.clone(),
            size: l.size,
            table: blocks,
        };
        c.put_blocks(&s, &record);
    }
    Ok(l)
}

/// A layer this runner never built (no layer-cache entry for its slot: a fresh CI runner) that one of the target
/// repository's recent images holds: its tar is hashed (no compression) and, when its diff_id is known with the
/// same encoding, the registry's blob is the layer (`publish::known_layers`). Not for `--no-cache` (every layer is
/// compressed again), and not for a slot this runner built before: that layer changed, and hashing it would only
/// add a pass before its compression.
fn from_registry(
    txn: &Txn<'_>,
    cache: Option<&LayerCache>,
    part: &Part<'_>,
    report: &Report,
) -> Result<Option<CachedLayer>> {
    let Some(c) = cache else { return Ok(None) };
    let built_here =
        LayerCache::slot(part.entries, &part.opts).is_some_and(|s| c.blocks(&s).is_some());
    if built_here || txn.known.is_empty() {
        return Ok(None);
    }
    // Only the diff_id: an SBOM is not needed for an image the registry has, and one that changed hashes the
    // files it lacks digests for (`attest`).
    let opts = LayerOptions {
        compression: Compression::None,
        file_digests: false,
        ..part.opts.clone()
    };
    let bar = report.bytes(
        || format!("hashing {}", part.label),
        tar_estimate(part.entries),
    );
    let (info, _) = layer::write_layer_with_progress(
        part.entries,
        &opts,
        std::io::sink(),
        layer::Reuse::default(),
        &mut |done| bar.set_position(done),
    )
    .context(|| format!("hashing the layer from {}", part.label))?;
    bar.finish();
    let Some(k) = txn.known.get(&info.diff_id) else {
        report.debug(format_args!(
            "layer from {}: diff_id {} is not in the registry's recent images, compressing",
            part.label,
            info.diff_id.short()
        ));
        return Ok(None);
    };
    txn.collected.taken_from(part.entries, &k.manifest);
    report.step(format_args!(
        "layer {} from {}: in the registry (image {}), not compressed",
        k.digest.short(),
        part.label,
        k.from
    ));
    report.record(|s| {
        s.compression = Some(compression_name(part.opts.compression));
        s.layers_in_registry += 1;
        s.tar_bytes += info.tar_size;
        s.blob_bytes += k.size;
    });
    Ok(Some(CachedLayer {
        digest: k.digest.clone(),
        size: k.size,
        diff_id: info.diff_id,
        tar_size: info.tar_size,
    }))
}

/// The blob of a slot's last build, opened for reading its blocks: in the layout being written, else in the
/// cache layout, and only with the size recorded for it (each block's bytes are checked by CRC when copied).
fn old_blocks(
    layout: &Layout,
    cache_dir: &std::path::Path,
    b: &SlotBlocks,
) -> Option<layer::OldBlocks> {
    let cached = Layout::open(&cache_dir.join("layout")).ok();
    let paths =
        std::iter::once(layout.blob_path(&b.digest)).chain(cached.map(|c| c.blob_path(&b.digest)));
    paths
        .filter(|p| cache::blob_ok(p, b.size))
        .find_map(|p| std::fs::File::open(p).ok())
        .map(|f| layer::OldBlocks::new(f, &b.table))
}

/// One pass: walk entries → tar → diff_id → compression → blob in the layout. Also returns where the blob's gzip
/// blocks are (when `reuse.record`).
fn build_layer(
    txn: &mut Txn<'_>,
    part: &Part<'_>,
    reuse: layer::Reuse,
    report: &Report,
) -> Result<(CachedLayer, layer::BlockTable)> {
    let (entries, opts) = (part.entries, &part.opts);
    let layout = txn.layout;
    // ocidir's writer hashes what it writes; whether the blob is new comes from the snapshot taken at the start,
    // so a blob that was already in the layout (another image's) is never removed by a rollback.
    // A part whose slot's last blob is at hand was built before from other input: it changed, so it is new to
    // the registry (a revert aside) and worth streaming up while it is compressed.
    let changed = reuse.old.is_some();
    let sink = StreamTee::new(
        layout.blob_writer()?,
        txn.streams,
        tar_estimate(entries),
        changed,
    );
    let bar = report.bytes(
        || format!("layer from {}", part.label),
        tar_estimate(entries),
    );
    let (info, sink) = layer::write_layer_with_progress(entries, opts, sink, reuse, &mut |done| {
        bar.set_position(done)
    })
    .context(|| format!("building the layer from {}", part.label))?;
    bar.finish();
    txn.collected.add(entries, &info.files);
    let (digest, size) = sink.finish(|blob| layout.finish_blob(blob))?;
    let added = txn.is_new(&digest);
    txn.track(added, &digest);
    let reused = match info.blocks.reused {
        0 => String::new(),
        n => format!(
            " ({n} of {} compressed blocks copied from its last build)",
            info.blocks.blocks.len()
        ),
    };
    report.step(format_args!(
        "layer {} from {}: {} of tar -> {}{reused}{}",
        digest.short(),
        part.label,
        crate::events::human_bytes(info.tar_size),
        crate::events::human_bytes(size),
        if added { "" } else { " (already stored)" }
    ));
    report.record(|s| {
        s.layers_built += 1;
        s.tar_bytes += info.tar_size;
        s.blob_bytes += size;
        s.compression = Some(compression_name(opts.compression));
    });
    let layer = CachedLayer {
        digest,
        size,
        diff_id: info.diff_id,
        tar_size: info.tar_size,
    };
    Ok((layer, info.blocks))
}

/// About the tar stream's size, for a progress bar: a header block per entry, contents padded to blocks, the
/// end-of-archive blocks (PAX headers for long names make the real stream a little longer).
fn tar_estimate(entries: &[walk::Entry]) -> u64 {
    let contents: u64 = entries
        .iter()
        .map(|e| match e.kind {
            walk::EntryKind::File { size } => size.div_ceil(512) * 512,
            _ => 0,
        })
        .sum();
    contents + 512 * entries.len() as u64 + 1024
}

fn compression_name(c: Compression) -> String {
    match c {
        Compression::Gzip { level } => format!("gzip -{level}"),
        Compression::Zstd { level } => format!("zstd -{level}"),
        Compression::None => "uncompressed".into(),
    }
}

/// A cache hit is used only if its blob is intact (by size) in the layout being written, or can be linked in
/// from the cache layout.
fn reuse_blob(txn: &mut Txn<'_>, cache_dir: &std::path::Path, hit: &CachedLayer) -> bool {
    let layout = txn.layout;
    if cache::blob_ok(&layout.blob_path(&hit.digest), hit.size) {
        return true;
    }
    let Ok(from) = Layout::open(&cache_dir.join("layout")) else {
        return false;
    };
    if !cache::blob_ok(&from.blob_path(&hit.digest), hit.size)
        || layout.import_blob(&from, &hit.digest).is_err()
    {
        return false;
    }
    txn.track(true, &hit.digest);
    true
}
