//! One helper session on the target for the whole run (the wire types are
//! in [`crate::protocol`]; this module never imports [`crate::helper`]): `vzfs-migrate
//! helper serve` started once over the run's multiplexed ssh connection,
//! answering every helper command and every target-side vzctl run over its
//! stdin/stdout. A separate `ssh host cmd` per call costs a new session on
//! the target each time (sshd forks, the login shell starts and reads its rc
//! files: about 140 ms each in the lab); a request on the open session
//! costs one round trip.
//!
//! Wire format, one JSON object per line:
//! - greeting (server -> source, first line, unasked): the `version`
//!   answer, `{"ok":true,"data":{"version":..,"proto":..}}`. An older
//!   helper without `serve` answers `{"ok":false,...}` instead: a clear
//!   version error before anything changes.
//! - request `{"args":["facts","101",...],"input":[bytes]|null}`: a helper
//!   command, answered exactly as `vzfs-migrate helper CMD ...` answers it.
//! - request `{"vzctl":["start","101"]}`: the target's vzctl (the one named
//!   by `serve --vzctl`, nothing else) with these arguments, stdin from
//!   /dev/null; answer `{"ok":true,"data":{"code","signal","stdout","stderr"}}`.
//!
//! The server keeps the request and answer pipes on private descriptors:
//! its fd 0 is /dev/null and its fd 1 is its stderr, so no command or child
//! can read a request or write into an answer. It ends at EOF on stdin.
//!
//! The source side ([`Session`]) is a child `ssh` in its own process group,
//! registered with [`crate::signals`] while a request runs (a signal outside
//! the critical section stops it, as it stops any other child). A session
//! that dies (lost link, signal) fails the request in flight (never retried:
//! the target may have done it) and is started again for the next one.

use crate::error::{Error, Kind, Result};
use crate::protocol::{answer, version_answer, Dispatch, ExecResult, Request, PROTO, VERSION};
use crate::signals;
use crate::transport::{self, Ssh};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use vzfs::config::VzEtc;

fn run_vzctl(vzctl: &str, args: &[String]) -> Result<Value> {
    let o = Command::new(vzctl)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            kind: Kind::System,
            host: "target".into(),
            argv: vzctl.into(),
            status: format!("cannot execute: {e}"),
            stderr: String::new(),
        })?;
    let r = ExecResult {
        code: o.status.code(),
        signal: o.status.signal(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    Ok(serde_json::to_value(r).expect("serializes"))
}

/// `vzfs-migrate helper [--etc DIR] serve [--vzctl PROG]`: the server loop;
/// helper commands go to `dispatch` ([`crate::helper`]'s). Returns the exit
/// code (0 at EOF, 1 when it could not start or write).
pub fn serve(etc: &VzEtc, args: &[String], dispatch: Dispatch<'_>) -> i32 {
    let vzctl = match args {
        [] => "vzctl".to_string(),
        [o, v] if o == "--vzctl" => v.clone(),
        _ => {
            let e = Error::Usage(format!(
                "helper serve [--vzctl PROG]: bad arguments {args:?}"
            ));
            println!("{}", answer(Err(e)));
            return 1;
        }
    };
    // private copies of the pipes; fd 0 <- /dev/null, fd 1 -> stderr
    let fds = (|| -> std::io::Result<(i32, i32)> {
        let chk = |r: libc::c_int| {
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r)
            }
        };
        // SAFETY: plain descriptor calls on this process's own fds 0, 1, 2.
        unsafe {
            let inp = chk(libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3))?;
            let out = chk(libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3))?;
            let null = chk(libc::open(
                c"/dev/null".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            ))?;
            chk(libc::dup2(null, 0))?;
            libc::close(null);
            chk(libc::dup2(2, 1))?;
            Ok((inp, out))
        }
    })();
    let (inp, out) = match fds {
        Ok(f) => f,
        Err(e) => {
            let e = Error::io(
                Kind::System,
                "cannot set up the helper session on",
                "stdin/stdout",
                e,
            );
            println!("{}", answer(Err(e)));
            return 1;
        }
    };
    // SAFETY: both descriptors were just duplicated and are owned here only.
    let (inp, mut out) = unsafe {
        (
            BufReader::new(std::fs::File::from_raw_fd(inp)),
            std::fs::File::from_raw_fd(out),
        )
    };
    let greet = answer(Ok(version_answer()));
    if writeln!(out, "{greet}").and_then(|_| out.flush()).is_err() {
        return 1;
    }
    for line in inp.lines() {
        let Ok(line) = line else { return 1 };
        if line.trim().is_empty() {
            continue;
        }
        let a = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Helper { args, input }) => answer(dispatch(etc, &args, input)),
            Ok(Request::Vzctl { vzctl: a }) => answer(run_vzctl(&vzctl, &a)),
            Err(e) => answer(Err(Error::Usage(format!("helper serve: bad request: {e}")))),
        };
        if writeln!(out, "{a}").and_then(|_| out.flush()).is_err() {
            return 1;
        }
    }
    0
}

/// The source's end of a helper session.
pub struct Session {
    host: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr_path: PathBuf,
}

impl Session {
    /// Start `helper serve` on the target over `ssh` and check its version
    /// (the greeting): nothing else is asked of a target that runs another
    /// version.
    pub fn start(ssh: &Ssh, helper_bin: &str, etc: Option<&str>, vzctl: &str) -> Result<Session> {
        let mut argv = vec![helper_bin.to_string(), "helper".into()];
        if let Some(e) = etc {
            argv.push("--etc".into());
            argv.push(e.into());
        }
        argv.extend(["serve".into(), "--vzctl".into(), vzctl.into()]);
        let quoted = shlex::try_join(argv.iter().map(String::as_str))
            .map_err(|_| Error::Usage(format!("remote argument with a NUL byte: {argv:?}")))?;
        let mut full = vec!["ssh".to_string()];
        full.extend(ssh.base_args());
        full.extend([ssh.dest().to_string(), "--".into(), quoted.clone()]);
        transport::log(&format!(
            "{}: exec {}",
            ssh.host,
            shlex::try_join(full.iter().map(String::as_str)).unwrap_or_default()
        ));
        let stderr_path = ssh.scratch_path(&format!("session-{}.err", std::process::id()));
        let err = std::fs::File::create(&stderr_path)
            .map_err(|e| Error::io(Kind::System, "cannot create", &stderr_path, e))?;
        let mut child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Connect {
                host: ssh.host.clone(),
                detail: format!("cannot execute ssh: {e}"),
            })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut s = Session {
            host: ssh.host.clone(),
            child,
            stdin,
            stdout,
            stderr_path,
        };
        let what = format!("target {}: {quoted}", s.host);
        let greet = {
            let _guard = signals::ChildGuard::new(s.child.id() as i32);
            s.read_line()
        };
        let v = match greet.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(v)) => v,
            _ => {
                let status = s.finish();
                if status == Some(255) {
                    return Err(Error::LinkLost {
                        host: s.host.clone(),
                        argv: quoted,
                        stderr: s.stderr_tail(),
                    });
                }
                return Err(Error::check(
                    Kind::TargetSoftware,
                    what,
                    format!(
                        "no answer from `{helper_bin}` ({}){}; install the same vzfs-migrate ({VERSION}) on {}",
                        status.map(|c| format!("exit code {c}")).unwrap_or_else(|| "killed".into()),
                        s.stderr_tail().lines().last().map(|l| format!(": {l}")).unwrap_or_default(),
                        s.host
                    ),
                ));
            }
        };
        let theirs = v["data"]["version"].as_str().unwrap_or("?");
        let proto = v["data"]["proto"].as_u64().unwrap_or(0);
        transport::log(&format!(
            "{}: session: helper version (greeting): {theirs}, protocol {proto}",
            s.host
        ));
        if v["ok"] != true || theirs != VERSION || proto != PROTO as u64 {
            s.finish();
            return Err(Error::check(
                Kind::TargetSoftware,
                format!("target {}", s.host),
                if v["ok"] == true {
                    format!(
                        "runs vzfs-migrate {theirs} (helper protocol {proto}), this node {VERSION} (protocol {PROTO}); install the same version on both nodes"
                    )
                } else {
                    format!(
                        "runs another vzfs-migrate (its helper has no session: {}), this node {VERSION} (protocol {PROTO}); install the same version on both nodes",
                        v["error"].as_str().unwrap_or("?")
                    )
                },
            ));
        }
        Ok(s)
    }

    fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => Some(line),
            _ => None,
        }
    }

    fn stderr_tail(&self) -> String {
        transport::tail(&std::fs::read_to_string(&self.stderr_path).unwrap_or_default())
    }

    /// Close stdin (the server ends at EOF) and reap the ssh child, killing
    /// it if it does not exit within 5 s. Its exit code, if it exited.
    fn finish(&mut self) -> Option<i32> {
        drop(self.stdin.take());
        let t = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return st.code(),
                Ok(None) if t.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }

    /// One request and its answer line. `Err(stderr tail)`: the session
    /// died (it must not be used again).
    fn request(&mut self, req: &Request) -> std::result::Result<Value, String> {
        let line = serde_json::to_string(req).expect("request serializes");
        let _guard = signals::ChildGuard::new(self.child.id() as i32);
        let sent = match self.stdin.as_mut() {
            Some(w) => writeln!(w, "{line}").and_then(|_| w.flush()).is_ok(),
            None => false,
        };
        let got = if sent { self.read_line() } else { None };
        match got.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(v)) => Ok(v),
            _ => {
                drop(_guard);
                self.finish();
                Err(self.stderr_tail())
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// The run's session, started on first use and again after it died.
#[derive(Default)]
pub struct Sessions(std::sync::Mutex<Option<Session>>);

impl Sessions {
    pub fn set(&self, s: Session) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    /// Close the session (before the ssh master goes).
    pub fn close(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Send `req` (shown as `shown` in errors), starting the session with
    /// `start` if there is none. A lost session is a lost link naming the
    /// host and the request.
    fn send(
        &self,
        host: &str,
        shown: &str,
        req: &Request,
        start: impl FnOnce() -> Result<Session>,
    ) -> Result<Value> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(start()?);
        }
        transport::log(&format!("{host}: session: {shown}"));
        match g.as_mut().expect("just set").request(req) {
            Ok(v) => Ok(v),
            Err(stderr) => {
                *g = None;
                Err(Error::LinkLost {
                    host: host.to_string(),
                    argv: shown.to_string(),
                    stderr,
                })
            }
        }
    }

    /// A helper command over the session: its answer line.
    pub fn helper(
        &self,
        host: &str,
        args: &[&str],
        input: Option<&[u8]>,
        start: impl FnOnce() -> Result<Session>,
    ) -> Result<Value> {
        let req = Request::Helper {
            args: args.iter().map(|s| s.to_string()).collect(),
            input: input.map(<[u8]>::to_vec),
        };
        let shown = format!(
            "helper {}",
            shlex::try_join(args.iter().copied()).unwrap_or_default()
        );
        self.send(host, &shown, &req, start)
    }

    /// The target's vzctl with `args` over the session.
    pub fn vzctl(
        &self,
        host: &str,
        shown: &str,
        args: &[String],
        start: impl FnOnce() -> Result<Session>,
    ) -> Result<ExecResult> {
        let req = Request::Vzctl {
            vzctl: args.to_vec(),
        };
        let v = self.send(host, shown, &req, start)?;
        if v["ok"] != true {
            return Err(Error::check(
                Kind::System,
                format!("target {host}: {shown}"),
                v["error"].as_str().unwrap_or("failed").to_string(),
            ));
        }
        serde_json::from_value(v["data"].clone()).map_err(|e| {
            Error::check(
                Kind::System,
                format!("target {host}: {shown}"),
                e.to_string(),
            )
        })
    }
}
