//! Errors people can act on: one table of mistakes a user can make, each run through the real CLI, checking the
//! exit code, that stderr names what happened, the object (path, reference, registry) and the next step, that
//! stdout stays empty, and that no secret ever reaches stderr.

use std::path::Path;

use crate::support::*;

/// Given to every case through `KILN_REGISTRY_PASSWORD` (and used as the wrong password where one is needed):
/// it must never appear on stderr.
const SECRET: &str = "s3cret-never-printed-8d1f";

struct Case<'a> {
    name: &'a str,
    args: Vec<String>,
    /// `KILN_REGISTRY_USERNAME` (the password is always `SECRET`).
    user: Option<&'a str>,
    code: i32,
    /// Phrases stderr must contain.
    says: Vec<String>,
    /// Phrases stderr must not contain (besides the secret).
    not: Vec<String>,
}

fn s(v: &str) -> String {
    v.to_string()
}

fn run_case(env: &KilnEnv, c: &Case<'_>) {
    let mut cmd = env.cmd();
    cmd.args(&c.args).env("KILN_REGISTRY_PASSWORD", SECRET);
    if let Some(u) = c.user {
        cmd.env("KILN_REGISTRY_USERNAME", u);
    }
    let out = cmd.output().unwrap();
    let (so, se) = texts(&out);
    let ctx = format!("case {:?}: kiln {:?}\n--- stderr ---\n{se}", c.name, c.args);
    assert_eq!(code(&out), c.code, "{ctx}");
    assert!(so.is_empty(), "{ctx}\n--- stdout ---\n{so}");
    for p in &c.says {
        assert!(se.contains(p.as_str()), "missing {p:?} in {ctx}");
    }
    for p in &c.not {
        assert!(!se.contains(p.as_str()), "unexpected {p:?} in {ctx}");
    }
    assert!(!se.contains(SECRET), "secret leaked: {ctx}");
    assert!(!se.contains("panicked"), "{ctx}");
    // Errors are plain text: no colour codes or carriage returns in a pipe.
    assert!(
        !se.bytes().any(|b| b == 0x1b || b == b'\r'),
        "control characters in {ctx}"
    );
}

fn dir_arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn every_user_error_says_what_where_and_what_next() {
    let env = KilnEnv::new();
    let src = fixture_tree();
    let dir = dir_arg(src.path());
    let layout = env.path("images");
    let oci = format!("oci:{}", layout.display());

    // A tag that a later build with other content would have to move.
    let first = env
        .ok(&["build", &dir, "--to", &oci, "--tag", "v1", "-q"])
        .0;
    let first_digest = digest_of(first.lines().next().unwrap());

    let reg = Registry::start(Mode::htpasswd());
    let host = reg.host();
    let tls = Registry::start(Mode::open().tls());
    let missing = env.path("no-such-dir");

    let cases = vec![
        Case {
            name: "unknown flag",
            args: vec![s("build"), dir.clone(), s("--frobnicate")],
            user: None,
            code: 2,
            says: vec![s("--frobnicate"), s("Usage: kiln build")],
            not: vec![],
        },
        Case {
            name: "bad --progress value",
            args: vec![s("build"), dir.clone(), s("--progress"), s("fancy")],
            user: None,
            code: 2,
            says: vec![s("fancy"), s("auto"), s("plain")],
            not: vec![],
        },
        Case {
            name: "missing DIR",
            args: vec![s("build"), dir_arg(&missing), s("--to"), oci.clone()],
            user: None,
            code: 1,
            says: vec![
                dir_arg(&missing),
                s("No such file or directory"),
                s("hint: check the path"),
            ],
            not: vec![],
        },
        Case {
            name: "bad reference",
            args: vec![s("build"), dir.clone(), s("--to"), s("Bad Ref/App")],
            user: None,
            code: 2,
            says: vec![
                s("invalid image reference"),
                s("Bad Ref/App"),
                s("registry.example.com/team/app:v1"),
            ],
            not: vec![],
        },
        Case {
            name: "invalid tag",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                oci.clone(),
                s("--tag"),
                s("no spaces!"),
            ],
            user: None,
            code: 2,
            says: vec![s("no spaces!"), s("--tag")],
            not: vec![],
        },
        Case {
            name: "invalid template",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                oci.clone(),
                s("--tag"),
                s("{version}-{nope}"),
            ],
            user: None,
            code: 2,
            says: vec![s("{nope}"), s("{git_short_sha}")],
            not: vec![],
        },
        Case {
            name: "refused overwrite",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                oci.clone(),
                s("--tag"),
                s("v1"),
                s("--label"),
                s("changed=yes"),
            ],
            user: None,
            code: 3,
            says: vec![
                s("\"v1\""),
                first_digest.clone(),
                s("this build is sha256:"),
                s("--version auto"),
                s("--force-tag"),
            ],
            not: vec![],
        },
        Case {
            name: "401 with wrong credentials",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                format!("{host}/team/app:v1"),
            ],
            user: Some(reg.username()),
            code: 1,
            says: vec![
                host.clone(),
                s("401"),
                s("KILN_REGISTRY_USERNAME"),
                format!("kiln login {host}"),
            ],
            not: vec![],
        },
        Case {
            name: "401 without credentials",
            args: vec![
                s("push"),
                format!("{oci}:v1"),
                format!("{host}/team/app:v1"),
            ],
            user: None,
            code: 1,
            says: vec![
                host.clone(),
                s("no credentials found"),
                format!("kiln login {host}"),
            ],
            not: vec![],
        },
        Case {
            name: "404 base",
            args: vec![
                s("build"),
                dir.clone(),
                s("--base"),
                format!("{}/nosuch/base:v9", tls.host()),
                s("--ca-file"),
                tls.ca_pem_path().display().to_string(),
                s("--to"),
                oci.clone(),
                s("--tag"),
                s("v2"),
            ],
            user: None,
            code: 1,
            says: vec![
                format!("base image {}/nosuch/base:v9 does not exist", tls.host()),
                s("UNKNOWN"),
                s("check the repository and tag"),
            ],
            not: vec![],
        },
        Case {
            name: "untrusted TLS",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                format!("{}/app:v1", tls.host()),
            ],
            user: None,
            code: 1,
            says: vec![
                tls.host(),
                s("certificate"),
                s("--ca-file"),
                format!("--insecure-registry {}", tls.host()),
            ],
            not: vec![],
        },
        Case {
            name: "unreachable registry",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                s("127.0.0.1:1/app:v1"),
                s("--retries"),
                s("1"),
            ],
            user: None,
            code: 1,
            says: vec![
                s("cannot reach registry 127.0.0.1:1"),
                s("Connection refused"),
                s("hint: check that the registry at 127.0.0.1:1 is running"),
            ],
            not: vec![],
        },
        Case {
            name: "registry URL with credentials in it is refused, not echoed",
            args: vec![
                s("build"),
                dir.clone(),
                s("--to"),
                format!("user:{SECRET}@{host}/app"),
            ],
            user: None,
            code: 2,
            says: vec![s("***@"), s("kiln login")],
            not: vec![],
        },
        Case {
            name: "pin without a digest",
            args: vec![
                s("pin"),
                s("-f"),
                dir_arg(&src.path().join("etc/app.conf")),
                s("--ref"),
                s("registry.example.com/team/web:v7"),
            ],
            user: None,
            code: 2,
            says: vec![s("registry.example.com/team/web:v7"), s("digest")],
            not: vec![],
        },
    ];
    for c in &cases {
        run_case(&env, c);
    }

    // The refused overwrite wrote nothing: v1 still points at the first image.
    let tags = env.ok(&["tags", &oci]).0;
    assert!(tags.contains(&format!("v1\t{first_digest}")), "{tags}");

    // Repeated causes are said once: one "Connection refused" for two URLs tried.
    let out = env.run(&[
        "build",
        &dir,
        "--to",
        "127.0.0.1:1/app:v1",
        "--retries",
        "1",
    ]);
    let se = texts(&out).1;
    assert_eq!(se.matches("Connection refused").count(), 1, "{se}");
    // An untrusted certificate: the TLS library's reason appears once, not once per wrapping layer.
    let out = env.run(&["build", &dir, "--to", &format!("{}/app:v1", tls.host())]);
    let se = texts(&out).1;
    assert_eq!(se.matches("invalid peer certificate").count(), 1, "{se}");
}

#[test]
fn kiln_toml_syntax_errors_name_the_file() {
    let d = tempdir();
    std::fs::write(d.path().join("kiln.toml"), "this is = = not toml\n").unwrap();
    let out = kiln()
        .current_dir(d.path())
        .args(["build", "."])
        .output()
        .unwrap();
    let se = texts(&out).1;
    assert_eq!(code(&out), 2, "{se}");
    assert!(se.contains("kiln.toml:1"), "{se}");
}

/// stdout has one policy (`src/output.rs`): its reader going away (`kiln inspect … | head -1`) is not a failure
/// (exit 0, nothing on stderr), any other write error is (exit 1, naming standard output) — a full disk must not
/// look like a successful build that printed no reference.
#[test]
fn stdout_closed_early_is_fine_and_stdout_full_is_an_error() {
    let src = fixture_tree();
    let t = tempdir();
    let layout = format!("oci:{}:v1", t.path().join("img").display());
    let build = |stdout: std::process::Stdio| {
        kiln()
            .args(["build", src.path().to_str().unwrap(), "--to", &layout])
            .args(["--force-tag", "-q"])
            .stdout(stdout)
            .output()
            .unwrap()
    };
    assert_eq!(code(&build(std::process::Stdio::piped())), 0);

    for args in [
        vec!["inspect", layout.as_str()],
        vec!["inspect", layout.as_str(), "--output", "json"],
        vec!["tags", layout.strip_suffix(":v1").unwrap()],
        vec!["completions", "bash"],
    ] {
        // The reader is gone before kiln writes a byte: every write gets EPIPE.
        let mut child = kiln()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let (_, se) = texts(&out);
        assert_eq!(code(&out), 0, "kiln {args:?} into a closed pipe: {se}");
        assert!(se.is_empty(), "kiln {args:?}: {se}");

        let full = std::fs::File::create("/dev/full").unwrap();
        let out = kiln().args(&args).stdout(full).output().unwrap();
        let (_, se) = texts(&out);
        assert_eq!(code(&out), 1, "kiln {args:?} > /dev/full: {se}");
        assert!(
            se.contains("standard output: No space left on device"),
            "kiln {args:?} > /dev/full: {se}"
        );
    }

    // A build whose reference cannot be printed fails, though the image was written.
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = build(std::process::Stdio::from(full));
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 1, "{se}");
    assert!(se.contains("standard output"), "{se}");
}
