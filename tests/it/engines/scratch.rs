//! Images on `scratch`: a static binary runs; the tricky tree arrives intact.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

#[test]
fn static_binary_on_scratch_prints_hello() {
    let engines = started();
    if engines.is_empty() {
        return;
    }
    let t = tempdir();
    let app = busybox_dir(&t.path().join("app"));
    // docker load and podman load read gzip and zstd layers (README, "Docker archives"): both are run.
    for comp in ["gzip", "zstd"] {
        let archive = t.path().join(format!("hello-{comp}.tar"));
        let name = format!("kiln-it/hello-{comp}:v1");
        build(&[
            app.to_str().unwrap(),
            "--prefix",
            "/bin",
            "--entrypoint",
            "/bin/busybox",
            "--cmd",
            "echo",
            "--cmd",
            "hello",
            "--compression",
            comp,
            "--to",
            &format!("docker-archive:{}:{name}", archive.display()),
        ]);
        for e in &engines {
            e.load(&archive);
            let out = e.run_ok(&format!("docker.io/{name}"), None, &[]);
            assert_eq!(text(&out), "hello\n", "{e}: {comp} archive");
        }
    }
}

/// The long name (a 150-byte component in a 270-byte path) and the non-UTF-8 names need the tar's PAX or GNU
/// long-name records; the setuid bit and the 0600/0750 modes need the extracting engine to keep them.
fn tricky_tree(root: &Path) {
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    let file = |rel: &Path, content: &str, m: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        mode(&p, m);
    };
    fs::create_dir_all(root).unwrap();
    file(Path::new("secret.txt"), "s3cret\n", 0o600);
    file(Path::new("bin/suid-tool"), "#!/bin/sh\necho suid\n", 0o4755);
    file(Path::new("hard-a"), "same inode\n", 0o644);
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    std::os::unix::fs::symlink("secret.txt", root.join("link")).unwrap();
    file(Path::new("private/key"), "private\n", 0o640);
    std::os::unix::fs::symlink("../bin/suid-tool", root.join("private/tool-link")).unwrap();
    let long = Path::new(&"d".repeat(60))
        .join("e".repeat(60))
        .join("f".repeat(150));
    file(&long, "long name\n", 0o644);
    file(
        Path::new(OsStr::from_bytes(b"caf\xe9-latin1.txt")),
        "latin-1 name\n",
        0o644,
    );
    let long_binary = [b"\xff\xfe-".as_slice(), "x".repeat(120).as_bytes()].concat();
    file(
        &Path::new("bytes").join(OsStr::from_bytes(&long_binary)),
        "long non-UTF-8 name\n",
        0o644,
    );
    fs::create_dir_all(root.join("empty")).unwrap();
    for d in ["", "bin", "empty", "bytes"] {
        mode(&root.join(d), 0o755);
    }
    mode(&root.join("private"), 0o750);
    for d in [
        PathBuf::from("d".repeat(60)),
        Path::new(&"d".repeat(60)).join("e".repeat(60)),
    ] {
        mode(&root.join(d), 0o755);
    }
}

/// busybox `stat -c FORMAT` and `sha256sum` over every entry under /data, as the container sees it.
const LIST_SCRIPT: &str = "/bin/busybox find /data -exec /bin/busybox stat -c '%F|%a|%u:%g|%s|%h|%n' {} + \
                           && echo --- && /bin/busybox find /data -type f -exec /bin/busybox sha256sum {} +";

/// What is meaningful to compare, per path (raw bytes): type, permission bits (with setuid), owner, and for
/// non-directories the size (a symlink's: its target's length) and the link count (2 for the hardlinked pair: the
/// engine made one inode of them). Directories' sizes and link counts depend on the filesystem (ext4, overlay,
/// vfs copies) and are left out. The owner is kiln's default, 0:0, whoever owns the source.
fn normalize_stat(line: &[u8]) -> (Vec<u8>, String) {
    let fields: Vec<&[u8]> = line.splitn(6, |&c| c == b'|').collect();
    assert_eq!(fields.len(), 6, "stat line {:?}", text(line));
    let kind = text(fields[0]).replace("regular empty file", "regular file");
    let (size, nlink) = if kind == "directory" {
        ("-".to_string(), "-".to_string())
    } else {
        (text(fields[3]), text(fields[4]))
    };
    let desc = format!(
        "{kind} mode={} owner={} size={size} links={nlink}",
        text(fields[1]),
        text(fields[2])
    );
    (fields[5].to_vec(), desc)
}

/// The same listing computed from the source tree, as if it were at /data.
fn expected_listing(root: &Path) -> (BTreeMap<Vec<u8>, String>, BTreeMap<Vec<u8>, String>) {
    let mut stats = BTreeMap::new();
    let mut sums = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap();
        let mut name = b"/data".to_vec();
        if !rel.as_os_str().is_empty() {
            name.push(b'/');
            name.extend_from_slice(rel.as_os_str().as_bytes());
        }
        let kind = if md.file_type().is_symlink() {
            "symbolic link"
        } else if md.is_dir() {
            "directory"
        } else {
            "regular file"
        };
        let line = format!(
            "{kind}|{:o}|0:0|{}|{}|",
            if md.file_type().is_symlink() {
                0o777
            } else {
                md.mode() & 0o7777
            },
            md.len(),
            md.nlink()
        );
        let mut line = line.into_bytes();
        line.extend_from_slice(&name);
        let (n, desc) = normalize_stat(&line);
        stats.insert(n, desc);
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if md.is_file() {
            sums.insert(name, sha256_hex(&fs::read(&p).unwrap()));
        }
    }
    (stats, sums)
}

fn container_listing(out: &[u8]) -> (BTreeMap<Vec<u8>, String>, BTreeMap<Vec<u8>, String>) {
    let mut stats = BTreeMap::new();
    let mut sums = BTreeMap::new();
    let mut in_sums = false;
    for line in out.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        if line == b"---" {
            in_sums = true;
        } else if in_sums {
            // "HEX  NAME"
            let (hex, name) = line.split_at(64);
            sums.insert(name[2..].to_vec(), text(hex));
        } else {
            let (n, desc) = normalize_stat(line);
            stats.insert(n, desc);
        }
    }
    (stats, sums)
}

fn show(m: &BTreeMap<Vec<u8>, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{v}  {}\n", String::from_utf8_lossy(k)))
        .collect()
}

#[test]
fn tricky_tree_listed_inside_the_container_equals_the_source() {
    let engines = started();
    if engines.is_empty() {
        return;
    }
    let t = tempdir();
    let tree = t.path().join("tree");
    tricky_tree(&tree);
    let bb = busybox_dir(&t.path().join("bb"));
    let reg = Registry::start(Mode::open());
    let image = format!("{}/kiln-it/tricky:v1", reg.host());
    build(&[
        tree.to_str().unwrap(),
        "--prefix",
        "/data",
        "--layer",
        &format!("{}:/bin", bb.display()),
        "--to",
        &format!("{}/kiln-it/tricky", reg.host()),
        "--version",
        "v1",
    ]);
    let (want_stats, want_sums) = expected_listing(&tree);
    assert!(
        want_stats.values().any(|d| d.contains("mode=4755"))
            && want_stats.values().any(|d| d.contains("links=2")),
        "the fixture has its setuid file and hardlinks:\n{}",
        show(&want_stats)
    );
    for e in &engines {
        e.pull_ok(&image);
        let out = e.run_ok(&image, None, &["/bin/busybox", "sh", "-c", LIST_SCRIPT]);
        let (stats, sums) = container_listing(&out);
        assert_eq!(
            show(&stats),
            show(&want_stats),
            "{e}: the tree inside the container (left) differs from the source (right)"
        );
        assert_eq!(
            show(&sums),
            show(&want_sums),
            "{e}: file contents inside the container (left) differ from the source (right)"
        );
    }
}
