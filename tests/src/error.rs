//! Errors of the lab: every variant names the host, device, file or command
//! it is about and the operation that failed, so a failing test says what to fix.

use std::path::PathBuf;

/// Result type of the lab library.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// What went wrong while building, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The machine cannot run the lab (not root, no loop devices, a tool missing).
    #[error("the lab cannot run on this machine: {reason} (run scripts/install-prereqs as root, or set VZFS_SKIP_ROOT_TESTS=1 to skip lab tests)")]
    Preflight { reason: String },

    /// A command could not be started at all.
    #[error("cannot run `{cmd}` on {place}: {source}")]
    Spawn {
        place: String,
        cmd: String,
        #[source]
        source: std::io::Error,
    },

    /// A command ran and failed.
    #[error("`{cmd}` on {place} failed ({status}): {stderr_tail}")]
    Command {
        place: String,
        cmd: String,
        status: String,
        stderr_tail: String,
    },

    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A system call failed.
    #[error("{op} {what}: {source}")]
    Sys {
        op: &'static str,
        what: String,
        #[source]
        source: nix::Error,
    },

    /// Something did not become ready in time (sshd, a namespace holder, a loop detach).
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },

    /// Attaching or detaching a loop device failed (the message names the
    /// device and the image).
    #[error("loop device: {0}")]
    Loop(String),

    /// The test asked for something the lab does not have.
    #[error("{0}")]
    Usage(String),

    /// Teardown could not release everything; each line names what is left.
    #[error("lab {lab} teardown left things behind:\n  {}", .problems.join("\n  "))]
    Teardown { lab: String, problems: Vec<String> },
}

impl LabError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
