//! The resource agent `ocf:vzfs:container` on a lab node, without a
//! cluster: `ocf-tester` passes on it, and the checks a cluster relies on:
//! validate-all refuses a kernel device name in the shared config, a start
//! is refused (OCF_ERR_GENERIC, nothing installed) while the LUN is live on
//! another node (MMP), a stale config copy (a fenced node's) is "not running"
//! and goes at the next stop, a half-there container (mounted, not running)
//! is a failure, and vzctl start's output is never read to end-of-file.

use std::path::Path;
use vzfs_lab::cluster::{self, AGENT, CTID};
use vzfs_lab::{Fs, Host, Lab};

fn agent(h: &Host, action: &str, config: &Path, extra: &[(&str, &str)]) -> vzfs_lab::Output {
    cluster::run_agent(h, action, config, extra)
}

fn local_conf_exists(h: &Host) -> bool {
    h.path(format!("/etc/vz/conf/{CTID}.conf")).exists()
}

#[test]
fn ocf_tester_and_refusals() {
    let Some(lab) = Lab::builder()
        .hosts(&["a", "b"])
        .require_binary("vzfs-hook")
        .install_hook()
        .start_for_test("ocf_tester_and_refusals")
    else {
        return;
    };
    let lun = lab.add_lun("lun1", &["a", "b"], Fs::Ext4Mmp).unwrap();
    let shared = cluster::create_container(&lab, "a", &lun).unwrap();
    cluster::install_agents(&lab).unwrap();
    let a = lab.host("a");
    let b = lab.host("b");

    // ocf-tester: meta-data against ra-api-1.dtd (also as user nobody),
    // monitor/stop/start/monitor twice, exit codes. Its backticks read the
    // agent's output to end-of-file: a start whose output reached the
    // container's workload would hang here.
    let o = a
        .run(&[
            "ocf-tester",
            "-n",
            "ct101",
            "-o",
            &format!("ctid={CTID}"),
            "-o",
            &format!("config={}", shared.display()),
            AGENT,
        ])
        .unwrap();
    assert!(o.success(), "ocf-tester failed:\n{}", o.all());
    assert!(o.stdout.contains("passed all tests"), "{}", o.all());
    assert!(
        !local_conf_exists(a),
        "the last stop left /etc/vz/conf/{CTID}.conf"
    );
    assert!(
        a.disk_mounts(&lun).unwrap().is_empty(),
        "the LUN is still mounted on a"
    );

    // start, monitor: running with the device on VE_PRIVATE; the config copy
    // byte for byte; the data as created.
    let o = agent(a, "start", &shared, &[]);
    assert_eq!(o.exit_code(), 0, "{}", o.all());
    assert_eq!(agent(a, "monitor", &shared, &[]).exit_code(), 0);
    assert_eq!(
        a.read_file(format!("/etc/vz/conf/{CTID}.conf")).unwrap(),
        std::fs::read_to_string(&shared).unwrap()
    );
    let m = a
        .mount_at(format!("/vz/private/{CTID}"))
        .unwrap()
        .expect("mounted on VE_PRIVATE");
    assert_eq!(Some(m.dev), lun.dev_num("a"));
    let before = cluster::tree_sum(a).unwrap();
    assert!(
        before.contains("./data/blob"),
        "the container's data is not on VE_PRIVATE:\n{before}"
    );
    // The workload does not hold the agent's output.
    let pid = a.read_file(vzfs_lab::workload::pid_file(CTID)).ok();
    if let Some(pid) = pid.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        let fd1 = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
        assert!(
            !fd1.to_string_lossy().contains("pipe:"),
            "the workload holds a pipe: {fd1:?}"
        );
    }

    // While a runs it (MMP updated by a), a start on b is refused and
    // installs nothing.
    let o = agent(b, "start", &shared, &[]);
    assert_eq!(o.exit_code(), 1, "start on b while a runs it:\n{}", o.all());
    assert!(o.stderr.contains("live on another node"), "{}", o.all());
    assert!(
        !local_conf_exists(b),
        "a refused start installed the config on b"
    );
    assert!(b.disk_mounts(&lun).unwrap().is_empty(), "b mounted the LUN");
    assert_eq!(agent(b, "monitor", &shared, &[]).exit_code(), 7);

    // A stop that cannot release the device (a holder outside the
    // container) fails and kills nothing.
    let holder = a
        .sh_ok(&format!(
            "cd /vz/private/{CTID}/data && setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!"
        ))
        .unwrap()
        .stdout
        .trim()
        .to_string();
    let o = agent(a, "stop", &shared, &[]);
    assert_eq!(o.exit_code(), 1, "stop with a holder:\n{}", o.all());
    assert!(o.stderr.contains("fences this node"), "{}", o.all());
    assert!(
        Path::new(&format!("/proc/{holder}")).exists(),
        "the stop killed the holder"
    );
    // Half there: mounted, not running.
    assert_eq!(agent(a, "monitor", &shared, &[]).exit_code(), 1);
    a.sh_ok(&format!(
        "kill {holder}; while kill -0 {holder} 2>/dev/null; do sleep 0.05; done"
    ))
    .unwrap();
    let o = agent(a, "stop", &shared, &[]);
    assert_eq!(o.exit_code(), 0, "{}", o.all());
    assert!(a.disk_mounts(&lun).unwrap().is_empty());
    assert!(!local_conf_exists(a));

    // A stale config copy (left by a fenced node): not running; the next
    // stop removes it.
    a.write_file(
        format!("/etc/vz/conf/{CTID}.conf"),
        std::fs::read(&shared).unwrap(),
    )
    .unwrap();
    assert_eq!(agent(a, "monitor", &shared, &[]).exit_code(), 7);
    assert_eq!(agent(a, "stop", &shared, &[]).exit_code(), 0);
    assert!(!local_conf_exists(a), "stop left the stale copy");

    // The LUN mounted by hand on b (MMP live there): start on a refused.
    let bdev = lun.device("b").display().to_string();
    b.sh_ok(&format!("mkdir -p /var/tmp/x && mount {bdev} /var/tmp/x"))
        .unwrap();
    let o = agent(a, "start", &shared, &[]);
    assert_eq!(o.exit_code(), 1, "{}", o.all());
    assert!(o.stderr.contains("live on another node"), "{}", o.all());
    assert!(!local_conf_exists(a));
    b.sh_ok("umount /var/tmp/x").unwrap();

    // validate-all: a kernel device name in the shared config is refused.
    let bad = shared.with_file_name("bad.conf");
    let text = std::fs::read_to_string(&shared).unwrap().replace(
        &format!("VE_DEVICE=\"{}\"", lun.by_id_path().display()),
        &format!("VE_DEVICE=\"{}\"", lun.device("a").display()),
    );
    std::fs::write(&bad, text).unwrap();
    let o = agent(a, "validate-all", &bad, &[]);
    assert_eq!(o.exit_code(), 6, "{}", o.all());
    assert!(o.stderr.contains("by-id"), "{}", o.all());
    assert_eq!(agent(a, "validate-all", &shared, &[]).exit_code(), 0);
    // Missing parameters: not configured; an unknown action: unimplemented.
    let o = a.command(&[AGENT, "validate-all"]).output().unwrap();
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(agent(a, "frobnicate", &shared, &[]).exit_code(), 3);

    // A planned move by restart: migrate_to releases on a, migrate_from
    // starts on b.
    assert_eq!(agent(a, "start", &shared, &[]).exit_code(), 0);
    let o = agent(
        a,
        "migrate_to",
        &shared,
        &[("OCF_RESKEY_CRM_meta_migrate_target", "b")],
    );
    assert_eq!(o.exit_code(), 0, "{}", o.all());
    assert!(a.disk_mounts(&lun).unwrap().is_empty());
    let o = agent(
        b,
        "migrate_from",
        &shared,
        &[("OCF_RESKEY_CRM_meta_migrate_source", "a")],
    );
    assert_eq!(o.exit_code(), 0, "{}", o.all());
    assert_eq!(agent(b, "monitor", &shared, &[]).exit_code(), 0);
    assert_eq!(
        cluster::tree_sum(b).unwrap(),
        before,
        "data changed in the move"
    );
    assert_eq!(agent(b, "stop", &shared, &[]).exit_code(), 0);

    // e2fsck running on b (a real one, held with SIGSTOP once it has
    // written EXT4_MMP_SEQ_FSCK): a start on a is refused and never takes
    // the block over; e2fsck finishes afterwards and leaves it clean.
    let pid: i32 = b
        .sh_ok(&format!(
            "setsid e2fsck -fy {bdev} </dev/null >/var/tmp/fsck.log 2>&1 & echo $!"
        ))
        .unwrap()
        .stdout
        .trim()
        .parse()
        .unwrap();
    let rdr = vzfs::device::Reader::open(&lun.image).unwrap();
    let vzfs::device::Probe::Fs(fs) = rdr.probe().unwrap() else {
        panic!("no filesystem on the LUN")
    };
    let ext = fs.ext.expect("ext4");
    let t0 = std::time::Instant::now();
    let caught = loop {
        let m = rdr.read_mmp(&ext).unwrap().expect("MMP");
        if m.is_fsck() {
            // SAFETY: kill(2) of the e2fsck this test started.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            break true;
        }
        if t0.elapsed() > std::time::Duration::from_secs(40)
            || !Path::new(&format!("/proc/{pid}")).exists()
        {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert!(
        caught,
        "e2fsck on b never showed its MMP sequence (or ended first): {}",
        b.read_file("/var/tmp/fsck.log").unwrap_or_default()
    );
    let o = agent(a, "start", &shared, &[]);
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(
        o.exit_code(),
        1,
        "start on a while e2fsck runs on b:\n{}",
        o.all()
    );
    assert!(o.stderr.contains("e2fsck is running"), "{}", o.all());
    assert!(!local_conf_exists(a));
    assert!(a.disk_mounts(&lun).unwrap().is_empty(), "a mounted the LUN");
    let m = rdr.read_mmp(&ext).unwrap().expect("MMP");
    assert!(
        m.is_fsck() || m.is_clean(),
        "the agent wrote to e2fsck's MMP block: {m:?}"
    );
    while Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(rdr.read_mmp(&ext).unwrap().expect("MMP").is_clean());
    // The block clean again: a starts at once (takeover path `clean`).
    let o = agent(a, "start", &shared, &[]);
    assert_eq!(o.exit_code(), 0, "{}", o.all());
    assert!(o.stderr.contains("takeover clean"), "{}", o.all());
    assert_eq!(agent(a, "stop", &shared, &[]).exit_code(), 0);
    lab.teardown().unwrap();
}
