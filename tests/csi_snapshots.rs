//! Snapshots through the real `strata-csi serve` (root tier): CreateSnapshot, GetSnapshot,
//! ListSnapshots and DeleteSnapshot idempotency and error codes, and restore and clone with the
//! data checked at each point in time, per backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod csi_support;

use common::ScratchBtrfs;
use csi_support::*;
use strata::csi::proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
use strata::csi::proto::{self as p};
use tonic::Code;

fn snap_req(name: &str, source: &str) -> p::CreateSnapshotRequest {
    p::CreateSnapshotRequest { name: name.into(), source_volume_id: source.into(), ..Default::default() }
}

fn list_req(snapshot_id: &str, source: &str, max: i32, token: &str) -> p::ListSnapshotsRequest {
    p::ListSnapshotsRequest {
        max_entries: max,
        starting_token: token.into(),
        source_volume_id: source.into(),
        snapshot_id: snapshot_id.into(),
        ..Default::default()
    }
}

fn ids(r: &p::ListSnapshotsResponse) -> Vec<String> {
    r.entries.iter().map(|e| e.snapshot.as_ref().unwrap().snapshot_id.clone()).collect()
}

fn from_snapshot(id: &str) -> Option<p::VolumeContentSource> {
    Some(p::VolumeContentSource { r#type: Some(Type::Snapshot(SnapshotSource { snapshot_id: id.into() })) })
}

fn from_volume(id: &str) -> Option<p::VolumeContentSource> {
    Some(p::VolumeContentSource { r#type: Some(Type::Volume(VolumeSource { volume_id: id.into() })) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_calls_are_idempotent_and_use_the_spec_codes() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "pvc-a", 1 << 20, &[]).await;
    let other = create(&mut c, "pvc-b", 1 << 20, &[]).await;
    let first = c.ctl.create_snapshot(snap_req("snap-1", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    assert_eq!(first.snapshot_id, format!("snap-1@{NODE}"), "snapshot ids carry the node");
    assert_eq!((first.source_volume_id.as_str(), first.size_bytes, first.ready_to_use), (vol.as_str(), 1 << 20, true));
    assert!(first.creation_time.as_ref().unwrap().seconds > 1_700_000_000);
    let again = c.ctl.create_snapshot(snap_req("snap-1", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    assert_eq!(again, first, "the same name and source: the same snapshot");
    let taken = c.ctl.create_snapshot(snap_req("snap-1", &other)).await;
    assert_eq!(code(taken), Code::AlreadyExists);
    for (name, source, want) in [
        ("", vol.as_str(), Code::InvalidArgument),
        ("x", "", Code::InvalidArgument),
        ("x", "pvc-a@node-b", Code::NotFound),
        ("x", "not-a-strata-id", Code::NotFound),
        ("x", &format!("gone@{NODE}"), Code::NotFound),
    ] {
        assert_eq!(code(c.ctl.create_snapshot(snap_req(name, source)).await), want, "{name:?} {source:?}");
    }
    let mut params = snap_req("x", &vol);
    params.parameters = params_of("colour", "red");
    assert_eq!(code(c.ctl.create_snapshot(params).await), Code::InvalidArgument);
    let long = "s".repeat(128);
    let long_snap = c.ctl.create_snapshot(snap_req(&long, &other)).await.unwrap().into_inner().snapshot.unwrap();
    assert!(long_snap.snapshot_id.len() <= 128, "{}", long_snap.snapshot_id);

    let get = |id: &str| p::GetSnapshotRequest { snapshot_id: id.into(), ..Default::default() };
    let got = c.ctl.get_snapshot(get(&first.snapshot_id)).await.unwrap().into_inner().snapshot.unwrap();
    assert_eq!(got, first);
    for (id, want) in [
        ("", Code::InvalidArgument),
        ("snap-1@node-b", Code::NotFound),
        ("fake", Code::NotFound),
        ("nope@node-a", Code::NotFound),
    ] {
        assert_eq!(code(c.ctl.get_snapshot(get(id)).await), want, "{id}");
    }

    let all = c.ctl.list_snapshots(list_req("", "", 0, "")).await.unwrap().into_inner();
    assert_eq!(all.entries.len(), 2);
    assert_eq!(
        ids(&c.ctl.list_snapshots(list_req(&first.snapshot_id, "", 0, "")).await.unwrap().into_inner()),
        std::slice::from_ref(&first.snapshot_id)
    );
    let by_source = c.ctl.list_snapshots(list_req("", &other, 0, "")).await.unwrap().into_inner();
    assert_eq!(ids(&by_source), std::slice::from_ref(&long_snap.snapshot_id));
    let both = c.ctl.list_snapshots(list_req(&first.snapshot_id, &other, 0, "")).await.unwrap().into_inner();
    assert!(both.entries.is_empty(), "both filters must match");
    for (id, source) in [("snap-1@node-b", ""), ("none", ""), ("", "pvc-a@node-b"), ("", "fake-vol-id")] {
        let r = c.ctl.list_snapshots(list_req(id, source, 0, "")).await.unwrap().into_inner();
        assert!(r.entries.is_empty(), "{id:?} {source:?}");
    }
    let page1 = c.ctl.list_snapshots(list_req("", "", 1, "")).await.unwrap().into_inner();
    assert_eq!(page1.entries.len(), 1);
    assert!(!page1.next_token.is_empty());
    let page2 = c.ctl.list_snapshots(list_req("", "", 0, &page1.next_token)).await.unwrap().into_inner();
    assert_eq!([ids(&page1), ids(&page2)].concat(), ids(&all));
    assert!(page2.next_token.is_empty());
    assert_eq!(code(c.ctl.list_snapshots(list_req("", "", 0, "bogus")).await), Code::Aborted);

    let del = |id: &str| p::DeleteSnapshotRequest { snapshot_id: id.into(), ..Default::default() };
    assert_eq!(code(c.ctl.delete_snapshot(del("")).await), Code::InvalidArgument);
    assert_eq!(code(c.ctl.delete_snapshot(del("reallyfakesnapshotid")).await), Code::Ok);
    assert_eq!(code(c.ctl.delete_snapshot(del("snap-1@node-b")).await), Code::FailedPrecondition);
    // A volume with snapshots can be deleted; its snapshots stay.
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: vol.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(c.ctl.get_snapshot(get(&first.snapshot_id)).await.unwrap().into_inner().snapshot.unwrap(), first);
    for _ in 0..2 {
        c.ctl.delete_snapshot(del(&first.snapshot_id)).await.unwrap();
    }
    assert_eq!(code(c.ctl.get_snapshot(get(&first.snapshot_id)).await), Code::NotFound);
    let left = c.ctl.list_snapshots(list_req("", "", 0, "")).await.unwrap().into_inner();
    assert_eq!(ids(&left), [long_snap.snapshot_id]);
}

fn params_of(k: &str, v: &str) -> std::collections::HashMap<String, String> {
    params(&[(k, v)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_cannot_be_copied_here_are_refused_clearly() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let vol = create(&mut c, "src", 1 << 20, &[]).await;
    let snap = c.ctl.create_snapshot(snap_req("snap", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    let with = |name: &str, bytes: i64, source| {
        let mut r = create_req(name, bytes, &[]);
        r.volume_content_source = source;
        r
    };
    let mut topo = with("t", 1 << 20, from_snapshot("snap@node-b"));
    topo.accessibility_requirements =
        Some(p::TopologyRequirement { requisite: vec![strata::csi::convert::topology(NODE)], preferred: vec![] });
    let foreign_topo = c.ctl.create_volume(topo).await.unwrap_err();
    assert_eq!(foreign_topo.code(), Code::ResourceExhausted);
    assert!(foreign_topo.message().contains("node-b"), "{}", foreign_topo.message());
    let mut limited = with("l", 4096, from_snapshot(&snap.snapshot_id));
    limited.capacity_range = Some(p::CapacityRange { required_bytes: 4096, limit_bytes: 8192 });
    let mut loop_from_dir = with("d", 1 << 20, from_volume(&vol));
    loop_from_dir.parameters = params_of("backend", "loop");
    for (req, want) in [
        (with("a", 1 << 20, from_volume("src@node-b")), Code::InvalidArgument),
        (with("b", 1 << 20, from_snapshot("non-existing-snapshot-id")), Code::NotFound),
        (with("c", 1 << 20, from_volume(&format!("gone@{NODE}"))), Code::NotFound),
        (with("e", 1 << 20, from_snapshot(&format!("gone@{NODE}"))), Code::NotFound),
        (with("f", 1 << 20, from_snapshot("")), Code::InvalidArgument),
        (limited, Code::OutOfRange),
        (loop_from_dir, Code::InvalidArgument),
    ] {
        let name = req.name.clone();
        assert_eq!(code(c.ctl.create_volume(req).await), want, "{name}");
    }
    // No size asked: the source's size. Asked for less than the source: the source's size.
    let r = c.ctl.create_volume(with("g", 0, from_snapshot(&snap.snapshot_id))).await.unwrap().into_inner();
    assert_eq!(r.volume.unwrap().capacity_bytes, 1 << 20);
    let r = c.ctl.create_volume(with("h", 4096, from_volume(&vol))).await.unwrap().into_inner();
    assert_eq!(r.volume.unwrap().capacity_bytes, 1 << 20);
    let again = c.ctl.create_volume(with("h", 4096, from_volume(&vol))).await.unwrap().into_inner();
    assert_eq!(again.volume.unwrap().capacity_bytes, 1 << 20, "idempotent");
    let other_source = c.ctl.create_volume(with("h", 4096, from_snapshot(&snap.snapshot_id))).await;
    assert_eq!(code(other_source), Code::AlreadyExists);
    assert_eq!(code(c.ctl.create_volume(with("h", 4096, None)).await), Code::AlreadyExists);
}

/// 1 MiB of bytes derived from `seed`.
fn pattern(seed: u8) -> Vec<u8> {
    (0..1u32 << 20).map(|i| i.to_le_bytes()[0].wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Write, snapshot, overwrite; restore (into a larger volume) holds the old data, a clone the
/// new; the answers name their sources; the restored filesystem fills the larger volume.
async fn restore_and_clone(s: &Server, backend: &str, fs: &str, bytes: i64) {
    let mut c = s.clients().await;
    let mut pairs = vec![("backend", backend)];
    if !fs.is_empty() {
        pairs.push(("csi.storage.k8s.io/fstype", fs));
    }
    let vol = create(&mut c, "orig", bytes, &pairs).await;
    let (st, t) = (s.path("st-orig"), s.path("pods/a/vol"));
    open(&mut c, &vol, &st, &t, mount_cap()).await;
    std::fs::write(format!("{t}/data.bin"), pattern(1)).unwrap();
    let snap = c.ctl.create_snapshot(snap_req("snap", &vol)).await.unwrap().into_inner().snapshot.unwrap();
    std::fs::write(format!("{t}/data.bin"), pattern(2)).unwrap();

    let mut restore = create_req("restored", bytes * 2, &pairs);
    restore.volume_content_source = from_snapshot(&snap.snapshot_id);
    let restored = c.ctl.create_volume(restore).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(restored.content_source, from_snapshot(&snap.snapshot_id));
    let mut clone = create_req("clone", bytes, &pairs);
    clone.volume_content_source = from_volume(&vol);
    let cloned = c.ctl.create_volume(clone).await.unwrap().into_inner().volume.unwrap();
    let get = p::ControllerGetVolumeRequest { volume_id: cloned.volume_id.clone() };
    let got = c.ctl.controller_get_volume(get).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(got.content_source, from_volume(&vol));

    let (rst, rt) = (s.path("st-restored"), s.path("pods/b/vol"));
    open(&mut c, &restored.volume_id, &rst, &rt, mount_cap()).await;
    assert!(std::fs::read(format!("{rt}/data.bin")).unwrap() == pattern(1), "{backend}{fs}: restore has the old data");
    if backend == "loop" {
        let size = fs_bytes(&rt);
        assert!(size > bytes as u64 * 3 / 2, "{backend}{fs}: the filesystem grew to the volume: {size} bytes");
    }
    let (cst, ct) = (s.path("st-clone"), s.path("pods/c/vol"));
    open(&mut c, &cloned.volume_id, &cst, &ct, mount_cap()).await;
    assert!(std::fs::read(format!("{ct}/data.bin")).unwrap() == pattern(2), "{backend}{fs}: clone has the new data");
    std::fs::write(format!("{ct}/data.bin"), pattern(3)).unwrap();
    assert!(std::fs::read(format!("{t}/data.bin")).unwrap() == pattern(2), "the clone is independent");

    for (id, st, t) in [(&vol, &st, &t), (&restored.volume_id, &rst, &rt), (&cloned.volume_id, &cst, &ct)] {
        close(&mut c, id, st, t).await;
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id.clone(), ..Default::default() }).await.unwrap();
    }
    let del = p::DeleteSnapshotRequest { snapshot_id: snap.snapshot_id, ..Default::default() };
    c.ctl.delete_snapshot(del).await.unwrap();
    assert!(mounts_under(s.dir.path()).is_empty() && loops_under(&s.root).is_empty(), "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_restore_and_clone_keep_their_data() {
    require_root();
    restore_and_clone(&Server::start(), "dir", "", 16 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_ext4_restore_and_clone_keep_their_data() {
    require_root();
    restore_and_clone(&Server::start(), "loop", "ext4", 64 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_xfs_restore_and_clone_keep_their_data() {
    require_root();
    restore_and_clone(&Server::start(), "loop", "xfs", 300 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn btrfs_restore_and_clone_keep_their_data() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let btrfs = ScratchBtrfs::new(tmp.path(), 1 << 30);
    let s = Server::start_as(NODE, Some(btrfs.mount.join("root")), &["--backends", "btrfs"]);
    restore_and_clone(&s, "btrfs", "", 64 << 20).await;
    drop(s);
    drop(btrfs);
}
