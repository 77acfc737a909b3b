//! The tree engine: every walk over a volume's contents (copy, usage, the mount check before a
//! removal, removal) goes through one iterative walker over directory descriptors ([`walk`]).
//!
//! What a pod writes is hostile: it can swap any directory for a symlink while strata walks,
//! nest directories deeper than any stack, make millions of entries, sparse files of any size
//! and device nodes. So below the top directory (a path strata owns) nothing is reached by a
//! path string: every entry is opened or looked at relative to its directory's descriptor, by
//! one name, never following a symlink or crossing into another mount; the walk keeps its stack
//! on the heap with a bounded number of open descriptors; a copy takes data, not devices.

mod copy;
mod data;
mod error;
mod handle;
mod links;
mod meta;
mod progress;
mod remove;
mod stack;
mod usage;
mod walk;

#[cfg(test)]
mod tests;

pub use copy::CopyReport;
pub use data::Copied;
pub use error::{Error, Result};
pub use progress::{Progress, Reporter};
pub use usage::TreeUsage;

use error::Fail;
use meta::{Meta, Type};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Copies the tree of the directory `source` into `dest`, which is made (0700 until it gets
/// the source's mode) or must be an empty directory (a fresh mount point). Owners, modes,
/// times, extended attributes, symlinks, hard links, FIFOs and sockets are kept, file data is
/// shared or copied by extents; device nodes and what is mounted inside are left out (counted
/// in the report).
pub fn copy_tree(source: &Path, dest: &Path) -> Result<CopyReport> {
    copy_tree_with(source, dest, &Progress::default())
}

/// [`copy_tree`], counting the bytes it copies in `progress` and stopping (with
/// [`Error::Cancelled`], what it made left in place for the caller to remove) when it is
/// cancelled.
pub fn copy_tree_with(source: &Path, dest: &Path, progress: &Progress) -> Result<CopyReport> {
    let src = open_top(source, Top::MayBeMount)?.ok_or_else(|| io_at("open", source, Errno::NOENT))?;
    let dst = open_destination(dest)?;
    copy::copy(src, dst, source, progress)
}

/// Allocated bytes and inodes of the tree at `path`, staying on its filesystem.
pub fn measure(path: &Path) -> Result<TreeUsage> {
    let top = open_top(path, Top::MayBeMount)?.ok_or_else(|| io_at("open", path, Errno::NOENT))?;
    usage::measure(top, path)
}

/// Removes the tree at `path` (a file or symlink: just it), refusing before it removes anything
/// if `path` or anything inside it is the root of a mount. A missing tree is fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    remove(path, None)
}

/// [`remove_tree`] of the directory `path`, removing its entry `last` (a file) after all the
/// rest: a removal cut short leaves it.
pub fn remove_tree_last(path: &Path, last: &str) -> Result<()> {
    let last = CString::new(last).map_err(|_| io_at("remove", path, Errno::INVAL))?;
    remove(path, Some(&last))
}

/// Copies the file `source` into the new file `dest` (0600): shared extents where the
/// filesystem can, else its data extents; synced. Nothing is left at `dest` on failure.
pub fn copy_file(source: &Path, dest: &Path) -> Result<Copied> {
    copy_file_with(source, dest, &Progress::default())
}

/// [`copy_file`], counting the bytes it copies in `progress`; a cancelled copy removes `dest`.
pub fn copy_file_with(source: &Path, dest: &Path, progress: &Progress) -> Result<Copied> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let src = rustix::fs::open(source, flags, Mode::empty()).map_err(|e| io_at("open", source, e))?;
    let len = Meta::of_fd(&src).map_err(|f| walk::named(f, source.to_owned()))?.size;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dst = rustix::fs::open(dest, flags, Mode::from_raw_mode(0o600)).map_err(|e| io_at("create", dest, e))?;
    let copied = data::copy(src.as_fd(), dst.as_fd(), len, progress).and_then(|c| {
        rustix::fs::fsync(&dst).map_err(Fail::io("sync"))?;
        Ok(c)
    });
    copied.map_err(|f| {
        drop(dst);
        crate::undo::log("a failed copy: remove the file", std::fs::remove_file(dest));
        walk::named(f, dest.to_owned())
    })
}

/// Makes the new file `dest` (0600) share all of `source`'s extents (`FICLONE`), synced; false
/// (and nothing left at `dest`) where the filesystem cannot.
pub fn reflink_file(source: &Path, dest: &Path) -> Result<bool> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let src = rustix::fs::open(source, flags, Mode::empty()).map_err(|e| io_at("open", source, e))?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dst = rustix::fs::open(dest, flags, Mode::from_raw_mode(0o600)).map_err(|e| io_at("create", dest, e))?;
    let cloned = rustix::fs::ioctl_ficlone(&dst, &src).and_then(|()| rustix::fs::fsync(&dst));
    drop(dst);
    match cloned {
        Ok(()) => Ok(true),
        Err(e) => {
            crate::undo::log("a failed reflink: remove the file", std::fs::remove_file(dest));
            match e {
                Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::PERM => Ok(false),
                e => Err(io_at("clone", dest, e)),
            }
        }
    }
}

fn io_at(what: &'static str, path: &Path, errno: Errno) -> Error {
    Error::Io { what, path: path.to_owned(), errno }
}

/// The parent directory of `path` (strata's own) and `path`'s last component.
fn split(path: &Path) -> Result<(OwnedFd, CString)> {
    let name = path.file_name().ok_or_else(|| io_at("open", path, Errno::INVAL))?;
    let name = CString::new(name.as_bytes()).map_err(|_| io_at("open", path, Errno::INVAL))?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(parent, flags, Mode::empty()).map_err(|e| io_at("open", parent, e))?;
    Ok((fd, name))
}

/// Whether the top of a walk may be the root of a mount (a tmpfs volume's, copied or measured)
/// or must not (a tree to remove).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    MayBeMount,
    SameMount,
}

/// Opens the top directory of a walk: `path` is strata's own, its last component is opened
/// without following a symlink (and, for [`Top::SameMount`], without entering another mount).
/// `None` when it does not exist.
fn open_top(path: &Path, top: Top) -> Result<Option<OwnedFd>> {
    let (parent, name) = split(path)?;
    match open_below(&parent, &name, top) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::XDEV) => Err(Error::MountInside { path: path.to_owned(), mount: path.to_owned() }),
        Err(e) => Err(io_at("open", path, e)),
    }
}

fn open_below(parent: &OwnedFd, name: &CStr, top: Top) -> std::result::Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
    if top == Top::SameMount {
        resolve |= ResolveFlags::NO_XDEV;
    }
    rustix::fs::openat2(parent, name, flags, Mode::empty(), resolve)
}

/// Makes the directory `dest` (0700), or opens it when it exists and is empty.
fn open_destination(dest: &Path) -> Result<OwnedFd> {
    let (parent, name) = split(dest)?;
    match rustix::fs::mkdirat(&parent, name.as_c_str(), Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_at("make directory", dest, e)),
    }
    // A mount point (a fresh tmpfs) is a fine destination: open it without RESOLVE_NO_XDEV.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&parent, name.as_c_str(), flags, Mode::empty()).map_err(|e| io_at("open", dest, e))?;
    let mut entries = rustix::fs::Dir::read_from(&fd).map_err(|e| io_at("read directory", dest, e))?;
    let busy = std::iter::from_fn(|| entries.read())
        .any(|e| e.is_ok_and(|e| !matches!(e.file_name().to_bytes(), b"." | b"..")));
    if busy {
        return Err(Error::DestinationExists { path: dest.to_owned() });
    }
    Ok(fd)
}

fn remove(path: &Path, last: Option<&CStr>) -> Result<()> {
    let (parent, name) = split(path)?;
    let parent_dev = Meta::of_fd(&parent).map_err(|f| walk::named(f, path.to_owned()))?.dev;
    let meta = match Meta::of_entry(parent.as_fd(), &name) {
        Ok(meta) => meta,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_at("stat", path, e)),
    };
    if meta.is_mount(parent_dev) {
        return Err(Error::MountInside { path: path.to_owned(), mount: path.to_owned() });
    }
    if meta.kind() != Type::Dir {
        return unlink(&parent, &name, AtFlags::empty(), path);
    }
    let top = open_top(path, Top::SameMount)?.ok_or_else(|| io_at("open", path, Errno::NOENT))?;
    let top = remove::check_no_mounts(top, path)?;
    let top = remove::remove_below(top, path, last)?;
    if let Some(last) = last {
        unlink(&top, last, AtFlags::empty(), &path.join(std::ffi::OsStr::from_bytes(last.to_bytes())))?;
    }
    unlink(&parent, &name, AtFlags::REMOVEDIR, path)
}

fn unlink(dir: &OwnedFd, name: &CStr, flags: AtFlags, shown: &Path) -> Result<()> {
    match rustix::fs::unlinkat(dir, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_at("remove", shown, e)),
    }
}
