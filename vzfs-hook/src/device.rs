//! `VE_DEVICE` resolution and superblock probing.
//!
//! A spec is a device path (symlinks such as `/dev/disk/by-id/...` are
//! followed), `UUID=...` or `LABEL=...`. UUID and LABEL are matched by reading
//! the superblock of every block device that has a node in this node's `/dev`;
//! two matches are an error, never a guess. The filesystem type is read from
//! the superblock (ext2/3/4, xfs, btrfs are recognised; LUKS, swap and
//! partition tables are named so the admin gets a useful error), never found
//! by trying types. Reads use `O_DIRECT` where the device allows it: on a SAN
//! the other node writes behind this node's page cache.
//!
//! This module also reads the ext4 multi-mount-protection (MMP) block and
//! checks whether anything on this node still holds a device exclusively.
//! Its one write to a device is [`mmp_reset`]: a dead node's MMP block set
//! back to clean, called only by the OCF agent once the writer is proven
//! dead (the hook and vzfs-migrate never clear MMP).
//!
//! Every on-disk field is untrusted: offsets are computed with checked
//! arithmetic, and a field no real filesystem can hold (a block size over
//! 64 KiB, an MMP block outside the filesystem, an MMP interval over the
//! kernel's 300 s) is a [`Error::Device`] naming the device and the field,
//! never a panic or a read at a wild offset. [`probe_bytes`] and
//! [`parse_mmp`] are pure, so property tests feed them any bytes.

use crate::error::{Error, Result};
use crate::mountinfo::DevNum;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How `VE_DEVICE` names the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Path(PathBuf),
    Uuid(String),
    Label(String),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> std::result::Result<DeviceSpec, String> {
        if let Some(u) = s.strip_prefix("UUID=") {
            if u.is_empty() {
                return Err("UUID= is empty".into());
            }
            Ok(DeviceSpec::Uuid(u.to_ascii_lowercase()))
        } else if let Some(l) = s.strip_prefix("LABEL=") {
            if l.is_empty() {
                return Err("LABEL= is empty".into());
            }
            Ok(DeviceSpec::Label(l.to_string()))
        } else if s.starts_with('/') {
            Ok(DeviceSpec::Path(PathBuf::from(s)))
        } else {
            Err("not an absolute device path (/dev/...), UUID=... or LABEL=...".into())
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
        }
    }
}

/// A resolved block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The canonical device node, e.g. `/dev/loop3`.
    pub node: PathBuf,
    pub dev: DevNum,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.node.display(), self.dev)
    }
}

/// ext2/3/4 details that matter for fsck and MMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtInfo {
    pub block_size: u64,
    /// `s_state` has EXT2_VALID_FS.
    pub clean: bool,
    /// `s_state` has EXT2_ERROR_FS.
    pub errors: bool,
    /// The journal needs replaying (unclean shutdown).
    pub needs_recovery: bool,
    /// MMP block number and update interval, when the feature is on.
    pub mmp: Option<(u64, u16)>,
    /// Last mount time (seconds since the epoch).
    pub mtime: u64,
    /// Directory where it was last mounted (`s_last_mounted`).
    pub last_mounted: String,
    /// `s_feature_incompat` and `s_feature_ro_compat`, for
    /// [`crate::platform::unmountable`].
    pub incompat: u32,
    pub ro_compat: u32,
}

/// What the superblock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub fstype: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub ext: Option<ExtInfo>,
    /// xfs: the superblock version (`sb_versionnum & 0xf`; 5 = crc).
    pub xfs_version: Option<u16>,
}

/// Result of [`probe`]: a filesystem, or something else we can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Fs(FsInfo),
    /// Not a filesystem: "LUKS", "swap", "a partition table", or nothing known.
    Other(&'static str),
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn uuid_text(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn label(b: &[u8]) -> Option<String> {
    let s = cstr(b);
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// An aligned buffer for `O_DIRECT` reads.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}
impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, layout }
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for layout.size() bytes and uniquely owned.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}
impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// An open device that reads around the page cache when it can.
pub struct Reader {
    file: File,
    path: PathBuf,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader> {
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path);
        let file = match direct {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| Error::io("open for reading", path, e))?,
            Err(e) => return Err(Error::io("open for reading", path, e)),
        };
        Ok(Reader {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Reads `len` bytes at `off`; both are rounded out to 4 KiB for O_DIRECT.
    pub fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let start = off & !4095;
        let end = off
            .checked_add(len as u64)
            .and_then(|e| e.checked_add(4095))
            .map(|e| e & !4095)
            .filter(|&e| e - start <= 1 << 20)
            .ok_or_else(|| {
                Error::device(
                    crate::text::path(&self.path),
                    format!("a read of {len} bytes at offset {off} is out of range (a damaged superblock field?); run fsck on the device"),
                )
            })?;
        let mut buf = Aligned::new((end - start) as usize);
        let b = buf.as_mut();
        let mut done = 0;
        while done < b.len() {
            match self.file.read_at(&mut b[done..], start + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        let lo = (off - start) as usize;
        let hi = (lo + len).min(done);
        Ok(if lo >= hi {
            Vec::new()
        } else {
            b[lo..hi].to_vec()
        })
    }
}

/// Reads the superblock(s) of `path` (a block device or an image file).
pub fn probe(path: &Path) -> Result<Probe> {
    Reader::open(path)?.probe()
}

/// Reads the superblock(s) of a device that is mounted on this node, through
/// the page cache: its superblock is this node's own and cached, so there
/// is no need to go around the cache (and no cost of doing so).
pub fn probe_mounted(path: &Path) -> Result<Probe> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("open for reading", path, e))?;
    Reader {
        file,
        path: path.to_path_buf(),
    }
    .probe()
}

impl Reader {
    /// Reads the superblock(s) through this open device.
    pub fn probe(&self) -> Result<Probe> {
        let head = self.read_at(0, 4096)?;
        probe_bytes(&self.path, &head, || self.read_at(65536, 4096))
    }

    /// Reads the ext4 MMP block through this open device.
    pub fn read_mmp(&self, ext: &ExtInfo) -> Result<Option<Mmp>> {
        let Some((block, _)) = ext.mmp else {
            return Ok(None);
        };
        let off = block.checked_mul(ext.block_size).ok_or_else(|| {
            Error::device(
                crate::text::path(&self.path),
                format!("superblock field s_mmp_block ({block}) is impossible; run e2fsck on the device"),
            )
        })?;
        let b = self.read_at(off, 1024)?;
        parse_mmp(&self.path, block, &b).map(Some)
    }
}

/// Parses an ext4 MMP block (`block` is its number, for messages).
pub fn parse_mmp(device: &Path, block: u64, b: &[u8]) -> Result<Mmp> {
    if b.len() < 116 || le32(b, 0) != MMP_MAGIC {
        return Err(Error::device(
            crate::text::path(device),
            format!("MMP block {block} has no MMP magic (superblock field s_mmp_block is wrong, or the block is damaged); run e2fsck on the device"),
        ));
    }
    Ok(Mmp {
        seq: le32(b, 4),
        time: le64(b, 8),
        nodename: cstr(&b[16..80]),
        bdevname: cstr(&b[80..112]),
        check_interval: le16(b, 112),
    })
}

/// The kernel's limit for `s_mmp_update_interval` (EXT4_MMP_MAX_UPDATE_INTERVAL).
pub const MMP_MAX_UPDATE_INTERVAL: u16 = 300;

/// Probe logic over the first 4 KiB; `btrfs` reads the superblock at 64 KiB
/// on demand. `device` names the device in errors: an ext superblock whose
/// fields no real filesystem holds is an [`Error::Device`].
pub fn probe_bytes(
    device: &Path,
    head: &[u8],
    btrfs: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Probe> {
    let impossible = |field: &str, value: u64, why: &str| {
        Error::device(
            crate::text::path(device),
            format!("superblock field {field} ({value}) is impossible ({why}); the filesystem is damaged or not what it seems: run e2fsck -n on it and check VE_DEVICE"),
        )
    };
    if head.len() >= 2048 && le16(head, 1024 + 0x38) == 0xEF53 {
        let sb = &head[1024..2048];
        let compat = le32(sb, 0x5C);
        let incompat = le32(sb, 0x60);
        let ro_compat = le32(sb, 0x64);
        let has_journal = compat & 0x4 != 0;
        // Features ext3 does not know: ext4 (as blkid decides).
        let ext4_incompat = incompat & !(0x0002 | 0x0004 | 0x0008 | 0x0010) != 0;
        let ext4_ro = ro_compat & !(0x0001 | 0x0002 | 0x0004) != 0;
        let fstype = if ext4_incompat || ext4_ro {
            "ext4"
        } else if has_journal {
            "ext3"
        } else {
            "ext2"
        };
        let state = le16(sb, 0x3A);
        let log_block = le32(sb, 0x18);
        if log_block > 6 {
            return Err(impossible(
                "s_log_block_size",
                log_block as u64,
                "blocks larger than 64 KiB",
            ));
        }
        let block_size = 1024u64 << log_block;
        let blocks_hi = if incompat & 0x80 != 0 {
            le32(sb, 0x150) as u64
        } else {
            0
        };
        let blocks = (blocks_hi << 32) | le32(sb, 0x04) as u64;
        if blocks == 0 {
            return Err(impossible("s_blocks_count", 0, "a filesystem of no blocks"));
        }
        let mmp = if incompat & 0x100 != 0 {
            let (block, interval) = (le64(sb, 0x168), le16(sb, 0x166));
            if block == 0 || block >= blocks {
                return Err(impossible(
                    "s_mmp_block",
                    block,
                    &format!("outside the filesystem's {blocks} blocks"),
                ));
            }
            if interval > MMP_MAX_UPDATE_INTERVAL {
                return Err(impossible(
                    "s_mmp_update_interval",
                    interval as u64,
                    "the kernel allows at most 300 seconds",
                ));
            }
            Some((block, interval))
        } else {
            None
        };
        return Ok(Probe::Fs(FsInfo {
            fstype: fstype.into(),
            uuid: uuid_text(&sb[0x68..0x78]),
            label: label(&sb[0x78..0x88]),
            ext: Some(ExtInfo {
                block_size,
                clean: state & 1 != 0,
                errors: state & 2 != 0,
                needs_recovery: incompat & 0x4 != 0,
                mmp,
                mtime: le32(sb, 0x2C) as u64,
                last_mounted: cstr(&sb[0x88..0xC8]),
                incompat,
                ro_compat,
            }),
            xfs_version: None,
        }));
    }
    if head.len() >= 512 && &head[0..4] == b"XFSB" {
        return Ok(Probe::Fs(FsInfo {
            fstype: "xfs".into(),
            uuid: uuid_text(&head[32..48]),
            label: label(&head[108..120]),
            ext: None,
            xfs_version: Some(u16::from_be_bytes([head[100], head[101]]) & 0xf),
        }));
    }
    if head.len() >= 6 && &head[0..6] == b"LUKS\xba\xbe" {
        return Ok(Probe::Other(
            "a LUKS encrypted volume (open it with cryptsetup and use the mapped device)",
        ));
    }
    if head.len() >= 4096
        && (&head[4086..4096] == b"SWAPSPACE2" || &head[4086..4096] == b"SWAP-SPACE")
    {
        return Ok(Probe::Other("swap space"));
    }
    let b = btrfs()?;
    if b.len() >= 0x12b + 256 && &b[0x40..0x48] == b"_BHRfS_M" {
        return Ok(Probe::Fs(FsInfo {
            fstype: "btrfs".into(),
            uuid: uuid_text(&b[0x20..0x30]),
            label: label(&b[0x12b..0x12b + 256]),
            ext: None,
            xfs_version: None,
        }));
    }
    if head.len() >= 512 && head[510] == 0x55 && head[511] == 0xAA {
        return Ok(Probe::Other(
            "a partition table (use one of its partitions)",
        ));
    }
    Ok(Probe::Other(
        "no filesystem that vzfs recognises (ext2/3/4, xfs, btrfs)",
    ))
}

/// Block devices that have a node in this node's `/dev` (so a lab host, or a
/// real node, sees only its own disks): (node, device number). Empty devices
/// (size 0, e.g. unattached loop devices) are left out.
pub fn block_devices() -> Vec<(PathBuf, DevNum)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/block") else {
        return out;
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let sys = ent.path();
        let Some(dev) = std::fs::read_to_string(sys.join("dev"))
            .ok()
            .and_then(|s| DevNum::parse(&s))
        else {
            continue;
        };
        if std::fs::read_to_string(sys.join("size"))
            .map(|s| s.trim() == "0")
            .unwrap_or(true)
        {
            continue;
        }
        let node = Path::new("/dev").join(&name);
        match std::fs::metadata(&node) {
            Ok(m) if m.file_type().is_block_device() && DevNum::from_rdev(m.rdev()) == dev => {
                out.push((node, dev))
            }
            _ => {}
        }
    }
    out.sort();
    out
}

/// The node in `/dev` of a device number, if this node has one.
pub fn node_for(dev: DevNum) -> Option<PathBuf> {
    let link = std::fs::read_link(format!("/sys/dev/block/{dev}")).ok()?;
    let node = Path::new("/dev").join(link.file_name()?);
    let m = std::fs::metadata(&node).ok()?;
    (m.file_type().is_block_device() && DevNum::from_rdev(m.rdev()) == dev).then_some(node)
}

/// Resolves a spec to exactly one block device on this node.
pub fn resolve(spec: &DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Path(p) => {
            let node = crate::paths::canonicalize(p).map_err(|e| {
                Error::device(
                    p.display(),
                    format!("does not exist on this node ({e}); device names can differ between nodes: check `lsblk` here, or use UUID=..."),
                )
            })?;
            let m = std::fs::metadata(&node).map_err(|e| Error::io("stat", &node, e))?;
            if !m.file_type().is_block_device() {
                return Err(Error::device(
                    p.display(),
                    format!("{} is not a block device", node.display()),
                ));
            }
            Ok(Device {
                node,
                dev: DevNum::from_rdev(m.rdev()),
            })
        }
        DeviceSpec::Uuid(_) | DeviceSpec::Label(_) => {
            let mut found = Vec::new();
            for (node, dev) in block_devices() {
                let Ok(Probe::Fs(fs)) = probe(&node) else {
                    continue;
                };
                let hit = match spec {
                    DeviceSpec::Uuid(u) => fs.uuid.as_deref() == Some(u.as_str()),
                    DeviceSpec::Label(l) => fs.label.as_deref() == Some(l.as_str()),
                    DeviceSpec::Path(_) => false,
                };
                if hit {
                    found.push(Device { node, dev });
                }
            }
            match found.len() {
                0 => Err(Error::device(spec, "no block device on this node holds a filesystem with it; check that the LUN is presented to this node (`blkid`)")),
                1 => Ok(found.pop().unwrap()),
                _ => Err(Error::device(
                    spec,
                    format!(
                        "matches {} devices ({}): the same LUN through several paths, or a cloned filesystem; set VE_DEVICE to the one device to use",
                        found.len(),
                        found.iter().map(|d| d.node.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }
    }
}

/// Whether the device `dev` (e.g. what mountinfo shows on a mount point)
/// is the one `spec` names. For `UUID=`/`LABEL=` this reads only that
/// device's superblock instead of scanning every device of the node (the
/// full scan, with its ambiguity check, is for [`resolve`] before a mount).
/// `Ok(None)` when it is not; the device when it is.
pub fn identify(spec: &DeviceSpec, dev: DevNum) -> Result<Option<Device>> {
    match spec {
        DeviceSpec::Path(_) => {
            let d = resolve(spec)?;
            Ok((d.dev == dev).then_some(d))
        }
        DeviceSpec::Uuid(_) | DeviceSpec::Label(_) => {
            let Some(node) = node_for(dev) else {
                return Ok(None);
            };
            let Probe::Fs(fs) = probe(&node)? else {
                return Ok(None);
            };
            let hit = match spec {
                DeviceSpec::Uuid(u) => fs.uuid.as_deref() == Some(u.as_str()),
                DeviceSpec::Label(l) => fs.label.as_deref() == Some(l.as_str()),
                DeviceSpec::Path(_) => false,
            };
            Ok(hit.then_some(Device { node, dev }))
        }
    }
}

/// True when nothing on this node holds the device exclusively (a mounted
/// filesystem in any mount namespace does). Uses `open(O_EXCL)` on the node.
pub fn is_released(node: &Path) -> Result<bool> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(node)
    {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(false),
        Err(e) => Err(Error::io("open exclusively", node, e)),
    }
}

/// MMP sequence values with a meaning (ext4's `EXT4_MMP_SEQ_*`).
pub const MMP_SEQ_CLEAN: u32 = 0xFF4D_4D50;
pub const MMP_SEQ_FSCK: u32 = 0xE24D_4D50;
pub const MMP_SEQ_MAX: u32 = 0xE24D_4D4F;
const MMP_MAGIC: u32 = 0x004D_4D50;

/// The ext4 MMP block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mmp {
    pub seq: u32,
    pub time: u64,
    pub nodename: String,
    pub bdevname: String,
    pub check_interval: u16,
}

impl Mmp {
    pub fn is_clean(&self) -> bool {
        self.seq == MMP_SEQ_CLEAN
    }
    pub fn is_fsck(&self) -> bool {
        self.seq == MMP_SEQ_FSCK
    }
}

/// Reads the MMP block of an ext4 filesystem (bypassing the page cache).
pub fn read_mmp(node: &Path, ext: &ExtInfo) -> Result<Option<Mmp>> {
    if ext.mmp.is_none() {
        return Ok(None);
    }
    Reader::open(node)?.read_mmp(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        assert_eq!(
            DeviceSpec::parse("/dev/sdg1").unwrap(),
            DeviceSpec::Path("/dev/sdg1".into())
        );
        assert_eq!(
            DeviceSpec::parse("UUID=ABCD-1").unwrap(),
            DeviceSpec::Uuid("abcd-1".into())
        );
        assert_eq!(
            DeviceSpec::parse("LABEL=ct101").unwrap(),
            DeviceSpec::Label("ct101".into())
        );
        assert!(DeviceSpec::parse("sdg1").is_err());
        assert!(DeviceSpec::parse("UUID=").is_err());
    }

    fn ext_sb(incompat: u32, compat: u32, state: u16) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let sb = &mut b[1024..2048];
        sb[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[0x3A..0x3C].copy_from_slice(&state.to_le_bytes());
        sb[0x18..0x1C].copy_from_slice(&2u32.to_le_bytes());
        sb[0x04..0x08].copy_from_slice(&16384u32.to_le_bytes());
        sb[0x5C..0x60].copy_from_slice(&compat.to_le_bytes());
        sb[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
        sb[0x68..0x78].copy_from_slice(&[
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        sb[0x78..0x7d].copy_from_slice(b"ct101");
        sb[0x166..0x168].copy_from_slice(&5u16.to_le_bytes());
        sb[0x168..0x170].copy_from_slice(&1234u64.to_le_bytes());
        b
    }

    #[test]
    fn ext_variants() {
        let none = || -> Result<Vec<u8>> { Ok(vec![0; 4096]) };
        let Probe::Fs(f) = probe_bytes(Path::new("/dev/t"), &ext_sb(0, 0, 1), none).unwrap() else {
            panic!()
        };
        assert_eq!(f.fstype, "ext2");
        let Probe::Fs(f) = probe_bytes(Path::new("/dev/t"), &ext_sb(0x2, 0x4, 1), none).unwrap()
        else {
            panic!()
        };
        assert_eq!(f.fstype, "ext3");
        let Probe::Fs(f) = probe_bytes(
            Path::new("/dev/t"),
            &ext_sb(0x2 | 0x40 | 0x100 | 0x4, 0x4, 2),
            none,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(f.fstype, "ext4");
        assert_eq!(
            f.uuid.as_deref(),
            Some("12345678-9abc-def0-0102-030405060708")
        );
        assert_eq!(f.label.as_deref(), Some("ct101"));
        let x = f.ext.unwrap();
        assert_eq!(x.block_size, 4096);
        assert!(!x.clean && x.errors && x.needs_recovery);
        assert_eq!(x.mmp, Some((1234, 5)));
    }

    #[test]
    fn other_contents_are_named() {
        let none = || -> Result<Vec<u8>> { Ok(vec![0; 4096]) };
        let mut b = vec![0u8; 4096];
        b[0..6].copy_from_slice(b"LUKS\xba\xbe");
        assert!(
            matches!(probe_bytes(Path::new("/dev/t"), &b, none).unwrap(), Probe::Other(s) if s.contains("LUKS"))
        );
        let mut b = vec![0u8; 4096];
        b[510] = 0x55;
        b[511] = 0xAA;
        assert!(
            matches!(probe_bytes(Path::new("/dev/t"), &b, none).unwrap(), Probe::Other(s) if s.contains("partition"))
        );
        assert!(matches!(
            probe_bytes(Path::new("/dev/t"), &vec![0u8; 4096], none).unwrap(),
            Probe::Other(_)
        ));
    }
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) without the usual
/// pre- and post-inversion: the kernel's `crc32c_le` as ext4's
/// `ext4_chksum` uses it (the standard CRC32C of `data` is
/// `!crc32c_raw(!0, data)`).
pub fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    let mut crc = seed;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// What writing an ext4 MMP block needs from the superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmpGeometry {
    pub block_size: u64,
    /// The MMP block's number (`s_mmp_block`).
    pub block: u64,
    /// `s_mmp_update_interval`.
    pub update_interval: u16,
    /// The checksum seed when the filesystem has `metadata_csum`:
    /// `s_checksum_seed` with `csum_seed`, else crc32c of the UUID.
    pub csum_seed: Option<u32>,
}

/// The MMP geometry from the first 4 KiB of an ext4 filesystem (checked as
/// [`probe_bytes`] checks them); `None` when it has no MMP.
pub fn mmp_geometry(device: &Path, head: &[u8]) -> Result<Option<MmpGeometry>> {
    let Probe::Fs(fs) = probe_bytes(device, head, || Ok(Vec::new()))? else {
        return Ok(None);
    };
    let Some(ext) = fs.ext else { return Ok(None) };
    let Some((block, update_interval)) = ext.mmp else {
        return Ok(None);
    };
    let sb = &head[1024..2048];
    let csum_seed = (ext.ro_compat & 0x400 != 0).then(|| {
        if ext.incompat & 0x2000 != 0 {
            le32(sb, 0x270)
        } else {
            crc32c_raw(!0, &sb[0x68..0x78])
        }
    });
    Ok(Some(MmpGeometry {
        block_size: ext.block_size,
        block,
        update_interval,
        csum_seed,
    }))
}

/// The kernel's lower bound of the MMP check interval (EXT4_MMP_MIN_CHECK_INTERVAL).
pub const MMP_MIN_CHECK_INTERVAL: u16 = 5;

/// A clean MMP block, `block_size` bytes, as e2fsprogs' `ext2fs_mmp_reset`
/// (`tune2fs -f -E clear_mmp`, the end of e2fsck) writes it: magic,
/// sequence EXT4_MMP_SEQ_CLEAN, time 0, the writer's node and device
/// names, check interval max(update interval, 5), zeros, and the checksum
/// (crc32c of the first 1020 bytes) when the filesystem has `metadata_csum`.
pub fn clean_mmp_block(g: &MmpGeometry, nodename: &str, bdevname: &str) -> Vec<u8> {
    let mut b = vec![0u8; g.block_size as usize];
    b[0..4].copy_from_slice(&MMP_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&MMP_SEQ_CLEAN.to_le_bytes());
    let n = nodename.as_bytes();
    let n = &n[..n.len().min(63)];
    b[16..16 + n.len()].copy_from_slice(n);
    let d = bdevname.as_bytes();
    let d = &d[..d.len().min(31)];
    b[80..80 + d.len()].copy_from_slice(d);
    let ci = g.update_interval.max(MMP_MIN_CHECK_INTERVAL);
    b[112..114].copy_from_slice(&ci.to_le_bytes());
    if let Some(seed) = g.csum_seed {
        let c = crc32c_raw(seed, &b[..1020]);
        b[1020..1024].copy_from_slice(&c.to_le_bytes());
    }
    b
}

/// Sets the MMP block of the (unmounted) ext4 filesystem on `node` back to
/// clean, as `tune2fs -f -E clear_mmp` does, so that the kernel's next
/// mount does not wait: the one write vzfs makes to an MMP block, and only
/// the OCF agent calls it, after it has proven the block's writer dead
/// (the hook and vzfs-migrate never clear MMP).
///
/// The device is opened `O_RDWR | O_DIRECT | O_DSYNC` (an image file on a
/// filesystem without `O_DIRECT`: `O_DSYNC` alone); the block size, the
/// block's place and the checksum seed come from the superblock read
/// through that descriptor. The block must still be `expect` (sequence,
/// time, node and device names) right before the write, else nothing is
/// written. The block is written from an aligned buffer, then read back
/// around the page cache and compared byte for byte. `nodename` and
/// `bdevname` are this node's, as e2fsprogs records the clearing host.
pub fn mmp_reset(node: &Path, expect: &Mmp, nodename: &str, bdevname: &str) -> Result<Mmp> {
    use std::os::unix::fs::FileExt;
    let open = |direct: bool| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DSYNC | libc::O_CLOEXEC | if direct { libc::O_DIRECT } else { 0 })
            .open(node)
    };
    let file = match open(true) {
        Ok(f) => f,
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL)
                && std::fs::metadata(node).is_ok_and(|m| m.is_file()) =>
        {
            open(false).map_err(|e| Error::io("open for writing", node, e))?
        }
        Err(e) => return Err(Error::io("open for writing", node, e)),
    };
    let rw = Reader {
        file,
        path: node.to_path_buf(),
    };
    let dev = crate::text::path(node);
    let head = rw.read_at(0, 4096)?;
    let g = mmp_geometry(node, &head)?.ok_or_else(|| {
        Error::device(
            &dev,
            "has no ext4 MMP block to clear (not ext4 with -O mmp); check VE_DEVICE",
        )
    })?;
    let off = g.block.checked_mul(g.block_size).ok_or_else(|| {
        Error::device(
            &dev,
            format!(
                "superblock field s_mmp_block ({}) is impossible; run e2fsck on the device",
                g.block
            ),
        )
    })?;
    let now = parse_mmp(node, g.block, &rw.read_at(off, 1024)?)?;
    if now != *expect {
        return Err(Error::device(
            &dev,
            format!(
                "the MMP block changed before it could be cleared (sequence {:#x} of node {:?}, device {}, was {:#x} of node {:?}): another node writes to it; nothing was written. Find out which node mounts the filesystem before starting it here",
                now.seq, now.nodename, now.bdevname, expect.seq, expect.nodename
            ),
        ));
    }
    let block = clean_mmp_block(&g, nodename, bdevname);
    let mut buf = Aligned::new(block.len());
    buf.as_mut().copy_from_slice(&block);
    let b = buf.as_mut();
    let mut done = 0;
    while done < b.len() {
        match rw.file.write_at(&b[done..], off + done as u64) {
            Ok(0) => {
                return Err(Error::io(
                    "write the MMP block of",
                    node,
                    io::Error::from(io::ErrorKind::WriteZero),
                ))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("write the MMP block of", node, e)),
        }
    }
    rw.file
        .sync_data()
        .map_err(|e| Error::io("sync the MMP block of", node, e))?;
    drop(rw);
    let back = Reader::open(node)?.read_at(off, block.len())?;
    if back != block {
        return Err(Error::device(
            &dev,
            "the cleared MMP block does not read back as written (the LUN loses or reorders writes, or another node wrote at the same moment); do not start the container here until the storage is checked (`debugfs -R dump_mmp` on the device)",
        ));
    }
    parse_mmp(node, g.block, &back)
}

#[cfg(test)]
mod mmp_write_tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value of "123456789".
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
    }

    /// An ext4 image with MMP made by mkfs.ext4 (e2fsprogs, a prerequisite).
    fn image(name: &str, extra: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vzfs-mmp-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let o = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "mmp", "-E", "mmp_update_interval=1"])
            .args(extra)
            .arg(&img)
            .output()
            .expect("mkfs.ext4 (e2fsprogs; run scripts/install-prereqs)");
        assert!(o.status.success(), "{o:?}");
        img
    }

    fn geometry(img: &Path) -> MmpGeometry {
        let head = Reader::open(img).unwrap().read_at(0, 4096).unwrap();
        mmp_geometry(img, &head).unwrap().expect("MMP")
    }

    /// A dirty block as a dead node's kmmpd leaves it (with its checksum).
    fn write_dirty(img: &Path, g: &MmpGeometry, seq: u32) -> Mmp {
        let mut b = clean_mmp_block(g, "deadnode", "sdz");
        b[4..8].copy_from_slice(&seq.to_le_bytes());
        b[8..16].copy_from_slice(&1_796_000_000u64.to_le_bytes());
        if let Some(s) = g.csum_seed {
            let c = crc32c_raw(s, &b[..1020]);
            b[1020..1024].copy_from_slice(&c.to_le_bytes());
        }
        let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
        f.write_all_at(&b, g.block * g.block_size).unwrap();
        f.sync_all().unwrap();
        parse_mmp(img, g.block, &b).unwrap()
    }

    fn dump_mmp(img: &Path) -> String {
        let o = Command::new("debugfs")
            .args(["-R", "dump_mmp"])
            .arg(img)
            .output()
            .expect("debugfs (e2fsprogs)");
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    #[test]
    fn checksum_matches_mkfs() {
        // mkfs.ext4 writes a clean block with its checksum (metadata_csum
        // is on by default); ours over the same fields is the same.
        let img = image("csum", &["-O", "metadata_csum"]);
        let g = geometry(&img);
        assert!(g.csum_seed.is_some(), "{g:?}");
        let b = Reader::open(&img)
            .unwrap()
            .read_at(g.block * g.block_size, 1024)
            .unwrap();
        assert_eq!(le32(&b, 4), MMP_SEQ_CLEAN);
        assert_eq!(
            crc32c_raw(g.csum_seed.unwrap(), &b[..1020]),
            le32(&b, 1020),
            "crc32c over the mkfs block"
        );
        let _ = std::fs::remove_dir_all(img.parent().unwrap());
    }

    #[test]
    fn reset_clears_a_dead_block_and_e2fsprogs_reads_it() {
        for (name, extra) in [
            ("csum", &["-O", "metadata_csum"][..]),
            ("nocsum", &["-O", "^metadata_csum"][..]),
        ] {
            let img = image(&format!("reset-{name}"), extra);
            let g = geometry(&img);
            assert_eq!(g.csum_seed.is_some(), name == "csum");
            let dirty = write_dirty(&img, &g, 0x1234);
            let d = dump_mmp(&img);
            assert!(d.contains("00001234"), "{d}");
            // A block that moved since it was proven dead: nothing written.
            let mut other = dirty.clone();
            other.seq = 0x1233;
            let e = mmp_reset(&img, &other, "survivor", "loop9").unwrap_err();
            assert!(e.to_string().contains("changed before"), "{e}");
            assert!(dump_mmp(&img).contains("00001234"));
            // The proven block: cleared, read back, and e2fsprogs reads it
            // (its checksum checked) as clean.
            let m = mmp_reset(&img, &dirty, "survivor", "loop9").unwrap();
            assert!(m.is_clean(), "{m:?}");
            assert_eq!(m.nodename, "survivor");
            assert_eq!(m.check_interval, 5);
            let d = dump_mmp(&img);
            assert!(d.contains("ff4d4d50"), "{d}");
            assert!(!d.to_lowercase().contains("checksum does not match"), "{d}");
            let o = Command::new("e2fsck")
                .args(["-fn"])
                .arg(&img)
                .output()
                .unwrap();
            assert!(o.status.success(), "e2fsck -fn after the reset: {o:?}");
            let _ = std::fs::remove_dir_all(img.parent().unwrap());
        }
    }
}
