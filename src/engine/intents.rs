//! Creates and deletes made durable by the intent journal (a long-lived server; see `journal`):
//! a create of a volume that is only its record and directories (dir, tmpfs) writes its record
//! and renames its directory into place unsynced, then appends a `create` entry carrying the
//! record; a delete renames the volume aside unsynced, then appends a `delete` entry. Each call
//! pays one data write and one flush. A background checkpoint syncs what the entries describe
//! (records, volume directories, `volumes/`) and frees their slots.
//!
//! At start, before reconcile, the entries no checkpoint covers are replayed, the last one of
//! each id only, since it alone says what must be there: a `create` makes sure the volume is in
//! place with its record (renamed from its aside, its record rewritten, or made again, empty, as
//! it was when the create answered); a `delete` makes sure it is gone. Each record carries an
//! incarnation (its creation time in nanoseconds), so replay never takes a volume made later,
//! outside the journal, for the one an entry names, nor an older one for a newer.

use super::journal::{self, Found, Ring};
use super::{Engine, Error, Result, Volume, record};
use crate::backend::VolumeDir;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long an entry waits for its checkpoint, at most (half a ring of entries goes at once).
const CHECKPOINT_DELAY: Duration = Duration::from_secs(1);

/// One journal entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Intent {
    /// The volume exists, with this record.
    Create { record: Box<Volume> },
    /// The volume of this incarnation is gone.
    Delete { id: String, incarnation: Option<u64> },
}

impl Intent {
    fn id(&self) -> &str {
        match self {
            Intent::Create { record } => &record.id,
            Intent::Delete { id, .. } => id,
        }
    }
}

impl Engine {
    /// Opens the journal (`<root>/journal`), replays what no checkpoint covers, and from now on
    /// journals creates and deletes, with a background checkpoint. For a long-lived server, once,
    /// before reconcile. Returns what replay did, a line per action.
    pub fn start_journal(self: &Arc<Self>) -> Result<Vec<String>> {
        let (ring, actions) = self.open_journal()?;
        if let Some(ring) = ring {
            spawn_checkpoints(ring, self.cfg.root.join("volumes"), Arc::downgrade(self));
        }
        Ok(actions)
    }

    /// Opens and replays the journal and starts journaling; the ring comes back for the
    /// checkpoints when this call started it.
    fn open_journal(&self) -> Result<(Option<Arc<Ring>>, Vec<String>)> {
        if self.journal.get().is_some() {
            return Ok((None, Vec::new()));
        }
        let path = self.cfg.root.join("journal");
        let (ring, found) = Ring::open(&path)?;
        let upto = found.last().map(|f| f.seq);
        let actions = self.replay(found, &self.pool_entries()?)?;
        if let Some(upto) = upto {
            sync_paths(&[self.cfg.root.join("volumes")])?;
            ring.mark(upto)?;
        }
        let ring = Arc::new(ring);
        Ok((self.journal.set(ring.clone()).is_ok().then_some(ring), actions))
    }

    /// Checkpoints now whatever the journal holds that no checkpoint covers (a server stopping on
    /// purpose: its next start then has nothing to replay, and a record damaged while it was
    /// stopped is quarantined as damage, not taken for a write a power cut lost).
    pub fn checkpoint_now(&self) -> Result<()> {
        let Some(ring) = self.journal.get() else { return Ok(()) };
        let _turn = ring.checkpoint_turn();
        match ring.take_now() {
            Some((upto, paths)) => checkpoint(ring, &self.cfg.root.join("volumes"), upto, &paths),
            None => Ok(()),
        }
    }

    /// The journal entry that makes the create of `vol` durable, when the journal runs and
    /// covers it: `None` means the create syncs its record and `volumes/` itself.
    pub(super) fn create_intent(&self, vol: &Volume) -> Option<Vec<u8>> {
        self.journal.get()?;
        let journaled = crate::backend::rules(vol.backend).journaled_create()
            && vol.encryption.is_none()
            && vol.source.is_none()
            && vol.copy.is_none();
        let entry = serde_json::to_vec(&Intent::Create { record: Box::new(vol.clone()) }).ok()?;
        (journaled && entry.len() <= journal::MAX_PAYLOAD).then_some(entry)
    }

    /// Renames the new volume `from` into place at `to` and appends its create entry.
    pub(super) fn rename_journaled(&self, from: &VolumeDir, to: &VolumeDir, entry: &[u8]) -> Result<()> {
        let ring = self.journal.get().ok_or_else(|| not_started(&self.cfg.root))?;
        self.host.rename_dir(&from.0, &to.0)?;
        ring.append(entry, vec![to.record(), to.0.clone()])?;
        Ok(())
    }

    /// Renames the deleted volume `vol` from `dir` to its aside, durably: through the journal
    /// when it runs, else by syncing `volumes/`.
    pub(super) fn rename_away(&self, vol: &Volume, dir: &VolumeDir, aside: &VolumeDir) -> Result<()> {
        let Some(ring) = self.journal.get() else { return self.rename_durably(dir, aside) };
        let entry = Intent::Delete { id: vol.id.clone(), incarnation: vol.incarnation };
        let entry = serde_json::to_vec(&entry).map_err(|e| journal_error(&self.cfg.root, e))?;
        self.host.rename_dir(&dir.0, &aside.0)?;
        ring.append(&entry, Vec::new())?;
        Ok(())
    }

    /// Replays the last entry of each id, in id order; `pooled` are the volume directories made
    /// ahead that the last server left (a create's rename out of one may be what was lost).
    fn replay(&self, found: Vec<Found>, pooled: &[VolumeDir]) -> Result<Vec<String>> {
        let mut last = BTreeMap::new();
        for f in found {
            let intent: Intent = serde_json::from_slice(&f.payload).map_err(|e| journal_error(&self.cfg.root, e))?;
            last.insert(intent.id().to_owned(), intent);
        }
        let mut actions = Vec::new();
        for (id, intent) in last {
            super::validate::id("volume", &id)?;
            let _lock = self.lock(&id)?;
            let done = match intent {
                Intent::Create { record } => self.replay_create(*record, pooled)?,
                Intent::Delete { id, incarnation } => self.replay_delete(&id, incarnation)?,
            };
            actions.extend(done.map(|what| format!("volume {id}: {what} (intent journal)")));
        }
        Ok(actions)
    }

    /// Makes sure the volume of `want` is in place, as the create left it at the latest.
    fn replay_create(&self, want: Volume, pooled: &[VolumeDir]) -> Result<Option<&'static str>> {
        let dir = self.dir(&want.id);
        match record::load(&dir.record()) {
            Ok(Some(there)) if there.incarnation >= want.incarnation => return Ok(None),
            // An older volume of the id, whose delete was lost: the CO deleted it.
            Ok(Some(_)) => self.remove_leftover(&dir)?,
            Ok(None) | Err(_) if dir.0.exists() => return self.rerecord(&want, &dir).map(Some),
            Ok(None) | Err(_) => {}
        }
        let new = self.aside(&want.id, super::aside::NEW);
        let new_is_it = match record::load(&new.record()) {
            Ok(Some(there)) => there.incarnation == want.incarnation,
            Ok(None) | Err(_) => new.0.exists(),
        };
        let is_it = |e: &&VolumeDir| matches!(record::load(&e.record()), Ok(Some(there)) if there.incarnation == want.incarnation);
        let aside = if new_is_it { Some(new) } else { pooled.iter().find(is_it).cloned() };
        if let Some(aside) = aside {
            self.rename_durably(&aside, &dir)?;
            self.rerecord(&want, &dir)?;
            return Ok(Some("its directory renamed into place"));
        }
        let mut vol = want;
        let backend = self.backend(vol.backend);
        self.make_volume(&mut vol, |vol, dir| Ok(backend.provision(&vol.spec(), dir)?), |_, _| Ok(()))?;
        Ok(Some("made again, empty, as its create left it"))
    }

    /// Writes the record of a volume whose directory is in place and makes its storage where it
    /// is missing.
    fn rerecord(&self, want: &Volume, dir: &VolumeDir) -> Result<&'static str> {
        if !dir.data().exists() {
            self.backend(want.backend).provision(&want.spec(), dir)?;
        }
        record::save_json(&dir.record(), want, record::Durability::Durable)?;
        Ok("its record written again")
    }

    /// Makes sure the volume of `incarnation` is gone.
    fn replay_delete(&self, id: &str, incarnation: Option<u64>) -> Result<Option<&'static str>> {
        let dir = self.dir(id);
        if !dir.0.exists() {
            return Ok(None);
        }
        match record::load(&dir.record()) {
            Ok(Some(there)) if there.incarnation != incarnation => Ok(None),
            _ => {
                let aside = self.aside(id, super::aside::DEL);
                self.remove_leftover(&aside)?;
                self.rename_durably(&dir, &aside)?;
                self.remove_leftover(&aside)?;
                Ok(Some("deleted, was back: removed"))
            }
        }
    }
}

/// Runs checkpoints until the engine is gone.
fn spawn_checkpoints(ring: Arc<Ring>, volumes: PathBuf, engine: Weak<Engine>) {
    let gone = move || engine.strong_count() == 0;
    let worker = std::thread::Builder::new().name("checkpoints".into()).spawn(move || {
        crate::sys::background_priority();
        while ring.wait_due(CHECKPOINT_DELAY, &gone) {
            let turn = ring.checkpoint_turn();
            let Some((upto, paths)) = ring.take_now() else { continue };
            if let Err(e) = checkpoint(&ring, &volumes, upto, &paths) {
                tracing::warn!(error = %e, "a journal checkpoint failed; it is tried again");
                ring.give_back(paths);
                drop(turn);
                std::thread::sleep(CHECKPOINT_DELAY);
            }
        }
    });
    if let Err(e) = worker {
        tracing::warn!(error = %e, "no journal checkpoints: creates and deletes wait once the journal fills");
    }
}

/// Syncs what the entries up to `upto` describe, then records that they are covered.
fn checkpoint(ring: &Ring, volumes: &Path, upto: u64, paths: &[PathBuf]) -> Result<()> {
    let mut paths = paths.to_vec();
    paths.sort();
    paths.dedup();
    paths.push(volumes.to_owned());
    sync_paths(&paths)?;
    ring.mark(upto)
}

/// Syncs each path; one that is gone (deleted since) is fine: its delete's rename is covered by
/// the sync of `volumes/`.
fn sync_paths(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        match std::fs::File::open(p).and_then(|f| f.sync_all()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io("sync", p)(e)),
            _ => {}
        }
    }
    Ok(())
}

fn journal_error(root: &Path, e: serde_json::Error) -> Error {
    Error::Journal {
        path: root.join("journal"),
        reason: format!(
            "an entry is not what this strata writes ({e}): move the file aside to start with a new one (operations.md, \"The intent journal\")"
        ),
    }
}

fn not_started(root: &Path) -> Error {
    Error::Journal { path: root.join("journal"), reason: "not started".into() }
}

#[cfg(test)]
#[path = "intents_tests.rs"]
mod tests;
