//! The walk: depth first over directory descriptors, with an explicit stack on the heap.
//!
//! Each directory is opened from its parent's descriptor by one name (`openat2` with
//! `RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_BENEATH`, `O_NOFOLLOW | O_DIRECTORY`), each
//! entry is looked at with `AT_SYMLINK_NOFOLLOW`, and nothing is ever followed: a directory
//! swapped for a symlink is an entry that changed (looked at again, as what it is now), never a
//! way out of the tree. The stack holds one small frame per level (the name, the `statx` fields
//! a visitor needs and where reading resumes), so a tree of any depth is walked in memory
//! proportional to its depth and with a bounded number of descriptors (see [`super::stack`]).
//! Directories are read a batch (one `getdents64`) at a time; a level that lost its descriptor
//! resumes from the entry cookie of the last entry it finished.

use super::error::{Error, Fail, Result};
use super::meta::{Meta, Type};
use super::stack::DirStack;
use rustix::fs::{FileType, Mode, OFlags, RawDir, ResolveFlags, SeekFrom};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Bytes of directory entries read at a time.
const BATCH: usize = 32 * 1024;
/// Times an entry is looked at again when it changes between being looked at and being opened,
/// and times a directory is read again when it is not empty after its removal pass.
const TRIES: u8 = 3;

/// What a visitor wants done after seeing an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Open the directory and visit what it holds.
    Descend,
    /// Go on with the next entry.
    Next,
    /// The entry changed under the visitor: look at it again.
    Retry,
}

/// What a visitor wants done when a directory has been visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leave {
    Done,
    /// Read the directory again from its start (a removal that found it not empty).
    Again,
}

/// An entry as a visitor sees it: the directory holding it, its name there, its `statx`.
#[derive(Debug)]
pub(super) struct At<'a> {
    /// How deep the entry is: 1 for an entry of the root.
    pub depth: usize,
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
    pub meta: &'a Meta,
}

/// What one kind of walk (copy, usage, mount check, removal) does at each step.
pub(super) trait Visitor {
    /// Whether an entry of this type (as the directory listing says) needs its full `statx`
    /// before [`Visitor::entry`]; else the type is enough (the visitor looks at what it opens,
    /// and a directory's `statx` is taken from its descriptor once open). An entry of unknown
    /// type, and one looked at again after it changed, always gets its `statx`.
    fn wants_stat(_file_type: FileType) -> bool {
        true
    }
    /// One entry below the root (never `.` or `..`); `root_dev` is the device of the root.
    fn entry(&mut self, at: &At<'_>, root_dev: u64) -> std::result::Result<Step, Fail>;
    /// The directory entry `at`, which [`Visitor::entry`] descends into, is open as `dir`.
    fn enter(&mut self, _at: &At<'_>, _dir: BorrowedFd<'_>) -> std::result::Result<(), Fail> {
        Ok(())
    }
    /// The directory entry `at` is the root of a mount (opening it beneath the tree refused).
    fn mount(&mut self, _at: &At<'_>) -> std::result::Result<(), Fail> {
        Err(Fail::Mount)
    }
    /// Everything in the directory `dir` (the entry `at`) has been visited.
    fn leave(&mut self, _at: &At<'_>, _dir: BorrowedFd<'_>) -> std::result::Result<Leave, Fail> {
        Ok(Leave::Done)
    }
}

/// One level of the walk.
#[derive(Debug)]
struct Frame {
    /// Its name in its parent (empty for the root).
    name: CString,
    meta: Meta,
    /// Where reading resumes: the cookie after the last entry finished.
    cookie: u64,
    /// Entries read and not yet visited (only while the level holds its descriptor).
    pending: VecDeque<Pending>,
    /// No entry is left to read.
    read_all: bool,
    /// Times the directory was read again (see [`Leave::Again`]).
    passes: u8,
}

#[derive(Debug)]
struct Pending {
    name: CString,
    /// The cookie after this entry.
    next: u64,
    file_type: FileType,
}

impl Frame {
    fn new(name: CString, meta: Meta) -> Frame {
        Frame { name, meta, cookie: 0, pending: VecDeque::new(), read_all: false, passes: 0 }
    }
}

/// Walks the tree below the directory `root` (shown as `shown` in messages) with `visitor`;
/// hands `root` back.
pub(super) fn walk<V: Visitor>(root: OwnedFd, shown: &Path, visitor: &mut V) -> Result<OwnedFd> {
    let meta = Meta::of_fd(&root).map_err(|f| named(f, shown.to_owned()))?;
    if meta.kind() != Type::Dir {
        return Err(Error::NotADirectory { path: shown.to_owned() });
    }
    let mut walk = Walk {
        top: Frame::new(CString::default(), meta),
        parents: Vec::new(),
        dirs: DirStack::new(root),
        buf: Vec::with_capacity(BATCH),
        root_dev: meta.dev,
        shown,
    };
    walk.run(visitor)?;
    Ok(walk.dirs.into_root())
}

struct Walk<'p> {
    /// The deepest directory's frame, and the frames above it, root first.
    top: Frame,
    parents: Vec<Frame>,
    dirs: DirStack,
    buf: Vec<u8>,
    root_dev: u64,
    shown: &'p Path,
}

impl Walk<'_> {
    fn run<V: Visitor>(&mut self, visitor: &mut V) -> Result<()> {
        loop {
            match self.next_entry()? {
                Some(entry) => self.visit(entry, visitor)?,
                None if self.parents.is_empty() => return Ok(()),
                None => self.finish(visitor)?,
            }
        }
    }

    /// The next entry of the deepest directory, reading a batch when none is pending.
    fn next_entry(&mut self) -> Result<Option<Pending>> {
        loop {
            if let Some(entry) = self.top.pending.pop_front() {
                return Ok(Some(entry));
            }
            if self.top.read_all {
                return Ok(None);
            }
            self.read_batch().map_err(|f| self.fail(f, None))?;
        }
    }

    /// Reads one batch of the deepest directory from its cookie into its pending entries.
    fn read_batch(&mut self) -> std::result::Result<(), Fail> {
        let frame = &mut self.top;
        let fd = self.dirs.top();
        rustix::fs::seek(fd, SeekFrom::Start(frame.cookie)).map_err(Fail::io("seek in"))?;
        let mut raw = RawDir::new(fd, self.buf.spare_capacity_mut());
        let mut read = false;
        while let Some(entry) = raw.next() {
            let entry = entry.map_err(Fail::io("read directory"))?;
            read = true;
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                if frame.pending.is_empty() {
                    frame.cookie = entry.next_entry_cookie();
                }
            } else {
                let (name, next, file_type) = (name.to_owned(), entry.next_entry_cookie(), entry.file_type());
                frame.pending.push_back(Pending { name, next, file_type });
            }
            if raw.is_buffer_empty() {
                break;
            }
        }
        frame.read_all = !read;
        Ok(())
    }

    /// Visits one entry of the deepest directory, descending into it when the visitor asks.
    fn visit<V: Visitor>(&mut self, entry: Pending, visitor: &mut V) -> Result<()> {
        let fail = |walk: &Self, f| walk.fail(f, Some(&entry.name));
        for attempt in 0..TRIES {
            let meta = match self.look::<V>(&entry, attempt > 0) {
                Ok(Some(meta)) => meta,
                Ok(None) => return self.finished(&entry),
                Err(f) => return Err(fail(self, f)),
            };
            let at = At { depth: self.parents.len() + 1, dir: self.dirs.top(), name: &entry.name, meta: &meta };
            let opened = match visitor.entry(&at, self.root_dev).map_err(|f| fail(self, f))? {
                Step::Next => return self.finished(&entry),
                Step::Retry => continue,
                Step::Descend => open_dir(self.dirs.top(), &entry.name),
            };
            match opened {
                Ok(fd) => {
                    if self.descend(&entry, &meta, fd, visitor)? {
                        return Ok(());
                    }
                }
                Err(Errno::NOTDIR | Errno::LOOP) => {}
                Err(Errno::NOENT) => return self.finished(&entry),
                Err(Errno::XDEV) => {
                    let at = At { depth: self.parents.len() + 1, dir: self.dirs.top(), name: &entry.name, meta: &meta };
                    visitor.mount(&at).map_err(|f| fail(self, f))?;
                    return self.finished(&entry);
                }
                Err(e) => return Err(fail(self, Fail::Io("open", e))),
            }
        }
        Err(fail(self, Fail::Changed("an entry kept changing")))
    }

    /// The entry's metadata (`None`: it is gone). Visitors that need only the type get it from
    /// the directory listing where the filesystem gives it.
    fn look<V: Visitor>(&self, entry: &Pending, again: bool) -> std::result::Result<Option<Meta>, Fail> {
        if !again && entry.file_type != FileType::Unknown && !V::wants_stat(entry.file_type) {
            return Ok(Some(Meta::of_type(entry.file_type)));
        }
        match Meta::of_entry(self.dirs.top(), &entry.name) {
            Ok(meta) => Ok(Some(meta)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Fail::Io("stat", e)),
        }
    }

    /// The deepest directory goes on after `entry`.
    fn finished(&mut self, entry: &Pending) -> Result<()> {
        self.top.cookie = entry.next;
        Ok(())
    }

    /// Goes into the directory `entry`, open as `fd`; false (nothing done) when `fd` is not the
    /// directory that was looked at (swapped meanwhile).
    fn descend<V: Visitor>(&mut self, entry: &Pending, meta: &Meta, fd: OwnedFd, visitor: &mut V) -> Result<bool> {
        let opened = Meta::of_fd(&fd).map_err(|f| self.fail(f, Some(&entry.name)))?;
        if meta.ino != 0 && opened.id() != meta.id() {
            return Ok(false);
        }
        let at = At { depth: self.parents.len() + 1, dir: self.dirs.top(), name: &entry.name, meta: &opened };
        visitor.enter(&at, fd.as_fd()).map_err(|f| self.fail(f, Some(&entry.name)))?;
        self.finished(entry)?;
        self.push(Frame::new(entry.name.clone(), opened), fd);
        Ok(true)
    }

    fn push(&mut self, frame: Frame, fd: OwnedFd) {
        let id = frame.meta.id();
        self.parents.push(std::mem::replace(&mut self.top, frame));
        if let Some(parked) = self.dirs.push(fd, id) {
            // That level lost its descriptor: its read-ahead goes, it reads again from its cookie.
            let frame = &mut self.parents[parked];
            frame.pending = VecDeque::new();
            frame.read_all = false;
        }
    }

    /// The deepest directory is done: tells the visitor, then climbs back to its parent.
    fn finish<V: Visitor>(&mut self, visitor: &mut V) -> Result<()> {
        let Some(parent) = self.parents.pop() else { return Ok(()) };
        let mut frame = std::mem::replace(&mut self.top, parent);
        let fd = self.dirs.pop().map_err(|f| self.fail(f, Some(&frame.name)))?;
        let at = At { depth: self.parents.len() + 1, dir: self.dirs.top(), name: &frame.name, meta: &frame.meta };
        match visitor.leave(&at, fd.as_fd()).map_err(|f| self.fail(f, Some(&frame.name)))? {
            Leave::Done => Ok(()),
            Leave::Again if frame.passes + 1 < TRIES => {
                frame.passes += 1;
                frame.cookie = 0;
                frame.read_all = false;
                self.push(frame, fd);
                Ok(())
            }
            Leave::Again => {
                Err(self.fail(Fail::Changed("entries kept appearing while it was removed"), Some(&frame.name)))
            }
        }
    }

    /// Names where a failure happened: the deepest directory, or `last` in it.
    fn fail(&self, fail: Fail, last: Option<&CStr>) -> Error {
        let top = (!self.parents.is_empty()).then_some(&self.top);
        let names = self.parents.iter().skip(1).chain(top).map(|f| f.name.as_c_str()).chain(last);
        named(fail, shown_path(self.shown, names))
    }
}

/// The error of `fail` at `path`.
pub(super) fn named(fail: Fail, path: PathBuf) -> Error {
    match fail {
        Fail::Io(what, errno) => Error::Io { what, path, errno },
        Fail::Changed(detail) => Error::Changed { path, detail },
        Fail::Cancelled => Error::Cancelled { path },
        Fail::Mount => {
            let parent = path.parent().map_or_else(|| path.clone(), Path::to_owned);
            Error::MountInside { path: parent, mount: path }
        }
    }
}

/// Opens the directory `name` of `dir`: one component, no symlink, no other mount.
fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> std::result::Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve =
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve)
}

/// Most bytes of a path in a message: the end of a deep path is what tells where.
const SHOWN_MAX: usize = 200;

/// `root` joined with `names` for a message: control characters escaped, and only the last
/// names that fit in [`SHOWN_MAX`] bytes (behind `…`) for a deep one.
pub(super) fn shown_path<'a>(root: &Path, names: impl DoubleEndedIterator<Item = &'a CStr>) -> PathBuf {
    let mut tail = Vec::new();
    let mut len = 0;
    let mut cut = false;
    for name in names.rev() {
        let shown = escape(name.to_bytes());
        len += shown.len() + 1;
        if len > SHOWN_MAX && !tail.is_empty() {
            cut = true;
            break;
        }
        tail.push(shown);
    }
    let mut path = root.to_owned();
    if cut {
        path.push("…");
    }
    path.extend(tail.iter().rev());
    path
}

/// A name as text, with control characters and invalid UTF-8 escaped.
fn escape(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}
