//! Mounts onto a [`Place`] through file descriptors: a bind is cloned (`open_tree`), given its final
//! flags while still detached (`mount_setattr`), then attached (`move_mount`), so no other mount
//! namespace ever sees it with other flags; a new filesystem is mounted on `/proc/self/fd/N` of
//! the place's `O_PATH` fd, with its flags in the same call.

use super::place::{Place, fd_path};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// The per-mount attributes a bind can carry (`MOUNT_ATTR_*`): those to set and those to clear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub set: u64,
    pub clear: u64,
}

impl Attrs {
    /// The attributes of the per-mount `MS_*` flags in `flags`; superblock flags are not among them.
    pub fn from_flags(flags: MsFlags) -> Attrs {
        let mut a = Attrs::default();
        for (ms, attr) in [
            (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        ] {
            if flags.contains(ms) {
                a.set |= attr;
            }
        }
        let atime = [
            (MsFlags::MS_NOATIME, libc::MOUNT_ATTR_NOATIME),
            (MsFlags::MS_STRICTATIME, libc::MOUNT_ATTR_STRICTATIME),
            (MsFlags::MS_RELATIME, libc::MOUNT_ATTR_RELATIME),
        ];
        if let Some((_, attr)) = atime.into_iter().find(|(ms, _)| flags.contains(*ms)) {
            a.set |= attr;
            a.clear |= libc::MOUNT_ATTR__ATIME;
        }
        a
    }
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// Binds `source` (a path strata owns: a data directory or a device node) onto `target` with
/// `attrs` in force from the moment it is attached.
pub fn bind(source: &Path, target: &Place, attrs: Attrs) -> Result<(), Errno> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let tree = rustix::mount::open_tree(rustix::fs::CWD, source, flags).map_err(errno)?;
    if attrs != Attrs::default() {
        setattr(tree.as_fd(), attrs)?;
    }
    let to = target.open_path().map_err(io_errno)?;
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(&tree, c"", &to, c"", flags).map_err(errno)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, attrs)` on a detached mount.
fn setattr(fd: BorrowedFd<'_>, attrs: Attrs) -> Result<(), Errno> {
    let attr = libc::mount_attr { attr_set: attrs.set, attr_clr: attrs.clear, propagation: 0, userns_fd: 0 };
    // SAFETY: the fd is open for the call; the path is a NUL-terminated empty string; `attr` is a
    // live `struct mount_attr` whose exact size is passed, which the kernel only reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `mount(2)` on the place's own fd: a new filesystem (`source`, `fstype`), a remount or a
/// propagation change, never through a symlink at the place.
pub fn mount_on(
    source: Option<&Path>,
    target: &Place,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Errno> {
    let to = target.open_path().map_err(io_errno)?;
    nix::mount::mount(source, &fd_path(to.as_raw_fd()), fstype, flags, data)
}

/// Unmounts the topmost mount at the place, without following a symlink there. EBUSY is tried
/// again for a moment (2 + 4 + 8 + 16 + 32 ms): a path lookup that passes through the mount (another
/// strata process checking its publications, a monitoring agent's `stat`) pins it for
/// microseconds; a process that has a file open or its working directory there keeps it, and
/// the last EBUSY is the answer.
pub fn unmount(target: &Place, lazy: bool) -> Result<(), Errno> {
    let mut flags = MntFlags::UMOUNT_NOFOLLOW;
    if lazy {
        flags |= MntFlags::MNT_DETACH;
    }
    let path = target.nofollow_path();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match nix::mount::umount2(&path, flags) {
            Err(Errno::EBUSY) if pause <= std::time::Duration::from_millis(32) => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            other => return other,
        }
    }
}
