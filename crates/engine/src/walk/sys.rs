//! The system calls of the walk, all relative to an open directory: resolving a full path for every entry (what
//! `std::fs::symlink_metadata(dir.join(name))` does) costs a lookup per component and was most of a warm build.
//! Through rustix: raw system calls on Linux, and its `statat` takes care of 32-bit targets (statx, or
//! fstatat64), where libc's plain `fstatat` would fail on large inode numbers and sizes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// What the walk needs of `lstat`.
pub(super) struct Stat {
    /// `st_mode`, type bits included.
    pub mode: u32,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// What an entry is.
pub(super) enum Kind {
    Dir,
    File,
    Symlink,
    /// Anything else, described for the error message.
    Other(&'static str),
}

pub(super) fn kind(mode: u32) -> Kind {
    match FileType::from_raw_mode(mode as _) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        FileType::Socket => Kind::Other("unix socket"),
        FileType::Fifo => Kind::Other("FIFO (named pipe)"),
        FileType::CharacterDevice => Kind::Other("character device"),
        FileType::BlockDevice => Kind::Other("block device"),
        _ => Kind::Other("special file"),
    }
}

/// What an `st_mode` is, for error messages.
pub(super) fn describe(mode: u32) -> &'static str {
    match kind(mode) {
        Kind::Dir => "directory",
        Kind::File => "regular file",
        Kind::Symlink => "symlink",
        Kind::Other(what) => what,
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Open the directory at `path`; `follow`: whether its last component may be a symlink (only for the root).
pub(super) fn open_dir(path: &Path, follow: bool) -> io::Result<OwnedFd> {
    let flags = if follow {
        dir_flags()
    } else {
        dir_flags() | OFlags::NOFOLLOW
    };
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

/// Open the directory `name` in `dir`, never following a symlink (one that replaced the directory since the
/// `lstat` fails with ELOOP).
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        dir_flags() | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

/// `lstat` of `name` in `dir`.
// The field types of `struct stat` differ between targets; the casts are no-ops on some of them.
#[allow(clippy::unnecessary_cast)]
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(Stat {
        mode: st.st_mode as u32,
        nlink: st.st_nlink as u64,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    })
}

/// The target of the symlink `name` in `dir`; `size` (its `st_size`) is the expected length (rustix retries
/// with a larger buffer if it was stale).
pub(super) fn readlink_at(dir: BorrowedFd<'_>, name: &CStr, size: u64) -> io::Result<Vec<u8>> {
    let buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    Ok(rustix::fs::readlinkat(dir, name, buf)?.into_bytes())
}

/// Call `f` with the name of every entry of `dir` (at `_path`) except `.` and `..`. `buf` is scratch space,
/// reused across directories. Linux: `getdents64` straight into `buf` (no `fstat` and `fcntl` as `fdopendir`
/// does, no copy of the names).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn read_names(
    dir: BorrowedFd<'_>,
    _path: impl FnOnce() -> PathBuf,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&CStr),
) -> io::Result<()> {
    buf.clear();
    let mut it = rustix::fs::RawDir::new(dir, buf.spare_capacity_mut());
    while let Some(e) = it.next() {
        let e = e?;
        let name = e.file_name();
        if !matches!(name.to_bytes(), b"." | b"..") {
            f(name);
        }
    }
    Ok(())
}

/// Call `f` with the name of every entry of `dir` (at `path`) except `.` and `..`: elsewhere than Linux, through
/// `std::fs::read_dir` on the path (the stats are still relative to `dir`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn read_names(
    _dir: BorrowedFd<'_>,
    path: impl FnOnce() -> PathBuf,
    _buf: &mut Vec<u8>,
    mut f: impl FnMut(&CStr),
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    for de in std::fs::read_dir(path())? {
        let name = std::ffi::CString::new(de?.file_name().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        f(&name);
    }
    Ok(())
}
