//! `kiln pin`: turn `--ref` / `--ref-file` / `--image` into [`PinRule`]s, rewrite the files with
//! [`pin_text`], and hand back the result (one file, for stdout) or replace the files atomically (`-i`).
//!
//! Every file is read and rewritten in memory before any is written, so a file that names none of the rules
//! (an error: a deploy file that silently stays unpinned is the failure this command exists to prevent) leaves
//! every file untouched.

use std::fs;
use std::path::{Path, PathBuf};

use super::text::{PinOptions, PinResult, PinRule, pin_text};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::fsx::{Mode, WriteOptions, write_atomic};
use crate::reference::Reference;
use crate::tag::Tag;

const REF_EXPECTED: &str = "a pinned reference REPO:VERSION@sha256:<64 hex digits>, e.g. the first line \
                            `kiln build` prints (a reference without a digest cannot be pinned)";

/// A reference that carries a digest, split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedRef {
    /// `registry.example.com/team/web`, `nginx`, `oci:./images`.
    pub repo: String,
    pub version: Option<Tag>,
    pub digest: Digest,
}

impl PinnedRef {
    /// Parse `REPO[:VERSION]@sha256:…`; `flag` and `shown` (the value as the user gave it, perhaps with a
    /// file and line) are for the error.
    pub fn parse(flag: &'static str, s: &str, shown: &str) -> Result<PinnedRef> {
        let bad =
            |why: &str| Error::invalid_arg(flag, shown, format!("{why}; expected {REF_EXPECTED}"));
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad("empty or contains spaces"));
        }
        let (left, digest) = s
            .rsplit_once('@')
            .ok_or_else(|| bad("no @sha256: digest"))?;
        let digest: Digest = digest.parse().map_err(|e: Error| bad(&e.to_string()))?;
        let (repo, version) = if let Some(rest) = left.strip_prefix("oci:") {
            // Like `--to oci:PATH:TAG`: the layout path ends at the first ':'.
            match rest.split_once(':') {
                Some((p, t)) => (format!("oci:{p}"), Some(t)),
                None => (left.to_string(), None),
            }
        } else {
            match left.rfind(':').filter(|&c| !left[c..].contains('/')) {
                Some(c) => (left[..c].to_string(), Some(&left[c + 1..])),
                None => (left.to_string(), None),
            }
        };
        if repo.is_empty() || repo == "oci:" || repo.starts_with("kiln://") {
            return Err(bad("no repository before the tag and digest"));
        }
        if !repo.starts_with("oci:") {
            // The grammar `--to` is parsed with: a host, lower-case path components, no stray characters.
            s.parse::<Reference>().map_err(|e| bad(&e.to_string()))?;
        }
        let version = version
            .map(|t| {
                t.parse::<Tag>()
                    .map_err(|_| bad(&format!("{t:?} is not a valid tag")))
            })
            .transpose()?;
        Ok(PinnedRef {
            repo,
            version,
            digest,
        })
    }

    /// The `kiln://NAME` placeholder this reference fills: the last path component of the repository.
    pub fn placeholder(&self) -> String {
        let path = self.repo.strip_prefix("oci:").unwrap_or(&self.repo);
        let last = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path);
        format!("kiln://{last}")
    }
}

/// Where a rule came from, for conflicts and for the no-match message.
#[derive(Debug, Clone)]
struct Sourced {
    rule: PinRule,
    /// `--image`: explicit, takes precedence over rules derived from `--ref`/`--ref-file`.
    explicit: bool,
    origin: String,
}

/// What `kiln pin` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct PinRequest {
    pub files: Vec<PathBuf>,
    /// Rewrite the files in place; else exactly one file, whose result the caller prints.
    pub in_place: bool,
    /// `--ref REPO:VERSION@sha256:…`
    pub refs: Vec<String>,
    /// `--ref-file PATH`: one reference per line.
    pub ref_files: Vec<PathBuf>,
    /// `--image NAME=REF`
    pub images: Vec<String>,
    /// `--helm-digest`: Helm `image:` blocks get `digest:` (added when absent), `tag:` the version.
    pub helm_digest: bool,
}

/// The rules, `--image` ones first (they win over a `--ref` naming the same thing). Two rules of the same kind
/// for one name with different references are ambiguous: a usage error.
pub fn rules(args: &PinRequest) -> Result<Vec<PinRule>> {
    let mut all: Vec<Sourced> = Vec::new();
    for img in &args.images {
        let (name, r) = img
            .split_once('=')
            .filter(|(n, _)| !n.is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| {
                Error::invalid_arg(
                    "--image",
                    img,
                    format!("expected NAME=REF with NAME a repository or kiln://NAME and REF {REF_EXPECTED}"),
                )
            })?;
        PinnedRef::parse("--image", r.trim(), img)?;
        if !name.starts_with("kiln://") {
            let bad = |why: String| {
                Error::invalid_arg(
                    "--image",
                    img,
                    format!(
                        "{why}; NAME is a repository (REGISTRY/REPO, no tag or digest) or kiln://NAME"
                    ),
                )
            };
            let r = name.parse::<Reference>().map_err(|e| bad(e.to_string()))?;
            if r.tag.is_some() || r.digest.is_some() {
                return Err(bad(format!("{name} names a tag or digest")));
            }
        }
        let pinned = r.trim().to_string();
        let origin = format!("--image {img}");
        let mut names = vec![name.to_string()];
        if !name.starts_with("kiln://") {
            names.push(format!("kiln://{name}"));
        }
        for name in names {
            all.push(Sourced {
                rule: PinRule {
                    name,
                    pinned: pinned.clone(),
                },
                explicit: true,
                origin: origin.clone(),
            });
        }
    }
    let mut refs: Vec<(String, String)> = args
        .refs
        .iter()
        .map(|r| (r.trim().to_string(), format!("--ref {r}")))
        .collect();
    for p in &args.ref_files {
        let text = fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        // Editors on Windows save a BOM; it is no part of the first reference.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let before = refs.len();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                refs.push((line.to_string(), format!("{}:{}", p.display(), i + 1)));
            }
        }
        if refs.len() == before {
            return Err(Error::Usage(format!(
                "--ref-file {}: holds no reference (expected lines like the one `kiln build --ref-file` writes)",
                p.display()
            )));
        }
    }
    for (r, origin) in refs {
        let parsed = PinnedRef::parse("--ref", &r, &origin)?;
        for name in [parsed.repo.clone(), parsed.placeholder()] {
            all.push(Sourced {
                rule: PinRule {
                    name,
                    pinned: r.clone(),
                },
                explicit: false,
                origin: origin.clone(),
            });
        }
    }
    let mut out: Vec<Sourced> = Vec::new();
    for s in all {
        match out.iter().find(|o| o.rule.name == s.rule.name) {
            Some(o) if o.rule.pinned == s.rule.pinned || (o.explicit && !s.explicit) => {}
            Some(o) => {
                let hint = if s.rule.name.starts_with("kiln://") {
                    format!(" (say which with --image {}=REF)", s.rule.name)
                } else {
                    String::new()
                };
                return Err(Error::Usage(format!(
                    "{} is pinned twice, to {} ({}) and to {} ({}){hint}",
                    s.rule.name, o.rule.pinned, o.origin, s.rule.pinned, s.origin
                )));
            }
            None => out.push(s),
        }
    }
    Ok(out.into_iter().map(|s| s.rule).collect())
}

/// One file read and rewritten in memory.
#[derive(Debug)]
pub struct PinnedFile {
    pub path: PathBuf,
    /// Whether the rewrite changed anything (with `in_place`: whether the file was written).
    pub changed: bool,
    pub result: PinResult,
}

/// Pin every file of `args`; with `in_place` write the changed ones. Nothing is written unless every file names
/// a rule.
pub fn pin_files(args: &PinRequest, report: &Report) -> Result<Vec<PinnedFile>> {
    if !args.in_place && args.files.len() != 1 {
        return Err(Error::Usage(format!(
            "{} files given: without -i the rewritten file goes to stdout, so give exactly one -f FILE \
             (or -i to rewrite them in place)",
            args.files.len()
        )));
    }
    let rules = rules(args)?;
    if rules.is_empty() {
        return Err(Error::Usage(
            "nothing to pin: give --ref REPO:VERSION@sha256:…, --ref-file PATH or --image NAME=REF"
                .into(),
        ));
    }
    let mut done = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        let input = String::from_utf8(bytes)
            .map_err(|_| Error::input(path, "is not UTF-8 text; kiln pin rewrites YAML files"))?;
        let opts = PinOptions {
            helm_digest: args.helm_digest,
        };
        let result =
            pin_text(&input, &rules, opts).map_err(|e| Error::input(path, e.to_string()))?;
        done.push(PinnedFile {
            path: path.clone(),
            changed: result.output != input,
            result,
        });
    }
    for p in &done {
        for (line, msg) in &p.result.warnings {
            report.warn(format_args!("{}:{line}: {msg}", p.path.display()));
        }
    }
    let unmatched: Vec<&Path> = done
        .iter()
        .filter(|p| p.result.replaced.is_empty())
        .map(|p| p.path.as_path())
        .collect();
    if let Some(first) = unmatched.first() {
        let mut names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        names.dedup();
        let others = match &unmatched[1..] {
            [] => String::new(),
            more => format!(
                " (nor does {})",
                more.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Err(Error::input(
            *first,
            format!(
                "no image value (image:, a Helm image: block, a kustomize images: entry) names any of {}{others}; \
                 nothing was pinned and no file was written",
                names.join(", ")
            ),
        ));
    }
    for p in &done {
        for (line, old, new) in &p.result.replaced {
            if old.is_empty() {
                report.note(format_args!("{}:{line}: {new} (added)", p.path.display()));
            } else if old == new {
                report.note(format_args!(
                    "{}:{line}: {old} (already pinned)",
                    p.path.display()
                ));
            } else {
                report.note(format_args!("{}:{line}: {old} -> {new}", p.path.display()));
            }
        }
    }
    if !args.in_place {
        return Ok(done);
    }
    let mut written: Vec<String> = Vec::new();
    for p in &done {
        if !p.changed {
            continue; // already pinned: leave the file (and its mtime) alone
        }
        // Through symlinks (a values file linked from a chart repository), the file's own permission bits, and
        // durable before the rename: a deploy file is worth a disk flush.
        let opts = WriteOptions::new()
            .mode(Mode::KeepExisting)
            .sync(true)
            .follow_symlinks(true);
        write_atomic(&p.path, p.result.output.as_bytes(), opts).map_err(|e| {
            match written.as_slice() {
                [] => e,
                w => e.context(format!("already rewritten: {}", w.join(", "))),
            }
        })?;
        written.push(p.path.display().to_string());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    fn args(refs: &[String], images: &[String]) -> PinRequest {
        PinRequest {
            files: vec!["x.yaml".into()],
            in_place: false,
            refs: refs.to_vec(),
            ref_files: vec![],
            images: images.to_vec(),
            helm_digest: false,
        }
    }

    #[test]
    fn parses_pinned_references() {
        let p = PinnedRef::parse("--ref", &format!("reg.io:5000/team/web:v7@{}", d()), "").unwrap();
        assert_eq!(p.repo, "reg.io:5000/team/web");
        assert_eq!(p.version.as_ref().unwrap().as_str(), "v7");
        assert_eq!(p.placeholder(), "kiln://web");
        let p = PinnedRef::parse("--ref", &format!("reg.io:5000/web@{}", d()), "").unwrap();
        assert_eq!((p.repo.as_str(), p.version), ("reg.io:5000/web", None));
        let p = PinnedRef::parse("--ref", &format!("oci:./out/images:v2@{}", d()), "").unwrap();
        assert_eq!(p.repo, "oci:./out/images");
        assert_eq!(p.placeholder(), "kiln://images");
        for bad in [
            "reg.io/web:v1".to_string(),
            format!("reg.io/web:v1@sha256:{}", "a".repeat(10)),
            format!("@{}", d()),
            format!("kiln://web@{}", d()),
            format!("reg.io/web:-x@{}", d()),
            format!("reg.io/web:v1 @{}", d()),
            format!("\u{feff}reg.io/web:v1@{}", d()),
            format!("reg.io//web:v1@{}", d()),
            format!("reg.io/Team/web:v1@{}", d()),
        ] {
            let e = PinnedRef::parse("--ref", &bad, &bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }

    #[test]
    fn rules_from_refs_and_images() {
        let web = format!("reg.io/team/web:v7@{}", d());
        let r = rules(&args(std::slice::from_ref(&web), &[])).unwrap();
        let names: Vec<_> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["reg.io/team/web", "kiln://web"]);
        assert!(r.iter().all(|r| r.pinned == web));
        // --image wins over a --ref for the same name, and names both the repository and its placeholder
        let other = format!("reg.io/team/web:v8@{}", d());
        let r = rules(&args(
            std::slice::from_ref(&web),
            &[format!("kiln://web={other}")],
        ))
        .unwrap();
        assert_eq!(r[0].name, "kiln://web");
        assert_eq!(r[0].pinned, other);
        assert_eq!(r.len(), 2);
        let r = rules(&args(&[], &[format!("nginx={other}")])).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].name, "kiln://nginx");
        // two --refs pinning kiln://web differently are ambiguous
        let e = rules(&args(
            &[web.clone(), format!("reg.io/other/web:v1@{}", d())],
            &[],
        ))
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--image kiln://web=REF"), "{e}");
        for bad in [
            "nginx".to_string(),
            "=x".into(),
            "nginx=nginx:1.0".into(),
            format!("Nginx={other}"),
            format!("nginx:1.27={other}"),
        ] {
            assert_eq!(rules(&args(&[], &[bad])).unwrap_err().exit_code(), 2);
        }
    }
}
