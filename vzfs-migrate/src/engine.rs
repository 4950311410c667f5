//! Running a migration: checks and plan (nothing changes before the journal
//! exists), then each step with its failpoints, journaled before it runs;
//! on failure the undos in reverse order, each outcome reported; `--recover`
//! from the journal after a crash. The summary feeds `-t` and `--json`.

use crate::cli::{Mode, Options};
use crate::error::{Error, Kind, Result};
use crate::failpoint::Failpoints;
use crate::helper::{self, Facts, InstallConfig, Remote};
use crate::hostops::{self, PathState};
use crate::journal::{self, Journal, Record};
use crate::lock::CtLock;
use crate::ops::{self, Ctx, Job};
use crate::plan::{self, CtState, PlanInput, Scenario, Side, Step};
use crate::signals;
use crate::transport::{self, Ssh};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vzfs::config::{self, VzEtc};

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    /// "done", "noop", "failed"
    pub status: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UndoReport {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub ctid: u32,
    pub target: String,
    pub scenario: Option<String>,
    pub state: Option<String>,
    /// "migrated", "checked", "undone", "undo-incomplete", "failed", "recovered"
    pub result: String,
    pub steps: Vec<StepReport>,
    pub undo: Vec<UndoReport>,
    pub downtime_seconds: Option<f64>,
    /// Online migrations: how long the container was frozen, and where
    /// that time went.
    pub freeze: Option<Freeze>,
    pub total_seconds: f64,
    pub plan: Option<String>,
    pub error: Option<String>,
    pub exit_code: i32,
}

/// The frozen time of an online migration (from the suspend on the source
/// to the resume on the target), in stock vzmigrate's phases.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Freeze {
    /// suspend-src + dump-src (+ kill-src: the image is final then)
    pub suspend_dump_seconds: f64,
    /// copy-dump, or the dump device's unmount on the source and mount on
    /// the target ("copy" or "device")
    pub dump_transfer_seconds: f64,
    pub dump_transfer: String,
    /// sync-2 (copy scenarios; 0 for a handoff)
    pub second_rsync_seconds: f64,
    /// undump-dst + resume-dst
    pub undump_resume_seconds: f64,
    /// everything else while frozen (unmounting and mounting the
    /// container's device, the quota)
    pub other_seconds: f64,
    /// wall time from the start of the suspend to the end of the resume
    pub frozen_seconds: f64,
    /// size of the dump file, when known
    pub dump_bytes: Option<u64>,
}

fn freeze_breakdown(sum: &Summary, frozen: f64, dump_bytes: Option<u64>) -> Freeze {
    let secs = |names: &[&str]| -> f64 {
        sum.steps
            .iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|s| s.seconds)
            .fold(0.0, |a, b| a + b)
    };
    let device = sum.steps.iter().any(|s| s.name == "dumpdev-mount-dst");
    let mut f = Freeze {
        suspend_dump_seconds: secs(&["suspend-src", "dump-src", "kill-src"]),
        dump_transfer_seconds: secs(&["copy-dump", "dumpdev-umount-src", "dumpdev-mount-dst"]),
        dump_transfer: if device { "device" } else { "copy" }.into(),
        second_rsync_seconds: secs(&["sync-2"]),
        undump_resume_seconds: secs(&["undump-dst", "resume-dst"]),
        other_seconds: 0.0,
        frozen_seconds: frozen,
        dump_bytes,
    };
    f.other_seconds = (frozen
        - f.suspend_dump_seconds
        - f.dump_transfer_seconds
        - f.second_rsync_seconds
        - f.undump_resume_seconds)
        .max(0.0);
    f
}

/// One line on stderr. A write error (the terminal went away: SIGHUP) is
/// ignored, never a panic in the middle of an undo.
fn say(msg: &str) {
    transport::say(msg);
}

/// Where the journal lives for this container.
pub fn journal_dir(opts: &Options, lockdir: &Path) -> PathBuf {
    opts.journal_dir
        .clone()
        .unwrap_or_else(|| lockdir.to_path_buf())
}

/// Edit the config text for the target (in a private temp copy, with the
/// library's byte-preserving editor).
fn edited_config(src_conf: &Path, sets: &[(&str, String)], removes: &[&str]) -> Result<Vec<u8>> {
    let tmpl = std::env::temp_dir().join("vzfs-mig-conf-XXXXXX");
    let dir = nix::unistd::mkdtemp(&tmpl).map_err(|e| {
        Error::io(
            Kind::System,
            "cannot create temporary directory in",
            std::env::temp_dir(),
            e.into(),
        )
    })?;
    let p = dir.join("ct.conf");
    let res = (|| {
        std::fs::copy(src_conf, &p)
            .map_err(|e| Error::io(Kind::System, "cannot copy", src_conf, e))?;
        for (k, v) in sets {
            config::set_key(&p, k, v)
                .map_err(|e| hostops::cfg_err(Kind::ApplyConfig, format!("set {k}"), e))?;
        }
        for k in removes {
            config::remove_key(&p, k)
                .map_err(|e| hostops::cfg_err(Kind::ApplyConfig, format!("remove {k}"), e))?;
        }
        std::fs::read(&p).map_err(|e| Error::io(Kind::System, "cannot read", &p, e))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

struct Prepared {
    job: Job,
    install: InstallConfig,
    remote: Remote,
}

/// All checks; builds the job and the plan. Changes nothing.
fn prepare(opts: &Options, etc: &VzEtc, target: &str, ctid: u32) -> Result<Prepared> {
    let id = ctid.to_string();
    let (cfg, fs) = hostops::ct_fs(etc, ctid)?;
    cfg.check_vzfs_keys()
        .map_err(|e| hostops::cfg_err(Kind::Config, format!("config of CT {ctid}"), e))?;
    if let Some(v) = cfg.get("VE_LAYOUT") {
        if v.raw == "ploop" {
            return Err(Error::check(
                Kind::Ploop,
                format!("CT {ctid}"),
                "VE_LAYOUT=ploop is not supported by vzfs-migrate (simfs only)",
            ));
        }
    }
    let src_conf = etc.ct_conf(&id);
    let status_out = transport::run_local(
        "source",
        &crate::vzctl::argv(&opts.vzctl, true, "status", ctid, &[]),
        false,
    )?
    .check(Kind::System)?;
    let status = crate::vzctl::parse_status(&status_out.stdout, ctid)?;
    if !status.exists {
        return Err(Error::check(
            Kind::NoExist,
            format!("CT {ctid}"),
            "does not exist on this node (vzctl status says deleted)",
        ));
    }
    let state = status.state();
    let src_dev = match &fs.device {
        None => None,
        Some(d) => Some(hostops::device_facts(&d.spec.to_string())?),
    };
    if let Some(d) = &src_dev {
        if d.fstype.is_none() {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("source device {}", d.node.display()),
                format!(
                    "holds {}; check VE_DEVICE",
                    d.what.as_deref().unwrap_or("no filesystem")
                ),
            ));
        }
        if d.uuid.is_none() {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("source device {}", d.node.display()),
                "its filesystem has no UUID; give it one (tune2fs -U / xfs_admin -U) so both nodes can identify it",
            ));
        }
        if state == CtState::Stopped && (!d.released || !d.mounted_at.is_empty()) {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("source device {}", d.node.display()),
                format!(
                    "is in use on this node although the container is not mounted{}; release it first",
                    in_use_detail(d)
                ),
            ));
        }
        if matches!(state, CtState::Running | CtState::Mounted) {
            // the unmount of a later step would leave the filesystem alive
            // (and the hook refuses to hand it over then): refuse now,
            // before anything changed
            let dev = vzfs::mountinfo::DevNum::parse(&d.dev).ok_or_else(|| {
                Error::check(
                    Kind::System,
                    format!("source device {}", d.node.display()),
                    format!("bad device number {:?}", d.dev),
                )
            })?;
            let own: Vec<PathBuf> = std::iter::once(fs.private.clone())
                .chain(fs.root.clone())
                .collect();
            let foreign = hostops::foreign_mounts(dev, &own)?;
            if !foreign.is_empty() {
                return Err(Error::check(
                    Kind::DeviceCheck,
                    format!("source device {} (UUID={})", d.node.display(), d.uuid.as_deref().unwrap_or("?")),
                    format!(
                        "the filesystem of CT {ctid} is also {}; unmounting the container would leave it alive on this node, so it cannot move: release it there first (end those processes or unmount it), then migrate",
                        foreign.join("; ")
                    ),
                ));
            }
        }
    }
    let dumpdir = cfg
        .path_value("DUMPDIR")
        .map_err(|e| hostops::cfg_err(Kind::System, "DUMPDIR", e))?
        .unwrap_or_else(|| PathBuf::from("/vz/dump"));
    let dump_spec = match (&opts.dump_device, cfg.literal("VE_DUMP_DEVICE")) {
        (Some(d), _) => Some(d.clone()),
        (None, Ok(Some(v))) if opts.online && !v.raw.is_empty() => Some(v.raw.clone()),
        _ => None,
    };
    let dump_dev = match &dump_spec {
        None => None,
        Some(s) => Some(hostops::device_facts(s)?),
    };

    // the target
    let ssh = Ssh::connect_for(target, opts.ssh.as_deref(), &id)?;
    let remote = Remote::open(ssh, opts.remote_helper.clone(), opts.vzctl.clone(), None)?;
    let conf_text = std::fs::read(&src_conf)
        .map_err(|e| Error::io(Kind::System, "cannot read", &src_conf, e))?;
    let mut fargs: Vec<String> = vec![
        "facts".into(),
        id.clone(),
        "--vzctl".into(),
        opts.vzctl.clone(),
        "--cpt-dir".into(),
        opts.cpt_dir.display().to_string(),
    ];
    let probe_spec = match (&opts.dst_device, &fs.device) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(d)) if !opts.dst_shared => Some(d.spec.to_string()),
        _ => None,
    };
    if let Some(s) = &probe_spec {
        fargs.push("--device".into());
        fargs.push(s.clone());
    }
    if let Some(u) = src_dev.as_ref().and_then(|d| d.uuid.clone()) {
        if opts.dst_device.is_none() && !opts.dst_shared {
            fargs.push("--uuid".into());
            fargs.push(u);
        }
    }
    let fa: Vec<&str> = fargs.iter().map(String::as_str).collect();
    let facts: Facts =
        serde_json::from_value(remote.call(&fa, Some(&conf_text))?).map_err(|e| {
            Error::check(
                Kind::RemoteConfig,
                format!("target {target}: facts"),
                e.to_string(),
            )
        })?;
    if !facts.vzctl_found {
        return Err(Error::check(
            Kind::TargetSoftware,
            format!("target {target}"),
            format!("has no {} (OpenVZ tools); install vzctl there", opts.vzctl),
        ));
    }
    if facts.conf_exists {
        return Err(Error::check(
            Kind::Exists,
            format!("target {target}: {}", facts.conf_path.display()),
            format!("container {ctid} already exists there"),
        ));
    }
    if !facts.ip_in_use.is_empty() {
        return Err(Error::check(
            Kind::IpInUse,
            format!("target {target}"),
            format!(
                "IP address of CT {ctid} in use there: {}; free it on the target or change IP_ADDRESS",
                facts.ip_in_use.join(", ")
            ),
        ));
    }

    // the target device, for b/d1 (--dst-device) and d2 (same filesystem)
    let src_uuid = src_dev.as_ref().and_then(|d| d.uuid.clone());
    let mut dst_dev = None;
    if let Some(given) = &opts.dst_device {
        let d = facts.device.clone().ok_or_else(|| {
            Error::check(
                Kind::DeviceCheck,
                format!("target {target}: --dst-device {given}"),
                facts
                    .device_error
                    .clone()
                    .unwrap_or_else(|| "not found".into()),
            )
        })?;
        dst_dev = Some(d);
    } else if src_dev.is_some() && !opts.dst_shared {
        // d2: the configured name if it is the same filesystem there, else by UUID
        let same = |d: &hostops::DevFacts| d.uuid.is_some() && d.uuid == src_uuid;
        dst_dev = match (&facts.device, &facts.uuid_device) {
            (Some(d), _) if same(d) => Some(d.clone()),
            (_, Some(d)) => Some(d.clone()),
            _ => {
                return Err(Error::check(
                    Kind::DeviceCheck,
                    format!("target {target}"),
                    format!(
                        "does not see the filesystem UUID={} ({}); present the SAN device to the target, or copy with --dst-device DEV or --dst-shared",
                        src_uuid.as_deref().unwrap_or("?"),
                        facts.uuid_error.clone().unwrap_or_default()
                    ),
                ))
            }
        };
    }
    let inp = PlanInput {
        state,
        src_uuid: src_uuid.clone(),
        src_insulated: fs.device.is_some(),
        dst_device_given: opts.dst_device.is_some(),
        dst_uuid: dst_dev.as_ref().and_then(|d| d.uuid.clone()),
        dst_shared: opts.dst_shared,
        online: opts.online,
        dump_device: dump_spec.is_some(),
        // as stock vzmigrate: unless DISK_QUOTA is "no" (vzctl's default: yes)
        quota: cfg.get("DISK_QUOTA").map(|v| v.raw.trim()) != Some("no"),
        suspended: status.suspended && state == CtState::Stopped,
    };
    let plan = plan::build(&inp)?;
    let sc = plan.scenario;
    check_checkpoint_support(opts, target, &plan, &facts.cpt)?;
    if sc.dst_insulated() {
        check_target_hook(target, ctid, &facts.hook, etc)?;
    }
    if plan.steps.contains(&Step::Quota) {
        // read-only: the source can dump it, the target can load it and
        // holds no quota of this container yet
        helper::quota_dump("source", ctid)?;
        remote.call(&["quota-check", &id], None)?;
    }
    let src_host = helper::node_name();
    let ident = Job::identity(ctid, &src_host, &fs.private);
    // the target area holds what a --keep-dst run of this very migration
    // left (the target checks the area's identity again before copying)
    let resume_kept = sc.copies()
        && facts.private_mounted.is_none()
        && facts
            .keep_marker
            .as_deref()
            .map(|m| helper::marker_body(m).starts_with(&ident))
            .unwrap_or(false);

    // scenario checks
    let mut sets: Vec<(&str, String)> = Vec::new();
    let mut removes: Vec<&str> = Vec::new();
    if let Some(d) = &dst_dev {
        let what = format!("target {target}: device {}", d.node.display());
        let fstype = d.fstype.clone().ok_or_else(|| {
            Error::check(
                Kind::DeviceCheck,
                &what,
                format!(
                    "holds {}; make a filesystem on it first",
                    d.what.as_deref().unwrap_or("no filesystem")
                ),
            )
        })?;
        if !d.released || !d.mounted_at.is_empty() {
            return Err(Error::check(
                Kind::DeviceCheck,
                &what,
                format!(
                    "is in use on the target{}; it must not be mounted anywhere there",
                    in_use_detail(d)
                ),
            ));
        }
        match sc {
            Scenario::D2 => {
                let sd = src_dev.as_ref().expect("d2 has a source device");
                if sd.fstype.as_deref() != Some(fstype.as_str()) {
                    return Err(Error::check(
                        Kind::DeviceCheck,
                        &what,
                        format!(
                            "holds {fstype}, the source {}: not the same filesystem",
                            sd.fstype.as_deref().unwrap_or("?")
                        ),
                    ));
                }
                if let (Some(a), Some(b)) = (sd.size, d.size) {
                    if a != b {
                        return Err(Error::check(
                            Kind::DeviceCheck,
                            &what,
                            format!(
                                "has the filesystem UUID of the source device {} but another size ({b} bytes, the source {a}): a copy of the LUN, not the same LUN; hand over only a device both nodes see",
                                sd.node.display()
                            ),
                        ));
                    }
                }
                shared_lun_safety(opts, sd, &fstype)?;
                // rewrite VE_DEVICE only when the configured name does not
                // resolve to the same filesystem on the target; then name it
                // by UUID, not by the target's kernel name (`/dev/sdh1`
                // can change at the next boot, the UUID cannot, and the
                // hook refuses a UUID that two devices match).
                let configured_ok = facts
                    .device
                    .as_ref()
                    .map(|f| f.uuid == src_uuid)
                    .unwrap_or(false);
                if opts.dst_device.is_some() || !configured_ok {
                    let v = match (&opts.dst_device, &src_uuid) {
                        (Some(dev), _) if stable_name(dev) => dev.clone(),
                        (_, Some(uuid)) => format!("UUID={uuid}"),
                        (_, None) => d.node.display().to_string(),
                    };
                    say(&format!(
                        "target config: VE_DEVICE={v} ({})",
                        match &opts.dst_device {
                            Some(g) if *g == v => "as given".to_string(),
                            Some(g) => format!("the filesystem UUID instead of the kernel name {g}, which can change at the next boot"),
                            None => format!("the configured name {} does not name this filesystem on the target", sd.spec),
                        }
                    ));
                    sets.push(("VE_DEVICE", v));
                }
            }
            Scenario::B | Scenario::D1 => {
                sets.push((
                    "VE_DEVICE",
                    opts.dst_device.clone().expect("b/d1 have --dst-device"),
                ));
                sets.push(("VE_DEVICE_FSTYPE", fstype.clone()));
                if src_dev.as_ref().and_then(|s| s.fstype.clone()) != Some(fstype) {
                    removes.push("VE_DEVICE_OPTIONS");
                }
            }
            _ => {}
        }
    }
    if sc == Scenario::C {
        removes.extend([
            "VE_DEVICE",
            "VE_DEVICE_FSTYPE",
            "VE_DEVICE_OPTIONS",
            "VE_DEVICE_FSCK",
        ]);
    }
    if sc.copies() || matches!(state, CtState::Running | CtState::Mounted) {
        let ok = match facts.private_state {
            PathState::Absent | PathState::Empty => true,
            PathState::LostFound => sc.dst_insulated(),
            PathState::NonEmpty => resume_kept,
            _ => false,
        };
        if !ok || facts.private_mounted.is_some() {
            return Err(Error::check(
                Kind::Exists,
                format!("target {target}: {}", facts.private.display()),
                format!(
                    "is {}{}; the target private area must be absent or empty (or hold what a --keep-dst run of this container from this node left, with its marker)",
                    match facts.private_state {
                        PathState::NotDir => "not a directory",
                        _ => "not empty",
                    },
                    facts
                        .private_mounted
                        .as_ref()
                        .map(|m| format!(" and has {m} mounted on it"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    let dump_uuid = match &dump_dev {
        None => None,
        Some(d) => {
            let u = d.uuid.clone().ok_or_else(|| {
                Error::check(
                    Kind::DeviceCheck,
                    format!("dump device {}", d.node.display()),
                    "has no filesystem UUID",
                )
            })?;
            let v = remote.call(&["probe-uuid", &u], None)?;
            if v.is_null() {
                return Err(Error::check(
                    Kind::DeviceCheck,
                    format!("target {target}"),
                    format!("does not see the dump device filesystem UUID={u}; present it to the target"),
                ));
            }
            Some(u)
        }
    };

    let conf = edited_config(&src_conf, &sets, &removes)?;
    let mut scripts = Vec::new();
    let mut conf_names = vec![format!("{ctid}.conf")];
    for p in hostops::ct_scripts(etc, ctid) {
        use std::os::unix::fs::PermissionsExt;
        let data = std::fs::read(&p).map_err(|e| Error::io(Kind::System, "cannot read", &p, e))?;
        let mode = std::fs::metadata(&p)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o755);
        let name = p.file_name().expect("file").to_string_lossy().into_owned();
        conf_names.push(name.clone());
        scripts.push((name, mode, data));
    }
    let job = Job {
        version: helper::VERSION.into(),
        ctid,
        target: target.to_string(),
        ssh: opts.ssh.clone(),
        rsync: opts.rsync.clone(),
        keep_dst: opts.keep_dst,
        remove_area: opts.remove_area,
        remote_helper: opts.remote_helper.clone(),
        vzctl: opts.vzctl.clone(),
        etc: etc.root.clone(),
        src_conf,
        src_private: fs.private.clone(),
        src_root: fs.root.clone(),
        src_uuid,
        src_dumpdir: dumpdir,
        dst_private: facts.private.clone(),
        dst_dumpdir: facts.dumpdir.clone(),
        dump_device: dump_spec,
        dump_uuid,
        conf_names,
        exclude_lost_found: sc.src_insulated() || sc.dst_insulated(),
        progress: opts.progress,
        resume_kept,
        src_host,
        plan,
    };
    Ok(Prepared {
        job,
        install: InstallConfig { conf, scripts },
        remote,
    })
}

/// An online migration needs checkpointing on the source and restoring on
/// the target, the move of a suspended container restoring on the target;
/// both are checked before anything changes.
fn check_checkpoint_support(
    opts: &Options,
    target: &str,
    plan: &plan::Plan,
    dst: &helper::CptFacts,
) -> Result<()> {
    if !plan.online && !plan.suspended {
        return Ok(());
    }
    let why = if plan.online {
        "--online"
    } else {
        "a suspended container (its dump is restored there)"
    };
    if plan.online && !helper::cpt_facts(&opts.cpt_dir).cpt {
        return Err(Error::check(
            Kind::StopSource,
            format!("source: {}", opts.cpt_dir.join("cpt").display()),
            format!("does not exist: this kernel cannot checkpoint containers, which {why} needs (load the vzcpt module, or migrate without --online)"),
        ));
    }
    if !dst.rst {
        return Err(Error::check(
            Kind::TargetSoftware,
            format!("target {target}: {}", opts.cpt_dir.join("rst").display()),
            format!("does not exist: the target's kernel cannot restore containers, which {why} needs (load the vzrst module there{})", if plan.online { ", or migrate without --online" } else { ", or `vzctl restore` it here first" }),
        ));
    }
    Ok(())
}

/// ` (mounted at ...; used by pid ...)` for a device in use.
pub fn in_use_detail(d: &hostops::DevFacts) -> String {
    let mut parts = Vec::new();
    if !d.mounted_at.is_empty() {
        parts.push(format!(
            "mounted at {}",
            d.mounted_at
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(h) = &d.holders {
        parts.push(h.clone());
    }
    if parts.is_empty() {
        " (held open exclusively, by a mount in another mount namespace or a process)".into()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// A device name that stays the same across reboots and nodes.
pub fn stable_name(spec: &str) -> bool {
    spec.starts_with("UUID=") || spec.starts_with("LABEL=") || spec.starts_with("/dev/disk/by-")
}

/// A SAN handoff of `src` (type `fstype`): ext2/3/4 without multi-mount
/// protection is refused unless `--accept-no-mmp`; a type without MMP
/// (xfs, btrfs) is a warning.
fn shared_lun_safety(opts: &Options, src: &hostops::DevFacts, fstype: &str) -> Result<()> {
    let what = format!(
        "source device {} ({fstype}, UUID={})",
        src.node.display(),
        src.uuid.as_deref().unwrap_or("?")
    );
    match src.mmp {
        Some(true) => Ok(()),
        Some(false) if !opts.accept_no_mmp => Err(Error::check(
            Kind::DeviceCheck,
            what,
            "has no multi-mount protection (MMP): on a LUN both nodes see, nothing but MMP stops the other node from mounting it while this one has it, which corrupts it. Enable it on the unmounted filesystem (`vzctl umount CTID`, then `tune2fs -O mmp DEVICE`), or accept the risk with --accept-no-mmp",
        )),
        Some(false) => {
            say(&format!("warning: {what} has no multi-mount protection (MMP); handing it over anyway (--accept-no-mmp): nothing but this migration's checks stops the other node from mounting it at the same time (`tune2fs -O mmp` on the unmounted filesystem enables it)"));
            Ok(())
        }
        None => {
            say(&format!("warning: {what}: {fstype} has no multi-mount protection: nothing but this migration's checks stops the other node from mounting it while this one has it; never mount it by hand on both nodes"));
            Ok(())
        }
    }
}

/// The target runs vzfs-hook as its premount and postumount action scripts
/// (globally or for this container), in a version compatible with ours;
/// else exit 14 saying how to install it. Per-container scripts of the
/// source that are vzfs-hook travel with the container and count too.
fn check_target_hook(target: &str, ctid: u32, h: &helper::HookFacts, etc: &VzEtc) -> Result<()> {
    let mut missing = Vec::new();
    for (kind, found) in [("premount", &h.premount), ("postumount", &h.postumount)] {
        let travels = etc.scripts_dir().join(format!("{ctid}.{kind}"));
        let travels_hook = matches!(helper::hook_script(&travels), Ok(Some(_)));
        match found {
            Some(s) if !helper::hook_version_compatible(&s.version) => missing.push(format!(
                "{} is vzfs-hook {} ({}), not compatible with this vzfs-migrate {}",
                s.path.display(),
                s.version,
                s.binary.display(),
                helper::VERSION
            )),
            Some(_) => {}
            None if travels_hook => {}
            None => missing.push(format!("no vps.{kind} or {ctid}.{kind} that is vzfs-hook")),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut detail = missing.join("; ");
    if !h.other.is_empty() {
        detail.push_str(&format!(" (found: {})", h.other.join("; ")));
    }
    Err(Error::check(
        Kind::TargetSoftware,
        format!("target {target}: /etc/vz/conf"),
        format!(
            "{detail}: without it vzctl on the target would not mount the container's device at start nor release it at stop. Install vzfs-hook {} there: `install -m 755 vzfs-hook /usr/sbin/vzfs-hook && ln -s /usr/sbin/vzfs-hook /etc/vz/conf/vps.premount && ln -s /usr/sbin/vzfs-hook /etc/vz/conf/vps.postumount` (or dist/install.sh, or the vzfs package)",
            helper::VERSION
        ),
    ))
}

/// Is this step one that stops the container on the source (downtime start)?
fn stops_source(s: &Step) -> bool {
    matches!(s, Step::StopSrc | Step::SuspendSrc | Step::UmountSrc)
}
fn starts_target(s: &Step) -> bool {
    s.starts_target()
}

/// Run the undos owed by the journal state, in reverse. A failed undo is
/// reported and the undo goes on with the steps that do not need it
/// ([`Step::undo_needs`]); those that do are skipped and reported. Steps
/// that found nothing to do are named as owing no undo. `Err` (exit 23)
/// says exactly which undos are left and how to finish them.
fn undo_all(ctx: &mut Ctx, j: &mut Journal, fp: &Failpoints, sum: &mut Summary) -> Result<()> {
    let st = journal::read(j.path())?;
    let steps = ctx.job.plan.steps.clone();
    let begun: Vec<Step> = st
        .begun
        .iter()
        .filter_map(|i| steps.get(*i).cloned())
        .collect();
    signals::set_critical(true);
    let mut order: Vec<usize> = st.begun.clone();
    order.sort_unstable();
    order.dedup();
    order.reverse();
    // (node whose undos are blocked, the step whose undo failed)
    let mut blocked: Vec<(Side, String)> = Vec::new();
    let mut left: Vec<String> = Vec::new();
    let keep = ctx.job.keep_dst;
    let handoff = ctx.job.plan.scenario == Scenario::D2;
    for i in order {
        let Some(step) = steps.get(i) else { continue };
        if step.post_commit() || st.undone.contains(&i) {
            continue;
        }
        let name = step.name();
        if st.noop.contains(&i) {
            say(&format!(
                "undo {name}: nothing to undo (the step found nothing to do)"
            ));
            continue;
        }
        let desc = step.undo_describe(keep);
        let side = step.undo_side();
        if let Some((_, cause)) = blocked
            .iter()
            .find(|(s, _)| step.undo_needs(handoff).contains(s))
            .cloned()
        {
            say(&format!(
                "undo {name} ({desc}): skipped: it needs the undo of {cause}, which failed"
            ));
            sum.undo.push(UndoReport {
                name: name.clone(),
                ok: false,
                error: Some(format!("skipped: needs the undo of {cause}")),
            });
            left.push(format!("{name} on the {} ({desc}; skipped)", side.name()));
            blocked.push((side, cause));
            continue;
        }
        let r = fp
            .hit(&format!("undo:{name}"))
            .and_then(|_| ops::undo(ctx, step, &begun));
        match r {
            Ok(()) => {
                j.append(&Record::Undone { i })?;
                say(&format!("undo {name} ({desc}): ok"));
                sum.undo.push(UndoReport {
                    name,
                    ok: true,
                    error: None,
                });
            }
            Err(e) => {
                say(&format!("undo {name} ({desc}): FAILED: {}", e.chain()));
                sum.undo.push(UndoReport {
                    name: name.clone(),
                    ok: false,
                    error: Some(e.chain()),
                });
                left.push(format!(
                    "{name} on the {} ({desc}; FAILED: {})",
                    side.name(),
                    e.chain()
                ));
                blocked.push((side, name));
            }
        }
    }
    if left.is_empty() {
        return Ok(());
    }
    let target_clean = !blocked.iter().any(|(s, _)| *s == Side::Target);
    Err(Error::Undo(format!(
        "the undo is incomplete; left undone: {}; {}; the journal {} is kept: fix the cause, then run `vzfs-migrate --recover {}`",
        left.join(", "),
        if target_clean {
            format!("the target {} holds nothing of this run{}", ctx.job.target, if keep { " but what --keep-dst keeps" } else { "" })
        } else {
            format!("the target {} still holds what those undos would remove", ctx.job.target)
        },
        j.path().display(),
        ctx.job.ctid
    )))
}

/// Execute the plan (journal created by the caller).
fn execute(ctx: &mut Ctx, j: &mut Journal, fp: &Failpoints, sum: &mut Summary) -> Result<()> {
    let steps = ctx.job.plan.steps.clone();
    let commit = ctx.job.plan.commit_index();
    let critical = ctx.job.plan.critical_index();
    let n = steps.len();
    let mut down_start: Option<Instant> = None;
    let mut freeze_start: Option<Instant> = None;
    let mut frozen_for: Option<(f64, Option<u64>)> = None;
    let mut committed = false;
    let mut failure: Option<Error> = None;
    for (i, step) in steps.iter().enumerate() {
        let name = step.name();
        if i == commit && !committed {
            j.append(&Record::Commit)?;
            committed = true;
        }
        // a signal that came before the critical section interrupts here,
        // before the section begins
        if i < commit {
            if let Some(sig) = signals::pending() {
                if !signals::critical() {
                    failure = Some(Error::Interrupted(signals::signal_name(sig)));
                    break;
                }
            }
        }
        if i >= commit {
            signals::set_critical(true);
        }
        if critical == Some(i) {
            signals::set_critical(true);
        }
        if let Err(e) = fp.hit(&format!("before:{name}")) {
            failure = Some(Error::Step {
                step: name,
                source: Box::new(e),
            });
            break;
        }
        say(&format!("step {}/{n} {name}: {}", i + 1, step.describe()));
        j.append(&Record::Begin { i })?;
        if stops_source(step) && down_start.is_none() {
            down_start = Some(Instant::now());
        }
        let t0 = Instant::now();
        if *step == Step::SuspendSrc {
            freeze_start = Some(t0);
        }
        let r = ops::run(ctx, step);
        let secs = t0.elapsed().as_secs_f64();
        if let (Step::ResumeDst, Ok(_), Some(f0)) = (step, &r, freeze_start) {
            let frozen = f0.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(ctx.job.src_dump_file())
                .ok()
                .map(|m| m.len())
                .or_else(|| ctx.dump_bytes);
            frozen_for = Some((frozen, bytes));
        }
        match r {
            Ok(noop) => {
                j.append(&Record::Done { i, noop })?;
                if noop {
                    transport::log(&format!("step {name}: nothing to do (no undo owed)"));
                }
                if i + 1 == commit && step.starts_target() {
                    // durable before anything else can fail: from here on
                    // the container lives on the target and is never undone
                    j.append(&Record::Commit)?;
                    committed = true;
                    signals::set_critical(true);
                }
                sum.steps.push(StepReport {
                    name: name.clone(),
                    status: if noop { "noop" } else { "done" }.into(),
                    seconds: secs,
                });
            }
            Err(e) => {
                sum.steps.push(StepReport {
                    name: name.clone(),
                    status: "failed".into(),
                    seconds: secs,
                });
                // the signal stopped the step's child: an interruption
                // (exit 24), not the child's own failure
                let e = match signals::pending() {
                    Some(sig) if !signals::critical() => {
                        Error::Interrupted(format!("{} ({})", signals::signal_name(sig), e.chain()))
                    }
                    _ => e,
                };
                failure = Some(Error::Step {
                    step: name,
                    source: Box::new(e),
                });
                break;
            }
        }
        if starts_target(step) {
            if let Some(d) = down_start {
                sum.downtime_seconds = Some(d.elapsed().as_secs_f64());
            }
        }
        if let Err(e) = fp.hit(&format!("after:{name}")) {
            failure = Some(Error::Step {
                step: name,
                source: Box::new(e),
            });
            break;
        }
    }
    if let Some((frozen, bytes)) = frozen_for {
        sum.freeze = Some(freeze_breakdown(sum, frozen, bytes));
    }
    let Some(err) = failure else {
        signals::set_critical(false);
        if let Some(sig) = signals::pending() {
            say(&format!(
                "{} received during the handoff; it was deferred and the migration completed",
                signals::signal_name(sig)
            ));
        }
        return Ok(());
    };
    let st = journal::read(j.path())?;
    if st.committed {
        return Err(Error::Undo(format!(
            "{}; the container now lives on the target {} (committed), only the source cleanup is left: run `vzfs-migrate --recover {}`",
            err.chain(),
            ctx.job.target,
            ctx.job.ctid
        )));
    }
    say(&format!("error: {}; undoing", err.chain()));
    match undo_all(ctx, j, fp, sum) {
        Ok(()) => Err(err),
        Err(u) => Err(Error::Undo(format!("{}; {}", err.chain(), u))),
    }
}

/// The whole run for options `opts`; returns the summary (exit code in it).
pub fn run(opts: &Options, etc: &VzEtc) -> Summary {
    let t0 = Instant::now();
    let mut sum = Summary::default();
    let res = match &opts.mode {
        Mode::Migrate { target, ctid } => {
            sum.ctid = *ctid;
            sum.target = target.clone();
            migrate(opts, etc, target, *ctid, &mut sum)
        }
        Mode::Recover { ctid } => {
            sum.ctid = *ctid;
            recover(opts, etc, *ctid, &mut sum)
        }
    };
    sum.total_seconds = t0.elapsed().as_secs_f64();
    match res {
        Ok(()) => sum.exit_code = 0,
        Err(e) => {
            sum.exit_code = e.exit_code();
            sum.error = Some(e.chain());
            if sum.result.is_empty() || sum.result == "running" {
                sum.result = match e.kind() {
                    Kind::UndoIncomplete => "undo-incomplete".into(),
                    _ if !sum.undo.is_empty() => "undone".into(),
                    _ => "failed".into(),
                };
            }
        }
    }
    sum
}

fn lockdir_of(etc: &VzEtc, ctid: u32) -> Result<PathBuf> {
    match hostops::ct_fs(etc, ctid) {
        Ok((_, fs)) => Ok(fs.lockdir),
        Err(_) => helper::global_lockdir(etc),
    }
}

fn migrate(opts: &Options, etc: &VzEtc, target: &str, ctid: u32, sum: &mut Summary) -> Result<()> {
    let lockdir = lockdir_of(etc, ctid)?;
    let jdir = journal_dir(opts, &lockdir);
    let jpath = journal::journal_path(&jdir, ctid);
    if jpath.exists() {
        return Err(Error::check(
            Kind::Locked,
            format!("journal {}", jpath.display()),
            format!("an unfinished migration of container {ctid} exists; run `vzfs-migrate --recover {ctid}` first"),
        ));
    }
    let lock = CtLock::acquire(&lockdir, ctid, "migrating")?;
    let res = migrate_locked(opts, etc, target, ctid, &jdir, sum);
    let rel = lock.release();
    res?;
    rel
}

fn migrate_locked(
    opts: &Options,
    etc: &VzEtc,
    target: &str,
    ctid: u32,
    jdir: &Path,
    sum: &mut Summary,
) -> Result<()> {
    let fp = Failpoints::from_env()?;
    // we hold the container's lock: a master connection of this container
    // whose owner is dead is a killed run's leftover
    for m in transport::reap_stale_masters(&ctid.to_string()) {
        say(&m);
    }
    let p = prepare(opts, etc, target, ctid)?;
    sum.scenario = Some(p.job.plan.scenario.name().into());
    sum.state = Some(p.job.plan.state.name().into());
    let text = p.job.plan.display(opts.keep_dst).to_string();
    sum.plan = Some(text.clone());
    if opts.check_only {
        if !opts.json {
            print!("{text}");
        }
        say(&format!(
            "check only: every check passed, nothing was changed (CT {ctid} -> {target})"
        ));
        sum.result = "checked".into();
        p.remote.close();
        return Ok(());
    }
    say(&format!(
        "migrating CT {ctid} to {target}: scenario {}, {}",
        p.job.plan.scenario.name(),
        p.job.plan.scenario.describe()
    ));
    let mut j = Journal::create(jdir, ctid, &p.job)?;
    let mut ctx = Ctx::new(p.job, Some(p.remote), Some(p.install));
    sum.result = "running".into();
    let r = execute(&mut ctx, &mut j, &fp, sum);
    match &r {
        Ok(()) => {
            j.remove()?;
            sum.result = "migrated".into();
            say(&format!("CT {ctid} migrated to {target}"));
        }
        Err(Error::Undo(_)) => {
            sum.result = "undo-incomplete".into();
        }
        Err(_) => {
            // every undo succeeded: the source is as it was
            j.remove()?;
            sum.result = "undone".into();
        }
    }
    if let Some(r) = ctx.take_remote() {
        r.close();
    }
    r
}

fn recover(opts: &Options, etc: &VzEtc, ctid: u32, sum: &mut Summary) -> Result<()> {
    let fp = Failpoints::from_env()?;
    let lockdir = lockdir_of(etc, ctid)?;
    let jdir = journal_dir(opts, &lockdir);
    let jpath = journal::journal_path(&jdir, ctid);
    if !jpath.exists() {
        // a run killed before its journal existed may still have left its
        // ssh master (a live owner's is never touched)
        for m in transport::reap_stale_masters(&ctid.to_string()) {
            say(&m);
        }
        return Err(Error::check(
            Kind::Usage,
            format!("journal {}", jpath.display()),
            format!("does not exist: there is no unfinished migration of CT {ctid} to recover"),
        ));
    }
    let lock = CtLock::acquire(&lockdir, ctid, "migrating")?;
    let res = (|| {
        for m in transport::reap_stale_masters(&ctid.to_string()) {
            say(&m);
        }
        let st = journal::read(&jpath)?;
        let job: Job = serde_json::from_value(st.header.clone()).map_err(|e| {
            Error::check(
                Kind::System,
                format!("journal {}", jpath.display()),
                format!("bad header: {e}"),
            )
        })?;
        sum.target = job.target.clone();
        sum.scenario = Some(job.plan.scenario.name().into());
        sum.state = Some(job.plan.state.name().into());
        let mut j = Journal::open(&jpath)?;
        let mut ctx = Ctx::new(job, None, None);
        if st.committed {
            say(&format!(
                "recover CT {ctid}: the migration was committed; finishing the source cleanup"
            ));
            let steps = ctx.job.plan.steps.clone();
            for (i, s) in steps.iter().enumerate() {
                if s.post_commit() && !st.done.contains(&i) {
                    j.append(&Record::Begin { i })?;
                    ops::run(&mut ctx, s).map_err(|e| Error::Step {
                        step: s.name(),
                        source: Box::new(e),
                    })?;
                    j.append(&Record::Done { i, noop: false })?;
                    say(&format!("step {}: done", s.name()));
                }
            }
            sum.result = "recovered".into();
        } else {
            say(&format!(
                "recover CT {ctid}: undoing the interrupted migration to {}",
                ctx.job.target
            ));
            undo_all(&mut ctx, &mut j, &fp, sum)?;
            sum.result = "undone".into();
        }
        if let Some(r) = ctx.take_remote() {
            r.close();
        }
        j.remove()
    })();
    let rel = lock.release();
    res?;
    rel
}

pub fn print_times(sum: &Summary) {
    eprintln!("times:");
    for s in &sum.steps {
        eprintln!("  {:<20} {:>9.3}s  {}", s.name, s.seconds, s.status);
    }
    if let Some(d) = sum.downtime_seconds {
        eprintln!("  {:<20} {:>9.3}s", "downtime", d);
    }
    if let Some(f) = &sum.freeze {
        eprintln!(
            "online freeze{}:",
            f.dump_bytes
                .map(|b| format!(" (dump {:.1} MiB)", b as f64 / (1u64 << 20) as f64))
                .unwrap_or_default()
        );
        eprintln!("  {:<20} {:>9.3}s", "suspend+dump", f.suspend_dump_seconds);
        eprintln!(
            "  {:<20} {:>9.3}s",
            format!("dump transfer ({})", f.dump_transfer),
            f.dump_transfer_seconds
        );
        eprintln!("  {:<20} {:>9.3}s", "second rsync", f.second_rsync_seconds);
        eprintln!(
            "  {:<20} {:>9.3}s",
            "undump+resume", f.undump_resume_seconds
        );
        eprintln!("  {:<20} {:>9.3}s", "other", f.other_seconds);
        eprintln!("  {:<20} {:>9.3}s", "frozen total", f.frozen_seconds);
    }
    eprintln!("  {:<20} {:>9.3}s", "total", sum.total_seconds);
}

#[allow(dead_code)]
fn _assert_send(_: &Summary) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_device_names() {
        assert!(stable_name("UUID=1234"));
        assert!(stable_name("LABEL=ct101"));
        assert!(stable_name("/dev/disk/by-id/wwn-0x5000"));
        assert!(!stable_name("/dev/sdh1"));
        assert!(!stable_name("/dev/mapper/vg-lv"));
    }

    #[test]
    fn freeze_parts_add_up() {
        let mut sum = Summary::default();
        for (n, s) in [
            ("suspend-src", 0.1),
            ("dump-src", 0.2),
            ("kill-src", 0.05),
            ("src-device-umount", 0.3),
            ("dumpdev-umount-src", 0.01),
            ("dumpdev-mount-dst", 0.02),
            ("undump-dst", 0.4),
            ("resume-dst", 0.01),
        ] {
            sum.steps.push(StepReport {
                name: n.into(),
                status: "done".into(),
                seconds: s,
            });
        }
        let f = freeze_breakdown(&sum, 1.5, Some(16 << 20));
        assert_eq!(f.dump_transfer, "device");
        assert!((f.suspend_dump_seconds - 0.35).abs() < 1e-9);
        assert!((f.dump_transfer_seconds - 0.03).abs() < 1e-9);
        assert_eq!(f.second_rsync_seconds.to_bits(), 0.0f64.to_bits());
        assert!((f.undump_resume_seconds - 0.41).abs() < 1e-9);
        let parts = f.suspend_dump_seconds
            + f.dump_transfer_seconds
            + f.second_rsync_seconds
            + f.undump_resume_seconds
            + f.other_seconds;
        assert!((parts - 1.5).abs() < 1e-9);
    }
}
