//! How a snapshot, a clone or a restore begins: the source is held still where it must be
//! (locked; frozen while mounted), copied at once where the filesystem shares extents, and
//! otherwise recorded as a copy to run ([`CopyJob`]). The same request again finds the record:
//! whole, still copying, or failed (reported once, and removed).

use super::job::{CopyJob, Hold, Origin, Target};
use super::registry::{CopyKey, JobState};
use super::{PROGRESS_FILE, intent, log_copy};
use crate::backend::VolumeDir;
use crate::engine::lock::VolumeLock;
use crate::engine::record::{self, Stamp};
use crate::engine::snapshot::Like;
use crate::engine::{CreateRequest, Engine, Error, Result, Snapshot, SnapshotRequest, Source, Volume, crashpoint};
use crate::sys::tree::{CopyReport, Progress};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a source was captured.
pub(in crate::engine) enum Captured {
    /// The copy is whole already (a reflink, a btrfs snapshot).
    Whole(CopyReport),
    /// The copy runs later, with this hold on the source.
    Later(Hold),
}

impl Engine {
    /// Takes a snapshot of a volume: the snapshot is cut when this returns, and whole unless a
    /// [`CopyJob`] comes back to be run. The same request again returns the same snapshot (or
    /// the copy's failure, once); the same id for another volume is [`Error::AlreadyExists`].
    pub fn start_snapshot(&self, req: &SnapshotRequest) -> Result<(Snapshot, Option<CopyJob>)> {
        self.named(self.snapshot_start(req))
    }

    fn snapshot_start(&self, req: &SnapshotRequest) -> Result<(Snapshot, Option<CopyJob>)> {
        crate::engine::validate::id("snapshot", &req.id)?;
        crate::engine::validate::id("volume", &req.source_volume)?;
        let _snap_lock = self.lock_snapshot(&req.id)?;
        if let Some(existing) = record::load_snapshot(&self.snapshot_record(&req.id))? {
            if existing.source_volume != req.source_volume {
                let reason = format!("it is a snapshot of volume {}", existing.source_volume);
                return Err(Error::AlreadyExists { id: req.id.clone(), reason });
            }
            return self.settle_snapshot(existing);
        }
        let vol_lock = self.lock(&req.source_volume)?;
        let vol = self.load_existing(&req.source_volume)?;
        self.ready_source(&vol)?;
        let hold = self.hold_source(&vol, vol_lock)?;
        self.cut_snapshot(req, vol, hold, None)
    }

    /// Cuts the snapshot of `vol`, which `hold` keeps still: made under a temporary name and
    /// renamed into place with its record (whole, or with the copy's intent).
    pub(in crate::engine) fn cut_snapshot(
        &self,
        req: &SnapshotRequest,
        vol: Volume,
        hold: Hold,
        group: Option<&str>,
    ) -> Result<(Snapshot, Option<CopyJob>)> {
        crate::engine::encryption::check_copy(vol.backend, vol.encryption.as_ref())?;
        let mut snap = new_snapshot(req, &vol, group);
        let dest = self.snapshot_temp(&req.id);
        self.remove_snapshot_temp(&dest, vol.backend)?;
        crate::engine::perm::make_dir(&dest.0)?;
        let started = Instant::now();
        let made = self.capture(&vol, hold, &dest, true).and_then(|captured| {
            crashpoint::hit("snapshot:copied");
            let later = match captured {
                Captured::Whole(report) => {
                    log_copy(&CopyKey::Snapshot(req.id.clone()), &Source::Volume(vol.id.clone()), &report, started);
                    snap.omitted = (&report).into();
                    None
                }
                Captured::Later(hold) => {
                    snap.copy = Some(intent(Source::Volume(vol.id.clone()), hold.still));
                    Some(hold)
                }
            };
            snap.format = record::format_for(snap.copy.as_ref());
            record::save_json(&dest.0.join("snapshot.json"), &snap, record::Durability::Durable)?;
            let dir = self.snapshot_dir(&req.id);
            std::fs::rename(&dest.0, &dir.0).map_err(Error::io("rename", &dest.0))?;
            crashpoint::hit("snapshot:recorded");
            Ok(later)
        });
        match made {
            Err(e) => {
                crate::undo::log("a failed snapshot: remove its temp", self.remove_snapshot_temp(&dest, vol.backend));
                Err(e)
            }
            Ok(None) => Ok((snap, None)),
            Ok(Some(hold)) => {
                let (key, target) = (CopyKey::Snapshot(req.id.clone()), Target::Snapshot { id: req.id.clone() });
                let job = self.new_job(key, Origin::Volume(Box::new(vol)), target, hold)?;
                Ok((snap, Some(job)))
            }
        }
    }

    /// An existing snapshot, as the same request again finds it: whole or copying (its copy
    /// resumed when none runs), or failed (reported, and removed for the next try).
    fn settle_snapshot(&self, snap: Snapshot) -> Result<(Snapshot, Option<CopyJob>)> {
        let Some(intent) = snap.copy.clone() else { return Ok((snap, None)) };
        let key = CopyKey::Snapshot(snap.id.clone());
        if let Some(f) = &intent.failed {
            self.remove_snapshot_locked(&snap.id)?;
            return Err(Error::CopyFailed { what: key.to_string(), cause: f.cause, message: f.message.clone() });
        }
        if self.copies.get(&key).is_some() {
            return Ok((snap, None));
        }
        match self.resume(key, &intent, Target::Snapshot { id: snap.id.clone() }) {
            Ok(job) => Ok((snap, Some(job))),
            Err(e @ Error::CopyFailed { .. }) => {
                self.remove_snapshot_locked(&snap.id)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a volume whose contents come from a snapshot or another volume (same backend and
    /// filesystem, at least the source's size). The volume exists when this returns; its
    /// contents are whole unless a [`CopyJob`] comes back (`copy` set in its record).
    pub fn start_volume_from(&self, req: &CreateRequest, source: &Source) -> Result<(Volume, Option<CopyJob>)> {
        self.named(self.volume_from_start(req, source))
    }

    fn volume_from_start(&self, req: &CreateRequest, source: &Source) -> Result<(Volume, Option<CopyJob>)> {
        crate::engine::validate::id("volume", &req.id)?;
        let _lock = self.lock(&req.id)?;
        if let Some(existing) = self.load(&req.id)? {
            if existing.source.as_ref() != Some(source) {
                let asked = crate::engine::clip(&format!("{source:?}"));
                let reason = format!("it was made from {:?}, the request asks for {asked}", existing.source);
                return Err(Error::AlreadyExists { id: req.id.clone(), reason });
            }
            let fs = existing.fs_type;
            let same = CreateRequest { fs_type: req.fs_type.or(fs), ..req.clone() };
            crate::engine::same_volume(&existing, &same, fs)?;
            return self.settle_volume(existing);
        }
        match source {
            Source::Snapshot(sid) => self.restore_start(req, sid),
            Source::Volume(vid) => self.clone_start(req, vid),
        }
    }

    /// An existing volume made from a source, as the same request again finds it (see
    /// [`Engine::settle_snapshot`]).
    fn settle_volume(&self, vol: Volume) -> Result<(Volume, Option<CopyJob>)> {
        let Some(intent) = vol.copy.clone() else { return Ok((vol, None)) };
        let key = CopyKey::Volume(vol.id.clone());
        if let Some(f) = &intent.failed {
            self.backend(vol.backend).detach(&vol.spec(), &self.dir(&vol.id), None)?;
            self.remove_volume(&vol)?;
            return Err(Error::CopyFailed { what: key.to_string(), cause: f.cause, message: f.message.clone() });
        }
        if self.copies.get(&key).is_some() {
            return Ok((vol, None));
        }
        match self.resume(key, &intent, Target::Volume(Box::new(vol.clone()))) {
            Ok(job) => Ok((vol, Some(job))),
            Err(e @ Error::CopyFailed { .. }) => {
                self.remove_volume(&vol)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn restore_start(&self, req: &CreateRequest, sid: &str) -> Result<(Volume, Option<CopyJob>)> {
        crate::engine::validate::id("snapshot", sid)?;
        let _snap_lock = self.lock_snapshot(sid)?;
        let snap = self.get_snapshot(sid)?.ok_or_else(|| Error::SnapshotNotFound(sid.to_owned()))?;
        if !snap.ready() {
            return Err(self.copying(&CopyKey::Snapshot(sid.to_owned())));
        }
        let source = Source::Snapshot(sid.into());
        let mut vol = self.new_volume_like(req, &Like::from(&snap), source.clone())?;
        let (from, backend, started) = (self.snapshot_dir(sid), self.backend(snap.backend), Instant::now());
        self.made_from_source(&mut vol, |vol, dir| {
            match backend.restore_instantly(&from, &vol.spec(), dir)? {
                Some(report) => {
                    log_copy(&CopyKey::Volume(vol.id.clone()), &source, &report, started);
                    vol.omitted = (&report).into();
                    vol.grow_fs = backend.fit(&vol.spec(), dir)?;
                }
                None => set_copying(vol, intent(source.clone(), None)),
            }
            Ok(())
        })?;
        if vol.copy.is_none() {
            return Ok((vol, None));
        }
        let origin = Origin::Snapshot { id: sid.to_owned(), backend: snap.backend };
        let (key, target) = (CopyKey::Volume(vol.id.clone()), Target::Volume(Box::new(vol.clone())));
        let job = self.new_job(key, origin, target, Hold::none(self.host.clone()))?;
        Ok((vol, Some(job)))
    }

    fn clone_start(&self, req: &CreateRequest, vid: &str) -> Result<(Volume, Option<CopyJob>)> {
        crate::engine::validate::id("volume", vid)?;
        if vid == req.id {
            return Err(Error::InvalidArgument("a volume cannot be cloned into itself".into()));
        }
        let src_lock = self.lock(vid)?;
        let src = self.load(vid)?.ok_or_else(|| Error::VolumeNotFound(vid.to_owned()))?;
        self.ready_source(&src)?;
        let source = Source::Volume(vid.into());
        crate::engine::encryption::check_copy(src.backend, src.encryption.as_ref())?;
        let mut vol = self.new_volume_like(req, &Like::from(&src), source.clone())?;
        let hold = self.hold_source(&src, src_lock)?;
        let (mut later, started) = (None, Instant::now());
        self.made_from_source(&mut vol, |vol, dir| {
            match self.capture(&src, hold, dir, false)? {
                Captured::Whole(report) => {
                    log_copy(&CopyKey::Volume(vol.id.clone()), &source, &report, started);
                    vol.omitted = (&report).into();
                    vol.grow_fs = self.backend(vol.backend).fit(&vol.spec(), dir)?;
                }
                Captured::Later(hold) => {
                    set_copying(vol, intent(source.clone(), hold.still));
                    later = Some(hold);
                }
            }
            Ok(())
        })?;
        let Some(hold) = later else { return Ok((vol, None)) };
        let (key, target) = (CopyKey::Volume(vol.id.clone()), Target::Volume(Box::new(vol.clone())));
        let job = self.new_job(key, Origin::Volume(Box::new(src)), target, hold)?;
        Ok((vol, Some(job)))
    }

    /// Refuses to copy from a volume that is itself still being filled.
    pub(in crate::engine) fn ready_source(&self, vol: &Volume) -> Result<()> {
        match vol.copy {
            Some(_) => Err(self.copying(&CopyKey::Volume(vol.id.clone()))),
            None => Ok(()),
        }
    }

    /// Holds `vol` still for a copy: its lock (already taken) and, for an image that is
    /// mounted, a frozen filesystem; with the image's stamp, to prove a resumed copy reads the
    /// same image.
    pub(in crate::engine) fn hold_source(&self, vol: &Volume, lock: VolumeLock) -> Result<Hold> {
        let backend = self.backend(vol.backend);
        let mut hold = Hold::none(self.host.clone());
        hold.lock = Some(lock);
        if backend.copy_needs_still_source() {
            let dir = self.dir(&vol.id);
            let staging = match &vol.staging {
                Some(s) if self.staging_live(vol, s)? => Some(s.clone()),
                _ => None,
            };
            hold.frozen = backend.freeze_for_copy(&vol.spec(), &dir, staging.as_ref())?;
            hold.still = Stamp::of(&dir.image());
        }
        Ok(hold)
    }

    /// Copies `vol` into `dest` at once where the filesystem shares extents (the hold is let go
    /// at once); else the copy comes later, and the hold goes with it.
    pub(in crate::engine) fn capture(&self, vol: &Volume, hold: Hold, dest: &VolumeDir, ro: bool) -> Result<Captured> {
        match self.backend(vol.backend).copy_instantly(&vol.spec(), &self.dir(&vol.id), dest, ro) {
            Ok(Some(report)) => {
                hold.release()?;
                Ok(Captured::Whole(report))
            }
            Ok(None) => Ok(Captured::Later(hold)),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers a copy to run. A source that needs no holding (a tree copied as it is) is let
    /// go now that the copy counts as its reader (deletes of it are refused meanwhile).
    pub(super) fn new_job(&self, key: CopyKey, origin: Origin, target: Target, mut hold: Hold) -> Result<CopyJob> {
        let (from, still) = match &origin {
            Origin::Volume(v) => (Source::Volume(v.id.clone()), self.backend(v.backend).copy_needs_still_source()),
            Origin::Snapshot { id, .. } => (Source::Snapshot(id.clone()), false),
        };
        let dir = match &target {
            Target::Snapshot { id } => self.snapshot_dir(id),
            Target::Volume(v) => self.dir(&v.id),
        };
        let progress = Progress::limited(self.copy_rate).reporting(progress_writer(dir));
        let state = Arc::new(JobState::new(key.clone(), from, Arc::new(progress), still && hold.lock.is_some()));
        let Some(claim) = self.copies.claim(&state) else { return Err(self.copying(&key)) };
        if !still {
            hold.lock = None;
        }
        Ok(CopyJob { state, origin, target, hold, claim })
    }

    /// [`Engine::start_snapshot`], with its copy run inside the call: whole when it returns.
    pub fn create_snapshot(&self, req: &SnapshotRequest) -> Result<Snapshot> {
        loop {
            let (snap, job) = self.start_snapshot(req)?;
            if snap.ready() {
                return Ok(snap);
            }
            self.finish_here(job, &CopyKey::Snapshot(snap.id.clone()));
        }
    }

    /// [`Engine::start_volume_from`], with its copy run inside the call: whole when it returns.
    pub fn create_volume_from(&self, req: &CreateRequest, source: &Source) -> Result<Volume> {
        loop {
            let (vol, job) = self.start_volume_from(req, source)?;
            if vol.copy.is_none() {
                return Ok(vol);
            }
            self.finish_here(job, &CopyKey::Volume(vol.id.clone()));
        }
    }

    /// Runs `job` here, or waits for the copy of `key` that another thread runs.
    fn finish_here(&self, job: Option<CopyJob>, key: &CopyKey) {
        match job {
            Some(job) => self.run_copy(job),
            None => {
                if let Some(running) = self.copies.get(key) {
                    while !running.wait(Duration::from_secs(3600)) {}
                }
            }
        }
    }
}

/// Marks a new volume's record as being filled by a copy.
impl Engine {
    /// [`Engine::make_volume`] for a clone or a restore: the promise its size made in the
    /// capacity ledger (see [`Engine::promise_copy`]) becomes the new volume's count once its
    /// record is made (a loop volume whose image the background copy has yet to make counts its
    /// whole size), or ends when making it fails.
    fn made_from_source(
        &self,
        vol: &mut Volume,
        fill: impl FnOnce(&mut Volume, &VolumeDir) -> Result<()>,
    ) -> Result<()> {
        let count = |vol: &Volume, dir: &VolumeDir| self.settle_promise(&vol.id, Some(&self.share(vol, dir)));
        let made = self.make_volume(vol, fill, count);
        if made.is_err() {
            if let Err(e) = self.settle_promise(&vol.id, None) {
                tracing::warn!(id = vol.id, error = %e, "a failed copy's promise stays in the ledger until it is counted again");
            }
        }
        made
    }
}

fn set_copying(vol: &mut Volume, intent: record::CopyIntent) {
    vol.copy = Some(intent);
    vol.format = record::format_for(vol.copy.as_ref());
}

/// Writes a copy's progress beside the record of what it fills, about once a second.
fn progress_writer(dir: VolumeDir) -> crate::sys::tree::Reporter {
    let file = dir.0.join(PROGRESS_FILE);
    Box::new(move |copied, total| {
        crashpoint::hit("copy:copying");
        let figures = super::CopyProgress { copied, total };
        if let Err(e) = record::save_json(&file, &figures, record::Durability::Cached) {
            tracing::debug!(error = %e, "cannot write the copy's progress");
        }
    })
}

/// The record of a new snapshot of `vol`.
fn new_snapshot(req: &SnapshotRequest, vol: &Volume, group: Option<&str>) -> Snapshot {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Snapshot {
        format: record::FORMAT,
        id: req.id.clone(),
        name: req.name.clone(),
        source_volume: vol.id.clone(),
        backend: vol.backend,
        size_bytes: vol.capacity,
        fs_type: vol.fs_type,
        created_unix: now.as_secs(),
        created_nanos: now.subsec_nanos(),
        omitted: record::Omitted::default(),
        copy: None,
        group: group.map(str::to_owned),
        encryption: vol.encryption.clone(),
    }
}
