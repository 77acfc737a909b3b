//! `btrfs`: a subvolume under the root (which must be on btrfs), its size held by a qgroup limit.

use super::{Backend, Error, Kind, Result, Rules, Usage, VolumeDir, shows_bind, stage_bind};
use crate::sys::tree::{CopyReport, Progress};
use crate::sys::{Host, MountEntry, Place};
use crate::volume::{Access, Spec, Staging};
use std::path::Path;
use std::sync::Arc;

/// The inode number of every btrfs subvolume's root directory.
const SUBVOLUME_INO: u64 = 256;

/// The rules of btrfs volumes.
#[derive(Debug)]
pub struct BtrfsRules;

impl Rules for BtrfsRules {
    fn kind(&self) -> Kind {
        Kind::Btrfs
    }
}

#[derive(Debug)]
pub struct BtrfsBackend {
    pub host: Arc<dyn Host>,
}

impl BtrfsBackend {
    fn require_btrfs(&self, path: &Path) -> Result<()> {
        if self.host.is_btrfs(path)? { Ok(()) } else { Err(Error::NotBtrfs { path: path.to_owned() }) }
    }
}

impl Backend for BtrfsBackend {
    /// A subvolume's root directory on btrfs.
    fn found_in(&self, dir: &VolumeDir, _table: &[MountEntry]) -> bool {
        use std::os::unix::fs::MetadataExt;
        let data = dir.data();
        std::fs::symlink_metadata(&data).is_ok_and(|m| m.is_dir() && m.ino() == SUBVOLUME_INO)
            && self.require_btrfs(&data).is_ok()
    }

    fn shows(&self, dir: &VolumeDir, _staging: &Staging, place: &Place) -> Option<bool> {
        shows_bind(&*self.host, dir, place)
    }

    fn kind(&self) -> Kind {
        Kind::Btrfs
    }

    fn free_bytes(&self, root: &Path) -> Result<u64> {
        self.require_btrfs(root)?;
        Ok(self.host.statvfs(root)?.available_bytes)
    }

    fn provision(&self, vol: &Spec, dir: &VolumeDir) -> Result<()> {
        self.require_btrfs(&dir.0)?;
        let data = dir.data();
        if !data.exists() {
            self.host.btrfs_quota_enable(&dir.0)?;
            self.host.btrfs_subvolume_create(&data)?;
        }
        self.host.btrfs_qgroup_limit(&data, vol.capacity)?;
        let chmod = std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o777));
        chmod.map_err(Error::io("chmod", &data))
    }

    fn delete(&self, _vol: &Spec, dir: &VolumeDir) -> Result<()> {
        if dir.data().exists() {
            self.host.btrfs_subvolume_delete(&dir.data())?;
        }
        Ok(())
    }

    fn stage(
        &self,
        _vol: &Spec,
        dir: &VolumeDir,
        _device: Option<&Path>,
        staging: &Place,
        access: &Access,
    ) -> Result<()> {
        if !dir.data().exists() {
            return Err(Error::Missing { path: dir.data() });
        }
        stage_bind(self.host.as_ref(), &dir.data(), staging, access)
    }

    fn expand(&self, _vol: &Spec, dir: &VolumeDir, bytes: u64) -> Result<()> {
        Ok(self.host.btrfs_qgroup_limit(&dir.data(), bytes)?)
    }

    fn usage(&self, vol: &Spec, dir: &VolumeDir, _path: &Path) -> Result<Usage> {
        let used = self.host.btrfs_qgroup_usage(&dir.data())?;
        let fs = self.host.statvfs(&dir.data())?;
        Ok(Usage::within(vol.capacity, used, fs.used_inodes, fs))
    }

    fn storage_problem(&self, _vol: &Spec, dir: &VolumeDir) -> Option<String> {
        (!dir.data().is_dir()).then(|| format!("the subvolume {} is missing", dir.data().display()))
    }

    /// A snapshot of the subvolume: atomic, and whole at once.
    fn copy_instantly(&self, _vol: &Spec, dir: &VolumeDir, dest: &VolumeDir, ro: bool) -> Result<Option<CopyReport>> {
        self.host.btrfs_snapshot(&dir.data(), &dest.data(), ro)?;
        Ok(Some(CopyReport::default()))
    }

    fn restore_instantly(&self, from: &VolumeDir, _vol: &Spec, dir: &VolumeDir) -> Result<Option<CopyReport>> {
        self.host.btrfs_snapshot(&from.data(), &dir.data(), false)?;
        Ok(Some(CopyReport::default()))
    }

    fn copy_out(&self, v: &Spec, dir: &VolumeDir, dest: &VolumeDir, ro: bool, _p: &Progress) -> Result<CopyReport> {
        Ok(self.copy_instantly(v, dir, dest, ro)?.unwrap_or_default())
    }

    fn copy_in(&self, from: &VolumeDir, vol: &Spec, dir: &VolumeDir, _p: &Progress) -> Result<CopyReport> {
        Ok(self.restore_instantly(from, vol, dir)?.unwrap_or_default())
    }

    fn fit(&self, vol: &Spec, dir: &VolumeDir) -> Result<bool> {
        self.host.btrfs_qgroup_limit(&dir.data(), vol.capacity)?;
        Ok(false)
    }

    fn delete_copy(&self, at: &VolumeDir) -> Result<()> {
        if at.data().exists() {
            self.host.btrfs_subvolume_delete(&at.data())?;
        }
        Ok(())
    }
}
