//! One background copy: what it reads, what it fills, what holds its source still, and how it
//! ends (the record made whole, or its failure recorded for the next call, or nothing when a
//! delete stopped it).

use super::registry::{Claim, CopyKey, JobState};
use crate::backend::{Frozen, Kind, VolumeDir};
use crate::engine::lock::VolumeLock;
use crate::engine::record::{self, Cause, CopyFailure};
use crate::engine::{Engine, Error, Result, Snapshot, Volume};
use crate::sys::Host;
use crate::sys::tree::{CopyReport, Progress};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The name of the file a running copy writes its progress to, beside the record it fills.
pub const PROGRESS_FILE: &str = "copy.progress";

/// What a copy reads.
#[derive(Debug)]
pub(crate) enum Origin {
    /// A volume (for a snapshot of it, or a clone), as its record was when the copy began.
    Volume(Box<Volume>),
    /// A snapshot of a volume of `backend` (a restore).
    Snapshot { id: String, backend: Kind },
}

/// What a copy fills.
#[derive(Debug)]
pub(crate) enum Target {
    Snapshot {
        id: String,
    },
    /// A new volume, as its record says.
    Volume(Box<Volume>),
}

/// What keeps a copy's source still: its lock, and its frozen filesystem while it is mounted.
/// Dropped, it thaws, then unlocks.
#[derive(Debug)]
pub struct Hold {
    pub(super) lock: Option<VolumeLock>,
    pub(super) frozen: Option<Frozen>,
    /// The held image's stamp (see [`record::CopyIntent::still`]).
    pub(super) still: Option<record::Stamp>,
    pub(super) host: Arc<dyn Host>,
}

impl Hold {
    pub(super) fn none(host: Arc<dyn Host>) -> Hold {
        Hold { lock: None, frozen: None, still: None, host }
    }

    /// Thaws (and unlocks), saying whether the thaw worked.
    pub(super) fn release(mut self) -> Result<()> {
        match self.frozen.take() {
            Some(f) => thaw(self.host.as_ref(), &f),
            None => Ok(()),
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(f) = self.frozen.take() {
            if let Err(e) = thaw(self.host.as_ref(), &f) {
                tracing::error!(at = %f.place.path().display(), error = %e, "thaw after a copy failed; the next call, unstage or start thaws");
            }
        }
    }
}

/// Thaws a filesystem frozen for a copy, once more at once if the first try fails; the marker
/// goes only when the thaw worked (else the next call, unstage or start thaws).
fn thaw(host: &dyn Host, f: &Frozen) -> Result<()> {
    host.thaw(&f.place).or_else(|_| host.thaw(&f.place))?;
    std::fs::remove_file(&f.marker).map_err(Error::io("remove", &f.marker))
}

/// A copy to run: [`Engine::run_copy`] runs it, in the background or inside the call.
#[derive(Debug)]
pub struct CopyJob {
    pub(super) state: Arc<JobState>,
    pub(super) origin: Origin,
    pub(super) target: Target,
    pub(super) hold: Hold,
    pub(super) claim: Claim,
}

impl CopyJob {
    pub fn key(&self) -> &CopyKey {
        &self.state.key
    }

    pub fn state(&self) -> &Arc<JobState> {
        &self.state
    }
}

impl Engine {
    /// Runs a copy to its end: copies, lets its source go, and makes the target's record whole
    /// (or records why it failed, for the next call). A copy that a delete cancelled leaves its
    /// target to the delete.
    pub fn run_copy(&self, job: CopyJob) {
        let CopyJob { state, origin, target, hold, claim } = job;
        let started = Instant::now();
        tracing::info!(copy = %state.key, from = ?state.from, "copy started");
        let copied = self.copy_into(&origin, &target, &state.progress);
        drop(hold);
        match self.settle_copy(&target, &state.progress, copied) {
            Ok(Some(report)) => super::log_copy(&state.key, &state.from, &report, started),
            Ok(None) => tracing::info!(copy = %state.key, "copy stopped: what it made is removed with its target"),
            Err(e) => {
                tracing::error!(copy = %state.key, error = %e, "copy could not be recorded; it is resumed at the next call or start")
            }
        }
        drop(claim);
    }

    /// Copies `origin` into `target`'s storage, after removing what an earlier try left there.
    fn copy_into(&self, origin: &Origin, target: &Target, progress: &Progress) -> Result<(CopyReport, bool)> {
        self.reset_target(target)?;
        let (dest, readonly) = match target {
            Target::Snapshot { id } => (self.snapshot_dir(id), true),
            Target::Volume(vol) => (self.dir(&vol.id), false),
        };
        let report = match origin {
            Origin::Volume(src) => {
                let (backend, dir) = (self.backend(src.backend), self.dir(&src.id));
                progress.set_total(backend.copy_size(&dir));
                backend.copy_out(&src.spec(), &dir, &dest, readonly, progress)?
            }
            Origin::Snapshot { id, backend } => {
                let Target::Volume(vol) = target else {
                    return Err(Error::Unsupported("a snapshot of a snapshot".into()));
                };
                let from = self.snapshot_dir(id);
                progress.set_total(self.backend(*backend).copy_size(&from));
                self.backend(*backend).copy_in(&from, &vol.spec(), &dest, progress)?
            }
        };
        let grow = match target {
            Target::Volume(vol) => self.backend(vol.backend).fit(&vol.spec(), &dest)?,
            Target::Snapshot { .. } => false,
        };
        Ok((report, grow))
    }

    /// Removes what an earlier try of this copy left in its target (none is fine).
    pub(super) fn reset_target(&self, target: &Target) -> Result<()> {
        match target {
            Target::Snapshot { id } => {
                let dir = self.snapshot_dir(id);
                match record::load_snapshot(&self.snapshot_record(id))? {
                    Some(s) => Ok(self.backend(s.backend).delete_copy(&dir)?),
                    None => Ok(()),
                }
            }
            Target::Volume(vol) => Ok(self.backend(vol.backend).delete(&vol.spec(), &self.dir(&vol.id))?),
        }
    }

    /// Writes how the copy ended into the target's record, under the target's lock: whole (the
    /// report), failed (its data removed, the cause kept for the next call), or nothing when a
    /// delete cancelled it (`None`).
    fn settle_copy(
        &self,
        target: &Target,
        progress: &Progress,
        copied: Result<(CopyReport, bool)>,
    ) -> Result<Option<CopyReport>> {
        let Some(_lock) = self.lock_target(target, progress) else { return Ok(None) };
        let copied = copied.map_err(|e| self.explain(e));
        let failure = copied.as_ref().err().map(failure_of);
        if failure.is_some() {
            crate::undo::log("a failed copy: remove what it made", self.reset_target(target));
        }
        match target {
            Target::Snapshot { id } => self.settle_snapshot_record(id, &copied, failure)?,
            Target::Volume(vol) => self.settle_volume_record(&vol.id, &copied, failure)?,
        }
        Ok(copied.ok().map(|(report, _)| report))
    }

    /// The target's lock, waiting while another call holds it briefly; `None` when the copy
    /// is cancelled meanwhile (a delete holds the lock and waits for the copy to stop).
    fn lock_target(&self, target: &Target, progress: &Progress) -> Option<VolumeLock> {
        loop {
            if progress.is_cancelled() {
                return None;
            }
            // Taken as is: the engine's own lockers wait for this very copy.
            let (dir, id) = match target {
                Target::Snapshot { id } => (self.cfg.root.join("locks/snapshots"), id),
                Target::Volume(vol) => (self.cfg.root.join("locks"), &vol.id),
            };
            let lock = VolumeLock::acquire(&dir, id, crate::engine::Wait::No);
            match lock {
                Ok(l) if !progress.is_cancelled() => return Some(l),
                Ok(_) => return None,
                Err(Error::Busy { .. } | Error::CopyBusy { .. }) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lock the target of a copy; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn settle_snapshot_record(
        &self,
        id: &str,
        copied: &Result<(CopyReport, bool)>,
        failure: Option<CopyFailure>,
    ) -> Result<()> {
        let path = self.snapshot_record(id);
        let Some(mut snap): Option<Snapshot> = record::load_snapshot(&path)? else { return Ok(()) };
        finish_intent(&mut snap.copy, failure);
        if let Ok((report, _)) = copied {
            snap.omitted = report.into();
        }
        snap.format = record::format_for(snap.copy.as_ref());
        record::save_json(&path, &snap, record::Durability::Durable)?;
        remove_progress(&self.snapshot_dir(id));
        Ok(())
    }

    fn settle_volume_record(
        &self,
        id: &str,
        copied: &Result<(CopyReport, bool)>,
        failure: Option<CopyFailure>,
    ) -> Result<()> {
        let dir = self.dir(id);
        let Some(mut vol) = record::load(&dir.record())? else { return Ok(()) };
        finish_intent(&mut vol.copy, failure);
        if let Ok((report, grow)) = copied {
            vol.omitted = report.into();
            vol.grow_fs = *grow;
        }
        vol.format = record::format_for(vol.copy.as_ref());
        record::save_json(&dir.record(), &vol, record::Durability::Durable)?;
        remove_progress(&dir);
        Ok(())
    }
}

/// Drops a whole copy's intent, or keeps a failed one with its failure.
fn finish_intent(copy: &mut Option<record::CopyIntent>, failure: Option<CopyFailure>) {
    match (copy.as_mut(), failure) {
        (Some(intent), Some(f)) => intent.failed = Some(f),
        _ => *copy = None,
    }
}

fn remove_progress(dir: &VolumeDir) {
    let _ = std::fs::remove_file(dir.0.join(PROGRESS_FILE));
}

/// How a copy's error is kept for the next call.
fn failure_of(e: &Error) -> CopyFailure {
    use crate::sys::tree::Error as TreeError;
    let tree = match e {
        Error::Backend(crate::backend::Error::Host(crate::sys::Error::Tree(t))) => Some(t),
        _ => None,
    };
    let cause = if e.resource().is_some() || matches!(e, Error::Exhausted { .. }) {
        Cause::Exhausted
    } else if matches!(tree, Some(TreeError::Changed { .. })) {
        Cause::Interrupted
    } else {
        Cause::Failed
    };
    CopyFailure { cause, message: crate::engine::clip(&e.to_string()) }
}
