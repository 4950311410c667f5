//! vzfs-migrate: filesystem-aware, vzmigrate-compatible migration of OpenVZ
//! containers. `main.rs` only parses arguments and calls [`run`].
//!
//! Modules: [`cli`] (options), [`error`] (errors, exit codes), [`plan`]
//! (scenarios and steps), [`engine`] (running a plan with its journal,
//! failpoints, undo and `--recover`), [`ops`] (what each step does on the
//! two nodes), [`helper`] (the target side, run over ssh), [`hostops`]
//! (node-local operations through the vzfs library), [`transport`] (ssh,
//! rsync), [`vzctl`], [`lock`], [`journal`], [`failpoint`], [`signals`].

pub mod cli;
pub mod error;
pub mod failpoint;
pub mod hostops;
pub mod journal;
pub mod lock;
pub mod plan;
pub mod signals;
pub mod transport;

pub use error::{Error, Result};
