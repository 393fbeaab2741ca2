//! The first `GET /v2/` to a registry: picks the scheme (HTTPS; plain HTTP as a fallback for loopback and
//! `insecure` hosts) and records the auth challenge.

use std::sync::Mutex;

use reqwest::Method;
use url::Url;

use super::auth::AuthState;
use super::errors::{is_retryable, is_retryable_status};
use super::redact::redact;
use super::transport::{Endpoint, Request, Transport, is_loopback, read_limited};
use crate::error::{Error, Result};
use crate::reference::api_host;

impl Transport {
    pub(crate) fn ping(&self, registry: &str) -> Result<Endpoint> {
        let host = api_host(registry);
        let insecure = self.is_insecure(host) || self.is_insecure(registry);
        // Loopback registries are nearly always plain HTTP (a local registry, a CI service container): ask HTTP
        // first, which saves a failed TLS handshake and loading the CA bundle. A TLS one answers plain HTTP with
        // 400 "…HTTPS…" (Go's net/http) or drops it, and HTTPS is tried next, still verified.
        let candidates = if is_loopback(host) && !insecure {
            vec![("http", false), ("https", false)]
        } else if insecure {
            vec![("https", true), ("http", false)]
        } else {
            vec![("https", false)]
        };
        let policy = &self.opts.retry;
        let mut retry = 0;
        loop {
            let mut failures = Vec::new();
            let mut retryable = false;
            for (scheme, insecure_tls) in &candidates {
                let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
                    Error::InvalidReference {
                        value: registry.into(),
                        reason: e.to_string(),
                    }
                })?;
                let ep = Endpoint {
                    registry: registry.to_string(),
                    base: base.clone(),
                    insecure_tls: *insecure_tls,
                    auth: Mutex::new(AuthState::default()),
                };
                let url = base.join("v2/").expect("static path");
                let req = Request::new(Method::GET, url.clone(), &[]);
                match self.send_following(&ep, &req, None) {
                    Err(e) => {
                        retryable |= is_retryable(&e);
                        let why = match &e {
                            Error::RegistryConnection { message, .. } => message.clone(),
                            other => other.to_string(),
                        };
                        failures.push((redact(&url), why));
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let challenge = super::auth::challenge_of(resp.headers());
                        let body = read_limited(resp, 4096);
                        if *scheme == "http"
                            && status == 400
                            && body.windows(5).any(|w| w == b"HTTPS")
                        {
                            failures.push((redact(&url), "the server expects HTTPS".into()));
                            continue;
                        }
                        if is_retryable_status(status) {
                            retryable = true;
                            let e = super::errors::status_error("GET", &url, status, &body);
                            let why = match e {
                                Error::Registry { code, message, .. } => match code {
                                    Some(c) => format!("{c}: {message}"),
                                    None => message,
                                },
                                other => other.to_string(),
                            };
                            failures.push((redact(&url), why));
                            continue;
                        }
                        ep.auth.lock().expect("auth lock").challenge = challenge;
                        return Ok(ep);
                    }
                }
            }
            if !retryable || retry + 1 >= policy.max_attempts {
                return Err(unreachable(registry, &failures));
            }
            std::thread::sleep(policy.backoff(retry));
            retry += 1;
        }
    }
}

/// The error for a registry that answered none of the pings: each URL tried and why, the same reason said once.
fn unreachable(registry: &str, failures: &[(String, String)]) -> Error {
    let (url, first) = failures
        .first()
        .cloned()
        .unwrap_or_else(|| (format!("https://{registry}/v2/"), "no answer".into()));
    let mut message = format!("cannot reach registry {registry}: {first}");
    for (u, why) in &failures[1.min(failures.len())..] {
        if *why == first {
            message.push_str(&format!(" (the same over {u})"));
        } else {
            message.push_str(&format!("; then {u}: {why}"));
        }
    }
    Error::RegistryConnection {
        method: "GET".into(),
        url,
        message,
    }
}
