//! Several containers in one run (`vzfs-migrate --evacuate b`,
//! `vzfs-migrate b CTID CTID...`) in the two-node lab: one failing half-way
//! is undone alone while the others move; kill -9 of the whole run then
//! `--recover all`; a container named twice is refused; a container that
//! cannot move is reported before any change (`--check-only` prints the
//! plan of each); copies run at most `--copy-jobs` at a time. A few small
//! containers keep these fast.

mod common;
use common::*;
use vzfs_lab::{Disk, Fs, Host, Lab};

/// Insulated container `id` on its own LUN presented to `hosts` (both:
/// a SAN handoff; `a` only: the target does not see its VE_DEVICE).
fn insulated(lab: &Lab, id: &str, hosts: &[&str], running: bool) -> Disk {
    let a = lab.host("a");
    let lun = lab.add_lun(&format!("ct{id}"), hosts, Fs::Ext4Mmp).unwrap();
    a.vzctl(&["create", id, "--ostemplate", "lab-minimal"])
        .unwrap()
        .ok()
        .unwrap();
    let dev = lun.device("a").display().to_string();
    a.sh_ok(&format!(
        "echo data-{id} > /vz/private/{id}/marker && mkdir -p /var/tmp/m{id} && \
         mount {dev} /var/tmp/m{id} && cp -a /vz/private/{id}/. /var/tmp/m{id}/ && \
         umount /var/tmp/m{id} && rm -rf /vz/private/{id} && mkdir /vz/private/{id} && \
         echo 'VE_DEVICE=\"{dev}\"' >> /etc/vz/conf/{id}.conf"
    ))
    .unwrap();
    if running {
        a.vzctl(&["start", id]).unwrap().ok().unwrap();
    }
    lun
}

fn ct_status(h: &Host, id: &str) -> String {
    h.vzctl(&["status", id]).unwrap().stdout.trim().to_string()
}

fn conf(h: &Host, id: &str) -> Option<Vec<u8>> {
    std::fs::read(h.path(&format!("/etc/vz/conf/{id}.conf"))).ok()
}

/// Where a container lives after the run: wholly on `a` as it was (status,
/// config bytes; nothing of it on `b`; its LUN mounted on `a` only if it
/// was running) or wholly on `b` in the same state (no config left on `a`,
/// its LUN mounted on `b` only if running). Returns "a" or "b".
fn whole(lab: &Lab, id: &str, lun: &Disk, status_before: &str, conf_before: &[u8]) -> &'static str {
    let (a, b) = (lab.host("a"), lab.host("b"));
    let running = status_before.contains("running");
    let on_b = conf(b, id).is_some();
    if on_b {
        assert!(conf(a, id).is_none(), "CT {id}: config on both nodes");
        assert_eq!(
            ct_status(b, id),
            status_before.to_string(),
            "CT {id}: state on b"
        );
        assert!(!lun_mounted(a, lun), "CT {id}: LUN still mounted on a");
        if lun.try_device("b").is_some() {
            assert_eq!(lun_mounted(b, lun), running, "CT {id}: LUN on b");
        }
    } else {
        assert_eq!(
            conf(a, id).as_deref(),
            Some(conf_before),
            "CT {id}: config on a"
        );
        assert_eq!(ct_status(a, id), status_before, "CT {id}: state on a");
        assert!(
            !b.path(&format!("/vz/private/{id}")).exists(),
            "CT {id}: target private area left on b"
        );
        assert_eq!(lun_mounted(a, lun), running, "CT {id}: LUN on a");
        if lun.try_device("b").is_some() {
            assert!(!lun_mounted(b, lun), "CT {id}: LUN mounted on b");
        }
    }
    assert!(
        !a.path(&format!("/vz/lock/{id}.migrate-journal")).exists(),
        "CT {id}: journal left"
    );
    assert!(
        !a.path(&format!("/vz/lock/{id}.lck")).exists(),
        "CT {id}: lock left"
    );
    if on_b {
        "b"
    } else {
        "a"
    }
}

struct Before {
    id: &'static str,
    lun: Disk,
    status: String,
    conf: Vec<u8>,
}

fn three(lab: &Lab) -> Vec<Before> {
    let a = lab.host("a");
    [("101", true), ("102", true), ("103", false)]
        .into_iter()
        .map(|(id, running)| {
            let lun = insulated(lab, id, &["a", "b"], running);
            Before {
                id,
                lun,
                status: ct_status(a, id),
                conf: conf(a, id).unwrap(),
            }
        })
        .collect()
}

/// An evacuation where CT 102 fails half-way (its device already mounted on
/// the target): 102 is undone alone and stays whole on a, 101 and 103 move
/// to b; exit 26, the table and the JSON say which.
#[test]
fn evacuate_one_failing_is_undone_alone() {
    let Some(lab) = lab("evacuate_one_failing_is_undone_alone") else {
        return;
    };
    let a = lab.host("a");
    let cts = three(&lab);
    let mut cmd = a.command(&["vzfs-migrate", "--evacuate", "b", "--jobs", "3", "--json"]);
    cmd.env("VZFS_FAILPOINTS", "102@after:dst-device-mount=fail");
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert_eq!(out.status.code(), Some(26), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect(&stdout);
    assert_eq!(v["result"], "partial", "{v}");
    let rows = v["containers"].as_array().unwrap();
    let result = |id: u64| {
        rows.iter()
            .find(|r| r["ctid"] == id)
            .map(|r| r["result"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(result(101).as_deref(), Some("migrated"), "{v}");
    assert_eq!(result(102).as_deref(), Some("undone"), "{v}");
    assert_eq!(result(103).as_deref(), Some("migrated"), "{v}");
    for id in ["101", "102", "103"] {
        assert!(
            stderr.contains(&format!("CT {id} -> b: started")),
            "no start line for {id}: {stderr}"
        );
    }
    assert!(
        stderr.contains("CT 102 -> b: FAILED and undone"),
        "{stderr}"
    );
    assert!(stderr.contains("still on this node: 102"), "{stderr}");
    for c in &cts {
        let want = if c.id == "102" { "a" } else { "b" };
        assert_eq!(
            whole(&lab, c.id, &c.lun, &c.status, &c.conf),
            want,
            "CT {}",
            c.id
        );
    }
    // the table without --json
    let b = lab.host("b");
    b.vzctl(&["stop", "101"]).unwrap().ok().unwrap();
    lab.teardown().unwrap();
}

/// kill -9 of an evacuation in flight (CT 102 crashes the process right
/// after its device was mounted on the target; the others are wherever
/// they were), then one `--recover all`: every container is whole on one
/// node, no journal, lock or ssh master is left.
#[test]
fn evacuate_killed_then_recover_all() {
    let Some(lab) = lab("evacuate_killed_then_recover_all") else {
        return;
    };
    let a = lab.host("a");
    let cts = three(&lab);
    let (code, err) = run_failpoints(
        a,
        &["vzfs-migrate", "--evacuate", "b", "--jobs", "3"],
        "102@after:dst-device-mount=crash",
    );
    assert_eq!(code, None, "expected death by SIGKILL: {err}");
    assert!(
        a.path("/vz/lock/102.migrate-journal").exists(),
        "the killed run left no journal of CT 102: {err}"
    );
    let rec = a.run(&["vzfs-migrate", "--recover", "all"]).unwrap();
    assert!(rec.success(), "{}", rec.all());
    assert!(rec.stderr.contains("recover all:"), "{}", rec.all());
    let mut on_b = 0;
    for c in &cts {
        if whole(&lab, c.id, &c.lun, &c.status, &c.conf) == "b" {
            on_b += 1;
        }
    }
    // 102 crashed before its commit: undone
    assert!(conf(a, "102").is_some(), "CT 102 should be back on a");
    assert!(on_b <= 2);
    // the shared master of the killed run is gone (ControlPersist or the reap)
    let left = std::fs::read_dir(a.path("/run/vzfs-migrate"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "ssh control directory left: {}", rec.all());
    // a second recover finds nothing
    let again = a.run(&["vzfs-migrate", "--recover", "all"]).unwrap();
    assert!(again.success(), "{}", again.all());
    assert!(
        again.stderr.contains("no unfinished migration"),
        "{}",
        again.all()
    );
    for h in lab.hosts() {
        for id in ["101", "102"] {
            let _ = h.vzctl(&["stop", id]);
        }
    }
    lab.teardown().unwrap();
}

/// The same container named twice is a usage error before anything; a
/// container whose VE_DEVICE the target does not see is reported before
/// any change (`--check-only` prints every plan), and the others move.
#[test]
fn evacuate_refusals_before_any_change() {
    let Some(lab) = lab("evacuate_refusals_before_any_change") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let l101 = insulated(&lab, "101", &["a", "b"], false);
    let l102 = insulated(&lab, "102", &["a"], false);
    let s101 = ct_status(a, "101");
    let c101 = conf(a, "101").unwrap();
    let s102 = ct_status(a, "102");
    let c102 = conf(a, "102").unwrap();

    let twice = a.run(&["vzfs-migrate", "b", "101", "102", "101"]).unwrap();
    assert_eq!(twice.exit_code(), 1, "{}", twice.all());
    assert!(
        twice.stderr.contains("CT 101 is named twice"),
        "{}",
        twice.all()
    );
    assert!(conf(b, "101").is_none());

    let chk = a
        .run(&["vzfs-migrate", "--check-only", "b", "101", "102"])
        .unwrap();
    assert_eq!(chk.exit_code(), 26, "{}", chk.all());
    assert!(
        chk.stdout.contains("CT 101 -> b: scenario d2"),
        "{}",
        chk.all()
    );
    assert!(chk.stdout.contains("copy-config"), "{}", chk.all());
    assert!(
        chk.stderr.contains("CT 102 -> b: cannot move") && chk.stderr.contains("does not see"),
        "{}",
        chk.all()
    );
    assert!(conf(b, "101").is_none() && conf(b, "102").is_none());

    let run = a.run(&["vzfs-migrate", "--evacuate", "b"]).unwrap();
    assert_eq!(run.exit_code(), 26, "{}", run.all());
    let refused = run
        .stderr
        .find("CT 102 -> b: cannot move")
        .expect(&run.all());
    let started = run.stderr.find("CT 101 -> b: started").expect(&run.all());
    assert!(
        refused < started,
        "refusal not before the changes: {}",
        run.all()
    );
    assert!(run.stdout.contains("RESULT"), "{}", run.all());
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("102 ") && l.ends_with("refused")),
        "{}",
        run.all()
    );
    assert_eq!(whole(&lab, "101", &l101, &s101, &c101), "b");
    assert_eq!(whole(&lab, "102", &l102, &s102, &c102), "a");
    lab.teardown().unwrap();
}

/// SIGINT during an evacuation (2 jobs, 3 containers): CT 101, paused
/// before its handoff, is interrupted and undone; CT 102, paused inside
/// its handoff, finishes on b; CT 103 never starts. Exit 24, the table
/// says what is where.
#[test]
fn evacuate_sigint_stops_the_queue() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let Some(lab) = lab("evacuate_sigint_stops_the_queue") else {
        return;
    };
    let a = lab.host("a");
    let cts = three(&lab);
    let mut cmd = a.command(&["vzfs-migrate", "--evacuate", "b", "--jobs", "2"]);
    cmd.env(
        "VZFS_FAILPOINTS",
        "101@after:stop-src=sleep(1500);102@after:dst-device-mount=sleep(1500)",
    );
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut stderr = String::new();
    let end = Instant::now() + Duration::from_secs(60);
    while !(stderr.contains("failpoint after:stop-src: sleeping")
        && stderr.contains("failpoint after:dst-device-mount: sleeping"))
    {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                stderr.push_str(&l);
                stderr.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the failpoints were not reached: {stderr}");
            }
        }
    }
    let pid = child.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "vzfs-migrate", "pid {pid} is not vzfs-migrate");
    // SAFETY: kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let st = child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
        stderr.push_str(&l);
        stderr.push('\n');
    }
    assert_eq!(st.code(), Some(24), "{out}\n{stderr}");
    assert!(stderr.contains("SIGINT stopped the queue"), "{stderr}");
    assert!(!stderr.contains("CT 103 -> b: started"), "{stderr}");
    let result = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(result("101"), "undone", "{out}");
    assert_eq!(result("102"), "migrated", "{out}");
    assert_eq!(result("103"), "not-started", "{out}");
    for c in &cts {
        let want = if c.id == "102" { "b" } else { "a" };
        assert_eq!(
            whole(&lab, c.id, &c.lun, &c.status, &c.conf),
            want,
            "CT {}",
            c.id
        );
    }
    let _ = lab.host("b").vzctl(&["stop", "102"]);
    lab.teardown().unwrap();
}

/// Copies (scenario a here) run at most `--copy-jobs` at a time whatever
/// `--jobs` allows: with `--jobs 4 --copy-jobs 1` and every copy held for
/// 0.4 s at its first sync (a failpoint), no container starts while another
/// one's copy runs, and all three move (with `--copy-jobs 3` this test
/// fails: the copies overlap).
#[test]
fn copies_are_limited_by_copy_jobs() {
    let Some(lab) = lab("copies_are_limited_by_copy_jobs") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    for id in ["101", "102", "103"] {
        a.vzctl(&["create", id, "--ostemplate", "lab-minimal"])
            .unwrap()
            .ok()
            .unwrap();
    }
    let (code, err) = run_failpoints(
        a,
        &[
            "vzfs-migrate",
            "--jobs",
            "4",
            "--copy-jobs",
            "1",
            "b",
            "101",
            "102",
            "103",
        ],
        "after:sync-1=sleep(400)",
    );
    assert_eq!(code, Some(0), "{err}");
    // Between one container's "started" and its end, no other starts.
    let mut running: Option<String> = None;
    let mut ended = 0;
    for l in err.lines() {
        let Some((ct, rest)) = l.split_once(" -> b: ") else {
            continue;
        };
        if rest.starts_with("started") {
            assert!(
                running.is_none(),
                "{ct} started while {} was copying:\n{err}",
                running.unwrap_or_default()
            );
            running = Some(ct.to_string());
        } else if rest.starts_with("migrated") {
            assert_eq!(running.as_deref(), Some(ct), "{err}");
            running = None;
            ended += 1;
        }
    }
    assert_eq!(ended, 3, "{err}");
    for id in ["101", "102", "103"] {
        assert!(conf(b, id).is_some() && conf(a, id).is_none(), "CT {id}");
        assert_eq!(ct_status(b, id), format!("CTID {id} exist unmounted down"));
    }
    lab.teardown().unwrap();
}
