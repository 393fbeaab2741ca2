use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, MediaType};

use super::artifact::*;
use super::local::{attach_layout, list_layout};
use crate::digest::Digest;
use crate::image::ANNOTATION_CREATED;
use crate::image::descriptor;

fn subject() -> Descriptor {
    descriptor(MediaType::ImageManifest, &Digest::of(b"image"), 5).unwrap()
}

fn artifact(t: &str, body: &[u8], created: Option<&str>) -> Artifact {
    let mut annotations = BTreeMap::new();
    if let Some(c) = created {
        annotations.insert(ANNOTATION_CREATED.to_string(), c.to_string());
    }
    Artifact {
        artifact_type: t.into(),
        blob_media_type: t.into(),
        bytes: body.to_vec(),
        annotations,
    }
}

#[test]
fn artifact_manifest_follows_image_spec_1_1_and_is_deterministic() {
    let a = artifact(
        "application/spdx+json",
        b"{\"spdx\":1}",
        Some("2024-01-01T00:00:00Z"),
    );
    let b = build(&a, &subject()).unwrap();
    assert_eq!(
        b.manifest.bytes,
        build(&a, &subject()).unwrap().manifest.bytes
    );
    let v: serde_json::Value = serde_json::from_slice(&b.manifest.bytes).unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(v["artifactType"], "application/spdx+json");
    assert_eq!(v["config"]["mediaType"], EMPTY_MEDIA_TYPE);
    assert_eq!(v["config"]["digest"], EMPTY_DIGEST);
    assert_eq!(v["config"]["size"], 2);
    assert_eq!(Digest::of(EMPTY_BYTES).to_string(), EMPTY_DIGEST);
    assert_eq!(
        v["layers"][0]["digest"],
        Digest::of(b"{\"spdx\":1}").to_string()
    );
    assert_eq!(v["subject"]["digest"], Digest::of(b"image").to_string());
    assert_eq!(v["subject"]["size"], 5);
    assert_eq!(v["annotations"][ANNOTATION_CREATED], "2024-01-01T00:00:00Z");
    let d = b.descriptor().unwrap();
    assert_eq!(
        d.artifact_type().as_ref().unwrap().to_string(),
        "application/spdx+json"
    );
    // No annotations: no empty object either.
    let plain = build(
        &artifact("application/vnd.in-toto+json", b"{}", None),
        &subject(),
    )
    .unwrap();
    assert!(!String::from_utf8_lossy(&plain.manifest.bytes).contains("annotations"));
    assert!(build(&artifact("spdx", b"{}", None), &subject()).is_err());
}

#[test]
fn plan_skips_what_is_there() {
    let s = subject();
    let a = artifact("application/spdx+json", b"one", None);
    let b = artifact("application/spdx+json", b"two", None);
    let listed = vec![build(&a, &s).unwrap().descriptor().unwrap()];
    let p = plan(&[a.clone(), b.clone()], &s, &listed, false).unwrap();
    assert!(matches!(&p[0], Err(x) if x.how == How::AlreadyPresent));
    assert!(p[1].is_ok(), "another document of the same type is added");
    let p = plan(&[b], &s, &listed, true).unwrap();
    match &p[0] {
        Err(x) => assert_eq!(x.manifest, build(&a, &s).unwrap().manifest.digest),
        Ok(_) => panic!("skip_types_present adds nothing when the type is there"),
    }
}

#[test]
fn pick_takes_the_newest_then_the_last() {
    let s = subject();
    let d = |t: &str, body: &[u8], c: Option<&str>| {
        build(&artifact(t, body, c), &s)
            .unwrap()
            .descriptor()
            .unwrap()
    };
    let old = d("application/spdx+json", b"1", Some("2024-01-01T00:00:00Z"));
    let new = d(
        "application/vnd.cyclonedx+json",
        b"2",
        Some("2025-01-01T00:00:00Z"),
    );
    let prov = d(
        "application/vnd.in-toto+json",
        b"3",
        Some("2026-01-01T00:00:00Z"),
    );
    let list = vec![new.clone(), old.clone(), prov.clone()];
    assert_eq!(pick(&list, &SBOM_TYPES), Some(&new));
    assert_eq!(pick(&list, &PROVENANCE_TYPES), Some(&prov));
    let a = d("application/spdx+json", b"a", None);
    let b = d("application/spdx+json", b"b", None);
    assert_eq!(pick(&[a.clone(), b.clone()], &SBOM_TYPES), Some(&b));
    assert_eq!(pick(&[a], &PROVENANCE_TYPES), None);
}

/// A layout holding one untagged image and its referrers: "the only image" is still found, and the layout counts
/// as used only by the image.
#[test]
fn layout_referrers_are_not_images() {
    use crate::image::Root;
    use crate::store::{Layout, resolve_ref};
    use crate::target::Target;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let (layout, created) = Layout::open_or_create(&path).unwrap();
    assert!(created);
    let bytes = br#"{"schemaVersion":2}"#.to_vec();
    let root = Root {
        media_type: MediaType::ImageManifest,
        digest: Digest::of(&bytes),
        bytes: bytes.clone(),
        platform: None,
    };
    layout.put_bytes(&bytes, &root.digest).unwrap();
    let subject = root.descriptor().unwrap();
    let opts = AttachOptions::default();
    let docs = [
        artifact("application/spdx+json", b"{}", None),
        artifact("application/vnd.in-toto+json", b"[]", None),
    ];
    // Referrers of an image not (yet) in index.json: the layout holds no image, so it is unused.
    let got = attach_layout(&layout, &subject, &docs, &opts).unwrap();
    assert!(got.iter().all(|a| a.how == How::Layout));
    assert_eq!(layout.entries().unwrap().len(), 2);
    assert!(layout.entries().unwrap().iter().all(|e| e.is_referrer()));
    let Target::Layout(r) = format!("oci:{}", path.display()).parse().unwrap() else {
        unreachable!()
    };
    assert!(resolve_ref(&layout, &r).is_err(), "no image to pick");
    {
        let lock = layout.lock().unwrap();
        layout.set_tag(&lock, None, &root).unwrap();
    }
    assert_eq!(
        resolve_ref(&layout, &r).unwrap(),
        root.digest,
        "the one image"
    );
    assert_eq!(layout.tags().unwrap(), Vec::<String>::new());
    let listed = list_layout(&layout, &root.digest, &[]).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        list_layout(&layout, &root.digest, &PROVENANCE_TYPES)
            .unwrap()
            .len(),
        1
    );
    assert!(
        list_layout(&layout, &Digest::of(b"other"), &[])
            .unwrap()
            .is_empty()
    );
    layout.remove_if_unused();
    assert!(path.exists(), "an image is in it");

    let path2 = dir.path().join("l2");
    let (l2, _) = Layout::open_or_create(&path2).unwrap();
    attach_layout(&l2, &subject, &docs, &opts).unwrap();
    l2.remove_if_unused();
    assert!(!path2.exists(), "referrers alone keep no layout");
}
