//! The CSI side of the fault tester: a seeded CO (provisioner, snapshotter, resizer and kubelet in
//! one) driving the real `strata-csi serve`, killing it mid-call, rebooting the node and
//! restarting the server in new mount namespaces, and checking every invariant as it goes.

use super::call::{Answer, Call, Killer};
use super::{Prng, Tally};
use crate::csi_support::{self as cs, Clients, Server};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use strata::csi::proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
use strata::csi::proto::{self as p};
use tonic::{Code, Status};

/// A call answered the same way this many times in a row is stuck.
const STUCK_AFTER: usize = 6;
/// A call that takes longer than this hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The chance (percent) that an attempt of a call is cut by a SIGKILL of the server.
const KILL_MID_CALL: u64 = 12;
/// At most this many live volumes.
const MAX_VOLUMES: usize = 10;
/// At most this many publications per volume.
const MAX_PUBS: usize = 3;
/// The first operations of every run (indices into the weights of `Co::step`): every class once,
/// so that any seed covers them all; random ones follow.
const SCRIPT: [usize; 19] = [0, 0, 0, 2, 2, 2, 3, 3, 4, 4, 6, 1, 1, 8, 13, 14, 9, 10, 7];
/// The command that starts the server in a new mount namespace, as a container restart does.
const UNSHARE: [&str; 4] = ["unshare", "--mount", "--propagation", "unchanged"];

/// The kinds of volume the workload creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Ext4,
    Xfs,
    Tmpfs,
}

impl Kind {
    fn params(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Kind::Dir => vec![("backend", "dir")],
            Kind::Ext4 => vec![("backend", "loop"), ("csi.storage.k8s.io/fstype", "ext4")],
            Kind::Xfs => vec![("backend", "loop"), ("csi.storage.k8s.io/fstype", "xfs")],
            Kind::Tmpfs => vec![("backend", "tmpfs")],
        }
    }

    fn bytes(self) -> i64 {
        match self {
            Kind::Dir | Kind::Tmpfs => 16 << 20,
            Kind::Ext4 => 32 << 20,
            Kind::Xfs => 300 << 20,
        }
    }

    fn is_loop(self) -> bool {
        matches!(self, Kind::Ext4 | Kind::Xfs)
    }
}

/// A publication the CO believes exists.
#[derive(Debug, Clone)]
struct Pub {
    target: String,
    readonly: bool,
}

/// A volume as the CO believes it is, with every acknowledged write (file name -> hash).
#[derive(Debug, Clone)]
struct Vol {
    id: String,
    kind: Kind,
    bytes: i64,
    staging: String,
    staged: bool,
    pubs: Vec<Pub>,
    files: BTreeMap<String, String>,
}

/// A snapshot with the files its source held when it was cut.
#[derive(Debug, Clone)]
struct Snap {
    id: String,
    kind: Kind,
    bytes: i64,
    files: BTreeMap<String, String>,
}

impl Drop for Co {
    /// A failed run leaves nothing on the host: thaws, unmounts and detaches what the engine left
    /// (loop devices from dead namespaces included, which a cleanup by path cannot find).
    fn drop(&mut self) {
        let (root, kubelet) = (self.server.root.clone(), self.server.kubelet.clone());
        super::power_cycle(&[&root, &kubelet], &self.loop_needle);
    }
}

/// The CO: the server, its clients, what it believes exists, and the run's tally.
pub struct Co {
    pub server: Server,
    clients: Clients,
    rng: Prng,
    pub tally: Tally,
    /// `/<data root's dir name>/`, unique to this run: its loop devices are found by it.
    loop_needle: String,
    _shared: super::SharedDir,
    vols: Vec<Vol>,
    snaps: Vec<Snap>,
    op: usize,
    serial: usize,
    /// Whether restarts may use a new mount namespace.
    namespaces: bool,
    /// How many operations of each kind completed (for the coverage check).
    pub done: BTreeMap<&'static str, usize>,
}

impl Co {
    /// Starts the server on a fresh node whose data root and kubelet dir are shared mounts.
    pub async fn start(seed: u64) -> Co {
        let node = tempfile::tempdir().expect("node dir").keep();
        let shared = super::SharedDir::new(&node);
        let root_name = format!("strata-fault-root-{}-{seed:x}", std::process::id());
        let root = node.join(&root_name);
        let loop_needle = format!("/{root_name}/");
        let server = Server::start_under(&[], cs::NODE, Some(root), &[], super::share);
        let clients = server.clients().await;
        Co {
            server,
            clients,
            rng: Prng::new(seed),
            tally: Tally::new(seed),
            loop_needle,
            _shared: shared,
            vols: Vec::new(),
            snaps: Vec::new(),
            op: 0,
            serial: 0,
            namespaces: std::env::var_os("STRATA_FAULT_NO_NS").is_none(),
            done: BTreeMap::new(),
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.done.entry(what).or_default() += 1;
    }

    fn violation(&mut self, what: String) {
        self.tally.violation(self.op, what);
    }

    /// One line of the run's trace (shown by cargo when the test fails).
    fn trace(&self, what: String) {
        println!("op {}: {what}", self.op);
    }

    /// Restarts the server after it died, in a new mount namespace about a third of the time
    /// (never with `STRATA_FAULT_NO_NS` set).
    async fn restart(&mut self) {
        let new_ns = self.rng.chance(33);
        self.restart_in(new_ns).await;
    }

    async fn restart_in(&mut self, new_ns: bool) {
        if new_ns && self.namespaces {
            self.trace("restart in a new mount namespace".into());
            self.server.set_wrapper(&UNSHARE);
            self.tally.ns_restarts += 1;
        } else {
            self.trace("restart".into());
            self.server.set_wrapper(&[]);
        }
        self.server.spawn();
        self.clients = self.reconnect().await;
    }

    /// New clients for the restarted server. A server that does not answer within seconds is a
    /// broken invariant that ends the run: its log's tail goes into the report.
    async fn reconnect(&mut self) -> Clients {
        let ep: strata::csi::server::Endpoint = self.server.endpoint().parse().expect("endpoint");
        let mut last = String::new();
        for _ in 0..50 {
            match strata::csi::client::connect(&ep).await {
                Ok(ch) => return Clients::from_channel(ch),
                Err(e) => last = format!("{e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = self.server.log_text();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        self.violation(format!("the restarted server does not answer: {last}; its log ends with {tail:?}"));
        self.tally.assert_clean("csi");
        unreachable!("assert_clean fails with a violation recorded")
    }

    /// SIGKILL of the server between calls, then a restart.
    async fn kill_and_restart(&mut self) {
        self.trace("SIGKILL between calls".into());
        self.server.stop(nix::sys::signal::Signal::SIGKILL);
        self.tally.kills += 1;
        self.restart().await;
    }

    /// Sends `call` until it succeeds or ends with one of `finals`, as kubelet and the sidecars
    /// retry: the same arguments, again and again. A SIGKILL may cut any attempt.
    async fn call(&mut self, call: &Call, finals: &[Code]) -> Option<Result<Answer, Status>> {
        let mut last: Option<(Code, String)> = None;
        let mut same = 0;
        loop {
            self.tally.calls += 1;
            // Every draw is made whether or not it is used, so that timing changes as little of
            // the rest of the run as possible.
            let (kill, delay, new_ns) =
                (self.rng.chance(KILL_MID_CALL), self.rng.next_u64() % 40_000, self.rng.chance(33));
            let killer = kill.then(|| Killer::arm(self.server.pid(), Duration::from_micros(delay)));
            let answer = tokio::time::timeout(CALL_TIMEOUT, call.send(&mut self.clients)).await;
            let killed = killer.is_some_and(Killer::disarm);
            let shown = match &answer {
                Ok(Ok(_)) => "OK".to_owned(),
                Ok(Err(s)) => format!("{:?} {}", s.code(), s.message()),
                Err(_) => "no answer".to_owned(),
            };
            let cut = if killed { format!(" (SIGKILL after {delay} us)") } else { String::new() };
            self.trace(format!("{} -> {shown}{cut}", call.describe()));
            if killed {
                self.tally.kills += 1;
                self.tally.mid_call_kills += 1;
                self.server.stop(nix::sys::signal::Signal::SIGKILL);
                self.restart_in(new_ns).await;
            }
            let Ok(answer) = answer else {
                self.violation(format!("{} hung for {CALL_TIMEOUT:?}", call.describe()));
                return None;
            };
            let status = match answer {
                Ok(a) => return Some(Ok(a)),
                Err(s) if finals.contains(&s.code()) => return Some(Err(s)),
                Err(_) if killed => continue,
                Err(s) => s,
            };
            if matches!(status.code(), Code::Internal | Code::Unknown) {
                self.violation(format!("{} answered {:?}: {}", call.describe(), status.code(), status.message()));
            }
            let key = (status.code(), status.message().to_owned());
            same = if last.as_ref() == Some(&key) { same + 1 } else { 1 };
            last = Some(key);
            if same >= STUCK_AFTER {
                self.tally.stuck += 1;
                let msg = format!(
                    "{} stuck: {:?} {} times in a row: {}",
                    call.describe(),
                    status.code(),
                    same,
                    status.message()
                );
                self.violation(msg);
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `call` that must succeed; false (and a violation already recorded) when it did not.
    async fn must(&mut self, call: Call) -> Option<Answer> {
        match self.call(&call, &[]).await? {
            Ok(a) => Some(a),
            Err(s) => unreachable!("no final codes allowed: {s:?}"),
        }
    }

    /// Runs `ops` seeded operations, then the final cleanup and every end-of-run check.
    pub async fn run(&mut self, ops: usize) {
        for op in 0..ops {
            self.op = op;
            self.tally.ops += 1;
            self.step().await;
        }
        self.op = ops;
        self.finish().await;
    }

    async fn step(&mut self) {
        // create, restore/clone, stage, publish, write, verify, snapshot, delete snapshot, expand,
        // unpublish, unstage, delete, kill, reboot, namespace restart
        let weights = [10, 12, 10, 12, 22, 6, 6, 2, 4, 8, 6, 4, 3, 1, 2];
        let op = match SCRIPT.get(self.op) {
            Some(op) => *op,
            None => self.rng.weighted(&weights),
        };
        let acted = match op {
            0 => self.create().await,
            1 => self.copy().await,
            2 => self.stage().await,
            3 => self.publish().await,
            4 => self.write(),
            5 => self.verify_some(),
            6 => self.snapshot().await,
            7 => self.delete_snapshot().await,
            8 => self.expand().await,
            9 => self.unpublish().await,
            10 => self.unstage().await,
            11 => self.delete().await,
            12 => {
                self.kill_and_restart().await;
                true
            }
            13 => {
                self.reboot().await;
                true
            }
            _ => {
                self.trace("SIGKILL between calls".into());
                self.server.stop(nix::sys::signal::Signal::SIGKILL);
                self.tally.kills += 1;
                self.restart_in(true).await;
                true
            }
        };
        if !acted {
            // Nothing to act on: grow the population instead.
            let _ = self.create().await || self.stage().await;
        }
    }

    fn next_name(&mut self, what: &str) -> String {
        self.serial += 1;
        format!("{what}-{}", self.serial)
    }

    fn pick_vol(&mut self, fit: impl Fn(&Vol) -> bool) -> Option<usize> {
        let fits: Vec<usize> = (0..self.vols.len()).filter(|i| fit(&self.vols[*i])).collect();
        (!fits.is_empty()).then(|| *self.rng.pick(&fits))
    }

    async fn create(&mut self) -> bool {
        if self.vols.len() >= MAX_VOLUMES {
            return false;
        }
        let xfs_live = self.vols.iter().filter(|v| v.kind == Kind::Xfs).count();
        let kinds: &[Kind] = if xfs_live == 0 {
            &[Kind::Dir, Kind::Ext4, Kind::Xfs, Kind::Tmpfs]
        } else {
            &[Kind::Dir, Kind::Ext4, Kind::Tmpfs]
        };
        let picked = *self.rng.pick(kinds);
        // The first three are one of each kind that matters for coverage.
        let kind = [Kind::Ext4, Kind::Dir, Kind::Tmpfs].get(self.done.get("create").map_or(0, |n| *n)).copied();
        let kind = kind.unwrap_or(picked);
        let name = self.next_name("pvc");
        let req = cs::create_req(&name, kind.bytes(), &kind.params());
        self.create_from(req, kind, BTreeMap::new()).await
    }

    async fn create_from(&mut self, req: p::CreateVolumeRequest, kind: Kind, files: BTreeMap<String, String>) -> bool {
        let Some(a) = self.must(Call::Create(req.clone())).await else { return true };
        let staging = self.server.path(&format!("plugins/kubernetes.io/csi/strata/{}/globalmount", req.name));
        std::fs::create_dir_all(Path::new(&staging).parent().expect("parent")).expect("staging parent");
        let bytes = a.size.max(req.capacity_range.map_or(0, |r| r.required_bytes));
        self.vols.push(Vol { id: a.volume_id, kind, bytes, staging, staged: false, pubs: Vec::new(), files });
        self.count("create");
        true
    }

    /// A restore from a snapshot or a clone of a volume, of the same kind.
    async fn copy(&mut self) -> bool {
        if self.vols.len() >= MAX_VOLUMES {
            return false;
        }
        let likely = self.rng.chance(75);
        let from_snap = !self.snaps.is_empty()
            && match (self.done.contains_key("restore"), self.done.contains_key("clone")) {
                (false, _) => true,
                (true, false) => false,
                (true, true) => likely,
            };
        let (kind, bytes, files, source, what) = if from_snap {
            let s = self.rng.pick(&self.snaps).clone();
            let src = Type::Snapshot(SnapshotSource { snapshot_id: s.id.clone() });
            (s.kind, s.bytes, s.files, src, "restore")
        } else {
            let Some(i) = self.pick_vol(|v| v.kind != Kind::Tmpfs && v.kind != Kind::Xfs) else { return false };
            let v = self.vols[i].clone();
            let src = Type::Volume(VolumeSource { volume_id: v.id.clone() });
            (v.kind, v.bytes, v.files, src, "clone")
        };
        if kind == Kind::Xfs && self.vols.iter().any(|v| v.kind == Kind::Xfs) {
            return false;
        }
        let name = self.next_name(what);
        let mut req = cs::create_req(&name, bytes, &kind.params());
        req.volume_content_source = Some(p::VolumeContentSource { r#type: Some(source) });
        self.create_from(req, kind, files).await && {
            self.count(what);
            true
        }
    }

    fn stage_call(v: &Vol) -> Call {
        Call::Stage(cs::stage_req(&v.id, &v.staging, cs::mount_cap()))
    }

    async fn stage(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| !v.staged) else { return false };
        let call = Self::stage_call(&self.vols[i]);
        if self.must(call).await.is_some() {
            self.vols[i].staged = true;
            self.count("stage");
        }
        true
    }

    fn publish_call(v: &Vol, pb: &Pub) -> Call {
        let mut req = cs::publish_req(&v.id, &v.staging, &pb.target, cs::mount_cap());
        req.readonly = pb.readonly;
        Call::Publish(req)
    }

    async fn publish(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| v.staged && v.pubs.len() < MAX_PUBS) else { return false };
        let pod = self.next_name("pod");
        let target = self.server.path(&format!("pods/{pod}/volumes/kubernetes.io~csi/vol/mount"));
        std::fs::create_dir_all(Path::new(&target).parent().expect("parent")).expect("pod dir");
        let pb = Pub { target, readonly: self.rng.chance(25) };
        let call = Self::publish_call(&self.vols[i], &pb);
        if self.must(call).await.is_some() {
            self.vols[i].pubs.push(pb);
            self.count("publish");
        }
        true
    }

    /// A pod writes a file (new or overwritten) through a read-write publication.
    fn write(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| v.pubs.iter().any(|p| !p.readonly)) else { return false };
        let rw: Vec<Pub> = self.vols[i].pubs.iter().filter(|p| !p.readonly).cloned().collect();
        let target = self.rng.pick(&rw).target.clone();
        if !self.publication_is_live(i, &target) {
            return true;
        }
        let name = match self.vols[i].files.keys().cloned().collect::<Vec<_>>() {
            names if !names.is_empty() && self.rng.chance(30) => self.rng.pick(&names).clone(),
            _ => self.next_name("file"),
        };
        let len = 1024 + self.rng.below(32 * 1024);
        let data = self.rng.bytes(len);
        match super::write_acknowledged(&Path::new(&target).join(&name), &data) {
            Ok(h) => {
                self.vols[i].files.insert(name, h);
                self.tally.writes += 1;
            }
            Err(e) => self.violation(format!("write of {name} to {} ({target}) failed: {e}", self.vols[i].id)),
        }
        true
    }

    /// The target is a mount, and its filesystem is not frozen (a frozen one would make the
    /// write block): checked before every write and read.
    fn publication_is_live(&mut self, i: usize, target: &str) -> bool {
        let id = self.vols[i].id.clone();
        let Some(m) = cs::mount_at(target) else {
            self.violation(format!("publication of {id} at {target} is not mounted"));
            return false;
        };
        if self.vols[i].kind != Kind::Dir && super::same_fs(Path::new(target), &self.server.kubelet) {
            self.violation(format!("publication of {id} at {target} shows the node's disk, not the volume: {m:?}"));
            return false;
        }
        if self.vols[i].kind.is_loop() && super::thaw_if_frozen(Path::new(target)) {
            self.tally.leaks += 1;
            self.violation(format!("{id} was left frozen outside any call (thawed by the tester); mount {m:?}"));
        }
        true
    }

    fn verify_some(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| !v.pubs.is_empty()) else { return false };
        self.verify(i);
        true
    }

    /// Every acknowledged write of volume `i` reads back with its hash through each publication;
    /// read-only publications are read-only.
    fn verify(&mut self, i: usize) {
        for pb in self.vols[i].pubs.clone() {
            if !self.publication_is_live(i, &pb.target) {
                continue;
            }
            let ro = cs::mount_at(&pb.target).is_some_and(|m| m.is_readonly());
            if pb.readonly && !ro {
                self.violation(format!("read-only publication of {} at {} is writable", self.vols[i].id, pb.target));
            }
            for (name, want) in self.vols[i].files.clone() {
                let got = super::read_hash(&Path::new(&pb.target).join(&name));
                if got.as_ref() != Ok(&want) {
                    // Counted once: the write is forgotten, so later reads do not count it again.
                    self.tally.lost_writes += 1;
                    self.vols[i].files.remove(&name);
                    let id = &self.vols[i].id;
                    self.violation(format!("lost write: {id} file {name} at {}: {got:?}, want {want}", pb.target));
                }
            }
        }
        self.count("verify");
    }

    async fn snapshot(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| v.kind != Kind::Tmpfs) else { return false };
        let (id, kind, files) = (self.vols[i].id.clone(), self.vols[i].kind, self.vols[i].files.clone());
        let name = self.next_name("snap");
        let req = p::CreateSnapshotRequest { name, source_volume_id: id, ..Default::default() };
        if let Some(a) = self.must(Call::Snapshot(req)).await {
            let bytes = a.size.max(self.vols[i].bytes);
            self.snaps.push(Snap { id: a.snapshot_id, kind, bytes, files });
            self.count("snapshot");
        }
        true
    }

    async fn delete_snapshot(&mut self) -> bool {
        if self.snaps.is_empty() {
            return false;
        }
        let i = self.rng.below(self.snaps.len());
        if self.must(Call::DeleteSnapshot(self.snaps[i].id.clone())).await.is_some() {
            self.snaps.remove(i);
            self.count("delete snapshot");
        }
        true
    }

    /// ControllerExpandVolume, then NodeExpandVolume through a publication (the resizer and
    /// kubelet); ext4 cannot grow online here and answers FAILED_PRECONDITION.
    async fn expand(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| v.kind != Kind::Tmpfs) else { return false };
        let (id, bytes) = (self.vols[i].id.clone(), self.vols[i].bytes + (8 << 20));
        if self.must(Call::ControllerExpand(id.clone(), bytes)).await.is_none() {
            return true;
        }
        self.count("controller expand");
        let Some(pb) = self.vols[i].pubs.first().cloned() else { return true };
        let finals: &[Code] = if self.vols[i].kind == Kind::Ext4 { &[Code::FailedPrecondition] } else { &[] };
        match self.call(&Call::NodeExpand(id, pb.target, bytes), finals).await {
            Some(Ok(a)) => {
                self.vols[i].bytes = a.size.max(bytes);
                self.count("node expand");
            }
            Some(Err(_)) => {
                self.vols[i].bytes = bytes;
                self.count("node expand deferred");
            }
            None => {}
        }
        true
    }

    async fn unpublish(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| !v.pubs.is_empty()) else { return false };
        let j = self.rng.below(self.vols[i].pubs.len());
        self.unpublish_at(i, j).await;
        true
    }

    async fn unpublish_at(&mut self, i: usize, j: usize) -> bool {
        let target = self.vols[i].pubs[j].target.clone();
        let call = Call::Unpublish(cs::unpublish_req(&self.vols[i].id, &target));
        if self.must(call).await.is_none() {
            return false;
        }
        self.vols[i].pubs.remove(j);
        if cs::mount_at(&target).is_some() {
            self.tally.leaks += 1;
            self.violation(format!("{target} is still mounted after NodeUnpublishVolume answered OK"));
        }
        // kubelet removes the pod's dir once the volume is gone from it.
        let _ = std::fs::remove_dir_all(Path::new(&target).ancestors().nth(4).expect("pod dir"));
        self.count("unpublish");
        true
    }

    async fn unstage(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| v.staged && v.pubs.is_empty()) else { return false };
        self.unstage_at(i).await;
        true
    }

    async fn unstage_at(&mut self, i: usize) -> bool {
        let (id, staging) = (self.vols[i].id.clone(), self.vols[i].staging.clone());
        if self.must(Call::Unstage(cs::unstage_req(&id, &staging))).await.is_none() {
            return false;
        }
        self.vols[i].staged = false;
        if cs::mount_at(&staging).is_some() {
            self.tally.leaks += 1;
            self.violation(format!("{staging} is still mounted after NodeUnstageVolume answered OK"));
        }
        self.count("unstage");
        true
    }

    async fn delete(&mut self) -> bool {
        let Some(i) = self.pick_vol(|v| !v.staged) else { return false };
        self.delete_at(i).await;
        true
    }

    async fn delete_at(&mut self, i: usize) -> bool {
        if self.must(Call::Delete(self.vols[i].id.clone())).await.is_none() {
            return false;
        }
        let v = self.vols.remove(i);
        let _ = std::fs::remove_dir_all(Path::new(&v.staging).parent().expect("staging parent"));
        self.count("delete");
        true
    }

    /// A reboot: the server dies, every mount and loop device of the node is gone, tmpfs data is
    /// lost; the server starts again and kubelet stages and publishes again what it had.
    async fn reboot(&mut self) {
        self.trace("reboot".into());
        self.server.stop(nix::sys::signal::Signal::SIGKILL);
        self.tally.kills += 1;
        self.tally.reboots += 1;
        let (root, kubelet) = (self.server.root.clone(), self.server.kubelet.clone());
        let frozen = super::power_cycle(&[&root, &kubelet], &self.loop_needle);
        if !frozen.is_empty() {
            self.tally.leaks += frozen.len();
            self.violation(format!("filesystems left frozen outside any call at reboot: {frozen:?}"));
        }
        self.restart().await;
        for i in 0..self.vols.len() {
            if self.vols[i].kind == Kind::Tmpfs {
                self.vols[i].files.clear();
            }
            self.restore_node_state(i).await;
        }
    }

    /// kubelet after a reboot: NodeStage, then NodePublish for each pod, with the same arguments.
    async fn restore_node_state(&mut self, i: usize) {
        if !self.vols[i].staged {
            return;
        }
        if self.must(Self::stage_call(&self.vols[i])).await.is_none() {
            self.vols[i].staged = false;
            self.vols[i].pubs.clear();
            return;
        }
        let mut kept = Vec::new();
        for pb in self.vols[i].pubs.clone() {
            if self.must(Self::publish_call(&self.vols[i], &pb)).await.is_some() {
                kept.push(pb);
            }
        }
        self.vols[i].pubs = kept;
    }

    /// Reads everything back, then unpublishes, unstages and deletes everything (kills may still
    /// cut these calls), then checks that the node is clean.
    async fn finish(&mut self) {
        for i in 0..self.vols.len() {
            self.verify_everything_of(i).await;
        }
        while !self.vols.is_empty() {
            let last = self.vols.len() - 1;
            while let Some(j) = self.vols[last].pubs.len().checked_sub(1) {
                if !self.unpublish_at(last, j).await {
                    self.vols[last].pubs.remove(j);
                }
            }
            if self.vols[last].staged && !self.unstage_at(last).await {
                self.vols[last].staged = false;
            }
            if !self.delete_at(last).await {
                self.vols.pop();
            }
        }
        while let Some(s) = self.snaps.pop() {
            self.must(Call::DeleteSnapshot(s.id)).await;
        }
        self.server.stop(nix::sys::signal::Signal::SIGTERM);
        self.check_node_clean();
    }

    /// Publishes a volume that has no publication (stage first if needed), then verifies it.
    async fn verify_everything_of(&mut self, i: usize) {
        if self.vols[i].files.is_empty() && self.vols[i].pubs.is_empty() {
            return;
        }
        if !self.vols[i].staged {
            if self.must(Self::stage_call(&self.vols[i])).await.is_none() {
                return self.unverifiable(i);
            }
            self.vols[i].staged = true;
        }
        if self.vols[i].pubs.is_empty() {
            let target = self.server.path(&format!("pods/verify-{i}/volumes/kubernetes.io~csi/vol/mount"));
            std::fs::create_dir_all(Path::new(&target).parent().expect("parent")).expect("pod dir");
            let pb = Pub { target, readonly: true };
            if self.must(Self::publish_call(&self.vols[i], &pb)).await.is_none() {
                return self.unverifiable(i);
            }
            self.vols[i].pubs.push(pb);
        }
        self.verify(i);
    }

    fn unverifiable(&mut self, i: usize) {
        let (id, n) = (self.vols[i].id.clone(), self.vols[i].files.len());
        self.violation(format!("{n} acknowledged writes of {id} cannot be read back: it cannot be published"));
    }

    /// Zero mounts below the root and the kubelet dir, zero loop devices of the run, nothing left
    /// under `<root>/volumes` and `<root>/snapshots`, no panic in the server's log.
    fn check_node_clean(&mut self) {
        let (root, kubelet) = (self.server.root.clone(), self.server.kubelet.clone());
        let mut mounts = super::mounts_below(&root);
        mounts.extend(super::mounts_below(&kubelet));
        let loops = super::loops_of(&self.loop_needle);
        // The directories made ahead for dir creates (`volumes/.pool-*`) are the server's own.
        let mut files = super::entries_below(&root.join("volumes"));
        files.retain(|f| !f.to_string_lossy().contains("/.pool-"));
        files.extend(super::entries_below(&root.join("snapshots")));
        for (what, left) in [
            ("mounts", mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>()),
            ("loop devices", loops),
            ("files", files.iter().map(|f| f.display().to_string()).collect()),
        ] {
            if !left.is_empty() {
                self.tally.leaks += left.len();
                self.violation(format!("{} {what} left after the final cleanup: {left:?}", left.len()));
            }
        }
        let panics = super::panics_in(&self.server.log_text());
        if !panics.is_empty() {
            self.violation(format!("the server panicked: {panics:?}"));
        }
    }
}
