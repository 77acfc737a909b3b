//! Node state beside a volume's record, in `node.json` (0600, as its spare): where the volume is staged and where
//! strata published it. Written without fsync (a reboot voids node state anyway: mounts and loop
//! devices do not survive it), and never trusted alone: every publication is checked against the
//! kernel before it counts (see `engine::publications`).
//!
//! A write fills a spare file beside it (`.node.json.next`) and swaps the two names in one step
//! (`renameat2(RENAME_EXCHANGE)`): after the first two writes no inode is made or freed, however
//! often the volume is staged and published. Filesystems without the exchange get a plain rename.
//! The spare is the inode `node.json` was before the last swap, so a reader that opened it then
//! and is still reading when the next write overwrites it could see a mix: readers take the
//! file's change time and inode before and after reading, and read again when they moved.

use super::memo::Memo;
use super::record::{Publication, Staging};
use super::{Error, Result};
use crate::backend::VolumeDir;
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The node state format this build writes and reads.
const FORMAT: u32 = 1;

/// What `node.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct NodeState {
    pub format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
    /// Targets publish bound the volume to, recorded before each bind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
}

impl NodeState {
    /// Node state of this build's format.
    pub fn new(staging: Option<Staging>, publications: Vec<Publication>) -> NodeState {
        NodeState { format: FORMAT, staging, publications }
    }
}

/// The node state of a volume; empty when there is none. Contents that do not parse, or whose
/// checksum does not match, are an [`Error::Record`]: the engine quarantines the volume, and
/// reconcile resets the state when the kernel shows the volume unused (a write cut short by a
/// kernel crash or power loss, after which nothing is staged).
pub(super) fn load(dir: &VolumeDir) -> Result<NodeState> {
    Ok(load_if_any(dir)?.unwrap_or_default())
}

/// [`load`], telling a missing file (`None`) from an empty state.
pub(super) fn load_if_any(dir: &VolumeDir) -> Result<Option<NodeState>> {
    parse(dir.node_state(), read_settled)
}

/// [`load_if_any`] for a caller that holds the volume's lock. Every writer of a volume's node
/// state holds that lock too, so the file cannot change while it is read: it is read once,
/// without the inode and change-time checks around the read that [`load_if_any`] needs.
pub(super) fn load_if_any_held(dir: &VolumeDir, _held: &super::lock::VolumeLock) -> Result<Option<NodeState>> {
    parse(dir.node_state(), super::record::read_small)
}

/// The node state at `path`, read by `read`.
fn parse(path: PathBuf, read: fn(&Path) -> std::io::Result<Option<Vec<u8>>>) -> Result<Option<NodeState>> {
    let parsed = match read(&path) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => {
            unseal(bytes).map(Some).map_err(|e| Error::Record { path: path.clone(), reason: e.to_string() })
        }
        Err(e) => Err(Error::io("read node state", &path)(e)),
    };
    match parsed {
        Ok(Some(s)) if s.format == FORMAT => Ok(Some(s)),
        Ok(Some(s)) => Err(Error::Record {
            path,
            reason: format!("node state format {} is not {FORMAT}; this strata is too old for it", s.format),
        }),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Node states by the bytes they were read from, and the bytes they were sealed to (see
/// [`super::memo`]): a node cycle goes through the same few states.
static UNSEALED: Memo<Vec<u8>, NodeState> = Memo::new();
static SEALED: Memo<NodeState, Vec<u8>> = Memo::new();

fn unseal(bytes: Vec<u8>) -> std::result::Result<NodeState, super::record::Sealing> {
    UNSEALED.through(bytes, |bytes, _| bytes.len(), |bytes| super::record::unseal::<NodeState>(bytes))
}

fn seal(state: NodeState) -> std::result::Result<Vec<u8>, super::record::Sealing> {
    SEALED.through(state, |_, json| json.len(), super::record::seal)
}

/// The bytes of `path` as one write left them: read again while its inode or change time moved
/// during the read (a write or a swap in between); `None` when it does not exist.
fn read_settled(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    for _ in 0..16 {
        let Some(opened) = Opened::open(path)? else { return Ok(None) };
        if let Some(bytes) = opened.read_if_settled(path)? {
            return Ok(Some(bytes));
        }
    }
    // It kept changing while being read: try again later (EAGAIN, the one errno that says so).
    Err(std::io::Error::from_raw_os_error(libc::EAGAIN))
}

/// An open node state file and its inode, change time and size when it was opened.
struct Opened {
    file: std::fs::File,
    stamp: (u64, i64, i64, u64),
}

impl Opened {
    fn open(path: &Path) -> std::io::Result<Option<Opened>> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = stamp(&file.metadata()?);
        Ok(Some(Opened { file, stamp }))
    }

    /// The contents, or `None` when the file was written or swapped since it was opened, or
    /// `path` no longer names it.
    fn read_if_settled(mut self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::MetadataExt;
        let bytes = super::record::read_sized(&mut self.file, self.stamp.3)?;
        let named = std::fs::metadata(path).map(|m| m.ino()).ok();
        let settled = stamp(&self.file.metadata()?) == self.stamp && named == Some(self.stamp.0);
        Ok(settled.then_some(bytes))
    }
}

fn stamp(m: &std::fs::Metadata) -> (u64, i64, i64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.ino(), m.ctime(), m.ctime_nsec(), m.len())
}

/// Writes the empty node state of a volume being made (see `Volume::node_state_found`).
pub(super) fn make_empty(dir: &VolumeDir) -> Result<()> {
    save(dir, &NodeState::new(None, Vec::new()))
}

/// Writes the node state; an empty one is written too (its file stays for the next write).
pub(super) fn save(dir: &VolumeDir, state: &NodeState) -> Result<()> {
    let path = dir.node_state();
    let state = NodeState { format: FORMAT, ..state.clone() };
    let json = seal(state).map_err(|e| Error::Record { path: path.clone(), reason: e.to_string() })?;
    let spare = dir.0.join(".node.json.next");
    let write = || -> std::io::Result<()> {
        overwrite(&spare, json)?;
        swap(&spare, &path)
    };
    write().map_err(Error::io("write node state", &path))
}

/// Writes `json` over the start of `path` and blanks the rest with spaces (JSON allows trailing
/// whitespace): the file never shrinks, so a rewrite is an overwrite of blocks it already has,
/// never a truncation (which costs a journal transaction on ext4 and xfs).
fn overwrite(path: &Path, mut json: Vec<u8>) -> std::io::Result<()> {
    let mut file = super::perm::private_file().write(true).create(true).truncate(false).open(path)?;
    let meta = file.metadata()?;
    super::perm::narrow(&file, &meta)?;
    let old = meta.len();
    let len = usize::try_from(old).unwrap_or(usize::MAX);
    if json.len() < len {
        json.resize(len, b' ');
    }
    file.write_all(&json)
}

/// Puts `spare` in `path`'s place: exchanged when both exist and the filesystem can, renamed
/// otherwise.
fn swap(spare: &Path, path: &Path) -> std::io::Result<()> {
    match nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        spare,
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    ) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL) => std::fs::rename(spare, path),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Access;
    use std::os::unix::fs::MetadataExt;

    fn dir() -> (tempfile::TempDir, VolumeDir) {
        let t = tempfile::tempdir().unwrap();
        let d = VolumeDir(t.path().to_owned());
        (t, d)
    }

    fn staged() -> NodeState {
        let staging = Staging { path: "/k/g".into(), access: Access::Block, device: Some("/dev/loop7".into()) };
        let p = Publication { target: "/pods/a/mount".into(), readonly: true, block: true };
        NodeState { format: FORMAT, staging: Some(staging), publications: vec![p] }
    }

    #[test]
    fn round_trip_and_empty() {
        let (_t, d) = dir();
        assert_eq!(load(&d).unwrap(), NodeState::default());
        save(&d, &staged()).unwrap();
        assert_eq!(load(&d).unwrap(), staged());
        save(&d, &NodeState::default()).unwrap();
        assert_eq!(load(&d).unwrap(), NodeState { format: FORMAT, ..NodeState::default() });
    }

    #[test]
    fn a_lock_holder_reads_the_same_state_and_the_same_damage() {
        let (t, d) = dir();
        let lock = crate::engine::lock::VolumeLock::acquire(t.path(), "v", crate::engine::Wait::No).unwrap();
        assert_eq!(load_if_any_held(&d, &lock).unwrap(), None, "no file: no state");
        save(&d, &staged()).unwrap();
        assert_eq!(load_if_any_held(&d, &lock).unwrap(), Some(staged()));
        save(&d, &NodeState::default()).unwrap();
        assert_eq!(load_if_any_held(&d, &lock).unwrap(), load_if_any(&d).unwrap());
        std::fs::write(d.node_state(), b"{\"format\":1,\"stag").unwrap();
        assert!(matches!(load_if_any_held(&d, &lock).unwrap_err(), Error::Record { .. }));
    }

    #[test]
    fn writes_reuse_two_inodes() {
        let (_t, d) = dir();
        save(&d, &staged()).unwrap();
        save(&d, &NodeState::default()).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..6 {
            save(&d, &if i % 2 == 0 { staged() } else { NodeState::default() }).unwrap();
            seen.insert(ino(&d.node_state()));
            assert_eq!(load(&d).unwrap().staging.is_some(), i % 2 == 0);
        }
        assert_eq!(seen.len(), 2, "node.json alternates between the same two inodes");
    }

    #[test]
    fn a_reader_overtaken_by_writes_reads_again() {
        let (_t, d) = dir();
        save(&d, &staged()).unwrap();
        save(&d, &NodeState::default()).unwrap();
        // Opened before two writes: the second one overwrites the very inode it holds.
        let opened = Opened::open(&d.node_state()).unwrap().unwrap();
        save(&d, &staged()).unwrap();
        save(&d, &NodeState::default()).unwrap();
        assert_eq!(opened.read_if_settled(&d.node_state()).unwrap(), None);
        let quiet = Opened::open(&d.node_state()).unwrap().unwrap();
        assert!(quiet.read_if_settled(&d.node_state()).unwrap().is_some());
        assert_eq!(load(&d).unwrap(), NodeState { format: FORMAT, ..NodeState::default() });
    }

    #[test]
    fn a_large_node_state_is_read_and_written_but_not_kept() {
        let (_t, d) = dir();
        let publications: Vec<Publication> = (0..200)
            .map(|i| Publication {
                target: format!("/pods/{i}/{}", "x".repeat(100)).into(),
                readonly: false,
                block: false,
            })
            .collect();
        let big = NodeState { format: FORMAT, staging: staged().staging, publications };
        save(&d, &big).unwrap();
        assert!(std::fs::metadata(d.node_state()).unwrap().len() > super::super::memo::LARGEST as u64);
        assert_eq!(load(&d).unwrap(), big);
        assert_eq!(load(&d).unwrap(), big);
        assert!(UNSEALED.find(|k| k.len() > super::super::memo::LARGEST).is_none());
        assert!(SEALED.find(|k| *k == big).is_none());
    }

    #[test]
    fn torn_damaged_and_newer_node_state_are_errors() {
        let (_t, d) = dir();
        std::fs::write(d.node_state(), b"{\"format\":1,\"stag").unwrap();
        assert!(matches!(load(&d).unwrap_err(), Error::Record { .. }));
        save(&d, &staged()).unwrap();
        let good = std::fs::read_to_string(d.node_state()).unwrap();
        assert!(good.contains("\"checksum\": \"sha256:"), "{good}");
        assert_eq!(load(&d).unwrap(), staged(), "read (and kept by its bytes) before the damage");
        std::fs::write(d.node_state(), good.replace("/pods/a/mount", "/pods/b/mount")).unwrap();
        let err = load(&d).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        std::fs::write(d.node_state(), br#"{"format":2}"#).unwrap();
        assert!(load(&d).unwrap_err().to_string().contains("format 2"));
    }
}
