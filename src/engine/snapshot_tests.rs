//! Snapshot, restore, clone and health tests against the recording fake host.

use super::tests::{fixture, mount_access, req};
use super::*;
use crate::sys::Call;

fn snap(id: &str, vol: &str) -> SnapshotRequest {
    SnapshotRequest { id: id.into(), name: format!("name-{id}"), source_volume: vol.into() }
}

#[test]
fn snapshot_of_a_staged_loop_volume_freezes_around_the_copy() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.host.clear_calls();
    let sn = f.engine.create_snapshot(&snap("s1", "v")).unwrap();
    assert_eq!((sn.size_bytes, sn.backend, sn.fs_type), (1 << 30, Kind::Loop, Some(FsType::Ext4)));
    // No reflink on this root: cut (frozen), recorded under a temporary name and renamed into
    // place, then copied in place while the filesystem stays frozen.
    let image = f.root.join("volumes/v/disk.img");
    let reflink = Call::Reflink { source: image.clone(), dest: f.root.join("snapshots/.s1.new/disk.img") };
    let copy = Call::CopyFile { source: image, dest: f.root.join("snapshots/s1/disk.img") };
    let frozen = Call::Freeze { mountpoint: s.clone() };
    assert_eq!(f.host.calls(), vec![frozen, reflink, copy, Call::Thaw { mountpoint: s }]);
    assert_eq!(f.engine.create_snapshot(&snap("s1", "v")).unwrap(), sn);
    f.engine.create_volume(&req("w", Kind::Loop, 1 << 30)).unwrap();
    assert!(matches!(f.engine.create_snapshot(&snap("s1", "w")), Err(Error::AlreadyExists { .. })));
    assert_eq!(f.engine.list_snapshots().unwrap(), vec![sn]);
}

#[test]
fn failed_copy_thaws_and_leaves_no_snapshot() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    f.host.fail("CopyFile");
    assert!(f.engine.create_snapshot(&snap("s1", "v")).is_err());
    assert_eq!(f.host.calls().last(), Some(&Call::Thaw { mountpoint: s }));
    assert!(f.engine.list_snapshots().unwrap().is_empty());
    assert!(!f.root.join("snapshots/s1").exists());
    assert!(!f.root.join("snapshots/.s1.new").exists(), "the failed copy is removed");
}

#[test]
fn restore_checks_size_backend_and_grows_at_stage() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    f.engine.stage_volume("v", &f.staging("v"), &mount_access()).unwrap();
    f.engine.create_snapshot(&snap("s1", "v")).unwrap();
    let source = Source::Snapshot("s1".into());
    let small = f.engine.create_volume_from(&req("r", Kind::Loop, 1 << 20), &source).unwrap_err();
    assert!(matches!(small, Error::CapacityBelowSource { needed, .. } if needed == 1 << 30), "{small}");
    let other = f.engine.create_volume_from(&req("r", Kind::Dir, 1 << 30), &source).unwrap_err();
    assert!(matches!(other, Error::InvalidArgument(_)), "{other}");
    let missing = f.engine.create_volume_from(&req("r", Kind::Loop, 1 << 30), &Source::Snapshot("nope".into()));
    assert!(matches!(missing, Err(Error::SnapshotNotFound(_))));
    assert!(!f.root.join("volumes/r").exists());
    let r = f.engine.create_volume_from(&req("r", Kind::Loop, 2 << 30), &source).unwrap();
    assert!(r.grow_fs);
    assert_eq!(r.source, Some(source.clone()));
    assert_eq!(std::fs::metadata(f.root.join("volumes/r/disk.img")).unwrap().len(), 2 << 30);
    assert_eq!(f.engine.create_volume_from(&req("r", Kind::Loop, 2 << 30), &source).unwrap(), r);
    assert!(matches!(f.engine.create_volume(&req("r", Kind::Loop, 2 << 30)), Err(Error::AlreadyExists { .. })));
    let s = f.staging("r");
    f.host.clear_calls();
    f.engine.stage_volume("r", &s, &mount_access()).unwrap();
    let calls = f.host.calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::Mkfs { .. })), "restored data is never formatted: {calls:?}");
    let expected = vec![
        Call::LoopAttach { file: f.root.join("volumes/r/disk.img"), readonly: false },
        Call::GrowFsOffline { fs: FsType::Ext4, device: "/dev/loop1".into() },
        Call::Mount { source: "/dev/loop1".into(), target: s, fstype: "ext4".into(), opts: Default::default() },
    ];
    assert_eq!(calls, expected, "ext4 grows offline before the mount");
    assert!(!f.engine.get_volume("r").unwrap().unwrap().grow_fs);
}

#[test]
fn clone_and_delete_keep_snapshots_independent() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    std::fs::write(f.root.join("volumes/v/data/file"), b"one").unwrap();
    f.engine.create_snapshot(&snap("s1", "v")).unwrap();
    let c = f.engine.create_volume_from(&req("c", Kind::Dir, 1 << 20), &Source::Volume("v".into())).unwrap();
    assert_eq!(std::fs::read(f.root.join("volumes/c/data/file")).unwrap(), b"one");
    assert_eq!(c.source, Some(Source::Volume("v".into())));
    f.engine.delete_volume("v").unwrap();
    assert_eq!(std::fs::read(f.root.join("snapshots/s1/data/file")).unwrap(), b"one");
    f.engine.create_volume_from(&req("r", Kind::Dir, 1 << 20), &Source::Snapshot("s1".into())).unwrap();
    f.engine.delete_snapshot("s1").unwrap();
    f.engine.delete_snapshot("s1").unwrap();
    assert_eq!(std::fs::read(f.root.join("volumes/r/data/file")).unwrap(), b"one");
    assert!(!f.root.join("snapshots/s1").exists());
}

#[test]
fn tmpfs_snapshots_go_to_disk_and_clones_get_a_tmpfs_of_their_own() {
    let f = fixture();
    f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
    std::fs::write(f.root.join("volumes/t/data/file"), b"one").unwrap();
    f.host.clear_calls();
    f.engine.create_snapshot(&snap("s", "t")).unwrap();
    let to_disk = Call::CopyTree { source: f.root.join("volumes/t/data"), dest: f.root.join("snapshots/s/data") };
    assert_eq!(f.host.calls(), vec![to_disk], "a snapshot is a tree copy on disk, no mount");
    assert_eq!(std::fs::read(f.root.join("snapshots/s/data/file")).unwrap(), b"one");
    f.engine.create_volume_from(&req("c", Kind::Tmpfs, 2 << 20), &Source::Volume("t".into())).unwrap();
    f.engine.create_volume_from(&req("r", Kind::Tmpfs, 1 << 20), &Source::Snapshot("s".into())).unwrap();
    for id in ["c", "r"] {
        assert_eq!(std::fs::read(f.root.join(format!("volumes/{id}/data/file"))).unwrap(), b"one", "{id}");
        let mounted = f.host.mounts_beyond_root().contains(&f.root.join(format!("volumes/{id}/data")));
        assert!(mounted, "{id} is a tmpfs of its own");
    }
    let resized = f.host.calls().into_iter().any(|c| {
        matches!(c, Call::Remount { target, opts } if target == f.root.join("volumes/c/data")
            && opts.options.contains(&format!("size={}", 2 << 20)))
    });
    assert!(resized, "the clone's tmpfs is sized to the clone: {:#?}", f.host.calls());
    f.engine.delete_snapshot("s").unwrap();
    assert!(!f.root.join("snapshots/s").exists());
}

#[test]
fn a_tmpfs_that_lost_its_mount_is_not_snapshotted() {
    let f = fixture();
    f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20)).unwrap();
    f.host.unmount(&crate::sys::place_at(&f.root.join("volumes/t/data")).unwrap(), false).unwrap();
    let e = f.engine.create_snapshot(&snap("s", "t")).unwrap_err();
    assert!(e.to_string().contains("storage of the volume is missing"), "{e}");
    assert!(!f.root.join("snapshots/s").exists());
    let e = f.engine.create_volume_from(&req("c", Kind::Tmpfs, 1 << 20), &Source::Volume("t".into())).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(!f.root.join("volumes/c").exists());
}

#[test]
fn health_names_what_is_wrong() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Loop, 1 << 30)).unwrap();
    let s = f.staging("v");
    f.engine.stage_volume("v", &s, &mount_access()).unwrap();
    let ok = f.engine.volume_condition("v").unwrap();
    assert!(!ok.abnormal, "{ok:?}");
    f.host.drop_all_loops();
    let bad = f.engine.volume_condition("v").unwrap();
    assert!(bad.abnormal && bad.message.contains("no longer holds"), "{bad:?}");
    std::fs::remove_file(f.root.join("volumes/v/disk.img")).unwrap();
    let gone = f.engine.volume_condition("v").unwrap();
    assert!(gone.message.contains("backing file") && gone.message.contains("missing"), "{gone:?}");
    let e = f.engine.publish_volume("v", &s, &f.target("p"), false).unwrap_err();
    assert!(e.to_string().contains("backing file"), "{e}");
    assert!(f.engine.volume_usage("v", &s).unwrap_err().to_string().contains("missing"));
    f.engine.create_volume(&req("w", Kind::Dir, 1 << 20)).unwrap();
    let all = f.engine.list_volumes().unwrap();
    let conditions = f.engine.volume_conditions(&all).unwrap();
    let abnormal: Vec<bool> = conditions.iter().map(|c| c.abnormal).collect();
    assert_eq!(abnormal, vec![true, false], "{conditions:?}");
    assert_eq!(conditions[0], f.engine.volume_condition("v").unwrap());
}
