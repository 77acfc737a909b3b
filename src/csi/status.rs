//! The one place where engine errors become gRPC statuses, with the codes the CSI spec asks for.

use crate::backend::Error as BackendError;
use crate::engine::Error;
use crate::sys::Error as HostError;
use tonic::{Code, Status};

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(code_of(&e), e.to_string())
    }
}

/// The gRPC code of an engine error.
fn code_of(e: &Error) -> Code {
    match e {
        Error::InvalidId { .. } | Error::InvalidPath { .. } | Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::VolumeNotFound(_) | Error::SnapshotNotFound(_) => Code::NotFound,
        Error::CapacityBelowSource { .. } | Error::SizeOutOfRange { .. } => Code::OutOfRange,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::Busy { .. } => Code::Aborted,
        Error::FailedPrecondition { .. } => Code::FailedPrecondition,
        Error::OutOfCapacity { .. } => Code::ResourceExhausted,
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
        | BackendError::MountInside { .. }
        | BackendError::Missing { .. }
        | BackendError::NotStagedHere(_) => Code::FailedPrecondition,
        BackendError::Host(HostError::ToolSpawn { .. }) => Code::FailedPrecondition,
        BackendError::Host(_) | BackendError::Io { .. } => Code::Internal,
    }
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
        let full = Error::OutOfCapacity { requested: 2, available: 1 };
        assert_eq!(code(full), Code::ResourceExhausted);
        assert_eq!(code(Error::precondition("v", "r")), Code::FailedPrecondition);
        let path = Error::InvalidPath { what: "target", path: PathBuf::from("/x"), reason: "r".into() };
        assert_eq!(code(path), Code::InvalidArgument);
        let block = Error::Backend(BackendError::BlockUnsupported);
        assert_eq!(code(block), Code::InvalidArgument);
        let io = Error::Io { what: "read", path: PathBuf::from("/x"), source: std::io::Error::other("boom") };
        assert_eq!(code(io), Code::Internal);
    }

    #[test]
    fn the_message_is_the_engine_message() {
        let st = Status::from(Error::VolumeNotFound("pvc-1".into()));
        assert_eq!(st.message(), "volume pvc-1 does not exist");
    }
}
