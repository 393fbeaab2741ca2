//! From a built image to its tags: choose the version, render `--tag` templates, check every tag before
//! anything is written (`publish::plan_tags`), then write them with the race-safe `publish::publish`.
//! Works on any `TagTarget`; the local layout's implementation is here, the registry's in `commands::remote`.

use std::path::Path;

use super::policy::{self, Plan, TagTarget, WriteOutcome};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::git::GitInfo;
use crate::image::Root;
use crate::store::Layout;
use crate::tag::Tag;
use crate::template::{self, TemplateContext};
use crate::versions::{self, Scheme};

/// What the user asked for, before the version is known.
#[derive(Debug, Clone, Default)]
pub struct TagRequest {
    pub scheme: Option<Scheme>,
    /// `--tag` values, possibly with `{…}` placeholders.
    pub templates: Vec<String>,
    /// `--allow-floating`, the floating list, `--force-tag`, `--always-new`.
    pub policy: Plan,
    /// SOURCE_DATE_EPOCH if set, for `{date}`.
    pub epoch: Option<i64>,
}

impl TagRequest {
    /// A tag written in the target itself (`oci:PATH:TAG`, `host/repo:TAG`) is one more `--tag`, first.
    pub fn add_target_tag(&mut self, tag: Option<&Tag>) {
        if let Some(t) = tag
            && !self.templates.iter().any(|x| x == t.as_str())
        {
            self.templates.insert(0, t.to_string());
        }
    }

    /// Whether git must be asked (git versions and `{git_sha}`-style placeholders).
    pub fn needs_git(&self) -> bool {
        matches!(self.scheme, Some(Scheme::Git { .. }))
            || self.templates.iter().any(|t| t.contains("{git_"))
    }

    /// Reject malformed templates before anything is built (a missing value is only known later).
    pub fn validate(&self) -> Result<()> {
        for t in &self.templates {
            let fake = Digest::of(b"");
            let ctx = TemplateContext {
                version: Some("v1".parse()?),
                git_sha: Some("0".repeat(40)),
                git_short_sha: Some("0".repeat(7)),
                epoch: Some(0),
                digest: Some(fake),
                env: &|_| Some("x".into()),
            };
            // With every value present, a failure is the template's own fault: a usage error (exit 2).
            template::render(t, &ctx).map_err(|e| match e {
                Error::Template { template, reason } => Error::InvalidArg {
                    flag: "--tag",
                    value: template,
                    expected: reason,
                },
                e => e,
            })?;
        }
        Ok(())
    }
}

/// The outcome: version (if any) first, then the other tags, in the order they were written.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub version: Option<Tag>,
    pub tags: Vec<Tag>,
    pub reused: bool,
    pub raced: Vec<Tag>,
    /// Why this version: `next after v41`, `reused: already points at this image`… (for the summary).
    pub why: Option<String>,
}

fn render_all(
    req: &TagRequest,
    version: Option<&Tag>,
    git: Option<&GitInfo>,
    digest: &Digest,
) -> Result<Vec<Tag>> {
    let env = |name: &str| std::env::var(name).ok();
    let ctx = TemplateContext {
        version: version.cloned(),
        git_sha: git.map(|g| g.sha.clone()),
        git_short_sha: git.map(|g| g.short_sha.clone()),
        epoch: Some(req.epoch.unwrap_or_else(now)),
        digest: Some(digest.clone()),
        env: &env,
    };
    req.templates
        .iter()
        .map(|t| template::render(t, &ctx))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What every publish starts from: git (when a version or template needs it), the target's tags, and the version
/// this publish will most likely get. Made once per publish ([`prepare`]): a registry build makes it while the
/// build output is walked, answers the early-push question with it ([`only_new_tags`]) and publishes with it
/// ([`publish_tags`]), so the tags are listed once (a listing may be several pages on ECR or GAR). Only a lost
/// race lists again.
pub struct Prepared {
    git: Option<GitInfo>,
    listed: Vec<Tag>,
    predicted: Option<Tag>,
}

/// Read what a publish of `req` to `target` needs (git, the tag list when a version scheme needs it).
pub fn prepare(target: &dyn TagTarget, req: &TagRequest, build_dir: &Path) -> Result<Prepared> {
    let git = if req.needs_git() {
        GitInfo::discover(build_dir)?
    } else {
        None
    };
    if matches!(req.scheme, Some(Scheme::Git { .. })) && git.is_none() {
        return Err(Error::Version(format!(
            "--version git: {} is not inside a git work tree; use --version auto or an explicit version",
            build_dir.display()
        )));
    }
    // Only a version scheme needs the tag list; explicit tags are resolved one by one (one request each either
    // way, and a listing may take several pages).
    let listed = match req.scheme {
        Some(_) => target.list_tags()?,
        None => Vec::new(),
    };
    let predicted = match &req.scheme {
        Some(s) => Some(versions::next_version(s, &listed, git.as_ref())?),
        None => None,
    };
    Ok(Prepared {
        git,
        listed,
        predicted,
    })
}

/// Whether this publish can only write new tags — every tag it would write is absent (floating ones aside, when
/// allowed), or `--force-tag` may move them — so no check can refuse it and blobs may go to the registry before the image's digest is known.
/// Reads only.
pub fn only_new_tags(target: &dyn TagTarget, req: &TagRequest, st: &Prepared) -> Result<bool> {
    // `--force-tag` moves any tag it must: no tag check can refuse the publish.
    if req.policy.force {
        return Ok(true);
    }
    if req.templates.iter().any(|t| template::needs_digest(t)) {
        return Ok(false);
    }
    let tags = render_all(
        req,
        st.predicted.as_ref(),
        st.git.as_ref(),
        &Digest::of(b""),
    )?;
    for t in st.predicted.iter().chain(&tags) {
        if versions::is_floating(t.as_str(), &req.policy.floating_list) {
            if !req.policy.floating_allowed {
                return Ok(false);
            }
        } else if st.listed.contains(t) || target.resolve(t)?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Check everything, run `before_write` (push blobs and the manifest by digest), then write the tags.
/// Nothing is written — not even by `before_write` — when a tag would be refused.
pub fn publish_tags(
    target: &dyn TagTarget,
    digest: &Digest,
    req: &TagRequest,
    prepared: &Prepared,
    before_write: &mut dyn FnMut() -> Result<()>,
) -> Result<Tagged> {
    // The predicted version: templates with {version} are checked with it now and rendered again below if a race
    // or reuse changes it.
    let Prepared {
        git,
        listed,
        predicted,
    } = prepared;
    let (git, listed) = (git.as_ref(), listed.as_slice());
    let pre_tags = render_all(req, predicted.as_ref(), git, digest)?;
    let uses_version = req.templates.iter().any(|t| t.contains("{version}"));
    let check = Plan {
        extra_tags: pre_tags.clone(),
        ..req.policy.clone()
    };
    let fixed = match &req.scheme {
        Some(Scheme::Explicit(_) | Scheme::Git { .. }) => predicted.as_ref(),
        _ => None,
    };
    policy::plan_tags(target, digest, fixed, &check)?;
    before_write()?;

    let first = Plan {
        version_scheme: req.scheme.clone(),
        extra_tags: if uses_version { Vec::new() } else { pre_tags },
        ..req.policy.clone()
    };
    let p = policy::publish(target, digest, &first, git, listed)?;
    let why = p.version.as_ref().map(|v| {
        let before = req.scheme.as_ref().and_then(|s| {
            versions::scheme_versions(s, listed)
                .into_iter()
                .find(|t| t != v)
        });
        match (&req.scheme, p.reused, before) {
            (_, true, _) => "reused: it already points at this image (same digest)".to_string(),
            (Some(Scheme::Explicit(_)), _, _) => "as given by --version".to_string(),
            (Some(Scheme::Git { .. }), _, _) => "from git describe".to_string(),
            (_, _, Some(b)) if p.raced.is_empty() => format!("next after {b}"),
            (_, _, Some(b)) => format!(
                "next after {b}; {} taken meanwhile by another publisher",
                p.raced
                    .iter()
                    .map(Tag::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (_, _, None) => "the first version of this scheme here".to_string(),
        }
    });
    let mut out = Tagged {
        version: p.version.clone(),
        tags: p.tags,
        reused: p.reused,
        raced: p.raced,
        why,
    };
    if uses_version {
        let extra = render_all(req, p.version.as_ref(), git, digest)?;
        let second = Plan {
            version_scheme: None,
            extra_tags: extra,
            ..req.policy.clone()
        };
        let q = policy::publish(target, digest, &second, git, &[])?;
        out.tags
            .extend(q.tags.into_iter().filter(|t| Some(t) != p.version.as_ref()));
    }
    Ok(out)
}

/// Tags in a local OCI layout. A write is create-if-absent under the layout's lock, so two kiln processes
/// racing for one version in one layout cannot both win: the loser sees `Refused` and takes the next.
pub struct LayoutTags<'a> {
    pub layout: &'a Layout,
    pub display: String,
    pub root: &'a Root,
    /// Which tags may be moved: floating ones when allowed, any with `--force-tag`.
    pub policy: &'a Plan,
}

impl TagTarget for LayoutTags<'_> {
    fn describe(&self) -> String {
        self.display.clone()
    }

    fn list_tags(&self) -> Result<Vec<Tag>> {
        Ok(self
            .layout
            .tags()?
            .into_iter()
            .filter_map(|t| t.parse().ok())
            .collect())
    }

    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        self.layout
            .resolve(tag.as_str())?
            .map(|d| Digest::from_oci(d.digest()))
            .transpose()
    }

    fn write_tag(&self, tag: &Tag, _seen: Option<&Digest>) -> Result<WriteOutcome> {
        let lock = self.layout.lock()?;
        if let Some(cur) = self.resolve(tag)?
            && cur != self.root.digest
            && !self.policy.force
            && !(self.policy.floating_allowed
                && versions::is_floating(tag.as_str(), &self.policy.floating_list))
        {
            return Ok(WriteOutcome::Refused);
        }
        self.layout.set_tag(&lock, Some(tag), self.root)?;
        Ok(WriteOutcome::Written)
    }
}

/// One stderr line per decision: the version and why, versions lost to other publishers.
pub fn report_tags(report: &Report, t: &Tagged) {
    for lost in &t.raced {
        report.note(format_args!(
            "version {lost} was taken by another publisher meanwhile; trying the next"
        ));
    }
    if let Some(v) = &t.version {
        if t.reused {
            report.step(format_args!(
                "version {v} reused: it already points at this image"
            ));
        } else {
            report.step(format_args!(
                "version {v}: new ({})",
                t.why.as_deref().unwrap_or("chosen")
            ));
        }
    }
}
