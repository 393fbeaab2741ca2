//! Where credentials go: cross-host redirects and upload locations get none.

use super::*;

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
        // A cache that has not seen the base (the one above built it), so its layer is downloaded.
        "--cache",
        t.path().join("fresh-cache").to_str().unwrap(),
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

/// `KILN_REGISTRY_USERNAME/PASSWORD` go to the registry the command publishes to, never to another one that
/// asks (a third-party registry serving only the base); `KILN_REGISTRY` names the one they are for.
#[test]
fn environment_credentials_go_to_their_registry_only() {
    let target = Registry::start(Mode::htpasswd());
    let third = Registry::start(Mode::htpasswd());
    let watch = Proxy::start(&third);
    // A base on the third-party registry, pushed there with its own credentials.
    let t = tempdir();
    let base_src = small_input(t.path(), "base", "base\n");
    let third_kiln = Kiln::new(&third, &third.host(), Creds::Env);
    third_kiln.build(&base_src, "base:v1", "/base", &[]);
    let base = format!("{}/base:v1", watch.host());
    let app = small_input(t.path(), "app", "app\n");
    let k = Kiln::new(&target, &target.host(), Creds::Env);
    let build = |extra: &[(&str, &str)]| {
        let mut c = k.env.cmd();
        c.args([
            "build",
            app.to_str().unwrap(),
            "--base",
            &base,
            "--to",
            &k.r("app:v1"),
        ])
        .env("KILN_REGISTRY_USERNAME", target.username())
        .env("KILN_REGISTRY_PASSWORD", target.password());
        for (key, value) in extra {
            c.env(key, value);
        }
        c.output().unwrap()
    };
    let out = build(&[]);
    let (_, se) = texts(&out);
    assert_ne!(code(&out), 0, "the base's registry wants credentials: {se}");
    let asked = watch.requests();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|r| !r.authorization),
        "the target's credentials reached the base's registry: {asked:#?}"
    );
    // Named for the base's registry, they go there (and the build then fails at the target, which is not it).
    watch.clear_requests();
    let out = build(&[("KILN_REGISTRY", &watch.host())]);
    assert!(
        watch.requests().iter().any(|r| r.authorization),
        "{}",
        texts(&out).1
    );
}
