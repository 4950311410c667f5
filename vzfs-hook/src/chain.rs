//! Running an admin's chained script from the hook (`vzfs-hook install
//! --chain` put it there, see [`crate::install`]).
//!
//! When vzctl starts the hook as `DIR/NAME` (`/etc/vz/conf/vps.premount`),
//! the chained script is `DIR/vzfs-chained/NAME`: it keeps its own file name,
//! so its `$0` still ends in `vps.premount`. It runs only when it is safe:
//! the directory is opened with `O_NOFOLLOW` and must be a directory owned
//! by root and not writable by group/others; the script is opened with
//! `O_NOFOLLOW` relative to it and must be a regular file owned by root, not
//! writable by group/others, executable, with one link. Anything else there
//! is an error (the hook then does nothing at all), never silently skipped.
//!
//! It is exec'd directly (no shell) with `argv = [its path]`, the hook's
//! environment unchanged (exactly vzctl's), stdin `/dev/null`, stdout/stderr
//! and cwd inherited, once per call. Order: premount runs it after our
//! premount succeeded (not at all when ours failed); postumount runs it
//! before ours. Its failure (non-zero exit, signal) is the hook's failure.

use crate::install::{unsafe_reason, InstallError, Result, CHAINED_DIR};
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn open_nofollow(dir: Option<&OwnedFd>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dirfd = dir
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .unwrap_or(libc::AT_FDCWD);
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The chained script for the hook started as `argv0`, if there is one; an
/// error when something is there that must not be run.
pub fn find(argv0: &Path) -> Result<Option<PathBuf>> {
    let Some(name) = argv0.file_name() else {
        return Ok(None);
    };
    let parent = match argv0.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = parent.join(CHAINED_DIR);
    let unsafe_at = |path: &Path, msg: String| InstallError::Unsafe {
        path: path.to_path_buf(),
        msg,
    };
    let dfd = match open_nofollow(None, &dir, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
            return Err(unsafe_at(&dir, "is a symlink or not a directory".into()))
        }
        Err(source) => {
            return Err(InstallError::Io {
                path: dir,
                op: "open",
                source,
            })
        }
    };
    let dmd = File::from(dfd.try_clone().map_err(|source| InstallError::Io {
        path: dir.clone(),
        op: "dup",
        source,
    })?)
    .metadata()
    .map_err(|source| InstallError::Io {
        path: dir.clone(),
        op: "fstat",
        source,
    })?;
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if dmd.uid() != nix::unistd::geteuid().as_raw() || dmd.permissions().mode() & 0o022 != 0 {
            return Err(unsafe_at(
                &dir,
                format!(
                    "directory owned by uid {} with mode {:04o}",
                    dmd.uid(),
                    dmd.permissions().mode() & 0o7777
                ),
            ));
        }
    }
    let script = dir.join(name);
    let fd = match open_nofollow(
        Some(&dfd),
        Path::new(name),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_at(&script, "is a symlink".into()))
        }
        Err(source) => {
            return Err(InstallError::Io {
                path: script,
                op: "open",
                source,
            })
        }
    };
    let md = File::from(fd)
        .metadata()
        .map_err(|source| InstallError::Io {
            path: script.clone(),
            op: "fstat",
            source,
        })?;
    if let Some(why) = unsafe_reason(&md) {
        return Err(unsafe_at(&script, why));
    }
    Ok(Some(script))
}

/// Runs the chained script once: exec'd directly, argv `[script]`, the
/// environment unchanged, stdin `/dev/null`.
pub fn run(script: &Path) -> Result<()> {
    // "Text file busy": the script is open for writing this very moment (an
    // admin saving it). exec failed, so it did not run: try again briefly.
    let mut tries = 0;
    let status = loop {
        match Command::new(script).stdin(Stdio::null()).status() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => {
                break r.map_err(|source| InstallError::Io {
                    path: script.to_path_buf(),
                    op: "execute",
                    source,
                })?
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => format!("failed ({status})"),
    };
    Err(InstallError::ChainFailed {
        path: script.to_path_buf(),
        how,
    })
}

/// What failed in a hook run with (possibly) a chained script.
#[derive(Debug)]
pub enum Failure<E> {
    Ours(E),
    Theirs(InstallError),
    /// postumount only: theirs failed, then ours failed too.
    Both(E, InstallError),
}

/// premount: `ours`, then the chained script only if ours succeeded.
pub fn run_premount<E>(
    chained: Option<&Path>,
    ours: impl FnOnce() -> std::result::Result<(), E>,
) -> std::result::Result<(), Failure<E>> {
    ours().map_err(Failure::Ours)?;
    match chained {
        Some(s) => run(s).map_err(Failure::Theirs),
        None => Ok(()),
    }
}

/// postumount: the chained script first (`VE_PRIVATE` still mounted), then
/// `ours`, which runs even when theirs failed (the unmount is the cleanup).
pub fn run_postumount<E>(
    chained: Option<&Path>,
    ours: impl FnOnce() -> std::result::Result<(), E>,
) -> std::result::Result<(), Failure<E>> {
    let theirs = chained.map(run).transpose();
    match (ours(), theirs) {
        (Ok(()), Ok(_)) => Ok(()),
        (Err(e), Ok(_)) => Err(Failure::Ours(e)),
        (Ok(()), Err(t)) => Err(Failure::Theirs(t)),
        (Err(e), Err(t)) => Err(Failure::Both(e, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn setup(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vzfs-chain-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join(CHAINED_DIR)).unwrap();
        fs::set_permissions(d.join(CHAINED_DIR), fs::Permissions::from_mode(0o700)).unwrap();
        d
    }
    /// The tests of this module write scripts and exec them: one at a time,
    /// so no test's fork inherits another's open script ("text file busy").
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn script(d: &Path, body: &str, mode: u32) -> PathBuf {
        let p = d.join(CHAINED_DIR).join("vps.premount");
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn none_without_dir_or_script() {
        let _s = serial();
        let d = setup("none");
        assert_eq!(find(&d.join("vps.premount")).unwrap(), None);
        assert_eq!(find(&d.join("nodir").join("vps.premount")).unwrap(), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn runs_and_reports_status() {
        let _s = serial();
        let d = setup("run");
        let p = script(&d, "#!/bin/sh\nexit 3\n", 0o755);
        assert_eq!(find(&d.join("vps.premount")).unwrap(), Some(p.clone()));
        let e = run(&p).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CHAINED_FAILED);
        assert!(e.to_string().contains("exited with status 3"), "{e}");
        let p = script(&d, "#!/bin/sh\nkill -TERM $$\n", 0o755);
        assert!(run(&p).unwrap_err().to_string().contains("signal 15"));
        let p = script(&d, "#!/bin/sh\nread x && exit 1\nexit 0\n", 0o755);
        run(&p).unwrap(); // stdin is /dev/null: read fails
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn order_and_failures() {
        let _s = serial();
        let d = setup("order");
        let log = d.join("log");
        let body = format!(
            "#!/bin/sh\necho theirs >> {}\n[ -e {}/fail ] && exit 4\nexit 0\n",
            log.display(),
            d.display()
        );
        let p = script(&d, &body, 0o755);
        let ours = |ok: bool| {
            let log = log.clone();
            move || {
                let mut s = fs::read_to_string(&log).unwrap_or_default();
                s.push_str("ours\n");
                fs::write(&log, s).unwrap();
                if ok {
                    Ok(())
                } else {
                    Err("ours failed")
                }
            }
        };
        let take = || {
            let s = fs::read_to_string(&log).unwrap_or_default();
            let _ = fs::remove_file(&log);
            s
        };
        run_premount(Some(&p), ours(true)).unwrap();
        assert_eq!(take(), "ours\ntheirs\n");
        assert!(matches!(
            run_premount(Some(&p), ours(false)),
            Err(Failure::Ours(_))
        ));
        assert_eq!(
            take(),
            "ours\n",
            "theirs must not run after our premount failed"
        );
        run_postumount(Some(&p), ours(true)).unwrap();
        assert_eq!(take(), "theirs\nours\n");
        run_premount(None, ours(true)).unwrap();
        assert_eq!(take(), "ours\n");
        fs::write(d.join("fail"), "").unwrap();
        assert!(matches!(
            run_premount(Some(&p), ours(true)),
            Err(Failure::Theirs(_))
        ));
        assert_eq!(take(), "ours\ntheirs\n");
        assert!(matches!(
            run_postumount(Some(&p), ours(true)),
            Err(Failure::Theirs(_))
        ));
        assert_eq!(take(), "theirs\nours\n", "ours runs after theirs failed");
        assert!(matches!(
            run_postumount(Some(&p), ours(false)),
            Err(Failure::Both(..))
        ));
        assert_eq!(take(), "theirs\nours\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_what_it_must_not_run() {
        let _s = serial();
        let d = setup("hostile");
        let argv0 = d.join("vps.premount");
        let p = script(&d, "#!/bin/sh\n", 0o757);
        assert!(find(&argv0).unwrap_err().to_string().contains("writable"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(find(&argv0)
            .unwrap_err()
            .to_string()
            .contains("not executable"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(&p, d.join("other")).unwrap();
        assert!(find(&argv0).unwrap_err().to_string().contains("hard links"));
        fs::remove_file(d.join("other")).unwrap();
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/bin/true", &p).unwrap();
        let e = find(&argv0).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::REFUSED);
        assert!(e.to_string().contains("is a symlink"), "{e}");
        fs::remove_file(&p).unwrap();
        fs::set_permissions(d.join(CHAINED_DIR), fs::Permissions::from_mode(0o777)).unwrap();
        script(&d, "#!/bin/sh\n", 0o755);
        assert!(find(&argv0)
            .unwrap_err()
            .to_string()
            .contains("directory owned"));
        fs::remove_dir_all(d.join(CHAINED_DIR)).unwrap();
        std::os::unix::fs::symlink("/tmp", d.join(CHAINED_DIR)).unwrap();
        assert!(find(&argv0)
            .unwrap_err()
            .to_string()
            .contains("symlink or not a directory"));
        fs::remove_dir_all(&d).unwrap();
    }
}
