//! `kiln pin` tests: a golden file compared byte for byte, and the byte-preservation edge cases.

use super::*;

fn web() -> String {
    format!(
        "registry.example.com/team/web:v7@sha256:{}",
        "ab".repeat(32)
    )
}

fn rules() -> Vec<PinRule> {
    vec![
        PinRule {
            name: "registry.example.com/team/web".into(),
            pinned: web(),
        },
        PinRule {
            name: "kiln://web".into(),
            pinned: web(),
        },
        PinRule {
            name: "docker.io/acme/worker".into(),
            pinned: format!("docker.io/acme/worker:v3@sha256:{}", "cd".repeat(32)),
        },
    ]
}

fn testdata(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/pin")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn golden() {
    let r = pin_text(&testdata("deploy.yaml"), &rules(), PinOptions::default()).unwrap();
    let want = testdata("deploy.pinned.yaml");
    if r.output != want {
        let diff: Vec<_> = r
            .output
            .lines()
            .zip(want.lines())
            .filter(|(a, b)| a != b)
            .collect();
        panic!("output differs from deploy.pinned.yaml: {diff:#?}");
    }
    let lines: Vec<usize> = r.replaced.iter().map(|x| x.0).collect();
    assert_eq!(lines, [12, 16, 18, 23, 39, 44, 45, 47]);
    assert_eq!(r.replaced[0].1, "registry.example.com/team/web:v6");
    assert_eq!(
        r.replaced[5],
        (
            44,
            "kiln://web".into(),
            "registry.example.com/team/web".into()
        )
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // pinning is idempotent: everything still matches, nothing changes
    let again = pin_text(&want, &rules(), PinOptions::default()).unwrap();
    assert_eq!(again.output, want);
    assert_eq!(
        again.replaced.len(),
        7,
        "kiln://web is gone from the repository line"
    );
    assert!(again.replaced.iter().all(|(_, old, new)| old == new));
}

#[test]
fn crlf_and_no_final_newline_are_kept() {
    let input = "a: 1\r\nb:\r\n- image: registry.example.com/team/web # c\r\nimage: \"kiln://web\"";
    let r = pin_text(input, &rules(), PinOptions::default()).unwrap();
    let want = format!(
        "a: 1\r\nb:\r\n- image: {} # c\r\nimage: \"{}\"",
        web(),
        web()
    );
    assert_eq!(r.output, want);
    assert_eq!(r.replaced.len(), 2);
}

#[test]
fn no_match_changes_nothing() {
    let input = "image: nginx:1.25\nimages: registry.example.com/team/web\n#image: registry.example.com/team/web\n";
    let r = pin_text(input, &rules(), PinOptions::default()).unwrap();
    assert_eq!(r.output, input);
    assert!(r.replaced.is_empty());
}

#[test]
fn reference_forms() {
    let ok = [
        "registry.example.com/team/web",
        "registry.example.com/team/web:1",
        "registry.example.com/team/web@sha256:00",
        "registry.example.com/team/web:1@sha256:00",
    ];
    for v in ok {
        assert!(matching(v, &rules()).is_some(), "{v}");
    }
    let no = [
        "registry.example.com/team/web2",
        "registry.example.com/team",
        "kiln://webx",
        "team/web",
        "",
    ];
    for v in no {
        assert!(matching(v, &rules()).is_none(), "{v}");
    }
    assert_eq!(normalize("nginx"), "docker.io/library/nginx");
    assert_eq!(
        normalize("index.docker.io/library/nginx"),
        "docker.io/library/nginx"
    );
    // Every name of Docker Hub is docker.io (the one list: reference::DOCKER_HUB_ALIASES).
    for hub in [
        "registry-1.docker.io",
        "registry.hub.docker.com",
        "Docker.IO",
    ] {
        assert_eq!(
            normalize(&format!("{hub}/nginx")),
            "docker.io/library/nginx"
        );
        let v = format!("{hub}/acme/worker:v2");
        assert!(matching(&v, &rules()).is_some(), "{v}");
    }
    assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app");
    assert_eq!(repo_of("localhost:5000/app"), "localhost:5000/app");
    let nginx = [PinRule {
        name: "docker.io/library/nginx".into(),
        pinned: "nginx:v1@sha256:00".into(),
    }];
    assert_eq!(
        pin_text("image: nginx:1.25", &nginx, PinOptions::default())
            .unwrap()
            .output,
        "image: nginx:v1@sha256:00"
    );
}

#[test]
fn quoting_and_odd_values() {
    let r = rules();
    // quoted keys, tabs before comments, empty and escaped values
    let input = "\"image\": 'registry.example.com/team/web'\t# x\nimage: \"a\\\"b\"\nimage: &x kiln://web\nimage: 'it''s'\n";
    let out = pin_text(input, &r, PinOptions::default()).unwrap();
    assert_eq!(
        out.output,
        format!(
            "\"image\": '{}'\t# x\nimage: \"a\\\"b\"\nimage: &x {}\nimage: 'it''s'\n",
            web(),
            web()
        )
    );
}

#[test]
fn helm_block_edge_cases() {
    let r = rules();
    let input =
        "image:\n  repository: registry.example.com/team/web\n  pullPolicy: Always\nnext: 1\n";
    let out = pin_text(input, &r, PinOptions::default()).unwrap();
    assert_eq!(out.output, input);
    assert!(
        out.warnings[0].1.contains("no tag: key"),
        "{:?}",
        out.warnings
    );
    let input = "- image:\n    tag:   # fill me\n    nested:\n      tag: no\n    repository: \"kiln://web\"\n";
    let out = pin_text(input, &r, PinOptions::default()).unwrap();
    let t = format!("v7@sha256:{}", "ab".repeat(32));
    assert_eq!(
        out.output,
        format!(
            "- image:\n    tag: {t}   # fill me\n    nested:\n      tag: no\n    repository: \"registry.example.com/team/web\"\n"
        )
    );
}
