//! Damage is contained: a volume whose record or node state cannot be read, or whose directory
//! has no record, is quarantined (listed with the reason, refused by destructive calls) instead
//! of stopping the node or being taken for "not in use". Creates and deletes work aside (see
//! [`super::aside`]), so a volume's own directory without a record is never strata's leftover,
//! except an empty one or one holding an older strata's intent file.

use super::{Engine, Error, Result, Volume, record, state};
use crate::backend::{Kind, VolumeDir};
use crate::sys::{MountEntry, bind_identity, loop_for};
use std::path::{Path, PathBuf};

/// A volume that cannot be used until an operator repairs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub id: String,
    pub reason: String,
}

/// Moves `dir` (under `volumes/` or `snapshots/`) to `.quarantine/<name>.<unix seconds>` beside
/// it, for an operator: inside the same directory (which may be a mount of its own), under a
/// name no id takes. Mounts inside it and loop devices on files in it follow it.
pub(super) fn set_aside(dir: &Path) -> Result<PathBuf> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(Error::io("move aside", dir)(std::io::ErrorKind::InvalidInput.into()));
    };
    let aside = parent.join(".quarantine");
    super::perm::make_dir(&aside)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let to = aside.join(format!("{}.{now}", name.to_string_lossy()));
    std::fs::rename(dir, &to).map_err(Error::io("move aside", dir))?;
    Ok(to)
}

impl Engine {
    /// Reads a volume's record and node state; damage becomes [`Error::Quarantined`].
    pub(super) fn load(&self, id: &str) -> Result<Option<Volume>> {
        let dir = self.dir(id);
        let quarantined = |reason: String| Error::Quarantined { id: id.to_owned(), reason };
        let vol = match record::load(&dir.record()) {
            Err(Error::Record { path, reason }) => {
                return Err(quarantined(format!("record {}: {reason}", path.display())));
            }
            other => other?,
        };
        let Some(mut vol) = vol else {
            if dir.0.exists() && !self.leftover(&dir) {
                return Err(quarantined(format!(
                    "{} exists but holds no record (moved aside, lost, or left by an older strata); its \
                     contents are kept",
                    dir.0.display()
                )));
            }
            return Ok(None);
        };
        let node = match state::load(&dir) {
            Err(Error::Record { path, reason }) => {
                return Err(quarantined(format!("node state {}: {reason}", path.display())));
            }
            other => other?,
        };
        if node.staging.is_some() {
            vol.staging = node.staging;
        }
        vol.marked = node.publications;
        Ok(Some(vol))
    }

    /// Why the volume `id` is quarantined, if it is.
    pub fn quarantine_of(&self, id: &str) -> Option<Quarantine> {
        match self.load(id) {
            Err(Error::Quarantined { id, reason }) => Some(Quarantine { id, reason }),
            _ => None,
        }
    }

    /// Every quarantined volume under the root, with its reason.
    pub fn quarantined(&self) -> Result<Vec<Quarantine>> {
        let mut out = Vec::new();
        for id in self.volume_ids()? {
            if let Err(Error::Quarantined { id, reason }) = self.load(&id) {
                out.push(Quarantine { id, reason });
            }
        }
        Ok(out)
    }

    /// Mounts the kernel shows holding the volume, wherever they are: binds of its data
    /// directory (and the mount on it for tmpfs), filesystems from its loop device, binds of its
    /// device node. The data root's own mounts (a tmpfs volume's mount, the volumes' private
    /// mount) do not count. Records play no part: this is what destructive calls ask.
    pub(super) fn kernel_users(&self, id: &str, backend: Kind) -> Result<Vec<PathBuf>> {
        let dir = self.dir(id);
        let table = self.host.mount_table()?;
        let mut want = Vec::new();
        if self.backend(backend).binds_data() {
            want.extend(bind_identity(&table, &dir.data()));
        }
        let device = if dir.image().exists() {
            loop_for(&self.host.loop_list()?, &dir.image()).map(|l| l.device.clone())
        } else {
            None
        };
        if let Some(dev) = &device {
            want.extend(bind_identity(&table, dev));
        }
        let rdev = device.as_deref().and_then(device_numbers);
        let from_device = |m: &MountEntry| {
            device.as_ref().is_some_and(|d| Path::new(&m.source) == d.as_path())
                || rdev.is_some_and(|(ma, mi)| (m.major, m.minor) == (ma, mi))
        };
        let users = table.iter().filter(|m| want.contains(&m.identity()) || from_device(m));
        Ok(users.filter(|m| !self.internal_mount(m, &dir)).map(|m| m.mount_point.clone()).collect())
    }

    /// The data root's own mounts of a volume: a tmpfs volume's mount on its data directory.
    fn internal_mount(&self, m: &MountEntry, dir: &VolumeDir) -> bool {
        m.mount_point == dir.data() || m.mount_point == self.cfg.root.join("volumes")
    }
}

/// The major and minor numbers of the block device node `dev`.
fn device_numbers(dev: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(dev).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}
