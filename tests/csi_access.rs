//! Access modes and publish flags through the real `strata-csi serve` (root tier):
//! SINGLE_NODE_SINGLE_WRITER allows one publication at a time, SINGLE_NODE_MULTI_WRITER and
//! SINGLE_NODE_WRITER several; NodePublishVolume applies the capability's mount flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use strata::csi::proto::volume_capability::AccessType;
use strata::csi::proto::volume_capability::access_mode::Mode;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_writer_refuses_a_second_publication() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-rwop", 1 << 20, &[]).await;
    let single = cap(Mode::SingleNodeSingleWriter, false, "");
    let (st, t1, t2) = (s.path("staging"), s.path("pods/a/vol"), s.path("pods/b/vol"));
    open(&mut c, &id, &st, &t1, single.clone()).await;
    c.node.node_publish_volume(publish_req(&id, &st, &t1, single.clone())).await.expect("same target: idempotent");
    std::fs::create_dir_all(s.path("pods/b")).unwrap();
    let second = c.node.node_publish_volume(publish_req(&id, &st, &t2, single.clone())).await.unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition);
    assert!(second.message().contains(&t1), "{}", second.message());
    assert!(mount_at(&t2).is_none() && !std::path::Path::new(&t2).exists());
    c.node.node_unpublish_volume(unpublish_req(&id, &t1)).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &st, &t2, single)).await.expect("alone again");
    close(&mut c, &id, &st, &t2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_writer_modes_allow_several_publications() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    for mode in [Mode::SingleNodeMultiWriter, Mode::SingleNodeWriter] {
        let id = create(&mut c, &format!("pvc-{}", mode as i32), 1 << 20, &[]).await;
        let st = s.path(&format!("staging-{}", mode as i32));
        let targets: Vec<String> = (0..3).map(|i| s.path(&format!("pods/{}-{i}/vol", mode as i32))).collect();
        open(&mut c, &id, &st, &targets[0], cap(mode, false, "")).await;
        for t in &targets[1..] {
            std::fs::create_dir_all(std::path::Path::new(t).parent().unwrap()).unwrap();
            c.node.node_publish_volume(publish_req(&id, &st, t, cap(mode, false, ""))).await.unwrap();
        }
        std::fs::write(format!("{}/shared", targets[0]), "one").unwrap();
        assert_eq!(std::fs::read_to_string(format!("{}/shared", targets[2])).unwrap(), "one");
        for t in &targets[1..] {
            c.node.node_unpublish_volume(unpublish_req(&id, t)).await.unwrap();
        }
        close(&mut c, &id, &st, &targets[0]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_applies_the_mount_flags_to_the_bind() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-flags", 16 << 20, &[("backend", "loop")]).await;
    let plain = mount_cap();
    let mut flagged = mount_cap();
    if let Some(AccessType::Mount(m)) = &mut flagged.access_type {
        m.mount_flags = vec!["noexec".into(), "nosuid".into()];
    }
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    c.node.node_stage_volume(stage_req(&id, &st, plain)).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &st, &t, flagged)).await.unwrap();
    let m = mount_at(&t).unwrap();
    for flag in ["noexec", "nosuid"] {
        assert!(m.mount_options.iter().any(|o| o == flag), "{flag} in {:?}", m.mount_options);
    }
    let staged = mount_at(&st).unwrap();
    assert!(!staged.mount_options.iter().any(|o| o == "noexec"), "the staging mount keeps its own flags");
    close(&mut c, &id, &st, &t).await;
}
