//! A TEST DOUBLE of vzctl 4.x (legacy OpenVZ), for the vzfs lab only.
//!
//! Real vzctl needs an OpenVZ kernel; lab hosts run this double instead,
//! installed as `vzctl`. It follows `docs/VZCTL-CONTRACT.md` exactly
//! (`/work/shared/docs/VZCTL-CONTRACT.md`): configuration syntax and `set
//! --save` rewriting ([`conf`]), action scripts with vzctl's order, argv,
//! environment, stdin and exit code 79 and its missing undo of premount
//! ([`scripts`]), the container lock `LOCKDIR/<CTID>.lck` made with `link()`
//! and `--skiplock` ([`lock`]), `status` line format, and vzctl's exit codes.
//! It also does what the contract records of the real vzctl 4.11.1: `mount`
//! of a mounted container says "Container is already mounted", exits 0 and
//! runs no hook; `umount` of an unmounted one says "CT is not mounted" and
//! exits 40; `status` warns `stat(<VE_ROOT>): No such file or directory` on
//! stderr while `VE_ROOT` does not exist (stdout is still the one line);
//! `set --save` writes the keys vzctl manages itself ([`conf::REQUOTED_KEYS`])
//! back in its own quoting. Where the contract is silent it follows vzctl
//! 4.x sources (messages, `umount` of a running CT is a no-op with a
//! message, `stop` of a stopped CT exits 0).
//!
//! Lab-only: the config key `VZFS_LAB_DUMP_SIZE` ([`DUMP_SIZE_KEY`]) sets the
//! size of the memory image `chkpnt` writes into the dump (and `restore`
//! reads back), so that an online migration's freeze can be measured.
//!
//! What is simulated: on a non-OpenVZ kernel vzctl mounts a simfs container
//! as a bind mount of `VE_PRIVATE` on `VE_ROOT`; so does the double. A
//! running container is a [`crate::workload`] process with its cwd in
//! `VE_ROOT`; `chkpnt` dumps its state into the dump file, `restore` resumes
//! it. Only `VE_LAYOUT=simfs` is supported (ploop: exit 3). Networking, quotas,
//! resource limits and `exec`/`enter` are not simulated.
//!
//! `create` extracts the template `TEMPLATE/cache/<name>.tar.gz` with `tar
//! --numeric-owner -xzf` as vzctl does: without `--xattrs`/`--acls`, so a
//! template's xattrs and ACLs are not kept; it refuses a non-empty private
//! area (exit 44) and an existing config file; it writes `--hostname` and
//! every `--ipadd` (space-separated `IP_ADDRESS`) into the new config.
//!
//! Commands: `status start stop mount umount set create destroy chkpnt restore`.

pub mod conf;
pub mod lock;
pub mod scripts;

use crate::workload;
use conf::Conf;
use scripts::{run_script, ScriptRun, SCRIPT_DIR};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The global configuration file.
pub const GLOBAL_CONF: &str = "/etc/vz/vz.conf";

// vzctl's exit codes (vzerror.h).
pub const VZ_SYSTEM_ERROR: i32 = 3;
pub const VZ_ENVCREATE_ERROR: i32 = 7;
pub const VZ_LOCKED: i32 = 9;
pub const VZ_NOCONFIG: i32 = 10;
pub const VZ_NOVECONFIG: i32 = 14;
pub const VZ_CHKPNT_ERROR: i32 = 16;
pub const VZ_RESTORE_ERROR: i32 = 17;
pub const VZ_INVALID_PARAMETER_SYNTAX: i32 = 20;
pub const VZ_INVALID_PARAMETER_VALUE: i32 = 21;
pub const VZ_VE_ROOT_NOTSET: i32 = 22;
pub const VZ_VE_PRIVATE_NOTSET: i32 = 23;
pub const VZ_VE_NOT_RUNNING: i32 = 31;
pub const VZ_VE_RUNNING: i32 = 32;
pub const VZ_STOP_ERROR: i32 = 33;
pub const VZ_FS_NOT_MOUNTED: i32 = 40;
pub const VZ_FS_MOUNTED: i32 = 41;
pub const VZ_FS_NOPRVT: i32 = 43;
pub const VZ_FS_PRVT_AREA_EXIST: i32 = 44;
pub const VZ_FS_BAD_TMPL: i32 = 47;
pub const VZ_FS_NEW_VE_PRVT: i32 = 48;
pub const VZ_FS_MPOINTCREATE: i32 = 49;
pub const VZ_FS_CANTMOUNT: i32 = 50;
pub const VZ_FS_CANTUMOUNT: i32 = 51;
pub const VZ_FS_DEL_PRVT: i32 = 52;
pub const VZ_ACTIONSCRIPT_ERROR: i32 = 79;

type R<T = ()> = std::result::Result<T, i32>;

/// Entry point of the `vzctl-double` binary; returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    unsafe {
        libc::umask(0o022);
    }
    if args.get(1).map(String::as_str) == Some(workload::SUBCOMMAND) {
        let veid = args.get(2).cloned().unwrap_or_default();
        let resume = match (args.get(3).map(String::as_str), args.get(4)) {
            (Some("--resume-from"), Some(n)) => n.parse().ok(),
            _ => None,
        };
        return workload::run(&veid, resume);
    }
    let mut skiplock = false;
    let mut i = 1;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "--verbose" | "--quiet" => {}
            "--skiplock" => skiplock = true,
            _ => break,
        }
        i += 1;
    }
    let Some(cmd) = args.get(i).cloned() else {
        eprintln!("{}", USAGE);
        return VZ_INVALID_PARAMETER_SYNTAX;
    };
    match cmd.as_str() {
        "--help" | "help" => {
            println!("{USAGE}");
            return 0;
        }
        "--version" => {
            println!("vzctl version 4.9 (vzfs lab test double)");
            return 0;
        }
        _ => {}
    }
    let Some(veid) = args.get(i + 1).cloned() else {
        eprintln!("CT ID missing\n{USAGE}");
        return VZ_INVALID_PARAMETER_SYNTAX;
    };
    if veid.parse::<u32>().is_err() {
        eprintln!("Bad CT ID {veid}");
        return VZ_INVALID_PARAMETER_VALUE;
    }
    let opts = match Opts::parse(&cmd, &args[i + 2..]) {
        Ok(o) => o,
        Err(code) => return code,
    };
    skiplock |= opts.flag("skiplock");
    let mut vz = match Vz::load(&veid, skiplock) {
        Ok(v) => v,
        Err(c) => return c,
    };
    let r = match cmd.as_str() {
        "status" => vz.status(),
        "start" => vz.with_lock("starting", |v| v.start(&opts)),
        "stop" => vz.with_lock("stopping", |v| v.stop(&opts)),
        "mount" => vz.with_lock("mounting", |v| v.mount_cmd()),
        "umount" => vz.with_lock("unmounting", |v| v.umount_cmd()),
        "set" => vz.with_lock("setting", |v| v.set(&opts)),
        "create" => vz.with_lock("creating", |v| v.create(&opts)),
        "destroy" | "delete" => vz.with_lock("destroying", |v| v.destroy()),
        "chkpnt" => vz.with_lock("checkpointing", |v| v.chkpnt(&opts)),
        "restore" => vz.with_lock("restoring", |v| v.restore(&opts)),
        other => {
            eprintln!("Bad command: {other}\n{USAGE}");
            Err(VZ_INVALID_PARAMETER_SYNTAX)
        }
    };
    match r {
        Ok(()) => 0,
        Err(c) => c,
    }
}

const USAGE: &str = "Usage: vzctl [options] <command> <ctid> [parameters]
(vzfs lab test double of vzctl 4.x)
vzctl create <ctid> [--ostemplate <name>] [--config <name>] [--private <path>] [--root <path>] [--hostname <name>] [--ipadd <addr>]...
vzctl destroy | mount | umount | status <ctid>
vzctl start <ctid> [--skip-remount] [--wait] [--force]
vzctl stop <ctid> [--fast] [--skip-umount]
vzctl set <ctid> [--private <path>] [--root <path>] [--hostname <name>] [--onboot yes|no] [--description <text>] [--save]
vzctl chkpnt <ctid> [--dumpfile <name>] [--suspend | --dump | --kill | --resume]
vzctl restore <ctid> [--dumpfile <name>] [--undump | --resume | --kill]
Options: --skiplock (before the command or among parameters)";

/// Parsed command parameters.
#[derive(Debug, Default)]
pub struct Opts {
    items: Vec<(String, Option<String>)>,
}

impl Opts {
    fn parse(cmd: &str, args: &[String]) -> R<Opts> {
        // (option, takes a value)
        let table: &[(&str, bool)] = match cmd {
            "status" | "mount" | "umount" | "destroy" | "delete" => &[],
            "start" => &[("skip-remount", false), ("wait", false), ("force", false)],
            "stop" => &[("fast", false), ("skip-umount", false)],
            "set" => &[
                ("private", true),
                ("root", true),
                ("hostname", true),
                ("onboot", true),
                ("description", true),
                ("save", false),
                ("setmode", true),
            ],
            "create" => &[
                ("ostemplate", true),
                ("config", true),
                ("private", true),
                ("root", true),
                ("hostname", true),
                ("ipadd", true),
                ("layout", true),
            ],
            "chkpnt" => &[
                ("dumpfile", true),
                ("suspend", false),
                ("dump", false),
                ("kill", false),
                ("resume", false),
            ],
            "restore" => &[
                ("dumpfile", true),
                ("undump", false),
                ("resume", false),
                ("kill", false),
            ],
            _ => &[],
        };
        let mut o = Opts::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(body) = a.strip_prefix("--") else {
                eprintln!("Invalid argument: {a}");
                return Err(VZ_INVALID_PARAMETER_SYNTAX);
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            if name == "skiplock" || name == "verbose" || name == "quiet" {
                o.items.push((name.to_string(), None));
                continue;
            }
            let Some(&(_, takes)) = table.iter().find(|(n, _)| *n == name) else {
                eprintln!("vzctl: unrecognized option '--{name}'");
                return Err(VZ_INVALID_PARAMETER_SYNTAX);
            };
            let val = if takes {
                match inline.or_else(|| it.next().cloned()) {
                    Some(v) => Some(v),
                    None => {
                        eprintln!("vzctl: option '--{name}' requires an argument");
                        return Err(VZ_INVALID_PARAMETER_SYNTAX);
                    }
                }
            } else {
                None
            };
            o.items.push((name.to_string(), val));
        }
        Ok(o)
    }
    fn flag(&self, n: &str) -> bool {
        self.items.iter().any(|(k, _)| k == n)
    }
    fn values(&self, n: &str) -> Vec<&str> {
        self.items
            .iter()
            .filter(|(k, _)| k == n)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    fn value(&self, n: &str) -> Option<&str> {
        self.items
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.as_deref())
    }
}

struct Vz {
    veid: String,
    skiplock: bool,
    global: Conf,
    conf: Conf,
    conffile: PathBuf,
    has_conf: bool,
    log: Option<std::fs::File>,
    leaked: Vec<i32>,
}

fn errno_text(e: nix::errno::Errno) -> String {
    std::io::Error::from_raw_os_error(e as i32).to_string()
}

impl Vz {
    fn load(veid: &str, skiplock: bool) -> R<Vz> {
        let mut global = Conf::default();
        match global.merge_file(Path::new(GLOBAL_CONF)) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("Global configuration file {GLOBAL_CONF} not found");
                return Err(VZ_NOCONFIG);
            }
            Err(e) => {
                eprintln!("Unable to read {GLOBAL_CONF}: {e}");
                return Err(VZ_NOCONFIG);
            }
        }
        let conffile = PathBuf::from(format!("{SCRIPT_DIR}/{veid}.conf"));
        let mut conf = global.clone();
        let has_conf = match conf.merge_file(&conffile) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("Unable to read {}: {e}", conffile.display());
                return Err(VZ_NOVECONFIG);
            }
        };
        let logfile = if global.get("LOGGING") != Some("no") {
            global.get("LOGFILE").map(PathBuf::from)
        } else {
            None
        };
        let log = logfile.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        let leaked = scripts::leak_vzctl_fds(logfile.as_deref());
        Ok(Vz {
            veid: veid.to_string(),
            skiplock,
            global,
            conf,
            conffile,
            has_conf,
            log,
            leaked,
        })
    }

    fn logline(&mut self, m: &str) {
        use std::io::Write;
        if let Some(f) = self.log.as_mut() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let _ = writeln!(
                f,
                "{t} vzctl[{}]: CT {} : {m}",
                std::process::id(),
                self.veid
            );
        }
    }
    fn info(&mut self, m: &str) {
        println!("{m}");
        self.logline(m);
    }
    fn err(&mut self, m: &str) {
        eprintln!("{m}");
        self.logline(m);
    }

    fn with_lock(&mut self, status: &str, f: impl FnOnce(&mut Vz) -> R) -> R {
        if self.skiplock {
            return f(self);
        }
        let lockdir = PathBuf::from(self.global.get("LOCKDIR").unwrap_or("/vz/lock"));
        match lock::lock(&lockdir, &self.veid, status) {
            lock::LockResult::Taken(l) => {
                let r = f(self);
                l.release();
                r
            }
            lock::LockResult::Locked(_) => {
                self.err("Container already locked");
                Err(VZ_LOCKED)
            }
            lock::LockResult::Error(m) => {
                self.err(&m);
                Err(VZ_SYSTEM_ERROR)
            }
        }
    }

    fn need_conf(&mut self) -> R {
        if self.has_conf {
            Ok(())
        } else {
            let m = format!(
                "Container config file {} does not exist",
                self.conffile.display()
            );
            self.err(&m);
            Err(VZ_NOVECONFIG)
        }
    }

    fn root(&self) -> Option<String> {
        self.conf.path("VE_ROOT", &self.veid)
    }
    fn private(&self) -> Option<String> {
        self.conf.path("VE_PRIVATE", &self.veid)
    }
    fn need_paths(&mut self) -> R<(String, String)> {
        let Some(root) = self.root() else {
            self.err("VE_ROOT is not set");
            return Err(VZ_VE_ROOT_NOTSET);
        };
        let Some(private) = self.private() else {
            self.err("VE_PRIVATE is not set");
            return Err(VZ_VE_PRIVATE_NOTSET);
        };
        if self.conf.get("VE_LAYOUT").is_some_and(|l| l != "simfs") {
            self.err("Only VE_LAYOUT=simfs is supported by this vzctl test double");
            return Err(VZ_SYSTEM_ERROR);
        }
        Ok((root, private))
    }

    fn dumpfile(&self, opts: &Opts) -> PathBuf {
        match opts.value("dumpfile") {
            Some(f) => PathBuf::from(f),
            None => Path::new(self.global.get("DUMPDIR").unwrap_or("/vz/dump"))
                .join(format!("Dump.{}", self.veid)),
        }
    }

    fn is_mounted(&self, root: &str) -> bool {
        let canon = std::fs::canonicalize(root).unwrap_or_else(|_| PathBuf::from(root));
        crate::mountinfo::read(Path::new("/proc/self/mountinfo"))
            .map(|m| crate::mountinfo::mounted_at(&m, &canon).is_some())
            .unwrap_or(false)
    }

    fn script(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{SCRIPT_DIR}/{name}"))
    }

    /// Runs scripts in order; the first failure stops the chain.
    fn run_scripts(&mut self, kind: &str, names: [String; 2]) -> R {
        for n in names {
            let p = self.script(&n);
            let r = run_script(&p, &self.veid);
            if r.failed() {
                if let ScriptRun::SpawnError(e) = &r {
                    let m = format!("{e}");
                    self.err(&m);
                }
                let m = format!("Error executing {kind} script {}", p.display());
                self.err(&m);
                return Err(VZ_ACTIONSCRIPT_ERROR);
            }
        }
        Ok(())
    }

    /// vzctl's mount sequence: premount scripts (global first), private
    /// area check, bind mount, mount scripts. Nothing is undone after a
    /// successful premount.
    fn mount_cycle(&mut self) -> R {
        let (root, private) = self.need_paths()?;
        if self.is_mounted(&root) {
            self.err("Container is already mounted");
            return Ok(());
        }
        let id = self.veid.clone();
        self.run_scripts(
            "premount",
            ["vps.premount".into(), format!("{id}.premount")],
        )?;
        if !Path::new(&private).exists() {
            let m = format!("Container private area {private} does not exist");
            self.err(&m);
            return Err(VZ_FS_NOPRVT);
        }
        if let Err(e) = std::fs::create_dir_all(&root) {
            let m = format!("Can't create mount point {root}: {e}");
            self.err(&m);
            return Err(VZ_FS_MPOINTCREATE);
        }
        if let Err(e) = nix::mount::mount(
            Some(private.as_str()),
            root.as_str(),
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        ) {
            let m = format!("Can't mount {private} on {root}: {}", errno_text(e));
            self.err(&m);
            return Err(VZ_FS_CANTMOUNT);
        }
        if let Err(c) = self.run_scripts("mount", ["vps.mount".into(), format!("{id}.mount")]) {
            // vzctl unmounts VE_ROOT (without umount/postumount scripts).
            let _ = nix::mount::umount2(root.as_str(), nix::mount::MntFlags::empty());
            return Err(c);
        }
        self.info("Container is mounted");
        Ok(())
    }

    /// vzctl's unmount sequence: umount scripts (per-CT first), unmount of
    /// VE_ROOT, postumount scripts (per-CT first) even if the unmount failed.
    fn umount_cycle(&mut self) -> R {
        let (root, _) = self.need_paths()?;
        if !self.is_mounted(&root) {
            self.err("CT is not mounted");
            return Err(VZ_FS_NOT_MOUNTED);
        }
        let id = self.veid.clone();
        self.run_scripts("umount", [format!("{id}.umount"), "vps.umount".into()])?;
        let mut res = Ok(());
        let mut tries = 0;
        loop {
            match nix::mount::umount2(root.as_str(), nix::mount::MntFlags::empty()) {
                Ok(()) => {
                    self.info("Container is unmounted");
                    break;
                }
                Err(nix::errno::Errno::EBUSY) if tries == 0 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    let m = format!("Can't umount: {root}: {}", errno_text(e));
                    self.err(&m);
                    res = Err(VZ_FS_CANTUMOUNT);
                    break;
                }
            }
        }
        let post = self.run_scripts(
            "postumount",
            [format!("{id}.postumount"), "vps.postumount".into()],
        );
        res.and(post)
    }

    fn status(&mut self) -> R {
        if let Some(r) = self.root() {
            if let Err(e) = std::fs::metadata(&r) {
                // vzctl 4.11.1: a warning on stderr while VE_ROOT does not
                // exist; stdout is still the one status line
                let text = e
                    .raw_os_error()
                    .map(|c| nix::errno::Errno::from_raw(c).desc().to_string())
                    .unwrap_or_else(|| e.to_string());
                eprintln!("stat({r}): {text}");
            }
        }
        let exist = self.has_conf && self.private().is_some_and(|p| Path::new(&p).is_dir());
        let mounted = self.root().is_some_and(|r| self.is_mounted(&r));
        let running = workload_pid(&self.veid).is_some();
        let dump = Path::new(self.global.get("DUMPDIR").unwrap_or("/vz/dump"))
            .join(format!("Dump.{}", self.veid));
        let suspended = !running && dump.exists();
        println!(
            "CTID {} {} {} {}{}",
            self.veid,
            if exist { "exist" } else { "deleted" },
            if mounted { "mounted" } else { "unmounted" },
            if running { "running" } else { "down" },
            if suspended { " suspended" } else { "" }
        );
        Ok(())
    }

    fn start(&mut self, opts: &Opts) -> R {
        self.need_conf()?;
        let (root, _) = self.need_paths()?;
        if workload_pid(&self.veid).is_some() {
            self.err("Container is already running");
            return Err(VZ_VE_RUNNING);
        }
        self.info("Starting container...");
        if self.is_mounted(&root) && !opts.flag("skip-remount") {
            self.umount_cycle()?;
        }
        if !self.is_mounted(&root) {
            self.mount_cycle()?;
        }
        self.spawn_workload(&root, None)?;
        self.info("Container start in progress...");
        Ok(())
    }

    fn spawn_workload(&mut self, root: &str, resume: Option<u64>) -> R<i32> {
        scripts::cloexec(&self.leaked);
        let _ = std::fs::create_dir_all(workload::STATE_DIR);
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let mut c = Command::new(exe);
        c.arg(workload::SUBCOMMAND).arg(&self.veid);
        if let Some(n) = resume {
            c.arg("--resume-from").arg(n.to_string());
        }
        let errlog = Path::new(workload::STATE_DIR).join(format!("{}.log", self.veid));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&errlog)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        c.current_dir(root)
            .env_clear()
            .env("PATH", &scripts::ENV_PATH[5..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) => {
                let m = format!("Unable to start the container's workload in {root}: {e}");
                self.err(&m);
                return Err(VZ_ENVCREATE_ERROR);
            }
        };
        let pid = child.id() as i32;
        drop(child);
        if let Err(e) = std::fs::write(workload::pid_file(&self.veid), format!("{pid}\n")) {
            let m = format!(
                "Unable to write {}: {e}",
                workload::pid_file(&self.veid).display()
            );
            self.err(&m);
            kill9(pid);
            return Err(VZ_ENVCREATE_ERROR);
        }
        Ok(pid)
    }

    fn stop_workload(&mut self, pid: i32) -> R {
        use nix::sys::signal::{kill, Signal};
        let p = nix::unistd::Pid::from_raw(pid);
        let _ = kill(p, Signal::SIGTERM);
        let _ = kill(p, Signal::SIGCONT);
        if !wait_gone(pid, Duration::from_secs(5)) {
            let _ = kill(p, Signal::SIGKILL);
            if !wait_gone(pid, Duration::from_secs(5)) {
                self.err("Unable to stop container: the workload does not exit");
                return Err(VZ_STOP_ERROR);
            }
        }
        let _ = std::fs::remove_file(workload::pid_file(&self.veid));
        let _ = std::fs::remove_file(workload::frozen_file(&self.veid));
        Ok(())
    }

    fn stop(&mut self, opts: &Opts) -> R {
        self.need_conf()?;
        self.need_paths()?;
        let Some(pid) = workload_pid(&self.veid) else {
            self.err("Unable to stop: container is not running");
            return Ok(());
        };
        self.info("Stopping container ...");
        self.stop_workload(pid)?;
        self.info("Container was stopped");
        if opts.flag("skip-umount") {
            return Ok(());
        }
        self.umount_cycle()
    }

    fn mount_cmd(&mut self) -> R {
        self.need_conf()?;
        self.mount_cycle()
    }

    fn umount_cmd(&mut self) -> R {
        self.need_conf()?;
        let (root, _) = self.need_paths()?;
        if !self.is_mounted(&root) {
            self.err("CT is not mounted");
            return Err(VZ_FS_NOT_MOUNTED);
        }
        if workload_pid(&self.veid).is_some() {
            // vzctl 4.x: a message, and success.
            self.err("Container is running -- stop it first");
            return Ok(());
        }
        self.umount_cycle()
    }

    fn set(&mut self, opts: &Opts) -> R {
        self.need_conf()?;
        let map = [
            ("private", "VE_PRIVATE"),
            ("root", "VE_ROOT"),
            ("hostname", "HOSTNAME"),
            ("onboot", "ONBOOT"),
            ("description", "DESCRIPTION"),
        ];
        let mut changes: Vec<(String, String)> = Vec::new();
        for (opt, val) in &opts.items {
            if let Some((_, key)) = map.iter().find(|(o, _)| o == opt) {
                let v = val.clone().unwrap_or_default();
                if *opt == "onboot" && v != "yes" && v != "no" {
                    let m = format!("Invalid value for --onboot: {v} (yes or no)");
                    self.err(&m);
                    return Err(VZ_INVALID_PARAMETER_VALUE);
                }
                changes.retain(|(k, _)| k != key);
                changes.push((key.to_string(), v));
            }
        }
        if changes.is_empty() {
            self.err("No parameters to set");
            return Err(VZ_INVALID_PARAMETER_SYNTAX);
        }
        if changes
            .iter()
            .any(|(k, _)| k == "VE_PRIVATE" || k == "VE_ROOT")
        {
            if let Some(r) = self.root() {
                if self.is_mounted(&r) {
                    self.err("Unable to change VE_PRIVATE or VE_ROOT of a mounted container; stop/umount it first");
                    return Err(VZ_FS_MOUNTED);
                }
            }
        }
        if !opts.flag("save") {
            self.err("WARNING: Settings were not saved and will be resetted to original values on next start (use --save flag)");
            return Ok(());
        }
        let old = match std::fs::read(&self.conffile) {
            Ok(t) => t,
            Err(e) => {
                let m = format!("Unable to read {}: {e}", self.conffile.display());
                self.err(&m);
                return Err(VZ_NOVECONFIG);
            }
        };
        let new = conf::rewrite(&old, &changes);
        if let Err(e) = conf::write_atomic(&self.conffile, &new) {
            let m = format!("Unable to write {}: {e}", self.conffile.display());
            self.err(&m);
            return Err(VZ_SYSTEM_ERROR);
        }
        self.info(&format!("Saved parameters for CT {}", self.veid));
        Ok(())
    }

    fn create(&mut self, opts: &Opts) -> R {
        let ostemplate = opts
            .value("ostemplate")
            .or(self.global.get("DEF_OSTEMPLATE"))
            .map(str::to_string);
        let Some(ostemplate) = ostemplate else {
            self.err("OS template is not specified");
            return Err(24);
        };
        let private_raw = opts
            .value("private")
            .map(str::to_string)
            .or_else(|| self.global.get("VE_PRIVATE").map(str::to_string));
        let root_raw = opts
            .value("root")
            .map(str::to_string)
            .or_else(|| self.global.get("VE_ROOT").map(str::to_string));
        let Some(private_raw) = private_raw else {
            self.err("VE_PRIVATE is not set");
            return Err(VZ_VE_PRIVATE_NOTSET);
        };
        let Some(root_raw) = root_raw else {
            self.err("VE_ROOT is not set");
            return Err(VZ_VE_ROOT_NOTSET);
        };
        let private = conf::subst_veid(&private_raw, &self.veid);
        let root = conf::subst_veid(&root_raw, &self.veid);
        let nonempty = std::fs::read_dir(&private)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
            || (Path::new(&private).exists() && !Path::new(&private).is_dir());
        if nonempty {
            self.err(&format!("Private area already exists in {private}"));
            return Err(VZ_FS_PRVT_AREA_EXIST);
        }
        if self.has_conf {
            let m = format!(
                "Container config file {} already exists (destroy the container or remove the file)",
                self.conffile.display()
            );
            self.err(&m);
            return Err(VZ_SYSTEM_ERROR);
        }
        let tdir = self
            .global
            .get("TEMPLATE")
            .unwrap_or("/vz/template")
            .to_string();
        let tarball = Path::new(&tdir)
            .join("cache")
            .join(format!("{ostemplate}.tar.gz"));
        if !tarball.is_file() {
            let m = format!("Cached OS template {} not found", tarball.display());
            self.err(&m);
            return Err(VZ_FS_BAD_TMPL);
        }
        self.info(&format!("Creating container private area ({ostemplate})"));
        let existed = Path::new(&private).exists();
        if let Err(e) = std::fs::create_dir_all(&private) {
            let m = format!("Unable to create {private}: {e}");
            self.err(&m);
            return Err(VZ_FS_NEW_VE_PRVT);
        }
        let tar = Command::new("tar")
            .args(["--numeric-owner", "-xzf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&private)
            .stdin(Stdio::null())
            .status();
        if !matches!(tar, Ok(s) if s.success()) {
            if !existed {
                let _ = std::fs::remove_dir_all(&private);
            }
            self.err("Creation of container private area failed");
            return Err(VZ_FS_NEW_VE_PRVT);
        }
        if let Err(e) = std::fs::create_dir_all(&root) {
            let m = format!("Can't create mount point {root}: {e}");
            self.err(&m);
            return Err(VZ_FS_MPOINTCREATE);
        }
        let sample_name = opts
            .value("config")
            .or(self.global.get("CONFIGFILE"))
            .unwrap_or("basic")
            .to_string();
        let sample = self.script(&format!("ve-{sample_name}.conf-sample"));
        let base = std::fs::read(&sample).unwrap_or_default();
        let mut changes = vec![
            ("VE_ROOT".to_string(), root_raw.clone()),
            ("VE_PRIVATE".to_string(), private_raw.clone()),
            ("OSTEMPLATE".to_string(), ostemplate.clone()),
            ("ORIGIN_SAMPLE".to_string(), sample_name),
        ];
        if let Some(h) = opts.value("hostname") {
            changes.push(("HOSTNAME".into(), h.to_string()));
        }
        // every --ipadd, space-separated, as vzctl writes IP_ADDRESS
        let ips: Vec<&str> = opts.values("ipadd");
        if !ips.is_empty() {
            changes.push(("IP_ADDRESS".into(), ips.join(" ")));
        }
        let text = conf::rewrite(&base, &changes);
        if let Err(e) = conf::write_atomic(&self.conffile, &text) {
            let m = format!("Unable to write {}: {e}", self.conffile.display());
            self.err(&m);
            return Err(VZ_SYSTEM_ERROR);
        }
        self.info("Performing postcreate actions");
        self.info(&format!(
            "CT configuration saved to {}",
            self.conffile.display()
        ));
        self.info("Container private area was created");
        Ok(())
    }

    fn destroy(&mut self) -> R {
        self.need_conf()?;
        let (root, private) = self.need_paths()?;
        if workload_pid(&self.veid).is_some() {
            self.err("Container is currently running. Stop it first.");
            return Err(VZ_VE_RUNNING);
        }
        if self.is_mounted(&root) {
            self.err("Container is currently mounted (umount first)");
            return Err(VZ_FS_MOUNTED);
        }
        self.info(&format!("Destroying container private area: {private}"));
        if Path::new(&private).exists() {
            if let Err(e) = std::fs::remove_dir_all(&private) {
                let m = format!("Unable to remove private area {private}: {e}");
                self.err(&m);
                return Err(VZ_FS_DEL_PRVT);
            }
        }
        let _ = std::fs::remove_dir(&root);
        // The default dump file belongs to the container too.
        let dump = Path::new(self.global.get("DUMPDIR").unwrap_or("/vz/dump"))
            .join(format!("Dump.{}", self.veid));
        let _ = std::fs::remove_file(dump);
        let mut dest = self.conffile.clone().into_os_string();
        dest.push(".destroyed");
        let _ = std::fs::rename(&self.conffile, dest);
        self.info("Container private area was destroyed");
        Ok(())
    }

    fn suspend(&mut self, pid: i32) -> R {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR1,
        );
        if wait_frozen(&self.veid, pid, true, Duration::from_secs(10)) {
            Ok(())
        } else {
            self.err("Unable to suspend container: the workload did not freeze");
            Err(VZ_CHKPNT_ERROR)
        }
    }

    fn resume(&mut self, pid: i32, code: i32) -> R {
        if frozen_seq(&self.veid).is_none() {
            self.err("Unable to resume: container is not suspended");
            return Err(code);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGCONT,
        );
        if wait_frozen(&self.veid, pid, false, Duration::from_secs(10)) {
            Ok(())
        } else {
            self.err("Unable to resume container");
            Err(code)
        }
    }

    fn dump(&mut self, dumpfile: &Path) -> R {
        let Some(seq) = frozen_seq(&self.veid) else {
            self.err("Unable to dump: container is not suspended");
            return Err(VZ_CHKPNT_ERROR);
        };
        let text = format!("VZFS-LAB-DUMP 1\nCTID={}\nSEQ={seq}\n", self.veid);
        if let Some(d) = dumpfile.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let size = match self.conf.get(DUMP_SIZE_KEY).map(parse_size) {
            None => 0,
            Some(Some(n)) => n,
            Some(None) => {
                let m = format!("Bad {DUMP_SIZE_KEY} value (want BYTES[K|M|G])");
                self.err(&m);
                return Err(VZ_CHKPNT_ERROR);
            }
        };
        if let Err(e) = write_dump(dumpfile, text.as_bytes(), size) {
            let m = format!("Unable to write dump file {}: {e}", dumpfile.display());
            self.err(&m);
            return Err(VZ_CHKPNT_ERROR);
        }
        Ok(())
    }

    /// Kills the (suspended) workload. Only a full `chkpnt` unmounts
    /// afterwards (vzctl 4.x `vps_chkpnt`: `if (cmd == CMD_CHKPNT)
    /// vps_umount(...)`, its result ignored); the staged `--kill` of chkpnt
    /// and restore leaves the container mounted.
    fn kill_stage(&mut self, pid: i32, code: i32) -> R {
        kill9(pid);
        if !wait_gone(pid, Duration::from_secs(5)) {
            self.err("Unable to kill container");
            return Err(code);
        }
        let _ = std::fs::remove_file(workload::pid_file(&self.veid));
        let _ = std::fs::remove_file(workload::frozen_file(&self.veid));
        Ok(())
    }

    fn chkpnt(&mut self, opts: &Opts) -> R {
        self.need_conf()?;
        self.need_paths()?;
        let Some(pid) = workload_pid(&self.veid) else {
            self.err("Unable to setup checkpoint: container is not running");
            return Err(VZ_VE_NOT_RUNNING);
        };
        let dumpfile = self.dumpfile(opts);
        let staged = ["suspend", "dump", "kill", "resume"]
            .iter()
            .any(|s| opts.flag(s));
        if !staged {
            self.info("Setting up checkpoint...");
            self.info("\tsuspend...");
            self.suspend(pid)?;
            self.info("\tdump...");
            if let Err(c) = self.dump(&dumpfile) {
                let _ = self.resume(pid, VZ_CHKPNT_ERROR);
                self.err("Checkpointing failed");
                return Err(c);
            }
            self.info("\tkill...");
            self.kill_stage(pid, VZ_CHKPNT_ERROR)?;
            let _ = self.umount_cycle();
            self.info("Checkpointing completed successfully");
            return Ok(());
        }
        if opts.flag("suspend") {
            self.info("\tsuspend...");
            self.suspend(pid)?;
        }
        if opts.flag("dump") {
            if opts.value("dumpfile").is_none() {
                self.err("Error: dumpfile is not specified.");
                return Err(VZ_CHKPNT_ERROR);
            }
            self.info("\tdump...");
            self.dump(&dumpfile)?;
        }
        if opts.flag("kill") {
            self.info("\tkill...");
            self.kill_stage(pid, VZ_CHKPNT_ERROR)?;
        }
        if opts.flag("resume") {
            self.info("\tresume...");
            self.resume(pid, VZ_CHKPNT_ERROR)?;
        }
        Ok(())
    }

    fn undump(&mut self, dumpfile: &Path) -> R {
        let text = match read_dump(dumpfile) {
            Ok(t) => t,
            Err(e) => {
                let m = format!("Unable to open dump file {}: {e}", dumpfile.display());
                self.err(&m);
                return Err(VZ_RESTORE_ERROR);
            }
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        if !text.starts_with("VZFS-LAB-DUMP 1\n") {
            let m = format!(
                "Unable to restore: {} is not a dump file",
                dumpfile.display()
            );
            self.err(&m);
            return Err(VZ_RESTORE_ERROR);
        }
        if field("CTID").as_deref() != Some(self.veid.as_str()) {
            let m = format!(
                "Unable to restore: dump file {} belongs to CT {}",
                dumpfile.display(),
                field("CTID").unwrap_or_default()
            );
            self.err(&m);
            return Err(VZ_RESTORE_ERROR);
        }
        let Some(seq) = field("SEQ").and_then(|s| s.parse::<u64>().ok()) else {
            self.err("Unable to restore: corrupt dump file");
            return Err(VZ_RESTORE_ERROR);
        };
        let (root, _) = self.need_paths()?;
        if !self.is_mounted(&root) {
            self.info("Starting container ...");
            self.mount_cycle()?;
        }
        self.info("\tundump...");
        let pid = self
            .spawn_workload(&root, Some(seq))
            .map_err(|_| VZ_RESTORE_ERROR)?;
        if !wait_frozen(&self.veid, pid, true, Duration::from_secs(10)) {
            kill9(pid);
            self.err("Unable to undump: the workload did not come up");
            return Err(VZ_RESTORE_ERROR);
        }
        Ok(())
    }

    fn restore(&mut self, opts: &Opts) -> R {
        self.need_conf()?;
        self.need_paths()?;
        let dumpfile = self.dumpfile(opts);
        let staged = ["undump", "resume", "kill"].iter().any(|s| opts.flag(s));
        if !staged || opts.flag("undump") {
            if workload_pid(&self.veid).is_some() {
                self.err("Container is already running");
                return Err(VZ_VE_RUNNING);
            }
            if staged && opts.value("dumpfile").is_none() {
                self.err("Error: dumpfile is not specified");
                return Err(VZ_RESTORE_ERROR);
            }
            if !staged {
                self.info("Restoring container ...");
            }
            self.undump(&dumpfile)?;
            if !staged {
                let pid = workload_pid(&self.veid).ok_or(VZ_RESTORE_ERROR)?;
                self.info("\tresume...");
                self.resume(pid, VZ_RESTORE_ERROR)?;
                self.info("Container start in progress...");
                self.info("Restoring completed successfully");
                return Ok(());
            }
        }
        if opts.flag("kill") {
            let Some(pid) = workload_pid(&self.veid) else {
                self.err("Unable to kill: container is not running");
                return Err(VZ_VE_NOT_RUNNING);
            };
            self.info("\tkill...");
            self.kill_stage(pid, VZ_RESTORE_ERROR)?;
        }
        if opts.flag("resume") {
            let Some(pid) = workload_pid(&self.veid) else {
                self.err("Unable to resume: container is not running");
                return Err(VZ_VE_NOT_RUNNING);
            };
            self.info("\tresume...");
            self.resume(pid, VZ_RESTORE_ERROR)?;
        }
        Ok(())
    }
}

/// Lab-only config key: the size of the container's memory image, which
/// `chkpnt` writes into the dump file (after the header) and `restore`
/// reads back, so an online migration's freeze can be measured with a
/// realistic dump (`16M`, `512M`; default: the header only).
pub const DUMP_SIZE_KEY: &str = "VZFS_LAB_DUMP_SIZE";

/// `123`, `16K`, `16M`, `1G` -> bytes.
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 1u64 << 10),
        'm' | 'M' => (&v[..v.len() - 1], 1 << 20),
        'g' | 'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Write the dump as vzctl does (the file opened with `O_TRUNC`, written,
/// closed; no fsync: the data reaches the disk with the page cache, or when
/// its filesystem is unmounted): `header`, then the memory image up to
/// `size` bytes in all (not zeros, so that rsync's `--sparse` cannot skip
/// it).
fn write_dump(path: &Path, header: &[u8], size: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(header)?;
    let mut left = size.saturating_sub(header.len() as u64);
    let mut block = vec![0u8; 1 << 20];
    let mut x: u32 = 0x9e37_79b9;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = (x as u8) | 1;
    }
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Read a dump: the whole file (as restore reads the memory image), the
/// header lines returned.
fn read_dump(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut head = vec![0u8; 4096];
    let mut got = 0;
    while got < head.len() {
        let n = f.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    head.truncate(got);
    let mut sink = vec![0u8; 1 << 20];
    while f.read(&mut sink)? > 0 {}
    let end = head
        .windows(1)
        .position(|w| w[0] != b'\n' && !w[0].is_ascii_graphic() && w[0] != b' ')
        .unwrap_or(head.len());
    Ok(String::from_utf8_lossy(&head[..end]).into_owned())
}

fn proc_state(pid: i32) -> Option<char> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    st.rsplit(')').next()?.trim_start().chars().next()
}

/// PID of the live workload of `veid`, if the container is running.
pub fn workload_pid(veid: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(workload::pid_file(veid))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|&c| c == 0).collect();
    let ours = args.get(1) == Some(&workload::SUBCOMMAND.as_bytes())
        && args.get(2) == Some(&veid.as_bytes());
    match proc_state(pid) {
        Some('Z') | Some('X') | None => None,
        _ if ours => Some(pid),
        _ => None,
    }
}

fn frozen_seq(veid: &str) -> Option<u64> {
    std::fs::read_to_string(workload::frozen_file(veid))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_frozen(veid: &str, pid: i32, frozen: bool, t: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < t {
        let st = proc_state(pid);
        if st.is_none() || st == Some('Z') {
            return false;
        }
        let is = frozen_seq(veid).is_some() && st == Some('T');
        if is == frozen {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn wait_gone(pid: i32, t: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < t {
        match proc_state(pid) {
            None | Some('Z') | Some('X') => return true,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    false
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}
