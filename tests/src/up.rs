//! `vzfs-lab up`: a lab kept for exploring by hand, torn down on Enter, end
//! of input, or SIGINT/SIGTERM/SIGHUP (a signal during the build tears down
//! what was built so far, once the build step in flight returns).

use crate::{error_chain, Fs, Lab};
use std::io::BufRead;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Record SIGINT, SIGTERM and SIGHUP instead of dying of them, so the lab
/// is torn down as on a normal exit.
pub fn install_signal_handlers() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let sa = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores into an atomic.
        unsafe {
            let _ = sigaction(s, &sa);
        }
    }
}

/// The signal received, if any.
pub fn signal_received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub const USAGE: &str = "usage: vzfs-lab up [--install-hook] [HOST...]\n\
\n\
Builds a lab of hosts (default: a b), each its own network, mount and UTS\n\
namespaces with sshd, /etc/vz and /vz, plus a 64 MiB ext4+MMP SAN LUN `lun0`\n\
presented to every host. vzctl (the test double), vzfs-hook and vzfs-migrate\n\
are in each host's PATH (/usr/local/sbin); vzfs-hook is installed as vzctl's\n\
premount/postumount scripts only with --install-hook. The lab is torn down\n\
on Enter, end of input, Ctrl-C, SIGTERM or SIGHUP.";

/// Run `vzfs-lab up ARGS`; returns the exit code.
pub fn up(args: &[String]) -> i32 {
    let mut hook = false;
    let mut names: Vec<&str> = Vec::new();
    for a in args {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            "--install-hook" => hook = true,
            o if o.starts_with('-') => {
                eprintln!("vzfs-lab up: unknown option {o:?}\n{USAGE}");
                return 2;
            }
            h => names.push(h),
        }
    }
    if names.is_empty() {
        names = vec!["a", "b"];
    }
    install_signal_handlers();
    let mut b = Lab::builder().hosts(&names);
    if hook {
        b = b.install_hook();
    }
    let r = b.start().and_then(|lab| {
        let lun = lab.add_lun("lun0", &names, Fs::Ext4Mmp)?;
        Ok((lab, lun))
    });
    let (lab, lun) = match r {
        Ok(x) => x,
        Err(e) => {
            if let Some(s) = signal_received() {
                // a terminal's Ctrl-C reaches the build's commands too
                eprintln!(
                    "vzfs-lab up: interrupted by signal {s} while building the lab ({}); what was built is removed",
                    error_chain(&e)
                );
                return 128 + s;
            }
            eprintln!("error: {}", error_chain(&e));
            return 2;
        }
    };
    if let Some(s) = signal_received() {
        eprintln!("signal {s} during the build: removing the lab");
        return finish(lab);
    }
    println!(
        "lab {} is up: hosts {} (network {}, files in {})",
        lab.tag(),
        names.join(", "),
        lab.subnet(),
        lab.dir().display()
    );
    for h in lab.hosts() {
        println!(
            "  {}: {}  enter: nsenter -t {} -m -u -n bash   (or from another host: ssh {})   LUN lun0: {}",
            h.name(),
            h.ip(),
            h.pid(),
            h.name(),
            lun.device(h.name()).display()
        );
    }
    if hook {
        println!(
            "vzfs-hook is installed as /etc/vz/conf/vps.premount and vps.postumount on every host."
        );
    } else {
        println!(
            "Nothing is installed on the hosts yet: vzctl (the test double), vzfs-hook and vzfs-migrate are in PATH, \
             but vzfs-hook is not vzctl's action script; install it on a host with \
             `ln -s /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.premount && ln -s /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.postumount` \
             (or start with `vzfs-lab up --install-hook`)."
        );
    }
    println!("press Enter (or Ctrl-C) to tear it down");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().lock().read_line(&mut String::new());
        let _ = tx.send(());
    });
    loop {
        if let Some(s) = signal_received() {
            eprintln!("signal {s}: removing the lab");
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    finish(lab)
}

fn finish(lab: Lab) -> i32 {
    match lab.teardown() {
        Ok(()) => {
            println!("lab removed");
            0
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            2
        }
    }
}
