//! kiln's images run in real container engines (issue 17, "Proof"): containerd (`ctr`), dockerd and podman from
//! Debian's packages, started by the harness as root in temp dirs (`support::engines`), each once per run of this
//! test binary and shared by these tests. Each test runs on every engine that starts; one that cannot start is
//! skipped with `skipped: <engine>: <reason>` on stderr, or fails the test under `CI=true`.
//!
//! * `scratch`: a static binary on `scratch` prints its output (gzip and zstd docker archives); the tricky fixture
//!   tree (modes, setuid, links, long and non-UTF-8 names) listed inside the container equals the source.
//! * `base`: an app image on a Debian-like base (`/bin -> usr/bin`, `/tmp` 1777, `/home/app` owned by 1000) keeps
//!   the base's entries.
//! * `platforms`: an engine pulling a multi-platform index runs the host's image; zstd layers.

mod base;
mod platforms;
mod scratch;

use std::path::{Path, PathBuf};

use crate::support::engines::*;
use crate::support::*;

/// The engines that started; the skipped ones said so on stderr.
fn started() -> Vec<&'static Engine> {
    let e = engines();
    if e.is_empty() {
        loud("skipped: no container engine could start (see the lines above)");
    }
    e
}

/// `dir/busybox`: a copy of the static busybox, for a layer that lands in /bin or /usr/bin.
fn busybox_dir(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(static_busybox(), dir.join("busybox")).unwrap();
    dir.to_path_buf()
}

/// `kiln build ARGS…`, which must succeed; the reference it printed first.
fn build(args: &[&str]) -> String {
    let mut all = vec!["build", "--progress", "none"];
    all.extend_from_slice(args);
    let out = kiln_ok(&all);
    out.lines().next().unwrap_or_default().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
