//! Tests of the lab itself: hosts are isolated like real nodes, ssh lands in
//! the right host, a SAN LUN is as dangerous as a real one (and MMP protects
//! it), and teardown leaves nothing behind, also after a panic.

use std::path::Path;
use vzfs_lab::{cmd, Fs, Lab};

fn lab(test: &str) -> Option<Lab> {
    Lab::builder().hosts(&["a", "b"]).start_for_test(test)
}

/// Loop devices (by backing image) and netns names belonging to a lab tag.
fn leftovers(tag: &str, images: &[std::path::PathBuf]) -> Vec<String> {
    let mut v = Vec::new();
    let lo = cmd::machine_ok(&["losetup", "-a"]).unwrap().stdout;
    for img in images {
        if lo.contains(&img.display().to_string()) {
            v.push(format!(
                "loop device over {} still attached:\n{lo}",
                img.display()
            ));
        }
    }
    let ns = cmd::machine_ok(&["ip", "netns", "list"]).unwrap().stdout;
    for l in ns.lines() {
        if l.starts_with(tag) {
            v.push(format!("netns left: {l}"));
        }
    }
    v
}

#[test]
fn ssh_from_a_runs_in_b() {
    let Some(lab) = lab("ssh_from_a_runs_in_b") else {
        return;
    };
    let (a, b) = (lab.host("a"), lab.host("b"));
    assert_ne!(a.ip(), b.ip());
    // The marker exists only in b's /etc/vz.
    b.write_file("/etc/vz/marker", "I am b\n").unwrap();
    let out2 = a.ssh(b, &["sh", "-c", "hostname; readlink /proc/self/ns/mnt; readlink /proc/self/ns/net; cat /etc/vz/marker"]).unwrap();
    assert!(out2.success(), "{out2}\nsshd log of b: {}", b.sshd_log());
    let lines: Vec<&str> = out2.stdout.lines().collect();
    assert_eq!(lines, vec!["b", b.mnt_ns(), b.net_ns(), "I am b"], "{out2}");
    // ... and not on a, nor on the machine.
    assert!(!a.path("/etc/vz/marker").exists());
    assert!(!Path::new("/etc/vz/marker").exists());
    // Host names resolve, ssh by name works, the remote exit code comes back.
    let out = a.run(&["ssh", "b", "exit 7"]).unwrap();
    assert_eq!(out.exit_code(), 7, "{out}");
    // The vzctl double is on the PATH of an ssh session.
    let out = lab.ssh("b", "a", &["vzctl", "--version"]).unwrap();
    assert!(out.success() && out.stdout.contains("test double"), "{out}");
    // Quoting: an argument with spaces and quotes arrives as one argument.
    let out = a
        .ssh(b, &["printf", "%s|", "x y", "it's", "$HOME"])
        .unwrap();
    assert_eq!(out.stdout, "x y|it's|$HOME|", "{out}");
    lab.teardown().unwrap();
}

#[test]
fn each_host_sees_only_its_own_disks() {
    let Some(lab) = lab("each_host_sees_only_its_own_disks") else {
        return;
    };
    let da = lab.add_local_disk("a", "local-a", Fs::Ext4).unwrap();
    let db = lab.add_local_disk("b", "local-b", Fs::Xfs).unwrap();
    let lun = lab.add_lun("lun1", &["a", "b"], Fs::Ext4Mmp).unwrap();
    assert_ne!(
        lun.device("a"),
        lun.device("b"),
        "a LUN must be two devices"
    );
    for (host, own) in [
        ("a", vec![da.device("a"), lun.device("a")]),
        ("b", vec![db.device("b"), lun.device("b")]),
    ] {
        let h = lab.host(host);
        let out = h.run_ok(&["blkid", "-o", "device"]).unwrap();
        let mut seen: Vec<&str> = out.stdout.lines().collect();
        seen.sort();
        let mut want: Vec<String> = own.iter().map(|p| p.display().to_string()).collect();
        want.sort();
        assert_eq!(seen, want, "blkid on {host}: {out}");
        // Block devices in the host's /dev: exactly its own.
        let out = h
            .sh_ok("for f in /dev/*; do [ -b \"$f\" ] && echo $f; done; true")
            .unwrap();
        let mut blk: Vec<&str> = out.stdout.lines().collect();
        blk.sort();
        assert_eq!(blk, want, "block devices in /dev of {host}");
        // The same filesystem UUID on both, through the by-uuid and by-id links.
        let uuid = h
            .run_ok(&[
                "blkid",
                "-o",
                "value",
                "-s",
                "UUID",
                lun.by_id_path().to_str().unwrap(),
            ])
            .unwrap();
        assert_eq!(Some(uuid.stdout.trim().to_string()), lun.uuid);
        let t = h
            .run_ok(&[
                "readlink",
                "-f",
                lun.by_uuid_path().unwrap().to_str().unwrap(),
            ])
            .unwrap();
        assert_eq!(t.stdout.trim(), lun.device(host).display().to_string());
    }
    lab.teardown().unwrap();
}

#[test]
fn san_without_mmp_mounts_on_both_hosts_at_once() {
    let Some(lab) = lab("san_without_mmp_mounts_on_both_hosts_at_once") else {
        return;
    };
    let lun = lab.add_lun("shared", &["a", "b"], Fs::Ext4).unwrap();
    for h in ["a", "b"] {
        let host = lab.host(h);
        host.run_ok(&["mkdir", "-p", "/vz/private/101"]).unwrap();
        let out = host
            .run(&["mount", lun.device(h).to_str().unwrap(), "/vz/private/101"])
            .unwrap();
        assert!(
            out.success(),
            "mount on {h} must succeed without MMP (the lab is as dangerous as a SAN): {out}"
        );
        let m = host.mount_at("/vz/private/101").unwrap().expect("mounted");
        assert_eq!(m.fstype, "ext4");
        assert_eq!(m.source, lun.device(h).display().to_string());
        // Not visible on the other host, nor on the machine.
        let other = if h == "a" { "b" } else { "a" };
        if h == "a" {
            assert!(lab
                .host(other)
                .mount_at("/vz/private/101")
                .unwrap()
                .is_none());
        }
    }
    let mine = vzfs_lab::mountinfo::read(Path::new("/proc/self/mountinfo")).unwrap();
    assert!(vzfs_lab::mountinfo::mounted_at(&mine, Path::new("/vz/private/101")).is_none());
    for h in ["a", "b"] {
        lab.host(h).run_ok(&["umount", "/vz/private/101"]).unwrap();
    }
    lab.teardown().unwrap();
}

#[test]
fn san_with_mmp_refuses_the_second_mount() {
    let Some(lab) = lab("san_with_mmp_refuses_the_second_mount") else {
        return;
    };
    let lun = lab.add_lun("mmp", &["a", "b"], Fs::Ext4Mmp).unwrap();
    let (a, b) = (lab.host("a"), lab.host("b"));
    a.run_ok(&["mount", lun.device("a").to_str().unwrap(), "/mnt"])
        .unwrap();
    let out = b
        .run(&["mount", lun.device("b").to_str().unwrap(), "/mnt"])
        .unwrap();
    assert!(!out.success(), "MMP must refuse a second mount: {out}");
    // Refused by MMP (EBUSY), not by a device that cannot be read (EIO).
    assert!(
        !out.stderr.contains("can't read superblock"),
        "the refusal must come from MMP, not from an unreadable device: {out}"
    );
    for h in ["a", "b"] {
        let backing = vzfs_lab::loopdev::Backing::of(&lun.image).unwrap();
        assert!(
            vzfs_lab::loopdev::backs(lun.device(h), backing).unwrap(),
            "{h}'s view of the LUN must still be attached"
        );
    }
    assert!(b.mount_at("/mnt").unwrap().is_none());
    // After a clean unmount on a, b may mount it.
    a.run_ok(&["umount", "/mnt"]).unwrap();
    b.run_ok(&["mount", lun.device("b").to_str().unwrap(), "/mnt"])
        .unwrap();
    b.run_ok(&["umount", "/mnt"]).unwrap();
    lab.teardown().unwrap();
}

/// A loop device that no longer backs a lab's image (cleared, then handed
/// to someone else) is never detached by that lab: the check and the detach
/// go through one descriptor. Before, a teardown's retry detached loopN by
/// name and pulled a parallel test's LUN from under its mount (EIO).
#[test]
fn detach_leaves_a_device_bound_to_another_image_alone() {
    use vzfs_lab::loopdev::{backs, detach_if_backs, Backing, Detach};
    let Some(lab) = lab("detach_leaves_a_device_bound_to_another_image_alone") else {
        return;
    };
    let x = lab
        .add_disk(vzfs_lab::DiskSpec::new("x", &["a"], Fs::Ext4))
        .unwrap();
    let y = lab
        .add_disk(vzfs_lab::DiskSpec::new("y", &["a"], Fs::Ext4))
        .unwrap();
    let (bx, by) = (
        Backing::of(&x.image).unwrap(),
        Backing::of(&y.image).unwrap(),
    );
    let (dx, dy) = (x.device("a").to_path_buf(), y.device("a").to_path_buf());
    let a = lab.host("a");
    a.run_ok(&["mount", dy.to_str().unwrap(), "/mnt"]).unwrap();
    // x's identity against y's device: not ours, nothing done.
    assert_eq!(detach_if_backs(&dy, bx).unwrap(), Detach::NotOurs);
    assert!(backs(&dy, by).unwrap());
    a.run_ok(&["touch", "/mnt/still-writable"]).unwrap();
    a.run_ok(&["sync"]).unwrap();
    // x's own device: cleared.
    assert_eq!(detach_if_backs(&dx, bx).unwrap(), Detach::Cleared);
    assert!(!backs(&dx, bx).unwrap());
    // Again (a retry): nothing left to do, and nothing else touched.
    assert_eq!(detach_if_backs(&dx, bx).unwrap(), Detach::NotOurs);
    assert!(backs(&dy, by).unwrap());
    a.run_ok(&["umount", "/mnt"]).unwrap();
    lab.teardown().unwrap();
}

#[test]
fn host_has_private_vz_dirs_and_path() {
    let Some(lab) = lab("host_has_private_vz_dirs_and_path") else {
        return;
    };
    let a = lab.host("a");
    let out = a
        .sh_ok("cat /etc/vz/vz.conf; ls /vz; command -v vzctl; ls /vz/template/cache")
        .unwrap();
    assert!(out.stdout.contains("LOCKDIR=/vz/lock"), "{out}");
    assert!(out.stdout.contains("/usr/local/sbin/vzctl"), "{out}");
    assert!(out.stdout.contains("lab-minimal.tar.gz"), "{out}");
    for d in [
        "/etc/vz",
        "/vz",
        "/run",
        "/var/tmp",
        "/dev",
        "/usr/local/sbin",
    ] {
        let m = a
            .mount_at(d)
            .unwrap()
            .unwrap_or_else(|| panic!("{d} not a mount point in the host"));
        assert_eq!(m.fstype, "tmpfs", "{d}");
    }
    assert!(
        !Path::new("/etc/vz/vz.conf").exists(),
        "the machine's /etc/vz must stay empty"
    );
    // Every installed binary is on the host's PATH.
    for (name, target) in lab.installed_binaries() {
        let out = a
            .run_ok(&["sh", "-c", &format!("readlink -f \"$(command -v {name})\"")])
            .unwrap();
        assert_eq!(
            out.stdout.trim(),
            target.canonicalize().unwrap().display().to_string()
        );
    }
    lab.teardown().unwrap();
}

#[test]
fn teardown_releases_everything() {
    let Some(lab) = lab("teardown_releases_everything") else {
        return;
    };
    let lun = lab.add_lun("t", &["a", "b"], Fs::Ext4).unwrap();
    let d = lab.add_local_disk("a", "l", Fs::Raw).unwrap();
    let a = lab.host("a");
    // A mounted filesystem and a process keeping it busy, as a test could leave them.
    a.run_ok(&["mount", lun.device("a").to_str().unwrap(), "/mnt"])
        .unwrap();
    let mut busy = a.command(&["sh", "-c", "cd /mnt && exec sleep 600"]);
    busy.stdin(std::process::Stdio::null());
    let mut child = busy.spawn().unwrap();
    let (tag, dir) = (lab.tag().to_string(), lab.dir().to_path_buf());
    let pids = [lab.host("a").pid(), lab.host("b").pid()];
    let images = vec![lun.image.clone(), d.image.clone()];
    lab.teardown().unwrap();
    let _ = child.wait();
    assert_eq!(leftovers(&tag, &images), Vec::<String>::new());
    assert!(!dir.exists(), "lab dir {} left", dir.display());
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "holder {p} left"
        );
    }
}

#[test]
fn teardown_happens_on_panic() {
    if !vzfs_lab::preflight::require_lab("teardown_happens_on_panic") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let lab = Lab::builder().hosts(&["a", "b"]).start().unwrap();
        let lun = lab.add_lun("p", &["a", "b"], Fs::Ext4).unwrap();
        lab.host("b")
            .run_ok(&["mount", lun.device("b").to_str().unwrap(), "/mnt"])
            .unwrap();
        tx.send((
            lab.tag().to_string(),
            lab.dir().to_path_buf(),
            lun.image.clone(),
        ))
        .unwrap();
        panic!("deliberate panic with a running lab");
    })
    .join();
    assert!(r.is_err());
    let (tag, dir, image) = rx.recv().unwrap();
    assert_eq!(leftovers(&tag, &[image]), Vec::<String>::new());
    assert!(!dir.exists());
}

#[test]
fn two_labs_at_once() {
    let Some(l1) = lab("two_labs_at_once") else {
        return;
    };
    let l2 = Lab::builder().hosts(&["a", "b", "c"]).start().unwrap();
    assert_ne!(l1.tag(), l2.tag());
    assert_ne!(l1.subnet(), l2.subnet());
    assert_eq!(l2.hosts().len(), 3);
    let out = l2.ssh("c", "a", &["hostname"]).unwrap();
    assert_eq!(out.stdout.trim(), "a", "{out}");
    let out = l1.ssh("a", "b", &["hostname"]).unwrap();
    assert_eq!(out.stdout.trim(), "b", "{out}");
    // Lab 1's host a cannot reach lab 2's hosts.
    let out = l1
        .host("a")
        .run(&[
            "ssh",
            "-o",
            "ConnectTimeout=1",
            &format!("root@{}", l2.host("b").ip()),
            "true",
        ])
        .unwrap();
    assert!(!out.success(), "labs must be isolated: {out}");
    l2.teardown().unwrap();
    l1.teardown().unwrap();
}

/// Everything of the lab whose files are in `dir` (loop devices over its
/// images, its network namespaces `tag-*`, processes started from it).
fn leftovers_of_dir(tag: &str, dir: &str) -> Vec<String> {
    let mut v = Vec::new();
    let lo = cmd::machine_ok(&["losetup", "-a"]).unwrap().stdout;
    for l in lo.lines().filter(|l| l.contains(dir)) {
        v.push(format!("loop device left: {l}"));
    }
    let ns = cmd::machine_ok(&["ip", "netns", "list"]).unwrap().stdout;
    for l in ns.lines().filter(|l| l.starts_with(&format!("{tag}-"))) {
        v.push(format!("netns left: {l}"));
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cl = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cl = String::from_utf8_lossy(&cl).replace('\0', " ");
        if cl.contains(dir) || cl.contains(&format!("{tag}-")) {
            v.push(format!("process left: {pid} {cl}"));
        }
    }
    if Path::new(dir).exists() {
        v.push(format!("lab directory left: {dir}"));
    }
    v
}

/// `vzfs-lab up` ended by Ctrl-C (SIGINT to its process group, as a
/// terminal sends it), SIGTERM or SIGHUP tears the lab down as Enter does.
#[test]
fn lab_up_signal_tears_down() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    if !vzfs_lab::preflight::require_lab("lab_up_signal_tears_down") {
        return;
    }
    let exe = env!("CARGO_BIN_EXE_vzfs-lab");
    let help = std::process::Command::new(exe)
        .args(["up", "--help"])
        .output()
        .unwrap();
    assert!(
        help.status.success()
            && String::from_utf8_lossy(&help.stdout).contains("usage: vzfs-lab up")
    );
    let ver = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ver.stdout).starts_with("vzfs-lab "));
    for (sig, group) in [
        (libc::SIGINT, true),
        (libc::SIGTERM, false),
        (libc::SIGHUP, false),
    ] {
        let mut child = std::process::Command::new(exe)
            .arg("up")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        let (mut tag, mut dir) = (String::new(), String::new());
        loop {
            let mut l = String::new();
            if out.read_line(&mut l).unwrap() == 0 {
                panic!("vzfs-lab up ended early: {text}");
            }
            text.push_str(&l);
            if let Some(rest) = l.strip_prefix("lab ") {
                tag = rest.split_whitespace().next().unwrap().to_string();
                dir = rest
                    .split("files in ")
                    .nth(1)
                    .unwrap()
                    .trim_end()
                    .trim_end_matches(')')
                    .to_string();
            }
            if l.contains("press Enter") {
                break;
            }
        }
        assert!(
            text.contains("Nothing is installed on the hosts yet"),
            "{text}"
        );
        assert!(text.contains("enter: nsenter -t "), "{text}");
        assert!(!tag.is_empty() && !dir.is_empty(), "{text}");
        assert!(leftovers_of_dir(&tag, &dir)
            .iter()
            .any(|l| l.starts_with("netns")));
        // SAFETY: signals to the child (or its process group, like a terminal's Ctrl-C)
        unsafe {
            libc::kill(if group { -pid } else { pid }, sig);
        }
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(0), "signal {sig}: {text}{rest}");
        assert!(rest.contains("lab removed"), "signal {sig}: {rest}");
        let left = leftovers_of_dir(&tag, &dir);
        assert!(left.is_empty(), "signal {sig}: {left:#?}");
    }
    // Ctrl-C while the lab is being built: its commands die too, the build
    // fails, and what was built is removed (lab `vzl<pid>x0` of that process)
    for delay_ms in [100, 300] {
        let child = std::process::Command::new(exe)
            .arg("up")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: SIGINT to the child's process group, as a terminal sends it
        unsafe {
            libc::kill(-pid, libc::SIGINT);
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0) | Some(130)),
            "Ctrl-C after {delay_ms} ms: {:?}: {err}",
            out.status
        );
        let tag = format!("vzl{pid}x0");
        let left = leftovers_of_dir(&tag, &format!("/tmp/vzfs-lab.{tag}"));
        assert!(left.is_empty(), "Ctrl-C after {delay_ms} ms: {left:#?}");
    }
}
