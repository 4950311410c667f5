//! Loop devices of the lab and the bench: attach an image, and detach a
//! device only while it still backs *that* image.
//!
//! Why the identity check: a device still held by a dying mount is not
//! detached at once; the kernel clears it (autoclear) when its last user
//! lets go, and from then on `/dev/loopN` may be handed to anyone, e.g. a
//! lab of a test running in parallel. Detaching "loopN" again by name, as a
//! retry, would pull that other lab's disk from under its mounted
//! filesystem (its reads fail with EIO). So [`detach_if_backs`] opens the
//! device, checks on that descriptor which file it is bound to (device and
//! inode of the backing file, as recorded at attach time), and clears it
//! through the same descriptor: while we hold it open the binding cannot
//! change under us.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// Which file a loop device is bound to: the backing file's `st_dev` and
/// `st_ino` (what `LOOP_GET_STATUS64` reports as `lo_device`/`lo_inode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backing {
    pub dev: u64,
    pub ino: u64,
}

impl Backing {
    /// The identity of `image` as a loop device would report it.
    pub fn of(image: &Path) -> Result<Backing, String> {
        let m = std::fs::metadata(image).map_err(|e| format!("stat {}: {e}", image.display()))?;
        Ok(Backing {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

impl LoopInfo64 {
    fn zeroed() -> LoopInfo64 {
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn open_dev(node: &Path, write: bool) -> Result<File, std::io::Error> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_CLOEXEC)
        .open(node)
}

/// Attaches `image` (read-write) to a free loop device (LOOP_CTL_GET_FREE,
/// then LOOP_CONFIGURE, retried when another process took the device in
/// between). Returns the device node and the image's identity.
pub fn attach(image: &Path) -> Result<(PathBuf, Backing), String> {
    let img = open_dev(image, true).map_err(|e| format!("open {}: {e}", image.display()))?;
    let m = img
        .metadata()
        .map_err(|e| format!("stat {}: {e}", image.display()))?;
    let backing = Backing {
        dev: m.dev(),
        ino: m.ino(),
    };
    let ctl = File::open("/dev/loop-control")
        .map_err(|e| format!("open /dev/loop-control: {e} (no loop devices? `modprobe loop`)"))?;
    for _ in 0..20 {
        // SAFETY: ioctl without argument on an open descriptor.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(format!(
                "LOOP_CTL_GET_FREE on /dev/loop-control: {}",
                std::io::Error::last_os_error()
            ));
        }
        let node = PathBuf::from(format!("/dev/loop{n}"));
        let fd = open_dev(&node, true).map_err(|e| format!("open {}: {e}", node.display()))?;
        let mut info = LoopInfo64::zeroed();
        let s = image.to_string_lossy();
        let k = s.len().min(63);
        info.lo_file_name[..k].copy_from_slice(&s.as_bytes()[..k]);
        let cfg = LoopConfig {
            fd: img.as_raw_fd() as u32,
            block_size: 0,
            info,
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a struct loop_config we own.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CONFIGURE as _, &cfg) };
        if r == 0 {
            return Ok((node, backing));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!(
                "LOOP_CONFIGURE {} with {}: {e}",
                node.display(),
                image.display()
            ));
        }
        // Someone else took it between GET_FREE and CONFIGURE: try again.
    }
    Err("no free loop device after 20 attempts (other tests are racing for them?)".into())
}

/// What [`detach_if_backs`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detach {
    /// Cleared, or marked for clearing at its last close (the kernel does
    /// that itself when someone else still holds it open).
    Cleared,
    /// The device is bound to nothing, or to another file: ours is gone
    /// already and nothing was done.
    NotOurs,
    /// Still busy (an older kernel refusing LOOP_CLR_FD): autoclear is set,
    /// the kernel detaches it when it is released.
    Autoclear,
}

/// The identity of the file `node` is bound to, or `None` when unbound.
fn bound_to(fd: &File, node: &Path) -> Result<Option<(Backing, LoopInfo64)>, String> {
    let mut info = LoopInfo64::zeroed();
    // SAFETY: LOOP_GET_STATUS64 writes a struct loop_info64 we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_GET_STATUS64 as _, &mut info) };
    if r == 0 {
        return Ok(Some((
            Backing {
                dev: info.lo_device,
                ino: info.lo_inode,
            },
            info,
        )));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(format!("LOOP_GET_STATUS64 {}: {e}", node.display())),
    }
}

/// True while `node` is a loop device bound to the file `backing`.
pub fn backs(node: &Path, backing: Backing) -> Result<bool, String> {
    let fd = match open_dev(node, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("open {}: {e}", node.display())),
    };
    Ok(matches!(bound_to(&fd, node)?, Some((b, _)) if b == backing))
}

/// Detaches `node` if, and only if, it is still bound to `backing`: the
/// check and the LOOP_CLR_FD go through one open descriptor.
pub fn detach_if_backs(node: &Path, backing: Backing) -> Result<Detach, String> {
    let fd = match open_dev(node, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Detach::NotOurs),
        Err(e) => return Err(format!("open {}: {e}", node.display())),
    };
    let mut info = match bound_to(&fd, node)? {
        Some((b, info)) if b == backing => info,
        _ => return Ok(Detach::NotOurs),
    };
    // SAFETY: ioctl without argument on an open loop device.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_CLR_FD as _, 0) };
    if r == 0 {
        return Ok(Detach::Cleared);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(Detach::NotOurs),
        Some(libc::EBUSY) => {
            info.lo_flags |= LO_FLAGS_AUTOCLEAR;
            // SAFETY: LOOP_SET_STATUS64 reads a struct loop_info64 we own.
            let r = unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_SET_STATUS64 as _, &info) };
            if r == 0 {
                Ok(Detach::Autoclear)
            } else {
                Err(format!(
                    "LOOP_CLR_FD {}: busy (still mounted somewhere?), and autoclear could not \
                     be set either ({}): detach it by hand (`losetup -d {}`)",
                    node.display(),
                    std::io::Error::last_os_error(),
                    node.display()
                ))
            }
        }
        _ => Err(format!("LOOP_CLR_FD {}: {e}", node.display())),
    }
}

/// Shrinks the loop device `node` to one sector (`LOOP_SET_STATUS64` with a
/// size limit of 512 bytes): every later read or write beyond it fails, as
/// with a SAN path that is gone. Works on a mounted device.
pub fn shrink_to_one_sector(node: &Path) -> Result<(), String> {
    let fd = open_dev(node, false).map_err(|e| format!("open {}: {e}", node.display()))?;
    let Some((_, mut info)) = bound_to(&fd, node)? else {
        return Err(format!("{}: not attached to any file", node.display()));
    };
    info.lo_sizelimit = 512;
    // SAFETY: LOOP_SET_STATUS64 reads a struct loop_info64 we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), LOOP_SET_STATUS64 as _, &info) } != 0 {
        return Err(format!(
            "LOOP_SET_STATUS64 {}: {}",
            node.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
