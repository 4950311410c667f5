//! The migration plan: which scenario applies, and the ordered steps, each
//! with its undo, built from the source state, the container's kind, the
//! options and the target's facts. Pure: building a plan changes nothing.
//!
//! Scenarios (see the seed): `a` shared->shared, `b` shared->insulated,
//! `c` insulated->shared, `d1` insulated->insulated by copy, `d2`
//! insulated->insulated by SAN handoff (same filesystem on both nodes).

use crate::error::{Error, Kind, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    A,
    B,
    C,
    D1,
    D2,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::A => "a",
            Scenario::B => "b",
            Scenario::C => "c",
            Scenario::D1 => "d1",
            Scenario::D2 => "d2",
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::A => "shared -> shared (copy)",
            Scenario::B => "shared -> insulated (copy into the target device)",
            Scenario::C => "insulated -> shared (copy into a plain directory)",
            Scenario::D1 => "insulated -> insulated, another device (copy)",
            Scenario::D2 => "insulated -> insulated, same SAN device (handoff, no copy)",
        }
    }
    pub fn src_insulated(self) -> bool {
        matches!(self, Scenario::C | Scenario::D1 | Scenario::D2)
    }
    pub fn dst_insulated(self) -> bool {
        matches!(self, Scenario::B | Scenario::D1 | Scenario::D2)
    }
    pub fn copies(self) -> bool {
        self != Scenario::D2
    }
}

/// The container's state on the source, from `vzctl status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CtState {
    Running,
    /// stopped, mounted
    Mounted,
    /// stopped, not mounted
    Stopped,
}

impl CtState {
    pub fn name(self) -> &'static str {
        match self {
            CtState::Running => "running",
            CtState::Mounted => "mounted",
            CtState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Mount the source's VE_DEVICE on its VE_PRIVATE (container not mounted).
    SrcDeviceMount,
    /// Copy the config and the per-container action scripts to the target,
    /// edited for the scenario (VE_DEVICE set, rewritten or dropped).
    CopyConfig,
    /// Create the target's VE_PRIVATE/VE_ROOT; mount the target device (b, d1).
    PrepareDst,
    /// rsync the private area (pass 1 while running, pass 2 after stop).
    Sync { pass: u8 },
    /// `vzctl stop` on the source.
    StopSrc,
    /// `vzctl umount` on the source (a no-op when already unmounted).
    UmountSrc,
    /// `vzctl chkpnt --suspend` on the source.
    SuspendSrc,
    /// `vzctl chkpnt --dump --dumpfile F` on the source.
    DumpSrc,
    /// `vzctl chkpnt --kill` on the source.
    KillSrc,
    /// Unmount the source device and confirm the filesystem is released.
    SrcDeviceUmount,
    /// Mount the shared dump device on the source.
    DumpDevMountSrc,
    /// Unmount the shared dump device on the source.
    DumpDevUmountSrc,
    /// Mount the shared dump device on the target.
    DumpDevMountDst,
    /// Unmount the shared dump device on the target (after commit).
    DumpDevUmountDst,
    /// Copy the dump file to the target.
    CopyDump,
    /// Migrate the container's vzquota disk quota, as stock vzmigrate does
    /// when `DISK_QUOTA` is not `no`: `vzdqdump CTID -U -G -T -F` on the
    /// source (after the container stopped, when its quota file is final),
    /// then on the target `vzquota init` with the config's limits and
    /// `vzdqload CTID -U -G -T -F` with that dump. A failure is exit 13.
    ///
    /// Also for an insulated container (c, d1, and the d2 handoff): the
    /// vzquota file (first-level limits and usage, the users' and groups'
    /// quotas inside the container, grace and expiry times) lives on the
    /// host (`/var/vzquota/quota.CTID`), not on the container's device, so
    /// even a handoff that moves the whole filesystem would leave it behind,
    /// and the admin would find the container's quotas reset on the target
    /// (vzctl start re-initialises a missing quota file from the config's
    /// limits only). An admin who does not want vzquota on a container that
    /// already has a filesystem of its own says so as vzctl expects it:
    /// `DISK_QUOTA=no` (in the container's config or in vz.conf), and then
    /// no quota is touched, as with stock vzmigrate.
    Quota,
    /// Mount the (same) device on the target's VE_PRIVATE (d2).
    DstDeviceMount,
    /// Unmount the target device after the copy (target ends stopped).
    DstDeviceUmount,
    /// `vzctl restore --undump --dumpfile F` on the target.
    UndumpDst,
    /// `vzctl restore --resume` on the target.
    ResumeDst,
    /// `vzctl start` on the target.
    StartDst,
    /// `vzctl mount` on the target.
    MountDst,
    /// After commit: rename the source config to `.migrated`, remove a
    /// shared private area (`-r yes`), remove the dump file. Never touches
    /// the data on a device.
    FinishSrc,
}

impl Step {
    /// The step's name: what `--check-only` prints and failpoints use.
    pub fn name(&self) -> String {
        match self {
            Step::SrcDeviceMount => "src-device-mount".into(),
            Step::CopyConfig => "copy-config".into(),
            Step::PrepareDst => "prepare-dst".into(),
            Step::Sync { pass } => format!("sync-{pass}"),
            Step::StopSrc => "stop-src".into(),
            Step::UmountSrc => "umount-src".into(),
            Step::SuspendSrc => "suspend-src".into(),
            Step::DumpSrc => "dump-src".into(),
            Step::KillSrc => "kill-src".into(),
            Step::SrcDeviceUmount => "src-device-umount".into(),
            Step::DumpDevMountSrc => "dumpdev-mount-src".into(),
            Step::DumpDevUmountSrc => "dumpdev-umount-src".into(),
            Step::DumpDevMountDst => "dumpdev-mount-dst".into(),
            Step::DumpDevUmountDst => "dumpdev-umount-dst".into(),
            Step::CopyDump => "copy-dump".into(),
            Step::Quota => "quota".into(),
            Step::DstDeviceMount => "dst-device-mount".into(),
            Step::DstDeviceUmount => "dst-device-umount".into(),
            Step::UndumpDst => "undump-dst".into(),
            Step::ResumeDst => "resume-dst".into(),
            Step::StartDst => "start-dst".into(),
            Step::MountDst => "mount-dst".into(),
            Step::FinishSrc => "finish-src".into(),
        }
    }

    /// Steps after the commit point are never undone; `--recover` finishes them.
    pub fn post_commit(&self) -> bool {
        matches!(self, Step::FinishSrc | Step::DumpDevUmountDst)
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Step::SrcDeviceMount => "mount the source device on the source VE_PRIVATE",
            Step::CopyConfig => "copy config and per-CT action scripts to the target",
            Step::PrepareDst => "create the target VE_PRIVATE (and mount the target device on it)",
            Step::Sync { .. } => "rsync the private area to the target",
            Step::StopSrc => "vzctl stop on the source",
            Step::UmountSrc => "vzctl umount on the source (if mounted)",
            Step::SuspendSrc => "vzctl chkpnt --suspend on the source",
            Step::DumpSrc => "vzctl chkpnt --dump on the source",
            Step::KillSrc => "vzctl chkpnt --kill on the source",
            Step::SrcDeviceUmount => {
                "unmount the source device and confirm the filesystem is released"
            }
            Step::DumpDevMountSrc => "mount the dump device on the source",
            Step::DumpDevUmountSrc => "unmount the dump device on the source",
            Step::DumpDevMountDst => "mount the dump device on the target",
            Step::DumpDevUmountDst => "unmount the dump device on the target",
            Step::CopyDump => "copy the dump file to the target",
            Step::Quota => {
                "dump the disk quota on the source (vzdqdump), load it on the target (vzdqload)"
            }
            Step::DstDeviceMount => "mount the device on the target VE_PRIVATE",
            Step::DstDeviceUmount => "unmount the target device (target ends stopped)",
            Step::UndumpDst => "vzctl restore --undump on the target",
            Step::ResumeDst => "vzctl restore --resume on the target",
            Step::StartDst => "vzctl start on the target",
            Step::MountDst => "vzctl mount on the target",
            Step::FinishSrc => {
                "rename the source config to .migrated (and remove a shared private area with -r yes)"
            }
        }
    }

    pub fn undo_describe(&self, keep_dst: bool) -> &'static str {
        match self {
            Step::SrcDeviceMount => "unmount the source device again",
            Step::CopyConfig => "remove the config and scripts from the target",
            Step::PrepareDst => "unmount the target device / remove the target VE_PRIVATE",
            Step::Sync { pass: 1 } if keep_dst => "keep the copied data (--keep-dst)",
            Step::Sync { pass: 1 } => "remove the copied data on the target",
            Step::Sync { .. } => "(covered by sync-1)",
            Step::StopSrc => "vzctl start on the source",
            Step::UmountSrc => "vzctl mount on the source",
            Step::SuspendSrc => "vzctl chkpnt --resume on the source",
            Step::DumpSrc => "remove the dump file",
            Step::KillSrc => "vzctl restore --undump and --resume on the source",
            Step::SrcDeviceUmount => {
                "check the target does not hold the filesystem, mount it on the source again"
            }
            Step::DumpDevMountSrc => "unmount the dump device on the source",
            Step::DumpDevUmountSrc => "mount the dump device on the source again",
            Step::DumpDevMountDst => "unmount the dump device on the target",
            Step::DumpDevUmountDst => "(after commit)",
            Step::CopyDump => "remove the dump file on the target",
            Step::Quota => "drop the quota on the target (vzquota drop)",
            Step::DstDeviceMount => "unmount the device on the target, confirm released",
            Step::DstDeviceUmount => "mount the target device again",
            Step::UndumpDst => "vzctl restore --kill on the target",
            Step::ResumeDst => "vzctl chkpnt --suspend on the target",
            Step::StartDst => "vzctl stop on the target",
            Step::MountDst => "vzctl umount on the target",
            Step::FinishSrc => "(after commit)",
        }
    }

    /// The node whose state this step's undo restores.
    pub fn undo_side(&self) -> Side {
        match self {
            Step::SrcDeviceMount
            | Step::StopSrc
            | Step::UmountSrc
            | Step::SuspendSrc
            | Step::DumpSrc
            | Step::KillSrc
            | Step::SrcDeviceUmount
            | Step::DumpDevMountSrc
            | Step::DumpDevUmountSrc
            | Step::FinishSrc => Side::Source,
            Step::CopyConfig
            | Step::PrepareDst
            | Step::Sync { .. }
            | Step::DumpDevMountDst
            | Step::DumpDevUmountDst
            | Step::CopyDump
            | Step::Quota
            | Step::DstDeviceMount
            | Step::DstDeviceUmount
            | Step::UndumpDst
            | Step::ResumeDst
            | Step::StartDst
            | Step::MountDst => Side::Target,
        }
    }

    /// What this step's undo needs: the undos of the later steps on these
    /// nodes must have succeeded (undos run in reverse order). Every undo
    /// needs its own node's later undos (the container's state there is a
    /// chain: started after mounted after ...); mounting a handed-over
    /// filesystem on the source again also needs the target to have
    /// released it. A failed undo therefore skips only the undos that need
    /// it; the others (say, cleaning the target after the source could not
    /// be remounted) still run.
    ///
    /// In a handoff (`handoff`, d2) every source undo needs the target too:
    /// starting or mounting the container on the source again mounts the
    /// shared device there, which only the target's release makes safe.
    pub fn undo_needs(&self, handoff: bool) -> &'static [Side] {
        match self {
            Step::SrcDeviceUmount | Step::DumpDevUmountSrc => &[Side::Source, Side::Target],
            s if s.undo_side() == Side::Source && handoff => &[Side::Source, Side::Target],
            s if s.undo_side() == Side::Source => &[Side::Source],
            _ => &[Side::Target],
        }
    }

    /// The container starts living on the target with this step.
    pub fn starts_target(&self) -> bool {
        matches!(self, Step::StartDst | Step::ResumeDst | Step::MountDst)
    }

    /// Signals are deferred from this step on (d2: the device is between
    /// nodes until the target has it).
    pub fn starts_critical(&self) -> bool {
        matches!(self, Step::SrcDeviceUmount)
    }
}

/// A node of the migration, for undo dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// What the plan is built from.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub state: CtState,
    /// Source filesystem UUID when the container is insulated.
    pub src_uuid: Option<String>,
    pub src_insulated: bool,
    /// `--dst-device` given.
    pub dst_device_given: bool,
    /// UUID of the target device (from `--dst-device`, or found on the
    /// target by the source UUID).
    pub dst_uuid: Option<String>,
    pub dst_shared: bool,
    pub online: bool,
    pub dump_device: bool,
    /// Migrate the vzquota disk quota (`DISK_QUOTA` is not `no`).
    pub quota: bool,
    /// The container is stopped with a dump (`vzctl status` says
    /// `suspended`): the dump file moves with it.
    pub suspended: bool,
}

/// Pick the scenario; errors are usage errors naming the conflict.
pub fn choose_scenario(inp: &PlanInput) -> Result<Scenario> {
    if inp.dst_shared && inp.dst_device_given {
        return Err(Error::Usage(
            "--dst-shared and --dst-device exclude each other".into(),
        ));
    }
    let sc = if !inp.src_insulated {
        if inp.dst_device_given {
            Scenario::B
        } else {
            Scenario::A
        }
    } else if inp.dst_shared {
        Scenario::C
    } else if inp.dst_device_given {
        match (&inp.src_uuid, &inp.dst_uuid) {
            (Some(s), Some(d)) if s == d => Scenario::D2,
            _ => Scenario::D1,
        }
    } else {
        Scenario::D2
    };
    if inp.dump_device && !(sc == Scenario::D2 && inp.online) {
        return Err(Error::Usage(format!(
            "--dump-device is only meaningful with --online for a container on a shared (SAN) device (scenario d2); this is scenario {}",
            sc.name()
        )));
    }
    if inp.online && inp.state != CtState::Running {
        return Err(Error::check(
            Kind::CtStopped,
            "--online",
            format!(
                "the container is {}, not running; migrate it without --online",
                inp.state.name()
            ),
        ));
    }
    Ok(sc)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: Scenario,
    pub state: CtState,
    pub online: bool,
    /// Stopped with a dump that moves with it (see [`PlanInput::suspended`]).
    #[serde(default)]
    pub suspended: bool,
    pub steps: Vec<Step>,
}

/// Build the ordered steps for `inp`.
pub fn build(inp: &PlanInput) -> Result<Plan> {
    use Step::*;
    let sc = choose_scenario(inp)?;
    let mut s: Vec<Step> = Vec::new();
    let st = inp.state;
    if sc.copies() {
        let src_ins = sc.src_insulated();
        if src_ins && st == CtState::Stopped {
            s.push(SrcDeviceMount);
        }
        s.push(CopyConfig);
        s.push(PrepareDst);
        s.push(Sync { pass: 1 });
        match st {
            CtState::Running if inp.online => {
                s.extend([SuspendSrc, DumpSrc, KillSrc, UmountSrc]);
                if src_ins {
                    s.push(SrcDeviceMount);
                }
                s.push(Sync { pass: 2 });
                s.push(CopyDump);
                if src_ins {
                    s.push(SrcDeviceUmount);
                }
                s.extend([UndumpDst, ResumeDst]);
            }
            CtState::Running => {
                s.push(StopSrc);
                if src_ins {
                    s.push(SrcDeviceMount);
                }
                s.push(Sync { pass: 2 });
                if src_ins {
                    s.push(SrcDeviceUmount);
                }
                s.push(StartDst);
            }
            CtState::Mounted => {
                s.push(UmountSrc);
                s.push(MountDst);
            }
            CtState::Stopped => {
                if src_ins {
                    s.push(SrcDeviceUmount);
                }
                if sc.dst_insulated() {
                    s.push(DstDeviceUmount);
                }
            }
        }
    } else {
        // d2: handoff of the same filesystem
        s.push(CopyConfig);
        match st {
            CtState::Running if inp.online => {
                if inp.dump_device {
                    s.push(DumpDevMountSrc);
                }
                s.extend([SuspendSrc, DumpSrc, KillSrc, UmountSrc]);
                if inp.dump_device {
                    s.push(DumpDevUmountSrc);
                }
                s.push(SrcDeviceUmount);
                if inp.dump_device {
                    s.push(DumpDevMountDst);
                } else {
                    s.push(CopyDump);
                }
                s.extend([DstDeviceMount, UndumpDst, ResumeDst]);
            }
            CtState::Running => {
                s.extend([StopSrc, SrcDeviceUmount, DstDeviceMount, StartDst]);
            }
            CtState::Mounted => {
                s.extend([UmountSrc, SrcDeviceUmount, DstDeviceMount, MountDst]);
            }
            CtState::Stopped => {
                // the device is not mounted anywhere (checked before the
                // plan runs); the config moves, the target mounts it at its
                // next start
            }
        }
    }
    if inp.quota {
        // after the container stopped on the source (its quota file is
        // final then) and after the last copy; before the target starts it
        let after = s
            .iter()
            .rposition(|x| matches!(x, Sync { .. }))
            .or_else(|| {
                s.iter()
                    .rposition(|x| matches!(x, StopSrc | UmountSrc | KillSrc))
            })
            .or_else(|| s.iter().position(|x| *x == CopyConfig))
            .expect("every plan copies the config");
        s.insert(after + 1, Quota);
    }
    let suspended = inp.suspended && st == CtState::Stopped;
    if suspended {
        // the dump of a suspended container goes to the target's DUMPDIR,
        // where `vzctl restore` finds it
        s.push(CopyDump);
    }
    s.push(FinishSrc);
    if inp.dump_device {
        s.push(DumpDevUmountDst);
    }
    Ok(Plan {
        scenario: sc,
        state: st,
        online: inp.online,
        suspended,
        steps: s,
    })
}

impl Plan {
    /// Index of the first step after the commit point. The commit comes
    /// right after the container started (or was resumed or mounted) on the
    /// target: from then on it lives there, and undoing would lose what it
    /// did on the target. Without such a step, at the first post-commit step.
    pub fn commit_index(&self) -> usize {
        let first_post = self
            .steps
            .iter()
            .position(|s| s.post_commit())
            .unwrap_or(self.steps.len());
        match self.steps[..first_post]
            .iter()
            .rposition(|s| s.starts_target())
        {
            Some(i) => i + 1,
            None => first_post,
        }
    }

    /// Index of the step from which signals are deferred, if any.
    pub fn critical_index(&self) -> Option<usize> {
        if self.scenario == Scenario::D2 {
            self.steps.iter().position(|s| s.starts_critical())
        } else {
            None
        }
    }

    pub fn display(&self, keep_dst: bool) -> PlanDisplay<'_> {
        PlanDisplay {
            plan: self,
            keep_dst,
        }
    }
}

pub struct PlanDisplay<'a> {
    plan: &'a Plan,
    keep_dst: bool,
}

impl fmt::Display for PlanDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.plan;
        writeln!(
            f,
            "scenario {}: {}; container {}{}",
            p.scenario.name(),
            p.scenario.describe(),
            p.state.name(),
            if p.online {
                ", online"
            } else if p.suspended {
                ", suspended (its dump moves with it)"
            } else {
                ""
            }
        )?;
        let commit = p.commit_index();
        for (i, s) in p.steps.iter().enumerate() {
            if i == commit {
                writeln!(
                    f,
                    "  -- commit: the container lives on the target from here --"
                )?;
            }
            let undo = if s.post_commit() {
                String::new()
            } else {
                format!("  [undo: {}]", s.undo_describe(self.keep_dst))
            };
            writeln!(
                f,
                "  {:2}. {:<20} {}{}",
                i + 1,
                s.name(),
                s.describe(),
                undo
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inp(state: CtState) -> PlanInput {
        PlanInput {
            state,
            src_uuid: None,
            src_insulated: false,
            dst_device_given: false,
            dst_uuid: None,
            dst_shared: false,
            online: false,
            dump_device: false,
            quota: false,
            suspended: false,
        }
    }

    fn names(p: &Plan) -> Vec<String> {
        p.steps.iter().map(|s| s.name()).collect()
    }

    #[test]
    fn scenario_choice() {
        let mut i = inp(CtState::Running);
        assert_eq!(choose_scenario(&i).unwrap(), Scenario::A);
        i.dst_device_given = true;
        i.dst_uuid = Some("u2".into());
        assert_eq!(choose_scenario(&i).unwrap(), Scenario::B);
        let mut j = inp(CtState::Running);
        j.src_insulated = true;
        j.src_uuid = Some("u1".into());
        assert_eq!(choose_scenario(&j).unwrap(), Scenario::D2);
        j.dst_shared = true;
        assert_eq!(choose_scenario(&j).unwrap(), Scenario::C);
        j.dst_shared = false;
        j.dst_device_given = true;
        j.dst_uuid = Some("u2".into());
        assert_eq!(choose_scenario(&j).unwrap(), Scenario::D1);
        // --dst-device holding the same filesystem is d2, never a copy onto itself
        j.dst_uuid = Some("u1".into());
        assert_eq!(choose_scenario(&j).unwrap(), Scenario::D2);
        j.dst_shared = true;
        assert_eq!(choose_scenario(&j).unwrap_err().exit_code(), 1);
    }

    #[test]
    fn online_needs_running_and_dump_device_needs_d2() {
        let mut i = inp(CtState::Mounted);
        i.online = true;
        assert_eq!(choose_scenario(&i).unwrap_err().exit_code(), 2);
        let mut i = inp(CtState::Running);
        i.online = true;
        i.dump_device = true;
        assert_eq!(choose_scenario(&i).unwrap_err().exit_code(), 1);
        i.src_insulated = true;
        i.src_uuid = Some("u".into());
        assert_eq!(choose_scenario(&i).unwrap(), Scenario::D2);
    }

    #[test]
    fn shared_running_offline_is_stock_order() {
        let p = build(&inp(CtState::Running)).unwrap();
        assert_eq!(
            names(&p),
            [
                "copy-config",
                "prepare-dst",
                "sync-1",
                "stop-src",
                "sync-2",
                "start-dst",
                "finish-src"
            ]
        );
        assert_eq!(p.commit_index(), 6);
        assert_eq!(p.steps[5], Step::StartDst);
        assert_eq!(p.critical_index(), None);
    }

    #[test]
    fn insulated_stopped_copy_mounts_and_unmounts_source() {
        let mut i = inp(CtState::Stopped);
        i.src_insulated = true;
        i.src_uuid = Some("u1".into());
        i.dst_shared = true;
        let p = build(&i).unwrap();
        assert_eq!(p.scenario, Scenario::C);
        assert_eq!(
            names(&p),
            [
                "src-device-mount",
                "copy-config",
                "prepare-dst",
                "sync-1",
                "src-device-umount",
                "finish-src"
            ]
        );
        i.dst_shared = false;
        i.dst_device_given = true;
        i.dst_uuid = Some("u2".into());
        let p = build(&i).unwrap();
        assert_eq!(p.scenario, Scenario::D1);
        assert_eq!(
            names(&p),
            [
                "src-device-mount",
                "copy-config",
                "prepare-dst",
                "sync-1",
                "src-device-umount",
                "dst-device-umount",
                "finish-src"
            ]
        );
    }

    #[test]
    fn d1_running_remounts_source_after_stop() {
        let mut i = inp(CtState::Running);
        i.src_insulated = true;
        i.src_uuid = Some("u1".into());
        i.dst_device_given = true;
        i.dst_uuid = Some("u2".into());
        let p = build(&i).unwrap();
        assert_eq!(
            names(&p),
            [
                "copy-config",
                "prepare-dst",
                "sync-1",
                "stop-src",
                "src-device-mount",
                "sync-2",
                "src-device-umount",
                "start-dst",
                "finish-src"
            ]
        );
    }

    #[test]
    fn d2_plans() {
        let mut i = inp(CtState::Running);
        i.src_insulated = true;
        i.src_uuid = Some("u1".into());
        let p = build(&i).unwrap();
        assert_eq!(
            names(&p),
            [
                "copy-config",
                "stop-src",
                "src-device-umount",
                "dst-device-mount",
                "start-dst",
                "finish-src"
            ]
        );
        assert_eq!(p.critical_index(), Some(2));
        i.state = CtState::Mounted;
        assert_eq!(
            names(&build(&i).unwrap()),
            [
                "copy-config",
                "umount-src",
                "src-device-umount",
                "dst-device-mount",
                "mount-dst",
                "finish-src"
            ]
        );
        i.state = CtState::Stopped;
        assert_eq!(names(&build(&i).unwrap()), ["copy-config", "finish-src"]);
        i.state = CtState::Running;
        i.online = true;
        i.dump_device = true;
        let p = build(&i).unwrap();
        assert_eq!(
            names(&p),
            [
                "copy-config",
                "dumpdev-mount-src",
                "suspend-src",
                "dump-src",
                "kill-src",
                "umount-src",
                "dumpdev-umount-src",
                "src-device-umount",
                "dumpdev-mount-dst",
                "dst-device-mount",
                "undump-dst",
                "resume-dst",
                "finish-src",
                "dumpdev-umount-dst"
            ]
        );
        assert_eq!(p.commit_index(), 12);
    }

    #[test]
    fn quota_step_after_the_stop_and_the_last_copy() {
        let mut i = inp(CtState::Running);
        i.quota = true;
        assert_eq!(
            names(&build(&i).unwrap()),
            [
                "copy-config",
                "prepare-dst",
                "sync-1",
                "stop-src",
                "sync-2",
                "quota",
                "start-dst",
                "finish-src"
            ]
        );
        i.state = CtState::Stopped;
        assert_eq!(
            names(&build(&i).unwrap()),
            [
                "copy-config",
                "prepare-dst",
                "sync-1",
                "quota",
                "finish-src"
            ]
        );
        // d2: after the stop, before the handoff (and with a stopped CT,
        // right after the config)
        i.src_insulated = true;
        i.src_uuid = Some("u1".into());
        assert_eq!(
            names(&build(&i).unwrap()),
            ["copy-config", "quota", "finish-src"]
        );
        i.state = CtState::Running;
        let p = build(&i).unwrap();
        assert_eq!(
            names(&p),
            [
                "copy-config",
                "stop-src",
                "quota",
                "src-device-umount",
                "dst-device-mount",
                "start-dst",
                "finish-src"
            ]
        );
        assert_eq!(p.critical_index(), Some(3));
        // c, running: before the source device is released
        i.dst_shared = true;
        assert_eq!(
            names(&build(&i).unwrap()),
            [
                "copy-config",
                "prepare-dst",
                "sync-1",
                "stop-src",
                "src-device-mount",
                "sync-2",
                "quota",
                "src-device-umount",
                "start-dst",
                "finish-src"
            ]
        );
    }

    #[test]
    fn display_lists_steps_and_undos() {
        let p = build(&inp(CtState::Mounted)).unwrap();
        let text = p.display(false).to_string();
        assert!(text.starts_with("scenario a: shared -> shared (copy); container mounted\n"));
        assert!(text.contains("umount-src"));
        assert!(text.contains("[undo: vzctl mount on the source]"));
        assert!(text.contains("-- commit"));
    }

    #[test]
    fn plan_roundtrips_through_json() {
        let p = build(&inp(CtState::Running)).unwrap();
        let j = serde_json::to_string(&p).unwrap();
        let q: Plan = serde_json::from_str(&j).unwrap();
        assert_eq!(p, q);
    }

    #[test]
    fn undo_dependencies() {
        // copy scenarios: a node's undos need only that node's later undos
        assert_eq!(Step::StopSrc.undo_needs(false), &[Side::Source]);
        assert_eq!(Step::CopyConfig.undo_needs(false), &[Side::Target]);
        assert_eq!(Step::Sync { pass: 1 }.undo_needs(false), &[Side::Target]);
        // mounting the source device again needs the target released
        assert_eq!(
            Step::SrcDeviceUmount.undo_needs(false),
            &[Side::Source, Side::Target]
        );
        // a handoff: every source undo may mount the shared device
        assert_eq!(
            Step::StopSrc.undo_needs(true),
            &[Side::Source, Side::Target]
        );
        assert_eq!(Step::CopyConfig.undo_needs(true), &[Side::Target]);
        assert_eq!(Step::DstDeviceMount.undo_side(), Side::Target);
        assert_eq!(Step::KillSrc.undo_side(), Side::Source);
    }

    #[test]
    fn suspended_container_moves_its_dump() {
        let mut i = inp(CtState::Stopped);
        i.src_insulated = true;
        i.src_uuid = Some("u".into());
        i.suspended = true;
        let p = build(&i).unwrap();
        assert!(p.suspended);
        assert_eq!(names(&p), ["copy-config", "copy-dump", "finish-src"]);
        assert!(p
            .display(false)
            .to_string()
            .contains("suspended (its dump moves with it)"));
        // only a stopped container is suspended
        let mut r = inp(CtState::Running);
        r.suspended = true;
        assert!(!build(&r).unwrap().suspended);
    }
}
