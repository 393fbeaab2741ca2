//! A tiny Docker-registry token server (https://distribution.github.io/distribution/spec/auth/token/)
//! on a std thread: `GET /token?service=…&scope=…` with Basic credentials (or anonymously, if
//! allowed) returns a JWT signed RS256 by a test key whose certificate is in the registry's
//! `rootcertbundle` and in the token's `x5c` header.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;

use super::http::{self, Head};

/// Decides whether `user` (None = anonymous) may perform `action` on resource `type`/`name`
/// (e.g. `"repository"`, `"library/base"`, `"push"`).
pub type TokenPolicy = Arc<dyn Fn(Option<&str>, &str, &str, &str) -> bool + Send + Sync>;

/// One resource scope as requested (`repository:name:pull,push`) or granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parse `type:name:actions` (the name may itself contain `:`, e.g. a host:port).
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Scope {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// One request the token server received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    #[allow(dead_code, reason = "read by Debug in failure messages")]
    pub method: String,
    /// Path and raw query as received.
    #[allow(dead_code, reason = "read by Debug in failure messages")]
    pub target: String,
    /// Basic-auth user name, if credentials were sent (valid or not).
    pub user: Option<String>,
    /// The `scope` values as sent (each `type:name:actions`; several per request possible).
    pub scopes: Vec<String>,
    /// What the issued token grants, in the same string form (empty if refused).
    pub granted: Vec<String>,
    pub service: Option<String>,
    /// 200 when a token was issued, 401 for bad/missing credentials, 404 for other paths/methods.
    pub status: u16,
}

impl TokenRequest {
    /// Whether `scope` (exact string, e.g. `repository:base:pull`) was requested.
    pub fn asked(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

pub(crate) struct Issuer {
    key: PKey<Private>,
    cert: X509,
    pub service: String,
    pub issuer: String,
    jti: AtomicU64,
}

impl Issuer {
    pub fn new(key: PKey<Private>, cert: X509, service: &str, issuer: &str) -> Issuer {
        Issuer {
            key,
            cert,
            service: service.into(),
            issuer: issuer.into(),
            jti: AtomicU64::new(1),
        }
    }

    /// Sign a token for `sub` granting exactly `access`, valid for `expires_in` seconds.
    pub fn mint(&self, sub: &str, access: &[Scope], expires_in: u64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let x5c = STANDARD.encode(self.cert.to_der().unwrap());
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
        let access: Vec<_> = access
            .iter()
            .map(|s| serde_json::json!({"type": s.kind, "name": s.name, "actions": s.actions}))
            .collect();
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.service,
            "exp": now + expires_in,
            "nbf": now - 10,
            "iat": now - 10,
            "jti": format!("kiln-test-{}-{}", std::process::id(), self.jti.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key).unwrap();
        signer.update(signing_input.as_bytes()).unwrap();
        let sig = signer.sign_to_vec().unwrap();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

pub(crate) struct TokenConfig {
    pub users: Vec<(String, String)>,
    pub anonymous_pull: bool,
    pub policy: Option<TokenPolicy>,
    pub expires_in: u64,
}

struct Shared {
    issuer: Arc<Issuer>,
    config: TokenConfig,
    log: Mutex<Vec<TokenRequest>>,
    stop: AtomicBool,
}

pub(crate) struct TokenServer {
    pub port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    pub fn start(issuer: Arc<Issuer>, config: TokenConfig) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            issuer,
            config,
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("token-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s = s.clone();
                    std::thread::spawn(move || {
                        let _ = serve(&s, conn);
                    });
                }
            })
            .unwrap();
        TokenServer {
            port,
            shared,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.shared.log.lock().unwrap().clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn basic_credentials(head: &Head) -> Option<(String, String)> {
    let v = head.get("authorization")?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn serve(s: &Shared, conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    // One request per connection (we always answer `Connection: close`).
    let Some(head) = http::read_head(&mut reader)? else {
        return Ok(());
    };
    let kind = head.body_kind(true);
    http::copy_body(&mut reader, &mut std::io::sink(), kind, None)?;
    let (method, target, _) = head.request_parts();
    let (path, query) = http::split_query(target);
    let scopes: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let service = query
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let creds = basic_credentials(&head);
    let mut rec = TokenRequest {
        method: method.to_string(),
        target: target.to_string(),
        user: creds.as_ref().map(|(u, _)| u.clone()),
        scopes: scopes.clone(),
        granted: Vec::new(),
        service: service.clone(),
        status: 0,
    };
    let unauthorized = [(
        "WWW-Authenticate",
        "Basic realm=\"kiln-test-token\"".to_string(),
    )];
    let json = [("Content-Type", "application/json".to_string())];

    if method != "GET" || path != "/token" {
        rec.status = 404;
        s.log.lock().unwrap().push(rec);
        return http::write_response(&mut w, 404, &json, br#"{"error":"not found"}"#, true);
    }
    let user: Option<String> = match &creds {
        Some((u, p)) if s.config.users.iter().any(|(uu, pp)| uu == u && pp == p) => Some(u.clone()),
        None if s.config.anonymous_pull => None,
        _ => {
            rec.status = 401;
            s.log.lock().unwrap().push(rec);
            return http::write_response(
                &mut w,
                401,
                &unauthorized,
                br#"{"error":"invalid credentials"}"#,
                true,
            );
        }
    };
    let allowed = |kind: &str, name: &str, action: &str| -> bool {
        match &s.config.policy {
            Some(p) => p(user.as_deref(), kind, name, action),
            None => user.is_some() || action == "pull",
        }
    };
    let mut granted: Vec<Scope> = Vec::new();
    for sc in scopes.iter().filter_map(|x| Scope::parse(x)) {
        let actions: Vec<String> = sc
            .actions
            .iter()
            .filter(|a| allowed(&sc.kind, &sc.name, a))
            .cloned()
            .collect();
        if actions.is_empty() {
            continue;
        }
        // Merge repeated resources so the access list has one entry per resource.
        if let Some(g) = granted
            .iter_mut()
            .find(|g| g.kind == sc.kind && g.name == sc.name)
        {
            for a in actions {
                if !g.actions.contains(&a) {
                    g.actions.push(a);
                }
            }
        } else {
            granted.push(Scope {
                kind: sc.kind,
                name: sc.name,
                actions,
            });
        }
    }
    let token = s
        .issuer
        .mint(user.as_deref().unwrap_or(""), &granted, s.config.expires_in);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": s.config.expires_in,
        "issued_at": format_rfc3339(now),
    })
    .to_string();
    rec.status = 200;
    rec.granted = granted.iter().map(|g| g.to_string()).collect();
    s.log.lock().unwrap().push(rec);
    http::write_response(&mut w, 200, &json, body.as_bytes(), true)?;
    w.flush()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a unix timestamp (civil-from-days, no chrono needed).
fn format_rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
