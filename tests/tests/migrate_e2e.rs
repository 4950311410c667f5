//! End-to-end tests of vzfs-migrate in the two-node lab (hosts `a` -> `b`,
//! vzctl double, vzfs-hook installed as vps.premount/vps.postumount, SAN
//! LUNs as one image behind one loop device per host).

use vzfs_lab::{Disk, Fs, Host, Lab};

const CT: &str = "101";

fn lab(name: &str) -> Option<Lab> {
    let lab = Lab::builder()
        .hosts(&["a", "b"])
        .require_binary("vzfs-migrate")
        .require_binary("vzfs-hook")
        .start_for_test(name)?;
    for h in lab.hosts() {
        h.sh_ok(
            "ln -sf /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.premount && \
             ln -sf /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.postumount",
        )
        .unwrap();
    }
    Some(lab)
}

/// A shared container with a few files (and a hard link, a sparse file).
fn create_shared(a: &Host) {
    a.vzctl(&["create", CT, "--ostemplate", "lab-minimal"])
        .unwrap()
        .ok()
        .unwrap();
    a.sh_ok(
        "cd /vz/private/101 && mkdir -p data/sub && echo hello > data/a && \
         head -c 200000 /dev/urandom > data/sub/blob && ln data/a data/a-link && \
         truncate -s 10M data/sparse && chmod 640 data/a && chown 1234:99 data/sub/blob",
    )
    .unwrap();
}

/// An insulated container: created shared, then its files moved onto `dev`.
fn create_insulated(a: &Host, lun: &Disk) {
    create_shared(a);
    let dev = lun.device(a.name()).display().to_string();
    a.sh_ok(&format!(
        "mkdir -p /var/tmp/m && mount {dev} /var/tmp/m && cp -a /vz/private/101/. /var/tmp/m/ && \
         umount /var/tmp/m && rm -rf /vz/private/101 && mkdir /vz/private/101 && \
         echo 'VE_DEVICE=\"{dev}\"' >> /etc/vz/conf/101.conf"
    ))
    .unwrap();
}

/// Checksums and metadata of a private area (workload log and lost+found excluded).
fn tree_sum(h: &Host, dir: &str) -> String {
    h.sh_ok(&format!(
        "cd {dir} && find . -mindepth 1 \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -printf '%p %y %m %U:%G %n\\n' | sort && \
         find . \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -type f -printf '%p %s\\n' | sort && \
         find . \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum"
    ))
    .unwrap()
    .stdout
}

fn status(h: &Host) -> String {
    h.vzctl(&["status", CT]).unwrap().stdout.trim().to_string()
}

fn set_state(a: &Host, state: &str) {
    match state {
        "running" => {
            a.vzctl(&["start", CT]).unwrap().ok().unwrap();
        }
        "mounted" => {
            a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
        }
        _ => {}
    }
}

fn expected_status(state: &str) -> String {
    match state {
        "running" => "CTID 101 exist mounted running".into(),
        "mounted" => "CTID 101 exist mounted down".into(),
        _ => "CTID 101 exist unmounted down".into(),
    }
}

fn migrate(a: &Host, args: &[&str]) -> vzfs_lab::Output {
    let mut v = vec!["vzfs-migrate"];
    v.extend_from_slice(args);
    a.run(&v).unwrap()
}

/// Is the filesystem of `lun` mounted (or held) on host `h`?
fn lun_mounted(h: &Host, lun: &Disk) -> bool {
    let dev = lun.device(h.name()).display().to_string();
    let out = h
        .sh(&format!("grep -c ' {dev} ' /proc/self/mountinfo || true"))
        .unwrap();
    out.stdout.trim() != "0"
}

fn private_of(h: &Host) -> String {
    h.read_file("/etc/vz/conf/101.conf").unwrap_or_default()
}

/// Build the source container for scenario `kind` in `state`; returns the
/// migrate arguments and the LUNs.
fn setup(lab: &Lab, kind: &str, state: &str) -> (Vec<String>, Option<Disk>, Option<Disk>) {
    let a = lab.host("a");
    let (mut args, src, dst) = match kind {
        "a" => {
            create_shared(a);
            (vec![], None, None)
        }
        "b" => {
            create_shared(a);
            let d = lab.add_lun("dst", &["b"], Fs::Ext4).unwrap();
            (
                vec![
                    "--dst-device".to_string(),
                    d.device("b").display().to_string(),
                ],
                None,
                Some(d),
            )
        }
        "c" => {
            let s = lab.add_lun("src", &["a"], Fs::Ext4).unwrap();
            create_insulated(a, &s);
            (vec!["--dst-shared".to_string()], Some(s), None)
        }
        "d1" => {
            let s = lab.add_lun("src", &["a"], Fs::Ext4).unwrap();
            create_insulated(a, &s);
            let d = lab.add_lun("dst", &["b"], Fs::Ext4).unwrap();
            (
                vec![
                    "--dst-device".to_string(),
                    d.device("b").display().to_string(),
                ],
                Some(s),
                Some(d),
            )
        }
        _ => {
            let s = lab.add_lun("san", &["a", "b"], Fs::Ext4Mmp).unwrap();
            create_insulated(a, &s);
            (vec![], Some(s), None)
        }
    };
    set_state(a, state);
    args.push("b".into());
    args.push(CT.into());
    (args, src, dst)
}

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
