//! Snapshots, and volumes made from a snapshot (restore) or from another volume (clone).

use super::crashpoint;
use super::{CreateRequest, Engine, Error, Result, Snapshot, Source, Volume, perm, record, validate};
use crate::backend::VolumeDir;
use crate::engine::lock::VolumeLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// One line per copy that made a snapshot or a volume: what, from what, how much, how fast, and
/// what was left out of it.
fn log_copy(what: &str, id: &str, from: &str, report: &crate::sys::tree::CopyReport, started: std::time::Instant) {
    let secs = started.elapsed().as_secs_f64();
    let rate = (report.bytes as f64 / secs.max(1e-6) / f64::from(1 << 20)).round();
    tracing::info!(
        id,
        from,
        files = report.files,
        dirs = report.dirs,
        bytes = report.bytes,
        reflinked = report.reflinked,
        devices_left_out = report.devices_skipped,
        mounts_left_out = report.mounts_skipped,
        seconds = secs,
        mib_per_second = rate,
        "{what} copied"
    );
    if report.devices_skipped > 0 {
        tracing::warn!(
            id,
            from,
            devices = report.devices_skipped,
            "{what} left out device nodes: a copy is data, not devices"
        );
    }
}

/// What a new volume takes from its source: kind, least size, filesystem, encryption.
#[derive(Debug, Clone, Copy)]
struct Like<'a> {
    backend: crate::backend::Kind,
    size: u64,
    fs_type: Option<crate::sys::FsType>,
    encryption: Option<&'a super::encryption::Encryption>,
}

impl<'a> From<&'a Snapshot> for Like<'a> {
    fn from(s: &'a Snapshot) -> Like<'a> {
        Like { backend: s.backend, size: s.size_bytes, fs_type: s.fs_type, encryption: s.encryption.as_ref() }
    }
}

impl<'a> From<&'a Volume> for Like<'a> {
    fn from(v: &'a Volume) -> Like<'a> {
        Like { backend: v.backend, size: v.capacity, fs_type: v.fs_type, encryption: v.encryption.as_ref() }
    }
}

/// What a caller asks for when it takes a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub id: String,
    pub name: String,
    pub source_volume: String,
}

impl Engine {
    fn snapshot_dir(&self, id: &str) -> VolumeDir {
        VolumeDir(self.cfg.root.join("snapshots").join(id))
    }

    /// Where a snapshot is copied before it is renamed into place (a name no id takes).
    fn snapshot_temp(&self, id: &str) -> VolumeDir {
        VolumeDir(self.cfg.root.join("snapshots").join(format!(".{id}.new")))
    }

    /// Removes a snapshot copy left under its temporary name; none is fine.
    fn remove_snapshot_temp(&self, temp: &VolumeDir, kind: crate::backend::Kind) -> Result<()> {
        if !temp.0.exists() {
            return Ok(());
        }
        self.backend(kind).delete_copy(temp)?;
        crate::sys::tree::remove_tree(&temp.0)
            .map_err(|e| Error::from(crate::backend::Error::from(crate::sys::Error::from(e))))
    }

    /// Removes every snapshot copy an interrupted CreateSnapshot or DeleteSnapshot left (at start).
    /// One that cannot be removed is moved to `snapshots/.quarantine/` for an operator.
    pub(super) fn remove_snapshot_temps(&self, report: &mut super::reconcile::Report) {
        let dir = self.cfg.root.join("snapshots");
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let temp = VolumeDir(entry.path());
            let done = match (name.starts_with('.'), name.ends_with(".new"), name.ends_with(".del")) {
                (true, true, _) => self.remove_any_copy(&temp),
                (true, _, true) => self.remove_deleted_snapshot(&temp),
                _ => continue,
            };
            match done {
                Ok(()) => {
                    report.actions.push(format!("removed {} left by an interrupted snapshot call", temp.0.display()))
                }
                Err(e) => {
                    let left = match super::quarantine::set_aside(&temp.0) {
                        Ok(to) => format!("moved to {}", to.display()),
                        Err(moving) => format!("left there ({moving})"),
                    };
                    report.errors.push(format!("leftover {} could not be removed: {e}; {left}", temp.0.display()));
                }
            }
        }
    }

    fn snapshot_record(&self, id: &str) -> std::path::PathBuf {
        self.snapshot_dir(id).0.join("snapshot.json")
    }

    fn lock_snapshot(&self, id: &str) -> Result<VolumeLock> {
        let dir = self.cfg.root.join("locks/snapshots");
        perm::make_dir(&dir)?;
        VolumeLock::acquire_counted(&dir, id, self.cfg.wait, Some(&self.locks))
    }

    /// A snapshot's record, if it exists.
    pub fn get_snapshot(&self, id: &str) -> Result<Option<Snapshot>> {
        validate::id("snapshot", id)?;
        record::load_snapshot(&self.snapshot_record(id))
    }

    /// Every snapshot, ordered by id.
    pub fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let ids = self.snapshot_ids()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.snapshot_of(&id)?);
        }
        Ok(out)
    }

    /// The ids of the snapshot directories under the root, sorted.
    pub(super) fn snapshot_ids(&self) -> Result<Vec<String>> {
        let dir = self.cfg.root.join("snapshots");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &dir)(e)),
        };
        let mut ids: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        ids.retain(|id| validate::id("snapshot", id).is_ok());
        ids.sort();
        Ok(ids)
    }

    /// A snapshot's record, by an id from [`Engine::snapshot_ids`].
    pub(super) fn snapshot_of(&self, id: &str) -> Result<Option<Snapshot>> {
        record::load_snapshot(&self.snapshot_record(id))
    }

    /// Takes a snapshot of a volume; the same request again returns the same snapshot, the
    /// same id for another volume fails with [`Error::AlreadyExists`].
    pub fn create_snapshot(&self, req: &SnapshotRequest) -> Result<Snapshot> {
        self.named(self.snapshot_now(req))
    }

    fn snapshot_now(&self, req: &SnapshotRequest) -> Result<Snapshot> {
        validate::id("snapshot", &req.id)?;
        validate::id("volume", &req.source_volume)?;
        let _snap_lock = self.lock_snapshot(&req.id)?;
        if let Some(existing) = record::load_snapshot(&self.snapshot_record(&req.id))? {
            if existing.source_volume != req.source_volume {
                let reason = format!("it is a snapshot of volume {}", existing.source_volume);
                return Err(Error::AlreadyExists { id: req.id.clone(), reason });
            }
            return Ok(existing);
        }
        let _vol_lock = self.lock(&req.source_volume)?;
        let vol = self.load_existing(&req.source_volume)?;
        super::encryption::check_copy(vol.backend, vol.encryption.as_ref())?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let snap = Snapshot {
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
            encryption: vol.encryption.clone(),
        };
        // The copy is made under a temporary name and renamed into place with its record: a
        // kill at any point leaves either the whole snapshot or a temporary that the next try
        // (or start-up) removes.
        let backend = self.backend(vol.backend);
        let dest = self.snapshot_temp(&req.id);
        self.remove_snapshot_temp(&dest, vol.backend)?;
        perm::make_dir(&dest.0)?;
        let staging = self.staged_here(&vol, &self.host.mount_table()?);
        let started = std::time::Instant::now();
        let made = backend.copy_out(&vol, &self.dir(&vol.id), staging.as_ref(), &dest, true).map_err(Error::from);
        crashpoint::hit("snapshot:copied");
        let mut snap = snap;
        let record = dest.0.join("snapshot.json");
        let final_dir = self.snapshot_dir(&req.id);
        let done = made
            .map(|report| {
                log_copy("snapshot", &req.id, &vol.id, &report, started);
                snap.omitted = (&report).into();
            })
            .and_then(|()| record::save_json(&record, &snap, record::Durability::Durable))
            .and_then(|()| std::fs::rename(&dest.0, &final_dir.0).map_err(Error::io("rename", &dest.0)));
        if let Err(e) = done {
            let _ = self.remove_snapshot_temp(&dest, vol.backend);
            return Err(e);
        }
        Ok(snap)
    }

    /// Deletes a snapshot; one that does not exist is already deleted. Volumes restored from it
    /// are independent copies and stay.
    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        validate::id("snapshot", id)?;
        let _lock = self.lock_snapshot(id)?;
        // The snapshot leaves its name in one step (renamed aside with its record), then its copy
        // is removed: a kill anywhere leaves the whole snapshot or a leftover the retry (or
        // start-up) removes, never an unlisted directory.
        let aside = VolumeDir(self.cfg.root.join("snapshots").join(format!(".{id}.del")));
        if record::load_snapshot(&self.snapshot_record(id))?.is_some() {
            let dir = self.snapshot_dir(id);
            std::fs::rename(&dir.0, &aside.0).map_err(Error::io("rename", &dir.0))?;
            crashpoint::hit("snapshot-delete:renamed");
        }
        self.remove_deleted_snapshot(&aside)
    }

    /// Removes a snapshot renamed aside by [`Engine::delete_snapshot`]; none is fine.
    fn remove_deleted_snapshot(&self, aside: &VolumeDir) -> Result<()> {
        if !aside.0.exists() {
            return Ok(());
        }
        match record::load_snapshot(&aside.0.join("snapshot.json")).ok().flatten() {
            Some(snap) => self.remove_snapshot_temp(aside, snap.backend),
            None => self.remove_any_copy(aside),
        }
    }

    /// Removes a copy whose backend is not known, trying each backend's way.
    fn remove_any_copy(&self, temp: &VolumeDir) -> Result<()> {
        let mut last = Ok(());
        for kind in crate::backend::Kind::ALL {
            last = self.remove_snapshot_temp(temp, kind);
            if last.is_ok() {
                break;
            }
        }
        last
    }

    /// Creates a volume whose contents come from a snapshot or another volume. Same backend,
    /// same filesystem, and at least the source's size; a larger volume grows to fit.
    pub fn create_volume_from(&self, req: &CreateRequest, source: &Source) -> Result<Volume> {
        self.named(self.create_copy(req, source))
    }

    fn create_copy(&self, req: &CreateRequest, source: &Source) -> Result<Volume> {
        validate::id("volume", &req.id)?;
        let _lock = self.lock(&req.id)?;
        if let Some(existing) = self.load(&req.id)? {
            if existing.source.as_ref() != Some(source) {
                let asked = super::clip(&format!("{source:?}"));
                let reason = format!("it was made from {:?}, the request asks for {asked}", existing.source);
                return Err(Error::AlreadyExists { id: req.id.clone(), reason });
            }
            let fs = existing.fs_type;
            return super::same_volume(&existing, &CreateRequest { fs_type: req.fs_type.or(fs), ..req.clone() }, fs)
                .map(|()| existing);
        }
        match source {
            Source::Snapshot(sid) => self.restore(req, sid),
            Source::Volume(vid) => self.clone_volume(req, vid),
        }
    }

    fn restore(&self, req: &CreateRequest, sid: &str) -> Result<Volume> {
        validate::id("snapshot", sid)?;
        let _snap_lock = self.lock_snapshot(sid)?;
        let snap = self.get_snapshot(sid)?.ok_or_else(|| Error::SnapshotNotFound(sid.to_owned()))?;
        let vol = self.new_volume_like(req, &Like::from(&snap), Source::Snapshot(sid.into()))?;
        let from = self.snapshot_dir(sid);
        self.fill(vol, |vol, dir| {
            let started = std::time::Instant::now();
            let report = self.backend(snap.backend).copy_in(&from, vol, dir)?;
            log_copy("restore", &vol.id, sid, &report, started);
            vol.omitted = (&report).into();
            Ok(())
        })
    }

    fn clone_volume(&self, req: &CreateRequest, vid: &str) -> Result<Volume> {
        validate::id("volume", vid)?;
        if vid == req.id {
            return Err(Error::InvalidArgument("a volume cannot be cloned into itself".into()));
        }
        let _src_lock = self.lock(vid)?;
        let src = self.load(vid)?.ok_or_else(|| Error::VolumeNotFound(vid.to_owned()))?;
        super::encryption::check_copy(src.backend, src.encryption.as_ref())?;
        let vol = self.new_volume_like(req, &Like::from(&src), Source::Volume(vid.into()))?;
        let staging = self.staged_here(&src, &self.host.mount_table()?);
        let backend = self.backend(src.backend);
        self.fill(vol, |vol, dir| {
            let started = std::time::Instant::now();
            let report = backend.copy_out(&src, &self.dir(vid), staging.as_ref(), dir, false)?;
            log_copy("clone", &vol.id, vid, &report, started);
            vol.omitted = (&report).into();
            Ok(())
        })
    }

    /// The record of a volume made from a source, after checking the request fits the source.
    fn new_volume_like(&self, req: &CreateRequest, like: &Like, source: Source) -> Result<Volume> {
        let Like { backend, size, fs_type, encryption } = *like;
        if req.backend != backend {
            let msg = format!(
                "the source is a {} volume; a {} volume cannot be made from it",
                backend.as_str(),
                req.backend.as_str()
            );
            return Err(Error::InvalidArgument(msg));
        }
        if req.fs_type.is_some() && req.fs_type != fs_type {
            return Err(Error::InvalidArgument(format!(
                "the source has fs type {fs_type:?}, the request asks for {:?}",
                req.fs_type
            )));
        }
        if req.capacity < size {
            return Err(Error::CapacityBelowSource { requested: req.capacity, needed: size });
        }
        super::capacity::allocation(backend, &req.parameters)?;
        super::mount_policy::devices(backend, &req.parameters)?;
        let wanted = super::encryption::wanted(backend, fs_type, &req.parameters)?;
        let encryption = super::encryption::inherit(wanted, encryption)?;
        self.promise_copy(&req.id, backend, req.capacity)?;
        let mut vol = super::new_record(req, fs_type);
        vol.source = Some(source);
        vol.encryption = encryption;
        Ok(vol)
    }

    /// Makes the new volume's directory, fills it with `copy`, fits it and writes the record;
    /// on any failure removes all of it.
    /// The copy's promise in the capacity ledger (see [`Engine::promise_copy`]) becomes the new
    /// volume's count, or ends when the copy fails.
    fn fill(&self, mut vol: Volume, copy: impl FnOnce(&mut Volume, &VolumeDir) -> Result<()>) -> Result<Volume> {
        let backend = self.backend(vol.backend);
        let count = |vol: &Volume, dir: &VolumeDir| self.settle_copy(&vol.id, Some(&self.share(vol, dir)));
        let made = self.make_volume(
            &mut vol,
            |vol, dir| {
                copy(vol, dir)?;
                vol.grow_fs = backend.fit(vol, dir)?;
                Ok(())
            },
            count,
        );
        if let Err(e) = made {
            if let Err(settling) = self.settle_copy(&vol.id, None) {
                tracing::warn!(id = vol.id, error = %settling, "the failed copy's promise stays in the ledger until it is counted again");
            }
            return Err(e);
        }
        Ok(vol)
    }
}
