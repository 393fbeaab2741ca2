//! Requests to registries as the verbs use them: the endpoint of each registry (pinged once, then cached), the
//! `Authorization` of `auth`, one re-authentication after a 401, and retries. Sits on `ping`, `auth` and `http`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use reqwest::blocking::Response;

use super::auth::{Auth, Endpoint};
use super::credentials::CredentialEnv;
use super::errors::{is_retryable, is_retryable_status};
use super::http::{Http, Request};
use super::options::ClientOptions;
use super::ping::ping;
use super::redact::redact;
use super::retry::{Verdict, parse_retry_after, retry};
use crate::error::Result;

pub(crate) struct Transport {
    pub auth: Auth,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Serializes pings so parallel first requests do not each probe the registry.
    ping_lock: Mutex<()>,
}

impl Transport {
    pub fn new(opts: ClientOptions, creds: CredentialEnv) -> Result<Self> {
        Ok(Transport {
            auth: Auth {
                http: Http::new(opts)?,
                creds,
            },
            endpoints: Mutex::new(HashMap::new()),
            ping_lock: Mutex::new(()),
        })
    }

    pub fn http(&self) -> &Http {
        &self.auth.http
    }

    pub fn opts(&self) -> &ClientOptions {
        &self.auth.http.opts
    }

    /// The endpoint for `registry`, pinging `/v2/` the first time.
    pub fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        let cached = || {
            self.endpoints
                .lock()
                .expect("endpoints lock")
                .get(registry)
                .cloned()
        };
        if let Some(ep) = cached() {
            return Ok(ep);
        }
        let _ping = self.ping_lock.lock().expect("ping lock");
        if let Some(ep) = cached() {
            return Ok(ep);
        }
        let ep = Arc::new(ping(self.http(), registry)?);
        Ok(self
            .endpoints
            .lock()
            .expect("endpoints lock")
            .entry(registry.to_string())
            .or_insert(ep)
            .clone())
    }

    /// Send with auth, 401 re-auth (once per call), retries (when `req.retry`) and redirects. Any other status is
    /// returned for the caller to judge; a final 401 is an error naming the credentials tried.
    pub fn send(&self, ep: &Endpoint, req: &Request) -> Result<Response> {
        let mut reauthed = false;
        // Outer `Err`: no answer to judge (auth failed), never retried; inner: the exchange, judged for a retry.
        let outcome = retry(
            &self.opts().retry,
            || -> Result<Result<Response>> {
                loop {
                    let auth = self.auth.authorization(ep, &req.scopes)?;
                    let resp = match self.http().send_following(&ep.site, req, auth.as_deref()) {
                        Ok(r) => r,
                        Err(e) => return Ok(Err(e)),
                    };
                    if resp.status().as_u16() != 401 {
                        return Ok(Ok(resp));
                    }
                    // A 401 to a request that carried a token may mean the token expired or was for other
                    // scopes: a new challenge, a new token, the same attempt (it is no server failure).
                    if !reauthed && self.auth.reauth(ep, &req.scopes, resp.headers())? {
                        reauthed = true;
                        continue;
                    }
                    return Ok(Err(self.auth.unauthorized(ep, req, resp)));
                }
            },
            |outcome, n| match outcome {
                Ok(exchange) if req.retry => self.judge(req, exchange, n),
                _ => Verdict::Done,
            },
        );
        outcome?
    }

    /// Whether an exchange is worth another attempt, and when: the one rule for every retried request (connection
    /// errors, 408, 429 and 5xx; a server's `Retry-After` honoured). Logs the retry.
    pub fn judge(&self, req: &Request, exchange: &Result<Response>, n: u32) -> Verdict {
        match exchange {
            Err(e) if is_retryable(e) => {
                self.log_retry(req, &e.to_string(), n);
                Verdict::Retry(None)
            }
            Ok(resp) if is_retryable_status(resp.status().as_u16()) => {
                // RFC 9110 §10.2.3: a 429 or 503 may say how long to wait.
                let after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                self.log_retry(req, &format!("HTTP {}", resp.status().as_u16()), n);
                Verdict::Retry(after)
            }
            _ => Verdict::Done,
        }
    }

    fn log_retry(&self, req: &Request, why: &str, retry: u32) {
        self.opts().report.debug(format_args!(
            "{} {}: {why}; retrying ({})",
            req.method,
            redact(&req.url),
            retry + 1
        ));
    }
}
