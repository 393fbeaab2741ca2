use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;

const GH_TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";
const GL_TOKEN: &str = "glcbt-64_aZ9xQwErTyUiOp1234";

fn digest(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(999)
}

fn github_env() -> HashMap<&'static str, String> {
    [
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REPOSITORY", "octo-org/app"),
        ("GITHUB_REPOSITORY_ID", "123"),
        ("GITHUB_REPOSITORY_OWNER_ID", "456"),
        ("GITHUB_RUN_ID", "987654321"),
        ("GITHUB_RUN_ATTEMPT", "2"),
        ("GITHUB_EVENT_NAME", "push"),
        (
            "GITHUB_WORKFLOW_REF",
            "octo-org/app/.github/workflows/release.yml@refs/heads/main",
        ),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_REF", "refs/heads/main"),
        ("RUNNER_ENVIRONMENT", "github-hosted"),
        ("GITHUB_TOKEN", GH_TOKEN),
        ("ACTIONS_RUNTIME_TOKEN", "eyJhbGciOiJSUzI1NiJ9.runtime.sig"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn gitlab_env() -> HashMap<&'static str, String> {
    [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", "https://gitlab.example.com"),
        ("CI_PROJECT_PATH", "group/app"),
        ("CI_PROJECT_URL", "https://gitlab.example.com/group/app"),
        ("CI_PROJECT_ID", "42"),
        ("CI_JOB_ID", "777"),
        ("CI_JOB_NAME", "image"),
        (
            "CI_JOB_URL",
            "https://gitlab.example.com/group/app/-/jobs/777",
        ),
        ("CI_PIPELINE_ID", "55"),
        (
            "CI_PIPELINE_URL",
            "https://gitlab.example.com/group/app/-/pipelines/55",
        ),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_CONFIG_PATH", ".gitlab-ci.yml"),
        ("CI_COMMIT_SHA", "89abcdef0123456789abcdef0123456789abcdef"),
        ("CI_COMMIT_REF_NAME", "v1.2.0"),
        ("CI_COMMIT_TAG", "v1.2.0"),
        ("CI_RUNNER_ID", "12270831"),
        ("CI_RUNNER_VERSION", "17.5.0"),
        ("CI_JOB_TOKEN", GL_TOKEN),
        (
            "CI_REPOSITORY_URL",
            "https://gitlab-ci-token:glcbt-64_aZ9xQwErTyUiOp1234@gitlab.example.com/group/app.git",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// The statement for `env`, as JSON, with the usual subjects, base, git and times.
fn generate_with(
    env: &HashMap<&'static str, String>,
    parameters: Value,
    git: Option<GitSource>,
) -> (Vec<u8>, Value) {
    let subjects = [Subject {
        name: "registry.example/team/app".into(),
        digest: digest("manifest"),
    }];
    let lookup = |k: &str| env.get(k).cloned();
    let input = ProvenanceInput {
        subjects: &subjects,
        parameters,
        base: Some(("debian:12".into(), digest("base"))),
        git,
        started: at(1_700_000_000),
        finished: at(1_700_000_042),
        env: &lookup,
        tool_version: "0.1.0",
    };
    let bytes = generate(&input).unwrap();
    let v = serde_json::from_slice(&bytes).unwrap();
    (bytes, v)
}

#[test]
fn github_actions_builder_invocation_and_source() {
    let (_, v) = generate_with(&github_env(), json!({"platforms": ["linux/amd64"]}), None);
    let p = &v["predicate"];
    assert_eq!(
        p["runDetails"]["builder"]["id"],
        "https://github.com/octo-org/app/.github/workflows/release.yml@refs/heads/main"
    );
    assert_eq!(
        p["runDetails"]["metadata"]["invocationId"],
        "https://github.com/octo-org/app/actions/runs/987654321/attempts/2"
    );
    let bd = &p["buildDefinition"];
    assert_eq!(bd["buildType"], BUILD_TYPE);
    assert_eq!(
        bd["externalParameters"]["workflow"],
        json!({
            "repository": "https://github.com/octo-org/app",
            "path": ".github/workflows/release.yml",
            "ref": "refs/heads/main",
        })
    );
    assert_eq!(
        bd["externalParameters"]["settings"]["platforms"][0],
        "linux/amd64"
    );
    assert_eq!(bd["internalParameters"]["kiln"]["version"], "0.1.0");
    assert_eq!(bd["internalParameters"]["github"]["eventName"], "push");
    // Not a git work tree here: the commit the workflow ran at stands for the source.
    assert_eq!(
        bd["resolvedDependencies"][0],
        json!({
            "uri": "git+https://github.com/octo-org/app@refs/heads/main",
            "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"},
        })
    );
}

#[test]
fn gitlab_ci_builder_invocation_and_source() {
    let (_, v) = generate_with(&gitlab_env(), json!({}), None);
    let p = &v["predicate"];
    assert_eq!(
        p["runDetails"]["builder"]["id"],
        "https://gitlab.example.com/group/app/-/runners/12270831"
    );
    assert_eq!(
        p["runDetails"]["builder"]["version"],
        json!({"gitlab-runner": "17.5.0", "kiln": "0.1.0"})
    );
    assert_eq!(
        p["runDetails"]["metadata"]["invocationId"],
        "https://gitlab.example.com/group/app/-/jobs/777"
    );
    let bd = &p["buildDefinition"];
    assert_eq!(
        bd["externalParameters"]["pipeline"],
        json!({
            "project": "https://gitlab.example.com/group/app",
            "ref": "refs/tags/v1.2.0",
            "configPath": ".gitlab-ci.yml",
            "job": "image",
            "pipelineSource": "push",
        })
    );
    assert_eq!(
        bd["internalParameters"]["gitlab"]["pipelineUrl"],
        "https://gitlab.example.com/group/app/-/pipelines/55"
    );
    assert_eq!(
        bd["resolvedDependencies"][0]["uri"],
        "git+https://gitlab.example.com/group/app@refs/tags/v1.2.0"
    );

    // Without CI_JOB_URL and CI_PROJECT_URL the same URLs are made from their parts.
    let mut env = gitlab_env();
    env.remove("CI_JOB_URL");
    env.remove("CI_PROJECT_URL");
    let (_, w) = generate_with(&env, json!({}), None);
    assert_eq!(w["predicate"]["runDetails"], p["runDetails"]);
}

#[test]
fn local_builds_name_the_local_builder_and_no_invocation() {
    let env = HashMap::from([("HOME", "/home/me".to_string())]);
    let (_, v) = generate_with(&env, json!({}), None);
    let rd = &v["predicate"]["runDetails"];
    assert_eq!(rd["builder"]["id"], LOCAL_BUILDER_ID);
    assert_eq!(rd["metadata"].get("invocationId"), None);
    // Only the base image: no CI source and no git.
    let deps = v["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(deps.len(), 1);
    assert_eq!(
        deps[0],
        json!({
            "name": "debian:12",
            "uri": format!("pkg:oci/debian@sha256%3A{}?repository_url=docker.io/library/debian&tag=12", digest("base").hex()),
            "digest": {"sha256": digest("base").hex()},
        })
    );
}

#[test]
fn statement_fields_and_rfc3339_times() {
    let (_, v) = generate_with(&HashMap::new(), json!({}), None);
    assert_eq!(v["_type"], STATEMENT_TYPE);
    assert_eq!(v["predicateType"], PREDICATE_TYPE);
    assert_eq!(
        v["subject"],
        json!([{"name": "registry.example/team/app", "digest": {"sha256": digest("manifest").hex()}}])
    );
    let md = &v["predicate"]["runDetails"]["metadata"];
    assert_eq!(md["startedOn"], "2023-11-14T22:13:20Z");
    assert_eq!(md["finishedOn"], "2023-11-14T22:14:02Z");
}

#[test]
fn git_source_gives_the_dependency_with_the_ci_ref_when_detached() {
    let git = GitSource {
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        remote_url: Some("git@github.com:octo-org/app.git".into()),
        reference: None,
        dirty: true,
    };
    let (_, v) = generate_with(&github_env(), json!({}), Some(git.clone()));
    let deps = &v["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(
        deps[0],
        json!({
            "uri": "git+ssh://git@github.com/octo-org/app.git@refs/heads/main",
            "digest": {"gitCommit": git.commit},
            "annotations": {"dirty": true},
        })
    );
    assert_eq!(
        deps.as_array().unwrap().len(),
        2,
        "same commit: listed once, then the base"
    );

    // Another commit than the workflow's: both are listed; a local branch ref wins for the build dir's.
    let other = GitSource {
        commit: "fedcba9876543210fedcba9876543210fedcba98".into(),
        remote_url: Some("https://git.example.com/x/lib.git".into()),
        reference: Some("refs/heads/dev".into()),
        dirty: false,
    };
    let (_, v) = generate_with(&github_env(), json!({}), Some(other));
    let deps = &v["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(
        deps[0]["uri"],
        "git+https://git.example.com/x/lib.git@refs/heads/dev"
    );
    assert_eq!(
        deps[1]["digest"]["gitCommit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(deps.as_array().unwrap().len(), 3);
}

#[test]
fn secrets_never_appear() {
    let parameters = json!({
        "registryPassword": "hunter2-hunter2",
        "auth": {"username": "bob", "password": "pw-pw-pw-pw"},
        "npm_token": "npm_abcdefghijklmnop",
        "base": "https://bob:tok3n-tok3n@registry.example/team/base:1",
        "cache": "s3://bucket/x?X-Amz-Signature=deadbeefdeadbeef&region=eu",
        "buildArgs": ["API_TOKEN=xyz-xyz-xyz", "MODE=release"],
        "note": "pulled from https://u:p4ssw0rd-p4ss@host.example/x today",
        // Passed by mistake: the token variables' values, verbatim, under innocent keys and inside text.
        "label": GH_TOKEN,
        "desc": format!("job token {GL_TOKEN} leaked"),
        "clone": format!("https://gitlab-ci-token:{GL_TOKEN}@gitlab.example.com/group/app.git"),
    });
    let git = GitSource {
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        remote_url: Some(
            "https://x-access-token:ghs_remote_secret_123@github.com/octo-org/app.git".into(),
        ),
        reference: None,
        dirty: false,
    };
    let mut env = github_env();
    env.extend(
        gitlab_env()
            .into_iter()
            .filter(|(k, _)| k.starts_with("CI_")),
    );
    let (bytes, v) = generate_with(&env, parameters, Some(git));
    let text = String::from_utf8(bytes).unwrap();
    for secret in [
        "hunter2",
        "pw-pw-pw",
        "npm_abcdefghijklmnop",
        "tok3n",
        "deadbeefdeadbeef",
        "xyz-xyz-xyz",
        "p4ssw0rd",
        GH_TOKEN,
        GL_TOKEN,
        "eyJhbGciOiJSUzI1NiJ9",
        "ghs_remote_secret_123",
        "x-access-token",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    let s = &v["predicate"]["buildDefinition"]["externalParameters"]["settings"];
    assert_eq!(s["registryPassword"], "REDACTED");
    assert_eq!(s["auth"], "REDACTED");
    assert_eq!(s["base"], "https://registry.example/team/base:1");
    assert_eq!(
        s["buildArgs"],
        json!(["API_TOKEN=REDACTED", "MODE=release"])
    );
    assert_eq!(s["note"], "pulled from https://host.example/x today");
    assert_eq!(s["label"], "REDACTED");
    assert_eq!(s["desc"], "job token REDACTED leaked");
    assert_eq!(s["clone"], "https://gitlab.example.com/group/app.git");
    assert_eq!(
        v["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"],
        "git+https://github.com/octo-org/app.git@refs/heads/main"
    );
}

#[test]
fn same_input_same_bytes() {
    let params = json!({"z": 1, "a": {"y": [3, 2, 1], "b": "x"}});
    let (a, _) = generate_with(&github_env(), params.clone(), None);
    let (b, _) = generate_with(&github_env(), params, None);
    assert_eq!(a, b);
    // Keys in the specs' order, not alphabetical: `_type` first, `predicate` last.
    let text = String::from_utf8(a).unwrap();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(pos("_type") < pos("subject") && pos("predicateType") < pos("predicate"));
    assert!(pos("buildType") < pos("externalParameters"));
}

#[test]
fn no_subject_or_a_time_before_1970_is_an_error() {
    let env = |_: &str| None;
    let mut input = ProvenanceInput {
        subjects: &[],
        parameters: json!({}),
        base: None,
        git: None,
        started: UNIX_EPOCH,
        finished: UNIX_EPOCH,
        env: &env,
        tool_version: "0.1.0",
    };
    assert!(
        generate(&input)
            .unwrap_err()
            .to_string()
            .contains("no subject")
    );
    let subjects = [Subject {
        name: "r/a".into(),
        digest: digest("m"),
    }];
    input.subjects = &subjects;
    input.started = UNIX_EPOCH - Duration::from_secs(1);
    assert!(generate(&input).unwrap_err().to_string().contains("clock"));
}

#[test]
fn purls_and_remote_uris() {
    let d = digest("x");
    assert_eq!(
        oci_purl("localhost:5000/team/base:v1", &d).unwrap(),
        format!(
            "pkg:oci/base@sha256%3A{}?repository_url=localhost%3A5000/team/base&tag=v1",
            d.hex()
        )
    );
    assert_eq!(oci_purl("oci:/tmp/layout:base", &d), None);
    assert_eq!(uri_of_remote("git@host:a/b.git"), "ssh://git@host/a/b.git");
    assert_eq!(uri_of_remote("/srv/git/b.git"), "file:///srv/git/b.git");
    assert_eq!(uri_of_remote("https://h/a"), "https://h/a");
}
