//! FIFREEZE / FITHAW on a mount point, so a block-level copy of its device is consistent.

use super::Place;
use super::{Error, Result};
use std::os::fd::AsRawFd;

/// `_IOWR('X', 119, int)` from `<linux/fs.h>`.
pub const FIFREEZE: libc::c_ulong = 0xC004_5877;
/// `_IOWR('X', 120, int)` from `<linux/fs.h>`.
pub const FITHAW: libc::c_ulong = 0xC004_5878;

/// Runs FIFREEZE or FITHAW on the filesystem mounted at `mountpoint` (opened without following a
/// symlink there).
pub fn ioctl(mountpoint: &Place, request: libc::c_ulong, what: &'static str) -> Result<()> {
    let err = |source: std::io::Error| Error::io(what, mountpoint.path(), source);
    let dir = mountpoint.open_dir().map_err(err)?;
    // SAFETY: `dir` is an open descriptor for the whole call; both requests take an int argument
    // that the kernel ignores, passed by value.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), request, 0) };
    if rc < 0 { Err(err(std::io::Error::last_os_error())) } else { Ok(()) }
}
