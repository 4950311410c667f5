//! Failpoints at every step boundary, switchable from a test (after
//! bootupd's `failpoints.rs`).
//!
//! `VZFS_FAILPOINTS` holds `;`- or `,`-separated `NAME=ACTION` pairs. Names
//! are `before:STEP`, `after:STEP` and `undo:STEP` (a bare `STEP` means
//! `before:STEP`), where STEP is a step name as printed by `--check-only`.
//! Actions:
//! - `fail`: the boundary returns an error, as if the step had failed;
//! - `crash`: the process kills itself with SIGKILL on the spot (no undo,
//!   no cleanup), to test `--recover`;
//! - `sleep(MS)`: pause MS milliseconds, then go on (a window for a test to
//!   send a signal in a given phase); a line `failpoint NAME: sleeping MS
//!   ms` on stderr says it started.
//!
//! A name prefixed with `CTID@` (`102@after:src-device-umount=fail`)
//! applies to the migration of that container only, among the several of
//! one run (`--evacuate`, several CTIDs); [`Failpoints::for_ct`] picks
//! them. Unprefixed names apply to every container.
//!
//! `VZFS_FAILPOINTS_FILE` names a file with the same syntax (one pair per
//! line allowed), read in addition. Nothing is active when neither is set.

use crate::error::{Error, Kind, Result};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Fail,
    Crash,
    /// Pause this many milliseconds.
    Sleep(u64),
}

#[derive(Debug, Default, Clone)]
pub struct Failpoints {
    map: BTreeMap<String, Action>,
}

impl Failpoints {
    /// Parse a spec (see module docs). Errors name the bad entry.
    pub fn parse(spec: &str) -> Result<Failpoints> {
        let mut map = BTreeMap::new();
        for item in spec.split([';', ',', '\n']) {
            let item = item.trim();
            if item.is_empty() || item.starts_with('#') {
                continue;
            }
            let (name, action) = item.split_once('=').ok_or_else(|| {
                Error::check(
                    Kind::Usage,
                    format!("failpoint {item:?}"),
                    "expected NAME=fail, NAME=crash or NAME=sleep(MS)",
                )
            })?;
            let action = match action.trim() {
                "fail" => Action::Fail,
                "crash" => Action::Crash,
                other => match other
                    .strip_prefix("sleep(")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|ms| ms.trim().parse::<u64>().ok())
                {
                    Some(ms) => Action::Sleep(ms),
                    None => {
                        return Err(Error::check(
                            Kind::Usage,
                            format!("failpoint {name:?}"),
                            format!("unknown action {other:?} (use fail, crash or sleep(MS))"),
                        ))
                    }
                },
            };
            let name = name.trim();
            let (scope, name) = match name.split_once('@') {
                Some((ct, rest)) if !ct.is_empty() && ct.chars().all(|c| c.is_ascii_digit()) => {
                    (format!("{ct}@"), rest)
                }
                _ => (String::new(), name),
            };
            let name = if name.contains(':') {
                name.to_string()
            } else {
                format!("before:{name}")
            };
            map.insert(format!("{scope}{name}"), action);
        }
        Ok(Failpoints { map })
    }

    /// From `VZFS_FAILPOINTS` and `VZFS_FAILPOINTS_FILE`.
    pub fn from_env() -> Result<Failpoints> {
        let mut spec = std::env::var("VZFS_FAILPOINTS").unwrap_or_default();
        if let Ok(file) = std::env::var("VZFS_FAILPOINTS_FILE") {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::io(Kind::Usage, "cannot read failpoints file", &file, e))?;
            spec.push('\n');
            spec.push_str(&text);
        }
        Failpoints::parse(&spec)
    }

    /// The failpoints of container `ctid`'s migration: the unprefixed ones
    /// and those prefixed `CTID@` (prefix removed; they win).
    pub fn for_ct(&self, ctid: u32) -> Failpoints {
        let mine = format!("{ctid}@");
        let mut map: BTreeMap<String, Action> = self
            .map
            .iter()
            .filter(|(k, _)| !k.contains('@'))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, v) in &self.map {
            if let Some(n) = k.strip_prefix(&mine) {
                map.insert(n.to_string(), *v);
            }
        }
        Failpoints { map }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The action configured for `name`, if any.
    pub fn action(&self, name: &str) -> Option<Action> {
        self.map.get(name).copied()
    }

    /// Hit the boundary `name`: `Ok` when nothing is configured, an error
    /// for `fail`, no return for `crash`, `Ok` after the pause for `sleep`.
    pub fn hit(&self, name: &str) -> Result<()> {
        match self.action(name) {
            None => Ok(()),
            Some(Action::Sleep(ms)) => {
                eprintln!(
                    "{}: failpoint {name}: sleeping {ms} ms",
                    crate::transport::program()
                );
                // std's sleep resumes after a signal handler ran (EINTR)
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(())
            }
            Some(Action::Fail) => Err(Error::Failpoint(name.to_string())),
            Some(Action::Crash) => {
                eprintln!(
                    "{}: failpoint {name}: crashing (SIGKILL)",
                    crate::transport::program()
                );
                // SAFETY: plain syscalls; the process dies here like on kill -9.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                loop {
                    std::thread::park();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_hit() {
        let fp =
            Failpoints::parse("copy-config=fail; after:sync-1=fail,undo:stop-src=crash").unwrap();
        assert_eq!(fp.action("before:copy-config"), Some(Action::Fail));
        assert_eq!(fp.action("after:sync-1"), Some(Action::Fail));
        assert_eq!(fp.action("undo:stop-src"), Some(Action::Crash));
        assert!(fp.hit("before:sync-1").is_ok());
        let e = fp.hit("before:copy-config").unwrap_err();
        assert_eq!(e.to_string(), "failpoint before:copy-config triggered");
        let fp = Failpoints::parse("after:stop-src=sleep(20)").unwrap();
        assert_eq!(fp.action("after:stop-src"), Some(Action::Sleep(20)));
        let t = std::time::Instant::now();
        assert!(fp.hit("after:stop-src").is_ok());
        assert!(t.elapsed() >= std::time::Duration::from_millis(20));
    }

    #[test]
    fn per_container_failpoints() {
        let fp =
            Failpoints::parse("102@after:stop-src=fail;103@copy-config=crash;sync-1=fail").unwrap();
        let f102 = fp.for_ct(102);
        assert_eq!(f102.action("after:stop-src"), Some(Action::Fail));
        assert_eq!(f102.action("before:sync-1"), Some(Action::Fail));
        assert_eq!(f102.action("before:copy-config"), None);
        let f103 = fp.for_ct(103);
        assert_eq!(f103.action("before:copy-config"), Some(Action::Crash));
        assert_eq!(f103.action("after:stop-src"), None);
        let f101 = fp.for_ct(101);
        assert_eq!(f101.action("after:stop-src"), None);
        assert_eq!(f101.action("before:sync-1"), Some(Action::Fail));
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(Failpoints::parse("copy-config").is_err());
        assert!(Failpoints::parse("copy-config=explode").is_err());
        assert!(Failpoints::parse("copy-config=sleep(x)").is_err());
        assert!(Failpoints::parse("copy-config=sleep(5").is_err());
        assert!(Failpoints::parse("  ").unwrap().is_empty());
    }
}
