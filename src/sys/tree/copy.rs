//! Copies a tree: directories, regular files (data extents only, or shared), symlinks as
//! symlinks, FIFOs and sockets as what they are, hard links as hard links, with owners, modes,
//! times and extended attributes. Device nodes are never copied (a snapshot is data, not
//! devices), and what is mounted inside the tree is not the tree's: both are counted instead.

use super::Progress;
use super::error::{Error, Fail, Result};
use super::links::Links;
use super::meta::{Meta, Type};
use super::stack::DirStack;
use super::walk::{At, Leave, Step, Visitor};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// What a tree copy made, and what it left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyReport {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    /// FIFOs and sockets.
    pub specials: u64,
    /// Extra names of files with several links, made as links.
    pub hard_links: u64,
    /// Bytes of file data copied (shared extents and holes count nothing).
    pub bytes: u64,
    /// Files whose extents are shared with the source (reflinks).
    pub reflinked: u64,
    /// Block and character device nodes left out.
    pub devices_skipped: u64,
    /// Mounts inside the tree, left out (an empty directory stands in for each).
    pub mounts_skipped: u64,
}

/// Copies the tree below the open directory `src` into the open, empty directory `dest`, and
/// gives `dest` the owner, mode, attributes and times of `src`.
pub(super) fn copy(src: OwnedFd, dest: OwnedFd, shown: &Path, progress: &Progress) -> Result<CopyReport> {
    let nodev = rustix::fs::fstatvfs(&src).map_err(|e| fail_at(Fail::Io("statvfs", e), shown))?.f_flag;
    let mut copier = Copier {
        nodev: nodev.contains(rustix::fs::StatVfsMountFlags::NODEV),
        dest: DirStack::new(dest),
        links: Links::default(),
        report: CopyReport::default(),
        proc_fd: open_proc_fd().map_err(|f| fail_at(f, Path::new("/proc/self/fd")))?,
        progress,
    };
    let src = super::walk::walk(src, shown, &mut copier)?;
    let meta = Meta::of_fd(&src).map_err(|f| fail_at(f, shown))?;
    meta.apply(src.as_fd(), copier.dest.root()).map_err(|f| fail_at(f, shown))?;
    Ok(copier.report)
}

/// `openat`, again without `O_NOATIME` where the kernel refuses it (a file of another owner
/// without CAP_FOWNER).
fn open_file(dir: BorrowedFd<'_>, name: &CStr, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Err(Errno::PERM) if flags.contains(OFlags::NOATIME) => {
            rustix::fs::openat(dir, name, flags - OFlags::NOATIME, Mode::empty())
        }
        other => other,
    }
}

fn fail_at(fail: Fail, path: &Path) -> Error {
    super::walk::named(fail, path.to_owned())
}

/// `/proc/self/fd`, through which a file opened as a path only is opened for reading once it
/// is known to be a regular file (never a device: opening one can act on the device).
fn open_proc_fd() -> std::result::Result<OwnedFd, Fail> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open("/proc/self/fd", flags, Mode::empty()).map_err(Fail::io("open"))
}

struct Copier<'p> {
    /// The source's mount is `nodev`: opening a device node there fails without touching the
    /// device, so files are opened for reading at once.
    nodev: bool,
    dest: DirStack,
    links: Links,
    report: CopyReport,
    proc_fd: OwnedFd,
    progress: &'p Progress,
}

impl Visitor for Copier<'_> {
    /// Files are looked at once opened; directories once open.
    fn wants_stat(file_type: FileType) -> bool {
        !matches!(file_type, FileType::RegularFile | FileType::Directory)
    }

    fn entry(&mut self, at: &At<'_>, root_dev: u64) -> std::result::Result<Step, Fail> {
        self.progress.check()?;
        let kind = at.meta.kind();
        if kind != Type::Dir && at.meta.is_mount(root_dev) {
            self.report.mounts_skipped += 1;
            return Ok(Step::Next);
        }
        match kind {
            Type::Dir => Ok(Step::Descend),
            Type::File => self.file(at, root_dev),
            Type::Symlink => self.symlink(at),
            Type::Special => self.special(at),
            Type::Device => {
                self.report.devices_skipped += 1;
                Ok(Step::Next)
            }
        }
    }

    fn enter(&mut self, at: &At<'_>, _dir: BorrowedFd<'_>) -> std::result::Result<(), Fail> {
        let fd = self.make_dir(at.name)?;
        let id = Meta::of_fd(&fd)?.id();
        self.dest.push(fd, id);
        Ok(())
    }

    fn mount(&mut self, at: &At<'_>) -> std::result::Result<(), Fail> {
        drop(self.make_dir(at.name)?);
        self.report.mounts_skipped += 1;
        Ok(())
    }

    fn leave(&mut self, at: &At<'_>, dir: BorrowedFd<'_>) -> std::result::Result<Leave, Fail> {
        let made = self.dest.pop()?;
        at.meta.apply(dir, made.as_fd())?;
        self.report.dirs += 1;
        Ok(Leave::Done)
    }
}

impl Copier<'_> {
    /// Makes the directory `name` in the destination (0700 until its own mode is set when it
    /// is done) and opens it; one already there (a name listed twice while the source changed)
    /// is opened as it is.
    fn make_dir(&self, name: &CStr) -> std::result::Result<OwnedFd, Fail> {
        match rustix::fs::mkdirat(self.dest.top(), name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Fail::Io("make directory", e)),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(self.dest.top(), name, flags, Mode::empty()).map_err(Fail::io("open"))
    }

    /// A regular file: opened as a path, checked to be a regular file (the one looked at, when
    /// it was), then read through `/proc/self/fd` (a device node swapped in is never opened).
    fn file(&mut self, at: &At<'_>, root_dev: u64) -> std::result::Result<Step, Fail> {
        let flags = match self.nodev {
            true => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOATIME,
            false => OFlags::PATH,
        };
        let path = match open_file(at.dir, at.name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Step::Next),
            // A symlink or a device node (on a nodev mount) swapped in: look again.
            Err(Errno::LOOP | Errno::ACCESS) => return Ok(Step::Retry),
            Err(e) => return Err(Fail::Io("open", e)),
        };
        let meta = Meta::of_fd(&path)?;
        if meta.kind() != Type::File || (at.meta.ino != 0 && meta.id() != at.meta.id()) {
            return Ok(Step::Retry);
        }
        if meta.is_mount(root_dev) {
            self.report.mounts_skipped += 1;
            return Ok(Step::Next);
        }
        if meta.nlink > 1 && self.links.link(&meta, self.dest.root(), self.dest.top(), at.name)? {
            self.report.hard_links += 1;
            return Ok(Step::Next);
        }
        let src = if self.nodev { path } else { self.reopen(&path)? };
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dst = match rustix::fs::openat(self.dest.top(), at.name, flags, meta.permissions()) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Ok(Step::Next),
            Err(e) => return Err(Fail::Io("create", e)),
        };
        let copied = super::data::copy(src.as_fd(), dst.as_fd(), meta.size, self.progress)?;
        meta.apply(src.as_fd(), dst.as_fd())?;
        if meta.nlink > 1 {
            self.links.remember(&meta, dst.as_fd());
        }
        self.report.files += 1;
        self.report.bytes += copied.bytes;
        self.report.reflinked += u64::from(copied.reflinked);
        Ok(Step::Next)
    }

    /// Opens the regular file behind the path descriptor `path` for reading, without touching
    /// its access time where the kernel allows.
    fn reopen(&self, path: &OwnedFd) -> std::result::Result<OwnedFd, Fail> {
        let name = path.as_raw_fd().to_string();
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::NOATIME;
        open_file(self.proc_fd.as_fd(), &CString::new(name).unwrap_or_default(), flags).map_err(Fail::io("open"))
    }

    fn symlink(&mut self, at: &At<'_>) -> std::result::Result<Step, Fail> {
        let target = match rustix::fs::readlinkat(at.dir, at.name, Vec::new()) {
            Ok(t) => t,
            Err(Errno::NOENT) => return Ok(Step::Next),
            Err(Errno::INVAL) => return Ok(Step::Retry),
            Err(e) => return Err(Fail::Io("read link", e)),
        };
        match rustix::fs::symlinkat(target.as_c_str(), self.dest.top(), at.name) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(Step::Next),
            Err(e) => return Err(Fail::Io("make symlink", e)),
        }
        at.meta.apply_at(self.dest.top(), at.name)?;
        self.report.symlinks += 1;
        Ok(Step::Next)
    }

    fn special(&mut self, at: &At<'_>) -> std::result::Result<Step, Fail> {
        let kind = FileType::from_raw_mode(at.meta.mode);
        match rustix::fs::mknodat(self.dest.top(), at.name, kind, at.meta.permissions(), 0) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(Step::Next),
            Err(e) => return Err(Fail::Io("make", e)),
        }
        at.meta.apply_at(self.dest.top(), at.name)?;
        self.report.specials += 1;
        Ok(Step::Next)
    }
}
