//! Volume records: one JSON file per volume, written atomically (temp, fsync, rename, fsync dir).

use super::{Error, Result};
use crate::backend::Kind;
use crate::sys::FsType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The record format this build writes and reads.
pub const FORMAT: u32 = 1;

/// How a volume is consumed: as a mounted filesystem or as a raw block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Access {
    Mount {
        /// Extra mount options for the stage mount (loop) or the bind (others).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flags: Vec<String>,
    },
    Block,
}

/// Where and how a volume is staged on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staging {
    pub path: PathBuf,
    pub access: Access,
    /// The loop device, for `loop` volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<PathBuf>,
}

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
    /// Where the volume is bound into pods. Never stored: [`crate::engine::Engine::get_volume`]
    /// fills it from the mount table, the only truth about what is mounted.
    #[serde(skip)]
    pub publications: Vec<Publication>,
    /// The snapshot or volume this volume was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The device grew (restore into a larger size) and the filesystem must follow at the next stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grow_fs: bool,
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
}

/// Reads a volume record; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Volume>> {
    load_json::<Volume>(path)?.map(|v| check_format(path, v.format).map(|()| v)).transpose()
}

/// Reads a snapshot record; `Ok(None)` when there is none.
pub fn load_snapshot(path: &Path) -> Result<Option<Snapshot>> {
    load_json::<Snapshot>(path)?.map(|v| check_format(path, v.format).map(|()| v)).transpose()
}

fn check_format(path: &Path, format: u32) -> Result<()> {
    if format == FORMAT {
        return Ok(());
    }
    let reason = format!("format {format} is not {FORMAT}; this strata is too old for it");
    Err(Error::Record { path: path.to_owned(), reason })
}

fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read record", path)(e)),
    };
    let value =
        serde_json::from_slice(&bytes).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })?;
    Ok(Some(value))
}

/// How far a record write must reach before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The new contents are on disk before the rename; after a power loss the old or the new
    /// record is there, whole. For node state (staged, published) that kubelet re-drives anyway.
    Atomic,
    /// Also the rename itself is on disk (directory fsync): for a volume's existence.
    Durable,
}

/// Writes `value` to `path` atomically: a reader sees the old or the new file, never a mix.
pub fn save_json<T: Serialize>(path: &Path, value: &T, durability: Durability) -> Result<()> {
    let dir =
        path.parent().ok_or_else(|| Error::Record { path: path.to_owned(), reason: "no parent directory".into() })?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("record")));
    let json =
        serde_json::to_vec_pretty(value).map_err(|e| Error::Record { path: path.to_owned(), reason: e.to_string() })?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        match durability {
            Durability::Durable => std::fs::File::open(dir)?.sync_all(),
            Durability::Atomic => Ok(()),
        }
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write record", path)(e)
    })
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
            staging: Some(Staging {
                path: "/s".into(),
                access: Access::Mount { flags: vec!["noatime".into()] },
                device: Some("/dev/loop3".into()),
            }),
            publications: Vec::new(),
            source: Some(Source::Snapshot("s1".into())),
            grow_fs: true,
        }
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
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("volume.json");
        let mut v = sample();
        v.format = 2;
        save_json(&p, &v, Durability::Atomic).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("format 2"), "{err}");
    }
}
