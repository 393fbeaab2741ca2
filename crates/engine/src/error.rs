//! The one error type of kiln. Every variant carries the object that failed (path, reference, registry URL with
//! credentials redacted) so that the message alone tells the user what to fix; `exit_code` maps it to the CLI's
//! contract (1 failure, 2 usage, 3 a version tag would be overwritten).

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- usage: the command line or a value on it is wrong (exit 2) ----
    /// A flag value that does not parse. `flag` is the flag as typed, `expected` what would be valid.
    #[error("invalid {flag} value {value:?}: {expected}")]
    InvalidArg {
        flag: &'static str,
        value: String,
        expected: String,
    },
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest { value: String, reason: String },
    #[error("{0}")]
    Usage(String),

    // ---- input: the build directory and its files ----
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Something in the input tree kiln refuses to put in a layer (device, socket, escape, changed file…).
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },

    // ---- local OCI layout ----
    #[error("OCI layout {}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    #[error("OCI layout {}: no image tagged {tag:?} (tags present: {available})", path.display())]
    TagNotFound {
        path: PathBuf,
        tag: String,
        available: String,
    },

    // ---- image content (config/manifest JSON) ----
    #[error("{what}: {reason}")]
    Image { what: String, reason: String },

    // ---- registry ----
    /// One failed HTTP exchange: `url` is already redacted. `code` is the registry's error code when it sent one.
    #[error("{method} {url}: {}{message}", code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Registry {
        method: String,
        url: String,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    #[error("invalid image reference {value:?}: {reason}")]
    InvalidReference { value: String, reason: String },
    /// The registry could not be reached or the exchange broke off (DNS, connect, TLS, reset, timeout), after
    /// the retries. `url` is already redacted.
    #[error("{method} {url}: {message}")]
    RegistryConnection {
        method: String,
        url: String,
        message: String,
        /// Whether trying again may mend it: false for TLS verification and protocol failures.
        retryable: bool,
    },

    // ---- tags and versions ----
    /// A tag exists with another digest; writing it would move it (exit 3).
    #[error(
        "tag {tag:?} in {repository} already points to {existing}, this build is {new}; refusing to move it. \
         Use a new version (e.g. --version auto) or, if you really mean to move it, --force-tag"
    )]
    TagExists {
        repository: String,
        tag: String,
        existing: String,
        new: String,
    },
    /// `--to docker-archive:PATH` names a file that exists (exit 3, like a tag that would be moved).
    #[error(
        "{}: already exists; a docker archive is always a new file (choose another path, or replace it with --force-tag)",
        path.display()
    )]
    ArchiveExists { path: PathBuf },
    #[error("{0}")]
    Version(String),
    /// A `--tag` template whose placeholders cannot be filled here, or whose result is not a tag (exit 1; a
    /// template that is malformed whatever the values is an `InvalidArg`).
    #[error("--tag template {template:?}: {reason}")]
    Template { template: String, reason: String },
    /// The registry refused to write a tag (immutable tags: ECR, Harbor, Artifact Registry…).
    #[error(
        "{repository} refused to write tag {tag:?} (the registry treats tags as immutable): {reason}"
    )]
    TagRefused {
        repository: String,
        tag: String,
        reason: String,
    },

    /// Context added on the way up (what kiln was doing), keeping the cause as `source`.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidArg { .. }
            | Error::InvalidDigest { .. }
            | Error::Usage(_)
            | Error::InvalidReference { .. } => 2,
            Error::TagExists { .. } | Error::ArchiveExists { .. } => 3,
            Error::Context { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn input(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn layout(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Layout {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub fn invalid_arg(
        flag: &'static str,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidArg {
            flag,
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// The innermost error (what actually failed, under the contexts).
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            e => e,
        }
    }

    /// Whether the registry said the object does not exist (404, `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`…).
    pub fn not_found(&self) -> bool {
        match self.root() {
            Error::Registry { status, code, .. } => {
                *status == Some(404)
                    || matches!(
                        code.as_deref(),
                        Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN")
                    )
            }
            _ => false,
        }
    }

    /// The next step for the user, when the message itself does not already say it.
    pub fn hint(&self) -> Option<String> {
        match self.root() {
            Error::RegistryConnection { url, message, .. } => {
                let host = url::Url::parse(url).ok().map_or_else(
                    || url.clone(),
                    |u| match u.port() {
                        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
                        None => u.host_str().unwrap_or("").to_string(),
                    },
                );
                let m = message.to_ascii_lowercase();
                Some(if m.contains("--ca-file") {
                    format!(
                        "check that the --ca-file holds the CA that signed the registry's certificate (or that \
                         certificate itself) and that it names {host}; --insecure-registry {host} skips \
                         verification (test registries only)"
                    )
                } else if m.contains("--timeout") {
                    format!(
                        "the registry at {host} accepted the connection but did not answer in time: check it (and \
                         any proxy in between); on a slow link or a slow registry raise --timeout SECONDS"
                    )
                } else if m.contains("certificate") || m.contains("ssl") || m.contains("tls") {
                    format!(
                        "the registry's TLS certificate is not trusted here: pass --ca-file PEM with the CA that \
                         signed it, or --insecure-registry {host} to skip verification (test registries only)"
                    )
                } else if m.contains("dns") || m.contains("resolve") || m.contains("lookup") {
                    format!("{host} does not resolve: check the registry name in the reference")
                } else {
                    format!(
                        "check that the registry at {host} is running and reachable from here (proxy variables: \
                         HTTPS_PROXY, NO_PROXY); --retries N tries longer"
                    )
                })
            }
            Error::Io { path, source } if source.kind() == io::ErrorKind::NotFound => {
                let cwd = std::env::current_dir()
                    .map(|d| format!(" (relative paths start at {})", d.display()))
                    .unwrap_or_default();
                Some(format!("check the path {}{cwd}", path.display()))
            }
            Error::InvalidReference { .. } => Some(
                "references look like registry.example.com/team/app:v1, app:1.2 (= docker.io/library/app:1.2), \
                 or oci:PATH[:TAG] for a local OCI layout"
                    .into(),
            ),
            Error::InvalidArg { flag, .. } if flag.starts_with('-') => {
                Some("`kiln help COMMAND` lists every flag with examples".into())
            }
            _ => None,
        }
    }

    /// Wrap with what kiln was doing.
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// `.context("…")` on results, like anyhow's, but keeping our typed error.
pub trait ResultExt<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_cli_contract() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            Error::input("/x", "is a socket")
                .context("building layer 1")
                .exit_code(),
            1
        );
        let e = Error::TagExists {
            repository: "r".into(),
            tag: "v1".into(),
            existing: "a".into(),
            new: "b".into(),
        };
        assert_eq!(e.context("publishing").exit_code(), 3);
    }

    #[test]
    fn registry_error_shows_code() {
        let e = Error::Registry {
            method: "PUT".into(),
            url: "https://h/v2/r/manifests/v1".into(),
            status: Some(400),
            code: Some("MANIFEST_INVALID".into()),
            message: "manifest invalid".into(),
        };
        assert_eq!(
            e.to_string(),
            "PUT https://h/v2/r/manifests/v1: MANIFEST_INVALID: manifest invalid"
        );
    }
}
