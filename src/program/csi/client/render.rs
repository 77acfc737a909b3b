//! CSI answers as JSON values, and those values as indented `key: value` text.

use crate::csi::proto::{self as p, volume_usage};
use serde_json::{Map, Value, json};
use tonic::Code;

/// `value` as indented `key: value` text, byte counts with a human-readable size beside them.
pub fn text(value: &Value) -> String {
    let mut out = String::new();
    indented(value, 0, "", &mut out);
    out
}

/// Appends `value` as indented text; byte counts get a human-readable size beside them.
fn indented(value: &Value, depth: usize, key: &str, out: &mut String) {
    let pad = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if v.is_object() || v.is_array() {
                    out.push_str(&format!("{pad}{k}:\n"));
                    indented(v, depth + 1, k, out);
                } else {
                    out.push_str(&format!("{pad}{k}: {}\n", scalar(v, k)));
                }
            }
        }
        Value::Array(items) if items.is_empty() => out.push_str(&format!("{pad}(none)\n")),
        Value::Array(items) => {
            for item in items {
                if item.is_object() {
                    out.push_str(&format!("{pad}-\n"));
                    indented(item, depth + 1, key, out);
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item, key)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other, key))),
    }
}

fn scalar(v: &Value, key: &str) -> String {
    let plain = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v.as_i64() {
        Some(n) if key.contains("bytes") || key.contains("capacity") || key.contains("size") => {
            format!("{plain} ({})", u64::try_from(n).map_or_else(|_| n.to_string(), crate::quantity::human))
        }
        _ => plain,
    }
}

/// The canonical name of a gRPC code (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn sorted_map<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let mut pairs: Vec<_> = m.into_iter().collect();
    pairs.sort();
    Value::Object(pairs.into_iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>())
}

pub fn volume(v: &p::Volume) -> Value {
    use p::volume_content_source::Type;
    let mut out = json!({
        "volume_id": v.volume_id,
        "capacity_bytes": v.capacity_bytes,
        "volume_context": sorted_map(&v.volume_context),
        "accessible_topology": v.accessible_topology.iter().map(|t| sorted_map(&t.segments)).collect::<Vec<_>>(),
    });
    match v.content_source.as_ref().and_then(|s| s.r#type.as_ref()) {
        Some(Type::Snapshot(s)) => out["content_source"] = json!({"snapshot_id": s.snapshot_id}),
        Some(Type::Volume(s)) => out["content_source"] = json!({"volume_id": s.volume_id}),
        None => {}
    }
    out
}

pub fn condition(c: &p::VolumeCondition) -> Value {
    json!({"abnormal": c.abnormal, "message": c.message})
}

pub fn snapshot(s: &p::Snapshot) -> Value {
    json!({
        "snapshot_id": s.snapshot_id,
        "source_volume_id": s.source_volume_id,
        "size_bytes": s.size_bytes,
        "creation_time": s.creation_time.as_ref().and_then(time),
        "ready_to_use": s.ready_to_use,
    })
}

/// A CSI timestamp as RFC 3339 in UTC, to the second (`2026-12-07T08:21:03Z`).
fn time(t: &prost_types::Timestamp) -> Option<String> {
    let secs = u64::try_from(t.seconds).ok()?;
    let at = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))?;
    Some(humantime::format_rfc3339_seconds(at).to_string())
}

pub fn info(info: &p::GetPluginInfoResponse, probe: &p::ProbeResponse, node: Option<&p::NodeGetInfoResponse>) -> Value {
    let mut v = json!({
        "name": info.name,
        "vendor_version": info.vendor_version,
        "manifest": sorted_map(&info.manifest),
        "ready": probe.ready.unwrap_or(true),
    });
    if let Some(n) = node {
        v["node"] = json!({
            "node_id": n.node_id,
            "max_volumes_per_node": n.max_volumes_per_node,
            "accessible_topology": n.accessible_topology.as_ref().map(|t| sorted_map(&t.segments)),
        });
    }
    v
}

pub fn caps(
    plugin: &p::GetPluginCapabilitiesResponse,
    controller: Option<&p::ControllerGetCapabilitiesResponse>,
    node: Option<&p::NodeGetCapabilitiesResponse>,
) -> Value {
    use p::controller_service_capability as cc;
    use p::node_service_capability as nc;
    use p::plugin_capability as pc;
    let plugin: Vec<String> = plugin
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(pc::Type::Service(s)) => Some(s.r#type().as_str_name().to_owned()),
            Some(pc::Type::VolumeExpansion(e)) => Some(format!("VOLUME_EXPANSION_{}", e.r#type().as_str_name())),
            None => None,
        })
        .collect();
    let controller: Option<Vec<&str>> = controller.map(|c| {
        c.capabilities
            .iter()
            .filter_map(|c| c.r#type.as_ref().map(|cc::Type::Rpc(r)| r.r#type().as_str_name()))
            .collect()
    });
    let node: Option<Vec<&str>> = node.map(|n| {
        n.capabilities
            .iter()
            .filter_map(|c| c.r#type.as_ref().map(|nc::Type::Rpc(r)| r.r#type().as_str_name()))
            .collect()
    });
    json!({"plugin": plugin, "controller": controller, "node": node})
}

pub fn capacity(c: &p::GetCapacityResponse) -> Value {
    json!({
        "available_capacity": c.available_capacity,
        "maximum_volume_size": c.maximum_volume_size,
        "minimum_volume_size": c.minimum_volume_size,
    })
}

pub fn stats(s: &p::NodeGetVolumeStatsResponse) -> Value {
    let mut v = Map::new();
    for u in &s.usage {
        let (name, suffix) = match u.unit() {
            volume_usage::Unit::Bytes => ("bytes", "_bytes"),
            volume_usage::Unit::Inodes => ("inodes", ""),
            volume_usage::Unit::Unknown => ("unknown", ""),
        };
        v.insert(
            name.to_owned(),
            json!({
                format!("total{suffix}"): u.total,
                format!("used{suffix}"): u.used,
                format!("available{suffix}"): u.available,
            }),
        );
    }
    if let Some(c) = &s.volume_condition {
        v.insert("condition".into(), condition(c));
    }
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_is_indented_with_human_sizes() {
        let v = json!({"volume_id": "v@n", "capacity_bytes": 1073741824, "ctx": {"backend": "dir"}, "list": []});
        let out = text(&v);
        assert!(out.contains("capacity_bytes: 1073741824 (1Gi)\n"), "{out}");
        assert!(out.contains("ctx:\n  backend: dir\n"), "{out}");
        assert!(out.contains("list:\n  (none)\n"), "{out}");
    }

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::Aborted), "ABORTED");
    }
}
