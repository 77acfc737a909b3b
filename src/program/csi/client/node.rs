//! Client commands through the Node service: stage, unstage, publish, unpublish, stats and
//! expansion on the node.

use super::args::{capability, range, secrets, text};
use super::render;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::{self as p};
use crate::program::csi::cli::CapArgs;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tonic::Status;
use tonic::transport::Channel;

type Node = NodeClient<Channel>;

/// NodeStageVolume at `staging_path`, with stage secrets read from files.
pub async fn stage(
    node: &mut Node,
    volume_id: String,
    staging_path: &Path,
    secret_files: &[(String, String)],
    cap: &CapArgs,
) -> Result<Value, Status> {
    node.node_stage_volume(p::NodeStageVolumeRequest {
        volume_id: volume_id.clone(),
        staging_target_path: text(staging_path),
        volume_capability: Some(capability(cap)),
        secrets: secrets(secret_files)?,
        ..Default::default()
    })
    .await?;
    Ok(json!({"staged": volume_id, "staging_path": text(staging_path)}))
}

/// NodeUnstageVolume.
pub async fn unstage(node: &mut Node, volume_id: String, staging_path: &Path) -> Result<Value, Status> {
    node.node_unstage_volume(p::NodeUnstageVolumeRequest {
        volume_id: volume_id.clone(),
        staging_target_path: text(staging_path),
    })
    .await?;
    Ok(json!({"unstaged": volume_id}))
}

/// What NodePublishVolume is asked to do: the target, where the volume was staged (none for an
/// ephemeral inline volume), read-only or not, and the volume context.
#[derive(Debug)]
pub struct Publication {
    pub target_path: PathBuf,
    pub staging_path: Option<PathBuf>,
    pub readonly: bool,
    pub context: Vec<(String, String)>,
}

/// NodePublishVolume.
pub async fn publish(node: &mut Node, volume_id: String, to: Publication, cap: &CapArgs) -> Result<Value, Status> {
    let Publication { target_path, staging_path, readonly, context } = to;
    node.node_publish_volume(p::NodePublishVolumeRequest {
        volume_id: volume_id.clone(),
        staging_target_path: staging_path.as_deref().map(text).unwrap_or_default(),
        target_path: text(&target_path),
        volume_capability: Some(capability(cap)),
        readonly,
        volume_context: context.into_iter().collect::<HashMap<_, _>>(),
        ..Default::default()
    })
    .await?;
    Ok(json!({"published": volume_id, "target_path": text(&target_path), "readonly": readonly}))
}

/// NodeUnpublishVolume.
pub async fn unpublish(node: &mut Node, volume_id: String, target_path: &Path) -> Result<Value, Status> {
    node.node_unpublish_volume(p::NodeUnpublishVolumeRequest {
        volume_id: volume_id.clone(),
        target_path: text(target_path),
    })
    .await?;
    Ok(json!({"unpublished": volume_id}))
}

/// NodeGetVolumeStats of the volume at `path`.
pub async fn stats(node: &mut Node, volume_id: String, path: &Path) -> Result<Value, Status> {
    let req = p::NodeGetVolumeStatsRequest { volume_id, volume_path: text(path), staging_target_path: String::new() };
    Ok(render::stats(&node.node_get_volume_stats(req).await?.into_inner()))
}

/// NodeExpandVolume at `path`, to `size` bytes when given.
pub async fn expand(node: &mut Node, volume_id: String, path: &Path, size: Option<u64>) -> Result<Value, Status> {
    let req = p::NodeExpandVolumeRequest {
        volume_id,
        volume_path: text(path),
        capacity_range: size.map(|s| range(Some(s), None)),
        ..Default::default()
    };
    let r = node.node_expand_volume(req).await?.into_inner();
    Ok(json!({"capacity_bytes": r.capacity_bytes}))
}
