//! The legacy lab profile (`vzfs_lab::legacy`): both nodes as OpenVZ 6
//! nodes (every process under `oldkernel`: the system calls of Linux 2.6.32,
//! a 2.6 uname; the CentOS 6 toolset first in PATH: OpenSSH 5.3p1 client
//! and sshd with RSA keys, rsync 3.0.6, e2fsprogs 1.41.12, util-linux-ng
//! 2.17.2), running the static release builds of vzfs. On it: the node is
//! what it claims, migration in all five scenarios (d2 without MMP, which
//! that node cannot have, and online through a dump device), vzfs-create's
//! create and both conversions, the OCF agent's start, monitor and stop,
//! and the refusals that name what the node lacks.

mod common;

use common::{
    create_insulated, create_shared, expected_status, migrate, set_state, status, tree_sum, CT,
};
use vzfs_lab::{Disk, Fs, Host, Lab};

fn legacy_lab(name: &str) -> Option<Lab> {
    let lab = Lab::builder()
        .hosts(&["a", "b"])
        .legacy()
        .require_binary("vzfs-migrate")
        .require_binary("vzfs-hook")
        .require_binary("vzfs-create")
        .install_hook()
        .start_for_test(name)?;
    Some(lab)
}

#[test]
fn legacy_nodes_are_openvz6_nodes() {
    let Some(lab) = legacy_lab("legacy_nodes_are_openvz6_nodes") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let o = a.sh_ok("uname -r; grep Seccomp: /proc/self/status; ssh -V 2>&1; rsync --version | head -n 1; mke2fs -V 2>&1 | head -n 1").unwrap();
    assert!(o.stdout.starts_with("2.6."), "{}", o.stdout);
    assert!(o.stdout.contains("Seccomp:\t2"), "{}", o.stdout);
    assert!(o.stdout.contains("OpenSSH_5.3p1"), "{}", o.stdout);
    assert!(o.stdout.contains("version 3.0.6"), "{}", o.stdout);
    assert!(o.stdout.contains("mke2fs 1.41.12"), "{}", o.stdout);
    // sshd 5.3 serves, its sessions run the legacy tools under the 2.6.32 personality
    let o = a
        .ssh(
            b,
            &[
                "sh",
                "-c",
                "uname -r; rsync --version | head -n 1; grep Seccomp: /proc/self/status",
            ],
        )
        .unwrap();
    assert!(o.success(), "{}", o.all());
    assert!(
        o.stdout.starts_with("2.6.")
            && o.stdout.contains("3.0.6")
            && o.stdout.contains("Seccomp:\t2"),
        "{}",
        o.all()
    );
    // ssh -o ControlPersist is refused there: what vzfs-migrate must not pass
    let o = a.sh("ssh -o ControlPersist=30 b true").unwrap();
    assert!(
        !o.success() && o.all().contains("ControlPersist"),
        "{}",
        o.all()
    );
    // the shipped programs are the static release builds and start there
    for p in ["vzfs-hook", "vzfs-migrate", "vzfs-create"] {
        let o = a.run(&[p, "--version"]).unwrap();
        assert!(o.success(), "{p}: {}", o.all());
    }
    lab.teardown().unwrap();
}

/// Scenario `kind` on a legacy lab: the container in `state` on a, then the
/// migration arguments and the disks. d2 is a SAN LUN without MMP.
fn legacy_setup(lab: &Lab, kind: &str, state: &str) -> (Vec<String>, Option<Disk>) {
    let a = lab.host("a");
    let mut args: Vec<String> = Vec::new();
    let mut lun = None;
    match kind {
        "a" => create_shared(a),
        "b" => {
            create_shared(a);
            let d = lab.add_lun("dst", &["b"], Fs::Ext4).unwrap();
            args.extend(["--dst-device".into(), d.device("b").display().to_string()]);
        }
        "c" => {
            let s = lab.add_lun("src", &["a"], Fs::Ext4).unwrap();
            create_insulated(a, &s);
            args.push("--dst-shared".into());
        }
        "d1" => {
            let s = lab.add_lun("src", &["a"], Fs::Ext4).unwrap();
            create_insulated(a, &s);
            let d = lab.add_lun("dst", &["b"], Fs::Ext4).unwrap();
            args.extend(["--dst-device".into(), d.device("b").display().to_string()]);
        }
        _ => {
            let s = lab.add_lun("san", &["a", "b"], Fs::Ext4).unwrap();
            // a /dev/disk/by-id name: the same LUN on both nodes
            create_insulated(a, &s);
            a.sh_ok(&format!(
                "sed -i 's|^VE_DEVICE=.*|VE_DEVICE=\"{}\"|' /etc/vz/conf/101.conf",
                s.by_id_path().display()
            ))
            .unwrap();
            lun = Some(s);
        }
    }
    set_state(a, state);
    (args, lun)
}

fn scenario(kind: &str, state: &str) {
    let name = format!("legacy_migrate_{kind}_{state}");
    let Some(lab) = legacy_lab(&name) else { return };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (mut args, lun) = legacy_setup(&lab, kind, state);
    if kind == "d2" {
        // without MMP the handoff is refused first, and the refusal says why
        // this node cannot have MMP instead of advising tune2fs
        let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
        v.extend(["b", CT]);
        let o = migrate(a, &v);
        assert_eq!(o.exit_code(), 21, "{}", o.all());
        assert!(o.stderr.contains("MMP cannot be used here"), "{}", o.all());
        assert!(o.stderr.contains("kernel 2.6."), "{}", o.all());
        assert!(!o.stderr.contains("tune2fs -O mmp"), "{}", o.all());
        assert_eq!(status(a), expected_status(state), "the refusal changed a");
        args.push("--accept-no-mmp".into());
    }
    let insulated_down = state != "running" && !matches!(kind, "a" | "b");
    if insulated_down {
        a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    }
    let before = tree_sum(a, "/vz/private/101");
    if insulated_down {
        a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    }
    let mut v: Vec<&str> = vec!["-v"];
    v.extend(args.iter().map(String::as_str));
    v.extend(["b", CT]);
    let o = migrate(a, &v);
    assert!(o.success(), "{kind} {state}: {}", o.all());
    // the ssh master of OpenSSH 5.3 without ControlPersist, closed at the end
    assert!(o.stderr.contains("exec ssh -M -N -f"), "{}", o.stderr);
    assert!(!o.stderr.contains("ControlPersist"), "{}", o.stderr);
    assert_eq!(status(b), expected_status(state), "{kind} {state}");
    assert!(!a.path("/etc/vz/conf/101.conf").exists());
    if state != "running" {
        b.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    }
    let after = tree_sum(b, "/vz/private/101");
    assert_eq!(before, after, "{kind} {state}: the files differ");
    // `ssh -O exit` asks the master to go; it may take a moment
    let masters = a
        .sh("for i in $(seq 50); do pgrep -f '^ssh -M' >/dev/null || exit 0; sleep 0.1; done; pgrep -fa '^ssh -M'; exit 1")
        .unwrap();
    assert!(
        masters.success(),
        "an ssh master was left on a: {}",
        masters.all()
    );
    if let Some(l) = &lun {
        assert!(
            a.disk_mounts(l).unwrap().is_empty(),
            "LUN still mounted on a"
        );
    }
    b.vzctl(&["stop", CT]).unwrap();
    lab.teardown().unwrap();
}

#[test]
fn legacy_migrate_a_running() {
    scenario("a", "running");
}
#[test]
fn legacy_migrate_b_stopped() {
    scenario("b", "stopped");
}
#[test]
fn legacy_migrate_c_running() {
    scenario("c", "running");
}
#[test]
fn legacy_migrate_d1_stopped() {
    scenario("d1", "stopped");
}
#[test]
fn legacy_migrate_d2_running() {
    scenario("d2", "running");
}

/// d2 online with the dump on a shared dump device.
#[test]
fn legacy_online_d2_through_dump_device() {
    let Some(lab) = legacy_lab("legacy_online_d2_through_dump_device") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (_, lun) = legacy_setup(&lab, "d2", "running");
    let lun = lun.unwrap();
    let dump = lab.add_lun("dump", &["a", "b"], Fs::Ext4).unwrap();
    let spec = dump.by_id_path().display().to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let o = migrate(
        a,
        &[
            "-v",
            "--online",
            "--accept-no-mmp",
            "--dump-device",
            &spec,
            "b",
            CT,
        ],
    );
    assert!(o.success(), "{}", o.all());
    assert!(o.stderr.contains(" dumpdev-mount-src: "), "{}", o.stderr);
    assert!(!o.stderr.contains("exec rsync"), "{}", o.stderr);
    assert_eq!(status(b), expected_status("running"));
    let log = b
        .read_file("/vz/root/101/var/log/lab-workload.log")
        .unwrap();
    let s = vzfs_lab::workload::check_log(&log).unwrap();
    assert_eq!((s.starts, s.restores), (1, 1), "not a restore: {s:?}");
    for h in [a, b] {
        assert!(
            h.disk_mounts(&dump).unwrap().is_empty(),
            "dump device on {}",
            h.name()
        );
    }
    assert!(a.disk_mounts(&lun).unwrap().is_empty());
    b.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    lab.teardown().unwrap();
}

/// vzfs-create on a legacy node: a new insulated container (mke2fs 1.41.12,
/// rsync 3.0.6 copy verified to the second), converted to shared and back;
/// `--mmp` refused before any change, naming the kernel and e2fsprogs.
#[test]
fn legacy_create_and_convert() {
    let Some(lab) = legacy_lab("legacy_create_and_convert") else {
        return;
    };
    let a = lab.host("a");
    let d = lab
        .add_disk(vzfs_lab::DiskSpec::new("ct", &["a"], Fs::Raw))
        .unwrap();
    let dev = d.device("a").display().to_string();
    let before = a.sh_ok(&format!("md5sum {dev}")).unwrap().stdout;
    let o = a
        .run(&[
            "vzfs-create",
            "102",
            "--device",
            &dev,
            "--mkfs",
            "ext4",
            "--mmp",
            "--ostemplate",
            "lab-minimal",
        ])
        .unwrap();
    assert_eq!(o.exit_code(), 21, "{}", o.all());
    assert!(
        o.stderr.contains("kernel 2.6.") && o.stderr.contains("1.41.12"),
        "{}",
        o.all()
    );
    assert_eq!(
        a.sh_ok(&format!("md5sum {dev}")).unwrap().stdout,
        before,
        "--mmp refusal wrote the device"
    );
    assert!(!a.path("/etc/vz/conf/102.conf").exists());

    let o = a
        .run(&[
            "vzfs-create",
            "102",
            "--device",
            &dev,
            "--mkfs",
            "ext4",
            "--ostemplate",
            "lab-minimal",
        ])
        .unwrap();
    assert!(o.success(), "{}", o.all());
    let conf = a.read_file("/etc/vz/conf/102.conf").unwrap();
    assert!(conf.contains("VE_DEVICE="), "{conf}");
    // made by this node's mke2fs: nothing the 2.6.32 kernel cannot mount
    let f = a
        .sh_ok(&format!(
            "dumpe2fs -h {dev} 2>/dev/null | grep -i 'features:'"
        ))
        .unwrap()
        .stdout;
    assert!(
        !f.contains("metadata_csum") && !f.contains("64bit") && !f.contains("mmp"),
        "{f}"
    );
    a.vzctl(&["start", "102"]).unwrap().ok().unwrap();
    assert_eq!(
        a.vzctl(&["status", "102"]).unwrap().stdout.trim(),
        "CTID 102 exist mounted running"
    );
    a.vzctl(&["stop", "102"]).unwrap().ok().unwrap();
    a.vzctl(&["mount", "102"]).unwrap().ok().unwrap();
    let sum = tree_sum_of(a, "102");
    a.vzctl(&["umount", "102"]).unwrap().ok().unwrap();
    let o = a
        .run(&["vzfs-create", "102", "--convert", "--to-shared"])
        .unwrap();
    assert!(o.success(), "{}", o.all());
    assert!(!a
        .read_file("/etc/vz/conf/102.conf")
        .unwrap()
        .contains("VE_DEVICE="));
    assert_eq!(tree_sum_of(a, "102"), sum, "to shared: the files differ");
    let o = a
        .run(&[
            "vzfs-create",
            "102",
            "--convert",
            "--device",
            &dev,
            "--mkfs",
            "ext4",
            "--force",
        ])
        .unwrap();
    assert!(o.success(), "{}", o.all());
    assert!(a
        .read_file("/etc/vz/conf/102.conf")
        .unwrap()
        .contains("VE_DEVICE="));
    a.vzctl(&["mount", "102"]).unwrap().ok().unwrap();
    assert_eq!(tree_sum_of(a, "102"), sum, "to insulated: the files differ");
    a.vzctl(&["umount", "102"]).unwrap().ok().unwrap();
    lab.teardown().unwrap();
}

fn tree_sum_of(h: &Host, ctid: &str) -> String {
    tree_sum(h, &format!("/vz/private/{ctid}"))
}

/// The OCF agent on a legacy node: start (vzctl's output in a file, no
/// memfd on 2.6.32), monitor, stop; and a filesystem with a feature that
/// kernel cannot mount is refused by the hook naming it.
#[test]
fn legacy_ocf_agent_and_kernel_features() {
    let Some(lab) = legacy_lab("legacy_ocf_agent_and_kernel_features") else {
        return;
    };
    let a = lab.host("a");
    let lun = lab.add_lun("lun1", &["a", "b"], Fs::Ext4).unwrap();
    let shared = vzfs_lab::cluster::create_container(&lab, "a", &lun).unwrap();
    vzfs_lab::cluster::install_agents(&lab).unwrap();
    let agent = |action: &str| {
        let o = vzfs_lab::cluster::run_agent(a, action, &shared, &[]);
        (o.code, o.all())
    };
    assert_eq!(agent("monitor").0, Some(7), "not running yet");
    let (code, out) = agent("start");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(agent("monitor").0, Some(0));
    assert_eq!(status(a), expected_status("running"));
    let (code, out) = agent("stop");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(agent("monitor").0, Some(7));
    assert!(a.disk_mounts(&lun).unwrap().is_empty());

    // ext4 made by a current mke2fs (metadata_csum, 64bit, ...): the hook
    // names the feature and the kernel release, nothing is mounted
    let x = lab
        .add_disk(vzfs_lab::DiskSpec::new("new", &["a"], Fs::Raw))
        .unwrap();
    let dev = x.device("a").display().to_string();
    assert!(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "metadata_csum,64bit"])
        .arg(&x.image)
        .status()
        .unwrap()
        .success());
    a.sh_ok(&format!(
        "mkdir -p /vz/private/103 && printf 'VE_PRIVATE=/vz/private/103\\nVE_ROOT=/vz/root/103\\nVE_DEVICE={dev}\\n' > /etc/vz/conf/103.conf"
    ))
    .unwrap();
    let o = a.run(&["vzfs-hook", "premount", "103"]).unwrap();
    assert!(!o.success(), "{}", o.all());
    assert!(
        o.stderr.contains("metadata_csum") && o.stderr.contains("kernel 2.6."),
        "{}",
        o.all()
    );
    assert!(a.mount_at("/vz/private/103").unwrap().is_none());
    lab.teardown().unwrap();
}
