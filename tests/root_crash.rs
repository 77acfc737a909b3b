//! Root tier: a server killed at a named point of a call (`STRATA_CRASH_AT`, an abort as SIGKILL
//! would leave it, not a timing) converges on restart and retry: no frozen filesystem, no
//! partial snapshot, no stage stuck on its own mount, no read-write window of a read-only
//! publication, and loop volumes survive a restart in a new mount namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;
use strata::csi::proto as p;

/// Restarts the server with the crash point `at` armed (or none).
fn restart(s: &mut Server, at: Option<&str>) {
    s.stop(Signal::SIGKILL);
    s.env = at.map(|a| vec![("STRATA_CRASH_AT".to_owned(), a.to_owned())]).unwrap_or_default();
    s.spawn();
}

/// Runs a call that reaches the armed crash point: the server dies, the call fails.
async fn dies<T>(call: impl std::future::Future<Output = Result<T, tonic::Status>>, s: &mut Server) {
    let Err(status) = call.await else { panic!("the call should have died with the server") };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !s.log_text().contains("crash point") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.log_text().contains("crash point"), "the call failed otherwise: {status:?}\n{}", s.log_text());
}

/// Writes `data` to `file` and waits at most 10 s: a frozen filesystem blocks the write.
fn write_within(file: &Path, data: &'static [u8]) -> bool {
    let file = file.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(std::fs::write(&file, data).is_ok()));
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or(false)
}

fn snap(name: &str, source: &str) -> p::CreateSnapshotRequest {
    p::CreateSnapshotRequest { name: name.into(), source_volume_id: source.into(), ..Default::default() }
}

async fn delete_all(c: &mut Clients, vol: &str, snapshot: Option<String>) {
    if let Some(id) = snapshot {
        c.ctl.delete_snapshot(p::DeleteSnapshotRequest { snapshot_id: id, ..Default::default() }).await.unwrap();
    }
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: vol.into(), ..Default::default() }).await.unwrap();
}

fn assert_clean(s: &Server) {
    let left = loops_under(&s.root);
    let shown: Vec<String> = left
        .iter()
        .map(|d| {
            let out = std::process::Command::new("losetup").arg(d).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    let dev = left.first().map(|d| d.display().to_string()).unwrap_or_default();
    let holders = if dev.is_empty() {
        String::new()
    } else {
        let out = std::process::Command::new("sh").arg("-c").arg(format!("grep -l '{dev} ' /proc/[0-9]*/mountinfo | head; grep -h '{dev} ' /proc/[0-9]*/mountinfo | sort -u | head; ls /sys/block/{}/holders", dev.trim_start_matches("/dev/"))).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(left.is_empty(), "loop devices left: {shown:?}\nheld by:\n{holders}\n{}", s.log_text());
    let kubelet_mounts = mounts_under(&s.kubelet);
    assert!(kubelet_mounts.iter().all(|m| *m == s.kubelet), "mounts left: {kubelet_mounts:?}");
    let snaps: Vec<_> = std::fs::read_dir(s.root.join("snapshots")).unwrap().flatten().collect();
    assert!(snaps.is_empty(), "snapshot files left: {snaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_frozen_is_thawed_at_restart() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-frozen", 16 << 20, &[("backend", "loop")]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    open(&mut c, &vol, &st, &t, mount_cap()).await;
    restart(&mut s, Some("snapshot:frozen"));
    let mut c = s.clients().await;
    dies(c.ctl.create_snapshot(snap("snap-f", &vol)), &mut s).await;
    restart(&mut s, None);
    let mut c = s.clients().await;
    assert!(write_within(&Path::new(&t).join("after"), b"x"), "the filesystem is still frozen");
    assert!(s.log_text().contains("thawed"), "{}", s.log_text());
    let taken = c.ctl.create_snapshot(snap("snap-f", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    close(&mut c, &vol, &st, &t).await;
    delete_all(&mut c, &vol, Some(taken.snapshot_id)).await;
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_snapshot_leaves_nothing_that_blocks_the_retry() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-copy", 16 << 20, &[("backend", "loop")]).await;
    restart(&mut s, Some("snapshot:copied"));
    let mut c = s.clients().await;
    dies(c.ctl.create_snapshot(snap("snap-c", &vol)), &mut s).await;
    let temps: Vec<_> = std::fs::read_dir(s.root.join("snapshots")).unwrap().flatten().collect();
    assert_eq!(temps.len(), 1, "the copy is under its temporary name: {temps:?}");
    restart(&mut s, None);
    let mut c = s.clients().await;
    let taken = c.ctl.create_snapshot(snap("snap-c", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    let list = c.ctl.list_snapshots(p::ListSnapshotsRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.entries.len(), 1);
    delete_all(&mut c, &vol, Some(taken.snapshot_id)).await;
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_the_stage_mount_and_its_state_is_adopted() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-stage", 16 << 20, &[("backend", "loop")]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    restart(&mut s, Some("stage:mounted"));
    let mut c = s.clients().await;
    dies(c.node.node_stage_volume(stage_req(&vol, &st, mount_cap())), &mut s).await;
    assert!(mount_at(&st).is_some(), "the mount was made before the kill");
    restart(&mut s, None);
    let mut c = s.clients().await;
    c.node.node_stage_volume(stage_req(&vol, &st, mount_cap())).await.unwrap();
    c.node.node_publish_volume(publish_req(&vol, &st, &t, mount_cap())).await.unwrap();
    close(&mut c, &vol, &st, &t).await;
    // The other order: the CO gives up and unstages after the kill.
    restart(&mut s, Some("stage:mounted"));
    let mut c = s.clients().await;
    dies(c.node.node_stage_volume(stage_req(&vol, &st, mount_cap())), &mut s).await;
    restart(&mut s, None);
    let mut c = s.clients().await;
    c.node.node_unstage_volume(unstage_req(&vol, &st)).await.unwrap();
    assert!(mount_at(&st).is_none());
    delete_all(&mut c, &vol, None).await;
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_publication_is_read_only_even_when_killed_right_after_the_bind() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-ro", 1 << 20, &[]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    c.node.node_stage_volume(stage_req(&vol, &st, mount_cap())).await.unwrap();
    restart(&mut s, Some("publish:bound"));
    let mut c = s.clients().await;
    let ro = p::NodePublishVolumeRequest { readonly: true, ..publish_req(&vol, &st, &t, mount_cap()) };
    dies(c.node.node_publish_volume(ro.clone()), &mut s).await;
    let m = mount_at(&t).expect("bound before the kill");
    assert!(m.is_readonly(), "read-only from the start: {:?}", m.mount_options);
    restart(&mut s, None);
    let mut c = s.clients().await;
    c.node.node_publish_volume(ro).await.unwrap();
    close(&mut c, &vol, &st, &t).await;
    delete_all(&mut c, &vol, None).await;
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_delete_snapshot_leaves_no_unlisted_directory() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-dsnap", 1 << 20, &[]).await;
    let taken = c.ctl.create_snapshot(snap("snap-d", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    restart(&mut s, Some("snapshot-delete:renamed"));
    let mut c = s.clients().await;
    let del = p::DeleteSnapshotRequest { snapshot_id: taken.snapshot_id.clone(), ..Default::default() };
    dies(c.ctl.delete_snapshot(del.clone()), &mut s).await;
    restart(&mut s, None);
    let mut c = s.clients().await;
    let list = c.ctl.list_snapshots(p::ListSnapshotsRequest::default()).await.unwrap().into_inner();
    assert!(list.entries.is_empty(), "{list:?}");
    c.ctl.delete_snapshot(del).await.unwrap();
    delete_all(&mut c, &vol, None).await;
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_delete_volume_is_finished_not_quarantined() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-del", 16 << 20, &[("backend", "loop")]).await;
    restart(&mut s, Some("delete:unrecorded"));
    let mut c = s.clients().await;
    let del = p::DeleteVolumeRequest { volume_id: vol.clone(), ..Default::default() };
    dies(c.ctl.delete_volume(del.clone()), &mut s).await;
    restart(&mut s, None);
    let mut c = s.clients().await;
    let list = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    assert!(list.entries.is_empty(), "a half-done delete is finished, not quarantined: {list:?}");
    assert!(!s.root.join("volumes/pvc-del").exists(), "the delete renamed it aside");
    assert!(!s.root.join("volumes/.pvc-del.del").exists(), "start-up removed what the delete left");
    c.ctl.delete_volume(del).await.unwrap();
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_create_volume_leaves_no_volume_and_the_retry_makes_it() {
    require_root();
    let mut s = Server::start();
    restart(&mut s, Some("create:recorded"));
    let mut c = s.clients().await;
    let req = create_req("pvc-new", 16 << 20, &[("backend", "loop")]);
    dies(c.ctl.create_volume(req.clone()), &mut s).await;
    assert!(s.root.join("volumes/.pvc-new.new/volume.json").exists(), "killed after the record, before the rename");
    restart(&mut s, None);
    let mut c = s.clients().await;
    let list = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    assert!(list.entries.is_empty(), "a create killed before its rename made no volume: {list:?}");
    assert!(!s.root.join("volumes/.pvc-new.new").exists(), "start-up removed what the create left");
    let vol = c.ctl.create_volume(req).await.unwrap().into_inner().volume.unwrap();
    assert!(s.root.join("volumes/pvc-new/disk.img").exists());
    delete_all(&mut c, &vol.volume_id, None).await;
    assert_clean(&s);
}

const KEY: &str = "a-long-enough-key-for-the-crash-test-0123456789";

/// A stage of an encrypted volume with its Secret's key.
fn keyed_stage(vol: &str, st: &str) -> p::NodeStageVolumeRequest {
    keyed_stage_with(vol, st, KEY)
}

fn keyed_stage_with(vol: &str, st: &str, key: &str) -> p::NodeStageVolumeRequest {
    let secrets = [("key".to_owned(), key.to_owned())].into();
    p::NodeStageVolumeRequest { secrets, ..stage_req(vol, st, mount_cap()) }
}

/// Whether the key `key` derives for `id` is in the keyring of the filesystem mounted at `dir`.
fn key_present(dir: &str, key: &str, id: &str) -> bool {
    use strata::engine::encryption::{MasterKey, Secret};
    let master = MasterKey::derive(&Secret::new(key.as_bytes()).unwrap(), id).unwrap();
    let f = std::fs::File::open(dir).unwrap();
    let status = strata::sys::fscrypt::status(std::os::fd::AsFd::as_fd(&f), &master.id).unwrap();
    status == strata::sys::fscrypt::KeyStatus::Present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_adding_the_key_and_recording_the_stage_converges() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-key", 16 << 20, &[("backend", "loop"), ("encryption", "fscrypt")]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    // The first stage: killed with the policy set and the key in the kernel, nothing recorded
    // (neither the stage nor the key identifier). The retry adopts the mount and the policy.
    restart(&mut s, Some("stage:key-added"));
    let mut c = s.clients().await;
    dies(c.node.node_stage_volume(keyed_stage(&vol, &st)), &mut s).await;
    let record = std::fs::read_to_string(s.root.join("volumes/pvc-key/volume.json")).unwrap();
    assert!(!record.contains("key_identifier"), "killed before the identifier was recorded: {record}");
    restart(&mut s, None);
    let mut c = s.clients().await;
    // Only the directory's policy knows the key now: a wrong key is told from it, and neither
    // added nor recorded.
    let wrong_key = "not-the-key-that-made-this-volume-0123456789abcdef";
    let wrong = c.node.node_stage_volume(keyed_stage_with(&vol, &st, wrong_key)).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::PermissionDenied, "{wrong:?}");
    assert!(!key_present(&st, wrong_key, "pvc-key") && key_present(&st, KEY, "pvc-key"));
    c.node.node_stage_volume(keyed_stage(&vol, &st)).await.unwrap();
    c.node.node_publish_volume(publish_req(&vol, &st, &t, mount_cap())).await.unwrap();
    std::fs::write(Path::new(&t).join("f"), b"written after the kill").unwrap();
    close(&mut c, &vol, &st, &t).await;
    let record = std::fs::read_to_string(s.root.join("volumes/pvc-key/volume.json")).unwrap();
    assert!(record.contains("key_identifier"), "{record}");
    // A later stage killed the same way, then given up on: the unstage removes the key and the mount.
    restart(&mut s, Some("stage:key-added"));
    let mut c = s.clients().await;
    dies(c.node.node_stage_volume(keyed_stage(&vol, &st)), &mut s).await;
    restart(&mut s, None);
    let mut c = s.clients().await;
    c.node.node_unstage_volume(unstage_req(&vol, &st)).await.unwrap();
    assert!(mount_at(&st).is_none());
    assert!(s.log_text().contains("key removed from the kernel"), "{}", s.log_text());
    c.node.node_stage_volume(keyed_stage(&vol, &st)).await.unwrap();
    c.node.node_publish_volume(publish_req(&vol, &st, &t, mount_cap())).await.unwrap();
    assert_eq!(std::fs::read(Path::new(&t).join("f")).unwrap(), b"written after the kill");
    close(&mut c, &vol, &st, &t).await;
    delete_all(&mut c, &vol, None).await;
    assert_clean(&s);
}
