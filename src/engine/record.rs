//! Volume records: one JSON file per volume (0600), written atomically (temp, fsync, rename,
//! fsync dir), and the JSON writer node state shares with them.

pub use super::cause::Cause;
use super::memo::Memo;
use super::{Error, Result};
use crate::sys::FsType;
pub use crate::volume::{Access, Staging};
use crate::volume::{Allocation, Kind, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The record format this build writes and reads.
pub const FORMAT: u32 = 1;
/// The format of a record whose copy is still under way (see [`CopyIntent`]): a strata that
/// knows no background copies refuses it, so it never takes a half-copied volume or snapshot
/// for a whole one. The record goes back to [`FORMAT`] when the copy is whole.
pub const FORMAT_COPYING: u32 = 2;

/// One bind of the volume into a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub target: PathBuf,
    pub readonly: bool,
    pub block: bool,
}

/// The truth about one volume that exists under the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub format: u32,
    pub id: String,
    /// The name the volume was created under (CSI name, PV name).
    pub name: String,
    pub backend: Kind,
    pub capacity: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<FsType>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    pub created_unix: u64,
    /// Tells this volume from another of the same id made before or after it: its creation
    /// time in nanoseconds since the epoch (the intent journal's replay compares them). Records
    /// of older strata have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    /// Where the volume is staged on this node. Kept in its own file beside the record (node
    /// state, see `engine::state`); records written before that carried it here, so it is still
    /// read from the record but never written to it.
    #[serde(default, skip_serializing)]
    pub staging: Option<Staging>,
    /// Whether the record on disk still carries a staging (an older record): unstaging then
    /// rewrites the record without it.
    #[serde(skip)]
    pub staging_in_record: bool,
    /// Where the volume is bound into pods. Never stored here: [`crate::engine::Engine::get_volume`]
    /// fills it from the node state's publications that the kernel confirms.
    #[serde(skip)]
    pub publications: Vec<Publication>,
    /// The publications node state records, not yet checked against the kernel.
    #[serde(skip)]
    pub(crate) marked: Vec<Publication>,
    /// Whether the volume's node state file was found. Every volume this strata makes gets one
    /// when it is made, so a missing one was lost (or the volume is an older strata's): a delete
    /// then asks the whole mount table in the call (see `Engine::delete_volume`).
    #[serde(skip)]
    pub(crate) node_state_found: bool,
    /// The snapshot or volume this volume was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The device grew (restore into a larger size) and the filesystem must follow at the next stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grow_fs: bool,
    /// What the copy that made this volume (a clone or a restore) left out of its source.
    #[serde(default, skip_serializing_if = "Omitted::is_none")]
    pub omitted: Omitted,
    /// How the volume is encrypted, if it is (`encryption: fscrypt`): never a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<super::encryption::Encryption>,
    /// The copy that is still filling this volume (a clone or a restore in the background).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyIntent>,
}

impl Volume {
    /// What the volume's backend needs to know of it.
    pub fn spec(&self) -> Spec {
        Spec {
            kind: self.backend,
            capacity: self.capacity,
            fs_type: self.fs_type,
            allocation: Allocation::of(&self.parameters),
            encrypted: self.encryption.is_some(),
            grow_fs: self.grow_fs,
        }
    }
}

/// A copy that fills a volume or a snapshot in the background, recorded before it starts and
/// dropped from the record when the copy is whole: what a restart resumes it from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyIntent {
    /// What is copied.
    pub from: Source,
    pub started_unix: u64,
    /// The boot the copy started in (`/proc/sys/kernel/random/boot_id`): a tmpfs source and a
    /// frozen filesystem do not outlive it.
    #[serde(default)]
    pub boot: String,
    /// The source image as it was when it was held still (loop): a resumed copy proves the
    /// image has not changed since, or the point in time is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still: Option<Stamp>,
    /// Why the copy failed; the next call reports it and removes what the copy made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<CopyFailure>,
}

/// A file's length and modification time, to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub len: u64,
    pub mtime: i64,
    pub mtime_nanos: i64,
}

impl Stamp {
    /// The stamp of `path`, if it can be read.
    pub fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp { len: m.len(), mtime: m.mtime(), mtime_nanos: m.mtime_nsec() })
    }
}

/// Why a background copy failed, as the next call reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyFailure {
    pub cause: Cause,
    pub message: String,
}

/// What a copy of a volume's tree left out: a snapshot or clone is data, not devices, and what
/// was mounted inside the tree is not the volume's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Omitted {
    /// Block and character device nodes.
    #[serde(default)]
    pub devices: u64,
    /// Mounts inside the tree (an empty directory stands in for each).
    #[serde(default)]
    pub mounts: u64,
}

impl Omitted {
    pub fn is_none(&self) -> bool {
        *self == Omitted::default()
    }
}

impl From<&crate::sys::tree::CopyReport> for Omitted {
    fn from(r: &crate::sys::tree::CopyReport) -> Omitted {
        Omitted { devices: r.devices_skipped, mounts: r.mounts_skipped }
    }
}

/// What a new volume's contents come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "id")]
pub enum Source {
    Snapshot(String),
    Volume(String),
}

/// A point-in-time copy of a volume, independent of it once made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub id: String,
    pub name: String,
    pub source_volume: String,
    pub backend: Kind,
    /// The capacity of the source volume: the least a restore needs.
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<FsType>,
    pub created_unix: u64,
    #[serde(default)]
    pub created_nanos: u32,
    /// What the copy left out of the volume.
    #[serde(default, skip_serializing_if = "Omitted::is_none")]
    pub omitted: Omitted,
    /// The source volume's encryption: a snapshot of an encrypted volume is its ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<super::encryption::Encryption>,
    /// The copy still under way: the snapshot is cut but not ready to use yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<CopyIntent>,
    /// The volume group snapshot this snapshot belongs to (deleted only with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Snapshot {
    /// Whether the snapshot's copy is whole (CSI `ready_to_use`).
    pub fn ready(&self) -> bool {
        self.copy.is_none()
    }
}

/// The format a record with `copy` is written in.
pub fn format_for(copy: Option<&CopyIntent>) -> u32 {
    if copy.is_some() { FORMAT_COPYING } else { FORMAT }
}

/// Reads a volume record; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Volume>> {
    /// Records by their bytes (see [`super::memo`]).
    static PARSED: Memo<Vec<u8>, Volume> = Memo::new();
    let Some(bytes) = read_bytes(path)? else { return Ok(None) };
    let parse = |bytes: &Vec<u8>| {
        let vol =
            unseal::<Volume>(bytes).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })?;
        check_format(path, vol.format)?;
        Ok(Volume { staging_in_record: vol.staging.is_some(), ..vol })
    };
    PARSED.through(bytes, |bytes, _| bytes.len(), parse).map(Some)
}

/// Reads a snapshot record; `Ok(None)` when there is none.
pub fn load_snapshot(path: &Path) -> Result<Option<Snapshot>> {
    load_json::<Snapshot>(path)?.map(|v| check_format(path, v.format).map(|()| v)).transpose()
}

fn check_format(path: &Path, format: u32) -> Result<()> {
    if format == FORMAT || format == FORMAT_COPYING {
        return Ok(());
    }
    let reason = format!("format {format} is not {FORMAT}; this strata is too old for it");
    Err(Error::Record { path: path.to_owned(), reason })
}

pub(super) fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = read_bytes(path)? else { return Ok(None) };
    unseal(&bytes).map(Some).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })
}

/// A record file's bytes; `None` when there is none.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    read_small(path).map_err(Error::io("read record", path))
}

/// The bytes of a small file (a record, node state), `None` when it does not exist. No `statx`
/// for the size: such a file is far smaller than the first buffer, so one read that stops
/// short of it takes the whole file.
pub(super) fn read_small(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::File::open(path) {
        Ok(mut file) => read_sized(&mut file, RECORD_GUESS).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The first buffer of a record read (its size plus one byte): records are a few hundred bytes.
const RECORD_GUESS: u64 = 4095;

/// Reads a regular file to its end, expecting about `len` bytes: a read that stops short of
/// its buffer is the end (a regular file's read returns less than asked only there), so a file
/// no larger than `len` costs one read, not two.
pub(super) fn read_sized(file: &mut impl std::io::Read, len: u64) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20);
    let mut bytes = vec![0; len + 1];
    let mut filled = 0;
    loop {
        let n = match file.read(&mut bytes[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        if n == 0 || filled < bytes.len() {
            break;
        }
        bytes.resize(filled * 2, 0);
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// Why JSON cannot be sealed or unsealed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Sealing {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("a record must be a JSON object")]
    NotAnObject,
    #[error("checksum mismatch (stored {stored}, contents give {want:?}): damaged on disk")]
    Checksum { stored: serde_json::Value, want: String },
}

/// The key of the checksum a sealed JSON object carries.
const CHECKSUM: &str = "checksum";

/// `value` as pretty JSON with a `checksum` member: `sha256:` and the hex digest of the compact
/// JSON of everything else (members in key order), so a record damaged on disk is told from a
/// good one even where it still parses.
pub(super) fn seal<T: Serialize>(value: &T) -> std::result::Result<Vec<u8>, Sealing> {
    let mut json = serde_json::to_value(value)?;
    json.as_object_mut().ok_or(Sealing::NotAnObject)?.remove(CHECKSUM);
    let digest = digest(&json)?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert(CHECKSUM.to_owned(), serde_json::Value::String(digest));
    }
    Ok(serde_json::to_vec_pretty(&json)?)
}

/// Parses sealed JSON, checking its checksum when it has one (records written before checksums
/// have none and are taken as they are).
pub(super) fn unseal<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, Sealing> {
    let mut json: serde_json::Value = serde_json::from_slice(bytes)?;
    let stored = json.as_object_mut().and_then(|obj| obj.remove(CHECKSUM));
    if let Some(stored) = stored {
        let want = digest(&json)?;
        if stored.as_str() != Some(want.as_str()) {
            return Err(Sealing::Checksum { stored, want });
        }
    }
    Ok(serde_json::from_value(json)?)
}

fn digest(value: &serde_json::Value) -> std::result::Result<String, Sealing> {
    use sha2::Digest;
    use std::fmt::Write;
    let compact = serde_json::to_vec(value)?;
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for b in sha2::Sha256::digest(&compact) {
        let _ = write!(text, "{b:02x}");
    }
    Ok(text)
}

/// How far a record write must reach before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every process sees the old or the new file, whole (temp file, rename), and it survives a
    /// crash of strata; nothing is forced to disk, so a kernel crash or power loss may leave an
    /// older, an empty or a partial file. For node state, which a reboot voids anyway: mounts
    /// and loop devices do not survive it.
    Cached,
    /// The new contents and the rename are on disk before the call returns (file and directory
    /// fsync): for a volume's existence.
    Durable,
}

/// Writes `value` to `path` atomically: a reader sees the old or the new file, never a mix.
pub fn save_json<T: Serialize>(path: &Path, value: &T, durability: Durability) -> Result<()> {
    let dir =
        path.parent().ok_or_else(|| Error::Record { path: path.to_owned(), reason: "no parent directory".into() })?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("record")));
    let json = seal(value).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })?;
    let write = || -> std::io::Result<()> {
        let mut f = super::perm::private_file().write(true).create(true).truncate(true).open(&tmp)?;
        super::perm::narrow(&f, &f.metadata()?)?;
        f.write_all(&json)?;
        if durability == Durability::Durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        match durability {
            Durability::Durable => std::fs::File::open(dir)?.sync_all(),
            Durability::Cached => Ok(()),
        }
    };
    write().map_err(|e| {
        crate::undo::log(
            "a failed record write: remove the temp file",
            crate::undo::missing_ok(std::fs::remove_file(&tmp)),
        );
        Error::io("write record", path)(e)
    })
}

/// Writes `value` to `path`, a new file in a directory no reader looks at yet (a volume made
/// aside), and forces it to disk when `durability` says so (else the intent journal covers it).
/// The directory is renamed into place later, and its parent synced then; no temporary file is
/// needed, so no inode beyond the record's own.
pub fn write_fresh<T: Serialize>(path: &Path, value: &T, durability: Durability) -> Result<()> {
    let json = seal(value).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })?;
    let write = || -> std::io::Result<()> {
        // A new file gets FILE_MODE (umask can only narrow it): nothing to tighten.
        let mut f = super::perm::private_file().write(true).create_new(true).open(path)?;
        f.write_all(&json)?;
        match durability {
            Durability::Durable => f.sync_all(),
            Durability::Cached => Ok(()),
        }
    };
    write().map_err(Error::io("write record", path))
}

/// Writes `value` into the empty file at `path` that a volume directory made ahead holds (see
/// `engine::pool`): no inode is made; the intent journal makes it durable. Opened without
/// `O_TRUNC`: on ext4 a truncation to nothing marks the file for writeback at its close
/// (`auto_da_alloc`), which made the close cost 40 µs of the call; anything past the record is
/// cut after it instead.
pub fn write_into<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = seal(value).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(&json)?;
        f.set_len(json.len() as u64)
    };
    write().map_err(Error::io("write record", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Volume {
        Volume {
            format: FORMAT,
            id: "v1".into(),
            name: "pvc-1".into(),
            backend: Kind::Loop,
            capacity: 1 << 30,
            fs_type: Some(FsType::Xfs),
            parameters: BTreeMap::from([("backend".into(), "loop".into())]),
            created_unix: 1,
            incarnation: None,
            staging: None,
            staging_in_record: false,
            publications: Vec::new(),
            marked: Vec::new(),
            node_state_found: false,
            source: Some(Source::Snapshot("s1".into())),
            grow_fs: true,
            omitted: Omitted { devices: 2, mounts: 0 },
            encryption: Some(crate::engine::encryption::for_new("v1")),
            copy: None,
        }
    }

    #[test]
    fn write_into_leaves_the_record_alone_in_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("volume.json");
        std::fs::write(&p, b"").unwrap();
        write_into(&p, &sample()).unwrap();
        assert_eq!(load(&p).unwrap(), Some(sample()));
        // Whatever a file held past the record would make it unreadable: it is cut.
        std::fs::write(&p, vec![b'}'; 8192]).unwrap();
        write_into(&p, &sample()).unwrap();
        assert_eq!(load(&p).unwrap(), Some(sample()));
    }

    #[test]
    fn round_trip_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        save_json(&p, &sample(), Durability::Durable).unwrap();
        assert_eq!(load(&p).unwrap(), Some(sample()));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("volume.json")]);
    }

    #[test]
    fn missing_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        assert_eq!(load(&p).unwrap(), None);
        std::fs::write(&p, b"{\"format\":1,").unwrap();
        assert!(matches!(load(&p), Err(Error::Record { .. })));
    }

    #[test]
    fn staging_is_read_from_an_older_record_but_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        let staging = Staging { path: "/s".into(), access: Access::Block, device: Some("/dev/loop3".into()) };
        let mut json = serde_json::to_value(sample()).unwrap();
        json["staging"] = serde_json::to_value(&staging).unwrap();
        std::fs::write(&p, json.to_string()).unwrap();
        let old = load(&p).unwrap().unwrap();
        assert_eq!(old.staging, Some(staging));
        assert!(old.staging_in_record);
        save_json(&p, &old, Durability::Durable).unwrap();
        assert!(!std::fs::read_to_string(&p).unwrap().contains("staging"));
    }

    #[test]
    fn a_kept_record_never_hides_a_change_or_damage_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        save_json(&p, &sample(), Durability::Cached).unwrap();
        assert_eq!(load(&p).unwrap(), Some(sample()));
        assert_eq!(load(&p).unwrap(), Some(sample()), "read again from the same bytes");
        let grown = Volume { capacity: 2 << 30, ..sample() };
        save_json(&p, &grown, Durability::Cached).unwrap();
        assert_eq!(load(&p).unwrap(), Some(grown), "new bytes are parsed anew");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("pvc-1", "pvc-2")).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        save_json(&p, &sample(), Durability::Cached).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(load(&p).unwrap(), None, "a removed record is gone, whatever was kept");
    }

    #[test]
    fn a_sized_read_gets_the_whole_file_whatever_its_size_was_said_to_be() {
        let text: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for said in [0, 1, 300, 4999, 5000, 5001, 1 << 30] {
            let got = read_sized(&mut std::io::Cursor::new(&text), said).unwrap();
            assert_eq!(got, text, "said {said}");
        }
        assert_eq!(read_sized(&mut std::io::Cursor::new(b""), 0).unwrap(), b"");
        assert_eq!(read_sized(&mut std::io::Cursor::new(b""), 10).unwrap(), b"");
    }

    #[test]
    fn a_record_file_is_read_whole_at_any_size_without_measuring_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        for size in [0, 1, 4095, 4096, 4097, 10_000, 100_000] {
            let text: Vec<u8> = (0..size).map(|i: u32| (i % 251) as u8).collect();
            std::fs::write(&p, &text).unwrap();
            assert_eq!(read_bytes(&p).unwrap().unwrap(), text, "{size} bytes");
        }
        std::fs::remove_file(&p).unwrap();
        assert_eq!(read_bytes(&p).unwrap(), None);
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        let mut v = sample();
        v.format = 3;
        save_json(&p, &v, Durability::Cached).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("format 3"), "{err}");
    }
}
