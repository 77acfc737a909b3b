//! What the kernel shows of a volume, asked rather than taken from records: its loop device, and
//! whether a mount at a place is one of its.

use super::{Engine, Result, Volume};
use crate::backend::{Kind, VolumeDir};
use crate::sys::{Host, MountEntry, Place, bind_identity, loop_for, mount_at};
use std::path::{Path, PathBuf};

impl Engine {
    /// Whether the topmost mount at `place` is one of this volume's: a bind of its data
    /// directory (dir, btrfs, tmpfs), its loop device's filesystem, or its device node (block).
    /// Decided by `statx` where it can be, else by the mount table; a volume that strata does
    /// not know owns nothing.
    pub(super) fn owns_mount(&self, id: &str, vol: Option<&Volume>, place: &Place) -> Result<bool> {
        let data = self.dir(id).data();
        let device = self.device_of(id, vol)?;
        let mut proofs = vec![self.host.same_mount_root(place, &data)];
        if let Some(dev) = &device {
            proofs.push(self.host.mounted_from(place, dev));
            proofs.push(self.host.same_mount_root(place, dev));
        }
        if proofs.contains(&Some(true)) {
            return Ok(true);
        }
        if proofs.iter().all(Option::is_some) {
            return Ok(false);
        }
        let table = self.host.mount_table()?;
        let Some(m) = mount_at(&table, place.path()) else { return Ok(false) };
        let from_device = device.as_ref().is_some_and(|d| Path::new(&m.source) == d.as_path());
        Ok(from_device || shows(&table, &data, m) || device.as_ref().is_some_and(|d| shows(&table, d, m)))
    }

    /// The loop device of a volume: the one its node state names, else the one the kernel shows
    /// attached to its image.
    pub(super) fn device_of(&self, id: &str, vol: Option<&Volume>) -> Result<Option<PathBuf>> {
        let image = self.dir(id).image();
        let recorded = vol.and_then(|v| v.staging.as_ref()).and_then(|s| s.device.clone());
        if recorded.is_none() && vol.is_some_and(|v| !v.backend.keeps_an_image()) {
            return Ok(None); // its record says it has no image: nothing to look for
        }
        if !image.exists() {
            // The image was unlinked under a live device: only the kernel's name for it is left.
            // No image and no recorded device (every dir, btrfs and tmpfs volume): no device.
            if recorded.is_none() {
                return Ok(None);
            }
            let loops = self.host.loop_list()?;
            return Ok(recorded.filter(|d| loops.iter().any(|l| l.device == *d && l.backing_file == image)));
        }
        if let Some(dev) = recorded {
            if self.host.loop_backs(&dev, &image)? {
                return Ok(Some(dev));
            }
        }
        self.attached_device(&self.dir(id))
    }

    /// The loop device attached to the image in `dir`: none without an image or while nothing
    /// holds the image open (one lease, see [`crate::sys::Host::unopened`]), else the one the list
    /// of every loop device shows.
    fn attached_device(&self, dir: &VolumeDir) -> Result<Option<PathBuf>> {
        let image = dir.image();
        if !image.exists() || self.host.unopened(&image) == Some(true) {
            return Ok(None);
        }
        Ok(loop_for(&self.host.loop_list()?, &image).map(|l| l.device.clone()))
    }

    /// Mounts the kernel shows holding the volume, wherever they are: binds of its data
    /// directory (and the mount on it for tmpfs), filesystems from its loop device, binds of its
    /// device node. The data root's own mounts (a tmpfs volume's mount, the volumes' private
    /// mount) do not count. Records play no part: this is what destructive calls ask.
    pub(super) fn kernel_users(&self, id: &str, backend: Kind) -> Result<Vec<PathBuf>> {
        self.kernel_users_of(&self.dir(id), backend)
    }

    /// [`Engine::kernel_users`] of the volume directory `dir` (a volume's, or one set aside).
    pub(super) fn kernel_users_of(&self, dir: &VolumeDir, backend: Kind) -> Result<Vec<PathBuf>> {
        self.kernel_users_with(&mut LazyTable::new(&*self.host), dir, backend)
    }

    /// [`Engine::kernel_users_of`] with `table` (read once for many). It is not read for a kind
    /// whose data only its loop device shows (loop) when no device is attached: no mount can
    /// show that volume then.
    pub(super) fn kernel_users_with(
        &self,
        table: &mut LazyTable,
        dir: &VolumeDir,
        backend: Kind,
    ) -> Result<Vec<PathBuf>> {
        let device = self.attached_device(dir)?;
        let binds_data = self.backend(backend).binds_data();
        if !binds_data && device.is_none() {
            return Ok(Vec::new());
        }
        let table = table.get()?;
        let mut want = Vec::new();
        if binds_data {
            want.extend(bind_identity(table, &dir.data()));
        }
        if let Some(dev) = &device {
            want.extend(bind_identity(table, dev));
        }
        let rdev = device.as_deref().and_then(device_numbers);
        let from_device = |m: &MountEntry| {
            device.as_ref().is_some_and(|d| Path::new(&m.source) == d.as_path())
                || rdev.is_some_and(|(ma, mi)| (m.major, m.minor) == (ma, mi))
        };
        let users = table.iter().filter(|m| want.contains(&m.identity()) || from_device(m));
        Ok(users.filter(|m| !self.internal_mount(m, dir)).map(|m| m.mount_point.clone()).collect())
    }

    /// Where the volume's node state says it is staged and published, each place counted only
    /// while the kernel shows the volume there (`statx`; the mount table only where that cannot
    /// tell): what a delete asks in the call when the background removal asks the rest.
    pub(super) fn recorded_users(&self, vol: &Volume) -> Result<Vec<PathBuf>> {
        let Some(s) = &vol.staging else { return Ok(Vec::new()) };
        let mut users: Vec<PathBuf> = self.publications(vol)?.into_iter().map(|p| p.target).collect();
        if self.staging_live(vol, s)? {
            users.push(s.path.clone());
        }
        Ok(users)
    }

    /// The data root's own mounts of a volume: a tmpfs volume's mount on its data directory.
    fn internal_mount(&self, m: &MountEntry, dir: &VolumeDir) -> bool {
        m.mount_point == dir.data() || m.mount_point == self.cfg.root.join("volumes")
    }

    /// What holds the topmost mount at `place`, for a message.
    pub(super) fn mount_source(&self, place: &Place) -> String {
        let table = self.host.mount_table().unwrap_or_default();
        mount_at(&table, place.path()).map_or("unknown".to_owned(), |m| format!("{} ({})", m.source, m.fs_type))
    }
}

/// Whether mount `m` is a bind of `source` (same device and subtree).
pub(super) fn shows(table: &[MountEntry], source: &Path, m: &MountEntry) -> bool {
    let want = match mount_at(table, source) {
        Some(s) => Some(s.identity()),
        None => bind_identity(table, source),
    };
    want == Some(m.identity())
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

/// The mount table, read at most once per call, and only when a cheap check cannot decide.
pub(super) struct LazyTable<'a> {
    host: &'a dyn Host,
    table: Option<crate::sys::MountTable>,
}

impl<'a> LazyTable<'a> {
    pub(super) fn new(host: &'a dyn Host) -> Self {
        LazyTable { host, table: None }
    }

    pub(super) fn get(&mut self) -> Result<&[MountEntry]> {
        if self.table.is_none() {
            self.table = Some(self.host.mount_table()?);
        }
        Ok(self.table.as_deref().map_or(&[][..], |t| t.as_slice()))
    }
}
