//! `ocf:vzfs:container`: the OCF resource agent that makes an insulated
//! container (its own filesystem on a SAN LUN, `VE_DEVICE`) a Pacemaker
//! resource. The vzfs-hook binary runs it when started as `container`
//! (`/usr/lib/ocf/resource.d/vzfs/container` is a symlink to it).
//!
//! The container's config lives on storage every node reads (parameter
//! `config`); `start` installs it atomically as `/etc/vz/conf/CTID.conf`
//! (byte for byte) and `stop` removes this node's copy, so the container is
//! defined only where it runs. The device checks are the library's: the
//! mount table ([`crate::mountinfo`]), copies of the mount in other mount
//! namespaces ([`crate::holders`]), `open(O_EXCL)` ([`crate::device::is_released`])
//! and the ext4 MMP block ([`crate::device::Reader::read_mmp`]).
//!
//! - `start` refuses (OCF_ERR_GENERIC, nothing installed) while the
//!   filesystem is mounted anywhere on this node outside `VE_PRIVATE`/`VE_ROOT`
//!   or while another node updates its MMP sequence or runs e2fsck on it. A
//!   dirty MMP block whose writer is proven dead ([`takeover`]: its node
//!   fenced after the block's last update, or the sequence still for the
//!   kernel's own first wait) is taken over: set back to clean
//!   ([`crate::device::mmp_reset`]) so that the kernel mounts without
//!   waiting. With `mmp_takeover=false`: watched for twice the update
//!   interval plus a second, and the kernel waits at the mount.
//! - `stop` succeeds only when the device is released on this node; it never
//!   kills a process outside the container: a holder makes the stop fail, so
//!   the cluster fences the node.
//! - `monitor`: running and mounted on `VE_PRIVATE` (and this node's device
//!   is the one that updates the MMP block) is running; no process and no
//!   mount is not running (a stale config copy included); anything between
//!   is a failure.
//! - `migrate_to` releases the container here, `migrate_from` starts it on the
//!   target: a planned move by restart (online needs a checkpointer).
//!
//! vzctl's output goes to an anonymous memory file that is read once vzctl
//! has exited, never a pipe read to end-of-file: a container's init may
//! inherit it and live on.

use crate::config::{self, ConfigError, VzConfig, VzEtc};
use crate::device::{self, Device, DeviceSpec, Probe};
use crate::error::{chain, Error};
use crate::holders;
use crate::hook::{self, CtFs};
use crate::log;
use crate::mountinfo::{DevNum, MountTable};
use crate::sys::{self, RealSys, Sys};
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "ocf_takeover.rs"]
pub mod takeover;

/// The name the binary answers to as an agent.
pub const AGENT_NAME: &str = "container";
/// Where packages and `make install` put the agent (a symlink to vzfs-hook).
pub const AGENT_PATH: &str = "/usr/lib/ocf/resource.d/vzfs/container";
/// The syslog ident of the agent.
pub const IDENT: &str = "vzfs-ocf";

/// OCF exit codes (OCF resource agent API).
pub mod rc {
    pub const SUCCESS: i32 = 0;
    pub const ERR_GENERIC: i32 = 1;
    pub const ERR_ARGS: i32 = 2;
    pub const UNIMPLEMENTED: i32 = 3;
    pub const ERR_PERM: i32 = 4;
    pub const ERR_INSTALLED: i32 = 5;
    pub const ERR_CONFIGURED: i32 = 6;
    pub const NOT_RUNNING: i32 = 7;
}

/// An agent failure: what went wrong, naming the container, file, device or
/// command, and what the admin should do. [`OcfError::rc`] is the OCF code.
#[derive(Debug, thiserror::Error)]
pub enum OcfError {
    /// A parameter is missing or unusable (OCF_ERR_CONFIGURED).
    #[error("parameter {name}: {msg}")]
    Param { name: &'static str, msg: String },
    /// The shared config cannot be used (OCF_ERR_CONFIGURED).
    #[error("CT {ctid}: the container's config: {source}")]
    Config {
        ctid: String,
        #[source]
        source: Error,
    },
    /// Something this node lacks (vzctl, the hook): OCF_ERR_INSTALLED.
    #[error("{0}")]
    NotInstalled(String),
    /// The device or mount state forbids the action (OCF_ERR_GENERIC).
    #[error("CT {ctid}: {msg}")]
    Refused { ctid: String, msg: String },
    /// A vzctl command failed (OCF_ERR_GENERIC).
    #[error("CT {ctid}: `vzctl {args}` exited {code}: {output}")]
    Vzctl {
        ctid: String,
        args: String,
        code: String,
        output: String,
    },
    /// The library failed on the device (OCF_ERR_GENERIC).
    #[error("CT {ctid}: {op}: {source}")]
    Lib {
        ctid: String,
        op: &'static str,
        #[source]
        source: Error,
    },
    /// A file of this node (the config copy, a temp file): OCF_ERR_GENERIC.
    #[error("CT {ctid}: {op} {}: {source}", path.display())]
    Io {
        ctid: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Usage (an unknown action, missing migrate meta attributes).
    #[error("{0}")]
    Usage(String),
}

impl OcfError {
    pub fn rc(&self) -> i32 {
        match self {
            OcfError::Param { .. } | OcfError::Config { .. } => rc::ERR_CONFIGURED,
            OcfError::NotInstalled(_) => rc::ERR_INSTALLED,
            OcfError::Usage(_) => rc::ERR_ARGS,
            _ => rc::ERR_GENERIC,
        }
    }
}

type R<T> = std::result::Result<T, OcfError>;

/// The resource's parameters (`OCF_RESKEY_*`).
#[derive(Debug, Clone)]
pub struct Params {
    pub ctid: String,
    /// The container's config on shared storage.
    pub config: PathBuf,
    pub dump_device: Option<String>,
    pub etc: VzEtc,
    /// Take a dead node's MMP block over (set it clean) before the mount
    /// (`mmp_takeover`, default on).
    pub mmp_takeover: bool,
    /// Which cluster node writes which host name into MMP blocks
    /// (`mmp_nodes`), when that is not the node's own name.
    pub mmp_nodes: Vec<takeover::MmpNode>,
}

impl Params {
    /// Reads the parameters from the environment Pacemaker sets.
    pub fn from_env() -> R<Params> {
        let get = |k: &str| {
            std::env::var(format!("OCF_RESKEY_{k}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let ctid = get("ctid").ok_or(OcfError::Param {
            name: "ctid",
            msg: "not set; give the container's id (crm: params ctid=101)".into(),
        })?;
        config::validate_ctid(&ctid).map_err(|e| OcfError::Param {
            name: "ctid",
            msg: e.to_string(),
        })?;
        let config = PathBuf::from(get("config").ok_or(OcfError::Param {
            name: "config",
            msg: "not set; give the path of the container's config on storage every node reads (params config=/srv/cluster/vz/101.conf)".into(),
        })?);
        if !config.is_absolute() {
            return Err(OcfError::Param {
                name: "config",
                msg: format!("{} is not an absolute path", config.display()),
            });
        }
        let etc = VzEtc::default();
        if config == etc.ct_conf(&ctid) {
            return Err(OcfError::Param {
                name: "config",
                msg: format!("{} is this node's own copy, which the agent installs and removes; keep the container's config on shared storage and name that file", config.display()),
            });
        }
        let mmp_takeover = match get("mmp_takeover").as_deref() {
            None => true,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" | "y" => true,
                "0" | "false" | "no" | "off" | "n" => false,
                _ => {
                    return Err(OcfError::Param {
                        name: "mmp_takeover",
                        msg: format!(
                            "{:?} is not a boolean; give true or false",
                            crate::text::escape(v)
                        ),
                    })
                }
            },
        };
        let mmp_nodes =
            takeover::parse_mmp_nodes(&get("mmp_nodes").unwrap_or_default()).map_err(|msg| {
                OcfError::Param {
                    name: "mmp_nodes",
                    msg,
                }
            })?;
        Ok(Params {
            ctid,
            config,
            dump_device: get("dump_device"),
            etc,
            mmp_takeover,
            mmp_nodes,
        })
    }

    /// This node's copy of the config (`/etc/vz/conf/CTID.conf`).
    pub fn local_conf(&self) -> PathBuf {
        self.etc.ct_conf(&self.ctid)
    }
}

/// The container's settings, read through [`crate::config`] (bounded, never
/// executed): the global `vz.conf` and the shared config.
pub fn load(p: &Params) -> R<CtFs> {
    load_from(p, &p.config)
}

fn load_from(p: &Params, file: &Path) -> R<CtFs> {
    let cfg_err = |e: Error| OcfError::Config {
        ctid: p.ctid.clone(),
        source: e,
    };
    let cfg = VzConfig::load_files(&p.etc.global_conf(), file, &p.ctid)
        .map_err(|e| cfg_err(Error::Config(e)))?;
    cfg.check_vzfs_keys()
        .map_err(|e| cfg_err(Error::Config(e)))?;
    let ct = CtFs::from_config(&cfg).map_err(cfg_err)?;
    if ct.device.is_none() {
        return Err(OcfError::Param {
            name: "config",
            msg: format!("{}: CT {} has no VE_DEVICE: ocf:vzfs:container is for a container on its own device (a SAN LUN); use ocf:heartbeat:ManageVE for a shared one", file.display(), p.ctid),
        });
    }
    Ok(ct)
}

/// `VE_DEVICE` in a config every node reads must name the same LUN on every
/// node: `UUID=`, `LABEL=` or a `/dev/disk/by-*` link, not a kernel name.
pub fn check_stable_name(spec: &DeviceSpec) -> std::result::Result<(), String> {
    match spec {
        DeviceSpec::Uuid(_) | DeviceSpec::Label(_) => Ok(()),
        DeviceSpec::Path(p) if p.starts_with("/dev/disk/") && p.components().count() >= 5 => {
            Ok(())
        }
        DeviceSpec::Path(p) => Err(format!(
            "VE_DEVICE={} is a node's own name for the device, which can differ between nodes and change at boot; every node reads this config, so name the LUN by UUID=..., LABEL=... or a /dev/disk/by-id/... link",
            p.display()
        )),
    }
}

/// What `vzctl status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VzStatus {
    pub exist: bool,
    pub mounted: bool,
    pub running: bool,
}

/// Parses `CTID <id> <exist|deleted> <mounted|unmounted> <running|down>[ suspended]`.
pub fn parse_status(ctid: &str, out: &str) -> Option<VzStatus> {
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() >= 5 && w[0] == "CTID" && w[1] == ctid {
            return Some(VzStatus {
                exist: w[2] == "exist",
                mounted: w[3] == "mounted",
                running: w[4] == "running",
            });
        }
    }
    None
}

/// The vzctl binary: `PATH`, then the usual places (Pacemaker's PATH is short).
fn vzctl_path() -> R<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("vzctl"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            OcfError::NotInstalled(
                "vzctl is not installed on this node (not in PATH, /usr/sbin, /usr/local/sbin); install vzctl or keep the resource off this node".into(),
            )
        })
}

/// An anonymous file for a child's output: `memfd_create` (Linux 3.17+),
/// else (OpenVZ 6's 2.6.32: `ENOSYS`) a file created exclusively, mode
/// 0600, in `/dev/shm` or `/tmp` (whichever is a directory first), without
/// following a symlink, and unlinked at once: nobody else can open it, and
/// it is gone when the last descriptor closes. Not `O_TMPFILE` (3.11).
fn output_file() -> io::Result<File> {
    // SAFETY: memfd_create with a valid NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"vzfs-ocf-vzctl".as_ptr(), libc::MFD_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd is a new descriptor owned by nobody else.
        return Ok(unsafe { File::from_raw_fd(fd) });
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    let dir = ["/dev/shm", "/tmp"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
        .ok_or(e)?;
    let mut last = None;
    for n in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(".vzfs-ocf-{}-{nanos:x}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
}

/// Runs vzctl with stdin `/dev/null` and stdout+stderr in an anonymous
/// memory file, read after vzctl exited (never a pipe read to end-of-file:
/// the container's init may inherit it). Returns the exit code (None: a
/// signal) and the output.
fn vzctl(ctid: &str, args: &[&str]) -> R<(Option<i32>, String)> {
    let exe = vzctl_path()?;
    let io_err = |op, source| OcfError::Io {
        ctid: ctid.to_string(),
        op,
        path: exe.clone(),
        source,
    };
    let mut out = output_file().map_err(|e| io_err("create a file for the output of", e))?;
    let err = out.try_clone().map_err(|e| io_err("dup", e))?;
    let status = Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| io_err("dup", e))?)
        .stderr(err)
        .status()
        .map_err(|e| io_err("run", e))?;
    let mut text = String::new();
    out.rewind()
        .map_err(|e| io_err("rewind the output of", e))?;
    let mut buf = Vec::new();
    let _ = out.take(64 * 1024).read_to_end(&mut buf);
    text.push_str(&String::from_utf8_lossy(&buf));
    Ok((status.code(), text))
}

fn vzctl_ok(ctid: &str, args: &[&str], ok_codes: &[i32]) -> R<String> {
    let (code, out) = vzctl(ctid, args)?;
    match code {
        Some(c) if c == 0 || ok_codes.contains(&c) => Ok(out),
        _ => Err(OcfError::Vzctl {
            ctid: ctid.to_string(),
            args: args.join(" "),
            code: code.map_or("on a signal".into(), |c| c.to_string()),
            output: crate::text::escape(last_lines(&out, 4).trim()),
        }),
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(n)..].join(" / ")
}

fn status(ctid: &str) -> R<VzStatus> {
    let out = vzctl_ok(ctid, &["status", ctid], &[])?;
    parse_status(ctid, &out).ok_or_else(|| OcfError::Vzctl {
        ctid: ctid.to_string(),
        args: format!("status {ctid}"),
        code: "0".into(),
        output: format!("no status line in {:?}", crate::text::escape(out.trim())),
    })
}

/// Where the container's filesystem is on this node.
#[derive(Debug, Clone)]
pub struct DevState {
    /// `None`: the device is not visible on this node.
    pub device: Option<Device>,
    /// The device is what is mounted on `VE_PRIVATE`.
    pub on_private: bool,
    /// Something else is mounted on `VE_PRIVATE` (its source).
    pub other_on_private: Option<String>,
    /// Mount points of the device in this namespace other than
    /// `VE_PRIVATE`/`VE_ROOT`.
    pub elsewhere: Vec<PathBuf>,
    /// Every mount point of the device in this namespace.
    pub all: Vec<PathBuf>,
    /// Other mount namespaces holding it (described), empty when none.
    pub other_ns: String,
}

fn table(ctid: &str) -> R<MountTable> {
    let text = RealSys.mountinfo().map_err(|e| OcfError::Io {
        ctid: ctid.to_string(),
        op: "read",
        path: PathBuf::from(sys::MOUNTINFO),
        source: e,
    })?;
    MountTable::parse(Path::new(sys::MOUNTINFO), &text).map_err(|e| OcfError::Io {
        ctid: ctid.to_string(),
        op: "parse",
        path: e.path.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    })
}

fn canon(p: &Path) -> PathBuf {
    crate::paths::canonical_if_exists(p)
        .ok()
        .flatten()
        .unwrap_or_else(|| p.to_path_buf())
}

/// The device's mount state on this node.
pub fn dev_state(ct: &CtFs) -> R<DevState> {
    let dc = ct.device.as_ref().expect("checked by load");
    let device = device::resolve(&dc.spec).ok();
    let t = table(&ct.ctid)?;
    let private = canon(&ct.private);
    let root = ct.root.as_deref().map(canon);
    let mut st = DevState {
        device: device.clone(),
        on_private: false,
        other_on_private: None,
        elsewhere: Vec::new(),
        all: Vec::new(),
        other_ns: String::new(),
    };
    let top = t.top_at(&private);
    let Some(dev) = device else {
        st.other_on_private = top.map(|e| e.source.clone());
        return Ok(st);
    };
    match top {
        Some(e) if e.dev == dev.dev => st.on_private = true,
        Some(e) => st.other_on_private = Some(format!("{} ({})", e.source, e.dev)),
        None => {}
    }
    for e in t.by_dev(dev.dev) {
        st.all.push(e.mount_point.clone());
        if e.mount_point != private && Some(&e.mount_point) != root.as_ref() {
            st.elsewhere.push(e.mount_point.clone());
        }
    }
    let ns = holders::namespaces_holding(dev.dev, false);
    if !ns.is_empty() {
        st.other_ns = holders::describe_namespaces(&ns);
    }
    Ok(st)
}

fn kernel_name(dev: DevNum) -> Option<String> {
    let l = fs::read_link(format!("/sys/dev/block/{}:{}", dev.major, dev.minor)).ok()?;
    l.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The MMP block of the device, if the filesystem has MMP (ext4 `-O mmp`).
fn read_mmp(
    ctid: &str,
    dev: &Device,
) -> R<Option<(device::Mmp, u16, device::Reader, device::ExtInfo)>> {
    let lib = |op, source| OcfError::Lib {
        ctid: ctid.to_string(),
        op,
        source,
    };
    let rdr = device::Reader::open(&dev.node).map_err(|e| lib("open the device", e))?;
    let Probe::Fs(fs) = rdr.probe().map_err(|e| lib("probe the device", e))? else {
        return Ok(None);
    };
    let Some(ext) = fs.ext else { return Ok(None) };
    let interval = ext.mmp.map(|(_, i)| i).unwrap_or(5).max(1);
    let m = rdr
        .read_mmp(&ext)
        .map_err(|e| lib("read the MMP block", e))?;
    Ok(m.map(|m| (m, interval, rdr, ext)))
}

/// `Some(why)` when another node keeps the filesystem's MMP sequence moving
/// (or runs e2fsck on it). A dirty block whose sequence stands still for
/// twice the update interval plus one second is a dead (fenced) node's: the
/// takeover may go on. Call only when this node does not have it mounted.
pub fn mmp_live_elsewhere(ctid: &str, dev: &Device) -> R<Option<String>> {
    let Some((first, interval, rdr, ext)) = read_mmp(ctid, dev)? else {
        return Ok(None);
    };
    if first.is_clean() {
        return Ok(None);
    }
    if first.is_fsck() {
        return Ok(Some(format!(
            "e2fsck is running on {} from node {:?} (its device {}); wait for it to finish",
            dev.node.display(),
            first.nodename,
            first.bdevname
        )));
    }
    let wait = Duration::from_secs(2 * interval as u64 + 1);
    log::info(&format!(
        "CT {ctid}: the MMP block of {} names node {:?} (its device {}), not clean; watching its sequence for {}s",
        dev.node.display(),
        first.nodename,
        first.bdevname,
        wait.as_secs()
    ));
    let t0 = Instant::now();
    while t0.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(250));
        let now = rdr
            .read_mmp(&ext)
            .map_err(|e| OcfError::Lib {
                ctid: ctid.to_string(),
                op: "read the MMP block",
                source: e,
            })?
            .unwrap_or_else(|| first.clone());
        if now.is_clean() {
            return Ok(None);
        }
        if now.seq != first.seq {
            return Ok(Some(format!(
                "the filesystem on {} is live on another node: its MMP block is being updated by node {:?} (its device {}, last update {}); stop the resource there, or if that node is hung, fence it (stonith_admin --fence NODE) before starting here",
                dev.node.display(),
                now.nodename,
                now.bdevname,
                crate::timefmt::utc(now.time)
            )));
        }
    }
    log::warn(&format!(
        "CT {ctid}: the MMP block of {} was left dirty by node {:?} (its device {}) and has not moved for {}s: that node is dead (fenced); taking over (the kernel waits its own MMP interval again at the mount)",
        dev.node.display(),
        first.nodename,
        first.bdevname,
        wait.as_secs()
    ));
    Ok(None)
}

/// The `stonith_admin` of this node, if it has one (Pacemaker's PATH, then
/// the usual places).
fn stonith_admin_path() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("stonith_admin"))
        .find(|p| p.is_file())
}

/// The cluster's fencing history (`stonith_admin --history '*'
/// --output-as=xml`, at most 5 s); `None` when this node cannot have it
/// (no Pacemaker, no cluster running): then no fencing proves anything.
fn fence_history() -> Option<Vec<takeover::FenceEvent>> {
    let exe = stonith_admin_path()?;
    let mut out = output_file().ok()?;
    let mut child = Command::new(&exe)
        .args(["--history", "*", "--output-as=xml"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().ok()?)
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if t0.elapsed() > Duration::from_secs(5) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    out.rewind().ok()?;
    let mut buf = Vec::new();
    let _ = out.take(1 << 20).read_to_end(&mut buf);
    Some(takeover::parse_fence_history(&String::from_utf8_lossy(
        &buf,
    )))
}

/// The real clock, LUN and fencing history of a [`takeover::watch`].
struct RealWatch<'a> {
    rdr: &'a device::Reader,
    ext: &'a device::ExtInfo,
    t0: Instant,
}

impl takeover::Watcher for RealWatch<'_> {
    fn elapsed(&mut self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
    fn sleep(&mut self, secs: f64) {
        std::thread::sleep(Duration::from_secs_f64(secs));
    }
    fn read(&mut self) -> std::result::Result<device::Mmp, String> {
        self.rdr
            .read_mmp(self.ext)
            .map_err(|e| chain(&e))?
            .ok_or_else(|| "the filesystem has no MMP block any more".to_string())
    }
    fn history(&mut self) -> Option<Vec<takeover::FenceEvent>> {
        fence_history()
    }
}

/// `start`'s MMP step with `mmp_takeover` on: a clean block (or none) goes
/// on as it is; a dirty block is watched until its writer is proven dead
/// ([`takeover::watch`]: fenced after its last update, or the sequence
/// still for the kernel's own first wait), then set back to clean
/// ([`device::mmp_reset`]: compared before, read back after) so that the
/// kernel mounts without waiting. Refuses while the sequence moves, while
/// e2fsck runs, or when the block cannot be cleared as written. Returns
/// the path taken (for the log and the failover breakdown): `clean`,
/// `no-mmp`, `fenced` or `still-<N>s`. Call only when this node does not
/// have the filesystem mounted.
pub fn mmp_takeover(p: &Params, dev: &Device) -> R<String> {
    let Some((first, interval, rdr, ext)) = read_mmp(&p.ctid, dev)? else {
        return Ok("no-mmp".into());
    };
    if first.is_clean() {
        return Ok("clean".into());
    }
    let devn = dev.node.display();
    let fsck = |m: &device::Mmp| {
        refused(p, format!(
            "refusing to start: e2fsck is running on {devn} from host {:?} (its device {}); wait for it to finish, then clean the resource up (crm_resource --cleanup -r RESOURCE); the agent never takes an e2fsck's MMP block over",
            m.nodename, m.bdevname
        ))
    };
    if first.is_fsck() {
        return Err(fsck(&first));
    }
    let writer = takeover::writer_node(&first, &p.mmp_nodes);
    let window = takeover::kernel_first_wait(interval, first.check_interval);
    log::info(&format!(
        "CT {}: the MMP block of {devn} names host {:?} (its device {}, sequence {:#x}, last update {}), {}; proving its writer dead before the takeover: a fencing of that node in the cluster's history, else its sequence standing still for {window}s (the kernel's own first wait)",
        p.ctid,
        first.nodename,
        first.bdevname,
        first.seq,
        crate::timefmt::utc(first.time),
        writer.as_deref().map_or("which maps to no cluster node (see parameter mmp_nodes)".to_string(), |n| format!("cluster node {n}")),
    ));
    let mut w = RealWatch {
        rdr: &rdr,
        ext: &ext,
        t0: Instant::now(),
    };
    let verdict = takeover::watch(&mut w, &first, writer.as_deref(), window).map_err(|e| {
        refused(
            p,
            format!("refusing to start: cannot read the MMP block of {devn} again: {e}; check the LUN's paths on this node"),
        )
    })?;
    match verdict {
        takeover::Verdict::Clean => Ok("clean".into()),
        takeover::Verdict::Fsck(m) => Err(fsck(&m)),
        takeover::Verdict::Live(now) => Err(refused(p, format!(
            "refusing to start: the filesystem on {devn} is live on another node: its MMP block is being updated by host {:?} (its device {}, last update {}); stop the resource there, or if that node is hung, fence it (stonith_admin --fence NODE) before starting here",
            now.nodename,
            now.bdevname,
            crate::timefmt::utc(now.time)
        ))),
        takeover::Verdict::Dead(proof, last) => {
            let why = match &proof {
                takeover::Proof::Fenced(e) => format!(
                    "cluster node {} was fenced ({} completed {}) after the block's last update, and the sequence has not moved since",
                    e.target,
                    e.action,
                    e.completed.map_or("?".into(), |c| crate::timefmt::utc(c.max(0) as u64))
                ),
                takeover::Proof::StoodStill(w) => format!(
                    "its sequence stood still for {w}s, the kernel's own first wait for this block"
                ),
            };
            let host = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default();
            let ours = kernel_name(dev.dev).unwrap_or_else(|| {
                dev.node
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            device::mmp_reset(&dev.node, &last, &host, &ours).map_err(|e| {
                refused(p, format!(
                    "refusing to start: the MMP block of {devn} (host {:?}, device {}) was proven dead ({why}) but could not be taken over: {}",
                    last.nodename,
                    last.bdevname,
                    chain(&e)
                ))
            })?;
            log::warn(&format!(
                "CT {}: took over the MMP block of {devn} left by host {:?} (its device {}, sequence {:#x}): {why}; set back to clean and read back as written, so the kernel mounts without waiting",
                p.ctid, last.nodename, last.bdevname, last.seq
            ));
            Ok(proof.tag())
        }
    }
}

/// The state `monitor` reports, with the reason for a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Running,
    Stopped,
    Failed(String),
}

/// Running, cleanly stopped, or half there.
pub fn health(p: &Params, ct: &CtFs) -> R<Health> {
    let st = status(&p.ctid)?;
    let d = dev_state(ct)?;
    let private = ct.private.display();
    if !st.running {
        if d.all.is_empty() && !st.mounted {
            return Ok(Health::Stopped);
        }
        return Ok(Health::Failed(format!(
            "the container is not running but its filesystem is still mounted on this node ({}); the cluster will stop it (or run `vzctl umount {}`)",
            d.all.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            p.ctid
        )));
    }
    let Some(dev) = &d.device else {
        return Ok(Health::Failed(format!(
            "the container runs but its device ({}) is not visible on this node: it runs on the wrong filesystem",
            ct.device.as_ref().map(|d| d.spec.to_string()).unwrap_or_default()
        )));
    };
    if !d.on_private {
        return Ok(Health::Failed(format!(
            "the container runs but {} is not mounted on VE_PRIVATE {private} ({}): it runs on the wrong filesystem",
            dev.node.display(),
            d.other_on_private.as_deref().map_or("nothing mounted there".to_string(), |s| format!("{s} is mounted there")),
        )));
    }
    if !d.elsewhere.is_empty() {
        return Ok(Health::Failed(format!(
            "{} is also mounted on {} on this node",
            dev.node.display(),
            d.elsewhere
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some((m, _, _, _)) = read_mmp(&p.ctid, dev)? {
        let ours = kernel_name(dev.dev);
        if m.is_clean() || m.is_fsck() || ours.as_deref().is_some_and(|k| k != m.bdevname) {
            return Ok(Health::Failed(format!(
                "{} is mounted here but its MMP block is not this node's (sequence {:#x}, node {:?}, device {}; ours: {}): the filesystem may be mounted on another node too; fence one of them",
                dev.node.display(),
                m.seq,
                m.nodename,
                m.bdevname,
                ours.unwrap_or_default()
            )));
        }
    }
    Ok(Health::Running)
}

/// Removes this node's copy of the config (a stale one of a fenced node too).
fn remove_local(p: &Params) -> R<()> {
    let local = p.local_conf();
    match fs::remove_file(&local) {
        Ok(()) => {
            log::info(&format!(
                "CT {}: removed this node's config copy {}",
                p.ctid,
                local.display()
            ));
            let dir = local.parent().unwrap_or(Path::new("/"));
            let _ = File::open(dir).and_then(|d| d.sync_all());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OcfError::Io {
            ctid: p.ctid.clone(),
            op: "remove",
            path: local,
            source: e,
        }),
    }
}

/// `validate-all`: parameters, the shared config, a stable `VE_DEVICE`,
/// vzctl, and vzfs-hook as vzctl's premount/postumount scripts.
pub fn validate(p: &Params) -> R<CtFs> {
    let ct = load(p)?;
    let dc = ct.device.as_ref().expect("checked by load");
    check_stable_name(&dc.spec).map_err(|msg| OcfError::Param {
        name: "config",
        msg: format!("{} ({}): {msg}", p.config.display(), dc.origin),
    })?;
    if let Some(d) = &p.dump_device {
        let spec = DeviceSpec::parse(d).map_err(|m| OcfError::Param {
            name: "dump_device",
            msg: format!("{d}: {m}"),
        })?;
        check_stable_name(&spec).map_err(|m| OcfError::Param {
            name: "dump_device",
            msg: m.replace("VE_DEVICE", "dump_device"),
        })?;
    }
    vzctl_path()?;
    let hook = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/sbin/vzfs-hook"));
    let layout = crate::install::Layout {
        scripts_dir: crate::install::default_scripts_dir(&p.etc.root),
        hook_path: hook,
    };
    // The global pair, or this container's own (`vzfs-hook install --ctid`).
    let own = crate::install::hook_names(std::slice::from_ref(&p.ctid))
        .map_err(|e| OcfError::NotInstalled(e.to_string()))?;
    if matches!(crate::install::check(&layout, &own), Ok((_, true))) {
        return Ok(ct);
    }
    let names =
        crate::install::hook_names(&[]).map_err(|e| OcfError::NotInstalled(e.to_string()))?;
    match crate::install::check(&layout, &names) {
        Ok((_, true)) => {}
        Ok((lines, false)) => {
            return Err(OcfError::NotInstalled(format!(
                "vzfs-hook is not vzctl's premount/postumount script on this node ({}): without it vzctl would start CT {} on this node's own disk. Run `vzfs-hook install`",
                lines.join("; "),
                p.ctid
            )))
        }
        Err(e) => {
            return Err(OcfError::NotInstalled(format!(
                "cannot check vzctl's action scripts: {}; run `vzfs-hook install --check`",
                chain(&e)
            )))
        }
    }
    Ok(ct)
}

fn refused(p: &Params, msg: String) -> OcfError {
    OcfError::Refused {
        ctid: p.ctid.clone(),
        msg,
    }
}

/// `start`: refuse while the filesystem lives elsewhere; install the config;
/// `vzctl start` (the hook mounts the device); confirm with [`health`].
pub fn start(p: &Params) -> R<()> {
    let ct = validate(p)?;
    if health(p, &ct)? == Health::Running {
        log::info(&format!("CT {}: already running here", p.ctid));
        return Ok(());
    }
    let st = status(&p.ctid)?;
    let d = dev_state(&ct)?;
    let cleanup_stale = |p: &Params| {
        // A refused start installs nothing; a stale copy (a fenced node's)
        // of a container that neither runs nor is mounted here goes.
        if !st.running && d.all.is_empty() {
            let _ = remove_local(p);
        }
    };
    let Some(dev) = d.device.clone() else {
        cleanup_stale(p);
        return Err(refused(p, format!(
            "its device {} is not visible on this node; present the LUN to this node (or keep the resource off it with a location constraint)",
            ct.device.as_ref().map(|d| d.spec.to_string()).unwrap_or_default()
        )));
    };
    if !d.elsewhere.is_empty() {
        cleanup_stale(p);
        return Err(refused(p, format!(
            "refusing to start: {} is mounted on this node outside VE_PRIVATE, on {}; unmount it there first",
            dev.node.display(),
            d.elsewhere.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    if !d.other_ns.is_empty() {
        cleanup_stale(p);
        return Err(refused(p, format!(
            "refusing to start: {} is mounted in another mount namespace of this node: {}; end those processes first",
            dev.node.display(),
            d.other_ns
        )));
    }
    if let Some(s) = &d.other_on_private {
        cleanup_stale(p);
        return Err(refused(p, format!(
            "refusing to start: {s} is mounted on VE_PRIVATE {}, not the container's device {}; unmount it",
            ct.private.display(),
            dev.node.display()
        )));
    }
    let t_mmp = Instant::now();
    let mut took = "off".to_string();
    if d.all.is_empty() {
        if p.mmp_takeover {
            match mmp_takeover(p, &dev) {
                Ok(t) => took = t,
                Err(e) => {
                    cleanup_stale(p);
                    return Err(e);
                }
            }
        } else if let Some(why) = mmp_live_elsewhere(&p.ctid, &dev)? {
            cleanup_stale(p);
            return Err(refused(p, format!("refusing to start: {why}")));
        }
    } else {
        took = "mounted".into();
    }
    let data = config::read_bounded(&p.config).map_err(|e: ConfigError| OcfError::Config {
        ctid: p.ctid.clone(),
        source: Error::Config(e),
    })?;
    crate::node::write_atomic(&p.local_conf(), &data, 0o644).map_err(|source| OcfError::Lib {
        ctid: p.ctid.clone(),
        op: "install the config copy",
        source,
    })?;
    log::info(&format!(
        "CT {}: installed {} as {}",
        p.ctid,
        p.config.display(),
        p.local_conf().display()
    ));
    let mmp_secs = t_mmp.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let out = vzctl_ok(&p.ctid, &["start", &p.ctid], &[32])?;
    let start_secs = t0.elapsed().as_secs_f64();
    // The hook says how long mount(2) took when it was slow (MMP).
    let kernel_wait = out
        .split("mount(2) took ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(String::new(), |w| format!(", of which mount(2) {w:.1} s"));
    let mut last = Health::Stopped;
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(10) {
        last = health(p, &ct)?;
        if last == Health::Running {
            // The times tell the admin where a slow takeover went: the
            // MMP check of a dead node's block, then the kernel's own MMP
            // wait inside the mount (vzctl start).
            log::info(&format!(
                "CT {}: running on this node, {} mounted on {} (MMP check {mmp_secs:.1} s, takeover {took}, vzctl start {start_secs:.1} s{kernel_wait})",
                p.ctid,
                dev.node.display(),
                ct.private.display()
            ));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(refused(
        p,
        format!(
            "`vzctl start` succeeded but the container is not running on its device: {}",
            match last {
                Health::Failed(m) => m,
                _ => "it is not running".into(),
            }
        ),
    ))
}

/// `stop`: `vzctl stop`; success only when the device is released on this
/// node. Never kills a process outside the container.
pub fn stop(p: &Params) -> R<()> {
    // The shared config, else this node's copy (a stop must not fail only
    // because the shared storage is gone).
    let ct = match load(p) {
        Ok(ct) => ct,
        Err(e) if p.local_conf().is_file() => {
            log::warn(&format!(
                "{e}; using this node's copy {}",
                p.local_conf().display()
            ));
            load_from(p, &p.local_conf())?
        }
        Err(e) => return Err(e),
    };
    // vzctl's own failure is reported; what decides is the state after it.
    let mut vz_err = None;
    let st = status(&p.ctid)?;
    if st.running {
        vz_err = vzctl_ok(&p.ctid, &["stop", &p.ctid], &[31]).err();
    }
    let st = status(&p.ctid)?;
    if st.running {
        return Err(refused(p, format!(
            "the container still runs after `vzctl stop`{}; the stop fails so that the cluster fences this node",
            vz_err.map_or(String::new(), |e| format!(" ({e})"))
        )));
    }
    if let Some(e) = vz_err.take() {
        log::warn(&e.to_string());
    }
    if st.mounted {
        if let Err(e) = vzctl_ok(&p.ctid, &["umount", &p.ctid], &[40]) {
            log::warn(&e.to_string());
        }
    }
    let d = dev_state(&ct)?;
    if d.on_private {
        // vzctl unmounted VE_ROOT but the hook's postumount failed: run the
        // hook's checks once more, they name the holders.
        if let Err(e) = hook::postumount(&RealSys, &p.etc, &ct) {
            return Err(refused(p, format!(
                "the device is still mounted on {} after `vzctl stop`: {}. A process outside the container holds it; the agent does not kill it, so the stop fails and the cluster fences this node",
                ct.private.display(),
                chain(&e)
            )));
        }
    }
    let d = dev_state(&ct)?;
    if let Some(dev) = &d.device {
        if !d.all.is_empty() {
            return Err(refused(p, format!(
                "{} is still mounted on this node on {}; the stop fails so that the cluster fences this node rather than mount it elsewhere",
                dev.node.display(),
                d.all.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        if !d.other_ns.is_empty() {
            return Err(refused(p, format!(
                "{} is still mounted in another mount namespace of this node: {}; the stop fails so that the cluster fences this node",
                dev.node.display(),
                d.other_ns
            )));
        }
        let released = device::is_released(&dev.node).map_err(|e| OcfError::Lib {
            ctid: p.ctid.clone(),
            op: "check that the device is released",
            source: e,
        })?;
        if !released {
            return Err(refused(p, format!(
                "{} is still held on this node (open(O_EXCL) fails); the stop fails so that the cluster fences this node",
                dev.node.display()
            )));
        }
    }
    remove_local(p)?;
    log::info(&format!(
        "CT {}: stopped, its device released on this node",
        p.ctid
    ));
    Ok(())
}

/// `monitor`.
pub fn monitor(p: &Params) -> i32 {
    let probe = std::env::var("OCF_RESKEY_CRM_meta_interval").map_or(true, |v| v == "0");
    let loaded = match load(p) {
        // The shared storage gone for a moment must not fail a running
        // container: this node's copy has the same settings.
        Err(e) if p.local_conf().is_file() => {
            log::warn(&format!(
                "{e}; using this node's copy {}",
                p.local_conf().display()
            ));
            load_from(p, &p.local_conf())
        }
        r => r,
    };
    let ct = match loaded {
        Ok(ct) => ct,
        Err(e) => {
            // A probe on a node that cannot read the shared config (and has
            // no copy): the container cannot run here.
            if probe && !p.local_conf().exists() {
                log::info(&format!("{e} (probe: not running here)"));
                return rc::NOT_RUNNING;
            }
            log::error(&e.to_string());
            return e.rc();
        }
    };
    match health(p, &ct) {
        Ok(Health::Running) => rc::SUCCESS,
        Ok(Health::Stopped) => rc::NOT_RUNNING,
        Ok(Health::Failed(m)) => {
            log::error(&format!("CT {}: {m}", p.ctid));
            rc::ERR_GENERIC
        }
        Err(e) => {
            log::error(&e.to_string());
            e.rc()
        }
    }
}

/// The agent's meta-data (valid against ra-api-1.dtd).
pub fn meta_data() -> String {
    format!(
        r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="container" version="{version}">
<version>1.0</version>
<longdesc lang="en">
An OpenVZ container (vzctl 4.x) on its own filesystem on a SAN LUN (VE_DEVICE), managed by vzfs.
start installs the container's config from shared storage as /etc/vz/conf/CTID.conf and runs vzctl start
(vzfs-hook mounts the device); it refuses while the filesystem is mounted elsewhere on this node or live
on another node (ext4 MMP); a dead node's MMP block is taken over (mmp_takeover). stop runs vzctl stop and succeeds only when the device is released on this
node; it never kills processes outside the container, so a stop that cannot release the device fails
and the cluster fences the node. monitor checks that the container runs on its device mounted on
VE_PRIVATE, and on an MMP LUN that this node updates the MMP block. Needs fencing and, for ext4, MMP.
</longdesc>
<shortdesc lang="en">OpenVZ container on its own SAN LUN (vzfs)</shortdesc>
<parameters>
<parameter name="ctid" unique="1" required="1">
<longdesc lang="en">The container's id (CTID).</longdesc>
<shortdesc lang="en">Container id</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="config" unique="1" required="1">
<longdesc lang="en">The path of the container's config (CTID.conf) on storage every node can read. start installs it atomically as /etc/vz/conf/CTID.conf, byte for byte; stop removes this node's copy. Its VE_DEVICE must name the LUN the same way on every node: UUID=, LABEL= or /dev/disk/by-id/...</longdesc>
<shortdesc lang="en">Shared container config</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="mmp_takeover" unique="0" required="0">
<longdesc lang="en">On an ext4 filesystem with MMP, take a dead node's MMP block over before the mount: once its writer is proven dead (its node fenced after the block's last update, with the sequence unchanged since; or the sequence still for the kernel's own first wait, at least 11 s), start sets the block back to clean as tune2fs -f -E clear_mmp does (O_DIRECT, read back and checked), and the kernel mounts without waiting. Never while the sequence moves or e2fsck runs. false: watch the block as before and let the kernel wait at the mount.</longdesc>
<shortdesc lang="en">Take a dead node's MMP block over</shortdesc>
<content type="boolean" default="true" />
</parameter>
<parameter name="mmp_nodes" unique="0" required="0">
<longdesc lang="en">Space-separated NODE=HOST[:DEVICE] pairs: the host name the kernel of cluster node NODE writes into MMP blocks (uname -n of its initial namespace) when it is not the node's name, optionally with its kernel name of the LUN (only where nodes share a host name). Without it the block's host name is taken as the node's name. A block no pair or several pairs match is proven dead only by its sequence standing still.</longdesc>
<shortdesc lang="en">MMP host names of the cluster nodes</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="dump_device" unique="0" required="0">
<longdesc lang="en">A device shared between the nodes for dump files (VE_DUMP_DEVICE of vzfs-migrate), by a stable name. Kept for online moves; this version moves a container by restart.</longdesc>
<shortdesc lang="en">Shared dump device</shortdesc>
<content type="string" default="" />
</parameter>
</parameters>
<actions>
<action name="start" timeout="120s" />
<action name="stop" timeout="120s" />
<action name="monitor" timeout="30s" interval="10s" depth="0" />
<action name="migrate_to" timeout="120s" />
<action name="migrate_from" timeout="120s" />
<action name="validate-all" timeout="30s" />
<action name="meta-data" timeout="5s" />
</actions>
</resource-agent>
"#,
        version = env!("CARGO_PKG_VERSION")
    )
}

fn usage() -> String {
    format!("usage: {AGENT_NAME} {{start|stop|monitor|validate-all|meta-data|migrate_to|migrate_from}} (an OCF resource agent: run by Pacemaker with OCF_RESKEY_ctid and OCF_RESKEY_config)")
}

fn finish(what: &str, r: R<()>) -> i32 {
    match r {
        Ok(()) => rc::SUCCESS,
        Err(e) => {
            log::error(&format!("{what}: {}", chain(&e)));
            e.rc()
        }
    }
}

/// The agent's entry point: `args` are the arguments after the program name.
pub fn main(args: &[String]) -> i32 {
    let Some(action) = args.first().map(String::as_str) else {
        eprintln!("{}", usage());
        return rc::ERR_ARGS;
    };
    if matches!(action, "meta-data" | "meta_data" | "metadata") {
        print!("{}", meta_data());
        return rc::SUCCESS;
    }
    if matches!(action, "usage" | "help" | "--help" | "-h") {
        println!("{}", usage());
        return rc::SUCCESS;
    }
    log::init(IDENT, 1, true);
    let known = [
        "start",
        "stop",
        "monitor",
        "status",
        "validate-all",
        "migrate_to",
        "migrate_from",
    ];
    if !known.contains(&action) {
        log::error(&format!(
            "unknown action {:?}; {}",
            crate::text::escape(action),
            usage()
        ));
        return rc::UNIMPLEMENTED;
    }
    let p = match Params::from_env() {
        Ok(p) => p,
        Err(e) => {
            log::error(&format!("{action}: {e}"));
            return e.rc();
        }
    };
    if unsafe { libc::geteuid() } != 0 {
        log::error(&format!(
            "{action} CT {}: the agent must run as root",
            p.ctid
        ));
        return rc::ERR_PERM;
    }
    let what = format!("{action} CT {}", p.ctid);
    match action {
        "monitor" | "status" => monitor(&p),
        "validate-all" => finish(&what, validate(&p).map(drop)),
        "start" => finish(&what, start(&p)),
        "stop" => finish(&what, stop(&p)),
        "migrate_to" => {
            let Ok(target) = std::env::var("OCF_RESKEY_CRM_meta_migrate_target") else {
                return finish(
                    &what,
                    Err(OcfError::Usage(
                        "migrate_to needs OCF_RESKEY_CRM_meta_migrate_target (set by Pacemaker)"
                            .into(),
                    )),
                );
            };
            log::info(&format!(
                "CT {}: planned move to {}: releasing it here, {} starts it (migrate_from)",
                p.ctid,
                crate::text::escape(&target),
                crate::text::escape(&target)
            ));
            finish(&what, stop(&p))
        }
        "migrate_from" => {
            let Ok(source) = std::env::var("OCF_RESKEY_CRM_meta_migrate_source") else {
                return finish(
                    &what,
                    Err(OcfError::Usage(
                        "migrate_from needs OCF_RESKEY_CRM_meta_migrate_source (set by Pacemaker)"
                            .into(),
                    )),
                );
            };
            log::info(&format!(
                "CT {}: planned move from {}: starting it here",
                p.ctid,
                crate::text::escape(&source)
            ));
            finish(&what, start(&p))
        }
        _ => unreachable!("checked against the known actions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        let s = parse_status("101", "CTID 101 exist mounted running\n").unwrap();
        assert!(s.exist && s.mounted && s.running);
        let s = parse_status(
            "101",
            "stat(/vz/root/101): x\nCTID 101 deleted unmounted down\n",
        )
        .unwrap();
        assert!(!s.exist && !s.mounted && !s.running);
        assert!(parse_status("102", "CTID 101 exist mounted running").is_none());
    }

    #[test]
    fn stable_names() {
        let ok = [
            "UUID=1234-abcd",
            "LABEL=ct101",
            "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
        ];
        for s in ok {
            assert!(
                check_stable_name(&DeviceSpec::parse(s).unwrap()).is_ok(),
                "{s}"
            );
        }
        for s in ["/dev/sdg1", "/dev/loop3", "/dev/disk", "/dev/disk/by-id"] {
            let e = check_stable_name(&DeviceSpec::parse(s).unwrap()).unwrap_err();
            assert!(e.contains("by-id"), "{s}: {e}");
        }
    }

    #[test]
    fn meta_data_lists_actions_and_required_params() {
        let m = meta_data();
        assert!(m.contains(r#"<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">"#));
        for a in [
            "start",
            "stop",
            "monitor",
            "migrate_to",
            "migrate_from",
            "validate-all",
            "meta-data",
        ] {
            assert!(m.contains(&format!(r#"<action name="{a}""#)), "{a}");
        }
        for p in ["ctid", "config"] {
            assert!(
                m.contains(&format!(
                    r#"<parameter name="{p}" unique="1" required="1">"#
                )),
                "{p}"
            );
        }
        for p in ["mmp_takeover", "mmp_nodes", "dump_device"] {
            assert!(
                m.contains(&format!(
                    r#"<parameter name="{p}" unique="0" required="0">"#
                )),
                "{p}"
            );
        }
        assert!(m.contains(r#"<content type="boolean" default="true" />"#));
    }
}
