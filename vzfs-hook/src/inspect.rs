//! Read-only look at the top directory of an unmounted filesystem, without
//! mounting it: `debugfs -c -R 'ls -p /'` (ext2/3/4, catastrophic mode: the
//! device is opened read-only) and `xfs_db -r -c 'ls /'` (xfs). Used to
//! refuse a device that holds data before anything changed (vzfs-create).
//! The two output parsers are pure and property-tested.

use crate::error::{Error, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Names in the root directory of `fstype` on `node` (not `.`/`..`).
/// `None` for a type that cannot be inspected (btrfs).
pub fn root_entries(node: &Path, fstype: &str) -> Result<Option<Vec<String>>> {
    let (prog, args): (&str, Vec<&str>) = match fstype {
        "ext2" | "ext3" | "ext4" => ("debugfs", vec!["-c", "-R", "ls -p /"]),
        "xfs" => ("xfs_db", vec!["-r", "-c", "ls /"]),
        _ => return Ok(None),
    };
    let out = Command::new(prog)
        .args(&args)
        .arg(node)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("run debugfs/xfs_db on", node, e))?;
    if !out.status.success() {
        return Err(Error::device(
            crate::text::path(node),
            format!(
                "{prog} cannot read the root directory: {}",
                crate::text::escape(String::from_utf8_lossy(&out.stderr).trim())
            ),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(Some(match prog {
        "debugfs" => parse_debugfs_ls_p(&text),
        _ => parse_xfs_db_ls(&text),
    }))
}

/// `debugfs ls -p` lines: `/INO/MODE/UID/GID/NAME/SIZE/`. A name may hold
/// `/`: it is everything between the fourth and the last-but-one slash.
pub fn parse_debugfs_ls_p(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(body) = line.strip_prefix('/').and_then(|l| l.strip_suffix('/')) else {
            continue;
        };
        let mut head = body.splitn(5, '/');
        let (Some(ino), Some(_mode), Some(_uid), Some(_gid), Some(rest)) = (
            head.next(),
            head.next(),
            head.next(),
            head.next(),
            head.next(),
        ) else {
            continue;
        };
        if ino.parse::<u64>().is_err() {
            continue;
        }
        let Some((name, _size)) = rest.rsplit_once('/') else {
            continue;
        };
        if name != "." && name != ".." && !name.is_empty() {
            out.push(name.to_string());
        }
    }
    out
}

/// `xfs_db ls` lines: `INO OFFSET TYPE HASH NAMELEN NAME (good)`; the name
/// is cut to NAMELEN bytes (it may hold spaces).
pub fn parse_xfs_db_ls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(6, char::is_whitespace).collect();
        if f.len() < 6 || f[0].parse::<u64>().is_err() {
            continue;
        }
        // fields are separated by runs of blanks: split again, keeping the name
        let mut it = line.split_whitespace();
        let (Some(_ino), Some(_off), Some(_ty), Some(_hash), Some(len)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Ok(len) = len.parse::<usize>() else {
            continue;
        };
        // the name starts after the namelen field
        let Some(pos) = find_field_end(line, 5) else {
            continue;
        };
        let rest = line[pos..].trim_start_matches([' ', '\t']);
        if rest.len() < len || !rest.is_char_boundary(len) {
            continue;
        }
        let name = &rest[..len];
        if name != "." && name != ".." && !name.is_empty() {
            out.push(name.to_string());
        }
    }
    out
}

/// Byte offset just after the `n`th whitespace-separated field.
fn find_field_end(line: &str, n: usize) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    for _ in 0..n {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_outputs() {
        let d = "/2/040755/0/0/./1024/\n/2/040755/0/0/../1024/\n/11/040700/0/0/lost+found/12288/\n";
        assert_eq!(parse_debugfs_ls_p(d), vec!["lost+found"]);
        let x = "/:\n8          128                directory      0x0000002e   1 . (good)\n10         128                directory      0x0000172e   2 .. (good)\n131        160                regular        0x6b2e3c2f   5 a b c (good)\n";
        assert_eq!(parse_xfs_db_ls(x), vec!["a b c"]);
        assert!(parse_debugfs_ls_p("debugfs 1.47.0\n").is_empty());
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._+/-]{1,20}".prop_filter("not . or ..", |s| {
            s != "." && s != ".." && !s.starts_with(' ') && !s.ends_with(' ')
        })
    }

    proptest! {
        #[test]
        fn debugfs_names_round_trip(names in proptest::collection::vec(name(), 0..8), noise in "[ -~]{0,40}") {
            let mut t = String::from("/2/040755/0/0/./1024/\n/2/040755/0/0/../1024/\n");
            t.push_str(&noise.replace('/', "_"));
            t.push('\n');
            for (i, n) in names.iter().enumerate() {
                t.push_str(&format!("/{}/0100644/0/0/{n}/{}/\n", 12 + i, i * 7));
            }
            prop_assert_eq!(parse_debugfs_ls_p(&t), names);
        }

        #[test]
        fn xfs_names_round_trip(names in proptest::collection::vec(name().prop_map(|s| s.replace('/', "_")), 0..8), noise in "[ -~]{0,40}") {
            let mut t = String::from("/:\n");
            t.push_str(&noise);
            t.push('\n');
            for (i, n) in names.iter().enumerate() {
                t.push_str(&format!("{}          {}   regular   0x{:08x}   {} {n} (good)\n", 131 + i, 160 + i, i, n.len()));
            }
            // noise may by chance look like an entry only if it starts with digits and fields
            let parsed = parse_xfs_db_ls(&t);
            let tail: Vec<String> = parsed[parsed.len() - names.len()..].to_vec();
            prop_assert_eq!(tail, names);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = parse_debugfs_ls_p(&s);
            let _ = parse_xfs_db_ls(&s);
        }
    }
}
