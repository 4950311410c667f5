//! The legacy lab profile: lab hosts as OpenVZ 6 nodes (CentOS 6 on a
//! 2.6.32 kernel), as far as one current machine can pretend.
//!
//! * Every process of a host runs under `oldkernel` (built here from
//!   `shared/tools/oldkernel.c`): system calls newer than 2.6.32 fail with
//!   `ENOSYS`, uname says 2.6. [`crate::Host::command`] prefixes it, and
//!   everything sshd starts inherits it.
//! * The CentOS 6 toolset (`shared/legacy-c6`: OpenSSH 5.3p1, rsync 3.0.6,
//!   e2fsprogs 1.41.12, util-linux-ng 2.17.2, static builds) is bind-mounted
//!   at its compiled-in prefix `/opt/legacy-c6` in each host and comes first
//!   in PATH, also in sshd's sessions (`~/.ssh/environment`).
//! * sshd is the 5.3p1 one, with RSA keys (no ed25519 there), no privilege
//!   separation directory (the toolset is read-only); ext4 disks are made by
//!   mke2fs 1.41.12 (so they have no feature that 2.6.32 cannot mount).
//!
//! What this is not: a real CentOS 6 machine. Flags 2.6.32 silently ignores
//! (`O_PATH`, `O_TMPFILE`) still work, and `/proc`/`/sys` are this kernel's.

use crate::error::{LabError, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the toolset lives inside a legacy host (its compiled-in prefix).
pub const PREFIX: &str = "/opt/legacy-c6";

/// PATH inside a legacy host: the CentOS 6 tools first.
pub const HOST_PATH: &str = "/opt/legacy-c6/sbin:/opt/legacy-c6/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `shared/` directory beside the repository (`$VZFS_SHARED_DIR`
/// overrides): it holds `tools/oldkernel.c` and `legacy-c6/`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("VZFS_SHARED_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// The toolset and the `oldkernel` wrapper of one lab.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// The `oldkernel` binary (built into the lab's directory).
    pub oldkernel: PathBuf,
    /// The toolset on the machine (`shared/legacy-c6`).
    pub toolset: PathBuf,
}

impl Legacy {
    /// Builds `oldkernel` into `dir` and checks the toolset is there.
    pub fn prepare(dir: &Path) -> Result<Legacy> {
        let shared = shared_dir();
        let src = shared.join("tools/oldkernel.c");
        let toolset = shared.join("legacy-c6");
        for (p, what) in [
            (&src, "the 2.6.32 system-call wrapper's source"),
            (&toolset, "the CentOS 6 toolset"),
        ] {
            if !p.exists() {
                return Err(LabError::Preflight {
                    reason: format!(
                        "legacy lab profile: {what} {} is missing (set VZFS_SHARED_DIR to the shared/ directory)",
                        p.display()
                    ),
                });
            }
        }
        let oldkernel = build_oldkernel(&src, dir)?;
        Ok(Legacy {
            oldkernel,
            toolset: toolset
                .canonicalize()
                .map_err(|e| LabError::io("resolve", &toolset, e))?,
        })
    }

    /// A tool of the toolset as the machine reaches it (`sbin/mke2fs`, ...).
    pub fn tool(&self, rel: &str) -> PathBuf {
        self.toolset.join(rel)
    }
}

/// `cc -O2 -o DIR/oldkernel SRC`.
pub fn build_oldkernel(src: &Path, dir: &Path) -> Result<PathBuf> {
    let out = dir.join("oldkernel");
    let o = Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&out)
        .arg(src)
        .output()
        .map_err(|source| LabError::Spawn {
            place: "machine".into(),
            cmd: format!("cc -O2 -o {} {}", out.display(), src.display()),
            source,
        })?;
    if !o.status.success() {
        return Err(LabError::Command {
            place: "machine".into(),
            cmd: format!("cc -O2 -o {} {}", out.display(), src.display()),
            status: o.status.to_string(),
            stderr_tail: crate::cmd::tail(&String::from_utf8_lossy(&o.stderr), 800),
        });
    }
    Ok(out)
}

/// sshd_config for OpenSSH 5.3p1 (what it knows: no `-E`, no
/// `prohibit-password`, no `KbdInteractiveAuthentication`).
pub fn sshd_config(name: &str, ip: std::net::Ipv4Addr, host_dir: &Path, ssh_dir: &Path) -> String {
    format!(
        "# sshd (OpenSSH 5.3p1) of legacy lab host {name}\nPort 22\nListenAddress {ip}\n\
         HostKey {hd}/ssh_host_rsa_key\nPidFile {hd}/sshd.pid\nAuthorizedKeysFile {sd}/authorized_keys\n\
         PermitRootLogin without-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
         ChallengeResponseAuthentication no\nStrictModes no\nUseDNS no\nPrintMotd no\nX11Forwarding no\n\
         MaxStartups 100\nMaxSessions 100\nUsePrivilegeSeparation no\nPermitUserEnvironment yes\nLogLevel ERROR\n",
        hd = host_dir.display(),
        sd = ssh_dir.display()
    )
}
