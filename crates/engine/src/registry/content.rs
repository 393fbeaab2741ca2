//! Reading and writing content on a [`Repository`]: blob HEAD/GET, manifests, tag listing.

use std::io::{Read, Write};

use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LINK};
use url::Url;

use super::body::Body;
use super::client::Repository;
use super::errors::{protocol_error, status_error};
use super::http::{Request, read_limited};
use super::retry::{Verdict, retry};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};

/// Manifest types kiln reads: OCI manifest and index, Docker schema 2 manifest and manifest list.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Manifests bigger than this are refused (the spec's suggested limit is 4 MiB).
pub(super) const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    /// Exactly the bytes served (their sha256 is `digest`).
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// The `rel="next"` target of a `Link` header: `<url>; rel="next"` (maybe among other links).
pub fn parse_next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|link| {
        let link = link.trim();
        let (target, params) = link.strip_prefix('<')?.split_once('>')?;
        let next = params.split(';').any(|p| {
            let p = p.trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split(' ')
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        next.then(|| target.to_string())
    })
}

pub(super) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn media_type_of(h: &HeaderMap, bytes: &[u8]) -> String {
    let ct = header(h, CONTENT_TYPE.as_str())
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    match ct {
        Some(ct) if !ct.is_empty() && ct != "application/json" && ct != "text/plain" => ct,
        _ => serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string()),
    }
}

/// A `Docker-Content-Digest` that contradicts what we computed is an error; other algorithms are not checked.
pub(super) fn check_digest_header(
    h: &HeaderMap,
    method: &str,
    url: &Url,
    expected: &Digest,
) -> Result<()> {
    if let Some(d) = header(h, "docker-content-digest")
        && d.starts_with("sha256:")
        && d != expected.to_string()
    {
        return Err(protocol_error(
            method,
            url,
            None,
            format!("registry says the digest is {d}, expected {expected}"),
        ));
    }
    Ok(())
}

pub(super) fn fail(method: &str, url: &Url, resp: Response) -> Error {
    let s = resp.status().as_u16();
    status_error(method, url, s, &read_limited(resp, 64 * 1024))
}

impl Repository {
    pub(super) fn send(&self, req: Request) -> Result<(Response, Url)> {
        let ep = self.endpoint()?;
        let url = req.url.clone();
        Ok((self.transport().send(&ep, &req)?, url))
    }

    /// `HEAD` a blob: its size when present.
    pub fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>> {
        let ep = self.endpoint()?;
        let url = self.url(&ep, &format!("blobs/{digest}"));
        let (resp, url) = self.send(Request::new(Method::HEAD, url, &self.pull_scope()))?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(
                header(resp.headers(), "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(fail("HEAD", &url, resp)),
        }
    }

    /// Stream a blob into `sink`, verifying its sha256 (and the announced length) on the way. Returns its size.
    /// `size` is what the blob's descriptor declares: a registry announcing or sending more is cut off there (a
    /// config declared as 100 bytes and served as 3 GB must not take 3 GB of memory or disk). On a digest
    /// mismatch the sink has received bad bytes: write to a temporary file and discard it then.
    pub fn get_blob(&self, digest: &Digest, size: u64, sink: &mut dyn Write) -> Result<u64> {
        let ep = self.endpoint()?;
        let url = self.url(&ep, &format!("blobs/{digest}"));
        let (resp, url) = self.send(Request::new(Method::GET, url, &self.pull_scope()))?;
        if !resp.status().is_success() {
            return Err(fail("GET", &url, resp));
        }
        let announced: Option<u64> =
            header(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|l| l.parse().ok());
        let too_big = |got: u64| {
            protocol_error(
                "GET",
                &url,
                Some(200),
                format!(
                    "blob {digest}: {got} bytes or more, but its descriptor says {size}; stopped reading"
                ),
            )
        };
        if let Some(a) = announced.filter(|a| *a > size) {
            return Err(too_big(a));
        }
        // One byte past the declared size tells a longer blob from an exact one.
        let mut resp = resp.take(size.saturating_add(1));
        let mut w = HashingWriter::new(sink);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(protocol_error(
                        "GET",
                        &url,
                        None,
                        format!("reading blob {digest}: {e}"),
                    ));
                }
            };
            w.write_all(&buf[..n]).map_err(|e| {
                protocol_error("GET", &url, None, format!("writing blob {digest}: {e}"))
            })?;
        }
        let (got, len, _) = w.finish();
        if len > size {
            return Err(too_big(len));
        }
        if let Some(a) = announced.filter(|a| *a != len) {
            return Err(protocol_error(
                "GET",
                &url,
                Some(200),
                format!("blob {digest}: got {len} bytes, expected {a}"),
            ));
        }
        if got != *digest {
            return Err(protocol_error(
                "GET",
                &url,
                Some(200),
                format!("blob content has digest {got}, expected {digest}"),
            ));
        }
        Ok(len)
    }

    /// Fetch a manifest by tag or digest; when fetched by digest, the bytes are verified against it.
    pub fn get_manifest(&self, reference: &str) -> Result<RawManifest> {
        Ok(self
            .fetch_manifest(reference, false)?
            .expect("a missing manifest is an error here"))
    }

    /// [`Repository::get_manifest`], `None` when the registry has no such manifest (404).
    pub fn find_manifest(&self, reference: &str) -> Result<Option<RawManifest>> {
        self.fetch_manifest(reference, true)
    }

    fn fetch_manifest(&self, reference: &str, missing_ok: bool) -> Result<Option<RawManifest>> {
        let ep = self.endpoint()?;
        let url = self.url(&ep, &format!("manifests/{reference}"));
        let req =
            Request::new(Method::GET, url, &self.pull_scope()).header(ACCEPT, MANIFEST_ACCEPT);
        let (resp, url) = self.send(req)?;
        if missing_ok && resp.status().as_u16() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(fail("GET", &url, resp));
        }
        let headers = resp.headers().clone();
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| protocol_error("GET", &url, None, format!("reading manifest: {e}")))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(protocol_error(
                "GET",
                &url,
                Some(200),
                "manifest larger than 4 MiB",
            ));
        }
        let digest = Digest::of(&bytes);
        if reference.contains(':') && reference != digest.to_string() {
            return Err(protocol_error(
                "GET",
                &url,
                Some(200),
                format!("manifest content has digest {digest}"),
            ));
        }
        check_digest_header(&headers, "GET", &url, &digest)?;
        Ok(Some(RawManifest {
            media_type: media_type_of(&headers, &bytes),
            bytes,
            digest,
        }))
    }

    /// `HEAD` a manifest: `(digest, media type, size)` when it exists.
    pub fn head_manifest(&self, reference: &str) -> Result<Option<(Digest, String, u64)>> {
        let ep = self.endpoint()?;
        let url = self.url(&ep, &format!("manifests/{reference}"));
        let req =
            Request::new(Method::HEAD, url, &self.pull_scope()).header(ACCEPT, MANIFEST_ACCEPT);
        let (resp, url) = self.send(req)?;
        match resp.status().as_u16() {
            404 => return Ok(None),
            200..=299 => {}
            _ => return Err(fail("HEAD", &url, resp)),
        }
        let h = resp.headers();
        let digest = header(h, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        match digest {
            Some(d) => {
                let size = header(h, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                Ok(Some((d, media_type_of(h, b""), size)))
            }
            // The distribution spec has `Docker-Content-Digest` on a manifest HEAD only "if present", and some
            // registries leave it out: fetch and hash.
            None => {
                let m = self.get_manifest(reference)?;
                Ok(Some((m.digest, m.media_type, m.bytes.len() as u64)))
            }
        }
    }

    /// `PUT` a manifest under a tag or its digest; returns its digest.
    pub fn put_manifest(&self, reference: &str, bytes: &[u8], media_type: &str) -> Result<Digest> {
        Ok(self.send_manifest(reference, bytes, media_type)?.0)
    }

    /// `PUT` a manifest under `reference`, checking the digest the registry says it stored; also whether it
    /// answered with `OCI-Subject` (it keeps the referrers list of the manifest's subject: `put_manifest_with_subject`).
    pub(super) fn send_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(Digest, bool)> {
        let ep = self.endpoint()?;
        let url = self.url(&ep, &format!("manifests/{reference}"));
        let digest = Digest::of(bytes);
        let req = Request::new(Method::PUT, url, &self.push_scope())
            .header(CONTENT_TYPE, media_type)
            .body(Body::bytes(bytes.to_vec()));
        let (resp, url) = self.send(req)?;
        if !resp.status().is_success() {
            return Err(fail("PUT", &url, resp));
        }
        check_digest_header(resp.headers(), "PUT", &url, &digest)?;
        Ok((digest, header(resp.headers(), "oci-subject").is_some()))
    }

    /// `PUT` a manifest under `tag`, retried on the same terms as any request, but with the tag looked at again
    /// before every retry: a failed attempt may have been stored after all, and meanwhile another publisher may
    /// have claimed the tag — a blind retry would then overwrite a version that publisher verified and printed
    /// (seen with 16 publishers behind a proxy injecting 429/5xx on tag writes). `seen` is what the tag pointed
    /// at when the caller decided to write it: the write is tried again only while the tag still points there
    /// (or nowhere). Returns `None` when the tag now points at these bytes, or what it points at instead.
    pub fn put_tag(
        &self,
        tag: &str,
        bytes: &[u8],
        media_type: &str,
        seen: Option<&Digest>,
    ) -> Result<Option<Digest>> {
        let ep = self.endpoint()?;
        let url = self.url(&ep, &format!("manifests/{tag}"));
        let digest = Digest::of(bytes);
        let transport = self.transport();
        let req = Request::new(Method::PUT, url.clone(), &self.push_scope())
            .header(CONTENT_TYPE, media_type)
            .body(Body::bytes(bytes.to_vec()))
            .no_retry();
        let (mut taken, mut attempts) = (None, 0);
        let outcome = retry(
            &transport.opts().retry,
            || -> Result<Option<Result<Response>>> {
                attempts += 1;
                if attempts > 1 {
                    match self.head_manifest(tag)? {
                        Some((d, _, _)) if d == digest => return Ok(None),
                        Some((d, _, _)) if Some(&d) != seen => {
                            taken = Some(d);
                            return Ok(None);
                        }
                        _ => {}
                    }
                }
                Ok(Some(transport.send(&ep, &req)))
            },
            |outcome, n| match outcome {
                Ok(Some(exchange)) => transport.judge(&req, exchange, n),
                _ => Verdict::Done,
            },
        );
        let Some(exchange) = outcome? else {
            return Ok(taken);
        };
        let resp = exchange?;
        if !resp.status().is_success() {
            return Err(fail("PUT", &url, resp));
        }
        check_digest_header(resp.headers(), "PUT", &url, &digest)?;
        Ok(None)
    }

    /// All tags, following `Link` pagination; an unknown repository has none. Order as served, duplicates dropped.
    pub fn list_tags(&self) -> Result<Vec<String>> {
        self.tag_list(true)
    }

    /// Like [`Repository::list_tags`], but a repository the registry does not know (404, `NAME_UNKNOWN`, on the
    /// first page) is that error ([`Error::not_found`]) instead of an empty list: `kiln tags` says so.
    pub fn list_existing_tags(&self) -> Result<Vec<String>> {
        self.tag_list(false)
    }

    fn tag_list(&self, missing_is_empty: bool) -> Result<Vec<String>> {
        let ep = self.endpoint()?;
        let mut url = self.url(&ep, "tags/list?n=100");
        let mut tags: Vec<String> = Vec::new();
        let mut seen_tags = std::collections::HashSet::new();
        let mut seen_urls = std::collections::HashSet::new();
        // A registry's paging is followed while it makes progress, and no further: a cursor that changes without
        // adding a tag (seen looping forever) ends the listing, and so do MAX_TAG_PAGES pages or a page over
        // MAX_TAG_PAGE bytes (both far above any real repository: 100 tags a page, 64 bytes a tag at most).
        while seen_urls.insert(url.to_string()) {
            if seen_urls.len() > MAX_TAG_PAGES {
                return Err(protocol_error(
                    "GET",
                    &url,
                    Some(200),
                    format!("the tag list goes on past {MAX_TAG_PAGES} pages; stopped"),
                ));
            }
            let (resp, u) =
                self.send(Request::new(Method::GET, url.clone(), &self.pull_scope()))?;
            match resp.status().as_u16() {
                200..=299 => {}
                404 if tags.is_empty() && missing_is_empty => return Ok(tags),
                _ => return Err(fail("GET", &u, resp)),
            }
            let next = header(resp.headers(), LINK.as_str()).and_then(parse_next_link);
            let body = read_limited(resp, MAX_TAG_PAGE + 1);
            if body.len() as u64 > MAX_TAG_PAGE {
                return Err(protocol_error(
                    "GET",
                    &u,
                    Some(200),
                    format!("a tag list page over {} MiB; stopped", MAX_TAG_PAGE >> 20),
                ));
            }
            // Only the tags are decoded (no value tree of the whole page).
            #[derive(serde::Deserialize)]
            struct Page {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: Page = serde_json::from_slice(&body).map_err(|e| {
                protocol_error("GET", &u, Some(200), format!("tag list is not JSON: {e}"))
            })?;
            let before = tags.len();
            for t in page.tags.unwrap_or_default() {
                if seen_tags.insert(t.clone()) {
                    tags.push(t);
                }
            }
            match next {
                Some(n) if tags.len() > before => {
                    url = u.join(&n).map_err(|e| {
                        protocol_error("GET", &u, None, format!("bad Link header: {e}"))
                    })?
                }
                _ => break,
            }
        }
        Ok(tags)
    }
}

/// Most pages of one tag listing (at 100 tags a page: a million tags).
const MAX_TAG_PAGES: usize = 10_000;
/// Largest tag list page read (a registry that ignores `n` may send every tag at once).
const MAX_TAG_PAGE: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            parse_next_link(r#"</v2/r/tags/list?last=b&n=100>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?last=b&n=100")
        );
        assert_eq!(
            parse_next_link("<https://h/v2/r/tags/list?last=b>;rel=next").as_deref(),
            Some("https://h/v2/r/tags/list?last=b")
        );
        assert_eq!(
            parse_next_link(r#"</a>; rel="prev", </b>; rel="next""#).as_deref(),
            Some("/b")
        );
        assert_eq!(parse_next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(parse_next_link("garbage"), None);
        let base = Url::parse("https://h:5000/v2/r/tags/list?n=100").unwrap();
        assert_eq!(
            base.join("/v2/r/tags/list?last=b").unwrap().as_str(),
            "https://h:5000/v2/r/tags/list?last=b"
        );
    }

    #[test]
    fn media_types() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            "application/vnd.oci.image.index.v1+json; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            media_type_of(&h, b""),
            "application/vnd.oci.image.index.v1+json"
        );
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            media_type_of(
                &h,
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            "application/vnd.docker.distribution.manifest.v2+json"
        );
    }
}
