//! `write_atomic`: content, permissions, symlinks, no-replace, and no temp file left behind whatever happens.

use std::os::unix::fs::{PermissionsExt, symlink};

use super::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The names in `dir`, sorted: a temp file left behind would show here.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_and_replaces_with_the_modes_asked_for() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f.json");
    // What File::create gives under this process's umask, whatever that is.
    let reference = t.path().join("reference");
    File::create(&reference).unwrap();
    let umask_mode = mode(&reference);
    fs::remove_file(&reference).unwrap();

    write_atomic(&p, b"one", WriteOptions::new()).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"one");
    assert_eq!(mode(&p), umask_mode);

    write_atomic(&p, b"two", WriteOptions::new().sync(true)).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");

    let secret = t.path().join("config.json");
    write_atomic(&secret, b"{}", WriteOptions::new().mode(Mode::Bits(0o600))).unwrap();
    assert_eq!(mode(&secret) & 0o077, 0, "nothing for group or others");

    fs::set_permissions(&p, Permissions::from_mode(0o751)).unwrap();
    let keep = WriteOptions::new().mode(Mode::KeepExisting);
    write_atomic(&p, b"three", keep).unwrap();
    assert_eq!(
        (fs::read(&p).unwrap(), mode(&p)),
        (b"three".to_vec(), 0o751)
    );
    // A new file under KeepExisting is an ordinary one.
    let new = t.path().join("new");
    write_atomic(&new, b"", keep).unwrap();
    assert_eq!(mode(&new), umask_mode);
    assert_eq!(names(t.path()), ["config.json", "f.json", "new"]);
}

#[test]
fn follows_symlinks_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    let real_dir = t.path().join("dotfiles");
    fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("config.json");
    fs::write(&real, b"old").unwrap();
    // A chain of links, one relative, one absolute.
    let mid = t.path().join("mid");
    symlink(&real, &mid).unwrap();
    let link = t.path().join("config.json");
    symlink("mid", &link).unwrap();

    let follow = WriteOptions::new().follow_symlinks(true);
    write_atomic(&link, b"new", follow).unwrap();
    assert_eq!(fs::read(&real).unwrap(), b"new");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(fs::symlink_metadata(&mid).unwrap().file_type().is_symlink());
    assert_eq!(names(&real_dir), ["config.json"]);

    // A dangling link: the file it names is created.
    let dangling = t.path().join("dangling");
    symlink("dotfiles/later.json", &dangling).unwrap();
    write_atomic(&dangling, b"made", follow).unwrap();
    assert_eq!(fs::read(real_dir.join("later.json")).unwrap(), b"made");
    assert!(
        fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // Not asked: the link itself is replaced, its target untouched.
    write_atomic(&link, b"plain", WriteOptions::new()).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
    assert_eq!(fs::read(&real).unwrap(), b"new");

    // A loop is an error naming the path, not a hang.
    let a = t.path().join("a");
    symlink("b", &a).unwrap();
    symlink("a", t.path().join("b")).unwrap();
    match write_atomic(&a, b"x", follow) {
        Err(Error::Io { path, .. }) => assert_eq!(path, a),
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_replace_an_existing_path_is_kept() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("app.tar");
    let once = WriteOptions::new().replace(false);
    write_atomic(&p, b"first", once).unwrap();
    match write_atomic(&p, b"second", once) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, p);
            assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(&p).unwrap(), b"first");
    // Even a dangling symlink is something not to clobber.
    let link = t.path().join("link.tar");
    symlink("nowhere", &link).unwrap();
    assert!(write_atomic(&link, b"x", once).is_err());
    assert_eq!(names(t.path()), ["app.tar", "link.tar"]);
}

#[test]
fn a_failure_leaves_no_temp_file_and_names_the_path() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("index.json");
    fs::write(&p, b"old").unwrap();
    let err = write_atomic_with(&p, WriteOptions::new(), |f, tmp| {
        f.write_all(b"half").unwrap();
        assert!(tmp.starts_with(t.path()) && tmp != p);
        Err(Error::input(tmp, "the writer gave up"))
    });
    assert!(matches!(err, Err(Error::Input { .. })), "{err:?}");
    assert_eq!(fs::read(&p).unwrap(), b"old");
    assert_eq!(names(t.path()), ["index.json"]);

    let missing = t.path().join("no/such/dir/f");
    match write_atomic(&missing, b"x", WriteOptions::new()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}

/// The CLI's old `--ref-file` used one fixed temp name, so two writers could rename each other's half file.
#[test]
fn concurrent_writers_each_write_whole() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("ref");
    let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
    std::thread::scope(|s| {
        for c in &contents {
            let p = &p;
            s.spawn(move || {
                for _ in 0..20 {
                    write_atomic(p, c, WriteOptions::new()).unwrap();
                }
            });
        }
    });
    let got = fs::read(&p).unwrap();
    assert!(contents.contains(&got), "a whole write, not a mix");
    assert_eq!(names(t.path()), ["ref"]);
}
