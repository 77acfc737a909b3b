//! `strata-csi serve --metrics-address`: scrape `/metrics` from the real server after a known
//! sequence of calls and check exact counters and gauges, parsed by the Prometheus text-format
//! parser (root tier: real mounts and loop devices).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;
mod metrics_support;

use csi_support::*;
use metrics_support::{get, metrics_address, parse, scrape, scrape_surveyed};
use strata::csi::proto as p;
use strata::csi::volume_id::VolumeId;
use tonic::Code;

fn start(extra: &[&str]) -> (Server, String) {
    let mut args =
        vec!["--backends", "dir,loop,tmpfs", "--metrics-address", "127.0.0.1:0", "--metrics-survey-seconds", "0"];
    args.extend_from_slice(extra);
    let s = Server::start_with(&args);
    let addr = metrics_address(&|| s.log_text());
    (s, addr)
}

async fn create_sized(c: &mut Clients, name: &str, bytes: i64, pairs: &[(&str, &str)]) -> (String, u64) {
    let vol = c.ctl.create_volume(create_req(name, bytes, pairs)).await.unwrap().into_inner().volume.unwrap();
    (vol.volume_id, u64::try_from(vol.capacity_bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_gauges_after_a_known_sequence_of_calls() {
    require_root();
    let (s, addr) = start(&[]);
    let mut c = s.clients().await;
    let (a, a_bytes) = create_sized(&mut c, "pvc-a", 1 << 20, &[("backend", "dir")]).await;
    let (b, b_bytes) = create_sized(&mut c, "pvc-b", 32 << 20, &[("backend", "loop")]).await;
    let (_t, t_bytes) = create_sized(&mut c, "pvc-t", 8 << 20, &[("backend", "tmpfs")]).await;
    let (q, _) = create_sized(&mut c, "pvc-q", 1 << 20, &[("backend", "dir")]).await;
    assert_eq!(
        code(c.ctl.create_volume(create_req("pvc-x", 1 << 20, &[("backend", "nope")])).await),
        Code::InvalidArgument
    );
    std::fs::create_dir_all(s.kubelet.join("pods/p1")).unwrap();
    let (sa, sb, target) = (s.path("sa"), s.path("sb"), s.path("pods/p1/vol"));
    c.node.node_stage_volume(stage_req(&a, &sa, mount_cap())).await.unwrap();
    c.node.node_stage_volume(stage_req(&b, &sb, mount_cap())).await.unwrap();
    for _ in 0..2 {
        c.node.node_publish_volume(publish_req(&a, &sa, &target, mount_cap())).await.unwrap();
    }
    let held = hold_lock(&s.root, &a);
    assert_eq!(code(c.node.node_unpublish_volume(unpublish_req(&a, &target)).await), Code::Aborted);
    drop(held);
    let snap = p::CreateSnapshotRequest { source_volume_id: a.clone(), name: "snap-1".into(), ..Default::default() };
    c.ctl.create_snapshot(snap).await.unwrap();
    let missing = format!("{}-gone@{}", "pvc", a.rsplit_once('@').unwrap().1);
    assert_eq!(code(c.node.node_get_volume_stats(stats_req(&missing, &target)).await), Code::NotFound);
    // One record that does not read (quarantined), one staging mount gone (abnormal).
    let local = VolumeId::parse(&q).unwrap().local;
    std::fs::write(s.root.join("volumes").join(local).join("volume.json"), "{ not json").unwrap();
    let place = strata::sys::place_at(std::path::Path::new(&sb)).unwrap();
    strata::sys::Host::unmount(&strata::sys::LinuxHost, &place, true).unwrap();

    let m = parse(&scrape_surveyed(&addr));
    let ops = |method: &str, code: &str| m.get("strata_operations_total", &[("method", method), ("code", code)]);
    assert_eq!(ops("CreateVolume", "OK"), 4.0);
    assert_eq!(ops("CreateVolume", "InvalidArgument"), 1.0);
    assert_eq!(ops("NodeStageVolume", "OK"), 2.0);
    assert_eq!(ops("NodePublishVolume", "OK"), 2.0);
    assert_eq!(ops("NodeUnpublishVolume", "Aborted"), 1.0);
    assert_eq!(ops("CreateSnapshot", "OK"), 1.0);
    assert_eq!(ops("NodeGetVolumeStats", "NotFound"), 1.0);
    assert_eq!(m.find("strata_operations_total", &[("method", "NodeUnpublishVolume"), ("code", "OK")]), None);
    let ops_total: f64 = m.all("strata_operations_total").iter().map(|s| s.value).sum();
    assert_eq!(ops_total, 12.0, "only the calls above (the harness's readiness check is a plain connect)");
    let hist =
        |suffix: &str, labels: &[(&str, &str)]| m.get(&format!("strata_operation_duration_seconds{suffix}"), labels);
    assert_eq!(hist("_count", &[("method", "CreateVolume")]), 5.0);
    assert_eq!(hist("_bucket", &[("method", "CreateVolume"), ("le", "+Inf")]), 5.0);
    assert_eq!(hist("_count", &[("method", "NodePublishVolume")]), 2.0);
    assert!(hist("_sum", &[("method", "NodePublishVolume")]) > 0.0);
    assert_eq!(m.all("strata_operation_duration_seconds_bucket").len(), 6 * 20, "6 methods called, 19 bounds + +Inf");

    let g = |name: &str, backend: &str| m.get(name, &[("backend", backend)]);
    // The quarantined dir volume's record does not read: the survey's count of the ledger leaves
    // it out (it shows as quarantined below).
    assert_eq!(
        (g("strata_volumes", "dir"), g("strata_volumes", "loop"), g("strata_volumes", "tmpfs")),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(g("strata_provisioned_bytes", "dir"), a_bytes as f64);
    assert_eq!(g("strata_provisioned_bytes", "loop"), b_bytes as f64);
    assert_eq!(g("strata_provisioned_bytes", "tmpfs"), t_bytes as f64);
    assert_eq!(g("strata_promised_bytes", "dir"), 0.0);
    assert_eq!(g("strata_promised_bytes", "tmpfs"), t_bytes as f64);
    let promised_loop = g("strata_promised_bytes", "loop");
    assert!(
        promised_loop > 0.0 && promised_loop < b_bytes as f64,
        "mkfs wrote part of the sparse image: {promised_loop}"
    );
    assert_eq!((g("strata_snapshots", "dir"), g("strata_snapshots", "loop")), (1.0, 0.0));
    let root = strata::sys::Host::statvfs(&strata::sys::LinuxHost, &s.root).unwrap();
    assert_eq!(m.get("strata_root_capacity_bytes", &[]), root.total_bytes as f64);
    assert!(g("strata_free_bytes", "dir") > 0.0 && g("strata_free_bytes", "tmpfs") > 0.0);
    assert_eq!(m.get("strata_volumes_staged", &[]), 2.0);
    assert_eq!(m.get("strata_volumes_published", &[]), 1.0);
    assert_eq!(m.get("strata_publications", &[]), 1.0);
    assert_eq!(m.get("strata_volumes_quarantined", &[]), 1.0);
    assert_eq!(m.get("strata_volumes_abnormal", &[]), 1.0);
    assert_eq!(m.get("strata_loop_devices_attached", &[]), 1.0);
    assert_eq!(m.get("strata_lock_waits_total", &[]), 1.0);
    assert!(m.get("strata_lock_wait_seconds_total", &[]) < 1.0);
    assert_eq!(m.get("strata_reconcile_actions", &[]), 0.0);
    assert_eq!(m.get("strata_reconcile_errors", &[]), 0.0);
    let build = m.all("strata_build_info");
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(!build[0].labels["commit"].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flex_volumes_show_in_the_gauges_and_add_no_calls() {
    require_root();
    let (s, addr) = start(&[]);
    let flex = env!("CARGO_BIN_EXE_strata-flex");
    let before = parse(&scrape_surveyed(&addr));
    assert_eq!(before.get("strata_volumes", &[("backend", "dir")]), 0.0);
    let target = s.kubelet.join("pods/p1/volumes/strata~flex/v1");
    std::fs::create_dir_all(&target).unwrap();
    let opts = r#"{"kubernetes.io/pvOrVolumeName":"v1","kubernetes.io/readwrite":"rw","backend":"dir","size":"1Mi"}"#;
    let out = std::process::Command::new(flex)
        .env("STRATA_FLEX_ROOT", &s.root)
        .env("STRATA_FLEX_KUBELET_DIR", &s.kubelet)
        .env("STRATA_FLEX_LOG", "off")
        .env_remove("STRATA_FLEX_CONFIG")
        .args(["mount", target.to_str().unwrap(), opts])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let after = parse(&scrape_surveyed(&addr));
    assert_eq!(after.get("strata_volumes", &[("backend", "dir")]), 1.0, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(after.get("strata_volumes_staged", &[]), 1.0);
    assert_eq!(after.get("strata_volumes_published", &[]), 1.0);
    assert!(after.all("strata_operations_total").is_empty(), "FlexVolume calls are not CSI calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_at_start_is_counted_and_other_paths_are_refused() {
    require_root();
    let (mut s, _) = start(&[]);
    let mut c = s.clients().await;
    let b = create(&mut c, "pvc-b", 32 << 20, &[("backend", "loop")]).await;
    let sb = s.path("sb");
    c.node.node_stage_volume(stage_req(&b, &sb, mount_cap())).await.unwrap();
    drop(c);
    s.stop(nix::sys::signal::Signal::SIGTERM);
    // A reboot: the staging mount and the loop device are gone.
    cleanup(s.dir.path());
    assert!(loops_under(s.dir.path()).is_empty());
    std::fs::write(&s.log, "").unwrap();
    s.spawn();
    let addr = metrics_address(&|| s.log_text());
    let m = parse(&scrape_surveyed(&addr));
    let log = strip_colours(&s.log_text());
    let logged = log.lines().filter(|l| l.contains(" reconcile action=")).count();
    assert!(logged > 0, "the reconcile re-attached the loop device:\n{}", s.log_text());
    assert_eq!(m.get("strata_reconcile_actions", &[]), logged as f64);
    assert_eq!(m.get("strata_reconcile_errors", &[]), 0.0);
    assert_eq!(m.get("strata_loop_devices_attached", &[]), 1.0);
    let (status, _, _) = get(&addr, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn metrics_are_off_unless_asked_for_and_a_bad_address_stops_the_start() {
    let s = Server::start_with(&["--backends", "dir"]);
    assert!(!s.log_text().contains("metrics at"), "{}", s.log_text());
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--endpoint"])
        .arg(format!("unix://{}", dir.path().join("csi.sock").display()))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["--node-id", "n", "--metrics-address", "256.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics address 256.0.0.1:1"), "{out:?}");
    assert!(!dir.path().join("root").exists(), "the root was opened (and its volumes bound) before refusing");
}

/// The log without its terminal colour codes.
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// `--metrics-address :PORT`, as the sidecars beside it take theirs: every address of the host.
#[test]
fn a_port_alone_listens_on_every_address() {
    require_root();
    let s = Server::start_with(&["--backends", "dir", "--metrics-address", ":0"]);
    let addr = metrics_address(&|| s.log_text());
    let port = addr.rsplit_once(':').unwrap().1;
    assert_ne!(port, "0", "the log names the port bound: {addr}");
    for host in ["127.0.0.1", "[::1]"] {
        let body = scrape(&format!("{host}:{port}"));
        assert!(body.contains("strata_build_info"), "{host}");
    }
}
