//! Where registry credentials come from, in this order: `KILN_REGISTRY_USERNAME`/`KILN_REGISTRY_PASSWORD` (for
//! one registry only: `KILN_REGISTRY`, else the one the command publishes to or reads);
//! `REGISTRY_AUTH_FILE`; docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`: `credHelpers`, `credsStore`,
//! then `auths`); podman's `$XDG_RUNTIME_DIR/containers/auth.json` and `~/.config/containers/auth.json`.
//! Every credential says where it came from (`source`), never what it is.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fsx::{Mode, WriteOptions, write_atomic};
use crate::reference::{DOCKER_HUB, normalize_registry};

/// The key docker uses for Docker Hub in `auths` and with credential helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token realm.
    IdentityToken {
        username: String,
        token: String,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub secret: Secret,
    /// Human description of where it was found, e.g. `~/.docker/config.json auths["127.0.0.1:5000"]`.
    pub source: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.secret {
            Secret::Basic { username, .. } => format!("basic user {username:?}"),
            Secret::IdentityToken { .. } => "identity token".to_string(),
        };
        write!(f, "Credential({kind} from {})", self.source)
    }
}

/// The environment the lookup reads; `from_process` for real use, built by hand in tests.
#[derive(Clone, Debug, Default)]
pub struct CredentialEnv {
    pub username: Option<String>,
    pub password: Option<String>,
    /// The one registry `username`/`password` are for (`KILN_REGISTRY`, or the command's target): a CI job's
    /// token must not reach a third-party registry that serves only the base, and a public base must stay
    /// pullable while it is set (Docker Hub answers wrong credentials with 401 even for public images).
    pub env_registry: Option<String>,
    pub registry_auth_file: Option<PathBuf>,
    pub docker_config_dir: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// `PATH` for finding `docker-credential-*` helpers.
    pub path: Option<std::ffi::OsString>,
}

impl CredentialEnv {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        CredentialEnv {
            username: var("KILN_REGISTRY_USERNAME").and_then(|v| v.into_string().ok()),
            password: var("KILN_REGISTRY_PASSWORD").and_then(|v| v.into_string().ok()),
            env_registry: var("KILN_REGISTRY")
                .and_then(|v| v.into_string().ok())
                .map(|r| normalize_registry(&r)),
            registry_auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            docker_config_dir: var("DOCKER_CONFIG").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            path: var("PATH"),
        }
    }

    /// docker's `config.json`: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn docker_config(&self) -> Option<PathBuf> {
        match &self.docker_config_dir {
            Some(d) => Some(d.join("config.json")),
            None => self.home.as_ref().map(|h| h.join(".docker/config.json")),
        }
    }

    /// `path` with the home directory shown as `~`.
    pub fn display(&self, path: &Path) -> String {
        if let Some(rest) = self.home.as_ref().and_then(|h| path.strip_prefix(h).ok()) {
            return format!("~/{}", rest.display());
        }
        path.display().to_string()
    }
}

/// The `auths`/helper key for a registry.
pub fn config_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Find credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub).
pub fn lookup(env: &CredentialEnv, registry: &str) -> Result<Option<Credential>> {
    if let (Some(u), Some(p), Some(for_registry)) =
        (&env.username, &env.password, &env.env_registry)
        && for_registry == registry
    {
        return Ok(Some(Credential {
            secret: Secret::Basic {
                username: u.clone(),
                password: p.clone(),
            },
            source: "KILN_REGISTRY_USERNAME/KILN_REGISTRY_PASSWORD".to_string(),
        }));
    }
    let mut files = Vec::new();
    files.extend(env.registry_auth_file.clone());
    files.extend(env.docker_config());
    files.extend(
        env.xdg_runtime_dir
            .as_ref()
            .map(|d| d.join("containers/auth.json")),
    );
    files.extend(
        env.home
            .as_ref()
            .map(|h| h.join(".config/containers/auth.json")),
    );
    let mut seen = Vec::new();
    for f in files {
        if seen.contains(&f) {
            continue;
        }
        seen.push(f.clone());
        if let Some(c) = lookup_file(env, &f, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn lookup_file(env: &CredentialEnv, path: &Path, registry: &str) -> Result<Option<Credential>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let shown = env.display(path);
    let doc: Value = serde_json::from_slice(&text).map_err(|e| {
        Error::input(
            path,
            format!("not valid JSON ({e}); cannot read registry credentials"),
        )
    })?;
    let want = normalize_registry(registry);
    if let Some(helper) = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| normalize_registry(k) == want))
        .and_then(|(_, v)| v.as_str())
    {
        return run_helper(env, helper, registry, &format!("credHelpers in {shown}"));
    }
    if let Some(store) = doc
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        && let Some(c) = run_helper(env, store, registry, &format!("credsStore in {shown}"))?
    {
        return Ok(Some(c));
    }
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    // An exact key first, then any spelling of the same host.
    let exact = config_key(registry);
    let entry = auths
        .get_key_value(&exact)
        .or_else(|| auths.iter().find(|(k, _)| normalize_registry(k) == want));
    let Some((key, entry)) = entry else {
        return Ok(None);
    };
    let source = format!("{shown} auths[{key:?}]");
    let bad = |why: &str| Error::input(path, format!("auths[{key:?}]: {why}"));
    let s = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (mut username, mut password) = (s("username"), s("password"));
    if let Some(auth) = s("auth") {
        let raw = B64
            .decode(auth.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let raw = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not base64 of user:password"))?;
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    if let Some(token) = s("identitytoken") {
        return Ok(Some(Credential {
            secret: Secret::IdentityToken {
                username: username.unwrap_or_default(),
                token,
            },
            source,
        }));
    }
    Ok(match (username, password) {
        (Some(username), Some(password)) => Some(Credential {
            secret: Secret::Basic { username, password },
            source,
        }),
        _ => None,
    })
}

/// `docker-credential-<name> get`, the server URL on stdin.
fn run_helper(
    env: &CredentialEnv,
    name: &str,
    registry: &str,
    configured_in: &str,
) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let fail = |why: String| Error::Registry {
        method: "credential helper".to_string(),
        url: registry.to_string(),
        status: None,
        code: None,
        message: format!("{program} ({configured_in}): {why}"),
    };
    let server = config_key(registry);
    let out = run_helper_verb(env, &program, "get", server.as_bytes()).map_err(fail)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let msg = format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if msg.to_ascii_lowercase().contains("credentials not found") || msg.is_empty() {
            return Ok(None);
        }
        // The helper's own message, never its output on success (that is the secret).
        return Err(fail(msg.chars().take(200).collect()));
    }
    let v: Value =
        serde_json::from_str(&stdout).map_err(|_| fail("output is not JSON".to_string()))?;
    let username = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let secret = v
        .get("Secret")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if secret.is_empty() {
        return Ok(None);
    }
    let source = format!("{program} ({configured_in})");
    let secret = if username == "<token>" {
        Secret::IdentityToken {
            username,
            token: secret,
        }
    } else {
        Secret::Basic {
            username,
            password: secret,
        }
    };
    Ok(Some(Credential { secret, source }))
}

/// Store credentials for `registry` as `docker login` does: through the credential helper `config.json` names
/// for it (`credHelpers`, else `credsStore`: `docker-credential-NAME store`), leaving only an empty `auths` entry
/// in the file (no secret in it); without a helper, in `auths` (base64 `user:password`). Either way an older
/// entry for the same registry under another spelling goes, so no stale credentials win on lookup. Returns where
/// they went, for the user. `env` finds the helper (`PATH`) and shows paths.
pub fn store(
    env: &CredentialEnv,
    path: &Path,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<String> {
    let mut doc: Value = match std::fs::read(path) {
        Ok(t) if t.iter().all(u8::is_ascii_whitespace) => Value::Object(Default::default()),
        Ok(t) => serde_json::from_slice(&t)
            .map_err(|e| Error::input(path, format!("not valid JSON ({e}); not overwriting it")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Default::default()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| Error::input(path, "not a JSON object; not overwriting it"))?;
    let key = config_key(registry);
    let want = normalize_registry(&key);
    let shown = env.display(path);
    let helper = obj
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| normalize_registry(k) == want))
        .and_then(|(_, v)| v.as_str())
        .map(|h| (h.to_string(), format!("credHelpers in {shown}")))
        .or_else(|| {
            obj.get("credsStore")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|h| (h.to_string(), format!("credsStore in {shown}")))
        });
    if let Some((name, configured_in)) = &helper {
        store_in_helper(env, name, configured_in, &key, username, password)?;
    }
    let auths = obj
        .entry("auths")
        .or_insert_with(|| Value::Object(Default::default()));
    let auths = auths
        .as_object_mut()
        .ok_or_else(|| Error::input(path, "\"auths\" is not an object"))?;
    auths.retain(|k, _| k == &key || normalize_registry(k) != want);
    let entry = match &helper {
        // As docker writes it: the registry known, its secret in the helper.
        Some(_) => serde_json::json!({}),
        None => serde_json::json!({ "auth": B64.encode(format!("{username}:{password}")) }),
    };
    auths.insert(key, entry);
    let mut text = serde_json::to_vec_pretty(&doc).expect("JSON value serializes");
    text.push(b'\n');
    write_private_atomic(path, &text)?;
    Ok(match helper {
        Some((name, configured_in)) => format!("docker-credential-{name} ({configured_in})"),
        None => shown,
    })
}

/// `docker-credential-<name> store`, `{"ServerURL","Username","Secret"}` on stdin (docker's credential helper
/// protocol). A helper that is missing or fails is an error naming it: the credentials are then stored nowhere.
fn store_in_helper(
    env: &CredentialEnv,
    name: &str,
    configured_in: &str,
    server: &str,
    username: &str,
    password: &str,
) -> Result<()> {
    let program = format!("docker-credential-{name}");
    let fail = |why: String| {
        Error::Usage(format!(
            "{program} ({configured_in}) could not store the credentials for {server}: {why}; nothing was stored"
        ))
    };
    let input =
        serde_json::json!({ "ServerURL": server, "Username": username, "Secret": password });
    let out =
        run_helper_verb(env, &program, "store", input.to_string().as_bytes()).map_err(fail)?;
    if !out.status.success() {
        let said = format!(
            "{} {}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        // A helper that echoes its input when it fails must not get the secret printed.
        let said = said.replace(password, "***");
        return Err(fail(format!(
            "it exited with {} ({})",
            out.status,
            said.trim()
        )));
    }
    Ok(())
}

/// `config.json` holds secrets: a new directory is private (0700) and the file is 0600, synced. A symlinked
/// `config.json` (dotfile managers link it into their repository) is written through to the file it points at, as
/// docker does, instead of being replaced by a regular file.
fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    let opts = WriteOptions::new()
        .mode(Mode::Bits(0o600))
        .sync(true)
        .follow_symlinks(true);
    write_atomic(path, bytes, opts)
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;

/// Run `program VERB` (docker's credential helper protocol) with `input` on stdin and `env`'s `PATH`; its output.
/// A helper that stops reading early says why on stderr and in its exit status, which the caller reports, so a
/// failed write to its stdin is not the error. `Err` says why it could not be run at all.
fn run_helper_verb(
    env: &CredentialEnv,
    program: &str,
    verb: &str,
    input: &[u8],
) -> std::result::Result<std::process::Output, String> {
    let mut cmd = Command::new(program);
    if let Some(p) = &env.path {
        cmd.env("PATH", p);
    }
    let mut child = cmd
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().map_err(|e| e.to_string())
}
