//! A [`LayerIndex`] as a layer cache record: a small binary encoding (paths are bytes, not always UTF-8; a Debian
//! layer's ~10 000 headers make ~400 KiB), read back only if it is complete and of this version.

use super::tree::{Item, Kind, LayerIndex, Node};

const MAGIC: &[u8] = b"kiln base index v1\n";

pub fn encode(index: &LayerIndex) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(index.items.len() as u64).to_le_bytes());
    for item in &index.items {
        match item {
            Item::Whiteout(p) => {
                out.push(b'w');
                bytes(&mut out, p);
            }
            Item::Opaque(p) => {
                out.push(b'o');
                bytes(&mut out, p);
            }
            Item::Node(p, n) => {
                out.push(b'n');
                bytes(&mut out, p);
                out.push(match n.kind {
                    Kind::Dir => b'd',
                    Kind::File => b'f',
                    Kind::Symlink => b'l',
                    Kind::Hardlink => b'h',
                    Kind::Other => b'o',
                });
                out.extend_from_slice(&n.mode.to_le_bytes());
                for v in [n.uid, n.gid, n.mtime] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                bytes(&mut out, &n.link);
            }
        }
    }
    out
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The index in `record`, or `None` when it is not one of this version or is cut short.
pub fn decode(record: &[u8]) -> Option<LayerIndex> {
    let mut r = Reader(record.strip_prefix(MAGIC)?);
    let n = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let mut items = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let tag = r.take(1)?[0];
        let path = r.bytes()?;
        items.push(match tag {
            b'w' => Item::Whiteout(path),
            b'o' => Item::Opaque(path),
            b'n' => {
                let kind = match r.take(1)?[0] {
                    b'd' => Kind::Dir,
                    b'f' => Kind::File,
                    b'l' => Kind::Symlink,
                    b'h' => Kind::Hardlink,
                    b'o' => Kind::Other,
                    _ => return None,
                };
                let mode = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
                let mut v = [0u64; 3];
                for x in &mut v {
                    *x = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
                }
                let link = r.bytes()?;
                Item::Node(
                    path,
                    Node {
                        kind,
                        mode,
                        uid: v[0],
                        gid: v[1],
                        mtime: v[2],
                        link,
                    },
                )
            }
            _ => return None,
        });
    }
    r.0.is_empty().then_some(LayerIndex { items })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
}
