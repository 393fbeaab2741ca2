//! A built image's supply-chain documents — its SBOM (`sbom`) and SLSA provenance (`provenance`) — attached to it
//! as OCI 1.1 referrers (`referrers`), never inside it: the image's digest depends on its content only, so an
//! unchanged rebuild still reuses its version.
//!
//! Each platform's manifest gets the SBOM of the files kiln put in its layers; the root (the manifest, or the
//! index of a multi-platform image) gets the provenance. A subject that already has a document of a kind (an
//! unchanged rebuild reusing its version) gets none again, and then nothing is generated: no file is hashed.

mod files;
mod prior;

pub(crate) use files::Collected;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use crate::base::{BaseSource, LoadedBase};
use crate::cache::LayerCache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{ANNOTATION_CREATED, Json, PlatformSpec, Root, rfc3339};
use crate::provenance::{self, ProvenanceInput, Subject};
use crate::referrers::{
    self, Artifact, AttachOptions, Attached, How, PROVENANCE_TYPES, SBOM_TYPES,
};
use crate::registry::Repository;
use crate::sbom::{self, BaseImage, SbomFormat, SbomInput};
use crate::store::Layout;
use crate::walk::Entry;

/// The least read-back wait for a referrers tag (3x the read-and-write otherwise, as for versions). Shorter than
/// a version's floor (`publish::SETTLE_FLOOR`, 100 ms) because losing this race costs less: two builds of the very
/// same image at once, and a document one of them attached goes unlisted — which `kiln inspect` shows and the next
/// build of that image repairs (it attaches each kind of document the image lacks) — never two processes
/// printing one version. A version's wait runs beside it on a versioned publish; with `--tag` it is the only one.
const REFERRERS_SETTLE_FLOOR: std::time::Duration = std::time::Duration::from_millis(20);

/// What `kiln build` was asked to attach.
#[derive(Debug, Clone)]
pub struct AttestRequest {
    /// `--sbom spdx|cyclonedx|none`.
    pub sbom: Option<SbomFormat>,
    /// `--sbom-file PATH`: the SBOM written here too (one file per platform: `PATH.<os>-<arch>` when several).
    pub sbom_file: Option<PathBuf>,
    /// `--provenance slsa|none`.
    pub provenance: bool,
    /// When the run started (provenance `startedOn`).
    pub started: SystemTime,
}

impl Default for AttestRequest {
    fn default() -> Self {
        AttestRequest {
            sbom: Some(SbomFormat::Spdx),
            sbom_file: None,
            provenance: true,
            started: SystemTime::now(),
        }
    }
}

impl AttestRequest {
    pub fn any(&self) -> bool {
        self.sbom.is_some() || self.provenance
    }

    /// The one rule for `--provenance` and kiln.toml's `provenance`: `slsa` (the default) or `none`.
    pub fn parse_provenance(s: &str) -> Result<bool> {
        match s {
            "slsa" => Ok(true),
            "none" => Ok(false),
            _ => Err(Error::invalid_arg(
                "--provenance",
                s,
                "expected slsa or none",
            )),
        }
    }
}

/// One platform's image and what went into its layers.
pub(crate) struct PlatformInputs<'a> {
    pub platform: PlatformSpec,
    pub manifest: &'a Json<ImageManifest>,
    pub sources: Vec<&'a [Entry]>,
    pub base: Option<&'a LoadedBase>,
}

/// Everything needed to write and attach the documents of one build.
pub(crate) struct Attest<'a> {
    pub request: &'a AttestRequest,
    /// The image's name in documents: `registry/repo`, or the layout's path.
    pub name: String,
    pub images: Vec<PlatformInputs<'a>>,
    /// The image's creation time (SOURCE_DATE_EPOCH): the SBOM's, so the same input gives the same document.
    pub created: u64,
    /// The layer cache directory, where file digests are remembered (`None`: `--no-cache`).
    pub cache: Option<PathBuf>,
    /// The tag policy's settle floor, for the referrers tag's read-back.
    pub settle: std::time::Duration,
    /// The build directory (its git repository goes into the provenance).
    pub build_dir: &'a std::path::Path,
    /// The settings the build ran with, for the provenance's `externalParameters` (secrets are masked there).
    pub parameters: serde_json::Value,
    /// File digests the layer writer computed in this run.
    pub collected: &'a Collected,
}

/// The documents to attach, by subject.
pub(crate) struct Planned(Vec<(Descriptor, Vec<Artifact>)>);

/// Where the documents go.
pub(crate) enum Dest<'a> {
    Registry(&'a Repository),
    Layout(&'a Layout),
    /// Nowhere but `--sbom-file` (a docker-archive holds no referrers).
    None,
}

impl Attest<'_> {
    /// Write `--sbom-file` and attach the documents `root` lacks in `dest`. Returns what was attached.
    pub fn run(&self, root: &Root, dest: Dest<'_>, report: &Report) -> Result<Vec<Attached>> {
        let planned = self.documents(root, &dest, report)?;
        self.attach(planned, &dest, report)
    }

    /// Write `--sbom-file` and the documents `root` lacks in `dest` (reads only: a registry build writes them
    /// while its publish checks its tags).
    pub fn documents(&self, root: &Root, dest: &Dest<'_>, report: &Report) -> Result<Planned> {
        let req = self.request;
        // One listing and one attach per subject: on a registry without the referrers API, each attach is a
        // read-modify-write of the subject's referrers tag, with its own read-back wait.
        let mut work: Vec<(Descriptor, Vec<Artifact>)> = Vec::new();
        let root_present = listed(dest, &root.digest)?;
        let nowhere = matches!(dest, Dest::None);
        let want_provenance = req.provenance
            && !nowhere
            && referrers::pick(&root_present, &PROVENANCE_TYPES).is_none();
        // git answers (five processes, ~25 ms) while the files are hashed.
        std::thread::scope(|s| {
            let git = want_provenance.then(|| s.spawn(|| provenance::git_source(self.build_dir)));
            self.sbom_documents(root, dest, &root_present, &mut work, report)?;
            if let Some(git) = git {
                let git = git.join().expect("reading git panicked");
                let artifact = self.provenance(root, git)?;
                let subject = root.descriptor()?;
                match work
                    .iter_mut()
                    .find(|(d, _)| d.digest() == subject.digest())
                {
                    Some((_, list)) => list.push(artifact),
                    None => work.push((subject, vec![artifact])),
                }
            }
            Ok::<_, Error>(())
        })?;
        Ok(Planned(work))
    }

    /// Each platform's SBOM that `dest` lacks (and `--sbom-file`), into `work`.
    fn sbom_documents(
        &self,
        root: &Root,
        dest: &Dest<'_>,
        root_present: &[Descriptor],
        work: &mut Vec<(Descriptor, Vec<Artifact>)>,
        report: &Report,
    ) -> Result<()> {
        let req = self.request;
        let nowhere = matches!(dest, Dest::None);
        for img in &self.images {
            let Some(format) = req.sbom else { break };
            if nowhere && req.sbom_file.is_none() {
                break;
            }
            let present = match img.manifest.digest == root.digest {
                true => root_present.to_vec(),
                false => listed(dest, &img.manifest.digest)?,
            };
            let has_sbom = referrers::pick(&present, &SBOM_TYPES).is_some();
            if has_sbom && req.sbom_file.is_none() {
                continue;
            }
            let bytes = self.sbom(format, img, dest, report)?;
            if let Some(path) = &req.sbom_file {
                let path = match self.images.len() {
                    1 => path.clone(),
                    _ => PathBuf::from(format!(
                        "{}.{}",
                        path.display(),
                        img.platform.to_string().replace('/', "-")
                    )),
                };
                crate::fsx::write_atomic(
                    &path,
                    &bytes,
                    crate::fsx::WriteOptions::default().follow_symlinks(true),
                )
                .map_err(|e| e.context(format!("writing the SBOM to {}", path.display())))?;
            }
            if !has_sbom {
                work.push((
                    manifest_descriptor(img.manifest)?,
                    vec![Artifact {
                        artifact_type: format.media_type().to_string(),
                        blob_media_type: format.media_type().to_string(),
                        bytes,
                        annotations: created(self.created),
                    }],
                ));
            }
        }
        Ok(())
    }

    /// Attach what [`Attest::documents`] planned.
    pub fn attach(
        &self,
        planned: Planned,
        dest: &Dest<'_>,
        report: &Report,
    ) -> Result<Vec<Attached>> {
        let opts = AttachOptions {
            skip_types_present: true,
            settle: REFERRERS_SETTLE_FLOOR.min(self.settle),
            ..AttachOptions::default()
        };
        let work = planned.0;
        // Subjects at once: each one's referrers tag has its own read-back wait.
        let results: Vec<Result<Vec<Attached>>> = std::thread::scope(|s| {
            let handles: Vec<_> = work
                .iter()
                .map(|(subject, artifacts)| {
                    let opts = &opts;
                    s.spawn(move || attach(dest, subject, artifacts, opts, report))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("attaching a referrer panicked"))
                .collect()
        });
        let mut attached = Vec::new();
        for r in results {
            attached.extend(r?);
        }
        for a in &attached {
            let how = match &a.how {
                How::Api => "through the referrers API".to_string(),
                How::FallbackTag(t) => format!("listed in tag {t}"),
                How::Layout => "in the layout's index".to_string(),
                How::AlreadyPresent => continue,
            };
            report.step(format_args!(
                "attached {} {} ({how})",
                a.artifact_type,
                a.manifest.short()
            ));
        }
        Ok(attached)
    }

    fn sbom(
        &self,
        format: SbomFormat,
        img: &PlatformInputs<'_>,
        dest: &Dest<'_>,
        report: &Report,
    ) -> Result<Vec<u8>> {
        let cache = self.cache.clone().map(LayerCache::new);
        let scope = format!("{} {}", self.name, img.platform);
        let repo: Option<&Repository> = match dest {
            Dest::Registry(r) => Some(r),
            _ => None,
        };
        let prior = |m: &Digest| repo.and_then(|r| prior::sbom_digests(r, m));
        let (files, from_sboms) =
            files::file_records(&img.sources, cache.as_ref(), &scope, self.collected, &prior)?;
        let base = img.base.map(|b| BaseImage {
            reference: b.base.name.clone(),
            digest: b.base.manifest.digest.clone(),
            sbom: base_sbom(b),
        });
        let generated = sbom::generate_report(
            format,
            &SbomInput {
                name: &self.name,
                subject: &img.manifest.digest,
                files: &files,
                base: base.as_ref(),
                created: self.created,
                tool_version: env!("CARGO_PKG_VERSION"),
            },
        )?;
        for w in &generated.warnings {
            report.debug(format_args!("SBOM: {w}"));
        }
        let reused = match from_sboms {
            0 => String::new(),
            n => format!(" ({n} digests from the SBOM of the image their layer came from)"),
        };
        report.step(format_args!(
            "SBOM of {}: {} files{reused}, {} packages",
            img.manifest.digest.short(),
            files.len(),
            generated.packages
        ));
        Ok(generated.bytes)
    }

    fn provenance(&self, root: &Root, git: Option<provenance::GitSource>) -> Result<Artifact> {
        let mut subjects = vec![Subject {
            name: self.name.clone(),
            digest: root.digest.clone(),
        }];
        if self.images.len() > 1 {
            subjects.extend(self.images.iter().map(|i| Subject {
                name: format!("{}@{}", self.name, i.platform),
                digest: i.manifest.digest.clone(),
            }));
        }
        let base = self
            .images
            .first()
            .and_then(|i| i.base)
            .map(|b| (b.base.name.clone(), b.base.manifest.digest.clone()));
        let finished = SystemTime::now();
        let env = |k: &str| std::env::var(k).ok();
        let bytes = provenance::generate(&ProvenanceInput {
            subjects: &subjects,
            parameters: self.parameters.clone(),
            base,
            git,
            started: self.request.started,
            finished,
            env: &env,
            tool_version: env!("CARGO_PKG_VERSION"),
        })?;
        let secs = finished
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut annotations = created(secs);
        annotations.insert(
            provenance::ANNOTATION_PREDICATE_TYPE.to_string(),
            provenance::PREDICATE_TYPE.to_string(),
        );
        Ok(Artifact {
            artifact_type: provenance::ARTIFACT_TYPE.to_string(),
            blob_media_type: provenance::MEDIA_TYPE.to_string(),
            bytes,
            annotations,
        })
    }
}

fn created(secs: u64) -> BTreeMap<String, String> {
    [(ANNOTATION_CREATED.to_string(), rfc3339(secs))].into()
}

fn manifest_descriptor(m: &Json<ImageManifest>) -> Result<Descriptor> {
    crate::image::descriptor(MediaType::ImageManifest, &m.digest, m.bytes.len())
}

/// The referrers `subject` has in `dest` (none for a destination that holds none).
fn listed(dest: &Dest<'_>, subject: &Digest) -> Result<Vec<Descriptor>> {
    match dest {
        Dest::Registry(r) => referrers::list_registry(r, subject, &[]),
        Dest::Layout(l) => referrers::list_layout(l, subject, &[]),
        Dest::None => Ok(Vec::new()),
    }
}

fn attach(
    dest: &Dest<'_>,
    subject: &Descriptor,
    artifacts: &[Artifact],
    opts: &AttachOptions,
    report: &Report,
) -> Result<Vec<Attached>> {
    match dest {
        Dest::Registry(r) => referrers::attach_registry(r, subject, artifacts, opts, report),
        Dest::Layout(l) => referrers::attach_layout(l, subject, artifacts, opts),
        Dest::None => Ok(Vec::new()),
    }
}

/// The base's own SBOM referrer, when its registry lists one (a failure to ask only leaves the link out).
fn base_sbom(b: &LoadedBase) -> Option<Digest> {
    let listed = match &b.source {
        BaseSource::Registry { repo, .. } => {
            referrers::list_registry(repo, &b.base.manifest.digest, &SBOM_TYPES).ok()?
        }
        BaseSource::Layout(l) => {
            referrers::list_layout(l, &b.base.manifest.digest, &SBOM_TYPES).ok()?
        }
    };
    let d = referrers::pick(&listed, &SBOM_TYPES)?;
    Digest::from_oci(d.digest()).ok()
}

/// An error for documents that could not be attached to a published image: it says the image is there.
pub(crate) fn attach_failed(published: &str, e: Error) -> Error {
    e.context(format!(
        "{published} was published, but its SBOM/provenance could not be attached; rerun the build to attach \
         them (an unchanged rebuild reuses the version), or pass --sbom none --provenance none"
    ))
}
