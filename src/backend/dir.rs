//! `dir`: a directory under the root, bind-mounted; its size is recorded but not enforced.

use super::{
    Backend, DeviceNodes, Kind, Result, Rules, Unencryptable, Usage, VolumeDir, make_dir, shows_bind, stage_bind,
};
use crate::sys::tree;
use crate::sys::tree::{CopyReport, Progress};
use crate::sys::{Host, MountEntry, Place};
use crate::volume::{Access, FsType, Spec, Staging};
use std::path::Path;
use std::sync::Arc;

/// The rules of dir volumes.
#[derive(Debug)]
pub struct DirRules;

impl Rules for DirRules {
    fn kind(&self) -> Kind {
        Kind::Dir
    }

    fn device_nodes(&self) -> DeviceNodes {
        DeviceNodes::Optional
    }

    fn journaled_create(&self) -> bool {
        true
    }

    fn quick_calls(&self) -> bool {
        true
    }

    fn pooled(&self) -> bool {
        true
    }

    fn encryptable(&self, _fs: Option<FsType>) -> std::result::Result<(), Unencryptable> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct DirBackend {
    pub host: Arc<dyn Host>,
}

impl Backend for DirBackend {
    /// A dir volume's tree is what is left when no other kind finds its storage.
    fn found_in(&self, _dir: &VolumeDir, _table: &[MountEntry]) -> bool {
        true
    }

    fn shows(&self, dir: &VolumeDir, _staging: &Staging, place: &Place) -> Option<bool> {
        shows_bind(&*self.host, dir, place)
    }

    fn kind(&self) -> Kind {
        Kind::Dir
    }

    fn free_bytes(&self, root: &Path) -> Result<u64> {
        Ok(self.host.statvfs(root)?.available_bytes)
    }

    fn provision(&self, _vol: &Spec, dir: &VolumeDir) -> Result<()> {
        make_dir(&dir.data(), 0o777)
    }

    fn delete(&self, _vol: &Spec, dir: &VolumeDir) -> Result<()> {
        Ok(tree::remove_tree(&dir.data()).map_err(crate::sys::Error::from)?)
    }

    fn stage(
        &self,
        _vol: &Spec,
        dir: &VolumeDir,
        _device: Option<&Path>,
        staging: &Place,
        access: &Access,
    ) -> Result<()> {
        stage_bind(self.host.as_ref(), &dir.data(), staging, access)
    }

    fn expand(&self, _vol: &Spec, _dir: &VolumeDir, _bytes: u64) -> Result<()> {
        Ok(())
    }

    /// Capacity is the recorded size; used is what the tree holds; available is bounded by both
    /// the recorded size and the real free space of the filesystem.
    fn usage(&self, vol: &Spec, dir: &VolumeDir, _path: &Path) -> Result<Usage> {
        let tree = tree::measure(&dir.data()).map_err(crate::sys::Error::from)?;
        let fs = self.host.statvfs(&dir.data())?;
        Ok(Usage::within(vol.capacity, tree.bytes, tree.inodes, fs))
    }

    fn storage_problem(&self, _vol: &Spec, dir: &VolumeDir) -> Option<String> {
        (!dir.data().is_dir()).then(|| format!("the data directory {} is missing", dir.data().display()))
    }

    /// [`Backend::shows`] compares the staging's mount root with the data directory itself.
    fn shown_proves_storage(&self) -> bool {
        true
    }

    /// A tree copy (files shared by reflink where the root's filesystem can), of the tree as it
    /// is while the copy walks it.
    fn copy_out(
        &self,
        _vol: &Spec,
        dir: &VolumeDir,
        dest: &VolumeDir,
        _ro: bool,
        progress: &Progress,
    ) -> Result<CopyReport> {
        Ok(self.host.copy_tree(&dir.data(), &dest.data(), progress)?)
    }

    fn copy_in(&self, from: &VolumeDir, _vol: &Spec, dir: &VolumeDir, progress: &Progress) -> Result<CopyReport> {
        Ok(self.host.copy_tree(&from.data(), &dir.data(), progress)?)
    }

    fn copy_size(&self, dir: &VolumeDir) -> u64 {
        tree::measure(&dir.data()).map_or(0, |u| u.bytes)
    }

    fn delete_copy(&self, at: &VolumeDir) -> Result<()> {
        Ok(tree::remove_tree(&at.data()).map_err(crate::sys::Error::from)?)
    }
}
