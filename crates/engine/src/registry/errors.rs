//! Registry error bodies (`{"errors":[{"code","message","detail"}]}`, parsed leniently) → `Error::Registry`.

use serde_json::Value;
use url::Url;

use super::options::ClientOptions;
use super::redact::redact;
use crate::error::Error;

/// Longest text kept from a body that is not a distribution error document.
const MAX_TEXT: usize = 200;

/// The first error code and a readable message from a registry error body.
/// Any JSON shape is accepted; unknown codes are kept verbatim; a non-JSON body yields its first 200 characters.
pub fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let errors = v.get("errors").and_then(Value::as_array);
        if let Some(errors) = errors.filter(|e| !e.is_empty()) {
            let mut code = None;
            let mut parts = Vec::new();
            for (i, e) in errors.iter().enumerate() {
                let c = e.get("code").and_then(Value::as_str).map(str::to_string);
                let mut m = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(d) = e.get("detail").filter(|d| !d.is_null()) {
                    let d = match d {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if !d.is_empty() && d != "{}" && d != "[]" {
                        m = if m.is_empty() {
                            d
                        } else {
                            format!("{m} ({})", truncate(&d))
                        };
                    }
                }
                if i == 0 {
                    code = c;
                    parts.push(m);
                } else {
                    parts.push(match c {
                        Some(c) => format!("{c}: {m}"),
                        None => m,
                    });
                }
            }
            return (code, parts.join("; "));
        }
        // Some registries (and auth servers) answer {"message": …} or {"error": …, "error_description": …}.
        for key in ["message", "error_description", "error", "details"] {
            if let Some(s) = v.get(key).and_then(Value::as_str) {
                return (None, truncate(s));
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    (None, truncate(text.trim()))
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The error for an unexpected HTTP status, from the response body.
pub fn status_error(method: &str, url: &Url, status: u16, body: &[u8]) -> Error {
    let (code, mut message) = parse_error_body(body);
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if message.is_empty() {
        message = format!("HTTP {status} {reason}").trim_end().to_string();
    } else if code.is_none() {
        message = format!("HTTP {status} {reason}: {message}");
    }
    Error::Registry {
        method: method.to_string(),
        url: redact(url),
        status: Some(status),
        code,
        message,
    }
}

/// An `Error::Registry` about an exchange whose status was fine but whose content was not (bad digest, bad JSON…).
pub fn protocol_error(
    method: &str,
    url: &Url,
    status: Option<u16>,
    message: impl Into<String>,
) -> Error {
    Error::Registry {
        method: method.to_string(),
        url: redact(url),
        status,
        code: None,
        message: message.into(),
    }
}

/// How rustls's errors begin (its `Display`): a certificate refused, a handshake the peer refused or broke.
const TLS_FAILURES: &[&str] = &[
    "invalid peer certificate",
    "received fatal alert",
    "peer is incompatible",
    "peer misbehaved",
    "peer sent no certificates",
];

/// A transport failure: connection, TLS, reset, timeout.
pub fn connection_error(method: &str, url: &Url, err: &dyn std::error::Error) -> Error {
    // reqwest's Display includes the URL (unredacted); walk the sources for the cause instead.
    // Causes nest and repeat each other (hyper's "client error (Connect)", the TLS library and hyper both printing
    // the same error stack): keep each text once, dropping any a kept one already contains.
    let mut causes: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = err.source();
    let mut retryable = true;
    while let Some(e) = cur {
        // A TLS failure (a certificate refused, a handshake the peer broke off by protocol) is not mended by
        // asking again.
        // Layers of boxes between reqwest and rustls hide the type (and `io::Error::source` skips the error it
        // wraps): rustls's own words tell it too.
        let text = e.to_string();
        let tls = e.downcast_ref::<rustls::Error>().is_some()
            || e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            || TLS_FAILURES.iter().any(|t| text.contains(t));
        if tls {
            retryable = false;
        }
        let s = e.to_string();
        cur = e.source();
        if s == "client error (Connect)" && cur.is_some() {
            continue;
        }
        if causes.iter().any(|c| c.contains(&s)) {
            continue;
        }
        causes.retain(|c| !s.contains(c.as_str()));
        causes.push(s);
    }
    let message = if causes.is_empty() {
        "request failed".to_string()
    } else {
        causes.join(": ")
    };
    Error::RegistryConnection {
        method: method.to_string(),
        url: redact(url),
        message,
        retryable,
    }
}

/// The error for a request that got no answer: a timeout says which wait ran out and is final; a certificate
/// refused despite `--ca-file` says that the file did not vouch for it either.
pub fn failure(method: &str, url: &Url, e: &reqwest::Error, opts: &ClientOptions) -> Error {
    if e.is_timeout() {
        return timeout_error(method, url, e.is_connect(), opts);
    }
    let mut err = connection_error(method, url, e);
    if let (
        Error::RegistryConnection {
            message,
            retryable: false,
            ..
        },
        Some(ca),
    ) = (&mut err, &opts.ca_file)
        && message.contains("certificate")
    {
        message.push_str(&format!(
            " (trusted by neither the system's CAs nor --ca-file {})",
            ca.display()
        ));
    }
    err
}

/// A wait that ran out (`--timeout`): not retried, a registry silent that long is not mended by asking again.
pub fn timeout_error(method: &str, url: &Url, connecting: bool, opts: &ClientOptions) -> Error {
    let (limit, what) = if connecting {
        (opts.connect_timeout, "no connection")
    } else {
        (opts.read_timeout, "no answer")
    };
    Error::RegistryConnection {
        method: method.to_string(),
        url: redact(url),
        message: format!(
            "{what} within {} s (--timeout {})",
            limit.as_secs_f64(),
            opts.read_timeout.as_secs_f64()
        ),
        retryable: false,
    }
}

/// Whether trying again later may succeed: connection failures (but TLS failures and timeouts), 408, 429 and 5xx.
pub fn is_retryable(e: &Error) -> bool {
    match e {
        Error::RegistryConnection { retryable, .. } => *retryable,
        Error::Registry {
            status: Some(s), ..
        } => is_retryable_status(*s),
        Error::Context { source, .. } => is_retryable(source),
        _ => false,
    }
}

/// 501 Not Implemented and 505 HTTP Version Not Supported are 5xx that no retry mends: the server says it
/// never does this.
pub fn is_retryable_status(s: u16) -> bool {
    s == 408 || s == 429 || (500..600).contains(&s) && s != 501 && s != 505
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_errors() {
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"a":1}},
            {"code":"UNKNOWN","message":"x"}]}"#;
        let (c, m) = parse_error_body(body);
        assert_eq!(c.as_deref(), Some("MANIFEST_INVALID"));
        assert_eq!(m, r#"manifest invalid ({"a":1}); UNKNOWN: x"#);
        let (c, m) = parse_error_body(
            br#"{"errors":[{"code":"DENIED","message":"requested access denied","detail":null}]}"#,
        );
        assert_eq!(
            (c.as_deref(), m.as_str()),
            (Some("DENIED"), "requested access denied")
        );
        let (c, m) = parse_error_body(br#"{"errors":[{"code":"NAME_UNKNOWN","detail":"repo x"}]}"#);
        assert_eq!((c.as_deref(), m.as_str()), (Some("NAME_UNKNOWN"), "repo x"));
        let (c, m) = parse_error_body(br#"{"errors":[{"message":"odd","detail":[1,2]}]}"#);
        assert_eq!((c, m.as_str()), (None, "odd ([1,2])"));
    }

    #[test]
    fn other_bodies() {
        assert_eq!(
            parse_error_body(br#"{"message":"nope"}"#),
            (None, "nope".into())
        );
        assert_eq!(
            parse_error_body(br#"{"error":"invalid_grant","error_description":"bad token"}"#),
            (None, "bad token".into())
        );
        assert_eq!(
            parse_error_body(b"<html>502 Bad Gateway</html>\n"),
            (None, "<html>502 Bad Gateway</html>".into())
        );
        let long = "x".repeat(500);
        let (_, m) = parse_error_body(long.as_bytes());
        assert_eq!(m.chars().count(), 201);
        assert_eq!(parse_error_body(b""), (None, String::new()));
        assert_eq!(parse_error_body(b"{\"errors\":[]}").0, None);
    }

    #[test]
    fn displays_like_the_cli_expects() {
        let url = Url::parse("https://u:p@host/v2/repo/manifests/v1").unwrap();
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#;
        let e = status_error("PUT", &url, 400, body);
        assert_eq!(
            e.to_string(),
            "PUT https://host/v2/repo/manifests/v1: MANIFEST_INVALID: manifest invalid"
        );
        let e = status_error("GET", &url, 502, b"bad gateway");
        assert_eq!(
            e.to_string(),
            "GET https://host/v2/repo/manifests/v1: HTTP 502 Bad Gateway: bad gateway"
        );
        assert!(is_retryable(&e));
        let e = status_error("GET", &url, 404, b"");
        assert_eq!(
            e.to_string(),
            "GET https://host/v2/repo/manifests/v1: HTTP 404 Not Found"
        );
        assert!(!is_retryable(&e));
        assert!(is_retryable_status(429) && is_retryable_status(408) && is_retryable_status(503));
        assert!(!is_retryable_status(501) && !is_retryable_status(400));
    }
}
