//! vzctl's own configuration syntax, as the double reads and rewrites it
//! (VZCTL-CONTRACT.md, "Configuration files"). Deliberately NOT the product's
//! parser: vzctl removes backslash escapes, skips blank and `#` lines, splits
//! at the first `=`, takes a `"`-quoted value up to the last `"` on the line,
//! and gives single quotes no meaning (`KEY='v'` has the value `'v'`).
//! `set --save` rewrites only changed lines, appends new keys, keeps every
//! other byte, adds a missing final newline, and replaces the file through
//! `<file>.tmp` + rename.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Removes backslash escapes: `\x` becomes `x` (a trailing `\` is dropped).
pub fn unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut it = line.iter();
    while let Some(&c) = it.next() {
        if c == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses one line the way vzctl does. `None` for blank lines, comments and
/// lines without `=`. The key is everything before the first `=` after
/// leading blanks (not trimmed at its end: `KEY =v` has key `"KEY "`).
pub fn parse_line(raw: &[u8]) -> Option<(String, String)> {
    let line = unescape(raw);
    let line: &[u8] = &line;
    let start = line.iter().position(|c| !c.is_ascii_whitespace())?;
    let mut end = line.len();
    while end > start && line[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let s = &line[start..end];
    if s.first() == Some(&b'#') {
        return None;
    }
    let eq = s.iter().position(|&c| c == b'=')?;
    let key = &s[..eq];
    let mut val = &s[eq + 1..];
    if val.first() == Some(&b'"') {
        val = &val[1..];
        if let Some(last) = val.iter().rposition(|&c| c == b'"') {
            val = &val[..last];
        }
    }
    Some((
        String::from_utf8_lossy(key).into_owned(),
        String::from_utf8_lossy(val).into_owned(),
    ))
}

/// Every assignment of a file, in order (later ones override earlier ones).
pub fn parse(text: &[u8]) -> Vec<(String, String)> {
    text.split(|&c| c == b'\n').filter_map(parse_line).collect()
}

/// The merged configuration: global file, then the container's file.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    map: HashMap<String, String>,
}

impl Conf {
    /// Adds the assignments of one file (overriding earlier ones).
    pub fn merge_text(&mut self, text: &[u8]) {
        for (k, v) in parse(text) {
            self.map.insert(k, v);
        }
    }
    /// Reads and merges a file; a missing file is `Ok(false)`.
    pub fn merge_file(&mut self, path: &Path) -> std::io::Result<bool> {
        match std::fs::read(path) {
            Ok(t) => {
                self.merge_text(&t);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    /// The raw value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
    /// A path value (`VE_ROOT`, `VE_PRIVATE`) with `$VEID`/`${VEID}`
    /// substituted and trailing `/` stripped, as vzctl does.
    pub fn path(&self, key: &str, veid: &str) -> Option<String> {
        self.get(key).map(|v| subst_veid(v, veid))
    }
}

/// Substitutes `$VEID` and `${VEID}` and strips trailing slashes.
pub fn subst_veid(v: &str, veid: &str) -> String {
    let mut s = v.replace("${VEID}", veid).replace("$VEID", veid);
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    s
}

/// Keys vzctl manages itself and writes back in its own quoting on every
/// `set --save`, even when their value did not change (seen with vzctl
/// 4.11.1: `VE_LAYOUT=simfs` became `VE_LAYOUT="simfs"` after `set
/// --hostname X --save`; VZCTL-CONTRACT.md).
pub const REQUOTED_KEYS: &[&str] = &["VE_LAYOUT"];

/// Rewrites a config text with `changes` the way `vzctl set --save` does:
/// each line assigning a changed key becomes `KEY="value"`, so does a line
/// of a key of [`REQUOTED_KEYS`], every other byte stays, keys not present
/// are appended (in the given order) after a final newline is ensured.
pub fn rewrite(text: &[u8], changes: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut seen = vec![false; changes.len()];
    let mut rest = text;
    while !rest.is_empty() {
        let (line, nl, next) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &rest[rest.len()..]),
        };
        let mut replaced = false;
        if let Some((k, v)) = parse_line(line) {
            if let Some(i) = changes.iter().position(|(ck, _)| *ck == k) {
                out.extend_from_slice(format!("{}=\"{}\"", changes[i].0, changes[i].1).as_bytes());
                seen[i] = true;
                replaced = true;
            } else if REQUOTED_KEYS.contains(&k.as_str()) {
                out.extend_from_slice(format!("{k}=\"{v}\"").as_bytes());
                replaced = true;
            }
        }
        if !replaced {
            out.extend_from_slice(line);
        }
        if nl {
            out.push(b'\n');
        }
        rest = next;
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    for (i, (k, v)) in changes.iter().enumerate() {
        if !seen[i] {
            out.extend_from_slice(format!("{k}=\"{v}\"\n").as_bytes());
        }
    }
    out
}

/// Replaces `path` with `data` atomically: `<path>.tmp`, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(l: &str) -> Option<(String, String)> {
        parse_line(l.as_bytes())
    }

    #[test]
    fn vzctl_line_rules() {
        assert_eq!(kv("A=b"), Some(("A".into(), "b".into())));
        assert_eq!(kv("  A=\"b c\"  "), Some(("A".into(), "b c".into())));
        assert_eq!(kv("A=\"x\"y\"z"), Some(("A".into(), "x\"y".into())));
        assert_eq!(kv("A=\"x\" # c"), Some(("A".into(), "x".into())));
        assert_eq!(
            kv("A='/dev/sdb1'"),
            Some(("A".into(), "'/dev/sdb1'".into()))
        );
        assert_eq!(kv("A=a\\ b"), Some(("A".into(), "a b".into())));
        assert_eq!(kv("A = b"), Some(("A ".into(), " b".into())));
        assert_eq!(kv("A=b=c"), Some(("A".into(), "b=c".into())));
        assert_eq!(kv("   # A=b"), None);
        assert_eq!(kv(""), None);
        assert_eq!(kv("noequals"), None);
        assert_eq!(
            kv("A=\"unterminated"),
            Some(("A".into(), "unterminated".into()))
        );
    }

    #[test]
    fn veid_substitution() {
        assert_eq!(subst_veid("/vz/private/$VEID/", "101"), "/vz/private/101");
        assert_eq!(subst_veid("/vz/root/${VEID}", "7"), "/vz/root/7");
        assert_eq!(subst_veid("/", "7"), "/");
    }

    #[test]
    fn rewrite_keeps_bytes() {
        let orig =
            b"# comment\n\nVE_DEVICE='/dev/sdb1'\n  VE_PRIVATE=\"/old\"   \nODD  =  spacing\nX=1";
        let out = rewrite(
            orig,
            &[
                ("VE_PRIVATE".into(), "/vz/private/$VEID".into()),
                ("NEW".into(), "v".into()),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# comment\n\nVE_DEVICE='/dev/sdb1'\nVE_PRIVATE=\"/vz/private/$VEID\"\nODD  =  spacing\nX=1\nNEW=\"v\"\n"
        );
        // vzctl requotes the keys it manages even when unchanged
        let out = rewrite(
            b"VE_LAYOUT=simfs\nOTHER=x\n",
            &[("HOSTNAME".into(), "h".into())],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "VE_LAYOUT=\"simfs\"\nOTHER=x\nHOSTNAME=\"h\"\n"
        );
        // Non-UTF-8 bytes survive.
        let bin = b"A=\xff\xfe\nB=1\n";
        let out = rewrite(bin, &[("B".into(), "2".into())]);
        assert_eq!(out, b"A=\xff\xfe\nB=\"2\"\n");
    }
}
