//! Repair of quarantined volumes, by an operator (`strata-csi repair`): rebuild the record and
//! node state from what is on disk and in the kernel, or set the volume's directory aside. Data
//! is never deleted here.

use super::state::NodeState;
use super::{Access, CreateRequest, Engine, Error, Publication, Result, Staging, Volume, record, state, validate};
use crate::sys::{loop_for, mount_at};
use std::path::PathBuf;

/// The capacity a rebuilt record gets when neither the operator nor the storage names one (dir,
/// btrfs): the default size of a new volume.
const DEFAULT_CAPACITY: u64 = 1 << 30;

impl Engine {
    /// Rebuilds a quarantined volume's record (when it is missing or damaged) from its storage,
    /// and its node state from the mounts the kernel shows: the first of them (in mount order)
    /// is taken as the staging, the others as publications. `capacity` overrides what the
    /// storage says (dir and btrfs keep no size of their own).
    pub fn repair_rebuild(&self, id: &str, capacity: Option<u64>) -> Result<Volume> {
        validate::id("volume", id)?;
        let _lock = self.lock(id)?;
        let dir = self.dir(id);
        if !dir.0.is_dir() {
            return Err(Error::VolumeNotFound(id.to_owned()));
        }
        let mut vol = match record::load(&dir.record()) {
            Ok(Some(vol)) => vol,
            Ok(None) | Err(Error::Record { .. }) => self.record_from_storage(id, capacity)?,
            Err(e) => return Err(e),
        };
        if let Some(c) = capacity {
            vol.capacity = c;
        }
        self.save(&vol)?;
        let node = self.node_state_from_kernel(&vol)?;
        state::save(&dir, &node)?;
        super::aside::drop_old_intents(&dir)?;
        tracing::info!(id, backend = vol.backend.as_str(), capacity = vol.capacity, "volume repaired");
        self.load_existing(id)
    }

    /// Moves a volume's directory aside to `<root>/volumes/.quarantine/<id>.<unix seconds>`, refused while
    /// the kernel shows the volume in use. Its data stays there for the operator.
    pub fn repair_drop(&self, id: &str) -> Result<PathBuf> {
        validate::id("volume", id)?;
        let _lock = self.lock(id)?;
        let dir = self.dir(id);
        if !dir.0.is_dir() {
            return Err(Error::VolumeNotFound(id.to_owned()));
        }
        let backend = record::load(&dir.record()).ok().flatten().map_or_else(|| self.guess(&dir), |v| v.backend);
        if let Some(user) = self.kernel_users(id, backend)?.first() {
            let reason = format!("the kernel shows it in use at {}; unmount it first", user.display());
            return Err(Error::precondition(id, reason));
        }
        if let Some(l) = loop_for(&self.host.loop_list()?, &dir.image()) {
            self.host.loop_detach_backing(&l.device, &dir.image())?;
        }
        let to = super::quarantine::set_aside(&dir.0)?;
        tracing::warn!(id, to = %to.display(), "volume set aside");
        Ok(to)
    }

    /// A record for the storage found in the volume's directory.
    fn record_from_storage(&self, id: &str, capacity: Option<u64>) -> Result<Volume> {
        let dir = self.dir(id);
        let kind = self.guess(&dir);
        let found = self.backend(kind).found_size(&dir)?;
        let fs_type = found.fs_type;
        let size = found.capacity.unwrap_or(DEFAULT_CAPACITY);
        let req = CreateRequest {
            id: id.to_owned(),
            name: id.to_owned(),
            backend: kind,
            capacity: capacity.unwrap_or(size),
            fs_type,
            parameters: Default::default(),
        };
        Ok(super::new_record(&req, fs_type))
    }

    /// Node state rebuilt from the kernel's mounts of the volume.
    fn node_state_from_kernel(&self, vol: &Volume) -> Result<NodeState> {
        let users = self.kernel_users(&vol.id, vol.backend)?;
        let device = loop_for(&self.host.loop_list()?, &self.dir(&vol.id).image()).map(|l| l.device.clone());
        let table = self.host.mount_table()?;
        let block = |p: &PathBuf| mount_at(&table, p).is_some_and(|m| m.root.starts_with("/loop"));
        let mut users = users.into_iter();
        let Some(first) = users.next() else { return Ok(NodeState::new(None, Vec::new())) };
        let access = if block(&first) { Access::Block } else { Access::Mount { flags: Vec::new() } };
        let staging = Staging { path: first, access, device };
        let publications = users
            .map(|p| {
                let readonly = mount_at(&table, &p).is_some_and(|m| m.is_readonly());
                Publication { block: block(&p), target: p, readonly }
            })
            .collect();
        Ok(NodeState::new(Some(staging), publications))
    }
}
