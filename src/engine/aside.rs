//! Volumes come and go by renaming whole directories: a create fills `volumes/.<id>.new` (its
//! storage and its record) and renames it to `volumes/<id>`; a delete renames `volumes/<id>` to
//! `volumes/.<id>.del` before it removes anything. The name says what a leftover is (no id
//! starts with '.'), so a kill at any point leaves either the whole volume or a leftover that the
//! retry, the next create of the id, or the start-up reconcile removes; no intent file is needed
//! (on filesystems that scan recently freed inodes at every create, each inode made and removed
//! per call costs as much as a record's fsync).

use super::kernel::LazyTable;
use super::record::Durability;
use super::{Engine, Error, Result, Volume, crashpoint, record};
use crate::backend::{Kind, VolumeDir};
use crate::sys::tree;
use std::os::unix::fs::DirBuilderExt;

/// The suffix of a volume being created aside.
pub(super) const NEW: &str = ".new";
/// How long a delete waits for the files of an earlier volume of the same id to go.
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// The most removals that share one read of the mount table (a table of 10,000 mounts takes
/// the kernel about 15 ms to write out and strata as long again to read).
const REMOVAL_BATCH: usize = 255;

/// The suffix of a volume being deleted.
pub(super) const DEL: &str = ".del";

/// Removes an older strata's intent files from a volume directory (after a repair).
pub(super) fn drop_old_intents(dir: &VolumeDir) -> Result<()> {
    for intent in OLD_INTENTS.map(|i| dir.0.join(i)) {
        match std::fs::remove_file(&intent) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("remove", &intent)(e)),
            _ => {}
        }
    }
    Ok(())
}

impl VolumeDir {
    /// A directory with nothing in it holds nothing to keep.
    fn is_empty_dir(&self) -> bool {
        std::fs::read_dir(&self.0).is_ok_and(|mut d| d.next().is_none())
    }
}

/// Intent files strata 0.1 wrote inside a volume's own directory; a directory holding one and no
/// record is still a leftover (an upgrade may find one).
pub(super) const OLD_INTENTS: [&str; 2] = [".creating", ".deleting"];

impl Engine {
    /// Whether `dir` is what an interrupted call left: no record, and an older strata's intent
    /// file (or nothing at all) there.
    pub(super) fn leftover(&self, dir: &VolumeDir) -> bool {
        !dir.record().exists() && (OLD_INTENTS.iter().any(|i| dir.0.join(i).exists()) || dir.is_empty_dir())
    }

    pub(super) fn aside(&self, id: &str, suffix: &str) -> VolumeDir {
        VolumeDir(self.cfg.root.join("volumes").join(format!(".{id}{suffix}")))
    }

    /// Makes `vol` aside (`fill` makes its storage), writes its record there and renames the
    /// whole into place; on failure removes what it made. `dir` holds no volume (the caller
    /// loaded it under the lock), only perhaps what an older strata's interrupted call left.
    /// `count` puts the volume in the capacity ledger once its storage and record are made,
    /// before the rename (a crash after it leaves the ledger promising too much, not too little).
    pub(super) fn make_volume(
        &self,
        vol: &mut Volume,
        fill: impl FnOnce(&mut Volume, &VolumeDir) -> Result<()>,
        count: impl FnOnce(&Volume, &VolumeDir) -> Result<()>,
    ) -> Result<()> {
        let dir = self.dir(&vol.id);
        self.remove_leftover(&dir)?;
        let aside = self.aside(&vol.id, NEW);
        self.remove_leftover(&aside)?;
        std::fs::DirBuilder::new()
            .mode(super::perm::DIR_MODE)
            .create(&aside.0)
            .map_err(Error::io("create", &aside.0))?;
        let made = fill(vol, &aside).and_then(|()| {
            super::state::make_empty(&aside)?;
            let intent = self.create_intent(vol);
            let durability = if intent.is_some() { Durability::Cached } else { Durability::Durable };
            record::write_fresh(&aside.record(), &*vol, durability)?;
            crashpoint::hit("create:recorded");
            count(vol, &aside)?;
            match intent {
                Some(entry) => self.rename_journaled(&aside, &dir, &entry),
                None => self.rename_durably(&aside, &dir),
            }
        });
        if let Err(e) = made {
            crate::undo::log("a failed create: remove what it made", self.remove_leftover(&aside));
            return Err(e);
        }
        Ok(())
    }

    /// A pool entry and the journal entry for a create of `vol`, when its kind is pooled, the
    /// journal covers it and an entry is ready.
    pub(super) fn pooled(&self, vol: &Volume) -> Option<(VolumeDir, Vec<u8>)> {
        if !crate::backend::rules(vol.backend).pooled() {
            return None;
        }
        // The entry first: with none ready, the create's intent is made once, by make_volume.
        let entry = self.pool.take(vol.backend)?;
        match self.create_intent(vol) {
            Some(intent) => Some((entry, intent)),
            None => {
                self.give_back(vol.backend, entry);
                None
            }
        }
    }

    /// [`Engine::make_volume`] from a pool entry (storage made, record file empty): writes the
    /// record into it and renames it into place with its journal entry `intent`.
    pub(super) fn make_from_pool(
        &self,
        vol: &mut Volume,
        entry: VolumeDir,
        intent: &[u8],
        count: impl FnOnce(&Volume, &VolumeDir) -> Result<()>,
    ) -> Result<()> {
        let dir = self.dir(&vol.id);
        let made = self.remove_leftover(&dir).and_then(|()| {
            record::write_into(&entry.record(), &*vol)?;
            crashpoint::hit("create:recorded");
            count(vol, &entry)?;
            self.rename_journaled(&entry, &dir, intent)
        });
        if let Err(e) = made {
            crate::undo::log("a failed create: remove the pool entry it took", self.remove_leftover(&entry));
            return Err(e);
        }
        Ok(())
    }

    /// Renames the volume directory `from` to `to` and syncs `volumes/`, so the rename survives a
    /// power loss once this returns.
    pub(super) fn rename_durably(&self, from: &VolumeDir, to: &VolumeDir) -> Result<()> {
        self.host.rename_dir(&from.0, &to.0)?;
        self.volumes_sync.sync().map_err(Error::io("sync", self.cfg.root.join("volumes")))
    }

    /// Deletes the volume `vol` (nothing uses it: the caller asked the kernel) whose storage is
    /// detached: renamed aside first (and synced, so a power cut never brings back a volume
    /// directory that lost part of its contents), then removed, its record last. A removal that
    /// fails while the record is still there renames the volume back, whole as far as strata
    /// knows: the retry starts over. Once the record is gone the aside is only finished.
    ///
    /// In a server that removes in the background ([`Engine::remove_in_background`]) the
    /// delete answers once the volume is aside and durable: a loop image or a tmpfs is removed
    /// at once (its space or memory comes back now), the rest (a dir volume's tree, the record)
    /// by the background worker; a crash leaves the aside for the start to finish.
    pub(super) fn remove_volume(&self, vol: &Volume) -> Result<()> {
        let aside = self.aside(&vol.id, DEL);
        // A volume made again under the id of one whose files still go: those first.
        if !self.removals.wait(&vol.id, REMOVAL_WAIT) {
            return Err(Error::Busy { id: vol.id.clone() });
        }
        self.remove_leftover(&aside)?;
        let dir = self.dir(&vol.id);
        self.uncounted(vol, || self.rename_away(vol, &dir, &aside))?;
        crashpoint::hit("delete:unrecorded");
        let removed = match self.removals.started() {
            true => self.hand_over(vol, &aside),
            false => self.remove_aside(&aside, Some(vol)),
        };
        if removed.is_err() && aside.record().exists() {
            let back = self.accounts().and_then(|mut accounts| {
                self.host.rename_dir(&aside.0, &dir.0)?;
                accounts.ledger.add(&self.share(vol, &dir));
                accounts.save()
            });
            if let Err(e) = back {
                tracing::warn!(id = vol.id, aside = %aside.0.display(), error = %e, "a delete that failed is left aside");
            }
        }
        removed
    }

    /// Removes what must go at once (an image, a tmpfs) and hands the rest of the aside to the
    /// background worker.
    fn hand_over(&self, vol: &Volume, aside: &VolumeDir) -> Result<()> {
        let backend = self.backend(vol.backend);
        if backend.deletes_at_once() {
            backend.delete(&vol.spec(), aside)?;
        }
        if !self.removals.hand_over(&vol.id) {
            // No worker after all: the call removes, and asks first what the worker would have.
            self.unused_aside(aside)?;
            return self.remove_aside(aside, Some(vol));
        }
        Ok(())
    }

    /// Starts the worker that removes what deletes handed over (see [`Engine::remove_volume`]);
    /// for a long-lived server (strata-flex removes in the call). Idempotent.
    pub fn remove_in_background(self: &std::sync::Arc<Self>) {
        let (queue, handed) = std::sync::mpsc::channel::<String>();
        if !self.removals.start(queue) {
            return;
        }
        let engine = std::sync::Arc::downgrade(self);
        let worker = std::thread::Builder::new().name("removals".into()).spawn(move || {
            crate::sys::background_priority();
            while let Ok(first) = handed.recv() {
                // What came meanwhile goes with it: at most one read of the mount table for all.
                let batch: Vec<String> = std::iter::once(first).chain(handed.try_iter().take(REMOVAL_BATCH)).collect();
                let Some(engine) = engine.upgrade() else { return };
                let mut table = LazyTable::new(&*engine.host);
                for id in &batch {
                    engine.finish_removal(id, &mut table);
                    engine.removals.finished(id);
                }
            }
        });
        if let Err(e) = worker {
            tracing::warn!(error = %e, "no background removal: deletes remove in the call");
        }
    }

    /// Removes the aside of a delete that answered already. It takes no volume lock (the id is
    /// free again: a create may use it meanwhile); the aside's name is this removal's alone.
    /// First the kernel is asked (`table`, read once for a batch, after the asides were made):
    /// files that a mount still shows are kept. Those, and an aside that cannot be removed, go
    /// to `volumes/.quarantine/` for an operator (the CO was told the volume is gone, so it is
    /// never renamed back).
    fn finish_removal(&self, id: &str, table: &mut LazyTable) {
        let started = std::time::Instant::now();
        let aside = self.aside(id, DEL);
        let unused = self.unused_aside_with(&aside, table);
        if let Err(e) = unused {
            let moved = super::quarantine::set_aside(&aside.0).map(|to| to.display().to_string());
            tracing::warn!(id, error = %e, moved_to = ?moved, "a deleted volume's files are kept: a mount still shows them");
            return;
        }
        if self.recycle(&aside) {
            tracing::debug!(
                id,
                seconds = started.elapsed().as_secs_f64(),
                "deleted volume's directory made ready again"
            );
            return;
        }
        match self.remove_leftover(&aside) {
            Ok(()) => tracing::debug!(id, seconds = started.elapsed().as_secs_f64(), "deleted volume's files removed"),
            Err(e) => {
                let moved = super::quarantine::set_aside(&aside.0).map(|to| to.display().to_string());
                tracing::warn!(id, error = %e, moved_to = ?moved, "a deleted volume's files could not be removed");
            }
        }
    }

    /// Makes the aside of a deleted volume of a pooled kind an entry of the pool when it is short
    /// (see `pool`): everything in it goes but its own directory, which no pod ever saw (pods
    /// see `data/`, a mount of its own), and the kind's new storage and an empty record are made
    /// in it. A delete and the next create then make and free one directory instead of three
    /// and a file. Whether it did; an aside it could not clean is left for the usual removal.
    fn recycle(&self, aside: &VolumeDir) -> bool {
        let Ok(Some(vol)) = record::load(&aside.record()) else { return false };
        let kind = vol.backend;
        if !crate::backend::rules(kind).pooled() || vol.encryption.is_some() || !self.pool.short(kind) {
            return false;
        }
        let cleaned = self.backend(kind).delete(&vol.spec(), aside).map_err(Error::from).and_then(|()| {
            self.empty_but_record(aside)?;
            std::fs::File::options()
                .write(true)
                .open(aside.record())
                .and_then(|f| f.set_len(0))
                .map_err(Error::io("empty", aside.record()))?;
            self.entry_storage(kind, aside)
        });
        let entry = self.next_entry();
        match cleaned.and_then(|()| self.host.rename_dir(&aside.0, &entry.0).map_err(Error::from)) {
            Ok(()) => {
                self.give_back(kind, entry);
                true
            }
            Err(e) => {
                tracing::debug!(aside = %aside.0.display(), error = %e, "a deleted volume's directory is removed, not made ready");
                false
            }
        }
    }

    /// Removes everything in `dir` but its record file.
    fn empty_but_record(&self, dir: &VolumeDir) -> Result<()> {
        let names = std::fs::read_dir(&dir.0).map_err(Error::io("list", &dir.0))?;
        for name in names {
            let name = name.map_err(Error::io("list", &dir.0))?.file_name();
            if name != crate::backend::RECORD_FILE {
                tree::remove_tree(&dir.0.join(name)).map_err(crate::sys::Error::from)?;
            }
        }
        Ok(())
    }

    /// Finishes what an interrupted create or delete of `id` left aside; none is fine. A delete
    /// whose files the background worker is removing is left to it; one that a mount still
    /// shows (its delete left that check to the removal) is refused.
    pub(super) fn finish_asides(&self, id: &str) -> Result<Vec<String>> {
        let mut done = Vec::new();
        let suffixes: &[&str] = if self.removals.is_pending(id) { &[NEW] } else { &[NEW, DEL] };
        for &suffix in suffixes {
            let aside = self.aside(id, suffix);
            if aside.0.exists() {
                if suffix == DEL {
                    self.unused_aside(&aside)?;
                }
                self.remove_leftover(&aside)?;
                done.push(format!("removed {} left by an interrupted create or delete", aside.0.display()));
            }
        }
        Ok(done)
    }

    /// Removes a volume directory that is no volume (an aside, or what an older strata's
    /// interrupted call left): the storage of the backend its record names (without a record, or
    /// with an unreadable one, of what it holds: see [`Engine::guess`]), then the tree, the
    /// record last. None is fine.
    pub(super) fn remove_leftover(&self, at: &VolumeDir) -> Result<()> {
        self.remove_aside(at, None)
    }

    /// [`Engine::remove_leftover`] of a directory whose record the caller already holds (`known`:
    /// a delete's own volume), read from the directory otherwise.
    fn remove_aside(&self, at: &VolumeDir, known: Option<&Volume>) -> Result<()> {
        if std::fs::symlink_metadata(&at.0).is_err() {
            return Ok(());
        }
        let read;
        let vol = match known {
            Some(vol) => vol,
            None => {
                read = match record::load(&at.record()) {
                    Ok(Some(vol)) => vol,
                    _ => placeholder(at, self.guess(at)),
                };
                &read
            }
        };
        self.backend(vol.backend).delete(&vol.spec(), at)?;
        Ok(tree::remove_tree_last(&at.0, crate::backend::RECORD_FILE).map_err(crate::sys::Error::from)?)
    }

    /// Refuses (FAILED_PRECONDITION) when the kernel shows a mount of what the deleted volume
    /// set aside at `aside` holds: the whole mount table, asked before anything is removed.
    fn unused_aside(&self, aside: &VolumeDir) -> Result<()> {
        self.unused_aside_with(aside, &mut LazyTable::new(&*self.host))
    }

    /// [`Engine::unused_aside`] with the table of a batch, read only if an aside needs it (a
    /// loop volume's, with no device attached to its image, needs none; one without a readable
    /// record does, to tell its kind).
    fn unused_aside_with(&self, aside: &VolumeDir, table: &mut LazyTable) -> Result<()> {
        let kind = match record::load(&aside.record()) {
            Ok(Some(vol)) => vol.backend,
            _ => crate::backend::detect(aside, table.get()?, |k| self.backend(k)),
        };
        match self.kernel_users_with(table, aside, kind)?.first() {
            None => Ok(()),
            Some(place) => Err(Error::precondition(
                &aside.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                format!("the kernel shows it mounted at {}", place.display()),
            )),
        }
    }

    /// What a volume directory without a (readable) record holds (see [`crate::backend::detect`]).
    pub(super) fn guess(&self, at: &VolumeDir) -> Kind {
        let table = self.host.mount_table().unwrap_or_default();
        crate::backend::detect(at, &table, |k| self.backend(k))
    }

    /// Every id with an aside directory under `volumes/`.
    pub(super) fn aside_ids(&self) -> Result<Vec<String>> {
        let dir = self.cfg.root.join("volumes");
        let names = std::fs::read_dir(&dir).map_err(Error::io("list", &dir))?;
        let mut ids: Vec<String> = names
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| aside_of(&n).map(|(id, _)| id.to_owned()))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// The volume id and suffix (`.new` or `.del`) of an aside directory's name; `None` for any
/// other name.
pub(super) fn aside_of(name: &str) -> Option<(&str, &'static str)> {
    let rest = name.strip_prefix('.')?;
    let (id, suffix) = [NEW, DEL].into_iter().find_map(|s| rest.strip_suffix(s).map(|id| (id, s)))?;
    super::validate::id("volume", id).is_ok().then_some((id, suffix))
}

/// A record for an aside that has none, enough for a backend to find and remove its storage.
pub(super) fn placeholder(aside: &VolumeDir, kind: Kind) -> Volume {
    let id = aside.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let req = super::CreateRequest {
        id: id.clone(),
        name: id,
        backend: kind,
        capacity: 0,
        fs_type: None,
        parameters: Default::default(),
    };
    super::new_record(&req, None)
}
