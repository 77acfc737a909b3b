//! The FlexVolume side of the fault tester: a seeded kubelet mounting and unmounting volumes for
//! pods through the real `strata-flex`, killing the driver with SIGKILL mid-call and retrying as
//! kubelet does, with simulated reboots; every acknowledged write must read back.

use super::{Prng, Tally};
use crate::flex_support::{self as fs, World};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A call answered with the same failure this many times in a row is stuck.
const STUCK_AFTER: usize = 6;
/// The chance (percent) that a driver run is killed mid-call.
const KILL_MID_CALL: u64 = 30;
/// A driver run longer than this hangs.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_VOLUMES: usize = 6;
const MAX_PODS: usize = 3;

/// A volume as kubelet sees it: its options, the pods that mount it, its acknowledged writes.
#[derive(Debug, Clone)]
struct Vol {
    name: String,
    options: Vec<(&'static str, &'static str)>,
    volatile: bool,
    pods: Vec<String>,
    files: BTreeMap<String, String>,
}

/// The kubelet: a world (root, kubelet dir, log), its volumes and the run's tally.
pub struct Kubelet {
    world: World,
    rng: Prng,
    pub tally: Tally,
    vols: Vec<Vol>,
    op: usize,
    serial: usize,
}

/// How a driver run ended.
enum Run {
    Killed,
    Answered(fs::Reply),
}

impl Kubelet {
    pub fn new(seed: u64) -> Kubelet {
        Kubelet {
            world: World::new(),
            rng: Prng::new(seed),
            tally: Tally::new(seed),
            vols: Vec::new(),
            op: 0,
            serial: 0,
        }
    }

    fn violation(&mut self, what: String) {
        self.tally.violation(self.op, what);
    }

    /// One line of the run's trace (shown by cargo when the test fails).
    fn trace(&self, what: String) {
        println!("op {}: {what}", self.op);
    }

    fn next_name(&mut self, what: &str) -> String {
        self.serial += 1;
        format!("{what}-{}", self.serial)
    }

    /// Runs the driver once, SIGKILLed after a random delay some of the time.
    fn run_once(&mut self, args: &[&str]) -> Option<Run> {
        self.tally.calls += 1;
        let kill_after = self.rng.chance(KILL_MID_CALL).then(|| Duration::from_micros(self.rng.next_u64() % 30_000));
        let mut child = self
            .world
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run strata-flex");
        let start = Instant::now();
        loop {
            if child.try_wait().expect("wait for strata-flex").is_some() {
                let out = child.wait_with_output().expect("strata-flex output");
                let reply = fs::parse_output(&out);
                self.trace(format!("{} {} -> {} {}", args[0], args[1], reply.status(), reply.message()));
                return Some(Run::Answered(reply));
            }
            if kill_after.is_some_and(|d| start.elapsed() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                self.trace(format!("{} {} -> SIGKILL after {:?}", args[0], args[1], start.elapsed()));
                self.tally.kills += 1;
                self.tally.mid_call_kills += 1;
                return Some(Run::Killed);
            }
            if start.elapsed() > CALL_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                self.violation(format!("strata-flex {args:?} hung for {CALL_TIMEOUT:?}"));
                return None;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    /// Runs `args` until Success, as kubelet's operation executor retries a failed mount or
    /// unmount; false (with a violation) when the call is stuck or hangs.
    fn call(&mut self, args: &[&str]) -> bool {
        let mut last = String::new();
        let mut same = 0;
        loop {
            let reply = match self.run_once(args) {
                None => return false,
                Some(Run::Killed) => continue,
                Some(Run::Answered(r)) => r,
            };
            if reply.status() == "Success" {
                return true;
            }
            let message = reply.message().to_owned();
            if message.contains("INTERNAL") || message.contains("panicked") {
                self.violation(format!("strata-flex {} answered {message}", args[0]));
            }
            same = if message == last { same + 1 } else { 1 };
            if same >= STUCK_AFTER {
                self.tally.stuck += 1;
                self.violation(format!("strata-flex {args:?} stuck: {same} times in a row: {message}"));
                return false;
            }
            last = message;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn mount(&mut self, i: usize, pod: &str) -> bool {
        let v = &self.vols[i];
        let dir = self.world.pod_dir(pod, &v.name);
        let json = self.world.mount_json(pod, &v.name, "rw", &v.options);
        self.call(&["mount", dir.to_str().expect("utf-8"), &json])
    }

    fn unmount(&mut self, i: usize, pod: &str) -> bool {
        let dir = self.world.pod_path(pod, &self.vols[i].name);
        if !self.call(&["unmount", dir.to_str().expect("utf-8")]) {
            return false;
        }
        if self.world.mounts_at(&dir) > 0 {
            self.tally.leaks += 1;
            self.violation(format!("{} is still mounted after unmount answered Success", dir.display()));
        }
        // kubelet removes the pod's volume dir, which must be possible.
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                self.violation(format!("kubelet cannot remove {}: {e}", dir.display()));
            }
        }
        true
    }

    /// Runs `ops` seeded operations, then unmounts everything, deletes the volumes and checks
    /// that the node is clean.
    pub fn run(&mut self, ops: usize) {
        for op in 0..ops {
            self.op = op;
            self.tally.ops += 1;
            self.step();
        }
        self.op = ops;
        self.finish();
    }

    fn step(&mut self) {
        // new volume, mount for another pod, write, verify, unmount, reboot
        let acted = match self.rng.weighted(&[6, 14, 24, 6, 14, 1]) {
            0 => self.new_volume(),
            1 => self.mount_pod(),
            2 => self.write(),
            3 => self.verify_some(),
            4 => self.unmount_pod(),
            _ => {
                self.reboot();
                true
            }
        };
        if !acted {
            let _ = self.new_volume() || self.mount_pod();
        }
    }

    fn pick(&mut self, fit: impl Fn(&Vol) -> bool) -> Option<usize> {
        let fits: Vec<usize> = (0..self.vols.len()).filter(|i| fit(&self.vols[*i])).collect();
        (!fits.is_empty()).then(|| *self.rng.pick(&fits))
    }

    /// A new PV, mounted by its first pod (flex provisions on the first mount).
    fn new_volume(&mut self) -> bool {
        if self.vols.len() >= MAX_VOLUMES {
            return false;
        }
        let kinds: [&[(&str, &str)]; 3] = [
            &[("backend", "dir"), ("size", "16Mi")],
            &[("backend", "loop"), ("size", "32Mi")],
            &[("backend", "tmpfs"), ("size", "8Mi")],
        ];
        let options = self.rng.pick(&kinds).to_vec();
        let volatile = options.contains(&("backend", "tmpfs"));
        let name = self.next_name("pv");
        self.vols.push(Vol { name, options, volatile, pods: Vec::new(), files: BTreeMap::new() });
        let i = self.vols.len() - 1;
        let pod = self.next_name("pod");
        if self.mount(i, &pod) {
            self.vols[i].pods.push(pod);
        }
        true
    }

    fn mount_pod(&mut self) -> bool {
        let Some(i) = self.pick(|v| v.pods.len() < MAX_PODS) else { return false };
        let pod = self.next_name("pod");
        if self.mount(i, &pod) {
            self.vols[i].pods.push(pod);
        }
        true
    }

    fn live_dir(&mut self, i: usize, pod: &str) -> Option<PathBuf> {
        let dir = self.world.pod_path(pod, &self.vols[i].name);
        if self.world.mounts_at(&dir) == 0 {
            self.violation(format!("{} of pod {pod} is not mounted", self.vols[i].name));
            return None;
        }
        let dir_backend = self.vols[i].options.contains(&("backend", "dir"));
        if !dir_backend && super::same_fs(&dir, &self.world.kubelet) {
            let vol = &self.vols[i].name;
            self.violation(format!("{vol} of pod {pod} shows the node's disk, not the volume"));
            return None;
        }
        Some(dir)
    }

    fn write(&mut self) -> bool {
        let Some(i) = self.pick(|v| !v.pods.is_empty()) else { return false };
        let pod = self.rng.pick(&self.vols[i].pods).clone();
        let Some(dir) = self.live_dir(i, &pod) else { return true };
        let name = self.next_name("file");
        let len = 1024 + self.rng.below(32 * 1024);
        let data = self.rng.bytes(len);
        match super::write_acknowledged(&dir.join(&name), &data) {
            Ok(h) => {
                self.trace(format!("wrote {name} through {}", dir.display()));
                self.vols[i].files.insert(name, h);
                self.tally.writes += 1;
            }
            Err(e) => self.violation(format!("write of {name} through pod {pod} failed: {e}")),
        }
        true
    }

    fn verify_some(&mut self) -> bool {
        let Some(i) = self.pick(|v| !v.pods.is_empty()) else { return false };
        self.verify(i);
        true
    }

    /// Every acknowledged write reads back with its hash through every pod.
    fn verify(&mut self, i: usize) {
        for pod in self.vols[i].pods.clone() {
            let Some(dir) = self.live_dir(i, &pod) else { continue };
            for (name, want) in self.vols[i].files.clone() {
                let got = super::read_hash(&dir.join(&name));
                if got.as_ref() != Ok(&want) {
                    // Counted once: the write is forgotten, so later reads do not count it again.
                    self.tally.lost_writes += 1;
                    self.vols[i].files.remove(&name);
                    let vol = self.vols[i].name.clone();
                    self.violation(format!("lost write: {vol} file {name} through pod {pod}: {got:?}, want {want}"));
                }
            }
        }
    }

    fn unmount_pod(&mut self) -> bool {
        let Some(i) = self.pick(|v| !v.pods.is_empty()) else { return false };
        let j = self.rng.below(self.vols[i].pods.len());
        let pod = self.vols[i].pods[j].clone();
        if self.unmount(i, &pod) {
            self.vols[i].pods.remove(j);
        }
        true
    }

    /// Every mount and loop device of the node gone; tmpfs data lost; kubelet mounts every
    /// pod's volumes again with the same arguments.
    fn reboot(&mut self) {
        self.trace("reboot".into());
        self.tally.reboots += 1;
        let (root, kubelet) = (self.world.root.clone(), self.world.kubelet.clone());
        let frozen = super::power_cycle(&[&root, &kubelet], &format!("{}/", root.display()));
        if !frozen.is_empty() {
            self.tally.leaks += frozen.len();
            self.violation(format!("filesystems left frozen at reboot: {frozen:?}"));
        }
        for i in 0..self.vols.len() {
            if self.vols[i].volatile {
                self.vols[i].files.clear();
            }
            let mut kept = Vec::new();
            for pod in self.vols[i].pods.clone() {
                if self.mount(i, &pod) {
                    kept.push(pod);
                }
            }
            self.vols[i].pods = kept;
        }
    }

    fn finish(&mut self) {
        for i in 0..self.vols.len() {
            if self.vols[i].pods.is_empty() && !self.vols[i].files.is_empty() {
                let pod = self.next_name("verify");
                if self.mount(i, &pod) {
                    self.vols[i].pods.push(pod);
                }
            }
            self.verify(i);
            for pod in self.vols[i].pods.clone() {
                self.unmount(i, &pod);
            }
        }
        self.delete_all();
        self.check_node_clean();
    }

    /// Deletes every volume through the engine, as an administrator would after the pods.
    fn delete_all(&mut self) {
        let cfg = strata::engine::Config {
            allowed_prefixes: vec![self.world.kubelet.clone()],
            ..strata::engine::Config::new(&self.world.root)
        };
        let engine = strata::engine::Engine::new(cfg, std::sync::Arc::new(strata::sys::LinuxHost)).expect("engine");
        for vol in engine.list_volumes().expect("list volumes") {
            if let Err(e) = engine.delete_volume(&vol.id) {
                self.violation(format!("delete of {} after every unmount failed: {e}", vol.id));
            }
        }
    }

    fn check_node_clean(&mut self) {
        let root = self.world.root.clone();
        let mut mounts = super::mounts_below(&root);
        mounts.extend(super::mounts_below(&self.world.kubelet));
        let loops = super::loops_of(&format!("{}/", root.display()));
        let files = super::entries_below(&root.join("volumes"));
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
        let log = std::fs::read_to_string(&self.world.log).unwrap_or_default();
        let panics = super::panics_in(&log);
        if !panics.is_empty() {
            self.violation(format!("strata-flex panicked: {panics:?}"));
        }
    }
}
