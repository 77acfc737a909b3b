//! FIFREEZE / FITHAW on a mount point, so a block-level copy of its device is consistent.

use super::{Error, Result};
use std::os::fd::AsRawFd;
use std::path::Path;

/// `_IOWR('X', 119, int)` from `<linux/fs.h>`.
pub const FIFREEZE: libc::c_ulong = 0xC004_5877;
/// `_IOWR('X', 120, int)` from `<linux/fs.h>`.
pub const FITHAW: libc::c_ulong = 0xC004_5878;

/// Runs FIFREEZE or FITHAW on the filesystem mounted at `mountpoint`.
pub fn ioctl(mountpoint: &Path, request: libc::c_ulong, what: &'static str) -> Result<()> {
    let err = |source| Error::Io { what, path: mountpoint.to_owned(), source };
    let dir = std::fs::File::open(mountpoint).map_err(err)?;
    // SAFETY: `dir` is an open descriptor for the whole call; both requests take an int argument
    // that the kernel ignores, passed by value.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), request, 0) };
    if rc < 0 { Err(err(std::io::Error::last_os_error())) } else { Ok(()) }
}
