//! The scenarios `make demo` shows, in words an admin understands. Each
//! scenario is a function over a [`Demo`] (a lab plus a narrator) registered
//! in [`SCENARIOS`]; add a scenario by writing one more function and one more
//! line there. Every scenario builds its own two-node lab, shows the commands
//! it runs with their output, verifies its result (data checksums on arrival,
//! mounts, configs, the workload's sequence) and removes the lab. A failed
//! check fails the scenario, and `vzfs-lab demo` then exits 1.

use crate::cmd::Output;
use crate::error::{LabError, Result};
use crate::lab::{Disk, Fs, Host, Lab};
use crate::workload;
use std::time::{Duration, Instant};

/// A scenario: name (for `vzfs-lab demo NAME`), one-line summary, body.
pub type Scenario = (&'static str, &'static str, fn(&mut Demo) -> Result<()>);

/// Every scenario, in the order `make demo` runs them.
pub const SCENARIOS: &[Scenario] = &[
    (
        "insulated-start-stop",
        "an insulated container on a SAN LUN: created with vzfs-create, started and stopped with vzfs-hook",
        insulated_start_stop,
    ),
    (
        "convert",
        "vzfs-create --convert: a running shared container moves onto its own disk and back, on one node",
        convert,
    ),
    (
        "migrate-a",
        "migration a: shared -> shared, a running container (as stock vzmigrate)",
        migrate_a,
    ),
    (
        "migrate-b",
        "migration b: shared -> insulated (--dst-device), a running container moves onto its own disk",
        migrate_b,
    ),
    (
        "migrate-c",
        "migration c: insulated -> shared (--dst-shared), a stopped container leaves its device",
        migrate_c,
    ),
    (
        "migrate-d1",
        "migration d1: insulated -> insulated onto another device (data copied), a running container",
        migrate_d1,
    ),
    (
        "migrate-d2",
        "migration d2: insulated -> insulated on the same SAN LUN (handoff, no data copied)",
        migrate_d2,
    ),
    (
        "migrate-online",
        "online migration (--online) over the SAN with a shared dump device: the workload goes on",
        migrate_online,
    ),
    (
        "check-only",
        "--check-only: every check and the plan, nothing changed",
        check_only,
    ),
    (
        "undo",
        "a failure half-way through a handoff is undone: the source is left exactly as it was",
        undo,
    ),
];

/// Scenarios that install vzfs-hook themselves, as a step the admin sees;
/// every other one gets a lab with it installed ([`LabBuilder::install_hook`]).
///
/// [`LabBuilder::install_hook`]: crate::lab::LabBuilder::install_hook
const SHOWS_HOOK_INSTALL: &[&str] = &["insulated-start-stop"];

/// The container every scenario uses.
const CT: &str = "101";

/// A lab and a narrator.
pub struct Demo {
    pub lab: Lab,
    step: std::cell::Cell<usize>,
}

impl Demo {
    /// Two nodes, `node-a` and `node-b`, with vzfs-hook and vzfs-migrate on
    /// their PATH; with `hook`, vzfs-hook is also installed as vzctl's
    /// `vps.premount`/`vps.postumount` on both.
    pub fn two_nodes(hook: bool) -> Result<Demo> {
        say("Building the lab: two hardware nodes, node-a and node-b, each with its own");
        say("network, sshd, /etc/vz, /vz and its own view of the disks ...");
        let t0 = Instant::now();
        let mut b = Lab::builder()
            .hosts(&["node-a", "node-b"])
            .require_binary("vzfs-hook")
            .require_binary("vzfs-migrate")
            .require_binary("vzfs-create");
        if hook {
            b = b.install_hook();
        }
        let lab = b.start()?;
        for h in lab.hosts() {
            h.write_file("/usr/local/sbin/ct-checksum", CHECKSUM_SCRIPT)?;
            h.run_ok(&["chmod", "755", "/usr/local/sbin/ct-checksum"])?;
            say(&format!(
                "  {} is up at {} (sshd running)",
                h.name(),
                h.ip()
            ));
        }
        if hook {
            say("  On both nodes vzfs-hook is installed as vzctl's vps.premount and vps.postumount.");
        }
        say(&format!("  ready in {:.1} s", t0.elapsed().as_secs_f64()));
        Ok(Demo {
            lab,
            step: std::cell::Cell::new(0),
        })
    }

    fn host(&self, name: &str) -> &Host {
        self.lab.host(name)
    }

    /// Prints a numbered step title.
    pub fn step(&self, title: &str) {
        self.step.set(self.step.get() + 1);
        println!("\n== Step {}: {title}", self.step.get());
    }

    /// Runs a shell command line on `host`, shows it and its output, and
    /// requires success.
    pub fn run(&self, host: &str, line: &str) -> Result<Output> {
        let out = self.show(host, line)?;
        if !out.success() {
            return Err(fail(format!(
                "`{line}` on {host} failed with exit code {}",
                out.exit_code()
            )));
        }
        Ok(out)
    }

    /// Runs and shows a command line; any exit code is returned.
    pub fn show(&self, host: &str, line: &str) -> Result<Output> {
        println!("  {host}# {line}");
        // stderr merged into stdout, so messages keep their order.
        let out = self.host(host).sh(&format!("{{ {line}\n}} 2>&1"))?;
        for l in out.stdout.lines().chain(out.stderr.lines()) {
            println!("      {l}");
        }
        if !out.success() {
            println!("      (exit code {})", out.exit_code());
        }
        Ok(out)
    }

    /// Runs and shows a command line that must fail (non-zero exit).
    pub fn run_failing(&self, host: &str, line: &str) -> Result<Output> {
        let out = self.show(host, line)?;
        if out.success() {
            return Err(fail(format!("`{line}` on {host} succeeded; it must fail")));
        }
        Ok(out)
    }

    /// A verified fact: prints `[ok] what`, or fails the scenario.
    pub fn check(&self, ok: bool, what: &str) -> Result<()> {
        if ok {
            println!("  [ok] {what}");
            Ok(())
        } else {
            println!("  [FAILED] {what}");
            Err(fail(format!("check failed: {what}")))
        }
    }

    /// Shows and returns `ct-checksum DIR` on `host`: one checksum over the
    /// names, types, modes, owners, link counts, sizes and contents of every
    /// file of the private area.
    pub fn checksum(&self, host: &str, dir: &str) -> Result<String> {
        Ok(self
            .run(host, &format!("ct-checksum {dir}"))?
            .stdout
            .trim()
            .to_string())
    }

    /// `vzctl status CT` on `host`, shown.
    /// The status line of `vzctl status` (vzctl 4.11.1 may print a
    /// `stat(VE_ROOT)` warning before it; the demo shows stderr merged).
    pub fn status(&self, host: &str) -> Result<String> {
        Ok(self
            .run(host, &format!("vzctl status {CT}"))?
            .stdout
            .lines()
            .find(|l| l.starts_with("CTID "))
            .unwrap_or("")
            .trim()
            .to_string())
    }

    /// Explains in words what is mounted on `path` of `host`.
    pub fn explain_mount(&self, host: &Host, path: &str, disk: &Disk) -> Result<bool> {
        match host.mount_at(path)? {
            Some(m) => {
                let ours = disk.dev_num(host.name()) == Some(m.dev);
                say(&format!(
                    "  On {}: {path} is a mount point: {} filesystem from device {} ({}){}.",
                    host.name(),
                    m.fstype,
                    m.source,
                    m.dev,
                    if ours {
                        format!(
                            ", which is the disk {} as {} sees it",
                            disk.name,
                            host.name()
                        )
                    } else {
                        String::new()
                    }
                ));
                Ok(true)
            }
            None => {
                say(&format!(
                    "  On {}: nothing is mounted on {path}.",
                    host.name()
                ));
                Ok(false)
            }
        }
    }

    /// Checks that `disk` is the filesystem mounted on `path` of `host`
    /// (by major:minor of the host's own device for it).
    pub fn check_mounted(&self, host: &str, path: &str, disk: &Disk) -> Result<()> {
        let h = self.host(host);
        let m = h.mount_at(path)?;
        let dev = disk.device(host).display().to_string();
        self.check(
            m.as_ref().map(|m| m.dev) == disk.dev_num(host),
            &format!(
                "on {host}, {path} is the filesystem of disk {} ({dev} there){}",
                disk.name,
                match &m {
                    Some(m) => format!(": mounted from {} ({})", m.source, m.dev),
                    None => ": nothing is mounted there".into(),
                }
            ),
        )
    }

    /// Checks that `host` has no mount of `disk` at all.
    pub fn check_released(&self, host: &str, disk: &Disk) -> Result<()> {
        let left = self.host(host).disk_mounts(disk)?;
        self.check(
            left.is_empty(),
            &format!(
                "{host} holds no mount of disk {} ({}){}",
                disk.name,
                disk.device(host).display(),
                left.iter()
                    .map(|m| format!(": still mounted on {}", m.mount_point.display()))
                    .collect::<String>()
            ),
        )
    }

    /// Checks what a finished migration leaves on the source: no config
    /// (only vzctl's `.migrated` copy, which vzctl ignores) and a status of
    /// "deleted".
    pub fn check_source_gone(&self) -> Result<()> {
        self.run("node-a", "ls /etc/vz/conf/")?;
        let a = self.host("node-a");
        self.check(
            !a.path(format!("/etc/vz/conf/{CT}.conf")).exists()
                && a.path(format!("/etc/vz/conf/{CT}.conf.migrated")).exists(),
            &format!(
                "node-a keeps no config of container {CT} (only {CT}.conf.migrated, which vzctl ignores)"
            ),
        )?;
        let st = self.status("node-a")?;
        self.check(
            st == format!("CTID {CT} deleted unmounted down"),
            "node-a's vzctl no longer knows the container",
        )
    }

    /// Checks that the migration journal and the container lock are gone.
    pub fn check_no_journal(&self) -> Result<()> {
        let a = self.host("node-a");
        self.check(
            !a.path(format!("/vz/lock/{CT}.migrate-journal")).exists()
                && !a.path(format!("/vz/lock/{CT}.lck")).exists(),
            "no migration journal and no container lock are left on node-a",
        )
    }

    /// The workload's log as `host` sees it in the running container.
    fn workload_log(&self, host: &str) -> Result<String> {
        self.host(host)
            .read_file(format!("/vz/root/{CT}/{}", workload::LOG_PATH))
    }
}

/// `ct-checksum DIR` (installed on each lab host by the demo): prints the
/// number of entries and one sha256 over every entry's name, type, mode,
/// owner, link count, file size and content. `lost+found` (a filesystem's
/// own) and the workload's log (it grows while the container runs) are left
/// out, so a private area compares equal on a device and in a directory.
const CHECKSUM_SCRIPT: &str = r#"#!/bin/sh
# ct-checksum DIR: one checksum over a container's private area (vzfs demo).
set -e
cd "$1"
skip='( -path ./lost+found -o -path ./var/log/lab-workload.log ) -prune -o'
n=$(find . -mindepth 1 $skip -print | wc -l)
sum=$( { find . -mindepth 1 $skip -printf '%p %y %m %U:%G %n\n' | LC_ALL=C sort
         find . $skip -type f -printf '%p %s\n' | LC_ALL=C sort
         find . $skip -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
       } | sha256sum | cut -d' ' -f1)
echo "$n entries, sha256 $sum"
"#;

/// Prints a line of narration.
pub fn say(s: &str) {
    println!("{s}");
}

fn fail(msg: String) -> LabError {
    LabError::Usage(msg)
}

/// Shell commands that put some data into a private area: files, a hard
/// link, a sparse file, owners and modes (the copy must keep them all).
const DATA: &str = "mkdir -p srv/www && head -c 1500000 /dev/urandom > srv/www/big.bin && \
     echo 'hello from container 101' > srv/www/index.html && \
     ln srv/www/index.html srv/www/index-hardlink.html && \
     truncate -s 20M srv/sparse.img && chown -R 33:33 srv/www && chmod 640 srv/www/big.bin";

/// A shared container (a directory under /vz/private) on node-a, with data.
fn setup_shared(d: &Demo) -> Result<()> {
    let a = d.host("node-a");
    a.vzctl(&["create", CT, "--ostemplate", "lab-minimal"])?
        .ok()?;
    a.sh_ok(&format!("cd /vz/private/{CT} && {DATA}"))?;
    say(&format!(
        "Prepared on node-a: container {CT}, created with `vzctl create {CT} --ostemplate lab-minimal`;"
    ));
    say(&format!(
        "its private area /vz/private/{CT} is a plain directory on the node's /vz (a shared container)."
    ));
    Ok(())
}

/// An insulated container on node-a: files on `disk`, `VE_DEVICE=ve_device`,
/// made by `vzfs-create` (see the first demo), with some data, left
/// unmounted. Done quietly; [`create_insulated_ct`] shows each command.
fn setup_insulated(d: &Demo, disk: &Disk, ve_device: &str) -> Result<()> {
    let a = d.host("node-a");
    let dev = disk.device("node-a").display().to_string();
    a.sh_ok(&format!(
        "set -e; vzfs-create {CT} --device '{ve_device}' --ostemplate lab-minimal 2>/dev/null
         vzctl mount {CT} >/dev/null 2>&1
         cd /vz/private/{CT} && {DATA}; cd /
         vzctl umount {CT} >/dev/null 2>&1"
    ))?;
    say(&format!(
        "Prepared on node-a: container {CT}, insulated: its files live on disk {} (node-a: {dev}),",
        disk.name
    ));
    say("created with vzfs-create (see the first demo); its config names the device:");
    d.run(
        "node-a",
        &format!("grep -E '^(VE_PRIVATE|VE_DEVICE)=' /etc/vz/conf/{CT}.conf"),
    )?;
    Ok(())
}

/// Starts the container on node-a (shown) and checks it runs.
fn start_on_a(d: &Demo) -> Result<()> {
    d.run("node-a", &format!("vzctl start {CT}"))?;
    check_status(
        d,
        "node-a",
        "exist mounted running",
        "the container runs on node-a",
    )?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

/// The first step of d1 and of check-only: an insulated container running
/// on a disk of node-a (`a-ct101`) and an empty disk on node-b (`b-ct101`).
/// Returns both disks and node-b's disk by its by-id path.
fn running_on_disk_with_disk_on_b(d: &Demo) -> Result<(Disk, Disk, String)> {
    d.step("an insulated container running on node-a's disk, and another disk on node-b");
    let src = d.lab.add_local_disk("node-a", "a-ct101", Fs::Ext4)?;
    let dst_disk = d.lab.add_local_disk("node-b", "b-ct101", Fs::Ext4)?;
    let dst = dst_disk.by_id_path().display().to_string();
    setup_insulated(d, &src, &src.by_id_path().display().to_string())?;
    start_on_a(d)?;
    Ok((src, dst_disk, dst))
}

/// The SAN LUN of d2, online and undo: ext4 with MMP, presented to both nodes.
fn san_lun(d: &Demo) -> Result<Disk> {
    d.lab
        .add_lun("san-ct101", &["node-a", "node-b"], Fs::Ext4Mmp)
}

/// The container's private area, `/vz/private/CT`.
fn private() -> String {
    format!("/vz/private/{CT}")
}

/// The container's config on `host` (read, not shown).
fn read_conf(d: &Demo, host: &str) -> Result<String> {
    d.host(host).read_file(format!("/etc/vz/conf/{CT}.conf"))
}

/// Checks (shown) that `vzctl status CT` on `host` is `CTID CT state`.
fn check_status(d: &Demo, host: &str, state: &str, what: &str) -> Result<()> {
    let st = d.status(host)?;
    d.check(st == format!("CTID {CT} {state}"), what)
}

/// Shows what is mounted on the container's private area of `host`.
fn show_private_mount(d: &Demo, host: &str) -> Result<()> {
    d.run(
        host,
        &format!("findmnt -n -o SOURCE,FSTYPE,TARGET /vz/private/{CT}"),
    )?;
    Ok(())
}

/// Shows the last lines the workload wrote on `host`.
fn show_workload_tail(d: &Demo, host: &str) -> Result<()> {
    d.run(
        host,
        &format!("tail -n 3 /vz/root/{CT}/var/log/lab-workload.log"),
    )?;
    Ok(())
}

/// The verify step of a copying migration of a running container onto
/// `disk` of node-b (b and d1): it runs on node-b on that disk with the
/// data of checksum `sum`; shows node-b's config lines matching the
/// extended regexp `conf_lines` and returns node-b's config.
fn verify_copied_onto(d: &Demo, disk: &Disk, sum: &str, conf_lines: &str) -> Result<String> {
    d.step("verify on node-b and node-a");
    check_status(
        d,
        "node-b",
        "exist mounted running",
        "the container runs on node-b",
    )?;
    show_private_mount(d, "node-b")?;
    d.check_mounted("node-b", &private(), disk)?;
    check_data(d, sum, "data")?;
    d.run(
        "node-b",
        &format!("grep -E '{conf_lines}' /etc/vz/conf/{CT}.conf"),
    )?;
    read_conf(d, "node-b")
}

/// For a stopped insulated container: mounts it (the hook mounts the
/// device), takes the checksum, unmounts it again.
fn checksum_stopped_insulated(d: &Demo, host: &str) -> Result<String> {
    say("Its files are on an unmounted device: mount the container to read them.");
    d.run(host, &format!("vzctl mount {CT}"))?;
    let sum = d.checksum(host, &private())?;
    d.run(host, &format!("vzctl umount {CT}"))?;
    Ok(sum)
}

/// Runs `vzfs-migrate ARGS` on node-a (shown), requires success.
fn migrate(d: &Demo, args: &str) -> Result<Output> {
    let t = Instant::now();
    let out = d.run("node-a", &format!("vzfs-migrate {args}"))?;
    say(&format!(
        "  (vzfs-migrate took {:.2} s in all)",
        t.elapsed().as_secs_f64()
    ));
    Ok(out)
}

/// Checks that the container's data on node-b has the checksum `before`.
fn check_data(d: &Demo, before: &str, what: &str) -> Result<()> {
    let after = d.checksum("node-b", &private())?;
    d.check(
        after == before,
        &format!("{what}: the checksum on node-b equals node-a's before the migration"),
    )
}

/// Reads the value of `key` in a config text (quotes removed).
fn conf_value(conf: &str, key: &str) -> Option<String> {
    conf.lines().rev().find_map(|l| {
        l.strip_prefix(&format!("{key}="))
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// Creates container `ctid` on `host` on `disk` (already formatted, empty)
/// with `vzfs-create`, `VE_DEVICE` being the disk's by-id link: what the
/// seed's "Other issues" section does by hand in five steps (create in a
/// temporary place, mkdir, mount, mv, edit the config). Leaves the device
/// unmounted (the hook mounts it).
pub fn create_insulated_ct(d: &mut Demo, host: &str, ctid: &str, disk: &Disk) -> Result<()> {
    let link = disk.by_id_path().display().to_string();
    d.step(&format!(
        "create container {ctid} on node {host} on its own device, with vzfs-create"
    ));
    say("The seed did this by hand: vzctl create into a temporary private area (vzctl");
    say("refuses a non-empty one, and a fresh filesystem has lost+found), mkdir, mount,");
    say("mv the files, then edit VE_PRIVATE and VE_DEVICE into the config. vzfs-create");
    say("does it in one command, checks the device first, copies with rsync -aHAX,");
    say("verifies the copy against a manifest, and undoes everything if a step fails.");
    say(&format!(
        "VE_DEVICE uses {link}: the same name on every node that sees the LUN."
    ));
    d.run(
        host,
        &format!("vzfs-create --check-only {ctid} --device {link} --ostemplate lab-minimal"),
    )?;
    d.run(
        host,
        &format!("vzfs-create {ctid} --device {link} --ostemplate lab-minimal"),
    )?;
    d.run(
        host,
        &format!("grep -E '^(VE_PRIVATE|VE_ROOT|VE_DEVICE)' /etc/vz/conf/{ctid}.conf"),
    )?;
    let st = d
        .run(host, &format!("vzctl status {ctid}"))?
        .stdout
        .lines()
        .find(|l| l.starts_with("CTID "))
        .unwrap_or("")
        .trim()
        .to_string();
    d.check(
        st == format!("CTID {ctid} exist unmounted down"),
        "the container exists, stopped and unmounted, as vzctl create leaves one",
    )?;
    d.check_released(host, disk)?;
    d.run(host, &format!("ls -A /vz/private/{ctid} | wc -l"))?;
    say("VE_PRIVATE is an empty mount point: from now on, vzfs-hook mounts the device when");
    say("the container starts.");
    Ok(())
}

/// Installs vzfs-hook as vzctl's `vps.premount` and `vps.postumount` on
/// `host`, showing the commands (what [`Host::install_hook`] does).
pub fn install_hook(d: &mut Demo, host: &str) -> Result<()> {
    d.step(&format!(
        "install vzfs-hook as vzctl's action scripts on {host}"
    ));
    d.run(
        host,
        "ln -sf /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.premount && \
         ln -sf /usr/local/sbin/vzfs-hook /etc/vz/conf/vps.postumount",
    )?;
    d.run(
        host,
        "ls -l /etc/vz/conf/vps.premount /etc/vz/conf/vps.postumount",
    )?;
    Ok(())
}

fn insulated_start_stop(d: &mut Demo) -> Result<()> {
    d.step("present a SAN LUN to both nodes (ext4 with multi-mount protection)");
    let lun = d.lab.add_lun("ct101", &["node-a", "node-b"], Fs::Ext4Mmp)?;
    for a in &lun.attachments {
        say(&format!(
            "  {} sees the LUN as {} (also {})",
            a.host,
            a.device.display(),
            lun.by_id_path().display()
        ));
    }
    say(&format!(
        "  Same filesystem (UUID {}) behind two device names, as on a real SAN.",
        lun.uuid.clone().unwrap_or_default()
    ));
    install_hook(d, "node-a")?;
    create_insulated_ct(d, "node-a", CT, &lun)?;

    d.step("start the container on node-a");
    d.run("node-a", "vzctl start 101")?;
    d.run("node-a", "vzctl status 101")?;
    d.explain_mount(d.host("node-a"), "/vz/private/101", &lun)?;
    d.check_mounted("node-a", "/vz/private/101", &lun)?;
    say("  So: the premount hook mounted the container's own device on VE_PRIVATE,");
    say("  and vzctl then mounted VE_PRIVATE on VE_ROOT and started the container.");
    d.explain_mount(d.host("node-b"), "/vz/private/101", &lun)?;
    d.check_released("node-b", &lun)?;
    let _ = d.show("node-a", "vzfs-hook status 101");
    std::thread::sleep(Duration::from_millis(300));
    d.run("node-a", "tail -n 3 /vz/root/101/var/log/lab-workload.log")?;
    say("  The container's workload is writing inside its own filesystem.");

    d.step("stop the container on node-a");
    d.run("node-a", "vzctl stop 101")?;
    d.run("node-a", "vzctl status 101")?;
    d.explain_mount(d.host("node-a"), "/vz/private/101", &lun)?;
    d.check_released("node-a", &lun)?;
    say("  So: after vzctl unmounted VE_ROOT, the postumount hook unmounted the device.");
    say("  The LUN is free: another node may now mount it (that is what migration d2 does).");
    Ok(())
}

fn migrate_a(d: &mut Demo) -> Result<()> {
    d.step("a shared container, running on node-a");
    setup_shared(d)?;
    start_on_a(d)?;
    let conf_before = read_conf(d, "node-a")?;
    let sum = d.checksum("node-a", &private())?;

    d.step("migrate it to node-b, with phase timings (-t)");
    say("No VE_DEVICE on either side: vzfs-migrate works as stock vzmigrate. It copies the");
    say("private area with rsync while the container runs, stops it, copies again what");
    say("changed, and starts it on node-b. The downtime is the second pass plus the start.");
    migrate(d, &format!("-t node-b {CT}"))?;

    d.step("verify on node-b and node-a");
    check_status(
        d,
        "node-b",
        "exist mounted running",
        "the container runs on node-b",
    )?;
    check_data(d, &sum, "data")?;
    let conf_b = read_conf(d, "node-b")?;
    d.check(
        conf_b == conf_before,
        "node-b's config is node-a's, byte for byte",
    )?;
    d.check_source_gone()?;
    d.run("node-a", "ls -A /vz/private/")?;
    d.check(
        !d.host("node-a").path(format!("/vz/private/{CT}")).exists(),
        "node-a's private area was removed after the success (-r yes, the default, as vzmigrate)",
    )?;
    std::thread::sleep(Duration::from_millis(200));
    show_workload_tail(d, "node-b")?;
    let s = workload::check_log(&d.workload_log("node-b")?).map_err(fail)?;
    d.check(
        s.starts == 2 && s.restores == 0,
        "the workload was started again on node-b (an offline migration restarts it: \"# start\")",
    )?;
    d.check_no_journal()?;
    say("So: the files were copied (rsync) from node-a's /vz/private/101 to node-b's, the");
    say("config moved unchanged, and node-a's copy was removed only after the container ran");
    say("on node-b.");
    Ok(())
}

fn migrate_b(d: &mut Demo) -> Result<()> {
    d.step("a shared container running on node-a, and a new empty disk on node-b");
    setup_shared(d)?;
    let disk = d.lab.add_local_disk("node-b", "b-ct101", Fs::Ext4)?;
    let dst = disk.by_id_path().display().to_string();
    d.run("node-b", &format!("blkid {dst}"))?;
    start_on_a(d)?;
    let sum = d.checksum("node-a", &private())?;

    d.step("migrate it onto its own device on node-b (--dst-device)");
    say("vzfs-migrate checks on node-b that the device is a block device with a filesystem");
    say("and mounted nowhere, mounts it on node-b's VE_PRIVATE, copies into it, and writes");
    say("VE_DEVICE into node-b's config: from then on vzfs-hook mounts it at each start.");
    migrate(d, &format!("-t --dst-device {dst} node-b {CT}"))?;

    let conf_b = verify_copied_onto(d, &disk, &sum, "^VE_(PRIVATE|DEVICE[A-Z_]*)=")?;
    d.check(
        conf_value(&conf_b, "VE_DEVICE").as_deref() == Some(dst.as_str())
            && conf_value(&conf_b, "VE_DEVICE_FSTYPE").as_deref() == Some("ext4"),
        &format!("node-b's config says VE_DEVICE=\"{dst}\" and VE_DEVICE_FSTYPE=\"ext4\""),
    )?;
    d.check_source_gone()?;
    d.check(
        !d.host("node-a").path(format!("/vz/private/{CT}")).exists(),
        "node-a's private area was removed after the success",
    )?;
    d.check_no_journal()?;

    d.step("stop it on node-b: the hook there unmounts the new device");
    d.run("node-b", &format!("vzctl stop {CT}"))?;
    d.check_released("node-b", &disk)?;
    say("So: the files went from a directory on node-a into node-b's own device, and node-b's");
    say("config now says which device: the container is insulated on node-b.");
    Ok(())
}

fn migrate_c(d: &mut Demo) -> Result<()> {
    d.step("an insulated container on node-a's own disk, stopped");
    let disk = d.lab.add_local_disk("node-a", "a-ct101", Fs::Ext4)?;
    setup_insulated(d, &disk, &disk.by_id_path().display().to_string())?;
    check_status(
        d,
        "node-a",
        "exist unmounted down",
        "the container is stopped and unmounted on node-a",
    )?;
    let sum = checksum_stopped_insulated(d, "node-a")?;
    d.check_released("node-a", &disk)?;

    d.step("migrate it to node-b as a shared container (--dst-shared)");
    say("Stock vzmigrate would copy an empty mount point here. vzfs-migrate mounts the");
    say("source device for the copy, unmounts it afterwards, copies into a plain directory");
    say("on node-b and drops VE_DEVICE from node-b's config.");
    migrate(d, &format!("-t --dst-shared node-b {CT}"))?;

    d.step("verify on node-b and node-a");
    check_status(
        d,
        "node-b",
        "exist unmounted down",
        "the container is stopped on node-b, as it was on node-a",
    )?;
    d.run("node-b", &format!("ls -ld /vz/private/{CT}"))?;
    d.check(
        d.host("node-b")
            .mount_at(format!("/vz/private/{CT}"))?
            .is_none(),
        "node-b's private area is a plain directory, not a mount point",
    )?;
    check_data(d, &sum, "data")?;
    let conf_b = read_conf(d, "node-b")?;
    d.run(
        "node-b",
        &format!("grep -c VE_DEVICE /etc/vz/conf/{CT}.conf || true"),
    )?;
    d.check(
        !conf_b.lines().any(|l| l.starts_with("VE_DEVICE")),
        "node-b's config has no VE_DEVICE (a shared container)",
    )?;
    d.check_source_gone()?;
    d.check_released("node-a", &disk)?;
    say("The data on node-a's device is never deleted: it is still there.");
    let dev = disk.device("node-a").display().to_string();
    d.run(
        "node-a",
        &format!("mount -o ro {dev} /mnt && ls /mnt/srv/www; umount /mnt"),
    )?;
    d.check_released("node-a", &disk)?;
    d.check_no_journal()?;
    say("So: the files went from node-a's device (mounted only for the copy) into a plain");
    say("directory on node-b; node-a's device is unmounted and still holds its copy.");
    Ok(())
}

fn migrate_d1(d: &mut Demo) -> Result<()> {
    let (src, dst_disk, dst) = running_on_disk_with_disk_on_b(d)?;
    d.explain_mount(d.host("node-a"), &private(), &src)?;
    let sum = d.checksum("node-a", &private())?;
    d.run("node-b", &format!("blkid {dst}"))?;

    d.step("migrate it onto node-b's disk (--dst-device: another filesystem, so data is copied)");
    migrate(d, &format!("-t --dst-device {dst} node-b {CT}"))?;

    let conf_b = verify_copied_onto(d, &dst_disk, &sum, "^VE_DEVICE[A-Z_]*=")?;
    d.check(
        conf_value(&conf_b, "VE_DEVICE").as_deref() == Some(dst.as_str()),
        &format!("node-b's config says VE_DEVICE=\"{dst}\""),
    )?;
    d.check_source_gone()?;
    d.check_released("node-a", &src)?;
    d.check_no_journal()?;
    say("So: the files were copied from node-a's device to node-b's device, both mounted by");
    say("vzfs-migrate; node-a's device is unmounted (its data is never deleted).");
    Ok(())
}

fn migrate_d2(d: &mut Demo) -> Result<()> {
    d.step(
        "a SAN LUN presented to both nodes, and an insulated container on it, running on node-a",
    );
    let lun = san_lun(d)?;
    let dev_a = lun.device("node-a").display().to_string();
    let dev_b = lun.device("node-b").display().to_string();
    let uuid = lun.uuid.clone().unwrap_or_default();
    say(&format!(
        "Each node has its own name for the LUN ({dev_a} on node-a, {dev_b} on node-b),"
    ));
    say("as /dev/sdg1 and /dev/sdh1 would be on real nodes; the filesystem UUID is the same:");
    d.run("node-a", &format!("blkid -s UUID -s TYPE {dev_a}"))?;
    d.run("node-b", &format!("blkid -s UUID -s TYPE {dev_b}"))?;
    say(&format!(
        "The container's config names node-a's device, {dev_a}, which means another disk (or none) on node-b."
    ));
    setup_insulated(d, &lun, &dev_a)?;
    start_on_a(d)?;
    show_private_mount(d, "node-a")?;
    let sum = d.checksum("node-a", &private())?;
    let f = format!("/vz/private/{CT}/srv/www/big.bin");
    let stat_a = d
        .run("node-a", &format!("stat -c 'inode %i, changed %z' {f}"))?
        .stdout;

    d.step("hand the container over to node-b (no --dst-device: the same SAN device)");
    say("vzfs-migrate proves node-b sees the same filesystem (same UUID and type, found by");
    say("UUID on node-b), stops the container, unmounts the LUN on node-a and confirms it is");
    say("released there, copies the config, mounts the LUN on node-b and starts it there.");
    say("No data is copied, so the time does not depend on the container's size.");
    migrate(d, &format!("-t node-b {CT}"))?;

    d.step("verify: node-b mounted the same filesystem through its own device name");
    check_status(
        d,
        "node-b",
        "exist mounted running",
        "the container runs on node-b",
    )?;
    show_private_mount(d, "node-b")?;
    d.check_mounted("node-b", &private(), &lun)?;
    let m = d
        .host("node-b")
        .mount_at(format!("/vz/private/{CT}"))?
        .ok_or_else(|| fail("nothing mounted on node-b".into()))?;
    let got = d
        .run("node-b", &format!("blkid -o value -s UUID {}", m.source))?
        .stdout;
    d.check(
        got.trim() == uuid && m.source != dev_a,
        &format!(
            "node-b mounted filesystem UUID {uuid} through its own device {} (node-a's name is {dev_a})",
            m.source
        ),
    )?;
    say("node-a's VE_DEVICE named its own device; node-b's config names the LUN by its");
    say("filesystem UUID, which is the same on every node and survives a reboot:");
    d.run(
        "node-b",
        &format!("grep -E '^VE_DEVICE[A-Z_]*=' /etc/vz/conf/{CT}.conf"),
    )?;
    let conf_b = read_conf(d, "node-b")?;
    let ve_b = conf_value(&conf_b, "VE_DEVICE").unwrap_or_default();
    d.check(
        ve_b == format!("UUID={uuid}"),
        &format!("node-b's VE_DEVICE is {ve_b:?}: the LUN by UUID, not node-a's {dev_a} nor node-b's {dev_b}"),
    )?;
    let stat_b = d
        .run("node-b", &format!("stat -c 'inode %i, changed %z' {f}"))?
        .stdout;
    d.check(
        stat_a == stat_b,
        "the same file, same inode and change time on node-b: nothing was copied",
    )?;
    check_data(d, &sum, "data")?;

    d.step("verify: node-a released the LUN and keeps no config");
    d.run_failing("node-a", &format!("findmnt --source {dev_a}"))?;
    d.check_released("node-a", &lun)?;
    d.check_source_gone()?;
    d.check_no_journal()?;
    say("So: nothing was copied. The container's config moved from node-a to node-b; the LUN");
    say("was unmounted on node-a (by the postumount hook when vzctl stopped the container,");
    say("vzfs-migrate then confirmed it released) before node-b mounted it: never on both.");
    say("The data was not deleted anywhere: it lives on the LUN, now used by node-b.");
    Ok(())
}

fn migrate_online(d: &mut Demo) -> Result<()> {
    d.step("a container on a SAN LUN, running on node-a; a second LUN for dump files");
    let lun = san_lun(d)?;
    let dump = d.lab.add_lun("san-dump", &["node-a", "node-b"], Fs::Ext4)?;
    let dump_dev = dump.by_id_path().display().to_string();
    setup_insulated(d, &lun, &lun.by_id_path().display().to_string())?;
    start_on_a(d)?;
    std::thread::sleep(Duration::from_millis(300));
    say("The container's workload writes 1, 2, 3, ... to a log inside the container:");
    show_workload_tail(d, "node-a")?;

    d.step("migrate it online (--online, the seed's --dump-device)");
    say("The container is checkpointed on node-a (its memory state written to a dump file");
    say("on the dump LUN), the LUNs move to node-b, and node-b restores it from the dump:");
    say("the processes go on where they were, without a restart.");
    migrate(
        d,
        &format!("-t --online --dump-device {dump_dev} node-b {CT}"),
    )?;
    std::thread::sleep(Duration::from_millis(300));

    d.step("verify: the workload continued its sequence on node-b without a gap");
    check_status(
        d,
        "node-b",
        "exist mounted running",
        "the container runs on node-b",
    )?;
    d.check_mounted("node-b", &private(), &lun)?;
    d.run(
        "node-b",
        &format!("grep -B 2 -A 3 '^# restore' /vz/root/{CT}/var/log/lab-workload.log"),
    )?;
    let log = d.workload_log("node-b")?;
    let s = workload::check_log(&log).map_err(|e| fail(format!("workload log on node-b: {e}")))?;
    let restored_at = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("# restore "))
        .unwrap_or("?")
        .to_string();
    d.check(
        s.starts == 1 && s.restores == 1,
        &format!(
            "one cold start (on node-a) and one restore (on node-b): the last number written on \
             node-a was {restored_at}, node-b went on with {} and has reached {}, no number \
             missing or repeated",
            restored_at.parse::<u64>().map(|n| n + 1).unwrap_or(0),
            s.last
        ),
    )?;
    d.check_released("node-a", &lun)?;
    d.check_released("node-a", &dump)?;
    d.check_released("node-b", &dump)?;
    d.check_source_gone()?;
    d.check_no_journal()?;
    say("So: the container's state went through a dump file on the dump LUN, its files stayed");
    say("on its LUN (handed over, not copied), and its workload never noticed the move except");
    say("for the pause shown as downtime.");
    Ok(())
}

/// What the source looks like, to prove a command changed nothing.
struct Snapshot {
    status: String,
    conf: Vec<u8>,
    /// Mounts under /vz and mounts of devices, as `major:minor path fstype`.
    mounts: Vec<String>,
}

fn snapshot(d: &Demo) -> Result<Snapshot> {
    let a = d.host("node-a");
    let status = a.vzctl(&["status", CT])?.stdout.trim().to_string();
    let conf_path = a.path(format!("/etc/vz/conf/{CT}.conf"));
    let conf = std::fs::read(&conf_path).map_err(|e| LabError::Io {
        op: "read",
        path: conf_path,
        source: e,
    })?;
    // The container's mounts and every device mount (other labs' netns
    // mounts come and go under /run/netns: not ours to compare).
    let mounts = a
        .mounts()?
        .iter()
        .filter(|m| m.mount_point.starts_with("/vz") || m.source.starts_with("/dev/"))
        .map(|m| format!("{} {} {}", m.dev, m.mount_point.display(), m.fstype))
        .collect();
    Ok(Snapshot {
        status,
        conf,
        mounts,
    })
}

/// Checks node-a is as in `before` and node-b holds nothing of the container.
fn check_untouched(d: &Demo, before: &Snapshot, disks_b: &[&Disk]) -> Result<()> {
    let now = snapshot(d)?;
    d.check(
        now.status == before.status,
        &format!("node-a's container is as it was: {}", now.status),
    )?;
    d.check(
        now.conf == before.conf,
        "node-a's config is unchanged, byte for byte",
    )?;
    let gone: Vec<&String> = before
        .mounts
        .iter()
        .filter(|m| !now.mounts.contains(m))
        .collect();
    let new: Vec<&String> = now
        .mounts
        .iter()
        .filter(|m| !before.mounts.contains(m))
        .collect();
    d.check(
        gone.is_empty() && new.is_empty(),
        &format!(
            "node-a's mounts are the same as before{}{}",
            if gone.is_empty() {
                String::new()
            } else {
                format!("; gone: {gone:?}")
            },
            if new.is_empty() {
                String::new()
            } else {
                format!("; new: {new:?}")
            }
        ),
    )?;
    let b = d.host("node-b");
    d.run("node-b", "ls -A /etc/vz/conf/ /vz/private/")?;
    d.check(
        !b.path(format!("/etc/vz/conf/{CT}.conf")).exists()
            && !b.path(format!("/vz/private/{CT}")).exists(),
        "node-b has no config and no private area of the container",
    )?;
    for disk in disks_b {
        d.check_released("node-b", disk)?;
    }
    d.check_no_journal()
}

fn convert(d: &mut Demo) -> Result<()> {
    d.step("a running shared container on node-a, and an empty disk for it");
    setup_shared(d)?;
    let disk = d.lab.add_local_disk("node-a", "a-ct101", Fs::Ext4)?;
    let link = disk.by_id_path().display().to_string();
    start_on_a(d)?;
    d.run("node-a", &format!("vzctl stop {CT}"))?;
    let sum = d.checksum("node-a", &private())?;
    d.run("node-a", &format!("vzctl start {CT}"))?;

    d.step("move it onto its own disk without migrating it (--convert, --restart)");
    say("The container is running: --restart stops it, converts it and starts it again,");
    say("and the downtime is printed. The old private directory is kept, renamed.");
    d.run(
        "node-a",
        &format!("vzfs-create --convert {CT} --device {link} --restart -t"),
    )?;
    check_status(
        d,
        "node-a",
        "exist mounted running",
        "the container runs again",
    )?;
    show_private_mount(d, "node-a")?;
    d.check_mounted("node-a", &private(), &disk)?;
    d.run("node-a", "ls -d /vz/private/*")?;
    d.run(
        "node-a",
        &format!("grep -E '^VE_DEVICE' /etc/vz/conf/{CT}.conf"),
    )?;
    d.run("node-a", &format!("vzctl stop {CT}"))?;
    d.run("node-a", &format!("vzctl mount {CT}"))?;
    let on_disk = d.checksum("node-a", &private())?;
    d.run("node-a", &format!("vzctl umount {CT}"))?;
    d.check(
        on_disk == sum && d.checksum("node-a", &format!("{}.vzfs-shared-{CT}", private()))? == sum,
        "the data on the disk and in the kept old directory equal the original",
    )?;

    d.step("and back: shared again (--convert --to-shared)");
    let conf_insulated = read_conf(d, "node-a")?;
    d.run("node-a", &format!("vzfs-create --convert --to-shared {CT}"))?;
    let conf = read_conf(d, "node-a")?;
    d.check(
        !conf.contains("VE_DEVICE") && conf_insulated.starts_with(&conf),
        "the VE_DEVICE lines are gone, no other byte of the config changed",
    )?;
    check_status(
        d,
        "node-a",
        "exist unmounted down",
        "the container is stopped, as before",
    )?;
    d.check_released("node-a", &disk)?;
    let back = d.checksum("node-a", &private())?;
    d.check(
        back == sum,
        "the data in the plain directory equals the original",
    )?;
    start_on_a(d)?;
    d.run("node-a", &format!("vzctl stop {CT}"))?;
    Ok(())
}

fn check_only(d: &mut Demo) -> Result<()> {
    let (src, dst_disk, dst) = running_on_disk_with_disk_on_b(d)?;
    let before = snapshot(d)?;

    d.step("ask vzfs-migrate what it would do (--check-only)");
    say("It runs every check on both nodes (container, target, devices, versions) and prints");
    say("the plan: each step with the undo that runs if a later step fails. The commit line");
    say("marks the point after which the container lives on node-b.");
    let out = d.run(
        "node-a",
        &format!("vzfs-migrate --check-only --dst-device {dst} node-b {CT}"),
    )?;
    d.check(
        out.stdout.contains("scenario d1") && out.stdout.contains("commit"),
        "the plan is scenario d1 (another device: copy) with a commit point",
    )?;

    d.step("verify that nothing changed");
    check_untouched(d, &before, &[&dst_disk])?;
    d.check_mounted("node-a", &private(), &src)
}

fn undo(d: &mut Demo) -> Result<()> {
    d.step("an insulated container on a SAN LUN, running on node-a");
    let lun = san_lun(d)?;
    setup_insulated(d, &lun, &lun.by_id_path().display().to_string())?;
    start_on_a(d)?;
    let before = snapshot(d)?;
    let sum = d.checksum("node-a", &private())?;
    d.run("node-a", &format!("vzfs-migrate --check-only node-b {CT}"))?;

    d.step("make the handoff fail right after node-b mounted the LUN");
    say("VZFS_FAILPOINTS makes a step fail on purpose (here: just after dst-device-mount,");
    say("with the LUN unmounted on node-a and mounted on node-b), as a dead link or a");
    say("full disk would. Every step done so far is undone, newest first, and reported.");
    let out = d.run_failing(
        "node-a",
        &format!("VZFS_FAILPOINTS=after:dst-device-mount=fail vzfs-migrate -t node-b {CT}"),
    )?;
    d.check(
        out.all()
            .contains("failpoint after:dst-device-mount triggered")
            && !out.all().contains("FAILED"),
        "vzfs-migrate failed at the failpoint and every undo succeeded",
    )?;

    d.step("verify that node-a is exactly as it was and node-b holds nothing");
    say("The container had been stopped for the handoff: the undo mounted the LUN on node-a");
    say("again and started it there.");
    d.status("node-a")?;
    check_untouched(d, &before, &[&lun])?;
    d.check_mounted("node-a", &private(), &lun)?;
    let after = d.checksum("node-a", &private())?;
    d.check(after == sum, "node-a's data checksum is unchanged")?;
    std::thread::sleep(Duration::from_millis(200));
    show_workload_tail(d, "node-a")?;
    workload::check_log(&d.workload_log("node-a")?)
        .map_err(|e| fail(format!("workload log on node-a: {e}")))?;
    d.check(
        true,
        "the container's workload runs again on node-a, its log is consistent",
    )
}

/// Runs the named scenarios (all when `names` is empty); returns the exit code.
pub fn run(names: &[String]) -> i32 {
    if let Err(e) = crate::preflight::preflight() {
        eprintln!("error: {}", crate::error_chain(&e));
        return 2;
    }
    let chosen: Vec<&Scenario> = if names.is_empty() {
        SCENARIOS.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in names {
            match SCENARIOS.iter().find(|s| s.0 == n) {
                Some(s) => v.push(s),
                None => {
                    eprintln!(
                        "error: no demo scenario {n:?} (have: {})",
                        SCENARIOS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
                    );
                    return 2;
                }
            }
        }
        v
    };
    let t0 = Instant::now();
    let mut results = Vec::new();
    for (name, summary, body) in chosen {
        println!("\n######## Demo {name}: {summary}\n");
        let t = Instant::now();
        let hook = !SHOWS_HOOK_INSTALL.contains(name);
        let r = Demo::two_nodes(hook).and_then(|mut d| {
            let r = body(&mut d);
            say("\nRemoving the lab (every loop device, namespace, mount and process) ...");
            let t = d.lab.teardown();
            r.and(t)
        });
        let secs = t.elapsed().as_secs_f64();
        match &r {
            Ok(()) => println!("\n######## {name}: OK ({secs:.1} s)"),
            Err(e) => println!(
                "\n######## {name}: FAILED ({secs:.1} s): {}",
                crate::error_chain(e)
            ),
        }
        results.push((name, r.is_ok(), secs));
    }
    println!("\nSummary:");
    for (name, ok, secs) in &results {
        println!(
            "  {:<22} {:<6} {secs:5.1} s",
            name,
            if *ok { "OK" } else { "FAILED" }
        );
    }
    let failed = results.iter().filter(|r| !r.1).count();
    println!(
        "Demo finished in {:.1} s: {} scenario(s), {failed} failed.",
        t0.elapsed().as_secs_f64(),
        results.len()
    );
    if failed > 0 {
        1
    } else {
        0
    }
}
