//! Least privilege on disk: the data root, its directories, records, node state, locks and loop
//! images are root's alone (0700 directories, 0600 files). Pods reach volume data through their
//! binds, which do not depend on these modes, so volume data directories keep their own.

use super::{Error, Result};
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Mode of every directory strata keeps its own state in.
pub const DIR_MODE: u32 = 0o700;
pub use crate::volume::{FILE_MODE, private_file};

/// The directories of the root strata makes; `volumes/<id>/data` is the volume's, not strata's.
pub const ROOT_DIRS: [&str; 5] = ["volumes", "snapshots", "staging", "locks", "locks/snapshots"];

/// Files of a volume or snapshot directory that are strata's own.
const OWN_FILES: [&str; 5] = ["volume.json", "node.json", ".node.json.next", "snapshot.json", "disk.img"];

/// Creates `path` and any missing parents as [`DIR_MODE`] directories; an existing one is kept.
pub fn make_dir(path: &Path) -> Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(path).map_err(Error::io("create", path))
}

/// Creates the root and its directories, and tightens a root left looser by an older strata:
/// its directories at every open (a few `stat`s), and when one of them was loose, every record,
/// node state, lock and image below them, before the root itself (so a crash midway redoes it).
pub fn open_root(root: &Path) -> Result<()> {
    make_dir(root)?;
    let mut loose = is_loose(root)?;
    for sub in ROOT_DIRS {
        let dir = root.join(sub);
        make_dir(&dir)?;
        loose |= is_loose(&dir)?;
    }
    if !loose {
        return Ok(());
    }
    tracing::info!(root = %root.display(), "tightening the data root to 0700/0600");
    for sub in ["volumes", "snapshots"] {
        tighten_entries(&root.join(sub), &OWN_FILES)?;
    }
    for sub in ["locks", "locks/snapshots", "locks/flex"] {
        tighten_entries(&root.join(sub), &[])?;
    }
    for sub in ROOT_DIRS.iter().rev().chain(&[""]) {
        tighten(&root.join(sub))?;
    }
    Ok(())
}

/// Clears the group and other bits of an open file of strata's own, when it has any (a file
/// an older strata made); `meta` is the file's, so the usual case costs no system call.
pub fn narrow(file: &std::fs::File, meta: &std::fs::Metadata) -> std::io::Result<()> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode & !0o077))
}

fn is_loose(path: &Path) -> Result<bool> {
    let meta = std::fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
    Ok(meta.permissions().mode() & 0o077 != 0)
}

/// Tightens the entries of `dir`: lock files, and in each subdirectory the files named `own`.
fn tighten_entries(dir: &Path, own: &[&str]) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(Error::io("list", dir))?.path();
        if path.extension().is_some_and(|e| e == "lock") {
            tighten(&path)?;
        } else if !own.is_empty() && path.is_dir() {
            for name in own {
                tighten(&path.join(name))?;
            }
            tighten(&path)?;
        }
    }
    Ok(())
}

/// Clears the group and other bits of a file or directory (never a symlink); a missing one is fine.
fn tighten(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path)(e)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() || mode & 0o077 == 0 {
        return Ok(());
    }
    let narrowed = std::fs::Permissions::from_mode(mode & !0o077);
    std::fs::set_permissions(path, narrowed).map_err(Error::io("chmod", path))
}

#[cfg(test)]
mod tests;
