//! The generated pages render without a warning (`man --warnings -l`), each
//! completion script parses in its shell (`bash -n`, `zsh -n`, `fish -n`),
//! and vzfs(7) lists exactly the README's configuration keys.
//!
//! man-db, groff, zsh and fish come from `scripts/install-prereqs` (run by
//! `make test`). A missing tool fails the test unless
//! `VZFS_SKIP_PACKAGE_TESTS=1`, which prints that the check was skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const SKIP_VAR: &str = "VZFS_SKIP_PACKAGE_TESTS";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `true`: run. A missing tool panics, or is a printed skip with the opt-out.
fn require(tool: &str, test: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: {tool} is not installed ({SKIP_VAR}=1)");
        return false;
    }
    panic!("{test}: {tool} is not installed; run scripts/install-prereqs as root (or set {SKIP_VAR}=1 to skip)");
}

fn generated(tag: &str) -> (PathBuf, Vec<PathBuf>) {
    let d = std::env::temp_dir().join(format!("vzfs-docgen-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let files = vzfs_docgen::generate(&d, "2026-01-01").expect("generate");
    (d, files)
}

#[test]
fn man_pages_render_without_warnings() {
    if !require("man", "man_pages_render_without_warnings")
        || !require("groff", "man_pages_render_without_warnings")
    {
        return;
    }
    let (d, files) = generated("man");
    let pages: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.starts_with(d.join("man")))
        .collect();
    assert_eq!(pages.len(), vzfs_docgen::commands().len() + 1, "{pages:?}");
    for p in pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(p)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run man");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "{}: man --warnings: {err}",
            p.display()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("EXAMPLES") || p.ends_with("vzfs.7"),
            "{}",
            p.display()
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// man-pages(7): every page's title (the first argument of its one `.TH`)
/// is the name in capitals, then the section.
#[test]
fn man_page_titles_are_capitals() {
    let (d, files) = generated("title");
    let mut seen = BTreeSet::new();
    for p in files.iter().filter(|f| f.starts_with(d.join("man"))) {
        let text = std::fs::read_to_string(p).unwrap();
        let name = p.file_stem().unwrap().to_str().unwrap();
        let section = p.extension().unwrap().to_str().unwrap();
        let th: Vec<&str> = text.lines().filter(|l| l.starts_with(".TH ")).collect();
        let want = format!(".TH {} {section} ", name.to_uppercase());
        assert!(
            th.len() == 1 && th[0].starts_with(&want),
            "{}: .TH lines {th:?}, want one starting with {want:?}",
            p.display()
        );
        seen.insert(format!("{name}({section})"));
    }
    let want: BTreeSet<String> = [
        "vzfs(7)",
        "vzfs-hook(8)",
        "vzfs-migrate(8)",
        "vzfs-create(8)",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen, want);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn completions_parse_in_their_shells() {
    let (d, files) = generated("compl");
    let mut n = 0;
    for (shell, dir) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        if !require(shell, "completions_parse_in_their_shells") {
            continue;
        }
        for f in files
            .iter()
            .filter(|f| f.starts_with(d.join("completions").join(dir)))
        {
            let out = Command::new(shell)
                .arg("-n")
                .arg(f)
                .output()
                .expect("run shell");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{shell} -n {}: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let cmd = f
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_start_matches('_')
                .trim_end_matches(".fish")
                .to_string();
            // Loaded for real where that needs no setup: the completion is registered.
            let load = match shell {
                "bash" => Some(format!("source '{}' && complete -p {cmd}", f.display())),
                "fish" => Some(format!(
                    "source '{}'; and complete -c {cmd} | string match -q -- '*-l help*'",
                    f.display()
                )),
                _ => None,
            };
            if let Some(script) = load {
                let out = Command::new(shell)
                    .arg("-c")
                    .arg(&script)
                    .output()
                    .expect("run shell");
                assert!(
                    out.status.success(),
                    "{shell}: loading {} did not register {cmd}: {}",
                    f.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if shell == "zsh" {
                let first = std::fs::read_to_string(f).unwrap();
                let name = f
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim_start_matches('_')
                    .to_string();
                assert!(
                    first.starts_with(&format!("#compdef {name}")),
                    "{}",
                    f.display()
                );
            }
            n += 1;
        }
    }
    assert!(n >= 2, "no completion files checked");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The README's "Configuration keys" table and vzfs(7) name the same keys.
#[test]
fn vzfs7_keys_match_the_readme() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let table = readme
        .split("## Configuration keys")
        .nth(1)
        .expect("README has a Configuration keys section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut readme_keys = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap();
        for k in first.split('`').skip(1).step_by(2) {
            readme_keys.insert(k.to_string());
        }
    }
    let page_keys: BTreeSet<String> = vzfs_docgen::vzfs7::KEYS
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(readme_keys, page_keys);
    let page = vzfs_docgen::vzfs7::page("2026-01-01");
    for k in &page_keys {
        assert!(
            page.contains(&format!("\\fB{}\\fR", k.replace('-', "\\-"))),
            "{k}"
        );
    }
}
