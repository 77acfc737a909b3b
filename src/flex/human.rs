//! strata-flex for a person, never for kubelet: `--help` (`-h`), `--version` (`-V`), `check` (is
//! this node ready for strata-flex?) and `settings` (the settings file the installer writes).
//! kubelet's calls never reach this module and these commands never reach kubelet's path: they
//! write no log, and `--help` and `--version` touch nothing at all. The command line is clap's,
//! so `strata-csi man` renders the same text as a man page.

use super::config::{self, Config};
use super::{health, settings};
use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

/// What kubelet and kube-controller-manager call, for the help and the man page.
const KUBELET_CALLS: &str = "\
kubelet runs this program as the FlexVolume driver strata/flex
(<plugin dir>/strata~flex/flex) with one of: init, mount <dir> <json>, unmount <dir>,
expandvolume, expandfs, isattached, mountdevice, unmountdevice; each call answers one JSON
object on stdout and logs to the log file. `init` (which kube-controller-manager runs as well,
on hosts without the data root or the kubelet dir) only reports the driver's capabilities;
`mount` checks the node (data root, kubelet dir, the right to mount) and fails with the reason,
and `strata-flex check` runs the same checks for a person.

Settings: `.strata-flex.json` beside the binary (or STRATA_FLEX_CONFIG), then the environment:
STRATA_FLEX_ROOT, STRATA_FLEX_KUBELET_DIR, STRATA_FLEX_LOG, STRATA_FLEX_LOG_LEVEL,
STRATA_FLEX_LOCK_WAIT, STRATA_FLEX_OVERCOMMIT (see docs/operations.md).";

/// strata-flex's human-facing command line.
#[derive(Debug, Parser)]
#[command(
    name = "strata-flex",
    version = crate::BUILD,
    about = "strata's FlexVolume driver (strata/flex), and checks of a node for it",
    after_long_help = KUBELET_CALLS,
    disable_help_subcommand = true
)]
struct Human {
    #[command(subcommand)]
    command: Option<Task>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check this node for strata-flex with its settings: the data root takes files, the
    /// kubelet dir can be read, the log file can be written, and this process may mount.
    /// Prints one line per check; exits 1 when any fails.
    Check,
    /// Print the settings file (JSON) that results from FILE, if it exists, with the settings
    /// given here changed: what is not given is kept. install.sh writes the driver's with it.
    Settings(settings::Args),
}

/// The command line, for `strata-csi man`.
pub fn command() -> clap::Command {
    Human::command()
}

/// Whether `args` (without the program name) are a person's, not kubelet's: kubelet's first
/// argument is always one of its call names.
pub fn wanted(args: &[OsString]) -> bool {
    args.first()
        .is_some_and(|a| ["--help", "-h", "--version", "-V", "check", "settings"].contains(&&*a.to_string_lossy()))
}

/// Runs a person's command (`args` without the program name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match Human::try_parse_from(std::iter::once(OsString::from("strata-flex")).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    match cli.command {
        Some(Task::Check) => check(),
        Some(Task::Settings(args)) => match settings::merged(&args) {
            Ok(json) => crate::stdout::write(json.as_bytes()),
            Err(e) => {
                crate::stdout::error(&format!("strata-flex settings: error: {e}"));
                ExitCode::FAILURE
            }
        },
        None => crate::stdout::write(command().render_long_help().to_string().as_bytes()),
    }
}

/// `strata-flex check`: the settings as strata-flex reads them at a call, then the node.
fn check() -> ExitCode {
    let exe = std::env::current_exe().ok();
    let cfg = match config::load(exe.as_deref(), &|k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(e) => {
            crate::stdout::print(&format!("FAIL  settings: {e}\n"));
            return ExitCode::FAILURE;
        }
    };
    crate::stdout::print(&format!("ok    settings: {}\n", summary(&cfg)));
    let mut failed = false;
    for (what, result) in health::node(&cfg) {
        failed |= result.is_err();
        let line = match result {
            Ok(detail) => format!("ok    {what}: {detail}\n"),
            Err(reason) => format!("FAIL  {what}: {reason}\n"),
        };
        crate::stdout::print(&line);
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn summary(cfg: &Config) -> String {
    let log = cfg.log_file.as_ref().map_or("off".to_owned(), |l| l.display().to_string());
    format!(
        "data root {}, kubelet dir {}, log {log} ({}), lock wait {} s",
        cfg.root.display(),
        cfg.kubelet_dir.display(),
        cfg.log_level,
        cfg.lock_wait.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn only_a_persons_arguments_are_taken() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        for a in [&["--help"][..], &["-h"], &["--version"], &["-V"], &["check"], &["settings", "--root", "/r"]] {
            assert!(wanted(&args(a)), "{a:?}");
        }
        for a in [&[][..], &["init"], &["mount", "/p", "{}"], &["unmount", "/p"], &["help"]] {
            assert!(!wanted(&args(a)), "{a:?}");
        }
    }
}
