//! Helpers for the CSI integration tests: run the real `strata-csi serve` on a unix socket in a
//! temp dir, connect the generated clients, build requests, and clean mounts and loops up.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod raw;
pub mod strict_json;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata::csi::proto::controller_client::ControllerClient;
use strata::csi::proto::group_controller_client::GroupControllerClient;
use strata::csi::proto::identity_client::IdentityClient;
use strata::csi::proto::node_client::NodeClient;
use strata::csi::proto::volume_capability::access_mode::Mode;
use strata::csi::proto::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use strata::csi::proto::{self as p, VolumeCapability};
use strata::csi::server::Endpoint;
use strata::sys::{Host, LinuxHost};
use tonic::Code;
use tonic::transport::Channel;

pub const NODE: &str = "node-a";
pub const BIN: &str = env!("CARGO_BIN_EXE_strata-csi");

/// Makes `kubelet` a shared mount, as kubelet's root dir is on a node (for servers run in a mount
/// namespace of their own, whose mounts there must reach the test's namespace).
pub fn share_kubelet(kubelet: &Path) {
    use nix::mount::{MsFlags, mount};
    mount(Some(kubelet), kubelet, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    mount(None::<&str>, kubelet, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
}

/// Tests that mount or attach loop devices need root; without it they fail loudly.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this CSI test mounts filesystems and attaches loop devices: run it as root (CI does)"
    );
}

/// A running `strata-csi serve` with its own root, kubelet dir and socket.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub kubelet: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
    pub node: String,
    extra: Vec<String>,
    /// A command the server runs under (`unshare -m ...`), empty for none.
    wrapper: Vec<String>,
    /// Extra environment for the next [`Server::spawn`] (a crash point, say).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts the server with extra `serve` arguments and waits until it answers.
    pub fn start_with(extra: &[&str]) -> Server {
        Server::start_as(NODE, None, extra)
    }

    /// Starts a server of node `node` whose data root is `root` (default: a temp dir's `root`).
    pub fn start_as(node: &str, root: Option<PathBuf>, extra: &[&str]) -> Server {
        Server::start_under(&[], node, root, extra, |_| {})
    }

    /// Starts a server under `wrapper` (a command that runs the server's argv, such as
    /// `unshare -m`), after `prepare` has been given the kubelet dir.
    pub fn start_under(
        wrapper: &[&str],
        node: &str,
        root: Option<PathBuf>,
        extra: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = root.unwrap_or_else(|| dir.path().join("root"));
        let kubelet = dir.path().join("kubelet");
        std::fs::create_dir_all(&kubelet).unwrap();
        prepare(&kubelet);
        let mut s = Server {
            sock: dir.path().join("csi.sock"),
            log: dir.path().join("serve.log"),
            root,
            kubelet,
            dir,
            node: node.to_owned(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            wrapper: wrapper.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            child: None,
        };
        s.spawn();
        s
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Sets the extra `serve` arguments of the next [`Server::spawn`].
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|a| a.to_string()).collect();
    }

    /// Sets the command that the next [`Server::spawn`] runs the server under (empty: none).
    pub fn set_wrapper(&mut self, wrapper: &[&str]) {
        self.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
    }

    /// Starts (again) the server process on the same root and socket.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .args(["serve", "--endpoint", &self.endpoint(), "--node-id", &self.node, "--root"])
            .arg(&self.root)
            .arg("--allowed-path-prefix")
            .arg(&self.kubelet)
            .args(&self.extra)
            .env("RUST_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strata-csi serve");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("strata-csi serve exited with {status}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("strata-csi serve did not listen within 20 s:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    /// Sends `sig` and waits for the process to end; returns its exit status.
    pub fn stop(&mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("strata-csi did not stop after {sig}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn channel(&self) -> Channel {
        let ep: Endpoint = self.endpoint().parse().unwrap();
        strata::csi::client::connect(&ep).await.expect("connect to strata-csi")
    }

    pub async fn clients(&self) -> Clients {
        let ch = self.channel().await;
        Clients::from_channel(ch)
    }

    /// A path under the allowed kubelet prefix.
    pub fn path(&self, rel: &str) -> String {
        self.kubelet.join(rel).to_string_lossy().into_owned()
    }

    /// Runs `strata-csi client --endpoint <this> args…`.
    pub fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(["client", "--endpoint", &self.endpoint()]).args(args).output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(nix::sys::signal::Signal::SIGTERM);
        }
        cleanup(self.dir.path());
        if !self.root.starts_with(self.dir.path()) {
            cleanup(&self.root);
        }
    }
}

/// The names in `<root>/volumes` other than the directories a running server keeps made ahead for
/// creates (`.pool-*`): its volumes and whatever calls left there.
pub fn volume_entries(root: &Path) -> Vec<String> {
    let names = std::fs::read_dir(root.join("volumes")).unwrap().flatten();
    names.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with(".pool-")).collect()
}

/// Unmounts everything below `dir` (deepest first) and detaches loops backed by files in it.
pub fn cleanup(dir: &Path) {
    let host = LinuxHost;
    for _ in 0..4 {
        let mut mounts: Vec<PathBuf> = host
            .mount_table()
            .map(|t| t.iter().map(|m| m.mount_point.clone()).filter(|m| m.starts_with(dir)).collect())
            .unwrap_or_default();
        if mounts.is_empty() {
            break;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            if let Ok(p) = strata::sys::place_at(&m) {
                let _ = host.unmount(&p, true);
            }
        }
    }
    let loops = host.loop_list().unwrap_or_default();
    for l in strata::sys::loops_under(&loops, dir) {
        let _ = host.loop_detach(&l.device);
    }
}

pub struct Clients {
    pub id: IdentityClient<Channel>,
    pub ctl: ControllerClient<Channel>,
    pub node: NodeClient<Channel>,
    pub group: GroupControllerClient<Channel>,
}

impl Clients {
    /// The three clients on one channel.
    pub fn from_channel(ch: Channel) -> Clients {
        Clients {
            id: IdentityClient::new(ch.clone()),
            ctl: ControllerClient::new(ch.clone()),
            group: GroupControllerClient::new(ch.clone()),
            node: NodeClient::new(ch),
        }
    }
}

pub fn cap(mode: Mode, block: bool, fs: &str) -> VolumeCapability {
    let access_type = if block {
        AccessType::Block(BlockVolume {})
    } else {
        AccessType::Mount(MountVolume { fs_type: fs.into(), ..Default::default() })
    };
    VolumeCapability { access_mode: Some(AccessMode { mode: mode as i32 }), access_type: Some(access_type) }
}

pub fn mount_cap() -> VolumeCapability {
    cap(Mode::SingleNodeWriter, false, "")
}

pub fn block_cap() -> VolumeCapability {
    cap(Mode::SingleNodeWriter, true, "")
}

pub fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn create_req(name: &str, bytes: i64, pairs: &[(&str, &str)]) -> p::CreateVolumeRequest {
    p::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(p::CapacityRange { required_bytes: bytes, limit_bytes: 0 }),
        volume_capabilities: vec![mount_cap()],
        parameters: params(pairs),
        ..Default::default()
    }
}

/// Creates a volume and returns its id.
pub async fn create(c: &mut Clients, name: &str, bytes: i64, pairs: &[(&str, &str)]) -> String {
    let r = c.ctl.create_volume(create_req(name, bytes, pairs)).await.expect("create volume");
    r.into_inner().volume.unwrap().volume_id
}

pub fn stage_req(id: &str, staging: &str, cap: VolumeCapability) -> p::NodeStageVolumeRequest {
    p::NodeStageVolumeRequest {
        volume_id: id.into(),
        staging_target_path: staging.into(),
        volume_capability: Some(cap),
        ..Default::default()
    }
}

pub fn publish_req(id: &str, staging: &str, target: &str, cap: VolumeCapability) -> p::NodePublishVolumeRequest {
    p::NodePublishVolumeRequest {
        volume_id: id.into(),
        staging_target_path: staging.into(),
        target_path: target.into(),
        volume_capability: Some(cap),
        ..Default::default()
    }
}

/// The gRPC code of a result (OK for success).
pub fn code<T>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// The mount at exactly `path`, from the kernel's mount table.
pub fn mount_at(path: &str) -> Option<strata::sys::MountEntry> {
    let table = LinuxHost.mount_table().unwrap();
    strata::sys::mount_at(&table, Path::new(path)).cloned()
}

/// Mount points at or below `dir`.
/// The data root's own `volumes` mount (the server binds it onto itself at start) is not counted:
/// it holds no volume and stays until the root is cleaned up.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let table = LinuxHost.mount_table().unwrap();
    let own = |m: &PathBuf| m.ends_with("volumes") && m.parent().is_some_and(|root| root.join("locks").is_dir());
    table.iter().map(|m| m.mount_point.clone()).filter(|m| m.starts_with(dir) && !own(m)).collect()
}

/// Loop devices whose backing file lies at or below `dir`.
pub fn loops_under(dir: &Path) -> Vec<PathBuf> {
    let loops = LinuxHost.loop_list().unwrap();
    strata::sys::loops_under(&loops, dir).into_iter().map(|l| l.device.clone()).collect()
}

/// Holds the engine's cross-process lock of a volume, as another caller would.
pub fn hold_lock(root: &Path, volume_id: &str) -> strata::engine::lock::VolumeLock {
    let local = volume_id.rsplit_once('@').unwrap().0;
    strata::engine::lock::VolumeLock::acquire(&root.join("locks"), local, strata::engine::Wait::No).unwrap()
}

pub fn unpublish_req(id: &str, target: &str) -> p::NodeUnpublishVolumeRequest {
    p::NodeUnpublishVolumeRequest { volume_id: id.into(), target_path: target.into() }
}

pub fn unstage_req(id: &str, staging: &str) -> p::NodeUnstageVolumeRequest {
    p::NodeUnstageVolumeRequest { volume_id: id.into(), staging_target_path: staging.into() }
}

pub fn stats_req(id: &str, path: &str) -> p::NodeGetVolumeStatsRequest {
    p::NodeGetVolumeStatsRequest { volume_id: id.into(), volume_path: path.into(), staging_target_path: String::new() }
}

/// Stages volume `id` at `staging` and publishes it at `target` (its parent made first).
pub async fn open(c: &mut Clients, id: &str, staging: &str, target: &str, cap: VolumeCapability) {
    std::fs::create_dir_all(Path::new(target).parent().unwrap()).unwrap();
    c.node.node_stage_volume(stage_req(id, staging, cap.clone())).await.expect("stage");
    c.node.node_publish_volume(publish_req(id, staging, target, cap)).await.expect("publish");
}

/// Unpublishes `target` and unstages `staging`.
pub async fn close(c: &mut Clients, id: &str, staging: &str, target: &str) {
    c.node.node_unpublish_volume(unpublish_req(id, target)).await.expect("unpublish");
    c.node.node_unstage_volume(unstage_req(id, staging)).await.expect("unstage");
}

/// The size of the filesystem mounted at `path`, in bytes.
pub fn fs_bytes(path: &str) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks() * st.fragment_size()
}

/// Calls CreateSnapshot again, as csi-snapshotter does, until the snapshot is ready.
pub async fn until_ready(c: &mut Clients, req: p::CreateSnapshotRequest) -> p::Snapshot {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let snap = c.ctl.create_snapshot(req.clone()).await.expect("create snapshot").into_inner().snapshot.unwrap();
        if snap.ready_to_use {
            return snap;
        }
        assert!(Instant::now() < deadline, "snapshot {} never became ready", req.name);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls CreateVolume again, as csi-provisioner does, while it answers ABORTED for a copy in
/// progress; the volume id.
pub async fn until_created(c: &mut Clients, req: p::CreateVolumeRequest) -> String {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match c.ctl.create_volume(req.clone()).await {
            Ok(r) => return r.into_inner().volume.unwrap().volume_id,
            Err(st) if st.code() == Code::Aborted && Instant::now() < deadline => {
                assert!(st.message().contains("cop"), "ABORTED for its copy: {}", st.message());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(st) => panic!("CreateVolume {}: {st:?}", req.name),
        }
    }
}
