//! The build-output fixture (testdata/app plus what git cannot carry: exact modes, setuid, hardlinks, empty
//! dirs), and a listing of a tree that two trees can be compared by.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Copy `testdata/app` to `dir/src` with explicit modes, then add a 0600 file, a setuid file, a hardlink, an
/// empty file and an empty directory. Returns the source dir.
pub fn fixture(dir: &Path) -> PathBuf {
    fixture_with_umask(dir, 0o022)
}

/// Same, created under another umask (the result must not depend on it).
///
/// The umask is process-wide and every test of this binary runs on a thread of one process, so the files are
/// created by a child shell that has the umask, never by changing this process's (which would leak into every
/// file and child process that other tests create meanwhile). Every mode the fixture relies on is then set
/// explicitly, which is the point of the test.
pub fn fixture_with_umask(dir: &Path, umask: u32) -> PathBuf {
    let src = dir.join("src");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/app");
    // cp -R copies symlinks as symlinks and, without -p, creates everything under the shell's umask.
    let script = r#"set -e
umask "$1"
mkdir -p "$2"
cp -R "$3/." "$2"
printf 'not really a secret\n' > "$2/secret.key"
printf '#!/bin/sh\nid\n' > "$2/bin/suid-tool"
ln "$2/bin/hello" "$2/bin/hello-again"
: > "$2/public/.keep"
mkdir -p "$2/var/empty"
"#;
    let out = std::process::Command::new("sh")
        .args(["-c", script, "sh", &format!("{umask:o}")])
        .arg(&src)
        .arg(&app)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "creating the fixture under umask {umask:o}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    set_modes(&src);
    chmod(&src.join("secret.key"), 0o600);
    chmod(&src.join("bin/suid-tool"), 0o4755);
    src
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Directories 0755, files 0644, files under bin/ 0755.
fn set_modes(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            chmod(&p, 0o755);
            set_modes(&p);
        } else if md.is_file() {
            let exec = p.parent().is_some_and(|d| d.ends_with("bin"));
            chmod(&p, if exec { 0o755 } else { 0o644 });
        }
    }
    chmod(dir, 0o755);
}

/// Set every entry's mtime (not following symlinks).
pub fn touch_all(dir: &Path, epoch: i64) {
    let status = std::process::Command::new("find")
        .arg(dir)
        .args([
            "-exec",
            "touch",
            "-h",
            "-d",
            &format!("@{epoch}"),
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `relative path → "dir 755" | "file 644 <sha256>" | "link -> target"`, plus hardlink groups, for comparing trees.
pub fn tree_listing(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, String>,
    inodes: &mut BTreeMap<(u64, u64), Vec<u8>>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let md = fs::symlink_metadata(&p).unwrap();
        let mode = md.permissions().mode() & 0o7777;
        let desc = if md.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if md.is_dir() {
            walk(root, &p, out, inodes);
            format!("dir {mode:o}")
        } else {
            let sum = super::sha256_hex(&fs::read(&p).unwrap());
            let link = if md.nlink() > 1 {
                let first = inodes
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| rel.clone());
                format!(" hardlink-group {}", String::from_utf8_lossy(first))
            } else {
                String::new()
            };
            format!("file {mode:o} {sum}{link}")
        };
        out.insert(rel, desc);
    }
}
