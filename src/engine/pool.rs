//! Volume directories made ahead (a long-lived server with the intent journal): for kinds whose
//! new volume needs nothing from the request ([`crate::backend::Rules::pooled`]: a `dir` volume's
//! empty directory), a background thread keeps a few `volumes/.pool-<pid>-<n>/` ready, each with
//! its storage and an empty record file. A create takes one, writes its record into the file it
//! finds there and renames the directory into place: no inode is made in the call (on this VM's
//! ext4 each costs an allocator scan, see performance.md). Entries are never shown to a pod
//! before their rename; the start removes those a stopped server left (after the journal's replay
//! has taken back any whose rename a power cut lost).

use super::{Engine, Result};
use crate::backend::{Kind, VolumeDir};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

/// Entries kept ready per pooled kind: deleted volumes' directories are taken back up to this.
const READY: usize = 12;
/// The background thread makes entries only below this: in a stream of creates and deletes, the
/// deletes' directories keep the pool above it and no directory is made or freed (see
/// [`Engine::recycle`]).
const LOW: usize = 8;
/// The name prefix of an entry in `volumes/` (no id starts with '.').
pub(super) const PREFIX: &str = ".pool-";

/// The entries ready, per kind.
#[derive(Debug, Default)]
pub(super) struct Pool {
    ready: Mutex<BTreeMap<Kind, Vec<VolumeDir>>>,
    taken: Condvar,
    /// No more entries are made or handed out ([`Engine::stop_pool`]).
    stopped: AtomicBool,
    /// The number of the next entry's name.
    named: AtomicU64,
}

impl Pool {
    /// An entry of `kind`, if one is ready.
    pub(super) fn take(&self, kind: Kind) -> Option<VolumeDir> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let entry = self.ready.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&kind)?.pop();
        self.taken.notify_all();
        entry
    }

    /// Whether `kind` has fewer than [`READY`] entries (a deleted volume's directory is welcome).
    pub(super) fn short(&self, kind: Kind) -> bool {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        !self.stopped.load(Ordering::Relaxed) && ready.get(&kind).map_or(0, Vec::len) < READY
    }

    /// Waits until `kind` has fewer than [`LOW`] entries (or a while passed); whether it has.
    fn wants(&self, kind: Kind) -> bool {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        let short = |r: &BTreeMap<Kind, Vec<VolumeDir>>| r.get(&kind).map_or(0, Vec::len) < LOW;
        if short(&ready) {
            return true;
        }
        let (ready, _) = self.taken.wait_timeout(ready, Duration::from_secs(1)).unwrap_or_else(PoisonError::into_inner);
        short(&ready)
    }

    /// Keeps `entry` ready; gives it back when the pool has stopped.
    fn add(&self, kind: Kind, entry: VolumeDir) -> Option<VolumeDir> {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stopped.load(Ordering::Relaxed) {
            return Some(entry);
        }
        ready.entry(kind).or_default().push(entry);
        None
    }
}

impl Engine {
    /// Starts keeping entries ready for every pooled kind of `kinds` (the backends creates may
    /// use); after reconcile (which removes what an earlier server left) and only with the
    /// journal running.
    pub fn start_pool(self: &Arc<Self>, kinds: &[Kind]) {
        if self.journal.get().is_none() {
            return;
        }
        for &kind in kinds.iter().filter(|&&k| crate::backend::rules(k).pooled()) {
            let engine = Arc::downgrade(self);
            let worker = std::thread::Builder::new().name("pool".into()).spawn(move || fill(&engine, kind));
            if let Err(e) = worker {
                tracing::warn!(error = %e, "no volume directories made ahead: creates make their own");
            }
        }
    }

    /// Stops the pool and removes the entries it holds (a server stopping).
    pub fn stop_pool(&self) {
        let ready = {
            let mut ready = self.pool.ready.lock().unwrap_or_else(PoisonError::into_inner);
            self.pool.stopped.store(true, Ordering::Relaxed);
            std::mem::take(&mut *ready)
        };
        for entry in ready.into_values().flatten() {
            crate::undo::log("a volume directory made ahead: remove it", self.remove_leftover(&entry));
        }
    }

    /// Keeps `entry` ready (one just made, or one a create took and did not use); removes it
    /// when the pool has stopped.
    pub(super) fn give_back(&self, kind: Kind, entry: VolumeDir) {
        if let Some(unwanted) = self.pool.add(kind, entry) {
            crate::undo::log("a volume directory made ahead: remove it", self.remove_leftover(&unwanted));
        }
    }

    /// Makes one entry of `kind` at `at`: the directory, the kind's storage, an empty record.
    fn make_entry(&self, kind: Kind, at: &VolumeDir) -> Result<()> {
        std::fs::DirBuilder::new()
            .mode(super::perm::DIR_MODE)
            .create(&at.0)
            .map_err(super::Error::io("create", &at.0))?;
        let made = self.entry_storage(kind, at).and_then(|()| {
            let record = at.record();
            super::perm::private_file()
                .write(true)
                .create_new(true)
                .open(&record)
                .map_err(super::Error::io("create", record))
        });
        if made.is_err() {
            crate::undo::log("a failed pool entry: remove it", self.remove_leftover(at));
        }
        made.map(drop)
    }

    /// Makes the storage of an entry of `kind` at `at` (a `dir` volume's empty `data/`) and its
    /// empty node state: what needs nothing from a request.
    pub(super) fn entry_storage(&self, kind: Kind, at: &VolumeDir) -> Result<()> {
        self.backend(kind).provision(&super::aside::placeholder(at, kind).spec(), at)?;
        super::state::make_empty(at)
    }

    /// A name for a new entry.
    pub(super) fn next_entry(&self) -> VolumeDir {
        VolumeDir(entry_path(&self.cfg.root, self.pool.named.fetch_add(1, Ordering::Relaxed) + 1))
    }

    /// The entries in `volumes/` (a stopped server's, at start).
    pub(super) fn pool_entries(&self) -> Result<Vec<VolumeDir>> {
        let dir = self.cfg.root.join("volumes");
        let names = std::fs::read_dir(&dir).map_err(super::Error::io("list", &dir))?;
        Ok(names
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(PREFIX))
            .map(|n| VolumeDir(dir.join(n)))
            .collect())
    }
}

/// Keeps `kind`'s entries ready until the engine is gone.
fn fill(engine: &Weak<Engine>, kind: Kind) {
    crate::sys::background_priority();
    loop {
        let Some(e) = engine.upgrade() else { return };
        if e.pool.stopped.load(Ordering::Relaxed) {
            return;
        }
        if !e.pool.wants(kind) {
            continue;
        }
        let at = e.next_entry();
        match e.make_entry(kind, &at) {
            Ok(()) => e.give_back(kind, at),
            Err(err) => {
                tracing::warn!(error = %err, "a volume directory made ahead failed; creates make their own meanwhile");
                drop(e);
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

fn entry_path(root: &Path, n: u64) -> PathBuf {
    root.join("volumes").join(format!("{PREFIX}{}-{n}", std::process::id()))
}
