//! Root tier: loop volumes survive a restart of the server in a new mount namespace (as the node
//! plugin's container restarts). In a binary of its own: a new mount namespace copies every mount
//! of the test process, and the copy would pin the loop devices of tests running beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::path::Path;
use strata::csi::proto as p;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_volumes_survive_a_restart_in_a_new_mount_namespace() {
    require_root();
    let wrapper = ["unshare", "--mount", "--propagation", "unchanged"];
    let mut s = Server::start_under(&wrapper, NODE, None, &[], share_kubelet);
    let mut c = s.clients().await;
    let fs_vol = create(&mut c, "pvc-ns-fs", 16 << 20, &[("backend", "loop")]).await;
    let blk_vol = create(&mut c, "pvc-ns-blk", 16 << 20, &[("backend", "loop")]).await;
    let (st, t) = (s.path("plugins/fs/globalmount"), s.path("pods/a/fs"));
    let (sb, tb) = (s.path("plugins/blk/dev"), s.path("pods/a/blk"));
    for d in ["plugins/fs", "plugins/blk", "pods/a"] {
        std::fs::create_dir_all(s.path(d)).unwrap();
    }
    open(&mut c, &fs_vol, &st, &t, mount_cap()).await;
    open(&mut c, &blk_vol, &sb, &tb, block_cap()).await;
    std::fs::write(Path::new(&t).join("kept"), b"data").unwrap();
    // The container restarts: its namespace (and the private mount the loop files were opened
    // through) is gone; the host keeps the mounts and the loop devices.
    s.stop(Signal::SIGKILL);
    s.spawn();
    let mut c = s.clients().await;
    let (t2, tb2) = (s.path("pods/b/fs"), s.path("pods/b/blk"));
    std::fs::create_dir_all(s.path("pods/b")).unwrap();
    c.node.node_publish_volume(publish_req(&fs_vol, &st, &t2, mount_cap())).await.unwrap();
    c.node.node_publish_volume(publish_req(&blk_vol, &sb, &tb2, block_cap())).await.unwrap();
    assert_eq!(std::fs::read(Path::new(&t2).join("kept")).unwrap(), b"data");
    let expand = p::NodeExpandVolumeRequest {
        volume_id: fs_vol.clone(),
        volume_path: t.clone(),
        capacity_range: Some(p::CapacityRange { required_bytes: 16 << 20, limit_bytes: 0 }),
        ..Default::default()
    };
    c.node.node_expand_volume(expand).await.unwrap();
    for (v, target) in [(&fs_vol, &t2), (&blk_vol, &tb2)] {
        c.node.node_unpublish_volume(unpublish_req(v, target)).await.unwrap();
    }
    close(&mut c, &fs_vol, &st, &t).await;
    close(&mut c, &blk_vol, &sb, &tb).await;
    assert_eq!(
        code(c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: fs_vol, ..Default::default() }).await),
        Code::Ok
    );
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: blk_vol, ..Default::default() }).await.unwrap();
    assert_eq!(loops_under(&s.root), Vec::<std::path::PathBuf>::new(), "loop devices left");
    assert!(mounts_under(&s.kubelet).iter().all(|m| *m == s.kubelet), "mounts left");
}
