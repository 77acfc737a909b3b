//! The blocking halves of the node RPCs: checks against the volume record, then engine calls.
//! A SINGLE_NODE_SINGLE_WRITER publish is refused (FAILED_PRECONDITION) while the volume is
//! published at another target; the other modes allow several publications on the node.

use crate::csi::convert::{self, invalid};
use crate::csi::proto::volume_capability::access_mode::Mode;
use crate::csi::proto::{
    NodeGetVolumeStatsResponse, NodePublishVolumeRequest, VolumeCapability, VolumeUsage, volume_usage,
};
use crate::csi::provision::{self, existing};
use crate::engine::encryption::StageKey;
use crate::engine::{Access, Bind, Engine, Error as EngineError, Volume, quote_path};
use crate::sys::MountOptions;
use std::path::Path;
use tonic::Status;

/// Stages after checking that the capability suits the volume, with the key from the stage's
/// secrets (an encrypted volume needs it).
pub fn stage(e: &Engine, local: &str, staging: &Path, cap: &VolumeCapability, key: &StageKey) -> Result<(), Status> {
    let suits = |vol: &Volume| suits(cap, vol);
    e.stage_volume_keyed(local, staging, &convert::access(cap)?, key, &suits)?;
    Ok(())
}

/// Publishes after checking the capability; a read-only access mode forces a read-only bind.
pub fn publish(e: &Engine, local: &str, r: &NodePublishVolumeRequest) -> Result<(), Status> {
    let cap = r.volume_capability.as_ref().ok_or_else(|| invalid("volume_capability is required".into()))?;
    let access = convert::access(cap)?;
    let block = Some(matches!(access, Access::Block));
    let check = |vol: &Volume| suits(cap, vol);
    let readonly = r.readonly || convert::reader_only(cap);
    let options = match access {
        Access::Mount { flags } => flags,
        Access::Block => Vec::new(),
    };
    let opts = MountOptions { readonly, options };
    let (staging, target) = (Path::new(&r.staging_target_path), Path::new(&r.target_path));
    let alone = convert::mode(cap) == Mode::SingleNodeSingleWriter;
    e.publish_volume_checked(local, &Bind { staging, target, opts: &opts, alone, block }, &check)?;
    Ok(())
}

/// Whether the capability suits the volume (INVALID_ARGUMENT when it does not).
fn suits(cap: &VolumeCapability, vol: &Volume) -> Result<(), EngineError> {
    convert::check_capability(cap, &convert::wanted_of(vol)).map_err(EngineError::InvalidArgument)
}

/// Usage and health of a volume at a path where it is staged or published; NOT_FOUND anywhere
/// else. Usage of a volume whose storage is gone fails (FAILED_PRECONDITION, saying what is
/// missing); a volume that still answers gets its usage and a condition that may be abnormal.
pub fn stats(e: &Engine, local: &str, path: &Path) -> Result<NodeGetVolumeStatsResponse, Status> {
    let vol = match existing(e, local) {
        Ok(vol) => vol,
        Err(status) => {
            // A quarantined volume still answers: no usage, and a condition saying what is wrong.
            let q = e.quarantine_of(local).ok_or(status)?;
            let condition = Some(provision::condition(provision::quarantined_condition(&q)));
            return Ok(NodeGetVolumeStatsResponse { usage: Vec::new(), volume_condition: condition });
        }
    };
    let known =
        vol.staging.as_ref().is_some_and(|s| s.path == path) || vol.publications.iter().any(|p| p.target == path);
    if !known || !path.exists() {
        return Err(Status::not_found(format!("volume {local} is not staged or published at {}", quote_path(path))));
    }
    let u = e.volume_usage(local, path)?;
    let entry = |unit: volume_usage::Unit, available: u64, total: u64, used: u64| VolumeUsage {
        available: convert::i64_of(available),
        total: convert::i64_of(total),
        used: convert::i64_of(used),
        unit: unit as i32,
    };
    let mut out = vec![entry(volume_usage::Unit::Bytes, u.available_bytes, u.total_bytes, u.used_bytes)];
    if u.total_inodes > 0 {
        out.push(entry(volume_usage::Unit::Inodes, u.free_inodes, u.total_inodes, u.used_inodes));
    }
    let condition = e.volume_condition(local)?;
    Ok(NodeGetVolumeStatsResponse { usage: out, volume_condition: Some(provision::condition(condition)) })
}
