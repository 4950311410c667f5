//! Filesystem checks before a mount, as `VE_DEVICE_FSCK` says:
//! `no` never; `auto` only when the superblock says the filesystem needs it
//! (ext2/3/4 not marked clean or marked with errors; xfs and btrfs repair
//! their log at mount time, so `auto` runs nothing for them); `yes` always
//! (`e2fsck -f -p`, `xfs_repair -n`, `btrfs check --readonly`).

use crate::device::FsInfo;
use crate::error::{Error, Result};
use crate::log;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsckMode {
    No,
    Auto,
    Yes,
}

impl std::fmt::Display for FsckMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsckMode::No => "no",
            FsckMode::Auto => "auto",
            FsckMode::Yes => "yes",
        })
    }
}

impl FsckMode {
    pub fn parse(s: &str) -> Option<FsckMode> {
        match s {
            "no" => Some(FsckMode::No),
            "auto" => Some(FsckMode::Auto),
            "yes" => Some(FsckMode::Yes),
            _ => None,
        }
    }
}

/// The command to run for this filesystem and mode, if any.
pub fn plan(mode: FsckMode, fs: &FsInfo) -> Option<Vec<&'static str>> {
    match (mode, fs.fstype.as_str()) {
        (FsckMode::No, _) => None,
        (FsckMode::Auto, "ext2" | "ext3" | "ext4") => {
            let x = fs.ext.as_ref()?;
            (!x.clean || x.errors).then(|| vec!["e2fsck", "-p"])
        }
        (FsckMode::Auto, _) => None,
        (FsckMode::Yes, "ext2" | "ext3" | "ext4") => Some(vec!["e2fsck", "-f", "-p"]),
        (FsckMode::Yes, "xfs") => Some(vec!["xfs_repair", "-n"]),
        (FsckMode::Yes, "btrfs") => Some(vec!["btrfs", "check", "--readonly"]),
        (FsckMode::Yes, _) => None,
    }
}

/// Runs the check (if any). e2fsck exit 0/1 (nothing wrong / fixed) is
/// success; anything else fails with the tail of its output.
pub fn run(mode: FsckMode, fs: &FsInfo, node: &Path) -> Result<()> {
    let Some(argv) = plan(mode, fs) else {
        return Ok(());
    };
    let cmdline = format!("{} {}", argv.join(" "), node.display());
    log::info(&format!(
        "checking {} ({}): {}",
        node.display(),
        fs.fstype,
        cmdline
    ));
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .arg(node)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("run fsck", argv[0], e))?;
    let code = out.status.code().unwrap_or(-1);
    let ok = if argv[0] == "e2fsck" {
        code == 0 || code == 1
    } else {
        code == 0
    };
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !ok {
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        return Err(Error::Fsck {
            device: node.display().to_string(),
            cmd: cmdline,
            code,
            tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    if code == 1 {
        log::warn(&format!("{cmdline}: errors were corrected"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ExtInfo;

    fn ext(clean: bool, errors: bool) -> FsInfo {
        FsInfo {
            fstype: "ext4".into(),
            uuid: None,
            label: None,
            ext: Some(ExtInfo {
                block_size: 4096,
                clean,
                errors,
                needs_recovery: false,
                mmp: None,
                mtime: 0,
                last_mounted: String::new(),
                incompat: 0,
                ro_compat: 0,
            }),
            xfs_version: None,
        }
    }

    #[test]
    fn auto_only_when_needed() {
        assert_eq!(plan(FsckMode::Auto, &ext(true, false)), None);
        assert_eq!(
            plan(FsckMode::Auto, &ext(false, false)),
            Some(vec!["e2fsck", "-p"])
        );
        assert_eq!(
            plan(FsckMode::Auto, &ext(true, true)),
            Some(vec!["e2fsck", "-p"])
        );
        assert_eq!(
            plan(FsckMode::Yes, &ext(true, false)),
            Some(vec!["e2fsck", "-f", "-p"])
        );
        assert_eq!(plan(FsckMode::No, &ext(false, true)), None);
        let x = FsInfo {
            fstype: "xfs".into(),
            uuid: None,
            label: None,
            ext: None,
            xfs_version: Some(5),
        };
        assert_eq!(plan(FsckMode::Auto, &x), None);
        assert_eq!(plan(FsckMode::Yes, &x), Some(vec!["xfs_repair", "-n"]));
        assert_eq!(FsckMode::parse("maybe"), None);
    }
}
