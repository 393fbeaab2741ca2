//! Multi-platform builds: one image per `--platform os/arch=DIR`, published as an OCI image index, each on the
//! matching entry of a multi-platform base; checked with skopeo (`--override-arch`) and umoci.

use std::fs;
use std::path::Path;

use crate::support::*;

/// Two platform directories with different content and one shared layer directory.
fn platform_dirs(root: &Path) {
    for (arch, text) in [("amd64", "x86 binary\n"), ("arm64", "arm binary\n")] {
        let d = root.join(arch).join("bin");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("server"), text).unwrap();
    }
    fs::create_dir_all(root.join("shared")).unwrap();
    fs::write(root.join("shared/config.json"), "{}\n").unwrap();
}

fn build_args<'a>(root: &'a str, to: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "build",
        "--platform",
        &format!("linux/amd64={root}/amd64"),
        "--platform",
        &format!("linux/arm64={root}/arm64"),
        "--layer",
        &format!("{root}/shared:/etc/app"),
        "--prefix",
        "/app",
        "--to",
        to,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(args: &[String]) -> std::process::Output {
    kiln().args(args).output().unwrap()
}

fn ok(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn layers(image: &str, arch: &str, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["--override-arch", arch];
    args.extend_from_slice(flags);
    args.push(image);
    skopeo_layers(&args)
}

#[test]
fn two_platforms_into_a_layout_make_an_index() {
    let t = tempdir();
    let root = t.path().to_str().unwrap();
    platform_dirs(t.path());
    let layout = t.path().join("out");
    let to = format!("oci:{}", layout.display());
    let out = ok(&build_args(root, &to, &["--tag", "v1", "--output", "json"]));
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(res["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(res["platforms"].as_object().unwrap().len(), 2);

    let raw = tool_ok("skopeo", &["inspect", "--raw", &format!("{to}:v1")]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        res["digest"].as_str().unwrap()
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    let amd = layers(&format!("{to}:v1"), "amd64", &[]);
    let arm = layers(&format!("{to}:v1"), "arm64", &[]);
    assert_ne!(amd[0], arm[0], "each platform has its own main layer");
    assert_eq!(amd[1], arm[1], "the shared layer is the same blob");
    let blobs = fs::read_dir(layout.join("blobs/sha256")).unwrap().count();
    assert_eq!(
        blobs,
        3 + 2 + 2 + 1,
        "3 layers, 2 configs, 2 manifests, 1 index: the shared layer stored once"
    );

    // umoci unpacks each platform's manifest to its own tree.
    for (arch, text) in [("amd64", "x86 binary\n"), ("arm64", "arm binary\n")] {
        let tagged = format!(
            "oci:{}:{arch}",
            t.path().join(format!("single-{arch}")).display()
        );
        tool_ok(
            "skopeo",
            &[
                "copy",
                "--override-arch",
                arch,
                &format!("{to}:v1"),
                &tagged,
            ],
        );
        let bundle = t.path().join(format!("bundle-{arch}"));
        let image = format!(
            "{}:{arch}",
            t.path().join(format!("single-{arch}")).display()
        );
        umoci_unpack(&image, &bundle);
        assert_eq!(
            fs::read_to_string(bundle.join("rootfs/app/bin/server")).unwrap(),
            text
        );
        assert!(bundle.join("rootfs/etc/app/config.json").is_file());
    }
    // The same build again is the same index.
    let again: serde_json::Value = serde_json::from_str(&ok(&build_args(
        root,
        &format!("oci:{}", t.path().join("again").display()),
        &["--output", "json"],
    )))
    .unwrap();
    assert_eq!(again["digest"], res["digest"]);
}

#[test]
fn each_platform_builds_on_the_matching_base_entry() {
    let t = tempdir();
    let root = t.path().to_str().unwrap();
    platform_dirs(t.path());
    let base = t.path().join("base");
    let base_to = format!("oci:{}", base.display());
    ok(&build_args(root, &base_to, &["--tag", "v1"]));
    let app = t.path().join("app");
    fs::create_dir_all(app.join("amd")).unwrap();
    fs::create_dir_all(app.join("arm")).unwrap();
    fs::write(app.join("amd/app.txt"), "amd app\n").unwrap();
    fs::write(app.join("arm/app.txt"), "arm app\n").unwrap();
    let to = format!("oci:{}", t.path().join("out").display());
    let args: Vec<String> = [
        "build",
        "--platform",
        &format!("linux/amd64={}", app.join("amd").display()),
        "--platform",
        &format!("linux/arm64/v8={}", app.join("arm").display()),
        "--base",
        &format!("{base_to}:v1"),
        "--to",
        &to,
        "--tag",
        "v1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ok(&args);
    for arch in ["amd64", "arm64"] {
        let base_layers = layers(&format!("{base_to}:v1"), arch, &[]);
        let ours = layers(&format!("{to}:v1"), arch, &[]);
        assert_eq!(ours.len(), base_layers.len() + 1);
        assert_eq!(
            ours[..base_layers.len()],
            base_layers[..],
            "{arch} sits on the base's {arch} image"
        );
    }
    // A platform the base lacks: an error listing what it has, and nothing written.
    let missing: Vec<String> = [
        "build",
        "--platform",
        &format!("linux/amd64={}", app.join("amd").display()),
        "--platform",
        &format!("linux/s390x={}", app.join("arm").display()),
        "--base",
        &format!("{base_to}:v1"),
        "--to",
        &format!("oci:{}", t.path().join("never").display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(&missing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
    assert!(!t.path().join("never").exists());
}

#[test]
fn two_platforms_on_a_two_platform_base_in_a_registry() {
    let reg = Registry::start(Mode::open());
    let t = tempdir();
    let root = t.path().to_str().unwrap();
    platform_dirs(t.path());
    let cache = t.path().join("cache");
    let c = cache.to_str().unwrap();
    let base = format!("{}/base", reg.host());
    ok(&build_args(root, &base, &["--tag", "v1", "--cache", c]));
    let app = format!("{}/app", reg.host());
    let out = ok(&build_args(
        root,
        &app,
        &[
            "--tag",
            "v1",
            "--cache",
            c,
            "--base",
            &format!("{base}:v1"),
            "--output",
            "json",
        ],
    ));
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tls = ["--tls-verify=false"];
    let raw = tool_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{app}:v1"),
        ],
    );
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        res["digest"].as_str().unwrap()
    );
    assert!(raw.contains("application/vnd.oci.image.index.v1+json"));
    for arch in ["amd64", "arm64"] {
        let b = layers(&format!("docker://{base}:v1"), arch, &tls);
        let a = layers(&format!("docker://{app}:v1"), arch, &tls);
        assert_eq!(a[..b.len()], b[..], "{arch}: base layers first");
        assert_eq!(a.len(), b.len() + 2);
    }
    // And back into a layout with skopeo, arm64 unpacks to the arm tree.
    let local = format!("oci:{}:arm", t.path().join("copy").display());
    tool_ok(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
            &format!("docker://{app}:v1"),
            &local,
        ],
    );
    let bundle = t.path().join("bundle");
    let image = format!("{}:arm", t.path().join("copy").display());
    umoci_unpack(&image, &bundle);
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/app/bin/server")).unwrap(),
        "arm binary\n"
    );
}

#[test]
fn kiln_toml_declares_the_platforms() {
    let t = tempdir();
    platform_dirs(t.path());
    fs::write(
        t.path().join("kiln.toml"),
        "platforms = [\"linux/amd64=amd64\", \"linux/arm64=arm64\"]\nprefix = \"/app\"\nto = \"oci:out\"\n\
         [[layer]]\nsrc = \"shared\"\ndest = \"/etc/app\"\n",
    )
    .unwrap();
    let out = kiln()
        .current_dir(t.path())
        .args(["build", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(res["mediaType"], "application/vnd.oci.image.index.v1+json");
    // The same as the flags say it.
    let root = t.path().to_str().unwrap();
    let flags: serde_json::Value = serde_json::from_str(&ok(&build_args(
        root,
        &format!("oci:{}", t.path().join("flags").display()),
        &["--output", "json"],
    )))
    .unwrap();
    assert_eq!(res["digest"], flags["digest"]);
}
