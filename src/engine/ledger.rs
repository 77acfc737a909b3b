//! The capacity ledger: running totals of what the volumes hold and promise, kept as volumes
//! are made, grown and deleted, so that a create's budget, GetCapacity and a metrics scrape cost
//! the same with 10,000 volumes as with one.
//!
//! It lives in `locks/capacity.ledger` (0600), read and written only under the accounting lock
//! (the `.capacity` byte of `locks/ids.lock`), by strata-csi and every strata-flex process alike.
//! It is written in place without fsync: a reboot voids it (it names the boot it was counted in),
//! and so does anything that does not parse; either way it is counted again from the records and
//! the storage (a scan, as at start). Every change that makes or removes storage a volume
//! promises updates the ledger under the lock before the storage appears in `volumes/<id>` or
//! after it has left it, so a count taken at any moment agrees with the ledger or counts less
//! than it: a crash can leave the ledger promising too much (until the next count), never too
//! little. What a sparse image or a tmpfs has written since the last count is not followed: the
//! promise shrinks as they fill only when the ledger is counted again (a create that does not
//! fit counts again before it refuses; strata-csi counts every few minutes).

use super::{Engine, Error, Result, Volume, record};
use crate::backend::{Kind, Promise, VolumeDir};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The ledger's file in `locks/`.
pub const FILE: &str = "capacity.ledger";
const FORMAT: u32 = 1;

/// What the volumes of one kind add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub volumes: u64,
    /// Their capacity.
    pub capacity: u64,
    /// What their storage may grow to in its pool: a loop image's length, a tmpfs' size.
    pub sized: u64,
    /// What of that was written at the last count (or when the volume was made).
    pub written: u64,
}

impl Tally {
    /// Sized but not written: what the kind has promised and its pool does not show as used.
    pub fn promised(&self) -> u64 {
        self.sized.saturating_sub(self.written)
    }
}

/// One volume's part of its kind's tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Share {
    pub kind: Kind,
    pub capacity: u64,
    pub sized: u64,
    pub written: u64,
}

/// A promise for a volume being copied (a clone or a restore), made before its storage exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Pending {
    kind: Kind,
    bytes: u64,
}

/// The totals, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    format: u32,
    /// The boot the ledger was counted in (`/proc/sys/kernel/random/boot_id`).
    boot: String,
    kinds: BTreeMap<Kind, Tally>,
    /// Promises of copies in progress, by volume id.
    #[serde(default)]
    pending: BTreeMap<String, Pending>,
}

impl Ledger {
    pub fn tally(&self, kind: Kind) -> Tally {
        self.kinds.get(&kind).copied().unwrap_or_default()
    }

    /// What the volumes of the kinds of one pool (memory: tmpfs; disk: the others) promise,
    /// copies in progress included.
    pub fn promised(&self, memory: bool) -> u64 {
        let in_pool = |k: &Kind| crate::backend::rules(*k).in_memory() == memory;
        let counted: u64 = self.kinds.iter().filter(|(k, _)| in_pool(k)).map(|(_, t)| t.promised()).sum();
        let pending: u64 = self.pending.values().filter(|p| in_pool(&p.kind)).map(|p| p.bytes).sum();
        counted.saturating_add(pending)
    }

    pub(super) fn add(&mut self, s: &Share) {
        let t = self.kinds.entry(s.kind).or_default();
        t.volumes += 1;
        t.capacity = t.capacity.saturating_add(s.capacity);
        t.sized = t.sized.saturating_add(s.sized);
        t.written = t.written.saturating_add(s.written.min(s.sized));
    }

    pub(super) fn remove(&mut self, s: &Share) {
        let t = self.kinds.entry(s.kind).or_default();
        t.volumes = t.volumes.saturating_sub(1);
        t.capacity = t.capacity.saturating_sub(s.capacity);
        t.sized = t.sized.saturating_sub(s.sized);
        t.written = t.written.saturating_sub(s.written.min(s.sized)).min(t.sized);
    }

    pub(super) fn pend(&mut self, id: &str, kind: Kind, bytes: u64) {
        self.pending.insert(id.to_owned(), Pending { kind, bytes });
    }

    pub(super) fn settle(&mut self, id: &str) {
        self.pending.remove(id);
    }
}

/// The id of this boot (read once per process, see `copies::boot_id`), not at every create and
/// delete.
fn boot_id() -> String {
    super::copies::boot_id().to_owned()
}

/// The ledger file, open for reading and writing.
#[derive(Debug)]
pub(super) struct LedgerFile(std::fs::File);

impl LedgerFile {
    pub(super) fn open(locks: &Path) -> Result<LedgerFile> {
        let path = locks.join(FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        Ok(LedgerFile(file))
    }

    /// The ledger as stored, if it is of this boot and reads.
    pub(super) fn read(&mut self) -> Option<Ledger> {
        let mut text = String::new();
        self.0.rewind().ok()?;
        self.0.read_to_string(&mut text).ok()?;
        let ledger: Ledger = serde_json::from_str(&text).ok()?;
        (ledger.format == FORMAT && ledger.boot == boot_id()).then_some(ledger)
    }

    pub(super) fn write(&mut self, ledger: &Ledger) -> Result<()> {
        let text = serde_json::to_vec(ledger).map_err(|e| Error::io("encode", FILE)(e.into()))?;
        let done =
            self.0.rewind().and_then(|()| self.0.write_all(&text)).and_then(|()| self.0.set_len(text.len() as u64));
        done.map_err(Error::io("write", FILE))
    }
}

impl Engine {
    /// What volume `vol` (its storage at `dir`) adds to the ledger: its capacity, and for the
    /// kinds whose pool does not see their size until they write it (sparse loop images, tmpfs)
    /// that size and what of it is written now.
    pub(super) fn share(&self, vol: &Volume, dir: &VolumeDir) -> Share {
        let Promise { sized, written } = self.backend(vol.backend).promise(&vol.spec(), dir);
        Share { kind: vol.backend, capacity: vol.capacity, sized, written }
    }

    /// Counts the ledger from the records and the storage: every volume with a readable record
    /// (asides are not volumes yet, or any more). Promises of copies in progress are kept, unless
    /// `fresh` (at start: no copy of an earlier process goes on).
    pub(super) fn count_ledger(&self, kept: Option<&Ledger>) -> Result<Ledger> {
        let mut ledger = Ledger { format: FORMAT, boot: boot_id(), ..Ledger::default() };
        if let Some(old) = kept {
            ledger.pending = old.pending.clone();
        }
        for id in self.volume_ids()? {
            let dir = self.dir(&id);
            if let Ok(Some(vol)) = record::load(&dir.record()) {
                ledger.add(&self.share(&vol, &dir));
            }
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(kind: Kind, capacity: u64, sized: u64, written: u64) -> Share {
        Share { kind, capacity, sized, written }
    }

    #[test]
    fn tallies_add_and_remove_and_pools_promise_apart() {
        let mut l = Ledger::default();
        l.add(&share(Kind::Loop, 100, 100, 30));
        l.add(&share(Kind::Tmpfs, 50, 50, 0));
        l.add(&share(Kind::Dir, 70, 0, 0));
        l.pend("clone", Kind::Loop, 10);
        assert_eq!((l.promised(false), l.promised(true)), (80, 50));
        assert_eq!(l.tally(Kind::Dir), Tally { volumes: 1, capacity: 70, sized: 0, written: 0 });
        l.settle("clone");
        l.remove(&share(Kind::Loop, 100, 100, 90));
        assert_eq!(l.tally(Kind::Loop), Tally::default(), "removing more than was counted leaves nothing, not less");
        assert_eq!(l.promised(false), 0);
    }

    #[test]
    fn a_ledger_of_another_boot_or_torn_does_not_read() {
        let d = tempfile::tempdir().unwrap();
        let mut f = LedgerFile::open(d.path()).unwrap();
        assert!(f.read().is_none(), "an empty file is no ledger");
        let mut l = Ledger { format: FORMAT, boot: boot_id(), ..Ledger::default() };
        l.add(&share(Kind::Loop, 1, 1, 0));
        f.write(&l).unwrap();
        assert_eq!(f.read(), Some(l.clone()));
        l.boot = "another boot".into();
        f.write(&l).unwrap();
        assert!(f.read().is_none());
        std::fs::write(d.path().join(FILE), b"{\"format\":1,\"bo").unwrap();
        assert!(f.read().is_none());
    }
}
