//! A registry that stops answering never hangs kiln: every wait is bounded by `--timeout` (time without
//! progress), a request quiet for a while is said on stderr, and a timeout is not retried.

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::*;

/// Run `cmd`, killing it (and failing) if it is still running after `limit`; its output and how long it took.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kiln still waiting after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), start.elapsed())
}

/// A server that accepts connections and never says a word (nor reads one), for 60 s.
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut held = Vec::new();
        while start.elapsed() < Duration::from_secs(60) {
            match l.accept() {
                Ok((c, _)) => held.push(c),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    port
}

#[test]
fn unanswered_ping_times_out() {
    let port = silent_server();
    let t = tempdir();
    let src = small_input(t.path(), "silent", "silent\n");
    let env = KilnEnv::new();
    let mut cmd = env.cmd();
    cmd.args(["build", src.to_str().unwrap(), "--to"])
        .arg(format!("127.0.0.1:{port}/silent:v1"))
        .args(["--timeout", "2"]);
    let (out, took) = run_bounded(&mut cmd, Duration::from_secs(30));
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    // Plain HTTP, then HTTPS: one wait each, no retries.
    assert!(took < Duration::from_secs(10), "took {took:?}: {se}");
    assert!(
        se.contains(&format!("http://127.0.0.1:{port}/v2/")),
        "the registry's URL: {se}"
    );
    assert!(se.contains("within 2 s (--timeout 2)"), "{se}");
    assert!(
        se.contains(&format!(
            "kiln: GET http://127.0.0.1:{port}/v2/: no progress for "
        )),
        "the slow-request line: {se}"
    );
    assert!(se.contains("raise --timeout"), "{se}");
}

#[test]
fn blob_put_never_answered_times_out() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    proxy.inject(Fault::Hang {
        secs: 60,
        matching: Matcher::new("PUT", "/blobs/uploads/"),
        times: usize::MAX,
    });
    let t = tempdir();
    let src = t.path().join("hang");
    std::fs::create_dir_all(&src).unwrap();
    // Bigger than a frame, so the body goes out in pieces before the silence.
    std::fs::write(src.join("data.bin"), noise(3 << 20, 7)).unwrap();
    let env = KilnEnv::new();
    let mut cmd = env.cmd();
    cmd.args(["build", src.to_str().unwrap(), "--to"])
        .arg(format!("{}/hang:v1", proxy.host()))
        .args(["--timeout", "2"]);
    let (out, took) = run_bounded(&mut cmd, Duration::from_secs(60));
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {se}");
    let put = format!("PUT http://{}/v2/hang/blobs/uploads/", proxy.host());
    assert!(
        se.contains(&put),
        "the request and the registry's URL: {se}"
    );
    assert!(se.contains("no answer within 2 s (--timeout 2)"), "{se}");
    assert!(
        se.lines()
            .any(|l| l.starts_with(&format!("kiln: {put}")) && l.contains("no progress for")),
        "the slow-request line: {se}"
    );
    // Not retried: each blob's PUT was sent once.
    let puts = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path().contains("/blobs/uploads/"))
        .count();
    assert!(puts >= 1, "{se}");
    assert!(skopeo_list_tags_or_empty(&reg, "hang").is_empty());
}
