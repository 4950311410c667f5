//! The library's error type. Every variant names the file, device, path or
//! host involved and the operation, and its message tells the admin what to
//! do. [`Error::exit_code`] maps it to the documented exit codes of the
//! binaries (README, "Exit codes").

use std::io;
use std::path::PathBuf;

/// Exit codes of `vzfs-hook` (documented in the README).
pub mod exit {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 1;
    pub const CONFIG: i32 = 2;
    pub const DEVICE: i32 = 3;
    pub const REFUSED: i32 = 4;
    pub const BUSY: i32 = 5;
    pub const STILL_ALIVE: i32 = 6;
    pub const FSCK: i32 = 7;
    pub const MOUNT: i32 = 8;
    pub const LOCK: i32 = 9;
    pub const SYSTEM: i32 = 10;
    /// A chained admin script failed (`install --chain`).
    pub const CHAINED_FAILED: i32 = 11;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    /// `VE_DEVICE` cannot be used: missing, not a block device, ambiguous, wrong type.
    #[error("device {device}: {msg}")]
    Device { device: String, msg: String },

    /// The mount state on this node (or the MMP block) forbids the action.
    #[error("{msg}")]
    Refused { msg: String },

    /// umount2 kept failing with EBUSY.
    #[error("cannot unmount {device} from {path}: it is busy{holders}; stop those processes (or `vzctl umount` the container) and run `vzctl umount` again")]
    Busy {
        device: String,
        path: PathBuf,
        holders: String,
    },

    /// The filesystem survived the unmount somewhere else on this node.
    #[error("{device} is unmounted from {path}, but the filesystem is STILL ALIVE on this node: {held_by}. Do NOT mount it on another node now; unmount it there (or end that namespace) first")]
    StillAlive {
        device: String,
        path: PathBuf,
        held_by: String,
    },

    #[error("fsck of {device} failed ({cmd} exit {code}): {tail}; repair the filesystem by hand before starting the container")]
    Fsck {
        device: String,
        cmd: String,
        code: i32,
        tail: String,
    },

    #[error("{op} {device} on {path} failed: {errno}{hint}")]
    Mount {
        op: &'static str,
        device: String,
        path: PathBuf,
        errno: nix::errno::Errno,
        hint: String,
    },

    #[error("lock {path}: {op}: {source}")]
    Lock {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Config(_) => exit::CONFIG,
            Error::Device { .. } => exit::DEVICE,
            Error::Refused { .. } => exit::REFUSED,
            Error::Busy { .. } => exit::BUSY,
            Error::StillAlive { .. } => exit::STILL_ALIVE,
            Error::Fsck { .. } => exit::FSCK,
            Error::Mount { .. } => exit::MOUNT,
            Error::Lock { .. } => exit::LOCK,
            Error::Io { .. } => exit::SYSTEM,
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub fn device(device: impl std::fmt::Display, msg: impl Into<String>) -> Error {
        Error::Device {
            device: device.to_string(),
            msg: msg.into(),
        }
    }

    pub fn refused(msg: impl Into<String>) -> Error {
        Error::Refused { msg: msg.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats an error and its whole source chain on one line: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
