//! What each step does on the two nodes, and its undo. Every run and every
//! undo is written to be safe to repeat: `--recover` may run an undo whose
//! step was interrupted half-way, so undos check the state first ("ensure
//! running", "ensure unmounted and released").

use crate::error::{Error, Kind, Result};
use crate::helper::{self, InstallConfig, Remote};
use crate::hostops;
use crate::plan::{Plan, Scenario, Step};
use crate::transport::{self, Ssh};
use crate::vzctl;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vzfs::config::VzEtc;
use vzfs::hook::Outcome;

/// Everything a run or a later `--recover` needs (stored in the journal header).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub version: String,
    pub ctid: u32,
    pub target: String,
    pub ssh: Option<String>,
    pub rsync: Option<String>,
    pub keep_dst: bool,
    pub remove_area: bool,
    pub remote_helper: String,
    pub vzctl: String,
    pub etc: PathBuf,
    pub src_conf: PathBuf,
    pub src_private: PathBuf,
    pub src_root: Option<PathBuf>,
    pub src_uuid: Option<String>,
    pub src_dumpdir: PathBuf,
    pub dst_private: PathBuf,
    pub dst_dumpdir: PathBuf,
    pub dump_device: Option<String>,
    pub dump_uuid: Option<String>,
    /// Names installed in the target's scripts directory (config first).
    pub conf_names: Vec<String>,
    pub exclude_lost_found: bool,
    pub progress: bool,
    /// The target private area holds what an earlier `--keep-dst` run of
    /// this container from this source left (its marker was checked):
    /// `prepare-dst` accepts it non-empty and rsync updates it.
    #[serde(default)]
    pub resume_kept: bool,
    /// This node's name, recorded in the target's `--keep-dst` marker.
    #[serde(default)]
    pub src_host: String,
    pub plan: Plan,
}

impl Job {
    pub fn dump_mp(dumpdir: &Path, ctid: u32) -> PathBuf {
        dumpdir.join(format!("vzfs-dumpdev.{ctid}"))
    }
    pub fn src_dump_file(&self) -> PathBuf {
        if self.dump_device.is_some() {
            helper::dump_file(&Self::dump_mp(&self.src_dumpdir, self.ctid), self.ctid)
        } else {
            helper::dump_file(&self.src_dumpdir, self.ctid)
        }
    }
    /// What identifies the data of this migration in the target's
    /// `--keep-dst` marker: the container, the source node and its private
    /// area (the target adds the identity of its own area).
    pub fn keep_marker(&self) -> String {
        Self::identity(self.ctid, &self.src_host, &self.src_private)
    }
    pub fn identity(ctid: u32, src_host: &str, src_private: &Path) -> String {
        format!(
            "ctid={ctid}\nsource={src_host}\nsource_private={}\n",
            src_private.display()
        )
    }
    pub fn dst_dump_file(&self) -> PathBuf {
        if self.dump_device.is_some() {
            helper::dump_file(&Self::dump_mp(&self.dst_dumpdir, self.ctid), self.ctid)
        } else {
            helper::dump_file(&self.dst_dumpdir, self.ctid)
        }
    }
}

/// A running migration: the job, the source's config root, the target.
pub struct Ctx {
    pub job: Job,
    pub etc: VzEtc,
    /// Shared with the other migrations to the same target in a batch.
    remote: Option<Arc<Remote>>,
    /// The config and scripts to install on the target (not journaled).
    pub install: Option<InstallConfig>,
    /// Size of the dump file written on the source (before it moved).
    pub dump_bytes: Option<u64>,
}

impl Ctx {
    pub fn new(job: Job, remote: Option<Arc<Remote>>, install: Option<InstallConfig>) -> Ctx {
        Ctx {
            etc: VzEtc::new(&job.etc),
            job,
            remote,
            install,
            dump_bytes: None,
        }
    }

    /// The target connection, opened on first use (for `--recover`).
    pub fn remote(&mut self) -> Result<&Remote> {
        if self.remote.is_none() {
            let ssh = Ssh::connect_for(
                &self.job.target,
                self.job.ssh.as_deref(),
                &self.job.ctid.to_string(),
            )?;
            let r = Remote::open(
                ssh,
                self.job.remote_helper.clone(),
                self.job.vzctl.clone(),
                None,
            )?;
            self.remote = Some(Arc::new(r));
        }
        Ok(self.remote.as_ref().expect("just set"))
    }

    pub fn take_remote(&mut self) -> Option<Arc<Remote>> {
        self.remote.take()
    }

    fn local_vzctl(&self, cmd: &str, args: &[&str]) -> Result<transport::Output> {
        transport::run_local(
            "source",
            &vzctl::argv(&self.job.vzctl, true, cmd, self.job.ctid, args),
            false,
        )
    }

    pub fn src_status(&self) -> Result<vzctl::Status> {
        let o = self.local_vzctl("status", &[])?.check(Kind::System)?;
        vzctl::parse_status(&o.stdout, self.job.ctid)
    }

    fn dst_status(&mut self) -> Result<vzctl::Status> {
        let ctid = self.job.ctid;
        let o = self
            .remote()?
            .vzctl("status", ctid, &[])?
            .check(Kind::StartTarget)?;
        vzctl::parse_status(&o.stdout, ctid)
    }

    fn src_fs(&self) -> Result<vzfs::hook::CtFs> {
        Ok(hostops::ct_fs(&self.etc, self.job.ctid)?.1)
    }

    fn dump_fs_src(&self) -> Result<vzfs::hook::CtFs> {
        let spec = self
            .job
            .dump_device
            .as_deref()
            .expect("dump device step without a dump device");
        let lockdir = helper::global_lockdir(&self.etc)?;
        hostops::adhoc_fs(
            self.job.ctid,
            &lockdir,
            spec,
            &Job::dump_mp(&self.job.src_dumpdir, self.job.ctid),
        )
    }

    fn dst_dump_args(&self) -> (String, String) {
        (
            format!("UUID={}", self.job.dump_uuid.as_deref().unwrap_or("")),
            Job::dump_mp(&self.job.dst_dumpdir, self.job.ctid)
                .display()
                .to_string(),
        )
    }

    /// Make sure the target holds no mount of the filesystem `uuid` before
    /// the source mounts it again (undo of a handoff).
    fn check_target_released(&mut self, uuid: &str, what: &str) -> Result<()> {
        let v = self.remote()?.call(&["probe-uuid", uuid], None)?;
        if v.is_null() {
            return Ok(());
        }
        let d: hostops::DevFacts = serde_json::from_value(v)
            .map_err(|e| Error::check(Kind::System, "probe-uuid answer", e.to_string()))?;
        if !d.released || !d.mounted_at.is_empty() {
            return Err(Error::check(
                Kind::DeviceMount,
                format!("{what} UUID={uuid}"),
                format!(
                    "is still in use on the target {} ({}); refusing to mount it on the source as well: release it there, then run --recover",
                    self.job.target,
                    d.node.display()
                ),
            ));
        }
        Ok(())
    }

    fn rsync(&mut self, src: &Path, dst: &Path, dir: bool) -> Result<()> {
        let mut opts = self.job.rsync.clone().unwrap_or_default();
        if dir && self.job.exclude_lost_found {
            opts.push_str(" --exclude=/lost+found");
        }
        let progress = self.job.progress;
        let o = opts.trim().to_string();
        self.remote()?.ssh.rsync_to(
            src,
            dst,
            if o.is_empty() { None } else { Some(&o) },
            progress,
            dir,
        )?;
        Ok(())
    }
}

fn noop_if(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::AlreadyMounted { .. } | Outcome::NotMounted { .. } | Outcome::Shared
    )
}

/// Confirm a filesystem is released on the source (no mount in any namespace).
fn confirm_src_released(uuid: Option<&str>) -> Result<()> {
    let Some(u) = uuid else { return Ok(()) };
    let d = hostops::device_facts(&format!("UUID={u}"))?;
    if !d.released || !d.mounted_at.is_empty() {
        return Err(Error::check(
            Kind::DeviceMount,
            format!("source device {} (UUID={u})", d.node.display()),
            format!(
                "is still in use on the source after the unmount{}; it must not be mounted on the target now: release it (other mount namespaces, open handles) and run --recover",
                if d.mounted_at.is_empty() {
                    String::new()
                } else {
                    format!(" (mounted at {})", d.mounted_at.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
                }
            ),
        ));
    }
    Ok(())
}

/// Run a step. `Ok(true)`: it found nothing to do (no undo owed).
pub fn run(ctx: &mut Ctx, step: &Step) -> Result<bool> {
    let ctid = ctx.job.ctid;
    let id = ctid.to_string();
    match step {
        Step::SrcDeviceMount => {
            let fs = ctx.src_fs()?;
            Ok(noop_if(&hostops::ct_mount(&ctx.etc, &fs)?))
        }
        Step::CopyConfig => {
            let inst = ctx.install.clone().ok_or_else(|| {
                Error::check(
                    Kind::System,
                    "copy-config",
                    "no config to install (internal)",
                )
            })?;
            let data = serde_json::to_vec(&inst).expect("serializes");
            ctx.remote()?
                .call(&["install-config", &id], Some(&data))
                .map_err(|e| e.with_kind(Kind::ApplyConfig))?;
            Ok(false)
        }
        Step::PrepareDst => {
            let mut args = vec!["prepare-private", &id];
            let src = ctx.job.keep_marker();
            if ctx.job.resume_kept {
                args.push("--kept");
            }
            ctx.remote()?.call(&args, Some(src.as_bytes()))?;
            Ok(false)
        }
        Step::Sync { .. } => {
            let (s, d) = (ctx.job.src_private.clone(), ctx.job.dst_private.clone());
            ctx.rsync(&s, &d, true)?;
            Ok(false)
        }
        Step::StopSrc => {
            ctx.local_vzctl("stop", &[])?.check(Kind::StopSource)?;
            Ok(false)
        }
        Step::UmountSrc => {
            if !ctx.src_status()?.mounted {
                return Ok(true);
            }
            ctx.local_vzctl("umount", &[])?.check(Kind::StopSource)?;
            Ok(false)
        }
        Step::SuspendSrc => {
            ctx.local_vzctl("chkpnt", &["--suspend"])?
                .check(Kind::StopSource)?;
            Ok(false)
        }
        Step::DumpSrc => {
            let f = ctx.job.src_dump_file();
            if let Some(p) = f.parent() {
                std::fs::create_dir_all(p)
                    .map_err(|e| Error::io(Kind::StopSource, "cannot create", p, e))?;
            }
            let fs = f.display().to_string();
            ctx.local_vzctl("chkpnt", &["--dump", "--dumpfile", &fs])?
                .check(Kind::StopSource)?;
            ctx.dump_bytes = std::fs::metadata(&f).ok().map(|m| m.len());
            Ok(false)
        }
        Step::KillSrc => {
            ctx.local_vzctl("chkpnt", &["--kill"])?
                .check(Kind::StopSource)?;
            Ok(false)
        }
        Step::SrcDeviceUmount => {
            let fs = ctx.src_fs()?;
            let o = hostops::ct_umount(&ctx.etc, &fs)?;
            confirm_src_released(ctx.job.src_uuid.as_deref())?;
            Ok(noop_if(&o))
        }
        Step::DumpDevMountSrc => {
            let fs = ctx.dump_fs_src()?;
            Ok(noop_if(&hostops::ct_mount(&ctx.etc, &fs)?))
        }
        Step::DumpDevUmountSrc => {
            let fs = ctx.dump_fs_src()?;
            let o = hostops::ct_umount(&ctx.etc, &fs)?;
            confirm_src_released(ctx.job.dump_uuid.as_deref())?;
            Ok(noop_if(&o))
        }
        Step::DumpDevMountDst | Step::DumpDevUmountDst => {
            let (spec, mp) = ctx.dst_dump_args();
            let cmd = if *step == Step::DumpDevMountDst {
                "dev-mount"
            } else {
                "dev-umount"
            };
            ctx.remote()?.call(&[cmd, &id, &spec, &mp], None)?;
            Ok(false)
        }
        Step::CopyDump => {
            let (s, d) = (ctx.job.src_dump_file(), ctx.job.dst_dump_file());
            ctx.rsync(&s, &d, false)?;
            Ok(false)
        }
        Step::Quota => {
            let dump = helper::quota_dump("source", ctid)?;
            ctx.remote()?
                .call(&["quota-load", &id], Some(dump.as_bytes()))
                .map_err(|e| e.with_kind(Kind::Quota))?;
            Ok(false)
        }
        Step::DstDeviceMount => {
            ctx.remote()?.call(&["mount", &id], None)?;
            Ok(false)
        }
        Step::DstDeviceUmount => {
            ctx.remote()?.call(&["umount", &id], None)?;
            Ok(false)
        }
        Step::UndumpDst => {
            let f = ctx.job.dst_dump_file().display().to_string();
            ctx.remote()?
                .vzctl("restore", ctid, &["--undump", "--dumpfile", &f])?
                .check(Kind::StartTarget)?;
            Ok(false)
        }
        Step::ResumeDst => {
            ctx.remote()?
                .vzctl("restore", ctid, &["--resume"])?
                .check(Kind::StartTarget)?;
            Ok(false)
        }
        Step::StartDst => {
            ctx.remote()?
                .vzctl("start", ctid, &[])?
                .check(Kind::StartTarget)?;
            Ok(false)
        }
        Step::MountDst => {
            ctx.remote()?
                .vzctl("mount", ctid, &[])?
                .check(Kind::StartTarget)?;
            Ok(false)
        }
        Step::FinishSrc => finish_src(ctx).map(|_| false),
    }
}

fn finish_src(ctx: &mut Ctx) -> Result<()> {
    let j = ctx.job.clone();
    // the dump file (on the source's DUMPDIR)
    if (j.plan.online || j.plan.suspended) && j.dump_device.is_none() {
        let f = j.src_dump_file();
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(Kind::System, "cannot remove dump file", &f, e)),
        }
        if let Some(r) = ctx.remote.as_ref().filter(|_| j.plan.online) {
            // best effort: the target's copy of the dump was restored and is
            // no longer needed (a suspended container's dump is its state:
            // it stays)
            let _ = r.call(&["remove-dump", &j.ctid.to_string()], None);
        }
    }
    if j.plan.steps.contains(&Step::Quota) {
        // the quota lives on the target now; a quota file left here would
        // refuse the way back (quota-check)
        helper::quota_drop(j.ctid)?;
    }
    if j.resume_kept {
        if let Some(r) = ctx.remote.as_ref() {
            // best effort: the kept data is the container's area now
            let _ = r.call(&["keep-dst-clear", &j.ctid.to_string()], None);
        }
    }
    // a shared private area: removed with -r yes (data on a device: never)
    if !j.plan.scenario.src_insulated() && j.remove_area && j.src_private.exists() {
        if let Some(m) = hostops::mounted_on(&j.src_private)? {
            return Err(Error::check(
                Kind::System,
                format!("source private area {}", j.src_private.display()),
                format!("has {m} mounted on it; not removing it"),
            ));
        }
        let n = hostops::wipe_dir(&j.src_private)?;
        transport::log(&format!(
            "removed {n} entries of {}",
            j.src_private.display()
        ));
        hostops::rmdir_if_empty(&j.src_private)?;
    }
    if let Some(r) = &j.src_root {
        hostops::rmdir_if_empty(r)?;
    }
    // the source keeps no config: <CTID>.conf -> <CTID>.conf.migrated
    if j.src_conf.exists() {
        let to = PathBuf::from(format!("{}.migrated", j.src_conf.display()));
        std::fs::rename(&j.src_conf, &to)
            .map_err(|e| Error::io(Kind::System, "cannot rename source config", &j.src_conf, e))?;
    }
    Ok(())
}

/// Undo a step that ran (or may have run part-way). `begun` are the steps
/// that began, for undos that depend on each other.
pub fn undo(ctx: &mut Ctx, step: &Step, begun: &[Step]) -> Result<()> {
    let ctid = ctx.job.ctid;
    let id = ctid.to_string();
    let handoff = ctx.job.plan.scenario == Scenario::D2;
    match step {
        Step::SrcDeviceMount => {
            let fs = ctx.src_fs()?;
            hostops::ct_umount(&ctx.etc, &fs)?;
        }
        Step::CopyConfig => {
            let mut args: Vec<&str> = vec!["remove-config", &id];
            let names = ctx.job.conf_names.clone();
            args.extend(names.iter().map(String::as_str));
            ctx.remote()?.call(&args, None)?;
        }
        Step::PrepareDst => {
            ctx.remote()?.call(&["unprepare-private", &id], None)?;
        }
        Step::Sync { pass: 1 } => {
            if ctx.job.keep_dst {
                // the marker that lets a retry rsync over the kept data
                let m = ctx.job.keep_marker();
                ctx.remote()?
                    .call(&["keep-dst-mark", &id], Some(m.as_bytes()))?;
            } else {
                ctx.remote()?.call(&["wipe-private", &id], None)?;
            }
        }
        Step::Sync { .. } => {}
        Step::StopSrc => {
            if !ctx.src_status()?.running {
                ctx.local_vzctl("start", &[])?.check(Kind::StopSource)?;
            }
        }
        Step::UmountSrc => {
            let st = ctx.src_status()?;
            if !st.mounted && !st.running {
                ctx.local_vzctl("mount", &[])?.check(Kind::StopSource)?;
            }
        }
        Step::SuspendSrc => {
            if !begun.contains(&Step::KillSrc) {
                ctx.local_vzctl("chkpnt", &["--resume"])?
                    .check(Kind::StopSource)?;
            }
        }
        Step::DumpSrc => {
            let f = ctx.job.src_dump_file();
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(Kind::System, "cannot remove dump file", &f, e)),
            }
        }
        Step::KillSrc => {
            if ctx.src_status()?.running {
                // not killed: still suspended
                ctx.local_vzctl("chkpnt", &["--resume"])?
                    .check(Kind::StopSource)?;
            } else {
                let f = ctx.job.src_dump_file().display().to_string();
                ctx.local_vzctl("restore", &["--undump", "--dumpfile", &f])?
                    .check(Kind::StopSource)?;
                ctx.local_vzctl("restore", &["--resume"])?
                    .check(Kind::StopSource)?;
            }
        }
        Step::SrcDeviceUmount => {
            if handoff {
                if let Some(u) = ctx.job.src_uuid.clone() {
                    ctx.check_target_released(&u, "device")?;
                }
            }
            let fs = ctx.src_fs()?;
            hostops::ct_mount(&ctx.etc, &fs)?;
        }
        Step::DumpDevMountSrc => {
            let fs = ctx.dump_fs_src()?;
            hostops::ct_umount(&ctx.etc, &fs)?;
        }
        Step::DumpDevUmountSrc => {
            if let Some(u) = ctx.job.dump_uuid.clone() {
                ctx.check_target_released(&u, "dump device")?;
            }
            let fs = ctx.dump_fs_src()?;
            hostops::ct_mount(&ctx.etc, &fs)?;
        }
        Step::DumpDevMountDst => {
            let (spec, mp) = ctx.dst_dump_args();
            ctx.remote()?.call(&["dev-umount", &id, &spec, &mp], None)?;
        }
        Step::CopyDump => {
            ctx.remote()?.call(&["remove-dump", &id], None)?;
        }
        Step::Quota => {
            ctx.remote()?
                .call(&["quota-drop", &id], None)
                .map_err(|e| e.with_kind(Kind::Quota))?;
        }
        Step::DstDeviceMount => {
            ctx.remote()?.call(&["umount", &id], None)?;
        }
        Step::DstDeviceUmount => {
            ctx.remote()?.call(&["mount", &id], None)?;
        }
        Step::UndumpDst => {
            if ctx.dst_status()?.running {
                ctx.remote()?
                    .vzctl("restore", ctid, &["--kill"])?
                    .check(Kind::StartTarget)?;
            }
            if ctx.dst_status()?.mounted {
                ctx.remote()?
                    .vzctl("umount", ctid, &[])?
                    .check(Kind::StartTarget)?;
            }
        }
        Step::ResumeDst => {
            if ctx.dst_status()?.running {
                ctx.remote()?
                    .vzctl("chkpnt", ctid, &["--suspend"])?
                    .check(Kind::StartTarget)?;
            }
        }
        Step::StartDst => {
            let st = ctx.dst_status()?;
            if st.running {
                ctx.remote()?
                    .vzctl("stop", ctid, &[])?
                    .check(Kind::StartTarget)?;
            } else if st.mounted {
                ctx.remote()?
                    .vzctl("umount", ctid, &[])?
                    .check(Kind::StartTarget)?;
            }
        }
        Step::MountDst => {
            if ctx.dst_status()?.mounted {
                ctx.remote()?
                    .vzctl("umount", ctid, &[])?
                    .check(Kind::StartTarget)?;
            }
        }
        Step::FinishSrc | Step::DumpDevUmountDst => {}
    }
    Ok(())
}
