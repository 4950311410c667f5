//! More end-to-end tests of vzfs-migrate in the two-node lab (hosts `a` ->
//! `b`): signals during and outside the d2 handoff, the shared dump device
//! (`--dump-device` / `VE_DUMP_DEVICE`), the workload's sequence after an
//! online migration, the target IP check (exit 12), and the options
//! `-r/--remove-area`, `--keep-dst`, `-v` and `--json`.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use vzfs_lab::{Disk, Fs, Host};

/// A vzfs-migrate running in the background with its stderr read line by line.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stderr: String,
}

fn spawn(h: &Host, argv: &[&str], failpoints: &str) -> Running {
    let mut cmd = h.command(argv);
    cmd.env("VZFS_FAILPOINTS", failpoints)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines: rx,
        stderr: String::new(),
    }
}

impl Running {
    /// Wait until a stderr line contains `pat`.
    fn wait_line(&mut self, pat: &str) {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.stderr.push_str(&l);
                    self.stderr.push('\n');
                    if l.contains(pat) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line {pat:?} within 60 s; stderr so far:\n{}",
                        self.stderr
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("exited before a line {pat:?}; stderr:\n{}", self.stderr)
                }
            }
        }
    }

    /// Send `sig` to vzfs-migrate itself (nsenter exec'd it: same pid).
    fn signal(&self, sig: i32) {
        let pid = self.child.id();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_eq!(comm.trim(), "vzfs-migrate", "pid {pid} is not vzfs-migrate");
        // SAFETY: kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
    }

    /// Wait for the exit; the exit code (None: killed) and the whole stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let st = self.child.wait().unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.stderr.push_str(&l);
            self.stderr.push('\n');
        }
        (st.code(), self.stderr)
    }
}

/// After a d2 handoff from `from` to `to`: the config moved, the device is
/// mounted on `to` only, the container runs there.
fn assert_handed_off(ctx: &str, from: &Host, to: &Host, lun: &Disk) {
    assert_eq!(status(to), expected_status("running"), "{ctx}");
    assert!(
        !from.path("/etc/vz/conf/101.conf").exists(),
        "{ctx}: source config left"
    );
    assert!(
        from.path("/etc/vz/conf/101.conf.migrated").exists(),
        "{ctx}"
    );
    assert!(
        !lun_mounted(from, lun),
        "{ctx}: device still mounted on the source"
    );
    assert!(
        lun_mounted(to, lun),
        "{ctx}: device not mounted on the target"
    );
    assert!(
        !from.path("/vz/lock/101.migrate-journal").exists(),
        "{ctx}: journal left"
    );
}

/// The workload log on `h`: its sequence has no gap or repeat, and it goes
/// on (numbers keep coming). Returns the summary of the log.
fn workload_continues(ctx: &str, h: &Host) -> vzfs_lab::workload::LogSummary {
    let path = "/vz/root/101/var/log/lab-workload.log";
    let first = vzfs_lab::workload::check_log(&h.read_file(path).unwrap())
        .unwrap_or_else(|e| panic!("{ctx}: workload log: {e}"));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let log = h.read_file(path).unwrap();
        let s = vzfs_lab::workload::check_log(&log)
            .unwrap_or_else(|e| panic!("{ctx}: workload log: {e}\n{log}"));
        if s.numbers > first.numbers + 2 {
            return s;
        }
        assert!(
            Instant::now() < end,
            "{ctx}: the workload does not go on on {}:\n{log}",
            h.name()
        );
    }
}

// ---------------------------------------------------------------- signals

/// SIGTERM, then SIGINT (migrating back), while the device is between the
/// nodes (paused right after the source released it): both are deferred,
/// each migration completes, the device ends mounted on the target only.
#[test]
fn signal_deferred_during_d2_handoff() {
    let Some(lab) = lab("signal_deferred_during_d2_handoff") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, _) = setup(&lab, "d2", "running");
    let lun = src.unwrap();
    for (from, to, sig, name) in [
        (a, b, libc::SIGTERM, "SIGTERM"),
        (b, a, libc::SIGINT, "SIGINT"),
    ] {
        let ctx = format!("{name} during the handoff {} -> {}", from.name(), to.name());
        let args = [to.name().to_string(), CT.to_string()];
        let mut r = spawn(
            from,
            &migrate_argv(&[], &args),
            "after:src-device-umount=sleep(1500)",
        );
        r.wait_line("failpoint after:src-device-umount: sleeping");
        // between the nodes: mounted on neither, config on both
        assert!(!lun_mounted(from, &lun), "{ctx}");
        assert!(!lun_mounted(to, &lun), "{ctx}");
        assert!(to.path("/etc/vz/conf/101.conf").exists(), "{ctx}");
        r.signal(sig);
        let (code, err) = r.finish();
        assert_eq!(code, Some(0), "{ctx}: {err}");
        assert!(
            err.contains(&format!(
                "{name} received during the handoff; it was deferred and the migration completed"
            )),
            "{ctx}: {err}"
        );
        assert_handed_off(&ctx, from, to, &lun);
        let s = workload_continues(&ctx, to);
        // offline handoff: a new start on the target each time
        assert!(s.starts >= 2, "{ctx}: {s:?}");
    }
    drop(args);
    lab.teardown().unwrap();
}

/// A signal deferred during the handoff, and then a step fails: the undo
/// runs to its end (it is not interrupted either), the source is as it was.
#[test]
fn signal_during_handoff_then_failure_is_undone() {
    let Some(lab) = lab("signal_during_handoff_then_failure_is_undone") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, _) = setup(&lab, "d2", "running");
    let lun = src.unwrap();
    let before = snapshot(a, false);
    let mut r = spawn(
        a,
        &migrate_argv(&[], &args),
        "after:src-device-umount=sleep(1000);before:start-dst=fail",
    );
    r.wait_line("failpoint after:src-device-umount: sleeping");
    r.signal(libc::SIGINT);
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish();
    assert_eq!(code, Some(25), "{err}");
    assert!(
        err.contains("failpoint before:start-dst triggered"),
        "{err}"
    );
    // (vzctl stop already released the device through vzfs-hook's
    // postumount: src-device-umount found nothing to do and owes no undo)
    for step in [
        "dst-device-mount",
        "src-device-umount",
        "stop-src",
        "copy-config",
    ] {
        assert!(step_undone(&err, step), "{step} not undone: {err}");
    }
    assert!(!err.contains("FAILED"), "{err}");
    assert_undone("signal then failure", &lab, &before, Some(&lun), None);
    lab.teardown().unwrap();
}

/// Outside the handoff a signal interrupts: paused at the boundary right
/// before the device is released (after the stop), SIGTERM ends the
/// migration with exit 24 and a clean undo; the container runs on the
/// source again.
#[test]
fn signal_before_handoff_interrupts() {
    let Some(lab) = lab("signal_before_handoff_interrupts") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, _) = setup(&lab, "d2", "running");
    let lun = src.unwrap();
    let before = snapshot(a, false);
    let mut r = spawn(a, &migrate_argv(&[], &args), "after:stop-src=sleep(1000)");
    r.wait_line("failpoint after:stop-src: sleeping");
    r.signal(libc::SIGTERM);
    let (code, err) = r.finish();
    assert_eq!(code, Some(24), "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert!(err.contains("undo stop-src ("), "{err}");
    assert!(
        !err.contains("src-device-umount:"),
        "the handoff began: {err}"
    );
    assert!(!err.contains("FAILED"), "{err}");
    assert_undone(
        "SIGTERM before the handoff",
        &lab,
        &before,
        Some(&lun),
        None,
    );
    lab.teardown().unwrap();
}

/// A signal while a child runs outside the handoff (a slow rsync): the child
/// is stopped, the migration undone, exit 24 (not rsync's failure code).
#[test]
fn signal_during_copy_interrupts() {
    let Some(lab) = lab("signal_during_copy_interrupts") else {
        return;
    };
    let a = lab.host("a");
    let (args, _, _) = setup(&lab, "a", "running");
    let before = snapshot(a, false);
    // 200 kB of random data at 20 kB/s: about 10 s of copying
    let mut r = spawn(a, &migrate_argv(&["--rsync=--bwlimit=20"], &args), "");
    r.wait_line("sync-1: rsync");
    std::thread::sleep(Duration::from_millis(500));
    r.signal(libc::SIGINT);
    let (code, err) = r.finish();
    assert_eq!(code, Some(24), "{err}");
    // the running rsync was stopped (its ssh got SIGTERM), not waited for
    assert!(
        err.contains("step sync-1: interrupted by SIGINT ("),
        "{err}"
    );
    assert!(err.contains("rsync -aHAX"), "{err}");
    assert!(err.contains("undo sync-1 ("), "{err}");
    assert!(!err.contains("FAILED"), "{err}");
    assert_undone("SIGINT during the copy", &lab, &before, None, None);
    lab.teardown().unwrap();
}

// ------------------------------------------------------- shared dump device

/// The number of the last `# restore N` line of a workload log.
fn last_restore(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.strip_prefix("# restore "))
        .last()
        .unwrap_or_else(|| panic!("no restore in the log:\n{log}"))
        .parse()
        .unwrap()
}

/// `SEQ=` of the dump file `Dump.101` on the dump device, read by mounting
/// it read-only on `h` for a moment.
fn dump_seq_on_device(h: &Host, dump: &Disk) -> u64 {
    let dev = dump.device(h.name()).display().to_string();
    let out = h
        .sh_ok(&format!(
            "mkdir -p /var/tmp/dd && mount -o ro {dev} /var/tmp/dd && \
             cat /var/tmp/dd/Dump.101; r=$?; umount /var/tmp/dd; exit $r"
        ))
        .unwrap();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("SEQ="))
        .unwrap_or_else(|| panic!("no SEQ in the dump: {}", out.stdout))
        .parse()
        .unwrap()
}

fn assert_dump_through_device(ctx: &str, err: &str) {
    for s in [
        "dumpdev-mount-src",
        "dumpdev-umount-src",
        "dumpdev-mount-dst",
        "dumpdev-umount-dst",
    ] {
        assert!(
            err.contains(&format!(" {s}: ")),
            "{ctx}: no step {s}: {err}"
        );
    }
    assert!(
        !err.contains("copy-dump"),
        "{ctx}: the dump was copied: {err}"
    );
    // -v logs every command line: nothing went through rsync
    assert!(err.contains("exec ssh"), "{ctx}: -v did not log: {err}");
    assert!(!err.contains("exec rsync"), "{ctx}: rsync ran: {err}");
}

/// After a successful `vzfs-migrate -v --online` of the d2 container on
/// `lun` from `from` to `to` with the dump on `dump`: the dump went through
/// the device, the container was handed off and restored (its `restores`-th
/// restore, still one cold start), neither host holds the dump device or a
/// dump file. Returns the workload log on `to`.
fn assert_online_through_dump_device(
    ctx: &str,
    out: &vzfs_lab::Output,
    from: &Host,
    to: &Host,
    lun: &Disk,
    dump: &Disk,
    restores: usize,
) -> String {
    assert!(out.success(), "{}", out.all());
    assert_dump_through_device(ctx, &out.stderr);
    assert_handed_off(ctx, from, to, lun);
    let s = workload_continues(ctx, to);
    assert_eq!(
        (s.starts, s.restores),
        (1, restores),
        "{ctx}: not a restore: {s:?}"
    );
    let log = to
        .read_file("/vz/root/101/var/log/lab-workload.log")
        .unwrap();
    for h in [from, to] {
        assert!(
            !lun_mounted(h, dump),
            "dump device left mounted on {}",
            h.name()
        );
        assert!(
            !h.path("/vz/dump/Dump.101").exists(),
            "dump file on {}",
            h.name()
        );
    }
    log
}

/// d2 online with a shared dump device: `--dump-device` from a to b, then
/// back with `VE_DUMP_DEVICE` from the config. The dump goes through the
/// device (the restored number is the one in the device's dump file, no
/// rsync, no copy step), the workload resumes without a gap, and neither
/// the dump device nor a dump file is left anywhere.
#[test]
fn dump_device_online_d2() {
    let Some(lab) = lab("dump_device_online_d2") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (_, src, _) = setup(&lab, "d2", "running");
    let lun = src.unwrap();
    let dump = lab.add_lun("dump", &["a", "b"], Fs::Ext4).unwrap();
    let spec = dump.by_id_path().display().to_string();
    std::thread::sleep(Duration::from_millis(200));

    // a -> b with --dump-device
    let out = migrate(a, &["-v", "--online", "--dump-device", &spec, "b", CT]);
    let log = assert_online_through_dump_device("a -> b", &out, a, b, &lun, &dump, 1);
    // (the target's mount point of the dump device: checked on the first
    // pass only, as before this helper existed)
    assert!(!b.path("/vz/dump/vzfs-dumpdev.101").exists());
    assert_eq!(dump_seq_on_device(a, &dump), last_restore(&log));

    // b -> a with VE_DUMP_DEVICE in the config
    b.sh_ok(&format!(
        "echo 'VE_DUMP_DEVICE=\"{spec}\"' >> /etc/vz/conf/101.conf"
    ))
    .unwrap();
    let out = migrate(b, &["-v", "--online", "a", CT]);
    let log = assert_online_through_dump_device("b -> a", &out, b, a, &lun, &dump, 2);
    assert_eq!(dump_seq_on_device(b, &dump), last_restore(&log));
    a.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    lab.teardown().unwrap();
}

// ------------------------------------------ online: the workload goes on

/// `--online` of a running container: the workload is restored on the
/// target (one restore, no new start) and its sequence continues there
/// without a gap; it no longer runs on the source; no dump file is left.
fn online(kind: &str) {
    let name = format!("online_{kind}_workload_continues");
    let Some(lab) = lab(&name) else { return };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, _) = setup(&lab, kind, "running");
    std::thread::sleep(Duration::from_millis(200));
    // the workload writes on between the first copy and the checkpoint
    // (a lost second copy would show as lost state)
    let (code, err) = run_failpoints(
        a,
        &migrate_argv(&["--online"], &args),
        "after:sync-1=sleep(300)",
    );
    assert_eq!(code, Some(0), "{kind}: {err}");
    assert_eq!(status(b), expected_status("running"), "{kind}");
    assert!(!a.path("/etc/vz/conf/101.conf").exists(), "{kind}");
    assert!(
        !a.path("/run/vzctl-double/101.pid").exists(),
        "{kind}: still runs on a"
    );
    let s = workload_continues(kind, b);
    assert_eq!(
        (s.starts, s.restores),
        (1, 1),
        "{kind}: not a restore: {s:?}"
    );
    let log = b
        .read_file("/vz/root/101/var/log/lab-workload.log")
        .unwrap();
    assert!(last_restore(&log) > 0, "{kind}: {log}");
    for h in [a, b] {
        assert!(
            !h.path("/vz/dump/Dump.101").exists(),
            "{kind}: dump file on {}",
            h.name()
        );
    }
    if let Some(l) = &src {
        assert!(!lun_mounted(a, l), "{kind}: source device still mounted");
    }
    b.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    lab.teardown().unwrap();
}

#[test]
fn online_a_workload_continues() {
    online("a");
}
#[test]
fn online_b_workload_continues() {
    online("b");
}
#[test]
fn online_c_workload_continues() {
    online("c");
}
#[test]
fn online_d1_workload_continues() {
    online("d1");
}
#[test]
fn online_d2_workload_continues() {
    online("d2");
}

// ------------------------------------------------------------- options

/// `-r no` keeps a shared source private area after a successful migration;
/// the default (`-r yes`) removes it.
#[test]
fn remove_area_shared() {
    let Some(lab) = lab("remove_area_shared") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, _, _) = setup(&lab, "a", "stopped");
    let before = tree_sum(a, "/vz/private/101");
    let out = a.run(&migrate_argv(&["-r", "no"], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(tree_sum(b, "/vz/private/101"), before, "copy differs");
    assert!(a.path("/etc/vz/conf/101.conf.migrated").exists());
    assert_eq!(
        tree_sum(a, "/vz/private/101"),
        before,
        "-r no: the source private area was not kept"
    );
    // the default: removed; migrate it back to a (whose private area we
    // first move out of the way), then once more to b
    a.sh_ok("mv /vz/private/101 /var/tmp/kept && rm /etc/vz/conf/101.conf.migrated")
        .unwrap();
    let out = b.run(&["vzfs-migrate", "a", CT]).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(
        !b.path("/vz/private/101").exists(),
        "-r yes: source private area left on b"
    );
    assert_eq!(tree_sum(a, "/vz/private/101"), before);
    lab.teardown().unwrap();
}

/// `-r yes` never deletes data on a device: after insulated -> shared (c)
/// the source device still holds every file.
#[test]
fn remove_area_keeps_device_data() {
    let Some(lab) = lab("remove_area_keeps_device_data") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, _) = setup(&lab, "c", "stopped");
    let src = src.unwrap();
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    let before = tree_sum(a, "/vz/private/101");
    a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    let out = a.run(&migrate_argv(&["-r", "yes"], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(!lun_mounted(a, &src));
    let dev = src.device("a").display().to_string();
    a.sh_ok(&format!("mkdir -p /var/tmp/s && mount {dev} /var/tmp/s"))
        .unwrap();
    let after = tree_sum(a, "/var/tmp/s");
    a.sh_ok("umount /var/tmp/s").unwrap();
    assert_eq!(
        after, before,
        "-r yes touched the data on the source device"
    );
    lab.teardown().unwrap();
}

/// `--keep-dst`: a migration that fails after the copy keeps the copied
/// data on the target (and only that: no config); without it the same
/// failure leaves nothing there.
#[test]
fn keep_dst_keeps_copied_data() {
    let Some(lab) = lab("keep_dst_keeps_copied_data") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, _, _) = setup(&lab, "a", "stopped");
    let before = snapshot(a, false);
    let (code, err) = run_failpoints(
        a,
        &migrate_argv(&["--keep-dst"], &args),
        "after:sync-1=fail",
    );
    assert_eq!(code, Some(25), "{err}");
    assert!(
        err.contains("undo sync-1 (keep the copied data (--keep-dst)): ok"),
        "{err}"
    );
    assert_eq!(
        tree_sum(b, "/vz/private/101"),
        before.sum,
        "--keep-dst: the copied data was not kept"
    );
    assert!(
        !b.path("/etc/vz/conf/101.conf").exists(),
        "target config left"
    );
    let now = snapshot(a, false);
    assert_eq!(
        (now.status, now.conf, now.sum),
        (
            before.status.clone(),
            before.conf.clone(),
            before.sum.clone()
        )
    );
    assert!(!a.path("/vz/lock/101.migrate-journal").exists());
    // the same failure without --keep-dst removes the copy
    b.sh_ok("rm -rf /vz/private/101").unwrap();
    let (code, _) = run_failpoints(a, &migrate_argv(&[], &args), "after:sync-1=fail");
    assert_eq!(code, Some(25));
    assert!(
        !b.path("/vz/private/101").exists(),
        "copy left without --keep-dst"
    );
    lab.teardown().unwrap();
}

/// `-v` logs every command line (ssh with BatchMode, the helper calls, vzctl
/// with --skiplock, rsync with stock vzmigrate's options); without it, none.
#[test]
fn verbose_logs_command_lines() {
    let Some(lab) = lab("verbose_logs_command_lines") else {
        return;
    };
    let a = lab.host("a");
    let (args, _, _) = setup(&lab, "a", "running");
    let quiet = a.run(&migrate_argv(&["--check-only"], &args)).unwrap();
    assert!(quiet.success(), "{}", quiet.all());
    assert!(!quiet.stderr.contains("exec "), "{}", quiet.stderr);
    let out = a.run(&migrate_argv(&["-v"], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    let e = &out.stderr;
    for want in [
        "exec ssh -M -N -f -o BatchMode=yes",
        "helper version",
        "helper facts 101",
        "exec vzctl --skiplock status 101",
        "exec vzctl --skiplock stop 101",
        "exec rsync -aHAX --numeric-ids --sparse --delete",
        "vzctl start 101",
    ] {
        assert!(e.contains(want), "-v did not log {want:?}: {e}");
    }
    lab.teardown().unwrap();
}

/// `--json`: stdout is one JSON summary (parsed here) for a check, a failed
/// and undone run, and a migration; its exit code is the process's.
#[test]
fn json_summary() {
    let Some(lab) = lab("json_summary") else {
        return;
    };
    let a = lab.host("a");
    let (args, _, _) = setup(&lab, "a", "stopped");
    let parse = |stdout: &[u8]| -> serde_json::Value {
        let text = String::from_utf8_lossy(stdout);
        assert_eq!(text.trim().lines().count(), 1, "not one JSON line: {text}");
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let names = |v: &serde_json::Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} array: {v}"))
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    // check only
    let out = a
        .command(&migrate_argv(&["--json", "--check-only"], &args))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = parse(&out.stdout);
    assert_eq!(v["result"], "checked", "{v}");
    assert_eq!(
        (v["ctid"].as_u64(), v["target"].as_str()),
        (Some(101), Some("b"))
    );
    assert_eq!(
        (v["scenario"].as_str(), v["state"].as_str()),
        (Some("a"), Some("stopped"))
    );
    assert!(v["plan"].as_str().unwrap().contains("sync-1"), "{v}");
    assert_eq!(v["exit_code"], 0);
    // failed and undone
    let mut cmd = a.command(&migrate_argv(&["--json"], &args));
    cmd.env("VZFS_FAILPOINTS", "after:sync-1=fail");
    let out = cmd.output().unwrap();
    let v = parse(&out.stdout);
    assert_eq!(out.status.code(), Some(25));
    assert_eq!(v["exit_code"], 25, "{v}");
    assert_eq!(v["result"], "undone", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("failpoint after:sync-1 triggered"),
        "{v}"
    );
    assert_eq!(
        names(&v, "undo"),
        ["sync-1", "prepare-dst", "copy-config"],
        "{v}"
    );
    assert!(
        v["undo"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["ok"] == true),
        "{v}"
    );
    // migrated
    let out = a
        .command(&migrate_argv(&["--json"], &args))
        .output()
        .unwrap();
    let v = parse(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["result"], "migrated", "{v}");
    assert_eq!(v["exit_code"], 0);
    assert!(v["error"].is_null(), "{v}");
    assert_eq!(
        names(&v, "steps"),
        ["copy-config", "prepare-dst", "sync-1", "finish-src"],
        "{v}"
    );
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "done"));
    assert!(v["undo"].as_array().unwrap().is_empty());
    assert!(v["total_seconds"].as_f64().unwrap() > 0.0);
    lab.teardown().unwrap();
}

// ------------------------------------------------------ IP in use: exit 12

/// Stock vzmigrate's exit 12: an address of the container's IP_ADDRESS is
/// configured on a target interface, or another container on the target
/// has it in its config. Nothing changes; with the address free it migrates.
#[test]
fn ip_in_use_on_target_exit_12() {
    let Some(lab) = lab("ip_in_use_on_target_exit_12") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, _, _) = setup(&lab, "a", "stopped");
    let untouched = |ctx: &str| {
        assert!(
            !b.path("/etc/vz/conf/101.conf").exists(),
            "{ctx}: target config"
        );
        assert!(
            !b.path("/vz/private/101").exists(),
            "{ctx}: target private area"
        );
        assert!(
            a.path("/etc/vz/conf/101.conf").exists(),
            "{ctx}: source config"
        );
        assert!(
            !a.path("/vz/lock/101.migrate-journal").exists(),
            "{ctx}: journal"
        );
    };
    let set_ip = |ip: &str| {
        a.sh_ok(&format!(
            "sed -i '/^IP_ADDRESS=/d' /etc/vz/conf/101.conf && \
             echo 'IP_ADDRESS=\"{ip}\"' >> /etc/vz/conf/101.conf"
        ))
        .unwrap();
    };
    // the target's own address
    let bip = b.ip().to_string();
    set_ip(&format!("10.200.1.4 {bip}/24"));
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert_eq!(out.exit_code(), 12, "{}", out.all());
    assert!(
        out.stderr.contains("target b")
            && out
                .stderr
                .contains(&format!("{bip} (configured on interface")),
        "{}",
        out.all()
    );
    untouched("interface address");
    // another container's address on the target
    set_ip("10.200.1.5");
    b.write_file(
        "/etc/vz/conf/202.conf",
        "IP_ADDRESS=\"10.200.1.9 10.200.1.5\"\n",
    )
    .unwrap();
    let out = a.run(&migrate_argv(&["--check-only"], &args)).unwrap();
    assert_eq!(out.exit_code(), 12, "{}", out.all());
    assert!(
        out.stderr
            .contains("10.200.1.5 (IP_ADDRESS of CT 202 in /etc/vz/conf/202.conf)"),
        "{}",
        out.all()
    );
    untouched("other container");
    // free: it migrates, the address goes with the config
    std::fs::remove_file(b.path("/etc/vz/conf/202.conf")).unwrap();
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(b
        .read_file("/etc/vz/conf/101.conf")
        .unwrap()
        .contains("IP_ADDRESS=\"10.200.1.5\""));
    lab.teardown().unwrap();
}
