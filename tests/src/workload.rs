//! The "running container": a small process that keeps its cwd in `VE_ROOT`
//! (so `VE_ROOT` cannot be unmounted under it: EBUSY) and appends a sequence
//! number to [`LOG_PATH`] inside the container every [`PERIOD`]. Its only
//! in-memory state is the last number written. The vzctl double starts it on
//! `start`, stops it on `stop`, and for checkpointing asks it to suspend
//! (SIGUSR1: it finishes the current write, records its state in the frozen
//! file and stops itself with SIGSTOP); `restore` starts a new one from the
//! dumped number. The log then proves whether any state was lost:
//! [`check_log`] verifies that numbers continue without gap or repeat across
//! every `# restore N` line and restart from 1 after every `# start` line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The workload's log, relative to the container root (`VE_ROOT`/`VE_PRIVATE`).
pub const LOG_PATH: &str = "var/log/lab-workload.log";

/// Time between two numbers.
pub const PERIOD: Duration = Duration::from_millis(50);

/// The hidden subcommand of the double that runs the workload.
pub const SUBCOMMAND: &str = "__lab-workload";

/// Host-private runtime dir of the double (`/run` is a tmpfs per host: a
/// "reboot" of the host forgets running containers, as a real node would).
pub const STATE_DIR: &str = "/run/vzctl-double";

static SUSPEND: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    SUSPEND.store(true, Ordering::SeqCst);
}
extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// `<STATE_DIR>/<veid>.pid`.
pub fn pid_file(veid: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{veid}.pid"))
}
/// `<STATE_DIR>/<veid>.frozen`: exists while suspended, holds the last number.
pub fn frozen_file(veid: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{veid}.frozen"))
}

fn append(line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOG_PATH)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

fn write_atomic(p: &Path, s: &str) -> std::io::Result<()> {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, s)?;
    std::fs::rename(tmp, p)
}

fn freeze(veid: &str, seq: u64) {
    let _ = write_atomic(&frozen_file(veid), &format!("{seq}\n"));
    unsafe {
        libc::raise(libc::SIGSTOP);
    }
    // Resumed (SIGCONT).
    let _ = std::fs::remove_file(frozen_file(veid));
}

/// Body of the workload process: `__lab-workload <veid> [--resume-from N]`,
/// started with cwd = `VE_ROOT`. Returns the exit code.
pub fn run(veid: &str, resume_from: Option<u64>) -> i32 {
    unsafe {
        libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
    }
    if let Some(dir) = Path::new(LOG_PATH).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut seq = 0u64;
    match resume_from {
        Some(n) => {
            seq = n;
            // Undumped: stay suspended until `restore --resume`.
            freeze(veid, seq);
            if append(&format!("# restore {n}\n")).is_err() {
                return 1;
            }
        }
        None => {
            if append("# start\n").is_err() {
                return 1;
            }
        }
    }
    loop {
        if STOP.load(Ordering::SeqCst) {
            let _ = append(&format!("# stop {seq}\n"));
            return 0;
        }
        if SUSPEND.swap(false, Ordering::SeqCst) {
            freeze(veid, seq);
            continue;
        }
        seq += 1;
        if let Err(e) = append(&format!("{seq}\n")) {
            eprintln!("lab workload of CT {veid}: cannot write {LOG_PATH}: {e}");
            return 1;
        }
        std::thread::sleep(PERIOD);
    }
}

/// What [`check_log`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// Cold starts (`# start`).
    pub starts: usize,
    /// Restores from a dump (`# restore N`).
    pub restores: usize,
    /// Last number written.
    pub last: u64,
    /// Numbers written in total.
    pub numbers: usize,
}

/// Checks a workload log: after `# start` numbers run 1, 2, 3...; after
/// `# restore N` they continue at N+1, and N must be the last number written
/// before it (else the dump lost or invented state). Errors name the line.
pub fn check_log(text: &str) -> Result<LogSummary, String> {
    let mut s = LogSummary {
        starts: 0,
        restores: 0,
        last: 0,
        numbers: 0,
    };
    let mut expect: Option<u64> = None;
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if line == "# start" {
            s.starts += 1;
            expect = Some(1);
        } else if let Some(n) = line.strip_prefix("# restore ") {
            let n: u64 = n
                .parse()
                .map_err(|_| format!("line {ln}: bad restore line {line:?}"))?;
            if n != s.last {
                return Err(format!(
                    "line {ln}: restored from {n} but the last number written was {} (state lost or invented)",
                    s.last
                ));
            }
            s.restores += 1;
            expect = Some(n + 1);
        } else if line.starts_with("# stop") {
            expect = None;
        } else {
            let n: u64 = line
                .parse()
                .map_err(|_| format!("line {ln}: not a number: {line:?}"))?;
            match expect {
                Some(e) if e == n => {}
                Some(e) => return Err(format!("line {ln}: expected {e}, found {n}")),
                None => {
                    return Err(format!(
                        "line {ln}: number {n} without a start or restore before it"
                    ))
                }
            }
            s.last = n;
            s.numbers += 1;
            expect = Some(n + 1);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_continuity() {
        let ok = "# start\n1\n2\n3\n# restore 3\n4\n5\n# stop 5\n# start\n1\n";
        let s = check_log(ok).unwrap();
        assert_eq!((s.starts, s.restores, s.last, s.numbers), (2, 1, 1, 6));
        assert!(check_log("# start\n1\n3\n")
            .unwrap_err()
            .contains("expected 2"));
        assert!(check_log("# start\n1\n2\n# restore 1\n2\n")
            .unwrap_err()
            .contains("state lost"));
        assert!(check_log("1\n").is_err());
    }
}
