//! kiln against real registries (distribution 2.8 in open, htpasswd, TLS and token modes, and behind a
//! fault-injecting proxy). Every claim is checked with an independent tool: skopeo reads what kiln pushed (and its
//! digest is the hash of the bytes skopeo gets), umoci unpacks it to the source tree, the proxy counts requests,
//! and the registry's own storage and tag list show that nothing was duplicated or changed.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use support::*;

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

/// The shared proof for one registry mode, with kiln reaching the registry at `k.host` (the registry, or a proxy
/// in front of it when `proxy` is given):
/// 1. build + push: the printed reference, skopeo's bytes hash to kiln's digest, umoci unpacks the source tree;
/// 2. the same push again uploads no blob: the manifest is there already, so its blobs are too;
/// 3. a build on a base in the same registry mounts the base's layers into the other repository.
fn push_pull_mount(k: &Kiln<'_>, proxy: Option<&Proxy>, repo: &str) {
    let reg = k.reg;
    let t = tempdir();
    let src = fixture(t.path());

    // 1. Build + push, checked by skopeo and umoci.
    let (out, _) = k.build(&src, &format!("{repo}:v1"), "/app", &[]);
    let digest = digest_of(&out);
    assert_eq!(out, format!("{}:v1@{digest}\n", k.r(repo)));
    assert_eq!(registry_digest(reg, &format!("{repo}:v1")), digest);
    assert_eq!(
        registry_digest(reg, &format!("{repo}@{digest}")),
        digest,
        "also by digest"
    );
    let rootfs = pull_and_unpack(reg, &format!("{repo}:v1"), &t.path().join("pull1"));
    assert_eq!(tree_listing(&src), tree_listing(&rootfs.join("app")));
    assert_eq!(skopeo_list_tags(reg, repo), vec!["v1"]);

    // 2. The same push again: the manifest exists (so do its blobs), nothing is uploaded.
    let blobs_before = storage_blobs(reg);
    if let Some(p) = proxy {
        p.clear_requests();
    }
    let (again, err) = k.build(&src, &format!("{repo}:v1"), "/app", &["-v"]);
    assert_eq!(again, out, "same image, same reference");
    assert!(err.contains("blobs are there"), "{err}");
    assert!(
        !err.lines()
            .any(|l| l.starts_with("kiln: blob ") && l.contains(" uploaded (")),
        "{err}"
    );
    assert!(err.contains("0 blobs uploaded"), "{err}");
    match proxy {
        Some(p) => {
            assert_eq!(
                blob_upload_requests(p, repo),
                (0, 0, 0),
                "{:#?}",
                p.requests()
            );
            assert!(p.count("HEAD", &format!("/v2/{repo}/manifests/sha256:")) >= 1);
            assert_eq!(p.count("PUT", &format!("/v2/{repo}/manifests/sha256:")), 0);
        }
        None => {
            // kiln's own request log is the only view of a TLS exchange; the registry's storage confirms it.
            assert_eq!(logged(&err, "POST", "/blobs/uploads/"), 0, "{err}");
            assert_eq!(logged(&err, "PATCH", "/blobs/uploads/"), 0, "{err}");
            assert_eq!(logged(&err, "PUT", "/blobs/uploads/"), 0, "{err}");
            assert!(logged(&err, "HEAD", "/manifests/sha256:") >= 1, "{err}");
        }
    }
    assert_eq!(storage_blobs(reg), blobs_before);
    assert_eq!(skopeo_list_tags(reg, repo), vec!["v1"]);

    // 3. A base in the registry: its layers are mounted into the other repository, not re-uploaded.
    let base_repo = format!("{repo}-base");
    let base_src = fixture_tree();
    let (base_out, _) = k.build(base_src.path(), &format!("{base_repo}:v1"), "/base", &[]);
    let base_digest = digest_of(&base_out);
    let raw: serde_json::Value =
        serde_json::from_str(&skopeo_inspect_raw(reg, &format!("{base_repo}:v1"))).unwrap();
    let base_layer = raw["layers"][0]["digest"].as_str().unwrap().to_string();
    if let Some(p) = proxy {
        p.clear_requests();
    }
    if reg.auth_kind() == AuthKind::Token {
        reg.clear_token_requests();
    }
    let app = small_input(t.path(), "on-base", "on a base\n");
    let base_ref = k.r(&format!("{base_repo}:v1"));
    let (out2, err2) = k.build(
        &app,
        &format!("{repo}:v2"),
        "/app",
        &["--base", &base_ref, "-v"],
    );
    let d2 = digest_of(&out2);
    assert!(
        err2.contains(&format!("mounted from {base_repo}")),
        "{err2}"
    );
    let mount_path = format!("/v2/{repo}/blobs/uploads/?");
    match proxy {
        Some(p) => {
            let mounts: Vec<_> = p
                .requests()
                .into_iter()
                .filter(|r| {
                    r.method == "POST"
                        && r.target.starts_with(&mount_path)
                        && r.target.contains("mount=")
                })
                .collect();
            assert_eq!(mounts.len(), 1, "{:#?}", p.requests());
            let target = unescape(&mounts[0].target);
            assert!(
                target.contains(&format!("mount={base_layer}")),
                "{mounts:?}"
            );
            assert!(target.contains(&format!("from={base_repo}")), "{mounts:?}");
            assert_eq!(mounts[0].status, Some(201));
            // The base layer itself was never downloaded nor uploaded again.
            assert_eq!(
                p.count("GET", &format!("/v2/{base_repo}/blobs/{base_layer}")),
                0
            );
        }
        None => {
            let decoded = unescape(&err2);
            assert_eq!(
                logged(&decoded, "POST", &format!("mount={base_layer}")),
                1,
                "{err2}"
            );
        }
    }
    if reg.auth_kind() == AuthKind::Token {
        assert!(
            reg.token_scope_requested(&format!("repository:{base_repo}:pull")),
            "{:#?}",
            reg.token_requests()
        );
    }
    let raw2: serde_json::Value =
        serde_json::from_str(&skopeo_inspect_raw(reg, &format!("{repo}:v2"))).unwrap();
    assert_eq!(raw2["layers"][0]["digest"], base_layer.as_str());
    assert_eq!(
        raw2["annotations"]["org.opencontainers.image.base.digest"],
        base_digest.as_str()
    );
    assert_eq!(registry_digest(reg, &format!("{repo}:v2")), d2);
    let rootfs = pull_and_unpack(reg, &format!("{repo}:v2"), &t.path().join("pull2"));
    assert_eq!(
        tree_listing(base_src.path()),
        tree_listing(&rootfs.join("base"))
    );
    assert_eq!(tree_listing(&app), tree_listing(&rootfs.join("app")));
}

/// Wrong credentials: exit 1, the registry and the credential source named, `kiln login` suggested, and the
/// password never printed.
fn wrong_credentials(reg: &Registry, creds: Creds, expect_source: &str) {
    let bad = "not-the-password-7f3a9";
    let k = Kiln::with_password(reg, &reg.host(), creds, bad);
    let src = fixture_tree();
    let out = k.build_out(src.path(), "denied:v1", &["-v"]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(so.is_empty(), "{so}");
    assert!(se.contains(&reg.host()), "{se}");
    assert!(se.contains(expect_source), "{se}");
    assert!(se.contains(&format!("kiln login {}", reg.host())), "{se}");
    assert!(!se.contains(bad), "password leaked: {se}");
    assert!(skopeo_list_tags_or_empty(reg, "denied").is_empty());
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

#[test]
fn open_registry_push_pull_and_mount() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    push_pull_mount(&k, Some(&proxy), "app");
}

#[test]
fn htpasswd_registry_with_docker_config_and_env_credentials() {
    let reg = Registry::start(Mode::htpasswd());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::DockerConfig);
    push_pull_mount(&k, Some(&proxy), "app");
    let k = Kiln::new(&reg, &proxy.host(), Creds::Env);
    push_pull_mount(&k, Some(&proxy), "team/env");

    wrong_credentials(&reg, Creds::DockerConfig, "config.json");
    wrong_credentials(&reg, Creds::Env, "KILN_REGISTRY_USERNAME");
}

#[test]
fn token_registry_push_pull_and_mount() {
    let reg = Registry::start(Mode::token());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::DockerConfig);
    push_pull_mount(&k, Some(&proxy), "app");
    wrong_credentials(&reg, Creds::DockerConfig, "config.json");

    // A layer streamed while it is compressed goes through the same token flow.
    let t = tempdir();
    let src = t.path().join("big");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), noise(9 << 20, 3)).unwrap();
    let (out, err) = k.build(
        &src,
        "streamed:v1",
        "/app",
        &["--chunk-size", "1048576", "-v"],
    );
    assert_eq!(registry_digest(&reg, "streamed:v1"), digest_of(&out));
    assert!(
        proxy.count("PATCH", "/v2/streamed/blobs/uploads/") >= 10,
        "{err}"
    );
    assert!(!err.contains("given up"), "{err}");

    // And without --chunk-size, as one streamed PATCH sent by the async client, with its own token (into a new
    // repository: only there are layers streamed before they are known to be missing).
    proxy.clear_requests();
    std::fs::write(src.join("big.bin"), noise(33 << 20, 4)).unwrap();
    let (out, err) = k.build(&src, "streamed2:v1", "/app", &["-v"]);
    assert_eq!(registry_digest(&reg, "streamed2:v1"), digest_of(&out));
    assert_one_streamed_patch(&proxy, &err);
    let patch = proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert!(patch.authorization, "{patch:?}");
    assert!(err.contains("uploaded while building"), "{err}");
}

#[test]
fn tls_registry_with_ca_file() {
    let reg = Registry::start(Mode::open().tls());
    let k = Kiln::new(&reg, &reg.host(), Creds::None);
    push_pull_mount(&k, None, "app");

    // Without the CA: a certificate error naming the registry, exit 1, nothing pushed.
    let env = KilnEnv::new();
    let src = fixture_tree();
    let out = env.run(&[
        "build",
        src.path().to_str().unwrap(),
        "--to",
        &format!("{}/untrusted:v1", reg.host()),
    ]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(so.is_empty());
    assert!(se.contains(&reg.host()), "{se}");
    assert!(se.to_lowercase().contains("certificate"), "{se}");
    assert!(skopeo_list_tags_or_empty(&reg, "untrusted").is_empty());
}

#[test]
fn tls_registry_with_htpasswd() {
    let reg = Registry::start(Mode::htpasswd().tls());
    let k = Kiln::new(&reg, &reg.host(), Creds::Env);
    push_pull_mount(&k, None, "app");
    wrong_credentials_tls(&reg);

    // A layer streamed while compressed: its PATCH goes through the async client, with the same CA file and
    // credentials as every other request.
    let t = tempdir();
    let src = t.path().join("big");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), noise(33 << 20, 5)).unwrap();
    let (out, err) = k.build(&src, "streamed:v1", "/app", &["-v"]);
    assert_eq!(registry_digest(&reg, "streamed:v1"), digest_of(&out));
    assert!(err.contains("(streamed) -> 202"), "{err}");
    assert!(err.contains("uploaded while building"), "{err}");
    assert!(!err.contains("given up"), "{err}");
}

fn wrong_credentials_tls(reg: &Registry) {
    let k = Kiln::with_password(reg, &reg.host(), Creds::DockerConfig, "wrong-tls-pw-1234");
    let src = fixture_tree();
    let out = k.build_out(src.path(), "denied:v1", &[]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(
        se.contains("config.json") && se.contains("kiln login"),
        "{se}"
    );
    assert!(!se.contains("wrong-tls-pw-1234"), "{se}");
}

/// Login with `--password-stdin`.
fn login(env: &KilnEnv, reg: &Registry, password: &str) -> Output {
    let mut c = env.cmd();
    c.args([
        "login",
        &reg.host(),
        "-u",
        reg.username(),
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if reg.is_tls() {
        c.arg("--ca-file").arg(reg.ca_pem_path());
    }
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn login_stores_verified_credentials_only() {
    for reg in [
        Registry::start(Mode::htpasswd()),
        Registry::start(Mode::token()),
    ] {
        let env = KilnEnv::new();
        let config = env.home().join(".docker/config.json");

        // A wrong password: exit 1, nothing written, the password not echoed.
        let out = login(&env, &reg, "definitely-wrong-pw");
        let (_, se) = texts(&out);
        assert_eq!(code(&out), 1, "{se}");
        assert!(!config.exists(), "login wrote {config:?} after a failure");
        assert!(!se.contains("definitely-wrong-pw"), "{se}");
        assert!(se.contains(&reg.host()), "{se}");

        // The right one: config.json has it, and a build then needs nothing else.
        let out = login(&env, &reg, reg.password());
        assert_eq!(code(&out), 0, "{}", texts(&out).1);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        let auth = cfg["auths"][reg.host()]["auth"].as_str().unwrap();
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap();
        assert_eq!(
            decoded,
            format!("{}:{}", reg.username(), reg.password()).as_bytes()
        );
        let src = fixture_tree();
        let (out, _) = env.ok(&[
            "build",
            src.path().to_str().unwrap(),
            "--to",
            &format!("{}/after-login:v1", reg.host()),
        ]);
        assert_eq!(registry_digest(&reg, "after-login:v1"), digest_of(&out));
    }
}

#[test]
fn push_from_layout_and_inspect_remote() {
    let reg = Registry::start(Mode::open());
    let k = Kiln::new(&reg, &reg.host(), Creds::None);
    let t = tempdir();
    let src = fixture(t.path());
    let layout = t.path().join("layout");
    let (out, _) = k.ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("oci:{}:v1", layout.display()),
        "--prefix",
        "/app",
        "--platform",
        PLATFORM,
    ]);
    let built = digest_of(&out);

    let (out, err) = k.ok(&[
        "push",
        &format!("oci:{}:v1", layout.display()),
        &k.r("pushed:v1"),
    ]);
    assert_eq!(out, format!("{}:v1@{built}\n", k.r("pushed")));
    assert!(err.contains("uploaded"), "{err}");
    let skopeo_digest = registry_digest(&reg, "pushed:v1");
    assert_eq!(skopeo_digest, built);

    let (text, _) = k.ok(&["inspect", &k.r("pushed:v1")]);
    assert!(text.contains(&skopeo_digest), "{text}");
    let (json, _) = k.ok(&["inspect", &k.r("pushed:v1"), "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["digest"], skopeo_digest.as_str(), "{v:#}");
    let (json, _) = k.ok(&[
        "inspect",
        &format!("{}@{skopeo_digest}", k.r("pushed")),
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["digest"], skopeo_digest.as_str(), "{v:#}");

    let rootfs = pull_and_unpack(&reg, "pushed:v1", &t.path().join("pull"));
    assert_eq!(tree_listing(&src), tree_listing(&rootfs.join("app")));
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

#[test]
fn blob_put_500_twice_is_retried_once_each() {
    let f = Faulty::new(0);
    f.proxy.inject(Fault::Status {
        status: 500,
        matching: Matcher::new("PUT", "/blobs/uploads/"),
        times: 2,
    });
    let (out, err) = f.kiln().build(&f.src, "app:v1", "/app", &["-v"]);
    f.check_image("app", &out);
    assert!(f.proxy.pending_faults().is_empty());
    // Two blobs (layer, config); each 500 costs exactly one more session (POST) and one more PUT.
    assert_eq!(blob_upload_requests(&f.proxy, "app"), (4, 0, 4), "{err}");
    let failed = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.status == Some(500))
        .count();
    assert_eq!(failed, 2);
    assert!(err.contains("retrying"), "{err}");
}

#[test]
fn manifest_put_429_honours_retry_after() {
    let f = Faulty::new(0);
    f.proxy.inject(Fault::TooManyRequests {
        retry_after: 1,
        matching: Matcher::new("PUT", "/manifests/"),
        times: 1,
    });
    let start = std::time::Instant::now();
    let (out, _) = f.kiln().build(&f.src, "app:v1", "/app", &[]);
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was not waited for"
    );
    f.check_image("app", &out);
    // Stored by its tag's PUT (429, then again): one repeat, no blob uploaded twice.
    assert_eq!(f.proxy.count("PUT", "/v2/app/manifests/"), 2);
    let limited: Vec<_> = f
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.status == Some(429))
        .collect();
    assert_eq!(limited.len(), 1);
    assert_eq!(blob_upload_requests(&f.proxy, "app"), (2, 0, 2));
}

#[test]
fn dropped_connection_mid_upload_starts_a_new_session() {
    let f = Faulty::new(128 * 1024);
    f.proxy.inject(Fault::DropConnection {
        after_bytes: 32 * 1024,
        matching: Matcher::new("PUT", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = f.kiln().build(&f.src, "app:v1", "/app", &["-v"]);
    f.check_image("app", &out);
    let dropped: Vec<_> = f
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .collect();
    assert_eq!(dropped.len(), 1, "{err}");
    assert_eq!(dropped[0].status, None);
    assert_eq!(blob_upload_requests(&f.proxy, "app"), (3, 0, 3), "{err}");
}

#[test]
fn chunked_uploads_send_content_range() {
    let f = Faulty::new(256 * 1024);
    let (out, err) = f
        .kiln()
        .build(&f.src, "app:v1", "/app", &["--chunk-size", "65536", "-v"]);
    let raw = f.check_image("app", &out);
    let sizes: Vec<u64> = std::iter::once(&raw["config"])
        .chain(raw["layers"].as_array().unwrap())
        .map(|d| d["size"].as_u64().unwrap())
        .collect();
    assert!(sizes.iter().any(|s| *s > 200 * 1024), "{sizes:?}");
    let patches: Vec<_> = f
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    let expected: u64 = sizes.iter().map(|s| s.div_ceil(65536)).sum();
    assert_eq!(patches.len() as u64, expected, "{err}");
    for p in &patches {
        let range = p
            .header("content-range")
            .expect("Content-Range on every PATCH");
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!(a % 65536 == 0 && b >= a && b - a < 65536, "{range}");
        assert_eq!(p.status, Some(202));
    }
    assert!(
        patches
            .iter()
            .any(|p| p.header("content-range").unwrap().starts_with("65536-"))
    );
    // The closing PUTs carry no body.
    for r in f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.target.contains("/blobs/uploads/"))
    {
        assert_eq!(r.header("content-length"), Some("0"), "{r:?}");
    }
}

/// The smallest tar kiln streams to the registry while compressing it (without `--chunk-size`).
const STREAMED_TAR: usize = 32 << 20;

/// The biggest layer of a pushed image: its digest and size.
fn biggest_layer(raw: &serde_json::Value) -> (String, u64) {
    raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap().to_string();
            (d, l["size"].as_u64().unwrap())
        })
        .max_by_key(|(_, size)| *size)
        .unwrap()
}

/// The `PATCH`es of one upload in `--chunk-size` chunks: contiguous `Content-Range`s from 0 to `size`, each
/// `chunk` long but the last, each with its `Content-Length`.
fn assert_chunked(patches: &[ProxyRequest], size: u64, chunk: u64, err: &str) {
    assert_eq!(patches.len() as u64, size.div_ceil(chunk), "{err}");
    let mut next = 0;
    for p in patches {
        assert_eq!(p.status, Some(202));
        let range = p.header("content-range").expect("Content-Range");
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(a, next, "contiguous: {range}");
        assert!(b - a + 1 == chunk || b + 1 == size, "{range}");
        assert_eq!(p.header("content-length"), Some(&*(b - a + 1).to_string()));
        next = b + 1;
    }
    assert_eq!(next, size);
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

/// A big new layer is uploaded while it is compressed: one streamed `PATCH`, committed by an empty
/// `PUT ?digest=`, never checked with `HEAD` nor sent twice; with `--chunk-size`, sized `PATCH`es of one session. And when a tag could be refused, nothing is
/// streamed: exit 3 uploads nothing.
#[test]
fn big_layer_is_streamed_while_compressed() {
    let f = Faulty::new(STREAMED_TAR + (1 << 20));
    let (out, err) = f.kiln().build(&f.src, "app:v1", "/app", &["-v"]);
    let raw = f.check_image("app", &out);
    let first = digest_of(&out);
    let (digest, size) = biggest_layer(&raw);
    assert!(size > STREAMED_TAR as u64, "{size}");
    assert_one_streamed_patch(&f.proxy, &err);
    let commit = f
        .proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && unescape(&r.target).contains(&format!("digest={digest}")))
        .expect("the layer's closing PUT");
    assert_eq!(commit.header("content-length"), Some("0"));
    assert_eq!(commit.status, Some(201));
    // One session per blob (the other layers and the config from their files), none repeated or cancelled.
    let blobs = raw["layers"].as_array().unwrap().len() + 1;
    assert_eq!(
        f.proxy.count("POST", "/v2/app/blobs/uploads/"),
        blobs,
        "{err}"
    );
    assert_eq!(
        f.proxy.count("PUT", "/v2/app/blobs/uploads/"),
        blobs,
        "{err}"
    );
    assert_eq!(f.proxy.count("HEAD", &format!("/v2/app/blobs/{digest}")), 0);
    assert_eq!(f.proxy.count("DELETE", "/"), 0);
    assert!(
        err.contains(&format!("blob {} uploaded while building", &digest[7..19])),
        "{err}"
    );

    // v1 now names another image: exit 3, and not a byte of the new layer went up.
    f.proxy.clear_requests();
    let before = storage_blobs(&f.reg);
    std::fs::write(f.src.join("big.bin"), noise(STREAMED_TAR + (1 << 20), 8)).unwrap();
    let out = f.kiln().build_out(&f.src, "app:v1", &["--prefix", "/app"]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 3, "{se}");
    assert_eq!(blob_upload_requests(&f.proxy, "app"), (0, 0, 0), "{se}");
    assert_eq!(storage_blobs(&f.reg), before);
    assert_eq!(registry_digest(&f.reg, "app:v1"), first);

    // --chunk-size: the same stream in sized PATCHes (a new image, as v2).
    f.proxy.clear_requests();
    let chunk = 4u64 << 20;
    let (out, err) = f.kiln().build(
        &f.src,
        "app:v2",
        "/app",
        &["--chunk-size", &chunk.to_string(), "-v"],
    );
    assert_eq!(registry_digest(&f.reg, "app:v2"), digest_of(&out));
    let raw: serde_json::Value =
        serde_json::from_str(&skopeo_inspect_raw(&f.reg, "app:v2")).unwrap();
    let (digest, size) = biggest_layer(&raw);
    // The PATCHes of that layer's session (the small blobs go up from their files, in chunks too).
    let reqs = f.proxy.requests();
    let session = reqs
        .iter()
        .find(|r| r.method == "PUT" && unescape(&r.target).contains(&format!("digest={digest}")))
        .expect("the layer's closing PUT")
        .path()
        .to_string();
    let patches: Vec<_> = reqs
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path() == session)
        .collect();
    assert_chunked(&patches, size, chunk, &err);
    assert!(err.contains("uploaded while building"), "{err}");
}

/// A streamed upload whose `PATCH` fails is cancelled, and the layer is pushed from its file instead: the image
/// is complete and the registry holds nothing else.
#[test]
fn failed_streamed_patch_falls_back_to_pushing_the_file() {
    let f = Faulty::new(STREAMED_TAR + (1 << 20));
    f.proxy.inject(Fault::Status {
        status: 500,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = f
        .kiln()
        .build(&f.src, "app:v1", "/app", &["--split", "off", "-v"]);
    f.check_image("app", &out);
    assert!(f.proxy.pending_faults().is_empty());
    assert_eq!(
        f.proxy.count("DELETE", "/v2/app/blobs/uploads/"),
        1,
        "{err}"
    );
    assert!(err.contains("streamed layer upload given up"), "{err}");
    assert!(err.contains("HTTP 500") || err.contains("500"), "{err}");
}

/// With `--chunk-size`: a streamed upload that fails (its first chunk gets a 500) is cancelled, and the layer is
/// pushed from its file instead. (1 MiB chunks: 8 MiB of tar streams; one layer, so that the first PATCH is the
/// stream's.)
#[test]
fn failed_stream_falls_back_to_pushing_the_file() {
    let f = Faulty::new(9 << 20);
    f.proxy.inject(Fault::Status {
        status: 500,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = f.kiln().build(
        &f.src,
        "app:v1",
        "/app",
        &["--chunk-size", "1048576", "--split", "off", "-v"],
    );
    let raw = f.check_image("app", &out);
    assert!(f.proxy.pending_faults().is_empty());
    let (_, size) = biggest_layer(&raw);
    let failed = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.status == Some(500))
        .count();
    assert_eq!(failed, 1, "{err}");
    assert_eq!(
        f.proxy.count("DELETE", "/v2/app/blobs/uploads/"),
        1,
        "{err}"
    );
    // Pushed from the file, in --chunk-size PATCHes like any other blob.
    assert!(
        f.proxy.requests().iter().any(|r| r.header("content-range")
            == Some(&*format!("0-{}", (1 << 20) - 1))
            && r.status == Some(202)),
        "{err}"
    );
    assert!(size > 9 << 20);
    assert!(err.contains("streamed layer upload given up"), "{err}");
    assert!(err.contains("uploaded while building"), "{err}");
}

#[test]
fn cross_host_redirect_and_upload_location_get_no_credentials() {
    let reg = Registry::start(Mode::htpasswd());
    let proxy = Proxy::start(&reg);
    proxy.set_secondary_auth(Some(reg.basic_auth()));
    let k = Kiln::new(&reg, &proxy.host(), Creds::DockerConfig);
    let t = tempdir();

    // Uploads whose Location is on another host: they go there without our Authorization.
    proxy.inject(Fault::UploadToSecondary {
        matching: Matcher::new("POST", "/blobs/uploads/"),
        times: usize::MAX,
    });
    let base_src = fixture_tree();
    let (out, _) = k.build(base_src.path(), "base:v1", "/base", &[]);
    let base_digest = digest_of(&out);
    assert_eq!(registry_digest(&reg, "base:v1"), base_digest);
    let uploads = proxy.secondary_requests();
    assert_eq!(
        uploads
            .iter()
            .filter(|r| r.method == "PUT" && r.status == Some(201))
            .count(),
        2,
        "{uploads:#?}"
    );
    assert!(uploads.iter().all(|r| !r.authorization), "{uploads:#?}");
    proxy.clear_faults();
    proxy.clear_requests();

    // A base whose blob GETs redirect to another host: followed, without Authorization.
    proxy.inject(Fault::Redirect {
        matching: Matcher::new("GET", "/blobs/"),
        times: usize::MAX,
    });
    let app = small_input(t.path(), "app", "redirected base\n");
    let layout = t.path().join("layout");
    let (out, _) = k.ok(&[
        "build",
        app.to_str().unwrap(),
        "--to",
        &format!("oci:{}:v1", layout.display()),
        "--base",
        &k.r("base:v1"),
        "--prefix",
        "/app",
        "--platform",
        PLATFORM,
    ]);
    let digest = digest_of(&out);
    let gets = proxy.secondary_requests();
    assert!(
        gets.iter()
            .filter(|r| r.method == "GET" && r.status == Some(200))
            .count()
            >= 2,
        "config and layer fetched from the other host: {gets:#?}"
    );
    assert!(gets.iter().all(|r| !r.authorization), "{gets:#?}");
    let redirected = proxy
        .requests()
        .iter()
        .filter(|r| r.via == Listener::Primary && r.status == Some(307))
        .count();
    assert_eq!(redirected, gets.len());

    let img = format!("oci:{}:v1", layout.display());
    let raw = tool_ok("skopeo", &["inspect", "--raw", &img]);
    assert_eq!(sha256_digest(raw.as_bytes()), digest);
    let bundle = t.path().join("bundle");
    umoci_unpack(&format!("{}:v1", layout.display()), &bundle);
    assert_eq!(
        tree_listing(base_src.path()),
        tree_listing(&bundle.join("rootfs/base"))
    );
    assert_eq!(tree_listing(&app), tree_listing(&bundle.join("rootfs/app")));
}

#[test]
fn registry_targets_usage_errors() {
    let src = fixture_tree();
    let env = KilnEnv::new();
    let digest = format!("sha256:{}", "a".repeat(64));
    for to in [
        "docker://example.com/x/y".to_string(),
        "127.0.0.1:5000/Invalid/UPPER".to_string(),
        format!("127.0.0.1:5000/repo@{digest}"),
    ] {
        let out = env.run(&["build", src.path().to_str().unwrap(), "--to", &to]);
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 2, "--to {to}: {se}");
        assert!(so.is_empty());
        assert!(se.contains(&to), "--to {to}: the value is named: {se}");
        assert!(
            !env.cache().join("index.json").exists(),
            "nothing built for --to {to}"
        );
    }
    let out = env.run(&[
        "push",
        "oci:/nonexistent:v1",
        &format!("127.0.0.1:5000/repo@{digest}"),
    ]);
    assert_eq!(code(&out), 2, "{}", texts(&out).1);
}

/// Tag → digest of every tag of `repo`, as skopeo sees them.
fn tag_map(reg: &Registry, repo: &str) -> std::collections::BTreeMap<String, String> {
    skopeo_list_tags_or_empty(reg, repo)
        .into_iter()
        .map(|t| {
            let d = registry_digest(reg, &format!("{repo}:{t}"));
            (t, d)
        })
        .collect()
}

#[test]
fn versions_against_the_registry() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let auto = |name: &str, extra: &[&str]| -> Output {
        let src = small_input(t.path(), name, &format!("input {name}\n"));
        let mut args = vec!["--version", "auto"];
        args.extend_from_slice(extra);
        k.build_out(&src, "app", &args)
    };

    // v1, v2, v3 for three different inputs.
    let mut printed = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let out = auto(name, &[]);
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 0, "{se}");
        let d = digest_of(&so);
        assert_eq!(so, format!("{}:v{}@{d}\n", k.r("app"), i + 1));
        printed.push(d);
    }
    let tags = tag_map(&reg, "app");
    assert_eq!(
        tags,
        [
            ("v1", &printed[0]),
            ("v2", &printed[1]),
            ("v3", &printed[2])
        ]
        .into_iter()
        .map(|(t, d)| (t.to_string(), d.clone()))
        .collect()
    );

    // An unchanged rebuild reuses its version: nothing new is tagged.
    let out = auto("b", &[]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert_eq!(so, format!("{}:v2@{}\n", k.r("app"), printed[1]));
    assert!(se.contains("reused"), "{se}");
    assert_eq!(tag_map(&reg, "app"), tags);

    // A v9 pushed by someone else: next is v10 (numeric, not lexical, order).
    reg.api().push_test_image("app", "v9");
    let out = auto("d", &[]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    let d10 = digest_of(&so);
    assert_eq!(so, format!("{}:v10@{d10}\n", k.r("app")));
    assert_eq!(registry_digest(&reg, "app:v10"), d10);

    // `kiln tags` lists the registry's tags in version order with digests; `next-version` only reads.
    let listing = kiln_ok(&["tags", &k.r("app")]);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["v1", "v2", "v3", "v9", "v10"], "{listing}");
    assert!(listing.contains(&format!("v10\t{d10}")), "{listing}");
    let tags_now = tag_map(&reg, "app");
    assert_eq!(
        kiln_ok(&["next-version", &k.r("app"), "--version", "auto"]),
        "v11\n"
    );
    assert_eq!(tag_map(&reg, "app"), tags_now, "next-version wrote nothing");

    // A tag that points at another image: exit 3, and the registry is exactly as before (no tag, no blob).
    let before_tags = tag_map(&reg, "app");
    let before_blobs = storage_blobs(&reg);
    let before_raw = skopeo_inspect_raw(&reg, "app:v2");
    proxy.clear_requests();
    let src = small_input(t.path(), "e", "input e\n");
    let out = k.build_out(&src, "app:v2", &[]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 3, "{se}");
    assert!(so.is_empty(), "{so}");
    assert!(
        se.contains("v2") && se.contains(&printed[1]),
        "names the tag and its digest: {se}"
    );
    assert_eq!(blob_upload_requests(&proxy, "app"), (0, 0, 0));
    assert_eq!(proxy.count("PUT", "/v2/app/manifests/"), 0);
    assert_eq!(tag_map(&reg, "app"), before_tags);
    assert_eq!(storage_blobs(&reg), before_blobs);
    assert_eq!(skopeo_inspect_raw(&reg, "app:v2"), before_raw);

    // Floating tags: refused (usage error) unless allowed; nothing pushed when refused.
    let out = auto("f", &["--tag", "latest"]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 2, "{se}");
    assert!(
        se.contains("latest") && se.contains("--allow-floating"),
        "{se}"
    );
    assert_eq!(tag_map(&reg, "app"), before_tags);
    assert_eq!(storage_blobs(&reg), before_blobs);
    let out = auto("f", &["--tag", "latest", "--allow-floating"]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    let df = digest_of(so.lines().next().unwrap());
    assert_eq!(
        so,
        format!("{0}:v11@{df}\n{0}:latest@{df}\n", k.r("app")),
        "version first, then latest"
    );
    assert_eq!(registry_digest(&reg, "app:latest"), df);
    assert_eq!(registry_digest(&reg, "app:v11"), df);
}

#[test]
fn concurrent_auto_versions_get_distinct_tags() {
    let reg = Registry::start(Mode::open());
    let t = tempdir();
    let n = 8;
    let children: Vec<_> = (0..n)
        .map(|i| {
            let env = KilnEnv::new();
            let src = small_input(t.path(), &format!("in{i}"), &format!("racer {i}\n"));
            let child = env
                .cmd()
                .args([
                    "build",
                    src.to_str().unwrap(),
                    "--to",
                    &format!("{}/race", reg.host()),
                    "--version",
                    "auto",
                    "--platform",
                    PLATFORM,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (env, child)
        })
        .collect();
    let mut printed = std::collections::BTreeMap::new();
    let (mut lost, mut most) = (0, 0);
    for (_env, child) in children {
        let out = child.wait_with_output().unwrap();
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 0, "{se}");
        let mine = se.matches("was taken by another publisher").count();
        lost += mine;
        most = most.max(mine);
        let line = so.trim_end();
        let (reference, digest) = line.rsplit_once('@').unwrap();
        let tag = reference.rsplit_once(':').unwrap().1.to_string();
        assert!(
            printed.insert(tag.clone(), digest.to_string()).is_none(),
            "two processes printed {tag}"
        );
    }
    eprintln!("{lost} versions lost to other publishers on the way, at most {most} by one process");
    let want: std::collections::BTreeMap<String, String> = printed;
    assert_eq!(want.len(), n);
    assert_eq!(
        want.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        (1..=n).map(|i| format!("v{i}")).collect()
    );
    assert_eq!(
        tag_map(&reg, "race"),
        want,
        "each tag points at the digest its process printed"
    );
}

#[test]
fn auto_version_follows_tag_pagination() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let api = reg.api();
    for (repo, paging) in [
        ("ignore-n", TagPaging::IgnoreN { page: 3 }),
        (
            "cap-n",
            TagPaging::CapN {
                max: 100,
                default_page: 3,
            },
        ),
    ] {
        let img = api.push_test_image(repo, "v1");
        for i in 2..=7 {
            api.put_manifest(repo, &format!("v{i}"), oci::OCI_MANIFEST, &img.manifest);
        }
        proxy.set_tag_paging(Some(paging));
        proxy.clear_requests();
        let src = small_input(t.path(), repo, "paged\n");
        let out = k.build_out(&src, repo, &["--version", "auto"]);
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 0, "{repo}: {se}");
        let d = digest_of(&so);
        assert_eq!(so, format!("{}:v8@{d}\n", k.r(repo)), "{repo}: {se}");
        assert!(
            proxy.count("GET", &format!("/v2/{repo}/tags/list")) >= 2,
            "{repo}: followed the Link header"
        );
        assert!(
            proxy.requests().iter().all(|r| r.status != Some(400)),
            "{repo}: {:#?}",
            proxy.requests()
        );
        proxy.set_tag_paging(None);
        assert_eq!(registry_digest(&reg, &format!("{repo}:v8")), d);
        assert_eq!(skopeo_list_tags(&reg, repo).len(), 8);
    }
}

/// `n` JavaScript modules of ~25 KiB under `dir/chunk0..chunk{dirs-1}`, `m{i:03}.js` each.
fn js_modules(dir: &Path, n: usize, dirs: usize) {
    for i in 0..n {
        let d = dir.join(format!("chunk{}", i % dirs));
        std::fs::create_dir_all(&d).unwrap();
        let body = format!("export const m{i} = {};\n", i * 7919).repeat(700);
        std::fs::write(d.join(format!("m{i:03}.js")), body).unwrap();
    }
}

/// `f` rewritten as a build tool does (a new inode), one byte different, the same size.
fn rewrite_one_byte(f: &Path) {
    let mut body = std::fs::read(f).unwrap();
    body[13] = b'X';
    std::fs::remove_file(f).unwrap();
    std::fs::write(f, body).unwrap();
}

#[test]
fn a_one_file_change_pushes_only_its_layer() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let src = k.env.path("dist");
    js_modules(&src, 600, 5);
    let split = ["--split", "4MiB"];
    let (first, _) = k.build(&src, "web:v1", "/app", &split);
    let layers = |out: &str| -> Vec<String> {
        let raw: serde_json::Value = serde_json::from_str(&skopeo_inspect_raw(
            &reg,
            &format!("web@{}", digest_of(out)),
        ))
        .unwrap();
        raw["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let before = layers(&first);
    assert!(before.len() >= 3, "{before:?}");
    // A first push into an empty repository: each blob goes up without a HEAD, and the manifest is stored once,
    // by its tag.
    assert_eq!(proxy.count("HEAD", "/v2/web/blobs/"), 0);
    assert_eq!(
        blob_upload_requests(&proxy, "web"),
        (before.len() + 1, 0, before.len() + 1)
    );
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/"), 1);
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/v1"), 1);

    proxy.clear_requests();
    let f = src.join("chunk2/m302.js");
    let original = std::fs::read(&f).unwrap();
    rewrite_one_byte(&f);
    let mut verbose = split.to_vec();
    verbose.push("-v");
    let (second, err) = k.build(&src, "web:v2", "/app", &verbose);
    let after = layers(&second);
    assert_eq!(after.len(), before.len());
    assert_eq!(after.iter().filter(|l| !before.contains(l)).count(), 1);
    // Two blobs uploaded: the changed layer and the config; every other layer was found there (HEAD). The changed
    // layer went up while it was compressed (one streamed PATCH, never asked for first: its slot was built before
    // from other bytes), the config through a session opened while the layer was built; the config of an image
    // with a new layer is new too, so it is not asked for first either. No session was left over.
    assert_eq!(blob_upload_requests(&proxy, "web"), (2, 1, 2), "{err}");
    assert_one_streamed_patch(&proxy, &err);
    assert_eq!(
        proxy.count("HEAD", "/v2/web/blobs/"),
        after.len() - 1,
        "{err}"
    );
    assert_eq!(proxy.count("DELETE", "/"), 0, "{err}");
    assert!(err.contains("(1 compressed,"), "{err}");
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/"), 1, "{err}");

    // Reverted: the part is streamed again although the registry has its blob (from v1); the registry keeps one
    // copy, and the image is v1's layers.
    proxy.clear_requests();
    std::fs::remove_file(&f).unwrap();
    std::fs::write(&f, original).unwrap();
    let (third, err) = k.build(&src, "web:v3", "/app", &verbose);
    assert_eq!(layers(&third), before, "{err}");
    assert_eq!(blob_upload_requests(&proxy, "web").1, 1, "{err}");
    assert_eq!(proxy.count("DELETE", "/"), 0, "{err}");
    assert_eq!(registry_digest(&reg, "web:v3"), digest_of(&third));
}

/// Set the mtime of every file under `dir` to `days` ago.
fn age_tree(dir: &Path, days: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            age_tree(&p, days);
        } else {
            std::fs::File::open(&p).unwrap().set_modified(then).unwrap();
        }
    }
}

/// A cache kept between builds stays bounded: after a build, entries unused for `--cache-max-age` days go (a
/// layer cache hit keeps its record and blob), and what is left still serves the next build.
#[test]
fn an_unused_cache_is_pruned_and_a_used_one_kept() {
    let reg = Registry::start(Mode::open());
    let k = Kiln::new(&reg, &reg.host(), Creds::None);
    let src = k.env.path("dist");
    js_modules(&src, 300, 3);
    let split = ["--split", "2MiB", "-v"];
    k.build(&src, "web:v1", "/app", &split);
    let cache = k.env.cache();
    let blobs = |c: &Path| {
        std::fs::read_dir(c.join("layout/blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs(&cache);
    // A month without builds, then one file changes.
    age_tree(&cache, 30);
    let f = src.join("chunk1/m151.js");
    rewrite_one_byte(&f);
    let (out, err) = k.build(&src, "web:v2", "/app", &split);
    assert_eq!(registry_digest(&reg, "web:v2"), digest_of(&out));
    // Gone: the changed layer's old blob and v1's config and manifest (no record names them any more).
    assert!(err.contains("removed"), "{err}");
    assert!(err.contains("(1 compressed,"), "{err}");
    assert_eq!(
        blobs(&cache),
        before,
        "3 in (layer, config, manifest), 3 out\n{err}"
    );
    // Every part's slot record stayed: the changed one was written anew, the others refreshed by their hits.
    let slots = std::fs::read_dir(cache.join("layers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("slot-")
        })
        .count();
    assert_eq!(slots, 3, "{err}");
    // What stayed serves the next build: nothing to compress.
    let (again, err) = k.build(&src, "web:v2", "/app", &split);
    assert_eq!(digest_of(&again), digest_of(&out));
    assert!(err.contains("(0 compressed,"), "{err}");
    // 0 days: never pruned, however old.
    age_tree(&cache, 400);
    std::fs::remove_file(cache.join(".pruned")).unwrap();
    let n = blobs(&cache);
    k.build(
        &src,
        "web:v2",
        "/app",
        &["--split", "2MiB", "--cache-max-age", "0"],
    );
    assert_eq!(blobs(&cache), n);
}
