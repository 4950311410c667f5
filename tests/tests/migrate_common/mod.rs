//! Shared helpers of the migration end-to-end tests (lab setup, containers,
//! checksums). Included with `mod migrate_common;`.
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
