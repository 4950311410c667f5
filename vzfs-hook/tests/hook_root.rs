//! The hook against the real thing: loop devices over image files, real ext4
//! and xfs, real mount(2), each test in its own private mount namespace (see
//! `harness`). The hook is run exactly as vzctl runs it: a symlink named
//! `vps.premount`/`vps.postumount`, argv = [script path], vzctl's exact
//! environment, stdin /dev/null.

mod harness;
use harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn ext4_premount_postumount_as_vzctl_runs_it() {
    root_test("ext4_cycle", |w| {
        let dev = w.disk("d", "ext4", &[]);
        ct(w, "101", &dev, "");
        let r = w.vzctl_hook("vps.premount", "101");
        assert_code(&r, 0, "premount");
        assert!(
            r.stderr.contains("mounted") && r.stderr.contains("/vz/private/101"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("flags none"),
            "mount is logged with its flags: {}",
            r.stderr
        );
        assert_eq!(mounts_of(&dev), vec![PathBuf::from("/vz/private/101")]);
        // vzctl runs premount again after its own failures: idempotent.
        let r = w.vzctl_hook("vps.premount", "101");
        assert_code(&r, 0, "second premount");
        assert!(r.stderr.contains("already mounted"), "{}", r.stderr);
        assert_eq!(mounts_of(&dev).len(), 1);
        let r = w.vzctl_hook("vps.postumount", "101");
        assert_code(&r, 0, "postumount");
        assert!(r.stderr.contains("released"), "{}", r.stderr);
        assert!(mounts_of(&dev).is_empty());
        let r = w.vzctl_hook("vps.postumount", "101");
        assert_code(&r, 0, "postumount when not mounted");
        assert!(r.stderr.contains("nothing"), "{}", r.stderr);
    });
}

#[test]
fn xfs_with_options_and_per_ct_script_name() {
    root_test("xfs", |w| {
        let dev = w.disk("x", "xfs", &[]);
        ct(
            w,
            "202",
            &dev,
            "VE_DEVICE_OPTIONS=\"noatime,nodev\"\nVE_DEVICE_FSTYPE=\"xfs\"\n",
        );
        std::os::unix::fs::symlink(&*HOOK, "/etc/vz/conf/202.premount").unwrap();
        std::os::unix::fs::symlink(&*HOOK, "/etc/vz/conf/202.postumount").unwrap();
        let r = w.vzctl_hook("202.premount", "202");
        if harness::legacy().is_some() {
            // a current mkfs.xfs makes v5 (crc), which 2.6.32 cannot mount
            assert_kernel_refused(&r, "xfs v5 (crc) (Linux 3.10", &dev);
            return;
        }
        assert_code(&r, 0, "premount");
        assert!(
            r.stderr.contains("type xfs flags nodev,noatime"),
            "{}",
            r.stderr
        );
        let mi = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let line = mi
            .lines()
            .find(|l| l.contains(" /vz/private/202 "))
            .unwrap();
        assert!(
            line.contains("noatime") && line.contains("nodev") && line.contains(" - xfs "),
            "{line}"
        );
        assert_code(&w.vzctl_hook("202.postumount", "202"), 0, "postumount");
        assert!(mounts_of(&dev).is_empty());
    });
}

#[test]
fn shared_container_is_left_alone() {
    root_test("shared", |w| {
        w.ct_conf("300", "OSTEMPLATE=\"debian\"\n");
        let r = w.vzctl_hook("vps.premount", "300");
        assert_code(&r, 0, "premount");
        assert!(
            !Path::new("/vz/private/300").exists(),
            "nothing created for a shared CT"
        );
        assert_code(&w.vzctl_hook("vps.postumount", "300"), 0, "postumount");
    });
}

#[test]
fn paths_with_spaces_and_ids_sharing_a_prefix() {
    root_test("spaces_prefix", |w| {
        std::fs::create_dir_all("/vz/my private").unwrap();
        let d10 = w.disk("d10", "ext4", &[]);
        let d101 = w.disk("d101", "ext4", &[]);
        ct(w, "10", &d10, "VE_PRIVATE=\"/vz/my private/$VEID\"\n");
        ct(w, "101", &d101, "VE_PRIVATE=\"/vz/my private/$VEID\"\n");
        assert_code(&w.vzctl_hook("vps.premount", "101"), 0, "premount 101");
        assert_code(&w.vzctl_hook("vps.premount", "10"), 0, "premount 10");
        assert_eq!(mounts_of(&d10), vec![PathBuf::from("/vz/my private/10")]);
        assert_eq!(mounts_of(&d101), vec![PathBuf::from("/vz/my private/101")]);
        // Unmounting 10 must not touch 101, and vice versa.
        assert_code(&w.vzctl_hook("vps.postumount", "10"), 0, "postumount 10");
        assert!(mounts_of(&d10).is_empty());
        assert_eq!(mounts_of(&d101).len(), 1);
        // 1 has no config for a device; 10 is not mounted: nothing to do.
        assert_code(
            &w.vzctl_hook("vps.postumount", "10"),
            0,
            "postumount 10 again",
        );
        assert_eq!(mounts_of(&d101).len(), 1);
        assert_code(&w.vzctl_hook("vps.postumount", "101"), 0, "postumount 101");
        assert!(mounts_of(&d101).is_empty());
    });
}

#[test]
fn hostile_config_runs_nothing() {
    root_test("hostile", |w| {
        let marker = w.scratch.join("pwned");
        for (n, line) in [
            format!("VE_DEVICE=\"$(touch {})\"", marker.display()),
            format!("VE_DEVICE=`touch {}`", marker.display()),
            format!("VE_DEVICE=/dev/null; touch {}", marker.display()),
        ]
        .iter()
        .enumerate()
        {
            let id = format!("{}", 400 + n);
            w.ct_conf(&id, &format!("OSTEMPLATE=debian\n{line}\n"));
            let r = w.vzctl_hook("vps.premount", &id);
            assert_code(&r, 2, line);
            assert!(
                r.stderr.contains(&format!("/etc/vz/conf/{id}.conf")) && r.stderr.contains(":2"),
                "names file and line: {}",
                r.stderr
            );
            assert!(r.stderr.contains("shell"), "{}", r.stderr);
            assert!(!marker.exists(), "the config was executed: {line}");
        }
        let r = w.vzctl_hook("vps.premount", "999");
        assert_code(&r, 2, "missing config");
        assert!(r.stderr.contains("/etc/vz/conf/999.conf"), "{}", r.stderr);
    });
}

#[test]
fn eight_concurrent_premounts_and_postumounts() {
    root_test("concurrent", |w| {
        let dev = w.disk("c", "ext4", &[]);
        ct(w, "500", &dev, "");
        for script in ["vps.premount", "vps.postumount"] {
            let kids: Vec<_> = (0..8)
                .map(|_| {
                    w.vzctl_hook_cmd(script, "500")
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for k in kids {
                let o = k.wait_with_output().unwrap();
                assert!(
                    o.status.success(),
                    "{script}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            let n = mounts_of(&dev).len();
            assert_eq!(
                n,
                if script == "vps.premount" { 1 } else { 0 },
                "after 8 concurrent {script}"
            );
        }
    });
}

#[test]
fn busy_filesystem_names_the_process_and_stays_mounted() {
    root_test("busy", |w| {
        let dev = w.disk("b", "ext4", &[]);
        ct(w, "600", &dev, "");
        assert_code(&w.vzctl_hook("vps.premount", "600"), 0, "premount");
        let pid = w.keep(
            Command::new("sleep")
                .arg("600")
                .current_dir("/vz/private/600")
                .spawn()
                .unwrap(),
        );
        let r = w.vzctl_hook("vps.postumount", "600");
        assert_code(&r, 5, "postumount of a busy fs");
        assert!(
            r.stderr.contains(&format!("pid {pid} (sleep: cwd)")),
            "{}",
            r.stderr
        );
        assert_eq!(
            mounts_of(&dev).len(),
            1,
            "still mounted, not lazily detached"
        );
        w.kill_children();
        assert_code(
            &w.vzctl_hook("vps.postumount", "600"),
            0,
            "postumount after the process ended",
        );
    });
}

#[test]
fn copy_of_the_mount_in_another_namespace_is_detected() {
    root_test("other_ns", |w| {
        let dev = w.disk("n", "ext4", &[]);
        ct(w, "700", &dev, "");
        assert_code(&w.vzctl_hook("vps.premount", "700"), 0, "premount");
        // A new mount namespace copies every mount, ours included.
        let pid = w.keep(
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sleep", "600"])
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(300));
        let r = w.vzctl_hook("vps.postumount", "700");
        assert_code(&r, 6, "postumount with a copy elsewhere");
        assert!(
            r.stderr.contains("STILL ALIVE") && r.stderr.contains(&format!("pid {pid}")),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("/vz/private/700"), "{}", r.stderr);
        // premount now refuses too: the device is held elsewhere on this node.
        let r = w.vzctl_hook("vps.premount", "700");
        assert_code(&r, 4, "premount while held elsewhere");
        assert!(r.stderr.contains("in use on this node"), "{}", r.stderr);
        w.kill_children();
        std::thread::sleep(Duration::from_millis(200));
        assert_code(
            &w.vzctl_hook("vps.premount", "700"),
            0,
            "premount after release",
        );
        assert_code(&w.vzctl_hook("vps.postumount", "700"), 0, "postumount");
    });
}

#[test]
fn refusals_about_what_is_mounted() {
    root_test("refusals", |w| {
        let dev = w.disk("r", "ext4", &[]);
        ct(w, "800", &dev, "");
        // Something else on VE_PRIVATE.
        std::fs::create_dir_all("/vz/private/800").unwrap();
        sh("mount -t tmpfs other /vz/private/800");
        let r = w.vzctl_hook("vps.premount", "800");
        assert_code(&r, 4, "premount over another mount");
        assert!(
            r.stderr.contains("other") && r.stderr.contains("tmpfs"),
            "{}",
            r.stderr
        );
        let r = w.vzctl_hook("vps.postumount", "800");
        assert_code(&r, 4, "postumount of something else");
        sh("umount /vz/private/800");
        // The device mounted somewhere else on this node.
        std::fs::create_dir_all("/vz/elsewhere").unwrap();
        sh(&format!("mount {} /vz/elsewhere", dev.display()));
        let r = w.vzctl_hook("vps.premount", "800");
        assert_code(&r, 4, "premount of a device mounted elsewhere");
        assert!(r.stderr.contains("/vz/elsewhere"), "{}", r.stderr);
        sh("umount /vz/elsewhere");
        // VE_ROOT still mounted (vzctl failed to unmount) at postumount.
        assert_code(&w.vzctl_hook("vps.premount", "800"), 0, "premount");
        std::fs::create_dir_all("/vz/root/800").unwrap();
        sh("mount --bind /vz/private/800 /vz/root/800");
        let r = w.vzctl_hook("vps.postumount", "800");
        assert_code(&r, 5, "postumount with VE_ROOT mounted");
        assert!(r.stderr.contains("VE_ROOT"), "{}", r.stderr);
        sh("umount /vz/root/800");
        assert_code(&w.vzctl_hook("vps.postumount", "800"), 0, "postumount");
    });
}

#[test]
fn device_resolution_errors_and_uuid_label() {
    root_test("devices", |w| {
        let dev = w.disk("u", "ext4", &["-L", "ct900"]);
        let uuid = sh(&format!("blkid -s UUID -o value {}", dev.display()))
            .trim()
            .to_string();
        w.ct_conf("900", &format!("VE_DEVICE=\"UUID={uuid}\"\n"));
        assert_code(&w.vzctl_hook("vps.premount", "900"), 0, "premount by UUID");
        assert_eq!(mounts_of(&dev).len(), 1);
        assert_code(
            &w.vzctl_hook("vps.postumount", "900"),
            0,
            "postumount by UUID",
        );
        // By UUID, postumount identifies what is mounted by its superblock:
        // another filesystem on VE_PRIVATE is refused and left alone.
        let other = w.disk("o", "ext4", &[]);
        sh(&format!("mount {} /vz/private/900", other.display()));
        let r = w.vzctl_hook("vps.postumount", "900");
        assert_code(&r, 4, "postumount of a filesystem with another UUID");
        assert!(r.stderr.contains(&format!("UUID={uuid}")), "{}", r.stderr);
        assert_eq!(mounts_of(&other).len(), 1);
        sh("umount /vz/private/900");
        w.ct_conf("900", "VE_DEVICE=\"LABEL=ct900\"\n");
        assert_code(&w.vzctl_hook("vps.premount", "900"), 0, "premount by LABEL");
        assert_code(
            &w.vzctl_hook("vps.postumount", "900"),
            0,
            "postumount by LABEL",
        );
        // The same image through a second loop device: two matches, no guess.
        let img = w.scratch.join("u.img");
        let dev2 = w.attach(&img);
        w.ct_conf("900", &format!("VE_DEVICE=\"UUID={uuid}\"\n"));
        let r = w.vzctl_hook("vps.premount", "900");
        assert_code(&r, 3, "ambiguous UUID");
        assert!(
            r.stderr.contains("matches 2 devices")
                && r.stderr.contains(&dev2.display().to_string()),
            "{}",
            r.stderr
        );
        // The same filesystem mounted through the other device node: refused by UUID.
        std::fs::create_dir_all("/vz/else2").unwrap();
        sh(&format!("mount {} /vz/else2", dev2.display()));
        w.ct_conf("900", &format!("VE_DEVICE=\"{}\"\n", dev.display()));
        let r = w.vzctl_hook("vps.premount", "900");
        assert_code(&r, 4, "same UUID mounted through another node");
        assert!(
            r.stderr.contains(&format!("through {}", dev2.display()))
                && r.stderr.contains("/vz/else2"),
            "{}",
            r.stderr
        );
        assert!(mounts_of(&dev).is_empty());
        sh("umount /vz/else2");
        // Missing device, not a block device, wrong type, not a filesystem.
        w.ct_conf("901", "VE_DEVICE=\"/dev/does-not-exist\"\n");
        let r = w.vzctl_hook("vps.premount", "901");
        assert_code(&r, 3, "missing device");
        assert!(
            r.stderr.contains("/dev/does-not-exist") && r.stderr.contains("UUID="),
            "{}",
            r.stderr
        );
        w.ct_conf("902", &format!("VE_DEVICE=\"{}\"\n", img.display()));
        let r = w.vzctl_hook("vps.premount", "902");
        assert_code(&r, 3, "regular file");
        assert!(r.stderr.contains("not a block device"), "{}", r.stderr);
        w.ct_conf(
            "903",
            &format!("VE_DEVICE=\"{}\"\nVE_DEVICE_FSTYPE=xfs\n", dev.display()),
        );
        let r = w.vzctl_hook("vps.premount", "903");
        assert_code(&r, 3, "wrong fstype");
        assert!(
            r.stderr.contains("holds ext4") && r.stderr.contains("xfs"),
            "{}",
            r.stderr
        );
        let blank = w.image("blank", 16);
        let bdev = w.attach(&blank);
        w.ct_conf("904", &format!("VE_DEVICE=\"{}\"\n", bdev.display()));
        let r = w.vzctl_hook("vps.premount", "904");
        assert_code(&r, 3, "no filesystem");
        assert!(r.stderr.contains("no filesystem"), "{}", r.stderr);
        assert!(mounts_of(&dev).is_empty() && mounts_of(&dev2).is_empty());
    });
}

#[test]
fn symlinked_paths_are_resolved_and_planted_links_refused() {
    root_test("symlinks", |w| {
        // /vz/private -> /vz/real-private, as admins do with /vz -> /var/lib/vz.
        std::fs::create_dir_all("/vz/real-private").unwrap();
        std::fs::remove_dir("/vz/private").unwrap();
        std::os::unix::fs::symlink("/vz/real-private", "/vz/private").unwrap();
        let dev = w.disk("s", "ext4", &[]);
        ct(w, "110", &dev, "");
        assert_code(
            &w.vzctl_hook("vps.premount", "110"),
            0,
            "premount through a symlink",
        );
        assert_eq!(mounts_of(&dev), vec![PathBuf::from("/vz/real-private/110")]);
        assert_code(
            &w.vzctl_hook("vps.postumount", "110"),
            0,
            "postumount through a symlink",
        );
        assert!(mounts_of(&dev).is_empty());
        // Container 111's private area holds a link planted from inside it;
        // container 112's VE_PRIVATE goes through that link.
        std::fs::create_dir_all("/vz/real-private/111/etc").unwrap();
        w.ct_conf("111", "OSTEMPLATE=debian\n");
        std::os::unix::fs::symlink("/vz/real-private/111/etc", "/vz/trap").unwrap();
        ct(w, "112", &dev, "VE_PRIVATE=\"/vz/trap\"\n");
        let r = w.vzctl_hook("vps.premount", "112");
        assert_code(&r, 4, "premount through a planted link");
        assert!(r.stderr.contains("container 111"), "{}", r.stderr);
        assert!(mounts_of(&dev).is_empty());
    });
}

#[test]
fn lock_survives_kill_9_and_serialises() {
    root_test("lock", |w| {
        let dev = w.disk("l", "ext4", &[]);
        ct(w, "120", &dev, "");
        // A holder of the hook's lock, then killed with SIGKILL.
        let mut holder = Command::new("sh")
            .args([
                "-c",
                "exec 9>/vz/lock/vzfs-120.lck && flock 9 && exec sleep 600",
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut pre = w
            .vzctl_hook_cmd("vps.premount", "120")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            pre.try_wait().unwrap().is_none(),
            "premount waits for the lock"
        );
        assert!(mounts_of(&dev).is_empty());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(holder.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = holder.wait();
        let o = pre.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(mounts_of(&dev).len(), 1);
        assert_code(&w.vzctl_hook("vps.postumount", "120"), 0, "postumount");
    });
}

#[test]
fn fsck_modes() {
    root_test("fsck", |w| {
        let dev = w.disk("f", "ext4", &[]);
        ct(w, "130", &dev, "VE_DEVICE_FSCK=yes\n");
        let r = w.vzctl_hook("vps.premount", "130");
        assert_code(&r, 0, "premount with fsck=yes");
        assert!(r.stderr.contains("e2fsck -f -p"), "{}", r.stderr);
        assert_code(&w.vzctl_hook("vps.postumount", "130"), 0, "postumount");
        // auto: a clean filesystem is not checked; one marked with errors is.
        ct(w, "130", &dev, "VE_DEVICE_FSCK=auto\n");
        let r = w.vzctl_hook("vps.premount", "130");
        assert!(!r.stderr.contains("e2fsck"), "{}", r.stderr);
        assert_code(&w.vzctl_hook("vps.postumount", "130"), 0, "postumount");
        sh(&format!(
            "debugfs -w -R 'ssv state 2' {} 2>/dev/null",
            dev.display()
        ));
        let r = w.vzctl_hook("vps.premount", "130");
        assert_code(&r, 0, "premount after e2fsck -p fixed it");
        assert!(r.stderr.contains("e2fsck -p"), "{}", r.stderr);
        assert_code(&w.vzctl_hook("vps.postumount", "130"), 0, "postumount");
        // A bad value is a config error naming the key.
        ct(w, "130", &dev, "VE_DEVICE_FSCK=sometimes\n");
        let r = w.vzctl_hook("vps.premount", "130");
        assert_code(&r, 2, "bad VE_DEVICE_FSCK");
        assert!(
            r.stderr.contains("VE_DEVICE_FSCK") && r.stderr.contains("130.conf:4"),
            "{}",
            r.stderr
        );
    });
}

#[test]
fn mmp_names_the_other_node() {
    root_test("mmp", |w| {
        let dev = w.disk("m", "ext4", &["-O", "mmp", "-E", "mmp_update_interval=1"]);
        if harness::legacy().is_some() {
            // A 2.6.32 kernel cannot mount MMP: the hook says so, naming
            // the feature and the kernel, and mounts nothing.
            ct(w, "140", &dev, "");
            assert_kernel_refused(&w.vzctl_hook("vps.premount", "140"), "mmp (Linux 3.0", &dev);
            return;
        }
        let img = w.scratch.join("m.img");
        let other = w.attach(&img);
        // "Node B": its own mount and UTS namespaces, mounting the LUN
        // through its own device node.
        let script = format!("hostname nodeB && mkdir -p /tmp/nodeB-mnt-$$ && mount {} /tmp/nodeB-mnt-$$ && exec sleep 600", other.display());
        w.keep(
            Command::new("unshare")
                .args([
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    &script,
                ])
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(1500));
        // This node sees only its own disk, as on real hardware.
        w.private_dev(&[&dev]);
        ct(w, "140", &dev, "");
        let r = w.vzctl_hook("vps.premount", "140");
        assert_code(&r, 4, "premount of a LUN held by node B");
        // kmmpd records the kernel's own host name (init_utsname), so on one
        // machine both "nodes" have the same name; the device name in the
        // MMP block is node B's own device node.
        let other_name = other.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            r.stderr.contains(&format!("its device {other_name}"))
                && r.stderr.contains("another node"),
            "{}",
            r.stderr
        );
        assert!(mounts_of(&dev).is_empty());
        w.kill_children();
        // Node B's namespace is gone; its mount was not cleanly unmounted
        // by an admin but the kernel's teardown releases MMP cleanly.
        std::thread::sleep(Duration::from_millis(500));
        let r = w.vzctl_hook("vps.premount", "140");
        assert_code(&r, 0, "premount after node B let go");
        assert_code(&w.vzctl_hook("vps.postumount", "140"), 0, "postumount");
    });
}

#[test]
fn admin_subcommands_and_verbosity() {
    root_test("admin", |w| {
        let dev = w.disk("a", "ext4", &[]);
        ct(w, "150", &dev, "");
        let r = w.admin(&["status", "150"]);
        assert_code(&r, 0, "status");
        assert!(
            r.stdout.contains("insulated") && r.stdout.contains("mounted now: no"),
            "{}",
            r.stdout
        );
        assert_code(&w.admin(&["premount", "150"]), 0, "admin premount");
        let r = w.admin(&["status", "150"]);
        assert!(
            r.stdout.contains("mounted now: yes, on /vz/private/150"),
            "{}",
            r.stdout
        );
        assert_code(
            &w.admin(&["-q", "postumount", "150"]),
            0,
            "admin postumount",
        );
        // VZFS_VERBOSE=0 in vz.conf silences the action lines of the hook.
        let g = std::fs::read_to_string("/etc/vz/vz.conf").unwrap();
        std::fs::write("/etc/vz/vz.conf", format!("{g}VZFS_VERBOSE=0\n")).unwrap();
        let r = w.vzctl_hook("vps.premount", "150");
        assert_code(&r, 0, "quiet premount");
        assert!(r.stderr.is_empty(), "{}", r.stderr);
        assert_code(
            &w.vzctl_hook("vps.postumount", "150"),
            0,
            "quiet postumount",
        );
        assert_code(&w.admin(&["premount", "abc"]), 2, "bad CTID");
        let r = Command::new(&*HOOK).arg("frobnicate").output().unwrap();
        assert_eq!(r.status.code(), Some(2), "clap usage error");
        // Started as a hook without vzctl's environment.
        let r = w
            .vzctl_hook_cmd("vps.premount", "150")
            .env_remove("VEID")
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&r.stderr).contains("VEID is not set"));
    });
}

#[test]
fn busy_for_a_moment_is_retried() {
    root_test("retry", |w| {
        let dev = w.disk("t", "ext4", &[]);
        ct(w, "160", &dev, "");
        assert_code(&w.vzctl_hook("vps.premount", "160"), 0, "premount");
        // Holds the filesystem for 0.4 s: shorter than the hook's retry window.
        w.keep(
            Command::new("sh")
                .args(["-c", "cd /vz/private/160 && exec sleep 0.4"])
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(100));
        let r = w.vzctl_hook("vps.postumount", "160");
        assert_code(&r, 0, "postumount retried until the holder left");
        assert!(mounts_of(&dev).is_empty());
        // A private area whose parent does not exist is an error, not a mkdir -p.
        ct(w, "161", &dev, "VE_PRIVATE=\"/vz/no-such-parent/$VEID\"\n");
        let r = w.vzctl_hook("vps.premount", "161");
        assert_code(&r, 4, "missing parent");
        assert!(
            r.stderr.contains("/vz/no-such-parent") && r.stderr.contains("parent"),
            "{}",
            r.stderr
        );
        assert!(!Path::new("/vz/no-such-parent").exists());
    });
}

#[test]
fn every_action_line_also_goes_to_syslog() {
    root_test("syslog", |w| {
        let dev = w.disk("y", "ext4", &[]);
        ct(w, "170", &dev, "");
        w.private_dev(&[&dev]);
        let sock = std::os::unix::net::UnixDatagram::bind("/dev/log").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_code(&w.vzctl_hook("vps.premount", "170"), 0, "premount");
        let r = w.vzctl_hook("vps.postumount", "170");
        assert_code(&r, 0, "postumount");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.iter().any(|m| m.contains("unmounted")) {
                break;
            }
        }
        assert!(
            got.iter()
                .any(|m| m.contains("vzfs-hook[") && m.contains("CT 170: mounted")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|m| m.contains("CT 170: unmounted")),
            "{got:?}"
        );
    });
}
