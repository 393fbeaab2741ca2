//! Helpers for running kiln against a test `Registry`: an isolated home and cache per test, builds that
//! return the printed reference, skopeo/umoci round trips, and a listing of the registry's blob store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use super::registry::Registry;
use super::{kiln_in, skopeo, skopeo_flags};

/// One test's kiln environment: its own `HOME`/`DOCKER_CONFIG` (no credentials unless written) and its own
/// cache layout, so tests share no state.
pub struct KilnEnv {
    pub dir: TempDir,
}

impl Default for KilnEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl KilnEnv {
    pub fn new() -> KilnEnv {
        let dir = tempfile::Builder::new()
            .prefix("kiln-regtest.")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        KilnEnv { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// A scratch path under this test's temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `kiln` with this home and `--cache` set through `KILN_CACHE` (so every subcommand accepts it).
    pub fn cmd(&self) -> Command {
        let mut c = kiln_in(&self.home());
        c.env("KILN_CACHE", self.cache());
        c
    }

    /// Run kiln with `args`; any exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run kiln with `args`, require exit 0, return (stdout, stderr).
    pub fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (so, se) = texts(&out);
        assert!(
            out.status.success(),
            "kiln {args:?} failed ({}):\n--- stderr ---\n{se}\n--- stdout ---\n{so}",
            out.status
        );
        (so, se)
    }
}

/// stdout and stderr as (lossy) strings.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exit code, panicking with the output if there is none.
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {:?}", texts(out)))
}

/// `HOST/REPO:TAG@sha256:…` → `sha256:…` (panics unless the line has that shape).
pub fn digest_of(line: &str) -> String {
    let (_, d) = line
        .trim()
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("no @digest in {line:?}"));
    assert!(
        d.starts_with("sha256:") && d.len() == 71,
        "bad digest in {line:?}"
    );
    d.to_string()
}

/// `skopeo copy docker://HOST/IMAGE oci:DEST:t`, then `umoci unpack --rootless`; returns the bundle's rootfs.
pub fn pull_and_unpack(reg: &Registry, image: &str, dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    let layout = dest.join("pulled");
    let src = format!("docker://{}/{image}", reg.host());
    let dst = format!("oci:{}:t", layout.display());
    let flags = skopeo_flags(reg, "src-");
    let mut args = vec!["copy", "--quiet"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&src);
    args.push(&dst);
    skopeo(&args);
    let bundle = dest.join("bundle");
    super::umoci_unpack(&format!("{}:t", layout.display()), &bundle);
    bundle.join("rootfs")
}

/// Every blob digest (`sha256:…`) in the registry's storage.
pub fn storage_blobs(reg: &Registry) -> BTreeSet<String> {
    let root = reg.storage_dir().join("docker/registry/v2/blobs/sha256");
    let mut out = BTreeSet::new();
    let Ok(prefixes) = std::fs::read_dir(&root) else {
        return out;
    };
    for p in prefixes {
        for b in std::fs::read_dir(p.unwrap().path()).unwrap() {
            let b = b.unwrap();
            if b.path().join("data").is_file() {
                out.insert(format!("sha256:{}", b.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// `skopeo inspect --raw` of `image` on `reg` hashed: the digest the registry serves for it.
pub fn registry_digest(reg: &Registry, image: &str) -> String {
    super::sha256_digest(super::skopeo_inspect_raw(reg, image).as_bytes())
}
