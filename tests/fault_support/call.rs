//! One CSI call of the fault tester, kept whole so that a retry sends the same arguments, and
//! the killer that SIGKILLs the server while a call runs.

use crate::csi_support::Clients;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use strata::csi::proto::{self as p};
use tonic::Status;

/// One CSI call, kept whole so that a retry sends exactly the same arguments.
#[derive(Debug, Clone)]
pub enum Call {
    Create(p::CreateVolumeRequest),
    Delete(String),
    Stage(p::NodeStageVolumeRequest),
    Unstage(p::NodeUnstageVolumeRequest),
    Publish(p::NodePublishVolumeRequest),
    Unpublish(p::NodeUnpublishVolumeRequest),
    Snapshot(p::CreateSnapshotRequest),
    DeleteSnapshot(String),
    ControllerExpand(String, i64),
    NodeExpand(String, String, i64),
}

/// What a successful call answered that the CO keeps.
#[derive(Debug, Default)]
pub struct Answer {
    pub volume_id: String,
    pub snapshot_id: String,
    pub size: i64,
}

impl Call {
    pub fn describe(&self) -> String {
        match self {
            Call::Create(r) => {
                format!("CreateVolume {} ({:?})", r.name, r.volume_content_source.as_ref().map(|s| &s.r#type))
            }
            Call::Delete(id) => format!("DeleteVolume {id}"),
            Call::Stage(r) => format!("NodeStageVolume {} at {}", r.volume_id, r.staging_target_path),
            Call::Unstage(r) => format!("NodeUnstageVolume {} at {}", r.volume_id, r.staging_target_path),
            Call::Publish(r) => format!("NodePublishVolume {} at {} ro={}", r.volume_id, r.target_path, r.readonly),
            Call::Unpublish(r) => format!("NodeUnpublishVolume {} at {}", r.volume_id, r.target_path),
            Call::Snapshot(r) => format!("CreateSnapshot {} of {}", r.name, r.source_volume_id),
            Call::DeleteSnapshot(id) => format!("DeleteSnapshot {id}"),
            Call::ControllerExpand(id, b) => format!("ControllerExpandVolume {id} to {b}"),
            Call::NodeExpand(id, path, b) => format!("NodeExpandVolume {id} at {path} to {b}"),
        }
    }

    pub async fn send(&self, c: &mut Clients) -> Result<Answer, Status> {
        match self.clone() {
            Call::Create(r) => {
                let v = c.ctl.create_volume(r).await?.into_inner().volume.unwrap_or_default();
                Ok(Answer { volume_id: v.volume_id, size: v.capacity_bytes, ..Answer::default() })
            }
            Call::Delete(volume_id) => {
                c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id, ..Default::default() }).await?;
                Ok(Answer::default())
            }
            Call::Stage(r) => c.node.node_stage_volume(r).await.map(|_| Answer::default()),
            Call::Unstage(r) => c.node.node_unstage_volume(r).await.map(|_| Answer::default()),
            Call::Publish(r) => c.node.node_publish_volume(r).await.map(|_| Answer::default()),
            Call::Unpublish(r) => c.node.node_unpublish_volume(r).await.map(|_| Answer::default()),
            Call::Snapshot(r) => {
                let s = c.ctl.create_snapshot(r).await?.into_inner().snapshot.unwrap_or_default();
                Ok(Answer { snapshot_id: s.snapshot_id, size: s.size_bytes, ..Answer::default() })
            }
            Call::DeleteSnapshot(snapshot_id) => {
                let r = p::DeleteSnapshotRequest { snapshot_id, ..Default::default() };
                c.ctl.delete_snapshot(r).await.map(|_| Answer::default())
            }
            Call::ControllerExpand(volume_id, b) => {
                let range = Some(p::CapacityRange { required_bytes: b, limit_bytes: 0 });
                let r = p::ControllerExpandVolumeRequest { volume_id, capacity_range: range, ..Default::default() };
                let size = c.ctl.controller_expand_volume(r).await?.into_inner().capacity_bytes;
                Ok(Answer { size, ..Answer::default() })
            }
            Call::NodeExpand(volume_id, volume_path, b) => {
                let range = Some(p::CapacityRange { required_bytes: b, limit_bytes: 0 });
                let r =
                    p::NodeExpandVolumeRequest { volume_id, volume_path, capacity_range: range, ..Default::default() };
                let size = c.node.node_expand_volume(r).await?.into_inner().capacity_bytes;
                Ok(Answer { size, ..Answer::default() })
            }
        }
    }
}

/// A SIGKILL of the server after a delay, unless the call it races ends first.
pub struct Killer {
    done: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<bool>,
}

impl Killer {
    pub fn arm(pid: nix::unistd::Pid, delay: Duration) -> Killer {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let handle = std::thread::spawn(move || {
            let until = std::time::Instant::now() + delay;
            while std::time::Instant::now() < until {
                if flag.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok()
        });
        Killer { done, handle }
    }

    /// Stops the race; true when the kill was sent.
    pub fn disarm(self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        self.handle.join().expect("killer thread")
    }
}
