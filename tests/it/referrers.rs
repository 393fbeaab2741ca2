//! OCI 1.1 referrers (an SBOM and provenance attached to an image): attached through the engine's API (the
//! wiring into `kiln build` is separate), then read with kiln (`kiln inspect`, `kiln sbom`, `kiln provenance`)
//! and with independent tools: skopeo reads every artifact manifest from the registry, the registry's own tag
//! list shows which schema was used, umoci and oci-image-tool still accept a layout holding referrers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_engine::events::Report;
use kiln_engine::referrers::{self, Artifact, AttachOptions, Attached, How};
use kiln_engine::{ClientOptions, Target};

use crate::support::*;

const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const INTOTO: &str = "application/vnd.in-toto+json";
const CREATED: &str = "org.opencontainers.image.created";

fn artifact(t: &str, body: &str, created: &str) -> Artifact {
    Artifact {
        artifact_type: t.into(),
        blob_media_type: t.into(),
        bytes: body.as_bytes().to_vec(),
        annotations: BTreeMap::from([(CREATED.to_string(), created.to_string())]),
    }
}

fn sbom() -> Artifact {
    artifact(
        SPDX,
        r#"{"spdxVersion":"SPDX-2.3","name":"app","packages":[]}"#,
        "2023-11-14T22:13:20Z",
    )
}

fn provenance() -> Artifact {
    artifact(
        INTOTO,
        r#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1"}"#,
        "2023-11-14T22:13:20Z",
    )
}

fn fast() -> AttachOptions {
    AttachOptions {
        settle: Duration::from_millis(20),
        ..AttachOptions::default()
    }
}

fn attach(
    target: &str,
    artifacts: &[Artifact],
    opts: &AttachOptions,
) -> kiln_engine::Result<Vec<Attached>> {
    let t: Target = target.parse().unwrap();
    referrers::attach(
        &t,
        artifacts,
        opts,
        ClientOptions::default(),
        &Report::default(),
    )
    .map(|(_, a)| a)
}

/// `kiln build` of a one-file tree to `to`; returns the printed digest.
fn build(env: &KilnEnv, dir: &Path, content: &str, to: &str) -> String {
    let src = dir.join(format!("src-{}", sha256_hex(content.as_bytes())));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), content).unwrap();
    let (so, _) = env.ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        to,
        "--platform",
        "linux/amd64",
    ]);
    let line = so.lines().next().unwrap();
    line.rsplit_once('@').unwrap().1.to_string()
}

/// The referrers index the fallback tag of `digest` holds in `repo`, if any.
fn fallback_index(reg: &Registry, repo: &str, digest: &str) -> Option<serde_json::Value> {
    let tag = digest.replace(':', "-");
    reg.api()
        .get_manifest(repo, &tag)
        .map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap())
}

fn types_of(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn fallback_tag_on_a_registry_without_the_referrers_api() {
    let reg = Registry::start(Mode::open());
    let env = KilnEnv::new();
    let image = format!("{}/app:v1", reg.host());
    let digest = build(&env, env.dir.path(), "hello\n", &image);

    let attached = attach(&image, &[sbom(), provenance()], &fast()).unwrap();
    let tag = digest.replace(':', "-");
    assert_eq!(attached.len(), 2);
    for a in &attached {
        assert_eq!(a.how, How::FallbackTag(tag.parse().unwrap()), "{a:?}");
    }

    // The registry's tag list: the image's tag and the referrers tag.
    let mut tags = skopeo_list_tags(&reg, "app");
    tags.sort();
    assert_eq!(tags, vec![tag.clone(), "v1".to_string()]);
    let index = fallback_index(&reg, "app", &digest).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(types_of(&index), vec![SPDX, INTOTO]);
    for (d, a) in index["manifests"].as_array().unwrap().iter().zip(&attached) {
        assert_eq!(d["digest"], a.manifest.to_string());
        assert_eq!(d["annotations"][CREATED], "2023-11-14T22:13:20Z");
        // skopeo reads each artifact manifest; its subject is the image.
        let raw = skopeo_inspect_raw(&reg, &format!("app@{}", a.manifest));
        assert_eq!(sha256_digest(raw.as_bytes()), a.manifest.to_string());
        let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(m["subject"]["digest"], digest);
        assert_eq!(m["artifactType"], d["artifactType"]);
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(
            m["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
    // The image is unchanged.
    assert_eq!(registry_digest(&reg, "app:v1"), digest);

    // Attaching again adds nothing.
    let again = attach(&image, &[sbom(), provenance()], &fast()).unwrap();
    assert!(
        again.iter().all(|a| a.how == How::AlreadyPresent),
        "{again:?}"
    );
    assert_eq!(
        types_of(&fallback_index(&reg, "app", &digest).unwrap()).len(),
        2
    );
    // Nor does another SBOM when referrers of its type are there and the caller says so (a reused version).
    let newer = artifact(
        CYCLONEDX,
        r#"{"bomFormat":"CycloneDX"}"#,
        "2024-01-01T00:00:00Z",
    );
    let skip = AttachOptions {
        skip_types_present: true,
        ..fast()
    };
    let other_sbom = artifact(
        SPDX,
        r#"{"spdxVersion":"SPDX-2.3","name":"other"}"#,
        "2024-01-01T00:00:00Z",
    );
    let skipped = attach(&image, &[other_sbom], &skip).unwrap();
    assert_eq!(skipped[0].how, How::AlreadyPresent);
    assert_eq!(skipped[0].manifest, attached[0].manifest);

    // kiln reads them back.
    assert_eq!(
        env.ok(&["sbom", &image]).0,
        String::from_utf8(sbom().bytes).unwrap()
    );
    assert_eq!(
        env.ok(&["provenance", &image]).0,
        String::from_utf8(provenance().bytes).unwrap()
    );
    let (text, _) = env.ok(&["inspect", &image]);
    assert!(text.contains("Referrers:"), "{text}");
    for a in &attached {
        assert!(
            text.contains(&format!("{:<32} {}", a.artifact_type, a.manifest)),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!("    {CREATED}=2023-11-14T22:13:20Z")),
        "{text}"
    );
    let (json, _) = env.ok(&["inspect", &image, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let listed = v["referrers"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["artifactType"], INTOTO);
    assert_eq!(listed[1]["digest"], attached[1].manifest.to_string());

    // A newer SBOM of another format: `kiln sbom` shows the newest.
    let added = attach(&image, &[newer], &fast()).unwrap();
    assert!(matches!(added[0].how, How::FallbackTag(_)));
    assert_eq!(env.ok(&["sbom", &image]).0, r#"{"bomFormat":"CycloneDX"}"#);
    assert_eq!(
        types_of(&fallback_index(&reg, "app", &digest).unwrap()),
        vec![SPDX, INTOTO, CYCLONEDX]
    );

    // An image without referrers: a clear error, exit 1.
    let bare = format!("{}/app:v2", reg.host());
    build(&env, env.dir.path(), "bare\n", &bare);
    let out = env.run(&["provenance", &bare]);
    let (_, err) = texts(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("has no referrer of type application/vnd.in-toto+json"),
        "{err}"
    );
    // `kiln tags` still lists the versions (the referrers tag is no version).
    let (tags, _) = env.ok(&["tags", &format!("{}/app", reg.host())]);
    assert!(tags.contains("v1") && tags.contains("v2"), "{tags}");
}

#[test]
fn referrers_api_through_a_proxy_writes_no_tag() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let api = proxy.enable_referrers_api();
    let env = KilnEnv::new();
    let image = format!("{}/app:v1", proxy.host());
    let digest = build(&env, env.dir.path(), "api\n", &image);

    let attached = attach(&image, &[sbom(), provenance()], &fast()).unwrap();
    assert!(attached.iter().all(|a| a.how == How::Api), "{attached:?}");
    // No referrers tag: the registry behind the proxy holds the image's tag only.
    assert_eq!(skopeo_list_tags(&reg, "app"), vec!["v1"]);
    assert!(proxy.count("GET", "/v2/app/manifests/sha256-") == 0);
    let seen = api.seen();
    assert_eq!(
        seen.get(&("app".to_string(), digest.clone())).unwrap(),
        &attached
            .iter()
            .map(|a| a.manifest.to_string())
            .collect::<Vec<_>>()
    );
    assert!(proxy.count("GET", &format!("/v2/app/referrers/{digest}")) >= 1);

    // Again: found through the API, nothing written.
    let puts = proxy.count("PUT", "/v2/app/manifests/");
    let again = attach(&image, &[sbom(), provenance()], &fast()).unwrap();
    assert!(again.iter().all(|a| a.how == How::AlreadyPresent));
    assert_eq!(proxy.count("PUT", "/v2/app/manifests/"), puts);

    assert_eq!(
        env.ok(&["sbom", &image]).0,
        String::from_utf8(sbom().bytes).unwrap()
    );
    let (text, _) = env.ok(&["inspect", &image]);
    assert!(text.contains(INTOTO), "{text}");
    assert_eq!(skopeo_list_tags(&reg, "app"), vec!["v1"]);
}

#[test]
fn concurrent_attachers_through_the_fallback_tag_all_end_up_listed() {
    let reg = Registry::start(Mode::open());
    // Through the proxy only to count the writes of the referrers tag.
    let proxy = Proxy::start(&reg);
    let env = KilnEnv::new();
    let image = format!("{}/app:v1", proxy.host());
    let digest = build(&env, env.dir.path(), "race\n", &image);
    const N: usize = 6;
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let image = image.clone();
                s.spawn(move || {
                    let a = artifact(SPDX, &format!("{{\"n\":{i}}}"), "2023-11-14T22:13:20Z");
                    attach(&image, &[a], &fast())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ours = Vec::new();
    for r in results {
        let r = r.unwrap();
        assert!(matches!(r[0].how, How::FallbackTag(_)));
        ours.push(r[0].manifest.to_string());
    }
    let index = fallback_index(&reg, "app", &digest).unwrap();
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    ours.sort();
    assert_eq!(listed, ours, "every attacher is listed exactly once");
    // Each attacher wrote at least once; more writes are the merges after a lost write.
    let writes = proxy.count(
        "PUT",
        &format!("/v2/app/manifests/{}", digest.replace(':', "-")),
    );
    eprintln!("{N} concurrent attachers: {writes} writes of the referrers tag");
    assert!(writes >= N, "{writes}");
}

#[test]
fn an_immutable_repository_is_reported_clearly() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let env = KilnEnv::new();
    let image = format!("{}/app:v1", proxy.host());
    let digest = build(&env, env.dir.path(), "immutable\n", &image);
    attach(&image, &[sbom()], &fast()).unwrap();
    // From now on the registry refuses to overwrite tags (ECR-style immutability).
    let body =
        serde_json::json!({"errors": [{"code": "TAG_INVALID", "message": "tag is immutable"}]});
    proxy.inject(Fault::Reply {
        status: 400,
        body: body.to_string().into_bytes(),
        matching: Matcher::new("PUT", "/manifests/sha256-"),
        times: usize::MAX,
    });
    let e = attach(&image, &[provenance()], &fast()).unwrap_err();
    let msg = e.to_string();
    let tag = digest.replace(':', "-");
    assert!(msg.contains(&tag), "{msg}");
    assert!(msg.contains("TAG_INVALID (HTTP 400)"), "{msg}");
    assert!(msg.contains("The image itself was published"), "{msg}");
    assert!(
        msg.contains("the tag exists and the repository does not let it be overwritten"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), 1);
    // The first SBOM is still listed, the image untouched.
    assert_eq!(
        types_of(&fallback_index(&reg, "app", &digest).unwrap()),
        vec![SPDX]
    );
    assert_eq!(registry_digest(&reg, "app:v1"), digest);

    // A registry that refuses to list referrers: inspect still shows the image, and says so.
    proxy.inject(Fault::Status {
        status: 403,
        matching: Matcher::new("GET", "/referrers/"),
        times: usize::MAX,
    });
    let out = env.run(&["inspect", &image]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert!(so.contains(&format!("Digest:     {digest}")), "{so}");
    assert!(!so.contains("Referrers:"), "{so}");
    assert!(se.contains("its referrers could not be listed"), "{se}");
    let out = env.run(&["sbom", &image]);
    assert_eq!(code(&out), 1, "{:?}", texts(&out));
}

fn layout_index(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

#[test]
fn layout_holds_referrers_untagged_and_stays_usable() {
    let reg = Registry::start(Mode::open());
    let env = KilnEnv::new();
    let layout: PathBuf = env.path("layout");
    let l = layout.display().to_string();
    let digest = build(&env, env.dir.path(), "layout\n", &format!("oci:{l}:v1"));

    let attached = attach(&format!("oci:{l}:v1"), &[sbom(), provenance()], &fast()).unwrap();
    assert!(
        attached.iter().all(|a| a.how == How::Layout),
        "{attached:?}"
    );
    let index = layout_index(&layout);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for (e, a) in entries[1..].iter().zip(&attached) {
        assert_eq!(e["digest"], a.manifest.to_string());
        assert_eq!(e["artifactType"], a.artifact_type);
        assert!(
            e["annotations"]
                .get("org.opencontainers.image.ref.name")
                .is_none()
        );
    }
    let again = attach(&format!("oci:{l}:v1"), &[sbom(), provenance()], &fast()).unwrap();
    assert!(again.iter().all(|a| a.how == How::AlreadyPresent));
    assert_eq!(
        layout_index(&layout)["manifests"].as_array().unwrap().len(),
        3
    );

    // Listing, and the commands that read the layout.
    let listed = referrers::list(
        &format!("oci:{l}:v1").parse().unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(listed.subject.to_string(), digest);
    assert_eq!(listed.referrers.len(), 2);
    assert_eq!(
        env.ok(&["sbom", &format!("oci:{l}:v1")]).0,
        String::from_utf8(sbom().bytes).unwrap()
    );
    assert_eq!(
        env.ok(&["provenance", &format!("oci:{l}")]).0,
        String::from_utf8(provenance().bytes).unwrap(),
        "the layout's only image, its referrers aside"
    );
    let (tags, _) = env.ok(&["tags", &format!("oci:{l}")]);
    assert_eq!(tags.lines().count(), 1, "{tags}");
    assert!(tags.contains("v1"), "{tags}");
    let (text, _) = env.ok(&["inspect", &format!("oci:{l}")]);
    assert!(text.contains(&format!("Digest:     {digest}")), "{text}");
    assert!(text.contains(SPDX) && text.contains(INTOTO), "{text}");
    // `kiln push oci:PATH` with no tag picks the one image, not a referrer.
    let (so, _) = env.ok(&[
        "push",
        &format!("oci:{l}"),
        &format!("{}/pushed:v1", reg.host()),
    ]);
    assert!(so.contains(&digest), "{so}");
    // Another build into the layout: versions and tags work as before.
    let d2 = build(&env, env.dir.path(), "layout 2\n", &format!("oci:{l}:v2"));
    assert_ne!(d2, digest);
    let (tags, _) = env.ok(&["tags", &format!("oci:{l}")]);
    assert_eq!(tags.lines().count(), 2, "{tags}");

    // Independent tools still accept the layout.
    require_tool("oci-image-tool", "oci-image-tool");
    // (Its `--type imageLayout` is unimplemented; `--type image` checks oci-layout, index.json and the image
    // its `--ref`s select. Its ref filter deletes from the list it iterates, skipping the entry after each one
    // removed, so the criteria are repeated until one entry is left.)
    let validate = |name: Option<&str>, digest: &str| {
        let mut args = vec!["validate".to_string(), "--type".into(), "image".into()];
        if let Some(n) = name {
            args.extend(["--ref".into(), format!("name={n}")]);
        }
        for _ in 0..3 {
            args.extend(["--ref".into(), format!("digest={digest}")]);
        }
        args.push(l.clone());
        tool_ok(
            "oci-image-tool",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    };
    validate(Some("v1"), &digest);
    validate(Some("v2"), &d2);
    let bundle = env.path("bundle");
    umoci_unpack(&format!("{l}:v1"), &bundle);
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "layout\n"
    );
    // Each artifact manifest is a valid image manifest by the image-spec's schema, about the image.
    for a in &attached {
        let blob = layout.join("blobs/sha256").join(a.manifest.hex());
        tool_ok(
            "oci-image-tool",
            &["validate", "--type", "manifest", blob.to_str().unwrap()],
        );
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&blob).unwrap()).unwrap();
        assert_eq!(m["subject"]["digest"], digest);
    }
}

/// A multi-platform image: documents attached to its index (what its tag names) and to one platform's manifest
/// are each listed under their own subject, in a registry without the referrers API as in a layout.
#[test]
fn multi_platform_index_and_platform_manifests_as_subjects() {
    let reg = Registry::start(Mode::open());
    let env = KilnEnv::new();
    for arch in ["amd64", "arm64"] {
        let d = env.path(arch);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("arch.txt"), arch).unwrap();
    }
    let layout = env.path("layout").display().to_string();
    for to in [
        format!("{}/multi:v1", reg.host()),
        format!("oci:{layout}:v1"),
    ] {
        let p = |a: &str| format!("linux/{a}={}", env.path(a).display());
        let (so, _) = env.ok(&[
            "build",
            "--platform",
            &p("amd64"),
            "--platform",
            &p("arm64"),
            "--to",
            &to,
        ]);
        let index_digest = so
            .lines()
            .next()
            .unwrap()
            .rsplit_once('@')
            .unwrap()
            .1
            .to_string();
        let attached = attach(&to, &[sbom()], &fast()).unwrap();
        let (json, _) = env.ok(&["inspect", &to, "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["digest"], index_digest);
        assert_eq!(
            v["referrers"][0]["digest"],
            attached[0].manifest.to_string()
        );
        // The index's own SBOM is not the arm64 image's: that one gets its own.
        let arm = v["index"]["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "arm64")
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let arm_ref = match to.strip_suffix(":v1") {
            Some(base) => format!("{base}@{arm}"),
            None => unreachable!(),
        };
        let out = env.run(&["sbom", &arm_ref]);
        assert_eq!(code(&out), 1, "{:?}", texts(&out));
        let arm_doc = artifact(SPDX, r#"{"arch":"arm64"}"#, "2023-11-14T22:13:20Z");
        attach(&arm_ref, &[arm_doc], &fast()).unwrap();
        assert_eq!(env.ok(&["sbom", &arm_ref]).0, r#"{"arch":"arm64"}"#);
        assert_eq!(
            env.ok(&["sbom", &to]).0,
            String::from_utf8(sbom().bytes).unwrap()
        );
        let (text, _) = env.ok(&["inspect", &to, "--platform", "linux/arm64"]);
        assert!(text.contains(&format!("Digest:     {arm}")), "{text}");
        assert!(text.contains("Referrers:"), "{text}");
        // The subject of the index's SBOM is the index, with its media type.
        let referrers = referrers::list(&to.parse().unwrap(), ClientOptions::default()).unwrap();
        assert_eq!(referrers.subject.to_string(), index_digest);
        assert_eq!(referrers.referrers.len(), 1);
    }
    // The registry's copy, read by skopeo: the index's SBOM names the index as an index.
    let digest = registry_digest(&reg, "multi:v1");
    let index = fallback_index(&reg, "multi", &digest).unwrap();
    let sbom_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let m: serde_json::Value =
        serde_json::from_str(&skopeo_inspect_raw(&reg, &format!("multi@{sbom_digest}"))).unwrap();
    assert_eq!(m["subject"]["digest"], digest);
    assert_eq!(
        m["subject"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}
