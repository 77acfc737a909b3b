//! A crash and a "reboot" under the real server (root tier): SIGKILL while volumes are staged and
//! published, unmount everything and detach the loop devices by hand as a reboot would, start
//! again, and check that reconcile restores service and a new publish works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::path::Path;
use strata::csi::proto::{self as p};
use strata::sys::{Host, LinuxHost};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigkill_and_lost_loops_restores_service() {
    require_root();
    let mut s = Server::start();
    let mut vols = Vec::new();
    {
        let mut c = s.clients().await;
        for (name, params) in [("pvc-ext4", vec![("backend", "loop")]), ("pvc-dir", vec![])] {
            let id = create(&mut c, name, 64 << 20, &params).await;
            let (staging, target) = (s.path(&format!("{name}-st")), s.path(&format!("{name}-tg")));
            c.node.node_stage_volume(stage_req(&id, &staging, mount_cap())).await.unwrap();
            c.node.node_publish_volume(publish_req(&id, &staging, &target, mount_cap())).await.unwrap();
            std::fs::write(format!("{target}/kept"), name).unwrap();
            vols.push((id, staging, target, name));
        }
    }
    s.stop(Signal::SIGKILL);
    reboot(s.dir.path());
    assert!(loops_under(s.dir.path()).is_empty() && mounts_under(s.dir.path()).is_empty());

    s.spawn();
    let log = s.log_text();
    assert!(log.contains("staged again"), "reconcile restaged the volumes:\n{log}");
    let mut c = s.clients().await;
    for (id, staging, target, name) in &vols {
        assert!(mount_at(staging).is_some(), "{staging} is mounted again");
        assert_eq!(std::fs::read_to_string(format!("{staging}/kept")).unwrap(), *name);
        // kubelet after a reboot: stage again (idempotent), publish again on the old target.
        c.node.node_stage_volume(stage_req(id, staging, mount_cap())).await.unwrap();
        c.node.node_publish_volume(publish_req(id, staging, target, mount_cap())).await.unwrap();
        assert_eq!(std::fs::read_to_string(format!("{target}/kept")).unwrap(), *name);
        let fresh = s.path(&format!("{name}-new"));
        c.node.node_publish_volume(publish_req(id, staging, &fresh, mount_cap())).await.unwrap();
        assert_eq!(std::fs::read_to_string(format!("{fresh}/kept")).unwrap(), *name);
        for t in [target.as_str(), fresh.as_str()] {
            let r = p::NodeUnpublishVolumeRequest { volume_id: id.clone(), target_path: t.into() };
            c.node.node_unpublish_volume(r).await.unwrap();
        }
        let r = p::NodeUnstageVolumeRequest { volume_id: id.clone(), staging_target_path: staging.clone() };
        c.node.node_unstage_volume(r).await.unwrap();
        let r = p::DeleteVolumeRequest { volume_id: id.clone(), ..Default::default() };
        c.ctl.delete_volume(r).await.unwrap();
    }
    assert!(loops_under(s.dir.path()).is_empty() && mounts_under(s.dir.path()).is_empty());
}

/// What a reboot does to the node: every mount below `dir` is gone and loop devices vanish.
fn reboot(dir: &Path) {
    let host = LinuxHost;
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mounts {
        host.unmount(&strata::sys::place_at(&m).unwrap(), false).expect("unmount as a reboot would");
    }
    let loops = host.loop_list().unwrap();
    for l in strata::sys::loops_under(&loops, dir) {
        host.loop_detach(&l.device).expect("detach the loop device by hand");
    }
}

/// A power cut after journaled creates and deletes answered (root tier): what the disk may have
/// lost of them (a whole volume directory, a record's contents, a delete's rename) is put back in
/// line with the answers by the journal's replay at start, and the volumes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_that_lost_journaled_writes_converges_to_what_the_calls_answered() {
    require_root();
    let mut s = Server::start();
    let vols = s.root.join("volumes");
    let kept = s.dir.path().join("pvc-c-kept");
    let (a, b) = {
        let mut c = s.clients().await;
        let a = create(&mut c, "pvc-a", 1 << 20, &[]).await;
        let b = create(&mut c, "pvc-b", 1 << 20, &[("backend", "tmpfs")]).await;
        create(&mut c, "pvc-c", 1 << 20, &[]).await;
        strata::sys::tree::copy_tree(&vols.join("pvc-c"), &kept).unwrap();
        c.ctl
            .delete_volume(p::DeleteVolumeRequest { volume_id: "pvc-c@node-a".into(), ..Default::default() })
            .await
            .unwrap();
        (a, b)
    };
    s.stop(Signal::SIGKILL);
    reboot(s.dir.path());
    // What the disk lost: pvc-a entirely, pvc-b's record, pvc-c's delete.
    std::fs::remove_dir_all(vols.join("pvc-a")).unwrap();
    std::fs::write(vols.join("pvc-b/volume.json"), b"").unwrap();
    strata::sys::tree::copy_tree(&kept, &vols.join("pvc-c")).unwrap();

    s.spawn();
    let log = s.log_text();
    for line in
        ["volume pvc-a: made again", "volume pvc-b: its record written again", "volume pvc-c: deleted, was back"]
    {
        assert!(log.contains(line), "replay says {line:?}:\n{log}");
    }
    let mut c = s.clients().await;
    let listed = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    let mut ids: Vec<_> =
        listed.entries.iter().filter_map(|e| e.volume.as_ref()).map(|v| v.volume_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, [a.clone(), b.clone()]);
    for id in [&a, &b] {
        let (staging, target) = (s.path(&format!("{id}-st")), s.path(&format!("{id}-tg")));
        c.node.node_stage_volume(stage_req(id, &staging, mount_cap())).await.unwrap();
        c.node.node_publish_volume(publish_req(id, &staging, &target, mount_cap())).await.unwrap();
        std::fs::write(format!("{target}/works"), "yes").unwrap();
        c.node.node_unpublish_volume(unpublish_req(id, &target)).await.unwrap();
        c.node.node_unstage_volume(unstage_req(id, &staging)).await.unwrap();
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id.clone(), ..Default::default() }).await.unwrap();
    }
    assert!(mounts_under(s.dir.path()).is_empty());
}
