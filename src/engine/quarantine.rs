//! Damage is contained: a volume whose record or node state cannot be read, or whose directory
//! has no record, is quarantined (listed with the reason, refused by destructive calls) instead
//! of stopping the node or being taken for "not in use". An intent file written before a create
//! touches anything is the only proof that a directory without a record is a half-done create.

use super::{Engine, Error, Result, Volume, record, state};
use crate::backend::{Kind, VolumeDir};
use crate::sys::{MountEntry, bind_identity, loop_for};
use std::path::{Path, PathBuf};

/// The intent file a create writes first and removes once the record is written.
const INTENT: &str = ".creating";
/// The intent file a delete writes before it removes anything.
const DELETING: &str = ".deleting";

/// A volume that cannot be used until an operator repairs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    pub id: String,
    pub reason: String,
}

impl VolumeDir {
    fn intent(&self) -> PathBuf {
        self.0.join(INTENT)
    }

    fn deleting(&self) -> PathBuf {
        self.0.join(DELETING)
    }

    /// A directory with nothing in it holds nothing to keep.
    fn is_empty_dir(&self) -> bool {
        std::fs::read_dir(&self.0).is_ok_and(|mut d| d.next().is_none())
    }
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

    /// Starts a create in `dir`: clears what an interrupted create left (proven by its intent
    /// file), then makes the directory with the intent already in it (made aside and renamed
    /// into place), so no reader ever sees the directory without either record or intent.
    pub(super) fn begin_create(&self, vol: &Volume, dir: &VolumeDir) -> Result<()> {
        if dir.0.exists() {
            self.backend(vol.backend).delete(vol, dir)?;
            crate::backend::tree::remove_tree(&dir.0)?;
        }
        let aside = self.cfg.root.join("volumes").join(format!(".{}.new", vol.id));
        if aside.exists() {
            crate::backend::tree::remove_tree(&aside)?;
        }
        super::perm::make_dir(&aside)?;
        let intent = aside.join(INTENT);
        let made = super::perm::private_file().write(true).create(true).truncate(true).open(&intent);
        made.map(drop).map_err(Error::io("write the create intent", &intent))?;
        std::fs::rename(&aside, &dir.0).map_err(Error::io("create", &dir.0))
    }

    /// Ends a create whose record is written.
    pub(super) fn end_create(&self, dir: &VolumeDir) -> Result<()> {
        match std::fs::remove_file(dir.intent()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", dir.intent())(e)),
            _ => Ok(()),
        }
    }

    /// Whether `dir` is what an interrupted create or delete left: no record, and an intent file
    /// (or nothing at all) there.
    pub(super) fn leftover(&self, dir: &VolumeDir) -> bool {
        !dir.record().exists() && (dir.intent().exists() || dir.deleting().exists() || dir.is_empty_dir())
    }

    /// Drops the delete intent of a delete that failed before its record went.
    pub(super) fn end_delete(&self, dir: &VolumeDir) {
        let _ = std::fs::remove_file(dir.deleting());
    }

    /// Starts a delete: the intent written before anything is removed lets a delete killed
    /// half-way be finished, not taken for a volume that lost its record.
    pub(super) fn begin_delete(&self, dir: &VolumeDir) -> Result<()> {
        let made = super::perm::private_file().write(true).create(true).truncate(true).open(dir.deleting());
        made.map(drop).map_err(Error::io("write the delete intent", dir.deleting()))
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
        if backend != Kind::Loop {
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
