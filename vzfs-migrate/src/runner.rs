//! The engine both tools run their plans on (`vzfs-migrate`'s migration,
//! `vzfs-create`'s creation and conversion): each step journaled
//! ([`crate::journal`]: `begin i` before it runs, `done i` after), with
//! failpoints `before:STEP`, `after:STEP`, `undo:STEP`
//! ([`crate::failpoint`]); the commit journaled once the plan's commit step
//! is done (or when the first step after it begins), after which a failure
//! finishes forward (`--recover` runs the remaining steps) instead of
//! undoing; before it, a failure undoes the begun steps in reverse order,
//! each undo journaled (`undone i`) and reported, a failed undo blocking
//! only the undos that need it ([`Plan::undo_side`], [`Plan::undo_needs`]);
//! signals ([`crate::signals`]) interrupt before the critical section and
//! are deferred inside it. What a step does, the plan says ([`Plan`]); the
//! outcome goes into a [`Summary`] (for `-t` and `--json`).

use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::journal::{self, Journal, Record};
use crate::signals;
use crate::transport::{self, say};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

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

/// What a run did (`-t`, `--json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub ctid: u32,
    pub target: String,
    pub scenario: Option<String>,
    pub state: Option<String>,
    /// "migrated", "created", "converted", "checked", "undone",
    /// "undo-incomplete", "failed", "recovered"
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

impl Summary {
    /// Records how a run ended: total time, exit code, the error chain, and
    /// the result word when the run did not set one (`undo-incomplete`,
    /// `undone` when undo steps ran, else `failed`).
    pub fn finish(&mut self, res: Result<()>, t0: Instant) {
        self.total_seconds = t0.elapsed().as_secs_f64();
        match res {
            Ok(()) => self.exit_code = 0,
            Err(e) => {
                self.exit_code = e.exit_code();
                self.error = Some(e.chain());
                if self.result.is_empty() || self.result == "running" {
                    self.result = match e.kind() {
                        crate::error::Kind::UndoIncomplete => "undo-incomplete".into(),
                        _ if !self.undo.is_empty() => "undone".into(),
                        _ => "failed".into(),
                    };
                }
            }
        }
    }
}

/// `-t`: the time of every step, the downtime, the freeze, the total.
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

/// What a plan's steps are and do. The defaults suit a node-local plan
/// whose every undo needs the later ones (`vzfs-create`).
pub trait Plan {
    type Step: Clone;
    fn steps(&self) -> Vec<Self::Step>;
    /// Index of the first step after the commit (`steps().len()`: none).
    fn commit_index(&self) -> usize;
    /// Signals are deferred from this step on, if any.
    fn critical_index(&self) -> Option<usize> {
        None
    }
    /// The last step before the commit commits as soon as it is done
    /// (otherwise the commit is journaled when the next step begins).
    fn commits_when_done(&self, _s: &Self::Step) -> bool {
        true
    }
    fn name(&self, s: &Self::Step) -> String;
    fn describe(&self, s: &Self::Step) -> String;
    fn undo_describe(&self, s: &Self::Step) -> String;
    /// Run a step; `Ok(true)` when it found nothing to do (no undo owed).
    fn run(&mut self, s: &Self::Step) -> Result<bool>;
    /// Undo a step; `begun` are all steps that began.
    fn undo(&mut self, s: &Self::Step, begun: &[Self::Step]) -> Result<()>;
    /// The command that finishes an interrupted run (`vzfs-create --recover 101`).
    fn recover_hint(&self) -> String;
    /// Whether a begun step owes an undo at all (steps after the commit never do).
    fn owes_undo(&self, _s: &Self::Step) -> bool {
        true
    }
    /// Whether `--recover` of a committed run runs step `i` if not done.
    fn finishes_forward(&self, i: usize, _s: &Self::Step) -> bool {
        i >= self.commit_index()
    }
    /// The node an undo runs on (0 for a node-local plan), and its name in
    /// messages (`None`: not named).
    fn undo_side(&self, _s: &Self::Step) -> usize {
        0
    }
    fn side_name(&self, _side: usize) -> Option<&'static str> {
        None
    }
    /// The nodes whose failed undos block this undo.
    fn undo_needs(&self, s: &Self::Step) -> Vec<usize> {
        vec![self.undo_side(s)]
    }
    /// Before a step runs / after it ran (timing of downtime, freeze).
    fn before_step(&mut self, _i: usize, _s: &Self::Step) {}
    fn after_step(&mut self, _i: usize, _s: &Self::Step, _ok: bool, _sum: &mut Summary) {}
    /// After the last step ran or the run stopped (before any undo).
    fn finish(&mut self, _sum: &mut Summary) {}
    /// A failure after the commit: what is left and how to finish it.
    fn committed_error(&self, err: &Error, journal: &Path) -> Error {
        Error::Undo(format!(
            "{}; the change is committed, only the cleanup is left: the journal {} is kept, run `{}`",
            err.chain(),
            journal.display(),
            self.recover_hint()
        ))
    }
    /// A sentence on what the failed undos left (given the blocked nodes).
    fn undo_left_note(&self, _blocked: &[usize]) -> Option<String> {
        None
    }
    /// Said when a signal was deferred and the run still completed.
    fn deferred_note(&self, sig: &str) -> String {
        format!("{sig} received in the critical section; it was deferred and the run completed")
    }
}

/// Run every step; on failure before the commit, undo. `Err(Error::Undo)`
/// when something is left for `--recover`.
pub fn execute<P: Plan>(
    p: &mut P,
    j: &mut Journal,
    fp: &Failpoints,
    sum: &mut Summary,
) -> Result<()> {
    let steps = p.steps();
    let commit = p.commit_index();
    let critical = p.critical_index();
    let n = steps.len();
    let mut committed = false;
    let mut failure = None;
    for (i, step) in steps.iter().enumerate() {
        let name = p.name(step);
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
        if i >= commit || critical == Some(i) {
            signals::set_critical(true);
        }
        if let Err(e) = fp.hit(&format!("before:{name}")) {
            failure = Some(Error::Step {
                step: name,
                source: Box::new(e),
            });
            break;
        }
        say(&format!("step {}/{n} {name}: {}", i + 1, p.describe(step)));
        j.append(&Record::Begin { i })?;
        p.before_step(i, step);
        let t0 = Instant::now();
        let r = p.run(step);
        let secs = t0.elapsed().as_secs_f64();
        p.after_step(i, step, r.is_ok(), sum);
        match r {
            Ok(noop) => {
                j.append(&Record::Done { i, noop })?;
                if noop {
                    transport::log(&format!("step {name}: nothing to do (no undo owed)"));
                }
                if i + 1 == commit && p.commits_when_done(step) {
                    // durable before anything else can fail: from here on
                    // the run is finished forward, never undone
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
        if let Err(e) = fp.hit(&format!("after:{name}")) {
            failure = Some(Error::Step {
                step: name,
                source: Box::new(e),
            });
            break;
        }
    }
    p.finish(sum);
    let Some(err) = failure else {
        signals::set_critical(false);
        if let Some(sig) = signals::pending() {
            say(&p.deferred_note(&signals::signal_name(sig)));
        }
        return Ok(());
    };
    let st = journal::read(j.path())?;
    if st.committed {
        return Err(p.committed_error(&err, j.path()));
    }
    say(&format!("error: {}; undoing", err.chain()));
    match undo_all(p, j, fp, sum) {
        Ok(()) => Err(err),
        Err(u) => Err(Error::Undo(format!("{}; {}", err.chain(), u))),
    }
}

/// Run the undos owed by the journal, in reverse. A failed undo is
/// reported and the undo goes on with the steps that do not need it
/// ([`Plan::undo_needs`]); those that do are skipped and reported. Steps
/// that found nothing to do are named as owing no undo. `Err` (exit 23)
/// says exactly which undos are left and how to finish them.
pub fn undo_all<P: Plan>(
    p: &mut P,
    j: &mut Journal,
    fp: &Failpoints,
    sum: &mut Summary,
) -> Result<()> {
    let st = journal::read(j.path())?;
    let steps = p.steps();
    let begun: Vec<P::Step> = st
        .begun
        .iter()
        .filter_map(|i| steps.get(*i).cloned())
        .collect();
    signals::set_critical(true);
    let mut order = st.begun.clone();
    order.sort_unstable();
    order.dedup();
    order.reverse();
    // (node whose undos are blocked, the step whose undo failed)
    let mut blocked: Vec<(usize, String)> = Vec::new();
    let mut left: Vec<String> = Vec::new();
    for i in order {
        let Some(step) = steps.get(i) else { continue };
        if !p.owes_undo(step) || st.undone.contains(&i) {
            continue;
        }
        let name = p.name(step);
        if st.noop.contains(&i) {
            say(&format!(
                "undo {name}: nothing to undo (the step found nothing to do)"
            ));
            continue;
        }
        let desc = p.undo_describe(step);
        let side = p.undo_side(step);
        let on = p
            .side_name(side)
            .map(|s| format!(" on the {s}"))
            .unwrap_or_default();
        let needs = p.undo_needs(step);
        if let Some((_, cause)) = blocked.iter().find(|(s, _)| needs.contains(s)).cloned() {
            say(&format!(
                "undo {name} ({desc}): skipped: it needs the undo of {cause}, which failed"
            ));
            sum.undo.push(UndoReport {
                name: name.clone(),
                ok: false,
                error: Some(format!("skipped: needs the undo of {cause}")),
            });
            left.push(format!("{name}{on} ({desc}; skipped)"));
            blocked.push((side, cause));
            continue;
        }
        let r = fp
            .hit(&format!("undo:{name}"))
            .and_then(|_| p.undo(step, &begun));
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
                left.push(format!("{name}{on} ({desc}; FAILED: {})", e.chain()));
                blocked.push((side, name));
            }
        }
    }
    if left.is_empty() {
        return Ok(());
    }
    let sides: Vec<usize> = blocked.iter().map(|(s, _)| *s).collect();
    Err(Error::Undo(format!(
        "the undo is incomplete; left undone: {}; {}the journal {} is kept: fix the cause, then run `{}`",
        left.join(", "),
        p.undo_left_note(&sides)
            .map(|n| format!("{n}; "))
            .unwrap_or_default(),
        j.path().display(),
        p.recover_hint()
    )))
}

/// After a crash: a committed run finishes its remaining steps
/// ([`Plan::finishes_forward`]), an uncommitted one is undone. The journal
/// is removed when that worked.
pub fn recover<P: Plan>(
    p: &mut P,
    mut j: Journal,
    fp: &Failpoints,
    sum: &mut Summary,
) -> Result<()> {
    let st = journal::read(j.path())?;
    if st.committed {
        let steps = p.steps();
        for (i, s) in steps.iter().enumerate() {
            if p.finishes_forward(i, s) && !st.done.contains(&i) {
                let name = p.name(s);
                j.append(&Record::Begin { i })?;
                let noop = p.run(s).map_err(|e| Error::Step {
                    step: name.clone(),
                    source: Box::new(e),
                })?;
                j.append(&Record::Done { i, noop })?;
                say(&format!("step {name}: done"));
                sum.steps.push(StepReport {
                    name,
                    status: if noop { "noop" } else { "done" }.into(),
                    seconds: 0.0,
                });
            }
        }
        sum.result = "recovered".into();
    } else {
        undo_all(p, &mut j, fp, sum)?;
        sum.result = "undone".into();
    }
    j.remove()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Steps 0..n on two "nodes" (even: 0, odd: 1); `fail` makes that step
    /// fail, `fail_undo` that step's undo; what ran is recorded.
    struct Fake {
        n: usize,
        commit: usize,
        fail: Option<usize>,
        fail_undo: Option<usize>,
        log: Vec<String>,
    }

    impl Plan for Fake {
        type Step = usize;
        fn steps(&self) -> Vec<usize> {
            (0..self.n).collect()
        }
        fn commit_index(&self) -> usize {
            self.commit
        }
        fn name(&self, s: &usize) -> String {
            format!("s{s}")
        }
        fn describe(&self, s: &usize) -> String {
            format!("step {s}")
        }
        fn undo_describe(&self, s: &usize) -> String {
            format!("undo {s}")
        }
        fn run(&mut self, s: &usize) -> Result<bool> {
            self.log.push(format!("run {s}"));
            if self.fail == Some(*s) {
                return Err(Error::Usage(format!("step {s} failed")));
            }
            Ok(false)
        }
        fn undo(&mut self, s: &usize, begun: &[usize]) -> Result<()> {
            assert!(begun.contains(s));
            self.log.push(format!("undo {s}"));
            if self.fail_undo == Some(*s) {
                return Err(Error::Usage(format!("undo {s} failed")));
            }
            Ok(())
        }
        fn recover_hint(&self) -> String {
            "fake --recover".into()
        }
        fn undo_side(&self, s: &usize) -> usize {
            s % 2
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vzfs-runner-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn fake(fail: Option<usize>, fail_undo: Option<usize>) -> Fake {
        Fake {
            n: 5,
            commit: 3,
            fail,
            fail_undo,
            log: Vec::new(),
        }
    }

    #[test]
    fn all_steps_run_and_the_commit_is_journaled() {
        let d = dir("ok");
        let mut j = Journal::create_of(&d, 1, "test", &0).unwrap();
        let mut p = fake(None, None);
        let mut sum = Summary::default();
        execute(&mut p, &mut j, &Failpoints::default(), &mut sum).unwrap();
        assert_eq!(p.log, ["run 0", "run 1", "run 2", "run 3", "run 4"]);
        assert!(journal::read(j.path()).unwrap().committed);
        assert_eq!(sum.steps.len(), 5);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failure_before_the_commit_undoes_in_reverse_and_failed_undos_block_their_node() {
        let d = dir("undo");
        let mut j = Journal::create_of(&d, 1, "test", &0).unwrap();
        let mut p = fake(Some(2), None);
        let mut sum = Summary::default();
        let e = execute(&mut p, &mut j, &Failpoints::default(), &mut sum).unwrap_err();
        assert_eq!(e.to_string(), "step s2");
        assert_eq!(
            p.log,
            ["run 0", "run 1", "run 2", "undo 2", "undo 1", "undo 0"]
        );
        assert!(journal::read(j.path()).unwrap().pending_undos().is_empty());
        // a failed undo on node 0 skips the other undo of node 0, not node 1's
        let d = dir("undo2");
        let mut j = Journal::create_of(&d, 1, "test", &0).unwrap();
        let mut p = fake(Some(2), Some(2));
        let mut sum = Summary::default();
        let e = execute(&mut p, &mut j, &Failpoints::default(), &mut sum).unwrap_err();
        assert_eq!(p.log, ["run 0", "run 1", "run 2", "undo 2", "undo 1"]);
        let m = e.to_string();
        assert!(m.contains("left undone: s2 (undo 2; FAILED"), "{m}");
        assert!(
            m.contains("s0 (undo 0; skipped)") && m.contains("fake --recover"),
            "{m}"
        );
        assert_eq!(e.exit_code(), 23);
        // --recover retries what is left
        let mut p = fake(None, None);
        let mut sum = Summary::default();
        recover(
            &mut p,
            Journal::open(j.path()).unwrap(),
            &Failpoints::default(),
            &mut sum,
        )
        .unwrap();
        assert_eq!(p.log, ["undo 2", "undo 0"]);
        assert!(!j.path().exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failure_after_the_commit_finishes_forward_by_recover() {
        let d = dir("commit");
        let mut j = Journal::create_of(&d, 1, "test", &0).unwrap();
        let mut p = fake(Some(3), None);
        let mut sum = Summary::default();
        let e = execute(&mut p, &mut j, &Failpoints::default(), &mut sum).unwrap_err();
        assert_eq!(e.exit_code(), 23);
        assert_eq!(p.log, ["run 0", "run 1", "run 2", "run 3"]);
        let mut p = fake(None, None);
        recover(
            &mut p,
            Journal::open(j.path()).unwrap(),
            &Failpoints::default(),
            &mut sum,
        )
        .unwrap();
        assert_eq!(p.log, ["run 3", "run 4"]);
        assert_eq!(sum.result, "recovered");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
