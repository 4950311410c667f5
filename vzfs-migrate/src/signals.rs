//! SIGINT/SIGTERM/SIGHUP handling: a signal never kills vzfs-migrate
//! mid-step (SIGHUP: the admin's terminal or ssh session went away).
//! It is recorded; outside a critical section the running child (rsync,
//! ssh, vzctl) is sent SIGTERM so the step fails and the migration is
//! undone; inside a critical section (the device is between nodes) and
//! during the undo it is deferred: the engine looks at it at the next step
//! boundary after the section ends.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static PENDING: AtomicI32 = AtomicI32::new(0);
static CRITICAL: AtomicBool = AtomicBool::new(false);
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
    if !CRITICAL.load(Ordering::SeqCst) {
        let c = CHILD.load(Ordering::SeqCst);
        if c > 0 {
            // SAFETY: kill(2) is async-signal-safe; the child leads its own group.
            unsafe {
                libc::kill(-c, libc::SIGTERM);
            }
        }
    }
}

/// Install the handlers for SIGINT, SIGTERM and SIGHUP (and ignore SIGPIPE's default
/// death on a closed pipe, which Rust already does).
pub fn install() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let sa = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls kill(2).
        unsafe {
            let _ = sigaction(s, &sa);
        }
    }
}

/// Enter or leave a section where signals are deferred.
pub fn set_critical(on: bool) {
    CRITICAL.store(on, Ordering::SeqCst);
}

pub fn critical() -> bool {
    CRITICAL.load(Ordering::SeqCst)
}

/// The signal received and not yet acted upon, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        s => format!("signal {s}"),
    }
}

/// Registers the running child so a signal can stop it.
pub struct ChildGuard;

impl ChildGuard {
    pub fn new(pid: i32) -> ChildGuard {
        CHILD.store(pid, Ordering::SeqCst);
        if pending().is_some() && !critical() {
            // SAFETY: plain kill(2) of our own child's group.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
        }
        ChildGuard
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        CHILD.store(0, Ordering::SeqCst);
    }
}
