//! Root tier: damaged state never stops the node and never leads to deleted data. A truncated
//! record, garbled or missing node state, an unstage at the wrong path, and a record moved
//! aside: the server starts, the rest works, the damaged volume is quarantined and listed as
//! abnormal, destructive calls ask the kernel, and `strata-csi repair` brings it back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use strata::csi::proto as p;
use tonic::Code;

fn local(id: &str) -> &str {
    id.split('@').next().unwrap()
}

fn record(s: &Server, id: &str, file: &str) -> PathBuf {
    s.root.join("volumes").join(local(id)).join(file)
}

async fn delete(c: &mut Clients, id: &str) -> Result<(), tonic::Status> {
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id.to_owned(), ..Default::default() }).await.map(drop)
}

async fn listed(c: &mut Clients) -> Vec<(String, bool, String)> {
    let r = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    r.entries
        .into_iter()
        .map(|e| {
            let cond = e.status.unwrap().volume_condition.unwrap();
            (e.volume.unwrap().volume_id, cond.abnormal, cond.message)
        })
        .collect()
}

fn repair(s: &Server, args: &[&str]) -> std::process::Output {
    let root = s.root.to_str().unwrap();
    std::process::Command::new(BIN).args(["repair", "--root", root]).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_record_quarantines_one_volume_and_the_server_still_starts() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let bad = create(&mut c, "pvc-bad", 1 << 20, &[]).await;
    let good = create(&mut c, "pvc-good", 1 << 20, &[]).await;
    s.stop(Signal::SIGTERM);
    std::fs::write(record(&s, &bad, "volume.json"), b"{\"format\":1,\"id\":").unwrap();
    s.spawn();
    let mut c = s.clients().await;
    let list = listed(&mut c).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let damaged = list.iter().find(|(id, ..)| *id == bad).unwrap();
    assert!(damaged.1 && damaged.2.contains("quarantined") && damaged.2.contains("volume.json"), "{damaged:?}");
    assert!(!list.iter().find(|(id, ..)| *id == good).unwrap().1);
    let got = c.ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id: bad.clone() }).await.unwrap();
    assert!(got.into_inner().status.unwrap().volume_condition.unwrap().abnormal);
    let err = delete(&mut c, &bad).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // Every other volume works.
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    open(&mut c, &good, &st, &t, mount_cap()).await;
    close(&mut c, &good, &st, &t).await;
    // The operator sees it, and rebuilds it from its storage.
    let out = repair(&s, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(local(&bad)), "{out:?}");
    let out = repair(&s, &["--rebuild", local(&bad)]);
    assert!(out.status.success(), "{out:?}");
    assert!(!listed(&mut c).await.iter().any(|(_, abnormal, _)| *abnormal));
    delete(&mut c, &bad).await.unwrap();
    delete(&mut c, &good).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_or_missing_node_state_never_lets_delete_remove_data_in_use() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-used", 1 << 20, &[]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    open(&mut c, &id, &st, &t, mount_cap()).await;
    std::fs::write(Path::new(&t).join("precious"), b"data").unwrap();
    let node = record(&s, &id, "node.json");
    std::fs::write(&node, b"{ garbled").unwrap();
    let err = delete(&mut c, &id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("quarantined"), "{}", err.message());
    // No node state at all: the kernel still shows the volume in use.
    std::fs::remove_file(&node).unwrap();
    let err = delete(&mut c, &id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("in use at"), "{}", err.message());
    assert_eq!(std::fs::read(Path::new(&t).join("precious")).unwrap(), b"data");
    // The volume's own mounts are still recognised by the kernel: teardown works.
    c.node.node_unpublish_volume(unpublish_req(&id, &t)).await.unwrap();
    c.node.node_unstage_volume(unstage_req(&id, &st)).await.unwrap();
    assert!(mount_at(&st).is_none());
    delete(&mut c, &id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_never_removes_files_that_a_mount_strata_did_not_make_still_shows() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-stray", 1 << 20, &[]).await;
    let data = record(&s, &id, "data");
    std::fs::write(data.join("precious"), b"data").unwrap();
    // A bind strata never made nor recorded (an operator's, a subPath mount left behind).
    let stray = s.path("stray");
    std::fs::create_dir_all(&stray).unwrap();
    let bound = std::process::Command::new("mount").arg("--bind").arg(&data).arg(&stray).status().unwrap();
    assert!(bound.success());
    // Node state shows nothing: the call answers, and the removal asks the whole mount table.
    delete(&mut c, &id).await.unwrap();
    let quarantine = s.root.join("volumes/.quarantine");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !quarantine.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kept: Vec<PathBuf> = std::fs::read_dir(&quarantine).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(kept[0].join("data/precious")).unwrap(), b"data");
    assert_eq!(std::fs::read(Path::new(&stray).join("precious")).unwrap(), b"data", "the mount still shows it");
    let unbound = std::process::Command::new("umount").arg(&stray).status().unwrap();
    assert!(unbound.success());
    assert!(!listed(&mut c).await.iter().any(|(v, _, _)| v == &id), "the volume is gone for the CO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstage_at_the_wrong_path_changes_nothing() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-wrong", 16 << 20, &[("backend", "loop")]).await;
    let (a, b, t) = (s.path("staging-a"), s.path("staging-b"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    c.node.node_stage_volume(stage_req(&id, &a, mount_cap())).await.unwrap();
    c.node.node_unstage_volume(unstage_req(&id, &b)).await.unwrap();
    assert!(mount_at(&a).is_some(), "the real staging stays mounted");
    c.node.node_publish_volume(publish_req(&id, &a, &t, mount_cap())).await.unwrap();
    let err = delete(&mut c, &id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(record(&s, &id, "disk.img").exists());
    close(&mut c, &id, &a, &t).await;
    delete(&mut c, &id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_without_a_record_is_quarantined_never_removed() {
    require_root();
    let mut s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-lost", 1 << 20, &[]).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    open(&mut c, &id, &st, &t, mount_cap()).await;
    std::fs::write(Path::new(&t).join("precious"), b"data").unwrap();
    close(&mut c, &id, &st, &t).await;
    // Stopped, its journal checkpointed: a record removed by hand afterwards is damage, not a
    // write a power cut lost (within a second of a create, the journal would write it again).
    s.stop(Signal::SIGTERM);
    let aside = s.dir.path().join("volume.json.moved");
    std::fs::copy(record(&s, &id, "volume.json"), &aside).unwrap(); // moved aside by hand
    std::fs::remove_file(record(&s, &id, "volume.json")).unwrap();
    s.spawn();
    let mut c = s.clients().await;
    let data = record(&s, &id, "data/precious");
    assert_eq!(std::fs::read(&data).unwrap(), b"data", "reconcile kept the directory");
    let list = listed(&mut c).await;
    assert!(list.iter().any(|(v, abnormal, m)| *v == id && *abnormal && m.contains("no record")), "{list:?}");
    let err = delete(&mut c, &id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let out = repair(&s, &["--rebuild", local(&id), "--capacity", "1Mi"]);
    assert!(out.status.success(), "{out:?}");
    open(&mut c, &id, &st, &t, mount_cap()).await;
    assert_eq!(std::fs::read(Path::new(&t).join("precious")).unwrap(), b"data");
    close(&mut c, &id, &st, &t).await;
    // Or the operator sets it aside: moved, not deleted.
    let out = repair(&s, &["--drop", local(&id)]);
    assert!(out.status.success(), "{out:?}");
    let moved: Vec<_> = std::fs::read_dir(s.root.join("volumes/.quarantine")).unwrap().flatten().collect();
    assert_eq!(std::fs::read(moved[0].path().join("data/precious")).unwrap(), b"data");
    assert!(listed(&mut c).await.is_empty());
}
