use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use super::fixture::{self, RAW_NAME, SEG};
use super::*;

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn find<'a>(entries: &'a [Entry], path: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.path == Path::new(path))
        .unwrap_or_else(|| panic!("no entry {path}"))
}

#[test]
fn walk_order_kinds_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture::build(tmp.path());
    let entries = walk(&root, "/").unwrap();

    let long = fixture::long_path();
    let mut expected: Vec<Vec<u8>> = [
        "a",
        "a-b",
        "a/b",
        "big.bin",
        "bin",
        "bin/server",
        "bin/suid",
        "café",
        "café/naïve-ファイル.txt",
        "dangling",
        "deep",
        &format!("deep/{SEG}"),
        &format!("deep/{SEG}/{SEG}"),
        &format!("deep/{SEG}/{SEG}/{SEG}"),
        &long,
        "\u{0}", // placeholder for fixture::long_raw_path()
        "empty",
        "escape",
        "etc",
        "etc/secret",
        "hard",
        "hard/a",
        "hard/b",
        "hard/c",
        "link-rel",
        "long-link",
        "private",
    ]
    .iter()
    .map(|s| match *s {
        "\u{0}" => fixture::long_raw_path(),
        s => s.as_bytes().to_vec(),
    })
    .collect();
    expected.push(RAW_NAME.to_vec());
    expected.push(b"setgid".to_vec());
    expected.push(b"tmp".to_vec());
    let got: Vec<Vec<u8>> = entries.iter().map(|e| bytes(&e.path).to_vec()).collect();
    assert_eq!(got, expected);

    assert_eq!(find(&entries, "a").kind, EntryKind::Dir);
    assert_eq!(find(&entries, "bin").mode, 0o751);
    assert_eq!(find(&entries, "bin/server").mode, 0o755);
    assert_eq!(find(&entries, "bin/suid").mode, 0o4755);
    assert_eq!(find(&entries, "etc/secret").mode, 0o600);
    assert_eq!(find(&entries, "tmp").mode, 0o1777);
    assert_eq!(find(&entries, "setgid").mode, 0o2755);
    assert_eq!(find(&entries, "private").mode, 0o700);
    assert_eq!(find(&entries, "empty").kind, EntryKind::File { size: 0 });
    assert_eq!(
        find(&entries, "big.bin").kind,
        EntryKind::File {
            size: fixture::BIG_SIZE as u64
        }
    );
    let sym = |t: &str| EntryKind::Symlink {
        target: PathBuf::from(t),
    };
    assert_eq!(find(&entries, "link-rel").kind, sym("bin/server"));
    assert_eq!(find(&entries, "dangling").kind, sym("does/not/exist"));
    assert_eq!(find(&entries, "escape").kind, sym("../../etc/passwd"));
    assert_eq!(find(&entries, "long-link").kind, sym(&long));
    assert_eq!(
        find(&entries, "hard/a").kind,
        EntryKind::File { size: 13 },
        "first name in sorted order is the file"
    );
    for later in ["hard/b", "hard/c"] {
        assert_eq!(
            find(&entries, later).kind,
            EntryKind::Hardlink {
                target: PathBuf::from("hard/a")
            }
        );
    }
    let raw = entries.iter().find(|e| bytes(&e.path) == RAW_NAME).unwrap();
    assert_eq!(
        raw.source.as_deref(),
        Some(&*root.join(OsStr::from_bytes(RAW_NAME)))
    );

    // The stamp is lstat's.
    let e = find(&entries, "bin/server");
    let md = fs::symlink_metadata(root.join("bin/server")).unwrap();
    assert_eq!(
        e.stamp,
        (
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec(),
            md.ino()
        )
    );
    assert_eq!(e.source.as_deref(), Some(&*root.join("bin/server")));
}

#[test]
fn dest_gets_parent_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("sub/f"), b"x").unwrap();
    fs::write(root.join("top"), b"y").unwrap();
    let entries = walk(&root, "//app/./x/").unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.to_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["app", "app/x", "app/x/sub", "app/x/sub/f", "app/x/top"]
    );
    for e in &entries[..2] {
        assert_eq!(e.kind, EntryKind::Dir);
        assert_eq!(e.mode, 0o755);
        assert!(e.source.is_none());
    }
    assert!(walk(&root, "/../x").is_err());
    assert!(walk(&root, "app").is_err());
}

#[test]
fn empty_root_at_image_root_has_no_entries() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(walk(tmp.path(), "/").unwrap().is_empty());
}

#[test]
fn root_may_be_a_symlink_to_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("f"), b"x").unwrap();
    symlink(&real, tmp.path().join("via")).unwrap();
    // Symlinks inside are still not followed.
    symlink(&real, real.join("loop")).unwrap();
    let entries = walk(&tmp.path().join("via"), "/").unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].path, Path::new("f"));
    assert!(matches!(entries[1].kind, EntryKind::Symlink { .. }));
}

#[test]
fn bad_roots_are_errors_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("loop-a");
    let b = tmp.path().join("loop-b");
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    let missing = tmp.path().join("missing");
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    for p in [&a, &missing, &file] {
        let err = walk(p, "/").unwrap_err().to_string();
        assert!(err.contains(p.to_str().unwrap()), "{err}");
    }
    let err = walk(&file, "/").unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn unreadable_directory_is_an_error_naming_it() {
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: root reads everything");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let locked = tmp.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let err = walk(tmp.path(), "/").unwrap_err().to_string();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(err.contains(locked.to_str().unwrap()), "{err}");
}

#[test]
fn fifo_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("sub/pipe");
    fs::create_dir(tmp.path().join("sub")).unwrap();
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = walk(tmp.path(), "/").unwrap_err();
    assert!(matches!(err, Error::Input { .. }));
    let msg = err.to_string();
    assert!(msg.contains(fifo.to_str().unwrap()), "{msg}");
    assert!(msg.contains("FIFO"), "{msg}");
}

#[test]
fn socket_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("s.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let msg = walk(tmp.path(), "/").unwrap_err().to_string();
    assert!(msg.contains(sock.to_str().unwrap()), "{msg}");
    assert!(msg.contains("socket"), "{msg}");
}

#[test]
fn whiteout_names_are_refused() {
    for name in [".wh.foo", ".wh..wh..opq"] {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        let p = tmp.path().join("d").join(name);
        fs::write(&p, b"").unwrap();
        let msg = walk(tmp.path(), "/").unwrap_err().to_string();
        assert!(msg.contains(p.to_str().unwrap()), "{msg}");
        assert!(msg.contains("whiteout"), "{msg}");
    }
    // Only the prefix counts.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("x.wh.y"), b"").unwrap();
    fs::write(tmp.path().join(".whale"), b"").unwrap();
    assert_eq!(walk(tmp.path(), "/").unwrap().len(), 2);
}

#[test]
fn normalize_dest_cases() {
    let ok = |s: &str| normalize_dest(s, "--prefix").unwrap();
    assert_eq!(ok("/"), "/");
    assert_eq!(ok("//"), "/");
    assert_eq!(ok("/."), "/");
    assert_eq!(ok("/app"), "/app");
    assert_eq!(ok("/app/"), "/app");
    assert_eq!(ok("//app//x/./y/"), "/app/x/y");
    assert_eq!(ok("/café/ファイル"), "/café/ファイル");
    assert_eq!(ok("/a..b/...").as_str(), "/a..b/...");
    for bad in [
        "",
        "app",
        "./app",
        "/..",
        "/app/../etc",
        "/app/..",
        "/a\0b",
        "/.wh.x",
    ] {
        let err = normalize_dest(bad, "--layer").unwrap_err();
        assert_eq!(err.exit_code(), 2, "{bad:?}");
        let msg = err.to_string();
        assert!(msg.contains("--layer"), "{msg}");
    }
    assert!(
        normalize_dest("/a/../b", "--prefix")
            .unwrap_err()
            .to_string()
            .contains("inside the image root")
    );
}

#[test]
fn order_is_bytewise_across_directories() {
    // A directory's contents sort after siblings that extend its name with a byte below `/` (`a-b`, `a.c` come
    // before `a/…`), so they are not next to the directory's own entry.
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for d in ["a/b/c", "a-b", "a.c", "a0", "b/a/x", "b/a-", "b/a."] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    for f in [
        "!", "~", "a/f", "a/b-c", "a.c/f", "a0/f", "b/a/x/y", "b/a-/z",
    ] {
        fs::write(r.join(f), b"").unwrap();
    }
    // The first name in that order is the file, wherever the directories were read.
    fs::write(r.join("a/b/c/h"), b"shared").unwrap();
    fs::hard_link(r.join("a/b/c/h"), r.join("a-b/h")).unwrap();
    let entries = walk(r, "/").unwrap();
    let got: Vec<&[u8]> = entries.iter().map(|e| bytes(&e.path)).collect();
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(got, sorted);
    assert_eq!(got.len(), 21, "{got:?}");
    assert_eq!(find(&entries, "a-b/h").kind, EntryKind::File { size: 6 });
    assert_eq!(
        find(&entries, "a/b/c/h").kind,
        EntryKind::Hardlink {
            target: PathBuf::from("a-b/h")
        }
    );
}

#[test]
fn of_several_errors_the_first_path_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    for d in ["a/x", "b", "c"] {
        fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    fs::write(tmp.path().join("c/.wh.c"), b"").unwrap();
    fs::write(tmp.path().join("b/.wh.b"), b"").unwrap();
    let fifo = tmp.path().join("a/x/pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for _ in 0..5 {
        let msg = walk(tmp.path(), "/").unwrap_err().to_string();
        assert!(msg.contains(fifo.to_str().unwrap()), "{msg}");
    }
}
