//! Errors of the tree engine: the action, where in the tree (bounded, escaped), and the errno.

use rustix::io::Errno;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {path}: {errno}")]
    Io { what: &'static str, path: PathBuf, errno: Errno },
    #[error("refusing to remove {path}: {mount} is mounted inside it")]
    MountInside { path: PathBuf, mount: PathBuf },
    #[error("{path} changed while strata walked it ({detail}); nothing half-done was kept, try again")]
    Changed { path: PathBuf, detail: &'static str },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path} already exists and is not an empty directory")]
    DestinationExists { path: PathBuf },
    #[error("the copy of {path} was cancelled")]
    Cancelled { path: PathBuf },
}

impl Error {
    /// The OS error behind this one, if there is one (for resource errors: ENOSPC, EMFILE, ...).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { errno, .. } => Some(errno.raw_os_error()),
            _ => None,
        }
    }

    /// Where in the tree it happened.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Io { path, .. }
            | Error::MountInside { path, .. }
            | Error::Changed { path, .. }
            | Error::NotADirectory { path }
            | Error::DestinationExists { path }
            | Error::Cancelled { path } => path,
        }
    }
}

/// What a step of a walk failed at, before the walker names where (see [`super::walk`]).
#[derive(Debug)]
pub(super) enum Fail {
    /// A system call failed: the action and its errno.
    Io(&'static str, Errno),
    /// The entry is the root of a mount (refused by removal).
    Mount,
    /// The entry kept changing under the walk.
    Changed(&'static str),
    /// The copy was cancelled (see [`super::Progress::cancel`]).
    Cancelled,
}

impl Fail {
    pub(super) fn io(what: &'static str) -> impl FnOnce(Errno) -> Fail {
        move |errno| Fail::Io(what, errno)
    }
}
