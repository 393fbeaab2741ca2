//! Binaries: the Go module build info (`.go.buildinfo`, Go ≥ 1.18 layout) and cargo-auditable's dependency list
//! (`.dep-v0`, zlib-compressed JSON). A file is opened for its first 4 bytes; only an ELF file goes on, through a
//! lazy reader that fetches the ELF header, the section headers, the section-name table and the one section:
//! a 200 MB binary costs a few KiB of reads.

use std::fs::File;
use std::io::Read;

use object::read::ReadCache;
use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, FileKind};
use serde::Deserialize;

#[cfg(test)]
use crate::digest::Digest;
use crate::sbom::detect::found::{Found, METADATA_CAP};
use crate::sbom::model::{Ecosystem, EvidenceKind, FileRecord};

/// cargo-auditable data decompresses to about 100 bytes a crate: this is ~500 000 crates.
const DEP_V0_CAP: u64 = 64 << 20;

pub fn scan(f: &FileRecord, found: &mut Found) -> Result<(), String> {
    let mut file =
        File::open(&f.source).map_err(|e| format!("cannot open {}: {e}", f.source.display()))?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
        return Ok(());
    }
    let cache = ReadCache::new(file);
    let r = match FileKind::parse(&cache) {
        Ok(FileKind::Elf32) => sections::<object::elf::FileHeader32<Endianness>>(&cache, f, found),
        Ok(FileKind::Elf64) => sections::<object::elf::FileHeader64<Endianness>>(&cache, f, found),
        _ => Ok(()),
    };
    r.map_err(|e| format!("ELF: {e}"))
}

fn sections<Elf: FileHeader<Endian = Endianness>>(
    data: &ReadCache<File>,
    f: &FileRecord,
    found: &mut Found,
) -> Result<(), String> {
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let table = header.sections(endian, data).map_err(|e| e.to_string())?;
    let section = |name: &[u8]| -> Result<Option<&[u8]>, String> {
        let Some((_, s)) = table.section_by_name(endian, name) else {
            return Ok(None);
        };
        let size: u64 = s.sh_size(endian).into();
        if size > METADATA_CAP {
            return Err(format!(
                "section {} is {size} bytes",
                String::from_utf8_lossy(name)
            ));
        }
        s.data(endian, data).map(Some).map_err(|e| e.to_string())
    };
    if let Some(bytes) = section(b".go.buildinfo")? {
        match go_modinfo(bytes) {
            Some(info) => go_modules(&info, f, found),
            None => found.warn(format!(
                "{}: Go build info in a layout older than Go 1.18, or damaged; skipped",
                f.path
            )),
        }
    }
    if let Some(bytes) = section(b".dep-v0")? {
        auditable(bytes, f, found)?;
    }
    Ok(())
}

/// The module-info text of a Go ≥ 1.18 `.go.buildinfo` section: a 32-byte header (magic, pointer size, flags),
/// then, when flag 2 says the strings are inline, the Go version and the module info as varint-prefixed strings.
/// The module info is framed by 16 sentinel bytes on each side (as `debug/buildinfo` strips them).
fn go_modinfo(b: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    if b.len() < 32 || !b.starts_with(MAGIC) || b[15] & 2 == 0 {
        return None;
    }
    let mut rest = &b[32..];
    let _version = read_string(&mut rest)?;
    let m = read_string(&mut rest)?;
    if m.len() >= 33 && m[m.len() - 17] == b'\n' {
        Some(String::from_utf8_lossy(&m[16..m.len() - 16]).into_owned())
    } else {
        // A binary built without module support has an empty module info.
        Some(String::new())
    }
}

fn read_string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (mut len, mut shift, mut i) = (0u64, 0u32, 0usize);
    loop {
        let byte = *b.get(i)?;
        i += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let end = i.checked_add(usize::try_from(len).ok()?)?;
    let s = b.get(i..end)?;
    *b = &b[end..];
    Some(s)
}

/// `mod` (the main module), `dep` lines and their `=>` replacements. A replacement by another module version
/// names what was really built in; one by a local directory keeps the required path and version.
fn go_modules(info: &str, f: &FileRecord, found: &mut Found) {
    let mut mods: Vec<(String, Option<String>)> = Vec::new();
    for line in info.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let version = |v: Option<&&str>| {
            v.map(|s| s.trim())
                .filter(|s| !s.is_empty() && *s != "(devel)")
                .map(str::to_string)
        };
        match cols.first() {
            Some(&"mod" | &"dep") if cols.len() >= 2 && !cols[1].is_empty() => {
                mods.push((cols[1].to_string(), version(cols.get(2))));
            }
            Some(&"=>") if cols.len() >= 3 => {
                if let (Some(v), Some(last)) = (version(cols.get(2)), mods.last_mut()) {
                    *last = (cols[1].to_string(), Some(v));
                }
            }
            _ => {}
        }
    }
    for (path, version) in mods {
        found.add(
            Ecosystem::Golang,
            &path,
            version.as_deref(),
            None,
            &f.path,
            EvidenceKind::Embedded,
        );
    }
}

#[derive(Deserialize)]
struct Auditable {
    packages: Vec<AuditablePackage>,
}

#[derive(Deserialize)]
struct AuditablePackage {
    name: String,
    version: String,
}

/// cargo-auditable's `.dep-v0`: zlib-compressed JSON of every crate built into the binary (the root included).
fn auditable(compressed: &[u8], f: &FileRecord, found: &mut Found) -> Result<(), String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(DEP_V0_CAP + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!(".dep-v0 does not decompress: {e}"))?;
    if json.len() as u64 > DEP_V0_CAP {
        return Err(format!(
            ".dep-v0 decompresses to more than {} MiB",
            DEP_V0_CAP >> 20
        ));
    }
    let deps: Auditable = serde_json::from_slice(&json)
        .map_err(|e| format!(".dep-v0 is not cargo-auditable JSON: {e}"))?;
    for p in deps.packages {
        found.add(
            Ecosystem::Cargo,
            &p.name,
            Some(&p.version),
            None,
            &f.path,
            EvidenceKind::Embedded,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_string(out: &mut Vec<u8>, s: &[u8]) {
        let mut n = s.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(s);
    }

    /// The section as Go 1.18+ writes it (cmd/link: 32-byte header, inline strings, 16-byte sentinels).
    fn section(modinfo: &str) -> Vec<u8> {
        let mut b = b"\xff Go buildinf:".to_vec();
        b.extend_from_slice(&[8, 2]);
        b.resize(32, 0);
        varint_string(&mut b, b"go1.21.0");
        let framed = [&[0x30u8; 16][..], modinfo.as_bytes(), &[0x31u8; 16][..]].concat();
        varint_string(&mut b, &framed);
        b
    }

    #[test]
    fn go_build_info_modules_and_replacements() {
        let info = "path\texample.com/cmd\nmod\texample.com/cmd\t(devel)\t\n\
                    dep\tgolang.org/x/text\tv0.14.0\th1:x=\n\
                    dep\texample.com/old\tv1.0.0\t\n=>\texample.com/new\tv1.1.0\th1:y=\n\
                    dep\texample.com/local\tv0.3.0\t\n=>\t../local\t\t\nbuild\t-compiler=gc\n";
        let got = go_modinfo(&section(info)).unwrap();
        assert_eq!(got, info);
        let mut found = Found::default();
        let f = FileRecord {
            path: "/bin/cmd".into(),
            size: 0,
            sha256: Digest::of(b""),
            sha1: [0; 20],
            source: "/nonexistent".into(),
        };
        go_modules(&got, &f, &mut found);
        let purls: Vec<String> = found
            .finish()
            .packages
            .into_iter()
            .map(|p| p.purl)
            .collect();
        assert_eq!(
            purls,
            [
                "pkg:golang/example.com/cmd",
                "pkg:golang/example.com/local@v0.3.0",
                "pkg:golang/example.com/new@v1.1.0",
                "pkg:golang/golang.org/x/text@v0.14.0",
            ]
        );
        // Pre-1.18 layout (no inline-strings flag) and truncated sections: None, no panic.
        let mut old = section(info);
        old[15] = 0;
        assert_eq!(go_modinfo(&old), None);
        let s = section(info);
        for n in 0..s.len() {
            let _ = go_modinfo(&s[..n]);
        }
    }
}
