//! Journaled creates and deletes, and their replay after what a power cut can leave: every state
//! a lost write can leave converges to what the calls answered.

use super::super::tests::{fixture, req};
use super::*;
use crate::backend::Kind;
use crate::engine::Config;
use std::time::Instant;

struct Node {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    engine: Arc<Engine>,
}

/// An engine that journals (no background checkpoints: the test decides what reached the disk).
fn node() -> Node {
    let f = fixture();
    let engine = Arc::new(f.engine);
    engine.open_journal().unwrap();
    Node { _tmp: f._tmp, root: f.root, engine }
}

impl Node {
    /// The same root after a power cut: a new engine replays the journal.
    fn restart(self) -> (Node, Vec<String>) {
        let root = self.root.clone();
        let engine = Arc::downgrade(&self.engine);
        let cfg = Config { allowed_prefixes: Vec::new(), ..Config::new(root.clone()) };
        drop(self.engine);
        // The pool's thread lets go of the old engine within a second.
        while engine.strong_count() > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let engine = Arc::new(Engine::new(cfg, Arc::new(crate::sys::FakeHost::new())).unwrap());
        let (_, actions) = engine.open_journal().unwrap();
        (Node { _tmp: self._tmp, root, engine }, actions)
    }

    fn vol(&self, id: &str) -> PathBuf {
        self.root.join("volumes").join(id)
    }

    fn on_disk(&self, id: &str) -> Option<Volume> {
        record::load(&self.vol(id).join("volume.json")).unwrap()
    }
}

fn create(n: &Node, id: &str, kind: Kind) -> Volume {
    n.engine.create_volume(&req(id, kind, 1 << 20)).unwrap()
}

#[test]
fn a_journaled_create_writes_one_entry_and_answers_the_same_volume_again() {
    let n = node();
    let vol = create(&n, "v1", Kind::Dir);
    assert!(vol.incarnation.is_some());
    assert_eq!(n.engine.journal.get().unwrap().uncovered(), 1);
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
    assert!(n.vol("v1").join("data").is_dir());
    assert_eq!(create(&n, "v1", Kind::Dir).incarnation, vol.incarnation, "the same request is the same volume");
    assert_eq!(n.engine.journal.get().unwrap().uncovered(), 1);
    let (n, actions) = n.restart();
    assert!(actions.is_empty(), "nothing was lost, nothing to do: {actions:?}");
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
}

#[test]
fn a_create_whose_directory_never_reached_the_disk_is_made_again() {
    let n = node();
    let vol = create(&n, "v1", Kind::Dir);
    std::fs::remove_dir_all(n.vol("v1")).unwrap();
    let (n, actions) = n.restart();
    assert_eq!(actions, ["volume v1: made again, empty, as its create left it (intent journal)"]);
    let back = n.on_disk("v1").unwrap();
    assert_eq!((back.incarnation, back.capacity, back.name), (vol.incarnation, vol.capacity, vol.name));
    assert!(n.vol("v1").join("data").is_dir());
}

#[test]
fn a_create_whose_rename_and_record_were_lost_is_renamed_and_recorded() {
    let n = node();
    let vol = create(&n, "v1", Kind::Dir);
    std::fs::write(n.vol("v1").join("data/kept"), b"a pod's file").unwrap();
    std::fs::write(n.vol("v1").join("volume.json"), b"").unwrap();
    std::fs::rename(n.vol("v1"), n.vol(".v1.new")).unwrap();
    let (n, actions) = n.restart();
    assert_eq!(actions, ["volume v1: its directory renamed into place (intent journal)"]);
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
    assert_eq!(std::fs::read(n.vol("v1").join("data/kept")).unwrap(), b"a pod's file", "nothing of it is lost");
    assert!(!n.vol(".v1.new").exists());
}

#[test]
fn a_create_whose_record_was_lost_in_place_gets_it_again() {
    let n = node();
    let vol = create(&n, "v1", Kind::Tmpfs);
    std::fs::remove_file(n.vol("v1").join("volume.json")).unwrap();
    let (n, actions) = n.restart();
    assert_eq!(actions, ["volume v1: its record written again (intent journal)"]);
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
}

/// Copies a volume directory (what the disk may still hold after a lost rename), with the
/// project's own tree copy.
fn keep(n: &Node, id: &str) -> PathBuf {
    let copy = n.root.join(format!("kept-{id}"));
    crate::sys::tree::copy_tree(&n.vol(id), &copy).unwrap();
    copy
}

#[test]
fn a_deleted_volume_that_comes_back_is_removed() {
    let n = node();
    create(&n, "v1", Kind::Dir);
    let old = keep(&n, "v1");
    n.engine.delete_volume("v1").unwrap();
    assert!(n.on_disk("v1").is_none());
    std::fs::rename(&old, n.vol("v1")).unwrap();
    let (n, actions) = n.restart();
    assert_eq!(actions, ["volume v1: deleted, was back: removed (intent journal)"]);
    assert!(!n.vol("v1").exists() && !n.vol(".v1.del").exists());
}

#[test]
fn replay_keeps_a_volume_made_later_outside_the_journal_and_removes_an_older_one() {
    let n = node();
    create(&n, "v1", Kind::Dir);
    let first = keep(&n, "v1");
    n.engine.delete_volume("v1").unwrap();
    let second = create(&n, "v1", Kind::Dir);
    // The last entry of v1 is the second create; the disk holds the first volume instead.
    std::fs::remove_dir_all(n.vol("v1")).unwrap();
    std::fs::rename(&first, n.vol("v1")).unwrap();
    let (n, actions) = n.restart();
    assert_eq!(actions, ["volume v1: made again, empty, as its create left it (intent journal)"]);
    assert_eq!(n.on_disk("v1").unwrap().incarnation, second.incarnation);
    // A delete entry leaves alone a volume of the id that is not the one it deleted.
    create(&n, "v2", Kind::Dir);
    n.engine.delete_volume("v2").unwrap();
    let mut newer = create(&n, "v2", Kind::Dir);
    newer.incarnation = newer.incarnation.map(|i| i + 1);
    record::save_json(&n.vol("v2").join("volume.json"), &newer, record::Durability::Durable).unwrap();
    let (n, _) = n.restart();
    assert_eq!(n.on_disk("v2").unwrap().incarnation, newer.incarnation);
}

#[test]
fn without_the_journal_creates_and_deletes_sync_and_write_no_entry() {
    let f = fixture();
    f.engine.create_volume(&req("v1", Kind::Dir, 1 << 20)).unwrap();
    f.engine.delete_volume("v1").unwrap();
    assert!(!f.root.join("journal").exists());
}

#[test]
fn the_checkpoint_covers_the_entries_and_a_restart_replays_nothing() {
    let f = fixture();
    let engine = Arc::new(f.engine);
    engine.start_journal().unwrap();
    engine.create_volume(&req("v1", Kind::Dir, 1 << 20)).unwrap();
    engine.create_volume(&req("v2", Kind::Dir, 1 << 20)).unwrap();
    engine.delete_volume("v2").unwrap();
    let ring = engine.journal.get().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ring.uncovered() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ring.uncovered(), 0, "a checkpoint came within its delay");
    drop((engine, ring));
    let (_, found) = Ring::open(&f.root.join("journal")).unwrap();
    assert!(found.is_empty(), "{found:?}");
}

/// Waits until the pool holds `n` entries of dir volumes.
fn pool_holds(engine: &Engine, n: usize) -> Vec<VolumeDir> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entries = engine.pool_entries().unwrap();
        if entries.len() >= n || Instant::now() > deadline {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_create_takes_a_directory_made_ahead_and_the_start_removes_the_rest() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let n = node();
    n.engine.start_pool(&Kind::ALL);
    let entries = pool_holds(&n.engine, 8);
    assert_eq!(entries.len(), 8, "eight made ahead");
    let inodes: Vec<u64> = entries.iter().map(|e| std::fs::metadata(&e.0).unwrap().ino()).collect();
    let vol = create(&n, "v1", Kind::Dir);
    let made = std::fs::metadata(n.vol("v1")).unwrap();
    assert!(inodes.contains(&made.ino()), "the volume is one of the directories made ahead");
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
    let data = std::fs::metadata(n.vol("v1").join("data")).unwrap();
    assert_eq!(data.permissions().mode() & 0o7777, 0o777);
    assert_eq!(pool_holds(&n.engine, 8).len(), 8, "and another is made");
    // A tmpfs volume is not pooled.
    create(&n, "t1", Kind::Tmpfs);
    assert!(!inodes.contains(&std::fs::metadata(n.vol("t1")).unwrap().ino()));
    let (n, _) = n.restart();
    let report = n.engine.reconcile().unwrap();
    assert!(
        report.actions.iter().any(|a| a == "removed 8 volume directories the last server made ahead"),
        "{report:?}"
    );
    assert!(n.engine.pool_entries().unwrap().is_empty());
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
}

#[test]
fn a_create_from_the_pool_whose_rename_was_lost_is_taken_back_with_what_a_pod_wrote() {
    let n = node();
    n.engine.start_pool(&Kind::ALL);
    pool_holds(&n.engine, 8);
    let vol = create(&n, "v1", Kind::Dir);
    std::fs::write(n.vol("v1").join("data/kept"), b"a pod's file").unwrap();
    std::fs::rename(n.vol("v1"), n.vol(".pool-1-999")).unwrap();
    let (n, actions) = n.restart();
    assert_eq!(actions, ["volume v1: its directory renamed into place (intent journal)"]);
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
    assert_eq!(std::fs::read(n.vol("v1").join("data/kept")).unwrap(), b"a pod's file");
}

#[test]
fn a_stopped_pool_removes_its_directories_and_creates_make_their_own() {
    let n = node();
    n.engine.start_pool(&[Kind::Dir]);
    assert_eq!(pool_holds(&n.engine, 8).len(), 8);
    n.engine.stop_pool();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(n.engine.pool_entries().unwrap().is_empty(), "{:?}", n.engine.pool_entries());
    let vol = create(&n, "v1", Kind::Dir);
    assert_eq!(n.on_disk("v1").unwrap().incarnation, vol.incarnation);
    assert!(n.engine.pool_entries().unwrap().is_empty());
}

#[test]
fn a_checkpoint_at_stop_leaves_nothing_to_replay_so_later_damage_stays_damage() {
    let n = node();
    create(&n, "v1", Kind::Dir);
    n.engine.checkpoint_now().unwrap();
    assert_eq!(n.engine.journal.get().unwrap().uncovered(), 0);
    std::fs::write(n.vol("v1").join("volume.json"), b"{\"format\":1,\"id\":").unwrap();
    let (n, actions) = n.restart();
    assert!(actions.is_empty(), "{actions:?}");
    assert!(record::load(&n.vol("v1").join("volume.json")).is_err(), "the damage is left for quarantine");
}

#[test]
fn concurrent_journaled_creates_and_deletes_leave_nothing_to_replay_but_what_they_answered() {
    let f = fixture();
    let engine = Arc::new(f.engine);
    engine.start_journal().unwrap();
    engine.start_pool(&[Kind::Dir]);
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let id = format!("w{t}-{i}");
                    let kind = if i % 3 == 0 { Kind::Tmpfs } else { Kind::Dir };
                    engine.create_volume(&req(&id, kind, 1 << 20)).unwrap();
                    if i % 2 == 0 {
                        engine.delete_volume(&id).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let kept = engine.volume_ids().unwrap();
    assert_eq!(kept.len(), 8 * 20, "the odd ones stay");
    // A power cut now: replay finds every volume in place and every deleted one gone.
    let weak = Arc::downgrade(&engine);
    drop(engine);
    while weak.strong_count() > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cfg = Config { allowed_prefixes: Vec::new(), ..Config::new(f.root.clone()) };
    let engine = Arc::new(Engine::new(cfg, Arc::new(crate::sys::FakeHost::new())).unwrap());
    let (_, actions) = engine.open_journal().unwrap();
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(engine.volume_ids().unwrap(), kept);
}

#[test]
fn a_deleted_dir_volume_s_directory_comes_back_to_the_pool_with_nothing_of_the_volume_in_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let n = node();
    n.engine.remove_in_background();
    n.engine.start_pool(&[Kind::Dir]);
    pool_holds(&n.engine, 8);
    create(&n, "v1", Kind::Dir);
    let outer = std::fs::metadata(n.vol("v1")).unwrap().ino();
    let data = n.vol("v1").join("data");
    std::fs::write(data.join("secret"), b"a pod's file").unwrap();
    std::fs::create_dir(data.join("sub")).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    rustix::fs::setxattr(&data, "user.tenant", b"first", rustix::fs::XattrFlags::empty()).unwrap();
    std::fs::write(n.vol("v1").join(".node.json.next"), b"{}").unwrap();
    assert_eq!(pool_holds(&n.engine, 8).len(), 8, "the thread made up for the create");
    n.engine.delete_volume("v1").unwrap();

    // The thread makes eight; a ninth is a deleted volume's directory taken back.
    let entries = pool_holds(&n.engine, 9);
    assert!(entries.len() >= 9, "{entries:?}");
    let back = entries.iter().find(|e| std::fs::metadata(&e.0).unwrap().ino() == outer);
    let back = back.unwrap_or_else(|| panic!("the deleted volume's directory is not in the pool: {entries:?}"));
    let mut inside: Vec<_> = std::fs::read_dir(&back.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    inside.sort();
    assert_eq!(inside, ["data", "node.json", "volume.json"], "nothing of the volume but its directory");
    let node = crate::backend::VolumeDir(back.0.clone());
    let empty = crate::engine::state::NodeState::new(None, Vec::new());
    assert_eq!(crate::engine::state::load_if_any(&node).unwrap(), Some(empty), "an empty node state");
    assert_eq!(std::fs::metadata(back.record()).unwrap().len(), 0, "the record file is empty");
    // A new data directory (its inode number may be the old one's, freed and taken again).
    let fresh = std::fs::metadata(back.data()).unwrap();
    assert_eq!(fresh.permissions().mode() & 0o7777, 0o777);
    assert_eq!(std::fs::read_dir(back.data()).unwrap().count(), 0);
    let mut names = [0u8; 256];
    assert_eq!(rustix::fs::listxattr(back.data(), &mut names).unwrap(), 0, "no attribute of the pod's");
    assert!(!n.vol(".v1.del").exists());

    // Creates take it like any entry; a tmpfs volume's directory is never taken back.
    for i in 0..12 {
        create(&n, &format!("w{i}"), Kind::Dir);
    }
    let vol = create(&n, "t1", Kind::Tmpfs);
    // Held open, its inode is not freed, so no new directory of the pool can take its number.
    let _held = std::fs::File::open(n.vol("t1")).unwrap();
    let tmpfs_dir = std::fs::metadata(n.vol("t1")).unwrap().ino();
    n.engine.delete_volume(&vol.id).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let entries = n.engine.pool_entries().unwrap();
    assert!(entries.iter().all(|e| std::fs::metadata(&e.0).unwrap().ino() != tmpfs_dir), "{entries:?}");
}
