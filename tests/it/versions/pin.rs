//! `kiln pin`: references written into deploy files, checked against the golden files in testdata/pin.

use super::*;

const WEB: &str = "registry.example.com/team/web:v7@sha256:abababababababababababababababababababababababababababababababab";
const WORKER: &str = "docker.io/acme/worker:v3@sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/pin")
        .join(name)
}

#[test]
fn pin_matches_the_golden_file() {
    let src = testdata("deploy.yaml");
    let out = kiln_out(&[
        "pin",
        "-f",
        src.to_str().unwrap(),
        "--ref",
        WEB,
        "--ref",
        WORKER,
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        out.stdout == fs::read(testdata("deploy.pinned.yaml")).unwrap(),
        "stdout differs from deploy.pinned.yaml:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(&format!(
            "deploy.yaml:12: registry.example.com/team/web:v6 -> {WEB}"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 8, "one line per replacement: {err}");
}

#[test]
fn pin_in_place() {
    let t = tempdir();
    let file = t.path().join("deploy.yaml");
    fs::copy(testdata("deploy.yaml"), &file).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let refs = t.path().join("refs");
    fs::write(&refs, format!("{WEB}\n\n")).unwrap();
    let f = file.to_str().unwrap();
    let out = kiln_out(&[
        "pin",
        "-f",
        f,
        "-i",
        "--ref-file",
        refs.to_str().unwrap(),
        "--image",
        &format!("acme/worker={WORKER}"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains(&format!("{f}:23: acme/worker:1.0 -> {WORKER}")));
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(testdata("deploy.pinned.yaml")).unwrap()
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let leftovers: Vec<_> = fs::read_dir(t.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 2, "no temp file left behind");

    // Pinning again changes nothing and says so.
    let out = kiln_out(&["pin", "-f", f, "-i", "--ref", WEB, "--ref", WORKER]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already pinned"));
    assert_eq!(
        fs::read(&file).unwrap(),
        fs::read(testdata("deploy.pinned.yaml")).unwrap()
    );
}

#[test]
fn pin_errors() {
    let t = tempdir();
    let good = t.path().join("good.yaml");
    fs::write(&good, "image: kiln://web\n").unwrap();
    let other = t.path().join("other.yaml");
    fs::write(&other, "image: nginx:1.25\n").unwrap();
    let (g, o) = (good.to_str().unwrap(), other.to_str().unwrap());

    // A file naming none of the rules is an error, and with -i no file is written.
    let out = kiln_out(&["pin", "-f", g, "-f", o, "-i", "--ref", WEB]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(o)
            && err.contains("registry.example.com/team/web")
            && err.contains("kiln://web"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&good).unwrap(), "image: kiln://web\n");
    assert_eq!(fs::read_to_string(&other).unwrap(), "image: nginx:1.25\n");

    let usage: [Vec<&str>; 5] = [
        vec!["pin", "-f", g, "--ref", "registry.example.com/team/web:v7"],
        vec![
            "pin",
            "-f",
            g,
            "--image",
            "web=registry.example.com/team/web:v7",
        ],
        vec!["pin", "-f", g, "-f", o, "--ref", WEB],
        vec!["pin", "-f", g],
        vec!["pin", "-f", g, "--ref", WEB, "--output", "json"],
    ];
    for args in usage {
        let out = kiln_out(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(fs::read_to_string(&good).unwrap(), "image: kiln://web\n");

    // --image pins an arbitrary reference for a name; --output json summarizes -i.
    let out = kiln_ok(&[
        "pin",
        "-f",
        o,
        "-i",
        "--image",
        &format!("nginx=nginx:1.27@sha256:{}", "ef".repeat(32)),
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["replaced"][0]["line"], 1);
    assert_eq!(
        fs::read_to_string(&other).unwrap(),
        format!("image: nginx:1.27@sha256:{}\n", "ef".repeat(32))
    );
}

#[test]
fn build_then_pin_with_the_ref_file() {
    let t = tempdir();
    let layout = t.path().join("images");
    let ref_file = t.path().join("image.ref");
    let out = build_ok(
        &input(t.path(), "a"),
        &layout,
        &[
            "--version",
            "auto",
            "--ref-file",
            ref_file.to_str().unwrap(),
        ],
    );
    let deploy = t.path().join("deploy.yaml");
    fs::write(
        &deploy,
        "containers:\n  - image: kiln://images # placeholder\n",
    )
    .unwrap();
    kiln_ok(&[
        "pin",
        "-f",
        deploy.to_str().unwrap(),
        "-i",
        "--ref-file",
        ref_file.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(&deploy).unwrap(),
        format!("containers:\n  - image: {} # placeholder\n", out.trim())
    );
}

/// The corpus: every `NAME.yaml` in testdata/pin beside a `NAME.pinned.yaml` (`helm-digest*` with
/// `--helm-digest`).
fn corpus() -> Vec<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pin");
    let mut pairs: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.ends_with(".yaml") && !n.ends_with(".pinned.yaml")
        })
        .map(|p| {
            let pinned = p.with_extension("pinned.yaml");
            (p, pinned)
        })
        .collect();
    pairs.sort();
    assert!(pairs.len() >= 9, "{pairs:?}");
    pairs
}

/// PyYAML (an independent parser) reads `input` and `pinned` to the same structure, apart from values that
/// became one of `pinned_values` and keys kiln adds (`digest`, `newTag`, `newName`, `tag`).
const SAME_STRUCTURE: &str = r#"
import sys, yaml
src, out, allowed = sys.argv[1], sys.argv[2], set(sys.argv[3:])
def load(p):
    with open(p, 'rb') as f:
        return list(yaml.safe_load_all(f))
def same(a, b, where):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            assert k in b, f"{where}: key {k!r} lost"
            same(a[k], b[k], f"{where}.{k}")
        for k in b:
            if k not in a:
                assert k in ("digest", "newTag", "newName", "tag") and b[k] in allowed, f"{where}: key {k!r}: {b[k]!r} added"
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: list length {len(a)} -> {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b or b in allowed, f"{where}: {a!r} -> {b!r}"
a, b = load(src), load(out)
assert len(a) == len(b), "documents"
same(a, b, "")
print("same", len(a))
"#;

#[test]
fn corpus_matches_the_golden_files_and_parses_elsewhere() {
    require_tool("python3", "python3-yaml");
    let (web_digest, worker_digest) = (
        format!("sha256:{}", "ab".repeat(32)),
        format!("sha256:{}", "cd".repeat(32)),
    );
    let allowed = [
        WEB.to_string(),
        WORKER.to_string(),
        "v7".into(),
        "v3".into(),
        format!("v7@{web_digest}"),
        format!("v3@{worker_digest}"),
        web_digest.clone(),
        worker_digest.clone(),
        "registry.example.com/team/web".into(),
    ];
    for (src, pinned) in corpus() {
        let name = src.file_name().unwrap().to_str().unwrap();
        let s = src.to_str().unwrap();
        let mut args = vec!["pin", "-f", s, "--ref", WEB, "--ref", WORKER];
        if name.starts_with("helm-digest") {
            args.push("--helm-digest");
        }
        let out = kiln_out(&args);
        let err = stderr(&out);
        assert!(out.status.success(), "{name}: {err}");
        let want = fs::read(&pinned).unwrap();
        assert!(
            out.stdout == want,
            "{name}: stdout differs from {}:\n{}",
            pinned.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        // Pinning the result again changes nothing.
        let p = pinned.to_str().unwrap();
        let mut again = vec!["pin", "-f", p, "--ref", WEB, "--ref", WORKER];
        if name.starts_with("helm-digest") {
            again.push("--helm-digest");
        }
        let out = kiln_out(&again);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(out.stdout == want, "{name}: pinning twice changes it");

        let mut py = Command::new("python3");
        py.args(["-c", SAME_STRUCTURE, s, p]).args(&allowed);
        let r = py.output().unwrap();
        assert!(
            r.status.success(),
            "{name}: PyYAML: {}{}",
            String::from_utf8_lossy(&r.stdout),
            stderr(&r)
        );
    }
}

#[test]
fn corpus_failures_of_the_line_rewrite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pin");
    let read = |n: &str| fs::read_to_string(dir.join(n)).unwrap();
    // Flow style: pinned (it was skipped with exit 0).
    let flow = read("flow.pinned.yaml");
    assert!(
        flow.contains(&format!("{{name: worker, image: {WORKER}}}")),
        "{flow}"
    );
    assert!(
        flow.contains(&format!("\"server\": {{image: {WEB}}}")),
        "{flow}"
    );
    // Block scalars (list items, with a tag or an anchor) and multi-line quoted strings: never rewritten.
    let (src, out) = (read("cronjob.yaml"), read("cronjob.pinned.yaml"));
    for kept in [
        "                - |\n                  image: registry.example.com/team/web:v6\n",
        "value: !!str |\n                    image: kiln://web\n",
        "value: &note |\n                    image: kiln://web\n",
        "value: \"uses image\n                    registry.example.com/team/web:v6\"",
        "image: >-\n                registry.example.com/team/web:v6\n",
        "labels: {app: report, image: registry.example.com/team/web}",
    ] {
        assert!(src.contains(kept) && out.contains(kept), "{kept}");
    }
    // A BOM does not hide line 1; CRLF and the missing final newline stay.
    let bom = fs::read(dir.join("crlf-bom.pinned.yaml")).unwrap();
    assert!(bom.starts_with(format!("\u{feff}image: {WEB}\r\n").as_bytes()));
    assert!(!bom.ends_with(b"\n"));
    // kustomize: newTag the version, digest the digest.
    let k = read("kustomization.pinned.yaml");
    assert!(
        k.contains(
            "  - name: kiln://web\n    newName: registry.example.com/team/web\n    newTag: v7\n"
        ),
        "{k}"
    );
    // Helm: tag stays a version when the block has digest:.
    let h = read("helm-values.pinned.yaml");
    assert!(h.contains("    tag: v3\n    digest: \"sha256:cdcd"), "{h}");
}

#[test]
fn pin_reports_what_it_leaves_and_checks_references() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pin");
    let anchors = dir.join("anchors.yaml");
    let out = kiln_out(&[
        "pin",
        "-f",
        anchors.to_str().unwrap(),
        "--ref",
        WEB,
        "--ref",
        WORKER,
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "anchors.yaml:13: the value anchored at line 13 is also used by the alias at line 19"
        ),
        "{err}"
    );
    assert!(err.contains("anchors.yaml:22: the value at line 22 is shared through an anchor by images needing different values"), "{err}");

    let t = tempdir();
    let deploy = t.path().join("deploy.yaml");
    fs::write(&deploy, "image: registry.example.com/team/web:v1\n").unwrap();
    let d = deploy.to_str().unwrap();
    // A ref file saved with a BOM: the BOM is no part of the reference.
    let refs = t.path().join("ref.txt");
    fs::write(&refs, format!("\u{feff}{WEB}\r\n")).unwrap();
    kiln_ok(&["pin", "-f", d, "-i", "--ref-file", refs.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(&deploy).unwrap(),
        format!("image: {WEB}\n")
    );
    // References outside the grammar --to uses are usage errors.
    let digest = format!("sha256:{}", "ab".repeat(32));
    for bad in [
        format!("registry.example.com//web:v1@{digest}"),
        format!("registry.example.com/Team/web:v1@{digest}"),
        format!("\u{feff}registry.example.com/team/web:v1@{digest}"),
    ] {
        let out = kiln_out(&["pin", "-f", d, "--ref", &bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    // Not YAML: exit 1, the line named, nothing written.
    fs::write(&deploy, "image: [registry.example.com/team/web\n").unwrap();
    let out = kiln_out(&["pin", "-f", d, "-i", "--ref", WEB]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not valid YAML"),
        "{}",
        stderr(&out)
    );
}
