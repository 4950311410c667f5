//! Escaping of hand-written text for roff (man pages).

/// Text for a roff line: backslashes, hyphens (as `\-`, for options and
/// commands that can be copied) and a leading `.`/`'` made literal.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\e"),
            '-' => o.push_str("\\-"),
            _ => o.push(c),
        }
    }
    if o.starts_with('.') || o.starts_with('\'') {
        o.insert_str(0, "\\&");
    }
    o
}

/// A paragraph of text (one input line per source line).
pub fn para(s: &str) -> String {
    let mut o = String::from(".PP\n");
    for l in s.lines() {
        o.push_str(&esc(l));
        o.push('\n');
    }
    o
}

/// A tagged paragraph: `tag` in bold, then the text.
pub fn tp(tag: &str, text: &str) -> String {
    format!(".TP\n\\fB{}\\fR\n{}\n", esc(tag), esc(text))
}

/// A literal block (commands, config excerpts).
pub fn example(lines: &str) -> String {
    let mut o = String::from(".PP\n.RS 4\n.nf\n");
    for l in lines.lines() {
        o.push_str(&esc(l));
        o.push('\n');
    }
    o.push_str(".fi\n.RE\n");
    o
}

pub fn section(name: &str) -> String {
    format!(".SH {}\n", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(esc(".x -a \\n"), "\\&.x \\-a \\en");
        assert_eq!(tp("--chain", "a-b"), ".TP\n\\fB\\-\\-chain\\fR\na\\-b\n");
    }
}
