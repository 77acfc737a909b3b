//! Every gRPC client gets an answer on the unix socket, whatever it sends as `:authority`:
//! Python grpcio with its default options (it sends the socket path), and raw HTTP/2 requests
//! with a socket path, an empty authority, or none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;

use csi_support::raw;
use csi_support::*;
use prost::Message;
use std::process::Command;
use strata::csi::proto as p;

const PLUGIN_INFO: &str = "/csi.v1.Identity/GetPluginInfo";

fn assert_plugin_info(reply: &raw::Reply, what: &str) {
    assert_eq!(reply.reset, None, "{what}: the call was reset: {reply:?}");
    assert_eq!(reply.status(), Some(0), "{what}: {reply:?}");
    let info = p::GetPluginInfoResponse::decode(&reply.message[..]).unwrap();
    assert_eq!(info.name, "strata.csi.dev", "{what}");
}

#[test]
fn any_authority_gets_an_answer() {
    let s = Server::start();
    let path = s.sock.to_str().unwrap().as_bytes().to_vec();
    let cases: [(&str, Option<&[u8]>); 5] = [
        ("kubelet's socket path", Some(b"/var/lib/kubelet/plugins/x/csi.sock")),
        ("this socket's path", Some(&path)),
        ("an empty authority", Some(b"")),
        ("localhost", Some(b"localhost")),
        ("no authority", None),
    ];
    for (what, authority) in cases {
        assert_plugin_info(&raw::call(&s.sock, authority, PLUGIN_INFO, &[]), what);
    }
}

/// The venv with the pinned grpcio (scripts/grpcio-venv installs it, or says why it cannot).
fn grpcio_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/grpcio-venv");
    let out = Command::new(script).output().expect("run scripts/grpcio-venv");
    assert!(
        out.status.success(),
        "scripts/grpcio-venv failed: this test needs python3 and grpcio:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Calls GetPluginInfo and Probe through a channel made with grpcio's defaults and prints one
/// line per call: the response message in hex, or the status code and details.
const GRPCIO_CLIENT: &str = r#"
import sys, grpc
with grpc.insecure_channel(sys.argv[1]) as ch:
    for method in ("/csi.v1.Identity/GetPluginInfo", "/csi.v1.Identity/Probe"):
        call = ch.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
        try:
            print("OK", call(b"", timeout=20).hex())
        except grpc.RpcError as e:
            print("ERR", e.code(), e.details())
"#;

#[test]
fn python_grpcio_with_default_options() {
    let python = grpcio_python();
    let s = Server::start();
    for target in [format!("unix://{}", s.sock.display()), format!("unix:{}", s.sock.display())] {
        let out = Command::new(&python).args(["-c", GRPCIO_CLIENT, &target]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{target}: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{target}: {stdout}");
        let info = lines[0].strip_prefix("OK ").unwrap_or_else(|| panic!("{target}: {stdout}"));
        let bytes: Vec<u8> =
            (0..info.len()).step_by(2).map(|i| u8::from_str_radix(&info[i..i + 2], 16).unwrap()).collect();
        assert_eq!(p::GetPluginInfoResponse::decode(&bytes[..]).unwrap().name, "strata.csi.dev");
        assert!(lines[1].starts_with("OK"), "{target}: {stdout}");
    }
}
