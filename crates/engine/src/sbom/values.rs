//! Values both documents write: the creation time, licenses as SPDX expressions (or not), name-based ids.

use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// `YYYY-MM-DDThh:mm:ssZ` of unix seconds (SPDX's and CycloneDX's format; no clock is read): the image's own
/// rule (`image::rfc3339`).
pub use crate::image::rfc3339;

/// A declared license: an SPDX expression when it parses as one against the SPDX license list (a bare
/// `LicenseRef-…` is not: the document would have to define it), else the declared text.
pub enum License {
    Expression(String),
    Text(String),
}

pub fn license(declared: &str) -> License {
    let d = declared.trim();
    let parsed = spdx::Expression::parse_mode(d, spdx::ParseMode::STRICT).is_ok();
    if parsed && !d.contains("LicenseRef-") && !d.contains("DocumentRef-") {
        // As declared, with runs of spaces made one.
        License::Expression(d.split_whitespace().collect::<Vec<_>>().join(" "))
    } else {
        License::Text(d.to_string())
    }
}

/// A UUID-shaped id from the subject digest and what it is for: stable across rebuilds of the same image,
/// different for different images. The version and variant bits are set as for a name-based (v5) UUID so that
/// validators accept it; the hash is SHA-256, not v5's SHA-1.
pub fn uuid(subject: &Digest, purpose: &str) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(subject.to_string().as_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// A checksum in lower-case hex, serialized without an intermediate string: a file's SHA-1 bytes, or the hex a
/// `Digest` already holds.
pub enum Hex<'a> {
    Sha1(&'a [u8; 20]),
    Str(&'a str),
}

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Hex::Sha1(b) => {
                let mut buf = [0u8; 40];
                // 20 bytes always encode into 40.
                hex::encode_to_slice(b, &mut buf).expect("40 hex digits");
                s.serialize_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
            }
            Hex::Str(h) => s.serialize_str(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_licenses_ids() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert!(
            matches!(license("MIT OR Apache-2.0"), License::Expression(e) if e == "MIT OR Apache-2.0")
        );
        assert!(matches!(license("(MIT)"), License::Expression(_)));
        assert!(matches!(license("BSD"), License::Text(_)));
        assert!(matches!(license("LicenseRef-x"), License::Text(_)));
        assert!(matches!(
            license("SEE LICENSE IN LICENSE.md"),
            License::Text(_)
        ));
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let u = uuid(&d, "x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert_ne!(u, uuid(&d, "y"));
    }
}
