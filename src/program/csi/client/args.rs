//! Pieces of a request built from command-line arguments: the volume capability, a content
//! source, stage secrets read from files, and a path as the request's text.

use crate::csi::convert::i64_of;
use crate::csi::proto::volume_capability::access_mode::Mode;
use crate::csi::proto::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use crate::csi::proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
use crate::csi::proto::{self as p, VolumeCapability};
use crate::program::csi::cli::{AccessModeArg, CapArgs};
use std::collections::HashMap;
use std::path::Path;
use tonic::Status;

/// Stage secrets read from files (`NAME=FILE`); the values go only into the request.
pub fn secrets(files: &[(String, String)]) -> Result<HashMap<String, String>, Status> {
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

/// The content source of `create-volume --from-snapshot/--from-volume`.
pub fn content_source(snapshot: Option<String>, volume: Option<String>) -> Option<p::VolumeContentSource> {
    let r#type = match (snapshot, volume) {
        (Some(snapshot_id), _) => Type::Snapshot(SnapshotSource { snapshot_id }),
        (None, Some(volume_id)) => Type::Volume(VolumeSource { volume_id }),
        (None, None) => return None,
    };
    Some(p::VolumeContentSource { r#type: Some(r#type) })
}

/// A path as a request's text field.
pub fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The capacity range of `--size` (required) and `--limit`; 0 where one is not given.
pub fn range(size: Option<u64>, limit: Option<u64>) -> p::CapacityRange {
    p::CapacityRange { required_bytes: size.map_or(0, i64_of), limit_bytes: limit.map_or(0, i64_of) }
}
