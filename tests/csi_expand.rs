//! Expansion through the real `strata-csi serve` (root tier): ControllerExpandVolume answered by
//! a server that holds nothing (as the central resizer's instance does), NodeExpandVolume growing
//! a published volume online (xfs), ext4 deferred to the next stage without CAP_SYS_RESOURCE,
//! and the spec's error codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod csi_support;

use common::has_cap_sys_resource;
use csi_support::*;
use strata::csi::proto::{self as p};
use tonic::Code;

fn expand_req(id: &str, bytes: i64) -> p::ControllerExpandVolumeRequest {
    p::ControllerExpandVolumeRequest {
        volume_id: id.into(),
        capacity_range: Some(p::CapacityRange { required_bytes: bytes, limit_bytes: 0 }),
        ..Default::default()
    }
}

fn node_expand_req(id: &str, path: &str, bytes: i64) -> p::NodeExpandVolumeRequest {
    p::NodeExpandVolumeRequest {
        volume_id: id.into(),
        volume_path: path.into(),
        capacity_range: Some(p::CapacityRange { required_bytes: bytes, limit_bytes: 0 }),
        ..Default::default()
    }
}

async fn capacity_of(c: &mut Clients, id: &str) -> i64 {
    let r = c.ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id: id.into() }).await.unwrap();
    r.into_inner().volume.unwrap().capacity_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_expand_answers_from_the_request_on_any_server() {
    require_root();
    let owner = Server::start();
    let mut oc = owner.clients().await;
    let id = create(&mut oc, "pvc-x", 64 << 20, &[("backend", "loop")]).await;
    // The central controller's instance: another node id, an empty root of its own.
    let central = Server::start_as("strata-controller", None, &[]);
    let mut cc = central.clients().await;
    let r = cc.ctl.controller_expand_volume(expand_req(&id, 128 << 20)).await.unwrap().into_inner();
    assert_eq!((r.capacity_bytes, r.node_expansion_required), (128 << 20, true));
    let r = cc.ctl.controller_expand_volume(expand_req("pvc-y@some-other-node", 5000)).await.unwrap().into_inner();
    assert_eq!(r.capacity_bytes, 5000, "exactly the required bytes, whatever the node");
    let held = volume_entries(&central.root);
    assert!(held.is_empty(), "the central instance holds no volume");
    // The owner answers the same way and records nothing until NodeExpandVolume.
    let r = oc.ctl.controller_expand_volume(expand_req(&id, 128 << 20)).await.unwrap().into_inner();
    assert_eq!((r.capacity_bytes, r.node_expansion_required), (128 << 20, true));
    assert_eq!(capacity_of(&mut oc, &id).await, 64 << 20);
    let no_range = p::ControllerExpandVolumeRequest { volume_id: id.clone(), ..Default::default() };
    for (req, want) in [
        (expand_req("", 1), Code::InvalidArgument),
        (no_range, Code::InvalidArgument),
        (expand_req(&id, 0), Code::InvalidArgument),
        (expand_req("fake-vol-id", 1 << 30), Code::NotFound),
    ] {
        assert_eq!(code(cc.ctl.controller_expand_volume(req).await), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_expand_grows_a_published_xfs_volume_online() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-xfs", 300 << 20, &[("backend", "loop"), ("csi.storage.k8s.io/fstype", "xfs")]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    open(&mut c, &id, &st, &t, mount_cap()).await;
    std::fs::write(format!("{t}/before"), "kept").unwrap();
    let before = fs_bytes(&t);
    c.ctl.controller_expand_volume(expand_req(&id, 600 << 20)).await.unwrap();
    let r = c.node.node_expand_volume(node_expand_req(&id, &t, 600 << 20)).await.unwrap().into_inner();
    assert_eq!(r.capacity_bytes, 600 << 20);
    let after = fs_bytes(&t);
    assert!(after > before + (250 << 20), "the pod sees the new size: {before} -> {after} bytes");
    assert_eq!(std::fs::read_to_string(format!("{t}/before")).unwrap(), "kept");
    assert_eq!(capacity_of(&mut c, &id).await, 600 << 20);
    let stats = c.node.node_get_volume_stats(stats_req(&id, &t)).await.unwrap().into_inner();
    assert_eq!(stats.usage[0].total as u64, after);
    let again = c.node.node_expand_volume(node_expand_req(&id, &t, 600 << 20)).await.unwrap().into_inner();
    assert_eq!(again.capacity_bytes, 600 << 20, "idempotent");
    let mut capped = node_expand_req(&id, &t, 300 << 20);
    capped.capacity_range = Some(p::CapacityRange { required_bytes: 300 << 20, limit_bytes: 400 << 20 });
    assert_eq!(code(c.node.node_expand_volume(capped).await), Code::OutOfRange, "volumes never shrink");
    close(&mut c, &id, &st, &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext4_that_cannot_grow_online_grows_at_the_next_stage() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-ext4", 64 << 20, &[("backend", "loop")]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    open(&mut c, &id, &st, &t, mount_cap()).await;
    std::fs::write(format!("{t}/before"), "kept").unwrap();
    let before = fs_bytes(&t);
    let r = c.node.node_expand_volume(node_expand_req(&id, &t, 128 << 20)).await;
    if has_cap_sys_resource() {
        assert_eq!(r.unwrap().into_inner().capacity_bytes, 128 << 20);
        assert!(fs_bytes(&t) > before + (50 << 20));
    } else {
        let st_err = r.unwrap_err();
        assert_eq!(st_err.code(), Code::FailedPrecondition, "kubelet: in use, retry after the next mount");
        assert!(st_err.message().contains("next staged"), "{}", st_err.message());
        assert_eq!(capacity_of(&mut c, &id).await, 128 << 20, "the storage grew and is recorded");
        assert_eq!(fs_bytes(&t), before, "the filesystem did not grow under the pod");
        close(&mut c, &id, &st, &t).await;
        open(&mut c, &id, &st, &t, mount_cap()).await;
        let r = c.node.node_expand_volume(node_expand_req(&id, &t, 128 << 20)).await.unwrap().into_inner();
        assert_eq!(r.capacity_bytes, 128 << 20, "kubelet's call after the next stage succeeds");
        assert!(fs_bytes(&t) > before + (50 << 20), "grown at stage: {before} -> {}", fs_bytes(&t));
    }
    assert_eq!(std::fs::read_to_string(format!("{t}/before")).unwrap(), "kept");
    close(&mut c, &id, &st, &t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_expand_uses_the_spec_codes() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-c", 16 << 20, &[("backend", "loop")]).await;
    let t = s.path("t");
    std::fs::create_dir_all(&t).unwrap();
    let mut xfs_cap = node_expand_req(&id, &t, 32 << 20);
    xfs_cap.volume_capability = Some(cap(p::volume_capability::access_mode::Mode::SingleNodeWriter, false, "xfs"));
    for (req, want) in [
        (node_expand_req("", &t, 1), Code::InvalidArgument),
        (node_expand_req(&id, "", 1), Code::InvalidArgument),
        (node_expand_req("fake-vol-id", "some/path", 1), Code::NotFound),
        (node_expand_req("pvc-c@node-b", &t, 1), Code::NotFound),
        (node_expand_req(&format!("gone@{NODE}"), &t, 1), Code::NotFound),
        (node_expand_req(&id, &s.path("missing"), 1), Code::NotFound),
        (xfs_cap, Code::InvalidArgument),
    ] {
        let what = format!("{} {}", req.volume_id, req.volume_path);
        assert_eq!(code(c.node.node_expand_volume(req).await), want, "{what}");
    }
    // Not staged: the storage grows now, the filesystem when it is staged.
    let r = c.node.node_expand_volume(node_expand_req(&id, &t, (32 << 20) + 1)).await.unwrap().into_inner();
    assert_eq!(r.capacity_bytes, (32 << 20) + 4096, "loop images grow in whole 4 KiB blocks");
}
