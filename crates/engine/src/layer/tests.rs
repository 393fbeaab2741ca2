use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::walk::{self, fixture};

fn opts(compression: Compression) -> LayerOptions {
    LayerOptions {
        mtime: 1_700_000_000,
        uid: 0,
        gid: 0,
        compression,
        file_digests: false,
    }
}

fn layer(entries: &[Entry], o: &LayerOptions) -> (LayerInfo, Vec<u8>) {
    write_layer(entries, o, Vec::new()).unwrap()
}

fn fixture_tar() -> (tempfile::TempDir, PathBuf, Vec<Entry>, LayerInfo, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture::build(tmp.path());
    let entries = walk::walk(&root, "/app").unwrap();
    let (info, tar) = layer(&entries, &opts(Compression::None));
    (tmp, root, entries, info, tar)
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[test]
fn tar_reads_back_with_the_tar_crate() {
    let (_tmp, _root, entries, info, tar) = fixture_tar();
    assert_eq!(info.tar_size, tar.len() as u64);
    assert_eq!(info.diff_id, Digest::of(&tar));
    assert_eq!(tar.len() % BLOCK, 0);
    assert!(tar[tar.len() - 2 * BLOCK..].iter().all(|&b| b == 0));

    let mut archive = tar::Archive::new(&tar[..]);
    let mut n = 0;
    for (got, want) in archive.entries().unwrap().zip(&entries) {
        let mut got = got.unwrap();
        n += 1;
        let path = got.path_bytes().into_owned();
        let want_path = bytes(&want.path);
        let h = got.header().clone();
        assert_eq!(h.mode().unwrap(), want.mode, "{:?}", want.path);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert!(h.as_ustar().is_some(), "ustar, not GNU: {:?}", want.path);
        match &want.kind {
            EntryKind::Dir => {
                assert_eq!(path, [want_path, b"/"].concat());
                assert_eq!(h.entry_type(), tar::EntryType::Directory);
                assert_eq!(h.size().unwrap(), 0);
            }
            EntryKind::File { size } => {
                assert_eq!(path, want_path);
                assert_eq!(h.entry_type(), tar::EntryType::Regular);
                let mut content = Vec::new();
                got.read_to_end(&mut content).unwrap();
                assert_eq!(content.len() as u64, *size);
                assert_eq!(content, fs::read(want.source.as_ref().unwrap()).unwrap());
            }
            EntryKind::Symlink { target } | EntryKind::Hardlink { target } => {
                assert_eq!(path, want_path);
                let t = if matches!(want.kind, EntryKind::Symlink { .. }) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                assert_eq!(h.entry_type(), t);
                assert_eq!(got.link_name_bytes().unwrap(), bytes(target));
                assert_eq!(h.size().unwrap(), 0);
            }
        }
    }
    assert_eq!(n, entries.len());
    // The long names needed PAX; the shortest layer has no other extension.
    let long = format!("app/{}", fixture::long_path());
    assert!(entries.iter().any(|e| e.path == Path::new(&long)));
}

/// Run GNU tar; it must succeed without a word on stderr (no unknown keyword, no trailing garbage warning).
fn gnu_tar(args: &[&OsStr], locale: &str) -> String {
    let out = Command::new("/usr/bin/tar")
        .args(args)
        .env("LC_ALL", locale)
        .output()
        .expect("GNU tar at /usr/bin/tar");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "tar {args:?}: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gnu_tar_extracts_it_exactly() {
    let (tmp, root, entries, _info, tar) = fixture_tar();
    let file = tmp.path().join("layer.tar");
    fs::write(&file, &tar).unwrap();
    for locale in ["C", "C.UTF-8"] {
        let listing = gnu_tar(&["-tvf".as_ref(), file.as_os_str()], locale);
        assert!(listing.contains(&fixture::long_path()), "{listing}");
        assert!(!listing.contains("PaxHeaders"), "{listing}");

        let out = tmp.path().join(format!("out-{locale}"));
        fs::create_dir(&out).unwrap();
        gnu_tar(
            &[
                "-xpf".as_ref(),
                file.as_os_str(),
                "--no-same-owner".as_ref(),
                "-C".as_ref(),
                out.as_os_str(),
            ],
            locale,
        );
        let mut on_disk = Vec::new();
        list(&out, &out, &mut on_disk);
        on_disk.sort();
        let walked: Vec<Vec<u8>> = entries.iter().map(|e| bytes(&e.path).to_vec()).collect();
        assert_eq!(on_disk, walked, "{locale}: extracted names");

        for e in &entries {
            let x = out.join(&e.path);
            let md = fs::symlink_metadata(&x).unwrap();
            match &e.kind {
                EntryKind::Symlink { target } => {
                    assert!(md.file_type().is_symlink());
                    assert_eq!(&fs::read_link(&x).unwrap(), target);
                    continue;
                }
                EntryKind::Dir => assert!(md.is_dir()),
                EntryKind::File { .. } => {
                    assert!(md.is_file());
                    assert_eq!(
                        fs::read(&x).unwrap(),
                        fs::read(e.source.as_ref().unwrap()).unwrap()
                    );
                }
                EntryKind::Hardlink { target } => {
                    assert_eq!(
                        md.ino(),
                        fs::metadata(out.join(target)).unwrap().ino(),
                        "{x:?}"
                    );
                }
            }
            assert_eq!(md.mode() & 0o7777, e.mode, "{locale}: mode of {x:?}");
        }
        assert_eq!(
            fs::read(out.join("app").join(OsStr::from_bytes(fixture::RAW_NAME))).unwrap(),
            fs::read(root.join(OsStr::from_bytes(fixture::RAW_NAME))).unwrap()
        );
    }
}

fn list(base: &Path, dir: &Path, out: &mut Vec<Vec<u8>>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        out.push(bytes(p.strip_prefix(base).unwrap()).to_vec());
        if e.file_type().unwrap().is_dir() {
            list(base, &p, out);
        }
    }
}

/// The tree at `root` as an uncompressed, a gzip and a zstd layer.
fn build(root: &Path) -> Vec<Vec<u8>> {
    let entries = walk::walk(root, "/").unwrap();
    [
        Compression::None,
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 3 },
    ]
    .iter()
    .map(|c| layer(&entries, &opts(*c)).1)
    .collect()
}

#[test]
fn layers_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture::build(tmp.path());
    let first = build(&root);
    assert_eq!(first, build(&root), "two runs");

    // Touched mtimes/atimes on the source change nothing.
    let touched = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567);
    for rel in ["bin/server", "empty", "big.bin"] {
        let f = fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap();
        f.set_times(
            fs::FileTimes::new()
                .set_accessed(touched)
                .set_modified(touched),
        )
        .unwrap();
    }
    assert_eq!(first, build(&root), "touched mtimes");
}

/// Set in the child process [`layers_do_not_depend_on_umask`] runs itself in.
const UMASK_CHILD: &str = "KILN_TEST_UMASK_CHILD";

/// The umask is process-wide, and libtest runs the other tests of this binary on threads beside this one: files
/// they create while it is changed would get other modes (and `fsx`'s tests compare modes with the umask's). So
/// the test re-runs itself alone (`--exact`) in a child process of this binary, and only that child changes its
/// umask. (Saving and restoring the umask around the change cannot help: the others see it meanwhile; a lock
/// would only work if every test that creates a file took it.)
#[test]
fn layers_do_not_depend_on_umask() {
    if std::env::var_os(UMASK_CHILD).is_none() {
        let name = concat!(module_path!(), "::layers_do_not_depend_on_umask");
        // libtest names tests by their path inside the crate.
        let name = name.split_once("::").map_or(name, |(_, rest)| rest);
        let out = Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--test-threads=1", "--nocapture"])
            .env(UMASK_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = || format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the child failed:\n{}", report());
        // A filter that matched nothing would pass too: make sure the test ran.
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test:\n{}",
            report()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture::build(tmp.path());
    let first = build(&root);

    // A second copy of the tree (other inodes, times), made under another umask.
    let tmp2 = tempfile::tempdir().unwrap();
    // SAFETY: umask has no memory effects; this process runs no other test (see above).
    let old = unsafe { libc::umask(0o077) };
    let root2 = fixture::build(tmp2.path());
    unsafe { libc::umask(old) };
    assert_eq!(first, build(&root2), "another copy under umask 077");

    // And what we build under a different umask of our own is the same too.
    let old = unsafe { libc::umask(0o027) };
    let again = build(&root);
    unsafe { libc::umask(old) };
    assert_eq!(first, again, "kiln's umask");
}

#[test]
fn compressed_layers_decompress_to_the_diff_id() {
    let (_tmp, _root, entries, info, tar) = fixture_tar();
    for level in [1, 6, 9] {
        let (gz_info, gz) = layer(&entries, &opts(Compression::Gzip { level }));
        assert_eq!(gz_info.diff_id, info.diff_id);
        assert_eq!(gz_info.tar_size, info.tar_size);
        // Header: magic, deflate, no flags, mtime 0, XFL from the level, OS 255.
        assert_eq!(&gz[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert_eq!(gz[9], 255);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(Digest::of(&plain), info.diff_id);
        assert_eq!(plain, tar);
    }
    for level in [1, 3, 19] {
        let (zinfo, zst) = layer(&entries, &opts(Compression::Zstd { level }));
        assert_eq!(zinfo.diff_id, info.diff_id);
        let plain = zstd::decode_all(&zst[..]).unwrap();
        assert_eq!(Digest::of(&plain), info.diff_id);
        assert_eq!(plain.len() as u64, zinfo.tar_size);
    }
    assert!(matches!(
        write_layer(&entries, &opts(Compression::Gzip { level: 10 }), Vec::new()),
        Err(Error::Usage(_))
    ));
    assert!(matches!(
        write_layer(&entries, &opts(Compression::Zstd { level: 99 }), Vec::new()),
        Err(Error::Usage(_))
    ));
}

#[test]
fn zstd_output_does_not_depend_on_worker_count() {
    let data: Vec<u8> = fixture::big_content().repeat(4);
    let compress = |workers: u32| {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.multithread(workers).unwrap();
        e.include_checksum(true).unwrap();
        for chunk in data.chunks(100_000) {
            e.write_all(chunk).unwrap();
        }
        e.finish().unwrap()
    };
    let one = compress(1);
    assert_eq!(one, compress(2));
    assert_eq!(one, compress(4));
}

#[test]
fn owner_and_mtime_come_from_the_options() {
    let (_tmp, _root, entries, _info, _tar) = fixture_tar();
    let o = LayerOptions {
        mtime: 42,
        uid: 1000,
        gid: 3_000_000, // over 7 octal digits: a PAX record
        compression: Compression::None,
        file_digests: false,
    };
    let (_, tar) = layer(&entries, &o);
    let mut archive = tar::Archive::new(&tar[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 42);
        assert_eq!(e.header().uid().unwrap(), 1000);
        let pax = e.pax_extensions().unwrap().unwrap();
        let gid = pax
            .map(|x| x.unwrap())
            .find(|x| x.key() == Ok("gid"))
            .map(|x| x.value().unwrap().to_string());
        assert_eq!(gid.as_deref(), Some("3000000"));
    }
}

fn changed_error(entries: &[Entry]) -> String {
    let err = write_layer(entries, &opts(Compression::Gzip { level: 1 }), Vec::new()).unwrap_err();
    assert!(matches!(err, Error::Input { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn a_file_changed_after_the_walk_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture::build(tmp.path());
    let big = root.join("big.bin");

    // Truncated: fewer bytes than walked.
    let entries = walk::walk(&root, "/").unwrap();
    fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let msg = changed_error(&entries);
    assert!(
        msg.contains(big.to_str().unwrap()) && msg.contains("changed while it was being read"),
        "{msg}"
    );

    // Grown.
    let entries = walk::walk(&root, "/").unwrap();
    fs::File::options()
        .append(true)
        .open(&big)
        .unwrap()
        .write_all(b"more")
        .unwrap();
    let msg = changed_error(&entries);
    assert!(
        msg.contains("changed while it was being read") && msg.contains("size"),
        "{msg}"
    );

    // Same size, rewritten.
    let entries = walk::walk(&root, "/").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&big, vec![7u8; 1004]).unwrap();
    assert!(changed_error(&entries).contains("changed while it was being read"));

    // Replaced by another file of the same size.
    let entries = walk::walk(&root, "/").unwrap();
    let other = tmp.path().join("other");
    fs::write(&other, vec![7u8; 1004]).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o644)).unwrap();
    fs::rename(&other, &big).unwrap();
    assert!(changed_error(&entries).contains("replaced"));

    // Replaced by a symlink: not followed.
    let entries = walk::walk(&root, "/").unwrap();
    fs::remove_file(&big).unwrap();
    std::os::unix::fs::symlink("empty", &big).unwrap();
    let msg = write_layer(&entries, &opts(Compression::None), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(msg.contains(big.to_str().unwrap()), "{msg}");
}

#[test]
fn empty_layer_is_two_zero_blocks() {
    let (info, tar) = layer(&[], &opts(Compression::None));
    assert_eq!(tar, vec![0; 1024]);
    assert_eq!(info.tar_size, 1024);
}

#[test]
fn sink_errors_are_reported() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let err = write_layer(&[], &opts(Compression::Gzip { level: 1 }), Full)
        .err()
        .unwrap();
    assert!(err.to_string().contains("disk full"), "{err}");
}

/// Not a test: `KILN_DUMP=/tmp/x cargo test --lib dump_fixture_layer -- --ignored` writes the fixture's layer
/// (tar, tar.gz, tar.zst) for inspection with other tools (umoci, skopeo, bsdtar, python's tarfile).
#[test]
#[ignore]
fn dump_fixture_layer() {
    let dir = PathBuf::from(std::env::var_os("KILN_DUMP").expect("KILN_DUMP"));
    let (_tmp, _root, entries, _info, tar) = fixture_tar();
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("layer.tar"), &tar).unwrap();
    let gz = layer(&entries, &opts(Compression::Gzip { level: 1 })).1;
    fs::write(dir.join("layer.tar.gz"), gz).unwrap();
    let zst = layer(&entries, &opts(Compression::Zstd { level: 3 })).1;
    fs::write(dir.join("layer.tar.zst"), zst).unwrap();
}

#[test]
fn a_sink_failing_mid_stream_stops_the_reader() {
    struct FailAfter(usize);
    impl Write for FailAfter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            // Slow: the reader fills every buffer and waits for one to come back.
            std::thread::sleep(std::time::Duration::from_millis(300));
            if self.0 < b.len() {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let big = fixture::big_content();
    for i in 0..6 {
        fs::write(tmp.path().join(format!("f{i}")), &big).unwrap();
    }
    let entries = walk::walk(tmp.path(), "/").unwrap();
    for c in [Compression::None, Compression::Gzip { level: 1 }] {
        let err = write_layer(&entries, &opts(c), FailAfter(10))
            .err()
            .unwrap();
        assert!(err.to_string().contains("disk full"), "{err}");
    }
}

/// The SBOM's per-file digests come from the bytes read for the tar: they equal each file's own, one per
/// regular file, in order, and asking for them changes no byte of the layer.
#[test]
fn per_file_digests_match_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixture::build(tmp.path());
    let entries = walk::walk(&root, "/app").unwrap();
    let plain = opts(Compression::Gzip { level: 1 });
    let with = LayerOptions {
        file_digests: true,
        ..plain.clone()
    };
    let (a, blob_a) = layer(&entries, &plain);
    let (b, blob_b) = layer(&entries, &with);
    assert_eq!(blob_a, blob_b);
    assert_eq!(a.diff_id, b.diff_id);
    assert!(a.files.is_empty());
    let files: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EntryKind::File { .. }))
        .map(|(i, _)| i)
        .collect();
    assert!(!files.is_empty());
    assert_eq!(b.files.iter().map(|f| f.0).collect::<Vec<_>>(), files);
    for (i, sha256, sha1) in &b.files {
        let body = std::fs::read(entries[*i].source.as_ref().unwrap()).unwrap();
        assert_eq!(Digest::from_sha256(*sha256), Digest::of(&body));
        use sha1::Digest as _;
        assert_eq!(*sha1, <[u8; 20]>::from(sha1::Sha1::digest(&body)));
    }
}
