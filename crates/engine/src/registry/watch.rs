//! Waits bounded by progress, not by a whole-request deadline: a request fails once nothing has moved for the
//! timeout (no body frame taken by the connection, no answer), so a slow but moving upload goes on while a
//! registry that took the body and never answers is given up on. A request that has not moved for a few seconds
//! is said once at note level, so a long wait is never silent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Frame, SizeHint};

use crate::events::Report;

/// How often the watchdog looks at the requests in flight.
const TICK: Duration = Duration::from_millis(200);

/// The longest quiet spell before a request is said to be slow (half the timeout when that is shorter).
const SLOW: Duration = Duration::from_secs(5);

/// When a request last moved (sent a body frame, got its answer or a piece of it).
#[derive(Clone, Debug)]
pub(crate) struct Progress(Arc<(Instant, AtomicU64)>);

impl Progress {
    pub fn new() -> Self {
        Progress(Arc::new((Instant::now(), AtomicU64::new(0))))
    }

    pub fn touch(&self) {
        let ms = self.0.0.elapsed().as_millis() as u64;
        self.0.1.store(ms, Ordering::Relaxed);
    }

    /// How long since it last moved.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.0.1.load(Ordering::Relaxed));
        self.0.0.elapsed().saturating_sub(last)
    }
}

/// Wait for `fut` while `progress` moves: `None` once it has been idle for `limit`.
pub(crate) async fn unless_idle<F: Future>(
    fut: F,
    progress: &Progress,
    limit: Duration,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        let left = limit.saturating_sub(progress.idle());
        if left.is_zero() {
            return None;
        }
        if let Ok(v) = tokio::time::timeout(left, fut.as_mut()).await {
            return Some(v);
        }
    }
}

struct Entry {
    what: String,
    progress: Progress,
    noted: AtomicBool,
}

/// The requests in flight, looked at by one thread (started with the first request, ended with the client) that
/// notes each request quiet for longer than a few seconds, once.
pub(crate) struct Watchdog {
    entries: Arc<Mutex<Vec<Arc<Entry>>>>,
    started: AtomicBool,
    report: Report,
    limit: Duration,
}

/// A request being watched: dropping it ends the watch.
pub(crate) struct Watched {
    entries: Weak<Mutex<Vec<Arc<Entry>>>>,
    entry: Arc<Entry>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(list) = self.entries.upgrade() {
            list.lock()
                .expect("watchdog lock")
                .retain(|e| !Arc::ptr_eq(e, &self.entry));
        }
    }
}

impl Watchdog {
    pub fn new(report: Report, limit: Duration) -> Self {
        Watchdog {
            entries: Arc::new(Mutex::new(Vec::new())),
            started: AtomicBool::new(false),
            report,
            limit,
        }
    }

    /// Watch a request (`what`: `METHOD URL`, redacted) whose progress is `progress`.
    pub fn watch(&self, what: String, progress: &Progress) -> Watched {
        let entry = Arc::new(Entry {
            what,
            progress: progress.clone(),
            noted: AtomicBool::new(false),
        });
        self.entries
            .lock()
            .expect("watchdog lock")
            .push(entry.clone());
        if !self.started.swap(true, Ordering::Relaxed) {
            self.start();
        }
        Watched {
            entries: Arc::downgrade(&self.entries),
            entry,
        }
    }

    fn start(&self) {
        let entries = Arc::downgrade(&self.entries);
        let report = self.report.clone();
        let limit = self.limit;
        let slow = SLOW.min(limit / 2);
        let spawned = std::thread::Builder::new()
            .name("kiln-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    let Some(list) = entries.upgrade() else {
                        return;
                    };
                    let due: Vec<(String, Duration)> = list
                        .lock()
                        .expect("watchdog lock")
                        .iter()
                        .filter(|e| {
                            e.progress.idle() >= slow && !e.noted.swap(true, Ordering::Relaxed)
                        })
                        .map(|e| (e.what.clone(), e.progress.idle()))
                        .collect();
                    drop(list);
                    for (what, idle) in due {
                        report.note(format_args!(
                            "{what}: no progress for {} s; giving up after {} s (--timeout)",
                            idle.as_secs(),
                            limit.as_secs_f64()
                        ));
                    }
                }
            });
        if spawned.is_err() {
            // No thread, no notes: requests are still bounded by their timeouts.
            self.started.store(false, Ordering::Relaxed);
        }
    }
}

/// A body that touches `progress` as the connection takes each frame.
pub(crate) struct Tracked<B> {
    pub inner: B,
    pub progress: Progress,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if r.is_ready() {
            self.progress.touch();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
