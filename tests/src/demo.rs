//! The scenarios `make demo` shows, in words an admin understands. Each
//! scenario is a function over a [`Demo`] (a lab plus a narrator) registered
//! in [`SCENARIOS`]; add a migration scenario by writing one more function
//! and one more line there. Every scenario builds its own lab and removes it.

use crate::cmd::Output;
use crate::error::{LabError, Result};
use crate::lab::{Disk, Fs, Host, Lab};
use std::time::Instant;

/// A scenario: name (for `vzfs-lab demo NAME`), one-line summary, body.
pub type Scenario = (&'static str, &'static str, fn(&mut Demo) -> Result<()>);

/// Every scenario, in the order `make demo` runs them.
pub const SCENARIOS: &[Scenario] = &[(
    "insulated-start-stop",
    "an insulated container on a SAN LUN: created the seed's way, started and stopped with vzfs-hook",
    insulated_start_stop,
)];

/// A lab and a narrator.
pub struct Demo {
    pub lab: Lab,
    step: std::cell::Cell<usize>,
}

impl Demo {
    /// Two nodes, `node-a` and `node-b`, with vzfs-hook on their PATH.
    pub fn two_nodes() -> Result<Demo> {
        say("Building the lab: two hardware nodes, node-a and node-b, each with its own");
        say("network, sshd, /etc/vz, /vz and its own view of the disks ...");
        let t0 = Instant::now();
        let lab = Lab::builder()
            .hosts(&["node-a", "node-b"])
            .require_binary("vzfs-hook")
            .start()?;
        for h in lab.hosts() {
            say(&format!(
                "  {} is up at {} (sshd running)",
                h.name(),
                h.ip()
            ));
        }
        say(&format!("  ready in {:.1} s", t0.elapsed().as_secs_f64()));
        Ok(Demo {
            lab,
            step: std::cell::Cell::new(0),
        })
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
        out.ok()
    }

    /// Runs and shows a command line; any exit code is returned.
    pub fn show(&self, host: &str, line: &str) -> Result<Output> {
        println!("  {host}# {line}");
        // stderr merged into stdout, so messages keep their order.
        let out = self.lab.host(host).sh(&format!("{{ {line}\n}} 2>&1"))?;
        for l in out.stdout.lines().chain(out.stderr.lines()) {
            println!("      {l}");
        }
        if !out.success() {
            println!("      (exit code {})", out.exit_code());
        }
        Ok(out)
    }

    /// Explains in words what is mounted on `path` of `host`.
    pub fn explain_mount(&self, host: &Host, path: &str, disk: &Disk) -> Result<bool> {
        match host.mount_at(path)? {
            Some(m) => {
                let dev = disk.try_device(host.name());
                let ours = disk
                    .attachments
                    .iter()
                    .any(|a| a.host == host.name() && (a.major, a.minor) == (m.major, m.minor));
                say(&format!(
                    "  On {}: {path} is a mount point: {} filesystem from device {} ({}:{}){}.",
                    host.name(),
                    m.fstype,
                    m.source,
                    m.major,
                    m.minor,
                    if ours {
                        format!(
                            ", which is the LUN {} as {} sees it ({})",
                            disk.name,
                            host.name(),
                            dev.map(|d| d.display().to_string()).unwrap_or_default()
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
}

/// Prints a line of narration.
pub fn say(s: &str) {
    println!("{s}");
}

fn fail(msg: String) -> LabError {
    LabError::Usage(msg)
}

/// Creates container `ctid` on `host` the way the seed's "Other issues"
/// section does, on `disk` (already formatted), with `VE_DEVICE` set to
/// the disk's by-id link; leaves the device unmounted (the hook mounts it).
pub fn create_insulated_ct(d: &mut Demo, host: &str, ctid: &str, disk: &Disk) -> Result<()> {
    let dev = disk.device(host).display().to_string();
    let link = disk.by_id_path().display().to_string();
    d.step(&format!(
        "create container {ctid} on node {host} the way the seed describes"
    ));
    say("vzctl refuses to create a container in a non-empty private area, and a fresh");
    say("filesystem has lost+found: so create it in a temporary place first.");
    d.run(
        host,
        &format!("vzctl create {ctid} --ostemplate lab-minimal --private /var/tmp/{ctid}"),
    )?;
    d.run(host, &format!("mkdir -p /vz/private/{ctid}"))?;
    d.run(host, &format!("mount {dev} /vz/private/{ctid}"))?;
    d.run(
        host,
        &format!("mv /var/tmp/{ctid}/* /vz/private/{ctid}/ && rmdir /var/tmp/{ctid}"),
    )?;
    d.run(host, &format!("ls /vz/private/{ctid}"))?;
    say("Point the configuration at the real private area and at the device.");
    say(&format!(
        "VE_DEVICE uses {link}: the same name on every node that sees the LUN."
    ));
    d.run(
        host,
        &format!("vzctl set {ctid} --private '/vz/private/$VEID' --save"),
    )?;
    d.run(
        host,
        &format!("echo 'VE_DEVICE=\"{link}\"' >> /etc/vz/conf/{ctid}.conf"),
    )?;
    d.run(
        host,
        &format!("grep -E '^(VE_PRIVATE|VE_ROOT|VE_DEVICE)=' /etc/vz/conf/{ctid}.conf"),
    )?;
    say("Unmount it again: from now on, vzfs-hook mounts it when the container starts.");
    d.run(host, &format!("umount /vz/private/{ctid}"))?;
    Ok(())
}

/// Installs vzfs-hook as vzctl's `vps.premount` and `vps.postumount` on `host`.
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
    create_insulated_ct(d, "node-a", "101", &lun)?;
    install_hook(d, "node-a")?;

    d.step("start the container on node-a");
    d.run("node-a", "vzctl start 101")?;
    d.run("node-a", "vzctl status 101")?;
    let a = d.lab.host("node-a");
    let b = d.lab.host("node-b");
    if !d.explain_mount(a, "/vz/private/101", &lun)? {
        return Err(fail(
            "vzfs-hook did not mount the device on /vz/private/101 of node-a".into(),
        ));
    }
    let m = a.mount_at("/vz/private/101")?.unwrap();
    if !lun
        .attachments
        .iter()
        .any(|x| x.host == "node-a" && (x.major, x.minor) == (m.major, m.minor))
    {
        return Err(fail(format!(
            "/vz/private/101 on node-a is {} ({}:{}), not the LUN",
            m.source, m.major, m.minor
        )));
    }
    say("  So: the premount hook mounted the container's own device on VE_PRIVATE,");
    say("  and vzctl then mounted VE_PRIVATE on VE_ROOT and started the container.");
    d.explain_mount(b, "/vz/private/101", &lun)?;
    let _ = d.show("node-a", "vzfs-hook status 101");
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.run("node-a", "tail -n 3 /vz/root/101/var/log/lab-workload.log")?;
    say("  The container's workload is writing inside its own filesystem.");

    d.step("stop the container on node-a");
    d.run("node-a", "vzctl stop 101")?;
    d.run("node-a", "vzctl status 101")?;
    if d.explain_mount(a, "/vz/private/101", &lun)? {
        return Err(fail(
            "vzfs-hook did not unmount /vz/private/101 after stop".into(),
        ));
    }
    say("  So: after vzctl unmounted VE_ROOT, the postumount hook unmounted the device.");
    say("  The LUN is free: another node may now mount it (that is what migration will do).");
    Ok(())
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
    let mut failed = 0;
    for (name, summary, body) in chosen {
        println!("\n######## Demo: {summary}\n");
        let r = Demo::two_nodes().and_then(|mut d| {
            let r = body(&mut d);
            say("\nRemoving the lab (every loop device, namespace, mount and process) ...");
            let t = d.lab.teardown();
            r.and(t)
        });
        match r {
            Ok(()) => println!("\n######## {name}: OK"),
            Err(e) => {
                failed += 1;
                println!("\n######## {name}: FAILED: {}", crate::error_chain(&e));
            }
        }
    }
    println!("\nDemo finished in {:.1} s.", t0.elapsed().as_secs_f64());
    if failed > 0 {
        1
    } else {
        0
    }
}
