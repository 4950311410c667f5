//! The undo journal: a JSON-lines file on the source, written durably
//! (append + fsync; created by write + fsync + rename + fsync of the
//! directory) BEFORE each step runs, so that `--recover` can finish the
//! undo after a crash. Its presence also blocks a new migration of the
//! container. Default place: `LOCKDIR/<CTID>.migrate-journal`.
//!
//! Records: a header (the plan and everything needed to reach the target
//! again), then `begin i` before step i runs, `done i` after it succeeded
//! (`noop` when it found nothing to do, so it has nothing to undo),
//! `commit` once the container lives on the target, `undone i` after the
//! undo of step i succeeded. A torn last line (crash while writing) is
//! ignored.

use crate::error::{Error, Kind, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Record {
    Header { header: serde_json::Value },
    Begin { i: usize },
    Done { i: usize, noop: bool },
    Commit,
    Undone { i: usize },
}

/// What the journal says happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub header: serde_json::Value,
    pub begun: Vec<usize>,
    pub done: Vec<usize>,
    pub noop: Vec<usize>,
    pub undone: Vec<usize>,
    pub committed: bool,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

pub fn journal_path(dir: &Path, ctid: u32) -> PathBuf {
    journal_path_of(dir, ctid, "migrate")
}

/// The journal of tool `tool` (`migrate`: `vzfs-migrate`, `create`:
/// `vzfs-create`): `DIR/<CTID>.<tool>-journal`.
pub fn journal_path_of(dir: &Path, ctid: u32, tool: &str) -> PathBuf {
    dir.join(format!("{ctid}.{tool}-journal"))
}

fn sys(op: &str, p: &Path, e: std::io::Error) -> Error {
    Error::io(Kind::System, op, p, e)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| sys("cannot fsync directory", dir, e))
}

impl Journal {
    /// Create the journal with its header; fails (exit 20) if one exists.
    pub fn create<H: Serialize>(dir: &Path, ctid: u32, header: &H) -> Result<Journal> {
        Self::create_of(dir, ctid, "migrate", header)
    }

    /// [`Journal::create`] for tool `tool` (see [`journal_path_of`]).
    pub fn create_of<H: Serialize>(
        dir: &Path,
        ctid: u32,
        tool: &str,
        header: &H,
    ) -> Result<Journal> {
        std::fs::create_dir_all(dir).map_err(|e| sys("cannot create journal directory", dir, e))?;
        let path = journal_path_of(dir, ctid, tool);
        if path.exists() {
            return Err(exists_error(&path, ctid, tool));
        }
        let tmp = dir.join(format!("{ctid}.{tool}-journal.tmp"));
        let header = serde_json::to_value(header).expect("journal header serializes");
        let mut line =
            serde_json::to_string(&Record::Header { header }).expect("record serializes");
        line.push('\n');
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| sys("cannot create journal", &tmp, e))?;
            f.write_all(line.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| sys("cannot write journal", &tmp, e))?;
        }
        // link() so that a journal created meanwhile is never replaced
        std::fs::hard_link(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                exists_error(&path, ctid, tool)
            } else {
                sys("cannot create journal", &path, e)
            }
        })?;
        let _ = std::fs::remove_file(&tmp);
        fsync_dir(dir)?;
        Self::open(&path)
    }

    /// Open an existing journal for appending.
    pub fn open(path: &Path) -> Result<Journal> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| sys("cannot open journal", path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record durably.
    pub fn append(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_string(r).expect("record serializes");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| sys("cannot write journal", &self.path, e))
    }

    /// Remove the journal (migration finished or fully undone).
    pub fn remove(self) -> Result<()> {
        std::fs::remove_file(&self.path)
            .map_err(|e| sys("cannot remove journal", &self.path, e))?;
        if let Some(d) = self.path.parent() {
            fsync_dir(d)?;
        }
        Ok(())
    }
}

/// The refusal when a journal of `tool` exists (exit 20).
pub fn exists_error(path: &Path, ctid: u32, tool: &str) -> Error {
    let what = if tool == "migrate" {
        "migration"
    } else {
        "run"
    };
    Error::check(
        Kind::Locked,
        format!("journal {}", path.display()),
        format!(
            "an unfinished {what} of container {ctid} exists; run `vzfs-{tool} --recover {ctid}` first"
        ),
    )
}

/// Read and replay a journal.
pub fn read(path: &Path) -> Result<State> {
    let text = std::fs::read_to_string(path).map_err(|e| sys("cannot read journal", path, e))?;
    let mut st = State::default();
    let mut have_header = false;
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            // a torn last line: the crash happened while writing it
            Err(_) if n + 1 == lines.len() => break,
            Err(e) => {
                return Err(Error::check(
                    Kind::System,
                    format!("journal {} line {}", path.display(), n + 1),
                    format!("unreadable ({e}); the journal is damaged, repair by hand"),
                ))
            }
        };
        match rec {
            Record::Header { header } => {
                st.header = header;
                have_header = true;
            }
            Record::Begin { i } => st.begun.push(i),
            Record::Done { i, noop } => {
                st.done.push(i);
                if noop {
                    st.noop.push(i);
                }
            }
            Record::Commit => st.committed = true,
            Record::Undone { i } => st.undone.push(i),
        }
    }
    if !have_header {
        return Err(Error::check(
            Kind::System,
            format!("journal {}", path.display()),
            "has no header; the journal is damaged, repair by hand",
        ));
    }
    Ok(st)
}

impl State {
    /// Steps whose undo is still owed, in the order to run them (reverse).
    pub fn pending_undos(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .begun
            .iter()
            .copied()
            .filter(|i| !self.noop.contains(i) && !self.undone.contains(i))
            .collect();
        v.sort_unstable();
        v.dedup();
        v.reverse();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("vzfs-journal-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn write_replay_and_refuse_second() {
        let d = tmpdir("replay");
        let mut j = Journal::create(&d, 101, &serde_json::json!({"target": "hn2"})).unwrap();
        j.append(&Record::Begin { i: 0 }).unwrap();
        j.append(&Record::Done { i: 0, noop: false }).unwrap();
        j.append(&Record::Begin { i: 1 }).unwrap();
        j.append(&Record::Done { i: 1, noop: true }).unwrap();
        j.append(&Record::Begin { i: 2 }).unwrap();
        let e = Journal::create(&d, 101, &serde_json::json!({})).unwrap_err();
        assert_eq!(e.exit_code(), 20);
        assert!(e.to_string().contains("--recover 101"), "{e}");
        let st = read(j.path()).unwrap();
        assert_eq!(st.header["target"], "hn2");
        assert_eq!(st.pending_undos(), vec![2, 0]);
        assert!(!st.committed);
        j.append(&Record::Undone { i: 2 }).unwrap();
        assert_eq!(read(j.path()).unwrap().pending_undos(), vec![0]);
        j.remove().unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_last_line_is_ignored_but_damage_is_not() {
        let d = tmpdir("torn");
        let j = Journal::create(&d, 7, &serde_json::json!({})).unwrap();
        let p = j.path().to_path_buf();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"t\":\"begin\",\"i\":0}\n{\"t\":\"do")
            .unwrap();
        let st = read(&p).unwrap();
        assert_eq!(st.begun, vec![0]);
        std::fs::write(&p, "garbage\n{\"t\":\"commit\"}\n").unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
