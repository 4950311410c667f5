//! `vzfs-migrate helper ...`: the target side of a migration, run over ssh
//! by the source, answering one JSON line on stdout
//! (`{"ok":true,"data":...}` or `{"ok":false,"kind":...,"error":...}`).
//! Both sides use the same code ([`crate::hostops`], the vzfs library).
//! The first call of every migration is `helper version`: a missing or
//! different vzfs-migrate on the target stops it before anything changes.
//!
//! Commands (CTID is decimal; the container's settings come from the
//! target's own config once `install-config` has put it there):
//! - `version`
//! - `facts CTID [--device SPEC] [--uuid UUID] [--vzctl PROG] [--cpt-dir DIR]`, stdin: the container
//!   config text as it will be installed: private/root paths and state,
//!   whether the CT exists, vzctl presence, the device (by spec and by UUID),
//!   which of its `IP_ADDRESS` addresses are in use on this node (in another
//!   container's config, or on an interface)
//! - `install-config CTID`, stdin: JSON `{conf, scripts:[[name,mode,bytes]]}`
//! - `remove-config CTID NAME...`
//! - `prepare-private CTID [--kept]` (stdin: the migration's identity, see
//!   [`crate::ops::Job::keep_marker`]) / `unprepare-private CTID`
//! - `wipe-private CTID` (also removes the `--keep-dst` marker)
//! - `keep-dst-mark CTID` (stdin: identity) / `keep-dst-clear CTID`: the
//!   marker `.vzfs-keep-dst.CTID` next to the private area saying its data
//!   is what a failed `--keep-dst` migration of that container from that
//!   source copied, in that very area (directory inode or filesystem UUID);
//!   only then may a new migration copy (rsync `--delete`) over it
//! - `quota-check CTID` / `quota-load CTID` (stdin: `vzdqdump` output) /
//!   `quota-drop CTID`: the container's vzquota (see `Step::Quota`)
//! - `mount CTID` / `umount CTID` (the container's device)
//! - `dev-mount CTID SPEC PATH` / `dev-umount CTID SPEC PATH` (dump device)
//! - `remove-dump CTID`
//! - `probe-uuid UUID`
//! - `serve [--vzctl PROG]`: all of the above (and the target's vzctl) as
//!   requests on one long-lived session, see [`crate::session`]; the source
//!   uses only this one, over ssh, once per run

use crate::error::{Error, Kind, Result};
use crate::hostops::{self, DevFacts, PathState};
use crate::session::{Session, Sessions};
use crate::transport::Ssh;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use vzfs::config::{self, VzConfig, VzEtc};
use vzfs::hook::{CtFs, Outcome};

pub use crate::protocol::{PROTO, VERSION};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub conf_exists: bool,
    pub conf_path: PathBuf,
    pub private: PathBuf,
    pub private_state: PathState,
    pub private_mounted: Option<String>,
    pub root: Option<PathBuf>,
    pub lockdir: PathBuf,
    pub dumpdir: PathBuf,
    pub vzctl_found: bool,
    pub device: Option<DevFacts>,
    pub device_error: Option<String>,
    pub uuid_device: Option<DevFacts>,
    pub uuid_error: Option<String>,
    /// Addresses of the container's `IP_ADDRESS` in use on this node, each
    /// with where (`10.0.0.5 (IP_ADDRESS of CT 202 in /etc/vz/conf/202.conf)`).
    #[serde(default)]
    pub ip_in_use: Vec<String>,
    /// The `--keep-dst` marker next to the private area, if any.
    #[serde(default)]
    pub keep_marker: Option<String>,
    /// vzfs-hook as this node's premount/postumount action scripts.
    #[serde(default)]
    pub hook: HookFacts,
    /// The kernel's checkpoint (`cpt`) and restore (`rst`) interfaces.
    #[serde(default)]
    pub cpt: CptFacts,
}

/// Whether this node's kernel can checkpoint and restore containers
/// (OpenVZ's vzcpt/vzrst: `/proc/cpt`, `/proc/rst`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CptFacts {
    pub cpt: bool,
    pub rst: bool,
}

pub fn cpt_facts(cpt_dir: &Path) -> CptFacts {
    CptFacts {
        cpt: cpt_dir.join("cpt").exists(),
        rst: cpt_dir.join("rst").exists(),
    }
}

/// One action script that is vzfs-hook: the script's path, the binary it
/// is (the end of its symlinks) and that binary's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookScript {
    pub path: PathBuf,
    pub binary: PathBuf,
    pub version: String,
}

/// Whether vzfs-hook is installed as a node's premount and postumount
/// action scripts for a container: globally (`vps.premount`,
/// `vps.postumount`) or per container (`CTID.premount`, ...), each a
/// symlink to the vzfs-hook binary or the binary itself. (In issue 10's
/// "chained" mode the admin's old script lives in `vzfs-chained/` and the
/// symlink to vzfs-hook stays in place: the same check holds.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookFacts {
    pub premount: Option<HookScript>,
    pub postumount: Option<HookScript>,
    /// Action scripts present that are not vzfs-hook, and why a script
    /// that looks like it could not be used (`--version` failed).
    pub other: Vec<String>,
}

/// Text that only the vzfs-hook binary holds (its `--help` summary): a copy
/// of the binary installed under the script's own name is recognised by
/// it, without running an admin's script to find out.
const HOOK_MARKER: &[u8] = b"Mount an OpenVZ container's own device (VE_DEVICE) on VE_PRIVATE";

/// Is the file `bin` a copy of the vzfs-hook binary (ELF holding its marker)?
fn is_hook_copy(bin: &Path) -> bool {
    let Ok(data) = std::fs::read(bin) else {
        return false;
    };
    data.starts_with(b"\x7fELF") && data.windows(HOOK_MARKER.len()).any(|w| w == HOOK_MARKER)
}

/// Is `script` vzfs-hook (a symlink to the binary, the binary, or a copy of
/// it under the script's name)? `Ok(None)`: no (another program), `Err`: it
/// looks like vzfs-hook but does not answer `--version`. Only vzfs-hook is
/// ever run (with `--version`, started under the name `vzfs-hook` so that it
/// does not act as a premount/postumount).
pub fn hook_script(script: &Path) -> std::result::Result<Option<HookScript>, String> {
    use std::os::unix::process::CommandExt;
    let Ok(bin) = std::fs::canonicalize(script) else {
        return Ok(None);
    };
    if !bin.is_file() {
        return Ok(None);
    }
    if bin.file_name().and_then(|n| n.to_str()) != Some("vzfs-hook") && !is_hook_copy(&bin) {
        return Ok(None);
    }
    let out = std::process::Command::new(&bin)
        .arg0("vzfs-hook")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "{} -> {}: cannot run --version: {e}",
                script.display(),
                bin.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().strip_prefix("vzfs-hook ") {
        Some(v) if out.status.success() => Ok(Some(HookScript {
            path: script.to_path_buf(),
            binary: bin,
            version: v.trim().to_string(),
        })),
        _ => Err(format!(
            "{} -> {}: `--version` said {:?}",
            script.display(),
            bin.display(),
            text.trim()
        )),
    }
}

/// The hook facts of this node for container `ctid`.
pub fn hook_facts(etc: &VzEtc, ctid: u32) -> HookFacts {
    let mut f = HookFacts::default();
    for kind in ["premount", "postumount"] {
        let mut found = None;
        for name in [format!("vps.{kind}"), format!("{ctid}.{kind}")] {
            let p = etc.scripts_dir().join(&name);
            if std::fs::symlink_metadata(&p).is_err() {
                continue;
            }
            match hook_script(&p) {
                Ok(Some(h)) => {
                    found.get_or_insert(h);
                }
                Ok(None) => f.other.push(format!("{} is not vzfs-hook", p.display())),
                Err(e) => f.other.push(e),
            }
        }
        if kind == "premount" {
            f.premount = found;
        } else {
            f.postumount = found;
        }
    }
    f
}

/// A hook version works with this vzfs-migrate: the same major and minor
/// number (`0.1.x` with `0.1.y`).
pub fn hook_version_compatible(hook: &str) -> bool {
    let mm = |v: &str| -> Option<(String, String)> {
        let mut it = v.split('.');
        Some((it.next()?.to_string(), it.next()?.to_string()))
    };
    mm(hook).is_some() && mm(hook) == mm(VERSION)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallConfig {
    pub conf: Vec<u8>,
    /// (file name in the scripts directory, mode, content)
    pub scripts: Vec<(String, u32, Vec<u8>)>,
}

fn outcome_json(o: &Outcome) -> Value {
    match o {
        Outcome::Shared => json!({"outcome": "shared"}),
        Outcome::Mounted {
            device,
            path,
            fstype,
        } => {
            json!({"outcome": "mounted", "device": device, "path": path, "fstype": fstype})
        }
        Outcome::AlreadyMounted { device, path } => {
            json!({"outcome": "already-mounted", "device": device, "path": path})
        }
        Outcome::NotMounted { path } => json!({"outcome": "not-mounted", "path": path}),
        Outcome::Unmounted { device, path } => {
            json!({"outcome": "unmounted", "device": device, "path": path})
        }
    }
}

fn ctid_arg(a: Option<&String>) -> Result<u32> {
    crate::cli::parse_ctid(a.map(String::as_str).unwrap_or(""))
}

thread_local! {
    /// The input of the request being served by `helper serve` (its stdin
    /// carries requests, not a command's input).
    static INPUT: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Set (or clear) the input [`dispatch`] reads instead of stdin.
pub fn set_input(input: Option<Vec<u8>>) {
    INPUT.with(|i| *i.borrow_mut() = input);
}

fn read_stdin() -> Result<Vec<u8>> {
    if let Some(v) = INPUT.with(|i| i.borrow_mut().take()) {
        return Ok(v);
    }
    let mut v = Vec::new();
    std::io::stdin()
        .read_to_end(&mut v)
        .map_err(|e| Error::io(Kind::System, "cannot read", "stdin", e))?;
    Ok(v)
}

fn which(prog: &str) -> bool {
    if prog.contains('/') {
        return Path::new(prog).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

fn scripts_name_ok(ctid: u32, name: &str) -> bool {
    name == format!("{ctid}.conf")
        || hostops::CT_SCRIPTS
            .iter()
            .any(|s| name == format!("{ctid}.{s}"))
}

/// The target's facts for a container whose config text is `conf_text`.
pub fn facts(
    etc: &VzEtc,
    ctid: u32,
    conf_text: &str,
    device: Option<&str>,
    uuid: Option<&str>,
    vzctl: &str,
    cpt_dir: &Path,
) -> Result<Facts> {
    let id = ctid.to_string();
    let conf_path = etc.ct_conf(&id);
    let global = match config::read(&etc.global_conf()) {
        Ok(g) => g,
        Err(config::ConfigError::Io { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            config::ConfigFile {
                path: etc.global_conf(),
                entries: Vec::new(),
            }
        }
        Err(e) => {
            return Err(hostops::cfg_err(
                Kind::RemoteConfig,
                "target global config",
                e,
            ))
        }
    };
    let ct = config::parse(&conf_path, conf_text)
        .map_err(|e| hostops::cfg_err(Kind::RemoteConfig, format!("config of CT {ctid}"), e))?;
    let cfg = VzConfig::from_files(global, ct, &id);
    let fs =
        CtFs::from_config(&cfg).map_err(|e| hostops::lib_err(format!("config of CT {ctid}"), e))?;
    let dumpdir = cfg
        .path_value("DUMPDIR")
        .map_err(|e| hostops::cfg_err(Kind::RemoteConfig, "DUMPDIR", e))?
        .unwrap_or_else(|| PathBuf::from("/vz/dump"));
    let (device, device_error) = match device {
        None => (None, None),
        Some(s) => match hostops::device_facts(s) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e.chain())),
        },
    };
    let (uuid_device, uuid_error) = match uuid {
        None => (None, None),
        Some(u) => match hostops::device_facts(&format!("UUID={u}")) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e.chain())),
        },
    };
    let keep_marker = std::fs::read_to_string(keep_marker_path(&fs.private, ctid)).ok();
    Ok(Facts {
        conf_exists: conf_path.exists(),
        conf_path,
        private_state: hostops::path_state(&fs.private),
        private_mounted: hostops::mounted_on(&fs.private)?,
        private: fs.private,
        root: fs.root,
        lockdir: fs.lockdir,
        dumpdir,
        vzctl_found: which(vzctl),
        device,
        device_error,
        uuid_device,
        uuid_error,
        ip_in_use: ip_in_use(
            etc,
            ctid,
            cfg.get("IP_ADDRESS").map(|v| v.raw.as_str()).unwrap_or(""),
        )?,
        keep_marker,
        hook: hook_facts(etc, ctid),
        cpt: cpt_facts(cpt_dir),
    })
}

/// The addresses of a vzctl `IP_ADDRESS` value (`ADDR[/MASK] ...`).
fn parse_ips(value: &str) -> Vec<std::net::IpAddr> {
    value
        .split_whitespace()
        .filter_map(|t| t.split('/').next()?.parse().ok())
        .collect()
}

/// Which addresses of `ip_address` are in use on this node: in the
/// `IP_ADDRESS` of another container's config (`<N>.conf` in the scripts
/// directory), or configured on a network interface.
pub fn ip_in_use(etc: &VzEtc, ctid: u32, ip_address: &str) -> Result<Vec<String>> {
    let wanted = parse_ips(ip_address);
    let mut used = Vec::new();
    if wanted.is_empty() {
        return Ok(used);
    }
    let dir = etc.scripts_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(Kind::RemoteConfig, "cannot read", &dir, e)),
    };
    let mut confs: Vec<PathBuf> = entries;
    confs.sort();
    for p in confs {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(id) = name.as_deref().and_then(|n| n.strip_suffix(".conf")) else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id == ctid.to_string() {
            continue;
        }
        let f = config::read(&p)
            .map_err(|e| hostops::cfg_err(Kind::RemoteConfig, format!("config of CT {id}"), e))?;
        if let Some(v) = f.first("IP_ADDRESS") {
            for ip in parse_ips(&v.raw)
                .into_iter()
                .filter(|ip| wanted.contains(ip))
            {
                used.push(format!("{ip} (IP_ADDRESS of CT {id} in {})", p.display()));
            }
        }
    }
    for (ifname, ip) in interface_addrs()? {
        if wanted.contains(&ip) {
            used.push(format!("{ip} (configured on interface {ifname})"));
        }
    }
    Ok(used)
}

/// Every address configured on this node's interfaces (getifaddrs(3)).
fn interface_addrs() -> Result<Vec<(String, std::net::IpAddr)>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(Error::io(
            Kind::System,
            "getifaddrs: cannot list",
            "network interfaces",
            std::io::Error::last_os_error(),
        ));
    }
    let mut v = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned; the
        // address is read as the type its family says.
        unsafe {
            let ifa = &*p;
            if !ifa.ifa_addr.is_null() && !ifa.ifa_name.is_null() {
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned();
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                        v.push((name, IpAddr::V4(ip)));
                    }
                    libc::AF_INET6 => {
                        let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        v.push((name, IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr))));
                    }
                    _ => {}
                }
            }
            p = ifa.ifa_next;
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(v)
}

/// The `--keep-dst` marker of a private area: `.vzfs-keep-dst.CTID` next
/// to it (in its parent directory: outside the copied tree, and for a
/// device on the node's own filesystem).
pub fn keep_marker_path(private: &Path, ctid: u32) -> PathBuf {
    private
        .parent()
        .unwrap_or(Path::new("/"))
        .join(format!(".vzfs-keep-dst.{ctid}"))
}

/// The marker's text without its comment lines.
pub fn marker_body(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn remove_if_exists(p: &Path) -> Result<bool> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(Kind::System, "cannot remove", p, e)),
    }
}

/// What the area is: the filesystem UUID of the container's device, or
/// the device and inode of a plain directory (a directory removed and made
/// again, or another device, is another area).
fn area_id(fs: &CtFs) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    match &fs.device {
        Some(d) => {
            let f = hostops::device_facts(&d.spec.to_string())?;
            Ok(format!("UUID={}", f.uuid.unwrap_or_default()))
        }
        None => {
            let m = std::fs::metadata(&fs.private)
                .map_err(|e| Error::io(Kind::System, "cannot stat", &fs.private, e))?;
            Ok(format!("dir {}:{}", m.dev(), m.ino()))
        }
    }
}

/// The kept data is what a `--keep-dst` run of this container from this
/// source (`ident`) left in this very area. `Err(text)`: why not.
fn check_keep_marker(fs: &CtFs, ctid: u32, ident: &str) -> std::result::Result<(), String> {
    let p = keep_marker_path(&fs.private, ctid);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| format!("has no --keep-dst marker {} ({e})", p.display()))?;
    let area = area_id(fs).map_err(|e| e.chain())?;
    let want = format!("{ident}area={area}\n");
    if marker_body(&text) != want {
        return Err(format!(
            "its --keep-dst marker {} records another migration or another area ({:?}, this one: {:?})",
            p.display(),
            marker_body(&text).trim().replace('\n', " "),
            want.trim().replace('\n', " ")
        ));
    }
    Ok(())
}

/// The options of stock vzmigrate's `vzdqdump`/`vzdqload` calls: users'
/// and groups' limits, grace times, expiry times, and the first-level quota.
pub const QUOTA_DUMP_OPTS: [&str; 4] = ["-U", "-G", "-T", "-F"];

/// This node's name, for messages.
pub fn node_name() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// `vzdqdump CTID -U -G -T -F` on this node (`who` names it in errors).
pub fn quota_dump(who: &str, ctid: u32) -> Result<String> {
    let label = format!("{who} {}", node_name());
    let mut argv = vec!["vzdqdump".to_string(), ctid.to_string()];
    argv.extend(QUOTA_DUMP_OPTS.iter().map(|s| s.to_string()));
    let o = crate::transport::run_local(&label, &argv, false)?.check(Kind::Quota)?;
    Ok(o.stdout)
}

/// Is there a vzquota file of `ctid` on this node? (`vzdqdump CTID -U`:
/// exit 0 yes, 11 EC_NOQUOTAFILE no.)
fn quota_file_exists(ctid: u32) -> Result<bool> {
    let label = node_name();
    let argv = vec!["vzdqdump".to_string(), ctid.to_string(), "-U".to_string()];
    let o = crate::transport::run_local(&label, &argv, false)?;
    match o.code {
        Some(0) => Ok(true),
        Some(11) => Ok(false),
        _ => Err(o.into_error(Kind::Quota)),
    }
}

fn quota_check(ctid: u32) -> Result<()> {
    let host = node_name();
    for prog in ["vzquota", "vzdqdump", "vzdqload"] {
        if !which(prog) {
            return Err(Error::check(
                Kind::Quota,
                format!("{host}: {prog}"),
                format!("not found: DISK_QUOTA of CT {ctid} is not `no`, so its quota is migrated; install vzquota here or set DISK_QUOTA=no in its config"),
            ));
        }
    }
    if quota_file_exists(ctid)? {
        return Err(Error::check(
            Kind::Quota,
            format!("{host}: quota of CT {ctid}"),
            format!("a vzquota file of CT {ctid} exists already although the container does not; it is not ours to replace: check it and remove it with `vzquota drop {ctid}`"),
        ));
    }
    Ok(())
}

/// A vzctl quota value (one side of `DISKSPACE` or `DISKINODES`): a number
/// with an optional K/M/G/T/P suffix, or `unlimited`. Blocks are counted in
/// 1K units as vzquota wants them (so `K` is 1); inodes are plain numbers.
fn quota_num(v: &str, blocks: bool) -> Option<u64> {
    let v = v.trim();
    if v == "unlimited" {
        return Some(i64::MAX as u64);
    }
    let (num, suf) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], Some(c.to_ascii_uppercase())),
        _ => (v, None),
    };
    let x: f64 = num.parse().ok()?;
    let k = if blocks { 1.0 } else { 1024.0 };
    let mult = match suf {
        None => 1.0,
        Some('K') => k,
        Some('M') => k * 1024.0,
        Some('G') => k * 1024.0 * 1024.0,
        Some('T') => k * 1024.0 * 1024.0 * 1024.0,
        Some('P') => k * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((x * mult) as u64)
}

/// `vzquota init` as `vzctl quotainit` runs it (limits from the config),
/// then `vzdqload CTID -U -G -T -F` with the source's dump.
fn quota_load(etc: &VzEtc, ctid: u32, dump: &[u8]) -> Result<()> {
    let host = node_name();
    let (cfg, fs) = hostops::ct_fs(etc, ctid)?;
    let pair = |key: &str, blocks: bool| -> Result<(u64, u64)> {
        let Some(v) = cfg.get(key) else {
            return Ok((i64::MAX as u64, i64::MAX as u64));
        };
        let (a, b) = v.raw.split_once(':').unwrap_or((&v.raw, &v.raw));
        match (quota_num(a, blocks), quota_num(b, blocks)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(Error::check(
                Kind::Quota,
                format!("{host}: {key} of CT {ctid}"),
                format!("bad value {:?} (want SOFT:HARD)", v.raw),
            )),
        }
    };
    let (bs, bh) = pair("DISKSPACE", true)?;
    let (is, ih) = pair("DISKINODES", false)?;
    let qt = cfg
        .get("QUOTATIME")
        .map(|v| v.raw.trim().to_string())
        .unwrap_or_else(|| "0".into());
    let id = ctid.to_string();
    let p = fs.private.display().to_string();
    let init: Vec<String> = [
        "vzquota",
        "init",
        &id,
        "-b",
        &bs.to_string(),
        "-B",
        &bh.to_string(),
        "-i",
        &is.to_string(),
        "-I",
        &ih.to_string(),
        "-e",
        &qt,
        "-n",
        &qt,
        "-p",
        &p,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    crate::transport::run_local(&host, &init, false)?.check(Kind::Quota)?;
    let mut load = vec!["vzdqload".to_string(), id];
    load.extend(QUOTA_DUMP_OPTS.iter().map(|s| s.to_string()));
    crate::transport::run_local_input(&host, &load, false, Some(dump))?.check(Kind::Quota)?;
    Ok(())
}

/// Undo of a quota load: `vzquota off` (if on) and `vzquota drop`; nothing
/// when there is no quota file.
pub fn quota_drop(ctid: u32) -> Result<bool> {
    if !quota_file_exists(ctid)? {
        return Ok(false);
    }
    let host = node_name();
    let id = ctid.to_string();
    let off =
        crate::transport::run_local(&host, &["vzquota".into(), "off".into(), id.clone()], false)?;
    // 6: EC_NOTRUN, quota was not on
    if !off.success() && off.code != Some(6) {
        return Err(off.into_error(Kind::Quota));
    }
    crate::transport::run_local(&host, &["vzquota".into(), "drop".into(), id], false)?
        .check(Kind::Quota)?;
    Ok(true)
}

fn dumpdir_of(cfg: &VzConfig) -> Result<PathBuf> {
    Ok(cfg
        .path_value("DUMPDIR")
        .map_err(|e| hostops::cfg_err(Kind::RemoteConfig, "DUMPDIR", e))?
        .unwrap_or_else(|| PathBuf::from("/vz/dump")))
}

pub fn dump_file(dumpdir: &Path, ctid: u32) -> PathBuf {
    dumpdir.join(format!("Dump.{ctid}"))
}

/// Run one helper command on this node.
pub fn dispatch(etc: &VzEtc, args: &[String]) -> Result<Value> {
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let rest = &args[args.len().min(1)..];
    match cmd {
        "version" => Ok(crate::protocol::version_answer()),
        "facts" => {
            let ctid = ctid_arg(rest.first())?;
            let mut device = None;
            let mut uuid = None;
            let mut vzctl = "vzctl".to_string();
            let mut cpt_dir = PathBuf::from("/proc");
            let mut it = rest[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--device" => device = it.next().cloned(),
                    "--uuid" => uuid = it.next().cloned(),
                    "--vzctl" => vzctl = it.next().cloned().unwrap_or(vzctl),
                    "--cpt-dir" => cpt_dir = it.next().map(PathBuf::from).unwrap_or(cpt_dir),
                    o => {
                        return Err(Error::Usage(format!(
                            "helper facts: unknown argument {o:?}"
                        )))
                    }
                }
            }
            let text = String::from_utf8(read_stdin()?).map_err(|_| {
                Error::check(
                    Kind::RemoteConfig,
                    format!("config of CT {ctid}"),
                    "is not UTF-8",
                )
            })?;
            let f = facts(
                etc,
                ctid,
                &text,
                device.as_deref(),
                uuid.as_deref(),
                &vzctl,
                &cpt_dir,
            )?;
            Ok(serde_json::to_value(f).expect("facts serialize"))
        }
        "install-config" => {
            let ctid = ctid_arg(rest.first())?;
            let inst: InstallConfig = serde_json::from_slice(&read_stdin()?).map_err(|e| {
                Error::check(Kind::ApplyConfig, "install-config input", e.to_string())
            })?;
            let conf = etc.ct_conf(&ctid.to_string());
            if conf.exists() {
                return Err(Error::check(
                    Kind::Exists,
                    format!("{}", conf.display()),
                    format!("container {ctid} already exists on this node"),
                ));
            }
            std::fs::create_dir_all(etc.scripts_dir())
                .map_err(|e| Error::io(Kind::ApplyConfig, "cannot create", etc.scripts_dir(), e))?;
            for (name, mode, data) in &inst.scripts {
                if !scripts_name_ok(ctid, name) {
                    return Err(Error::Usage(format!(
                        "helper install-config: bad script name {name:?}"
                    )));
                }
                hostops::write_atomic(&etc.scripts_dir().join(name), data, *mode & 0o7777)?;
            }
            hostops::write_atomic(&conf, &inst.conf, 0o644)?;
            // vzctl counts a container as existing when VE_PRIVATE exists
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            for d in [Some(&fs.private), fs.root.as_ref()].into_iter().flatten() {
                std::fs::create_dir_all(d)
                    .map_err(|e| Error::io(Kind::ApplyConfig, "cannot create", d, e))?;
            }
            Ok(json!({"conf": conf}))
        }
        "remove-config" => {
            let ctid = ctid_arg(rest.first())?;
            let mut removed = Vec::new();
            if etc.ct_conf(&ctid.to_string()).exists() {
                if let Ok((_, fs)) = hostops::ct_fs(etc, ctid) {
                    hostops::rmdir_if_empty(&fs.private)?;
                    if let Some(r) = &fs.root {
                        hostops::rmdir_if_empty(r)?;
                    }
                }
            }
            for name in &rest[1..] {
                if !scripts_name_ok(ctid, name) {
                    return Err(Error::Usage(format!(
                        "helper remove-config: bad name {name:?}"
                    )));
                }
                let p = etc.scripts_dir().join(name);
                match std::fs::remove_file(&p) {
                    Ok(()) => removed.push(p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(Kind::ApplyConfig, "cannot remove", &p, e)),
                }
            }
            Ok(json!({"removed": removed}))
        }
        "prepare-private" => {
            let ctid = ctid_arg(rest.first())?;
            let kept = rest.get(1).map(String::as_str) == Some("--kept");
            let ident = String::from_utf8_lossy(&read_stdin()?).into_owned();
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            let created = !fs.private.exists();
            std::fs::create_dir_all(&fs.private)
                .map_err(|e| Error::io(Kind::System, "cannot create", &fs.private, e))?;
            if let Some(r) = &fs.root {
                std::fs::create_dir_all(r)
                    .map_err(|e| Error::io(Kind::System, "cannot create", r, e))?;
            }
            let outcome = hostops::ct_mount(etc, &fs)?;
            let state = hostops::path_state(&fs.private);
            let marker = keep_marker_path(&fs.private, ctid);
            if matches!(state, PathState::Empty | PathState::LostFound) {
                // nothing is kept here: a marker left over is stale
                remove_if_exists(&marker)?;
            } else {
                let why = if !kept {
                    "is not empty: it holds files of another container or an earlier copy; clean it by hand or choose another device".to_string()
                } else {
                    match check_keep_marker(&fs, ctid, &ident) {
                        Ok(()) => String::new(),
                        Err(e) => format!(
                            "is not empty and {e}; refusing to copy over it: clean it by hand"
                        ),
                    }
                };
                if !why.is_empty() {
                    return Err(Error::check(
                        Kind::Exists,
                        format!("target private area {}", fs.private.display()),
                        why,
                    ));
                }
            }
            Ok(json!({"created": created, "kept": kept, "mount": outcome_json(&outcome)}))
        }
        "keep-dst-mark" => {
            let ctid = ctid_arg(rest.first())?;
            let ident = String::from_utf8_lossy(&read_stdin()?).into_owned();
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            let text = format!(
                "# vzfs-migrate --keep-dst: {} holds the data a failed migration of CT {ctid} copied here; a new migration of the same container from the same source copies over it\n{ident}area={}\n",
                fs.private.display(),
                area_id(&fs)?
            );
            let p = keep_marker_path(&fs.private, ctid);
            hostops::write_atomic(&p, text.as_bytes(), 0o600)?;
            Ok(json!({"marker": p}))
        }
        "keep-dst-clear" => {
            let ctid = ctid_arg(rest.first())?;
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            let p = keep_marker_path(&fs.private, ctid);
            Ok(json!({"removed": remove_if_exists(&p)?}))
        }
        "quota-check" => {
            let ctid = ctid_arg(rest.first())?;
            quota_check(ctid)?;
            Ok(Value::Null)
        }
        "quota-load" => {
            let ctid = ctid_arg(rest.first())?;
            let dump = read_stdin()?;
            quota_load(etc, ctid, &dump)?;
            Ok(Value::Null)
        }
        "quota-drop" => {
            let ctid = ctid_arg(rest.first())?;
            Ok(json!({"dropped": quota_drop(ctid)?}))
        }
        "unprepare-private" => {
            let ctid = ctid_arg(rest.first())?;
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            let outcome = hostops::ct_umount(etc, &fs)?;
            let removed = hostops::rmdir_if_empty(&fs.private)?;
            if let Some(r) = &fs.root {
                hostops::rmdir_if_empty(r)?;
            }
            Ok(json!({"removed": removed, "umount": outcome_json(&outcome)}))
        }
        "wipe-private" => {
            let ctid = ctid_arg(rest.first())?;
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            let outcome = hostops::ct_mount(etc, &fs)?;
            let n = hostops::wipe_dir(&fs.private)?;
            remove_if_exists(&keep_marker_path(&fs.private, ctid))?;
            Ok(json!({"removed_entries": n, "mount": outcome_json(&outcome)}))
        }
        "mount" => {
            let ctid = ctid_arg(rest.first())?;
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            Ok(outcome_json(&hostops::ct_mount(etc, &fs)?))
        }
        "umount" => {
            let ctid = ctid_arg(rest.first())?;
            let (_, fs) = hostops::ct_fs(etc, ctid)?;
            Ok(outcome_json(&hostops::ct_umount(etc, &fs)?))
        }
        "dev-mount" | "dev-umount" => {
            let ctid = ctid_arg(rest.first())?;
            let (spec, path) = match (rest.get(1), rest.get(2)) {
                (Some(s), Some(p)) => (s, PathBuf::from(p)),
                _ => return Err(Error::Usage(format!("helper {cmd} CTID SPEC PATH"))),
            };
            let lockdir = global_lockdir(etc)?;
            let fs = hostops::adhoc_fs(ctid, &lockdir, spec, &path)?;
            let o = if cmd == "dev-mount" {
                hostops::ct_mount(etc, &fs)?
            } else {
                let o = hostops::ct_umount(etc, &fs)?;
                hostops::rmdir_if_empty(&path)?;
                o
            };
            Ok(outcome_json(&o))
        }
        "remove-dump" => {
            let ctid = ctid_arg(rest.first())?;
            let (cfg, _) = hostops::ct_fs(etc, ctid)?;
            let f = dump_file(&dumpdir_of(&cfg)?, ctid);
            match std::fs::remove_file(&f) {
                Ok(()) => Ok(json!({"removed": f})),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({"removed": null})),
                Err(e) => Err(Error::io(Kind::System, "cannot remove", &f, e)),
            }
        }
        "probe-uuid" => {
            let uuid = rest
                .first()
                .ok_or_else(|| Error::Usage("helper probe-uuid UUID".into()))?;
            match hostops::device_facts(&format!("UUID={uuid}")) {
                Ok(d) => Ok(serde_json::to_value(d).expect("serializes")),
                Err(_) => Ok(Value::Null),
            }
        }
        other => Err(Error::Usage(format!("unknown helper command {other:?}"))),
    }
}

pub fn global_lockdir(etc: &VzEtc) -> Result<PathBuf> {
    let global = match config::read(&etc.global_conf()) {
        Ok(g) => g,
        Err(_) => config::ConfigFile {
            path: etc.global_conf(),
            entries: Vec::new(),
        },
    };
    let empty = config::ConfigFile {
        path: PathBuf::from("/dev/null"),
        entries: Vec::new(),
    };
    let cfg = VzConfig::from_files(global, empty, "1");
    Ok(cfg
        .path_value("LOCKDIR")
        .map_err(|e| hostops::cfg_err(Kind::System, "LOCKDIR", e))?
        .unwrap_or_else(|| PathBuf::from("/vz/lock")))
}

/// `vzfs-migrate helper [--etc DIR] CMD ...`: print the JSON answer, return
/// the exit code (0 ok, 1 error).
pub fn main(args: &[String]) -> i32 {
    vzfs::log::init("vzfs-migrate-helper", 0, false);
    let (etc, args) = match args.first().map(String::as_str) {
        Some("--etc") if args.len() >= 2 => (VzEtc::new(&args[1]), &args[2..]),
        _ => (VzEtc::default(), args),
    };
    if args.first().map(String::as_str) == Some("serve") {
        return crate::session::serve(&etc, &args[1..], &|etc, args, input| {
            set_input(input);
            let r = dispatch(etc, args);
            set_input(None);
            r
        });
    }
    let answer = match dispatch(&etc, args) {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(e) => json!({"ok": false, "kind": e.kind().name(), "error": e.chain()}),
    };
    println!("{answer}");
    if answer["ok"] == true {
        0
    } else {
        1
    }
}

/// The source's handle on the target: the ssh connection, the helper
/// binary and vzctl there, and the run's helper session
/// ([`crate::session`]) that answers every helper call and vzctl run.
pub struct Remote {
    pub ssh: Ssh,
    pub helper: String,
    pub vzctl: String,
    pub etc: Option<String>,
    session: Sessions,
}

impl Remote {
    /// The target's handle over `ssh`: starts the helper session, whose
    /// greeting is the version check that comes before anything else (a
    /// missing or different vzfs-migrate there is an error here).
    pub fn open(ssh: Ssh, helper: String, vzctl: String, etc: Option<String>) -> Result<Remote> {
        let r = Remote {
            ssh,
            helper,
            vzctl,
            etc,
            session: Sessions::default(),
        };
        r.session.set(r.start_session()?);
        Ok(r)
    }

    fn start_session(&self) -> Result<Session> {
        Session::start(&self.ssh, &self.helper, self.etc.as_deref(), &self.vzctl)
    }

    pub fn host(&self) -> &str {
        &self.ssh.host
    }

    /// Call a helper command; an `ok:false` answer becomes an error naming
    /// the host and the command.
    pub fn call(&self, args: &[&str], input: Option<&[u8]>) -> Result<Value> {
        let v = self
            .session
            .helper(self.host(), args, input, || self.start_session())?;
        let what = format!("target {}: helper {}", self.host(), args.join(" "));
        if v["ok"] == true {
            Ok(v["data"].clone())
        } else {
            let kind = v["kind"]
                .as_str()
                .and_then(Kind::from_name)
                .unwrap_or(Kind::System);
            Err(Error::check(
                kind,
                what,
                v["error"].as_str().unwrap_or("failed").to_string(),
            ))
        }
    }

    /// The version check (also done by the session's greeting).
    pub fn check_version(&self) -> Result<()> {
        let v = self.call(&["version"], None)?;
        let theirs = v["version"].as_str().unwrap_or("?");
        let proto = v["proto"].as_u64().unwrap_or(0);
        if theirs != VERSION || proto != PROTO as u64 {
            return Err(Error::check(
                Kind::TargetSoftware,
                format!("target {}", self.host()),
                format!(
                    "runs vzfs-migrate {theirs} (helper protocol {proto}), this node {VERSION} (protocol {PROTO}); install the same version on both nodes"
                ),
            ));
        }
        Ok(())
    }

    /// Run vzctl on the target (it takes its own lock there), over the
    /// helper session.
    pub fn vzctl(&self, cmd: &str, ctid: u32, args: &[&str]) -> Result<crate::transport::Output> {
        let argv = crate::vzctl::argv(&self.vzctl, false, cmd, ctid, args);
        let shown =
            shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
        let r = self
            .session
            .vzctl(self.host(), &shown, &argv[1..], || self.start_session())?;
        Ok(crate::transport::Output {
            host: self.host().to_string(),
            argv: shown,
            code: r.code,
            signal: r.signal,
            stdout: r.stdout,
            stderr: r.stderr,
        })
    }

    /// End the helper session, then the ssh connection.
    pub fn close(self) {
        self.session.close();
        self.ssh.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc(name: &str) -> (PathBuf, VzEtc) {
        let d = std::env::temp_dir().join(format!("vzfs-helper-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("conf")).unwrap();
        std::fs::write(
            d.join("vz.conf"),
            format!(
                "LOCKDIR={0}/lock\nDUMPDIR={0}/dump\nVE_ROOT={0}/root/$VEID\nVE_PRIVATE={0}/private/$VEID\n",
                d.display()
            ),
        )
        .unwrap();
        (d.clone(), VzEtc::new(&d))
    }

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn version_and_unknown() {
        let (d, e) = etc("ver");
        let v = dispatch(&e, &a(&["version"])).unwrap();
        assert_eq!(v["version"], VERSION);
        assert!(dispatch(&e, &a(&["bogus"]))
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        assert_eq!(
            dispatch(&e, &a(&["mount", "x"])).unwrap_err().exit_code(),
            1
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn hook_versions() {
        let v = VERSION;
        assert!(hook_version_compatible(v));
        let mut parts: Vec<&str> = v.split('.').collect();
        let patch = "999";
        parts[2] = patch;
        assert!(hook_version_compatible(&parts.join(".")));
        assert!(!hook_version_compatible("99.0.0"));
        assert!(!hook_version_compatible("garbage"));
    }

    /// Writes an executable script from a child process (`sh`): a file this
    /// multi-threaded test process opened for writing may still be open in
    /// a child another test forked at that instant, and exec'ing it would
    /// then fail with ETXTBSY ("Text file busy").
    fn write_script(path: &Path, text: &str) {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"")
            .arg("sh")
            .arg(text)
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "write {}", path.display());
    }

    #[test]
    fn hook_script_is_found_by_binary_name() {
        let d = std::env::temp_dir().join(format!("vzfs-hookscript-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        // not named vzfs-hook: another program
        let other = d.join("other");
        std::fs::write(&other, "#!/bin/sh\n").unwrap();
        assert_eq!(hook_script(&other), Ok(None));
        // named vzfs-hook, answering --version as vzfs-hook does
        let bin = d.join("vzfs-hook");
        write_script(&bin, "#!/bin/sh\necho vzfs-hook 0.1.7\n");
        let link = d.join("vps.premount");
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        let h = hook_script(&link).unwrap().unwrap();
        assert_eq!(h.version, "0.1.7");
        assert_eq!(h.binary, std::fs::canonicalize(&bin).unwrap());
        // named vzfs-hook but something else
        std::fs::remove_file(&bin).unwrap();
        write_script(&bin, "#!/bin/sh\necho hello\n");
        assert!(hook_script(&link).unwrap_err().contains("--version"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn facts_from_config_text() {
        let (d, e) = etc("facts");
        let f = facts(
            &e,
            101,
            "OSTEMPLATE=\"debian\"\n",
            None,
            None,
            "/bin/sh",
            Path::new("/nonexistent-cpt"),
        )
        .unwrap();
        assert_eq!(
            f.cpt,
            CptFacts {
                cpt: false,
                rst: false
            }
        );
        assert!(!f.conf_exists);
        assert_eq!(f.private, d.join("private/101"));
        assert_eq!(f.private_state, PathState::Absent);
        assert_eq!(f.dumpdir, d.join("dump"));
        assert!(f.vzctl_found);
        // a CT file's own VE_PRIVATE wins
        std::fs::write(d.join("rst"), "").unwrap();
        let f = facts(
            &e,
            101,
            "VE_PRIVATE=\"/srv/ct/$VEID\"\n",
            Some("/dev/vzfs-nonexistent"),
            None,
            "no-such-vzctl-x",
            &d,
        )
        .unwrap();
        assert_eq!(
            f.cpt,
            CptFacts {
                cpt: false,
                rst: true
            }
        );
        assert_eq!(f.private, PathBuf::from("/srv/ct/101"));
        assert!(!f.vzctl_found);
        assert!(f.device.is_none());
        assert!(f.device_error.unwrap().contains("/dev/vzfs-nonexistent"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn ip_in_use_other_ct_and_interface() {
        let (d, e) = etc("ip");
        std::fs::write(
            d.join("conf/202.conf"),
            "IP_ADDRESS=\"10.9.8.7 fd00::7/64\"\n",
        )
        .unwrap();
        std::fs::write(d.join("conf/101.conf"), "IP_ADDRESS=\"10.9.8.1\"\n").unwrap();
        std::fs::write(
            d.join("conf/203.conf.migrated"),
            "IP_ADDRESS=\"10.9.8.3\"\n",
        )
        .unwrap();
        // its own config, a migrated one and free addresses do not count
        assert!(ip_in_use(&e, 101, "10.9.8.1 10.9.8.3/24 10.9.8.9")
            .unwrap()
            .is_empty());
        let u = ip_in_use(&e, 101, "10.9.8.9 10.9.8.7/24 fd00::7 127.0.0.1").unwrap();
        assert_eq!(u.len(), 3, "{u:?}");
        assert!(
            u[0].starts_with("10.9.8.7 (IP_ADDRESS of CT 202 in "),
            "{u:?}"
        );
        assert!(u[1].starts_with("fd00::7 (IP_ADDRESS of CT 202"), "{u:?}");
        assert_eq!(u[2], "127.0.0.1 (configured on interface lo)");
        assert!(ip_in_use(&e, 101, "").unwrap().is_empty());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn shared_private_prepare_wipe_unprepare() {
        let (d, e) = etc("prep");
        std::fs::write(d.join("conf/101.conf"), "OSTEMPLATE=x\n").unwrap();
        let v = dispatch(&e, &a(&["prepare-private", "101"])).unwrap();
        assert_eq!(v["created"], true);
        assert_eq!(v["mount"]["outcome"], "shared");
        std::fs::write(d.join("private/101/file"), "data").unwrap();
        let v = dispatch(&e, &a(&["wipe-private", "101"])).unwrap();
        assert_eq!(v["removed_entries"], 1);
        dispatch(&e, &a(&["unprepare-private", "101"])).unwrap();
        assert!(!d.join("private/101").exists());
        assert!(!d.join("root/101").exists());
        // non-empty target private area is refused
        std::fs::create_dir_all(d.join("private/101")).unwrap();
        std::fs::write(d.join("private/101/x"), "other").unwrap();
        let err = dispatch(&e, &a(&["prepare-private", "101"])).unwrap_err();
        assert_eq!(err.exit_code(), 9);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn install_and_remove_config() {
        let (d, e) = etc("inst");
        let inst = InstallConfig {
            conf: b"A=\"1\"\n# comment\n".to_vec(),
            scripts: vec![("101.mount".into(), 0o755, b"#!/bin/sh\n".to_vec())],
        };
        let input = serde_json::to_vec(&inst).unwrap();
        // through stdin is the real path; call the parts directly here
        let conf = e.ct_conf("101");
        assert!(!conf.exists());
        hostops::write_atomic(&conf, &inst.conf, 0o644).unwrap();
        assert_eq!(std::fs::read(&conf).unwrap(), inst.conf);
        let v = dispatch(&e, &a(&["remove-config", "101", "101.conf", "101.mount"])).unwrap();
        assert_eq!(v["removed"].as_array().unwrap().len(), 1);
        assert!(dispatch(&e, &a(&["remove-config", "101", "../../etc/passwd"])).is_err());
        assert!(dispatch(&e, &a(&["remove-config", "101", "102.conf"])).is_err());
        drop(input);
        std::fs::remove_dir_all(d).unwrap();
    }
}
