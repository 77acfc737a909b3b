//! External tools (mkfs, blkid, resize2fs, xfs_growfs, btrfs), run by absolute path with stdio captured.

use super::{Action, Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The absolute path of a tool, searched in the standard system directories only.
pub fn locate(tool: &str) -> Option<PathBuf> {
    TOOL_DIRS.iter().map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

/// Output of a tool run that exited 0.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
}

/// Runs `tool args…`; stdin is null, stdout and stderr are captured and never reach our streams.
/// A non-zero exit becomes [`Error::Tool`] carrying the tool's stderr.
pub fn run(tool: &str, args: &[&std::ffi::OsStr], subject: &Path) -> Result<Output> {
    let out = output(tool, args)?;
    if out.status.success() {
        return Ok(Output { stdout: String::from_utf8_lossy(&out.stdout).into_owned() });
    }
    Err(Error::Tool { tool: tool.to_owned(), path: subject.to_owned(), detail: detail(&out) })
}

/// Runs a tool and returns its raw result whatever the exit status.
pub fn output(tool: &str, args: &[&std::ffi::OsStr]) -> Result<std::process::Output> {
    let path = locate(tool).ok_or_else(|| Error::NotInstalled { tool: tool.to_owned() })?;
    Command::new(&path)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(Error::on(Action::Start { tool: tool.to_owned() }, &path))
}

/// The longest line quoted from a tool.
const LINE_MAX: usize = 300;

/// The exit status and the first meaningful line of a failed run's stderr (or stdout when stderr
/// says nothing): blank lines and version banners (`mke2fs 1.47.0 (5-Feb-2023)`) are skipped,
/// and what follows (a usage text, say) is counted, not quoted. The whole text goes to the log.
pub fn detail(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { stderr };
    tracing::debug!(status = %out.status, output = %text, "tool failed");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let first = lines.iter().position(|l| !is_banner(l)).unwrap_or(0);
    let Some(line) = lines.get(first) else { return out.status.to_string() };
    let line: String = line.chars().take(LINE_MAX).collect();
    match lines.len() - first - 1 {
        0 => format!("{}: {line}", out.status),
        1 => format!("{}: {line} (and 1 more line)", out.status),
        n => format!("{}: {line} (and {n} more lines)", out.status),
    }
}

/// Whether `line` is a tool's name-and-version banner: `<name> <version> [...]`.
fn is_banner(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let (Some(_name), Some(version)) = (words.next(), words.next()) else { return false };
    let version = version.strip_prefix('v').unwrap_or(version);
    version.starts_with(|c: char| c.is_ascii_digit())
        && version.contains('.')
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '~'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn missing_tool_is_a_spawn_error() {
        let err = run("strata-no-such-tool", &[], Path::new("/x")).unwrap_err();
        assert!(matches!(err, Error::NotInstalled { .. }), "{err}");
    }

    #[test]
    fn failure_keeps_stderr() {
        let err = run("ls", &[OsStr::new("/strata/definitely/missing")], Path::new("/m")).unwrap_err();
        let Error::Tool { detail, .. } = err else { panic!("wrong error {err}") };
        assert!(detail.contains("No such file"), "{detail}");
    }

    fn failed(stderr: &str, stdout: &str) -> std::process::Output {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(1 << 8);
        std::process::Output { status, stdout: stdout.into(), stderr: stderr.into() }
    }

    #[test]
    fn detail_is_the_first_meaningful_line() {
        let usage: String = (0..40).map(|i| format!("/* option {i} */ [-x {i}]\n")).collect();
        let xfs = format!("Filesystem must be larger than 300MB.\nUsage: mkfs.xfs\n{usage}");
        assert_eq!(
            detail(&failed(&xfs, "")),
            "exit status: 1: Filesystem must be larger than 300MB. (and 41 more lines)"
        );
        let ext4 = "mke2fs 1.47.0 (5-Feb-2023)\n\nmkfs.ext4: Device size reported to be zero.\n";
        assert_eq!(detail(&failed(ext4, "")), "exit status: 1: mkfs.ext4: Device size reported to be zero.");
        assert_eq!(detail(&failed("", "  only stdout\n")), "exit status: 1: only stdout");
        assert_eq!(detail(&failed("btrfs-progs v6.2\n", "")), "exit status: 1: btrfs-progs v6.2");
        assert_eq!(detail(&failed("", "")), "exit status: 1");
        let long = "y".repeat(1000);
        assert_eq!(detail(&failed(&long, "")).len(), "exit status: 1: ".len() + LINE_MAX);
    }

    #[test]
    fn success_returns_stdout() {
        let out = run("echo", &[OsStr::new("hi")], Path::new("/")).unwrap();
        assert_eq!(out.stdout, "hi\n");
    }
}
