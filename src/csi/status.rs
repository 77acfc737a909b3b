//! The one place where engine errors become gRPC statuses, with the codes the CSI spec asks for.

use crate::engine::{Class, Error};
use tonic::{Code, Status};

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(code_of(&e), e.to_string())
    }
}

/// The gRPC code of an engine error: its class (see [`Error::class`]) in the CSI spec's words.
fn code_of(e: &Error) -> Code {
    match e.class() {
        Class::Invalid => Code::InvalidArgument,
        Class::NotFound => Code::NotFound,
        Class::OutOfRange => Code::OutOfRange,
        Class::Exists => Code::AlreadyExists,
        Class::Busy => Code::Aborted,
        Class::Precondition => Code::FailedPrecondition,
        Class::Permission => Code::PermissionDenied,
        Class::Exhausted => Code::ResourceExhausted,
        Class::Internal => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Error as BackendError;
    use crate::sys::{Action, Errno, Error as HostError};
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
        let io = Error::io("read", "/x")(std::io::Error::other("boom"));
        assert_eq!(code(io), Code::Internal);
        let unmount = |errno| Error::Backend(BackendError::Host(HostError::at(Action::Unmount, "/t", errno)));
        assert_eq!(code(unmount(Errno::EBUSY)), Code::FailedPrecondition, "in use: retried later");
        assert_eq!(code(unmount(Errno::EIO)), Code::Internal);
    }

    #[test]
    fn a_mount_the_kernel_refuses_as_invalid_is_invalid_argument() {
        let mount = |errno| {
            let action = Action::Mount { source: PathBuf::from("/dev/loop0"), fstype: "ext4".into() };
            Error::Backend(BackendError::Host(HostError::at(action, "/s", errno)))
        };
        assert_eq!(code(mount(Errno::EINVAL)), Code::InvalidArgument);
        assert_eq!(code(mount(Errno::EIO)), Code::Internal);
        assert_eq!(code(mount(Errno::EBUSY)), Code::Aborted, "a device held for now: retried");
        let bind = HostError::at(Action::Bind { source: "/a".into() }, "/b", Errno::EINVAL);
        assert_eq!(code(Error::Backend(BackendError::Host(bind))), Code::InvalidArgument);
        let remount = HostError::at(Action::Remount, "/b", Errno::EINVAL);
        assert_eq!(code(Error::Backend(BackendError::Host(remount))), Code::InvalidArgument);
        let unmount = HostError::at(Action::Unmount, "/b", Errno::EINVAL);
        assert_eq!(code(Error::Backend(BackendError::Host(unmount))), Code::Internal);
    }

    #[test]
    fn exhaustion_anywhere_is_resource_exhausted() {
        let enospc = || std::io::Error::from_raw_os_error(libc::ENOSPC);
        let record = Error::io("write node state", "/r/n.json")(enospc());
        assert_eq!(code(record), Code::ResourceExhausted);
        let image = Error::Backend(BackendError::io("size", "/r/i")(enospc()));
        assert_eq!(code(image), Code::ResourceExhausted);
        for errno in [Errno::ENOMEM, Errno::EMFILE, Errno::ENFILE, Errno::EDQUOT] {
            let bind = HostError::at(Action::Bind { source: "/a".into() }, "/b", errno);
            assert_eq!(code(Error::Backend(BackendError::Host(bind))), Code::ResourceExhausted, "{errno}");
        }
        let copy = HostError::io("copy /a to", "/b", enospc());
        assert_eq!(code(Error::from(copy)), Code::ResourceExhausted);
    }

    #[test]
    fn the_message_is_the_engine_message() {
        let st = Status::from(Error::VolumeNotFound("pvc-1".into()));
        assert_eq!(st.message(), "volume pvc-1 does not exist");
    }
}
