//! What kiln says: results on stdout (one reference per tag, or one JSON object), progress and logs on stderr.

use std::fmt;
use std::io::Write;

use oci_spec::image::ImageManifest;
use serde::Serialize;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cli::{OutputFormat, ProgressArg};
use crate::commands::tagging::Tagged;
use crate::progress::{Live, Mode, Task, human_bytes, human_duration};
use kiln_engine::digest::Digest;
use kiln_engine::image::{Json, PlatformSpec, Root};
use kiln_engine::tag::Tag;

/// Logging and progress on stderr (never on stdout): live bars on a terminal, else one plain line per finished
/// step; notes (decisions, warnings) in every mode but `-q`; a summary at the end. Cheap to clone, shared by
/// threads.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub quiet: bool,
    pub verbose: u8,
    mode: Mode,
    live: Option<Live>,
    start: Instant,
    summary: Arc<Mutex<Summary>>,
}

/// What a build/push did, for the closing summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub layers_built: usize,
    pub layers_reused: usize,
    pub tar_bytes: u64,
    pub blob_bytes: u64,
    pub compression: Option<String>,
    pub pushed_to: Option<String>,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub existing: usize,
    pub mounted: usize,
}

impl Default for Reporter {
    /// Plain lines, as in CI.
    fn default() -> Self {
        Reporter::new(false, 0, ProgressArg::Plain)
    }
}

impl Reporter {
    pub fn new(quiet: bool, verbose: u8, progress: ProgressArg) -> Self {
        let mode = Mode::resolve(progress, quiet);
        Reporter {
            quiet,
            verbose,
            mode,
            live: (mode == Mode::Live).then(Live::new),
            start: Instant::now(),
            summary: Arc::new(Mutex::new(Summary::default())),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn line(&self, msg: fmt::Arguments<'_>) {
        match &self.live {
            Some(l) => l.println(&format!("kiln: {msg}")),
            None => eprintln!("kiln: {msg}"),
        }
    }

    /// A finished step (`walked DIR`, `layer … built`, `blob … uploaded`): a line in plain and live modes.
    pub fn step(&self, msg: fmt::Arguments<'_>) {
        if self.mode != Mode::Silent {
            self.line(msg);
        }
    }

    /// A decision or warning the user should see even without progress (`--progress none`); not with `-q`.
    pub fn note(&self, msg: fmt::Arguments<'_>) {
        if !self.quiet {
            self.line(msg);
        }
    }

    pub fn debug(&self, msg: fmt::Arguments<'_>) {
        if self.verbose > 0 && !self.quiet {
            self.line(msg);
        }
    }

    /// A live spinner (nothing unless live).
    pub fn spinner(&self, msg: impl FnOnce() -> String) -> Task {
        self.live
            .as_ref()
            .map_or_else(Task::none, |l| l.spinner(msg()))
    }

    /// A live byte bar of `total` bytes (nothing unless live).
    pub fn bytes(&self, msg: impl FnOnce() -> String, total: u64) -> Task {
        self.live
            .as_ref()
            .map_or_else(Task::none, |l| l.bytes(msg(), total))
    }

    /// Record what was done, for [`Reporter::summary`].
    pub fn record(&self, f: impl FnOnce(&mut Summary)) {
        f(&mut self.summary.lock().expect("summary lock"));
    }

    /// The closing summary of a build or push (not with `-q`): layers and sizes, the push, the version and why,
    /// the wall time.
    pub fn summary(&self, p: &Published) {
        if self.quiet {
            return;
        }
        let s = self.summary.lock().expect("summary lock").clone();
        let layers = s.layers_built + s.layers_reused;
        if layers > 0 {
            let ratio = if s.tar_bytes > 0 {
                format!(
                    " ({:.0}%)",
                    100.0 * s.blob_bytes as f64 / s.tar_bytes as f64
                )
            } else {
                String::new()
            };
            self.line(format_args!(
                "summary: {layers} layer{} ({} compressed, {} unchanged from the layer cache): {} of tar -> {} {}{ratio}",
                if layers == 1 { "" } else { "s" },
                s.layers_built,
                s.layers_reused,
                human_bytes(s.tar_bytes),
                human_bytes(s.blob_bytes),
                s.compression.as_deref().unwrap_or(""),
            ));
        }
        if let Some(to) = &s.pushed_to {
            self.line(format_args!(
                "summary: pushed to {to}: {} blob{} uploaded ({}), {} already there (skipped), {} mounted",
                s.uploaded,
                if s.uploaded == 1 { "" } else { "s" },
                human_bytes(s.uploaded_bytes),
                s.existing,
                s.mounted
            ));
        }
        match (&p.version, &p.why) {
            (Some(v), Some(why)) => self.line(format_args!("summary: version {v}: {why}")),
            (Some(v), None) => self.line(format_args!("summary: version {v}")),
            _ => {}
        }
        self.line(format_args!(
            "summary: published {} in {}",
            p.deploy_reference(),
            human_duration(self.start.elapsed())
        ));
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerOut {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// The result of publishing one image.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// `oci:PATH` or `host/repo`, without tag.
    pub repository: String,
    pub digest: Digest,
    /// The unique version chosen for this build (also the first of `tags`).
    pub version: Option<Tag>,
    /// True when `version` already pointed at this image (an unchanged rebuild is not a new release).
    pub reused: bool,
    /// Why this version (`next after v41`, `reused: …`), for the summary on stderr.
    #[serde(skip)]
    pub why: Option<String>,
    pub tags: Vec<Tag>,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub layers: Vec<LayerOut>,
    pub platform: String,
    /// Manifest digest per platform (`os/arch[/variant]` → digest).
    pub platforms: std::collections::BTreeMap<String, Digest>,
    /// `repository:tag@digest` per tag (or `repository@digest`), the lines text output prints.
    pub references: Vec<String>,
}

impl Published {
    /// The result of publishing `root` (a manifest, or an index over `images`) under `tagged`'s tags.
    pub fn new(
        repository: String,
        tagged: &Tagged,
        root: &Root,
        images: &[(PlatformSpec, &Json<ImageManifest>)],
    ) -> Self {
        let digest = root.digest.clone();
        let tags = tagged.tags.clone();
        let references = if tags.is_empty() {
            vec![format!("{repository}@{digest}")]
        } else {
            tags.iter()
                .map(|t| format!("{repository}:{t}@{digest}"))
                .collect()
        };
        // The layers of a single-platform image (an index's are per platform: see `platforms`).
        let layers = match images {
            [(_, m)] => m
                .value
                .layers()
                .iter()
                .map(|l| LayerOut {
                    digest: Digest::from_oci(l.digest()).expect("we only write sha256 layers"),
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        Published {
            layers,
            repository,
            platforms: images
                .iter()
                .map(|(p, m)| (p.to_string(), m.digest.clone()))
                .collect(),
            digest,
            version: tagged.version.clone(),
            reused: tagged.reused,
            why: tagged.why.clone(),
            tags,
            media_type: root.media_type.to_string(),
            size: root.bytes.len() as u64,
            platform: images
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            references,
        }
    }

    pub fn print(&self, format: OutputFormat) {
        let mut out = std::io::stdout().lock();
        let _ = match format {
            OutputFormat::Text => self
                .references
                .iter()
                .try_for_each(|r| writeln!(out, "{r}")),
            OutputFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string(self).expect("serializable")
            ),
        };
    }

    /// The reference to deploy: the version's (first line of the text output).
    pub fn deploy_reference(&self) -> &str {
        &self.references[0]
    }

    /// `--ref-file PATH`: the deploy reference and a newline, for later CI steps (written atomically).
    pub fn write_ref_file(&self, path: &std::path::Path) -> kiln_engine::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".kiln-tmp");
        std::fs::write(&tmp, format!("{}\n", self.deploy_reference()))
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| kiln_engine::Error::io(path, e))
    }
}

/// The registry client's `-v`/`-vv` request log as kiln printed it before the engine had events: each line straight
/// to stderr with the `kiln: ` prefix, whatever `-q` or the progress mode say. A stand-in until [`Reporter`]
/// implements the engine's `Events`.
struct VerboseLog(u8);

impl kiln_engine::events::Events for VerboseLog {
    fn enabled(&self, level: kiln_engine::events::Level) -> bool {
        use kiln_engine::events::Level;
        match level {
            Level::Debug => self.0 > 0,
            Level::Trace => self.0 > 1,
            Level::Step | Level::Note => false,
        }
    }

    fn message(&self, _: kiln_engine::events::Level, msg: fmt::Arguments<'_>) {
        eprintln!("kiln: {msg}");
    }

    fn bar(&self, _: String, _: Option<u64>) -> Option<Arc<dyn kiln_engine::events::Bar>> {
        None
    }
}

/// A report for `ClientOptions::report` logging requests at `-v` (`verbose` 1) and headers at `-vv` (2).
pub fn verbose_log(verbose: u8) -> kiln_engine::events::Report {
    kiln_engine::events::Report::new(Arc::new(VerboseLog(verbose)))
}
