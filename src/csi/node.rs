//! The Node service: stage and publish volumes of this node, grow them (`expand`), report their
//! usage and health, and the node.

use super::proto::node_server::Node;
use super::proto::node_service_capability::{Rpc, Type, rpc};
use super::proto::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse,
    NodeGetInfoRequest, NodeGetInfoResponse, NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse,
    NodePublishVolumeRequest, NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse, NodeUnstageVolumeRequest,
    NodeUnstageVolumeResponse,
};
use super::{Driver, convert, ephemeral, require, required};
use crate::engine::encryption::StageKey;
use std::path::PathBuf;
use tonic::{Request, Response, Status};

/// The node RPCs strata implements; SINGLE_NODE_MULTI_WRITER as in the controller's list.
const CAPABILITIES: [rpc::Type; 5] = [
    rpc::Type::StageUnstageVolume,
    rpc::Type::GetVolumeStats,
    rpc::Type::ExpandVolume,
    rpc::Type::VolumeCondition,
    rpc::Type::SingleNodeMultiWriter,
];

#[tonic::async_trait]
impl Node for Driver {
    async fn node_stage_volume(
        &self,
        req: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let mut r = req.into_inner();
        // Out of the request (and its strings wiped) before anything can fail or log.
        let key = StageKey::take_csi(&mut r.secrets);
        self.rpc("NodeStageVolume", &r.volume_id, async {
            require(&r.volume_id, "volume_id")?;
            require(&r.staging_target_path, "staging_target_path")?;
            let cap = required(r.volume_capability.as_ref(), "volume_capability")?.clone();
            let local = self.local(&r.volume_id)?;
            let staging = PathBuf::from(&r.staging_target_path);
            self.quick(move |e| stage(e, &local, &staging, &cap, &key)).await?;
            Ok(NodeStageVolumeResponse {})
        })
        .await
    }

    async fn node_unstage_volume(
        &self,
        req: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("NodeUnstageVolume", &r.volume_id, async {
            require(&r.volume_id, "volume_id")?;
            require(&r.staging_target_path, "staging_target_path")?;
            let local = self.local(&r.volume_id)?;
            let staging = PathBuf::from(&r.staging_target_path);
            self.quick(move |e| e.unstage_volume(&local, &staging)).await?;
            Ok(NodeUnstageVolumeResponse {})
        })
        .await
    }

    async fn node_publish_volume(
        &self,
        req: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let r = req.into_inner();
        let id = r.volume_id.clone();
        self.rpc("NodePublishVolume", &id, async {
            require(&r.volume_id, "volume_id")?;
            require(&r.target_path, "target_path")?;
            required(r.volume_capability.as_ref(), "volume_capability")?;
            if ephemeral::requested(&r.volume_context) {
                return self.publish_ephemeral(r).await;
            }
            require(&r.staging_target_path, "staging_target_path")?;
            let local = self.local(&r.volume_id)?;
            self.quick(move |e| publish(e, &local, &r)).await?;
            Ok(NodePublishVolumeResponse {})
        })
        .await
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let r = req.into_inner();
        self.rpc("NodeUnpublishVolume", &r.volume_id, async {
            require(&r.volume_id, "volume_id")?;
            require(&r.target_path, "target_path")?;
            let target = PathBuf::from(&r.target_path);
            if !self.persistent(&r.volume_id) {
                return self.unpublish_ephemeral(&r.volume_id, target).await;
            }
            let local = self.local(&r.volume_id)?;
            self.quick(move |e| e.unpublish_volume(&local, &target)).await?;
            Ok(NodeUnpublishVolumeResponse {})
        })
        .await
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let r = req.into_inner();
        self.query("NodeGetVolumeStats", &r.volume_id, async {
            require(&r.volume_id, "volume_id")?;
            require(&r.volume_path, "volume_path")?;
            let local = self.local_or_ephemeral(&r.volume_id)?;
            let path = PathBuf::from(&r.volume_path);
            self.blocking(move |e| stats(e, &local, &path)).await
        })
        .await
    }

    async fn node_expand_volume(
        &self,
        req: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        let r = req.into_inner();
        let id = r.volume_id.clone();
        self.rpc("NodeExpandVolume", &id, self.node_expand(r)).await
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        let cap = |t: rpc::Type| NodeServiceCapability { r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })) };
        self.query("NodeGetCapabilities", "", async {
            Ok(NodeGetCapabilitiesResponse { capabilities: CAPABILITIES.into_iter().map(cap).collect() })
        })
        .await
    }

    async fn node_get_info(&self, _req: Request<NodeGetInfoRequest>) -> Result<Response<NodeGetInfoResponse>, Status> {
        self.query("NodeGetInfo", "", async {
            Ok(NodeGetInfoResponse {
                node_id: self.opts.node_id.clone(),
                max_volumes_per_node: self.opts.max_volumes_per_node.map_or(0, i64::from),
                accessible_topology: Some(convert::topology(&self.opts.node_id)),
            })
        })
        .await
    }
}

mod work;
use work::{publish, stage, stats};
