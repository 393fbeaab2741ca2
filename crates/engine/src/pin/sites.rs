//! Where images are named in deployment YAML, found in a parsed [`Yaml`] stream (every document, any depth, block
//! and flow styles alike, through aliases):
//! * `image: REF`: Kubernetes containers (init containers, sidecars, CronJobs…), Compose `services.*.image`,
//!   Argo CD / Flux style fields, any plain `image:` value;
//! * Helm values: `image:` a mapping with `repository` (and `registry`, `tag`, `digest`);
//! * kustomize: the entries of an `images:` list (`name`, `newName`, `newTag`, `digest`) at a document's top, or
//!   anywhere when an entry carries `newName`, `newTag` or `digest`.
//!
//! Block scalars are values, never structure: an `image:` inside `|` text is not a site. Neither is anything under
//! `labels`, `annotations`, `matchLabels`, `data` or `stringData`: string maps whose `image` key is a label or a
//! file, not an image.

use std::collections::HashSet;

use super::yaml::{Kind, NodeId, Yaml};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// The value node of `image:` (perhaps an alias).
    Plain(NodeId),
    /// A Helm `image:` mapping (resolved).
    Helm(NodeId),
    /// A kustomize `images:` entry (resolved).
    Kustomize(NodeId),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Ctx {
    Image,
    Images {
        top: bool,
    },
    Other,
    /// Under a string map (labels, annotations, ConfigMap data): no sites.
    Opaque,
}

const OPAQUE: [&str; 5] = ["labels", "annotations", "matchLabels", "data", "stringData"];

/// Every image site in the stream, in document order (an aliased one once per path to it).
pub(crate) fn sites(y: &Yaml) -> Vec<Site> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &root in &y.docs {
        walk(y, root, Ctx::Other, root, 0, &mut out, &mut seen);
    }
    out
}

fn walk(
    y: &Yaml,
    id: NodeId,
    ctx: Ctx,
    root: NodeId,
    depth: usize,
    out: &mut Vec<Site>,
    seen: &mut HashSet<(NodeId, Ctx)>,
) {
    let r = y.resolve(id);
    if depth > 128 || (!matches!(y.nodes[r].kind, Kind::Scalar(_)) && !seen.insert((r, ctx))) {
        return; // deep nesting, or a collection already walked in this role (aliases, recursion)
    }
    match &y.nodes[r].kind {
        Kind::Scalar(_) => {
            if ctx == Ctx::Image {
                out.push(Site::Plain(id));
            }
        }
        Kind::Map(entries) => {
            if ctx == Ctx::Image && y.get(r, "repository").is_some() {
                out.push(Site::Helm(r));
            }
            for &(k, v) in entries {
                let child = match y.scalar(k).map(|s| s.value.as_str()) {
                    _ if ctx == Ctx::Opaque => Ctx::Opaque,
                    Some(k) if OPAQUE.contains(&k) => Ctx::Opaque,
                    Some("image") => Ctx::Image,
                    Some("images") => Ctx::Images { top: r == root },
                    _ => Ctx::Other,
                };
                walk(y, v, child, root, depth + 1, out, seen);
            }
        }
        Kind::Seq(items) => {
            for &item in items {
                if let Ctx::Images { top } = ctx {
                    let m = y.resolve(item);
                    let kustomize = y.get(m, "name").is_some_and(|n| y.scalar(n).is_some())
                        && (top
                            || ["newName", "newTag", "digest"]
                                .iter()
                                .any(|k| y.get(m, k).is_some()));
                    if kustomize {
                        out.push(Site::Kustomize(m));
                    }
                }
                let child = match ctx {
                    Ctx::Opaque => Ctx::Opaque,
                    _ => Ctx::Other,
                };
                walk(y, item, child, root, depth + 1, out, seen);
            }
        }
        Kind::Alias(_) => {}
    }
}

/// A site's fields as text, `None` for an absent or non-scalar one.
pub(crate) fn text(y: &Yaml, map: NodeId, key: &str) -> Option<String> {
    y.get(map, key)
        .and_then(|v| y.scalar(v))
        .map(|s| s.value.clone())
}

/// The reference a site makes: what a container runtime pulls (Helm charts render `registry/repository:tag`
/// plus `@digest`; kustomize `newName:newTag@digest`).
pub(crate) fn reference(y: &Yaml, site: Site) -> Option<String> {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    match site {
        Site::Plain(v) => y.scalar(v).map(|s| s.value.clone()),
        Site::Helm(m) => {
            let repo = text(y, m, "repository")?;
            let mut r = match nonempty(text(y, m, "registry")) {
                Some(h) => format!("{}/{repo}", h.trim_end_matches('/')),
                None => repo,
            };
            if let Some(t) = nonempty(text(y, m, "tag")) {
                r = format!("{r}:{t}");
            }
            if let Some(d) = nonempty(text(y, m, "digest")) {
                r = format!("{r}@{d}");
            }
            Some(r)
        }
        Site::Kustomize(m) => {
            let mut r = nonempty(text(y, m, "newName")).or_else(|| text(y, m, "name"))?;
            if let Some(t) = nonempty(text(y, m, "newTag")) {
                r = format!("{r}:{t}");
            }
            if let Some(d) = nonempty(text(y, m, "digest")) {
                r = format!("{r}@{d}");
            }
            Some(r)
        }
    }
}

/// The 1-based line a site is reported at: its value, or its mapping's first line.
pub(crate) fn line(y: &Yaml, site: Site) -> usize {
    match site {
        Site::Plain(v) => y.nodes[v].line,
        Site::Helm(m) | Site::Kustomize(m) => y.nodes[m].line,
    }
}
