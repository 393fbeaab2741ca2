//! A registry repository's tags as the tag policy sees them (`policy::TagTarget`): read only ([`RemoteTags`]) or
//! written with an image's exact bytes ([`RegistryTags`]).

use oci_spec::image::ImageManifest;

use super::policy::{TagTarget, WriteOutcome};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Root;
use crate::reference::Reference;
use crate::registry::{RawManifest, Repository};
use crate::tag::Tag;

/// A registry repository's tags, read only (`kiln tags`, `kiln next-version`, the early-push check of a build).
/// The tag list is fetched once: every question asked of one probe is answered from the same listing.
pub struct RemoteTags {
    pub repo: Repository,
    pub reference: Reference,
    listed: std::sync::OnceLock<Vec<String>>,
    /// A repository the registry does not know is an error (`kiln tags`), not an empty one (a first build).
    must_exist: bool,
}

impl RemoteTags {
    pub fn new(repo: Repository, reference: Reference) -> Self {
        RemoteTags {
            repo,
            reference,
            listed: std::sync::OnceLock::new(),
            must_exist: false,
        }
    }

    /// Listing a repository that does not exist is an error naming it (as `crane ls` and `skopeo list-tags`
    /// fail), instead of an empty list.
    pub fn must_exist(mut self) -> Self {
        self.must_exist = true;
        self
    }

    /// Every tag of the repository, including those that are not versions (fetched on first use).
    pub fn raw_tags(&self) -> Result<&[String]> {
        if let Some(t) = self.listed.get() {
            return Ok(t);
        }
        let t = if self.must_exist {
            self.repo.list_existing_tags().map_err(|e| {
                if e.not_found() {
                    e.context(format!(
                        "repository {} does not exist on its registry (check the name; a first push creates it)",
                        self.reference.name()
                    ))
                } else {
                    e
                }
            })?
        } else {
            self.repo.list_tags()?
        };
        Ok(self.listed.get_or_init(|| t))
    }
}

impl TagTarget for RemoteTags {
    fn describe(&self) -> String {
        self.reference.name()
    }

    fn list_tags(&self) -> Result<Vec<Tag>> {
        Ok(parse_tags(self.raw_tags()?.iter().map(String::as_str)))
    }

    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        resolve_tag(&self.repo, tag)
    }

    fn write_tag(&self, tag: &Tag, _: Option<&Digest>) -> Result<WriteOutcome> {
        Err(Error::Usage(format!(
            "{}: tag {tag} cannot be written from a read-only listing",
            self.reference.name()
        )))
    }
}

/// What a tag points at now (`HEAD` on the manifest).
fn resolve_tag(repo: &Repository, tag: &Tag) -> Result<Option<Digest>> {
    Ok(repo.head_manifest(tag.as_str())?.map(|(d, _, _)| d))
}

/// Tags that follow the grammar (registries may hold others, e.g. from old tools; they are not versions).
fn list_tags(repo: &Repository) -> Result<Vec<Tag>> {
    Ok(parse_tags(repo.list_tags()?.iter().map(String::as_str)))
}

fn parse_tags<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<Tag> {
    raw.filter_map(|t| t.parse().ok()).collect()
}

/// Tags of a registry repository, written by `PUT /v2/<name>/manifests/<tag>` with the image's exact bytes.
pub struct RegistryTags<'a> {
    pub repo: &'a Repository,
    pub reference: &'a Reference,
    pub root: &'a Root,
    /// The image the target's own tag pointed at when first resolved (`None` inside: the tag was absent).
    tagged: std::sync::OnceLock<Option<RawManifest>>,
    /// The last answer, when, and the client's request count then (see `resolve`).
    last: std::sync::Mutex<Option<Resolved>>,
}

/// A tag's resolution as of a moment.
struct Resolved {
    tag: Tag,
    digest: Option<Digest>,
    at: std::time::Instant,
    requests: u64,
}

/// How long an answer stays as good as a new one if nothing was sent meanwhile: longer than building a manifest,
/// and short beside the settle floor (`policy::SETTLE_FLOOR`, 100 ms): a version is written at most this long after
/// its check plus the write's own time, which is the window a competing publisher's read-back must cover.
const FRESH: std::time::Duration = std::time::Duration::from_millis(20);

impl<'a> RegistryTags<'a> {
    pub fn new(repo: &'a Repository, reference: &'a Reference, root: &'a Root) -> Self {
        RegistryTags {
            repo,
            reference,
            root,
            tagged: std::sync::OnceLock::new(),
            last: std::sync::Mutex::new(None),
        }
    }

    /// The blobs of the image the target tag pointed at, which the repository therefore holds (a registry accepts
    /// a manifest only with its blobs): a rebuild pushed to the same tag skips a `HEAD` for each layer it kept.
    /// Empty when the reference has no tag, the tag was absent or names an index.
    pub(super) fn known_blobs(&self) -> Vec<Digest> {
        let Some(Some(raw)) = self.tagged.get() else {
            return Vec::new();
        };
        serde_json::from_slice::<ImageManifest>(&raw.bytes)
            .ok()
            .and_then(|m| manifest_blobs(&m).ok())
            .unwrap_or_default()
    }
}

impl TagTarget for RegistryTags<'_> {
    fn describe(&self) -> String {
        self.reference.name()
    }

    fn list_tags(&self) -> Result<Vec<Tag>> {
        list_tags(self.repo)
    }

    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        // Asked again with nothing sent since (the check before the push, then the one before the write, when the
        // push had nothing left to send): the answer of a moment ago is all a new request could tell — the same
        // registry state, a round trip older. Used once; every later check asks the registry.
        let sent = self.repo.request_count();
        if let Some(r) = self.last.lock().expect("last resolution").take()
            && r.tag == *tag
            && r.requests == sent
            && r.at.elapsed() < FRESH
        {
            return Ok(r.digest);
        }
        // The first look at the target's own tag is a GET, as much work for the registry as a HEAD, and its body
        // tells which blobs are there (`known_blobs`). Later looks are HEADs.
        let digest = if self.reference.tag.as_ref() == Some(tag) && self.tagged.get().is_none() {
            let found = self.repo.find_manifest(tag.as_str())?;
            let digest = found.as_ref().map(|m| m.digest.clone());
            let _ = self.tagged.set(found);
            digest
        } else {
            resolve_tag(self.repo, tag)?
        };
        *self.last.lock().expect("last resolution") = Some(Resolved {
            tag: tag.clone(),
            digest: digest.clone(),
            at: std::time::Instant::now(),
            requests: self.repo.request_count(),
        });
        Ok(digest)
    }

    fn write_tag(&self, tag: &Tag, seen: Option<&Digest>) -> Result<WriteOutcome> {
        // A tag taken by another publisher between two attempts is a lost race, never overwritten.
        match self.repo.put_tag(
            tag.as_str(),
            &self.root.bytes,
            self.root.media_type.as_ref(),
            seen,
        ) {
            Ok(None) => Ok(WriteOutcome::Written),
            Ok(Some(_)) => Ok(WriteOutcome::Refused),
            Err(e) if is_immutable_refusal(&e) => Ok(WriteOutcome::Refused),
            Err(e) => Err(e),
        }
    }
}

/// Registries with tag immutability answer an overwrite with an error, not a silent move: ECR `TAG_INVALID`
/// ("tag … already exists … cannot be overwritten because the repository is immutable", and
/// `ImageAlreadyExistsException` for an identical re-push), Harbor 412 `PRECONDITION`, Artifact Registry 400/409
/// ("…tag immutability…", "cannot be overwritten"), distribution forks with `MANIFEST_TAGGED`/`DENIED`. All mean
/// "taken" — by this very image, for an identical re-push: the policy looks at the tag again to tell (`policy`).
fn is_immutable_refusal(e: &Error) -> bool {
    match e {
        Error::Registry {
            status,
            code,
            message,
            ..
        } => {
            let code = code.as_deref().unwrap_or("");
            let msg = message.to_ascii_lowercase();
            let says = ["immutab", "cannot be overwritten", "already exists"]
                .iter()
                .any(|w| msg.contains(w));
            matches!(status, Some(409 | 412))
                || matches!(code, "TAG_INVALID" | "MANIFEST_TAGGED")
                || (says && matches!(status, Some(400 | 403)))
        }
        Error::Context { source, .. } => is_immutable_refusal(source),
        _ => false,
    }
}

/// The config and layer digests of an image manifest.
pub(super) fn manifest_blobs(m: &ImageManifest) -> Result<Vec<Digest>> {
    std::iter::once(m.config())
        .chain(m.layers().iter())
        .map(|d| Digest::from_oci(d.digest()))
        .collect()
}
