//! What a layer leaves out: kiln's own outputs inside the build directory (so `kiln build .` stays unchanged
//! when nothing changed), and `.kilnignore` / `--exclude` / kiln.toml `exclude` patterns, read as Docker reads
//! `.dockerignore`.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support::*;

/// kiln in `dir` (its current directory), any exit status.
fn kiln_at(dir: &Path, args: &[&str]) -> Output {
    kiln().current_dir(dir).args(args).output().unwrap()
}

fn kiln_at_ok(dir: &Path, args: &[&str]) -> (String, String) {
    let out = kiln_at(dir, args);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "kiln {args:?} failed:\n{se}");
    (so, se)
}

#[test]
fn an_unchanged_build_of_the_current_directory_is_unchanged() {
    let t = tempdir();
    let dir = t.path().join("site");
    fs::create_dir_all(dir.join("assets")).unwrap();
    fs::write(dir.join("index.html"), "<h1>hi</h1>\n").unwrap();
    fs::write(dir.join("assets/app.js"), "console.log(1)\n".repeat(1000)).unwrap();
    // The default --to (oci:kiln-images), the --ref-file and the cache all land inside the build directory.
    let args = [
        "build",
        ".",
        "--version",
        "auto",
        "--ref-file",
        "ref.txt",
        "--cache",
        ".kiln-cache",
    ];
    let (first, _) = kiln_at_ok(&dir, &args);
    let (second, err) = kiln_at_ok(&dir, &args);
    let (third, _) = kiln_at_ok(&dir, &args);
    let line = |s: &str| s.lines().next().unwrap().to_string();
    assert!(
        line(&first).starts_with("oci:kiln-images:v1@sha256:"),
        "{first}"
    );
    assert_eq!(line(&first), line(&second), "same digest, version reused");
    assert_eq!(line(&second), line(&third));
    for what in ["kiln-images", "ref.txt", ".kiln-cache"] {
        assert!(err.contains(what), "the note names {what}:\n{err}");
    }
    assert!(err.contains("kiln's own output"), "{err}");

    // A real change still makes a new version.
    fs::write(dir.join("index.html"), "<h1>hello</h1>\n").unwrap();
    let (changed, _) = kiln_at_ok(&dir, &args);
    assert!(
        line(&changed).starts_with("oci:kiln-images:v2@"),
        "{changed}"
    );
}

#[test]
fn kilnignore_exclude_flags_and_kiln_toml_patterns_leave_paths_out() {
    require_tool("tar", "tar");
    let t = tempdir();
    let dir = t.path().join("out");
    for d in [
        "app/maps",
        "docs/api",
        "docs/guide",
        "node_modules/x",
        "logs",
    ] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    for f in [
        "app/main.js",
        "app/main.js.map",
        "app/maps/vendor.js.map",
        "docs/api/index.md",
        "docs/guide/intro.md",
        "node_modules/x/index.js",
        "logs/today.log",
        "README.md",
        "notes.tmp",
        "keep.tmp",
    ] {
        fs::write(dir.join(f), f).unwrap();
    }
    // Docker's .dockerignore syntax: comments, a leading / optional, ** at any depth, ! re-includes (also below
    // an excluded directory). The file itself stays in the layer unless it names itself, as with Docker.
    fs::write(
        dir.join(".kilnignore"),
        "# build leftovers\n/node_modules\n**/*.map\ndocs\n!docs/api\n*.tmp\n",
    )
    .unwrap();
    // kiln.toml's exclude; --exclude would replace it (a list flag replaces the file's list).
    fs::write(
        t.path().join("kiln.toml"),
        "dir = \"out\"\nexclude = [\"logs\", \"!keep.tmp\"]\ncompression = \"none\"\n",
    )
    .unwrap();
    let (stdout, err) = kiln_at_ok(
        t.path(),
        &["build", "--to", "oci:img", "--tag", "v1", "--split", "off"],
    );
    assert!(stdout.starts_with("oci:img:v1@"), "{stdout}");
    assert!(
        err.contains("left out of the layer from") && err.contains("node_modules"),
        "{err}"
    );
    let layer = single_layer(&t.path().join("img"));
    let listing = tool_ok("tar", &["-tf", layer.to_str().unwrap()]);
    let names: Vec<&str> = listing.lines().map(|l| l.trim_end_matches('/')).collect();
    assert_eq!(
        names,
        [
            ".kilnignore",
            "README.md",
            "app",
            "app/main.js",
            "app/maps",
            "docs",
            "docs/api",
            "docs/api/index.md",
            "keep.tmp",
        ]
    );

    // --exclude replaces kiln.toml's list; the .kilnignore can leave itself out.
    fs::write(dir.join(".kilnignore"), ".kilnignore\n").unwrap();
    kiln_at_ok(
        t.path(),
        &[
            "build",
            "--to",
            "oci:img",
            "--tag",
            "v2",
            "--split",
            "off",
            "--exclude",
            "docs/**",
            "--exclude",
            "app",
        ],
    );
    let layer = layer_of(&t.path().join("img"), "v2");
    let listing = tool_ok("tar", &["-tf", layer.to_str().unwrap()]);
    let names: Vec<&str> = listing.lines().map(|l| l.trim_end_matches('/')).collect();
    assert_eq!(
        names,
        [
            "README.md",
            "docs",
            "keep.tmp",
            "logs",
            "logs/today.log",
            "node_modules",
            "node_modules/x",
            "node_modules/x/index.js",
            "notes.tmp",
        ]
    );

    // A bad pattern is refused before anything is written, naming it.
    let out = kiln_at(t.path(), &["build", "--to", "oci:img2", "--exclude", "a["]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--exclude"));
    assert!(!t.path().join("img2").exists());
}

fn single_layer(layout: &Path) -> std::path::PathBuf {
    layer_of(layout, "v1")
}

/// The blob of the one layer of `layout:tag`.
fn layer_of(layout: &Path, tag: &str) -> std::path::PathBuf {
    let manifest: serde_json::Value = serde_json::from_str(&tool_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:{tag}", layout.display()),
        ],
    ))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let d = layers[0]["digest"].as_str().unwrap();
    layout
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"))
}
