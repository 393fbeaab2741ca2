//! Which platform ran kiln, read from its environment variables: the builder id, the run's URL (invocation id),
//! the workflow or job that started it, and the commit it checked out. GitHub Actions and GitLab CI are
//! recognized; anything else is the local builder (nothing vouches for the run but the machine itself).
//!
//! The mapping follows what the platforms' own provenance generators write, so that policies written for them
//! read kiln's too: GitHub's `actions/attest-build-provenance` (builder id = the server URL + the workflow ref,
//! invocation id = the run attempt's URL), npm's GitLab provenance (builder id = the project URL +
//! `/-/runners/<id>`, invocation id = the job URL).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The builder id when no CI platform is recognized. Documented in README ("Provenance").
pub const LOCAL_BUILDER_ID: &str = "https://kiln.dev/builder/local";

/// Variables that hold credentials on the platforms kiln knows (and kiln's own): their values are removed from
/// the whole predicate wherever they appear, even inside a parameter the integrator passed by mistake.
pub const SECRET_VARS: &[&str] = &[
    // GitHub Actions
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    // GitLab CI (CI_REPOSITORY_URL embeds CI_JOB_TOKEN: listing the token catches it there too, without
    // masking a credential-free clone URL that equals the project's)
    "CI_JOB_TOKEN",
    "CI_BUILD_TOKEN",
    "CI_JOB_JWT",
    "CI_JOB_JWT_V1",
    "CI_JOB_JWT_V2",
    "CI_REGISTRY_PASSWORD",
    "CI_DEPLOY_PASSWORD",
    "CI_DEPENDENCY_PROXY_PASSWORD",
    // kiln and common registry logins
    "KILN_REGISTRY_PASSWORD",
    "REGISTRY_PASSWORD",
    "DOCKER_PASSWORD",
    "DOCKER_AUTH_CONFIG",
    "SIGSTORE_ID_TOKEN",
];

/// The environment as a lookup, so tests pass a map instead of changing the process's.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the CI environment says about this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub builder_id: String,
    /// Components of the platform and their versions (the runner's, where the platform says).
    pub builder_version: BTreeMap<String, String>,
    /// The run's URL (globally unique, and where its logs are).
    pub invocation_id: Option<String>,
    /// `externalParameters` entries: the workflow or job definition the user controls.
    pub external: Option<(&'static str, Value)>,
    /// `internalParameters` entries: platform facts (event, ids, runner).
    pub internal: Option<(&'static str, Value)>,
    /// The commit the platform checked out: used when the build directory is not itself a git work tree.
    pub source: Option<CiSource>,
}

/// A repository at a commit, from the CI environment.
#[derive(Debug, Clone, PartialEq)]
pub struct CiSource {
    /// `https://github.com/o/r`: web URL of the project (never a clone URL with a token in it).
    pub repository: String,
    /// `refs/heads/main`, `refs/tags/v1`, `refs/pull/3/merge`…
    pub reference: Option<String>,
    pub commit: String,
}

/// Detect the platform from `env`.
pub fn detect(env: Env) -> Run {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    if var("GITHUB_ACTIONS").as_deref() == Some("true") {
        github(&var)
    } else if var("GITLAB_CI").as_deref() == Some("true") {
        gitlab(&var)
    } else {
        Run {
            builder_id: LOCAL_BUILDER_ID.to_string(),
            builder_version: BTreeMap::new(),
            invocation_id: None,
            external: None,
            internal: None,
            source: None,
        }
    }
}

/// The non-empty string values of `pairs` as a JSON object (absent variables are left out, not `null`).
fn object(pairs: &[(&str, Option<String>)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), Value::String(v))))
        .collect();
    Value::Object(map)
}

fn github(var: &dyn Fn(&str) -> Option<String>) -> Run {
    let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
    let server = server.trim_end_matches('/');
    let repo = var("GITHUB_REPOSITORY");
    let repo_url = repo.as_ref().map(|r| format!("{server}/{r}"));
    // GITHUB_WORKFLOW_REF = "octo/app/.github/workflows/release.yml@refs/heads/main": the workflow file at the
    // ref it ran from. Prefixed with the server it is the builder id GitHub's own attestations carry.
    let workflow_ref = var("GITHUB_WORKFLOW_REF");
    let (path, wf_ref) = workflow_ref
        .as_deref()
        .map(|w| {
            let rel = repo
                .as_deref()
                .and_then(|r| w.strip_prefix(r)?.strip_prefix('/'))
                .unwrap_or(w);
            let (p, r) = rel
                .split_once("@refs/")
                .map(|(p, r)| (p.to_string(), format!("refs/{r}")))
                .or_else(|| rel.rsplit_once('@').map(|(p, r)| (p.into(), r.into())))
                .unwrap_or_else(|| (rel.to_string(), String::new()));
            (Some(p), Some(r).filter(|r| !r.is_empty()))
        })
        .unwrap_or((None, None));
    let builder_id = match &workflow_ref {
        Some(w) => format!("{server}/{w}"),
        // Runners before GITHUB_WORKFLOW_REF (GHES < 3.9): GitHub's generic runner id, hosted or self-hosted.
        None => format!(
            "https://github.com/actions/runner/{}",
            var("RUNNER_ENVIRONMENT").unwrap_or_else(|| "unknown".into())
        ),
    };
    let invocation_id = match (&repo_url, var("GITHUB_RUN_ID")) {
        (Some(u), Some(id)) => Some(format!(
            "{u}/actions/runs/{id}/attempts/{}",
            var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into())
        )),
        _ => None,
    };
    let external = (repo_url.is_some() || path.is_some()).then(|| {
        (
            "workflow",
            object(&[
                ("repository", repo_url.clone()),
                ("path", path),
                ("ref", wf_ref),
            ]),
        )
    });
    let internal = object(&[
        ("eventName", var("GITHUB_EVENT_NAME")),
        ("repositoryId", var("GITHUB_REPOSITORY_ID")),
        ("repositoryOwnerId", var("GITHUB_REPOSITORY_OWNER_ID")),
        ("runnerEnvironment", var("RUNNER_ENVIRONMENT")),
        ("runnerOs", var("RUNNER_OS")),
        ("runnerArch", var("RUNNER_ARCH")),
        ("workflowSha", var("GITHUB_WORKFLOW_SHA")),
    ]);
    let source = match (&repo_url, var("GITHUB_SHA")) {
        (Some(u), Some(sha)) => Some(CiSource {
            repository: u.clone(),
            reference: var("GITHUB_REF"),
            commit: sha,
        }),
        _ => None,
    };
    Run {
        builder_id,
        builder_version: BTreeMap::new(),
        invocation_id,
        external,
        internal: Some(("github", internal)),
        source,
    }
}

fn gitlab(var: &dyn Fn(&str) -> Option<String>) -> Run {
    let server = var("CI_SERVER_URL").unwrap_or_else(|| "https://gitlab.com".into());
    let server = server.trim_end_matches('/').to_string();
    let project =
        var("CI_PROJECT_URL").or_else(|| var("CI_PROJECT_PATH").map(|p| format!("{server}/{p}")));
    // npm's GitLab provenance: one builder per runner, under the project (runners differ in trust: shared,
    // group, or a self-hosted one the project's maintainers control).
    let builder_id = match (&project, var("CI_RUNNER_ID")) {
        (Some(p), Some(r)) => format!("{p}/-/runners/{r}"),
        (Some(p), None) => format!("{p}/-/runners"),
        (None, _) => format!("{server}/-/runners"),
    };
    let invocation_id = var("CI_JOB_URL").or_else(|| {
        project
            .as_ref()
            .zip(var("CI_JOB_ID"))
            .map(|(p, id)| format!("{p}/-/jobs/{id}"))
    });
    // The ref as git names it: a tag pipeline, a merge request's ref, else the branch.
    let reference = var("CI_COMMIT_TAG")
        .map(|t| format!("refs/tags/{t}"))
        .or_else(|| var("CI_MERGE_REQUEST_REF_PATH"))
        .or_else(|| var("CI_COMMIT_BRANCH").map(|b| format!("refs/heads/{b}")))
        .or_else(|| var("CI_COMMIT_REF_NAME"));
    let external = object(&[
        ("project", project.clone()),
        ("ref", reference.clone()),
        ("configPath", var("CI_CONFIG_PATH")),
        ("job", var("CI_JOB_NAME")),
        ("pipelineSource", var("CI_PIPELINE_SOURCE")),
    ]);
    let internal = object(&[
        ("pipelineUrl", var("CI_PIPELINE_URL")),
        ("pipelineId", var("CI_PIPELINE_ID")),
        ("jobId", var("CI_JOB_ID")),
        ("projectId", var("CI_PROJECT_ID")),
        ("runnerId", var("CI_RUNNER_ID")),
        ("serverVersion", var("CI_SERVER_VERSION")),
    ]);
    let builder_version = var("CI_RUNNER_VERSION")
        .map(|v| [("gitlab-runner".to_string(), v)].into())
        .unwrap_or_default();
    let source = project.zip(var("CI_COMMIT_SHA")).map(|(p, sha)| CiSource {
        repository: p,
        reference,
        commit: sha,
    });
    Run {
        builder_id,
        builder_version,
        invocation_id,
        external: Some(("pipeline", external)),
        internal: Some(("gitlab", internal)),
        source,
    }
}
