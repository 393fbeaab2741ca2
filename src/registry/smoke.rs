//! Smoke tests against a real registry (Debian's `docker-registry`, started by /work/shared/bench/registry.sh):
//! `cargo test --lib registry::smoke -- --ignored`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::digest::Digest;

const SCRIPT: &str = "/work/shared/bench/registry.sh";

struct Registry {
    vars: HashMap<String, String>,
}

impl Registry {
    fn start(args: &[&str]) -> Registry {
        let out = Command::new(SCRIPT)
            .arg("start")
            .args(args)
            .output()
            .expect("run registry.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            })
            .collect();
        Registry { vars }
    }
    fn host(&self) -> &str {
        &self.vars["REG_HOST"]
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("stop")
            .arg(&self.vars["REG_DIR"])
            .status();
    }
}

fn write_blob(dir: &Path, bytes: &[u8]) -> (Digest, u64, std::path::PathBuf) {
    let d = Digest::of(bytes);
    let p = dir.join(d.hex());
    std::fs::write(&p, bytes).unwrap();
    (d, bytes.len() as u64, p)
}

fn opts() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy::fast(3),
        verbose: 1,
        ..Default::default()
    }
}

/// Push two layers + config + manifest, read everything back, list tags, check with skopeo.
fn roundtrip(
    client: &Client,
    host: &str,
    repo: &str,
    skopeo_creds: Option<&str>,
    skopeo_tls: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let r: Reference = format!("{host}/{repo}:v1").parse().unwrap();
    let repo_h = client.repository(&r);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let layer1 = write_blob(dir.path(), &big);
    let layer2 = write_blob(dir.path(), b"second layer");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cfg = write_blob(dir.path(), config);
    let items: Vec<BlobItem> = [&layer1, &layer2, &cfg]
        .iter()
        .map(|(d, s, p)| (d.clone(), *s, p.clone(), None))
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = |_: &Digest, _: &BlobOutcome| {
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let out = repo_h.push_blobs(items.clone(), Some(&progress)).unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, BlobOutcome::Uploaded { .. })),
        "{out:?}"
    );
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), 3);
    // Second push: all exist.
    let out = repo_h.push_blobs(items, None).unwrap();
    assert!(out.iter().all(|o| *o == BlobOutcome::Exists), "{out:?}");
    assert_eq!(repo_h.blob_exists(&layer1.0).unwrap(), Some(layer1.1));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.0.to_string(), "size": cfg.1},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer1.0.to_string(), "size": layer1.1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer2.0.to_string(), "size": layer2.1},
        ]
    });
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let md = repo_h.put_manifest("v1", &mbytes, mt).unwrap();
    assert_eq!(md, Digest::of(&mbytes));
    for t in ["v2", "v3"] {
        repo_h.put_manifest(t, &mbytes, mt).unwrap();
    }
    let got = repo_h.get_manifest("v1").unwrap();
    assert_eq!(
        (got.bytes.as_slice(), got.media_type.as_str(), &got.digest),
        (mbytes.as_slice(), mt, &md)
    );
    assert_eq!(repo_h.get_manifest(&md.to_string()).unwrap().bytes, mbytes);
    assert_eq!(
        repo_h.head_manifest("v1").unwrap(),
        Some((md.clone(), mt.to_string(), mbytes.len() as u64))
    );
    assert_eq!(repo_h.head_manifest("nope").unwrap(), None);
    let mut sink = Vec::new();
    assert_eq!(repo_h.get_blob(&layer1.0, &mut sink).unwrap(), layer1.1);
    assert!(sink == big);
    let mut tags = repo_h.list_tags().unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    // Mount into another repository of the same registry.
    let other = client.repository(&format!("{host}/other/{repo}").parse().unwrap());
    assert_eq!(
        other
            .push_blob(&layer2.0, layer2.1, &layer2.2, Some(repo))
            .unwrap(),
        BlobOutcome::Mounted {
            from: repo.to_string()
        }
    );
    assert!(other.list_tags().unwrap().is_empty());
    // A bad manifest is reported with the registry's code.
    let e = repo_h.put_manifest("bad", br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#, mt).unwrap_err();
    eprintln!("expected error: {e}");
    assert!(
        e.to_string().starts_with("PUT http") && e.to_string().contains("MANIFEST_BLOB_UNKNOWN"),
        "{e}"
    );
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect").args(skopeo_tls);
    if let Some(c) = skopeo_creds {
        cmd.arg("--creds").arg(c);
    }
    let out = cmd
        .arg(format!("docker://{host}/{repo}:v1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], md.to_string());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
}

#[test]
#[ignore = "starts a real registry"]
fn open_registry_roundtrip_and_chunks() {
    let reg = Registry::start(&[]);
    let client = Client::with_credentials(opts(), CredentialEnv::default()).unwrap();
    roundtrip(
        &client,
        reg.host(),
        "smoke/app",
        None,
        &["--tls-verify=false"],
    );
    let chunked = Client::with_credentials(
        ClientOptions {
            chunk_size: Some(1 << 20),
            ..opts()
        },
        CredentialEnv::default(),
    )
    .unwrap();
    roundtrip(
        &chunked,
        reg.host(),
        "smoke/chunked",
        None,
        &["--tls-verify=false"],
    );
    eprintln!(
        "requests: {} + {}",
        client.request_count(),
        chunked.request_count()
    );
}

#[test]
#[ignore = "starts a real registry"]
fn basic_auth_registry_with_tls_and_login() {
    let reg = Registry::start(&["--auth", "--tls"]);
    let ca = reg.vars["REG_CACERT"].clone();
    let dir = tempfile::tempdir().unwrap();
    let env = CredentialEnv {
        home: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let o = ClientOptions {
        ca_file: Some(ca.clone().into()),
        ..opts()
    };
    // No credentials: a 401 that says what to do.
    let anon = Client::with_credentials(o.clone(), env.clone()).unwrap();
    let r: Reference = format!("{}/x", reg.host()).parse().unwrap();
    let e = anon.repository(&r).list_tags().unwrap_err().to_string();
    assert!(
        e.contains("no credentials found") && e.contains("kiln login"),
        "{e}"
    );
    // Wrong password: login refuses and writes nothing.
    let e = login(&anon, reg.host(), "benchuser", "wrong", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("401") || e.contains("UNAUTHORIZED"), "{e}");
    assert!(!dir.path().join(".docker/config.json").exists());
    let fresh = Client::with_credentials(o.clone(), env.clone()).unwrap();
    let path = login(&fresh, reg.host(), "benchuser", "benchpass", None).unwrap();
    assert_eq!(path, dir.path().join(".docker/config.json"));
    let client = Client::with_credentials(o, env).unwrap();
    let creds = format!("{}:{}", reg.vars["REG_USER"], reg.vars["REG_PASSWORD"]);
    roundtrip(
        &client,
        reg.host(),
        "auth/app",
        Some(&creds),
        &[
            "--cert-dir",
            Path::new(&ca).parent().unwrap().to_str().unwrap(),
            "--tls-verify=false",
        ],
    );
}
