//! Root tier: snapshots and clones whose copy outlasts the call, through the real
//! `strata-csi serve`. Copies are slowed with `--copy-rate` so that each takes a few seconds;
//! the tests assert what each answer says (ready or not, ABORTED or OK) and what the copies hold,
//! never how long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;
mod metrics_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};
use strata::csi::proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
use strata::csi::proto::{self as p};
use tonic::Code;

const MIB: usize = 1 << 20;

fn snap_req(name: &str, source: &str) -> p::CreateSnapshotRequest {
    p::CreateSnapshotRequest { name: name.into(), source_volume_id: source.into(), ..Default::default() }
}

fn from(source: Type, name: &str, bytes: i64, pairs: &[(&str, &str)]) -> p::CreateVolumeRequest {
    let mut req = create_req(name, bytes, pairs);
    req.volume_content_source = Some(p::VolumeContentSource { r#type: Some(source) });
    req
}

fn of_snapshot(id: &str) -> Type {
    Type::Snapshot(SnapshotSource { snapshot_id: id.into() })
}

fn of_volume(id: &str) -> Type {
    Type::Volume(VolumeSource { volume_id: id.into() })
}

/// `len` bytes derived from `seed`.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| low_byte(i).wrapping_mul(31).wrapping_add(seed).wrapping_add(low_byte(i >> 12))).collect()
}

/// The low byte of `i`: the pattern wraps on purpose.
fn low_byte(i: usize) -> u8 {
    i.to_le_bytes()[0]
}

/// Writes `data` to `file` and syncs it.
fn write_synced(file: &Path, data: &[u8]) {
    let f = std::fs::File::create(file).unwrap();
    f.write_all_at(data, 0).unwrap();
    f.sync_all().unwrap();
}

/// A volume with `files` written into it, left staged and published; its id.
async fn filled(s: &Server, c: &mut Clients, name: &str, pairs: &[(&str, &str)], files: &[(&str, &[u8])]) -> String {
    let vol = create(c, name, 64 << 20, pairs).await;
    let target = s.path(&format!("pods/{name}/vol"));
    open(c, &vol, &s.path(&format!("staging-{name}")), &target, mount_cap()).await;
    for (file, data) in files {
        write_synced(&Path::new(&target).join(file), data);
    }
    vol
}

/// Stages and publishes `vol` as `name`, reads `file`, and closes it again.
async fn read_back(s: &Server, c: &mut Clients, vol: &str, name: &str, file: &str) -> Option<Vec<u8>> {
    let (staging, target) = (s.path(&format!("staging-{name}")), s.path(&format!("pods/{name}/vol")));
    open(c, vol, &staging, &target, mount_cap()).await;
    let data = std::fs::read(Path::new(&target).join(file)).ok();
    close(c, vol, &staging, &target).await;
    data
}

async fn close_named(s: &Server, c: &mut Clients, vol: &str, name: &str) {
    close(c, vol, &s.path(&format!("staging-{name}")), &s.path(&format!("pods/{name}/vol"))).await;
}

async fn delete_volume(c: &mut Clients, id: &str) {
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id.into(), ..Default::default() }).await.unwrap();
}

async fn delete_snapshot(c: &mut Clients, id: &str) {
    c.ctl.delete_snapshot(p::DeleteSnapshotRequest { snapshot_id: id.into(), ..Default::default() }).await.unwrap();
}

/// Runs `strata-csi inspect` on the server's root.
fn inspect(s: &Server, id: &str) -> String {
    let out = std::process::Command::new(BIN)
        .args(["inspect", id, "--root"])
        .arg(&s.root)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "inspect {id}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_dir_snapshot_answers_before_its_copy_ends_and_is_ready_later() {
    require_root();
    let s = Server::start_with(&["--copy-rate", "8Mi", "--metrics-address", "127.0.0.1:0"]);
    let metrics = metrics_support::metrics_address(&|| s.log_text());
    let mut c = s.clients().await;
    let big = pattern(1, 24 * MIB);
    let vol = filled(&s, &mut c, "pvc-big", &[("backend", "dir")], &[("big", &big)]).await;
    let first = c.ctl.create_snapshot(snap_req("snap-big", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    assert!(!first.ready_to_use, "the first answer came before the copy ended");
    let during = metrics_support::parse(&metrics_support::scrape(&metrics));
    assert_eq!(during.get("strata_copies_in_progress", &[]), 1.0);
    let shown = inspect(&s, &first.snapshot_id);
    assert!(shown.contains("\"ready_to_use\": false") && shown.contains("copying from"), "{shown}");
    let listed = c.ctl.list_snapshots(p::ListSnapshotsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.entries.len(), 1, "a cut snapshot is listed");
    let restore = c.ctl.create_volume(from(of_snapshot(&first.snapshot_id), "early", 64 << 20, &[])).await;
    assert_eq!(code(restore), Code::Aborted, "a snapshot not ready yet cannot be restored");
    let ready = until_ready(&mut c, snap_req("snap-big", &vol)).await;
    assert_eq!((ready.snapshot_id.as_str(), ready.creation_time), (first.snapshot_id.as_str(), first.creation_time));
    assert!(inspect(&s, &first.snapshot_id).contains("\"ready_to_use\": true"));
    let after = metrics_support::parse(&metrics_support::scrape(&metrics));
    assert_eq!(after.get("strata_copies_in_progress", &[]), 0.0);
    assert!(after.get("strata_copy_bytes_total", &[]) >= big.len() as f64, "the copy's bytes are counted");
    std::fs::write(Path::new(&s.path("pods/pvc-big/vol")).join("big"), b"changed").unwrap();
    let restored = until_created(&mut c, from(of_snapshot(&ready.snapshot_id), "restored", 64 << 20, &[])).await;
    assert_eq!(read_back(&s, &mut c, &restored, "restored", "big").await, Some(big));
    assert!(s.log_text().contains("copy started") && s.log_text().contains("mib_per_second"), "start and end logged");
    close_named(&s, &mut c, &vol, "pvc-big").await;
    for v in [&vol, &restored] {
        delete_volume(&mut c, v).await;
    }
    delete_snapshot(&mut c, &ready.snapshot_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_snapshot_keeps_its_point_in_time_while_it_copies() {
    require_root();
    let s = Server::start_with(&["--copy-rate", "8Mi"]);
    let mut c = s.clients().await;
    let before = pattern(2, 16 * MIB);
    let vol = filled(&s, &mut c, "pvc-loop", &[("backend", "loop")], &[("before", &before)]).await;
    let first = c.ctl.create_snapshot(snap_req("snap-loop", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    assert!(!first.ready_to_use, "the first answer came before the copy ended");
    // Written after the cut: waits while the filesystem is frozen for the copy, lands after.
    let after = Path::new(&s.path("pods/pvc-loop/vol")).join("after");
    let writer = std::thread::spawn(move || write_synced(&after, b"after the cut"));
    until_ready(&mut c, snap_req("snap-loop", &vol)).await;
    writer.join().unwrap();
    let restored =
        until_created(&mut c, from(of_snapshot(&first.snapshot_id), "r-loop", 64 << 20, &[("backend", "loop")])).await;
    assert_eq!(read_back(&s, &mut c, &restored, "r-loop", "before").await, Some(before));
    assert_eq!(read_back(&s, &mut c, &restored, "r-loop2", "after").await, None, "written after the cut");
    close_named(&s, &mut c, &vol, "pvc-loop").await;
    for v in [&vol, &restored] {
        delete_volume(&mut c, v).await;
    }
    delete_snapshot(&mut c, &first.snapshot_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_in_progress_answers_aborted_then_ok() {
    require_root();
    let s = Server::start_with(&["--copy-rate", "4Mi"]);
    let mut c = s.clients().await;
    let big = pattern(3, 24 * MIB);
    let vol = filled(&s, &mut c, "pvc-src", &[("backend", "dir")], &[("big", &big)]).await;
    let req = from(of_volume(&vol), "pvc-clone", 64 << 20, &[("backend", "dir")]);
    let busy = c.ctl.create_volume(req.clone()).await.unwrap_err();
    assert_eq!(busy.code(), Code::Aborted, "{busy:?}");
    assert!(
        busy.message().contains("copied in the background") && busy.message().contains("MiB of"),
        "{}",
        busy.message()
    );
    let clone_id = format!("pvc-clone@{NODE}");
    let staged = c.node.node_stage_volume(stage_req(&clone_id, &s.path("staging-early"), mount_cap())).await;
    assert_eq!(code(staged), Code::FailedPrecondition, "an unfinished clone cannot be staged");
    let mut bigger = req.clone();
    bigger.capacity_range = Some(p::CapacityRange { required_bytes: 128 << 20, limit_bytes: 128 << 20 });
    assert_eq!(code(c.ctl.create_volume(bigger).await), Code::AlreadyExists, "same name, other size");
    let source_delete =
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: vol.clone(), ..Default::default() }).await;
    assert_eq!(code(source_delete), Code::FailedPrecondition, "the source is being read");
    let made = until_created(&mut c, req).await;
    assert_eq!(made, clone_id);
    assert_eq!(read_back(&s, &mut c, &made, "clone", "big").await, Some(big));
    close_named(&s, &mut c, &vol, "pvc-src").await;
    for v in [&vol, &made] {
        delete_volume(&mut c, v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_a_copy_stops_it_and_removes_what_it_made() {
    require_root();
    let s = Server::start_with(&["--copy-rate", "1Mi"]);
    let mut c = s.clients().await;
    let data = pattern(4, 16 * MIB);
    let vol = filled(&s, &mut c, "pvc-del", &[("backend", "loop")], &[("data", &data)]).await;
    let first = c.ctl.create_snapshot(snap_req("snap-del", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    assert!(!first.ready_to_use);
    delete_snapshot(&mut c, &first.snapshot_id).await;
    let left: Vec<_> = std::fs::read_dir(s.root.join("snapshots")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "what the copy made is removed: {left:?}");
    let file = Path::new(&s.path("pods/pvc-del/vol")).join("after");
    write_synced(&file, b"thawed"); // would hang if the delete had left the filesystem frozen
    let tree = filled(&s, &mut c, "pvc-tree", &[("backend", "dir")], &[("data", &data)]).await;
    let clone = c.ctl.create_volume(from(of_volume(&tree), "pvc-gone", 64 << 20, &[("backend", "dir")])).await;
    assert_eq!(code(clone), Code::Aborted);
    delete_volume(&mut c, &format!("pvc-gone@{NODE}")).await;
    assert!(!s.root.join("volumes/pvc-gone").exists(), "the clone's copy is removed");
    assert!(s.log_text().contains("copy cancelled by a delete"), "{}", s.log_text());
    for (v, name) in [(&vol, "pvc-del"), (&tree, "pvc-tree")] {
        close_named(&s, &mut c, v, name).await;
        delete_volume(&mut c, v).await;
    }
}

/// Restarts the server with the crash point `at` armed (or none).
fn restart(s: &mut Server, at: Option<&str>) {
    s.stop(Signal::SIGKILL);
    s.env = at.map(|a| vec![("STRATA_CRASH_AT".to_owned(), a.to_owned())]).unwrap_or_default();
    s.spawn();
}

fn wait_for_crash(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.log_text().contains("crash point") {
        assert!(Instant::now() < deadline, "the copy never reached its crash point:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_copy_is_resumed_at_restart() {
    require_root();
    let mut s = Server::start_with(&["--copy-rate", "4Mi"]);
    let mut c = s.clients().await;
    let data = pattern(5, 12 * MIB);
    let vol = filled(&s, &mut c, "pvc-kill", &[("backend", "loop")], &[("data", &data)]).await;
    let tree = filled(&s, &mut c, "pvc-ktree", &[("backend", "dir")], &[("data", &data)]).await;
    restart(&mut s, Some("copy:copying"));
    let mut c = s.clients().await;
    let first = c.ctl.create_snapshot(snap_req("snap-kill", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    assert!(!first.ready_to_use);
    wait_for_crash(&s);
    restart(&mut s, Some("copy:copying"));
    let mut c = s.clients().await;
    let clone = c.ctl.create_volume(from(of_volume(&tree), "pvc-kclone", 64 << 20, &[("backend", "dir")])).await;
    assert!(clone.is_err(), "the server died during the clone's copy");
    wait_for_crash(&s);
    restart(&mut s, None);
    assert!(s.log_text().contains("resumes"), "{}", s.log_text());
    let mut c = s.clients().await;
    let ready = until_ready(&mut c, snap_req("snap-kill", &vol)).await;
    assert_eq!(ready.creation_time, first.creation_time, "the same snapshot, cut at the same time");
    let made = until_created(&mut c, from(of_volume(&tree), "pvc-kclone", 64 << 20, &[("backend", "dir")])).await;
    assert_eq!(read_back(&s, &mut c, &made, "kclone", "data").await, Some(data.clone()));
    let restored =
        until_created(&mut c, from(of_snapshot(&ready.snapshot_id), "r-kill", 64 << 20, &[("backend", "loop")])).await;
    assert_eq!(read_back(&s, &mut c, &restored, "r-kill", "data").await, Some(data));
    for (v, name) in [(&vol, "pvc-kill"), (&tree, "pvc-ktree")] {
        close_named(&s, &mut c, v, name).await;
    }
    for v in [&vol, &tree, &made, &restored] {
        delete_volume(&mut c, v).await;
    }
    delete_snapshot(&mut c, &ready.snapshot_id).await;
}
