//! [`FakeHost`]: an in-memory host that records every call and keeps a consistent mount table.

use super::{Action, Errno, Error, FsStats, FsType, Host, LoopDevice, MountEntry, MountOptions, Place, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// One call made on the host, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Bind { source: PathBuf, target: PathBuf, readonly: bool, options: Vec<String> },
    Mount { source: PathBuf, target: PathBuf, fstype: String, opts: MountOptions },
    Remount { target: PathBuf, opts: MountOptions },
    MakePrivate { target: PathBuf },
    Unmount { target: PathBuf, lazy: bool },
    LoopAttach { file: PathBuf, readonly: bool },
    LoopDetach { device: PathBuf },
    LoopSetCapacity { device: PathBuf },
    Mkfs { device: PathBuf, fs: FsType, encrypt: bool },
    GrowFs { fs: FsType, device: PathBuf, mountpoint: PathBuf },
    GrowFsOffline { fs: FsType, device: PathBuf },
    SubvolumeCreate { path: PathBuf },
    SubvolumeDelete { path: PathBuf },
    Snapshot { source: PathBuf, dest: PathBuf, readonly: bool },
    QuotaEnable { path: PathBuf },
    QgroupLimit { path: PathBuf, bytes: u64 },
    CopyFile { source: PathBuf, dest: PathBuf },
    Reflink { source: PathBuf, dest: PathBuf },
    CopyTree { source: PathBuf, dest: PathBuf },
    Freeze { mountpoint: PathBuf },
    Thaw { mountpoint: PathBuf },
    RenameDir { from: PathBuf, to: PathBuf },
    FscryptSetPolicy { dir: PathBuf },
    FscryptAddKey { fs: PathBuf },
    FscryptRemoveKey { fs: PathBuf },
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    mounts: Vec<MountEntry>,
    loops: BTreeMap<u32, PathBuf>,
    /// Filesystems made on backing files (through their loop devices).
    /// By the backing file's device and inode, so a renamed copy keeps its filesystem.
    formatted: BTreeMap<(u64, u64), FsType>,
    /// Operations that fail, with the errno they fail with.
    failing: HashMap<&'static str, i32>,
    /// Recorded calls so far, and the number of the one that must fail (see [`FakeHost::fail_nth`]).
    counted: usize,
    fail_at: Option<usize>,
    next_mount_id: u32,
    stats: FsStats,
    /// Files can share extents (see [`FakeHost::set_reflink`]).
    reflink: bool,
    crypt: super::fake_fscrypt::Crypt,
    /// Answers mount roots, mount sources, `fs_facts` and `unopened` from its state, as statx,
    /// statfs and a lease would (see [`FakeHost::answer_statx`]).
    statx: bool,
    /// Reads of the whole mount table so far.
    table_reads: usize,
    /// Lists of every loop device so far.
    loop_lists: usize,
}

/// A host that changes nothing outside memory, for unit tests of the engine and backends.
/// Directories and files are still made on the real filesystem by callers (use a temp dir).
#[derive(Debug, Default)]
pub struct FakeHost {
    state: Mutex<State>,
}

impl FakeHost {
    pub fn new() -> FakeHost {
        let host = FakeHost::default();
        let mut st = host.lock();
        st.stats = FsStats { total_bytes: 100 << 30, available_bytes: 50 << 30, ..FsStats::default() };
        Self::add_mount(&mut st, Path::new("/"), Path::new("/"), "ext4", "/dev/fakeroot", false);
        st.mounts[0].major = 254;
        drop(st);
        host
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls (the mount table and loop devices stay).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Makes every later call of `op` (a [`Call`] variant name such as "Mkfs") fail with EIO.
    pub fn fail(&self, op: &'static str) {
        self.fail_with(op, libc::EIO);
    }

    /// Makes every later call of `op` fail with `errno` (a bind fails as [`Action::Bind`], as
    /// the real host's does; the rest as [`Action::Other`]).
    pub fn fail_with(&self, op: &'static str, errno: i32) {
        self.lock().failing.insert(op, errno);
    }

    /// Makes the `n`th recorded call from now on (1 = the next) fail with EIO, once.
    pub fn fail_nth(&self, n: usize) {
        let mut st = self.lock();
        st.fail_at = Some(st.counted + n);
    }

    /// How many calls were recorded since the fake was made.
    pub fn call_count(&self) -> usize {
        self.lock().counted
    }

    /// Sets the figures `statvfs` reports.
    pub fn set_stats(&self, stats: FsStats) {
        self.lock().stats = stats;
    }

    /// Makes the root's filesystem one that shares extents (xfs, btrfs): a reflink then copies
    /// the file (and says so); without it, a reflink is refused as on ext4.
    pub fn set_reflink(&self, on: bool) {
        self.lock().reflink = on;
    }

    /// Makes the host answer what `statx`, `statfs` and a lease would (mount roots, read-only,
    /// tmpfs, an image no loop device holds): the engine's ways around reading the whole mount
    /// table and listing every loop device then run as on the real host.
    pub fn answer_statx(&self, on: bool) {
        self.lock().statx = on;
    }

    /// How many times the whole mount table was read.
    pub fn table_reads(&self) -> usize {
        self.lock().table_reads
    }

    /// How many times every loop device was listed.
    pub fn loop_lists(&self) -> usize {
        self.lock().loop_lists
    }

    /// Makes the filesystem under the topmost mount at `mount_point` read-only, as an I/O error
    /// does to ext4 (`errors=remount-ro`).
    pub fn fail_fs_readonly(&self, mount_point: &Path) {
        let mut st = self.lock();
        if let Some(m) = st.mounts.iter_mut().rev().find(|m| m.mount_point == mount_point) {
            m.super_options = vec!["ro".to_owned()];
        }
    }

    /// Detaches every loop device behind the engine's back.
    pub fn drop_all_loops(&self) {
        self.lock().loops.clear();
    }

    /// Forgets every mount but the root and every loop device, as a reboot does.
    pub fn reboot(&self) {
        let mut st = self.lock();
        st.loops.clear();
        st.mounts.truncate(1);
        st.crypt.reboot();
    }

    /// Makes the filesystem mounted from `source` (`/dev/fakeroot` for the root) unable to
    /// encrypt, as ext4 without its `encrypt` feature.
    pub fn no_fscrypt_on(&self, source: &str) {
        self.lock().crypt.unsupported.insert(source.to_owned());
    }

    /// The fscrypt keys in every filesystem's keyring.
    pub fn fscrypt_keys(&self) -> Vec<super::fscrypt::KeyId> {
        self.lock().crypt.keys()
    }

    /// Whether anything but the root filesystem is mounted.
    pub fn mounts_beyond_root(&self) -> Vec<PathBuf> {
        self.lock().mounts.iter().skip(1).map(|m| m.mount_point.clone()).collect()
    }

    fn record(&self, op: &'static str, call: Call) -> Result<MutexGuard<'_, State>> {
        let mut st = self.lock();
        st.calls.push(call);
        st.counted += 1;
        let errno = st.failing.get(op).copied().or((st.fail_at == Some(st.counted)).then_some(libc::EIO));
        if let Some(errno) = errno {
            return Err(Error::io(op, PathBuf::from("/fake"), Errno::from_raw(errno)));
        }
        Ok(st)
    }

    /// A copied image keeps the filesystem the fake made on its source.
    fn carry_filesystem(&self, source: &Path, dest: &Path) {
        let mut st = self.lock();
        let (from, to) = (super::file_identity(source), super::file_identity(dest));
        if let (Some(fs), Some(to)) = (from.and_then(|f| st.formatted.get(&f).copied()), to) {
            st.formatted.insert(to, fs);
        }
    }

    fn add_mount(st: &mut State, root: &Path, target: &Path, fs_type: &str, source: &str, readonly: bool) {
        st.next_mount_id += 1;
        let rw = if readonly { "ro" } else { "rw" };
        st.mounts.push(MountEntry {
            mount_id: 1000 + st.next_mount_id,
            parent_id: 1,
            major: 0,
            minor: 0,
            root: root.to_owned(),
            mount_point: target.to_owned(),
            mount_options: vec![rw.to_owned()],
            fs_type: fs_type.to_owned(),
            source: source.to_owned(),
            super_options: vec!["rw".to_owned()],
            shared: false,
        });
    }
}

fn fscrypt_error(what: &'static str, place: &Place, errno: Errno) -> Error {
    Error::at(Action::Fscrypt(what), place.path(), errno)
}

fn einval(what: &'static str, path: &Path) -> Error {
    Error::io(what, path, Errno::EINVAL)
}

impl Host for FakeHost {
    fn bind_mount(&self, source: &Path, target: &Place, opts: &MountOptions) -> Result<()> {
        let readonly = opts.readonly || opts.options.iter().any(|o| o == "ro");
        let call =
            Call::Bind { source: source.into(), target: target.path().into(), readonly, options: opts.options.clone() };
        let target = target.path();
        let mut st = self.record("Bind", call).map_err(|e| match e {
            Error::Os { errno, .. } => Error::at(Action::Bind { source: source.into() }, target, errno),
            other => other,
        })?;
        let (major, minor, root) = super::bind_identity(&st.mounts, source).ok_or_else(|| einval("bind", source))?;
        let holder = st
            .mounts
            .iter()
            .rev()
            .find(|m| m.major == major && m.minor == minor)
            .cloned()
            .ok_or_else(|| einval("bind", source))?;
        Self::add_mount(&mut st, &root, target, &holder.fs_type, &holder.source, readonly);
        let last = st.mounts.len() - 1;
        (st.mounts[last].major, st.mounts[last].minor) = (major, minor);
        Ok(())
    }

    fn mount(&self, source: &Path, target: &Place, fstype: &str, opts: &MountOptions) -> Result<()> {
        let target = target.path();
        let call =
            Call::Mount { source: source.into(), target: target.into(), fstype: fstype.into(), opts: opts.clone() };
        let mut st = self.record("Mount", call)?;
        let src = source.to_string_lossy().into_owned();
        let ro = opts.readonly || opts.options.iter().any(|o| o == "ro");
        Self::add_mount(&mut st, Path::new("/"), target, fstype, &src, ro);
        let last = st.mounts.len() - 1;
        st.mounts[last].minor = 100 + st.next_mount_id;
        Ok(())
    }

    fn remount(&self, target: &Place, opts: &MountOptions) -> Result<()> {
        let target = target.path();
        let st = self.record("Remount", Call::Remount { target: target.into(), opts: opts.clone() })?;
        if super::mount_at(&st.mounts, target).is_none() {
            return Err(einval("remount", target));
        }
        Ok(())
    }

    fn make_private(&self, target: &Place) -> Result<()> {
        let target = target.path();
        let st = self.record("MakePrivate", Call::MakePrivate { target: target.into() })?;
        st.mounts.iter().any(|m| m.mount_point == target).then_some(()).ok_or_else(|| einval("make private", target))
    }

    fn unmount(&self, target: &Place, lazy: bool) -> Result<()> {
        let target = target.path();
        let mut st = self.record("Unmount", Call::Unmount { target: target.into(), lazy })?;
        let pos = st.mounts.iter().rposition(|m| m.mount_point == target).ok_or_else(|| einval("unmount", target))?;
        st.mounts.remove(pos);
        let State { crypt, mounts, .. } = &mut *st;
        crypt.forget_unmounted(mounts);
        Ok(())
    }

    fn mount_table(&self) -> Result<super::MountTable> {
        let mut st = self.lock();
        st.table_reads += 1;
        Ok(std::sync::Arc::new(st.mounts.clone()))
    }

    fn unopened(&self, file: &Path) -> Option<bool> {
        let st = self.lock();
        st.statx.then(|| !st.loops.values().any(|f| f == file))
    }

    fn is_mount_point(&self, place: &Place) -> Result<bool> {
        let mut st = self.lock();
        st.table_reads += usize::from(!st.statx);
        Ok(super::mount_at(&st.mounts, place.path()).is_some())
    }

    fn same_mount_root(&self, mount_point: &Place, dir: &Path) -> Option<bool> {
        let st = self.lock();
        let m = super::mount_at(&st.mounts, mount_point.path()).filter(|_| st.statx);
        st.statx.then(|| m.is_some_and(|m| super::bind_identity(&st.mounts, dir) == Some(m.identity())))
    }

    fn mounted_from(&self, mount_point: &Place, device: &Path) -> Option<bool> {
        let st = self.lock();
        let m = super::mount_at(&st.mounts, mount_point.path());
        st.statx.then(|| m.is_some_and(|m| Path::new(&m.source) == device))
    }

    fn fs_facts(&self, place: &Place) -> Option<super::FsFacts> {
        let st = self.lock();
        let m = super::mount_at(&st.mounts, place.path()).filter(|_| st.statx)?;
        let magic = if m.fs_type == "tmpfs" { 0x0102_1994 } else { 0xEF53 };
        Some(super::FsFacts { read_only: m.is_readonly(), magic })
    }

    fn loop_attach(&self, file: &Path, readonly: bool) -> Result<PathBuf> {
        let mut st = self.record("LoopAttach", Call::LoopAttach { file: file.into(), readonly })?;
        let n = (0..).find(|n| !st.loops.contains_key(n)).unwrap_or(0);
        st.loops.insert(n, file.to_owned());
        Ok(PathBuf::from(format!("/dev/loop{n}")))
    }

    /// The device's own status, as `LOOP_GET_STATUS64` gives it: not a list of every device.
    fn loop_backs(&self, device: &Path, file: &Path) -> Result<bool> {
        let st = self.lock();
        Ok(st.loops.iter().any(|(n, f)| Path::new(&format!("/dev/loop{n}")) == device && f == file))
    }

    fn loop_detach(&self, device: &Path) -> Result<()> {
        let mut st = self.record("LoopDetach", Call::LoopDetach { device: device.into() })?;
        st.loops.retain(|n, _| Path::new(&format!("/dev/loop{n}")) != device);
        Ok(())
    }

    fn loop_list(&self) -> Result<Vec<LoopDevice>> {
        let mut st = self.lock();
        st.loop_lists += 1;
        let list = st.loops.iter().map(|(n, f)| LoopDevice {
            device: format!("/dev/loop{n}").into(),
            backing_file: f.clone(),
            backing: None,
        });
        Ok(list.collect())
    }

    fn loop_set_capacity(&self, device: &Path) -> Result<()> {
        self.record("LoopSetCapacity", Call::LoopSetCapacity { device: device.into() }).map(drop)
    }

    fn probe_fs(&self, device: &Path) -> Result<Option<String>> {
        let st = self.lock();
        let file = st.loops.iter().find(|(n, _)| Path::new(&format!("/dev/loop{n}")) == device).map(|(_, f)| f.clone());
        let id = file.as_deref().and_then(super::file_identity);
        Ok(id.and_then(|f| st.formatted.get(&f).map(|fs| fs.as_str().to_owned())))
    }

    fn mkfs(&self, device: &Path, fs: FsType, encrypt: bool) -> Result<()> {
        let mut st = self.record("Mkfs", Call::Mkfs { device: device.into(), fs, encrypt })?;
        let file = st.loops.iter().find(|(n, _)| Path::new(&format!("/dev/loop{n}")) == device).map(|(_, f)| f.clone());
        let file = file.ok_or_else(|| einval("mkfs", device))?;
        st.formatted.insert(super::file_identity(&file).ok_or_else(|| einval("mkfs", device))?, fs);
        Ok(())
    }

    fn grow_fs(&self, fs: FsType, device: &Path, mountpoint: &Path) -> Result<()> {
        self.record("GrowFs", Call::GrowFs { fs, device: device.into(), mountpoint: mountpoint.into() }).map(drop)
    }

    fn grow_fs_offline(&self, fs: FsType, device: &Path) -> Result<()> {
        self.record("GrowFsOffline", Call::GrowFsOffline { fs, device: device.into() }).map(drop)
    }

    fn statvfs(&self, _path: &Path) -> Result<FsStats> {
        Ok(self.lock().stats)
    }

    fn btrfs_subvolume_create(&self, path: &Path) -> Result<()> {
        drop(self.record("SubvolumeCreate", Call::SubvolumeCreate { path: path.into() })?);
        std::fs::create_dir(path).map_err(Error::on(Action::Other("create subvolume"), path))
    }

    fn btrfs_subvolume_delete(&self, path: &Path) -> Result<()> {
        drop(self.record("SubvolumeDelete", Call::SubvolumeDelete { path: path.into() })?);
        Ok(super::tree::remove_tree(path)?)
    }

    fn btrfs_snapshot(&self, source: &Path, dest: &Path, readonly: bool) -> Result<()> {
        drop(self.record("Snapshot", Call::Snapshot { source: source.into(), dest: dest.into(), readonly })?);
        std::fs::create_dir(dest).map_err(Error::on(Action::Other("snapshot"), dest))
    }

    fn btrfs_quota_enable(&self, path: &Path) -> Result<()> {
        self.record("QuotaEnable", Call::QuotaEnable { path: path.into() }).map(drop)
    }

    fn btrfs_qgroup_limit(&self, path: &Path, bytes: u64) -> Result<()> {
        self.record("QgroupLimit", Call::QgroupLimit { path: path.into(), bytes }).map(drop)
    }

    fn btrfs_qgroup_usage(&self, _path: &Path) -> Result<u64> {
        Ok(self.lock().stats.used_bytes)
    }

    fn is_btrfs(&self, _path: &Path) -> Result<bool> {
        Ok(true)
    }

    fn copy_tree(
        &self,
        source: &Path,
        dest: &Path,
        progress: &super::tree::Progress,
    ) -> Result<super::tree::CopyReport> {
        drop(self.record("CopyTree", Call::CopyTree { source: source.into(), dest: dest.into() })?);
        Ok(super::tree::copy_tree_with(source, dest, progress)?)
    }

    fn freeze(&self, mountpoint: &Place) -> Result<()> {
        self.record("Freeze", Call::Freeze { mountpoint: mountpoint.path().into() }).map(drop)
    }

    fn thaw(&self, mountpoint: &Place) -> Result<()> {
        self.record("Thaw", Call::Thaw { mountpoint: mountpoint.path().into() }).map(drop)
    }

    fn memory_available(&self) -> Result<u64> {
        Ok(self.lock().stats.available_bytes)
    }

    fn reflink_file(&self, source: &Path, dest: &Path) -> Result<bool> {
        let st = self.record("Reflink", Call::Reflink { source: source.into(), dest: dest.into() })?;
        if !st.reflink {
            return Ok(false);
        }
        drop(st);
        super::tree::copy_file(source, dest)?;
        self.carry_filesystem(source, dest);
        Ok(true)
    }

    fn copy_file(&self, source: &Path, dest: &Path, progress: &super::tree::Progress) -> Result<super::tree::Copied> {
        let st = self.record("CopyFile", Call::CopyFile { source: source.into(), dest: dest.into() })?;
        drop(st);
        let copied = super::tree::copy_file_with(source, dest, progress)?;
        self.carry_filesystem(source, dest);
        Ok(copied)
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.record("RenameDir", Call::RenameDir { from: from.into(), to: to.into() })?;
        if to.exists() {
            return Err(Error::io("rename", from, Errno::EEXIST));
        }
        // The kernel shows a bind of a directory inside `from` at its new place too: the root
        // of every mount from that subtree moves with it.
        let (old_root, new_root) = (super::bind_identity(&st.mounts, from), super::bind_identity(&st.mounts, to));
        std::fs::rename(from, to).map_err(Error::on(Action::Other("rename"), from))?;
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        for m in &mut st.mounts {
            if let Some(p) = moved(&m.mount_point) {
                m.mount_point = p;
            }
            if let (Some((major, minor, old)), Some((_, _, new))) = (&old_root, &new_root) {
                if (m.major, m.minor) == (*major, *minor) {
                    if let Ok(rest) = m.root.strip_prefix(old) {
                        m.root = new.join(rest);
                    }
                }
            }
        }
        for file in st.loops.values_mut() {
            if let Some(p) = moved(file) {
                *file = p;
            }
        }
        Ok(())
    }

    fn fscrypt_policy(&self, dir: &Place) -> Result<super::fscrypt::Policy> {
        let st = self.lock();
        st.crypt.policy(&st.mounts, dir).map_err(|e| fscrypt_error("read the policy of", dir, e))
    }

    fn fscrypt_set_policy(&self, dir: &Place, id: &super::fscrypt::KeyId) -> Result<()> {
        let mut st = self.record("FscryptSetPolicy", Call::FscryptSetPolicy { dir: dir.path().into() })?;
        let State { crypt, mounts, .. } = &mut *st;
        crypt.set_policy(mounts, dir, id).map_err(|e| fscrypt_error("set the policy of", dir, e))
    }

    fn fscrypt_add_key(&self, fs: &Place, key: &[u8; super::fscrypt::KEY_SIZE]) -> Result<super::fscrypt::KeyId> {
        let mut st = self.record("FscryptAddKey", Call::FscryptAddKey { fs: fs.path().into() })?;
        let State { crypt, mounts, .. } = &mut *st;
        let id = super::fscrypt::identifier(key);
        crypt.add(mounts, fs, id).map_err(|e| fscrypt_error("add a key to the filesystem of", fs, e))
    }

    fn fscrypt_remove_key(&self, fs: &Place, id: &super::fscrypt::KeyId) -> Result<super::fscrypt::Removal> {
        let mut st = self.record("FscryptRemoveKey", Call::FscryptRemoveKey { fs: fs.path().into() })?;
        let State { crypt, mounts, .. } = &mut *st;
        Ok(crypt.remove(mounts, fs, id))
    }

    fn fscrypt_key_status(&self, fs: &Place, id: &super::fscrypt::KeyId) -> Result<super::fscrypt::KeyStatus> {
        let st = self.lock();
        Ok(st.crypt.status(&st.mounts, fs, id))
    }
}
