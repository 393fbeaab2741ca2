//! `kiln build`'s flags (with kiln.toml's values merged in: `config_file`) → the engine's [`BuildPlan`]. Every
//! value is parsed by the engine's one rule for it (`kiln_engine::settings`, `Compression::new`).

use std::path::PathBuf;

use super::BuildArgs;
use kiln_engine::Compression;
use kiln_engine::Target;
use kiln_engine::build::{BuildPlan, LayerSource, created_by};
use kiln_engine::events::Report;
use kiln_engine::normalize_dest;
use kiln_engine::settings::{
    cache_dir, parse_chown, parse_exclude, parse_expose, parse_kv, parse_layer, source_date_epoch,
};
use kiln_engine::{ConfigSpec, PlatformSpec};
use kiln_engine::{Error, Result};

impl BuildArgs {
    /// `--platform` values: one without `=DIR` is the single platform of a plain build; several (or any with
    /// `=DIR`) make a multi-platform build, each entry's DIR (or the shared DIR) as its main layer.
    #[allow(clippy::type_complexity)]
    fn platforms(&self) -> Result<(Option<PlatformSpec>, Vec<(PlatformSpec, Option<PathBuf>)>)> {
        let mut list = Vec::new();
        for v in &self.platforms {
            let (p, dir) = match v.split_once('=') {
                Some((p, d)) if !d.is_empty() => (p, Some(PathBuf::from(d))),
                Some(_) => {
                    return Err(Error::invalid_arg(
                        "--platform",
                        v,
                        "expected os/arch[/variant] or os/arch[/variant]=DIR",
                    ));
                }
                None => (v.as_str(), None),
            };
            let p: PlatformSpec = p.parse()?;
            if list.iter().any(|(q, _)| *q == p) {
                return Err(Error::invalid_arg(
                    "--platform",
                    v,
                    "each platform may be given once",
                ));
            }
            list.push((p, dir));
        }
        Ok(match list.as_slice() {
            [] => (None, Vec::new()),
            [(p, None)] => (Some(p.clone()), Vec::new()),
            _ => (None, list),
        })
    }

    /// Validate every flag and turn them into a plan. Nothing is touched before this succeeds.
    pub fn plan(&self, report: &Report) -> Result<BuildPlan> {
        let target: Target = self.to.parse()?;
        let mut target_registry = None;
        if let Target::Registry(r) = &target {
            r.check_destination("--to")?;
            target_registry = Some(r.registry.clone());
        }
        let tagging = self.tagging.request()?;
        let prefix = normalize_dest(&self.prefix, "--prefix")?;
        let dirs_per_platform = self.platforms.iter().all(|p| p.contains('='));
        let dir = match (&self.dir, dirs_per_platform) {
            (Some(d), _) => Some(d.clone()),
            (None, true) if !self.platforms.is_empty() => Some(PathBuf::from(".")),
            // An image of only extra layers (kiln.toml with `[[layer]]` tables and no `dir`): no main layer.
            (None, _)
                if !self.layer.is_empty() && !self.platforms.iter().any(|p| p.contains('=')) =>
            {
                if self.prefix != "/" {
                    return Err(Error::invalid_arg(
                        "--prefix",
                        &self.prefix,
                        "places DIR's contents, and no DIR is given (an image of only --layer/[[layer]] \
                         directories has no main layer: give DIR, or drop --prefix)",
                    ));
                }
                None
            }
            _ => {
                return Err(Error::Usage(
                    "no build directory: give DIR (kiln build DIR), a kiln.toml with dir = \"…\" or [[layer]] \
                     tables, or --platform os/arch=DIR for every platform"
                        .into(),
                ));
            }
        };
        let mut layers: Vec<LayerSource> = dir
            .map(|src| LayerSource {
                src,
                dest: prefix,
                created_by: String::new(),
                chown: None,
                mode: None,
            })
            .into_iter()
            .collect();
        for l in &self.layer {
            layers.push(parse_layer(l)?);
        }
        let compression =
            Compression::new(self.compression, self.compression_level).map_err(|why| {
                let level = self.compression_level.map(|l| l.to_string());
                Error::invalid_arg("--compression-level", level.unwrap_or_default(), why)
            })?;
        for l in &mut layers {
            l.created_by = created_by(&l.src, &l.dest, compression);
        }
        let (single, platforms) = self.platforms()?;
        let mut annotations: Vec<(String, String)> = self
            .annotation
            .iter()
            .map(|e| parse_kv("--annotation", e))
            .collect::<Result<_>>()?;
        if self.source_annotations {
            let dir = layers.first().map(|l| l.src.clone()).unwrap_or_default();
            annotations.extend(kiln_engine::provenance::source_annotations(&dir)?);
        }
        let config = ConfigSpec {
            platform: single,
            entrypoint: (!self.entrypoint.is_empty()).then(|| self.entrypoint.clone()),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            env: self
                .env
                .iter()
                .map(|e| parse_kv("--env", e))
                .collect::<Result<_>>()?,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            labels: self
                .label
                .iter()
                .map(|e| parse_kv("--label", e))
                .collect::<Result<_>>()?,
            expose: self
                .expose
                .iter()
                .map(|e| parse_expose(e))
                .collect::<Result<_>>()?,
            annotations,
            created: source_date_epoch()?.unwrap_or(0),
        };
        if let Some(w) = &config.workdir
            && !w.starts_with('/')
        {
            return Err(Error::invalid_arg(
                "--workdir",
                w,
                "expected an absolute path, e.g. /app",
            ));
        }
        let base = match self.base.as_str() {
            "scratch" => None,
            b => Some(b.parse::<Target>()?),
        };
        let (uid, gid) = parse_chown(&self.chown)?;
        let sbom = kiln_engine::sbom::SbomFormat::parse_setting(&self.sbom)?;
        if let (None, Some(file)) = (sbom, &self.sbom_file) {
            return Err(Error::Usage(format!(
                "--sbom-file {}: no SBOM is written with --sbom none (or KILN_SBOM / kiln.toml sbom = \"none\")",
                file.display()
            )));
        }
        Ok(BuildPlan {
            target,
            tagging,
            base,
            layers,
            config,
            compression,
            uid,
            gid,
            platforms,
            registry: self.registry.options(report, target_registry.as_deref()),
            cache: cache_dir(self.cache.clone()),
            no_cache: self.no_cache,
            cache_max_age: self.cache_max_age,
            split: self.split,
            exclude: self
                .exclude
                .iter()
                .map(|p| parse_exclude(p))
                .collect::<Result<_>>()?,
            outputs: self
                .tagging
                .ref_file
                .iter()
                .chain(&self.sbom_file)
                .cloned()
                .collect(),
            attest: kiln_engine::AttestRequest {
                sbom,
                sbom_file: self.sbom_file.clone(),
                provenance: kiln_engine::AttestRequest::parse_provenance(&self.provenance)?,
                started: std::time::SystemTime::now(),
            },
        })
    }
}
