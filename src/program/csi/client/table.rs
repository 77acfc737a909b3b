//! kubectl-style tables of the list commands and capacity: one row per item, aligned columns,
//! sizes as quantities (`64Mi`); `-o json|yaml` gives the full answer instead.

use crate::program::csi::cli::ClientCommand;
use serde_json::Value;

/// The table view of a command's answer, if it has one.
pub fn for_command(cmd: &ClientCommand) -> Option<super::output::TableView> {
    match cmd {
        ClientCommand::ListVolumes { .. } => Some(volumes),
        ClientCommand::ListSnapshots { .. } => Some(snapshots),
        ClientCommand::Capacity { .. } => Some(capacity),
        _ => None,
    }
}

/// Rows of cells under headers; a cell of `None` prints as `-`. The `optional` columns (what
/// only some drivers report) are left out when no row knows them.
struct Table {
    headers: &'static [&'static str],
    optional: &'static [&'static str],
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// The table as text: columns padded to their widest cell, three spaces apart.
    fn render(&self) -> String {
        let shown: Vec<usize> = (0..self.headers.len())
            .filter(|&i| !self.optional.contains(&self.headers[i]) || self.rows.iter().any(|r| r[i].is_some()))
            .collect();
        let headers: Vec<&str> = shown.iter().map(|&i| self.headers[i]).collect();
        let cells: Vec<Vec<&str>> =
            self.rows.iter().map(|r| shown.iter().map(|&i| r[i].as_deref().unwrap_or("-")).collect()).collect();
        let widths: Vec<usize> = (0..headers.len())
            .map(|i| cells.iter().map(|r| r[i].chars().count()).chain([headers[i].len()]).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in std::iter::once(headers).chain(cells) {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("   ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// list-volumes: ID, BACKEND (and fs type), SIZE, NODE (the topology), PUBLISHED (the nodes the
/// answer names; shown only when the driver reports them, which strata does not: it has no
/// controller publish), HEALTH; `wide` adds SOURCE (what it was made from) and CONTEXT.
pub fn volumes(v: &Value, wide: bool) -> String {
    let rows = items(v, "volumes")
        .iter()
        .map(|e| {
            let ctx = &e["volume_context"];
            let backend = text(&ctx["backend"]).map(|b| match text(&ctx["fsType"]) {
                Some(fs) => format!("{b}/{fs}"),
                None => b,
            });
            let node = e["accessible_topology"].get(0).and_then(Value::as_object).and_then(|m| m.values().next());
            let published = e["published_node_ids"].as_array().filter(|a| !a.is_empty()).map(|a| join(a));
            let mut row = vec![
                text(&e["volume_id"]),
                backend,
                size(&e["capacity_bytes"]),
                node.and_then(text),
                published,
                health(e),
            ];
            if wide {
                let source = e["content_source"].as_object().and_then(|s| s.values().next()).and_then(text);
                row.extend([source, pairs(ctx)]);
            }
            row
        })
        .collect();
    const HEADERS: [&str; 8] = ["ID", "BACKEND", "SIZE", "NODE", "PUBLISHED", "HEALTH", "SOURCE", "CONTEXT"];
    let table = Table { headers: if wide { &HEADERS } else { &HEADERS[..6] }, optional: &["PUBLISHED"], rows };
    with_more(table.render(), v)
}

/// A map's entries as `k=v,k=v`.
fn pairs(map: &Value) -> Option<String> {
    let m = map.as_object().filter(|m| !m.is_empty())?;
    Some(m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
}

/// list-snapshots: ID, SOURCE, SIZE, READY, AGE; `wide` adds CREATED (RFC 3339).
pub fn snapshots(v: &Value, wide: bool) -> String {
    let now = std::time::SystemTime::now();
    let rows = items(v, "snapshots")
        .iter()
        .map(|s| {
            let created = text(&s["creation_time"]);
            let at = created.as_deref().and_then(|c| humantime::parse_rfc3339(c).ok());
            let age = at.map(|t| age(now.duration_since(t).map_or(0, |d| d.as_secs())));
            let ready = s["ready_to_use"].as_bool().map(|r| r.to_string());
            let mut row =
                vec![text(&s["snapshot_id"]), text(&s["source_volume_id"]), size(&s["size_bytes"]), ready, age];
            if wide {
                row.push(created);
            }
            row
        })
        .collect();
    const HEADERS: [&str; 6] = ["ID", "SOURCE", "SIZE", "READY", "AGE", "CREATED"];
    let headers = if wide { &HEADERS[..] } else { &HEADERS[..5] };
    with_more(Table { headers, optional: &[], rows }.render(), v)
}

/// capacity: one row of AVAILABLE, MAXIMUM (volume size), MINIMUM (volume size).
pub fn capacity(v: &Value, _wide: bool) -> String {
    let row = vec![size(&v["available_capacity"]), size(&v["maximum_volume_size"]), size(&v["minimum_volume_size"])];
    Table { headers: &["AVAILABLE", "MAXIMUM", "MINIMUM"], optional: &[], rows: vec![row] }.render()
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map_or(&[], Vec::as_slice)
}

/// A note after a page that has more: how to ask for the next one.
fn with_more(mut table: String, v: &Value) -> String {
    if let Some(token) = text(&v["next_token"]) {
        table.push_str(&format!("(more: --starting-token {token})\n"));
    }
    table
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn join(items: &[Value]) -> String {
    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
}

fn health(entry: &Value) -> Option<String> {
    let c = entry.get("condition")?;
    match c["abnormal"].as_bool()? {
        false => Some("healthy".into()),
        true => Some(format!("abnormal: {}", c["message"].as_str().unwrap_or(""))),
    }
}

/// A byte count as a Kubernetes quantity: exact (`64Mi`) where it divides, else one decimal.
fn size(v: &Value) -> Option<String> {
    v.as_u64().map(crate::quantity::human)
}

/// An age as kubectl shows it: `45s`, `12m`, `5h`, `3d`.
fn age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests;
