//! The shape of the code, checked on every run so it cannot drift back (README, "Architecture"):
//! - no import cycle between files inside a crate (a file's `use crate::…`, `super::…` and inline `crate::…`
//!   paths, resolved to the file that defines the module they name);
//! - no source file over [`MAX_LINES`] lines, tests aside;
//! - nothing prints but the CLI's output layer: the engine reports through its `Events`, and stdout has one
//!   writer with one policy (`src/output.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// "Files of a few hundred lines": the longest non-test file may have this many.
const MAX_LINES: usize = 520;

/// The only files that may write to stdout or stderr directly.
const PRINTERS: [&str; 3] = ["src/main.rs", "src/output.rs", "src/progress.rs"];

/// One crate's source files by module path (`build::parts` → `crates/engine/src/build/parts.rs`).
struct Crate {
    files: BTreeMap<Vec<String>, PathBuf>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crates' `src` directories: the binary's and every workspace member's.
fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![root().join("src")];
    for e in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = e.unwrap().path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    dirs
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Test-only files: whole files of tests, fixtures for tests.
fn is_test_file(p: &Path) -> bool {
    let name = p.file_stem().unwrap().to_string_lossy();
    name == "tests" || name.ends_with("_tests") || name == "fixture"
}

/// The file's code without its `#[cfg(test)]` module and without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expand `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().trim().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    let mut items = Vec::new();
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    for item in items.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
        for p in expand(item) {
            out.push(match p.as_str() {
                "self" => prefix.trim_end_matches("::").to_string(),
                _ => format!("{prefix}{p}"),
            });
        }
    }
    out
}

/// Every path a file's code names: `use` trees (expanded) and inline `crate::…` / `super::…` paths.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let boundary = i == 0
            || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let Some(end) = rest[i..].find(';') else {
            break;
        };
        if boundary {
            out.extend(expand(&rest[i + 4..i + end]));
        }
        rest = &rest[i + 4..];
    }
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let tail = &rest[i..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            // `super::super::x` is one path, not also `super::x`; `my_crate::` is not `crate::`.
            let inside = rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c == ':' || c == '_' || c.is_alphanumeric());
            if !inside {
                out.push(tail[..len].trim_end_matches(':').to_string());
            }
            rest = &rest[i + len.max(start.len())..];
        }
    }
    out
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut all = Vec::new();
        rs_files(src, &mut all);
        Crate {
            files: all.into_iter().map(|f| (module_path(src, &f), f)).collect(),
        }
    }

    /// The file defining the deepest module `path` names, from module `here` (a file), if it is in this crate.
    fn resolve(&self, here: &[String], here_is_dir_module: bool, path: &str) -> Option<&PathBuf> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<String> = match segs.first()? {
            &"crate" => Vec::new(),
            &"super" | &"self" => {
                // `foo.rs` and `foo/mod.rs` are both module `foo`: `super` is the parent of `foo`.
                let _ = here_is_dir_module;
                here.to_vec()
            }
            first => {
                // A child module used without `self::` (`use parts::Part;` in build/mod.rs).
                let mut child = here.to_vec();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
                here.to_vec()
            }
        };
        let mut i = match segs[0] {
            "crate" | "self" => 1,
            "super" => 0,
            _ => 0,
        };
        while segs.get(i) == Some(&"super") {
            base.pop();
            i += 1;
        }
        let mut found = self.files.get(&base);
        for s in &segs[i..] {
            base.push(s.to_string());
            match self.files.get(&base) {
                Some(f) => found = Some(f),
                None => break,
            }
        }
        found
    }

    /// File → the files it imports.
    fn edges(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut g = BTreeMap::new();
        for (module, file) in &self.files {
            if is_test_file(file) {
                continue;
            }
            let text = code(&std::fs::read_to_string(file).unwrap());
            let is_dir = file.file_stem().unwrap() == "mod";
            let deps: BTreeSet<PathBuf> = paths(&text)
                .iter()
                .filter_map(|p| self.resolve(module, is_dir, p))
                .filter(|f| *f != file && !is_test_file(f))
                .cloned()
                .collect();
            g.insert(file.clone(), deps);
        }
        g
    }
}

/// Strongly connected components with more than one file (Tarjan's algorithm).
fn cycles(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct T<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a PathBuf) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap().display().to_string()
}

#[test]
fn no_import_cycle_between_files() {
    let mut found = Vec::new();
    for src in crate_dirs() {
        for scc in cycles(&Crate::load(&src).edges()) {
            found.push(scc.iter().map(|p| rel(p)).collect::<Vec<_>>().join(" <-> "));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path();
    std::fs::create_dir(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod c;\nuse crate::b::B;\n").unwrap();
    std::fs::write(src.join("a/c.rs"), "pub struct C;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::{x, a::{self, c::C}};\n").unwrap();
    let found = cycles(&Crate::load(src).edges());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0], [src.join("a/mod.rs"), src.join("b.rs")]);
}

#[test]
fn source_files_stay_small() {
    let mut long = Vec::new();
    for src in crate_dirs() {
        let mut files = Vec::new();
        rs_files(&src, &mut files);
        for f in files.iter().filter(|f| !is_test_file(f)) {
            let text = std::fs::read_to_string(f).unwrap();
            let n = code(&text).lines().count();
            if n > MAX_LINES {
                long.push(format!("{}: {n} lines", rel(f)));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (tests aside):\n{}",
        long.join("\n")
    );
}

#[test]
fn only_the_output_layer_prints() {
    let mut found = Vec::new();
    for src in crate_dirs() {
        let mut files = Vec::new();
        rs_files(&src, &mut files);
        for f in files.iter().filter(|f| !is_test_file(f)) {
            if PRINTERS.iter().any(|p| root().join(p) == **f) {
                continue;
            }
            let text = code(&std::fs::read_to_string(f).unwrap());
            for (i, line) in text.lines().enumerate() {
                if [
                    "println!",
                    "print!(",
                    "eprintln!",
                    "eprint!(",
                    "dbg!(",
                    "std::io::stdout()",
                    "io::stderr()",
                ]
                .iter()
                .any(|m| line.contains(m))
                {
                    found.push(format!("{}:{}: {}", rel(f), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "printing outside src/output.rs and src/progress.rs (the engine reports through events::Report):\n{}",
        found.join("\n")
    );
}
