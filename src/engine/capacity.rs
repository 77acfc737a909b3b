//! Capacity accounting: what the volumes have promised against what the node has.
//!
//! Two pools: the data root's filesystem (loop, dir and btrfs volumes) and memory (tmpfs). A
//! promise is the part of a volume's size that is not yet written and so not yet visible in the
//! pool's free figure: a loop image's size minus its allocated blocks (`st_blocks * 512`), a
//! tmpfs volume's size minus what its mount uses. Dir and btrfs volumes promise nothing: dir
//! enforces no size, and btrfs qgroups limit each volume but a qgroup read costs a process. The
//! budget of a new volume is `free * ratio - promised` (never below zero), with `ratio` the
//! backend's overcommit (1 unless `--overcommit` says otherwise). Computing it lists the volume
//! directories and looks only at the pool asked for: one `stat` of each image for the disk; for
//! memory the record of each volume without an image and a `statvfs` of each tmpfs.

use super::lock::{VolumeLock, Wait};
use super::{Engine, Error, Result, record};
use crate::backend::{Kind, VolumeDir};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// The StorageClass parameter (FlexVolume option) that asks for a preallocated loop image.
pub const PARAM_ALLOCATION: &str = "allocation";

/// How long a create waits for another create's accounting (held for the create's provision).
const ACCOUNTING_WAIT: Duration = Duration::from_secs(30);

/// Overcommit ratios per backend, in thousandths (1000 = no overcommit, the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overcommit(BTreeMap<Kind, u32>);

impl Overcommit {
    /// The ratio of `kind` in thousandths.
    pub fn permille(&self, kind: Kind) -> u32 {
        self.0.get(&kind).copied().unwrap_or(1000)
    }

    /// Sets the ratio of `kind` (at least 1: promising less than the node has is pointless).
    pub fn set(&mut self, kind: Kind, ratio: f64) -> std::result::Result<(), String> {
        if !ratio.is_finite() || !(1.0..=1000.0).contains(&ratio) {
            return Err(format!("overcommit ratio {ratio} of {} is not between 1 and 1000", kind.as_str()));
        }
        // In range, so the cast cannot truncate.
        self.0.insert(kind, (ratio * 1000.0).round() as u32);
        Ok(())
    }

    /// Parses `<backend>=<ratio>` (`tmpfs=1.5`).
    pub fn parse_pair(text: &str) -> std::result::Result<(Kind, f64), String> {
        let (name, ratio) = text.split_once('=').ok_or_else(|| format!("{text:?} is not <backend>=<ratio>"))?;
        let kind = Kind::parse(name.trim()).ok_or_else(|| format!("unknown backend {name:?}"))?;
        let ratio = ratio.trim().parse::<f64>().map_err(|_| format!("{ratio:?} is not a number"))?;
        Overcommit::default().set(kind, ratio)?;
        Ok((kind, ratio))
    }

    /// The ratios from `<backend>=<ratio>` pairs, the last of a backend winning.
    pub fn from_pairs(pairs: &[(Kind, f64)]) -> std::result::Result<Overcommit, String> {
        let mut o = Overcommit::default();
        for (kind, ratio) in pairs {
            o.set(*kind, *ratio)?;
        }
        Ok(o)
    }

    fn scale(&self, kind: Kind, bytes: u64) -> u64 {
        let scaled = u128::from(bytes) * u128::from(self.permille(kind)) / 1000;
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }
}

/// What a pool holds for new volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Free bytes now (statvfs `f_bavail` of the root, or MemAvailable).
    pub free: u64,
    /// Bytes promised to existing volumes and not yet written.
    pub promised: u64,
    /// What a new volume may get: `free * ratio - promised`, never below zero.
    pub available: u64,
}

/// Whether a new loop image is preallocated (`allocation: thick`) or sparse (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    Thin,
    Thick,
}

/// The allocation `params` ask for; `thick` is for loop volumes only.
pub fn allocation(kind: Kind, params: &BTreeMap<String, String>) -> Result<Allocation> {
    match params.get(PARAM_ALLOCATION).map(String::as_str) {
        None | Some("" | "thin") => Ok(Allocation::Thin),
        Some("thick") if kind == Kind::Loop => Ok(Allocation::Thick),
        Some("thick") => Err(Error::InvalidArgument(format!(
            "allocation: thick preallocates loop images; a {} volume has none",
            kind.as_str()
        ))),
        Some(other) => {
            Err(Error::InvalidArgument(format!("allocation {} is neither thin nor thick", super::quote(other))))
        }
    }
}

/// The pool a kind draws from.
fn in_memory(kind: Kind) -> bool {
    kind == Kind::Tmpfs
}

/// Holds the accounting of every create until the new volume's record is written, so that two
/// creates never both spend the same free bytes (across processes: a lock of the shared lock
/// file, see [`super::lock`]).
#[derive(Debug)]
pub(super) struct Reservation {
    _lock: VolumeLock,
}

impl Engine {
    /// What the pool of `kind` holds for a new volume, with the overcommit ratio applied.
    pub fn budget(&self, kind: Kind) -> Result<Budget> {
        let free = self.backend(kind).free_bytes(&self.cfg.root)?;
        let promised = self.promised(in_memory(kind))?;
        let available = self.cfg.overcommit.scale(kind, free).saturating_sub(promised);
        Ok(Budget { free, promised, available })
    }

    /// Takes the accounting lock and checks that `bytes` more of `kind` fit the budget;
    /// [`Error::OutOfCapacity`] otherwise. Hold the result until the record is written.
    pub(super) fn reserve(&self, kind: Kind, bytes: u64) -> Result<Reservation> {
        let lock = VolumeLock::acquire(&self.cfg.root.join("locks"), ".capacity", Wait::Upto(ACCOUNTING_WAIT))?;
        let reservation = Reservation { _lock: lock };
        let budget = self.budget(kind)?;
        if bytes > budget.available {
            return Err(Error::OutOfCapacity {
                pool: self.pool_name(kind),
                requested: bytes,
                available: budget.available,
                promised: budget.promised,
                permille: self.cfg.overcommit.permille(kind),
            });
        }
        Ok(reservation)
    }

    /// The pool of `kind`, as an error message names it.
    pub(super) fn pool_name(&self, kind: Kind) -> String {
        if in_memory(kind) {
            "memory (MemAvailable)".to_owned()
        } else {
            format!("space on the data root's filesystem ({})", self.cfg.root.display())
        }
    }

    /// What the existing volumes, and the ones being made aside (`.<id>.new`: a clone copies
    /// there without holding the accounting lock), have promised and not yet written in one
    /// pool: for the disk one `stat` of each image; for memory, each record of a volume without
    /// an image, and a `statvfs` of each tmpfs mount.
    fn promised(&self, memory: bool) -> Result<u64> {
        let volumes = self.cfg.root.join("volumes");
        let entries = std::fs::read_dir(&volumes).map_err(Error::io("list", &volumes))?;
        let mut sum = 0u64;
        for entry in entries {
            let entry = entry.map_err(Error::io("list", &volumes))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let being_made = super::aside::aside_of(&name).is_some_and(|(_, suffix)| suffix == super::aside::NEW);
            if !being_made && super::validate::id("volume", &name).is_err() {
                continue;
            }
            let dir = VolumeDir(entry.path());
            let promise = if memory { self.tmpfs_promise(&dir) } else { image_promise(&dir)? };
            sum = sum.saturating_add(promise);
        }
        Ok(sum)
    }

    /// The unwritten part of a tmpfs volume (0 for other volumes): its size, from its record or,
    /// for one being made that has none yet, from its mount, less what its mount uses. A record
    /// that cannot be read promises nothing here: it is reported where it is listed.
    fn tmpfs_promise(&self, dir: &VolumeDir) -> u64 {
        if dir.image().exists() {
            return 0;
        }
        let capacity = match record::load(&dir.record()) {
            Ok(Some(v)) if v.backend == Kind::Tmpfs => Some(v.capacity),
            Ok(Some(_)) => return 0,
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "capacity accounting skips an unreadable record");
                return 0;
            }
        };
        let mounted = crate::sys::place_at(&dir.data()).is_ok_and(|p| self.host.is_mount_point(&p).unwrap_or(false));
        let fs = if mounted { self.host.statvfs(&dir.data()).ok() } else { None };
        match (capacity, fs) {
            (Some(size), fs) => size.saturating_sub(fs.map_or(0, |f| f.used_bytes)),
            (None, Some(fs)) => fs.total_bytes.saturating_sub(fs.used_bytes),
            (None, None) => 0,
        }
    }
}

/// The unwritten part of a loop volume's image (0 for a volume without one).
fn image_promise(dir: &VolumeDir) -> Result<u64> {
    match std::fs::symlink_metadata(dir.image()) {
        Ok(m) if m.is_file() => Ok(unwritten(m.len(), m.blocks())),
        Ok(_) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io("stat", dir.image())(e)),
    }
}

/// The part of a file of `len` bytes with `blocks` 512-byte blocks allocated that is not written.
fn unwritten(len: u64, blocks: u64) -> u64 {
    len.saturating_sub(blocks.saturating_mul(512))
}

#[cfg(test)]
#[path = "capacity_tests.rs"]
mod tests;
