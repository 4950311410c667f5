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
    comm_in(Path::new("/proc"), pid)
}

fn comm_in(proc: &Path, pid: u32) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    match std::fs::File::open(proc.join(pid.to_string()).join("comm"))
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
    pids_in(Path::new("/proc"))
}

fn pids_in(proc: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(proc)
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
    /// `mnt:[4026532...]`; where the kernel has no `/proc/PID/ns` (before
    /// Linux 3.8), `mounts [ids]`: the ids of the mounts that tell it apart
    pub ns: String,
    pub pid: u32,
    pub comm: String,
    pub mount_points: Vec<PathBuf>,
}

/// Mount namespaces (one representative process each) whose mount table
/// holds the filesystem `dev`, our own namespace included when `include_own`.
pub fn namespaces_holding(dev: DevNum, include_own: bool) -> Vec<NsHolder> {
    namespaces_holding_in(Path::new("/proc"), dev, include_own)
}

/// [`namespaces_holding`] with `proc` as `/proc`.
fn namespaces_holding_in(proc: &Path, dev: DevNum, include_own: bool) -> Vec<NsHolder> {
    // thread-self is 3.17+; before it (Debian 8's 3.16) self, the same for
    // the single-threaded hook
    let own = std::fs::read_link(proc.join("thread-self/ns/mnt"))
        .or_else(|_| std::fs::read_link(proc.join("self/ns/mnt")))
        .ok();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    // Linux before 3.8 (OpenVZ 6's 2.6.32) has no /proc/PID/ns: every
    // process's mount table is read, and a namespace is told by the ids of
    // the mounts of `dev` in it (mount ids are unique per namespace).
    let own_table = || {
        let p = if proc.join("thread-self").exists() {
            proc.join("thread-self/mountinfo")
        } else {
            proc.join("self/mountinfo")
        };
        std::fs::read_to_string(&p)
            .ok()
            .and_then(|t| MountTable::parse(&p, &t).ok())
            .map(|t| t.by_dev(dev).map(|e| e.mount_id).collect::<Vec<_>>())
    };
    let own_ids = if own.is_none() { own_table() } else { None };
    for pid in pids_in(proc) {
        let ns = std::fs::read_link(proc.join(format!("{pid}/ns/mnt"))).ok();
        if let Some(ns) = &ns {
            if !include_own && Some(ns) == own.as_ref() {
                continue;
            }
            if !seen.insert(ns.to_string_lossy().into_owned()) {
                continue;
            }
        }
        let path = proc.join(format!("{pid}/mountinfo"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(t) = MountTable::parse(&path, &text) else {
            continue;
        };
        let (ids, mps): (Vec<u64>, Vec<PathBuf>) = t
            .by_dev(dev)
            .map(|e| (e.mount_id, e.mount_point.clone()))
            .unzip();
        if mps.is_empty() {
            continue;
        }
        let ns = match ns {
            Some(ns) => ns.to_string_lossy().into_owned(),
            None => {
                if !include_own && own_ids.as_ref() == Some(&ids) {
                    continue;
                }
                let key = format!("mounts {ids:?}");
                if !seen.insert(key.clone()) {
                    continue;
                }
                key
            }
        };
        out.push(NsHolder {
            ns,
            pid,
            comm: comm_in(proc, pid),
            mount_points: mps,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux before 3.8 (no `/proc/PID/ns`): namespaces told apart by the
    /// ids of the device's mounts, ours left out.
    #[test]
    fn namespaces_without_proc_ns() {
        let d = std::env::temp_dir().join(format!("vzfs-holders-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let line = |id: u32, mp: &str| format!("{id} 1 7:3 / {mp} rw - ext4 /dev/loop3 rw\n");
        let other = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        for (pid, text) in [
            ("self", format!("{other}{}", line(50, "/vz/private/101"))),
            ("100", format!("{other}{}", line(50, "/vz/private/101"))),
            ("101", format!("{other}{}", line(77, "/vz/root/101"))),
            ("102", format!("{other}{}", line(77, "/vz/root/101"))),
            ("103", other.to_string()),
        ] {
            std::fs::create_dir_all(d.join(pid)).unwrap();
            std::fs::write(d.join(pid).join("mountinfo"), text).unwrap();
            std::fs::write(d.join(pid).join("comm"), "sh\n").unwrap();
        }
        let dev = DevNum { major: 7, minor: 3 };
        let h = namespaces_holding_in(&d, dev, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!((h[0].pid, h[0].ns.as_str()), (101, "mounts [77]"));
        assert_eq!(h[0].mount_points, [PathBuf::from("/vz/root/101")]);
        let h = namespaces_holding_in(&d, dev, true);
        assert_eq!(h.iter().map(|h| h.pid).collect::<Vec<_>>(), [100, 101]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
