//! Correct images on real machines (issue 17): a damaged earlier blob is not copied from into a changed layer,
//! owner ids stay within what tar and chown(2) take, a full disk is an error (not a panic) that leaves no half
//! blob, and a permission error on a layout names the path and the OS error.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

/// Deterministic text-like bytes (words from a small vocabulary), so gzip deflates every block.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "export", "const", "function", "return", "value", "import", "from", "let", "await",
        "async", "=>", "{}",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 12) as usize].as_bytes());
        out.push(if x % 9 == 0 { b'\n' } else { b' ' });
        out.extend_from_slice(format!("{}", x % 1000).as_bytes());
    }
    out.truncate(len);
    out
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// Check the image tagged `tag` in `layout` as a consumer would: every blob's content has the digest it is named
/// by, and every gzip layer passes GNU `gzip -t` and `tar -tz` and decompresses to its diff_id. Returns the layer
/// digests.
fn verify_image(layout: &Path, tag: &str) -> Vec<String> {
    let index = read_json(&layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let blob = |digest: &str| -> PathBuf {
        let p = layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap());
        assert_eq!(
            sha256_digest(&fs::read(&p).unwrap()),
            digest,
            "{}",
            p.display()
        );
        p
    };
    let manifest = read_json(&blob(desc["digest"].as_str().unwrap()));
    let config = read_json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    let mut digests = Vec::new();
    for (l, diff_id) in layers.iter().zip(diff_ids) {
        let digest = l["digest"].as_str().unwrap();
        let p = blob(digest);
        assert!(l["mediaType"].as_str().unwrap().ends_with("+gzip"), "{l}");
        tool_ok("gzip", &["-t", p.to_str().unwrap()]);
        tool_ok("tar", &["-tzf", p.to_str().unwrap()]);
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(fs::File::open(&p).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(&sha256_digest(&tar), diff_id, "diff_id of {digest}");
        digests.push(digest.to_string());
    }
    digests
}

#[test]
fn a_damaged_earlier_blob_is_not_copied_into_a_changed_layer() {
    require_tool("gzip", "gzip");
    let t = tempdir();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // ~3 MiB of text in one layer: about a dozen gzip blocks.
    for i in 0..200u64 {
        fs::write(src.join(format!("f{i:03}.js")), text(i, 15_000)).unwrap();
    }
    let layout = t.path().join("layout");
    let cache = t.path().join("cache");
    let build = |tag: &str, extra: &[&str]| -> Output {
        let to = format!("oci:{}:{tag}", layout.display());
        let mut args = vec![
            "build",
            src.to_str().unwrap(),
            "--to",
            &to,
            "--split",
            "off",
        ];
        args.extend_from_slice(&[
            "--progress",
            "plain",
            "-v",
            "--cache",
            cache.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        let out = kiln_out(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    build("v1", &[]);
    let [old] = verify_image(&layout, "v1").try_into().unwrap();

    // One byte flipped a third into the blob (its size unchanged: the cache's size check passes), in a block
    // that the rebuild would copy: the change below is in the last file.
    let old_path = layout
        .join("blobs/sha256")
        .join(old.strip_prefix("sha256:").unwrap());
    let mut bytes = fs::read(&old_path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x10;
    fs::write(&old_path, &bytes).unwrap();
    let f = src.join("f199.js");
    let mut body = fs::read(&f).unwrap();
    body.extend_from_slice(b"\nexport const changed = 1;\n");
    fs::remove_file(&f).unwrap();
    fs::write(&f, &body).unwrap();

    let out = build("v2", &[]);
    let [new] = verify_image(&layout, "v2").try_into().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Blocks were still copied (the intact ones), the damaged one compressed again, said at -v.
    assert!(
        err.contains("compressed blocks copied from its last build"),
        "{err}"
    );
    assert!(err.contains("damaged on disk (CRC mismatch)"), "{err}");
    assert_ne!(new, old);
    // And the layer is exactly what a build from scratch gives.
    let fresh = t.path().join("fresh");
    let to = format!("oci:{}:v2", fresh.display());
    kiln_ok(&[
        "build",
        src.to_str().unwrap(),
        "--to",
        &to,
        "--split",
        "off",
        "--no-cache",
    ]);
    assert_eq!(verify_image(&fresh, "v2"), vec![new]);
}

// ---- a full disk ----------------------------------------------------------------------------------------------

/// A tmpfs of `size` bytes mounted on a fresh directory, unmounted on drop. `None` (with a loud message) only
/// when not root and not in CI: root (as CI runs) must be able to mount one, and the test fails if it cannot.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: u64) -> Option<Tmpfs> {
        let dir = tempdir();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        if out.status.success() {
            return Some(Tmpfs { dir });
        }
        let why = String::from_utf8_lossy(&out.stderr);
        if is_root() || std::env::var_os("CI").is_some() {
            panic!(
                "cannot mount a tmpfs for the disk-full test (as root, or in CI, this must work): {why}"
            );
        }
        eprintln!(
            "SKIPPED: the disk-full test needs to mount a small tmpfs, which needs root ({why}); run the \
             tests as root (CI does) to cover it"
        );
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn avail(&self) -> u64 {
        let out = tool_ok(
            "df",
            &["-B1", "--output=avail", self.path().to_str().unwrap()],
        );
        out.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Fill the filesystem with a file of zeros until `room` bytes (a multiple of the page size) are left.
    fn leave(&self, room: u64) {
        let filler = self.path().join("filler");
        let _ = fs::remove_file(&filler);
        let avail = self.avail();
        assert!(avail >= room, "{avail} < {room}");
        fs::write(&filler, vec![0u8; (avail - room) as usize]).unwrap();
        assert_eq!(self.avail(), room);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn is_root() -> bool {
    tool_ok("id", &["-u"]).trim() == "0"
}

const PAGE: u64 = 4096;

#[test]
fn a_full_disk_is_an_error_naming_the_layout_and_leaves_no_half_blob() {
    let Some(fs_) = Tmpfs::mount(4 << 20) else {
        return;
    };
    let t = tempdir();
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // Random bytes, stored by gzip: the layer blob is about 300 KB (more than a blob writer's buffer).
    let mut random = Vec::new();
    fs::File::open("/dev/urandom")
        .unwrap()
        .take(300_000)
        .read_to_end(&mut random)
        .unwrap();
    fs::write(src.join("data.bin"), &random).unwrap();
    let layout = fs_.path().join("layout");
    let build = || {
        let to = format!("oci:{}:v1", layout.display());
        kiln_out(&[
            "build",
            src.to_str().unwrap(),
            "--to",
            &to,
            "--split",
            "off",
            "--no-cache",
            "--progress",
            "plain",
        ])
    };
    // The blob's size, from a build with room to spare.
    fs_.leave(fs_.avail());
    let out = build();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let [layer] = verify_image(&layout, "v1").try_into().unwrap();
    let blob_len = fs::metadata(layout.join("blobs/sha256").join(&layer[7..]))
        .unwrap()
        .len();
    let layer_pages = blob_len.div_ceil(PAGE);
    fs::remove_dir_all(&layout).unwrap();

    // Room for nothing, for part of the layer, then for the layer and the oci-layout file but not (all of) the
    // config, manifest and index.json, a page more each time, until the build fits.
    let mut rooms = vec![0, layer_pages / 2 * PAGE];
    rooms.extend((1..=6).map(|extra| (layer_pages + extra) * PAGE));
    let (mut failed_after_layer, mut fitted) = (false, false);
    for room in rooms {
        fs_.leave(room);
        let out = build();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            fitted = true;
            verify_image(&layout, "v1");
        } else {
            assert_eq!(out.status.code(), Some(1), "room {room}:\n{err}");
            assert!(
                err.contains(&layout.display().to_string())
                    && err.contains(": No space left on device (os error 28)"),
                "room {room}: the error names the layout and the cause:\n{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            failed_after_layer |= err.contains(" of tar -> ");
            // No half blob: whatever is left in the layout is whole, and no temp file is left beside it.
            if let Ok(blobs) = fs::read_dir(layout.join("blobs/sha256")) {
                for b in blobs {
                    let b = b.unwrap();
                    let name = b.file_name().into_string().unwrap();
                    assert_eq!(
                        sha256_hex(&fs::read(b.path()).unwrap()),
                        name,
                        "room {room}"
                    );
                }
            }
            if let Ok(top) = fs::read_dir(&layout) {
                for e in top {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    assert!(
                        ["oci-layout", "blobs", "index.json"].contains(&name.as_str()),
                        "room {room}: {name} left in the layout"
                    );
                }
            }
        }
        let _ = fs::remove_dir_all(&layout);
        if fitted {
            break;
        }
    }
    assert!(
        failed_after_layer,
        "no level failed after the layer was written"
    );
    assert!(fitted, "the build never fitted: the levels are off");
}

// ---- owner ids --------------------------------------------------------------------------------------------------

#[test]
fn chown_ids_above_4294967294_are_usage_errors_everywhere() {
    let t = tempdir();
    let src = fixture_tree();
    let layout = t.path().join("layout");
    let to = format!("oci:{}:v1", layout.display());
    let s = src.path().to_str().unwrap();
    let layer = format!("{s}:/extra");

    // The largest id: accepted, and GNU tar reads it back.
    let max = "4294967294:4294967294";
    kiln_ok(&["build", s, "--to", &to, "--no-cache", "--chown", max]);
    let [l] = verify_image(&layout, "v1").try_into().unwrap();
    let listing = tool_ok(
        "tar",
        &[
            "--numeric-owner",
            "-tvzf",
            layout.join("blobs/sha256").join(&l[7..]).to_str().unwrap(),
        ],
    );
    assert!(listing.contains("4294967294/4294967294"), "{listing}");

    for bad in [
        "4294967295:0",
        "0:4294967295",
        "4294967296:0",
        "0:4294967296",
    ] {
        let flag = kiln_out(&["build", s, "--to", &to, "--no-cache", "--chown", bad]);
        let err = String::from_utf8_lossy(&flag.stderr);
        assert_eq!(flag.status.code(), Some(2), "--chown {bad}: {err}");
        assert!(err.contains("4294967294"), "says the limit: {err}");

        let spec = format!("{layer},chown={bad}");
        let out = kiln_out(&["build", s, "--to", &to, "--no-cache", "--layer", &spec]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--layer {spec}: {err}");

        for toml in [
            format!("dir = {s:?}\nchown = {bad:?}\n"),
            format!("dir = {s:?}\n[[layer]]\nsrc = {s:?}\ndest = \"/x\"\nchown = {bad:?}\n"),
        ] {
            let d = tempdir();
            fs::write(d.path().join("kiln.toml"), &toml).unwrap();
            let out = kiln()
                .current_dir(d.path())
                .args(["build", "--to", &to, "--no-cache"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{toml}: {err}");
            assert!(err.contains("kiln.toml:"), "{err}");
        }
    }
    // The same largest id in kiln.toml and --layer is fine.
    let d = tempdir();
    let toml = format!(
        "dir = {s:?}\nchown = {max:?}\n[[layer]]\nsrc = {s:?}\ndest = \"/x\"\nchown = {max:?}\n"
    );
    fs::write(d.path().join("kiln.toml"), toml).unwrap();
    let out = kiln()
        .current_dir(d.path())
        .args([
            "build",
            "--to",
            &format!("oci:{}:v2", layout.display()),
            "--no-cache",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify_image(&layout, "v2");
}

// ---- permissions ------------------------------------------------------------------------------------------------

/// kiln as a user that permissions apply to: `nobody` (via setpriv) when the tests run as root, who ignores
/// them; else the current user. Its home is `home`.
fn kiln_unprivileged(home: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        require_tool("setpriv", "util-linux");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(env!("CARGO_BIN_EXE_kiln"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
    };
    isolate_env(&mut cmd, home);
    cmd.env("SOURCE_DATE_EPOCH", "0");
    cmd.args(args).output().unwrap()
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_layout_that_cannot_be_written_or_read_names_the_path_and_the_os_error() {
    let t = tempdir();
    chmod(t.path(), 0o755);
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    isolate_env(&mut Command::new("true"), &home);
    let root = is_root();
    let to_nobody = |p: &Path| {
        if root {
            tool_ok("chown", &["-R", "65534:65534", p.to_str().unwrap()]);
        }
    };
    to_nobody(&home);
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), "a\n").unwrap();
    chmod(&src, 0o755);
    chmod(&src.join("a.txt"), 0o644);
    let s = src.to_str().unwrap();
    // Layouts with one image, made by the test's user (so writable by kiln's only where handed over).
    let layout = |name: &str| {
        let l = t.path().join(name);
        kiln_ok(&[
            "build",
            s,
            "--to",
            &format!("oci:{}:v1", l.display()),
            "--no-cache",
        ]);
        l
    };
    let expect = |out: Output, path: &Path, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&format!(
                "{}: Permission denied (os error 13)",
                path.display()
            )),
            "{what}: the error names {} and the cause:\n{err}",
            path.display()
        );
    };

    // A layout directory kiln may not write to.
    let ro = layout("ro");
    chmod(&ro, 0o555);
    let to = format!("oci:{}:v2", ro.display());
    let out = kiln_unprivileged(&home, &["build", s, "--to", &to, "--no-cache"]);
    expect(out, &ro, "unwritable layout");

    // A layout kiln may write to, but not its blobs directory.
    let blobs_ro = layout("blobs-ro");
    to_nobody(&blobs_ro);
    let blobs = blobs_ro.join("blobs/sha256");
    if root {
        tool_ok("chown", &["0:0", blobs.to_str().unwrap()]);
    }
    chmod(&blobs, 0o555);
    let to = format!("oci:{}:v2", blobs_ro.display());
    let out = kiln_unprivileged(&home, &["build", s, "--to", &to, "--no-cache"]);
    expect(out, &blobs, "unwritable blobs directory");
    chmod(&blobs, 0o755);

    // A layout kiln may not read: inspect names the file it could not look at.
    let hidden = layout("hidden");
    chmod(&hidden, 0o000);
    let out = kiln_unprivileged(&home, &["inspect", &format!("oci:{}:v1", hidden.display())]);
    chmod(&hidden, 0o755);
    expect(out, &hidden.join("oci-layout"), "unreadable layout");

    // A layout whose blobs directory kiln may not read.
    let closed = layout("closed");
    chmod(&closed.join("blobs"), 0o000);
    let out = kiln_unprivileged(&home, &["inspect", &format!("oci:{}:v1", closed.display())]);
    chmod(&closed.join("blobs"), 0o755);
    expect(
        out,
        &closed.join("blobs/sha256"),
        "unreadable blobs directory",
    );
}
