//! Engine unit tests against the recording fake host: exact host calls and on-disk effects.

use super::*;
use crate::sys::{Call, FakeHost, FsStats, MountOptions};
use std::path::Path;

pub(super) struct Fixture {
    pub(super) _tmp: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) kubelet: PathBuf,
    pub(super) host: Arc<FakeHost>,
    pub(super) engine: Engine,
}

pub(super) fn fixture() -> Fixture {
    fixture_in(&std::env::temp_dir())
}

/// A fixture whose temp dir is made under `dir` (the fault tests use a tmpfs: they make hundreds
/// of fixtures, and fsync on a disk dominates their time).
pub(super) fn fixture_in(dir: &Path) -> Fixture {
    let tmp = tempfile::tempdir_in(dir).unwrap();
    let root = tmp.path().join("root");
    let kubelet = tmp.path().join("kubelet");
    std::fs::create_dir(&kubelet).unwrap();
    let host = Arc::new(FakeHost::new());
    let cfg = Config { allowed_prefixes: vec![kubelet.clone()], ..Config::new(root.clone()) };
    let engine = Engine::new(cfg, host.clone()).unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    Fixture { _tmp: tmp, root, kubelet, host, engine }
}

pub(super) fn req(id: &str, backend: Kind, capacity: u64) -> CreateRequest {
    CreateRequest {
        id: id.into(),
        name: format!("name-{id}"),
        backend,
        capacity,
        fs_type: None,
        parameters: BTreeMap::new(),
    }
}

pub(super) fn mount_access() -> Access {
    Access::Mount { flags: vec![] }
}

impl Fixture {
    pub(super) fn staging(&self, id: &str) -> PathBuf {
        let p = self.kubelet.join(format!("stage-{id}"));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub(super) fn target(&self, name: &str) -> PathBuf {
        let pod = self.kubelet.join("pods").join(name);
        std::fs::create_dir_all(&pod).unwrap();
        pod.join("vol")
    }

    pub(super) fn volume_entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("volumes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

#[test]
fn dir_create_is_idempotent_and_mounts_nothing() {
    let f = fixture();
    let v = f.engine.create_volume(&req("v1", Kind::Dir, 1 << 20)).unwrap();
    assert_eq!(v.fs_type, None);
    assert!(f.root.join("volumes/v1/data").is_dir());
    assert_eq!(f.engine.create_volume(&req("v1", Kind::Dir, 1 << 20)).unwrap(), v);
    let made_aside = Call::RenameDir { from: f.root.join("volumes/.v1.new"), to: f.root.join("volumes/v1") };
    assert_eq!(f.host.calls(), [made_aside], "one rename into place; the second create does nothing");
    assert_eq!(f.engine.get_volume("v1").unwrap(), Some(v));
}

#[test]
fn conflicting_create_is_already_exists() {
    let f = fixture();
    f.engine.create_volume(&req("v1", Kind::Dir, 1 << 20)).unwrap();
    let e = f.engine.create_volume(&req("v1", Kind::Dir, 2 << 20)).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let e = f.engine.create_volume(&req("v1", Kind::Loop, 1 << 20)).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let mut other = req("v1", Kind::Dir, 1 << 20);
    other.parameters.insert("k".into(), "v".into());
    assert!(matches!(f.engine.create_volume(&other), Err(Error::AlreadyExists { .. })));
}

#[test]
fn bad_create_requests_leave_nothing() {
    let f = fixture();
    let long = "x".repeat(129);
    for id in ["", "a/b", "..", "../x", "a\0b", long.as_str()] {
        assert!(matches!(f.engine.create_volume(&req(id, Kind::Dir, 1)), Err(Error::InvalidId { .. })), "{id:?}");
    }
    assert!(matches!(f.engine.create_volume(&req("v", Kind::Dir, 0)), Err(Error::InvalidArgument(_))));
    let e = f.engine.create_volume(&req("v", Kind::Loop, 51 << 30)).unwrap_err();
    assert!(
        matches!(e, Error::OutOfCapacity { requested, available, .. } if requested == 51 << 30 && available == 50 << 30),
        "{e}"
    );
    assert!(f.volume_entries().is_empty());
    assert!(f.host.calls().is_empty());
}

#[test]
fn loop_stage_formats_once_and_restage_keeps_the_filesystem() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let image = f.root.join("volumes/v/disk.img");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 1 << 30);
    f.host.clear_calls();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let dev = PathBuf::from("/dev/loop0");
    let mount =
        Call::Mount { source: dev.clone(), target: s.clone(), fstype: "ext4".into(), opts: MountOptions::default() };
    assert_eq!(
        f.host.calls(),
        vec![
            Call::LoopAttach { file: image.clone(), readonly: false },
            Call::Mkfs { device: dev.clone(), fs: FsType::Ext4, encrypt: false },
            mount.clone()
        ]
    );
    f.host.clear_calls();
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    assert!(f.host.calls().is_empty(), "second stage must do nothing: {:?}", f.host.calls());
    f.engine.unstage_volume("v", &s).unwrap();
    assert_eq!(
        f.host.calls(),
        vec![Call::Unmount { target: s.clone(), lazy: false }, Call::LoopDetach { device: dev.clone() }]
    );
    f.host.clear_calls();
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    assert_eq!(f.host.calls(), vec![Call::LoopAttach { file: image, readonly: false }, mount]);
}

#[test]
fn xfs_is_always_mounted_nouuid_with_user_flags() {
    let f = fixture();
    let mut r = req("x", Kind::Loop, 1 << 30);
    r.fs_type = Some(FsType::Xfs);
    f.engine.create_volume(&r).unwrap();
    let s = f.staging("x");
    f.engine.stage_volume("x", &s, &Access::Mount { flags: vec!["noatime".into()] }).unwrap();
    let last = f.host.calls().pop().unwrap();
    let opts = MountOptions { readonly: false, options: vec!["noatime".into(), "nouuid".into()] };
    assert_eq!(last, Call::Mount { source: "/dev/loop0".into(), target: s, fstype: "xfs".into(), opts });
}

#[test]
fn failed_mkfs_detaches_and_records_nothing() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    f.host.fail("Mkfs");
    let s = f.kubelet.join("stage-new");
    assert!(f.engine.stage_volume("v", &s, &mount_access()).is_err());
    assert_eq!(f.host.calls().last(), Some(&Call::LoopDetach { device: "/dev/loop0".into() }));
    assert!(!s.exists(), "the staging dir this call made must be removed");
    assert_eq!(f.engine.get_volume("v").unwrap().unwrap().staging, None);
    assert!(f.host.loop_list().unwrap().is_empty());
}

#[test]
fn publish_needs_stage_and_is_idempotent() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    let e = f.engine.publish_volume("v", &s, &t, false).unwrap_err();
    assert!(matches!(e, Error::FailedPrecondition { .. }), "{e}");
    assert!(!t.exists());
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.host.clear_calls();
    f.engine.publish_volume("v", &s, &t, true).unwrap();
    assert_eq!(
        f.host.calls(),
        vec![Call::Bind { source: s.clone(), target: t.clone(), readonly: true, options: vec!["nodev".into()] }]
    );
    f.host.clear_calls();
    f.engine.publish_volume("v", &s, &t, true).unwrap();
    assert!(f.host.calls().is_empty());
    assert!(matches!(f.engine.publish_volume("v", &s, &t, false), Err(Error::AlreadyExists { .. })));
    assert_eq!(f.engine.live_publications("v").unwrap().len(), 1);
}

#[test]
fn a_staged_dir_volume_whose_data_directory_went_is_not_published() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let data = f.root.join("volumes/v/data");
    std::fs::rename(&data, f.root.join("volumes/v/data.gone")).unwrap();
    f.host.clear_calls();
    let e = f.engine.publish_volume("v", &s, &t, false).unwrap_err();
    assert!(matches!(&e, Error::FailedPrecondition { .. }) && e.to_string().contains("is missing"), "{e}");
    assert!(f.host.calls().is_empty(), "nothing was bound");
    assert!(!t.exists());
}

#[test]
fn publish_alone_refuses_a_second_target_under_the_lock() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, a, b) = (f.staging("v"), f.target("a"), f.target("b"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let opts = MountOptions::default();
    let alone = |target| {
        f.engine.publish_volume_checked(
            "v",
            &Bind { staging: &s, target, opts: &opts, alone: true, block: None },
            &|_| Ok(()),
        )
    };
    alone(&a).unwrap();
    alone(&a).unwrap();
    let e = alone(&b).unwrap_err();
    assert!(matches!(e, Error::FailedPrecondition { .. }) && e.to_string().contains("one publication"), "{e}");
    assert!(!b.exists(), "a refused publish makes no target");
    f.engine.publish_volume_with("v", &s, &b, &opts).unwrap();
    assert_eq!(f.engine.live_publications("v").unwrap().len(), 2);
}

#[test]
fn unpublish_is_idempotent_and_removes_the_target() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.publish_volume("v", &s, &t, false).unwrap();
    f.host.clear_calls();
    f.engine.unpublish_volume("v", &t).unwrap();
    assert_eq!(f.host.calls(), vec![Call::Unmount { target: t.clone(), lazy: false }]);
    assert!(!t.exists());
    f.engine.unpublish_volume("v", &t).unwrap();
    f.engine.unpublish_volume("gone", &t).unwrap();
    assert_eq!(f.host.calls().len(), 1);
    assert!(f.engine.get_volume("v").unwrap().unwrap().publications.is_empty());
}

#[test]
fn unpublish_never_deletes_a_target_with_data() {
    let f = fixture();
    let t = f.target("a");
    std::fs::create_dir(&t).unwrap();
    std::fs::write(t.join("precious"), b"x").unwrap();
    assert!(f.engine.unpublish_volume("v", &t).is_err());
    assert!(t.join("precious").exists());
}

#[test]
fn a_second_stage_with_other_mount_flags_says_mount_flags() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &Access::Mount { flags: vec!["noexec".into()] }).unwrap();
    let e = f.engine.stage_volume("v", &s, &mount_access()).unwrap_err().to_string();
    assert!(e.contains("with mount flags [noexec,nodev], and this call asks for [nodev]"), "{e}");
    assert!(!e.contains("access type"), "{e}");
}

#[test]
fn stage_and_unstage_refuse_conflicts() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let other = f.staging("other");
    assert!(matches!(f.engine.stage_volume("v", &other, &mount_access()), Err(Error::AlreadyExists { .. })));
    f.engine.publish_volume("v", &s, &t, false).unwrap();
    assert!(matches!(f.engine.unstage_volume("v", &s), Err(Error::FailedPrecondition { .. })));
    assert!(matches!(f.engine.delete_volume("v"), Err(Error::FailedPrecondition { .. })));
    f.engine.unpublish_volume("v", &t).unwrap();
    assert!(matches!(f.engine.delete_volume("v"), Err(Error::FailedPrecondition { .. })));
    f.engine.unstage_volume("v", &s).unwrap();
    f.engine.unstage_volume("v", &s).unwrap();
    f.engine.delete_volume("v").unwrap();
    f.engine.delete_volume("v").unwrap();
    assert!(f.volume_entries().is_empty());
    assert!(f.host.mounts_beyond_root().is_empty());
}

#[test]
fn block_is_loop_only_and_binds_the_device() {
    let f = fixture();
    f.engine.create_volume(&req("d", Kind::Dir, 1 << 20)).unwrap();
    let s = f.staging("d");
    assert!(matches!(f.engine.stage_volume("d", &s, &Access::Block), Err(Error::InvalidArgument(_))));
    f.engine.create_volume(&req("b", Kind::Loop, 1 << 30)).unwrap();
    let (s, t) = (f.staging("b"), f.target("blk"));
    f.host.clear_calls();
    f.engine.stage_volume("b", &s, &Access::Block).unwrap();
    f.engine.publish_volume("b", &s, &t, false).unwrap();
    let image = f.root.join("volumes/b/disk.img");
    let expected = vec![
        Call::LoopAttach { file: image, readonly: false },
        Call::Bind { source: "/dev/loop0".into(), target: t.clone(), readonly: false, options: vec![] },
    ];
    assert_eq!(f.host.calls(), expected);
    assert!(t.is_file());
    // A publish that says which access it asks for must match the staging's.
    let opts = MountOptions::default();
    let other = f.target("fs");
    f.host.clear_calls();
    let as_fs = Bind { staging: &s, target: &other, opts: &opts, alone: false, block: Some(false) };
    let err = f.engine.publish_volume_checked("b", &as_fs, &|_| Ok(())).unwrap_err();
    assert!(matches!(&err, Error::FailedPrecondition { .. }) && err.to_string().contains("for block access"), "{err}");
    assert!(f.host.calls().is_empty() && !other.exists(), "a refused publish changes nothing");
    let as_block = Bind { staging: &s, target: &t, opts: &opts, alone: false, block: Some(true) };
    f.engine.publish_volume_checked("b", &as_block, &|_| Ok(())).unwrap();
}

#[test]
fn paths_outside_the_prefixes_are_refused_before_any_change() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    f.host.clear_calls();
    let outside = f._tmp.path().join("elsewhere/stage");
    assert!(matches!(f.engine.stage_volume("v", &outside, &mount_access()), Err(Error::InvalidPath { .. })));
    let dotdot = f.kubelet.join("../elsewhere");
    assert!(matches!(f.engine.stage_volume("v", &dotdot, &mount_access()), Err(Error::InvalidPath { .. })));
    assert!(matches!(f.engine.unpublish_volume("v", Path::new("/etc")), Err(Error::InvalidPath { .. })));
    assert!(f.host.calls().is_empty());
    assert!(!outside.exists());
}

#[test]
fn busy_volume_is_reported() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let held = lock::VolumeLock::acquire(&f.root.join("locks"), "v", Wait::No).unwrap();
    assert!(matches!(f.engine.stage_volume("v", &f.staging("v"), &mount_access()), Err(Error::Busy { .. })));
    assert!(matches!(f.engine.delete_volume("v"), Err(Error::Busy { .. })));
    drop(held);
    f.engine.delete_volume("v").unwrap();
}

#[test]
fn reconcile_restages_after_a_reboot() {
    let f = fixture();
    f.engine.create_volume(&req("l", Kind::Loop, 1 << 30)).unwrap();
    f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
    let (sl, st, tl) = (f.staging("l"), f.staging("t"), f.target("a"));
    f.engine.stage_volume("l", &sl, &mount_access()).unwrap();
    f.engine.stage_volume("t", &st, &mount_access()).unwrap();
    f.engine.publish_volume("l", &sl, &tl, false).unwrap();
    f.host.reboot();
    f.host.clear_calls();
    let report = f.engine.reconcile().unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.actions.len(), 3, "{report:?}");
    let calls = f.host.calls();
    assert!(calls.contains(&Call::LoopAttach { file: f.root.join("volumes/l/disk.img"), readonly: false }));
    assert!(!calls.iter().any(|c| matches!(c, Call::Mkfs { .. })), "reconcile must never format: {calls:?}");
    let vol = f.engine.get_volume("l").unwrap().unwrap();
    assert!(vol.publications.is_empty());
    f.engine.publish_volume("l", &sl, &tl, false).unwrap();
    f.engine.publish_volume("t", &st, &f.target("b"), false).unwrap();
}

#[test]
fn reconcile_removes_interrupted_creates_only() {
    let f = fixture();
    f.engine.create_volume(&req("keep", Kind::Dir, 1 << 20)).unwrap();
    // Creates and deletes cut short aside, and an older strata's create cut short after its
    // intent: removed. A directory with no record and no intent (a record moved aside): kept,
    // quarantined, its data untouched.
    std::fs::create_dir_all(f.root.join("volumes/half/data")).unwrap();
    std::fs::write(f.root.join("volumes/half/.creating"), b"").unwrap();
    std::fs::create_dir_all(f.root.join("volumes/.new-one.new/data")).unwrap();
    f.engine.create_volume(&req("gone", Kind::Dir, 1 << 20)).unwrap();
    std::fs::rename(f.root.join("volumes/gone"), f.root.join("volumes/.gone.del")).unwrap();
    std::fs::create_dir_all(f.root.join("volumes/lost/data")).unwrap();
    std::fs::write(f.root.join("volumes/lost/data/precious"), b"x").unwrap();
    let report = f.engine.reconcile().unwrap();
    assert_eq!(f.volume_entries(), vec!["keep".to_owned(), "lost".to_owned()]);
    assert_eq!(report.actions.len(), 3, "{report:?}");
    assert!(report.errors.iter().any(|e| e.contains("lost quarantined")), "{report:?}");
    assert_eq!(std::fs::read(f.root.join("volumes/lost/data/precious")).unwrap(), b"x");
    let q = f.engine.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert!(q[0].reason.contains("holds no record"), "{q:?}");
    let err = f.engine.delete_volume("lost").unwrap_err();
    assert!(matches!(err, Error::Quarantined { .. }), "{err}");
    let err = f.engine.create_volume(&req("lost", Kind::Dir, 1 << 20)).unwrap_err();
    assert!(matches!(err, Error::Quarantined { .. }), "{err}");
    assert_eq!(f.engine.list_volumes().unwrap().len(), 1, "the rest of the node works");
}

#[test]
fn tmpfs_and_btrfs_provision_and_expand() {
    let f = fixture();
    f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
    let data = f.root.join("volumes/t/data");
    let opts = MountOptions {
        readonly: false,
        options: vec!["size=1048576".into(), "mode=1777".into(), "nosuid".into(), "nodev".into()],
    };
    let aside = f.root.join("volumes/.t.new");
    assert_eq!(
        f.host.calls(),
        vec![
            Call::Mount { source: "tmpfs".into(), target: aside.join("data"), fstype: "tmpfs".into(), opts },
            Call::RenameDir { from: aside, to: f.root.join("volumes/t") },
        ]
    );
    assert_eq!(f.host.mounts_beyond_root(), std::slice::from_ref(&data), "the mount moved with its directory");
    f.host.clear_calls();
    assert_eq!(f.engine.expand_volume("t", 2 << 20).unwrap(), 2 << 20);
    let opts = MountOptions {
        readonly: false,
        options: vec!["size=2097152".into(), "mode=1777".into(), "nosuid".into(), "nodev".into()],
    };
    assert_eq!(f.host.calls(), vec![Call::Remount { target: data.clone(), opts }]);
    f.engine.delete_volume("t").unwrap();
    f.host.clear_calls();
    f.engine.create_volume(&req("b", Kind::Btrfs, 1 << 20)).unwrap();
    let sub = f.root.join("volumes/b/data");
    let aside = f.root.join("volumes/.b.new");
    let expected = vec![
        Call::QuotaEnable { path: aside.clone() },
        Call::SubvolumeCreate { path: aside.join("data") },
        Call::QgroupLimit { path: aside.join("data"), bytes: 1 << 20 },
        Call::RenameDir { from: aside, to: f.root.join("volumes/b") },
    ];
    assert_eq!(f.host.calls(), expected);
    f.host.clear_calls();
    assert_eq!(f.engine.expand_volume("b", 1 << 19).unwrap(), 1 << 20, "never shrinks");
    f.engine.expand_volume("b", 4 << 20).unwrap();
    assert_eq!(f.host.calls(), vec![Call::QgroupLimit { path: sub, bytes: 4 << 20 }]);
}

#[test]
fn staged_loop_expand_grows_device_and_filesystem() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.host.clear_calls();
    f.engine.expand_volume("v", 2 << 30).unwrap();
    let dev = PathBuf::from("/dev/loop0");
    let expected = vec![
        Call::LoopSetCapacity { device: dev.clone() },
        Call::GrowFs { fs: FsType::Ext4, device: dev, mountpoint: s },
    ];
    assert_eq!(f.host.calls(), expected);
    assert_eq!(std::fs::metadata(f.root.join("volumes/v/disk.img")).unwrap().len(), 2 << 30);
    f.host.set_stats(FsStats { available_bytes: 0, ..FsStats::default() });
    assert!(matches!(f.engine.expand_volume("v", 3 << 30), Err(Error::OutOfCapacity { .. })));
}

#[test]
fn wrong_filesystem_on_device_is_never_formatted() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.unstage_volume("v", &s).unwrap();
    // Pretend the record now says xfs while the image holds ext4.
    let mut vol = f.engine.get_volume("v").unwrap().unwrap();
    vol.fs_type = Some(FsType::Xfs);
    f.engine.save(&vol).unwrap();
    f.host.clear_calls();
    let e = f.engine.stage_volume("v", &s, &mount_access()).unwrap_err();
    assert!(e.to_string().contains("carries a ext4 filesystem"), "{e}");
    assert!(!f.host.calls().iter().any(|c| matches!(c, Call::Mkfs { .. })));
    assert!(f.host.loop_list().unwrap().is_empty(), "the device this call attached is detached again");
}

#[test]
fn failed_online_grow_falls_back_or_defers() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let (s, t) = (f.staging("v"), f.target("a"));
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.engine.publish_volume("v", &s, &t, false).unwrap();
    f.host.fail("GrowFs");
    let e = f.engine.expand_volume("v", 2 << 30).unwrap_err();
    assert!(matches!(e, Error::FailedPrecondition { .. }) && e.to_string().contains("next staged"), "{e}");
    let vol = f.engine.get_volume("v").unwrap().unwrap();
    assert!(vol.grow_fs && vol.capacity == 2 << 30, "{vol:?}");
    f.engine.unpublish_volume("v", &t).unwrap();
    f.host.clear_calls();
    assert_eq!(f.engine.expand_volume("v", 2 << 30).unwrap(), 2 << 30);
    let dev = PathBuf::from("/dev/loop0");
    let expected = vec![
        Call::GrowFs { fs: FsType::Ext4, device: dev.clone(), mountpoint: s.clone() },
        Call::Unmount { target: s.clone(), lazy: false },
        Call::GrowFsOffline { fs: FsType::Ext4, device: dev.clone() },
        Call::Mount { source: dev, target: s, fstype: "ext4".into(), opts: MountOptions::default() },
    ];
    assert_eq!(f.host.calls(), expected);
    assert!(!f.engine.get_volume("v").unwrap().unwrap().grow_fs);
}

#[test]
fn tmpfs_comes_back_empty_at_stage_after_a_reboot() {
    let f = fixture();
    f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
    f.host.reboot();
    f.host.clear_calls();
    let s = f.staging("t");
    f.engine.stage_volume("t", &s, &mount_access()).unwrap();
    let data = f.root.join("volumes/t/data");
    let calls = f.host.calls();
    assert!(
        matches!(&calls[0], Call::Mount { target, fstype, .. } if *target == data && fstype == "tmpfs"),
        "{calls:?}"
    );
    let options = vec!["nosuid".to_owned(), "nodev".to_owned()]; // tmpfs binds keep both, always
    assert_eq!(calls[1], Call::Bind { source: data, target: s, readonly: false, options });
}

#[test]
fn a_leftover_aside_is_removed_by_what_it_holds_not_by_the_new_request() {
    let f = fixture();
    // A tmpfs create killed after its mount, before its record; then the id is created as dir.
    let data = f.root.join("volumes/.x.new/data");
    std::fs::create_dir_all(&data).unwrap();
    let opts = MountOptions { readonly: false, options: vec!["size=1048576".into()] };
    f.host.mount(Path::new("tmpfs"), &crate::sys::place_at(&data).unwrap(), "tmpfs", &opts).unwrap();
    f.engine.create_volume(&req("x", Kind::Dir, 1 << 20)).unwrap();
    assert!(
        f.host.mounts_beyond_root().is_empty(),
        "the leftover tmpfs is unmounted: {:?}",
        f.host.mounts_beyond_root()
    );
    assert_eq!(f.engine.get_volume("x").unwrap().map(|v| v.backend), Some(Kind::Dir));
    assert_eq!(f.volume_entries(), ["x"]);
}

#[test]
fn reconcile_removes_the_per_id_lock_files_of_an_older_strata_and_keeps_the_shared_ones() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    for dir in ["locks/snapshots", "locks/flex"] {
        std::fs::create_dir_all(f.root.join(dir)).unwrap();
    }
    let old = ["locks/v.lock", "locks/.capacity.lock", "locks/snapshots/s.lock", "locks/flex/v.lock"];
    for file in old {
        std::fs::write(f.root.join(file), b"").unwrap();
    }
    let report = f.engine.reconcile().unwrap();
    assert!(report.actions.iter().any(|a| a.contains("removed 4 lock file(s)")), "{report:?}");
    for file in old {
        assert!(!f.root.join(file).exists(), "{file}");
    }
    assert!(f.root.join("locks").join(lock::LOCK_FILE).is_file(), "the shared lock file stays");
    // The locks still work after the migration.
    let held = lock::VolumeLock::acquire(&f.root.join("locks"), "v", Wait::No).unwrap();
    assert!(matches!(f.engine.delete_volume("v"), Err(Error::Busy { .. })));
    drop(held);
    f.engine.delete_volume("v").unwrap();
}

#[test]
fn an_older_strata_leftover_with_an_attached_image_is_detached_before_it_is_removed() {
    let f = fixture();
    let dir = f.root.join("volumes/old");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".creating"), b"").unwrap();
    std::fs::File::create(dir.join("disk.img")).unwrap().set_len(1 << 20).unwrap();
    f.host.loop_attach(&dir.join("disk.img"), false).unwrap();
    let report = f.engine.reconcile().unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(f.host.loop_list().unwrap().is_empty(), "the device on the leftover image is detached");
    assert!(!dir.exists());
}

/// Waits until `path` is gone (the background removal), at most 10 s.
fn gone_soon(path: &Path) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    !path.exists()
}

/// A server's engine (removing in the background) with `dir` volume `v` staged and published,
/// a file in it (the temporary directory last: it goes when dropped).
fn in_use_in_a_server() -> (Arc<Engine>, Arc<FakeHost>, PathBuf, tempfile::TempDir) {
    let f = fixture();
    let (s, t) = (f.staging("v"), f.target("a"));
    let engine = Arc::new(f.engine);
    engine.remove_in_background();
    engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    std::fs::write(f.root.join("volumes/v/data/file"), b"kept").unwrap();
    engine.stage_volume("v", &s, &mount_access()).unwrap();
    engine.publish_volume("v", &s, &t, false).unwrap();
    (engine, f.host, f.root, f._tmp)
}

#[test]
fn a_server_delete_leaves_the_mount_table_to_the_removal_which_keeps_what_a_mount_shows() {
    let (engine, host, root, _tmp) = in_use_in_a_server();
    let refused = engine.delete_volume("v").unwrap_err();
    assert!(matches!(refused, Error::FailedPrecondition { .. }), "node state shows it in use: {refused}");
    // Node state that says nothing (a mount strata never recorded): the call answers from it.
    state::make_empty(&engine.volume_dir("v")).unwrap();
    host.clear_calls();
    engine.delete_volume("v").unwrap();
    assert!(engine.get_volume("v").unwrap().is_none());
    assert!(gone_soon(&root.join("volumes/.v.del")));
    let kept: Vec<_> =
        std::fs::read_dir(root.join("volumes/.quarantine")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].file_name().unwrap().to_string_lossy().starts_with(".v.del."), "{kept:?}");
    assert_eq!(std::fs::read(kept[0].join("data/file")).unwrap(), b"kept", "nothing a mount shows is removed");
    assert!(!host.calls().iter().any(|c| matches!(c, Call::Unmount { .. })), "the mounts stay: {:?}", host.calls());
}

#[test]
fn a_server_delete_without_node_state_asks_the_whole_mount_table_in_the_call() {
    let (engine, _host, root, _tmp) = in_use_in_a_server();
    // Lost: the volume may be in use anywhere, so the kernel decides before the answer.
    std::fs::remove_file(engine.volume_dir("v").node_state()).unwrap();
    let refused = engine.delete_volume("v").unwrap_err().to_string();
    assert!(refused.contains("in use at"), "{refused}");
    assert_eq!(std::fs::read(root.join("volumes/v/data/file")).unwrap(), b"kept");
}

#[test]
fn a_server_delete_answers_once_aside_and_the_background_removes_the_rest() {
    let f = fixture();
    let engine = Arc::new(f.engine);
    engine.remove_in_background();
    engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let data = f.root.join("volumes/v/data");
    std::fs::create_dir_all(data.join("a/b")).unwrap();
    std::fs::write(data.join("a/b/file"), b"x").unwrap();
    engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
    engine.delete_volume("v").unwrap();
    engine.delete_volume("t").unwrap();
    assert!(!f.root.join("volumes/v").exists() && engine.get_volume("v").unwrap().is_none());
    assert!(
        f.host.calls().iter().any(|c| matches!(c, Call::Unmount { .. })),
        "a tmpfs is unmounted in the call, its memory back at once"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (f.root.join("volumes/.v.del").exists() || f.root.join("volumes/.t.del").exists())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!f.root.join("volumes/.v.del").exists() && !f.root.join("volumes/.t.del").exists(), "removed after");
    // The id is free again at once.
    engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
}
