//! vzctl invocations and `vzctl status` parsing (VZCTL-CONTRACT.md). On the
//! source every command runs with `--skiplock` (we hold the container lock);
//! on the target vzctl takes its own lock per command.

use crate::error::{Error, Kind, Result};
use crate::plan::CtState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub exists: bool,
    pub mounted: bool,
    pub running: bool,
    pub suspended: bool,
}

impl Status {
    pub fn state(&self) -> CtState {
        if self.running {
            CtState::Running
        } else if self.mounted {
            CtState::Mounted
        } else {
            CtState::Stopped
        }
    }
}

/// Parse `CTID <id> <exist|deleted> <mounted|unmounted> <running|down>[ suspended]`.
pub fn parse_status(text: &str, ctid: u32) -> Result<Status> {
    let bad = || {
        Error::check(
            Kind::System,
            format!("vzctl status {ctid}"),
            format!("unexpected output {:?}", text.trim()),
        )
    };
    let line = text
        .lines()
        .find(|l| l.starts_with("CTID ") || l.starts_with("VEID "))
        .ok_or_else(bad)?;
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 5 || f[1] != ctid.to_string() {
        return Err(bad());
    }
    let exists = match f[2] {
        "exist" => true,
        "deleted" => false,
        _ => return Err(bad()),
    };
    let mounted = match f[3] {
        "mounted" => true,
        "unmounted" => false,
        _ => return Err(bad()),
    };
    let running = match f[4] {
        "running" => true,
        "down" => false,
        _ => return Err(bad()),
    };
    let suspended = f.get(5) == Some(&"suspended");
    Ok(Status {
        exists,
        mounted,
        running,
        suspended,
    })
}

/// `vzctl [--skiplock] CMD CTID ARGS...`
pub fn argv(vzctl: &str, skiplock: bool, cmd: &str, ctid: u32, args: &[&str]) -> Vec<String> {
    let mut v = vec![vzctl.to_string()];
    if skiplock {
        v.push("--skiplock".into());
    }
    v.push(cmd.into());
    v.push(ctid.to_string());
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let s = parse_status("CTID 101 exist mounted running\n", 101).unwrap();
        assert!(s.exists && s.mounted && s.running && !s.suspended);
        assert_eq!(s.state(), CtState::Running);
        let s = parse_status("CTID 101 exist mounted down\n", 101).unwrap();
        assert_eq!(s.state(), CtState::Mounted);
        let s = parse_status("CTID 101 exist unmounted down suspended\n", 101).unwrap();
        assert!(s.suspended);
        assert_eq!(s.state(), CtState::Stopped);
        let s = parse_status("CTID 101 deleted unmounted down\n", 101).unwrap();
        assert!(!s.exists);
        assert!(parse_status("CTID 10 exist mounted running\n", 101).is_err());
        assert!(parse_status("garbage", 101).is_err());
    }

    #[test]
    fn argv_has_skiplock_before_command() {
        assert_eq!(
            argv(
                "vzctl",
                true,
                "chkpnt",
                5,
                &["--dump", "--dumpfile", "/vz/dump/Dump.5"]
            ),
            [
                "vzctl",
                "--skiplock",
                "chkpnt",
                "5",
                "--dump",
                "--dumpfile",
                "/vz/dump/Dump.5"
            ]
        );
        assert_eq!(
            argv("vzctl", false, "start", 5, &[]),
            ["vzctl", "start", "5"]
        );
    }
}
