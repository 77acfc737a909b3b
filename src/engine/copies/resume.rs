//! Copies a stopped process left under way: resumed (restarted from the start of their data)
//! when their source still shows the point in time they were cut at, recorded as failed when it
//! does not (the next call reports it and removes what the copy made).

use super::job::{CopyJob, Hold, Origin, Target};
use super::registry::CopyKey;
use crate::engine::record::{self, Cause, CopyFailure, CopyIntent, Stamp};
use crate::engine::{Engine, Error, Result, Source, reconcile};

/// Why a copy cannot be resumed.
enum Lost {
    /// Its point in time is gone (the words say why).
    Cut(String),
    /// Not now (its source is busy, say); the next call tries again.
    Later(Error),
}

impl Engine {
    /// Every copy a stopped process left under way, ready to run again (see [`Engine::run_copy`]).
    /// At start, before [`Engine::reconcile`]: a resumed copy of a mounted image holds its frozen
    /// filesystem, which reconcile then leaves as it is.
    pub fn resume_copies(&self, report: &mut reconcile::Report) -> Vec<CopyJob> {
        let mut jobs = Vec::new();
        let snapshots = self.snapshot_ids().unwrap_or_default();
        for id in snapshots {
            let Ok(Some(snap)) = record::load_snapshot(&self.snapshot_record(&id)) else { continue };
            if let Some(intent) = snap.copy.filter(|c| c.failed.is_none()) {
                let (key, target) = (CopyKey::Snapshot(id.clone()), Target::Snapshot { id: id.clone() });
                self.resume_at_start(key, &intent, target, &mut jobs, report);
            }
        }
        for id in self.volume_ids().unwrap_or_default() {
            let Ok(Some(vol)) = record::load(&self.dir(&id).record()) else { continue };
            if let Some(intent) = vol.copy.clone().filter(|c| c.failed.is_none()) {
                let key = CopyKey::Volume(id.clone());
                self.resume_at_start(key, &intent, Target::Volume(Box::new(vol)), &mut jobs, report);
            }
        }
        jobs
    }

    fn resume_at_start(
        &self,
        key: CopyKey,
        intent: &CopyIntent,
        target: Target,
        jobs: &mut Vec<CopyJob>,
        report: &mut reconcile::Report,
    ) {
        let lock = match &key {
            CopyKey::Snapshot(id) => self.lock_snapshot(id),
            CopyKey::Volume(id) => self.lock(id),
        };
        let done = lock.and_then(|_lock| self.resume(key.clone(), intent, target));
        match done {
            Ok(job) => {
                report
                    .actions
                    .push(format!("{key}: its copy from {:?} resumes (from the start of its data)", intent.from));
                jobs.push(job);
            }
            Err(e) => report.errors.push(format!("{key}: its copy cannot resume: {e}")),
        }
    }

    /// Makes the copy `intent` describes runnable again, under the target's lock. A source that
    /// no longer shows the copy's point in time fails the copy: recorded, and reported as
    /// [`Error::CopyFailed`].
    pub(super) fn resume(&self, key: CopyKey, intent: &CopyIntent, target: Target) -> Result<CopyJob> {
        match self.reopen(intent) {
            Ok((origin, hold)) => self.new_job(key, origin, target, hold),
            Err(Lost::Later(e)) => Err(e),
            Err(Lost::Cut(why)) => {
                let message = format!("the copy was interrupted and cannot finish at its point in time: {why}");
                self.record_failure(&target, CopyFailure { cause: Cause::Interrupted, message: message.clone() })?;
                Err(Error::CopyFailed { what: key.to_string(), cause: Cause::Interrupted, message })
            }
        }
    }

    /// The source of `intent` again, held as the copy needs it.
    fn reopen(&self, intent: &CopyIntent) -> std::result::Result<(Origin, Hold), Lost> {
        let later = Lost::Later;
        let vid = match &intent.from {
            Source::Snapshot(sid) => {
                let snap = self.get_snapshot(sid).map_err(later)?;
                let snap = snap.filter(|s| s.ready()).ok_or_else(|| Lost::Cut(format!("snapshot {sid} is gone")))?;
                let origin = Origin::Snapshot { id: sid.clone(), backend: snap.backend };
                return Ok((origin, Hold::none(self.host.clone())));
            }
            Source::Volume(vid) => vid,
        };
        let lock = self.lock(vid).map_err(later)?;
        let src = self.load(vid).map_err(later)?.ok_or_else(|| Lost::Cut(format!("volume {vid} is gone")))?;
        let rebooted = intent.boot != super::boot_id();
        let backend = self.backend(src.backend);
        if rebooted && (backend.copy_needs_still_source() || !backend.outlives_boot()) {
            return Err(Lost::Cut(format!("the node restarted, and volume {vid} did not stay as it was cut")));
        }
        let hold = self.hold_source(&src, lock).map_err(later)?;
        if backend.copy_needs_still_source() && !same(hold.still, intent.still) {
            return Err(Lost::Cut(format!("the image of volume {vid} was written to since the copy began")));
        }
        Ok((Origin::Volume(Box::new(src)), hold))
    }

    /// Records that the copy into `target` failed, after removing what it made.
    pub(super) fn record_failure(&self, target: &Target, failure: CopyFailure) -> Result<()> {
        crate::undo::log("a failed copy: remove what it made", self.reset_target(target));
        match target {
            Target::Snapshot { id } => {
                let path = self.snapshot_record(id);
                let Some(mut snap) = record::load_snapshot(&path)? else { return Ok(()) };
                if let Some(c) = snap.copy.as_mut() {
                    c.failed = Some(failure);
                }
                record::save_json(&path, &snap, record::Durability::Durable)
            }
            Target::Volume(vol) => {
                let path = self.dir(&vol.id).record();
                let Some(mut vol) = record::load(&path)? else { return Ok(()) };
                if let Some(c) = vol.copy.as_mut() {
                    c.failed = Some(failure);
                }
                record::save_json(&path, &vol, record::Durability::Durable)
            }
        }
    }
}

/// Whether two stamps name the same image (both known and equal).
fn same(a: Option<Stamp>, b: Option<Stamp>) -> bool {
    a.is_some() && a == b
}
