//! Several containers in one run: `vzfs-migrate TARGET CTID CTID...`,
//! `--to T1,T2 CTID...`, `--evacuate TARGET` / `--evacuate --to T1,T2`
//! (every container of this node), and `--recover all`.
//!
//! How it runs:
//! 1. The containers (for `--evacuate`: every `CTID.conf` of this node, in
//!    CTID order) are given their targets round robin in the order named.
//! 2. One ssh master and one helper session per target
//!    ([`crate::helper::Remote`], shared through an `Arc`); the session
//!    answers overlapping requests ([`crate::session`]).
//! 3. Checks, before any change: each container's lock is taken (and held
//!    until its migration ends, so nothing changes it in between), its
//!    journal must not exist, and every check of a single run is made
//!    ([`crate::engine::prepare`]), `--jobs` at a time. A container that
//!    cannot move is reported with the reason; the others go on.
//!    `--check-only` prints every plan and stops here.
//! 4. The migrations, `--jobs` at a time, of which at most `--copy-jobs`
//!    copy data (scenarios a, b, c, d1); SAN handoffs (d2) take the other
//!    slots. Each is exactly a single run ([`crate::engine::run_prepared`]):
//!    its own lock, journal, failpoints (`CTID@NAME`, see
//!    [`crate::failpoint`]), undo, and its own signal slot
//!    ([`crate::signals`]). A failure is undone alone; the queue goes on.
//! 5. SIGINT/SIGTERM/SIGHUP: no new migration starts; the running ones
//!    finish (inside the handoff) or are undone (before it), as alone.
//! 6. One line per container as it starts and ends (its own step lines
//!    with `-v`, prefixed `CT N:`), then a table (container, target,
//!    scenario, state, downtime, result) on stdout, or the JSON of
//!    [`BatchSummary`] with `--json`, and what is where.
//!
//! Exit status: 0 when every container moved (or passed the checks with
//! `--check-only`); 23 when a migration left its journal (run
//! `vzfs-migrate --recover all`); 24 when a signal stopped the queue; else
//! 26 ([`crate::error::code::SOME_NOT_MOVED`]) when some did not move.

use crate::cli::{Mode, Options};
use crate::engine::{self, Prepared, Summary};
use crate::error::{code, Error, Kind, Result};
use crate::failpoint::Failpoints;
use crate::helper::{self, Remote};
use crate::journal;
use crate::lock::CtLock;
use crate::signals;
use crate::transport::{self, say_always, Ssh};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use vzfs::config::VzEtc;

/// The tag of the shared ssh masters' control directories
/// (`/run/vzfs-migrate/ssh-batch-XXXXXX`).
pub const MASTER_TAG: &str = "batch";

/// What a run of several containers did (`--json`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct BatchSummary {
    /// "migrated" (all moved), "checked" (`--check-only`, all can move),
    /// "partial" (some did not move), "interrupted", "recovered" /
    /// "recover-incomplete" (`--recover all`)
    pub result: String,
    pub targets: Vec<String>,
    pub jobs: usize,
    pub copy_jobs: usize,
    /// One per container, in the order named (result: "migrated",
    /// "checked", "refused" (cannot move: nothing changed), "undone",
    /// "undo-incomplete", "failed", "not-started", "recovered").
    pub containers: Vec<Summary>,
    pub total_seconds: f64,
    pub error: Option<String>,
    pub exit_code: i32,
}

impl BatchSummary {
    /// `-t`: each container's total time and downtime.
    pub fn print_times(&self) {
        eprintln!("times:");
        for c in &self.containers {
            eprintln!(
                "  CT {:<10} {:>9.3}s total{}",
                c.ctid,
                c.total_seconds,
                c.downtime_seconds
                    .map(|d| format!(", {d:.3}s downtime"))
                    .unwrap_or_default()
            );
        }
        eprintln!("  {:<13} {:>9.3}s", "all", self.total_seconds);
    }
}

/// Every container of this node: the `CTID.conf` files of the config
/// directory, in CTID order.
pub fn node_containers(etc: &VzEtc) -> Result<Vec<u32>> {
    let dir = etc.scripts_dir();
    let rd =
        std::fs::read_dir(&dir).map_err(|e| Error::io(Kind::System, "cannot read", &dir, e))?;
    let mut v: Vec<u32> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".conf")?;
            crate::cli::parse_ctid(id).ok()
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Round robin: container `i` (in the order named) goes to target `i % n`.
pub fn assign(ctids: &[u32], targets: &[String]) -> Vec<(u32, String)> {
    ctids
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, targets[i % targets.len()].clone()))
        .collect()
}

/// A container that passed the checks: what to run, its lock, its journal
/// directory.
struct Ready {
    prepared: Prepared,
    lock: CtLock,
    jdir: PathBuf,
}

fn row(ctid: u32, target: &str) -> Summary {
    Summary {
        ctid,
        target: target.to_string(),
        ..Summary::default()
    }
}

/// The checks of one container (see the module docs, step 3).
fn check_one(
    opts: &Options,
    etc: &VzEtc,
    ctid: u32,
    target: &str,
    remote: &std::result::Result<Arc<Remote>, String>,
) -> Result<Ready> {
    let remote = match remote {
        Ok(r) => Arc::clone(r),
        Err(e) => {
            return Err(Error::Connect {
                host: target.to_string(),
                detail: e.clone(),
            })
        }
    };
    let lockdir = engine::lockdir_of(etc, ctid)?;
    let jdir = engine::journal_dir(opts, &lockdir);
    let jpath = journal::journal_path(&jdir, ctid);
    if jpath.exists() {
        return Err(Error::check(
            Kind::Locked,
            format!("journal {}", jpath.display()),
            format!("an unfinished migration of container {ctid} exists; run `vzfs-migrate --recover {ctid}` (or `--recover all`) first"),
        ));
    }
    let lock = CtLock::acquire(&lockdir, ctid, "migrating")?;
    for m in transport::reap_stale_masters(&ctid.to_string()) {
        transport::say(&m);
    }
    match engine::prepare(opts, etc, target, ctid, Some(remote)) {
        Ok(prepared) => Ok(Ready {
            prepared,
            lock,
            jdir,
        }),
        Err(e) => {
            let _ = lock.release();
            Err(e)
        }
    }
}

/// Run `work(i)` for `i` in `0..n` on `jobs` threads, each with its own
/// signal slot; stops taking new items after a signal.
fn parallel(jobs: usize, n: usize, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for slot in 1..=jobs.min(n).max(1) {
            let (next, work) = (&next, &work);
            sc.spawn(move || {
                signals::use_slot(slot);
                loop {
                    if signals::pending().is_some() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    work(i);
                }
            });
        }
    });
}

/// The run for [`Mode::Batch`] and [`Mode::RecoverAll`].
pub fn run(opts: &Options, etc: &VzEtc) -> BatchSummary {
    let t0 = Instant::now();
    let mut b = BatchSummary {
        jobs: opts.jobs,
        copy_jobs: opts.copy_jobs,
        ..BatchSummary::default()
    };
    match &opts.mode {
        Mode::Batch { targets, ctids } => {
            b.targets = targets.clone();
            match ctids.clone().map_or_else(|| node_containers(etc), Ok) {
                Ok(ctids) => migrate_all(opts, etc, targets, &ctids, &mut b),
                Err(e) => {
                    b.result = "failed".into();
                    b.exit_code = e.exit_code();
                    b.error = Some(e.chain());
                }
            }
        }
        Mode::RecoverAll => recover_all(opts, etc, &mut b),
        Mode::Migrate { .. } | Mode::Recover { .. } => {
            let e = Error::Usage("one container is migrated by engine::run".into());
            b.exit_code = e.exit_code();
            b.error = Some(e.chain());
        }
    }
    b.total_seconds = t0.elapsed().as_secs_f64();
    b
}

fn short(ctid: u32, target: &str) -> String {
    format!("CT {ctid} -> {target}")
}

fn migrate_all(
    opts: &Options,
    etc: &VzEtc,
    targets: &[String],
    ctids: &[u32],
    b: &mut BatchSummary,
) {
    if ctids.is_empty() {
        say_always("no container on this node: nothing to do");
        b.result = "migrated".into();
        return;
    }
    let work = assign(ctids, targets);
    for m in transport::reap_stale_masters(MASTER_TAG) {
        say_always(&m);
    }
    // one master and one helper session per target
    let mut remotes: Vec<(String, std::result::Result<Arc<Remote>, String>)> = Vec::new();
    for t in targets {
        if !work.iter().any(|(_, wt)| wt == t) {
            continue;
        }
        let r = Ssh::connect_for(t, opts.ssh.as_deref(), MASTER_TAG)
            .and_then(|ssh| Remote::open(ssh, opts.remote_helper.clone(), opts.vzctl.clone(), None))
            .map(Arc::new)
            .map_err(|e| e.chain());
        if let Err(e) = &r {
            say_always(&format!("target {t}: {e}"));
        }
        remotes.push((t.clone(), r));
    }
    let remote_of = |t: &str| {
        &remotes
            .iter()
            .find(|(n, _)| n == t)
            .expect("a remote per target")
            .1
    };

    // checks, before any change
    say_always(&format!(
        "checking {} container{} ({} at once)",
        work.len(),
        if work.len() == 1 { "" } else { "s" },
        opts.jobs
    ));
    let checked: Vec<Mutex<Option<Result<Ready>>>> =
        work.iter().map(|_| Mutex::new(None)).collect();
    parallel(opts.jobs, work.len(), |i| {
        let (ctid, t) = (&work[i].0, &work[i].1);
        transport::set_batch_prefix(Some(format!("CT {ctid}")));
        let r = check_one(opts, etc, *ctid, t, remote_of(t));
        transport::set_batch_prefix(None);
        *checked[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    });
    let mut rows: Vec<Summary> = work.iter().map(|(c, t)| row(*c, t)).collect();
    let mut ready: Vec<Option<Ready>> = Vec::new();
    for (i, slot) in checked.into_iter().enumerate() {
        let (ctid, t) = (work[i].0, &work[i].1);
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(r)) => {
                engine::describe_prepared(opts, &r.prepared, &mut rows[i]);
                ready.push(Some(r));
            }
            Some(Err(e)) => {
                say_always(&format!(
                    "{}: cannot move: {} (nothing was changed)",
                    short(ctid, t),
                    e.chain()
                ));
                rows[i].result = "refused".into();
                rows[i].exit_code = e.exit_code();
                rows[i].error = Some(e.chain());
                ready.push(None);
            }
            None => {
                rows[i].result = "not-started".into();
                rows[i].exit_code = code::INTERRUPTED;
                rows[i].error = Some("interrupted before its checks".into());
                ready.push(None);
            }
        }
    }
    let interrupted_early = signals::pending();
    if opts.check_only || interrupted_early.is_some() {
        for (i, r) in ready.iter_mut().enumerate() {
            let Some(r) = r.take() else { continue };
            if opts.check_only {
                rows[i].result = "checked".into();
                if !opts.json {
                    println!(
                        "{}: scenario {} ({})",
                        short(work[i].0, &work[i].1),
                        rows[i].scenario.as_deref().unwrap_or("?"),
                        rows[i].state.as_deref().unwrap_or("?")
                    );
                    print!("{}", rows[i].plan.as_deref().unwrap_or_default());
                }
            } else {
                rows[i].result = "not-started".into();
                rows[i].exit_code = code::INTERRUPTED;
            }
            drop(r.prepared);
            let _ = r.lock.release();
        }
        if let Some(sig) = interrupted_early {
            say_always(&format!(
                "{} received during the checks: nothing was changed",
                signals::signal_name(sig)
            ));
        } else {
            say_always("check only: nothing was changed");
        }
    } else {
        run_queue(opts, &work, ready, &mut rows);
    }
    for (_, r) in remotes {
        if let Ok(r) = r {
            engine::close_remote(r);
        }
    }
    b.containers = rows;
    conclude(opts, b);
}

/// Step 4 of the module docs: the queue, `--jobs` at a time, copies at most
/// `--copy-jobs`.
fn run_queue(
    opts: &Options,
    work: &[(u32, String)],
    ready: Vec<Option<Ready>>,
    rows: &mut [Summary],
) {
    let copies: Vec<bool> = ready
        .iter()
        .map(|r| {
            r.as_ref()
                .is_some_and(|r| r.prepared.job.plan.scenario.copies())
        })
        .collect();
    let queue: VecDeque<usize> = (0..ready.len()).filter(|i| ready[*i].is_some()).collect();
    let todo = queue.len();
    if todo == 0 {
        return;
    }
    let n_copies = queue.iter().filter(|i| copies[**i]).count();
    say_always(&format!(
        "migrating {todo} container{}: {} handoff{}, {n_copies} cop{}; {} at once, copies {} at once",
        if todo == 1 { "" } else { "s" },
        todo - n_copies,
        if todo - n_copies == 1 { "" } else { "s" },
        if n_copies == 1 { "y" } else { "ies" },
        opts.jobs,
        opts.copy_jobs.min(opts.jobs)
    ));
    let fp_all = Failpoints::from_env();
    struct Q {
        waiting: VecDeque<usize>,
        copies_running: usize,
    }
    let q = Mutex::new(Q {
        waiting: queue,
        copies_running: 0,
    });
    let cv = Condvar::new();
    let slots: Vec<Mutex<Option<Ready>>> = ready.into_iter().map(Mutex::new).collect();
    let results: Vec<Mutex<Option<Summary>>> = rows.iter().map(|_| Mutex::new(None)).collect();
    fn lk<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    std::thread::scope(|sc| {
        for slot in 1..=opts.jobs.min(todo) {
            let (q, cv, slots, results, copies, fp_all) =
                (&q, &cv, &slots, &results, &copies, &fp_all);
            let rows_ro: &[Summary] = rows;
            sc.spawn(move || loop {
                let next = {
                    let mut g = lk(q);
                    loop {
                        if signals::pending().is_some() || g.waiting.is_empty() {
                            break None;
                        }
                        let free = g.copies_running < opts.copy_jobs;
                        match g.waiting.iter().position(|i| !copies[*i] || free) {
                            Some(p) => {
                                let i = g.waiting.remove(p).expect("position is in range");
                                if copies[i] {
                                    g.copies_running += 1;
                                }
                                break Some(i);
                            }
                            None => {
                                g = cv
                                    .wait_timeout(g, Duration::from_millis(100))
                                    .unwrap_or_else(|e| e.into_inner())
                                    .0
                            }
                        }
                    }
                };
                let Some(i) = next else { break };
                let r = slots[i]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .expect("each container is taken once");
                let mut sum = rows_ro[i].clone();
                signals::use_slot(slot);
                run_one(opts, &work[i], r, fp_all, &mut sum);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(sum);
                if copies[i] {
                    lk(q).copies_running -= 1;
                }
                cv.notify_all();
            });
        }
    });
    for (i, r) in results.into_iter().enumerate() {
        if let Some(s) = r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            rows[i] = s;
        }
    }
    // what the queue did not start (a signal): released untouched
    for (i, s) in slots.into_iter().enumerate() {
        if let Some(r) = s.into_inner().unwrap_or_else(|e| e.into_inner()) {
            rows[i].result = "not-started".into();
            rows[i].exit_code = code::INTERRUPTED;
            rows[i].error = Some("not started: the evacuation was interrupted".into());
            drop(r.prepared);
            let _ = r.lock.release();
        }
    }
}

/// One migration of the queue, exactly as a single run after its checks.
fn run_one(
    opts: &Options,
    (ctid, target): &(u32, String),
    r: Ready,
    fp_all: &Result<Failpoints>,
    sum: &mut Summary,
) {
    let t0 = Instant::now();
    let name = short(*ctid, target);
    say_always(&format!(
        "{name}: started (scenario {}, {})",
        sum.scenario.as_deref().unwrap_or("?"),
        sum.state.as_deref().unwrap_or("?")
    ));
    transport::set_batch_prefix(Some(format!("CT {ctid}")));
    let res = match fp_all {
        Ok(fp) => {
            let fp = fp.for_ct(*ctid);
            let res = engine::run_prepared(opts, r.prepared, &r.jdir, &fp, sum);
            let rel = r.lock.release();
            res.and(rel)
        }
        Err(e) => {
            drop(r.prepared);
            let _ = r.lock.release();
            Err(Error::Usage(e.chain()))
        }
    };
    transport::set_batch_prefix(None);
    sum.finish(res, t0);
    let line = match sum.result.as_str() {
        "migrated" => format!(
            "{name}: migrated in {:.2} s{}",
            sum.total_seconds,
            sum.downtime_seconds
                .map(|d| format!(" (downtime {d:.2} s)"))
                .unwrap_or_default()
        ),
        "undo-incomplete" => format!(
            "{name}: FAILED, the undo is incomplete (journal kept; run `vzfs-migrate --recover {ctid}` or `--recover all`): {}",
            sum.error.as_deref().unwrap_or("?")
        ),
        "undone" => format!(
            "{name}: FAILED and undone (it is on this node as before): {}",
            sum.error.as_deref().unwrap_or("?")
        ),
        other => format!(
            "{name}: {other}: {}",
            sum.error.as_deref().unwrap_or("?")
        ),
    };
    say_always(&line);
}

/// The table, what is where, the result and the exit code.
fn conclude(opts: &Options, b: &mut BatchSummary) {
    let rows = &b.containers;
    let count = |r: &str| rows.iter().filter(|s| s.result == r).count();
    let all_ok = rows
        .iter()
        .all(|s| s.result == "migrated" || s.result == "checked");
    let incomplete = count("undo-incomplete") > 0
        || rows
            .iter()
            .any(|s| s.result == "failed" && s.exit_code == code::UNDO_INCOMPLETE);
    let sig = signals::pending();
    b.exit_code = if all_ok {
        0
    } else if incomplete {
        code::UNDO_INCOMPLETE
    } else if sig.is_some() {
        code::INTERRUPTED
    } else {
        code::SOME_NOT_MOVED
    };
    b.result = if all_ok {
        if opts.check_only {
            "checked"
        } else {
            "migrated"
        }
        .into()
    } else if sig.is_some() {
        "interrupted".into()
    } else {
        "partial".into()
    };
    if !opts.json {
        print_table(rows);
    }
    // what is where
    let ids = |f: &dyn Fn(&Summary) -> bool| -> Vec<String> {
        rows.iter()
            .filter(|s| f(s))
            .map(|s| s.ctid.to_string())
            .collect()
    };
    let mut parts = Vec::new();
    for t in &b.targets {
        let moved = ids(&|s| s.result == "migrated" && &s.target == t);
        if !moved.is_empty() {
            parts.push(format!("on {t}: {}", moved.join(" ")));
        }
    }
    let here = ids(&|s| !matches!(s.result.as_str(), "migrated" | "undo-incomplete"));
    if !here.is_empty() {
        parts.push(format!("still on this node: {}", here.join(" ")));
    }
    let left = ids(&|s| s.result == "undo-incomplete");
    if !left.is_empty() {
        parts.push(format!(
            "unfinished (journal kept; fix the cause, then run `vzfs-migrate --recover all`): {}",
            left.join(" ")
        ));
    }
    if let Some(s) = sig {
        parts.push(format!("{} stopped the queue", signals::signal_name(s)));
    }
    if !parts.is_empty() && !opts.check_only {
        say_always(&parts.join("; "));
    }
    if !all_ok {
        let not = rows
            .iter()
            .filter(|s| s.result != "migrated" && s.result != "checked")
            .count();
        b.error = Some(format!(
            "{not} of {} container{} did not {}{}",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" },
            if opts.check_only {
                "pass the checks"
            } else {
                "move"
            },
            if incomplete {
                "; run `vzfs-migrate --recover all` once the cause is fixed"
            } else {
                " (see the table)"
            }
        ));
    }
}

/// Container, target, scenario, state, downtime, result; the errors below.
fn print_table(rows: &[Summary]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<8} {:<16} {:<8} {:<9} {:>9}  RESULT",
        "CTID", "TARGET", "SCENARIO", "STATE", "DOWNTIME"
    );
    for s in rows {
        let _ = writeln!(
            out,
            "{:<8} {:<16} {:<8} {:<9} {:>9}  {}",
            s.ctid,
            s.target,
            s.scenario.as_deref().unwrap_or("-"),
            s.state.as_deref().unwrap_or("-"),
            s.downtime_seconds
                .map(|d| format!("{d:.2}s"))
                .unwrap_or_else(|| "-".into()),
            s.result
        );
    }
    for s in rows.iter().filter(|s| s.error.is_some()) {
        let _ = writeln!(
            out,
            "CT {}: {}",
            s.ctid,
            s.error.as_deref().unwrap_or_default()
        );
    }
}

/// The directories journals can be in: `--journal-dir`, the global
/// LOCKDIR, and every container's LOCKDIR.
fn journal_dirs(opts: &Options, etc: &VzEtc) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = &opts.journal_dir {
        dirs.push(d.clone());
    }
    if let Ok(d) = helper::global_lockdir(etc) {
        dirs.push(engine::journal_dir(opts, &d));
    }
    for c in node_containers(etc).unwrap_or_default() {
        if let Ok(d) = engine::lockdir_of(etc, c) {
            dirs.push(engine::journal_dir(opts, &d));
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// `--recover all`: every `CTID.migrate-journal` of this node, one after
/// the other, each exactly as `--recover CTID`.
fn recover_all(opts: &Options, etc: &VzEtc, b: &mut BatchSummary) {
    for m in transport::reap_stale_masters(MASTER_TAG) {
        say_always(&m);
    }
    let mut ctids: Vec<u32> = Vec::new();
    for d in journal_dirs(opts, etc) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(c) = name
                .strip_suffix(".migrate-journal")
                .and_then(|c| crate::cli::parse_ctid(c).ok())
            {
                if !ctids.contains(&c) {
                    ctids.push(c);
                }
            }
        }
    }
    ctids.sort_unstable();
    if ctids.is_empty() {
        say_always("recover all: no unfinished migration on this node");
        b.result = "recovered".into();
        return;
    }
    say_always(&format!(
        "recover all: {} unfinished migration{}: {}",
        ctids.len(),
        if ctids.len() == 1 { "" } else { "s" },
        ctids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    for c in ctids {
        let mut o = opts.clone();
        o.mode = Mode::Recover { ctid: c };
        let s = engine::run(&o, etc);
        say_always(&format!(
            "CT {c}: {}{}",
            s.result,
            s.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        b.containers.push(s);
    }
    let bad: Vec<String> = b
        .containers
        .iter()
        .filter(|s| s.exit_code != 0)
        .map(|s| s.ctid.to_string())
        .collect();
    if !opts.json {
        print_table(&b.containers);
    }
    if bad.is_empty() {
        b.result = "recovered".into();
    } else {
        b.result = "recover-incomplete".into();
        b.exit_code = code::UNDO_INCOMPLETE;
        b.error = Some(format!(
            "the recovery of CT {} did not complete (their journals are kept): fix the cause named above, then run `vzfs-migrate --recover all` again",
            bad.join(" ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_in_the_order_named() {
        let t = vec!["b".to_string(), "c".to_string()];
        let a = assign(&[101, 102, 103], &t);
        assert_eq!(
            a,
            vec![
                (101, "b".to_string()),
                (102, "c".to_string()),
                (103, "b".to_string())
            ]
        );
    }

    #[test]
    fn node_containers_are_the_numeric_configs() {
        let d = std::env::temp_dir().join(format!("vzfs-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("conf")).unwrap();
        for f in [
            "102.conf",
            "101.conf",
            "0.conf",
            "ve-basic.conf-sample",
            "103.conf.migrated",
            "x.conf",
        ] {
            std::fs::write(d.join("conf").join(f), "").unwrap();
        }
        assert_eq!(node_containers(&VzEtc::new(&d)).unwrap(), vec![101, 102]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
