//! kiln.toml (a build's flags in a file) and docker-archive targets, checked with skopeo and umoci.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support::*;

const FULL_TOML: &str = r#"# a complete kiln.toml
dir = "src"
to = "oci:from-file"
tags = ["v1"]
prefix = "/app"
entrypoint = ["/app/bin/hello"]
cmd = ["--port", "8080"]
env = { GREETING = "hello", MODE = "prod" }
workdir = "/app"
user = "65534"
labels = { "org.opencontainers.image.title" = "fixture" }
annotations = { "org.example.note" = "from kiln.toml" }
expose = [8080, "53/udp"]
platforms = ["linux/amd64"]
compression = "gzip"
compression-level = 6
chown = "1000:1000"

[[layer]]
src = "src/public"
dest = "/srv/static"
"#;

/// The flags that say what FULL_TOML says (paths absolute: run from elsewhere).
fn full_flags(root: &Path, to: &str) -> Vec<String> {
    let src = root.join("src");
    let mut v: Vec<String> = vec!["build".into(), src.display().to_string()];
    for (f, val) in [
        ("--to", to.to_string()),
        ("--tag", "v1".into()),
        ("--prefix", "/app".into()),
        ("--entrypoint", "/app/bin/hello".into()),
        ("--cmd", "--port".into()),
        ("--cmd", "8080".into()),
        ("--env", "GREETING=hello".into()),
        ("--env", "MODE=prod".into()),
        ("--workdir", "/app".into()),
        ("--user", "65534".into()),
        ("--label", "org.opencontainers.image.title=fixture".into()),
        ("--annotation", "org.example.note=from kiln.toml".into()),
        ("--expose", "8080".into()),
        ("--expose", "53/udp".into()),
        ("--platform", "linux/amd64".into()),
        ("--compression", "gzip".into()),
        ("--compression-level", "6".into()),
        ("--chown", "1000:1000".into()),
        (
            "--layer",
            format!("{}:/srv/static", src.join("public").display()),
        ),
    ] {
        v.push(f.into());
        v.push(val);
    }
    v
}

fn kiln_in_dir(dir: &Path, args: &[&str]) -> Output {
    kiln().current_dir(dir).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kiln failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn digest_of(line: &str) -> String {
    line.trim().rsplit_once('@').unwrap().1.to_string()
}

#[test]
fn toml_builds_the_same_image_as_the_flags() {
    let t = tempdir();
    fixture(t.path());
    fs::write(t.path().join("kiln.toml"), FULL_TOML).unwrap();
    let from_file = ok(kiln_in_dir(t.path(), &["build"]));
    assert!(
        from_file.starts_with("oci:from-file:v1@sha256:"),
        "{from_file}"
    );
    assert!(
        t.path().join("from-file/index.json").is_file(),
        "to is relative to the file"
    );

    let elsewhere = tempdir();
    let to = format!("oci:{}", t.path().join("from-flags").display());
    let flags = full_flags(t.path(), &to);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let from_flags = ok(kiln_in_dir(elsewhere.path(), &flags));
    assert_eq!(digest_of(&from_file), digest_of(&from_flags));

    // --config from another directory: paths stay relative to the file.
    let cfg = t.path().join("kiln.toml");
    let via_config = ok(kiln_in_dir(
        elsewhere.path(),
        &["build", "--config", cfg.to_str().unwrap()],
    ));
    assert_eq!(digest_of(&via_config), digest_of(&from_file));
}

#[test]
fn flags_override_the_file() {
    let t = tempdir();
    fixture(t.path());
    fs::write(t.path().join("kiln.toml"), FULL_TOML).unwrap();
    let out = ok(kiln_in_dir(
        t.path(),
        &[
            "build",
            "--entrypoint",
            "/bin/other",
            "--tag",
            "v2",
            "--env",
            "ONLY=1",
            "--to",
            "oci:over",
        ],
    ));
    assert!(out.starts_with("oci:over:v2@sha256:"), "{out}");
    assert_eq!(
        out.lines().count(),
        1,
        "--tag replaces the file's tags: {out}"
    );
    let info = tool_ok(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:v2", t.path().join("over").display()),
        ],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["config"]["Entrypoint"],
        serde_json::json!(["/bin/other"])
    );
    assert_eq!(info["config"]["Env"], serde_json::json!(["ONLY=1"]));
    assert_eq!(
        info["config"]["User"], "65534",
        "what no flag said comes from the file"
    );
}

#[test]
fn toml_errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "dir = \"src\"\nentrypont = [\"/x\"]\n",
            "kiln.toml:2: key \"entrypont\": unknown key (did you mean \"entrypoint\"?)",
        ),
        (
            "dir = \"src\"\n\ntags = \"v1\"\n",
            "kiln.toml:3: key \"tags\": expected an array of strings, found string",
        ),
        (
            "dir = \"src\"\nexpose = [\"http\"]\n",
            "kiln.toml:2: key \"expose\": invalid value \"http\"",
        ),
        (
            "dir = \"src\"\ncompression = \"gzip\"\ncompression-level = 15\n",
            "kiln.toml:3: key \"compression-level\": 15: conflicts with compression = \"gzip\"",
        ),
        (
            "dir = \"src\"\ncompression = \"brotli\"\n",
            "kiln.toml:2: key \"compression\": invalid value \"brotli\"",
        ),
        (
            "dir = \"src\"\nworkdir = \"app\"\n",
            "kiln.toml:2: key \"workdir\"",
        ),
        (
            "dir = \"src\"\nversion = \"semver:huge\"\n",
            "kiln.toml:2: key \"version\"",
        ),
        (
            "dir = \"src\"\nplatforms = [\"linux/amd64\", \"linux\"]\n",
            "kiln.toml:2: key \"platforms\"",
        ),
        (
            "dir = \"src\"\n[[layer]]\nsrc = \"src/public\"\ndst = \"/x\"\n",
            "kiln.toml:4: key \"layer[1].dst\": unknown key (did you mean \"dest\"?)",
        ),
        (
            "dir = \"src\"\n[[layer]]\nsrc = \"src/public\"\ndest = \"/x\"\nmode = \"0999\"\n",
            "kiln.toml:5: key \"layer[1].mode\": invalid value",
        ),
        ("to = \"oci:x\"\n", "kiln.toml:1: key \"dir\": missing"),
        ("dir = \n", "kiln.toml:1:"),
    ];
    for (text, want) in cases {
        let t = tempdir();
        fixture(t.path());
        fs::write(t.path().join("kiln.toml"), text).unwrap();
        let out = kiln_in_dir(t.path(), &["build"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{text:?}: want {want:?} in:\n{stderr}"
        );
        assert!(
            !t.path().join("kiln-images").exists(),
            "nothing written for {text:?}"
        );
    }
}

#[test]
fn no_dir_and_no_kiln_toml_is_a_usage_error() {
    let t = tempdir();
    let out = kiln_in_dir(t.path(), &["build"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kiln.toml"));
    let out = kiln_in_dir(t.path(), &["build", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Build the fixture into a docker archive; returns the printed line.
fn build_archive(src: &Path, target: &str, cache: &Path) -> String {
    let cache = cache.display().to_string();
    let args = [
        "build",
        src.to_str().unwrap(),
        "--prefix",
        "/app",
        "--entrypoint",
        "/app/bin/hello",
        "--platform",
        "linux/amd64",
        "--to",
        target,
        "--cache",
        &cache,
    ];
    kiln_ok(&args).trim().to_string()
}

fn unpack_compare(layout: &Path, tag: &str, src: &Path, bundle: &Path) {
    umoci_unpack(&format!("{}:{tag}", layout.display()), bundle);
    assert_eq!(tree_listing(src), tree_listing(&bundle.join("rootfs/app")));
}

#[test]
fn docker_archive_round_trips_through_skopeo_and_is_deterministic() {
    let t = tempdir();
    let src = fixture(t.path());
    let a = t.path().join("a.tar");
    let line = build_archive(
        &src,
        &format!("docker-archive:{}:app:v1", a.display()),
        &t.path().join("c1"),
    );
    let digest = digest_of(&line);
    assert_eq!(
        line,
        format!("docker-archive:{}:app:v1@{digest}", a.display())
    );

    // skopeo finds the image by its name, and its config is kiln's (the manifest kiln printed is in the archive).
    let raw = tool_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("docker-archive:{}:app:v1", a.display()),
        ],
    );
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let ours = tool_ok(
        "tar",
        &[
            "xOf",
            a.to_str().unwrap(),
            &format!("blobs/sha256/{}", &digest[7..]),
        ],
    );
    assert_eq!(sha256_digest(ours.as_bytes()), digest);
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(raw["config"]["digest"], ours["config"]["digest"]);
    let names = tool_ok("tar", &["xOf", a.to_str().unwrap(), "manifest.json"]);
    assert!(names.contains("\"RepoTags\":[\"app:v1\"]"), "{names}");

    let layout = t.path().join("oci");
    tool_ok(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--quiet",
            &format!("docker-archive:{}", a.display()),
            &format!("oci:{}:t", layout.display()),
        ],
    );
    unpack_compare(&layout, "t", &src, &t.path().join("bundle"));

    // Same input, another cache and path: the same bytes. An existing file is exit 3 unless --force-tag.
    let b = t.path().join("b.tar");
    build_archive(
        &src,
        &format!("docker-archive:{}:app:v1", b.display()),
        &t.path().join("c2"),
    );
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "archives differ"
    );
    let out = kiln_out(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("docker-archive:{}", a.display()),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(a.to_str().unwrap()));
    kiln_ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("docker-archive:{}", a.display()),
        "--force-tag",
    ]);
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.contains(".tmp").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn push_from_docker_archive_to_a_registry() {
    let reg = Registry::start(Mode::open());
    let t = tempdir();
    let src = fixture(t.path());
    let a = t.path().join("a.tar");
    let built = digest_of(&build_archive(
        &src,
        &format!("docker-archive:{}:app:v1", a.display()),
        &t.path().join("c"),
    ));

    let dest = format!("{}/team/app:v1", reg.host());
    let out = kiln_ok(&["push", &format!("docker-archive:{}", a.display()), &dest]);
    let pushed = digest_of(&out);
    assert_eq!(out.trim(), format!("{dest}@{pushed}"));
    assert_eq!(
        pushed, built,
        "kiln's own archive carries its OCI manifest: the digest is the build's"
    );
    assert_eq!(
        sha256_digest(skopeo_inspect_raw(&reg, "team/app:v1").as_bytes()),
        pushed
    );

    let layout = t.path().join("back");
    let from = format!("docker://{}/team/app:v1", reg.host());
    let to = format!("oci:{}:v1", layout.display());
    skopeo(&["copy", "--quiet", "--src-tls-verify=false", &from, &to]);
    unpack_compare(&layout, "v1", &src, &t.path().join("bundle"));

    // An archive written by another tool (skopeo: uncompressed layers, no OCI index) gets a manifest made from
    // manifest.json, with the exact config and plain-tar layers.
    let foreign = t.path().join("skopeo.tar");
    skopeo(&[
        "copy",
        "--quiet",
        &to,
        &format!("docker-archive:{}:other:v9", foreign.display()),
    ]);
    let dest2 = format!("{}/other:v9", reg.host());
    let out = kiln_ok(&[
        "push",
        &format!("docker-archive:{}:other:v9", foreign.display()),
        &dest2,
    ]);
    let raw = skopeo_inspect_raw(&reg, "other:v9");
    assert_eq!(sha256_digest(raw.as_bytes()), digest_of(&out));
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let back2 = t.path().join("back2");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{dest2}"),
        &format!("oci:{}:v9", back2.display()),
    ]);
    unpack_compare(&back2, "v9", &src, &t.path().join("bundle2"));
}

#[test]
fn podman_loads_the_archive() {
    let t = tempdir();
    let src = fixture(t.path());
    let a = t.path().join("app.tar");
    let line = build_archive(
        &src,
        &format!("docker-archive:{}:team/app:v1", a.display()),
        &t.path().join("cache"),
    );
    // podman with its own storage under the temp dir: nothing touches the machine's images.
    let (root, run) = (t.path().join("podman-root"), t.path().join("podman-run"));
    let podman = |args: &[&str]| {
        let mut full = vec![
            "--root",
            root.to_str().unwrap(),
            "--runroot",
            run.to_str().unwrap(),
            "--storage-driver",
            "vfs",
        ];
        full.extend_from_slice(args);
        tool_ok("podman", &full)
    };
    let loaded = podman(&["load", "-i", a.to_str().unwrap()]);
    assert!(loaded.contains("team/app:v1"), "{loaded}");
    // The image podman stored is ours: its ID is our config's digest, its layers our diff_ids.
    let manifest: serde_json::Value = serde_json::from_str(&tool_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("docker-archive:{}", a.display()),
        ],
    ))
    .unwrap_or_else(|_| panic!("{line}"));
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let id = podman(&[
        "image",
        "inspect",
        "docker.io/team/app:v1",
        "--format",
        "{{.Id}}",
    ]);
    assert_eq!(id.trim(), config_digest);
}

#[test]
fn the_archive_is_an_oci_archive_found_by_its_tag_as_docker_saves_it() {
    let t = tempdir();
    let src = fixture(t.path());
    let a = t.path().join("app.tar");
    let line = build_archive(
        &src,
        &format!(
            "docker-archive:{}:registry.example.com/team/app:v1",
            a.display()
        ),
        &t.path().join("cache"),
    );
    let digest = digest_of(&line);
    // As Docker 25+ writes index.json: the tag in ref.name, the full name in containerd's annotation (which
    // docker load and podman load read).
    let index: serde_json::Value =
        serde_json::from_str(&tool_ok("tar", &["xOf", a.to_str().unwrap(), "index.json"])).unwrap();
    let ann = &index["manifests"][0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], "v1", "{index}");
    assert_eq!(
        ann["io.containerd.image.name"],
        "registry.example.com/team/app:v1"
    );
    // skopeo's oci-archive transport finds the image by that tag.
    let raw = tool_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}:v1", a.display()),
        ],
    );
    assert_eq!(sha256_digest(raw.as_bytes()), digest);
}
