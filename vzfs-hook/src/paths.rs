//! The container's private area as a mount point: created if missing (its
//! parent must exist), resolved canonically once, and opened as an `O_PATH`
//! directory handle. The canonical path is used for every mountinfo
//! comparison and for the unmount; the handle (`/proc/self/fd/N`) is what
//! mount(2) gets, so nothing swapped in after the check can redirect the
//! mount. A path that resolves inside another container's `VE_ROOT` or
//! `VE_PRIVATE` is refused: a symlink planted by a container must not
//! redirect a mount made by root on the host.

use crate::error::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// An opened, verified mount point.
#[derive(Debug)]
pub struct MountPoint {
    /// The canonical path (no symlinks, no `.`/`..`).
    pub path: PathBuf,
    /// Keeps the directory open, so `fd_path` names it until the mount is done.
    _handle: File,
    fd_path: PathBuf,
}

impl MountPoint {
    /// `/proc/self/fd/N` naming the directory that was checked.
    pub fn fd_path(&self) -> &Path {
        &self.fd_path
    }

    /// Whether the handle still names the canonical path (nothing was
    /// renamed or swapped in since it was opened).
    pub fn still_at_path(&self) -> bool {
        std::fs::read_link(&self.fd_path)
            .map(|p| p == self.path)
            .unwrap_or(false)
    }
}

/// Normalises `p` lexically (no filesystem access): removes `.`, resolves `..`.
pub fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolves `path` canonically, or `None` when it does not exist.
pub fn canonical_if_exists(path: &Path) -> Result<Option<PathBuf>> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("resolve path", path, e)),
    }
}

/// Creates `path` (mode 0700) if it is missing; its parent must exist.
/// Returns whether it was created.
pub fn ensure_dir(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            if !parent.exists() {
                return Err(Error::refused(format!(
                    "VE_PRIVATE {}: its parent {} does not exist; create it (or fix VE_PRIVATE) first",
                    path.display(),
                    parent.display()
                )));
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(|e| Error::io("create directory", path, e))?;
            Ok(true)
        }
        Err(e) => Err(Error::io("stat", path, e)),
    }
}

/// Opens the canonical form of `path` as an `O_PATH` directory handle and
/// checks the handle names exactly that canonical path.
pub fn open_mount_point(path: &Path) -> Result<MountPoint> {
    let canon = std::fs::canonicalize(path).map_err(|e| Error::io("resolve path", path, e))?;
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&canon)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTDIR) || e.raw_os_error() == Some(libc::ELOOP) {
                Error::refused(format!(
                    "{} (from {}) is not a directory; VE_PRIVATE must be a directory",
                    canon.display(),
                    path.display()
                ))
            } else {
                Error::io("open directory", &canon, e)
            }
        })?;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let mp = MountPoint {
        path: canon,
        _handle: handle,
        fd_path,
    };
    if !mp.still_at_path() {
        return Err(Error::refused(format!(
            "{} changed while it was being opened (a symlink or rename race); refusing to mount, check who modifies it",
            mp.path.display()
        )));
    }
    Ok(mp)
}

/// Refuses `canon` when it lies inside (or is) one of `areas` (another
/// container's `VE_ROOT`/`VE_PRIVATE`, canonical), comparing components, not
/// string prefixes. `what` names the key being checked.
pub fn check_not_inside(
    canon: &Path,
    configured: &Path,
    areas: &[(String, &'static str, PathBuf)],
) -> Result<()> {
    for (ctid, key, area) in areas {
        if canon.starts_with(area) {
            return Err(Error::refused(format!(
                "VE_PRIVATE {} resolves to {}, inside {} of container {} ({}); a symlink in the path may have been planted from inside a container. Fix the path (no symlinks into container areas) before mounting",
                configured.display(),
                canon.display(),
                key,
                ctid,
                area.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            lexical(Path::new("/vz/./private/../private/101/")),
            PathBuf::from("/vz/private/101")
        );
    }

    #[test]
    fn inside_is_componentwise() {
        let areas = vec![(
            "10".to_string(),
            "VE_PRIVATE",
            PathBuf::from("/vz/private/10"),
        )];
        assert!(check_not_inside(Path::new("/vz/private/101"), Path::new("/x"), &areas).is_ok());
        assert!(
            check_not_inside(Path::new("/vz/private/10/etc"), Path::new("/x"), &areas).is_err()
        );
        assert!(check_not_inside(Path::new("/vz/private/10"), Path::new("/x"), &areas).is_err());
    }

    #[test]
    fn mount_point_handle_follows_symlinks_once() {
        let d = std::env::temp_dir().join(format!("vzfs-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("real/private")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("vz")).unwrap();
        let mp = open_mount_point(&d.join("vz/private")).unwrap();
        assert_eq!(
            mp.path,
            std::fs::canonicalize(d.join("real/private")).unwrap()
        );
        assert!(mp.still_at_path());
        std::fs::rename(d.join("real/private"), d.join("real/moved")).unwrap();
        assert!(!mp.still_at_path());
        assert!(ensure_dir(&d.join("nope/deeper")).is_err());
        assert!(ensure_dir(&d.join("real/new")).unwrap());
        assert!(!ensure_dir(&d.join("real/new")).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
