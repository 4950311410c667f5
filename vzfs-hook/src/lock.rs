//! The hook's own per-container lock: `flock(2)` on `LOCKDIR/vzfs-<CTID>.lck`.
//!
//! Never vzctl's `LOCKDIR/<CTID>.lck`: vzctl holds that one while it runs the
//! hook, so taking it would deadlock. `flock` is released by the kernel when
//! the holder dies, so a `kill -9` leaves no stale lock. Concurrent callers
//! wait their turn (polling, so a wedged holder turns into a clear error
//! naming the lock file and its holder instead of a hang).

use crate::error::{Error, Result};
use crate::sys::Sys;
use nix::errno::Errno;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; dropping it closes the file, which releases the flock.
#[derive(Debug)]
pub struct CtLock {
    pub path: PathBuf,
    _file: File,
}

pub fn lock_path(lockdir: &Path, ctid: &str) -> PathBuf {
    lockdir.join(format!("vzfs-{ctid}.lck"))
}

impl CtLock {
    /// Takes the lock, waiting at most `timeout`.
    pub fn acquire(sys: &dyn Sys, lockdir: &Path, ctid: &str, timeout: Duration) -> Result<CtLock> {
        if !lockdir.is_dir() {
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
        }
        let path = lock_path(lockdir, ctid);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::Lock {
                path: path.clone(),
                op: "open",
                source: e,
            })?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match sys.flock_exclusive(file.as_fd(), false) {
                Ok(()) => break,
                Err(Errno::EWOULDBLOCK) | Err(Errno::EINTR) => {
                    if start.elapsed() >= timeout {
                        let holder = std::fs::read_to_string(&path).unwrap_or_default();
                        return Err(Error::Lock {
                            path: path.clone(),
                            op: "wait for the lock",
                            source: std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!(
                                    "still held after {}s by pid {} (another vzfs operation on this container); check that process",
                                    timeout.as_secs(),
                                    holder.trim()
                                ),
                            ),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(Error::Lock {
                        path: path.clone(),
                        op: "flock",
                        source: e.into(),
                    })
                }
            }
        }
        // Diagnostics only: who holds it.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(CtLock { path, _file: file })
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
