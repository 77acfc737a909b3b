//! Removal of a tree: first a walk that refuses if anything inside is the root of a mount (a
//! filesystem, or a bind of one), so a refused removal has removed nothing; then a walk that
//! unlinks as it goes and removes each directory once it is empty.

use super::error::{Fail, Result};
use super::meta::Type;
use super::walk::{At, Leave, Step, Visitor};
use rustix::fs::AtFlags;
use rustix::io::Errno;
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Refuses (`MountInside`) if anything below the directory `root` is the root of a mount.
pub(super) fn check_no_mounts(root: OwnedFd, shown: &Path) -> Result<OwnedFd> {
    super::walk::walk(root, shown, &mut Check)
}

/// Removes everything below the directory `root`; `last`, an entry of `root` itself, is left
/// for the caller to remove after the rest.
pub(super) fn remove_below(root: OwnedFd, shown: &Path, last: Option<&CStr>) -> Result<OwnedFd> {
    super::walk::walk(root, shown, &mut Remove { last })
}

struct Check;

impl Visitor for Check {
    fn entry(&mut self, at: &At<'_>, root_dev: u64) -> std::result::Result<Step, Fail> {
        if at.meta.is_mount(root_dev) {
            return Err(Fail::Mount);
        }
        Ok(if at.meta.kind() == Type::Dir { Step::Descend } else { Step::Next })
    }
}

struct Remove<'a> {
    last: Option<&'a CStr>,
}

impl Visitor for Remove<'_> {
    fn wants_stat(_file_type: rustix::fs::FileType) -> bool {
        false
    }

    fn entry(&mut self, at: &At<'_>, _root_dev: u64) -> std::result::Result<Step, Fail> {
        if at.depth == 1 && self.last == Some(at.name) {
            return Ok(Step::Next);
        }
        if at.meta.kind() == Type::Dir {
            return Ok(Step::Descend);
        }
        match rustix::fs::unlinkat(at.dir, at.name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(Step::Next),
            Err(Errno::ISDIR) => Ok(Step::Retry),
            Err(Errno::BUSY) => Err(Fail::Mount),
            Err(e) => Err(Fail::Io("remove", e)),
        }
    }

    fn leave(&mut self, at: &At<'_>, _dir: std::os::fd::BorrowedFd<'_>) -> std::result::Result<Leave, Fail> {
        match rustix::fs::unlinkat(at.dir, at.name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(Leave::Done),
            Err(Errno::NOTEMPTY) => Ok(Leave::Again),
            Err(Errno::BUSY) => Err(Fail::Mount),
            Err(e) => Err(Fail::Io("remove", e)),
        }
    }
}
