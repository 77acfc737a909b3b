//! What the tree engine keeps of an entry's `statx`, and how it copies owners, modes, times and
//! extended attributes from one open file to another.

use super::error::Fail;
use rustix::buffer::spare_capacity;
use rustix::fs::{AtFlags, Gid, Mode, Statx, StatxFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

/// The parts of an entry's `statx` a walk needs (a deep tree keeps one per level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub dev: u64,
    pub ino: u64,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    /// The entry is the root of a mount (statx's mount-root attribute; on a kernel without it,
    /// a device other than the walk's root's).
    pub mount_root: Option<bool>,
}

/// The file types a walk tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Type {
    Dir,
    File,
    Symlink,
    /// A FIFO or a socket: copied as what it is.
    Special,
    /// A block or character device node: never copied.
    Device,
}

const STATX_MASK: StatxFlags = StatxFlags::BASIC_STATS;

impl Meta {
    fn from_statx(st: &Statx) -> Meta {
        Meta {
            dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            mode: u32::from(st.stx_mode),
            nlink: st.stx_nlink,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            blocks: st.stx_blocks,
            atime: (st.stx_atime.tv_sec, st.stx_atime.tv_nsec),
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            mount_root: crate::sys::mount_root_attr(st.stx_attributes_mask.bits(), st.stx_attributes.bits()),
        }
    }

    /// An entry known only by its type (from a directory listing): no identity (inode 0).
    pub(super) fn of_type(file_type: rustix::fs::FileType) -> Meta {
        let (time, mount_root) = ((0, 0), Some(false));
        Meta {
            dev: 0,
            ino: 0,
            mode: file_type.as_raw_mode(),
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            atime: time,
            mtime: time,
            mount_root,
        }
    }

    /// The entry `name` of the directory `dir`, never following a symlink or an automount.
    pub(super) fn of_entry(dir: BorrowedFd<'_>, name: &CStr) -> Result<Meta, Errno> {
        let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT | AtFlags::STATX_DONT_SYNC;
        rustix::fs::statx(dir, name, flags, STATX_MASK).map(|st| Meta::from_statx(&st))
    }

    /// The open file `fd` itself.
    pub(super) fn of_fd(fd: impl AsFd) -> Result<Meta, Fail> {
        let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
        rustix::fs::statx(fd, c"", flags, STATX_MASK).map(|st| Meta::from_statx(&st)).map_err(Fail::io("stat"))
    }

    pub(super) fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    pub(super) fn kind(&self) -> Type {
        match self.mode & libc::S_IFMT {
            libc::S_IFDIR => Type::Dir,
            libc::S_IFREG => Type::File,
            libc::S_IFLNK => Type::Symlink,
            libc::S_IFIFO | libc::S_IFSOCK => Type::Special,
            _ => Type::Device,
        }
    }

    /// Whether the entry is the root of a mount, `root_dev` being the device of the walk's root.
    pub(super) fn is_mount(&self, root_dev: u64) -> bool {
        self.mount_root.unwrap_or(self.dev != root_dev)
    }

    pub(super) fn permissions(&self) -> Mode {
        Mode::from_raw_mode(self.mode & 0o7777)
    }

    fn times(&self) -> Timestamps {
        let ts = |(sec, nsec): (i64, u32)| Timespec { tv_sec: sec, tv_nsec: i64::from(nsec) };
        Timestamps { last_access: ts(self.atime), last_modification: ts(self.mtime) }
    }

    /// Gives the open file `to` this entry's owner, permissions (set after the owner, which
    /// would clear set-id bits), extended attributes and times (last: setting the others moves
    /// them).
    pub(super) fn apply(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Fail> {
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        let owned = (self.uid, self.gid) == owner();
        if !owned {
            rustix::fs::fchown(to, Some(uid), Some(gid)).map_err(Fail::io("set the owner of"))?;
        }
        // A file made with these permissions has them already, unless the umask took some or
        // they carry set-id or sticky bits (which creation drops and a change of owner clears).
        if !owned || self.mode & 0o7000 != 0 || self.mode & umask() != 0 || self.kind() == Type::Dir {
            rustix::fs::fchmod(to, self.permissions()).map_err(Fail::io("set the mode of"))?;
        }
        copy_xattrs(from, to)?;
        rustix::fs::futimens(to, &self.times()).map_err(Fail::io("set the times of"))
    }

    /// [`Meta::apply`] for an entry that cannot be opened (a symlink, a FIFO, a socket): owner,
    /// permissions (not for a symlink, which has none of its own) and times, by name.
    pub(super) fn apply_at(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Fail> {
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Fail::io("set the owner of"))?;
        if self.kind() != Type::Symlink {
            // The destination is strata's own, just made: nothing there is a symlink to follow.
            rustix::fs::chmodat(dir, name, self.permissions(), AtFlags::empty())
                .map_err(Fail::io("set the mode of"))?;
        }
        rustix::fs::utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW).map_err(Fail::io("set the times of"))
    }
}

/// Who owns what this process makes (its effective user and group; strata never changes them).
fn owner() -> (u32, u32) {
    static OWNER: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *OWNER.get_or_init(|| (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw()))
}

/// This process's umask (from `/proc/self/status`, read once: strata never changes it); every
/// bit set when it cannot be read, so modes are always set then.
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = status.lines().find_map(|l| l.strip_prefix("Umask:"));
        field.and_then(|v| u32::from_str_radix(v.trim(), 8).ok()).unwrap_or(0o7777)
    })
}

/// The most bytes of extended attribute names, and of one value, that Linux allows (XATTR_LIST_MAX,
/// XATTR_SIZE_MAX).
const XATTR_MAX: usize = 64 * 1024;

/// Copies every extended attribute of `from` to `to` (ACLs, capabilities, user attributes). An
/// attribute the destination's filesystem does not take is left out.
fn copy_xattrs(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Fail> {
    let mut names = Vec::with_capacity(256);
    match rustix::fs::flistxattr(from, spare_capacity(&mut names)) {
        Ok(_) => {}
        Err(Errno::NOTSUP) => return Ok(()),
        Err(Errno::RANGE) => {
            names = Vec::with_capacity(XATTR_MAX);
            rustix::fs::flistxattr(from, spare_capacity(&mut names)).map_err(Fail::io("list attributes of"))?;
        }
        Err(e) => return Err(Fail::Io("list attributes of", e)),
    }
    let mut value = Vec::with_capacity(XATTR_MAX);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::ffi::CString::new(name) else { continue };
        value.clear();
        match rustix::fs::fgetxattr(from, name.as_c_str(), spare_capacity(&mut value)) {
            Ok(_) => {}
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(Fail::Io("read an attribute of", e)),
        }
        match rustix::fs::fsetxattr(to, name.as_c_str(), &value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(Fail::Io("set an attribute of", e)),
        }
    }
    Ok(())
}
