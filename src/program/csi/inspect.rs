//! `strata-csi inspect <volume>`: what the records under the data root and the kernel (mount
//! table, loop devices, statfs) say about one volume, read on the node itself, no server needed.

use super::cli::InspectArgs;
use super::client::output;
use crate::csi::volume_id::VolumeId;
use crate::engine::{self, Engine, FrontEnd, Inspection, Wait};
use crate::sys::MountEntry;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;

/// Inspects one volume and prints the answer; exits 1 when it cannot be read or does not exist.
pub fn run(args: InspectArgs) -> ExitCode {
    let format = args.output;
    match inspect(&args) {
        Ok(value) => {
            output::answer(&value, format, None);
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            output::failure(format, code, &message);
            ExitCode::FAILURE
        }
    }
}

fn inspect(args: &InspectArgs) -> Result<Value, (&'static str, String)> {
    let volumes = args.root.join("volumes");
    if !volumes.is_dir() {
        let msg =
            format!("{} holds no strata volumes (no {}); is --root right?", args.root.display(), volumes.display());
        return Err(("NOT_FOUND", msg));
    }
    let cfg = engine::Config { wait: Wait::No, ..engine::Config::new(&args.root) };
    let engine = Engine::new(cfg, Arc::new(crate::sys::LinuxHost)).map_err(|e| ("INTERNAL", e.to_string()))?;
    let id = local_id(&args.volume_id, &args.root)?;
    match engine.inspect(&id) {
        Ok(Some(found)) => Ok(describe(&found)),
        Ok(None) => match engine.inspect_snapshot(&id) {
            Ok(Some(snap)) => Ok(describe_snapshot(&snap)),
            Ok(None) => {
                let msg = format!("no volume or snapshot {} under {}", engine::quote(&id), args.root.display());
                Err(("NOT_FOUND", msg))
            }
            Err(e) => Err(("INTERNAL", e.to_string())),
        },
        Err(e) => Err(("INTERNAL", e.to_string())),
    }
}

/// The engine id that `volume_id` names on this node: a CSI volume id (`<engine id>@<node
/// tag>`) of the node the root records, or an engine id (a FlexVolume PV's name). A CSI id of
/// another node names no volume here, whatever its first part.
fn local_id(volume_id: &str, root: &std::path::Path) -> Result<String, (&'static str, String)> {
    let Some(id) = VolumeId::parse(volume_id) else { return Ok(volume_id.to_owned()) };
    let here = engine::claim::recorded_node(root).map_err(|e| ("INTERNAL", e.to_string()))?;
    match here {
        Some(node) if crate::csi::volume_id::node_tag(&node) != id.node_tag => Err((
            "NOT_FOUND",
            format!(
                "volume {} lives on node {}, not here: the data root {} belongs to node {node}; inspect it on its node",
                engine::quote(volume_id),
                id.node_tag,
                root.display()
            ),
        )),
        Some(_) => Ok(id.local),
        None => {
            crate::stdout::error(&format!(
                "note: {} records no node id (no strata-csi serve has claimed it), so the node of {} is not checked",
                root.display(),
                engine::quote(volume_id)
            ));
            Ok(id.local)
        }
    }
}

/// A snapshot's inspection as JSON: its record, and its copy while one runs.
pub fn describe_snapshot(i: &engine::SnapshotInspection) -> Value {
    let s = &i.snapshot;
    let mut out = json!({
        "snapshot_id": s.id,
        "name": s.name,
        "source_volume": s.source_volume,
        "backend": s.backend.as_str(),
        "size_bytes": s.size_bytes,
        "ready_to_use": s.ready(),
    });
    if let Some(g) = &s.group {
        out["group_snapshot"] = json!(g);
    }
    if !s.omitted.is_none() {
        out["left_out_of_the_copy"] = left_out(&s.omitted);
    }
    if let Some(c) = &i.copy {
        out["copy"] = json!(c);
    }
    out
}

/// What a copy left out of its source: device nodes and mounts inside the tree.
fn left_out(o: &engine::record::Omitted) -> Value {
    json!({"device_nodes": o.devices, "mounts": o.mounts})
}

/// The inspection as JSON: the text form prints it as indented `key: value` lines.
pub fn describe(i: &Inspection) -> Value {
    let v = &i.volume;
    let mut out = json!({
        "volume_id": v.id,
        "name": v.name,
        "backend": v.backend.as_str(),
        "capacity_bytes": v.capacity,
        "condition": if i.condition.abnormal { format!("abnormal: {}", i.condition.message) } else { "ok".to_owned() },
    });
    if let Some(fs) = v.fs_type {
        out["fs_type"] = json!(fs.as_str());
    }
    if !v.omitted.is_none() {
        out["left_out_of_the_copy"] = left_out(&v.omitted);
    }
    out["staged_by"] = json!(match i.staged_by {
        Some(FrontEnd::Flex) => "strata-flex (FlexVolume)",
        Some(FrontEnd::Csi) => "strata-csi (CSI)",
        None => "not staged",
    });
    if let Some(s) = &v.staging {
        out["staging"] = json!({"path": s.path, "mount": mount(i.staging_mount.as_ref())});
    }
    if let Some(e) = encryption(i) {
        out["encryption"] = e;
    }
    out["loop_devices"] = json!(i.loop_devices);
    let pubs: Vec<Value> = i
        .publications
        .iter()
        .map(|(p, m)| json!({"target": p.target, "readonly": p.readonly, "block": p.block, "mount": mount(m.as_ref())}))
        .collect();
    out["publications"] = json!(pubs);
    if let Some(c) = &i.copy {
        out["copy"] = json!(c);
    }
    out["usage"] = usage(i);
    out
}

/// An encrypted volume's scheme and key, and whether the kernel holds the key.
fn encryption(i: &Inspection) -> Option<Value> {
    let e = i.volume.encryption.as_ref()?;
    Some(json!({
        "scheme": e.scheme,
        "key_derivation_id": e.key_derivation_id,
        "key_identifier": e.key_identifier.as_deref().unwrap_or("none yet (set at the first stage)"),
        "key_in_kernel": i.key_in_kernel.map_or("unknown", |k| if k { "yes" } else { "no" }),
    }))
}

/// The staged filesystem's usage, or why there is none.
fn usage(i: &Inspection) -> Value {
    match &i.usage {
        None => json!("not staged"),
        Some(Ok(u)) => json!({
            "used_bytes": u.used_bytes, "available_bytes": u.available_bytes, "total_bytes": u.total_bytes,
            "used_inodes": u.used_inodes, "free_inodes": u.free_inodes,
        }),
        Some(Err(reason)) => json!(format!("unknown: {reason}")),
    }
}

/// What the kernel has mounted at a recorded path.
fn mount(m: Option<&MountEntry>) -> Value {
    match m {
        None => json!("NOT MOUNTED (recorded, but the kernel has no mount there)"),
        Some(m) => json!(format!("{} from {} ({})", m.fs_type, m.source, m.mount_options.join(","))),
    }
}
