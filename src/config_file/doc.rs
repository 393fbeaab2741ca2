//! Reading values out of the parsed file, each error located at its line.

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::DeValue;

use super::file::{FileBuild, LAYER_KEYS};
use kiln_engine::Scheme;
use kiln_engine::normalize_dest;
use kiln_engine::settings::{parse_chown, parse_kv, parse_mode};
use kiln_engine::{Compression, CompressionKind};
use kiln_engine::{Error, Result};

pub(super) type Val<'i> = Spanned<DeValue<'i>>;

/// The file being read: its name as given (for messages), its text, and the directory paths are relative to.
pub(super) struct Doc<'a> {
    pub name: String,
    pub text: &'a str,
    pub base: PathBuf,
}

impl Doc<'_> {
    pub fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    pub fn err(&self, span: Range<usize>, key: &str, msg: impl Display) -> Error {
        Error::Usage(format!(
            "{}:{}: key {key:?}: {msg}",
            self.name,
            self.line(span.start)
        ))
    }

    pub fn wrong(&self, key: &str, v: &Val<'_>, want: &str) -> Error {
        let found = v.get_ref().type_str();
        self.err(v.span(), key, format!("expected {want}, found {found}"))
    }

    /// A validator's error, located: `invalid value "x": expected …`.
    pub fn check<T>(&self, key: &str, v: &Val<'_>, r: Result<T>) -> Result<T> {
        r.map_err(|e| match e {
            Error::InvalidArg {
                value, expected, ..
            } => self.err(
                v.span(),
                key,
                format!("invalid value {value:?}: {expected}"),
            ),
            e => self.err(v.span(), key, e),
        })
    }

    pub fn string(&self, key: &str, v: &Val<'_>) -> Result<String> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.wrong(key, v, "a string")),
        }
    }

    pub fn boolean(&self, key: &str, v: &Val<'_>) -> Result<bool> {
        v.get_ref()
            .as_bool()
            .ok_or_else(|| self.wrong(key, v, "true or false"))
    }

    pub fn strings(&self, key: &str, v: &Val<'_>) -> Result<Vec<String>> {
        let want = "an array of strings";
        let items = v
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong(key, v, want))?;
        items.iter().map(|i| self.string(key, i)).collect()
    }

    /// A table of string values, or (with `array_ok`) an array of `K=V` strings; as `K=V` strings.
    pub fn pairs(
        &self,
        key: &str,
        v: &Val<'_>,
        flag: &'static str,
        array_ok: bool,
    ) -> Result<Vec<String>> {
        let out: Vec<(Val<'_>, String)> = match v.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .map(|(k, val)| {
                    Ok((
                        val.clone(),
                        format!("{}={}", k.get_ref(), self.string(key, val)?),
                    ))
                })
                .collect::<Result<_>>()?,
            DeValue::Array(a) if array_ok => a
                .iter()
                .map(|i| Ok((i.clone(), self.string(key, i)?)))
                .collect::<Result<_>>()?,
            _ if array_ok => {
                return Err(self.wrong(key, v, "a table or an array of \"K=V\" strings"));
            }
            _ => return Err(self.wrong(key, v, "a table of strings")),
        };
        out.into_iter()
            .map(|(val, kv)| self.check(key, &val, parse_kv(flag, &kv)).map(|_| kv))
            .collect()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    /// `oci:PATH…` / `docker-archive:PATH…` with a relative PATH made relative to the file's directory.
    pub fn target(&self, s: &str) -> String {
        for prefix in ["oci:", "docker-archive:"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                let (p, tail) = rest.split_at(rest.find([':', '@']).unwrap_or(rest.len()));
                if !p.is_empty() && Path::new(p).is_relative() {
                    return format!("{prefix}{}{tail}", self.path(p).display());
                }
            }
        }
        s.to_string()
    }
}

/// "did you mean" for a misspelt key: the known key closest by edit distance, if close enough.
pub(super) fn suggest(key: &str, known: &[&str]) -> String {
    let key = key.replace('_', "-");
    match known
        .iter()
        .map(|k| (strsim::levenshtein(&key, k), *k))
        .min()
    {
        Some((d, k)) if d <= 2.max(k.len() / 3) => format!(" (did you mean {k:?}?)"),
        _ => String::new(),
    }
}

/// `[[layer]]` tables → `SRC:DEST` strings.
pub(super) fn layers(doc: &Doc<'_>, v: &Val<'_>) -> Result<Vec<String>> {
    let want = "[[layer]] tables with src and dest";
    let items = v
        .get_ref()
        .as_array()
        .ok_or_else(|| doc.wrong("layer", v, want))?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = |k: &str| format!("layer[{}].{k}", i + 1);
        let t = item
            .get_ref()
            .as_table()
            .ok_or_else(|| doc.wrong("layer", item, want))?;
        let (mut src, mut dest, mut opts) = (None, None, String::new());
        for (k, val) in t.iter() {
            let key = name(k.get_ref());
            match k.get_ref().as_ref() {
                "src" => src = Some(doc.path(&doc.string(&key, val)?)),
                "dest" => {
                    dest = Some(
                        doc.check(
                            &key,
                            val,
                            doc.string(&key, val)
                                .and_then(|d| normalize_dest(&d, "dest")),
                        )?,
                    )
                }
                "chown" => {
                    let c = doc.string(&key, val)?;
                    doc.check(&key, val, parse_chown(&c))?;
                    opts.push_str(&format!(",chown={c}"));
                }
                "mode" => {
                    let m = doc.string(&key, val)?;
                    doc.check(&key, val, parse_mode("mode", &m))?;
                    opts.push_str(&format!(",mode={m}"));
                }
                other => {
                    return Err(doc.err(
                        k.span(),
                        &key,
                        format!("unknown key{}", suggest(other, LAYER_KEYS)),
                    ));
                }
            }
        }
        let missing = |k: &str| {
            doc.err(
                item.span(),
                &name(k),
                "missing: every [[layer]] needs src and dest",
            )
        };
        let src = src.ok_or_else(|| missing("src"))?;
        out.push(format!(
            "{}:{}{opts}",
            src.display(),
            dest.ok_or_else(|| missing("dest"))?
        ));
    }
    Ok(out)
}

/// Settings that are valid alone but not together in one file.
pub(super) fn conflicts(doc: &Doc<'_>, f: &FileBuild, spans: &[(&str, Val<'_>)]) -> Result<()> {
    let at = |k: &str| spans.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
    if let (Some(level), Some(v)) = (f.compression_level, at("compression-level")) {
        let kind = f.compression.unwrap_or(CompressionKind::Gzip);
        if let Err(why) = Compression::new(kind, Some(level)) {
            let name = kind.name();
            return Err(doc.err(
                v.span(),
                "compression-level",
                format!("{level}: conflicts with compression = {name:?}: {why}"),
            ));
        }
    }
    if let (Some(v), Some(p)) = (at("pre"), &f.pre) {
        let scheme = f
            .version
            .as_deref()
            .map(|s| Scheme::parse(s, Some(p), false));
        match scheme {
            Some(Ok(Scheme::Semver { .. })) => {}
            Some(Err(e)) => return doc.check("pre", v, Err(e)),
            _ => {
                return Err(doc.err(
                    v.span(),
                    "pre",
                    "goes with version = \"semver:patch|minor|major\"",
                ));
            }
        }
    }
    Ok(())
}
