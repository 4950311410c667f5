//! Can the lab run here? Checks that the process is root, that loop devices
//! and the needed tools exist, and owns the `VZFS_SKIP_ROOT_TESTS=1` opt-out:
//! without it a test that cannot run fails with the reason; with it the test
//! prints that it was skipped and the process prints how many were skipped at exit.

use crate::error::{LabError, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// Tools the lab calls on the machine or inside hosts, with the Debian package that has them.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("losetup", "util-linux (mount)"),
    ("blkid", "util-linux"),
    ("mount", "mount"),
    ("mknod", "coreutils"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("rsync", "rsync"),
    ("mkfs.ext4", "e2fsprogs"),
    ("tune2fs", "e2fsprogs"),
    ("mkfs.xfs", "xfsprogs"),
    ("tar", "tar"),
    ("fuser", "psmisc"),
];

/// The env var that turns "cannot run" from a failure into a counted skip.
pub const SKIP_VAR: &str = "VZFS_SKIP_ROOT_TESTS";

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static AT_EXIT: Once = Once::new();

/// Finds `tool` in the usual root PATH; returns its absolute path.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let extra = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for dir in path.split(':').chain(extra.split(':')) {
        if dir.is_empty() {
            continue;
        }
        let p = std::path::Path::new(dir).join(tool);
        if let Ok(md) = std::fs::metadata(&p) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Some(p);
            }
        }
    }
    None
}

/// Checks everything the lab needs; the error lists every missing piece.
pub fn preflight() -> Result<()> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push(
            "not running as root (the lab needs namespaces, mounts and loop devices)".to_string(),
        );
    }
    if !std::path::Path::new("/dev/loop-control").exists() {
        missing.push("no /dev/loop-control (loop devices unavailable: modprobe loop)".to_string());
    }
    let absent: Vec<String> = REQUIRED_TOOLS
        .iter()
        .filter(|(t, _)| which(t).is_none())
        .map(|(t, p)| format!("{t} (package {p})"))
        .collect();
    if !absent.is_empty() {
        missing.push(format!("missing tools: {}", absent.join(", ")));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::Preflight {
            reason: missing.join("; "),
        })
    }
}

/// True when the user asked to skip tests that need root and a lab.
pub fn skip_requested() -> bool {
    std::env::var(SKIP_VAR).map(|v| v == "1").unwrap_or(false)
}

/// Number of tests skipped so far in this process.
pub fn skipped_count() -> usize {
    SKIPPED.load(Ordering::SeqCst)
}

extern "C" fn print_skipped_at_exit() {
    let n = SKIPPED.load(Ordering::SeqCst);
    let msg =
        format!("vzfs-lab: {n} root/lab test(s) SKIPPED because {SKIP_VAR}=1 (they did not run)\n");
    // Raw write: the test harness' output capture is gone at exit.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// Gate for a test that needs root and a lab: `true` means run it.
///
/// When the machine cannot run the lab this panics with the reason (the test
/// fails), unless `VZFS_SKIP_ROOT_TESTS=1`, in which case it prints a SKIPPED
/// line, counts it, and returns `false`; the count is printed when the test
/// process exits.
pub fn require_lab(test_name: &str) -> bool {
    match preflight() {
        Ok(()) => true,
        Err(e) if skip_requested() => {
            let n = SKIPPED.fetch_add(1, Ordering::SeqCst) + 1;
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(print_skipped_at_exit);
            });
            eprintln!("SKIPPED {test_name} ({SKIP_VAR}=1, {n} skipped so far): {e}");
            false
        }
        Err(e) => panic!("{test_name}: {e}"),
    }
}
