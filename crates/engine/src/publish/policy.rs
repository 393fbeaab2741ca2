//! The tag policy: which tags to write, checked before anything is written, and writing them race-safely.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::git::GitInfo;
use crate::tag::Tag;
use crate::versions::{self, DEFAULT_FLOATING, Scheme, is_floating};

/// How many of the highest versions of the scheme are resolved when looking for one to reuse.
pub const REUSE_LOOKBACK: usize = 16;

/// Where tags live: a repository in a registry, or an OCI layout.
pub trait TagTarget {
    /// For messages, e.g. `127.0.0.1:5000/team/app` or `oci:./kiln-images`.
    fn describe(&self) -> String;
    fn list_tags(&self) -> Result<Vec<Tag>>;
    /// What `tag` points at now.
    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>>;
    /// Point `tag` at the image being published. `seen` is what the tag pointed at when last resolved (`None`:
    /// absent): a target that must try the write again checks first that the tag still points there, and
    /// answers `Refused` when another write came between (it never writes over one).
    fn write_tag(&self, tag: &Tag, seen: Option<&Digest>) -> Result<WriteOutcome>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The target refused because the tag exists and is immutable (ECR `TAG_INVALID`/`MANIFEST_TAGGED`,
    /// Harbor 412, …).
    Refused,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub version_scheme: Option<Scheme>,
    pub extra_tags: Vec<Tag>,
    pub floating_allowed: bool,
    pub floating_list: Vec<String>,
    pub force: bool,
    pub always_new: bool,
    pub max_race_retries: u32,
    /// The least time a freshly written version is left before it is read back (see [`settle_time`]); zero: no
    /// read-back wait at all (a layout, whose lock makes each tag write atomic).
    pub settle: Duration,
}

/// The default least settle time. It covers what a round trip cannot measure: another publisher's process being
/// descheduled between its check and its write (16 publishers on 2 cores: `tests/it/registry/versions.rs`).
pub const SETTLE_FLOOR: Duration = Duration::from_millis(100);
/// How many times this publisher's own check-and-write time the settle lasts at least: a competing write that can
/// still land is one whose check came before our write landed, so it lands within about one check-and-write of
/// that publisher — which, against the same registry, takes about as long as ours. Three leaves room for a
/// slower competitor.
const SETTLE_FACTOR: u32 = 3;
/// The most a settle lasts, however slow the registry answered (the fixed wait before issue 20 was 1 s).
const SETTLE_CAP: Duration = Duration::from_secs(2);

/// How long to wait before reading back a version written after `took` of checking and writing.
pub fn settle_time(floor: Duration, took: Duration) -> Duration {
    if floor.is_zero() {
        return Duration::ZERO;
    }
    floor.max(took * SETTLE_FACTOR).min(SETTLE_CAP.max(floor))
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            version_scheme: None,
            extra_tags: Vec::new(),
            floating_allowed: false,
            floating_list: DEFAULT_FLOATING.iter().map(|s| s.to_string()).collect(),
            force: false,
            always_new: false,
            // Every lost race means another publisher won a version, so progress is guaranteed; the bound only
            // stops a pathological loop (N publishers in lockstep lose at most N-1 times each).
            max_race_retries: 32,
            settle: SETTLE_FLOOR,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Version,
    Extra,
    Floating,
}

/// One tag to publish and what it points at now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTag {
    pub tag: Tag,
    pub role: Role,
    pub current: Option<Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub version: Option<Tag>,
    /// Every tag pointing at the image after publishing, in write order (including ones already in place).
    pub tags: Vec<Tag>,
    /// The version already pointed at this image: nothing was written for it.
    pub reused: bool,
    /// Versions lost to other publishers before `version` was won.
    pub raced: Vec<Tag>,
}

/// Check every tag before anything is written (reads only). `version` is a version fixed in advance (explicit,
/// git, reused); a freshly computed version is handled by [`publish`]'s race loop. Returns the tags in write
/// order: version, extra tags, floating tags.
pub fn plan_tags(
    target: &dyn TagTarget,
    digest: &Digest,
    version: Option<&Tag>,
    plan: &Plan,
) -> Result<Vec<PlannedTag>> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    if let Some(v) = version {
        if is_floating(v.as_str(), &plan.floating_list) {
            return Err(Error::Usage(format!(
                "version {v:?} is a floating tag and versions must be unique; \
                 use --tag {v} --allow-floating beside a real version"
            )));
        }
        seen.insert(v.clone());
        order.push((v.clone(), Role::Version));
    }
    let (mut fixed, mut floating) = (Vec::new(), Vec::new());
    for t in &plan.extra_tags {
        if !seen.insert(t.clone()) {
            continue;
        }
        if !is_floating(t.as_str(), &plan.floating_list) {
            fixed.push((t.clone(), Role::Extra));
        } else if plan.floating_allowed {
            floating.push((t.clone(), Role::Floating));
        } else {
            return Err(Error::Usage(format!(
                "tag {t:?} is a floating tag (it is meant to move to each new build); pass --allow-floating to \
                 write it after the unique version, or drop it"
            )));
        }
    }
    order.extend(fixed);
    order.extend(floating);
    let mut planned = Vec::with_capacity(order.len());
    for (tag, role) in order {
        let current = target.resolve(&tag)?;
        planned.push(PlannedTag { tag, role, current });
    }
    let conflicts: Vec<_> = planned
        .iter()
        .filter(|p| p.role != Role::Floating && !plan.force)
        .filter_map(|p| Some((p, p.current.as_ref().filter(|d| *d != digest)?)))
        .collect();
    if let Some((p, existing)) = conflicts.first() {
        let e = tag_exists(target, &p.tag, existing, digest);
        if conflicts.len() == 1 {
            return Err(e);
        }
        let names: Vec<_> = conflicts.iter().map(|(p, _)| p.tag.as_str()).collect();
        return Err(e.context(format!(
            "nothing was written: tags {} already point to other images in {}",
            names.join(", "),
            target.describe()
        )));
    }
    Ok(planned)
}

fn tag_exists(target: &dyn TagTarget, tag: &Tag, existing: &Digest, new: &Digest) -> Error {
    Error::TagExists {
        repository: target.describe(),
        tag: tag.to_string(),
        existing: existing.to_string(),
        new: new.to_string(),
    }
}

fn refused(target: &dyn TagTarget, tag: &Tag, reason: &str) -> Error {
    Error::TagRefused {
        repository: target.describe(),
        tag: tag.to_string(),
        reason: reason.to_string(),
    }
}

/// Publish `digest` under the plan's version and tags (see the module documentation for the guarantees).
/// `listed` is the target's tags as listed for this publish (only a version scheme needs them); every candidate
/// version is still checked just before it is written, and a lost race lists again.
pub fn publish(
    target: &dyn TagTarget,
    digest: &Digest,
    plan: &Plan,
    git: Option<&GitInfo>,
    listed: &[Tag],
) -> Result<Written> {
    let mut out = Written {
        version: None,
        tags: Vec::new(),
        reused: false,
        raced: Vec::new(),
    };
    // The version, and whether it is fixed (checked with the other tags) or fresh (won by the race loop).
    let version = match &plan.version_scheme {
        None => None,
        Some(s @ (Scheme::Explicit(_) | Scheme::Git { .. })) => {
            Some((versions::next_version(s, listed, git)?, true))
        }
        Some(s) => match (!plan.always_new)
            .then(|| reusable(target, s, listed, digest))
            .transpose()?
            .flatten()
        {
            Some(v) => Some((v, true)),
            None => Some((versions::next_version(s, listed, git)?, false)),
        },
    };
    let fixed = version.as_ref().filter(|v| v.1).map(|v| &v.0);
    let planned = plan_tags(target, digest, fixed, plan)?;

    if let Some((v, is_fixed)) = version {
        let won = if is_fixed {
            let p = &planned[0];
            out.reused = p.current.as_ref() == Some(digest);
            if !out.reused {
                claim(target, &v, digest, plan.force, plan.settle)?.map_err(|existing| {
                    match existing {
                        Some(d) => tag_exists(target, &v, &d, digest),
                        None => Error::Version(format!(
                            "{}: tag {v} did not point at this image after writing it (refused, deleted or \
                             not yet visible); check the repository before retrying",
                            target.describe()
                        )),
                    }
                })?;
            }
            v
        } else {
            let scheme = plan
                .version_scheme
                .as_ref()
                .expect("a fresh version has a scheme");
            let mut cand = v;
            loop {
                match claim(target, &cand, digest, false, plan.settle)? {
                    Ok(written) => {
                        out.reused = !written;
                        break cand;
                    }
                    Err(_) => out.raced.push(cand.clone()),
                }
                if out.raced.len() > plan.max_race_retries as usize {
                    let lost: Vec<_> = out.raced.iter().map(Tag::as_str).collect();
                    return Err(Error::Version(format!(
                        "{}: gave up after {} attempts, versions {} were taken by other publishers meanwhile; \
                         nothing else was written, retry the publish",
                        target.describe(),
                        lost.len(),
                        lost.join(", ")
                    )));
                }
                let mut now = target.list_tags()?;
                now.extend(out.raced.iter().cloned());
                cand = versions::next_after(scheme, &cand, &now)?;
            }
        };
        out.tags.push(won.clone());
        out.version = Some(won);
    }

    // Extra and floating tags. A failure here cannot be rolled back: say what is already in place.
    let mut written: Vec<&str> = Vec::new();
    if let Some(v) = out.version.as_ref().filter(|_| !out.reused) {
        written.push(v.as_str());
    }
    let so_far = |w: &[&str]| match w {
        [] => "nothing was written".to_string(),
        w => format!("already written: {}", w.join(", ")),
    };
    for p in planned.iter().filter(|p| p.role != Role::Version) {
        if p.current.as_ref() != Some(digest) {
            // Taken since the check? Only worth asking once something was written since: the check above was
            // the last request otherwise.
            if p.role == Role::Extra && !plan.force && !written.is_empty() {
                if let Some(d) = target.resolve(&p.tag)?.filter(|d| d != digest) {
                    let note = format!(
                        "tag {} in {} was taken by {d} while publishing {digest}; {}",
                        p.tag,
                        target.describe(),
                        so_far(&written)
                    );
                    return Err(tag_exists(target, &p.tag, &d, digest).context(note));
                }
            }
            if target.write_tag(&p.tag, p.current.as_ref())? == WriteOutcome::Refused
                && target.resolve(&p.tag)?.as_ref() != Some(digest)
            {
                return Err(refused(target, &p.tag, &so_far(&written)));
            }
            written.push(p.tag.as_str());
        }
        out.tags.push(p.tag.clone());
    }
    Ok(out)
}

/// Write `tag` if absent (or anyway when `force`) and verify it after [`settle_time`]. `Ok(Ok(true))` written and verified, `Ok(Ok(false))`
/// it already pointed at `digest`, `Ok(Err(current))` lost (points elsewhere, refused, or vanished).
fn claim(
    target: &dyn TagTarget,
    tag: &Tag,
    digest: &Digest,
    force: bool,
    settle: Duration,
) -> Result<Result<bool, Option<Digest>>> {
    let started = std::time::Instant::now();
    let seen = target.resolve(tag)?;
    match &seen {
        Some(d) if d == digest => return Ok(Ok(false)),
        Some(d) if !force => return Ok(Err(Some(d.clone()))),
        _ => {}
    }
    if target.write_tag(tag, seen.as_ref())? == WriteOutcome::Refused {
        // Refused, yet pointing at this image: an identical re-push some registries refuse (ECR), or our own
        // earlier attempt that landed. Not a lost race.
        return Ok(match target.resolve(tag)? {
            Some(d) if d == *digest => Ok(false),
            other => Err(other),
        });
    }
    std::thread::sleep(settle_time(settle, started.elapsed()));
    Ok(match target.resolve(tag)? {
        Some(d) if d == *digest => Ok(true),
        other => Err(other),
    })
}

/// The highest version of the scheme already on `digest`, looking at the [`REUSE_LOOKBACK`] highest.
fn reusable(
    target: &dyn TagTarget,
    scheme: &Scheme,
    listed: &[Tag],
    digest: &Digest,
) -> Result<Option<Tag>> {
    for t in versions::scheme_versions(scheme, listed)
        .into_iter()
        .take(REUSE_LOOKBACK)
    {
        if target.resolve(&t)?.as_ref() == Some(digest) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
