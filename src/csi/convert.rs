//! Conversions between CSI messages and engine types: StorageClass parameters, volume
//! capabilities, capacity ranges, topology, and volume records as CSI volumes.

use super::proto::volume_capability::access_mode::Mode;
use super::proto::volume_capability::{AccessType, MountVolume};
use super::proto::volume_content_source as content;
use super::proto::{self, CapacityRange, Topology, TopologyRequirement, VolumeCapability, VolumeContentSource};
use super::volume_id::VolumeId;
use crate::backend::Kind;
use crate::engine::{Access, Source, Volume, clip, quote, size};
use crate::sys::FsType;
use std::collections::{BTreeMap, HashMap};
use tonic::Status;

/// The topology key whose value is the node that holds a volume.
pub const TOPOLOGY_KEY: &str = "topology.strata.csi.dev/node";
/// StorageClass parameter choosing the backend.
pub const PARAM_BACKEND: &str = "backend";
/// `thick` preallocates a loop image; `thin` (the default) leaves it sparse.
pub use crate::engine::capacity::PARAM_ALLOCATION;
pub use crate::engine::encryption::PARAM_ENCRYPTION;
pub use crate::engine::mount_policy::PARAM_DEVICES;
/// StorageClass parameter carrying the fs type (when the capability has none).
pub const PARAM_FSTYPE: &str = "csi.storage.k8s.io/fstype";
/// Parameters Kubernetes adds (PVC/PV names and the like) are accepted and kept.
pub const K8S_PREFIX: &str = "csi.storage.k8s.io/";

/// What a set of parameters and capabilities asks of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub kind: Kind,
    pub fs_type: Option<FsType>,
}

/// Reads StorageClass parameters and capabilities into a backend and fs type. Unknown
/// parameters, unknown fs types, conflicting fs types and unsupported capabilities are refused.
pub fn wanted(params: &HashMap<String, String>, caps: &[VolumeCapability], enabled: &[Kind]) -> Result<Wanted, Status> {
    let known = |k: &str| {
        [PARAM_BACKEND, PARAM_ALLOCATION, PARAM_DEVICES, PARAM_ENCRYPTION].contains(&k) || k.starts_with(K8S_PREFIX)
    };
    if let Some(k) = params.keys().find(|k| !known(k)) {
        return Err(invalid(format!(
            "unknown parameter {}; strata knows {PARAM_BACKEND:?}, {PARAM_ALLOCATION:?}, {PARAM_DEVICES:?}, \
             {PARAM_ENCRYPTION:?} and {K8S_PREFIX}*",
            quote(k)
        )));
    }
    let kind = match params.get(PARAM_BACKEND).map(String::as_str) {
        None | Some("") => Kind::Dir,
        Some(name) => Kind::parse(name).ok_or_else(|| unknown_backend(name, enabled))?,
    };
    if !enabled.contains(&kind) {
        return Err(invalid(format!("backend {} is not enabled on this driver (see --backends)", kind.as_str())));
    }
    let mut fs_names: Vec<&str> = caps.iter().filter_map(cap_fs_type).collect();
    fs_names.extend(params.get(PARAM_FSTYPE).map(String::as_str));
    fs_names.retain(|n| !n.is_empty());
    fs_names.dedup();
    let fs_type = match fs_names.as_slice() {
        [] => None,
        [one] => Some(fs_type_for(kind, one)?),
        many => return Err(invalid(format!("conflicting fs types {}", clip(&format!("{many:?}"))))),
    };
    let want = Wanted { kind, fs_type };
    for cap in caps {
        check_capability(cap, &want).map_err(invalid)?;
    }
    let encrypted = params.get(PARAM_ENCRYPTION).is_some_and(|e| !e.is_empty() && e != "none");
    if encrypted && caps.iter().any(|c| matches!(c.access_type, Some(AccessType::Block(_)))) {
        return Err(invalid(
            "an encrypted volume (fscrypt encrypts files) is a filesystem; raw block access cannot be encrypted".into(),
        ));
    }
    Ok(want)
}

/// INVALID_ARGUMENT for a backend name strata does not know, listing the backends enabled here.
fn unknown_backend(name: &str, enabled: &[Kind]) -> Status {
    let names: Vec<&str> = enabled.iter().map(|k| k.as_str()).collect();
    invalid(format!("unknown backend {}; this driver has {} enabled", quote(name), names.join(", ")))
}

/// The fs type `name` for a volume of `kind`: only loop volumes have one that strata makes.
fn fs_type_for(kind: Kind, name: &str) -> Result<FsType, Status> {
    if !kind.formats() {
        return Err(invalid(format!(
            "a {} volume has no filesystem of its own; leave the fs type empty (got {})",
            kind.as_str(),
            quote(name)
        )));
    }
    FsType::parse(name).ok_or_else(|| invalid(format!("fs type {} is not supported; use ext4 or xfs", quote(name))))
}

fn cap_fs_type(cap: &VolumeCapability) -> Option<&str> {
    match &cap.access_type {
        Some(AccessType::Mount(m)) => Some(m.fs_type.as_str()),
        _ => None,
    }
}

/// The access modes of a node-local volume. SINGLE_NODE_WRITER and SINGLE_NODE_MULTI_WRITER
/// allow several publications on the node; SINGLE_NODE_SINGLE_WRITER allows one at a time.
pub const SINGLE_NODE_MODES: [Mode; 4] =
    [Mode::SingleNodeWriter, Mode::SingleNodeReaderOnly, Mode::SingleNodeSingleWriter, Mode::SingleNodeMultiWriter];

/// The access mode of a capability (UNKNOWN when it has none).
pub fn mode(cap: &VolumeCapability) -> Mode {
    cap.access_mode.as_ref().map(|m| m.mode()).unwrap_or(Mode::Unknown)
}

/// Whether a volume of `want` can serve `cap`; the reason when it cannot.
pub fn check_capability(cap: &VolumeCapability, want: &Wanted) -> Result<(), String> {
    let mode = mode(cap);
    if !SINGLE_NODE_MODES.contains(&mode) {
        return Err(format!(
            "access mode {} is not supported; volumes are node-local (use SINGLE_NODE_WRITER, \
             SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER or SINGLE_NODE_MULTI_WRITER)",
            mode.as_str_name()
        ));
    }
    match &cap.access_type {
        None => Err("the capability has neither mount nor block access".into()),
        Some(AccessType::Block(_)) if !want.kind.supports_block() => {
            Err(format!("a {} volume cannot be a raw block device; use backend loop", want.kind.as_str()))
        }
        Some(AccessType::Block(_)) => Ok(()),
        Some(AccessType::Mount(m)) => match (m.fs_type.as_str(), want.fs_type) {
            ("", _) => Ok(()),
            (asked, Some(has)) if asked == has.as_str() => Ok(()),
            (asked, has) => Err(format!(
                "fs type {} does not match the volume's ({})",
                quote(asked),
                has.map_or("none", FsType::as_str)
            )),
        },
    }
}

/// The engine access a node call asks for, with its mount flags.
pub fn access(cap: &VolumeCapability) -> Result<Access, Status> {
    match &cap.access_type {
        Some(AccessType::Block(_)) => Ok(Access::Block),
        Some(AccessType::Mount(MountVolume { mount_flags, .. })) => Ok(Access::Mount { flags: mount_flags.clone() }),
        None => Err(invalid("volume_capability has neither mount nor block access".into())),
    }
}

/// Whether the capability only allows reading.
pub fn reader_only(cap: &VolumeCapability) -> bool {
    cap.access_mode.as_ref().is_some_and(|m| m.mode() == Mode::SingleNodeReaderOnly)
}

/// The size to create for a capacity range under the engine's size policy (default, minimum,
/// alignment); OUT_OF_RANGE when that breaks the limit.
pub fn capacity(range: Option<&CapacityRange>, want: &Wanted) -> Result<u64, Status> {
    let (required, limit) = bounds(range)?;
    Ok(size::for_new(want.kind, want.fs_type, required, limit)?)
}

/// Whether an existing volume of `bytes` satisfies the range.
pub fn fits(bytes: u64, range: Option<&CapacityRange>) -> Result<bool, Status> {
    let (required, limit) = bounds(range)?;
    Ok(bytes >= required && (limit == 0 || bytes <= limit))
}

/// `(required, limit)` in bytes, 0 meaning unset; INVALID_ARGUMENT for negative or crossed bounds.
pub fn bounds(range: Option<&CapacityRange>) -> Result<(u64, u64), Status> {
    let Some(r) = range else { return Ok((0, 0)) };
    let required =
        u64::try_from(r.required_bytes).map_err(|_| invalid("capacity_range.required_bytes is negative".into()))?;
    let limit = u64::try_from(r.limit_bytes).map_err(|_| invalid("capacity_range.limit_bytes is negative".into()))?;
    if limit != 0 && required > limit {
        return Err(invalid(format!("capacity_range asks for at least {required} bytes but at most {limit}")));
    }
    Ok((required, limit))
}

/// This node's topology segment.
pub fn topology(node_id: &str) -> Topology {
    Topology { segments: HashMap::from([(TOPOLOGY_KEY.to_owned(), node_id.to_owned())]) }
}

/// Whether a topology names this node.
pub fn is_here(t: &Topology, node_id: &str) -> bool {
    t.segments.get(TOPOLOGY_KEY).is_some_and(|n| n == node_id)
}

/// Whether a volume made on this node satisfies the requirement (its requisite list, if any).
pub fn accessible(req: Option<&TopologyRequirement>, node_id: &str) -> bool {
    req.is_none_or(|r| r.requisite.is_empty() || r.requisite.iter().any(|t| is_here(t, node_id)))
}

/// The volume context handed back to the CO and on to the node calls.
pub fn volume_context(vol: &Volume) -> HashMap<String, String> {
    let mut ctx = HashMap::from([(PARAM_BACKEND.to_owned(), vol.backend.as_str().to_owned())]);
    if let Some(fs) = vol.fs_type {
        ctx.insert("fsType".to_owned(), fs.as_str().to_owned());
    }
    ctx
}

/// A volume record as a CSI volume of this node.
pub fn volume(vol: &Volume, node_tag: &str, node_id: &str) -> proto::Volume {
    proto::Volume {
        capacity_bytes: i64::try_from(vol.capacity).unwrap_or(i64::MAX),
        volume_id: VolumeId::new(&vol.id, node_tag).to_string(),
        volume_context: volume_context(vol),
        content_source: vol.source.as_ref().map(|s| content_source(s, node_tag)),
        accessible_topology: vec![topology(node_id)],
    }
}

/// Where a volume's contents came from, with CSI ids of this node.
pub fn content_source(source: &Source, node_tag: &str) -> VolumeContentSource {
    let id = |local: &str| VolumeId::new(local, node_tag).to_string();
    VolumeContentSource {
        r#type: Some(match source {
            Source::Snapshot(s) => content::Type::Snapshot(content::SnapshotSource { snapshot_id: id(s) }),
            Source::Volume(v) => content::Type::Volume(content::VolumeSource { volume_id: id(v) }),
        }),
    }
}

/// The engine's view of the volume a record describes.
pub fn wanted_of(vol: &Volume) -> Wanted {
    Wanted { kind: vol.backend, fs_type: vol.fs_type }
}

/// Request parameters as the engine records them.
pub fn sorted(params: &HashMap<String, String>) -> BTreeMap<String, String> {
    params.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Bytes as a gRPC int64.
pub fn i64_of(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// INVALID_ARGUMENT with `msg`.
pub fn invalid(msg: String) -> Status {
    Status::invalid_argument(msg)
}

#[cfg(test)]
mod tests;
