//! The volume engine: the only place that decides. It validates, locks, keeps the records and
//! drives the backends through the volume lifecycle; both front-ends call it.

mod aside;
pub mod capacity;
mod cause;
pub mod claim;
mod copies;
pub mod encryption;
mod error;
mod exhausted;
mod groups;
mod groupsync;
mod health;
mod holder;
mod inspect;
mod intents;
mod isolate;
mod journal;
mod kernel;
pub mod ledger;
pub mod lock;
mod memo;
pub mod mount_policy;
mod node;
mod paths;
pub mod perm;
mod pool;
mod publications;
mod quarantine;
pub mod quick;
pub mod reconcile;
pub mod record;
mod removals;
mod repair;
pub mod size;
mod snapshot;
mod state;
mod survey;
pub mod validate;
mod volumes;

pub use crate::crashpoint;
pub use crate::volume::Allocation;
pub use capacity::{Budget, Overcommit};
pub use copies::{CopyJob, CopyKey, CopyProgress, CopyStats, JobState, PROGRESS_FILE};
pub use error::{Class, Error, Result};
pub use exhausted::Resource;
pub use groups::{Group, GroupRequest, GroupView, member_id};
pub use health::Condition;
pub use inspect::{FrontEnd, Inspection, SnapshotInspection};
pub use isolate::Isolation;
pub use lock::Wait;
pub use mount_policy::Use;
pub use node::{Bind, Check};
pub use quarantine::Quarantine;
pub use quote::{QUOTE_MAX, clip, quote, quote_path};
pub use record::{Access, Publication, Snapshot, Source, Staging, Volume};
pub use snapshot::SnapshotRequest;
pub use survey::Survey;

use crate::backend::{self, Backend, Kind, Usage, VolumeDir};
use crate::quote;
use crate::sys::{FsType, Host};
use lock::VolumeLock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the engine keeps its state and which paths it may touch.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data root (`/var/lib/strata` by default).
    pub root: PathBuf,
    /// Staging and target paths from requests must lie under one of these.
    pub allowed_prefixes: Vec<PathBuf>,
    /// What to do when another caller holds a volume.
    pub wait: Wait,
    /// How far each backend may promise beyond what the node has (see [`capacity`]).
    pub overcommit: Overcommit,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            allowed_prefixes: vec![PathBuf::from("/var/lib/kubelet")],
            wait: Wait::No,
            overcommit: Overcommit::default(),
        }
    }
}

/// What a caller asks for when it creates a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub id: String,
    pub name: String,
    pub backend: Kind,
    pub capacity: u64,
    /// Only for kinds that format (loop); ext4 when unset.
    pub fs_type: Option<FsType>,
    pub parameters: BTreeMap<String, String>,
}

/// The volume engine over one data root.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    /// Where staging and target paths may lie: the allowed prefixes and the engine's own
    /// staging directory, as given and with symlinks resolved.
    node_prefixes: (Vec<PathBuf>, Vec<PathBuf>),
    host: Arc<dyn Host>,
    backends: BTreeMap<Kind, Box<dyn Backend>>,
    /// Contention on volume and snapshot locks, for metrics.
    locks: lock::LockStats,
    /// Syncs of `volumes/`, shared by concurrent creates and deletes.
    volumes_sync: groupsync::GroupSync,
    /// Where a delete hands the removal of its volume's files, once the volume is renamed aside
    /// durably (a long-lived server); `None`: the delete removes them itself (strata-flex).
    removals: removals::Removals,
    /// The copies running in this process.
    copies: Arc<copies::Registry>,
    /// The intent journal, once a long-lived server started it ([`Engine::start_journal`]):
    /// creates and deletes append to it instead of syncing; unset, they sync (strata-flex).
    journal: std::sync::OnceLock<Arc<journal::Ring>>,
    /// Volume directories made ahead for creates ([`Engine::start_pool`]).
    pool: pool::Pool,
    /// Bytes per second a copy may take at most; 0: no limit.
    copy_rate: u64,
}

impl Engine {
    /// Opens (creating if needed) the data root.
    pub fn new(mut cfg: Config, host: Arc<dyn Host>) -> Result<Engine> {
        perm::open_root(&cfg.root)?;
        cfg.root = std::fs::canonicalize(&cfg.root).map_err(Error::io("resolve", &cfg.root))?;
        let backends = backend::make_all(&host);
        let mut prefixes = cfg.allowed_prefixes.clone();
        prefixes.push(cfg.root.join("staging"));
        let real = validate::resolve(&prefixes);
        let volumes_sync = groupsync::GroupSync::dir(cfg.root.join("volumes"));
        let locks = lock::LockStats::default();
        let removals = removals::Removals::default();
        let copies = Arc::new(copies::Registry::default());
        Ok(Engine {
            cfg,
            node_prefixes: (prefixes, real),
            host,
            backends,
            locks,
            volumes_sync,
            removals,
            copies,
            copy_rate: 0,
            journal: std::sync::OnceLock::new(),
            pool: pool::Pool::default(),
        })
    }

    /// Copies take at most `bytes_per_second` of the disk (0: no limit): they share it with the
    /// pods.
    pub fn with_copy_rate(mut self, bytes_per_second: u64) -> Engine {
        self.copy_rate = bytes_per_second;
        self
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn host(&self) -> &Arc<dyn Host> {
        &self.host
    }

    fn backend(&self, kind: Kind) -> &dyn Backend {
        self.backends[&kind].as_ref()
    }

    fn dir(&self, id: &str) -> VolumeDir {
        VolumeDir(self.cfg.root.join("volumes").join(id))
    }

    /// The staging path the engine uses for front-ends that have none of their own (FlexVolume).
    pub fn default_staging(&self, id: &str) -> PathBuf {
        self.cfg.root.join("staging").join(id)
    }

    /// The volume's lock; a volume a copy holds (its image held still) is busy with that copy.
    fn lock(&self, id: &str) -> Result<VolumeLock> {
        let key = CopyKey::Volume(id.to_owned());
        let take = || VolumeLock::acquire_counted(&self.cfg.root.join("locks"), id, self.cfg.wait, Some(&self.locks));
        self.while_copy_ends(&key, take).map_err(|e| {
            let Error::Busy { id } = e else { return e };
            if let Some(job) = self.copies.holding(&id) {
                return Error::CopyBusy { doing: format!("{} copies it ({})", job.key, job.describe()), id };
            }
            match self.copies.get(&CopyKey::Volume(id.clone())) {
                Some(job) => {
                    Error::CopyBusy { doing: format!("the copy that fills it is ending ({})", job.describe()), id }
                }
                None => Error::Busy { id },
            }
        })
    }

    /// A volume's record, if it exists, without its publications.
    pub fn volume_record(&self, id: &str) -> Result<Option<Volume>> {
        validate::id("volume", id)?;
        self.load(id)
    }

    /// A volume's record, if it exists, with its live publications.
    pub fn get_volume(&self, id: &str) -> Result<Option<Volume>> {
        validate::id("volume", id)?;
        let Some(mut vol) = self.load(id)? else { return Ok(None) };
        vol.publications = self.publications(&vol)?;
        Ok(Some(vol))
    }

    /// Every volume that can be read, ordered by id; quarantined ones are left out (see
    /// [`Engine::scan_volumes`]).
    pub fn list_volumes(&self) -> Result<Vec<Volume>> {
        Ok(self.scan_volumes()?.0)
    }

    /// The ids of every volume directory, sorted (names only: no record is read).
    pub fn volume_names(&self) -> Result<Vec<String>> {
        self.volume_ids()
    }

    /// Volume `id` as a listing shows it: readable, in quarantine with why, or gone (`None`).
    pub fn listed(&self, id: &str) -> Result<Option<std::result::Result<Volume, Quarantine>>> {
        match self.load(id) {
            Ok(found) => Ok(found.map(Ok)),
            Err(Error::Quarantined { id, reason }) => Ok(Some(Err(Quarantine { id, reason }))),
            Err(e) => Ok(Some(Err(Quarantine { id: id.to_owned(), reason: e.to_string() }))),
        }
    }

    /// Every volume, ordered by id: those that can be read, and those in quarantine with why.
    pub fn scan_volumes(&self) -> Result<(Vec<Volume>, Vec<Quarantine>)> {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for id in self.volume_ids()? {
            match self.load(&id) {
                Ok(Some(v)) => good.push(v),
                Ok(None) => {}
                Err(Error::Quarantined { id, reason }) => {
                    tracing::warn!(id, %reason, "volume quarantined");
                    bad.push(Quarantine { id, reason });
                }
                // Unreadable (a permission, an I/O error): this volume waits for an operator,
                // the others are served.
                Err(e) => {
                    tracing::warn!(id, error = %e, "volume unreadable");
                    bad.push(Quarantine { id, reason: e.to_string() });
                }
            }
        }
        Ok((good, bad))
    }

    /// The ids of the volume directories under the root, sorted.
    pub(super) fn volume_ids(&self) -> Result<Vec<String>> {
        let dir = self.cfg.root.join("volumes");
        let mut ids: Vec<String> = std::fs::read_dir(&dir)
            .map_err(Error::io("list", &dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| validate::id("volume", n).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Bytes a new volume of `kind` could still get: free minus promised (see [`capacity`]).
    pub fn free_bytes(&self, kind: Kind) -> Result<u64> {
        Ok(self.budget(kind)?.available)
    }

    /// Whether the backend of `kind` works on this host and root.
    pub fn backend_usable(&self, kind: Kind) -> Result<()> {
        Ok(self.backend(kind).usable(&self.cfg.root)?)
    }

    /// Creates a volume of the capacity asked for, raised to the kind's minimum and aligned (see
    /// [`size`]); the same request again returns the same volume, a different one with the same
    /// id fails with [`Error::AlreadyExists`].
    pub fn create_volume(&self, req: &CreateRequest) -> Result<Volume> {
        self.named(self.create_empty(req))
    }

    fn create_empty(&self, req: &CreateRequest) -> Result<Volume> {
        validate::id("volume", &req.id)?;
        capacity::allocation(req.backend, &req.parameters)?;
        mount_policy::devices(req.backend, &req.parameters)?;
        let encrypted = encryption::wanted(req.backend, req.fs_type, &req.parameters)?;
        quick::unless_quick(quick::kind(req.backend, encrypted))?;
        if encrypted {
            self.check_encryption(req.backend)?;
        }
        if req.capacity == 0 {
            return Err(Error::InvalidArgument("the capacity must be more than 0 bytes".into()));
        }
        let fs_type = if req.backend.formats() { Some(req.fs_type.unwrap_or(FsType::Ext4)) } else { None };
        let sized = CreateRequest { capacity: size::for_new(req.backend, fs_type, req.capacity, 0)?, ..req.clone() };
        let _lock = self.lock(&req.id)?;
        if let Some(existing) = self.load(&req.id)? {
            if let Some(source) = &existing.source {
                let reason = format!("it was made from {source:?}, the request asks for an empty volume");
                return Err(Error::AlreadyExists { id: req.id.clone(), reason });
            }
            // A volume made before the size policy applied may have exactly the size asked for.
            let asked = if existing.capacity == req.capacity { req } else { &sized };
            return same_volume(&existing, asked, fs_type).map(|()| existing);
        }
        let req = &sized;
        let mut reserved = self.reserve(req.backend, req.capacity)?;
        let mut vol = new_record(req, fs_type);
        let backend = self.backend(vol.backend);
        let count = |vol: &Volume, dir: &VolumeDir| reserved.count(&self.share(vol, dir));
        match self.pooled(&vol) {
            Some((entry, intent)) => self.make_from_pool(&mut vol, entry, &intent, count)?,
            None => self.make_volume(&mut vol, |vol, dir| Ok(backend.provision(&vol.spec(), dir)?), count)?,
        }
        vol.node_state_found = true;
        Ok(vol)
    }

    /// Deletes a volume and its storage. A volume that does not exist is already deleted.
    /// A volume still staged or published is refused.
    pub fn delete_volume(&self, id: &str) -> Result<()> {
        validate::id("volume", id)?;
        let _lock = self.lock(id)?;
        let dir = self.dir(id);
        let vol = self.load(id)?;
        quick::unless_quick(vol.as_ref().is_some_and(|v| self.quick_delete(v)))?;
        let Some(vol) = vol else {
            // What an older strata's create or delete killed half-way left (the load proved
            // it), storage first: finish.
            self.remove_leftover(&dir)?;
            self.finish_asides(id)?;
            return Ok(());
        };
        if let Some(job) = self.copies.reading(&Source::Volume(id.to_owned())) {
            let reason =
                format!("{} is being copied from it ({}); delete it when that copy is done", job.key, job.describe());
            return Err(Error::precondition(id, reason));
        }
        self.stop_copy(&CopyKey::Volume(id.to_owned()))?;
        let users = match self.asks_kernel_later(&vol) {
            true => self.recorded_users(&vol)?,
            false => self.kernel_users(id, vol.backend)?,
        };
        if let Some(place) = users.first() {
            return Err(Error::precondition(
                id,
                format!("the kernel shows it in use at {}; unpublish and unstage it first", place.display()),
            ));
        }
        // A device still attached is detached while the volume is whole: a failure here
        // leaves the volume as it was, for the retry. A dir volume's key left in the kernel by
        // a stage cut short goes first.
        self.backend(vol.backend).detach(&vol.spec(), &dir, vol.staging.as_ref().and_then(|s| s.device.as_deref()))?;
        self.lock_key(&vol, None)?;
        self.remove_volume(&vol)
    }

    /// Whether a delete of `vol` may answer from its node state and leave the whole mount table
    /// to the background removal: reading that table grows with every mount on the node (40 ms
    /// at 10,000). The removal asks it before it removes anything and sets the files aside for
    /// an operator when a mount still shows them (`Engine::finish_removal`); the call still
    /// refuses a volume its node state shows staged or published. Only where the node state
    /// file exists (a missing one may have been lost) and the removal is the background's.
    fn asks_kernel_later(&self, vol: &Volume) -> bool {
        vol.node_state_found
            && quick::volume(vol)
            && !self.backend(vol.backend).deletes_at_once()
            && self.removals.started()
    }

    /// Whether the delete of `vol` takes bounded time: a quick, unencrypted kind whose storage the
    /// background removal takes (a tmpfs's unmount frees its memory in the call), and no earlier
    /// volume of the id still being removed (the delete would wait for it).
    fn quick_delete(&self, vol: &Volume) -> bool {
        quick::volume(vol)
            && !self.backend(vol.backend).deletes_at_once()
            && self.removals.started()
            && !self.removals.is_pending(&vol.id)
    }

    /// The directory of the FlexVolume front-end's per-volume locks (`locks/flex/ids.lock`).
    pub fn flex_lock_dir(&self) -> PathBuf {
        self.cfg.root.join("locks").join("flex")
    }

    /// Grows a volume to `bytes` (never shrinks) and, where it is staged, its filesystem;
    /// returns the capacity it now has. A filesystem that cannot grow now grows at next stage.
    pub fn expand_volume(&self, id: &str, bytes: u64) -> Result<u64> {
        self.named(self.expand_now(id, bytes))
    }

    fn expand_now(&self, id: &str, bytes: u64) -> Result<u64> {
        validate::id("volume", id)?;
        let _lock = self.lock(id)?;
        let mut vol = self.load_existing(id)?;
        self.refuse_unfinished(&vol)?;
        if bytes > vol.capacity {
            let mut reserved = self.reserve(vol.backend, bytes - vol.capacity)?;
            let dir = self.dir(id);
            let before = self.share(&vol, &dir);
            self.backend(vol.backend).expand(&vol.spec(), &dir, bytes)?;
            vol.capacity = bytes;
            vol.grow_fs = vol.backend.formats();
            reserved.recount(&before, &self.share(&vol, &dir))?;
            self.save(&vol)?;
        }
        if vol.grow_fs {
            self.grow_staged_fs(&mut vol)?;
        }
        Ok(vol.capacity)
    }

    /// Grows the filesystem of a staged volume: online, or else (when no pod uses it) by
    /// unmounting, growing offline and mounting again.
    fn grow_staged_fs(&self, vol: &mut Volume) -> Result<()> {
        let table = self.host.mount_table()?;
        let Some(Staging { path, access: access @ Access::Mount { .. }, device: Some(device) }) =
            self.staged_here(vol, &table)
        else {
            return Ok(());
        };
        let backend = self.backend(vol.backend);
        if let Err(online) = backend.grow_fs(&vol.spec(), &device, Some(&path)) {
            if vol.encryption.is_some() {
                // Mounted again, its keyring would be a new, empty one: no offline grow here.
                let reason = format!(
                    "its device grew, but the filesystem could not grow online ({online}); it grows when the volume is next staged"
                );
                return Err(Error::precondition(&vol.id, reason));
            }
            if let Some(p) = self.publications(vol)?.first() {
                let reason = format!(
                    "its device grew, but the filesystem could not grow while {} uses it ({online}); \
                     it grows when the volume is next staged",
                    p.target.display()
                );
                return Err(Error::precondition(&vol.id, reason));
            }
            let place = self.node_place("staging", &path)?;
            if !self.owns_mount(&vol.id, Some(vol), &place)? {
                return Err(Error::precondition(&vol.id, format!("{} no longer holds it", path.display())));
            }
            self.host.unmount(&place, false)?;
            backend.stage(&vol.spec(), &self.dir(&vol.id), Some(&device), &place, &access)?;
        }
        vol.grow_fs = false;
        self.save(vol)
    }

    /// Usage of a volume seen at `path` (its staging or a publication).
    pub fn volume_usage(&self, id: &str, path: &Path) -> Result<Usage> {
        validate::id("volume", id)?;
        let vol = self.load_existing(id)?;
        if !path.exists() {
            return Err(Error::InvalidPath { what: "volume", path: path.to_owned(), reason: "does not exist".into() });
        }
        if let Some(problem) = self.backend(vol.backend).storage_problem(&vol.spec(), &self.dir(id)) {
            return Err(Error::precondition(id, problem));
        }
        Ok(self.backend(vol.backend).usage(&vol.spec(), &self.dir(id), path)?)
    }
}

impl Engine {
    /// FAILED_PRECONDITION for a volume whose copy (a clone or a restore) is not whole yet.
    pub(crate) fn refuse_unfinished(&self, vol: &Volume) -> Result<()> {
        if vol.copy.is_none() {
            return Ok(());
        }
        let Error::Copying { progress, .. } = self.copying(&CopyKey::Volume(vol.id.clone())) else { return Ok(()) };
        let reason = format!("it is still being copied ({progress}); it can be used once CreateVolume has answered OK");
        Err(Error::precondition(&vol.id, reason))
    }
}

/// The record of a new volume as `req` describes it.
fn new_record(req: &CreateRequest, fs_type: Option<FsType>) -> Volume {
    Volume {
        format: record::FORMAT,
        id: req.id.clone(),
        name: req.name.clone(),
        backend: req.backend,
        capacity: req.capacity,
        fs_type,
        parameters: req.parameters.clone(),
        created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        incarnation: Some(incarnation()),
        staging: None,
        staging_in_record: false,
        publications: Vec::new(),
        marked: Vec::new(),
        node_state_found: false,
        source: None,
        grow_fs: false,
        omitted: record::Omitted::default(),
        copy: None,
        encryption: encryption::wanted(req.backend, fs_type, &req.parameters)
            .unwrap_or(false)
            .then(|| encryption::for_new(&req.id)),
    }
}

/// A new volume's incarnation: now, in nanoseconds since the epoch, and never one that this
/// process handed out before (two creates of an id within the clock's resolution differ).
fn incarnation() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let before = LAST.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    if before >= now { LAST.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 } else { now }
}

/// Whether an existing volume answers the same create request.
fn same_volume(existing: &Volume, req: &CreateRequest, fs_type: Option<FsType>) -> Result<()> {
    let differ = |what: &str, had: String, asked: String| {
        Err(Error::AlreadyExists {
            id: req.id.clone(),
            reason: format!("it has {what} {had}, the request asks for {asked}"),
        })
    };
    if existing.backend != req.backend {
        return differ("backend", existing.backend.as_str().into(), req.backend.as_str().into());
    }
    if existing.capacity != req.capacity {
        return differ("capacity", existing.capacity.to_string(), req.capacity.to_string());
    }
    if existing.fs_type != fs_type {
        return differ("fs type", format!("{:?}", existing.fs_type), format!("{fs_type:?}"));
    }
    if existing.parameters != req.parameters {
        return differ(
            "parameters",
            clip(&format!("{:?}", existing.parameters)),
            clip(&format!("{:?}", req.parameters)),
        );
    }
    Ok(())
}

#[cfg(test)]
mod encryption_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod health_tests;
mod overcommit;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod tests;
