//! `kiln inspect`: an image's manifest, config and layers, for people (text) or scripts (`--output json`).

use std::io::Write;

use crate::cli::OutputFormat;
use crate::commands::build::read_image;
use crate::error::{Error, Result};
use crate::image::{self, PlatformSpec};
use crate::store::Layout;
use crate::target::Target;

pub fn run(target: &str, format: OutputFormat) -> Result<()> {
    let r = match target.parse::<Target>()? {
        Target::Layout(r) => r,
        Target::Registry(r) => {
            return Err(Error::Usage(format!(
                "{r:?}: inspecting registry images is not available in this build; use oci:PATH[:TAG]"
            )));
        }
    };
    let layout = Layout::open(&r.path)?;
    let (manifest, config) = read_image(&layout, &r)?;
    let mut out = std::io::stdout().lock();
    let res = match format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "reference": r.to_string(),
                "digest": manifest.digest,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": manifest.bytes.len(),
                "platform": PlatformSpec::of_config(&config.value).to_string(),
                "tags": layout.entries()?.into_iter()
                    .filter(|e| e.descriptor.digest().to_string() == manifest.digest.to_string())
                    .filter_map(|e| e.tag).collect::<Vec<_>>(),
                "manifest": serde_json::from_slice::<serde_json::Value>(&manifest.bytes).unwrap_or_default(),
                "config": serde_json::from_slice::<serde_json::Value>(&config.bytes).unwrap_or_default(),
            });
            writeln!(out, "{doc}")
        }
        OutputFormat::Text => {
            let c = &config.value;
            let rc = c.config().clone().unwrap_or_default();
            let mut s = String::new();
            use std::fmt::Write as _;
            let _ = writeln!(s, "Image:      {r}");
            let _ = writeln!(s, "Digest:     {}", manifest.digest);
            let _ = writeln!(s, "Platform:   {}", PlatformSpec::of_config(c));
            let _ = writeln!(s, "Created:    {}", c.created().as_deref().unwrap_or("-"));
            let _ = writeln!(
                s,
                "Config:     {} ({} bytes)",
                config.digest,
                config.bytes.len()
            );
            let list = |v: &Option<Vec<String>>| {
                v.as_ref().map(|v| format!("{v:?}")).unwrap_or("-".into())
            };
            let _ = writeln!(s, "Entrypoint: {}", list(rc.entrypoint()));
            let _ = writeln!(s, "Cmd:        {}", list(rc.cmd()));
            let _ = writeln!(
                s,
                "WorkingDir: {}",
                rc.working_dir().as_deref().unwrap_or("-")
            );
            let _ = writeln!(s, "User:       {}", rc.user().as_deref().unwrap_or("-"));
            for e in rc.env().iter().flatten() {
                let _ = writeln!(s, "Env:        {e}");
            }
            let mut ports = rc.exposed_ports().clone().unwrap_or_default();
            ports.sort();
            for p in ports {
                let _ = writeln!(s, "Expose:     {p}");
            }
            let mut labels: Vec<_> = rc
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            labels.sort();
            for (k, v) in labels {
                let _ = writeln!(s, "Label:      {k}={v}");
            }
            let mut ann: Vec<_> = manifest
                .value
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            ann.sort();
            for (k, v) in ann {
                let _ = writeln!(s, "Annotation: {k}={v}");
            }
            let _ = writeln!(s, "Layers:");
            let hist: Vec<_> = image::history(c)
                .iter()
                .filter(|h| h.empty_layer() != Some(true))
                .collect();
            for (i, l) in manifest.value.layers().iter().enumerate() {
                let by = hist
                    .get(i)
                    .and_then(|h| h.created_by().clone())
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  {}  {:>12}  {}  {}",
                    l.digest(),
                    l.size(),
                    l.media_type(),
                    by
                );
            }
            write!(out, "{s}")
        }
    };
    res.map_err(|e| Error::io("stdout", e))
}
