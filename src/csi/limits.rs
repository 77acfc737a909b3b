//! The bound on what a request may carry in its string maps (parameters, volume context,
//! publish context, mutable parameters, secrets): 64 KiB in all, checked as the request is
//! decoded, before any handler could store or echo it. The refusal names the maps and their
//! sizes, never their content.

use super::proto as p;
use std::collections::HashMap;
use tonic::Status;

/// Bytes (keys plus values) all the maps of one request may hold together.
pub const MAX_MAP_BYTES: usize = 64 * 1024;

/// A request's string maps, by field name.
pub trait MapFields {
    fn maps(&self) -> Vec<(&'static str, &HashMap<String, String>)>;
}

/// Implements [`MapFields`] for each request type with the map fields it lists (none for most).
macro_rules! map_fields {
    ($($ty:ident: [$($field:ident),*];)*) => {$(
        impl MapFields for p::$ty {
            fn maps(&self) -> Vec<(&'static str, &HashMap<String, String>)> {
                vec![$((stringify!($field), &self.$field)),*]
            }
        }
    )*};
}

map_fields! {
    GetPluginInfoRequest: [];
    GetPluginCapabilitiesRequest: [];
    ProbeRequest: [];
    CreateVolumeRequest: [parameters, mutable_parameters, secrets];
    DeleteVolumeRequest: [secrets];
    ControllerPublishVolumeRequest: [volume_context, secrets];
    ControllerUnpublishVolumeRequest: [secrets];
    ValidateVolumeCapabilitiesRequest: [parameters, mutable_parameters, volume_context, secrets];
    ListVolumesRequest: [];
    ControllerGetVolumeRequest: [];
    ControllerModifyVolumeRequest: [mutable_parameters, secrets];
    GetCapacityRequest: [parameters];
    ControllerGetCapabilitiesRequest: [];
    CreateSnapshotRequest: [parameters, secrets];
    DeleteSnapshotRequest: [secrets];
    ListSnapshotsRequest: [secrets];
    GetSnapshotRequest: [secrets];
    ControllerExpandVolumeRequest: [secrets];
    NodeStageVolumeRequest: [publish_context, volume_context, secrets];
    NodeUnstageVolumeRequest: [];
    NodePublishVolumeRequest: [publish_context, volume_context, secrets];
    NodeUnpublishVolumeRequest: [];
    NodeGetVolumeStatsRequest: [];
    NodeGetCapabilitiesRequest: [];
    NodeGetInfoRequest: [];
    NodeExpandVolumeRequest: [secrets];
    GroupControllerGetCapabilitiesRequest: [];
    CreateVolumeGroupSnapshotRequest: [parameters, secrets];
    DeleteVolumeGroupSnapshotRequest: [secrets];
    GetVolumeGroupSnapshotRequest: [secrets];
    GetMetadataAllocatedRequest: [secrets];
    GetMetadataDeltaRequest: [secrets];
}

/// INVALID_ARGUMENT if the request's maps hold more than [`MAX_MAP_BYTES`] together.
pub fn check(request: &impl MapFields) -> Result<(), Status> {
    let maps = request.maps();
    let size = |m: &HashMap<String, String>| m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let total: usize = maps.iter().map(|(_, m)| size(m)).sum();
    if total <= MAX_MAP_BYTES {
        return Ok(());
    }
    let parts: Vec<String> = maps
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(name, m)| format!("{name} {} bytes in {} entries", size(m), m.len()))
        .collect();
    Err(Status::invalid_argument(format!(
        "the request's maps hold {total} bytes, more than the {MAX_MAP_BYTES} allowed in all ({})",
        parts.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_over_the_bound_are_refused_by_name_and_size_only() {
        let mut r = p::CreateVolumeRequest { name: "pvc-1".into(), ..Default::default() };
        r.parameters.insert("backend".into(), "x".repeat(40 * 1024));
        r.secrets.insert("password".into(), "hunter2".repeat(4000));
        check(&p::CreateVolumeRequest { secrets: r.secrets.clone(), ..Default::default() }).unwrap();
        let err = check(&r).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let msg = err.message();
        assert!(msg.contains("parameters 40967 bytes in 1 entries"), "{msg}");
        assert!(msg.contains("secrets 28008 bytes in 1 entries"), "{msg}");
        assert!(!msg.contains("hunter2") && !msg.contains("xxx") && !msg.contains("password"), "{msg}");
        assert!(msg.len() < 256, "{msg}");
    }

    #[test]
    fn exactly_the_bound_passes() {
        let mut r = p::NodeStageVolumeRequest::default();
        r.volume_context.insert("k".into(), "v".repeat(MAX_MAP_BYTES - 1));
        check(&r).unwrap();
        r.publish_context.insert("a".into(), String::new());
        assert!(check(&r).is_err());
    }
}
