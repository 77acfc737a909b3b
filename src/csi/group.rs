//! The GroupController service: volume group snapshots of this node's volumes, cut at one
//! instant (see `engine::groups`). A group id has the shape of a snapshot id,
//! `<engine id>@<node tag>`, from the group's CSI name; its members are ordinary snapshots that
//! carry the group's id.

use super::convert::{K8S_PREFIX, invalid};
use super::copies::{Pending, SNAPSHOT_WAIT};
use super::proto::group_controller_server::GroupController;
use super::proto::group_controller_service_capability::{Rpc, Type, rpc};
use super::proto::{
    CreateVolumeGroupSnapshotRequest, CreateVolumeGroupSnapshotResponse, DeleteVolumeGroupSnapshotRequest,
    DeleteVolumeGroupSnapshotResponse, GetVolumeGroupSnapshotRequest, GetVolumeGroupSnapshotResponse,
    GroupControllerGetCapabilitiesRequest, GroupControllerGetCapabilitiesResponse, GroupControllerServiceCapability,
    VolumeGroupSnapshot,
};
use super::volume_id::SnapshotId;
use super::{Driver, require};
use crate::engine::{CopyJob, Engine, GroupRequest, GroupView, quote};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl GroupController for Driver {
    async fn group_controller_get_capabilities(
        &self,
        _req: Request<GroupControllerGetCapabilitiesRequest>,
    ) -> Result<Response<GroupControllerGetCapabilitiesResponse>, Status> {
        let cap = GroupControllerServiceCapability {
            r#type: Some(Type::Rpc(Rpc { r#type: rpc::Type::CreateDeleteGetVolumeGroupSnapshot as i32 })),
        };
        self.query("GroupControllerGetCapabilities", "", async {
            Ok(GroupControllerGetCapabilitiesResponse { capabilities: vec![cap] })
        })
        .await
    }

    async fn create_volume_group_snapshot(
        &self,
        req: Request<CreateVolumeGroupSnapshotRequest>,
    ) -> Result<Response<CreateVolumeGroupSnapshotResponse>, Status> {
        let r = req.into_inner();
        self.rpc("CreateVolumeGroupSnapshot", "", async {
            Ok(CreateVolumeGroupSnapshotResponse { group_snapshot: Some(self.group_create(r).await?) })
        })
        .await
    }

    async fn delete_volume_group_snapshot(
        &self,
        req: Request<DeleteVolumeGroupSnapshotRequest>,
    ) -> Result<Response<DeleteVolumeGroupSnapshotResponse>, Status> {
        let r = req.into_inner();
        let id = r.group_snapshot_id.clone();
        self.rpc("DeleteVolumeGroupSnapshot", &id, async {
            require(&r.group_snapshot_id, "group_snapshot_id")?;
            let Some(id) = SnapshotId::parse(&r.group_snapshot_id) else {
                return Ok(DeleteVolumeGroupSnapshotResponse {}); // never a strata id: nothing to delete
            };
            if id.node_tag != self.node_tag {
                return Err(Status::failed_precondition(format!(
                    "group snapshot {} lives on node {}; only that node can delete it",
                    r.group_snapshot_id, id.node_tag
                )));
            }
            let members = self.member_ids(&r.snapshot_ids)?;
            self.blocking(move |e| e.delete_group(&id.local, &members)).await?;
            Ok(DeleteVolumeGroupSnapshotResponse {})
        })
        .await
    }

    async fn get_volume_group_snapshot(
        &self,
        req: Request<GetVolumeGroupSnapshotRequest>,
    ) -> Result<Response<GetVolumeGroupSnapshotResponse>, Status> {
        let r = req.into_inner();
        let id = r.group_snapshot_id.clone();
        self.query("GetVolumeGroupSnapshot", &id, async {
            require(&r.group_snapshot_id, "group_snapshot_id")?;
            let not_found =
                || Status::not_found(format!("group snapshot {} does not exist", quote(&r.group_snapshot_id)));
            let id = SnapshotId::parse(&r.group_snapshot_id)
                .filter(|i| i.node_tag == self.node_tag)
                .ok_or_else(not_found)?;
            let members = self.member_ids(&r.snapshot_ids)?;
            let found = self.blocking(move |e| e.get_group(&id.local, &members)).await?;
            let view = found.ok_or_else(not_found)?;
            Ok(GetVolumeGroupSnapshotResponse { group_snapshot: Some(self.group_of(&view)) })
        })
        .await
    }
}

impl Driver {
    async fn group_create(&self, r: CreateVolumeGroupSnapshotRequest) -> Result<VolumeGroupSnapshot, Status> {
        require(&r.name, "name")?;
        if r.source_volume_ids.is_empty() {
            return Err(invalid("source_volume_ids is required".into()));
        }
        if let Some(k) = r.parameters.keys().find(|k| !k.starts_with(K8S_PREFIX)) {
            return Err(invalid(format!(
                "unknown group snapshot parameter {}; strata takes none but {K8S_PREFIX}*",
                quote(k)
            )));
        }
        let volumes = r.source_volume_ids.iter().map(|v| self.local(v)).collect::<Result<Vec<_>, _>>()?;
        let req = GroupRequest { id: SnapshotId::for_name(&r.name, &self.node_tag).local, name: r.name, volumes };
        let start = std::sync::Arc::new(move |e: &Engine| start_group(e, &req));
        let group = self.with_copy(start, SNAPSHOT_WAIT).await?;
        Ok(self.group_of(&group.0))
    }

    /// The engine ids of the member snapshot ids a request names; a mismatch (ids of other
    /// nodes, or no strata ids) is INVALID_ARGUMENT, as the spec asks.
    fn member_ids(&self, ids: &[String]) -> Result<Vec<String>, Status> {
        ids.iter()
            .map(|s| match SnapshotId::parse(s) {
                Some(id) if id.node_tag == self.node_tag => Ok(id.local),
                _ => Err(invalid(format!("snapshot {} is not a member of a group snapshot on this node", quote(s)))),
            })
            .collect()
    }

    /// A group as CSI's: ready when every member is.
    fn group_of(&self, (g, snaps): &GroupView) -> VolumeGroupSnapshot {
        VolumeGroupSnapshot {
            group_snapshot_id: SnapshotId::new(&g.id, &self.node_tag).to_string(),
            snapshots: snaps.iter().map(|s| self.snapshot_of(s)).collect(),
            creation_time: Some(prost_types::Timestamp {
                seconds: i64::try_from(g.created_unix).unwrap_or(i64::MAX),
                nanos: i32::try_from(g.created_nanos).unwrap_or(0),
            }),
            ready_to_use: snaps.len() == g.snapshots.len() && snaps.iter().all(|s| s.ready()),
        }
    }
}

/// A group under way while any member's copy is (the first such member is waited for; the
/// retry reports the rest).
struct Started(GroupView);

impl Pending for Started {
    fn pending(&self) -> Option<crate::engine::CopyKey> {
        self.0.1.iter().find_map(|s| s.pending())
    }
}

fn start_group(engine: &Engine, req: &GroupRequest) -> Result<(Started, Vec<CopyJob>), Status> {
    let (view, jobs) = engine.start_group(req)?;
    Ok((Started(view), jobs))
}
