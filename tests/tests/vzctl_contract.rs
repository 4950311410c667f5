//! The vzctl double against docs/VZCTL-CONTRACT.md: hook order, argv and
//! environment, exit codes, status format, config rewriting, locks, and the
//! workload whose state must survive chkpnt/restore.
//! Hooks here are small shell scripts that log what they saw.

use vzfs_lab::{workload, Host, Lab};

const HOOKS: [&str; 8] = [
    "vps.premount",
    "101.premount",
    "vps.mount",
    "101.mount",
    "101.umount",
    "vps.umount",
    "101.postumount",
    "vps.postumount",
];

/// A hook that logs `$0`, argc, its exact environment (from
/// /proc/$$/environ), stdin, whether the CT lock is held and whether VE_ROOT
/// is mounted; fails (exit 3) when /vz/log/fail-<name> exists; runs
/// /vz/log/do-<name> if it exists.
const HOOK: &str = r#"#!/bin/sh
n=$(basename "$0")
{
  echo "== $0 argc=$#"
  tr '\0' '\n' < /proc/$$/environ | sed 's/^/env /'
  echo "stdin $(readlink /proc/$$/fd/0)"
  if [ -e "/vz/lock/$VEID.lck" ]; then echo "lock held"; else echo "lock free"; fi
  if grep -q " /vz/root/$VEID " /proc/self/mountinfo; then echo "root mounted"; else echo "root unmounted"; fi
  echo "umask $(umask)"
} >> /vz/log/hooks.log
if [ -x "/vz/log/do-$n" ]; then "/vz/log/do-$n" || exit $?; fi
if [ -e "/vz/log/fail-$n" ]; then echo "hook $n fails on purpose" >&2; exit 3; fi
exit 0
"#;

fn lab(test: &str) -> Option<Lab> {
    Lab::builder().hosts(&["a"]).start_for_test(test)
}

fn install_hooks(h: &Host) {
    for n in HOOKS {
        h.write_file(format!("/etc/vz/conf/{n}"), HOOK).unwrap();
        h.run_ok(&["chmod", "755", &format!("/etc/vz/conf/{n}")])
            .unwrap();
    }
}

/// Hook runs logged so far: (argv0, lines).
fn hook_log(h: &Host) -> Vec<(String, Vec<String>)> {
    let t = h.read_file("/vz/log/hooks.log").unwrap_or_default();
    let mut v: Vec<(String, Vec<String>)> = Vec::new();
    for l in t.lines() {
        if let Some(rest) = l.strip_prefix("== ") {
            v.push((rest.to_string(), Vec::new()));
        } else if let Some(last) = v.last_mut() {
            last.1.push(l.to_string());
        }
    }
    v
}

fn hook_names(h: &Host) -> Vec<String> {
    hook_log(h)
        .into_iter()
        .map(|(a, _)| {
            a.split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("/etc/vz/conf/")
                .to_string()
        })
        .collect()
}

fn clear_log(h: &Host) {
    let _ = std::fs::remove_file(h.path("/vz/log/hooks.log"));
}

fn create(h: &Host) {
    let out = h
        .vzctl(&["create", "101", "--ostemplate", "lab-minimal"])
        .unwrap();
    assert!(out.success(), "{out}");
}

fn status(h: &Host) -> String {
    let out = h.vzctl(&["status", "101"]).unwrap();
    assert!(out.success(), "{out}");
    out.stdout.trim_end_matches('\n').to_string()
}

fn vz(h: &Host, args: &[&str], code: i32) -> vzfs_lab::Output {
    let out = h.vzctl(args).unwrap();
    assert_eq!(out.exit_code(), code, "vzctl {args:?}: {out}");
    out
}

#[test]
fn hooks_run_in_order_with_exact_argv_and_environment() {
    let Some(lab) = lab("hooks_run_in_order_with_exact_argv_and_environment") else {
        return;
    };
    let h = lab.host("a");
    create(&h);
    install_hooks(h);
    vz(h, &["start", "101"], 0);
    vz(h, &["stop", "101"], 0);
    assert_eq!(hook_names(h), HOOKS.to_vec());
    let want_env = vec![
        "env HOME=/",
        "env TERM=linux",
        "env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "env VEID=101",
        "env VE_CONFFILE=/etc/vz/conf/101.conf",
        "env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ];
    for (i, (argv, lines)) in hook_log(h).iter().enumerate() {
        assert_eq!(argv, &format!("/etc/vz/conf/{} argc=0", HOOKS[i]));
        let env: Vec<&str> = lines
            .iter()
            .filter(|l| l.starts_with("env "))
            .map(String::as_str)
            .collect();
        assert_eq!(env, want_env, "environment of {}", HOOKS[i]);
        assert!(lines.contains(&"stdin /dev/null".to_string()), "{lines:?}");
        assert!(
            lines.contains(&"lock held".to_string()),
            "vzctl holds the CT lock during {}",
            HOOKS[i]
        );
        assert!(lines.contains(&"umask 0022".to_string()), "{lines:?}");
        let mounted = matches!(
            HOOKS[i],
            "vps.mount" | "101.mount" | "101.umount" | "vps.umount"
        );
        let want = if mounted {
            "root mounted"
        } else {
            "root unmounted"
        };
        assert!(lines.contains(&want.to_string()), "{}: {lines:?}", HOOKS[i]);
    }
    // mount/umount run the same sequences.
    clear_log(h);
    vz(h, &["mount", "101"], 0);
    vz(h, &["umount", "101"], 0);
    assert_eq!(hook_names(h), HOOKS.to_vec());
    // A missing script is simply skipped.
    std::fs::remove_file(h.path("/etc/vz/conf/101.premount")).unwrap();
    clear_log(h);
    vz(h, &["mount", "101"], 0);
    assert_eq!(
        hook_names(h),
        vec!["vps.premount", "vps.mount", "101.mount"]
    );
    lab.teardown().unwrap();
}

#[test]
fn failing_global_premount_aborts_with_79() {
    let Some(lab) = lab("failing_global_premount_aborts_with_79") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    install_hooks(h);
    h.write_file("/vz/log/fail-vps.premount", "").unwrap();
    let out = vz(h, &["start", "101"], 79);
    assert!(
        out.stderr
            .contains("Error executing premount script /etc/vz/conf/vps.premount"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hook vps.premount fails on purpose"),
        "the hook's stderr reaches the admin: {out}"
    );
    assert_eq!(
        hook_names(h),
        vec!["vps.premount"],
        "per-CT premount must not run"
    );
    assert_eq!(status(h), "CTID 101 exist unmounted down");
    lab.teardown().unwrap();
}

#[test]
fn premount_is_never_undone() {
    let Some(lab) = lab("premount_is_never_undone") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    install_hooks(h);
    // The global premount mounts something on VE_PRIVATE, as the hook does.
    h.write_file("/vz/log/do-vps.premount", "#!/bin/sh\ngrep -q ' /vz/private/101 ' /proc/self/mountinfo || mount -t tmpfs ctdev /vz/private/101\n").unwrap();
    h.run_ok(&["chmod", "755", "/vz/log/do-vps.premount"])
        .unwrap();
    h.write_file("/vz/log/fail-101.premount", "").unwrap();
    let out = vz(h, &["start", "101"], 79);
    assert!(
        out.stderr
            .contains("Error executing premount script /etc/vz/conf/101.premount"),
        "{out}"
    );
    assert_eq!(hook_names(h), vec!["vps.premount", "101.premount"]);
    let m = h
        .mount_at("/vz/private/101")
        .unwrap()
        .expect("premount's mount stays");
    assert_eq!(m.fstype, "tmpfs");
    // The private area (now an empty tmpfs) exists: a mount failure after
    // premount is not undone either. The next start runs premount again.
    std::fs::remove_file(h.path("/vz/log/fail-101.premount")).unwrap();
    clear_log(h);
    vz(h, &["start", "101"], 0);
    assert_eq!(
        hook_names(h),
        vec!["vps.premount", "101.premount", "vps.mount", "101.mount"]
    );
    vz(h, &["stop", "101"], 0);
    // After stop, the hook's own mount is still there (only the real hook removes it).
    assert!(h.mount_at("/vz/private/101").unwrap().is_some());
    lab.teardown().unwrap();
}

#[test]
fn postumount_runs_even_when_unmount_fails() {
    let Some(lab) = lab("postumount_runs_even_when_unmount_fails") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    install_hooks(h);
    vz(h, &["mount", "101"], 0);
    // An admin shell sitting in the container root keeps it busy.
    let mut busy = h.command(&["sh", "-c", "cd /vz/root/101/etc && exec sleep 60"]);
    let mut child = busy.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    clear_log(h);
    let out = vz(h, &["umount", "101"], 51);
    assert!(out.stderr.contains("Can't umount: /vz/root/101"), "{out}");
    assert!(!out.stdout.contains("Container is unmounted"), "{out}");
    assert_eq!(
        hook_names(h),
        vec![
            "101.umount",
            "vps.umount",
            "101.postumount",
            "vps.postumount"
        ]
    );
    child.kill().unwrap();
    child.wait().unwrap();
    lab.teardown().unwrap();
}

#[test]
fn failing_postumount_exits_79_after_unmounting() {
    let Some(lab) = lab("failing_postumount_exits_79_after_unmounting") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    install_hooks(h);
    vz(h, &["start", "101"], 0);
    h.write_file("/vz/log/fail-101.postumount", "").unwrap();
    clear_log(h);
    let out = vz(h, &["stop", "101"], 79);
    assert!(out.stdout.contains("Container is unmounted"), "{out}");
    assert!(
        out.stderr
            .contains("Error executing postumount script /etc/vz/conf/101.postumount"),
        "{out}"
    );
    assert_eq!(
        hook_names(h),
        vec!["101.umount", "vps.umount", "101.postumount"]
    );
    assert_eq!(status(h), "CTID 101 exist unmounted down");
    lab.teardown().unwrap();
}

#[test]
fn mount_of_mounted_and_start_of_mounted() {
    let Some(lab) = lab("mount_of_mounted_and_start_of_mounted") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    install_hooks(h);
    vz(h, &["mount", "101"], 0);
    clear_log(h);
    let out = vz(h, &["mount", "101"], 0);
    assert!(out.all().contains("Container is already mounted"), "{out}");
    assert!(hook_names(h).is_empty(), "premount must not run again");
    // start of a mounted CT: a full remount cycle...
    vz(h, &["start", "101"], 0);
    assert_eq!(
        hook_names(h),
        HOOKS[4..]
            .iter()
            .chain(HOOKS[..4].iter())
            .copied()
            .collect::<Vec<_>>()
    );
    vz(h, &["stop", "101", "--skip-umount"], 0);
    // ... unless --skip-remount.
    clear_log(h);
    vz(h, &["start", "101", "--skip-remount"], 0);
    assert!(hook_names(h).is_empty());
    // umount of a running CT: message, success, nothing done (vzctl 4.x).
    let out = vz(h, &["umount", "101"], 0);
    assert!(
        out.stderr.contains("Container is running -- stop it first"),
        "{out}"
    );
    assert_eq!(status(h), "CTID 101 exist mounted running");
    lab.teardown().unwrap();
}

#[test]
fn status_lines_and_exit_codes() {
    let Some(lab) = lab("status_lines_and_exit_codes") else {
        return;
    };
    let h = lab.host("a");
    assert_eq!(status(h), "CTID 101 deleted unmounted down");
    vz(h, &["start", "101"], 14);
    vz(h, &["mount", "101"], 14);
    vz(h, &["bogus", "101"], 20);
    vz(h, &["start", "abc"], 21);
    create(h);
    assert_eq!(status(h), "CTID 101 exist unmounted down");
    let out = vz(h, &["umount", "101"], 40);
    assert!(out.stderr.contains("CT is not mounted"), "{out}");
    // vzctl 4.11.1: a warning on stderr while VE_ROOT does not exist, the
    // status line on stdout all the same
    let _ = std::fs::remove_dir(h.path("/vz/root/101"));
    let out = vz(h, &["status", "101"], 0);
    assert_eq!(out.stdout, "CTID 101 exist unmounted down\n", "{out}");
    assert!(
        out.stderr
            .contains("stat(/vz/root/101): No such file or directory"),
        "{out}"
    );
    vz(h, &["chkpnt", "101"], 31);
    let out = vz(h, &["stop", "101"], 0);
    assert!(
        out.stderr
            .contains("Unable to stop: container is not running"),
        "{out}"
    );
    vz(h, &["mount", "101"], 0);
    assert_eq!(status(h), "CTID 101 exist mounted down");
    vz(h, &["start", "101"], 0);
    assert_eq!(status(h), "CTID 101 exist mounted running");
    vz(h, &["start", "101"], 32);
    vz(h, &["restore", "101"], 32);
    vz(h, &["destroy", "101"], 32);
    vz(h, &["chkpnt", "101"], 0);
    assert_eq!(status(h), "CTID 101 exist unmounted down suspended");
    vz(h, &["restore", "101"], 0);
    assert_eq!(status(h), "CTID 101 exist mounted running");
    vz(h, &["stop", "101"], 0);
    vz(h, &["mount", "101"], 0);
    vz(h, &["destroy", "101"], 41);
    vz(h, &["umount", "101"], 0);
    // No private area: premount runs first, then 43.
    install_hooks(h);
    std::fs::rename(h.path("/vz/private/101"), h.path("/vz/private/101.away")).unwrap();
    assert_eq!(status(h).split(' ').nth(2), Some("deleted"));
    let out = vz(h, &["start", "101"], 43);
    assert!(
        out.stderr
            .contains("Container private area /vz/private/101 does not exist"),
        "{out}"
    );
    assert_eq!(hook_names(h), vec!["vps.premount", "101.premount"]);
    std::fs::rename(h.path("/vz/private/101.away"), h.path("/vz/private/101")).unwrap();
    let out = vz(h, &["destroy", "101"], 0);
    assert!(
        out.stdout.contains("Container private area was destroyed"),
        "{out}"
    );
    assert_eq!(status(h), "CTID 101 deleted unmounted down");
    assert!(!h.path("/vz/private/101").exists());
    lab.teardown().unwrap();
}

#[test]
fn set_save_rewrites_only_changed_lines() {
    let Some(lab) = lab("set_save_rewrites_only_changed_lines") else {
        return;
    };
    let h = lab.host("a");
    let orig = "# my container\n\nONBOOT=\"yes\"\nVE_DEVICE='/dev/disk/by-id/lab-x'  \n  # indented comment\nVE_LAYOUT=simfs\nVE_PRIVATE=\"/var/tmp/101\"\nWEIRD =  spaced\nUNKNOWN_KEY=\"kept\"\nHOSTNAME=\"old\"";
    h.write_file("/etc/vz/conf/101.conf", orig).unwrap();
    vz(
        h,
        &[
            "set",
            "101",
            "--private",
            "/vz/private/$VEID",
            "--hostname=new",
            "--root",
            "/vz/root/101",
            "--save",
        ],
        0,
    );
    let got = h.read_file("/etc/vz/conf/101.conf").unwrap();
    assert_eq!(
        got,
        "# my container\n\nONBOOT=\"yes\"\nVE_DEVICE='/dev/disk/by-id/lab-x'  \n  # indented comment\nVE_LAYOUT=\"simfs\"\nVE_PRIVATE=\"/vz/private/$VEID\"\nWEIRD =  spaced\nUNKNOWN_KEY=\"kept\"\nHOSTNAME=\"new\"\nVE_ROOT=\"/vz/root/101\"\n"
    );
    assert!(!h.path("/etc/vz/conf/101.conf.tmp").exists());
    // Without --save nothing changes.
    vz(h, &["set", "101", "--hostname", "other"], 0);
    assert_eq!(h.read_file("/etc/vz/conf/101.conf").unwrap(), got);
    vz(h, &["set", "101", "--nosuch", "x", "--save"], 20);
    vz(h, &["set", "101", "--onboot", "maybe", "--save"], 21);
    lab.teardown().unwrap();
}

#[test]
fn single_quotes_are_not_special_to_vzctl() {
    let Some(lab) = lab("single_quotes_are_not_special_to_vzctl") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    let c = h.read_file("/etc/vz/conf/101.conf").unwrap();
    h.write_file(
        "/etc/vz/conf/101.conf",
        format!("{c}VE_PRIVATE='/vz/private/101'\n"),
    )
    .unwrap();
    let out = vz(h, &["start", "101"], 43);
    assert!(
        out.stderr
            .contains("Container private area '/vz/private/101' does not exist"),
        "{out}"
    );
    lab.teardown().unwrap();
}

#[test]
fn container_lock() {
    let Some(lab) = lab("container_lock") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    // Held by a live process (pid 1 always exists).
    h.write_file("/vz/lock/101.lck", "1\nmigrating\n").unwrap();
    let out = vz(h, &["start", "101"], 9);
    assert!(out.stderr.contains("Container already locked"), "{out}");
    vz(h, &["--skiplock", "start", "101"], 0);
    vz(h, &["stop", "101", "--skiplock"], 0);
    assert_eq!(
        h.read_file("/vz/lock/101.lck").unwrap(),
        "1\nmigrating\n",
        "skiplock leaves the lock alone"
    );
    // Stale (dead pid): removed, and the command runs.
    h.write_file("/vz/lock/101.lck", "999999999\n\n").unwrap();
    let out = vz(h, &["mount", "101"], 0);
    assert!(
        out.stdout
            .contains("Removing stale lock file /vz/lock/101.lck"),
        "{out}"
    );
    assert!(
        !h.path("/vz/lock/101.lck").exists(),
        "the lock is released after the command"
    );
    lab.teardown().unwrap();
}

#[test]
fn create_follows_the_seed_recipe() {
    let Some(lab) = lab("create_follows_the_seed_recipe") else {
        return;
    };
    let h = lab.host("a");
    // A fresh filesystem (lost+found) on VE_PRIVATE is non-empty: refused.
    h.run_ok(&["mkdir", "-p", "/vz/private/101/lost+found"])
        .unwrap();
    let out = vz(h, &["create", "101", "--ostemplate", "lab-minimal"], 44);
    assert!(
        out.stderr
            .contains("Private area already exists in /vz/private/101"),
        "{out}"
    );
    assert!(!h.path("/etc/vz/conf/101.conf").exists());
    // The seed: create in a temporary private area.
    let out = vz(
        h,
        &[
            "create",
            "101",
            "--ostemplate",
            "lab-minimal",
            "--private",
            "/var/tmp/101",
        ],
        0,
    );
    assert!(
        out.stdout.contains("Container private area was created"),
        "{out}"
    );
    assert!(h.path("/var/tmp/101/etc/os-release").is_file());
    let conf = h.read_file("/etc/vz/conf/101.conf").unwrap();
    assert!(conf.contains("VE_PRIVATE=\"/var/tmp/101\"\n"), "{conf}");
    assert!(conf.contains("VE_ROOT=\"/vz/root/$VEID\"\n"), "{conf}");
    assert!(conf.contains("OSTEMPLATE=\"lab-minimal\"\n"), "{conf}");
    assert!(
        conf.starts_with("# Configuration sample of the vzfs lab"),
        "{conf}"
    );
    // An empty existing directory is fine.
    h.run_ok(&["mkdir", "-p", "/vz/private/102"]).unwrap();
    vz(h, &["create", "102"], 0);
    vz(h, &["create", "102"], 44);
    vz(h, &["create", "103", "--ostemplate", "nosuch"], 47);
    lab.teardown().unwrap();
}

/// `create`'s options (`--hostname`, every `--ipadd`), and the template
/// extracted as vzctl's tar does it: without xattrs or ACLs.
#[test]
fn create_options_and_template_without_xattrs() {
    let Some(lab) = lab("create_options_and_template_without_xattrs") else {
        return;
    };
    let h = lab.host("a");
    h.sh_ok("mkdir -p /var/tmp/t/etc && echo x > /var/tmp/t/etc/f")
        .unwrap();
    let f = h.path("/var/tmp/t/etc/f");
    let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"trusted.vzfs".as_ptr(),
            b"v".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    assert!(!vzfs::manifest::xattrs(&f).unwrap().is_empty());
    h.sh_ok(
        "tar --numeric-owner --xattrs --xattrs-include='*' --acls -czf /vz/template/cache/x.tar.gz -C /var/tmp/t .",
    )
    .unwrap();
    vz(
        h,
        &[
            "create",
            "104",
            "--ostemplate",
            "x",
            "--hostname",
            "h4",
            "--ipadd",
            "10.0.0.1",
            "--ipadd=10.0.0.2",
        ],
        0,
    );
    let conf = h.read_file("/etc/vz/conf/104.conf").unwrap();
    assert!(conf.contains("HOSTNAME=\"h4\"\n"), "{conf}");
    assert!(
        conf.contains("IP_ADDRESS=\"10.0.0.1 10.0.0.2\"\n"),
        "{conf}"
    );
    let x = vzfs::manifest::xattrs(&h.path("/vz/private/104/etc/f")).unwrap();
    assert!(x.is_empty(), "the template's xattrs were kept: {x:?}");
    lab.teardown().unwrap();
}

#[test]
fn running_container_pins_its_root_and_survives_chkpnt_restore() {
    let Some(lab) = lab("running_container_pins_its_root_and_survives_chkpnt_restore") else {
        return;
    };
    let h = lab.host("a");
    create(h);
    vz(h, &["start", "101"], 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The workload's cwd is in VE_ROOT: unmounting it by hand is EBUSY.
    let out = h.run(&["umount", "/vz/root/101"]).unwrap();
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("busy"), "{out}");
    // Staged checkpoint, as vzmigrate --online does it.
    vz(h, &["chkpnt", "101", "--suspend"], 0);
    vz(
        h,
        &["chkpnt", "101", "--dump", "--dumpfile", "/vz/dump/mig.101"],
        0,
    );
    // Undo of a suspend: resume; then suspend again.
    vz(h, &["chkpnt", "101", "--resume"], 0);
    std::thread::sleep(std::time::Duration::from_millis(200));
    vz(h, &["chkpnt", "101", "--suspend"], 0);
    vz(
        h,
        &["chkpnt", "101", "--dump", "--dumpfile", "/vz/dump/mig.101"],
        0,
    );
    // The staged kill leaves the container mounted (only a full chkpnt unmounts).
    let out = vz(h, &["chkpnt", "101", "--kill"], 0);
    assert!(!out.stdout.contains("Container is unmounted"), "{out}");
    assert_eq!(status(h), "CTID 101 exist mounted down");
    let dump = h.read_file("/vz/dump/mig.101").unwrap();
    vz(
        h,
        &[
            "restore",
            "101",
            "--undump",
            "--dumpfile",
            "/vz/dump/mig.101",
        ],
        0,
    );
    assert_eq!(status(h), "CTID 101 exist mounted running");
    vz(h, &["restore", "101", "--resume"], 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Full cycle with the default dump file.
    vz(h, &["chkpnt", "101"], 0);
    vz(h, &["restore", "101"], 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    vz(h, &["stop", "101"], 0);
    let log = h
        .read_file(format!("/vz/private/101/{}", workload::LOG_PATH))
        .unwrap();
    let s = workload::check_log(&log).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!((s.starts, s.restores), (1, 2), "{log}");
    assert!(s.numbers >= 6, "{log}");
    assert!(dump.contains("CTID=101"), "{dump}");
    // A dump of another CT is refused.
    h.write_file("/vz/dump/other", "VZFS-LAB-DUMP 1\nCTID=102\nSEQ=5\n")
        .unwrap();
    vz(h, &["restore", "101", "--dumpfile", "/vz/dump/other"], 17);
    vz(h, &["restore", "101", "--dumpfile", "/vz/dump/missing"], 17);
    lab.teardown().unwrap();
}
