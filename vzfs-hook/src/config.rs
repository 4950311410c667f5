//! vzctl configuration files: reading them exactly as vzctl 4.x does (never as
//! shell), merging the global `vz.conf` with the container's `<CTID>.conf`,
//! checking the values vzfs relies on, and editing them atomically while
//! keeping every other byte.
//!
//! This module owns the paths under the configuration root ([`VzEtc`],
//! `/etc/vz` by default), the CTID syntax ([`validate_ctid`]), the line parser
//! ([`parse`], [`read`]), the merged view ([`VzConfig`]) and the editing API
//! ([`set_key`], [`remove_key`]).
//!
//! # Syntax: what vzctl does, and what we do
//!
//! The rules below were read from vzctl 4.x: `parse_line()` and
//! `unescapestr()` in `src/lib/util.c`, `vps_parse_config()`,
//! `reread_vps_config()`, `conf_parse_str()` and `write_conf()` in
//! `src/lib/config.c`. Each file is read line by line (like `fgets()`), line
//! numbers start at 1.
//!
//! 1. **Backslashes first.** vzctl removes backslash escapes from the whole line
//!    before anything else: a `\` drops itself and keeps the next character
//!    literally (`\\` gives `\`, `\"` gives `"`, `\#` gives `#`), a lone `\`
//!    at the end of a line disappears. There are no line continuations. So
//!    `\#KEY=1` is a comment and `KEY="a\"b"` is `a"b` (rule 5). Same here.
//! 2. **Blank lines and comments.** Leading white space (C `isspace()`: space,
//!    `\t`, `\n`, `\v`, `\f`, `\r`) is skipped; an empty line or one whose
//!    first non-blank is `#` is skipped. Same here. A `#` anywhere else is
//!    *not* a comment.
//! 3. **Trailing white space** (again C `isspace()`, so the `\r` of a CRLF line
//!    too) is removed from the line. Same here.
//! 4. **Split at the first `=`.** The key is everything before it, *untrimmed*
//!    (vzctl looks `"KEY "` up verbatim, does not know it and ignores the line
//!    with a warning). A line without `=` is skipped by vzctl with
//!    "Warning: can't parse FILE:LINE ('=' not found)". vzfs skips the same
//!    lines (with a debug message naming file and line), so a container that
//!    vzctl starts is not stopped by a line vzctl ignores (`export FOO=bar`,
//!    a stray word). Except when the line was evidently meant for a key vzfs
//!    uses ([`VZFS_KEYS`]: `export VE_DEVICE=...`, `VE_DEVICE = ...`,
//!    `VE_DEVICE /dev/sdb`): silently dropping a line meant to set
//!    `VE_DEVICE` would start the container on the node's own disk, so that is
//!    a [`ConfigError::Syntax`] naming file and line and the fix.
//! 5. **Values.** If the first character after `=` is `"`, the value is
//!    everything after it up to the *last* `"` on the line; whatever follows
//!    that quote is dropped (`KEY="a" # note` gives `a`, `KEY="a"b"` gives
//!    `a"b`). Without a closing quote vzctl skips the line ("unmatched
//!    quotes"); vzfs skips it too, and refuses it for a key of [`VZFS_KEYS`].
//!    Any other value is taken verbatim up to the
//!    end of the line, including leading blanks and a `# comment`
//!    (`KEY= x # y` gives ` x # y`). vzctl gives single quotes no meaning.
//! 6. **Single quotes (our extension).** Admins who wrote the seed's shell
//!    hooks also write `KEY='value'`; a value whose first character is `'` is
//!    taken up to the last `'` on the line, like rule 5. A missing closing `'`
//!    is an error. Because vzctl itself would keep the quotes, the checked
//!    accessors refuse single-quoted values for the keys vzctl reads itself
//!    ([`VZCTL_PATH_KEYS`]): vzctl and vzfs would use different paths.
//! 7. **Duplicates.** For string keys (`VE_ROOT`, `VE_PRIVATE`, `LOCKDIR`,
//!    `DUMPDIR`, ...) vzctl's `conf_parse_str()` keeps the *first* assignment
//!    in a file and ignores later ones ("duplicate for KEY, ignored"); a shell
//!    `source` keeps the last. [`VzConfig::get`] returns the first, like vzctl;
//!    the checked accessors ([`VzConfig::literal`] and friends) refuse a key
//!    set twice in one file with *different* values, naming both lines.
//! 8. **Two files.** vzctl parses `vz.conf`, then `<CTID>.conf`, and a key set
//!    in the container file overrides the global one (`merge_vps_param()`).
//!    vzctl requires the container file (`reread_vps_config()`); so do we
//!    ([`ConfigError::NoCtConfig`]). A missing `vz.conf` is treated as empty.
//!    Every value remembers its file and line ([`Origin`]).
//! 9. **`$VEID`** (`subst_VEID()` in `util.c`), only for `VE_ROOT` and
//!    `VE_PRIVATE`: all trailing `/` are removed first, then the *first*
//!    `$VEID` is replaced by the CTID, or, if there is none, the first
//!    `${VEID}`; nothing else is expanded. [`vzctl_subst_veid`] does exactly
//!    that. A value that mentions `$VEID` more than once is refused by
//!    [`VzConfig::path_value`], because vzctl would leave the second one
//!    literally in the path. vzctl does not expand `$VEID` in `LOCKDIR` or
//!    `DUMPDIR`; we refuse it there. In vzfs' own keys (`VE_DEVICE`, ...)
//!    every `$VEID`/`${VEID}` is replaced ([`VzConfig::expanded`]), which is
//!    what the seed's `source` did.
//! 10. **Not mirrored:** vzctl reads with a buffer of the file's size, so a
//!     file made of one line without a final newline loses its last
//!     character; vzctl also stops at a NUL byte. vzfs reads the whole line;
//!     a line with a NUL byte is skipped, and refused for a key of
//!     [`VZFS_KEYS`].
//!
//! # Reading is bounded
//!
//! A config file is opened with `O_NONBLOCK` (a FIFO cannot hang the open),
//! checked with `fstat` to be a regular file (not a FIFO, a device such as
//! `/dev/zero`, a directory), and read up to [`MAX_CONFIG_BYTES`]; anything
//! else is an error naming the file ([`read_bounded`]). Values shown in
//! messages are cut ([`crate::text::value`]).
//!
//! # Nothing is ever evaluated as shell
//!
//! Values are strings, never commands. The checked accessors refuse, for any
//! key they are asked about (vzfs asks about [`VZFS_KEYS`]), a value that looks
//! like shell code: `$(`, a backtick, `${` other than `${VEID}`, `$` followed by
//! anything but `VEID`, `;`, `|`, `&`, `<`, `>` or a line break; and an
//! unquoted value with a blank in it (vzctl keeps the blank and any `# comment`
//! after it, a shell would not). The error names file, line and key and says
//! "vzfs never runs the config: write a literal value".
//!
//! # Editing
//!
//! [`set_key`] and [`remove_key`] edit like `vzctl set --save` does
//! (`vps_merge_conf()`/`write_conf()`): only the lines that assign the key
//! change; comments, blank lines, odd spacing, CRLF endings, single-quoted
//! values and unknown keys stay byte for byte. A changed key is rewritten in
//! place as `KEY="value"` (backslashes doubled so that vzctl reads the value
//! back unchanged), later duplicate assignments of that key are removed, a new
//! key is appended at the end, a missing final newline is added. The file is
//! replaced atomically: `<file>.tmp` is created exclusively in the same
//! directory (a stale one is removed once), written, fsynced, given the
//! original mode and owner, renamed over the file, and the directory is
//! fsynced. Like vzctl, a symlinked config file is resolved and its target is
//! replaced. Concurrent editors must be serialised by the caller (the
//! container lock).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The real configuration root of vzctl.
pub const DEFAULT_ROOT: &str = "/etc/vz";

/// The keys vzfs relies on; each goes through the shell-code check, and a
/// malformed line meant for one of them is an error, not a skipped line.
pub const VZFS_KEYS: &[&str] = &[
    "VE_PRIVATE",
    "VE_ROOT",
    "VE_DEVICE",
    "VE_DEVICE_FSTYPE",
    "VE_DEVICE_OPTIONS",
    "VE_DEVICE_FSCK",
    "VE_DUMP_DEVICE",
    "LOCKDIR",
    "DUMPDIR",
    "VZFS_VERBOSE",
];

/// The largest config file vzfs reads (vzctl's files are a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Keys vzfs relies on that vzctl reads itself: vzctl and vzfs must agree on
/// their value, so vzfs' single-quote extension is refused for them.
pub const VZCTL_PATH_KEYS: &[&str] = &["VE_PRIVATE", "VE_ROOT", "LOCKDIR", "DUMPDIR"];

/// Errors of this module. Every message says what is wrong, where (file and
/// line, or the file and the operation) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A system call on a config file failed.
    #[error("cannot {op} {}: {error}", path.display())]
    Io {
        op: String,
        path: PathBuf,
        error: io::Error,
    },

    /// A config path that is not a regular file (a FIFO, a device, ...).
    #[error("{}: {what}, not a regular file; a vzctl config must be a plain file: replace it (vzfs does not read it)", crate::text::path(path))]
    NotRegular { path: PathBuf, what: &'static str },

    /// A config file larger than [`MAX_CONFIG_BYTES`].
    #[error("{}: {size} bytes, more than the {max} bytes a config file may have; it is probably not a config file: check it", crate::text::path(path))]
    TooLarge { path: PathBuf, size: u64, max: u64 },

    /// The container's own config file does not exist.
    #[error(
        "no config for CT {ctid}: {} does not exist; check the container ID, or create the container with vzctl first",
        path.display()
    )]
    NoCtConfig { ctid: String, path: PathBuf },

    /// A CTID that is not a plain decimal number.
    #[error(
        "invalid container ID {ctid:?}: {reason}; a container ID is a decimal number such as 101"
    )]
    InvalidCtid { ctid: String, reason: &'static str },

    /// A line vzfs cannot read as `KEY=value`.
    #[error("{}:{line}: {problem}; {fix} (vzfs refuses lines that vzctl would skip)", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        problem: String,
        fix: String,
    },

    /// A line of a key vzfs relies on is not valid UTF-8.
    #[error("{}:{line}: the value of {key} is not valid UTF-8; rewrite it as plain text", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        key: String,
    },

    /// A value that looks like shell code.
    #[error(
        "{}:{line}: {key} looks like shell code ({found}); vzfs never runs the config: write a literal value",
        path.display()
    )]
    ShellCode {
        path: PathBuf,
        line: usize,
        key: String,
        found: &'static str,
    },

    /// A key set twice in one file with different values.
    #[error(
        "{}: {key} is set on line {first_line} ({}) and again on line {line} ({}); vzctl uses the first, a shell the last: keep only one",
        path.display(), crate::text::value(first), crate::text::value(second)
    )]
    ConflictingDuplicate {
        path: PathBuf,
        key: String,
        first_line: usize,
        line: usize,
        first: String,
        second: String,
    },

    /// A value that is syntactically fine but unusable for this key.
    #[error("{}:{line}: {key}={}: {problem}", path.display(), crate::text::value(value))]
    BadValue {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        /// What is wrong and what to do.
        problem: String,
    },

    /// `set_key`/`remove_key` was given a key that is not a plain name.
    #[error("cannot {op} {key:?} in {}: not a valid key name (use letters, digits and '_', not starting with a digit)", path.display())]
    InvalidKey {
        op: &'static str,
        path: PathBuf,
        key: String,
    },

    /// `set_key` was given a value the file format cannot hold.
    #[error("cannot set {key} in {}: the value contains {what}, which a vzctl config value cannot hold; nothing was written", path.display())]
    UnwritableValue {
        path: PathBuf,
        key: String,
        what: &'static str,
    },

    /// One step of [`set_key`]/[`remove_key`] failed. `step` says which and
    /// whether the file is still unchanged.
    #[error("cannot {op} {}: {step}: {error}", path.display())]
    Edit {
        op: String,
        path: PathBuf,
        step: String,
        error: io::Error,
    },

    /// The temporary file keeps reappearing: someone else edits the file.
    #[error(
        "cannot {op} {}: {} reappeared after a stale copy was removed; another program is editing this file, retry when it is done",
        path.display(),
        tmp.display()
    )]
    TmpBusy {
        op: String,
        path: PathBuf,
        tmp: PathBuf,
    },
}

fn io_err(op: impl Into<String>, path: &Path, error: io::Error) -> ConfigError {
    ConfigError::Io {
        op: op.into(),
        path: path.to_path_buf(),
        error,
    }
}

// ---------------------------------------------------------------------------
// Paths and CTIDs

/// The configuration root (`/etc/vz` on a real host, a directory of its own in
/// tests) and the paths vzctl derives from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VzEtc {
    pub root: PathBuf,
}

impl Default for VzEtc {
    fn default() -> Self {
        VzEtc {
            root: PathBuf::from(DEFAULT_ROOT),
        }
    }
}

impl VzEtc {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        VzEtc { root: root.into() }
    }

    /// `ROOT/vz.conf`, the global file.
    pub fn global_conf(&self) -> PathBuf {
        self.root.join("vz.conf")
    }

    /// `ROOT/conf/<ctid>.conf`. Validate the CTID first ([`validate_ctid`]).
    pub fn ct_conf(&self, ctid: &str) -> PathBuf {
        self.scripts_dir().join(format!("{ctid}.conf"))
    }

    /// `ROOT/conf`: container configs and action scripts (`vps.premount`, ...).
    pub fn scripts_dir(&self) -> PathBuf {
        self.root.join("conf")
    }
}

/// A CTID becomes part of paths: accept only a decimal number vzctl accepts
/// (1 to 2147483647, vzctl's `int` envid), without sign or leading zeros.
pub fn validate_ctid(ctid: &str) -> Result<(), ConfigError> {
    let bad = |reason| {
        Err(ConfigError::InvalidCtid {
            ctid: ctid.to_string(),
            reason,
        })
    };
    if ctid.is_empty() {
        return bad("it is empty");
    }
    if !ctid.bytes().all(|b| b.is_ascii_digit()) {
        return bad("it may contain only the digits 0-9");
    }
    if ctid.starts_with('0') {
        if ctid == "0" {
            return bad("0 is the host itself, not a container");
        }
        return bad("it has a leading zero, which vzctl would not use in file names");
    }
    match ctid.parse::<u64>() {
        Ok(n) if n <= i32::MAX as u64 => Ok(()),
        _ => bad("it is larger than 2147483647"),
    }
}

// ---------------------------------------------------------------------------
// Parsing

/// Where a value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// How a value was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// `KEY=value`
    None,
    /// `KEY="value"` (vzctl's own style)
    Double,
    /// `KEY='value'` (our extension; vzctl would keep the quotes)
    Single,
}

/// One assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// After vzctl's unescaping and unquoting, before `$VEID` expansion.
    pub raw: String,
    pub origin: Origin,
    pub quoting: Quoting,
}

/// The assignments of one file, in file order (duplicates included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub entries: Vec<(String, Value)>,
}

impl ConfigFile {
    /// The value vzctl uses: the first assignment of `key` in this file.
    pub fn first(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// C `isspace()` in the "C" locale.
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// vzctl's `unescapestr()`: every backslash that is not itself escaped is
/// removed and the next character kept. Borrows when there is no backslash.
fn unescape(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\\') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut escaped = false;
    for c in line.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    std::borrow::Cow::Owned(out)
}

fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What one line holds.
enum Line<'a> {
    Skip,
    /// A line vzctl skips (and so does vzfs): why, for the debug message.
    Ignored(String),
    Assign {
        key: &'a str,
        value: &'a str,
        quoting: Quoting,
    },
}

/// The problem with a malformed line: (what is wrong, what to do).
type LineProblem = (String, String);

/// The key of [`VZFS_KEYS`] a malformed line was evidently meant to set:
/// its first word, without `export` and blanks.
fn meant_for_own_key(s: &str) -> Option<&'static str> {
    let s = s.trim_start_matches(c_space);
    let s = s
        .strip_prefix("export")
        .filter(|r| r.starts_with(c_space))
        .map(|r| r.trim_start_matches(c_space))
        .unwrap_or(s);
    let word_end = s.find(|c: char| c == '=' || c_space(c)).unwrap_or(s.len());
    let word = &s[..word_end];
    VZFS_KEYS.iter().copied().find(|k| *k == word)
}

/// Parse one line (without its `\n`) that vzctl's `unescapestr()` already
/// processed. Lines vzctl skips are [`Line::Ignored`], unless they were
/// meant for a key of [`VZFS_KEYS`] (an error).
fn parse_unescaped(s: &str) -> Result<Line<'_>, LineProblem> {
    let s = s.trim_start_matches(c_space);
    if s.is_empty() || s.starts_with('#') {
        return Ok(Line::Skip);
    }
    let s = s.trim_end_matches(c_space);
    let own = meant_for_own_key(s);
    let skip_or_refuse = |problem: String, fix: String| match own {
        Some(_) => Err((problem, fix)),
        None => Ok(Line::Ignored(problem)),
    };
    if s.contains('\0') {
        return skip_or_refuse(
            "the line contains a NUL byte".into(),
            "remove it (the file is probably damaged)".into(),
        );
    }
    let Some(eq) = s.find('=') else {
        return skip_or_refuse(
            format!("no '=' in {}", crate::text::value(s)),
            "write KEY=\"value\", or start the line with '#' to make it a comment".into(),
        );
    };
    let key = &s[..eq];
    if !valid_key(key) {
        let trimmed = key.trim_matches(c_space);
        let fix = if let Some(rest) = trimmed
            .strip_prefix("export")
            .filter(|r| r.starts_with(c_space))
        {
            format!(
                "drop 'export' and write {}=\"...\" (vzctl ignores this line)",
                rest.trim_start_matches(c_space)
            )
        } else if trimmed != key && valid_key(trimmed) {
            format!("write {trimmed}=\"...\" without blanks around '=' (vzctl ignores this line)")
        } else {
            "a key is letters, digits and '_', not starting with a digit".into()
        };
        return skip_or_refuse(format!("invalid key name {}", crate::text::value(key)), fix);
    }
    let rest = &s[eq + 1..];
    for (q, quoting) in [('"', Quoting::Double), ('\'', Quoting::Single)] {
        if let Some(inner) = rest.strip_prefix(q) {
            return match inner.rfind(q) {
                Some(end) => Ok(Line::Assign {
                    key,
                    value: &inner[..end],
                    quoting,
                }),
                None => skip_or_refuse(
                    format!("unterminated quote: {key} starts with {q} but has no closing {q}"),
                    format!(
                        "add the closing {q} at the end of the value (vzctl ignores this line)"
                    ),
                ),
            };
        }
    }
    Ok(Line::Assign {
        key,
        value: rest,
        quoting: Quoting::None,
    })
}

/// Parse the text of a config file with vzctl's rules (see the module docs).
/// `path` is only used to name the file in values and errors.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let mut entries = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let unescaped = unescape(line);
        match parse_unescaped(&unescaped) {
            Ok(Line::Skip) => {}
            Ok(Line::Ignored(why)) => crate::log::debug(&format!(
                "{}:{}: line skipped, as vzctl skips it: {why}",
                crate::text::path(path),
                i + 1
            )),
            Ok(Line::Assign {
                key,
                value,
                quoting,
            }) => entries.push((
                key.to_string(),
                Value {
                    raw: value.to_string(),
                    origin: Origin {
                        path: path.to_path_buf(),
                        line: i + 1,
                    },
                    quoting,
                },
            )),
            Err((problem, fix)) => {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    line: i + 1,
                    problem,
                    fix,
                })
            }
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        entries,
    })
}

/// Read and parse a config file. I/O errors name the path. A file that is
/// not UTF-8 is accepted as long as the lines of [`VZFS_KEYS`] are (a Latin-1
/// `DESCRIPTION` must not stop a container); other lines are read lossily.
pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
    let bytes = read_bounded(path)?;
    parse_bytes(path, &bytes)
}

/// Reads a config file safely: opened with `O_NONBLOCK` (a FIFO does not
/// hang the open), `fstat` says it is a regular file, at most
/// [`MAX_CONFIG_BYTES`] are read. A missing file is an
/// [`io::ErrorKind::NotFound`] [`ConfigError::Io`].
pub fn read_bounded(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io_err("open", path, e))?;
    let meta = file.metadata().map_err(|e| io_err("stat", path, e))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(ConfigError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    let too_large = |size| ConfigError::TooLarge {
        path: path.to_path_buf(),
        size,
        max: MAX_CONFIG_BYTES,
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("read", path, e))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Whether a [`ConfigError`] says the file does not exist.
fn is_not_found(e: &ConfigError) -> bool {
    matches!(e, ConfigError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound)
}

fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<ConfigFile, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(path, text),
        Err(_) => {
            let bad_lines: Vec<usize> = bytes
                .split(|&b| b == b'\n')
                .enumerate()
                .filter(|(_, l)| std::str::from_utf8(l).is_err())
                .map(|(i, _)| i + 1)
                .collect();
            let file = parse(path, &String::from_utf8_lossy(bytes))?;
            if let Some((key, v)) = file.entries.iter().find(|(k, v)| {
                VZFS_KEYS.contains(&k.as_str()) && bad_lines.contains(&v.origin.line)
            }) {
                return Err(ConfigError::NotUtf8 {
                    path: path.to_path_buf(),
                    line: v.origin.line,
                    key: key.clone(),
                });
            }
            Ok(file)
        }
    }
}

/// The key a line assigns, if it is a well-formed assignment line (its value
/// need not be well-formed). Used by the editor.
fn line_key(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let unescaped = unescape(&text);
    let s = unescaped.trim_start_matches(c_space);
    if s.starts_with('#') {
        return None;
    }
    let key = &s[..s.find('=')?];
    valid_key(key).then(|| key.to_string())
}

// ---------------------------------------------------------------------------
// Checks and $VEID

/// The first thing in `value` that looks like shell code, described for the
/// error message.
fn shell_code(value: &str) -> Option<&'static str> {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'`' => return Some("a backtick"),
            b';' => return Some("';'"),
            b'|' => return Some("'|'"),
            b'&' => return Some("'&'"),
            b'<' => return Some("'<'"),
            b'>' => return Some("'>'"),
            b'\n' | b'\r' => return Some("a line break"),
            b'$' => {
                let rest = &b[i + 1..];
                if rest.starts_with(b"(") {
                    return Some("'$('");
                }
                if rest.starts_with(b"{VEID}") {
                    i += 1 + 6;
                    continue;
                }
                if rest.starts_with(b"{") {
                    return Some("'${' other than ${VEID}");
                }
                if rest.starts_with(b"VEID")
                    && !rest
                        .get(4)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1 + 4;
                    continue;
                }
                return Some("'$' followed by something other than VEID");
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A [`ConfigError::BadValue`] for `key` = `value`: what is wrong, and the fix.
fn bad_value(key: &str, value: &Value, problem: String, fix: String) -> ConfigError {
    ConfigError::BadValue {
        path: value.origin.path.clone(),
        line: value.origin.line,
        key: key.to_string(),
        value: value.raw.clone(),
        problem: format!("{problem}; {fix}"),
    }
}

/// The shell-code check applied to one value of `key` (see the module docs).
pub fn check_literal(key: &str, value: &Value) -> Result<(), ConfigError> {
    if let Some(found) = shell_code(&value.raw) {
        return Err(ConfigError::ShellCode {
            path: value.origin.path.clone(),
            line: value.origin.line,
            key: key.to_string(),
            found,
        });
    }
    let bad = |problem: String, fix: String| bad_value(key, value, problem, fix);
    if value.quoting == Quoting::None && value.raw.contains([' ', '\t']) {
        return Err(bad(
            "an unquoted value with a blank: vzctl takes all of it (a '# comment' too), a shell would not".into(),
            format!("write {key}=\"...\" in double quotes, without a comment on the same line"),
        ));
    }
    if value.quoting == Quoting::Single && VZCTL_PATH_KEYS.contains(&key) {
        return Err(bad(
            "vzctl does not remove single quotes, so it would use the quotes as part of the path"
                .into(),
            format!("write {key}=\"{}\" in double quotes", value.raw),
        ));
    }
    Ok(())
}

fn count_veid_refs(s: &str) -> usize {
    s.matches("$VEID").count() + s.matches("${VEID}").count()
}

/// vzctl's `subst_VEID()`, exactly: remove all trailing `/`, then replace the
/// first `$VEID`, or if there is none the first `${VEID}`, by `ctid`.
pub fn vzctl_subst_veid(value: &str, ctid: &str) -> String {
    let s = value.trim_end_matches('/');
    let (pos, len) = match s.find("$VEID") {
        Some(p) => (p, "$VEID".len()),
        None => match s.find("${VEID}") {
            Some(p) => (p, "${VEID}".len()),
            None => return s.to_string(),
        },
    };
    format!("{}{}{}", &s[..pos], ctid, &s[pos + len..])
}

/// Shell-style expansion for vzfs' own keys: every `$VEID` and `${VEID}`.
fn subst_veid_all(value: &str, ctid: &str) -> String {
    value.replace("${VEID}", ctid).replace("$VEID", ctid)
}

// ---------------------------------------------------------------------------
// The merged view

#[derive(Debug, Clone)]
struct Merged {
    value: Value,
    /// A later assignment in the same file with a different value.
    conflict: Option<Value>,
}

/// The configuration of one container: `vz.conf` merged with `<CTID>.conf`.
#[derive(Debug, Clone)]
pub struct VzConfig {
    ctid: String,
    global: ConfigFile,
    ct: ConfigFile,
    merged: HashMap<String, Merged>,
}

fn merge_file(into: &mut HashMap<String, Merged>, file: &ConfigFile) {
    let mut this_file: HashMap<&str, Merged> = HashMap::new();
    for (key, value) in &file.entries {
        match this_file.get_mut(key.as_str()) {
            None => {
                this_file.insert(
                    key,
                    Merged {
                        value: value.clone(),
                        conflict: None,
                    },
                );
            }
            Some(m) => {
                if m.conflict.is_none() && m.value.raw != value.raw {
                    m.conflict = Some(value.clone());
                }
            }
        }
    }
    for (key, m) in this_file {
        into.insert(key.to_string(), m);
    }
}

impl VzConfig {
    /// Load `etc.global_conf()` then `etc.ct_conf(ctid)`.
    pub fn load(etc: &VzEtc, ctid: &str) -> Result<VzConfig, ConfigError> {
        validate_ctid(ctid)?;
        VzConfig::load_files(&etc.global_conf(), &etc.ct_conf(ctid), ctid)
    }

    /// Load the global file (missing: empty) then the container's file
    /// (missing: [`ConfigError::NoCtConfig`]), e.g. `VE_CONFFILE` from vzctl.
    pub fn load_files(global: &Path, ct_file: &Path, ctid: &str) -> Result<VzConfig, ConfigError> {
        validate_ctid(ctid)?;
        let global = match read_bounded(global) {
            Ok(bytes) => parse_bytes(global, &bytes)?,
            Err(e) if is_not_found(&e) => ConfigFile {
                path: global.to_path_buf(),
                entries: Vec::new(),
            },
            Err(e) => return Err(e),
        };
        let ct = match read_bounded(ct_file) {
            Ok(bytes) => parse_bytes(ct_file, &bytes)?,
            Err(e) if is_not_found(&e) => {
                return Err(ConfigError::NoCtConfig {
                    ctid: ctid.to_string(),
                    path: ct_file.to_path_buf(),
                })
            }
            Err(e) => return Err(e),
        };
        Ok(VzConfig::from_files(global, ct, ctid))
    }

    /// Merge two parsed files (the container file overrides the global one).
    pub fn from_files(global: ConfigFile, ct: ConfigFile, ctid: &str) -> VzConfig {
        let mut merged = HashMap::new();
        merge_file(&mut merged, &global);
        merge_file(&mut merged, &ct);
        VzConfig {
            ctid: ctid.to_string(),
            global,
            ct,
            merged,
        }
    }

    pub fn ctid(&self) -> &str {
        &self.ctid
    }

    /// The parsed global file (empty if it did not exist).
    pub fn global(&self) -> &ConfigFile {
        &self.global
    }

    /// The parsed container file.
    pub fn ct(&self) -> &ConfigFile {
        &self.ct
    }

    /// The value vzctl would use (container file over global, first
    /// assignment within a file), unchecked.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.merged.get(key).map(|m| &m.value)
    }

    /// [`get`](Self::get) with the shell-code check, the duplicate check and
    /// the quoting checks. Use it for every value vzfs acts on.
    pub fn literal(&self, key: &str) -> Result<Option<&Value>, ConfigError> {
        let Some(m) = self.merged.get(key) else {
            return Ok(None);
        };
        if let Some(second) = &m.conflict {
            return Err(ConfigError::ConflictingDuplicate {
                path: m.value.origin.path.clone(),
                key: key.to_string(),
                first_line: m.value.origin.line,
                line: second.origin.line,
                first: m.value.raw.clone(),
                second: second.raw.clone(),
            });
        }
        check_literal(key, &m.value)?;
        Ok(Some(&m.value))
    }

    /// The checked value with `$VEID` expanded as it applies to `key`:
    /// vzctl's [`vzctl_subst_veid`] for `VE_ROOT`/`VE_PRIVATE` (refusing more
    /// than one reference), none for `LOCKDIR`/`DUMPDIR` (refused, vzctl does
    /// not expand there), every reference for any other key.
    pub fn expanded(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.literal(key)? else {
            return Ok(None);
        };
        let refs = count_veid_refs(&v.raw);
        let bad = |problem: String, fix: String| bad_value(key, v, problem, fix);
        let out = match key {
            "VE_ROOT" | "VE_PRIVATE" => {
                if refs > 1 {
                    return Err(bad(
                        format!(
                            "$VEID appears {refs} times, but vzctl replaces only the first and would use {:?}",
                            vzctl_subst_veid(&v.raw, &self.ctid)
                        ),
                        "mention $VEID once, or write the path literally".into(),
                    ));
                }
                vzctl_subst_veid(&v.raw, &self.ctid)
            }
            _ if VZCTL_PATH_KEYS.contains(&key) => {
                if refs > 0 {
                    return Err(bad(
                        "vzctl does not expand $VEID in this key, it would use the text literally"
                            .into(),
                        "write the path literally".into(),
                    ));
                }
                v.raw.clone()
            }
            _ => subst_veid_all(&v.raw, &self.ctid),
        };
        Ok(Some(out))
    }

    /// A path-valued key (`VE_ROOT`, `VE_PRIVATE`, `LOCKDIR`, ...): the
    /// [`expanded`](Self::expanded) value without trailing `/`; it must be
    /// absolute.
    pub fn path_value(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let Some(s) = self.expanded(key)? else {
            return Ok(None);
        };
        let s = s.trim_end_matches('/');
        if !s.starts_with('/') {
            let v = self.get(key).expect("expanded() found the key");
            return Err(ConfigError::BadValue {
                path: v.origin.path.clone(),
                line: v.origin.line,
                key: key.to_string(),
                value: v.raw.clone(),
                problem: format!(
                    "{}; write an absolute path starting with '/'",
                    if s.is_empty() {
                        "the path is empty (or only '/')".to_string()
                    } else {
                        format!("{s:?} is not an absolute path")
                    }
                ),
            });
        }
        Ok(Some(PathBuf::from(s)))
    }

    /// Run [`literal`](Self::literal) on every key of [`VZFS_KEYS`] that is
    /// set, so a hostile or ambiguous config is refused before anything runs.
    pub fn check_vzfs_keys(&self) -> Result<(), ConfigError> {
        for key in VZFS_KEYS {
            self.literal(key)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Editing

fn check_edit_key(op: &'static str, path: &Path, key: &str) -> Result<(), ConfigError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(ConfigError::InvalidKey {
            op,
            path: path.to_path_buf(),
            key: key.to_string(),
        })
    }
}

/// Resolve a symlinked config file to the file to replace (vzctl's
/// `write_conf()` does the same with `canonicalize_file_name()`).
fn resolve_target(op: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    fs::canonicalize(path).map_err(|e| edit_err(op, path, "resolve the path failed".into(), e))
}

fn edit_err(op: &str, path: &Path, step: String, error: io::Error) -> ConfigError {
    ConfigError::Edit {
        op: op.to_string(),
        path: path.to_path_buf(),
        step,
        error,
    }
}

/// Split into (content without `\n`, terminator `"\n"` or `""`).
fn split_lines(bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(p) => {
                let (line, tail) = rest.split_at(p + 1);
                rest = tail;
                Some((&line[..p], &line[p..]))
            }
            None => {
                let line = rest;
                rest = &[];
                Some((line, &[][..]))
            }
        }
    })
}

/// The file's line ending style: CRLF if its first line ends so.
fn eol_of(bytes: &[u8]) -> &'static [u8] {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(p) if p > 0 && bytes[p - 1] == b'\r' => b"\r\n",
        _ => b"\n",
    }
}

fn ensure_final_newline(out: &mut Vec<u8>, eol: &[u8]) {
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(eol);
    }
}

fn edit_set(original: &[u8], key: &str, new_line: &[u8]) -> Vec<u8> {
    let eol = eol_of(original);
    let mut out = Vec::with_capacity(original.len() + new_line.len() + 2);
    let mut replaced = false;
    for (content, term) in split_lines(original) {
        if line_key(content).as_deref() == Some(key) {
            if !replaced {
                out.extend_from_slice(new_line);
                if content.ends_with(b"\r") && !term.is_empty() {
                    out.push(b'\r');
                }
                out.extend_from_slice(term);
                replaced = true;
            }
            continue;
        }
        out.extend_from_slice(content);
        out.extend_from_slice(term);
    }
    ensure_final_newline(&mut out, eol);
    if !replaced {
        out.extend_from_slice(new_line);
        out.extend_from_slice(eol);
    }
    out
}

fn edit_remove(original: &[u8], key: &str) -> (Vec<u8>, bool) {
    let eol = eol_of(original);
    let mut out = Vec::with_capacity(original.len());
    let mut removed = false;
    for (content, term) in split_lines(original) {
        if line_key(content).as_deref() == Some(key) {
            removed = true;
            continue;
        }
        out.extend_from_slice(content);
        out.extend_from_slice(term);
    }
    if !removed {
        return (original.to_vec(), false);
    }
    ensure_final_newline(&mut out, eol);
    (out, true)
}

/// Set `key` to `value` in the config file `path` (which must exist), vzctl
/// style (see the module docs). Does not write when the file already assigns
/// exactly this value once.
pub fn set_key(path: &Path, key: &str, value: &str) -> Result<(), ConfigError> {
    check_edit_key("set", path, key)?;
    let unwritable = |what| {
        Err(ConfigError::UnwritableValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            what,
        })
    };
    if value.contains('"') {
        return unwritable("a double quote");
    }
    if value.contains(['\n', '\r']) {
        return unwritable("a line break");
    }
    if value.contains('\0') {
        return unwritable("a NUL byte");
    }
    let op = format!("set {key} in");
    let target = resolve_target(&op, path)?;
    let original = read_bounded(&target)?;

    // Unchanged? (one assignment that already reads as `value`)
    let assigns: Vec<&[u8]> = split_lines(&original)
        .map(|(c, _)| c)
        .filter(|c| line_key(c).as_deref() == Some(key))
        .collect();
    if let [only] = assigns.as_slice() {
        if let Ok(text) = std::str::from_utf8(only) {
            if let Ok(Line::Assign {
                value: v, quoting, ..
            }) = parse_unescaped(&unescape(text))
            {
                if v == value && quoting != Quoting::Single {
                    return Ok(());
                }
            }
        }
    }

    let escaped = value.replace('\\', "\\\\");
    let new_line = format!("{key}=\"{escaped}\"");
    let edited = edit_set(&original, key, new_line.as_bytes());
    if edited == original {
        return Ok(());
    }
    write_atomic(&op, &target, &edited)
}

/// Remove every line that assigns `key` from the config file `path`. Returns
/// whether anything was removed (nothing is written otherwise).
pub fn remove_key(path: &Path, key: &str) -> Result<bool, ConfigError> {
    check_edit_key("remove", path, key)?;
    let op = format!("remove {key} from");
    let target = resolve_target(&op, path)?;
    let original = read_bounded(&target)?;
    let (edited, removed) = edit_remove(&original, key);
    if !removed {
        return Ok(false);
    }
    write_atomic(&op, &target, &edited)?;
    Ok(true)
}

/// Removes the temporary file unless the rename consumed it.
struct TmpFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn create_excl(tmp: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(tmp)
}

/// Replace `target` by `data`: `<target>.tmp` created exclusively, written,
/// fsynced, given `target`'s mode and owner, renamed, directory fsynced.
fn write_atomic(op: &str, target: &Path, data: &[u8]) -> Result<(), ConfigError> {
    let fail = |step: String, e: io::Error| edit_err(op, target, step, e);
    let meta = fs::metadata(target).map_err(|e| fail("stat failed".into(), e))?;
    let mode = meta.permissions().mode() & 0o7777;
    let mut tmp_name = OsString::from(target.as_os_str());
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let t = tmp.display();
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let file = match create_excl(&tmp, mode) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // A stale copy from an interrupted edit: remove it, once.
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(fail(
                        format!("removing the stale temporary file {t} failed, file unchanged"),
                        e,
                    ))
                }
            }
            match create_excl(&tmp, mode) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(ConfigError::TmpBusy {
                        op: op.to_string(),
                        path: target.to_path_buf(),
                        tmp,
                    })
                }
                Err(e) => return Err(fail(format!("creating {t} failed, file unchanged"), e)),
            }
        }
        Err(e) => return Err(fail(format!("creating {t} failed, file unchanged"), e)),
    };
    let mut guard = TmpFile {
        path: tmp.clone(),
        armed: true,
    };
    let mut file = file;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("chmod {mode:o} {t} failed, file unchanged"), e))?;
    let tmeta = file
        .metadata()
        .map_err(|e| fail(format!("stat {t} failed, file unchanged"), e))?;
    if tmeta.uid() != meta.uid() || tmeta.gid() != meta.gid() {
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
            fail(
                format!(
                    "chown {}:{} {t} failed, file unchanged",
                    meta.uid(),
                    meta.gid()
                ),
                e,
            )
        })?;
    }
    file.write_all(data)
        .map_err(|e| fail(format!("writing {t} failed, file unchanged"), e))?;
    file.sync_all()
        .map_err(|e| fail(format!("fsync {t} failed, file unchanged"), e))?;
    drop(file);
    fs::rename(&tmp, target)
        .map_err(|e| fail(format!("renaming {t} over it failed, file unchanged"), e))?;
    guard.armed = false;
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| {
        fail(
            format!(
                "fsync of its directory {} failed: the file was replaced but the change may not survive a crash",
                dir.display()
            ),
            e,
        )
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/etc/vz/conf/101.conf")
    }

    fn one(line: &str) -> (String, String, Quoting) {
        let f = parse(p(), line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!(f.entries.len(), 1, "{line:?}");
        let (k, v) = f.entries.into_iter().next().unwrap();
        (k, v.raw, v.quoting)
    }

    fn val(line: &str) -> String {
        one(line).1
    }

    fn syntax_err(text: &str) -> (usize, String) {
        match parse(p(), text) {
            Err(ConfigError::Syntax { line, .. }) => {
                let msg = parse(p(), text).unwrap_err().to_string();
                (line, msg)
            }
            other => panic!("{text:?}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn skips_blank_lines_and_comments() {
        let f = parse(p(), "\n   \n# c=1\n\t  # KEY=2\n\x0b\x0c\r\nA=1\n").unwrap();
        assert_eq!(f.entries.len(), 1);
        assert_eq!(f.entries[0].0, "A");
        assert_eq!(f.entries[0].1.origin.line, 6);
    }

    #[test]
    fn leading_blanks_before_the_key_are_skipped() {
        assert_eq!(
            one("   \tVE_ROOT=/x"),
            ("VE_ROOT".into(), "/x".into(), Quoting::None)
        );
    }

    #[test]
    fn double_quotes_take_everything_to_the_last_quote() {
        assert_eq!(val(r#"K="a b""#), "a b");
        assert_eq!(val(r#"K="a" # comment"#), "a");
        assert_eq!(val(r#"K="a" b "c" d"#), r#"a" b "c"#);
        assert_eq!(val(r#"K="""#), "");
        assert_eq!(one(r#"K="x""#).2, Quoting::Double);
    }

    #[test]
    fn unquoted_values_are_verbatim_except_trailing_blanks() {
        assert_eq!(val("K= a # not a comment  \t"), " a # not a comment");
        assert_eq!(val("K="), "");
        assert_eq!(val("K=a=b"), "a=b");
        // A quote that is not the first character is not special.
        assert_eq!(val(r#"K= "a""#), r#" "a""#);
        assert_eq!(val("K=it's"), "it's");
    }

    #[test]
    fn backslashes_are_removed_first() {
        assert_eq!(val(r"K=a\ b"), "a b");
        assert_eq!(val(r"K=a\\b"), r"a\b");
        assert_eq!(val(r#"K="a\"b""#), r#"a"b"#);
        assert_eq!(val(r"K=abc\"), "abc");
        assert_eq!(val(r#"K=\"x\""#), "x");
        // An escaped '#' at the start still makes a comment (vzctl unescapes
        // before looking for '#').
        assert!(parse(p(), r"\#K=1").unwrap().entries.is_empty());
    }

    #[test]
    fn crlf_lines() {
        let f = parse(p(), "A=\"1\"\r\nB=2\r\n# c\r\n").unwrap();
        assert_eq!(f.entries[0].1.raw, "1");
        assert_eq!(f.entries[1].1.raw, "2");
    }

    #[test]
    fn single_quotes_are_our_extension() {
        assert_eq!(one("K='a b'"), ("K".into(), "a b".into(), Quoting::Single));
        assert_eq!(val("K='a' # c"), "a");
        // vzctl skips an unterminated value; so do we, except for our keys.
        assert!(parse(p(), "A=1\nK='abc\n").unwrap().first("K").is_none());
        let (line, msg) = syntax_err("A=1\nVE_DEVICE='abc\n");
        assert_eq!(line, 2);
        assert!(msg.contains("unterminated quote"), "{msg}");
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        // Lines vzctl skips are skipped...
        let f = parse(
            p(),
            "A=1\n\nno equals here\nexport B=2\nC =3\n=x\n1A=x\nD=a\0b\n",
        )
        .unwrap();
        assert_eq!(f.entries.len(), 1, "{f:?}");
        // ...unless they were meant for a key vzfs uses.
        let (line, msg) = syntax_err("A=1\n\nVE_DEVICE here\n");
        assert_eq!(line, 3);
        assert!(msg.starts_with("/etc/vz/conf/101.conf:3: no '='"), "{msg}");
        assert!(msg.contains("write KEY=\"value\""), "{msg}");

        let (line, msg) = syntax_err("VE_DEVICE=\"/dev/sdb1\n");
        assert_eq!(line, 1);
        assert!(msg.contains("unterminated quote"), "{msg}");

        let (_, msg) = syntax_err("VE_DEVICE = /dev/sdb1\n");
        assert!(msg.contains("invalid key name \"VE_DEVICE \""), "{msg}");
        assert!(msg.contains("without blanks around '='"), "{msg}");

        let (_, msg) = syntax_err("export VE_DEVICE=/dev/sdb1\n");
        assert!(msg.contains("drop 'export'"), "{msg}");

        for bad in ["=x", "1A=x", "A-B=x", "A.B=x", "$(x)=y"] {
            assert!(parse(p(), bad).unwrap().entries.is_empty(), "{bad}");
        }
        let (_, msg) = syntax_err("VE_ROOT=a\0b");
        assert!(msg.contains("NUL"), "{msg}");
    }

    #[test]
    fn duplicates_first_wins_conflict_is_refused() {
        let global = parse(Path::new("/g"), "").unwrap();
        let ct = parse(p(), "A=1\nB=x\nA=2\nB=x\n").unwrap();
        let c = VzConfig::from_files(global, ct, "101");
        assert_eq!(c.get("A").unwrap().raw, "1");
        let e = c.literal("A").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("line 3"), "{e}");
        assert!(e.contains("keep only one"), "{e}");
        // The same value twice is not ambiguous.
        assert_eq!(c.literal("B").unwrap().unwrap().origin.line, 2);
    }

    #[test]
    fn container_file_overrides_global() {
        let g = parse(Path::new("/etc/vz/vz.conf"), "A=g\nB=g\nA=g2\n").unwrap();
        let ct = parse(p(), "A=ct\n").unwrap();
        let c = VzConfig::from_files(g, ct, "101");
        let a = c.literal("A").unwrap().unwrap();
        assert_eq!((a.raw.as_str(), a.origin.line), ("ct", 1));
        assert_eq!(a.origin.path, p());
        let b = c.get("B").unwrap();
        assert_eq!(b.origin.path, Path::new("/etc/vz/vz.conf"));
        assert!(c.get("C").is_none());
        assert!(c.literal("C").unwrap().is_none());
    }

    fn cfg(text: &str) -> VzConfig {
        VzConfig::from_files(
            parse(Path::new("/g"), "").unwrap(),
            parse(p(), text).unwrap(),
            "101",
        )
    }

    #[test]
    fn shell_code_is_refused() {
        let hostile = [
            ("VE_DEVICE=$(touch /tmp/x)", "'$('"),
            ("VE_DEVICE=\"`id`\"", "a backtick"),
            ("VE_DEVICE=\"${HOME}/x\"", "'${' other than ${VEID}"),
            (
                "VE_DEVICE=\"$HOME\"",
                "'$' followed by something other than VEID",
            ),
            (
                "VE_DEVICE=\"/dev/$VEIDX\"",
                "'$' followed by something other than VEID",
            ),
            (
                "VE_DEVICE=\"/dev/x$\"",
                "'$' followed by something other than VEID",
            ),
            ("VE_DEVICE=\"/dev/sdb;reboot\"", "';'"),
            ("VE_DEVICE=\"/dev/sdb|x\"", "'|'"),
            ("VE_DEVICE=\"/dev/sdb&\"", "'&'"),
            ("VE_DEVICE=\"/dev/sdb</x\"", "'<'"),
            ("VE_DEVICE=\"/dev/sdb>/x\"", "'>'"),
            ("VE_DEVICE=\"/dev/sdb\r\"", "a line break"),
        ];
        for (text, found) in hostile {
            let c = cfg(text);
            match c.literal("VE_DEVICE") {
                Err(ConfigError::ShellCode {
                    found: f,
                    line,
                    key,
                    ..
                }) => {
                    assert_eq!((f, line, key.as_str()), (found, 1, "VE_DEVICE"), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
            let msg = c.check_vzfs_keys().unwrap_err().to_string();
            assert!(
                msg.contains("vzfs never runs the config: write a literal value"),
                "{msg}"
            );
            assert!(
                msg.starts_with("/etc/vz/conf/101.conf:1: VE_DEVICE looks like shell code"),
                "{msg}"
            );
        }
        // $VEID and ${VEID} are fine.
        let c = cfg("VE_DEVICE=\"/dev/vg/ct$VEID-${VEID}_$VEID\"");
        assert_eq!(
            c.expanded("VE_DEVICE").unwrap().unwrap(),
            "/dev/vg/ct101-101_101"
        );
    }

    #[test]
    fn unquoted_blank_and_single_quoted_vzctl_keys_are_refused() {
        let e = cfg("VE_DEVICE=/dev/sdb1 # data disk")
            .literal("VE_DEVICE")
            .unwrap_err();
        assert!(e.to_string().contains("double quotes"), "{e}");
        assert!(cfg("VE_DEVICE=\"/dev/disk/by-label/my disk\"")
            .literal("VE_DEVICE")
            .is_ok());
        assert!(cfg("VE_DEVICE='/dev/sdb1'").literal("VE_DEVICE").is_ok());
        let e = cfg("VE_PRIVATE='/vz/private/$VEID'")
            .path_value("VE_PRIVATE")
            .unwrap_err();
        assert!(e.to_string().contains("single quotes"), "{e}");
    }

    #[test]
    fn vzctl_veid_substitution() {
        assert_eq!(
            vzctl_subst_veid("/vz/private/$VEID", "101"),
            "/vz/private/101"
        );
        assert_eq!(
            vzctl_subst_veid("/vz/private/${VEID}/", "101"),
            "/vz/private/101"
        );
        assert_eq!(vzctl_subst_veid("/vz/private/x///", "101"), "/vz/private/x");
        assert_eq!(vzctl_subst_veid("/a/$VEID/$VEID", "7"), "/a/7/$VEID");
        assert_eq!(vzctl_subst_veid("/a/${VEID}/$VEID", "7"), "/a/${VEID}/7");
        assert_eq!(vzctl_subst_veid("/", "7"), "");
    }

    #[test]
    fn path_values() {
        let c = cfg("VE_ROOT=\"/vz/root/$VEID/\"\nVE_PRIVATE=\"/vz/p/${VEID}\"\nLOCKDIR=/vz/lock/\nDUMPDIR=vz/dump\n");
        assert_eq!(
            c.path_value("VE_ROOT").unwrap().unwrap(),
            Path::new("/vz/root/101")
        );
        assert_eq!(
            c.path_value("VE_PRIVATE").unwrap().unwrap(),
            Path::new("/vz/p/101")
        );
        assert_eq!(
            c.path_value("LOCKDIR").unwrap().unwrap(),
            Path::new("/vz/lock")
        );
        let e = c.path_value("DUMPDIR").unwrap_err().to_string();
        assert!(
            e.contains("not an absolute path") && e.contains(":4:"),
            "{e}"
        );
        assert!(c.path_value("VE_DEVICE").unwrap().is_none());

        let e = cfg("VE_PRIVATE=/vz/$VEID/$VEID")
            .path_value("VE_PRIVATE")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"/vz/101/$VEID\""), "{e}");
        let e = cfg("LOCKDIR=/vz/lock/$VEID")
            .path_value("LOCKDIR")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not expand $VEID"), "{e}");
        let e = cfg("VE_ROOT=/")
            .path_value("VE_ROOT")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn ctids() {
        for ok in ["1", "101", "2147483647"] {
            validate_ctid(ok).unwrap();
        }
        for bad in [
            "",
            "0",
            "0101",
            "-1",
            "+1",
            "10a",
            "1 ",
            "../1",
            "1/2",
            "2147483648",
            "99999999999999999999",
            "١٠١",
        ] {
            let e = validate_ctid(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid container ID"), "{bad:?}: {e}");
        }
        let e = VzConfig::load(&VzEtc::new("/nonexistent"), "../../etc/passwd").unwrap_err();
        assert!(matches!(e, ConfigError::InvalidCtid { .. }), "{e}");
    }

    #[test]
    fn etc_paths() {
        let d = VzEtc::default();
        assert_eq!(d.root, Path::new("/etc/vz"));
        assert_eq!(d.global_conf(), Path::new("/etc/vz/vz.conf"));
        assert_eq!(d.ct_conf("101"), Path::new("/etc/vz/conf/101.conf"));
        assert_eq!(d.scripts_dir(), Path::new("/etc/vz/conf"));
        let t = VzEtc::new("/tmp/x");
        assert_eq!(t.ct_conf("7"), Path::new("/tmp/x/conf/7.conf"));
    }

    #[test]
    fn non_utf8_only_matters_for_vzfs_keys() {
        let f = parse_bytes(p(), b"DESCRIPTION=\"caf\xe9\"\nVE_DEVICE=/dev/sdb\n").unwrap();
        assert_eq!(f.first("VE_DEVICE").unwrap().raw, "/dev/sdb");
        let e = parse_bytes(p(), b"A=1\nVE_DEVICE=/dev/sd\xe9\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn edit_in_memory() {
        let orig = b"# c\nA=1\n\tB = odd\nA='2'\nC=3";
        assert_eq!(
            edit_set(orig, "A", b"A=\"9\""),
            b"# c\nA=\"9\"\n\tB = odd\nC=3\n"
        );
        assert_eq!(
            edit_set(orig, "D", b"D=\"4\""),
            b"# c\nA=1\n\tB = odd\nA='2'\nC=3\nD=\"4\"\n"
        );
        assert_eq!(edit_set(b"", "D", b"D=\"4\""), b"D=\"4\"\n");
        assert_eq!(
            edit_set(b"A=1\r\nB=2\r\n", "A", b"A=\"x\""),
            b"A=\"x\"\r\nB=2\r\n"
        );
        assert_eq!(
            edit_set(b"A=1\r\nB=2", "C", b"C=\"x\""),
            b"A=1\r\nB=2\r\nC=\"x\"\r\n"
        );
        assert_eq!(
            edit_remove(orig, "A"),
            (b"# c\n\tB = odd\nC=3\n".to_vec(), true)
        );
        assert_eq!(edit_remove(orig, "Z"), (orig.to_vec(), false));
        // Comments that mention the key are kept.
        assert_eq!(
            edit_remove(b"#A=1\n A=2\n", "A"),
            (b"#A=1\n".to_vec(), true)
        );
    }
}
