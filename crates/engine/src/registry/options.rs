//! How a [`Client`](crate::registry::Client) talks to registries: the settings every layer of the registry client reads.

use std::path::PathBuf;
use std::time::Duration;

use super::retry::RetryPolicy;
use crate::events::Report;

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
    /// Where requests are logged: one line per request, retry and fallback at [`Level::Debug`], request and
    /// response headers (secrets masked) at [`Level::Trace`]. Silent by default.
    ///
    /// [`Level::Debug`]: crate::events::Level::Debug
    /// [`Level::Trace`]: crate::events::Level::Trace
    pub report: Report,
    /// The registry the command publishes to or reads (`--to`, push's destination, inspect's target): the one
    /// `KILN_REGISTRY_USERNAME`/`KILN_REGISTRY_PASSWORD` belong to when `KILN_REGISTRY` does not say (other
    /// registries, such as a `--base` elsewhere, never get them), and one never read through a mirror.
    pub own_registry: Option<String>,
    /// Mirrors to read base images through: (registry, mirror host), tried in order before the registry itself
    /// (`--registry-mirror`, `registries.conf`). Never for pushes, nor for the command's own registry.
    pub mirrors: Vec<(String, String)>,
    /// Longest wait for a connection (TCP and TLS handshake).
    pub connect_timeout: Duration,
    /// Longest time a request may go without progress: waiting for the answer, for any single read of it, or
    /// between two pieces of an upload taken by the connection (and for unacknowledged data,
    /// `TCP_USER_TIMEOUT`). Not a whole-request deadline: a slow upload that moves goes on. Not retried.
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
            report: Report::default(),
            own_registry: None,
            mirrors: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}
