//! Snapshot RPCs behind the thin Controller handlers. A snapshot lives on the node of its source
//! volume, and its id says which node that is (`<engine id>@<node tag>`, see `volume_id`).
//!
//! Answers about ids of other nodes, consistent with the volume calls: CreateSnapshot of another
//! node's volume and GetSnapshot of another node's snapshot are NOT_FOUND (nothing of that id
//! exists here); ListSnapshots filtered by such an id is empty; DeleteSnapshot of another node's
//! snapshot is FAILED_PRECONDITION (only that node can delete it, and OK would let the CO forget
//! a snapshot that still holds data); an id strata never makes names nothing, so deleting it is OK.

use super::convert::{K8S_PREFIX, i64_of, invalid};
use super::proto::{
    self as p, CreateSnapshotRequest, DeleteSnapshotRequest, GetSnapshotRequest, ListSnapshotsRequest,
    ListSnapshotsResponse, list_snapshots_response::Entry,
};
use super::volume_id::{SnapshotId, VolumeId};
use super::{Driver, paging, require};
use crate::engine::{CopyJob, Engine, Error, Snapshot, SnapshotRequest, quote};
use tonic::Status;

impl Driver {
    pub(super) async fn snapshot_create(&self, r: CreateSnapshotRequest) -> Result<p::Snapshot, Status> {
        require(&r.name, "name")?;
        require(&r.source_volume_id, "source_volume_id")?;
        if let Some(k) = r.parameters.keys().find(|k| !k.starts_with(K8S_PREFIX)) {
            return Err(invalid(format!(
                "unknown snapshot parameter {}; strata takes none but {K8S_PREFIX}*",
                quote(k)
            )));
        }
        let source = self.local(&r.source_volume_id)?;
        let req = SnapshotRequest {
            id: SnapshotId::for_name(&r.name, &self.node_tag).local,
            name: r.name,
            source_volume: source,
        };
        let start = std::sync::Arc::new(move |e: &Engine| {
            create_or_reuse(e, &req).map(|(snap, job)| (snap, job.into_iter().collect())).map_err(Status::from)
        });
        let snap = self.with_copy(start, super::copies::SNAPSHOT_WAIT).await?;
        Ok(self.snapshot_of(&snap))
    }

    pub(super) async fn snapshot_delete(&self, r: DeleteSnapshotRequest) -> Result<(), Status> {
        require(&r.snapshot_id, "snapshot_id")?;
        let Some(id) = SnapshotId::parse(&r.snapshot_id) else {
            return Ok(()); // never a strata id: nothing to delete
        };
        if id.node_tag != self.node_tag {
            return Err(Status::failed_precondition(format!(
                "snapshot {} lives on node {}; only that node can delete it",
                r.snapshot_id, id.node_tag
            )));
        }
        self.blocking(move |e| e.delete_snapshot(&id.local)).await
    }

    pub(super) async fn snapshot_get(&self, r: GetSnapshotRequest) -> Result<p::Snapshot, Status> {
        require(&r.snapshot_id, "snapshot_id")?;
        let local = self.local_snapshot(&r.snapshot_id)?;
        let found = self.blocking(move |e| e.get_snapshot(&local)).await?;
        let snap = found.ok_or_else(|| Status::not_found(format!("snapshot {} does not exist", r.snapshot_id)))?;
        Ok(self.snapshot_of(&snap))
    }

    pub(super) async fn snapshot_list(&self, r: ListSnapshotsRequest) -> Result<ListSnapshotsResponse, Status> {
        // A filter naming an id of another node (or no strata id) matches nothing here.
        let mine = |id: &str| VolumeId::parse(id).filter(|v| v.node_tag == self.node_tag).map(|v| v.local);
        let by_id = (!r.snapshot_id.is_empty()).then(|| mine(&r.snapshot_id));
        let by_source = (!r.source_volume_id.is_empty()).then(|| mine(&r.source_volume_id));
        let (token, max) = (r.starting_token, r.max_entries);
        let (snaps, next_token) = self
            .blocking(move |e| -> Result<_, Status> {
                let all = match &by_id {
                    None => e.list_snapshots()?,
                    Some(None) => Vec::new(),
                    Some(Some(id)) => e.get_snapshot(id)?.into_iter().collect(),
                };
                let wanted =
                    all.into_iter().filter(|s| by_source.as_ref().is_none_or(|v| v.as_ref() == Some(&s.source_volume)));
                paging::page(wanted.collect(), |s| s.id.as_str(), &token, max, "snapshot")
            })
            .await?;
        let entries = snaps.iter().map(|s| Entry { snapshot: Some(self.snapshot_of(s)) }).collect();
        Ok(ListSnapshotsResponse { entries, next_token })
    }

    /// The engine id of a snapshot this node owns; NOT_FOUND for ids of other nodes and for ids
    /// strata never made.
    fn local_snapshot(&self, snapshot_id: &str) -> Result<String, Status> {
        match SnapshotId::parse(snapshot_id) {
            Some(id) if id.node_tag == self.node_tag => Ok(id.local),
            Some(id) => Err(Status::not_found(format!(
                "snapshot {snapshot_id} belongs to node {}, not to this node ({})",
                id.node_tag, self.opts.node_id
            ))),
            None => Err(Status::not_found(format!("snapshot {snapshot_id} does not exist (not a strata snapshot id)"))),
        }
    }

    /// A snapshot record as a CSI snapshot of this node: ready to use once its copy is whole.
    pub(super) fn snapshot_of(&self, s: &Snapshot) -> p::Snapshot {
        p::Snapshot {
            size_bytes: i64_of(s.size_bytes),
            snapshot_id: SnapshotId::new(&s.id, &self.node_tag).to_string(),
            source_volume_id: VolumeId::new(&s.source_volume, &self.node_tag).to_string(),
            creation_time: Some(prost_types::Timestamp {
                seconds: i64::try_from(s.created_unix).unwrap_or(i64::MAX),
                nanos: i32::try_from(s.created_nanos).unwrap_or(0),
            }),
            ready_to_use: s.ready(),
            group_snapshot_id: s
                .group
                .as_ref()
                .map(|g| SnapshotId::new(g, &self.node_tag).to_string())
                .unwrap_or_default(),
        }
    }
}

/// The snapshot of this name if it exists for the same source, else a new one (with the copy
/// still to run, if any); ALREADY_EXISTS when the name is taken by a snapshot of another volume.
fn create_or_reuse(engine: &Engine, req: &SnapshotRequest) -> crate::engine::Result<(Snapshot, Option<CopyJob>)> {
    if let Some(old) = engine.get_snapshot(&req.id)? {
        if old.name != req.name {
            let reason = format!("it already belongs to the snapshot named {}", quote(&old.name));
            return Err(Error::AlreadyExists { id: req.id.clone(), reason });
        }
        if old.group.is_some() {
            let reason = "it belongs to a volume group snapshot".to_owned();
            return Err(Error::AlreadyExists { id: req.id.clone(), reason });
        }
    }
    engine.start_snapshot(req)
}
