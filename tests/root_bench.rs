//! Root tier: `strata-csi bench` with tiny counts against a server it starts itself. Checks that
//! the JSON has every section with sane numbers; no timing assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_strata-csi");

fn summary_ok(v: &Value, what: &str, n: u64) {
    assert_eq!(v["n"].as_u64(), Some(n), "{what}: {v}");
    let (p50, p99) = (v["p50_us"].as_f64().unwrap(), v["p99_us"].as_f64().unwrap());
    assert!(p50 > 0.0 && p99 >= p50 && v["max_us"].as_f64().unwrap() >= p99, "{what}: {v}");
}

fn run_bench(dir: &std::path::Path) -> (Value, String) {
    let json = dir.join("report.json");
    let args = [
        "bench",
        "--iterations",
        "3",
        "--warmup",
        "1",
        "--population",
        "5",
        "--clients",
        "1,2",
        "--throughput-seconds",
        "1",
        "--flex-rounds",
        "3",
        "--floor-iterations",
        "20",
        "--loop-rounds",
        "1",
        "--loop-size",
        "64Mi",
    ];
    let out = Command::new(BIN).args(args).arg("--work-dir").arg(dir).arg("--json").arg(&json).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (report, String::from_utf8(out.stdout).unwrap())
}

#[test]
fn bench_reports_every_section() {
    assert!(nix::unistd::geteuid().is_root(), "strata-csi bench mounts and attaches loop devices: run it as root");
    let dir = tempfile::tempdir().unwrap();
    let (r, markdown) = run_bench(dir.path());

    assert_eq!(r["meta"]["load_before"].as_array().unwrap().len(), 3);
    assert!(r["meta"]["mounts_before"].as_u64().unwrap() > 0);
    let floor = &r["floor"];
    for key in ["bind_pair", "statx", "mountinfo", "record_cached", "record_durable"] {
        summary_ok(&floor[key], key, 20);
    }

    let d = &r["drivers"][0];
    assert_eq!(d["label"], "strata (self-started)");
    assert_eq!(d["stages"], true);
    for when in ["at_rest", "after_population", "after_run"] {
        let kib = d["memory"][when]["rss_kib"].as_u64().unwrap();
        assert!(kib > 1024 && kib < 1024 * 1024, "{when}: {kib} KiB");
    }
    summary_ok(&d["rpc_floor"], "rpc floor", 3);
    summary_ok(&d["create_delete"]["pair"], "create+delete", 3);
    assert!(d["create_delete"]["server_cpu_us"].as_f64().unwrap() > 0.0);
    let classes: Vec<&str> = d["cycles"].as_array().unwrap().iter().map(|c| c["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["dir", "loop ext4", "tmpfs"]);
    for c in d["cycles"].as_array().unwrap() {
        for part in ["cycle", "stage", "publish", "unpublish", "unstage"] {
            summary_ok(&c[part], part, 3);
        }
    }
    assert!(d["cycle_kernel_cpu_us"].as_f64().unwrap() > 0.0, "the cycle's kernel floor: {d}");
    assert!(markdown.contains("Node cycle floor"));
    let scale = &d["at_scale"];
    assert_eq!(scale["population"], 5);
    assert!(scale["mountinfo_lines"].as_u64().unwrap() >= r["meta"]["mounts_before"].as_u64().unwrap() + 10);
    assert!(scale["ratio_p50"].as_f64().unwrap() > 0.0);
    summary_ok(&scale["cycle"]["cycle"], "at scale", 3);
    let tp = d["throughput"].as_array().unwrap();
    assert_eq!(tp.iter().map(|t| t["clients"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert!(tp.iter().all(|t| t["cycles"].as_u64().unwrap() > 0 && t["calls_per_second"].as_f64().unwrap() > 0.0));

    let rows = r["flex"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["static_binary"], true, "the exec floor must be a static binary");
    rows.iter().for_each(|x| summary_ok(&x["latency"], x["what"].as_str().unwrap(), 3));

    summary_ok(&r["loop_ext4"]["strata"], "loop strata", 1);
    summary_ok(&r["loop_ext4"]["tools"], "loop tools", 1);
    assert!(r["loop_ext4"]["ratio_p50"].as_f64().unwrap() > 0.0);

    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 8, "{targets:?}");
    assert!(markdown.contains("## Targets") && markdown.contains("## Floors"));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("report.json")], "the run left files or mounts behind");
}

#[test]
fn the_cycle_section_runs_the_node_cycles_and_their_floor_alone() {
    assert!(nix::unistd::geteuid().is_root(), "strata-csi bench mounts and attaches loop devices: run it as root");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let args = ["bench", "--sections", "cycle", "--self-backends", "dir", "--iterations", "3", "--warmup", "1"];
    let out = Command::new(BIN).args(args).arg("--work-dir").arg(dir.path()).arg("--json").arg(&json).output().unwrap();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let d = &r["drivers"][0];
    let classes: Vec<&str> = d["cycles"].as_array().unwrap().iter().map(|c| c["class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["dir"]);
    summary_ok(&d["cycles"][0]["cycle"], "cycle", 3);
    assert!(d["cycles"][0]["server_cpu_us"].as_f64().unwrap() > 0.0);
    summary_ok(&d["rpc_floor"], "rpc floor", 3);
    assert!(d["cycle_kernel_cpu_us"].as_f64().unwrap() > 0.0);
    assert!(d["create_delete"].is_null() && d["throughput"].as_array().unwrap().is_empty(), "only the cycles: {d}");
    assert!(r["floor"].is_null() && r["flex"].is_null() && r["loop_ext4"].is_null());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("report.json")], "the run left files or mounts behind");
}
