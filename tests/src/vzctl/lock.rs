//! vzctl's container lock `LOCKDIR/<CTID>.lck` (VZCTL-CONTRACT.md): a pid
//! file created under a temporary name and published with `link()`, so it
//! appears atomically and complete. A lock whose pid is dead is stale and
//! removed; a live one means "locked" (exit 9). Three tries, as vzctl does.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Outcome of trying to take the lock.
#[derive(Debug)]
pub enum LockResult {
    Taken(CtLock),
    /// Held by this live pid.
    Locked(i32),
    Error(String),
}

/// A taken container lock; released by [`CtLock::release`] or on drop.
#[derive(Debug)]
pub struct CtLock {
    path: PathBuf,
    released: bool,
}

impl CtLock {
    pub fn release(mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.released = true;
    }
}

impl Drop for CtLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Path of the lock file of `veid` in `lockdir`.
pub fn lock_path(lockdir: &Path, veid: &str) -> PathBuf {
    lockdir.join(format!("{veid}.lck"))
}

fn lock_pid(path: &Path) -> Option<i32> {
    let s = std::fs::read_to_string(path).ok()?;
    Some(
        s.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
    )
}

/// Takes the lock of `veid`, writing `<pid>\n<status>\n` into it.
pub fn lock(lockdir: &Path, veid: &str, status: &str) -> LockResult {
    if let Err(e) = std::fs::create_dir_all(lockdir) {
        return LockResult::Error(format!(
            "Unable to create lock dir {}: {e}",
            lockdir.display()
        ));
    }
    let path = lock_path(lockdir, veid);
    let tmp = lockdir.join(format!("{veid}.lck{}", std::process::id()));
    let write = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(format!("{}\n{}\n", std::process::id(), status).as_bytes())
    })();
    if let Err(e) = write {
        return LockResult::Error(format!(
            "Unable to create temporary lock file {}: {e}",
            tmp.display()
        ));
    }
    let mut result = LockResult::Error(format!("Unable to lock container: {}", path.display()));
    for _ in 0..3 {
        if std::fs::hard_link(&tmp, &path).is_ok() {
            result = LockResult::Taken(CtLock {
                path: path.clone(),
                released: false,
            });
            break;
        }
        match lock_pid(&path) {
            None => std::thread::sleep(std::time::Duration::from_millis(500)),
            Some(0) => {
                let _ = std::fs::remove_file(&path);
            }
            Some(pid) => {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    result = LockResult::Locked(pid);
                    break;
                }
                println!("Removing stale lock file {}", path.display());
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    result
}
