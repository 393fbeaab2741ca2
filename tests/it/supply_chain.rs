//! `kiln build` attaches an SBOM and SLSA provenance to every image as OCI 1.1 referrers (issue 21), end to end:
//! a tree with npm, Python, Go, cargo-auditable and Maven packages built into the real registry (which has no
//! referrers API: the referrers tag), through a proxy that implements the API, and into a layout. The documents
//! `kiln sbom` / `kiln provenance` read back are checked by the independent validators (pyspdxtools,
//! cyclonedx-python-lib, check-jsonschema).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sbom::{
    CYCLONEDX_VALIDATE, PYTHON, build_auditable, build_go, build_jar, copy_tree, testdata,
};
use crate::support::*;

const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const INTOTO: &str = "application/vnd.in-toto+json";

/// The build output of an app with packages of every kind kiln detects.
fn tree(work: &Path) -> PathBuf {
    let root = work.join("out");
    copy_tree(&testdata("npm/app"), &root.join("app"));
    copy_tree(&testdata("python"), &root.join("lib/python3"));
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(build_go(work), bin.join("hello-go")).unwrap();
    std::fs::copy(build_auditable(work), bin.join("hello-rs")).unwrap();
    std::fs::copy(build_jar(work), root.join("app.jar")).unwrap();
    root
}

/// kiln with the SBOM and provenance at their defaults (the harness turns them off elsewhere).
fn kiln(env: &KilnEnv, args: &[&str]) -> (String, String) {
    let out = env
        .cmd()
        .env_remove("KILN_SBOM")
        .env_remove("KILN_PROVENANCE")
        .args(args)
        .output()
        .unwrap();
    let (so, se) = texts(&out);
    assert!(out.status.success(), "kiln {args:?}: {se}");
    (so, se)
}

fn digest_in(line: &str) -> String {
    line.trim().rsplit_once('@').unwrap().1.to_string()
}

/// The referrers index a subject's fallback tag (`sha256-<hex>`) holds, as skopeo reads it.
fn referrers_tag(host: &str, repo: &str, subject: &str) -> serde_json::Value {
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/{repo}:{}", subject.replace(':', "-")),
    ]);
    serde_json::from_str(&raw).unwrap()
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_spdx_valid(file: &Path) {
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file)
        .output()
        .expect("pyspdxtools");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "pyspdxtools: {said}"
    );
}

fn assert_cyclonedx_valid(file: &Path) {
    let out = Command::new(PYTHON)
        .args(["-c", CYCLONEDX_VALIDATE])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "CycloneDX 1.6: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_image_gets_an_sbom_and_provenance_through_the_referrers_tag() {
    let reg = Registry::start(Mode::open());
    let env = KilnEnv::new();
    let work = tempdir();
    let out = tree(work.path());
    let host = reg.host();
    let app = format!("{host}/app");
    let (v1, err) = kiln(
        &env,
        &[
            "build",
            out.to_str().unwrap(),
            "--to",
            &app,
            "--version",
            "auto",
            "-v",
        ],
    );
    assert!(v1.contains(":v1@"), "{v1}");
    let d = digest_in(&v1);

    // The documents are beside the image, never in it: the same digest without them.
    let (plain, _) = env.ok(&[
        "build",
        out.to_str().unwrap(),
        "--to",
        &format!("{host}/plain"),
        "--version",
        "auto",
    ]);
    assert_eq!(digest_in(&plain), d, "{err}");

    // The registry has no referrers API: the subject's referrers tag lists both, with their types and subject.
    let index = referrers_tag(&host, "app", &d);
    let listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["artifactType"].as_str().unwrap().into(),
                m["digest"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        listed.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        [SPDX, INTOTO],
        "{index}"
    );
    for (t, m) in &listed {
        let raw: serde_json::Value = serde_json::from_str(&skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{app}@{m}"),
        ]))
        .unwrap();
        assert_eq!(raw["artifactType"], t.as_str());
        assert_eq!(raw["subject"]["digest"], d.as_str());
    }

    // What `kiln sbom` and `kiln provenance` print is valid to independent validators, and names the packages.
    let (sbom, _) = env.ok(&["sbom", &format!("{app}:v1")]);
    assert_spdx_valid(&write(work.path(), "sbom.spdx.json", &sbom));
    for purl in [
        "pkg:golang/example.com/greet@v1.2.3",
        "pkg:cargo/greet@1.2.3",
        "pkg:maven/org.slf4j/slf4j-api@2.0.9",
        "pkg:npm/",
        "pkg:pypi/",
    ] {
        assert!(sbom.contains(purl), "no {purl} in the SBOM");
    }
    assert!(sbom.contains("/bin/hello-go"), "files are listed");
    let (prov, _) = env.ok(&["provenance", &format!("{app}:v1")]);
    crate::provenance::assert_valid(&write(work.path(), "prov.json", &prov));
    assert!(prov.contains(d.trim_start_matches("sha256:")), "{prov}");

    // An unchanged rebuild reuses its version and attaches nothing more.
    let (again, _) = kiln(
        &env,
        &[
            "build",
            out.to_str().unwrap(),
            "--to",
            &app,
            "--version",
            "auto",
        ],
    );
    assert_eq!(again, v1);
    assert_eq!(
        referrers_tag(&host, "app", &d)["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // CycloneDX on request, written locally too: the same bytes as attached.
    std::fs::write(out.join("app/changed.txt"), "v2\n").unwrap();
    let file = work.path().join("local.cdx.json");
    let (v2, _) = kiln(
        &env,
        &[
            "build",
            out.to_str().unwrap(),
            "--to",
            &app,
            "--version",
            "auto",
            "--sbom",
            "cyclonedx",
            "--sbom-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(v2.contains(":v2@"), "{v2}");
    let (cdx, _) = env.ok(&["sbom", &format!("{app}:v2")]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), cdx);
    assert_cyclonedx_valid(&file);
    let types: Vec<String> = referrers_tag(&host, "app", &digest_in(&v2))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, [CYCLONEDX, INTOTO]);
}

#[test]
fn a_registry_with_the_referrers_api_gets_no_referrers_tag() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let _api = proxy.enable_referrers_api();
    let env = KilnEnv::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("index.html"), "hi\n").unwrap();
    let image = format!("{}/web", proxy.host());
    let (v1, _) = kiln(
        &env,
        &[
            "build",
            src.to_str().unwrap(),
            "--to",
            &image,
            "--version",
            "auto",
        ],
    );
    assert_eq!(skopeo_list_tags(&reg, "web"), vec!["v1"], "{v1}");
    let (text, _) = env.ok(&["inspect", &format!("{image}:v1")]);
    assert!(text.contains(SPDX) && text.contains(INTOTO), "{text}");
    assert!(
        env.ok(&["sbom", &format!("{image}:v1")])
            .0
            .contains("/index.html")
    );
}

#[test]
fn a_layout_holds_its_documents_untagged() {
    let env = KilnEnv::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("index.html"), "hi\n").unwrap();
    let layout = env.path("images");
    let to = format!("oci:{}:v1", layout.display());
    let (v1, _) = kiln(&env, &["build", src.to_str().unwrap(), "--to", &to]);
    // Again, unchanged: nothing added.
    kiln(&env, &["build", src.to_str().unwrap(), "--to", &to]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{index}");
    let untagged: Vec<_> = entries
        .iter()
        .filter(|e| e["annotations"]["org.opencontainers.image.ref.name"].is_null())
        .collect();
    assert_eq!(untagged.len(), 2, "{index}");
    let (tags, _) = env.ok(&["tags", &format!("oci:{}", layout.display())]);
    assert_eq!(tags.lines().count(), 1, "only the image's tag: {tags}");
    assert!(tags.starts_with("v1\t"), "{tags}");
    let (sbom, _) = env.ok(&["sbom", &to]);
    assert!(
        sbom.contains(&digest_in(&v1)[7..]),
        "the SBOM names its image"
    );
}

#[test]
fn kiln_toml_chooses_the_documents_by_the_flags_rules() {
    let env = KilnEnv::new();
    let dir = env.path("proj");
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(dir.join("dist/index.html"), "hi\n").unwrap();
    let toml = dir.join("kiln.toml");
    std::fs::write(
        &toml,
        "dir = \"dist\"\nto = \"oci:images:v1\"\nsbom = \"cyclonedx\"\nprovenance = \"none\"\n",
    )
    .unwrap();
    kiln(&env, &["build", "--config", toml.to_str().unwrap()]);
    let image = format!("oci:{}:v1", dir.join("images").display());
    let (sbom, _) = env.ok(&["sbom", &image]);
    assert!(sbom.contains("\"bomFormat\":\"CycloneDX\""), "{sbom}");
    let out = env.run(&["provenance", &image]);
    assert_eq!(code(&out), 1, "no provenance was asked for");

    std::fs::write(
        &toml,
        "dir = \"dist\"\nto = \"oci:images:v2\"\nsbom = \"swid\"\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env_remove("KILN_SBOM")
        .args(["build", "--config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    let (_, err) = texts(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains(":3:") && err.contains("expected spdx, cyclonedx or none"),
        "{err}"
    );
}

#[test]
fn source_annotations_only_when_asked() {
    let env = KilnEnv::new();
    let repo = env.path("repo");
    std::fs::create_dir_all(repo.join("dist")).unwrap();
    std::fs::write(repo.join("dist/index.html"), "hi\n").unwrap();
    let git = |args: &[&str]| git(&repo, args);
    git(&["init", "-q", "-b", "main"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://bot:s3cret@git.example.com/team/app.git",
    ]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    let head = git(&["rev-parse", "HEAD"]);
    let layout = env.path("images");
    let manifest = |tag: &str, extra: &[&str]| -> serde_json::Value {
        let to = format!("oci:{}:{tag}", layout.display());
        let mut args = vec![
            "build",
            repo.join("dist").to_str().unwrap().to_string().leak() as &str,
            "--to",
            &to,
        ];
        args.extend_from_slice(extra);
        env.ok(&args);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone();
        let hex = entry["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let plain = manifest("plain", &[]);
    assert!(
        plain["annotations"]["org.opencontainers.image.revision"].is_null(),
        "{plain}"
    );
    let with = manifest("with", &["--source-annotations"]);
    assert_eq!(
        with["annotations"]["org.opencontainers.image.revision"],
        head.trim()
    );
    assert_eq!(
        with["annotations"]["org.opencontainers.image.source"],
        "https://git.example.com/team/app.git",
        "credentials never reach the image"
    );
}

#[test]
fn the_sbom_names_the_base_and_links_its_own_sbom() {
    let env = KilnEnv::new();
    let dir = env.path("w");
    for (d, f) in [("base", "os-release"), ("app", "index.html")] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
        std::fs::write(dir.join(d).join(f), "x\n").unwrap();
    }
    let layout = dir.join("images");
    let base = format!("oci:{}:base", layout.display());
    let (b, _) = kiln(
        &env,
        &["build", dir.join("base").to_str().unwrap(), "--to", &base],
    );
    let base_digest = digest_in(&b);
    let (inspected, _) = env.ok(&["inspect", &base]);
    let base_sbom = inspected
        .lines()
        .find(|l| l.contains(SPDX))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the base has an SBOM")
        .to_string();
    let app = format!("oci:{}:app", layout.display());
    kiln(
        &env,
        &[
            "build",
            dir.join("app").to_str().unwrap(),
            "--base",
            &base,
            "--to",
            &app,
        ],
    );
    let (sbom, _) = env.ok(&["sbom", &app]);
    assert!(sbom.contains(&base_digest), "the base by digest: {sbom}");
    assert!(
        sbom.contains(base_sbom.trim_start_matches("sha256:")),
        "the base's SBOM: {sbom}"
    );
    assert!(sbom.contains("DESCENDANT_OF"), "{sbom}");
    assert!(
        !sbom.contains("/os-release"),
        "the base's files are its own SBOM's: {sbom}"
    );
}

/// A fresh runner's changed image takes the digests of files in layers it found in the registry from the SBOM of
/// the image that has those layers (an equal diff_id is the same tar), and they are the files' real digests.
#[test]
fn a_fresh_runner_reads_unchanged_files_digests_from_the_last_sbom() {
    let reg = Registry::start(Mode::open());
    let env = KilnEnv::new();
    let src = env.path("dist");
    js_modules(&src, 600, 5);
    let app = format!("{}/app", reg.host());
    let build = |env: &KilnEnv| {
        kiln(
            env,
            &[
                "build",
                src.to_str().unwrap(),
                "--to",
                &app,
                "--version",
                "auto",
                "--split",
                "4MiB",
                "-v",
            ],
        )
    };
    build(&env);
    let f = src.join("chunk1/m001.js");
    std::fs::write(&f, "changed\n").unwrap();
    let (v2, err) = build(&KilnEnv::new());
    assert!(v2.contains(":v2@"), "{v2}");
    assert!(
        err.contains("digests from the SBOM of the image their layer came from"),
        "{err}"
    );
    assert!(err.contains("found in the registry"), "{err}");
    // Every file's digests are its own: checked against the files.
    let (sbom, _) = env.ok(&["sbom", &format!("{app}:v2")]);
    let doc: serde_json::Value = serde_json::from_str(&sbom).unwrap();
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 600);
    for file in files {
        let name = file["fileName"].as_str().unwrap().trim_start_matches("./");
        let body = std::fs::read(src.join(name)).unwrap();
        let sha256 = file["checksums"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["algorithm"] == "SHA256")
            .unwrap()["checksumValue"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(sha256, sha256_hex(&body), "{name}");
    }
}

#[test]
fn an_sbom_file_without_an_sbom_is_a_usage_error() {
    let env = KilnEnv::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "a\n").unwrap();
    let file = env.path("sbom.json");
    let out = env.run(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("oci:{}", env.path("images").display()),
        "--sbom",
        "none",
        "--sbom-file",
        file.to_str().unwrap(),
    ]);
    let (_, err) = texts(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains("--sbom-file") && err.contains("--sbom none"),
        "{err}"
    );
    assert!(!env.path("images").exists(), "nothing was written");
}
