//! Command line of `vzfs-migrate`: stock vzmigrate's options and exit codes
//! plus ours, parsed with clap into validated [`Options`].
//!
//! `vzfs-migrate [options] TARGET_HOST CTID`, several containers at once
//! (`TARGET_HOST CTID...`, `--to T1,T2 CTID...`, `--evacuate TARGET_HOST`,
//! `--evacuate --to T1,T2`: [`crate::batch`]), `vzfs-migrate --recover
//! CTID|all`, and `vzfs-migrate helper ...` (the target side, run over ssh; see
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
Several containers: `vzfs-migrate [options] TARGET_HOST CTID CTID...`, `--to T1,T2 CTID...`, \
`--evacuate TARGET_HOST` or `--evacuate --to T1,T2` (every container of this node; spread over the targets \
round robin in CTID order); --jobs migrations at once, of which --copy-jobs copies (a, b, c, d1). \
Recover every unfinished migration of this node with `--recover all`.\n\
Exit codes: 1 usage, 2 CT stopped (--online) or a config file error (as vzfs-hook's 2), 4 cannot connect, 6 copy failed, \
7 start on target failed, 8 stop on source failed, 9 CT exists on target, 10 no such CT, \
12 IP address in use on target, 13 disk quota (vzdqdump/vzdqload) failed, 14 target lacks vzctl, the same vzfs-migrate or vzfs-hook as its premount/postumount scripts, 15 apply config, 16 ploop unsupported, \
19 cannot read remote config, 20 locked or unfinished journal (--recover), 21 device check, \
22 device mount/umount, 23 undo incomplete (--recover), 24 interrupted, 25 system error, \
26 several containers: some did not move (see the table).\n\
Failpoints for tests: VZFS_FAILPOINTS=\"before:STEP=fail;after:STEP=crash;undo:STEP=fail;after:STEP=sleep(MS)\" \
(CTID@NAME: that container only)."
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

    /// Finish the undo (or the commit) of an interrupted migration from its
    /// journal; `all`: every unfinished migration of this node (e.g. of an
    /// interrupted evacuation), one after the other.
    #[arg(long = "recover", value_name = "CTID|all")]
    pub recover: Option<String>,

    /// Move every container of this node (to TARGET_HOST, or spread over
    /// the --to targets).
    #[arg(long = "evacuate")]
    pub evacuate: bool,

    /// Several targets, comma-separated: the containers are spread over
    /// them round robin, in CTID order (no TARGET_HOST argument then).
    #[arg(long = "to", value_name = "T1,T2", value_delimiter = ',')]
    pub to: Vec<String>,

    /// Several containers: how many migrations run at once (one ssh master
    /// and one helper session per target serve them all).
    #[arg(long = "jobs", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: u16,

    /// Several containers: how many of the running migrations may copy
    /// data (scenarios a, b, c, d1; they compete for the network and the
    /// disks); SAN handoffs (d2) take the other --jobs slots.
    #[arg(long = "copy-jobs", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub copy_jobs: u16,

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

    /// TARGET_HOST CTID... (CTID... with --to; TARGET_HOST only with --evacuate)
    #[arg(value_name = "TARGET_HOST CTID", num_args = 0..)]
    pub positional: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Migrate {
        target: String,
        ctid: u32,
    },
    /// Several containers ([`crate::batch`]): to `targets` (round robin);
    /// `ctids` None: every container of this node (`--evacuate`).
    Batch {
        targets: Vec<String>,
        ctids: Option<Vec<u32>>,
    },
    Recover {
        ctid: u32,
    },
    /// `--recover all`: every journal of this node.
    RecoverAll,
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
    /// Several containers: migrations at once, of which copies.
    pub jobs: usize,
    pub copy_jobs: usize,
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
        let mode = self.mode()?;
        if let Mode::Batch { .. } = mode {
            if self.dst_device.is_some() {
                return Err(Error::Usage(
                    "--dst-device names one container's device: it cannot serve several containers (migrate that one alone)".into(),
                ));
            }
            if self.dump_device.is_some() {
                return Err(Error::Usage(
                    "--dump-device serves one online migration at a time: it cannot serve several containers (migrate those alone)".into(),
                ));
            }
        }
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
            jobs: self.jobs.into(),
            copy_jobs: self.copy_jobs.into(),
        })
    }

    /// What the positional arguments, `--recover`, `--evacuate` and
    /// `--to` ask for.
    fn mode(&self) -> Result<Mode> {
        let pos = &self.positional;
        if let Some(c) = &self.recover {
            if !pos.is_empty() || self.evacuate || !self.to.is_empty() {
                return Err(Error::Usage(
                    "--recover CTID|all takes no TARGET_HOST/CTID arguments, --evacuate or --to"
                        .into(),
                ));
            }
            return Ok(if c == "all" {
                Mode::RecoverAll
            } else {
                Mode::Recover {
                    ctid: parse_ctid(c)?,
                }
            });
        }
        let mut targets: Vec<String> = Vec::new();
        for t in &self.to {
            let t = t.trim();
            if t.is_empty() {
                return Err(Error::Usage("--to: an empty target name".into()));
            }
            if targets.iter().any(|x| x == t) {
                return Err(Error::Usage(format!("--to: target {t} is named twice")));
            }
            targets.push(t.to_string());
        }
        let ct_args: &[String] = if targets.is_empty() {
            match pos.split_first() {
                Some((t, rest)) => {
                    targets.push(t.clone());
                    rest
                }
                None => {
                    return Err(Error::Usage(
                        "expected TARGET_HOST CTID (see --help)".into(),
                    ))
                }
            }
        } else {
            pos
        };
        if self.evacuate {
            if !ct_args.is_empty() {
                return Err(Error::Usage(format!(
                    "--evacuate moves every container of this node: no CTID arguments ({}); name the containers without --evacuate to move only those",
                    ct_args.join(" ")
                )));
            }
            return Ok(Mode::Batch {
                targets,
                ctids: None,
            });
        }
        let mut ctids: Vec<u32> = Vec::new();
        for a in ct_args {
            let c = parse_ctid(a)?;
            if ctids.contains(&c) {
                return Err(Error::Usage(format!(
                    "CT {c} is named twice: each container can be migrated once"
                )));
            }
            ctids.push(c);
        }
        match (ctids.as_slice(), targets.len()) {
            ([], _) => Err(Error::Usage(
                "expected TARGET_HOST CTID (see --help)".into(),
            )),
            ([c], 1) if self.to.is_empty() => Ok(Mode::Migrate {
                target: targets[0].clone(),
                ctid: *c,
            }),
            _ => Ok(Mode::Batch {
                targets,
                ctids: Some(ctids),
            }),
        }
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
    fn several_containers() {
        let o = p(&["hn2", "101", "102", "--jobs", "8"]).unwrap();
        assert_eq!(
            o.mode,
            Mode::Batch {
                targets: vec!["hn2".into()],
                ctids: Some(vec![101, 102])
            }
        );
        assert_eq!((o.jobs, o.copy_jobs), (8, 1));
        let o = p(&["--evacuate", "hn2"]).unwrap();
        assert_eq!(
            o.mode,
            Mode::Batch {
                targets: vec!["hn2".into()],
                ctids: None
            }
        );
        assert_eq!((o.jobs, o.copy_jobs), (4, 1));
        let o = p(&["--evacuate", "--to", "hn2,hn3", "--copy-jobs", "2"]).unwrap();
        assert_eq!(
            o.mode,
            Mode::Batch {
                targets: vec!["hn2".into(), "hn3".into()],
                ctids: None
            }
        );
        assert_eq!(o.copy_jobs, 2);
        // --to with one CTID is still a batch (the targets list decides)
        let o = p(&["--to", "hn2", "7"]).unwrap();
        assert!(matches!(o.mode, Mode::Batch { .. }));
        assert_eq!(p(&["--recover", "all"]).unwrap().mode, Mode::RecoverAll);
    }

    #[test]
    fn several_containers_usage_errors() {
        for args in [
            &["hn2", "101", "102", "101"][..],
            &["--evacuate", "hn2", "101"],
            &["--evacuate"],
            &["--to", "hn2,hn2", "1"],
            &["--to", "hn2"],
            &["--jobs", "0", "hn2", "1", "2"],
            &["--copy-jobs", "33", "hn2", "1", "2"],
            &["--dst-device", "/dev/x", "hn2", "1", "2"],
            &["--recover", "all", "--evacuate"],
        ] {
            match p(args) {
                Err(Err(e)) => assert_eq!(e.exit_code(), 1, "{args:?}: {e}"),
                other => panic!("{args:?}: expected a usage error, got {other:?}"),
            }
        }
        match p(&["hn2", "5", "5"]) {
            Err(Err(e)) => assert!(e.to_string().contains("CT 5 is named twice"), "{e}"),
            other => panic!("{other:?}"),
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
