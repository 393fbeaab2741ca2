//! `kiln check`: the gate before `kubectl apply`. Every image a deployment file names (the sites `kiln pin`
//! rewrites: `image:`, Helm `image:` blocks, kustomize `images:` entries) must be pinned by digest and carry no
//! floating tag (the list `kiln build` refuses to treat as versions). With a registry client, every pin is also
//! looked up: the digest must exist in its repository and the tag must still point at it (a version re-pushed
//! after pinning is the stale-image story, caught before deploy).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::sites;
use super::text::{PinRule, matching};
use super::yaml::Yaml;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::reference::Reference;
use crate::registry::{Client, ClientOptions};
use crate::versions::{DEFAULT_FLOATING, is_floating};

/// What `kiln check` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// Files, and directories walked for `*.yaml` / `*.yml` (hidden directories skipped).
    pub paths: Vec<PathBuf>,
    /// Images left floating on purpose: a repository (any tag) or a `kiln://NAME` placeholder.
    pub allow: Vec<String>,
    /// Look every pin up in its registry with these options (`--registry`); `None`: no network.
    pub registry: Option<ClientOptions>,
}

/// One image that fails the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    /// The reference as the file makes it (`None`: the file itself, e.g. not YAML).
    pub image: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(i) = &self.image {
            write!(f, "image {i}: ")?;
        }
        f.write_str(&self.reason)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// YAML files read.
    pub files: usize,
    /// Image sites checked (allowed ones included).
    pub images: usize,
    /// Images skipped through `--allow`.
    pub allowed: usize,
    pub problems: Vec<Problem>,
}

/// Check every file of `req`. Problems are in the report (the caller decides the exit code); an error only for
/// what stops the check itself (a path that cannot be read, a directory without YAML, a client that cannot be
/// built).
pub fn check(req: &CheckRequest, report: &Report) -> Result<CheckReport> {
    let mut files = Vec::new();
    for p in &req.paths {
        let meta = fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            let before = files.len();
            walk(p, &mut files)?;
            if files.len() == before {
                return Err(Error::input(p, "holds no .yaml or .yml file to check"));
            }
        } else {
            files.push(p.clone());
        }
    }
    let allow: Vec<PinRule> = req
        .allow
        .iter()
        .flat_map(|a| {
            let a = a.trim();
            let named = |name: String| PinRule {
                name,
                pinned: String::new(),
            };
            let mut r = vec![named(a.to_string())];
            if let Some((repo, _)) = a.split_once('@').or_else(|| tag_split(a)) {
                r.push(named(repo.to_string()));
            }
            r
        })
        .collect();
    let client = req.registry.clone().map(Client::new).transpose()?;
    let mut lookups: HashMap<(String, String), std::result::Result<Option<Digest>, String>> =
        HashMap::new();
    let mut out = CheckReport {
        files: files.len(),
        ..CheckReport::default()
    };
    for path in &files {
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        let problem = |line: usize, image: Option<&str>, reason: String| Problem {
            file: path.clone(),
            line,
            image: image.map(str::to_string),
            reason,
        };
        let Ok(text) = String::from_utf8(bytes) else {
            out.problems
                .push(problem(1, None, "is not UTF-8 text".into()));
            continue;
        };
        let y = match Yaml::parse(&text) {
            Ok(y) => y,
            Err(e) => {
                let msg = format!("not valid YAML: column {}: {}", e.col, e.message);
                out.problems.push(problem(e.line, None, msg));
                continue;
            }
        };
        let mut found: Vec<(usize, String)> = sites::sites(&y)
            .into_iter()
            .filter_map(|s| Some((sites::line(&y, s), sites::reference(&y, s)?)))
            .collect();
        found.sort();
        found.dedup();
        for (line, image) in found {
            out.images += 1;
            if !image.is_empty() && matching(&image, &allow).is_some() {
                out.allowed += 1;
                continue;
            }
            let reasons = match offline(&image) {
                Err(reason) => vec![reason],
                Ok(r) => match &client {
                    Some(c) => online(c, &r, &mut lookups, report),
                    None => vec![],
                },
            };
            for reason in reasons {
                out.problems.push(problem(line, Some(&image), reason));
            }
        }
    }
    Ok(out)
}

fn tag_split(r: &str) -> Option<(&str, &str)> {
    r.rfind(':')
        .filter(|&c| !r[c..].contains('/'))
        .map(|c| (&r[..c], &r[c + 1..]))
}

/// What the file alone tells: a pinned reference, or why it is not one.
fn offline(image: &str) -> std::result::Result<Reference, String> {
    let image = image.trim();
    if image.is_empty() {
        return Err("empty: no image named".into());
    }
    if image.starts_with("kiln://") {
        return Err("a kiln:// placeholder, not an image (kiln pin fills it in)".into());
    }
    let r: Reference = image
        .parse()
        .map_err(|e: Error| format!("not a valid image reference: {e}"))?;
    if let Some(t) = r
        .tag
        .as_ref()
        .filter(|t| is_floating(t.as_str(), DEFAULT_FLOATING))
    {
        return Err(format!(
            "floating tag {t:?}: it moves, so it tells nothing about what runs (pin a version with kiln pin, \
             or --allow {} if it floats on purpose)",
            r.familiar().split([':', '@']).next().unwrap_or_default()
        ));
    }
    if r.digest.is_none() {
        let what = match &r.tag {
            Some(t) => format!("tag {t:?} can be pushed again"),
            None => "no tag: pulls \"latest\"".into(),
        };
        return Err(format!(
            "not pinned by digest ({what}); pin it with kiln pin"
        ));
    }
    Ok(r)
}

/// With a registry: the digest exists in the repository, and the tag still points at it.
fn online(
    client: &Client,
    r: &Reference,
    lookups: &mut HashMap<(String, String), std::result::Result<Option<Digest>, String>>,
    report: &Report,
) -> Vec<String> {
    let Some(digest) = &r.digest else {
        return vec![];
    };
    let repo = client.repository(r);
    let mut head = |reference: String| {
        lookups
            .entry((r.name(), reference.clone()))
            .or_insert_with(|| {
                report.debug(format_args!("checking {}@{reference}", r.name()));
                repo.head_manifest(&reference)
                    .map(|m| m.map(|(d, _, _)| d))
                    .map_err(|e| e.to_string())
            })
            .clone()
    };
    let mut reasons = Vec::new();
    match head(digest.to_string()) {
        Err(e) => return vec![format!("cannot look the digest up: {e}")],
        Ok(None) => reasons.push(format!(
            "manifest {digest} does not exist in {} (deleted, or never pushed there)",
            r.name()
        )),
        Ok(Some(_)) => {}
    }
    if let Some(t) = &r.tag {
        match head(t.as_str().to_string()) {
            Err(e) => reasons.push(format!("cannot look tag {t:?} up: {e}")),
            Ok(None) => reasons.push(format!("tag {t:?} no longer exists in {}", r.name())),
            Ok(Some(d)) if &d != digest => reasons.push(format!(
                "tag {t:?} now points at {d}, not at the pinned {digest}: the version was pushed again after pinning"
            )),
            Ok(Some(_)) => {}
        }
    }
    reasons
}

/// `*.yaml` and `*.yml` under `dir`, sorted, hidden directories (`.git`) skipped; symlinked directories not
/// followed.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ty = e.file_type().map_err(|err| Error::io(&path, err))?;
        if ty.is_dir() {
            if !name.starts_with('.') {
                walk(&path, out)?;
            }
        } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
            && fs::metadata(&path).is_ok_and(|m| m.is_file())
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_reasons() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert!(offline(&format!("reg.io/web:v7@{d}")).is_ok());
        assert!(offline(&format!("reg.io/web@{d}")).is_ok());
        for (bad, why) in [
            ("reg.io/web:v7".to_string(), "not pinned by digest"),
            ("nginx".into(), "pulls \"latest\""),
            (format!("reg.io/web:latest@{d}"), "floating tag"),
            ("reg.io/web:Main".into(), "floating tag"),
            ("kiln://web".into(), "placeholder"),
            ("Reg.io/Web:v1".into(), "not a valid image reference"),
            ("".into(), "empty"),
        ] {
            let e = offline(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
