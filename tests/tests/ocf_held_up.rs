//! `ocf:vzfs:container` against a node whose MMP writes are only held up
//! (issue 16): node b has the LUN mounted and its kernel's kmmpd updates
//! the MMP block every second, through a view of the LUN whose writes the
//! test holds ([`vzfs_lab::Lab::present_held`]: a FUSE passthrough, as a
//! suspended device-mapper path would hold them). The sequence stops, and
//! nothing is fenced (no cluster at all, as in `ocf_agent.rs`).
//!
//! - Held, then resumed a few seconds into the kernel's first wait: the
//!   agent's `start` on a neither takes the block over nor mounts during
//!   the wait, and refuses once the sequence moves again ("live"); b keeps
//!   the filesystem, a has nothing mounted at any sample.
//! - Held for longer than the window: the takeover (path `still-<N>s`)
//!   and a's mount come only after the full window, measured, as the
//!   kernel itself would mount such a block.
//!
//! Mountinfo of both nodes is sampled every 50 ms while the agent runs.

use std::path::Path;
use std::time::{Duration, Instant};
use vzfs_lab::cluster::{self, CTID};
use vzfs_lab::{Disk, Fs, Host, Lab, ResumeOnDrop};

fn agent(h: &Host, action: &str, config: &Path) -> vzfs_lab::Output {
    cluster::run_agent(h, action, config, &[])
}

/// The kernel's first wait for a dirty MMP block, written out here from
/// fs/ext4/mmp.c (not the agent's copy, which is what is tested): the
/// check interval is the largest of the update interval, 5 s and the
/// block's own; the wait min(2 x interval + 1, interval + 60) seconds.
fn kernel_first_wait(update_interval: u16, block_check_interval: u16) -> u64 {
    let ci = update_interval.max(5).max(block_check_interval) as u64;
    (2 * ci + 1).min(ci + 60)
}

/// The LUN's MMP block as the image holds it (what every view reads).
fn mmp(lun: &Disk) -> (vzfs::device::Mmp, u16) {
    let rdr = vzfs::device::Reader::open(&lun.image).unwrap();
    let vzfs::device::Probe::Fs(fs) = rdr.probe().unwrap() else {
        panic!("no filesystem on the LUN")
    };
    let ext = fs.ext.expect("ext4");
    let interval = ext.mmp.expect("MMP on").1;
    (rdr.read_mmp(&ext).unwrap().expect("an MMP block"), interval)
}

/// The sequence stands still for 1.3 s (b's writes are held).
fn assert_still(lun: &Disk, what: &str) -> vzfs::device::Mmp {
    // A write answered just before the hold may land first.
    std::thread::sleep(Duration::from_millis(1100));
    let (m0, _) = mmp(lun);
    std::thread::sleep(Duration::from_millis(1300));
    let (m1, _) = mmp(lun);
    assert_eq!(
        m0, m1,
        "{what}: the sequence moved while b's writes were held"
    );
    assert!(!m1.is_clean() && !m1.is_fsck(), "{what}: {m1:?}");
    m1
}

/// What the samples of both nodes' mountinfo saw while the agent ran.
struct Run {
    out: vzfs_lab::Output,
    took: Duration,
    /// First sample with the LUN mounted on a, from the agent's start.
    a_mounted_at: Option<Duration>,
    /// Some sample without the LUN mounted on b.
    b_lost: bool,
    samples: usize,
}

/// Runs `start` on a, sampling mountinfo of a and b every 50 ms; calls
/// `at(elapsed)` at every sample (to resume b's writes at some time).
fn start_sampled(lab: &Lab, lun: &Disk, shared: &Path, mut at: impl FnMut(Duration)) -> Run {
    let (a, b) = (lab.host("a"), lab.host("b"));
    std::thread::scope(|s| {
        let t0 = Instant::now();
        let h = s.spawn(move || agent(a, "start", shared));
        let (mut a_mounted_at, mut b_lost, mut samples) = (None, false, 0);
        loop {
            let done = h.is_finished();
            let t = t0.elapsed();
            if a_mounted_at.is_none() && !a.disk_mounts(lun).unwrap().is_empty() {
                a_mounted_at = Some(t);
            }
            b_lost |= b.disk_mounts(lun).unwrap().is_empty();
            samples += 1;
            if done {
                break;
            }
            at(t);
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = h.join().expect("the agent's thread");
        Run {
            out,
            took: t0.elapsed(),
            a_mounted_at,
            b_lost,
            samples,
        }
    })
}

#[test]
fn held_up_writer_is_not_taken_over_early() {
    let Some(lab) = Lab::builder()
        .hosts(&["a", "b"])
        .require_binary("vzfs-hook")
        .install_hook()
        .start_for_test("held_up_writer_is_not_taken_over_early")
    else {
        return;
    };
    lab.add_lun("lun1", &["a"], Fs::Ext4Mmp).unwrap();
    let (lun, held) = lab.present_held("lun1", "b").unwrap();
    // Dropped before the lab, also on a panic: no held write outlives the
    // test's assertions (the lab's teardown resumes them as well).
    let _resume = ResumeOnDrop(&held);
    let shared = cluster::create_container(&lab, "a", &lun).unwrap();
    cluster::install_agents(&lab).unwrap();
    let (a, b) = (lab.host("a"), lab.host("b"));

    // b mounts the LUN through its held-up view; its kmmpd updates the
    // block every second (mmp_update_interval=1, set by create_container).
    b.sh_ok("mkdir -p /var/tmp/x && mount /dev/disk/by-id/lab-lun1 /var/tmp/x")
        .unwrap();
    let (m0, interval) = mmp(&lun);
    assert_eq!(interval, 1);
    std::thread::sleep(Duration::from_millis(1500));
    let (m1, _) = mmp(&lun);
    assert_ne!(m0.seq, m1.seq, "b's kmmpd does not update the MMP block");
    let window = kernel_first_wait(interval, m1.check_interval);
    assert!(window >= 11, "window {window}s");
    let window_d = Duration::from_secs(window);

    // 1. Held, resumed 5 s into the window: refused, nothing mounted on a.
    held.hold().unwrap();
    let before = assert_still(&lun, "held");
    let resume_at = Duration::from_secs(5);
    assert!(resume_at + Duration::from_secs(3) < window_d);
    let mut resumed = None;
    let r = start_sampled(&lab, &lun, &shared, |t| {
        if resumed.is_none() && t >= resume_at {
            held.resume().unwrap();
            resumed = Some(t);
        }
    });
    let o = &r.out;
    assert!(
        resumed.is_some(),
        "the agent ended before the resume:\n{}",
        o.all()
    );
    assert_eq!(
        o.exit_code(),
        1,
        "start on a while b's writes were held, then resumed:\n{}",
        o.all()
    );
    assert!(o.stderr.contains("live on another node"), "{}", o.all());
    assert!(
        !o.stderr.contains("took over"),
        "the agent took a held-up writer's block over:\n{}",
        o.all()
    );
    assert_eq!(
        r.a_mounted_at, None,
        "a mounted the LUN ({} samples)",
        r.samples
    );
    assert!(!r.b_lost, "b lost the LUN");
    assert!(
        r.took >= resume_at && r.took < window_d,
        "the agent answered after {:?}: it must wait while the block stands still, and refuse once it moves (resumed at {resumed:?}, window {window}s)",
        r.took
    );
    assert!(!a.path(format!("/etc/vz/conf/{CTID}.conf")).exists());
    let (after, _) = mmp(&lun);
    assert_ne!(after.seq, before.seq, "b's writes did not resume");
    assert_eq!(
        after.bdevname, before.bdevname,
        "someone else wrote the block"
    );
    assert!(b.disk_mounts(&lun).unwrap().len() == 1);

    // b's kmmpd, after a write held for seconds, raises the block's check
    // interval to twice that write's time (fs/ext4/mmp.c) and lowers it
    // again at the next quick write: wait for the usual 5 s, so that the
    // window below is the kernel's 11 s again.
    let t = Instant::now();
    while mmp(&lun).0.check_interval != m1.check_interval {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "b's check interval stays at {}",
            mmp(&lun).0.check_interval
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 2. Held for longer than the window, nothing fenced: the takeover
    //    only after the full window, as the kernel would mount it.
    held.hold().unwrap();
    let before = assert_still(&lun, "held again");
    assert_eq!(kernel_first_wait(interval, before.check_interval), window);
    let r = start_sampled(&lab, &lun, &shared, |_| {});
    let o = &r.out;
    assert_eq!(
        o.exit_code(),
        0,
        "start on a after the window:\n{}",
        o.all()
    );
    assert!(
        o.stderr.contains(&format!("takeover still-{window}s")),
        "{}",
        o.all()
    );
    let mounted = r.a_mounted_at.expect("a never showed the LUN mounted");
    assert!(
        mounted >= window_d && r.took >= window_d,
        "a mounted a held-up writer's LUN {mounted:?} after the start (agent {:?}), before the kernel's first wait of {window}s",
        r.took
    );
    // a's kernel writes the block now.
    let now = mmp(&lun).0;
    let a_dev = lun
        .device("a")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(now.bdevname, a_dev, "{now:?} (held: {before:?})");
    eprintln!(
        "held-up takeover: a mounted after {mounted:?} (window {window}s, agent {:?}, {} samples)",
        r.took, r.samples
    );
    assert_eq!(agent(a, "stop", &shared).exit_code(), 0);
    held.resume().unwrap();
    // b's view is stale now (its block was taken over); it unmounts (its
    // kernel may already have reported the multiple mount).
    let _ = b.sh("umount /var/tmp/x");
    drop(_resume);
    lab.teardown().unwrap();
}

/// A test that panics while b's writes are held (a `sync` and b's kmmpd
/// blocked on them, no guard): the lab's teardown (through `Drop`)
/// resumes them, releases b's mount and loop device, unmounts the FUSE
/// filesystem and ends its daemon; nothing of the lab is left.
#[test]
fn teardown_resumes_held_writes_on_panic() {
    let Some(lab) = Lab::builder()
        .hosts(&["a", "b"])
        .start_for_test("teardown_resumes_held_writes_on_panic")
    else {
        return;
    };
    lab.add_lun("lun2", &["a"], Fs::Ext4Mmp).unwrap();
    let (lun, held) = lab.present_held("lun2", "b").unwrap();
    let dir = lab.dir().to_path_buf();
    let b = lab.host("b");
    b.sh_ok(&format!(
        "mkdir -p /var/tmp/x && mount {dev} /var/tmp/x",
        dev = lun.device("b").display()
    ))
    .unwrap();
    held.hold().unwrap();
    b.sh_ok("echo data > /var/tmp/x/f; (setsid sync </dev/null >/dev/null 2>&1 &)")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _lab = lab;
        panic!("a test failing while b's writes are held");
    }));
    assert!(r.is_err());
    eprintln!("teardown with held writes: {:?}", t0.elapsed());
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "teardown took {:?}",
        t0.elapsed()
    );
    assert!(!dir.exists(), "the lab's directory is left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&*dir.to_string_lossy()),
        "a FUSE mount of the lab is left:\n{mounts}"
    );
    let loops = vzfs_lab::cmd::machine_ok(&["losetup", "-a"])
        .unwrap()
        .stdout;
    assert!(
        !loops.contains(&*dir.to_string_lossy()),
        "a loop device is left:\n{loops}"
    );
}
