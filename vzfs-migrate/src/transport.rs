//! Running commands, locally and on the target over ssh, and rsync.
//!
//! One multiplexed ssh connection (ControlMaster in a private directory
//! `/run/vzfs-migrate/ssh-CTID-XXXXXX` holding the socket and the owner's
//! pid, ControlPersist bounded to [`CONTROL_PERSIST_SECS`] after the last
//! client left, where the local ssh knows it: OpenSSH 5.6+, found by `ssh -V`;
//! OpenSSH 5.3 of CentOS 6 refuses the option, and its master lives until
//! `-O exit`) serves the whole run and is closed on every exit path
//! (`ssh -O exit`, also from `Drop`); after a kill -9 [`reap_stale_masters`]
//! closes what the dead run left; every remote argument is
//! shell-quoted with `shlex`; every argv is logged (with `-v`) before it
//! runs; a failed command's error keeps the tail of its stderr; ssh's exit
//! 255 is a lost link naming the host. Children run in their own process
//! group so a terminal's Ctrl-C reaches only us; [`crate::signals`] decides
//! whether to stop the running child.

use crate::error::{Error, Kind, Result};
use crate::signals;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How much stderr an error keeps.
const TAIL_BYTES: usize = 1500;

static VERBOSE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

pub fn set_verbose(v: u8) {
    VERBOSE.store(v, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbose() -> u8 {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

static PROGRAM: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The name messages start with (`vzfs-migrate` unless set once by the
/// binary, e.g. `vzfs-create`).
pub fn set_program(name: &'static str) {
    let _ = PROGRAM.set(name);
}

pub fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("vzfs-migrate")
}

/// What a run of the program is called in messages ("the migration").
pub fn run_noun() -> &'static str {
    if program() == "vzfs-migrate" {
        "the migration"
    } else {
        "the run"
    }
}

thread_local! {
    /// `CT 101`: this thread runs one migration of several
    /// ([`crate::batch`]); its lines are named so and shown only with `-v`.
    static BATCH_PREFIX: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// This thread's migration is one of several: its lines (steps, undos)
/// start with `prefix` and are shown only with `-v` (the batch prints one
/// line per container as it starts and ends instead). `None`: alone.
pub fn set_batch_prefix(prefix: Option<String>) {
    BATCH_PREFIX.with(|p| *p.borrow_mut() = prefix);
}

/// A line `vzfs-migrate: MSG` on stderr; a write error (the terminal
/// went away) is ignored rather than a panic mid-migration.
pub fn say(msg: &str) {
    use std::io::Write;
    let prefix = BATCH_PREFIX.with(|p| p.borrow().clone());
    match prefix {
        None => {
            let _ = writeln!(std::io::stderr(), "{}: {msg}", program());
        }
        Some(p) if verbose() >= 1 => {
            let _ = writeln!(std::io::stderr(), "{}: {p}: {msg}", program());
        }
        Some(_) => {}
    }
}

/// A line `vzfs-migrate: MSG` on stderr, whatever [`set_batch_prefix`] says.
pub fn say_always(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}: {msg}", program());
}

/// Log a line on stderr with `-v`.
pub fn log(msg: &str) {
    if verbose() >= 1 {
        say(msg);
    }
}

pub fn tail(s: &str) -> String {
    let t = s.trim_end();
    if t.len() <= TAIL_BYTES {
        return t.to_string();
    }
    let mut start = t.len() - TAIL_BYTES;
    while !t.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &t[start..])
}

#[derive(Debug, Clone)]
pub struct Output {
    pub host: String,
    pub argv: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        }
    }

    /// An error unless the command succeeded.
    pub fn check(self, kind: Kind) -> Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            Err(self.into_error(kind))
        }
    }

    pub fn into_error(self, kind: Kind) -> Error {
        Error::Command {
            kind,
            status: self.status_text(),
            host: self.host,
            argv: self.argv,
            stderr: tail(&self.stderr),
        }
    }
}

thread_local! {
    /// The container whose migration this thread runs, if any: its running
    /// child is recorded in [`child_file`].
    static CHILD_TAG: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// This thread runs the migration of `ctid` (None: no longer): the local
/// child each step runs (vzctl, rsync) is recorded while it runs, so that
/// after a kill -9 of vzfs-migrate (the child goes on, it leads its own
/// process group) `--recover` waits for it ([`wait_orphaned_child`]).
pub fn set_child_tag(ctid: Option<u32>) {
    CHILD_TAG.with(|t| t.set(ctid));
}

/// `/run/vzfs-migrate/child-CTID`: `PID STARTTIME ARGV0` of the running child.
pub fn child_file(ctid: u32) -> PathBuf {
    control_base().join(format!("child-{ctid}"))
}

/// Field 22 of /proc/PID/stat (the start time; tells a reused pid apart).
fn proc_start_time(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.split_whitespace().nth(19).map(str::to_string)
}

/// After a killed run of `ctid`'s migration: wait (up to `limit`) for the
/// step's child it left running, so the undo does not race it. `Err` names
/// the child when it is still running after the limit.
pub fn wait_orphaned_child(ctid: u32, limit: std::time::Duration) -> Result<()> {
    let f = child_file(ctid);
    let Ok(text) = std::fs::read_to_string(&f) else {
        return Ok(());
    };
    let mut it = text.split_whitespace();
    let pid: u32 = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let start = it.next().unwrap_or("").to_string();
    let what = it.collect::<Vec<_>>().join(" ");
    let alive = || pid > 0 && proc_start_time(pid).as_deref() == Some(start.as_str());
    if alive() {
        say(&format!(
            "CT {ctid}: waiting for `{what}` (pid {pid}), left running by the killed run, to end before the recovery"
        ));
        let t = std::time::Instant::now();
        while alive() {
            if t.elapsed() > limit {
                return Err(Error::check(
                    Kind::Locked,
                    format!("CT {ctid}: pid {pid} (`{what}`)"),
                    format!(
                        "a step of the killed run is still running after {} s; wait for it or end it, then run `vzfs-migrate --recover {ctid}` again",
                        limit.as_secs()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_file(&f);
    Ok(())
}

/// Run `argv` locally; `label` names the host in errors. stdout is captured
/// unless `inherit_stdout`.
pub fn run_local(label: &str, argv: &[String], inherit_stdout: bool) -> Result<Output> {
    run_local_input(label, argv, inherit_stdout, None)
}

/// [`run_local`] with `input` written to the child's stdin.
pub fn run_local_input(
    label: &str,
    argv: &[String],
    inherit_stdout: bool,
    input: Option<&[u8]>,
) -> Result<Output> {
    let shown = shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
    log(&format!("{label}: exec {shown}"));
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .process_group(0);
    cmd.stdout(if inherit_stdout {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    let mut child = cmd.spawn().map_err(|e| Error::Command {
        kind: Kind::System,
        host: label.to_string(),
        argv: shown.clone(),
        status: format!("cannot execute: {e}"),
        stderr: String::new(),
    })?;
    let _guard = signals::ChildGuard::new(child.id() as i32);
    let tagged = CHILD_TAG.with(std::cell::Cell::get).map(|ct| {
        let f = child_file(ct);
        let _ = std::fs::create_dir_all(control_base());
        let _ = std::fs::write(
            &f,
            format!(
                "{} {} {}\n",
                child.id(),
                proc_start_time(child.id()).unwrap_or_default(),
                shown
            ),
        );
        f
    });
    let in_thread = match (input, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let mut stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take().expect("stderr piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = stdout_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let mut err = Vec::new();
    let _ = stderr_pipe.read_to_end(&mut err);
    let status = child.wait().map_err(|e| Error::Command {
        kind: Kind::System,
        host: label.to_string(),
        argv: shown.clone(),
        status: format!("cannot wait: {e}"),
        stderr: String::new(),
    })?;
    if let Some(f) = tagged {
        let _ = std::fs::remove_file(f);
    }
    let out = out_thread.join().unwrap_or_default();
    if let Some(t) = in_thread {
        let _ = t.join();
    }
    let o = Output {
        host: label.to_string(),
        argv: shown,
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    };
    if verbose() >= 2 && !o.success() {
        log(&format!("{label}: {} -> {}", o.argv, o.status_text()));
    }
    Ok(o)
}

/// One multiplexed ssh connection to the target.
#[derive(Debug)]
pub struct Ssh {
    /// The target as the user gave it (`[user@]host`), for messages.
    pub host: String,
    dest: String,
    ctl_dir: PathBuf,
    extra: Vec<String>,
    closed: bool,
}

/// How long the master connection outlives its last client. A run always
/// keeps one client (the helper session) connected, so this only bounds
/// the life of a master whose owner was killed (kill -9: no `Drop`).
pub const CONTROL_PERSIST_SECS: u32 = 30;

/// Where the control directories live: node-local runtime state.
pub fn control_base() -> PathBuf {
    let run = Path::new("/run");
    if run.is_dir() {
        run.join("vzfs-migrate")
    } else {
        std::env::temp_dir().join("vzfs-migrate")
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks the pid.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Close the ssh master connections a killed run for container `tag` left
/// (their owner pid is dead) and remove their directories. Returns what
/// was closed, for messages.
pub fn reap_stale_masters(tag: &str) -> Vec<String> {
    let base = control_base();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&base) else {
        return out;
    };
    let prefix = format!("ssh-{tag}-");
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) {
            continue;
        }
        let dir = e.path();
        let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
        let mut lines = owner.lines();
        let pid: i32 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        let dest = lines.next().unwrap_or("").trim().to_string();
        if pid_alive(pid) {
            continue;
        }
        let cm = dir.join("cm");
        if cm.exists() && !dest.is_empty() {
            let _ = Command::new("ssh")
                .args(["-o", &format!("ControlPath={}", cm.display())])
                .args(["-O", "exit", "--", &dest])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&dir);
        out.push(format!(
            "closed the ssh master connection to {} left by a killed run (pid {pid}, {})",
            if dest.is_empty() { "?" } else { dest.as_str() },
            dir.display()
        ));
    }
    out
}

/// The local ssh's version (`ssh -V`, asked once per run); None when it
/// cannot be read (then the current options are used).
pub fn local_ssh_version() -> Option<vzfs::platform::Version> {
    static V: std::sync::OnceLock<Option<vzfs::platform::Version>> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        let v = vzfs::platform::tool_output(&["ssh", "-V"])
            .and_then(|t| vzfs::platform::parse_openssh(&t));
        log(&format!(
            "local ssh: OpenSSH {}",
            v.map_or("of unknown version".into(), |v| v.to_string())
        ));
        v
    })
}

/// The local rsync's version (`rsync --version`, asked once per run).
pub fn local_rsync_version() -> Option<vzfs::platform::Version> {
    static V: std::sync::OnceLock<Option<vzfs::platform::Version>> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        let v = vzfs::platform::tool_output(&["rsync", "--version"])
            .and_then(|t| vzfs::platform::parse_rsync(&t));
        log(&format!(
            "local rsync: {}",
            v.map_or("of unknown version".into(), |v| v.to_string())
        ));
        v
    })
}

impl Ssh {
    /// Open the master connection (BatchMode, bounded ControlPersist).
    /// `ssh_opts` is stock vzmigrate's `--ssh=OPTS` string.
    pub fn connect(host: &str, ssh_opts: Option<&str>) -> Result<Ssh> {
        Self::connect_for(host, ssh_opts, "any")
    }

    /// [`Ssh::connect`] for container `tag` (its control directory is
    /// named after it, for [`reap_stale_masters`]).
    pub fn connect_for(host: &str, ssh_opts: Option<&str>, tag: &str) -> Result<Ssh> {
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(Error::Usage(format!("bad target host {host:?}")));
        }
        let extra = match ssh_opts {
            None => Vec::new(),
            Some(o) => shlex::split(o)
                .ok_or_else(|| Error::Usage(format!("cannot parse --ssh options {o:?}")))?,
        };
        let dest = if host.contains('@') {
            host.to_string()
        } else {
            format!("root@{host}")
        };
        let base = control_base();
        std::fs::create_dir_all(&base)
            .map_err(|e| Error::io(Kind::System, "cannot create", &base, e))?;
        let tmpl = base.join(format!("ssh-{tag}-XXXXXX"));
        let ctl_dir = nix::unistd::mkdtemp(&tmpl).map_err(|e| {
            Error::io(
                Kind::System,
                "cannot create ssh control directory in",
                &base,
                std::io::Error::from(e),
            )
        })?;
        let owner = ctl_dir.join("owner");
        std::fs::write(&owner, format!("{}\n{dest}\n", std::process::id()))
            .map_err(|e| Error::io(Kind::System, "cannot write", &owner, e))?;
        let ssh = Ssh {
            host: host.to_string(),
            dest,
            ctl_dir,
            extra,
            closed: false,
        };
        ssh.start_master()?;
        Ok(ssh)
    }

    fn control_path(&self) -> PathBuf {
        self.ctl_dir.join("cm")
    }

    /// Options every ssh invocation gets (also rsync's `-e`).
    pub fn base_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("ControlPath={}", self.control_path().display()),
            "-o".into(),
            "ServerAliveInterval=5".into(),
            "-o".into(),
            "ServerAliveCountMax=3".into(),
            "-o".into(),
            "ConnectTimeout=15".into(),
        ];
        v.extend(self.extra.iter().cloned());
        // after the user's options, which win (ssh keeps the first value)
        v.extend(["-o".into(), "Compression=no".into()]);
        v
    }

    /// A path for a scratch file of this run in the private control directory.
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.ctl_dir.join(name)
    }

    fn start_master(&self) -> Result<()> {
        let errfile = self.ctl_dir.join("master.err");
        let mut argv = vec!["ssh".to_string(), "-M".into(), "-N".into(), "-f".into()];
        argv.extend(self.base_args());
        if local_ssh_version().map_or(true, |v| v >= vzfs::platform::CONTROL_PERSIST_SSH) {
            argv.extend([
                "-o".into(),
                format!("ControlPersist={CONTROL_PERSIST_SECS}"),
            ]);
        }
        argv.push(self.dest.clone());
        log(&format!("{}: exec {}", self.host, argv.join(" ")));
        // The backgrounded master must not hold our stdout/stderr open.
        let err = std::fs::File::create(&errfile)
            .map_err(|e| Error::io(Kind::System, "cannot create", &errfile, e))?;
        let status = Command::new("ssh")
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .process_group(0)
            .status()
            .map_err(|e| Error::Connect {
                host: self.host.clone(),
                detail: format!("cannot execute ssh: {e}"),
            })?;
        if !status.success() {
            let text = std::fs::read_to_string(&errfile).unwrap_or_default();
            return Err(Error::Connect {
                host: self.host.clone(),
                detail: format!(
                    "ssh {} failed ({}): {}; check that the host is up, sshd runs and root's key is accepted (BatchMode, no password prompts)",
                    self.dest,
                    status,
                    tail(&text).replace('\n', " | ")
                ),
            });
        }
        Ok(())
    }

    /// The ssh command line for rsync's `-e`.
    pub fn rsync_rsh(&self) -> String {
        let mut v = vec!["ssh".to_string()];
        v.extend(self.base_args());
        shlex::try_join(v.iter().map(String::as_str)).expect("no NUL in ssh options")
    }

    /// `user@host` as ssh/rsync want it.
    pub fn dest(&self) -> &str {
        &self.dest
    }

    /// Run `argv` on the target; every argument is shell-quoted. An ssh
    /// failure (exit 255) is a lost link.
    pub fn run(&self, argv: &[String]) -> Result<Output> {
        self.run_input(argv, None)
    }

    /// [`Ssh::run`] with `input` on the remote command's stdin.
    pub fn run_input(&self, argv: &[String], input: Option<&[u8]>) -> Result<Output> {
        let quoted = shlex::try_join(argv.iter().map(String::as_str))
            .map_err(|_| Error::Usage(format!("remote argument with a NUL byte: {argv:?}")))?;
        let mut full = vec!["ssh".to_string()];
        full.extend(self.base_args());
        full.extend([self.dest.clone(), "--".into(), quoted.clone()]);
        let mut o = run_local_input(&self.host, &full, false, input)?;
        if o.code == Some(255) {
            return Err(Error::LinkLost {
                host: self.host.clone(),
                argv: quoted,
                stderr: tail(&o.stderr),
            });
        }
        o.argv = quoted;
        Ok(o)
    }

    /// rsync `src` (local) into `dst` on the target, over this connection.
    pub fn rsync_to(
        &self,
        src: &Path,
        dst: &Path,
        rsync_opts: Option<&str>,
        progress: bool,
        dir: bool,
    ) -> Result<Output> {
        let mut argv: Vec<String> = vec![
            "rsync".into(),
            "-aHAX".into(),
            "--numeric-ids".into(),
            "--sparse".into(),
            "--delete".into(),
            "-s".into(),
        ];
        if progress {
            // --info is rsync 3.1+; 3.0 (CentOS 6) has only per-file --progress
            argv.push(
                if local_rsync_version() >= Some(vzfs::platform::RSYNC_INFO) {
                    "--info=progress2".into()
                } else {
                    "--progress".into()
                },
            );
        }
        if let Some(o) = rsync_opts {
            argv.extend(
                shlex::split(o)
                    .ok_or_else(|| Error::Usage(format!("cannot parse --rsync options {o:?}")))?,
            );
        }
        argv.push("-e".into());
        argv.push(self.rsync_rsh());
        let slash = |p: &Path| {
            let s = p.display().to_string();
            if dir && !s.ends_with('/') {
                format!("{s}/")
            } else {
                s
            }
        };
        argv.push(slash(src));
        argv.push(format!("{}:{}", self.dest, slash(dst)));
        let o = run_local(&self.host, &argv, progress)?;
        match o.code {
            Some(0) => Ok(o),
            // rsync: 255 from the remote shell, 12 protocol stream error
            Some(255) | Some(12) => Err(Error::LinkLost {
                host: self.host.clone(),
                argv: o.argv,
                stderr: tail(&o.stderr),
            }),
            _ => Err(o.into_error(Kind::Copy)),
        }
    }

    /// Close the master connection and remove the control directory.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let _ = Command::new("ssh")
            .args([
                "-o",
                &format!("ControlPath={}", self.control_path().display()),
            ])
            .args(["-O", "exit", "--", &self.dest])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.ctl_dir);
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        // closing an ssh master is not an unmount: safe on every path
        self.close_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_command_output_and_error_tail() {
        let o = run_local(
            "localhost",
            &[
                "sh".into(),
                "-c".into(),
                "echo out; echo bad >&2; exit 3".into(),
            ],
            false,
        )
        .unwrap();
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.code, Some(3));
        let e = o.check(Kind::StopSource).unwrap_err();
        assert_eq!(e.exit_code(), 8);
        assert_eq!(
            e.to_string(),
            "localhost: `sh -c 'echo out; echo bad >&2; exit 3'` failed (exit code 3): bad"
        );
    }

    #[test]
    fn missing_program_is_clear() {
        let e = run_local("localhost", &["/nonexistent/vzctl".into()], false).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/vzctl"), "{e}");
        assert!(e.to_string().contains("cannot execute"), "{e}");
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = "x".repeat(5000) + "END";
        let t = tail(&long);
        assert!(t.ends_with("END"));
        assert!(t.len() < 1600);
    }

    #[test]
    fn dead_host_is_a_connect_error_naming_it() {
        // port 1 on loopback refuses at once
        let e = Ssh::connect("127.0.0.1", Some("-p 1 -o StrictHostKeyChecking=no")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        let s = e.chain();
        assert!(s.starts_with("cannot connect to 127.0.0.1: "), "{s}");
        assert!(s.contains("refused"), "{s}");
    }

    #[test]
    fn bad_host_and_options_are_usage_errors() {
        assert_eq!(
            Ssh::connect("-oProxyCommand=x", None)
                .unwrap_err()
                .exit_code(),
            1
        );
        assert_eq!(
            Ssh::connect("hn2", Some("-o 'unterminated"))
                .unwrap_err()
                .exit_code(),
            1
        );
    }
}
