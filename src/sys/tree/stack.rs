//! A stack of open directories as deep as a tree goes, with a bounded number of descriptors.
//!
//! Only the root and the deepest [`OPEN_DIRS`] levels hold a descriptor. A level whose
//! descriptor is closed keeps the directory's file handle instead, and is opened again by it
//! when the walk climbs back (where the kernel does not open handles, as `..` of the level
//! below); either way it is accepted only if it is the same directory (device and inode) as
//! before: a directory moved meanwhile is a tree that changed, never a way out of it.

use super::error::Fail;
use super::handle::Handle;
use rustix::fs::{Mode, OFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// How many levels below the root keep their descriptor open.
pub(super) const OPEN_DIRS: usize = 32;

/// A file's identity: device and inode.
pub(super) type Identity = (u64, u64);

/// A level between the root and the top: open, or closed with its handle kept (if the
/// filesystem gave one).
#[derive(Debug)]
enum Level {
    Open(OwnedFd),
    Closed(Option<Handle>),
}

/// An open level.
#[derive(Debug)]
struct Open {
    fd: OwnedFd,
    id: Identity,
}

/// The open directories of one walk (or of a copy's destination), root first.
#[derive(Debug)]
pub(super) struct DirStack {
    root: OwnedFd,
    /// The levels between the root and the top, the deeper last.
    between: Vec<(Level, Identity)>,
    /// The deepest level, when the walk is below the root.
    top: Option<Open>,
    /// The first level of `between` that still holds its descriptor.
    open_from: usize,
}

impl DirStack {
    pub(super) fn new(root: OwnedFd) -> DirStack {
        DirStack { root, between: Vec::new(), top: None, open_from: 0 }
    }

    /// How many levels hold a descriptor.
    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        let between = self.between.iter().filter(|l| matches!(l.0, Level::Open(_))).count();
        1 + usize::from(self.top.is_some()) + between
    }

    /// The deepest directory's descriptor.
    pub(super) fn top(&self) -> BorrowedFd<'_> {
        self.top.as_ref().map_or(self.root.as_fd(), |t| t.fd.as_fd())
    }

    pub(super) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The root's descriptor.
    pub(super) fn into_root(self) -> OwnedFd {
        self.root
    }

    /// Goes one level down into `fd`, closing the descriptor of the level that leaves the
    /// window; returns that level's depth (1 for the root's child), if one left.
    pub(super) fn push(&mut self, fd: OwnedFd, id: Identity) -> Option<usize> {
        if let Some(Open { fd, id }) = self.top.replace(Open { fd, id }) {
            self.between.push((Level::Open(fd), id));
        }
        if self.between.len() - self.open_from < OPEN_DIRS {
            return None;
        }
        let level = &mut self.between[self.open_from].0;
        if let Level::Open(fd) = level {
            *level = Level::Closed(Handle::of(fd.as_fd()).ok());
        }
        self.open_from += 1;
        Some(self.open_from)
    }

    /// Leaves the deepest level, returning its descriptor, after making sure the new top is
    /// open (checked to be the same directory as before).
    pub(super) fn pop(&mut self) -> Result<OwnedFd, Fail> {
        let Some(left) = self.top.take() else {
            return Err(Fail::Changed("the walk climbed above its top directory"));
        };
        let Some((level, id)) = self.between.pop() else { return Ok(left.fd) };
        let fd = match level {
            Level::Open(fd) => fd,
            Level::Closed(handle) => {
                self.open_from = self.between.len();
                self.reopen(handle, &left.fd, id)?
            }
        };
        self.open_from = self.open_from.min(self.between.len());
        self.top = Some(Open { fd, id });
        Ok(left.fd)
    }

    /// Opens a closed level again: by its handle, else as `..` of the level below it (`below`).
    fn reopen(&self, handle: Option<Handle>, below: &OwnedFd, id: Identity) -> Result<OwnedFd, Fail> {
        let by_handle = handle.and_then(|h| h.open(self.root.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY).ok());
        let fd = match by_handle {
            Some(fd) => fd,
            None => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                rustix::fs::openat(below, "..", flags, Mode::empty()).map_err(Fail::io("open .. of"))?
            }
        };
        if super::meta::Meta::of_fd(&fd)?.id() != id {
            return Err(Fail::Changed("a directory was moved while strata was inside it"));
        }
        Ok(fd)
    }
}
