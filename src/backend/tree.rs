//! Directory helpers for the backends: create, measure and remove trees without crossing mounts.

use super::{Error, Result, Usage};
use rustix::fs::{AtFlags, Dir, Mode, OFlags, Statx, StatxFlags};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Creates `path` (one level) with mode `mode`, exactly, whatever the umask; an existing directory is kept.
pub fn make_dir(path: &Path, mode: u32) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(Error::io("create directory", path)(e)),
    }
}

/// Removes the tree at `path` (a file or symlink: just it), refusing (before removing anything)
/// if `path` itself or anything inside it is the root of a mount: another filesystem, or a bind
/// of this one. A missing tree is fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    remove_checked(path, None)
}

/// [`remove_tree`] of the directory `path`, removing the entry `last` (a file) after everything
/// else: a removal that fails half-way leaves it.
pub fn remove_tree_last(path: &Path, last: &str) -> Result<()> {
    remove_checked(path, Some(last))
}

/// Checks the whole tree once, then removes it (`last`, if given, after the rest of `path`).
fn remove_checked(path: &Path, last: Option<&str>) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path)(e)),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(Error::io("remove", path));
    }
    let parent_dev = path.parent().and_then(|p| std::fs::symlink_metadata(p).ok()).map(|m| m.dev());
    if is_mount_root(path, parent_dev)? {
        return Err(Error::MountInside { path: path.to_owned(), mount: path.to_owned() });
    }
    check_no_mounts(path, meta.dev())?;
    let Some(last) = last else {
        return std::fs::remove_dir_all(path).map_err(Error::io("remove", path));
    };
    let entries = std::fs::read_dir(path).map_err(Error::io("read directory", path))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("read directory", path))?;
        if entry.file_name() != last {
            remove_entry(&entry.path())?;
        }
    }
    remove_entry(&path.join(last))?;
    std::fs::remove_dir(path).map_err(Error::io("remove", path))
}

/// Removes one entry of a tree already checked: a directory with everything in it, anything
/// else by itself. A missing one is fine.
fn remove_entry(path: &Path) -> Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Whether `path` is the root of a mount: statx's mount-root attribute, or (a kernel without it)
/// a device other than its parent's.
fn is_mount_root(path: &Path, parent_dev: Option<u64>) -> Result<bool> {
    let id = crate::sys::statx_identity(path).map_err(|e| Error::io("stat", path)(e.into()))?;
    Ok(id.mount_root.unwrap_or_else(|| parent_dev.is_some_and(|d| d != id.dev)))
}

/// Refuses if anything below the directory `dir` (on device `dev`) is the root of a mount.
fn check_no_mounts(dir: &Path, dev: u64) -> Result<()> {
    walk(dir, &mut |path, st| {
        if is_root_of_mount(st, dev) {
            let parent = path.parent().unwrap_or(path).to_owned();
            return Err(Error::MountInside { path: parent, mount: path.to_owned() });
        }
        Ok(true)
    })
}

/// Whether the entry `st` is the root of a mount: statx's mount-root attribute, or (a kernel
/// without it) a device other than `dev`, the tree's.
fn is_root_of_mount(st: &Statx, dev: u64) -> bool {
    crate::sys::mount_root_attr(st.stx_attributes_mask.bits(), st.stx_attributes.bits())
        .unwrap_or_else(|| dev_of(st) != dev)
}

fn dev_of(st: &Statx) -> u64 {
    libc::makedev(st.stx_dev_major, st.stx_dev_minor)
}

/// Calls `visit` with every entry below the directory `dir` (its path, for messages, and its
/// `statx`, never following a symlink), going into the directories it answers `true` for. It
/// walks by directory handles (`openat` relative to the parent), so a tree deeper than
/// `PATH_MAX` is walked as well as `remove_dir_all` removes it. An entry removed meanwhile is
/// skipped.
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &Statx) -> Result<bool>) -> Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| Error::io("open", dir)(e.into()))?;
    walk_below(&fd, dir, visit)
}

fn walk_below(fd: &OwnedFd, shown: &Path, visit: &mut dyn FnMut(&Path, &Statx) -> Result<bool>) -> Result<()> {
    let io = |what| move |e: rustix::io::Errno| Error::io(what, shown)(e.into());
    let mut entries = Dir::read_from(fd).map_err(io("read directory"))?;
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(io("read directory"))?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let at = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT | AtFlags::STATX_DONT_SYNC;
        let st = match rustix::fs::statx(fd, name, at, StatxFlags::BASIC_STATS) {
            Err(rustix::io::Errno::NOENT) => continue,
            other => other.map_err(io("stat in"))?,
        };
        let path = shown.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        if !visit(&path, &st)? || u32::from(st.stx_mode) & libc::S_IFMT != libc::S_IFDIR {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(fd, name, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) => continue,
            other => walk_below(&other.map_err(io("open in"))?, &path, visit)?,
        }
    }
    Ok(())
}

/// Bytes (allocated) and inodes used by the tree at `path`, staying on its filesystem.
pub fn measure(path: &Path) -> Result<Usage> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
    let mut usage = Usage { used_bytes: meta.blocks() * 512, used_inodes: 1, ..Usage::default() };
    walk(path, &mut |_, st| {
        if dev_of(st) != meta.dev() {
            return Ok(false);
        }
        usage.used_bytes += st.stx_blocks * 512;
        usage.used_inodes += 1;
        Ok(true)
    })?;
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_dir_sets_mode_and_keeps_existing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("data");
        make_dir(&p, 0o777).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o777);
        std::fs::write(p.join("f"), b"x").unwrap();
        make_dir(&p, 0o777).unwrap();
        assert!(p.join("f").exists());
    }

    #[test]
    fn a_tree_deeper_than_path_max_is_checked_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("data");
        std::fs::create_dir(&top).unwrap();
        // 20 levels of 250-byte names: 5,000 bytes, more than PATH_MAX; made as a pod would,
        // one level at a time relative to the last.
        let name = "d".repeat(250);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = rustix::fs::open(&top, flags, Mode::empty()).unwrap();
        for _ in 0..20 {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(&fd, name.as_str(), flags, Mode::empty()).unwrap();
        }
        let file = rustix::fs::openat(&fd, "deep-file", OFlags::WRONLY | OFlags::CREATE, Mode::from_raw_mode(0o644));
        drop(file.unwrap());
        assert_eq!(measure(&top).unwrap().used_inodes, 22, "the top, 20 levels and the file");
        remove_tree(&top).unwrap();
        assert!(!top.exists());
    }

    #[test]
    fn measure_counts_files_and_remove_tree_removes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("data");
        std::fs::create_dir_all(p.join("sub")).unwrap();
        std::fs::write(p.join("sub/f"), vec![1u8; 10000]).unwrap();
        let u = measure(&p).unwrap();
        assert_eq!(u.used_inodes, 3);
        assert!(u.used_bytes >= 10000, "{u:?}");
        remove_tree(&p).unwrap();
        assert!(!p.exists());
        remove_tree(&p).unwrap();
    }
}
