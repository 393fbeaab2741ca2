//! `--version` against a registry: tags, concurrent publishers, tag pagination.

use std::process::Stdio;

use super::*;

/// Tag → digest of every tag of `repo`, as skopeo sees them.
fn tag_map(reg: &Registry, repo: &str) -> std::collections::BTreeMap<String, String> {
    skopeo_list_tags_or_empty(reg, repo)
        .into_iter()
        .map(|t| {
            let d = registry_digest(reg, &format!("{repo}:{t}"));
            (t, d)
        })
        .collect()
}

#[test]
fn versions_against_the_registry() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let auto = |name: &str, extra: &[&str]| -> Output {
        let src = small_input(t.path(), name, &format!("input {name}\n"));
        let mut args = vec!["--version", "auto"];
        args.extend_from_slice(extra);
        k.build_out(&src, "app", &args)
    };

    // v1, v2, v3 for three different inputs.
    let mut printed = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let out = auto(name, &[]);
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 0, "{se}");
        let d = digest_of(&so);
        assert_eq!(so, format!("{}:v{}@{d}\n", k.r("app"), i + 1));
        printed.push(d);
    }
    let tags = tag_map(&reg, "app");
    assert_eq!(
        tags,
        [
            ("v1", &printed[0]),
            ("v2", &printed[1]),
            ("v3", &printed[2])
        ]
        .into_iter()
        .map(|(t, d)| (t.to_string(), d.clone()))
        .collect()
    );

    // An unchanged rebuild reuses its version: nothing new is tagged.
    let out = auto("b", &[]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    assert_eq!(so, format!("{}:v2@{}\n", k.r("app"), printed[1]));
    assert!(se.contains("reused"), "{se}");
    assert_eq!(tag_map(&reg, "app"), tags);

    // A v9 pushed by someone else: next is v10 (numeric, not lexical, order).
    reg.api().push_test_image("app", "v9");
    let out = auto("d", &[]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    let d10 = digest_of(&so);
    assert_eq!(so, format!("{}:v10@{d10}\n", k.r("app")));
    assert_eq!(registry_digest(&reg, "app:v10"), d10);

    // `kiln tags` lists the registry's tags in version order with digests; `next-version` only reads.
    let listing = kiln_ok(&["tags", &k.r("app")]);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["v1", "v2", "v3", "v9", "v10"], "{listing}");
    assert!(listing.contains(&format!("v10\t{d10}")), "{listing}");
    let tags_now = tag_map(&reg, "app");
    assert_eq!(
        kiln_ok(&["next-version", &k.r("app"), "--version", "auto"]),
        "v11\n"
    );
    assert_eq!(tag_map(&reg, "app"), tags_now, "next-version wrote nothing");

    // A tag that points at another image: exit 3, and the registry is exactly as before (no tag, no blob).
    let before_tags = tag_map(&reg, "app");
    let before_blobs = storage_blobs(&reg);
    let before_raw = skopeo_inspect_raw(&reg, "app:v2");
    proxy.clear_requests();
    let src = small_input(t.path(), "e", "input e\n");
    let out = k.build_out(&src, "app:v2", &[]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 3, "{se}");
    assert!(so.is_empty(), "{so}");
    assert!(
        se.contains("v2") && se.contains(&printed[1]),
        "names the tag and its digest: {se}"
    );
    assert_eq!(blob_upload_requests(&proxy, "app"), (0, 0, 0));
    assert_eq!(proxy.count("PUT", "/v2/app/manifests/"), 0);
    assert_eq!(tag_map(&reg, "app"), before_tags);
    assert_eq!(storage_blobs(&reg), before_blobs);
    assert_eq!(skopeo_inspect_raw(&reg, "app:v2"), before_raw);

    // Floating tags: refused (usage error) unless allowed; nothing pushed when refused.
    let out = auto("f", &["--tag", "latest"]);
    let (_, se) = texts(&out);
    assert_eq!(code(&out), 2, "{se}");
    assert!(
        se.contains("latest") && se.contains("--allow-floating"),
        "{se}"
    );
    assert_eq!(tag_map(&reg, "app"), before_tags);
    assert_eq!(storage_blobs(&reg), before_blobs);
    let out = auto("f", &["--tag", "latest", "--allow-floating"]);
    let (so, se) = texts(&out);
    assert_eq!(code(&out), 0, "{se}");
    let df = digest_of(so.lines().next().unwrap());
    assert_eq!(
        so,
        format!("{0}:v11@{df}\n{0}:latest@{df}\n", k.r("app")),
        "version first, then latest"
    );
    assert_eq!(registry_digest(&reg, "app:latest"), df);
    assert_eq!(registry_digest(&reg, "app:v11"), df);
}

/// `n` publishers of different images race for `--version auto` versions of one repository, `reps` times (a
/// fresh repository each time), directly or through a proxy answering some tag writes with 429 and 5xx: every
/// process gets its own version, and each version points at the digest its process printed. Returns how many
/// versions were lost to other publishers on the way.
pub(crate) fn race_auto_versions(n: usize, reps: usize, faults: bool) -> usize {
    let reg = Registry::start(Mode::open());
    let proxy = faults.then(|| Proxy::start(&reg));
    let host = proxy.as_ref().map_or_else(|| reg.host(), |p| p.host());
    let t = tempdir();
    let mut lost_total = 0;
    for rep in 0..reps {
        let repo = format!("race{rep}");
        if let Some(p) = &proxy {
            // Tag writes only (`PUT …/manifests/v<N>`): images go up by digest. Four faults in all, so no process
            // can meet more than its four retries allow (`registry::retry`, 5 attempts), whoever meets them.
            let tag_put = || Matcher::new("PUT", &format!("/{repo}/manifests/v"));
            p.inject(Fault::TooManyRequests {
                retry_after: 0,
                matching: tag_put(),
                times: 2,
            });
            for status in [500, 503] {
                p.inject(Fault::Status {
                    status,
                    matching: tag_put(),
                    times: 1,
                });
            }
        }
        let children: Vec<_> = (0..n)
            .map(|i| {
                let env = KilnEnv::new();
                let src = small_input(
                    t.path(),
                    &format!("in{rep}-{i}"),
                    &format!("racer {rep} {i}\n"),
                );
                let mut cmd = env.cmd();
                cmd.args([
                    "build",
                    src.to_str().unwrap(),
                    "--to",
                    &format!("{host}/{repo}"),
                    "--version",
                    "auto",
                    "--platform",
                    PLATFORM,
                ]);
                // For measuring what the settle floor buys (benches/race.sh): `RACE_SETTLE_MS=0` leaves only the
                // wait derived from the round trip.
                if let Ok(ms) = std::env::var("RACE_SETTLE_MS") {
                    cmd.args(["--settle-ms", &ms]);
                }
                let child = cmd
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (env, child)
            })
            .collect();
        let mut printed = std::collections::BTreeMap::new();
        for (_env, child) in children {
            let out = child.wait_with_output().unwrap();
            let (so, se) = texts(&out);
            assert_eq!(code(&out), 0, "repetition {rep}: {se}");
            lost_total += se.matches("was taken by another publisher").count();
            let line = so.trim_end();
            let (reference, digest) = line.rsplit_once('@').unwrap();
            let tag = reference.rsplit_once(':').unwrap().1.to_string();
            assert!(
                printed.insert(tag.clone(), digest.to_string()).is_none(),
                "repetition {rep}: two processes printed {tag}"
            );
        }
        if let Some(p) = &proxy {
            assert!(
                p.pending_faults().is_empty(),
                "repetition {rep}: every fault met a tag write"
            );
        }
        assert_eq!(
            printed
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            (1..=n).map(|i| format!("v{i}")).collect(),
            "repetition {rep}"
        );
        assert_eq!(
            tag_map(&reg, &repo),
            printed,
            "repetition {rep}: each tag points at the digest its process printed"
        );
    }
    lost_total
}

#[test]
fn concurrent_auto_versions_get_distinct_tags() {
    let lost = race_auto_versions(16, 2, false);
    eprintln!("16 publishers x 2: {lost} versions lost to other publishers on the way");
}

#[test]
fn concurrent_auto_versions_get_distinct_tags_through_tag_write_faults() {
    let lost = race_auto_versions(16, 2, true);
    eprintln!("16 publishers x 2, 429/5xx on tag writes: {lost} versions lost on the way");
}

/// The issue-20 target: 16 publishers x 20 repetitions, with and without faults (about 2 minutes; run by
/// `benches/race.sh`, not by `cargo test`).
#[test]
#[ignore = "long: 640 publishes; run by benches/race.sh"]
fn concurrent_auto_versions_twenty_repetitions() {
    for faults in [false, true] {
        let lost = race_auto_versions(16, 20, faults);
        eprintln!("16 publishers x 20, faults {faults}: {lost} versions lost on the way");
    }
}

#[test]
fn auto_version_follows_tag_pagination() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let api = reg.api();
    for (repo, paging) in [
        ("ignore-n", TagPaging::IgnoreN { page: 3 }),
        (
            "cap-n",
            TagPaging::CapN {
                max: 100,
                default_page: 3,
            },
        ),
    ] {
        let img = api.push_test_image(repo, "v1");
        for i in 2..=7 {
            api.put_manifest(repo, &format!("v{i}"), oci::OCI_MANIFEST, &img.manifest);
        }
        proxy.set_tag_paging(Some(paging));
        proxy.clear_requests();
        let src = small_input(t.path(), repo, "paged\n");
        let out = k.build_out(&src, repo, &["--version", "auto"]);
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 0, "{repo}: {se}");
        let d = digest_of(&so);
        assert_eq!(so, format!("{}:v8@{d}\n", k.r(repo)), "{repo}: {se}");
        // One listing, every page of it: 7 tags in pages of 3 when `n` is ignored (the Link header followed
        // twice); one page of up to 100 when `n=100` is honoured.
        let pages = match paging {
            TagPaging::IgnoreN { .. } => 3,
            TagPaging::CapN { .. } | TagPaging::EndlessCursor => 1,
        };
        assert_eq!(
            proxy.count("GET", &format!("/v2/{repo}/tags/list")),
            pages,
            "{repo}: {:#?}",
            proxy.requests()
        );
        assert!(
            proxy.requests().iter().all(|r| r.status != Some(400)),
            "{repo}: {:#?}",
            proxy.requests()
        );
        proxy.set_tag_paging(None);
        assert_eq!(registry_digest(&reg, &format!("{repo}:v8")), d);
        assert_eq!(skopeo_list_tags(&reg, repo).len(), 8);
    }
}

/// A versioned build reads the repository's tags once: the early-push check, the version choice and the
/// publish share one listing (each `GET …/tags/list` may be several pages on ECR or GAR). Also for an index
/// (two platforms) and for `kiln push` of a layout.
#[test]
fn a_versioned_publish_lists_tags_once() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let api = reg.api();
    let img = api.push_test_image("once", "v1");
    api.put_manifest("once", "v2", oci::OCI_MANIFEST, &img.manifest);
    let lists = || proxy.count("GET", "/v2/once/tags/list");

    proxy.clear_requests();
    let src = small_input(t.path(), "once", "listed once\n");
    let (so, se) = k.build(&src, "once", "/", &["--version", "auto"]);
    assert!(so.starts_with(&format!("{}:v3@", k.r("once"))), "{so}{se}");
    assert_eq!(lists(), 1, "{:#?}", proxy.requests());

    // The same image again: the version is reused, still from one listing.
    proxy.clear_requests();
    let (again, se) = k.build(&src, "once", "/", &["--version", "auto"]);
    assert_eq!(again, so, "{se}");
    assert_eq!(lists(), 1, "{:#?}", proxy.requests());

    // Two platforms under one index.
    proxy.clear_requests();
    let (arm, amd) = (t.path().join("arm"), t.path().join("amd"));
    for (d, text) in [(&arm, "arm\n"), (&amd, "amd\n")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("f"), text).unwrap();
    }
    let (so, se) = k.ok(&[
        "build",
        "--to",
        &k.r("once"),
        "--version",
        "auto",
        "--platform",
        &format!("linux/arm64={}", arm.display()),
        "--platform",
        &format!("linux/amd64={}", amd.display()),
    ]);
    assert!(so.starts_with(&format!("{}:v4@", k.r("once"))), "{so}{se}");
    assert_eq!(lists(), 1, "{:#?}", proxy.requests());

    // kiln push of a layout's image.
    let layout = t.path().join("layout");
    let (built, se) = k.ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &format!("oci:{}:local", layout.display()),
        "--platform",
        PLATFORM,
    ]);
    assert!(!built.is_empty(), "{se}");
    proxy.clear_requests();
    let (so, se) = k.ok(&[
        "push",
        &format!("oci:{}:local", layout.display()),
        &k.r("once"),
        "--version",
        "auto",
    ]);
    assert!(so.starts_with(&format!("{}:v3@", k.r("once"))), "{so}{se}");
    assert_eq!(lists(), 1, "{:#?}", proxy.requests());
}
