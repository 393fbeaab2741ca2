//! A build-output tree with every kind of entry a layer must carry faithfully, shared by the walk and layer tests.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// A directory name of 50 bytes, used three times to make a deep path.
pub const SEG: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddd";
/// Non-UTF-8 file name (Linux names are bytes).
pub const RAW_NAME: &[u8] = b"raw-\xff\xfe.bin";
/// Size of `big.bin`: several read buffers, not a multiple of 512.
pub const BIG_SIZE: usize = 3 * 1024 * 1024 + 123;

/// The archive path of the file with a name over 100 bytes in a path over 255 bytes.
pub fn long_path() -> String {
    format!("deep/{SEG}/{SEG}/{SEG}/{}.txt", "n".repeat(120))
}

/// A non-UTF-8 name over 100 bytes (a PAX `path` with raw bytes), next to `long_path`.
pub fn long_raw_path() -> Vec<u8> {
    let mut p = format!("deep/{SEG}/{SEG}/{SEG}/").into_bytes();
    p.extend_from_slice(RAW_NAME);
    p.extend_from_slice("x".repeat(100).as_bytes());
    p
}

/// Deterministic pseudo-random content (incompressible enough to exercise the compressors).
pub fn big_content() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..BIG_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn file(root: &Path, rel: impl AsRef<Path>, content: &[u8], mode: u32) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// Build the fixture in `tmp/root` and return that path. Modes are set explicitly (umask does not matter).
pub fn build(tmp: &Path) -> PathBuf {
    let root = tmp.join("root");
    fs::create_dir(&root).unwrap();
    file(&root, "bin/server", b"#!/bin/sh\necho hello\n", 0o755);
    file(&root, "bin/suid", b"setuid\n", 0o4755);
    file(&root, "etc/secret", b"s3cret\n", 0o600);
    file(&root, "empty", b"", 0o644);
    file(&root, "big.bin", &big_content(), 0o644);
    // Byte-wise order puts "a-b" between "a" and "a/b".
    file(&root, "a/b", b"ab\n", 0o644);
    file(&root, "a-b", b"a-b\n", 0o644);
    for d in ["tmp", "private", "setgid"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    symlink("bin/server", root.join("link-rel")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("../../etc/passwd", root.join("escape")).unwrap();
    let first = file(&root, "hard/b", b"shared inode\n", 0o640);
    fs::hard_link(&first, root.join("hard/a")).unwrap();
    fs::hard_link(&first, root.join("hard/c")).unwrap();
    file(&root, long_path(), b"long name\n", 0o644);
    file(
        &root,
        OsStr::from_bytes(&long_raw_path()),
        b"long raw\n",
        0o644,
    );
    // A symlink target over 100 bytes.
    symlink(long_path(), root.join("long-link")).unwrap();
    file(
        &root,
        "café/naïve-ファイル.txt",
        "unicode ✓\n".as_bytes(),
        0o644,
    );
    file(&root, OsStr::from_bytes(RAW_NAME), b"raw\n", 0o644);
    // Directories created on the way get 0755 whatever the umask; then the explicit ones.
    chmod_dirs(&root);
    fs::set_permissions(root.join("bin"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(root.join("setgid"), fs::Permissions::from_mode(0o2755)).unwrap();
    root
}

fn chmod_dirs(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            chmod_dirs(&e.path());
        }
    }
}
