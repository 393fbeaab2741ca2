//! `kiln.toml`: the build's flags, declared in a file at the build's root. Keys are the long flag names; a flag
//! given on the command line wins over the file (a list flag replaces the file's list). Every value is validated
//! here, while its position is known, so a mistake is reported as `FILE:LINE: key "NAME": …` (exit 2).

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::cli::{BuildArgs, CompressionArg, parse_chown, parse_expose, parse_kv};
use crate::commands::tagging::TagRequest;
use crate::error::{Error, Result};
use crate::image::PlatformSpec;
use crate::target::Target;
use crate::versions::Scheme;
use crate::walk::normalize_dest;

/// The file `kiln build` reads when `--config` is not given (if it exists).
pub const DEFAULT_FILE: &str = "kiln.toml";

const KEYS: &[&str] = &[
    "dir",
    "to",
    "base",
    "version",
    "tags",
    "prefix",
    "entrypoint",
    "cmd",
    "env",
    "workdir",
    "user",
    "labels",
    "annotations",
    "expose",
    "compression",
    "compression-level",
    "platforms",
    "allow-floating",
    "always-new",
    "chown",
    "layer",
    "pre",
    "allow-dirty",
    "floating-tags",
    "ref-file",
];
const LAYER_KEYS: &[&str] = &["src", "dest", "chown", "mode"];

/// Values read from the file, already validated; `None` = not in the file. Paths are resolved against the
/// file's directory.
#[derive(Debug, Default, Clone)]
pub struct FileBuild {
    pub dir: Option<PathBuf>,
    pub to: Option<String>,
    pub base: Option<String>,
    pub version: Option<String>,
    pub tags: Option<Vec<String>>,
    pub prefix: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Option<Vec<String>>,
    pub annotations: Option<Vec<String>>,
    pub expose: Option<Vec<String>>,
    pub compression: Option<CompressionArg>,
    pub compression_level: Option<i32>,
    /// `os/arch[/variant]` values, in order (one per platform of a multi-platform build).
    pub platforms: Option<Vec<String>>,
    pub allow_floating: Option<bool>,
    pub always_new: Option<bool>,
    pub chown: Option<String>,
    /// `SRC:DEST` per `[[layer]]`, like `--layer`.
    pub layers: Option<Vec<String>>,
    pub pre: Option<String>,
    pub allow_dirty: Option<bool>,
    pub floating_tags: Option<Vec<String>>,
    pub ref_file: Option<PathBuf>,
}

type Val<'i> = Spanned<DeValue<'i>>;

/// The file being read: its name as given (for messages), its text, and the directory paths are relative to.
struct Doc<'a> {
    name: String,
    text: &'a str,
    base: PathBuf,
}

impl Doc<'_> {
    fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    fn err(&self, span: Range<usize>, key: &str, msg: impl Display) -> Error {
        Error::Usage(format!(
            "{}:{}: key {key:?}: {msg}",
            self.name,
            self.line(span.start)
        ))
    }

    fn wrong(&self, key: &str, v: &Val<'_>, want: &str) -> Error {
        let found = v.get_ref().type_str();
        self.err(v.span(), key, format!("expected {want}, found {found}"))
    }

    /// A validator's error, located: `invalid value "x": expected …`.
    fn check<T>(&self, key: &str, v: &Val<'_>, r: Result<T>) -> Result<T> {
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

    fn string(&self, key: &str, v: &Val<'_>) -> Result<String> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.wrong(key, v, "a string")),
        }
    }

    fn boolean(&self, key: &str, v: &Val<'_>) -> Result<bool> {
        v.get_ref()
            .as_bool()
            .ok_or_else(|| self.wrong(key, v, "true or false"))
    }

    fn strings(&self, key: &str, v: &Val<'_>) -> Result<Vec<String>> {
        let want = "an array of strings";
        let items = v
            .get_ref()
            .as_array()
            .ok_or_else(|| self.wrong(key, v, want))?;
        items.iter().map(|i| self.string(key, i)).collect()
    }

    /// A table of string values, or (with `array_ok`) an array of `K=V` strings; as `K=V` strings.
    fn pairs(
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

    fn path(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    /// `oci:PATH…` / `docker-archive:PATH…` with a relative PATH made relative to the file's directory.
    fn target(&self, s: &str) -> String {
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
fn suggest(key: &str, known: &[&str]) -> String {
    let dist = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    let key = key.replace('_', "-");
    match known.iter().map(|k| (dist(&key, k), *k)).min() {
        Some((d, k)) if d <= 2.max(k.len() / 3) => format!(" (did you mean {k:?}?)"),
        _ => String::new(),
    }
}

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
                f.compression = Some(match s()?.as_str() {
                    "gzip" => CompressionArg::Gzip,
                    "zstd" => CompressionArg::Zstd,
                    "none" => CompressionArg::None,
                    c => {
                        return Err(doc.err(
                            v.span(),
                            key,
                            format!("invalid value {c:?}: expected gzip, zstd or none"),
                        ));
                    }
                });
                spans.push((key, v.clone()));
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
                let list = doc.strings(key, v)?;
                for p in &list {
                    let (plat, dir) = p
                        .split_once('=')
                        .map_or((p.as_str(), None), |(a, b)| (a, Some(b)));
                    doc.check(key, v, plat.parse::<PlatformSpec>())?;
                    if dir.is_some() || list.len() > 1 {
                        return Err(doc.err(v.span(), key, "multi-platform builds are not supported yet (give one os/arch[/variant])"));
                    }
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
            "ref-file" => f.ref_file = Some(doc.path(&s()?)),
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

/// `[[layer]]` tables → `SRC:DEST` strings.
fn layers(doc: &Doc<'_>, v: &Val<'_>) -> Result<Vec<String>> {
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
        let (mut src, mut dest) = (None, None);
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
                    doc.check(
                        &key,
                        val,
                        doc.string(&key, val).and_then(|c| parse_chown(&c)),
                    )?;
                    return Err(doc.err(val.span(), &key, "per-layer chown is not supported yet; use the top-level chown (every layer)"));
                }
                "mode" => {
                    let m = doc.string(&key, val)?;
                    if m.is_empty() || m.len() > 5 || u32::from_str_radix(&m, 8).is_err() {
                        return Err(doc.err(
                            val.span(),
                            &key,
                            format!("invalid value {m:?}: expected an octal string like \"0755\""),
                        ));
                    }
                    return Err(doc.err(val.span(), &key, "per-layer mode is not supported yet"));
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
            "{}:{}",
            src.display(),
            dest.ok_or_else(|| missing("dest"))?
        ));
    }
    Ok(out)
}

/// Settings that are valid alone but not together in one file.
fn conflicts(doc: &Doc<'_>, f: &FileBuild, spans: &[(&str, Val<'_>)]) -> Result<()> {
    let at = |k: &str| spans.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
    if let (Some(level), Some(v)) = (f.compression_level, at("compression-level")) {
        let (name, range) = match f.compression.unwrap_or(CompressionArg::Gzip) {
            CompressionArg::Gzip => ("gzip", 1..=9),
            CompressionArg::Zstd => ("zstd", 1..=19),
            CompressionArg::None => ("none", 1..=0),
        };
        if !range.contains(&level) {
            let why = if range.is_empty() {
                "compression = \"none\" takes no level".to_string()
            } else {
                format!(
                    "conflicts with compression = {name:?}: {name} levels are {}-{}",
                    range.start(),
                    range.end()
                )
            };
            return Err(doc.err(v.span(), "compression-level", format!("{level}: {why}")));
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

/// Load the build's file (`--config PATH`, else `./kiln.toml` if present) into `args`: each value the command
/// line did not give (`given(flag id)` false) is taken from the file. No file and no DIR is a usage error.
pub fn load_into(args: &mut BuildArgs, given: &dyn Fn(&str) -> bool) -> Result<()> {
    let path = match &args.config {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None if args.dir.is_none() => {
            return Err(Error::Usage(format!(
                "no build directory: give DIR (kiln build DIR) or write a {DEFAULT_FILE} with dir = \"…\" \
                 in the current directory (or pass --config PATH)"
            )));
        }
        None => return Ok(()),
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!("--config {name}: no such file")),
        _ => Error::io(&path, e),
    })?;
    let f = parse(&name, &text)?;
    apply(args, given, f);
    if args.dir.is_none() {
        return Err(Error::Usage(format!(
            "{name}:1: key \"dir\": missing: set dir = \"…\" (the build output directory, relative to the file) \
             or give DIR on the command line"
        )));
    }
    Ok(())
}

/// Merge: a value given on the command line wins (a list flag replaces the file's list).
pub fn apply(args: &mut BuildArgs, given: &dyn Fn(&str) -> bool, f: FileBuild) {
    macro_rules! take {
        ($id:literal, $field:expr, $val:expr) => {
            if !given($id)
                && let Some(v) = $val
            {
                $field = v;
            }
        };
    }
    let file_compression = f.compression.unwrap_or(CompressionArg::Gzip);
    take!("dir", args.dir, f.dir.map(Some));
    take!("to", args.to, f.to);
    take!("base", args.base, f.base);
    take!("prefix", args.prefix, f.prefix);
    take!("entrypoint", args.entrypoint, f.entrypoint);
    take!("cmd", args.cmd, f.cmd);
    take!("env", args.env, f.env);
    take!("workdir", args.workdir, f.workdir.map(Some));
    take!("user", args.user, f.user.map(Some));
    take!("label", args.label, f.labels);
    take!("annotation", args.annotation, f.annotations);
    take!("expose", args.expose, f.expose);
    take!(
        "platform",
        args.platform,
        f.platforms.and_then(|p| p.into_iter().next()).map(Some)
    );
    take!("layer", args.layer, f.layers);
    take!("compression", args.compression, f.compression);
    // The file's level belongs to the file's compression: a different --compression drops it.
    if args.compression == file_compression {
        take!(
            "compression_level",
            args.compression_level,
            f.compression_level.map(Some)
        );
    }
    take!("chown", args.chown, f.chown);
    let t = &mut args.tagging;
    take!("version_scheme", t.version_scheme, f.version.map(Some));
    take!("tags", t.tags, f.tags);
    take!("pre", t.pre, f.pre.map(Some));
    take!("allow_dirty", t.allow_dirty, f.allow_dirty);
    take!("always_new", t.always_new, f.always_new);
    take!("allow_floating", t.allow_floating, f.allow_floating);
    take!("floating_tags", t.floating_tags, f.floating_tags);
    take!("ref_file", t.ref_file, f.ref_file.map(Some));
}
