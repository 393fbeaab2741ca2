//! Tests of version schemes (kept apart to keep versions.rs short).

use super::*;

fn tags(v: &[&str]) -> Vec<Tag> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}
fn next(scheme: &str, pre: Option<&str>, existing: &[&str]) -> String {
    let s = Scheme::parse(scheme, pre, false).unwrap();
    next_version(&s, &tags(existing), None).unwrap().to_string()
}

#[test]
fn parse_schemes() {
    assert_eq!(Scheme::parse("auto", None, false).unwrap(), Scheme::Auto);
    assert_eq!(
        Scheme::parse("semver:minor", Some("rc"), false).unwrap(),
        Scheme::Semver {
            bump: Bump::Minor,
            pre: Some("rc".into())
        }
    );
    assert_eq!(
        Scheme::parse("git", None, true).unwrap(),
        Scheme::Git { allow_dirty: true }
    );
    assert_eq!(
        Scheme::parse("1.2.3", None, false).unwrap(),
        Scheme::Explicit(tags(&["1.2.3"])[0].clone())
    );
    for bad in ["semver", "semver:micro", "a/b", ""] {
        assert_eq!(
            Scheme::parse(bad, None, false).unwrap_err().exit_code(),
            2,
            "{bad}"
        );
    }
    assert!(Scheme::parse("auto", Some("rc"), false).is_err());
    assert!(Scheme::parse("semver:patch", Some("1rc"), false).is_err());
    assert!(Scheme::parse("semver:patch", Some("r.c"), false).is_err());
}

#[test]
fn auto_is_numeric() {
    assert_eq!(next("auto", None, &[]), "v1");
    assert_eq!(next("auto", None, &["v9", "v10", "v2", "latest"]), "v11");
    assert_eq!(next("auto", None, &["v01", "v1.2", "V7", "v3"]), "v4");
    assert_eq!(next("auto", None, &["v0"]), "v1");
}

#[test]
fn semver_bumps_the_highest_release() {
    assert_eq!(next("semver:patch", None, &[]), "0.0.1");
    assert_eq!(next("semver:minor", None, &[]), "0.1.0");
    assert_eq!(next("semver:major", None, &[]), "1.0.0");
    let ex = ["1.2.3", "1.10.0", "1.9.9", "2.0.0-rc.1", "latest", "v7"];
    assert_eq!(next("semver:patch", None, &ex), "1.10.1");
    assert_eq!(next("semver:minor", None, &ex), "1.11.0");
    assert_eq!(next("semver:major", None, &ex), "2.0.0");
    assert_eq!(next("semver:patch", None, &["v1.2.3", "1.0.0"]), "v1.2.4");
    assert_eq!(next("semver:patch", None, &["1.2.3", "v1.0.0"]), "1.2.4");
    assert_eq!(next("semver:patch", None, &["1.2.3", "v1.2.3"]), "v1.2.4");
    assert_eq!(next("semver:patch", None, &["v0.1.0-rc.1"]), "v0.0.1");
    assert_eq!(next("semver:patch", None, &["01.2.3", "1.2"]), "0.0.1");
}

#[test]
fn semver_pre_release_lines() {
    assert_eq!(next("semver:minor", Some("rc"), &["1.2.0"]), "1.3.0-rc.1");
    let ex = [
        "v1.2.0",
        "v1.3.0-rc.1",
        "v1.3.0-rc.2",
        "v1.3.0-beta.5",
        "v1.4.0-rc.9",
    ];
    assert_eq!(next("semver:minor", Some("rc"), &ex), "v1.3.0-rc.3");
    assert_eq!(next("semver:minor", Some("beta"), &ex), "v1.3.0-beta.6");
    assert_eq!(next("semver:minor", None, &ex), "v1.3.0");
    let released = ["v1.2.0", "v1.3.0-rc.2", "v1.3.0"];
    assert_eq!(next("semver:minor", Some("rc"), &released), "v1.4.0-rc.1");
    assert_eq!(next("semver:patch", Some("rc"), &released), "v1.3.1-rc.1");
}

#[test]
fn next_after_a_lost_race() {
    let s = Scheme::Auto;
    let t = |s: &str| s.parse::<Tag>().unwrap();
    assert_eq!(next_after(&s, &t("v5"), &tags(&["v3"])).unwrap(), t("v6"));
    let s = Scheme::parse("semver:minor", Some("rc"), false).unwrap();
    assert_eq!(
        next_after(&s, &t("1.3.0-rc.1"), &tags(&["1.2.0"])).unwrap(),
        t("1.3.0-rc.2")
    );
    let s = Scheme::parse("semver:patch", None, false).unwrap();
    assert_eq!(
        next_after(&s, &t("1.2.4"), &tags(&["1.2.3"])).unwrap(),
        t("1.2.5")
    );
    assert!(next_after(&Scheme::Explicit(t("1.0")), &t("1.0"), &[]).is_err());
}

#[test]
fn git_versions() {
    let g = |d: &str, dirty| GitInfo {
        sha: "a".repeat(40),
        short_sha: "aaaaaaa".into(),
        describe: d.into(),
        dirty,
    };
    let clean = Scheme::Git { allow_dirty: false };
    let dirty_ok = Scheme::Git { allow_dirty: true };
    assert_eq!(
        next_version(&clean, &[], Some(&g("v1.2.3", false)))
            .unwrap()
            .as_str(),
        "v1.2.3"
    );
    let d = g("release/1.2+meta-4-gabc1234", false);
    assert_eq!(
        next_version(&clean, &[], Some(&d)).unwrap().as_str(),
        "release-1.2-meta-4-gabc1234"
    );
    assert_eq!(
        next_version(&clean, &[], Some(&g("-x", false)))
            .unwrap()
            .as_str(),
        "_x"
    );
    let e = next_version(&clean, &[], Some(&g("v1-dirty", true)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--allow-dirty"), "{e}");
    assert_eq!(
        next_version(&dirty_ok, &[], Some(&g("v1-dirty", true)))
            .unwrap()
            .as_str(),
        "v1-dirty"
    );
    // untracked files only: describe has no -dirty, kiln still marks it
    assert_eq!(
        next_version(&dirty_ok, &[], Some(&g("abc1234", true)))
            .unwrap()
            .as_str(),
        "abc1234-dirty"
    );
    assert!(
        next_version(&clean, &[], None)
            .unwrap_err()
            .to_string()
            .contains("not in a git repository")
    );
}

#[test]
fn sorting() {
    let mut t = tags(&[
        "latest",
        "1.10.0",
        "v10",
        "v9",
        "1.2.0",
        "1.2.0-rc.10",
        "1.2.0-rc.2",
        "abc",
        "v1.0.0",
    ]);
    sort_tags(&mut t);
    let s: Vec<_> = t.iter().map(Tag::as_str).collect();
    let want = [
        "v9",
        "v10",
        "v1.0.0",
        "1.2.0-rc.2",
        "1.2.0-rc.10",
        "1.2.0",
        "1.10.0",
        "abc",
        "latest",
    ];
    assert_eq!(s, want);
}

#[test]
fn reuse_and_floating() {
    let on = tags(&["v3", "v12", "1.2.0", "1.3.0-rc.1", "latest"]);
    assert_eq!(
        reusable_version(&Scheme::Auto, &on).unwrap().as_str(),
        "v12"
    );
    let semver = |pre: Option<&str>| Scheme::parse("semver:patch", pre, false).unwrap();
    assert_eq!(
        reusable_version(&semver(None), &on).unwrap().as_str(),
        "1.2.0"
    );
    assert_eq!(
        reusable_version(&semver(Some("rc")), &on).unwrap().as_str(),
        "1.3.0-rc.1"
    );
    assert_eq!(reusable_version(&semver(Some("beta")), &on), None);
    assert_eq!(
        reusable_version(&Scheme::Git { allow_dirty: false }, &on),
        None
    );
    assert_eq!(scheme_versions(&Scheme::Auto, &on), tags(&["v12", "v3"]));
    assert!(is_floating("Latest", DEFAULT_FLOATING));
    assert!(!is_floating("v1", DEFAULT_FLOATING));
    assert!(is_floating("prod", &["prod".to_string()]));
}

#[test]
fn near_misses_of_a_scheme_are_refused_with_the_scheme_meant() {
    for (typo, meant) in [
        ("atuo", "auto"),
        ("Auto", "auto"),
        ("AUTO", "auto"),
        ("aut", "auto"),
        ("gti", "git"),
        ("Git", "git"),
        ("semver:ptach", "semver:patch"),
        ("semver:Minor", "semver:minor"),
        ("semver-major", "semver:major"),
        ("patch", "semver:patch"),
        ("Minor", "semver:minor"),
        ("majro", "semver:major"),
    ] {
        assert_eq!(near_miss(typo), Some(meant), "{typo}");
        let e = Scheme::parse(typo, None, false).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{typo}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("did you mean \"{meant}\"")) && msg.contains(&format!("={typo}")),
            "{typo}: {msg}"
        );
    }
    // Schemes themselves and ordinary versions are not near-misses.
    for ok in [
        "auto",
        "git",
        "semver:patch",
        "v1",
        "v12",
        "1.2.3",
        "v1.0.0",
        "2024.06.1",
        "prod",
        "release",
        "beta",
    ] {
        assert_eq!(near_miss(ok), None, "{ok}");
        assert!(Scheme::parse(ok, None, false).is_ok(), "{ok}");
    }
    // `=VALUE` is always literal, even for a scheme name.
    let lit = |s: &str| Scheme::Explicit(s.parse().unwrap());
    assert_eq!(Scheme::parse("=atuo", None, false).unwrap(), lit("atuo"));
    assert_eq!(Scheme::parse("=patch", None, false).unwrap(), lit("patch"));
    assert_eq!(Scheme::parse("=auto", None, false).unwrap(), lit("auto"));
    assert_eq!(Scheme::parse("=v1", None, false).unwrap(), lit("v1"));
    assert_eq!(Scheme::parse("=", None, false).unwrap_err().exit_code(), 2);
    assert_eq!(
        Scheme::parse("=a/b", None, false).unwrap_err().exit_code(),
        2
    );
    assert!(Scheme::parse("=patch", Some("rc"), false).is_err());
}
