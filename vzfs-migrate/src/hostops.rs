//! Operations on one node's containers and devices, used by the source
//! in-process, by the target through `vzfs-migrate helper` (so both sides
//! run the same code) and by `vzfs-create`. The node-local facts and
//! operations themselves live in the library ([`vzfs::node`]); here they
//! get vzfs-migrate's error kinds (exit codes). Every mount and unmount
//! goes through the vzfs library ([`vzfs::hook::premount`] /
//! [`vzfs::hook::postumount`]): nothing here calls mount(2) itself.

use crate::error::{Error, Kind, Result};
use std::path::{Path, PathBuf};
use vzfs::config::{VzConfig, VzEtc};
use vzfs::device::DeviceSpec;
use vzfs::hook::{self, CtFs, DeviceCfg, Outcome};
use vzfs::mountinfo::DevNum;
use vzfs::sys::RealSys;

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

pub use vzfs::node::{
    block_size_bytes, describe_holders, path_state, DevFacts, PathState, CT_SCRIPTS,
};

/// [`vzfs::node::foreign_mounts`] with our error kinds.
pub fn foreign_mounts(dev: DevNum, own: &[PathBuf]) -> Result<Vec<String>> {
    vzfs::node::foreign_mounts(dev, own)
        .map_err(|e| lib_err("mounts of the container's filesystem", e))
}

/// Resolve and probe a device spec on this node ([`vzfs::node::device_facts`]);
/// a wrong spec or device is a device check error (exit 21).
pub fn device_facts(spec: &str) -> Result<DevFacts> {
    vzfs::node::device_facts(spec).map_err(|e| lib_err(format!("device {spec}"), e))
}

/// What is mounted exactly on `p` ([`vzfs::node::mounted_on`]).
pub fn mounted_on(p: &Path) -> Result<Option<String>> {
    vzfs::node::mounted_on(p)
        .map_err(|e| Error::lib(Kind::System, format!("mounts on {}", p.display()), e))
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

/// Remove everything in the private area except `lost+found`
/// ([`vzfs::node::wipe_dir`]).
pub fn wipe_dir(private: &Path) -> Result<usize> {
    vzfs::node::wipe_dir(private).map_err(|e| {
        Error::lib(
            Kind::System,
            format!("remove copied data in {}", private.display()),
            e,
        )
    })
}

/// Remove a directory if it is empty ([`vzfs::node::rmdir_if_empty`]).
pub fn rmdir_if_empty(p: &Path) -> Result<bool> {
    vzfs::node::rmdir_if_empty(p)
        .map_err(|e| Error::lib(Kind::System, format!("remove directory {}", p.display()), e))
}

/// Write `data` to `path` atomically ([`vzfs::node::write_atomic`]); a
/// failure is "cannot apply the config" (exit 15).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    vzfs::node::write_atomic(path, data, mode)
        .map_err(|e| Error::lib(Kind::ApplyConfig, format!("write {}", path.display()), e))
}

/// The per-container action scripts present in the scripts directory.
pub fn ct_scripts(etc: &VzEtc, ctid: u32) -> Vec<PathBuf> {
    vzfs::node::ct_scripts(etc, &ctid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
