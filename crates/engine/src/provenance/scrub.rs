//! Keeping secrets out of a published document. Provenance is public wherever the image is: whatever the
//! integrator passes as parameters goes through here, and every string of the finished predicate is checked for
//! the values of the platforms' credential variables ([`super::ci::SECRET_VARS`]).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::registry::redact::REDACTED;

/// Shorter values are not searched for: a 1-character "secret" would blank every such character in the document.
/// Real tokens are 20 characters and more.
const MIN_SECRET_LEN: usize = 8;

/// Whether a key (a settings key, or the NAME of a `NAME=value` string) names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const CONTAINS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "apikey",
        "privatekey",
        "authorization",
        "cookie",
    ];
    const EXACT: &[&str] = &["auth", "pass", "pwd", "jwt", "sig", "signature"];
    CONTAINS.iter().any(|c| k.contains(c)) || EXACT.contains(&k.as_str())
}

/// The parameters with secrets masked: the value of a secret-named key (any depth) becomes `REDACTED`, a URL
/// loses its credentials and the values of secret-looking query parameters, and `NAME=value` strings (build
/// arguments, environment entries) with a secret NAME keep only the name.
pub fn parameters(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(&k) && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        parameters(v)
                    };
                    (k, v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(parameters).collect()),
        Value::String(s) => Value::String(string(&s)),
        v => v,
    }
}

fn string(s: &str) -> String {
    let name = s.split_once('=').map_or("", |(n, _)| n);
    if !name.is_empty()
        && !name.contains(|c: char| c.is_whitespace() || c == '/' || c == ':')
        && is_secret_key(name)
    {
        return format!("{name}={REDACTED}");
    }
    if s.contains("://") {
        url_in(s)
    } else {
        s.to_string()
    }
}

/// A URL with userinfo or a query: redacted as kiln's messages redact URLs. Others are left byte for byte (a
/// round trip through the parser would add a `/` to `https://host`).
fn url_in(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() || u.query().is_some() => {
            crate::registry::redact::redact(&u)
        }
        Ok(_) => s.to_string(),
        // Not a URL as a whole (text around it): drop any userinfo after a scheme.
        Err(_) => USERINFO.replace_all(s, "$scheme").into_owned(),
    }
}

/// `scheme://user:password@` inside text; the replacement keeps `scheme://`.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@").expect("valid regex")
});

/// Replace each of `secrets` (values of credential variables) wherever it appears in a string of `v`, keys
/// included. Digest maps are skipped: they are hex the document's meaning depends on, not free text.
pub fn values(v: &mut Value, secrets: &[String]) {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(|s| s.trim())
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect();
    if !secrets.is_empty() {
        walk(v, &secrets);
    }
}

fn walk(v: &mut Value, secrets: &[&str]) {
    match v {
        Value::String(s) => mask(s, secrets),
        Value::Array(a) => a.iter_mut().for_each(|v| walk(v, secrets)),
        Value::Object(m) => {
            let old = std::mem::take(m);
            for (mut k, mut v) in old {
                if k != "digest" {
                    walk(&mut v, secrets);
                }
                mask(&mut k, secrets);
                m.insert(k, v);
            }
        }
        _ => {}
    }
}

fn mask(s: &mut String, secrets: &[&str]) {
    for secret in secrets {
        if s.contains(secret) {
            *s = s.replace(secret, REDACTED);
        }
    }
}
