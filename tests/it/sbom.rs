//! The SBOM generator (kiln_engine::sbom) on a fixture tree with npm, Python, Cargo.lock, a jar, a Go binary and
//! a cargo-auditable Rust binary, the binaries built here from testdata/sbom with Debian's Go and cargo
//! (offline: local replace / path dependencies). The documents are checked by independent validators that
//! `.ci/run` installs: pyspdxtools (PyPI spdx-tools) and cyclonedx-python-lib's strict JSON-schema validator.
//! These go through the engine API; tests/it/supply_chain.rs checks what `kiln build` attaches.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_engine::Digest;
use kiln_engine::sbom::{self, BaseImage, FileRecord, SbomFormat, SbomInput};

/// The interpreter `.ci/run` pip-installs the validators into (Debian's, not a pyenv or venv one that may come
/// first on PATH on a developer's machine).
pub(crate) const PYTHON: &str = "/usr/bin/python3";

pub(crate) fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sbom")
        .join(rel)
}

fn run(cmd: &mut Command, what: &str, install: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what} cannot be started ({e}); this test needs it: {install}")
    });
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}\n(needs: {install})",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// testdata/sbom/go/hello with Debian's Go (golang-go): its build info names example.com/greet v1.2.3.
pub(crate) fn build_go(work: &Path) -> PathBuf {
    copy_tree(&testdata("go"), &work.join("go"));
    let out = work.join("hello-go");
    run(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(work.join("go/hello"))
            .env("GOCACHE", work.join("gocache"))
            .env("GOPATH", work.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", "0"),
        "go build",
        "apt-get install golang-go (Debian, as root)",
    );
    out
}

/// testdata/sbom/rust/hello with `cargo auditable build` (its .dep-v0 lists hello 0.3.0 and greet 1.2.3).
pub(crate) fn build_auditable(work: &Path) -> PathBuf {
    copy_tree(&testdata("rust"), &work.join("rust"));
    let target = work.join("cargo-target");
    run(
        Command::new("cargo")
            .args(["auditable", "build", "--offline", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(work.join("rust/hello"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET"),
        "cargo auditable",
        "cargo install --locked cargo-auditable@0.7.7 (.ci/run does)",
    );
    target.join("debug/hello")
}

/// A shaded jar written by Python's zipfile (another zip writer than the one kiln reads with).
pub(crate) fn build_jar(work: &Path) -> PathBuf {
    let jar = work.join("app.jar");
    let script = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    z.writestr("META-INF/maven/com.example/app/pom.properties", "groupId=com.example\nartifactId=app\nversion=1.0.0\n")
    z.writestr("META-INF/maven/org.slf4j/slf4j-api/pom.properties", "version=2.0.9\ngroupId=org.slf4j\nartifactId=slf4j-api\n")
    z.writestr("com/example/App.class", b"\xca\xfe\xba\xbe")
"#;
    run(
        Command::new(PYTHON).args(["-c", script]).arg(&jar),
        "python3 zipfile",
        "apt-get install python3",
    );
    jar
}

fn record(path: &str, source: &Path) -> FileRecord {
    let bytes = std::fs::read(source).unwrap();
    FileRecord {
        path: path.to_string(),
        size: bytes.len() as u64,
        sha256: Digest::of(&bytes),
        sha1: openssl::sha::sha1(&bytes),
        source: source.to_path_buf(),
    }
}

fn records_under(root: &Path, prefix: &str, out: &mut Vec<FileRecord>) {
    let mut entries: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if p.is_dir() {
            records_under(&p, &format!("{prefix}/{name}"), out);
        } else {
            out.push(record(&format!("{prefix}/{name}"), &p));
        }
    }
}

/// The fixture image's files: (temp dir holding the built ones, the records as the layer writer would give them).
fn fixture() -> (tempfile::TempDir, Vec<FileRecord>) {
    let work = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    records_under(&testdata("npm/app"), "/app", &mut files);
    records_under(&testdata("python"), "/usr/lib/python3", &mut files);
    records_under(&testdata("cargo"), "/src", &mut files);
    files.push(record("/usr/local/bin/hello-go", &build_go(work.path())));
    files.push(record(
        "/usr/local/bin/hello-rs",
        &build_auditable(work.path()),
    ));
    files.push(record("/opt/app.jar", &build_jar(work.path())));
    (work, files)
}

fn digest(c: char) -> Digest {
    format!("sha256:{}", c.to_string().repeat(64))
        .parse()
        .unwrap()
}

#[test]
fn fixture_tree_gives_the_expected_packages() {
    let (_work, files) = fixture();
    let found = sbom::detect_with_warnings(&files);
    let got: Vec<String> = found
        .packages
        .iter()
        .map(|p| format!("{} {}", p.purl, p.license.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(
        got,
        [
            "pkg:cargo/greet@1.2.3 -",
            "pkg:cargo/hello@0.3.0 -",
            "pkg:cargo/itoa@1.0.11 -",
            "pkg:cargo/serde@1.0.210 -",
            "pkg:golang/example.com/greet@v1.2.3 -",
            "pkg:golang/example.com/hello -",
            "pkg:maven/com.example/app@1.0.0 -",
            "pkg:maven/org.slf4j/slf4j-api@2.0.9 -",
            "pkg:npm/%40types/node@20.8.10 MIT",
            "pkg:npm/debug@4.3.4 MIT",
            "pkg:npm/left-pad@1.3.0 WTFPL",
            "pkg:npm/ms@2.1.2 MIT OR Apache-2.0",
            "pkg:npm/only-in-lock@0.1.0 SEE LICENSE IN LICENSE.txt",
            "pkg:pypi/attrs@23.1.0 MIT",
            "pkg:pypi/requests@2.31.0 Apache 2.0",
            "pkg:pypi/typing-extensions@4.8.0 -",
        ]
    );
    // The binaries are named as where the packages were found.
    let go = found
        .packages
        .iter()
        .find(|p| p.purl.starts_with("pkg:golang/example.com/greet"))
        .unwrap();
    assert_eq!(go.evidence.len(), 1);
    assert_eq!(go.evidence[0].path, "/usr/local/bin/hello-go");
    let rs = found
        .packages
        .iter()
        .find(|p| p.purl == "pkg:cargo/greet@1.2.3")
        .unwrap();
    assert_eq!(rs.evidence[0].path, "/usr/local/bin/hello-rs");
    // The one malformed file (node_modules/broken/package.json) is a warning.
    assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
    assert_eq!(
        sbom::detect_packages(&files).unwrap(),
        found.packages,
        "detect_packages is the same detection"
    );
}

fn input<'a>(
    files: &'a [FileRecord],
    subject: &'a Digest,
    base: Option<&'a BaseImage>,
) -> SbomInput<'a> {
    SbomInput {
        name: "registry.example:5000/team/app",
        subject,
        files,
        base,
        created: 1_700_000_000,
        tool_version: "0.1.0",
    }
}

fn base() -> BaseImage {
    BaseImage {
        reference: "docker.io/library/debian:12".into(),
        digest: digest('b'),
        sbom: Some(digest('c')),
    }
}

#[test]
fn spdx_document_is_valid_for_pyspdxtools() {
    let (work, files) = fixture();
    let (subject, base) = (digest('a'), base());
    let bytes = sbom::generate(SbomFormat::Spdx, &input(&files, &subject, Some(&base))).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let path = work.path().join("sbom.spdx.json");
    std::fs::write(&path, &bytes).unwrap();
    let out = run(
        Command::new("pyspdxtools").arg("-i").arg(&path),
        "pyspdxtools",
        "pip install spdx-tools (.ci/run installs it into /usr/bin/python3)",
    );
    // pyspdxtools says nothing and exits 0 for a valid document (it logs "valid" at the info level only).
    assert!(out.trim().is_empty(), "pyspdxtools said: {out}");

    // Every file is there with both checksums; the packages, the base and its SBOM are linked.
    assert_eq!(doc["files"].as_array().unwrap().len(), files.len());
    let text = String::from_utf8(bytes.clone()).unwrap();
    for needle in [
        "\"SPDXRef-Image\"",
        "\"DESCENDANT_OF\"",
        "pkg:oci/debian@sha256%3Abbbb",
        "?repository_url=docker.io/library/debian",
        &format!("docker.io/library/debian@{}", digest('c')),
        "pkg:golang/example.com/greet@v1.2.3",
        "\"MIT OR Apache-2.0\"",
        "\"extractedText\":\"SEE LICENSE IN LICENSE.txt\"",
    ] {
        assert!(text.contains(needle), "no {needle} in the SPDX document");
    }

    // The validator is not vacuous: a file without its SHA1 is refused (SPDX 2.3 requires one).
    let mut broken = doc.clone();
    broken["files"][0]["checksums"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    let bad = work.path().join("broken.spdx.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(&bad)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && said.contains("SHA1"),
        "pyspdxtools accepted a file without SHA1: {said}"
    );
}

pub(crate) const CYCLONEDX_VALIDATE: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
if error is not None:
    print(error)
    sys.exit(1)
print("valid")
"#;

#[test]
fn cyclonedx_document_is_valid_against_the_1_6_schema() {
    let (work, files) = fixture();
    let (subject, base) = (digest('a'), base());
    let bytes =
        sbom::generate(SbomFormat::CycloneDx, &input(&files, &subject, Some(&base))).unwrap();
    let path = work.path().join("sbom.cdx.json");
    std::fs::write(&path, &bytes).unwrap();
    let validate = |p: &Path| {
        Command::new(PYTHON)
            .args(["-c", CYCLONEDX_VALIDATE])
            .arg(p)
            .output()
    };
    let install = "pip install 'cyclonedx-python-lib[json-validation]' (.ci/run installs it into /usr/bin/python3)";
    let out =
        validate(&path).unwrap_or_else(|e| panic!("{PYTHON} cannot be started ({e}): {install}"));
    assert!(
        out.status.success(),
        "CycloneDX 1.6 schema: {}{}\n(needs: {install})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let components = doc["components"].as_array().unwrap();
    let files_in = components.iter().filter(|c| c["type"] == "file").count();
    assert_eq!(files_in, files.len());
    let base_c = &components[0];
    assert_eq!(base_c["type"], "container");
    assert_eq!(base_c["externalReferences"][0]["type"], "bom");
    assert_eq!(doc["dependencies"][0]["dependsOn"][0], "base-image");
    let slf4j = components
        .iter()
        .find(|c| c["name"] == "slf4j-api")
        .unwrap();
    assert_eq!(slf4j["group"], "org.slf4j");
    assert_eq!(
        slf4j["evidence"]["occurrences"][0]["location"],
        "/opt/app.jar"
    );

    // Not vacuous: an unknown property is refused by the strict schema.
    let mut broken = doc.clone();
    broken["components"][0]["colour"] = serde_json::json!("blue");
    let bad = work.path().join("broken.cdx.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(
        !validate(&bad).unwrap().status.success(),
        "the strict validator accepted an unknown property"
    );
}

#[test]
fn same_input_same_bytes_and_ids_follow_the_image() {
    let (_work, mut files) = fixture();
    let (subject, other) = (digest('a'), digest('d'));
    for format in [SbomFormat::Spdx, SbomFormat::CycloneDx] {
        let one = sbom::generate(format, &input(&files, &subject, None)).unwrap();
        let mut shuffled = files.clone();
        shuffled.reverse();
        let two = sbom::generate(format, &input(&shuffled, &subject, None)).unwrap();
        assert!(
            one == two,
            "{format:?}: the order of the files changed the document"
        );
        let three = sbom::generate(format, &input(&files, &other, None)).unwrap();
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_slice(&one).unwrap(),
            serde_json::from_slice(&three).unwrap(),
        );
        let id = |d: &serde_json::Value| match format {
            SbomFormat::Spdx => d["documentNamespace"].clone(),
            SbomFormat::CycloneDx => d["serialNumber"].clone(),
        };
        assert_ne!(id(&a), id(&b), "{format:?}: two images, one document id");
    }
    files.truncate(1);
    let a = sbom::generate(SbomFormat::Spdx, &input(&files, &subject, None)).unwrap();
    assert!(
        String::from_utf8(a)
            .unwrap()
            .contains("\"created\":\"2023-11-14T22:13:20Z\"")
    );
}

#[test]
fn format_setting() {
    assert_eq!(
        SbomFormat::parse_setting("spdx").unwrap(),
        Some(SbomFormat::Spdx)
    );
    assert_eq!(
        SbomFormat::parse_setting("cyclonedx").unwrap(),
        Some(SbomFormat::CycloneDx)
    );
    assert_eq!(SbomFormat::parse_setting("none").unwrap(), None);
    let e = SbomFormat::parse_setting("syft").unwrap_err().to_string();
    assert!(
        e.contains("spdx") && e.contains("cyclonedx") && e.contains("none"),
        "{e}"
    );
    assert_eq!(SbomFormat::Spdx.media_type(), "application/spdx+json");
    assert_eq!(
        SbomFormat::CycloneDx.media_type(),
        "application/vnd.cyclonedx+json"
    );
}
