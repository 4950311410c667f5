//! A manifest of a directory tree, taken before a copy and compared with the
//! copy afterwards (`vzfs-create`, its convert mode): for every entry its
//! relative path, type, mode, owner, size (regular files and symlinks), a
//! checksum of the content, the target of a symlink, the device number of a
//! device node, the modification time (not of the top directory, nor of
//! symlinks), every extended attribute (ACLs are the `system.posix_acl_*`
//! ones) and the hard-link groups (paths sharing one inode).
//!
//! [`Manifest::diff`] compares ACLs as ACLs: a `system.posix_acl_access` or
//! `system.posix_acl_default` value is decoded into its entries (a
//! difference is shown as `u::rw-,u:1234:r--,...`). It never counts a
//! filesystem's internal representation of an ACL as a difference: xfs
//! lists, to a privileged caller, its on-disk form of the same ACLs as
//! `trusted.SGI_ACL_FILE` and `trusted.SGI_ACL_DEFAULT` next to the
//! `system.posix_acl_*` names ([`FS_INTERNAL_XATTRS`]), and ext4 or tmpfs
//! do not; those two names are left out of the comparison (the manifest
//! still records them, and `==` on a [`Manifest`] compares the raw
//! records), whichever way the copy goes. Every other attribute,
//! `trusted.*` included, is compared (ACLs by their entries, the rest byte
//! for byte).
//!
//! The walk never follows symlinks and never leaves the filesystem of the
//! top directory (a mount below it is an error naming it). Names listed in
//! `skip_top` (e.g. `lost+found` of a fresh filesystem) are left out at the
//! top level only. [`Manifest::allocated`] sums the blocks really allocated
//! (sparse files count what they occupy, not their apparent size).

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Extended attributes that are a filesystem's own form of an ACL, not
/// attributes of their own: xfs lists its on-disk ACLs under these names (to
/// a caller with CAP_SYS_ADMIN) next to `system.posix_acl_access` and
/// `system.posix_acl_default`, which hold the same ACLs in the kernel's
/// portable format. A copy from ext4 onto xfs gains them, one from xfs onto
/// ext4 loses them (or, copied as plain `trusted.*` attributes, carries
/// stale bytes that mean nothing there): [`Manifest::diff`] ignores them and
/// compares the ACL itself through the `system.posix_acl_*` values.
pub const FS_INTERNAL_XATTRS: &[&str] = &["trusted.SGI_ACL_FILE", "trusted.SGI_ACL_DEFAULT"];

/// The attribute names that hold a POSIX ACL in the kernel's xattr format.
const ACL_XATTRS: &[&str] = &["system.posix_acl_access", "system.posix_acl_default"];

/// A filesystem's internal form of an ACL ([`FS_INTERNAL_XATTRS`]).
pub fn is_fs_internal_xattr(name: &[u8]) -> bool {
    FS_INTERNAL_XATTRS.iter().any(|n| n.as_bytes() == name)
}

/// One entry of a POSIX ACL: tag, permission bits, id (users and groups
/// only; the other tags carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct AclEntry {
    tag: u16,
    perm: u16,
    id: Option<u32>,
}

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// The entries of an ACL in the kernel's xattr format (`posix_acl_xattr`:
/// a little-endian u32 version 2, then tag u16, perm u16, id u32 per
/// entry), sorted; None if the bytes are not such an ACL.
fn parse_acl(v: &[u8]) -> Option<Vec<AclEntry>> {
    if v.len() < 4 || u32::from_le_bytes(v[..4].try_into().ok()?) != 2 {
        return None;
    }
    let entries = v[4..].chunks_exact(8);
    if !entries.remainder().is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for e in entries {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let id = match tag {
            ACL_USER | ACL_GROUP => Some(id),
            ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_MASK | ACL_OTHER => None,
            _ => return None,
        };
        out.push(AclEntry { tag, perm, id });
    }
    out.sort();
    Some(out)
}

/// An ACL in getfacl's short form: `u::rw-,u:1234:r--,g::r--,m::r--,o::---`.
fn acl_text(acl: &[AclEntry]) -> String {
    acl.iter()
        .map(|e| {
            let t = match e.tag {
                ACL_USER_OBJ | ACL_USER => "u",
                ACL_GROUP_OBJ | ACL_GROUP => "g",
                ACL_MASK => "m",
                _ => "o",
            };
            let id = e.id.map(|i| i.to_string()).unwrap_or_default();
            let p = |bit: u16, c: char| if e.perm & bit != 0 { c } else { '-' };
            format!("{t}:{id}:{}{}{}", p(4, 'r'), p(2, 'w'), p(1, 'x'))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// An attribute's value as compared: an ACL by its entries, anything else
/// by its bytes.
#[derive(Debug, PartialEq, Eq)]
enum Compared<'a> {
    Acl(Vec<AclEntry>),
    Bytes(&'a [u8]),
}

impl Compared<'_> {
    fn show(&self) -> String {
        match self {
            Compared::Acl(a) => acl_text(a),
            Compared::Bytes(b) => format!("{} bytes", b.len()),
        }
    }
}

/// The attributes of an entry as [`Manifest::diff`] compares them: without
/// [`FS_INTERNAL_XATTRS`], ACLs decoded.
fn compared_xattrs(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> BTreeMap<&[u8], Compared<'_>> {
    x.iter()
        .filter(|(k, _)| !is_fs_internal_xattr(k))
        .map(|(k, v)| {
            let acl = ACL_XATTRS
                .iter()
                .any(|n| n.as_bytes() == k.as_slice())
                .then(|| parse_acl(v))
                .flatten();
            (
                k.as_slice(),
                match acl {
                    Some(a) => Compared::Acl(a),
                    None => Compared::Bytes(v.as_slice()),
                },
            )
        })
        .collect()
}

/// `a` and `b` are the same as far as a copy is concerned (every field;
/// the attributes as [`compared_xattrs`] sees them).
fn same_entry(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind
        && a.mode == b.mode
        && (a.uid, a.gid) == (b.uid, b.gid)
        && a.size == b.size
        && a.content == b.content
        && a.mtime == b.mtime
        && compared_xattrs(&a.xattrs) == compared_xattrs(&b.xattrs)
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 'd', 'f', 'l', 'b', 'c', 'p', 's'
    pub kind: char,
    /// st_mode & 0o7777
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files and symlinks; 0 otherwise.
    pub size: u64,
    /// Content checksum (regular files), target (symlinks), rdev (devices).
    pub content: String,
    /// mtime seconds and nanoseconds; None for the top directory and symlinks.
    pub mtime: Option<(i64, i64)>,
    /// name -> value, sorted.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A whole tree: entries by relative path, hard-link groups, allocated bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<PathBuf, Entry>,
    /// Every set of two or more paths sharing one inode, each sorted.
    pub link_groups: Vec<Vec<PathBuf>>,
    allocated: u64,
}

impl Manifest {
    /// Bytes allocated on disk by the tree (st_blocks * 512, each inode once).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Drops the nanoseconds of every mtime, for a copy made by a tool that
    /// keeps whole seconds only (rsync before 3.1.0).
    pub fn times_in_seconds(&mut self) {
        for e in self.entries.values_mut() {
            if let Some((_, ns)) = &mut e.mtime {
                *ns = 0;
            }
        }
    }

    /// The differences between `self` (the original) and `copy`, in words,
    /// at most `limit` of them (then "... and N more"). ACLs are compared
    /// by their entries and [`FS_INTERNAL_XATTRS`] not at all (see the
    /// module doc).
    pub fn diff(&self, copy: &Manifest, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (p, a) in &self.entries {
            match copy.entries.get(p) {
                None => out.push(format!("{} is missing", p.display())),
                Some(b) if !same_entry(a, b) => {
                    out.push(format!("{} differs: {}", p.display(), describe_diff(a, b)))
                }
                Some(_) => {}
            }
        }
        for p in copy.entries.keys() {
            if !self.entries.contains_key(p) {
                out.push(format!("{} is extra in the copy", p.display()));
            }
        }
        if self.link_groups != copy.link_groups {
            out.push(format!(
                "hard-link groups differ: {} in the original, {} in the copy",
                self.link_groups.len(),
                copy.link_groups.len()
            ));
        }
        if out.len() > limit {
            let more = out.len() - limit;
            out.truncate(limit);
            out.push(format!("... and {more} more"));
        }
        out
    }
}

fn describe_diff(a: &Entry, b: &Entry) -> String {
    let mut d = Vec::new();
    if a.kind != b.kind {
        d.push(format!("type {} -> {}", a.kind, b.kind));
    }
    if a.mode != b.mode {
        d.push(format!("mode {:o} -> {:o}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        d.push(format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.size != b.size {
        d.push(format!("size {} -> {}", a.size, b.size));
    }
    if a.content != b.content {
        d.push("content".into());
    }
    if a.mtime != b.mtime {
        let t = |m: Option<(i64, i64)>| {
            m.map(|(s, ns)| format!("{s}.{ns:09}"))
                .unwrap_or_else(|| "-".into())
        };
        d.push(format!("mtime {} -> {}", t(a.mtime), t(b.mtime)));
    }
    let (xa, xb) = (compared_xattrs(&a.xattrs), compared_xattrs(&b.xattrs));
    if xa != xb {
        let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        for (k, va) in &xa {
            match xb.get(k) {
                None => d.push(format!("xattr {} missing", name(k))),
                Some(vb) if va != vb => {
                    d.push(format!("xattr {} {} -> {}", name(k), va.show(), vb.show()))
                }
                Some(_) => {}
            }
        }
        for k in xb.keys().filter(|k| !xa.contains_key(*k)) {
            d.push(format!("xattr {} extra", name(k)));
        }
    }
    d.join(", ")
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        Error::io(
            "read extended attributes of",
            p,
            std::io::Error::other("NUL in path"),
        )
    })
}

/// Every extended attribute of `p` (not following a symlink).
pub fn xattrs(p: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let c = cpath(p)?;
    let mut out = BTreeMap::new();
    // SAFETY: c is a valid C string; a null buffer asks for the size.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOTSUP) {
            return Ok(out);
        }
        return Err(Error::io("list extended attributes of", p, e));
    }
    if n == 0 {
        return Ok(out);
    }
    let mut names = vec![0u8; n as usize + 256];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(Error::io(
            "list extended attributes of",
            p,
            std::io::Error::last_os_error(),
        ));
    }
    names.truncate(n as usize);
    for name in names.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cname = CString::new(name).expect("split at NUL");
        // SAFETY: valid C strings; null buffer asks for the size.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return Err(Error::io(
                "read extended attribute of",
                p,
                std::io::Error::last_os_error(),
            ));
        }
        let mut val = vec![0u8; len as usize + 64];
        // SAFETY: the buffer is valid for its length.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if len < 0 {
            return Err(Error::io(
                "read extended attribute of",
                p,
                std::io::Error::last_os_error(),
            ));
        }
        val.truncate(len as usize);
        out.insert(name.to_vec(), val);
    }
    Ok(out)
}

fn checksum(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).map_err(|e| Error::io("open", p, e))?;
    // SipHash with fixed keys and FNV-1a side by side: 128 bits, stable for
    // the one process that compares the two manifests.
    let mut h = std::hash::DefaultHasher::new();
    let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", p, e))?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
        for &b in &buf[..n] {
            fnv = (fnv ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{:016x}{:016x}", h.finish(), fnv))
}

/// The bytes the tree at `top` occupies on disk (st_blocks * 512, each
/// inode once; sparse files count what they occupy), without reading any
/// content: the size check before a copy.
pub fn allocated_bytes(top: &Path) -> Result<u64> {
    let meta = std::fs::symlink_metadata(top).map_err(|e| Error::io("stat", top, e))?;
    let root_dev = meta.dev();
    let mut seen: std::collections::BTreeSet<u64> = Default::default();
    let mut total: u64 = 0;
    let mut stack = vec![top.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).map_err(|e| Error::io("stat", &p, e))?;
        if md.dev() != root_dev {
            continue;
        }
        if seen.insert(md.ino()) {
            total = total.saturating_add(md.blocks().saturating_mul(512));
        }
        if md.is_dir() {
            for ent in std::fs::read_dir(&p).map_err(|e| Error::io("list", &p, e))? {
                let ent = ent.map_err(|e| Error::io("list", &p, e))?;
                stack.push(ent.path());
            }
        }
    }
    Ok(total)
}

/// Take the manifest of the tree at `top`.
pub fn take(top: &Path, skip_top: &[&str]) -> Result<Manifest> {
    let meta = std::fs::symlink_metadata(top).map_err(|e| Error::io("stat", top, e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            "take the manifest of",
            top,
            std::io::Error::other("not a directory"),
        ));
    }
    let mut m = Manifest::default();
    let mut inodes: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    let mut seen_alloc: std::collections::BTreeSet<u64> = Default::default();
    let root_dev = meta.dev();
    let mut stack: Vec<PathBuf> = vec![PathBuf::from(".")];
    while let Some(rel) = stack.pop() {
        let full = if rel == Path::new(".") {
            top.to_path_buf()
        } else {
            top.join(&rel)
        };
        let md = std::fs::symlink_metadata(&full).map_err(|e| Error::io("stat", &full, e))?;
        if md.dev() != root_dev {
            return Err(Error::io(
                "take the manifest of",
                &full,
                std::io::Error::other("another filesystem is mounted here"),
            ));
        }
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let (size, content) = match kind {
            'f' => (md.size(), checksum(&full)?),
            'l' => {
                let t = std::fs::read_link(&full).map_err(|e| Error::io("read link", &full, e))?;
                (
                    md.size(),
                    String::from_utf8_lossy(t.as_os_str().as_bytes()).into_owned(),
                )
            }
            'b' | 'c' => (0, format!("{:x}", md.rdev())),
            _ => (0, String::new()),
        };
        if seen_alloc.insert(md.ino()) {
            m.allocated = m.allocated.saturating_add(md.blocks().saturating_mul(512));
        }
        if kind != 'd' && md.nlink() > 1 {
            inodes.entry(md.ino()).or_default().push(rel.clone());
        }
        let mtime = if rel == Path::new(".") || kind == 'l' {
            None
        } else {
            Some((md.mtime(), md.mtime_nsec()))
        };
        m.entries.insert(
            rel.clone(),
            Entry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size,
                content,
                mtime,
                xattrs: xattrs(&full)?,
            },
        );
        if kind == 'd' {
            let rd = std::fs::read_dir(&full).map_err(|e| Error::io("list", &full, e))?;
            for ent in rd {
                let ent = ent.map_err(|e| Error::io("list", &full, e))?;
                let name = ent.file_name();
                if rel == Path::new(".") && skip_top.iter().any(|s| name.as_bytes() == s.as_bytes())
                {
                    continue;
                }
                stack.push(if rel == Path::new(".") {
                    PathBuf::from(&name)
                } else {
                    rel.join(&name)
                });
            }
        }
    }
    let mut groups: Vec<Vec<PathBuf>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    m.link_groups = groups;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vzfs-manifest-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tree(d: &Path) {
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/f"), "hello").unwrap();
        std::fs::hard_link(d.join("a/f"), d.join("a/b/g")).unwrap();
        std::os::unix::fs::symlink("../f", d.join("a/b/l")).unwrap();
        std::fs::set_permissions(d.join("a/f"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    }

    #[test]
    fn same_tree_same_manifest_and_every_change_is_seen() {
        let (x, y) = (tmp("x"), tmp("y"));
        tree(&x);
        tree(&y);
        std::fs::create_dir(y.join("lost+found")).unwrap();
        // mtimes differ (made at different instants): align them
        for p in ["a/f", "a", "a/b"] {
            let t = std::fs::metadata(x.join(p)).unwrap().modified().unwrap();
            std::fs::File::open(y.join(p))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let mx = take(&x, &[]).unwrap();
        let my = take(&y, &["lost+found"]).unwrap();
        assert_eq!(mx.diff(&my, 10), Vec::<String>::new());
        assert_eq!(mx.link_groups.len(), 1);
        assert_eq!(mx.link_groups[0].len(), 2);
        assert!(mx.allocated() > 0);
        assert_eq!(allocated_bytes(&x).unwrap(), mx.allocated());
        // content, mode, a missing and an extra file, a broken link group
        std::fs::write(y.join("a/b/g"), "hellO").unwrap();
        std::fs::set_permissions(y.join("a/b"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(y.join("extra"), "").unwrap();
        let d = mx.diff(&take(&y, &["lost+found"]).unwrap(), 10);
        let all = d.join("\n");
        assert!(
            all.contains("a/b/g differs: size") || all.contains("a/b/g differs: content"),
            "{all}"
        );
        assert!(
            all.contains("a/b differs: mode 755 -> 700") || all.contains("a/b differs: mode"),
            "{all}"
        );
        assert!(all.contains("extra is extra"), "{all}");
        std::fs::remove_file(y.join("a/b/g")).unwrap();
        std::fs::write(y.join("a/b/g"), "hello").unwrap();
        let all = mx.diff(&take(&y, &["lost+found"]).unwrap(), 10).join("\n");
        assert!(all.contains("hard-link groups differ"), "{all}");
        assert!(mx
            .diff(&take(&y, &[]).unwrap(), 1)
            .last()
            .unwrap()
            .starts_with("... and"));
        std::fs::remove_dir_all(&x).unwrap();
        std::fs::remove_dir_all(&y).unwrap();
    }

    /// An ACL in the kernel's xattr format: (tag, perm, id) entries.
    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend(tag.to_le_bytes());
            v.extend(perm.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        v
    }

    const U: u32 = u32::MAX;

    fn one(xattrs: &[(&str, Vec<u8>)]) -> Manifest {
        let mut m = Manifest::default();
        m.entries.insert(
            PathBuf::from("data/acl.txt"),
            Entry {
                kind: 'f',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 5,
                content: "c".into(),
                mtime: Some((1, 2)),
                xattrs: xattrs
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                    .collect(),
            },
        );
        m
    }

    #[test]
    fn xfs_acl_names_alone_are_no_difference_but_a_real_acl_difference_is() {
        let access = acl(&[
            (0x01, 6, U),
            (0x02, 4, 1234),
            (0x04, 4, U),
            (0x10, 4, U),
            (0x20, 4, U),
        ]);
        let default = acl(&[
            (0x01, 7, U),
            (0x04, 5, U),
            (0x08, 5, 99),
            (0x10, 5, U),
            (0x20, 0, U),
        ]);
        let ext4 = one(&[
            ("system.posix_acl_access", access.clone()),
            ("system.posix_acl_default", default.clone()),
        ]);
        // what xfs lists as root: the same ACLs and their on-disk form
        let xfs = one(&[
            ("system.posix_acl_access", access.clone()),
            ("system.posix_acl_default", default.clone()),
            ("trusted.SGI_ACL_FILE", b"\0\0\0\x05on-disk".to_vec()),
            ("trusted.SGI_ACL_DEFAULT", b"\0\0\0\x05on-disk too".to_vec()),
        ]);
        assert_eq!(ext4.diff(&xfs, 10), Vec::<String>::new());
        assert_eq!(xfs.diff(&ext4, 10), Vec::<String>::new());
        // the same ACL with its entries in another order is the same ACL
        let mut reordered = access[..4].to_vec();
        for e in access[4..].chunks(8).rev() {
            reordered.extend_from_slice(e);
        }
        let r = one(&[
            ("system.posix_acl_access", reordered),
            ("system.posix_acl_default", default.clone()),
        ]);
        assert_eq!(ext4.diff(&r, 10), Vec::<String>::new());

        // a real difference: uid 1234 may write in the copy
        let other = acl(&[
            (0x01, 6, U),
            (0x02, 6, 1234),
            (0x04, 4, U),
            (0x10, 6, U),
            (0x20, 4, U),
        ]);
        let changed = one(&[
            ("system.posix_acl_access", other.clone()),
            ("system.posix_acl_default", default.clone()),
            ("trusted.SGI_ACL_FILE", b"whatever".to_vec()),
        ]);
        let d = ext4.diff(&changed, 10);
        assert_eq!(
            d,
            vec!["data/acl.txt differs: xattr system.posix_acl_access \
                  u::rw-,u:1234:r--,g::r--,m::r--,o::r-- -> \
                  u::rw-,u:1234:rw-,g::r--,m::rw-,o::r--"
                .to_string()],
        );
        // another user in the entries, same permissions
        let other_user = one(&[
            (
                "system.posix_acl_access",
                acl(&[
                    (0x01, 6, U),
                    (0x02, 4, 4321),
                    (0x04, 4, U),
                    (0x10, 4, U),
                    (0x20, 4, U),
                ]),
            ),
            ("system.posix_acl_default", default.clone()),
        ]);
        let d = xfs.diff(&other_user, 10).join("\n");
        assert!(
            d.contains("u:1234:r--,") && d.contains("-> u::rw-,u:4321:r--,"),
            "{d}"
        );
        // a default ACL lost, one gained
        let d = ext4
            .diff(&one(&[("system.posix_acl_access", access.clone())]), 10)
            .join("\n");
        assert!(d.contains("xattr system.posix_acl_default missing"), "{d}");
        let d = one(&[("system.posix_acl_access", access.clone())])
            .diff(&xfs, 10)
            .join("\n");
        assert!(d.contains("xattr system.posix_acl_default extra"), "{d}");
        assert!(!d.contains("SGI"), "{d}");
        // only those two names are ignored: any other trusted.* counts
        let d = ext4
            .diff(
                &one(&[
                    ("system.posix_acl_access", access.clone()),
                    ("system.posix_acl_default", default.clone()),
                    ("trusted.SGI_ACL_OTHER", b"x".to_vec()),
                ]),
                10,
            )
            .join("\n");
        assert!(d.contains("xattr trusted.SGI_ACL_OTHER extra"), "{d}");
        // an undecodable ACL value is compared by its bytes
        let bad = one(&[
            ("system.posix_acl_access", b"junk".to_vec()),
            ("system.posix_acl_default", default.clone()),
        ]);
        let d = ext4.diff(&bad, 10).join("\n");
        assert!(d.contains("xattr system.posix_acl_access u::rw-"), "{d}");
        assert!(d.ends_with("-> 4 bytes"), "{d}");
    }
}
