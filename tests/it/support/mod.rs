//! Shared integration-test harness of the `it` test binary (`tests/it/main.rs`): `use crate::support::*;`.
//!
//! * `Registry::start(Mode::open() | Mode::htpasswd() | Mode::token(), optionally .tls())` — a real
//!   distribution 2.8 registry on 127.0.0.1:<random>, killed on drop (`registry.rs`, `token.rs`).
//! * `Proxy::start(&registry)` — fault-injecting reverse proxy with request log (`proxy.rs`).
//! * `registry.api()` / `Api::via(&registry, &proxy.url())` — test-side pushes and reads (`oci.rs`).
//! * `kiln()`, `skopeo*()`, `sha256_hex()`, `fixture_tree()` — below.
//!
//! ```ignore
//! use crate::support::*;
//!
//! #[test]
//! fn pushes_through_flaky_registry() {
//!     let reg = Registry::start(Mode::htpasswd());
//!     let proxy = Proxy::start(&reg);
//!     proxy.inject(Fault::Status { status: 503, matching: Matcher::new("PATCH", "/blobs/uploads/"), times: 1 });
//!     let home = tempfile::tempdir().unwrap();
//!     write_docker_config(home.path(), &proxy.host(), reg.username(), reg.password());
//!     let src = fixture_tree();
//!     let out = kiln_in(home.path()).args(["push", "--insecure", &format!("{}/app:v1", proxy.host())])
//!         .arg(src.path()).output().unwrap();
//!     assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
//!     let raw = skopeo_inspect_raw(&reg, "app:v1");
//!     assert!(proxy.count("PATCH", "/v2/app/blobs/uploads/") >= 2);
//! }
//! ```
pub mod certs;
pub mod engines;
pub mod fixture;
pub mod http;
pub mod kiln_registry;
pub mod oci;
pub mod proxy;
pub mod referrers_api;
pub mod registry;
pub mod token;

pub use fixture::*;
pub use kiln_registry::*;
pub use oci::Api;
pub use proxy::{Fault, Listener, Matcher, Proxy, ProxyRequest, TagPaging};
pub use registry::{AuthKind, Mode, Registry};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use base64::Engine;
use sha2::Digest;

/// `SOURCE_DATE_EPOCH` given to every `kiln()` command (2023-11-14T22:13:20Z).
pub const SOURCE_DATE_EPOCH: u64 = 1_700_000_000;

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `sha256:<hex>`
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// An empty home shared by the tests of one run of this binary (`$CARGO_TARGET_TMPDIR/kiln-test-home-<binary>`),
/// wiped on first use. Tests that need their own home or cache use `KilnEnv` or `kiln_in` instead.
pub fn shared_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kiln-test-home-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Point `cmd` at `home` for everything credential- or config-related, and drop proxy and
/// `KILN_*` variables inherited from the developer's environment.
pub fn isolate_env(cmd: &mut Command, home: &Path) {
    for d in [".docker", ".config", "run"] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let ku = k.to_ascii_uppercase();
        if ku.starts_with("KILN_")
            || matches!(
                ku.as_str(),
                "HTTP_PROXY"
                    | "HTTPS_PROXY"
                    | "ALL_PROXY"
                    | "REGISTRY_AUTH_FILE"
                    | "SSL_CERT_FILE"
                    | "SSL_CERT_DIR"
            )
        {
            cmd.env_remove(k.as_ref());
        }
    }
    // The SBOM and provenance referrers are tested where they are the subject (tests/it/supply_chain.rs, which
    // turns them back on); elsewhere they would only add requests and blobs to every count.
    cmd.env("KILN_SBOM", "none").env("KILN_PROVENANCE", "none");
    cmd.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
}

/// The built `kiln` binary with `SOURCE_DATE_EPOCH` fixed and an isolated, empty home (no
/// credentials of the real user are visible).
pub fn kiln() -> Command {
    kiln_in(shared_home())
}

/// Like `kiln()` but with `HOME`/`DOCKER_CONFIG` (= `home/.docker`) under `home`, e.g. after
/// `write_docker_config(home, …)`.
pub fn kiln_in(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    isolate_env(&mut cmd, home);
    cmd.env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH.to_string());
    cmd
}

/// Write `home/.docker/config.json` with Basic credentials for `host` (e.g. `127.0.0.1:5000`).
pub fn write_docker_config(home: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    let dir = home.join(".docker");
    std::fs::create_dir_all(&dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    let json = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    path
}

/// Run `cmd`; panic with its stderr/stdout unless it succeeds. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("skopeo");
    isolate_env(&mut cmd, shared_home());
    cmd.arg("--insecure-policy").args(args);
    cmd
}

/// `skopeo --insecure-policy <args>` with an isolated home; stdout, or the test fails with stderr.
pub fn skopeo(args: &[&str]) -> String {
    run_ok(&mut skopeo_cmd(args))
}

/// Like `skopeo` but returns the raw output (for expected failures).
pub fn skopeo_output(args: &[&str]) -> Output {
    skopeo_cmd(args).output().expect("spawn skopeo")
}

/// skopeo flags to reach `reg`: `--<prefix>tls-verify=false` (plain HTTP) or
/// `--<prefix>cert-dir <dir>` (TLS), plus `--<prefix>creds user:pw` for htpasswd/token modes.
/// `prefix` is `""` for inspect/list-tags/delete, `"src-"`/`"dest-"` for copy.
pub fn skopeo_flags(reg: &Registry, prefix: &str) -> Vec<String> {
    let mut v = Vec::new();
    if reg.is_tls() {
        v.push(format!("--{prefix}cert-dir"));
        v.push(reg.cert_dir().display().to_string());
    } else {
        v.push(format!("--{prefix}tls-verify=false"));
    }
    if reg.auth_kind() != AuthKind::Open {
        v.push(format!("--{prefix}creds"));
        v.push(format!("{}:{}", reg.username(), reg.password()));
    }
    v
}

/// `skopeo inspect --raw docker://<host>/<image>` (image = `repo:tag` or `repo@sha256:…`).
pub fn skopeo_inspect_raw(reg: &Registry, image: &str) -> String {
    let r = format!("docker://{}/{image}", reg.host());
    let flags = skopeo_flags(reg, "");
    let mut args = vec!["inspect", "--raw"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&r);
    skopeo(&args)
}

/// `skopeo list-tags docker://<host>/<repo>`, parsed.
pub fn skopeo_list_tags(reg: &Registry, repo: &str) -> Vec<String> {
    let r = format!("docker://{}/{repo}", reg.host());
    let flags = skopeo_flags(reg, "");
    let mut args = vec!["list-tags"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&r);
    let v: serde_json::Value = serde_json::from_str(&skopeo(&args)).unwrap();
    v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Fixed mtime of every fixture entry (2001-09-09T01:46:40Z).
pub const FIXTURE_MTIME: u64 = 1_000_000_000;

/// Write the standard fixture tree under `root` (which must exist):
///
/// ```text
/// bin/tool           0755  "#!/bin/sh\necho tool\n"
/// etc/app.conf       0644  "key = value\n"
/// etc/hard.conf      0644  hard link to etc/app.conf
/// secret.txt         0600  "s3cret\n"
/// data/nested/deep.txt 0644  "deep\n"
/// data/empty/        0755  empty directory
/// link -> etc/app.conf     relative symlink
/// ```
/// Directories are 0755. Files and directories get mtime `FIXTURE_MTIME`.
pub fn write_fixture_tree(root: &Path) {
    let files: [(&str, &[u8], u32); 4] = [
        ("bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        ("etc/app.conf", b"key = value\n", 0o644),
        ("secret.txt", b"s3cret\n", 0o600),
        ("data/nested/deep.txt", b"deep\n", 0o644),
    ];
    std::fs::create_dir_all(root.join("data/empty")).unwrap();
    for (rel, content, mode) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::hard_link(root.join("etc/app.conf"), root.join("etc/hard.conf")).unwrap();
    std::os::unix::fs::symlink("etc/app.conf", root.join("link")).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(FIXTURE_MTIME);
    let mut dirs = Vec::new();
    for rel in [
        "bin/tool",
        "etc/app.conf",
        "secret.txt",
        "data/nested/deep.txt",
    ] {
        std::fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    for d in ["bin", "etc", "data", "data/nested", "data/empty"] {
        let p = root.join(d);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        dirs.push(p);
    }
    // Directories last (writing files bumps their parent's mtime); deepest first.
    for p in dirs.iter().rev() {
        std::fs::File::open(p).unwrap().set_modified(t).unwrap();
    }
}

/// A fresh temp dir containing `write_fixture_tree`.
pub fn fixture_tree() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("kiln-fixture.")
        .tempdir()
        .unwrap();
    write_fixture_tree(d.path());
    d
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Run kiln (isolated env, see `kiln()`) and return its output, whatever the exit status.
pub fn kiln_out(args: &[&str]) -> Output {
    kiln().args(args).output().unwrap()
}

/// Run kiln, require success, return stdout.
pub fn kiln_ok(args: &[&str]) -> String {
    let out = kiln_out(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The layer digests (bottom first) of `skopeo inspect ARGS… IMAGE`: the last argument is the image.
pub fn skopeo_layers(args: &[&str]) -> Vec<String> {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let info: serde_json::Value = serde_json::from_str(&tool_ok("skopeo", &all)).unwrap();
    info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Fail the test, naming the Debian package to install, unless `prog --version` can be started. A test that
/// needs a tool never passes without it (the project's rule: fail loudly, never pass silently).
pub fn require_tool(prog: &str, package: &str) {
    if let Err(e) = Command::new(prog).arg("--version").output() {
        panic!(
            "`{prog}` cannot be started ({e}); this test needs it: install it with \
             `apt-get install {package}` (Debian, as root)"
        );
    }
}

/// Run any tool, require success, return stdout.
pub fn tool_ok(prog: &str, args: &[&str]) -> String {
    run_ok(Command::new(prog).args(args))
}

/// `umoci unpack --rootless --image LAYOUT:TAG BUNDLE`: an independent unpacker's view of an image.
pub fn umoci_unpack(image: &str, bundle: &Path) -> String {
    tool_ok(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            image,
            bundle.to_str().unwrap(),
        ],
    )
}

/// `n` JavaScript modules of ~25 KiB under `dir/chunk0..chunk{dirs-1}`, `m{i:03}.js` each: build output that
/// `--split` cuts into several layers.
pub fn js_modules(dir: &Path, n: usize, dirs: usize) {
    for i in 0..n {
        let d = dir.join(format!("chunk{}", i % dirs));
        std::fs::create_dir_all(&d).unwrap();
        let body = format!("export const m{i} = {};\n", i * 7919).repeat(700);
        std::fs::write(d.join(format!("m{i:03}.js")), body).unwrap();
    }
}

/// `git` in `dir` with a fixed identity and dates and no user/system configuration; its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "kiln test")
        .env("GIT_AUTHOR_EMAIL", "test@kiln.invalid")
        .env("GIT_COMMITTER_NAME", "kiln test")
        .env("GIT_COMMITTER_EMAIL", "test@kiln.invalid")
        .env("GIT_AUTHOR_DATE", "2023-11-14T22:13:20Z")
        .env("GIT_COMMITTER_DATE", "2023-11-14T22:13:20Z");
    run_ok(&mut cmd).trim().to_string()
}
