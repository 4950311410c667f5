//! Running a migration: checks and plan (nothing changes before the journal
//! exists), then the steps on the engine `vzfs-create` shares
//! ([`crate::runner`]): each step with its failpoints, journaled before it
//! runs; on failure the undos in reverse order (a failed undo blocks only
//! those that need its node), each outcome reported; `--recover` from the
//! journal after a crash. `Migration` tells the engine what the steps do
//! and measures the downtime and the online freeze. The summary feeds `-t`
//! and `--json`.

use crate::cli::{Mode, Options};
use crate::error::{Error, Kind, Result};
use crate::failpoint::Failpoints;
use crate::helper::{self, Facts, InstallConfig, Remote};
use crate::hostops::{self, PathState};
use crate::journal::{self, Journal};
use crate::lock::CtLock;
use crate::ops::{self, Ctx, Job};
use crate::plan::{self, CtState, PlanInput, Scenario, Side, Step};
use crate::runner;
use crate::transport::{self, Ssh};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use vzfs::config::{self, VzEtc};

pub use crate::runner::{print_times, Freeze, StepReport, Summary, UndoReport};

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

/// A migration that passed every check: its job (plan included), what to
/// install on the target, and the target's handle.
pub(crate) struct Prepared {
    pub(crate) job: Job,
    install: InstallConfig,
    remote: Arc<Remote>,
}

/// Close a target handle unless other migrations still share it.
pub(crate) fn close_remote(r: Arc<Remote>) {
    if let Ok(r) = Arc::try_unwrap(r) {
        r.close();
    }
}

/// All checks; builds the job and the plan. Changes nothing. `shared`:
/// the target's handle of a batch (else one is opened for this container).
pub(crate) fn prepare(
    opts: &Options,
    etc: &VzEtc,
    target: &str,
    ctid: u32,
    shared: Option<Arc<Remote>>,
) -> Result<Prepared> {
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
    let remote = match shared {
        Some(r) => r,
        None => {
            let ssh = Ssh::connect_for(target, opts.ssh.as_deref(), &id)?;
            Arc::new(Remote::open(
                ssh,
                opts.remote_helper.clone(),
                opts.vzctl.clone(),
                None,
            )?)
        }
    };
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
    // What enables MMP here, if anything can: found out on this node (its
    // kernel and e2fsprogs), never advised where it cannot run.
    let enable = || {
        let m = vzfs::platform::MmpSupport::of_this_node();
        if m.usable() {
            "Enable it on the unmounted filesystem (`vzctl umount CTID`, then `tune2fs -O mmp DEVICE`), or accept the risk with --accept-no-mmp".to_string()
        } else {
            format!(
                "MMP cannot be used here: {}. What protects the LUN instead: fencing (a cluster with STONITH that powers off a node before another mounts its LUNs, see ocf:vzfs:container) and never mounting it by hand on two nodes; then hand it over with --accept-no-mmp",
                m.why_not()
            )
        }
    };
    match src.mmp {
        Some(true) => Ok(()),
        Some(false) if !opts.accept_no_mmp => Err(Error::check(
            Kind::DeviceCheck,
            what,
            format!("has no multi-mount protection (MMP): on a LUN both nodes see, nothing but MMP stops the other node from mounting it while this one has it, which corrupts it. {}", enable()),
        )),
        Some(false) => {
            say(&format!("warning: {what} has no multi-mount protection (MMP); handing it over anyway (--accept-no-mmp): nothing but this migration's checks and fencing stop the other node from mounting it at the same time"));
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

fn side_index(s: Side) -> usize {
    match s {
        Side::Source => 0,
        Side::Target => 1,
    }
}

/// A migration as the shared engine ([`crate::runner`]) runs it: the steps
/// of the plan through [`ops`], undo dependencies between the two nodes,
/// the downtime and the online freeze measured around the steps.
struct Migration<'a> {
    ctx: &'a mut Ctx,
    down_start: Option<Instant>,
    freeze_start: Option<Instant>,
    frozen_for: Option<(f64, Option<u64>)>,
}

impl<'a> Migration<'a> {
    fn new(ctx: &'a mut Ctx) -> Self {
        Migration {
            ctx,
            down_start: None,
            freeze_start: None,
            frozen_for: None,
        }
    }
}

impl runner::Plan for Migration<'_> {
    type Step = Step;

    fn steps(&self) -> Vec<Step> {
        self.ctx.job.plan.steps.clone()
    }
    fn commit_index(&self) -> usize {
        self.ctx.job.plan.commit_index()
    }
    fn critical_index(&self) -> Option<usize> {
        self.ctx.job.plan.critical_index()
    }
    fn commits_when_done(&self, s: &Step) -> bool {
        // the container lives on the target from this step on
        s.starts_target()
    }
    fn name(&self, s: &Step) -> String {
        s.name()
    }
    fn describe(&self, s: &Step) -> String {
        s.describe().to_string()
    }
    fn undo_describe(&self, s: &Step) -> String {
        s.undo_describe(self.ctx.job.keep_dst).to_string()
    }
    fn run(&mut self, s: &Step) -> Result<bool> {
        ops::run(self.ctx, s)
    }
    fn undo(&mut self, s: &Step, begun: &[Step]) -> Result<()> {
        ops::undo(self.ctx, s, begun)
    }
    fn recover_hint(&self) -> String {
        format!("vzfs-migrate --recover {}", self.ctx.job.ctid)
    }
    fn owes_undo(&self, s: &Step) -> bool {
        !s.post_commit()
    }
    fn finishes_forward(&self, _i: usize, s: &Step) -> bool {
        s.post_commit()
    }
    fn undo_side(&self, s: &Step) -> usize {
        side_index(s.undo_side())
    }
    fn side_name(&self, side: usize) -> Option<&'static str> {
        Some(
            if side == 0 {
                Side::Source
            } else {
                Side::Target
            }
            .name(),
        )
    }
    fn undo_needs(&self, s: &Step) -> Vec<usize> {
        let handoff = self.ctx.job.plan.scenario == Scenario::D2;
        s.undo_needs(handoff)
            .iter()
            .map(|x| side_index(*x))
            .collect()
    }
    fn before_step(&mut self, _i: usize, s: &Step) {
        if stops_source(s) && self.down_start.is_none() {
            self.down_start = Some(Instant::now());
        }
        if *s == Step::SuspendSrc {
            self.freeze_start = Some(Instant::now());
        }
    }
    fn after_step(&mut self, _i: usize, s: &Step, ok: bool, sum: &mut Summary) {
        if !ok {
            return;
        }
        if let (Step::ResumeDst, Some(f0)) = (s, self.freeze_start) {
            let frozen = f0.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(self.ctx.job.src_dump_file())
                .ok()
                .map(|m| m.len())
                .or(self.ctx.dump_bytes);
            self.frozen_for = Some((frozen, bytes));
        }
        if s.starts_target() {
            if let Some(d) = self.down_start {
                sum.downtime_seconds = Some(d.elapsed().as_secs_f64());
            }
        }
    }
    fn finish(&mut self, sum: &mut Summary) {
        if let Some((frozen, bytes)) = self.frozen_for {
            sum.freeze = Some(freeze_breakdown(sum, frozen, bytes));
        }
    }
    fn committed_error(&self, err: &Error, _journal: &Path) -> Error {
        Error::Undo(format!(
            "{}; the container now lives on the target {} (committed), only the source cleanup is left: run `vzfs-migrate --recover {}`",
            err.chain(),
            self.ctx.job.target,
            self.ctx.job.ctid
        ))
    }
    fn undo_left_note(&self, blocked: &[usize]) -> Option<String> {
        let keep = self.ctx.job.keep_dst;
        Some(if !blocked.contains(&side_index(Side::Target)) {
            format!(
                "the target {} holds nothing of this run{}",
                self.ctx.job.target,
                if keep {
                    " but what --keep-dst keeps"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "the target {} still holds what those undos would remove",
                self.ctx.job.target
            )
        })
    }
    fn deferred_note(&self, sig: &str) -> String {
        format!("{sig} received during the handoff; it was deferred and the migration completed")
    }
}

/// Execute the plan (journal created by the caller).
fn execute(ctx: &mut Ctx, j: &mut Journal, fp: &Failpoints, sum: &mut Summary) -> Result<()> {
    runner::execute(&mut Migration::new(ctx), j, fp, sum)
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
        Mode::Batch { .. } | Mode::RecoverAll => Err(Error::Usage(
            "several containers are migrated by batch::run".into(),
        )),
    };
    sum.finish(res, t0);
    sum
}

pub(crate) fn lockdir_of(etc: &VzEtc, ctid: u32) -> Result<PathBuf> {
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
    let fp = Failpoints::from_env()?.for_ct(ctid);
    // we hold the container's lock: a master connection of this container
    // whose owner is dead is a killed run's leftover
    for m in transport::reap_stale_masters(&ctid.to_string()) {
        say(&m);
    }
    let p = prepare(opts, etc, target, ctid, None)?;
    run_prepared(opts, p, jdir, &fp, sum)
}

/// Record what `p` will do in the summary (scenario, state, plan text).
pub(crate) fn describe_prepared(opts: &Options, p: &Prepared, sum: &mut Summary) {
    sum.scenario = Some(p.job.plan.scenario.name().into());
    sum.state = Some(p.job.plan.state.name().into());
    sum.plan = Some(p.job.plan.display(opts.keep_dst).to_string());
}

/// Run a prepared migration (the caller holds the container's lock; the
/// journal goes into `jdir`): `--check-only` prints the plan; else the
/// journal is created and the plan executed, undone on failure.
pub(crate) fn run_prepared(
    opts: &Options,
    p: Prepared,
    jdir: &Path,
    fp: &Failpoints,
    sum: &mut Summary,
) -> Result<()> {
    let (ctid, target) = (p.job.ctid, p.job.target.clone());
    describe_prepared(opts, &p, sum);
    if opts.check_only {
        if !opts.json {
            print!("{}", sum.plan.as_deref().unwrap_or_default());
        }
        say(&format!(
            "check only: every check passed, nothing was changed (CT {ctid} -> {target})"
        ));
        sum.result = "checked".into();
        close_remote(p.remote);
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
    transport::set_child_tag(Some(ctid));
    let r = execute(&mut ctx, &mut j, fp, sum);
    transport::set_child_tag(None);
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
        close_remote(r);
    }
    r
}

fn recover(opts: &Options, etc: &VzEtc, ctid: u32, sum: &mut Summary) -> Result<()> {
    let fp = Failpoints::from_env()?.for_ct(ctid);
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
        transport::wait_orphaned_child(ctid, std::time::Duration::from_secs(600))?;
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
        let committed = st.committed;
        let j = Journal::open(&jpath)?;
        let mut ctx = Ctx::new(job, None, None);
        if committed {
            say(&format!(
                "recover CT {ctid}: the migration was committed; finishing the source cleanup"
            ));
        } else {
            say(&format!(
                "recover CT {ctid}: undoing the interrupted migration to {}",
                ctx.job.target
            ));
        }
        let r = runner::recover(&mut Migration::new(&mut ctx), j, &fp, sum);
        if let Some(r) = ctx.take_remote() {
            close_remote(r);
        }
        r
    })();
    let rel = lock.release();
    res?;
    rel
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
