//! A registry's words reach the terminal as text, never as terminal commands: escape sequences (retitling the
//! terminal, clearing the screen) and CR/LF (forging a `kiln: …` line in a CI log) in error messages and bodies
//! are shown escaped.

use super::*;

#[test]
fn registry_text_cannot_drive_the_terminal() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let src = small_input(t.path(), "hostile", "hostile\n");
    let forged = "\u{1b}]0;pwned\u{7}\r\nkiln: summary: published everything\u{1b}[2J\u{9b}";
    let json =
        serde_json::json!({"errors": [{"code": "DENIED", "message": forged, "detail": forged}]});
    for body in [json.to_string().into_bytes(), forged.as_bytes().to_vec()] {
        proxy.clear_faults();
        proxy.inject(Fault::Reply {
            status: 400,
            body,
            matching: Matcher::new("PUT", "/manifests/"),
            times: usize::MAX,
        });
        let out = k.build_out(&src, "hostile", &["--tag", "v1", "-vv"]);
        let (_, se) = texts(&out);
        assert_eq!(code(&out), 1, "{se}");
        for c in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
            assert!(!se.contains(c), "raw {c:?} on stderr: {se:?}");
        }
        assert!(se.contains("\\x1b]0;pwned\\x07\\r\\nkiln: summary"), "{se}");
        assert!(
            !se.lines()
                .any(|l| l.starts_with("kiln: summary: published everything")),
            "{se}"
        );
    }
}

/// A tag list whose "next" link never ends, with no new tag on any later page, ends after the first page that
/// adds nothing: the version is still right, in two requests (it looped for ever before).
#[test]
fn an_endless_tag_cursor_ends_when_nothing_new_comes() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let api = reg.api();
    let img = api.push_test_image("endless", "v1");
    api.put_manifest("endless", "v2", oci::OCI_MANIFEST, &img.manifest);
    proxy.set_tag_paging(Some(TagPaging::EndlessCursor));
    proxy.clear_requests();
    let src = small_input(t.path(), "endless", "endless\n");
    let out = k.build_out(&src, "endless", &["--version", "auto"]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert!(so.starts_with(&format!("{}:v3@", k.r("endless"))), "{so}");
    assert_eq!(proxy.count("GET", "/v2/endless/tags/list"), 2);
    proxy.set_tag_paging(None);
}

/// A blob longer than its descriptor says is cut off where the descriptor ends: a base whose config (a few
/// hundred bytes) is served as 64 MiB fails at once, naming the blob and both sizes, without reading it all.
#[test]
fn a_blob_is_read_no_further_than_its_descriptor_says() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let img = reg.api().push_test_image("bloated", "v1");
    let manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let declared = manifest["config"]["size"].as_u64().unwrap();
    proxy.inject(Fault::Reply {
        status: 200,
        body: vec![b' '; 64 << 20],
        matching: Matcher::new("GET", &format!("/blobs/{config}")),
        times: usize::MAX,
    });
    let src = small_input(t.path(), "app", "app\n");
    let out = k.build_out(&src, "app", &["--base", &k.r("bloated:v1"), "--tag", "v1"]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(
        se.contains(&config) && se.contains(&format!("its descriptor says {declared}")),
        "{se}"
    );
}

/// A tag write that failed for now is tried again only after looking at the tag: when another publisher took
/// the version meanwhile, kiln loses it and takes the next instead of writing over it (a blind retry overwrote
/// a version another process had verified and printed).
#[test]
fn a_retried_tag_write_never_overwrites_a_version_claimed_meanwhile() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let api = reg.api();
    let other = api.push_test_image("race", "other");
    proxy.inject(Fault::TooManyRequests {
        retry_after: 2,
        matching: Matcher::new("PUT", "/v2/race/manifests/v1"),
        times: 1,
    });
    let src = small_input(t.path(), "race", "mine\n");
    let out = std::thread::scope(|s| {
        let build = s.spawn(|| k.build_out(&src, "race", &["--version", "auto"]));
        // While kiln waits out the 429, another publisher takes v1.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !proxy.requests().iter().any(|r| {
            r.method == "PUT" && r.target.ends_with("/manifests/v1") && r.status == Some(429)
        }) {
            assert!(std::time::Instant::now() < deadline, "kiln never wrote v1");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        api.put_manifest("race", "v1", oci::OCI_MANIFEST, &other.manifest);
        build.join().unwrap()
    });
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert!(so.starts_with(&format!("{}:v2@", k.r("race"))), "{so}{se}");
    assert_eq!(
        registry_digest(&reg, "race:v1"),
        sha256_digest(&other.manifest),
        "v1 is the other publisher's"
    );
    assert_eq!(registry_digest(&reg, "race:v2"), digest_of(&so));
    // One write of v1 only: the retry looked first and found it taken.
    let v1_puts = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.target.ends_with("/manifests/v1"))
        .count();
    assert_eq!(v1_puts, 1, "{:#?}", proxy.requests());
}
