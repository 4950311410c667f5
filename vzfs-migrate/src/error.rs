//! Errors of vzfs-migrate and their exit codes.
//!
//! Every error carries what it is about (host, path, device, step) and the
//! operation that failed. The exit codes are stock vzmigrate's (kept for
//! compatibility, see VZCTL-CONTRACT.md) plus a few of our own above 20:
//!
//! | code | meaning |
//! |------|---------|
//! | 1  | usage |
//! | 2  | container is stopped but `--online` was requested; or a configuration file error (syntax, shell code in a value, a bad path) as vzfs-hook's exit 2 |
//! | 4  | cannot connect to the target (or the ssh link died) |
//! | 6  | copy (rsync) failed |
//! | 7  | start/mount/restore on the target failed |
//! | 8  | stop/checkpoint on the source failed |
//! | 9  | container already exists on the target |
//! | 10 | container does not exist on the source |
//! | 12 | an IP address of the container is in use on the target |
//! | 13 | disk quota: dumping it on the source (vzdqdump) or loading it on the target (vzdqload) failed |
//! | 14 | target lacks vzctl or the same vzfs-migrate helper version |
//! | 15 | cannot apply the config on the target |
//! | 16 | ploop layout is not supported |
//! | 19 | cannot read the target's config |
//! | 20 | container locked, or an unfinished migration journal exists |
//! | 21 | device/filesystem check failed (wrong, busy, mismatched device) |
//! | 22 | mounting or unmounting a container's device failed |
//! | 23 | the undo did not complete: the journal is kept, run `--recover` |
//! | 24 | interrupted by a signal (the migration was undone) |
//! | 25 | system error (journal, lock file, local I/O) |
//! | 26 | several containers (`--evacuate`, `TARGET CTID CTID...`): some did not move (refused by the checks, failed and undone, or not started); the table says which and why |

use std::path::PathBuf;

/// Exit codes (see the module docs).
pub mod code {
    pub const USAGE: i32 = 1;
    pub const CT_STOPPED: i32 = 2;
    /// The same number as vzfs-hook's configuration error.
    pub const CONFIG: i32 = 2;
    pub const CANT_CONNECT: i32 = 4;
    pub const COPY: i32 = 6;
    pub const START_TARGET: i32 = 7;
    pub const STOP_SOURCE: i32 = 8;
    pub const EXISTS: i32 = 9;
    pub const NOEXIST: i32 = 10;
    pub const IP_IN_USE: i32 = 12;
    pub const QUOTA: i32 = 13;
    pub const TARGET_SOFTWARE: i32 = 14;
    pub const APPLY_CONFIG: i32 = 15;
    pub const UNSUP_PLOOP: i32 = 16;
    pub const REMOTE_CONFIG: i32 = 19;
    pub const LOCKED: i32 = 20;
    pub const DEVICE_CHECK: i32 = 21;
    pub const DEVICE_MOUNT: i32 = 22;
    pub const UNDO_INCOMPLETE: i32 = 23;
    pub const INTERRUPTED: i32 = 24;
    pub const SYSTEM: i32 = 25;
    /// Several containers: some did not move (see [`crate::batch`]).
    pub const SOME_NOT_MOVED: i32 = 26;
}

/// What an error is about, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Usage,
    CtStopped,
    /// A configuration file error (as vzfs-hook's exit 2).
    Config,
    Connect,
    Copy,
    StartTarget,
    StopSource,
    Exists,
    NoExist,
    IpInUse,
    Quota,
    TargetSoftware,
    ApplyConfig,
    Ploop,
    RemoteConfig,
    Locked,
    DeviceCheck,
    DeviceMount,
    UndoIncomplete,
    Interrupted,
    System,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        use code::*;
        match self {
            Kind::Usage => USAGE,
            Kind::CtStopped => CT_STOPPED,
            Kind::Config => CONFIG,
            Kind::Connect => CANT_CONNECT,
            Kind::Copy => COPY,
            Kind::StartTarget => START_TARGET,
            Kind::StopSource => STOP_SOURCE,
            Kind::Exists => EXISTS,
            Kind::NoExist => NOEXIST,
            Kind::IpInUse => IP_IN_USE,
            Kind::Quota => QUOTA,
            Kind::TargetSoftware => TARGET_SOFTWARE,
            Kind::ApplyConfig => APPLY_CONFIG,
            Kind::Ploop => UNSUP_PLOOP,
            Kind::RemoteConfig => REMOTE_CONFIG,
            Kind::Locked => LOCKED,
            Kind::DeviceCheck => DEVICE_CHECK,
            Kind::DeviceMount => DEVICE_MOUNT,
            Kind::UndoIncomplete => UNDO_INCOMPLETE,
            Kind::Interrupted => INTERRUPTED,
            Kind::System => SYSTEM,
        }
    }

    /// Parse the kind name a remote helper reports.
    pub fn from_name(s: &str) -> Option<Kind> {
        Some(match s {
            "usage" => Kind::Usage,
            "device-check" => Kind::DeviceCheck,
            "config" => Kind::Config,
            "target-software" => Kind::TargetSoftware,
            "device-mount" => Kind::DeviceMount,
            "apply-config" => Kind::ApplyConfig,
            "remote-config" => Kind::RemoteConfig,
            "exists" => Kind::Exists,
            "copy" => Kind::Copy,
            "start-target" => Kind::StartTarget,
            "quota" => Kind::Quota,
            "system" => Kind::System,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::CtStopped => "ct-stopped",
            Kind::Config => "config",
            Kind::Connect => "connect",
            Kind::Copy => "copy",
            Kind::StartTarget => "start-target",
            Kind::StopSource => "stop-source",
            Kind::Exists => "exists",
            Kind::NoExist => "noexist",
            Kind::IpInUse => "ip-in-use",
            Kind::Quota => "quota",
            Kind::TargetSoftware => "target-software",
            Kind::ApplyConfig => "apply-config",
            Kind::Ploop => "ploop",
            Kind::RemoteConfig => "remote-config",
            Kind::Locked => "locked",
            Kind::DeviceCheck => "device-check",
            Kind::DeviceMount => "device-mount",
            Kind::UndoIncomplete => "undo-incomplete",
            Kind::Interrupted => "interrupted",
            Kind::System => "system",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("usage: {0}")]
    Usage(String),

    /// A check or operation failed; `what` names the host/path/device and
    /// the operation, `detail` says what to do.
    #[error("{what}: {detail}")]
    Check {
        kind: Kind,
        what: String,
        detail: String,
    },

    #[error("{host}: `{argv}` failed ({status}){}", tail_suffix(.stderr))]
    Command {
        kind: Kind,
        host: String,
        argv: String,
        status: String,
        stderr: String,
    },

    #[error("cannot connect to {host}: {detail}")]
    Connect { host: String, detail: String },

    #[error("ssh link to {host} lost while running `{argv}`{}", tail_suffix(.stderr))]
    LinkLost {
        host: String,
        argv: String,
        stderr: String,
    },

    #[error("{op} {}", .path.display())]
    Io {
        kind: Kind,
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("step {step}")]
    Step {
        step: String,
        #[source]
        source: Box<Error>,
    },

    #[error("failpoint {0} triggered")]
    Failpoint(String),

    #[error("interrupted by {}; {} was undone", .0, crate::transport::run_noun())]
    Interrupted(String),

    #[error("{0}")]
    Undo(String),

    #[error("{what}")]
    Lib {
        kind: Kind,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn tail_suffix(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {}", t.replace('\n', " | "))
    }
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Error::Usage(_) => Kind::Usage,
            Error::Check { kind, .. } => *kind,
            Error::Command { kind, .. } => *kind,
            Error::Connect { .. } | Error::LinkLost { .. } => Kind::Connect,
            Error::Io { kind, .. } => *kind,
            Error::Step { source, .. } => source.kind(),
            Error::Failpoint(_) => Kind::System,
            Error::Interrupted(_) => Kind::Interrupted,
            Error::Undo(_) => Kind::UndoIncomplete,
            Error::Lib { kind, .. } => *kind,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    pub fn check(kind: Kind, what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Check {
            kind,
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub fn io(
        kind: Kind,
        op: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            kind,
            op: op.into(),
            path: path.into(),
            source,
        }
    }

    pub fn lib(
        kind: Kind,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Lib {
            kind,
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// Re-kind an error (e.g. a failed remote command in the stop step is a
    /// "stop on source" failure).
    pub fn with_kind(self, k: Kind) -> Error {
        match self {
            Error::Command {
                host,
                argv,
                status,
                stderr,
                ..
            } => Error::Command {
                kind: k,
                host,
                argv,
                status,
                stderr,
            },
            Error::Check { what, detail, .. } => Error::Check {
                kind: k,
                what,
                detail,
            },
            other => other,
        }
    }

    /// The whole chain on one line: `a: b: c`.
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            s.push_str(": ");
            s.push_str(&e.to_string());
            cur = e.source();
        }
        s
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_is_one_line_with_context() {
        let e = Error::Step {
            step: "sync-1".into(),
            source: Box::new(Error::Command {
                kind: Kind::Copy,
                host: "hn2".into(),
                argv: "rsync -aHAX a b".into(),
                status: "exit code 23".into(),
                stderr: "rsync: oops\nrsync error: some files\n".into(),
            }),
        };
        let s = e.chain();
        assert_eq!(
            s,
            "step sync-1: hn2: `rsync -aHAX a b` failed (exit code 23): rsync: oops | rsync error: some files"
        );
        assert!(!s.contains('\n'));
        assert_eq!(e.exit_code(), 6);
    }

    #[test]
    fn io_error_names_path() {
        let e = Error::io(
            Kind::System,
            "cannot write journal",
            "/vz/lock/101.migrate-journal",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        let s = e.chain();
        assert!(s.starts_with("cannot write journal /vz/lock/101.migrate-journal: "));
        assert_eq!(e.exit_code(), 25);
    }

    #[test]
    fn with_kind_rekinds_commands() {
        let e = Error::Command {
            kind: Kind::System,
            host: "localhost".into(),
            argv: "vzctl stop 101".into(),
            status: "exit code 3".into(),
            stderr: String::new(),
        }
        .with_kind(Kind::StopSource);
        assert_eq!(e.exit_code(), 8);
        assert_eq!(
            e.to_string(),
            "localhost: `vzctl stop 101` failed (exit code 3)"
        );
    }
}
