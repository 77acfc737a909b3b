//! The one errno type above the syscall wrappers, and the one conversion into it from nix,
//! rustix and `std::io::Error`.

/// An OS error number: the one type for errnos above the syscall wrappers.
pub use nix::errno::Errno;

/// Anything an errno comes from: nix's and rustix's errnos and `std::io::Error`.
pub trait ToErrno {
    fn to_errno(self) -> Errno;
}

impl ToErrno for Errno {
    fn to_errno(self) -> Errno {
        self
    }
}

impl ToErrno for rustix::io::Errno {
    fn to_errno(self) -> Errno {
        Errno::from_raw(self.raw_os_error())
    }
}

impl ToErrno for std::io::Error {
    /// The OS error number; an error std made without one gets the errno of its kind (EIO when
    /// the kind has none).
    fn to_errno(self) -> Errno {
        use std::io::ErrorKind;
        if let Some(raw) = self.raw_os_error() {
            return Errno::from_raw(raw);
        }
        match self.kind() {
            ErrorKind::NotFound => Errno::ENOENT,
            ErrorKind::PermissionDenied => Errno::EACCES,
            ErrorKind::AlreadyExists => Errno::EEXIST,
            ErrorKind::InvalidInput | ErrorKind::InvalidData => Errno::EINVAL,
            ErrorKind::OutOfMemory => Errno::ENOMEM,
            ErrorKind::Interrupted => Errno::EINTR,
            ErrorKind::WouldBlock => Errno::EAGAIN,
            _ => Errno::EIO,
        }
    }
}
