//! The fault-injecting proxy: forwarding, injected statuses and drops, tag paging, cross-host redirects.

use std::io::Read;
use std::process::Command;

use reqwest::blocking::Body;
use reqwest::header::{AUTHORIZATION, LOCATION};

use super::*;

#[test]
fn proxy_forwards_push_and_streams_bodies() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let api = Api::via(&reg, &proxy.url());
    let img = api.push_test_image("app", "v1");
    assert_eq!(
        skopeo_inspect_raw(&reg, "app:v1").as_bytes(),
        &img.manifest[..],
        "landed upstream"
    );

    // Location headers point back at the proxy, and every hop was recorded.
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", proxy.url()))
        .send()
        .unwrap();
    let loc = header(&r, LOCATION);
    assert!(
        loc.starts_with(&format!("http://{}/v2/app/blobs/uploads/", proxy.host())),
        "{loc}"
    );
    assert_eq!(proxy.count("POST", "/v2/app/blobs/uploads/"), 3);
    assert_eq!(proxy.count("PUT", "/v2/app/manifests/v1"), 1);
    let put = proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path().contains("/manifests/"))
        .unwrap();
    assert_eq!(put.status, Some(201));
    assert!(!put.authorization);
    assert_eq!(put.header("content-type"), Some(oci::OCI_MANIFEST));

    // A chunked (unknown-length) PATCH of 3 MiB streams through, then PUT closes the upload.
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let digest = sha256_digest(&data);
    let reader = std::io::Cursor::new(data.clone()).take(u64::MAX);
    let r = plain().patch(&loc).body(Body::new(reader)).send().unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", reg.log());
    let patch = proxy
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.header("transfer-encoding"), Some("chunked"));
    let loc = header(&r, LOCATION);
    let r = plain()
        .put(format!("{loc}&digest={digest}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // curl with `Expect: 100-continue` and a Content-Length body (monolithic PUT).
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", proxy.url()))
        .send()
        .unwrap();
    let loc = header(&r, LOCATION);
    let file = tempfile::NamedTempFile::new().unwrap();
    let big: Vec<u8> = data.iter().rev().copied().collect();
    std::fs::write(file.path(), &big).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
        ])
        .args([
            "-H",
            "Expect: 100-continue",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .arg(format!("{loc}&digest={}", sha256_digest(&big)))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "201",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reg.api().get_blob("app", &digest), data);
    assert_eq!(reg.api().get_blob("app", &sha256_digest(&big)), big);
}

#[test]
fn proxy_injects_500_once_then_passes() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    proxy.inject(Fault::Status {
        status: 500,
        matching: Matcher::new("GET", "/v2/"),
        times: 1,
    });
    let url = format!("{}/v2/", proxy.url());
    assert_eq!(plain().get(&url).send().unwrap().status().as_u16(), 500);
    assert_eq!(plain().get(&url).send().unwrap().status().as_u16(), 200);
    let statuses: Vec<_> = proxy
        .requests()
        .iter()
        .map(|r| (r.status, r.fault.clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (Some(500), Some("status 500".to_string())),
            (Some(200), None)
        ]
    );
    assert!(proxy.pending_faults().is_empty());

    // A fault on an upload PUT drains the body, so the client sees the status.
    proxy.inject(Fault::Status {
        status: 503,
        matching: Matcher::new("PUT", "/blobs/uploads/"),
        times: 1,
    });
    let r = plain()
        .post(format!("{}/v2/x/blobs/uploads/", proxy.url()))
        .send()
        .unwrap();
    let put = format!(
        "{}&digest={}",
        header(&r, LOCATION),
        sha256_digest(&[1u8; 100_000])
    );
    assert_eq!(
        plain()
            .put(&put)
            .body(vec![1u8; 100_000])
            .send()
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    assert_eq!(
        plain()
            .put(&put)
            .body(vec![1u8; 100_000])
            .send()
            .unwrap()
            .status()
            .as_u16(),
        201
    );
}

#[test]
fn proxy_returns_429_with_retry_after() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    proxy.inject(Fault::TooManyRequests {
        retry_after: 1,
        matching: Matcher::path("/manifests/"),
        times: 2,
    });
    let url = format!("{}/v2/app/manifests/v1", proxy.url());
    for _ in 0..2 {
        let r = plain().head(&url).send().unwrap();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(header(&r, "retry-after"), "1");
    }
    assert_eq!(
        plain().head(&url).send().unwrap().status().as_u16(),
        404,
        "then forwarded"
    );
    assert_eq!(proxy.count("HEAD", "/v2/app/manifests/"), 3);
}

#[test]
fn proxy_drops_upload_mid_body() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    proxy.inject(Fault::DropConnection {
        after_bytes: 64 * 1024,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let data = vec![42u8; 1024 * 1024];
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", proxy.url()))
        .send()
        .unwrap();
    let loc = header(&r, LOCATION);
    let err = plain().patch(&loc).body(data.clone()).send().unwrap_err();
    assert!(
        !err.is_status(),
        "connection error, not an HTTP status: {err:?}"
    );
    let dropped = proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(dropped.status, None);
    assert_eq!(dropped.fault.as_deref(), Some("drop after 65536 bytes"));

    // The retry (same session) goes through; nothing of the dropped attempt reached the registry.
    let r = plain().patch(&loc).body(data.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(header(&r, "range"), format!("0-{}", data.len() - 1));
    let r = plain()
        .put(format!(
            "{}&digest={}",
            header(&r, LOCATION),
            sha256_digest(&data)
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

fn follow_tag_pages(proxy: &Proxy, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next.take() {
        let r = plain()
            .get(format!("{}{path}", proxy.url()))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let link = header(&r, "link");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
        pages.push(
            v["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect(),
        );
        if !link.is_empty() {
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            next = Some(link[1..link.find('>').unwrap()].to_string());
        }
        assert!(pages.len() < 10);
    }
    pages
}

#[test]
fn proxy_pages_tags_list() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let api = reg.api();
    let img = api.push_test_image("app", "t1");
    for t in ["t2", "t3", "t4", "t5", "t6", "t7"] {
        api.put_manifest("app", t, oci::OCI_MANIFEST, &img.manifest);
    }
    let all: Vec<String> = (1..=7).map(|i| format!("t{i}")).collect();

    // A registry that ignores `n`.
    proxy.set_tag_paging(Some(TagPaging::IgnoreN { page: 3 }));
    let pages = follow_tag_pages(&proxy, "/v2/app/tags/list?n=1000");
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(pages.concat(), all);
    assert_eq!(proxy.count("GET", "/v2/app/tags/list"), 3);
    assert!(
        proxy.requests()[1].target.contains("last=t3&n=3"),
        "{:?}",
        proxy.requests()[1]
    );

    // A registry that caps `n`.
    proxy.set_tag_paging(Some(TagPaging::CapN {
        max: 100,
        default_page: 3,
    }));
    let r = plain()
        .get(format!("{}/v2/app/tags/list?n=1000", proxy.url()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("PAGINATION_NUMBER_INVALID"));
    let pages = follow_tag_pages(&proxy, "/v2/app/tags/list?n=5");
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 2]);
    assert_eq!(pages.concat(), all);
    assert_eq!(
        follow_tag_pages(&proxy, "/v2/app/tags/list").len(),
        3,
        "default page size"
    );

    // skopeo (a real client) follows the Link chain too.
    proxy.set_tag_paging(Some(TagPaging::IgnoreN { page: 2 }));
    let out = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/app", proxy.host()),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Tags"].as_array().unwrap().len(), 7);
}

#[test]
fn proxy_redirects_to_second_host_and_records_authorization() {
    let reg = Registry::start(Mode::htpasswd());
    let proxy = Proxy::start(&reg);
    assert!(proxy.secondary_host().starts_with("localhost:"));
    proxy.set_secondary_auth(Some(reg.basic_auth()));
    let img = Api::via(&reg, &proxy.url()).push_test_image("app", "v1");
    let blob_url = format!("{}/v2/app/blobs/{}", proxy.url(), img.layer_digest);

    // 307 to localhost:P2; a client that follows (reqwest drops credentials across hosts).
    proxy.inject(Fault::Redirect {
        matching: Matcher::new("GET", "/blobs/sha256:"),
        times: 2,
    });
    let r = plain()
        .get(&blob_url)
        .header(AUTHORIZATION, reg.basic_auth())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(
        header(&r, LOCATION),
        format!(
            "http://{}/v2/app/blobs/{}",
            proxy.secondary_host(),
            img.layer_digest
        )
    );
    let following = registry::http_client().build().unwrap();
    let r = following
        .get(&blob_url)
        .header(AUTHORIZATION, reg.basic_auth())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), img.layer);
    let second = proxy.secondary_requests();
    assert_eq!(second.len(), 1);
    assert!(
        !second[0].authorization,
        "reqwest must not forward credentials to another host"
    );
    assert_eq!(second[0].status, Some(200));

    // A client that (wrongly) re-sends credentials is recorded as such.
    let r = plain()
        .get(format!(
            "http://{}/v2/app/blobs/{}",
            proxy.secondary_host(),
            img.layer_digest
        ))
        .header(AUTHORIZATION, reg.basic_auth())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(proxy.secondary_requests()[1].authorization);

    // Upload Location pointing at the second host; the upload continues there.
    proxy.inject(Fault::UploadToSecondary {
        matching: Matcher::new("POST", "/blobs/uploads/"),
        times: 1,
    });
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", proxy.url()))
        .header(AUTHORIZATION, reg.basic_auth())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let loc = header(&r, LOCATION);
    assert!(
        loc.starts_with(&format!(
            "http://{}/v2/app/blobs/uploads/",
            proxy.secondary_host()
        )),
        "{loc}"
    );
    let blob = b"via second host";
    let r = plain()
        .put(format!("{loc}&digest={}", sha256_digest(blob)))
        .body(blob.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let put = proxy.secondary_requests().pop().unwrap();
    assert_eq!(
        (put.method.as_str(), put.authorization, put.status),
        ("PUT", false, Some(201))
    );
    assert!(reg.api().blob_exists("app", &sha256_digest(blob)));
}

#[test]
fn proxy_relays_early_upstream_answer_to_big_upload() {
    // The registry answers 401 without reading an 8 MiB body; the client must see the 401.
    let reg = Registry::start(Mode::htpasswd());
    let proxy = Proxy::start(&reg);
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", proxy.url()))
        .basic_auth(reg.username(), Some(reg.password()))
        .send()
        .unwrap();
    let loc = header(&r, LOCATION);
    let r = plain().patch(&loc).body(vec![7u8; 8 << 20]).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let rec = proxy.requests().pop().unwrap();
    assert_eq!((rec.method.as_str(), rec.status), ("PATCH", Some(401)));
    // The proxy still works afterwards.
    let r = plain().get(format!("{}/v2/", proxy.url())).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
