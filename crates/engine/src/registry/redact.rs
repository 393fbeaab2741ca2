//! Redaction of secrets in what kiln prints: URLs lose their userinfo and the values of query parameters that
//! look like credentials or signatures (pre-signed S3/GCS/Azure URLs, registry upload state); header values of
//! `Authorization`-like headers are masked.

use url::Url;

/// Printed in place of a secret.
pub const REDACTED: &str = "REDACTED";

/// Whether a query parameter name looks like it carries a secret.
pub fn is_sensitive_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "sig",
        "signature",
        "se",
        "st",
        "sv",
        "sp",
        "_state",
        "code",
        "state",
        "jwt",
    ];
    const CONTAINS: &[&str] = &[
        "signature",
        "token",
        "credential",
        "password",
        "passwd",
        "secret",
        "auth",
        "key",
        "session",
    ];
    EXACT.contains(&n.as_str()) || CONTAINS.iter().any(|c| n.contains(c))
}

/// A URL fit for an error message or a log line.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(u) => redact(&u),
        Err(_) => redact_unparsed(raw),
    }
}

/// [`redact_url`] for a parsed URL.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive_param(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    u.set_fragment(None);
    // Keep REDACTED readable (the serializer would not escape it anyway).
    u.to_string()
}

/// Best effort for something that is not a valid URL: drop userinfo and the whole query.
fn redact_unparsed(raw: &str) -> String {
    let mut s = raw.to_string();
    if let Some(q) = s.find('?') {
        s.truncate(q);
        s.push_str("?REDACTED");
    }
    if let Some(scheme_end) = s.find("://") {
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            s = format!("{}{}", &s[..scheme_end + 3], &rest[at + 1..]);
        }
    }
    s
}

/// Whether a header's value is secret.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n == "cookie"
        || n == "set-cookie"
        || n.contains("token")
        || n.contains("secret")
        || n.contains("api-key")
}

/// A header value fit for a `-vv` log: secrets masked (keeping the auth scheme), URLs redacted.
pub fn redact_header(name: &str, value: &str) -> String {
    if is_sensitive_header(name) {
        return match value.split_once(' ') {
            Some((scheme, _)) if name.eq_ignore_ascii_case("authorization") => {
                format!("{scheme} {REDACTED}")
            }
            _ => REDACTED.to_string(),
        };
    }
    if name.eq_ignore_ascii_case("location") || name.eq_ignore_ascii_case("link") {
        // Links are `<url>; rel=…`; a Location is a URL or a path.
        if value.starts_with('<') {
            if let Some(end) = value.find('>') {
                return format!(
                    "<{}>{}",
                    redact_url_or_path(&value[1..end]),
                    &value[end + 1..]
                );
            }
        }
        return redact_url_or_path(value);
    }
    value.to_string()
}

/// Redact an absolute URL or a path with a query.
pub fn redact_url_or_path(s: &str) -> String {
    if s.contains("://") {
        return redact_url(s);
    }
    let base = Url::parse("http://x.invalid").expect("static URL");
    match base.join(s) {
        Ok(u) => {
            let r = redact(&u);
            r.strip_prefix("http://x.invalid").unwrap_or(&r).to_string()
        }
        Err(_) => redact_unparsed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_removed() {
        assert_eq!(
            redact_url("https://user:pass@h.io:5000/v2/"),
            "https://h.io:5000/v2/"
        );
        assert_eq!(redact_url("https://user@h.io/v2/"), "https://h.io/v2/");
    }

    #[test]
    fn signatures_removed_other_params_kept() {
        let u = "https://s3.amazonaws.com/b/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F&X-Amz-Signature=abc\
                 &X-Amz-Security-Token=t&X-Amz-Expires=300";
        let r = redact_url(u);
        assert!(
            !r.contains("abc") && !r.contains("AKIA") && !r.contains("=t&"),
            "{r}"
        );
        assert!(
            r.contains("X-Amz-Algorithm=AWS4") && r.contains("X-Amz-Expires=300"),
            "{r}"
        );
        let r = redact_url("https://blob.core.windows.net/c?sv=2020&sig=SECRET&se=2030");
        assert!(!r.contains("SECRET"), "{r}");
        let r = redact_url("https://h/v2/r/blobs/uploads/u?_state=SECRETSTATE&digest=sha256%3Aab");
        assert_eq!(
            r,
            "https://h/v2/r/blobs/uploads/u?_state=REDACTED&digest=sha256%3Aab"
        );
        let r = redact_url(
            "https://auth.io/token?service=reg&scope=repository%3Aa%3Apull&access_token=zzz",
        );
        assert!(
            r.contains("service=reg") && r.contains("scope=") && !r.contains("zzz"),
            "{r}"
        );
        assert_eq!(
            redact_url("https://h/v2/r/tags/list?n=100&last=v1"),
            "https://h/v2/r/tags/list?n=100&last=v1"
        );
    }

    #[test]
    fn unparseable_urls_lose_query_and_userinfo() {
        assert_eq!(
            redact_url("https://u:p@ho st/x?token=1"),
            "https://ho st/x?REDACTED"
        );
    }

    #[test]
    fn headers() {
        assert_eq!(
            redact_header("Authorization", "Bearer abc.def"),
            "Bearer REDACTED"
        );
        assert_eq!(
            redact_header("authorization", "Basic dXNlcjpwYXNz"),
            "Basic REDACTED"
        );
        assert_eq!(redact_header("X-Registry-Token", "t"), "REDACTED");
        assert_eq!(
            redact_header("Content-Type", "application/json"),
            "application/json"
        );
        assert_eq!(
            redact_header("Location", "/v2/r/blobs/uploads/u?_state=S"),
            "/v2/r/blobs/uploads/u?_state=REDACTED"
        );
        assert_eq!(
            redact_header("Link", "</v2/r/tags/list?last=a&n=2>; rel=\"next\""),
            "</v2/r/tags/list?last=a&n=2>; rel=\"next\""
        );
    }
}
