//! The undo matrix: for every scenario and source state, make every step
//! before the commit fail in turn (failpoint `after:STEP=fail`, so the step
//! itself and all before it are undone) and prove the source is as it was
//! (state, config byte for byte, data checksums), the target holds no
//! config, mount or copied data, no journal is left and the SAN device is
//! not mounted on the target. Also: `--check-only` changes nothing, a crash
//! (SIGKILL) is finished by `--recover`, and a new migration refuses to
//! start while a journal exists.

mod common;
use common::*;
use vzfs_lab::Host;

/// Pre-commit step names of the plan, from `--check-only`.
fn plan_steps(a: &Host, args: &[String]) -> Vec<String> {
    let out = a.run(&migrate_argv(&["--check-only"], args)).unwrap();
    assert!(out.success(), "check-only failed: {}", out.all());
    let mut steps = Vec::new();
    for line in out.stdout.lines() {
        if line.contains("-- commit") {
            break;
        }
        let t = line.trim_start();
        if let Some((num, rest)) = t.split_once(". ") {
            if num.trim().parse::<u32>().is_ok() {
                steps.push(rest.split_whitespace().next().unwrap().to_string());
            }
        }
    }
    assert!(!steps.is_empty(), "no steps in {}", out.stdout);
    steps
}

fn matrix(kind: &str, state: &str, online: bool) -> usize {
    let name = format!(
        "migrate_undo_{kind}_{state}{}",
        if online { "_online" } else { "" }
    );
    let Some(lab) = lab(&name) else { return 0 };
    let a = lab.host("a");
    let (mut args, src, dst) = setup(&lab, kind, state);
    if online {
        args.insert(0, "--online".into());
    }
    let steps = plan_steps(a, &args);
    let before = snapshot(a, src.is_some() && state == "stopped");
    // --check-only changed nothing
    assert_undone(
        &format!("{kind}/{state} check-only"),
        &lab,
        &before,
        src.as_ref(),
        dst.as_ref(),
    );
    let argv = migrate_argv(&[], &args);
    for (n, step) in steps.iter().enumerate() {
        // the last step before the commit starts the container on the
        // target: make it fail at its start (after it, it is committed)
        let starts_target = n + 1 == steps.len()
            && ["start-dst", "resume-dst", "mount-dst"].contains(&step.as_str());
        let fp = if starts_target {
            format!("before:{step}")
        } else {
            format!("after:{step}")
        };
        let ctx = format!(
            "{kind}/{state}{} fail {fp}",
            if online { " online" } else { "" }
        );
        let (code, err) = run_failpoints(a, &argv, &format!("{fp}=fail"));
        assert_eq!(code, Some(25), "{ctx}: {err}");
        assert!(
            err.contains(&format!("failpoint {fp} triggered")),
            "{ctx}: {err}"
        );
        if !starts_target {
            assert!(
                step_undone(&err, step),
                "{ctx}: the failed step was not undone: {err}"
            );
        }
        assert!(!err.contains("FAILED"), "{ctx}: an undo failed: {err}");
        assert_undone(&ctx, &lab, &before, src.as_ref(), dst.as_ref());
    }
    // a failure right after the commit is not undone: --recover finishes it
    let (code, err) = run_failpoints(a, &argv, "before:finish-src=fail");
    assert_eq!(code, Some(23), "{kind}/{state} after commit: {err}");
    assert!(err.contains("committed"), "{err}");
    recover(a);
    assert_eq!(status(lab.host("b")), expected_status(state));
    assert!(a.path("/etc/vz/conf/101.conf.migrated").exists());
    lab.teardown().unwrap();
    steps.len()
}

macro_rules! undo_tests {
    ($($name:ident: $kind:expr, $state:expr, $online:expr;)*) => {$(
        #[test]
        fn $name() {
            let n = matrix($kind, $state, $online);
            eprintln!("undo matrix {} {} online={}: {n} steps failed in turn", $kind, $state, $online);
        }
    )*};
}

undo_tests! {
    migrate_undo_a_running: "a", "running", false;
    migrate_undo_a_mounted: "a", "mounted", false;
    migrate_undo_a_stopped: "a", "stopped", false;
    migrate_undo_a_online: "a", "running", true;
    migrate_undo_b_running: "b", "running", false;
    migrate_undo_b_mounted: "b", "mounted", false;
    migrate_undo_b_stopped: "b", "stopped", false;
    migrate_undo_c_running: "c", "running", false;
    migrate_undo_c_mounted: "c", "mounted", false;
    migrate_undo_c_stopped: "c", "stopped", false;
    migrate_undo_d1_running: "d1", "running", false;
    migrate_undo_d1_mounted: "d1", "mounted", false;
    migrate_undo_d1_stopped: "d1", "stopped", false;
    migrate_undo_d2_running: "d2", "running", false;
    migrate_undo_d2_mounted: "d2", "mounted", false;
    migrate_undo_d2_stopped: "d2", "stopped", false;
    migrate_undo_d2_online: "d2", "running", true;
}

/// kill -9 in the middle of a handoff: a new migration refuses to start,
/// `--recover` finishes the undo, the source runs again.
#[test]
fn migrate_recover_after_crash() {
    let Some(lab) = lab("migrate_recover_after_crash") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, dst) = setup(&lab, "d2", "running");
    let before = snapshot(a, false);
    let argv = migrate_argv(&[], &args);
    let (code, err) = run_failpoints(a, &argv, "after:dst-device-mount=crash");
    assert_eq!(code, None, "expected death by SIGKILL: {err}");
    assert!(a.path("/vz/lock/101.migrate-journal").exists());
    let again = a.run(&argv).unwrap();
    assert_eq!(again.exit_code(), 20, "{}", again.all());
    assert!(again.stderr.contains("--recover 101"), "{}", again.all());
    let rec = recover(a);
    assert!(
        rec.stderr.contains("undo dst-device-mount"),
        "{}",
        rec.all()
    );
    assert_undone(
        "recover after crash",
        &lab,
        &before,
        src.as_ref(),
        dst.as_ref(),
    );
    lab.teardown().unwrap();
}

/// An undo that fails keeps the journal; `--recover` completes it.
#[test]
fn migrate_undo_failure_then_recover() {
    let Some(lab) = lab("migrate_undo_failure_then_recover") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, dst) = setup(&lab, "b", "running");
    let before = snapshot(a, false);
    let argv = migrate_argv(&[], &args);
    let (code, err) = run_failpoints(a, &argv, "after:sync-2=fail;undo:stop-src=fail");
    assert_eq!(code, Some(23), "{err}");
    assert!(
        err.contains("undo stop-src (vzctl start on the source): FAILED"),
        "{err}"
    );
    assert!(err.contains("--recover 101"), "{err}");
    recover(a);
    assert_undone(
        "undo failure then recover",
        &lab,
        &before,
        src.as_ref(),
        dst.as_ref(),
    );
    lab.teardown().unwrap();
}

/// Errors before anything changes: CT exists on the target, wrong device,
/// dead target host, target without the helper.
#[test]
fn migrate_refusals() {
    let Some(lab) = lab("migrate_refusals") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, dst) = setup(&lab, "d1", "running");
    let before = snapshot(a, false);
    // device busy on the target
    let dev = dst.as_ref().unwrap().device("b").display().to_string();
    b.sh_ok(&format!("mkdir -p /var/tmp/x && mount {dev} /var/tmp/x"))
        .unwrap();
    let argv = migrate_argv(&[], &args);
    let out = a.run(&argv).unwrap();
    assert_eq!(out.exit_code(), 21, "{}", out.all());
    assert!(
        out.stderr.contains(&dev) && out.stderr.contains("mounted at /var/tmp/x"),
        "{}",
        out.all()
    );
    b.sh_ok("umount /var/tmp/x").unwrap();
    // not a block device
    let out = a
        .run(&["vzfs-migrate", "--dst-device", "/etc/hostname", "b", "101"])
        .unwrap();
    assert_eq!(out.exit_code(), 21, "{}", out.all());
    assert!(out.stderr.contains("/etc/hostname"), "{}", out.all());
    // the CT exists on the target
    b.write_file("/etc/vz/conf/101.conf", "OSTEMPLATE=x\n")
        .unwrap();
    let out = a.run(&argv).unwrap();
    assert_eq!(out.exit_code(), 9, "{}", out.all());
    std::fs::remove_file(b.path("/etc/vz/conf/101.conf")).unwrap();
    // an unknown host
    let out = a
        .run(&[
            "vzfs-migrate",
            "--ssh=-o ConnectTimeout=2",
            "10.255.255.1",
            "101",
        ])
        .unwrap();
    assert_eq!(out.exit_code(), 4, "{}", out.all());
    assert!(
        out.stderr.contains("cannot connect to 10.255.255.1"),
        "{}",
        out.all()
    );
    // a target without vzfs-migrate
    let out = a
        .run(
            &[
                &[
                    "vzfs-migrate",
                    "--remote-helper",
                    "/nonexistent/vzfs-migrate",
                ][..],
                &argv[1..],
            ]
            .concat(),
        )
        .unwrap();
    assert_eq!(out.exit_code(), 14, "{}", out.all());
    assert!(
        out.stderr.contains("install the same vzfs-migrate"),
        "{}",
        out.all()
    );
    assert_undone("refusals", &lab, &before, src.as_ref(), dst.as_ref());
    lab.teardown().unwrap();
}

/// The steps whose undo ran (and succeeded) in `err`, in order.
fn undone_steps(err: &str) -> Vec<String> {
    err.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("vzfs-migrate: undo ")?;
            l.ends_with("): ok")
                .then(|| rest.split_whitespace().next().unwrap().to_string())
        })
        .collect()
}

/// An undo that fails in the middle of the undo: for each step whose undo
/// runs when the step that starts the container on the target fails, make
/// that undo fail in turn. The undo goes on: the failed step is reported,
/// the undos that need it are skipped, the others run (a failed source
/// undo leaves the target clean); exit 23 names what is left and
/// `--recover`, which then finishes the undo completely.
fn undo_failure_matrix(kind: &str, state: &str) -> usize {
    let name = format!("migrate_undo_fails_{kind}_{state}");
    let Some(lab) = lab(&name) else { return 0 };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, dst) = setup(&lab, kind, state);
    let steps = plan_steps(a, &args);
    let last = steps.last().unwrap().clone();
    let before = snapshot(a, src.is_some() && state == "stopped");
    let argv = migrate_argv(&[], &args);
    let fail_at = format!("before:{last}=fail");
    let (code, err) = run_failpoints(a, &argv, &fail_at);
    assert_eq!(code, Some(25), "{kind}/{state} baseline: {err}");
    let undone = undone_steps(&err);
    assert!(
        undone.len() >= 2,
        "{kind}/{state}: too few undos to test: {err}"
    );
    assert_undone(
        &format!("{kind}/{state} baseline"),
        &lab,
        &before,
        src.as_ref(),
        dst.as_ref(),
    );
    for s in &undone {
        let ctx = format!("{kind}/{state} undo of {s} fails");
        let (code, err) = run_failpoints(a, &argv, &format!("{fail_at};undo:{s}=fail"));
        assert_eq!(code, Some(23), "{ctx}: {err}");
        assert!(
            err.contains(&format!("undo {s} (")) && err.contains("): FAILED: failpoint"),
            "{ctx}: {err}"
        );
        // every other owed undo ran or was skipped, none was forgotten
        for o in undone.iter().filter(|o| *o != s) {
            assert!(
                err.contains(&format!("undo {o} (")),
                "{ctx}: the undo of {o} was neither run nor reported skipped: {err}"
            );
        }
        assert!(
            err.contains(&format!("left undone: {s} on the "))
                && err.contains("vzfs-migrate --recover 101"),
            "{ctx}: {err}"
        );
        if s.contains("src") {
            assert!(
                err.contains("the target b holds nothing of this run"),
                "{ctx}: {err}"
            );
            assert!(
                !b.path("/etc/vz/conf/101.conf").exists(),
                "{ctx}: target config left"
            );
            assert!(
                !b.path("/vz/private/101").exists(),
                "{ctx}: target area left"
            );
        }
        recover(a);
        assert_undone(&ctx, &lab, &before, src.as_ref(), dst.as_ref());
    }
    lab.teardown().unwrap();
    undone.len()
}

macro_rules! undo_failure_tests {
    ($($name:ident: $kind:expr, $state:expr;)*) => {$(
        #[test]
        fn $name() {
            let n = undo_failure_matrix($kind, $state);
            eprintln!("undo failure matrix {} {}: {n} undos failed in turn", $kind, $state);
        }
    )*};
}

undo_failure_tests! {
    migrate_undo_fails_a_running: "a", "running";
    migrate_undo_fails_b_running: "b", "running";
    migrate_undo_fails_c_running: "c", "running";
    migrate_undo_fails_d1_mounted: "d1", "mounted";
    migrate_undo_fails_d2_running: "d2", "running";
    migrate_undo_fails_d2_mounted: "d2", "mounted";
}
