//! vzfs-lab: drives the lab by hand and runs the demo.
//!
//! * `vzfs-lab demo [SCENARIO...]` / `vzfs-lab demo --list`: what `make demo` runs.
//! * `vzfs-lab up [HOST...]`: builds a lab (default hosts a and b, one 64 MiB
//!   ext4+MMP LUN `lun0` on all of them), prints how to enter each host, and
//!   tears it down when you press Enter (or on end of input).
//! * `vzfs-lab check`: says whether this machine can run labs.
//! * `vzfs-lab --version` / `--help`.
//!
//! Exit codes: 0 success, 1 a demo scenario failed, 2 usage or machine error.

use std::io::BufRead;
use vzfs_lab::{demo, error_chain, preflight, Fs, Lab};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("demo") if args.get(1).map(String::as_str) == Some("--list") => {
            for (n, s, _) in demo::SCENARIOS {
                println!("{n}\t{s}");
            }
            0
        }
        Some("demo") => demo::run(&args[1..]),
        Some("up") => up(&args[1..]),
        Some("--version") | Some("-V") => {
            println!("vzfs-lab {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("--help") | Some("-h") => {
            println!(
                "usage: vzfs-lab demo [--list | SCENARIO...] | up [HOST...] | check | --version"
            );
            0
        }
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
            eprintln!("usage: vzfs-lab demo [--list | SCENARIO...] | up [HOST...] | check");
            2
        }
    };
    std::process::exit(code);
}

fn up(hosts: &[String]) -> i32 {
    let names: Vec<&str> = if hosts.is_empty() {
        vec!["a", "b"]
    } else {
        hosts.iter().map(String::as_str).collect()
    };
    let r = Lab::builder().hosts(&names).start().and_then(|lab| {
        let lun = lab.add_lun("lun0", &names, Fs::Ext4Mmp)?;
        Ok((lab, lun))
    });
    let (lab, lun) = match r {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return 2;
        }
    };
    println!(
        "lab {} is up (network {}, files in {})",
        lab.tag(),
        lab.subnet(),
        lab.dir().display()
    );
    for h in lab.hosts() {
        println!(
            "  {}: {}  enter: nsenter -t {} -m -u -n bash   LUN lun0: {}",
            h.name(),
            h.ip(),
            h.pid(),
            lun.device(h.name()).display()
        );
    }
    println!("press Enter to tear it down");
    let _ = std::io::stdin().lock().read_line(&mut String::new());
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
