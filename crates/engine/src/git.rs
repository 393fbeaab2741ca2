//! The git state of the build context, read with the `git` CLI (no libgit2): commit, short commit,
//! `git describe --tags --always --dirty=-dirty --abbrev=7`, and whether the tree is dirty; and, for provenance,
//! [`GitSource`]: the commit, the branch and the remote URL with its credentials removed.

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

/// The source a build came from, as provenance records it (`resolvedDependencies`): never put in the image, so
/// that an unchanged rebuild from another commit still has the same digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSource {
    /// Full commit id of HEAD.
    pub commit: String,
    /// The fetch URL of the current branch's upstream remote, else of `origin`, else of the only remote; with
    /// credentials, query and fragment removed ([`strip_credentials`]). `None` when the repository has no remote.
    pub remote_url: Option<String>,
    /// The symbolic ref HEAD points to (`refs/heads/main`); `None` when HEAD is detached (as in most CI checkouts,
    /// where provenance takes the ref from the CI environment instead).
    pub reference: Option<String>,
    /// Same meaning as [`GitInfo::dirty`]: tracked changes or untracked, not ignored, files.
    pub dirty: bool,
}

impl GitSource {
    /// The source of the repository containing `dir`; `None` when it is not in a work tree, has no commit yet, or
    /// git cannot be run or refuses (provenance then simply lists no git dependency; `--version git` is where a
    /// broken repository is an error).
    pub fn discover(dir: &Path) -> Option<GitSource> {
        // One process for three answers: "true", the commit, and `refs/heads/<b>` (or "HEAD" when detached).
        let out = git(
            dir,
            &[
                "rev-parse",
                "--is-inside-work-tree",
                "HEAD",
                "--symbolic-full-name",
                "HEAD",
            ],
        )
        .ok()?;
        let mut lines = out.lines();
        if lines.next() != Some("true") {
            return None;
        }
        let commit = lines.next()?.to_string();
        let reference = lines
            .next()
            .filter(|r| r.starts_with("refs/"))
            .map(str::to_string);
        let dirty = !git(dir, &["status", "--porcelain"]).ok()?.is_empty();
        Some(GitSource {
            commit,
            remote_url: remote_url(dir, reference.as_deref()),
            reference,
            dirty,
        })
    }
}

/// The fetch URL of the branch's upstream remote, else `origin`, else the first remote (sorted): the one a
/// reader of the provenance would clone. Credentials removed.
fn remote_url(dir: &Path, reference: Option<&str>) -> Option<String> {
    let upstream = reference
        .and_then(|r| r.strip_prefix("refs/heads/"))
        .and_then(|b| git(dir, &["config", "--get", &format!("branch.{b}.remote")]).ok())
        .filter(|r| !r.is_empty() && r != "."); // "." is the local repository itself
    let remotes = git(dir, &["remote"]).ok()?;
    let mut names: Vec<&str> = remotes.lines().collect();
    names.sort_unstable();
    let name = upstream
        .as_deref()
        .filter(|u| names.contains(u))
        .or_else(|| names.iter().copied().find(|n| *n == "origin"))
        .or_else(|| names.first().copied())?;
    // `remote get-url` applies `url.<base>.insteadOf`, as a fetch would.
    let url = git(dir, &["remote", "get-url", name]).ok()?;
    Some(strip_credentials(&url)).filter(|u| !u.is_empty())
}

/// A remote URL fit for a published document: `https://user:token@host/x?private_token=…` → `https://host/x`.
/// Over HTTP(S) the user name goes too (GitHub and GitLab accept a token there); an SSH login name (`git@`) is
/// kept, its password not. Scp-like `git@host:team/app.git` and local paths have no credential and stay as they are.
pub fn strip_credentials(raw: &str) -> String {
    let raw = raw.trim();
    if !raw.contains("://") {
        return raw.to_string();
    }
    let Ok(mut u) = url::Url::parse(raw) else {
        // Not parseable as a URL but looks like one: keep only what cannot hold a secret.
        let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        return format!("{scheme}://{host}{path}");
    };
    let ssh = matches!(u.scheme(), "ssh" | "git+ssh" | "ssh+git");
    if !ssh {
        let _ = u.set_username("");
    }
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
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
    fn credentials_are_stripped_from_remote_urls() {
        for (raw, want) in [
            ("https://user:tok@host/x", "https://host/x"),
            (
                "https://ghp_abc@github.com/o/r.git",
                "https://github.com/o/r.git",
            ),
            (
                "https://gitlab-ci-token:glcbt-xyz@gitlab.example/g/p.git?private_token=t#frag",
                "https://gitlab.example/g/p.git",
            ),
            ("ssh://git:pw@host:2222/x.git", "ssh://git@host:2222/x.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("/srv/git/app.git", "/srv/git/app.git"),
            ("https://u:p@[bad/x?q", "https://[bad/x"),
        ] {
            assert_eq!(strip_credentials(raw), want, "{raw}");
        }
    }

    #[test]
    fn source_has_commit_branch_clean_remote_and_dirt() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        assert_eq!(GitSource::discover(p), None, "not a repository");
        sh(p, &["init", "-q", "-b", "main"]);
        assert_eq!(GitSource::discover(p), None, "no commit yet");
        commit(p, "a");
        let s = GitSource::discover(p).unwrap();
        assert_eq!(s.commit.len(), 40);
        assert_eq!(s.reference.as_deref(), Some("refs/heads/main"));
        assert_eq!(s.remote_url, None);
        assert!(!s.dirty);

        sh(
            p,
            &[
                "remote",
                "add",
                "origin",
                "https://kiln-bot:s3cr3t-t0ken@git.example.com/team/app.git?x=1",
            ],
        );
        let s = GitSource::discover(p).unwrap();
        assert_eq!(
            s.remote_url.as_deref(),
            Some("https://git.example.com/team/app.git")
        );
        assert!(!format!("{s:?}").contains("s3cr3t"));

        // The branch's upstream remote wins over origin; scp-like URLs are kept as they are.
        sh(
            p,
            &[
                "remote",
                "add",
                "upstream",
                "git@git.example.com:up/app.git",
            ],
        );
        sh(p, &["config", "branch.main.remote", "upstream"]);
        let s = GitSource::discover(p).unwrap();
        assert_eq!(
            s.remote_url.as_deref(),
            Some("git@git.example.com:up/app.git")
        );

        // Detached HEAD (a CI checkout): no ref; untracked files make it dirty.
        let head = s.commit.clone();
        sh(p, &["checkout", "-q", "--detach"]);
        std::fs::write(p.join("untracked"), "x").unwrap();
        let s = GitSource::discover(p).unwrap();
        assert_eq!(
            (s.commit.as_str(), s.reference, s.dirty),
            (head.as_str(), None, true)
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
