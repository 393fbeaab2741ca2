//! Flags shared by every command that talks to a registry.

use std::path::PathBuf;

use clap::Args;

use kiln_engine::events::Report;
use kiln_engine::{ClientOptions, Target};

/// How to talk to registries.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Allow plain HTTP / unverified TLS for this registry host[:port] (loopback needs no flag)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) to trust for registries
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Blob uploads at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Upload blobs in PATCH chunks of this many bytes (for registries that need it)
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    /// Read base images on REGISTRY through MIRROR first (a pull-through cache; the registry itself on a miss;
    /// never for pushes), e.g. docker.io=mirror.gcr.io (repeatable; registries.conf mirrors are added after)
    #[arg(long = "registry-mirror", value_name = "REGISTRY=MIRROR", value_parser = mirror)]
    pub mirrors: Vec<(String, String)>,
    /// Attempts per request on connection errors, 408, 429 and 5xx
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,
    /// Seconds a request may go without progress (connecting, an answer, a piece of an upload or download)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

impl RegistryArgs {
    /// The client's options for a command whose own registry (the one it publishes to or reads) is `target`:
    /// `KILN_REGISTRY_USERNAME/PASSWORD` go there only, unless `KILN_REGISTRY` names another. It logs requests
    /// through `report` (`-v`, `-vv`).
    pub fn options(&self, report: &Report, target: Option<&str>) -> ClientOptions {
        let mut o = ClientOptions {
            insecure: self.insecure.clone(),
            ca_file: self.ca_file.clone(),
            max_parallel: self.jobs as usize,
            chunk_size: self.chunk_size.filter(|c| *c > 0),
            report: report.clone(),
            own_registry: target.map(str::to_string),
            mirrors: self
                .mirrors
                .iter()
                .cloned()
                .chain(registries_conf_mirrors())
                .collect(),
            ..ClientOptions::default()
        };
        o.retry.max_attempts = self.retries;
        o.read_timeout = std::time::Duration::from_secs(self.timeout);
        o.connect_timeout = o.read_timeout.min(std::time::Duration::from_secs(30));
        o
    }
}

/// The registry of a command's TARGET argument, if it names one.
pub fn target_registry(target: &str) -> Option<String> {
    match target.parse::<Target>() {
        Ok(Target::Registry(r)) => Some(r.registry),
        _ => None,
    }
}

/// `--registry-mirror`'s values, by the engine's one rule for them.
fn mirror(s: &str) -> Result<(String, String), String> {
    kiln_engine::settings::parse_mirror(s).map_err(|e| e.to_string())
}

/// Mirrors from containers' `registries.conf` (v2 format: `[[registry]]` with `prefix` or `location`, and its
/// `[[registry.mirror]]` `location`s), as podman and buildah read them: `$CONTAINERS_REGISTRIES_CONF`, else
/// `~/.config/containers/registries.conf`, else `/etc/containers/registries.conf`. Entries for a namespace rather
/// than a whole registry (`prefix = "docker.io/library"`) are left out; an unreadable file adds nothing.
fn registries_conf_mirrors() -> Vec<(String, String)> {
    let home = std::env::var_os("HOME")
        .map(|h| std::path::Path::new(&h).join(".config/containers/registries.conf"));
    let file = std::env::var_os("CONTAINERS_REGISTRIES_CONF")
        .map(PathBuf::from)
        .into_iter()
        .chain(home)
        .chain([PathBuf::from("/etc/containers/registries.conf")])
        .find(|p| p.is_file());
    let Some(text) = file.and_then(|f| std::fs::read_to_string(f).ok()) else {
        return Vec::new();
    };
    #[derive(serde::Deserialize)]
    struct Conf {
        #[serde(default)]
        registry: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        prefix: Option<String>,
        location: Option<String>,
        #[serde(default)]
        mirror: Vec<Mirror>,
    }
    #[derive(serde::Deserialize)]
    struct Mirror {
        location: String,
    }
    let Ok(conf) = toml::from_str::<Conf>(&text) else {
        return Vec::new();
    };
    conf.registry
        .into_iter()
        .filter_map(|e| Some((e.prefix.or(e.location)?, e.mirror)))
        .filter(|(r, _)| !r.contains('/'))
        .flat_map(|(r, ms)| {
            ms.into_iter().filter_map(move |m| {
                kiln_engine::settings::parse_mirror(&format!("{r}={}", m.location)).ok()
            })
        })
        .collect()
}
