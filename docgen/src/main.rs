//! `vzfs-docgen [--date YYYY-MM-DD] OUTDIR`: writes the man pages and shell
//! completions of the vzfs binaries under OUTDIR (`man/`, `completions/`).
//! A build tool of `make package`; thin: the work is in the library.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "vzfs-docgen",
    version,
    about = "Render the vzfs man pages and shell completions from the clap definitions"
)]
struct Cli {
    /// Date printed in the pages (default: SOURCE_DATE_EPOCH, else today)
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<String>,
    /// Output directory
    out: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let date = cli.date.unwrap_or_else(vzfs_docgen::default_date);
    match vzfs_docgen::generate(&cli.out, &date) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vzfs-docgen: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
