//! Parser for `/proc/<pid>/mountinfo` (proc(5)): every field, including the
//! optional fields up to the ` - ` separator, octal escapes (`\040`, `\011`,
//! `\012`, `\134`) and the kernel's ` (deleted)` suffix on a root or mount
//! point whose dentry was unlinked. Lookups compare devices by major:minor and
//! mount points by exact, already-canonical paths; never by prefix.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// A device number split the way mountinfo and `/sys` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNum {
    pub major: u32,
    pub minor: u32,
}

impl DevNum {
    pub fn from_rdev(rdev: u64) -> DevNum {
        DevNum {
            major: libc::major(rdev as libc::dev_t),
            minor: libc::minor(rdev as libc::dev_t),
        }
    }
    /// Parses `8:1`.
    pub fn parse(s: &str) -> Option<DevNum> {
        let (a, b) = s.trim().split_once(':')?;
        Some(DevNum {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }
}

impl std::fmt::Display for DevNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u64,
    pub parent_id: u64,
    pub dev: DevNum,
    /// Root of the mount within its filesystem (`/` unless a bind of a subdirectory).
    pub root: PathBuf,
    pub root_deleted: bool,
    pub mount_point: PathBuf,
    pub mount_point_deleted: bool,
    pub mount_options: String,
    /// Optional fields such as `shared:1`, `master:2`, `propagate_from:3`, `unbindable`.
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: line {line}: malformed mountinfo entry ({what}): {text:?}")]
pub struct ParseError {
    pub path: PathBuf,
    pub line: usize,
    pub what: &'static str,
    pub text: String,
}

/// Decodes the kernel's octal escapes (`\ooo`) in a mountinfo field.
pub fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if v <= 255 {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn path_field(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

fn string_field(field: &str) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

/// Parses one line. `origin` and `lineno` only label errors.
pub fn parse_line(origin: &Path, lineno: usize, line: &str) -> Result<MountEntry, ParseError> {
    let err = |what| ParseError {
        path: origin.to_path_buf(),
        line: lineno,
        what,
        text: line.to_string(),
    };
    let mut it = line.split(' ').peekable();
    let mut next = |what| it.next().filter(|s| !s.is_empty()).ok_or_else(|| err(what));
    let mount_id = next("mount id")?.parse().map_err(|_| err("mount id"))?;
    let parent_id = next("parent id")?.parse().map_err(|_| err("parent id"))?;
    let dev = DevNum::parse(next("major:minor")?).ok_or_else(|| err("major:minor"))?;
    let root = path_field(next("root")?);
    let mut root_deleted = false;
    if it.peek() == Some(&"(deleted)") {
        it.next();
        root_deleted = true;
    }
    let mount_point = path_field(
        it.next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("mount point"))?,
    );
    let mut mount_point_deleted = false;
    if it.peek() == Some(&"(deleted)") {
        it.next();
        mount_point_deleted = true;
    }
    let mount_options = it.next().ok_or_else(|| err("mount options"))?.to_string();
    let mut optional = Vec::new();
    loop {
        match it.next() {
            Some("-") => break,
            Some(f) if !f.is_empty() => optional.push(f.to_string()),
            Some(_) => continue,
            None => return Err(err("no ' - ' separator")),
        }
    }
    let fstype = string_field(it.next().ok_or_else(|| err("filesystem type"))?);
    let source = string_field(it.next().ok_or_else(|| err("mount source"))?);
    let super_options = it.next().unwrap_or("").to_string();
    Ok(MountEntry {
        mount_id,
        parent_id,
        dev,
        root,
        root_deleted,
        mount_point,
        mount_point_deleted,
        mount_options,
        optional,
        fstype,
        source,
        super_options,
    })
}

/// A whole mount table, in the kernel's order (parents before children,
/// later mounts over earlier ones at the same mount point).
#[derive(Debug, Clone, Default)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

impl MountTable {
    pub fn parse(origin: &Path, text: &str) -> Result<MountTable, ParseError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            entries.push(parse_line(origin, i + 1, line)?);
        }
        Ok(MountTable { entries })
    }

    /// The mount visible at `path` (the last one mounted there), if any.
    /// `path` must already be canonical; comparison is exact.
    pub fn top_at(&self, path: &Path) -> Option<&MountEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| !e.mount_point_deleted && e.mount_point == path)
    }

    /// Every mount of the filesystem with device number `dev`.
    pub fn by_dev(&self, dev: DevNum) -> impl Iterator<Item = &MountEntry> {
        self.entries.iter().filter(move |e| e.dev == dev)
    }

    /// Mounts whose mount point is `path` itself or lies below it
    /// (component-wise, so `/vz/private/10` does not contain `/vz/private/101`).
    pub fn under<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = &'a MountEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.mount_point.starts_with(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn parses_full_line_with_optional_fields() {
        let l = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let e = parse_line(&p("x"), 1, l).unwrap();
        assert_eq!(e.mount_id, 36);
        assert_eq!(e.parent_id, 35);
        assert_eq!(
            e.dev,
            DevNum {
                major: 98,
                minor: 0
            }
        );
        assert_eq!(e.root, p("/mnt1"));
        assert_eq!(e.mount_point, p("/mnt2"));
        assert_eq!(e.optional, vec!["master:1", "shared:7"]);
        assert_eq!(e.fstype, "ext3");
        assert_eq!(e.source, "/dev/root");
        assert_eq!(e.super_options, "rw,errors=continue");
    }

    #[test]
    fn no_optional_fields() {
        let e = parse_line(&p("x"), 1, "22 27 0:21 / /proc rw,relatime - proc proc rw").unwrap();
        assert!(e.optional.is_empty());
        assert_eq!(e.fstype, "proc");
    }

    #[test]
    fn octal_escapes_in_paths_and_source() {
        let l = r"100 27 7:3 / /vz/private/my\040ct\011tab\012nl\134bs rw - ext4 /dev/disk\040x rw";
        let e = parse_line(&p("x"), 1, l).unwrap();
        assert_eq!(e.mount_point, p("/vz/private/my ct\ttab\nnl\\bs"));
        assert_eq!(e.source, "/dev/disk x");
    }

    #[test]
    fn deleted_suffix_on_mount_point_and_root() {
        let l = "101 27 7:3 /gone (deleted) /vz/private/5 (deleted) rw - ext4 /dev/loop3 rw";
        let e = parse_line(&p("x"), 1, l).unwrap();
        assert!(e.root_deleted && e.mount_point_deleted);
        assert_eq!(e.mount_point, p("/vz/private/5"));
        let t = MountTable { entries: vec![e] };
        assert!(t.top_at(&p("/vz/private/5")).is_none());
    }

    #[test]
    fn a_path_that_really_ends_in_deleted_is_escaped_and_kept() {
        let l = r"101 27 7:3 / /a\040(deleted) rw - ext4 /dev/loop3 rw";
        let e = parse_line(&p("x"), 1, l).unwrap();
        assert!(!e.mount_point_deleted);
        assert_eq!(e.mount_point, p("/a (deleted)"));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for bad in [
            "",
            "1 2 3",
            "x 2 7:0 / /a rw - ext4 d rw",
            "1 2 7:0 / /a rw shared:1",
            "1 2 70 / /a rw - e d o",
        ] {
            if bad.is_empty() {
                continue;
            }
            let e = parse_line(&p("/proc/self/mountinfo"), 4, bad).unwrap_err();
            assert_eq!(e.line, 4);
            assert!(
                e.to_string().contains("/proc/self/mountinfo: line 4"),
                "{e}"
            );
        }
    }

    #[test]
    fn prefix_is_not_containment_and_top_is_last() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 7:10 / /vz/private/101 rw - ext4 /dev/loop10 rw\n\
                    3 1 7:1 / /vz/private/10 rw - ext4 /dev/loop1 rw\n\
                    4 3 7:2 / /vz/private/10 rw - xfs /dev/loop2 rw\n";
        let t = MountTable::parse(&p("m"), text).unwrap();
        assert_eq!(
            t.top_at(&p("/vz/private/10")).unwrap().dev,
            DevNum { major: 7, minor: 2 }
        );
        assert_eq!(
            t.top_at(&p("/vz/private/101")).unwrap().dev,
            DevNum {
                major: 7,
                minor: 10
            }
        );
        assert!(t.top_at(&p("/vz/private/1")).is_none());
        let under: Vec<_> = t.under(&p("/vz/private/10")).map(|e| e.mount_id).collect();
        assert_eq!(under, vec![3, 4]);
        assert_eq!(t.by_dev(DevNum { major: 7, minor: 1 }).count(), 1);
    }

    #[test]
    fn parses_this_machines_mountinfo() {
        let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let t = MountTable::parse(&p("/proc/thread-self/mountinfo"), &text).unwrap();
        assert!(t.entries.iter().any(|e| e.mount_point == p("/")));
    }
}
