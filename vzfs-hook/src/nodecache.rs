//! What premount needs to know about the rest of the node, at a cost that
//! does not grow with the number of containers: the other containers'
//! areas (`VE_PRIVATE`, `VE_ROOT`, canonical) for the area rules, and the
//! UUID of every mounted filesystem of a type for the same-filesystem rule.
//! Both are kept in one index, `LOCKDIR/vzfs-node.cache`, and every part of
//! it is used only where its validity is proven on this start; what cannot
//! be proven is read again, exactly as without the index.
//!
//! Proofs, each a `stat` (no file content is trusted on its word):
//! * the scripts directory and `vz.conf`: device, inode, mode, size, mtime and
//!   ctime (nanoseconds) as recorded. A file added, removed or renamed in
//!   the directory changes its times; a changed `vz.conf` rebuilds it all.
//! * each container config: the same six values. An edit in place keeps the
//!   inode, perhaps the size and (with `touch -d`) the mtime, but always moves
//!   the ctime, which nobody can set back.
//! * a canonical area path: cached only when it equals the configured path
//!   (no symlink on the way); then every directory above it is checked as
//!   recorded (a symlink made, a directory renamed or replaced, or a mount
//!   on one of them, changes its inode, device or times). Areas reached
//!   through symlinks are resolved on every start.
//! * "racy" records: a time less than [`RACY_NS`] before the index was built
//!   may be followed, within the same clock tick, by a change that leaves it
//!   equal; such a record is never trusted (read again, and the index
//!   rewritten so the next start can trust it).
//! * a mounted filesystem's UUID: keyed by its `/sys/fs/<type>/<dev>`
//!   entry's inode, which the kernel makes anew for every mount: a device
//!   mounted again (or another filesystem on it) is read again. Residual
//!   difference from reading every superblock on every start: a UUID changed
//!   while the filesystem stays mounted (`tune2fs -U` through the kernel's
//!   ioctl) is seen at its next mount, not at once.
//!
//! The index is used only when it and `LOCKDIR` belong to root and are not
//! writable by group or others, is a regular file of at most
//! [`MAX_CACHE_BYTES`], and parses whole (an end line with the counts); any
//! doubt and it is ignored and rebuilt. It is written atomically (a
//! temporary file, then rename) without fsync: a torn index after a crash
//! does not parse and is rebuilt. Nothing is kept per container beyond its
//! file name, six numbers and two paths.

use crate::config::{self, ConfigFile, VzConfig};
use crate::device::{self, Probe};
use crate::log;
use crate::paths;
use std::collections::HashMap;
use std::os::unix::fs::{DirEntryExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The index's file name in `LOCKDIR`.
pub const CACHE_NAME: &str = "vzfs-node.cache";
/// The largest index read (1000 containers take about 200 KiB).
pub const MAX_CACHE_BYTES: u64 = 32 << 20;
/// Records younger than this when the index was built are not trusted.
pub const RACY_NS: i128 = 2_000_000_000;
const MAGIC: &str = "vzfs-node-cache 1";

/// What a `stat` says of a file or directory, as far as the proofs use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub size: u64,
    pub mtime: i128,
    pub ctime: i128,
}

impl Key {
    pub fn of(m: &std::fs::Metadata) -> Key {
        Key {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            mtime: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }
    fn lstat(p: &Path) -> Option<Key> {
        std::fs::symlink_metadata(p).ok().map(|m| Key::of(&m))
    }
    /// Changed so close to `built` that a later change could leave it equal.
    fn racy(&self, built: i128) -> bool {
        self.mtime > built - RACY_NS || self.ctime > built - RACY_NS
    }
    fn encode(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.dev, self.ino, self.mode, self.size, self.mtime, self.ctime
        )
    }
    fn decode<'a>(w: &mut impl Iterator<Item = &'a str>) -> Option<Key> {
        Some(Key {
            dev: w.next()?.parse().ok()?,
            ino: w.next()?.parse().ok()?,
            mode: w.next()?.parse().ok()?,
            size: w.next()?.parse().ok()?,
            mtime: w.next()?.parse::<i64>().ok()?.into(),
            ctime: w.next()?.parse::<i64>().ok()?.into(),
        })
    }
}

/// (key, configured path, canonical path) of one area in the index.
pub type CtArea = (&'static str, Arc<Path>, Arc<Path>);

/// One container config (`<id>.conf`) as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntry {
    /// The CTID: digits only.
    pub id: Arc<str>,
    pub key: Key,
    /// `None`: the config could not be read (warned each start, read again).
    /// Else (key, configured path, canonical path) per area, both
    /// [`paths::normal`]; the same `Arc` when they are equal.
    pub areas: Option<Vec<CtArea>>,
}

/// The parsed index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeCache {
    /// CLOCK_REALTIME nanoseconds when it was built.
    pub built: i128,
    pub dir: Option<Key>,
    pub global: Option<Key>,
    /// Directories above the cached canonical areas, as recorded.
    pub ancestors: Vec<(PathBuf, Key)>,
    pub cts: Vec<CtEntry>,
    /// (fs type dir, device name, sysfs inode, UUID).
    pub fs: Vec<(String, String, u64, String)>,
}

/// A path in the index: bytes as `\xHH` where they are not plain.
pub fn escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_graphic() && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if s.is_empty() {
        s.push_str("\\x");
    }
    s
}

/// The inverse of [`escape`]; `None` for anything [`escape`] cannot write.
pub fn unescape(s: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    if s == "\\x" {
        return Some(PathBuf::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let h = s.get(i + 2..i + 4)?;
            if b.get(i + 1) != Some(&b'x') || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 4;
        } else if b[i].is_ascii_graphic() {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// An area path of the index: [`unescape`]d and [`paths::normal`], with one
/// allocation in the usual case (plain text, already normal).
fn area_path(s: &str) -> Option<Arc<Path>> {
    let b = s.as_bytes();
    let plain = !b.contains(&b'\\')
        && b.first() == Some(&b'/')
        && (b.len() == 1 || !b.ends_with(b"/"))
        && !b.windows(2).any(|w| w == b"//")
        && !b.windows(3).any(|w| w == b"/./")
        && !b.ends_with(b"/.");
    if plain {
        return Some(Arc::from(Path::new(s)));
    }
    Some(paths::normal(&unescape(s)?).into())
}

fn area_key(k: &str) -> Option<&'static str> {
    match k {
        "VE_PRIVATE" => Some("VE_PRIVATE"),
        "VE_ROOT" => Some("VE_ROOT"),
        _ => None,
    }
}

impl NodeCache {
    /// The index as text.
    pub fn render(&self) -> String {
        let mut s = format!("{MAGIC}\nbuilt {}\n", self.built);
        if let Some(d) = &self.dir {
            s.push_str(&format!("dir {}\n", d.encode()));
        }
        if let Some(g) = &self.global {
            s.push_str(&format!("global {}\n", g.encode()));
        }
        for (p, k) in &self.ancestors {
            s.push_str(&format!("anc {} {}\n", escape(p), k.encode()));
        }
        for c in &self.cts {
            s.push_str(&format!("ct {} {}", c.id, c.key.encode()));
            match &c.areas {
                None => s.push_str(" bad"),
                Some(a) => {
                    s.push_str(&format!(" {}", a.len()));
                    for (k, conf, canon) in a {
                        let canon = if canon == conf {
                            "=".to_string()
                        } else {
                            escape(canon)
                        };
                        s.push_str(&format!(" {k} {} {canon}", escape(conf)));
                    }
                }
            }
            s.push('\n');
        }
        for (t, d, ino, u) in &self.fs {
            s.push_str(&format!(
                "fs {} {} {ino} {}\n",
                escape(Path::new(t)),
                escape(Path::new(d)),
                escape(Path::new(u))
            ));
        }
        s.push_str(&format!(
            "end {} {} {}\n",
            self.ancestors.len(),
            self.cts.len(),
            self.fs.len()
        ));
        s
    }

    /// Parses [`NodeCache::render`]'s text; `None` unless it is whole.
    pub fn parse(text: &str) -> Option<NodeCache> {
        let mut lines = text.split('\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let mut c = NodeCache::default();
        let mut ended = false;
        let text_of = |p: PathBuf| p.into_os_string().into_string().ok();
        for line in lines {
            if ended {
                if line.is_empty() {
                    continue;
                }
                return None;
            }
            // single spaces only: an empty word (two spaces) fails the parse;
            // a closure, not `' '`: a quarter of the instructions on short words
            #[allow(clippy::manual_pattern_char_comparison)]
            let mut w = line.split(|c: char| c == ' ');
            match w.next()? {
                "built" => c.built = w.next()?.parse().ok()?,
                "dir" => c.dir = Some(Key::decode(&mut w)?),
                "global" => c.global = Some(Key::decode(&mut w)?),
                "anc" => {
                    let p = unescape(w.next()?)?;
                    c.ancestors.push((p, Key::decode(&mut w)?));
                }
                "ct" => {
                    let id = w.next()?;
                    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let key = Key::decode(&mut w)?;
                    let areas = match w.next()? {
                        "bad" => None,
                        n => {
                            let n: usize = n.parse().ok()?;
                            if n > 2 {
                                return None;
                            }
                            let mut v = Vec::with_capacity(n);
                            for _ in 0..n {
                                let k = area_key(w.next()?)?;
                                let conf = area_path(w.next()?)?;
                                let canon = match w.next()? {
                                    "=" => conf.clone(),
                                    x => area_path(x)?,
                                };
                                v.push((k, conf, canon));
                            }
                            Some(v)
                        }
                    };
                    c.cts.push(CtEntry {
                        id: id.into(),
                        key,
                        areas,
                    });
                }
                "fs" => {
                    let t = text_of(unescape(w.next()?)?)?;
                    let d = text_of(unescape(w.next()?)?)?;
                    let ino = w.next()?.parse().ok()?;
                    let u = text_of(unescape(w.next()?)?)?;
                    c.fs.push((t, d, ino, u));
                }
                "end" => {
                    let counts: Vec<usize> = w.map(|x| x.parse().ok()).collect::<Option<_>>()?;
                    if counts != [c.ancestors.len(), c.cts.len(), c.fs.len()] {
                        return None;
                    }
                    ended = true;
                    continue;
                }
                _ => return None,
            }
            if w.next().is_some() {
                return None;
            }
        }
        ended.then_some(c)
    }

    /// The index of `lockdir`, if it can be trusted to be root's own.
    pub fn load(lockdir: &Path) -> Option<NodeCache> {
        use std::io::Read;
        let dm = std::fs::symlink_metadata(lockdir).ok()?;
        if !dm.is_dir() || dm.uid() != 0 || dm.mode() & 0o022 != 0 {
            return None;
        }
        let path = lockdir.join(CACHE_NAME);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&path)
            .ok()?;
        let m = f.metadata().ok()?;
        if !m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0 || m.len() > MAX_CACHE_BYTES {
            return None;
        }
        let mut text = String::with_capacity(m.len() as usize);
        f.take(MAX_CACHE_BYTES).read_to_string(&mut text).ok()?;
        NodeCache::parse(&text)
    }

    /// Writes the index into `lockdir` (temporary file, rename; no fsync).
    /// Failures are only logged: the index is an optimisation.
    pub fn store(&self, lockdir: &Path) {
        use std::io::Write;
        let Ok(dm) = std::fs::symlink_metadata(lockdir) else {
            return;
        };
        if !dm.is_dir() || dm.uid() != 0 || dm.mode() & 0o022 != 0 {
            return;
        }
        let path = lockdir.join(CACHE_NAME);
        let tmp = lockdir.join(format!(".{CACHE_NAME}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let r = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .and_then(|mut f| f.write_all(self.render().as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            log::debug(&format!("could not write {}: {e}", path.display()));
        }
    }
}

/// The index as this process last read or wrote it, so premount reads the
/// file once for both of its uses.
static CURRENT: std::sync::Mutex<Option<(PathBuf, Arc<NodeCache>)>> = std::sync::Mutex::new(None);

fn load_current(lockdir: &Path) -> Option<Arc<NodeCache>> {
    let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    match &*cur {
        Some((d, c)) if d == lockdir => Some(c.clone()),
        _ => {
            let c = Arc::new(NodeCache::load(lockdir)?);
            *cur = Some((lockdir.to_path_buf(), c.clone()));
            Some(c)
        }
    }
}

fn store_current(lockdir: &Path, c: NodeCache) {
    c.store(lockdir);
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some((lockdir.to_path_buf(), Arc::new(c)));
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Every directory strictly above `p` (`/vz/private/101` -> `/`, `/vz`,
/// `/vz/private`).
fn ancestors_of(p: &Path) -> impl Iterator<Item = &Path> {
    p.ancestors().skip(1)
}

/// The parent of a [`paths::normal`] absolute path, by its last `/`
/// (`Path::parent` walks the components).
fn parent_of(p: &Path) -> Option<&Path> {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    let i = b.iter().rposition(|&c| c == b'/')?;
    if b.len() <= 1 {
        return None;
    }
    Some(Path::new(std::ffi::OsStr::from_bytes(if i == 0 {
        b"/"
    } else {
        &b[..i]
    })))
}

/// `fstatat(dir, "<id>.conf", AT_SYMLINK_NOFOLLOW)` without an allocation:
/// the per-config cost of a start that trusts the index.
fn stat_conf(dir: &std::fs::File, id: &str) -> Option<Key> {
    use std::os::fd::AsRawFd;
    let mut name = [0u8; 32];
    let n = id.len();
    if n == 0 || n + 6 > name.len() {
        return None;
    }
    name[..n].copy_from_slice(id.as_bytes());
    name[n..n + 5].copy_from_slice(b".conf");
    // SAFETY: `name` is NUL-terminated (zeroed past the name); `st` is
    // written by the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr() as *const libc::c_char,
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    (r == 0).then(|| Key {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        size: st.st_size as u64,
        mtime: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
        ctime: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
    })
}

/// The other containers' areas: (CTID, key, canonical path) of
/// `VE_PRIVATE` and `VE_ROOT` of every `<CTID>.conf` in `scripts_dir` but
/// `own`, each config merged with `global` (read from `global_path`) as
/// vzctl merges them. A config that cannot be read is a warning naming it,
/// never a reason to stop. Uses and refreshes the index of `lockdir`.
pub fn other_areas(
    scripts_dir: &Path,
    global_path: &Path,
    global: &ConfigFile,
    own: &str,
    lockdir: &Path,
) -> crate::error::Result<Vec<paths::Area>> {
    let list_err = |e| crate::error::Error::io("list container configs", scripts_dir, e);
    let old = load_current(lockdir).unwrap_or_default();
    let built = now_ns();
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(scripts_dir)
        .map_err(list_err)?;
    let dir_key = Key::of(&dir.metadata().map_err(list_err)?);
    let global_key = Key::lstat(global_path);
    let trust_all = old.built != 0
        && old.global == global_key
        && !global_key.is_some_and(|k| k.racy(old.built));
    let names_ok = trust_all && old.dir == Some(dir_key) && !dir_key.racy(old.built);
    // Canonical paths recorded without symlinks stay true while every
    // directory above them is as recorded (and recorded: an index that
    // leaves one out proves nothing for that path).
    let canon_ok = trust_all
        && old
            .ancestors
            .iter()
            .all(|(p, k)| !k.racy(old.built) && Key::lstat(p) == Some(*k));
    let proven = |conf: &Path| {
        canon_ok && ancestors_of(conf).all(|a| old.ancestors.iter().any(|(p, _)| p == a))
    };
    // The usual start: every record proven by a stat, nothing to write.
    if names_ok && canon_ok {
        let mut parents: Vec<&Path> = Vec::new();
        let all = old.cts.iter().all(|c| {
            stat_conf(&dir, &c.id).is_some_and(|k| k == c.key && !k.racy(old.built))
                && c.areas.as_ref().is_some_and(|a| {
                    a.iter().all(|(_, conf, canon)| {
                        Arc::ptr_eq(conf, canon)
                            && parent_of(conf).is_some_and(|p| {
                                parents.contains(&p)
                                    || (proven(conf) && {
                                        parents.push(p);
                                        true
                                    })
                            })
                    })
                })
        });
        if all {
            return Ok(old
                .cts
                .iter()
                .filter(|c| &*c.id != own)
                .flat_map(|c| {
                    c.areas
                        .iter()
                        .flatten()
                        .map(move |(k, _, canon)| (c.id.clone(), *k, canon.clone()))
                })
                .collect());
        }
    }
    let old_cts: HashMap<&str, &CtEntry> = if trust_all {
        old.cts.iter().map(|c| (&*c.id, c)).collect()
    } else {
        HashMap::new()
    };
    // The names: the recorded ones while the directory is as recorded.
    let ids: Vec<Arc<str>> = if names_ok {
        old.cts.iter().map(|c| c.id.clone()).collect()
    } else {
        let rd = std::fs::read_dir(scripts_dir).map_err(list_err)?;
        let mut v: Vec<Arc<str>> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| {
                n.strip_suffix(".conf")
                    .filter(|id| {
                        !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
                    })
                    .map(Arc::from)
            })
            .collect();
        v.sort();
        v
    };
    let mut changed = !names_ok || !canon_ok || dir_key.racy(built);
    let mut cts = Vec::with_capacity(ids.len());
    let mut out = Vec::new();
    let canon = |p: &Path| -> Arc<Path> {
        let n = paths::normal(p);
        match paths::canonical_if_exists(&n).ok().flatten() {
            Some(c) if c == n => n.into(),
            Some(c) => paths::normal(&c).into(),
            None => n.into(),
        }
    };
    for id in ids {
        let Some(key) = stat_conf(&dir, &id) else {
            changed = true;
            continue;
        };
        let cached = old_cts
            .get(&*id)
            .filter(|c| c.key == key && !key.racy(old.built) && c.areas.is_some());
        let areas = match cached {
            Some(c) => {
                let a: Vec<_> = c
                    .areas
                    .iter()
                    .flatten()
                    .map(|(k, conf, cn)| {
                        if Arc::ptr_eq(conf, cn) && proven(conf) {
                            (*k, conf.clone(), cn.clone())
                        } else {
                            let n = canon(conf);
                            let n = if n == *conf { conf.clone() } else { n };
                            (*k, conf.clone(), n)
                        }
                    })
                    .collect();
                if Some(&a) != c.areas.as_ref() {
                    changed = true;
                }
                Some(a)
            }
            None => {
                changed = true;
                let path = scripts_dir.join(format!("{id}.conf"));
                match config::read(&path) {
                    Ok(f) => {
                        let cfg = VzConfig::from_files(global.clone(), f, &id);
                        let mut v = Vec::new();
                        for k in ["VE_PRIVATE", "VE_ROOT"] {
                            if let Ok(Some(p)) = cfg.path_value(k) {
                                let conf: Arc<Path> = paths::normal(&p).into();
                                let c = canon(&conf);
                                let c = if c == conf { conf.clone() } else { c };
                                v.push((area_key(k).expect("known key"), conf, c));
                            }
                        }
                        Some(v)
                    }
                    Err(e) => {
                        if &*id != own {
                            log::warn(&format!(
                                "skipping the config of CT {id} in the check of other containers' areas: {e}"
                            ));
                        }
                        None
                    }
                }
            }
        };
        if key.racy(built) {
            changed = true;
        }
        let entry = CtEntry { id, key, areas };
        if &*entry.id != own {
            for (k, _, c) in entry.areas.iter().flatten() {
                out.push((entry.id.clone(), *k, c.clone()));
            }
        }
        cts.push(entry);
    }
    if changed {
        let mut anc: Vec<PathBuf> = cts
            .iter()
            .flat_map(|c| c.areas.iter().flatten())
            .filter(|(_, conf, cn)| Arc::ptr_eq(conf, cn))
            .flat_map(|(_, conf, _)| ancestors_of(conf).map(Path::to_path_buf))
            .collect();
        anc.sort();
        anc.dedup();
        let ancestors = anc
            .into_iter()
            .filter_map(|p| Key::lstat(&p).map(|k| (p, k)))
            .collect();
        let new = NodeCache {
            built,
            dir: Some(dir_key),
            global: global_key,
            ancestors,
            cts,
            fs: old.fs.clone(),
        };
        store_current(lockdir, new);
    }
    Ok(out)
}

/// The UUID of every mounted filesystem listed in `sysfs_dir`
/// (`/sys/fs/ext4`, `/sys/fs/xfs`) but `skip`: (device node, UUID), from
/// the index where the kernel's entry for that mount is the one recorded,
/// else read from the device (and recorded).
pub fn mounted_uuids(sysfs_dir: &str, skip: &Path, lockdir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(rd) = std::fs::read_dir(sysfs_dir) else {
        return Vec::new();
    };
    let cache = load_current(lockdir);
    let known: HashMap<(String, u64), String> = cache
        .iter()
        .flat_map(|c| c.fs.iter())
        .filter(|(t, ..)| t == sysfs_dir)
        .map(|(_, d, ino, u)| ((d.clone(), *ino), u.clone()))
        .collect();
    let mut out = Vec::new();
    let mut fresh = Vec::new();
    let mut changed = false;
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name == "features" {
            continue;
        }
        let node = Path::new("/dev").join(&name);
        if node == skip {
            continue;
        }
        let ino = e.ino();
        let uuid = match known.get(&(name.clone(), ino)) {
            Some(u) => Some(u.clone()),
            None => {
                // read every time while it cannot be read (no node here);
                // the index changes only for what was learnt
                let is_block = std::fs::metadata(&node)
                    .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
                    .unwrap_or(false);
                match device::probe_mounted(&node) {
                    Ok(Probe::Fs(f)) if is_block => f.uuid,
                    _ => None,
                }
            }
        };
        if let Some(u) = uuid {
            changed |= !known.contains_key(&(name.clone(), ino));
            fresh.push((sysfs_dir.to_string(), name.clone(), ino, u.clone()));
            out.push((node, u));
        }
    }
    let stale = known.len() != fresh.len();
    if changed || stale {
        let mut c = cache.map(|c| (*c).clone()).unwrap_or_default();
        c.fs.retain(|(t, ..)| t != sysfs_dir);
        c.fs.extend(fresh);
        store_current(lockdir, c);
    }
    out
}

/// Where the kernel has no `/sys/fs/<type>` list of mounted devices (xfs
/// before Linux 3.18, btrfs before 3.14: an OpenVZ 6 node): the filesystems
/// of `fstype` mounted in this mount namespace (its mountinfo) but
/// on `skip`, with the UUID their superblock holds. No other device is
/// opened (an exclusive open would make a concurrent mount of it fail, a
/// read of an idle one may hang on a dead path). Mounts made only inside
/// another mount namespace are not seen here: those kernels have no
/// `/proc/PID/ns` to find them by; premount still refuses the device itself
/// when it is held anywhere (its exclusive open).
pub fn mounted_here_uuids(fstype: &str, skip: &Path) -> Vec<(PathBuf, String)> {
    let p = [crate::sys::MOUNTINFO, crate::sys::MOUNTINFO_OLD]
        .map(Path::new)
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or(Path::new(crate::sys::MOUNTINFO_OLD));
    let Ok(text) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    let Ok(t) = crate::mountinfo::MountTable::parse(p, &text) else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in t.entries.iter().filter(|e| e.fstype == fstype) {
        if seen.contains(&e.dev) {
            continue;
        }
        seen.push(e.dev);
        let Some(node) = device::node_for(e.dev) else {
            continue;
        };
        if node == skip {
            continue;
        }
        if let Ok(Probe::Fs(f)) = device::probe_mounted(&node) {
            if let Some(u) = f.uuid {
                out.push((node, u));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trip() {
        for p in ["/vz/private/101", "/a b/\n\\x/é", ""] {
            let e = escape(Path::new(p));
            assert!(!e.contains(' ') && !e.contains('\n'), "{e}");
            assert_eq!(unescape(&e), Some(PathBuf::from(p)), "{p:?}");
        }
        assert_eq!(unescape("a\\xZZ"), None);
        assert_eq!(unescape("a b"), None);
    }

    #[test]
    fn render_parse_round_trip_and_torn_files() {
        let k = Key {
            dev: 1,
            ino: 2,
            mode: 0o100644,
            size: 3,
            mtime: 4,
            ctime: -5,
        };
        let c = NodeCache {
            built: 99,
            dir: Some(k),
            global: None,
            ancestors: vec![(PathBuf::from("/vz"), k)],
            cts: vec![
                CtEntry {
                    id: "101".into(),
                    key: k,
                    areas: Some(vec![(
                        "VE_PRIVATE",
                        Path::new("/vz/private/101").into(),
                        Path::new("/vz/private/101").into(),
                    )]),
                },
                CtEntry {
                    id: "103".into(),
                    key: k,
                    areas: Some(vec![(
                        "VE_ROOT",
                        Path::new("/srv/x y").into(),
                        Path::new("/data/103").into(),
                    )]),
                },
                CtEntry {
                    id: "102".into(),
                    key: k,
                    areas: None,
                },
            ],
            fs: vec![("/sys/fs/ext4".into(), "loop1".into(), 77, "ab-cd".into())],
        };
        let t = c.render();
        assert_eq!(NodeCache::parse(&t), Some(c.clone()));
        // torn anywhere: refused
        for cut in 0..t.len() - 1 {
            assert_eq!(NodeCache::parse(&t[..cut]), None, "cut at {cut}");
        }
        assert_eq!(NodeCache::parse(&t.replace("end 1 3 1", "end 1 2 1")), None);
        assert_eq!(NodeCache::parse(&format!("{t}ct x\n")), None);
    }

    #[test]
    fn parents() {
        for p in ["/", "/vz", "/vz/private/101", "/a/b/.."] {
            assert_eq!(parent_of(Path::new(p)), Path::new(p).parent(), "{p}");
        }
    }
}
