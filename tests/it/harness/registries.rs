//! The test registry in each mode (open, htpasswd, token, TLS), driven by hand and read with skopeo.

use std::process::Command;

use reqwest::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};

use super::*;

#[test]
fn open_registry_push_and_skopeo_inspect() {
    let reg = Registry::start(Mode::open());
    assert!(reg.host().starts_with("127.0.0.1:"));
    let r = reg
        .client()
        .get(format!("{}/v2/", reg.url()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );

    // Monolithic upload (POST + PUT ?digest=) + manifest PUT, by hand.
    let api = reg.api();
    let img = api.push_test_image("team/app", "v1");
    assert!(api.blob_exists("team/app", &img.layer_digest));
    assert_eq!(api.get_blob("team/app", &img.config_digest), img.config);

    let raw = skopeo_inspect_raw(&reg, "team/app:v1");
    assert_eq!(
        raw.as_bytes(),
        &img.manifest[..],
        "skopeo sees the bytes we pushed"
    );
    let by_digest = skopeo_inspect_raw(&reg, &format!("team/app@{}", img.manifest_digest));
    assert_eq!(by_digest, raw);
    assert_eq!(skopeo_list_tags(&reg, "team/app"), vec!["v1"]);

    // Deletion is enabled.
    let r = reg
        .client()
        .delete(format!(
            "{}/v2/team/app/manifests/{}",
            reg.url(),
            img.manifest_digest
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", reg.log());
    assert!(api.get_manifest("team/app", &img.manifest_digest).is_none());
    assert!(
        reg.storage_dir()
            .join("docker/registry/v2/repositories/team/app")
            .is_dir()
    );
}

#[test]
fn htpasswd_registry_challenges_and_accepts_basic() {
    let reg = Registry::start(Mode::htpasswd().user("other", "other-pw"));
    let url = format!("{}/v2/", reg.url());
    let r = plain().get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        header(&r, WWW_AUTHENTICATE),
        "Basic realm=\"kiln-test-realm\""
    );
    let r = plain()
        .get(&url)
        .basic_auth(reg.username(), Some(reg.password()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = plain()
        .get(&url)
        .basic_auth("other", Some("other-pw"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "second user");
    let r = plain()
        .get(&url)
        .basic_auth(reg.username(), Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let img = reg.api().push_test_image("app", "latest");
    assert_eq!(
        skopeo_inspect_raw(&reg, "app:latest").as_bytes(),
        &img.manifest[..]
    );
}

#[test]
fn token_registry_end_to_end() {
    let reg = Registry::start(
        Mode::token()
            .anonymous_pull()
            .user("reader", "reader-pw")
            .policy(|user, _kind, _name, action| match user {
                Some("reader") | None => action == "pull",
                Some(_) => true,
            }),
    );
    let v2 = format!("{}/v2/", reg.url());
    let r = plain().get(&v2).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let realm = reg.token_realm();
    assert_eq!(
        header(&r, WWW_AUTHENTICATE),
        format!("Bearer realm=\"{realm}\",service=\"kiln-test-registry\"")
    );

    // Token for push+pull on `app`, as a client would fetch it.
    let r = plain()
        .get(format!(
            "{realm}?service=kiln-test-registry&scope=repository:app:push,pull"
        ))
        .basic_auth(reg.username(), Some(reg.password()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["access_token"].as_str().unwrap(), token);
    assert_eq!(body["expires_in"].as_u64(), Some(300));
    let bearer = format!("Bearer {token}");
    let r = plain()
        .get(&v2)
        .header(AUTHORIZATION, &bearer)
        .send()
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "registry accepts our JWT: {}",
        reg.log()
    );

    // Push a blob with it (POST + PUT ?digest=).
    let blob = b"token-flow blob";
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", reg.url()))
        .header(AUTHORIZATION, &bearer)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", reg.log());
    let loc = header(&r, LOCATION);
    let r = plain()
        .put(format!("{loc}&digest={}", sha256_digest(blob)))
        .header(AUTHORIZATION, &bearer)
        .body(blob.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let reqs = reg.token_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].user.as_deref(), Some("kiln"));
    assert!(reqs[0].asked("repository:app:push,pull"));
    assert_eq!(reqs[0].granted, vec!["repository:app:push,pull"]);
    assert_eq!(reqs[0].service.as_deref(), Some("kiln-test-registry"));

    // A restricted user gets pull only; pushing with that token is refused by the registry.
    let r = plain()
        .get(format!(
            "{realm}?service=kiln-test-registry&scope=repository%3Aapp%3Apull%2Cpush"
        ))
        .basic_auth("reader", Some("reader-pw"))
        .send()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    let reader = format!("Bearer {}", body["token"].as_str().unwrap());
    let r = plain()
        .post(format!("{}/v2/app/blobs/uploads/", reg.url()))
        .header(AUTHORIZATION, &reader)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        header(&r, WWW_AUTHENTICATE).contains("error=\"insufficient_scope\""),
        "{}",
        header(&r, WWW_AUTHENTICATE)
    );
    assert_eq!(reg.token_requests()[1].granted, vec!["repository:app:pull"]);
    let r = plain()
        .head(format!(
            "{}/v2/app/blobs/{}",
            reg.url(),
            sha256_digest(blob)
        ))
        .header(AUTHORIZATION, &reader)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "pull allowed");

    // Bad credentials: 401 from the token server. No credentials: anonymous pull-only token.
    let r = plain()
        .get(format!("{realm}?service=kiln-test-registry"))
        .basic_auth("kiln", Some("nope"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = plain()
        .get(format!(
            "{realm}?service=kiln-test-registry&scope=repository:app:pull,push"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let last = reg.token_requests().pop().unwrap();
    assert_eq!(
        (last.user, last.granted),
        (None, vec!["repository:app:pull".to_string()])
    );

    // A real client (skopeo) through the whole challenge → token → retry dance.
    reg.clear_token_requests();
    let img = reg.api().push_test_image("app", "v1");
    assert_eq!(
        skopeo_inspect_raw(&reg, "app:v1").as_bytes(),
        &img.manifest[..]
    );
    assert!(
        reg.token_scope_requested("repository:app:pull"),
        "{:?}",
        reg.token_requests()
    );
}

#[test]
fn tls_registry_verified_with_test_ca_only() {
    let reg = Registry::start(Mode::htpasswd().tls());
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    let v2 = format!("{}/v2/", reg.url());
    let r = reg.client().get(&v2).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = reg
        .client()
        .get(&v2)
        .basic_auth(reg.username(), Some(reg.password()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Rejected without the CA (reqwest and curl), accepted with it, for IP and DNS names.
    let e = plain().get(&v2).send().unwrap_err();
    assert!(
        format!("{e:?}").to_lowercase().contains("certificate"),
        "{e:?}"
    );
    let curl = |url: &str, ca: bool| {
        let mut c = Command::new("curl");
        c.args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--noproxy",
            "*",
        ]);
        if ca {
            c.arg("--cacert").arg(reg.ca_pem_path());
        }
        c.arg(url).output().unwrap()
    };
    let no_ca = curl(&v2, false);
    assert_eq!(
        no_ca.status.code(),
        Some(60),
        "curl: {}",
        String::from_utf8_lossy(&no_ca.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&curl(&v2, true).stdout), "401");
    let by_name = format!("https://localhost:{}/v2/", reg.port());
    assert_eq!(String::from_utf8_lossy(&curl(&by_name, true).stdout), "401");

    let img = reg.api().push_test_image("secure", "v1");
    assert_eq!(
        skopeo_inspect_raw(&reg, "secure:v1").as_bytes(),
        &img.manifest[..]
    );
}

#[test]
fn tls_with_token_auth() {
    let reg = Registry::start(Mode::token().tls());
    let img = reg.api().push_test_image("both", "v1");
    assert_eq!(
        skopeo_inspect_raw(&reg, "both:v1").as_bytes(),
        &img.manifest[..]
    );
    assert!(reg.token_scope_requested("repository:both:pull"));
}
