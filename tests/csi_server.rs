//! The `strata-csi` process: socket handling, graceful shutdown, TCP, and the client commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;
use strata::csi::proto::{self as p};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0660_and_gone_after_sigterm() {
    let mut s = Server::start();
    let meta = std::fs::metadata(&s.sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let status = s.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(!s.sock.exists());
    // A stale socket (left by SIGKILL) is replaced on the next start.
    s.spawn();
    s.stop(Signal::SIGKILL);
    assert!(s.sock.exists(), "SIGKILL leaves the socket behind");
    s.spawn();
    let mut c = s.clients().await;
    c.id.probe(p::ProbeRequest {}).await.unwrap();
    let status = s.stop(Signal::SIGINT);
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_live_socket_refuses_to_start() {
    let mut s = Server::start();
    let ino = std::fs::metadata(&s.sock).unwrap().ino();
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--node-id", "n", "--endpoint", &s.endpoint(), "--root"])
        .arg(other.path().join("root"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("another server is listening at {}", s.sock.display())), "{stderr}");
    assert!(!other.path().join("root").exists(), "the second server opened its root before refusing");
    // The first server keeps its socket and still answers.
    assert_eq!(std::fs::metadata(&s.sock).unwrap().ino(), ino);
    let mut c = s.clients().await;
    c.id.probe(p::ProbeRequest {}).await.unwrap();
    assert!(s.stop(Signal::SIGTERM).success());
}

#[test]
fn a_file_that_is_not_a_socket_is_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("csi.sock");
    std::fs::write(&path, "precious").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--node-id", "n", "--endpoint"])
        .arg(format!("unix://{}", path.display()))
        .arg("--root")
        .arg(dir.path().join("root"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    cleanup(dir.path()); // the server gave the root's volumes a mount before it met the file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_calls_in_flight_finish() {
    let mut s = Server::start();
    let c = s.clients().await;
    // The test holds the capacity accounting lock, as another create would: a loop CreateVolume
    // waits for it (up to 30 s), so the call is in flight for as long as the test says.
    let accounting =
        strata::engine::lock::VolumeLock::acquire(&s.root.join("locks"), ".capacity", strata::engine::Wait::No)
            .unwrap();
    let mut ctl = c.ctl.clone();
    let req = create_req("pvc-slow", 16 << 20, &[("backend", "loop")]);
    let create = tokio::spawn(async move { ctl.create_volume(req).await });
    while !s.log_text().contains("CreateVolume") {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    nix::sys::signal::kill(s.pid(), Signal::SIGTERM).unwrap();
    while !s.log_text().contains("stopping") {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(!create.is_finished(), "the call waits for the accounting lock");
    drop(accounting);
    let made = create.await.unwrap().expect("the call in flight completes").into_inner();
    let status = s.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    let id = made.volume.unwrap().volume_id;
    assert!(s.root.join("volumes").join(id.rsplit_once('@').unwrap().0).join("volume.json").exists());
    let log = s.log_text();
    let stopping = log.find("stopping").expect("logged the stop");
    let started = log.find("CreateVolume").expect("logged the call");
    assert!(started < stopping, "the call started before the signal:\n{log}");
    assert!(log[stopping..].contains("CreateVolume"), "and finished after it:\n{log}");
}

/// Calls `path` on `channel` with an empty Probe request: what the server answers.
async fn call_path(channel: tonic::transport::Channel, path: &'static str) -> Result<p::ProbeResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<p::ProbeRequest, p::ProbeResponse>::default();
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(p::ProbeRequest {}), path, codec).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_and_methods_are_unimplemented_and_the_connection_serves_on() {
    let s = Server::start();
    let ch = s.channel().await;
    for path in ["/csi.v1.Nothing/Probe", "/csi.v1.Identity/Nothing", "/csi.v1.Identity", "/", "/csi.v1.Node/"] {
        let err = call_path(ch.clone(), path).await.expect_err(path);
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{path}: {err:?}");
    }
    let known = call_path(ch.clone(), "/csi.v1.Identity/Probe").await.expect("Probe by its path");
    assert_eq!(known.ready, Some(true));
    let mut c = Clients::from_channel(ch);
    c.id.probe(p::ProbeRequest {}).await.expect("the same connection still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_pauses_between_accepts_and_serves_again_once_they_free() {
    let mut s = Server::start_under(&["prlimit", "--nofile=64", "--"], NODE, None, &[], |_| {});
    // More idle connections than the server has descriptors left: its accepts fail (EMFILE).
    let held: Vec<_> = (0..100).map(|_| std::os::unix::net::UnixStream::connect(&s.sock).unwrap()).collect();
    let failures = || s.log_text().matches("accepting a connection failed").count();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failures() == 0 {
        assert!(std::time::Instant::now() < deadline, "no accept failed:\n{}", s.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = failures();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // One failure per 50 ms pause at most (20 in that second), not one per spin of the loop.
    let more = failures() - first;
    assert!(more <= 40, "{more} accept failures in one second: the accept loop spins");
    drop(held);
    let mut c = s.clients().await;
    c.id.probe(p::ProbeRequest {}).await.expect("serves once the connections are gone");
    assert!(s.stop(Signal::SIGTERM).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_tcp_too() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["serve", "--node-id", "n", "--endpoint", &endpoint, "--root"])
        .arg(dir.path().join("root"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = None;
    for _ in 0..100 {
        let o = Command::new(BIN).args(["client", "--endpoint", &endpoint, "info"]).output().unwrap();
        if o.status.success() {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());
    let out = out.expect("the client reached the TCP endpoint");
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: strata.csi.dev"));
    cleanup(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_print_text_or_json_and_fail_with_the_code() {
    let s = Server::start();
    let info = s.client(&["info"]);
    assert!(info.status.success());
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("name: strata.csi.dev") && text.contains("ready: true"), "{text}");
    let caps = String::from_utf8_lossy(&s.client(&["caps"]).stdout).into_owned();
    assert!(caps.contains("CREATE_DELETE_VOLUME") && caps.contains("STAGE_UNSTAGE_VOLUME"), "{caps}");
    let made = s.client(&["--json", "create-volume", "pvc-cli", "--size", "1Mi", "--param", "backend=dir"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let v: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(v["volume_id"], format!("pvc-cli@{NODE}"));
    assert_eq!(v["capacity_bytes"], 1 << 20);
    let listed: serde_json::Value = serde_json::from_slice(&s.client(&["--json", "list-volumes"]).stdout).unwrap();
    assert_eq!(listed["volumes"].as_array().unwrap().len(), 1);
    let cap: serde_json::Value = serde_json::from_slice(&s.client(&["--json", "capacity"]).stdout).unwrap();
    assert!(cap["available_capacity"].as_i64().unwrap() > 0);
    let foreign = s.client(&["delete-volume", "pvc-cli@node-b"]);
    assert_eq!(foreign.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&foreign.stderr).contains("FAILED_PRECONDITION"));
    let missing = s.client(&["--json", "stats", &format!("nope@{NODE}"), "--path", "/x"]);
    assert_eq!(missing.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    let deleted = s.client(&["delete-volume", &format!("pvc-cli@{NODE}")]);
    assert!(deleted.status.success());
    let nobody = Command::new(BIN).args(["client", "--endpoint", "unix:///nonexistent/csi.sock", "info"]).output();
    let nobody = nobody.unwrap();
    assert_eq!(nobody.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("UNAVAILABLE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_drives_the_node_side_too() {
    require_root();
    let s = Server::start();
    let ok = |args: &[&str]| {
        let out = s.client(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["create-volume", "pvc-n", "--size", "32Mi", "--param", "backend=loop"]);
    let id = format!("pvc-n@{NODE}");
    let (staging, target) = (s.path("st"), s.path("tg"));
    ok(&["stage", &id, "--staging-path", &staging]);
    ok(&["publish", &id, "--staging-path", &staging, "--target-path", &target, "--readonly"]);
    let stats = ok(&["stats", &id, "--path", &target]);
    assert!(stats.contains("total_bytes:"), "{stats}");
    ok(&["unpublish", &id, "--target-path", &target]);
    ok(&["unstage", &id, "--staging-path", &staging]);
    ok(&["delete-volume", &id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_takes_snapshots_restores_and_expands() {
    require_root();
    let s = Server::start();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = s.client(&[&["--json"], args].concat());
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let vol = json(&["create-volume", "pvc-s", "--size", "1Mi"])["volume_id"].as_str().unwrap().to_owned();
    let snap = json(&["create-snapshot", "snap-s", "--source", &vol]);
    let snap_id = snap["snapshot_id"].as_str().unwrap().to_owned();
    assert_eq!((snap["source_volume_id"].as_str(), snap["ready_to_use"].as_bool()), (Some(vol.as_str()), Some(true)));
    assert_eq!(json(&["get-snapshot", &snap_id])["size_bytes"], 1 << 20);
    let listed = json(&["list-snapshots", "--source-volume-id", &vol]);
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 1);
    let restored = json(&["create-volume", "pvc-r", "--size", "2Mi", "--from-snapshot", &snap_id]);
    assert_eq!(restored["content_source"]["snapshot_id"].as_str(), Some(snap_id.as_str()));
    let cloned = json(&["create-volume", "pvc-c", "--from-volume", &vol]);
    assert_eq!(cloned["capacity_bytes"], 1 << 20);
    let got = json(&["get-volume", &vol]);
    assert_eq!(got["condition"]["abnormal"], false);
    let grown = json(&["expand", &vol, "--size", "4Mi"]);
    assert_eq!(
        (grown["capacity_bytes"].as_i64(), grown["node_expansion_required"].as_bool()),
        (Some(4 << 20), Some(true))
    );
    let dir = s.path("somewhere");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(json(&["node-expand", &vol, "--path", &dir, "--size", "4Mi"])["capacity_bytes"], 4 << 20);
    assert_eq!(json(&["delete-snapshot", &snap_id])["deleted"].as_str(), Some(snap_id.as_str()));
    assert!(json(&["list-snapshots"])["snapshots"].as_array().unwrap().is_empty());
}

/// The cells of a table's lines, split at runs of two or more spaces.
fn table(out: &std::process::Output) -> Vec<Vec<String>> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lists_as_tables_by_default_and_in_full_with_o_json_or_yaml() {
    require_root();
    let s = Server::start();
    let made = s.client(&["create-volume", "pvc-t", "--size", "64Mi", "--param", "backend=loop", "--fs-type", "xfs"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let id = format!("pvc-t@{NODE}");
    let rows = table(&s.client(&["list-volumes"]));
    // PUBLISHED (published_node_ids) is left out: strata has no controller publish to report.
    assert_eq!(rows[0], ["ID", "BACKEND", "SIZE", "NODE", "HEALTH"]);
    assert_eq!(rows[1], [id.as_str(), "loop/xfs", "300Mi", NODE, "healthy"], "raised to the xfs minimum");
    assert_eq!(rows.len(), 2);
    let json: serde_json::Value = serde_json::from_slice(&s.client(&["-o", "json", "list-volumes"]).stdout).unwrap();
    let yaml: serde_json::Value = serde_norway::from_slice(&s.client(&["-o", "yaml", "list-volumes"]).stdout).unwrap();
    assert_eq!(json, yaml, "json and yaml carry the same full answer");
    assert_eq!(json["volumes"][0]["volume_id"], id.as_str());
    assert_eq!(json["volumes"][0]["capacity_bytes"], 300 << 20);
    assert_eq!(json["volumes"][0]["volume_context"]["fsType"], "xfs");
    let alias: serde_json::Value = serde_json::from_slice(&s.client(&["--json", "list-volumes"]).stdout).unwrap();
    assert_eq!(alias, json, "--json is -o json");

    let snap = s.client(&["create-snapshot", "snap-t", "--source", &id]);
    assert!(snap.status.success(), "{}", String::from_utf8_lossy(&snap.stderr));
    let rows = table(&s.client(&["list-snapshots"]));
    assert_eq!(rows[0], ["ID", "SOURCE", "SIZE", "READY", "AGE"]);
    assert_eq!(rows[1][..4], [format!("snap-t@{NODE}"), id.clone(), "300Mi".into(), "true".into()]);
    let snaps: serde_json::Value =
        serde_norway::from_slice(&s.client(&["-o", "yaml", "list-snapshots"]).stdout).unwrap();
    assert_eq!(snaps["snapshots"][0]["size_bytes"], 300 << 20);

    let rows = table(&s.client(&["capacity", "--param", "backend=loop", "--fs-type", "xfs"]));
    assert_eq!(rows[0], ["AVAILABLE", "MAXIMUM", "MINIMUM"]);
    assert_eq!(rows[1][2], "300Mi", "the xfs minimum, from the engine's size policy");

    let missing = s.client(&["get-volume", &format!("nope@{NODE}")]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err, format!("error: NOT_FOUND: volume nope does not exist\n"), "one line, code and message");
    assert!(missing.stdout.is_empty(), "no table for a failure");
    let missing = s.client(&["-o", "yaml", "get-volume", &format!("nope@{NODE}")]);
    let err: serde_json::Value = serde_norway::from_slice(&missing.stdout).unwrap();
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    assert!(s.client(&["delete-snapshot", &format!("snap-t@{NODE}")]).status.success());
    assert!(s.client(&["delete-volume", &id]).status.success());
}
