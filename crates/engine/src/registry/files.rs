//! Requests with a file body (blob uploads from disk) go through reqwest's async client rather than the blocking
//! one: the blocking client can bound such a request only by a whole-exchange deadline, fixed before the body
//! is sent, which would cut a slow upload. Here the wait is bounded by progress (see `watch`). The answer is read
//! whole (a status, a `Location`, an error document: at most 1 MiB is kept) and handed back as an
//! `http::Response` for a blocking response to wrap. Below `http`, which builds the requests and logs them.

use std::sync::OnceLock;
use std::time::Duration;

use super::watch::{Progress, unless_idle};
use crate::error::Result;

/// Most of an answer kept.
const MAX_ANSWER: usize = 1 << 20;

/// A runtime with one worker (the connections' I/O, as the blocking client's own runtime thread does it) and the
/// async clients, built once per TLS choice (plain, verified, unverified).
pub(crate) struct FileSender {
    rt: tokio::runtime::Runtime,
    clients: [OnceLock<reqwest::Client>; 3],
}

impl FileSender {
    pub fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kiln-uploads")
            .enable_all()
            .build()?;
        Ok(FileSender {
            rt,
            clients: Default::default(),
        })
    }

    /// The client in `slot` (one per TLS choice), made by `make` the first time.
    pub fn client(
        &self,
        slot: usize,
        make: impl FnOnce() -> Result<reqwest::Client>,
    ) -> Result<&reqwest::Client> {
        let cell = &self.clients[slot];
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let c = make()?;
        Ok(cell.get_or_init(|| c))
    }

    /// Send `req` and read its answer while `progress` moves: `None` once it stood still for `limit`.
    pub fn send(
        &self,
        client: &reqwest::Client,
        req: reqwest::Request,
        progress: &Progress,
        limit: Duration,
    ) -> std::result::Result<Option<http::Response<Vec<u8>>>, reqwest::Error> {
        self.rt.block_on(async {
            let Some(resp) = unless_idle(client.execute(req), progress, limit).await else {
                return Ok(None);
            };
            let mut resp = resp?;
            progress.touch();
            let mut answer = http::Response::builder()
                .status(resp.status())
                .version(resp.version());
            if let Some(h) = answer.headers_mut() {
                *h = resp.headers().clone();
            }
            let mut body = Vec::new();
            loop {
                let Some(chunk) = unless_idle(resp.chunk(), progress, limit).await else {
                    return Ok(None);
                };
                let Some(chunk) = chunk? else { break };
                progress.touch();
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ANSWER {
                    break;
                }
            }
            Ok(Some(answer.body(body).expect("a valid response")))
        })
    }
}
