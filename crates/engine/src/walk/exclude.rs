//! What the walk leaves out of a layer: kiln's own outputs inside the build directory (the `--to` layout or
//! archive, the `--ref-file`, the cache), always; and the paths matched by `.kilnignore` / `--exclude` patterns,
//! read as Docker reads `.dockerignore`.
//!
//! Docker's rules (moby/patternmatcher, `ignorefile.ReadAll` and `MatchesOrParentMatches`), kept exactly so a
//! `.dockerignore` can be copied to `.kilnignore`:
//! - a line starting with `#` is a comment; blank lines are skipped; each line is trimmed;
//! - `!PATTERN` re-includes what an earlier pattern excluded; the last pattern that matches decides;
//! - a pattern is cleaned like a path (`./a/` is `a`, `a/../b` is `b`) and a leading `/` is dropped: patterns are
//!   always relative to the build directory's root (there is no "match at any depth" as in `.gitignore`);
//! - `*` is any run of characters but `/`, `?` one character but `/`, `[…]` a class, `\` escapes, and `**` any
//!   number of directories (zero included): `**/*.log` matches `a.log` and `x/y/a.log`;
//! - a pattern that matches a directory matches everything below it.
//!
//! The matcher is Docker's own translation of a pattern into a regular expression, on the `regex` crate (already
//! in the tree): the `ignore` crate's matcher has `.gitignore` semantics (patterns without `/` match at any depth,
//! `!` cannot re-include below an excluded directory), and `globset` reads `{a,b}` as alternatives and `a**b`
//! differently from Docker; both would make the same file mean something else to kiln than to `docker build`.

use std::path::Path;

use regex::bytes::Regex;

use crate::error::{Error, Result};

/// The file read at the root of each build directory.
pub const IGNORE_FILE: &str = ".kilnignore";

/// How one pattern matches (Docker's four kinds: the first three skip the regular expression).
#[derive(Debug, Clone)]
enum Matcher {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    /// `**` followed by this (which starts with `/`, or is empty).
    Suffix(Vec<u8>),
    Regex(Regex),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    matcher: Matcher,
    /// `!PATTERN`: a match includes.
    negated: bool,
    /// The pattern up to its first wildcard or escape: a `!` pattern can only match below a directory whose
    /// path is compatible with it (one a prefix of the other).
    literal: Vec<u8>,
}

/// `filepath.Clean` for a slash path: no empty or `.` components, `..` applied where it can be.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => match out.last() {
                Some(&l) if l != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            c => out.push(c),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// One pattern as `.dockerignore` reads a line (after comments and blank lines are dropped): trimmed, `!` taken
/// off and trimmed again, cleaned, a leading `/` dropped. `None`: nothing left (a blank line).
pub fn normalize(line: &str) -> Option<(bool, String)> {
    let p = line.trim();
    if p.is_empty() {
        return None;
    }
    let (negated, p) = match p.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, p),
    };
    let mut p = if p.is_empty() {
        String::new()
    } else {
        clean(p)
    };
    if p.len() > 1 && p.starts_with('/') {
        p.remove(0);
    }
    Some((negated, p))
}

impl Pattern {
    /// Compile one line (see [`normalize`]); `Ok(None)` for a blank one. The error says why the pattern is
    /// malformed.
    pub fn parse(line: &str) -> std::result::Result<Option<Pattern>, String> {
        let Some((negated, p)) = normalize(line) else {
            return Ok(None);
        };
        if p.is_empty() {
            return Err("a lone ! re-includes nothing: give a pattern after it".into());
        }
        let literal = p
            .bytes()
            .take_while(|b| !matches!(b, b'*' | b'?' | b'[' | b'\\'))
            .collect();
        Ok(Some(Pattern {
            matcher: compile(&p)?,
            negated,
            literal,
        }))
    }

    fn matches(&self, path: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Exact(s) => path == s.as_slice(),
            Matcher::Prefix(s) => path.starts_with(s),
            Matcher::Suffix(s) => {
                path.ends_with(s) || (s.first() == Some(&b'/') && path == &s[1..])
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// Docker's translation (patternmatcher `Pattern.compile`): `*` → `[^/]*`, `?` → `[^/]`, `**` (and its `/`) →
/// `(.*/)?`, `**` at the end → `.*`; `[`/`]` make a class; `\` escapes the next character; `.+()|{}$` are
/// literal. A pattern without wildcards is compared as bytes, `X**` by prefix and `**X` by suffix.
fn compile(p: &str) -> std::result::Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Type {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut ty = Type::Exact;
    let mut chars = p.chars().peekable();
    let mut first = true;
    while let Some(ch) = chars.next() {
        let at_start = std::mem::replace(&mut first, false);
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if ty == Type::Exact {
                        ty = Type::Prefix;
                    } else {
                        re.push_str(".*");
                        ty = Type::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    ty = Type::Regex;
                }
                if at_start {
                    ty = Type::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                ty = Type::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                ty = Type::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    re.push('\\');
                    re.push(next);
                    ty = Type::Regex;
                }
                None => re.push_str("\\\\"),
            },
            '[' | ']' => {
                re.push(ch);
                ty = Type::Regex;
            }
            c => re.push(c),
        }
    }
    // Malformed classes and escapes are refused whatever the kind, as Docker refuses them up front.
    re.push('$');
    let compiled = Regex::new(&re).map_err(|e| {
        let why = e.to_string();
        let last = why.lines().last().unwrap_or("").trim().to_string();
        format!("not a valid pattern ({last})")
    })?;
    let b = p.as_bytes();
    Ok(match ty {
        Type::Exact => Matcher::Exact(b.to_vec()),
        Type::Prefix => Matcher::Prefix(b[..b.len() - 2].to_vec()),
        Type::Suffix => Matcher::Suffix(b[2..].to_vec()),
        Type::Regex => Matcher::Regex(compiled),
    })
}

/// Patterns of `.kilnignore` text, in order; the error names the line.
pub fn parse_file(text: &str) -> std::result::Result<Vec<Pattern>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(p) = Pattern::parse(line).map_err(|why| (i + 1, format!("{line:?}: {why}")))? {
            out.push(p);
        }
    }
    Ok(out)
}

/// What one build directory's walk leaves out.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    /// Paths relative to the build directory, left out with everything below them whatever the patterns say
    /// (kiln's own outputs).
    paths: Vec<Vec<u8>>,
    patterns: Vec<Pattern>,
    /// Some pattern is a `!`: an excluded directory may hold something included.
    reincludes: bool,
}

/// The walk's verdict on one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// In the layer.
    Keep,
    /// Left out with everything below.
    Skip,
    /// Left out, unless something below it is kept (then it is kept as their parent): a directory is read.
    Maybe,
}

impl Exclude {
    pub fn new(paths: Vec<Vec<u8>>, patterns: Vec<Pattern>) -> Exclude {
        let reincludes = patterns.iter().any(|p| p.negated);
        Exclude {
            paths,
            patterns,
            reincludes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.patterns.is_empty()
    }

    /// Whether `rel` is one of the always-excluded paths.
    pub fn is_output(&self, rel: &[u8]) -> bool {
        self.paths.iter().any(|p| p == rel)
    }

    /// The verdict on `rel` (relative to the build directory), whose parent matched `parent` (empty at the
    /// root: nothing matched); `bits` is left with the patterns `rel` matches (a directory's children match them
    /// too). Docker's `MatchesOrParentMatches`: a pattern matches a path if it matches it or one of its parents,
    /// and the last pattern that matches decides.
    pub(super) fn verdict(&self, rel: &[u8], parent: &[bool], bits: &mut Vec<bool>) -> Verdict {
        bits.clear();
        if self.is_output(rel) {
            return Verdict::Skip;
        }
        bits.extend(
            self.patterns
                .iter()
                .enumerate()
                .map(|(i, p)| parent.get(i).copied().unwrap_or(false) || p.matches(rel)),
        );
        let last = bits.iter().rposition(|&b| b);
        let excluded = last.is_some_and(|i| !self.patterns[i].negated);
        if !excluded {
            Verdict::Keep
        } else if self.reincludes && self.may_reinclude_below(rel) {
            Verdict::Maybe
        } else {
            Verdict::Skip
        }
    }

    /// Whether a `!` pattern could match something below the directory `rel`.
    fn may_reinclude_below(&self, rel: &[u8]) -> bool {
        self.patterns.iter().filter(|p| p.negated).any(|p| {
            let l = p.literal.as_slice();
            // `rel/` against the literal prefix, without building the string.
            if l.len() <= rel.len() {
                rel.starts_with(l)
            } else {
                l.starts_with(rel) && l[rel.len()] == b'/'
            }
        })
    }
}

/// The paths of `outputs` that lie inside `root` (relative to it), with their labels; symlinks are resolved
/// (an output's own last component is not followed: that name is what the walk would pack). An output that is
/// `root` itself is a layout: its files are named.
pub fn outputs_inside(
    root: &Path,
    outputs: &[(std::path::PathBuf, &'static str)],
) -> Vec<(Vec<u8>, &'static str)> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(root) = std::fs::canonicalize(root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (p, label) in outputs {
        let resolved = match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::canonicalize(parent).map(|d| d.join(name))
            }
            _ => std::fs::canonicalize(p),
        };
        let Ok(resolved) = resolved else { continue };
        let Ok(rel) = resolved.strip_prefix(&root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            for name in ["oci-layout", "index.json", "blobs"] {
                found.push((name.as_bytes().to_vec(), *label));
            }
        } else {
            found.push((rel.as_os_str().as_bytes().to_vec(), *label));
        }
    }
    found
}

/// The patterns for the build directory `dir`: its `.kilnignore` (if any), then `extra` (`--exclude`, kiln.toml's
/// `exclude`), which thus decide last.
pub fn patterns_for(dir: &Path, extra: &[String]) -> Result<Vec<Pattern>> {
    let file = dir.join(IGNORE_FILE);
    let mut out = match std::fs::read(&file) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            parse_file(&text).map_err(|(line, why)| {
                Error::input(&file, format!("line {line}: invalid pattern {why}"))
            })?
        }
        // Not a directory: the walk says so, naming it.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Vec::new()
        }
        Err(e) => return Err(Error::io(&file, e)),
    };
    for p in extra {
        if let Some(p) = Pattern::parse(p).map_err(|why| Error::invalid_arg("--exclude", p, why))? {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &[&str], path: &str) -> bool {
        let pats: Vec<Pattern> = patterns
            .iter()
            .filter_map(|p| Pattern::parse(p).unwrap())
            .collect();
        let ex = Exclude::new(Vec::new(), pats);
        // Down from the root as the walk goes, each directory's bits passed to its children.
        let (mut parent, mut bits) = (Vec::new(), Vec::new());
        let comps: Vec<&str> = path.split('/').collect();
        for i in 0..comps.len() {
            let rel = comps[..=i].join("/");
            let last = i + 1 == comps.len();
            match ex.verdict(rel.as_bytes(), &parent, &mut bits) {
                Verdict::Skip => return true,
                Verdict::Keep if last => return false,
                Verdict::Maybe if last => return true,
                Verdict::Keep | Verdict::Maybe => std::mem::swap(&mut parent, &mut bits),
            }
        }
        unreachable!()
    }

    #[test]
    fn lines_like_dockerignore() {
        assert_eq!(normalize("  /a/b/  "), Some((false, "a/b".into())));
        assert_eq!(normalize("! ./x/../y"), Some((true, "y".into())));
        assert_eq!(normalize("/"), Some((false, "/".into())));
        assert_eq!(normalize("   "), None);
        let pats =
            parse_file("\u{feff}# comment\n\n*.log\n  # not a comment: a pattern\n!keep.log\n")
                .unwrap();
        assert_eq!(pats.len(), 3);
        assert!(Pattern::parse("!").is_err());
        assert!(Pattern::parse("a[").is_err());
        assert_eq!(parse_file("ok\n[bad").unwrap_err().0, 2);
    }

    #[test]
    fn wildcards() {
        assert!(excluded(&["*.log"], "a.log"));
        assert!(!excluded(&["*.log"], "dir/a.log"), "* does not cross /");
        assert!(excluded(&["*/*.log"], "dir/a.log"));
        assert!(excluded(&["a?c"], "abc"));
        assert!(!excluded(&["a?c"], "a/c"));
        assert!(excluded(&["[ab]x"], "bx"));
        assert!(!excluded(&["[ab]x"], "cx"));
        assert!(excluded(&["a\\*b"], "a*b"));
        assert!(!excluded(&["a\\*b"], "axb"));
        assert!(excluded(&["a.b"], "a.b"));
        assert!(!excluded(&["a.b"], "axb"), ". is literal");
        assert!(
            !excluded(&["{a,b}"], "a"),
            "no brace alternatives, as in Docker"
        );
        assert!(excluded(&["{a,b}"], "{a,b}"));
    }

    #[test]
    fn double_star() {
        for p in ["a.log", "x/a.log", "x/y/z/a.log"] {
            assert!(excluded(&["**/*.log"], p), "{p}");
        }
        assert!(!excluded(&["**/*.log"], "a.txt"));
        assert!(excluded(&["**/node_modules"], "node_modules/x"));
        assert!(excluded(&["**/node_modules"], "a/b/node_modules/x/y"));
        assert!(!excluded(&["**/node_modules"], "a/xnode_modules"));
        assert!(excluded(&["a/**/b"], "a/b"));
        assert!(excluded(&["a/**/b"], "a/x/y/b"));
        assert!(!excluded(&["a/**/b"], "a/x/c"));
        assert!(excluded(&["dist/**"], "dist/x/y"));
        assert!(
            !excluded(&["dist/**"], "dist"),
            "dist/** is below dist, not dist itself"
        );
        assert!(excluded(&["**"], "anything/at/all"));
    }

    #[test]
    fn anchored_and_parents() {
        // Patterns are relative to the root: no match at any depth as in .gitignore.
        assert!(excluded(&["tmp"], "tmp"));
        assert!(
            excluded(&["/tmp"], "tmp/x/y"),
            "a leading / is optional; a directory takes its contents"
        );
        assert!(!excluded(&["tmp"], "src/tmp"));
        assert!(excluded(&["src/*/gen"], "src/a/gen/f.rs"));
    }

    #[test]
    fn reinclude() {
        let p = ["*.md", "!README.md"];
        assert!(excluded(&p, "CHANGES.md"));
        assert!(!excluded(&p, "README.md"));
        // The last match decides.
        assert!(excluded(&["!README.md", "*.md"], "README.md"));
        // Below an excluded directory.
        let p = ["docs", "!docs/keep"];
        assert!(excluded(&p, "docs/other"));
        assert!(!excluded(&p, "docs/keep"));
        assert!(!excluded(&p, "docs/keep/deep/file"));
        let p = ["**/*.map", "!vendor/**"];
        assert!(excluded(&p, "app.js.map"));
        assert!(!excluded(&p, "vendor/x/app.js.map"));
    }

    #[test]
    fn outputs_win_over_patterns() {
        let ex = Exclude::new(
            vec![b"kiln-images".to_vec()],
            vec![Pattern::parse("!kiln-images").unwrap().unwrap()],
        );
        let mut bits = Vec::new();
        assert_eq!(ex.verdict(b"kiln-images", &[], &mut bits), Verdict::Skip);
        assert_eq!(ex.verdict(b"kiln-images2", &[], &mut bits), Verdict::Keep);
    }

    fn walked(root: &Path, outputs: &[&str], patterns: &[&str]) -> (Vec<String>, Vec<String>) {
        let pats = patterns
            .iter()
            .filter_map(|p| Pattern::parse(p).unwrap())
            .collect();
        let outs = outputs.iter().map(|o| o.as_bytes().to_vec()).collect();
        let w = crate::walk::walk_excluding(root, "/", &Exclude::new(outs, pats)).unwrap();
        let show = |p: &Path| p.to_string_lossy().into_owned();
        (
            w.entries.iter().map(|e| show(&e.path)).collect(),
            w.excluded.iter().map(|p| show(p)).collect(),
        )
    }

    #[test]
    fn the_walk_leaves_out_and_reincludes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in [
            "app",
            "docs/keep",
            "docs/other",
            "kiln-images/blobs",
            "secret",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "app/a.js",
            "app/a.js.map",
            "docs/keep/k.md",
            "docs/other/o.md",
            "kiln-images/index.json",
        ] {
            std::fs::write(r.join(f), f).unwrap();
        }
        // A second name of an excluded file: the kept name is the file itself.
        std::fs::hard_link(r.join("app/a.js.map"), r.join("app/b.map.txt")).unwrap();
        // Excluded things are never looked at: an unreadable directory, a socket.
        std::fs::set_permissions(r.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(r.join("app/sock")).unwrap();
        let (kept, left) = walked(
            r,
            &["kiln-images"],
            &[
                "**/*.map",
                "secret",
                "app/sock",
                "docs",
                "!docs/keep",
                "!kiln-images",
            ],
        );
        std::fs::set_permissions(r.join("secret"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            kept,
            [
                "app",
                "app/a.js",
                "app/b.map.txt",
                "docs",
                "docs/keep",
                "docs/keep/k.md"
            ]
        );
        assert_eq!(
            left,
            [
                "app/a.js.map",
                "app/sock",
                "docs/other",
                "kiln-images",
                "secret"
            ]
        );
        drop(_sock);
        std::fs::remove_file(r.join("app/sock")).unwrap();
        assert!(
            matches!(
                crate::walk::walk_excluding(r, "/", &Exclude::default())
                    .unwrap()
                    .entries
                    .iter()
                    .find(|e| e.path == Path::new("app/b.map.txt"))
                    .map(|e| &e.kind),
                Some(crate::walk::EntryKind::Hardlink { .. })
            ),
            "without patterns the second name is a link"
        );
    }

    #[test]
    fn an_excluded_directory_with_nothing_reincluded_is_left_out() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("docs/deep/er")).unwrap();
        std::fs::write(r.join("docs/deep/er/f"), "x").unwrap();
        std::fs::write(r.join("top"), "x").unwrap();
        let (kept, left) = walked(r, &[], &["docs", "!docs/keep"]);
        assert_eq!(kept, ["top"]);
        assert_eq!(left, ["docs"]);
    }

    /// The walk's cost with and without patterns, on the tree named by `KILN_WALK_BENCH` (e.g. the `node`
    /// fixture of benches/mkfixture.py): `cargo test --release -p kiln-engine --lib walk_cost -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn walk_cost() {
        let Some(root) = std::env::var_os("KILN_WALK_BENCH") else {
            return;
        };
        let root = Path::new(&root);
        let cases: [(&str, &[&str], &[&str]); 5] = [
            ("no filter", &[], &[]),
            ("own outputs only", &["kiln-images", "ref.txt"], &[]),
            ("3 patterns", &[], &["*.md", "**/*.map", "dist/**/*.txt"]),
            (
                "8 patterns incl. !",
                &["kiln-images"],
                &[
                    "*.md",
                    "**/*.map",
                    "**/test",
                    "**/*.d.ts",
                    "!node_modules/@scope*/**/*.d.ts",
                    "coverage",
                    ".git",
                    "!README.md",
                ],
            ),
            ("node_modules excluded", &[], &["node_modules"]),
        ];
        for (name, outs, pats) in cases {
            let pats: Vec<Pattern> = pats
                .iter()
                .filter_map(|p| Pattern::parse(p).unwrap())
                .collect();
            let outs = outs.iter().map(|o| o.as_bytes().to_vec()).collect();
            let ex = Exclude::new(outs, pats);
            let mut times = Vec::new();
            let mut n = 0;
            for _ in 0..15 {
                let start = std::time::Instant::now();
                n = crate::walk::walk_excluding(root, "/app", &ex)
                    .unwrap()
                    .entries
                    .len();
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{name:24} {n:6} entries: median {:.2} ms, min {:.2} ms",
                times[7], times[0]
            );
        }
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("a/./b//c/"), "a/b/c");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("a/.."), ".");
        assert_eq!(clean("a/b/../../.."), "..");
    }
}
