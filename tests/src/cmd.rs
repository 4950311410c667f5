//! Running commands: on the machine itself (for loop devices, netns plumbing)
//! and inside a lab host (through `nsenter`). Owns [`Output`], the captured
//! result of one command, and the shell quoting of argv for logs and ssh.

use crate::error::{LabError, Result};
use std::ffi::OsStr;
use std::process::{Command, ExitStatus, Stdio};

/// The captured result of one command: where it ran, its argv, exit code and output.
#[derive(Debug, Clone)]
pub struct Output {
    /// Where it ran: `machine` or `host a`, `host a -> ssh b`.
    pub place: String,
    /// The argv, shell-quoted, as it would be typed.
    pub cmd: String,
    /// Exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
    /// Signal that killed it, if any.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub(crate) fn from_std(place: &str, cmd: String, out: std::process::Output) -> Output {
        let (code, signal) = split_status(out.status);
        Output {
            place: place.to_string(),
            cmd,
            code,
            signal,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// True when the command exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The exit code; a death by signal N is reported as 128+N, as a shell does.
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    /// Ok(self) when the command succeeded, else an error with the tail of stderr.
    pub fn ok(self) -> Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            Err(LabError::Command {
                place: self.place.clone(),
                cmd: self.cmd.clone(),
                status: self.status_text(),
                stderr_tail: tail(&format!("{}{}", self.stderr, self.stdout), 800),
            })
        }
    }

    /// `exit 3` or `killed by signal 9`.
    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        }
    }

    /// stdout and stderr together (stdout first), for messages and asserts.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] $ {}\n{}\n--- stdout:\n{}--- stderr:\n{}",
            self.place,
            self.cmd,
            self.status_text(),
            self.stdout,
            self.stderr
        )
    }
}

fn split_status(st: ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    (st.code(), st.signal())
}

/// The last `max` bytes of `s` (on a char boundary), trimmed.
pub fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// Shell-quotes an argv for logs and for ssh's remote command line.
pub fn quote_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| {
            shlex::try_quote(a.as_ref())
                .map(|q| q.into_owned())
                .unwrap_or_else(|_| {
                    // shlex refuses NUL bytes; an argv cannot hold them anyway.
                    format!("'{}'", a.as_ref().replace('\0', ""))
                })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The argv of a [`Command`], quoted, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut v: Vec<String> = vec![cmd.get_program().to_string_lossy().into_owned()];
    v.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    quote_argv(&v)
}

/// Runs `cmd` to completion with stdin from /dev/null, capturing its output.
/// Only a failure to start it is an error; check the exit with [`Output::ok`].
pub fn run(place: &str, mut cmd: Command) -> Result<Output> {
    let text = describe(&cmd);
    if std::env::var_os("VZFS_LAB_TRACE").is_some() {
        eprintln!("[vzfs-lab] [{place}] $ {text}");
    }
    if cmd.get_program() != OsStr::new("") {
        cmd.stdin(Stdio::null());
    }
    let out = cmd.output().map_err(|source| LabError::Spawn {
        place: place.to_string(),
        cmd: text.clone(),
        source,
    })?;
    Ok(Output::from_std(place, text, out))
}

/// Runs a command on the machine itself (outside every lab host).
pub fn machine<S: AsRef<OsStr>>(argv: &[S]) -> Result<Output> {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    run("machine", c)
}

/// Runs a command on the machine and requires success.
pub fn machine_ok<S: AsRef<OsStr>>(argv: &[S]) -> Result<Output> {
    machine(argv)?.ok()
}
