//! The host: every mount, loop ioctl, fscrypt step and external tool passes through [`Host`] (so a
//! fake can record them), with the fd-based paths ([`Place`]), the tree engine for volume contents
//! and the errors they return. Plain file steps on strata's own state (a record's
//! `renameat2`, an image's `fallocate`) are made by their owners with nix directly.

pub mod access;
pub mod caps;
mod errno;
mod error;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod fake_fscrypt;
mod fdmount;
mod freeze;
pub mod fscrypt;
mod linux;
pub mod locked;
mod loopdev;
pub mod mountinfo;
mod mounttable;
pub use mounttable::MountTable;
mod place;
mod statx;
pub use statx::{identity as statx_identity, mount_root_attr};
mod tools;
pub mod tree;

pub use errno::{Errno, ToErrno};
pub use error::{Action, Error, Result};
/// The recording fake host, for unit tests only: never part of the library strata ships.
#[cfg(test)]
pub use fake::{Call, FakeHost};
pub use linux::LinuxHost;
pub use mountinfo::MountEntry;
pub use place::{Kind as PlaceKind, Place, PlaceError, Stat as PlaceStat};

use std::fmt::Debug;
use std::path::{Path, PathBuf};

/// A filesystem that strata can put on a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Ext4,
    Xfs,
}

impl FsType {
    /// Parses a fs type name as kubelet and CSI spell it.
    pub fn parse(name: &str) -> Option<FsType> {
        match name {
            "ext4" => Some(FsType::Ext4),
            "xfs" => Some(FsType::Xfs),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }
}

/// Space and inode figures of a mounted filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
    pub used_inodes: u64,
}

/// A filesystem as `statfs(2)` shows it through one mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsFacts {
    /// Writes fail: the mount is read-only, or its filesystem (an error remounted it, say).
    pub read_only: bool,
    /// The filesystem type's magic number (`TMPFS_MAGIC`, `EXT4_SUPER_MAGIC`, ...).
    pub magic: u64,
}

/// An attached loop device and the file behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopDevice {
    pub device: PathBuf,
    /// The backing file's path as the kernel shows it: relative to the mount namespace that
    /// attached it, so only a hint.
    pub backing_file: PathBuf,
    /// The backing file's device and inode (`LOOP_GET_STATUS64`): its identity in any namespace.
    pub backing: Option<(u64, u64)>,
}

/// Options for a filesystem mount: generic flags plus filesystem-specific data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub readonly: bool,
    /// Mount options as a user wrote them (`noatime`, `nouuid`, `size=64m`, ...).
    pub options: Vec<String>,
}

/// Everything strata asks of the host. [`LinuxHost`] does it; the unit tests' `FakeHost` records it.
pub trait Host: Send + Sync + Debug {
    /// Bind-mounts `source` (a path strata owns) onto `target` with the per-mount flags of `opts`
    /// (`ro`, `nosuid`, `nodev`, `noexec`, atime flags) in force before the mount is visible:
    /// what propagates to other mount namespaces is exactly what was asked.
    fn bind_mount(&self, source: &Path, target: &Place, opts: &MountOptions) -> Result<()>;
    /// Mounts a filesystem of type `fstype` from `source` (a device, or a name for tmpfs).
    fn mount(&self, source: &Path, target: &Place, fstype: &str, opts: &MountOptions) -> Result<()>;
    /// Remounts an existing mount with new data options (tmpfs `size=`), keeping its flags.
    fn remount(&self, target: &Place, opts: &MountOptions) -> Result<()>;
    /// Makes the mount at `target` private: mounts under it no longer propagate to or from peers.
    fn make_private(&self, target: &Place) -> Result<()>;
    /// Unmounts the topmost mount at `target` (never through a symlink); `lazy` detaches it even
    /// while busy.
    fn unmount(&self, target: &Place, lazy: bool) -> Result<()>;
    /// The current mount table of this process's mount namespace.
    fn mount_table(&self) -> Result<MountTable>;
    /// Whether something is mounted on `place` (it is the root of a mount); a missing path is not.
    /// The default asks the mount table; [`LinuxHost`] asks `statx(2)` and falls back to the
    /// table when statx cannot tell (a dead mount answers with an error, never "not mounted").
    fn is_mount_point(&self, place: &Place) -> Result<bool> {
        Ok(mount_at(&self.mount_table()?, place.path()).is_some())
    }
    /// `Some(true)` when `mount_point` is the root of a mount that shows `dir` itself (same device
    /// and inode: a bind of `dir`, or `dir`'s own mount; `dir` may be a device node bound onto a
    /// file), `Some(false)` when it is not, `None` when this host cannot tell cheaply (the
    /// default); the caller then asks the mount table.
    fn same_mount_root(&self, _mount_point: &Place, _dir: &Path) -> Option<bool> {
        None
    }
    /// `Some(true)` when `mount_point` is the root of a filesystem mounted from the block device
    /// node `device`, `Some(false)` when it is not, `None` when this host cannot tell cheaply.
    fn mounted_from(&self, _mount_point: &Place, _device: &Path) -> Option<bool> {
        None
    }
    /// What `statfs(2)` says of the filesystem the topmost mount at `place` shows; `None` when
    /// this host cannot tell cheaply (the default) or `place` holds no directory or file.
    fn fs_facts(&self, _place: &Place) -> Option<FsFacts> {
        None
    }

    /// Attaches `file` to a free loop device (autoclear off) and returns the device.
    fn loop_attach(&self, file: &Path, readonly: bool) -> Result<PathBuf>;
    /// Detaches a loop device.
    fn loop_detach(&self, device: &Path) -> Result<()>;
    /// Detaches `device` only while its backing file is `file` (checked on the same open of the
    /// device where the host can); true if it did. The default checks the listing, then detaches.
    fn loop_detach_backing(&self, device: &Path, file: &Path) -> Result<bool> {
        if !self.loop_backs(device, file)? {
            return Ok(false);
        }
        self.loop_detach(device).map(|()| true)
    }
    /// Every attached loop device with its backing file.
    fn loop_list(&self) -> Result<Vec<LoopDevice>>;
    /// `Some(true)` when no open file anywhere holds `file` (no loop device backs it), `Some(false)`
    /// when something does, `None` when this host cannot tell cheaply (the default); the caller
    /// then lists the loop devices.
    fn unopened(&self, _file: &Path) -> Option<bool> {
        None
    }
    /// Whether loop device `device` is attached to `file` (same device and inode): one check of
    /// a device strata recorded, instead of listing every loop device. The default lists.
    fn loop_backs(&self, device: &Path, file: &Path) -> Result<bool> {
        Ok(loops_for(&self.loop_list()?, file).iter().any(|l| l.device == device))
    }
    /// Tells the loop driver to re-read the size of its backing file.
    fn loop_set_capacity(&self, device: &Path) -> Result<()>;

    /// The filesystem signature on a block device, if any (`ext4`, `xfs`, ...).
    fn probe_fs(&self, device: &Path) -> Result<Option<String>>;
    /// Makes a filesystem on a blank device; with `encrypt`, ext4's `encrypt` feature (fscrypt).
    fn mkfs(&self, device: &Path, fs: FsType, encrypt: bool) -> Result<()>;
    /// Grows a mounted filesystem to fill its device.
    fn grow_fs(&self, fs: FsType, device: &Path, mountpoint: &Path) -> Result<()>;
    /// Grows an unmounted filesystem to fill its device (ext4 only: check, then resize).
    fn grow_fs_offline(&self, fs: FsType, device: &Path) -> Result<()>;
    /// Space and inode usage of the filesystem holding `path`.
    fn statvfs(&self, path: &Path) -> Result<FsStats>;

    /// Creates a btrfs subvolume at `path`.
    fn btrfs_subvolume_create(&self, path: &Path) -> Result<()>;
    /// Deletes the btrfs subvolume at `path`.
    fn btrfs_subvolume_delete(&self, path: &Path) -> Result<()>;
    /// Snapshots subvolume `source` to `dest`.
    fn btrfs_snapshot(&self, source: &Path, dest: &Path, readonly: bool) -> Result<()>;
    /// Enables quotas on the btrfs filesystem holding `path` (idempotent).
    fn btrfs_quota_enable(&self, path: &Path) -> Result<()>;
    /// Limits the referenced bytes of the subvolume at `path`.
    fn btrfs_qgroup_limit(&self, path: &Path, bytes: u64) -> Result<()>;
    /// Bytes referenced by the subvolume at `path`, from its qgroup.
    fn btrfs_qgroup_usage(&self, path: &Path) -> Result<u64>;
    /// Whether `path` lies on a btrfs filesystem.
    fn is_btrfs(&self, path: &Path) -> Result<bool>;

    /// Copies the directory tree `source` to `dest` (new, or an empty mount point) with the
    /// tree engine ([`tree::copy_tree`]): what a pod wrote is copied as data, never followed.
    /// Counts what it copies in `progress` and stops when it is cancelled.
    fn copy_tree(&self, source: &Path, dest: &Path, progress: &tree::Progress) -> Result<tree::CopyReport>;
    /// Freezes the filesystem mounted at `mountpoint` (FIFREEZE) so its device is consistent.
    fn freeze(&self, mountpoint: &Place) -> Result<()>;
    /// Thaws a filesystem frozen by [`Host::freeze`] (FITHAW).
    fn thaw(&self, mountpoint: &Place) -> Result<()>;

    /// Bytes of memory the kernel could give to a new tmpfs without swapping.
    fn memory_available(&self) -> Result<u64>;

    /// Copies `source` to a new file `dest`: a reflink where the filesystem allows, else a sparse
    /// copy, counted in `progress` (a cancelled copy removes `dest`).
    fn copy_file(&self, source: &Path, dest: &Path, progress: &tree::Progress) -> Result<tree::Copied>;

    /// Makes the new file `dest` share `source`'s extents (a reflink); false (nothing made) where
    /// the filesystem cannot.
    fn reflink_file(&self, source: &Path, dest: &Path) -> Result<bool>;

    /// Renames the directory `from` (strata's own, under its data root) to `to`, which must not
    /// exist; what is mounted inside it and the loop devices backed by files inside it follow.
    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()>;

    /// The fscrypt policy of the directory at `dir` ([`fscrypt::Policy::Unsupported`] where its
    /// filesystem cannot encrypt).
    fn fscrypt_policy(&self, dir: &Place) -> Result<fscrypt::Policy>;
    /// Sets strata's v2 policy naming `id` on the empty directory at `dir`; the key must be in
    /// its filesystem's keyring.
    fn fscrypt_set_policy(&self, dir: &Place, id: &fscrypt::KeyId) -> Result<()>;
    /// Adds `key` to the keyring of the filesystem holding the directory `fs`; returns the
    /// identifier the kernel computed for it.
    fn fscrypt_add_key(&self, fs: &Place, key: &[u8; fscrypt::KEY_SIZE]) -> Result<fscrypt::KeyId>;
    /// Removes key `id` from the keyring of the filesystem holding `fs`; says what it left.
    fn fscrypt_remove_key(&self, fs: &Place, id: &fscrypt::KeyId) -> Result<fscrypt::Removal>;
    /// The status of key `id` in the keyring of the filesystem holding `fs`.
    fn fscrypt_key_status(&self, fs: &Place, id: &fscrypt::KeyId) -> Result<fscrypt::KeyStatus>;
}

/// A [`Place`] for a path strata owns (under its data root): its parent opened as it is.
pub fn place_at(path: &Path) -> Result<Place> {
    Place::at(path).map_err(|source| Error::Place { path: path.to_owned(), source })
}

/// Finds the mount whose mount point is exactly `path`, the topmost if several are stacked.
pub fn mount_at<'a>(table: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.mount_point == path)
}

/// The `(major, minor, root)` a bind mount of `path` would show in the mount table: the device of
/// the mount holding `path` and `path`'s place inside that filesystem.
pub fn bind_identity(table: &[MountEntry], path: &Path) -> Option<mountinfo::Identity> {
    let holder = table
        .iter()
        .rev()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())?;
    let rest = path.strip_prefix(&holder.mount_point).ok()?;
    let root = if rest.as_os_str().is_empty() { holder.root.clone() } else { holder.root.join(rest) };
    Some((holder.major, holder.minor, root))
}

/// Finds the loop device whose backing file is `file`: by the file's device and inode where
/// the host reports them (any mount namespace), else by path.
pub fn loop_for<'a>(loops: &'a [LoopDevice], file: &Path) -> Option<&'a LoopDevice> {
    loops_for(loops, file).into_iter().next()
}

/// Every loop device whose backing file is `file` (see [`loop_for`]).
pub fn loops_for<'a>(loops: &'a [LoopDevice], file: &Path) -> Vec<&'a LoopDevice> {
    let id = file_identity(file);
    loops
        .iter()
        .filter(|l| match (l.backing, id) {
            (Some(b), Some(f)) => b == f,
            _ => l.backing_file == file,
        })
        .collect()
}

/// How deep [`loops_under`] looks for images: a scratch directory's `root/volumes/<id>/disk.img`
/// on a scratch filesystem's mount.
const IMAGE_DEPTH: usize = 6;

/// The loop devices backed by files under `dir` (a scratch directory of the bench or the tests,
/// or `volumes/`): by device and inode (whatever path the kernel shows, which is relative to the
/// namespace and mount that attached them), else by path. It looks [`IMAGE_DEPTH`] levels down,
/// never into a volume's `data` (the pod's) and never through a symlink.
pub fn loops_under<'a>(loops: &'a [LoopDevice], dir: &Path) -> Vec<&'a LoopDevice> {
    let mut files = std::collections::HashSet::new();
    let mut stack = vec![(dir.to_owned(), 0)];
    while let Some((d, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = entry.file_type() else { continue };
            if t.is_dir() && depth < IMAGE_DEPTH && entry.file_name() != "data" {
                stack.push((entry.path(), depth + 1));
            } else if t.is_file() {
                files.extend(file_identity(&entry.path()));
            }
        }
    }
    loops.iter().filter(|l| l.backing_file.starts_with(dir) || l.backing.is_some_and(|b| files.contains(&b))).collect()
}

/// The device and inode of `file`, as `LOOP_GET_STATUS64` reports a backing file's.
pub fn file_identity(file: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).ok().map(|m| (m.dev(), m.ino()))
}

/// Lowers the calling thread's CPU priority (nice 10) for work that runs beside the calls and
/// answers nobody (removing deleted volumes' files, making volume directories ahead, journal
/// checkpoints): on a small node it yields the cores to the calls. A failure leaves the thread
/// as it was.
pub fn background_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
}
