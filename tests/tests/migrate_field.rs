//! What the field trial of vzfs-migrate found (issue 8), in the two-node
//! lab (`a` -> `b`): refusals before the first change (a copy of the
//! container's mount held in another mount namespace on the source, a
//! target without vzfs-hook, ext4 without MMP on a shared LUN, a config
//! error as vzfs-hook's exit 2), an undo that fails in the middle and goes
//! on with what does not depend on it, and no ssh process left after a
//! kill -9 and `--recover`.

mod common;
use common::*;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use vzfs_lab::{Fs, Host, Lab};

/// A process on a host, killed when dropped (also when the test panics).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep` in a new mount namespace of host `h` that holds a private copy
/// of every mount of `h` (so the container's device too).
fn hold_mounts_in_new_ns(h: &Host) -> Proc {
    sleep_in_new_ns(h, "private")
}

/// `sleep` in a new mount namespace of `h` whose copies of `h`'s mounts
/// have propagation `propagation` (`private`, `slave`).
fn sleep_in_new_ns(h: &Host, propagation: &str) -> Proc {
    let child = h
        .command(&[
            "unshare",
            "--mount",
            "--propagation",
            propagation,
            "sleep",
            "600",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let p = Proc(child);
    let host_ns = std::fs::read_link(format!("/proc/{}/ns/mnt", h.pid())).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        if comm.trim() == "sleep" && ns.is_some() && ns.as_ref() != Some(&host_ns) {
            return p;
        }
        assert!(
            Instant::now() < end,
            "unshare did not start sleep in a new namespace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every process on `h` whose command is one of `names`.
fn procs_named(h: &Host, names: &[&str]) -> Vec<(u32, String)> {
    h.processes()
        .into_iter()
        .filter_map(|pid| {
            let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let c = c.trim().to_string();
            names.contains(&c.as_str()).then_some((pid, c))
        })
        .collect()
}

/// The target holds nothing of the container (config, scripts, areas).
fn target_clean(ctx: &str, b: &Host) {
    for p in [
        "/etc/vz/conf/101.conf",
        "/vz/private/101",
        "/vz/root/101",
        "/vz/dump/Dump.101",
    ] {
        assert!(!b.path(p).exists(), "{ctx}: {p} left on the target");
    }
}

#[test]
fn mount_held_in_another_namespace_is_refused_up_front() {
    let Some(lab) = lab("mount_held_in_another_namespace_is_refused_up_front") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, dst) = setup(&lab, "d2", "mounted");
    let before = snapshot(a, false);
    let holder = hold_mounts_in_new_ns(a);
    let pid = holder.0.id();
    let argv = migrate_argv(&[], &args);
    for check_only in [true, false] {
        let out = if check_only {
            a.run(&migrate_argv(&["--check-only"], &args)).unwrap()
        } else {
            a.run(&argv).unwrap()
        };
        let ctx = format!("check_only={check_only}");
        assert_eq!(out.exit_code(), 21, "{ctx}: {}", out.all());
        assert!(
            out.stderr.contains(&format!("pid {pid} (sleep)"))
                && out.stderr.contains("mount namespace mnt:["),
            "{ctx}: the holder is not named: {}",
            out.all()
        );
        assert!(
            !out.stderr.contains("step 1/"),
            "{ctx}: a step ran: {}",
            out.all()
        );
        assert_undone(&ctx, &lab, &before, src.as_ref(), dst.as_ref());
    }
    // released: the same migration goes through
    drop(holder);
    let out = a.run(&argv).unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(status(lab.host("b")), expected_status("mounted"));
    lab.teardown().unwrap();
}

/// A copy of the mount in another namespace that is a slave of the
/// container's own mount goes away with the unmount (propagation): not a
/// reason to refuse, and nothing of the LUN is left in that namespace.
#[test]
fn slave_copy_of_the_mount_does_not_block() {
    let Some(lab) = lab("slave_copy_of_the_mount_does_not_block") else {
        return;
    };
    let a = lab.host("a");
    let (args, src, _) = setup(&lab, "d2", "stopped");
    a.sh_ok("mount --make-shared /vz").unwrap();
    set_state(a, "mounted");
    let slave = sleep_in_new_ns(a, "slave");
    let pid = slave.0.id();
    let lun = src.as_ref().unwrap();
    let dev = lun.dev_num("a").unwrap().to_string();
    let held = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/mountinfo"))
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(2) == Some(dev.as_str()))
    };
    assert!(held(pid), "the slave namespace has no copy of the mount");
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(
        !held(pid),
        "the copy in the slave namespace outlived the unmount"
    );
    assert_eq!(status(lab.host("b")), expected_status("mounted"));
    drop(slave);
    lab.teardown().unwrap();
}

#[test]
fn target_without_hook_is_refused_exit_14() {
    let Some(lab) = lab("target_without_hook_is_refused_exit_14") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, dst) = setup(&lab, "d2", "running");
    let before = snapshot(a, false);
    b.sh_ok("rm /etc/vz/conf/vps.premount /etc/vz/conf/vps.postumount")
        .unwrap();
    for head in [&["--check-only"][..], &[]] {
        let out = a.run(&migrate_argv(head, &args)).unwrap();
        assert_eq!(out.exit_code(), 14, "{head:?}: {}", out.all());
        assert!(
            out.stderr.contains("vps.premount")
                && out
                    .stderr
                    .contains("ln -s /usr/sbin/vzfs-hook /etc/vz/conf/vps.premount"),
            "{head:?}: does not say how to install the hook: {}",
            out.all()
        );
        assert_undone("no hook", &lab, &before, src.as_ref(), dst.as_ref());
    }
    // another program as vps.premount is not the hook either
    b.sh_ok(
        "printf '#!/bin/sh\\nexit 0\\n' > /etc/vz/conf/vps.premount && chmod 755 /etc/vz/conf/vps.premount && \
         ln -s /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.postumount",
    )
    .unwrap();
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert_eq!(out.exit_code(), 14, "{}", out.all());
    assert!(
        out.stderr
            .contains("/etc/vz/conf/vps.premount is not vzfs-hook"),
        "{}",
        out.all()
    );
    assert_undone("other premount", &lab, &before, src.as_ref(), dst.as_ref());
    // installed (premount as a copy of the binary, postumount a symlink):
    // it goes through, and the target runs the container on its device
    b.sh_ok(
        "cp /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.premount && \
         ln -sfn /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.postumount",
    )
    .unwrap();
    let out = a.run(&migrate_argv(&[], &args)).unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(status(b), expected_status("running"));
    assert!(lun_mounted(b, src.as_ref().unwrap()));
    lab.teardown().unwrap();
}

/// An undo made to fail in the middle: the undos that do not need it run
/// (the target is cleaned), the ones that do are skipped, the message
/// names what is left and `--recover`, exit 23; `--recover` finishes.
#[test]
fn undo_failing_in_the_middle_goes_on() {
    let Some(lab) = lab("undo_failing_in_the_middle_goes_on") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, dst) = setup(&lab, "c", "running");
    let before = snapshot(a, false);
    let argv = migrate_argv(&[], &args);
    let (code, err) = run_failpoints(a, &argv, "after:sync-2=fail;undo:src-device-mount=fail");
    assert_eq!(code, Some(23), "{err}");
    for line in [
        "undo src-device-mount (unmount the source device again): FAILED",
        "undo stop-src (vzctl start on the source): skipped: it needs the undo of src-device-mount",
        "undo sync-1 (remove the copied data on the target): ok",
        "undo prepare-dst (unmount the target device / remove the target VE_PRIVATE): ok",
        "undo copy-config (remove the config and scripts from the target): ok",
    ] {
        assert!(err.contains(line), "missing {line:?} in {err}");
    }
    assert!(
        err.contains("left undone: src-device-mount on the source")
            && err.contains("stop-src on the source (vzctl start on the source; skipped)")
            && err.contains("the target b holds nothing of this run")
            && err.contains("vzfs-migrate --recover 101"),
        "{err}"
    );
    target_clean("after the incomplete undo", b);
    assert!(a.path("/vz/lock/101.migrate-journal").exists());
    let rec = recover(a);
    assert!(
        rec.stderr.contains("undo src-device-mount (") && rec.stderr.contains("undo stop-src ("),
        "{}",
        rec.all()
    );
    assert_undone("recover", &lab, &before, src.as_ref(), dst.as_ref());
    lab.teardown().unwrap();
}

/// A handoff whose target undo fails: the source must not mount the shared
/// device again (its undos are skipped), the target's other undos wait too;
/// `--recover` finishes.
#[test]
fn handoff_target_undo_failing_keeps_source_off_the_lun() {
    let Some(lab) = lab("handoff_target_undo_failing_keeps_source_off_the_lun") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, dst) = setup(&lab, "d2", "running");
    let before = snapshot(a, false);
    let argv = migrate_argv(&[], &args);
    let (code, err) = run_failpoints(a, &argv, "before:start-dst=fail;undo:dst-device-mount=fail");
    assert_eq!(code, Some(23), "{err}");
    assert!(
        err.contains(
            "undo dst-device-mount (unmount the device on the target, confirm released): FAILED"
        ),
        "{err}"
    );
    assert!(err.contains("undo stop-src (vzctl start on the source): skipped: it needs the undo of dst-device-mount"), "{err}");
    assert!(
        err.contains("undo copy-config (remove the config and scripts from the target): skipped"),
        "{err}"
    );
    assert!(err.contains("the target b still holds"), "{err}");
    let lun = src.as_ref().unwrap();
    assert!(
        !lun_mounted(a, lun),
        "the source mounted the LUN the target holds"
    );
    assert!(lun_mounted(b, lun));
    recover(a);
    assert_undone("recover", &lab, &before, src.as_ref(), dst.as_ref());
    lab.teardown().unwrap();
}

/// kill -9 of vzfs-migrate leaves its ssh master connection (bounded by
/// ControlPersist); `--recover` closes it: no ssh process on the source,
/// no sshd session on the target.
#[test]
fn recover_after_kill_leaves_no_ssh() {
    let Some(lab) = lab("recover_after_kill_leaves_no_ssh") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, dst) = setup(&lab, "d2", "running");
    let before = snapshot(a, false);
    let sshd_before = procs_named(b, &["sshd", "sshd-session"]);
    let argv = migrate_argv(&[], &args);
    let (code, err) = run_failpoints(a, &argv, "after:dst-device-mount=crash");
    assert_eq!(code, None, "expected death by SIGKILL: {err}");
    // the master outlives the killed run (this test would prove nothing otherwise)
    assert!(
        !procs_named(a, &["ssh"]).is_empty(),
        "no ssh master left after kill -9"
    );
    let rec = recover(a);
    assert!(
        rec.stderr.contains("closed the ssh master connection"),
        "{}",
        rec.all()
    );
    // ssh -O exit returns before the master is gone: give it a moment
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left_a = procs_named(a, &["ssh"]);
        let left_b = procs_named(b, &["sshd", "sshd-session"]);
        if left_a.is_empty() && left_b.len() == sshd_before.len() {
            break;
        }
        assert!(
            Instant::now() < end,
            "ssh processes left: source {left_a:?}, target {left_b:?} (before: {sshd_before:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        std::fs::read_dir(a.path("/run/vzfs-migrate"))
            .map(|rd| rd.count())
            .unwrap_or(0)
            == 0,
        "ssh control directory left"
    );
    assert_undone(
        "recover after kill",
        &lab,
        &before,
        src.as_ref(),
        dst.as_ref(),
    );
    lab.teardown().unwrap();
}

/// A stopped insulated container on a LUN of type `fs` presented to both.
fn san_ct(lab: &Lab, fs: Fs) -> vzfs_lab::Disk {
    let s = lab.add_lun("san", &["a", "b"], fs).unwrap();
    create_insulated(lab.host("a"), &s);
    s
}

#[test]
fn d2_ext4_without_mmp_refused_unless_accepted() {
    let Some(lab) = lab("d2_ext4_without_mmp_refused_unless_accepted") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let lun = san_ct(&lab, Fs::Ext4);
    let before = snapshot(a, true);
    let out = migrate(a, &["b", CT]);
    assert_eq!(out.exit_code(), 21, "{}", out.all());
    assert!(
        out.stderr.contains("no multi-mount protection")
            && out.stderr.contains("tune2fs -O mmp")
            && out.stderr.contains("--accept-no-mmp"),
        "{}",
        out.all()
    );
    assert_undone("no mmp", &lab, &before, Some(&lun), None);
    // accepted; the kernel name given for the target becomes the UUID
    let bdev = lun.device("b").display().to_string();
    let out = migrate(a, &["--accept-no-mmp", "--dst-device", &bdev, "b", CT]);
    assert!(out.success(), "{}", out.all());
    assert!(out.stderr.contains("warning:"), "{}", out.all());
    let conf = b.read_file("/etc/vz/conf/101.conf").unwrap();
    assert!(
        conf.contains(&format!(
            "VE_DEVICE=\"UUID={}\"",
            lun.uuid.as_deref().unwrap()
        )),
        "{conf}"
    );
    assert!(!conf.contains(&bdev), "{conf}");
    assert!(
        out.stderr.contains(&format!(
            "VE_DEVICE=UUID={} (the filesystem UUID instead of the kernel name {bdev}",
            lun.uuid.as_deref().unwrap()
        )),
        "{}",
        out.all()
    );
    assert_eq!(status(b), expected_status("stopped"));
    lab.teardown().unwrap();
}

#[test]
fn d2_xfs_warns() {
    let Some(lab) = lab("d2_xfs_warns") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let _lun = san_ct(&lab, Fs::Xfs);
    set_state(a, "mounted");
    let out = migrate(a, &["b", CT]);
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("xfs has no multi-mount protection"),
        "{}",
        out.all()
    );
    assert_eq!(status(b), expected_status("mounted"));
    lab.teardown().unwrap();
}

/// Shell code in VE_PRIVATE is a configuration error: exit 2, as vzfs-hook.
#[test]
fn config_error_exits_2() {
    let Some(lab) = lab("config_error_exits_2") else {
        return;
    };
    let a = lab.host("a");
    create_shared(a);
    a.sh_ok("sed -i '1i VE_PRIVATE=\"/vz/private/$(reboot)\"' /etc/vz/conf/101.conf")
        .unwrap();
    let out = migrate(a, &["b", CT]);
    assert_eq!(out.exit_code(), 2, "{}", out.all());
    assert!(out.stderr.contains("VE_PRIVATE"), "{}", out.all());
    assert!(!lab.host("b").path("/etc/vz/conf/101.conf").exists());
    lab.teardown().unwrap();
}

/// `-t` and `--json` of an online migration give the freeze breakdown
/// (suspend+dump, dump transfer, second rsync, undump+resume, frozen
/// total), with the dump of the size `VZFS_LAB_DUMP_SIZE` asks the double
/// for; through a dump device and copied over ssh. (Values are not
/// compared with any time: only that they are there and add up.)
#[test]
fn online_freeze_breakdown() {
    let Some(lab) = lab("online_freeze_breakdown") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (_, _src, _) = setup(&lab, "d2", "running");
    let dump = lab.add_lun("dump", &["a", "b"], Fs::Ext4Mmp).unwrap();
    let spec = dump.by_id_path().display().to_string();
    for h in [a, b] {
        h.sh_ok("sed -i '1i VZFS_LAB_DUMP_SIZE=\"4M\"' /etc/vz/conf/101.conf || true")
            .unwrap();
    }
    for (from, to, transfer, extra) in [
        (a, "b", "device", vec!["--dump-device", spec.as_str()]),
        (b, "a", "copy", vec![]),
    ] {
        let mut args = vec!["-t", "--json", "--online"];
        args.extend(extra.iter().copied());
        args.extend([to, CT]);
        let out = migrate(from, &args);
        assert!(out.success(), "{}", out.all());
        for l in [
            "online freeze (dump 4.0 MiB):",
            "suspend+dump",
            &format!("dump transfer ({transfer})"),
            "second rsync",
            "undump+resume",
            "frozen total",
        ] {
            assert!(
                out.stderr.contains(l),
                "{transfer}: missing {l:?}: {}",
                out.stderr
            );
        }
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let f = &v["freeze"];
        assert_eq!(f["dump_transfer"], transfer, "{v}");
        assert_eq!(f["dump_bytes"], 4u64 << 20, "{v}");
        let part = |k: &str| f[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
        let sum = part("suspend_dump_seconds")
            + part("dump_transfer_seconds")
            + part("second_rsync_seconds")
            + part("undump_resume_seconds")
            + part("other_seconds");
        assert!(part("frozen_seconds") > 0.0, "{v}");
        assert!(
            (sum - part("frozen_seconds")).abs() < 1e-6,
            "parts do not add up: {v}"
        );
    }
    lab.teardown().unwrap();
}

/// Checkpoint support is checked on both nodes before any change; a
/// container stopped with a dump (`suspended`) moves with its dump and is
/// restored on the target.
#[test]
fn suspended_container_moves_with_its_dump() {
    let Some(lab) = lab("suspended_container_moves_with_its_dump") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (_, src, dst) = setup(&lab, "d2", "running");
    // no checkpointing on the source: --online refused (8), nothing changed
    let before = snapshot(a, false);
    a.sh_ok(&format!("rm {}/cpt", vzfs_lab::lab::LAB_CPT_DIR))
        .unwrap();
    let out = migrate(a, &["--online", "b", CT]);
    assert_eq!(out.exit_code(), 8, "{}", out.all());
    assert!(out.stderr.contains("cannot checkpoint"), "{}", out.all());
    assert_undone("no cpt", &lab, &before, src.as_ref(), dst.as_ref());
    a.sh_ok(&format!("touch {}/cpt", vzfs_lab::lab::LAB_CPT_DIR))
        .unwrap();

    a.vzctl(&["chkpnt", CT]).unwrap().ok().unwrap();
    assert_eq!(status(a), "CTID 101 exist unmounted down suspended");
    let dump = a.read_file("/vz/dump/Dump.101").unwrap();
    // no restore on the target: refused (14), nothing changed
    b.sh_ok(&format!("rm {}/rst", vzfs_lab::lab::LAB_CPT_DIR))
        .unwrap();
    let out = migrate(a, &["b", CT]);
    assert_eq!(out.exit_code(), 14, "{}", out.all());
    assert!(out.stderr.contains("cannot restore"), "{}", out.all());
    assert_eq!(status(a), "CTID 101 exist unmounted down suspended");
    target_clean("no rst", b);
    b.sh_ok(&format!("touch {}/rst", vzfs_lab::lab::LAB_CPT_DIR))
        .unwrap();

    let plan = migrate(a, &["--check-only", "b", CT]);
    assert!(
        plan.stdout.contains("suspended (its dump moves with it)")
            && plan.stdout.contains("copy-dump"),
        "{}",
        plan.all()
    );
    let out = migrate(a, &["b", CT]);
    assert!(out.success(), "{}", out.all());
    assert_eq!(status(b), "CTID 101 exist unmounted down suspended");
    assert_eq!(b.read_file("/vz/dump/Dump.101").unwrap(), dump);
    assert!(!a.path("/vz/dump/Dump.101").exists(), "source dump left");
    b.vzctl(&["restore", CT]).unwrap().ok().unwrap();
    assert_eq!(status(b), expected_status("running"));
    std::thread::sleep(Duration::from_millis(200));
    let log = b
        .read_file("/vz/private/101/var/log/lab-workload.log")
        .unwrap();
    let s = vzfs_lab::workload::check_log(&log).unwrap();
    assert_eq!(s.restores, 1, "{log}");
    b.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    lab.teardown().unwrap();
}
