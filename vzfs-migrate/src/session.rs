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
//! Requests carry an `"id"` (a number) and may overlap: the server answers
//! each on its own thread, the answer line carrying the request's `id`, in
//! the order they finish. Several migrations of one run (`--evacuate`,
//! several CTIDs: [`crate::batch`]) share the one session of their target
//! this way; a request without an `id` is answered in turn, before the
//! next line is read. At EOF the server waits for the requests in flight.
//!
//! The source side ([`Session`]) is a child `ssh` in its own process group
//! and a reader thread that hands every answer to the request waiting for
//! its `id`. A request in flight is waited for also after a signal (the
//! engine acts on the signal at the next step boundary; stopping the shared
//! session would fail the other migrations' requests too). A session that
//! dies (lost link) fails every request in flight (never retried: the
//! target may have done it) and is started again for the next one.

use crate::error::{Error, Kind, Result};
use crate::protocol::{answer, version_answer, Dispatch, ExecResult, Request, PROTO, VERSION};
use crate::signals;
use crate::transport::{self, Ssh};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
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
    let out = Mutex::new(out);
    let failed = AtomicBool::new(false);
    let write = |a: &Value| {
        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
        if writeln!(o, "{a}").and_then(|_| o.flush()).is_err() {
            failed.store(true, Ordering::SeqCst);
        }
    };
    let work = |req: std::result::Result<Request, serde_json::Error>| match req {
        Ok(Request::Helper { args, input }) => answer(dispatch(etc, &args, input)),
        Ok(Request::Vzctl { vzctl: a }) => answer(run_vzctl(&vzctl, &a)),
        Err(e) => answer(Err(Error::Usage(format!("helper serve: bad request: {e}")))),
    };
    std::thread::scope(|sc| {
        for line in inp.lines() {
            let Ok(line) = line else {
                failed.store(true, Ordering::SeqCst);
                return;
            };
            if line.trim().is_empty() {
                continue;
            }
            let (id, req) = match serde_json::from_str::<Value>(&line) {
                Ok(mut v) => {
                    let id = v.as_object_mut().and_then(|o| o.remove("id"));
                    (id, serde_json::from_value::<Request>(v))
                }
                Err(e) => (None, Err(e)),
            };
            match id {
                Some(id) => {
                    let (work, write) = (&work, &write);
                    sc.spawn(move || {
                        let mut a = work(req);
                        a["id"] = id;
                        write(&a);
                    });
                }
                None => write(&work(req)),
            }
            if failed.load(Ordering::SeqCst) {
                return;
            }
        }
    });
    i32::from(failed.load(Ordering::SeqCst))
}

/// The requests waiting for their answers, by id.
#[derive(Default)]
struct Waiting {
    map: HashMap<u64, mpsc::Sender<Value>>,
    /// The session ended (EOF, lost link): no answer comes any more.
    dead: bool,
}

/// The source's end of a helper session; requests from several threads
/// may be in flight at once.
pub struct Session {
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    waiting: Arc<Mutex<Waiting>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr_path: PathBuf,
    next_id: AtomicU64,
}

fn read_line(r: &mut BufReader<ChildStdout>) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(n) if n > 0 && line.ends_with('\n') => Some(line),
        _ => None,
    }
}

/// Close stdin (the server ends at EOF) and reap the ssh child, killing
/// it if it does not exit within 5 s. Its exit code, if it exited.
fn finish_child(child: &mut Child, stdin: &mut Option<ChildStdin>) -> Option<i32> {
    drop(stdin.take());
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.code(),
            Ok(None) if t.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let stderr_path = ssh.scratch_path(&format!(
            "session-{}-{}.err",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
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
        let mut stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let host = ssh.host.clone();
        let tail_of =
            |p: &PathBuf| transport::tail(&std::fs::read_to_string(p).unwrap_or_default());
        let what = format!("target {host}: {quoted}");
        let greet = {
            let _guard = signals::ChildGuard::new(child.id() as i32);
            read_line(&mut stdout)
        };
        let v = match greet.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(v)) => v,
            _ => {
                let status = finish_child(&mut child, &mut stdin);
                let tail = tail_of(&stderr_path);
                let _ = std::fs::remove_file(&stderr_path);
                if status == Some(255) {
                    return Err(Error::LinkLost {
                        host,
                        argv: quoted,
                        stderr: tail,
                    });
                }
                return Err(Error::check(
                    Kind::TargetSoftware,
                    what,
                    format!(
                        "no answer from `{helper_bin}` ({}){}; install the same vzfs-migrate ({VERSION}) on {host}",
                        status.map(|c| format!("exit code {c}")).unwrap_or_else(|| "killed".into()),
                        tail.lines().last().map(|l| format!(": {l}")).unwrap_or_default(),
                    ),
                ));
            }
        };
        let theirs = v["data"]["version"].as_str().unwrap_or("?");
        let proto = v["data"]["proto"].as_u64().unwrap_or(0);
        transport::log(&format!(
            "{host}: session: helper version (greeting): {theirs}, protocol {proto}"
        ));
        if v["ok"] != true || theirs != VERSION || proto != PROTO as u64 {
            finish_child(&mut child, &mut stdin);
            let _ = std::fs::remove_file(&stderr_path);
            return Err(Error::check(
                Kind::TargetSoftware,
                format!("target {host}"),
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
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let w = Arc::clone(&waiting);
        let reader = std::thread::spawn(move || {
            while let Some(line) = read_line(&mut stdout) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    break;
                };
                let Some(id) = v["id"].as_u64() else { break };
                if let Some(tx) = lock(&w).map.remove(&id) {
                    let _ = tx.send(v);
                }
            }
            let mut g = lock(&w);
            g.dead = true;
            // the waiting requests see their sender dropped
            g.map.clear();
        });
        Ok(Session {
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            waiting,
            reader: Some(reader),
            stderr_path,
            next_id: AtomicU64::new(1),
        })
    }

    fn stderr_tail(&self) -> String {
        transport::tail(&std::fs::read_to_string(&self.stderr_path).unwrap_or_default())
    }

    /// One request and its answer line. `Err(stderr tail)`: the session
    /// died (it must not be used again).
    fn request(&self, req: &Request) -> std::result::Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut line = serde_json::to_value(req).expect("request serializes");
        line["id"] = id.into();
        let (tx, rx) = mpsc::channel();
        {
            let mut w = lock(&self.waiting);
            if w.dead {
                return Err(self.stderr_tail());
            }
            w.map.insert(id, tx);
        }
        let sent = match lock(&self.stdin).as_mut() {
            Some(w) => writeln!(w, "{line}").and_then(|_| w.flush()).is_ok(),
            None => false,
        };
        if !sent {
            lock(&self.waiting).map.remove(&id);
            return Err(self.stderr_tail());
        }
        rx.recv().map_err(|_| self.stderr_tail())
    }

    /// Whether the session ended (its requests fail).
    fn dead(&self) -> bool {
        lock(&self.waiting).dead
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        {
            let mut child = lock(&self.child);
            let mut stdin = lock(&self.stdin);
            finish_child(&mut child, &mut stdin);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// The run's session to one target, started on first use and again after
/// it died; shared by every migration to that target.
#[derive(Default)]
pub struct Sessions(Mutex<Option<Arc<Session>>>);

impl Sessions {
    pub fn set(&self, s: Session) {
        *lock(&self.0) = Some(Arc::new(s));
    }

    /// Close the session (before the ssh master goes).
    pub fn close(&self) {
        lock(&self.0).take();
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
        let s = {
            let mut g = lock(&self.0);
            if g.as_ref().is_some_and(|s| s.dead()) {
                *g = None;
            }
            if g.is_none() {
                *g = Some(Arc::new(start()?));
            }
            Arc::clone(g.as_ref().expect("just set"))
        };
        transport::log(&format!("{host}: session: {shown}"));
        match s.request(req) {
            Ok(v) => Ok(v),
            Err(stderr) => {
                let mut g = lock(&self.0);
                if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, &s)) {
                    *g = None;
                }
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
