//! A client for the OCI distribution API (registry v2) on `reqwest`'s blocking client, modelled on
//! go-containerregistry's `remote`: a [`Client`] (TLS, credentials, tokens, retries shared by all threads) hands out
//! [`Repository`] handles that push and pull blobs and manifests. Bodies stream in both directions: memory stays
//! flat whatever the blob size.
//!
//! Layers, each file importing only from those below it:
//! - leaves: `options` ([`ClientOptions`]), `errors`, `redact`, `retry` (policy and the one retry loop),
//!   `credentials` (where credentials come from), `body` (request bodies);
//! - `tls` (the `--ca-file` certificate verifier), `watch` (timeouts without progress, slow-request notes),
//!   `files` (requests with a file body, on the async client);
//! - `http`: one request to a registry, redirects followed, counted and logged; scheme/TLS and timeout rules;
//! - `auth`: challenges, tokens and credentials per registry ([`auth::Challenge`]);
//! - `ping`: the first `GET /v2/`, which makes a registry's endpoint;
//! - `transport`: endpoints cached, `Authorization`, re-authentication and retries;
//! - `streaming`: one request whose body is produced while it is sent (on `auth` and `http`);
//! - `client`: [`Client`], [`Repository`], [`login`];
//! - `content` (blobs, manifests, tags), `referrers` (the referrers API, `OCI-Subject`) and `upload` (blob uploads)
//!   on a [`Repository`];
//! - `stream`: layers uploaded while they are compressed (on `upload` and `streaming`).

pub mod auth;
mod body;
mod client;
mod content;
pub mod credentials;
pub mod errors;
mod files;
mod http;
mod options;
mod ping;
pub mod redact;
mod referrers;
mod request;
pub mod retry;
mod stream;
mod streaming;
mod tls;
mod transport;
mod upload;
mod warnings;
mod watch;

pub use client::{Client, Repository, login};
pub use content::RawManifest;
pub use options::ClientOptions;
pub use stream::{LayerStreams, StreamTee};
pub use upload::{BlobItem, BlobOutcome, OpenSession};

#[cfg(test)]
mod mock_tests;
