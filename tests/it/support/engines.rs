//! Real container engines from Debian's packages, started by the test harness as root, each in its own temp
//! directory (config, data, state, socket, logs): kiln's images are run, not only inspected.
//!
//! * `engines()` — the engines that started, each started once per run of this test binary (a `OnceLock`) and
//!   shared by the tests. One that cannot start fails the test under `CI=true`; elsewhere it is skipped with
//!   `skipped: <engine>: <reason>` on stderr (never silently).
//! * `Engine::load` (a docker archive), `Engine::pull` (from a loopback test registry, plain HTTP),
//!   `Engine::run` (`--rm`, no network).
//! * Shutdown: at the exit of the test process (`atexit`, so also after failed tests) every engine's containers are
//!   removed, its daemon is stopped (SIGTERM, then SIGKILL), whatever is still mounted under its directory is
//!   unmounted, and the directory is removed. An engine that fails half-way through its start is cleaned up the
//!   same way at once (the guard's `Drop`).
//!
//! What starts on a machine like CI's (Debian 12, root, a container with hybrid cgroups v1+v2, hard rlimits that
//! cannot be raised) and why each flag is there is said where each engine is started, below.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The engines, in the order tests run them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Containerd,
    Docker,
    Podman,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Containerd, Kind::Docker, Kind::Podman];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Containerd => "containerd",
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }
}

/// The user a container process runs as: its numeric id (docker/podman `--user`) and its name in the image's
/// `/etc/passwd` (for containerd, see `Engine::run`).
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// One started engine. Its commands talk only to its own daemon / storage.
pub struct Engine {
    pub kind: Kind,
    /// The server's version, e.g. `20.10.24+dfsg1` (docker), `1.6.20~ds1` (containerd), `4.3.1` (podman).
    pub version: String,
    dir: PathBuf,
}

/// containerd namespace of the tests' images and containers.
const CTR_NAMESPACE: &str = "kiln-it";
/// Time limit of one engine command (`timeout`): a hung engine fails the test instead of hanging the run.
const COMMAND_TIMEOUT: &str = "300";
/// Debian's docker client (docker.io). Not `docker` from PATH: another client may come first there (this
/// machine has a newer static one in /usr/local/bin).
const DOCKER: &str = "/usr/bin/docker";

/// The engines that started, starting each on first use; the others are skipped loudly (or fail under CI=true).
pub fn engines() -> Vec<&'static Engine> {
    Kind::ALL.iter().filter_map(|&k| engine(k)).collect()
}

/// The engine `kind` if it started. If it cannot start: under `CI=true` the test fails; otherwise
/// `skipped: <engine>: <reason>` is printed on stderr and `None` returned.
pub fn engine(kind: Kind) -> Option<&'static Engine> {
    static SLOTS: [OnceLock<Result<Engine, String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = &SLOTS[Kind::ALL.iter().position(|&k| k == kind).unwrap()];
    match slot.get_or_init(|| start(kind)) {
        Ok(e) => Some(e),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{}: cannot start: {reason}\n(CI=true: an engine that cannot start fails the test instead of being \
             skipped)",
            kind.name()
        ),
        Err(reason) => {
            loud(&format!("skipped: {}: {reason}", kind.name()));
            None
        }
    }
}

/// A line on the test process's real stderr. `eprintln!` would be captured by the test harness and shown only
/// for a failing test: a skip must be seen.
pub fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// One line per engine: `engine version`, for test output.
impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.version)
    }
}

impl Engine {
    /// The engine's client with its flags (socket, namespace, storage), under `timeout`.
    fn client(&self) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=10", COMMAND_TIMEOUT]);
        cmd.stdin(Stdio::null());
        client_args(&mut cmd, self.kind, &self.dir);
        cmd
    }

    /// Load a docker archive (`docker load -i`, `podman load -i`, `ctr image import`). The image is then
    /// `docker.io/REPO:TAG` for the archive's `REPO:TAG` in all three.
    pub fn load(&self, archive: &Path) {
        let mut cmd = self.client();
        match self.kind {
            Kind::Containerd => cmd.args(["image", "import"]).arg(archive),
            Kind::Docker | Kind::Podman => cmd.args(["load", "-i"]).arg(archive),
        };
        self.ok(&mut cmd, "load");
    }

    /// Pull `reference` (`127.0.0.1:PORT/REPO:TAG`) from a plain-HTTP loopback registry; the output, whatever
    /// the exit status. docker treats 127.0.0.0/8 registries as insecure by default: no flag needed.
    pub fn pull(&self, reference: &str) -> Output {
        let mut cmd = self.client();
        match self.kind {
            Kind::Containerd => cmd.args(["image", "pull", "--plain-http", reference]),
            Kind::Docker => cmd.args(["pull", "-q", reference]),
            Kind::Podman => cmd.args(["pull", "-q", "--tls-verify=false", reference]),
        };
        cmd.output().expect("spawn the engine's client")
    }

    /// `pull`, which must succeed.
    pub fn pull_ok(&self, reference: &str) {
        let out = self.pull(reference);
        assert!(
            out.status.success(),
            "{self}: pull {reference} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Run `image` in a new container, removed afterwards, without network. `argv` empty: the image's own
    /// entrypoint and cmd; otherwise `argv` replaces both (docker/podman `--entrypoint argv[0]` + the rest).
    ///
    /// `user`: docker and podman run the process as `--user ID`. containerd 1.6's `ctr run` has no user flag, so
    /// there the command becomes `/usr/bin/busybox su -s /usr/bin/sh NAME -c 'ARGV…'` run as root: the image
    /// must then hold busybox in /usr/bin and NAME in its /etc/passwd.
    pub fn run(&self, image: &str, user: Option<User>, argv: &[&str]) -> Output {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let mut cmd = self.client();
        match self.kind {
            Kind::Containerd => {
                let id = format!(
                    "kiln-it-{}-{}",
                    std::process::id(),
                    RUNS.fetch_add(1, Ordering::Relaxed)
                );
                cmd.args(["run", "--rm", image, &id]);
                match user {
                    None => cmd.args(argv),
                    Some(u) => {
                        assert!(
                            !argv.is_empty(),
                            "containerd: a user needs an explicit argv"
                        );
                        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
                        cmd.args(["/usr/bin/busybox", "su", "-s", "/usr/bin/sh", u.name, "-c"])
                            .arg(quoted.join(" "))
                    }
                };
            }
            Kind::Docker | Kind::Podman => {
                cmd.args(["run", "--rm", "--network", "none"]);
                if let Some(u) = user {
                    cmd.args(["--user", u.id]);
                }
                if let Some((first, rest)) = argv.split_first() {
                    cmd.args(["--entrypoint", first, image]).args(rest);
                } else {
                    cmd.arg(image);
                }
            }
        }
        cmd.output().expect("spawn the engine's client")
    }

    /// `run`, which must exit 0; its stdout.
    pub fn run_ok(&self, image: &str, user: Option<User>, argv: &[&str]) -> Vec<u8> {
        let out = self.run(image, user, argv);
        assert!(
            out.status.success(),
            "{self}: run {image} {argv:?} as {user:?} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        out.stdout
    }

    fn ok(&self, cmd: &mut Command, what: &str) -> String {
        let out = cmd.output().expect("spawn the engine's client");
        assert!(
            out.status.success(),
            "{self}: {what}: {cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The client program and the flags that point it at the engine in `dir`.
fn client_args(cmd: &mut Command, kind: Kind, dir: &Path) {
    match kind {
        Kind::Containerd => {
            cmd.arg("ctr")
                .arg("--address")
                .arg(dir.join("containerd.sock"))
                .args(["--namespace", CTR_NAMESPACE]);
        }
        Kind::Docker => {
            // DOCKER_CONFIG: an empty client config (no credentials, no context of the machine's user).
            cmd.env("DOCKER_CONFIG", dir.join("client"))
                .arg(DOCKER)
                .arg("--host")
                .arg(format!("unix://{}", dir.join("docker.sock").display()));
        }
        Kind::Podman => {
            cmd.env("CONTAINERS_CONF", dir.join("containers.conf"))
                .arg("podman")
                .arg("--root")
                .arg(dir.join("root"))
                .arg("--runroot")
                .arg(dir.join("run"))
                .arg("--tmpdir")
                .arg(dir.join("tmp"));
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------------------------------------------
// Start and stop.

/// What is needed to stop one engine: its daemon (containerd, dockerd; none for podman) and its directory.
struct Guard {
    kind: Kind,
    dir: PathBuf,
    daemon: Option<Child>,
}

/// Guards of the engines that started, dropped (= stopped) at process exit.
static GUARDS: Mutex<Vec<Guard>> = Mutex::new(Vec::new());

extern "C" fn stop_all_at_exit() {
    // No panic may unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(|| {
        let guards = std::mem::take(&mut *GUARDS.lock().unwrap_or_else(|e| e.into_inner()));
        drop(guards);
    });
}

impl Drop for Guard {
    fn drop(&mut self) {
        let name = self.kind.name();
        // 1. Remove what is left running (a test that panicked mid-run, a client killed by `timeout`).
        let quiet = |args: &[&str]| {
            let mut cmd = Command::new("timeout");
            cmd.args(["--kill-after=5", "30"]);
            client_args(&mut cmd, self.kind, &self.dir);
            cmd.args(args)
                .stdin(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let daemon_alive = match self.daemon.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        };
        if daemon_alive {
            match self.kind {
                Kind::Containerd => {
                    for id in quiet(&["containers", "list", "--quiet"]).lines() {
                        quiet(&["task", "kill", "--signal", "SIGKILL", id]);
                        quiet(&["task", "delete", "--force", id]);
                        quiet(&["containers", "delete", id]);
                    }
                }
                Kind::Docker => {
                    let ids = quiet(&["ps", "--all", "--quiet"]);
                    let ids: Vec<&str> = ids.split_whitespace().collect();
                    if !ids.is_empty() {
                        let mut args = vec!["rm", "--force"];
                        args.extend(ids);
                        quiet(&args);
                    }
                }
                Kind::Podman => {
                    quiet(&["rm", "--all", "--force"]);
                }
            }
        }
        // 2. Stop the daemon: SIGTERM (dockerd then stops its own containerd and unmounts its data root), after
        //    20 s SIGKILL.
        if let Some(child) = self.daemon.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .output();
            let t0 = Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if t0.elapsed() > Duration::from_secs(20) {
                    eprintln!("{name}: did not stop within 20 s of SIGTERM: killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // 3. Whatever is still mounted under the engine's directory (overlay and bind mounts of a daemon that
        //    was killed), deepest first.
        unmount_under(&self.dir);
        // 4. The directory.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("{name}: removing {}: {e}", self.dir.display());
        }
    }
}

/// Mount points at or under `dir` (from /proc/self/mountinfo), unmounted deepest first (lazily if busy).
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort();
    points.dedup();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let ok = Command::new("umount")
            .arg(&p)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&p).output();
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\' && i + 4 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 4]).ok())
            .flatten()
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn start(kind: Kind) -> Result<Engine, String> {
    static AT_EXIT: OnceLock<()> = OnceLock::new();
    AT_EXIT.get_or_init(|| {
        // SAFETY: registers a plain `extern "C" fn()` that never unwinds (it catches panics).
        let rc = unsafe { libc::atexit(stop_all_at_exit) };
        assert_eq!(rc, 0, "atexit");
    });
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if uid != "0" {
        return Err(format!(
            "needs root (the harness starts the engine itself), running as uid {uid}"
        ));
    }
    // A short path: the daemons' unix sockets live in it (108 bytes at most).
    let dir = std::env::temp_dir().join(format!("kiln-it-{}-{}", std::process::id(), kind.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    // From here on the guard cleans up whatever fails.
    let mut guard = Guard {
        kind,
        dir: dir.clone(),
        daemon: None,
    };
    let version = match kind {
        Kind::Containerd => start_containerd(&mut guard)?,
        Kind::Docker => start_dockerd(&mut guard)?,
        Kind::Podman => start_podman(&guard)?,
    };
    loud(&format!(
        "engine started: {} {version} in {}",
        kind.name(),
        dir.display()
    ));
    GUARDS.lock().unwrap().push(guard);
    Ok(Engine { kind, version, dir })
}

/// `prog` on PATH (or an absolute path that exists), else the reason naming the Debian package.
fn need(prog: &str, package: &str) -> Result<(), String> {
    let found = if prog.starts_with('/') {
        Path::new(prog).exists()
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
            .unwrap_or(false)
    };
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{prog}` not found: install it with `apt-get install {package}` (Debian, as root)"
        ))
    }
}

/// Spawn a daemon with its output in `log`.
fn spawn_daemon(guard: &mut Guard, cmd: &mut Command, log: &Path) -> Result<(), String> {
    let f = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    guard.daemon = Some(child);
    Ok(())
}

/// Poll `probe` (the client asking the server's version) until it answers, the daemon exits, or 30 s pass.
fn wait_ready(
    guard: &mut Guard,
    log: &Path,
    probe: &mut dyn FnMut() -> Output,
) -> Result<String, String> {
    let t0 = Instant::now();
    let tail = |log: &Path| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    loop {
        let out = probe();
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        if let Some(Ok(Some(status))) = guard.daemon.as_mut().map(|c| c.try_wait()) {
            return Err(format!(
                "the daemon exited ({status}); its log:\n{}",
                tail(log)
            ));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "not ready after 30 s: {}; the daemon's log:\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// containerd (Debian `containerd` 1.6, with `runc`): a config of its own, so nothing of /etc/containerd and no
/// path of a system containerd is used:
/// * `root`, `state`: its content store + snapshots, and its runtime state (shim sockets, bundles), in `dir`;
/// * `grpc.address` / `ttrpc.address`: its own sockets; `debug`/`metrics` addresses empty: no other listener;
/// * `disabled_plugins = [cri]`: the Kubernetes CRI plugin is not needed (and wants CNI);
/// * the default snapshotter, overlayfs, works here (on ext4); runtime `io.containerd.runc.v2` (runc).
///
/// `ctr run` puts the container in the cgroup `/kiln-it/<id>` (cgroups v1 here, which runc handles).
fn start_containerd(guard: &mut Guard) -> Result<String, String> {
    need("containerd", "containerd")?;
    need("ctr", "containerd")?;
    need("runc", "runc")?;
    let dir = guard.dir.clone();
    let sock = dir.join("containerd.sock");
    let config = format!(
        "version = 2\n\
         root = \"{root}\"\n\
         state = \"{state}\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = \"{sock}\"\n\
         [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
         [debug]\n  address = \"\"\n\
         [metrics]\n  address = \"\"\n",
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        sock = sock.display(),
    );
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
    let log = dir.join("containerd.log");
    spawn_daemon(
        guard,
        Command::new("containerd").arg("--config").arg(&cfg),
        &log,
    )?;
    wait_ready(guard, &log, &mut || {
        Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args(["version"])
            .output()
            .unwrap()
    })
    .map(|v| {
        // "Server:\n  Version:  1.6.20~ds1" → the server's version.
        v.split("Server:")
            .nth(1)
            .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("Version:")))
            .map(|s| s.trim().to_string())
            .unwrap_or(v)
    })
}

/// dockerd (Debian `docker.io` 20.10), which starts its own containerd under its exec root:
/// * `--data-root`, `--exec-root`, `--pidfile`, `--host unix://…`: images/containers, runtime state, pid file and
///   API socket in `dir`, never /var/lib/docker, /var/run/docker*, /var/run/docker.sock;
/// * `--config-file` (empty): /etc/docker/daemon.json of the machine is not read;
/// * `--storage-driver vfs`: plain copies, no overlay mounts (overlay2 would need more care with mounts left behind
///   on a crash); the images here are small;
/// * `--iptables=false --ip-masq=false --ip-forward=false --bridge=none`: no host network setup at all (no
///   docker0, no iptables rules, no sysctl); containers run with `--network none`;
/// * `--userland-proxy=false`: no docker-proxy processes (no ports are published anyway);
/// * `--log-level warn`: a short log (given in the reason when it does not start).
///
/// dockerd bind-mounts its data root on itself; it unmounts it on SIGTERM (and `unmount_under` does after a kill).
fn start_dockerd(guard: &mut Guard) -> Result<String, String> {
    need("dockerd", "docker.io")?;
    need(DOCKER, "docker.io")?;
    need("runc", "runc")?;
    need("containerd", "containerd")?;
    let dir = guard.dir.clone();
    std::fs::create_dir_all(dir.join("client")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("daemon.json"), "{}\n").map_err(|e| e.to_string())?;
    let log = dir.join("dockerd.log");
    let mut cmd = Command::new("dockerd");
    cmd.arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("--host")
        .arg(format!("unix://{}", dir.join("docker.sock").display()))
        .arg("--config-file")
        .arg(dir.join("daemon.json"))
        .args([
            "--storage-driver",
            "vfs",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--log-level",
            "warn",
        ]);
    spawn_daemon(guard, &mut cmd, &log)?;
    wait_ready(guard, &log, &mut || {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_CONFIG", dir.join("client"))
            .arg("--host")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .args(["version", "--format", "{{.Server.Version}}"]);
        c.output().unwrap()
    })
}

/// podman (Debian 4.3, daemonless): storage in `dir` (`--root`, `--runroot`, `--tmpdir` for libpod's state, so
/// /var/lib/containers and /run/libpod are not touched), and a `containers.conf` of its own (`CONTAINERS_CONF`):
/// * `runtime = "runc"`: crun 1.8 refuses this machine's hybrid cgroups ("cgroups in hybrid mode not
///   supported, drop all controllers from cgroupv2"); runc handles them;
/// * `cgroup_manager = "cgroupfs"`: there is no systemd here to ask for cgroups;
/// * `default_ulimits`: podman gives containers nofile=1048576 and nproc by default, above this machine's hard
///   limits, which root cannot raise here either ("error setting rlimit type 7: operation not permitted"):
///   20000 files and 32768 processes are within them;
/// * `events_logger = "file"`, `log_driver = "k8s-file"`: no journald;
/// * the default storage driver, overlay, works here.
fn start_podman(guard: &Guard) -> Result<String, String> {
    need("podman", "podman")?;
    need("runc", "runc")?;
    let dir = &guard.dir;
    for d in ["root", "run", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::write(
        dir.join("containers.conf"),
        "[containers]\n\
         default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
         log_driver = \"k8s-file\"\n\
         [engine]\n\
         runtime = \"runc\"\n\
         cgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\n",
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = Command::new("timeout");
    cmd.args(["60"]);
    client_args(&mut cmd, Kind::Podman, dir);
    let out = cmd
        .args(["info", "--format", "{{.Version.Version}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "`podman info` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------------------------
// Things to put in images.

/// A statically linked busybox (Debian `busybox-static`, /bin/busybox): a program that runs on `scratch`, and a
/// shell, `ls`, `stat`, `find`, `su`… for the tests' containers. Fails the test if it is missing or dynamic.
pub fn static_busybox() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: install it with `apt-get install busybox-static`",
            p.display()
        )
    });
    assert!(
        is_static_elf(&bytes),
        "{} is not a statically linked ELF (Debian's `busybox` package is dynamic): install `busybox-static`",
        p.display()
    );
    p
}

/// A 64-bit little-endian ELF without a program interpreter (PT_INTERP): it needs no ld.so or libc in the image.
fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) != 3
    })
}

/// This machine's platform as OCI names it (`linux/amd64`, `linux/arm64`), and another one to build beside it.
pub fn host_and_other_platform() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("linux/amd64", "linux/arm64"),
        "aarch64" => ("linux/arm64", "linux/amd64"),
        a => panic!("no OCI platform known for this machine's architecture {a}"),
    }
}
