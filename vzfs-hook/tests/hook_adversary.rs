//! The hook against an adversary's inputs (issue 7): two containers on one
//! LUN started together, private areas that are not empty or not a
//! container's, configs that are FIFOs or devices, damaged superblock
//! fields, planted lock files, a renamed parent directory, process names
//! with newlines, lines vzctl skips, and the messages. Real loop devices,
//! real mount(2), each test in its own private mount namespace (`harness`),
//! the hook run exactly as vzctl runs it.

mod harness;
use harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the hook as vzctl does, but gives up (and fails) after `limit`.
fn hook_with_deadline(w: &World, script: &str, ctid: &str, limit: Duration) -> HookRun {
    let mut child = w
        .vzctl_hook_cmd(script, ctid)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            return HookRun {
                code: o.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} for CT {ctid} hung for more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the premounts of `ids` at the same moment; returns their exit codes.
fn concurrent_premounts(w: &World, ids: &[&str]) -> Vec<(String, HookRun)> {
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                id.to_string(),
                w.vzctl_hook_cmd("vps.premount", id)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    children
        .into_iter()
        .map(|(id, c)| {
            let o = c.wait_with_output().unwrap();
            (
                id,
                HookRun {
                    code: o.status.code().unwrap_or(-1),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                    stdout: String::new(),
                },
            )
        })
        .collect()
}

fn total_mounts(devs: &[&Path]) -> usize {
    devs.iter().map(|d| mounts_of(d).len()).sum()
}

#[test]
fn two_containers_on_one_lun_never_mount_it_twice() {
    root_test("one_lun_two_cts", |w| {
        let a = w.disk("lun", "ext4", &[]);
        let img = w.scratch.join("lun.img");
        let b = w.attach(&img); // the same LUN through a second path
        ct(w, "201", &a, "");
        ct(w, "202", &b, "");
        ct(w, "203", &a, ""); // the same path twice
        for round in 0..20 {
            let ids: &[&str] = if round % 2 == 0 {
                &["201", "202"]
            } else {
                &["202", "201", "203"]
            };
            let runs = concurrent_premounts(w, ids);
            let ok: Vec<&String> = runs
                .iter()
                .filter(|(_, r)| r.code == 0)
                .map(|(id, _)| id)
                .collect();
            assert_eq!(
                ok.len(),
                1,
                "round {round}: exactly one premount may win: {runs:?}",
                runs = runs
                    .iter()
                    .map(|(i, r)| (i, r.code, &r.stderr))
                    .collect::<Vec<_>>()
            );
            for (id, r) in &runs {
                if r.code != 0 {
                    assert_code(r, 4, &format!("round {round}: the loser CT {id}"));
                    assert!(r.stderr.contains("already mounted"), "{}", r.stderr);
                }
            }
            assert_eq!(
                total_mounts(&[&a, &b]),
                1,
                "round {round}: the filesystem is mounted once"
            );
            assert_code(
                &w.vzctl_hook("vps.postumount", ok[0]),
                0,
                "postumount of the winner",
            );
            assert_eq!(total_mounts(&[&a, &b]), 0);
        }
    });
}

#[test]
fn the_same_filesystem_through_a_device_of_another_size_is_found() {
    root_test("resized_path", |w| {
        let a = w.disk("r", "ext4", &[]);
        let img = w.scratch.join("r.img");
        let out = Command::new("losetup")
            .args(["-f", "--show", "--sizelimit", &(48u64 << 20).to_string()])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success());
        let b = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        w.loops.push(Loop { dev: b.clone() });
        ct(w, "211", &a, "");
        ct(w, "212", &b, "");
        assert_code(&w.vzctl_hook("vps.premount", "211"), 0, "premount 211");
        let r = w.vzctl_hook("vps.premount", "212");
        assert_code(&r, 4, "the same UUID through a smaller device");
        assert!(
            r.stderr.contains("UUID=") && r.stderr.contains(&a.display().to_string()),
            "{}",
            r.stderr
        );
        assert!(mounts_of(&b).is_empty());
    });
}

#[test]
fn private_areas_that_are_not_a_containers_own_empty_directory_are_refused() {
    root_test("private_rules", |w| {
        let d1 = w.disk("p1", "ext4", &[]);
        let d2 = w.disk("p2", "ext4", &[]);
        // Lines vzctl skips do not stop a container vzctl would start.
        ct(
            w,
            "101",
            &d1,
            "export FOO=bar\nthis line has no equals sign\nDESCRIPTION=\"unterminated\n",
        );
        assert_code(&w.vzctl_hook("vps.premount", "101"), 0, "premount 101");
        std::fs::write("/vz/private/101/data", "ct101").unwrap();
        let check = |private: &str, needle: &str| {
            ct(w, "102", &d2, &format!("VE_PRIVATE=\"{private}\"\n"));
            let r = w.vzctl_hook("vps.premount", "102");
            assert_code(&r, 4, &format!("VE_PRIVATE={private}"));
            assert!(
                r.stderr.contains(needle),
                "VE_PRIVATE={private}: {}",
                r.stderr
            );
            assert!(
                !r.stderr.contains("CT 102: CT 102"),
                "one prefix: {}",
                r.stderr
            );
            assert!(
                mounts_of(&d2).is_empty(),
                "VE_PRIVATE={private}: nothing mounted"
            );
        };
        // The $VEID forgotten: over every container's area.
        check("/vz/private/", "contains VE_PRIVATE of container 101");
        check("/vz", "a system directory");
        check("/etc", "a system directory");
        check("/vz/private/../../etc", "a system directory");
        check("/etc/vz/ct102", "inside the system directory /etc");
        // "/" is not even a path vzctl can use.
        ct(w, "102", &d2, "VE_PRIVATE=\"/\"\n");
        let r = w.vzctl_hook("vps.premount", "102");
        assert_code(&r, 2, "VE_PRIVATE=/");
        assert!(r.stderr.contains("only '/'"), "{}", r.stderr);
        // A symlinked area pointing at a system directory.
        std::os::unix::fs::symlink("/etc", "/vz/private/103").unwrap();
        check("/vz/private/103", "/etc");
        // The global template's directory, with no other container around.
        std::fs::remove_file("/etc/vz/conf/101.conf").unwrap();
        check(
            "/vz/private",
            "where the global config puts every container's VE_PRIVATE",
        );
        // A non-empty directory: a container that ran without its device.
        std::fs::create_dir_all("/vz/private/104").unwrap();
        for f in ["etc", "var", "root", "home", "usr", "bin", "tmp"] {
            std::fs::create_dir(format!("/vz/private/104/{f}")).unwrap();
        }
        std::fs::write("/vz/private/104/.new\nline", "x").unwrap();
        check("/vz/private/104", "is not empty (it holds");
        let r = w.vzctl_hook("vps.premount", "102");
        assert!(r.stderr.contains("and 3 more"), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
        // /etc and the files are untouched; 101 still has its data.
        assert!(Path::new("/etc/vz/vz.conf").exists());
        assert_eq!(
            std::fs::read_to_string("/vz/private/101/data").unwrap(),
            "ct101"
        );
        // The right area works.
        ct(w, "102", &d2, "");
        assert_code(
            &w.vzctl_hook("vps.premount", "102"),
            0,
            "premount 102 on its own area",
        );
    });
}

#[test]
fn fifo_and_device_configs_never_hang_the_hook() {
    root_test("fifo_configs", |w| {
        let d = w.disk("f", "ext4", &[]);
        ct(w, "301", &d, "");
        nix::unistd::mkfifo(
            "/etc/vz/conf/302.conf",
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/zero", "/etc/vz/conf/303.conf").unwrap();
        let limit = Duration::from_secs(20);
        // Other containers' unreadable configs: a warning naming each.
        let r = hook_with_deadline(w, "vps.premount", "301", limit);
        assert_code(&r, 0, "premount 301 beside a FIFO and a /dev/zero config");
        assert!(
            r.stderr.contains("302.conf") && r.stderr.contains("a FIFO"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("303.conf") && r.stderr.contains("a character device"),
            "{}",
            r.stderr
        );
        assert_code(
            &hook_with_deadline(w, "vps.postumount", "301", limit),
            0,
            "postumount 301",
        );
        // The container's own config: an error naming it.
        for (id, what) in [("302", "a FIFO"), ("303", "a character device")] {
            let r = hook_with_deadline(w, "vps.premount", id, limit);
            assert_code(&r, 2, &format!("premount of CT {id}"));
            assert!(
                r.stderr.contains(&format!("/etc/vz/conf/{id}.conf")) && r.stderr.contains(what),
                "{}",
                r.stderr
            );
        }
        // A value of 900 KB is named, not echoed; a 10 MB config is not read.
        ct(
            w,
            "304",
            &d,
            &format!("VE_DEVICE_FSCK=\"{}\"\n", "y".repeat(900 << 10)),
        );
        let r = hook_with_deadline(w, "vps.premount", "304", limit);
        assert_code(&r, 2, "premount with a 900 KB value");
        assert!(
            r.stderr.len() < 1000 && r.stderr.contains("(921600 bytes)"),
            "{}",
            &r.stderr[..r.stderr.len().min(2000)]
        );
        ct(
            w,
            "304",
            &d,
            &format!("DESCRIPTION=\"{}\"\n", "y".repeat(10 << 20)),
        );
        let r = hook_with_deadline(w, "vps.premount", "304", limit);
        assert_code(&r, 2, "premount with a 10 MB config");
        assert!(
            r.stderr.len() < 1000 && r.stderr.contains("more than the 1048576 bytes"),
            "{}",
            &r.stderr[..r.stderr.len().min(2000)]
        );
    });
}

#[test]
fn a_damaged_mmp_field_is_a_device_error_naming_the_field() {
    root_test("mmp_field", |w| {
        let d = w.disk("m", "ext4", &["-O", "mmp", "-E", "mmp_update_interval=1"]);
        // s_mmp_block (superblock offset 0x168) near 2^64.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&d)
            .unwrap();
        let mut orig = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut orig, 1024 + 0x168).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &(u64::MAX - 7).to_le_bytes(), 1024 + 0x168)
            .unwrap();
        f.sync_all().unwrap();
        drop(f);
        ct(w, "401", &d, "");
        let r = w.vzctl_hook("vps.premount", "401");
        assert_code(&r, 3, "premount");
        assert!(
            r.stderr.contains("s_mmp_block") && r.stderr.contains(&d.display().to_string()),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(mounts_of(&d).is_empty());
        let r = w.admin(&["status", "401"]);
        assert_code(&r, 3, "status");
        assert!(
            r.stdout.contains("s_mmp_block") && r.stderr.contains("s_mmp_block"),
            "{} / {}",
            r.stdout,
            r.stderr
        );
        // An interval over the kernel's 300 s would make premount wait for hours.
        let f = std::fs::OpenOptions::new().write(true).open(&d).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &orig, 1024 + 0x168).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xff, 0xff], 1024 + 0x166).unwrap();
        drop(f);
        let r = w.vzctl_hook("vps.premount", "401");
        assert_code(&r, 3, "premount");
        assert!(r.stderr.contains("s_mmp_update_interval"), "{}", r.stderr);
    });
}

#[test]
fn planted_lock_files_are_refused_and_their_targets_untouched() {
    root_test("planted_locks", |w| {
        let d = w.disk("l", "ext4", &[]);
        ct(w, "501", &d, "");
        std::fs::write("/vz/victim", "do not truncate\n").unwrap();
        std::fs::hard_link("/vz/victim", "/vz/lock/vzfs-501.lck").unwrap();
        let r = w.vzctl_hook("vps.premount", "501");
        assert_code(&r, 9, "a hard link at the container lock");
        assert!(r.stderr.contains("2 hard links"), "{}", r.stderr);
        std::fs::remove_file("/vz/lock/vzfs-501.lck").unwrap();
        std::os::unix::fs::symlink("/vz/victim", "/vz/lock/vzfs-501.lck").unwrap();
        let r = w.vzctl_hook("vps.premount", "501");
        assert_code(&r, 9, "a symlink at the container lock");
        assert!(
            r.stderr.contains("symbolic link") && !r.stderr.contains("os error"),
            "{}",
            r.stderr
        );
        std::fs::remove_file("/vz/lock/vzfs-501.lck").unwrap();
        // The filesystem lock, by UUID.
        let uuid = sh(&format!("blkid -o value -s UUID {}", d.display()));
        let fs_lock = format!("/vz/lock/vzfs-fs-{}.lck", uuid.trim());
        std::fs::hard_link("/vz/victim", &fs_lock).unwrap();
        let r = w.vzctl_hook("vps.premount", "501");
        assert_code(&r, 9, "a hard link at the filesystem lock");
        assert!(r.stderr.contains(&fs_lock), "{}", r.stderr);
        assert!(mounts_of(&d).is_empty());
        assert_eq!(
            std::fs::read_to_string("/vz/victim").unwrap(),
            "do not truncate\n"
        );
        std::fs::remove_file(&fs_lock).unwrap();
        assert_code(
            &w.vzctl_hook("vps.premount", "501"),
            0,
            "premount once the links are gone",
        );
    });
}

#[test]
fn postumount_finds_the_device_after_the_parent_was_renamed() {
    root_test("renamed_parent", |w| {
        let d = w.disk("n", "ext4", &[]);
        std::fs::create_dir_all("/vz/p1").unwrap();
        ct(w, "601", &d, "VE_PRIVATE=\"/vz/p1/$VEID\"\n");
        assert_code(&w.vzctl_hook("vps.premount", "601"), 0, "premount");
        std::fs::rename("/vz/p1", "/vz/p1.old").unwrap();
        let r = w.vzctl_hook("vps.postumount", "601");
        assert_code(&r, 4, "postumount with the device mounted elsewhere");
        assert!(
            r.stderr.contains("/vz/p1.old/601") && r.stderr.contains("renamed"),
            "{}",
            r.stderr
        );
        assert_eq!(mounts_of(&d), vec![PathBuf::from("/vz/p1.old/601")]);
        std::fs::rename("/vz/p1.old", "/vz/p1").unwrap();
        assert_code(
            &w.vzctl_hook("vps.postumount", "601"),
            0,
            "postumount once moved back",
        );
        assert!(mounts_of(&d).is_empty());
    });
}

#[test]
fn process_names_cannot_forge_lines() {
    root_test("forged_comm", |w| {
        let d = w.disk("c", "ext4", &[]);
        ct(w, "701", &d, "");
        assert_code(&w.vzctl_hook("vps.premount", "701"), 0, "premount");
        // The kernel names a process after the file it executes.
        let evil = w.scratch.join("a\nvzfs-hook: ok");
        copy_executable(Path::new("/bin/sleep"), &evil);
        let pid = w.keep(
            Command::new(&evil)
                .arg("600")
                .current_dir("/vz/private/701")
                .spawn()
                .unwrap(),
        );
        // Until the child has exec'd, it still carries the test's name.
        let start = Instant::now();
        let mut comm = String::new();
        while start.elapsed() < Duration::from_secs(10) {
            comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            if comm == "a\nvzfs-hook: ok\n" {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(comm, "a\nvzfs-hook: ok\n");
        let r = w.vzctl_hook("vps.postumount", "701");
        assert_code(&r, 5, "postumount of a busy fs");
        assert!(r.stderr.contains("a\\nvzfs-hook: ok"), "{}", r.stderr);
        assert!(
            r.stderr.lines().all(|l| !l.starts_with("vzfs-hook: ok")),
            "a forged line: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        w.kill_children();
        assert_code(&w.vzctl_hook("vps.postumount", "701"), 0, "postumount");
    });
}

#[test]
fn messages_verbosity_and_early_errors_in_syslog() {
    root_test("messages", |w| {
        let d = w.disk("v", "ext4", &[]);
        ct(w, "801", &d, "VZFS_VERBOSE=9\n");
        w.private_dev(&[&d]);
        let sock = std::os::unix::net::UnixDatagram::bind("/dev/log").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = w.vzctl_hook("vps.premount", "801");
        assert_code(&r, 2, "VZFS_VERBOSE=9");
        assert!(
            r.stderr
                .contains("/etc/vz/conf/801.conf:4: VZFS_VERBOSE=\"9\""),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .starts_with("vzfs-hook: error: premount CT 801: /etc"),
            "{}",
            r.stderr
        );
        // The config error reached syslog under the hook's own ident.
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("the error reached syslog");
        let m = String::from_utf8_lossy(&buf[..n]);
        assert!(
            m.contains("vzfs-hook[") && m.contains("VZFS_VERBOSE"),
            "{m}"
        );
        // A refusal has one prefix.
        ct(w, "801", &d, "");
        std::fs::create_dir_all("/vz/private/801").unwrap();
        std::fs::write("/vz/private/801/x", "x").unwrap();
        let r = w.vzctl_hook("vps.premount", "801");
        assert_code(&r, 4, "non-empty");
        assert_eq!(r.stderr.matches("CT 801").count(), 1, "{}", r.stderr);
    });
}

/// The node index (`LOCKDIR/vzfs-node.cache`) never makes the area rules
/// weaker: a config edited in place behind it (same size, its mtime set back
/// to the same nanosecond) is read again (its ctime moved), a cache that is
/// garbage or not root's own is ignored, and in each case another
/// container's `VE_ROOT` above this one's area is still refused.
#[test]
fn a_config_changed_behind_the_node_index_still_counts() {
    root_test("index_stale", |w| {
        let d1 = w.disk("i1", "ext4", &[]);
        let d2 = w.disk("i2", "ext4", &[]);
        ct(w, "101", &d1, "");
        ct(w, "102", &d2, "VE_ROOT=\"/vz/root/102\"\n");
        // Old enough that the index trusts them (records younger than 2 s
        // when it is built are read again at the next start).
        std::thread::sleep(Duration::from_millis(2200));
        for _ in 0..2 {
            assert_code(&w.vzctl_hook("vps.premount", "101"), 0, "premount 101");
            assert_code(&w.vzctl_hook("vps.postumount", "101"), 0, "postumount 101");
        }
        let index = std::fs::read_to_string("/vz/lock/vzfs-node.cache").unwrap();
        assert!(index.contains("ct 102 "), "{index}");
        assert!(index.contains("VE_ROOT /vz/root/102 ="), "{index}");

        // Same size, same mtime: VE_ROOT now above every private area.
        let p = "/etc/vz/conf/102.conf";
        let before = std::fs::metadata(p).unwrap();
        let text = std::fs::read_to_string(p).unwrap();
        let edited = text.replace("VE_ROOT=\"/vz/root/102\"", "VE_ROOT=\"/vz/private/\"");
        assert_eq!(text.len(), edited.len());
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, edited.as_bytes()))
            .unwrap();
        let ts = libc::timespec {
            tv_sec: std::os::unix::fs::MetadataExt::mtime(&before),
            tv_nsec: std::os::unix::fs::MetadataExt::mtime_nsec(&before),
        };
        let c = std::ffi::CString::new(p).unwrap();
        // SAFETY: a valid C string and two valid timespecs.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [ts, ts].as_ptr(), 0) };
        assert_eq!(rc, 0, "utimensat: {}", std::io::Error::last_os_error());
        let after = std::fs::metadata(p).unwrap();
        assert_eq!(
            (before.len(), before.modified().unwrap()),
            (after.len(), after.modified().unwrap())
        );
        let refused = |ctx: &str| {
            let r = w.vzctl_hook("vps.premount", "101");
            assert_code(&r, 4, ctx);
            assert!(
                r.stderr.contains("inside VE_ROOT of container 102"),
                "{ctx}: {}",
                r.stderr
            );
            assert!(mounts_of(&d1).is_empty(), "{ctx}: mounted");
        };
        refused("edited in place behind the index");
        // Garbage, then a forged index owned by another user: ignored.
        std::fs::write("/vz/lock/vzfs-node.cache", "vzfs-node-cache 1\nct \n").unwrap();
        refused("a garbage index");
        let forged = index.clone();
        std::fs::write("/vz/lock/vzfs-node.cache", forged).unwrap();
        nix::unistd::chown(
            "/vz/lock/vzfs-node.cache",
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        refused("an index that is not root's");
    });
}

/// The UUID of a mounted filesystem comes from the index only while the
/// kernel's entry for that mount is the one recorded: a device mounted
/// again with another filesystem (the same loop device, the same name) is
/// read again, and the same filesystem twice is still refused.
#[test]
fn a_device_mounted_again_is_read_again() {
    root_test("index_remount", |w| {
        let a = w.disk("ra", "ext4", &[]);
        let other = w.disk("rb", "ext4", &[]);
        // `other` mounted elsewhere: recorded in the index with its UUID.
        std::fs::create_dir_all("/vz/mnt-b").unwrap();
        let mnt = |dev: &Path| {
            let st = Command::new("mount")
                .arg(dev)
                .arg("/vz/mnt-b")
                .status()
                .unwrap();
            assert!(st.success());
        };
        mnt(&other);
        ct(w, "221", &a, "");
        assert_code(&w.vzctl_hook("vps.premount", "221"), 0, "premount 221");
        assert_code(&w.vzctl_hook("vps.postumount", "221"), 0, "postumount 221");
        let index = std::fs::read_to_string("/vz/lock/vzfs-node.cache").unwrap();
        let name = other.file_name().unwrap().to_string_lossy().into_owned();
        assert!(index.contains(&format!(" {name} ")), "{index}");
        // The same loop device now shows a's filesystem: a must be refused.
        assert!(Command::new("umount")
            .arg("/vz/mnt-b")
            .status()
            .unwrap()
            .success());
        let img = w.scratch.join("ra.img");
        assert!(Command::new("losetup")
            .arg("-d")
            .arg(&other)
            .status()
            .unwrap()
            .success());
        assert!(Command::new("losetup")
            .arg(&other)
            .arg(&img)
            .status()
            .unwrap()
            .success());
        mnt(&other);
        let r = w.vzctl_hook("vps.premount", "221");
        assert_code(&r, 4, "the same filesystem through the remounted device");
        assert!(
            r.stderr.contains("already mounted on this node through") && r.stderr.contains(&name),
            "{}",
            r.stderr
        );
        assert!(mounts_of(&a).is_empty());
        assert!(Command::new("umount")
            .arg("/vz/mnt-b")
            .status()
            .unwrap()
            .success());
    });
}

/// Where the kernel has no `/sys/fs/<type>` list (xfs before 3.18, btrfs
/// before 3.14: OpenVZ 6), the same-filesystem rule reads the filesystems
/// of the type mounted in this namespace: a mounted one is found with its
/// UUID, an idle one is not opened, the device being mounted is left out.
#[test]
fn without_the_kernels_list_the_mounts_here_are_read() {
    root_test("held_devices", |w| {
        let mounted = w.disk("h1", "ext4", &[]);
        let idle = w.disk("h2", "ext4", &[]);
        std::fs::create_dir_all("/vz/mnt-h").unwrap();
        assert!(Command::new("mount")
            .arg(&mounted)
            .arg("/vz/mnt-h")
            .status()
            .unwrap()
            .success());
        let uuid_of = |d: &Path| {
            sh(&format!("blkid -p -o value -s UUID {}", d.display()))
                .trim()
                .to_string()
        };
        let found = vzfs::nodecache::mounted_here_uuids("ext4", Path::new("/dev/none"));
        assert!(
            found.contains(&(mounted.clone(), uuid_of(&mounted))),
            "{found:?}"
        );
        assert!(!found.iter().any(|(n, _)| *n == idle), "{found:?}");
        let found = vzfs::nodecache::mounted_here_uuids("ext4", &mounted);
        assert!(!found.iter().any(|(n, _)| *n == mounted), "{found:?}");
        assert!(
            vzfs::nodecache::mounted_here_uuids("xfs", Path::new("/dev/none"))
                .iter()
                .all(|(n, _)| *n != mounted)
        );
        assert!(Command::new("umount")
            .arg("/vz/mnt-h")
            .status()
            .unwrap()
            .success());
    });
}

/// The node index never keeps a canonical path the filesystem no longer
/// gives: an area reached through a symlink is resolved on every start, and
/// a directory above an area replaced by a symlink is seen at once (the
/// directories above each area are part of the proof).
#[test]
fn areas_moved_by_symlinks_behind_the_node_index_still_count() {
    root_test("index_symlinks", |w| {
        let d1 = w.disk("s1", "ext4", &[]);
        let d2 = w.disk("s2", "ext4", &[]);
        ct(w, "101", &d1, "");
        std::fs::create_dir_all("/vz/r/102").unwrap();
        std::fs::create_dir_all("/vz/elsewhere/103").unwrap();
        std::os::unix::fs::symlink("/vz/elsewhere/103", "/vz/link103").unwrap();
        ct(w, "102", &d2, "VE_ROOT=\"/vz/r/102\"\n");
        ct(w, "103", &d2, "VE_ROOT=\"/vz/link103\"\n");
        std::thread::sleep(Duration::from_millis(2200));
        for _ in 0..2 {
            assert_code(&w.vzctl_hook("vps.premount", "101"), 0, "premount 101");
            assert_code(&w.vzctl_hook("vps.postumount", "101"), 0, "postumount 101");
        }
        let index = std::fs::read_to_string("/vz/lock/vzfs-node.cache").unwrap();
        assert!(index.contains("VE_ROOT /vz/r/102 ="), "{index}");
        assert!(
            index.contains("VE_ROOT /vz/link103 /vz/elsewhere/103"),
            "{index}"
        );
        let refused = |ctx: &str, needle: &str| {
            let r = w.vzctl_hook("vps.premount", "101");
            assert_code(&r, 4, ctx);
            assert!(r.stderr.contains(needle), "{ctx}: {}", r.stderr);
            assert!(mounts_of(&d1).is_empty(), "{ctx}: mounted");
        };
        // 103's symlink now leads into 101's area
        std::fs::create_dir_all("/vz/private/101").unwrap();
        std::fs::remove_file("/vz/link103").unwrap();
        std::os::unix::fs::symlink("/vz/private/101/x", "/vz/link103").unwrap();
        std::fs::create_dir_all("/vz/private/101/x").unwrap();
        refused(
            "a symlinked area moved",
            "contains VE_ROOT of container 103",
        );
        std::fs::remove_dir("/vz/private/101/x").unwrap();
        std::fs::remove_file("/vz/link103").unwrap();
        std::os::unix::fs::symlink("/vz/elsewhere/103", "/vz/link103").unwrap();
        std::thread::sleep(Duration::from_millis(2200));
        assert_code(
            &w.vzctl_hook("vps.premount", "101"),
            0,
            "premount 101 again",
        );
        assert_code(
            &w.vzctl_hook("vps.postumount", "101"),
            0,
            "postumount 101 again",
        );
        // /vz/r replaced by a symlink into 101's area: 102's VE_ROOT follows
        std::fs::create_dir_all("/vz/private/101/102").unwrap();
        std::fs::rename("/vz/r", "/vz/r-old").unwrap();
        std::os::unix::fs::symlink("/vz/private/101", "/vz/r").unwrap();
        refused(
            "a directory above an area replaced",
            "contains VE_ROOT of container 102",
        );
    });
}
