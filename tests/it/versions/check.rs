//! `kiln check`: images not pinned by digest or on floating tags fail the gate; with `--registry`, a tag moved
//! after pinning and a deleted manifest are caught against a real registry.

use super::*;

fn check(args: &[&str]) -> Output {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    kiln_out(&all)
}

#[test]
fn check_offline() {
    let t = tempdir();
    let k8s = t.path().join("k8s");
    fs::create_dir_all(k8s.join("apps")).unwrap();
    fs::create_dir_all(k8s.join(".git")).unwrap();
    let d = format!("sha256:{}", "ab".repeat(32));
    fs::write(
        k8s.join("apps/web.yaml"),
        format!("kind: Deployment\nspec:\n  containers:\n    - name: web\n      image: reg.io/team/web:v7@{d}\n    - {{name: box, image: busybox}}\n"),
    )
    .unwrap();
    fs::write(
        k8s.join("values.yml"),
        format!("image:\n  repository: reg.io/team/web\n  tag: v7\n  digest: {d}\nworker:\n  image:\n    repository: reg.io/team/worker\n    tag: latest\n"),
    )
    .unwrap();
    fs::write(
        k8s.join("kustomization.yaml"),
        "images:\n  - name: kiln://web\n",
    )
    .unwrap();
    fs::write(k8s.join(".git/ignored.yaml"), "image: nginx\n").unwrap();
    fs::write(k8s.join("notes.txt"), "image: nginx\n").unwrap();
    let dir = k8s.to_str().unwrap();

    let out = check(&["-f", dir]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let web = k8s.join("apps/web.yaml");
    let values = k8s.join("values.yml");
    assert!(
        lines[0].starts_with(&format!(
            "{}:6: image busybox: not pinned by digest",
            web.display()
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}:2: image kiln://web: a kiln:// placeholder",
            k8s.join("kustomization.yaml").display()
        )),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{}:7: image reg.io/team/worker:latest: floating tag",
            values.display()
        )),
        "{err}"
    );
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[3].contains("3 problems in 5 images in 3 files"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // --output json: the same on stdout.
    let out = check(&["-f", dir, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 3);
    assert_eq!(v["problems"][0]["line"], 6);
    assert_eq!(v["problems"][0]["image"], "busybox");

    // --allow for what floats on purpose; the rest pinned: exit 0 and one summary line.
    fs::remove_file(k8s.join("kustomization.yaml")).unwrap();
    let out = check(&[
        "-f",
        dir,
        "--allow",
        "busybox",
        "--allow",
        "reg.io/team/worker",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("checked 4 images in 2 files, 2 allowed to float: all pinned by digest"),
        "{err}"
    );

    // A file that is not YAML is a problem; a directory without YAML an error.
    let bad = t.path().join("bad.yaml");
    fs::write(&bad, "image: [x\n").unwrap();
    let out = check(&["-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not valid YAML"), "{}", stderr(&out));
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = check(&["-f", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("holds no .yaml"), "{}", stderr(&out));
}

#[test]
fn check_against_the_registry() {
    let reg = Registry::start(Mode::open());
    let api = reg.api();
    let host = reg.host();
    let v1 = api.push_image_with("team/web", "v1", "first");
    let v2 = api.push_image_with("team/web", "v2", "second");
    let worker = api.push_image_with("team/worker", "v5", "worker");
    let t = tempdir();
    let deploy = t.path().join("deploy.yaml");
    let write = |web_v1: &str| {
        fs::write(
            &deploy,
            format!(
                "containers:\n  - image: {host}/team/web:v1@{web_v1}\n  - image: {host}/team/web:v2@{}\n  - image: {host}/team/worker@{}\n",
                v2.manifest_digest, worker.manifest_digest
            ),
        )
        .unwrap();
    };
    write(&v1.manifest_digest);
    let f = deploy.to_str().unwrap();

    // A clean tree passes.
    let out = check(&["-f", f, "--registry"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}\n{}", reg.log());
    assert!(
        err.contains("checked 3 images in 1 file: all pinned by digest, and every pin holds"),
        "{err}"
    );

    // Someone pushes v1 again: the tag no longer points at the pinned digest.
    let moved = api.push_image_with("team/web", "v1", "first, rebuilt");
    let out = check(&["-f", f, "--registry"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{f}:2: image {host}/team/web:v1@{}: tag \"v1\" now points at {}",
            v1.manifest_digest, moved.manifest_digest
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "one problem and the summary: {err}");
    // Offline, the file alone is fine.
    assert!(check(&["-f", f]).status.success());

    // The pinned manifest is deleted: caught.
    write(&moved.manifest_digest);
    let r = reg
        .client()
        .delete(format!(
            "{}/v2/team/web/manifests/{}",
            reg.url(),
            v2.manifest_digest
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", reg.log());
    let out = check(&["-f", f, "--registry", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    let reasons: Vec<&str> = problems
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with(&format!(
            "manifest {} does not exist in {host}/team/web",
            v2.manifest_digest
        ))),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| !r.contains("team/worker")),
        "{reasons:?}"
    );
    assert!(problems.iter().all(|p| p["line"] == 3), "{problems:?}");
}
