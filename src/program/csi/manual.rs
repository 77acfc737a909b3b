//! `strata-csi completions` and `strata-csi man`: shell completion scripts and man pages,
//! generated from the command lines' own definitions (clap_complete, clap_mangen), so they never
//! disagree with `--help`. `man` writes strata-flex's page too: strata-flex is installed where
//! kubelet finds it, rarely on a person's PATH, and its human-facing commands are few.

use super::cli::Cli;
use clap::CommandFactory;
use std::path::Path;
use std::process::ExitCode;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "strata-csi", &mut script);
    crate::stdout::write(&script)
}

/// Writes `strata-csi.1`, one page per subcommand (`strata-csi-client-create-volume.1`, ...) and
/// `strata-flex.1` into `dir`, and lists them on stdout.
pub fn man(dir: &Path) -> ExitCode {
    match write_pages(dir) {
        Ok(list) => crate::stdout::write(list.as_bytes()),
        Err(e) => {
            crate::stdout::error(&format!("cannot write man pages into {}: {e}", dir.display()));
            ExitCode::FAILURE
        }
    }
}

fn write_pages(dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command(), dir)?;
    clap_mangen::Man::new(crate::flex::human::command()).generate_to(dir)?;
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| (n.starts_with("strata-csi") || n.starts_with("strata-flex")) && n.ends_with(".1"))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| format!("{}\n", dir.join(n).display())).collect())
}
