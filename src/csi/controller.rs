//! The Controller service: provisioning on this node (the provisioner runs per node, in
//! `--node-deployment` mode), listing with volume health, capacity, snapshots (`snapshot`),
//! restore and clone (`source`), and expansion (`expand`).
//!
//! Volume ids carry the owning node (see `volume_id`). A call about another node's volume finds
//! nothing here: NOT_FOUND, except DeleteVolume, which answers FAILED_PRECONDITION. Answering OK
//! would let the provisioner drop the PV while the data lives on elsewhere, and only the owning
//! node can really delete it. An id strata never makes (no `@node`) names no volume at all, so
//! deleting it succeeds, as the spec asks for unknown ids. ControllerExpandVolume is the
//! exception that needs no owner: it answers for any node's volume from the request alone.

use super::proto::controller_server::Controller;
use super::proto::controller_service_capability::{Rpc, Type, rpc};
use super::proto::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse, ControllerGetCapabilitiesRequest,
    ControllerGetCapabilitiesResponse, ControllerGetVolumeRequest, ControllerGetVolumeResponse,
    ControllerServiceCapability, CreateSnapshotRequest, CreateSnapshotResponse, CreateVolumeRequest,
    CreateVolumeResponse, DeleteSnapshotRequest, DeleteSnapshotResponse, DeleteVolumeRequest, DeleteVolumeResponse,
    GetCapacityRequest, GetCapacityResponse, GetSnapshotRequest, GetSnapshotResponse, ListSnapshotsRequest,
    ListSnapshotsResponse, ListVolumesRequest, ListVolumesResponse, ValidateVolumeCapabilitiesRequest,
    ValidateVolumeCapabilitiesResponse, controller_get_volume_response::VolumeStatus,
};
use super::provision::{condition, existing, quarantined_condition};
use super::volume_id::VolumeId;
use super::{Driver, convert, expand, require};
use tonic::{Request, Response, Status};

/// The controller RPCs strata advertises. SINGLE_NODE_MULTI_WRITER: volumes accept the
/// SINGLE_NODE_SINGLE_WRITER (one publication at a time) and SINGLE_NODE_MULTI_WRITER modes.
/// GET_SNAPSHOT (alpha in v1.12): GetSnapshot is served, and csi-test v5.5 tests it when it is
/// advertised.
const CAPABILITIES: [rpc::Type; 11] = [
    rpc::Type::CreateDeleteVolume,
    rpc::Type::ListVolumes,
    rpc::Type::GetCapacity,
    rpc::Type::GetVolume,
    rpc::Type::CreateDeleteSnapshot,
    rpc::Type::ListSnapshots,
    rpc::Type::GetSnapshot,
    rpc::Type::CloneVolume,
    rpc::Type::ExpandVolume,
    rpc::Type::VolumeCondition,
    rpc::Type::SingleNodeMultiWriter,
];

#[tonic::async_trait]
impl Controller for Driver {
    async fn create_volume(&self, req: Request<CreateVolumeRequest>) -> Result<Response<CreateVolumeResponse>, Status> {
        let r = req.into_inner();
        let id = match r.name.as_str() {
            "" => String::new(),
            name => VolumeId::for_name(name, &self.node_tag).to_string(),
        };
        self.rpc("CreateVolume", &id, async {
            let vol = self.create(r).await?;
            Ok(CreateVolumeResponse { volume: Some(convert::volume(&vol, &self.node_tag, &self.opts.node_id)) })
        })
        .await
    }

    async fn delete_volume(&self, req: Request<DeleteVolumeRequest>) -> Result<Response<DeleteVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("DeleteVolume", &r.volume_id, async {
            require(&r.volume_id, "volume_id")?;
            let Some(id) = VolumeId::parse(&r.volume_id) else {
                return Ok(DeleteVolumeResponse {}); // never a strata id: nothing to delete
            };
            if id.node_tag != self.node_tag {
                return Err(Status::failed_precondition(format!(
                    "volume {} lives on node {}; only that node can delete it",
                    r.volume_id, id.node_tag
                )));
            }
            self.quick(move |e| e.delete_volume(&id.local)).await?;
            Ok(DeleteVolumeResponse {})
        })
        .await
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let r = req.into_inner();
        let id = r.volume_id.clone();
        self.query("ValidateVolumeCapabilities", &id, self.validate(r)).await
    }

    async fn list_volumes(&self, req: Request<ListVolumesRequest>) -> Result<Response<ListVolumesResponse>, Status> {
        self.query("ListVolumes", "", self.list(req.into_inner())).await
    }

    async fn get_capacity(&self, req: Request<GetCapacityRequest>) -> Result<Response<GetCapacityResponse>, Status> {
        self.query("GetCapacity", "", self.capacity(req.into_inner())).await
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        let cap = |t: rpc::Type| ControllerServiceCapability { r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })) };
        self.query("ControllerGetCapabilities", "", async {
            Ok(ControllerGetCapabilitiesResponse { capabilities: CAPABILITIES.into_iter().map(cap).collect() })
        })
        .await
    }

    async fn controller_get_volume(
        &self,
        req: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        let r = req.into_inner();
        self.query("ControllerGetVolume", &r.volume_id, async {
            require(&r.volume_id, "volume_id")?;
            let local = self.local(&r.volume_id)?;
            let found = self
                .blocking(move |e| match existing(e, &local) {
                    Ok(vol) => Ok(Ok((vol, e.volume_condition(&local)?))),
                    Err(status) => e.quarantine_of(&local).map(Err).ok_or(status),
                })
                .await?;
            let (volume, cond) = match found {
                Ok((vol, cond)) => (convert::volume(&vol, &self.node_tag, &self.opts.node_id), cond),
                Err(q) => (self.quarantined_volume(&q), quarantined_condition(&q)),
            };
            Ok(ControllerGetVolumeResponse {
                volume: Some(volume),
                status: Some(VolumeStatus { published_node_ids: Vec::new(), volume_condition: Some(condition(cond)) }),
            })
        })
        .await
    }

    async fn create_snapshot(
        &self,
        req: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        let r = req.into_inner();
        let source = r.source_volume_id.clone();
        self.rpc("CreateSnapshot", &source, async {
            Ok(CreateSnapshotResponse { snapshot: Some(self.snapshot_create(r).await?) })
        })
        .await
    }

    async fn delete_snapshot(
        &self,
        req: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        let r = req.into_inner();
        let id = r.snapshot_id.clone();
        self.rpc("DeleteSnapshot", &id, async {
            self.snapshot_delete(r).await?;
            Ok(DeleteSnapshotResponse {})
        })
        .await
    }

    async fn list_snapshots(
        &self,
        req: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        self.query("ListSnapshots", "", self.snapshot_list(req.into_inner())).await
    }

    async fn get_snapshot(&self, req: Request<GetSnapshotRequest>) -> Result<Response<GetSnapshotResponse>, Status> {
        let r = req.into_inner();
        let id = r.snapshot_id.clone();
        self.query("GetSnapshot", &id, async {
            Ok(GetSnapshotResponse { snapshot: Some(self.snapshot_get(r).await?) })
        })
        .await
    }

    async fn controller_expand_volume(
        &self,
        req: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("ControllerExpandVolume", &r.volume_id, async { expand::controller_expand(&r) }).await
    }
}
