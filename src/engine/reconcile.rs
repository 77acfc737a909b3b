//! Start-up reconcile: bring the host back in line with the records after a crash or reboot.

use super::{Engine, Result, Volume};
use crate::sys::mount_at;

/// What reconcile found and did, one line per action, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub actions: Vec<String>,
    pub errors: Vec<String>,
}

impl Engine {
    /// Re-mounts tmpfs volumes, re-attaches and re-stages staged volumes whose mounts are gone,
    /// and removes leftovers of interrupted creates.
    pub fn reconcile(&self) -> Result<Report> {
        let mut report = Report::default();
        self.remove_orphan_dirs(&mut report)?;
        if let Err(e) = self.recount_capacity(true) {
            report.errors.push(format!("capacity ledger: {e}"));
        }
        report.actions.extend(self.remove_old_lock_files());
        self.remove_snapshot_temps(&mut report);
        self.remove_uncut_groups(&mut report);
        let (volumes, quarantined) = self.scan_volumes()?;
        for q in quarantined {
            if q.reason.starts_with("node state ") {
                if let Err(e) = self.reset_unused_node_state(&q.id, &mut report) {
                    report.errors.push(format!("volume {}: {e}", q.id));
                }
            } else {
                report.errors.push(format!("volume {} quarantined: {}", q.id, q.reason));
            }
        }
        for vol in volumes {
            let id = vol.id.clone();
            if let Err(e) = self.reconcile_volume(vol, &mut report) {
                report.errors.push(format!("volume {id}: {e}"));
            }
        }
        Ok(report)
    }

    fn reconcile_volume(&self, listed: Volume, report: &mut Report) -> Result<()> {
        if listed.copy.is_some() || self.copies.holding(&listed.id).is_some() {
            // Being filled by a copy (not staged), or held still by one (resumed before this).
            return Ok(());
        }
        let _lock = self.lock(&listed.id)?;
        // Read again under the lock: another process may have changed it since the listing.
        let Some(mut vol) = self.load(&listed.id)? else { return Ok(()) };
        let dir = self.volume_dir(&vol.id);
        let backend = self.backend(vol.backend);
        if let Some(note) = backend.recover(&vol.spec(), &dir)? {
            report.actions.push(format!("volume {}: {note}", vol.id));
        }
        if let Some(note) = backend.remake_lost(&vol.spec(), &dir, &self.host.mount_table()?)? {
            report.actions.push(format!("volume {}: {note}", vol.id));
        }
        let mut changed = false;
        if vol.staging_in_record && vol.staging.is_some() {
            // Staged by a strata that kept node state in the record and recorded no
            // publications: record the binds it left, found in the mount table.
            vol.marked = self.publications(&vol)?;
            changed = true;
            report.actions.push(format!(
                "volume {}: node state moved out of the record ({} publication(s) found)",
                vol.id,
                vol.marked.len()
            ));
        }
        changed |= self.restage(&mut vol, report)?;
        if changed {
            self.save_state(&vol)?;
        }
        if let Some(note) = self.forget_idle_key(&vol)? {
            report.actions.push(format!("volume {}: {note}", vol.id));
        }
        Ok(())
    }

    /// Stages `vol` again where its node state says it is staged and the kernel no longer shows
    /// it (a reboot), or forgets that staging when it cannot be: the place is gone or holds
    /// another mount, or the volume is encrypted (its key is never kept). True when it changed.
    fn restage(&self, vol: &mut Volume, report: &mut Report) -> Result<bool> {
        let Some(s) = vol.staging.clone() else { return Ok(false) };
        let table = self.host.mount_table()?;
        if self.staged_here(vol, &table).is_some() {
            return Ok(false);
        }
        let place = self.node_place_if_any("staging", &s.path).ok().flatten();
        let free = place.as_ref().filter(|p| p.stat().is_ok_and(|st| st.is_some()));
        // An encrypted volume's key is never kept: mounted again without it, the staging
        // would look done to a CO that then skips the NodeStageVolume that brings it.
        let keyless = vol.encryption.is_some();
        if let Some(place) = free.filter(|_| mount_at(&table, &s.path).is_none() && !keyless) {
            let device = self.attach_and_stage(vol, place, &s.access)?;
            vol.staging = Some(super::Staging { device, ..s.clone() });
            report.actions.push(format!("volume {}: staged again at {}", vol.id, s.path.display()));
        } else {
            vol.staging = None;
            let why = if keyless { " (encrypted: the next NodeStageVolume stages it with its key)" } else { "" };
            report.actions.push(format!("volume {}: staging at {} is gone; forgot it{why}", vol.id, s.path.display()));
        }
        Ok(true)
    }

    /// Removes what interrupted creates and deletes left: their aside directories, and volume
    /// directories without a record that are empty or hold an older strata's intent file. A
    /// directory without a record and without an intent is kept (it is quarantined, see
    /// [`Engine::quarantined`]).
    fn remove_orphan_dirs(&self, report: &mut Report) -> Result<()> {
        self.remove_pool_entries(report)?;
        for id in self.aside_ids()? {
            let Ok(_lock) = self.lock(&id) else {
                continue;
            };
            match self.finish_asides(&id) {
                Ok(done) => report.actions.extend(done),
                Err(e) => report.errors.push(self.set_asides_aside(&id, &e)),
            }
        }
        for id in self.volume_ids()? {
            let dir = self.volume_dir(&id);
            if !self.leftover(&dir) {
                continue;
            }
            let Ok(_lock) = self.lock(&id) else {
                continue;
            };
            if !self.leftover(&dir) {
                continue;
            }
            match self.remove_leftover(&dir) {
                Ok(()) => {
                    report.actions.push(format!("removed {} left by an interrupted create or delete", dir.0.display()))
                }
                Err(e) => report.errors.push(format!("leftover {}: {e}", dir.0.display())),
            }
        }
        Ok(())
    }

    /// Removes the volume directories made ahead that the last server left (empty: the journal's
    /// replay, before this, took back any a create had renamed).
    fn remove_pool_entries(&self, report: &mut Report) -> Result<()> {
        let entries = self.pool_entries()?;
        let mut removed = 0;
        for entry in &entries {
            match self.remove_leftover(entry) {
                Ok(()) => removed += 1,
                Err(e) => report.errors.push(format!("volume directory made ahead {}: {e}", entry.0.display())),
            }
        }
        if removed > 0 {
            report.actions.push(format!("removed {removed} volume directories the last server made ahead"));
        }
        Ok(())
    }

    /// What reconcile does with the leftovers of `id` it could not remove (`e` says why): moves
    /// them to `volumes/.quarantine/` for an operator, so they block neither the start nor the
    /// next create of the id. Says what it did.
    fn set_asides_aside(&self, id: &str, e: &super::Error) -> String {
        let moved: Vec<String> = [super::aside::NEW, super::aside::DEL]
            .into_iter()
            .map(|suffix| self.aside(id, suffix).0)
            .filter(|dir| dir.exists())
            .map(|dir| match super::quarantine::set_aside(&dir) {
                Ok(to) => format!("moved to {}", to.display()),
                Err(moving) => format!("left at {} ({moving})", dir.display()),
            })
            .collect();
        format!("leftover of {id} could not be removed: {e}; {}", moved.join(", "))
    }

    /// Removes the per-id lock files an older strata kept (`locks/<id>.lock`); every lock is
    /// now a byte of one shared file per directory (see [`super::lock`]).
    fn remove_old_lock_files(&self) -> Vec<String> {
        let mut removed = 0;
        for sub in ["locks", "locks/snapshots", "locks/flex"] {
            let Ok(entries) = std::fs::read_dir(self.cfg.root.join(sub)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let old = name != super::lock::LOCK_FILE && name.to_string_lossy().ends_with(".lock");
                if old && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        if removed == 0 { Vec::new() } else { vec![format!("removed {removed} lock file(s) an older strata kept")] }
    }

    /// A volume whose node state is unreadable while its record is fine: when the kernel shows
    /// no mount of it (a write cut short by a crash, then a reboot), the state is reset; else it
    /// stays quarantined for an operator.
    fn reset_unused_node_state(&self, id: &str, report: &mut Report) -> Result<()> {
        let _lock = self.lock(id)?;
        let dir = self.volume_dir(id);
        let Some(vol) = super::record::load(&dir.record())? else { return Ok(()) };
        if super::state::load(&dir).is_ok() {
            return Ok(());
        }
        if let Some(user) = self.kernel_users(id, vol.backend)?.first() {
            report.errors.push(format!(
                "volume {id}: node state unreadable while the kernel shows it mounted at {}; quarantined",
                user.display()
            ));
            return Ok(());
        }
        super::state::save(&dir, &super::state::NodeState::new(None, Vec::new()))?;
        report.actions.push(format!("volume {id}: node state unreadable and nothing mounts the volume; reset"));
        Ok(())
    }
}
