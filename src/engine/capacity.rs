//! Capacity accounting: what the volumes have promised against what the node has.
//!
//! Two pools: the data root's filesystem (loop, dir and btrfs volumes) and memory (tmpfs). A
//! promise is the part of a volume's size that is not yet written and so not yet visible in the
//! pool's free figure: a loop image's size minus its allocated blocks (`st_blocks * 512`), a
//! tmpfs volume's size minus what its mount uses. Dir and btrfs volumes promise nothing: dir
//! enforces no size, and btrfs qgroups limit each volume but a qgroup read costs a process. The
//! budget of a new volume is `free * ratio - promised` (never below zero), with `ratio` the
//! backend's overcommit (1 unless `--overcommit` says otherwise). What is promised comes from
//! the capacity ledger ([`super::ledger`]), kept as volumes come and go: no scan per create.

use super::ledger::{Ledger, LedgerFile, Share};
use super::lock::{VolumeLock, Wait};
pub use super::overcommit::Overcommit;
use super::{Engine, Error, Result, Volume};
use crate::backend::Kind;
use crate::volume::Allocation;
use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::volume::PARAM_ALLOCATION;

/// How long a create waits for another create's accounting (held for the create's provision).
const ACCOUNTING_WAIT: Duration = Duration::from_secs(30);

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

/// The allocation `params` ask for; `thick` is for loop volumes only.
pub fn allocation(kind: Kind, params: &BTreeMap<String, String>) -> Result<Allocation> {
    match params.get(PARAM_ALLOCATION).map(String::as_str) {
        None | Some("" | "thin") => Ok(Allocation::Thin),
        Some("thick") if crate::backend::rules(kind).preallocates() => Ok(Allocation::Thick),
        Some("thick") => Err(Error::InvalidArgument(format!(
            "allocation: thick preallocates loop images; a {} volume has none",
            kind.as_str()
        ))),
        Some(other) => {
            Err(Error::InvalidArgument(format!("allocation {} is neither thin nor thick", super::quote(other))))
        }
    }
}

/// The pool a kind draws from: memory (tmpfs) or the data root's filesystem.
pub(super) fn in_memory(kind: Kind) -> bool {
    crate::backend::rules(kind).in_memory()
}

/// The accounting lock, held, and the ledger read under it (see [`super::ledger`]): every
/// create, expansion, copy and delete goes through one, so two of them never spend the same
/// bytes, across processes (a byte of the shared lock file, see [`super::lock`]).
#[derive(Debug)]
pub(super) struct Accounts {
    _lock: VolumeLock,
    file: LedgerFile,
    pub(super) ledger: Ledger,
}

impl Accounts {
    pub(super) fn save(&mut self) -> Result<()> {
        self.file.write(&self.ledger)
    }
}

/// A create or an expansion that fits, holding the accounting until its volume is counted.
#[derive(Debug)]
pub(super) struct Reservation {
    accounts: Accounts,
}

impl Reservation {
    /// Counts `share` in (a new volume's, with its storage and record made and before it is
    /// renamed into place, so that a crash leaves the ledger promising too much, not too little).
    pub(super) fn count(&mut self, share: &Share) -> Result<()> {
        self.accounts.ledger.add(share);
        self.accounts.save()
    }

    /// Replaces `old` by `new` in the ledger (a volume that grew).
    pub(super) fn recount(&mut self, old: &Share, new: &Share) -> Result<()> {
        self.accounts.ledger.remove(old);
        self.accounts.ledger.add(new);
        self.accounts.save()
    }
}

impl Engine {
    /// Takes the accounting lock and reads the ledger, counting it again when it does not read.
    pub(super) fn accounts(&self) -> Result<Accounts> {
        let locks = self.cfg.root.join("locks");
        let lock = VolumeLock::acquire(&locks, ".capacity", Wait::Upto(ACCOUNTING_WAIT))?;
        let mut file = LedgerFile::open(&locks)?;
        let ledger = match file.read() {
            Some(ledger) => ledger,
            None => {
                let counted = self.count_ledger(None)?;
                file.write(&counted)?;
                counted
            }
        };
        Ok(Accounts { _lock: lock, file, ledger })
    }

    /// The ledger as it stands (for metrics).
    pub fn ledger(&self) -> Result<Ledger> {
        Ok(self.accounts()?.ledger)
    }

    /// Counts the ledger again from the records and the storage (what sparse images and tmpfs
    /// volumes wrote since shrinks their promise). `fresh` forgets the promises of copies in
    /// progress (at start, where no copy of an earlier process goes on).
    pub fn recount_capacity(&self, fresh: bool) -> Result<()> {
        let mut accounts = self.accounts()?;
        accounts.ledger = self.count_ledger((!fresh).then_some(&accounts.ledger))?;
        accounts.save()
    }

    /// What the pool of `kind` holds for a new volume, with the overcommit ratio applied.
    pub fn budget(&self, kind: Kind) -> Result<Budget> {
        let accounts = self.accounts()?;
        self.budget_in(kind, &accounts.ledger)
    }

    fn budget_in(&self, kind: Kind, ledger: &Ledger) -> Result<Budget> {
        let free = self.backend(kind).free_bytes(&self.cfg.root)?;
        let promised = ledger.promised(in_memory(kind));
        let available = self.cfg.overcommit.scale(kind, free).saturating_sub(promised);
        Ok(Budget { free, promised, available })
    }

    /// Takes the accounting lock and checks that `bytes` more of `kind` fit the budget (counting
    /// the ledger again before refusing); [`Error::OutOfCapacity`] otherwise. Hold the result
    /// until the new volume is counted.
    pub(super) fn reserve(&self, kind: Kind, bytes: u64) -> Result<Reservation> {
        let mut accounts = self.accounts()?;
        let mut budget = self.budget_in(kind, &accounts.ledger)?;
        if bytes > budget.available {
            accounts.ledger = self.count_ledger(Some(&accounts.ledger))?;
            accounts.save()?;
            budget = self.budget_in(kind, &accounts.ledger)?;
        }
        if bytes > budget.available {
            return Err(Error::OutOfCapacity {
                pool: self.pool_name(kind),
                requested: bytes,
                available: budget.available,
                promised: budget.promised,
                permille: self.cfg.overcommit.permille(kind),
            });
        }
        Ok(Reservation { accounts })
    }

    /// Checks that a copy of `bytes` of `kind` (a clone or a restore, made without holding the
    /// accounting) fits, and promises it to volume `id` until [`Engine::settle_promise`].
    pub(super) fn promise_copy(&self, id: &str, kind: Kind, bytes: u64) -> Result<()> {
        let mut reservation = self.reserve(kind, bytes)?;
        reservation.accounts.ledger.pend(id, kind, bytes);
        reservation.accounts.save()
    }

    /// Ends the promise of the copy `id`, counting its volume in (`made`: with its storage and
    /// record made, before it is renamed into place) or not (the copy failed; call before its
    /// storage is removed).
    pub(super) fn settle_promise(&self, id: &str, made: Option<&Share>) -> Result<()> {
        let mut accounts = self.accounts()?;
        accounts.ledger.settle(id);
        if let Some(share) = made {
            accounts.ledger.add(share);
        }
        accounts.save()
    }

    /// Counts volume `vol` out, then runs `leave` (which takes its storage out of `volumes/<id>`)
    /// under the accounting lock; counts it in again when `leave` fails.
    pub(super) fn uncounted<T>(&self, vol: &Volume, leave: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut accounts = self.accounts()?;
        let share = self.share(vol, &self.dir(&vol.id));
        accounts.ledger.remove(&share);
        accounts.save()?;
        let left = leave();
        if left.is_err() {
            accounts.ledger.add(&share);
            accounts.save()?;
        }
        left
    }

    /// The pool of `kind`, as an error message names it.
    pub(super) fn pool_name(&self, kind: Kind) -> String {
        if in_memory(kind) {
            "memory (MemAvailable)".to_owned()
        } else {
            format!("space on the data root's filesystem ({})", self.cfg.root.display())
        }
    }
}

#[cfg(test)]
#[path = "capacity_tests.rs"]
mod tests;
