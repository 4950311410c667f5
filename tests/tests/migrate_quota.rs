//! End-to-end tests in the two-node lab (hosts `a` -> `b`) of three parts
//! of vzfs-migrate that stock vzmigrate users rely on: the container's
//! vzquota disk quota (`DISK_QUOTA` not `no`: `vzdqdump` on the source,
//! `vzdqload` on the target, exit 13 when that fails, with the lab's
//! vzquota double), progress of the copy on a terminal (and only there),
//! and retrying a failed `--keep-dst` migration over the data it kept.

mod common;
use common::*;
use vzfs_lab::{Disk, Host};

/// A 2nd-level quota (users' and groups' limits, grace and expiry times)
/// in vzdqdump's format, loaded into the source's quota file.
const UGID_DUMP: &str = "ugid_quota_status:\t1\n\
grace_time:\t0\t604800\t259200\n\
grace_time:\t1\t86400\t43200\n\
ugid_number:\t3\n\
ugid:\t0\t0\t5000\t6000\t500\t600\t0\t0\n\
ugid:\t1234\t0\t700\t800\t70\t80\t1700000000\t0\n\
ugid:\t99\t1\t900\t1000\t90\t100\t0\t0\n";

/// Turn the container's quota on the way vzctl would have it on a real
/// node: `DISK_QUOTA=yes`, a quota file with first-level limits, and a
/// 2nd-level quota inside it. Returns the source's full dump.
fn enable_quota(a: &Host) -> String {
    a.sh_ok(
        "echo 'DISK_QUOTA=yes' >> /etc/vz/conf/101.conf && \
         vzquota init 101 -b 1048576 -B 1153433 -i 200000 -I 220000 -e 3600 -n 7200 -p /vz/private/101",
    )
    .unwrap();
    let mut cmd = a.command(&["vzdqload", CT, "-U", "-G", "-T"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut w = child.stdin.take().unwrap();
        w.write_all(UGID_DUMP.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success(), "vzdqload on the source");
    let d = quota_dump(a).expect("source quota");
    assert!(d.contains("first_level_quota:\t1048576\t1153433\t200000\t220000\t3600\t7200"));
    assert!(
        d.contains("ugid:\t1234\t0\t700\t800\t70\t80\t1700000000\t0"),
        "{d}"
    );
    d
}

// ------------------------------------------------------------------ quota

/// Shared container, running: the quota step runs after the second copy
/// (the container stopped, its quota file final) and the target holds the
/// same first-level limits, users' and groups' limits, grace and expiry
/// times; the source keeps no quota file (the way back is open).
#[test]
fn quota_limits_arrive_on_target() {
    let Some(lab) = lab("quota_limits_arrive_on_target") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, _, _) = setup(&lab, "a", "running");
    let src = enable_quota(a);
    let out = a.run(&migrate_argv(&["-v"], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("step 6/8 quota:")
            && out.stderr.contains("exec vzdqdump 101 -U -G -T -F"),
        "{}",
        out.stderr
    );
    assert_eq!(status(b), expected_status("running"));
    assert_eq!(quota_dump(b).as_deref(), Some(src.as_str()), "target quota");
    assert_eq!(quota_dump(a), None, "the source kept its quota file");
    // and back, stopped: the quota goes with it again
    b.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    let out = b.run(&["vzfs-migrate", "a", CT]).unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(quota_dump(a).as_deref(), Some(src.as_str()), "back on a");
    assert_eq!(quota_dump(b), None);
    lab.teardown().unwrap();
}

/// An insulated container handed off on a SAN device (d2) still migrates
/// its quota: the quota file is the node's, not on the device.
#[test]
fn quota_follows_d2_handoff() {
    let Some(lab) = lab("quota_follows_d2_handoff") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, lun, _) = setup(&lab, "d2", "running");
    let lun: Disk = lun.unwrap();
    let src = enable_quota(a);
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(out.stderr.contains("step 3/7 quota:"), "{}", out.stderr);
    assert!(lun_mounted(b, &lun) && !lun_mounted(a, &lun));
    assert_eq!(quota_dump(b).as_deref(), Some(src.as_str()));
    assert_eq!(quota_dump(a), None);
    lab.teardown().unwrap();
}

/// Exit 13 (stock's MIG_ERR_QUOTA). On the source, a container whose quota
/// cannot be dumped is refused before anything changes. On the target, a
/// failing vzdqload (replaced on b by a script that fails as vzquota does
/// on a broken quota file) is named with the host and the command, and
/// every step is undone: the source as before, the target holds nothing,
/// its quota file included. With DISK_QUOTA=no nothing of the quota runs.
#[test]
fn quota_failure_exit_13_and_clean_undo() {
    let Some(lab) = lab("quota_failure_exit_13_and_clean_undo") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, _, _) = setup(&lab, "a", "running");
    // no quota file on the source: refused at the checks
    a.sh_ok("echo 'DISK_QUOTA=yes' >> /etc/vz/conf/101.conf")
        .unwrap();
    let before = snapshot_with_quota(a);
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert_eq!(out.exit_code(), 13, "{}", out.all());
    assert!(
        out.stderr
            .contains("source a: `vzdqdump 101 -U -G -T -F` failed (exit code 11)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("step 1/"),
        "a step ran: {}",
        out.stderr
    );
    assert_undone("no source quota", &lab, &before, None, None);
    a.sh_ok("sed -i '/^DISK_QUOTA=yes$/d' /etc/vz/conf/101.conf")
        .unwrap();

    // vzdqload fails on the target
    enable_quota(a);
    b.sh_ok(
        "rm /usr/local/sbin/vzdqload && \
         printf '#!/bin/sh\\necho \"vzquota : (error) quota file /var/vzquota/quota.101 is corrupted\" >&2\\nexit 4\\n' > /usr/local/sbin/vzdqload && \
         chmod 755 /usr/local/sbin/vzdqload",
    )
    .unwrap();
    let before = snapshot_with_quota(a);
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    let err = &out.stderr;
    assert_eq!(out.exit_code(), 13, "{}", out.all());
    assert!(
        err.contains("error: step quota: target b: helper quota-load 101: ")
            && err.contains("`vzdqload 101 -U -G -T -F` failed (exit code 4)")
            && err.contains("quota.101 is corrupted"),
        "{err}"
    );
    for step in [
        "quota",
        "sync-2",
        "stop-src",
        "sync-1",
        "prepare-dst",
        "copy-config",
    ] {
        // stricter than common::step_undone: each of these steps did
        // something, so "nothing to do" is not accepted here
        assert!(err.contains(&format!("undo {step} (")), "{step}: {err}");
    }
    assert!(!err.contains("FAILED"), "{err}");
    assert_undone("vzdqload fails", &lab, &before, None, None);

    // DISK_QUOTA=no: no quota step, the broken vzdqload is never called
    a.sh_ok("sed -i 's/^DISK_QUOTA=yes$/DISK_QUOTA=no/' /etc/vz/conf/101.conf")
        .unwrap();
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(!out.stderr.contains("quota"), "{}", out.stderr);
    assert_eq!(quota_dump(b), None);
    lab.teardown().unwrap();
}

// --------------------------------------------------------------- progress

/// rsync's progress lines (`--info=progress2`): `... 100% ... (xfr#N, to-chk=M/T)`.
fn has_progress(s: &str) -> bool {
    s.contains("to-chk=") || s.contains("xfr#")
}

/// Run `argv` on `h` under a pseudo-terminal (util-linux `script`): its
/// stdout is a terminal. Returns the exit code and everything written to
/// the terminal.
fn on_tty(h: &Host, argv: &[&str]) -> (i32, String) {
    let cmd = shlex::try_join(argv.iter().copied()).unwrap();
    let o = h.run(&["script", "-qfec", &cmd, "/dev/null"]).unwrap();
    (o.exit_code(), o.all())
}

/// Progress of the copy phases shows on a terminal, and never without one,
/// nor with `--no-progress` or `--json` on a terminal.
#[test]
fn progress_only_on_a_terminal() {
    let Some(lab) = lab("progress_only_on_a_terminal") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    setup(&lab, "a", "stopped");
    // on a terminal: progress lines
    let (code, text) = on_tty(a, &["vzfs-migrate", "b", CT]);
    assert_eq!(code, 0, "{text}");
    assert!(has_progress(&text), "no progress on a terminal: {text}");
    assert!(text.contains("to-chk=0/"), "{text}");
    // no terminal (stdout a pipe): none
    let out = b.run(&["vzfs-migrate", "a", CT]).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(
        !has_progress(&out.all()),
        "progress without a terminal: {}",
        out.all()
    );
    // a terminal, --no-progress: none
    let (code, text) = on_tty(a, &["vzfs-migrate", "--no-progress", "b", CT]);
    assert_eq!(code, 0, "{text}");
    assert!(!has_progress(&text), "progress with --no-progress: {text}");
    // a terminal, --json: none, and the JSON summary is intact
    let (code, text) = on_tty(b, &["vzfs-migrate", "--json", "a", CT]);
    assert_eq!(code, 0, "{text}");
    assert!(!has_progress(&text), "progress with --json: {text}");
    assert!(text.contains("\"result\":\"migrated\""), "{text}");
    assert_eq!(status(a), expected_status("stopped"));
    lab.teardown().unwrap();
}

// --------------------------------------------------------------- keep-dst

/// `--keep-dst`: a migration failing after the copy keeps the data and
/// marks it; a later migration of the same container from the same node
/// copies over it (rsync --delete: what changed on the source since, and
/// what it removed, are right) and then removes the marker. A target area
/// holding anything else (no marker, or a marker of another migration) is
/// still refused and left alone.
#[test]
fn keep_dst_retry_copies_over_kept_data() {
    let Some(lab) = lab("keep_dst_retry_copies_over_kept_data") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, _, _) = setup(&lab, "a", "stopped");
    let marker = "/vz/private/.vzfs-keep-dst.101";
    // foreign data, no marker: refused (exit 9), untouched
    b.sh_ok("mkdir -p /vz/private/101 && echo theirs > /vz/private/101/foreign")
        .unwrap();
    let out = a.run(&migrate_argv(&["--keep-dst"], &args)).unwrap();
    assert_eq!(out.exit_code(), 9, "{}", out.all());
    assert!(
        out.stderr.contains("/vz/private/101: is not empty"),
        "{}",
        out.stderr
    );
    assert_eq!(b.read_file("/vz/private/101/foreign").unwrap(), "theirs\n");
    b.sh_ok("rm -rf /vz/private/101").unwrap();

    // a failed --keep-dst run keeps the copy and marks it
    let (code, err) = run_failpoints(
        a,
        &migrate_argv(&["--keep-dst"], &args),
        "after:sync-1=fail",
    );
    assert_eq!(code, Some(25), "{err}");
    let kept = tree_sum(b, "/vz/private/101");
    assert_eq!(kept, tree_sum(a, "/vz/private/101"));
    let m = b.read_file(marker).expect("marker");
    assert!(
        m.contains("ctid=101\nsource=a\nsource_private=/vz/private/101\n"),
        "{m}"
    );

    // a marker of another source: refused, the kept data untouched
    b.write_file(marker, &m.replace("source=a", "source=x"))
        .unwrap();
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert_eq!(out.exit_code(), 9, "{}", out.all());
    assert_eq!(tree_sum(b, "/vz/private/101"), kept);
    b.write_file(marker, &m).unwrap();
    // the same marker, but the area was made again (another directory): refused
    b.sh_ok(
        "mv /vz/private/101 /vz/private/101.x && mkdir /vz/private/101 && \
             cp -a /vz/private/101.x/. /vz/private/101/ && rm -rf /vz/private/101.x",
    )
    .unwrap();
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert_eq!(out.exit_code(), 9, "{}", out.all());
    assert!(
        out.stderr
            .contains("records another migration or another area"),
        "{}",
        out.stderr
    );
    assert_eq!(tree_sum(b, "/vz/private/101"), kept);
    // mark the new area as a failed run would have
    b.sh_ok("rm -rf /vz/private/101 /vz/private/.vzfs-keep-dst.101")
        .unwrap();
    let (code, _) = run_failpoints(
        a,
        &migrate_argv(&["--keep-dst"], &args),
        "after:sync-1=fail",
    );
    assert_eq!(code, Some(25));
    assert!(b.path(marker).exists());

    // the source changes meanwhile; the retry copies over the kept data
    a.sh_ok("cd /vz/private/101 && rm data/a-link && echo new > data/new")
        .unwrap();
    let want = tree_sum(a, "/vz/private/101");
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(tree_sum(b, "/vz/private/101"), want, "retry result");
    assert!(!b.path("/vz/private/101/data/a-link").exists());
    assert!(!b.path(marker).exists(), "marker left after success");
    assert!(b.path("/etc/vz/conf/101.conf").exists());
    lab.teardown().unwrap();
}
