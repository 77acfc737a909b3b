//! One CSI endpoint as the harness drives it: volumes of a class, kubelet-like staging and target
//! paths, and the timed node cycle (stage, publish, unpublish, unstage).

use super::{Error, Result};
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::node_service_capability::{Type, rpc};
use crate::csi::proto::volume_capability::access_mode::Mode;
use crate::csi::proto::volume_capability::{AccessMode, AccessType, MountVolume};
use crate::csi::proto::{self as p, VolumeCapability};
use crate::csi::server::Endpoint;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A CSI endpoint under test.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub endpoint: Endpoint,
    pub channel: Channel,
    /// The server's process, for its RSS.
    pub pid: Option<u32>,
    pub staging_dir: PathBuf,
    pub target_dir: PathBuf,
    /// Whether the node advertises STAGE_UNSTAGE_VOLUME (kubelet skips staging otherwise).
    pub stages: bool,
    /// Names of this run's volumes start with this.
    pub prefix: String,
}

/// A kind of volume: StorageClass parameters, the capability's fs type, and the size.
#[derive(Debug, Clone)]
pub struct Class {
    pub label: String,
    pub params: HashMap<String, String>,
    pub fs_type: String,
    pub bytes: i64,
}

/// A volume and where kubelet would stage and publish it.
#[derive(Debug, Clone)]
pub struct Vol {
    pub id: String,
    pub staging: PathBuf,
    pub target: PathBuf,
}

/// Durations of the four node calls of one cycle.
pub type Cycle = [Duration; 4];

impl Target {
    /// Asks the node whether it stages.
    pub async fn probe_stages(&mut self) -> Result<()> {
        let caps = NodeClient::new(self.channel.clone())
            .node_get_capabilities(p::NodeGetCapabilitiesRequest {})
            .await
            .map_err(Error::rpc("NodeGetCapabilities"))?
            .into_inner();
        let stage = rpc::Type::StageUnstageVolume as i32;
        self.stages = caps.capabilities.iter().any(|c| matches!(&c.r#type, Some(Type::Rpc(r)) if r.r#type == stage));
        Ok(())
    }

    pub fn name(&self, what: &str, i: usize) -> String {
        format!("{}-{what}-{i}", self.prefix)
    }

    pub async fn create(&self, class: &Class, name: &str) -> Result<String> {
        let req = p::CreateVolumeRequest {
            name: name.to_owned(),
            capacity_range: Some(p::CapacityRange { required_bytes: class.bytes, limit_bytes: 0 }),
            volume_capabilities: vec![capability(class)],
            parameters: class.params.clone(),
            ..Default::default()
        };
        let mut ctl = ControllerClient::new(self.channel.clone());
        let vol = ctl.create_volume(req).await.map_err(Error::rpc(format!("CreateVolume {name}")))?.into_inner();
        vol.volume.map(|v| v.volume_id).ok_or_else(|| Error::Setup(format!("CreateVolume {name}: no volume")))
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        let req = p::DeleteVolumeRequest { volume_id: id.to_owned(), ..Default::default() };
        let mut ctl = ControllerClient::new(self.channel.clone());
        ctl.delete_volume(req).await.map_err(Error::rpc(format!("DeleteVolume {id}")))?;
        Ok(())
    }

    /// Makes the directories kubelet makes before it calls the node (not timed): the staging
    /// directory and the target's parent.
    pub fn place(&self, id: String, name: &str) -> Result<Vol> {
        let staging = self.staging_dir.join(name).join("globalmount");
        let parent = self.target_dir.join(name);
        for dir in [&staging, &parent] {
            std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        Ok(Vol { id, staging, target: parent.join("mount") })
    }

    /// Creates a volume of `class` and places it (not timed).
    pub async fn make(&self, class: &Class, name: &str) -> Result<Vol> {
        let id = self.create(class, name).await?;
        self.place(id, name)
    }

    /// NodeStageVolume, when the node stages.
    pub async fn stage(&self, node: &mut NodeClient<Channel>, class: &Class, v: &Vol) -> Result<()> {
        if !self.stages {
            return Ok(());
        }
        let req = p::NodeStageVolumeRequest {
            volume_id: v.id.clone(),
            staging_target_path: text(&v.staging),
            volume_capability: Some(capability(class)),
            ..Default::default()
        };
        node.node_stage_volume(req).await.map_err(Error::rpc(format!("NodeStageVolume {}", v.id)))?;
        Ok(())
    }

    /// NodeUnstageVolume, when the node stages.
    pub async fn unstage(&self, node: &mut NodeClient<Channel>, v: &Vol) -> Result<()> {
        if !self.stages {
            return Ok(());
        }
        let req = p::NodeUnstageVolumeRequest { volume_id: v.id.clone(), staging_target_path: text(&v.staging) };
        node.node_unstage_volume(req).await.map_err(Error::rpc(format!("NodeUnstageVolume {}", v.id)))?;
        Ok(())
    }

    /// Stage and publish; returns their durations.
    pub async fn up(&self, node: &mut NodeClient<Channel>, class: &Class, v: &Vol) -> Result<[Duration; 2]> {
        let t = Instant::now();
        self.stage(node, class, v).await?;
        let staged = t.elapsed();
        let req = p::NodePublishVolumeRequest {
            volume_id: v.id.clone(),
            staging_target_path: if self.stages { text(&v.staging) } else { String::new() },
            target_path: text(&v.target),
            volume_capability: Some(capability(class)),
            ..Default::default()
        };
        node.node_publish_volume(req).await.map_err(Error::rpc(format!("NodePublishVolume {}", v.id)))?;
        Ok([staged, t.elapsed() - staged])
    }

    /// Unpublish and unstage; returns their durations.
    pub async fn down(&self, node: &mut NodeClient<Channel>, v: &Vol) -> Result<[Duration; 2]> {
        let t = Instant::now();
        let req = p::NodeUnpublishVolumeRequest { volume_id: v.id.clone(), target_path: text(&v.target) };
        node.node_unpublish_volume(req).await.map_err(Error::rpc(format!("NodeUnpublishVolume {}", v.id)))?;
        let unpublished = t.elapsed();
        self.unstage(node, v).await?;
        Ok([unpublished, t.elapsed() - unpublished])
    }

    /// One full node cycle of `v`.
    pub async fn cycle(&self, node: &mut NodeClient<Channel>, class: &Class, v: &Vol) -> Result<Cycle> {
        let [stage, publish] = self.up(node, class, v).await?;
        let [unpublish, unstage] = self.down(node, v).await?;
        Ok([stage, publish, unpublish, unstage])
    }

    /// The node calls in one cycle.
    pub fn calls_per_cycle(&self) -> usize {
        if self.stages { 4 } else { 2 }
    }
}

/// A single-node-writer mount capability of `class`.
pub fn capability(class: &Class) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: Mode::SingleNodeWriter as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: class.fs_type.clone(),
            mount_flags: Vec::new(),
            volume_mount_group: String::new(),
        })),
    }
}

fn text(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}
