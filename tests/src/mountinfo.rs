//! Mountinfo for the lab and the vzctl double: the product's parser
//! (`vzfs::mountinfo`, crate vzfs-hook: every field, octal escapes, optional
//! fields, ` (deleted)` suffixes), re-exported, plus the two lookups the
//! lab's callers use. Paths are compared exactly, never by prefix.
//!
//! The lab used to carry its own copy; it now uses the library's so that
//! there is one parser in the project, tested in one place.

use std::path::Path;

pub use vzfs::mountinfo::{parse_line, unescape, DevNum, MountEntry, MountTable, ParseError};

/// Parses a whole mountinfo text. A malformed line is an error naming
/// `origin` and the line (the kernel never writes one).
pub fn parse(origin: &Path, text: &str) -> Result<Vec<MountEntry>, ParseError> {
    Ok(MountTable::parse(origin, text)?.entries)
}

/// Reads and parses a mountinfo file (e.g. `/proc/self/mountinfo`); a
/// malformed line is an `InvalidData` error naming the file and the line.
pub fn read(path: &Path) -> std::io::Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string(path)?;
    parse(path, &text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The topmost (last) mount whose mount point is exactly `path` (a mount
/// point the kernel marks ` (deleted)` does not count), as
/// [`MountTable::top_at`].
pub fn mounted_at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries
        .iter()
        .rev()
        .find(|e| !e.mount_point_deleted && e.mount_point == path)
}

/// Every mount of the filesystem on device `dev` (major:minor), in order.
pub fn mounts_of(entries: &[MountEntry], dev: DevNum) -> Vec<&MountEntry> {
    entries.iter().filter(|e| e.dev == dev).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn exact_match_not_prefix_and_top_is_last() {
        let t = "1 0 7:1 / /vz/private/101 rw - ext4 /dev/loop1 rw\n\
                 2 0 7:2 / /vz/private/101 rw - ext4 /dev/loop2 rw\n\
                 3 0 7:3 / /vz/private/10\\040x (deleted) rw - ext4 /dev/loop3 rw\n";
        let v = parse(Path::new("t"), t).unwrap();
        assert!(mounted_at(&v, Path::new("/vz/private/10")).is_none());
        assert!(mounted_at(&v, Path::new("/vz/private/10 x")).is_none());
        let top = mounted_at(&v, Path::new("/vz/private/101")).unwrap();
        assert_eq!(top.dev, DevNum { major: 7, minor: 2 });
        assert_eq!(top.source, "/dev/loop2");
        assert_eq!(mounts_of(&v, DevNum { major: 7, minor: 1 }).len(), 1);
        assert_eq!(top.mount_point, PathBuf::from("/vz/private/101"));
    }

    #[test]
    fn malformed_text_names_file_and_line() {
        let e = parse(Path::new("/proc/1/mountinfo"), "1 0 7:1 / /a rw\n").unwrap_err();
        assert!(e.to_string().contains("/proc/1/mountinfo: line 1"), "{e}");
    }

    #[test]
    fn reads_this_process_mountinfo() {
        let v = read(Path::new("/proc/self/mountinfo")).unwrap();
        assert!(mounted_at(&v, Path::new("/")).is_some());
    }
}
