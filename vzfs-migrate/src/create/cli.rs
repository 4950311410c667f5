//! Command line of `vzfs-create` (clap; also read by `vzfs-docgen` for the
//! man page and completions). Its own options come before or after the
//! CTID; everything after the first option it does not know is passed to
//! `vzctl create` (so vzctl's options come last).

use crate::error::{Error, Result};
use clap::{ArgAction, Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MkfsType {
    Ext4,
    Xfs,
}

impl MkfsType {
    pub fn name(self) -> &'static str {
        match self {
            MkfsType::Ext4 => "ext4",
            MkfsType::Xfs => "xfs",
        }
    }
}

pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "done (created, converted, checked, or --recover finished the interrupted run)"),
    (1, "usage"),
    (2, "a configuration file error (as vzfs-hook's 2)"),
    (6, "the copy (rsync) or its verification against the manifest failed, or the device is too small"),
    (7, "vzctl start/mount after the conversion failed"),
    (8, "vzctl stop before the conversion failed, or the container runs and --restart was not given"),
    (9, "the container exists (a config file alone counts), or its private area is not empty"),
    (10, "no such container (--convert)"),
    (14, "vzfs-hook is not vzctl's premount/postumount action script on this node"),
    (15, "vzctl create failed (missing template, ...), or the config could not be edited"),
    (16, "ploop is not supported"),
    (20, "locked, or an unfinished run (--recover)"),
    (21, "device check: not a block device, mounted or in use (in any mount namespace), holds data or another filesystem (--mkfs needs --force), the container already insulated or shared"),
    (22, "mounting or unmounting the device failed"),
    (23, "the undo or the cleanup is incomplete: the message lists what is left; run --recover"),
    (24, "interrupted by a signal (undone)"),
    (25, "system error"),
];

#[derive(Parser, Debug)]
#[command(
    name = "vzfs-create",
    version,
    about = "Create an OpenVZ container on its own device (insulated) in one command, or convert an existing one between shared and insulated",
    long_about = "Create an OpenVZ container on its own device (insulated) in one command, \
or convert an existing one between shared and insulated.\n\n\
vzfs-create CTID --device DEV [--mkfs ext4|xfs] [--mmp] [VZCTL CREATE OPTIONS]: checks the device \
(a block device mounted nowhere on this node and not in use, an empty filesystem or --mkfs), runs \
`vzctl create` into a temporary private area, mounts DEV on VE_PRIVATE through the vzfs library \
(every check of vzfs-hook), copies the files (rsync -aHAX --numeric-ids --sparse), verifies them \
against a manifest, writes VE_PRIVATE, VE_DEVICE and VE_DEVICE_FSTYPE into the config, unmounts \
the device and removes the temporary area. The container ends stopped and unmounted; `vzctl start` \
mounts it through vzfs-hook.\n\n\
vzfs-create --convert CTID --device DEV: moves an existing shared container onto DEV; \
vzfs-create --convert --to-shared CTID: back into a plain directory. The old private directory is \
kept next to the original (its path is printed and logged) unless --remove-old.\n\n\
Every step is journaled (LOCKDIR/CTID.create-journal): after any failure the steps are undone; \
after a crash or kill -9 `vzfs-create --recover CTID` finishes.",
    after_help = "Exit codes: 1 usage, 2 config file error, 6 copy or verification failed or device too small, \
7 start after conversion failed, 8 stop failed or running without --restart, 9 CT exists, 10 no such CT, \
14 vzfs-hook not installed as premount/postumount, 15 vzctl create or config edit failed, 16 ploop, \
20 locked or unfinished run (--recover), 21 device check, 22 device mount/umount, 23 undo or cleanup \
incomplete (--recover), 24 interrupted, 25 system error.\n\
Failpoints for tests: VZFS_FAILPOINTS=\"before:STEP=fail;after:STEP=crash;undo:STEP=fail\"."
)]
pub struct Cli {
    /// The container's own block device, as VE_DEVICE will name it: a path,
    /// a /dev/disk/by-* link, UUID=... or LABEL=... (on a SAN whose device
    /// names differ between nodes use UUID=... or /dev/disk/by-uuid/...).
    #[arg(long = "device", value_name = "DEV")]
    pub device: Option<String>,

    /// Make a new filesystem on the device first. Over an existing
    /// filesystem or partition table this needs --force.
    #[arg(long = "mkfs", value_name = "TYPE", value_enum)]
    pub mkfs: Option<MkfsType>,

    /// Turn on ext4 multi-mount protection (MMP): what keeps two nodes
    /// from mounting a SAN LUN at the same time.
    #[arg(long = "mmp")]
    pub mmp: bool,

    /// Allow --mkfs over an existing filesystem or partition table (it is
    /// destroyed).
    #[arg(long = "force")]
    pub force: bool,

    /// Convert the existing container CTID (shared -> insulated with
    /// --device, or insulated -> shared with --to-shared).
    #[arg(long = "convert")]
    pub convert: bool,

    /// With --convert: make the insulated container shared again (a plain
    /// directory); the VE_DEVICE* lines are removed, the device keeps its data.
    #[arg(long = "to-shared")]
    pub to_shared: bool,

    /// With --convert: stop a running container, convert it, start it again
    /// (the downtime is printed).
    #[arg(long = "restart")]
    pub restart: bool,

    /// With --convert: remove the old private directory afterwards instead
    /// of keeping it renamed next to the original.
    #[arg(long = "remove-old")]
    pub remove_old: bool,

    /// Run every check, print the plan, change nothing.
    #[arg(long = "check-only", visible_alias = "dry-run")]
    pub check_only: bool,

    /// Finish an interrupted run of CTID from its journal (undo, or the
    /// cleanup after the commit).
    #[arg(long = "recover")]
    pub recover: bool,

    /// Print the time of every step.
    #[arg(short = 't', long = "times")]
    pub times: bool,

    /// Print a machine-readable summary (JSON) on stdout.
    #[arg(long = "json")]
    pub json: bool,

    /// More messages (each step that found nothing to do, commands run).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// The vzctl to run.
    #[arg(
        long = "vzctl",
        value_name = "PATH",
        env = "VZFS_VZCTL",
        default_value = "vzctl"
    )]
    pub vzctl: String,

    /// Where the journal lives (default: LOCKDIR from vz.conf).
    #[arg(
        long = "journal-dir",
        value_name = "DIR",
        env = "VZFS_CREATE_JOURNAL_DIR"
    )]
    pub journal_dir: Option<PathBuf>,

    /// The container ID.
    #[arg(value_name = "CTID")]
    pub ctid: String,

    /// Options for `vzctl create` (--ostemplate, --config, --hostname,
    /// --ipadd, --private, --root, ...), last.
    #[arg(
        value_name = "VZCTL_CREATE_OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub vzctl_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Create,
    Convert,
    ToShared,
    Recover,
}

/// Validated options.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub ctid: u32,
    pub device: Option<String>,
    pub mkfs: Option<MkfsType>,
    pub mmp: bool,
    pub force: bool,
    pub restart: bool,
    pub remove_old: bool,
    pub check_only: bool,
    pub times: bool,
    pub json: bool,
    pub verbose: u8,
    pub vzctl: String,
    pub journal_dir: Option<PathBuf>,
    pub vzctl_args: Vec<String>,
}

impl Cli {
    pub fn into_options(self) -> Result<Options> {
        let ctid = crate::cli::parse_ctid(&self.ctid)?;
        let u = |m: &str| Err(Error::Usage(m.to_string()));
        let mode = match (self.recover, self.convert, self.to_shared) {
            (true, false, false) => Mode::Recover,
            (true, _, _) => return u("--recover CTID takes no --convert/--to-shared"),
            (false, true, true) => Mode::ToShared,
            (false, true, false) => Mode::Convert,
            (false, false, true) => return u("--to-shared needs --convert"),
            (false, false, false) => Mode::Create,
        };
        if mode != Mode::Create && !self.vzctl_args.is_empty() {
            return Err(Error::Usage(format!(
                "unexpected arguments {:?}: vzctl create options are for creating a container only",
                self.vzctl_args
            )));
        }
        match mode {
            Mode::Create | Mode::Convert if self.device.is_none() => {
                return u("--device DEV is required (the container's own block device)")
            }
            Mode::ToShared | Mode::Recover
                if self.device.is_some() || self.mkfs.is_some() || self.mmp || self.force =>
            {
                return u("--device, --mkfs, --mmp and --force are for creating or converting onto a device")
            }
            _ => {}
        }
        if mode == Mode::Create && (self.restart || self.remove_old) {
            return u("--restart and --remove-old are for --convert");
        }
        if mode == Mode::ToShared && self.remove_old {
            return u("--remove-old: with --to-shared the old data stays on the device, which vzfs-create never wipes");
        }
        if self.force && self.mkfs.is_none() {
            return u("--force only allows --mkfs over existing data");
        }
        if self.mmp && self.mkfs == Some(MkfsType::Xfs) {
            return u("--mmp is ext4 multi-mount protection; xfs has none");
        }
        if let Some(a) = self.vzctl_args.first() {
            if !a.starts_with("--") {
                return Err(Error::Usage(format!(
                    "unexpected argument {a:?} after the CTID (vzctl create options start with --)"
                )));
            }
        }
        Ok(Options {
            mode,
            ctid,
            device: self.device,
            mkfs: self.mkfs,
            mmp: self.mmp,
            force: self.force,
            restart: self.restart,
            remove_old: self.remove_old,
            check_only: self.check_only,
            times: self.times,
            json: self.json,
            verbose: self.verbose.min(4),
            vzctl: self.vzctl,
            journal_dir: self.journal_dir,
            vzctl_args: self.vzctl_args,
        })
    }
}

/// Parse argv. `Err(Ok(text))` is help/version output (exit 0);
/// `Err(Err(e))` a usage error (exit 1).
pub fn parse<I, T>(args: I) -> std::result::Result<Options, std::result::Result<String, Error>>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.into_options().map_err(Err),
        Err(e) => Err(crate::cli::clap_outcome(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> std::result::Result<Options, std::result::Result<String, Error>> {
        let mut v = vec!["vzfs-create"];
        v.extend_from_slice(args);
        parse(v)
    }

    #[test]
    fn our_options_before_or_after_the_ctid_vzctl_options_last() {
        let o = p(&[
            "101",
            "--device",
            "/dev/sdg1",
            "--mkfs",
            "ext4",
            "--mmp",
            "--ostemplate",
            "centos-6",
            "--hostname",
            "web",
            "--ipadd",
            "10.0.0.5",
        ])
        .unwrap();
        assert_eq!(o.mode, Mode::Create);
        assert_eq!(o.ctid, 101);
        assert_eq!(o.device.as_deref(), Some("/dev/sdg1"));
        assert_eq!(o.mkfs, Some(MkfsType::Ext4));
        assert!(o.mmp);
        assert_eq!(
            o.vzctl_args,
            [
                "--ostemplate",
                "centos-6",
                "--hostname",
                "web",
                "--ipadd",
                "10.0.0.5"
            ]
        );
        let o = p(&[
            "--device",
            "UUID=ab",
            "-t",
            "--json",
            "7",
            "--ostemplate",
            "x",
        ])
        .unwrap();
        assert!(o.times && o.json);
        assert_eq!(o.vzctl_args, ["--ostemplate", "x"]);
        let o = p(&["--convert", "101", "--device", "/dev/x", "--restart"]).unwrap();
        assert_eq!(o.mode, Mode::Convert);
        assert!(o.restart);
        let o = p(&["--convert", "--to-shared", "101"]).unwrap();
        assert_eq!(o.mode, Mode::ToShared);
        assert_eq!(p(&["--recover", "101"]).unwrap().mode, Mode::Recover);
        assert!(
            p(&["--check-only", "--device", "/dev/x", "5"])
                .unwrap()
                .check_only
        );
    }

    #[test]
    fn usage_errors_exit_1() {
        for args in [
            &["101"][..],
            &["abc", "--device", "/dev/x"],
            &["--to-shared", "101"],
            &["--convert", "--to-shared", "101", "--device", "/dev/x"],
            &[
                "--convert",
                "101",
                "--device",
                "/dev/x",
                "--ostemplate",
                "t",
            ],
            &["101", "--device", "/dev/x", "--force"],
            &["101", "--device", "/dev/x", "--mkfs", "xfs", "--mmp"],
            &["101", "--device", "/dev/x", "--mkfs", "btrfs"],
            &["101", "--device", "/dev/x", "--restart"],
            &["--convert", "--to-shared", "--remove-old", "101"],
            &["--recover", "--convert", "101"],
            &["101", "--device", "/dev/x", "stray"],
        ] {
            match p(args) {
                Err(Err(e)) => assert_eq!(e.exit_code(), 1, "{args:?}: {e}"),
                other => panic!("{args:?}: expected a usage error, got {other:?}"),
            }
        }
    }

    #[test]
    fn help_names_mmp_purpose() {
        match p(&["--help"]) {
            Err(Ok(t)) => assert!(t.contains("two nodes") && t.contains("--to-shared"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
}
