//! SIGINT/SIGTERM/SIGHUP handling: a signal never kills vzfs-migrate
//! mid-step (SIGHUP: the admin's terminal or ssh session went away).
//! It is recorded; outside a critical section the running child (rsync,
//! ssh, vzctl) is sent SIGTERM so the step fails and the migration is
//! undone; inside a critical section (the device is between nodes) and
//! during the undo it is deferred: the engine looks at it at the next step
//! boundary after the section ends.
//!
//! Several migrations run at once in one process (`--evacuate`, several
//! CTIDs: [`crate::batch`]): each runs on its own thread with its own
//! *slot* ([`use_slot`]; the main thread has slot 0), which holds that
//! migration's running child and whether it is in its critical section.
//! A signal stops the children of the slots outside a critical section
//! only, so one migration in its handoff is never disturbed by another's
//! interruption.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// How many migrations can run at once (slot 0 is the main thread's).
pub const SLOTS: usize = 64;

static PENDING: AtomicI32 = AtomicI32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NO_CHILD: AtomicI32 = AtomicI32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NOT_CRITICAL: AtomicBool = AtomicBool::new(false);
static CRITICAL: [AtomicBool; SLOTS] = [NOT_CRITICAL; SLOTS];
static CHILD: [AtomicI32; SLOTS] = [NO_CHILD; SLOTS];

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

fn slot() -> usize {
    SLOT.with(Cell::get)
}

/// This thread runs one migration with slot `n` (1..[`SLOTS`]; one
/// thread per slot at a time). Clears the slot's state.
pub fn use_slot(n: usize) {
    assert!(n < SLOTS, "signal slot {n} out of range");
    CRITICAL[n].store(false, Ordering::SeqCst);
    CHILD[n].store(0, Ordering::SeqCst);
    SLOT.with(|s| s.set(n));
}

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
    for n in 0..SLOTS {
        if CRITICAL[n].load(Ordering::SeqCst) {
            continue;
        }
        let c = CHILD[n].load(Ordering::SeqCst);
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

/// Enter or leave a section where signals are deferred (this thread's
/// migration).
pub fn set_critical(on: bool) {
    CRITICAL[slot()].store(on, Ordering::SeqCst);
}

pub fn critical() -> bool {
    CRITICAL[slot()].load(Ordering::SeqCst)
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

/// Registers the running child of this thread's migration so a signal can
/// stop it.
pub struct ChildGuard(usize);

impl ChildGuard {
    pub fn new(pid: i32) -> ChildGuard {
        let n = slot();
        CHILD[n].store(pid, Ordering::SeqCst);
        if pending().is_some() && !critical() {
            // SAFETY: plain kill(2) of our own child's group.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
        }
        ChildGuard(n)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        CHILD[self.0].store(0, Ordering::SeqCst);
    }
}
