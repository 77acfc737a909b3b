//! [`Place`]: a path from a request turned into a handle once, resolved beneath an allowed prefix
//! with no symlink followed, so later mounts, unmounts and removals act where the check looked.
//!
//! A place is its parent directory held open (an `O_PATH` fd found by `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or a component-by-component `O_NOFOLLOW` walk
//! where openat2 is missing) plus one final name. Every operation is relative to that fd and never
//! follows the final name if it is a symlink: `statx`/`mkdirat`/`unlinkat` with the name, mounts
//! onto an `O_PATH|O_NOFOLLOW` fd of it, and `umount2(UMOUNT_NOFOLLOW)` through `/proc/self/fd`.

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once openat2 answered ENOSYS: later resolutions walk without trying it again.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Why a path could not become a [`Place`].
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// A directory on the way does not exist (so neither does the place).
    #[error("its parent directory does not exist")]
    ParentMissing,
    /// A component on the way is a symlink (or a magic link).
    #[error("resolves through a symlink")]
    Symlink,
    /// A component on the way is not a directory.
    #[error("a component on the way is not a directory")]
    NotDirectory,
    /// The path does not stay beneath the prefix (never expected without `..`, refused earlier).
    #[error("leaves its allowed prefix")]
    Escapes,
    #[error("{what}: {errno}")]
    Io { what: &'static str, errno: super::Errno },
}

impl PlaceError {
    /// The OS error behind this one, where a system call failed.
    pub fn errno(&self) -> Option<super::Errno> {
        match self {
            PlaceError::Io { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    fn io(what: &'static str, errno: Errno) -> PlaceError {
        PlaceError::Io { what, errno: super::ToErrno::to_errno(errno) }
    }
}

/// What is at a place, from `statx` without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub dev: u64,
    pub ino: u64,
    /// Whether the place is the root of a mount; `None` where the kernel does not say (< 5.8).
    pub mount_root: Option<bool>,
}

/// The file type at a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// A resolved request path: its parent directory held open, and its final name.
#[derive(Debug)]
pub struct Place {
    parent: OwnedFd,
    name: OsString,
    path: PathBuf,
}

impl Place {
    /// Resolves `path` beneath `prefix`: `prefix` is opened as it is (it may be a symlink, such as
    /// `/var/lib/kubelet` on some distributions); every component after it must be a real
    /// directory, never a symlink. `path` must start with `prefix`, be absolute and hold no `.` or
    /// `..` (checked by the caller); the final component need not exist.
    pub fn beneath(prefix: &Path, path: &Path) -> Result<Place, PlaceError> {
        Self::resolve(prefix, path, false)
    }

    /// A path strata owns (under its data root, or a test's): its parent is opened as it is, only
    /// the final name is held without following.
    pub fn at(path: &Path) -> Result<Place, PlaceError> {
        let parent = path.parent().ok_or(PlaceError::Escapes)?;
        Self::resolve(parent, path, false)
    }

    /// [`Place::beneath`], forcing the `O_NOFOLLOW` walk (the path taken without openat2): for
    /// the tests, which run every resolution both ways.
    #[cfg(test)]
    pub fn beneath_by_walk(prefix: &Path, path: &Path) -> Result<Place, PlaceError> {
        Self::resolve(prefix, path, true)
    }

    fn resolve(prefix: &Path, path: &Path, walk: bool) -> Result<Place, PlaceError> {
        let rel = path.strip_prefix(prefix).map_err(|_| PlaceError::Escapes)?;
        let mut parts: Vec<&OsStr> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => parts.push(n),
                _ => return Err(PlaceError::Escapes),
            }
        }
        let name = parts.pop().ok_or(PlaceError::Escapes)?.to_owned();
        if !walk && !NO_OPENAT2.load(Ordering::Relaxed) {
            if let Some(parent) = whole_without_symlinks(prefix, &parts) {
                return Ok(Place { parent, name, path: path.to_owned() });
            }
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = rustix::fs::open(prefix, flags, Mode::empty()).map_err(|e| match e {
            Errno::NOENT => PlaceError::ParentMissing,
            e => PlaceError::io("open the allowed prefix", e),
        })?;
        let parent = if parts.is_empty() {
            root
        } else if walk || NO_OPENAT2.load(Ordering::Relaxed) {
            walk_beneath(root, &parts)?
        } else {
            match openat2_beneath(&root, &parts) {
                Err(PlaceError::Io { errno: super::Errno::ENOSYS, .. }) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    walk_beneath(root, &parts)?
                }
                other => other?,
            }
        };
        Ok(Place { parent, name, path: path.to_owned() })
    }

    /// The path as the request gave it: for messages, logs and the mount table.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final name, inside the parent.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The held parent directory.
    pub fn parent(&self) -> BorrowedFd<'_> {
        self.parent.as_fd()
    }

    /// What is at the place (not followed), `None` when nothing is.
    pub fn stat(&self) -> std::io::Result<Option<Stat>> {
        let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT | AtFlags::STATX_DONT_SYNC;
        let st =
            match rustix::fs::statx(&self.parent, self.name.as_os_str(), flags, rustix::fs::StatxFlags::BASIC_STATS) {
                Ok(st) => st,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
        let kind = match u32::from(st.stx_mode) & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        let mount_root = super::statx::mount_root_attr(st.stx_attributes_mask.bits(), st.stx_attributes.bits());
        let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
        Ok(Some(Stat { kind, dev, ino: st.stx_ino, mount_root }))
    }

    /// Makes a directory at the place (`mkdirat`, never through a symlink); false if one exists.
    pub fn mkdir(&self, mode: u32) -> std::io::Result<bool> {
        match rustix::fs::mkdirat(&self.parent, self.name.as_os_str(), Mode::from_raw_mode(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) if self.stat()?.is_some_and(|s| s.kind == Kind::Dir) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes an empty file at the place (`O_CREAT|O_EXCL|O_NOFOLLOW`); false if one exists.
    pub fn create_file(&self, mode: u32) -> std::io::Result<bool> {
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::WRONLY;
        match rustix::fs::openat(&self.parent, self.name.as_os_str(), flags, Mode::from_raw_mode(mode)) {
            Ok(_) => Ok(true),
            Err(Errno::EXIST) if self.stat()?.is_some_and(|s| s.kind == Kind::File) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the directory at the place if it is empty (`unlinkat(AT_REMOVEDIR)`).
    pub fn remove_dir(&self) -> std::io::Result<()> {
        rustix::fs::unlinkat(&self.parent, self.name.as_os_str(), AtFlags::REMOVEDIR).map_err(Into::into)
    }

    /// Removes the file at the place (`unlinkat`; a symlink would be removed, never followed).
    pub fn remove_file(&self) -> std::io::Result<()> {
        rustix::fs::unlinkat(&self.parent, self.name.as_os_str(), AtFlags::empty()).map_err(Into::into)
    }

    /// An `O_PATH` fd of what is at the place (the topmost mount there), refusing a symlink.
    pub fn open_path(&self) -> std::io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.parent, self.name.as_os_str(), flags, Mode::empty())?;
        if rustix::fs::fstat(&fd)?.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(Errno::LOOP.into());
        }
        Ok(fd)
    }

    /// An fd of the directory at the place, opened for ioctls (`O_RDONLY|O_DIRECTORY|O_NOFOLLOW`).
    pub fn open_dir(&self) -> std::io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(&self.parent, self.name.as_os_str(), flags, Mode::empty()).map_err(Into::into)
    }

    /// The place `name` inside the directory at this place (one plain component), held the same
    /// way: this place's directory is opened as the parent without following a symlink.
    pub fn child(&self, name: &str) -> std::io::Result<Place> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let parent = rustix::fs::openat(&self.parent, self.name.as_os_str(), flags, Mode::empty())?;
        Ok(Place { parent, name: name.into(), path: self.path.join(name) })
    }

    /// `/proc/self/fd/<parent>/<name>`: names the place for syscalls that take only a path; the
    /// parent is the held fd, and the caller must not follow the final name (`UMOUNT_NOFOLLOW`).
    pub fn nofollow_path(&self) -> PathBuf {
        fd_path(self.parent.as_raw_fd()).join(&self.name)
    }
}

/// `/proc/self/fd/<fd>`: the magic link to exactly what `fd` holds.
pub fn fd_path(fd: std::os::fd::RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// The parent directory in one `openat2` of the whole path, when no component of it, the
/// prefix's included, is a symlink: the common case, and the same directory that opening the
/// prefix and resolving `parts` beneath it reaches, since `parts` are plain names (no `..`) and
/// nothing on the way is followed. `None` on any error (a symlink in the prefix, such as
/// `/var/lib/kubelet` on some distributions, a missing or non-directory component, no openat2):
/// the caller then resolves the long way, which tells those cases apart.
fn whole_without_symlinks(prefix: &Path, parts: &[&OsStr]) -> Option<OwnedFd> {
    let mut whole = prefix.to_path_buf();
    whole.extend(parts);
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(rustix::fs::CWD, &whole, flags, Mode::empty(), resolve).ok()
}

fn openat2_beneath(root: &OwnedFd, parts: &[&OsStr]) -> Result<OwnedFd, PlaceError> {
    let rel: PathBuf = parts.iter().collect();
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(root, &rel, flags, Mode::empty(), resolve).map_err(|e| match e {
        Errno::LOOP => PlaceError::Symlink,
        Errno::NOENT => PlaceError::ParentMissing,
        Errno::NOTDIR => PlaceError::NotDirectory,
        Errno::XDEV => PlaceError::Escapes,
        e => PlaceError::io("resolve the parent directory", e),
    })
}

/// Opens each component with `O_PATH|O_NOFOLLOW|O_DIRECTORY` relative to the one before.
fn walk_beneath(root: OwnedFd, parts: &[&OsStr]) -> Result<OwnedFd, PlaceError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = root;
    for part in parts {
        dir = match rustix::fs::openat(&dir, *part, flags, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::NOENT) => return Err(PlaceError::ParentMissing),
            Err(Errno::NOTDIR | Errno::LOOP) => return Err(why_not_dir(&dir, part)),
            Err(e) => return Err(PlaceError::io("resolve the parent directory", e)),
        };
    }
    Ok(dir)
}

/// Tells a symlink from another non-directory where `O_NOFOLLOW|O_DIRECTORY` refused `name`.
fn why_not_dir(dir: &OwnedFd, name: &OsStr) -> PlaceError {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => PlaceError::Symlink,
        _ => PlaceError::NotDirectory,
    }
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
