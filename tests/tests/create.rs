//! vzfs-create in the lab (vzctl double, real loop devices): create then
//! start/stop with a template holding hard links, a sparse file, device
//! nodes, a fifo, symlinks and odd owners and modes, arriving identical to
//! what plain `vzctl create` makes (config too, but for the VE_DEVICE*
//! lines); `--mkfs` with and without `--force`, `--mmp`; convert both ways,
//! stopped and running (`--restart`), with xattrs and an ACL; access and
//! default ACLs onto xfs (which lists its own `trusted.SGI_ACL_*` names)
//! and back; every failpoint before the commit undone, after it finished by
//! `--recover`, a kill -9 and `--recover`; every refusal changing nothing.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use vzfs_lab::{Disk, DiskSpec, Fs, Host, Lab};

const CT: &str = "101";

fn lab(name: &str) -> Option<Lab> {
    let lab = Lab::builder()
        .hosts(&["a"])
        .require_binary("vzfs-create")
        .require_binary("vzfs-hook")
        .install_hook()
        .start_for_test(name)?;
    Some(lab)
}

fn dev(a: &Host, d: &Disk) -> String {
    d.device(a.name()).display().to_string()
}

fn create(a: &Host, args: &[&str]) -> vzfs_lab::Output {
    let mut v = vec!["vzfs-create"];
    v.extend_from_slice(args);
    a.run(&v).unwrap()
}

fn status(a: &Host, ct: &str) -> String {
    a.vzctl(&["status", ct]).unwrap().stdout.trim().to_string()
}

fn exists(a: &Host, p: &str) -> bool {
    std::fs::symlink_metadata(a.path(p)).is_ok()
}

fn manifest(a: &Host, p: &str) -> vzfs::manifest::Manifest {
    vzfs::manifest::take(&a.path(p), &["lost+found"]).unwrap()
}

/// Leave out what the lab's workload changes (its log, and so the mtime of
/// `var/log`).
fn strip_workload(m: &mut vzfs::manifest::Manifest) {
    m.entries.remove(Path::new("var/log/lab-workload.log"));
    if let Some(e) = m.entries.get_mut(Path::new("var/log")) {
        e.mtime = None;
    }
}

fn assert_same(ctx: &str, x: &vzfs::manifest::Manifest, y: &vzfs::manifest::Manifest) {
    let d = x.diff(y, 20);
    assert!(d.is_empty(), "{ctx}: trees differ: {d:#?}");
    assert!(!x.entries.is_empty());
}

/// The device is mounted nowhere on the host and not held (O_EXCL).
fn released(a: &Host, d: &Disk) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    a.disk_mounts(d).unwrap().is_empty()
        && std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(a.path(dev(a, d)))
            .is_ok()
}

/// Nothing of a run of CT 101 is left: no config (nor `.destroyed`), no
/// private area, VE_ROOT, temporary area, journal or lock; the device free.
fn assert_clean(ctx: &str, a: &Host, d: &Disk) {
    for p in [
        "/etc/vz/conf/101.conf",
        "/etc/vz/conf/101.conf.destroyed",
        "/vz/private/101",
        "/vz/root/101",
        "/vz/private/.vzfs-create-101",
        "/vz/lock/101.create-journal",
        "/vz/lock/101.lck",
    ] {
        assert!(!exists(a, p), "{ctx}: {p} is left");
    }
    assert!(released(a, d), "{ctx}: the device is not released");
}

/// What "done" leaves: the container stopped and unmounted, VE_PRIVATE
/// empty and unmounted, the device released, nothing else.
fn assert_created(ctx: &str, a: &Host, d: &Disk) {
    assert_eq!(status(a, CT), "CTID 101 exist unmounted down", "{ctx}");
    let names: Vec<_> = std::fs::read_dir(a.path("/vz/private/101"))
        .unwrap()
        .collect();
    assert!(names.is_empty(), "{ctx}: VE_PRIVATE not empty: {names:?}");
    assert!(a.mount_at("/vz/private/101").unwrap().is_none(), "{ctx}");
    for p in [
        "/etc/vz/conf/101.conf.destroyed",
        "/vz/private/.vzfs-create-101",
        "/vz/lock/101.create-journal",
        "/vz/lock/101.lck",
    ] {
        assert!(!exists(a, p), "{ctx}: {p} is left");
    }
    assert!(released(a, d), "{ctx}: the device is not released");
    let conf = a.read_file("/etc/vz/conf/101.conf").unwrap();
    assert!(
        conf.contains(&format!("VE_DEVICE=\"{}\"", dev(a, d))) || conf.contains("VE_DEVICE="),
        "{ctx}: {conf}"
    );
}

/// A template with what a copy can lose: hard links, a sparse file, device
/// nodes, a fifo, symlinks (one dangling), odd owners and modes, old times.
fn rich_template(a: &Host) {
    a.sh_ok(
        "set -e; t=/var/tmp/rich; rm -rf $t; mkdir -p $t/etc $t/data/dir $t/dev $t/tmp $t/root
         echo web > $t/etc/hostname; printf 'root:x:0:0::/root:/bin/sh\\n' > $t/etc/passwd
         echo hello > $t/data/a; ln $t/data/a $t/data/a-link; ln $t/data/a $t/data/dir/a-link2
         truncate -s 100M $t/data/sparse; printf x | dd of=$t/data/sparse bs=1 seek=50000000 conv=notrunc 2>/dev/null
         mknod $t/dev/null c 1 3; mknod $t/dev/blk b 7 200; mkfifo $t/data/fifo
         ln -s ../etc/hostname $t/data/link; ln -s /nonexistent $t/data/dangling
         chown 1234:4321 $t/data/a; chown -h 65534:65534 $t/data/link; chown 70000:70001 $t/data/dir
         chmod 4755 $t/data/a; chmod 1777 $t/tmp; chmod 0 $t/data/fifo; chmod 2711 $t/data/dir; chmod 700 $t/root
         touch -d '2001-02-03 04:05:06' $t/data/dir $t/etc
         tar --numeric-owner --sparse -czf /vz/template/cache/lab-rich.tar.gz -C $t .",
    )
    .unwrap();
}

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// An ACL granting uid 1234 read access, in the kernel's xattr format.
fn acl_user_1234() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1234),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// A shared CT 101 with hard links, a sparse file, odd owners, a device
/// node, an xattr and an ACL.
fn shared_ct(a: &Host) {
    common::create_shared(a);
    a.sh_ok("cd /vz/private/101 && mknod data/null c 1 3 && chmod 4711 data/sub")
        .unwrap();
    setxattr(
        &a.path("/vz/private/101/data/sub/blob"),
        "trusted.vzfs-test",
        b"value",
    );
    setxattr(
        &a.path("/vz/private/101/data/a"),
        "system.posix_acl_access",
        &acl_user_1234(),
    );
}

/// Step names of `--check-only`'s plan: (before the commit, after it).
fn plan_steps(a: &Host, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut v = vec!["--check-only"];
    v.extend_from_slice(args);
    let out = create(a, &v);
    assert!(out.success(), "check-only: {}", out.all());
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let mut committed = false;
    for line in out.stdout.lines() {
        if line.contains("-- commit") {
            committed = true;
            continue;
        }
        let t = line.trim_start();
        if let Some((num, rest)) = t.split_once(". ") {
            if num.trim().parse::<u32>().is_ok() {
                let name = rest.split_whitespace().next().unwrap().to_string();
                if committed {
                    post.push(name)
                } else {
                    pre.push(name)
                }
            }
        }
    }
    assert!(!pre.is_empty(), "no steps in {}", out.stdout);
    (pre, post)
}

fn with_failpoints(a: &Host, args: &[&str], fp: &str) -> (Option<i32>, String) {
    let mut v = vec!["vzfs-create"];
    v.extend_from_slice(args);
    let mut cmd = a.command(&v);
    cmd.env("VZFS_FAILPOINTS", fp);
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn recover(a: &Host) -> vzfs_lab::Output {
    let o = create(a, &["--recover", CT]);
    assert!(o.success(), "recover: {}", o.all());
    o
}

#[test]
fn create_start_stop_rich_template_arrives_identical() {
    let Some(lab) = lab("create_start_stop_rich_template_arrives_identical") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "ct101", Fs::Raw).unwrap();
    rich_template(a);
    let opts = [
        "--ostemplate",
        "lab-rich",
        "--hostname",
        "web.example",
        "--ipadd",
        "10.9.8.7",
    ];
    let mut args = vec![
        CT,
        "--device",
        d.device("a").to_str().unwrap(),
        "--mkfs",
        "ext4",
    ];
    args.extend_from_slice(&opts);
    let out = create(a, &args);
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("kernel name"),
        "no by-uuid hint: {}",
        out.stderr
    );
    assert_created("create", a, &d);
    // plain vzctl create with the same options
    let mut plain = vec!["create", "102"];
    plain.extend_from_slice(&opts);
    a.vzctl(&plain).unwrap().ok().unwrap();
    let c101 = a.read_file("/etc/vz/conf/101.conf").unwrap();
    let c102 = a.read_file("/etc/vz/conf/102.conf").unwrap();
    let stripped: String = c101
        .lines()
        .filter(|l| !l.starts_with("VE_DEVICE"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(stripped, c102, "config differs from plain vzctl create's");
    assert!(
        c101.contains("VE_DEVICE_FSTYPE=\"ext4\"") || c101.contains("VE_DEVICE_FSTYPE=ext4"),
        "{c101}"
    );
    // the hook mounts the device at vzctl mount/start
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    let m = a
        .mount_at("/vz/private/101")
        .unwrap()
        .expect("device mounted");
    assert_eq!(Some(m.dev), d.dev_num("a"));
    let x = manifest(a, "/vz/private/101");
    let y = manifest(a, "/vz/private/102");
    assert_same("101 on its device vs plain 102", &y, &x);
    assert_eq!(x.link_groups.len(), 1, "{:?}", x.link_groups);
    assert_eq!(x.link_groups[0].len(), 3);
    // the sparse file stays sparse
    use std::os::unix::fs::MetadataExt;
    let sp = std::fs::metadata(a.path("/vz/private/101/data/sparse")).unwrap();
    // 100 MiB apparent on a 64 MiB device: the size check counts blocks
    assert_eq!(sp.size(), 100 << 20);
    assert!(
        sp.blocks() * 512 < 1 << 20,
        "not sparse: {} blocks",
        sp.blocks()
    );
    a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    a.vzctl(&["start", CT]).unwrap().ok().unwrap();
    assert_eq!(status(a, CT), "CTID 101 exist mounted running");
    assert!(a.mount_at("/vz/private/101").unwrap().is_some());
    a.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    assert_created("after start/stop", a, &d);
}

#[test]
fn mkfs_force_mmp_and_existing_empty_filesystem() {
    let Some(lab) = lab("mkfs_force_mmp_and_existing_empty_filesystem") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "data", Fs::Ext4).unwrap();
    let dv = dev(a, &d);
    a.sh_ok(&format!(
        "mkdir -p /var/tmp/m && mount {dv} /var/tmp/m && echo x > /var/tmp/m/precious && umount /var/tmp/m"
    ))
    .unwrap();
    let image_before = std::fs::read(&d.image).unwrap();
    // data on it: refused, with and without --mkfs (no --force)
    let o = create(a, &[CT, "--device", &dv]);
    assert_eq!(o.exit_code(), 21, "{}", o.all());
    assert!(o.stderr.contains("precious"), "{}", o.stderr);
    let o = create(a, &[CT, "--device", &dv, "--mkfs", "ext4"]);
    assert_eq!(o.exit_code(), 21, "{}", o.all());
    assert!(
        o.stderr.contains("holds a ext4 filesystem") && o.stderr.contains("--force"),
        "{}",
        o.stderr
    );
    assert!(
        std::fs::read(&d.image).unwrap() == image_before,
        "a refusal wrote to the device"
    );
    assert_clean("refused", a, &d);
    // --force --mmp: a new ext4 with MMP on
    let o = create(
        a,
        &[CT, "--device", &dv, "--mkfs", "ext4", "--force", "--mmp"],
    );
    assert!(o.success(), "{}", o.all());
    assert_created("mkfs --force --mmp", a, &d);
    let fe = a
        .sh_ok(&format!("dumpe2fs -h {dv} 2>/dev/null | grep -i features"))
        .unwrap();
    assert!(fe.stdout.contains("mmp"), "{}", fe.stdout);
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    assert!(!exists(a, "/vz/private/101/precious"));
    assert!(exists(a, "/vz/private/101/etc/os-release"));
    a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    // an existing empty filesystem (only lost+found), by UUID=, and xfs by --mkfs
    let e = lab.add_local_disk("a", "empty", Fs::Ext4).unwrap();
    let spec = format!("UUID={}", e.uuid.as_ref().unwrap());
    let o = create(a, &["102", "--device", &spec, "--mmp"]);
    assert!(o.success(), "{}", o.all());
    assert!(!o.stderr.contains("kernel name"), "{}", o.stderr);
    // --mmp without --mkfs: tune2fs -O mmp on the existing filesystem
    let fe = a
        .sh_ok(&format!(
            "dumpe2fs -h {} 2>/dev/null | grep -i features",
            dev(a, &e)
        ))
        .unwrap();
    assert!(fe.stdout.contains("mmp"), "{}", fe.stdout);
    assert!(a
        .read_file("/etc/vz/conf/102.conf")
        .unwrap()
        .contains(&spec));
    a.vzctl(&["start", "102"]).unwrap().ok().unwrap();
    a.vzctl(&["stop", "102"]).unwrap().ok().unwrap();
    let x = lab
        .add_disk(vzfs_lab::DiskSpec::new("x", &["a"], Fs::Raw).size_mib(320))
        .unwrap();
    let o = create(a, &["103", "--mkfs", "xfs", "--device", &dev(a, &x)]);
    assert!(o.success(), "{}", o.all());
    assert!(
        a.read_file("/etc/vz/conf/103.conf")
            .unwrap()
            .contains("VE_DEVICE_FSTYPE=\"xfs\"")
            || a.read_file("/etc/vz/conf/103.conf")
                .unwrap()
                .contains("VE_DEVICE_FSTYPE=xfs")
    );
    a.vzctl(&["start", "103"]).unwrap().ok().unwrap();
    a.vzctl(&["stop", "103"]).unwrap().ok().unwrap();
}

#[test]
fn refusals_change_nothing() {
    let Some(lab) = lab("refusals_change_nothing") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    let dv = dev(a, &d);
    let image = std::fs::read(&d.image).unwrap();
    let refused = |args: &[&str], code: i32, says: &str| {
        let o = create(a, args);
        assert_eq!(o.exit_code(), code, "{args:?}: {}", o.all());
        assert!(
            o.stderr.contains(says),
            "{args:?}: expected {says:?} in {}",
            o.stderr
        );
        assert_eq!(
            o.stderr
                .lines()
                .filter(|l| l.starts_with("error: "))
                .count(),
            1,
            "{}",
            o.stderr
        );
    };
    // a config file alone counts as an existing container
    a.write_file("/etc/vz/conf/101.conf", "OSTEMPLATE=x\n")
        .unwrap();
    refused(&[CT, "--device", &dv], 9, "exists");
    std::fs::remove_file(a.path("/etc/vz/conf/101.conf")).unwrap();
    // missing template; ploop
    refused(
        &[CT, "--device", &dv, "--ostemplate", "no-such"],
        15,
        "not found",
    );
    refused(&[CT, "--device", &dv, "--layout", "ploop"], 16, "ploop");
    // not a block device; mounted; held in another mount namespace
    refused(&[CT, "--device", "/etc/hostname"], 21, "/etc/hostname");
    a.sh_ok(&format!("mkdir -p /mnt/x && mount {dv} /mnt/x"))
        .unwrap();
    refused(&[CT, "--device", &dv], 21, "/mnt/x");
    a.sh_ok("umount /mnt/x").unwrap();
    let mut hold = a.command(&[
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &format!("mount {dv} /mnt/x && echo ready && exec sleep 600"),
    ]);
    hold.stdout(std::process::Stdio::piped());
    let mut child = hold.spawn().unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    refused(&[CT, "--device", &dv], 21, "in use");
    child.kill().unwrap();
    child.wait().unwrap();
    // the namespace goes with its last process; the device is free again
    let mut free = false;
    for _ in 0..200 {
        if released(a, &d) {
            free = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(free, "the device stayed held after the holder died");
    // the hook must be installed
    a.sh_ok("mv /etc/vz/conf/vps.premount /etc/vz/conf/vps.premount.off")
        .unwrap();
    refused(&[CT, "--device", &dv], 14, "vzfs-hook install");
    a.sh_ok("mv /etc/vz/conf/vps.premount.off /etc/vz/conf/vps.premount")
        .unwrap();
    assert_clean("create refusals", a, &d);
    // convert: no such container; running without --restart; ploop;
    // already insulated; already shared
    refused(&["--convert", CT, "--device", &dv], 10, "does not exist");
    a.vzctl(&["create", CT]).unwrap().ok().unwrap();
    a.vzctl(&["start", CT]).unwrap().ok().unwrap();
    refused(&["--convert", CT, "--device", &dv], 8, "--restart");
    a.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    refused(&["--convert", "--to-shared", CT], 21, "already shared");
    let conf = a.read_file("/etc/vz/conf/101.conf").unwrap();
    a.write_file("/etc/vz/conf/101.conf", format!("{conf}VE_LAYOUT=ploop\n"))
        .unwrap();
    refused(&["--convert", CT, "--device", &dv], 16, "ploop");
    a.write_file(
        "/etc/vz/conf/101.conf",
        format!("{conf}VE_DEVICE=\"{dv}\"\n"),
    )
    .unwrap();
    refused(&["--convert", CT, "--device", &dv], 21, "already insulated");
    a.write_file("/etc/vz/conf/101.conf", &conf).unwrap();
    // a convert onto a device with data
    a.sh_ok(&format!(
        "mount {dv} /mnt/x && echo x > /mnt/x/data && umount /mnt/x"
    ))
    .unwrap();
    let image = {
        let _ = image;
        std::fs::read(&d.image).unwrap()
    };
    refused(&["--convert", CT, "--device", &dv], 21, "data");
    assert!(
        std::fs::read(&d.image).unwrap() == image,
        "a refusal wrote to the device"
    );
    assert_eq!(a.read_file("/etc/vz/conf/101.conf").unwrap(), conf);
    assert_eq!(status(a, CT), "CTID 101 exist unmounted down");
    assert!(!exists(a, "/vz/lock/101.create-journal"));
    // files that occupy more than the device holds
    let small = lab.add_local_disk("a", "small", Fs::Ext4).unwrap();
    a.sh_ok("head -c 70000000 /dev/urandom > /vz/private/101/big")
        .unwrap();
    refused(
        &["--convert", CT, "--device", &dev(a, &small)],
        6,
        "too small",
    );
    assert!(exists(a, "/vz/private/101/big"));
    assert!(!exists(a, "/vz/private/101.vzfs-shared-101"));
}

/// Convert a shared CT 101 (stopped, or running with --restart) to its
/// device and back; data identical both ways, old directory kept, config
/// bytes as they were after the round trip.
fn convert_round_trip(name: &str, running: bool) {
    let Some(lab) = lab(name) else { return };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    let dv = dev(a, &d);
    shared_ct(a);
    let m0 = manifest(a, "/vz/private/101");
    assert!(m0
        .entries
        .values()
        .any(|e| e.xattrs.keys().any(|k| k == b"system.posix_acl_access")));
    let conf0 = a.read_file("/etc/vz/conf/101.conf").unwrap();
    let mut args = vec!["--convert", CT, "--device", &dv, "-t"];
    let want = if running {
        a.vzctl(&["start", CT]).unwrap().ok().unwrap();
        args.push("--restart");
        "CTID 101 exist mounted running"
    } else {
        "CTID 101 exist unmounted down"
    };
    let o = create(a, &args);
    assert!(o.success(), "{}", o.all());
    assert!(
        o.stderr.contains("/vz/private/101.vzfs-shared-101"),
        "{}",
        o.stderr
    );
    if running {
        assert!(o.stderr.contains("downtime"), "{}", o.stderr);
    }
    assert_eq!(status(a, CT), want);
    // the config: the old bytes plus the VE_DEVICE lines
    let conf1 = a.read_file("/etc/vz/conf/101.conf").unwrap();
    assert!(conf1.starts_with(&conf0), "{conf0}\n---\n{conf1}");
    assert!(
        conf1[conf0.len()..]
            .lines()
            .all(|l| l.starts_with("VE_DEVICE")),
        "{conf1}"
    );
    // exactly one old directory, named with the CTID, holding the data
    let olds: Vec<String> = std::fs::read_dir(a.path("/vz/private"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "101")
        .collect();
    assert_eq!(olds, vec!["101.vzfs-shared-101".to_string()]);
    let mut kept = manifest(a, "/vz/private/101.vzfs-shared-101");
    if running {
        a.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    }
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    let mut on_dev = manifest(a, "/vz/private/101");
    if running {
        // the workload wrote its log
        strip_workload(&mut on_dev);
        strip_workload(&mut kept);
    }
    let mut m0c = m0.clone();
    if running {
        strip_workload(&mut m0c);
    }
    assert_same("old directory", &m0c, &kept);
    if !running {
        assert_same("on the device", &m0, &on_dev);
    }
    a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    if running {
        a.vzctl(&["start", CT]).unwrap().ok().unwrap();
    }
    // and back
    let mut back = vec!["--convert", "--to-shared", CT];
    if running {
        back.push("--restart");
    }
    let before_back = {
        a.vzctl(&["mount", CT]).unwrap();
        let m = manifest(a, "/vz/private/101");
        if !running {
            a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
        }
        m
    };
    let o = create(a, &back);
    assert!(o.success(), "{}", o.all());
    assert_eq!(status(a, CT), want);
    assert_eq!(
        a.read_file("/etc/vz/conf/101.conf").unwrap(),
        conf0,
        "to-shared changed other bytes"
    );
    assert!(a.mount_at("/vz/private/101").unwrap().is_none() || running);
    assert!(
        a.disk_mounts(&d).unwrap().is_empty(),
        "device still mounted"
    );
    let mut after = manifest(a, "/vz/private/101");
    let mut b = before_back.clone();
    if running {
        strip_workload(&mut after);
        strip_workload(&mut b);
    }
    assert_same("back to shared", &b, &after);
    assert!(!exists(a, "/vz/lock/101.create-journal"));
    assert!(!exists(a, "/vz/private/101.vzfs-new-101"));
}

#[test]
fn convert_stopped_both_ways() {
    convert_round_trip("convert_stopped_both_ways", false);
}

#[test]
fn convert_running_both_ways_with_restart() {
    convert_round_trip("convert_running_both_ways_with_restart", true);
}

/// `getfacl` of the ACL-carrying files of CT 101's area `dir` (numeric,
/// relative paths, in a fixed order), as the ACL tools read them.
fn getfacl(a: &Host, dir: &str) -> String {
    a.sh_ok(&format!(
        "cd {dir} && getfacl -n -p data/acl.txt data/acldir data/acldir/f data/acldir/sub"
    ))
    .unwrap()
    .stdout
}

/// The names of the entry `rel`'s extended attributes in `m`.
fn xattr_names(m: &vzfs::manifest::Manifest, rel: &str) -> BTreeSet<String> {
    m.entries[Path::new(rel)]
        .xattrs
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// A shared container whose files carry access and default ACLs (set with
/// setfacl: the vzctl double extracts templates without them) converted
/// onto a new xfs and back: xfs lists its on-disk form of the ACLs
/// (`trusted.SGI_ACL_FILE`, `trusted.SGI_ACL_DEFAULT`) next to the
/// `system.posix_acl_*` names, and neither verify counts that as a
/// difference; the ACLs arrive whole both ways, and the copy back carries
/// no `trusted.SGI_ACL_*` bytes as plain attributes.
#[test]
fn acls_convert_onto_xfs_and_back() {
    let Some(lab) = lab("acls_convert_onto_xfs_and_back") else {
        return;
    };
    let a = lab.host("a");
    let x = lab
        .add_disk(DiskSpec::new("x", &["a"], Fs::Raw).size_mib(320))
        .unwrap();
    let dv = dev(a, &x);
    common::create_shared(a);
    a.sh_ok(
        "set -e; cd /vz/private/101
         echo acl > data/acl.txt; setfacl -m u:1234:rw,g:99:r data/acl.txt
         mkdir data/acldir; setfacl -m u:1234:rx data/acldir
         setfacl -d -m u:1234:rwx,g:99:rx,o::- data/acldir
         echo inherited > data/acldir/f; mkdir data/acldir/sub",
    )
    .unwrap();
    let m0 = manifest(a, "/vz/private/101");
    let acls0 = getfacl(a, "/vz/private/101");
    let access = "system.posix_acl_access";
    let default = "system.posix_acl_default";
    for (rel, want) in [
        ("data/acl.txt", &[access][..]),
        ("data/acldir", &[access, default][..]),
        ("data/acldir/f", &[access][..]),
        ("data/acldir/sub", &[access, default][..]),
    ] {
        let names = xattr_names(&m0, rel);
        for w in want {
            assert!(names.contains(*w), "{rel}: no {w} in {names:?}");
        }
    }
    assert!(acls0.contains("user:1234:rw-"), "{acls0}");
    assert!(acls0.contains("default:user:1234:rwx"), "{acls0}");

    // shared -> insulated, on a new xfs
    let o = create(a, &["--convert", CT, "--device", &dv, "--mkfs", "xfs"]);
    assert!(o.success(), "convert onto xfs: {}", o.all());
    assert_eq!(status(a, CT), "CTID 101 exist unmounted down");
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    let m = a.mount_at("/vz/private/101").unwrap().expect("mounted");
    assert_eq!(m.fstype, "xfs");
    let on_xfs = manifest(a, "/vz/private/101");
    // what the verify met: xfs's own names next to the ACLs
    assert!(
        xattr_names(&on_xfs, "data/acl.txt").contains("trusted.SGI_ACL_FILE"),
        "{:?}",
        xattr_names(&on_xfs, "data/acl.txt")
    );
    assert!(
        xattr_names(&on_xfs, "data/acldir").contains("trusted.SGI_ACL_DEFAULT"),
        "{:?}",
        xattr_names(&on_xfs, "data/acldir")
    );
    assert_same("on xfs", &m0, &on_xfs);
    assert_eq!(getfacl(a, "/vz/private/101"), acls0, "ACLs on xfs");
    a.vzctl(&["umount", CT]).unwrap().ok().unwrap();

    // and back: insulated xfs -> shared
    let o = create(a, &["--convert", "--to-shared", CT]);
    assert!(o.success(), "convert back from xfs: {}", o.all());
    assert_eq!(status(a, CT), "CTID 101 exist unmounted down");
    assert!(
        a.disk_mounts(&x).unwrap().is_empty(),
        "device still mounted"
    );
    let back = manifest(a, "/vz/private/101");
    assert_same("back to shared", &m0, &back);
    assert_eq!(getfacl(a, "/vz/private/101"), acls0, "ACLs back on shared");
    for (p, e) in &back.entries {
        let internal: Vec<_> = e
            .xattrs
            .keys()
            .filter(|k| vzfs::manifest::is_fs_internal_xattr(k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert!(
            internal.is_empty(),
            "{}: xfs's {internal:?} copied as plain attributes",
            p.display()
        );
    }
    lab.teardown().unwrap();
}

#[test]
fn convert_remove_old() {
    let Some(lab) = lab("convert_remove_old") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    shared_ct(a);
    let o = create(
        a,
        &["--convert", CT, "--device", &dev(a, &d), "--remove-old"],
    );
    assert!(o.success(), "{}", o.all());
    let names: BTreeSet<String> = std::fs::read_dir(a.path("/vz/private"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["101".to_string()]));
}

/// A mounted (not running) container: --restart unmounts it, converts it
/// and mounts it again, both ways.
#[test]
fn convert_mounted_stays_mounted() {
    let Some(lab) = lab("convert_mounted_stays_mounted") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    shared_ct(a);
    let m0 = manifest(a, "/vz/private/101");
    a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    let o = create(a, &["--convert", CT, "--device", &dev(a, &d)]);
    assert_eq!(o.exit_code(), 8, "{}", o.all());
    let o = create(a, &["--convert", CT, "--device", &dev(a, &d), "--restart"]);
    assert!(o.success(), "{}", o.all());
    assert!(
        o.stderr.contains("vzctl umount 101") && o.stderr.contains("vzctl mount 101"),
        "{}",
        o.stderr
    );
    assert_eq!(status(a, CT), "CTID 101 exist mounted down");
    assert_eq!(
        a.mount_at("/vz/private/101").unwrap().map(|m| m.dev),
        d.dev_num("a")
    );
    assert_same(
        "mounted on the device",
        &m0,
        &manifest(a, "/vz/private/101"),
    );
    let o = create(a, &["--convert", "--to-shared", CT, "--restart"]);
    assert!(o.success(), "{}", o.all());
    assert_eq!(status(a, CT), "CTID 101 exist mounted down");
    assert!(a.disk_mounts(&d).unwrap().is_empty());
    assert_same("shared again", &m0, &manifest(a, "/vz/private/101"));
}

#[test]
fn create_failpoints_undone_and_recovered() {
    let Some(lab) = lab("create_failpoints_undone_and_recovered") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    let dv = dev(a, &d);
    let args = [CT, "--device", dv.as_str(), "--hostname", "h1"];
    let (pre, post) = plan_steps(a, &args);
    assert_eq!(pre, ["create-tmp", "mount", "copy", "verify", "config"]);
    assert_eq!(post, ["umount", "remove-tmp"]);
    assert_clean("check-only", a, &d);
    for s in &pre {
        // `config` is the commit: a failure after it finishes forward
        let mut fps = vec![format!("before:{s}=fail")];
        if s != "config" {
            fps.push(format!("after:{s}=fail"));
        }
        for fp in fps {
            let (code, err) = with_failpoints(a, &args, &fp);
            assert_eq!(code, Some(25), "{fp}: {err}");
            assert!(err.contains("triggered"), "{fp}: {err}");
            assert_clean(&fp, a, &d);
        }
    }
    // an undo that fails leaves the journal; --recover finishes it
    let (code, err) = with_failpoints(a, &args, "after:copy=fail;undo:mount=fail");
    assert_eq!(code, Some(23), "{err}");
    assert!(err.contains("--recover 101"), "{err}");
    assert!(exists(a, "/vz/lock/101.create-journal"));
    let o = create(a, &args);
    assert_eq!(o.exit_code(), 20, "{}", o.all());
    recover(a);
    assert_clean("undo failed then --recover", a, &d);
    // kill -9 in the middle, then --recover undoes
    for s in ["create-tmp", "mount", "copy", "verify"] {
        let (code, err) = with_failpoints(a, &args, &format!("after:{s}=crash"));
        assert_eq!(code, None, "{s}: {err}");
        let o = recover(a);
        assert!(o.stderr.contains("undoing"), "{}", o.all());
        assert_clean(&format!("crash after {s}"), a, &d);
    }
    // after the commit: finished forward
    for fp in [
        "after:config=crash",
        "after:config=fail",
        "before:umount=fail",
        "before:remove-tmp=fail",
    ] {
        let (code, err) = with_failpoints(a, &args, fp);
        assert!(code.is_none() || code == Some(23), "{fp}: {code:?} {err}");
        recover(a);
        assert_created(fp, a, &d);
        a.vzctl(&["destroy", CT]).unwrap().ok().unwrap();
        std::fs::remove_file(a.path("/etc/vz/conf/101.conf.destroyed")).unwrap();
        // the data stays on the device (vzctl destroy removed the empty
        // mount point): an empty filesystem again for the next round
        a.sh_ok(&format!("mkfs.ext4 -q -F {dv}")).unwrap();
        assert_clean(&format!("{fp} destroyed"), a, &d);
    }
    // the mkfs step: undone as far as it goes (the new filesystem stays, empty)
    let mk = [CT, "--device", dv.as_str(), "--mkfs", "ext4", "--force"];
    let (code, err) = with_failpoints(a, &mk, "after:mkfs=fail");
    assert_eq!(code, Some(25), "{err}");
    assert_clean("after:mkfs", a, &d);
    let o = create(a, &args);
    assert!(o.success(), "{}", o.all());
    assert_created("at last", a, &d);
}

/// SIGTERM while a run sleeps after the copy: exit 24, everything undone.
#[test]
fn signal_interrupts_and_undoes() {
    use std::io::BufRead;
    let Some(lab) = lab("signal_interrupts_and_undoes") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    let dv = dev(a, &d);
    let mut cmd = a.command(&["vzfs-create", CT, "--device", &dv]);
    cmd.env("VZFS_FAILPOINTS", "after:copy=sleep(2000)")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "ended early: {all}");
        all.push_str(&line);
        if line.contains("failpoint after:copy: sleeping") {
            break;
        }
    }
    let pid = child.id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "vzfs-create", "pid {pid} is not vzfs-create");
    // SAFETY: kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    all.push_str(&rest);
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(24), "{all}");
    assert!(
        all.contains("interrupted by SIGTERM; the run was undone"),
        "{all}"
    );
    assert!(
        all.contains("undo copy (") && all.contains("undo create-tmp ("),
        "{all}"
    );
    assert_clean("SIGTERM", a, &d);
}

#[test]
fn convert_failpoints_undone_and_recovered() {
    let Some(lab) = lab("convert_failpoints_undone_and_recovered") else {
        return;
    };
    let a = lab.host("a");
    let d = lab.add_local_disk("a", "d", Fs::Ext4).unwrap();
    let dv = dev(a, &d);
    shared_ct(a);
    a.vzctl(&["start", CT]).unwrap().ok().unwrap();
    let conf0 = a.read_file("/etc/vz/conf/101.conf").unwrap();
    let snap = |a: &Host| {
        let mut m = manifest(a, "/vz/private/101");
        strip_workload(&mut m);
        m
    };
    let m0 = snap(a);
    let args = ["--convert", CT, "--device", dv.as_str(), "--restart"];
    let (pre, post) = plan_steps(a, &args);
    assert_eq!(
        pre,
        ["stop", "rename-old", "mount", "copy", "verify", "config"]
    );
    assert_eq!(post, ["umount", "start"]);
    let untouched = |ctx: &str, a: &Host| {
        assert_eq!(status(a, CT), "CTID 101 exist mounted running", "{ctx}");
        assert_eq!(
            a.read_file("/etc/vz/conf/101.conf").unwrap(),
            conf0,
            "{ctx}"
        );
        assert_same(ctx, &m0, &snap(a));
        assert!(!exists(a, "/vz/private/101.vzfs-shared-101"), "{ctx}");
        assert!(!exists(a, "/vz/lock/101.create-journal"), "{ctx}");
        assert!(released(a, &d), "{ctx}");
    };
    for s in &pre {
        let fp = if s == "config" {
            format!("before:{s}=fail")
        } else {
            format!("after:{s}=fail")
        };
        let (code, err) = with_failpoints(a, &args, &fp);
        assert_eq!(code, Some(25), "{fp}: {err}");
        untouched(&fp, a);
    }
    let (code, err) = with_failpoints(a, &args, "after:copy=crash");
    assert_eq!(code, None, "{err}");
    recover(a);
    untouched("crash after copy", a);
    // to-shared, stopped: every step before the commit undone
    let o = create(a, &args);
    assert!(o.success(), "{}", o.all());
    a.vzctl(&["stop", CT]).unwrap().ok().unwrap();
    let conf1 = a.read_file("/etc/vz/conf/101.conf").unwrap();
    let back = ["--convert", "--to-shared", CT];
    let (pre, post) = plan_steps(a, &back);
    assert_eq!(pre, ["mount", "copy", "verify", "umount", "swap", "config"]);
    assert!(post.is_empty(), "{post:?}");
    for s in &pre {
        let fp = if s == "config" {
            format!("before:{s}=fail")
        } else {
            format!("after:{s}=fail")
        };
        let (code, err) = with_failpoints(a, &back, &fp);
        assert_eq!(code, Some(25), "{fp}: {err}");
        assert_eq!(status(a, CT), "CTID 101 exist unmounted down", "{fp}");
        assert_eq!(a.read_file("/etc/vz/conf/101.conf").unwrap(), conf1, "{fp}");
        assert!(!exists(a, "/vz/private/101.vzfs-new-101"), "{fp}");
        assert!(released(a, &d), "{fp}");
        assert_eq!(
            std::fs::read_dir(a.path("/vz/private/101"))
                .unwrap()
                .count(),
            0,
            "{fp}"
        );
    }
    let (code, err) = with_failpoints(a, &back, "after:umount=crash");
    assert_eq!(code, None, "{err}");
    recover(a);
    assert_eq!(a.read_file("/etc/vz/conf/101.conf").unwrap(), conf1);
    let o = create(a, &back);
    assert!(o.success(), "{}", o.all());
    assert_eq!(a.read_file("/etc/vz/conf/101.conf").unwrap(), conf0);
}

/// A template that does not fit the device: refused once it is extracted
/// (only then is known what it occupies), before anything writes to the
/// device: `--mkfs --force` does not run, the old filesystem and its files
/// stay byte for byte, and the node is clean.
#[test]
fn a_template_too_large_for_the_device_leaves_the_device_untouched() {
    let Some(lab) = lab("a_template_too_large_for_the_device_leaves_the_device_untouched") else {
        return;
    };
    let a = lab.host("a");
    let d = lab
        .add_disk(DiskSpec::new("small", &["a"], Fs::Ext4).size_mib(16))
        .unwrap();
    let dv = dev(a, &d);
    a.sh_ok(&format!(
        "set -e; mkdir -p /mnt/s; mount {dv} /mnt/s; echo keep > /mnt/s/marker; umount /mnt/s
         t=/var/tmp/big; rm -rf $t; mkdir -p $t/data
         head -c 24M /dev/urandom > $t/data/blob
         tar --numeric-owner -czf /vz/template/cache/lab-big.tar.gz -C $t ."
    ))
    .unwrap();
    let sum = |a: &Host| a.sh_ok(&format!("md5sum < {dv}")).unwrap().stdout;
    let before = sum(a);
    let o = create(
        a,
        &[
            CT,
            "--device",
            &dv,
            "--mkfs",
            "ext4",
            "--force",
            "--ostemplate",
            "lab-big",
        ],
    );
    assert!(!o.success(), "{}", o.all());
    assert!(
        o.stderr.contains("too small") && o.stderr.contains("nothing was written to it"),
        "{}",
        o.stderr
    );
    assert_eq!(sum(a), before, "the device was written to");
    assert_clean("too large", a, &d);
}
