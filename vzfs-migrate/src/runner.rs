//! The step runner of a node-local plan (`vzfs-create`), on the same
//! journal ([`crate::journal`]), failpoints ([`crate::failpoint`]), signal
//! handling ([`crate::signals`]) and summary ([`crate::engine::Summary`])
//! as the migration engine: each step is journaled (`begin i`) before it
//! runs and (`done i`) after; failpoints `before:STEP`, `after:STEP`,
//! `undo:STEP`; once the step at the commit index is reached `commit` is
//! journaled and a later failure finishes forward (`--recover` runs the
//! remaining steps) instead of undoing; before that, a failure undoes the
//! begun steps in reverse order, each undo journaled (`undone i`) and
//! reported; a failed undo stops the undo (each undo of a node-local plan
//! needs the later ones) and leaves the journal for `--recover`.

use crate::engine::{StepReport, Summary, UndoReport};
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::journal::{self, Journal, Record};
use crate::signals;
use crate::transport::{self, say};
use std::time::Instant;

/// What a plan's steps are and do.
pub trait Plan {
    type Step: Clone;
    fn steps(&self) -> Vec<Self::Step>;
    /// Index of the first step after the commit (`steps().len()`: none).
    fn commit_index(&self) -> usize;
    fn name(&self, s: &Self::Step) -> String;
    fn describe(&self, s: &Self::Step) -> String;
    fn undo_describe(&self, s: &Self::Step) -> String;
    /// Run a step; `Ok(true)` when it found nothing to do (no undo owed).
    fn run(&mut self, s: &Self::Step) -> Result<bool>;
    fn undo(&mut self, s: &Self::Step) -> Result<()>;
    /// The command that finishes an interrupted run (`vzfs-create --recover 101`).
    fn recover_hint(&self) -> String;
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
    let n = steps.len();
    let mut failure = None;
    let mut committed = false;
    for (i, step) in steps.iter().enumerate() {
        let name = p.name(step);
        if i == commit && !committed {
            j.append(&Record::Commit)?;
            committed = true;
            signals::set_critical(true);
        }
        if i < commit {
            if let Some(sig) = signals::pending() {
                failure = Some(Error::Interrupted(signals::signal_name(sig)));
                break;
            }
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
        let t0 = Instant::now();
        let r = p.run(step);
        let secs = t0.elapsed().as_secs_f64();
        match r {
            Ok(noop) => {
                j.append(&Record::Done { i, noop })?;
                if i + 1 == commit {
                    // durable as soon as the commit step is: from here on
                    // the run is finished forward, never undone
                    j.append(&Record::Commit)?;
                    committed = true;
                    signals::set_critical(true);
                }
                if noop {
                    transport::log(&format!("step {name}: nothing to do (no undo owed)"));
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
                let e = match signals::pending() {
                    Some(sig) if i < commit => {
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
    let Some(err) = failure else {
        signals::set_critical(false);
        return Ok(());
    };
    let st = journal::read(j.path())?;
    if st.committed {
        return Err(Error::Undo(format!(
            "{}; the change is committed (the config is final), only the cleanup is left: the journal {} is kept, run `{}`",
            err.chain(),
            j.path().display(),
            p.recover_hint()
        )));
    }
    say(&format!("error: {}; undoing", err.chain()));
    match undo_all(p, j, fp, sum) {
        Ok(()) => Err(err),
        Err(u) => Err(Error::Undo(format!("{}; {}", err.chain(), u))),
    }
}

/// Undo every begun step not yet undone, in reverse; stops at the first
/// failed undo (the earlier undos need it).
pub fn undo_all<P: Plan>(
    p: &mut P,
    j: &mut Journal,
    fp: &Failpoints,
    sum: &mut Summary,
) -> Result<()> {
    let st = journal::read(j.path())?;
    let steps = p.steps();
    signals::set_critical(true);
    let mut order = st.begun.clone();
    order.sort_unstable();
    order.dedup();
    order.reverse();
    let mut left: Vec<String> = Vec::new();
    for i in order {
        let Some(step) = steps.get(i) else { continue };
        if st.undone.contains(&i) {
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
        if !left.is_empty() {
            say(&format!(
                "undo {name} ({desc}): skipped: it needs the undo that failed"
            ));
            sum.undo.push(UndoReport {
                name: name.clone(),
                ok: false,
                error: Some("skipped: needs the undo that failed".into()),
            });
            left.push(format!("{name} ({desc}; skipped)"));
            continue;
        }
        let r = fp.hit(&format!("undo:{name}")).and_then(|_| p.undo(step));
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
                left.push(format!("{name} ({desc}; FAILED: {})", e.chain()));
            }
        }
    }
    if left.is_empty() {
        return Ok(());
    }
    Err(Error::Undo(format!(
        "the undo is incomplete; left undone: {}; the journal {} is kept: fix the cause, then run `{}`",
        left.join(", "),
        j.path().display(),
        p.recover_hint()
    )))
}

/// After a crash: a committed run finishes its remaining steps, an
/// uncommitted one is undone. The journal is removed when that worked.
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
            if i >= p.commit_index() && !st.done.contains(&i) {
                let name = p.name(s);
                j.append(&Record::Begin { i })?;
                let noop = p.run(s).map_err(|e| {
                    Error::Undo(format!(
                        "step {name}: {}; the journal {} is kept: fix the cause, then run `{}`",
                        e.chain(),
                        j.path().display(),
                        p.recover_hint()
                    ))
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
