//! Directory helpers for the backends: create, measure and remove trees without crossing mounts.

use super::{Error, Result, Usage};
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
    std::fs::remove_dir_all(path).map_err(Error::io("remove", path))
}

/// [`remove_tree`] of the directory `path`, removing the entry `last` (a file) after everything
/// else: a removal that fails half-way leaves it.
pub fn remove_tree_last(path: &Path, last: &str) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return remove_tree(path) };
    let parent_dev = path.parent().and_then(|p| std::fs::symlink_metadata(p).ok()).map(|m| m.dev());
    if !meta.is_dir() || is_mount_root(path, parent_dev)? {
        return remove_tree(path);
    }
    check_no_mounts(path, meta.dev())?;
    let entries = std::fs::read_dir(path).map_err(Error::io("read directory", path))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("read directory", path))?;
        if entry.file_name() != last {
            remove_tree(&entry.path())?;
        }
    }
    remove_tree(&path.join(last))?;
    std::fs::remove_dir(path).map_err(Error::io("remove", path))
}

/// Whether `path` is the root of a mount: statx's mount-root attribute, or (a kernel without it)
/// a device other than its parent's.
fn is_mount_root(path: &Path, parent_dev: Option<u64>) -> Result<bool> {
    let id = crate::sys::statx_identity(path).map_err(|e| Error::io("stat", path)(e.into()))?;
    Ok(id.mount_root.unwrap_or_else(|| parent_dev.is_some_and(|d| d != id.dev)))
}

fn check_no_mounts(dir: &Path, dev: u64) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("read directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("read directory", dir))?;
        let path = entry.path();
        if is_mount_root(&path, Some(dev))? {
            return Err(Error::MountInside { path: dir.to_owned(), mount: path });
        }
        if entry.file_type().map_err(Error::io("stat", &path))?.is_dir() {
            check_no_mounts(&path, dev)?;
        }
    }
    Ok(())
}

/// Bytes (allocated) and inodes used by the tree at `path`, staying on its filesystem.
pub fn measure(path: &Path) -> Result<Usage> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
    let mut usage = Usage { used_bytes: meta.blocks() * 512, used_inodes: 1, ..Usage::default() };
    add_tree(path, meta.dev(), &mut usage)?;
    Ok(usage)
}

fn add_tree(dir: &Path, dev: u64, usage: &mut Usage) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("read directory", dir))?;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.dev() != dev {
            continue;
        }
        usage.used_bytes += meta.blocks() * 512;
        usage.used_inodes += 1;
        if meta.is_dir() {
            add_tree(&entry.path(), dev, usage)?;
        }
    }
    Ok(())
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
