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
