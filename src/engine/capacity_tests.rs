//! Capacity accounting against the fake host: promises per pool, overcommit, thick images, and
//! a stage whose node state cannot be written leaving nothing behind.

use super::*;
use crate::engine::tests::{fixture, mount_access, req};
use crate::engine::{Config, Engine};
use crate::sys::{FakeHost, FsStats, Host};
use std::sync::Arc;

const MIB: u64 = 1 << 20;

/// A fixture whose root filesystem and memory both show `free` bytes available, none used.
fn with_free(free: u64) -> crate::engine::tests::Fixture {
    let f = fixture();
    f.host.set_stats(FsStats { total_bytes: 4 * free, available_bytes: free, ..FsStats::default() });
    f
}

fn thick(id: &str, bytes: u64) -> crate::engine::CreateRequest {
    let mut r = req(id, Kind::Loop, bytes);
    r.parameters.insert(PARAM_ALLOCATION.into(), "thick".into());
    r
}

#[test]
fn sparse_images_are_promised_and_the_budget_never_goes_below_zero() {
    let f = with_free(100 * MIB);
    assert_eq!(f.engine.budget(Kind::Loop).unwrap(), Budget { free: 100 * MIB, promised: 0, available: 100 * MIB });
    f.engine.create_volume(&req("a", Kind::Loop, 60 * MIB)).unwrap();
    let b = f.engine.budget(Kind::Loop).unwrap();
    assert_eq!((b.promised, b.available), (60 * MIB, 40 * MIB));
    assert_eq!(f.engine.free_bytes(Kind::Dir).unwrap(), 40 * MIB, "dir shares the root's filesystem");
    assert_eq!(f.engine.free_bytes(Kind::Tmpfs).unwrap(), 100 * MIB, "memory is another pool");
    let err = f.engine.create_volume(&req("b", Kind::Loop, 60 * MIB)).unwrap_err();
    assert!(
        matches!(err, Error::OutOfCapacity { requested, available, promised, .. }
            if requested == 60 * MIB && available == 40 * MIB && promised == 60 * MIB),
        "{err}"
    );
    assert!(err.to_string().contains("data root's filesystem"), "{err}");
    assert!(!f.root.join("volumes/b").exists(), "a refused create makes nothing");
    assert!(!f.root.join("volumes/.b.new").exists(), "a refused create makes nothing aside either");
    // The free space shrinks behind strata's back: the budget is zero, not negative.
    f.host.set_stats(FsStats { available_bytes: 10 * MIB, ..FsStats::default() });
    assert_eq!(f.engine.budget(Kind::Loop).unwrap().available, 0);
}

#[test]
fn written_blocks_of_an_image_are_no_longer_promised() {
    let f = with_free(100 * MIB);
    f.engine.create_volume(&req("a", Kind::Loop, 40 * MIB)).unwrap();
    let image = f.root.join("volumes/a/disk.img");
    let file = std::fs::OpenOptions::new().write(true).open(&image).unwrap();
    nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, (16 * MIB) as i64).unwrap();
    assert_eq!(f.engine.budget(Kind::Loop).unwrap().promised, 40 * MIB, "until the ledger is counted again");
    f.engine.recount_capacity(false).unwrap();
    let promised = f.engine.budget(Kind::Loop).unwrap().promised;
    assert_eq!(promised, 24 * MIB, "capacity minus st_blocks * 512");
    // A create that does not fit counts again before it refuses: here it fits once counted.
    file.set_len(40 * MIB).unwrap();
    nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, (40 * MIB) as i64).unwrap();
    f.engine.create_volume(&req("b", Kind::Loop, 100 * MIB)).unwrap();
}

#[test]
fn tmpfs_limits_are_promised_against_memory_and_overcommit_lets_more_in() {
    let f = with_free(1000 * MIB);
    f.engine.create_volume(&req("a", Kind::Tmpfs, 800 * MIB)).unwrap();
    let err = f.engine.create_volume(&req("b", Kind::Tmpfs, 800 * MIB)).unwrap_err();
    assert!(matches!(err, Error::OutOfCapacity { available, .. } if available == 200 * MIB), "{err}");
    assert!(err.to_string().contains("memory"), "{err}");
    assert_eq!(f.engine.free_bytes(Kind::Loop).unwrap(), 1000 * MIB, "tmpfs promises nothing on disk");

    let mut overcommit = Overcommit::default();
    overcommit.set(Kind::Tmpfs, 3.0).unwrap();
    let cfg = Config { allowed_prefixes: vec![f.kubelet.clone()], overcommit, ..Config::new(f.root.clone()) };
    let host: Arc<FakeHost> = f.host.clone();
    let engine = Engine::new(cfg, host).unwrap();
    engine.create_volume(&req("b", Kind::Tmpfs, 800 * MIB)).unwrap();
    engine.create_volume(&req("c", Kind::Tmpfs, 800 * MIB)).unwrap();
    assert_eq!(engine.budget(Kind::Tmpfs).unwrap().available, 600 * MIB, "3 x 1000 MiB - 2400 MiB");
    let err = engine.create_volume(&req("d", Kind::Tmpfs, 800 * MIB)).unwrap_err();
    assert!(err.to_string().contains("overcommit ratio 3"), "{err}");
    assert!(matches!(engine.expand_volume("c", 1500 * MIB), Err(Error::OutOfCapacity { .. })));
    engine.expand_volume("c", 1400 * MIB).unwrap();
}

#[test]
fn dir_volumes_promise_nothing_but_must_fit() {
    let f = with_free(100 * MIB);
    f.engine.create_volume(&req("a", Kind::Dir, 90 * MIB)).unwrap();
    assert_eq!(f.engine.budget(Kind::Dir).unwrap().promised, 0);
    f.engine.create_volume(&req("b", Kind::Dir, 90 * MIB)).unwrap();
    assert!(matches!(f.engine.create_volume(&req("c", Kind::Dir, 101 * MIB)), Err(Error::OutOfCapacity { .. })));
}

#[test]
fn a_thick_image_is_allocated_and_counts_as_written() {
    let f = with_free(100 * MIB);
    f.engine.create_volume(&thick("t", 16 * MIB)).unwrap();
    let meta = std::fs::metadata(f.root.join("volumes/t/disk.img")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(meta.blocks() * 512 >= 16 * MIB, "{} blocks", meta.blocks());
    assert_eq!(f.engine.budget(Kind::Loop).unwrap().promised, 0);
    f.engine.expand_volume("t", 20 * MIB).unwrap();
    let meta = std::fs::metadata(f.root.join("volumes/t/disk.img")).unwrap();
    assert!(meta.blocks() * 512 >= 20 * MIB, "growing a thick image allocates it too");
}

#[test]
fn allocation_is_thin_or_thick_and_thick_is_for_loop_only() {
    let f = with_free(100 * MIB);
    let mut dir = req("d", Kind::Dir, MIB);
    dir.parameters.insert(PARAM_ALLOCATION.into(), "thick".into());
    assert!(matches!(f.engine.create_volume(&dir), Err(Error::InvalidArgument(_))));
    let mut odd = req("o", Kind::Loop, 16 * MIB);
    odd.parameters.insert(PARAM_ALLOCATION.into(), "fat".into());
    assert!(matches!(f.engine.create_volume(&odd), Err(Error::InvalidArgument(_))));
    let mut thin = req("n", Kind::Loop, 16 * MIB);
    thin.parameters.insert(PARAM_ALLOCATION.into(), "thin".into());
    f.engine.create_volume(&thin).unwrap();
    assert!(!f.root.join("volumes/d").exists() && !f.root.join("volumes/o").exists());
}

#[test]
fn overcommit_pairs_parse_and_bad_ones_are_refused() {
    assert_eq!(Overcommit::parse_pair("tmpfs=1.5").unwrap(), (Kind::Tmpfs, 1.5));
    let o = Overcommit::from_pairs(&[(Kind::Loop, 2.0), (Kind::Loop, 4.0)]).unwrap();
    assert_eq!((o.permille(Kind::Loop), o.permille(Kind::Dir)), (4000, 1000));
    for bad in ["tmpfs", "ram=2", "tmpfs=x", "tmpfs=0.5", "loop=inf", "dir=NaN"] {
        assert!(Overcommit::parse_pair(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_stage_whose_node_state_cannot_be_written_leaves_no_mount_or_loop() {
    let f = with_free(100 * MIB);
    for kind in [Kind::Dir, Kind::Loop] {
        let id = kind.as_str();
        f.engine.create_volume(&req(id, kind, 16 * MIB)).unwrap();
        let staging = f.kubelet.join(format!("stage-{id}"));
        let spare = f.root.join("volumes").join(id).join(".node.json.next");
        std::fs::create_dir(&spare).unwrap(); // the write of node state fails
        assert!(f.engine.stage_volume(id, &staging, &mount_access()).is_err());
        assert!(f.host.mounts_beyond_root().is_empty(), "{:?}", f.host.mounts_beyond_root());
        assert!(f.host.loop_list().unwrap().is_empty(), "{kind:?}");
        assert!(!staging.exists(), "the staging directory this call made is gone");
        std::fs::remove_dir(&spare).unwrap();
        f.engine.stage_volume(id, &staging, &mount_access()).unwrap();
        f.engine.unstage_volume(id, &staging).unwrap();
    }
}

#[test]
fn the_ledger_follows_creates_expansions_and_deletes_across_engines_on_one_root() {
    let f = with_free(100 * MIB);
    f.engine.create_volume(&req("a", Kind::Loop, 30 * MIB)).unwrap();
    f.engine.create_volume(&req("t", Kind::Tmpfs, 10 * MIB)).unwrap();
    // Another process on the same root (strata-flex) reads and writes the same ledger.
    let host: Arc<FakeHost> = f.host.clone();
    let other = Engine::new(Config::new(f.root.clone()), host).unwrap();
    assert_eq!(other.budget(Kind::Loop).unwrap().promised, 30 * MIB);
    other.create_volume(&req("b", Kind::Loop, 20 * MIB)).unwrap();
    other.expand_volume("b", 25 * MIB).unwrap();
    let ledger = f.engine.ledger().unwrap();
    let loop_tally = ledger.tally(Kind::Loop);
    assert_eq!((loop_tally.volumes, loop_tally.capacity, loop_tally.promised()), (2, 55 * MIB, 55 * MIB));
    assert_eq!(ledger.promised(true), 10 * MIB, "tmpfs is promised against memory");
    f.engine.delete_volume("a").unwrap();
    f.engine.delete_volume("t").unwrap();
    let ledger = other.ledger().unwrap();
    assert_eq!((ledger.tally(Kind::Loop).volumes, ledger.promised(false), ledger.promised(true)), (1, 25 * MIB, 0));
    // Counting from the records and images gives the same totals.
    other.recount_capacity(false).unwrap();
    assert_eq!(other.ledger().unwrap().tally(Kind::Loop), ledger.tally(Kind::Loop));
}

#[test]
fn a_clone_promises_its_size_while_it_copies_and_a_failed_one_gives_it_back() {
    let f = with_free(100 * MIB);
    f.engine.create_volume(&req("src", Kind::Loop, 30 * MIB)).unwrap();
    let from = crate::engine::Source::Volume("src".into());
    f.engine.create_volume_from(&req("copy", Kind::Loop, 30 * MIB), &from).unwrap();
    assert_eq!(f.engine.budget(Kind::Loop).unwrap().promised, 60 * MIB);
    f.host.fail("CopyFile");
    assert!(f.engine.create_volume_from(&req("bad", Kind::Loop, 30 * MIB), &from).is_err());
    assert_eq!(f.engine.budget(Kind::Loop).unwrap().promised, 60 * MIB, "the failed copy promises nothing");
    assert!(f.engine.create_volume_from(&req("big", Kind::Loop, 50 * MIB), &from).is_err(), "40 MiB left");
}
