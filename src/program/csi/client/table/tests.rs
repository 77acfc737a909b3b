//! Unit tests of the client tables against CSI answers as JSON.

use super::*;
use serde_json::json;

/// The cells of each line, split at runs of two or more spaces.
fn cells(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()).collect()
}

#[test]
fn volumes_table_has_one_aligned_row_per_volume() {
    let v = json!({"volumes": [
        {"volume_id": "pvc-a@n1", "capacity_bytes": 1073741824, "volume_context": {"backend": "dir"},
         "accessible_topology": [{"topology.strata.csi.dev/node": "n1"}],
         "condition": {"abnormal": false, "message": "healthy"}},
        {"volume_id": "pvc-long-name@n1", "capacity_bytes": 314572800,
         "volume_context": {"backend": "loop", "fsType": "xfs"}, "published_node_ids": ["n1", "n2"],
         "condition": {"abnormal": true, "message": "the staging mount at /s is gone"}},
    ], "next_token": ""});
    let out = volumes(&v, false);
    assert_eq!(
        cells(&out),
        vec![
            vec!["ID", "BACKEND", "SIZE", "NODE", "PUBLISHED", "HEALTH"],
            vec!["pvc-a@n1", "dir", "1Gi", "n1", "-", "healthy"],
            vec!["pvc-long-name@n1", "loop/xfs", "300Mi", "-", "n1,n2", "abnormal: the staging mount at /s is gone"],
        ]
    );
    let lines: Vec<&str> = out.lines().collect();
    let col = |l: &str| l.find("BACKEND").or_else(|| l.find("dir")).or_else(|| l.find("loop/xfs"));
    assert!(lines.iter().all(|l| col(l) == col(lines[0])), "aligned:\n{out}");
}

#[test]
fn wide_volumes_add_the_source_and_the_context() {
    let v = json!({"volumes": [{"volume_id": "c@n1", "capacity_bytes": 1024, "volume_context": {"backend": "dir"},
                                "content_source": {"snapshot_id": "s@n1"}}], "next_token": ""});
    assert_eq!(
        cells(&volumes(&v, true)),
        vec![
            vec!["ID", "BACKEND", "SIZE", "NODE", "HEALTH", "SOURCE", "CONTEXT"],
            vec!["c@n1", "dir", "1Ki", "-", "-", "s@n1", "backend=dir"],
        ]
    );
}

#[test]
fn pages_with_more_say_how_to_get_the_next() {
    let out = volumes(&json!({"volumes": [], "next_token": "7"}), false);
    assert_eq!(out, "ID   BACKEND   SIZE   NODE   HEALTH\n(more: --starting-token 7)\n", "PUBLISHED: no row knows");
}

#[test]
fn snapshots_and_capacity_tables() {
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let created = humantime::format_rfc3339_seconds(two_hours_ago).to_string();
    let v = json!({"snapshots": [{"snapshot_id": "s@n", "source_volume_id": "v@n", "size_bytes": 1048576,
                                  "creation_time": created, "ready_to_use": true}], "next_token": ""});
    assert_eq!(cells(&snapshots(&v, false))[1], vec!["s@n", "v@n", "1Mi", "true", "2h"]);
    let wide = cells(&snapshots(&v, true));
    assert_eq!((wide[0][5].as_str(), wide[1][5].as_str()), ("CREATED", created.as_str()));
    let c = json!({"available_capacity": 1610612736u64, "maximum_volume_size": null, "minimum_volume_size": 1});
    assert_eq!(cells(&capacity(&c, false)), vec![vec!["AVAILABLE", "MAXIMUM", "MINIMUM"], vec!["1.5Gi", "-", "1"]]);
}

#[test]
fn sizes_and_ages() {
    assert_eq!(size(&json!(4096)), Some("4Ki".into()));
    assert_eq!(size(&json!(1000)), Some("1000".into()));
    assert_eq!(size(&json!(5u64 << 40)), Some("5Ti".into()));
    assert_eq!(size(&json!("x")), None);
    assert_eq!((age(59), age(60), age(86399), age(86400 * 3)), ("59s".into(), "1m".into(), "23h".into(), "3d".into()));
}
