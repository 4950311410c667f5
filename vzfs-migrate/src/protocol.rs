//! The helper protocol between the two ends of a migration, on its own so
//! that neither end imports the other: [`crate::helper`] (the commands the
//! target answers, and the source's `Remote`) and [`crate::session`] (the
//! one JSON session over ssh that carries them). Both sides must run the
//! same [`VERSION`] and [`PROTO`].

use crate::error::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Version of this vzfs-migrate; the helper on the target must match.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Bumped whenever a helper command changes (2: `serve`, the session;
/// 3: quota and `--keep-dst` marker commands; 4: hook, holders and MMP facts;
/// 5: requests with an `id`, answered concurrently).
pub const PROTO: u32 = 5;

/// One request on a session: a helper command, or a run of the target's vzctl.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Helper {
        args: Vec<String>,
        input: Option<Vec<u8>>,
    },
    Vzctl {
        vzctl: Vec<String>,
    },
}

/// What a target-side vzctl run returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecResult {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The answer line to a request: `{"ok":true,"data":..}` or
/// `{"ok":false,"kind":..,"error":..}`.
pub fn answer(r: Result<Value>) -> Value {
    match r {
        Ok(data) => json!({"ok": true, "data": data}),
        Err(e) => json!({"ok": false, "kind": e.kind().name(), "error": e.chain()}),
    }
}

/// The `version` answer (also the session's greeting).
pub fn version_answer() -> Value {
    json!({"version": VERSION, "proto": PROTO})
}

/// What serves helper commands on the target: `(etc, args, input)` to the
/// command's answer (implemented by [`crate::helper`], called by
/// [`crate::session::serve`]).
/// Called from several threads at once (overlapping requests).
pub type Dispatch<'a> =
    &'a (dyn Fn(&vzfs::config::VzEtc, &[String], Option<Vec<u8>>) -> Result<Value> + Sync);
