//! Early pushes: blobs of a registry build go up while the rest of the image is still being built.
//!
//! Only a publish that can only add new tags may push early — every tag it writes is absent (floating ones
//! aside), or `--force-tag` lets it move them — since no check can refuse it after blobs are sent
//! ([`Early::check`]). Each layer is announced when its blob is complete, the config once the last layer is
//! ([`Finished`]); `--jobs` upload threads push them (HEAD skip first, unless the repository has no tags or the
//! blob is surely new), and the publish then finds them there. When the first layer starts compressing, one
//! upload thread opens a session ahead ([`Finished::compressing`]) that the next upload takes: on a rebuild with
//! one changed layer (streamed while it compresses) that is the config's, so its `POST` is off the end of the
//! push.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};

use super::plan::BuildPlan;
use crate::digest::Digest;
use crate::error::Result;
use crate::events::Report;
use crate::publish::RemoteTags;
use crate::publish::TagTarget;
use crate::publish::known_layers::{self, KnownLayers};
use crate::publish::tagging;
use crate::publish::tagging::Prepared;
use crate::reference::Reference;
use crate::registry::{LayerStreams, OpenSession, Repository};
use crate::store::Layout;

/// A registry build whose blobs may go up early.
#[derive(Clone, Copy)]
pub(super) struct Early {
    /// The repository has no tags at all (a first push).
    pub empty: bool,
}

impl Early {
    /// What the publish starts from (its one tag listing: `tagging::Prepared`), the repository's recent layers
    /// (read in the background: [`KnownLayers`]), and whether blobs may be pushed before the image is complete
    /// (`None`: a tag check may still refuse the publish). Reads only; the one listing answers every question.
    pub fn check(
        repo: &Repository,
        reference: &Reference,
        plan: &BuildPlan,
    ) -> Result<(Prepared, KnownLayers, Option<Early>)> {
        let mut req = plan.tagging.clone();
        req.add_target_tag(reference.tag.as_ref());
        let probe = RemoteTags::new(repo.clone(), reference.clone());
        let prepared = tagging::prepare(&probe, &req, &plan.layers[0].src)?;
        let known = match probe.list_tags() {
            // Only a runner that misses its layer cache waits for these reads.
            Ok(listed) => KnownLayers::spawn(
                repo.clone(),
                known_layers::candidates(&listed, req.scheme.as_ref(), reference.tag.as_ref()),
                plan.compression.media_type().to_string(),
                plan.compression.encoding(),
            ),
            Err(_) => KnownLayers::none(),
        };
        if !tagging::only_new_tags(&probe, &req, &prepared)? {
            return Ok((prepared, known, None));
        }
        let empty = probe.raw_tags().is_ok_and(|t| t.is_empty());
        Ok((prepared, known, Some(Early { empty })))
    }
}

/// Where the early uploads go.
#[derive(Clone, Copy)]
pub(super) struct Destination<'a> {
    pub repo: &'a Repository,
    /// Where the announced blobs are.
    pub layout: &'a Layout,
    /// Layers uploaded while they were compressed (confirmed before the file is pushed instead).
    pub streams: Option<&'a LayerStreams>,
    /// Upload without asking the registry first: a repository without tags holds no image, so at most the
    /// leftovers of an interrupted push, and a HEAD per blob would cost a round trip each to save nothing.
    pub skip_head: bool,
}

/// Run `build` with `jobs` upload threads pushing every blob it announces to `to` (none without a destination).
/// Returns what `build` returned and the blobs the registry did not have (digest, size).
pub(super) fn with_uploads<T>(
    to: Option<Destination<'_>>,
    jobs: usize,
    report: &Report,
    build: impl FnOnce(Option<&Finished>) -> T,
) -> (T, Vec<(Digest, u64)>) {
    let Some(to) = to else {
        return (build(None), Vec::new());
    };
    let (tx, rx) = mpsc::channel::<Job>();
    let finished = Finished {
        tx,
        layers: AtomicUsize::new(0),
        opened: AtomicBool::new(false),
    };
    let (queue, sessions) = (Mutex::new(rx), Ahead::default());
    std::thread::scope(|s| {
        // Several uploads at once (`--jobs`): with a split directory, layers finish faster than one connection
        // pushes them through the registry's POST + PUT round trips.
        let (queue, sessions) = (&queue, &sessions);
        let uploaders: Vec<_> = (0..jobs.max(1))
            .map(|_| s.spawn(move || upload_all(to, queue, sessions, report)))
            .collect();
        let built = build(Some(&finished));
        drop(finished);
        let pushed = uploaders
            .into_iter()
            .flat_map(|u| u.join().unwrap_or_default())
            .collect();
        for session in sessions.leftovers() {
            to.repo.cancel_session(session);
        }
        (built, pushed)
    })
}

/// Where finished blobs are announced for an early push.
pub(super) struct Finished {
    tx: mpsc::Sender<Job>,
    /// Layers compressed by this build (not from the layer cache) and announced.
    layers: AtomicUsize,
    /// The config's upload session was asked for ([`Finished::compressing`]).
    opened: AtomicBool,
}

impl Finished {
    /// A layer is about to be compressed: the image's config will be new too, and it is known only once the last
    /// layer is. The first call has an upload thread open a session for it now ([`OpenSession`]), while the
    /// layers compress. (One for every layer of a cold push into a new repository made no difference: there the
    /// registry shares the cores with compression, and a `POST` costs it the same early or late — `small`, 20
    /// runs: 197 vs 192 ms.)
    pub fn compressing(&self) {
        if !self.opened.swap(true, Ordering::Relaxed) {
            let _ = self.tx.send(Job::Open);
        }
    }

    pub fn layer(&self, digest: &Digest, size: u64) {
        self.layers.fetch_add(1, Ordering::Relaxed);
        self.send(digest, size, true);
    }

    /// An image's config: asked for with a HEAD only if every layer came from the cache. A layer built anew
    /// means new content, and a new config: a HEAD would cost a round trip to learn what is known.
    pub fn config(&self, digest: &Digest, size: u64) {
        let built = self.layers.load(Ordering::Relaxed);
        self.send(digest, size, built == 0);
    }

    fn send(&self, digest: &Digest, size: u64, head: bool) {
        // The uploaders may be gone (a failed build): the publish pushes what is missing.
        let _ = self.tx.send(Job::Blob(EarlyBlob {
            digest: digest.clone(),
            size,
            head,
        }));
    }
}

/// Upload sessions opened ahead ([`Finished::compressing`]), and how many are being opened.
#[derive(Default)]
struct Ahead {
    state: Mutex<(Vec<OpenSession>, usize)>,
    changed: Condvar,
}

impl Ahead {
    fn begin(&self) {
        self.state.lock().expect("sessions ahead").1 += 1;
    }

    /// Open the session counted by [`Ahead::begin`]. Failing to open one costs nothing: the blob then opens its
    /// own. Counted down however it ends (a panic included), so no upload waits for a session that cannot come.
    fn open(&self, repo: &Repository) {
        struct Done<'a>(&'a Ahead, Option<OpenSession>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                st.1 -= 1;
                st.0.extend(self.1.take());
                self.0.changed.notify_all();
            }
        }
        let mut done = Done(self, None);
        done.1 = repo.open_session().ok();
    }

    /// A session for the next upload: one opened ahead, waiting for one being opened (its `POST` is under way, so
    /// it is ready sooner than a new one would be), or none.
    fn take(&self) -> Option<OpenSession> {
        let mut st = self.state.lock().expect("sessions ahead");
        while st.0.is_empty() && st.1 > 0 {
            st = self.changed.wait(st).expect("sessions ahead");
        }
        st.0.pop()
    }

    fn leftovers(&self) -> Vec<OpenSession> {
        std::mem::take(&mut self.state.lock().expect("sessions ahead").0)
    }
}

/// Work for the upload threads.
enum Job {
    Blob(EarlyBlob),
    /// Open an upload session for a blob to come.
    Open,
}

/// A finished blob for the upload threads.
struct EarlyBlob {
    digest: Digest,
    size: u64,
    /// Ask the registry before uploading.
    head: bool,
}

/// One upload thread: push blobs until the queue closes; the ones the registry did not have.
fn upload_all(
    to: Destination<'_>,
    queue: &Mutex<mpsc::Receiver<Job>>,
    sessions: &Ahead,
    report: &Report,
) -> Vec<(Digest, u64)> {
    let mut done = Vec::new();
    loop {
        let next = {
            let q = queue.lock().expect("early upload queue");
            let next = q.recv();
            // Counted before the queue is released: a blob queued after it waits for this session.
            if let Ok(Job::Open) = next {
                sessions.begin();
            }
            next
        };
        let EarlyBlob { digest, size, head } = match next {
            Ok(Job::Blob(b)) => b,
            Ok(Job::Open) => {
                sessions.open(to.repo);
                continue;
            }
            Err(_) => break,
        };
        // A failure here is not the build's: the publish pushes whatever is missing, with retries.
        let streamed = to.streams.is_some_and(|s| s.wait(&digest));
        let path = to.layout.blob_path(&digest);
        let upload = || {
            to.repo
                .upload_blob_in(sessions.take(), &digest, size, &path)
                .is_ok()
        };
        let pushed = || match to.skip_head || !head {
            true => upload(),
            false => match to.repo.blob_exists(&digest) {
                Ok(None) => upload(),
                _ => false,
            },
        };
        if streamed || pushed() {
            report.step(format_args!(
                "blob {} uploaded while building",
                digest.short()
            ));
            done.push((digest, size));
        }
    }
    done
}
