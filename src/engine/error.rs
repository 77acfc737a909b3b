//! Engine errors: each says what the caller asked that cannot be done, and why.

use super::quote::quote_path;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {kind} id {id:?}: {reason}")]
    InvalidId { kind: &'static str, id: String, reason: String },
    #[error("invalid {what} path {}: {reason}", quote_path(.path))]
    InvalidPath { what: &'static str, path: PathBuf, reason: String },
    /// The request's own words say what is wrong: the gRPC code already says "invalid argument".
    #[error("{0}")]
    InvalidArgument(String),
    #[error("volume {0} does not exist")]
    VolumeNotFound(String),
    #[error("snapshot {0} does not exist")]
    SnapshotNotFound(String),
    #[error("a {kind} volume needs at least {} here, more than the limit of {}", size(*.needed), size(*.limit))]
    SizeOutOfRange { kind: &'static str, needed: u64, limit: u64 },
    #[error("{} requested, but the source needs at least {}", size(*.requested), size(*.needed))]
    CapacityBelowSource { requested: u64, needed: u64 },
    #[error("volume {id} already exists with different arguments: {reason}")]
    AlreadyExists { id: String, reason: String },
    #[error(
        "volume {id} is staged by strata-flex at {}: pods of a FlexVolume PV use it; a CSI pod can use it \
         once they are gone (`strata-csi inspect {id}` shows its mounts)",
        path.display()
    )]
    StagedByFlex { id: String, path: PathBuf },
    #[error("volume {id} is busy: another operation on it is in progress")]
    Busy { id: String },
    #[error("volume {id} is busy: {doing}; retry when the copy is done")]
    CopyBusy { id: String, doing: String },
    #[error("{what} is being copied in the background: {progress}; the copy goes on, retry later")]
    Copying { what: String, progress: String },
    #[error("the copy that made {what} failed ({message}); what it made is removed, and the next try starts again")]
    CopyFailed { what: String, cause: super::cause::Cause, message: String },
    #[error("volume {id}: {reason}")]
    FailedPrecondition { id: String, reason: String },
    #[error("volume {id}: {reason}")]
    WrongKey { id: String, reason: String },
    #[error(
        "not enough {pool}: {} requested, {} available ({} promised to volumes and not yet written; \
         overcommit ratio {})",
        size(*.requested), size(*.available), size(*.promised), f64::from(*.permille) / 1000.0
    )]
    OutOfCapacity { pool: String, requested: u64, available: u64, promised: u64, permille: u32 },
    #[error("{what}: {source}")]
    Exhausted { what: String, source: Box<Error> },
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("volume {id} is quarantined: {reason}; see `strata-csi repair`")]
    Quarantined { id: String, reason: String },
    #[error("volume record {path}: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error(
        "the data root {} is held by another strata-csi serve (pid {}, listening at {}): one server per \
         root; stop that one first, or give this one a root of its own",
        root.display(), holder.pid, holder.endpoint
    )]
    RootHeld { root: PathBuf, holder: super::holder::Holder },
    #[error(
        "the data root {} belongs to node {recorded:?} (its volume ids name that node), not to {asked:?}: \
         start with --node-id {recorded}, or give its volumes to {asked} deliberately with --rename-node",
        root.display()
    )]
    NodeMismatch { root: PathBuf, recorded: String, asked: String },
    #[error(transparent)]
    Backend(#[from] crate::backend::Error),
}

/// A size in a message: readable, with the exact byte count beside it (`1.5Gi (1610612736 bytes)`).
fn size(bytes: u64) -> String {
    crate::quantity::with_bytes(bytes)
}

impl From<crate::sys::Error> for Error {
    fn from(e: crate::sys::Error) -> Error {
        Error::Backend(crate::backend::Error::Host(e))
    }
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    pub(crate) fn precondition(id: &str, reason: impl Into<String>) -> Error {
        Error::FailedPrecondition { id: id.to_owned(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_path_is_shown_bounded_and_escaped() {
        let path = PathBuf::from(format!("/var/lib/kubelet/{}\n", "p".repeat(100_000)));
        let msg =
            Error::InvalidPath { what: "target", path, reason: "is not under an allowed prefix".into() }.to_string();
        assert!(msg.len() < 400, "{} bytes", msg.len());
        assert!(msg.starts_with("invalid target path \"/var/lib/kubelet/ppp") && msg.contains("\"…: is not"), "{msg}");
        let short = Error::InvalidPath { what: "staging", path: "/a\tb".into(), reason: "r".into() };
        assert_eq!(short.to_string(), r#"invalid staging path "/a\tb": r"#);
    }
}
