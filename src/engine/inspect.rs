//! What the records and the kernel say about one volume, side by side (`strata-csi inspect`):
//! an operator's check before deleting or migrating a volume by hand.

use super::health::Condition;
use super::{Engine, Publication, Result, Volume, validate};
use crate::backend::Usage;
use crate::sys::{MountEntry, mount_at};
use std::path::PathBuf;

/// Which front-end staged a volume, told by its staging path: FlexVolume stages under the
/// root's `staging/`, a CSI CO under its own (kubelet's) directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    Flex,
    Csi,
}

/// One volume as the records and the kernel describe it.
#[derive(Debug)]
pub struct Inspection {
    /// The record (staging from the node state; `publications` are the kernel-confirmed ones).
    pub volume: Volume,
    pub condition: Condition,
    pub staged_by: Option<FrontEnd>,
    /// The mount the kernel has at the recorded staging path.
    pub staging_mount: Option<MountEntry>,
    /// Each recorded publication with the mount the kernel has at its target.
    pub publications: Vec<(Publication, Option<MountEntry>)>,
    /// Loop devices whose backing file is the volume's image.
    pub loop_devices: Vec<PathBuf>,
    /// Usage seen at the staging path; `None` when not staged, `Err` with the reason.
    pub usage: Option<std::result::Result<Usage, crate::backend::Error>>,
    /// For an encrypted volume, whether its key is in the kernel now.
    pub key_in_kernel: Option<bool>,
    /// How far the copy filling the volume is, while one is (a clone or a restore).
    pub copy: Option<String>,
}

/// One snapshot as its record and its copy describe it.
#[derive(Debug, Clone)]
pub struct SnapshotInspection {
    pub snapshot: super::Snapshot,
    /// How far its copy is, while one runs; why it failed, when it did.
    pub copy: Option<String>,
}

impl Engine {
    /// Inspects volume `id`; `None` when no record of it exists.
    pub fn inspect(&self, id: &str) -> Result<Option<Inspection>> {
        validate::id("volume", id)?;
        let Some(volume) = self.get_volume(id)? else { return Ok(None) };
        let table = self.host.mount_table()?;
        let dir = self.dir(id);
        let image = dir.image();
        let loops = self.host.loop_list()?;
        let loop_devices = loops.into_iter().filter(|l| l.backing_file == image).map(|l| l.device).collect();
        let staging = volume.staging.as_ref();
        let staged_by = staging.map(|s| match s.path == self.default_staging(id) {
            true => FrontEnd::Flex,
            false => FrontEnd::Csi,
        });
        let staging_mount = staging.and_then(|s| mount_at(&table, &s.path)).cloned();
        let mut recorded = volume.marked.clone();
        for p in &volume.publications {
            if !recorded.iter().any(|r| r.target == p.target) {
                recorded.push(p.clone());
            }
        }
        let publications = recorded.into_iter().map(|p| (p.clone(), mount_at(&table, &p.target).cloned())).collect();
        let usage = staging.map(|s| {
            let backend = self.backend(volume.backend);
            backend.usage(&volume.spec(), &dir, &s.path)
        });
        let condition = self.condition_in(&volume, &table);
        let copy = volume.copy.as_ref().map(|c| self.copy_state(&super::CopyKey::Volume(id.to_owned()), c, &dir));
        let key_in_kernel = self.key_in_kernel(&volume);
        Ok(Some(Inspection {
            volume,
            condition,
            staged_by,
            staging_mount,
            publications,
            loop_devices,
            usage,
            copy,
            key_in_kernel,
        }))
    }

    /// Inspects snapshot `id`; `None` when no record of it exists.
    pub fn inspect_snapshot(&self, id: &str) -> Result<Option<SnapshotInspection>> {
        let Some(snapshot) = self.get_snapshot(id)? else { return Ok(None) };
        let dir = self.snapshot_dir(id);
        let key = super::CopyKey::Snapshot(id.to_owned());
        let copy = snapshot.copy.as_ref().map(|c| self.copy_state(&key, c, &dir));
        Ok(Some(SnapshotInspection { snapshot, copy }))
    }

    /// A copy's state in words: from what, how far, or why it failed.
    fn copy_state(
        &self,
        key: &super::CopyKey,
        c: &super::record::CopyIntent,
        dir: &crate::backend::VolumeDir,
    ) -> String {
        match &c.failed {
            Some(f) => format!("failed ({:?}): {}", f.cause, f.message),
            None => format!("copying from {:?}: {}", c.from, self.copy_progress(key, dir)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Kind;
    use crate::engine::tests::{fixture, mount_access, req};

    #[test]
    fn a_staged_and_published_loop_volume_is_seen_from_records_and_kernel() {
        let f = fixture();
        f.engine.create_volume(&req("v", Kind::Loop, 64 << 20)).unwrap();
        assert!(f.engine.inspect("v").unwrap().unwrap().staged_by.is_none());
        let (s, t) = (f.staging("v"), f.target("a"));
        f.engine.stage_volume("v", &s, &mount_access()).unwrap();
        f.engine.publish_volume("v", &s, &t, true).unwrap();
        let i = f.engine.inspect("v").unwrap().unwrap();
        assert_eq!(i.staged_by, Some(FrontEnd::Csi));
        assert_eq!(i.loop_devices.len(), 1, "{i:?}");
        assert!(i.staging_mount.is_some(), "{i:?}");
        assert_eq!(i.publications.len(), 1);
        assert!(i.publications[0].0.readonly && i.publications[0].1.is_some(), "{i:?}");
        assert!(!i.condition.abnormal, "{i:?}");
        assert!(f.engine.inspect("nothing").unwrap().is_none());
        assert!(f.engine.inspect("../x").is_err());
    }

    #[test]
    fn the_flex_staging_path_means_strata_flex() {
        let f = fixture();
        f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
        let staging = f.engine.default_staging("v");
        f.engine.stage_volume("v", &staging, &mount_access()).unwrap();
        assert_eq!(f.engine.inspect("v").unwrap().unwrap().staged_by, Some(FrontEnd::Flex));
    }
}
