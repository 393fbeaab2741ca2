//! Replacing a file atomically, the one way kiln does it: readers (another kiln, `docker load`, a CI step reading
//! `--ref-file`, the docker CLI reading `config.json`) see the old file or the new one, never a part.
//!
//! The new content goes to a temp file in the destination's own directory (a rename is only atomic within one
//! file system) under a unique name (`tempfile`'s random suffix: two writers of one path, in one process or two,
//! never share a temp file), which is renamed over the destination when complete. The temp file is removed on
//! any error, and on a panic (it is deleted when dropped unless it was renamed).

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The permission bits the new file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// What `File::create` gives: 0666 less the umask.
    Umask,
    /// These bits (less the umask, as with `open`): 0o600 for a file holding secrets.
    Bits(u32),
    /// The bits of the file being replaced (a file someone made executable or private stays so); a new file is
    /// [`Mode::Umask`].
    KeepExisting,
}

/// How [`write_atomic`] writes: each caller says what it needs, see the field docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub mode: Mode,
    /// `fsync` the file before the rename, so after a crash the destination holds the old or the new content
    /// rather than a renamed but empty file. Costs a disk flush: worth it for files a user or another tool relies
    /// on, not for cache records whose loss only costs work.
    pub sync: bool,
    /// When the destination is a symlink, replace the file it points at (even a dangling one) instead of the
    /// link: dotfile managers keep `~/.docker/config.json` or a values file as a link into their own repository.
    /// Without this, the link itself is replaced by a regular file.
    pub follow_symlinks: bool,
    /// Whether an existing destination is replaced. Without it the file is linked into place, which fails with
    /// [`io::ErrorKind::AlreadyExists`] (as `Error::Io`) if the path appeared meanwhile: a rename would clobber it.
    pub replace: bool,
}

impl WriteOptions {
    /// A plain replace: umask permissions, no fsync, the link itself replaced, existing file replaced.
    pub const fn new() -> Self {
        WriteOptions {
            mode: Mode::Umask,
            sync: false,
            follow_symlinks: false,
            replace: true,
        }
    }

    pub const fn mode(self, mode: Mode) -> Self {
        WriteOptions { mode, ..self }
    }

    pub const fn sync(self, sync: bool) -> Self {
        WriteOptions { sync, ..self }
    }

    pub const fn follow_symlinks(self, follow: bool) -> Self {
        WriteOptions {
            follow_symlinks: follow,
            ..self
        }
    }

    pub const fn replace(self, replace: bool) -> Self {
        WriteOptions { replace, ..self }
    }
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Replace `path`'s content with `bytes` atomically (see the module docs); errors name `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], opts: WriteOptions) -> Result<()> {
    write_atomic_with(path, opts, |f, _| {
        f.write_all(bytes).map_err(|e| Error::io(path, e))
    })
}

/// [`write_atomic`] for content streamed by `fill`, which gets the temp file and its path (for its own errors);
/// an error from `fill` is returned as it is, after the temp file is removed. Other errors name `path`.
pub fn write_atomic_with<F>(path: &Path, opts: WriteOptions, fill: F) -> Result<()>
where
    F: FnOnce(&mut File, &Path) -> Result<()>,
{
    let at = |e: io::Error| Error::io(path, e);
    let dest = if opts.follow_symlinks {
        resolve_symlinks(path).map_err(at)?
    } else {
        path.to_path_buf()
    };
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let keep = match opts.mode {
        Mode::KeepExisting => match fs::metadata(&dest) {
            Ok(m) => Some(m.permissions()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(at(e)),
        },
        _ => None,
    };
    let bits = match opts.mode {
        Mode::Bits(b) => b,
        Mode::Umask | Mode::KeepExisting => 0o666,
    };
    // A dot name, so directory listings and globs (`*.json`) pass over a temp file in flight.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.kiln-"))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(bits))
        .tempfile_in(dir)
        .map_err(at)?;
    let tmp_path = tmp.path().to_path_buf();
    fill(tmp.as_file_mut(), &tmp_path)?;
    if let Some(p) = keep {
        // Set on the open file before the rename: the file never appears with other bits.
        tmp.as_file().set_permissions(p).map_err(at)?;
    }
    if opts.sync {
        tmp.as_file().sync_all().map_err(at)?;
    }
    let persisted = if opts.replace {
        tmp.persist(&dest).map(drop)
    } else {
        tmp.persist_noclobber(&dest).map(drop)
    };
    // On failure the error gives the temp file back; dropping it removes it.
    persisted.map_err(|e| at(e.error))
}

/// `path` with every symlink in its last component followed (at most 40, like the kernel's limit); a dangling
/// link gives the path it points at, which the write then creates.
fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

#[cfg(test)]
mod tests;
