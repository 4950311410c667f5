//! vzctl's container lock, `LOCKDIR/<CTID>.lck`, taken exactly as vzctl 4.x
//! does (`vps_lock()` in src/lib/lock.c): a temporary file holding
//! `"<pid>\n<status>\n"` is created next to the lock and `link()`ed to the
//! lock name, which fails if the lock exists. A lock whose pid is not alive
//! is stale and is removed (vzctl does the same); an empty lock file is
//! broken and removed. The lock is held for the whole migration and
//! released explicitly by [`CtLock::release`], which checks that the file
//! still holds our pid.

use crate::error::{Error, Kind, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct CtLock {
    path: PathBuf,
    pid: u32,
    released: bool,
}

/// The pid recorded in a lock file: `Ok(None)` for an empty/broken file.
fn read_lock_pid(path: &Path) -> std::io::Result<Option<i32>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|p| *p > 0))
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl CtLock {
    pub fn path_for(lockdir: &Path, ctid: u32) -> PathBuf {
        lockdir.join(format!("{ctid}.lck"))
    }

    /// Take the lock of `ctid` in `lockdir` with `status` (vzctl writes the
    /// command name there, e.g. "migrating").
    pub fn acquire(lockdir: &Path, ctid: u32, status: &str) -> Result<CtLock> {
        let sys = |op: &str, p: &Path, e| Error::io(Kind::System, op, p, e);
        if !lockdir.is_dir() {
            std::fs::create_dir_all(lockdir)
                .map_err(|e| sys("cannot create lock directory", lockdir, e))?;
        }
        let path = Self::path_for(lockdir, ctid);
        let pid = std::process::id();
        let tmp = lockdir.join(format!("{ctid}.lck.vzfs-migrate.{pid}"));
        let _ = std::fs::remove_file(&tmp);
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(|e| sys("cannot create temporary lock file", &tmp, e))?;
            f.write_all(format!("{pid}\n{status}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| sys("cannot write temporary lock file", &tmp, e))?;
        }
        let mut result = Err(Error::check(
            Kind::Locked,
            format!("container {ctid} lock {}", path.display()),
            "could not be taken after 3 tries; check the file and remove it if no vzctl or vzmigrate is running",
        ));
        let mut retry = 0;
        while retry < 3 {
            match std::fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    result = Ok(CtLock {
                        path: path.clone(),
                        pid,
                        released: false,
                    });
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    result = Err(sys("cannot create lock file", &path, e));
                    break;
                }
            }
            match read_lock_pid(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {
                    retry += 1;
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
                Ok(None) => {
                    // broken (empty) lock file, as vzctl: remove and retry
                    let _ = std::fs::remove_file(&path);
                    retry += 1;
                }
                Ok(Some(p)) if pid_alive(p) => {
                    result = Err(Error::check(
                        Kind::Locked,
                        format!("container {ctid} is locked by pid {p} ({})", path.display()),
                        "another vzctl or migration is working on it; wait for it to finish",
                    ));
                    break;
                }
                Ok(Some(_)) => {
                    // stale lock of a dead process, as vzctl: remove and retry
                    let _ = std::fs::remove_file(&path);
                    retry += 1;
                }
            }
        }
        let _ = std::fs::remove_file(&tmp);
        result
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Release the lock; it must still hold our pid.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        match read_lock_pid(&self.path) {
            Ok(Some(p)) if p as u32 == self.pid => std::fs::remove_file(&self.path)
                .map_err(|e| Error::io(Kind::System, "cannot remove lock file", &self.path, e)),
            Ok(other) => Err(Error::check(
                Kind::System,
                format!("lock file {}", self.path.display()),
                format!(
                    "no longer holds our pid {} (holds {:?}); left it alone",
                    self.pid, other
                ),
            )),
            Err(e) => Err(Error::io(
                Kind::System,
                "cannot read lock file",
                &self.path,
                e,
            )),
        }
    }
}

impl Drop for CtLock {
    fn drop(&mut self) {
        // Releasing a pid file is safe on every path (it is not a mount);
        // only remove it if it is still ours.
        if !self.released {
            if let Ok(Some(p)) = read_lock_pid(&self.path) {
                if p as u32 == self.pid {
                    let _ = std::fs::remove_file(&self.path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vzfs-lock-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lock_format_and_exclusion() {
        let d = tmpdir("excl");
        let l = CtLock::acquire(&d, 101, "migrating").unwrap();
        let text = std::fs::read_to_string(d.join("101.lck")).unwrap();
        assert_eq!(text, format!("{}\nmigrating\n", std::process::id()));
        let e = CtLock::acquire(&d, 101, "migrating").unwrap_err();
        assert_eq!(e.exit_code(), 20);
        assert!(e.to_string().contains("locked by pid"), "{e}");
        // another CT is independent
        let l2 = CtLock::acquire(&d, 10, "migrating").unwrap();
        l2.release().unwrap();
        l.release().unwrap();
        assert!(!d.join("101.lck").exists());
        // no temp files left
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_and_broken_locks_are_replaced() {
        let d = tmpdir("stale");
        // pid 0x7ffffff0 is not alive
        std::fs::write(d.join("7.lck"), "2147483632\nstart\n").unwrap();
        let l = CtLock::acquire(&d, 7, "migrating").unwrap();
        l.release().unwrap();
        std::fs::write(d.join("7.lck"), "").unwrap();
        let l = CtLock::acquire(&d, 7, "migrating").unwrap();
        l.release().unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn release_leaves_foreign_lock() {
        let d = tmpdir("foreign");
        let l = CtLock::acquire(&d, 5, "migrating").unwrap();
        std::fs::write(d.join("5.lck"), "1\nother\n").unwrap();
        assert!(l.release().is_err());
        assert_eq!(
            std::fs::read_to_string(d.join("5.lck")).unwrap(),
            "1\nother\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
