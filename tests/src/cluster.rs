//! A Pacemaker + Corosync cluster on the lab's hosts, for the tests of the
//! resource agent `ocf:vzfs:container` and for `vzfs-bench --only failover`.
//! What it relies on was verified on this kind of machine
//! (`PACEMAKER-LAB.md`): each host's private `/run` and `/dev/shm`, libqb's
//! abstract sockets scoped per network namespace, per-node copies of
//! `/etc/corosync`, `/var/lib/corosync`, `/var/lib/pacemaker` and the log
//! directories (bind mounts from the lab's directory), `token: 1000`, and a
//! CIB seeded with `dc-deadtime=5s`.
//!
//! The agent and the lab's fence agent reach the hosts through read-only
//! overlays: `/usr/lib/ocf/resource.d` gains `vzfs/container` (a symlink to
//! the host's `/usr/local/sbin/vzfs-hook`) and `/usr/sbin` gains
//! `fence_vzfslab` (pacemaker-fenced runs only `/usr/sbin/fence_*`). Nothing
//! is written on the machine outside the lab's directory.
//!
//! Powering a node off ([`NodeMap::power_off`], the fence agent's `off`):
//! its view of every LUN is detached first (its loop devices shrink to one
//! sector, so every later I/O of that node fails: a dead node writes
//! nothing, and its MMP block stays dirty as after a real power loss), then
//! every process of its namespaces is killed with SIGKILL; its mount
//! namespace and mounts go with the last one. A node cannot be booted again
//! from inside the lab: a fenced node stays off until the lab is torn down
//! (the lab's teardown releases everything as usual).

use crate::error::{LabError, Result};
use crate::lab::{Disk, Host, Lab};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The lab's fence agent binary (built by this crate, never packaged).
pub const FENCE_BINARY: &str = "fence-vzfslab";
/// The resource agent as the cluster nodes see it.
pub const AGENT: &str = "/usr/lib/ocf/resource.d/vzfs/container";
/// The container every cluster test runs.
pub const CTID: &str = "101";
/// The resource id of that container.
pub const RSC: &str = "ct101";

fn io(op: &'static str, path: &Path, e: std::io::Error) -> LabError {
    LabError::Io {
        op,
        path: path.to_path_buf(),
        source: e,
    }
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|e| io("create", d, e))?;
    }
    fs::write(path, text).map_err(|e| io("write", path, e))
}

fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", path, e))
}

/// Seconds since the epoch (CLOCK_REALTIME, as the fence log's).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The lab cluster's directory (node maps, fence log, per-node state).
pub fn cluster_dir(lab: &Lab) -> PathBuf {
    lab.dir().join("cluster")
}

/// What the fence agent needs to power a node off: its namespaces and the
/// loop devices of its view of the LUNs. `CLUSTERDIR/nodes/NAME`.
#[derive(Debug, Clone)]
pub struct NodeMap {
    pub name: String,
    pub net_ns: String,
    pub mnt_ns: String,
    pub devs: Vec<(u32, u32)>,
}

/// The names of the nodes with a map in `dir`.
pub fn node_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("nodes"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl NodeMap {
    /// The map of `host` with every LUN of the lab presented to it.
    pub fn of(lab: &Lab, host: &Host) -> NodeMap {
        let devs = lab
            .disks()
            .iter()
            .filter_map(|d| d.dev_num(host.name()))
            .map(|n| (n.major, n.minor))
            .collect();
        NodeMap {
            name: host.name().to_string(),
            net_ns: host.net_ns().to_string(),
            mnt_ns: host.mnt_ns().to_string(),
            devs,
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut s = format!("net={}\nmnt={}\n", self.net_ns, self.mnt_ns);
        for (a, b) in &self.devs {
            s.push_str(&format!("dev={a}:{b}\n"));
        }
        write(&dir.join("nodes").join(&self.name), s)
    }

    pub fn read(dir: &Path, name: &str) -> Result<NodeMap> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(LabError::Usage(format!("no lab node {name:?}")));
        }
        let p = dir.join("nodes").join(name);
        let text = fs::read_to_string(&p).map_err(|e| io("read", &p, e))?;
        let mut m = NodeMap {
            name: name.to_string(),
            net_ns: String::new(),
            mnt_ns: String::new(),
            devs: Vec::new(),
        };
        for l in text.lines() {
            match l.split_once('=') {
                Some(("net", v)) => m.net_ns = v.to_string(),
                Some(("mnt", v)) => m.mnt_ns = v.to_string(),
                Some(("dev", v)) => {
                    if let Some((a, b)) = v.split_once(':') {
                        if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                            m.devs.push((a, b));
                        }
                    }
                }
                _ => {}
            }
        }
        if m.net_ns.is_empty() || m.mnt_ns.is_empty() {
            return Err(LabError::Usage(format!("{}: no namespaces", p.display())));
        }
        Ok(m)
    }

    /// Every process in this node's network or mount namespace.
    pub fn processes(&self) -> Vec<u32> {
        let mut v = Vec::new();
        let Ok(rd) = fs::read_dir("/proc") else {
            return v;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let ns = |k: &str| {
                fs::read_link(format!("/proc/{pid}/ns/{k}"))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            };
            if ns("net").as_deref() == Some(self.net_ns.as_str())
                || ns("mnt").as_deref() == Some(self.mnt_ns.as_str())
            {
                v.push(pid);
            }
        }
        v
    }

    /// Powers the node off: detaches its view of the LUNs, then kills every
    /// process of its namespaces (until none is left).
    pub fn power_off(&self, dir: &Path) -> Result<()> {
        for (a, b) in &self.devs {
            detach_view(dir, *a, *b)?;
        }
        let t0 = Instant::now();
        loop {
            let pids = self.processes();
            if pids.is_empty() {
                return Ok(());
            }
            for p in pids {
                // SAFETY: kill(2) with a pid read from /proc.
                unsafe {
                    libc::kill(p as libc::pid_t, libc::SIGKILL);
                }
            }
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(LabError::Timeout {
                    what: format!("the processes of node {} to die", self.name),
                    secs: 20,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Shrinks a loop device to one sector ([`crate::loopdev::shrink_to_one_sector`]):
/// every later read or write of that node beyond it fails, as with a SAN
/// path that is gone. Works on a mounted device; the device node is made in
/// `dir` (the node doing it has only its own).
pub fn detach_view(dir: &Path, major: u32, minor: u32) -> Result<()> {
    let node = dir.join(format!(".fence-dev-{major}-{minor}-{}", std::process::id()));
    let _ = fs::remove_file(&node);
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(major as u64, minor as u64),
    )
    .map_err(|e| LabError::Sys {
        op: "mknod",
        what: node.display().to_string(),
        source: e,
    })?;
    let r = crate::loopdev::shrink_to_one_sector(&node).map_err(LabError::Loop);
    let _ = fs::remove_file(&node);
    r
}

/// `cp SRC DST` in a child process (see the call sites for why not
/// `fs::copy`); `what` says what was being copied when it fails.
fn copy_executable(src: &Path, dst: &Path, what: &str) -> Result<()> {
    crate::cmd::machine_ok(&[OsStr::new("cp"), src.as_os_str(), dst.as_os_str()])
        .map(|_| ())
        .map_err(|e| LabError::Usage(format!("{what}: {e}")))
}

/// Appends one line to `dir/fence.log` (the fence agent's record).
pub fn append_fence_log(dir: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fence.log"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// One fencing done by the fence agent: node, start and end (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Fencing {
    pub node: String,
    pub start: f64,
    pub end: f64,
}

pub fn fence_log(dir: &Path) -> Vec<Fencing> {
    let text = fs::read_to_string(dir.join("fence.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["off", n, s, e] => Some(Fencing {
                    node: n.to_string(),
                    start: s.parse().ok()?,
                    end: e.parse().ok()?,
                }),
                _ => None,
            }
        })
        .collect()
}

/// Makes the agent and the fence agent visible on every host (read-only
/// overlays) and creates `/run/resource-agents`.
pub fn install_agents(lab: &Lab) -> Result<()> {
    let dir = cluster_dir(lab);
    let ocf = dir.join("ocf");
    let sbin = dir.join("sbin");
    for d in [&dir, &ocf, &ocf.join("vzfs"), &sbin] {
        fs::create_dir_all(d).map_err(|e| io("create", d, e))?;
        chmod(d, 0o755)?;
    }
    chmod(lab.dir(), 0o755)?;
    // The agent runs as user nobody too (ocf-tester's meta-data check), so
    // it points at a copy of vzfs-hook in this world-readable directory, not
    // at the build tree, which may sit below a directory only root can enter
    // (a clone in `mktemp -d`).
    let hook_dir = dir.join("ocf-bin");
    fs::create_dir_all(&hook_dir).map_err(|e| io("create", &hook_dir, e))?;
    chmod(&hook_dir, 0o755)?;
    let hook_src = lab.bin_dir().join("vzfs-hook");
    let hook = hook_dir.join("vzfs-hook");
    // Copied by `cp` (a child process): a write descriptor of this
    // multi-threaded test process could leak into a child another test
    // forks at that instant, and exec'ing the copy would fail with ETXTBSY.
    copy_executable(&hook_src, &hook, "copy vzfs-hook (cargo build)")?;
    chmod(&hook, 0o755)?;
    let link = ocf.join("vzfs/container");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&hook, &link).map_err(|e| io("symlink", &link, e))?;
    let fence_src = lab.bin_dir().join(FENCE_BINARY);
    let fence = sbin.join("fence_vzfslab");
    copy_executable(
        &fence_src,
        &fence,
        "copy the lab's fence agent (cargo build -p vzfs-lab)",
    )?;
    chmod(&fence, 0o755)?;
    for h in lab.hosts() {
        h.sh_ok(&format!(
            "mkdir -p /run/resource-agents && chmod 1755 /run/resource-agents && \
             mount -t overlay lab-ocf -o lowerdir={}:/usr/lib/ocf/resource.d /usr/lib/ocf/resource.d && \
             mount -t overlay lab-sbin -o lowerdir={}:/usr/sbin /usr/sbin",
            ocf.display(),
            sbin.display()
        ))?;
    }
    Ok(())
}

/// An insulated container `CTID` on `lun`, created on `host` the seed's
/// way, with `VE_DEVICE` naming the LUN by its by-id link (the same on
/// every node) and a few data files; its config moved to shared storage
/// (`CLUSTERDIR/shared/CTID.conf`, a directory every host reads), so no node
/// defines it. On ext4 with MMP the update interval is set to 1 s.
pub fn create_container(lab: &Lab, host: &str, lun: &Disk) -> Result<PathBuf> {
    let h = lab.host(host);
    h.vzctl(&["create", CTID, "--ostemplate", crate::lab::TEMPLATE_NAME])?
        .ok()?;
    let dev = lun.device(host).display().to_string();
    let tune = if lun.fs == crate::lab::Fs::Ext4Mmp {
        format!("tune2fs -E mmp_update_interval=1 {dev} >/dev/null && ")
    } else {
        String::new()
    };
    h.sh_ok(&format!(
        "{tune}mkdir -p /var/tmp/m && mount {dev} /var/tmp/m && cp -a /vz/private/{CTID}/. /var/tmp/m/ && \
         mkdir -p /var/tmp/m/data && head -c 300000 /dev/urandom > /var/tmp/m/data/blob && echo hello > /var/tmp/m/data/a && \
         umount /var/tmp/m && rm -rf /vz/private/{CTID} && mkdir /vz/private/{CTID} && \
         echo 'VE_DEVICE=\"{}\"' >> /etc/vz/conf/{CTID}.conf",
        lun.by_id_path().display()
    ))?;
    let text = h.read_file(format!("/etc/vz/conf/{CTID}.conf"))?;
    let shared = cluster_dir(lab).join("shared").join(format!("{CTID}.conf"));
    write(&shared, text)?;
    chmod(shared.parent().unwrap_or(Path::new("/")), 0o755)?;
    h.run_ok(&["rm", "-f", &format!("/etc/vz/conf/{CTID}.conf")])?;
    Ok(shared)
}

/// Every file of the container's area with its content hash (the
/// workload's growing log and lost+found left out), as `host` sees it.
pub fn tree_sum(h: &Host) -> Result<String> {
    Ok(h.sh_ok(&format!(
        "cd /vz/private/{CTID} && find . \\( -path ./lost+found -o -path ./var/log/lab-workload.log \\) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum"
    ))?
    .stdout)
}

/// A running two-node (or more) cluster on a lab.
pub struct Cluster<'a> {
    pub lab: &'a Lab,
    pub dir: PathBuf,
    pub shared_conf: PathBuf,
}

fn corosync_conf(lab: &Lab) -> String {
    let mut nodes = String::new();
    for (i, h) in lab.hosts().iter().enumerate() {
        nodes.push_str(&format!(
            "  node {{\n    ring0_addr: {}\n    name: {}\n    nodeid: {}\n  }}\n",
            h.ip(),
            h.name(),
            i + 1
        ));
    }
    format!(
        "totem {{\n  version: 2\n  cluster_name: vzfslab\n  transport: knet\n  token: 1000\n  crypto_cipher: none\n  crypto_hash: none\n}}\n\
         nodelist {{\n{nodes}}}\n\
         quorum {{\n  provider: corosync_votequorum\n{}}}\n\
         logging {{\n  to_logfile: yes\n  logfile: /var/log/corosync/corosync.log\n  to_stderr: no\n  to_syslog: no\n  timestamp: on\n}}\n",
        if lab.hosts().len() == 2 { "  two_node: 1\n" } else { "" }
    )
}

/// The host name the machine's kernel writes into every MMP block (ext4's
/// kmmpd uses the initial UTS namespace's, not a lab node's).
pub fn kernel_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// The agent's `mmp_nodes` for the lab: every lab node writes the
/// machine's host name into an MMP block, so each is told apart by its
/// own loop device (`a=vm:loop5 b=vm:loop6 ...`, one pair per LUN).
pub fn mmp_nodes(lab: &Lab) -> String {
    let host = kernel_hostname();
    let mut v = Vec::new();
    for d in lab.disks() {
        for h in lab.hosts() {
            if let Some(dev) = d.try_device(h.name()).and_then(|p| p.file_name()) {
                v.push(format!("{}={host}:{}", h.name(), dev.to_string_lossy()));
            }
        }
    }
    v.join(" ")
}

fn cib(lab: &Lab, dir: &Path, shared: &Path, prefer: &str, mmp_nodes: &str) -> String {
    let names: Vec<&str> = lab.hosts().iter().map(|h| h.name()).collect();
    format!(
        r#"<cib validate-with="pacemaker-3.0" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="o-stonith-enabled" name="stonith-enabled" value="true"/>
        <nvpair id="o-stonith-action" name="stonith-action" value="off"/>
        <nvpair id="o-stonith-timeout" name="stonith-timeout" value="30s"/>
        <nvpair id="o-dc-deadtime" name="dc-deadtime" value="5s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <primitive id="fence-lab" class="stonith" type="fence_vzfslab">
        <instance_attributes id="fence-lab-ia">
          <nvpair id="fence-lab-hosts" name="pcmk_host_list" value="{hosts}"/>
          <nvpair id="fence-lab-check" name="pcmk_host_check" value="static-list"/>
          <nvpair id="fence-lab-dir" name="clusterdir" value="{dir}"/>
        </instance_attributes>
        <operations>
          <op id="fence-lab-monitor" name="monitor" interval="60s"/>
        </operations>
      </primitive>
      <primitive id="{RSC}" class="ocf" provider="vzfs" type="container">
        <instance_attributes id="{RSC}-ia">
          <nvpair id="{RSC}-ctid" name="ctid" value="{CTID}"/>
          <nvpair id="{RSC}-config" name="config" value="{shared}"/>
          <nvpair id="{RSC}-mmp-nodes" name="mmp_nodes" value="{mmp_nodes}"/>
        </instance_attributes>
        <meta_attributes id="{RSC}-meta">
          <nvpair id="{RSC}-allow-migrate" name="allow-migrate" value="true"/>
        </meta_attributes>
        <operations>
          <op id="{RSC}-start" name="start" interval="0" timeout="120s"/>
          <op id="{RSC}-stop" name="stop" interval="0" timeout="120s" on-fail="fence"/>
          <op id="{RSC}-monitor" name="monitor" interval="2s" timeout="30s"/>
          <op id="{RSC}-migrate_to" name="migrate_to" interval="0" timeout="120s"/>
          <op id="{RSC}-migrate_from" name="migrate_from" interval="0" timeout="120s"/>
        </operations>
      </primitive>
    </resources>
    <constraints>
      <rsc_location id="{RSC}-prefers-{prefer}" rsc="{RSC}" node="{prefer}" score="50"/>
    </constraints>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="rsc-stickiness" name="resource-stickiness" value="100"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
"#,
        hosts = names.join(" "),
        dir = dir.display(),
        shared = shared.display(),
    )
}

impl<'a> Cluster<'a> {
    /// Installs the agents, writes each node's corosync.conf, seeded CIB and
    /// node map, starts corosync and pacemakerd on every host, and waits
    /// until every node is online with a DC. The container resource starts
    /// on `prefer` (a location score of 50, stickiness 100).
    pub fn start(lab: &'a Lab, shared_conf: &Path, prefer: &str) -> Result<Cluster<'a>> {
        Self::start_with(lab, shared_conf, prefer, &mmp_nodes(lab))
    }

    /// [`Cluster::start`] with the agent's `mmp_nodes` given (a test of a
    /// block that names another node).
    pub fn start_with(
        lab: &'a Lab,
        shared_conf: &Path,
        prefer: &str,
        mmp_nodes: &str,
    ) -> Result<Cluster<'a>> {
        install_agents(lab)?;
        let dir = cluster_dir(lab);
        let conf = corosync_conf(lab);
        let cib = cib(lab, &dir, shared_conf, prefer, mmp_nodes);
        for h in lab.hosts() {
            NodeMap::of(lab, h).write(&dir)?;
            let nd = dir.join(format!("node-{}", h.name()));
            let _ = fs::remove_dir_all(&nd);
            for d in ["etc-corosync", "var-lib-corosync", "var-log-corosync"] {
                fs::create_dir_all(nd.join(d)).map_err(|e| io("create", &nd.join(d), e))?;
            }
            write(&nd.join("etc-corosync/corosync.conf"), &conf)?;
            // Fresh state as the packages lay it out (never the machine's
            // own CIB): hacluster:haclient, the CIB seeded.
            let mut owned = Vec::new();
            for (d, mode) in [
                ("var-lib-pacemaker", 0o755),
                ("var-lib-pacemaker/cib", 0o750),
                ("var-lib-pacemaker/pengine", 0o750),
                ("var-lib-pacemaker/blackbox", 0o750),
                ("var-lib-pacemaker/cores", 0o750),
                ("var-log-pacemaker", 0o770),
            ] {
                let p = nd.join(d);
                fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
                chmod(&p, mode)?;
                if d != "var-lib-pacemaker" {
                    owned.push(p.display().to_string());
                }
            }
            let cibf = nd.join("var-lib-pacemaker/cib/cib.xml");
            write(&cibf, &cib)?;
            chmod(&cibf, 0o600)?;
            owned.push(cibf.display().to_string());
            let mut argv = vec!["chown".to_string(), "hacluster:haclient".into()];
            argv.extend(owned);
            crate::cmd::machine_ok(&argv)?;
            let nds = nd.display();
            h.sh_ok(&format!(
                "mount --bind {nds}/etc-corosync /etc/corosync && \
                 mount --bind {nds}/var-lib-corosync /var/lib/corosync && \
                 mount --bind {nds}/var-log-corosync /var/log/corosync && \
                 mount --bind {nds}/var-lib-pacemaker /var/lib/pacemaker && \
                 mount --bind {nds}/var-log-pacemaker /var/log/pacemaker && \
                 mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 lab-shm /dev/shm"
            ))?;
        }
        for h in lab.hosts() {
            h.sh_ok("setsid corosync -f </dev/null >/var/log/corosync/stdout 2>&1 &")?;
        }
        for h in lab.hosts() {
            h.sh_ok(
                "PCMK_logfile=/var/log/pacemaker/pacemaker.log setsid pacemakerd </dev/null >/var/log/pacemaker/stdout 2>&1 &",
            )?;
        }
        let c = Cluster {
            lab,
            dir,
            shared_conf: shared_conf.to_path_buf(),
        };
        let first = lab.hosts()[0].name().to_string();
        c.wait_for(
            "every node online with a DC",
            Duration::from_secs(90),
            || {
                let o = c.crm(&first, &["crm_mon", "-1"]).ok()?;
                let online = o
                    .stdout
                    .lines()
                    .find(|l| l.contains("Online:"))?
                    .to_string();
                let all = lab
                    .hosts()
                    .iter()
                    .all(|h| online.contains(&format!(" {} ", h.name())));
                (all && o.stdout.contains("Current DC:") && !o.stdout.contains("Current DC: NONE"))
                    .then_some(())
            },
        )?;
        Ok(c)
    }

    /// Runs a Pacemaker CLI tool on `host` (its namespaces: its daemons).
    pub fn crm(&self, host: &str, argv: &[&str]) -> Result<crate::Output> {
        self.lab.host(host).run(argv)
    }

    /// Polls `f` every 200 ms until it returns `Some`, or fails with the
    /// state of the cluster after `timeout` (a bound, not a measurement).
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f() {
                return Ok(v);
            }
            if t0.elapsed() > timeout {
                return Err(LabError::Timeout {
                    what: format!("{what}; cluster state:\n{}", self.state()),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `crm_mon -1` from the first node that answers (for messages).
    pub fn state(&self) -> String {
        for h in self.lab.hosts() {
            if let Ok(o) = h.run(&["crm_mon", "-1", "--include=all"]) {
                if o.success() {
                    return o.stdout;
                }
            }
        }
        "(no node answers crm_mon)".into()
    }

    /// Where the container resource runs, asked on `host`.
    pub fn location(&self, host: &str) -> Option<String> {
        let o = self
            .crm(host, &["crm_resource", "--locate", "-r", RSC])
            .ok()?;
        o.stdout.lines().find_map(|l| {
            l.split_once("is running on:")
                .map(|(_, n)| n.trim().to_string())
        })
    }

    /// Waits until `host` runs the container as the cluster and the node
    /// itself see it (resource located there, `vzctl status` running).
    pub fn wait_running_on(&self, ask: &str, host: &str, timeout: Duration) -> Result<()> {
        let h = self.lab.host(host);
        self.wait_for(&format!("{RSC} running on {host}"), timeout, || {
            (self.location(ask).as_deref() == Some(host)
                && h.vzctl(&["status", CTID]).ok()?.stdout.contains(" running"))
            .then_some(())
        })
    }

    /// Powers `host` off as the fence agent does (a node crash).
    pub fn crash(&self, host: &str) -> Result<()> {
        NodeMap::read(&self.dir, host)?.power_off(&self.dir)
    }

    /// The fencings the fence agent did so far.
    pub fn fencings(&self) -> Vec<Fencing> {
        fence_log(&self.dir)
    }

    /// The last lines of each node's pacemaker log (for failure messages).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for h in self.lab.hosts() {
            let p = self
                .dir
                .join(format!("node-{}/var-log-pacemaker/pacemaker.log", h.name()));
            let t = fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = t
                .lines()
                .filter(|l| {
                    l.contains("vzfs")
                        || l.contains("error")
                        || l.contains("fence")
                        || l.contains(RSC)
                })
                .collect();
            s.push_str(&format!(
                "--- {} ---\n{}\n",
                h.name(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            ));
        }
        s
    }
}

/// One read of a host's mountinfo: started at `t0`, done at `t1` (epoch
/// seconds), whether the LUN was mounted. A read can block for a long time
/// (a dying node's mount namespace being torn down), so each host is read by
/// its own thread and every conclusion uses only what the reads prove.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub t0: f64,
    pub t1: f64,
    pub mounted: bool,
}

/// What [`sample_mounts`] saw: every read per host, in order.
#[derive(Debug, Default)]
pub struct MountSamples {
    pub reads: Vec<(String, Vec<Read>)>,
}

impl MountSamples {
    /// The reads of `host`, in order.
    pub fn of(&self, host: &str) -> &[Read] {
        self.reads
            .iter()
            .find(|(h, _)| h == host)
            .map_or(&[], |(_, r)| r.as_slice())
    }

    /// The intervals in which `host` certainly had the LUN mounted: from
    /// the end of the first read that saw it mounted to the start of the
    /// last read that still saw it (the mount spans both).
    pub fn certainly_mounted(&self, host: &str) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut run: Option<(f64, f64)> = None;
        for r in self.of(host) {
            match (&mut run, r.mounted) {
                (None, true) => run = Some((r.t1, r.t0)),
                (Some(x), true) => x.1 = r.t0,
                (Some(x), false) => {
                    out.push(*x);
                    run = None;
                }
                (None, false) => {}
            }
        }
        out.extend(run);
        out
    }

    /// Moments two hosts certainly had the LUN mounted at once.
    pub fn both(&self) -> Vec<(String, String, f64, f64)> {
        let mut v = Vec::new();
        for (i, (a, _)) in self.reads.iter().enumerate() {
            for (b, _) in &self.reads[i + 1..] {
                for x in self.certainly_mounted(a) {
                    for y in self.certainly_mounted(b) {
                        let (s, e) = (x.0.max(y.0), x.1.min(y.1));
                        if s < e {
                            v.push((a.clone(), b.clone(), s, e));
                        }
                    }
                }
            }
        }
        v
    }

    /// Number of reads per host (the fewest).
    pub fn samples(&self) -> usize {
        self.reads.iter().map(|(_, r)| r.len()).min().unwrap_or(0)
    }

    /// When `host` was first seen with the LUN mounted after `after` (the
    /// end of that read).
    pub fn mounted_after(&self, host: &str, after: f64) -> Option<f64> {
        self.of(host)
            .iter()
            .find(|r| r.mounted && r.t0 >= after)
            .map(|r| r.t1)
    }

    /// A moment after `after` at which `host` certainly had not mounted the
    /// LUN yet: the start of the last read before its first mount after
    /// `after` that saw it unmounted.
    pub fn unmounted_until(&self, host: &str, after: f64) -> Option<f64> {
        let r = self.of(host);
        let first = r.iter().position(|x| x.mounted && x.t0 >= after)?;
        r[..first].iter().rev().find(|x| !x.mounted).map(|x| x.t0)
    }
}

/// Samples which hosts have `lun` mounted (their mountinfo), every 10 ms (a
/// survivor now mounts about 0.1 s after the fencing: the samples must fall
/// between the two to prove their order),
/// one thread per host, until `stop` is set, and once more after that.
pub fn sample_mounts(lab: &Lab, lun: &Disk, stop: &std::sync::atomic::AtomicBool) -> MountSamples {
    let hosts: Vec<&Host> = lab
        .hosts()
        .iter()
        .filter(|h| lun.try_device(h.name()).is_some())
        .collect();
    let reads = std::thread::scope(|sc| {
        let hs: Vec<_> = hosts
            .iter()
            .map(|h| {
                sc.spawn(move || {
                    let mut v = Vec::new();
                    loop {
                        // One more read after `stop`: the state the caller
                        // ended in (say, the container just started on a
                        // node) is always in the samples, even when it
                        // began less than a period before the stop.
                        let last = stop.load(std::sync::atomic::Ordering::SeqCst);
                        let t0 = now();
                        let mounted = h.disk_mounts(lun).map(|m| !m.is_empty()).unwrap_or(false);
                        v.push(Read {
                            t0,
                            t1: now(),
                            mounted,
                        });
                        if last {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    (h.name().to_string(), v)
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    MountSamples { reads }
}

impl Cluster<'_> {
    /// The agent's takeover path in its last successful start on `host`
    /// (`clean`, `fenced`, `still-11s`, `off`, ...; from its log line).
    pub fn agent_takeover(&self, host: &str) -> Option<String> {
        let p = self
            .dir
            .join(format!("node-{host}/var-log-pacemaker/pacemaker.log"));
        let t = fs::read_to_string(p).ok()?;
        let l = t.lines().rev().find(|l| l.contains("(MMP check "))?;
        let rest = &l[l.find(", takeover ")? + ", takeover ".len()..];
        Some(rest.split(',').next()?.trim().to_string())
    }

    /// The pids of `host`'s processes named `comm` (its namespaces only: the
    /// machine and other labs run the same daemons).
    pub fn pids_named(&self, host: &str, comm: &str) -> Result<Vec<u32>> {
        let m = NodeMap::read(&self.dir, host)?;
        Ok(m.processes()
            .into_iter()
            .filter(|p| {
                fs::read_to_string(format!("/proc/{p}/comm"))
                    .map(|c| c.trim() == comm)
                    .unwrap_or(false)
            })
            .collect())
    }

    /// kill -9 of `host`'s process(es) named `comm` (e.g. `corosync`).
    pub fn kill9(&self, host: &str, comm: &str) -> Result<()> {
        let pids = self.pids_named(host, comm)?;
        if pids.is_empty() {
            return Err(LabError::Usage(format!("no {comm} runs on {host}")));
        }
        for p in pids {
            // SAFETY: kill(2) with a pid of that node.
            unsafe {
                libc::kill(p as libc::pid_t, libc::SIGKILL);
            }
        }
        Ok(())
    }

    /// True once `host` has no process left (powered off).
    pub fn is_off(&self, host: &str) -> bool {
        NodeMap::read(&self.dir, host)
            .map(|m| m.processes().is_empty())
            .unwrap_or(false)
    }

    /// The agent's own times of its last successful start on `host` (from
    /// its message in the node's pacemaker log): the MMP check and
    /// `vzctl start`, and the hook's mount(2) in it (the kernel's MMP wait),
    /// in seconds.
    pub fn agent_start_times(&self, host: &str) -> Option<(f64, f64, Option<f64>)> {
        let p = self
            .dir
            .join(format!("node-{host}/var-log-pacemaker/pacemaker.log"));
        let t = fs::read_to_string(p).ok()?;
        let l = t.lines().rev().find(|l| l.contains("(MMP check "))?;
        let num = |key: &str| -> Option<f64> {
            let rest = &l[l.find(key)? + key.len()..];
            rest.split(' ').next()?.parse().ok()
        };
        Some((
            num("(MMP check ")?,
            num("vzctl start ")?,
            num("of which mount(2) "),
        ))
    }
}

/// Runs the agent `action` on `h` as Pacemaker would for resource `ct101`
/// of container [`CTID`] with the shared `config` (no cluster needed), plus
/// `extra` environment; any exit code.
pub fn run_agent(h: &Host, action: &str, config: &Path, extra: &[(&str, &str)]) -> crate::Output {
    let mut c = h.command(&[AGENT, action]);
    c.env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RESOURCE_INSTANCE", RSC)
        .env("OCF_RESKEY_ctid", CTID)
        .env("OCF_RESKEY_config", config)
        .env("OCF_RESKEY_CRM_meta_interval", "10000");
    for (k, v) in extra {
        c.env(k, v);
    }
    let o = c.output().expect("run the agent in the host");
    use std::os::unix::process::ExitStatusExt;
    crate::Output {
        place: format!("host {}", h.name()),
        cmd: format!("{AGENT} {action}"),
        code: o.status.code(),
        signal: o.status.signal(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A failover's phases, in seconds: from the failure to the fence agent's
/// start (detection: token timeout, new membership, scheduling), the fence
/// agent, from the fencing to the LUN mounted on the survivor (the agent's
/// MMP check of the dead node's block, the kernel's MMP wait, the hook),
/// from the mount to the container running; the kernel's MMP wait inside
/// `vzctl start` as the agent measured it when its log says.
#[derive(Debug, Clone)]
pub struct Failover {
    pub detection: f64,
    pub fencing: f64,
    pub mount: f64,
    pub start: f64,
    pub total: f64,
    pub agent_mmp_check: Option<f64>,
    pub vzctl_start: Option<f64>,
    /// The kernel's MMP wait: the hook's mount(2) inside `vzctl start`.
    pub kernel_mmp_wait: Option<f64>,
    /// How the agent took the MMP block over (`fenced`, `still-11s`, ...).
    pub takeover: Option<String>,
}

impl Failover {
    /// From the failure time, the fence log, the mount samples and the
    /// moment the container was seen running on `survivor`.
    pub fn measure(
        c: &Cluster<'_>,
        victim: &str,
        survivor: &str,
        failed_at: f64,
        samples: &MountSamples,
        running_at: f64,
    ) -> Option<Failover> {
        let f = c
            .fencings()
            .into_iter()
            .find(|f| f.node == victim && f.start >= failed_at - 0.5)?;
        let mounted = samples.mounted_after(survivor, f.start)?;
        let times = c.agent_start_times(survivor);
        Some(Failover {
            detection: f.start - failed_at,
            fencing: f.end - f.start,
            mount: mounted - f.end,
            // Both moments are polled (100 ms, 200 ms): never below zero.
            start: (running_at - mounted).max(0.0),
            total: running_at - failed_at,
            agent_mmp_check: times.map(|t| t.0),
            vzctl_start: times.map(|t| t.1),
            kernel_mmp_wait: times.and_then(|t| t.2),
            takeover: c.agent_takeover(survivor),
        })
    }

    pub fn line(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}s"));
        format!(
            "total {:.2}s = detection {:.2}s + fencing {:.2}s + mount {:.2}s (agent MMP check {}, takeover {}, vzctl start {} of which the kernel's MMP wait {}) + start {:.2}s",
            self.total,
            self.detection,
            self.fencing,
            self.mount,
            opt(self.agent_mmp_check),
            self.takeover.as_deref().unwrap_or("n/a"),
            opt(self.vzctl_start),
            opt(self.kernel_mmp_wait),
            self.start
        )
    }
}
