//! Identity and Controller services of the real `strata-csi serve`, through the generated client:
//! idempotent create/delete, the spec's error codes, topology, capacity and pagination.
//! Only dir and loop volumes are created here, which needs no mounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::*;
use std::collections::HashSet;
use strata::csi::proto::volume_capability::access_mode::Mode;
use strata::csi::proto::{self as p};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_reports_name_version_capabilities_and_readiness() {
    let s = Server::start();
    let mut c = s.clients().await;
    let info = c.id.get_plugin_info(p::GetPluginInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.name, "strata.csi.dev");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));
    let caps = c.id.get_plugin_capabilities(p::GetPluginCapabilitiesRequest {}).await.unwrap().into_inner();
    let expansion = p::plugin_capability::Type::VolumeExpansion(p::plugin_capability::VolumeExpansion {
        r#type: p::plugin_capability::volume_expansion::Type::Online as i32,
    });
    assert_eq!(caps.capabilities.len(), 3);
    assert!(caps.capabilities.iter().any(|c| c.r#type.as_ref() == Some(&expansion)), "{caps:?}");
    let probe = c.id.probe(p::ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true), "{}", s.log_text());
    let node = c.node.node_get_info(p::NodeGetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(node.node_id, NODE);
    assert_eq!(node.max_volumes_per_node, 0);
    let topo = node.accessible_topology.unwrap().segments;
    assert_eq!(topo.get("topology.strata.csi.dev/node").map(String::as_str), Some(NODE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_is_not_ready_when_an_enabled_backend_cannot_work() {
    // The temp root is not on btrfs, so the btrfs backend cannot serve.
    let s = Server::start_with(&["--backends", "dir,btrfs", "--max-volumes-per-node", "7"]);
    let mut c = s.clients().await;
    let probe = c.id.probe(p::ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(false));
    let node = c.node.node_get_info(p::NodeGetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(node.max_volumes_per_node, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_idempotent_by_name_and_delete_by_id() {
    let s = Server::start();
    let mut c = s.clients().await;
    let first = c.ctl.create_volume(create_req("pvc-1", 1 << 20, &[])).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(first.volume_id, format!("pvc-1@{NODE}"));
    assert_eq!(first.capacity_bytes, 1 << 20);
    assert_eq!(first.volume_context.get("backend").map(String::as_str), Some("dir"));
    let topo = &first.accessible_topology[0].segments;
    assert_eq!(topo.get("topology.strata.csi.dev/node").map(String::as_str), Some(NODE));
    let again = c.ctl.create_volume(create_req("pvc-1", 1 << 20, &[])).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(again, first);
    // A smaller requirement is still satisfied by the existing volume.
    let smaller = c.ctl.create_volume(create_req("pvc-1", 4096, &[])).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(smaller.capacity_bytes, 1 << 20);
    let del = || p::DeleteVolumeRequest { volume_id: first.volume_id.clone(), ..Default::default() };
    c.ctl.delete_volume(del()).await.unwrap();
    c.ctl.delete_volume(del()).await.unwrap();
    assert!(!s.root.join("volumes/pvc-1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_re_create_is_already_exists() {
    let s = Server::start();
    let mut c = s.clients().await;
    create(&mut c, "pvc-2", 1 << 20, &[]).await;
    let bigger = c.ctl.create_volume(create_req("pvc-2", 2 << 20, &[])).await;
    assert_eq!(code(bigger), Code::AlreadyExists);
    let other_backend = c.ctl.create_volume(create_req("pvc-2", 1 << 20, &[("backend", "loop")])).await;
    assert_eq!(code(other_backend), Code::AlreadyExists);
    let mut capped = create_req("pvc-2", 0, &[]);
    capped.capacity_range = Some(p::CapacityRange { required_bytes: 0, limit_bytes: 4096 });
    assert_eq!(code(c.ctl.create_volume(capped).await), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validates_its_request() {
    let s = Server::start();
    let mut c = s.clients().await;
    let mut no_caps = create_req("x", 0, &[]);
    no_caps.volume_capabilities.clear();
    let mut multi_node = create_req("x", 0, &[]);
    multi_node.volume_capabilities = vec![cap(Mode::MultiNodeMultiWriter, false, "")];
    let mut dir_block = create_req("x", 0, &[]);
    dir_block.volume_capabilities = vec![block_cap()];
    let mut source = create_req("x", 0, &[]);
    source.volume_content_source = Some(p::VolumeContentSource::default());
    let cases = [
        create_req("", 0, &[]),
        no_caps,
        multi_node,
        dir_block,
        source,
        create_req("x", 0, &[("backend", "zfs")]),
        create_req("x", 0, &[("typo", "1")]),
        create_req("x", 0, &[("backend", "loop"), ("csi.storage.k8s.io/fstype", "vfat")]),
        create_req("x", -1, &[]),
    ];
    for req in cases {
        let shown = format!("{req:?}");
        assert_eq!(code(c.ctl.create_volume(req).await), Code::InvalidArgument, "{shown}");
    }
    let mut tiny_xfs = create_req("x", 0, &[("backend", "loop"), ("csi.storage.k8s.io/fstype", "xfs")]);
    tiny_xfs.capacity_range = Some(p::CapacityRange { required_bytes: 0, limit_bytes: 100 << 20 });
    assert_eq!(code(c.ctl.create_volume(tiny_xfs).await), Code::OutOfRange);
    let huge = create_req("x", 1 << 60, &[]);
    let full = c.ctl.create_volume(huge).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    // Sizes a person reads, with the exact count a script may want beside each.
    assert!(full.message().contains("1Ei (1152921504606846976 bytes) requested"), "{}", full.message());
    let refused = c.ctl.create_volume(create_req("y", 0, &[("allocation", "bogus")])).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("allocation \"bogus\""), "the code says the rest: {}", refused.message());
    let mut elsewhere = create_req("x", 0, &[]);
    elsewhere.accessibility_requirements =
        Some(p::TopologyRequirement { requisite: vec![strata::csi::convert::topology("node-b")], preferred: vec![] });
    assert_eq!(code(c.ctl.create_volume(elsewhere).await), Code::ResourceExhausted);
    let listed = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    assert!(listed.entries.is_empty(), "no failed create may leave a volume behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_volumes_default_to_1gib_ext4_and_round_to_blocks() {
    let s = Server::start();
    let mut c = s.clients().await;
    let mut req = create_req("loop-default", 0, &[("backend", "loop")]);
    req.capacity_range = None;
    let v = c.ctl.create_volume(req).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v.capacity_bytes, 1 << 30);
    assert_eq!(v.volume_context.get("fsType").map(String::as_str), Some("ext4"));
    let odd = c.ctl.create_volume(create_req("loop-odd", (20 << 20) + 1, &[("backend", "loop")])).await.unwrap();
    assert_eq!(odd.into_inner().volume.unwrap().capacity_bytes, (20 << 20) + 4096);
    let image = s.root.join("volumes/loop-odd/disk.img");
    assert_eq!(std::fs::metadata(image).unwrap().len(), (20 << 20) + 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_odd_names_get_stable_ids_within_128_bytes() {
    let s = Server::start();
    let mut c = s.clients().await;
    let long = "pvc-".repeat(60);
    for name in [long.as_str(), "has/slash and space", "ünïcode"] {
        let a = create(&mut c, name, 4096, &[]).await;
        let b = create(&mut c, name, 4096, &[]).await;
        assert_eq!(a, b);
        assert!(a.len() <= 128 && a.ends_with(&format!("@{NODE}")), "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_foreign_and_missing_ids_get_the_spec_codes() {
    let s = Server::start();
    let mut c = s.clients().await;
    let del = |id: &str| p::DeleteVolumeRequest { volume_id: id.into(), ..Default::default() };
    assert_eq!(code(c.ctl.delete_volume(del("")).await), Code::InvalidArgument);
    assert_eq!(code(c.ctl.delete_volume(del("fake-vol-id")).await), Code::Ok);
    assert_eq!(code(c.ctl.delete_volume(del(&format!("gone@{NODE}"))).await), Code::Ok);
    assert_eq!(code(c.ctl.delete_volume(del("pvc-9@node-b")).await), Code::FailedPrecondition);
    let get = |id: &str| p::ControllerGetVolumeRequest { volume_id: id.into() };
    assert_eq!(code(c.ctl.controller_get_volume(get("")).await), Code::InvalidArgument);
    assert_eq!(code(c.ctl.controller_get_volume(get(&format!("gone@{NODE}"))).await), Code::NotFound);
    assert_eq!(code(c.ctl.controller_get_volume(get("pvc-9@node-b")).await), Code::NotFound);
    let validate = |id: &str, caps: Vec<p::VolumeCapability>| p::ValidateVolumeCapabilitiesRequest {
        volume_id: id.into(),
        volume_capabilities: caps,
        ..Default::default()
    };
    let r = c.ctl.validate_volume_capabilities(validate("", vec![mount_cap()])).await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c.ctl.validate_volume_capabilities(validate(&format!("gone@{NODE}"), vec![])).await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c.ctl.validate_volume_capabilities(validate(&format!("gone@{NODE}"), vec![mount_cap()])).await;
    assert_eq!(code(r), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_get_volume_describe_the_volume() {
    let s = Server::start();
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-v", 1 << 20, &[]).await;
    let req = |caps| p::ValidateVolumeCapabilitiesRequest {
        volume_id: id.clone(),
        volume_capabilities: caps,
        ..Default::default()
    };
    let ok = c.ctl.validate_volume_capabilities(req(vec![mount_cap()])).await.unwrap().into_inner();
    assert_eq!(ok.confirmed.unwrap().volume_capabilities, vec![mount_cap()]);
    let no = c.ctl.validate_volume_capabilities(req(vec![block_cap()])).await.unwrap().into_inner();
    assert!(no.confirmed.is_none() && no.message.contains("block"), "{}", no.message);
    let got = c.ctl.controller_get_volume(p::ControllerGetVolumeRequest { volume_id: id.clone() }).await.unwrap();
    let got = got.into_inner();
    assert_eq!(got.volume.unwrap().capacity_bytes, 1 << 20);
    assert!(got.status.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_volumes_pages_without_duplicates_even_when_volumes_go() {
    let s = Server::start();
    let mut c = s.clients().await;
    let mut made = HashSet::new();
    for i in 0..5 {
        made.insert(create(&mut c, &format!("pvc-{i}"), 4096, &[]).await);
    }
    let page = |token: String| p::ListVolumesRequest { max_entries: 2, starting_token: token };
    let first = c.ctl.list_volumes(page(String::new())).await.unwrap().into_inner();
    assert_eq!(first.entries.len(), 2);
    assert!(!first.next_token.is_empty());
    // Delete the last volume of the first page: its token must still work.
    let last = first.entries[1].volume.as_ref().unwrap().volume_id.clone();
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: last.clone(), ..Default::default() }).await.unwrap();
    let mut seen: Vec<String> = first.entries.iter().map(|e| e.volume.as_ref().unwrap().volume_id.clone()).collect();
    let mut token = first.next_token;
    while !token.is_empty() {
        let next = c.ctl.list_volumes(page(token)).await.unwrap().into_inner();
        assert!(next.entries.len() <= 2);
        seen.extend(next.entries.iter().map(|e| e.volume.as_ref().unwrap().volume_id.clone()));
        token = next.next_token;
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates in {seen:?}");
    assert_eq!(unique, made);
    let all = c.ctl.list_volumes(p::ListVolumesRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.entries.len(), 4);
    assert!(all.next_token.is_empty());
    let bad = p::ListVolumesRequest { max_entries: 0, starting_token: "invalid-token".into() };
    assert_eq!(code(c.ctl.list_volumes(bad).await), Code::Aborted);
    let negative = p::ListVolumesRequest { max_entries: -1, starting_token: String::new() };
    assert_eq!(code(c.ctl.list_volumes(negative).await), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_is_real_free_space_on_this_node_only() {
    let s = Server::start();
    let mut c = s.clients().await;
    let cap = c.ctl.get_capacity(p::GetCapacityRequest::default()).await.unwrap().into_inner();
    let free = nix::sys::statvfs::statvfs(&s.root).unwrap();
    let real = free.blocks_available() * free.fragment_size();
    assert!(cap.available_capacity > 0);
    assert!((cap.available_capacity as f64 - real as f64).abs() < real as f64 * 0.05 + 1e8);
    let elsewhere = p::GetCapacityRequest {
        accessible_topology: Some(strata::csi::convert::topology("node-b")),
        ..Default::default()
    };
    assert_eq!(c.ctl.get_capacity(elsewhere).await.unwrap().into_inner().available_capacity, 0);
    let here = p::GetCapacityRequest {
        accessible_topology: Some(strata::csi::convert::topology(NODE)),
        parameters: params(&[("backend", "loop"), ("csi.storage.k8s.io/fstype", "xfs")]),
        volume_capabilities: vec![block_cap()],
    };
    let loop_cap = c.ctl.get_capacity(here).await.unwrap().into_inner();
    assert!(loop_cap.available_capacity > 0);
    assert_eq!(loop_cap.minimum_volume_size, Some(300 << 20));
    let dir_block = p::GetCapacityRequest { volume_capabilities: vec![block_cap()], ..Default::default() };
    assert_eq!(code(c.ctl.get_capacity(dir_block).await), Code::InvalidArgument);
}

/// The base's strata-btrfs class on a node without btrfs: the capacity tracker polls it forever,
/// so it gets 0 bytes (the scheduler then never picks the node), not an error per poll; the
/// server says once, at start, which backends are off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_not_enabled_has_no_capacity_and_no_error() {
    let mut s = Server::start_with(&["--backends", "dir,loop,tmpfs"]);
    let mut c = s.clients().await;
    for _ in 0..3 {
        let btrfs = p::GetCapacityRequest {
            accessible_topology: Some(strata::csi::convert::topology(NODE)),
            parameters: params(&[("backend", "btrfs")]),
            volume_capabilities: vec![mount_cap()],
        };
        let cap = c.ctl.get_capacity(btrfs).await.unwrap().into_inner();
        assert_eq!((cap.available_capacity, cap.maximum_volume_size), (0, Some(0)));
    }
    let unknown = p::GetCapacityRequest { parameters: params(&[("backend", "zfs")]), ..Default::default() };
    assert_eq!(code(c.ctl.get_capacity(unknown).await), Code::InvalidArgument, "a typo is still an error");
    s.stop(nix::sys::signal::Signal::SIGTERM);
    let log = s.log_text();
    let said: Vec<&str> = log.lines().filter(|l| l.contains("not enabled")).collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(said[0].contains("backends=btrfs") && said[0].contains("GetCapacity answers 0"), "{log}");
    let warned = log.lines().filter(|l| l.contains("GetCapacity") && l.contains("WARN")).count();
    assert_eq!(warned, 1, "only the zfs typo warns: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_capabilities_are_exactly_what_is_implemented() {
    let s = Server::start();
    let mut c = s.clients().await;
    let caps = c.ctl.controller_get_capabilities(p::ControllerGetCapabilitiesRequest {}).await.unwrap().into_inner();
    use p::controller_service_capability::{Type, rpc};
    let names: Vec<rpc::Type> = caps
        .capabilities
        .iter()
        .map(|c| match c.r#type.as_ref().unwrap() {
            Type::Rpc(r) => r.r#type(),
        })
        .collect();
    assert_eq!(
        names,
        [
            rpc::Type::CreateDeleteVolume,
            rpc::Type::ListVolumes,
            rpc::Type::GetCapacity,
            rpc::Type::GetVolume,
            rpc::Type::CreateDeleteSnapshot,
            rpc::Type::ListSnapshots,
            rpc::Type::GetSnapshot,
            rpc::Type::CloneVolume,
            rpc::Type::ExpandVolume,
            rpc::Type::VolumeCondition,
            rpc::Type::SingleNodeMultiWriter,
        ]
    );
    let r = c.ctl.controller_publish_volume(p::ControllerPublishVolumeRequest::default()).await;
    assert_eq!(code(r), Code::Unimplemented);
}
