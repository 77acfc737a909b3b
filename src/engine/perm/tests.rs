use super::*;
use crate::backend::Kind;
use crate::engine::tests::{fixture, mount_access, req};
use crate::engine::{SnapshotRequest, perm};
use std::os::unix::fs::MetadataExt;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

#[test]
fn everything_strata_makes_is_root_only() {
    let f = fixture();
    f.engine.create_volume(&req("d", Kind::Dir, 1 << 20)).unwrap();
    f.engine.create_volume(&req("l", Kind::Loop, 16 << 20)).unwrap();
    f.engine.stage_volume("l", &f.staging("l"), &mount_access()).unwrap();
    let snap = SnapshotRequest { id: "s".into(), name: "s".into(), source_volume: "l".into() };
    f.engine.create_snapshot(&snap).unwrap();
    let r = &f.root;
    let mut dirs = vec![r.clone(), r.join("volumes/d"), r.join("volumes/l"), r.join("snapshots/s")];
    dirs.extend(ROOT_DIRS.iter().map(|d| r.join(d)));
    for dir in dirs {
        assert_eq!(mode(&dir), perm::DIR_MODE, "{}", dir.display());
    }
    let files = [
        "volumes/d/volume.json",
        "volumes/l/volume.json",
        "volumes/l/node.json",
        "volumes/l/disk.img",
        "snapshots/s/snapshot.json",
        "snapshots/s/disk.img",
        "locks/ids.lock",
        "locks/snapshots/ids.lock",
    ];
    for file in files {
        assert_eq!(mode(&r.join(file)), perm::FILE_MODE, "{file}");
    }
    assert_eq!(mode(&r.join("volumes/d/data")), 0o777, "volume data stays writable for any pod uid");
}

/// A root as an older strata left it: 0755 directories, 0644 files.
fn loose_root(root: &Path) {
    for dir in ["volumes/v/data", "snapshots/s", "staging", "locks/snapshots", "locks/flex"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in ["volumes/v/volume.json", "volumes/v/node.json", "volumes/v/.node.json.next", "volumes/v/disk.img"] {
        std::fs::write(root.join(file), b"{}").unwrap();
    }
    for file in ["snapshots/s/snapshot.json", "locks/v.lock", "locks/snapshots/s.lock", "locks/flex/v.lock"] {
        std::fs::write(root.join(file), b"").unwrap();
    }
    std::fs::write(root.join("volumes/v/data/user-file"), b"pod data").unwrap();
    std::fs::set_permissions(root.join("volumes/v/data"), std::fs::Permissions::from_mode(0o777)).unwrap();
    for p in ["", "volumes", "volumes/v", "snapshots", "snapshots/s", "staging", "locks"] {
        std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn an_older_loose_root_is_tightened_at_open_but_volume_data_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    loose_root(&root);
    let user_file_mode = mode(&root.join("volumes/v/data/user-file"));
    open_root(&root).unwrap();
    for dir in ["", "volumes", "volumes/v", "snapshots", "snapshots/s", "staging", "locks", "locks/snapshots"] {
        assert_eq!(mode(&root.join(dir)), DIR_MODE, "{dir:?}");
    }
    for file in [
        "volumes/v/volume.json",
        "volumes/v/node.json",
        "volumes/v/.node.json.next",
        "volumes/v/disk.img",
        "snapshots/s/snapshot.json",
        "locks/v.lock",
        "locks/snapshots/s.lock",
        "locks/flex/v.lock",
    ] {
        assert_eq!(mode(&root.join(file)), FILE_MODE, "{file}");
    }
    assert_eq!(mode(&root.join("volumes/v/data")), 0o777);
    assert_eq!(mode(&root.join("volumes/v/data/user-file")), user_file_mode);
}

#[test]
fn files_an_older_strata_made_are_narrowed_when_rewritten() {
    let f = fixture();
    f.engine.create_volume(&req("v", Kind::Dir, 1 << 20)).unwrap();
    let (record, node) = (f.root.join("volumes/v/volume.json"), f.root.join("volumes/v/node.json"));
    let loose = |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    loose(&record);
    f.engine.stage_volume("v", &f.staging("v"), &mount_access()).unwrap();
    assert_eq!(mode(&node), FILE_MODE);
    loose(&node);
    let spare = f.root.join("volumes/v/.node.json.next");
    if spare.exists() {
        loose(&spare);
    }
    f.engine.unstage_volume("v", &f.staging("v")).unwrap();
    f.engine.expand_volume("v", 2 << 20).unwrap();
    assert_eq!(mode(&record), FILE_MODE, "the record is written anew");
    assert!(mode(&node) == FILE_MODE || mode(&spare) == FILE_MODE, "the node state file written is narrowed");
}

#[test]
fn a_tight_root_is_left_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    open_root(&root).unwrap();
    std::fs::create_dir_all(root.join("volumes/v")).unwrap();
    std::fs::write(root.join("volumes/v/volume.json"), b"{}").unwrap();
    std::fs::set_permissions(root.join("volumes/v/volume.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    open_root(&root).unwrap();
    assert_eq!(mode(&root.join("volumes/v/volume.json")), 0o644, "no walk below a root that is already tight");
}
