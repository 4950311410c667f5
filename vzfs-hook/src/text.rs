//! Text that comes from the system, made safe to print: control characters
//! escaped (a process name or a path holding a newline must not forge a
//! line of its own in stderr or syslog) and long values cut (a 10 MB config
//! value is named by its first bytes and its length, not echoed whole).

use std::fmt::Write;
use std::path::Path;

/// How many bytes of a value a message shows.
pub const SHOW_MAX: usize = 200;

/// `s` with every control character written as an escape (`\n`, `\t`,
/// `\r`, `\xNN`, `\u{NN}`); everything else unchanged. Backslashes are kept
/// as they are.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A path for a message: lossy UTF-8, control characters escaped.
pub fn path(p: &Path) -> String {
    escape(&p.to_string_lossy())
}

/// A value for a message, quoted: escaped, and cut after [`SHOW_MAX`] bytes
/// with its full length said (`"aaaa..." (10485760 bytes)`).
pub fn value(s: &str) -> String {
    if s.len() <= SHOW_MAX {
        return format!("\"{}\"", escape(s));
    }
    let mut end = SHOW_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("\"{}\"... ({} bytes)", escape(&s[..end]), s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("a\nvzfs-hook: b"), "a\\nvzfs-hook: b");
        assert_eq!(escape("x\x1b[31my\u{85}"), "x\\x1b[31my\\u{85}");
        assert_eq!(escape("plain /vz/private/101"), "plain /vz/private/101");
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let v = "x".repeat(10 << 20);
        let shown = value(&v);
        assert!(shown.len() < 260, "{}", shown.len());
        assert!(shown.ends_with("(10485760 bytes)"), "{shown}");
        assert_eq!(value("ab"), "\"ab\"");
        // Never cuts inside a character.
        let v = "é".repeat(300);
        assert!(value(&v).contains("(600 bytes)"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn output_never_holds_a_control_character(s in ".*") {
            prop_assert!(!escape(&s).chars().any(char::is_control));
            prop_assert!(!value(&s).chars().any(char::is_control));
            prop_assert!(value(&s).len() <= 4 * SHOW_MAX + 40);
        }
    }
}
