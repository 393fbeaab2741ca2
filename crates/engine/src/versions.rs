//! Version schemes (`auto`, `semver:*`, `git`, explicit) and the next free version from a tag list.
//!
//! * `auto`: `v<N>` tags, compared numerically (`v10` > `v9`). Only canonical numbers count: `v01`, `V3`, `v1.2`
//!   are not `auto` versions and are ignored (`v01` would be ambiguous with `v1`). Nothing yet → `v1`.
//! * `semver:patch|minor|major`: `X.Y.Z` or `vX.Y.Z` tags, semver precedence. The bump starts from the highest
//!   *release* (pre-releases are ignored), from nothing `0.0.1` / `0.1.0` / `1.0.0`. With `--pre NAME` the result
//!   is `X.Y.Z-NAME.N` for that same bumped `X.Y.Z`, `N` one above the highest existing `X.Y.Z-NAME.N` (else 1).
//!   So a pre-release line continues until `X.Y.Z` itself is released: after `1.2.0`, `semver:minor --pre rc`
//!   gives `1.3.0-rc.1`, then `1.3.0-rc.2`; once `1.3.0` exists it gives `1.4.0-rc.1`. The `v` prefix follows
//!   the highest release (the highest pre-release when there is no release; ties prefer `v`; none → no prefix).
//!   Build metadata (`+…`) cannot occur: `+` is not allowed in tags.
//! * `git`: `git describe --tags --always --dirty` sanitized into the tag grammar; a dirty tree is refused
//!   unless `--allow-dirty`.
//! * explicit: the value itself, never changed or retried. A value within two edits of a scheme name, or a bare
//!   `patch`/`minor`/`major`, is refused as a probable typo (see [`near_miss`]); `=VALUE` is always literal.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::git::GitInfo;
use crate::tag::Tag;

/// Tags that are expected to move; never used as versions, written only with `--allow-floating`.
pub const DEFAULT_FLOATING: &[&str] = &[
    "latest", "stable", "edge", "main", "master", "head", "canary", "dev", "nightly",
];

/// Whether `tag` is in the floating list (case-insensitive).
pub fn is_floating<S: AsRef<str>>(tag: &str, list: &[S]) -> bool {
    list.iter().any(|f| f.as_ref().eq_ignore_ascii_case(tag))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    Auto,
    Semver { bump: Bump, pre: Option<String> },
    Git { allow_dirty: bool },
    Explicit(Tag),
}

impl Scheme {
    /// Parse `--version auto|semver:patch|semver:minor|semver:major|git|VALUE` with `--pre` and `--allow-dirty`.
    ///
    /// A VALUE that looks like a mistyped scheme ([`near_miss`]: `atuo`, `Auto`, `patch`, `semver:ptach`) is a
    /// usage error saying what was probably meant, since an explicit version is published as a permanent tag;
    /// `=VALUE` always takes VALUE literally (`--version =patch` publishes the tag `patch`).
    pub fn parse(s: &str, pre: Option<&str>, allow_dirty: bool) -> Result<Scheme> {
        const EXPECTED: &str = "auto, semver:patch, semver:minor, semver:major, git, or a literal version tag \
             (=VALUE forces a literal)";
        if let Some(literal) = s.strip_prefix('=') {
            let scheme = Scheme::Explicit(
                literal
                    .parse()
                    .map_err(|_| Error::invalid_arg("--version", s, EXPECTED))?,
            );
            if let Some(p) = pre {
                return Err(Error::invalid_arg(
                    "--pre",
                    p,
                    "--pre only applies to --version semver:*",
                ));
            }
            return Ok(scheme);
        }
        if let Some(meant) = near_miss(s) {
            return Err(Error::invalid_arg(
                "--version",
                s,
                format!(
                    "did you mean {meant:?}? (an explicit version that looks like a scheme name must be \
                     written ={s} to be published as a tag)"
                ),
            ));
        }
        let scheme = match s {
            "auto" => Scheme::Auto,
            "git" => Scheme::Git { allow_dirty },
            _ if s.starts_with("semver") => {
                let bump = match s {
                    "semver:patch" => Bump::Patch,
                    "semver:minor" => Bump::Minor,
                    "semver:major" => Bump::Major,
                    _ => return Err(Error::invalid_arg("--version", s, EXPECTED)),
                };
                if let Some(p) = pre {
                    let mut b = p.bytes();
                    let ok = b.next().is_some_and(|c| c.is_ascii_alphabetic())
                        && b.all(|c| c.is_ascii_alphanumeric() || c == b'-');
                    if !ok {
                        return Err(Error::invalid_arg(
                            "--pre",
                            p,
                            "a letter followed by letters, digits or '-' (e.g. rc, beta)",
                        ));
                    }
                }
                return Ok(Scheme::Semver {
                    bump,
                    pre: pre.map(str::to_string),
                });
            }
            _ => Scheme::Explicit(
                s.parse()
                    .map_err(|_| Error::invalid_arg("--version", s, EXPECTED))?,
            ),
        };
        if let Some(p) = pre {
            return Err(Error::invalid_arg(
                "--pre",
                p,
                "--pre only applies to --version semver:*",
            ));
        }
        Ok(scheme)
    }
}

/// The scheme names a `--version` value is checked against.
const SCHEMES: &[&str] = &[
    "auto",
    "git",
    "semver:patch",
    "semver:minor",
    "semver:major",
];

/// The scheme `s` probably meant when it is not one exactly: a scheme name in other case (`Auto`), or within two
/// edits of one, case-insensitively (`atuo`, `semver:ptach`, `gti`), or of a bare bump word (`patch`, `majro` →
/// `semver:patch`, `semver:major`). `None` for the schemes themselves and for everything else (an explicit
/// version).
pub fn near_miss(s: &str) -> Option<&'static str> {
    if SCHEMES.contains(&s) {
        return None;
    }
    // Edits: insertions, deletions, substitutions and swaps of neighbours (`atuo`, `majro`: one each).
    let lower = s.to_ascii_lowercase();
    let words = SCHEMES.iter().map(|c| (*c, *c)).chain([
        ("patch", "semver:patch"),
        ("minor", "semver:minor"),
        ("major", "semver:major"),
    ]);
    words
        .map(|(word, meant)| (strsim::osa_distance(&lower, word), meant))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, meant)| meant)
}

/// `v<N>` with a canonical decimal `N`.
pub(crate) fn parse_vn(s: &str) -> Option<u64> {
    let d = s.strip_prefix('v')?;
    if d.is_empty() || !d.bytes().all(|c| c.is_ascii_digit()) || (d.len() > 1 && d.starts_with('0'))
    {
        return None;
    }
    d.parse().ok()
}

/// A `[v]X.Y.Z[-pre]` tag. Parsing and precedence are the `semver` crate's (the spec's rules: no leading zeros,
/// numeric identifiers below alphanumeric ones, a release above its pre-releases); kiln adds the optional `v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SemVer {
    version: semver::Version,
    /// Written `vX.Y.Z` (a bump keeps the style).
    v: bool,
}

impl SemVer {
    fn parse(s: &str) -> Option<SemVer> {
        let (v, s) = s.strip_prefix('v').map_or((false, s), |r| (true, r));
        let version = semver::Version::parse(s).ok()?;
        Some(SemVer { version, v })
    }

    fn core(&self) -> (u64, u64, u64) {
        (self.version.major, self.version.minor, self.version.patch)
    }

    fn is_release(&self) -> bool {
        self.version.pre.is_empty()
    }

    fn precedence(&self, o: &Self) -> Ordering {
        self.version.cmp_precedence(&o.version)
    }

    /// `N` when this is `X.Y.Z-NAME.N`.
    fn pre_number(&self, name: &str) -> Option<u64> {
        let (n, k) = self.version.pre.as_str().split_once('.')?;
        if n != name || !k.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        k.parse().ok()
    }
}

/// Semver tags with the tag, highest first (precedence, then tag text: `v1.0.0` before `1.0.0`).
fn semvers(tags: &[Tag]) -> Vec<(SemVer, &Tag)> {
    let mut v: Vec<_> = tags
        .iter()
        .filter_map(|t| Some((SemVer::parse(t.as_str())?, t)))
        .collect();
    v.sort_by(|a, b| b.0.precedence(&a.0).then_with(|| b.1.cmp(a.1)));
    v
}

fn tag(s: String) -> Result<Tag> {
    s.parse()
        .map_err(|_| Error::Version(format!("computed version {s:?} is not a valid tag")))
}

/// The version the scheme gives next, given the tags that exist now (and, for `git`, the repository state).
pub fn next_version(scheme: &Scheme, existing: &[Tag], git: Option<&GitInfo>) -> Result<Tag> {
    match scheme {
        Scheme::Explicit(t) => Ok(t.clone()),
        Scheme::Auto => {
            let max = existing.iter().filter_map(|t| parse_vn(t.as_str())).max();
            let n = max.map_or(Some(1), |m| m.checked_add(1));
            tag(format!(
                "v{}",
                n.ok_or_else(|| Error::Version("v<N> versions exhausted".into()))?
            ))
        }
        Scheme::Semver { bump, pre } => {
            let all = semvers(existing);
            let base = all.iter().find(|(s, _)| s.is_release());
            let v = base.or(all.first()).is_some_and(|(s, _)| s.v);
            let (x, y, z) = base.map_or((0, 0, 0), |(s, _)| s.core());
            let over = || Error::Version("semver component overflow".into());
            let core = match bump {
                Bump::Patch => (x, y, z.checked_add(1).ok_or_else(over)?),
                Bump::Minor => (x, y.checked_add(1).ok_or_else(over)?, 0),
                Bump::Major => (x.checked_add(1).ok_or_else(over)?, 0, 0),
            };
            let mut s = format!(
                "{}{}.{}.{}",
                if v { "v" } else { "" },
                core.0,
                core.1,
                core.2
            );
            if let Some(name) = pre {
                let n = all
                    .iter()
                    .filter(|(s, _)| s.core() == core)
                    .filter_map(|(s, _)| s.pre_number(name))
                    .max();
                let n = n.map_or(Some(1), |m| m.checked_add(1)).ok_or_else(over)?;
                s = format!("{s}-{name}.{n}");
            }
            tag(s)
        }
        Scheme::Git { allow_dirty } => {
            let g = git.ok_or_else(|| {
                Error::Version(
                    "--version git: the build context is not in a git repository; \
                     use --version auto, semver:*, or an explicit version"
                        .into(),
                )
            })?;
            if g.dirty && !allow_dirty {
                return Err(Error::Version(format!(
                    "--version git: the working tree has uncommitted or untracked changes ({}); commit or \
                     stash them, or pass --allow-dirty to publish a \"-dirty\" version",
                    g.describe
                )));
            }
            let mut d = g.describe.clone();
            if g.dirty && !d.ends_with("-dirty") {
                d.push_str("-dirty");
            }
            sanitize(&d)
        }
    }
}

/// Make `s` a tag: characters outside `[A-Za-z0-9_.-]` become `-`, a leading `.`/`-` becomes `_`, max 128.
pub fn sanitize(s: &str) -> Result<Tag> {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if out.starts_with(['.', '-']) {
        out.replace_range(..1, "_");
    }
    tag(out)
}

/// The next version after `taken` was lost to another publisher. `existing` may lag behind (registries list
/// eventually), so `taken` counts as existing. Explicit and git versions are fixed: they are never retried.
pub fn next_after(scheme: &Scheme, taken: &Tag, existing: &[Tag]) -> Result<Tag> {
    match scheme {
        Scheme::Auto | Scheme::Semver { .. } => {
            let mut all = existing.to_vec();
            all.push(taken.clone());
            next_version(scheme, &all, None)
        }
        Scheme::Explicit(_) | Scheme::Git { .. } => Err(Error::Version(format!(
            "version {taken} is fixed by --version and was taken by another image; it is never retried"
        ))),
    }
}

/// Sort in version order: `v<N>` numerically, then semver by precedence, then everything else lexically.
pub fn sort_tags(tags: &mut [Tag]) {
    fn key(t: &Tag) -> (u8, u64, Option<SemVer>) {
        if let Some(n) = parse_vn(t.as_str()) {
            return (0, n, None);
        }
        match SemVer::parse(t.as_str()) {
            Some(s) => (1, 0, Some(s)),
            None => (2, 0, None),
        }
    }
    tags.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then_with(|| match (&ka.2, &kb.2) {
                (Some(x), Some(y)) => x.precedence(y),
                _ => Ordering::Equal,
            })
            .then_with(|| a.cmp(b))
    });
}

/// A version of the same scheme already on this digest (the highest), to reuse instead of minting a new one:
/// a rebuild of unchanged output is not a release. `auto` reuses `v<N>`; `semver` a release `X.Y.Z`, or with
/// `--pre NAME` an `X.Y.Z-NAME.N`. `git` and explicit versions are fixed, so `None` (the tag policy already
/// treats "tag points at this digest" as nothing to do).
pub fn reusable_version(scheme: &Scheme, tags_on_same_digest: &[Tag]) -> Option<Tag> {
    match scheme {
        Scheme::Auto => tags_on_same_digest
            .iter()
            .filter_map(|t| Some((parse_vn(t.as_str())?, t)))
            .max()
            .map(|x| x.1.clone()),
        Scheme::Semver { pre, .. } => semvers(tags_on_same_digest)
            .into_iter()
            .find(|(s, _)| match pre {
                None => s.is_release(),
                Some(name) => s.pre_number(name).is_some(),
            })
            .map(|x| x.1.clone()),
        Scheme::Git { .. } | Scheme::Explicit(_) => None,
    }
}

/// Tags of `tags` that `scheme` would consider its versions, highest first (for reuse lookups).
pub fn scheme_versions(scheme: &Scheme, tags: &[Tag]) -> Vec<Tag> {
    let mut v: Vec<Tag> = tags
        .iter()
        .filter(|t| reusable_version(scheme, std::slice::from_ref(t)).is_some())
        .cloned()
        .collect();
    sort_tags(&mut v);
    v.reverse();
    v
}

#[cfg(test)]
mod tests;
