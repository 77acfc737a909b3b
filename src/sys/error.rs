//! Errors of the host seam, one shape: the action (what was being done), the path it was done
//! on, and the OS error number, converted once here from nix, rustix or `std::io::Error`.
//! Callers ask [`Error::errno`] and [`Error::action`]; the engine classifies from them.

use std::fmt;
use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, Error>;

use super::errno::{Errno, ToErrno};

/// What the host seam was doing when a call failed. Its objects other than the main path (a
/// bind's source, a mount's type) travel with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bind-mount this source onto the path.
    Bind { source: PathBuf },
    /// Mount a filesystem of this type from this source onto the path.
    Mount { source: PathBuf, fstype: String },
    /// Remount the path (flags, data options, propagation).
    Remount,
    /// Unmount the path.
    Unmount,
    /// Read the mount table at the path.
    ReadMountTable,
    /// A loop device step for the path (`configure`, `open`, `status`, ...).
    Loop(&'static str),
    /// Start the external tool at the path.
    Start { tool: String },
    /// statvfs or statfs of the path.
    Statvfs,
    /// An fscrypt step on the directory at the path.
    Fscrypt(&'static str),
    /// Any other step, named by the caller (`rename`, `freeze`, `read /proc/meminfo`, ...).
    Other(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed: what was being done, on which path, and the errno.
    #[error("{}", describe(.action, .path, *.errno))]
    Os { action: Action, path: PathBuf, errno: Errno },
    /// An external tool ran and failed (or answered what cannot be read): its own words.
    #[error("{tool} failed on {path}: {detail}")]
    Tool { tool: String, path: PathBuf, detail: String },
    /// An external tool is not installed where strata looks for it.
    #[error("{tool} could not start: not installed in /usr/sbin, /sbin, /usr/bin or /bin")]
    NotInstalled { tool: String },
    /// A request path could not be resolved beneath its prefix.
    #[error("{path}: {source}")]
    Place { path: PathBuf, source: super::PlaceError },
    /// A walk over a tree of files.
    #[error(transparent)]
    Tree(#[from] super::tree::Error),
}

/// The message of [`Error::Os`]: the action in words, its path, and the errno.
fn describe(action: &Action, path: &Path, errno: Errno) -> String {
    let path = path.display();
    match action {
        Action::Bind { source } => format!("bind mount {} on {path}: {errno}", source.display()),
        Action::Mount { source, fstype } => format!("mount {fstype} {} on {path}: {errno}", source.display()),
        Action::Remount => format!("remount {path}: {errno}"),
        Action::Unmount => format!("unmount {path}: {errno}"),
        Action::ReadMountTable => format!("read mount table {path}: {errno}"),
        Action::Loop(what) => format!("loop device {what} for {path}: {errno}"),
        Action::Start { tool } => format!("{tool} could not start ({path}): {errno}"),
        Action::Statvfs => format!("statvfs {path}: {errno}"),
        Action::Fscrypt(what) => format!("fscrypt: {what} {path}: {errno}"),
        Action::Other(what) => format!("{what} {path}: {errno}"),
    }
}

impl Error {
    /// `action` on `path` failed with `err`: the constructor every call site uses.
    pub fn at(action: Action, path: impl Into<PathBuf>, err: impl ToErrno) -> Error {
        Error::Os { action, path: path.into(), errno: err.to_errno() }
    }

    /// The step `what` on `path` failed with `err` ([`Action::Other`]).
    pub fn io(what: &'static str, path: impl Into<PathBuf>, err: impl ToErrno) -> Error {
        Error::at(Action::Other(what), path, err)
    }

    /// For `map_err`: `action` on `path` failed.
    pub fn on<E: ToErrno>(action: Action, path: impl Into<PathBuf>) -> impl FnOnce(E) -> Error {
        let path = path.into();
        move |err| Error::at(action, path, err)
    }

    /// The OS error behind this one, wherever it is (a tool's failure has none: its exit status
    /// and its words say what went wrong).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            Error::Place { source, .. } => source.errno(),
            Error::Tree(t) => t.errno().map(Errno::from_raw),
            Error::Tool { .. } | Error::NotInstalled { .. } => None,
        }
    }

    /// What was being done, where a system call failed.
    pub fn action(&self) -> Option<&Action> {
        match self {
            Error::Os { action, .. } => Some(action),
            _ => None,
        }
    }

    /// The path the error names: the one acted on (a mount's target, a copy's destination).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Os { action: Action::ReadMountTable | Action::Start { .. } | Action::Unmount, .. } => None,
            Error::Os { path, .. } | Error::Tool { path, .. } | Error::Place { path, .. } => Some(path),
            Error::Tree(t) => Some(t.path()),
            Error::NotInstalled { .. } => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = match self {
            Action::Bind { .. } => "bind mount",
            Action::Mount { .. } => "mount",
            Action::Remount => "remount",
            Action::Unmount => "unmount",
            Action::ReadMountTable => "read mount table",
            Action::Loop(what) | Action::Fscrypt(what) | Action::Other(what) => what,
            Action::Start { .. } => "start",
            Action::Statvfs => "statvfs",
        };
        f.write_str(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_of_an_errno_gives_the_same_errno() {
        assert_eq!(std::io::Error::from_raw_os_error(libc::ENOSPC).to_errno(), Errno::ENOSPC);
        assert_eq!(rustix::io::Errno::NOSPC.to_errno(), Errno::ENOSPC);
        assert_eq!(std::io::Error::from(std::io::ErrorKind::AlreadyExists).to_errno(), Errno::EEXIST);
        assert_eq!(std::io::Error::other("boom").to_errno(), Errno::EIO);
        let e = Error::io("rename", "/a", std::io::Error::from_raw_os_error(libc::EXDEV));
        assert_eq!(e.errno(), Some(Errno::EXDEV));
        assert_eq!(e.action(), Some(&Action::Other("rename")));
        assert_eq!(e.path(), Some(Path::new("/a")));
    }

    #[test]
    fn messages_name_the_action_the_path_and_the_errno() {
        let bind = Error::at(Action::Bind { source: "/a".into() }, "/b", Errno::EINVAL);
        assert_eq!(bind.to_string(), "bind mount /a on /b: EINVAL: Invalid argument");
        let mount = Error::at(Action::Mount { source: "/dev/loop0".into(), fstype: "ext4".into() }, "/s", Errno::EBUSY);
        assert_eq!(mount.to_string(), "mount ext4 /dev/loop0 on /s: EBUSY: Device or resource busy");
        assert_eq!(Error::io("rename", "/a", Errno::EXDEV).to_string(), "rename /a: EXDEV: Cross-device link");
        let missing = Error::NotInstalled { tool: "mkfs.xfs".into() };
        assert_eq!(
            missing.to_string(),
            "mkfs.xfs could not start: not installed in /usr/sbin, /sbin, /usr/bin or /bin"
        );
        assert_eq!(missing.errno(), None);
    }
}
