//! The command line of `vzfs-hook` (clap definitions). It lives in the
//! library so that `vzfs-docgen` renders the man page and the shell
//! completions from exactly these definitions; `main.rs` parses with it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes, as printed in `--help` and in vzfs-hook(8).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "done, or nothing to do (shared container, already mounted, not mounted)"),
    (1, "usage: bad arguments, not started by vzctl, a config value the hook cannot use"),
    (2, "configuration file error (syntax, shell code, missing file), or a bad CTID; clap usage errors also exit 2"),
    (3, "device: missing, not a block device, no/unknown/wrong filesystem, ambiguous UUID=/LABEL="),
    (4, "refused: the mount state (here or, via MMP, on another node) forbids it; install: an admin's script is in the way (use --chain or --force); install --check: a hook is missing or not vzfs-hook; a chained script that is unsafe to run"),
    (5, "busy: the unmount kept failing with EBUSY (holders named)"),
    (6, "the filesystem is still alive on this node after the unmount (another mount namespace)"),
    (7, "fsck failed"),
    (8, "mount(2)/umount2(2) failed otherwise"),
    (9, "the hook's lock could not be taken"),
    (10, "system error (reading /proc, creating a directory, a file operation of install/uninstall, ...)"),
    (11, "the chained admin script failed (non-zero exit or killed by a signal)"),
];

#[derive(Parser)]
#[command(
    name = "vzfs-hook",
    version,
    about = "Mount an OpenVZ container's own device (VE_DEVICE) on VE_PRIVATE, safely",
    long_about = "Mount an OpenVZ container's own device (VE_DEVICE) on VE_PRIVATE, safely.\n\n\
Started by vzctl under a name ending in .premount or .postumount (vps.premount, \
101.postumount, ...: symlinks made by `vzfs-hook install`), it mounts VE_DEVICE on \
VE_PRIVATE before vzctl mounts the container, and unmounts it after vzctl unmounted \
it. vzctl passes only VEID and VE_CONFFILE; everything else is read from vz.conf and \
the container's config, which is parsed, never executed. The subcommands are for admins.",
    after_help = "Exit codes: 0 done; 1 usage; 2 config error or bad CTID; 3 device; 4 refused; \
5 busy; 6 still alive after the unmount; 7 fsck; 8 mount/umount; 9 lock; 10 system error; \
11 the chained admin script failed. See vzfs-hook(8)."
)]
pub struct Cli {
    /// vzctl's configuration directory (vz.conf, conf/CTID.conf, the action scripts)
    #[arg(long, value_name = "DIR", default_value = "/etc/vz", global = true)]
    pub etc_vz: PathBuf,
    /// More detail (repeat for debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors and warnings
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub cmd: OpCmd,
}

#[derive(Args)]
pub struct OpArgs {
    /// Container ID
    pub ctid: String,
}

/// Where the hooks go and what they point at (install, uninstall).
#[derive(Args)]
pub struct PlaceArgs {
    /// Only the per-container hooks CTID.premount/CTID.postumount (repeatable);
    /// default: the global vps.premount/vps.postumount
    #[arg(long = "ctid", value_name = "CTID")]
    pub ctids: Vec<String>,
    /// vzctl's action script directory [default: ETC_VZ/conf, or
    /// /etc/sysconfig/vz-scripts where only that exists]
    #[arg(long, value_name = "DIR")]
    pub scripts_dir: Option<PathBuf>,
    /// The vzfs-hook binary the symlinks point at
    #[arg(long, value_name = "PATH", default_value = crate::install::DEFAULT_HOOK_PATH)]
    pub hook_path: PathBuf,
}

#[derive(Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub place: PlaceArgs,
    /// Keep an admin's existing script (moved into SCRIPTS_DIR/vzfs-chained/) and
    /// run it from the hook: premount after ours succeeded, postumount before ours
    #[arg(long, conflicts_with_all = ["force", "check"])]
    pub chain: bool,
    /// Replace an admin's existing script; it is kept, not run, in
    /// SCRIPTS_DIR/vzfs-saved/ and `uninstall` puts it back
    #[arg(long, conflicts_with = "check")]
    pub force: bool,
    /// Change nothing: say what is installed, whether it is vzfs-hook, and what is chained
    #[arg(long)]
    pub check: bool,
}

#[derive(Subcommand)]
pub enum OpCmd {
    /// Mount VE_DEVICE on VE_PRIVATE (what vps.premount does)
    Premount(OpArgs),
    /// Unmount VE_DEVICE from VE_PRIVATE (what vps.postumount does)
    Postumount(OpArgs),
    /// Show what would be mounted where, and what is mounted now
    Status(OpArgs),
    /// Make vzctl's premount/postumount action scripts symlinks to vzfs-hook
    /// (an admin's existing script is refused unless --chain or --force)
    Install(InstallArgs),
    /// Remove our symlinks and put back every chained or kept-aside admin script
    Uninstall(PlaceArgs),
}
