//! Volume health through the real `strata-csi serve` (root tier): VOLUME_CONDITION in
//! ControllerGetVolume, ListVolumes and NodeGetVolumeStats, healthy and after a loop volume's
//! backing file is removed under a published volume; stats and publish then fail clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use strata::csi::proto::{self as p};
use tonic::Code;

async fn condition(c: &mut Clients, id: &str) -> p::VolumeCondition {
    let r = c.ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id: id.into() }).await.unwrap();
    r.into_inner().status.unwrap().volume_condition.unwrap()
}

async fn listed_conditions(c: &mut Clients) -> Vec<(String, bool)> {
    let r = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    let pair = |e: &p::list_volumes_response::Entry| {
        let cond = e.status.as_ref().unwrap().volume_condition.as_ref().unwrap();
        (e.volume.as_ref().unwrap().volume_id.clone(), cond.abnormal)
    };
    r.entries.iter().map(pair).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backing_file_makes_the_volume_abnormal() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-sick", 16 << 20, &[("backend", "loop")]).await;
    let well = create(&mut c, "pvc-well", 1 << 20, &[]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    open(&mut c, &id, &st, &t, mount_cap()).await;
    let healthy = condition(&mut c, &id).await;
    assert!(!healthy.abnormal, "{healthy:?}");
    let stats = c.node.node_get_volume_stats(stats_req(&id, &t)).await.unwrap().into_inner();
    assert_eq!(stats.volume_condition.map(|c| c.abnormal), Some(false));
    assert_eq!(listed_conditions(&mut c).await, [(id.clone(), false), (well.clone(), false)]);

    let image = s.root.join(format!("volumes/{}/disk.img", id.split('@').next().unwrap()));
    std::fs::remove_file(&image).unwrap();
    let sick = condition(&mut c, &id).await;
    assert!(sick.abnormal && sick.message.contains("backing file") && sick.message.contains("missing"), "{sick:?}");
    assert_eq!(listed_conditions(&mut c).await, [(id.clone(), true), (well.clone(), false)]);
    let stats = c.node.node_get_volume_stats(stats_req(&id, &t)).await.unwrap_err();
    assert_eq!(stats.code(), Code::FailedPrecondition);
    assert!(stats.message().contains("missing"), "{}", stats.message());
    std::fs::create_dir_all(s.path("pods/b")).unwrap(); // kubelet makes a target's parent
    let again = c.node.node_publish_volume(publish_req(&id, &st, &s.path("pods/b/vol"), mount_cap())).await;
    assert_eq!(code(again), Code::FailedPrecondition);
    assert!(mount_at(&t).is_some(), "nothing else was touched: the pod's mount stays");
    assert!(!condition(&mut c, &well).await.abnormal);
    close(&mut c, &id, &st, &t).await;
}

fn remount_tmpfs(data: &std::path::Path, how: &str) {
    let out = std::process::Command::new("mount").args(["-o", &format!("remount,{how}")]).arg(data).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// The staging's own path answers for a healthy volume (statx, statfs); a filesystem that went
/// read-only under a read-write staging is still told, through the mount table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tmpfs_gone_read_only_under_its_staging_is_abnormal_and_heals() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-mem", 8 << 20, &[("backend", "tmpfs")]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    open(&mut c, &id, &st, &t, mount_cap()).await;
    let stats = c.node.node_get_volume_stats(stats_req(&id, &t)).await.unwrap().into_inner();
    assert_eq!(stats.volume_condition.map(|c| (c.abnormal, c.message)), Some((false, "healthy".into())));
    let data = s.root.join(format!("volumes/{}/data", id.split('@').next().unwrap()));
    remount_tmpfs(&data, "ro");
    let sick = condition(&mut c, &id).await;
    remount_tmpfs(&data, "rw");
    assert!(sick.abnormal && sick.message.contains("went read-only"), "{sick:?}");
    assert!(!condition(&mut c, &id).await.abnormal);
    close(&mut c, &id, &st, &t).await;
}

/// The log after the server has started and answered one call.
fn started_log(s: &Server) -> String {
    let out = s.client(&["info"]);
    assert!(out.status.success(), "{out:?}");
    s.log_text()
}

#[test]
fn a_server_without_mount_privileges_is_not_ready_and_says_why() {
    require_root();
    let drop_admin = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"];
    let s = Server::start_under(&drop_admin, NODE, None, &[], |_| {});
    let out = s.client(&["info", "-o", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["ready"], false, "{info}");
    let log = s.log_text();
    assert!(log.contains("subject=privileges") && log.contains("no CAP_SYS_ADMIN"), "{log}");
    // A controller-only server needs no mount privileges.
    let c = Server::start_under(&drop_admin, NODE, None, &["--controller-only"], |_| {});
    let out = c.client(&["info", "-o", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["ready"], true, "{info}\n{}", c.log_text());
}

#[test]
fn each_backend_s_readiness_is_logged_at_start_without_colour_codes() {
    require_root();
    let s = Server::start_with(&["--backends", "dir,loop,btrfs"]);
    let log = started_log(&s);
    for subject in ["data root", "privileges", "backend dir", "backend loop"] {
        assert!(log.contains(&format!("INFO strata::csi::probe: ready subject={subject}\n")), "{subject}: {log}");
    }
    // The test root is not on btrfs: that backend is logged as not ready, with the reason.
    let btrfs = log.lines().find(|l| l.contains("not ready subject=backend btrfs")).unwrap_or_else(|| panic!("{log}"));
    assert!(btrfs.contains("WARN") && btrfs.contains("is not on btrfs"), "{btrfs}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal: {log:?}");
}
