//! Node-side lifecycle: stage and unstage on a staging path, publish and unpublish into pods.

use super::encryption::{MasterKey, StageKey};
use super::kernel::{LazyTable, shows};
use super::mount_policy::{self, Use};
use super::paths::{make_dir, make_target, remove_empty, remove_target};
use super::{Access, Engine, Error, Publication, Result, Staging, Volume, validate};
use crate::backend::{Attachment, VolumeDir};
use crate::sys::{MountEntry, MountOptions, Place, mount_at};
use std::path::{Path, PathBuf};

/// What a stage did, to undo it when the call fails later.
#[derive(Debug)]
struct Staged {
    device: Option<PathBuf>,
    /// This call attached the device.
    fresh: bool,
    /// This call made the staging directory.
    made_dir: bool,
    /// This call mounted at the staging path.
    mounted: bool,
}

/// Stacked mounts unpublish removes from one target before it gives up.
const MAX_STACKED: usize = 8;

/// A front-end's own conditions on a volume's record, checked under the volume's lock.
pub type Check<'a> = &'a dyn Fn(&Volume) -> Result<()>;

/// Where and how a publish binds the staged volume.
#[derive(Debug, Clone, Copy)]
pub struct Bind<'a> {
    pub staging: &'a Path,
    pub target: &'a Path,
    /// Per-mount flags (`noexec`, `nosuid`, `noatime`, `ro`, ...); an `ro` flag makes it read-only.
    pub opts: &'a MountOptions,
    /// One publication at a time (CSI SINGLE_NODE_SINGLE_WRITER).
    pub alone: bool,
    /// The access the publish asks for, when the caller knows it (`Some(true)`: raw block): a
    /// volume staged for the other one is refused with [`Error::FailedPrecondition`].
    pub block: Option<bool>,
}

impl Engine {
    /// Whether the volume's record says it is staged and the mount table agrees.
    pub(super) fn staged_here(&self, vol: &Volume, table: &[MountEntry]) -> Option<Staging> {
        let s = vol.staging.as_ref()?;
        let held = self.backend(vol.backend).holds(&self.dir(&vol.id), s, table);
        held.then(|| s.clone())
    }

    /// The record's staging when `staging` is a mount root that shows the volume's data directory
    /// itself (bind backends: same device and inode) or the filesystem of its loop device: what
    /// [`Engine::staged_here`] checks in the mount table, proven with two `stat` calls. `None`
    /// when it cannot be shown cheaply; the caller then asks the mount table.
    pub(super) fn staged_by_identity(&self, vol: &Volume, staging: &Place) -> Option<Staging> {
        let s = vol.staging.as_ref().filter(|s| s.path == staging.path())?;
        let proven = self.backend(vol.backend).shows(&self.dir(&vol.id), s, staging);
        (proven == Some(true)).then(|| s.clone())
    }

    /// Stages a volume at `staging`: attach, format if blank, mount. Idempotent for the same
    /// path and access; another path or access while staged is [`Error::AlreadyExists`].
    pub fn stage_volume(&self, id: &str, staging: &Path, access: &Access) -> Result<()> {
        self.stage_volume_checked(id, staging, access, &|_| Ok(()))
    }

    /// [`Engine::stage_volume`] after `check` accepts the volume's record (a front-end's own
    /// conditions, such as a CSI capability), under the lock and without a second read.
    pub fn stage_volume_checked(&self, id: &str, staging: &Path, access: &Access, check: Check) -> Result<()> {
        self.stage_volume_keyed(id, staging, access, &StageKey::none(), check)
    }

    /// [`Engine::stage_volume_checked`] with the key from the stage's secrets, which an
    /// encrypted volume needs at every stage (see [`super::encryption`]).
    pub fn stage_volume_keyed(
        &self,
        id: &str,
        staging: &Path,
        access: &Access,
        key: &StageKey,
        check: Check,
    ) -> Result<()> {
        self.named(self.stage_now(id, staging, access, key, check))
    }

    fn stage_now(&self, id: &str, staging: &Path, access: &Access, key: &StageKey, check: Check) -> Result<()> {
        validate::id("volume", id)?;
        let place = self.node_place("staging", staging)?;
        let lock = self.lock(id)?;
        let mut vol = self.load_existing_held(id, &lock)?;
        super::quick::unless_quick(super::quick::volume(&vol))?;
        check(&vol)?;
        self.refuse_unfinished(&vol)?;
        let (access, key) = self.stage_terms(&vol, access, key)?;
        if self.stage_found(&mut vol, &place, &access, key.as_ref())? {
            return Ok(());
        }
        self.stage_afresh(&mut vol, &place, &access, key.as_ref())
    }

    /// What a stage of `vol` with `access` applies: the access with its mount options checked
    /// against the volume's allowlist, and the volume's key (encrypted volumes) from `key`.
    fn stage_terms(&self, vol: &Volume, access: &Access, key: &StageKey) -> Result<(Access, Option<MasterKey>)> {
        if vol.encryption.is_some() && matches!(access, Access::Block) {
            return Err(Error::InvalidArgument(format!(
                "volume {} is encrypted (fscrypt encrypts files): it is a filesystem, never a raw block device",
                vol.id
            )));
        }
        let key = self.stage_key(vol, key)?;
        let access = match access {
            Access::Mount { flags } => Access::Mount { flags: mount_policy::for_volume(vol, Use::Stage, flags)? },
            Access::Block => Access::Block,
        };
        if matches!(access, Access::Block) && !vol.backend.supports_block() {
            return Err(Error::InvalidArgument(format!(
                "a {} volume cannot be used as a raw block device",
                vol.backend.as_str()
            )));
        }
        Ok((access, key))
    }

    /// Finishes a stage that is there already (a retry, or a stage killed before its node state
    /// was written) and says so with `true`; `false` when `place` is free for a new stage. A stage
    /// elsewhere or with the other access, or another mount at `place`, is refused.
    fn stage_found(&self, vol: &mut Volume, place: &Place, access: &Access, key: Option<&MasterKey>) -> Result<bool> {
        let (id, staging) = (vol.id.clone(), place.path());
        // What is mounted at the place is decided on the held place itself (statx), never by a
        // path string that a rename can make point elsewhere: nothing is ever stacked on a mount.
        let mounted = self.host.is_mount_point(place)?;
        if let Some(s) = self.staged_by_identity(vol, place).filter(|_| mounted) {
            if &s.access != access {
                return Err(already(&id, other_access(staging, &s.access, access)));
            }
            return self.unlock_staged(vol, place, key).map(|()| true);
        }
        // A stage killed between its mount and its node-state write: the kernel shows this
        // volume's mount there, nothing records it. Adopt it and finish the stage.
        let adoptable = mounted && vol.staging.is_none() && matches!(access, Access::Mount { .. });
        if adoptable && self.owns_mount(&id, Some(vol), place)? {
            let device = self.device_of(&id, None)?;
            vol.staging = Some(Staging { path: staging.to_owned(), access: access.clone(), device });
            // The key first: a wrong one leaves the adopted mount unrecorded, as it was.
            self.unlock_staged(vol, place, key)?;
            return self.save_state(vol).map(|()| true);
        }
        // Not staged by the record and nothing mounted at `staging`: no mount-table read needed.
        let fresh = vol.staging.is_none() && !mounted;
        let table = if fresh { crate::sys::MountTable::default() } else { self.host.mount_table()? };
        if let Some(s) = self.staged_here(vol, &table) {
            return match (s.path == staging, &s.access == access) {
                (true, true) => self.unlock_staged(vol, place, key).map(|()| true),
                (true, false) => Err(already(&id, other_access(staging, &s.access, access))),
                (false, _) if s.path == self.default_staging(&id) => Err(Error::StagedByFlex { id, path: s.path }),
                (false, _) => Err(already(&id, format!("it is staged at {}", s.path.display()))),
            };
        }
        if mounted || mount_at(&table, staging).is_some() {
            return Err(already(&id, format!("{} already holds another mount", staging.display())));
        }
        Ok(false)
    }

    /// Stages `vol` at the free `place`: attach, mount, add its key, record it; a failure undoes
    /// what this call did.
    fn stage_afresh(&self, vol: &mut Volume, place: &Place, access: &Access, key: Option<&MasterKey>) -> Result<()> {
        let done = self.stage_undoable(vol, place, access)?;
        super::crashpoint::hit("stage:mounted");
        let learnt = match key.map(|k| self.unlock(vol, place, k)).transpose() {
            Ok(learnt) => learnt.unwrap_or(false),
            Err(e) => {
                self.undo_stage(vol, place, &done);
                return Err(e);
            }
        };
        super::crashpoint::hit("stage:key-added");
        let path = place.path().to_owned();
        vol.staging = Some(Staging { path, access: access.clone(), device: done.device.clone() });
        if let Err(e) = self.save_state(vol) {
            // Unrecorded, the mount would make every retry answer "already holds another mount".
            self.undo_stage(vol, place, &done);
            return Err(e);
        }
        let grew = vol.grow_fs && matches!(access, Access::Mount { .. });
        if grew || learnt {
            vol.grow_fs &= !grew; // the backend's stage grew it
            self.save(vol)?;
        }
        Ok(())
    }

    /// An encrypted volume found staged already (a retry, a restart, a second pod): its key goes
    /// into the kernel again, since a reboot or an unstage that found files busy removed it.
    fn unlock_staged(&self, vol: &mut Volume, place: &Place, key: Option<&MasterKey>) -> Result<()> {
        let Some(key) = key else { return Ok(()) };
        if self.unlock(vol, place, key)? {
            self.save(vol)?;
        }
        Ok(())
    }

    /// Attaches (if needed) and stages; detaches again if this call attached and staging failed.
    pub(super) fn attach_and_stage(&self, vol: &Volume, staging: &Place, access: &Access) -> Result<Option<PathBuf>> {
        Ok(self.stage_undoable(vol, staging, access)?.device)
    }

    /// [`Engine::attach_and_stage`], saying what it did so that [`Engine::undo_stage`] can undo it.
    fn stage_undoable(&self, vol: &Volume, staging: &Place, access: &Access) -> Result<Staged> {
        let dir = self.dir(&vol.id);
        let backend = self.backend(vol.backend);
        let Attachment { device, fresh } = backend.attach(&vol.spec(), &dir)?;
        let made_dir = match access {
            Access::Block => Ok(false),
            Access::Mount { .. } => make_dir(staging),
        };
        let done = Staged { device, fresh, made_dir: matches!(made_dir, Ok(true)), mounted: false };
        if let Err(e) =
            made_dir.and_then(|_| Ok(backend.stage(&vol.spec(), &dir, done.device.as_deref(), staging, access)?))
        {
            self.undo_stage(vol, staging, &done);
            return Err(e);
        }
        Ok(Staged { mounted: matches!(access, Access::Mount { .. }), ..done })
    }

    /// Undoes a stage of this call: its mount, its loop device, its staging directory. Best
    /// effort: the call fails with its own error either way.
    fn undo_stage(&self, vol: &Volume, staging: &Place, done: &Staged) {
        if done.mounted {
            crate::undo::log("a failed stage: remove the key", self.lock_key(vol, Some(staging)));
            crate::undo::log("a failed stage: unmount", self.host.unmount(staging, false));
        }
        if done.fresh {
            crate::undo::log(
                "a failed stage: detach",
                self.backend(vol.backend).detach(&vol.spec(), &self.dir(&vol.id), done.device.as_deref()),
            );
        }
        crate::undo::log("a failed stage: remove the key", self.lock_key(vol, None));
        if done.made_dir {
            crate::undo::log("a failed stage: remove the staging directory", staging.remove_dir());
        }
    }

    /// Unstages a volume: unmount the staging path and detach. Refused while it is published.
    pub fn unstage_volume(&self, id: &str, staging: &Path) -> Result<()> {
        validate::id("volume", id)?;
        let place = self.node_place_if_any("staging", staging)?;
        let lock = self.lock(id)?;
        let mut vol = self.load_existing_held(id, &lock)?;
        super::quick::unless_quick(super::quick::volume(&vol))?;
        if let Some(p) = self.publications(&vol)?.first() {
            return Err(Error::precondition(id, format!("it is still published at {}", p.target.display())));
        }
        if let Some(s) = vol.staging.as_ref().filter(|s| s.path != staging) {
            if self.staging_live(&vol, s)? {
                return Ok(()); // not staged at `staging`: nothing to undo there, nothing forgotten
            }
        }
        self.backend(vol.backend).recover(&vol.spec(), &self.dir(id))?; // never unmount a frozen filesystem
        let mut unmounted = None;
        if let Some(place) = &place {
            if self.host.is_mount_point(place)? {
                self.check_staged_mount(&vol, place)?;
                self.lock_key(&vol, Some(place))?; // a loop volume's keyring goes with its mount
                self.host.unmount(place, false)?;
                unmounted = Some(place);
            }
        }
        self.lock_key(&vol, None)?; // a dir volume's, once nothing binds it
        let known = vol.staging.as_ref().and_then(|s| s.device.as_deref());
        if let Err(e) = self.backend(vol.backend).detach(&vol.spec(), &self.dir(id), known) {
            // Put the staging back as it was, so the call changes nothing and its retry starts over.
            if let (Some(place), Some(s)) = (unmounted, &vol.staging) {
                let device = s.device.as_deref();
                if let Err(again) =
                    self.backend(vol.backend).stage(&vol.spec(), &self.dir(id), device, place, &s.access)
                {
                    tracing::warn!(id, error = %again, "could not stage again after a failed detach");
                }
            }
            return Err(e.into());
        }
        if vol.staging.is_some() || !vol.marked.is_empty() || vol.staging_in_record {
            vol.staging = None;
            vol.marked.clear(); // none of them is live
            self.save_state(&vol)?;
        }
        if let Some(place) = place.filter(|_| staging.starts_with(self.cfg.root.join("staging"))) {
            remove_empty(&place)?;
        }
        Ok(())
    }

    /// Whether the volume's recorded staging `s` still holds it (statx on its place, else the
    /// mount table).
    pub(super) fn staging_live(&self, vol: &Volume, s: &Staging) -> Result<bool> {
        let place = self.node_place_if_any("staging", &s.path).ok().flatten();
        if place.is_some_and(|p| self.staged_by_identity(vol, &p).is_some()) {
            return Ok(true);
        }
        Ok(self.staged_here(vol, &self.host.mount_table()?).is_some())
    }

    /// Refuses to unmount `staging` when the mount there is not this volume's staging.
    fn check_staged_mount(&self, vol: &Volume, staging: &Place) -> Result<()> {
        if self.staged_by_identity(vol, staging).is_some() {
            return Ok(());
        }
        let table = self.host.mount_table()?;
        if self.staged_here(vol, &table).is_some_and(|s| s.path == staging.path()) {
            return Ok(());
        }
        // Node state lost or reset: the kernel still shows whether the mount is this volume's.
        if vol.staging.is_none() && self.owns_mount(&vol.id, Some(vol), staging)? {
            return Ok(());
        }
        let source = mount_at(&table, staging.path()).map_or("gone", |m| m.source.as_str()).to_owned();
        Err(Error::precondition(
            &vol.id,
            format!("{} holds a mount that is not this volume ({source})", staging.path().display()),
        ))
    }

    /// Binds the staged volume onto `target` (a directory, or a file for block access).
    /// Idempotent when `target` already holds this volume with the same read-only flag.
    pub fn publish_volume(&self, id: &str, staging: &Path, target: &Path, readonly: bool) -> Result<()> {
        self.publish_volume_with(id, staging, target, &MountOptions { readonly, options: Vec::new() })
    }

    /// [`Engine::publish_volume`] with per-mount flags (`noexec`, `nosuid`, `noatime`, `ro`, ...)
    /// applied to the bind; an `ro` flag makes the publication read-only.
    pub fn publish_volume_with(&self, id: &str, staging: &Path, target: &Path, opts: &MountOptions) -> Result<()> {
        self.publish_volume_checked(id, &Bind { staging, target, opts, alone: false, block: None }, &|_| Ok(()))
    }

    /// Publishes as `bind` says, after `check` accepts the volume's record (under the lock).
    pub fn publish_volume_checked(&self, id: &str, bind: &Bind, check: Check) -> Result<()> {
        self.named(self.publish_now(id, bind, check))
    }

    fn publish_now(&self, id: &str, bind: &Bind, check: Check) -> Result<()> {
        let Bind { staging, target, opts, .. } = *bind;
        let readonly = opts.readonly || opts.options.iter().any(|o| o == "ro");
        validate::id("volume", id)?;
        let staging_place = self.node_place("staging", staging)?;
        let place = self.node_place("target", target)?;
        let lock = self.lock(id)?;
        let mut vol = self.load_existing_held(id, &lock)?;
        check(&vol)?;
        let options = mount_policy::for_volume(&vol, Use::Publish, &opts.options)?;
        let mut table = LazyTable::new(self.host.as_ref());
        let s = self.staged_for_publish(&vol, &staging_place, bind, &mut table)?;
        let block = matches!(s.access, Access::Block);
        self.check_unlocked(&vol, &staging_place)?;
        let source = self.publish_source(&vol, s.bind_source());
        let publication = Publication { target: target.to_owned(), readonly, block };
        let mounted = self.host.is_mount_point(&place)?;
        let table = if mounted { table.get()? } else { &[] };
        if mounted && mount_at(table, target).is_none() {
            // The held target is a mount, but not under this name in the mount table: a parent
            // was renamed while this call ran. Never stack a second bind on it.
            return Err(already(id, format!("{} already holds a mount (moved while this call ran)", target.display())));
        }
        if let Some(m) = mount_at(table, target) {
            return match (shows(table, &source, m), m.is_readonly() == readonly) {
                (true, true) => self.record_publication(&mut vol, publication),
                (true, false) => {
                    Err(already(id, format!("it is published at {} with the other read-only flag", target.display())))
                }
                (false, _) => Err(already(id, format!("{} already holds another mount", target.display()))),
            };
        }
        let made = make_target(&place, block)?;
        let flags = MountOptions { readonly, options };
        let bound = self
            .record_publication(&mut vol, publication)
            .and_then(|()| Ok(self.host.bind_mount(&source, &place, &flags)?))
            .inspect(|()| super::crashpoint::hit("publish:bound"));
        if let Err(e) = bound {
            crate::undo::log("a failed publish: forget the publication", self.forget_publication(&mut vol, target));
            if made {
                crate::undo::log("a failed publish: remove the target", remove_target(&place));
            }
            return Err(e);
        }
        Ok(())
    }

    /// The staging a publish of `vol` binds from: it must be staged at `staging` with the access
    /// the publish asks for, and when it may have one publication only, not published elsewhere.
    fn staged_for_publish(&self, vol: &Volume, staging: &Place, bind: &Bind, table: &mut LazyTable) -> Result<Staging> {
        let id = &vol.id;
        let proven = self.staged_by_identity(vol, staging);
        let backend = self.backend(vol.backend);
        if proven.is_none() || !backend.shown_proves_storage() {
            if let Some(problem) = backend.storage_problem(&vol.spec(), &self.dir(id)) {
                return Err(Error::precondition(id, problem));
            }
        }
        let s = match proven {
            Some(s) => Some(s),
            None => self.staged_here(vol, table.get()?).filter(|s| s.path == staging.path()),
        };
        let Some(s) = s else {
            let why = format!("it is not staged at {}; stage it first", staging.path().display());
            return Err(Error::precondition(id, why));
        };
        if let Some(block) = bind.block.filter(|b| *b != matches!(s.access, Access::Block)) {
            let (asked, staged) = if block { ("block", "filesystem") } else { ("filesystem", "block") };
            let why = format!("it is staged at {} for {staged} access; the publish asks for {asked}", s.path.display());
            return Err(Error::precondition(id, why));
        }
        let others = if bind.alone { self.publications(vol)? } else { Vec::new() };
        if let Some(p) = others.into_iter().find(|p| p.target != bind.target) {
            let reason =
                format!("it is published at {}, and its access mode allows one publication", p.target.display());
            return Err(Error::precondition(id, reason));
        }
        Ok(s)
    }

    /// Records a publication in node state (before its bind); the same target again replaces it.
    fn record_publication(&self, vol: &mut Volume, p: Publication) -> Result<()> {
        if vol.marked.contains(&p) {
            return Ok(());
        }
        vol.marked.retain(|m| m.target != p.target);
        vol.marked.push(p);
        self.save_state(vol)
    }

    /// Drops the publication at `target` from node state, if it is there.
    fn forget_publication(&self, vol: &mut Volume, target: &Path) -> Result<()> {
        let before = vol.marked.len();
        vol.marked.retain(|m| m.target != target);
        if vol.marked.len() == before { Ok(()) } else { self.save_state(vol) }
    }

    /// Unmounts this volume's mounts at `target` and removes it. A target that is missing or
    /// not mounted is fine, and so is a volume whose record is gone. A mount there that is not
    /// this volume's (another driver's, or anything strata cannot prove is its own) is left
    /// alone: [`Error::FailedPrecondition`] names it.
    pub fn unpublish_volume(&self, id: &str, target: &Path) -> Result<()> {
        validate::id("volume", id)?;
        let Some(place) = self.node_place_if_any("target", target)? else { return Ok(()) };
        let lock = self.lock(id)?;
        let vol = self.load_held(id, &lock).ok().flatten();
        for _ in 0..MAX_STACKED {
            if !self.host.is_mount_point(&place)? {
                break;
            }
            if !self.owns_mount(id, vol.as_ref(), &place)? {
                let reason = format!(
                    "{} holds a mount that is not this volume's: {}; leaving it alone",
                    target.display(),
                    self.mount_source(&place)
                );
                return Err(Error::precondition(id, reason));
            }
            self.host.unmount(&place, false)?;
        }
        // The target is unmounted: a record that cannot be read keeps a publication that the
        // kernel no longer confirms, which counts for nothing.
        if let Some(mut vol) = vol {
            self.forget_publication(&mut vol, target)?;
        }
        remove_target(&place)
    }

    /// Removes `target` if nothing is mounted there and it holds nothing (an empty directory or
    /// file); a mount there is left alone and named in [`Error::FailedPrecondition`]. For a
    /// front-end that found no volume claiming `target`.
    pub fn clear_target(&self, target: &Path) -> Result<()> {
        let Some(place) = self.node_place_if_any("target", target)? else { return Ok(()) };
        if self.host.is_mount_point(&place)? {
            let reason = format!(
                "{} holds a mount that no strata volume claims: {}; leaving it alone",
                target.display(),
                self.mount_source(&place)
            );
            return Err(Error::precondition("(none)", reason));
        }
        remove_target(&place)
    }

    /// Where the volume is bound into pods: its recorded publications, checked against the kernel.
    pub fn live_publications(&self, id: &str) -> Result<Vec<Publication>> {
        let Some(vol) = self.get_volume(id)? else { return Ok(Vec::new()) };
        Ok(vol.publications)
    }

    pub(super) fn volume_dir(&self, id: &str) -> VolumeDir {
        self.dir(id)
    }
}

/// Why a second stage at the same path is refused: other mount flags, or the other access type.
fn other_access(staging: &Path, had: &Access, asked: &Access) -> String {
    let at = staging.display();
    match (had, asked) {
        (Access::Mount { flags: had }, Access::Mount { flags: asked }) => format!(
            "it is staged at {at} with mount flags [{}], and this call asks for [{}]",
            crate::engine::clip(&had.join(",")),
            crate::engine::clip(&asked.join(","))
        ),
        (Access::Block, _) => {
            format!("it is staged at {at} as a raw block device, and this call asks for a filesystem")
        }
        (_, Access::Block) => {
            format!("it is staged at {at} as a filesystem, and this call asks for a raw block device")
        }
    }
}

fn already(id: &str, reason: String) -> Error {
    Error::AlreadyExists { id: id.to_owned(), reason }
}
