//! vzfs: the mount library shared by `vzfs-hook`, `vzfs-migrate` and `vzfs-create`.
//!
//! It owns everything that touches a container's own filesystem: reading vzctl's
//! configuration (never as shell) in [`config`], resolving and probing
//! `VE_DEVICE` in [`device`], parsing mountinfo in [`mountinfo`], the
//! per-container lock in [`lock`], and the premount/postumount operations in
//! [`hook`]. [`install`] and [`chain`] install the hook beside an admin's own
//! action scripts and run those; [`manifest`] describes a tree before and after a copy; [`inspect`] lists an unmounted filesystem's root read-only; [`node`] holds the node-local facts and operations vzfs-migrate and vzfs-create share (device facts, path state, atomic writes); [`cli`] is `vzfs-hook`'s command line (also
//! read by `vzfs-docgen` for the man page and completions); [`ocf`] is the
//! Pacemaker resource agent `ocf:vzfs:container`. All mount(2)/umount2(2)/flock(2) calls go through [`sys::Sys`].

pub mod chain;
pub mod cli;
pub mod config;
pub mod device;
pub mod error;
pub mod fsck;
pub mod holders;
pub mod hook;
pub mod inspect;
pub mod install;
pub mod lock;
pub mod log;
pub mod manifest;
pub mod mountinfo;
pub mod node;
pub mod nodecache;
pub mod ocf;
pub mod paths;
pub mod platform;
pub mod sys;
pub mod text;
pub mod timefmt;

pub use error::{Error, Result};
