//! The intent journal's file (`<root>/journal`): a ring of 4 KiB slots, written in place, that
//! makes a create or a delete durable with one data write and one flush (the file's blocks are
//! written once when it is made, so `fdatasync` of a slot changes no metadata: no filesystem
//! journal commit), where syncing the record and `volumes/` took two commits.
//!
//! An entry is durable once [`Ring::append`] returns. The state it describes (a volume's record
//! and directory, or the rename of a deleted one) is made durable later, in the background, by a
//! checkpoint ([`Ring::take`], the caller's syncs, [`Ring::mark`]); a slot is reused only after
//! a checkpoint covers it. At start, [`Ring::open`] hands back the entries no checkpoint covers,
//! for the engine to replay (`engine::intents`).
//!
//! Layout: two header blocks, written in turn so a torn header write leaves the other whole,
//! each `STRJHEAD`, the checkpointed sequence number and a check; then [`SLOTS`] slots, each
//! `STRJENT1`, the entry's sequence number, its length, a check over all three and the payload.
//! Entry `n` lives in slot `n % SLOTS`. The checks are the first 8 bytes of a SHA-256: they tell
//! a torn or stale slot from a whole one, not a forged one (the file is root's, mode 0600).

use super::groupsync::GroupSync;
use super::{Error, Result};
use sha2::Digest;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Bytes per slot and per header block.
pub(super) const SLOT: usize = 4096;
/// Slots in the ring: entries not yet covered by a checkpoint.
pub(super) const SLOTS: u64 = 256;
const HEADERS: u64 = 2;
const HEAD_MAGIC: &[u8; 8] = b"STRJHEAD";
const ENTRY_MAGIC: &[u8; 8] = b"STRJENT1";
/// Magic, sequence number, length and check.
const ENTRY_HEAD: usize = 28;
/// The largest payload a slot holds.
pub(super) const MAX_PAYLOAD: usize = SLOT - ENTRY_HEAD;
/// The most an append waits for a checkpoint to free a slot.
const FULL_WAIT: Duration = Duration::from_secs(60);

/// The ring, open for appends.
#[derive(Debug)]
pub(super) struct Ring {
    file: File,
    path: PathBuf,
    state: Mutex<State>,
    /// A checkpoint moved on (appenders waiting for a slot) or work arrived (the checkpointer).
    changed: Condvar,
    flushes: GroupSync,
    /// Held by a checkpoint from its [`Ring::take`] to its [`Ring::mark`], so that no other
    /// marks entries as covered before their state is synced.
    checkpointing: Mutex<()>,
}

#[derive(Debug)]
struct State {
    /// The next entry's sequence number.
    next: u64,
    /// Every entry up to this one is covered by a checkpoint.
    checkpointed: u64,
    /// Header blocks written so far (which one is next).
    headers_written: u64,
    /// What the entries not yet taken by a checkpoint need synced, and since when.
    pending: Vec<PathBuf>,
    first_pending: Option<Instant>,
}

/// An entry no checkpoint covers, as [`Ring::open`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub seq: u64,
    pub payload: Vec<u8>,
}

impl Ring {
    /// Opens the ring at `path`, making it (written through, synced) if it is missing; returns
    /// it with the entries no checkpoint covers, oldest first.
    pub(super) fn open(path: &Path) -> Result<(Ring, Vec<Found>)> {
        if std::fs::symlink_metadata(path).is_err() {
            make(path)?;
        }
        let file = super::perm::private_file().read(true).write(true).open(path).map_err(Error::io("open", path))?;
        let size = file.metadata().map_err(Error::io("stat", path))?.len();
        if size != file_size() {
            let reason = format!(
                "{size} bytes, not the {} of a strata journal: move it aside to start with a new one (operations.md, \"The intent journal\")",
                file_size()
            );
            return Err(Error::Journal { path: path.to_owned(), reason });
        }
        let (checkpointed, headers_written) = read_headers(&file, path)?;
        let found = read_entries(&file, path, checkpointed)?;
        let next = found.last().map_or(checkpointed, |f| f.seq).max(checkpointed) + 1;
        let sync_file = file.try_clone().map_err(Error::io("open", path))?;
        let state = State { next, checkpointed, headers_written, pending: Vec::new(), first_pending: None };
        let ring = Ring {
            file,
            path: path.to_owned(),
            state: Mutex::new(state),
            changed: Condvar::new(),
            flushes: GroupSync::new(Box::new(move || sync_file.sync_data())),
            checkpointing: Mutex::new(()),
        };
        Ok((ring, found))
    }

    /// Writes `payload` as the next entry and returns once it is on disk. `sync` names what a
    /// checkpoint must sync to cover it (the state it describes is in place before this call).
    pub(super) fn append(&self, payload: &[u8], sync: Vec<PathBuf>) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD {
            let reason = format!("an entry of {} bytes does not fit a slot of {MAX_PAYLOAD}", payload.len());
            return Err(Error::Journal { path: self.path.clone(), reason });
        }
        let seq = self.reserve(sync)?;
        let block = entry_block(seq, payload);
        self.file.write_all_at(&block, slot_offset(seq)).map_err(Error::io("write journal", &self.path))?;
        self.flushes.sync().map_err(Error::io("sync journal", &self.path))?;
        Ok(seq)
    }

    /// Takes the next sequence number once its slot is free, and records what to sync for it.
    fn reserve(&self, sync: Vec<PathBuf>) -> Result<u64> {
        let deadline = Instant::now() + FULL_WAIT;
        let mut state = self.lock();
        while state.next - state.checkpointed > SLOTS {
            self.changed.notify_all();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let reason = "every slot waits for a checkpoint that does not come".to_owned();
                return Err(Error::Journal { path: self.path.clone(), reason });
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        let seq = state.next;
        state.next += 1;
        state.pending.extend(sync);
        // The checkpoints wait for the first entry after one, or for half a ring: woken for
        // every entry, their thread took a core from the calls.
        let first = state.first_pending.is_none();
        state.first_pending.get_or_insert_with(Instant::now);
        if first || seq - state.checkpointed == SLOTS / 2 {
            self.changed.notify_all();
        }
        Ok(seq)
    }

    /// Waits for entries to checkpoint ([`Ring::wait_due`]) and takes them ([`Ring::take_now`]).
    #[cfg(test)]
    pub(super) fn take(&self, delay: Duration, stop: &dyn Fn() -> bool) -> Option<(u64, Vec<PathBuf>)> {
        if !self.wait_due(delay, stop) {
            return None;
        }
        self.take_now()
    }

    /// Waits until entries are due for a checkpoint: the oldest has waited `delay`, or half the
    /// ring is used, or `stop` says so. False when `stop` says so and nothing is pending.
    pub(super) fn wait_due(&self, delay: Duration, stop: &dyn Fn() -> bool) -> bool {
        let mut state = self.lock();
        loop {
            let used = state.next - 1 - state.checkpointed;
            let wait = match state.first_pending {
                Some(since) if stop() || used >= SLOTS / 2 || since.elapsed() >= delay => return true,
                Some(since) => delay.saturating_sub(since.elapsed()),
                None if stop() => return false,
                None => delay,
            };
            state = self.changed.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Takes what the entries not yet taken need synced, and the highest sequence number they
    /// reach; `None` when nothing is pending. Hold [`Ring::checkpoint_turn`] from here to
    /// [`Ring::mark`].
    pub(super) fn take_now(&self) -> Option<(u64, Vec<PathBuf>)> {
        let mut state = self.lock();
        state.first_pending.take()?;
        Some((state.next - 1, std::mem::take(&mut state.pending)))
    }

    /// The turn of one checkpoint: hold it from [`Ring::take_now`] to [`Ring::mark`].
    pub(super) fn checkpoint_turn(&self) -> MutexGuard<'_, ()> {
        self.checkpointing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that every entry up to `upto` is covered: its state is synced.
    pub(super) fn mark(&self, upto: u64) -> Result<()> {
        let mut state = self.lock();
        if upto <= state.checkpointed {
            return Ok(());
        }
        let offset = (state.headers_written % HEADERS) * SLOT as u64;
        self.file.write_all_at(&header_block(upto), offset).map_err(Error::io("write journal", &self.path))?;
        self.file.sync_data().map_err(Error::io("sync journal", &self.path))?;
        state.headers_written += 1;
        state.checkpointed = upto;
        self.changed.notify_all();
        Ok(())
    }

    /// Puts back what a failed checkpoint took, for the next one.
    pub(super) fn give_back(&self, sync: Vec<PathBuf>) {
        let mut state = self.lock();
        state.pending.extend(sync);
        state.first_pending.get_or_insert_with(Instant::now);
    }

    /// Entries written and not yet covered by a checkpoint.
    #[cfg(test)]
    pub(super) fn uncovered(&self) -> u64 {
        let state = self.lock();
        state.next - 1 - state.checkpointed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn file_size() -> u64 {
    (HEADERS + SLOTS) * SLOT as u64
}

fn slot_offset(seq: u64) -> u64 {
    (HEADERS + seq % SLOTS) * SLOT as u64
}

/// Makes the file beside its final name, every block written (so later writes in place change
/// no metadata), synced, then renamed into place and the directory synced.
fn make(path: &Path) -> Result<()> {
    let tmp = path.with_extension("new");
    let write = || -> std::io::Result<()> {
        let f = super::perm::private_file().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all_at(&vec![0u8; usize::try_from(file_size()).unwrap_or(usize::MAX)], 0)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(path.parent().unwrap_or(Path::new("/")))?.sync_all()
    };
    write().map_err(Error::io("make journal", path))
}

fn check(parts: &[&[u8]]) -> [u8; 8] {
    let mut hash = sha2::Sha256::new();
    for p in parts {
        hash.update(p);
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&hash.finalize()[..8]);
    out
}

fn header_block(seq: u64) -> Vec<u8> {
    let mut block = vec![0u8; SLOT];
    let seq = seq.to_le_bytes();
    block[..8].copy_from_slice(HEAD_MAGIC);
    block[8..16].copy_from_slice(&seq);
    block[16..24].copy_from_slice(&check(&[HEAD_MAGIC, &seq]));
    block
}

fn entry_block(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut block = vec![0u8; SLOT];
    let (seq, len) = (seq.to_le_bytes(), u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    block[..8].copy_from_slice(ENTRY_MAGIC);
    block[8..16].copy_from_slice(&seq);
    block[16..20].copy_from_slice(&len);
    block[20..28].copy_from_slice(&check(&[ENTRY_MAGIC, &seq, &len, payload]));
    block[ENTRY_HEAD..ENTRY_HEAD + payload.len()].copy_from_slice(payload);
    block
}

fn u64_at(block: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&block[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The checkpoint of the newest whole header (0 when neither is), and how many header writes
/// that makes (so the next goes to the other block).
fn read_headers(file: &File, path: &Path) -> Result<(u64, u64)> {
    let mut best: Option<(u64, u64)> = None;
    for i in 0..HEADERS {
        let mut block = vec![0u8; SLOT];
        file.read_exact_at(&mut block, i * SLOT as u64).map_err(Error::io("read journal", path))?;
        let seq = u64_at(&block, 8);
        let whole = &block[..8] == HEAD_MAGIC && block[16..24] == check(&[HEAD_MAGIC, &block[8..16]]);
        if whole && best.is_none_or(|(s, _)| seq > s) {
            best = Some((seq, i + 1));
        }
    }
    Ok(best.unwrap_or((0, 0)))
}

/// The whole entries after `checkpointed`, by sequence number.
fn read_entries(file: &File, path: &Path, checkpointed: u64) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut block = vec![0u8; SLOT];
    for slot in 0..SLOTS {
        file.read_exact_at(&mut block, (HEADERS + slot) * SLOT as u64).map_err(Error::io("read journal", path))?;
        if let Some(entry) = parse_entry(&block).filter(|e| e.seq > checkpointed && e.seq % SLOTS == slot) {
            found.push(entry);
        }
    }
    found.sort_by_key(|f| f.seq);
    Ok(found)
}

fn parse_entry(block: &[u8]) -> Option<Found> {
    if &block[..8] != ENTRY_MAGIC {
        return None;
    }
    let len = usize::try_from(u32::from_le_bytes(block[16..20].try_into().ok()?)).ok()?;
    let payload = block.get(ENTRY_HEAD..ENTRY_HEAD.checked_add(len)?)?;
    let whole = block[20..28] == check(&[ENTRY_MAGIC, &block[8..16], &block[16..20], payload]);
    whole.then(|| Found { seq: u64_at(block, 8), payload: payload.to_vec() })
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
