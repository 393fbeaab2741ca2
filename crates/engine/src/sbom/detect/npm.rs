//! npm: each installed package's `node_modules/[@scope/]name/package.json`, and the packages a
//! `package-lock.json` (lockfileVersion 1, 2 or 3) lists.

use serde::Deserialize;
use serde_json::Value;

use crate::sbom::detect::found::{Found, METADATA_CAP, read_capped};
use crate::sbom::model::{Ecosystem, EvidenceKind, FileRecord};

/// Whether `dir` (the directory of a package.json) is a package's root in node_modules: `…/node_modules/name`
/// or `…/node_modules/@scope/name`. A package.json deeper in a package (`lib/package.json` with only
/// `"type": "module"`) is not a package.
pub fn is_installed_package(dir: &str) -> bool {
    let Some(i) = dir.rfind("/node_modules/") else {
        return false;
    };
    let rest = &dir[i + "/node_modules/".len()..];
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        [name] => !name.is_empty() && !name.starts_with('.') && !name.starts_with('@'),
        [scope, name] => scope.starts_with('@') && scope.len() > 1 && !name.is_empty(),
        _ => false,
    }
}

/// The fields read from an installed package.json: parsed into this, not a whole `Value`, as a node_modules
/// tree has thousands of them with dependencies, scripts and more, skipped without being built.
#[derive(Deserialize)]
struct Manifest {
    name: Option<String>,
    version: Option<String>,
    license: Option<Value>,
    licenses: Option<Value>,
}

/// An installed package's package.json: name and version are required, license is read when declared.
pub fn package_json(f: &FileRecord, found: &mut Found) -> Result<(), String> {
    let bytes = read_capped(&f.source, METADATA_CAP)?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let (Some(name), Some(version)) = (m.name.filter(|n| !n.is_empty()), m.version) else {
        return Err("package.json without a name and version".into());
    };
    let license = license(m.license.as_ref(), m.licenses.as_ref());
    found.add(
        Ecosystem::Npm,
        &name,
        Some(&version),
        license.as_deref(),
        &f.path,
        EvidenceKind::Member,
    );
    Ok(())
}

/// The packages a lock file lists (not the root project itself, not links to local directories).
pub fn lockfile(f: &FileRecord, found: &mut Found) -> Result<(), String> {
    let v = parse(f)?;
    if let Some(packages) = v.get("packages").and_then(Value::as_object) {
        // lockfileVersion 2 and 3: keys are install paths, "" is the root project.
        for (key, p) in packages {
            let Some(i) = key.rfind("node_modules/") else {
                continue;
            };
            if p.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            // The name is the path after the last node_modules/, unless the entry says otherwise (aliases).
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&key[i + "node_modules/".len()..]);
            let Some(version) = p.get("version").and_then(Value::as_str) else {
                continue;
            };
            let license = license(p.get("license"), p.get("licenses"));
            found.add(
                Ecosystem::Npm,
                name,
                Some(version),
                license.as_deref(),
                &f.path,
                EvidenceKind::Lockfile,
            );
        }
        return Ok(());
    }
    match v.get("dependencies").and_then(Value::as_object) {
        Some(deps) => {
            lockfile_v1(deps, f, found, 0);
            Ok(())
        }
        None => Err("neither \"packages\" nor \"dependencies\" in the lock file".into()),
    }
}

/// lockfileVersion 1: nested `dependencies` maps of name → {version, dependencies}.
fn lockfile_v1(
    deps: &serde_json::Map<String, Value>,
    f: &FileRecord,
    found: &mut Found,
    depth: usize,
) {
    // Nesting mirrors node_modules; anything deeper than this is not a real tree.
    if depth > 64 {
        return;
    }
    for (name, d) in deps {
        let version = d.get("version").and_then(Value::as_str);
        // `file:` and `git+` versions are not registry versions: the package is still named, without one.
        let version = version.filter(|v| !v.contains(':'));
        found.add(
            Ecosystem::Npm,
            name,
            version,
            None,
            &f.path,
            EvidenceKind::Lockfile,
        );
        if let Some(sub) = d.get("dependencies").and_then(Value::as_object) {
            lockfile_v1(sub, f, found, depth + 1);
        }
    }
}

fn parse(f: &FileRecord) -> Result<Value, String> {
    let bytes = read_capped(&f.source, METADATA_CAP)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not valid JSON: {e}"))
}

/// `"license": "MIT"`, the old `"license": {"type": "MIT"}`, or the older `"licenses": [{"type": …}, …]`
/// (joined with OR: the package may be used under any of them).
fn license(license: Option<&Value>, licenses: Option<&Value>) -> Option<String> {
    match license {
        Some(Value::String(s)) => return Some(s.clone()),
        Some(Value::Object(o)) => {
            if let Some(t) = o.get("type").and_then(Value::as_str) {
                return Some(t.to_string());
            }
        }
        _ => {}
    }
    let list: Vec<&str> = licenses
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|l| l.get("type").and_then(Value::as_str).or_else(|| l.as_str()))
        .collect();
    match list.len() {
        0 => None,
        1 => Some(list[0].to_string()),
        _ => Some(list.join(" OR ")),
    }
}
