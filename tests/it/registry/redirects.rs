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
