//! A small, complete parser of `/proc/<pid>/mountinfo`, used by the vzctl double
//! (is `VE_ROOT` mounted?) and by tests (what is mounted on `VE_PRIVATE` in a host?).
//! Paths are unescaped (`\040` is a space) and compared exactly, never by prefix.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    /// Device major:minor of the filesystem.
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem (`/` for a whole fs).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub optional_fields: Vec<String>,
    pub fstype: String,
    /// The source as given to mount(2) (e.g. `/dev/loop3`).
    pub source: String,
    pub super_options: String,
}

/// Undoes the kernel's octal escapes (`\040`, `\011`, `\012`, `\134`).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line; `None` for a malformed line.
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let mut it = line.split(' ');
    let mount_id = it.next()?.parse().ok()?;
    let parent_id = it.next()?.parse().ok()?;
    let (maj, min) = it.next()?.split_once(':')?;
    let root = PathBuf::from(unescape(it.next()?));
    let mount_point = PathBuf::from(unescape(it.next()?));
    let mount_options = it.next()?.to_string();
    let mut optional_fields = Vec::new();
    loop {
        let f = it.next()?;
        if f == "-" {
            break;
        }
        optional_fields.push(f.to_string());
    }
    let fstype = unescape(it.next()?);
    let source = unescape(it.next()?);
    let super_options = it.next().unwrap_or("").to_string();
    Some(MountEntry {
        mount_id,
        parent_id,
        major: maj.parse().ok()?,
        minor: min.parse().ok()?,
        root,
        mount_point,
        mount_options,
        optional_fields,
        fstype,
        source,
        super_options,
    })
}

/// Parses a whole mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads and parses a mountinfo file (e.g. `/proc/self/mountinfo`).
pub fn read(path: &Path) -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// The topmost (last) mount whose mount point is exactly `path`.
pub fn mounted_at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_paths_and_optional_fields() {
        let l = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let e = parse_line(l).unwrap();
        assert_eq!(e.mount_point, PathBuf::from("/mnt two"));
        assert_eq!(e.root, PathBuf::from("/mnt1"));
        assert_eq!((e.major, e.minor), (98, 0));
        assert_eq!(e.optional_fields, vec!["master:1", "shared:7"]);
        assert_eq!(e.fstype, "ext3");
        assert_eq!(e.source, "/dev/root");
    }

    #[test]
    fn exact_match_not_prefix() {
        let t = "1 0 7:1 / /vz/private/101 rw - ext4 /dev/loop1 rw\n";
        let v = parse(t);
        assert!(mounted_at(&v, Path::new("/vz/private/10")).is_none());
        assert!(mounted_at(&v, Path::new("/vz/private/101")).is_some());
    }
}
