//! `kiln pin`: rewrite image references in YAML to pinned `REPO:VERSION@sha256:…` references, byte-preserving.
//!
//! The file is parsed by a real YAML parser ([`Yaml`]) and the image sites ([`sites`]) are found in the parsed
//! structure; then only the bytes of each matched scalar's text change. Comments, order, indentation, quoting
//! style, CRLF line endings, a BOM and a missing final newline are kept byte for byte; block and flow styles are
//! alike; every document of a `---` stream is read. Block scalars (`|`, `>`) and scalars whose text is not their
//! value on one line (escapes, a value folded over lines) are never rewritten: one that names a rule is reported.
//!
//! What a match becomes:
//! * `image: REF`: the pinned reference;
//! * Helm `image: {registry, repository, tag, digest}`: with a `digest:` key (or [`PinOptions::helm_digest`]) `tag`
//!   becomes the version and `digest` the digest (the key added when absent); without, `tag` becomes
//!   `VERSION@sha256:…` (charts that render `repository:tag`). A `kiln://NAME` (or another) repository becomes
//!   the pinned one, split over `registry:` when the block has one;
//! * kustomize `images:` entries: `newTag` the version, `digest` the digest, `newName` the repository when
//!   `name`/`newName` is not already it (keys added when absent).
//!
//! Anchors and aliases: an aliased value is rewritten once, where it is anchored, when every alias of it is an
//! image site that needs the same value; otherwise (an alias elsewhere, or sites needing different values) it is
//! left alone and reported.
//!
//! A rule matches a value naming its repository with any tag and/or digest (`REPO`, `REPO:t`, `REPO@sha256:…`,
//! `REPO:t@sha256:…`), comparing docker-normalized names (`nginx` = `docker.io/library/nginx`), or a value equal
//! to its `kiln://NAME` placeholder.

use std::collections::{HashMap, HashSet};

use saphyr_parser::ScalarStyle;

use super::sites::{self, Site};
use super::yaml::{Kind, NodeId, Yaml, YamlError};
use crate::reference::{DOCKER_HUB, canonical_registry};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRule {
    /// A repository (`registry.example.com/team/web`) or a placeholder `kiln://NAME`.
    pub name: String,
    /// What a matching value becomes: `REPO:VERSION@sha256:…`.
    pub pinned: String,
}

/// How matched values are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinOptions {
    /// Helm `image:` blocks get `digest:` (added when absent) and `tag:` the version, even without a `digest:`
    /// key (`--helm-digest`).
    pub helm_digest: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinResult {
    pub output: String,
    /// `(1-based line, old value, new value)` for every matched value, including ones already pinned
    /// (old == new): an empty list means the file names none of the rules. An added key shows as old `""`
    /// and new `KEY: VALUE`.
    pub replaced: Vec<(usize, String, String)>,
    /// `(line, message)`: matched but not rewritten.
    pub warnings: Vec<(usize, String)>,
}

/// One change to the source: bytes `at..end` become `new` (`at == end`: an insertion).
#[derive(Debug, Clone)]
struct Edit {
    at: usize,
    end: usize,
    new: String,
    line: usize,
    old: String,
    shown: String,
    /// The scalar whose bytes change, and the alias the site reached it through.
    node: Option<NodeId>,
    via: Option<NodeId>,
}

struct Pinner<'y, 'a> {
    y: &'y Yaml<'a>,
    edits: Vec<Edit>,
    warnings: Vec<(usize, String)>,
}

/// Rewrite every matched image value in `input`; an error when it is not YAML.
pub fn pin_text(input: &str, rules: &[PinRule], opts: PinOptions) -> Result<PinResult, YamlError> {
    let y = Yaml::parse(input)?;
    let mut p = Pinner {
        y: &y,
        edits: Vec::new(),
        warnings: Vec::new(),
    };
    for site in sites::sites(&y) {
        match site {
            Site::Plain(v) => p.plain(v, rules),
            Site::Helm(m) => p.helm(m, rules, opts),
            Site::Kustomize(m) => p.kustomize(m, rules),
        }
    }
    let edits = p.settle();
    let mut res = PinResult {
        warnings: p.warnings,
        ..PinResult::default()
    };
    res.warnings.sort();
    res.warnings.dedup();
    let mut out = String::with_capacity(input.len() + 256);
    let mut pos = 0;
    for e in &edits {
        out.push_str(&input[pos..e.at]);
        out.push_str(&e.new);
        pos = e.end;
        res.replaced.push((e.line, e.old.clone(), e.shown.clone()));
    }
    out.push_str(&input[pos..]);
    res.replaced.sort_by_key(|r| r.0);
    res.output = out;
    Ok(res)
}

impl Pinner<'_, '_> {
    fn warn(&mut self, line: usize, msg: String) {
        self.warnings.push((line, msg));
    }

    /// `image: REF`.
    fn plain(&mut self, v: NodeId, rules: &[PinRule]) {
        let y = self.y;
        let Some(s) = y.scalar(v) else { return };
        let Some(rule) = matching(&s.value, rules) else {
            if matches!(s.style, ScalarStyle::Literal | ScalarStyle::Folded)
                && matching(s.value.trim(), rules).is_some()
            {
                let line = y.nodes[v].line;
                self.warn(line, format!("image: {} is a block scalar (| or >); not rewritten (write it as a plain value)", s.value.trim()));
            }
            return;
        };
        self.replace(v, "image", &rule.pinned);
    }

    /// Replace the scalar `v` (the value of `key`) with `value`.
    fn replace(&mut self, v: NodeId, key: &str, value: &str) -> bool {
        let y = self.y;
        let node = y.resolve(v);
        let via = (node != v).then_some(v);
        let line = y.nodes[v].line;
        let Kind::Scalar(s) = &y.nodes[node].kind else {
            self.warn(line, format!("{key}: is not a scalar; not rewritten"));
            return false;
        };
        let written = |plain: bool| match plain && needs_quotes(value) {
            true => quoted(value),
            false => value.to_string(),
        };
        let (at, end, new) = match (s.raw, s.empty_at) {
            (Some((a, b)), _) => (a, b, written(s.style == ScalarStyle::Plain)),
            (None, Some(p)) => (p, p, format!(" {}", written(true))),
            _ => {
                let how = match s.style {
                    ScalarStyle::Literal | ScalarStyle::Folded => "a block scalar (| or >)",
                    _ => "written over several lines or with escapes",
                };
                let msg = format!(
                    "{key}: {} is {how}; not rewritten (write it on one line)",
                    s.value.trim()
                );
                self.warn(y.nodes[node].line, msg);
                return false;
            }
        };
        self.edits.push(Edit {
            at,
            end,
            new,
            line: y.line_of(at),
            old: s.value.clone(),
            shown: value.to_string(),
            node: Some(node),
            via,
        });
        true
    }

    /// Set `key` of mapping `map` to `value`: replace its value, or add the key after the `after` entry.
    fn set(&mut self, map: NodeId, key: &str, value: &str, after: &str) -> bool {
        let y = self.y;
        if let Some(v) = y.get(map, key) {
            return self.replace(v, key, value);
        }
        let Kind::Map(entries) = &y.nodes[map].kind else {
            return false;
        };
        let entry = entries
            .iter()
            .find(|(k, _)| y.scalar(*k).is_some_and(|s| s.value == after));
        let Some(&(k, v)) = entry else { return false };
        let src = y.src;
        // Where the `after` entry's value ends (after a closing quote, or after an empty value's colon).
        let end = match &y.nodes[v].kind {
            Kind::Scalar(s) => match (s.raw, s.empty_at) {
                (Some((_, b)), _) => b + usize::from(s.style != ScalarStyle::Plain),
                (None, Some(p)) => p,
                _ => usize::MAX,
            },
            _ => usize::MAX,
        };
        let line = y.nodes[map].line;
        if end == usize::MAX {
            let msg = format!(
                "cannot add {key}: after {after}: (its value is not a one-line scalar); add `{key}:` to pin it"
            );
            self.warn(line, msg);
            return false;
        }
        let written = match needs_quotes(value) {
            true => quoted(value),
            false => value.to_string(),
        };
        let (at, new) = if y.nodes[map].flow {
            (end, format!(", {key}: {written}"))
        } else {
            let line_start = src[..y.nodes[k].start].rfind('\n').map_or(0, |i| i + 1);
            let indent = " ".repeat(src[line_start..y.nodes[k].start].chars().count());
            match src[end..].find('\n') {
                Some(nl) => (end + nl + 1, format!("{indent}{key}: {written}{}", y.eol())),
                None => (src.len(), format!("{}{indent}{key}: {written}", y.eol())),
            }
        };
        let at_line = y.line_of(end) + usize::from(!y.nodes[map].flow);
        self.edits.push(Edit {
            at,
            end: at,
            new,
            line: at_line,
            old: String::new(),
            shown: format!("{key}: {value}"),
            node: None,
            via: None,
        });
        true
    }

    /// Helm `image:` with `repository` (and `registry`, `tag`, `digest`).
    fn helm(&mut self, m: NodeId, rules: &[PinRule], opts: PinOptions) {
        let y = self.y;
        let Some(repo) = sites::text(y, m, "repository") else {
            return;
        };
        let registry = sites::text(y, m, "registry").filter(|h| !h.is_empty());
        let full = match &registry {
            Some(h) if !repo.starts_with("kiln://") => {
                format!("{}/{repo}", h.trim_end_matches('/'))
            }
            _ => repo.clone(),
        };
        let Some(rule) = matching(&full, rules) else {
            return;
        };
        let line = y.nodes[m].line;
        let (new_repo, version, digest) = split_pinned(&rule.pinned);
        let Some(digest) = digest else {
            return self.warn(line, format!("{:?} has no digest", rule.pinned));
        };
        if y.get(m, "digest").is_some() || opts.helm_digest {
            if let Some(v) = version {
                self.set(m, "tag", v, "repository");
            }
            self.set(m, "digest", digest, "repository");
        } else {
            let Some(v) = version else {
                let msg = format!(
                    "{:?} has no version to put in tag: (give the block a digest: key)",
                    rule.pinned
                );
                return self.warn(line, msg);
            };
            if y.get(m, "tag").is_none() {
                let msg = format!(
                    "image block naming {full} has no tag: key; not pinned (add `tag:` or `digest:`, or use --helm-digest)"
                );
                return self.warn(line, msg);
            }
            self.set(m, "tag", &format!("{v}@{digest}"), "repository");
        }
        if normalize(new_repo) != normalize(&full) {
            match y.get(m, "registry") {
                Some(_) => {
                    let (host, path) = split_host(new_repo);
                    if registry.as_deref().map(canonical_registry) != Some(canonical_registry(host))
                    {
                        self.set(m, "registry", host, "repository");
                    }
                    self.set(m, "repository", path, "repository");
                }
                None => {
                    self.set(m, "repository", new_repo, "repository");
                }
            }
        }
    }

    /// A kustomize `images:` entry.
    fn kustomize(&mut self, m: NodeId, rules: &[PinRule]) {
        let y = self.y;
        let new_name = sites::text(y, m, "newName").filter(|n| !n.is_empty());
        let name = sites::text(y, m, "name").unwrap_or_default();
        let (current, rule) = match new_name.as_deref().and_then(|n| matching(n, rules)) {
            Some(r) => (new_name.clone().unwrap_or_default(), r),
            None => match matching(&name, rules) {
                Some(r) => (new_name.clone().unwrap_or(name.clone()), r),
                None => return,
            },
        };
        let (new_repo, version, digest) = split_pinned(&rule.pinned);
        let Some(digest) = digest else {
            return self.warn(y.nodes[m].line, format!("{:?} has no digest", rule.pinned));
        };
        if current.starts_with("kiln://") || normalize(repo_of(&current)) != normalize(new_repo) {
            self.set(m, "newName", new_repo, "name");
        }
        if let Some(v) = version {
            self.set(m, "newTag", v, "name");
        }
        self.set(m, "digest", digest, "name");
    }

    /// The edits to apply, in order: values shared through anchors that would need different values, or that an
    /// alias outside the image sites also uses, are dropped and reported; duplicates (one value reached twice)
    /// kept once.
    fn settle(&mut self) -> Vec<Edit> {
        let y = self.y;
        let mut by_range: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (i, e) in self.edits.iter().enumerate() {
            if e.at != e.end || e.node.is_some() {
                by_range.entry((e.at, e.end)).or_default().push(i);
            }
        }
        let mut drop: HashSet<usize> = HashSet::new();
        let mut ranges: Vec<_> = by_range.into_iter().collect();
        ranges.sort();
        for (_, group) in ranges {
            let first = &self.edits[group[0]];
            let anchored_at = first.node.map_or(first.line, |n| y.nodes[n].line);
            let mut values: Vec<&str> = group
                .iter()
                .map(|&i| self.edits[i].shown.as_str())
                .collect();
            values.sort();
            values.dedup();
            let problem = if values.len() > 1 {
                Some(format!(
                    "the value at line {anchored_at} is shared through an anchor by images needing different values ({}); not rewritten",
                    values.join(", ")
                ))
            } else {
                first.node.and_then(|n| {
                    let claimed: HashSet<NodeId> = group.iter().filter_map(|&i| self.edits[i].via).collect();
                    let aliases = y.aliases.get(&n)?;
                    let other = aliases.iter().find(|a| !claimed.contains(a))?;
                    Some(format!(
                        "the value anchored at line {anchored_at} is also used by the alias at line {}, which pinning would change too; not rewritten",
                        y.nodes[*other].line
                    ))
                })
            };
            if let Some(msg) = problem {
                self.warnings.push((anchored_at, msg));
                drop.extend(group);
            }
        }
        let mut seen = HashSet::new();
        let mut out: Vec<Edit> = self
            .edits
            .iter()
            .enumerate()
            .filter(|(i, e)| !drop.contains(i) && seen.insert((e.at, e.end, e.new.clone())))
            .map(|(_, e)| e.clone())
            .collect();
        out.sort_by_key(|e| e.at); // stable: insertions at one place keep their order
        out
    }
}

/// `REPO[:VERSION][@DIGEST]` → its parts.
fn split_pinned(pinned: &str) -> (&str, Option<&str>, Option<&str>) {
    let (left, digest) = match pinned.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (pinned, None),
    };
    match left.rfind(':').filter(|&c| !left[c..].contains('/')) {
        Some(c) => (&left[..c], Some(&left[c + 1..]), digest),
        None => (left, None, digest),
    }
}

/// `host/path` → (host, path) by docker's rule (a first component with `.` or `:`, or `localhost`); else Docker Hub.
fn split_host(repo: &str) -> (&str, &str) {
    match repo.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (h, p),
        _ => (DOCKER_HUB, repo),
    }
}

/// Whether `s` as a plain scalar would not read back as that string (a number, a boolean, null, an indicator).
fn needs_quotes(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let numeric = s.chars().any(|c| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_digit() || "._+-:eE".contains(c));
    s.is_empty()
        || numeric
        || !s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains(|c: char| c.is_whitespace() || ",[]{}\"'\\".contains(c))
        || ["0x", "0o", "0b"].iter().any(|p| lower.starts_with(p))
        || matches!(
            lower.as_str(),
            "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null" | "~"
        )
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(crate) fn matching<'r>(value: &str, rules: &'r [PinRule]) -> Option<&'r PinRule> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return None;
    }
    rules.iter().find(|r| {
        if r.name.starts_with("kiln://") {
            value == r.name
        } else {
            normalize(repo_of(value)) == normalize(&r.name)
        }
    })
}

/// The repository part of a reference: without `@digest` and `:tag`.
fn repo_of(r: &str) -> &str {
    let r = r.split_once('@').map_or(r, |(a, _)| a);
    match r.rfind(':') {
        Some(c) if !r[c..].contains('/') => &r[..c],
        _ => r,
    }
}

/// Docker's defaults: `nginx` → `docker.io/library/nginx`, `user/app` → `docker.io/user/app`; Docker Hub's other
/// names are `docker.io` ([`canonical_registry`]).
fn normalize(repo: &str) -> String {
    let (host, path) = match repo.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (h, p),
        _ => ("docker.io", repo),
    };
    let host = canonical_registry(host);
    match host == DOCKER_HUB && !path.contains('/') {
        true => format!("docker.io/library/{path}"),
        false => format!("{host}/{path}"),
    }
}

#[cfg(test)]
mod tests;
