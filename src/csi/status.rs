//! The one place where engine errors become gRPC statuses, with the codes the CSI spec asks for.

use crate::backend::Error as BackendError;
use crate::engine::Error;
use crate::engine::record::Cause;
use crate::sys::Error as HostError;
use tonic::{Code, Status};

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(code_of(&e), e.to_string())
    }
}

/// The gRPC code of an engine error. A resource that ran out (see [`Error::resource`]) is
/// RESOURCE_EXHAUSTED wherever in the error it shows.
fn code_of(e: &Error) -> Code {
    if e.resource().is_some() {
        return Code::ResourceExhausted;
    }
    match e {
        Error::InvalidId { .. } | Error::InvalidPath { .. } | Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::VolumeNotFound(_) | Error::SnapshotNotFound(_) => Code::NotFound,
        Error::CapacityBelowSource { .. } | Error::SizeOutOfRange { .. } => Code::OutOfRange,
        Error::AlreadyExists { .. } | Error::StagedByFlex { .. } => Code::AlreadyExists,
        Error::Busy { .. } | Error::CopyBusy { .. } | Error::Copying { .. } => Code::Aborted,
        Error::CopyFailed { cause, .. } => match cause {
            Cause::Exhausted => Code::ResourceExhausted,
            Cause::Interrupted => Code::Aborted,
            Cause::Failed => Code::Internal,
        },
        Error::FailedPrecondition { .. }
        | Error::Quarantined { .. }
        | Error::RootHeld { .. }
        | Error::NodeMismatch { .. } => Code::FailedPrecondition,
        Error::WrongKey { .. } => Code::PermissionDenied,
        Error::OutOfCapacity { .. } | Error::Exhausted { .. } => Code::ResourceExhausted,
        Error::Unsupported(_) => Code::InvalidArgument,
        Error::Record { .. } | Error::Io { .. } => Code::Internal,
        Error::Backend(b) => backend_code(b),
    }
}

fn backend_code(e: &BackendError) -> Code {
    match e {
        BackendError::BlockUnsupported | BackendError::Unsupported(_) => Code::InvalidArgument,
        BackendError::WrongFilesystem { .. }
        | BackendError::NotBtrfs { .. }
        | BackendError::Missing { .. }
        | BackendError::NotStagedHere(_) => Code::FailedPrecondition,
        BackendError::Host(HostError::ToolSpawn { .. }) => Code::FailedPrecondition,
        BackendError::Host(HostError::Tree(t)) => tree_code(t),
        // A process still uses the mount: the CO retries once the pod's containers are gone.
        BackendError::Host(HostError::Unmount { errno: nix::errno::Errno::EBUSY, .. }) => Code::FailedPrecondition,
        // A device another process holds open exclusively for now (a mkfs that outlived a killed
        // server, say): the retry mounts it.
        BackendError::Host(HostError::Mount { errno: nix::errno::Errno::EBUSY, .. }) => Code::Aborted,
        BackendError::Host(h) if refused_mount(h) => Code::InvalidArgument,
        BackendError::Host(_) | BackendError::Io { .. } => Code::Internal,
    }
}

/// A walk over a volume's contents: a mount inside it waits for its owner to unmount it; a tree
/// that kept changing while strata copied it is worth a retry.
fn tree_code(e: &crate::sys::tree::Error) -> Code {
    use crate::sys::tree::Error as TreeError;
    match e {
        TreeError::MountInside { .. } => Code::FailedPrecondition,
        TreeError::Changed { .. } | TreeError::Cancelled { .. } => Code::Aborted,
        TreeError::Io { .. } | TreeError::NotADirectory { .. } | TreeError::DestinationExists { .. } => Code::Internal,
    }
}

/// A mount the kernel refused as invalid (EINVAL): an option or flag the request asked for that
/// this kernel or filesystem does not take. The retry with the same arguments fails again.
fn refused_mount(e: &HostError) -> bool {
    use nix::errno::Errno::EINVAL;
    matches!(
        e,
        HostError::Mount { errno: EINVAL, .. }
            | HostError::Bind { errno: EINVAL, .. }
            | HostError::Remount { errno: EINVAL, .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn code(e: Error) -> Code {
        Status::from(e).code()
    }

    #[test]
    fn engine_errors_get_the_spec_codes() {
        assert_eq!(code(Error::VolumeNotFound("v".into())), Code::NotFound);
        assert_eq!(code(Error::Busy { id: "v".into() }), Code::Aborted);
        let exists = Error::AlreadyExists { id: "v".into(), reason: "r".into() };
        assert_eq!(code(exists), Code::AlreadyExists);
        let full =
            Error::OutOfCapacity { pool: "memory".into(), requested: 2, available: 1, promised: 0, permille: 1000 };
        assert_eq!(code(full), Code::ResourceExhausted);
        assert_eq!(code(Error::precondition("v", "r")), Code::FailedPrecondition);
        let path = Error::InvalidPath { what: "target", path: PathBuf::from("/x"), reason: "r".into() };
        assert_eq!(code(path), Code::InvalidArgument);
        let block = Error::Backend(BackendError::BlockUnsupported);
        assert_eq!(code(block), Code::InvalidArgument);
        let io = Error::Io { what: "read", path: PathBuf::from("/x"), source: std::io::Error::other("boom") };
        assert_eq!(code(io), Code::Internal);
        let unmount = |errno| Error::Backend(BackendError::Host(HostError::Unmount { target: "/t".into(), errno }));
        assert_eq!(code(unmount(nix::errno::Errno::EBUSY)), Code::FailedPrecondition, "in use: retried later");
        assert_eq!(code(unmount(nix::errno::Errno::EIO)), Code::Internal);
    }

    #[test]
    fn a_mount_the_kernel_refuses_as_invalid_is_invalid_argument() {
        use nix::errno::Errno;
        let mount = |errno| {
            let (source_path, target) = (PathBuf::from("/dev/loop0"), PathBuf::from("/s"));
            Error::Backend(BackendError::Host(HostError::Mount { source_path, target, fstype: "ext4".into(), errno }))
        };
        assert_eq!(code(mount(Errno::EINVAL)), Code::InvalidArgument);
        assert_eq!(code(mount(Errno::EIO)), Code::Internal);
        assert_eq!(code(mount(Errno::EBUSY)), Code::Aborted, "a device held for now: retried");
        let bind = HostError::Bind { source_path: "/a".into(), target: "/b".into(), errno: Errno::EINVAL };
        assert_eq!(code(Error::Backend(BackendError::Host(bind))), Code::InvalidArgument);
        let remount = HostError::Remount { target: "/b".into(), errno: Errno::EINVAL };
        assert_eq!(code(Error::Backend(BackendError::Host(remount))), Code::InvalidArgument);
        let unmount = HostError::Unmount { target: "/b".into(), errno: Errno::EINVAL };
        assert_eq!(code(Error::Backend(BackendError::Host(unmount))), Code::Internal);
    }

    #[test]
    fn exhaustion_anywhere_is_resource_exhausted() {
        use nix::errno::Errno;
        let enospc = || std::io::Error::from_raw_os_error(libc::ENOSPC);
        let record = Error::Io { what: "write node state", path: PathBuf::from("/r/n.json"), source: enospc() };
        assert_eq!(code(record), Code::ResourceExhausted);
        let image = Error::Backend(BackendError::Io { what: "size", path: PathBuf::from("/r/i"), source: enospc() });
        assert_eq!(code(image), Code::ResourceExhausted);
        for errno in [Errno::ENOMEM, Errno::EMFILE, Errno::ENFILE, Errno::EDQUOT] {
            let bind = HostError::Bind { source_path: "/a".into(), target: "/b".into(), errno };
            assert_eq!(code(Error::Backend(BackendError::Host(bind))), Code::ResourceExhausted, "{errno}");
        }
        let copy = HostError::Copy { from: "/a".into(), to: "/b".into(), source: enospc() };
        assert_eq!(code(Error::from(copy)), Code::ResourceExhausted);
    }

    #[test]
    fn the_message_is_the_engine_message() {
        let st = Status::from(Error::VolumeNotFound("pvc-1".into()));
        assert_eq!(st.message(), "volume pvc-1 does not exist");
    }
}
