//! Node service of the real `strata-csi serve` (root tier: real mounts and loop devices):
//! idempotent stage/publish/unpublish/unstage, read-only and block publish, ephemeral inline
//! volumes, ABORTED while another caller holds the volume, and the spec's error codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use strata::csi::proto::volume_capability::access_mode::Mode;
use strata::csi::proto::{self as p};
use tonic::Code;

/// Stage, publish (twice each), write, read back, unpublish and unstage (twice each), delete.
async fn full_cycle(backend: &str, fs: &str, bytes: i64) {
    require_root();
    let s = Server::start_with(&["--backends", "dir,loop,tmpfs"]);
    let mut c = s.clients().await;
    let mut pairs = vec![("backend", backend)];
    if !fs.is_empty() {
        pairs.push(("csi.storage.k8s.io/fstype", fs));
    }
    let id = create(&mut c, &format!("pvc-{backend}{fs}"), bytes, &pairs).await;
    let (staging, target) = (s.path("staging"), s.path("pods/p1/vol"));
    std::fs::create_dir_all(s.kubelet.join("pods/p1")).unwrap();
    for _ in 0..2 {
        c.node.node_stage_volume(stage_req(&id, &staging, mount_cap())).await.unwrap();
    }
    let staged = mount_at(&staging).expect("staging is a mount");
    if backend == "loop" {
        assert_eq!(staged.fs_type, if fs.is_empty() { "ext4" } else { fs });
    }
    for _ in 0..2 {
        c.node.node_publish_volume(publish_req(&id, &staging, &target, mount_cap())).await.unwrap();
    }
    std::fs::write(format!("{target}/hello"), "world").unwrap();
    assert_eq!(std::fs::read_to_string(format!("{staging}/hello")).unwrap(), "world");
    let stats = c.node.node_get_volume_stats(stats_req(&id, &target)).await.unwrap().into_inner();
    let bytes_usage = &stats.usage[0];
    assert!(bytes_usage.total > 0 && bytes_usage.used > 0, "{stats:?}");
    assert_eq!(stats.usage.len(), 2, "bytes and inodes: {stats:?}");
    for _ in 0..2 {
        c.node.node_unpublish_volume(unpublish_req(&id, &target)).await.unwrap();
    }
    assert!(mount_at(&target).is_none() && !std::path::Path::new(&target).exists());
    for _ in 0..2 {
        c.node.node_unstage_volume(unstage_req(&id, &staging)).await.unwrap();
    }
    assert!(mount_at(&staging).is_none());
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
    assert!(loops_under(s.dir.path()).is_empty(), "delete detached the loop device");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_volume_full_cycle_is_idempotent() {
    full_cycle("dir", "", 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_ext4_volume_full_cycle_is_idempotent() {
    full_cycle("loop", "", 64 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_xfs_volume_full_cycle_is_idempotent() {
    full_cycle("loop", "xfs", 300 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_volume_full_cycle_is_idempotent() {
    full_cycle("tmpfs", "", 16 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_stage_and_publish_are_already_exists() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-c", 1 << 20, &[]).await;
    let (staging, target) = (s.path("staging"), s.path("target"));
    c.node.node_stage_volume(stage_req(&id, &staging, mount_cap())).await.unwrap();
    let elsewhere = c.node.node_stage_volume(stage_req(&id, &s.path("staging2"), mount_cap())).await;
    assert_eq!(code(elsewhere), Code::AlreadyExists);
    c.node.node_publish_volume(publish_req(&id, &staging, &target, mount_cap())).await.unwrap();
    let mut ro = publish_req(&id, &staging, &target, mount_cap());
    ro.readonly = true;
    assert_eq!(code(c.node.node_publish_volume(ro).await), Code::AlreadyExists);
    let busy = c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id.clone(), ..Default::default() }).await;
    assert_eq!(code(busy), Code::FailedPrecondition);
    let still_published = c.node.node_unstage_volume(unstage_req(&id, &staging)).await;
    assert_eq!(code(still_published), Code::FailedPrecondition);
    c.node.node_unpublish_volume(unpublish_req(&id, &target)).await.unwrap();
    c.node.node_unstage_volume(unstage_req(&id, &staging)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_requires_the_volume_to_be_staged_there() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-ns", 1 << 20, &[]).await;
    std::fs::create_dir_all(s.path("staging")).unwrap();
    let r = c.node.node_publish_volume(publish_req(&id, &s.path("staging"), &s.path("t"), mount_cap())).await;
    assert_eq!(code(r), Code::FailedPrecondition);
    assert!(!s.kubelet.join("t").exists(), "a refused publish leaves no target behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_publish_refuses_writes() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-ro", 64 << 20, &[("backend", "loop")]).await;
    let staging = s.path("staging");
    c.node.node_stage_volume(stage_req(&id, &staging, mount_cap())).await.unwrap();
    let mut ro = publish_req(&id, &staging, &s.path("ro"), mount_cap());
    ro.readonly = true;
    c.node.node_publish_volume(ro).await.unwrap();
    let reader = cap(Mode::SingleNodeReaderOnly, false, "");
    c.node.node_publish_volume(publish_req(&id, &staging, &s.path("reader"), reader)).await.unwrap();
    for t in ["ro", "reader"] {
        let path = s.path(t);
        assert!(mount_at(&path).unwrap().mount_options.iter().any(|o| o == "ro"), "{t}");
        let err = std::fs::write(format!("{path}/x"), "no").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{t}");
        c.node.node_unpublish_volume(unpublish_req(&id, &path)).await.unwrap();
    }
    c.node.node_unstage_volume(unstage_req(&id, &staging)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_volumes_publish_the_loop_device_onto_a_file() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let mut req = create_req("pvc-blk", 16 << 20, &[("backend", "loop")]);
    req.volume_capabilities = vec![block_cap()];
    let id = c.ctl.create_volume(req).await.unwrap().into_inner().volume.unwrap().volume_id;
    let (staging, target) = (s.path("staging-blk"), s.path("dev"));
    std::fs::create_dir_all(&staging).unwrap();
    c.node.node_stage_volume(stage_req(&id, &staging, block_cap())).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &staging, &target, block_cap())).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &staging, &target, block_cap())).await.unwrap();
    let as_fs = c.node.node_publish_volume(publish_req(&id, &staging, &s.path("fs"), mount_cap())).await;
    assert_eq!(code(as_fs), Code::FailedPrecondition);
    assert!(std::fs::metadata(&target).unwrap().file_type().is_block_device());
    let mut dev = std::fs::OpenOptions::new().read(true).write(true).open(&target).unwrap();
    dev.seek(SeekFrom::Start(1 << 20)).unwrap();
    dev.write_all(b"strata-block").unwrap();
    dev.sync_all().unwrap();
    drop(dev);
    let mut image =
        std::fs::File::open(s.root.join(format!("volumes/{}/disk.img", id.split('@').next().unwrap()))).unwrap();
    image.seek(SeekFrom::Start(1 << 20)).unwrap();
    let mut buf = [0u8; 12];
    image.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"strata-block");
    let stats = c.node.node_get_volume_stats(stats_req(&id, &target)).await.unwrap().into_inner();
    assert_eq!(stats.usage[0].total, 16 << 20);
    c.node.node_unpublish_volume(unpublish_req(&id, &target)).await.unwrap();
    assert!(!std::path::Path::new(&target).exists());
    c.node.node_unstage_volume(unstage_req(&id, &staging)).await.unwrap();
    let dir_id = create(&mut c, "pvc-dir", 4096, &[]).await;
    let r = c.node.node_stage_volume(stage_req(&dir_id, &s.path("s2"), block_cap())).await;
    assert_eq!(code(r), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_inline_volumes_live_from_publish_to_unpublish() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let kubelet_id = "csi-0123456789abcdef";
    for (backend, fs_type) in [("", "tmpfs"), ("dir", "")] {
        let target = s.path(&format!("pods/p/eph-{backend}"));
        std::fs::create_dir_all(s.kubelet.join("pods/p")).unwrap();
        let mut req = publish_req(kubelet_id, "", &target, mount_cap());
        req.volume_context = params(&[
            ("csi.storage.k8s.io/ephemeral", "true"),
            ("csi.storage.k8s.io/pod.name", "p"),
            ("backend", backend),
            ("size", "8Mi"),
        ]);
        c.node.node_publish_volume(req.clone()).await.unwrap();
        c.node.node_publish_volume(req).await.unwrap();
        let m = mount_at(&target).expect("published");
        if !fs_type.is_empty() {
            assert_eq!(m.fs_type, fs_type);
        }
        std::fs::write(format!("{target}/data"), "x").unwrap();
        let stats = c.node.node_get_volume_stats(stats_req(kubelet_id, &target)).await.unwrap().into_inner();
        assert!(stats.usage[0].total > 0);
        let listed = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
        assert_eq!(listed.entries.len(), 1);
        c.node.node_unpublish_volume(unpublish_req(kubelet_id, &target)).await.unwrap();
        c.node.node_unpublish_volume(unpublish_req(kubelet_id, &target)).await.unwrap();
        assert!(!std::path::Path::new(&target).exists());
        let listed = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
        assert!(listed.entries.is_empty(), "the ephemeral volume is gone: {listed:?}");
        assert!(mounts_under(s.dir.path()).is_empty());
    }
    let ctx = |backend: &str| params(&[("csi.storage.k8s.io/ephemeral", "true"), ("backend", backend)]);
    let mut bad = publish_req(kubelet_id, "", &s.path("bad"), mount_cap());
    bad.volume_context = ctx("loop");
    assert_eq!(code(c.node.node_publish_volume(bad).await), Code::InvalidArgument);
    let mut strata_shaped = publish_req(&format!("x@{NODE}"), "", &s.path("bad"), mount_cap());
    strata_shaped.volume_context = ctx("dir");
    assert_eq!(code(c.node.node_publish_volume(strata_shaped).await), Code::InvalidArgument);
    assert!(!s.kubelet.join("bad").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_volume_answers_aborted() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-busy", 1 << 20, &[]).await;
    let staging = s.path("staging");
    let lock = hold_lock(&s.root, &id);
    let r = c.node.node_stage_volume(stage_req(&id, &staging, mount_cap())).await;
    assert_eq!(code(r), Code::Aborted);
    let r = c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id.clone(), ..Default::default() }).await;
    assert_eq!(code(r), Code::Aborted);
    drop(lock);
    c.node.node_stage_volume(stage_req(&id, &staging, mount_cap())).await.unwrap();
    c.node.node_unstage_volume(unstage_req(&id, &staging)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_calls_check_required_fields_ids_and_paths() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-e", 1 << 20, &[]).await;
    let st = s.path("st");
    let gone = format!("gone@{NODE}");
    let stage = |id: &str, path: &str, cap: Option<p::VolumeCapability>| p::NodeStageVolumeRequest {
        volume_id: id.into(),
        staging_target_path: path.into(),
        volume_capability: cap,
        ..Default::default()
    };
    for (req, want) in [
        (stage("", &st, Some(mount_cap())), Code::InvalidArgument),
        (stage(&id, "", Some(mount_cap())), Code::InvalidArgument),
        (stage(&id, &st, None), Code::InvalidArgument),
        (stage(&gone, &st, Some(mount_cap())), Code::NotFound),
        (stage("pvc-e@node-b", &st, Some(mount_cap())), Code::NotFound),
        (stage(&id, "/etc/strata-test", Some(mount_cap())), Code::InvalidArgument),
        (stage(&id, &s.path("a/../b"), Some(mount_cap())), Code::InvalidArgument),
        (stage(&id, &st, Some(cap(Mode::SingleNodeWriter, false, "xfs"))), Code::InvalidArgument),
    ] {
        let shown = format!("{req:?}");
        assert_eq!(code(c.node.node_stage_volume(req).await), want, "{shown}");
    }
    let t = s.path("t");
    let mut no_staging = publish_req(&id, "", &t, mount_cap());
    no_staging.staging_target_path.clear();
    for (req, want) in [
        (publish_req("", &st, &t, mount_cap()), Code::InvalidArgument),
        (publish_req(&id, &st, "", mount_cap()), Code::InvalidArgument),
        (
            p::NodePublishVolumeRequest { volume_capability: None, ..publish_req(&id, &st, &t, mount_cap()) },
            Code::InvalidArgument,
        ),
        (no_staging, Code::InvalidArgument),
        (publish_req(&gone, &st, &t, mount_cap()), Code::NotFound),
        (publish_req(&id, &st, "/etc/strata-test", mount_cap()), Code::InvalidArgument),
    ] {
        let shown = format!("{req:?}");
        assert_eq!(code(c.node.node_publish_volume(req).await), want, "{shown}");
    }
    assert_eq!(code(c.node.node_unpublish_volume(unpublish_req("", &t)).await), Code::InvalidArgument);
    assert_eq!(code(c.node.node_unpublish_volume(unpublish_req(&id, "")).await), Code::InvalidArgument);
    assert_eq!(code(c.node.node_unpublish_volume(unpublish_req(&id, &t)).await), Code::Ok, "nothing mounted: done");
    assert_eq!(code(c.node.node_unstage_volume(unstage_req("", &st)).await), Code::InvalidArgument);
    assert_eq!(code(c.node.node_unstage_volume(unstage_req(&id, "")).await), Code::InvalidArgument);
    assert_eq!(code(c.node.node_unstage_volume(unstage_req(&gone, &st)).await), Code::NotFound);
    assert_eq!(code(c.node.node_get_volume_stats(stats_req("", &t)).await), Code::InvalidArgument);
    assert_eq!(code(c.node.node_get_volume_stats(stats_req(&id, "")).await), Code::InvalidArgument);
    assert_eq!(code(c.node.node_get_volume_stats(stats_req(&gone, &t)).await), Code::NotFound);
    assert_eq!(code(c.node.node_get_volume_stats(stats_req(&id, "some/path")).await), Code::NotFound);
    let caps = c.node.node_get_capabilities(p::NodeGetCapabilitiesRequest {}).await.unwrap().into_inner();
    use p::node_service_capability::{Type, rpc};
    let names: Vec<rpc::Type> = caps
        .capabilities
        .iter()
        .map(|c| match c.r#type.as_ref().unwrap() {
            Type::Rpc(r) => r.r#type(),
        })
        .collect();
    let want = [
        rpc::Type::StageUnstageVolume,
        rpc::Type::GetVolumeStats,
        rpc::Type::ExpandVolume,
        rpc::Type::VolumeCondition,
        rpc::Type::SingleNodeMultiWriter,
    ];
    assert_eq!(names, want);
}
