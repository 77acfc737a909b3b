//! Root tier: volume group snapshots through the real `strata-csi serve`. Three loop volumes are
//! written in turn by one writer (a sequence number into each, round after round); the group
//! snapshot, restored, must show a prefix of those writes that ends at one instant: the numbers
//! never rise along the writing order and differ by at most one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod csi_support;

use common::ScratchBtrfs;
use csi_support::*;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use strata::csi::proto::volume_content_source::{SnapshotSource, Type};
use strata::csi::proto::{self as p};
use tonic::Code;

fn group_req(name: &str, volumes: &[String]) -> p::CreateVolumeGroupSnapshotRequest {
    p::CreateVolumeGroupSnapshotRequest { name: name.into(), source_volume_ids: volumes.to_vec(), ..Default::default() }
}

/// Writes 1, 2, 3, ... into `seq` of each volume in turn until `stop`; the rounds written.
fn writer(targets: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let files: Vec<std::fs::File> = targets
        .iter()
        .map(|t| {
            std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(Path::new(t).join("seq")).unwrap()
        })
        .collect();
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            for f in &files {
                f.write_all_at(&n.to_le_bytes(), 0).unwrap();
            }
        }
        n
    })
}

/// Calls CreateVolumeGroupSnapshot again until the group is ready.
async fn until_ready(c: &mut Clients, name: &str, volumes: &[String]) -> p::VolumeGroupSnapshot {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let g = c.group.create_volume_group_snapshot(group_req(name, volumes)).await.unwrap();
        let g = g.into_inner().group_snapshot.unwrap();
        if g.ready_to_use {
            return g;
        }
        assert!(Instant::now() < deadline, "group {name} never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sequence number a restored snapshot holds.
async fn restored_seq(s: &Server, c: &mut Clients, snapshot_id: &str, name: &str) -> (String, u64) {
    let mut req = create_req(name, 32 << 20, &[("backend", "loop")]);
    let source = Type::Snapshot(SnapshotSource { snapshot_id: snapshot_id.into() });
    req.volume_content_source = Some(p::VolumeContentSource { r#type: Some(source) });
    let vol = c.ctl.create_volume(req).await.unwrap().into_inner().volume.unwrap().volume_id;
    let (staging, target) = (s.path(&format!("staging-{name}")), s.path(&format!("pods/{name}/vol")));
    open(c, &vol, &staging, &target, mount_cap()).await;
    let bytes = std::fs::read(Path::new(&target).join("seq")).unwrap();
    close(c, &vol, &staging, &target).await;
    (vol, u64::from_le_bytes(bytes[..8].try_into().unwrap()))
}

async fn one_round(s: &Server, c: &mut Clients, round: usize, volumes: &[String], targets: &[String]) {
    let stop = Arc::new(AtomicBool::new(false));
    let running = writer(targets.to_vec(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let name = format!("group-{round}");
    let first = c.group.create_volume_group_snapshot(group_req(&name, volumes)).await.unwrap();
    let first = first.into_inner().group_snapshot.unwrap();
    let group = until_ready(c, &name, volumes).await;
    stop.store(true, Ordering::Relaxed);
    let rounds = running.join().unwrap();
    assert_eq!(
        (group.group_snapshot_id.as_str(), group.creation_time),
        (first.group_snapshot_id.as_str(), first.creation_time)
    );
    assert_eq!(group.snapshots.len(), 3);
    let mut restored = Vec::new();
    let mut seqs = Vec::new();
    for (i, snap) in group.snapshots.iter().enumerate() {
        assert_eq!(snap.group_snapshot_id, group.group_snapshot_id);
        assert_eq!(snap.source_volume_id, volumes[i], "members in the order asked");
        let (vol, seq) = restored_seq(s, c, &snap.snapshot_id, &format!("r{round}-{i}")).await;
        restored.push(vol);
        seqs.push(seq);
    }
    let (a, b, c3) = (seqs[0], seqs[1], seqs[2]);
    assert!(a >= b && b >= c3 && a - c3 <= 1 && c3 > 0, "not one instant: {seqs:?} (writer ran {rounds} rounds)");
    let member = c
        .ctl
        .delete_snapshot(p::DeleteSnapshotRequest {
            snapshot_id: group.snapshots[0].snapshot_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(member), Code::InvalidArgument, "a member is deleted with its group");
    let other = c.group.create_volume_group_snapshot(group_req(&name, &volumes[..2])).await;
    assert_eq!(code(other), Code::AlreadyExists);
    let ids: Vec<String> = group.snapshots.iter().map(|s| s.snapshot_id.clone()).collect();
    let get = p::GetVolumeGroupSnapshotRequest {
        group_snapshot_id: group.group_snapshot_id.clone(),
        snapshot_ids: ids.clone(),
        ..Default::default()
    };
    assert_eq!(
        c.group.get_volume_group_snapshot(get.clone()).await.unwrap().into_inner().group_snapshot.unwrap(),
        group
    );
    let wrong = p::DeleteVolumeGroupSnapshotRequest {
        group_snapshot_id: group.group_snapshot_id.clone(),
        snapshot_ids: ids[..1].to_vec(),
        ..Default::default()
    };
    assert_eq!(
        code(c.group.delete_volume_group_snapshot(wrong).await),
        Code::InvalidArgument,
        "snapshot ids that do not match"
    );
    let del = p::DeleteVolumeGroupSnapshotRequest {
        group_snapshot_id: group.group_snapshot_id.clone(),
        snapshot_ids: ids,
        ..Default::default()
    };
    c.group.delete_volume_group_snapshot(del.clone()).await.unwrap();
    c.group.delete_volume_group_snapshot(del).await.unwrap();
    assert_eq!(code(c.group.get_volume_group_snapshot(get).await), Code::NotFound);
    for v in restored {
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: v, ..Default::default() }).await.unwrap();
    }
}

/// Three loop volumes, staged and published, written in turn by one writer, snapshotted as a
/// group round after round.
async fn three_volumes_written_in_turn(s: &Server) {
    let mut c = s.clients().await;
    let caps = c.group.group_controller_get_capabilities(p::GroupControllerGetCapabilitiesRequest {}).await.unwrap();
    assert_eq!(caps.into_inner().capabilities.len(), 1);
    let (mut volumes, mut targets) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let vol = create(&mut c, &format!("pvc-g{i}"), 32 << 20, &[("backend", "loop")]).await;
        let target = s.path(&format!("pods/g{i}/vol"));
        open(&mut c, &vol, &s.path(&format!("staging-g{i}")), &target, mount_cap()).await;
        volumes.push(vol);
        targets.push(target);
    }
    for round in 0..3 {
        one_round(s, &mut c, round, &volumes, &targets).await;
    }
    let listed = c.ctl.list_snapshots(p::ListSnapshotsRequest::default()).await.unwrap().into_inner();
    assert!(listed.entries.is_empty(), "every member went with its group");
    for (i, vol) in volumes.iter().enumerate() {
        close(&mut c, vol, &s.path(&format!("staging-g{i}")), &targets[i]).await;
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: vol.clone(), ..Default::default() }).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_snapshot_of_three_loop_volumes_restores_one_instant() {
    require_root();
    // No reflink on this root: each member's copy is its capture, its freeze lasts the copy.
    three_volumes_written_in_turn(&Server::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_reflink_root_a_group_is_cut_at_once_and_restores_one_instant() {
    require_root();
    let scratch = tempfile::tempdir().unwrap();
    let btrfs = ScratchBtrfs::new(scratch.path(), 1 << 30);
    let s = Server::start_as(NODE, Some(btrfs.mount.join("root")), &[]);
    three_volumes_written_in_turn(&s).await;
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_dir_and_tmpfs_volumes_and_a_missing_member() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let dir = create(&mut c, "pvc-gd", 16 << 20, &[("backend", "dir")]).await;
    let tmp = create(&mut c, "pvc-gt", 16 << 20, &[("backend", "tmpfs")]).await;
    let missing = format!("gone@{NODE}");
    let bad = c.group.create_volume_group_snapshot(group_req("g-bad", &[dir.clone(), missing])).await;
    assert_eq!(code(bad), Code::NotFound);
    let left: Vec<_> = std::fs::read_dir(s.root.join("snapshots")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "a failed group leaves no member: {left:?}");
    let g = until_ready(&mut c, "g-ok", &[dir.clone(), tmp.clone()]).await;
    assert_eq!(g.snapshots.len(), 2);
    let del = p::DeleteVolumeGroupSnapshotRequest { group_snapshot_id: g.group_snapshot_id, ..Default::default() };
    c.group.delete_volume_group_snapshot(del).await.unwrap();
    for v in [dir, tmp] {
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: v, ..Default::default() }).await.unwrap();
    }
}
