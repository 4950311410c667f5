//! Command line of `vzfs-migrate`: stock vzmigrate's options and exit codes
//! plus ours, parsed with clap into validated [`Options`].
//!
//! `vzfs-migrate [options] TARGET_HOST CTID`, `vzfs-migrate --recover CTID`,
//! and `vzfs-migrate helper ...` (the target side, run over ssh; see
//! [`crate::helper`]).

use crate::error::{Error, Result};
use clap::{ArgAction, Parser};

#[derive(Parser, Debug)]
#[command(
    name = "vzfs-migrate",
    version,
    about = "Filesystem-aware migration of an OpenVZ container (vzmigrate-compatible)",
    after_help = "Scenarios: a shared->shared; b shared->insulated (--dst-device); \
c insulated->shared (--dst-shared); d1 insulated->insulated (--dst-device with another filesystem); \
d2 insulated->insulated on the same SAN device (default for an insulated container).\n\
Exit codes: 1 usage, 2 CT stopped (--online) or a config file error (as vzfs-hook's 2), 4 cannot connect, 6 copy failed, \
7 start on target failed, 8 stop on source failed, 9 CT exists on target, 10 no such CT, \
12 IP address in use on target, 13 disk quota (vzdqdump/vzdqload) failed, 14 target lacks vzctl, the same vzfs-migrate or vzfs-hook as its premount/postumount scripts, 15 apply config, 16 ploop unsupported, \
19 cannot read remote config, 20 locked or unfinished journal (--recover), 21 device check, \
22 device mount/umount, 23 undo incomplete (--recover), 24 interrupted, 25 system error.\n\
Failpoints for tests: VZFS_FAILPOINTS=\"before:STEP=fail;after:STEP=crash;undo:STEP=fail;after:STEP=sleep(MS)\"."
)]
pub struct Cli {
    /// Remove the source's private area after a successful migration
    /// (shared source only; data on a device is never deleted).
    #[arg(short = 'r', long = "remove-area", value_name = "yes|no", default_value = "yes",
          value_parser = ["yes", "no"])]
    pub remove_area: String,

    /// Additional ssh options (one string, as stock vzmigrate's --ssh=OPTS).
    #[arg(long = "ssh", value_name = "OPTS", allow_hyphen_values = true)]
    pub ssh: Option<String>,

    /// Accepted for compatibility: vzfs-migrate always multiplexes one ssh
    /// connection.
    #[arg(long = "ssh-mux")]
    pub ssh_mux: bool,

    /// Additional rsync options (one string).
    #[arg(long = "rsync", value_name = "OPTS", allow_hyphen_values = true)]
    pub rsync: Option<String>,

    /// Do not remove the data copied to the target when the migration fails.
    #[arg(long = "keep-dst")]
    pub keep_dst: bool,

    /// Online (live) migration: checkpoint on the source, restore on the target.
    #[arg(long = "online", visible_alias = "live")]
    pub online: bool,

    /// Run every check, print the plan, change nothing.
    #[arg(long = "check-only", visible_alias = "dry-run")]
    pub check_only: bool,

    /// Accepted for compatibility (stock: ignore missing package sets on the
    /// target); vzfs-migrate makes no such check.
    #[arg(short = 'f', long = "nodeps")]
    pub nodeps: bool,

    /// More messages (up to -vvvv); -v logs every command line.
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,

    /// Print phase timings, the downtime included.
    #[arg(short = 't', long = "times")]
    pub times: bool,

    /// Target device for the container (b, d1; the same filesystem as the
    /// source's makes it d2).
    #[arg(long = "dst-device", value_name = "DEV")]
    pub dst_device: Option<String>,

    /// Make an insulated container shared on the target (c).
    #[arg(long = "dst-shared")]
    pub dst_shared: bool,

    /// d2 on ext2/3/4 without multi-mount protection: hand the LUN over
    /// anyway (by default refused: nothing but MMP stops a second node from
    /// mounting it; enable it with `tune2fs -O mmp` on the unmounted
    /// filesystem).
    #[arg(long = "accept-no-mmp")]
    pub accept_no_mmp: bool,

    /// Shared dump device for --online with a SAN device (d2).
    #[arg(long = "dump-device", value_name = "DEV")]
    pub dump_device: Option<String>,

    /// Finish the undo (or the commit) of an interrupted migration from its journal.
    #[arg(long = "recover", value_name = "CTID")]
    pub recover: Option<String>,

    /// Print a machine-readable summary (JSON) on stdout.
    #[arg(long = "json")]
    pub json: bool,

    /// No progress display even on a terminal.
    #[arg(long = "no-progress")]
    pub no_progress: bool,

    /// The vzfs-migrate binary on the target.
    #[arg(
        long = "remote-helper",
        value_name = "PATH",
        env = "VZFS_MIGRATE_REMOTE_HELPER",
        default_value = "vzfs-migrate"
    )]
    pub remote_helper: String,

    /// The vzctl binary (on both nodes).
    #[arg(
        long = "vzctl",
        value_name = "PATH",
        env = "VZFS_VZCTL",
        default_value = "vzctl"
    )]
    pub vzctl: String,

    /// Where the kernel offers OpenVZ's checkpoint interfaces `cpt` and
    /// `rst` (vzctl opens /proc/cpt to checkpoint and /proc/rst to
    /// restore); checked on both nodes before an online migration or the
    /// move of a suspended container. Another directory only for test labs.
    #[arg(
        long = "cpt-dir",
        value_name = "DIR",
        env = "VZFS_CPT_DIR",
        default_value = "/proc",
        hide = true
    )]
    pub cpt_dir: std::path::PathBuf,

    /// Directory of the undo journal (default: LOCKDIR from vz.conf).
    #[arg(
        long = "journal-dir",
        value_name = "DIR",
        env = "VZFS_MIGRATE_JOURNAL_DIR"
    )]
    pub journal_dir: Option<std::path::PathBuf>,

    /// TARGET_HOST CTID
    #[arg(value_name = "TARGET_HOST CTID", num_args = 0..=2)]
    pub positional: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Migrate { target: String, ctid: u32 },
    Recover { ctid: u32 },
}

/// Validated options.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub remove_area: bool,
    pub ssh: Option<String>,
    pub rsync: Option<String>,
    pub keep_dst: bool,
    pub online: bool,
    pub check_only: bool,
    pub verbose: u8,
    pub times: bool,
    pub dst_device: Option<String>,
    pub dst_shared: bool,
    pub dump_device: Option<String>,
    pub accept_no_mmp: bool,
    pub json: bool,
    pub progress: bool,
    pub remote_helper: String,
    pub vzctl: String,
    pub cpt_dir: std::path::PathBuf,
    pub journal_dir: Option<std::path::PathBuf>,
}

pub fn parse_ctid(s: &str) -> Result<u32> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 && s.chars().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(Error::Usage(format!(
            "bad CTID {s:?}: a container ID is a positive number"
        ))),
    }
}

impl Cli {
    pub fn into_options(self, stdout_is_tty: bool) -> Result<Options> {
        let mode = match (&self.recover, self.positional.len()) {
            (Some(c), 0) => Mode::Recover {
                ctid: parse_ctid(c)?,
            },
            (Some(_), _) => {
                return Err(Error::Usage(
                    "--recover CTID takes no TARGET_HOST/CTID arguments".into(),
                ))
            }
            (None, 2) => Mode::Migrate {
                target: self.positional[0].clone(),
                ctid: parse_ctid(&self.positional[1])?,
            },
            (None, _) => {
                return Err(Error::Usage(
                    "expected TARGET_HOST CTID (see --help)".into(),
                ))
            }
        };
        if self.dst_shared && self.dst_device.is_some() {
            return Err(Error::Usage(
                "--dst-shared and --dst-device exclude each other".into(),
            ));
        }
        if self.dump_device.is_some() && !self.online {
            return Err(Error::Usage("--dump-device needs --online".into()));
        }
        if let Some(o) = &self.ssh {
            shlex::split(o)
                .ok_or_else(|| Error::Usage(format!("cannot parse --ssh options {o:?}")))?;
        }
        if let Some(o) = &self.rsync {
            shlex::split(o)
                .ok_or_else(|| Error::Usage(format!("cannot parse --rsync options {o:?}")))?;
        }
        Ok(Options {
            mode,
            remove_area: self.remove_area == "yes",
            ssh: self.ssh,
            rsync: self.rsync,
            keep_dst: self.keep_dst,
            online: self.online,
            check_only: self.check_only,
            verbose: self.verbose.min(4),
            times: self.times,
            dst_device: self.dst_device,
            dst_shared: self.dst_shared,
            dump_device: self.dump_device,
            accept_no_mmp: self.accept_no_mmp,
            json: self.json,
            progress: stdout_is_tty && !self.json && !self.no_progress,
            remote_helper: self.remote_helper,
            vzctl: self.vzctl,
            cpt_dir: self.cpt_dir,
            journal_dir: self.journal_dir,
        })
    }
}

/// Parse argv. `Err(Ok(text))` is help/version output (exit 0);
/// `Err(Err(e))` a usage error (exit 1).
pub fn parse<I, T>(
    args: I,
    stdout_is_tty: bool,
) -> std::result::Result<Options, std::result::Result<String, Error>>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.into_options(stdout_is_tty).map_err(Err),
        Err(e) => Err(clap_outcome(&e)),
    }
}

/// What a clap error means for both binaries: `Ok(text)` is help/version
/// output (exit 0), `Err` a usage error (exit 1) with clap's first line.
pub fn clap_outcome(e: &clap::Error) -> std::result::Result<String, Error> {
    match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            Ok(e.to_string())
        }
        _ => {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            Err(Error::Usage(first))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> std::result::Result<Options, std::result::Result<String, Error>> {
        let mut v = vec!["vzfs-migrate"];
        v.extend_from_slice(args);
        parse(v, false)
    }

    #[test]
    fn stock_options() {
        let o = p(&[
            "-r",
            "no",
            "--ssh=-p 2222 -o Foo=bar",
            "--rsync=-v",
            "--keep-dst",
            "--live",
            "-vvv",
            "-t",
            "-f",
            "--ssh-mux",
            "hn2",
            "101",
        ])
        .unwrap();
        assert_eq!(
            o.mode,
            Mode::Migrate {
                target: "hn2".into(),
                ctid: 101
            }
        );
        assert!(!o.remove_area);
        assert_eq!(o.ssh.as_deref(), Some("-p 2222 -o Foo=bar"));
        assert_eq!(o.rsync.as_deref(), Some("-v"));
        assert!(o.keep_dst && o.online && o.times);
        assert_eq!(o.verbose, 3);
        let o = p(&["--online", "--dry-run", "--remove-area", "yes", "hn2", "7"]).unwrap();
        assert!(o.online && o.check_only && o.remove_area);
        let o = p(&["--check-only", "hn2", "7"]).unwrap();
        assert!(o.check_only && !o.online);
    }

    #[test]
    fn our_options() {
        let o = p(&["--dst-device", "/dev/sdg1", "--json", "hn2", "123"]).unwrap();
        assert_eq!(o.dst_device.as_deref(), Some("/dev/sdg1"));
        assert!(o.json && !o.progress);
        let o = p(&["--dump-device", "/dev/VG/dump", "--online", "hn2", "123"]).unwrap();
        assert_eq!(o.dump_device.as_deref(), Some("/dev/VG/dump"));
        let o = p(&["--recover", "123"]).unwrap();
        assert_eq!(o.mode, Mode::Recover { ctid: 123 });
        assert!(p(&["--dst-shared", "hn2", "1"]).unwrap().dst_shared);
        // progress only on a terminal and without --json
        let o = parse(["vzfs-migrate", "hn2", "1"], true).unwrap();
        assert!(o.progress);
    }

    #[test]
    fn usage_errors_exit_1() {
        for args in [
            &["hn2"][..],
            &["hn2", "abc"],
            &["hn2", "0"],
            &["hn2", "-5"],
            &["--dst-shared", "--dst-device", "/dev/x", "hn2", "1"],
            &["--dump-device", "/dev/x", "hn2", "1"],
            &["--recover", "1", "hn2", "1"],
            &["-r", "maybe", "hn2", "1"],
            &["--bogus", "hn2", "1"],
            &["--ssh=-o 'x", "hn2", "1"],
        ] {
            match p(args) {
                Err(Err(e)) => assert_eq!(e.exit_code(), 1, "{args:?}: {e}"),
                other => panic!("{args:?}: expected a usage error, got {other:?}"),
            }
        }
    }

    #[test]
    fn help_is_not_an_error() {
        match p(&["--help"]) {
            Err(Ok(text)) => assert!(text.contains("--dst-device") && text.contains("Exit codes")),
            other => panic!("{other:?}"),
        }
    }
}
