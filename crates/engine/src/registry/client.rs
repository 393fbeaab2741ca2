//! [`Client`] (shared by all threads) and the [`Repository`] handles it gives out; the verbs on a repository are
//! in `content` (blobs, manifests, tags) and `upload` (blob uploads), which build on this file.

use std::path::Path;
use std::sync::Arc;

use reqwest::Method;
use url::Url;

use super::auth::Endpoint;
use super::credentials::{self, Credential, CredentialEnv, Secret};
use super::errors::status_error;
use super::http::{Request, Scope, read_limited};
use super::options::ClientOptions;
use super::transport::Transport;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{Reference, normalize_registry};

/// Shared by all threads: cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(super) t: Arc<Transport>,
}

impl Client {
    /// A client using the process environment for credentials.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        let mut env = CredentialEnv::from_process();
        if env.env_registry.is_none() {
            env.env_registry = opts.own_registry.as_deref().map(normalize_registry);
        }
        Self::with_credentials(opts, env)
    }

    /// A client reading credentials from an explicit environment (tests, or a fixed config).
    pub fn with_credentials(opts: ClientOptions, creds: CredentialEnv) -> Result<Self> {
        Ok(Client {
            t: Arc::new(Transport::new(opts, creds)?),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        self.t.opts()
    }

    /// The mirrors to read `registry`'s images through, in order: none for the command's own registry.
    pub fn mirrors_for(&self, registry: &str) -> Vec<String> {
        let o = self.options();
        if o.own_registry.as_deref().map(normalize_registry).as_deref() == Some(registry) {
            return Vec::new();
        }
        o.mirrors
            .iter()
            .filter(|(r, _)| normalize_registry(r) == registry)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// HTTP requests sent so far (every attempt and redirect hop counts).
    pub fn request_count(&self) -> u64 {
        self.t.http().request_count()
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
    fn check(&self, ep: &Endpoint) -> Result<()> {
        let url = ep.site.base.join("v2/").expect("static path");
        let resp = self
            .t
            .send(ep, &Request::new(Method::GET, url.clone(), &[]))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            s => Err(status_error("GET", &url, s, &read_limited(resp, 65536))),
        }
    }
}

/// Verify `username`/`password` against `registry`, then store them as docker does (`credentials::store`: its
/// credential helper, else `config.json` at `config_path`, default `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`). Returns where they went.
pub fn login(
    client: &Client,
    registry: &str,
    username: &str,
    password: &str,
    config_path: Option<&Path>,
) -> Result<String> {
    let ep = client.t.endpoint(registry)?;
    let cred = Credential {
        secret: Secret::Basic {
            username: username.into(),
            password: password.into(),
        },
        source: "the credentials given to kiln login".into(),
    };
    client.t.auth.set_credential(&ep, cred);
    // A Basic registry verifies them on /v2/; a Bearer one when issuing a token for them.
    client.check(&ep)?;
    let path = match config_path {
        Some(p) => p.to_path_buf(),
        None => client.t.auth.creds.docker_config().ok_or_else(|| {
            Error::Usage("cannot find docker's config.json: set DOCKER_CONFIG or HOME".into())
        })?,
    };
    credentials::store(&client.t.auth.creds, &path, registry, username, password)
}

/// Called from upload threads with a blob and the byte offset its upload has read up to (see
/// [`Repository::with_upload_progress`]).
pub type UploadProgress = Arc<dyn Fn(&Digest, u64) + Send + Sync>;

/// One repository on one registry.
#[derive(Clone)]
pub struct Repository {
    pub(super) client: Client,
    pub(super) registry: String,
    pub(super) name: String,
    pub(super) upload_progress: Option<UploadProgress>,
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

    pub(super) fn transport(&self) -> &Transport {
        &self.client.t
    }

    pub(super) fn endpoint(&self) -> Result<Arc<Endpoint>> {
        self.client.t.endpoint(&self.registry)
    }

    pub(super) fn pull_scope(&self) -> Vec<Scope> {
        vec![Scope::pull(&self.name)]
    }

    pub(super) fn push_scope(&self) -> Vec<Scope> {
        vec![Scope::push(&self.name)]
    }

    pub(super) fn url(&self, ep: &Endpoint, path: &str) -> Url {
        ep.site
            .base
            .join(&format!("v2/{}/{path}", self.name))
            .expect("repository names are URL-safe")
    }

    /// A `-v` line about this repository's uploads (mount refused, upload retried, stream given up).
    pub(super) fn log(&self, msg: std::fmt::Arguments<'_>) {
        self.client.t.opts().report.debug(msg);
    }
}
