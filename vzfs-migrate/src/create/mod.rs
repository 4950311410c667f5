//! `vzfs-create`: an insulated container in one command, and the
//! conversion of an existing container between shared and insulated, on
//! this node. It replaces the seed's manual steps (`vzctl create` into a
//! temporary private area, mkdir, mount, `mv`, hand-edited `VE_DEVICE`).
//!
//! [`cli`] parses; `prepare` makes every check (changing nothing) and
//! builds the [`Job`] (the journal's header) with its steps; the steps run
//! through [`crate::runner`] on the migration's journal, failpoints and
//! signals; [`steps`] says what each step and its undo do. Mounts go only
//! through `vzfs::hook::premount`/`postumount` (via [`crate::hostops`]),
//! config edits only through `vzfs::config::set_key`/`remove_key`.

pub mod cli;
pub mod steps;

use crate::engine::{in_use_detail, stable_name};
use crate::error::{Error, Kind, Result};
use crate::failpoint::Failpoints;
use crate::hostops::{self, DevFacts, PathState};
use crate::journal::{self, Journal};
use crate::lock::CtLock;
use crate::runner::Summary;
use crate::transport::{self, say};
use cli::{MkfsType, Mode, Options};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use steps::Step;
use vzfs::config::{self, VzConfig, VzEtc};

/// The state of the container when the run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Was {
    Absent,
    Stopped,
    Mounted,
    Running,
}

/// Everything a run needs, written as the journal's header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub mode: Mode,
    pub ctid: u32,
    pub vzctl: String,
    pub etc: PathBuf,
    pub conf: PathBuf,
    pub lockdir: PathBuf,
    /// The device as VE_DEVICE names it (create, convert).
    pub device: Option<String>,
    pub device_node: Option<PathBuf>,
    /// The filesystem type the device holds (after mkfs).
    pub fstype: Option<String>,
    pub mkfs: Option<MkfsType>,
    /// mkfs arguments that keep a UUID=/LABEL= spec resolvable.
    pub mkfs_uuid: Option<String>,
    pub mkfs_label: Option<String>,
    pub mmp: bool,
    /// The container's VE_PRIVATE (expanded) and, for create, the value
    /// to write into its config.
    pub private: PathBuf,
    pub private_raw: Option<String>,
    pub private_existed: bool,
    /// Create: the temporary area (parent, and the private area in it).
    pub tmp_parent: Option<PathBuf>,
    pub tmp_private: Option<PathBuf>,
    /// VE_ROOT (create: made by vzctl create; removed by the undo if it did
    /// not exist before).
    pub root: Option<PathBuf>,
    pub root_existed: bool,
    /// Convert: where the old private directory goes; to-shared: the new
    /// directory filled from the device before it replaces VE_PRIVATE.
    pub aside: Option<PathBuf>,
    pub vzctl_args: Vec<String>,
    pub was: Was,
    pub remove_old: bool,
    /// To-shared: the config before (restored by the undo of `config`).
    pub conf_before: Option<Vec<u8>>,
    pub steps: Vec<Step>,
}

impl Job {
    pub fn commit_index(&self) -> usize {
        self.steps
            .iter()
            .position(|s| *s == Step::Config)
            .map(|i| i + 1)
            .unwrap_or(self.steps.len())
    }

    /// The plan as `--check-only` prints it.
    pub fn display(&self) -> String {
        let mut o = format!(
            "vzfs-create {} CT {}{}:\n",
            match self.mode {
                Mode::Create => "create",
                Mode::Convert => "convert shared -> insulated",
                Mode::ToShared => "convert insulated -> shared",
                Mode::Recover => "recover",
            },
            self.ctid,
            self.device
                .as_ref()
                .map(|d| format!(" on {d}"))
                .unwrap_or_default()
        );
        let commit = self.commit_index();
        for (i, s) in self.steps.iter().enumerate() {
            if i == commit {
                o.push_str("  -- commit (the config is final; later failures finish forward)\n");
            }
            o.push_str(&format!(
                "  {:>2}. {:<12} {}\n      undo: {}\n",
                i + 1,
                s.name(),
                steps::describe(self, s),
                steps::undo_describe(self, s)
            ));
        }
        o
    }
}

fn vzctl_status(vzctl: &str, ctid: u32) -> Result<crate::vzctl::Status> {
    let out = transport::run_local(
        "localhost",
        &crate::vzctl::argv(vzctl, true, "status", ctid, &[]),
        false,
    )?
    .check(Kind::System)?;
    crate::vzctl::parse_status(&out.stdout, ctid)
}

/// The value of `--NAME V` / `--NAME=V` among vzctl's options (the last).
fn opt_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&format!("--{name}=")) {
            found = Some(v);
        } else if a == &format!("--{name}") {
            found = it.next().map(String::as_str);
        }
    }
    found
}

/// vzctl's options without `--private P` (the run passes its own).
fn without_private(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--private" {
            it.next();
        } else if !a.starts_with("--private=") {
            out.push(a.clone());
        }
    }
    out
}

/// The checks on the device shared by create and convert: resolvable,
/// a block device mounted nowhere here and not in use (an exclusive open
/// also reveals a mount held in another mount namespace), and either an
/// empty filesystem or `--mkfs` (over data only with `--force`). Read-only.
fn check_device(opts: &Options, spec: &str) -> Result<DevFacts> {
    let d = hostops::device_facts(spec)?;
    let what = format!("device {spec} ({})", d.node.display());
    if !d.released || !d.mounted_at.is_empty() {
        return Err(Error::check(
            Kind::DeviceCheck,
            &what,
            format!(
                "is in use on this node{}; it must be mounted nowhere",
                in_use_detail(&d)
            ),
        ));
    }
    let holds = match (&d.fstype, &d.what) {
        (Some(t), _) => Some(format!(
            "a {t} filesystem{}{}",
            d.uuid
                .as_ref()
                .map(|u| format!(" UUID={u}"))
                .unwrap_or_default(),
            d.label
                .as_ref()
                .map(|l| format!(" LABEL={l}"))
                .unwrap_or_default()
        )),
        (None, Some(w)) if w.starts_with("no filesystem") => {
            if blank_head(&d.node)? {
                None
            } else {
                Some("data vzfs does not recognise".to_string())
            }
        }
        (None, Some(w)) => Some(w.clone()),
        (None, None) => None,
    };
    match (opts.mkfs, &holds, &d.fstype) {
        (Some(t), Some(h), _) if !opts.force => Err(Error::check(
            Kind::DeviceCheck,
            &what,
            format!(
                "holds {h}; --mkfs {} would destroy it: add --force if that is intended",
                t.name()
            ),
        )),
        (Some(_), _, _) => Ok(d),
        (None, _, None) => Err(Error::check(
            Kind::DeviceCheck,
            &what,
            format!(
                "holds {}; make a filesystem with --mkfs ext4|xfs",
                holds.as_deref().unwrap_or("no filesystem")
            ),
        )),
        (None, _, Some(t)) => {
            if opts.mmp && !t.starts_with("ext") {
                return Err(Error::check(
                    Kind::DeviceCheck,
                    &what,
                    format!("holds {t}: --mmp is ext4 multi-mount protection, which {t} has not"),
                ));
            }
            match vzfs::inspect::root_entries(&d.node, t)
                .map_err(|e| hostops::lib_err(what.clone(), e))?
            {
                Some(names) => {
                    let data: Vec<&String> =
                        names.iter().filter(|n| n.as_str() != "lost+found").collect();
                    if !data.is_empty() {
                        return Err(Error::check(
                            Kind::DeviceCheck,
                            &what,
                            format!(
                                "holds a {t} filesystem with data ({}{}); vzfs-create uses only an empty filesystem (or --mkfs --force to destroy it)",
                                data.iter()
                                    .take(5)
                                    .map(|n| vzfs::text::escape(n))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                if data.len() > 5 { ", ..." } else { "" }
                            ),
                        ));
                    }
                    Ok(d)
                }
                None => Err(Error::check(
                    Kind::DeviceCheck,
                    &what,
                    format!("holds {t}, which vzfs-create cannot inspect unmounted; use --mkfs ext4|xfs --force"),
                )),
            }
        }
    }
}

/// The first 64 KiB of the device are zero (nothing to destroy).
fn blank_head(node: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(node)
        .map_err(|e| Error::io(Kind::DeviceCheck, "cannot open", node, e))?;
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io(Kind::DeviceCheck, "cannot read", node, e)),
        }
    }
    Ok(buf[..n].iter().all(|&b| b == 0))
}

/// The hook must be vzctl's premount/postumount here, or `vzctl start`
/// would not mount the device (exit 14).
fn check_hook(etc: &VzEtc, ctid: u32) -> Result<()> {
    let h = crate::helper::hook_facts(etc, ctid);
    let mut missing = Vec::new();
    for (kind, found) in [("premount", &h.premount), ("postumount", &h.postumount)] {
        match found {
            Some(s) if !crate::helper::hook_version_compatible(&s.version) => {
                missing.push(format!(
                    "{} is vzfs-hook {}, not compatible with vzfs-create {}",
                    s.path.display(),
                    s.version,
                    crate::helper::VERSION
                ))
            }
            Some(_) => {}
            None => missing.push(format!("no vps.{kind} or {ctid}.{kind} that is vzfs-hook")),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::check(
        Kind::TargetSoftware,
        format!("this node: {}", etc.scripts_dir().display()),
        format!(
            "{}: without it vzctl would not mount the container's device at start nor release it at stop; run `vzfs-hook install` first",
            missing.join("; ")
        ),
    ))
}

fn ploop_refusal(ctid: u32, why: &str) -> Error {
    Error::check(
        Kind::Ploop,
        format!("CT {ctid}"),
        format!("{why}: ploop containers have their own image file; vzfs-create handles simfs containers only"),
    )
}

fn global_config(etc: &VzEtc) -> Result<config::ConfigFile> {
    config::read(&etc.global_conf()).map_err(|e| hostops::cfg_err(Kind::Config, "vz.conf", e))
}

fn expand(raw: &str, ctid: u32) -> PathBuf {
    PathBuf::from(config::vzctl_subst_veid(raw, &ctid.to_string()))
}

/// Every check; builds the job. Changes nothing.
fn prepare(opts: &Options, etc: &VzEtc) -> Result<Job> {
    let ctid = opts.ctid;
    let id = ctid.to_string();
    let conf = etc.ct_conf(&id);
    let global = global_config(etc)?;
    let lockdir = crate::helper::global_lockdir(etc)?;
    let mut job = Job {
        mode: opts.mode,
        ctid,
        vzctl: opts.vzctl.clone(),
        etc: etc.root.clone(),
        conf: conf.clone(),
        lockdir,
        device: opts.device.clone(),
        device_node: None,
        fstype: None,
        mkfs: opts.mkfs,
        mkfs_uuid: None,
        mkfs_label: None,
        mmp: false,
        private: PathBuf::new(),
        private_raw: None,
        private_existed: false,
        tmp_parent: None,
        tmp_private: None,
        root: None,
        root_existed: false,
        aside: None,
        vzctl_args: Vec::new(),
        was: Was::Absent,
        remove_old: opts.remove_old,
        conf_before: None,
        steps: Vec::new(),
    };
    match opts.mode {
        Mode::Create => prepare_create(opts, etc, &global, &mut job)?,
        Mode::Convert | Mode::ToShared => prepare_convert(opts, etc, &mut job)?,
        Mode::Recover => unreachable!("recover has no plan to prepare"),
    }
    Ok(job)
}

fn device_part(opts: &Options, job: &mut Job, ctid: u32) -> Result<()> {
    let spec = opts.device.clone().expect("create/convert have --device");
    let d = check_device(opts, &spec)?;
    job.device_node = Some(d.node.clone());
    job.fstype = match opts.mkfs {
        Some(t) => Some(t.name().to_string()),
        None => d.fstype.clone(),
    };
    if opts.mmp {
        let m = vzfs::platform::MmpSupport::of_this_node();
        if !m.usable() {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("--mmp on {spec}"),
                format!(
                    "refused: {}; nothing was changed. Without MMP, fencing protects a LUN several nodes see (a cluster with STONITH, see ocf:vzfs:container): create the container without --mmp",
                    m.why_not()
                ),
            ));
        }
    }
    if opts.mkfs.is_some() {
        match vzfs::device::DeviceSpec::parse(&spec) {
            Ok(vzfs::device::DeviceSpec::Uuid(u)) => job.mkfs_uuid = Some(u),
            Ok(vzfs::device::DeviceSpec::Label(l)) => job.mkfs_label = Some(l),
            _ => {}
        }
        job.steps.push(Step::Mkfs);
        job.mmp = opts.mmp;
    } else if opts.mmp {
        job.mmp = true;
        job.steps.push(Step::Mmp);
    }
    if !stable_name(&spec) {
        let by_uuid = d
            .uuid
            .as_ref()
            .filter(|_| opts.mkfs.is_none())
            .map(|u| format!("UUID={u} (/dev/disk/by-uuid/{u})"))
            .unwrap_or_else(|| "UUID=... (/dev/disk/by-uuid/..., the UUID mkfs gives it)".into());
        say(&format!(
            "note: CT {ctid}'s VE_DEVICE will be {spec}, a kernel name; on a SAN where the LUN has another name on another node, use --device {by_uuid} instead"
        ));
    }
    Ok(())
}

fn prepare_create(
    opts: &Options,
    etc: &VzEtc,
    global: &config::ConfigFile,
    job: &mut Job,
) -> Result<()> {
    let ctid = job.ctid;
    if job.conf.exists() {
        return Err(Error::check(
            Kind::Exists,
            format!("CT {ctid}: {}", job.conf.display()),
            "exists: the container exists (a config file alone counts); choose another CTID, or `vzctl destroy` it",
        ));
    }
    let st = vzctl_status(&opts.vzctl, ctid)?;
    if st.exists {
        return Err(Error::check(
            Kind::Exists,
            format!("CT {ctid}"),
            "exists (vzctl status)",
        ));
    }
    let layout = opt_value(&opts.vzctl_args, "layout")
        .map(str::to_string)
        .or_else(|| global.first("VE_LAYOUT").map(|v| v.raw.clone()));
    if layout.as_deref() == Some("ploop") {
        return Err(ploop_refusal(ctid, "VE_LAYOUT=ploop (or --layout ploop)"));
    }
    // the template
    let tmpl = opt_value(&opts.vzctl_args, "ostemplate")
        .map(str::to_string)
        .or_else(|| global.first("DEF_OSTEMPLATE").map(|v| v.raw.clone()))
        .ok_or_else(|| {
            Error::check(
                Kind::ApplyConfig,
                format!("CT {ctid}"),
                "no OS template: give --ostemplate NAME (vz.conf has no DEF_OSTEMPLATE)",
            )
        })?;
    let tdir = PathBuf::from(
        global
            .first("TEMPLATE")
            .map(|v| v.raw.clone())
            .unwrap_or_else(|| "/vz/template".into()),
    )
    .join("cache");
    let found = ["tar.gz", "tar.xz", "tar.bz2", "tar.lzma", "tar"]
        .iter()
        .map(|e| tdir.join(format!("{tmpl}.{e}")))
        .find(|p| p.is_file());
    if found.is_none() {
        return Err(Error::check(
            Kind::ApplyConfig,
            format!("OS template {tmpl}"),
            format!(
                "not found in {} ({tmpl}.tar.gz, ...); vzctl create would fail",
                tdir.display()
            ),
        ));
    }
    // the final private area and the temporary one next to it
    let raw = opt_value(&opts.vzctl_args, "private")
        .map(str::to_string)
        .or_else(|| global.first("VE_PRIVATE").map(|v| v.raw.clone()))
        .ok_or_else(|| {
            Error::check(
                Kind::Config,
                etc.global_conf().display().to_string(),
                "VE_PRIVATE is set nowhere",
            )
        })?;
    let private = expand(&raw, ctid);
    match hostops::path_state(&private) {
        PathState::Absent => {}
        PathState::Empty => job.private_existed = true,
        s => {
            return Err(Error::check(
                Kind::Exists,
                format!("CT {ctid}: VE_PRIVATE {}", private.display()),
                format!(
                    "is {}; vzctl create and the mount need it absent or empty",
                    if s == PathState::NotDir {
                        "not a directory"
                    } else {
                        "not empty"
                    }
                ),
            ))
        }
    }
    if let Some(m) = hostops::mounted_on(&private)? {
        return Err(Error::check(
            Kind::Exists,
            format!("CT {ctid}: VE_PRIVATE {}", private.display()),
            format!("has {m} mounted on it"),
        ));
    }
    let parent = private.parent().ok_or_else(|| {
        Error::check(
            Kind::Config,
            format!("VE_PRIVATE {}", private.display()),
            "has no parent directory",
        )
    })?;
    if !parent.is_dir() {
        return Err(Error::check(
            Kind::Config,
            format!("VE_PRIVATE {}", private.display()),
            format!("its parent {} does not exist", parent.display()),
        ));
    }
    let tmp_parent = parent.join(format!(".vzfs-create-{ctid}"));
    if std::fs::symlink_metadata(&tmp_parent).is_ok() {
        return Err(Error::check(
            Kind::Exists,
            format!("temporary area {}", tmp_parent.display()),
            "exists (left by an earlier run?); remove it, or run `vzfs-create --recover` if a journal says so",
        ));
    }
    let root_raw = opt_value(&opts.vzctl_args, "root")
        .map(str::to_string)
        .or_else(|| global.first("VE_ROOT").map(|v| v.raw.clone()));
    let root = root_raw.as_deref().map(|r| expand(r, ctid));
    job.root_existed = root.as_ref().map(|r| r.exists()).unwrap_or(false);
    job.root = root;
    job.private = private;
    job.private_raw = Some(raw);
    job.tmp_private = Some(tmp_parent.join("private"));
    job.tmp_parent = Some(tmp_parent);
    job.vzctl_args = without_private(&opts.vzctl_args);
    check_hook(etc, ctid)?;
    device_part(opts, job, ctid)?;
    // The template is extracted first: only then is known what it really
    // occupies, and the device is written (mkfs, tune2fs, mount) only once
    // it is known to fit (see `steps`: Ctx::check_fits).
    let device_steps = std::mem::take(&mut job.steps);
    job.steps.push(Step::CreateTmp);
    job.steps.extend(device_steps);
    job.steps.extend([
        Step::Mount,
        Step::Copy,
        Step::Verify,
        Step::Config,
        Step::Umount,
        Step::RemoveTmp,
    ]);
    Ok(())
}

fn prepare_convert(opts: &Options, etc: &VzEtc, job: &mut Job) -> Result<()> {
    let ctid = job.ctid;
    let (cfg, fs): (VzConfig, vzfs::hook::CtFs) = hostops::ct_fs(etc, ctid)?;
    cfg.check_vzfs_keys()
        .map_err(|e| hostops::cfg_err(Kind::Config, format!("config of CT {ctid}"), e))?;
    if cfg.get("VE_LAYOUT").map(|v| v.raw.as_str()) == Some("ploop") {
        return Err(ploop_refusal(ctid, "VE_LAYOUT=ploop"));
    }
    let st = vzctl_status(&opts.vzctl, ctid)?;
    if !st.exists {
        return Err(Error::check(
            Kind::NoExist,
            format!("CT {ctid}"),
            "does not exist on this node (vzctl status says deleted)",
        ));
    }
    job.was = if st.running {
        Was::Running
    } else if st.mounted {
        Was::Mounted
    } else {
        Was::Stopped
    };
    if job.was != Was::Stopped && !opts.restart {
        return Err(Error::check(
            Kind::StopSource,
            format!("CT {ctid}"),
            format!(
                "is {}; add --restart to stop it, convert it and {} it again",
                if job.was == Was::Running {
                    "running"
                } else {
                    "mounted"
                },
                if job.was == Was::Running {
                    "start"
                } else {
                    "mount"
                }
            ),
        ));
    }
    if st.suspended {
        return Err(Error::check(
            Kind::StopSource,
            format!("CT {ctid}"),
            "is suspended (a dump file exists); restore it or remove the dump first",
        ));
    }
    job.private = fs.private.clone();
    job.root = fs.root.clone();
    job.root_existed = true;
    let parent = job.private.parent().map(Path::to_path_buf).ok_or_else(|| {
        Error::check(
            Kind::Config,
            format!("VE_PRIVATE {}", job.private.display()),
            "has no parent directory",
        )
    })?;
    let base = job
        .private
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| ctid.to_string());
    if job.mode == Mode::Convert {
        if let Some(d) = &fs.device {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("CT {ctid}"),
                format!(
                    "is already insulated (VE_DEVICE={} at {}); --convert --to-shared makes it shared",
                    d.spec, d.origin
                ),
            ));
        }
        if job.was == Was::Stopped {
            if let Some(m) = hostops::mounted_on(&job.private)? {
                return Err(Error::check(
                    Kind::DeviceCheck,
                    format!("CT {ctid}: VE_PRIVATE {}", job.private.display()),
                    format!("has {m} mounted on it"),
                ));
            }
        }
        if !job.private.is_dir() {
            return Err(Error::check(
                Kind::NoExist,
                format!("CT {ctid}: VE_PRIVATE {}", job.private.display()),
                "is not a directory",
            ));
        }
        let aside = parent.join(format!("{base}.vzfs-shared-{ctid}"));
        if std::fs::symlink_metadata(&aside).is_ok() {
            return Err(Error::check(
                Kind::Exists,
                format!("CT {ctid}: {}", aside.display()),
                "exists (the old private directory of an earlier conversion?); remove or rename it first",
            ));
        }
        job.aside = Some(aside);
        check_hook(etc, ctid)?;
        device_part(opts, job, ctid)?;
        // the data must fit: what it really occupies against the device size
        let used = vzfs::manifest::allocated_bytes(&job.private)
            .map_err(|e| hostops::lib_err(format!("CT {ctid}: VE_PRIVATE"), e))?;
        if let Some(size) = job
            .device_node
            .as_deref()
            .and_then(hostops::block_size_bytes)
        {
            if used >= size {
                return Err(Error::check(
                    Kind::Copy,
                    format!("device {}", opts.device.as_deref().unwrap_or("?")),
                    format!(
                        "is too small: {size} bytes, the container's files occupy {used} bytes"
                    ),
                ));
            }
        }
        if job.was != Was::Stopped {
            job.steps.insert(0, Step::Stop);
        }
        job.steps.extend([
            Step::RenameOld,
            Step::Mount,
            Step::Copy,
            Step::Verify,
            Step::Config,
            Step::Umount,
        ]);
    } else {
        let Some(d) = &fs.device else {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("CT {ctid}"),
                "is already shared (no VE_DEVICE)",
            ));
        };
        let facts = hostops::device_facts(&d.spec.to_string())?;
        job.device = Some(d.spec.to_string());
        job.device_node = Some(facts.node.clone());
        job.fstype = facts.fstype.clone();
        if job.was == Was::Stopped && (!facts.released || !facts.mounted_at.is_empty()) {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("device {} ({})", d.spec, facts.node.display()),
                format!(
                    "is in use on this node although CT {ctid} is not mounted{}; release it first",
                    in_use_detail(&facts)
                ),
            ));
        }
        let aside = parent.join(format!("{base}.vzfs-new-{ctid}"));
        if std::fs::symlink_metadata(&aside).is_ok() {
            return Err(Error::check(
                Kind::Exists,
                format!("CT {ctid}: {}", aside.display()),
                "exists (left by an earlier run?); remove it first",
            ));
        }
        // a mounted container's files are readable now: they must fit
        // next to VE_PRIVATE (a stopped one's are measured by the copy step)
        if job.was != Was::Stopped && hostops::mounted_on(&job.private)?.is_some() {
            let used = vzfs::manifest::allocated_bytes(&job.private)
                .map_err(|e| hostops::lib_err(format!("CT {ctid}: VE_PRIVATE"), e))?;
            let st = nix::sys::statvfs::statvfs(&parent)
                .map_err(|e| Error::io(Kind::System, "cannot statvfs", &parent, e.into()))?;
            let avail = st.blocks_available() as u64 * st.fragment_size() as u64;
            if used > avail {
                return Err(Error::check(
                    Kind::Copy,
                    format!("CT {ctid}: {}", parent.display()),
                    format!("has {avail} bytes free, the container's files occupy {used} bytes: they do not fit there"),
                ));
            }
        }
        job.aside = Some(aside);
        job.conf_before = Some(
            std::fs::read(&job.conf)
                .map_err(|e| Error::io(Kind::System, "cannot read", &job.conf, e))?,
        );
        if job.was != Was::Stopped {
            job.steps.push(Step::Stop);
        }
        job.steps.extend([
            Step::Mount,
            Step::Copy,
            Step::Verify,
            Step::Umount,
            Step::Swap,
            Step::Config,
        ]);
    }
    match job.was {
        Was::Running => job.steps.push(Step::Start),
        Was::Mounted => job.steps.push(Step::MountCt),
        _ => {}
    }
    if job.remove_old {
        job.steps.push(Step::RemoveOld);
    }
    Ok(())
}

fn journal_dir(opts: &Options, job_lockdir: &Path) -> PathBuf {
    opts.journal_dir
        .clone()
        .unwrap_or_else(|| job_lockdir.to_path_buf())
}

/// The whole run; returns the summary (exit code in it).
pub fn run(opts: &Options, etc: &VzEtc) -> Summary {
    let t0 = Instant::now();
    let mut sum = Summary {
        ctid: opts.ctid,
        target: "localhost".into(),
        ..Default::default()
    };
    let res = match opts.mode {
        Mode::Recover => recover(opts, etc, &mut sum),
        _ => create(opts, etc, &mut sum),
    };
    sum.finish(res, t0);
    sum
}

fn create(opts: &Options, etc: &VzEtc, sum: &mut Summary) -> Result<()> {
    let ctid = opts.ctid;
    let lockdir = crate::helper::global_lockdir(etc)?;
    let jdir = journal_dir(opts, &lockdir);
    let jpath = journal::journal_path_of(&jdir, ctid, "create");
    if jpath.exists() {
        return Err(journal::exists_error(&jpath, ctid, "create"));
    }
    let lock = CtLock::acquire(&lockdir, ctid, "creating")?;
    let res = (|| {
        let fp = Failpoints::from_env()?;
        let job = prepare(opts, etc)?;
        sum.scenario = Some(
            match job.mode {
                Mode::Create => "create",
                Mode::Convert => "convert",
                _ => "to-shared",
            }
            .into(),
        );
        let text = job.display();
        sum.plan = Some(text.clone());
        if opts.check_only {
            if !opts.json {
                print!("{text}");
            }
            say(&format!(
                "check only: every check passed, nothing was changed (CT {ctid})"
            ));
            sum.result = "checked".into();
            return Ok(());
        }
        let mut j = Journal::create_of(&jdir, ctid, "create", &job)?;
        let mut ctx = steps::Ctx::new(job);
        sum.result = "running".into();
        let r = crate::runner::execute(&mut ctx, &mut j, &fp, sum);
        if let Some(d) = ctx.downtime() {
            sum.downtime_seconds = Some(d);
        }
        match &r {
            Ok(()) => {
                j.remove()?;
                sum.result = match ctx.job.mode {
                    Mode::Create => "created",
                    _ => "converted",
                }
                .into();
                ctx.finished_message();
            }
            Err(Error::Undo(_)) => sum.result = "undo-incomplete".into(),
            Err(_) => {
                j.remove()?;
                sum.result = "undone".into();
            }
        }
        r
    })();
    let rel = lock.release();
    res?;
    rel
}

fn recover(opts: &Options, etc: &VzEtc, sum: &mut Summary) -> Result<()> {
    let ctid = opts.ctid;
    let lockdir = crate::helper::global_lockdir(etc)?;
    let jdir = journal_dir(opts, &lockdir);
    let jpath = journal::journal_path_of(&jdir, ctid, "create");
    if !jpath.exists() {
        return Err(Error::check(
            Kind::Usage,
            format!("journal {}", jpath.display()),
            format!(
                "does not exist: there is no unfinished vzfs-create run of CT {ctid} to recover"
            ),
        ));
    }
    let lock = CtLock::acquire(&lockdir, ctid, "creating")?;
    let res = (|| {
        let fp = Failpoints::from_env()?;
        let st = journal::read(&jpath)?;
        let job: Job = serde_json::from_value(st.header.clone()).map_err(|e| {
            Error::check(
                Kind::System,
                format!("journal {}", jpath.display()),
                format!("bad header: {e}"),
            )
        })?;
        say(&format!(
            "recover CT {ctid}: {}",
            if st.committed {
                "the run was committed; finishing its remaining steps"
            } else {
                "undoing the interrupted run"
            }
        ));
        let committed = st.committed;
        let j = Journal::open(&jpath)?;
        let mut ctx = steps::Ctx::new(job);
        crate::runner::recover(&mut ctx, j, &fp, sum)?;
        if committed {
            ctx.finished_message();
        }
        Ok(())
    })();
    let rel = lock.release();
    res?;
    rel
}

/// Entry point of the `vzfs-create` binary (argv with the program name);
/// returns the exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    transport::set_program("vzfs-create");
    crate::run_binary(
        "vzfs-create",
        true,
        cli::parse(args),
        |o| (o.verbose, o.times, o.json),
        run,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vzctl_option_values() {
        let a: Vec<String> = [
            "--ostemplate",
            "t1",
            "--private=/p/$VEID",
            "--hostname",
            "h",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(opt_value(&a, "ostemplate"), Some("t1"));
        assert_eq!(opt_value(&a, "private"), Some("/p/$VEID"));
        assert_eq!(opt_value(&a, "root"), None);
        assert_eq!(
            without_private(&a),
            ["--ostemplate", "t1", "--hostname", "h"]
        );
        let b: Vec<String> = ["--private", "/x", "--ipadd", "1.2.3.4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(without_private(&b), ["--ipadd", "1.2.3.4"]);
    }
}
