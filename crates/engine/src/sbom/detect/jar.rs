//! Java: the Maven coordinates in a jar's `META-INF/maven/GROUP/ARTIFACT/pom.properties` (a shaded or fat jar
//! has one per library it bundles). Only the zip's central directory and those entries are read. Jars nested in
//! a jar (Spring Boot's `BOOT-INF/lib/`) are not opened.

use std::io::{BufReader, Read};

use crate::sbom::detect::found::{Found, METADATA_CAP};
use crate::sbom::model::{Ecosystem, EvidenceKind, FileRecord};

/// A jar with more pom.properties than this is not a jar a build made; the rest are skipped with a warning.
const MAX_POMS: usize = 10_000;

pub fn scan(f: &FileRecord, found: &mut Found) -> Result<(), String> {
    let file = std::fs::File::open(&f.source)
        .map_err(|e| format!("cannot open {}: {e}", f.source.display()))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| format!("not a readable jar: {e}"))?;
    let poms: Vec<usize> = (0..zip.len())
        .filter(|&i| {
            zip.name_for_index(i)
                .is_some_and(|n| n.starts_with("META-INF/maven/") && n.ends_with("/pom.properties"))
        })
        .collect();
    if poms.len() > MAX_POMS {
        found.warn(format!(
            "{}: more than {MAX_POMS} pom.properties; only the first were read",
            f.path
        ));
    }
    for i in poms.into_iter().take(MAX_POMS) {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format!("cannot read entry {i}: {e}"))?;
        let mut text = String::new();
        // A bounded read: the entry's declared size is not trusted.
        if let Err(e) = (&mut entry).take(METADATA_CAP).read_to_string(&mut text) {
            found.warn(format!("{}!{}: {e}; skipped", f.path, entry.name()));
            continue;
        }
        let props = properties(&text);
        let get = |k: &str| props.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        match (get("groupId"), get("artifactId"), get("version")) {
            (Some(g), Some(a), Some(v)) if !g.is_empty() && !a.is_empty() => {
                found.add(
                    Ecosystem::Maven,
                    &format!("{g}:{a}"),
                    Some(v),
                    None,
                    &f.path,
                    EvidenceKind::Embedded,
                );
            }
            _ => found.warn(format!(
                "{}!{}: no groupId, artifactId and version; skipped",
                f.path,
                entry.name()
            )),
        }
    }
    Ok(())
}

/// `key=value` (or `key: value`) lines of a Java properties file; comments and blank lines skipped. Escapes
/// and continuation lines are not needed for Maven coordinates.
fn properties(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let i = l.find(['=', ':'])?;
            Some((l[..i].trim(), l[i + 1..].trim()))
        })
        .collect()
}
