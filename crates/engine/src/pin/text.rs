//! `kiln pin`: rewrite `image:` values in YAML to pinned `REPO:VERSION@sha256:…` references, byte-preserving.
//!
//! This is a line-oriented text rewrite, not a YAML round trip: only the bytes of a matched value change;
//! comments, order, indentation, quoting style, CRLF line endings and a missing final newline are kept.
//! Recognized (in any document of a `---` stream, at any depth):
//! * `image: REF`, `- image: REF`, `"image": REF`, with REF plain, `'single'` or `"double"` quoted and an
//!   optional trailing `# comment`;
//! * Helm-style blocks `image:` followed by more-indented `repository: R` / `tag: T` (and optional
//!   `registry: H`, the repository then being `H/R`): the tag becomes `VERSION@sha256:…` (charts render
//!   `R:T`), a `kiln://NAME` repository becomes the published repository. A block without `tag:` is reported
//!   as a warning and left alone.
//!
//! Not recognized: flow mappings (`{image: x}`), anchors/aliases/tags on the value, multi-line scalars.
//! Block scalars (`key: |`) are skipped, so an `image:` inside embedded text is never rewritten.
//!
//! A rule matches a value naming its repository with any tag and/or digest (`REPO`, `REPO:t`, `REPO@sha256:…`,
//! `REPO:t@sha256:…`), comparing docker-normalized names (`nginx` = `docker.io/library/nginx`), or a value equal
//! to its `kiln://NAME` placeholder.

use crate::reference::{DOCKER_HUB, canonical_registry};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRule {
    /// A repository (`registry.example.com/team/web`) or a placeholder `kiln://NAME`.
    pub name: String,
    /// What a matching value becomes: `REPO:VERSION@sha256:…`.
    pub pinned: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PinResult {
    pub output: String,
    /// `(1-based line, old value, new value)` for every matched value, including ones already pinned
    /// (old == new): an empty list means the file names none of the rules.
    pub replaced: Vec<(usize, String, String)>,
    /// `(line, message)`: matched but not rewritten.
    pub warnings: Vec<(usize, String)>,
}

/// Rewrite every matched `image:` value in `input`.
pub fn pin_text(input: &str, rules: &[PinRule]) -> PinResult {
    let mut lines = Vec::new();
    let mut at = 0;
    for l in input.split_inclusive('\n') {
        let content = l.strip_suffix('\n').unwrap_or(l);
        lines.push((at, content.strip_suffix('\r').unwrap_or(content)));
        at += l.len();
    }
    let mut res = PinResult::default();
    let mut edits: Vec<(usize, usize, String)> = Vec::new(); // absolute byte range → new text
    let mut block_scalar: Option<usize> = None; // key column of a `key: |` being skipped
    for (i, &(start, line)) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(col) = block_scalar {
            if line.trim().is_empty() || indent > col {
                continue;
            }
            block_scalar = None;
        }
        let Some((col, key, value)) = key_line(line) else {
            continue;
        };
        if value == Value::Block {
            block_scalar = Some(col);
            continue;
        }
        if key != "image" {
            continue;
        }
        match value {
            Value::Scalar(a, b) => {
                let old = &line[a..b];
                if let Some(rule) = matching(old, rules) {
                    res.replaced
                        .push((i + 1, old.to_string(), rule.pinned.clone()));
                    edits.push((start + a, start + b, rule.pinned.clone()));
                }
            }
            Value::Empty(_) => helm_block(&lines, i, col, rules, &mut res, &mut edits),
            _ => {}
        }
    }
    edits.sort();
    res.replaced.sort();
    let mut out = String::with_capacity(input.len());
    let mut pos = 0;
    for (a, b, new) in edits {
        out.push_str(&input[pos..a]);
        out.push_str(&new);
        pos = b;
    }
    out.push_str(&input[pos..]);
    res.output = out;
    res
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    /// Byte range of the scalar's text, inside the quotes if quoted.
    Scalar(usize, usize),
    /// Nothing (or only a comment) after the colon: where a value would go.
    Empty(usize),
    /// `|` or `>`: a block scalar follows.
    Block,
    Other,
}

/// `[- ]*KEY: VALUE` → (column of KEY, KEY, VALUE).
fn key_line(line: &str) -> Option<(usize, &str, Value)> {
    let mut i = line.len() - line.trim_start_matches(' ').len();
    while line[i..].starts_with("- ") {
        i += 2;
        i += line[i..].len() - line[i..].trim_start_matches(' ').len();
    }
    let col = i;
    let (key, after) = match line[i..].chars().next()? {
        q @ ('"' | '\'') => {
            let end = i + 1 + line[i + 1..].find(q)?;
            (&line[i + 1..end], end + 1)
        }
        _ => {
            let n = line[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))?;
            (&line[i..i + n], i + n)
        }
    };
    let rest = line[after..].strip_prefix(':')?;
    if key.is_empty() || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((col, key, value(line, after + 1)))
}

fn value(line: &str, from: usize) -> Value {
    let s = from + (line[from..].len() - line[from..].trim_start_matches([' ', '\t']).len());
    let v = &line[s..];
    let only_comment = |rest: &str| {
        let r = rest.trim_start_matches([' ', '\t']);
        r.is_empty() || (r.starts_with('#') && r.len() < rest.len())
    };
    match v.chars().next() {
        None | Some('#') => Value::Empty(from),
        Some('|' | '>') => Value::Block,
        Some('&' | '*' | '!' | '{' | '[' | '@' | '`' | '%') => Value::Other,
        Some('"') => match v[1..].find(['"', '\\']) {
            Some(n) if v.as_bytes()[1 + n] == b'"' && only_comment(&v[n + 2..]) => {
                Value::Scalar(s + 1, s + 1 + n)
            }
            _ => Value::Other, // escapes: leave alone
        },
        Some('\'') => match v[1..].find('\'') {
            Some(n) if !v[n + 2..].starts_with('\'') && only_comment(&v[n + 2..]) => {
                Value::Scalar(s + 1, s + 1 + n)
            }
            _ => Value::Other, // '' escapes: leave alone
        },
        Some(_) => {
            let end = [" #", "\t#"]
                .iter()
                .filter_map(|p| v.find(p))
                .min()
                .unwrap_or(v.len());
            Value::Scalar(s, s + v[..end].trim_end_matches([' ', '\t']).len())
        }
    }
}

fn matching<'r>(value: &str, rules: &'r [PinRule]) -> Option<&'r PinRule> {
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

/// `image:` with the repository and tag below it (Helm values).
fn helm_block(
    lines: &[(usize, &str)],
    i: usize,
    col: usize,
    rules: &[PinRule],
    res: &mut PinResult,
    edits: &mut Vec<(usize, usize, String)>,
) {
    let mut child_col = None;
    let (mut registry, mut repository, mut tag) = (None, None, None);
    for (j, &(start, line)) in lines.iter().enumerate().skip(i + 1) {
        let t = line.trim_start_matches(' ');
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - t.len();
        if indent <= col {
            break;
        }
        if *child_col.get_or_insert(indent) != indent {
            continue; // deeper nesting inside the block
        }
        let Some((_, key, v)) = key_line(line) else {
            continue;
        };
        let slot = match key {
            "registry" => &mut registry,
            "repository" => &mut repository,
            "tag" => &mut tag,
            _ => continue,
        };
        *slot = Some((j, start, line, v));
    }
    let text = |s: &Option<(usize, usize, &str, Value)>| match s {
        Some((_, _, line, Value::Scalar(a, b))) => Some(line[*a..*b].to_string()),
        _ => None,
    };
    let Some(repo) = text(&repository) else {
        return;
    };
    let full = match text(&registry) {
        Some(h) if !h.is_empty() => format!("{}/{repo}", h.trim_end_matches('/')),
        _ => repo.clone(),
    };
    let Some(rule) = matching(&full, rules) else {
        return;
    };
    let (new_repo, new_tag) = match rule.pinned.split_once('@') {
        Some((left, digest)) => match left.rfind(':').filter(|&c| !left[c..].contains('/')) {
            Some(c) => (&left[..c], format!("{}@{digest}", &left[c + 1..])),
            None => {
                return res.warnings.push((
                    i + 1,
                    format!("{:?} has no version to put in tag:", rule.pinned),
                ));
            }
        },
        None => {
            return res
                .warnings
                .push((i + 1, format!("{:?} has no digest", rule.pinned)));
        }
    };
    let Some((tj, tstart, tline, tv)) = tag else {
        let msg =
            format!("image block naming {full} has no tag: key; not pinned (add `tag:` to pin it)");
        return res.warnings.push((i + 1, msg));
    };
    let (a, b, new) = match tv {
        Value::Scalar(a, b) => (a, b, new_tag.clone()),
        Value::Empty(p) => (p, p, format!(" {new_tag}")),
        _ => {
            return res
                .warnings
                .push((tj + 1, "tag: value is not a plain or quoted scalar".into()));
        }
    };
    res.replaced
        .push((tj + 1, tline[a..b].to_string(), new_tag));
    edits.push((tstart + a, tstart + b, new));
    if let Some((rj, rstart, _, Value::Scalar(a, b))) =
        repository.filter(|_| repo.starts_with("kiln://"))
    {
        res.replaced
            .push((rj + 1, repo.clone(), new_repo.to_string()));
        edits.push((rstart + a, rstart + b, new_repo.to_string()));
    }
}

#[cfg(test)]
mod tests;
