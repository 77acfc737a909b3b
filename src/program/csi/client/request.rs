//! Builds the request of each single-call volume command from its arguments and sends it;
//! snapshot and expansion commands are in `data`.

use super::{data, render};
use crate::csi::convert::{self, i64_of};
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::volume_capability::access_mode::Mode;
use crate::csi::proto::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use crate::csi::proto::{self as p, VolumeCapability};
use crate::program::csi::cli::{AccessModeArg, CapArgs, ClientCommand};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use tonic::Status;
use tonic::transport::Channel;

pub async fn single(
    ctl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    cmd: ClientCommand,
) -> Result<Value, Status> {
    match cmd {
        ClientCommand::CreateVolume { name, size, limit, params, node: on, from_snapshot, from_volume, cap } => {
            let req = p::CreateVolumeRequest {
                volume_content_source: data::content_source(from_snapshot, from_volume),
                name,
                capacity_range: Some(p::CapacityRange {
                    required_bytes: size.map_or(0, i64_of),
                    limit_bytes: limit.map_or(0, i64_of),
                }),
                volume_capabilities: vec![capability(&cap)],
                parameters: params.into_iter().collect(),
                accessibility_requirements: on
                    .map(|n| p::TopologyRequirement { requisite: vec![convert::topology(&n)], preferred: vec![] }),
                ..Default::default()
            };
            let vol = ctl.create_volume(req).await?.into_inner().volume;
            Ok(vol.as_ref().map(render::volume).unwrap_or(Value::Null))
        }
        ClientCommand::DeleteVolume { volume_id } => {
            let absent = absent(ctl, &volume_id).await;
            ctl.delete_volume(p::DeleteVolumeRequest { volume_id: volume_id.clone(), ..Default::default() }).await?;
            match absent {
                Some(why) => Err(Status::not_found(format!("{why}; nothing was deleted"))),
                None => Ok(json!({"deleted": volume_id})),
            }
        }
        ClientCommand::Capacity { params, node: on, cap } => {
            let req = p::GetCapacityRequest {
                volume_capabilities: vec![capability(&cap)],
                parameters: params.into_iter().collect(),
                accessible_topology: on.map(|n| convert::topology(&n)),
            };
            Ok(render::capacity(&ctl.get_capacity(req).await?.into_inner()))
        }
        ClientCommand::Stage { volume_id, staging_path, secret_files, cap } => {
            node.node_stage_volume(p::NodeStageVolumeRequest {
                volume_id: volume_id.clone(),
                staging_target_path: text(&staging_path),
                volume_capability: Some(capability(&cap)),
                secrets: secrets(&secret_files)?,
                ..Default::default()
            })
            .await?;
            Ok(json!({"staged": volume_id, "staging_path": text(&staging_path)}))
        }
        ClientCommand::Unstage { volume_id, staging_path } => {
            node.node_unstage_volume(p::NodeUnstageVolumeRequest {
                volume_id: volume_id.clone(),
                staging_target_path: text(&staging_path),
            })
            .await?;
            Ok(json!({"unstaged": volume_id}))
        }
        ClientCommand::Publish { volume_id, target_path, staging_path, readonly, context, cap } => {
            node.node_publish_volume(p::NodePublishVolumeRequest {
                volume_id: volume_id.clone(),
                staging_target_path: staging_path.as_deref().map(text).unwrap_or_default(),
                target_path: text(&target_path),
                volume_capability: Some(capability(&cap)),
                readonly,
                volume_context: context.into_iter().collect::<HashMap<_, _>>(),
                ..Default::default()
            })
            .await?;
            Ok(json!({"published": volume_id, "target_path": text(&target_path), "readonly": readonly}))
        }
        ClientCommand::Unpublish { volume_id, target_path } => {
            node.node_unpublish_volume(p::NodeUnpublishVolumeRequest {
                volume_id: volume_id.clone(),
                target_path: text(&target_path),
            })
            .await?;
            Ok(json!({"unpublished": volume_id}))
        }
        ClientCommand::Stats { volume_id, path } => {
            let r = node
                .node_get_volume_stats(p::NodeGetVolumeStatsRequest {
                    volume_id,
                    volume_path: text(&path),
                    staging_target_path: String::new(),
                })
                .await?
                .into_inner();
            Ok(render::stats(&r))
        }
        other => data::single(ctl, node, other).await,
    }
}

/// Stage secrets read from files (`NAME=FILE`); the values go only into the request.
fn secrets(files: &[(String, String)]) -> Result<HashMap<String, String>, Status> {
    files
        .iter()
        .map(|(name, file)| match std::fs::read_to_string(file) {
            Ok(value) => Ok((name.clone(), value)),
            Err(e) => Err(Status::invalid_argument(format!("--secret-file {name}={file}: {e}"))),
        })
        .collect()
}

/// The capability the arguments describe.
pub fn capability(cap: &CapArgs) -> VolumeCapability {
    let access_type = if cap.block {
        AccessType::Block(BlockVolume {})
    } else {
        AccessType::Mount(MountVolume {
            fs_type: cap.fs_type.clone(),
            mount_flags: cap.mount_flags.clone(),
            volume_mount_group: String::new(),
        })
    };
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode(cap.access_mode) as i32 }),
        access_type: Some(access_type),
    }
}

fn mode(m: AccessModeArg) -> Mode {
    match m {
        AccessModeArg::SingleNodeWriter => Mode::SingleNodeWriter,
        AccessModeArg::SingleNodeReaderOnly => Mode::SingleNodeReaderOnly,
        AccessModeArg::SingleNodeSingleWriter => Mode::SingleNodeSingleWriter,
        AccessModeArg::SingleNodeMultiWriter => Mode::SingleNodeMultiWriter,
        AccessModeArg::MultiNodeReaderOnly => Mode::MultiNodeReaderOnly,
        AccessModeArg::MultiNodeSingleWriter => Mode::MultiNodeSingleWriter,
        AccessModeArg::MultiNodeMultiWriter => Mode::MultiNodeMultiWriter,
    }
}

/// Why no volume `volume_id` exists, when the driver says so (ControllerGetVolume answers
/// NOT_FOUND). DeleteVolume answers OK for an unknown id, as the spec asks, so "deleted" would
/// claim what did not happen; its own error (another node's volume, say) still comes first. A
/// driver without ControllerGetVolume is not asked.
async fn absent(ctl: &mut ControllerClient<Channel>, volume_id: &str) -> Option<String> {
    let asked = ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id: volume_id.to_owned() }).await;
    match asked {
        Err(st) if st.code() == tonic::Code::NotFound => Some(st.message().to_owned()),
        _ => None,
    }
}

pub fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
