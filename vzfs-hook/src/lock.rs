//! vzfs' own locks: `flock(2)` on files in `LOCKDIR`.
//!
//! - [`CtLock`], `LOCKDIR/vzfs-<CTID>.lck`: one vzfs operation at a time on a
//!   container. Never vzctl's `LOCKDIR/<CTID>.lck`: vzctl holds that one while
//!   it runs the hook, so taking it would deadlock.
//! - [`FsLock`], `LOCKDIR/vzfs-fs-<UUID>.lck` (or `vzfs-dev-<MAJ>-<MIN>.lck`
//!   for a filesystem without a UUID): one mount decision at a time on a
//!   *filesystem*, whichever container, device path or tool asks. It is held
//!   from the first mountinfo check until the mount is verified, so two
//!   containers whose `VE_DEVICE` name the same LUN (through one path or two)
//!   cannot both pass the checks and mount it twice.
//!
//! Lock order is fixed: the container lock first, then the filesystem lock.
//! `flock` is released by the kernel when the holder dies, so a `kill -9`
//! leaves no stale lock. Concurrent callers wait their turn (polling, so a
//! wedged holder turns into a clear error naming the lock file and its holder
//! instead of a hang).
//!
//! A lock file is opened without following a symlink and without
//! truncating; it must be a regular file with one link, owned by us (root),
//! before the pid is written into it: a symlink or hard link planted at its
//! path is refused with a message that says so, and its target is untouched.

use crate::device::FsInfo;
use crate::error::{Error, Result};
use crate::mountinfo::DevNum;
use crate::sys::Sys;
use nix::errno::Errno;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock file; dropping it closes the file, which releases the flock.
#[derive(Debug)]
pub struct HeldLock {
    pub path: PathBuf,
    _file: File,
}

/// The container lock.
pub type CtLock = HeldLock;
/// The filesystem lock.
pub type FsLock = HeldLock;

pub fn lock_path(lockdir: &Path, ctid: &str) -> PathBuf {
    lockdir.join(format!("vzfs-{ctid}.lck"))
}

/// The lock file of a filesystem: by UUID (the same on every path to the
/// LUN), else by the device's major:minor.
pub fn fs_lock_path(lockdir: &Path, fs: &FsInfo, dev: DevNum) -> PathBuf {
    match fs
        .uuid
        .as_deref()
        .filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    {
        Some(u) => lockdir.join(format!("vzfs-fs-{u}.lck")),
        None => lockdir.join(format!("vzfs-dev-{}-{}.lck", dev.major, dev.minor)),
    }
}

fn lock_err(path: &Path, op: &'static str, msg: String) -> Error {
    Error::Lock {
        path: path.to_path_buf(),
        op,
        source: std::io::Error::other(msg),
    }
}

/// Opens (creating if missing) a lock file safely: no symlink followed, no
/// truncation, and only a regular file with one link owned by us is used.
fn open_lock_file(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => lock_err(
                path,
                "open",
                "it is a symbolic link, which vzfs never follows for a lock file (it may have been planted to make root write elsewhere); remove the link".into(),
            ),
            _ => Error::Lock {
                path: path.to_path_buf(),
                op: "open",
                source: e,
            },
        })?;
    let m = file.metadata().map_err(|e| Error::Lock {
        path: path.to_path_buf(),
        op: "stat",
        source: e,
    })?;
    if !m.file_type().is_file() {
        return Err(lock_err(
            path,
            "check",
            "it is not a regular file; remove it (vzfs creates its lock files itself)".into(),
        ));
    }
    if m.nlink() != 1 {
        return Err(lock_err(
            path,
            "check",
            format!("it has {} hard links: another name points at the same file (maybe planted to make root overwrite it), so vzfs will not write to it; remove {} (the other names keep the file)", m.nlink(), crate::text::path(path)),
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != me {
        return Err(lock_err(
            path,
            "check",
            format!(
                "it is owned by uid {}, not by uid {me} (root); remove it",
                m.uid()
            ),
        ));
    }
    Ok(file)
}

impl HeldLock {
    /// Takes the container lock, waiting at most `timeout`.
    pub fn acquire(sys: &dyn Sys, lockdir: &Path, ctid: &str, timeout: Duration) -> Result<CtLock> {
        HeldLock::acquire_path(
            sys,
            lockdir,
            &lock_path(lockdir, ctid),
            "this container",
            timeout,
        )
    }

    /// Takes the filesystem lock of `fs` on device `dev`, waiting at most
    /// `timeout`. Take it after the container lock, never before.
    pub fn acquire_fs(
        sys: &dyn Sys,
        lockdir: &Path,
        fs: &FsInfo,
        dev: DevNum,
        timeout: Duration,
    ) -> Result<FsLock> {
        let path = fs_lock_path(lockdir, fs, dev);
        HeldLock::acquire_path(sys, lockdir, &path, "this filesystem", timeout)
    }

    fn acquire_path(
        sys: &dyn Sys,
        lockdir: &Path,
        path: &Path,
        what: &str,
        timeout: Duration,
    ) -> Result<HeldLock> {
        // LOCKDIR is created on first use only (one open in the usual case).
        let file = match open_lock_file(path) {
            Err(Error::Lock { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !lockdir.is_dir() =>
            {
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(lockdir)
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(Error::Lock {
                                path: lockdir.to_path_buf(),
                                op: "create lock directory (LOCKDIR)",
                                source: e,
                            })
                        }
                    })?;
                open_lock_file(path)?
            }
            r => r?,
        };
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match sys.flock_exclusive(file.as_fd(), false) {
                Ok(()) => break,
                Err(Errno::EWOULDBLOCK) | Err(Errno::EINTR) => {
                    if start.elapsed() >= timeout {
                        let mut holder = String::new();
                        let _ = std::io::Read::read_to_string(
                            &mut std::io::Read::take(&file, 32),
                            &mut holder,
                        );
                        return Err(lock_err(
                            path,
                            "wait for the lock",
                            format!(
                                "still held after {}s by pid {} (another vzfs operation on {what}); check that process",
                                timeout.as_secs(),
                                crate::text::escape(holder.trim())
                            ),
                        ));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(Error::Lock {
                        path: path.to_path_buf(),
                        op: "flock",
                        source: e.into(),
                    })
                }
            }
        }
        // Diagnostics only: who holds it. One pwrite of a fixed width (a pid
        // has at most 10 digits) replaces the previous holder's line.
        let _ = std::os::unix::fs::FileExt::write_all_at(
            &file,
            format!("{:<10}\n", std::process::id()).as_bytes(),
            0,
        );
        Ok(HeldLock {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, FakeSys, RealSys};

    #[test]
    fn waits_then_times_out_naming_the_file() {
        let d = std::env::temp_dir().join(format!("vzfs-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let first = CtLock::acquire(&RealSys, &d, "101", Duration::from_secs(1)).unwrap();
        let e = CtLock::acquire(&RealSys, &d, "101", Duration::from_millis(50)).unwrap_err();
        assert!(e.to_string().contains("vzfs-101.lck"), "{e}");
        // Another container is independent.
        CtLock::acquire(&RealSys, &d, "10", Duration::from_millis(50)).unwrap();
        drop(first);
        CtLock::acquire(&RealSys, &d, "101", Duration::from_millis(50)).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn planted_links_are_refused_and_left_alone() {
        let d = std::env::temp_dir().join(format!("vzfs-lock-plant-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let victim = d.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::fs::hard_link(&victim, lock_path(&d, "5")).unwrap();
        let e = CtLock::acquire(&RealSys, &d, "5", Duration::from_millis(50)).unwrap_err();
        assert!(e.to_string().contains("2 hard links"), "{e}");
        std::os::unix::fs::symlink(&victim, lock_path(&d, "6")).unwrap();
        let e = CtLock::acquire(&RealSys, &d, "6", Duration::from_millis(50)).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!e.to_string().contains("os error"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fs_lock_is_keyed_by_uuid_else_device() {
        let fs = |uuid: Option<&str>| FsInfo {
            fstype: "ext4".into(),
            uuid: uuid.map(str::to_string),
            label: None,
            ext: None,
            xfs_version: None,
        };
        let d = Path::new("/vz/lock");
        let dev = DevNum { major: 7, minor: 3 };
        assert_eq!(
            fs_lock_path(d, &fs(Some("0a1b-2c")), dev),
            PathBuf::from("/vz/lock/vzfs-fs-0a1b-2c.lck")
        );
        assert_eq!(
            fs_lock_path(d, &fs(None), dev),
            PathBuf::from("/vz/lock/vzfs-dev-7-3.lck")
        );
    }

    #[test]
    fn retries_while_busy_through_sys() {
        let d = std::env::temp_dir().join(format!("vzfs-lock-fake-{}", std::process::id()));
        let f = FakeSys::new("");
        f.flock_errors
            .borrow_mut()
            .extend([Errno::EWOULDBLOCK, Errno::EWOULDBLOCK]);
        CtLock::acquire(&f, &d, "7", Duration::from_secs(5)).unwrap();
        assert_eq!(f.calls(), vec![Call::Flock { wait: false }; 3]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
