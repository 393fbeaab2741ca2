//! The first `GET /v2/` to a registry (distribution spec, "Determining support"): picks the scheme (HTTPS;
//! plain HTTP as a fallback for loopback and `insecure` hosts) and records the auth challenge. Above `auth` (it
//! makes the [`Endpoint`]), below `transport` (which caches what it finds).

use reqwest::Method;
use url::Url;

use super::auth::{Endpoint, challenge_of};
use super::errors::{is_retryable, is_retryable_status, status_error};
use super::http::{Http, Request, Site, is_loopback, read_limited};
use super::redact::redact;
use super::retry::{Verdict, retry};
use crate::error::{Error, Result};
use crate::reference::api_host;

/// A round of pings that reached no registry: each URL tried and why, and whether trying again may help.
struct Unreached {
    failures: Vec<(String, String)>,
    retryable: bool,
}

pub(crate) fn ping(http: &Http, registry: &str) -> Result<Endpoint> {
    let host = api_host(registry);
    let insecure = http.is_insecure(host) || http.is_insecure(registry);
    // Loopback registries are nearly always plain HTTP (a local registry, a CI service container): ask HTTP
    // first, which saves a failed TLS handshake and loading the CA bundle. A TLS one answers plain HTTP with
    // 400 "Client sent an HTTP request to an HTTPS server." (Go's net/http, so distribution and most others) or
    // drops it, and HTTPS is tried next, still verified.
    let candidates = if is_loopback(host) && !insecure {
        vec![("http", false), ("https", false)]
    } else if insecure {
        vec![("https", true), ("http", false)]
    } else {
        vec![("https", false)]
    };
    let sites = candidates
        .into_iter()
        .map(|(scheme, insecure_tls)| {
            let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
                Error::InvalidReference {
                    value: registry.into(),
                    reason: e.to_string(),
                }
            })?;
            Ok(Site {
                registry: registry.to_string(),
                base,
                insecure_tls,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let reached = retry(
        &http.opts.retry,
        || ping_round(http, &sites),
        |outcome, _| match outcome {
            Err(u) if u.retryable => Verdict::Retry(None),
            _ => Verdict::Done,
        },
    );
    reached.map_err(|u| unreachable(registry, &u.failures, u.retryable))
}

/// Ping each candidate in turn: the first that answers (anything but a retryable status) is the endpoint.
fn ping_round(http: &Http, sites: &[Site]) -> Result<Endpoint, Unreached> {
    let mut failures = Vec::new();
    let mut retryable = false;
    for site in sites {
        let url = site.base.join("v2/").expect("static path");
        let req = Request::new(Method::GET, url.clone(), &[]);
        match http.send_following(site, &req, None) {
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
                let challenge = challenge_of(resp.headers());
                let body = read_limited(resp, 4096);
                if site.base.scheme() == "http"
                    && status == 400
                    && body.windows(5).any(|w| w == b"HTTPS")
                {
                    failures.push((redact(&url), "the server expects HTTPS".into()));
                    continue;
                }
                if is_retryable_status(status) {
                    retryable = true;
                    let why = match status_error("GET", &url, status, &body) {
                        Error::Registry { code, message, .. } => match code {
                            Some(c) => format!("{c}: {message}"),
                            None => message,
                        },
                        other => other.to_string(),
                    };
                    failures.push((redact(&url), why));
                    continue;
                }
                return Ok(Endpoint::new(site.clone(), challenge));
            }
        }
    }
    Err(Unreached {
        failures,
        retryable,
    })
}

/// The error for a registry that answered none of the pings: each URL tried and why, the same reason said once.
fn unreachable(registry: &str, failures: &[(String, String)], retryable: bool) -> Error {
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
        retryable,
    }
}
