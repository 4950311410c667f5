//! What this node can do, found out rather than assumed: the running
//! kernel's release (uname(2)), which filesystem features that kernel can
//! mount ([`EXT4_FEATURES`], xfs v5), and the versions of the external tools
//! vzfs drives (OpenSSH, rsync, e2fsprogs), parsed from their own version
//! output. OpenVZ 6 nodes run CentOS 6 on a 2.6.32 kernel: OpenSSH 5.3
//! (no `ControlPersist`), rsync 3.0.6 (no `--info`, no nanosecond times),
//! e2fsprogs 1.41.12 (no MMP); the callers choose their options from what
//! this module reports. The parsers take any bytes (property-tested).

use crate::device::FsInfo;

/// A version `a.b.c` (kernel release, tool version); missing parts are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Parses the leading `a.b[.c]` of `s` (`2.6.32-042stab134.8`, `5.3p1`,
/// `1.41.12`): digits separated by dots, anything after the numbers
/// ignored. `None` unless at least `a.b` is there.
pub fn parse_version(s: &str) -> Option<Version> {
    let mut parts = [0u32; 3];
    let mut n = 0;
    let mut rest = s;
    while n < 3 {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        parts[n] = rest[..digits].parse().ok()?;
        n += 1;
        rest = &rest[digits..];
        match rest.strip_prefix('.') {
            Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => rest = r,
            _ => break,
        }
    }
    (n >= 2).then_some(Version(parts[0], parts[1], parts[2]))
}

/// The running kernel: its release text as uname(2) gives it, and the
/// version parsed from it (None when it has no `a.b` at the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub release: String,
    pub version: Option<Version>,
}

impl Kernel {
    /// uname(2) of this node.
    pub fn running() -> Kernel {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Kernel::from_release(&release)
    }

    pub fn from_release(release: &str) -> Kernel {
        Kernel {
            release: release.to_string(),
            version: parse_version(release),
        }
    }

    /// Whether this kernel can mount a filesystem feature that needs `min`.
    /// A release we cannot read is given the benefit of the doubt (the
    /// mount itself will say).
    pub fn has(&self, min: Version) -> bool {
        self.version.map_or(true, |v| v >= min)
    }

    /// ext4 multi-mount protection (Linux 3.0).
    pub fn can_mount_mmp(&self) -> bool {
        self.has(MMP_KERNEL)
    }
}

/// The first mainline release whose ext4 mounts a filesystem with MMP.
pub const MMP_KERNEL: Version = Version(3, 0, 0);
/// The first e2fsprogs whose mke2fs/tune2fs set MMP (`-O mmp`).
pub const MMP_E2FSPROGS: Version = Version(1, 42, 0);

/// Which superblock word a feature bit is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    Incompat,
    RoCompat,
}

/// ext4 features a kernel must know to mount the filesystem read-write:
/// (name as mke2fs spells it, word, bit, first mainline release that mounts
/// it, first e2fsprogs that knows the name). Features every ext4 kernel
/// knows (extents, flex_bg, huge_file, ... all in 2.6.28) are not listed.
pub const EXT4_FEATURES: &[(&str, Word, u32, Version, Version)] = &[
    ("mmp", Word::Incompat, 0x0100, MMP_KERNEL, MMP_E2FSPROGS),
    (
        "ea_inode",
        Word::Incompat,
        0x0400,
        Version(4, 13, 0),
        Version(1, 44, 0),
    ),
    (
        "metadata_csum_seed",
        Word::Incompat,
        0x2000,
        Version(4, 4, 0),
        Version(1, 43, 0),
    ),
    (
        "large_dir",
        Word::Incompat,
        0x4000,
        Version(4, 13, 0),
        Version(1, 44, 0),
    ),
    (
        "inline_data",
        Word::Incompat,
        0x8000,
        Version(3, 8, 0),
        Version(1, 43, 0),
    ),
    (
        "encrypt",
        Word::Incompat,
        0x10000,
        Version(4, 1, 0),
        Version(1, 43, 0),
    ),
    (
        "casefold",
        Word::Incompat,
        0x20000,
        Version(5, 2, 0),
        Version(1, 45, 0),
    ),
    (
        "quota",
        Word::RoCompat,
        0x0100,
        Version(3, 6, 0),
        Version(1, 42, 0),
    ),
    (
        "bigalloc",
        Word::RoCompat,
        0x0200,
        Version(3, 2, 0),
        Version(1, 42, 0),
    ),
    (
        "metadata_csum",
        Word::RoCompat,
        0x0400,
        Version(3, 6, 0),
        Version(1, 43, 0),
    ),
    (
        "project",
        Word::RoCompat,
        0x2000,
        Version(4, 5, 0),
        Version(1, 43, 0),
    ),
    (
        "verity",
        Word::RoCompat,
        0x8000,
        Version(5, 4, 0),
        Version(1, 45, 0),
    ),
    (
        "orphan_file",
        Word::RoCompat,
        0x10000,
        Version(5, 15, 0),
        Version(1, 47, 0),
    ),
];

/// xfs version 5 superblocks (`crc=1`, mkfs.xfs's default since xfsprogs
/// 3.2.3) mount from Linux 3.10 on.
pub const XFS_V5_KERNEL: Version = Version(3, 10, 0);

/// The features of `fs` that `kernel` cannot mount, with the release each
/// needs. Empty on a kernel whose release we cannot read.
pub fn unmountable(fs: &FsInfo, kernel: &Kernel) -> Vec<(&'static str, Version)> {
    let mut out = Vec::new();
    if let Some(ext) = &fs.ext {
        for &(name, word, bit, min, _) in EXT4_FEATURES {
            let w = match word {
                Word::Incompat => ext.incompat,
                Word::RoCompat => ext.ro_compat,
            };
            if w & bit != 0 && !kernel.has(min) {
                out.push((name, min));
            }
        }
    }
    if fs.fstype == "xfs" && fs.xfs_version >= Some(5) && !kernel.has(XFS_V5_KERNEL) {
        out.push(("xfs v5 (crc)", XFS_V5_KERNEL));
    }
    out
}

/// mke2fs `-O` arguments that keep off every feature `kernel` cannot mount
/// and mke2fs of version `e2fs` knows by name (an older mke2fs neither
/// knows nor sets the newer ones, and refuses names it does not know).
pub fn mkfs_ext4_exclusions(kernel: &Kernel, e2fs: Version) -> Vec<String> {
    EXT4_FEATURES
        .iter()
        .filter(|&&(_, _, _, min, named)| !kernel.has(min) && e2fs >= named)
        .map(|&(name, ..)| format!("^{name}"))
        .collect()
}

/// The version in `ssh -V`'s output (`OpenSSH_5.3p1, OpenSSL 1.0.1e ...`,
/// on stderr).
pub fn parse_openssh(text: &str) -> Option<Version> {
    let at = text.find("OpenSSH_")?;
    parse_version(&text[at + "OpenSSH_".len()..])
}

/// The version in `rsync --version`'s first line
/// (`rsync  version 3.0.6  protocol version 30`, `rsync  version v3.2.7 ...`).
pub fn parse_rsync(text: &str) -> Option<Version> {
    let line = text.lines().next()?;
    let at = line.find("version")?;
    let rest = line[at + "version".len()..].trim_start();
    parse_version(rest.strip_prefix('v').unwrap_or(rest))
}

/// The version an e2fsprogs tool prints with `-V` (`mke2fs 1.41.12
/// (17-May-2010)`, `tune2fs 1.47.0 (5-Feb-2023)`, on stderr): the first
/// word that is a version, on the first line that has one.
pub fn parse_e2fsprogs(text: &str) -> Option<Version> {
    text.lines()
        .flat_map(|l| l.split_whitespace().skip(1).take(1))
        .find_map(parse_version)
}

/// OpenSSH learnt `ControlPersist` in 5.6.
pub const CONTROL_PERSIST_SSH: Version = Version(5, 6, 0);
/// rsync learnt `--info=...` and nanosecond modification times in 3.1.0.
pub const RSYNC_INFO: Version = Version(3, 1, 0);
/// rsync learnt `--modify-window=-1` (compare nanoseconds) and xattr filters
/// (`--filter=-x`) in 3.1.3.
pub const RSYNC_NEG_MODIFY_WINDOW: Version = Version(3, 1, 3);

/// Runs `argv` (no shell, stdin `/dev/null`) and returns stdout and stderr
/// together, for a version query. None when it cannot run at all.
pub fn tool_output(argv: &[&str]) -> Option<String> {
    let o = std::process::Command::new(argv.first()?)
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
    t.push_str(&String::from_utf8_lossy(&o.stderr));
    Some(t)
}

/// This node's e2fsprogs (`mke2fs -V`), if it has one.
pub fn e2fsprogs_version() -> Option<Version> {
    parse_e2fsprogs(&tool_output(&["mke2fs", "-V"])?)
}

/// What this node can do with ext4 MMP: whether its tools can set it and
/// whether its kernel can mount it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmpSupport {
    pub kernel: Kernel,
    /// e2fsprogs version (`mke2fs -V`); None: none found.
    pub e2fsprogs: Option<Version>,
}

impl MmpSupport {
    pub fn of_this_node() -> MmpSupport {
        MmpSupport {
            kernel: Kernel::running(),
            e2fsprogs: e2fsprogs_version(),
        }
    }
    pub fn tools_can_set(&self) -> bool {
        self.e2fsprogs.is_some_and(|v| v >= MMP_E2FSPROGS)
    }
    pub fn kernel_can_mount(&self) -> bool {
        self.kernel.can_mount_mmp()
    }
    pub fn usable(&self) -> bool {
        self.tools_can_set() && self.kernel_can_mount()
    }
    /// Why MMP is not usable here, in words (empty when it is).
    pub fn why_not(&self) -> String {
        let mut v = Vec::new();
        if !self.kernel_can_mount() {
            v.push(format!(
                "this node's kernel {} cannot mount an ext4 filesystem with MMP (Linux {MMP_KERNEL} or later can)",
                self.kernel.release
            ));
        }
        if !self.tools_can_set() {
            v.push(match self.e2fsprogs {
                Some(e) => format!(
                    "its e2fsprogs {e} cannot set MMP (e2fsprogs {MMP_E2FSPROGS} or later can)"
                ),
                None => "it has no e2fsprogs (mke2fs -V) to set MMP with".into(),
            });
        }
        v.join(", and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("2.6.32-042stab134.8"),
            Some(Version(2, 6, 32))
        );
        assert_eq!(parse_version("6.1.0-18-amd64"), Some(Version(6, 1, 0)));
        assert_eq!(parse_version("3.0"), Some(Version(3, 0, 0)));
        assert_eq!(parse_version("5.3p1, OpenSSL"), Some(Version(5, 3, 0)));
        assert_eq!(parse_version("4."), None);
        assert_eq!(parse_version("x1.2"), None);
        assert_eq!(parse_version("99999999999.1"), None);
        assert_eq!(
            parse_openssh("OpenSSH_5.3p1, OpenSSL 1.0.1e 11 Feb 2013\n"),
            Some(Version(5, 3, 0))
        );
        assert_eq!(
            parse_openssh("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15"),
            Some(Version(9, 2, 0))
        );
        assert_eq!(
            parse_rsync("rsync  version 3.0.6  protocol version 30\nCopyright"),
            Some(Version(3, 0, 6))
        );
        assert_eq!(
            parse_rsync("rsync  version v3.2.7  protocol version 31\n"),
            Some(Version(3, 2, 7))
        );
        assert_eq!(
            parse_e2fsprogs(
                "mke2fs 1.41.12 (17-May-2010)\n\tUsing EXT2FS Library version 1.41.12\n"
            ),
            Some(Version(1, 41, 12))
        );
        assert_eq!(
            parse_e2fsprogs("mke2fs 1.47.0 (5-Feb-2023)\n"),
            Some(Version(1, 47, 0))
        );
    }

    #[test]
    fn kernel_features() {
        let old = Kernel::from_release("2.6.32-042stab134.8");
        let new = Kernel::from_release("6.1.0-18-amd64");
        assert!(!old.can_mount_mmp());
        assert!(new.can_mount_mmp());
        assert!(Kernel::from_release("").can_mount_mmp());
        let ex = mkfs_ext4_exclusions(&old, Version(1, 47, 0));
        assert!(ex.contains(&"^metadata_csum".to_string()), "{ex:?}");
        assert!(ex.contains(&"^mmp".to_string()));
        assert!(mkfs_ext4_exclusions(&old, Version(1, 41, 12)).is_empty());
        assert!(mkfs_ext4_exclusions(&new, Version(1, 47, 0)).is_empty());
        let m = MmpSupport {
            kernel: old,
            e2fsprogs: Some(Version(1, 41, 12)),
        };
        assert!(!m.usable());
        let w = m.why_not();
        assert!(
            w.contains("2.6.32-042stab134.8") && w.contains("1.41.12"),
            "{w}"
        );
    }
}
