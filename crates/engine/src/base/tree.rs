//! The base image's file tree, as far as kiln needs it: which paths exist, as what, with which owner, mode and
//! time, once every layer's whiteouts are applied.
//!
//! Why: kiln's layers carry a directory entry for every parent of `--prefix` and of each `--layer DEST`. Runtimes
//! apply layers as overlays, so an entry for a path the base has replaces the base's own: written as kiln's
//! default (0755, root) it turned Debian 12's `/bin -> usr/bin` symlink into an empty directory (no more
//! `/bin/sh`), `/tmp` from 1777 into 0755 and a home owned by 1000 into root's, on every engine. So a directory
//! the base has is written again with the base's own mode, owner and time ([`BaseTree::adopt`]), and a parent the
//! base has as a symlink is followed inside the image root, so the files land where it points, as a Dockerfile
//! `COPY` into `/bin` does ([`BaseTree::resolve`]). A parent the base has as a file is an error naming both.
//!
//! Each base layer's tar headers are read once (the data is decompressed and skipped) into a [`LayerIndex`], kept
//! by layer digest in the layer cache (`layers/base-<hex>`, pruned like other records), so a base is read once per
//! machine. Whiteouts follow the OCI image spec ("Whiteouts"): `.wh.NAME` deletes `NAME` and everything below it
//! from the layers beneath, `.wh..wh..opq` in a directory deletes everything the layers beneath had in it.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::walk::{Entry, EntryKind, FromBase};

/// What a path is in a layer's tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    /// Devices, FIFOs: not a directory, which is all kiln asks.
    Other,
}

/// One path's header: kind, permission bits, owner, mtime, link target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// A symlink's target, verbatim.
    pub link: Vec<u8>,
}

/// One tar header of a layer, in order. Paths are relative to the image root, without `./`, leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Node(Vec<u8>, Node),
    /// `.wh.NAME`: the path it deletes.
    Whiteout(Vec<u8>),
    /// `.wh..wh..opq`: the directory whose lower contents it deletes.
    Opaque(Vec<u8>),
}

/// The headers of one layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerIndex {
    pub items: Vec<Item>,
}

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Read a layer blob (gzip, zstd or plain tar: told apart by their magic bytes) into its index.
pub fn index_layer(blob: impl Read) -> io::Result<LayerIndex> {
    let mut r = BufReader::with_capacity(256 * 1024, blob);
    let magic = r.fill_buf()?;
    let tar: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else {
        Box::new(r)
    };
    let mut archive = tar::Archive::new(tar);
    let mut items = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = normalize(&entry.path_bytes());
        if path.is_empty() {
            continue; // the root itself (`./`)
        }
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], &path[..]),
        };
        if name == OPAQUE {
            items.push(Item::Opaque(parent.to_vec()));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            items.push(Item::Whiteout(join(parent, hidden)));
            continue;
        }
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            _ => Kind::Other,
        };
        let mut node = Node {
            kind,
            mode: h.mode()? & 0o7777,
            uid: h.uid()?,
            gid: h.gid()?,
            mtime: h.mtime()?,
            link: entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
        };
        // PAX records win over the ustar fields (large ids, sub-second or far times).
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax.flatten() {
                let value = ext
                    .value()
                    .ok()
                    .and_then(|v| v.split('.').next()?.parse().ok());
                match (ext.key(), value) {
                    (Ok("uid"), Some(v)) => node.uid = v,
                    (Ok("gid"), Some(v)) => node.gid = v,
                    (Ok("mtime"), Some(v)) => node.mtime = v,
                    _ => {}
                }
            }
        }
        items.push(Item::Node(path, node));
    }
    Ok(LayerIndex { items })
}

/// `./a//b/` → `a/b`.
fn normalize(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    for comp in p
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
    }
    out
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    match parent.is_empty() {
        true => name.to_vec(),
        false => [parent, b"/", name].concat(),
    }
}

/// The base's tree: every path of every layer, lower layers overlaid by upper ones.
#[derive(Debug, Default)]
pub struct BaseTree {
    nodes: BTreeMap<Vec<u8>, Node>,
    /// How the base is named in messages.
    pub name: String,
}

impl BaseTree {
    pub fn new(name: String) -> BaseTree {
        BaseTree {
            nodes: BTreeMap::new(),
            name,
        }
    }

    /// Lay `layer` over the tree. A layer's whiteouts delete from the layers beneath it only, wherever they stand
    /// in its tar, so they go first.
    pub fn apply(&mut self, layer: &LayerIndex) {
        for item in &layer.items {
            match item {
                Item::Whiteout(p) => {
                    self.nodes.remove(p);
                    self.remove_below(p);
                }
                Item::Opaque(d) => self.remove_below(d),
                Item::Node(..) => {}
            }
        }
        for item in &layer.items {
            if let Item::Node(p, n) = item {
                // Anything but a directory over a directory hides what was below it.
                if n.kind != Kind::Dir {
                    self.remove_below(p);
                }
                self.nodes.insert(p.clone(), n.clone());
            }
        }
    }

    /// Whether anything lies below `dir`.
    fn has_below(&self, dir: &[u8]) -> bool {
        let prefix = [dir, b"/"].concat();
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Remove everything strictly below `dir`.
    fn remove_below(&mut self, dir: &[u8]) {
        let prefix: Vec<u8> = match dir.is_empty() {
            true => Vec::new(),
            false => [dir, b"/"].concat(),
        };
        let below: Vec<Vec<u8>> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.nodes.remove(&k);
        }
    }

    #[cfg(test)]
    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Where `dest` (an absolute, normalized image path: `/bin`, `/home/app/bin`) really is in the base: each
    /// component the base has as a symlink followed inside the image root (an absolute target from the root, a
    /// relative one from the link's directory, `..` never above the root), as a runtime resolves the path. `flag`
    /// names the setting in errors. A component the base has as anything but a directory or a symlink is an error.
    pub fn resolve(&self, dest: &str, flag: &str) -> Result<String> {
        let mut todo: Vec<Vec<u8>> = components(dest.as_bytes());
        todo.reverse();
        let mut at: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = todo.pop() {
            let mut path = at.clone();
            path.push(comp);
            let joined = path.join(&b'/');
            match self.nodes.get(&joined) {
                // A directory only implied by paths below it (a tar may leave parents out).
                None if self.has_below(&joined) => at = path,
                None => {
                    // Not in the base: kiln makes it, and everything below it.
                    at = path;
                    while let Some(c) = todo.pop() {
                        at.push(c);
                    }
                }
                Some(n) if n.kind == Kind::Dir => at = path,
                Some(n) if n.kind == Kind::Symlink => {
                    hops += 1;
                    if hops > 40 {
                        return Err(self.refuse(dest, flag, &joined, "is part of a symlink loop"));
                    }
                    let mut target = match n.link.first() {
                        Some(b'/') => Vec::new(),
                        _ => at.clone(),
                    };
                    for c in n.link.split(|&b| b == b'/') {
                        match c {
                            b"" | b"." => {}
                            b".." => {
                                if target.pop().is_none() {
                                    let why = format!(
                                        "is a symlink to {} that leaves the image root",
                                        String::from_utf8_lossy(&n.link)
                                    );
                                    return Err(self.refuse(dest, flag, &joined, &why));
                                }
                            }
                            c => target.push(c.to_vec()),
                        }
                    }
                    // Resolve the target's own components from the root again (they may be links too).
                    at = Vec::new();
                    for c in target.into_iter().rev() {
                        todo.push(c);
                    }
                }
                Some(n) => {
                    let what = match n.kind {
                        Kind::File | Kind::Hardlink => "a file",
                        _ => "not a directory",
                    };
                    return Err(self.refuse(
                        dest,
                        flag,
                        &joined,
                        &format!("is {what}; kiln needs a directory there"),
                    ));
                }
            }
        }
        let mut out = String::from("/");
        out.push_str(&String::from_utf8_lossy(&at.join(&b'/')));
        Ok(out)
    }

    fn refuse(&self, dest: &str, flag: &str, path: &[u8], why: &str) -> Error {
        Error::Usage(format!(
            "{flag} {dest}: /{} in base image {} {why}",
            String::from_utf8_lossy(path),
            self.name
        ))
    }

    /// Give every directory of `entries` that the base has the base's own mode, owner and time (kiln's layer
    /// needs the entry; the base keeps its metadata). A directory of the build output where the base has a
    /// symlink would replace the link: refused, naming both (`src` is the directory it came from).
    pub fn adopt(&self, entries: &mut [Entry], src: &Path) -> Result<()> {
        for e in entries.iter_mut().filter(|e| e.kind == EntryKind::Dir) {
            let path = e.path.as_os_str().as_bytes();
            let Some(n) = self.nodes.get(path) else {
                continue;
            };
            match n.kind {
                Kind::Dir => {
                    e.mode = n.mode;
                    e.from_base = Some(Box::new(FromBase {
                        uid: n.uid,
                        gid: n.gid,
                        mtime: n.mtime,
                    }));
                }
                Kind::Symlink => {
                    let from = e.source.clone().unwrap_or_else(|| PathBuf::from(src));
                    return Err(Error::input(
                        from,
                        format!(
                            "is a directory, but /{} in base image {} is a symlink to {}: the layer would replace \
                             the link with a directory. Put these files under the link's target (e.g. with \
                             --prefix or --layer SRC:DEST), or leave the directory out",
                            String::from_utf8_lossy(path),
                            self.name,
                            String::from_utf8_lossy(&n.link)
                        ),
                    ));
                }
                // A file of the base replaced by a directory of the build output: the user's content wins.
                _ => {}
            }
        }
        Ok(())
    }
}

fn components(p: &[u8]) -> Vec<Vec<u8>> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests;
