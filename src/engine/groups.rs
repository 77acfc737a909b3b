//! Volume group snapshots: one snapshot of each volume of a group, all cut at one instant.
//! Every member volume is locked and every mounted loop image frozen before the first member is
//! captured, and each is let go as soon as its own capture is made (a reflink), or when its copy
//! ends (no reflink on the root: the copy is the capture). A writer that writes its volumes in
//! turn therefore finds, in the restored group, a prefix of its writes that ends at one instant.
//! `dir` and `tmpfs` members are trees copied as they are, as a single snapshot of them is (see
//! docs/architecture.md). Each member is an ordinary snapshot (listed, restored) that names its
//! group, and is deleted only with it.
//!
//! A group's record (`groups/<id>/group.json`) is written before its members are cut and marked
//! cut after the last: a group a kill left uncut is removed with its members at start.

use super::copies::CopyJob;
use super::lock::VolumeLock;
use super::{Engine, Error, Result, Snapshot, SnapshotRequest, perm, record, validate};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a caller asks for when it takes a group snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRequest {
    pub id: String,
    pub name: String,
    pub volumes: Vec<String>,
}

/// A group snapshot's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    pub format: u32,
    pub id: String,
    pub name: String,
    /// The member volumes, in the order asked, and the id of each one's snapshot.
    pub volumes: Vec<String>,
    pub snapshots: Vec<String>,
    pub created_unix: u64,
    #[serde(default)]
    pub created_nanos: u32,
    /// Every member is cut (false only while the create runs, or after a kill during it).
    pub cut: bool,
}

/// A group with its members' snapshots, in the group's order.
pub type GroupView = (Group, Vec<Snapshot>);

impl Engine {
    fn group_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("groups").join(id)
    }

    fn lock_group(&self, id: &str) -> Result<VolumeLock> {
        let dir = self.cfg.root.join("locks/groups");
        perm::make_dir(&dir)?;
        VolumeLock::acquire_counted(&dir, id, self.cfg.wait, Some(&self.locks))
    }

    fn load_group(&self, id: &str) -> Result<Option<Group>> {
        record::load_json(&self.group_dir(id).join("group.json"))
    }

    /// Takes (or finds) the group snapshot `req` asks for: its record, its members, and the
    /// copies still to run. The same name for other volumes is [`Error::AlreadyExists`].
    pub fn start_group(&self, req: &GroupRequest) -> Result<(GroupView, Vec<CopyJob>)> {
        self.named(self.group_start(req))
    }

    fn group_start(&self, req: &GroupRequest) -> Result<(GroupView, Vec<CopyJob>)> {
        validate::id("group snapshot", &req.id)?;
        let wanted: BTreeSet<&String> = req.volumes.iter().collect();
        if req.volumes.is_empty() || wanted.len() != req.volumes.len() {
            return Err(Error::InvalidArgument("a group snapshot needs one or more distinct volumes".into()));
        }
        for v in &req.volumes {
            validate::id("volume", v)?;
        }
        let _lock = self.lock_group(&req.id)?;
        match self.load_group(&req.id)? {
            Some(g) if g.cut && g.volumes.iter().collect::<BTreeSet<_>>() != wanted => {
                let reason = format!("it is a group snapshot of volumes {:?}", g.volumes);
                Err(Error::AlreadyExists { id: req.id.clone(), reason })
            }
            Some(g) if g.cut => self.settle_group(g),
            Some(g) => {
                self.remove_group_locked(&g)?;
                self.cut_group(req)
            }
            None => self.cut_group(req),
        }
    }

    /// A group that exists: its members as they stand, their copies resumed where none runs;
    /// a member whose copy failed fails the group, which is removed for the next try.
    fn settle_group(&self, g: Group) -> Result<(GroupView, Vec<CopyJob>)> {
        let (mut snaps, mut jobs) = (Vec::new(), Vec::new());
        for (vol, sid) in g.volumes.iter().zip(&g.snapshots) {
            if self.get_snapshot(sid)?.is_none() {
                self.remove_group_locked(&g)?;
                return Err(Error::SnapshotNotFound(format!("{sid} (a member of group snapshot {})", g.id)));
            }
            let req = SnapshotRequest { id: sid.clone(), name: member_name(&g.name, vol), source_volume: vol.clone() };
            match self.start_snapshot(&req) {
                Ok((snap, job)) => {
                    snaps.push(snap);
                    jobs.extend(job);
                }
                Err(e) => {
                    drop(jobs);
                    self.remove_group_locked(&g)?;
                    return Err(e);
                }
            }
        }
        Ok(((g, snaps), jobs))
    }

    /// Cuts every member at one instant (see the module docs), recording the group first.
    fn cut_group(&self, req: &GroupRequest) -> Result<(GroupView, Vec<CopyJob>)> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut g = Group {
            format: record::FORMAT,
            id: req.id.clone(),
            name: req.name.clone(),
            volumes: req.volumes.clone(),
            snapshots: req.volumes.iter().map(|v| member_id(&req.id, v)).collect(),
            created_unix: now.as_secs(),
            created_nanos: now.subsec_nanos(),
            cut: false,
        };
        self.save_group(&g)?;
        match self.cut_members(&g) {
            Ok((snaps, jobs)) => {
                g.cut = true;
                self.save_group(&g)?;
                Ok(((g, snaps), jobs))
            }
            Err(e) => {
                if let Err(undo) = self.remove_group_locked(&g) {
                    tracing::warn!(group = g.id, error = %undo, "a failed group snapshot is left to the next try");
                }
                Err(e)
            }
        }
    }

    fn cut_members(&self, g: &Group) -> Result<(Vec<Snapshot>, Vec<CopyJob>)> {
        let mut order: Vec<&String> = g.volumes.iter().collect();
        order.sort();
        let mut held = std::collections::BTreeMap::new();
        for id in order {
            let lock = self.lock(id)?;
            let vol = self.load_existing(id)?;
            self.ready_source(&vol)?;
            held.insert(id.clone(), (vol, lock));
        }
        // Every member still before the first capture: frozen where mounted.
        let mut holds = Vec::new();
        for id in &g.volumes {
            let (vol, lock) = held.remove(id).ok_or_else(|| Error::VolumeNotFound(id.clone()))?;
            let hold = self.hold_source(&vol, lock)?;
            holds.push((vol, hold));
        }
        super::crashpoint::hit("group:frozen");
        let (mut snaps, mut jobs) = (Vec::new(), Vec::new());
        for ((vol, hold), sid) in holds.into_iter().zip(&g.snapshots) {
            let _snap_lock = self.lock_snapshot(sid)?;
            let req =
                SnapshotRequest { id: sid.clone(), name: member_name(&g.name, &vol.id), source_volume: vol.id.clone() };
            let (snap, job) = self.cut_snapshot(&req, vol, hold, Some(&g.id))?;
            snaps.push(snap);
            jobs.extend(job);
        }
        Ok((snaps, jobs))
    }

    fn save_group(&self, g: &Group) -> Result<()> {
        let dir = self.group_dir(&g.id);
        perm::make_dir(&dir)?;
        record::save_json(&dir.join("group.json"), g, record::Durability::Durable)
    }

    /// The group snapshot `id` with its members; `None` when it does not exist (or was never
    /// cut). `snapshot_ids`, when given, must be exactly its members.
    pub fn get_group(&self, id: &str, snapshot_ids: &[String]) -> Result<Option<GroupView>> {
        validate::id("group snapshot", id)?;
        let Some(g) = self.load_group(id)?.filter(|g| g.cut) else { return Ok(None) };
        same_members(&g, snapshot_ids)?;
        let mut snaps = Vec::new();
        for sid in &g.snapshots {
            snaps.extend(self.get_snapshot(sid)?);
        }
        Ok(Some((g, snaps)))
    }

    /// Deletes a group snapshot and its members (their copies stopped); one that does not
    /// exist is deleted already. `snapshot_ids`, when given, must be exactly its members.
    pub fn delete_group(&self, id: &str, snapshot_ids: &[String]) -> Result<()> {
        validate::id("group snapshot", id)?;
        let _lock = self.lock_group(id)?;
        let Some(g) = self.load_group(id)? else { return Ok(()) };
        if g.cut {
            same_members(&g, snapshot_ids)?;
        }
        self.remove_group_locked(&g)
    }

    /// Removes the members, then the record, of a group whose lock the caller holds.
    fn remove_group_locked(&self, g: &Group) -> Result<()> {
        for sid in &g.snapshots {
            let _lock = self.lock_snapshot(sid)?;
            self.remove_snapshot_locked(sid)?;
        }
        let dir = self.group_dir(&g.id);
        std::fs::remove_dir_all(&dir)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .map_err(Error::io("remove", &dir))
    }

    /// Removes the groups a kill left uncut, with their members (at start).
    pub(super) fn remove_uncut_groups(&self, report: &mut super::reconcile::Report) {
        let Ok(entries) = std::fs::read_dir(self.cfg.root.join("groups")) else { return };
        for id in entries.flatten().filter_map(|e| e.file_name().into_string().ok()) {
            let Ok(Some(g)) = self.load_group(&id) else { continue };
            if g.cut {
                continue;
            }
            let done = self.lock_group(&id).and_then(|_lock| self.remove_group_locked(&g));
            match done {
                Ok(()) => {
                    report.actions.push(format!("removed group snapshot {id}, left uncut by a kill, and its members"))
                }
                Err(e) => report.errors.push(format!("group snapshot {id} left uncut could not be removed: {e}")),
            }
        }
    }
}

/// The snapshot id of `volume`'s member of group `group`: a readable prefix of the group id and
/// 16 hex digits of SHA-256 of both (at most 58 bytes, so it fits a CSI id with any node tag).
pub fn member_id(group: &str, volume: &str) -> String {
    let prefix: String = group.chars().take(40).collect();
    let digest = Sha256::digest(format!("{group}/{volume}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

fn member_name(group_name: &str, volume: &str) -> String {
    format!("{group_name}/{volume}")
}

/// INVALID_ARGUMENT unless `ids` (when given) are exactly the group's members.
fn same_members(g: &Group, ids: &[String]) -> Result<()> {
    if ids.is_empty() || ids.iter().collect::<BTreeSet<_>>() == g.snapshots.iter().collect() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "group snapshot {} holds the snapshots {:?}, not {}",
        g.id,
        g.snapshots,
        super::clip(&format!("{ids:?}"))
    )))
}
