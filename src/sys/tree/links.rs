//! Hard links in a copy: the first copy of a file with several links is remembered by its file
//! handle (a few bytes, no descriptor kept open), and every later link to the same source file
//! becomes a link to that copy. A file's entry is dropped once all its links were seen, so
//! memory follows the files with links still to come.

use super::error::Fail;
use super::handle::Handle;
use super::meta::Meta;
use rustix::fs::AtFlags;
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::BorrowedFd;

/// A copy's file, by handle.
#[derive(Debug)]
struct Copy {
    handle: Handle,
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
        let Ok(file) = copy.handle.open(mount, libc::O_PATH) else { return Ok(false) };
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
        if let Ok(handle) = Handle::of(copy) {
            self.copies.insert(meta.id(), Copy { handle, left: meta.nlink.saturating_sub(1) });
        }
    }
}
