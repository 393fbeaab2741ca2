//! The git state of the build context, read with the `git` CLI (no libgit2): commit, short commit,
//! `git describe --tags --always --dirty=-dirty --abbrev=7`, and whether the tree is dirty.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitInfo {
    /// Full commit id of HEAD.
    pub sha: String,
    /// 7-character abbreviation (`git rev-parse --short=7`; longer when 7 is ambiguous).
    pub short_sha: String,
    /// `v1.2.3`, `v1.2.3-4-gabc1234`, `abc1234` (no tags), each with `-dirty` when tracked files changed.
    pub describe: String,
    /// `git status --porcelain` is not empty: tracked changes *or untracked, not ignored, files* (they may be in
    /// the build context, so the image may not be what the commit describes).
    pub dirty: bool,
}

impl GitInfo {
    /// The state of the repository containing `dir`, or `None` when `dir` is not inside a work tree.
    /// Errors when `git` cannot be run, the repository has no commit yet, or git fails otherwise (e.g.
    /// "dubious ownership"): call it only when a git value is needed (`--version git`, `{git_sha}`).
    pub fn discover(dir: &Path) -> Result<Option<GitInfo>> {
        match git(dir, &["rev-parse", "--is-inside-work-tree"]) {
            Ok(out) if out == "true" => {}
            Ok(_) => return Ok(None), // inside a .git directory or a bare repository
            Err(Failure::NotRepo) => return Ok(None),
            Err(f) => return Err(f.into_error(dir)),
        }
        let run = |args: &[&str]| git(dir, args).map_err(|f| f.into_error(dir));
        let sha = git(dir, &["rev-parse", "--verify", "HEAD"]).map_err(|f| match f {
            Failure::Failed(_) => Error::Version(format!(
                "{}: the git repository has no commit yet; commit first or use another --version",
                dir.display()
            )),
            f => f.into_error(dir),
        })?;
        let short_sha = run(&["rev-parse", "--short=7", "HEAD"])?;
        let describe = run(&[
            "describe",
            "--tags",
            "--always",
            "--dirty=-dirty",
            "--abbrev=7",
        ])?;
        let dirty = !run(&["status", "--porcelain"])?.is_empty();
        Ok(Some(GitInfo {
            sha,
            short_sha,
            describe,
            dirty,
        }))
    }
}

enum Failure {
    NotRepo,
    Spawn(std::io::Error),
    Failed(String),
}

impl Failure {
    fn into_error(self, dir: &Path) -> Error {
        match self {
            Failure::NotRepo => Error::Version(format!("{}: not a git repository", dir.display())),
            Failure::Spawn(e) => Error::Version(format!("running git in {}: {e}", dir.display())),
            Failure::Failed(msg) => Error::Version(format!("git in {}: {msg}", dir.display())),
        }
    }
}

/// Run `git -C dir ARGS`, returning trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C") // stable messages for the "not a git repository" check
        .output()
        .map_err(Failure::Spawn)?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if err.contains("not a git repository") {
        Err(Failure::NotRepo)
    } else {
        Err(Failure::Failed(format!("git {}: {err}", args.join(" "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run git in `dir` isolated from the user's configuration, with a fixed identity and dates.
    fn sh(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "kiln test")
            .env("GIT_AUTHOR_EMAIL", "kiln@example.com")
            .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
            .env("GIT_COMMITTER_NAME", "kiln test")
            .env("GIT_COMMITTER_EMAIL", "kiln@example.com")
            .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }

    fn commit(dir: &Path, file: &str) {
        std::fs::write(dir.join(file), file).unwrap();
        sh(dir, &["add", file]);
        sh(
            dir,
            &["-c", "commit.gpgsign=false", "commit", "-q", "-m", file],
        );
    }

    #[test]
    fn not_a_repository() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(GitInfo::discover(d.path()).unwrap(), None);
    }

    #[test]
    fn empty_repository_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        sh(d.path(), &["init", "-q"]);
        let e = GitInfo::discover(d.path()).unwrap_err().to_string();
        assert!(e.contains("no commit yet"), "{e}");
    }

    #[test]
    fn describe_tags_commits_and_dirt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        sh(p, &["init", "-q"]);
        commit(p, "a");
        let g = GitInfo::discover(p).unwrap().unwrap();
        assert_eq!(g.sha.len(), 40);
        assert_eq!(g.short_sha, g.sha[..7]);
        assert_eq!(g.describe, g.short_sha);
        assert!(!g.dirty);

        sh(p, &["tag", "v1.2.3"]);
        assert_eq!(GitInfo::discover(p).unwrap().unwrap().describe, "v1.2.3");

        commit(p, "b");
        let g = GitInfo::discover(p).unwrap().unwrap();
        assert_eq!(g.describe, format!("v1.2.3-1-g{}", g.short_sha));

        std::fs::write(p.join("a"), "changed").unwrap();
        let g = GitInfo::discover(p).unwrap().unwrap();
        assert!(g.dirty);
        assert!(g.describe.ends_with("-dirty"), "{}", g.describe);

        sh(p, &["checkout", "-q", "a"]);
        std::fs::write(p.join("untracked"), "x").unwrap();
        let g = GitInfo::discover(p).unwrap().unwrap();
        assert!(g.dirty, "untracked files count as dirty");
        assert!(!g.describe.ends_with("-dirty"));

        // a subdirectory of the work tree is discovered too
        std::fs::create_dir(p.join("sub")).unwrap();
        assert!(GitInfo::discover(&p.join("sub")).unwrap().is_some());
    }
}
