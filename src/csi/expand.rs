//! Volume expansion, in two halves.
//!
//! ControllerExpandVolume answers from the request and the volume id alone. The central
//! external-resizer has no per-node mode, so it may reach strata-csi on any node, or the
//! stateless instance of the controller Deployment; none of them may look at local state. It
//! checks the id's form and the capacity range, and answers `capacity_bytes = required_bytes`
//! with `node_expansion_required`: the owning node does the work.
//!
//! NodeExpandVolume, on the owning node, grows the storage (image file and loop device, qgroup
//! limit) and the filesystem where the volume is staged. When the filesystem cannot grow while a
//! pod uses it (ext4 without CAP_SYS_RESOURCE), the storage has grown and the capacity is
//! recorded, and the answer is FAILED_PRECONDITION, the spec's "volume in use": kubelet then
//! stops retrying while the volume stays mounted without blocking the mount, and calls again
//! after the next stage, which grows the filesystem offline. OK there would claim a size the pod
//! cannot see.

use super::convert::{self, i64_of, invalid};
use super::proto::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, NodeExpandVolumeRequest, NodeExpandVolumeResponse,
    VolumeCapability,
};
use super::provision::existing;
use super::volume_id::VolumeId;
use super::{Driver, require, required};
use crate::engine::{Engine, quote_path};
use std::path::{Path, PathBuf};
use tonic::Status;

/// ControllerExpandVolume: validation only, never local state.
pub fn controller_expand(r: &ControllerExpandVolumeRequest) -> Result<ControllerExpandVolumeResponse, Status> {
    require(&r.volume_id, "volume_id")?;
    let (bytes, _limit) = convert::bounds(Some(required(r.capacity_range.as_ref(), "capacity_range")?))?;
    if bytes == 0 {
        return Err(invalid("capacity_range.required_bytes is required: the volume grows to exactly that".into()));
    }
    if VolumeId::parse(&r.volume_id).is_none() {
        return Err(super::not_a_volume_id(&r.volume_id));
    }
    if let Some(cap) = &r.volume_capability {
        check_mode(cap)?;
    }
    Ok(ControllerExpandVolumeResponse { capacity_bytes: i64_of(bytes), node_expansion_required: true })
}

/// INVALID_ARGUMENT for a capability no strata volume serves (whatever its backend).
fn check_mode(cap: &VolumeCapability) -> Result<(), Status> {
    let mode = convert::mode(cap);
    if !convert::SINGLE_NODE_MODES.contains(&mode) || cap.access_type.is_none() {
        return Err(invalid(format!(
            "volume_capability (access mode {}) is not one a node-local volume serves",
            mode.as_str_name()
        )));
    }
    Ok(())
}

impl Driver {
    pub(super) async fn node_expand(&self, r: NodeExpandVolumeRequest) -> Result<NodeExpandVolumeResponse, Status> {
        require(&r.volume_id, "volume_id")?;
        require(&r.volume_path, "volume_path")?;
        let local = self.local(&r.volume_id)?;
        let (bytes, limit) = convert::bounds(r.capacity_range.as_ref())?;
        let path = PathBuf::from(&r.volume_path);
        let cap = r.volume_capability;
        let capacity = self.blocking(move |e| grow(e, &local, &path, bytes, limit, cap.as_ref())).await?;
        Ok(NodeExpandVolumeResponse { capacity_bytes: i64_of(capacity) })
    }
}

/// Grows volume `local` to `bytes` (aligned for its backend; 0 keeps its size and only finishes
/// a pending filesystem growth) and returns its capacity.
fn grow(
    e: &Engine,
    local: &str,
    path: &Path,
    bytes: u64,
    limit: u64,
    cap: Option<&VolumeCapability>,
) -> Result<u64, Status> {
    let vol = existing(e, local)?;
    if let Some(cap) = cap {
        convert::check_capability(cap, &convert::wanted_of(&vol)).map_err(invalid)?;
    }
    if !path.exists() {
        return Err(Status::not_found(format!("volume {local}: volume_path {} does not exist", quote_path(path))));
    }
    let wanted = crate::engine::size::for_growth(vol.backend, bytes, limit);
    if limit != 0 && wanted.max(vol.capacity) > limit {
        return Err(Status::out_of_range(format!(
            "volume {local} has {} bytes; it cannot fit a limit of {limit} bytes (volumes never shrink)",
            vol.capacity
        )));
    }
    Ok(e.expand_volume(local, wanted)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csi::proto::CapacityRange;
    use crate::csi::proto::volume_capability::access_mode::Mode;
    use crate::csi::proto::volume_capability::{AccessMode, AccessType, MountVolume};
    use tonic::Code;

    fn req(id: &str, required: i64, limit: i64) -> ControllerExpandVolumeRequest {
        ControllerExpandVolumeRequest {
            volume_id: id.into(),
            capacity_range: Some(CapacityRange { required_bytes: required, limit_bytes: limit }),
            ..Default::default()
        }
    }

    #[test]
    fn any_nodes_volume_is_answered_from_the_request_alone() {
        for id in ["pvc-1@node-a", "pvc-1@node-b", "x--0123456789abcdef0123456789abcdef@n--0123456789abcdef"] {
            let r = controller_expand(&req(id, 2 << 30, 0)).unwrap();
            assert_eq!((r.capacity_bytes, r.node_expansion_required), (2 << 30, true), "{id}");
        }
        let mut with_cap = req("pvc-1@node-a", 5000, 8192);
        with_cap.volume_capability = Some(VolumeCapability {
            access_mode: Some(AccessMode { mode: Mode::SingleNodeSingleWriter as i32 }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        });
        assert_eq!(controller_expand(&with_cap).unwrap().capacity_bytes, 5000, "exactly the required bytes");
    }

    #[test]
    fn bad_requests_get_the_spec_codes() {
        let code = |r: ControllerExpandVolumeRequest| controller_expand(&r).unwrap_err().code();
        assert_eq!(code(req("", 1, 0)), Code::InvalidArgument);
        assert_eq!(
            code(ControllerExpandVolumeRequest { volume_id: "v@n".into(), ..Default::default() }),
            Code::InvalidArgument
        );
        assert_eq!(code(req("v@n", 0, 0)), Code::InvalidArgument);
        assert_eq!(code(req("v@n", 10, 5)), Code::InvalidArgument);
        assert_eq!(code(req("v@n", -1, 0)), Code::InvalidArgument);
        assert_eq!(code(req("fake-vol-id", 1, 0)), Code::NotFound);
        assert_eq!(code(req("../x@n", 1, 0)), Code::NotFound);
        let mut multi = req("v@n", 1, 0);
        multi.volume_capability = Some(VolumeCapability {
            access_mode: Some(AccessMode { mode: Mode::MultiNodeMultiWriter as i32 }),
            access_type: Some(AccessType::Mount(MountVolume::default())),
        });
        assert_eq!(code(multi), Code::InvalidArgument);
    }
}
