//! Messages for admins: one line per action on stderr (vzctl shows the hook's
//! stderr to the admin) and the same line in syslog (ident `vzfs-hook`,
//! facility daemon). Verbosity: 0 = errors and warnings only, 1 = one line
//! per action (default), 2 = debug details. A missing syslog socket is not an
//! error: the lab and minimal hosts have none.
//!
//! The binaries call [`init`] first thing, before anything can fail, so even
//! an error in reading the config reaches syslog under the right ident; the
//! verbosity read from the config is applied afterwards with
//! [`set_verbosity`]. Every line is passed through [`crate::text::escape`]:
//! one message is one line, whatever a process name or a path holds.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct Logger {
    ident: String,
    verbosity: AtomicU8,
    use_syslog: bool,
    /// Connected at the first message, so a quiet run never touches syslog.
    syslog: OnceLock<Option<Mutex<Syslog>>>,
}

impl Logger {
    fn syslog(&self) -> Option<&Mutex<Syslog>> {
        if !self.use_syslog {
            return None;
        }
        self.syslog
            .get_or_init(|| {
                // Linux's syslog socket only (the crate's `unix()` also tries
                // BSD and macOS paths: two more sockets on every failed try).
                syslog::unix_custom(
                    syslog::Formatter3164 {
                        facility: syslog::Facility::LOG_DAEMON,
                        hostname: None,
                        process: self.ident.clone(),
                        pid: std::process::id(),
                    },
                    "/dev/log",
                )
                .ok()
                .map(Mutex::new)
            })
            .as_ref()
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up the process-wide logger once. `verbosity`: 0 quiet, 1 normal, 2 debug.
/// Later calls are ignored (the first caller wins).
pub fn init(ident: &str, verbosity: u8, use_syslog: bool) {
    let _ = LOGGER.set(Logger {
        ident: ident.to_string(),
        verbosity: AtomicU8::new(verbosity),
        use_syslog,
        syslog: OnceLock::new(),
    });
}

/// Changes the verbosity of the logger set up by [`init`] (0, 1 or 2).
pub fn set_verbosity(verbosity: u8) {
    logger().verbosity.store(verbosity, Ordering::Relaxed);
}

/// Changes nothing if already initialised; used by library callers that
/// never called [`init`] (tests): messages then go to stderr at level 1.
fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        ident: "vzfs".to_string(),
        verbosity: AtomicU8::new(1),
        use_syslog: false,
        syslog: OnceLock::new(),
    })
}

pub fn enabled(level: Level) -> bool {
    let v = logger().verbosity.load(Ordering::Relaxed);
    match level {
        Level::Error | Level::Warn => true,
        Level::Info => v >= 1,
        Level::Debug => v >= 2,
    }
}

pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let l = logger();
    let msg = &crate::text::escape(msg);
    let tag = match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info | Level::Debug => "",
    };
    // One write(2) per line: stderr is unbuffered, and a line written in
    // pieces can interleave with another process's output.
    let line = format!("{}: {}{}\n", l.ident, tag, msg);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(s) = l.syslog() {
        if let Ok(mut s) = s.lock() {
            let _ = match level {
                Level::Error => s.err(msg),
                Level::Warn => s.warning(msg),
                Level::Info => s.info(msg),
                Level::Debug => s.debug(msg),
            };
        }
    }
}

pub fn error(msg: &str) {
    log(Level::Error, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn info(msg: &str) {
    log(Level::Info, msg)
}
pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
