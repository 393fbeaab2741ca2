//! The file digests an image's own SBOM lists, for the files of layers a build took from the registry by diff_id
//! (`publish::known_layers`): an equal diff_id means the same tar, so the same files with the same bytes, and a
//! runner without a cache need not read them again to describe them. The SBOM is trusted as much as the layer it
//! describes: both are the repository's own (see README, *Fresh runners*).

use std::collections::HashMap;

use oci_spec::image::ImageManifest;
use serde_json::Value;

use super::files::Digests;
use crate::digest::Digest;
use crate::referrers::{self, SBOM_TYPES};
use crate::registry::Repository;

/// SBOM documents bigger than this are not read (a 20 000-file image's SPDX document is ~9 MB).
const MAX_SBOM: u64 = 256 << 20;

/// `manifest`'s SBOM's files by path in the image (`/app/x`), with both digests; `None` when it has no SBOM kiln
/// can read (any failure only means the files are hashed instead).
pub fn sbom_digests(repo: &Repository, manifest: &Digest) -> Option<HashMap<String, Digests>> {
    let listed = referrers::list_registry(repo, manifest, &SBOM_TYPES).ok()?;
    let artifact = referrers::pick(&listed, &SBOM_TYPES)?;
    let raw = repo
        .get_manifest(&Digest::from_oci(artifact.digest()).ok()?.to_string())
        .ok()?;
    let m: ImageManifest = serde_json::from_slice(&raw.bytes).ok()?;
    let layer = m.layers().first().filter(|l| l.size() <= MAX_SBOM)?;
    let mut bytes = Vec::new();
    repo.get_blob(
        &Digest::from_oci(layer.digest()).ok()?,
        layer.size(),
        &mut bytes,
    )
    .ok()?;
    parse(&serde_json::from_slice(&bytes).ok()?)
}

/// The files of an SPDX 2.3 or CycloneDX 1.6 document as kiln writes them (every file with SHA-1 and SHA-256).
fn parse(doc: &Value) -> Option<HashMap<String, Digests>> {
    let mut out = HashMap::new();
    if doc.get("spdxVersion").is_some() {
        for f in doc.get("files")?.as_array()? {
            // SPDX names files relative to the package root: `./app/x`.
            let path = f.get("fileName")?.as_str()?.strip_prefix('.')?;
            let sums = f.get("checksums")?.as_array()?;
            let find = |alg: &str| {
                sums.iter()
                    .find(|c| c.get("algorithm").and_then(Value::as_str) == Some(alg))
                    .and_then(|c| c.get("checksumValue")?.as_str())
            };
            if let Some(d) = digests(find("SHA256"), find("SHA1")) {
                out.insert(path.to_string(), d);
            }
        }
    } else if doc.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        for c in doc.get("components")?.as_array()? {
            if c.get("type").and_then(Value::as_str) != Some("file") {
                continue;
            }
            let path = c.get("name")?.as_str()?;
            let hashes = c.get("hashes")?.as_array()?;
            let find = |alg: &str| {
                hashes
                    .iter()
                    .find(|h| h.get("alg").and_then(Value::as_str) == Some(alg))
                    .and_then(|h| h.get("content")?.as_str())
            };
            if let Some(d) = digests(find("SHA-256"), find("SHA-1")) {
                out.insert(path.to_string(), d);
            }
        }
    } else {
        return None;
    }
    Some(out)
}

fn digests(sha256: Option<&str>, sha1: Option<&str>) -> Option<Digests> {
    let sha256: Digest = format!("sha256:{}", sha256?).parse().ok()?;
    let sha1: [u8; 20] = hex::decode(sha1?).ok()?.try_into().ok()?;
    Some((sha256, sha1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::{self, FileRecord, SbomFormat, SbomInput};

    /// What kiln writes, kiln reads back: both formats.
    #[test]
    fn reads_back_what_the_writers_write() {
        let files = vec![FileRecord {
            path: "/app/x.js".into(),
            size: 3,
            sha256: Digest::of(b"abc"),
            sha1: [7; 20],
            source: "/nonexistent".into(),
        }];
        let subject = Digest::of(b"image");
        for format in [SbomFormat::Spdx, SbomFormat::CycloneDx] {
            let input = SbomInput {
                name: "r/app",
                subject: &subject,
                files: &files,
                base: None,
                created: 0,
                tool_version: "0",
            };
            let doc: Value =
                serde_json::from_slice(&sbom::generate(format, &input).unwrap()).unwrap();
            let got = parse(&doc).unwrap();
            assert_eq!(
                got.get("/app/x.js"),
                Some(&(Digest::of(b"abc"), [7; 20])),
                "{format:?}"
            );
        }
        assert!(parse(&serde_json::json!({"other": 1})).is_none());
    }
}
