//! SLSA v1 build provenance: an in-toto Statement v1 saying which image(s) kiln built (`subject`), from what
//! (the settings, the base image by digest, the git commit of the build directory), on which platform (`builder`,
//! the CI run) and when. It is a separate document (attached to the image as an OCI referrer by the caller):
//! nothing here goes in the image, so times and git state never change an image digest.
//!
//! - `statement`: the serde types of the two specs.
//! - `ci`: the platform, from environment variables (GitHub Actions, GitLab CI, else local).
//! - `scrub`: secrets out (settings keys, URL credentials, the platforms' token variables).
//!
//! What each field holds is documented for users in README ("Supply chain: SBOM and provenance"), which is also
//! the description [`BUILD_TYPE`] and [`ci::LOCAL_BUILDER_ID`] stand for.

mod ci;
mod scrub;
pub mod statement;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::rfc3339;
use crate::reference::Reference;

pub use crate::git::{GitSource, strip_credentials};
pub use ci::{LOCAL_BUILDER_ID, SECRET_VARS};
pub use statement::Statement;

/// Media type of the statement blob: an unsigned in-toto statement as JSON (the in-toto spec's type; BuildKit
/// uses it for the layers of its attestation manifests).
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";

/// `artifactType` of the referrer manifest that carries the statement. Peers: BuildKit keeps in-toto layers in
/// an attestation manifest inside the image index (annotation `vnd.docker.reference.type: attestation-manifest`,
/// each layer annotated with `in-toto.io/predicate-type`); cosign and GitHub's `actions/attest` push *signed*
/// Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`, annotation
/// `dev.sigstore.bundle.predicateType`). kiln's statement is unsigned, so it is typed as what it is: in-toto JSON,
/// with the predicate type in [`ANNOTATION_PREDICATE_TYPE`] so a client can pick provenance out of the referrers
/// (an SBOM statement would share the artifact type).
pub const ARTIFACT_TYPE: &str = MEDIA_TYPE;

/// Annotation (on the referrer manifest and on its layer) holding [`PREDICATE_TYPE`]: BuildKit's key.
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// in-toto Statement v1 `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// SLSA Provenance v1 `predicateType` (v1.0 and v1.1 share it).
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// `buildDefinition.buildType`: "kiln built an image from a directory". Stable: it changes only if the meaning
/// of `externalParameters` does (then to `/v2`). The layout of the parameters is documented in README.
pub const BUILD_TYPE: &str = "https://kiln.dev/build/v1";

/// An artifact the statement is about: an image manifest (or, for a multi-platform image, the index and each
/// platform's manifest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The repository, without tag or digest (`registry.example/team/app`).
    pub name: String,
    pub digest: Digest,
}

/// Everything the statement says. The integrator fills it; [`generate`] adds what the CI environment says.
pub struct ProvenanceInput<'a> {
    /// The image manifest (and the index, for multi-platform). At least one.
    pub subjects: &'a [Subject],
    /// The resolved settings kiln built from (flags and kiln.toml after defaults), as JSON. Secrets are
    /// masked anyway (see the module `scrub`), but pass only settings, never credentials.
    pub parameters: Value,
    /// The base image: the reference as the user gave it, and the digest kiln built on (the platform's
    /// manifest; for an index, what was resolved).
    pub base: Option<(String, Digest)>,
    /// The build directory's repository ([`git_source`]).
    pub git: Option<GitSource>,
    pub started: SystemTime,
    pub finished: SystemTime,
    /// The environment (`&|k| std::env::var(k).ok()`), a closure so tests pass a map.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// kiln's version (`env!("CARGO_PKG_VERSION")`).
    pub tool_version: &'a str,
}

/// The statement as JSON bytes (pretty, keys in the specs' order): the same input gives the same bytes.
pub fn generate(input: &ProvenanceInput) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(&statement(input)?).map_err(|e| failed(e.to_string()))
}

/// The statement as a value (what [`generate`] serializes).
pub fn statement(input: &ProvenanceInput) -> Result<Statement> {
    if input.subjects.is_empty() {
        return Err(failed(
            "no subject: provenance must name the image it describes",
        ));
    }
    let run = ci::detect(input.env);

    let mut external: BTreeMap<String, Value> = BTreeMap::new();
    external.insert(
        "settings".into(),
        scrub::parameters(input.parameters.clone()),
    );
    if let Some((k, v)) = run.external.clone() {
        external.insert(k.into(), v);
    }
    let mut internal: BTreeMap<String, Value> = BTreeMap::new();
    internal.insert("kiln".into(), json!({ "version": input.tool_version }));
    if let Some((k, v)) = run.internal.clone().filter(|(_, v)| v != &json!({})) {
        internal.insert(k.into(), v);
    }
    let mut version = run.builder_version.clone();
    version.insert("kiln".into(), input.tool_version.into());

    let st = Statement {
        type_: STATEMENT_TYPE.into(),
        subject: input
            .subjects
            .iter()
            .map(|s| statement::ResourceDescriptor {
                name: Some(s.name.clone()),
                digest: statement::sha256(&s.digest),
                ..Default::default()
            })
            .collect(),
        predicate_type: PREDICATE_TYPE.into(),
        predicate: statement::Provenance {
            build_definition: statement::BuildDefinition {
                build_type: BUILD_TYPE.into(),
                external_parameters: external,
                internal_parameters: internal,
                resolved_dependencies: dependencies(input, &run),
            },
            run_details: statement::RunDetails {
                builder: statement::Builder {
                    id: run.builder_id.clone(),
                    builder_dependencies: Vec::new(),
                    version,
                },
                metadata: statement::BuildMetadata {
                    invocation_id: run.invocation_id.clone(),
                    started_on: Some(timestamp(input.started, "start")?),
                    finished_on: Some(timestamp(input.finished, "finish")?),
                },
                byproducts: Vec::new(),
            },
        },
    };

    // Last: the values of the platforms' credential variables, wherever they got in. Through a JSON value and
    // back, so the scrub sees every string the document will have.
    let secrets: Vec<String> = SECRET_VARS.iter().filter_map(|k| (input.env)(k)).collect();
    let mut v = serde_json::to_value(&st).map_err(|e| failed(e.to_string()))?;
    scrub::values(&mut v, &secrets);
    serde_json::from_value(v).map_err(|e| failed(e.to_string()))
}

/// The git repository of the build directory `dir` (commit, branch, remote URL without credentials, dirty).
pub fn git_source(dir: &std::path::Path) -> Option<GitSource> {
    GitSource::discover(dir)
}

/// `--source-annotations`: `org.opencontainers.image.source` (the remote, credentials removed) and `.revision`
/// (the commit) of the repository `dir` is in, for the manifest. An error when `dir` is in no git work tree.
pub fn source_annotations(dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    let g = GitSource::discover(dir).ok_or_else(|| {
        Error::invalid_arg(
            "--source-annotations",
            dir.display().to_string(),
            "the build directory is not inside a git work tree",
        )
    })?;
    let mut out = vec![("org.opencontainers.image.revision".to_string(), g.commit)];
    if let Some(url) = g.remote_url {
        out.push(("org.opencontainers.image.source".to_string(), url));
    }
    Ok(out)
}

/// `resolvedDependencies`: the source commit(s), then the base image.
fn dependencies(input: &ProvenanceInput, run: &ci::Run) -> Vec<statement::ResourceDescriptor> {
    let mut deps = Vec::new();
    let ci = run.source.as_ref();
    if let Some(g) = &input.git {
        // CI checkouts are detached: take the ref (and, without a remote, the URL) from the platform when it
        // checked out this same commit.
        let same = ci.filter(|c| c.commit == g.commit);
        let reference = g
            .reference
            .clone()
            .or_else(|| same.and_then(|c| c.reference.clone()));
        let repo = g
            .remote_url
            .clone()
            .or_else(|| same.map(|c| c.repository.clone()));
        deps.push(git_dependency(
            repo.as_deref(),
            reference.as_deref(),
            &g.commit,
            g.dirty,
        ));
    }
    if let Some(c) = ci.filter(|c| input.git.as_ref().is_none_or(|g| g.commit != c.commit)) {
        // The commit the workflow ran at, when the build directory is not that checkout.
        deps.push(git_dependency(
            Some(&c.repository),
            c.reference.as_deref(),
            &c.commit,
            false,
        ));
    }
    if let Some((reference, digest)) = &input.base {
        deps.push(statement::ResourceDescriptor {
            name: Some(reference.clone()),
            uri: oci_purl(reference, digest),
            digest: statement::sha256(digest),
            ..Default::default()
        });
    }
    deps
}

/// `{uri: "git+https://host/repo@refs/heads/main", digest: {gitCommit}}`, as SLSA's examples write a commit.
fn git_dependency(
    repo: Option<&str>,
    reference: Option<&str>,
    commit: &str,
    dirty: bool,
) -> statement::ResourceDescriptor {
    let uri = repo.map(|r| {
        let mut uri = format!("git+{}", uri_of_remote(&strip_credentials(r)));
        if let Some(reference) = reference {
            uri.push('@');
            uri.push_str(reference);
        }
        uri
    });
    let mut annotations = BTreeMap::new();
    if dirty {
        // The tree had changes not in the commit: the image may not be what the commit describes.
        annotations.insert("dirty".to_string(), Value::Bool(true));
    }
    statement::ResourceDescriptor {
        uri,
        digest: [("gitCommit".to_string(), commit.to_ascii_lowercase())].into(),
        annotations,
        ..Default::default()
    }
}

/// A remote as a URI: scp-like `git@host:team/app.git` is `ssh://git@host/team/app.git`, a local path
/// `file:///srv/app.git`; URLs stay as they are.
fn uri_of_remote(remote: &str) -> String {
    let remote = remote.strip_prefix("git+").unwrap_or(remote);
    if remote.contains("://") {
        return remote.to_string();
    }
    if remote.starts_with('/') {
        return format!("file://{remote}");
    }
    match remote.split_once(':') {
        Some((host, path)) if !host.contains('/') && host.len() > 1 => {
            format!("ssh://{host}/{}", path.trim_start_matches('/'))
        }
        _ => remote.to_string(),
    }
}

/// The package URL of an OCI image (purl type `oci`: name = the last path segment, version = the digest,
/// `repository_url` and `tag` qualifiers), e.g.
/// `pkg:oci/debian@sha256%3A…?repository_url=docker.io/library/debian&tag=12`. `None` when `reference` is not a
/// registry reference (a local layout, `oci:PATH:TAG`).
pub fn oci_purl(reference: &str, digest: &Digest) -> Option<String> {
    let r: Reference = reference.parse().ok()?;
    let name = r.repository.rsplit('/').next().unwrap_or(&r.repository);
    let mut purl = format!(
        "pkg:oci/{}@sha256%3A{}?repository_url={}",
        name.to_ascii_lowercase(),
        digest.hex(),
        purl_encode(&r.name())
    );
    if let Some(tag) = &r.tag {
        purl.push_str("&tag=");
        purl.push_str(&purl_encode(tag.as_str()));
    }
    Some(purl)
}

/// Percent-encoding of a purl qualifier value: unreserved characters and `/` stay (as in the purl spec's examples).
fn purl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3339 UTC, whole seconds (in-toto's Timestamp).
fn timestamp(t: SystemTime, what: &str) -> Result<String> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| {
            failed(format!(
                "the build {what} time is before 1970: check the system clock"
            ))
        })?
        .as_secs();
    Ok(rfc3339(secs))
}

fn failed(reason: impl Into<String>) -> Error {
    Error::Image {
        what: "provenance".into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
