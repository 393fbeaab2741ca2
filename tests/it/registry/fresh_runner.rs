//! Runners without a layer cache (ephemeral CI): the registry's recent images are the cache (issue 20).

use super::*;

/// The manifest's layer digests.
fn layers(reg: &Registry, image: &str) -> Vec<String> {
    let raw: serde_json::Value = serde_json::from_str(&skopeo_inspect_raw(reg, image)).unwrap();
    raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

const SPLIT: [&str; 2] = ["--split", "4MiB"];

#[test]
fn a_fresh_runner_takes_unchanged_layers_from_the_registry() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let first = Kiln::new(&reg, &proxy.host(), Creds::None);
    let src = first.env.path("dist");
    js_modules(&src, 600, 5);
    let auto = ["--version", "auto", "--split", "4MiB", "-v"];
    let (v1, _) = first.build(&src, "web", "/app", &auto);
    assert!(v1.contains(":v1@"), "{v1}");
    let n = layers(&reg, &format!("web@{}", digest_of(&v1))).len();
    assert!(n >= 3, "{n} layers");
    // Every layer carries how its blob was made.
    let raw = skopeo_inspect_raw(&reg, &format!("web@{}", digest_of(&v1)));
    assert_eq!(
        raw.matches("\"dev.kiln.layer.encoding\":\"gzip;level=1;kiln-encoders=1\"")
            .count(),
        n,
        "{raw}"
    );

    // Unchanged, on a runner with an empty cache: nothing compressed, nothing uploaded, the version reused.
    proxy.clear_requests();
    let fresh = Kiln::new(&reg, &proxy.host(), Creds::None);
    let (again, err) = fresh.build(&src, "web", "/app", &auto);
    assert_eq!(again, v1, "{err}");
    assert!(
        err.contains(&format!(
            "(0 compressed, 0 unchanged from the layer cache, {n} found in the registry)"
        )),
        "{err}"
    );
    assert_eq!(blob_upload_requests(&proxy, "web"), (0, 0, 0), "{err}");
    assert_eq!(proxy.count("PUT", "/v2/web/manifests/"), 0, "{err}");

    // One file changed, on another fresh runner: only its layer is compressed and uploaded (with the config).
    proxy.clear_requests();
    let f = src.join("chunk2/m302.js");
    let mut body = std::fs::read(&f).unwrap();
    body[13] = b'X';
    std::fs::write(&f, body).unwrap();
    let fresh = Kiln::new(&reg, &proxy.host(), Creds::None);
    let (v2, err) = fresh.build(&src, "web", "/app", &auto);
    assert!(v2.contains(":v2@"), "{v2}");
    assert!(
        err.contains(&format!(
            "(1 compressed, 0 unchanged from the layer cache, {} found in the registry)",
            n - 1
        )),
        "{err}"
    );
    assert_eq!(blob_upload_requests(&proxy, "web").0, 2, "{err}");

    // The same image as a build that compresses everything.
    let cold = Kiln::new(&reg, &reg.host(), Creds::None);
    let (c, err) = cold.build(&src, "cold:v1", "/app", &["--split", "4MiB", "--no-cache"]);
    assert_eq!(digest_of(&c), digest_of(&v2), "{err}");
    assert!(err.contains(&format!("({n} compressed")), "{err}");
}

#[test]
fn registry_blobs_made_another_way_are_compressed_again() {
    let reg = Registry::start(Mode::open());
    let first = Kiln::new(&reg, &reg.host(), Creds::None);
    let src = first.env.path("dist");
    js_modules(&src, 300, 3);
    // v1 made at another level: the same tars, other blobs.
    let mut level2 = SPLIT.to_vec();
    level2.extend(["--tag", "v1", "--compression-level", "2"]);
    let (v1, _) = first.build(&src, "web", "/app", &level2);
    let fresh = Kiln::new(&reg, &reg.host(), Creds::None);
    let mut auto = SPLIT.to_vec();
    auto.extend(["--version", "auto"]);
    let (v2, err) = fresh.build(&src, "web", "/app", &auto);
    assert!(v2.contains(":v2@"), "{v2}");
    assert_ne!(digest_of(&v1), digest_of(&v2));
    assert!(!err.contains("found in the registry"), "{err}");
    let mine = layers(&reg, &format!("web@{}", digest_of(&v2)));
    let theirs = layers(&reg, &format!("web@{}", digest_of(&v1)));
    assert!(
        mine.iter().all(|l| !theirs.contains(l)),
        "{mine:?} {theirs:?}"
    );
}
