//! The fscrypt half of [`super::FakeHost`]: policies by directory path and one keyring per
//! filesystem (the source of the mount holding a path), dropped when its last mount goes, as
//! the kernel drops a superblock's keyring.

use super::fscrypt::{KeyId, KeyStatus, Policy, Removal};
use super::{MountEntry, Place};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the fake knows of fscrypt.
#[derive(Debug, Default)]
pub(super) struct Crypt {
    policies: BTreeMap<PathBuf, KeyId>,
    rings: BTreeMap<String, BTreeSet<KeyId>>,
    /// Filesystems (mount sources) that cannot encrypt.
    pub unsupported: BTreeSet<String>,
}

/// The source of the mount that holds `path`: the deepest mount point above it.
pub(super) fn fs_of(mounts: &[MountEntry], path: &Path) -> String {
    let holder = mounts
        .iter()
        .rev()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count());
    holder.map_or_else(|| "/dev/fakeroot".to_owned(), |m| m.source.clone())
}

fn errno(e: i32) -> nix::Error {
    nix::errno::Errno::from_raw(e)
}

impl Crypt {
    pub fn policy(&self, mounts: &[MountEntry], dir: &Place) -> Result<Policy, nix::Error> {
        if self.unsupported.contains(&fs_of(mounts, dir.path())) {
            return Ok(Policy::Unsupported);
        }
        if !dir.path().is_dir() {
            return Err(errno(libc::ENOENT));
        }
        Ok(self.policies.get(dir.path()).map_or(Policy::None, |id| Policy::Strata(*id)))
    }

    pub fn set_policy(&mut self, mounts: &[MountEntry], dir: &Place, id: &KeyId) -> Result<(), nix::Error> {
        if self.policy(mounts, dir)? == Policy::Unsupported {
            return Err(errno(libc::EOPNOTSUPP));
        }
        if !self.rings.get(&fs_of(mounts, dir.path())).is_some_and(|r| r.contains(id)) {
            return Err(errno(libc::ENOKEY));
        }
        if std::fs::read_dir(dir.path()).map_err(|_| errno(libc::ENOENT))?.next().is_some() {
            return Err(errno(libc::ENOTEMPTY));
        }
        match self.policies.get(dir.path()) {
            Some(had) if had != id => Err(errno(libc::EEXIST)),
            _ => {
                self.policies.insert(dir.path().to_owned(), *id);
                Ok(())
            }
        }
    }

    pub fn add(&mut self, mounts: &[MountEntry], fs: &Place, id: KeyId) -> Result<KeyId, nix::Error> {
        let ring = fs_of(mounts, fs.path());
        if self.unsupported.contains(&ring) {
            return Err(errno(libc::EOPNOTSUPP));
        }
        self.rings.entry(ring).or_default().insert(id);
        Ok(id)
    }

    pub fn remove(&mut self, mounts: &[MountEntry], fs: &Place, id: &KeyId) -> Removal {
        let present = self.rings.get_mut(&fs_of(mounts, fs.path())).is_some_and(|r| r.remove(id));
        Removal { absent: !present, files_busy: false }
    }

    pub fn status(&self, mounts: &[MountEntry], fs: &Place, id: &KeyId) -> KeyStatus {
        let present = self.rings.get(&fs_of(mounts, fs.path())).is_some_and(|r| r.contains(id));
        if present { KeyStatus::Present } else { KeyStatus::Absent }
    }

    /// Every key in every keyring, for tests that check none is left.
    pub fn keys(&self) -> Vec<KeyId> {
        self.rings.values().flatten().copied().collect()
    }

    /// Forgets every key, as a reboot does (policies are on disk and stay).
    pub fn reboot(&mut self) {
        self.rings.clear();
    }

    /// Drops the keyrings of filesystems no longer mounted anywhere.
    pub fn forget_unmounted(&mut self, mounts: &[MountEntry]) {
        self.rings.retain(|source, _| mounts.iter().any(|m| &m.source == source));
    }
}
