//! Running vzctl's action scripts exactly as vzctl 4.x does
//! (VZCTL-CONTRACT.md, "Action scripts"): only if the file exists; argv is
//! `[script path]`; the environment is exactly `HOME=/ TERM=linux PATH=...
//! VEID=<id> VE_CONFFILE=/etc/vz/conf/<id>.conf PATH=...` (PATH twice, as
//! vzctl's `envp_bash` plus its own list give it); stdin is `/dev/null`
//! (opened write-only, as vzctl does); stdout/stderr are vzctl's; the fds
//! vzctl leaks (log file, /dev/null, a pipe) are leaked too; cwd is vzctl's;
//! umask 022. A non-zero exit or a death by signal is a failure.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Directory of the action scripts.
pub const SCRIPT_DIR: &str = "/etc/vz/conf";

/// vzctl's PATH for scripts.
pub const ENV_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a script run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRun {
    /// No such file: nothing ran.
    Absent,
    Ok,
    /// Exited non-zero.
    Failed(i32),
    /// Killed by a signal.
    Signaled(i32),
    /// Could not be started (fork failed) or not executable (exec failed: exit 1).
    SpawnError(String),
}

impl ScriptRun {
    pub fn failed(&self) -> bool {
        !matches!(self, ScriptRun::Absent | ScriptRun::Ok)
    }
}

/// The exact environment of an action script.
pub fn script_env(veid: &str) -> Vec<String> {
    vec![
        "HOME=/".into(),
        "TERM=linux".into(),
        ENV_PATH.into(),
        format!("VEID={veid}"),
        format!("VE_CONFFILE={SCRIPT_DIR}/{veid}.conf"),
        ENV_PATH.into(),
    ]
}

/// Runs one action script if it exists.
pub fn run_script(path: &Path, veid: &str) -> ScriptRun {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(_) => return ScriptRun::Absent,
    }
    let Ok(prog) = CString::new(path.as_os_str().as_bytes()) else {
        return ScriptRun::SpawnError("path has a NUL byte".into());
    };
    let env: Vec<CString> = script_env(veid)
        .into_iter()
        .map(|s| CString::new(s).unwrap())
        .collect();
    let argv = [prog.clone()];
    let devnull = CString::new("/dev/null").unwrap();
    // The double is single-threaded, so fork + execve is safe here.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            unsafe {
                let fd = libc::open(devnull.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    libc::close(0);
                } else {
                    libc::dup2(fd, 0);
                    // vzctl leaves this extra descriptor open as well.
                }
            }
            let _ = nix::unistd::execve(&prog, &argv, &env);
            eprintln!(
                "Error exec {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            unsafe { libc::_exit(1) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => loop {
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return ScriptRun::Ok,
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => return ScriptRun::Failed(c),
                Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => {
                    eprintln!("Received signal:  {} in {}", s as i32, path.display());
                    return ScriptRun::Signaled(s as i32);
                }
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return ScriptRun::SpawnError(format!("waitpid: {e}")),
            }
        },
        Err(e) => ScriptRun::SpawnError(format!("Unable to fork: {e}")),
    }
}

/// Descriptors vzctl leaks into scripts: its log file, `/dev/null` and a pipe.
/// Opened without close-on-exec; kept for the life of the process.
pub fn leak_vzctl_fds(logfile: Option<&Path>) -> Vec<i32> {
    let mut fds = Vec::new();
    unsafe {
        if let Some(l) = logfile {
            if let Ok(c) = CString::new(l.as_os_str().as_bytes()) {
                let fd = libc::open(
                    c.as_ptr(),
                    libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
                    0o644,
                );
                if fd >= 0 {
                    fds.push(fd);
                }
            }
        }
        let dn = CString::new("/dev/null").unwrap();
        let fd = libc::open(dn.as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            fds.push(fd);
        }
        let mut p = [0i32; 2];
        if libc::pipe(p.as_mut_ptr()) == 0 {
            fds.extend_from_slice(&p);
        }
    }
    fds
}

/// Marks the leaked descriptors close-on-exec (before starting a workload,
/// which must not keep them).
pub fn cloexec(fds: &[i32]) {
    for &fd in fds {
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}
