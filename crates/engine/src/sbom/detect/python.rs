//! Python: an installed distribution's `NAME-VERSION.dist-info/METADATA` (core metadata: name, version,
//! `License-Expression` or `License`) and its `RECORD`, whose files (those kiln added) belong to the package.

use std::collections::HashMap;

use crate::sbom::detect::found::{Found, METADATA_CAP, read_capped};
use crate::sbom::model::{self, Ecosystem, Evidence, EvidenceKind, FileRecord};

/// `f` is the METADATA file in `dir` (a `.dist-info` directory in the image); `files` are all files, sorted.
pub fn dist_info(
    f: &FileRecord,
    dir: &str,
    files: &[&FileRecord],
    found: &mut Found,
) -> Result<(), String> {
    let bytes = read_capped(&f.source, METADATA_CAP)?;
    let text = String::from_utf8_lossy(&bytes);
    let meta = headers(&text);
    let (Some(name), Some(version)) = (meta.get("name"), meta.get("version")) else {
        return Err("METADATA without Name and Version".into());
    };
    // License-Expression (metadata 2.4) is an SPDX expression by definition; License is free text, often
    // "UNKNOWN" from old setuptools.
    let license = meta
        .get("license-expression")
        .or(meta.get("license"))
        .filter(|l| !l.eq_ignore_ascii_case("UNKNOWN"));
    let members = match model::find(files, &format!("{dir}/RECORD")) {
        Some(i) => record_files(files[i], dir, files)?,
        None => Vec::new(),
    };
    let p = found.add(
        Ecosystem::PyPi,
        name,
        Some(version),
        license.map(String::as_str),
        &f.path,
        EvidenceKind::Member,
    );
    p.evidence.extend(members.into_iter().map(|path| Evidence {
        path,
        kind: EvidenceKind::Member,
    }));
    Ok(())
}

/// The header block of an RFC 822-style METADATA file, keys lower-cased; continuation lines (indented) are
/// joined. The first occurrence of a key wins (Classifier and friends repeat, and are not read).
fn headers(text: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| out.get_mut(k)) {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        last = None;
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if !out.contains_key(&k) {
                out.insert(k.clone(), v.trim().to_string());
                last = Some(k);
            }
        }
    }
    out
}

/// The RECORD's paths that are files kiln added, as image paths. Paths are relative to the directory that holds
/// the dist-info (site-packages); `../../../bin/tool` style paths are resolved.
fn record_files(
    record: &FileRecord,
    dist_info: &str,
    files: &[&FileRecord],
) -> Result<Vec<String>, String> {
    let bytes = read_capped(&record.source, METADATA_CAP)?;
    let text = String::from_utf8_lossy(&bytes);
    let base = dist_info.rsplit_once('/').map_or("", |(b, _)| b);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rel) = first_csv_field(line) else {
            continue;
        };
        if let Some(path) = join(base, &rel)
            && model::find(files, &path).is_some()
        {
            out.push(path);
        }
    }
    Ok(out)
}

/// The first field of a CSV line (RECORD quotes paths that hold commas or quotes, doubling inner quotes).
fn first_csv_field(line: &str) -> Option<String> {
    let line = line.trim_end_matches('\r');
    if let Some(rest) = line.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    return Some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let f = line.split(',').next()?;
        (!f.is_empty()).then(|| f.to_string())
    }
}

/// `base` + `rel`, with `.` and `..` resolved; None when it climbs above `/` or is absolute (a RECORD entry
/// for a file outside the image root).
fn join(base: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers_and_record_paths() {
        let h = headers(
            "Metadata-Version: 2.1\nName: Foo\nLicense: line one\n  line two\nVersion: 1\n\nbody: x\n",
        );
        assert_eq!(h["name"], "Foo");
        assert_eq!(h["license"], "line one\nline two");
        assert!(!h.contains_key("body"));
        assert_eq!(
            first_csv_field("\"a,\"\"b\",sha256=x,1").as_deref(),
            Some("a,\"b")
        );
        assert_eq!(first_csv_field("a/b.py,,").as_deref(), Some("a/b.py"));
        assert_eq!(
            join("/usr/lib/py/site", "../../../bin/t").as_deref(),
            Some("/usr/bin/t")
        );
        assert_eq!(join("/a", "../../x"), None);
    }
}
