//! The base tree: tar headers indexed (whiteouts, opaque directories, hardlinks, PAX ids), layers overlaid in
//! order, kiln's destinations resolved through the base's symlinks, and its directories given the base's metadata.

use std::path::Path;

use super::super::record;
use super::*;

/// One tar entry of a test layer.
enum T<'a> {
    Dir(&'a str, u32, u64),
    File(&'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// A gzip-compressed layer of `entries` (through the tar crate and flate2, not kiln's writer).
fn layer(entries: &[T<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        let (path, kind, mode, uid) = match e {
            T::Dir(p, m, uid) => (*p, tar::EntryType::Directory, *m, *uid),
            T::File(p) => (*p, tar::EntryType::Regular, 0o644, 0),
            T::Link(p, t) => {
                h.set_link_name(t).unwrap();
                (*p, tar::EntryType::Symlink, 0o777, 0)
            }
            T::Hard(p, t) => {
                h.set_link_name(t).unwrap();
                (*p, tar::EntryType::Link, 0o644, 0)
            }
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

fn tree(layers: &[&[T<'_>]]) -> BaseTree {
    let mut t = BaseTree::new("test-base:1".into());
    for l in layers {
        let index = index_layer(&layer(l)[..]).unwrap();
        // Every index also survives the cache record round trip.
        assert_eq!(
            record::decode(&record::encode(&index)).as_ref(),
            Some(&index)
        );
        t.apply(&index);
    }
    t
}

/// A Debian-12-like bottom layer: `/bin -> usr/bin`, `/tmp` 1777, a home owned by 1000.
fn debian() -> Vec<T<'static>> {
    vec![
        T::Dir("./", 0o755, 0),
        T::Link("bin", "usr/bin"),
        T::Dir("home/", 0o755, 0),
        T::Dir("home/app/", 0o750, 1000),
        T::Link("lib", "usr/lib"),
        T::Dir("tmp/", 0o1777, 0),
        T::Dir("usr/", 0o755, 0),
        T::Dir("usr/bin/", 0o755, 0),
        T::File("usr/bin/sh"),
        T::Dir("usr/lib/", 0o755, 0),
        T::File("etc"),
    ]
}

#[test]
fn headers_are_indexed_with_whiteouts_and_opaque_dirs() {
    let idx = index_layer(
        &layer(&[
            T::Dir("./a/", 0o700, 5),
            T::File("a/.wh.gone"),
            T::File("a/b/.wh..wh..opq"),
            T::Hard("a/h", "usr/bin/sh"),
        ])[..],
    )
    .unwrap();
    assert_eq!(
        idx.items[1..3],
        [
            Item::Whiteout(b"a/gone".to_vec()),
            Item::Opaque(b"a/b".to_vec())
        ]
    );
    let Item::Node(p, n) = &idx.items[0] else {
        panic!()
    };
    assert_eq!(
        (p.as_slice(), n.kind, n.mode, n.uid),
        (&b"a"[..], Kind::Dir, 0o700, 5)
    );
    let Item::Node(_, h) = &idx.items[3] else {
        panic!()
    };
    assert_eq!(
        (h.kind, h.link.as_slice()),
        (Kind::Hardlink, &b"usr/bin/sh"[..])
    );
    // Not a tar at all: an error, not an empty tree.
    assert!(index_layer(&b"\x1f\x8bnot gzip"[..]).is_err());
}

#[test]
fn upper_layers_overlay_lower_ones() {
    let t = tree(&[
        &debian(),
        &[
            T::File("home/.wh.app"),
            T::File("usr/lib/.wh..wh..opq"),
            T::Dir("usr/lib/new/", 0o755, 0),
            T::File("tmp"),
        ],
    ]);
    assert!(t.get(b"home/app").is_none(), "whited out");
    assert!(
        t.get(b"usr/lib/new").is_some(),
        "the opaque layer's own entry stays"
    );
    assert_eq!(
        t.get(b"usr/lib").map(|n| n.kind),
        Some(Kind::Dir),
        "opaque keeps the directory"
    );
    assert_eq!(t.get(b"tmp").map(|n| n.kind), Some(Kind::File), "replaced");
    assert_eq!(t.get(b"usr/bin/sh").map(|n| n.kind), Some(Kind::File));
    // A whiteout in the same layer as a new entry of that name deletes only what was below.
    let t = tree(&[&debian(), &[T::Dir("tmp/", 0o700, 0), T::File(".wh.tmp")]]);
    assert_eq!(t.get(b"tmp").map(|n| n.mode), Some(0o700));
}

#[test]
fn destinations_follow_the_base_s_symlinks_inside_the_root() {
    let t = tree(&[
        &debian(),
        &[
            T::Link("opt/abs", "/usr/lib"),
            T::Link("opt/up", "../../../usr"),
            T::Link("opt/chain", "abs"),
            T::Link("loop1", "loop2"),
            T::Link("loop2", "loop1"),
        ],
    ]);
    let r = |d: &str| t.resolve(d, "--prefix");
    assert_eq!(r("/bin").unwrap(), "/usr/bin");
    assert_eq!(r("/bin/tools").unwrap(), "/usr/bin/tools");
    assert_eq!(r("/app/bin").unwrap(), "/app/bin");
    assert_eq!(r("/home/app/bin").unwrap(), "/home/app/bin");
    assert_eq!(r("/opt/abs/x").unwrap(), "/usr/lib/x");
    assert_eq!(r("/opt/chain").unwrap(), "/usr/lib");
    assert_eq!(r("/").unwrap(), "/");
    for (bad, says) in [
        ("/opt/up/x", "leaves the image root"),
        ("/loop1/x", "symlink loop"),
        ("/etc/app", "/etc in base image test-base:1 is a file"),
        (
            "/usr/bin/sh/x",
            "/usr/bin/sh in base image test-base:1 is a file",
        ),
    ] {
        let e = r(bad).unwrap_err();
        assert!(e.to_string().contains(says), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{bad}: {e}");
        assert_eq!(e.exit_code(), 2);
    }
}

#[test]
fn kiln_s_directories_take_the_base_s_metadata() {
    let t = tree(&[&debian()]);
    let dir = |p: &str| Entry {
        path: p.into(),
        source: None,
        kind: EntryKind::Dir,
        mode: 0o755,
        stamp: (0, 0, 0, 0, 0),
        from_base: None,
    };
    let mut entries = vec![
        dir("home"),
        dir("home/app"),
        dir("home/app/bin"),
        dir("tmp"),
    ];
    t.adopt(&mut entries, Path::new("out")).unwrap();
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.mode, e.from_base.as_ref().map(|b| (b.uid, b.mtime))))
        .collect();
    assert_eq!(
        got,
        [
            (0o755, Some((0, 1_600_000_000))),
            (0o750, Some((1000, 1_600_000_000))),
            (0o755, None),
            (0o1777, Some((0, 1_600_000_000))),
        ]
    );
    // A directory of the build output where the base has a symlink would replace the link.
    let mut entries = vec![dir("bin")];
    let e = t
        .adopt(&mut entries, Path::new("out"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/bin in base image test-base:1 is a symlink to usr/bin"),
        "{e}"
    );
}

#[test]
fn records_are_exact_or_absent() {
    let idx = index_layer(&layer(&debian())[..]).unwrap();
    let rec = record::encode(&idx);
    assert_eq!(record::decode(&rec), Some(idx));
    assert_eq!(record::decode(&rec[..rec.len() - 1]), None);
    assert_eq!(record::decode(b"kiln base index v0\n"), None);
}
