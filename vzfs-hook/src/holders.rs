//! Who keeps a filesystem alive: processes with an open file, a cwd, a root
//! or a mapping on it, and mount namespaces that still hold a mount of it.
//! Comparisons use the device number of the filesystem (from mountinfo or
//! `stat`), which is the same in every mount namespace. Only used on error
//! paths (an EBUSY unmount, a device claimed elsewhere), never on the hot path.

use crate::mountinfo::{DevNum, MountTable};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A process that uses the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    /// `cwd`, `root`, `fd 3`, `mmap`.
    pub how: Vec<String>,
}

/// The process name (at most 64 bytes read; it may hold any byte, so it
/// is escaped wherever it is printed).
fn comm(pid: u32) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    match std::fs::File::open(format!("/proc/{pid}/comm"))
        .and_then(|f| f.take(64).read_to_end(&mut buf))
    {
        Ok(_) => {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        Err(_) => "?".into(),
    }
}

fn pids() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn on_dev(p: &Path, dev: DevNum) -> bool {
    std::fs::metadata(p)
        .map(|m| DevNum::from_rdev(m.dev()) == dev)
        .unwrap_or(false)
}

/// Processes (other than this one) that hold files, a cwd, a root or a
/// mapping on the filesystem `dev`.
pub fn processes_using(dev: DevNum) -> Vec<Holder> {
    let me = std::process::id();
    let mut out = Vec::new();
    for pid in pids() {
        if pid == me {
            continue;
        }
        let base = PathBuf::from(format!("/proc/{pid}"));
        let mut how = Vec::new();
        if on_dev(&base.join("cwd"), dev) {
            how.push("cwd".to_string());
        }
        if on_dev(&base.join("root"), dev) {
            how.push("root".to_string());
        }
        if let Ok(rd) = std::fs::read_dir(base.join("fd")) {
            for e in rd.flatten() {
                if on_dev(&e.path(), dev) {
                    how.push(format!("fd {}", e.file_name().to_string_lossy()));
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
            let want = format!("{:02x}:{:02x}", dev.major, dev.minor);
            if maps
                .lines()
                .any(|l| l.split_whitespace().nth(3) == Some(want.as_str()))
            {
                how.push("mmap".to_string());
            }
        }
        if !how.is_empty() {
            out.push(Holder {
                pid,
                comm: comm(pid),
                how,
            });
        }
    }
    out
}

/// A mount namespace other than ours that still has the filesystem mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsHolder {
    /// `mnt:[4026532...]`
    pub ns: String,
    pub pid: u32,
    pub comm: String,
    pub mount_points: Vec<PathBuf>,
}

/// Mount namespaces (one representative process each) whose mount table
/// holds the filesystem `dev`, our own namespace included when `include_own`.
pub fn namespaces_holding(dev: DevNum, include_own: bool) -> Vec<NsHolder> {
    let own = std::fs::read_link("/proc/thread-self/ns/mnt").ok();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for pid in pids() {
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !include_own && Some(&ns) == own.as_ref() {
            continue;
        }
        if !seen.insert(ns.clone()) {
            continue;
        }
        let path = PathBuf::from(format!("/proc/{pid}/mountinfo"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(t) = MountTable::parse(&path, &text) else {
            continue;
        };
        let mps: Vec<PathBuf> = t.by_dev(dev).map(|e| e.mount_point.clone()).collect();
        if !mps.is_empty() {
            out.push(NsHolder {
                ns: ns.to_string_lossy().into_owned(),
                pid,
                comm: comm(pid),
                mount_points: mps,
            });
        }
    }
    out
}

/// `pid 42 (sleep: cwd, fd 3), pid 43 (bash: root)`
pub fn describe_processes(h: &[Holder]) -> String {
    h.iter()
        .map(|h| {
            format!(
                "pid {} ({}: {})",
                h.pid,
                crate::text::escape(&h.comm),
                h.how.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `mount namespace mnt:[...] of pid 42 (unshare) at /mnt/x`
pub fn describe_namespaces(h: &[NsHolder]) -> String {
    h.iter()
        .map(|h| {
            format!(
                "mount namespace {} of pid {} ({}) at {}",
                crate::text::escape(&h.ns),
                h.pid,
                crate::text::escape(&h.comm),
                h.mount_points
                    .iter()
                    .map(|p| crate::text::path(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
