//! File handles (`name_to_handle_at`, `open_by_handle_at`): a few bytes that open the same
//! inode again later without a descriptor kept open and without a path. The tree engine keeps
//! one per directory that lost its descriptor in a deep walk (climbing back by `..` costs the
//! kernel a walk up every ancestor inside a bind mount, so a deep tree would cost its depth
//! squared), and one per first copy of a file with several links.

use rustix::io::Errno;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The largest file handle Linux hands out (MAX_HANDLE_SZ).
const HANDLE_MAX: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct RawHandle {
    bytes: u32,
    kind: i32,
    data: [u8; HANDLE_MAX],
}

/// A file's handle, as its filesystem encodes it.
#[derive(Debug, Clone)]
pub(super) struct Handle {
    kind: i32,
    data: Box<[u8]>,
}

impl Handle {
    /// The handle of the open file `fd`.
    pub(super) fn of(fd: BorrowedFd<'_>) -> Result<Handle, Errno> {
        let bytes = u32::try_from(HANDLE_MAX).map_err(|_| Errno::OVERFLOW)?;
        let mut raw = RawHandle { bytes, kind: 0, data: [0; HANDLE_MAX] };
        let mut mount_id: libc::c_int = 0;
        // SAFETY: `raw` is a `struct file_handle` with room for `bytes` handle bytes, `mount_id`
        // a live local, the path an empty C string: with AT_EMPTY_PATH the kernel names `fd`.
        let rc = unsafe {
            libc::name_to_handle_at(
                fd.as_raw_fd(),
                c"".as_ptr(),
                (&raw mut raw).cast(),
                &mut mount_id,
                libc::AT_EMPTY_PATH,
            )
        };
        if rc < 0 {
            return Err(last_errno());
        }
        let len = (raw.bytes as usize).min(HANDLE_MAX);
        Ok(Handle { kind: raw.kind, data: raw.data[..len].into() })
    }

    /// Opens the file again with `flags` (`O_PATH`, `O_RDONLY | O_DIRECTORY`, ...); `mount` is
    /// any descriptor on its filesystem. Needs CAP_DAC_READ_SEARCH.
    pub(super) fn open(&self, mount: BorrowedFd<'_>, flags: libc::c_int) -> Result<OwnedFd, Errno> {
        let bytes = u32::try_from(self.data.len()).map_err(|_| Errno::OVERFLOW)?;
        let mut raw = RawHandle { bytes, kind: self.kind, data: [0; HANDLE_MAX] };
        raw.data[..self.data.len()].copy_from_slice(&self.data);
        // SAFETY: `raw` is a `struct file_handle` holding `bytes` valid handle bytes; the kernel
        // only reads it.
        let fd = unsafe { libc::open_by_handle_at(mount.as_raw_fd(), (&raw mut raw).cast(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: open_by_handle_at returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}
