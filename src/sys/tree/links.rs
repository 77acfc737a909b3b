//! Hard links in a copy: the first copy of a file with several links is remembered by its file
//! handle (`name_to_handle_at`, a few bytes, no descriptor kept open), and every later link to the
//! same source file becomes a link to that copy. A file's entry is dropped once all its links
//! were seen, so memory follows the files with links still to come.

use super::error::Fail;
use super::meta::Meta;
use rustix::fs::AtFlags;
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::CStr;
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

/// A copy's file, by handle.
#[derive(Debug)]
struct Copy {
    kind: i32,
    handle: Box<[u8]>,
    /// Links of the source file not seen yet.
    left: u32,
}

/// The copies of files with more than one link, by the source file's identity.
#[derive(Debug, Default)]
pub(super) struct Links {
    copies: HashMap<(u64, u64), Copy>,
}

impl Links {
    /// Links `name` in `dir` to the copy already made of the source file `meta`; false when
    /// there is none (or it cannot be reached: the caller copies the file instead).
    pub(super) fn link(
        &mut self,
        meta: &Meta,
        mount: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        name: &CStr,
    ) -> Result<bool, Fail> {
        let Some(copy) = self.copies.get_mut(&meta.id()) else { return Ok(false) };
        let Ok(file) = open_handle(mount, copy) else { return Ok(false) };
        match rustix::fs::linkat(&file, c"", dir, name, AtFlags::EMPTY_PATH) {
            Ok(()) => {}
            Err(Errno::PERM | Errno::NOENT | Errno::MLINK) => return Ok(false),
            Err(e) => return Err(Fail::Io("link", e)),
        }
        copy.left = copy.left.saturating_sub(1);
        if copy.left == 0 {
            self.copies.remove(&meta.id());
        }
        Ok(true)
    }

    /// Remembers `copy`, the first copy of the source file `meta`.
    pub(super) fn remember(&mut self, meta: &Meta, copy: BorrowedFd<'_>) {
        if let Ok((kind, handle)) = handle_of(copy) {
            self.copies.insert(meta.id(), Copy { kind, handle, left: meta.nlink.saturating_sub(1) });
        }
    }
}

fn handle_of(fd: BorrowedFd<'_>) -> Result<(i32, Box<[u8]>), Errno> {
    let mut raw = RawHandle { bytes: HANDLE_MAX as u32, kind: 0, data: [0; HANDLE_MAX] };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a `struct file_handle` with room for `bytes` handle bytes, `mount_id` a
    // live local, the path an empty C string: with AT_EMPTY_PATH the kernel names `fd` itself.
    let rc = unsafe {
        libc::name_to_handle_at(fd.as_raw_fd(), c"".as_ptr(), (&raw mut raw).cast(), &mut mount_id, libc::AT_EMPTY_PATH)
    };
    if rc < 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    let len = (raw.bytes as usize).min(HANDLE_MAX);
    Ok((raw.kind, raw.data[..len].into()))
}

fn open_handle(mount: BorrowedFd<'_>, copy: &Copy) -> Result<OwnedFd, Errno> {
    let mut raw = RawHandle { bytes: copy.handle.len() as u32, kind: copy.kind, data: [0; HANDLE_MAX] };
    raw.data[..copy.handle.len()].copy_from_slice(&copy.handle);
    // SAFETY: `raw` is a `struct file_handle` holding `bytes` valid handle bytes; the kernel
    // only reads it.
    let fd =
        unsafe { libc::open_by_handle_at(mount.as_raw_fd(), (&raw mut raw).cast(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
    }
    // SAFETY: open_by_handle_at returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
