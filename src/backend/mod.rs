//! Volume backends: one trait, one file per kind (`dir`, `loop`, `btrfs`, `tmpfs`).

mod btrfs;
mod dir;
mod error;
mod loopback;
mod tmpfs;

pub use error::{Error, Result};

pub use crate::volume::{Kind, RECORD_FILE, VolumeDir};

use crate::sys::tree::{CopyReport, Progress};
use crate::sys::{Host, MountEntry, Place};
use crate::volume::{Access, FsType, Spec, Staging};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The device a volume is reachable through, and whether this call attached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub device: Option<PathBuf>,
    pub fresh: bool,
}

/// Usage figures of one volume as a pod sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub used_inodes: u64,
    pub free_inodes: u64,
}

impl From<crate::sys::FsStats> for Usage {
    /// A filesystem that is the volume's own: its figures are the volume's.
    fn from(fs: crate::sys::FsStats) -> Usage {
        Usage {
            total_bytes: fs.total_bytes,
            used_bytes: fs.used_bytes,
            available_bytes: fs.available_bytes,
            total_inodes: fs.total_inodes,
            used_inodes: fs.used_inodes,
            free_inodes: fs.free_inodes,
        }
    }
}

impl Usage {
    /// A volume of `capacity` bytes that uses `used` bytes of a shared filesystem `fs`:
    /// available is bounded by both its size and the filesystem's free space.
    pub fn within(capacity: u64, used: u64, used_inodes: u64, fs: crate::sys::FsStats) -> Usage {
        Usage {
            total_bytes: capacity,
            used_bytes: used,
            available_bytes: capacity.saturating_sub(used).min(fs.available_bytes),
            total_inodes: fs.total_inodes,
            used_inodes,
            free_inodes: fs.free_inodes,
        }
    }
}

/// What a kind decides without touching the host: its sizes, the mount options it takes, whether
/// it can be encrypted or preallocated, and which capacity pool it draws from. Reachable from a
/// [`Kind`] alone ([`rules`]), since the front-ends size and check a request before any engine
/// call; [`Backend`] holds the decisions that ask the host.
pub trait Rules: Send + Sync + Debug {
    fn kind(&self) -> Kind;
    /// The smallest volume with filesystem `fs`.
    fn minimum(&self, _fs: Option<FsType>) -> u64 {
        1
    }
    /// `bytes` rounded up to what a volume is sized in.
    fn aligned(&self, bytes: u64) -> u64 {
        bytes
    }
    /// Superblock options its own filesystem's mount (its stage) takes beyond the per-mount
    /// flags: none for the kinds whose stage is a bind.
    fn stage_fs_options(&self, _fs: Option<FsType>) -> Vec<&'static str> {
        Vec::new()
    }
    /// Options every mount of a volume carries, whatever was asked (tmpfs: `nosuid,nodev`).
    fn always_options(&self) -> &'static [&'static str] {
        &[]
    }
    /// What its mounts do with device nodes, and so whether `devices: allow` means anything.
    fn device_nodes(&self) -> DeviceNodes {
        DeviceNodes::Untouched
    }
    /// Whether it draws from memory (tmpfs) rather than the data root's filesystem.
    fn in_memory(&self) -> bool {
        false
    }
    /// Whether its storage can be preallocated (`allocation: thick`).
    fn preallocates(&self) -> bool {
        false
    }
    /// Whether a volume with filesystem `fs` can be encrypted with fscrypt; why not otherwise.
    fn encryptable(&self, _fs: Option<FsType>) -> std::result::Result<(), Unencryptable> {
        Err(Unencryptable::Kind(self.kind()))
    }
    /// Whether an empty new volume is only its record and directories, which the engine can
    /// make again from the record: its create is then made durable by the intent journal (see
    /// `engine::intents`) rather than by syncs of its own; kinds with storage to format or
    /// allocate sync it.
    fn journaled_create(&self) -> bool {
        false
    }
    /// Whether a new volume's storage needs nothing from its request (a `dir` volume's empty
    /// directory), so the engine may make a few ahead (see `engine::pool`).
    fn pooled(&self) -> bool {
        false
    }
    /// Whether its create, delete, stage and unstage take bounded time: nothing to format,
    /// allocate, flush or detach (a directory, a tmpfs), so a server may run them on its polling
    /// thread (see `engine::quick`).
    fn quick_calls(&self) -> bool {
        false
    }
    /// Whether an encrypted volume's copy is its ciphertext, taken without its key (an image).
    fn copies_ciphertext(&self) -> bool {
        false
    }
}

/// Why a volume cannot be encrypted (see [`Rules::encryptable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unencryptable {
    /// Its kind carries no fscrypt support in strata.
    #[error("encryption: fscrypt is for loop (ext4) and dir volumes; a {} volume cannot be encrypted", .0.as_str())]
    Kind(Kind),
    /// Its filesystem has none.
    #[error(
        "encryption: fscrypt needs ext4 ({} has no fscrypt support in strata); leave fsType empty or ext4",
        .0.as_str()
    )]
    Filesystem(FsType),
}

/// What a kind's mounts do with device nodes (see [`Rules::device_nodes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceNodes {
    /// `nodev` unless the volume's class says `devices: allow` (dir).
    Optional,
    /// Always `nodev` (tmpfs).
    Never,
    /// Never made `nodev` by strata (loop, btrfs).
    Untouched,
}

/// The rules of `kind`.
pub fn rules(kind: Kind) -> &'static dyn Rules {
    match kind {
        Kind::Dir => &dir::DirRules,
        Kind::Loop => &loopback::LoopRules,
        Kind::Btrfs => &btrfs::BtrfsRules,
        Kind::Tmpfs => &tmpfs::TmpfsRules,
    }
}

/// What a backend does for the engine. The engine has validated arguments, holds the volume's
/// lock and keeps the record; a backend makes the change on the host and must be idempotent.
/// Dispatch is a `Box<dyn Backend>` per kind, made once at start: the engine never names a kind,
/// and a new kind is one file and one line in [`make`] and [`rules`].
pub trait Backend: Send + Sync + Debug {
    fn kind(&self) -> Kind;
    /// Bytes a new volume of this kind could still get.
    fn free_bytes(&self, root: &Path) -> Result<u64>;
    /// Whether this backend can serve volumes under `root` on this host.
    fn usable(&self, root: &Path) -> Result<()> {
        self.free_bytes(root).map(drop)
    }
    /// Makes the volume's storage (a directory, a sparse file, a subvolume, a tmpfs).
    fn provision(&self, vol: &Spec, dir: &VolumeDir) -> Result<()>;
    /// Removes the volume's storage; storage already gone is fine.
    fn delete(&self, vol: &Spec, dir: &VolumeDir) -> Result<()>;
    /// Makes the volume reachable as a device (loop).
    fn attach(&self, _vol: &Spec, _dir: &VolumeDir) -> Result<Attachment> {
        Ok(Attachment { device: None, fresh: false })
    }
    /// Undoes [`Backend::attach`]; `known` is the device node state names, if any (checked
    /// before it is detached, and not trusted to be the only one).
    fn detach(&self, _vol: &Spec, _dir: &VolumeDir, _known: Option<&Path>) -> Result<()> {
        Ok(())
    }
    /// Mounts the volume at `staging` (after `attach`, with its device if any).
    fn stage(&self, vol: &Spec, dir: &VolumeDir, device: Option<&Path>, staging: &Place, access: &Access)
    -> Result<()>;
    /// Whether `staging` really holds this volume, judged from the mount table: by default, a
    /// bind of the volume's data directory.
    fn holds(&self, dir: &VolumeDir, staging: &Staging, table: &[MountEntry]) -> bool {
        holds_bind(table, &dir.data(), &staging.path)
    }
    /// Whether `place` (the staging path itself, or a publication's target) is a mount root that
    /// shows the volume staged as `staging`, proven from kernel identities with a `stat` or two
    /// rather than the mount table: by default, the volume's data directory itself (same device
    /// and inode) for the kinds that bind it ([`shows_bind`]). `None` when it cannot be shown
    /// cheaply; the caller then asks the mount table.
    fn shows(&self, dir: &VolumeDir, staging: &Staging, place: &Place) -> Option<bool>;
    /// Whether the storage in `dir` is of this kind, judged from the disk and the mount table
    /// (`table`) where no record says: repair, and leftovers of interrupted calls. Asked in
    /// [`DETECTION_ORDER`]; the last asked takes whatever is left.
    fn found_in(&self, dir: &VolumeDir, table: &[MountEntry]) -> bool;
    /// What the storage found in `dir` says of the volume's size and filesystem, for a record
    /// rebuilt without one: nothing, by default (a tree keeps no size of its own).
    fn found_size(&self, _dir: &VolumeDir) -> Result<Found> {
        Ok(Found::default())
    }
    /// Whether the volume's data directory itself is what its stage binds, so that any bind of
    /// it shows the volume in use: every kind but loop, whose data is the filesystem on its device.
    fn binds_data(&self) -> bool {
        true
    }
    /// Whether a delete removes the storage in the call, before it hands the rest of the
    /// directory to the background removal: an image (a loop device may hold it), a tmpfs (it
    /// holds memory).
    fn deletes_at_once(&self) -> bool {
        false
    }
    /// Whether the storage and its contents outlive a reboot (not a tmpfs's).
    fn outlives_boot(&self) -> bool {
        true
    }
    /// Remakes storage that did not survive a reboot (an empty tmpfs where its mount is gone
    /// from `table`); says what it did, if anything.
    fn remake_lost(&self, _vol: &Spec, _dir: &VolumeDir, _table: &[MountEntry]) -> Result<Option<String>> {
        Ok(None)
    }
    /// What the volume promises its pool beyond what the pool's free figure shows (see
    /// `engine::capacity`): the size it will take and what of it is written now. Nothing, by
    /// default (dir enforces no size; a btrfs qgroup read costs a process).
    fn promise(&self, _vol: &Spec, _dir: &VolumeDir) -> Promise {
        Promise::default()
    }
    /// Grows the volume's storage (file and loop device, qgroup, tmpfs size) to `bytes`.
    fn expand(&self, vol: &Spec, dir: &VolumeDir, bytes: u64) -> Result<()>;
    /// Grows the volume's filesystem on `device` to fill it: online when `mounted_at` is given,
    /// offline otherwise. Only backends that format (loop) have anything to do.
    fn grow_fs(&self, _vol: &Spec, _device: &Path, _mounted_at: Option<&Path>) -> Result<()> {
        Ok(())
    }
    /// Usage as seen at `path`, where the volume is staged or published.
    fn usage(&self, vol: &Spec, dir: &VolumeDir, path: &Path) -> Result<Usage>;
    /// What is wrong with the volume's storage, if anything (missing file, subvolume, mount).
    fn storage_problem(&self, vol: &Spec, dir: &VolumeDir) -> Option<String>;

    /// Whether a staging that [`Backend::shows`] proved also proves the storage that
    /// [`Backend::storage_problem`] looks for (the proof showed the storage's own identity), so
    /// that a publish need not look again.
    fn shown_proves_storage(&self) -> bool {
        false
    }

    /// Whether a copy of this kind reads an image that must stay still until the copy ends
    /// (loop), rather than a tree that is copied as it is (dir, tmpfs) or shared at once (btrfs).
    fn copy_needs_still_source(&self) -> bool {
        false
    }
    /// Holds the volume's filesystem still for a copy while `staging` has it mounted (loop:
    /// FIFREEZE, recorded first so that a kill is undone); `None` when there is nothing to hold.
    fn freeze_for_copy(&self, _vol: &Spec, _dir: &VolumeDir, _staging: Option<&Staging>) -> Result<Option<Frozen>> {
        Ok(None)
    }
    /// Undoes [`Backend::freeze_for_copy`].
    fn thaw_after_copy(&self, _dir: &VolumeDir, _frozen: Frozen) -> Result<()> {
        Ok(())
    }
    /// Makes the whole copy into `dest` at once where the filesystem shares extents (a reflink of
    /// an image, a btrfs snapshot); `None` where it cannot, and then nothing is left at `dest`.
    fn copy_instantly(
        &self,
        _vol: &Spec,
        _dir: &VolumeDir,
        _dest: &VolumeDir,
        _ro: bool,
    ) -> Result<Option<CopyReport>> {
        Ok(None)
    }
    /// [`Backend::copy_instantly`] of a snapshot into a new volume (a restore).
    fn restore_instantly(&self, _from: &VolumeDir, _vol: &Spec, _dir: &VolumeDir) -> Result<Option<CopyReport>> {
        Ok(None)
    }
    /// Copies the volume's contents into `dest` (a snapshot, or a new volume for a clone),
    /// counting in `progress`. A loop image is read as it is: the caller holds it still.
    fn copy_out(
        &self,
        _vol: &Spec,
        _dir: &VolumeDir,
        _dest: &VolumeDir,
        _readonly: bool,
        _progress: &Progress,
    ) -> Result<CopyReport> {
        Err(Error::Unsupported("snapshots and clones"))
    }
    /// Fills a new volume from a snapshot made by [`Backend::copy_out`].
    fn copy_in(&self, _from: &VolumeDir, _vol: &Spec, _dir: &VolumeDir, _progress: &Progress) -> Result<CopyReport> {
        Err(Error::Unsupported("restoring snapshots"))
    }
    /// Bytes of data a copy of the volume (or of the snapshot at `dir`) will read: allocated
    /// bytes of the image or the tree; an estimate shown as the copy's total.
    fn copy_size(&self, _dir: &VolumeDir) -> u64 {
        0
    }
    /// Sizes a freshly copied volume to its capacity; true when its filesystem must grow at stage.
    fn fit(&self, _vol: &Spec, _dir: &VolumeDir) -> Result<bool> {
        Ok(false)
    }
    /// Undoes what a call killed half-way left on the host (a loop volume's frozen filesystem);
    /// says what it did, if anything.
    fn recover(&self, _vol: &Spec, _dir: &VolumeDir) -> Result<Option<String>> {
        Ok(None)
    }
    /// Removes a copy made by [`Backend::copy_out`]; a copy already gone is fine.
    fn delete_copy(&self, _at: &VolumeDir) -> Result<()> {
        Ok(())
    }
}

/// The order the kinds are asked in whether a volume directory without a record holds theirs
/// ([`Backend::found_in`]): an image is a loop volume's, a tmpfs mount on its data directory a
/// tmpfs volume's, a subvolume a btrfs volume's; anything else a dir volume's tree.
pub const DETECTION_ORDER: [Kind; 4] = [Kind::Loop, Kind::Tmpfs, Kind::Btrfs, Kind::Dir];

/// The kind of the storage in `dir`, which has no readable record: the first in
/// [`DETECTION_ORDER`] whose backend finds its storage there, dir's tree when none does.
pub fn detect<'a>(dir: &VolumeDir, table: &[MountEntry], backend: impl Fn(Kind) -> &'a dyn Backend) -> Kind {
    DETECTION_ORDER.into_iter().find(|&k| backend(k).found_in(dir, table)).unwrap_or(Kind::Dir)
}

/// What storage found without a record says of its volume (see [`Backend::found_size`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    /// The size the storage has, if it keeps one.
    pub capacity: Option<u64>,
    /// The filesystem on it, for the kinds that format.
    pub fs_type: Option<FsType>,
}

/// The part of a volume's size that its pool does not see until it is written: the size it will
/// take (`sized`) and what of it is written now (see [`Backend::promise`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Promise {
    pub sized: u64,
    pub written: u64,
}

/// A filesystem frozen for a copy (see [`Backend::freeze_for_copy`]): where it is mounted, and
/// the marker that records the freeze until it is thawed.
#[derive(Debug)]
pub struct Frozen {
    pub place: Place,
    pub marker: PathBuf,
}

/// Creates `path` (one level) with mode `mode`, exactly, whatever the umask; an existing
/// directory is kept.
pub(crate) fn make_dir(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::create_dir(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(Error::io("create directory", path)(e)),
    }
}

/// Makes the backend of `kind`, acting through `host`.
pub fn make(kind: Kind, host: Arc<dyn Host>) -> Box<dyn Backend> {
    match kind {
        Kind::Dir => Box::new(dir::DirBackend { host }),
        Kind::Loop => Box::new(loopback::LoopBackend { host }),
        Kind::Btrfs => Box::new(btrfs::BtrfsBackend { host }),
        Kind::Tmpfs => Box::new(tmpfs::TmpfsBackend { host }),
    }
}

/// Every kind's backend, acting through `host`.
pub fn make_all(host: &Arc<dyn Host>) -> std::collections::BTreeMap<Kind, Box<dyn Backend>> {
    Kind::ALL.into_iter().map(|k| (k, make(k, host.clone()))).collect()
}

/// Binds `source` onto `staging` unless the staging path already holds it (shared by the
/// backends whose volume is a directory tree).
pub(crate) fn stage_bind(host: &dyn Host, source: &Path, staging: &Place, access: &Access) -> Result<()> {
    let Access::Mount { flags } = access else { return Err(Error::BlockUnsupported) };
    let opts = crate::sys::MountOptions { readonly: false, options: flags.clone() };
    Ok(host.bind_mount(source, staging, &opts)?)
}

/// Whether the mount at `staging` is a bind of `source` (same device, same subtree).
pub(crate) fn holds_bind(table: &[MountEntry], source: &Path, staging: &Path) -> bool {
    let Some(mount) = crate::sys::mount_at(table, staging) else {
        return false;
    };
    match crate::sys::bind_identity(table, source) {
        Some(want) => mount.identity() == want,
        None => false,
    }
}

/// Whether `place` is a mount root showing the volume's data directory itself (the backends whose
/// volume is a directory tree, see [`Backend::shows`]).
pub(crate) fn shows_bind(host: &dyn Host, dir: &VolumeDir, place: &Place) -> Option<bool> {
    host.same_mount_root(place, &dir.data())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::FakeHost;

    /// Asks the kinds of [`DETECTION_ORDER`] about `dir` with the mount table `mountinfo`.
    fn detected(dir: &VolumeDir, mountinfo: &str) -> Kind {
        let host: Arc<dyn Host> = Arc::new(FakeHost::new());
        let backends: Vec<(Kind, Box<dyn Backend>)> =
            Kind::ALL.into_iter().map(|k| (k, make(k, host.clone()))).collect();
        let backend = |k: Kind| backends.iter().find(|(kind, _)| *kind == k).map(|(_, b)| b.as_ref()).unwrap();
        detect(dir, &crate::sys::mountinfo::parse(mountinfo), backend)
    }

    #[test]
    fn storage_without_a_record_is_told_by_its_backends_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = VolumeDir(tmp.path().to_owned());
        std::fs::create_dir(dir.data()).unwrap();
        assert_eq!(detected(&dir, ""), Kind::Dir, "a plain tree");
        let data = dir.data().display().to_string();
        let tmpfs = format!("40 30 0:50 / {data} rw,nosuid,nodev shared:9 - tmpfs tmpfs rw,size=1024k\n");
        assert_eq!(detected(&dir, &tmpfs), Kind::Tmpfs, "a tmpfs on the data directory");
        let other = format!("40 30 0:50 / {data} rw shared:9 - ext4 /dev/sda1 rw\n");
        assert_eq!(detected(&dir, &other), Kind::Dir, "another filesystem's mount is no tmpfs");
        std::fs::write(dir.image(), b"").unwrap();
        assert_eq!(detected(&dir, &tmpfs), Kind::Loop, "an image comes first");
    }

    #[test]
    fn every_kind_has_its_own_rules_and_backend() {
        let host: Arc<dyn Host> = Arc::new(FakeHost::new());
        for kind in Kind::ALL {
            assert_eq!(rules(kind).kind(), kind);
            assert_eq!(make(kind, host.clone()).kind(), kind);
        }
        assert!(DETECTION_ORDER.iter().all(|k| Kind::ALL.contains(k)));
        assert_eq!(DETECTION_ORDER.len(), Kind::ALL.len());
    }
}
