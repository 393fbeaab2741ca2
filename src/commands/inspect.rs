//! `kiln inspect`: an image's manifest, config, layers and referrers, for people (text) or scripts (`--output json`).

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::cli::{InspectArgs, OutputFormat};
use crate::output::{Stdout, escape_controls};
use kiln_engine::ClientOptions;
use kiln_engine::Result;
use kiln_engine::inspect::{Inspected, inspect};
use kiln_engine::platforms;
use kiln_engine::{Json, PlatformSpec, history};

/// One line of the text view with its values escaped (`output::escape_controls`): names, labels, env and history
/// come from whoever built the image.
macro_rules! put {
    ($s:expr, $($arg:tt)*) => {{
        $s.push_str(&escape_controls(&format!($($arg)*)));
        $s.push('\n');
    }};
}

pub fn run(args: &InspectArgs, format: OutputFormat, registry: ClientOptions) -> Result<()> {
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<PlatformSpec>)
        .transpose()?;
    let text = match inspect(&args.target.parse()?, platform, registry)? {
        Inspected::Image {
            name,
            manifest,
            config,
            tags,
            referrers,
        } => show(&name, &manifest, &config, tags, format, &referrers),
        Inspected::Index {
            name,
            media_type,
            index,
            referrers,
        } => show_index(&name, &media_type, &index, format, &referrers),
    };
    Stdout::print(&text)
}

/// A multi-platform index: its platforms and their manifests.
fn show_index(
    name: &str,
    media_type: &str,
    index: &Json<ImageIndex>,
    format: OutputFormat,
    referrers: &[Descriptor],
) -> String {
    match format {
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::json!({
                "reference": name,
                "digest": index.digest,
                "mediaType": media_type,
                "size": index.bytes.len(),
                "platforms": platforms(&index.value),
                "referrers": referrers_json(referrers),
                "index": serde_json::from_slice::<serde_json::Value>(&index.bytes).unwrap_or_default(),
            })
        ),
        OutputFormat::Text => {
            let mut s = String::new();
            put!(s, "Image:      {name}");
            put!(s, "Digest:     {}", index.digest);
            put!(s, "MediaType:  {media_type}");
            put!(s, "Platforms:");
            for d in index.value.manifests() {
                let p = d.platform().as_ref().map_or("-".to_string(), |p| {
                    let mut v = format!("{}/{}", p.os(), p.architecture());
                    if let Some(var) = p.variant() {
                        v = format!("{v}/{var}");
                    }
                    v
                });
                put!(s, "  {p:<16} {}", d.digest());
            }
            s.push_str("(show one with --platform os/arch)\n");
            referrers_text(&mut s, referrers);
            s
        }
    }
}

fn show(
    name: &str,
    manifest: &Json<ImageManifest>,
    config: &Json<ImageConfiguration>,
    tags: Vec<String>,
    format: OutputFormat,
    referrers: &[Descriptor],
) -> String {
    let r = name;
    match format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "reference": r.to_string(),
                "digest": manifest.digest,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": manifest.bytes.len(),
                "platform": PlatformSpec::of_config(&config.value).to_string(),
                "tags": tags,
                "referrers": referrers_json(referrers),
                "manifest": serde_json::from_slice::<serde_json::Value>(&manifest.bytes).unwrap_or_default(),
                "config": serde_json::from_slice::<serde_json::Value>(&config.bytes).unwrap_or_default(),
            });
            format!("{doc}\n")
        }
        OutputFormat::Text => {
            let c = &config.value;
            let rc = c.config().clone().unwrap_or_default();
            let mut s = String::new();
            put!(s, "Image:      {r}");
            put!(s, "Digest:     {}", manifest.digest);
            put!(s, "Platform:   {}", PlatformSpec::of_config(c));
            put!(s, "Created:    {}", c.created().as_deref().unwrap_or("-"));
            put!(
                s,
                "Config:     {} ({} bytes)",
                config.digest,
                config.bytes.len()
            );
            let list = |v: &Option<Vec<String>>| {
                v.as_ref().map(|v| format!("{v:?}")).unwrap_or("-".into())
            };
            put!(s, "Entrypoint: {}", list(rc.entrypoint()));
            put!(s, "Cmd:        {}", list(rc.cmd()));
            put!(
                s,
                "WorkingDir: {}",
                rc.working_dir().as_deref().unwrap_or("-")
            );
            put!(s, "User:       {}", rc.user().as_deref().unwrap_or("-"));
            for e in rc.env().iter().flatten() {
                put!(s, "Env:        {e}");
            }
            let mut ports = rc.exposed_ports().clone().unwrap_or_default();
            ports.sort();
            for p in ports {
                put!(s, "Expose:     {p}");
            }
            let mut labels: Vec<_> = rc
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            labels.sort();
            for (k, v) in labels {
                put!(s, "Label:      {k}={v}");
            }
            for (k, v) in sorted(manifest.value.annotations()) {
                put!(s, "Annotation: {k}={v}");
            }
            put!(s, "Layers:");
            let hist: Vec<_> = history(c)
                .iter()
                .filter(|h| h.empty_layer() != Some(true))
                .collect();
            for (i, l) in manifest.value.layers().iter().enumerate() {
                let by = hist
                    .get(i)
                    .and_then(|h| h.created_by().clone())
                    .unwrap_or_default();
                put!(
                    s,
                    "  {}  {:>12}  {}  {}",
                    l.digest(),
                    l.size(),
                    l.media_type(),
                    by
                );
            }
            referrers_text(&mut s, referrers);
            s
        }
    }
}

/// The referrers as `--output json` shows them: descriptors as the referrers API lists them.
fn referrers_json(referrers: &[Descriptor]) -> serde_json::Value {
    serde_json::Value::Array(
        referrers
            .iter()
            .map(|d| {
                let ann: std::collections::BTreeMap<String, String> = d
                    .annotations()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                serde_json::json!({
                    "artifactType": d.artifact_type().as_ref().map(ToString::to_string),
                    "mediaType": d.media_type().to_string(),
                    "digest": d.digest().to_string(),
                    "size": d.size(),
                    "annotations": ann,
                })
            })
            .collect(),
    )
}

/// `Referrers:` lines: artifact type, digest, then each annotation.
fn referrers_text(s: &mut String, referrers: &[Descriptor]) {
    if referrers.is_empty() {
        return;
    }
    put!(s, "Referrers:");
    for d in referrers {
        let t = d
            .artifact_type()
            .as_ref()
            .map_or_else(|| "-".to_string(), ToString::to_string);
        put!(s, "  {t:<32} {}", d.digest());
        for (k, v) in sorted(d.annotations()) {
            put!(s, "    {k}={v}");
        }
    }
}

/// Annotations in key order (they are a map, printed the same way every time).
fn sorted(ann: &Option<std::collections::HashMap<String, String>>) -> Vec<(String, String)> {
    let mut v: Vec<_> = ann.clone().unwrap_or_default().into_iter().collect();
    v.sort();
    v
}
