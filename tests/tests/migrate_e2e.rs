//! End-to-end tests of vzfs-migrate in the two-node lab (hosts `a` -> `b`,
//! vzctl double, vzfs-hook installed as vps.premount/vps.postumount, SAN
//! LUNs as one image behind one loop device per host).

mod common;
use common::*;

fn run_scenario(kind: &str, state: &str) {
    let name = format!("migrate_{kind}_{state}");
    let Some(lab) = lab(&name) else { return };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (args, src, _dst) = setup(&lab, kind, state);
    if state == "stopped" && src.is_some() {
        a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    }
    let before = tree_sum(a, "/vz/private/101");
    if state == "stopped" && src.is_some() {
        a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    }
    assert_eq!(status(a), expected_status(state));
    let conf_before = private_of(a);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = migrate(a, &[&["-t"][..], &argv].concat());
    assert!(out.success(), "{kind}/{state}: {}", out.all());
    // target state as the source was; source keeps no config
    assert_eq!(status(b), expected_status(state), "{}", out.all());
    assert!(!a.path("/etc/vz/conf/101.conf").exists());
    assert!(a.path("/etc/vz/conf/101.conf.migrated").exists());
    // data arrived
    if state == "stopped" && kind != "a" && kind != "c" {
        b.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    }
    assert_eq!(
        tree_sum(b, "/vz/private/101"),
        before,
        "{kind}/{state}: data differs"
    );
    if let Some(s) = &src {
        // the source device is released on the source
        assert!(!lun_mounted(a, s), "source device still mounted on a");
    }
    let conf_b = private_of(b);
    match kind {
        "b" | "d1" => {
            assert!(
                conf_b.contains("VE_DEVICE=") && conf_b.contains("VE_DEVICE_FSTYPE=\"ext4\""),
                "{conf_b}"
            )
        }
        "c" => assert!(!conf_b.contains("VE_DEVICE"), "{conf_b}"),
        "a" => assert_eq!(conf_b, conf_before),
        _ => {}
    }
    if state == "running" {
        // the workload goes on after a new start (offline: restart from 1)
        std::thread::sleep(std::time::Duration::from_millis(200));
        let log = b
            .read_file("/vz/root/101/var/log/lab-workload.log")
            .unwrap();
        assert!(vzfs_lab::workload::check_log(&log).is_ok(), "{log}");
        b.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    }
    lab.teardown().unwrap();
}

#[test]
fn migrate_a_running() {
    run_scenario("a", "running");
}
#[test]
fn migrate_a_mounted() {
    run_scenario("a", "mounted");
}
#[test]
fn migrate_a_stopped() {
    run_scenario("a", "stopped");
}
#[test]
fn migrate_b_running() {
    run_scenario("b", "running");
}
#[test]
fn migrate_b_mounted() {
    run_scenario("b", "mounted");
}
#[test]
fn migrate_b_stopped() {
    run_scenario("b", "stopped");
}
#[test]
fn migrate_c_running() {
    run_scenario("c", "running");
}
#[test]
fn migrate_c_mounted() {
    run_scenario("c", "mounted");
}
#[test]
fn migrate_c_stopped() {
    run_scenario("c", "stopped");
}
#[test]
fn migrate_d1_running() {
    run_scenario("d1", "running");
}
#[test]
fn migrate_d1_mounted() {
    run_scenario("d1", "mounted");
}
#[test]
fn migrate_d1_stopped() {
    run_scenario("d1", "stopped");
}
#[test]
fn migrate_d2_running() {
    run_scenario("d2", "running");
}
#[test]
fn migrate_d2_mounted() {
    run_scenario("d2", "mounted");
}
#[test]
fn migrate_d2_stopped() {
    run_scenario("d2", "stopped");
}
