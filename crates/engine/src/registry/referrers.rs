//! The two requests of the distribution spec 1.1 that are about referrers: a manifest `PUT` that tells whether
//! the registry took note of the manifest's `subject` (the `OCI-Subject` response header), and
//! `GET /v2/<name>/referrers/<digest>` (an image index of the manifests whose subject is that digest).

use std::io::Read;

use oci_spec::image::{Descriptor, ImageIndex};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LINK};

use super::client::Repository;
use super::content::{MAX_MANIFEST, fail, header, parse_next_link};
use super::errors::protocol_error;
use super::http::Request;
use crate::digest::Digest;
use crate::error::Result;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Most pages of one referrers listing followed (each up to [`MAX_MANIFEST`]).
const MAX_PAGES: usize = 64;

impl Repository {
    /// `PUT` a manifest by its digest. Returns whether the registry answered with an `OCI-Subject` header:
    /// a registry that does keeps the referrers list of the manifest's subject itself (distribution spec 1.1,
    /// "Pushing Manifests with Subject"); one that does not leaves it to the client (the referrers tag schema).
    pub fn put_manifest_with_subject(&self, bytes: &[u8], media_type: &str) -> Result<bool> {
        let digest = Digest::of(bytes);
        Ok(self
            .send_manifest(&digest.to_string(), bytes, media_type)?
            .1)
    }

    /// The referrers of `subject` through the referrers API, following `Link` pages; `None` when the registry
    /// has no such API (404, or an answer that is not an image index, as some registries send for unknown
    /// routes): the caller then reads the referrers tag. `artifact_type` is passed as the spec's filter; a
    /// registry may ignore it, so the caller filters again.
    pub fn referrers_api(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>> {
        let ep = self.endpoint()?;
        let mut path = format!("referrers/{subject}");
        if let Some(t) = artifact_type {
            path = format!("{path}?artifactType={}", urlencode(t));
        }
        let mut url = self.url(&ep, &path);
        let mut out = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            let req =
                Request::new(Method::GET, url.clone(), &self.pull_scope()).header(ACCEPT, INDEX);
            let (resp, u) = self.send(req)?;
            match resp.status().as_u16() {
                200..=299 => {}
                // 404: no API (distribution 2.x), or (the first page of) a registry without it under another
                // name; 400/405: routes some registries refuse for paths they do not know.
                400 | 404 | 405 if pages == 1 => return Ok(None),
                _ => return Err(fail("GET", &u, resp)),
            }
            let ct = header(resp.headers(), CONTENT_TYPE.as_str()).map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
            let next = header(resp.headers(), LINK.as_str()).and_then(parse_next_link);
            let mut bytes = Vec::new();
            resp.take(MAX_MANIFEST + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| {
                    protocol_error("GET", &u, None, format!("reading the referrers: {e}"))
                })?;
            if bytes.len() as u64 > MAX_MANIFEST {
                return Err(protocol_error(
                    "GET",
                    &u,
                    Some(200),
                    "a referrers page larger than 4 MiB; stopped",
                ));
            }
            let is_index = crate::image::is_index(ct.as_deref(), &bytes);
            let parsed = serde_json::from_slice::<ImageIndex>(&bytes).ok();
            let Some(index) = parsed.filter(|_| is_index) else {
                if pages == 1 {
                    return Ok(None);
                }
                return Err(protocol_error(
                    "GET",
                    &u,
                    Some(200),
                    "a referrers page is not an image index",
                ));
            };
            out.extend(index.manifests().iter().cloned());
            match next {
                Some(n) if pages < MAX_PAGES => {
                    url = u.join(&n).map_err(|e| {
                        protocol_error("GET", &u, None, format!("bad Link header: {e}"))
                    })?
                }
                Some(_) => {
                    return Err(protocol_error(
                        "GET",
                        &u,
                        Some(200),
                        format!("the referrers go on past {MAX_PAGES} pages; stopped"),
                    ));
                }
                None => return Ok(Some(out)),
            }
        }
    }
}

/// A media type as a query value (`+` and `/` escaped).
fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
