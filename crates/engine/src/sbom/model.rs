//! The values an SBOM is made from: the files kiln put in its layers (hashed by the layer writer), the base image,
//! and the packages found in those files. Kept apart from the detectors and the writers so that each of them
//! depends on this file only.

use std::path::PathBuf;

use crate::digest::Digest;

/// One regular file kiln added to the image, as the layer writer hashed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// The absolute path in the image, e.g. `/app/bin/hello`.
    pub path: String,
    pub size: u64,
    pub sha256: Digest,
    /// SPDX 2.3 requires a SHA1 checksum for every file; the layer writer computes it in the same pass.
    pub sha1: [u8; 20],
    /// The file on disk it was read from: detectors open this, never the layer.
    pub source: PathBuf,
}

/// The files in path order, one per path: the order everything in a document follows, whatever order the layer
/// writer hashed them in, and sorted once so that lookups by path are binary searches.
pub fn sorted(files: &[FileRecord]) -> Vec<&FileRecord> {
    let mut v: Vec<&FileRecord> = files.iter().collect();
    // kiln's walk yields paths in order already: checking is one comparison a file, sorting ~15.
    if !v.is_sorted_by(|a, b| a.path <= b.path) {
        v.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    }
    v.dedup_by(|a, b| a.path == b.path);
    v
}

/// The index of the file at `path` in [`sorted`] files.
pub fn find(sorted: &[&FileRecord], path: &str) -> Option<usize> {
    sorted.binary_search_by(|f| f.path.as_str().cmp(path)).ok()
}

/// The image this one is built on: one dependency by digest, its contents are its own SBOM's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// As the user named it, e.g. `docker.io/library/debian:12`.
    pub reference: String,
    /// The base's manifest digest (the platform's manifest, not an index).
    pub digest: Digest,
    /// The base's own SBOM referrer manifest, when it has one.
    pub sbom: Option<Digest>,
}

/// Everything `generate` needs. `created` is SOURCE_DATE_EPOCH (or 0): the document carries no clock of its own.
#[derive(Clone, Copy, Debug)]
pub struct SbomInput<'a> {
    /// The image repository name, e.g. `registry.example/team/app`.
    pub name: &'a str,
    /// The image manifest digest the SBOM describes.
    pub subject: &'a Digest,
    pub files: &'a [FileRecord],
    pub base: Option<&'a BaseImage>,
    /// Unix seconds.
    pub created: u64,
    pub tool_version: &'a str,
}

/// Which package world a package is from; decides its purl type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    Npm,
    PyPi,
    Golang,
    Cargo,
    Maven,
}

impl Ecosystem {
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::PyPi => "pypi",
            Ecosystem::Golang => "golang",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Maven => "maven",
        }
    }
}

/// How a file shows that a package is there; decides the SPDX relationship and the CycloneDX occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EvidenceKind {
    /// The file is part of the installed package (`node_modules/x/package.json`, a dist-info's METADATA and the
    /// files its RECORD lists): the package CONTAINS the file.
    Member,
    /// The package is built into the file (a Go or Rust binary, a jar): the file CONTAINS the package.
    Embedded,
    /// The file is a lock file that lists the package (`package-lock.json`, `Cargo.lock`).
    Lockfile,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Evidence {
    /// The file's path in the image (a [`FileRecord::path`]).
    pub path: String,
    pub kind: EvidenceKind,
}

/// One package found in the files. Identity is the purl: the same package seen through several files (its
/// package.json and a lock file) is one package with several pieces of evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub ecosystem: Ecosystem,
    /// As the ecosystem spells it: `@scope/name`, `group:artifact` for Maven, the module path for Go.
    pub name: String,
    /// None when the metadata has none (a Go main module built outside version control says `(devel)`).
    pub version: Option<String>,
    pub purl: String,
    /// The license as the metadata declares it (not yet checked as an SPDX expression; the writers do that).
    pub license: Option<String>,
    /// Sorted, without duplicates.
    pub evidence: Vec<Evidence>,
}

/// What detection found, and what it skipped and why (malformed metadata is not an error: the SBOM is written
/// without it, and the caller may show the warnings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    /// Sorted by purl.
    pub packages: Vec<Package>,
    /// One line per skipped file, naming it.
    pub warnings: Vec<String>,
}

/// A generated document with the detector's warnings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub bytes: Vec<u8>,
    pub packages: usize,
    pub warnings: Vec<String>,
}
