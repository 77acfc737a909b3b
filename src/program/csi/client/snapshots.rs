//! Client commands on snapshots through the Controller service: create, delete, get and list.

use super::render;
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::{self as p};
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::Channel;

type Controller = ControllerClient<Channel>;

/// CreateSnapshot of `source`; the answer is the snapshot.
pub async fn create(ctl: &mut Controller, name: String, source: String) -> Result<Value, Status> {
    let req = p::CreateSnapshotRequest { name, source_volume_id: source, ..Default::default() };
    let snap = ctl.create_snapshot(req).await?.into_inner().snapshot;
    Ok(snap.as_ref().map(render::snapshot).unwrap_or(Value::Null))
}

/// DeleteSnapshot.
pub async fn delete(ctl: &mut Controller, snapshot_id: String) -> Result<Value, Status> {
    let req = p::DeleteSnapshotRequest { snapshot_id: snapshot_id.clone(), ..Default::default() };
    ctl.delete_snapshot(req).await?;
    Ok(json!({"deleted": snapshot_id}))
}

/// GetSnapshot.
pub async fn get(ctl: &mut Controller, snapshot_id: String) -> Result<Value, Status> {
    let req = p::GetSnapshotRequest { snapshot_id, ..Default::default() };
    let snap = ctl.get_snapshot(req).await?.into_inner().snapshot;
    Ok(snap.as_ref().map(render::snapshot).unwrap_or(Value::Null))
}

/// ListSnapshots, filtered by id or source volume: one page if `max_entries` is set, else every
/// page.
pub async fn list(
    ctl: &mut Controller,
    snapshot_id: String,
    source_volume_id: String,
    max_entries: i32,
    mut token: String,
) -> Result<Value, Status> {
    let mut entries = Vec::new();
    loop {
        let req = p::ListSnapshotsRequest {
            max_entries,
            starting_token: token,
            source_volume_id: source_volume_id.clone(),
            snapshot_id: snapshot_id.clone(),
            ..Default::default()
        };
        let page = ctl.list_snapshots(req).await?.into_inner();
        entries.extend(page.entries.iter().filter_map(|e| e.snapshot.as_ref()).map(render::snapshot));
        token = page.next_token;
        if max_entries != 0 || token.is_empty() {
            break;
        }
    }
    Ok(json!({"snapshots": entries, "next_token": token}))
}
