//! Operations on one node's containers and devices, used by the source
//! in-process and by the target through `vzfs-migrate helper` (so both sides
//! run the same code). Every mount and unmount goes through the vzfs
//! library ([`vzfs::hook::premount`] / [`vzfs::hook::postumount`]): nothing
//! here calls mount(2) itself.

use crate::error::{Error, Kind, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vzfs::config::{VzConfig, VzEtc};
use vzfs::device::{self, DeviceSpec, Probe};
use vzfs::holders;
use vzfs::hook::{self, CtFs, DeviceCfg, Outcome};
use vzfs::mountinfo::{DevNum, MountTable};
use vzfs::sys::{RealSys, Sys};

/// Map a library error to ours, keeping it as the source.
pub fn lib_err(what: impl Into<String>, e: vzfs::Error) -> Error {
    use vzfs::Error as L;
    let kind = match &e {
        // the same class (and exit code 2) as vzfs-hook's configuration error
        L::Config(_) => Kind::Config,
        L::Usage(_) | L::Device { .. } | L::Refused { .. } => Kind::DeviceCheck,
        L::Busy { .. } | L::StillAlive { .. } | L::Fsck { .. } | L::Mount { .. } => {
            Kind::DeviceMount
        }
        L::Lock { .. } | L::Io { .. } => Kind::System,
    };
    Error::lib(kind, what, e)
}

pub fn cfg_err(kind: Kind, what: impl Into<String>, e: vzfs::config::ConfigError) -> Error {
    Error::lib(kind, what, e)
}

/// What a node knows about a block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub mmp: Option<bool>,
    /// Size in bytes (the same LUN has the same size on every node).
    #[serde(default)]
    pub size: Option<u64>,
    /// When it is in use: who holds it (processes with pid and command,
    /// other mount namespaces with pid, command and mount points).
    #[serde(default)]
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
    let propagated = |e: &vzfs::mountinfo::MountEntry| {
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

fn mount_table() -> Result<MountTable> {
    let text = RealSys
        .mountinfo()
        .map_err(|e| Error::io(Kind::System, "cannot read", vzfs::sys::MOUNTINFO, e))?;
    MountTable::parse(Path::new(vzfs::sys::MOUNTINFO), &text).map_err(|e| {
        Error::check(
            Kind::System,
            vzfs::sys::MOUNTINFO.to_string(),
            e.to_string(),
        )
    })
}

/// Resolve and probe a device spec on this node.
pub fn device_facts(spec: &str) -> Result<DevFacts> {
    let what = format!("device {spec}");
    let parsed = DeviceSpec::parse(spec).map_err(|m| Error::check(Kind::DeviceCheck, &what, m))?;
    let dev = device::resolve(&parsed).map_err(|e| lib_err(what.clone(), e))?;
    let (fstype, what_else, uuid, label, mmp) =
        match device::probe(&dev.node).map_err(|e| lib_err(what.clone(), e))? {
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
    let released = device::is_released(&dev.node).map_err(|e| lib_err(what.clone(), e))?;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

/// Is something mounted exactly on `p` (canonical compare)?
pub fn mounted_on(p: &Path) -> Result<Option<String>> {
    let Ok(canon) = std::fs::canonicalize(p) else {
        return Ok(None);
    };
    let t = mount_table()?;
    Ok(t.top_at(&canon)
        .map(|e| format!("{} ({}, {})", e.source, e.fstype, e.dev)))
}

/// Load a container's filesystem settings on this node.
pub fn ct_fs(etc: &VzEtc, ctid: u32) -> Result<(VzConfig, CtFs)> {
    let id = ctid.to_string();
    let cfg = VzConfig::load(etc, &id).map_err(|e| {
        let kind = match e {
            vzfs::config::ConfigError::NoCtConfig { .. } => Kind::NoExist,
            _ => Kind::Config,
        };
        cfg_err(kind, format!("config of CT {ctid}"), e)
    })?;
    let fs = CtFs::from_config(&cfg).map_err(|e| lib_err(format!("config of CT {ctid}"), e))?;
    Ok((cfg, fs))
}

/// Mount the container's device on its private area (idempotent).
pub fn ct_mount(etc: &VzEtc, ct: &CtFs) -> Result<Outcome> {
    hook::premount(&RealSys, etc, ct).map_err(|e| {
        lib_err(
            format!("mount device of CT {} on {}", ct.ctid, ct.private.display()),
            e,
        )
    })
}

/// Unmount the container's device and confirm it is released (idempotent).
pub fn ct_umount(etc: &VzEtc, ct: &CtFs) -> Result<Outcome> {
    hook::postumount(&RealSys, etc, ct).map_err(|e| {
        lib_err(
            format!(
                "unmount device of CT {} from {}",
                ct.ctid,
                ct.private.display()
            ),
            e,
        )
    })
}

/// Settings to mount an arbitrary device (the dump device) on `path`.
pub fn adhoc_fs(ctid: u32, lockdir: &Path, spec: &str, path: &Path) -> Result<CtFs> {
    let parsed = DeviceSpec::parse(spec)
        .map_err(|m| Error::check(Kind::DeviceCheck, format!("dump device {spec}"), m))?;
    Ok(CtFs {
        ctid: ctid.to_string(),
        private: path.to_path_buf(),
        root: None,
        device: Some(DeviceCfg {
            spec: parsed,
            origin: "--dump-device".into(),
            fstype: None,
            options: String::new(),
            fsck: vzfs::fsck::FsckMode::Auto,
        }),
        lockdir: lockdir.to_path_buf(),
        verbosity: None,
        global: None,
    })
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
        return Err(Error::check(
            Kind::System,
            format!("remove copied data in {}", canon.display()),
            format!(
                "refused: mounts below it ({}); unmount them first",
                below.join(", ")
            ),
        ));
    }
    let rd =
        std::fs::read_dir(&canon).map_err(|e| Error::io(Kind::System, "cannot list", &canon, e))?;
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
        r.map_err(|e| Error::io(Kind::System, "cannot remove", &p, e))?;
        n += 1;
    }
    Ok(n)
}

/// Remove a directory if it is empty (or holds only lost+found when
/// `allow_lf` and it is not a mount point).
pub fn rmdir_if_empty(p: &Path) -> Result<bool> {
    match path_state(p) {
        PathState::Empty => std::fs::remove_dir(p)
            .map(|_| true)
            .map_err(|e| Error::io(Kind::System, "cannot remove directory", p, e)),
        _ => Ok(false),
    }
}

/// Write `data` to `path` atomically (temp + fsync + rename + dir fsync).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.vzfs-tmp",
        path.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io(Kind::ApplyConfig, "cannot create", &tmp, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(Kind::ApplyConfig, "cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(Kind::ApplyConfig, "cannot rename into place", path, e)
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(Kind::ApplyConfig, "cannot fsync", dir, e))
}

/// Per-container action scripts vzctl runs (`<CTID>.premount`, ...).
pub const CT_SCRIPTS: &[&str] = &["premount", "mount", "start", "stop", "umount", "postumount"];

/// The per-container action scripts present in the scripts directory.
pub fn ct_scripts(etc: &VzEtc, ctid: u32) -> Vec<PathBuf> {
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
        let d = std::env::temp_dir().join(format!("vzfs-hostops-{}", std::process::id()));
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
        let d = std::env::temp_dir().join(format!("vzfs-hostops-w-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("101.conf");
        write_atomic(&p, b"A=1\n", 0o644).unwrap();
        write_atomic(&p, b"A=2\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"A=2\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_device_spec_is_a_device_check_error() {
        let e = device_facts("sdg1").unwrap_err();
        assert_eq!(e.exit_code(), 21);
        assert!(e.chain().starts_with("device sdg1: "), "{}", e.chain());
        let e = device_facts("/dev/vzfs-no-such-device").unwrap_err();
        assert_eq!(e.exit_code(), 21);
        assert!(
            e.chain().contains("/dev/vzfs-no-such-device"),
            "{}",
            e.chain()
        );
    }
}
