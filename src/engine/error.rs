//! Engine errors: each says what the caller asked that cannot be done, and why.

use super::quote::quote_path;
use crate::sys::{Action, Errno, Error as HostError};
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
    /// The intent journal (`<root>/journal`) cannot be read or written as it must.
    #[error("intent journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    /// A call on the polling thread that may take long ([`super::quick`]); never answered.
    #[error("this call may take long; it runs again on a blocking thread")]
    NotQuick,
    /// Key material could not be kept in locked memory.
    #[error("keep a key in locked memory: {0}")]
    KeyMemory(crate::sys::locked::LockError),
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

/// What kind of failure an error is, decided here once for every layer below: each front-end
/// maps classes to its own codes and never looks at an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The request is wrong (an id, a path, a parameter, an option the kernel refuses); the
    /// same request fails again.
    Invalid,
    /// The volume or snapshot named does not exist.
    NotFound,
    /// A size that cannot be given.
    OutOfRange,
    /// It exists already with other arguments, or another front-end holds it.
    Exists,
    /// Busy for now (another operation, a copy, a device held open): the retry may succeed.
    Busy,
    /// Something has to change first (a mount still in use, a missing tool, a quarantined
    /// volume, a root held by another server).
    Precondition,
    /// The caller may not (a wrong encryption key).
    Permission,
    /// A resource ran out: space, quota, open files, memory (see [`Error::resource`]).
    Exhausted,
    /// A fault of the host or of strata.
    Internal,
}

impl Error {
    /// This error's class: the one place where engine, backend and host errors (and the errno
    /// a host error carries) are classified.
    pub fn class(&self) -> Class {
        if self.resource().is_some() {
            return Class::Exhausted;
        }
        match self {
            Error::InvalidId { .. } | Error::InvalidPath { .. } | Error::InvalidArgument(_) => Class::Invalid,
            Error::VolumeNotFound(_) | Error::SnapshotNotFound(_) => Class::NotFound,
            Error::CapacityBelowSource { .. } | Error::SizeOutOfRange { .. } => Class::OutOfRange,
            Error::AlreadyExists { .. } | Error::StagedByFlex { .. } => Class::Exists,
            Error::Busy { .. } | Error::CopyBusy { .. } | Error::Copying { .. } => Class::Busy,
            Error::CopyFailed { cause, .. } => match cause {
                super::record::Cause::Exhausted => Class::Exhausted,
                super::record::Cause::Interrupted => Class::Busy,
                super::record::Cause::Failed => Class::Internal,
            },
            Error::FailedPrecondition { .. }
            | Error::Quarantined { .. }
            | Error::RootHeld { .. }
            | Error::NodeMismatch { .. } => Class::Precondition,
            Error::WrongKey { .. } => Class::Permission,
            Error::OutOfCapacity { .. } | Error::Exhausted { .. } => Class::Exhausted,
            Error::Unsupported(_) => Class::Invalid,
            Error::Record { .. } | Error::Journal { .. } | Error::KeyMemory(_) | Error::NotQuick => Class::Internal,
            Error::Backend(b) => backend_class(b),
        }
    }

    /// For `map_err`: the step `what` on `path` failed; a host error of the one sys shape
    /// ([`crate::sys::Error::io`]), so it is classified like every other.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::from(HostError::io(what, path, source))
    }

    pub(crate) fn precondition(id: &str, reason: impl Into<String>) -> Error {
        Error::FailedPrecondition { id: id.to_owned(), reason: reason.into() }
    }
}

fn backend_class(e: &crate::backend::Error) -> Class {
    use crate::backend::Error as BackendError;
    match e {
        BackendError::BlockUnsupported | BackendError::Unsupported(_) => Class::Invalid,
        BackendError::WrongFilesystem { .. }
        | BackendError::NotBtrfs { .. }
        | BackendError::Missing { .. }
        | BackendError::NotStagedHere(_) => Class::Precondition,
        BackendError::Host(h) => host_class(h),
    }
}

fn host_class(e: &HostError) -> Class {
    match e {
        // A tool strata needs is missing or cannot run on this node: the node must change.
        HostError::NotInstalled { .. } | HostError::Os { action: Action::Start { .. }, .. } => Class::Precondition,
        HostError::Os { action, errno, .. } => errno_class(action, *errno),
        HostError::Tree(t) => tree_class(t),
        HostError::Tool { .. } | HostError::Place { .. } => Class::Internal,
    }
}

/// The class of a host call's errno, by what the call was doing.
fn errno_class(action: &Action, errno: Errno) -> Class {
    match (action, errno) {
        // A process still uses the mount: the CO retries once the pod's containers are gone.
        (Action::Unmount, Errno::EBUSY) => Class::Precondition,
        // A device another process holds open exclusively for now (a mkfs that outlived a
        // killed server, say): the retry mounts it.
        (Action::Mount { .. }, Errno::EBUSY) => Class::Busy,
        // A mount the kernel refused as invalid: an option or flag the request asked for that
        // this kernel or filesystem does not take. The retry with the same arguments fails again.
        (Action::Mount { .. } | Action::Bind { .. } | Action::Remount, Errno::EINVAL) => Class::Invalid,
        _ => Class::Internal,
    }
}

/// A walk over a volume's contents: a mount inside it waits for its owner to unmount it; a tree
/// that kept changing while strata copied it is worth a retry.
fn tree_class(e: &crate::sys::tree::Error) -> Class {
    use crate::sys::tree::Error as TreeError;
    match e {
        TreeError::MountInside { .. } => Class::Precondition,
        TreeError::Changed { .. } | TreeError::Cancelled { .. } => Class::Busy,
        TreeError::Io { .. } | TreeError::NotADirectory { .. } | TreeError::DestinationExists { .. } => Class::Internal,
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
