//! A client for the OCI distribution API (registry v2) on `reqwest`'s blocking client, modelled on
//! go-containerregistry's `remote`: a [`Client`] (TLS, credentials, tokens, retries shared by all threads) hands out
//! [`Repository`] handles that push and pull blobs and manifests. Bodies stream in both directions: memory stays
//! flat whatever the blob size.
//!
//! See `transport` for the scheme/TLS choice, redirect and timeout rules, `auth` for the token flow and
//! `credentials` for where credentials come from.

pub mod auth;
mod content;
pub mod credentials;
pub mod errors;
mod ping;
pub mod redact;
pub mod retry;
mod stream;
mod streaming;
mod transport;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use url::Url;

pub use content::{MANIFEST_ACCEPT, RawManifest, parse_next_link};
pub use credentials::{Credential, CredentialEnv, Secret};
pub use retry::RetryPolicy;
pub use stream::{LayerStreams, StreamTee};
pub use upload::{BlobItem, BlobOutcome, OpenSession, Progress, UploadProgress, resolve_location};

use crate::error::{Error, Result};
use crate::reference::Reference;
use transport::{Endpoint, Request, Transport};

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Registries (`host[:port]` or `host`) allowed plain HTTP and unverified TLS.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM bundle) trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Blob uploads running at once in `push_blobs`.
    pub max_parallel: usize,
    /// Upload in `PATCH` chunks of this size instead of one streamed `PUT`.
    pub chunk_size: Option<u64>,
    pub user_agent: String,
    pub retry: RetryPolicy,
    /// 1: one line per request on stderr; 2: plus headers (secrets masked).
    pub verbose: u8,
    pub connect_timeout: Duration,
    /// Longest wait for response headers or for any single read/acknowledged write; not a whole-request deadline.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            ca_file: None,
            max_parallel: 4,
            chunk_size: None,
            user_agent: format!("kiln/{}", env!("CARGO_PKG_VERSION")),
            retry: RetryPolicy::default(),
            verbose: 0,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// Shared by all threads: cheap to clone.
#[derive(Clone)]
pub struct Client {
    t: Arc<Transport>,
}

impl Client {
    /// A client using the process environment for credentials.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        Self::with_credentials(opts, CredentialEnv::from_process())
    }

    /// A client reading credentials from an explicit environment (tests, or a fixed config).
    pub fn with_credentials(opts: ClientOptions, creds: CredentialEnv) -> Result<Self> {
        Ok(Client {
            t: Arc::new(Transport::new(opts, creds)?),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.t.opts
    }

    /// HTTP requests sent so far (every attempt and redirect hop counts).
    pub fn request_count(&self) -> u64 {
        self.t.requests.load(Ordering::Relaxed)
    }

    /// A handle on `reference`'s repository (its tag/digest are ignored). Nothing is sent yet.
    pub fn repository(&self, reference: &Reference) -> Repository {
        Repository {
            client: self.clone(),
            registry: reference.registry.clone(),
            name: reference.repository.clone(),
            upload_progress: None,
        }
    }

    /// `GET /v2/` with whatever credentials are found; Ok when the registry accepts them (or needs none).
    pub fn check_access(&self, registry: &str) -> Result<()> {
        let ep = self.t.endpoint(registry)?;
        self.check(&ep)
    }

    fn check(&self, ep: &Endpoint) -> Result<()> {
        let url = ep.base.join("v2/").expect("static path");
        let resp = self
            .t
            .send(ep, &Request::new(Method::GET, url.clone(), &[]))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            s => Err(errors::status_error(
                "GET",
                &url,
                s,
                &transport::read_limited(resp, 65536),
            )),
        }
    }
}

/// Verify `username`/`password` against `registry`, then store them in docker's `config.json` at `config_path`
/// (default: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
pub fn login(
    client: &Client,
    registry: &str,
    username: &str,
    password: &str,
    config_path: Option<&Path>,
) -> Result<PathBuf> {
    let ep = client.t.endpoint(registry)?;
    let cred = Credential {
        secret: Secret::Basic {
            username: username.into(),
            password: password.into(),
        },
        source: "the credentials given to kiln login".into(),
    };
    client.t.set_credential(&ep, cred);
    // A Basic registry verifies them on /v2/; a Bearer one when issuing a token for them.
    client.check(&ep)?;
    let path = match config_path {
        Some(p) => p.to_path_buf(),
        None => client.t.creds.docker_config().ok_or_else(|| {
            Error::Usage("cannot find docker's config.json: set DOCKER_CONFIG or HOME".into())
        })?,
    };
    credentials::store(&path, registry, username, password)?;
    Ok(path)
}

/// One repository on one registry.
#[derive(Clone)]
pub struct Repository {
    client: Client,
    registry: String,
    name: String,
    upload_progress: Option<UploadProgress>,
}

impl Repository {
    /// This handle, telling `progress` how far each blob upload has read (for progress bars).
    pub fn with_upload_progress(mut self, progress: UploadProgress) -> Self {
        self.upload_progress = Some(progress);
        self
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// HTTP requests this repository's client has sent so far (all threads, all repositories).
    pub fn request_count(&self) -> u64 {
        self.client.request_count()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> Result<Arc<Endpoint>> {
        self.client.t.endpoint(&self.registry)
    }

    fn pull_scope(&self) -> Vec<String> {
        vec![format!("repository:{}:pull", self.name)]
    }

    fn push_scope(&self) -> Vec<String> {
        vec![format!("repository:{}:pull,push", self.name)]
    }

    fn url(&self, ep: &Endpoint, path: &str) -> Url {
        ep.base
            .join(&format!("v2/{}/{path}", self.name))
            .expect("repository names are URL-safe")
    }
}

#[cfg(test)]
mod mock_tests;
