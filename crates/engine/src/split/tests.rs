use std::path::PathBuf;

use super::*;

fn file(path: &str, size: u64) -> Entry {
    Entry {
        path: PathBuf::from(path),
        source: None,
        kind: EntryKind::File { size },
        mode: 0o644,
        stamp: (0, 0, 0, 0, 0),
        from_base: None,
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        kind: EntryKind::Dir,
        mode: 0o755,
        ..file(path, 0)
    }
}

/// A sorted tree of `n` files of 2-40 KiB under a few directories, like a bundler's `dist/`.
fn tree(n: usize) -> Vec<Entry> {
    let mut v = vec![dir("app")];
    for d in 0..8 {
        v.push(dir(&format!("app/d{d}")));
        for i in 0..n / 8 {
            let size = 2048 + (path_hash(format!("{d}/{i}").as_bytes()) % 38_000);
            v.push(file(&format!("app/d{d}/f{i:05}.js"), size));
        }
    }
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Each part as the list of its paths, to compare partitions of different entry lists.
fn named(entries: &[Entry], split: Split) -> Vec<Vec<PathBuf>> {
    parts(entries, split)
        .into_iter()
        .map(|r| entries[r].iter().map(|e| e.path.clone()).collect())
        .collect()
}

fn assert_covers(entries: &[Entry], p: &[Range<usize>]) {
    let mut next = 0;
    for r in p {
        assert_eq!(r.start, next, "{p:?}");
        assert!(r.end > r.start, "{p:?}");
        next = r.end;
    }
    assert_eq!(next, entries.len());
}

#[test]
fn off_and_small_trees_are_one_part() {
    let t = tree(80);
    assert_eq!(parts(&t, Split::Off), vec![0..t.len()]);
    // Below a quarter of the smallest target no cut is allowed.
    let t = tree(20);
    assert_eq!(
        parts(&t, Split::Auto),
        vec![0..t.len()],
        "~0.35 MB < 2 MiB / 4"
    );
    assert_eq!(parts(&[], Split::Auto), vec![0..0]);
    assert_eq!(parts(&[dir("a")], Split::Auto), vec![0..1]);
}

#[test]
fn parts_cover_everything_in_order_and_average_the_target() {
    let t = tree(4000); // ~85 MB of tar
    let total: u64 = t.iter().map(weight).sum();
    let target = auto_target(total);
    assert_eq!(target, 8 << 20);
    let p = parts(&t, Split::Auto);
    assert_covers(&t, &p);
    assert!((6..=20).contains(&p.len()), "{} parts", p.len());
    for r in &p {
        let bytes: u64 = t[r.clone()].iter().map(weight).sum();
        assert!(bytes <= 2 * target + 64 * 1024, "{bytes}");
    }
}

#[test]
fn one_changed_file_moves_at_most_its_own_boundaries() {
    let t = tree(4000);
    let before = named(&t, Split::Auto);
    for victim in [5, 1234, 3999] {
        let mut changed = t.clone();
        if let EntryKind::File { size } = &mut changed[victim].kind {
            *size += 7000;
        }
        let after = named(&changed, Split::Auto);
        let same = after.iter().filter(|p| before.contains(p)).count();
        assert!(same + 2 >= before.len(), "{same} of {} kept", before.len());
        // An added file: the same, everything else stays where it was.
        let mut added = t.clone();
        added.insert(
            victim,
            file(&format!("{}x", t[victim].path.display()), 3000),
        );
        let after = named(&added, Split::Auto);
        let same = after.iter().filter(|p| before.contains(p)).count();
        assert!(same + 2 >= before.len(), "{same} of {} kept", before.len());
    }
}

#[test]
fn a_large_file_gets_a_layer_of_its_own() {
    let t = vec![
        dir("app"),
        file("app/README.md", 2048),
        dir("app/bin"),
        file("app/bin/server", 200 << 20),
        file("app/config.json", 100),
    ];
    let p = parts(&t, Split::Auto);
    assert_eq!(p, vec![0..3, 3..4, 4..5]);
    assert_eq!(auto_target(200 << 20), 16 << 20);
}

#[test]
fn a_hardlink_stays_with_its_file() {
    let mut t = vec![dir("a"), file("a/big", 64 << 20)];
    for i in 0..2000 {
        t.push(file(&format!("a/m{i:04}"), 30_000));
    }
    t.push(Entry {
        kind: EntryKind::Hardlink {
            target: PathBuf::from("a/big"),
        },
        ..file("a/z-link", 0)
    });
    let p = parts(&t, Split::Size(4 << 20));
    assert_covers(&t, &p);
    let with_big = p.iter().find(|r| r.contains(&1)).unwrap();
    assert!(with_big.contains(&(t.len() - 1)), "{p:?}");
    // Without the link the same tree is cut many times.
    t.pop();
    assert!(parts(&t, Split::Size(4 << 20)).len() > 5);
}

#[test]
fn split_values() {
    assert_eq!("auto".parse::<Split>(), Ok(Split::Auto));
    assert_eq!("off".parse::<Split>(), Ok(Split::Off));
    assert_eq!("16MiB".parse::<Split>(), Ok(Split::Size(16 << 20)));
    assert_eq!("1G".parse::<Split>(), Ok(Split::Size(1 << 30)));
    assert_eq!("8388608".parse::<Split>(), Ok(Split::Size(8 << 20)));
    assert!("1MiB".parse::<Split>().unwrap_err().contains("2MiB"));
    assert_eq!("2MiB".parse::<Split>(), Ok(Split::Size(2 << 20)));
    assert!("lots".parse::<Split>().unwrap_err().contains("auto, off"));
    assert!("99999999999999GiB".parse::<Split>().is_err());
    assert!(check_layer_count(127).is_ok());
    assert!(check_layer_count(128).is_err());
}

#[test]
fn the_path_hash_is_fixed() {
    // The boundaries, and so every layer digest of a split build, depend on it: never change it silently.
    assert_eq!(path_hash(b""), 0xefd0_1f60_ba99_2926);
    assert_eq!(path_hash(b"app/dist/main.js"), 0xfb4e_72ac_84f9_418b);
    assert_ne!(path_hash(b"app/a"), path_hash(b"app/b"));
}

#[test]
fn a_large_file_with_a_link_right_after_still_ends_its_part_there() {
    let mut t = vec![dir("a"), file("a/big", 64 << 20)];
    t.push(Entry {
        kind: EntryKind::Hardlink {
            target: PathBuf::from("a/big"),
        },
        ..file("a/big-link", 0)
    });
    for i in 0..3000 {
        t.push(file(&format!("a/m{i:04}"), 3000));
    }
    let p = parts(&t, Split::Size(4 << 20));
    assert_eq!(p[0], 0..1);
    assert_eq!(p[1], 1..3, "{p:?}");
}
