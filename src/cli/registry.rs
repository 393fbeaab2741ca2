//! Flags shared by every command that talks to a registry.

use std::path::PathBuf;

use clap::Args;

use kiln_engine::ClientOptions;
use kiln_engine::events::Report;

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
    /// Attempts per request on connection errors, 408, 429 and 5xx
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,
    /// Seconds a request may go without progress (connecting, an answer, a piece of an upload or download)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

impl RegistryArgs {
    /// The client's options; it logs requests through `report` (`-v`, `-vv`).
    pub fn options(&self, report: &Report) -> ClientOptions {
        let mut o = ClientOptions {
            insecure: self.insecure.clone(),
            ca_file: self.ca_file.clone(),
            max_parallel: self.jobs as usize,
            chunk_size: self.chunk_size.filter(|c| *c > 0),
            report: report.clone(),
            ..ClientOptions::default()
        };
        o.retry.max_attempts = self.retries;
        o.read_timeout = std::time::Duration::from_secs(self.timeout);
        o.connect_timeout = o.read_timeout.min(std::time::Duration::from_secs(30));
        o
    }
}
