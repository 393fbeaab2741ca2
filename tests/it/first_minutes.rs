//! The first ten minutes (issue 22): the mistakes a newcomer makes are caught with a usage error that says what to
//! do, and the README's own commands (quick start, tests) run as written.

use std::fs;
use std::path::Path;

use crate::support::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `--version atuo` would publish a permanent tag `atuo`: a near-miss of a scheme (or a bare bump word) is a
/// usage error with "did you mean", in `build`, `next-version` and kiln.toml alike; `=VALUE` forces a literal.
#[test]
fn a_mistyped_version_scheme_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture(tmp.path());
    let layout = tmp.path().join("images");
    let to = format!("oci:{}", layout.display());
    for (typo, meant) in [
        ("atuo", "auto"),
        ("Auto", "auto"),
        ("patch", "semver:patch"),
        ("semver:ptach", "semver:patch"),
    ] {
        let out = kiln()
            .args([
                "build",
                src.to_str().unwrap(),
                "--to",
                &to,
                "--version",
                typo,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{typo}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("did you mean \"{meant}\"")),
            "{typo}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
        let out = kiln()
            .args(["next-version", &to, "--version", typo])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "next-version {typo}: {}",
            stderr(&out)
        );
    }
    assert!(!layout.exists(), "a refused build wrote the layout");

    let toml = tmp.path().join("kiln.toml");
    fs::write(
        &toml,
        format!(
            "dir = {:?}\nto = {to:?}\nversion = \"atuo\"\n",
            src.display()
        ),
    )
    .unwrap();
    let out = kiln()
        .args(["build", "--config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kiln.toml:3") && stderr(&out).contains("did you mean \"auto\""),
        "{}",
        stderr(&out)
    );

    // The escape: `=VALUE` publishes VALUE as it is.
    let out = run_ok(kiln().args([
        "build",
        src.to_str().unwrap(),
        "--to",
        &to,
        "--version",
        "=atuo",
    ]));
    assert!(out.starts_with(&format!("{to}:atuo@sha256:")), "{out}");
}

/// `kiln tags` of a repository the registry does not know is an error naming it (exit 1), as `crane ls` and
/// `skopeo list-tags` fail: a misspelt name must not look like "no versions yet". `next-version` still takes it
/// as empty (the first build creates it), and a layout path without a layout is an error too.
#[test]
fn tags_of_a_missing_repository_is_an_error_naming_it() {
    let reg = Registry::start(Mode::open());
    let k = KilnEnv::new();
    let repo = format!("{}/team/nope", reg.host());
    let out = k.run(&["tags", &repo]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("repository {repo} does not exist")) && err.contains("NAME_UNKNOWN"),
        "{err}"
    );
    let (next, _) = k.ok(&["next-version", &repo, "--version", "auto"]);
    assert_eq!(next, "v1\n");

    let out = k.run(&["tags", &format!("oci:{}", k.path("no-layout").display())]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-layout"), "{}", stderr(&out));
}

/// `kiln inspect` of a multi-platform image in a local layout behaves as for a registry: without `--platform`
/// it lists the platforms, with one it shows that platform's image, and a platform the index lacks is an error
/// listing those it has.
#[test]
fn inspect_of_a_multi_platform_image_in_a_layout() {
    let t = tempfile::tempdir().unwrap();
    for (arch, text) in [("amd64", "x86 binary\n"), ("arm64", "arm binary\n")] {
        let d = t.path().join(arch).join("bin");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("server"), text).unwrap();
    }
    let root = t.path().display().to_string();
    let to = format!("oci:{}", t.path().join("out").display());
    let out = run_ok(kiln().args([
        "build",
        "--platform",
        &format!("linux/amd64={root}/amd64"),
        "--platform",
        &format!("linux/arm64={root}/arm64"),
        "--prefix",
        "/app",
        "--entrypoint",
        "/app/bin/server",
        "--to",
        &to,
        "--tag",
        "v1",
        "--output",
        "json",
    ]));
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arm = res["platforms"]["linux/arm64"]
        .as_str()
        .unwrap()
        .to_string();
    let image = format!("{to}:v1");

    let list = run_ok(kiln().args(["inspect", &image]));
    assert!(
        list.contains("Platforms:") && list.contains("linux/amd64") && list.contains(&arm),
        "{list}"
    );
    let json: serde_json::Value = serde_json::from_str(&run_ok(
        kiln().args(["inspect", &image, "--output", "json"]),
    ))
    .unwrap();
    assert_eq!(json["digest"], res["digest"], "{json}");

    let one = run_ok(kiln().args(["inspect", &image, "--platform", "linux/arm64"]));
    assert!(
        one.contains(&arm) && one.contains("/app/bin/server"),
        "{one}"
    );
    assert!(one.contains("arm64"), "{one}");

    let out = kiln()
        .args(["inspect", &image, "--platform", "linux/s390x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("linux/amd64, linux/arm64"),
        "{}",
        stderr(&out)
    );
}

/// A kiln.toml of only `[[layer]]` tables (no `dir`) builds an image of those layers; a `prefix` then has nothing
/// to place (usage error); a kiln.toml that is not UTF-8 is a usage error (exit 2) naming the file and line.
#[test]
fn kiln_toml_of_only_extra_layers_and_a_non_utf8_file() {
    let t = tempfile::tempdir().unwrap();
    for (d, f) in [("assets", "logo.txt"), ("bin", "server")] {
        fs::create_dir_all(t.path().join(d)).unwrap();
        fs::write(t.path().join(d).join(f), format!("{f}\n")).unwrap();
    }
    let toml = t.path().join("kiln.toml");
    fs::write(
        &toml,
        "to = \"oci:out\"\nsplit = \"off\"\n\n[[layer]]\nsrc = \"bin\"\ndest = \"/app/bin\"\n\n\
         [[layer]]\nsrc = \"assets\"\ndest = \"/app/assets\"\n",
    )
    .unwrap();
    let out = run_ok(kiln().args([
        "build",
        "--config",
        toml.to_str().unwrap(),
        "--tag",
        "v1",
        "--output",
        "json",
    ]));
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(res["layers"].as_array().map(Vec::len), Some(2), "{res}");
    let list = run_ok(kiln().args([
        "inspect",
        &format!("oci:{}:v1", t.path().join("out").display()),
    ]));
    assert!(list.contains("bin") && list.contains("assets"), "{list}");

    let out = kiln()
        .args([
            "build",
            "--config",
            toml.to_str().unwrap(),
            "--prefix",
            "/app",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--prefix"), "{}", stderr(&out));

    // Not UTF-8: exit 2, as the README promises for a bad settings file.
    fs::write(&toml, b"to = \"oci:out\"\nprefix = \"/\xff\"\n").unwrap();
    let out = kiln()
        .args(["build", "--config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kiln.toml:2: not UTF-8"),
        "{}",
        stderr(&out)
    );
}

/// `kiln login` without `--password-stdin` asks for the password on a terminal (util-linux `script` gives it a
/// pseudo-terminal) with echo off, as `docker login` does: the password never shows in the terminal's output,
/// and the credentials are stored. Without a terminal and without `--password-stdin` it is a usage error.
#[test]
fn login_prompts_for_the_password_on_a_terminal_without_echo() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    require_tool("script", "bsdutils");
    let reg = Registry::start(Mode::htpasswd());
    let env = KilnEnv::new();
    let cmdline = format!(
        "{} login {} -u {}",
        env!("CARGO_BIN_EXE_kiln"),
        reg.host(),
        reg.username()
    );
    let c = env.cmd();
    let mut child = Command::new("script")
        .args(["-qfec", &cmdline, "/dev/null"])
        .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Type only once the prompt is there (echo is off by then).
    while !String::from_utf8_lossy(&seen).contains("Password for kiln: ") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(e) => panic!("no prompt ({e}): {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", reg.password()).as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    // Keep the terminal's input open until kiln is done (script ends when its command does).
    while let Ok(chunk) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.extend(chunk);
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let all = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "{all:?}");
    assert!(
        all.contains("login to") && all.contains("succeeded"),
        "{all:?}"
    );
    assert!(
        !all.contains(reg.password()),
        "the password was echoed: {all:?}"
    );
    let config = fs::read_to_string(env.home().join(".docker/config.json")).unwrap();
    assert!(config.contains(&reg.host()), "{config}");

    // No terminal, no --password-stdin: nobody to ask.
    let out = env
        .cmd()
        .args(["login", &reg.host(), "-u", reg.username()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--password-stdin"),
        "{}",
        stderr(&out)
    );
}

/// An upper-case repository (GitHub's `github.repository` keeps the owner's capitals) is a usage error that
/// says what to write and how; the README's GitHub Actions recipe lowercases it first.
#[test]
fn an_upper_case_repository_says_how_to_fix_it() {
    let out = kiln()
        .args(["next-version", "127.0.0.1:1/MyOrg/App", "--version", "auto"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("must be lowercase")
            && err.contains("\"127.0.0.1:1/myorg/app\"")
            && err.contains("tr '[:upper:]'"),
        "{err}"
    );

    // The recipe's own lowercasing step, run as GitHub runs it (bash), gives a name kiln accepts.
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let recipe = readme.split("### GitHub Actions").nth(1).unwrap();
    let step = recipe
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("- run: ")
                .filter(|r| r.contains("GITHUB_ENV"))
        })
        .expect("a step that sets IMAGE in $GITHUB_ENV");
    let t = tempfile::tempdir().unwrap();
    let env_file = t.path().join("github_env");
    let status = std::process::Command::new("bash")
        .args(["-ec", step])
        .env("GITHUB_REPOSITORY", "MyOrg/My-App")
        .env("GITHUB_ENV", &env_file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        fs::read_to_string(&env_file).unwrap(),
        "IMAGE=ghcr.io/myorg/my-app\n"
    );
    assert!(
        recipe.contains("--to \"$IMAGE\""),
        "the build step publishes to $IMAGE"
    );
}

/// The first ```sh block after `heading` in README.md, as lines.
fn readme_block(heading: &str) -> Vec<String> {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"))
        .1;
    let block = section
        .split_once("```sh\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    block.lines().map(str::to_string).collect()
}

/// Copy a directory tree (regular files and directories; the fixture has no links).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The README's quick start, as written: the kiln arguments of its `cargo run --release -- …` line, run by this
/// build's kiln in a copy of the repository root (its top-level files and testdata/, so a kiln.toml there would
/// count too), print what the README says, and its `inspect` line shows the image.
#[test]
fn readme_quick_start_runs_as_written() {
    let block = readme_block("## Quick start");
    let [line] = block.as_slice() else {
        panic!("the quick start is one command: {block:?}")
    };
    let args = line
        .strip_prefix("cargo run --release -- ")
        .unwrap_or_else(|| panic!("the quick start runs kiln through cargo: {line}"));
    assert!(
        !args.contains(['"', '\'', '$', '\\']),
        "plain words only: {args}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let t = tempfile::tempdir().unwrap();
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), t.path().join(e.file_name())).unwrap();
        }
    }
    copy_tree(&root.join("testdata"), &t.path().join("testdata"));
    let out = run_ok(kiln().args(args.split_whitespace()).current_dir(t.path()));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let promised = readme
        .split_once("and prints\n`")
        .and_then(|(_, r)| r.split_once("<digest>`"))
        .map(|(p, _)| p)
        .expect("the README says what the quick start prints");
    assert!(
        out.starts_with(promised)
            && out.trim_end().len() == promised.len() + 64
            && out.lines().count() == 1,
        "printed {out:?}, README promises {promised}<digest>"
    );
    // "Look at it with `cargo run --release -- inspect …`".
    let inspect = readme
        .split_once("Look at it with `cargo run --release -- ")
        .and_then(|(_, r)| r.split_once('`'))
        .map(|(c, _)| c)
        .expect("the README's inspect command");
    let shown = run_ok(
        kiln()
            .args(inspect.split_whitespace())
            .current_dir(t.path()),
    );
    assert!(shown.contains("/app/bin/hello"), "{shown}");
}

/// The README's test command is exactly what CI runs (`.ci/run`'s last command), and the packages the README
/// tells a fresh Debian to install are the ones `.ci/run` installs. (The command itself is not run here: it
/// would run this test again.)
#[test]
fn readme_test_command_is_what_ci_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let block = readme_block("## Tests");
    assert_eq!(block, ["cargo test --locked"]);
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap();
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert_eq!(last, block[0], ".ci/run ends with another command");

    let packages = |text: &str, after: &str, end: &str| -> std::collections::BTreeSet<String> {
        let list = text.split_once(after).unwrap().1.split_once(end).unwrap().0;
        list.split_whitespace()
            .filter(|w| !w.starts_with('-') && *w != "\\")
            .map(str::to_string)
            .collect()
    };
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let in_readme = packages(&readme, "`apt-get install -y ", "`");
    let in_ci = packages(&ci, "--no-install-recommends", ">/dev/null");
    assert_eq!(
        in_readme, in_ci,
        "README's package list and .ci/run's differ"
    );
}
