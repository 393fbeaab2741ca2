//! Big layers streamed to the registry while they are compressed, and the fall back to pushing the file.

use super::*;

/// The smallest tar kiln streams to the registry while compressing it (without `--chunk-size`).
const STREAMED_TAR: usize = 32 << 20;

/// The biggest layer of a pushed image: its digest and size.
fn biggest_layer(raw: &serde_json::Value) -> (String, u64) {
    raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap().to_string();
            (d, l["size"].as_u64().unwrap())
        })
        .max_by_key(|(_, size)| *size)
        .unwrap()
}

/// The `PATCH`es of one upload in `--chunk-size` chunks: contiguous `Content-Range`s from 0 to `size`, each
/// `chunk` long but the last, each with its `Content-Length`.
fn assert_chunked(patches: &[ProxyRequest], size: u64, chunk: u64, err: &str) {
    assert_eq!(patches.len() as u64, size.div_ceil(chunk), "{err}");
    let mut next = 0;
    for p in patches {
        assert_eq!(p.status, Some(202));
        let range = p.header("content-range").expect("Content-Range");
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(a, next, "contiguous: {range}");
        assert!(b - a + 1 == chunk || b + 1 == size, "{range}");
        assert_eq!(p.header("content-length"), Some(&*(b - a + 1).to_string()));
        next = b + 1;
    }
    assert_eq!(next, size);
}

/// A big new layer is uploaded while it is compressed: one streamed `PATCH`, committed by an empty
/// `PUT ?digest=`, never checked with `HEAD` nor sent twice; with `--chunk-size`, sized `PATCH`es of one session. And when a tag could be refused, nothing is
/// streamed: exit 3 uploads nothing.
#[test]
fn big_layer_is_streamed_while_compressed() {
    let f = Faulty::new(STREAMED_TAR + (1 << 20));
    let (out, err) = f.kiln().build(&f.src, "app:v1", "/app", &["-v"]);
    let raw = f.check_image("app", &out);
    let first = digest_of(&out);
    let (digest, size) = biggest_layer(&raw);
    assert!(size > STREAMED_TAR as u64, "{size}");
    assert_one_streamed_patch(&f.proxy, &err);
    let commit = f
        .proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && unescape(&r.target).contains(&format!("digest={digest}")))
        .expect("the layer's closing PUT");
    assert_eq!(commit.header("content-length"), Some("0"));
    assert_eq!(commit.status, Some(201));
    // One session per blob (the other layers and the config from their files), none repeated or cancelled.
    let blobs = raw["layers"].as_array().unwrap().len() + 1;
    assert_eq!(
        f.proxy.count("POST", "/v2/app/blobs/uploads/"),
        blobs,
        "{err}"
    );
    assert_eq!(
        f.proxy.count("PUT", "/v2/app/blobs/uploads/"),
        blobs,
        "{err}"
    );
    assert_eq!(f.proxy.count("HEAD", &format!("/v2/app/blobs/{digest}")), 0);
    assert_eq!(f.proxy.count("DELETE", "/"), 0);
    assert!(
        err.contains(&format!("blob {} uploaded while building", &digest[7..19])),
        "{err}"
    );

    // v1 now names another image: exit 3, and not a byte of the new layer went up.
    f.proxy.clear_requests();
    let before = storage_blobs(&f.reg);
    std::fs::write(f.src.join("big.bin"), noise(STREAMED_TAR + (1 << 20), 8)).unwrap();
    let out = f.kiln().build_out(&f.src, "app:v1", &["--prefix", "/app"]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 3, "{se}");
    assert_eq!(blob_upload_requests(&f.proxy, "app"), (0, 0, 0), "{se}");
    assert_eq!(storage_blobs(&f.reg), before);
    assert_eq!(registry_digest(&f.reg, "app:v1"), first);

    // --chunk-size: the same stream in sized PATCHes (a new image, as v2).
    f.proxy.clear_requests();
    let chunk = 4u64 << 20;
    let (out, err) = f.kiln().build(
        &f.src,
        "app:v2",
        "/app",
        &["--chunk-size", &chunk.to_string(), "-v"],
    );
    assert_eq!(registry_digest(&f.reg, "app:v2"), digest_of(&out));
    let raw: serde_json::Value =
        serde_json::from_str(&skopeo_inspect_raw(&f.reg, "app:v2")).unwrap();
    let (digest, size) = biggest_layer(&raw);
    // The PATCHes of that layer's session (the small blobs go up from their files, in chunks too).
    let reqs = f.proxy.requests();
    let session = reqs
        .iter()
        .find(|r| r.method == "PUT" && unescape(&r.target).contains(&format!("digest={digest}")))
        .expect("the layer's closing PUT")
        .path()
        .to_string();
    let patches: Vec<_> = reqs
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path() == session)
        .collect();
    assert_chunked(&patches, size, chunk, &err);
    assert!(err.contains("uploaded while building"), "{err}");
}

/// A streamed upload whose `PATCH` fails is cancelled, and the layer is pushed from its file instead: the image
/// is complete and the registry holds nothing else.
#[test]
fn failed_streamed_patch_falls_back_to_pushing_the_file() {
    let f = Faulty::new(STREAMED_TAR + (1 << 20));
    f.proxy.inject(Fault::Status {
        status: 500,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = f
        .kiln()
        .build(&f.src, "app:v1", "/app", &["--split", "off", "-v"]);
    f.check_image("app", &out);
    assert!(f.proxy.pending_faults().is_empty());
    assert_eq!(
        f.proxy.count("DELETE", "/v2/app/blobs/uploads/"),
        1,
        "{err}"
    );
    assert!(err.contains("streamed layer upload given up"), "{err}");
    assert!(err.contains("HTTP 500") || err.contains("500"), "{err}");
}

/// With `--chunk-size`: a streamed upload that fails (its first chunk gets a 500) is cancelled, and the layer is
/// pushed from its file instead. (1 MiB chunks: 8 MiB of tar streams; one layer, so that the first PATCH is the
/// stream's.)
#[test]
fn failed_stream_falls_back_to_pushing_the_file() {
    let f = Faulty::new(9 << 20);
    f.proxy.inject(Fault::Status {
        status: 500,
        matching: Matcher::new("PATCH", "/blobs/uploads/"),
        times: 1,
    });
    let (out, err) = f.kiln().build(
        &f.src,
        "app:v1",
        "/app",
        &["--chunk-size", "1048576", "--split", "off", "-v"],
    );
    let raw = f.check_image("app", &out);
    assert!(f.proxy.pending_faults().is_empty());
    let (_, size) = biggest_layer(&raw);
    let failed = f
        .proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.status == Some(500))
        .count();
    assert_eq!(failed, 1, "{err}");
    assert_eq!(
        f.proxy.count("DELETE", "/v2/app/blobs/uploads/"),
        1,
        "{err}"
    );
    // Pushed from the file, in --chunk-size PATCHes like any other blob.
    assert!(
        f.proxy.requests().iter().any(|r| r.header("content-range")
            == Some(&*format!("0-{}", (1 << 20) - 1))
            && r.status == Some(202)),
        "{err}"
    );
    assert!(size > 9 << 20);
    assert!(err.contains("streamed layer upload given up"), "{err}");
    assert!(err.contains("uploaded while building"), "{err}");
}
