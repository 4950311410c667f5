//! Shared helpers of the migration end-to-end tests (`migrate_e2e`,
//! `migrate_undo`, `migrate_more`, `migrate_quota`): lab setup, containers
//! in each scenario and state, checksums, running vzfs-migrate (with
//! failpoints), and the state of the source to prove an undo complete.
//! Included with `mod common;`; not every test file uses every helper.
#![allow(dead_code)]

use vzfs_lab::{Disk, Fs, Host, Lab};

pub const CT: &str = "101";

pub fn lab(name: &str) -> Option<Lab> {
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
pub fn create_shared(a: &Host) {
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
pub fn create_insulated(a: &Host, lun: &Disk) {
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
pub fn tree_sum(h: &Host, dir: &str) -> String {
    h.sh_ok(&format!(
        "cd {dir} && find . -mindepth 1 \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -printf '%p %y %m %U:%G %n\\n' | sort && \
         find . \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -type f -printf '%p %s\\n' | sort && \
         find . \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum"
    ))
    .unwrap()
    .stdout
}

pub fn status(h: &Host) -> String {
    h.vzctl(&["status", CT]).unwrap().stdout.trim().to_string()
}

pub fn set_state(a: &Host, state: &str) {
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

pub fn expected_status(state: &str) -> String {
    match state {
        "running" => "CTID 101 exist mounted running".into(),
        "mounted" => "CTID 101 exist mounted down".into(),
        _ => "CTID 101 exist unmounted down".into(),
    }
}

pub fn migrate(a: &Host, args: &[&str]) -> vzfs_lab::Output {
    let mut v = vec!["vzfs-migrate"];
    v.extend_from_slice(args);
    a.run(&v).unwrap()
}

/// Is the filesystem of `lun` mounted (or held) on host `h`?
pub fn lun_mounted(h: &Host, lun: &Disk) -> bool {
    let dev = lun.device(h.name()).display().to_string();
    let out = h
        .sh(&format!("grep -c ' {dev} ' /proc/self/mountinfo || true"))
        .unwrap();
    out.stdout.trim() != "0"
}

pub fn private_of(h: &Host) -> String {
    h.read_file("/etc/vz/conf/101.conf").unwrap_or_default()
}

/// Build the source container for scenario `kind` in `state`; returns the
/// migrate arguments and the LUNs.
pub fn setup(lab: &Lab, kind: &str, state: &str) -> (Vec<String>, Option<Disk>, Option<Disk>) {
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

/// `vzfs-migrate HEAD... ARGS...` as an argv (for [`Host::run`] or
/// [`Host::command`]).
pub fn migrate_argv<'a>(head: &[&'a str], args: &'a [String]) -> Vec<&'a str> {
    let mut v: Vec<&str> = vec!["vzfs-migrate"];
    v.extend_from_slice(head);
    v.extend(args.iter().map(String::as_str));
    v
}

/// Runs `argv` on `h` with `VZFS_FAILPOINTS=failpoints`; returns the exit
/// code (None: killed by a signal) and the whole stderr.
pub fn run_failpoints(h: &Host, argv: &[&str], failpoints: &str) -> (Option<i32>, String) {
    let mut cmd = h.command(argv);
    cmd.env("VZFS_FAILPOINTS", failpoints);
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `vzfs-migrate --recover 101` on `h`, which must succeed; its output.
pub fn recover(h: &Host) -> vzfs_lab::Output {
    let rec = h.run(&["vzfs-migrate", "--recover", CT]).unwrap();
    assert!(rec.success(), "{}", rec.all());
    rec
}

/// Did the stderr of a failed run report `step` as undone (or as a step
/// that had nothing to do, so owes no undo)?
pub fn step_undone(err: &str, step: &str) -> bool {
    err.contains(&format!("undo {step} ("))
        || err.contains(&format!("undo {step}: nothing to undo"))
}

/// `vzdqdump 101 -U -G -T -F` on `h`; None when `h` has no quota file of
/// the container (exit 11, EC_NOQUOTAFILE).
pub fn quota_dump(h: &Host) -> Option<String> {
    let o = h.run(&["vzdqdump", CT, "-U", "-G", "-T", "-F"]).unwrap();
    match o.exit_code() {
        0 => Some(o.stdout),
        11 => None,
        c => panic!("vzdqdump on {}: exit {c}: {}", h.name(), o.all()),
    }
}

/// State of the source container, to compare before and after an undo.
pub struct Snapshot {
    pub status: String,
    pub conf: Vec<u8>,
    pub sum: String,
    /// The source's quota ([`quota_dump`]) when taken by
    /// [`snapshot_with_quota`]; None: not read (the lab's vzquota double is
    /// only needed by the quota tests).
    pub quota: Option<Option<String>>,
}

/// The source's state; `insulated_stopped`: the private area is on an
/// unmounted device, mounted (`vzctl mount`) for the checksum only.
pub fn snapshot(a: &Host, insulated_stopped: bool) -> Snapshot {
    let status = status(a);
    let conf = std::fs::read(a.path("/etc/vz/conf/101.conf")).unwrap();
    if insulated_stopped {
        a.vzctl(&["mount", CT]).unwrap().ok().unwrap();
    }
    let sum = tree_sum(a, "/vz/private/101");
    if insulated_stopped {
        a.vzctl(&["umount", CT]).unwrap().ok().unwrap();
    }
    Snapshot {
        status,
        conf,
        sum,
        quota: None,
    }
}

/// [`snapshot`] of a container whose private area is readable, with its quota.
pub fn snapshot_with_quota(a: &Host) -> Snapshot {
    Snapshot {
        quota: Some(quota_dump(a)),
        ..snapshot(a, false)
    }
}

/// The source is as it was (state, config bytes, data, and the quota when
/// `before` holds one), the target holds nothing of the container (config,
/// private area, dump file, quota), no journal or lock is left, the source
/// device `src` is mounted on the source again if the container was
/// mounted, and neither `src` nor `dst` is mounted on the target.
///
/// One check for the three copies this replaces (migrate_undo's
/// `assert_untouched`, migrate_more's and migrate_quota's `assert_undone`),
/// keeping the stricter of each: the target dump file check (was undo's
/// only) and the "mounted on the source again" check (was more's only, for
/// a running d2 container; here whenever the source was mounted) apply to
/// every caller; the quota checks stay with snapshots that read the quota.
pub fn assert_undone(
    ctx: &str,
    lab: &Lab,
    before: &Snapshot,
    src: Option<&Disk>,
    dst: Option<&Disk>,
) {
    let (a, b) = (lab.host("a"), lab.host("b"));
    let mounted_before = !before.status.contains("unmounted");
    let now = if before.quota.is_some() {
        snapshot_with_quota(a)
    } else {
        snapshot(a, src.is_some() && !mounted_before)
    };
    assert_eq!(now.status, before.status, "{ctx}: source state changed");
    assert_eq!(now.conf, before.conf, "{ctx}: source config changed");
    assert_eq!(now.sum, before.sum, "{ctx}: source data changed");
    if let Some(q) = &before.quota {
        assert_eq!(now.quota.as_ref(), Some(q), "{ctx}: source quota changed");
    }
    assert!(
        !b.path("/etc/vz/conf/101.conf").exists(),
        "{ctx}: target config left"
    );
    assert!(
        !b.path("/vz/private/101").exists(),
        "{ctx}: target private area left"
    );
    assert!(
        !b.path("/vz/dump/Dump.101").exists(),
        "{ctx}: target dump left"
    );
    if before.quota.is_some() {
        assert_eq!(quota_dump(b), None, "{ctx}: target quota left");
    }
    assert!(
        !a.path("/vz/lock/101.migrate-journal").exists(),
        "{ctx}: journal left"
    );
    assert!(!a.path("/vz/lock/101.lck").exists(), "{ctx}: lock left");
    if let Some(s) = src.filter(|_| mounted_before) {
        assert!(
            lun_mounted(a, s),
            "{ctx}: device not mounted on the source again"
        );
    }
    for d in [src, dst].into_iter().flatten() {
        if d.try_device("b").is_some() {
            assert!(!lun_mounted(b, d), "{ctx}: device mounted on the target");
        }
    }
    if before.status.contains("running") {
        let log = a
            .read_file("/vz/root/101/var/log/lab-workload.log")
            .unwrap();
        vzfs_lab::workload::check_log(&log).unwrap_or_else(|e| panic!("{ctx}: workload log: {e}"));
    }
}
