//! `vzfs-hook`: vzctl's `vps.premount` / `vps.postumount` action script (it
//! dispatches on the name it was started as), and admin subcommands
//! `premount`, `postumount` and `status`. Thin: all work is in the library.
//!
//! Start-up is part of the hook's cost (vzctl execs it twice per start/stop
//! cycle), so the binary has no Rust runtime start-up (`#![no_main]`: the C
//! `main` below is the entry point; std works without it on Linux, argv
//! included): no stack-guard probing of `/proc/self/maps`, no alternate
//! signal stack. What that start-up did that matters is done here: SIGPIPE
//! is ignored (a closed stderr is an error to report, not a death mid-mount)
//! and stdout is flushed before returning.
#![no_main]

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use vzfs::config::{validate_ctid, VzConfig, VzEtc};
use vzfs::error::{chain, exit, Error};
use vzfs::hook::{self, CtFs};
use vzfs::sys::RealSys;

#[derive(Parser)]
#[command(name = "vzfs-hook", version, about = "Mount an OpenVZ container's own device (VE_DEVICE) on VE_PRIVATE, safely", long_about = None)]
struct Cli {
    /// vzctl's configuration directory
    #[arg(long, default_value = "/etc/vz", global = true)]
    etc_vz: PathBuf,
    /// More detail (repeat for debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors and warnings
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: OpCmd,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Premount,
    Postumount,
    Status,
}

#[derive(clap::Args)]
struct OpArgs {
    /// Container ID
    ctid: String,
}

#[derive(Subcommand)]
enum OpCmd {
    /// Mount VE_DEVICE on VE_PRIVATE (what vps.premount does)
    Premount(OpArgs),
    /// Unmount VE_DEVICE from VE_PRIVATE (what vps.postumount does)
    Postumount(OpArgs),
    /// Show what would be mounted where, and what is mounted now
    Status(OpArgs),
}

fn run(
    op: Op,
    etc: &VzEtc,
    ctid: &str,
    ct_conf: PathBuf,
    verbosity: Option<u8>,
) -> Result<(), Error> {
    validate_ctid(ctid)?;
    let cfg = VzConfig::load_files(&etc.global_conf(), &ct_conf, ctid)?;
    let ct = CtFs::from_config(&cfg)?;
    vzfs::log::set_verbosity(verbosity.or(ct.verbosity).unwrap_or(1));
    match op {
        Op::Premount => hook::premount(&RealSys, etc, &ct).map(drop),
        Op::Postumount => hook::postumount(&RealSys, etc, &ct).map(drop),
        Op::Status => {
            let st = hook::status(&RealSys, &ct)?;
            print!("{}", st.text);
            st.device_error.map_or(Ok(()), Err)
        }
    }
}

fn finish(r: Result<(), Error>, what: &str) -> i32 {
    match r {
        Ok(()) => exit::OK,
        Err(e) => {
            vzfs::log::error(&format!("{what}: {}", chain(&e)));
            e.exit_code()
        }
    }
}

/// The entry point (see the module docs for why it is C's `main`).
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let code = run_main();
    let _ = std::io::stdout().flush();
    code
}

fn run_main() -> i32 {
    // Logging first: an error in reading the config reaches syslog too.
    // The verbosity of the config (VZFS_VERBOSE) is applied once it is read.
    vzfs::log::init("vzfs-hook", 1, true);
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_default();
    let name = argv0
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hook_op = if name.ends_with(".premount") {
        Some(Op::Premount)
    } else if name.ends_with(".postumount") {
        Some(Op::Postumount)
    } else {
        None
    };
    if let Some(op) = hook_op {
        // Started by vzctl: VEID and VE_CONFFILE are all it passes.
        let what = if op == Op::Premount {
            "premount"
        } else {
            "postumount"
        };
        let Some(ctid) = std::env::var_os("VEID").map(|v| v.to_string_lossy().into_owned()) else {
            return finish(Err(Error::Usage(format!("{name}: VEID is not set; this is a vzctl action script (run `vzfs-hook {what} CTID` by hand)"))), what);
        };
        let etc = VzEtc::default();
        let ct_conf = std::env::var_os("VE_CONFFILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| etc.ct_conf(&ctid));
        return finish(
            run(op, &etc, &ctid, ct_conf, None),
            &format!("{what} CT {}", vzfs::text::escape(&ctid)),
        );
    }
    let cli = Cli::parse();
    if cli.quiet {
        vzfs::log::set_verbosity(0);
    }
    let verbosity = if cli.quiet {
        Some(0)
    } else if cli.verbose > 0 {
        Some(1 + cli.verbose)
    } else {
        None
    };
    let etc = VzEtc::new(cli.etc_vz);
    let (op, args) = match cli.cmd {
        OpCmd::Premount(a) => (Op::Premount, a),
        OpCmd::Postumount(a) => (Op::Postumount, a),
        OpCmd::Status(a) => (Op::Status, a),
    };
    let what = match op {
        Op::Premount => "premount",
        Op::Postumount => "postumount",
        Op::Status => "status",
    };
    let ct_conf = etc.ct_conf(&args.ctid);
    finish(
        run(op, &etc, &args.ctid, ct_conf, verbosity),
        &format!("{what} CT {}", args.ctid),
    )
}
