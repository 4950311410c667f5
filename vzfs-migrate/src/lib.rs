//! vzfs-migrate: filesystem-aware, vzmigrate-compatible migration of OpenVZ
//! containers, and `vzfs-create`. `main.rs` only parses arguments and calls
//! [`main_with_args`]; `create_main.rs` calls [`create::main_with_args`].
//!
//! Modules: [`runner`] (the engine both run their plans on), [`create`]
//! (vzfs-create), [`protocol`] (the helper protocol), [`cli`] (options), [`error`] (errors, exit codes), [`plan`]
//! (scenarios and steps), [`engine`] (running a plan with its journal,
//! failpoints, undo and `--recover`), [`ops`] (what each step does on the
//! two nodes), [`helper`] (the target side, run over ssh), [`hostops`]
//! (node-local operations through the vzfs library), [`session`] (the one
//! helper session on the target), [`transport`] (ssh, rsync), [`vzctl`], [`lock`], [`journal`], [`failpoint`], [`signals`].

pub mod cli;
pub mod create;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod helper;
pub mod hostops;
pub mod journal;
pub mod lock;
pub mod ops;
pub mod plan;
pub mod protocol;
pub mod runner;
pub mod session;
pub mod signals;
pub mod transport;
pub mod vzctl;

pub use error::{Error, Result};

/// Run the program with `args` (argv without the program name handled by
/// clap); returns the exit code. `main.rs` is a thin wrapper around this.
pub fn main_with_args(args: Vec<String>) -> i32 {
    if args.get(1).map(String::as_str) == Some("helper") {
        return helper::main(&args[2..]);
    }
    let tty = nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
    let opts = match cli::parse(args, tty) {
        Ok(o) => o,
        Err(Ok(text)) => {
            print!("{text}");
            return 0;
        }
        Err(Err(e)) => {
            eprintln!("error: {}", e.chain());
            return e.exit_code();
        }
    };
    transport::set_verbose(opts.verbose);
    vzfs::log::init("vzfs-migrate", opts.verbose.min(2), false);
    signals::install();
    let etc = vzfs::config::VzEtc::new(
        std::env::var_os("VZFS_ETC")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/etc/vz".into()),
    );
    let sum = engine::run(&opts, &etc);
    if opts.times {
        engine::print_times(&sum);
    }
    if opts.json {
        println!(
            "{}",
            serde_json::to_string(&sum).expect("summary serializes")
        );
    }
    if let Some(e) = &sum.error {
        eprintln!("error: {e}");
    }
    sum.exit_code
}
