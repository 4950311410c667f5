//! vzfs-lab: the ground every end-to-end test and the demo stand on.
//!
//! * [`cluster`]: Pacemaker + Corosync on the lab's hosts, the lab's fence
//!   agent (`fence-vzfslab`), for the tests of `ocf:vzfs:container`.
//! * [`lab`]: a lab of N hardware nodes ("hosts") on one machine, each in its
//!   own network, mount and UTS namespaces with its own sshd, `/etc/vz`, `/vz`
//!   and a private `/dev`; local disks and SAN LUNs (one image, one loop
//!   device per host, optional ext4 MMP); teardown that leaves nothing behind.
//! * [`vzctl`]: a test double of vzctl 4.x (binary `vzctl-double`, installed
//!   as `vzctl` on every host), following `docs/VZCTL-CONTRACT.md`.
//! * [`loopdev`]: attaching images to loop devices, and detaching a device
//!   only while it still backs the same image (shared with `vzfs-bench`).
//! * [`workload`]: the process that is a "running container".
//! * [`demo`]: the scenarios `make demo` shows: every migration scenario of
//!   vzfs-migrate in a two-node lab, each checking its result.
//! * [`mountinfo`]: the product's mountinfo parser (`vzfs::mountinfo`) and
//!   the lookups the lab and the double use.
//! * [`preflight`]: can this machine run a lab; the `VZFS_SKIP_ROOT_TESTS=1` opt-out.
//! * [`up`]: `vzfs-lab up`, a lab kept for exploring by hand (torn down on
//!   Enter or a signal).
//!
//! # Using the lab in a test
//! ```no_run
//! use vzfs_lab::{Lab, Fs};
//! let Some(lab) = Lab::builder()
//!     .hosts(&["a", "b"])
//!     .install_hook() // vzfs-hook as vps.premount/vps.postumount
//!     .start_for_test("my_test")
//! else {
//!     return;
//! };
//! let lun = lab.add_lun("lun1", &["a", "b"], Fs::Ext4Mmp).unwrap();
//! let a = lab.host("a");
//! a.run_ok(&["mount", lun.device("a").to_str().unwrap(), "/mnt"]).unwrap();
//! let out = a.ssh(lab.host("b"), &["blkid", "-o", "device"]).unwrap();
//! assert!(out.success(), "{out}");
//! lab.teardown().unwrap(); // or just drop it
//! ```

pub mod cluster;
pub mod cmd;
pub mod demo;
pub mod error;
pub mod lab;
pub mod legacy;
pub mod loopdev;
pub mod mountinfo;
pub mod preflight;
pub mod up;
pub mod vzctl;
pub mod workload;

pub use cmd::Output;
pub use error::{LabError, Result};
pub use lab::{Attachment, Disk, DiskSpec, Fs, HeldView, Host, Lab, LabBuilder, ResumeOnDrop};

/// An error and all its sources on one line (`a: b: c`), as binaries print them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
