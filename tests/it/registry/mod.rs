//! kiln against real registries (distribution 2.8 in open, htpasswd, TLS and token modes, and behind a
//! fault-injecting proxy). Every claim is checked with an independent tool: skopeo reads what kiln pushed (and its
//! digest is the hash of the bytes skopeo gets), umoci unpacks it to the source tree, the proxy counts requests,
//! and the registry's own storage and tag list show that nothing was duplicated or changed.
//!
//! By concern: `modes` (each registry mode, login, usage errors), `faults` (retries through the fault proxy),
//! `streaming` (layers streamed while compressed), `redirects` (where credentials go), `versions` (`--version`
//! against a registry), `cache` (rebuilds and pruning). `Kiln` and the helpers several of them use are here.

mod cache;
mod faults;
mod fresh_runner;
mod hostile;
mod mirrors;
mod modes;
mod redirects;
mod streaming;
mod unresponsive;
mod versions;

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::*;

const PLATFORM: &str = "linux/amd64";

/// Where kiln finds credentials in a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Creds {
    None,
    /// `$DOCKER_CONFIG/config.json` written by `write_docker_config`.
    DockerConfig,
    /// `KILN_REGISTRY_USERNAME` / `KILN_REGISTRY_PASSWORD`.
    Env,
}

/// kiln talking to one registry (directly or through a proxy at `host`) with one way of finding credentials.
struct Kiln<'a> {
    env: KilnEnv,
    reg: &'a Registry,
    host: String,
    creds: Creds,
    password: String,
}

impl<'a> Kiln<'a> {
    fn new(reg: &'a Registry, host: &str, creds: Creds) -> Kiln<'a> {
        Self::with_password(reg, host, creds, reg.password())
    }

    fn with_password(reg: &'a Registry, host: &str, creds: Creds, password: &str) -> Kiln<'a> {
        let env = KilnEnv::new();
        if creds == Creds::DockerConfig {
            write_docker_config(&env.home(), host, reg.username(), password);
        }
        Kiln {
            env,
            reg,
            host: host.to_string(),
            creds,
            password: password.to_string(),
        }
    }

    /// `HOST/image` as kiln should address it.
    fn r(&self, image: &str) -> String {
        format!("{}/{image}", self.host)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.env.cmd();
        c.args(args);
        if self.reg.is_tls() {
            c.arg("--ca-file").arg(self.reg.ca_pem_path());
        }
        if self.creds == Creds::Env {
            c.env("KILN_REGISTRY_USERNAME", self.reg.username())
                .env("KILN_REGISTRY_PASSWORD", &self.password);
        }
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (so, se) = texts(&out);
        assert!(
            out.status.success(),
            "kiln {args:?} failed ({}):\n--- stderr ---\n{se}\n--- stdout ---\n{so}",
            out.status
        );
        (so, se)
    }

    /// `kiln build SRC --to HOST/IMAGE --prefix PREFIX --platform linux/amd64 EXTRA…`; returns (stdout, stderr).
    fn build(&self, src: &Path, image: &str, prefix: &str, extra: &[&str]) -> (String, String) {
        let to = self.r(image);
        let mut args = vec![
            "build",
            src.to_str().unwrap(),
            "--to",
            &to,
            "--prefix",
            prefix,
            "--platform",
            PLATFORM,
        ];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    fn build_out(&self, src: &Path, image: &str, extra: &[&str]) -> Output {
        let to = self.r(image);
        let mut args = vec![
            "build",
            src.to_str().unwrap(),
            "--to",
            &to,
            "--platform",
            PLATFORM,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// A small input directory whose only file holds `content` (different content → different image).
fn small_input(parent: &Path, name: &str, content: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("version.txt"), content).unwrap();
    d
}

/// Requests that upload blob bytes to `repo`: upload starts (POST), chunks (PATCH) and completions (PUT).
fn blob_upload_requests(proxy: &Proxy, repo: &str) -> (usize, usize, usize) {
    let prefix = format!("/v2/{repo}/blobs/uploads/");
    (
        proxy.count("POST", &prefix),
        proxy.count("PATCH", &prefix),
        proxy.count("PUT", &prefix),
    )
}

/// `%3A` → `:` and `%2F` → `/` (all a query carrying a digest and a repository name needs).
fn unescape(s: &str) -> String {
    s.replace("%3A", ":")
        .replace("%3a", ":")
        .replace("%2F", "/")
        .replace("%2f", "/")
}

/// Lines of kiln's `-v` request log: `kiln: METHOD URL -> STATUS`.
fn logged(stderr: &str, method: &str, path_contains: &str) -> usize {
    stderr
        .lines()
        .filter(|l| {
            l.starts_with(&format!("kiln: {method} "))
                && l.contains(path_contains)
                && l.contains(" -> ")
        })
        .count()
}

/// The one `PATCH` a layer is streamed in: chunked transfer encoding, no `Content-Range`, accepted.
fn assert_one_streamed_patch(proxy: &Proxy, err: &str) {
    let patches: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{err}");
    let p = &patches[0];
    assert_eq!(p.status, Some(202), "{err}");
    assert_eq!(p.header("transfer-encoding"), Some("chunked"), "{p:?}");
    assert_eq!(p.header("content-range"), None, "{p:?}");
    assert_eq!(p.header("content-type"), Some("application/octet-stream"));
}

/// `n` bytes that gzip cannot shrink (xorshift), so layer sizes are predictable.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Open registry behind the fault proxy, kiln pointed at the proxy, the fixture plus a `size`-byte file.
struct Faulty {
    reg: Registry,
    proxy: Proxy,
    t: tempfile::TempDir,
    src: PathBuf,
}

impl Faulty {
    fn new(big: usize) -> Faulty {
        let reg = Registry::start(Mode::open());
        let proxy = Proxy::start(&reg);
        let t = tempdir();
        let src = t.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        write_fixture_tree(&src);
        if big > 0 {
            std::fs::write(src.join("big.bin"), noise(big, 7)).unwrap();
        }
        Faulty { reg, proxy, t, src }
    }

    fn kiln(&self) -> Kiln<'_> {
        Kiln::new(&self.reg, &self.proxy.host(), Creds::None)
    }

    /// After a faulty push of `repo:v1` printed as `out`: the registry serves exactly that image under exactly
    /// that tag, its blobs are the image's and nothing else, and it unpacks to the source.
    fn check_image(&self, repo: &str, out: &str) -> serde_json::Value {
        let digest = digest_of(out);
        assert_eq!(out, format!("{}/{repo}:v1@{digest}\n", self.proxy.host()));
        assert_eq!(registry_digest(&self.reg, &format!("{repo}:v1")), digest);
        assert_eq!(skopeo_list_tags(&self.reg, repo), vec!["v1"]);
        let raw: serde_json::Value =
            serde_json::from_str(&skopeo_inspect_raw(&self.reg, &format!("{repo}:v1"))).unwrap();
        let mut want: std::collections::BTreeSet<String> = [digest.clone()].into();
        want.insert(raw["config"]["digest"].as_str().unwrap().into());
        for l in raw["layers"].as_array().unwrap() {
            want.insert(l["digest"].as_str().unwrap().into());
        }
        assert_eq!(storage_blobs(&self.reg), want, "exactly the image's blobs");
        let rootfs = pull_and_unpack(
            &self.reg,
            &format!("{repo}:v1"),
            &self.t.path().join("pull"),
        );
        assert_eq!(tree_listing(&self.src), tree_listing(&rootfs.join("app")));
        raw
    }
}

fn skopeo_list_tags_or_empty(reg: &Registry, repo: &str) -> Vec<String> {
    let r = format!("docker://{}/{repo}", reg.host());
    let flags = skopeo_flags(reg, "");
    let mut args = vec!["list-tags"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&r);
    let out = skopeo_output(&args);
    if !out.status.success() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}
