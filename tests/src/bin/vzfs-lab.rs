//! vzfs-lab: drives the lab by hand and runs the demo.
//!
//! * `vzfs-lab demo [SCENARIO...]` / `vzfs-lab demo --list`: what `make demo` runs.
//! * `vzfs-lab up [--install-hook] [HOST...]`: builds a lab (default hosts a
//!   and b, one 64 MiB ext4+MMP LUN `lun0` on all of them), prints how to
//!   enter each host, and tears it down on Enter, end of input, SIGINT,
//!   SIGTERM or SIGHUP ([`vzfs_lab::up`]).
//! * `vzfs-lab check`: says whether this machine can run labs.
//! * `vzfs-lab --help`, `--version`.
//!
//! Exit codes: 0 success, 1 a demo scenario failed, 2 usage or machine error.

use vzfs_lab::{demo, error_chain, preflight};

const USAGE: &str = "usage: vzfs-lab demo [--list | SCENARIO...] | up [--install-hook] [HOST...] | check | --help | --version\n\
\n\
  demo     run the demo scenarios (all, or the ones named); --list lists them\n\
  up       build a lab to explore by hand (see `vzfs-lab up --help`)\n\
  check    say whether this machine can run labs\n\
\n\
Exit codes: 0 success, 1 a demo scenario failed, 2 usage or machine error.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            0
        }
        Some("-V" | "--version") => {
            println!("vzfs-lab {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("demo") if args.get(1).map(String::as_str) == Some("--list") => {
            for (n, s, _) in demo::SCENARIOS {
                println!("{n}\t{s}");
            }
            0
        }
        Some("demo") if matches!(args.get(1).map(String::as_str), Some("-h" | "--help")) => {
            println!("usage: vzfs-lab demo [--list | SCENARIO...]");
            0
        }
        Some("demo") => demo::run(&args[1..]),
        Some("up") => vzfs_lab::up::up(&args[1..]),
        Some("check") => match preflight::preflight() {
            Ok(()) => {
                println!("this machine can run vzfs labs");
                0
            }
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                2
            }
        },
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
