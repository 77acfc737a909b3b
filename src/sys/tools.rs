//! External tools (mkfs, blkid, resize2fs, xfs_growfs, btrfs), run by absolute path with stdio captured.

use super::{Error, Result};
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
    let path = locate(tool).ok_or_else(|| Error::ToolSpawn {
        tool: tool.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not installed in /usr/sbin, /sbin, /usr/bin or /bin",
        ),
    })?;
    Command::new(&path)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| Error::ToolSpawn { tool: tool.to_owned(), source })
}

/// The exit status and trimmed stderr (or stdout when stderr is empty) of a failed run.
pub fn detail(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { stderr };
    format!("{}: {}", out.status, text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn missing_tool_is_a_spawn_error() {
        let err = run("strata-no-such-tool", &[], Path::new("/x")).unwrap_err();
        assert!(matches!(err, Error::ToolSpawn { .. }), "{err}");
    }

    #[test]
    fn failure_keeps_stderr() {
        let err = run("ls", &[OsStr::new("/strata/definitely/missing")], Path::new("/m")).unwrap_err();
        let Error::Tool { detail, .. } = err else { panic!("wrong error {err}") };
        assert!(detail.contains("No such file"), "{detail}");
    }

    #[test]
    fn success_returns_stdout() {
        let out = run("echo", &[OsStr::new("hi")], Path::new("/")).unwrap();
        assert_eq!(out.stdout, "hi\n");
    }
}
