//! SLSA provenance against an independent validator: the statements kiln's engine generates (GitHub Actions,
//! GitLab CI and local runs, from a real git repository) are checked by `check-jsonschema` (PyPI, installed by
//! `.ci/run`) against a JSON Schema written from the in-toto Statement v1 and SLSA Provenance v1 specs
//! (testdata/provenance/statement.schema.json, sources in its `$comment`). The schema is shown to have teeth:
//! statements broken the ways the specs forbid are rejected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use kiln_engine::Digest;
use kiln_engine::provenance::{self, GitSource, ProvenanceInput, Subject};
use serde_json::{Value, json};

use crate::support::*;

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/provenance/statement.schema.json")
}

/// `check-jsonschema --schemafile SCHEMA FILE`; fails the test loudly when the validator is missing.
fn validate(file: &Path) -> Output {
    Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(schema())
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`check-jsonschema` cannot be started ({e}); this test needs it: \
                 `python3 -m pip install --break-system-packages check-jsonschema rfc3987` (as .ci/run does)"
            )
        })
}

pub(crate) fn assert_valid(file: &Path) {
    let out = validate(file);
    assert!(
        out.status.success(),
        "{} does not validate:\n{}{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

/// A work tree with one commit and an `origin` whose URL carries credentials.
fn repository(root: &Path) -> GitSource {
    require_tool("git", "git");
    let dir = root.join("repo");
    std::fs::create_dir(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("index.html"), "<h1>hi</h1>\n").unwrap();
    git(&dir, &["add", "index.html"]);
    git(
        &dir,
        &["-c", "commit.gpgsign=false", "commit", "-q", "-m", "site"],
    );
    git(
        &dir,
        &[
            "remote",
            "add",
            "origin",
            "https://ci-bot:glpat-Secr3tTok3nValue@gitlab.example.com/group/site.git",
        ],
    );
    let src = provenance::git_source(&dir).expect("a git work tree");
    assert_eq!(
        src.remote_url.as_deref(),
        Some("https://gitlab.example.com/group/site.git")
    );
    src
}

fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn github() -> HashMap<String, String> {
    env_of(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "octo-org/site"),
        ("GITHUB_RUN_ID", "1234"),
        ("GITHUB_RUN_ATTEMPT", "1"),
        (
            "GITHUB_WORKFLOW_REF",
            "octo-org/site/.github/workflows/image.yml@refs/tags/v2",
        ),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_REF", "refs/tags/v2"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_TOKEN", "ghs_0123456789abcdefghijklmnopqrstuvwxyz"),
    ])
}

fn gitlab() -> HashMap<String, String> {
    env_of(&[
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", "https://gitlab.example.com"),
        ("CI_PROJECT_PATH", "group/site"),
        (
            "CI_JOB_URL",
            "https://gitlab.example.com/group/site/-/jobs/9",
        ),
        (
            "CI_PIPELINE_URL",
            "https://gitlab.example.com/group/site/-/pipelines/3",
        ),
        ("CI_CONFIG_PATH", ".gitlab-ci.yml"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_RUNNER_ID", "17"),
        ("CI_JOB_TOKEN", "glcbt-64_0123456789abcdefghij"),
    ])
}

/// The statement for `env`: a multi-platform image (index + two manifests) on a base, from `git`.
fn statement(env: &HashMap<String, String>, git: Option<GitSource>) -> Vec<u8> {
    let subjects: Vec<Subject> = ["index", "amd64", "arm64"]
        .iter()
        .map(|m| Subject {
            name: "registry.example/team/site".into(),
            digest: Digest::of(m.as_bytes()),
        })
        .collect();
    let lookup = |k: &str| env.get(k).cloned();
    let started = UNIX_EPOCH + Duration::from_secs(1_765_000_000);
    provenance::generate(&ProvenanceInput {
        subjects: &subjects,
        parameters: json!({
            "platforms": ["linux/amd64", "linux/arm64"],
            "tags": ["v2"],
            "registryPassword": "never-in-provenance",
            "env": ["NPM_TOKEN=never-either", "PORT=8080"],
        }),
        base: Some((
            "docker.io/library/nginx:1.27-alpine".into(),
            Digest::of(b"base"),
        )),
        git,
        started,
        finished: started + Duration::from_secs(7),
        env: &lookup,
        tool_version: env!("CARGO_PKG_VERSION"),
    })
    .unwrap()
}

#[test]
fn generated_statements_validate_against_the_slsa_v1_schema() {
    let t = tempdir();
    let src = repository(t.path());
    let cases = [
        ("github", statement(&github(), Some(src.clone()))),
        ("gitlab", statement(&gitlab(), Some(src.clone()))),
        ("local", statement(&HashMap::new(), Some(src))),
        ("no-git", statement(&HashMap::new(), None)),
    ];
    for (name, bytes) in &cases {
        let text = String::from_utf8(bytes.clone()).unwrap();
        for secret in ["Secr3tTok3n", "never-", "ghs_0123", "glcbt-64"] {
            assert!(!text.contains(secret), "{name}: {secret} leaked:\n{text}");
        }
        let file = t.path().join(format!("{name}.intoto.json"));
        std::fs::write(&file, bytes).unwrap();
        assert_valid(&file);
    }
    let v: Value = serde_json::from_slice(&cases[1].1).unwrap();
    assert_eq!(
        v["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"],
        "git+https://gitlab.example.com/group/site.git@refs/heads/main"
    );
}

/// A change that makes a statement invalid.
type Breaks = fn(&mut Value);

#[test]
fn the_schema_rejects_what_the_specs_forbid() {
    let t = tempdir();
    let good: Value = serde_json::from_slice(&statement(&github(), None)).unwrap();
    let broken: [(&str, Breaks); 10] = [
        ("no builder id", |v| {
            v["predicate"]["runDetails"]["builder"]
                .as_object_mut()
                .unwrap()
                .remove("id");
        }),
        ("a time that is not RFC 3339", |v| {
            v["predicate"]["runDetails"]["metadata"]["startedOn"] = json!("2025-12-06 05:46:40");
        }),
        // Shaped right, but no such date: only the validator's date-time format check catches it.
        ("an impossible date", |v| {
            v["predicate"]["runDetails"]["metadata"]["startedOn"] = json!("2025-13-40T06:46:47Z");
        }),
        ("a time not in UTC", |v| {
            v["predicate"]["runDetails"]["metadata"]["finishedOn"] =
                json!("2025-12-06T06:46:47+01:00");
        }),
        ("a short sha256", |v| {
            v["subject"][0]["digest"]["sha256"] = json!("abc123");
        }),
        ("a subject without digest", |v| {
            v["subject"][0].as_object_mut().unwrap().remove("digest");
        }),
        ("no subject", |v| v["subject"] = json!([])),
        ("a buildType that is not a URI", |v| {
            v["predicate"]["buildDefinition"]["buildType"] = json!("kiln build");
        }),
        // Passes the schema's pattern: only the uri format check (rfc3987) catches it.
        ("an invalid URI", |v| {
            v["predicate"]["runDetails"]["builder"]["id"] = json!("https://[github.com/x");
        }),
        ("a misspelt field", |v| {
            let md = &mut v["predicate"]["runDetails"]["metadata"];
            let id = md.as_object_mut().unwrap().remove("invocationId").unwrap();
            md["invocationID"] = id;
        }),
    ];
    for (what, breaks) in broken {
        let mut v = good.clone();
        breaks(&mut v);
        let file = t.path().join("broken.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let out = validate(&file);
        assert!(
            !out.status.success(),
            "the schema accepted {what} (a format check missing? install rfc3987):\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
