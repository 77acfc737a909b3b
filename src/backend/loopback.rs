//! `loop`: a sparse file (0600) attached to a loop device, formatted ext4 or xfs on first stage.
//! With `allocation: thick` the file is preallocated (fallocate) whenever it is made or grows.

use super::{Attachment, Backend, Error, Found, Frozen, Kind, Promise, Result, Rules, Unencryptable, Usage, VolumeDir};
use crate::sys::tree::{Copied, CopyReport, Progress};
use crate::sys::{FsType, Host, MountEntry, MountOptions, Place, mount_at};
use crate::volume::{Access, Allocation, Spec, Staging};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loop images are sized in whole filesystem blocks.
const ALIGN: u64 = 4096;
/// mkfs.xfs refuses a filesystem smaller than 300 MiB.
const XFS_MIN: u64 = 300 << 20;
/// The smallest loop image that holds a useful ext4 filesystem.
const EXT4_MIN: u64 = 16 << 20;

/// Superblock options a loop volume's stage mount takes, whatever its filesystem.
const STAGE: [&str; 6] = ["lazytime", "sync", "dirsync", "discard", "nodiscard", "noquota"];
/// Superblock options of one filesystem only.
const EXT4_STAGE: [&str; 2] = ["errors=remount-ro", "errors=continue"];
const XFS_STAGE: [&str; 1] = ["nouuid"];

/// The rules of loop volumes.
#[derive(Debug)]
pub struct LoopRules;

impl Rules for LoopRules {
    fn kind(&self) -> Kind {
        Kind::Loop
    }

    fn minimum(&self, fs: Option<FsType>) -> u64 {
        match fs {
            Some(FsType::Xfs) => XFS_MIN,
            _ => EXT4_MIN,
        }
    }

    fn aligned(&self, bytes: u64) -> u64 {
        bytes.div_ceil(ALIGN).saturating_mul(ALIGN)
    }

    fn stage_fs_options(&self, fs: Option<FsType>) -> Vec<&'static str> {
        let own: &[&str] = match fs.unwrap_or(FsType::Ext4) {
            FsType::Ext4 => &EXT4_STAGE,
            FsType::Xfs => &XFS_STAGE,
        };
        STAGE.iter().chain(own).copied().collect()
    }

    fn preallocates(&self) -> bool {
        true
    }

    fn encryptable(&self, fs: Option<FsType>) -> std::result::Result<(), Unencryptable> {
        match fs {
            None | Some(FsType::Ext4) => Ok(()),
            Some(other) => Err(Unencryptable::Filesystem(other)),
        }
    }

    fn copies_ciphertext(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct LoopBackend {
    pub host: Arc<dyn Host>,
}

/// The file a snapshot writes beside the image while the filesystem is frozen: the device and
/// the staging path, one per line.
const FROZEN: &str = ".frozen";

impl LoopBackend {
    /// Thaws a filesystem that a killed snapshot left frozen (its marker says where), so a
    /// freeze never outlives the call that took it; nothing to do without a marker.
    fn thaw_leftover(&self, dir: &VolumeDir) -> Result<Option<String>> {
        let marker = dir.0.join(FROZEN);
        let Ok(text) = std::fs::read_to_string(&marker) else { return Ok(None) };
        let mut lines = text.lines();
        let (device, path) = (Path::new(lines.next().unwrap_or("")), Path::new(lines.next().unwrap_or("")));
        let place = crate::sys::place_at(path).ok();
        let ours = place.as_ref().is_some_and(|p| self.host.mounted_from(p, device) != Some(false));
        let note = match place.filter(|_| ours) {
            Some(place) => match self.host.thaw(&place) {
                Ok(()) => format!("thawed {} (a snapshot was cut short while it was frozen)", path.display()),
                Err(e) if is_einval(&e) => format!("{} was not frozen", path.display()),
                Err(e) => return Err(e.into()),
            },
            None => format!("{} no longer holds the volume; nothing to thaw", path.display()),
        };
        std::fs::remove_file(&marker).map_err(Error::io("remove", &marker))?;
        Ok(Some(note))
    }

    /// The loop devices backing `image`: none when nothing holds it open (one lease), else
    /// those the list of every loop device shows.
    fn devices_of(&self, image: &Path) -> Result<Vec<PathBuf>> {
        if self.host.unopened(image) == Some(true) {
            return Ok(Vec::new());
        }
        let loops = self.host.loop_list()?;
        Ok(crate::sys::loops_for(&loops, image).into_iter().map(|l| l.device.clone()).collect())
    }

    /// Sizes the open image to `bytes` (never shrinks), preallocating it for a thick volume, and
    /// makes it durable.
    fn size_image(&self, vol: &Spec, file: &std::fs::File, image: &Path, bytes: u64) -> Result<()> {
        let len = file.metadata().map_err(Error::io("stat", image))?.len();
        if bytes > len {
            file.set_len(bytes).map_err(Error::io("size", image))?;
        }
        if thick(vol) {
            let end = i64::try_from(bytes.max(len)).unwrap_or(i64::MAX);
            nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, end)
                .map_err(|errno| Error::io("preallocate", image)(errno.into()))?;
        }
        file.sync_all().map_err(Error::io("sync", image))
    }

    /// Formats the device if (and only if) it carries no signature at all; an encrypted
    /// volume's ext4 gets the `encrypt` feature.
    fn ensure_fs(&self, device: &Path, fs: FsType, encrypt: bool) -> Result<()> {
        match self.host.probe_fs(device)? {
            None => Ok(self.host.mkfs(device, fs, encrypt)?),
            Some(found) if found == fs.as_str() => Ok(()),
            Some(found) => {
                Err(Error::WrongFilesystem { device: device.to_owned(), found, expected: fs.as_str().to_owned() })
            }
        }
    }
}

/// Mount options for the stage mount: the user's, plus `nouuid` for xfs so clones mount.
pub fn stage_options(fs: FsType, flags: &[String]) -> MountOptions {
    let mut options: Vec<String> = flags.to_vec();
    if fs == FsType::Xfs && !options.iter().any(|o| o == "nouuid") {
        options.push("nouuid".to_owned());
    }
    MountOptions { readonly: false, options }
}

impl LoopBackend {
    /// The staging mount of `s`, held without following a symlink, once the kernel confirms it
    /// is the filesystem of the volume's loop device: a freeze never lands on another filesystem.
    fn staged_fs(&self, s: &Staging) -> Result<Place> {
        let place = crate::sys::place_at(&s.path)?;
        let device = s.device.as_deref().ok_or(Error::Unsupported("freezing a volume without its device"))?;
        match self.host.mounted_from(&place, device) {
            Some(false) => Err(Error::NotStagedHere(s.path.clone())),
            Some(true) | None => Ok(place),
        }
    }
}

impl Backend for LoopBackend {
    /// A sparse image's size, and its allocated blocks; not made yet (a copy still to run), it
    /// will be, at the volume's size.
    fn promise(&self, vol: &Spec, dir: &VolumeDir) -> Promise {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(dir.image()) {
            Ok(m) if m.is_file() => {
                Promise { sized: m.len().max(vol.capacity), written: m.blocks().saturating_mul(512) }
            }
            _ => Promise { sized: vol.capacity, written: 0 },
        }
    }

    /// An image file.
    fn found_in(&self, dir: &VolumeDir, _table: &[MountEntry]) -> bool {
        dir.image().exists()
    }

    /// The image's length, and the filesystem on it (ext4 when none is told).
    fn found_size(&self, dir: &VolumeDir) -> Result<Found> {
        let image = dir.image();
        let size = std::fs::metadata(&image).map_err(Error::io("stat", &image))?.len();
        let probed = self.host.probe_fs(&image)?;
        Ok(Found {
            capacity: Some(size),
            fs_type: Some(probed.as_deref().and_then(FsType::parse).unwrap_or(FsType::Ext4)),
        })
    }

    fn binds_data(&self) -> bool {
        false
    }

    fn deletes_at_once(&self) -> bool {
        true
    }

    fn kind(&self) -> Kind {
        Kind::Loop
    }

    fn free_bytes(&self, root: &Path) -> Result<u64> {
        Ok(self.host.statvfs(root)?.available_bytes)
    }

    fn provision(&self, vol: &Spec, dir: &VolumeDir) -> Result<()> {
        let image = dir.image();
        let file = crate::volume::private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&image)
            .map_err(Error::io("create", &image))?;
        self.size_image(vol, &file, &image, vol.capacity)
    }

    /// Detaches what holds the image, then removes it. Without an image there is nothing to
    /// detach: a delete unlinks it only after detaching every device, and a device that holds
    /// it unlinked by someone else is detached by the unstage (its recorded device, else the
    /// list) or by the delete's detach of the recorded device. So the background removal of a
    /// deleted loop volume lists no loop device.
    fn delete(&self, _vol: &Spec, dir: &VolumeDir) -> Result<()> {
        let image = dir.image();
        if !image.exists() {
            return Ok(());
        }
        for device in self.devices_of(&image)? {
            self.host.loop_detach_backing(&device, &image)?;
        }
        match std::fs::remove_file(&image) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &image)(e)),
            _ => Ok(()),
        }
    }

    fn attach(&self, _vol: &Spec, dir: &VolumeDir) -> Result<Attachment> {
        let image = dir.image();
        if !image.exists() {
            return Err(Error::Missing { path: image });
        }
        if let Some(device) = self.devices_of(&image)?.into_iter().next() {
            return Ok(Attachment { device: Some(device), fresh: false });
        }
        Ok(Attachment { device: Some(self.host.loop_attach(&image, false)?), fresh: true })
    }

    /// The known device first, by its own status: then nothing holds the image any more, as a
    /// lease shows, and no other device needs to be looked for. Should that fail (the device
    /// node gone, say), the list of every device decides, as without a known device.
    fn detach(&self, _vol: &Spec, dir: &VolumeDir, known: Option<&Path>) -> Result<()> {
        let image = dir.image();
        if let Some(device) = known {
            if let Err(e) = self.host.loop_detach_backing(device, &image) {
                tracing::debug!(device = %device.display(), error = %e, "the recorded device: the list decides");
            }
        }
        for device in self.devices_of(&image)? {
            self.host.loop_detach_backing(&device, &image)?;
        }
        Ok(())
    }

    fn stage(
        &self,
        vol: &Spec,
        _dir: &VolumeDir,
        device: Option<&Path>,
        staging: &Place,
        access: &Access,
    ) -> Result<()> {
        let device = device.ok_or(Error::Unsupported("staging a loop volume that is not attached"))?;
        let Access::Mount { flags } = access else {
            return Ok(());
        };
        let fs = vol.fs();
        self.ensure_fs(device, fs, vol.encrypted)?;
        let grow = vol.grow_fs;
        if grow && fs == FsType::Ext4 {
            self.host.grow_fs_offline(fs, device)?;
        }
        self.host.mount(device, staging, fs.as_str(), &stage_options(fs, flags))?;
        if grow && fs == FsType::Xfs {
            if let Err(e) = self.host.grow_fs(fs, device, staging.path()) {
                crate::undo::log("a failed grow: unmount", self.host.unmount(staging, false));
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn holds(&self, dir: &VolumeDir, staging: &Staging, table: &[MountEntry]) -> bool {
        let Some(device) = staging.device.as_deref() else { return false };
        if !self.host.loop_backs(device, &dir.image()).unwrap_or(false) {
            return false;
        }
        match mount_at(table, &staging.path) {
            Some(m) => Path::new(&m.source) == device,
            None => matches!(staging.access, Access::Block), // block: the device is the staging
        }
    }

    fn shows(&self, _dir: &VolumeDir, staging: &Staging, place: &Place) -> Option<bool> {
        match (&staging.access, &staging.device) {
            (Access::Block, Some(device)) => self.host.same_mount_root(place, device),
            (Access::Mount { .. }, Some(device)) => self.host.mounted_from(place, device),
            _ => None,
        }
    }

    fn expand(&self, vol: &Spec, dir: &VolumeDir, bytes: u64) -> Result<()> {
        let image = dir.image();
        let file = OpenOptions::new().write(true).open(&image).map_err(Error::io("open", &image))?;
        self.size_image(vol, &file, &image, bytes)?;
        for device in self.devices_of(&image)? {
            self.host.loop_set_capacity(&device)?;
        }
        Ok(())
    }

    fn grow_fs(&self, vol: &Spec, device: &Path, mounted_at: Option<&Path>) -> Result<()> {
        match mounted_at {
            Some(path) => Ok(self.host.grow_fs(vol.fs(), device, path)?),
            None => Ok(self.host.grow_fs_offline(vol.fs(), device)?),
        }
    }

    fn usage(&self, vol: &Spec, _dir: &VolumeDir, path: &Path) -> Result<Usage> {
        let meta = std::fs::metadata(path).map_err(Error::io("stat", path))?;
        if !meta.is_dir() {
            return Ok(Usage { total_bytes: vol.capacity, ..Usage::default() });
        }
        Ok(self.host.statvfs(path)?.into())
    }

    fn storage_problem(&self, _vol: &Spec, dir: &VolumeDir) -> Option<String> {
        (!dir.image().is_file()).then(|| format!("the backing file {} is missing", dir.image().display()))
    }

    fn copy_needs_still_source(&self) -> bool {
        true
    }

    /// Freezes a filesystem mounted at the staging path, recording the freeze first: a kill
    /// before the thaw is undone at the next call, unstage or start. One that a marker shows
    /// strata froze and never thawed (a killed copy) is still frozen: the kernel answers EBUSY,
    /// and the freeze is taken over as it is.
    fn freeze_for_copy(&self, _vol: &Spec, dir: &VolumeDir, staging: Option<&Staging>) -> Result<Option<Frozen>> {
        let Some(s) = staging.filter(|s| matches!(s.access, Access::Mount { .. })) else { return Ok(None) };
        let place = self.staged_fs(s)?;
        let marker = dir.0.join(FROZEN);
        let ours = marker.exists();
        let device = s.device.as_deref().unwrap_or(Path::new(""));
        let text = format!("{}\n{}\n", device.display(), s.path.display());
        std::fs::write(&marker, text).map_err(Error::io("record the freeze", &marker))?;
        match self.host.freeze(&place) {
            Ok(()) => {}
            Err(e) if ours && is_errno(&e, libc::EBUSY) => {}
            Err(e) => {
                crate::undo::log("a failed freeze: remove its marker", std::fs::remove_file(&marker));
                return Err(e.into());
            }
        }
        crate::crashpoint::hit("snapshot:frozen");
        Ok(Some(Frozen { place, marker }))
    }

    /// A thaw that fails is tried once more at once; should it fail again, the marker stays and
    /// the next call, unstage or start thaws.
    fn thaw_after_copy(&self, _dir: &VolumeDir, frozen: Frozen) -> Result<()> {
        self.host.thaw(&frozen.place).or_else(|_| self.host.thaw(&frozen.place))?;
        std::fs::remove_file(&frozen.marker).map_err(Error::io("remove", &frozen.marker))
    }

    fn copy_instantly(&self, _vol: &Spec, dir: &VolumeDir, dest: &VolumeDir, _ro: bool) -> Result<Option<CopyReport>> {
        Ok(self.host.reflink_file(&dir.image(), &dest.image())?.then(reflinked))
    }

    fn restore_instantly(&self, from: &VolumeDir, _vol: &Spec, dir: &VolumeDir) -> Result<Option<CopyReport>> {
        Ok(self.host.reflink_file(&from.image(), &dir.image())?.then(reflinked))
    }

    /// Copies the image as it is (the caller holds it still: frozen, or not staged and locked).
    fn copy_out(
        &self,
        _vol: &Spec,
        dir: &VolumeDir,
        dest: &VolumeDir,
        _ro: bool,
        progress: &Progress,
    ) -> Result<CopyReport> {
        Ok(image_report(self.host.copy_file(&dir.image(), &dest.image(), progress)?))
    }

    fn copy_size(&self, dir: &VolumeDir) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir.image()).map_or(0, |m| (m.blocks() * 512).min(m.len()))
    }

    fn recover(&self, _vol: &Spec, dir: &VolumeDir) -> Result<Option<String>> {
        self.thaw_leftover(dir)
    }

    fn copy_in(&self, from: &VolumeDir, _vol: &Spec, dir: &VolumeDir, progress: &Progress) -> Result<CopyReport> {
        Ok(image_report(self.host.copy_file(&from.image(), &dir.image(), progress)?))
    }

    /// Grows the copied image to the volume's capacity; the filesystem follows at stage.
    fn fit(&self, vol: &Spec, dir: &VolumeDir) -> Result<bool> {
        let image = dir.image();
        let file = OpenOptions::new().write(true).open(&image).map_err(Error::io("open", &image))?;
        let len = file.metadata().map_err(Error::io("stat", &image))?.len();
        if vol.capacity <= len && !thick(vol) {
            return Ok(false);
        }
        self.size_image(vol, &file, &image, vol.capacity)?;
        Ok(vol.capacity > len)
    }

    fn delete_copy(&self, at: &VolumeDir) -> Result<()> {
        match std::fs::remove_file(at.image()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", at.image())(e)),
            _ => Ok(()),
        }
    }
}

/// A copy of the image, as a tree copy's report: one file.
fn image_report(copied: Copied) -> CopyReport {
    CopyReport { files: 1, bytes: copied.bytes, reflinked: u64::from(copied.reflinked), ..CopyReport::default() }
}

/// A whole image shared with its source, as a tree copy's report.
fn reflinked() -> CopyReport {
    CopyReport { files: 1, reflinked: 1, ..CopyReport::default() }
}

/// Whether a host error is the kernel's EINVAL (FITHAW on a filesystem that is not frozen).
fn is_einval(e: &crate::sys::Error) -> bool {
    is_errno(e, libc::EINVAL)
}

fn is_errno(e: &crate::sys::Error, errno: i32) -> bool {
    matches!(e, crate::sys::Error::Os { action: crate::sys::Action::Other(_), errno: n, .. } if *n as i32 == errno)
}

/// Whether the volume asked for a preallocated image (`allocation: thick`).
fn thick(vol: &Spec) -> bool {
    vol.allocation == Allocation::Thick
}
