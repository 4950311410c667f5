//! Installing the hook: vzctl's action scripts `vps.premount` /
//! `vps.postumount` (or `CTID.premount` / `CTID.postumount`) as symlinks to
//! `vzfs-hook` in vzctl's script directory, and the admin's own scripts
//! already there.
//!
//! An existing script that is not ours is never replaced silently:
//! * plain `install` refuses (nothing changes, the message says what to do);
//! * `install --chain` moves it into `SCRIPTS_DIR/vzfs-chained/` under its own
//!   name, where the hook runs it ([`crate::chain`]);
//! * `install --force` moves it into `SCRIPTS_DIR/vzfs-saved/`, never run;
//! * `uninstall` removes only our symlinks and renames every kept script back
//!   (the same inode: byte for byte, mode, owner and times).
//!
//! Every change is atomic for vzctl: the admin's script is first hard-linked
//! into the keep directory, then our symlink (made under a temporary name) is
//! renamed over it, so at no moment does vzctl find no script; directories
//! are fsynced after each step. All names are checked before anything
//! changes, so a refusal leaves the directory as it was.

use crate::error::exit;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the symlinks point at.
pub const DEFAULT_HOOK_PATH: &str = "/usr/sbin/vzfs-hook";
/// Where vzctl looks for scripts on some distributions (when `/etc/vz/conf` is absent).
pub const SYSCONFIG_SCRIPTS_DIR: &str = "/etc/sysconfig/vz-scripts";
/// Admin scripts run by the hook (`install --chain`).
pub const CHAINED_DIR: &str = "vzfs-chained";
/// Admin scripts replaced by `install --force`: kept, not run.
pub const SAVED_DIR: &str = "vzfs-saved";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Usage(String),

    /// Nothing was changed; the message says why and what to do.
    #[error("{0}")]
    Refused(String),

    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// A file in the chained directory the hook must not run.
    #[error("{path}: {msg}; the hook does not run it (nor mount anything). Fix it (root-owned regular executable file, not writable by group/others, one link, in a root-owned directory), or run `vzfs-hook uninstall` to put it back")]
    Unsafe { path: PathBuf, msg: String },

    #[error("chained admin script {path} {how}")]
    ChainFailed { path: PathBuf, how: String },
}

impl InstallError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::Usage(_) => exit::USAGE,
            // a refusal: an admin's script is in the way, `--check` found a
            // hook missing or foreign, a chained script is unsafe to run
            InstallError::Refused(_) | InstallError::Unsafe { .. } => exit::REFUSED,
            InstallError::Io { .. } => exit::SYSTEM,
            InstallError::ChainFailed { .. } => exit::CHAINED_FAILED,
        }
    }
}

pub type Result<T> = std::result::Result<T, InstallError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// vzctl's action script directory under `etc_vz` (`ETC_VZ/conf`), or
/// `/etc/sysconfig/vz-scripts` when `etc_vz` is the default `/etc/vz` and only
/// that directory exists.
pub fn default_scripts_dir(etc_vz: &Path) -> PathBuf {
    let conf = etc_vz.join("conf");
    if etc_vz == Path::new("/etc/vz") && !conf.is_dir() && Path::new(SYSCONFIG_SCRIPTS_DIR).is_dir()
    {
        PathBuf::from(SYSCONFIG_SCRIPTS_DIR)
    } else {
        conf
    }
}

/// The script directory and the binary our symlinks point at.
#[derive(Debug, Clone)]
pub struct Layout {
    pub scripts_dir: PathBuf,
    pub hook_path: PathBuf,
}

/// What `install` does with an admin's script in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse.
    Plain,
    /// Keep it in `vzfs-chained/` and run it from the hook.
    Chain,
    /// Keep it in `vzfs-saved/`, not run.
    Force,
}

/// The hook names for `ctids` (none: the global `vps.*` pair).
pub fn hook_names(ctids: &[String]) -> Result<Vec<String>> {
    if ctids.is_empty() {
        return Ok(vec!["vps.premount".into(), "vps.postumount".into()]);
    }
    let mut v = Vec::new();
    for c in ctids {
        crate::config::validate_ctid(c)
            .map_err(|e| InstallError::Usage(format!("--ctid {c}: {e}")))?;
        v.push(format!("{c}.premount"));
        v.push(format!("{c}.postumount"));
    }
    Ok(v)
}

fn is_hook_name(n: &str) -> bool {
    n.ends_with(".premount") || n.ends_with(".postumount")
}

/// What is at a hook's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// A symlink to our binary.
    Ours,
    /// A regular file.
    File {
        mode: u32,
        uid: u32,
        nlink: u64,
        size: u64,
    },
    /// A symlink to something else.
    Symlink(PathBuf),
    /// A directory, device, fifo, socket.
    Other,
}

impl Found {
    fn describe(&self) -> String {
        match self {
            Found::Absent => "absent".into(),
            Found::Ours => "vzfs-hook".into(),
            Found::File { mode, size, .. } => {
                format!("a regular file ({size} bytes, mode {:04o})", mode & 0o7777)
            }
            Found::Symlink(t) => format!("a symlink to {}", t.display()),
            Found::Other => "not a regular file or symlink".into(),
        }
    }
}

impl Layout {
    pub fn chained_dir(&self) -> PathBuf {
        self.scripts_dir.join(CHAINED_DIR)
    }
    pub fn saved_dir(&self) -> PathBuf {
        self.scripts_dir.join(SAVED_DIR)
    }

    /// Is `link` (the text of a symlink at `at`) our binary? The configured
    /// path, the same file by another spelling, or any file named
    /// `vzfs-hook` (an install made with another `--hook-path`).
    fn points_at_us(&self, at: &Path, link: &Path) -> bool {
        if link == self.hook_path || link.file_name() == Some(std::ffi::OsStr::new("vzfs-hook")) {
            return true;
        }
        // Another spelling of the same file (a relative link, /sbin -> /usr/sbin).
        match (fs::metadata(at), fs::metadata(&self.hook_path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    pub fn inspect(&self, name: &str) -> Result<Found> {
        let p = self.scripts_dir.join(name);
        let md = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) => return Err(io_err("lstat", &p)(e)),
        };
        let ft = md.file_type();
        if ft.is_symlink() {
            let t = fs::read_link(&p).map_err(io_err("readlink", &p))?;
            return Ok(if self.points_at_us(&p, &t) {
                Found::Ours
            } else {
                Found::Symlink(t)
            });
        }
        if ft.is_file() {
            return Ok(Found::File {
                mode: md.permissions().mode(),
                uid: md.uid(),
                nlink: md.nlink(),
                size: md.len(),
            });
        }
        Ok(Found::Other)
    }

    fn kept(&self, name: &str) -> Result<Option<PathBuf>> {
        for d in [self.chained_dir(), self.saved_dir()] {
            let p = d.join(name);
            match fs::symlink_metadata(&p) {
                Ok(_) => return Ok(Some(p)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("lstat", &p)(e)),
            }
        }
        Ok(None)
    }

    fn check_scripts_dir(&self) -> Result<()> {
        match fs::metadata(&self.scripts_dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(InstallError::Refused(format!(
                "{} is not a directory",
                self.scripts_dir.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(InstallError::Refused(format!(
                "{} does not exist: is vzctl installed? (--scripts-dir DIR or --etc-vz DIR for another place)",
                self.scripts_dir.display()
            ))),
            Err(e) => Err(io_err("stat", &self.scripts_dir)(e)),
        }
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The checks the hook applies before running a chained script, on metadata.
pub(crate) fn unsafe_reason(md: &fs::Metadata) -> Option<String> {
    let mode = md.permissions().mode();
    if !md.file_type().is_file() {
        return Some("not a regular file".into());
    }
    if md.uid() != euid() {
        return Some(format!("owned by uid {}, not by root", md.uid()));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "writable by group or others (mode {:04o})",
            mode & 0o7777
        ));
    }
    if mode & 0o100 == 0 {
        return Some(format!(
            "not executable (mode {:04o}); vzctl could not run it either",
            mode & 0o7777
        ));
    }
    if md.nlink() != 1 {
        return Some(format!(
            "has {} hard links (another name could change it)",
            md.nlink()
        ));
    }
    None
}

/// A keep directory: created 0700 if missing; must be a real directory owned
/// by us and not writable by group/others.
fn ensure_private_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io_err("mkdir", dir))?;
            sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
            Ok(())
        }
        Err(e) => Err(io_err("lstat", dir)(e)),
        Ok(m) => {
            if !m.file_type().is_dir() {
                return Err(InstallError::Refused(format!(
                    "{} exists and is not a directory (a symlink?); remove it first",
                    dir.display()
                )));
            }
            if m.uid() != euid() || m.permissions().mode() & 0o022 != 0 {
                return Err(InstallError::Refused(format!(
                    "{} must be owned by root and not writable by group/others (mode {:04o}, uid {})",
                    dir.display(),
                    m.permissions().mode() & 0o7777,
                    m.uid()
                )));
            }
            Ok(())
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync", dir))
}

/// Makes `dir/name` a symlink to `target`, atomically replacing what is there.
fn place_symlink(dir: &Path, name: &str, target: &Path) -> Result<()> {
    let tmp = dir.join(format!(".{name}.vzfs-tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io_err("symlink", &tmp))?;
    let dst = dir.join(name);
    if let Err(e) = fs::rename(&tmp, &dst) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename over", &dst)(e));
    }
    sync_dir(dir)
}

enum Action {
    Link,
    Keep(PathBuf),
    Already,
}

fn ctid_flags(names: &[String]) -> String {
    let mut s = String::new();
    for n in names {
        if let Some(c) = n.strip_suffix(".premount") {
            if c != "vps" {
                s.push_str(&format!(" --ctid {c}"));
            }
        }
    }
    s
}

/// `vzfs-hook install`: returns the lines to print.
pub fn install(layout: &Layout, names: &[String], mode: Mode) -> Result<Vec<String>> {
    layout.check_scripts_dir()?;
    let mut out = Vec::new();
    if !layout.hook_path.exists() {
        out.push(format!(
            "warning: {} does not exist (yet); vzctl cannot run the hooks until it does",
            layout.hook_path.display()
        ));
    }
    let flags = ctid_flags(names);
    let mut plan = Vec::new();
    let mut refusals = Vec::new();
    for name in names {
        let path = layout.scripts_dir.join(name);
        let found = layout.inspect(name)?;
        let kept = layout.kept(name)?;
        let action = match (&found, mode) {
            (Found::Absent, _) => Action::Link,
            (Found::Ours, _) => Action::Already,
            (Found::Other, _) => {
                refusals.push(format!(
                    "{} exists and is {}; it is left alone. Move it away, then run `vzfs-hook install{flags}` again",
                    path.display(),
                    found.describe()
                ));
                continue;
            }
            (_, Mode::Plain) => {
                refusals.push(format!(
                    "{} exists and is {}, not vzfs-hook; it is left alone. To keep it and run it from vzfs-hook (premount: after ours; postumount: before ours): `vzfs-hook install --chain{flags}`; to replace it (kept in {}, not run; `vzfs-hook uninstall` puts it back): `vzfs-hook install --force{flags}`",
                    path.display(),
                    found.describe(),
                    layout.saved_dir().display()
                ));
                continue;
            }
            (Found::Symlink(t), Mode::Chain) => {
                refusals.push(format!(
                    "{} is a symlink to {}; only a regular file can be chained (the hook runs chained scripts without following symlinks). Replace the link by a copy of its target, or use --force",
                    path.display(),
                    t.display()
                ));
                continue;
            }
            (Found::File { .. }, Mode::Chain) => {
                let md = fs::symlink_metadata(&path).map_err(io_err("lstat", &path))?;
                if let Some(why) = unsafe_reason(&md) {
                    refusals.push(format!(
                        "{} cannot be chained: it is {why}. Fix it (chmod/chown), then run `vzfs-hook install --chain{flags}` again",
                        path.display()
                    ));
                    continue;
                }
                Action::Keep(layout.chained_dir())
            }
            (_, Mode::Force) => Action::Keep(layout.saved_dir()),
        };
        if let (Action::Keep(_), Some(k)) = (&action, &kept) {
            refusals.push(format!(
                "{} already holds a kept script for {name}; nothing changed. Look at it and move it away (or `vzfs-hook uninstall` to put it back) first",
                k.display()
            ));
            continue;
        }
        plan.push((name.clone(), action, kept));
    }
    if !refusals.is_empty() {
        return Err(InstallError::Refused(refusals.join("\n")));
    }
    for (name, action, kept) in plan {
        let path = layout.scripts_dir.join(&name);
        match action {
            Action::Already => {
                out.push(format!(
                    "{} -> {} (already)",
                    path.display(),
                    layout.hook_path.display()
                ));
                if let Some(k) = kept {
                    let how = if k.starts_with(layout.chained_dir()) {
                        "chained"
                    } else {
                        "kept aside, not run"
                    };
                    out.push(format!("  {how}: {}", k.display()));
                }
            }
            Action::Link => {
                place_symlink(&layout.scripts_dir, &name, &layout.hook_path)?;
                out.push(format!(
                    "{} -> {}",
                    path.display(),
                    layout.hook_path.display()
                ));
            }
            Action::Keep(dir) => {
                ensure_private_dir(&dir)?;
                let dst = dir.join(&name);
                fs::hard_link(&path, &dst).map_err(io_err("link into", &dst))?;
                sync_dir(&dir)?;
                if let Err(e) = place_symlink(&layout.scripts_dir, &name, &layout.hook_path) {
                    let _ = fs::remove_file(&dst);
                    return Err(e);
                }
                let how = if mode == Mode::Chain {
                    "runs it after ours in premount, before ours in postumount"
                } else {
                    "not run; `vzfs-hook uninstall` puts it back"
                };
                out.push(format!(
                    "{} -> {}; the admin's script is now {} ({how})",
                    path.display(),
                    layout.hook_path.display(),
                    dst.display()
                ));
            }
        }
    }
    Ok(out)
}

/// Names `uninstall`/`--check` look at without `--ctid`: the global pair,
/// every `*.premount`/`*.postumount` that is ours, and everything kept.
pub fn all_names(layout: &Layout) -> Result<Vec<String>> {
    let mut names: Vec<String> = vec!["vps.premount".into(), "vps.postumount".into()];
    let mut add_dir = |dir: &Path, only_ours: bool| -> Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read directory", dir)(e)),
        };
        for ent in rd {
            let ent = ent.map_err(io_err("read directory", dir))?;
            let Some(n) = ent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_hook_name(&n) || names.contains(&n) {
                continue;
            }
            if only_ours && layout.inspect(&n)? != Found::Ours {
                continue;
            }
            names.push(n);
        }
        Ok(())
    };
    add_dir(&layout.scripts_dir, true)?;
    add_dir(&layout.chained_dir(), false)?;
    add_dir(&layout.saved_dir(), false)?;
    names[2..].sort();
    Ok(names)
}

/// `vzfs-hook uninstall`: removes our symlinks, renames kept scripts back.
/// Returns the lines to print and the problems: a kept script that cannot go
/// back (its name is taken by something that is not ours) stays where it is,
/// and every other name is still handled.
pub fn uninstall(layout: &Layout, names: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    layout.check_scripts_dir()?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let path = layout.scripts_dir.join(name);
        let found = layout.inspect(name)?;
        let kept = layout.kept(name)?;
        match (&found, kept) {
            (Found::Ours | Found::Absent, Some(k)) => {
                fs::rename(&k, &path).map_err(io_err("rename back", &k))?;
                sync_dir(&layout.scripts_dir)?;
                sync_dir(k.parent().unwrap_or(Path::new(".")))?;
                out.push(format!("restored {} (from {})", path.display(), k.display()));
            }
            (Found::Ours, None) => {
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
                sync_dir(&layout.scripts_dir)?;
                out.push(format!("removed {}", path.display()));
            }
            (Found::Absent, None) => {}
            (_, None) => out.push(format!(
                "{} is {}, not vzfs-hook: left alone",
                path.display(),
                found.describe()
            )),
            (_, Some(k)) => problems.push(format!(
                "{} is {}, not vzfs-hook (changed by someone else?): left alone, and the admin's earlier script stays in {}; put it back by hand if you want it",
                path.display(),
                found.describe(),
                k.display()
            )),
        }
    }
    for d in [layout.chained_dir(), layout.saved_dir()] {
        match fs::remove_dir(&d) {
            Ok(()) => out.push(format!("removed the empty {}", d.display())),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTEMPTY)
                    || e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(io_err("rmdir", &d)(e)),
        }
    }
    Ok((out, problems))
}

/// `vzfs-hook install --check`: a report, and whether every name is ours.
pub fn check(layout: &Layout, names: &[String]) -> Result<(Vec<String>, bool)> {
    layout.check_scripts_dir()?;
    let mut out = Vec::new();
    let mut all_ours = true;
    out.push(format!(
        "hook binary {}: {}",
        layout.hook_path.display(),
        if layout.hook_path.is_file() {
            "present"
        } else {
            "MISSING"
        }
    ));
    for name in names {
        let path = layout.scripts_dir.join(name);
        let found = layout.inspect(name)?;
        if found != Found::Ours {
            all_ours = false;
        }
        let state = match &found {
            Found::Ours => format!(
                "vzfs-hook (symlink to {})",
                fs::read_link(&path)
                    .map_err(io_err("readlink", &path))?
                    .display()
            ),
            Found::Absent => "absent (vzctl runs nothing)".into(),
            f => format!("{}, NOT vzfs-hook", f.describe()),
        };
        out.push(format!("{}: {state}", path.display()));
        if let Some(k) = layout.kept(name)? {
            if k.starts_with(layout.chained_dir()) {
                let order = if name.ends_with(".premount") {
                    "after vzfs-hook's premount succeeded"
                } else {
                    "before vzfs-hook's postumount"
                };
                let md = fs::symlink_metadata(&k).map_err(io_err("lstat", &k))?;
                let safe = match unsafe_reason(&md) {
                    None => format!("runs {order}"),
                    Some(why) => {
                        all_ours = false;
                        format!("UNSAFE ({why}): the hook refuses to run")
                    }
                };
                out.push(format!("  chained: {} ({safe})", k.display()));
            } else {
                out.push(format!("  kept aside, not run: {}", k.display()));
            }
        }
    }
    Ok((out, all_ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(tag: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("vzfs-install-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("conf")).unwrap();
        Tmp(d)
    }
    fn layout(t: &Tmp) -> Layout {
        let hook = t.0.join("vzfs-hook-under-test");
        fs::write(&hook, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
        Layout {
            scripts_dir: t.0.join("conf"),
            hook_path: hook,
        }
    }
    const SEED: &[u8] = b"#!/bin/bash\nsource ${VE_CONFFILE}\n[ -d ${VE_PRIVATE} ] || mkdir ${VE_PRIVATE}\n[ -n \"$VE_DEVICE\" ] && mount ${VE_DEVICE} ${VE_PRIVATE} || echo -n \" \"\n";
    fn seed(l: &Layout, name: &str) -> PathBuf {
        let p = l.scripts_dir.join(name);
        fs::write(&p, SEED).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    fn names() -> Vec<String> {
        hook_names(&[]).unwrap()
    }
    fn ino(p: &Path) -> u64 {
        fs::symlink_metadata(p).unwrap().ino()
    }

    #[test]
    fn fresh_install_and_uninstall() {
        let t = tmp("fresh");
        let l = layout(&t);
        let out = install(&l, &names(), Mode::Plain).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        for n in names() {
            assert_eq!(l.inspect(&n).unwrap(), Found::Ours);
            assert_eq!(fs::read_link(l.scripts_dir.join(&n)).unwrap(), l.hook_path);
        }
        // again: already
        let out = install(&l, &names(), Mode::Plain).unwrap();
        assert!(out.iter().all(|s| s.ends_with("(already)")), "{out:?}");
        let (_, ok) = check(&l, &names()).unwrap();
        assert!(ok);
        let (_, problems) = uninstall(&l, &all_names(&l).unwrap()).unwrap();
        assert!(problems.is_empty());
        assert_eq!(fs::read_dir(&l.scripts_dir).unwrap().count(), 0);
    }

    #[test]
    fn plain_install_refuses_and_changes_nothing() {
        let t = tmp("refuse");
        let l = layout(&t);
        let p = seed(&l, "vps.postumount");
        let i = ino(&p);
        let e = install(&l, &names(), Mode::Plain).unwrap_err();
        assert_eq!(e.exit_code(), exit::REFUSED);
        let msg = e.to_string();
        assert!(
            msg.contains("--chain") && msg.contains(&p.display().to_string()),
            "{msg}"
        );
        // the other name was not linked either, the admin's file is the same inode and bytes
        assert_eq!(l.inspect("vps.premount").unwrap(), Found::Absent);
        assert_eq!(ino(&p), i);
        assert_eq!(fs::read(&p).unwrap(), SEED);
        let (_, ok) = check(&l, &names()).unwrap();
        assert!(!ok);
    }

    #[test]
    fn chain_then_uninstall_restores_the_same_file() {
        let t = tmp("chain");
        let l = layout(&t);
        let pre = seed(&l, "vps.premount");
        let post = seed(&l, "vps.postumount");
        let (ipre, ipost) = (ino(&pre), ino(&post));
        install(&l, &names(), Mode::Chain).unwrap();
        for n in names() {
            assert_eq!(l.inspect(&n).unwrap(), Found::Ours);
            let k = l.chained_dir().join(&n);
            assert_eq!(fs::read(&k).unwrap(), SEED);
            assert_eq!(fs::metadata(&k).unwrap().nlink(), 1);
        }
        assert_eq!(
            fs::metadata(l.chained_dir()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let (rep, ok) = check(&l, &names()).unwrap();
        assert!(ok, "{rep:?}");
        assert!(
            rep.iter()
                .any(|s| s.contains("chained:") && s.contains("after")),
            "{rep:?}"
        );
        // a second --chain or --force finds the kept one and changes nothing
        install(&l, &names(), Mode::Chain).unwrap();
        let (out, problems) = uninstall(&l, &all_names(&l).unwrap()).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(out.iter().any(|s| s.starts_with("restored")), "{out:?}");
        assert_eq!((ino(&pre), ino(&post)), (ipre, ipost));
        assert_eq!(fs::read(&pre).unwrap(), SEED);
        assert_eq!(
            fs::metadata(&pre).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert!(!l.chained_dir().exists());
    }

    #[test]
    fn chain_refuses_unsafe_scripts_and_symlinks() {
        let t = tmp("unsafe");
        let l = layout(&t);
        let pre = seed(&l, "vps.premount");
        fs::set_permissions(&pre, fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink("/bin/true", l.scripts_dir.join("vps.postumount")).unwrap();
        let msg = install(&l, &names(), Mode::Chain).unwrap_err().to_string();
        assert!(msg.contains("writable by group or others"), "{msg}");
        assert!(msg.contains("is a symlink to /bin/true"), "{msg}");
        assert!(!l.chained_dir().exists());
        // a symlink in place of the keep directory is refused
        fs::set_permissions(&pre, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_file(l.scripts_dir.join("vps.postumount")).unwrap();
        std::os::unix::fs::symlink(&t.0, l.chained_dir()).unwrap();
        let msg = install(&l, &names(), Mode::Chain).unwrap_err().to_string();
        assert!(msg.contains("is not a directory"), "{msg}");
        assert_eq!(fs::read(&pre).unwrap(), SEED);
    }

    #[test]
    fn force_keeps_aside_and_uninstall_puts_back() {
        let t = tmp("force");
        let l = layout(&t);
        std::os::unix::fs::symlink(
            "/usr/local/sbin/old-hook",
            l.scripts_dir.join("vps.premount"),
        )
        .unwrap();
        let post = seed(&l, "vps.postumount");
        let out = install(&l, &names(), Mode::Force).unwrap();
        assert!(out.iter().all(|s| s.contains("vzfs-saved")), "{out:?}");
        assert!(!l.chained_dir().exists());
        assert_eq!(l.inspect("vps.premount").unwrap(), Found::Ours);
        uninstall(&l, &all_names(&l).unwrap()).unwrap();
        assert_eq!(
            fs::read_link(l.scripts_dir.join("vps.premount")).unwrap(),
            Path::new("/usr/local/sbin/old-hook")
        );
        assert_eq!(fs::read(&post).unwrap(), SEED);
        assert!(!l.saved_dir().exists());
    }

    #[test]
    fn per_ct_hooks_and_foreign_replacement_at_uninstall() {
        let t = tmp("ctid");
        let l = layout(&t);
        let n = hook_names(&["101".into()]).unwrap();
        assert_eq!(n, ["101.premount", "101.postumount"]);
        assert!(hook_names(&["01".into()]).is_err());
        let pre = seed(&l, "101.premount");
        install(&l, &n, Mode::Chain).unwrap();
        assert_eq!(
            all_names(&l).unwrap(),
            [
                "vps.premount",
                "vps.postumount",
                "101.postumount",
                "101.premount"
            ]
        );
        // someone replaced our symlink: uninstall leaves both alone and says so
        fs::remove_file(&pre).unwrap();
        fs::write(&pre, b"other").unwrap();
        let (_, problems) = uninstall(&l, &all_names(&l).unwrap()).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("stays in"), "{problems:?}");
        assert_eq!(fs::read(&pre).unwrap(), b"other");
        assert_eq!(
            fs::read(l.chained_dir().join("101.premount")).unwrap(),
            SEED
        );
        assert_eq!(l.inspect("101.postumount").unwrap(), Found::Absent);
    }
}
