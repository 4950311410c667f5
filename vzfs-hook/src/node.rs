//! Node-local facts and operations that the tools above the hook share
//! (`vzfs-migrate` on both nodes, `vzfs-create`): what a node knows about a
//! block device ([`device_facts`]: resolved, probed, where it is mounted,
//! whether anything holds it, MMP, size, who holds it), the filesystem of a
//! container living elsewhere than its own mount points
//! ([`foreign_mounts`]), the state of a directory that is to become a
//! private area ([`path_state`], [`mounted_on`], [`wipe_dir`],
//! [`rmdir_if_empty`]), atomic file writes ([`write_atomic`]) and the
//! per-container action scripts ([`ct_scripts`]). Nothing here mounts or
//! unmounts: that is [`crate::hook`]'s. With the `serde` feature the facts
//! serialize (the migration's helper protocol).

use crate::config::VzEtc;
use crate::device::{self, DeviceSpec, Probe};
use crate::error::{Error, Result};
use crate::holders;
use crate::mountinfo::{DevNum, MountTable};
use crate::sys::{RealSys, Sys};
use std::path::{Path, PathBuf};

/// What a node knows about a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DevFacts {
    /// As given (path, UUID=, LABEL=).
    pub spec: String,
    pub node: PathBuf,
    /// major:minor
    pub dev: String,
    /// None: no filesystem vzfs recognises (`what` says what it holds).
    pub fstype: Option<String>,
    pub what: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Where it is mounted in this mount namespace.
    pub mounted_at: Vec<PathBuf>,
    /// Nothing on this node holds it (no mount in any namespace).
    pub released: bool,
    /// ext2/3/4: whether multi-mount protection is on; None for other types.
    #[cfg_attr(feature = "serde", serde(default))]
    pub mmp: Option<bool>,
    /// Size in bytes (the same LUN has the same size on every node).
    #[cfg_attr(feature = "serde", serde(default))]
    pub size: Option<u64>,
    /// When it is in use: who holds it (processes with pid and command,
    /// other mount namespaces with pid, command and mount points).
    #[cfg_attr(feature = "serde", serde(default))]
    pub holders: Option<String>,
}

/// Who holds the filesystem `dev` on this node, in words: the processes
/// (pid, command, how) and the mount namespaces other than ours (pid,
/// command, namespace, mount points). None when nobody does.
pub fn describe_holders(dev: DevNum) -> Option<String> {
    let procs = holders::processes_using(dev);
    let nss = holders::namespaces_holding(dev, false);
    let mut parts = Vec::new();
    if !procs.is_empty() {
        parts.push(format!("used by {}", holders::describe_processes(&procs)));
    }
    if !nss.is_empty() {
        parts.push(format!("mounted in {}", holders::describe_namespaces(&nss)));
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("; "))
    }
}

/// This mount namespace's mount table.
pub fn mount_table() -> Result<MountTable> {
    let text = RealSys
        .mountinfo()
        .map_err(|e| Error::io("read", crate::sys::MOUNTINFO, e))?;
    MountTable::parse(Path::new(crate::sys::MOUNTINFO), &text).map_err(|e| Error::Io {
        path: e.path.clone(),
        op: "parse",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })
}

/// Before a mounted (or running) insulated container is touched: every
/// place its filesystem `dev` lives on this node other than the container's
/// own `VE_PRIVATE` and `VE_ROOT` (the same filesystem mounted at another
/// path in this mount namespace, or held in another mount namespace, which
/// would make the unmount leave it alive). The mount namespaces of the
/// container's own processes (their root is on the filesystem) are its
/// own, and a copy that is a peer or a slave of the container's own mount
/// goes away with its unmount (propagation). Each entry names the path, or
/// the pid, command and namespace.
pub fn foreign_mounts(dev: DevNum, own: &[PathBuf]) -> Result<Vec<String>> {
    let own: Vec<PathBuf> = own
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let mut out = Vec::new();
    let t = mount_table()?;
    // peer groups of the container's own mounts: a copy in another mount
    // namespace that is a peer (`shared:N`) or a slave (`master:N`) of one
    // of them is unmounted with it (propagation), so it holds nothing
    let groups: Vec<String> = t
        .by_dev(dev)
        .filter(|e| own.contains(&e.mount_point))
        .flat_map(|e| e.optional.iter())
        .filter_map(|o| o.strip_prefix("shared:").map(str::to_string))
        .collect();
    let propagated = |e: &crate::mountinfo::MountEntry| {
        e.optional.iter().any(|o| {
            o.strip_prefix("shared:")
                .or_else(|| o.strip_prefix("master:"))
                .is_some_and(|g| groups.iter().any(|x| x == g))
        })
    };
    for e in t.by_dev(dev) {
        if !own.contains(&e.mount_point) && !propagated(e) {
            out.push(format!(
                "mounted at {} in this mount namespace",
                e.mount_point.display()
            ));
        }
    }
    for mut ns in holders::namespaces_holding(dev, false) {
        let root_on_fs = std::fs::metadata(format!("/proc/{}/root", ns.pid))
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                DevNum::from_rdev(m.dev()) == dev
            })
            .unwrap_or(false);
        if root_on_fs {
            continue;
        }
        let path = PathBuf::from(format!("/proc/{}/mountinfo", ns.pid));
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(other) = MountTable::parse(&path, &text) {
                ns.mount_points = other
                    .by_dev(dev)
                    .filter(|e| !propagated(e))
                    .map(|e| e.mount_point.clone())
                    .collect();
            }
        }
        if ns.mount_points.is_empty() {
            continue;
        }
        out.push(holders::describe_namespaces(std::slice::from_ref(&ns)));
    }
    Ok(out)
}

/// Resolve and probe a device spec on this node (read-only).
pub fn device_facts(spec: &str) -> Result<DevFacts> {
    let parsed = DeviceSpec::parse(spec).map_err(Error::Usage)?;
    let dev = device::resolve(&parsed)?;
    let (fstype, what_else, uuid, label, mmp) = match device::probe(&dev.node)? {
        Probe::Fs(fs) => {
            let mmp = fs.ext.as_ref().map(|x| x.mmp.is_some());
            (Some(fs.fstype), None, fs.uuid, fs.label, mmp)
        }
        Probe::Other(w) => (None, Some(w.to_string()), None, None, None),
    };
    let table = mount_table()?;
    let mounted_at: Vec<PathBuf> = table
        .by_dev(dev.dev)
        .map(|e| e.mount_point.clone())
        .collect();
    let released = device::is_released(&dev.node)?;
    let holders = if released && mounted_at.is_empty() {
        None
    } else {
        describe_holders(dev.dev)
    };
    let size = block_size_bytes(&dev.node);
    Ok(DevFacts {
        spec: spec.to_string(),
        node: dev.node,
        dev: dev.dev.to_string(),
        fstype,
        what: what_else,
        uuid,
        label,
        mounted_at,
        released,
        mmp,
        size,
        holders,
    })
}

/// The size of a block device in bytes (its end, by seeking), None if unknown.
pub fn block_size_bytes(node: &Path) -> Option<u64> {
    use std::io::Seek;
    let mut f = std::fs::File::open(node).ok()?;
    f.seek(std::io::SeekFrom::End(0)).ok()
}

/// The state of a directory that is to become a private area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum PathState {
    Absent,
    Empty,
    /// Holds only `lost+found` (a fresh filesystem).
    LostFound,
    NonEmpty,
    NotDir,
}

pub fn path_state(p: &Path) -> PathState {
    match std::fs::symlink_metadata(p) {
        Err(_) => PathState::Absent,
        Ok(m) if !m.is_dir() => PathState::NotDir,
        Ok(_) => match std::fs::read_dir(p) {
            Err(_) => PathState::NonEmpty,
            Ok(rd) => {
                let names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
                if names.is_empty() {
                    PathState::Empty
                } else if names.len() == 1 && names[0] == "lost+found" {
                    PathState::LostFound
                } else {
                    PathState::NonEmpty
                }
            }
        },
    }
}

/// What is mounted exactly on `p` (canonical compare): `source (type, dev)`.
pub fn mounted_on(p: &Path) -> Result<Option<String>> {
    let Ok(canon) = std::fs::canonicalize(p) else {
        return Ok(None);
    };
    let t = mount_table()?;
    Ok(t.top_at(&canon)
        .map(|e| format!("{} ({}, {})", e.source, e.fstype, e.dev)))
}

/// Remove everything in the private area except `lost+found`. Refuses when
/// anything other than the private area itself is mounted below it.
pub fn wipe_dir(private: &Path) -> Result<usize> {
    let Ok(canon) = std::fs::canonicalize(private) else {
        return Ok(0);
    };
    let t = mount_table()?;
    let below: Vec<String> = t
        .under(&canon)
        .filter(|e| e.mount_point != canon)
        .map(|e| e.mount_point.display().to_string())
        .collect();
    if !below.is_empty() {
        return Err(Error::refused(format!(
            "remove copied data in {}: refused: mounts below it ({}); unmount them first",
            canon.display(),
            below.join(", ")
        )));
    }
    let rd = std::fs::read_dir(&canon).map_err(|e| Error::io("list", &canon, e))?;
    let mut n = 0;
    for ent in rd.flatten() {
        if ent.file_name() == "lost+found" {
            continue;
        }
        let p = ent.path();
        let r = match ent.file_type() {
            Ok(ft) if ft.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        r.map_err(|e| Error::io("remove", &p, e))?;
        n += 1;
    }
    Ok(n)
}

/// Remove a directory if it is empty; `Ok(false)` when it is not (or absent).
pub fn rmdir_if_empty(p: &Path) -> Result<bool> {
    match path_state(p) {
        PathState::Empty => std::fs::remove_dir(p)
            .map(|_| true)
            .map_err(|e| Error::io("remove directory", p, e)),
        _ => Ok(false),
    }
}

/// Write `data` to `path` atomically: a temp file beside it (a stale one is
/// removed; created exclusively, never through a symlink), given `mode`
/// whatever the umask, written, fsynced, renamed over `path`, directory
/// fsynced. On any failure the temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.vzfs-tmp",
        path.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|_| f.write_all(data))
        .and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", &tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("rename into place", path, e)
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync", dir, e))
}

/// Per-container action scripts vzctl runs (`<CTID>.premount`, ...).
pub const CT_SCRIPTS: &[&str] = &["premount", "mount", "start", "stop", "umount", "postumount"];

/// The per-container action scripts present in the scripts directory.
pub fn ct_scripts(etc: &VzEtc, ctid: &str) -> Vec<PathBuf> {
    CT_SCRIPTS
        .iter()
        .map(|s| etc.scripts_dir().join(format!("{ctid}.{s}")))
        .filter(|p| p.is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_states() {
        let d = std::env::temp_dir().join(format!("vzfs-node-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(path_state(&d), PathState::Absent);
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(path_state(&d), PathState::Empty);
        std::fs::create_dir(d.join("lost+found")).unwrap();
        assert_eq!(path_state(&d), PathState::LostFound);
        std::fs::write(d.join("f"), "x").unwrap();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/c"), "x").unwrap();
        assert_eq!(path_state(&d), PathState::NonEmpty);
        assert_eq!(path_state(&d.join("f")), PathState::NotDir);
        assert_eq!(wipe_dir(&d).unwrap(), 2);
        assert_eq!(path_state(&d), PathState::LostFound);
        std::fs::remove_dir(d.join("lost+found")).unwrap();
        assert!(rmdir_if_empty(&d).unwrap());
        assert!(!d.exists());
    }

    #[test]
    fn atomic_write() {
        let d = std::env::temp_dir().join(format!("vzfs-node-w-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("101.conf");
        write_atomic(&p, b"A=1\n", 0o644).unwrap();
        write_atomic(&p, b"A=2\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"A=2\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_device_specs() {
        assert_eq!(
            device_facts("sdg1").unwrap_err().exit_code(),
            crate::error::exit::USAGE
        );
        let e = device_facts("/dev/vzfs-no-such-device").unwrap_err();
        assert!(e.to_string().contains("/dev/vzfs-no-such-device"), "{e}");
    }
}
