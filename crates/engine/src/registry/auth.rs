//! Registry auth, the layer above `http`: `WWW-Authenticate` challenges, Basic, and the Bearer token flow
//! (anonymous, with Basic credentials, or an OAuth2 refresh token), tokens cached per scope set until they expire,
//! and the credentials found for each registry. The token flow is docker's "Token Authentication Specification"
//! (distribution/docs/spec/auth/token.md), which every registry kiln talks to implements.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use serde_json::Value;
use url::Url;

use super::body::Body;
use super::credentials::{Credential, CredentialEnv, Secret, lookup};
use super::errors::{is_retryable, is_retryable_status, protocol_error, status_error};
use super::http::{Http, Request, Scope, Site, is_loopback, read_limited};
use super::retry::{Verdict, retry};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scopes: Vec<String>,
    },
}

/// What is known of one registry's auth: the challenge it answered the ping with (or a later 401), its
/// credentials once looked up (`Some(None)`: looked up, none found), tokens by scope set.
#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    credential: Option<Option<Credential>>,
    tokens: HashMap<String, (String, Instant)>,
}

/// One registry as reached ([`Site`]) and its auth state.
pub(crate) struct Endpoint {
    pub site: Site,
    state: Mutex<AuthState>,
}

impl Endpoint {
    /// `site`, as answering the ping with `challenge` (`None`: no auth asked).
    pub fn new(site: Site, challenge: Option<Challenge>) -> Self {
        Endpoint {
            site,
            state: Mutex::new(AuthState {
                challenge,
                ..AuthState::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state.lock().expect("auth lock")
    }
}

/// Parse one `WWW-Authenticate` value, which may hold several challenges: `(scheme, params)` in order.
/// Repeated parameters (several `scope`s) are all kept.
pub fn parse_www_authenticate(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let b = value.as_bytes();
    let mut i = 0;
    let is_tok = |c: u8| !c.is_ascii_whitespace() && c != b',' && c != b'=' && c != b'"';
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_tok(b[i]) {
            i += 1;
        }
        if start == i {
            i += 1;
            continue;
        }
        let word = &value[start..i];
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            // A parameter of the current challenge.
            i = j + 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            let mut v = String::new();
            if i < b.len() && b[i] == b'"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch = value[i..].chars().next().unwrap_or(' ');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
            } else {
                let s = i;
                while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                v.push_str(&value[s..i]);
            }
            out.last_mut()
                .expect("checked")
                .1
                .push((word.to_ascii_lowercase(), v));
        } else {
            out.push((word.to_string(), Vec::new()));
        }
    }
    out
}

/// The challenge kiln will answer: Bearer when offered, else Basic.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let all = parse_www_authenticate(value);
    let param =
        |ps: &[(String, String)], k: &str| ps.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for (scheme, ps) in &all {
        if scheme.eq_ignore_ascii_case("bearer")
            && let Some(realm) = param(ps, "realm")
        {
            let scopes = ps
                .iter()
                .filter(|(n, _)| n == "scope")
                .flat_map(|(_, v)| v.split(' ').filter(|s| !s.is_empty()).map(str::to_string))
                .collect();
            return Some(Challenge::Bearer {
                realm,
                service: param(ps, "service"),
                scopes,
            });
        }
    }
    all.iter()
        .any(|(s, _)| s.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

pub(crate) fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_challenge)
}

/// Cache key of a scope set (order and duplicates do not matter).
pub(crate) fn scope_key(scopes: &[Scope]) -> String {
    let mut s: Vec<String> = scopes.iter().map(Scope::to_string).collect();
    s.sort_unstable();
    s.dedup();
    s.join(" ")
}

/// A token server's answer: `token` or `access_token`, `expires_in` seconds (at least 60, as the spec says).
pub fn parse_token_response(body: &[u8]) -> Option<(String, Duration)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let token = ["token", "access_token"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|t| !t.is_empty()))?
        .to_string();
    let secs = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(60)
        .max(60);
    Some((token, Duration::from_secs(secs)))
}

fn basic_header(user: &str, pass: &str) -> String {
    format!("Basic {}", B64.encode(format!("{user}:{pass}")))
}

/// The HTTP layer with the credentials found for each registry: an `Authorization` for any request.
pub(crate) struct Auth {
    pub http: Http,
    pub creds: CredentialEnv,
}

impl Auth {
    fn credential(&self, ep: &Endpoint, st: &mut AuthState) -> Result<Option<Credential>> {
        if st.credential.is_none() {
            st.credential = Some(lookup(&self.creds, &ep.site.registry)?);
        }
        Ok(st.credential.clone().flatten())
    }

    /// Use these credentials for this endpoint instead of looking them up (login).
    pub fn set_credential(&self, ep: &Endpoint, cred: Credential) {
        let mut st = ep.state();
        st.credential = Some(Some(cred));
        st.tokens.clear();
    }

    /// The `Authorization` value for a request needing `scopes`, fetching a token when needed.
    pub fn authorization(&self, ep: &Endpoint, scopes: &[Scope]) -> Result<Option<String>> {
        let mut st = ep.state();
        match st.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match self.credential(ep, &mut st)?.map(|c| c.secret) {
                Some(Secret::Basic { username, password }) => {
                    Some(basic_header(&username, &password))
                }
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scope_key(scopes);
                if let Some((t, until)) = st.tokens.get(&key)
                    && Instant::now() < *until
                {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let cred = self.credential(ep, &mut st)?;
                let (token, ttl) =
                    self.fetch_token(ep, &realm, service.as_deref(), scopes, cred.as_ref())?;
                // Renew a little early so a token does not expire mid-request.
                let until = Instant::now() + ttl.saturating_sub(ttl / 10);
                st.tokens.insert(key, (token.clone(), until));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// After a 401: adopt the new challenge, drop cached tokens. Whether trying again may help.
    pub fn reauth(&self, ep: &Endpoint, scopes: &[Scope], headers: &HeaderMap) -> Result<bool> {
        let Some(ch) = challenge_of(headers) else {
            return Ok(false);
        };
        let mut st = ep.state();
        let had = st.challenge.replace(ch.clone());
        match ch {
            Challenge::Bearer { .. } => {
                st.tokens.remove(&scope_key(scopes));
                Ok(true)
            }
            Challenge::Basic => {
                Ok(had != Some(Challenge::Basic) && self.credential(ep, &mut st)?.is_some())
            }
        }
    }

    /// The error for a final 401: which credentials were tried, and what to run.
    pub fn unauthorized(&self, ep: &Endpoint, req: &Request, resp: Response) -> Error {
        let body = read_limited(resp, 64 * 1024);
        let mut e = status_error(req.method.as_str(), &req.url, 401, &body);
        let cred = ep
            .state
            .lock()
            .ok()
            .and_then(|st| st.credential.clone().flatten());
        if let Error::Registry { message, .. } = &mut e {
            let reg = &ep.site.registry;
            *message = match cred {
                Some(c) => format!(
                    "HTTP 401, the registry rejected the credentials from {} ({message}); check them, or store \
                     working ones with `kiln login {reg} -u USER --password-stdin`",
                    c.source
                ),
                None => format!(
                    "HTTP 401, {reg} needs credentials and no credentials found for it (looked at \
                     KILN_REGISTRY_USERNAME/KILN_REGISTRY_PASSWORD, REGISTRY_AUTH_FILE, docker's config.json, \
                     containers' auth.json) ({message}); run `kiln login {reg} -u USER --password-stdin` or set \
                     KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD"
                ),
            };
        }
        e
    }

    fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
        cred: Option<&Credential>,
    ) -> Result<(String, Duration)> {
        let mut url = Url::parse(realm).map_err(|e| {
            protocol_error(
                "GET",
                &ep.site.base,
                Some(401),
                format!("bad token realm {realm:?}: {e}"),
            )
        })?;
        let host = url.host_str().unwrap_or("").to_string();
        if cred.is_some()
            && url.scheme() != "https"
            && !is_loopback(&host)
            && !self.http.is_insecure(&host)
        {
            return Err(protocol_error(
                "GET",
                &url,
                None,
                "refusing to send credentials to a token server over plain HTTP (add the host to --insecure to allow)",
            ));
        }
        // The token realm is its own origin: a site of its own, so that the registry's `Authorization` never goes
        // there; the credentials go only as the token flow says (Basic on the token request).
        let realm_site = Site {
            registry: ep.site.registry.clone(),
            base: url.clone(),
            insecure_tls: ep.site.insecure_tls && url.host_str() == ep.site.base.host_str(),
        };
        let req = match cred.map(|c| &c.secret) {
            // An OAuth2 refresh token is exchanged by a form POST (distribution/docs/spec/auth/oauth.md,
            // `grant_type=refresh_token`), as docker does for an `identitytoken`.
            Some(Secret::IdentityToken { token, .. }) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token);
                form.append_pair("client_id", "kiln");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                if !scopes.is_empty() {
                    let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
                    form.append_pair("scope", &joined.join(" "));
                }
                Request::new(Method::POST, url.clone(), &[])
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::bytes(form.finish().into_bytes()))
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", &s.to_string());
                    }
                    if let Some(Secret::Basic { username, .. }) = other {
                        q.append_pair("account", username);
                    }
                }
                Request::new(Method::GET, url.clone(), &[])
            }
        };
        // Basic credentials for the realm go as the hop's `Authorization`, which `send_following` gives the
        // realm's own origin only: a realm redirecting elsewhere (another host, or `http://` from `https://`)
        // gets none. (As a request header they were copied onto every hop.)
        let basic = match cred.map(|c| &c.secret) {
            Some(Secret::Basic { username, password }) => Some(basic_header(username, password)),
            _ => None,
        };
        // Retried like any request, but on the backoff alone (a token server's `Retry-After` is not read) and
        // without a log line: the request it is for logs its own retries.
        let r = retry(
            &self.http.opts.retry,
            || {
                self.http
                    .send_following(&realm_site, &req, basic.as_deref())
            },
            |outcome, _| match outcome {
                Err(e) if is_retryable(e) => Verdict::Retry(None),
                Ok(r) if is_retryable_status(r.status().as_u16()) => Verdict::Retry(None),
                _ => Verdict::Done,
            },
        )?;
        let status = r.status().as_u16();
        let body = read_limited(r, 1 << 20);
        if status == 200 {
            return parse_token_response(&body).ok_or_else(|| {
                protocol_error(
                    req.method.as_str(),
                    &url,
                    Some(200),
                    "token response has no token",
                )
            });
        }
        let mut e = status_error(req.method.as_str(), &url, status, &body);
        if let (Error::Registry { message, .. }, true) = (&mut e, status == 401 || status == 403) {
            let reg = &ep.site.registry;
            message.push_str(&match cred {
                Some(c) => format!(
                    "; tried credentials from {}; run `kiln login {reg}`",
                    c.source
                ),
                None => format!("; no credentials found for {reg}; run `kiln login {reg}`"),
            });
        }
        Err(e)
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
