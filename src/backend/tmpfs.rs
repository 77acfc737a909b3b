//! `tmpfs`: a tmpfs mounted under the root for the life of the volume, bound where it is used.
//! Snapshots are tree copies kept on disk under the root (`snapshots/<id>/data`), so they outlive
//! the node's memory; a restore or a clone is a new tmpfs filled with a copy of the tree.

use super::{
    Backend, DeviceNodes, Error, Found, Kind, Promise, Result, Rules, Usage, VolumeDir, make_dir, shows_bind,
    stage_bind,
};
use crate::sys::tree::{self, CopyReport, Progress};
use crate::sys::{Host, MountEntry, MountOptions, Place, mount_at, place_at};
use crate::volume::{Access, Spec, Staging};
use std::path::Path;
use std::sync::Arc;

/// `statfs(2)`'s type of a tmpfs.
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// tmpfs volumes are never a way to run setuid programs or reach devices.
const ALWAYS: [&str; 2] = ["nosuid", "nodev"];

/// The rules of tmpfs volumes.
#[derive(Debug)]
pub struct TmpfsRules;

impl Rules for TmpfsRules {
    fn kind(&self) -> Kind {
        Kind::Tmpfs
    }

    fn always_options(&self) -> &'static [&'static str] {
        &ALWAYS
    }

    fn device_nodes(&self) -> DeviceNodes {
        DeviceNodes::Never
    }

    fn journaled_create(&self) -> bool {
        true
    }

    fn quick_calls(&self) -> bool {
        true
    }

    fn in_memory(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct TmpfsBackend {
    pub host: Arc<dyn Host>,
}

/// The tmpfs mount's options. `nosuid,nodev` always: a tmpfs volume is never a way to run setuid
/// programs or reach device nodes, and a remount (expand) without them would clear them.
fn options(bytes: u64) -> MountOptions {
    let options = [format!("size={bytes}"), "mode=1777".to_owned(), "nosuid".to_owned(), "nodev".to_owned()];
    MountOptions { readonly: false, options: options.to_vec() }
}

impl TmpfsBackend {
    /// Whether a tmpfs is the topmost mount on the data directory: `statx` and `statfs` there
    /// (no directory, no mount), the mount table only when they cannot tell.
    fn mounted(&self, dir: &VolumeDir) -> Result<bool> {
        if let Ok(place) = place_at(&dir.data()) {
            if matches!(place.stat(), Ok(None)) {
                return Ok(false);
            }
            if let Some(facts) = self.host.fs_facts(&place) {
                return Ok(facts.magic == TMPFS_MAGIC && self.host.is_mount_point(&place)?);
            }
        }
        let table = self.host.mount_table()?;
        Ok(mount_at(&table, &dir.data()).is_some_and(|m| m.fs_type == "tmpfs"))
    }
}

impl Backend for TmpfsBackend {
    /// Its size, and what its mount uses now.
    fn promise(&self, vol: &Spec, dir: &VolumeDir) -> Promise {
        let mounted = place_at(&dir.data()).is_ok_and(|p| self.host.is_mount_point(&p).unwrap_or(false));
        let used = if mounted { self.host.statvfs(&dir.data()).map_or(0, |f| f.used_bytes) } else { 0 };
        Promise { sized: vol.capacity, written: used }
    }

    /// A tmpfs mounted on the data directory.
    fn found_in(&self, dir: &VolumeDir, table: &[MountEntry]) -> bool {
        mount_at(table, &dir.data()).is_some_and(|m| m.fs_type == "tmpfs")
    }

    fn found_size(&self, dir: &VolumeDir) -> Result<Found> {
        Ok(Found { capacity: Some(self.host.statvfs(&dir.data())?.total_bytes), fs_type: None })
    }

    fn deletes_at_once(&self) -> bool {
        true
    }

    fn outlives_boot(&self) -> bool {
        false
    }

    fn remake_lost(&self, vol: &Spec, dir: &VolumeDir, table: &[MountEntry]) -> Result<Option<String>> {
        if mount_at(table, &dir.data()).is_some() {
            return Ok(None);
        }
        self.provision(vol, dir)?;
        Ok(Some("mounted a new empty tmpfs (its contents did not survive)".to_owned()))
    }

    fn shows(&self, dir: &VolumeDir, _staging: &Staging, place: &Place) -> Option<bool> {
        shows_bind(&*self.host, dir, place)
    }

    fn kind(&self) -> Kind {
        Kind::Tmpfs
    }

    fn free_bytes(&self, _root: &Path) -> Result<u64> {
        Ok(self.host.memory_available()?)
    }

    /// Mounts the tmpfs at the data directory (also used by reconcile after a reboot).
    fn provision(&self, vol: &Spec, dir: &VolumeDir) -> Result<()> {
        make_dir(&dir.data(), 0o755)?;
        if !self.mounted(dir)? {
            self.host.mount(Path::new("tmpfs"), &place_at(&dir.data())?, "tmpfs", &options(vol.capacity))?;
        }
        Ok(())
    }

    fn delete(&self, _vol: &Spec, dir: &VolumeDir) -> Result<()> {
        if self.mounted(dir)? {
            self.host.unmount(&place_at(&dir.data())?, false)?;
        }
        match std::fs::remove_dir(dir.data()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", dir.data())(e)),
            _ => Ok(()),
        }
    }

    /// A tmpfs that is gone (the node rebooted) comes back empty: its contents never outlive
    /// the node, and the volume still exists.
    fn stage(
        &self,
        vol: &Spec,
        dir: &VolumeDir,
        _device: Option<&Path>,
        staging: &Place,
        access: &Access,
    ) -> Result<()> {
        if !self.mounted(dir)? {
            self.provision(vol, dir)?;
        }
        stage_bind(self.host.as_ref(), &dir.data(), staging, access)
    }

    fn expand(&self, _vol: &Spec, dir: &VolumeDir, bytes: u64) -> Result<()> {
        Ok(self.host.remount(&place_at(&dir.data())?, &options(bytes))?)
    }

    fn usage(&self, _vol: &Spec, dir: &VolumeDir, _path: &Path) -> Result<Usage> {
        Ok(self.host.statvfs(&dir.data())?.into())
    }

    /// A snapshot (`readonly`) copies the tree to disk at `dest`; a clone mounts the new
    /// volume's tmpfs at `dest` (sized by [`Backend::fit`]) and copies the tree into it. A
    /// tmpfs that is not mounted has lost its contents: copying its empty mount point would
    /// pass for data, so that is refused.
    fn copy_out(
        &self,
        vol: &Spec,
        dir: &VolumeDir,
        dest: &VolumeDir,
        readonly: bool,
        progress: &Progress,
    ) -> Result<CopyReport> {
        if !self.mounted(dir)? {
            return Err(Error::Missing { path: dir.data() });
        }
        if !readonly {
            self.provision(vol, dest)?;
        }
        Ok(self.host.copy_tree(&dir.data(), &dest.data(), progress)?)
    }

    fn copy_in(&self, from: &VolumeDir, vol: &Spec, dir: &VolumeDir, progress: &Progress) -> Result<CopyReport> {
        self.provision(vol, dir)?;
        Ok(self.host.copy_tree(&from.data(), &dir.data(), progress)?)
    }

    /// What the tmpfs holds (statvfs of its mount), or the tree of a snapshot on disk.
    fn copy_size(&self, dir: &VolumeDir) -> u64 {
        match self.mounted(dir) {
            Ok(true) => self.host.statvfs(&dir.data()).map_or(0, |s| s.used_bytes),
            _ => tree::measure(&dir.data()).map_or(0, |u| u.bytes),
        }
    }

    /// Sizes the new volume's tmpfs to its own capacity (a clone's was mounted at the source's).
    fn fit(&self, vol: &Spec, dir: &VolumeDir) -> Result<bool> {
        self.expand(vol, dir, vol.capacity)?;
        Ok(false)
    }

    fn delete_copy(&self, at: &VolumeDir) -> Result<()> {
        Ok(tree::remove_tree(&at.data()).map_err(crate::sys::Error::from)?)
    }

    fn storage_problem(&self, _vol: &Spec, dir: &VolumeDir) -> Option<String> {
        match self.mounted(dir) {
            Ok(true) => None,
            Ok(false) => Some(format!("the tmpfs at {} is not mounted", dir.data().display())),
            Err(e) => Some(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, FakeHost};
    use crate::volume::Allocation;

    fn volume() -> Spec {
        Spec {
            kind: Kind::Tmpfs,
            capacity: 1048576,
            fs_type: None,
            allocation: Allocation::Thin,
            encrypted: false,
            grow_fs: false,
        }
    }

    /// The background removal deletes an aside whose data directory the call removed already.
    #[test]
    fn a_missing_data_directory_is_not_mounted_without_asking_the_table() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Arc::new(FakeHost::new());
        host.answer_statx(true);
        let backend = TmpfsBackend { host: host.clone() };
        let dir = VolumeDir(tmp.path().join("v"));
        std::fs::create_dir(&dir.0).unwrap();
        backend.delete(&volume(), &dir).unwrap();
        assert_eq!(host.table_reads(), 0);
        assert!(host.calls().is_empty(), "nothing to unmount");
    }

    #[test]
    fn the_tmpfs_mount_and_its_remount_carry_nosuid_and_nodev() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Arc::new(FakeHost::new());
        let backend = TmpfsBackend { host: host.clone() };
        let dir = VolumeDir(tmp.path().to_owned());
        backend.provision(&volume(), &dir).unwrap();
        backend.expand(&volume(), &dir, 2 << 20).unwrap();
        let calls = host.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        for call in calls {
            let opts = match call {
                Call::Mount { fstype, opts, .. } if fstype == "tmpfs" => opts,
                Call::Remount { opts, .. } => opts,
                other => panic!("unexpected {other:?}"),
            };
            for flag in ["nosuid", "nodev"] {
                assert!(opts.options.iter().any(|o| o == flag), "{flag} missing from {opts:?}");
            }
        }
    }
}
