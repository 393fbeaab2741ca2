//! Rebuilds and the cache: a one-file change pushes only its layer, and an unused cache is pruned.

use super::*;

/// `f` rewritten as a build tool does (a new inode), one byte different, the same size.
fn rewrite_one_byte(f: &Path) {
    let mut body = std::fs::read(f).unwrap();
    body[13] = b'X';
    std::fs::remove_file(f).unwrap();
    std::fs::write(f, body).unwrap();
}

#[test]
fn a_one_file_change_pushes_only_its_layer() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let src = k.env.path("dist");
    js_modules(&src, 600, 5);
    let split = ["--split", "4MiB"];
    let (first, _) = k.build(&src, "web:v1", "/app", &split);
    let layers = |out: &str| -> Vec<String> {
        let raw: serde_json::Value = serde_json::from_str(&skopeo_inspect_raw(
            &reg,
            &format!("web@{}", digest_of(out)),
        ))
        .unwrap();
        raw["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let before = layers(&first);
    assert!(before.len() >= 3, "{before:?}");
    // A first push into an empty repository: each blob goes up without a HEAD, and the manifest is stored once,
    // by its tag.
    assert_eq!(proxy.count("HEAD", "/v2/web/blobs/"), 0);
    assert_eq!(
        blob_upload_requests(&proxy, "web"),
        (before.len() + 1, 0, before.len() + 1)
    );
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/"), 1);
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/v1"), 1);

    proxy.clear_requests();
    let f = src.join("chunk2/m302.js");
    let original = std::fs::read(&f).unwrap();
    rewrite_one_byte(&f);
    let mut verbose = split.to_vec();
    verbose.push("-v");
    let (second, err) = k.build(&src, "web:v2", "/app", &verbose);
    let after = layers(&second);
    assert_eq!(after.len(), before.len());
    assert_eq!(after.iter().filter(|l| !before.contains(l)).count(), 1);
    // Two blobs uploaded: the changed layer and the config; every other layer was found there (HEAD). The changed
    // layer went up while it was compressed (one streamed PATCH, never asked for first: its slot was built before
    // from other bytes), the config through a session opened while the layer was built; the config of an image
    // with a new layer is new too, so it is not asked for first either. No session was left over.
    assert_eq!(blob_upload_requests(&proxy, "web"), (2, 1, 2), "{err}");
    assert_one_streamed_patch(&proxy, &err);
    assert_eq!(
        proxy.count("HEAD", "/v2/web/blobs/"),
        after.len() - 1,
        "{err}"
    );
    assert_eq!(proxy.count("DELETE", "/"), 0, "{err}");
    assert!(err.contains("(1 compressed,"), "{err}");
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/"), 1, "{err}");

    // Reverted: the part is streamed again although the registry has its blob (from v1); the registry keeps one
    // copy, and the image is v1's layers.
    proxy.clear_requests();
    std::fs::remove_file(&f).unwrap();
    std::fs::write(&f, original).unwrap();
    let (third, err) = k.build(&src, "web:v3", "/app", &verbose);
    assert_eq!(layers(&third), before, "{err}");
    assert_eq!(blob_upload_requests(&proxy, "web").1, 1, "{err}");
    assert_eq!(proxy.count("DELETE", "/"), 0, "{err}");
    assert_eq!(registry_digest(&reg, "web:v3"), digest_of(&third));
}

/// Set the mtime of every file under `dir` to `days` ago.
fn age_tree(dir: &Path, days: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            age_tree(&p, days);
        } else {
            std::fs::File::open(&p).unwrap().set_modified(then).unwrap();
        }
    }
}

/// A cache kept between builds stays bounded: after a build, entries unused for `--cache-max-age` days go (a
/// layer cache hit keeps its record and blob), and what is left still serves the next build.
#[test]
fn an_unused_cache_is_pruned_and_a_used_one_kept() {
    let reg = Registry::start(Mode::open());
    let k = Kiln::new(&reg, &reg.host(), Creds::None);
    let src = k.env.path("dist");
    js_modules(&src, 300, 3);
    let split = ["--split", "2MiB", "-v"];
    k.build(&src, "web:v1", "/app", &split);
    let cache = k.env.cache();
    let blobs = |c: &Path| {
        std::fs::read_dir(c.join("layout/blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = blobs(&cache);
    // A month without builds, then one file changes.
    age_tree(&cache, 30);
    let f = src.join("chunk1/m151.js");
    rewrite_one_byte(&f);
    let (out, err) = k.build(&src, "web:v2", "/app", &split);
    assert_eq!(registry_digest(&reg, "web:v2"), digest_of(&out));
    // Gone: the changed layer's old blob and v1's config and manifest (no record names them any more).
    assert!(err.contains("removed"), "{err}");
    assert!(err.contains("(1 compressed,"), "{err}");
    assert_eq!(
        blobs(&cache),
        before,
        "3 in (layer, config, manifest), 3 out\n{err}"
    );
    // Every part's slot record stayed: the changed one was written anew, the others refreshed by their hits.
    let slots = std::fs::read_dir(cache.join("layers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("slot-")
        })
        .count();
    assert_eq!(slots, 3, "{err}");
    // What stayed serves the next build: nothing to compress.
    let (again, err) = k.build(&src, "web:v2", "/app", &split);
    assert_eq!(digest_of(&again), digest_of(&out));
    assert!(err.contains("(0 compressed,"), "{err}");
    // 0 days: never pruned, however old.
    age_tree(&cache, 400);
    std::fs::remove_file(cache.join(".pruned")).unwrap();
    let n = blobs(&cache);
    k.build(
        &src,
        "web:v2",
        "/app",
        &["--split", "2MiB", "--cache-max-age", "0"],
    );
    assert_eq!(blobs(&cache), n);
}
