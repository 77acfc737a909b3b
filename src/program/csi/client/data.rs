//! Client commands for data services: snapshots, restore and clone sources, expansion, and a
//! volume with its condition.

use super::render;
use super::request::text;
use crate::csi::convert::i64_of;
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
use crate::csi::proto::{self as p};
use crate::program::csi::cli::ClientCommand;
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::Channel;

pub async fn single(
    ctl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    cmd: ClientCommand,
) -> Result<Value, Status> {
    match cmd {
        ClientCommand::GetVolume { volume_id } => {
            let r = ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id }).await?.into_inner();
            let mut v = r.volume.as_ref().map(render::volume).unwrap_or(Value::Null);
            if let Some(c) = r.status.and_then(|s| s.volume_condition) {
                v["condition"] = render::condition(&c);
            }
            Ok(v)
        }
        ClientCommand::Expand { volume_id, size } => {
            let req = p::ControllerExpandVolumeRequest {
                volume_id,
                capacity_range: Some(p::CapacityRange { required_bytes: i64_of(size), limit_bytes: 0 }),
                ..Default::default()
            };
            let r = ctl.controller_expand_volume(req).await?.into_inner();
            Ok(json!({"capacity_bytes": r.capacity_bytes, "node_expansion_required": r.node_expansion_required}))
        }
        ClientCommand::NodeExpand { volume_id, path, size } => {
            let req = p::NodeExpandVolumeRequest {
                volume_id,
                volume_path: text(&path),
                capacity_range: size.map(|s| p::CapacityRange { required_bytes: i64_of(s), limit_bytes: 0 }),
                ..Default::default()
            };
            let r = node.node_expand_volume(req).await?.into_inner();
            Ok(json!({"capacity_bytes": r.capacity_bytes}))
        }
        ClientCommand::CreateSnapshot { name, source } => {
            let req = p::CreateSnapshotRequest { name, source_volume_id: source, ..Default::default() };
            let snap = ctl.create_snapshot(req).await?.into_inner().snapshot;
            Ok(snap.as_ref().map(render::snapshot).unwrap_or(Value::Null))
        }
        ClientCommand::DeleteSnapshot { snapshot_id } => {
            let req = p::DeleteSnapshotRequest { snapshot_id: snapshot_id.clone(), ..Default::default() };
            ctl.delete_snapshot(req).await?;
            Ok(json!({"deleted": snapshot_id}))
        }
        ClientCommand::GetSnapshot { snapshot_id } => {
            let req = p::GetSnapshotRequest { snapshot_id, ..Default::default() };
            let snap = ctl.get_snapshot(req).await?.into_inner().snapshot;
            Ok(snap.as_ref().map(render::snapshot).unwrap_or(Value::Null))
        }
        ClientCommand::ListSnapshots { snapshot_id, source_volume_id, max_entries, starting_token } => {
            let mut token = starting_token;
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
        _ => Err(Status::internal("not a single-call command")),
    }
}

/// The content source of `create-volume --from-snapshot/--from-volume`.
pub fn content_source(snapshot: Option<String>, volume: Option<String>) -> Option<p::VolumeContentSource> {
    let r#type = match (snapshot, volume) {
        (Some(snapshot_id), _) => Type::Snapshot(SnapshotSource { snapshot_id }),
        (None, Some(volume_id)) => Type::Volume(VolumeSource { volume_id }),
        (None, None) => return None,
    };
    Some(p::VolumeContentSource { r#type: Some(r#type) })
}
