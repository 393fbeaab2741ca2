//! Reading kiln.toml: every key checked and every value parsed while its line is known.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::doc::{Doc, Val, conflicts, layers, suggest};
use super::file::{FileBuild, KEYS};

use kiln_engine::CompressionKind;
use kiln_engine::PlatformSpec;
use kiln_engine::Scheme;
use kiln_engine::Split;
use kiln_engine::TagRequest;
use kiln_engine::Target;
use kiln_engine::normalize_dest;
use kiln_engine::settings::{parse_chown, parse_exclude, parse_expose, parse_mirror};
use kiln_engine::{Error, Result};

/// Read and validate a kiln.toml. `name` is how messages call it (the path as given).
pub fn parse(name: &str, text: &str) -> Result<FileBuild> {
    let base = Path::new(name)
        .parent()
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let doc = Doc {
        name: name.to_string(),
        text,
        base,
    };
    let root = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| doc.line(s.start));
        Error::Usage(format!("{name}:{line}: {}", e.message().trim_end()))
    })?;
    let mut f = FileBuild::default();
    let mut spans: Vec<(&str, Val<'_>)> = Vec::new();
    for (k, v) in root.get_ref().iter() {
        let key: &str = k.get_ref();
        let s = || doc.string(key, v);
        match key {
            "dir" => f.dir = Some(doc.path(&s()?)),
            "to" => {
                let t = s()?;
                doc.check(key, v, t.parse::<Target>())?;
                f.to = Some(doc.target(&t));
            }
            "base" => {
                let b = s()?;
                if b != "scratch" {
                    doc.check(key, v, b.parse::<Target>())?;
                }
                f.base = Some(doc.target(&b));
            }
            "version" => {
                f.version = Some(doc.check(
                    key,
                    v,
                    s().and_then(|x| Scheme::parse(&x, None, false).map(|_| x)),
                )?)
            }
            "tags" => {
                let tags = doc.strings(key, v)?;
                let req = TagRequest {
                    templates: tags.clone(),
                    ..TagRequest::default()
                };
                doc.check(key, v, req.validate())?;
                f.tags = Some(tags);
            }
            "prefix" => {
                f.prefix = Some(doc.check(
                    key,
                    v,
                    s().and_then(|p| normalize_dest(&p, "--prefix").map(|_| p)),
                )?)
            }
            "entrypoint" => f.entrypoint = Some(doc.strings(key, v)?),
            "cmd" => f.cmd = Some(doc.strings(key, v)?),
            "env" => f.env = Some(doc.pairs(key, v, "--env", true)?),
            "workdir" => {
                let w = s()?;
                if !w.starts_with('/') {
                    return Err(doc.err(
                        v.span(),
                        key,
                        format!("invalid value {w:?}: expected an absolute path, e.g. /app"),
                    ));
                }
                f.workdir = Some(w);
            }
            "user" => f.user = Some(s()?),
            "labels" => f.labels = Some(doc.pairs(key, v, "--label", false)?),
            "annotations" => f.annotations = Some(doc.pairs(key, v, "--annotation", false)?),
            "expose" => {
                let items = v
                    .get_ref()
                    .as_array()
                    .ok_or_else(|| doc.wrong(key, v, "an array of ports"))?;
                let ports = items.iter().map(|i| {
                    let p = match i.get_ref() {
                        DeValue::Integer(n) => n.as_str().replace('_', ""),
                        _ => doc.string(key, i)?,
                    };
                    doc.check(key, i, parse_expose(&p).map(|_| p))
                });
                f.expose = Some(ports.collect::<Result<_>>()?);
            }
            "compression" => {
                let c = s()?;
                f.compression = Some(c.parse::<CompressionKind>().map_err(|_| {
                    doc.err(
                        v.span(),
                        key,
                        format!("invalid value {c:?}: expected gzip, zstd or none"),
                    )
                })?);
                spans.push((key, v.clone()));
            }
            "sbom" => {
                let v2 = s()?;
                kiln_engine::sbom::SbomFormat::parse_setting(&v2).map_err(|_| {
                    doc.err(
                        v.span(),
                        key,
                        format!("invalid value {v2:?}: expected spdx, cyclonedx or none"),
                    )
                })?;
                f.sbom = Some(v2);
            }
            "provenance" => {
                let v2 = s()?;
                kiln_engine::AttestRequest::parse_provenance(&v2).map_err(|_| {
                    doc.err(
                        v.span(),
                        key,
                        format!("invalid value {v2:?}: expected slsa or none"),
                    )
                })?;
                f.provenance = Some(v2);
            }
            "split" => {
                let v2 = s()?;
                f.split = Some(
                    v2.parse::<Split>()
                        .map_err(|why| doc.err(v.span(), key, why))?,
                );
            }
            "compression-level" => {
                let n = match v.get_ref() {
                    DeValue::Integer(n) => {
                        i32::from_str_radix(&n.as_str().replace('_', ""), n.radix()).ok()
                    }
                    _ => return Err(doc.wrong(key, v, "an integer")),
                };
                f.compression_level =
                    Some(n.ok_or_else(|| doc.err(v.span(), key, "out of range"))?);
                spans.push((key, v.clone()));
            }
            "platforms" => {
                let mut list = Vec::new();
                for p in doc.strings(key, v)? {
                    // `os/arch=DIR`: DIR, like every path in the file, is relative to the file's directory.
                    let (plat, dir) = p
                        .split_once('=')
                        .map_or((p.as_str(), None), |(a, b)| (a, Some(b)));
                    doc.check(key, v, plat.parse::<PlatformSpec>())?;
                    list.push(match dir {
                        Some(d) => format!("{plat}={}", doc.path(d).display()),
                        None => plat.to_string(),
                    });
                }
                f.platforms = Some(list);
            }
            "allow-floating" => f.allow_floating = Some(doc.boolean(key, v)?),
            "always-new" => f.always_new = Some(doc.boolean(key, v)?),
            "allow-dirty" => f.allow_dirty = Some(doc.boolean(key, v)?),
            "chown" => {
                f.chown = Some(doc.check(key, v, s().and_then(|c| parse_chown(&c).map(|_| c)))?)
            }
            "pre" => {
                f.pre = Some(s()?);
                spans.push((key, v.clone()));
            }
            "floating-tags" => f.floating_tags = Some(doc.strings(key, v)?),
            "registry-mirrors" => {
                let items = doc.strings(key, v)?;
                let parsed = items.iter().map(|m| parse_mirror(m));
                f.registry_mirrors = Some(doc.check(key, v, parsed.collect::<Result<_>>())?);
            }
            "ref-file" => f.ref_file = Some(doc.path(&s()?)),
            "exclude" => {
                let pats = doc.strings(key, v)?;
                for p in &pats {
                    doc.check(key, v, parse_exclude(p))?;
                }
                f.exclude = Some(pats);
            }
            "layer" => f.layers = Some(layers(&doc, v)?),
            other => {
                return Err(doc.err(
                    k.span(),
                    other,
                    format!("unknown key{}", suggest(other, KEYS)),
                ));
            }
        }
    }
    conflicts(&doc, &f, &spans)?;
    Ok(f)
}
