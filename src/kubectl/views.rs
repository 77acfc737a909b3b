//! The three read commands: `volumes`, `nodes` and `snapshots`, each a few `kubectl get`s
//! joined into rows.

use super::cli::Cli;
use super::cluster::{Kubectl, Scope};
use super::error::Error;
use super::objects::{self, Capacity, Snapshot, Volume};
use super::table::{Table, cell, human, output, quantity};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// strata's PVs with their pods: bound to claims of the namespace, or all with `-A`; only those
/// on `node` when given.
pub fn volumes(cli: &Cli, k: &Kubectl, all: bool, node: Option<&str>) -> Result<String, Error> {
    let rows = volume_rows(cli, k, all, node)?;
    let table = |rows: &[Volume], wide: bool| Table {
        headers: if wide { &VOLUME_COLUMNS } else { &VOLUME_COLUMNS[..8] },
        rows: rows
            .iter()
            .map(|v| {
                let pods = if v.pods.is_empty() { "<none>".to_owned() } else { v.pods.join(",") };
                let mut row = vec![
                    v.name.clone(),
                    v.kind.to_owned(),
                    cell(v.node.as_deref()),
                    v.backend.clone(),
                    cell(v.size.as_deref()),
                    cell(v.phase.as_deref()),
                    cell(v.claim.as_deref()),
                    pods,
                ];
                if wide {
                    row.extend([cell(v.storage_class.as_deref()), v.volume_id.clone()]);
                }
                row
            })
            .collect(),
    };
    output(cli.output, &rows, table, |v| format!("persistentvolume/{}", v.name))
}

/// The columns of `volumes`; `-o wide` adds the last two.
const VOLUME_COLUMNS: [&str; 10] =
    ["NAME", "KIND", "NODE", "BACKEND", "SIZE", "PHASE", "CLAIM", "PODS", "STORAGECLASS", "VOLUME ID"];

fn volume_rows(cli: &Cli, k: &Kubectl, all: bool, node: Option<&str>) -> Result<Vec<Volume>, Error> {
    let mut vols: Vec<Volume> = k
        .items(&["persistentvolumes"], Scope::Cluster)?
        .iter()
        .filter_map(|pv| objects::volume(pv, &cli.driver))
        .collect();
    let scope = if all { Scope::All } else { Scope::Namespace };
    if !all {
        let claims: BTreeSet<String> = k
            .items(&["persistentvolumeclaims"], scope)?
            .iter()
            .filter_map(|c| {
                Some(format!(
                    "{}/{}",
                    c.pointer("/metadata/namespace")?.as_str()?,
                    c.pointer("/metadata/name")?.as_str()?
                ))
            })
            .collect();
        vols.retain(|v| v.claim.as_ref().is_some_and(|c| claims.contains(c)));
    }
    if let Some(n) = node {
        vols.retain(|v| v.node.as_deref() == Some(n));
    }
    if !vols.is_empty() {
        let pods = objects::pods_by_claim(&k.items(&["pods"], scope)?);
        for v in &mut vols {
            v.pods = v.claim.as_ref().and_then(|c| pods.get(c)).cloned().unwrap_or_default();
        }
    }
    Ok(vols)
}

/// One row of `nodes`: what a node offers a StorageClass, and its strata volumes of that class.
#[derive(Debug, Serialize)]
struct NodeRow {
    node: String,
    storage_class: Option<String>,
    free: Option<String>,
    maximum_volume_size: Option<String>,
    volumes: usize,
}

/// Per node and StorageClass: the free bytes of strata's CSIStorageCapacity and the number of
/// strata PVs; nodes with volumes but no capacity object (FlexVolume-only nodes) too.
pub fn nodes(cli: &Cli, k: &Kubectl) -> Result<String, Error> {
    let caps: Vec<Capacity> = k
        .items(&["csistoragecapacities.storage.k8s.io"], Scope::All)?
        .iter()
        .filter_map(|c| objects::capacity(c, &cli.driver))
        .collect();
    let vols: Vec<Volume> = k
        .items(&["persistentvolumes"], Scope::Cluster)?
        .iter()
        .filter_map(|pv| objects::volume(pv, &cli.driver))
        .collect();
    output(cli.output, &node_rows(caps, vols), node_table, |r| format!("node/{}", r.node))
}

/// One row per node and StorageClass, sorted: each capacity object's, and one for the volumes
/// of a node and class that have none.
fn node_rows(caps: Vec<Capacity>, vols: Vec<Volume>) -> Vec<NodeRow> {
    let mut rows: BTreeMap<(String, Option<String>), NodeRow> = BTreeMap::new();
    for c in caps {
        let key = (c.node.clone(), Some(c.storage_class.clone()));
        rows.insert(
            key,
            NodeRow {
                node: c.node,
                storage_class: Some(c.storage_class),
                free: c.free,
                maximum_volume_size: c.maximum_volume_size,
                volumes: 0,
            },
        );
    }
    for v in vols {
        let node = v.node.unwrap_or_else(|| "<unknown>".to_owned());
        let row = rows.entry((node.clone(), v.storage_class.clone())).or_insert_with(|| NodeRow {
            node,
            storage_class: v.storage_class,
            free: None,
            maximum_volume_size: None,
            volumes: 0,
        });
        row.volumes += 1;
    }
    rows.into_values().collect()
}

/// The nodes table: free bytes and the largest volume as quantities.
fn node_table(rows: &[NodeRow], _wide: bool) -> Table {
    Table {
        headers: &["NODE", "STORAGECLASS", "FREE", "MAX VOLUME", "VOLUMES"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.node.clone(),
                    cell(r.storage_class.as_deref()),
                    quantity(r.free.as_deref()),
                    quantity(r.maximum_volume_size.as_deref()),
                    r.volumes.to_string(),
                ]
            })
            .collect(),
    }
}

/// strata's VolumeSnapshotContents.
pub fn snapshots(cli: &Cli, k: &Kubectl) -> Result<String, Error> {
    let rows: Vec<Snapshot> = k
        .items(&["volumesnapshotcontents.snapshot.storage.k8s.io"], Scope::Cluster)?
        .iter()
        .filter_map(|c| objects::snapshot(c, &cli.driver))
        .collect();
    let table = |rows: &[Snapshot], wide: bool| Table {
        headers: if wide { &SNAPSHOT_COLUMNS } else { &SNAPSHOT_COLUMNS[..7] },
        rows: rows
            .iter()
            .map(|s| {
                let mut row = vec![
                    s.name.clone(),
                    cell(s.snapshot.as_deref()),
                    cell(s.source_volume.as_deref()),
                    cell(s.node.as_deref()),
                    s.restore_size.map_or_else(|| "<none>".to_owned(), human),
                    s.ready.map_or_else(|| "<none>".to_owned(), |r| r.to_string()),
                    cell(s.deletion_policy.as_deref()),
                ];
                if wide {
                    row.push(cell(s.snapshot_handle.as_deref()));
                }
                row
            })
            .collect(),
    };
    output(cli.output, &rows, table, |s| format!("volumesnapshotcontent/{}", s.name))
}

/// The columns of `snapshots`; `-o wide` adds the last.
const SNAPSHOT_COLUMNS: [&str; 8] =
    ["NAME", "SNAPSHOT", "SOURCE VOLUME", "NODE", "SIZE", "READY", "POLICY", "SNAPSHOT HANDLE"];
