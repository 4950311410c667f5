//! `fence_vzfslab`: the lab's fence agent (fence-agents protocol), installed
//! on the cluster's lab nodes as `/usr/sbin/fence_vzfslab` by
//! [`vzfs_lab::cluster`] through a read-only overlay (pacemaker-fenced runs
//! only `/usr/sbin/fence_*`). Never packaged.
//!
//! It reads `key=value` lines on stdin (`action`, `plug`/`port`,
//! `clusterdir`) or the same as `--key=value` arguments. `off` (and
//! `reboot`: a lab node cannot be booted from inside another node) powers a
//! node off as [`vzfs_lab::cluster::power_off`] does: its view of every
//! SAN LUN is detached first (its loop devices shrink to one sector, so a
//! "dead" node can no longer write: its MMP block stays as it was), then
//! every process of its namespaces is killed with SIGKILL. Each fencing is
//! appended to `CLUSTERDIR/fence.log` with its start and end times (for the
//! failover breakdown). `status`: on while the node has a process.

use std::io::Read;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_vzfslab" shortdesc="Fence agent of the vzfs lab: powers a lab node off">
<longdesc>Detaches the node's view of the SAN LUNs, then kills every process of its namespaces.</longdesc>
<vendor-url>https://example.invalid/vzfs</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot" />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="0" obsoletes="port">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string" />
		<shortdesc lang="en">The lab node</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string" />
		<shortdesc lang="en">The lab node</shortdesc>
	</parameter>
	<parameter name="clusterdir" unique="0" required="1">
		<getopt mixed="--clusterdir=[dir]" />
		<content type="string" />
		<shortdesc lang="en">The lab cluster's directory (node maps, fence log)</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="list-status" />
	<action name="monitor" />
	<action name="metadata" />
</actions>
</resource-agent>
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn main() {
    let mut kv: Vec<(String, String)> = Vec::new();
    for a in std::env::args().skip(1) {
        if let Some((k, v)) = a.trim_start_matches('-').split_once('=') {
            kv.push((k.to_string(), v.to_string()));
        } else if a == "-o" || a == "--action" {
            continue;
        } else if [
            "metadata", "list", "monitor", "status", "off", "on", "reboot",
        ]
        .contains(&a.as_str())
        {
            kv.push(("action".into(), a));
        }
    }
    if std::env::args().len() <= 1 {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        for l in s.lines() {
            if let Some((k, v)) = l.trim().split_once('=') {
                kv.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    let get = |k: &str| {
        kv.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let action = get("action")
        .or_else(|| get("option"))
        .unwrap_or_else(|| "reboot".into());
    if action == "metadata" {
        print!("{METADATA}");
        return;
    }
    let Some(dir) = get("clusterdir") else {
        eprintln!("fence_vzfslab: clusterdir= is required");
        std::process::exit(1);
    };
    let dir = Path::new(&dir);
    let plug = get("plug").or_else(|| get("port"));
    let code = match (action.as_str(), plug) {
        ("monitor", _) => 0,
        ("list" | "list-status", _) => {
            for n in vzfs_lab::cluster::node_names(dir) {
                println!("{n},");
            }
            0
        }
        ("status", Some(p)) => match vzfs_lab::cluster::NodeMap::read(dir, &p) {
            Ok(m) if !m.processes().is_empty() => 0,
            Ok(_) => 2,
            Err(e) => {
                eprintln!("fence_vzfslab: {e}");
                1
            }
        },
        ("off" | "reboot", Some(p)) => {
            let t0 = now();
            match vzfs_lab::cluster::NodeMap::read(dir, &p).and_then(|m| m.power_off(dir)) {
                Ok(()) => {
                    let t1 = now();
                    vzfs_lab::cluster::append_fence_log(dir, &format!("off {p} {t0:.3} {t1:.3}"));
                    0
                }
                Err(e) => {
                    eprintln!("fence_vzfslab: off {p}: {e}");
                    1
                }
            }
        }
        // A lab node cannot be booted from inside another node.
        ("on", Some(_)) => 1,
        (a, None) => {
            eprintln!("fence_vzfslab: action {a} needs plug=NODE");
            1
        }
        (a, _) => {
            eprintln!("fence_vzfslab: unknown action {a}");
            1
        }
    };
    std::process::exit(code);
}
