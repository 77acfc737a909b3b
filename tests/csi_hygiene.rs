//! Protocol hygiene of the real `strata-csi serve`: requests that do not decode, oversized maps,
//! untrusted strings in messages, and the backends an unknown one is answered with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::raw;
use csi_support::*;
use std::collections::HashMap;
use tonic::Code;

const INVALID_ARGUMENT: i32 = 3;

#[test]
fn a_request_that_does_not_decode_is_an_invalid_argument() {
    let s = Server::start();
    let cases: [(&str, &str, &[u8], &str); 4] = [
        // CreateVolumeRequest.name (field 1, a string) holding bytes that are not UTF-8.
        ("invalid UTF-8", "/csi.v1.Controller/CreateVolume", &[0x0a, 0x02, 0xff, 0xfe], "CreateVolumeRequest.name"),
        // The same field sent as a varint.
        ("wrong wire type", "/csi.v1.Controller/CreateVolume", &[0x08, 0x01], "wire type"),
        // NodeStageVolumeRequest.volume_id with a length past the end of the message.
        ("truncated", "/csi.v1.Node/NodeStageVolume", &[0x0a, 0x40, b'v'], "NodeStageVolumeRequest.volume_id"),
        // NodePublishVolumeRequest.volume_context (field 8) with an entry {"k": "\xc3"}.
        (
            "invalid UTF-8 in a map",
            "/csi.v1.Node/NodePublishVolume",
            &[0x42, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, 0xc3],
            "volume_context",
        ),
    ];
    for (what, method, body, names) in cases {
        let reply = raw::call(&s.sock, Some(b"localhost"), method, body);
        assert_eq!(reply.status(), Some(INVALID_ARGUMENT), "{what}: {reply:?}");
        let msg = reply.status_message();
        assert!(msg.contains("does not decode") && msg.contains(names), "{what}: {msg}");
    }
    // The server is fine afterwards.
    let probe = raw::call(&s.sock, Some(b"localhost"), "/csi.v1.Identity/Probe", &[]);
    assert_eq!(probe.status(), Some(0), "{probe:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_maps_are_refused_by_size_and_never_stored_or_echoed() {
    let s = Server::start();
    let mut c = s.clients().await;
    let mut big = create_req("pvc-big", 1 << 20, &[("backend", "dir")]);
    big.parameters.insert("csi.storage.k8s.io/pvc/name".into(), "p".repeat(3 << 20));
    let err = c.ctl.create_volume(big).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("parameters") && err.message().contains("65536"), "{}", err.message());
    assert!(err.message().len() < 300 && !err.message().contains("ppp"), "{}", err.message());

    let mut secret = create_req("pvc-secret", 1 << 20, &[("backend", "dir")]);
    secret.secrets = HashMap::from([("token".to_owned(), "s3cr3t-".repeat(10_000))]);
    let err = c.ctl.create_volume(secret).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("secrets 70005 bytes in 1 entries"), "{}", err.message());
    assert!(!err.message().contains("s3cr3t") && !err.message().contains("token"), "{}", err.message());
    assert!(!s.log_text().contains("s3cr3t"), "a secret reached the log");

    let mut stage = stage_req("v", &s.kubelet.join("st").to_string_lossy(), mount_cap());
    stage.volume_context.insert("k".into(), "v".repeat(70_000));
    assert_eq!(c.node.node_stage_volume(stage).await.unwrap_err().code(), Code::InvalidArgument);

    // Nothing was recorded for the refused volumes (beside the directories made ahead for dir creates).
    let volumes = volume_entries(&s.root);
    assert!(volumes.is_empty(), "{volumes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_strings_are_quoted_bounded_and_unknown_backends_name_the_enabled_ones() {
    let s = Server::start_with(&["--backends", "dir,tmpfs"]);
    let mut c = s.clients().await;
    let err = c.ctl.create_volume(create_req("pvc-1", 1 << 20, &[("backend", "zfs")])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), r#"unknown backend "zfs"; this driver has dir, tmpfs enabled"#);

    let long = "b".repeat(20_000);
    let err = c.ctl.create_volume(create_req("pvc-1", 1 << 20, &[("backend", &long)])).await.unwrap_err();
    assert!(err.message().len() < 400 && err.message().contains("b\"…"), "{}", err.message());
    let err = c.ctl.create_volume(create_req("pvc-1", 1 << 20, &[(&long, "x")])).await.unwrap_err();
    assert!(err.message().len() < 400 && err.message().contains("b\"…"), "{}", err.message());
}
