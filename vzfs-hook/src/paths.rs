//! The container's private area as a mount point: created if missing (its
//! parent must exist), resolved canonically once, and opened as an `O_PATH`
//! directory handle (`O_DIRECTORY|O_NOFOLLOW`: on Linux < 2.6.39, which
//! ignores `O_PATH`, an ordinary read-only open of that directory, which is
//! just as safe). The canonical path is used for every mountinfo
//! comparison and for the unmount; the handle (`/proc/self/fd/N`) is what
//! mount(2) gets, so nothing swapped in after the check can redirect the
//! mount. A path that resolves inside another container's `VE_ROOT` or
//! `VE_PRIVATE` is refused: a symlink planted by a container must not
//! redirect a mount made by root on the host.
//!
//! What a private area may be, by rule ([`check_private_allowed`]): not `/`
//! or a system directory ([`SYSTEM_DIRS`], [`SYSTEM_TREES`]), not inside or
//! an ancestor of another container's area, not an ancestor of where
//! `vz.conf` puts every container's area (`VE_PRIVATE="/vz/private/"` with
//! the `$VEID` forgotten would hide every container). And by content
//! ([`check_empty`]): a mount onto a non-empty directory hides what is there.

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

/// What a path lookup finds at a path right now (through any mounts on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// Whether the path is the root of a mount; `None` when the kernel does
    /// not say (`STATX_ATTR_MOUNT_ROOT` is Linux 5.8+): then only mountinfo
    /// can tell.
    pub mount_root: Option<bool>,
    /// The device of the filesystem found there.
    pub dev: crate::mountinfo::DevNum,
}

/// Whether the kernel lacks statx (Linux < 4.11, e.g. OpenVZ 6's 2.6.32):
/// remembered after the first `ENOSYS`, so the fallback costs nothing more.
static NO_STATX: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `statx(path, AT_SYMLINK_NOFOLLOW)`: the filesystem and mount-root state
/// at `path` (a canonical path). A cheap answer to "is anything mounted
/// here, and what": the callers use mountinfo whenever it is not a clear no.
/// Without statx (Linux < 4.11) it is `lstat`: the device, and
/// `mount_root: None`, so the callers read mountinfo, as they do on a kernel
/// whose statx lacks `STATX_ATTR_MOUNT_ROOT`.
pub fn lookup(path: &Path) -> Result<Lookup> {
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::Ordering;
    if NO_STATX.load(Ordering::Relaxed) {
        return lookup_lstat(path);
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::refused(format!("{} holds a NUL byte", crate::text::path(path))))?;
    // SAFETY: statx fills the zeroed struct; `c` is a valid C string. The
    // raw system call: glibc's statx() wrapper is a weak symbol that a
    // static link may leave unresolved.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_TYPE,
            &mut stx as *mut libc::statx,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            NO_STATX.store(true, Ordering::Relaxed);
            return lookup_lstat(path);
        }
        return Err(Error::io("stat", path, e));
    }
    let known = stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
    Ok(Lookup {
        mount_root: known.then_some(stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0),
        dev: crate::mountinfo::DevNum {
            major: stx.stx_dev_major,
            minor: stx.stx_dev_minor,
        },
    })
}

/// [`lookup`] without statx: `lstat` names the device; whether `path` is a
/// mount root is left to mountinfo (`None`).
fn lookup_lstat(path: &Path) -> Result<Lookup> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
    Ok(Lookup {
        mount_root: None,
        dev: crate::mountinfo::DevNum::from_rdev(m.dev()),
    })
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

/// `path` resolved canonically (symlinks followed, no `.`/`..`), like
/// `std::fs::canonicalize`. A directory takes three system calls: the
/// kernel resolves the path once (`open(O_PATH|O_DIRECTORY)`) and names
/// what it found (`/proc/self/fd/N`), instead of a `readlink` per
/// component. Anything else (a device node, a FIFO) goes through
/// `std::fs::canonicalize`, which opens nothing: `O_DIRECTORY` makes the
/// kernel refuse a non-directory before opening it, also on Linux < 2.6.39,
/// which ignores `O_PATH` and would otherwise really open a device or block
/// on a FIFO. Falls back to `std::fs::canonicalize` without `/proc` too.
pub fn canonicalize(path: &Path) -> std::io::Result<PathBuf> {
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return std::fs::canonicalize(path),
        Err(e) => return Err(e),
    };
    match std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())) {
        Ok(p) if p.is_absolute() => Ok(p),
        _ => std::fs::canonicalize(path),
    }
}

/// Resolves `path` canonically, or `None` when it does not exist.
pub fn canonical_if_exists(path: &Path) -> Result<Option<PathBuf>> {
    match canonicalize(path) {
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
    let canon = canonicalize(path).map_err(|e| Error::io("resolve path", path, e))?;
    open_canonical(path, canon)
}

/// [`open_mount_point`] for a caller that has just resolved `path` to
/// `canon` itself: opens `canon` as an `O_PATH` directory handle and checks
/// the handle names exactly `canon` (a rename or symlink swapped in since
/// the resolution is refused, as in [`open_mount_point`]).
pub fn open_canonical(path: &Path, canon: PathBuf) -> Result<MountPoint> {
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

/// Directories that are never a private area themselves (a container
/// area may lie below some of them, e.g. `/var/lib/vz/private/101`).
pub const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
    "/var/cache",
    "/var/spool",
    "/var/run",
    "/var/lock",
    "/var/mail",
    "/var/opt",
    "/var/backups",
    "/var/local",
    "/vz",
];

/// Trees no private area may be anywhere in: the system itself.
pub const SYSTEM_TREES: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr",
];

/// (CTID, key, canonical path) of an area, shared with the node index
/// ([`crate::nodecache`]) without copying; the path has no `.` and no
/// repeated `/` ([`normal`]), so [`within`] compares it byte-wise.
pub type Area = (std::sync::Arc<str>, &'static str, std::sync::Arc<Path>);

/// `p` with its components as `Path::components` sees them (no `.`, no
/// repeated or trailing `/`; `..` kept): the form [`within`] compares.
pub fn normal(p: &Path) -> PathBuf {
    p.components().collect()
}

/// Whether `p` is `base` or below it, component-wise (`/vz/private/10` is
/// not below `/vz/private/1`), for two [`normal`] paths: a byte prefix
/// ending at a component boundary, without walking components.
pub fn within(p: &Path, base: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (p, b) = (p.as_os_str().as_bytes(), base.as_os_str().as_bytes());
    p.starts_with(b) && (p.len() == b.len() || b.ends_with(b"/") || p[b.len()] == b'/')
}

/// Where a container's areas are, for [`check_private_allowed`].
#[derive(Debug, Clone, Default)]
pub struct Areas {
    /// (CTID, key, canonical path): other containers' `VE_PRIVATE`/`VE_ROOT`,
    /// and this container's own `VE_ROOT`. A private area may be neither
    /// inside one nor an ancestor of one.
    pub areas: Vec<Area>,
    /// (key, directory): the fixed directory part of the `vz.conf`
    /// templates (`/vz/private` of `/vz/private/$VEID`). A private area may
    /// not be that directory or an ancestor of it.
    pub templates: Vec<(&'static str, PathBuf)>,
}

/// The fixed directory part of a `$VEID` template (`/vz/private/$VEID` ->
/// `/vz/private`, `/vz/ct-$VEID/private` -> `/vz`); `None` when it has no
/// `$VEID` or no absolute directory before it.
pub fn template_dir(template: &str) -> Option<PathBuf> {
    let pos = template.find('$')?;
    let prefix = &template[..pos];
    let dir = if prefix.ends_with('/') {
        Path::new(prefix).to_path_buf()
    } else {
        Path::new(prefix).parent()?.to_path_buf()
    };
    let dir = lexical(&dir);
    dir.is_absolute().then_some(dir)
}

/// Where `path` is or would be once created: its canonical form when it
/// exists, else its canonical parent joined with its name.
pub fn prospective(path: &Path) -> Result<PathBuf> {
    if let Some(c) = canonical_if_exists(path)? {
        return Ok(c);
    }
    let lex = lexical(path);
    match (lex.parent(), lex.file_name()) {
        (Some(parent), Some(name)) => Ok(canonical_if_exists(parent)?
            .unwrap_or_else(|| parent.to_path_buf())
            .join(name)),
        _ => Ok(lex),
    }
}

/// The rules of a private area (see the module docs), on `canon` (the
/// canonical, or [`prospective`], form of the configured path `configured`).
pub fn check_private_allowed(configured: &Path, canon: &Path, areas: &Areas) -> Result<()> {
    let shown = || {
        if canon == configured {
            crate::text::path(canon)
        } else {
            format!(
                "{} (resolves to {})",
                crate::text::path(configured),
                crate::text::path(canon)
            )
        }
    };
    if SYSTEM_DIRS.iter().any(|d| canon == Path::new(d)) {
        return Err(Error::refused(format!(
            "VE_PRIVATE {} is {}: a device mounted there would hide the system's own files. Set VE_PRIVATE to the container's own directory (e.g. VE_PRIVATE=\"/vz/private/$VEID\")",
            shown(),
            if canon == Path::new("/") { "the root directory" } else { "a system directory" }
        )));
    }
    if let Some(t) = SYSTEM_TREES.iter().find(|d| canon.starts_with(d)) {
        return Err(Error::refused(format!(
            "VE_PRIVATE {} is inside the system directory {t}, where no container area belongs; set VE_PRIVATE to the container's own directory (e.g. VE_PRIVATE=\"/vz/private/$VEID\")",
            shown()
        )));
    }
    check_not_inside(canon, configured, &areas.areas)?;
    let canon_n = normal(canon);
    for (ctid, key, area) in &areas.areas {
        if within(area, &canon_n) {
            return Err(Error::refused(format!(
                "VE_PRIVATE {} contains {key} of container {ctid} ({}): a device mounted there would hide that container's files. Check VE_PRIVATE (a '$VEID' forgotten?)",
                shown(),
                crate::text::path(area)
            )));
        }
    }
    for (key, dir) in &areas.templates {
        if dir.starts_with(canon) {
            return Err(Error::refused(format!(
                "VE_PRIVATE {} is where the global config puts every container's {key} ({}/...): a device mounted there would hide all of them. Check VE_PRIVATE (a '$VEID' forgotten?)",
                shown(),
                crate::text::path(dir)
            )));
        }
    }
    Ok(())
}

/// Refuses a mount point directory that is not empty, naming a few entries.
pub fn check_empty(mp: &MountPoint, device: &str) -> Result<()> {
    use nix::dir::Dir;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let mut dir = Dir::openat(
        &mp._handle,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("list directory", &mp.path, e.into()))?;
    const SHOW: usize = 5;
    const COUNT_MAX: usize = 10_000;
    let mut names = Vec::new();
    let mut count = 0usize;
    for ent in dir.iter() {
        let ent = ent.map_err(|e| Error::io("list directory", &mp.path, e.into()))?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        count += 1;
        if names.len() < SHOW {
            names.push(crate::text::escape(&String::from_utf8_lossy(name)));
        }
        if count >= COUNT_MAX {
            break;
        }
    }
    if count == 0 {
        return Ok(());
    }
    let more = if count > names.len() {
        format!(
            " and {}{} more",
            if count >= COUNT_MAX { "at least " } else { "" },
            count - names.len()
        )
    } else {
        String::new()
    };
    Err(Error::refused(format!(
        "VE_PRIVATE {} is not empty (it holds {}{more}): mounting {device} there would hide these files. If VE_PRIVATE is wrong, fix it; if the container ran while its device was not mounted, these are its newer files: copy them onto the device (mount it elsewhere), then empty {} and start again",
        crate::text::path(&mp.path),
        names.join(", "),
        crate::text::path(&mp.path)
    )))
}

/// Refuses `canon` when it lies inside (or is) one of `areas` (another
/// container's `VE_ROOT`/`VE_PRIVATE`, canonical), comparing components, not
/// string prefixes. `what` names the key being checked.
pub fn check_not_inside(canon: &Path, configured: &Path, areas: &[Area]) -> Result<()> {
    let canon_n = normal(canon);
    for (ctid, key, area) in areas {
        if within(&canon_n, area) {
            return Err(Error::refused(format!(
                "VE_PRIVATE {} resolves to {}, inside {} of container {} ({}); a symlink in the path may have been planted from inside a container. Fix the path (no symlinks into container areas) before mounting",
                crate::text::path(configured),
                crate::text::path(canon),
                key,
                ctid,
                crate::text::path(area)
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
    fn within_is_componentwise_bytewise() {
        let w = |a: &str, b: &str| within(&normal(Path::new(a)), &normal(Path::new(b)));
        assert!(w("/vz/private/10", "/vz/private/10"));
        assert!(w("/vz/private/10/x", "/vz/private/10"));
        assert!(!w("/vz/private/101", "/vz/private/10"));
        assert!(w("/vz", "/"));
        assert!(w("/vz//private/./10/", "/vz/private"));
        assert!(!w("/vz", "/vz/private"));
        for (a, b) in [
            ("/a/b", "/a"),
            ("/a", "/a/b"),
            ("/ab", "/a"),
            ("/a/../b", "/a"),
        ] {
            assert_eq!(w(a, b), Path::new(a).starts_with(b), "{a} {b}");
        }
    }

    #[test]
    fn inside_is_componentwise() {
        let areas: Vec<Area> = vec![(
            "10".into(),
            "VE_PRIVATE",
            Path::new("/vz/private/10").into(),
        )];
        assert!(check_not_inside(Path::new("/vz/private/101"), Path::new("/x"), &areas).is_ok());
        assert!(
            check_not_inside(Path::new("/vz/private/10/etc"), Path::new("/x"), &areas).is_err()
        );
        assert!(check_not_inside(Path::new("/vz/private/10"), Path::new("/x"), &areas).is_err());
    }

    #[test]
    fn templates_and_system_directories() {
        assert_eq!(
            template_dir("/vz/private/$VEID"),
            Some(PathBuf::from("/vz/private"))
        );
        assert_eq!(
            template_dir("/vz/ct-${VEID}/private"),
            Some(PathBuf::from("/vz"))
        );
        assert_eq!(template_dir("/vz/private/101"), None);
        let areas = Areas {
            areas: vec![(
                "102".into(),
                "VE_PRIVATE",
                Path::new("/srv/vz/p/102").into(),
            )],
            templates: vec![("VE_PRIVATE", PathBuf::from("/vz/private"))],
        };
        let ok = |p: &str| check_private_allowed(Path::new(p), Path::new(p), &areas);
        assert!(ok("/vz/private/101").is_ok());
        assert!(ok("/var/lib/vz/private/101").is_ok());
        for bad in [
            "/",
            "/etc",
            "/etc/vz/x",
            "/usr/lib/x",
            "/vz/private",
            "/vz",
            "/srv/vz",
            "/srv/vz/p/102/x",
            "/var/lib",
        ] {
            assert!(ok(bad).is_err(), "{bad} must be refused");
        }
        // Componentwise: /vz/private/10 is not an ancestor of /vz/private/101.
        let areas = Areas {
            areas: vec![(
                "101".into(),
                "VE_PRIVATE",
                Path::new("/vz/private/101").into(),
            )],
            templates: vec![],
        };
        assert!(check_private_allowed(
            Path::new("/vz/private/10"),
            Path::new("/vz/private/10"),
            &areas
        )
        .is_ok());
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
