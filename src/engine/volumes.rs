//! A volume's record and node state, read and written together: what the engine's calls load
//! (damage becomes a quarantine, see [`super::quarantine`]) and save.

use super::lock::VolumeLock;
use super::{Engine, Error, Result, Volume, record, state};

impl Engine {
    /// Reads a volume's record and node state; damage becomes [`Error::Quarantined`].
    pub(super) fn load(&self, id: &str) -> Result<Option<Volume>> {
        self.load_with(id, None)
    }

    /// [`Engine::load`] under the volume's lock, which lets node state be read in one `read`
    /// (see [`state::load_if_any_held`]).
    pub(super) fn load_held(&self, id: &str, held: &VolumeLock) -> Result<Option<Volume>> {
        self.load_with(id, Some(held))
    }

    /// [`Engine::load_held`], where a missing volume is [`Error::VolumeNotFound`].
    pub(super) fn load_existing_held(&self, id: &str, held: &VolumeLock) -> Result<Volume> {
        self.load_held(id, held)?.ok_or_else(|| Error::VolumeNotFound(id.to_owned()))
    }

    fn load_with(&self, id: &str, held: Option<&VolumeLock>) -> Result<Option<Volume>> {
        let dir = self.dir(id);
        let quarantined = |reason: String| Error::Quarantined { id: id.to_owned(), reason };
        let vol = match record::load(&dir.record()) {
            Err(Error::Record { path, reason }) => {
                return Err(quarantined(format!("record {}: {reason}", path.display())));
            }
            other => other?,
        };
        let Some(mut vol) = vol else {
            if dir.0.exists() && !self.leftover(&dir) {
                return Err(quarantined(format!(
                    "{} exists but holds no record (moved aside, lost, or left by an older strata); its \
                     contents are kept",
                    dir.0.display()
                )));
            }
            return Ok(None);
        };
        let node = match held.map_or_else(|| state::load_if_any(&dir), |l| state::load_if_any_held(&dir, l)) {
            Err(Error::Record { path, reason }) => {
                return Err(quarantined(format!("node state {}: {reason}", path.display())));
            }
            other => other?,
        };
        vol.node_state_found = node.is_some();
        let node = node.unwrap_or_default();
        if node.staging.is_some() {
            vol.staging = node.staging;
        }
        vol.marked = node.publications;
        Ok(Some(vol))
    }

    /// A volume's record with its node state (where it is staged and published).
    pub(super) fn load_existing(&self, id: &str) -> Result<Volume> {
        self.load(id)?.ok_or_else(|| Error::VolumeNotFound(id.to_owned()))
    }

    /// Writes the record, durably. A staging that an older record carried moves to the node
    /// state file first, since the record no longer holds it.
    pub(super) fn save(&self, vol: &Volume) -> Result<()> {
        if vol.staging_in_record {
            self.write_node_state(vol)?;
        }
        record::save_json(&self.dir(&vol.id).record(), vol, record::Durability::Durable)
    }

    /// Records where the volume is staged and published (node state, no fsync; see [`state`]).
    pub(super) fn save_state(&self, vol: &Volume) -> Result<()> {
        if vol.staging_in_record {
            return self.save(vol);
        }
        self.write_node_state(vol)
    }

    pub(super) fn write_node_state(&self, vol: &Volume) -> Result<()> {
        let node = state::NodeState::new(vol.staging.clone(), vol.marked.clone());
        state::save(&self.dir(&vol.id), &node)
    }
}
