//! The premount and postumount operations (and `status`) on a container's
//! own filesystem. These are the library entry points that `vzfs-hook`,
//! `vzfs-migrate` and `vzfs-create` share: [`CtFs`] says which device goes on
//! which private area (from a container's config, or built by a caller), and
//! [`premount`] / [`postumount`] do every check, under the container's vzfs
//! lock, and report one line per action.
//!
//! premount holds, besides the container lock, the filesystem lock
//! ([`crate::lock::FsLock`], keyed by UUID) from its first look at the mount
//! table until the mount is verified: the checks and the mount they guard are
//! one step for every container, device path and tool of this node.

use crate::config::{ConfigFile, VzConfig, VzEtc};
use crate::device::{self, Device, DeviceSpec, FsInfo, Probe};
use crate::error::{Error, Result};
use crate::fsck::{self, FsckMode};
use crate::holders;
use crate::lock::{CtLock, FsLock};
use crate::log;
use crate::mountinfo::MountTable;
use crate::nodecache;
use crate::paths::{self, MountPoint};
use crate::platform;
use crate::sys::{self, MountRequest, Sys};
use crate::timefmt;
use nix::errno::Errno;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long premount/postumount wait for another vzfs operation on the same container.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long postumount keeps retrying an unmount that fails with EBUSY.
pub const BUSY_RETRY: Duration = Duration::from_millis(1500);

/// The device part of a container's settings.
#[derive(Debug, Clone)]
pub struct DeviceCfg {
    pub spec: DeviceSpec,
    /// Where `VE_DEVICE` was set, `file:line`, for messages.
    pub origin: String,
    pub fstype: Option<String>,
    pub options: String,
    pub fsck: FsckMode,
}

/// A container's filesystem settings.
#[derive(Debug, Clone)]
pub struct CtFs {
    pub ctid: String,
    pub private: PathBuf,
    pub root: Option<PathBuf>,
    /// `None`: a shared container (no `VE_DEVICE`).
    pub device: Option<DeviceCfg>,
    pub lockdir: PathBuf,
    /// `VZFS_VERBOSE` from the config, if set.
    pub verbosity: Option<u8>,
    /// The global `vz.conf` as already read, so premount's check of the
    /// other containers' areas does not read it again; `None`: read it then.
    pub global: Option<ConfigFile>,
}

fn origin_of(cfg: &VzConfig, key: &str) -> String {
    cfg.get(key)
        .map(|v| format!("{}:{}", v.origin.path.display(), v.origin.line))
        .unwrap_or_default()
}

/// A value of `key` vzfs cannot use: a configuration error (exit 2) naming
/// the file and line.
fn conf_err(cfg: &VzConfig, key: &str, msg: String) -> Error {
    match cfg.get(key) {
        Some(v) => Error::Config(crate::config::ConfigError::BadValue {
            path: v.origin.path.clone(),
            line: v.origin.line,
            key: key.to_string(),
            value: v.raw.clone(),
            problem: msg,
        }),
        None => Error::Usage(format!("{key}: {msg}")),
    }
}

impl CtFs {
    /// Reads the settings from a loaded configuration (global + container).
    pub fn from_config(cfg: &VzConfig) -> Result<CtFs> {
        let ctid = cfg.ctid().to_string();
        let private = cfg.path_value("VE_PRIVATE")?.ok_or_else(|| {
            Error::Usage("VE_PRIVATE is set neither in the global config nor in the container's; set it (e.g. VE_PRIVATE=/vz/private/$VEID)".into())
        })?;
        let root = cfg.path_value("VE_ROOT")?;
        let lockdir = cfg
            .path_value("LOCKDIR")?
            .unwrap_or_else(|| PathBuf::from("/vz/lock"));
        let verbosity = match cfg.literal("VZFS_VERBOSE")? {
            None => None,
            Some(v) => Some(
                v.raw
                    .parse::<u8>()
                    .ok()
                    .filter(|n| *n <= 2)
                    .ok_or_else(|| {
                        conf_err(
                            cfg,
                            "VZFS_VERBOSE",
                            "must be 0 (errors only), 1 (one line per action) or 2 (debug)".into(),
                        )
                    })?,
            ),
        };
        let device = match cfg.expanded("VE_DEVICE")? {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) => {
                let spec = DeviceSpec::parse(&v).map_err(|m| conf_err(cfg, "VE_DEVICE", m))?;
                let fstype = cfg
                    .literal("VE_DEVICE_FSTYPE")?
                    .map(|v| v.raw.clone())
                    .filter(|s| !s.is_empty());
                if let Some(t) = &fstype {
                    if !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
                    {
                        return Err(conf_err(
                            cfg,
                            "VE_DEVICE_FSTYPE",
                            "not a filesystem type name (ext4, xfs, ...)".into(),
                        ));
                    }
                }
                let options = cfg
                    .literal("VE_DEVICE_OPTIONS")?
                    .map(|v| v.raw.clone())
                    .unwrap_or_default();
                sys::parse_options(&options).map_err(|o| {
                    conf_err(
                        cfg,
                        "VE_DEVICE_OPTIONS",
                        format!(
                            "option {} changes how mount(2) works and is not accepted here; remove it",
                            crate::text::value(&o)
                        ),
                    )
                })?;
                let fsck = match cfg.literal("VE_DEVICE_FSCK")? {
                    None => FsckMode::Auto,
                    Some(v) => FsckMode::parse(&v.raw).ok_or_else(|| {
                        conf_err(cfg, "VE_DEVICE_FSCK", "must be no, auto or yes".into())
                    })?,
                };
                Some(DeviceCfg {
                    spec,
                    origin: origin_of(cfg, "VE_DEVICE"),
                    fstype,
                    options,
                    fsck,
                })
            }
        };
        Ok(CtFs {
            ctid,
            private,
            root,
            device,
            lockdir,
            verbosity,
            global: Some(cfg.global().clone()),
        })
    }
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No `VE_DEVICE`: nothing to do.
    Shared,
    Mounted {
        device: PathBuf,
        path: PathBuf,
        fstype: String,
    },
    AlreadyMounted {
        device: PathBuf,
        path: PathBuf,
    },
    NotMounted {
        path: PathBuf,
    },
    Unmounted {
        device: PathBuf,
        path: PathBuf,
    },
}

fn read_table(sys: &dyn Sys) -> Result<MountTable> {
    let text = sys
        .mountinfo()
        .map_err(|e| Error::io("read", sys::MOUNTINFO, e))?;
    MountTable::parse(Path::new(sys::MOUNTINFO), &text).map_err(|e| Error::Io {
        path: e.path.clone(),
        op: "parse",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })
}

/// Where containers live, for the rules of a private area: every other
/// container's `VE_ROOT` and `VE_PRIVATE` (canonical where they exist), this
/// container's own `VE_ROOT`, and the directories of the `vz.conf`
/// templates. Each config of `/etc/vz/conf` is read once.
fn container_areas(etc: &VzEtc, ct: &CtFs) -> Result<paths::Areas> {
    let mut out = paths::Areas::default();
    let canon = |p: PathBuf| paths::canonical_if_exists(&p).ok().flatten().unwrap_or(p);
    if let Some(r) = &ct.root {
        out.areas.push((
            ct.ctid.as_str().into(),
            "VE_ROOT",
            paths::normal(&canon(r.clone())).into(),
        ));
    }
    // the global config as already read (no copy on the hot path)
    let global =
        match &ct.global {
            Some(g) => std::borrow::Cow::Borrowed(g),
            None => std::borrow::Cow::Owned(
                crate::config::read(&etc.global_conf()).unwrap_or_else(|_| ConfigFile {
                    path: etc.global_conf(),
                    entries: Vec::new(),
                }),
            ),
        };
    for key in ["VE_PRIVATE", "VE_ROOT"] {
        if let Some(dir) = global.first(key).and_then(|v| paths::template_dir(&v.raw)) {
            out.templates.push((key, canon(dir)));
        }
    }
    out.areas.extend(nodecache::other_areas(
        &etc.scripts_dir(),
        &etc.global_conf(),
        &global,
        &ct.ctid,
        &ct.lockdir,
    )?);
    Ok(out)
}

/// Refuses when the same filesystem (by UUID) is mounted on this node
/// through another device node. Uses the kernel's per-type list of mounted
/// devices in `/sys/fs/<type>`, which covers every mount namespace; where
/// the kernel has none (xfs before 3.18, btrfs before 3.14; ext2/ext3 under
/// their own drivers on 2.6.32), the mounts of this namespace
/// ([`nodecache::mounted_here_uuids`]).
fn check_same_fs_elsewhere(fs: &FsInfo, dev: &Device, lockdir: &Path) -> Result<()> {
    let Some(uuid) = &fs.uuid else { return Ok(()) };
    let dir = match fs.fstype.as_str() {
        "ext2" | "ext3" | "ext4" => "/sys/fs/ext4",
        "xfs" => "/sys/fs/xfs",
        "btrfs" if Path::new("/sys/fs/btrfs").is_dir() => {
            if Path::new("/sys/fs/btrfs").join(uuid).exists() {
                return Err(Error::refused(format!(
                    "the btrfs filesystem UUID={uuid} on {} is already mounted on this node through another device; unmount it there first",
                    dev.node.display()
                )));
            }
            return Ok(());
        }
        "btrfs" => "/sys/fs/btrfs",
        _ => return Ok(()),
    };
    // Every mounted filesystem of the type, whatever its size (a LUN resized
    // on one path is still the same filesystem): its UUID from the node
    // index while the kernel's entry for that mount is the one recorded,
    // else from its superblock. A match is read again before the refusal.
    let mut mounted = if Path::new(dir).is_dir() {
        nodecache::mounted_uuids(dir, &dev.node, lockdir)
    } else {
        nodecache::mounted_here_uuids(&fs.fstype, &dev.node)
    };
    // 2.6.32 mounts ext2/ext3 with drivers of their own, which are not in
    // /sys/fs/ext4: such a filesystem may be mounted under either name
    if matches!(fs.fstype.as_str(), "ext2" | "ext3") {
        for t in ["ext2", "ext3"] {
            mounted.extend(nodecache::mounted_here_uuids(t, &dev.node));
        }
    }
    for (node, other_uuid) in mounted {
        if other_uuid != *uuid {
            continue;
        }
        let Ok(m) = std::fs::metadata(&node) else {
            continue;
        };
        if !std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()) {
            continue;
        }
        if let Ok(Probe::Fs(other)) = device::probe_mounted(&node) {
            if other.uuid.as_deref() == Some(uuid.as_str()) {
                let dn =
                    crate::mountinfo::DevNum::from_rdev(std::os::unix::fs::MetadataExt::rdev(&m));
                let wher = holders::namespaces_holding(dn, true);
                return Err(Error::refused(format!(
                    "the filesystem on {} (UUID={uuid}) is already mounted on this node through {}{}; mounting it twice corrupts it: unmount it there first",
                    dev.node.display(),
                    node.display(),
                    if wher.is_empty() { String::new() } else { format!(" ({})", holders::describe_namespaces(&wher)) }
                )));
            }
        }
    }
    Ok(())
}

/// Reads the MMP block; refuses when another node is updating it.
fn check_mmp(dev: &Device, rdr: &device::Reader, fs: &FsInfo) -> Result<()> {
    let Some(ext) = &fs.ext else { return Ok(()) };
    let Some(first) = rdr.read_mmp(ext)? else {
        return Ok(());
    };
    if first.is_clean() {
        log::debug(&format!("MMP of {}: clean", dev.node.display()));
        return Ok(());
    }
    let since = if ext.mtime > 0 {
        format!(", mounted there since {}", timefmt::utc(ext.mtime))
    } else {
        String::new()
    };
    if first.is_fsck() {
        return Err(Error::refused(format!(
            "{}: e2fsck is running on node {:?} (its device {}) since {}; wait for it to finish",
            dev.node.display(),
            first.nodename,
            first.bdevname,
            timefmt::utc(first.time)
        )));
    }
    let interval = ext.mmp.map(|(_, i)| i).unwrap_or(5).max(1) as u64;
    let deadline = Duration::from_secs(2 * interval + 1);
    log::info(&format!(
        "{}: MMP block names node {:?} (last update {}); checking whether it is alive (up to {}s)",
        dev.node.display(),
        first.nodename,
        timefmt::utc(first.time),
        deadline.as_secs()
    ));
    let start = Instant::now();
    while start.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = rdr.read_mmp(ext)?.unwrap_or(first.clone());
        if now.is_clean() {
            return Ok(());
        }
        if now.seq != first.seq {
            return Err(Error::refused(format!(
                "{} is in use by node {:?} (its device {}){since}, MMP updated {}: the filesystem is mounted on another node. Stop the container there (or unmount it) before mounting it here",
                dev.node.display(),
                now.nodename,
                now.bdevname,
                timefmt::utc(now.time)
            )));
        }
    }
    log::warn(&format!(
        "{}: MMP block names node {:?} but it has not been updated for {}s: that node seems to have died with the filesystem mounted; mounting (the kernel checks MMP again)",
        dev.node.display(),
        first.nodename,
        deadline.as_secs()
    ));
    Ok(())
}

fn mount_hint(errno: Errno, fs: &str) -> String {
    match errno {
        Errno::EBUSY => {
            "; the device is in use (on a SAN: maybe mounted on another node; see `dmesg`)".into()
        }
        Errno::EINVAL => {
            format!("; wrong VE_DEVICE_OPTIONS for {fs}, or a damaged filesystem (see `dmesg`)")
        }
        Errno::ENODEV => format!("; this kernel has no {fs} support (load its module)"),
        Errno::EROFS | Errno::EACCES => "; the device is read-only".into(),
        _ => "; see `dmesg`".into(),
    }
}

/// Refuses a filesystem with a feature the running kernel cannot mount
/// (an OpenVZ 6 node's 2.6.32 has no MMP, metadata_csum, xfs v5, ...),
/// naming the feature and the kernel release, instead of the bare EINVAL
/// mount(2) would give.
fn check_kernel_can_mount(
    spec: &DeviceSpec,
    dev: &Device,
    fs: &FsInfo,
    kernel: &platform::Kernel,
) -> Result<()> {
    let missing = platform::unmountable(fs, kernel);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(f, v)| format!("{f} (Linux {v} or later)"))
        .collect();
    Err(Error::device(
        spec,
        format!(
            "{} holds {} with feature{} {}, which this node's kernel {} cannot mount; \
             recreate the filesystem with this node's mkfs, remove the feature on the unmounted filesystem \
             with a newer e2fsprogs where it can be removed (tune2fs -O ^FEATURE), or run a newer kernel",
            dev.node.display(),
            fs.fstype,
            if missing.len() > 1 { "s" } else { "" },
            list.join(", "),
            crate::text::escape(&kernel.release)
        ),
    ))
}

/// Mounts the container's device on its private area. Idempotent: the same
/// device already mounted there is success.
pub fn premount(sys: &dyn Sys, etc: &VzEtc, ct: &CtFs) -> Result<Outcome> {
    let Some(dc) = &ct.device else {
        log::debug(&format!(
            "CT {}: no VE_DEVICE, a shared container: nothing to mount",
            ct.ctid
        ));
        return Ok(Outcome::Shared);
    };
    let _lock = CtLock::acquire(sys, &ct.lockdir, &ct.ctid, LOCK_TIMEOUT)?;
    let dev = device::resolve(&dc.spec)?;
    // One open of the device for every read until the mount: the last close
    // of an idle block device flushes and drops its cache, which costs more
    // than all the reads together.
    let rdr = device::Reader::open(&dev.node)?;
    let fs = match rdr.probe()? {
        Probe::Fs(fs) => fs,
        Probe::Other(what) => {
            return Err(Error::device(
                &dc.spec,
                format!(
                    "{} holds {what}; check VE_DEVICE ({})",
                    dev.node.display(),
                    dc.origin
                ),
            ));
        }
    };
    let fstype = match &dc.fstype {
        None => fs.fstype.clone(),
        Some(t) if *t == fs.fstype => t.clone(),
        Some(t) if t == "ext4" && (fs.fstype == "ext2" || fs.fstype == "ext3") => t.clone(),
        Some(t) => {
            return Err(Error::device(
                &dc.spec,
                format!(
                    "{} holds {}, but VE_DEVICE_FSTYPE says {t}; fix VE_DEVICE_FSTYPE or VE_DEVICE",
                    dev.node.display(),
                    fs.fstype
                ),
            ))
        }
    };
    check_kernel_can_mount(&dc.spec, &dev, &fs, &platform::Kernel::running())?;
    // Where it goes, by rule, before anything is created or looked at.
    // The usual case, a directory that exists, is resolved once: the
    // handle is opened on the very path the rules were checked on.
    let areas = container_areas(etc, ct)?;
    let existing = paths::canonical_if_exists(&ct.private)?;
    let target = match &existing {
        Some(canon) => canon.clone(),
        None => paths::prospective(&ct.private)?,
    };
    paths::check_private_allowed(&ct.private, &target, &areas)?;
    paths::ensure_dir(&ct.private)?;
    let mp: MountPoint = match existing {
        Some(canon) => paths::open_canonical(&ct.private, canon)?,
        None => {
            let mp = paths::open_mount_point(&ct.private)?;
            paths::check_private_allowed(&ct.private, &mp.path, &areas)?;
            mp
        }
    };

    // From the first look at the mount table until the mount is verified,
    // no other mount decision about this filesystem is made on this node.
    let _fs_lock = FsLock::acquire_fs(sys, &ct.lockdir, &fs, dev.dev, LOCK_TIMEOUT)?;
    // The usual case, proven cheaply: nothing is mounted on VE_PRIVATE (the
    // kernel says it is no mount root) and the device is mounted nowhere on
    // this node, in no namespace (an exclusive open succeeds). Anything else,
    // or a kernel that cannot say, goes through mountinfo.
    let clean =
        paths::lookup(&mp.path)?.mount_root == Some(false) && device::is_released(&dev.node)?;
    if !clean {
        let table = read_table(sys)?;
        if let Some(top) = table.top_at(&mp.path) {
            if top.dev == dev.dev {
                log::info(&format!(
                    "CT {}: {} is already mounted on {}: nothing to do",
                    ct.ctid,
                    dev.node.display(),
                    mp.path.display()
                ));
                return Ok(Outcome::AlreadyMounted {
                    device: dev.node,
                    path: mp.path,
                });
            }
            return Err(Error::refused(format!(
                "{} already has {} ({}, {}) mounted on it, not VE_DEVICE {}; unmount it or fix VE_PRIVATE/VE_DEVICE",
                crate::text::path(&mp.path),
                crate::text::escape(&top.source),
                crate::text::escape(&top.fstype),
                top.dev,
                dev
            )));
        }
        let elsewhere: Vec<String> = table
            .by_dev(dev.dev)
            .map(|e| crate::text::path(&e.mount_point))
            .collect();
        if !elsewhere.is_empty() {
            return Err(Error::refused(format!(
                "{} is already mounted at {}; a filesystem must be mounted once: unmount it there first",
                dev,
                elsewhere.join(", ")
            )));
        }
    }
    paths::check_empty(&mp, &dev.node.display().to_string())?;
    if !clean && !device::is_released(&dev.node)? {
        let ns = holders::namespaces_holding(dev.dev, false);
        return Err(Error::refused(format!(
            "{} is in use on this node: {}; release it first",
            dev,
            if ns.is_empty() {
                "a process holds it open exclusively".to_string()
            } else {
                holders::describe_namespaces(&ns)
            }
        )));
    }
    check_same_fs_elsewhere(&fs, &dev, &ct.lockdir)?;
    check_mmp(&dev, &rdr, &fs)?;
    fsck::run(dc.fsck, &fs, &dev.node)?;

    let (flags, data) = sys::parse_options(&dc.options)
        .map_err(|o| Error::Usage(format!("VE_DEVICE_OPTIONS: option {o:?} is not accepted")))?;
    if !mp.still_at_path() {
        return Err(Error::refused(format!(
            "{} was moved or replaced while being checked; refusing to mount",
            mp.path.display()
        )));
    }
    let t_mount = Instant::now();
    sys.mount(&MountRequest {
        source: &dev.node,
        target: mp.fd_path(),
        target_display: &mp.path,
        fstype: &fstype,
        flags,
        data: &data,
    })
    .map_err(|errno| Error::Mount {
        op: "mount",
        device: dev.node.display().to_string(),
        path: mp.path.clone(),
        errno,
        hint: mount_hint(errno, &fstype),
    })?;

    // Verified: the path now leads to the root of a mount of the device
    // (or, where the kernel cannot say, mountinfo shows it on top).
    let here = paths::lookup(&mp.path)?;
    let verified = here.mount_root == Some(true) && here.dev == dev.dev;
    let after = if verified {
        None
    } else {
        Some(read_table(sys)?)
    };
    match after.as_ref().map(|t| t.top_at(&mp.path)) {
        None => {}
        Some(Some(top)) if top.dev == dev.dev => {}
        Some(other) => {
            return Err(Error::refused(format!(
            "mounted {} but mountinfo shows {} at {}; check `grep {} /proc/self/mountinfo` by hand",
            dev.node.display(),
            other
                .map(|e| format!("{} ({})", e.source, e.dev))
                .unwrap_or_else(|| "nothing".into()),
            mp.path.display(),
            mp.path.display()
        )))
        }
    }
    // A slow mount(2) is the kernel's MMP wait (ext4 waits twice its
    // check interval when the MMP block was left dirty by a dead node).
    let took = t_mount.elapsed();
    let slow = if took >= Duration::from_secs(1) {
        format!(
            " (mount(2) took {:.1} s{})",
            took.as_secs_f64(),
            if fs.ext.as_ref().is_some_and(|e| e.mmp.is_some()) {
                ": the kernel's MMP wait"
            } else {
                ""
            }
        )
    } else {
        String::new()
    };
    log::info(&format!(
        "CT {}: mounted {} ({}) on {}{slow}",
        ct.ctid,
        dev.node.display(),
        fstype,
        mp.path.display()
    ));
    Ok(Outcome::Mounted {
        device: dev.node,
        path: mp.path,
        fstype,
    })
}

/// Unmounts the container's device from its private area, never lazily, and
/// confirms the filesystem is released on this node.
pub fn postumount(sys: &dyn Sys, _etc: &VzEtc, ct: &CtFs) -> Result<Outcome> {
    let Some(dc) = &ct.device else {
        log::debug(&format!(
            "CT {}: no VE_DEVICE, a shared container: nothing to unmount",
            ct.ctid
        ));
        return Ok(Outcome::Shared);
    };
    let _lock = CtLock::acquire(sys, &ct.lockdir, &ct.ctid, LOCK_TIMEOUT)?;
    let canon = paths::canonical_if_exists(&ct.private)?;
    let table = read_table(sys)?;
    let Some((canon, top)) = canon.and_then(|c| {
        let top = table.top_at(&c).cloned()?;
        Some((c, top))
    }) else {
        return not_mounted_here(ct, dc, &table);
    };
    let Some(dev) = device::identify(&dc.spec, top.dev)? else {
        return Err(Error::refused(format!(
            "{} has {} ({}) mounted on it, not VE_DEVICE {}; leaving it alone: check VE_DEVICE and unmount it by hand",
            crate::text::path(&canon),
            crate::text::escape(&top.source),
            top.dev,
            dc.spec
        )));
    };
    // Held (not exclusively) until the end: the release check's open/close
    // below then is not the device's last close, which would flush and drop
    // its cache a second time.
    let _hold = device::Reader::open(&dev.node)?;
    let others: Vec<String> = table
        .by_dev(dev.dev)
        .filter(|e| e.mount_point != canon)
        .map(|e| {
            let is_root = ct
                .root
                .as_deref()
                .map(|r| {
                    paths::canonical_if_exists(r).ok().flatten().as_deref()
                        == Some(e.mount_point.as_path())
                })
                .unwrap_or(false);
            format!(
                "{}{}",
                e.mount_point.display(),
                if is_root {
                    " (VE_ROOT: vzctl could not unmount the container)"
                } else {
                    ""
                }
            )
        })
        .collect();
    if !others.is_empty() {
        return Err(Error::Busy {
            device: dev.node.display().to_string(),
            path: canon,
            holders: format!(
                " (the filesystem is also mounted at {}; unmount that first)",
                others.join(", ")
            ),
        });
    }
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match sys.umount(&canon) {
            Ok(()) => break,
            Err(Errno::EBUSY) if start.elapsed() < BUSY_RETRY => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            Err(Errno::EBUSY) => {
                let procs = holders::processes_using(dev.dev);
                let mut under: Vec<String> = table
                    .under(&canon)
                    .filter(|e| e.mount_point != canon)
                    .map(|e| e.mount_point.display().to_string())
                    .collect();
                under.dedup();
                let mut what = String::new();
                if !procs.is_empty() {
                    what.push_str(&format!(
                        ": used by {}",
                        holders::describe_processes(&procs)
                    ));
                }
                if !under.is_empty() {
                    what.push_str(&format!("; mounts below it: {}", under.join(", ")));
                }
                return Err(Error::Busy {
                    device: dev.node.display().to_string(),
                    path: canon,
                    holders: what,
                });
            }
            Err(errno) => {
                return Err(Error::Mount {
                    op: "umount",
                    device: dev.node.display().to_string(),
                    path: canon,
                    errno,
                    hint: String::new(),
                });
            }
        }
    }
    // One check covers both a second mount left on the same path and a copy
    // in another namespace: the device must no longer be claimed.
    if !device::is_released(&dev.node)? {
        let ns = holders::namespaces_holding(dev.dev, true);
        return Err(Error::StillAlive {
            device: dev.node.display().to_string(),
            path: canon,
            held_by: if ns.is_empty() {
                "a process holds the device open exclusively".into()
            } else {
                holders::describe_namespaces(&ns)
            },
        });
    }
    log::info(&format!(
        "CT {}: unmounted {} from {}; the filesystem is released on this node",
        ct.ctid,
        dev.node.display(),
        canon.display()
    ));
    Ok(Outcome::Unmounted {
        device: dev.node,
        path: canon,
    })
}

/// postumount found nothing on `VE_PRIVATE`: success only when the
/// container's device is mounted nowhere on this node (a renamed parent
/// directory moves the mount with it) and no mount namespace holds it.
fn not_mounted_here(ct: &CtFs, dc: &DeviceCfg, table: &MountTable) -> Result<Outcome> {
    let private = crate::text::path(&ct.private);
    let dev = match device::resolve(&dc.spec) {
        Ok(d) => d,
        Err(e) => {
            // A device that does not exist on this node is mounted nowhere.
            log::debug(&format!("CT {}: VE_DEVICE does not resolve ({e})", ct.ctid));
            log::info(&format!(
                "CT {}: nothing is mounted on {private}: nothing to unmount",
                ct.ctid
            ));
            return Ok(Outcome::NotMounted {
                path: ct.private.clone(),
            });
        }
    };
    let at: Vec<String> = table
        .by_dev(dev.dev)
        .map(|e| crate::text::path(&e.mount_point))
        .collect();
    if let Some(first) = at.first() {
        return Err(Error::refused(format!(
            "nothing is mounted on VE_PRIVATE {private}, but its device {dev} is mounted at {} (was the private area or a parent directory renamed or moved?); unmount it there (`umount {first}`) or move the directory back, then run `vzctl umount` again. Do not mount it on another node until it is unmounted here",
            at.join(", ")
        )));
    }
    if !device::is_released(&dev.node)? {
        let ns = holders::namespaces_holding(dev.dev, false);
        return Err(Error::StillAlive {
            device: dev.node.display().to_string(),
            path: ct.private.clone(),
            held_by: if ns.is_empty() {
                "a process holds the device open exclusively".into()
            } else {
                holders::describe_namespaces(&ns)
            },
        });
    }
    log::info(&format!(
        "CT {}: nothing is mounted on {private}: nothing to unmount",
        ct.ctid
    ));
    Ok(Outcome::NotMounted {
        path: ct.private.clone(),
    })
}

/// What `status` found: the report, and the first device problem in it
/// (a damaged superblock or MMP field), which makes `status` fail with the
/// device's exit code after printing the report.
#[derive(Debug)]
pub struct Status {
    pub text: String,
    pub device_error: Option<Error>,
}

/// A human-readable report: what would be mounted where, and what is mounted now.
pub fn status(sys: &dyn Sys, ct: &CtFs) -> Result<Status> {
    let mut s = String::new();
    let mut device_error = None;
    let Some(dc) = &ct.device else {
        s.push_str(&format!(
            "CT {}: shared (no VE_DEVICE); VE_PRIVATE {}\n",
            ct.ctid,
            crate::text::path(&ct.private)
        ));
        return Ok(Status {
            text: s,
            device_error,
        });
    };
    s.push_str(&format!(
        "CT {}: insulated: VE_DEVICE {} ({})\n",
        ct.ctid,
        crate::text::escape(&dc.spec.to_string()),
        crate::text::escape(&dc.origin)
    ));
    let canon = paths::canonical_if_exists(&ct.private)?;
    s.push_str(&format!(
        "  VE_PRIVATE {}{}\n",
        crate::text::path(&ct.private),
        match &canon {
            Some(c) if *c != ct.private => format!(" (resolves to {})", crate::text::path(c)),
            Some(_) => String::new(),
            None => " (does not exist yet)".into(),
        }
    ));
    s.push_str(&format!(
        "  options: type {}, options {}, fsck {}\n",
        dc.fstype.as_deref().unwrap_or("from the superblock"),
        crate::text::value(&dc.options),
        dc.fsck
    ));
    let table = read_table(sys)?;
    match device::resolve(&dc.spec) {
        Err(e) => s.push_str(&format!("  device: cannot resolve: {e}\n")),
        Ok(dev) => {
            match device::probe(&dev.node) {
                Ok(Probe::Fs(fs)) => {
                    s.push_str(&format!(
                        "  device: {} holds {} UUID={} LABEL={}\n",
                        dev,
                        fs.fstype,
                        fs.uuid.as_deref().unwrap_or("-"),
                        crate::text::escape(fs.label.as_deref().unwrap_or("-"))
                    ));
                    if let Some(ext) = &fs.ext {
                        match device::read_mmp(&dev.node, ext) {
                            Ok(None) => {}
                            Ok(Some(m)) => {
                                let state = if m.is_clean() {
                                    "clean (not mounted on any node)".to_string()
                                } else if m.is_fsck() {
                                    format!(
                                        "e2fsck running on node \"{}\"",
                                        crate::text::escape(&m.nodename)
                                    )
                                } else {
                                    format!(
                                        "in use by node \"{}\" (device {}), last update {}",
                                        crate::text::escape(&m.nodename),
                                        crate::text::escape(&m.bdevname),
                                        timefmt::utc(m.time)
                                    )
                                };
                                s.push_str(&format!("  MMP: {state}\n"));
                            }
                            Err(e) => {
                                s.push_str(&format!("  MMP: cannot read: {e}\n"));
                                device_error.get_or_insert(e);
                            }
                        }
                    }
                }
                Ok(Probe::Other(w)) => s.push_str(&format!("  device: {dev} holds {w}\n")),
                Err(e) => {
                    s.push_str(&format!("  device: {dev}: {e}\n"));
                    device_error.get_or_insert(e);
                }
            }
            let here: Vec<String> = table
                .by_dev(dev.dev)
                .map(|e| crate::text::path(&e.mount_point))
                .collect();
            let on_private = canon
                .as_ref()
                .and_then(|c| table.top_at(c))
                .map(|e| e.dev == dev.dev)
                .unwrap_or(false);
            s.push_str(&format!(
                "  mounted now: {}\n",
                match (&canon, on_private) {
                    (Some(c), true) => format!("yes, on {}", crate::text::path(c)),
                    _ if here.is_empty() => "no".to_string(),
                    _ => format!("not on VE_PRIVATE, but at {}", here.join(", ")),
                }
            ));
            if !on_private && here.is_empty() {
                if let Ok(false) = device::is_released(&dev.node) {
                    s.push_str(&format!(
                        "  warning: the device is held elsewhere on this node: {}\n",
                        holders::describe_namespaces(&holders::namespaces_holding(dev.dev, false))
                    ));
                }
            }
        }
    }
    if let Some(c) = &canon {
        if let Some(top) = table.top_at(c) {
            s.push_str(&format!(
                "  on VE_PRIVATE: {} ({}, {})\n",
                crate::text::escape(&top.source),
                crate::text::escape(&top.fstype),
                top.dev
            ));
        }
    }
    Ok(Status {
        text: s,
        device_error,
    })
}
