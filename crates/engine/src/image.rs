//! Image config and manifest: built with `oci-spec` types, serialized canonically, and always carried with the
//! exact bytes that were hashed (`Json<T>`), so the digest we print is the digest of what we store or push.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::image::{
    Arch, Config, Descriptor, DescriptorBuilder, History, HistoryBuilder, ImageConfiguration,
    ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, Os, RootFs,
};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
pub use crate::platform::PlatformSpec;

pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// On each layer kiln made: how its blob was compressed (`Compression::encoding`), so that a blob is reused for a
/// tar with the same diff_id only when compressing that tar again would give the same bytes (issue 20).
pub const ANNOTATION_LAYER_ENCODING: &str = "dev.kiln.layer.encoding";

/// A parsed JSON document together with the exact bytes it was read from or written as, and their digest.
#[derive(Debug, Clone)]
pub struct Json<T> {
    pub value: T,
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl<T: Serialize> Json<T> {
    /// Serialize canonically (sorted keys, no whitespace) and hash.
    pub fn encode(value: T) -> Result<Self> {
        let bytes = canonical_json(&value)?;
        let digest = Digest::of(&bytes);
        Ok(Json {
            value,
            bytes,
            digest,
        })
    }
}

impl<T: serde::de::DeserializeOwned> Json<T> {
    /// Parse bytes read from a store; the digest is of these bytes, never of a re-serialization.
    pub fn decode(bytes: Vec<u8>, what: &str) -> Result<Self> {
        let value = serde_json::from_slice(&bytes).map_err(|e| Error::Image {
            what: what.to_string(),
            reason: format!("not a valid document: {e}"),
        })?;
        let digest = Digest::of(&bytes);
        Ok(Json {
            value,
            bytes,
            digest,
        })
    }
}

/// Canonical JSON: object keys sorted byte-wise at every depth, no insignificant whitespace. oci-spec keeps
/// labels, annotations and exposed ports in HashMaps, so plain serde output would change from run to run; going
/// through `serde_json::Value` and writing maps sorted makes the bytes independent of hash order and of whether
/// some crate in the tree turned on serde_json's `preserve_order`.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(value).map_err(|e| Error::Image {
        what: "JSON".into(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(1024);
    write_canonical(&v, &mut out);
    Ok(out)
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push(b'{');
            for (i, (k, val)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Strings serialize infallibly into a Vec.
                serde_json::to_writer(&mut *out, k).expect("string serializes");
                out.push(b':');
                write_canonical(val, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("scalar serializes"),
    }
}

/// Everything the command line says about the image's runtime config. `None`/empty keeps the base's value.
#[derive(Debug, Clone, Default)]
pub struct ConfigSpec {
    pub platform: Option<PlatformSpec>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Merged into the base's env by key; a later value for a key wins.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Vec<(String, String)>,
    /// `PORT/proto`, already validated.
    pub expose: Vec<String>,
    /// Manifest annotations (on top of `created` and the base ones).
    pub annotations: Vec<(String, String)>,
    /// SOURCE_DATE_EPOCH.
    pub created: u64,
}

/// A layer as it appears in the manifest and config.
#[derive(Debug, Clone)]
pub struct LayerRecord {
    pub digest: Digest,
    pub size: u64,
    pub media_type: MediaType,
    pub diff_id: Digest,
    /// For the config's history (what made it).
    pub created_by: String,
    /// `Compression::encoding` of the blob, recorded on its descriptor.
    pub encoding: String,
}

/// What a tag points at: one platform's manifest, or an index of several; with its exact bytes.
#[derive(Debug, Clone)]
pub struct Root {
    pub media_type: MediaType,
    pub bytes: Vec<u8>,
    pub digest: Digest,
    /// The platform, for a single manifest (recorded on its index.json entry).
    pub platform: Option<PlatformSpec>,
}

impl Root {
    pub fn manifest(m: &Json<ImageManifest>, platform: PlatformSpec) -> Self {
        Root {
            media_type: MediaType::ImageManifest,
            bytes: m.bytes.clone(),
            digest: m.digest.clone(),
            platform: Some(platform),
        }
    }

    pub fn index(i: &Json<ImageIndex>) -> Self {
        Root {
            media_type: MediaType::ImageIndex,
            bytes: i.bytes.clone(),
            digest: i.digest.clone(),
            platform: None,
        }
    }

    /// A descriptor of it (with its platform, for a manifest).
    pub fn descriptor(&self) -> Result<Descriptor> {
        let mut d = descriptor(self.media_type.clone(), &self.digest, self.bytes.len())?;
        d.set_platform(self.platform.as_ref().map(PlatformSpec::to_oci));
        Ok(d)
    }
}

/// An OCI image index over one manifest per platform, in the given order.
pub fn build_index(
    images: &[(PlatformSpec, &Json<ImageManifest>)],
    created: u64,
) -> Result<Json<ImageIndex>> {
    let mut manifests = Vec::with_capacity(images.len());
    for (p, m) in images {
        let mut d = descriptor(MediaType::ImageManifest, &m.digest, m.bytes.len())?;
        d.set_platform(Some(p.to_oci()));
        manifests.push(d);
    }
    let ann: std::collections::HashMap<String, String> =
        [(ANNOTATION_CREATED.to_string(), rfc3339(created))].into();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .annotations(ann)
        .build()
        .map_err(image_err("index"))?;
    Json::encode(index)
}

/// A base image: its manifest and config with their bytes, and the name it was given by.
#[derive(Debug, Clone)]
pub struct Base {
    pub name: String,
    pub manifest: Json<ImageManifest>,
    pub config: Json<ImageConfiguration>,
}

/// RFC 3339 UTC (`1970-01-01T00:00:00Z`) for a Unix time, without pulling in a date crate.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The new image config: the base's (or an empty one), our settings applied, our layers appended.
pub fn build_config(
    base: Option<&ImageConfiguration>,
    spec: &ConfigSpec,
    layers: &[LayerRecord],
) -> Result<Json<ImageConfiguration>> {
    let mut cfg = match base {
        Some(b) => b.clone(),
        None => {
            let mut c = ImageConfiguration::default();
            c.set_rootfs(RootFs::default());
            c.set_history(None);
            c
        }
    };
    let platform = spec
        .platform
        .clone()
        .or_else(|| base.map(PlatformSpec::of_config))
        .unwrap_or_else(PlatformSpec::host);
    cfg.set_os(Os::from(platform.os.as_str()));
    cfg.set_architecture(Arch::from(platform.arch.as_str()));
    cfg.set_variant(platform.variant.clone());
    let created = rfc3339(spec.created);
    cfg.set_created(Some(created.clone()));

    let mut rc = cfg.config().clone().unwrap_or_default();
    apply_runtime(&mut rc, spec);
    cfg.set_config(Some(rc));

    let mut rootfs = cfg.rootfs().clone();
    let mut history = cfg.history().clone().unwrap_or_default();
    for l in layers {
        rootfs.diff_ids_mut().push(l.diff_id.to_string());
        history.push(
            HistoryBuilder::default()
                .created(created.clone())
                .created_by(l.created_by.clone())
                .build()
                .map_err(image_err("history"))?,
        );
    }
    cfg.set_rootfs(rootfs);
    cfg.set_history(if history.is_empty() {
        None
    } else {
        Some(history)
    });
    Json::encode(cfg)
}

fn apply_runtime(rc: &mut Config, spec: &ConfigSpec) {
    if let Some(e) = &spec.entrypoint {
        rc.set_entrypoint(Some(e.clone()));
        // Like docker: a new entrypoint drops the base's cmd unless cmd is given too.
        if spec.cmd.is_none() {
            rc.set_cmd(None);
        }
    }
    if let Some(c) = &spec.cmd {
        rc.set_cmd(Some(c.clone()));
    }
    if !spec.env.is_empty() {
        let mut env = rc.env().clone().unwrap_or_default();
        for (k, v) in &spec.env {
            let entry = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |p| p.0) == k)
            {
                Some(slot) => *slot = entry,
                None => env.push(entry),
            }
        }
        rc.set_env(Some(env));
    }
    if let Some(w) = &spec.workdir {
        rc.set_working_dir(Some(w.clone()));
    }
    if let Some(u) = &spec.user {
        rc.set_user(Some(u.clone()));
    }
    if !spec.labels.is_empty() {
        let mut labels = rc.labels().clone().unwrap_or_default();
        labels.extend(spec.labels.iter().cloned());
        rc.set_labels(Some(labels));
    }
    let mut ports = rc.exposed_ports().clone().unwrap_or_default();
    ports.extend(spec.expose.iter().cloned());
    ports.sort();
    ports.dedup();
    rc.set_exposed_ports(if ports.is_empty() { None } else { Some(ports) });
    if let Some(v) = rc.volumes().clone() {
        let mut v = v;
        v.sort();
        rc.set_volumes(Some(v));
    }
}

fn image_err<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Image {
        what: what.into(),
        reason: e.to_string(),
    }
}

/// The new manifest: the base's layers, then ours; our config; annotations with created and base.
pub fn build_manifest(
    base: Option<&Base>,
    config: &Json<ImageConfiguration>,
    layers: &[LayerRecord],
    spec: &ConfigSpec,
) -> Result<Json<ImageManifest>> {
    let config_desc = descriptor(MediaType::ImageConfig, &config.digest, config.bytes.len())?;
    let mut all: Vec<Descriptor> = base
        .map(|b| b.manifest.value.layers().iter().map(oci_layer).collect())
        .unwrap_or_default();
    for l in layers {
        let mut d = descriptor(l.media_type.clone(), &l.digest, l.size as usize)?;
        d.set_annotations(Some(
            [(ANNOTATION_LAYER_ENCODING.to_string(), l.encoding.clone())].into(),
        ));
        all.push(d);
    }
    let mut ann: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    ann.insert(ANNOTATION_CREATED.into(), rfc3339(spec.created));
    if let Some(b) = base {
        ann.insert(ANNOTATION_BASE_NAME.into(), b.name.clone());
        ann.insert(ANNOTATION_BASE_DIGEST.into(), b.manifest.digest.to_string());
    }
    ann.extend(spec.annotations.iter().cloned());
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(all)
        .annotations(ann)
        .build()
        .map_err(image_err("manifest"))?;
    Json::encode(m)
}

/// A base layer descriptor in OCI terms: Docker schema 2 layer types name the same bytes as the OCI ones, and an
/// OCI manifest must not mix the two families.
fn oci_layer(d: &Descriptor) -> Descriptor {
    let mut d = d.clone();
    let oci = match d.media_type() {
        MediaType::Other(t) => match t.as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(MediaType::ImageLayerGzip),
            "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(MediaType::ImageLayerZstd),
            "application/vnd.docker.image.rootfs.diff.tar" => Some(MediaType::ImageLayer),
            _ => None,
        },
        _ => None,
    };
    if let Some(m) = oci {
        d.set_media_type(m);
    }
    d
}

pub fn descriptor(media_type: MediaType, digest: &Digest, size: usize) -> Result<Descriptor> {
    DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest.to_oci())
        .size(size as u64)
        .build()
        .map_err(image_err("descriptor"))
}

/// OCI image index and Docker manifest list: the two manifest media types that list other manifests.
const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// OCI image manifest and Docker schema 2 and schema 1 (signed or not) manifests: one image each.
const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Whether a manifest document is an index (an OCI image index or a Docker manifest list) rather than one image's
/// manifest. The one place kiln decides this, for layouts, archives and registries alike.
///
/// `media_type` is what came with the document from outside it (a registry's `Content-Type`, a descriptor's
/// `mediaType`); parameters (`; charset=utf-8`) and case are ignored. When it is absent or names neither kind
/// (`application/json`, `text/plain`, an unknown type), the document's own `mediaType` decides, and when that
/// says nothing either, its shape: an index is the only one with a `manifests` array (`mediaType` is optional in
/// an OCI index, so an index in a layout may carry none). A document that is not JSON is not an index.
pub fn is_index(media_type: Option<&str>, bytes: &[u8]) -> bool {
    if let Some(kind) = media_type.and_then(index_kind) {
        return kind;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Probe>(bytes).is_ok_and(|p| {
        p.media_type
            .as_deref()
            .and_then(index_kind)
            .unwrap_or_else(|| p.manifests.is_some_and(|m| m.is_array()))
    })
}

/// `Some(true)` for an index media type, `Some(false)` for a single manifest's, `None` when it says neither.
fn index_kind(media_type: &str) -> Option<bool> {
    let m = media_type.split(';').next().unwrap_or("").trim();
    let is = |list: &[&str]| list.iter().any(|t| m.eq_ignore_ascii_case(t));
    if is(&INDEX_MEDIA_TYPES) {
        Some(true)
    } else if is(&MANIFEST_MEDIA_TYPES) {
        Some(false)
    } else {
        None
    }
}

/// History entries of a config (for inspect).
pub fn history(c: &ImageConfiguration) -> &[History] {
    c.history().as_deref().unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_from_media_type_then_document() {
        let [oci_index, list] = INDEX_MEDIA_TYPES;
        let listing = br#"{"schemaVersion":2,"manifests":[]}"#;
        let single = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        // The media type from outside decides when it names a kind, whatever the document.
        let loud = "Application/VND.oci.image.index.v1+json; charset=utf-8";
        for (mt, want) in [(oci_index, true), (list, true), (loud, true)]
            .into_iter()
            .chain(MANIFEST_MEDIA_TYPES.map(|m| (m, false)))
        {
            assert!(is_index(Some(mt), single) == want && is_index(Some(mt), listing) == want);
        }
        // Otherwise the document's own mediaType, then its shape.
        for outside in [None, Some("application/json"), Some("text/plain"), Some("")] {
            assert!(is_index(outside, listing) && !is_index(outside, single));
            let doc =
                |mt: &str, rest: &str| format!(r#"{{"mediaType":"{mt}"{rest}}}"#).into_bytes();
            assert!(is_index(outside, &doc(list, "")));
            assert!(!is_index(
                outside,
                &doc(MANIFEST_MEDIA_TYPES[0], r#","manifests":[]"#)
            ));
            assert!(is_index(
                outside,
                &doc("application/x-other", r#","manifests":[]"#)
            ));
            assert!(
                !is_index(outside, br#"{"manifests":null}"#) && !is_index(outside, b"not json")
            );
        }
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": "é\""}});
        assert_eq!(
            String::from_utf8(canonical_json(&v).unwrap()).unwrap(),
            r#"{"a":{"c":"é\"","z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn env_merges_by_key_and_config_is_stable() {
        let spec = ConfigSpec {
            env: vec![("PATH".into(), "/app/bin".into()), ("A".into(), "1".into())],
            labels: vec![("z".into(), "1".into()), ("a".into(), "2".into())],
            expose: vec!["8080/tcp".into(), "53/udp".into()],
            ..Default::default()
        };
        let mut base = ImageConfiguration::default();
        let mut rc = Config::default();
        rc.set_env(Some(vec!["PATH=/usr/bin".into(), "B=2".into()]));
        base.set_config(Some(rc));
        let a = build_config(Some(&base), &spec, &[]).unwrap();
        let b = build_config(Some(&base), &spec, &[]).unwrap();
        assert_eq!(a.bytes, b.bytes);
        let env = a.value.config().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, vec!["PATH=/app/bin", "B=2", "A=1"]);
    }
}
