//! The steps of `vzfs-create` and their undos, run by [`crate::runner`].
//!
//! | step | does | undo |
//! | --- | --- | --- |
//! | `stop` | `vzctl stop` (running) / `vzctl umount` (mounted) | `vzctl start` / `vzctl mount` |
//! | `mkfs` | `mkfs.ext4 [-O mmp]` / `mkfs.xfs` (keeps a `UUID=`/`LABEL=` spec) | none: the new empty filesystem stays |
//! | `mmp` | `tune2fs -O mmp` | `tune2fs -O ^mmp` |
//! | `create-tmp` | `vzctl create CTID --private TMP ...` | remove the config, TMP and its parent, VE_ROOT if new |
//! | `rename-old` | VE_PRIVATE -> `NAME.vzfs-shared-CTID` | rename back |
//! | `mount` | the device on VE_PRIVATE (vzfs library: every hook check) | unmount (released), remove VE_PRIVATE if new |
//! | `copy` | manifest of the source, size check (allocated blocks), rsync -aHAX --numeric-ids --sparse (rsync >= 3.1.3: xfs's `trusted.SGI_ACL_*` filtered out, the ACLs go by -A) | remove what was copied |
//! | `verify` | manifest of the copy compared with the source's (ACLs by their entries, xfs's `trusted.SGI_ACL_*` ignored) | none |
//! | `umount` | unmount, device released | mount again (to-shared) |
//! | `swap` | to-shared: remove the empty mount point, new directory -> VE_PRIVATE | rename back, mount point again |
//! | `config` | VE_PRIVATE/VE_DEVICE/VE_DEVICE_FSTYPE set, or the VE_DEVICE* lines removed; commit | as it was |
//! | `start` / `mount-ct` | `vzctl start` / `vzctl mount` | (after the commit: finished forward) |
//! | `remove-tmp` / `remove-old` | remove the temporary area / the old private directory | (after the commit) |

use super::{Job, Was};
use crate::create::cli::Mode;
use crate::error::{Error, Kind, Result};
use crate::hostops::{self, PathState};
use crate::transport::{self, say};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vzfs::config::{self, VzEtc};
use vzfs::hook::{CtFs, DeviceCfg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Stop,
    Mkfs,
    Mmp,
    CreateTmp,
    RenameOld,
    Mount,
    Copy,
    Verify,
    Umount,
    Swap,
    Config,
    Start,
    MountCt,
    RemoveTmp,
    RemoveOld,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Stop => "stop",
            Step::Mkfs => "mkfs",
            Step::Mmp => "mmp",
            Step::CreateTmp => "create-tmp",
            Step::RenameOld => "rename-old",
            Step::Mount => "mount",
            Step::Copy => "copy",
            Step::Verify => "verify",
            Step::Umount => "umount",
            Step::Swap => "swap",
            Step::Config => "config",
            Step::Start => "start",
            Step::MountCt => "mount-ct",
            Step::RemoveTmp => "remove-tmp",
            Step::RemoveOld => "remove-old",
        }
    }
}

fn p(x: &Option<PathBuf>) -> String {
    x.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".into())
}

pub fn describe(job: &Job, s: &Step) -> String {
    let dev = job.device.clone().unwrap_or_default();
    let private = job.private.display();
    match s {
        Step::Stop if job.was == Was::Mounted => format!("vzctl umount {}", job.ctid),
        Step::Stop => format!("vzctl stop {}", job.ctid),
        Step::Mkfs => format!(
            "make a new {} filesystem on {dev}{}",
            job.fstype.as_deref().unwrap_or("?"),
            if job.mmp {
                " with multi-mount protection (MMP)"
            } else {
                ""
            }
        ),
        Step::Mmp => format!("turn on multi-mount protection on {dev} (tune2fs -O mmp)"),
        Step::CreateTmp => format!(
            "vzctl create {} into the temporary private area {}",
            job.ctid,
            p(&job.tmp_private)
        ),
        Step::RenameOld => format!("rename {private} to {}", p(&job.aside)),
        Step::Mount => format!("mount {dev} on {private} (all of vzfs-hook's checks)"),
        Step::Copy => format!(
            "copy {} to {} (rsync -aHAX --numeric-ids --sparse)",
            src(job).display(),
            dst(job).display()
        ),
        Step::Verify => format!(
            "compare {} with the manifest of {}",
            dst(job).display(),
            src(job).display()
        ),
        Step::Umount => format!("unmount {dev} from {private} (released)"),
        Step::Swap => format!(
            "replace the empty mount point {private} by {}",
            p(&job.aside)
        ),
        Step::Config => match job.mode {
            Mode::ToShared => format!("remove the VE_DEVICE* lines from {}", job.conf.display()),
            Mode::Create => format!(
                "set VE_PRIVATE={}, VE_DEVICE={dev}, VE_DEVICE_FSTYPE={} in {}",
                job.private_raw.as_deref().unwrap_or("?"),
                job.fstype.as_deref().unwrap_or("?"),
                job.conf.display()
            ),
            _ => format!(
                "set VE_DEVICE={dev}, VE_DEVICE_FSTYPE={} in {}",
                job.fstype.as_deref().unwrap_or("?"),
                job.conf.display()
            ),
        },
        Step::Start => format!("vzctl start {}", job.ctid),
        Step::MountCt => format!("vzctl mount {}", job.ctid),
        Step::RemoveTmp => format!("remove the temporary area {}", p(&job.tmp_parent)),
        Step::RemoveOld => format!("remove the old private directory {}", p(&job.aside)),
    }
}

pub fn undo_describe(job: &Job, s: &Step) -> String {
    match s {
        Step::Stop if job.was == Was::Mounted => format!("vzctl mount {}", job.ctid),
        Step::Stop => format!("vzctl start {}", job.ctid),
        Step::Mkfs => "none: the new empty filesystem stays".into(),
        Step::Mmp => "tune2fs -O ^mmp".into(),
        Step::CreateTmp => "remove the new config, the temporary area and VE_ROOT".into(),
        Step::RenameOld => "rename it back".into(),
        Step::Mount => "unmount the device (released) and remove VE_PRIVATE if it was made".into(),
        Step::Copy => "remove what was copied".into(),
        Step::Verify => "none".into(),
        Step::Umount if job.mode == Mode::ToShared => "mount the device again".into(),
        Step::Umount => "none (after the commit)".into(),
        Step::Swap => "rename it back, make the mount point again".into(),
        Step::Config => "restore the config as it was".into(),
        _ => "none (after the commit: finished forward by --recover)".into(),
    }
}

/// The copy's source and destination.
fn src(job: &Job) -> PathBuf {
    match job.mode {
        Mode::Create => job.tmp_private.clone().unwrap_or_default(),
        Mode::Convert => job.aside.clone().unwrap_or_default(),
        _ => job.private.clone(),
    }
}
fn dst(job: &Job) -> PathBuf {
    match job.mode {
        Mode::ToShared => job.aside.clone().unwrap_or_default(),
        _ => job.private.clone(),
    }
}

/// The run's state: the job and what the steps learned.
pub struct Ctx {
    pub job: Job,
    etc: VzEtc,
    manifest: Option<vzfs::manifest::Manifest>,
    down: Option<Instant>,
    downtime: Option<f64>,
}

impl Ctx {
    pub fn new(job: Job) -> Ctx {
        let etc = VzEtc::new(job.etc.clone());
        Ctx {
            job,
            etc,
            manifest: None,
            down: None,
            downtime: None,
        }
    }

    pub fn downtime(&self) -> Option<f64> {
        self.downtime
    }

    /// The closing lines: where the old directory is, how to start.
    pub fn finished_message(&self) {
        let j = &self.job;
        if let Some(d) = self.downtime {
            say(&format!("downtime of CT {}: {d:.3} s", j.ctid));
        }
        match j.mode {
            Mode::Create => say(&format!(
                "CT {} created on {} (VE_PRIVATE {}); `vzctl start {}` mounts it through vzfs-hook",
                j.ctid,
                j.device.as_deref().unwrap_or("?"),
                j.private.display(),
                j.ctid
            )),
            Mode::Convert => {
                say(&format!(
                    "CT {} is insulated on {}",
                    j.ctid,
                    j.device.as_deref().unwrap_or("?")
                ));
                if !j.remove_old {
                    vzfs::log::warn(&format!(
                        "CT {}: the old private directory is kept as {}; remove it when the container works (rm -rf)",
                        j.ctid,
                        p(&j.aside)
                    ));
                }
            }
            _ => say(&format!(
                "CT {} is shared (VE_PRIVATE {} is a plain directory); the data also stays on {}, which vzfs-create never wipes",
                j.ctid,
                j.private.display(),
                j.device.as_deref().unwrap_or("?")
            )),
        }
    }

    fn ctfs(&self) -> Result<CtFs> {
        let j = &self.job;
        if j.mode == Mode::ToShared {
            // the container's own settings (VE_DEVICE_OPTIONS, ...), still
            // in its config until the `config` step
            if let Ok((_, fs)) = hostops::ct_fs(&self.etc, j.ctid) {
                if fs.device.is_some() {
                    return Ok(fs);
                }
            }
        }
        let spec = j.device.clone().unwrap_or_default();
        let parsed = vzfs::device::DeviceSpec::parse(&spec)
            .map_err(|m| Error::check(Kind::DeviceCheck, format!("device {spec}"), m))?;
        Ok(CtFs {
            ctid: j.ctid.to_string(),
            private: j.private.clone(),
            root: None,
            device: Some(DeviceCfg {
                spec: parsed,
                origin: "--device".into(),
                fstype: j.fstype.clone(),
                options: String::new(),
                fsck: vzfs::fsck::FsckMode::Auto,
            }),
            lockdir: j.lockdir.clone(),
            verbosity: None,
            global: None,
        })
    }

    fn vzctl(&self, cmd: &str, args: &[&str], kind: Kind) -> Result<()> {
        transport::run_local(
            "localhost",
            &crate::vzctl::argv(&self.job.vzctl, true, cmd, self.job.ctid, args),
            false,
        )?
        .check(kind)?;
        Ok(())
    }

    fn run_cmd(&self, argv: &[String], kind: Kind) -> Result<()> {
        transport::run_local("localhost", argv, false)?.check(kind)?;
        Ok(())
    }

    /// rsync's filters for xfs's own form of an ACL. xfs lists it as
    /// `trusted.SGI_ACL_FILE`/`trusted.SGI_ACL_DEFAULT` (to root) next to
    /// `system.posix_acl_*`, and `-X` as root treats those as attributes of
    /// their own: onto xfs it deletes them where the source (ext4, tmpfs)
    /// has none, so a file that inherited a default ACL on creation loses
    /// that ACL; from xfs it copies their bytes as plain `trusted.*`
    /// attributes onto ext4 (meaningless there, stale once the ACL
    /// changes). The ACL itself travels through `-A`. An xattr filter turns
    /// off rsync's own skipping of `system.*`, so that is excluded here too.
    /// rsync before 3.1.3 has no xattr filters: then none, and a copy onto
    /// xfs whose inherited ACLs rsync dropped fails the verify (undone).
    fn xattr_filters(&self) -> Vec<String> {
        let v = transport::local_rsync_version();
        if v < Some(vzfs::platform::RSYNC_NEG_MODIFY_WINDOW) {
            transport::log(&format!(
                "copy: rsync {} has no xattr filters (3.1.3): xfs's trusted.SGI_ACL_* names are copied as they are",
                v.map_or_else(|| "(version unknown)".into(), |v| v.to_string())
            ));
            return Vec::new();
        }
        let mut f = vec!["--filter=-x system.*".to_string()];
        for name in vzfs::manifest::FS_INTERNAL_XATTRS {
            f.push(format!("--filter=-x {name}"));
        }
        f
    }

    fn mounted(&self) -> Result<bool> {
        Ok(hostops::mounted_on(&self.job.private)?.is_some())
    }

    fn mount(&self) -> Result<()> {
        hostops::ct_mount(&self.etc, &self.ctfs()?)?;
        Ok(())
    }

    fn umount(&self) -> Result<()> {
        hostops::ct_umount(&self.etc, &self.ctfs()?)?;
        Ok(())
    }

    fn skip_lf(&self) -> &'static [&'static str] {
        &["lost+found"]
    }

    /// Create only, before anything writes to the device (mkfs, tune2fs,
    /// the mount): what the extracted template really occupies (allocated
    /// blocks) must fit the device. A refusal here leaves the device as it
    /// was; the undo removes the temporary area.
    fn check_fits(&self) -> Result<()> {
        let j = &self.job;
        if j.mode != Mode::Create {
            return Ok(());
        }
        let (Some(tmp), Some(node)) = (&j.tmp_private, &j.device_node) else {
            return Ok(());
        };
        let used = vzfs::manifest::allocated_bytes(tmp)
            .map_err(|e| hostops::lib_err(format!("size of {}", tmp.display()), e))?;
        let Some(size) = vzfs::node::block_size_bytes(node) else {
            return Ok(());
        };
        if used > size {
            return Err(Error::check(
                Kind::DeviceCheck,
                format!("device {}", node.display()),
                format!(
                    "too small: the container's files occupy {used} bytes, the device has {size}; nothing was written to it: use a larger device"
                ),
            ));
        }
        Ok(())
    }
}

fn rm_tree(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(Kind::System, "cannot stat", p, e)),
        Ok(m) if m.is_dir() => {
            if let Some(m) = hostops::mounted_on(p)? {
                return Err(Error::check(
                    Kind::System,
                    format!("remove {}", p.display()),
                    format!("refused: {m} is mounted on it"),
                ));
            }
            std::fs::remove_dir_all(p).map_err(|e| Error::io(Kind::System, "cannot remove", p, e))
        }
        Ok(_) => {
            std::fs::remove_file(p).map_err(|e| Error::io(Kind::System, "cannot remove", p, e))
        }
    }
}

fn rename(a: &Path, b: &Path) -> Result<()> {
    std::fs::rename(a, b).map_err(|e| {
        Error::io(
            Kind::System,
            format!("cannot rename {} to", a.display()),
            b,
            e,
        )
    })
}

fn cfg_edit(r: std::result::Result<(), config::ConfigError>, what: &str) -> Result<()> {
    r.map_err(|e| hostops::cfg_err(Kind::ApplyConfig, what.to_string(), e))
}

impl crate::runner::Plan for Ctx {
    type Step = Step;

    fn steps(&self) -> Vec<Step> {
        self.job.steps.clone()
    }
    fn commit_index(&self) -> usize {
        self.job.commit_index()
    }
    fn name(&self, s: &Step) -> String {
        s.name().to_string()
    }
    fn describe(&self, s: &Step) -> String {
        describe(&self.job, s)
    }
    fn undo_describe(&self, s: &Step) -> String {
        undo_describe(&self.job, s)
    }
    fn recover_hint(&self) -> String {
        format!("vzfs-create --recover {}", self.job.ctid)
    }

    fn run(&mut self, s: &Step) -> Result<bool> {
        let j = self.job.clone();
        match s {
            Step::Stop => {
                self.down = Some(Instant::now());
                if j.was == Was::Mounted {
                    self.vzctl("umount", &[], Kind::StopSource)?;
                } else {
                    self.vzctl("stop", &[], Kind::StopSource)?;
                }
                Ok(false)
            }
            Step::Mkfs => {
                self.check_fits()?;
                let node = p(&j.device_node);
                // Never a feature this node's kernel cannot mount: mkfs's
                // defaults follow its own version, not the kernel's.
                let kernel = vzfs::platform::Kernel::running();
                let mut argv: Vec<String> = match j.fstype.as_deref() {
                    Some("xfs") => {
                        let mut v = vec!["mkfs.xfs".into(), "-q".into(), "-f".into()];
                        let xfsprogs =
                            vzfs::platform::tool_output(&["mkfs.xfs", "-V"]).and_then(|t| {
                                t.split_whitespace().find_map(vzfs::platform::parse_version)
                            });
                        if !kernel.has(vzfs::platform::XFS_V5_KERNEL)
                            && xfsprogs >= Some(vzfs::platform::Version(3, 2, 0))
                        {
                            v.extend(["-m".into(), "crc=0".into()]);
                        }
                        v
                    }
                    _ => {
                        let mut v = vec!["mkfs.ext4".into(), "-q".into(), "-F".into()];
                        let mut features = if j.mmp {
                            vec!["mmp".to_string()]
                        } else {
                            Vec::new()
                        };
                        if let Some(e2fs) = vzfs::platform::e2fsprogs_version() {
                            features.extend(vzfs::platform::mkfs_ext4_exclusions(&kernel, e2fs));
                        }
                        if !features.is_empty() {
                            v.extend(["-O".into(), features.join(",")]);
                        }
                        v
                    }
                };
                if let Some(u) = &j.mkfs_uuid {
                    if j.fstype.as_deref() == Some("xfs") {
                        argv.extend(["-m".into(), format!("uuid={u}")]);
                    } else {
                        argv.extend(["-U".into(), u.clone()]);
                    }
                }
                if let Some(l) = &j.mkfs_label {
                    argv.extend(["-L".into(), l.clone()]);
                }
                argv.push(node);
                self.run_cmd(&argv, Kind::DeviceCheck)?;
                Ok(false)
            }
            Step::Mmp => {
                self.check_fits()?;
                let node = p(&j.device_node);
                let probe = hostops::device_facts(&node)?;
                if probe.mmp == Some(true) {
                    return Ok(true);
                }
                self.run_cmd(
                    &["tune2fs".into(), "-O".into(), "mmp".into(), node],
                    Kind::DeviceCheck,
                )?;
                Ok(false)
            }
            Step::CreateTmp => {
                let parent = j.tmp_parent.clone().expect("create has a temporary area");
                std::fs::create_dir(&parent)
                    .map_err(|e| Error::io(Kind::System, "cannot create", &parent, e))?;
                let tmp = p(&j.tmp_private);
                let mut args: Vec<&str> = vec!["--private", &tmp];
                args.extend(j.vzctl_args.iter().map(String::as_str));
                self.vzctl("create", &args, Kind::ApplyConfig)?;
                Ok(false)
            }
            Step::RenameOld => {
                rename(&j.private, j.aside.as_deref().expect("aside"))?;
                Ok(false)
            }
            Step::Mount => {
                if self.mounted()? {
                    return Ok(true);
                }
                self.check_fits()?;
                self.mount()?;
                Ok(false)
            }
            Step::Copy => {
                let (from, to) = (src(&j), dst(&j));
                if j.mode == Mode::ToShared {
                    std::fs::create_dir(&to)
                        .map_err(|e| Error::io(Kind::System, "cannot create", &to, e))?;
                }
                match hostops::path_state(&to) {
                    PathState::Empty | PathState::LostFound => {}
                    _ => {
                        return Err(Error::check(
                            Kind::DeviceCheck,
                            format!("copy into {}", to.display()),
                            "refused: it is not empty (the device holds data)",
                        ))
                    }
                }
                let m = vzfs::manifest::take(&from, self.skip_lf())
                    .map_err(|e| hostops::lib_err(format!("manifest of {}", from.display()), e))?;
                let st = nix::sys::statvfs::statvfs(&to)
                    .map_err(|e| Error::io(Kind::System, "cannot statvfs", &to, e.into()))?;
                let avail = st.blocks_available() as u64 * st.fragment_size() as u64;
                if m.allocated() > avail {
                    return Err(Error::check(
                        Kind::Copy,
                        format!("copy into {}", to.display()),
                        format!(
                            "does not fit: the files occupy {} bytes, {} bytes are free there",
                            m.allocated(),
                            avail
                        ),
                    ));
                }
                self.manifest = Some(m);
                let mut argv: Vec<String> = ["rsync", "-aHAX", "--numeric-ids", "--sparse"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                // exact times: by default rsync leaves a copy's mtime alone
                // when the seconds match, keeping its nanoseconds (the option
                // is rsync 3.1.3+; an older one keeps seconds only, and the
                // verify compares what it keeps)
                if transport::local_rsync_version() >= Some(vzfs::platform::RSYNC_NEG_MODIFY_WINDOW)
                {
                    argv.push("--modify-window=-1".into());
                }
                argv.push("--exclude=/lost+found".into());
                argv.extend(self.xattr_filters());
                argv.push(format!("{}/", from.display()));
                argv.push(format!("{}/", to.display()));
                self.run_cmd(&argv, Kind::Copy)?;
                Ok(false)
            }
            Step::Verify => {
                let (from, to) = (src(&j), dst(&j));
                let orig = match self.manifest.take() {
                    Some(m) => m,
                    None => vzfs::manifest::take(&from, self.skip_lf()).map_err(|e| {
                        hostops::lib_err(format!("manifest of {}", from.display()), e)
                    })?,
                };
                let mut copy = vzfs::manifest::take(&to, self.skip_lf())
                    .map_err(|e| hostops::lib_err(format!("manifest of {}", to.display()), e))?;
                let mut orig = orig;
                // rsync before 3.1.0 (CentOS 6: 3.0.6) copies whole seconds
                if transport::local_rsync_version() < Some(vzfs::platform::RSYNC_INFO) {
                    orig.times_in_seconds();
                    copy.times_in_seconds();
                }
                let d = orig.diff(&copy, 8);
                if !d.is_empty() {
                    return Err(Error::check(
                        Kind::Copy,
                        format!("verify {} against {}", to.display(), from.display()),
                        format!("the copy differs: {}", d.join("; ")),
                    ));
                }
                transport::log(&format!(
                    "verify: {} entries, {} hard-link groups identical",
                    orig.entries.len(),
                    orig.link_groups.len()
                ));
                Ok(false)
            }
            Step::Umount => {
                if !self.mounted()? {
                    // nothing mounted: still prove the device released
                    self.umount()?;
                    return Ok(true);
                }
                self.umount()?;
                Ok(false)
            }
            Step::Swap => {
                let aside = j.aside.clone().expect("aside");
                if hostops::path_state(&j.private) == PathState::Empty {
                    std::fs::remove_dir(&j.private)
                        .map_err(|e| Error::io(Kind::System, "cannot remove", &j.private, e))?;
                }
                rename(&aside, &j.private)?;
                Ok(false)
            }
            Step::Config => {
                let c = &j.conf;
                match j.mode {
                    Mode::ToShared => {
                        for k in [
                            "VE_DEVICE",
                            "VE_DEVICE_FSTYPE",
                            "VE_DEVICE_OPTIONS",
                            "VE_DEVICE_FSCK",
                        ] {
                            config::remove_key(c, k).map_err(|e| {
                                hostops::cfg_err(Kind::ApplyConfig, format!("remove {k}"), e)
                            })?;
                        }
                    }
                    _ => {
                        if let Some(raw) = &j.private_raw {
                            cfg_edit(config::set_key(c, "VE_PRIVATE", raw), "set VE_PRIVATE")?;
                        }
                        cfg_edit(
                            config::set_key(c, "VE_DEVICE", j.device.as_deref().unwrap_or("")),
                            "set VE_DEVICE",
                        )?;
                        if let Some(t) = &j.fstype {
                            cfg_edit(
                                config::set_key(c, "VE_DEVICE_FSTYPE", t),
                                "set VE_DEVICE_FSTYPE",
                            )?;
                        }
                    }
                }
                Ok(false)
            }
            Step::Start => {
                self.vzctl("start", &[], Kind::StartTarget)?;
                if let Some(d) = self.down {
                    self.downtime = Some(d.elapsed().as_secs_f64());
                }
                Ok(false)
            }
            Step::MountCt => {
                self.vzctl("mount", &[], Kind::StartTarget)?;
                if let Some(d) = self.down {
                    self.downtime = Some(d.elapsed().as_secs_f64());
                }
                Ok(false)
            }
            Step::RemoveTmp => {
                let parent = j.tmp_parent.clone().expect("create has a temporary area");
                let gone = std::fs::symlink_metadata(&parent).is_err();
                rm_tree(&parent)?;
                Ok(gone)
            }
            Step::RemoveOld => {
                let aside = j.aside.clone().expect("aside");
                let gone = std::fs::symlink_metadata(&aside).is_err();
                rm_tree(&aside)?;
                if !gone {
                    say(&format!(
                        "CT {}: the old private directory {} was removed (--remove-old)",
                        j.ctid,
                        aside.display()
                    ));
                }
                Ok(gone)
            }
        }
    }

    fn undo(&mut self, s: &Step, _begun: &[Step]) -> Result<()> {
        let j = self.job.clone();
        match s {
            Step::Stop => {
                if j.was == Was::Mounted {
                    self.vzctl("mount", &[], Kind::StartTarget)
                } else {
                    self.vzctl("start", &[], Kind::StartTarget)
                }
            }
            Step::Mkfs | Step::Verify => Ok(()),
            Step::Mmp => self.run_cmd(
                &[
                    "tune2fs".into(),
                    "-O".into(),
                    "^mmp".into(),
                    p(&j.device_node),
                ],
                Kind::DeviceCheck,
            ),
            Step::CreateTmp => {
                // what vzctl create made: the config (it did not exist
                // before: checked), the temporary area, VE_ROOT if new
                match std::fs::remove_file(&j.conf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(Kind::System, "cannot remove", &j.conf, e)),
                }
                rm_tree(j.tmp_parent.as_deref().expect("tmp"))?;
                if let (Some(r), false) = (&j.root, j.root_existed) {
                    if hostops::mounted_on(r)?.is_none() {
                        hostops::rmdir_if_empty(r)?;
                    }
                }
                Ok(())
            }
            Step::RenameOld => {
                let aside = j.aside.clone().expect("aside");
                if std::fs::symlink_metadata(&aside).is_err() {
                    return Ok(()); // renamed back already
                }
                match hostops::path_state(&j.private) {
                    PathState::Absent => {}
                    PathState::Empty => std::fs::remove_dir(&j.private)
                        .map_err(|e| Error::io(Kind::System, "cannot remove", &j.private, e))?,
                    _ => {
                        return Err(Error::check(
                            Kind::System,
                            format!("rename {} back", aside.display()),
                            format!("{} exists and is not empty", j.private.display()),
                        ))
                    }
                }
                rename(&aside, &j.private)
            }
            Step::Mount => {
                self.umount()?;
                // the mount made VE_PRIVATE (create: unless it existed empty;
                // convert: rename-old's undo puts the old one back)
                let made = match j.mode {
                    Mode::Create => !j.private_existed,
                    Mode::Convert => true,
                    _ => false,
                };
                if made {
                    hostops::rmdir_if_empty(&j.private)?;
                }
                Ok(())
            }
            Step::Copy => {
                let to = dst(&j);
                if j.mode == Mode::ToShared {
                    rm_tree(&to)
                } else {
                    if hostops::mounted_on(&to)?.is_none() {
                        // the device is not mounted (the mount was never
                        // made or is undone): nothing copied is reachable
                        return Ok(());
                    }
                    hostops::wipe_dir(&to).map(|_| ())
                }
            }
            Step::Umount => {
                if j.mode == Mode::ToShared {
                    self.mount()
                } else {
                    Ok(())
                }
            }
            Step::Swap => {
                let aside = j.aside.clone().expect("aside");
                if std::fs::symlink_metadata(&aside).is_ok() {
                    // not swapped (or already undone)
                    if std::fs::symlink_metadata(&j.private).is_err() {
                        std::fs::create_dir(&j.private)
                            .map_err(|e| Error::io(Kind::System, "cannot create", &j.private, e))?;
                    }
                    return Ok(());
                }
                rename(&j.private, &aside)?;
                std::fs::create_dir(&j.private)
                    .map_err(|e| Error::io(Kind::System, "cannot create", &j.private, e))
            }
            Step::Config => match (&j.mode, &j.conf_before) {
                (Mode::ToShared, Some(bytes)) => hostops::write_atomic(&j.conf, bytes, 0o644),
                _ => {
                    let c = &j.conf;
                    for k in ["VE_DEVICE", "VE_DEVICE_FSTYPE"] {
                        config::remove_key(c, k).map_err(|e| {
                            hostops::cfg_err(Kind::ApplyConfig, format!("remove {k}"), e)
                        })?;
                    }
                    if j.mode == Mode::Create {
                        if let Some(t) = &j.tmp_private {
                            cfg_edit(
                                config::set_key(c, "VE_PRIVATE", &t.display().to_string()),
                                "set VE_PRIVATE",
                            )?;
                        }
                    }
                    Ok(())
                }
            },
            Step::Start | Step::MountCt | Step::RemoveTmp | Step::RemoveOld => Ok(()),
        }
    }
}
