//! Images on real bases keep the base's own entries (issue: layers on a base overrode its directories). A
//! Debian-12-like base made here — `/bin -> usr/bin`, `/tmp` 1777, a home owned by 1000 — and an app built on it
//! with `--prefix /bin` and layers under `/tmp` and the home: GNU tar lists exactly what the app's layers hold,
//! umoci unpacks the whole image, and a path the base has as a file is a usage error naming both.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::support::*;

/// The Debian-like base as an OCI layout `oci:DIR:v1`, built by kiln from a tree with a symlinked `/bin`.
fn debian_like_base(t: &Path) -> String {
    let root = t.join("rootfs");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/sh"), "#!fake shell\n").unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(root.join("etc"), "a file where a directory could be\n").unwrap();
    let home = t.join("home");
    fs::create_dir_all(home.join("app")).unwrap();
    fs::set_permissions(home.join("app"), fs::Permissions::from_mode(0o750)).unwrap();
    let base = format!("oci:{}:v1", t.join("base").display());
    kiln_ok(&[
        "build",
        root.to_str().unwrap(),
        "--layer",
        &format!("{}:/home,chown=1000:1000", home.display()),
        "--to",
        &base,
        "--platform",
        "linux/amd64",
    ]);
    base
}

/// `tar -tv` lines (`MODE UID/GID PATH`) of each layer above the base's, bottom first.
fn own_layers(layout: &Path, tag: &str, base_layers: usize) -> Vec<Vec<String>> {
    let image = format!("oci:{}:{tag}", layout.display());
    skopeo_layers(&[&image])[base_layers..]
        .iter()
        .map(|d| {
            let blob = layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"));
            tool_ok("tar", &["-tvzf", blob.to_str().unwrap(), "--numeric-owner"])
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    format!("{} {} {}", f[0], f[1], f[5..].join(" "))
                })
                .collect()
        })
        .collect()
}

#[test]
fn an_app_on_a_debian_like_base_keeps_the_base_s_directories() {
    let t = tempdir();
    let base = debian_like_base(t.path());
    let base_layers = skopeo_layers(&[&base]).len();
    let (app, cache, data) = (
        t.path().join("app"),
        t.path().join("cache"),
        t.path().join("data"),
    );
    for d in [&app, &cache, &data] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(app.join("hello.sh"), "echo hello\n").unwrap();
    fs::write(cache.join("c"), "cached\n").unwrap();
    fs::write(data.join("d"), "data\n").unwrap();
    let out = t.path().join("out");
    let built = kiln()
        .args([
            "build",
            app.to_str().unwrap(),
            "--base",
            &base,
            "--prefix",
            "/bin",
        ])
        .args(["--layer", &format!("{}:/tmp/cache", cache.display())])
        .args([
            "--layer",
            &format!("{}:/home/app/data,chown=1000:1000", data.display()),
        ])
        .args([
            "--to",
            &format!("oci:{}:v1", out.display()),
            "--split",
            "off",
        ])
        .output()
        .unwrap();
    let (so, se) = texts(&built);
    assert_eq!(code(&built), 0, "{se}");
    assert!(so.contains(":v1@sha256:"), "{so}");
    assert!(
        se.contains("--prefix /bin: a symlink in base image") && se.contains("leads to /usr/bin"),
        "{se}"
    );
    let layers = own_layers(&out, "v1", base_layers);
    assert_eq!(
        layers,
        [
            // /bin is the base's symlink: the file goes where it points, under the base's own directories.
            vec![
                "drwxr-xr-x 0/0 usr/".to_string(),
                "drwxr-xr-x 0/0 usr/bin/".into(),
                "-rw-r--r-- 0/0 usr/bin/hello.sh".into(),
            ],
            // /tmp keeps its sticky 1777.
            vec![
                "drwxrwxrwt 0/0 tmp/".to_string(),
                "drwxr-xr-x 0/0 tmp/cache/".into(),
                "-rw-r--r-- 0/0 tmp/cache/c".into(),
            ],
            // The home keeps its owner and mode; what the layer adds is the layer's.
            vec![
                "drwxr-xr-x 1000/1000 home/".to_string(),
                "drwxr-x--- 1000/1000 home/app/".into(),
                "drwxr-xr-x 1000/1000 home/app/data/".into(),
                "-rw-r--r-- 1000/1000 home/app/data/d".into(),
            ],
        ]
    );
    // The whole image as an unpacker sees it: /bin is still the link, and leads to the app's file.
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:v1", out.display()), &bundle);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_link(rootfs.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("bin/hello.sh")).unwrap(),
        "echo hello\n"
    );
    assert!(
        rootfs.join("bin/sh").exists(),
        "the base's /bin/sh is still there"
    );
    let tmp = fs::metadata(rootfs.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);

    // A path the base has as a file cannot become a directory; a directory of the build output where the base
    // has a symlink is refused too (it would replace the link): both exit 2 naming the base's path.
    let rootish = t.path().join("rootish");
    fs::create_dir_all(rootish.join("bin")).unwrap();
    fs::write(rootish.join("bin/tool"), "x\n").unwrap();
    for (args, says) in [
        (
            vec![app.to_str().unwrap(), "--prefix", "/etc/app"],
            "/etc in base image",
        ),
        (
            vec![rootish.to_str().unwrap(), "--prefix", "/"],
            "is a symlink to usr/bin",
        ),
    ] {
        let o = kiln()
            .arg("build")
            .args(&args)
            .args([
                "--base",
                &base,
                "--to",
                &format!("oci:{}:bad", out.display()),
            ])
            .output()
            .unwrap();
        let (_, se) = texts(&o);
        assert!(se.contains(says), "{args:?}: {se}");
        assert_ne!(code(&o), 0, "{args:?}: {se}");
    }
}

/// The same from a registry base (its layers fetched once into the cache and indexed there); a second build
/// reads the indexed tree from the cache and downloads nothing of the base.
#[test]
fn a_registry_base_is_read_once() {
    let reg = Registry::start(Mode::open());
    let t = tempdir();
    let base = debian_like_base(t.path());
    let remote = format!("{}/debianish:v1", reg.host());
    kiln_ok(&["push", &base, &remote]);
    let app = t.path().join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("hello.sh"), "echo hello\n").unwrap();
    let home = t.path().join("kiln-home");
    fs::create_dir_all(&home).unwrap();
    let build = |tag: &str| {
        let o = kiln_in(&home)
            .args([
                "build",
                app.to_str().unwrap(),
                "--base",
                &remote,
                "--prefix",
                "/bin",
            ])
            .args([
                "--to",
                &format!("oci:{}:{tag}", t.path().join("out").display()),
                "-v",
            ])
            .args(["--cache", t.path().join("cache").to_str().unwrap()])
            .output()
            .unwrap();
        let (_, se) = texts(&o);
        assert_eq!(code(&o), 0, "{se}");
        se
    };
    let first = build("v1");
    assert!(
        first.contains("read the file tree of base image"),
        "{first}"
    );
    let second = build("v2");
    assert!(
        !second.contains("read the file tree of base image"),
        "{second}"
    );
    // The config is read again (that is how a base is known); no layer of it is.
    let layers = skopeo_layers(&[&base]);
    let layer_gets = |se: &str| {
        se.lines()
            .filter(|l| l.contains("GET") && layers.iter().any(|d| l.contains(d.as_str())))
            .count()
    };
    assert_eq!(layer_gets(&first), 2, "{first}");
    assert_eq!(layer_gets(&second), 0, "{second}");
    let out = t.path().join("out");
    let listing = own_layers(&out, "v2", 2);
    assert_eq!(listing[0][1], "drwxr-xr-x 0/0 usr/bin/");
}
