//! vzfs: the mount library shared by `vzfs-hook`, `vzfs-migrate` and `vzfs-create`.
//!
//! It owns everything that touches a container's own filesystem: reading vzctl's
//! configuration (never as shell), resolving and probing `VE_DEVICE`, parsing
//! `/proc/self/mountinfo`, the per-container lock, and the premount/postumount
//! operations. All mount(2)/umount2(2)/flock(2) calls go through [`sys::Sys`].

pub mod config;
