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
                        failures.push(e.to_string());
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let challenge = super::auth::challenge_of(resp.headers());
                        let body = read_limited(resp, 4096);
                        if *scheme == "http"
                            && status == 400
                            && body.windows(5).any(|w| w == b"HTTPS")
                        {
                            failures
                                .push(format!("GET {}: the server expects HTTPS", redact(&url)));
                            continue;
                        }
                        if is_retryable_status(status) {
                            retryable = true;
                            failures.push(
                                super::errors::status_error("GET", &url, status, &body).to_string(),
                            );
                            continue;
                        }
                        ep.auth.lock().expect("auth lock").challenge = challenge;
                        return Ok(ep);
                    }
                }
            }
            if !retryable || retry + 1 >= policy.max_attempts {
                return Err(Error::RegistryConnection {
                    method: "GET".into(),
                    url: format!("{}://{host}/v2/", candidates[0].0),
                    message: format!(
                        "cannot reach registry {registry}: {}",
                        failures.join("; then ")
                    ),
                });
            }
            std::thread::sleep(policy.backoff(retry));
            retry += 1;
        }
    }
}
