//! Uploads through the fault-injecting proxy: retried statuses, `Retry-After`, dropped connections, chunked
//! uploads.

use super::*;

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

/// A chunked upload whose `PATCH` breaks off goes on in the same session from what the session holds (its upload
/// status), instead of sending the whole blob again; a 413 makes the chunks smaller (GHCR takes at most 4 MiB).
#[test]
fn chunked_uploads_resume_and_shrink() {
    let f = Faulty::new(1024 * 1024);
    // The first chunk sent breaks off after 100 KiB.
    f.proxy.inject(Fault::DropConnection {
        after_bytes: 100 * 1024,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = f.kiln().build(
        &f.src,
        "app:v1",
        "/app",
        &["--chunk-size", "524288", "--split", "off", "-v"],
    );
    f.check_image("app", &out);
    let (posts, _, puts) = blob_upload_requests(&f.proxy, "app");
    assert_eq!(posts, puts, "one session per blob, none restarted: {err}");
    assert!(err.contains("going on from there"), "{err}");
    let status_gets = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.target.contains("/blobs/uploads/"))
        .count();
    assert_eq!(status_gets, 1, "{err}");

    // The first chunk sent is too large for the registry.
    let g = Faulty::new(1024 * 1024);
    g.proxy.inject(Fault::Status {
        status: 413,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = g.kiln().build(
        &g.src,
        "app:v1",
        "/app",
        &["--chunk-size", "1048576", "--split", "off", "-v"],
    );
    g.check_image("app", &out);
    assert!(err.contains("in 524288-byte chunks"), "{err}");
    let (posts, _, puts) = blob_upload_requests(&g.proxy, "app");
    assert_eq!(posts, puts, "{err}");
}

/// A registry that takes no chunked uploads (Artifact Registry refuses the first `PATCH`) gets each blob whole.
#[test]
fn a_registry_refusing_chunks_gets_blobs_whole() {
    let f = Faulty::new(256 * 1024);
    f.proxy.inject(Fault::Status {
        status: 405,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: usize::MAX,
    });
    let (out, err) = f
        .kiln()
        .build(&f.src, "app:v1", "/app", &["--chunk-size", "65536", "-v"]);
    f.check_image("app", &out);
    assert!(err.contains("takes no chunked uploads"), "{err}");
}
