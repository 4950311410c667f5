//! `ocf:vzfs:container` in a two-node lab cluster (Corosync + Pacemaker,
//! fencing enabled with the lab's fence agent): the container starts on one
//! node with the LUN mounted there only; a planned move; kill -9 of the
//! active node's corosync, and separately a crash of the whole node: the
//! survivor fences it and runs the container with its data intact; a stop
//! that cannot release the device (a holder process) makes the cluster fence
//! the node instead of starting elsewhere first. Both nodes' mountinfo is
//! sampled throughout: the LUN is never mounted on both.
//!
//! Each test brings up its own cluster (about 10 s) because a fenced lab
//! node stays off. The survivor takes the fenced node's MMP block over
//! (the agent sets it clean once the fencing in the cluster's history
//! proves the writer dead), so the kernel mounts without its MMP wait; a
//! fencing of another node proves nothing: then the agent waits the
//! kernel's own window (11 s) before the takeover.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vzfs_lab::cluster::{self, Cluster, Failover, MountSamples, CTID, RSC};
use vzfs_lab::{Disk, Fs, Lab};

const LONG: Duration = Duration::from_secs(150);

fn lab(name: &str) -> Option<(Lab, Disk, std::path::PathBuf)> {
    let lab = Lab::builder()
        .hosts(&["a", "b"])
        .require_binary("vzfs-hook")
        .install_hook()
        .start_for_test(name)?;
    let lun = lab.add_lun("lun1", &["a", "b"], Fs::Ext4Mmp).unwrap();
    let shared = cluster::create_container(&lab, "a", &lun).unwrap();
    Some((lab, lun, shared))
}

/// Runs `f` while a thread samples both nodes' mountinfo; fails if the LUN
/// was ever mounted on both.
fn sampled<T>(lab: &Lab, lun: &Disk, f: impl FnOnce() -> T) -> (T, MountSamples) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| cluster::sample_mounts(lab, lun, &stop));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        stop.store(true, Ordering::Relaxed);
        let samples = h.join().expect("the sampler");
        match r {
            Ok(v) => {
                let both = samples.both();
                assert!(
                    both.is_empty(),
                    "the LUN was mounted on two nodes at once: {both:?}"
                );
                assert!(samples.samples() > 10, "too few samples: {samples:?}");
                (v, samples)
            }
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

fn mounted_only_on(lab: &Lab, lun: &Disk, host: &str) {
    for h in lab.hosts() {
        let m = h.disk_mounts(lun).unwrap_or_default();
        if h.name() == host {
            assert!(
                m.iter()
                    .any(|e| e.mount_point == std::path::Path::new("/vz/private/101")),
                "{host}: the LUN is not on VE_PRIVATE: {m:?}"
            );
        } else {
            assert!(
                m.is_empty(),
                "{}: the LUN is mounted there too: {m:?}",
                h.name()
            );
        }
    }
}

/// The survivor mounted the LUN again only after the victim's fencing ended
/// (an order of events, not a timing).
fn mounted_after_fencing(
    c: &Cluster<'_>,
    victim: &str,
    survivor: &str,
    failed_at: f64,
    s: &MountSamples,
) {
    let f = c.fencings();
    let fenced = f
        .iter()
        .find(|f| f.node == victim)
        .unwrap_or_else(|| panic!("{victim} was not fenced: {f:?}\n{}", c.logs()));
    let t = s.unmounted_until(survivor, failed_at).unwrap_or_else(|| {
        panic!("{survivor}: no read without the LUN before its mount after the failure: {s:?}")
    });
    let near = |h: &str| -> Vec<String> {
        s.of(h)
            .iter()
            .filter(|r| r.t0 >= failed_at - 0.5 && r.t0 <= fenced.end + 2.0)
            .map(|r| format!("{:.3}:{}", r.t0, if r.mounted { "M" } else { "-" }))
            .collect()
    };
    assert!(
        t >= fenced.end,
        "{survivor} may have mounted the LUN before {victim} was fenced ({fenced:?}); last read of {survivor} without it at {t:.3}; reads near the failure (t0:M mounted) {survivor}: {:?} {victim}: {:?}",
        near(survivor),
        near(victim)
    );
}

/// Prints the failover's breakdown and checks how the survivor took the
/// dead node's MMP block over: the path the agent names (`fenced`,
/// `still-11s`), and for `fenced` that neither the agent nor the kernel
/// waited a window (the agent's MMP check under the kernel's 11 s, no slow
/// mount(2) in the hook's output).
#[allow(clippy::too_many_arguments)]
fn report(
    what: &str,
    c: &Cluster<'_>,
    victim: &str,
    survivor: &str,
    failed_at: f64,
    s: &MountSamples,
    running_at: f64,
    path: &str,
) -> Failover {
    let f = Failover::measure(c, victim, survivor, failed_at, s, running_at).unwrap_or_else(|| {
        panic!(
            "failover ({what}): no breakdown (fence log {:?})\n{}",
            c.fencings(),
            c.logs()
        )
    });
    eprintln!("failover ({what}): {}", f.line());
    assert_eq!(
        f.takeover.as_deref(),
        Some(path),
        "{what}: the agent's takeover path: {}\n{}",
        f.line(),
        c.logs()
    );
    if path == "fenced" {
        assert!(
            f.agent_mmp_check.is_some_and(|t| t < 11.0),
            "{what}: the agent waited a window: {}",
            f.line()
        );
        assert!(
            f.kernel_mmp_wait.is_none(),
            "{what}: the kernel waited at the mount: {}",
            f.line()
        );
    }
    f
}

#[test]
fn cluster_start_move_and_corosync_kill() {
    let Some((lab, lun, shared)) = lab("cluster_start_move_and_corosync_kill") else {
        return;
    };
    let ((c, failed_at, running_at), samples) = sampled(&lab, &lun, || {
        let c = Cluster::start(&lab, &shared, "a").unwrap();
        c.wait_running_on("a", "a", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        mounted_only_on(&lab, &lun, "a");
        assert!(!lab
            .host("b")
            .path(format!("/etc/vz/conf/{CTID}.conf"))
            .exists());
        let data = cluster::tree_sum(lab.host("a")).unwrap();
        assert!(data.contains("./data/blob"), "{data}");

        // A planned move (allow-migrate: migrate_to releases on a,
        // migrate_from starts on b).
        let o = c
            .crm("a", &["crm_resource", "--move", "-r", RSC, "-N", "b"])
            .unwrap();
        assert!(o.success(), "{}", o.all());
        c.wait_running_on("a", "b", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        mounted_only_on(&lab, &lun, "b");
        assert_eq!(
            cluster::tree_sum(lab.host("b")).unwrap(),
            data,
            "data changed in the move"
        );
        assert!(
            !lab.host("a")
                .path(format!("/etc/vz/conf/{CTID}.conf"))
                .exists(),
            "a kept its config copy"
        );
        let o = c.crm("a", &["crm_resource", "--clear", "-r", RSC]).unwrap();
        assert!(o.success(), "{}", o.all());
        assert!(
            c.fencings().is_empty(),
            "a planned move fenced: {:?}",
            c.fencings()
        );

        // kill -9 of the active node's corosync: a fences b and runs it.
        let t = cluster::now();
        c.kill9("b", "corosync").unwrap();
        c.wait_running_on("a", "a", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        let running_at = cluster::now();
        let f = c.fencings();
        assert!(f.iter().any(|f| f.node == "b"), "b was not fenced: {f:?}");
        assert!(c.is_off("b"), "b still has processes after its fencing");
        mounted_only_on(&lab, &lun, "a");
        assert_eq!(
            cluster::tree_sum(lab.host("a")).unwrap(),
            data,
            "data changed in the failover"
        );
        (c, t, running_at)
    });
    mounted_after_fencing(&c, "b", "a", failed_at, &samples);
    report(
        "corosync of the active node killed",
        &c,
        "b",
        "a",
        failed_at,
        &samples,
        running_at,
        "fenced",
    );
    drop(c);
    lab.teardown().unwrap();
}

#[test]
fn cluster_node_crash() {
    let Some((lab, lun, shared)) = lab("cluster_node_crash") else {
        return;
    };
    let ((c, failed_at, running_at, data), samples) = sampled(&lab, &lun, || {
        let c = Cluster::start(&lab, &shared, "a").unwrap();
        c.wait_running_on("a", "a", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        mounted_only_on(&lab, &lun, "a");
        let data = cluster::tree_sum(lab.host("a")).unwrap();
        // The whole node dies (its LUN view first, as in a power loss).
        let t = cluster::now();
        c.crash("a").unwrap();
        c.wait_running_on("b", "b", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        let running_at = cluster::now();
        (c, t, running_at, data)
    });
    assert!(
        c.fencings().iter().any(|f| f.node == "a"),
        "a was not fenced: {:?}",
        c.fencings()
    );
    mounted_only_on(&lab, &lun, "b");
    assert_eq!(
        cluster::tree_sum(lab.host("b")).unwrap(),
        data,
        "data changed in the failover"
    );
    mounted_after_fencing(&c, "a", "b", failed_at, &samples);
    report(
        "the active node crashed",
        &c,
        "a",
        "b",
        failed_at,
        &samples,
        running_at,
        "fenced",
    );
    drop(c);
    lab.teardown().unwrap();
}

#[test]
fn cluster_stop_with_holder_fences() {
    let Some((lab, lun, shared)) = lab("cluster_stop_with_holder_fences") else {
        return;
    };
    let ((c, data), samples) = sampled(&lab, &lun, || {
        let c = Cluster::start(&lab, &shared, "a").unwrap();
        c.wait_running_on("a", "a", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        let data = cluster::tree_sum(lab.host("a")).unwrap();
        // A process outside the container keeps the filesystem busy on a.
        lab.host("a")
            .sh_ok(&format!(
                "cd /vz/private/{CTID}/data && setsid sleep 600 </dev/null >/dev/null 2>&1 &"
            ))
            .unwrap();
        let o = c
            .crm("a", &["crm_resource", "--move", "-r", RSC, "-N", "b"])
            .unwrap();
        assert!(o.success(), "{}", o.all());
        // The stop on a fails (the agent kills nothing), so the cluster
        // fences a before b may start the container.
        c.wait_running_on("b", "b", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        (c, data)
    });
    let f = c.fencings();
    let fenced = f
        .iter()
        .find(|f| f.node == "a")
        .unwrap_or_else(|| panic!("a was not fenced: {f:?}\n{}", c.logs()));
    // b mounted the LUN only once a was off.
    let t = samples
        .unmounted_until("b", 0.0)
        .unwrap_or_else(|| panic!("b never mounted the LUN: {samples:?}"));
    assert!(
        t >= fenced.end,
        "b may have mounted the LUN before a was fenced ({fenced:?}): {samples:?}"
    );
    let logs = std::fs::read_to_string(c.dir.join("node-a/var-log-pacemaker/pacemaker.log"))
        .unwrap_or_default();
    assert!(
        logs.contains("fences this node"),
        "the agent's stop did not fail on the holder:\n{}",
        c.logs()
    );
    mounted_only_on(&lab, &lun, "b");
    assert_eq!(
        cluster::tree_sum(lab.host("b")).unwrap(),
        data,
        "data changed"
    );
    drop(c);
    lab.teardown().unwrap();
}

/// The dead node's MMP block is attributed (parameter mmp_nodes) to a node
/// "c" that was never fenced: the fencing of a in the history names
/// another node and proves nothing, so the survivor takes the block over
/// only after its sequence stood still for the kernel's own window.
#[test]
fn cluster_fencing_of_another_node_does_not_count() {
    let Some((lab, lun, shared)) = lab("cluster_fencing_of_another_node_does_not_count") else {
        return;
    };
    let host = cluster::kernel_hostname();
    let dev = |h: &str| {
        lun.device(h)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let map = format!("c={host}:{} b={host}:{}", dev("a"), dev("b"));
    let ((c, failed_at, running_at), samples) = sampled(&lab, &lun, || {
        let c = Cluster::start_with(&lab, &shared, "a", &map).unwrap();
        c.wait_running_on("a", "a", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        let t = cluster::now();
        c.crash("a").unwrap();
        c.wait_running_on("b", "b", LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        (c, t, cluster::now())
    });
    mounted_only_on(&lab, &lun, "b");
    mounted_after_fencing(&c, "a", "b", failed_at, &samples);
    let f = report(
        "the active node crashed, its block attributed to an unfenced node",
        &c,
        "a",
        "b",
        failed_at,
        &samples,
        running_at,
        "still-11s",
    );
    assert!(
        f.agent_mmp_check.is_some_and(|t| t >= 11.0),
        "the takeover came before the kernel's window: {}",
        f.line()
    );
    drop(c);
    lab.teardown().unwrap();
}
