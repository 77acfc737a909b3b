//! What `encryption: fscrypt` costs a loop ext4 volume, against the same volume unencrypted,
//! alternating in one run through a real `strata-csi serve`: the node cycle (CreateVolume,
//! NodeStage, NodePublish, NodeUnpublish, NodeUnstage, DeleteVolume) and sequential write
//! throughput into the published volume (1 MiB writes, then fsync).
//!
//! `cargo bench --bench encryption` (root: it mounts and attaches loop devices).
//! `STRATA_ENC_BENCH_ROUNDS` (default 20) cycles per kind, `STRATA_ENC_BENCH_MIB` (default 512)
//! MiB per write run, `STRATA_ENC_BENCH_WRITES` (default 5) write runs per kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata::csi::proto::controller_client::ControllerClient;
use strata::csi::proto::node_client::NodeClient;
use strata::csi::proto::volume_capability::access_mode::Mode;
use strata::csi::proto::volume_capability::{AccessMode, AccessType, MountVolume};
use strata::csi::proto::{self as p, VolumeCapability};
use tonic::transport::Channel;

const KEY: &str = "benchmark-key-0123456789abcdef0123456789abcdef";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Node {
    _dir: tempfile::TempDir,
    base: PathBuf,
    child: Child,
    ctl: ControllerClient<Channel>,
    node: NodeClient<Channel>,
}

impl Node {
    async fn start() -> Node {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let base = dir.path().to_owned();
        let sock = base.join("csi.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_strata-csi"))
            .args(["serve", "--node-id", "bench", "--endpoint"])
            .arg(format!("unix://{}", sock.display()))
            .arg("--root")
            .arg(base.join("root"))
            .arg("--allowed-path-prefix")
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while !sock.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let ep: strata::csi::server::Endpoint = format!("unix://{}", sock.display()).parse().unwrap();
        let ch = strata::csi::client::connect(&ep).await.unwrap();
        Node { _dir: dir, base, child, ctl: ControllerClient::new(ch.clone()), node: NodeClient::new(ch) }
    }

    fn cap() -> VolumeCapability {
        let mount = MountVolume { fs_type: "ext4".into(), ..Default::default() };
        VolumeCapability {
            access_mode: Some(AccessMode { mode: Mode::SingleNodeWriter as i32 }),
            access_type: Some(AccessType::Mount(mount)),
        }
    }

    /// Creates, stages and publishes a volume; returns its id, staging and target.
    async fn open(&mut self, name: &str, encrypted: bool, bytes: i64) -> (String, String, String) {
        let mut params = HashMap::from([("backend".to_owned(), "loop".to_owned())]);
        if encrypted {
            params.insert("encryption".into(), "fscrypt".into());
        }
        let req = p::CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(p::CapacityRange { required_bytes: bytes, limit_bytes: 0 }),
            volume_capabilities: vec![Node::cap()],
            parameters: params,
            ..Default::default()
        };
        let id = self.ctl.create_volume(req).await.unwrap().into_inner().volume.unwrap().volume_id;
        let st = self.base.join("st").join(name).display().to_string();
        let pod = self.base.join("pods").join(name);
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::create_dir_all(self.base.join("st")).unwrap();
        let t = pod.join("vol").display().to_string();
        let secrets = HashMap::from([("key".to_owned(), KEY.to_owned())]);
        let stage = p::NodeStageVolumeRequest {
            volume_id: id.clone(),
            staging_target_path: st.clone(),
            volume_capability: Some(Node::cap()),
            secrets,
            ..Default::default()
        };
        self.node.node_stage_volume(stage).await.unwrap();
        let publish = p::NodePublishVolumeRequest {
            volume_id: id.clone(),
            staging_target_path: st.clone(),
            target_path: t.clone(),
            volume_capability: Some(Node::cap()),
            ..Default::default()
        };
        self.node.node_publish_volume(publish).await.unwrap();
        (id, st, t)
    }

    async fn close(&mut self, id: &str, st: &str, t: &str) {
        let unpublish = p::NodeUnpublishVolumeRequest { volume_id: id.into(), target_path: t.into() };
        self.node.node_unpublish_volume(unpublish).await.unwrap();
        let unstage = p::NodeUnstageVolumeRequest { volume_id: id.into(), staging_target_path: st.into() };
        self.node.node_unstage_volume(unstage).await.unwrap();
        let delete = p::DeleteVolumeRequest { volume_id: id.into(), ..Default::default() };
        self.ctl.delete_volume(delete).await.unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let volumes = self.base.join("root/volumes");
        let _ = Command::new("umount").arg(&volumes).status();
    }
}

/// Writes `mib` MiB in 1 MiB writes to a new file in `dir` and fsyncs it: MiB/s.
fn write_rate(dir: &Path, mib: usize) -> f64 {
    let block = vec![0x5au8; 1 << 20];
    let path = dir.join("seq.bin");
    let start = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..mib {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    let rate = mib as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    assert!(nix::unistd::geteuid().is_root(), "the encryption bench mounts: run it as root");
    let (rounds, mib, writes) =
        (env("STRATA_ENC_BENCH_ROUNDS", 20), env("STRATA_ENC_BENCH_MIB", 512), env("STRATA_ENC_BENCH_WRITES", 5));
    let mut n = Node::start().await;
    let mut cycle: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..=rounds {
        for (k, encrypted) in [false, true].into_iter().enumerate() {
            let start = Instant::now();
            let (id, st, t) = n.open(&format!("c{k}-{round}"), encrypted, 256 << 20).await;
            n.close(&id, &st, &t).await;
            if round > 0 {
                cycle[k].push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let size = i64::try_from(mib + 256).unwrap() << 20;
    let mut rate: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut opened = Vec::new();
    for (k, encrypted) in [false, true].into_iter().enumerate() {
        opened.push(n.open(&format!("w{k}"), encrypted, size).await);
    }
    for _ in 0..writes {
        for k in 0..2 {
            rate[k].push(write_rate(Path::new(&opened[k].2), mib));
        }
    }
    for (id, st, t) in opened {
        n.close(&id, &st, &t).await;
    }
    println!(
        "| loop ext4, 256 MiB | node cycle p50 (ms) | min (ms) | sequential write, {mib} MiB + fsync (MiB/s, median of {writes}) |"
    );
    println!("|---|---:|---:|---:|");
    for (k, label) in ["plain", "encryption: fscrypt"].into_iter().enumerate() {
        let min = cycle[k].iter().copied().fold(f64::INFINITY, f64::min);
        println!("| {label} | {:.1} | {:.1} | {:.0} |", median(cycle[k].clone()), min, median(rate[k].clone()));
    }
}
