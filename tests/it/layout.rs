//! `kiln build` into local OCI layouts, checked with independent tools (skopeo, umoci, oci-image-tool, GNU tar)
//! and for determinism, plus every bad input: a clear error, the right exit code, and an untouched layout.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::*;

const GOLDEN: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/golden.txt"));

fn golden(key: &str) -> String {
    GOLDEN
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in testdata/golden.txt"))
        .trim()
        .to_string()
}

/// Build the fixture into `layout` with the flags the golden digests were recorded with.
fn build_fixture(src: &Path, layout: &Path, extra: &[&str]) -> String {
    let to = format!("oci:{}", layout.display());
    let mut args = vec![
        "build",
        src.to_str().unwrap(),
        "--to",
        &to,
        "--tag",
        "v1",
        "--prefix",
        "/app",
        "--entrypoint",
        "/app/bin/hello",
        "--env",
        "GREETING=hello",
        "--label",
        "org.opencontainers.image.title=fixture",
        "--expose",
        "8080",
        "--platform",
        "linux/amd64",
    ];
    args.extend_from_slice(extra);
    let out = kiln_ok(&args);
    let line = out.lines().next().unwrap().to_string();
    let digest = line.rsplit_once('@').unwrap().1.to_string();
    assert_eq!(line, format!("{to}:v1@{digest}"));
    digest
}

#[test]
fn build_is_valid_and_unpacks_to_the_source_tree() {
    let t = tempdir();
    let src = fixture(t.path());
    let layout = t.path().join("layout");
    let digest = build_fixture(&src, &layout, &[]);

    // skopeo reads it and agrees on the digest of the exact manifest bytes.
    let raw = tool_ok(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:v1", layout.display())],
    );
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);
    let info = tool_ok(
        "skopeo",
        &["inspect", &format!("oci:{}:v1", layout.display())],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");

    // The layout is valid per the OCI image-spec validator.
    tool_ok(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=v1",
            layout.to_str().unwrap(),
        ],
    );

    // umoci unpacks a tree identical to the source: content, modes, symlink targets, hardlinks.
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:v1", layout.display()), &bundle);
    let rootfs = bundle.join("rootfs/app");
    assert_eq!(tree_listing(&src), tree_listing(&rootfs));
    let a = fs::metadata(rootfs.join("bin/hello")).unwrap();
    let b = fs::metadata(rootfs.join("bin/hello-again")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hardlink kept as a hardlink");
    assert_eq!(
        fs::metadata(rootfs.join("bin/suid-tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
}

#[test]
fn gnu_tar_reads_every_entry_back_exactly() {
    let t = tempdir();
    let src = fixture(t.path());
    let layout = t.path().join("layout");
    build_fixture(&src, &layout, &["--compression", "none"]);
    let manifest: serde_json::Value = serde_json::from_str(&tool_ok(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:v1", layout.display())],
    ))
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let out = t.path().join("x");
    fs::create_dir(&out).unwrap();
    tool_ok(
        "tar",
        &["-xpf", blob.to_str().unwrap(), "-C", out.to_str().unwrap()],
    );
    assert_eq!(tree_listing(&src), tree_listing(&out.join("app")));
    let listing = tool_ok("tar", &["--numeric-owner", "-tvf", blob.to_str().unwrap()]);
    for line in listing.lines() {
        assert!(line.contains(" 0/0 "), "owner normalized: {line}");
        assert!(
            line.contains("2023-11-14 22:13"),
            "mtime from SOURCE_DATE_EPOCH: {line}"
        );
    }
}

#[test]
fn same_input_same_digest_across_umask_mtimes_and_runs_golden() {
    let t = tempdir();
    let a = fixture(&t.path().join("a"));
    let b = fixture_with_umask(&t.path().join("b"), 0o077);
    touch_all(&b, 1_234_567_890);
    assert_eq!(tree_listing(&a), tree_listing(&b), "fixtures differ");
    let da = build_fixture(&a, &t.path().join("l1"), &[]);
    let db = build_fixture(&b, &t.path().join("l2"), &[]);
    let da2 = build_fixture(&a, &t.path().join("l3"), &[]);
    assert_eq!(da, db);
    assert_eq!(da, da2);
    assert_eq!(
        da,
        golden("gzip"),
        "golden digest moved: update testdata/golden.txt only for a deliberate change"
    );
    let dz = build_fixture(&a, &t.path().join("l4"), &["--compression", "zstd"]);
    assert_eq!(dz, golden("zstd"));
}

/// Every file under a layout with its content hash: "unchanged" means this map is equal.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<Vec<u8>, String> {
    if dir.exists() {
        tree_listing(dir)
    } else {
        Default::default()
    }
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let t = tempdir();
    let src = fixture(t.path());
    let layout = t.path().join("layout");
    build_fixture(&src, &layout, &[]);
    let to = format!("oci:{}", layout.display());
    let s = src.to_str().unwrap();
    let loop_dir = t.path().join("loop");
    std::os::unix::fs::symlink(&loop_dir, &loop_dir).unwrap();
    let with_fifo = t.path().join("fifo-src");
    fs::create_dir(&with_fifo).unwrap();
    fs::write(with_fifo.join("ok.txt"), "x").unwrap();
    tool_ok("mkfifo", &[with_fifo.join("pipe").to_str().unwrap()]);
    let missing = t.path().join("missing");
    let base_missing = format!("oci:{}:v1", t.path().join("nope").display());
    let base_badtag = format!("{to}:v9");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec![missing.to_str().unwrap()], 1, "missing"),
        (vec![loop_dir.to_str().unwrap()], 1, "loop"),
        (vec![with_fifo.to_str().unwrap()], 1, "pipe"),
        (vec![s, "--layer", "node_modules"], 2, "SRC:DEST"),
        (vec![s, "--prefix", "app"], 2, "absolute"),
        (vec![s, "--prefix", "/app/../.."], 2, ".."),
        (vec![s, "--layer", "./x:/a/../../etc"], 2, ".."),
        (vec![s, "--tag=-bad"], 2, "-bad"),
        (vec![s, "--tag", "a/b"], 2, "a/b"),
        (vec![s, "--env", "NOVALUE"], 2, "NOVALUE"),
        (vec![s, "--label", "=x"], 2, "=x"),
        (vec![s, "--expose", "99999"], 2, "99999"),
        (vec![s, "--expose", "80/icmp"], 2, "80/icmp"),
        (vec![s, "--platform", "linux"], 2, "os/arch"),
        (vec![s, "--compression-level", "12"], 2, "1-9"),
        (vec![s, "--base", &base_missing], 1, "nope"),
        (vec![s, "--base", &base_badtag], 1, "v9"),
        (vec![s, "--chown", "root"], 2, "UID:GID"),
    ];
    for (args, code, needle) in cases {
        for dest in [
            to.clone(),
            format!("oci:{}", t.path().join("fresh").display()),
        ] {
            let before = snapshot(&layout);
            let mut full = vec!["build"];
            full.extend(args.iter().copied());
            full.extend(["--to", &dest, "--tag", "v2"]);
            let out = kiln_out(&full);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{full:?}: {err}");
            assert!(
                err.contains(needle),
                "{full:?}: message should name {needle:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            assert!(out.stdout.is_empty(), "nothing on stdout on failure");
            assert_eq!(before, snapshot(&layout), "{full:?} changed the layout");
            assert!(
                !t.path().join("fresh").exists(),
                "{full:?} left a new layout behind"
            );
        }
    }
}

#[test]
fn a_tag_is_never_moved_to_another_image() {
    let t = tempdir();
    let src = fixture(t.path());
    let layout = t.path().join("layout");
    let first = build_fixture(&src, &layout, &[]);
    fs::write(src.join("public/index.html"), "changed\n").unwrap();
    let before = snapshot(&layout);
    let out = kiln_out(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("oci:{}", layout.display()),
        "--tag",
        "v1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("v1") && err.contains(&first), "{err}");
    assert_eq!(before, snapshot(&layout), "refused build wrote nothing");
    // The same image again is not a conflict.
    fs::write(
        src.join("public/index.html"),
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/app/public/index.html"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(build_fixture(&src, &layout, &[]), first);
}

#[test]
fn builds_on_a_base_from_a_layout() {
    let t = tempdir();
    let src = fixture(t.path());
    let base_layout = t.path().join("base");
    let base_digest = build_fixture(&src, &base_layout, &[]);
    let extra = t.path().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::write(extra.join("more.txt"), "more\n").unwrap();
    let layout = t.path().join("app");
    let base = format!("oci:{}:v1", base_layout.display());
    let out = kiln_ok(&[
        "build",
        extra.to_str().unwrap(),
        "--to",
        &format!("oci:{}", layout.display()),
        "--base",
        &base,
        "--prefix",
        "/srv",
        "--tag",
        "v1",
        "--env",
        "GREETING=hi",
        "--env",
        "MODE=prod",
        "--output",
        "json",
    ]);
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(res["layers"].as_array().unwrap().len(), 2);
    assert_eq!(res["platform"], "linux/amd64");
    let json = kiln_ok(&[
        "inspect",
        &format!("oci:{}", layout.display()),
        "--output",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ann = &doc["manifest"]["annotations"];
    assert_eq!(ann["org.opencontainers.image.base.name"], base.as_str());
    assert_eq!(
        ann["org.opencontainers.image.base.digest"],
        base_digest.as_str()
    );
    let env: Vec<&str> = doc["config"]["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(env, ["GREETING=hi", "MODE=prod"]);
    assert_eq!(doc["config"]["config"]["Entrypoint"][0], "/app/bin/hello");
    assert_eq!(doc["config"]["history"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // umoci sees both layers merged.
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:v1", layout.display()), &bundle);
    assert!(bundle.join("rootfs/app/bin/hello").is_file());
    assert!(bundle.join("rootfs/srv/more.txt").is_file());
}

#[test]
fn extra_layers_and_text_output() {
    let t = tempdir();
    let src = fixture(t.path());
    let deps = t.path().join("deps");
    fs::create_dir_all(deps.join("left-pad")).unwrap();
    fs::write(deps.join("left-pad/index.js"), "module.exports = 1\n").unwrap();
    let layout = t.path().join("l");
    let to = format!("oci:{}", layout.display());
    let out = kiln_ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &to,
        "--tag",
        "a",
        "--tag",
        "b",
        "--layer",
        &format!("{}:/app/node_modules", deps.display()),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(&format!("{to}:a@sha256:")));
    assert!(lines[1].starts_with(&format!("{to}:b@sha256:")));
    let text = kiln_ok(&["inspect", &format!("{to}:a")]);
    assert!(text.contains("node_modules"), "{text}");
    assert_eq!(
        text.matches("application/vnd.oci.image.layer.v1.tar+gzip")
            .count(),
        2,
        "{text}"
    );
    // Untagged builds print repository@digest.
    let out = kiln_ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("oci:{}", t.path().join("u").display()),
    ]);
    assert!(
        out.trim()
            .starts_with(&format!("oci:{}@sha256:", t.path().join("u").display()))
    );
}

#[test]
fn unchanged_layers_are_reused_and_changed_ones_rebuilt_even_with_old_mtimes() {
    let t = tempdir();
    let src = fixture(t.path());
    let deps = t.path().join("deps");
    fs::create_dir_all(deps.join("pkg")).unwrap();
    fs::write(deps.join("pkg/index.js"), "module.exports = 1\n").unwrap();
    let cache = t.path().join("cache");
    let build = |layout: &str| {
        let out = kiln()
            .args([
                "build",
                src.to_str().unwrap(),
                "--to",
                &format!("oci:{}", t.path().join(layout).display()),
            ])
            .args([
                "--layer",
                &format!("{}:/deps", deps.display()),
                "--cache",
                cache.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (first, err) = build("l1");
    assert!(!err.contains("reused"), "{err}");
    // Same input: both layers come from the cache, same image.
    let (again, err) = build("l1");
    assert_eq!(
        first.rsplit_once('@').unwrap().1,
        again.rsplit_once('@').unwrap().1
    );
    assert_eq!(err.matches("unchanged, reused").count(), 2, "{err}");
    // Another layout gets the blobs too (from the layout the cache record points at, or rebuilt).
    let (other, _) = build("l2");
    assert_eq!(
        first.rsplit_once('@').unwrap().1,
        other.rsplit_once('@').unwrap().1
    );
    // Same size, mtime put back: the inode's ctime still changes, so the layer is rebuilt.
    let f = src.join("public/index.html");
    let old = fs::metadata(&f).unwrap();
    let mut content = fs::read(&f).unwrap();
    content[0] ^= 0x20;
    fs::write(&f, &content).unwrap();
    tool_ok(
        "touch",
        &["-d", &format!("@{}", old.mtime()), f.to_str().unwrap()],
    );
    let (changed, err) = build("l1");
    assert_ne!(
        first.rsplit_once('@').unwrap().1,
        changed.rsplit_once('@').unwrap().1
    );
    assert_eq!(
        err.matches("unchanged, reused").count(),
        1,
        "only deps/ reused: {err}"
    );
}

#[test]
fn a_layer_can_have_its_own_owner_and_file_mode() {
    let t = tempdir();
    let src = fixture(t.path());
    let bin = t.path().join("tools");
    fs::create_dir_all(bin.join("sub")).unwrap();
    fs::write(bin.join("sub/run"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(bin.join("sub/run"), fs::Permissions::from_mode(0o600)).unwrap();
    let layout = t.path().join("l");
    kiln_ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("oci:{}:v1", layout.display()),
        "--compression",
        "none",
        "--layer",
        &format!("{}:/opt/tools,chown=1000:1001,mode=0755", bin.display()),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&tool_ok(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:v1", layout.display())],
    ))
    .unwrap();
    let blob = |i: usize| {
        let d = manifest["layers"][i]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        layout.join("blobs/sha256").join(d)
    };
    let tools = tool_ok(
        "tar",
        &["--numeric-owner", "-tvf", blob(1).to_str().unwrap()],
    );
    assert!(
        tools
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x 1000/1001") && l.ends_with("opt/tools/sub/run")),
        "{tools}"
    );
    assert!(
        tools
            .lines()
            .any(|l| l.starts_with("drwxr-xr-x 1000/1001") && l.ends_with("opt/tools/sub/")),
        "{tools}"
    );
    // The main layer keeps the build's owner and the files' own modes.
    let main = tool_ok(
        "tar",
        &["--numeric-owner", "-tvf", blob(0).to_str().unwrap()],
    );
    assert!(
        main.lines()
            .any(|l| l.starts_with("-rw------- 0/0") && l.ends_with("app/secret.key"))
            || main.contains("-rw------- 0/0"),
        "{main}"
    );
    let out = kiln_out(&[
        "build",
        src.to_str().unwrap(),
        "--layer",
        &format!("{}:/x,mode=999", bin.display()),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_directory_is_split_into_layers_by_content_and_a_change_rebuilds_one() {
    let t = tempdir();
    let src = t.path().join("src");
    // A 5 MiB "binary" with a hardlink beside it, and a web/ of 700 small files (~9 MB of tar).
    fs::create_dir_all(src.join("bin")).unwrap();
    let mut bin = Vec::with_capacity(5 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while bin.len() < 5 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bin.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(src.join("bin/server"), &bin).unwrap();
    fs::hard_link(src.join("bin/server"), src.join("bin/server-link")).unwrap();
    for i in 0..700 {
        let d = src.join(format!("web/d{}", i % 7));
        fs::create_dir_all(&d).unwrap();
        let body = format!("export const v{i} = {:?};\n", "x".repeat(40)).repeat(300);
        fs::write(d.join(format!("m{i:03}.js")), body).unwrap();
    }
    let cache = t.path().join("cache");
    let build = |layout: &str, extra: &[&str]| {
        let to = format!("oci:{}:v1", t.path().join(layout).display());
        let mut args = vec!["build", src.to_str().unwrap(), "--to", &to, "--force-tag"];
        args.extend_from_slice(&["--cache", cache.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let out = kiln_out(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (to, err)
    };

    let (split, err) = build("split", &["--split", "4MiB"]);
    let layers = skopeo_layers(&[&split]);
    assert!(layers.len() >= 3, "{layers:?}\n{err}");
    // The binary has a layer of its own (with its hardlink): one layer is about its size.
    assert!(err.contains("5.0 MiB of tar"), "{err}");
    tool_ok(
        "oci-image-tool",
        &["validate", "--type", "image", "--ref", "name=v1"]
            .into_iter()
            .chain([t.path().join("split").to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    // Applied in order, the layers give exactly the source tree, hardlink included.
    let bundle = t.path().join("bundle");
    umoci_unpack(split.strip_prefix("oci:").unwrap(), &bundle);
    assert_eq!(tree_listing(&src), tree_listing(&bundle.join("rootfs")));
    let a = fs::metadata(bundle.join("rootfs/bin/server")).unwrap();
    let b = fs::metadata(bundle.join("rootfs/bin/server-link")).unwrap();
    assert_eq!(a.ino(), b.ino(), "the hardlink stayed with its file");

    // --split off: one layer, the same tree.
    let (off, _) = build("off", &["--split", "off"]);
    assert_eq!(skopeo_layers(&[&off]).len(), 1);
    let bundle = t.path().join("bundle-off");
    umoci_unpack(off.strip_prefix("oci:").unwrap(), &bundle);
    assert_eq!(tree_listing(&src), tree_listing(&bundle.join("rootfs")));

    // Deterministic: a fresh cache and layout give the same layers.
    let (again, _) = build("again", &["--split", "4MiB", "--no-cache"]);
    assert_eq!(skopeo_layers(&[&again]), layers);

    // One file rewritten (a new inode, like a bundler's output): only its layer is compressed again.
    let f = src.join("web/d2/m345.js");
    let mut body = fs::read(&f).unwrap();
    body[10] ^= 1;
    fs::remove_file(&f).unwrap();
    fs::write(&f, &body).unwrap();
    let (changed, err) = build("split", &["--split", "4MiB"]);
    assert!(err.contains("(1 compressed,"), "{err}");
    let after = skopeo_layers(&[&changed]);
    assert_eq!(after.len(), layers.len());
    let differ = after.iter().zip(&layers).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 1, "{layers:?}\n{after:?}");
    // And within that layer only the gzip blocks around the file were compressed again: the others were copied
    // from the layer's last build — giving exactly the bytes a build from scratch gives.
    assert!(
        err.contains("compressed blocks copied from its last build"),
        "{err}"
    );
    let (fresh, _) = build("fresh", &["--split", "4MiB", "--no-cache"]);
    assert_eq!(skopeo_layers(&[&fresh]), after);

    // A file that grows by a line shifts everything after it in the tar: the blocks still start at the same
    // entries, so they are still reused, and the bytes are still those of a build from scratch.
    let f = src.join("web/d1/m001.js");
    let mut body = fs::read(&f).unwrap();
    body.extend_from_slice(b"export const more = 2;\n");
    fs::remove_file(&f).unwrap();
    fs::write(&f, &body).unwrap();
    let (grown, err) = build("split", &["--split", "4MiB"]);
    assert!(
        err.contains("compressed blocks copied from its last build"),
        "{err}"
    );
    let after = skopeo_layers(&[&grown]);
    let (fresh, _) = build("fresh2", &["--split", "4MiB", "--no-cache"]);
    assert_eq!(skopeo_layers(&[&fresh]), after);

    // A file added: boundaries move only next to it, most layers keep their digests.
    fs::write(src.join("web/d2/m345b.js"), "export const added = 1;\n").unwrap();
    let (added, _) = build("split", &["--split", "4MiB"]);
    let now = skopeo_layers(&[&added]);
    let kept = now.iter().filter(|l| after.contains(l)).count();
    assert!(kept + 2 >= after.len(), "{after:?}\n{now:?}");
}
