//! vzfs-docgen: the man pages and shell completions of the vzfs binaries,
//! rendered from their clap definitions (`vzfs::cli::Cli`,
//! `vzfs_migrate::cli::Cli`, `vzfs_migrate::create::cli::Cli`) so they cannot drift from `--help`. A build tool
//! of `make package`; never installed on a node.
//!
//! Modules: [`man`] (vzfs-hook(8), vzfs-migrate(8), vzfs-create(8), with exit codes, files
//! and the seed's scenarios as examples), [`vzfs7`] (vzfs(7): the
//! configuration keys), [`roff`] (escaping for hand-written text).

pub mod man;
pub mod roff;
pub mod vzfs7;

use clap::CommandFactory;
use clap_complete::Shell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The product binaries this tool documents, with their clap command.
pub fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("vzfs-hook", vzfs::cli::Cli::command()),
        ("vzfs-migrate", vzfs_migrate::cli::Cli::command()),
        ("vzfs-create", vzfs_migrate::create::cli::Cli::command()),
    ]
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DocError> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(|source| DocError::Io {
            path: d.to_path_buf(),
            op: "create directory",
            source,
        })?;
    }
    fs::write(path, bytes).map_err(|source| DocError::Io {
        path: path.to_path_buf(),
        op: "write",
        source,
    })
}

/// The shells completions are made for, with the file name each expects
/// (bash-completion and fish load `CMD`/`CMD.fish`, zsh `_CMD`).
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "bash"),
    (Shell::Zsh, "zsh"),
    (Shell::Fish, "fish"),
];

pub fn completion_file_name(shell: Shell, cmd: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{cmd}"),
        Shell::Fish => format!("{cmd}.fish"),
        _ => cmd.to_string(),
    }
}

/// Writes `OUT/man/NAME.SECTION` and `OUT/completions/SHELL/FILE`; returns
/// the files written.
pub fn generate(out: &Path, date: &str) -> Result<Vec<PathBuf>, DocError> {
    let mut written = Vec::new();
    for (name, cmd) in commands() {
        let page = out.join("man").join(format!("{name}.8"));
        write(&page, man::page(name, cmd.clone(), date).as_bytes())?;
        written.push(page);
        for (shell, dir) in SHELLS {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd.clone(), name, &mut buf);
            let f = out
                .join("completions")
                .join(dir)
                .join(completion_file_name(*shell, name));
            write(&f, &buf)?;
            written.push(f);
        }
    }
    let p = out.join("man").join("vzfs.7");
    write(&p, vzfs7::page(date).as_bytes())?;
    written.push(p);
    Ok(written)
}

/// `SOURCE_DATE_EPOCH` (reproducible builds) or now, as YYYY-MM-DD (UTC).
pub fn default_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = vzfs::timefmt::civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}
