//! Each registry mode (open, htpasswd, token, TLS) proven end to end: push, pull, mount, wrong credentials,
//! `kiln login`, pushing a layout, and usage errors of registry targets.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use super::*;

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
    login_with(env, reg, password, &[])
}

/// [`login`] with more environment for kiln.
fn login_with(env: &KilnEnv, reg: &Registry, password: &str, vars: &[(&str, &str)]) -> Output {
    let mut c = env.cmd();
    c.args([
        "login",
        &reg.host(),
        "-u",
        reg.username(),
        "--password-stdin",
    ])
    .envs(vars.iter().copied())
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

/// `openssl req -x509` as people make a registry's certificate: self-signed, and so `CA:TRUE`.
fn self_signed_cert(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg(format!("subjectAltName={san}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A registry serving an ordinary self-signed certificate is trusted with `--ca-file` of that certificate (as curl,
/// skopeo and docker do), still only for the names it holds; a certificate that no CA in the file vouches for
/// fails at once (no retries) with a hint about the file, not one to pass it.
#[test]
fn self_signed_registry_certificate_with_ca_file() {
    let t = tempdir();
    let (cert, key) = self_signed_cert(t.path(), "registry", "IP:127.0.0.1,DNS:localhost");
    let (other, _) = self_signed_cert(t.path(), "other", "IP:127.0.0.1,DNS:localhost");
    let reg = Registry::start(Mode::open().tls_cert(&cert, &key));
    let src = small_input(t.path(), "selfsigned", "self-signed\n");
    let env = KilnEnv::new();
    let build = |image: &str, ca: &Path| {
        let start = std::time::Instant::now();
        let out = env.run(&[
            "build",
            src.to_str().unwrap(),
            "--to",
            &format!("{}/{image}", reg.host()),
            "--ca-file",
            ca.to_str().unwrap(),
            "-v",
        ]);
        (out, start.elapsed())
    };

    let (out, _) = build("selfsigned:v1", &cert);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert_eq!(skopeo_list_tags(&reg, "selfsigned"), vec!["v1".to_string()]);

    let (out, took) = build("untrusted:v1", &other);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(
        se.contains(&reg.host()) && se.contains("certificate"),
        "{se}"
    );
    assert!(
        !se.contains("retrying"),
        "a certificate failure was retried: {se}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}: {se}");
    assert!(se.contains("--ca-file holds the CA"), "{se}");
    assert!(!se.contains("pass --ca-file"), "{se}");
    assert!(skopeo_list_tags_or_empty(&reg, "untrusted").is_empty());

    // In the file, but not for this address: the name is still checked.
    let (wrong, wrong_key) = self_signed_cert(t.path(), "wrong", "DNS:elsewhere.example");
    let reg = Registry::start(Mode::open().tls_cert(&wrong, &wrong_key));
    let out = env.run(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("{}/wrongname:v1", reg.host()),
        "--ca-file",
        wrong.to_str().unwrap(),
    ]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(se.contains("not valid for name"), "{se}");
}

/// With `credsStore` in config.json, `kiln login` stores through the helper, as `docker login` does: the helper
/// (a recording script here: no real keychain runs in CI) gets the secret, config.json gets none, and a build
/// then finds the credentials through the same helper.
#[test]
fn login_stores_through_the_configured_credential_helper() {
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start(Mode::htpasswd());
    let env = KilnEnv::new();
    let config = env.home().join(".docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"credsStore":"kilntest"}"#).unwrap();
    let bin = env.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = env.home().join("helper-store");
    let helper = bin.join("docker-credential-kilntest");
    // `store` keeps the JSON it is given; `get` answers with it (the helper protocol's shape).
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n store) cat > {s} ;;\n get) cat > /dev/null; cat {s} ;;\n \
             *) exit 1 ;;\nesac\n",
            s = store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = login_with(&env, &reg, reg.password(), &[("PATH", &path)]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert!(se.contains("docker-credential-kilntest"), "{se}");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    assert_eq!(kept["Secret"], reg.password());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(reg.password()), "{text}");
    let src = fixture_tree();
    let mut c = env.cmd();
    c.args(["build", src.path().to_str().unwrap(), "--to"])
        .arg(format!("{}/via-helper:v1", reg.host()))
        .env("PATH", &path);
    let out = c.output().unwrap();
    assert_eq!(code(&out), 0, "{}", texts(&out).1);
}
