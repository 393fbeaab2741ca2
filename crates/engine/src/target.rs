//! Where an image is read from or written to: `oci:PATH[:TAG|@DIGEST]` (a local OCI layout, the convention skopeo
//! and podman use) or a registry reference.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::tag::Tag;

/// A local OCI layout, optionally narrowed to one image by tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// As the user wrote it (printed back the same way).
    pub path: PathBuf,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Layout(LayoutRef),
    /// A registry reference (`host/repo[:tag|@digest]`, docker-normalized).
    Registry(Reference),
    /// `docker-archive:PATH[:REPO:TAG]`: a tarball for `docker load` / `podman load`, holding one image tagged
    /// `REPO:TAG` (REPO as typed, e.g. `app` or `registry.example.com/team/app`).
    DockerArchive {
        path: PathBuf,
        reference: Option<(String, Tag)>,
    },
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("oci:") {
            return parse_layout(s, rest).map(Target::Layout);
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return parse_archive(s, rest);
        }
        if let Some((transport, _)) = s.split_once(':')
            && !transport.contains(['/', '.'])
            && matches!(
                transport,
                "docker" | "oci-archive" | "dir" | "containers-storage"
            )
        {
            return Err(Error::invalid_arg(
                "target",
                s,
                "expected oci:PATH[:TAG] for a local layout, docker-archive:PATH[:REPO:TAG] for a tarball, or \
                 REGISTRY/REPO[:TAG] for a registry (without a docker:// prefix)",
            ));
        }
        if s.is_empty() {
            return Err(Error::invalid_arg(
                "target",
                s,
                "expected oci:PATH or REGISTRY/REPO",
            ));
        }
        Ok(Target::Registry(s.parse()?))
    }
}

fn parse_layout(whole: &str, rest: &str) -> Result<LayoutRef> {
    let bad = |why: &str| Error::invalid_arg("target", whole, why.to_string());
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((p, d)) => (p, Some(d.parse::<Digest>()?)),
        None => (rest, None),
    };
    // Like skopeo's oci transport, the path ends at the first ':'; what follows is the tag.
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(bad(
            "the layout path after oci: is empty; e.g. oci:./images or oci:/tmp/layout:v1",
        ));
    }
    if tag.is_some() && digest.is_some() {
        return Err(bad("give a tag or a digest, not both"));
    }
    let tag = match tag {
        Some(t) => Some(t.parse::<Tag>().map_err(|_| {
            bad("the part after the second ':' must be a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})")
        })?),
        None => None,
    };
    Ok(LayoutRef {
        path: PathBuf::from(path),
        tag,
        digest,
    })
}

/// `PATH[:REPO:TAG]`: like skopeo's docker-archive transport, the path ends at the first ':'; the rest is a
/// docker reference with a tag (REPO may hold a registry port: `localhost:5000/app:v1`).
fn parse_archive(whole: &str, rest: &str) -> Result<Target> {
    let bad = |why: &str| Error::invalid_arg("target", whole, why.to_string());
    let (path, named) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(bad(
            "the archive path after docker-archive: is empty; e.g. docker-archive:./app.tar:app:v1",
        ));
    }
    let reference = match named {
        None => None,
        Some(r) => {
            let (repo, tag) = r
                .rsplit_once(':')
                .filter(|(repo, tag)| !repo.is_empty() && !tag.contains('/'))
                .ok_or_else(|| {
                    bad("expected docker-archive:PATH:REPO:TAG, e.g. docker-archive:app.tar:app:v1")
                })?;
            let parsed: Reference = r.parse().map_err(|_| {
                bad("REPO:TAG after the path is not a valid image reference, e.g. app:v1 or host:5000/team/app:v1")
            })?;
            if parsed.digest.is_some() || repo.contains('@') {
                return Err(bad("an archive's name is REPO:TAG, without a digest"));
            }
            let tag = tag
                .parse::<Tag>()
                .map_err(|_| bad("the last ':' part must be a tag"))?;
            Some((repo.to_string(), tag))
        }
    };
    Ok(Target::DockerArchive {
        path: PathBuf::from(path),
        reference,
    })
}

impl Target {
    /// The usage error for a command that cannot read or write a docker archive.
    pub fn archive_unsupported(command: &str) -> Error {
        Error::Usage(format!(
            "{command} does not read docker archives (docker-archive:PATH); `kiln push docker-archive:PATH \
             REGISTRY/REPO` puts one in a registry"
        ))
    }

    /// `docker-archive:PATH[:REPO]` (without the tag) for an archive target, as output prints it.
    pub fn archive_display(path: &std::path::Path, reference: Option<&(String, Tag)>) -> String {
        match reference {
            Some((repo, _)) => format!("docker-archive:{}:{repo}", path.display()),
            None => format!("docker-archive:{}", path.display()),
        }
    }
}

/// As the user would write it again (for the provenance's parameters, messages).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Layout(l) => l.fmt(f),
            Target::Registry(r) => r.fmt(f),
            Target::DockerArchive { path, reference } => {
                write!(f, "docker-archive:{}", path.display())?;
                match reference {
                    Some((repo, tag)) => write!(f, ":{repo}:{tag}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}", self.path.display())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_forms() {
        let t: Target = "oci:./out:v1".parse().unwrap();
        let Target::Layout(l) = t else { panic!() };
        assert_eq!(l.path, PathBuf::from("./out"));
        assert_eq!(l.tag.unwrap().as_str(), "v1");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let Target::Layout(l) = format!("oci:/x/y@{d}").parse().unwrap() else {
            panic!()
        };
        assert_eq!(l.digest.unwrap().to_string(), d);
        assert!("oci:".parse::<Target>().is_err());
        assert!("oci:x:bad/tag".parse::<Target>().is_err());
        assert!("docker://x/y".parse::<Target>().is_err());
        let Target::DockerArchive { path, reference } =
            "docker-archive:out/app.tar:localhost:5000/team/app:v1"
                .parse()
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(path, PathBuf::from("out/app.tar"));
        let (repo, tag) = reference.unwrap();
        assert_eq!(
            (repo.as_str(), tag.as_str()),
            ("localhost:5000/team/app", "v1")
        );
        assert!(matches!(
            "docker-archive:a.tar".parse().unwrap(),
            Target::DockerArchive {
                reference: None,
                ..
            }
        ));
        for bad in [
            "docker-archive:",
            "docker-archive:a.tar:app",
            "docker-archive:a.tar:App:v1",
            "docker-archive:a.tar:app:v/1",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        assert_eq!(
            "reg.example.com/a/b:v1".parse::<Target>().unwrap(),
            Target::Registry("reg.example.com/a/b:v1".parse().unwrap())
        );
    }
}
