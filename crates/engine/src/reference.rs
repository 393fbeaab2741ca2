//! Registry image references (`host[:port]/repo[:tag][@sha256:…]`) with docker's defaults.
//!
//! Parsing follows docker's `distribution/reference` conventions: a bare name lives on Docker Hub
//! (`ubuntu` → `docker.io/library/ubuntu`); the first path component is a registry host when it contains `.` or
//! `:`, is `localhost`, or has upper-case letters; Docker Hub's other names ([`DOCKER_HUB_ALIASES`]) are normalized
//! to `docker.io`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::Error;
use crate::tag::Tag;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host actually serving Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Maximum length of `registry/repository`.
pub const MAX_NAME_LEN: usize = 255;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, e.g. `library/ubuntu`.
    pub repository: String,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// A reference without tag or digest; both parts are validated.
    pub fn new(registry: &str, repository: &str) -> Result<Self, Error> {
        format!("{registry}/{repository}")
            .parse::<Reference>()
            .and_then(|r| {
                if r.tag.is_some() || r.digest.is_some() {
                    Err(invalid(
                        repository,
                        "expected a repository without tag or digest",
                    ))
                } else {
                    Ok(r)
                }
            })
    }

    /// The host the registry API is served from (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the manifests endpoint for: the digest when pinned, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        }
    }

    pub fn with_tag(&self, tag: Tag) -> Self {
        Reference {
            tag: Some(tag),
            digest: None,
            ..self.clone()
        }
    }

    /// The short form people type: `ubuntu:22.04` for `docker.io/library/ubuntu:22.04`, `user/app` for
    /// `docker.io/user/app`; other registries keep their host.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        format!("{name}{}", self.suffix())
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t.as_str());
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl Reference {
    /// A push destination: a repository and optionally a tag, never a digest (`flag` names it in the error).
    pub fn destination(s: &str, flag: &'static str) -> Result<Self, Error> {
        let r: Reference = s.parse()?;
        r.check_destination(flag)?;
        Ok(r)
    }

    /// A destination names a repository and optionally a tag: `flag`'s usage error for a digest.
    pub fn check_destination(&self, flag: &'static str) -> Result<(), Error> {
        match self.digest {
            Some(_) => Err(Error::invalid_arg(
                flag,
                self.to_string(),
                "a destination names a repository (and optionally a tag), not a digest",
            )),
            None => Ok(()),
        }
    }
}

/// The API host for a registry name (Docker Hub's API is not on `docker.io`).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// Every name Docker Hub's registry goes by. Each is the same registry, so a reference, a `config.json` key or a
/// `kiln pin` rule naming any of them means `docker.io` (one credential, one name in output, one match):
/// * `docker.io`: the canonical name, the one references use (docker's default domain);
/// * `index.docker.io`: the legacy default domain. Old docker versions wrote it into references, and docker
///   still stores Hub credentials under `https://index.docker.io/v1/` ([`crate::registry::credentials::DOCKER_HUB_KEY`]);
/// * `registry-1.docker.io`: the host that actually serves the API ([`DOCKER_HUB_API`]), so it shows up in
///   logs, error messages and `config.json` keys of tools that log in to the API host directly;
/// * `registry.hub.docker.com`: the Hub's older registry host name, still in older docs, charts and scripts.
pub const DOCKER_HUB_ALIASES: [&str; 4] = [
    DOCKER_HUB,
    "index.docker.io",
    DOCKER_HUB_API,
    "registry.hub.docker.com",
];

/// `docker.io` for any of Docker Hub's names ([`DOCKER_HUB_ALIASES`], in any case); any other host as given.
/// The one docker.io normalizer: references, credential lookup and `kiln pin` all go through it.
pub fn canonical_registry(host: &str) -> &str {
    if DOCKER_HUB_ALIASES
        .iter()
        .any(|a| host.eq_ignore_ascii_case(a))
    {
        DOCKER_HUB
    } else {
        host
    }
}

/// A registry name as users type it for `kiln login` or as a `config.json` key (`https://index.docker.io/v1/`,
/// `docker.io`, `host:5000/`) → the form references use (`docker.io`, `host:5000`), lower-cased.
pub fn normalize_registry(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    canonical_registry(&host).to_string()
}

fn invalid(value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference {
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`: dot-separated labels of letters, digits and inner `-`, or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(p) => ("x", Some(p)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(invalid(s, "empty reference"));
        }
        // `user:password@host/repo` (with or without a scheme): refused without echoing the secret.
        let start = s.find("://").map_or(0, |i| i + 3);
        let authority = s[start..].split('/').next().unwrap_or("");
        if let Some(at) = authority.rfind('@')
            && !authority[at + 1..].starts_with("sha256:")
        {
            let shown = format!("{}***@{}", &s[..start], &s[start + at + 1..]);
            return Err(invalid(
                &shown,
                "credentials do not belong in a reference: use `kiln login HOST` or KILN_REGISTRY_USERNAME and \
                 KILN_REGISTRY_PASSWORD",
            ));
        }
        if s.contains("://") {
            return Err(invalid(
                s,
                "a reference has no scheme: write host/repository, not https://…",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|e| invalid(s, e.to_string()))?),
            ),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !Tag::is_valid(t) {
                    return Err(invalid(
                        s,
                        format!(
                            "invalid tag {t:?}: 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
                        ),
                    ));
                }
                (&rest[..last_slash + i], Some(t.parse::<Tag>()?))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid(s, "missing repository name"));
        }
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !valid_domain(first) {
                    return Err(invalid(s, format!("invalid registry host {first:?}")));
                }
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if canonical_registry(&registry) == DOCKER_HUB {
            registry = DOCKER_HUB.to_string();
        }
        if repository.is_empty() {
            return Err(invalid(
                s,
                "missing repository name after the registry host",
            ));
        }
        for c in repository.split('/') {
            if c.is_empty() {
                return Err(invalid(
                    s,
                    "empty path component (leading, trailing or double '/')",
                ));
            }
            if c.bytes().any(|b| b.is_ascii_uppercase()) {
                // Usually a CI variable with the owner's capitals (GitHub's `github.repository`): say what to
                // write and how to get it.
                return Err(invalid(
                    s,
                    format!(
                        "repository name must be lowercase: use {:?}; in a CI script, lowercase the variable \
                         first, e.g. REPO=$(echo \"$REPO\" | tr '[:upper:]' '[:lower:]') (GitHub Actions: \
                         github.repository keeps the owner's capitals)",
                        format!("{registry}/{}", repository.to_ascii_lowercase())
                    ),
                ));
            }
            if !valid_path_component(c) {
                return Err(invalid(
                    s,
                    format!(
                        "invalid repository path component {c:?}: lowercase letters and digits, separated by '.', \
                         '_', '__' or '-'"
                    ),
                ));
            }
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid(
                s,
                format!("name longer than {MAX_NAME_LEN} characters"),
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.registry, self.repository, self.suffix())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_defaults() {
        let r = p("ubuntu");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/ubuntu")
        );
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), "docker.io/library/ubuntu");
        assert_eq!(r.familiar(), "ubuntu");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(
            p("ubuntu:22.04").to_string(),
            "docker.io/library/ubuntu:22.04"
        );
        assert_eq!(p("user/app").to_string(), "docker.io/user/app");
        assert_eq!(p("user/app").familiar(), "user/app");
        assert_eq!(
            p("index.docker.io/library/x").to_string(),
            "docker.io/library/x"
        );
        assert_eq!(p("docker.io/x").to_string(), "docker.io/library/x");
        assert_eq!(p("docker.io/library/a/b").familiar(), "library/a/b");
    }

    #[test]
    fn docker_hub_aliases() {
        for alias in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "registry.hub.docker.com",
            "Index.Docker.IO",
        ] {
            assert_eq!(canonical_registry(alias), DOCKER_HUB, "{alias}");
            assert_eq!(normalize_registry(alias), DOCKER_HUB, "{alias}");
            assert_eq!(
                normalize_registry(&format!("https://{alias}/v1/")),
                DOCKER_HUB
            );
            assert_eq!(
                p(&format!("{alias}/library/x")).to_string(),
                "docker.io/library/x"
            );
            assert_eq!(p(&format!("{alias}/x")).to_string(), "docker.io/library/x");
            assert_eq!(p(&format!("{alias}/x")).familiar(), "x");
        }
        // Other hosts are left as given (case included: references keep an upper-case host as docker does).
        for host in [
            "ghcr.io",
            "Registry",
            "docker.io.example.com",
            "hub.docker.com",
            "localhost:5000",
        ] {
            assert_eq!(canonical_registry(host), host);
        }
        assert_eq!(normalize_registry(" http://Host:5000/v2/ "), "host:5000");
        assert_eq!(p("registry.hub.docker.com/u/app:v1").familiar(), "u/app:v1");
    }

    #[test]
    fn hosts_and_ports() {
        let r = p("127.0.0.1:5000/team/app:v1");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_ref().unwrap().as_str(), "v1");
        assert_eq!(r.familiar(), "127.0.0.1:5000/team/app:v1");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(p("localhost/x").registry, "localhost");
        assert_eq!(p("localhost:5000/x").registry, "localhost:5000");
        assert_eq!(p("ghcr.io/o/r").registry, "ghcr.io");
        assert_eq!(p("[::1]:5000/x").registry, "[::1]:5000");
        // Upper case in the first component makes it a host, as in docker.
        assert_eq!(p("Registry/x").registry, "Registry");
        // A first component without '.', ':' is a path component.
        assert_eq!(p("foo/bar/baz").repository, "foo/bar/baz");
        assert_eq!(p("foo/bar/baz").registry, "docker.io");
    }

    #[test]
    fn tags_and_digests() {
        let r = p(&format!("host:5000/repo:tag@{D}"));
        assert_eq!(r.tag.as_ref().unwrap().as_str(), "tag");
        assert_eq!(r.digest.as_ref().unwrap().to_string(), D);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("host:5000/repo:tag@{D}"));
        let r = p(&format!("repo@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.familiar(), format!("repo@{D}"));
        let r = p("host:5000/repo");
        assert_eq!(r.tag, None);
        assert_eq!(
            r.with_tag("v2".parse().unwrap()).to_string(),
            "host:5000/repo:v2"
        );
    }

    #[test]
    fn path_grammar() {
        for ok in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1/b2/c3",
            "x/y-z.w_v",
        ] {
            p(ok);
        }
        for bad in [
            "a..b", "a___b", "-a", "a-", "_a", "a_", ".a", "a/", "/a", "a//b", "a b", "é",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn errors_say_why() {
        let why = |s: &str| match s.parse::<Reference>() {
            Err(Error::InvalidReference { value, reason }) => {
                assert_eq!(value, s);
                reason
            }
            other => panic!("{s}: {other:?}"),
        };
        assert!(why("").contains("empty"));
        assert!(why("host:5000/Repo").contains("lowercase"));
        let upper = why("ghcr.io/MyOrg/App:v1");
        assert!(
            upper.contains("use \"ghcr.io/myorg/app\"")
                && upper.contains("tr '[:upper:]' '[:lower:]'"),
            "{upper}"
        );
        assert!(why("repo:bad tag").contains("invalid tag"));
        assert!(why("repo:-x").contains("invalid tag"));
        assert!(why("repo@sha256:abc").contains("64"));
        assert!(why("https://host/repo").contains("scheme"));
        assert!(why("host:port/repo").contains("registry host"));
        assert!(why("bad_host.com:5000/x").contains("registry host"));
        assert!(why("host.io/").contains("missing repository"));
        assert!(why(":tag").contains("missing"));
        let long = format!("h.io/{}", "a".repeat(251));
        assert!(why(&long).contains("255"));
        p(&format!("h.io/{}", "a".repeat(250)));
    }

    #[test]
    fn new_and_name() {
        let r = Reference::new("127.0.0.1:5000", "a/b").unwrap();
        assert_eq!(r.name(), "127.0.0.1:5000/a/b");
        assert!(Reference::new("h.io", "a:tag").is_err());
    }
}
