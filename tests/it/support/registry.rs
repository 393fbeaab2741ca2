//! A real registry (Debian's `docker-registry`, distribution 2.8) per test, on 127.0.0.1 with a
//! random port and storage in a fresh temp dir, killed on drop.
//!
//! ```ignore
//! let reg = Registry::start(Mode::htpasswd().tls());
//! let reg = Registry::start(Mode::token().anonymous_pull().user("bob", "pw")
//!     .policy(|user, _kind, name, action| user == Some("kiln") || (name == "base" && action == "pull")));
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

use super::certs::{self, TestCa};
use super::token::{Issuer, Scope, TokenConfig, TokenPolicy, TokenRequest, TokenServer};

pub const DEFAULT_USER: &str = "kiln";
pub const DEFAULT_PASSWORD: &str = "kiln-test-pw";
/// The `service` the token-mode registry announces (and the `aud` of its tokens).
pub const TOKEN_SERVICE: &str = "kiln-test-registry";
pub const TOKEN_ISSUER: &str = "kiln-test-token-issuer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Open,
    Htpasswd,
    Token,
}

/// How to run the registry (builder style). `Mode::open()`, `Mode::htpasswd()`, `Mode::token()`,
/// each optionally `.tls()`.
#[derive(Clone)]
pub struct Mode {
    auth: AuthKind,
    tls: bool,
    /// `.tls_cert()`: the server's certificate and key files, the certificate being its own CA.
    cert: Option<(PathBuf, PathBuf)>,
    users: Vec<(String, String)>,
    anonymous_pull: bool,
    policy: Option<TokenPolicy>,
    token_expires_in: u64,
}

impl Mode {
    fn new(auth: AuthKind) -> Mode {
        Mode {
            auth,
            tls: false,
            cert: None,
            users: vec![(DEFAULT_USER.into(), DEFAULT_PASSWORD.into())],
            anonymous_pull: false,
            policy: None,
            token_expires_in: 300,
        }
    }
    /// No authentication.
    pub fn open() -> Mode {
        Mode::new(AuthKind::Open)
    }
    /// Basic auth against an htpasswd (bcrypt) file.
    pub fn htpasswd() -> Mode {
        Mode::new(AuthKind::Htpasswd)
    }
    /// Bearer-token auth with the harness's own token server.
    pub fn token() -> Mode {
        Mode::new(AuthKind::Token)
    }
    /// Serve HTTPS with a certificate from a fresh test CA (see `Registry::ca_pem_path`).
    pub fn tls(mut self) -> Mode {
        self.tls = true;
        self
    }
    /// Serve HTTPS with this certificate and key (PEM files): a self-signed certificate is its own CA, and
    /// `Registry::ca_pem_path` is the certificate.
    pub fn tls_cert(mut self, cert: &Path, key: &Path) -> Mode {
        self.tls = true;
        self.cert = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }
    /// Add a user (htpasswd and token modes). The default user `kiln` / `kiln-test-pw` always exists.
    pub fn user(mut self, name: &str, password: &str) -> Mode {
        self.users.push((name.into(), password.into()));
        self
    }
    /// Token mode: requests without credentials get a token (pull-only under the default policy).
    pub fn anonymous_pull(mut self) -> Mode {
        self.anonymous_pull = true;
        self
    }
    /// Token mode: decide per (user, resource type, name, action) what a token grants. The default
    /// grants authenticated users everything they ask and anonymous users only `pull`.
    pub fn policy(
        mut self,
        f: impl Fn(Option<&str>, &str, &str, &str) -> bool + Send + Sync + 'static,
    ) -> Mode {
        self.policy = Some(Arc::new(f));
        self
    }
}

/// A running `docker-registry serve` process. Killed (SIGKILL) and its storage deleted on drop.
///
/// Do not keep one in a `static`: statics are never dropped, so the process would outlive the test
/// binary.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
    mode: Mode,
    ca_path: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    issuer: Option<Arc<Issuer>>,
    token_server: Option<TokenServer>,
}

fn wait_ready(
    child: &mut Child,
    url: &str,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<(), String> {
    // Without a CA (plain HTTP, or a self-signed `tls_cert` that rustls would not take as a server's own):
    // anything answers.
    let client = client_builder(ca)
        .danger_accept_invalid_certs(ca.is_none())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("registry exited with {status}"));
        }
        match client.get(format!("{url}/v2/")).send() {
            Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 401 => return Ok(()),
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = format!("{e:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "timeout after {timeout:?} waiting for {url}/v2/ (last: {last})"
    ))
}

/// A reqwest client builder for the harness's own requests. reqwest is built without a bundled crypto provider
/// (kiln installs ring itself), so the harness installs the same one before its first client.
pub fn http_client() -> reqwest::blocking::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().no_proxy()
}

fn client_builder(ca: Option<&Path>) -> reqwest::blocking::ClientBuilder {
    let mut b = http_client().redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    b
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-registry.")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir(root.join("data")).unwrap();

        let mut auth_yaml = String::new();
        match mode.auth {
            AuthKind::Open => {}
            AuthKind::Htpasswd => {
                let htpasswd = root.join("htpasswd");
                for (i, (u, p)) in mode.users.iter().enumerate() {
                    let flags = if i == 0 { "-Bbc" } else { "-Bb" };
                    let out = Command::new("htpasswd")
                        .arg(flags)
                        .arg(&htpasswd)
                        .arg(u)
                        .arg(p)
                        .output()
                        .expect("run htpasswd");
                    assert!(
                        out.status.success(),
                        "htpasswd failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test-realm\n    path: {}\n",
                    htpasswd.display()
                );
            }
            AuthKind::Token => {}
        }

        let (mut issuer, mut token_server) = (None::<Arc<Issuer>>, None::<TokenServer>);
        if mode.auth == AuthKind::Token {
            let (key, cert) = certs::token_signing_key();
            let bundle = root.join("token-rootcerts.pem");
            std::fs::write(&bundle, cert.to_pem().unwrap()).unwrap();
            let iss = Arc::new(Issuer::new(key, cert, TOKEN_SERVICE, TOKEN_ISSUER));
            let ts = TokenServer::start(
                iss.clone(),
                TokenConfig {
                    users: mode.users.clone(),
                    anonymous_pull: mode.anonymous_pull,
                    policy: mode.policy.clone(),
                    expires_in: mode.token_expires_in,
                },
            );
            auth_yaml = format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                ts.port,
                bundle.display()
            );
            issuer = Some(iss);
            token_server = Some(ts);
        }

        let (mut tls_yaml, mut ca_path, mut cert_dir) = (String::new(), None, None);
        if let Some((cert, key)) = &mode.cert {
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            let cd = root.join("certs.d");
            std::fs::create_dir(&cd).unwrap();
            std::fs::copy(cert, cd.join("ca.crt")).unwrap();
            ca_path = Some(cert.clone());
            cert_dir = Some(cd);
        } else if mode.tls {
            let ca = TestCa::new();
            let (cert, key) = ca.issue_server();
            let (cp, kp, cap) = (
                root.join("server.crt"),
                root.join("server.key"),
                root.join("ca.pem"),
            );
            std::fs::write(&cp, cert.to_pem().unwrap()).unwrap();
            std::fs::write(&kp, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
            std::fs::write(&cap, ca.pem()).unwrap();
            // containers/image style cert dir: every *.crt is a trusted CA.
            let cd = root.join("certs.d");
            std::fs::create_dir(&cd).unwrap();
            std::fs::write(cd.join("ca.crt"), ca.pem()).unwrap();
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cp.display(),
                kp.display()
            );
            ca_path = Some(cap);
            cert_dir = Some(cd);
        }

        let log_path = root.join("registry.log");
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: kiln-test-not-a-secret\n{tls_yaml}{auth_yaml}",
                data = root.join("data").display(),
            );
            let cfg_path = root.join("config.yml");
            std::fs::write(&cfg_path, &config).unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry (Debian package docker-registry)");
            let mut child = child;
            let scheme = if mode.tls { "https" } else { "http" };
            match wait_ready(
                &mut child,
                &format!("{scheme}://127.0.0.1:{port}"),
                ca_path.as_deref().filter(|_| mode.cert.is_none()),
                Duration::from_secs(30),
            ) {
                Ok(()) => {
                    return Registry {
                        child,
                        port,
                        dir,
                        mode,
                        ca_path,
                        cert_dir,
                        issuer,
                        token_server,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    // Another process may have grabbed the port between probe and bind: retry.
                    if !last_log.contains("address already in use") {
                        panic!(
                            "registry did not come up: {e}\nconfig:\n{config}\n--- registry log ---\n{last_log}"
                        );
                    }
                }
            }
        }
        panic!("registry could not bind a port after 5 attempts\n--- registry log ---\n{last_log}");
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.mode.tls { "https" } else { "http" },
            self.host()
        )
    }
    pub fn is_tls(&self) -> bool {
        self.mode.tls
    }
    pub fn auth_kind(&self) -> AuthKind {
        self.mode.auth
    }
    /// The default user (also defined, but unused, in open mode).
    pub fn username(&self) -> &str {
        &self.mode.users[0].0
    }
    pub fn password(&self) -> &str {
        &self.mode.users[0].1
    }
    /// `Basic …` header value for the default user.
    pub fn basic_auth(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username(), self.password()))
        )
    }
    /// PEM of the test CA that signed the server certificate. Panics unless `.tls()`.
    pub fn ca_pem_path(&self) -> &Path {
        self.ca_path
            .as_deref()
            .expect("ca_pem_path() needs Mode::…().tls()")
    }
    /// A directory holding `ca.crt` (for `skopeo --cert-dir` / docker `certs.d`). Panics unless `.tls()`.
    pub fn cert_dir(&self) -> &Path {
        self.cert_dir
            .as_deref()
            .expect("cert_dir() needs Mode::…().tls()")
    }
    /// The registry's filesystem storage root.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    /// Everything the registry wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Token mode: the realm URL (`http://127.0.0.1:P/token`).
    pub fn token_realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.token_server().port)
    }
    /// Token mode: every request the token server received, in order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token_server().requests()
    }
    pub fn clear_token_requests(&self) {
        self.token_server().clear()
    }
    /// Token mode: whether any token request asked for exactly `scope` (e.g. `repository:base:pull`).
    pub fn token_scope_requested(&self, scope: &str) -> bool {
        self.token_requests().iter().any(|r| r.asked(scope))
    }
    fn token_server(&self) -> &TokenServer {
        self.token_server
            .as_ref()
            .expect("token-mode registry required")
    }

    /// Token mode: sign a token directly (not via the token server, not recorded) granting exactly
    /// `scopes` (`type:name:actions`) to `sub`.
    pub fn mint_token(&self, sub: &str, scopes: &[&str]) -> String {
        let iss = self.issuer.as_ref().expect("token-mode registry required");
        let scopes: Vec<Scope> = scopes
            .iter()
            .map(|s| Scope::parse(s).expect("scope type:name:actions"))
            .collect();
        iss.mint(sub, &scopes, self.mode.token_expires_in)
    }

    /// The `Authorization` header value a test-side client should send for an operation needing
    /// `scopes`: None (open), Basic (htpasswd), or a freshly minted Bearer token (token mode).
    pub fn auth_header(&self, scopes: &[&str]) -> Option<String> {
        match self.mode.auth {
            AuthKind::Open => None,
            AuthKind::Htpasswd => Some(self.basic_auth()),
            AuthKind::Token => Some(format!(
                "Bearer {}",
                self.mint_token(self.username(), scopes)
            )),
        }
    }

    /// A reqwest client builder that trusts the test CA (TLS mode) and does not follow redirects.
    pub fn client_builder(&self) -> reqwest::blocking::ClientBuilder {
        client_builder(self.ca_path.as_deref())
    }
    /// `client_builder().build()`.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client_builder().build().unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && std::env::var_os("KILN_TEST_REGISTRY_LOG").is_some() {
            eprintln!("--- registry {} log ---\n{}", self.host(), self.log());
        }
    }
}
