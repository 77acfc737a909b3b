//! Why a node check of strata-flex fails: what is missing or refused, and the OS's answer.

use crate::sys::access::refusal;
use std::path::PathBuf;

/// Why a node check fails: what is missing or refused, and the OS error that said so.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A check of `path` failed.
    #[error("{}: {problem}", path.display())]
    At { path: PathBuf, problem: Box<Problem> },
    /// The data root could not be made.
    #[error("{0}")]
    MakeRoot(crate::engine::Error),
    #[error("does not exist, and its parent {} cannot take it: {}", parent.display(), refusal(.error))]
    ParentRefuses { parent: PathBuf, error: Box<crate::sys::Error> },
    #[error("cannot create a file in it: {0}")]
    CannotCreate(std::io::Error),
    #[error("remove probe: {0}")]
    RemoveProbe(std::io::Error),
    /// The kubelet dir cannot be read.
    #[error("{0}")]
    Unreadable(std::io::Error),
    #[error("{}: {source}; strata-flex calls log nothing", path.display())]
    LogUnwritable { path: PathBuf, source: std::io::Error },
    #[error("{}: its directory {} cannot take it: {}; strata-flex calls log nothing", path.display(), dir.display(), refusal(.error))]
    LogDirRefuses { path: PathBuf, dir: PathBuf, error: Box<crate::sys::Error> },
    /// This process's capabilities cannot be read.
    #[error("{0}")]
    Capabilities(crate::sys::Error),
    #[error("this process has no CAP_SYS_ADMIN, so it cannot mount: kubelet runs strata-flex as root")]
    NoCapSysAdmin,
}
