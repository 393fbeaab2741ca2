//! Tag policy tests against an in-memory target with a simulated concurrent publisher.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;

fn d(n: u8) -> Digest {
    Digest::of(&[n])
}
fn t(s: &str) -> Tag {
    s.parse().unwrap()
}

/// A repository in memory publishing `image`. `racer` holds tags another publisher writes concurrently:
/// before our write when `racer_first` (we then see a refusal or overwrite it), else right after it.
struct Mem {
    map: Mutex<BTreeMap<Tag, Digest>>,
    image: Digest,
    immutable: bool,
    racer: Mutex<BTreeMap<Tag, Digest>>,
    racer_first: bool,
    writes: Mutex<Vec<Tag>>,
}

impl Mem {
    fn new(existing: &[(&str, Digest)]) -> Mem {
        Mem {
            map: Mutex::new(existing.iter().map(|(s, d)| (t(s), d.clone())).collect()),
            image: d(0),
            immutable: false,
            racer: Mutex::default(),
            racer_first: false,
            writes: Mutex::default(),
        }
    }
    fn race(self, tags: &[&str], first: bool) -> Mem {
        *self.racer.lock().unwrap() = tags.iter().map(|s| (t(s), d(99))).collect();
        Mem {
            racer_first: first,
            ..self
        }
    }
    fn writes(&self) -> Vec<String> {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .map(Tag::to_string)
            .collect()
    }
    fn get(&self, s: &str) -> Option<Digest> {
        self.map.lock().unwrap().get(&t(s)).cloned()
    }
}

impl TagTarget for Mem {
    fn describe(&self) -> String {
        "mem/app".into()
    }
    fn list_tags(&self) -> Result<Vec<Tag>> {
        Ok(self.map.lock().unwrap().keys().cloned().collect())
    }
    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        Ok(self.map.lock().unwrap().get(tag).cloned())
    }
    fn write_tag(&self, tag: &Tag, _seen: Option<&Digest>) -> Result<WriteOutcome> {
        let mut map = self.map.lock().unwrap();
        let racer = self.racer.lock().unwrap().remove(tag);
        if let Some(other) = racer.clone().filter(|_| self.racer_first) {
            map.insert(tag.clone(), other);
        }
        if self.immutable && map.contains_key(tag) {
            return Ok(WriteOutcome::Refused);
        }
        map.insert(tag.clone(), self.image.clone());
        self.writes.lock().unwrap().push(tag.clone());
        if let Some(other) = racer.filter(|_| !self.racer_first) {
            map.insert(tag.clone(), other);
        }
        Ok(WriteOutcome::Written)
    }
}

fn plan(version: &str, extra: &[&str]) -> Plan {
    Plan {
        version_scheme: Some(Scheme::parse(version, None, false).unwrap()),
        extra_tags: extra.iter().map(|s| t(s)).collect(),
        settle: Duration::ZERO,
        ..Plan::default()
    }
}

fn names(tags: &[Tag]) -> Vec<&str> {
    tags.iter().map(Tag::as_str).collect()
}

#[test]
fn v10_after_v9() {
    let m = Mem::new(&[("v9", d(1)), ("v2", d(2)), ("latest", d(1))]);
    let p = publish(
        &m,
        &d(0),
        &plan("auto", &["build-7"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap();
    assert_eq!(p.version, Some(t("v10")));
    assert_eq!(names(&p.tags), ["v10", "build-7"]);
    assert!(!p.reused && p.raced.is_empty());
    assert_eq!(m.writes(), ["v10", "build-7"]);
}

#[test]
fn unchanged_image_reuses_its_version() {
    let m = Mem::new(&[("v3", d(0)), ("v4", d(1))]);
    let p = publish(&m, &d(0), &plan("auto", &[]), None, &m.list_tags().unwrap()).unwrap();
    assert_eq!((p.version, p.reused), (Some(t("v3")), true));
    assert!(m.writes().is_empty());
    let always = Plan {
        always_new: true,
        ..plan("auto", &[])
    };
    let p = publish(&m, &d(0), &always, None, &m.list_tags().unwrap()).unwrap();
    assert_eq!((p.version, p.reused), (Some(t("v5")), false));
}

#[test]
fn a_stolen_version_moves_on_to_the_next() {
    let m = Mem::new(&[("v1", d(1))]).race(&["v2", "v3"], false);
    let p = publish(&m, &d(0), &plan("auto", &[]), None, &m.list_tags().unwrap()).unwrap();
    assert_eq!(p.version, Some(t("v4")));
    assert_eq!(names(&p.raced), ["v2", "v3"]);
    assert_eq!(m.get("v2"), Some(d(99)), "the winner keeps it");
    assert_eq!(m.get("v4"), Some(d(0)));
}

#[test]
fn an_immutable_registry_refusal_is_a_lost_race() {
    let mut m = Mem::new(&[("1.0.0", d(1))]).race(&["1.0.1"], true);
    m.immutable = true;
    let p = publish(
        &m,
        &d(0),
        &plan("semver:patch", &[]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap();
    assert_eq!(p.version, Some(t("1.0.2")));
    assert_eq!(names(&p.raced), ["1.0.1"]);
    assert_eq!(m.get("1.0.1"), Some(d(99)));
}

#[test]
fn retries_are_bounded() {
    let m = Mem::new(&[]).race(&["v1", "v2", "v3"], false);
    let p = Plan {
        max_race_retries: 2,
        ..plan("auto", &[])
    };
    let e = publish(&m, &d(0), &p, None, &m.list_tags().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("v1, v2, v3"), "{e}");
}

#[test]
fn explicit_version_taken_is_tag_exists_and_writes_nothing() {
    let m = Mem::new(&[("1.0", d(1))]);
    let e = publish(
        &m,
        &d(0),
        &plan("1.0", &["extra"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    let msg = e.to_string();
    assert!(
        msg.contains("\"1.0\"")
            && msg.contains(&d(1).to_string())
            && msg.contains(&d(0).to_string())
    );
    assert!(msg.contains("--force-tag"), "{msg}");
    assert!(m.writes().is_empty());
    let forced = Plan {
        force: true,
        ..plan("1.0", &[])
    };
    publish(&m, &d(0), &forced, None, &m.list_tags().unwrap()).unwrap();
    assert_eq!(m.get("1.0"), Some(d(0)));
}

#[test]
fn explicit_version_lost_in_a_race_is_not_retried() {
    let m = Mem::new(&[]).race(&["1.0"], false);
    let e = publish(
        &m,
        &d(0),
        &plan("1.0", &["x"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert_eq!(m.writes(), ["1.0"]);
}

#[test]
fn any_refused_tag_means_nothing_is_written() {
    let m = Mem::new(&[("v1", d(1)), ("stable-api", d(1)), ("other", d(2))]);
    let e = publish(
        &m,
        &d(0),
        &plan("auto", &["ok", "stable-api", "other"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("stable-api, other"), "{e}");
    assert!(m.writes().is_empty());
    // already pointing at this image: nothing to do, not a conflict
    let m = Mem::new(&[("ok", d(0))]);
    let p = publish(
        &m,
        &d(0),
        &plan("auto", &["ok"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap();
    assert_eq!(names(&p.tags), ["v1", "ok"]);
    assert_eq!(m.writes(), ["v1"]);
}

#[test]
fn floating_tags_need_permission_and_come_last() {
    let m = Mem::new(&[("latest", d(1))]);
    let e = publish(
        &m,
        &d(0),
        &plan("auto", &["Latest", "x"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--allow-floating"), "{e}");
    assert!(m.writes().is_empty());
    let p = Plan {
        floating_allowed: true,
        ..plan("auto", &["latest", "x", "main"])
    };
    let out = publish(&m, &d(0), &p, None, &m.list_tags().unwrap()).unwrap();
    assert_eq!(names(&out.tags), ["v1", "x", "latest", "main"]);
    assert_eq!(m.writes(), ["v1", "x", "latest", "main"]);
    assert_eq!(m.get("latest"), Some(d(0)), "floating tags move");
    let e = publish(
        &m,
        &d(0),
        &plan("latest", &[]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("floating"), "{e}");
}

#[test]
fn plan_only_reads() {
    let m = Mem::new(&[("a", d(0)), ("b", d(1))]);
    let p = Plan {
        force: true,
        ..plan("auto", &["a", "b", "c", "a"])
    };
    let planned = plan_tags(&m, &d(0), Some(&t("v1")), &p).unwrap();
    let got: Vec<_> = planned
        .iter()
        .map(|p| (p.tag.as_str(), p.role, p.current.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("v1", Role::Version, None),
            ("a", Role::Extra, Some(d(0))),
            ("b", Role::Extra, Some(d(1))),
            ("c", Role::Extra, None)
        ]
    );
    assert!(m.writes().is_empty());
}

#[test]
fn no_version_scheme_just_tags() {
    let m = Mem::new(&[]);
    let p = Plan {
        extra_tags: vec![t("x")],
        settle: Duration::ZERO,
        ..Plan::default()
    };
    let out = publish(&m, &d(0), &p, None, &m.list_tags().unwrap()).unwrap();
    assert_eq!((out.version, names(&out.tags)), (None, vec!["x"]));
}

#[test]
fn a_refused_extra_tag_says_what_is_already_written() {
    let mut m = Mem::new(&[]).race(&["x"], true);
    m.immutable = true;
    let e = publish(
        &m,
        &d(0),
        &plan("auto", &["a", "x"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("refused") && msg.contains("already written: v1, a"),
        "{msg}"
    );
    assert_eq!(m.writes(), ["v1", "a"]);
}

#[test]
fn an_identical_write_refused_by_an_immutable_registry_is_not_a_lost_race() {
    // The refused write's tag already points at this very image (ECR refuses an identical re-push; or our own
    // earlier attempt landed): the version is ours, nothing was lost.
    let m = Mem {
        immutable: true,
        racer: Mutex::new([(t("v2"), d(0))].into_iter().collect()),
        racer_first: true,
        ..Mem::new(&[("v1", d(1))])
    };
    let p = publish(
        &m,
        &d(0),
        &plan("auto", &["extra"]),
        None,
        &m.list_tags().unwrap(),
    )
    .unwrap();
    assert_eq!(p.version.as_ref().map(Tag::as_str), Some("v2"));
    assert!(p.raced.is_empty(), "{:?}", p.raced);
    assert_eq!(m.get("extra"), Some(d(0)));
}
