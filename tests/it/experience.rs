//! The everyday experience: the CI recipe from the README run against a real registry, plain progress in pipes,
//! live progress on a pseudo-terminal, the closing summary, `-v`/`-vv` request logs without secrets, shell
//! completions, the man page and help examples.

use std::process::Command;

use crate::support::*;

/// stderr in a pipe: plain lines only, no escape sequences or carriage returns.
fn assert_plain(stderr: &str) {
    assert!(
        !stderr.bytes().any(|b| b < 0x20 && b != b'\n' && b != b'\t'),
        "control characters on a non-terminal stderr:\n{stderr:?}"
    );
}

fn deploy_yaml() -> &'static str {
    "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: kiln://app # pinned by CI\n"
}

/// The README's CI recipe, step by step: build output → `kiln build --version auto --ref-file ref.txt` →
/// `kiln pin -f deploy.yaml -i --ref-file ref.txt`, credentials from the CI secret store (environment), rootless.
#[test]
fn ci_recipe_against_an_htpasswd_registry() {
    let reg = Registry::start(Mode::htpasswd());
    let env = KilnEnv::new();
    let work = env.path("checkout");
    std::fs::create_dir_all(work.join("out")).unwrap();
    write_fixture_tree(&work.join("out"));
    std::fs::write(work.join("deploy.yaml"), deploy_yaml()).unwrap();
    let repo = format!("{}/team/app", reg.host());
    let ci = |args: &[&str]| {
        let mut c = env.cmd();
        c.current_dir(&work)
            .env("KILN_REGISTRY_USERNAME", reg.username())
            .env("KILN_REGISTRY_PASSWORD", reg.password())
            .args(args);
        let out = c.output().unwrap();
        let (so, se) = texts(&out);
        assert!(out.status.success(), "kiln {args:?}:\n{se}");
        assert!(!se.contains(reg.password()), "{se}");
        assert_plain(&se);
        (so, se)
    };

    let build = [
        "build",
        "out",
        "--prefix",
        "/app",
        "--entrypoint",
        "/app/bin/tool",
        "--to",
        &repo,
        "--version",
        "auto",
        "--ref-file",
        "ref.txt",
    ];
    let (so, se) = ci(&build);
    let reference = std::fs::read_to_string(work.join("ref.txt")).unwrap();
    assert_eq!(so.lines().next().unwrap(), reference.trim());
    assert!(
        reference.starts_with(&format!("{repo}:v1@sha256:")),
        "{reference}"
    );
    // The summary: layers and sizes, the push, the version and why, the wall time.
    assert!(se.contains("summary: 1 layer (1 compressed"), "{se}");
    assert!(se.contains(&format!("summary: pushed to {repo}: ")), "{se}");
    assert!(
        se.contains("summary: version v1: the first version"),
        "{se}"
    );
    assert!(
        se.contains(&format!("summary: published {}", reference.trim())),
        "{se}"
    );

    let (so, se) = ci(&["pin", "-f", "deploy.yaml", "-i", "--ref-file", "ref.txt"]);
    assert!(so.is_empty(), "{so}");
    assert!(se.contains("deploy.yaml:8: kiln://app -> "), "{se}");
    let pinned = std::fs::read_to_string(work.join("deploy.yaml")).unwrap();
    assert_eq!(
        pinned,
        deploy_yaml().replace("kiln://app", reference.trim()),
        "only the image value changes"
    );
    // What kubectl would pull exists in the registry under that digest.
    assert_eq!(registry_digest(&reg, "team/app:v1"), digest_of(&reference));

    // The next pipeline run with unchanged output reuses v1 and says why; changed output gets v2, "next after v1".
    let (_, se) = ci(&build);
    assert!(se.contains("summary: version v1: reused"), "{se}");
    std::fs::write(work.join("out/etc/app.conf"), "key = other\n").unwrap();
    let (_, se) = ci(&build);
    assert!(se.contains("summary: version v2: next after v1"), "{se}");
    let (_, se) = ci(&["pin", "-f", "deploy.yaml", "-i", "--ref-file", "ref.txt"]);
    assert!(
        se.contains(":v1@sha256:") && se.contains(":v2@sha256:"),
        "{se}"
    );

    // The same with `kiln login --password-stdin` instead of environment credentials.
    let mut login = env.cmd();
    login
        .args([
            "login",
            &reg.host(),
            "-u",
            reg.username(),
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{}", reg.password()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", texts(&out));
    let out_dir = work.join("out");
    let (so, _) = env.ok(&[
        "build",
        out_dir.to_str().unwrap(),
        "--prefix",
        "/app",
        "--entrypoint",
        "/app/bin/tool",
        "--to",
        &repo,
        "--version",
        "auto",
        "-q",
    ]);
    assert!(
        so.starts_with(&format!("{repo}:v2@")),
        "unchanged: v2 reused: {so}"
    );
}

#[test]
fn quiet_and_progress_none() {
    let env = KilnEnv::new();
    let src = fixture_tree();
    let dir = src.path().to_str().unwrap();
    let to = format!("oci:{}", env.path("images").display());
    let (so, se) = env.ok(&["build", dir, "--to", &to, "--version", "auto", "-q"]);
    assert!(so.contains(":v1@sha256:"), "{so}");
    assert!(se.is_empty(), "-q prints nothing but errors: {se}");
    // --progress none: no step lines, but the summary (what happened) stays.
    let (_, se) = env.ok(&[
        "build",
        dir,
        "--to",
        &to,
        "--version",
        "auto",
        "--progress",
        "none",
    ]);
    assert!(!se.contains("walked"), "{se}");
    assert!(se.contains("summary: version v1: reused"), "{se}");
    // Plain (the default in a pipe): one line per step.
    let (_, se) = env.ok(&["build", dir, "--to", &to, "--version", "auto", "--no-cache"]);
    assert!(
        se.contains("kiln: walked ") && se.contains("kiln: layer "),
        "{se}"
    );
    assert_plain(&se);
}

/// `-v` logs each request (method, URL, status, time); `-vv` adds headers with credentials masked.
#[test]
fn verbose_request_log_never_shows_secrets() {
    let reg = Registry::start(Mode::htpasswd());
    let env = KilnEnv::new();
    let src = fixture_tree();
    let repo = format!("{}/verbose", reg.host());
    let basic = reg.basic_auth();
    let run = |extra: &str, args: &[&str]| {
        let out = env
            .cmd()
            .env("KILN_REGISTRY_USERNAME", reg.username())
            .env("KILN_REGISTRY_PASSWORD", reg.password())
            .args(args)
            .arg(extra)
            .output()
            .unwrap();
        let (_, se) = texts(&out);
        assert!(out.status.success(), "{se}");
        assert!(!se.contains(reg.password()), "{se}");
        let token = basic.trim_start_matches("Basic ");
        assert!(!se.contains(token), "base64 credentials leaked: {se}");
        se
    };
    let dir = src.path().to_str().unwrap();
    let se = run("-v", &["build", dir, "--to", &repo, "--version", "auto"]);
    assert!(
        se.lines().any(
            |l| l.starts_with(&format!("kiln: GET http://{}/v2/ -> ", reg.host()))
                && l.ends_with(" ms)")
        ),
        "{se}"
    );
    assert!(se.contains("kiln: PUT http://"), "{se}");
    let se = run("-vv", &["build", dir, "--to", &repo, "--version", "auto"]);
    assert!(
        se.to_ascii_lowercase().contains("> authorization: basic "),
        "{se}"
    );
    // Every command passes -v on: read-only ones too.
    for args in [
        vec!["tags", repo.as_str()],
        vec!["next-version", repo.as_str(), "--version", "auto"],
        vec!["inspect", &format!("{repo}:v1")],
    ] {
        let se = run("-v", &args.iter().map(|s| &**s).collect::<Vec<&str>>());
        assert!(se.contains(" -> 200 ("), "kiln {args:?} -v:\n{se}");
    }
}

#[test]
fn completions_man_page_and_help_examples() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kiln_ok(&["completions", shell]);
        for sub in ["build", "push", "next-version", "pin", "completions"] {
            assert!(out.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(out.contains("--version"), "{shell}");
    }
    // bash can load what it generated.
    let bash = kiln_ok(&["completions", "bash"]);
    let check = Command::new("bash")
        .args(["-c", &format!("{bash}\ncomplete -p kiln")])
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", texts(&check));

    let man = kiln_ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH kiln 1"),
        "{man}"
    );
    assert!(man.contains("next\\-version") || man.contains("next-version"));
    let build = kiln_ok(&["man", "build"]);
    assert!(build.contains(".TH kiln-build"), "{build}");
    assert!(
        build.contains("ref\\-file") && build.contains("Examples"),
        "{build}"
    );
    // man-db renders the page: it must be a page man can read.
    require_tool("man", "man-db");
    let d = tempdir();
    std::fs::write(d.path().join("kiln.1"), &man).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(d.path().join("kiln.1"))
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    let (so, se) = texts(&out);
    assert!(out.status.success(), "man -l kiln.1 failed:\n{se}");
    assert!(so.contains("kiln"), "{so}");

    let top = kiln_ok(&["--help"]);
    assert!(
        top.contains("Examples:") && top.contains("kiln completions"),
        "{top}"
    );
    for sub in [
        "build",
        "push",
        "login",
        "inspect",
        "tags",
        "next-version",
        "pin",
        "completions",
    ] {
        let help = kiln_ok(&[sub, "--help"]);
        let examples = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("kiln {sub} --help has no examples:\n{help}"));
        let lines: Vec<&str> = examples
            .lines()
            .filter(|l| l.trim_start().starts_with("kiln ") || l.contains("| kiln "))
            .collect();
        assert!(lines.len() >= 2, "kiln {sub}: {examples}");
        assert!(
            lines.iter().all(|l| l.contains(&format!("kiln {sub}"))),
            "kiln {sub}: {lines:?}"
        );
    }
}

/// Every `kiln …` example in the help parses: run each with `--help` appended (clap validates what comes
/// before it only loosely), so instead check that each flag it uses is one `kiln SUB --help` lists.
#[test]
fn help_examples_use_real_flags() {
    for sub in [
        "build",
        "push",
        "login",
        "inspect",
        "tags",
        "next-version",
        "pin",
    ] {
        let help = kiln_ok(&[sub, "--help"]);
        let (flags, examples) = help.split_once("Examples:").unwrap();
        for word in examples.split_whitespace() {
            if let Some(f) = word.strip_prefix("--") {
                let f = f.split('=').next().unwrap();
                assert!(
                    flags.contains(&format!("--{f}")),
                    "kiln {sub} example uses --{f}, which its help does not list"
                );
            }
        }
    }
}

/// On a pseudo-terminal (util-linux `script`), progress is live: redrawn with `\r`/ANSI sequences, and the run
/// ends cleanly with the reference on stdout.
#[test]
fn live_progress_on_a_terminal() {
    // `script` is util-linux's; Debian ships it in the package bsdutils.
    require_tool("script", "bsdutils");
    let env = KilnEnv::new();
    let src = tempdir();
    // Enough data for the bars to be drawn a few times.
    let mut seed = 1u64;
    for i in 0..8 {
        let data: Vec<u8> = (0..(1 << 20))
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect();
        std::fs::write(src.path().join(format!("blob{i}")), data).unwrap();
    }
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let layout = env.path("images");
    let cmdline = format!(
        "{kiln} build {} --to oci:{} --version auto --compression-level 9",
        src.path().display(),
        layout.display()
    );
    let mut c = env.cmd();
    let script = Command::new("script")
        .args(["-qfec", &cmdline, "/dev/null"])
        .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("TERM", "xterm")
        .env("COLUMNS", "100")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let _ = &mut c;
    let all = String::from_utf8_lossy(&script.stdout).into_owned();
    assert!(script.status.success(), "{all}");
    assert!(
        all.contains('\r') || all.contains("\x1b["),
        "no live progress:\n{all:?}"
    );
    assert!(all.contains("layer from "), "no layer bar:\n{all:?}");
    // Lines above the bars are padded to the terminal width (indicatif), so look at the text after the last
    // escape sequence: the reference alone, on stdout, after the progress is gone.
    let tail = all.rsplit('\x1b').next().unwrap();
    let last = tail.split_whitespace().last().unwrap();
    assert!(
        last.starts_with(&format!("oci:{}:v1@sha256:", layout.display())),
        "the reference ends the output: {last:?}\n{all:?}"
    );
    assert!(all.ends_with(&format!("{last}\r\n")), "{all:?}");
    // The same build with --progress plain on the terminal: no redraws.
    let plain = Command::new("script")
        .args([
            "-qfec",
            &format!("{cmdline} --progress plain --no-cache"),
            "/dev/null",
        ])
        .envs(env.cmd().get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&plain.stdout).replace("\r\n", "\n");
    assert!(plain.status.success(), "{out}");
    assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:?}");
}

/// The README's creation-time recipe: `SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)` dates the image at the
/// commit (not 1970), and a rebuild of the same commit is the same image with the same version.
#[test]
fn source_date_epoch_from_the_last_commit_dates_the_image_and_keeps_reuse() {
    let t = tempdir();
    let work = t.path().join("checkout");
    std::fs::create_dir_all(work.join("dist")).unwrap();
    std::fs::write(work.join("dist/index.html"), "hi\n").unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(&work)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", t.path())
            .env("GIT_AUTHOR_DATE", "2024-05-01T12:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-05-01T12:00:00Z")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=ci",
        "-c",
        "user.email=ci@example.com",
        "commit",
        "-qm",
        "x",
    ]);
    let epoch = git(&["log", "-1", "--format=%ct"]).trim().to_string();
    assert_eq!(epoch, "1714564800");
    let build = |epoch: Option<&str>| {
        let mut c = kiln();
        c.current_dir(&work)
            .args(["build", "dist", "--to", "oci:images", "--version", "auto"]);
        match epoch {
            Some(e) => c.env("SOURCE_DATE_EPOCH", e),
            None => c.env_remove("SOURCE_DATE_EPOCH"),
        };
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let created = |tag: &str| {
        let info: serde_json::Value = serde_json::from_str(&tool_ok(
            "skopeo",
            &[
                "inspect",
                &format!("oci:{}:{tag}", work.join("images").display()),
            ],
        ))
        .unwrap();
        info["Created"].as_str().unwrap().to_string()
    };
    let first = build(Some(&epoch));
    assert!(first.starts_with("oci:images:v1@"), "{first}");
    assert!(
        created("v1").starts_with("2024-05-01T12:00:00"),
        "{}",
        created("v1")
    );
    assert_eq!(
        build(Some(&epoch)),
        first,
        "same commit: same image, version reused"
    );
    // Unset: the documented default, 1970 (a new image, since the time is in the layers and config).
    let unset = build(None);
    assert!(unset.starts_with("oci:images:v2@"), "{unset}");
    assert!(created("v2").starts_with("1970-01-01"), "{}", created("v2"));
}
