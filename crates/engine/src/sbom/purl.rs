//! Package URLs (purl spec: `pkg:type/namespace/name@version?qualifiers`), percent-encoded as the spec says so
//! that scanners matching on purls find them: each namespace segment, the name and the version are encoded on
//! their own (a Go module path's `/` separates segments; `@` of an npm scope and `:` of a digest are encoded).

use crate::sbom::model::Ecosystem;

/// Percent-encode everything but the purl spec's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The purl of a package. `name` is as the ecosystem spells it (see [`crate::sbom::model::Package::name`]).
pub fn package(eco: Ecosystem, name: &str, version: Option<&str>) -> String {
    let path: Vec<String> = match eco {
        // `@scope/name`: the scope is the namespace.
        Ecosystem::Npm => name.split('/').map(encode).collect(),
        // PEP 503 normalisation, as the purl spec asks for pypi names.
        Ecosystem::PyPi => vec![encode(&normalize_pypi(name))],
        Ecosystem::Golang => name
            .split('/')
            .filter(|s| !s.is_empty())
            .map(encode)
            .collect(),
        Ecosystem::Cargo => vec![encode(name)],
        // `group:artifact`.
        Ecosystem::Maven => name.split(':').map(encode).collect(),
    };
    let mut out = format!("pkg:{}/{}", eco.purl_type(), path.join("/"));
    if let Some(v) = version {
        out.push('@');
        out.push_str(&encode(v));
    }
    out
}

/// `pkg:oci/NAME@sha256%3A…?repository_url=REPO`: how the purl spec names an image by digest.
pub fn oci(repository: &str, digest: &str) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    format!(
        "pkg:oci/{}@{}?repository_url={}",
        encode(&name.to_ascii_lowercase()),
        encode(digest),
        encode_qualifier(repository)
    )
}

/// Qualifier values keep `/` and `:` readable (the purl spec only requires `%`, `&`, `#`, `?`, `=` and
/// spaces to be encoded there), as other tools write `repository_url`.
fn encode_qualifier(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// PEP 503: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The repository part of an image reference: without `@digest` and without `:tag`.
pub fn repository_of(reference: &str) -> &str {
    let r = reference.split('@').next().unwrap_or(reference);
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => &r[..i],
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_spec() {
        assert_eq!(
            package(Ecosystem::Npm, "@babel/core", Some("7.0.0")),
            "pkg:npm/%40babel/core@7.0.0"
        );
        assert_eq!(
            package(Ecosystem::PyPi, "Typing_Extensions", Some("4.1")),
            "pkg:pypi/typing-extensions@4.1"
        );
        assert_eq!(
            package(Ecosystem::Golang, "github.com/x/y", Some("v1.2.3")),
            "pkg:golang/github.com/x/y@v1.2.3"
        );
        assert_eq!(
            package(Ecosystem::Maven, "org.slf4j:slf4j-api", Some("2.0.9")),
            "pkg:maven/org.slf4j/slf4j-api@2.0.9"
        );
        assert_eq!(package(Ecosystem::Cargo, "serde", None), "pkg:cargo/serde");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            oci("docker.io/library/Debian", &d),
            format!(
                "pkg:oci/debian@sha256%3A{}?repository_url=docker.io/library/Debian",
                "a".repeat(64)
            )
        );
        assert_eq!(
            repository_of("localhost:5000/a/b:1@sha256:x"),
            "localhost:5000/a/b"
        );
        assert_eq!(repository_of("localhost:5000/a/b"), "localhost:5000/a/b");
    }
}
