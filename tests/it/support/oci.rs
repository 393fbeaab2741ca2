//! Test-side registry client (reqwest blocking, not kiln) to seed and inspect a `Registry`,
//! directly or through a `Proxy`: blobs, manifests, tags, and a tiny valid OCI image.

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};

use super::registry::Registry;
use super::sha256_hex;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Speaks the distribution API to `base` (the registry itself or a proxy in front of it) with the
/// registry's credentials (Basic, or a minted Bearer token scoped `repository:<repo>:pull,push`).
pub struct Api<'a> {
    reg: &'a Registry,
    base: String,
    client: Client,
}

/// What `Api::push_test_image` pushed.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub manifest: Vec<u8>,
    /// `sha256:…`
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

impl Registry {
    /// A test-side client talking to this registry directly.
    pub fn api(&self) -> Api<'_> {
        Api::via(self, &self.url())
    }
}

impl<'a> Api<'a> {
    /// A client talking to `base` (e.g. `proxy.url()`) but authenticating like `reg`.
    pub fn via(reg: &'a Registry, base: &str) -> Api<'a> {
        Api {
            reg,
            base: base.trim_end_matches('/').to_string(),
            client: reg.client(),
        }
    }

    fn authed(&self, rb: RequestBuilder, repo: &str) -> RequestBuilder {
        match self
            .reg
            .auth_header(&[&format!("repository:{repo}:pull,push")])
        {
            Some(h) => rb.header(AUTHORIZATION, h),
            None => rb,
        }
    }

    fn abs(&self, loc: &str) -> String {
        if loc.starts_with('/') {
            format!("{}{loc}", self.base)
        } else {
            loc.to_string()
        }
    }

    fn check(resp: Response, what: &str) -> Response {
        if !resp.status().is_success() {
            let st = resp.status();
            panic!("{what}: HTTP {st}: {}", resp.text().unwrap_or_default());
        }
        resp
    }

    /// Monolithic upload (POST, then PUT `?digest=` with the whole body). Returns the digest.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = format!("sha256:{}", sha256_hex(data));
        let r = self
            .authed(
                self.client
                    .post(format!("{}/v2/{repo}/blobs/uploads/", self.base)),
                repo,
            )
            .send()
            .unwrap();
        let r = Self::check(r, "POST blob upload");
        assert_eq!(r.status().as_u16(), 202, "POST blob upload status");
        let loc = self.abs(r.headers()[LOCATION].to_str().unwrap());
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .authed(self.client.put(format!("{loc}{sep}digest={digest}")), repo)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data.to_vec())
            .send()
            .unwrap();
        let r = Self::check(r, "PUT blob");
        assert_eq!(r.status().as_u16(), 201, "PUT blob status");
        digest
    }

    /// `HEAD /v2/<repo>/blobs/<digest>` is 200.
    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let r = self
            .authed(
                self.client
                    .head(format!("{}/v2/{repo}/blobs/{digest}", self.base)),
                repo,
            )
            .send()
            .unwrap();
        r.status().as_u16() == 200
    }

    pub fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let r = self
            .authed(
                self.client
                    .get(format!("{}/v2/{repo}/blobs/{digest}", self.base)),
                repo,
            )
            .send()
            .unwrap();
        Self::check(r, "GET blob").bytes().unwrap().to_vec()
    }

    /// PUT a manifest under `reference` (tag or digest). Returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self
            .authed(
                self.client
                    .put(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
                repo,
            )
            .header(CONTENT_TYPE, media_type)
            .body(body.to_vec())
            .send()
            .unwrap();
        let r = Self::check(r, "PUT manifest");
        assert_eq!(r.status().as_u16(), 201, "PUT manifest status");
        format!("sha256:{}", sha256_hex(body))
    }

    /// GET a manifest (accepting OCI and Docker v2 types): `(content-type, bytes)`, or None on 404.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ]
        .join(", ");
        let r = self
            .authed(
                self.client
                    .get(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
                repo,
            )
            .header("Accept", accept)
            .send()
            .unwrap();
        if r.status().as_u16() == 404 {
            return None;
        }
        let r = Self::check(r, "GET manifest");
        let ct = r
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Some((ct, r.bytes().unwrap().to_vec()))
    }

    /// Push a one-layer OCI image (layer: `hello.txt` containing `content`) tagged `tag`.
    pub fn push_image_with(&self, repo: &str, tag: &str, content: &str) -> TestImage {
        let (layer, diff_id) = tiny_layer(content);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap();
        let layer_digest = self.push_blob(repo, &layer);
        let config_digest = self.push_blob(repo, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let manifest_digest = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest);
        TestImage {
            manifest,
            manifest_digest,
            config,
            config_digest,
            layer,
            layer_digest,
        }
    }

    /// `push_image_with(repo, tag, "hello from <repo>:<tag>\n")`.
    pub fn push_test_image(&self, repo: &str, tag: &str) -> TestImage {
        self.push_image_with(repo, tag, &format!("hello from {repo}:{tag}\n"))
    }
}

/// A deterministic gzip'd tar with one file; returns `(tar.gz bytes, "sha256:<diff id>")`.
pub fn tiny_layer(content: &str) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "hello.txt", content.as_bytes())
        .unwrap();
    let raw = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&raw));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}
