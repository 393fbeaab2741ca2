//! Base images read through a mirror (`--registry-mirror`, kiln.toml `registry-mirrors`, containers'
//! `registries.conf`): the mirror first, the registry itself on a miss, never a push to a mirror.

use super::*;

/// Two registries, each behind a proxy that counts what it is asked: the source and its mirror, both holding
/// the same base `base:v1`; only the source holds `only:v1`.
struct Mirrored {
    source: Registry,
    mirror: Registry,
    source_proxy: Proxy,
    mirror_proxy: Proxy,
}

impl Mirrored {
    fn new() -> Mirrored {
        let (source, mirror) = (Registry::start(Mode::open()), Registry::start(Mode::open()));
        let (source_proxy, mirror_proxy) = (Proxy::start(&source), Proxy::start(&mirror));
        let a = source.api().push_test_image("base", "v1");
        let b = mirror.api().push_test_image("base", "v1");
        assert_eq!(a.manifest, b.manifest);
        source.api().push_test_image("only", "v1");
        source_proxy.clear_requests();
        mirror_proxy.clear_requests();
        Mirrored {
            source,
            mirror,
            source_proxy,
            mirror_proxy,
        }
    }

    fn flag(&self) -> String {
        format!("{}={}", self.source_proxy.host(), self.mirror_proxy.host())
    }
}

fn pushes(p: &Proxy) -> usize {
    p.requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH"))
        .count()
}

#[test]
fn base_images_are_read_through_a_mirror_and_from_the_source_on_a_miss() {
    let m = Mirrored::new();
    let t = tempdir();
    let app = small_input(t.path(), "app", "app\n");
    let layout = format!("oci:{}", t.path().join("out").display());
    let build = |base: &str, tag: &str, extra: &[&str]| {
        let out = kiln()
            .args(["build", app.to_str().unwrap(), "--prefix", "/app"])
            .args(["--base", &format!("{}/{base}", m.source_proxy.host())])
            .args([
                "--to",
                &format!("{layout}:{tag}"),
                "--platform",
                "linux/amd64",
            ])
            .args(extra)
            .output()
            .unwrap();
        let (so, se) = texts(&out);
        assert_eq!(code(&out), 0, "{se}");
        (so, se)
    };
    // Through the mirror: the source is not asked at all.
    let (_, se) = build("base:v1", "v1", &["--registry-mirror", &m.flag()]);
    assert!(m.mirror_proxy.count("GET", "/v2/base/") >= 2, "{se}");
    assert_eq!(m.source_proxy.requests().len(), 0, "{se}");
    // The base keeps its source name.
    let json = kiln_ok(&["inspect", &format!("{layout}:v1"), "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc["manifest"]["annotations"]["org.opencontainers.image.base.name"],
        format!("{}/base:v1", m.source_proxy.host())
    );
    // A miss on the mirror: read from the source, and said so.
    let (_, se) = build("only:v1", "v2", &["--registry-mirror", &m.flag()]);
    assert!(se.contains("did not serve"), "{se}");
    assert!(m.source_proxy.count("GET", "/v2/only/") >= 2, "{se}");

    // The same from registries.conf, as podman and buildah read it.
    m.source_proxy.clear_requests();
    let conf = t.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{}\"\n[[registry.mirror]]\nlocation = \"{}\"\n",
            m.source_proxy.host(),
            m.mirror_proxy.host()
        ),
    )
    .unwrap();
    let out = kiln()
        .args(["build", app.to_str().unwrap(), "--prefix", "/app"])
        .args(["--base", &format!("{}/base:v1", m.source_proxy.host())])
        .args(["--to", &format!("{layout}:v3"), "--platform", "linux/amd64"])
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", texts(&out).1);
    assert_eq!(m.source_proxy.requests().len(), 0);

    // And from kiln.toml, where a bad value is a usage error naming the line.
    let dir = t.path().join("project");
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(dir.join("dist/f"), "f\n").unwrap();
    let toml = |mirrors: &str| {
        std::fs::write(
            dir.join("kiln.toml"),
            format!(
                "dir = \"dist\"\nbase = \"{}/base:v1\"\nto = \"{layout}:v4\"\nplatforms = [\"linux/amd64\"]\n\
                 registry-mirrors = [{mirrors}]\n",
                m.source_proxy.host()
            ),
        )
        .unwrap();
        kiln().arg("build").current_dir(&dir).output().unwrap()
    };
    let out = toml("\"nonsense\"");
    assert_eq!(code(&out), 2, "{}", texts(&out).1);
    assert!(texts(&out).1.contains("kiln.toml:5"), "{}", texts(&out).1);
    let out = toml(&format!("\"{}\"", m.flag()));
    assert_eq!(code(&out), 0, "{}", texts(&out).1);
    assert_eq!(m.source_proxy.requests().len(), 0);
    let _ = (&m.source, &m.mirror);
}

#[test]
fn a_mirror_never_receives_a_push() {
    let m = Mirrored::new();
    let t = tempdir();
    let app = small_input(t.path(), "app", "pushed\n");
    let publish = |to: &str| {
        let out = kiln()
            .args([
                "build",
                app.to_str().unwrap(),
                "--prefix",
                "/app",
                "--tag",
                "v1",
            ])
            .args(["--base", &format!("{}/base:v1", m.source_proxy.host())])
            .args(["--to", &format!("{to}/app"), "--registry-mirror", &m.flag()])
            .output()
            .unwrap();
        let (_, se) = texts(&out);
        assert_eq!(code(&out), 0, "{se}");
        se
    };
    // Publishing to the source registry: its own images are never read through the mirror.
    let se = publish(&m.source_proxy.host());
    assert_eq!(m.mirror_proxy.requests().len(), 0, "{se}");
    assert!(pushes(&m.source_proxy) > 0);
    // Publishing elsewhere with a base mirrored: the mirror is read, never written.
    let target = Registry::start(Mode::open());
    let se = publish(&target.host());
    assert!(!m.mirror_proxy.requests().is_empty(), "{se}");
    assert_eq!(
        pushes(&m.mirror_proxy),
        0,
        "{:#?}",
        m.mirror_proxy.requests()
    );
}
