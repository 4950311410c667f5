//! The lab: N hardware nodes ("hosts") on one machine, joined by a network
//! switch, each with its own sshd, `/etc/vz`, `/vz`, `/run`, `/var/tmp` and a
//! private `/dev` holding only its own disks; plus local disks and SAN LUNs
//! as loop devices over sparse image files. Owns creation and the teardown
//! that releases every loop device, namespace, mount, process and temp dir,
//! also on panic (through `Drop`).
//!
//! # How a host is built (see `/work/shared/docs/LAB.md`)
//! * `ip netns add <tag>-<name>` gives it a network namespace; a holder
//!   process `ip netns exec NS unshare --mount --uts --propagation private
//!   sleep infinity` gives it a mount and UTS namespace. Every command for the
//!   host runs as `nsenter -t <holder> -m -u -n -- argv`.
//! * Inside it, tmpfs over `/etc/vz`, `/vz`, `/run`, `/var/tmp`,
//!   `/usr/local/sbin` (symlinks to the project's binaries and to the vzctl
//!   double as `vzctl`) and `/dev` (only `null zero full random urandom tty`,
//!   a devpts instance and the host's own loop devices, with
//!   `/dev/disk/by-id/lab-<disk>`, `by-uuid` and `by-label` links).
//!   `/etc/hosts` and `/etc/ssh/ssh_config` are bind mounts of lab files, and
//!   `/root` is an empty tmpfs, as on a node of its own: ssh inside a host
//!   uses only the lab's key and known_hosts, and the machine's own
//!   `~/.bashrc` (which bash reads for every command sshd runs) does not
//!   slow down or change the hosts' remote commands.
//! * The machine itself gets two empty directories, `/etc/vz` and `/vz`, as
//!   mount points (created if missing; nothing is ever written into them
//!   outside a host's namespace).
//! * Hosts are joined through a bridge in a separate "switch" namespace
//!   (`<tag>-sw`), one veth per host (`eth0` in the host), addresses
//!   `10.X.Y.(i+1)/24` with a subnet derived from the pid and a counter.
//!   Nothing of the network exists in the machine's own namespace.
//!
//! A host's view of a LUN can also be *held up* ([`Lab::present_held`]):
//! its loop device is bound to the LUN's image through a passthrough FUSE
//! filesystem (`tests/held-fuse.py`, run by the lab) whose writes are held
//! while a pause file exists, as a suspended device-mapper path holds them
//! (this machine's kernel may have no device-mapper). Teardown resumes them
//! first and kills the FUSE daemon last.
//!
//! Names are `vzl<pid>x<counter>`, so labs in parallel tests (threads) or in
//! several test processes never collide.

use crate::cmd::{self, quote_argv, Output};
use crate::error::{LabError, Result};
use crate::legacy::Legacy;
use crate::mountinfo::{self, DevNum, MountEntry};
use std::ffi::OsStr;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The project's binaries put on every host's PATH when they are built.
/// Extend this list when a new product binary appears.
pub const PRODUCT_BINARIES: &[&str] = &["vzfs-hook", "vzfs-migrate", "vzfs-create"];

/// The vzctl test double binary (installed as `vzctl` on every host).
pub const VZCTL_DOUBLE: &str = "vzctl-double";

/// The test double of vzquota's tools, installed (when built) under each of
/// these names on every host: it acts as the one it is called as.
pub const VZQUOTA_DOUBLE: &str = "vzquota-double";
pub const VZQUOTA_NAMES: &[&str] = &["vzquota", "vzdqdump", "vzdqload"];

/// PATH of commands run inside a host (root's usual PATH).
/// The lab's stand-in for the OpenVZ kernel's checkpoint interfaces
/// (`/proc/cpt`, `/proc/rst`), which a lab host cannot have: each host has
/// `cpt` and `rst` there (remove one to make a host without checkpoint
/// support), and [`Host::command`] sets `VZFS_CPT_DIR` to it for
/// vzfs-migrate.
pub const LAB_CPT_DIR: &str = "/run/vzfs-lab/kernel";

pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Name of the OS template every host has in `/vz/template/cache/<name>.tar.gz`.
pub const TEMPLATE_NAME: &str = "lab-minimal";

/// Default size of a disk image (sparse).
pub const DEFAULT_DISK_MIB: u64 = 64;

/// mkfs.xfs refuses filesystems smaller than 300 MiB; xfs images get at least this.
pub const MIN_XFS_MIB: u64 = 320;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

const TIMEOUT: Duration = Duration::from_secs(15);

/// Where the project's binaries are: `$VZFS_BIN_DIR`, else the directory of
/// the running executable (`target/debug` for `vzfs-lab`, and the parent of
/// `target/debug/deps` for a test binary).
pub fn default_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VZFS_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("."));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.pop();
    }
    dir
}

/// Filesystem put on a new disk image before it is presented to hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// No filesystem (blank image).
    Raw,
    /// ext4.
    Ext4,
    /// ext4 with Multi-Mount Protection (`-O mmp -E mmp_update_interval=5`):
    /// a second mount from another host is refused (after ~10-25 s).
    Ext4Mmp,
    /// xfs (image at least [`MIN_XFS_MIB`]).
    Xfs,
}

impl Fs {
    /// The `blkid` TYPE of this filesystem.
    pub fn fstype(self) -> Option<&'static str> {
        match self {
            Fs::Raw => None,
            Fs::Ext4 | Fs::Ext4Mmp => Some("ext4"),
            Fs::Xfs => Some("xfs"),
        }
    }
}

/// Full description of a disk to add: a local disk has one host, a SAN LUN several.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// Lab-unique name; also the `/dev/disk/by-id/lab-<name>` link on each host.
    pub name: String,
    /// Hosts that see the disk (each through its own loop device).
    pub hosts: Vec<String>,
    pub size_mib: u64,
    pub fs: Fs,
    /// Filesystem label (`/dev/disk/by-label/<label>`).
    pub label: Option<String>,
}

impl DiskSpec {
    pub fn new(name: &str, hosts: &[&str], fs: Fs) -> DiskSpec {
        DiskSpec {
            name: name.to_string(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            size_mib: DEFAULT_DISK_MIB,
            fs,
            label: None,
        }
    }
    pub fn size_mib(mut self, mib: u64) -> Self {
        self.size_mib = mib;
        self
    }
    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(label.to_string());
        self
    }
}

/// One presentation of a disk to a host: its own loop device.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub host: String,
    /// Device node, same path on the machine and in the host (`/dev/loopN`).
    pub device: PathBuf,
    pub major: u32,
    pub minor: u32,
}

/// A disk image and the hosts it is presented to.
#[derive(Debug, Clone)]
pub struct Disk {
    pub name: String,
    /// The image file on the machine (shared by all attachments: a SAN LUN).
    pub image: PathBuf,
    pub fs: Fs,
    /// Filesystem UUID (same on every host), if formatted.
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl Disk {
    /// The device path of this disk on `host` (`/dev/loopN`, differs per host).
    /// Panics with a clear message if the disk is not presented to `host`.
    pub fn device(&self, host: &str) -> &Path {
        self.try_device(host).unwrap_or_else(|| {
            panic!(
                "disk {} is not presented to host {host} (it is on: {})",
                self.name,
                self.hosts().join(", ")
            )
        })
    }
    /// The device path on `host`, or `None` if the host does not see this disk.
    pub fn try_device(&self, host: &str) -> Option<&Path> {
        self.attachments
            .iter()
            .find(|a| a.host == host)
            .map(|a| a.device.as_path())
    }
    /// The device number (major:minor) of this disk on `host`, or `None` if
    /// the host does not see it. Mountinfo shows it for every mount of it.
    pub fn dev_num(&self, host: &str) -> Option<DevNum> {
        self.attachments
            .iter()
            .find(|a| a.host == host)
            .map(|a| DevNum {
                major: a.major,
                minor: a.minor,
            })
    }
    /// Hosts that see this disk.
    pub fn hosts(&self) -> Vec<String> {
        self.attachments.iter().map(|a| a.host.clone()).collect()
    }
    /// `/dev/disk/by-id/lab-<name>`: the same path on every host that sees it
    /// (like a SAN WWN link).
    pub fn by_id_path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/disk/by-id/lab-{}", self.name))
    }
    /// `/dev/disk/by-uuid/<uuid>` if formatted.
    pub fn by_uuid_path(&self) -> Option<PathBuf> {
        self.uuid
            .as_ref()
            .map(|u| PathBuf::from(format!("/dev/disk/by-uuid/{u}")))
    }
}

/// Builder of a [`Lab`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    hosts: Vec<String>,
    required: Vec<String>,
    bin_dir: Option<PathBuf>,
    hook: bool,
    legacy: bool,
}

impl Default for LabBuilder {
    fn default() -> Self {
        LabBuilder {
            hosts: vec!["a".into(), "b".into()],
            required: Vec::new(),
            bin_dir: None,
            hook: false,
            legacy: false,
        }
    }
}

impl LabBuilder {
    /// Host names (default `a`, `b`). Names: lowercase letters, digits, `-`.
    pub fn hosts(mut self, names: &[&str]) -> Self {
        self.hosts = names.iter().map(|s| s.to_string()).collect();
        self
    }
    /// `n` hosts named `a`, `b`, `c`, ...
    pub fn host_count(mut self, n: usize) -> Self {
        self.hosts = (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        self
    }
    /// Fails [`LabBuilder::start`] unless this product binary is built
    /// (e.g. `"vzfs-migrate"`); the error says which cargo command builds it.
    pub fn require_binary(mut self, name: &str) -> Self {
        self.required.push(name.to_string());
        self
    }
    /// Installs vzfs-hook as vzctl's action scripts `vps.premount` and
    /// `vps.postumount` on every host (see [`Host::install_hook`]); implies
    /// `require_binary("vzfs-hook")`.
    pub fn install_hook(mut self) -> Self {
        self.hook = true;
        self.required.push("vzfs-hook".to_string());
        self
    }
    /// The legacy profile ([`crate::legacy`]): every host an OpenVZ 6 node
    /// (2.6.32 system calls, the CentOS 6 toolset, sshd 5.3 with RSA keys).
    pub fn legacy(mut self) -> Self {
        self.legacy = true;
        self
    }
    /// Directory holding the project's binaries (default: [`default_bin_dir`]).
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Builds the lab. On error everything created so far is released.
    pub fn start(self) -> Result<Lab> {
        Lab::start(self)
    }

    /// For tests: `Some(lab)`, or `None` when the machine cannot run labs and
    /// `VZFS_SKIP_ROOT_TESTS=1` (the skip is printed and counted). Panics
    /// (fails the test) when the lab cannot run or cannot be built otherwise.
    pub fn start_for_test(self, test_name: &str) -> Option<Lab> {
        if !crate::preflight::require_lab(test_name) {
            return None;
        }
        match self.start() {
            Ok(lab) => Some(lab),
            Err(e) => panic!(
                "{test_name}: cannot build the lab: {}",
                crate::error_chain(&e)
            ),
        }
    }
}

/// One hardware node of the lab.
#[derive(Debug)]
pub struct Host {
    name: String,
    index: usize,
    ip: Ipv4Addr,
    netns: String,
    pid: u32,
    mnt_ns: String,
    net_ns: String,
    /// Open handles on the host's mount and network namespaces. While they
    /// are open the kernel cannot free the namespaces, so their inode
    /// numbers (which `processes()` compares) cannot be reused by another
    /// lab's new namespace during teardown: without this, a teardown could
    /// SIGKILL a process of a lab started meanwhile.
    ns_guard: Mutex<Vec<fs::File>>,
    holder: Mutex<Option<Child>>,
    sshd: Mutex<Option<Child>>,
    dir: PathBuf,
    ssh_dir: PathBuf,
    legacy: Option<Legacy>,
}

impl Host {
    /// Host name (also its hostname and its name in every host's /etc/hosts).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Position in the lab (0-based).
    pub fn index(&self) -> usize {
        self.index
    }
    /// IPv4 address on the lab network (sshd listens there).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// Name of its network namespace (`ip netns`).
    pub fn netns(&self) -> &str {
        &self.netns
    }
    /// PID of the process holding its namespaces (the `nsenter -t` target).
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// The host's own scratch directory on the machine (sshd config, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Its mount namespace, as `readlink /proc/<pid>/ns/mnt` shows it (`mnt:[...]`).
    pub fn mnt_ns(&self) -> &str {
        &self.mnt_ns
    }
    /// Its network namespace (`net:[...]`).
    pub fn net_ns(&self) -> &str {
        &self.net_ns
    }

    fn place(&self) -> String {
        format!("host {}", self.name)
    }

    /// A [`Command`] that runs `argv` inside this host, as via
    /// `nsenter -t PID -m -u -n`, as root with a clean environment
    /// (`PATH=`[`HOST_PATH`], `HOME=/root`, `LC_ALL=C`) and cwd `/`.
    /// Use it to spawn, feed stdin or add env vars; [`Host::run`] covers the rest.
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["-m", "-u", "-n", "--"]);
        if let Some(l) = &self.legacy {
            c.arg(&l.oldkernel);
        }
        for a in argv {
            c.arg(a);
        }
        c.env_clear()
            .env(
                "PATH",
                if self.legacy.is_some() {
                    crate::legacy::HOST_PATH
                } else {
                    HOST_PATH
                },
            )
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("LC_ALL", "C")
            .env("VZFS_CPT_DIR", LAB_CPT_DIR)
            .current_dir("/");
        if let Some(v) = std::env::var_os("RUST_BACKTRACE") {
            c.env("RUST_BACKTRACE", v);
        }
        c
    }

    /// Runs `argv` in this host and captures its output; any exit code is Ok
    /// (check with [`Output::success`] / [`Output::ok`]).
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output> {
        let mut out = cmd::run(&self.place(), self.command(argv))?;
        out.cmd = quote_argv(
            &argv
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        );
        Ok(out)
    }

    /// Runs `argv` in this host and requires exit 0.
    pub fn run_ok<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<Output> {
        self.run(argv)?.ok()
    }

    /// Runs a shell script (`sh -c`) in this host.
    pub fn sh(&self, script: &str) -> Result<Output> {
        self.run(&["sh", "-c", script])
    }

    /// Runs a shell script in this host and requires exit 0.
    pub fn sh_ok(&self, script: &str) -> Result<Output> {
        self.sh(script)?.ok()
    }

    /// Runs `vzctl <args>` (the double) in this host.
    pub fn vzctl(&self, args: &[&str]) -> Result<Output> {
        let mut v = vec!["vzctl"];
        v.extend_from_slice(args);
        self.run(&v)
    }

    /// Runs `argv` on `to` over ssh from this host (`ssh root@<to ip> -- argv`,
    /// every argument shell-quoted). The exit code is the remote command's,
    /// or 255 when ssh itself failed.
    pub fn ssh<S: AsRef<str>>(&self, to: &Host, argv: &[S]) -> Result<Output> {
        let remote = quote_argv(argv);
        let mut v: Vec<String> = vec!["ssh".into()];
        v.extend(self.ssh_options());
        v.push(format!("root@{}", to.ip));
        v.push("--".into());
        v.push(remote.clone());
        let mut out = cmd::run(
            &format!("host {} -> ssh {}", self.name, to.name),
            self.command(&v),
        )?;
        out.cmd = remote;
        Ok(out)
    }

    /// The ssh options the lab uses (key, known_hosts, BatchMode); the same
    /// values are in the host's `/etc/ssh/ssh_config`, so a plain `ssh b`
    /// from a product binary works too.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-F".into(),
            self.ssh_dir.join("ssh_config").display().to_string(),
        ]
    }

    /// Path through which the machine (this process) reaches `path` as the
    /// host sees it: `/proc/<holder>/root/<path>`. Use it for std::fs calls.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(rel)
    }

    /// Reads a file as the host sees it.
    pub fn read_file(&self, path: impl AsRef<Path>) -> Result<String> {
        let p = self.path(&path);
        fs::read_to_string(&p).map_err(|e| {
            LabError::io(
                "read (on host)",
                format!("{}:{}", self.name, path.as_ref().display()),
                e,
            )
        })
    }

    /// Writes a file as the host sees it (creating parent directories).
    pub fn write_file(&self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
        let p = self.path(&path);
        let shown = format!("{}:{}", self.name, path.as_ref().display());
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| LabError::io("mkdir -p (on host)", &shown, e))?;
        }
        fs::write(&p, contents).map_err(|e| LabError::io("write (on host)", &shown, e))
    }

    /// Installs vzfs-hook as vzctl's global action scripts on this host: the
    /// symlinks `/etc/vz/conf/vps.premount` and `/etc/vz/conf/vps.postumount`
    /// to `/usr/local/sbin/vzfs-hook` (it dispatches on argv[0]), replacing
    /// whatever was there, as the packages' install step does. Fails if
    /// vzfs-hook is not installed on the host (build it, or use
    /// [`LabBuilder::install_hook`], which requires it).
    pub fn install_hook(&self) -> Result<()> {
        let hook = "/usr/local/sbin/vzfs-hook";
        if !self.path(hook).exists() {
            return Err(LabError::Usage(format!(
                "cannot install the hook on host {}: {hook} is not installed there \
                 (build it: cargo build -p vzfs-hook)",
                self.name
            )));
        }
        for script in ["vps.premount", "vps.postumount"] {
            self.run_ok(&["ln", "-sfn", hook, &format!("/etc/vz/conf/{script}")])?;
        }
        Ok(())
    }

    /// The host's mount table (its mount namespace).
    pub fn mounts(&self) -> Result<Vec<MountEntry>> {
        let p = format!("/proc/{}/mountinfo", self.pid);
        mountinfo::read(Path::new(&p)).map_err(|e| LabError::io("read", p, e))
    }

    /// What is mounted exactly at `path` in this host (topmost mount), if anything.
    pub fn mount_at(&self, path: impl AsRef<Path>) -> Result<Option<MountEntry>> {
        Ok(mountinfo::mounted_at(&self.mounts()?, path.as_ref()).cloned())
    }

    /// Every mount of `disk`'s filesystem in this host (matched by the
    /// major:minor of the host's own device for it; empty if the host does
    /// not see the disk or has not mounted it).
    pub fn disk_mounts(&self, disk: &Disk) -> Result<Vec<MountEntry>> {
        let Some(dev) = disk.dev_num(&self.name) else {
            return Ok(Vec::new());
        };
        Ok(mountinfo::mounts_of(&self.mounts()?, dev)
            .into_iter()
            .cloned()
            .collect())
    }

    /// Text of the host's sshd log (for debugging ssh failures).
    pub fn sshd_log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Every process (pid) living in this host's mount or network namespace.
    pub fn processes(&self) -> Vec<u32> {
        let mut v = Vec::new();
        let Ok(rd) = fs::read_dir("/proc") else {
            return v;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            let net = fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            let is_ours = mnt.as_deref() == Some(Path::new(&self.mnt_ns))
                || net.as_deref() == Some(Path::new(&self.net_ns));
            if is_ours {
                v.push(pid);
            }
        }
        v
    }
}

/// The FUSE passthrough of a held-up view (`tests/held-fuse.py`).
const HELD_FUSE: &str = include_str!("../held-fuse.py");

/// The Python that runs [`HELD_FUSE`]: Debian's, where python3-fusepy is.
const HELD_PYTHON: &str = "/usr/bin/python3";

/// The FUSE daemon behind a held-up view, owned by the lab.
#[derive(Debug)]
struct HeldDaemon {
    child: Child,
    mount: PathBuf,
    pause: PathBuf,
}

/// A host's view of a disk whose writes can be held up and resumed
/// ([`Lab::present_held`]): while held, every write of that host to the
/// disk waits (its kernel's I/O blocks, as under `dmsetup suspend`); reads
/// go on; the other hosts' views are untouched.
#[derive(Debug, Clone)]
pub struct HeldView {
    pub disk: String,
    pub host: String,
    /// The file inside the FUSE mount (on the machine) that the host's
    /// loop device is bound to.
    pub file: PathBuf,
    /// The daemon's output (for a failing test's message).
    pub log: PathBuf,
    pause: PathBuf,
}

impl HeldView {
    /// Holds every later write of this view (one already answered is not
    /// undone).
    pub fn hold(&self) -> Result<()> {
        fs::write(&self.pause, b"").map_err(|e| LabError::io("create pause file", &self.pause, e))
    }
    /// Lets the held writes go on (idempotent).
    pub fn resume(&self) -> Result<()> {
        match fs::remove_file(&self.pause) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::io("remove pause file", &self.pause, e)),
        }
    }
    /// Whether writes are held now.
    pub fn is_held(&self) -> bool {
        self.pause.exists()
    }
}

/// Resumes a held-up view when dropped, also on panic: declare it after the
/// lab, so that it drops first and nothing waits on a held write while the
/// test unwinds (the lab's teardown resumes them too).
#[derive(Debug)]
pub struct ResumeOnDrop<'a>(pub &'a HeldView);

impl Drop for ResumeOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

#[derive(Debug)]
struct LoopDev {
    device: PathBuf,
    image: PathBuf,
    /// The image's identity: only a device still bound to it is ours.
    backing: crate::loopdev::Backing,
}

/// A running lab. Dropping it tears it down; call [`Lab::teardown`] to see
/// teardown errors in a test.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    dir: PathBuf,
    subnet: [u8; 3],
    bin_dir: PathBuf,
    installed: Vec<(String, PathBuf)>,
    hosts: Vec<Host>,
    netns: Mutex<Vec<String>>,
    loops: Mutex<Vec<LoopDev>>,
    disks: Mutex<Vec<Disk>>,
    held: Mutex<Vec<HeldDaemon>>,
    torn_down: Mutex<bool>,
    legacy: Option<Legacy>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lab {
    /// A builder with two hosts `a` and `b`.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    fn start(b: LabBuilder) -> Result<Lab> {
        crate::preflight::preflight()?;
        for h in &b.hosts {
            if h.is_empty()
                || h.len() > 20
                || !h
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(LabError::Usage(format!(
                    "bad host name {h:?}: use 1-20 of a-z 0-9 -"
                )));
            }
        }
        if b.hosts.is_empty() || b.hosts.len() > 200 {
            return Err(LabError::Usage("a lab has 1 to 200 hosts".into()));
        }
        let bin_dir = b.bin_dir.clone().unwrap_or_else(default_bin_dir);
        // The legacy profile runs the static release builds of the product
        // (`VZFS_RELEASE_BIN_DIR`, else `target/release` beside `target/debug`).
        let product_dir = match (b.legacy, std::env::var_os("VZFS_RELEASE_BIN_DIR")) {
            (false, _) => bin_dir.clone(),
            (true, Some(d)) if !d.is_empty() => PathBuf::from(d),
            (true, _) => bin_dir
                .parent()
                .map(|p| p.join("release"))
                .unwrap_or_else(|| bin_dir.clone()),
        };
        let installed = find_binaries(&bin_dir, &product_dir, &b.required)?;

        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("vzl{pid}x{n}");
        let x = pid.wrapping_mul(31).wrapping_add(n);
        let subnet = [10, 100 + ((x >> 8) % 150) as u8, (x & 0xff) as u8];
        let dir = std::env::temp_dir().join(format!("vzfs-lab.{tag}"));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| LabError::io("remove stale lab dir", &dir, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| LabError::io("mkdir", &dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| LabError::io("chmod 700", &dir, e))?;

        // From here on, `lab` owns what exists; an early return drops it,
        // and Drop tears down whatever was created.
        let mut lab = Lab {
            tag,
            dir,
            subnet,
            bin_dir,
            installed,
            hosts: Vec::new(),
            netns: Mutex::new(Vec::new()),
            loops: Mutex::new(Vec::new()),
            disks: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            torn_down: Mutex::new(false),
            legacy: None,
        };
        if b.legacy {
            lab.legacy = Some(Legacy::prepare(&lab.dir)?);
        }
        lab.build(&b.hosts)?;
        if b.hook {
            for h in &lab.hosts {
                h.install_hook()?;
            }
        }
        Ok(lab)
    }

    fn build(&mut self, names: &[String]) -> Result<()> {
        for d in ["/etc/vz", "/vz"] {
            // Mount points on the machine; see the module docs.
            fs::create_dir_all(d).map_err(|e| LabError::io("mkdir (mount point)", d, e))?;
        }
        let ssh_dir = self.dir.join("ssh");
        fs::create_dir_all(&ssh_dir).map_err(|e| LabError::io("mkdir", &ssh_dir, e))?;
        let kt = self.key_type();
        self.keygen(&ssh_dir.join(format!("id_{kt}")), "vzfs-lab-user")?;

        // Addresses and names first: /etc/hosts and known_hosts need all of them.
        let plan: Vec<(String, Ipv4Addr)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.clone(),
                    Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], i as u8 + 1),
                )
            })
            .collect();
        let mut hosts_file = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
        let mut known = String::new();
        for (name, ip) in &plan {
            hosts_file.push_str(&format!("{ip}\t{name}\n"));
            let hdir = self.dir.join("hosts").join(name);
            fs::create_dir_all(&hdir).map_err(|e| LabError::io("mkdir", &hdir, e))?;
            let key = hdir.join(format!("ssh_host_{kt}_key"));
            self.keygen(&key, &format!("vzfs-lab-host-{name}"))?;
            let pubkey = read(&key.with_extension("pub"))?;
            let mut parts = pubkey.split_whitespace();
            let (kt, kb) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            known.push_str(&format!("{name},{ip} {kt} {kb}\n"));
        }
        write(&self.dir.join("hosts.txt"), &hosts_file)?;
        write(&ssh_dir.join("known_hosts"), &known)?;
        fs::copy(
            ssh_dir.join(format!("id_{kt}.pub")),
            ssh_dir.join("authorized_keys"),
        )
        .map_err(|e| LabError::io("copy", ssh_dir.join("authorized_keys"), e))?;
        write(
            &ssh_dir.join("ssh_config"),
            &format!(
                "# vzfs lab client config (bind-mounted over /etc/ssh/ssh_config in lab hosts)\n\
                 Host *\n    User root\n    IdentityFile {d}/id_{kt}\n    IdentitiesOnly yes\n    \
                 UserKnownHostsFile {d}/known_hosts\n    GlobalKnownHostsFile /dev/null\n    \
                 StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 10\n    LogLevel ERROR\n",
                d = ssh_dir.display()
            ),
        )?;
        let template = self.make_template()?;

        // The switch.
        let sw = format!("{}-sw", self.tag);
        self.add_netns(&sw)?;
        cmd::machine_ok(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        cmd::machine_ok(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;

        for (i, (name, ip)) in plan.iter().enumerate() {
            let host = self.make_host(i, name, *ip, &sw, &ssh_dir, &template)?;
            self.hosts.push(host);
        }
        for h in &self.hosts {
            self.start_sshd(h)?;
        }
        Ok(())
    }

    /// The ssh key type of this lab: ed25519, or RSA for OpenSSH 5.3
    /// (legacy profile), which has no ed25519.
    fn key_type(&self) -> &'static str {
        if self.legacy.is_some() {
            "rsa"
        } else {
            "ed25519"
        }
    }

    /// A key pair without passphrase, made by the ssh-keygen of the hosts'
    /// OpenSSH (5.3's writes the PEM format it reads).
    fn keygen(&self, path: &Path, comment: &str) -> Result<()> {
        let (prog, kt): (PathBuf, &[&str]) = match &self.legacy {
            Some(l) => (l.tool("bin/ssh-keygen"), &["-t", "rsa", "-b", "2048"]),
            None => (PathBuf::from("ssh-keygen"), &["-t", "ed25519"]),
        };
        let mut argv: Vec<&OsStr> = vec![prog.as_os_str(), OsStr::new("-q")];
        argv.extend(kt.iter().map(OsStr::new));
        argv.extend([
            OsStr::new("-N"),
            OsStr::new(""),
            OsStr::new("-C"),
            OsStr::new(comment),
            OsStr::new("-f"),
            path.as_os_str(),
        ]);
        cmd::machine_ok(&argv)?;
        Ok(())
    }

    /// The legacy profile's toolset and wrapper, when this lab has it.
    pub fn legacy(&self) -> Option<&Legacy> {
        self.legacy.as_ref()
    }

    fn add_netns(&self, name: &str) -> Result<()> {
        cmd::machine_ok(&["ip", "netns", "add", name])?;
        lock(&self.netns).push(name.to_string());
        Ok(())
    }

    fn make_template(&self) -> Result<PathBuf> {
        let t = self.dir.join("template");
        let files: &[(&str, &str)] = &[
            ("etc/hostname", "localhost\n"),
            (
                "etc/os-release",
                "NAME=\"vzfs lab minimal\"\nID=lab\nVERSION_ID=1\n",
            ),
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("root/.profile", "# lab container root profile\n"),
            ("var/log/README", "container logs\n"),
            ("var/lib/lab/data.txt", "some data owned by the container\n"),
        ];
        for (p, c) in files {
            let f = t.join(p);
            fs::create_dir_all(f.parent().unwrap()).map_err(|e| LabError::io("mkdir", &f, e))?;
            write(&f, c)?;
        }
        fs::create_dir_all(t.join("tmp")).map_err(|e| LabError::io("mkdir", t.join("tmp"), e))?;
        let tarball = self.dir.join(format!("{TEMPLATE_NAME}.tar.gz"));
        cmd::machine_ok(&[
            OsStr::new("tar"),
            OsStr::new("--numeric-owner"),
            OsStr::new("-czf"),
            tarball.as_os_str(),
            OsStr::new("-C"),
            t.as_os_str(),
            OsStr::new("."),
        ])?;
        Ok(tarball)
    }

    fn make_host(
        &self,
        index: usize,
        name: &str,
        ip: Ipv4Addr,
        sw: &str,
        ssh_dir: &Path,
        template: &Path,
    ) -> Result<Host> {
        let netns = format!("{}-{}", self.tag, name);
        self.add_netns(&netns)?;
        let port = format!("p{index}");
        cmd::machine_ok(&[
            "ip", "link", "add", "eth0", "netns", &netns, "type", "veth", "peer", "name", &port,
            "netns", sw,
        ])?;
        cmd::machine_ok(&["ip", "-n", sw, "link", "set", &port, "master", "br0", "up"])?;
        cmd::machine_ok(&[
            "ip",
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ])?;
        cmd::machine_ok(&["ip", "-n", &netns, "link", "set", "eth0", "up"])?;
        cmd::machine_ok(&["ip", "-n", &netns, "link", "set", "lo", "up"])?;

        // The holder of the mount and UTS namespaces. `ip netns exec` and
        // `unshare` exec in place, so the child's pid is the holder's.
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &netns,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
            "sleep",
            "infinity",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = c.spawn().map_err(|source| LabError::Spawn {
            place: "machine".into(),
            cmd: cmd::describe(&c),
            source,
        })?;
        let pid = child.id();
        let dir = self.dir.join("hosts").join(name);
        let mut host = Host {
            name: name.to_string(),
            index,
            ip,
            netns,
            pid,
            mnt_ns: String::new(),
            net_ns: String::new(),
            ns_guard: Mutex::new(Vec::new()),
            holder: Mutex::new(Some(child)),
            sshd: Mutex::new(None),
            dir,
            ssh_dir: ssh_dir.to_path_buf(),
            legacy: self.legacy.clone(),
        };
        match self.init_host(&mut host, ssh_dir, template) {
            Ok(()) => Ok(host),
            Err(e) => {
                // Not registered in the lab yet: release its processes here.
                let _ = kill_host_processes(&host);
                Err(e)
            }
        }
    }

    fn init_host(&self, host: &mut Host, ssh_dir: &Path, template: &Path) -> Result<()> {
        let (pid, name) = (host.pid, host.name.clone());
        // Wait until the holder runs `sleep` inside its new namespaces.
        let my_mnt = fs::read_link("/proc/self/ns/mnt").ok();
        let t0 = Instant::now();
        loop {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            if comm.trim() == "sleep" && mnt.is_some() && mnt != my_mnt {
                // Pin both namespaces first, then name them from the pinned
                // handles (nsfs inode numbers), so the names stay unique.
                use std::os::unix::fs::MetadataExt;
                for (kind, field) in [("mnt", &mut host.mnt_ns), ("net", &mut host.net_ns)] {
                    let p = format!("/proc/{pid}/ns/{kind}");
                    let f = fs::File::open(&p).map_err(|e| LabError::io("open", &p, e))?;
                    let ino = f
                        .metadata()
                        .map_err(|e| LabError::io("fstat", &p, e))?
                        .ino();
                    *field = format!("{kind}:[{ino}]");
                    lock(&host.ns_guard).push(f);
                }
                break;
            }
            if let Some(st) = lock(&host.holder)
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(LabError::Usage(format!(
                    "namespace holder of host {name} exited ({st}) before it was ready"
                )));
            }
            if t0.elapsed() > TIMEOUT {
                return Err(LabError::Timeout {
                    what: format!("the namespace holder of host {name}"),
                    secs: TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let setup = self.setup_script(&name, ssh_dir);
        host.sh(&setup)?.ok()?;
        host.write_file("/etc/vz/vz.conf", VZ_CONF)?;
        host.write_file("/etc/vz/conf/ve-basic.conf-sample", VE_SAMPLE)?;
        fs::copy(
            template,
            host.path(format!("/vz/template/cache/{TEMPLATE_NAME}.tar.gz")),
        )
        .map_err(|e| LabError::io("copy template to host", template, e))?;
        if self.legacy.is_some() {
            // sshd 5.3's sessions: the CentOS 6 tools first (PermitUserEnvironment).
            host.write_file(
                "/root/.ssh/environment",
                format!(
                    "PATH={}\nVZFS_CPT_DIR={LAB_CPT_DIR}\n",
                    crate::legacy::HOST_PATH
                ),
            )?;
        }
        Ok(())
    }

    fn setup_script(&self, name: &str, ssh_dir: &Path) -> String {
        let mut links = String::new();
        for (link, target) in &self.installed {
            links.push_str(&format!(
                "ln -s {} /usr/local/sbin/{}\n",
                shq(&target.display().to_string()),
                shq(link)
            ));
        }
        format!(
            r#"set -e
hostname {name}
mount -t tmpfs -o mode=0755 lab-etc-vz /etc/vz
mkdir -p /etc/vz/conf /etc/vz/dists
mount -t tmpfs -o mode=0755 lab-vz /vz
mkdir -p /vz/private /vz/root /vz/dump /vz/lock /vz/log /vz/template/cache
mount -t tmpfs -o mode=0755 lab-run /run
mkdir -m 0755 /run/sshd /run/lock
mkdir -p {kernel}
touch {kernel}/cpt {kernel}/rst
mount -t tmpfs -o mode=1777 lab-var-tmp /var/tmp
mount -t tmpfs -o mode=0755 lab-bin /usr/local/sbin
{links}mount --bind {hosts} /etc/hosts
mount --bind {sshcfg} /etc/ssh/ssh_config
mount -t tmpfs -o mode=0700 lab-root /root
mount -t tmpfs -o mode=0755,nosuid lab-dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm /dev/disk/by-id /dev/disk/by-uuid /dev/disk/by-label
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 lab-devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 lab-shm /dev/shm
{legacy}"#,
            name = shq(name),
            hosts = shq(&self.dir.join("hosts.txt").display().to_string()),
            sshcfg = shq(&ssh_dir.join("ssh_config").display().to_string()),
            kernel = LAB_CPT_DIR,
            legacy = match &self.legacy {
                None => String::new(),
                // The toolset at its compiled-in prefix; its ssh reads the
                // lab's client config there.
                Some(l) => format!(
                    "mount -t tmpfs -o mode=0755 lab-opt /opt\nmkdir -p {p}\nmount --bind {t} {p}\n\
                     mount --bind {sshcfg} {p}/etc/ssh/ssh_config\nmkdir -m 0700 /root/.ssh\n",
                    p = crate::legacy::PREFIX,
                    t = shq(&l.toolset.display().to_string()),
                    sshcfg = shq(&ssh_dir.join("ssh_config").display().to_string()),
                ),
            },
        )
    }

    fn start_sshd(&self, h: &Host) -> Result<()> {
        let cfg = h.dir.join("sshd_config");
        if self.legacy.is_some() {
            return self.start_legacy_sshd(h, &cfg);
        }
        write(
            &cfg,
            &format!(
                "# sshd of lab host {name}\nListenAddress {ip}\nPort 22\nHostKey {hd}/ssh_host_ed25519_key\n\
                 PidFile {hd}/sshd.pid\nAuthorizedKeysFile {sd}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nUseDNS no\nPrintMotd no\nX11Forwarding no\nMaxStartups 100\n\
                 MaxSessions 100\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                name = h.name,
                ip = h.ip,
                hd = h.dir.display(),
                sd = h.ssh_dir.display()
            ),
        )?;
        let sshd = crate::preflight::which("sshd").ok_or_else(|| LabError::Preflight {
            reason: "sshd not found (package openssh-server)".into(),
        })?;
        let log = h.dir.join("sshd.log");
        let mut c = h.command(&[
            sshd.as_os_str(),
            OsStr::new("-D"),
            OsStr::new("-f"),
            cfg.as_os_str(),
            OsStr::new("-E"),
            log.as_os_str(),
        ]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().map_err(|source| LabError::Spawn {
            place: h.place(),
            cmd: cmd::describe(&c),
            source,
        })?;
        self.wait_sshd(h, child, &cfg)
    }

    /// OpenSSH 5.3p1's sshd: absolute path (it re-execs itself), `-e` with
    /// stderr to the log (it has no `-E`), RSA host key.
    fn start_legacy_sshd(&self, h: &Host, cfg: &Path) -> Result<()> {
        write(
            cfg,
            &crate::legacy::sshd_config(&h.name, h.ip, &h.dir, &h.ssh_dir),
        )?;
        let log = h.dir.join("sshd.log");
        let logf = fs::File::create(&log).map_err(|e| LabError::io("create", &log, e))?;
        let sshd = format!("{}/sbin/sshd", crate::legacy::PREFIX);
        let mut c = h.command(&[
            OsStr::new(&sshd),
            OsStr::new("-D"),
            OsStr::new("-e"),
            OsStr::new("-f"),
            cfg.as_os_str(),
        ]);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(logf);
        let child = c.spawn().map_err(|source| LabError::Spawn {
            place: h.place(),
            cmd: cmd::describe(&c),
            source,
        })?;
        self.wait_sshd(h, child, cfg)
    }

    fn wait_sshd(&self, h: &Host, child: Child, cfg: &Path) -> Result<()> {
        let spid = child.id();
        *lock(&h.sshd) = Some(child);
        let want = format!("{:08X}:0016", u32::from_le_bytes(h.ip.octets()));
        let t0 = Instant::now();
        loop {
            let tcp = fs::read_to_string(format!("/proc/{spid}/net/tcp")).unwrap_or_default();
            let listening = tcp.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1] == want && f[3] == "0A"
            });
            if listening {
                return Ok(());
            }
            if let Some(st) = lock(&h.sshd)
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(LabError::Command {
                    place: h.place(),
                    cmd: format!("sshd -D -f {}", cfg.display()),
                    status: st.to_string(),
                    stderr_tail: cmd::tail(&h.sshd_log(), 800),
                });
            }
            if t0.elapsed() > TIMEOUT {
                return Err(LabError::Timeout {
                    what: format!(
                        "sshd of host {} to listen on {}:22 (log: {})",
                        h.name,
                        h.ip,
                        cmd::tail(&h.sshd_log(), 400)
                    ),
                    secs: TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The lab's unique tag (`vzl<pid>x<n>`); every netns name starts with it.
    pub fn tag(&self) -> &str {
        &self.tag
    }
    /// The lab's scratch directory on the machine (images, keys, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Where the project's binaries were taken from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }
    /// Commands installed on every host's PATH (`/usr/local/sbin`) and their targets.
    pub fn installed_binaries(&self) -> &[(String, PathBuf)] {
        &self.installed
    }
    /// The lab network, e.g. `10.123.45.0/24`.
    pub fn subnet(&self) -> String {
        format!(
            "{}.{}.{}.0/24",
            self.subnet[0], self.subnet[1], self.subnet[2]
        )
    }
    /// All hosts, in creation order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// The host called `name`; panics with the list of hosts if there is none.
    pub fn host(&self, name: &str) -> &Host {
        self.try_host(name).unwrap_or_else(|| {
            panic!(
                "lab {} has no host {name:?} (hosts: {})",
                self.tag,
                self.hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
    /// The host called `name`, if any.
    pub fn try_host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Runs `argv` on host `to` over ssh from host `from`.
    pub fn ssh<S: AsRef<str>>(&self, from: &str, to: &str, argv: &[S]) -> Result<Output> {
        self.host(from).ssh(self.host(to), argv)
    }

    /// Adds a local disk of `host` (64 MiB sparse; see [`Lab::add_disk`]).
    pub fn add_local_disk(&self, host: &str, name: &str, fs: Fs) -> Result<Disk> {
        self.add_disk(DiskSpec::new(name, &[host], fs))
    }

    /// Adds a SAN LUN seen by every host in `hosts`, each through its own
    /// loop device over the same image (64 MiB sparse).
    pub fn add_lun(&self, name: &str, hosts: &[&str], fs: Fs) -> Result<Disk> {
        self.add_disk(DiskSpec::new(name, hosts, fs))
    }

    /// Creates the image (sparse), formats it, and presents it to each host
    /// of `spec.hosts` as its own loop device.
    pub fn add_disk(&self, spec: DiskSpec) -> Result<Disk> {
        if spec.name.is_empty()
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(LabError::Usage(format!("bad disk name {:?}", spec.name)));
        }
        if lock(&self.disks).iter().any(|d| d.name == spec.name) {
            return Err(LabError::Usage(format!(
                "lab already has a disk named {}",
                spec.name
            )));
        }
        for h in &spec.hosts {
            if self.try_host(h).is_none() {
                return Err(LabError::Usage(format!(
                    "disk {}: no host {h} in the lab",
                    spec.name
                )));
            }
        }
        let images = self.dir.join("images");
        fs::create_dir_all(&images).map_err(|e| LabError::io("mkdir", &images, e))?;
        let image = images.join(format!("{}.img", spec.name));
        let mib = if spec.fs == Fs::Xfs {
            spec.size_mib.max(MIN_XFS_MIB)
        } else {
            spec.size_mib
        };
        let f = fs::File::create(&image).map_err(|e| LabError::io("create image", &image, e))?;
        f.set_len(mib * 1024 * 1024)
            .map_err(|e| LabError::io("truncate image", &image, e))?;
        drop(f);
        let img = image.display().to_string();
        let mut argv: Vec<String> = match (spec.fs, &self.legacy) {
            // An OpenVZ 6 node's ext4: mke2fs 1.41.12, which cannot set MMP.
            (Fs::Ext4, Some(l)) => vec![
                l.tool("sbin/mke2fs").display().to_string(),
                "-q".into(),
                "-F".into(),
                "-t".into(),
                "ext4".into(),
            ],
            (Fs::Ext4Mmp, Some(_)) => {
                return Err(LabError::Usage(format!(
                    "disk {}: a legacy lab (e2fsprogs 1.41.12, kernel 2.6.32) has no ext4 MMP; use Fs::Ext4",
                    spec.name
                )))
            }
            (fs, _) => match fs {
            Fs::Raw => vec![],
            Fs::Ext4 => vec!["mkfs.ext4".into(), "-q".into(), "-F".into()],
            Fs::Ext4Mmp => vec![
                "mkfs.ext4".into(),
                "-q".into(),
                "-F".into(),
                "-O".into(),
                "mmp".into(),
                "-E".into(),
                "mmp_update_interval=5".into(),
            ],
            Fs::Xfs => vec!["mkfs.xfs".into(), "-q".into(), "-f".into()],
            },
        };
        let mut uuid = None;
        if !argv.is_empty() {
            if let Some(l) = &spec.label {
                argv.push("-L".into());
                argv.push(l.clone());
            }
            argv.push(img.clone());
            match &self.legacy {
                Some(l) => {
                    let mut c = Command::new(&argv[0]);
                    c.args(&argv[1..])
                        .env("MKE2FS_CONFIG", l.tool("etc/mke2fs.conf"));
                    cmd::run("machine", c)?.ok()?;
                }
                None => {
                    cmd::machine_ok(&argv)?;
                }
            }
            let out = cmd::machine_ok(&["blkid", "-p", "-o", "value", "-s", "UUID", &img])?;
            uuid = Some(out.stdout.trim().to_string()).filter(|s| !s.is_empty());
        }
        let mut disk = Disk {
            name: spec.name.clone(),
            image,
            fs: spec.fs,
            uuid,
            label: if spec.fs == Fs::Raw {
                None
            } else {
                spec.label.clone()
            },
            attachments: Vec::new(),
        };
        lock(&self.disks).push(disk.clone());
        for h in &spec.hosts {
            disk = self.present(&spec.name, h)?;
        }
        Ok(disk)
    }

    /// Presents an existing disk to one more host (a new loop device over
    /// the same image): e.g. zoning a LUN to a node later.
    pub fn present(&self, disk: &str, host: &str) -> Result<Disk> {
        let image = self
            .disk(disk)
            .ok_or_else(|| LabError::Usage(format!("no disk {disk} in the lab")))?
            .image;
        self.present_file(disk, host, &image)
    }

    /// Presents an existing disk to one more host through a view whose
    /// writes can be held up ([`HeldView::hold`], [`HeldView::resume`]):
    /// the host's loop device is bound to the disk's image as a FUSE
    /// passthrough shows it (`tests/held-fuse.py`, `direct_io`, nothing
    /// cached), so it reads and writes the same LUN as every other host.
    /// Needs `/dev/fuse`, `/usr/bin/python3` with python3-fusepy and
    /// libfuse2 (scripts/install-prereqs). The lab owns the daemon: its
    /// teardown resumes the writes first, detaches the loop device, then
    /// unmounts the FUSE filesystem and kills the daemon.
    pub fn present_held(&self, disk: &str, host: &str) -> Result<(Disk, HeldView)> {
        let d = self
            .disk(disk)
            .ok_or_else(|| LabError::Usage(format!("no disk {disk} in the lab")))?;
        if self.try_host(host).is_none() {
            return Err(LabError::Usage(format!("no host {host} in the lab")));
        }
        if d.try_device(host).is_some() {
            return Err(LabError::Usage(format!(
                "disk {disk} is already presented to {host}"
            )));
        }
        if !Path::new("/dev/fuse").exists() {
            return Err(LabError::Preflight {
                reason: "no /dev/fuse (modprobe fuse) for a held-up view of a LUN".into(),
            });
        }
        let probe = cmd::machine(&[
            HELD_PYTHON,
            "-c",
            "try:\n import fusepy\nexcept ImportError:\n import fuse",
        ])?;
        if !probe.success() {
            return Err(LabError::Preflight {
                reason: format!(
                    "{HELD_PYTHON} cannot import fusepy (install python3-fusepy and libfuse2): {}",
                    cmd::tail(&probe.stderr, 300)
                ),
            });
        }
        let script = self.dir.join("held-fuse.py");
        if !script.exists() {
            fs::write(&script, HELD_FUSE).map_err(|e| LabError::io("write", &script, e))?;
        }
        let dir = self.dir.join("held").join(format!("{disk}-{host}"));
        let mount = dir.join("mnt");
        fs::create_dir_all(&mount).map_err(|e| LabError::io("mkdir", &mount, e))?;
        let pause = dir.join("pause");
        let log = dir.join("daemon.log");
        let out = fs::File::create(&log).map_err(|e| LabError::io("create", &log, e))?;
        let err = out.try_clone().map_err(|e| LabError::io("dup", &log, e))?;
        let mut c = Command::new(HELD_PYTHON);
        c.arg(&script)
            .arg(&d.image)
            .arg(&mount)
            .arg(&pause)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = c.spawn().map_err(|source| LabError::Spawn {
            place: "machine".into(),
            cmd: format!("{HELD_PYTHON} {}", script.display()),
            source,
        })?;
        lock(&self.held).push(HeldDaemon {
            child,
            mount: mount.clone(),
            pause: pause.clone(),
        });
        let file = mount.join(d.image.file_name().unwrap_or_default());
        let size = fs::metadata(&d.image)
            .map_err(|e| LabError::io("stat", &d.image, e))?
            .len();
        let t0 = Instant::now();
        loop {
            let mounted = fs::read_to_string("/proc/self/mountinfo")
                .map(|m| {
                    m.lines().any(|l| {
                        l.split_whitespace().nth(4) == Some(&*mount.to_string_lossy())
                            && l.contains(" - fuse ")
                    })
                })
                .unwrap_or(false);
            if mounted
                && fs::metadata(&file)
                    .map(|m| m.len() == size)
                    .unwrap_or(false)
            {
                break;
            }
            let exited = !lock(&self.held)
                .iter_mut()
                .filter(|h| h.mount == mount)
                .any(|h| matches!(h.child.try_wait(), Ok(None)));
            if exited || t0.elapsed() > TIMEOUT {
                return Err(LabError::Usage(format!(
                    "the held-up view of {disk} for {host}: the FUSE daemon {} ({}): {}",
                    if exited { "exited" } else { "did not come up" },
                    mount.display(),
                    cmd::tail(&fs::read_to_string(&log).unwrap_or_default(), 500)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let disk = self.present_file(disk, host, &file)?;
        Ok((
            disk,
            HeldView {
                disk: d.name.clone(),
                host: host.to_string(),
                file,
                log,
                pause,
            },
        ))
    }

    /// Binds a new loop device of `host` to `file` (the disk's image, or
    /// a view of it) and presents it as the disk.
    fn present_file(&self, disk: &str, host: &str, file: &Path) -> Result<Disk> {
        let h = self
            .try_host(host)
            .ok_or_else(|| LabError::Usage(format!("no host {host} in the lab")))?;
        let d = self
            .disk(disk)
            .ok_or_else(|| LabError::Usage(format!("no disk {disk} in the lab")))?;
        if d.try_device(host).is_some() {
            return Err(LabError::Usage(format!(
                "disk {disk} is already presented to {host}"
            )));
        }
        let (device, backing) = crate::loopdev::attach(file).map_err(LabError::Loop)?;
        lock(&self.loops).push(LoopDev {
            device: device.clone(),
            image: file.to_path_buf(),
            backing,
        });
        let st = nix::sys::stat::stat(&device).map_err(|source| LabError::Sys {
            op: "stat",
            what: device.display().to_string(),
            source,
        })?;
        let (major, minor) = (
            nix::sys::stat::major(st.st_rdev) as u32,
            nix::sys::stat::minor(st.st_rdev) as u32,
        );
        let node = h.path(&device);
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o660),
            st.st_rdev,
        )
        .map_err(|source| LabError::Sys {
            op: "mknod (in host)",
            what: format!("{host}:{}", device.display()),
            source,
        })?;
        let base = device.file_name().unwrap().to_string_lossy().into_owned();
        let mut links = vec![format!("/dev/disk/by-id/lab-{disk}")];
        if let Some(u) = &d.uuid {
            links.push(format!("/dev/disk/by-uuid/{u}"));
        }
        if let Some(l) = &d.label {
            links.push(format!("/dev/disk/by-label/{l}"));
        }
        for l in links {
            let p = h.path(&l);
            std::os::unix::fs::symlink(format!("../../{base}"), &p)
                .map_err(|e| LabError::io("symlink (in host)", format!("{host}:{l}"), e))?;
        }
        let mut disks = lock(&self.disks);
        let entry = disks.iter_mut().find(|x| x.name == disk).unwrap();
        entry.attachments.push(Attachment {
            host: host.to_string(),
            device,
            major,
            minor,
        });
        Ok(entry.clone())
    }

    /// The disk called `name`.
    pub fn disk(&self, name: &str) -> Option<Disk> {
        lock(&self.disks).iter().find(|d| d.name == name).cloned()
    }

    /// All disks.
    pub fn disks(&self) -> Vec<Disk> {
        lock(&self.disks).clone()
    }

    /// Tears the lab down and reports anything that could not be released.
    pub fn teardown(self) -> Result<()> {
        self.teardown_inner()
    }

    fn teardown_inner(&self) -> Result<()> {
        {
            let mut done = lock(&self.torn_down);
            if *done {
                return Ok(());
            }
            *done = true;
        }
        let mut problems = Vec::new();
        // 0. Held-up views: their writes go on, so that nothing below waits
        //    on a held write (an unmount's last MMP update, a dying kmmpd).
        for d in lock(&self.held).iter() {
            match fs::remove_file(&d.pause) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("resume {}: {e}", d.pause.display())),
            }
        }
        // 1. Processes: sshd, then everything in the hosts' namespaces
        //    (workloads, leftovers), then the namespace holders. With no
        //    process left, a host's mount namespace and its mounts go away.
        for h in &self.hosts {
            if let Some(mut c) = lock(&h.sshd).take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for h in &self.hosts {
            if let Err(p) = kill_host_processes(h) {
                problems.push(p);
            }
        }
        // 2. Network namespaces (the veths go with them).
        for ns in lock(&self.netns).drain(..).rev() {
            match cmd::machine(&["ip", "netns", "del", &ns]) {
                Ok(o) if o.success() => {}
                Ok(o) => problems.push(format!("ip netns del {ns}: {}", cmd::tail(&o.stderr, 300))),
                Err(e) => problems.push(format!("ip netns del {ns}: {e}")),
            }
        }
        // 3. Loop devices. A device still referenced by a dying mount is
        //    auto-cleared by the kernel when released: wait for that. Only a
        //    device still bound to our image is touched: once cleared, the
        //    same /dev/loopN may already be another lab's disk.
        let loops: Vec<LoopDev> = lock(&self.loops).drain(..).collect();
        for l in &loops {
            if let Err(e) = crate::loopdev::detach_if_backs(&l.device, l.backing) {
                problems.push(e);
            }
        }
        for l in &loops {
            let t0 = Instant::now();
            while crate::loopdev::backs(&l.device, l.backing).unwrap_or(false) {
                if t0.elapsed() > TIMEOUT {
                    problems.push(format!(
                        "loop device {} still attached to {} (detach it with: losetup -d {})",
                        l.device.display(),
                        l.image.display(),
                        l.device.display()
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
                if let Err(e) = crate::loopdev::detach_if_backs(&l.device, l.backing) {
                    problems.push(e);
                    break;
                }
            }
        }
        // 3b. The FUSE daemons of held-up views, once no loop device is
        //     bound to their files any more: unmounted (lazily), then
        //     killed (a write still pending then fails with ENOTCONN).
        for mut d in lock(&self.held).drain(..) {
            if let Err(e) = nix::mount::umount2(&d.mount, nix::mount::MntFlags::MNT_DETACH) {
                if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
                    problems.push(format!("umount {}: {e}", d.mount.display()));
                }
            }
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        // 4. The scratch directory.
        if self.dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                problems.push(format!("remove {}: {e}", self.dir.display()));
            }
        }
        if let Ok(o) = cmd::machine(&["ip", "netns", "list"]) {
            for l in o.stdout.lines() {
                if l.starts_with(&format!("{}-", self.tag)) {
                    problems.push(format!(
                        "network namespace left: {l} (remove: ip netns del {})",
                        l.split_whitespace().next().unwrap_or("")
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown {
                lab: self.tag.clone(),
                problems,
            })
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            eprintln!("vzfs-lab: {e}");
        }
    }
}

/// SIGKILLs `pid` only if, once pinned by a pidfd, it still lives in one of
/// the host's namespaces: a pid reused by another process between the scan
/// and the kill is left alone.
fn kill_if_still_in(h: &Host, pid: u32) {
    // SAFETY: plain syscalls on integers; the pidfd is closed below.
    let pidfd =
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as libc::c_int;
    if pidfd < 0 {
        return;
    }
    let same = |kind: &str, want: &str| {
        fs::read_link(format!("/proc/{pid}/ns/{kind}"))
            .ok()
            .as_deref()
            == Some(Path::new(want))
    };
    if same("mnt", &h.mnt_ns) || same("net", &h.net_ns) {
        // SAFETY: valid pidfd; a null siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    // SAFETY: we own this descriptor.
    unsafe { libc::close(pidfd) };
}

/// Kills every process of a host (SIGKILL) and reaps the holder; waits until
/// none is left.
fn kill_host_processes(h: &Host) -> std::result::Result<(), String> {
    let t0 = Instant::now();
    loop {
        let pids = h.processes();
        let alive: Vec<u32> = pids
            .into_iter()
            .filter(|p| {
                let st = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                // state is the field after the ")" of comm; Z = zombie.
                !matches!(
                    st.rsplit(')')
                        .next()
                        .map(str::trim_start)
                        .and_then(|s| s.chars().next()),
                    Some('Z') | None
                )
            })
            .collect();
        if alive.is_empty() {
            break;
        }
        for p in &alive {
            kill_if_still_in(h, *p);
        }
        if t0.elapsed() > TIMEOUT {
            return Err(format!(
                "host {}: processes {alive:?} survive SIGKILL",
                h.name
            ));
        }
        // Reap our own children (holder, sshd) so they do not stay zombies.
        if let Some(c) = lock(&h.holder).as_mut() {
            let _ = c.try_wait();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(mut c) = lock(&h.holder).take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    // No process is left to scan for: let the kernel free the namespaces
    // (and with the mount namespace, the mounts that hold loop devices).
    lock(&h.ns_guard).clear();
    Ok(())
}

fn find_binaries(
    bin_dir: &Path,
    product_dir: &Path,
    required: &[String],
) -> Result<Vec<(String, PathBuf)>> {
    let mut v = Vec::new();
    let double = bin_dir.join(VZCTL_DOUBLE);
    if !double.is_file() {
        return Err(LabError::Usage(format!(
            "the vzctl double {} is not built (run: cargo build -p vzfs-lab), or set VZFS_BIN_DIR",
            double.display()
        )));
    }
    v.push(("vzctl".to_string(), double));
    let quota = bin_dir.join(VZQUOTA_DOUBLE);
    if quota.is_file() {
        for name in VZQUOTA_NAMES {
            v.push((name.to_string(), quota.clone()));
        }
    }
    for name in PRODUCT_BINARIES
        .iter()
        .map(|s| s.to_string())
        .chain(required.iter().cloned())
    {
        if v.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let dir = if PRODUCT_BINARIES.contains(&name.as_str()) {
            product_dir
        } else {
            bin_dir
        };
        let p = dir.join(&name);
        if p.is_file() {
            v.push((name, p));
        } else if required.contains(&name) || dir != bin_dir {
            return Err(LabError::Usage(format!(
                "{} is not built (run: {}), or set VZFS_BIN_DIR",
                p.display(),
                if dir != bin_dir {
                    "make release: the legacy profile runs the release builds"
                } else {
                    "cargo build --workspace --bins"
                }
            )));
        }
    }
    Ok(v)
}

fn read(p: &Path) -> Result<String> {
    fs::read_to_string(p).map_err(|e| LabError::io("read", p, e))
}

fn write(p: &Path, s: &str) -> Result<()> {
    fs::write(p, s).map_err(|e| LabError::io("write", p, e))
}

/// Single-quotes a word for sh.
pub(crate) fn shq(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| "''".into())
}

/// `/etc/vz/vz.conf` of every lab host (the defaults of vzctl 4.x that matter).
pub const VZ_CONF: &str = r#"## Global parameters (vzfs lab host; vzctl is a test double)
VIRTUOZZO=yes
LOCKDIR=/vz/lock
DUMPDIR=/vz/dump
VE0CPUUNITS=1000

## Logging parameters
LOGGING=yes
LOGFILE=/vz/log/vzctl.log
LOG_LEVEL=0
VERBOSE=0

## Template parameters
TEMPLATE=/vz/template

## Defaults for containers
VE_ROOT=/vz/root/$VEID
VE_PRIVATE=/vz/private/$VEID
CONFIGFILE="basic"
DEF_OSTEMPLATE="lab-minimal"
VE_LAYOUT=simfs
# The vzctl double keeps no vzquota files (vzctl would create them at start):
# containers that migrate their quota set DISK_QUOTA=yes in their config.
DISK_QUOTA=no
"#;

/// `/etc/vz/conf/ve-basic.conf-sample` of every lab host.
pub const VE_SAMPLE: &str = r#"# Configuration sample of the vzfs lab (a small subset of vzctl's ve-basic)
ONBOOT="no"

# Disk quota parameters (in form of softlimit:hardlimit)
DISKSPACE="2G:2.2G"
DISKINODES="131072:144179"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// `install_hook()` links both action scripts to vzfs-hook on every host,
    /// and vzctl then runs it: the container's device is mounted on
    /// `VE_PRIVATE` by `vzctl mount` and released by `vzctl umount`.
    #[test]
    fn install_hook_links_the_action_scripts_and_vzctl_runs_them() {
        let name = "install_hook_links_the_action_scripts_and_vzctl_runs_them";
        let Some(lab) = Lab::builder().install_hook().start_for_test(name) else {
            return;
        };
        for h in lab.hosts() {
            for s in ["vps.premount", "vps.postumount"] {
                let t = fs::read_link(h.path(format!("/etc/vz/conf/{s}"))).unwrap();
                assert_eq!(
                    t,
                    Path::new("/usr/local/sbin/vzfs-hook"),
                    "{s} on {}",
                    h.name()
                );
            }
        }
        // Idempotent, as `ln -sf`.
        lab.host("b").install_hook().unwrap();
        let disk = lab.add_local_disk("a", "ct", Fs::Ext4).unwrap();
        let a = lab.host("a");
        a.vzctl(&["create", "101", "--ostemplate", TEMPLATE_NAME])
            .unwrap()
            .ok()
            .unwrap();
        a.sh_ok(&format!(
            "rm -rf /vz/private/101 && mkdir /vz/private/101 && \
             echo 'VE_DEVICE=\"{}\"' >> /etc/vz/conf/101.conf",
            disk.by_id_path().display()
        ))
        .unwrap();
        a.vzctl(&["mount", "101"]).unwrap().ok().unwrap();
        let m = a
            .mount_at("/vz/private/101")
            .unwrap()
            .expect("hook mounted it");
        assert_eq!(Some(m.dev), disk.dev_num("a"));
        // VE_PRIVATE, and VE_ROOT (vzctl's bind mount of it).
        let points: Vec<PathBuf> = a
            .disk_mounts(&disk)
            .unwrap()
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        assert_eq!(
            points,
            vec![
                PathBuf::from("/vz/private/101"),
                PathBuf::from("/vz/root/101")
            ]
        );
        a.vzctl(&["umount", "101"]).unwrap().ok().unwrap();
        assert!(a.disk_mounts(&disk).unwrap().is_empty());
        assert!(lab.host("b").disk_mounts(&disk).unwrap().is_empty());
        lab.teardown().unwrap();
    }

    /// Without a built vzfs-hook, both ways of installing it say what to do.
    #[test]
    fn install_hook_without_the_binary_is_a_clear_error() {
        let name = "install_hook_without_the_binary_is_a_clear_error";
        if !crate::preflight::require_lab(name) {
            return;
        }
        let dir = std::env::temp_dir().join(format!("vzfs-lab-nohook.{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let double = default_bin_dir().join(VZCTL_DOUBLE);
        let link = dir.join(VZCTL_DOUBLE);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&double, &link).unwrap();
        let e = Lab::builder()
            .bin_dir(&dir)
            .install_hook()
            .start()
            .unwrap_err()
            .to_string();
        assert!(e.contains("vzfs-hook is not built"), "{e}");
        let lab = Lab::builder().bin_dir(&dir).start().unwrap();
        let e = lab.host("a").install_hook().unwrap_err().to_string();
        assert!(
            e.contains("host a") && e.contains("cargo build -p vzfs-hook"),
            "{e}"
        );
        lab.teardown().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
