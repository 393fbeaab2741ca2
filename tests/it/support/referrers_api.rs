//! The referrers API of distribution spec 1.1, played by the fault proxy (`Proxy::enable_referrers_api`) in front
//! of a registry that lacks it (distribution 2.8): a manifest `PUT` that carries a `subject` is forwarded, and on
//! success answered with `OCI-Subject: <subject digest>` and remembered; `GET /v2/<name>/referrers/<digest>`
//! answers an image index of the manifests remembered for that subject (filtered by `?artifactType=`, with
//! `OCI-Filters-Applied`).

use std::collections::BTreeMap;
use std::io::{self, BufReader};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use super::http::{self, Head};

/// (repository, subject digest) → descriptors of the manifests that named it, in arrival order.
#[derive(Default)]
pub struct ReferrersApi {
    seen: Mutex<BTreeMap<(String, String), Vec<serde_json::Value>>>,
}

/// A locally made answer: status, headers, body.
pub type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

pub fn is_manifest_put(method: &str, target: &str) -> bool {
    method == "PUT" && target.starts_with("/v2/") && target.contains("/manifests/")
}

/// `/v2/<name>/referrers/<digest>` → (name, digest).
pub fn referrers_target(method: &str, target: &str) -> Option<(String, String)> {
    if method != "GET" {
        return None;
    }
    let path = target.split('?').next()?.strip_prefix("/v2/")?;
    let (name, digest) = path.rsplit_once("/referrers/")?;
    Some((name.to_string(), digest.to_string()))
}

impl ReferrersApi {
    /// Forward a manifest `PUT` (its body already read) upstream; remember it when it has a subject and the
    /// registry took it, and say so with `OCI-Subject`.
    pub fn put_manifest(&self, upstream: &str, head: &Head, body: &[u8]) -> io::Result<Answer> {
        let (_, target, _) = head.request_parts();
        let name = target["/v2/".len()..target.find("/manifests/").unwrap()].to_string();
        let mut req = Head::new(head.start.clone());
        for (k, v) in &head.headers {
            if ![
                "host",
                "connection",
                "content-length",
                "transfer-encoding",
                "expect",
            ]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
            {
                req.add(k, v.clone());
            }
        }
        req.set("Host", upstream.to_string());
        req.set("Connection", "close");
        req.set("Content-Length", body.len().to_string());
        let mut up = TcpStream::connect(upstream)?;
        up.set_read_timeout(Some(Duration::from_secs(60)))?;
        req.write_to(&mut up)?;
        io::Write::write_all(&mut up, body)?;
        let mut r = BufReader::new(up);
        let resp = http::read_head(&mut r)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let mut bytes = Vec::new();
        http::copy_body(&mut r, &mut bytes, resp.body_kind(false), None)?;
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        for k in [
            "Content-Type",
            "Docker-Content-Digest",
            "Location",
            "WWW-Authenticate",
        ] {
            if let Some(v) = resp.get(k) {
                headers.push((k, v.to_string()));
            }
        }
        let m: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if (200..300).contains(&resp.status())
            && let Some(subject) = m["subject"]["digest"].as_str()
        {
            let artifact_type = m["artifactType"]
                .as_str()
                .or_else(|| m["config"]["mediaType"].as_str())
                .unwrap_or_default();
            let mut d = serde_json::json!({
                "mediaType": m["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json"),
                "digest": crate::support::sha256_digest(body),
                "size": body.len(),
                "artifactType": artifact_type,
            });
            if m["annotations"].is_object() {
                d["annotations"] = m["annotations"].clone();
            }
            let mut seen = self.seen.lock().unwrap();
            let list = seen.entry((name, subject.to_string())).or_default();
            if !list.iter().any(|x| x["digest"] == d["digest"]) {
                list.push(d);
            }
            headers.push(("OCI-Subject", subject.to_string()));
        }
        Ok((resp.status(), headers, bytes))
    }

    /// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`.
    pub fn list(&self, name: &str, digest: &str, target: &str) -> Answer {
        let (_, query) = http::split_query(target);
        let filter = query
            .iter()
            .find(|(k, _)| k == "artifactType")
            .map(|(_, v)| v.clone());
        let all = self
            .seen
            .lock()
            .unwrap()
            .get(&(name.to_string(), digest.to_string()))
            .cloned()
            .unwrap_or_default();
        let manifests: Vec<_> = all
            .into_iter()
            .filter(|d| filter.as_ref().is_none_or(|f| d["artifactType"] == *f))
            .collect();
        let mut headers = vec![(
            "Content-Type",
            "application/vnd.oci.image.index.v1+json".to_string(),
        )];
        if filter.is_some() {
            headers.push(("OCI-Filters-Applied", "artifactType".to_string()));
        }
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        (200, headers, body.to_string().into_bytes())
    }

    /// Every subject's remembered referrers: (repository, subject) → their digests.
    pub fn seen(&self) -> BTreeMap<(String, String), Vec<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter()
                        .map(|d| d["digest"].as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    }
}
