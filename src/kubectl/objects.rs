//! Reading the Kubernetes objects strata cares about out of `kubectl get -o json`: PVs of both
//! kinds (CSI with strata's driver name, FlexVolume `strata/flex`), the pods that use their
//! claims, CSIStorageCapacity of strata's topology, and VolumeSnapshotContents of its driver.
//! Objects of other drivers are ignored.

use crate::csi::convert::{PARAM_BACKEND, TOPOLOGY_KEY};
use crate::csi::volume_id::VolumeId;
use crate::migrate::{FLEX_DRIVER, affinity_nodes};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The label external-provisioner puts on the CSIStorageCapacity objects of a driver.
const CAPACITY_DRIVER_LABEL: &str = "csi.storage.k8s.io/drivername";
/// Where strata-flex puts a volume whose options name no backend.
const FLEX_DEFAULT_BACKEND: &str = "dir";

/// One strata PV.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    /// `csi` or `flex`.
    pub kind: &'static str,
    pub node: Option<String>,
    pub backend: String,
    pub size: Option<String>,
    pub phase: Option<String>,
    pub storage_class: Option<String>,
    /// `namespace/name` of the claim.
    pub claim: Option<String>,
    /// `namespace/name` of the pods whose volumes use the claim.
    pub pods: Vec<String>,
    /// The CSI volume handle, or the FlexVolume engine id (`volumeID`, else the PV name).
    pub volume_id: String,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

/// The strata PV of `pv`, or `None` for a PV of another driver.
pub fn volume(pv: &Value, driver: &str) -> Option<Volume> {
    let name = text(pv, "/metadata/name")?;
    let spec = pv.get("spec")?;
    let (kind, node, backend, volume_id) = if spec.pointer("/csi/driver").and_then(Value::as_str) == Some(driver) {
        let handle = text(spec, "/csi/volumeHandle").unwrap_or_default();
        let node = pinned_node(spec).or_else(|| node_of_handle(&handle));
        let backend = text(spec, &format!("/csi/volumeAttributes/{PARAM_BACKEND}"));
        ("csi", node, backend.unwrap_or_else(|| "?".into()), handle)
    } else if spec.pointer("/flexVolume/driver").and_then(Value::as_str) == Some(FLEX_DRIVER) {
        let node = pinned_node(spec);
        let backend = text(spec, "/flexVolume/options/backend").unwrap_or_else(|| FLEX_DEFAULT_BACKEND.into());
        let id = text(spec, "/flexVolume/options/volumeID").unwrap_or_else(|| name.clone());
        ("flex", node, backend, id)
    } else {
        return None;
    };
    let claim = match (text(spec, "/claimRef/namespace"), text(spec, "/claimRef/name")) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        _ => None,
    };
    Some(Volume {
        name,
        kind,
        node,
        backend,
        size: text(spec, "/capacity/storage"),
        phase: text(pv, "/status/phase"),
        storage_class: text(spec, "/storageClassName"),
        claim,
        pods: Vec::new(),
        volume_id,
    })
}

/// The one node a PV's nodeAffinity pins it to (strata's topology key, or the hostname label).
fn pinned_node(spec: &Value) -> Option<String> {
    let nodes = spec.get("nodeAffinity").and_then(affinity_nodes)?;
    if nodes.len() == 1 { nodes.into_iter().next() } else { None }
}

/// The node a volume or snapshot handle names, when its node tag is the node id itself (a long
/// node id is hashed in the tag and cannot be read back).
fn node_of_handle(handle: &str) -> Option<String> {
    VolumeId::parse(handle).map(|id| id.node_tag).filter(|t| !t.starts_with("n--"))
}

/// `namespace/claim` -> the pods (`namespace/name`) whose volumes use that claim.
pub fn pods_by_claim(pods: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods {
        let (Some(ns), Some(name)) = (text(pod, "/metadata/namespace"), text(pod, "/metadata/name")) else { continue };
        let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten();
        for claim in volumes.filter_map(|v| text(v, "/persistentVolumeClaim/claimName")) {
            out.entry(format!("{ns}/{claim}")).or_default().push(format!("{ns}/{name}"));
        }
    }
    out
}

/// One CSIStorageCapacity of strata: what one node offers one StorageClass.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Capacity {
    pub node: String,
    pub storage_class: String,
    /// Bytes GetCapacity reported as available (the object's `capacity`).
    pub free: Option<String>,
    pub maximum_volume_size: Option<String>,
}

/// The capacity that `obj` (a CSIStorageCapacity) reports for a node of strata, if it is one.
pub fn capacity(obj: &Value, driver: &str) -> Option<Capacity> {
    if let Some(d) = obj.pointer("/metadata/labels").and_then(|l| l.get(CAPACITY_DRIVER_LABEL)) {
        if d.as_str() != Some(driver) {
            return None;
        }
    }
    let node = obj.pointer("/nodeTopology/matchLabels").and_then(|l| l.get(TOPOLOGY_KEY))?.as_str()?.to_owned();
    Some(Capacity {
        node,
        storage_class: text(obj, "/storageClassName")?,
        free: text(obj, "/capacity"),
        maximum_volume_size: text(obj, "/maximumVolumeSize"),
    })
}

/// One VolumeSnapshotContent of strata.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    /// `namespace/name` of the VolumeSnapshot.
    pub snapshot: Option<String>,
    /// The volume handle it was taken from.
    pub source_volume: Option<String>,
    pub node: Option<String>,
    pub restore_size: Option<u64>,
    pub ready: Option<bool>,
    pub snapshot_handle: Option<String>,
    pub deletion_policy: Option<String>,
}

/// The strata snapshot of `content` (a VolumeSnapshotContent), or `None` for another driver's.
pub fn snapshot(content: &Value, driver: &str) -> Option<Snapshot> {
    if content.pointer("/spec/driver").and_then(Value::as_str) != Some(driver) {
        return None;
    }
    let handle = text(content, "/status/snapshotHandle").or_else(|| text(content, "/spec/source/snapshotHandle"));
    let snapshot =
        match (text(content, "/spec/volumeSnapshotRef/namespace"), text(content, "/spec/volumeSnapshotRef/name")) {
            (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
            _ => None,
        };
    Some(Snapshot {
        name: text(content, "/metadata/name")?,
        snapshot,
        source_volume: text(content, "/spec/source/volumeHandle"),
        node: handle.as_deref().and_then(node_of_handle),
        restore_size: content.pointer("/status/restoreSize").and_then(Value::as_u64),
        ready: content.pointer("/status/readyToUse").and_then(Value::as_bool),
        snapshot_handle: handle,
        deletion_policy: text(content, "/spec/deletionPolicy"),
    })
}
