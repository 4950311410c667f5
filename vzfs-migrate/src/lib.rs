//! vzfs-migrate: filesystem-aware, vzmigrate-compatible migration of OpenVZ
//! containers, and `vzfs-create`. `main.rs` only parses arguments and calls
//! [`main_with_args`]; `create_main.rs` calls [`create::main_with_args`].
//!
//! Modules: [`batch`] (several containers, `--evacuate`), [`runner`] (the engine both run their plans on), [`create`]
//! (vzfs-create), [`protocol`] (the helper protocol), [`cli`] (options), [`error`] (errors, exit codes), [`plan`]
//! (scenarios and steps), [`engine`] (running a plan with its journal,
//! failpoints, undo and `--recover`), [`ops`] (what each step does on the
//! two nodes), [`helper`] (the target side, run over ssh), [`hostops`]
//! (node-local operations through the vzfs library), [`session`] (the one
//! helper session on the target), [`transport`] (ssh, rsync), [`vzctl`], [`lock`], [`journal`], [`failpoint`], [`signals`].

pub mod batch;
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
    run_binary(
        "vzfs-migrate",
        false,
        cli::parse(args, tty),
        |o| (o.verbose, o.times, o.json),
        |o, etc| match o.mode {
            cli::Mode::Batch { .. } | cli::Mode::RecoverAll => Outcome::Batch(batch::run(o, etc)),
            _ => Outcome::One(engine::run(o, etc)),
        },
    )
}

/// What [`run_binary`] reports at the end: `-t`, `--json`, the error line
/// and the exit code.
pub(crate) trait RunReport: serde::Serialize {
    fn print_times(&self);
    fn error(&self) -> Option<&str>;
    fn exit_code(&self) -> i32;
}

impl RunReport for runner::Summary {
    fn print_times(&self) {
        runner::print_times(self)
    }
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

/// One container's run, or several ([`batch`]).
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(crate) enum Outcome {
    One(runner::Summary),
    Batch(batch::BatchSummary),
}

impl RunReport for Outcome {
    fn print_times(&self) {
        match self {
            Outcome::One(s) => s.print_times(),
            Outcome::Batch(b) => b.print_times(),
        }
    }
    fn error(&self) -> Option<&str> {
        match self {
            Outcome::One(s) => s.error.as_deref(),
            Outcome::Batch(b) => b.error.as_deref(),
        }
    }
    fn exit_code(&self) -> i32 {
        match self {
            Outcome::One(s) => s.exit_code,
            Outcome::Batch(b) => b.exit_code,
        }
    }
}

/// What `vzfs-migrate` and `vzfs-create` do around their work: clap's
/// outcome (help or version on stdout and exit 0; a usage error on one
/// line with its exit code), verbosity, the logger (`use_syslog`), signal
/// handling, `/etc/vz` (or `$VZFS_ETC`); then the summary as `-t` and
/// `--json` ask (`flags` gives verbose, times, json), the error on one
/// line, and the summary's exit code.
pub(crate) fn run_binary<O, R: RunReport>(
    program: &'static str,
    use_syslog: bool,
    parsed: std::result::Result<O, std::result::Result<String, Error>>,
    flags: impl Fn(&O) -> (u8, bool, bool),
    work: impl FnOnce(&O, &vzfs::config::VzEtc) -> R,
) -> i32 {
    let opts = match parsed {
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
    let (verbose, times, json) = flags(&opts);
    transport::set_verbose(verbose);
    vzfs::log::init(program, verbose.min(2), use_syslog);
    signals::install();
    let etc = vzfs::config::VzEtc::new(
        std::env::var_os("VZFS_ETC")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/etc/vz".into()),
    );
    let sum = work(&opts, &etc);
    if times {
        sum.print_times();
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(&sum).expect("summary serializes")
        );
    }
    if let Some(e) = sum.error() {
        eprintln!("error: {e}");
    }
    sum.exit_code()
}
