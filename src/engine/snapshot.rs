//! Snapshots, and volumes made from a snapshot (restore) or from another volume (clone).

use super::copies::CopyKey;
use super::crashpoint;
use super::{CreateRequest, Engine, Error, Result, Snapshot, Source, Volume, perm, record, validate};
use crate::backend::VolumeDir;
use crate::engine::lock::VolumeLock;
use std::time::Duration;

/// What a new volume takes from its source: kind, least size, filesystem, encryption.
#[derive(Debug, Clone, Copy)]
pub(super) struct Like<'a> {
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
    pub(super) fn snapshot_dir(&self, id: &str) -> VolumeDir {
        VolumeDir(self.cfg.root.join("snapshots").join(id))
    }

    /// Where a snapshot is copied before it is renamed into place (a name no id takes).
    pub(super) fn snapshot_temp(&self, id: &str) -> VolumeDir {
        VolumeDir(self.cfg.root.join("snapshots").join(format!(".{id}.new")))
    }

    /// Removes a snapshot copy left under its temporary name; none is fine.
    pub(super) fn remove_snapshot_temp(&self, temp: &VolumeDir, kind: crate::backend::Kind) -> Result<()> {
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

    pub(super) fn snapshot_record(&self, id: &str) -> std::path::PathBuf {
        self.snapshot_dir(id).0.join("snapshot.json")
    }

    /// The snapshot's lock; while the copy filling it holds it to write its record (a few
    /// milliseconds), waited for.
    pub(super) fn lock_snapshot(&self, id: &str) -> Result<VolumeLock> {
        let dir = self.cfg.root.join("locks/snapshots");
        perm::make_dir(&dir)?;
        let key = CopyKey::Snapshot(id.to_owned());
        self.while_copy_ends(&key, || VolumeLock::acquire_counted(&dir, id, self.cfg.wait, Some(&self.locks)))
    }

    /// Takes a lock with `take`; one that is busy while the copy of `key` runs is tried again
    /// for up to 2 s (the copy holds it only to write how it ended).
    pub(super) fn while_copy_ends(&self, key: &CopyKey, take: impl Fn() -> Result<VolumeLock>) -> Result<VolumeLock> {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match take() {
                Err(Error::Busy { .. }) if self.copies.get(key).is_some() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                other => return other,
            }
        }
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

    /// Deletes a snapshot; one that does not exist is already deleted. Volumes restored from it
    /// are independent copies and stay. A snapshot still being copied stops its copy first; one
    /// that a restore reads, or that belongs to a group, is refused.
    pub fn delete_snapshot(&self, id: &str) -> Result<()> {
        validate::id("snapshot", id)?;
        let _lock = self.lock_snapshot(id)?;
        if let Some(group) = record::load_snapshot(&self.snapshot_record(id))?.and_then(|s| s.group) {
            return Err(Error::InvalidArgument(format!(
                "snapshot {id} belongs to the volume group snapshot {group}; delete the group instead"
            )));
        }
        self.remove_snapshot_locked(id)
    }

    /// Deletes snapshot `id`, whose lock the caller holds.
    pub(super) fn remove_snapshot_locked(&self, id: &str) -> Result<()> {
        if let Some(job) = self.copies.reading(&Source::Snapshot(id.to_owned())) {
            return Err(Error::precondition(
                id,
                format!("{} is being restored from it ({}); delete it when that copy is done", job.key, job.describe()),
            ));
        }
        self.stop_copy(&CopyKey::Snapshot(id.to_owned()))?;
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

    /// Stops the copy of `key` running in this process, if one runs, and waits until it has
    /// let go of what it held (its target is then the caller's to remove).
    pub(super) fn stop_copy(&self, key: &CopyKey) -> Result<()> {
        let Some(job) = self.copies.get(key) else { return Ok(()) };
        job.progress.cancel();
        if job.wait(Duration::from_secs(30)) {
            tracing::info!(copy = %key, "copy cancelled by a delete");
            return Ok(());
        }
        Err(Error::Copying { what: key.to_string(), progress: "stopping its copy; retry".into() })
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
        for &kind in self.backends.keys() {
            last = self.remove_snapshot_temp(temp, kind);
            if last.is_ok() {
                break;
            }
        }
        last
    }

    /// The record of a volume made from a source, after checking the request fits the source.
    pub(super) fn new_volume_like(&self, req: &CreateRequest, like: &Like, source: Source) -> Result<Volume> {
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
}
