//! The order of a layer's entries, byte-wise by archive path, built from the directory listings instead of sorting
//! all paths at once: sorting names within each directory (where it is read, in parallel) and merging is several
//! times fewer and shorter comparisons than sorting the full paths of a large tree.
//!
//! A directory's contents are not next to its own entry in that order: `a`, `a-b`, `a/b` (`-` sorts before `/`).
//! But they are contiguous, at the place of the key `name/` among their siblings' names, since no name contains
//! `/`. So the order is: each listing's entries by name, with each subdirectory's contents, recursively, at its
//! `name/`.

use std::cmp::Ordering;
use std::os::unix::ffi::OsStrExt;

use super::{Entry, EntryKind};

/// An entry as read, with the (dev, ino) of a regular file with more than one link (to find hardlinks once in
/// order).
pub(super) type Found = (Entry, Option<(u64, u64)>);

/// One directory, read.
pub(super) struct Listing {
    /// Archive path of the directory.
    arch: Vec<u8>,
    /// Its entries, sorted by name.
    entries: Vec<Found>,
    /// Ids of the listings of its subdirectories, sorted by `name/`.
    subdirs: Vec<u32>,
}

/// Length of the archive path of a listing's entries before their name.
fn name_start(arch: &[u8]) -> usize {
    if arch.is_empty() { 0 } else { arch.len() + 1 }
}

fn path(f: &Found) -> &[u8] {
    f.0.path.as_os_str().as_bytes()
}

/// Compare `a` and `b`, each followed by `/` if its flag says so.
fn cmp_key(a: &[u8], a_slash: bool, b: &[u8], b_slash: bool) -> Ordering {
    let slash = |s: bool| if s { &b"/"[..] } else { &[][..] };
    a.iter()
        .chain(slash(a_slash))
        .cmp(b.iter().chain(slash(b_slash)))
}

impl Listing {
    /// The listing of the directory at `arch`, taking its `entries` (left empty); `subdir` is called with the
    /// archive path of each subdirectory, in name order, and returns the id its listing will have.
    pub fn new(
        arch: Vec<u8>,
        entries: &mut Vec<Found>,
        mut subdir: impl FnMut(Vec<u8>) -> u32,
    ) -> Self {
        let start = name_start(&arch);
        entries.sort_unstable_by(|a, b| path(a)[start..].cmp(&path(b)[start..]));
        let mut subs: Vec<(&[u8], u32)> = entries
            .iter()
            .filter(|f| f.0.kind == EntryKind::Dir)
            .map(|f| (&path(f)[start..], subdir(path(f).to_vec())))
            .collect();
        subs.sort_unstable_by(|a, b| cmp_key(a.0, true, b.0, true));
        let subdirs = subs.into_iter().map(|(_, id)| id).collect();
        // An exact copy: `entries` keeps its capacity for the next directory.
        let mut exact = Vec::with_capacity(entries.len());
        exact.append(entries);
        Listing {
            arch,
            entries: exact,
            subdirs,
        }
    }
}

/// Append the entries of the listing with id 0 and of every listing below it to `out`, in order; each regular file
/// with more than one link adds its (dev, ino, index in `out`) to `links`. `listings` are by id.
pub(super) fn concat(
    mut listings: Vec<Option<Listing>>,
    out: &mut Vec<Entry>,
    links: &mut Vec<(u64, u64, usize)>,
) {
    let total: usize = listings.iter().flatten().map(|l| l.entries.len()).sum();
    out.reserve(total);
    struct Frame {
        start: usize,
        entries: std::vec::IntoIter<Found>,
        subdirs: std::vec::IntoIter<u32>,
    }
    let open = |l: Listing| Frame {
        start: name_start(&l.arch),
        entries: l.entries.into_iter(),
        subdirs: l.subdirs.into_iter(),
    };
    let take = |listings: &mut Vec<Option<Listing>>, id: u32| {
        listings[id as usize]
            .take()
            .expect("every directory found was read")
    };
    // An explicit stack: trees may be deep.
    let mut stack = vec![open(take(&mut listings, 0))];
    while let Some(top) = stack.last_mut() {
        let next_sub = top.subdirs.as_slice().first().map(|&id| {
            let l = listings[id as usize]
                .as_ref()
                .expect("every directory found was read");
            (id, &l.arch[top.start..])
        });
        let sub_first = match (top.entries.as_slice().first(), next_sub) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(e), Some((_, sub))) => cmp_key(&path(e)[top.start..], false, sub, true).is_gt(),
        };
        if let (true, Some((id, _))) = (sub_first, next_sub) {
            top.subdirs.next();
            let l = take(&mut listings, id);
            stack.push(open(l));
        } else if let Some((e, link)) = top.entries.next() {
            if let Some((dev, ino)) = link {
                links.push((dev, ino, out.len()));
            }
            out.push(e);
        } else {
            stack.pop();
        }
    }
}
