//! Self-tests of the integration-test harness in `tests/it/support` (curl / reqwest / skopeo, not kiln).

mod proxies;
mod registries;

use std::process::Command;

use reqwest::blocking::Client;

use crate::support::*;

fn header(r: &reqwest::blocking::Response, name: impl reqwest::header::AsHeaderName) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn plain() -> Client {
    registry::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[test]
fn helpers() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let t = fixture_tree();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = |p: &str| std::fs::symlink_metadata(t.path().join(p)).unwrap();
    assert_eq!(m("bin/tool").permissions().mode() & 0o7777, 0o755);
    assert_eq!(m("secret.txt").permissions().mode() & 0o7777, 0o600);
    assert!(m("link").file_type().is_symlink());
    assert_eq!(m("etc/hard.conf").ino(), m("etc/app.conf").ino());
    assert_eq!(m("etc/app.conf").nlink(), 2);
    assert_eq!(m("data").mtime() as u64, FIXTURE_MTIME);
    assert!(m("data/empty").is_dir());

    let out = kiln().arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = Command::new("env");
    let mut c = env;
    isolate_env(&mut c, shared_home());
    let printed = run_ok(&mut c);
    assert!(printed.contains(&format!(
        "DOCKER_CONFIG={}/.docker",
        shared_home().display()
    )));
}
