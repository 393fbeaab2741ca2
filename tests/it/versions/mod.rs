//! Versions end to end against local OCI layouts: `kiln build --version …` (auto, semver, git, explicit), reuse,
//! `--tag` templates, floating tags, refusal to move a version, concurrent publishers, and the read-only
//! `kiln tags` / `kiln next-version`; `kiln pin` on the golden deploy files in `pin`.

mod check;
mod pin;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

/// A build input whose content (and so image digest) is determined by `name`.
fn input(root: &Path, name: &str) -> PathBuf {
    let d = root.join("inputs").join(name);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("content.txt"), format!("{name}\n")).unwrap();
    d
}

fn oci(layout: &Path) -> String {
    format!("oci:{}", layout.display())
}

fn build(src: &Path, layout: &Path, extra: &[&str]) -> Output {
    let to = oci(layout);
    let mut args = vec!["build", src.to_str().unwrap(), "--to", &to];
    args.extend_from_slice(extra);
    kiln_out(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Build, require success, return stdout.
fn build_ok(src: &Path, layout: &Path, extra: &[&str]) -> String {
    let out = build(src, layout, extra);
    assert!(
        out.status.success(),
        "build {extra:?} failed ({}): {}",
        out.status,
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `oci:PATH:TAG@sha256:…` → (TAG, digest), checking the repository part.
fn split_ref(layout: &Path, line: &str) -> (String, String) {
    let rest = line
        .strip_prefix(&format!("{}:", oci(layout)))
        .unwrap_or_else(|| panic!("{line:?} does not start with {}:", oci(layout)));
    let (tag, digest) = rest.split_once('@').unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{line}"
    );
    (tag.to_string(), digest.to_string())
}

/// The version (first stdout line) of a build, and the digest.
fn version_of(layout: &Path, stdout: &str) -> (String, String) {
    split_ref(layout, stdout.lines().next().expect("a first line"))
}

/// `kiln tags` as (tag, digest) pairs, in the order printed.
fn tags(layout: &Path) -> Vec<(String, String)> {
    kiln_ok(&["tags", &oci(layout)])
        .lines()
        .map(|l| {
            let (t, d) = l.split_once('\t').unwrap_or_else(|| panic!("{l:?}"));
            (t.to_string(), d.to_string())
        })
        .collect()
}

fn tag_names(layout: &Path) -> Vec<String> {
    tags(layout).into_iter().map(|x| x.0).collect()
}

/// Digest of the image `src` gives (built into a scratch layout; builds are deterministic).
fn digest_of(src: &Path, scratch: &Path) -> String {
    version_of(scratch, &build_ok(src, scratch, &["--tag", "probe"])).1
}

#[test]
fn auto_counts_up_past_manual_tags_and_tags_lists_in_version_order() {
    let t = tempdir();
    let layout = t.path().join("l");
    let mut digests = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let out = build_ok(&input(t.path(), name), &layout, &["--version", "auto"]);
        let (v, d) = version_of(&layout, &out);
        assert_eq!(v, format!("v{}", i + 1));
        digests.push(d);
    }
    assert_eq!(digests.len(), 3);
    assert_ne!(digests[0], digests[1]);
    build_ok(&input(t.path(), "manual"), &layout, &["--tag", "v9"]);
    let out = build_ok(&input(t.path(), "d"), &layout, &["--version", "auto"]);
    let (v, d10) = version_of(&layout, &out);
    assert_eq!(v, "v10");

    let listed = tags(&layout);
    let names: Vec<&str> = listed.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(names, ["v1", "v2", "v3", "v9", "v10"]);
    assert_eq!(listed[0].1, digests[0]);
    assert_eq!(listed[4].1, d10);
    let json: serde_json::Value =
        serde_json::from_str(&kiln_ok(&["tags", &oci(&layout), "--output", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5);
    assert_eq!(json[4]["tag"], "v10");
    assert_eq!(json[4]["digest"], d10.as_str());

    // next-version only reads.
    let before = tree_listing(&layout);
    assert_eq!(
        kiln_ok(&["next-version", &oci(&layout), "--version", "auto"]),
        "v11\n"
    );
    let json: serde_json::Value = serde_json::from_str(&kiln_ok(&[
        "next-version",
        &oci(&layout),
        "--version",
        "auto",
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["version"], "v11");
    assert_eq!(json["existing"], serde_json::Value::Null);
    // an explicit version that exists is printed, with a note on stderr
    let out = kiln_out(&["next-version", &oci(&layout), "--version", "v2"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"v2\n");
    assert!(stderr(&out).contains(&digests[1]), "{}", stderr(&out));
    assert_eq!(
        before,
        tree_listing(&layout),
        "next-version wrote something"
    );
    // a layout that does not exist yet has no versions, and is not created
    let fresh = t.path().join("fresh");
    assert_eq!(
        kiln_ok(&["next-version", &oci(&fresh), "--version", "auto"]),
        "v1\n"
    );
    assert!(!fresh.exists());
    // but `kiln tags` on it is an error; a tagged target is a usage error
    assert_eq!(kiln_out(&["tags", &oci(&fresh)]).status.code(), Some(1));
    let out = kiln_out(&["tags", &format!("{}:v1", oci(&layout))]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn semver_bumps_and_pre_releases() {
    let t = tempdir();
    let plain = t.path().join("plain");
    build_ok(&input(t.path(), "base"), &plain, &["--version", "1.2.3"]);
    let cases = [
        ("p", vec!["--version", "semver:patch"], "1.2.4"),
        ("mi", vec!["--version", "semver:minor"], "1.3.0"),
        ("ma", vec!["--version", "semver:major"], "2.0.0"),
        (
            "rc1",
            vec!["--version", "semver:minor", "--pre", "rc"],
            "2.1.0-rc.1",
        ),
        (
            "rc2",
            vec!["--version", "semver:minor", "--pre", "rc"],
            "2.1.0-rc.2",
        ),
        // pre-releases are not releases: a plain patch still bumps from 2.0.0
        ("p2", vec!["--version", "semver:patch"], "2.0.1"),
    ];
    for (name, flags, want) in cases {
        let target = oci(&plain);
        let mut nv = vec!["next-version", target.as_str()];
        nv.extend(flags.iter().copied());
        assert_eq!(kiln_ok(&nv).trim(), want, "next-version {flags:?}");
        let out = build_ok(&input(t.path(), name), &plain, &flags);
        assert_eq!(version_of(&plain, &out).0, want, "{flags:?}");
    }
    let names = tag_names(&plain);
    assert_eq!(
        names,
        [
            "1.2.3",
            "1.2.4",
            "1.3.0",
            "2.0.0",
            "2.0.1",
            "2.1.0-rc.1",
            "2.1.0-rc.2"
        ]
    );

    // The v prefix follows the existing versions.
    let v = t.path().join("v");
    build_ok(&input(t.path(), "vbase"), &v, &["--version", "v1.2.3"]);
    for (name, bump, want) in [
        ("vp", "semver:patch", "v1.2.4"),
        ("vmi", "semver:minor", "v1.3.0"),
        ("vma", "semver:major", "v2.0.0"),
    ] {
        let out = build_ok(&input(t.path(), name), &v, &["--version", bump]);
        assert_eq!(version_of(&v, &out).0, want);
    }
    // --pre only with semver
    let out = build(
        &input(t.path(), "x"),
        &v,
        &["--version", "auto", "--pre", "rc"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn unchanged_rebuild_reuses_its_version_unless_always_new() {
    let t = tempdir();
    let layout = t.path().join("l");
    let src = input(t.path(), "same");
    let first = build_ok(&src, &layout, &["--version", "auto"]);
    assert_eq!(version_of(&layout, &first).0, "v1");
    let out = build(&src, &layout, &["--version", "auto"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8(out.stdout.clone()).unwrap(), first);
    assert!(stderr(&out).contains("reused"), "{}", stderr(&out));
    assert_eq!(tag_names(&layout), ["v1"]);

    let again = build_ok(&src, &layout, &["--version", "auto", "--always-new"]);
    let (v, d) = version_of(&layout, &again);
    assert_eq!(v, "v2");
    assert_eq!(d, version_of(&layout, &first).1);
    assert_eq!(tag_names(&layout), ["v1", "v2"]);
}

#[test]
fn an_existing_explicit_version_is_never_moved() {
    let t = tempdir();
    let layout = t.path().join("l");
    let a = input(t.path(), "a");
    let b = input(t.path(), "b");
    let (_, da) = version_of(&layout, &build_ok(&a, &layout, &["--version", "v1"]));
    let db = digest_of(&b, &t.path().join("scratch"));
    assert_ne!(da, db);

    let before = tree_listing(&layout);
    let out = build(&b, &layout, &["--version", "v1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("\"v1\"") && err.contains(&da) && err.contains(&db),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        before,
        tree_listing(&layout),
        "a refused build wrote nothing"
    );

    // Same image, same version: fine, nothing moves.
    build_ok(&a, &layout, &["--version", "v1"]);
    assert_eq!(tags(&layout), [("v1".to_string(), da.clone())]);

    // Deliberately moved.
    let out = build_ok(&b, &layout, &["--version", "v1", "--force-tag"]);
    assert_eq!(version_of(&layout, &out), ("v1".to_string(), db.clone()));
    assert_eq!(tags(&layout), [("v1".to_string(), db)]);
}

#[test]
fn floating_tags_need_allow_floating_come_after_the_version_and_move() {
    let t = tempdir();
    let layout = t.path().join("l");
    let a = input(t.path(), "a");
    let out = build(&a, &layout, &["--version", "auto", "--tag", "latest"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("latest") && err.contains("--allow-floating"),
        "{err}"
    );
    assert!(!layout.exists(), "a refused first build leaves no layout");

    let flags = ["--version", "auto", "--tag", "latest", "--allow-floating"];
    let out = build_ok(&a, &layout, &flags);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let (v1, da) = split_ref(&layout, lines[0]);
    assert_eq!(v1, "v1");
    assert_eq!(
        split_ref(&layout, lines[1]),
        ("latest".to_string(), da.clone())
    );

    let out = build_ok(&input(t.path(), "b"), &layout, &flags);
    let (v2, db) = version_of(&layout, &out);
    assert_eq!(v2, "v2");
    let listed = tags(&layout);
    assert_eq!(
        listed,
        [
            ("v1".to_string(), da),
            ("v2".to_string(), db.clone()),
            ("latest".to_string(), db)
        ]
    );
}

#[test]
fn stdout_json_and_ref_file() {
    let t = tempdir();
    let layout = t.path().join("l");
    let a = input(t.path(), "a");
    let ref_file = t.path().join("image.ref");
    let out = build_ok(
        &a,
        &layout,
        &[
            "--version",
            "auto",
            "--tag",
            "extra",
            "--ref-file",
            ref_file.to_str().unwrap(),
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    let (v, d) = split_ref(&layout, lines[0]);
    assert_eq!(v, "v1");
    assert_eq!(
        split_ref(&layout, lines[1]),
        ("extra".to_string(), d.clone())
    );
    assert_eq!(
        fs::read_to_string(&ref_file).unwrap(),
        format!("{}\n", lines[0])
    );

    let b = input(t.path(), "b");
    let json = build_ok(
        &b,
        &layout,
        &[
            "--version",
            "auto",
            "--output",
            "json",
            "--ref-file",
            ref_file.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], "v2");
    assert_eq!(v["repository"], oci(&layout).as_str());
    assert_eq!(v["tags"], serde_json::json!(["v2"]));
    let digest = v["digest"].as_str().unwrap();
    let platforms = v["platforms"].as_object().unwrap();
    assert_eq!(platforms.len(), 1);
    assert_eq!(platforms.values().next().unwrap(), digest);
    assert_eq!(
        fs::read_to_string(&ref_file).unwrap(),
        format!("{}:v2@{digest}\n", oci(&layout))
    );
}

/// A git repository at `root/repo` with one commit holding `app/content.txt`; returns the repo and `app`.
fn git_repo(root: &Path) -> (PathBuf, PathBuf) {
    let repo = root.join("repo");
    let app = repo.join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("content.txt"), "from git\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    (repo, app)
}

#[test]
fn tag_templates() {
    let t = tempdir();
    let (repo, app) = git_repo(t.path());
    let short = git(&repo, &["rev-parse", "--short=7", "HEAD"]);
    let layout = t.path().join("l");
    let out = build_ok(
        &app,
        &layout,
        &["--version", "auto", "--tag", "{version}-{git_short_sha}"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(split_ref(&layout, lines[0]).0, "v1");
    assert_eq!(split_ref(&layout, lines[1]).0, format!("v1-{short}"));

    // {date} is SOURCE_DATE_EPOCH's day (kiln() sets 1700000000).
    let out = build_ok(&input(t.path(), "d"), &layout, &["--tag", "build-{date}"]);
    assert_eq!(version_of(&layout, &out).0, "build-20231114");

    // {env:NAME}
    let to = oci(&layout);
    let e = input(t.path(), "e");
    let out = kiln()
        .args(["build", e.to_str().unwrap(), "--to", &to])
        .args([
            "--version",
            "auto",
            "--tag",
            "branch-{env:KILN_TEST_BRANCH}",
        ])
        .env("KILN_TEST_BRANCH", "feature-x")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(split_ref(&layout, lines[0]).0, "v2");
    assert_eq!(split_ref(&layout, lines[1]).0, "branch-feature-x");

    // A malformed template is a usage error and writes nothing.
    let before = tree_listing(&layout);
    for bad in ["{nope}", "x-{version", "{env:}"] {
        let out = build(&input(t.path(), "f"), &layout, &["--tag", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    assert_eq!(before, tree_listing(&layout));
}

#[test]
fn git_versions_refuse_a_dirty_tree_unless_allowed() {
    let t = tempdir();
    let (repo, app) = git_repo(t.path());
    git(&repo, &["tag", "v1.0.0"]);
    let layout = t.path().join("l");
    let nv = ["next-version", &oci(&layout), "--version", "git", "--dir"];
    let mut args = nv.to_vec();
    args.push(app.to_str().unwrap());
    assert_eq!(kiln_ok(&args), "v1.0.0\n");
    let out = build_ok(&app, &layout, &["--version", "git"]);
    assert_eq!(version_of(&layout, &out).0, "v1.0.0");

    fs::write(app.join("new.txt"), "untracked\n").unwrap();
    let before = tree_listing(&layout);
    let out = build(&app, &layout, &["--version", "git"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--allow-dirty"), "{err}");
    assert_eq!(before, tree_listing(&layout));
    let out = kiln_out(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let out = build_ok(&app, &layout, &["--version", "git", "--allow-dirty"]);
    assert_eq!(version_of(&layout, &out).0, "v1.0.0-dirty");
    // outside a repository: a clear error
    let out = build(&input(t.path(), "norepo"), &layout, &["--version", "git"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn concurrent_auto_builds_get_distinct_versions() {
    let t = tempdir();
    let layout = t.path().join("shared");
    let to = oci(&layout);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let src = input(t.path(), &format!("racer-{i}"));
            kiln()
                .args([
                    "build",
                    src.to_str().unwrap(),
                    "--to",
                    &to,
                    "--version",
                    "auto",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut printed = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        printed.push(version_of(&layout, &stdout));
    }
    let mut versions: Vec<&str> = printed.iter().map(|x| x.0.as_str()).collect();
    versions.sort_by_key(|v| v[1..].parse::<u32>().unwrap());
    assert_eq!(versions, ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"]);
    let mut digests: Vec<&str> = printed.iter().map(|x| x.1.as_str()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 8, "8 different inputs, 8 images");
    let listed = tags(&layout);
    assert_eq!(listed.len(), 8);
    for p in &printed {
        assert!(listed.contains(p), "{p:?} not in {listed:?}");
    }
}

/// Concurrent first builds of one explicit version into a new layout: one wins, the others are refused (exit
/// 3), and a loser that happened to create the layout does not delete it on its way out.
#[test]
fn concurrent_explicit_versions_into_a_new_layout_keep_the_winner() {
    let t = tempdir();
    let layout = t.path().join("new");
    let to = oci(&layout);
    let children: Vec<_> = (0..4)
        .map(|i| {
            let src = input(t.path(), &format!("explicit-{i}"));
            kiln()
                .args([
                    "build",
                    src.to_str().unwrap(),
                    "--to",
                    &to,
                    "--version",
                    "v1",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(winners.len(), 1);
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(3), "{}", stderr(o));
    }
    let won = version_of(&layout, std::str::from_utf8(&winners[0].stdout).unwrap());
    assert_eq!(tags(&layout), [won]);
}
