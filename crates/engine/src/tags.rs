//! `kiln tags` and `kiln next-version`: read-only views of a target's tags, through [`TagTarget`] so a local
//! layout and a registry repository answer the same way. Neither command writes anything.

use std::collections::HashMap;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::git::GitInfo;
use crate::publish::RemoteTags;
use crate::publish::{TagTarget, WriteOutcome};
use crate::registry::{Client, ClientOptions};
use crate::store::Layout;
use crate::tag::Tag;
use crate::target::{LayoutRef, Target};
use crate::versions::{self, Scheme};

/// A layout's tags as read once when opened (a consistent snapshot of `index.json`), for reading only.
/// A layout that does not exist yet (allowed by [`open_target`] for `next-version`) has no tags.
pub struct LayoutReader {
    display: String,
    /// Tag → manifest digest, in index order.
    tags: Vec<(Tag, Digest)>,
    by_tag: HashMap<Tag, Digest>,
}

impl LayoutReader {
    pub fn open(r: &LayoutRef, allow_missing: bool) -> Result<Self> {
        let display = LayoutRef {
            tag: None,
            digest: None,
            ..r.clone()
        }
        .to_string();
        let mut tags = Vec::new();
        if !allow_missing || r.path.exists() {
            let layout = Layout::open(&r.path)?;
            for e in layout.entries()? {
                // Annotations that are not tags (other tools may write `ref.name`s like `repo/x:1`) are skipped.
                if let Some(t) = e.tag.and_then(|t| t.parse::<Tag>().ok()) {
                    tags.push((t, Digest::from_oci(e.descriptor.digest())?));
                }
            }
        }
        let by_tag = tags.iter().cloned().collect();
        Ok(LayoutReader {
            display,
            tags,
            by_tag,
        })
    }
}

impl TagTarget for LayoutReader {
    fn describe(&self) -> String {
        self.display.clone()
    }

    fn list_tags(&self) -> Result<Vec<Tag>> {
        Ok(self.tags.iter().map(|(t, _)| t.clone()).collect())
    }

    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        Ok(self.by_tag.get(tag).cloned())
    }

    fn write_tag(&self, tag: &Tag, _seen: Option<&Digest>) -> Result<WriteOutcome> {
        Err(Error::Usage(format!(
            "{}: opened read-only, not writing tag {tag}",
            self.display
        )))
    }
}

/// The tag target a `kiln tags` / `kiln next-version` TARGET names. `allow_missing`: a layout or registry
/// repository that does not exist yet is an empty one (what a first build would see) instead of an error.
pub fn open_target(
    spec: &str,
    allow_missing: bool,
    registry: &ClientOptions,
) -> Result<Box<dyn TagTarget>> {
    match spec.parse::<Target>()? {
        Target::Layout(r) => {
            if r.tag.is_some() || r.digest.is_some() {
                return Err(Error::invalid_arg(
                    "target",
                    spec,
                    "expected a layout without a tag or digest: oci:PATH",
                ));
            }
            Ok(Box::new(LayoutReader::open(&r, allow_missing)?))
        }
        Target::Registry(reference) => {
            if reference.tag.is_some() || reference.digest.is_some() {
                return Err(Error::invalid_arg(
                    "target",
                    spec,
                    "expected a repository without a tag or digest: REGISTRY/REPO",
                ));
            }
            let repo = Client::new(registry.clone())?.repository(&reference);
            let tags = RemoteTags::new(repo, reference);
            Ok(Box::new(if allow_missing {
                tags
            } else {
                tags.must_exist()
            }))
        }
        Target::DockerArchive { .. } => Err(Target::archive_unsupported("kiln tags/next-version")),
    }
}

/// One listed tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagInfo {
    pub tag: Tag,
    pub digest: Digest,
}

/// Every tag of `target` with its digest, in version order (`versions::sort_tags`: `v<N>` numerically, then
/// semver, then the rest lexically). A tag that vanishes between listing and resolving is left out.
pub fn list(target: &dyn TagTarget) -> Result<Vec<TagInfo>> {
    let mut tags = target.list_tags()?;
    tags.sort();
    tags.dedup();
    versions::sort_tags(&mut tags);
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        if let Some(digest) = target.resolve(&tag)? {
            out.push(TagInfo { tag, digest });
        }
    }
    Ok(out)
}

/// What the next build would get, and what that tag points at now (explicit and git versions may exist).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NextVersion {
    pub repository: String,
    pub version: Tag,
    pub existing: Option<Digest>,
}

/// The version `scheme` gives next over `target`'s tags, with git versions describing `dir`'s repository. Reads
/// only.
pub fn next_version(
    target: &dyn TagTarget,
    scheme: &Scheme,
    dir: &std::path::Path,
) -> Result<NextVersion> {
    let git = if matches!(scheme, Scheme::Git { .. }) {
        Some(GitInfo::discover(dir)?.ok_or_else(|| {
            Error::Version(format!(
                "--version git: {} is not inside a git work tree; pass the build directory with --dir, or use \
                 --version auto or an explicit version",
                dir.display()
            ))
        })?)
    } else {
        None
    };
    compute_next(target, scheme, git.as_ref())
}

/// The version `scheme` gives next over `target`'s tags. Reads only.
pub fn compute_next(
    target: &dyn TagTarget,
    scheme: &Scheme,
    git: Option<&GitInfo>,
) -> Result<NextVersion> {
    let listed = target.list_tags()?;
    let version = versions::next_version(scheme, &listed, git)?;
    let existing = target.resolve(&version)?;
    Ok(NextVersion {
        repository: target.describe(),
        version,
        existing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<(&'static str, Digest)>);

    impl TagTarget for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn list_tags(&self) -> Result<Vec<Tag>> {
            Ok(self.0.iter().map(|(t, _)| t.parse().unwrap()).collect())
        }
        fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
            Ok(self
                .0
                .iter()
                .find(|(t, _)| *t == tag.as_str())
                .map(|x| x.1.clone()))
        }
        fn write_tag(&self, _: &Tag, _: Option<&Digest>) -> Result<WriteOutcome> {
            unreachable!("read-only commands never write")
        }
    }

    fn fake() -> Fake {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        Fake(vec![
            ("v10", a.clone()),
            ("latest", a.clone()),
            ("v9", b.clone()),
            ("1.2.3", b.clone()),
            ("v2", a),
            ("1.10.0", b),
        ])
    }

    #[test]
    fn lists_in_version_order() {
        let tags = list(&fake()).unwrap();
        let order: Vec<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(order, ["v2", "v9", "v10", "1.2.3", "1.10.0", "latest"]);
        assert_eq!(tags[0].digest, Digest::of(b"a"));
        let v = serde_json::to_value(&tags).unwrap();
        assert_eq!(v[2]["tag"], "v10");
        assert_eq!(v[2]["digest"], Digest::of(b"a").to_string());
    }

    #[test]
    fn next_version_reads_only_and_reports_an_existing_fixed_version() {
        let n = compute_next(&fake(), &Scheme::Auto, None).unwrap();
        assert_eq!((n.version.as_str(), n.existing), ("v11", None));
        let s = Scheme::parse("semver:minor", Some("rc"), false).unwrap();
        assert_eq!(
            compute_next(&fake(), &s, None).unwrap().version.as_str(),
            "1.11.0-rc.1"
        );
        let n = compute_next(&fake(), &Scheme::Explicit("v9".parse().unwrap()), None).unwrap();
        assert_eq!(n.existing, Some(Digest::of(b"b")));
    }

    #[test]
    fn tagged_targets_are_usage_errors() {
        for t in ["registry.example.com/team/web:v1", "oci:/tmp/x:v1"] {
            let e = open_target(t, true, &ClientOptions::default())
                .err()
                .unwrap();
            assert_eq!(e.exit_code(), 2, "{t}: {e}");
        }
    }
}
