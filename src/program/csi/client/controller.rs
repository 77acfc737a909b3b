//! Client commands on volumes through the Controller service: create, delete, get, list,
//! capacity and expansion.

use super::args::{capability, range};
use super::render;
use crate::csi::convert;
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::{self as p};
use crate::program::csi::cli::CapArgs;
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::Channel;

type Controller = ControllerClient<Channel>;

/// CreateVolume; the answer is the new volume.
pub async fn create_volume(
    ctl: &mut Controller,
    name: String,
    capacity: p::CapacityRange,
    params: Vec<(String, String)>,
    on: Option<String>,
    source: Option<p::VolumeContentSource>,
    cap: &CapArgs,
) -> Result<Value, Status> {
    let req = p::CreateVolumeRequest {
        volume_content_source: source,
        name,
        capacity_range: Some(capacity),
        volume_capabilities: vec![capability(cap)],
        parameters: params.into_iter().collect(),
        accessibility_requirements: on
            .map(|n| p::TopologyRequirement { requisite: vec![convert::topology(&n)], preferred: vec![] }),
        ..Default::default()
    };
    let vol = ctl.create_volume(req).await?.into_inner().volume;
    Ok(vol.as_ref().map(render::volume).unwrap_or(Value::Null))
}

/// DeleteVolume; NOT_FOUND when the driver says no such volume existed.
pub async fn delete_volume(ctl: &mut Controller, volume_id: String) -> Result<Value, Status> {
    let absent = absent(ctl, &volume_id).await;
    ctl.delete_volume(p::DeleteVolumeRequest { volume_id: volume_id.clone(), ..Default::default() }).await?;
    match absent {
        Some(why) => Err(Status::not_found(format!("{why}; nothing was deleted"))),
        None => Ok(json!({"deleted": volume_id})),
    }
}

/// Why no volume `volume_id` exists, when the driver says so (ControllerGetVolume answers
/// NOT_FOUND). DeleteVolume answers OK for an unknown id, as the spec asks, so "deleted" would
/// claim what did not happen; its own error (another node's volume, say) still comes first. A
/// driver without ControllerGetVolume is not asked.
async fn absent(ctl: &mut Controller, volume_id: &str) -> Option<String> {
    let asked = ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id: volume_id.to_owned() }).await;
    match asked {
        Err(st) if st.code() == tonic::Code::NotFound => Some(st.message().to_owned()),
        _ => None,
    }
}

/// ControllerGetVolume: the volume with its condition.
pub async fn get_volume(ctl: &mut Controller, volume_id: String) -> Result<Value, Status> {
    let r = ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id }).await?.into_inner();
    let mut v = r.volume.as_ref().map(render::volume).unwrap_or(Value::Null);
    if let Some(c) = r.status.and_then(|s| s.volume_condition) {
        v["condition"] = render::condition(&c);
    }
    Ok(v)
}

/// ListVolumes: one page if `max_entries` is set, else every page.
pub async fn list_volumes(ctl: &mut Controller, max_entries: i32, mut token: String) -> Result<Value, Status> {
    let mut entries = Vec::new();
    loop {
        let page = ctl.list_volumes(p::ListVolumesRequest { max_entries, starting_token: token }).await?.into_inner();
        entries.extend(page.entries.iter().filter_map(listed));
        token = page.next_token;
        if max_entries != 0 || token.is_empty() {
            break;
        }
    }
    Ok(json!({"volumes": entries, "next_token": token}))
}

/// One ListVolumes entry: the volume, its condition and the nodes it is published on.
fn listed(e: &p::list_volumes_response::Entry) -> Option<Value> {
    let mut entry = render::volume(e.volume.as_ref()?);
    if let Some(status) = &e.status {
        if let Some(c) = &status.volume_condition {
            entry["condition"] = render::condition(c);
        }
        if !status.published_node_ids.is_empty() {
            entry["published_node_ids"] = json!(status.published_node_ids);
        }
    }
    Some(entry)
}

/// GetCapacity for a capability and parameters, on a node when one is named.
pub async fn capacity(
    ctl: &mut Controller,
    params: Vec<(String, String)>,
    on: Option<String>,
    cap: &CapArgs,
) -> Result<Value, Status> {
    let req = p::GetCapacityRequest {
        volume_capabilities: vec![capability(cap)],
        parameters: params.into_iter().collect(),
        accessible_topology: on.map(|n| convert::topology(&n)),
    };
    Ok(render::capacity(&ctl.get_capacity(req).await?.into_inner()))
}

/// ControllerExpandVolume to `size` bytes.
pub async fn expand(ctl: &mut Controller, volume_id: String, size: u64) -> Result<Value, Status> {
    let req = p::ControllerExpandVolumeRequest {
        volume_id,
        capacity_range: Some(range(Some(size), None)),
        ..Default::default()
    };
    let r = ctl.controller_expand_volume(req).await?.into_inner();
    Ok(json!({"capacity_bytes": r.capacity_bytes, "node_expansion_required": r.node_expansion_required}))
}
