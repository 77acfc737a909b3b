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
