//! The only place where vzfs calls mount(2), umount2(2) and flock(2), behind
//! the [`Sys`] trait: [`RealSys`] does the calls, [`FakeSys`] records them and
//! simulates a mount table for unit tests (youki's `syscall` module pattern).
//!
//! Safety by construction: [`Sys::umount`] takes no flags. It always passes
//! `UMOUNT_NOFOLLOW` and can never be lazy (`MNT_DETACH`), because a lazily
//! unmounted device can still be live when the next node mounts it. Every
//! mount is logged, with its flags as text, before the call (systemd's
//! `mount_verbose`).

use crate::log;
use crate::mountinfo::DevNum;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// Where the kernel's view of our mounts comes from. `thread-self` is right
/// both for the single-threaded binaries and for a test thread that has its
/// own mount namespace.
pub const MOUNTINFO: &str = "/proc/thread-self/mountinfo";
/// [`MOUNTINFO`] where the kernel has no `/proc/thread-self` (before 3.17).
pub const MOUNTINFO_OLD: &str = "/proc/self/mountinfo";

/// One mount(2) call.
#[derive(Debug, Clone)]
pub struct MountRequest<'a> {
    /// Device node to mount.
    pub source: &'a Path,
    /// Path handed to mount(2); `/proc/self/fd/N` of the directory we checked.
    pub target: &'a Path,
    /// The canonical path of that directory, for messages and the fake table.
    pub target_display: &'a Path,
    pub fstype: &'a str,
    pub flags: MsFlags,
    /// Filesystem-specific options (mount(2)'s `data`).
    pub data: &'a str,
}

pub trait Sys {
    fn mount(&self, req: &MountRequest<'_>) -> Result<(), Errno>;
    /// umount2(target, UMOUNT_NOFOLLOW). Never lazy, never forced.
    fn umount(&self, target: &Path) -> Result<(), Errno>;
    /// flock(fd, LOCK_EX), with LOCK_NB when `wait` is false.
    fn flock_exclusive(&self, fd: BorrowedFd<'_>, wait: bool) -> Result<(), Errno>;
    /// The text of this thread's mountinfo.
    fn mountinfo(&self) -> io::Result<String>;
}

/// The real system calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

impl Sys for RealSys {
    fn mount(&self, req: &MountRequest<'_>) -> Result<(), Errno> {
        log_mount(req);
        nix::mount::mount(
            Some(req.source),
            req.target,
            Some(req.fstype),
            req.flags,
            if req.data.is_empty() {
                None
            } else {
                Some(req.data)
            },
        )
    }

    fn umount(&self, target: &Path) -> Result<(), Errno> {
        log::debug(&format!("umount2({}, UMOUNT_NOFOLLOW)", target.display()));
        nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW)
    }

    fn flock_exclusive(&self, fd: BorrowedFd<'_>, wait: bool) -> Result<(), Errno> {
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        // SAFETY: flock on a valid, borrowed descriptor.
        let r = unsafe { libc::flock(fd.as_raw_fd(), op) };
        Errno::result(r).map(drop)
    }

    fn mountinfo(&self) -> io::Result<String> {
        // The file reports size 0; a large buffer saves many small reads.
        use std::io::Read;
        let mut s = String::with_capacity(64 * 1024);
        // /proc/thread-self is Linux 3.17+; before it (OpenVZ 6's 2.6.32,
        // Debian 8's 3.16) /proc/self, the same for the single-threaded hook
        let mut f = match std::fs::File::open(MOUNTINFO) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::File::open(MOUNTINFO_OLD)?,
            r => r?,
        };
        f.read_to_string(&mut s)?;
        Ok(s)
    }
}

fn log_mount(req: &MountRequest<'_>) {
    log::info(&format!(
        "mount {} on {} type {} flags {} data \"{}\"",
        req.source.display(),
        req.target_display.display(),
        req.fstype,
        flags_text(req.flags),
        req.data
    ));
}

const FLAG_NAMES: &[(&str, MsFlags, bool)] = &[
    // (option, flag, option sets the flag)
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("dirsync", MsFlags::MS_DIRSYNC, true),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("diratime", MsFlags::MS_NODIRATIME, false),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("norelatime", MsFlags::MS_RELATIME, false),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("lazytime", MsFlags::MS_LAZYTIME, true),
    ("nolazytime", MsFlags::MS_LAZYTIME, false),
    ("silent", MsFlags::MS_SILENT, true),
    ("loud", MsFlags::MS_SILENT, false),
];

/// Options that change what mount(2) does rather than how the filesystem
/// behaves: never accepted from a config file.
const REFUSED: &[&str] = &[
    "remount",
    "bind",
    "rbind",
    "move",
    "shared",
    "private",
    "slave",
    "unbindable",
    "rshared",
    "rprivate",
    "rslave",
    "runbindable",
    "loop",
    "user",
    "users",
    "owner",
    "group",
    "nofail",
    "auto",
    "noauto",
    "_netdev",
];

/// Splits a mount(8)-style option string (`noatime,nodev,user_xattr`) into
/// mount(2) flags and the filesystem's data string. `defaults` is accepted
/// and means nothing. Returns the offending option on a refused one.
pub fn parse_options(opts: &str) -> Result<(MsFlags, String), String> {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if o == "defaults" {
            continue;
        }
        if REFUSED.contains(&o) {
            return Err(o.to_string());
        }
        if let Some((_, f, set)) = FLAG_NAMES.iter().find(|(n, _, _)| *n == o) {
            if *set {
                flags |= *f;
            } else {
                flags &= !*f;
            }
        } else {
            data.push(o);
        }
    }
    Ok((flags, data.join(",")))
}

/// `MS_NODEV|MS_NOATIME` as mount(8) option text: `nodev,noatime`; `none` when empty.
pub fn flags_text(flags: MsFlags) -> String {
    let mut v: Vec<&str> = Vec::new();
    for (name, f, set) in FLAG_NAMES {
        if *set && flags.contains(*f) && !v.contains(name) {
            v.push(name);
        }
    }
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(",")
    }
}

/// A call recorded by [`FakeSys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: PathBuf,
        target: PathBuf,
        fstype: String,
        flags: String,
        data: String,
    },
    Umount {
        target: PathBuf,
    },
    Flock {
        wait: bool,
    },
}

/// A recording fake: remembers every call, keeps a simulated mountinfo that
/// mount/umount update, and returns scripted errors.
#[derive(Debug, Default)]
pub struct FakeSys {
    pub calls: RefCell<Vec<Call>>,
    /// Device number of each source path, used to write the simulated table.
    pub devs: RefCell<HashMap<PathBuf, DevNum>>,
    pub table: RefCell<String>,
    pub mount_errors: RefCell<VecDeque<Errno>>,
    pub umount_errors: RefCell<VecDeque<Errno>>,
    pub flock_errors: RefCell<VecDeque<Errno>>,
    next_id: RefCell<u64>,
}

impl FakeSys {
    pub fn new(table: &str) -> FakeSys {
        let f = FakeSys::default();
        *f.table.borrow_mut() = table.to_string();
        *f.next_id.borrow_mut() = 1000;
        f
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
}

fn escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::new();
    for &b in p.as_os_str().as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => s.push_str(&format!("\\{:03o}", b)),
            _ => s.push(b as char),
        }
    }
    s
}

impl Sys for FakeSys {
    fn mount(&self, req: &MountRequest<'_>) -> Result<(), Errno> {
        self.calls.borrow_mut().push(Call::Mount {
            source: req.source.to_path_buf(),
            target: req.target_display.to_path_buf(),
            fstype: req.fstype.to_string(),
            flags: flags_text(req.flags),
            data: req.data.to_string(),
        });
        if let Some(e) = self.mount_errors.borrow_mut().pop_front() {
            return Err(e);
        }
        let dev = self
            .devs
            .borrow()
            .get(req.source)
            .copied()
            .unwrap_or(DevNum {
                major: 7,
                minor: 99,
            });
        let mut id = self.next_id.borrow_mut();
        *id += 1;
        self.table.borrow_mut().push_str(&format!(
            "{} 1 {} / {} rw - {} {} rw\n",
            id,
            dev,
            escape(req.target_display),
            req.fstype,
            escape(req.source)
        ));
        Ok(())
    }

    fn umount(&self, target: &Path) -> Result<(), Errno> {
        self.calls.borrow_mut().push(Call::Umount {
            target: target.to_path_buf(),
        });
        if let Some(e) = self.umount_errors.borrow_mut().pop_front() {
            return Err(e);
        }
        let table = self.table.borrow().clone();
        let mut lines: Vec<&str> = table.lines().collect();
        let want = escape(target);
        match lines
            .iter()
            .rposition(|l| l.split(' ').nth(4) == Some(want.as_str()))
        {
            Some(i) => {
                lines.remove(i);
                let mut t = lines.join("\n");
                if !t.is_empty() {
                    t.push('\n');
                }
                *self.table.borrow_mut() = t;
                Ok(())
            }
            None => Err(Errno::EINVAL),
        }
    }

    fn flock_exclusive(&self, _fd: BorrowedFd<'_>, wait: bool) -> Result<(), Errno> {
        self.calls.borrow_mut().push(Call::Flock { wait });
        match self.flock_errors.borrow_mut().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn mountinfo(&self) -> io::Result<String> {
        Ok(self.table.borrow().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::MountTable;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse_options("defaults,noatime,nodev,user_xattr,data=ordered").unwrap();
        assert_eq!(f, MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(d, "user_xattr,data=ordered");
        assert_eq!(flags_text(f), "nodev,noatime");
        let (f, _) = parse_options("ro,rw").unwrap();
        assert!(f.is_empty());
        assert_eq!(flags_text(MsFlags::empty()), "none");
    }

    #[test]
    fn mount_changing_options_are_refused() {
        for o in ["bind", "remount", "rshared", "loop"] {
            assert_eq!(parse_options(&format!("noatime,{o}")).unwrap_err(), o);
        }
    }

    #[test]
    fn fake_records_and_tracks_table() {
        let f = FakeSys::new("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n");
        f.devs
            .borrow_mut()
            .insert(PathBuf::from("/dev/loop3"), DevNum { major: 7, minor: 3 });
        let t = Path::new("/vz/private/my ct");
        f.mount(&MountRequest {
            source: Path::new("/dev/loop3"),
            target: Path::new("/proc/self/fd/3"),
            target_display: t,
            fstype: "ext4",
            flags: MsFlags::MS_NOATIME,
            data: "",
        })
        .unwrap();
        let tab = MountTable::parse(Path::new("fake"), &f.mountinfo().unwrap()).unwrap();
        assert_eq!(tab.top_at(t).unwrap().dev, DevNum { major: 7, minor: 3 });
        f.umount_errors.borrow_mut().push_back(Errno::EBUSY);
        assert_eq!(f.umount(t), Err(Errno::EBUSY));
        f.umount(t).unwrap();
        let tab = MountTable::parse(Path::new("fake"), &f.mountinfo().unwrap()).unwrap();
        assert!(tab.top_at(t).is_none());
        assert_eq!(f.calls().len(), 3);
    }
}
