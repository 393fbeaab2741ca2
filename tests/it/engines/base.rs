//! An app image on a Debian-like base (issue 17's serious defect): the base's `/bin -> usr/bin` symlink, its
//! world-writable sticky `/tmp` and its `/home/app` owned by the app user must survive an app image that puts files
//! in /bin, /tmp/cache and /home/app/.config. Before kiln respected the base's entries, it wrote its own 0755
//! root-owned directories for /bin, /tmp and /home/app over them: /bin/sh vanished (the entrypoint failed),
//! nobody could write to /tmp, and the app user could not write to its home.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      app:x:1000:1000:app:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n";

/// busybox's applets that the tests and the app use, as links next to it in /usr/bin.
const APPLETS: [&str; 10] = [
    "sh",
    "ls",
    "id",
    "cat",
    "echo",
    "stat",
    "touch",
    "find",
    "su",
    "sha256sum",
];

const NOBODY: User = User {
    id: "65534",
    name: "nobody",
};
const APP: User = User {
    id: "1000",
    name: "app",
};

fn mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

/// Debian 12's layout in small: `usr/bin/busybox` and its applet links, `bin -> usr/bin`, `tmp` 1777,
/// `etc/passwd` and `etc/group` with root, nobody and app (1000), an empty `home`. `home/app` comes as a layer of
/// its own owned by 1000:1000 (`--layer …:/home/app,chown=1000:1000`).
fn base_tree(root: &Path) {
    let bin = root.join("usr/bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(static_busybox(), bin.join("busybox")).unwrap();
    mode(&bin.join("busybox"), 0o755);
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("home")).unwrap();
    fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    fs::write(root.join("etc/group"), GROUP).unwrap();
    for d in ["", "usr", "usr/bin", "etc", "home"] {
        mode(&root.join(d), 0o755);
    }
    mode(&root.join("tmp"), 0o1777);
}

#[test]
fn app_on_a_debian_like_base_keeps_the_bases_bin_symlink_tmp_and_home() {
    let engines = started();
    if engines.is_empty() {
        return;
    }
    let t = tempdir();
    let p = |rel: &str| t.path().join(rel);

    // The base, into an OCI layout.
    base_tree(&p("base"));
    fs::create_dir_all(p("home-app")).unwrap();
    fs::write(p("home-app/.profile"), "# app's profile\n").unwrap();
    mode(&p("home-app"), 0o755);
    let layout = p("layout");
    build(&[
        p("base").to_str().unwrap(),
        "--layer",
        &format!("{}:/home/app,chown=1000:1000", p("home-app").display()),
        "--to",
        &format!("oci:{}:base", layout.display()),
    ]);

    // The app on it: a script in /bin (= /usr/bin), a cache dir under /tmp, a config dir under /home/app.
    fs::create_dir_all(p("app")).unwrap();
    fs::write(
        p("app/hello.sh"),
        "#!/bin/sh\necho \"hello from $0 as $(id -u)\"\n",
    )
    .unwrap();
    mode(&p("app/hello.sh"), 0o755);
    fs::create_dir_all(p("cache")).unwrap();
    fs::write(p("cache/seed.txt"), "seed\n").unwrap();
    fs::create_dir_all(p("config")).unwrap();
    fs::write(p("config/settings.conf"), "colour = blue\n").unwrap();
    let archive = p("app.tar");
    let name = "kiln-it/debianish-app:v1";
    build(&[
        p("app").to_str().unwrap(),
        "--base",
        &format!("oci:{}:base", layout.display()),
        "--prefix",
        "/bin",
        "--entrypoint",
        "/bin/sh",
        "--entrypoint",
        "/bin/hello.sh",
        "--layer",
        &format!("{}:/tmp/cache", p("cache").display()),
        "--layer",
        &format!("{}:/home/app/.config", p("config").display()),
        "--to",
        &format!("docker-archive:{}:{name}", archive.display()),
    ]);
    let image = format!("docker.io/{name}");

    // Every promise is checked on every engine, and all that failed is reported together. The probes run
    // /usr/bin/busybox, which the app image does not touch, so each one checks one thing.
    let mut failures = Vec::new();
    for e in &engines {
        e.load(&archive);
        let mut check =
            |what: &str, user: Option<User>, argv: &[&str], want: &dyn Fn(&str) -> bool| {
                let out = e.run(&image, user, argv);
                let stdout = text(&out.stdout);
                if !out.status.success() || !want(&stdout) {
                    failures.push(format!(
                        "{e}: {what}: {} stdout {stdout:?} stderr {:?}",
                        out.status,
                        text(&out.stderr).trim()
                    ));
                }
            };
        // The entrypoint runs: /bin/sh still exists, so /bin stayed the base's symlink to usr/bin.
        check(
            "the entrypoint /bin/sh /bin/hello.sh runs",
            None,
            &[],
            &|o| o == "hello from /bin/hello.sh as 0\n",
        );
        // The three directories as the base made them.
        let stat = |path: &str, want: &'static str| {
            (
                format!("{path} is `{want}`"),
                vec![
                    "/usr/bin/busybox".to_string(),
                    "stat".into(),
                    "-c".into(),
                    "%F %a %u:%g".into(),
                    path.into(),
                ],
                want,
            )
        };
        for (what, argv, want) in [
            stat("/bin", "symbolic link 777 0:0"),
            stat("/tmp", "directory 1777 0:0"),
            stat("/home/app", "directory 755 1000:1000"),
        ] {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            check(&what, None, &argv, &|o| o.trim_end() == want);
        }
        // The base's files and the app's are all there.
        let files = "/usr/bin/sh /bin/sh /usr/bin/hello.sh /tmp/cache/seed.txt /home/app/.profile \
                     /home/app/.config/settings.conf";
        check(
            &format!("all of {files} exist"),
            None,
            &[
                "/usr/bin/busybox",
                "sh",
                "-c",
                &format!("/usr/bin/busybox ls {files}"),
            ],
            &|_| true,
        );
        // nobody can write to /tmp (1777), the app user to its home (owned by 1000).
        check(
            "user 65534 writes to /tmp",
            Some(NOBODY),
            &[
                "/usr/bin/busybox",
                "sh",
                "-c",
                "echo ok > /tmp/probe && /usr/bin/busybox cat /tmp/probe",
            ],
            &|o| o == "ok\n",
        );
        check(
            "user 1000 writes to /home/app",
            Some(APP),
            &[
                "/usr/bin/busybox",
                "sh",
                "-c",
                "echo ok > /home/app/probe && /usr/bin/busybox cat /home/app/probe",
            ],
            &|o| o == "ok\n",
        );
    }
    assert!(
        failures.is_empty(),
        "the app image did not keep its Debian-like base's entries:\n{}",
        failures.join("\n")
    );
}
