//! Root tier: a read-only publication made by a server running in a child mount namespace (as
//! the DaemonSet runs it, kubelet's dir propagating both ways) is read-only on the host. In a
//! binary of its own: the child namespace copies every mount of the test process, and the copy
//! would pin the mounts and loop devices of tests running beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use std::path::Path;
use strata::csi::proto as p;

fn readonly_publish(id: &str, staging: &str, target: &str, cap: p::VolumeCapability) -> p::NodePublishVolumeRequest {
    p::NodePublishVolumeRequest { readonly: true, ..publish_req(id, staging, target, cap) }
}

/// Makes `kubelet` a shared mount, as kubelet's root dir is on a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_publication_from_a_child_mount_namespace_is_read_only_on_the_host() {
    require_root();
    // The server in its own mount namespace, the kubelet dir propagating both ways: the
    // DaemonSet's container with a Bidirectional kubelet mount.
    let wrapper = ["unshare", "--mount", "--propagation", "unchanged"];
    let s = Server::start_under(&wrapper, NODE, None, &[], share_kubelet);
    let mut c = s.clients().await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], p::VolumeCapability);
    let cases: [Case; 4] = [
        ("dir", &[], mount_cap()),
        ("tmpfs", &[("backend", "tmpfs")], mount_cap()),
        ("loop", &[("backend", "loop")], mount_cap()),
        ("block", &[("backend", "loop")], block_cap()),
    ];
    for (name, params, cap) in cases {
        let id = create(&mut c, &format!("pvc-ro-{name}"), 16 << 20, params).await;
        let (st, t) = (s.path(&format!("plugins/{name}/globalmount")), s.path(&format!("pods/{name}/vol")));
        std::fs::create_dir_all(Path::new(&st).parent().unwrap()).unwrap();
        std::fs::create_dir_all(Path::new(&t).parent().unwrap()).unwrap();
        c.node.node_stage_volume(stage_req(&id, &st, cap.clone())).await.unwrap();
        c.node.node_publish_volume(readonly_publish(&id, &st, &t, cap)).await.unwrap();
        // This test runs in the host's namespace: what it sees is what a pod would get.
        let seen = mount_at(&t).unwrap_or_else(|| panic!("{name}: the publication did not reach the host"));
        assert!(seen.is_readonly(), "{name}: the host sees {:?}", seen.mount_options);
        if name != "block" {
            let err = std::fs::write(Path::new(&t).join("f"), "x").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{name}: {err}");
        }
        c.node.node_unpublish_volume(unpublish_req(&id, &t)).await.unwrap();
        c.node.node_unstage_volume(unstage_req(&id, &st)).await.unwrap();
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
    }
}
