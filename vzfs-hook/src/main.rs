//! `vzfs-hook`: vzctl's `vps.premount` / `vps.postumount` action script (it
//! dispatches on the name it was started as), and admin subcommands
//! `premount`, `postumount`, `status`, `install` and `uninstall`. An admin
//! script chained by `install --chain` runs after our premount succeeded and
//! before our postumount ([`vzfs::chain`]). Started as `container` it is the
//! Pacemaker resource agent `ocf:vzfs:container` ([`vzfs::ocf`]). Thin: all
//! work is in the library.
//!
//! Start-up is part of the hook's cost (vzctl execs it twice per start/stop
//! cycle), so the binary has no Rust runtime start-up (`#![no_main]`: the C
//! `main` below is the entry point; std works without it on Linux, argv
//! included): no stack-guard probing of `/proc/self/maps`, no alternate
//! signal stack. What that start-up did that matters is done here: SIGPIPE
//! is ignored (a closed stderr is an error to report, not a death mid-mount)
//! and stdout is flushed before returning.
#![no_main]

use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use vzfs::chain::Failure;
use vzfs::cli::{Cli, InstallArgs, OpCmd, PlaceArgs};
use vzfs::config::{validate_ctid, VzConfig, VzEtc};
use vzfs::error::{chain, exit, Error};
use vzfs::hook::{self, CtFs};
use vzfs::install::{self, InstallError, Layout, Mode};
use vzfs::sys::RealSys;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Premount,
    Postumount,
    Status,
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
    // The OCF resource agent (`/usr/lib/ocf/resource.d/vzfs/container`, a
    // symlink to this binary): its own logging ident, no clap.
    let mut args = std::env::args();
    if args
        .next()
        .as_deref()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == vzfs::ocf::AGENT_NAME)
    {
        return vzfs::ocf::main(&args.collect::<Vec<_>>());
    }
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
            return finish(Err(Error::Usage(format!("{}: VEID is not set; this is a vzctl action script (run `vzfs-hook {what} CTID` by hand)", vzfs::text::escape(&name)))), what);
        };
        let etc = VzEtc::default();
        let ct_conf = std::env::var_os("VE_CONFFILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| etc.ct_conf(&ctid));
        let what = format!("{what} CT {}", vzfs::text::escape(&ctid));
        // An admin's script chained by `vzfs-hook install --chain`: checked
        // before anything is done, so an unsafe one stops the hook early.
        let chained = match vzfs::chain::find(&argv0) {
            Ok(c) => c,
            Err(e) => return finish_install(Err(e), &what),
        };
        let chained = chained.as_deref();
        let ours = || run(op, &etc, &ctid, ct_conf, None);
        let r = if op == Op::Premount {
            vzfs::chain::run_premount(chained, ours)
        } else {
            vzfs::chain::run_postumount(chained, ours)
        };
        return match r {
            Ok(()) => finish(Ok(()), &what),
            Err(Failure::Ours(e)) => finish(Err(e), &what),
            Err(Failure::Theirs(t)) => finish_install(Err(t), &what),
            Err(Failure::Both(e, t)) => {
                vzfs::log::error(&format!("{what}: {}", chain(&t)));
                finish(Err(e), &what)
            }
        };
    }
    let cli = Cli::parse();
    let verbosity = if cli.quiet {
        Some(0)
    } else if cli.verbose > 0 {
        Some(1 + cli.verbose)
    } else {
        None
    };
    let (op, args) = match cli.cmd {
        OpCmd::Premount(a) => (Op::Premount, a),
        OpCmd::Postumount(a) => (Op::Postumount, a),
        OpCmd::Status(a) => (Op::Status, a),
        OpCmd::Install(a) => return install_cmd(&cli.etc_vz, a),
        OpCmd::Uninstall(a) => return uninstall_cmd(&cli.etc_vz, a),
    };
    let etc = VzEtc::new(cli.etc_vz);
    let what = match op {
        Op::Premount => "premount",
        Op::Postumount => "postumount",
        Op::Status => "status",
    };
    let ct_conf = etc.ct_conf(&args.ctid);
    finish(
        run(op, &etc, &args.ctid, ct_conf, verbosity),
        &format!("{what} CT {}", vzfs::text::escape(&args.ctid)),
    )
}

fn finish_install(r: Result<(), InstallError>, what: &str) -> i32 {
    match r {
        Ok(()) => exit::OK,
        Err(e) => {
            vzfs::log::error(&format!("{what}: {}", chain(&e)));
            e.exit_code()
        }
    }
}

fn layout(etc_vz: &Path, place: &PlaceArgs) -> Layout {
    Layout {
        scripts_dir: place
            .scripts_dir
            .clone()
            .unwrap_or_else(|| install::default_scripts_dir(etc_vz)),
        hook_path: place.hook_path.clone(),
    }
}

/// Prints `lines` on stdout; an error as one `vzfs-hook: error: ...` line
/// per problem on stderr.
fn report(r: Result<Vec<String>, InstallError>) -> i32 {
    match r {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            0
        }
        Err(e) => {
            for l in chain(&e).lines() {
                eprintln!("vzfs-hook: error: {l}");
            }
            e.exit_code()
        }
    }
}

fn install_cmd(etc_vz: &Path, a: InstallArgs) -> i32 {
    let l = layout(etc_vz, &a.place);
    let names = match install::hook_names(&a.place.ctids) {
        Ok(n) => n,
        Err(e) => return report(Err(e)),
    };
    if a.check {
        return match install::check(&l, &names) {
            Ok((lines, all_ours)) => {
                report(Ok(lines));
                if all_ours {
                    0
                } else {
                    exit::REFUSED
                }
            }
            Err(e) => report(Err(e)),
        };
    }
    let mode = match (a.chain, a.force) {
        (true, _) => Mode::Chain,
        (_, true) => Mode::Force,
        _ => Mode::Plain,
    };
    report(install::install(&l, &names, mode))
}

fn uninstall_cmd(etc_vz: &Path, a: PlaceArgs) -> i32 {
    let l = layout(etc_vz, &a);
    let names = if a.ctids.is_empty() {
        install::all_names(&l)
    } else {
        install::hook_names(&a.ctids)
    };
    match names.and_then(|n| install::uninstall(&l, &n)) {
        Ok((lines, problems)) => {
            let code = report(Ok(lines));
            if problems.is_empty() {
                return code;
            }
            report(Err(InstallError::Refused(problems.join("\n"))))
        }
        Err(e) => report(Err(e)),
    }
}
