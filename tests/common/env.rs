//! A scratch engine for root-tier tests: a temp root (on a scratch btrfs for the btrfs backend),
//! a temp kubelet dir as the only allowed prefix, and cleanup of whatever a failing test leaves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::{Cleanup, ScratchBtrfs, files_under, loops_under, mounts_under, require_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata::backend::Kind;
use strata::engine::{Access, Config, CreateRequest, Engine, SnapshotRequest, Source};
use strata::sys::{FsType, LinuxHost};

/// Fields drop in order: unmount leftovers, then the scratch btrfs, then the temp dir.
pub struct Env {
    _cleanup: Cleanup,
    _btrfs: Option<ScratchBtrfs>,
    pub engine: Engine,
    pub kubelet: PathBuf,
    pub root: PathBuf,
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new(kind: Kind) -> Env {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let btrfs = (kind == Kind::Btrfs).then(|| ScratchBtrfs::new(tmp.path(), 1 << 30));
        let root = btrfs.as_ref().map_or_else(|| tmp.path().join("root"), |b| b.mount.join("root"));
        let kubelet = tmp.path().join("kubelet");
        std::fs::create_dir(&kubelet).unwrap();
        let engine = Engine::new(Self::config(&root, &kubelet), Arc::new(LinuxHost)).unwrap();
        let _cleanup = Cleanup(tmp.path().to_owned());
        Env { _cleanup, _btrfs: btrfs, engine, kubelet, root, tmp }
    }

    fn config(root: &Path, kubelet: &Path) -> Config {
        Config { allowed_prefixes: vec![kubelet.to_owned()], ..Config::new(root) }
    }

    /// Another engine on the same root, as a second process would have.
    pub fn second_engine(&self) -> Engine {
        Engine::new(Self::config(&self.root, &self.kubelet), Arc::new(LinuxHost)).unwrap()
    }

    /// A path under the kubelet dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.kubelet.join(name)
    }

    /// A directory under the kubelet dir, created.
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn create(&self, id: &str, kind: Kind, capacity: u64, fs_type: Option<FsType>) {
        self.create_from(id, kind, capacity, fs_type, None);
    }

    pub fn create_from(&self, id: &str, kind: Kind, capacity: u64, fs_type: Option<FsType>, source: Option<Source>) {
        let parameters = BTreeMap::new();
        let req = CreateRequest { id: id.into(), name: id.into(), backend: kind, capacity, fs_type, parameters };
        match source {
            Some(s) => self.engine.create_volume_from(&req, &s).unwrap(),
            None => self.engine.create_volume(&req).unwrap(),
        };
    }

    /// Stages `id` at `staging-<id>` and publishes it at `pod-<id>`; returns the pod path.
    pub fn open(&self, id: &str) -> PathBuf {
        let staging = self.dir(&format!("staging-{id}"));
        self.engine.stage_volume(id, &staging, &Access::Mount { flags: vec![] }).unwrap();
        let target = self.path(&format!("pod-{id}"));
        self.engine.publish_volume(id, &staging, &target, false).unwrap();
        target
    }

    /// Undoes [`Env::open`].
    pub fn close(&self, id: &str) {
        let staging = self.path(&format!("staging-{id}"));
        self.engine.unpublish_volume(id, &self.path(&format!("pod-{id}"))).unwrap();
        self.engine.unstage_volume(id, &staging).unwrap();
        std::fs::remove_dir(&staging).unwrap();
    }

    pub fn snapshot(&self, id: &str, vol: &str) {
        let req = SnapshotRequest { id: id.into(), name: id.into(), source_volume: vol.into() };
        self.engine.create_snapshot(&req).unwrap();
    }

    /// Nothing of ours is left on the host: no mount, no loop device, no volume, no lock file
    /// but the kept shared ones, nothing under the kubelet dir.
    pub fn assert_clean(&self) {
        let mounts: Vec<PathBuf> =
            mounts_under(self.tmp.path()).into_iter().filter(|m| !m.ends_with("btrfs")).collect();
        assert!(mounts.is_empty(), "leaked mounts: {mounts:?}");
        let loops: Vec<String> =
            loops_under(self.tmp.path()).into_iter().filter(|l| !l.ends_with("btrfs.img")).collect();
        assert!(loops.is_empty(), "leaked loop devices: {loops:?}");
        let mut files = files_under(&self.root.join("volumes"));
        let kept = |f: &PathBuf| {
            f.file_name().is_some_and(|n| n == strata::engine::lock::LOCK_FILE || n == strata::engine::ledger::FILE)
        };
        files.extend(files_under(&self.root.join("locks")).into_iter().filter(|f| !kept(f)));
        files.extend(files_under(&self.kubelet));
        assert!(files.is_empty(), "files left behind: {files:?}");
    }
}
