//! The token flow, 429 retry, Link pagination and cross-host redirects against a tiny in-process HTTP server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::credentials::CredentialEnv;
use super::retry::RetryPolicy;
use super::*;
use crate::digest::Digest;

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// One request per connection (`Connection: close`); TLS hellos and garbage are dropped.
fn serve(handler: impl Fn(&str, &str, Option<&str>) -> String + Send + 'static) -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() || !line.ends_with("HTTP/1.1\r\n") {
                continue;
            }
            let mut auth = None;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    auth = Some(v.trim().to_string());
                }
            }
            let mut parts = line.split(' ');
            let (m, p) = (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            );
            s2.lock().unwrap().push((format!("{m} {p}"), auth.clone()));
            let resp = handler(&m, &p, auth.as_deref());
            let _ = c.write_all(resp.as_bytes());
        }
    });
    (port, seen)
}

fn http(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn bearer_flow_retry_pagination_and_redirect_without_auth() {
    let (storage, storage_seen) = serve(|_, _, _| http("200 OK", "", "hello"));
    let hits = Arc::new(Mutex::new(0));
    let digest = Digest::of(b"hello");
    let own_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let own = own_port.clone();
    let (port, seen) = serve(move |m, p, auth| {
        let bearer = auth == Some("Bearer T1");
        let challenge =
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:PORT/token\",service=\"mock\"\r\n";
        let challenge = challenge.replace(
            "PORT",
            &own.load(std::sync::atomic::Ordering::SeqCst).to_string(),
        );
        match (m, p) {
            ("GET", "/v2/") => http("401 Unauthorized", &challenge, ""),
            ("GET", p) if p.starts_with("/token?") => {
                http("200 OK", "", r#"{"access_token":"T1","expires_in":300}"#)
            }
            (_, _) if !bearer => http(
                "401 Unauthorized",
                &challenge,
                r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
            ),
            ("GET", "/v2/r/tags/list?n=100") => {
                let mut h = hits.lock().unwrap();
                *h += 1;
                if *h == 1 {
                    http("429 Too Many Requests", "Retry-After: 0\r\n", "")
                } else {
                    http(
                        "200 OK",
                        "Link: </v2/r/tags/list?last=b&n=100>; rel=\"next\"\r\n",
                        r#"{"tags":["a","b"]}"#,
                    )
                }
            }
            ("GET", "/v2/r/tags/list?last=b&n=100") => {
                http("200 OK", "", r#"{"name":"r","tags":["b","c"]}"#)
            }
            ("GET", p) if p.starts_with("/v2/r/blobs/") => http(
                "307 Temporary Redirect",
                &format!("Location: http://127.0.0.1:{storage}/blob?X-Amz-Signature=s\r\n"),
                "",
            ),
            _ => http("404 Not Found", "", ""),
        }
    });
    own_port.store(port, std::sync::atomic::Ordering::SeqCst);
    let env = CredentialEnv {
        username: Some("u".into()),
        password: Some("p".into()),
        env_registry: Some(format!("127.0.0.1:{port}")),
        ..Default::default()
    };
    let client = Client::with_credentials(
        ClientOptions {
            retry: RetryPolicy::fast(3),
            ..Default::default()
        },
        env,
    )
    .unwrap();
    let repo = client.repository(&format!("127.0.0.1:{port}/r").parse().unwrap());
    assert_eq!(repo.list_tags().unwrap(), ["a", "b", "c"]);
    let mut sink = Vec::new();
    assert_eq!(repo.get_blob(&digest, 5, &mut sink).unwrap(), 5);
    assert_eq!(sink, b"hello");
    let seen = seen.lock().unwrap().clone();
    let token_req = seen
        .iter()
        .find(|(r, _)| r.starts_with("GET /token?"))
        .unwrap();
    assert!(
        token_req.0.contains("scope=repository%3Ar%3Apull") && token_req.0.contains("service=mock"),
        "{token_req:?}"
    );
    assert_eq!(token_req.1.as_deref(), Some("Basic dTpw"));
    assert!(
        seen.iter()
            .any(|(r, a)| r.starts_with("GET /v2/r/blobs/") && a.as_deref() == Some("Bearer T1"))
    );
    // The storage host got the redirect without any Authorization.
    let st = storage_seen.lock().unwrap().clone();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0], ("GET /blob?X-Amz-Signature=s".to_string(), None));
}

/// A token realm that redirects elsewhere (another port: another origin) gets the Basic credentials on its own
/// hop only: the hop it redirects to gets none.
#[test]
fn token_realm_redirect_gets_no_basic_credentials() {
    let (elsewhere, elsewhere_seen) =
        serve(|_, _, _| http("200 OK", "", r#"{"token":"T2","expires_in":300}"#));
    let own_port = Arc::new(std::sync::atomic::AtomicU16::new(0));
    let own = own_port.clone();
    let (port, seen) = serve(move |m, p, auth| {
        let own = own.load(std::sync::atomic::Ordering::SeqCst);
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{own}/token\",service=\"mock\"\r\n"
        );
        match (m, p) {
            ("GET", "/v2/") => http("401 Unauthorized", &challenge, ""),
            ("GET", p) if p.starts_with("/token?") => http(
                "307 Temporary Redirect",
                &format!("Location: http://localhost:{elsewhere}{p}\r\n"),
                "",
            ),
            _ if auth == Some("Bearer T2") => http("200 OK", "", r#"{"tags":["a"]}"#),
            _ => http("401 Unauthorized", &challenge, ""),
        }
    });
    own_port.store(port, std::sync::atomic::Ordering::SeqCst);
    let env = CredentialEnv {
        username: Some("u".into()),
        password: Some("p".into()),
        env_registry: Some(format!("127.0.0.1:{port}")),
        ..Default::default()
    };
    let client = Client::with_credentials(ClientOptions::default(), env).unwrap();
    let repo = client.repository(&format!("127.0.0.1:{port}/r").parse().unwrap());
    assert_eq!(repo.list_tags().unwrap(), ["a"]);
    let realm_hop = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(r, _)| r.starts_with("GET /token?"))
        .cloned();
    assert!(
        realm_hop.unwrap().1.unwrap().starts_with("Basic "),
        "the realm itself gets them"
    );
    let redirected = elsewhere_seen.lock().unwrap().clone();
    assert_eq!(redirected.len(), 1, "{redirected:?}");
    assert_eq!(
        redirected[0].1, None,
        "credentials followed the redirect: {redirected:?}"
    );
}
