//! Node state beside a volume's record: where the volume is staged (`node.json`) and where strata
//! published it (one marker per target under `published/`). Written without fsync: a reboot
//! voids node state anyway (mounts and loop devices do not survive it), and every marker is
//! checked against the kernel before it counts (see `engine::publications`).

use super::record::{self, Durability, Publication, Staging};
use super::{Error, Result};
use crate::backend::VolumeDir;
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The node state format this build writes and reads.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct NodeState {
    format: u32,
    staging: Staging,
}

/// The staging `node.json` records. Contents that do not parse count as "not staged": within one
/// boot every reader sees whole files (temp file and rename), so they can only be a write cut
/// short by a kernel crash or power loss, after which nothing is staged.
pub(super) fn load_staging(dir: &VolumeDir) -> Result<Option<Staging>> {
    let path = dir.node_state();
    match record::load_json::<NodeState>(&path) {
        Ok(Some(s)) if s.format == FORMAT => Ok(Some(s.staging)),
        Ok(Some(s)) => Err(Error::Record {
            path,
            reason: format!("node state format {} is not {FORMAT}; this strata is too old for it", s.format),
        }),
        Ok(None) => Ok(None),
        Err(Error::Record { path, reason }) => {
            tracing::warn!(path = %path.display(), %reason, "node state unreadable (cut short by a crash?); not staged");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Records where the volume is staged.
pub(super) fn save_staging(dir: &VolumeDir, staging: &Staging) -> Result<()> {
    let state = NodeState { format: FORMAT, staging: staging.clone() };
    record::save_json(&dir.node_state(), &state, Durability::Cached)
}

/// Forgets the staging; a volume that has none is fine.
pub(super) fn clear_staging(dir: &VolumeDir) -> Result<()> {
    remove_if_present(&dir.node_state())
}

/// Leaves a marker for a publication at `p.target`, written before the bind is made.
pub(super) fn mark(dir: &VolumeDir, p: &Publication) -> Result<()> {
    let published = dir.published();
    if let Err(e) = std::fs::create_dir(&published) {
        if e.kind() != ErrorKind::AlreadyExists {
            return Err(Error::io("create", &published)(e));
        }
    }
    let path = published.join(marker_name(&p.target));
    let json = serde_json::to_vec(p).map_err(|e| Error::Record { path: path.clone(), reason: e.to_string() })?;
    let write = || std::fs::File::create(&path)?.write_all(&json);
    write().map_err(Error::io("write publication marker", &path))
}

/// Removes the marker of the publication at `target`; a missing one (or volume) is fine.
pub(super) fn unmark(dir: &VolumeDir, target: &Path) -> Result<()> {
    remove_if_present(&dir.published().join(marker_name(target)))
}

/// Every marker: its file, and the publication it names (`None` when it does not parse, which
/// only a crash of the kernel mid-write leaves; the caller treats it as stale).
pub(super) fn markers(dir: &VolumeDir) -> Result<Vec<(PathBuf, Option<Publication>)>> {
    let published = dir.published();
    let entries = match std::fs::read_dir(&published) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", &published)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(Error::io("list", &published))?.path();
        let bytes = std::fs::read(&path).map_err(Error::io("read publication marker", &path))?;
        out.push((path, serde_json::from_slice(&bytes).ok()));
    }
    Ok(out)
}

/// Removes the node state files of a volume that is being deleted.
pub(super) fn remove_all(dir: &VolumeDir) -> Result<()> {
    clear_staging(dir)?;
    let published = dir.published();
    match std::fs::remove_dir_all(&published) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io("remove", &published)(e)),
        _ => Ok(()),
    }
}

pub(super) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// The marker file name of a target: 64-bit FNV-1a of the path, in hex (targets are longer
/// than a file name may be).
fn marker_name(target: &Path) -> String {
    let hash = target
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Access;

    fn dir() -> (tempfile::TempDir, VolumeDir) {
        let t = tempfile::tempdir().unwrap();
        let d = VolumeDir(t.path().to_owned());
        (t, d)
    }

    #[test]
    fn staging_round_trip_and_clear() {
        let (_t, d) = dir();
        assert_eq!(load_staging(&d).unwrap(), None);
        let s = Staging { path: "/k/g".into(), access: Access::Block, device: Some("/dev/loop7".into()) };
        save_staging(&d, &s).unwrap();
        assert_eq!(load_staging(&d).unwrap(), Some(s));
        clear_staging(&d).unwrap();
        clear_staging(&d).unwrap();
        assert_eq!(load_staging(&d).unwrap(), None);
    }

    #[test]
    fn a_torn_node_state_is_not_staged_and_a_newer_one_is_refused() {
        let (_t, d) = dir();
        std::fs::write(d.node_state(), b"{\"format\":1,\"stag").unwrap();
        assert_eq!(load_staging(&d).unwrap(), None);
        std::fs::write(d.node_state(), br#"{"format":2,"staging":{"path":"/s","access":{"type":"block"}}}"#).unwrap();
        assert!(load_staging(&d).unwrap_err().to_string().contains("format 2"));
    }

    #[test]
    fn markers_are_one_per_target() {
        let (_t, d) = dir();
        assert!(markers(&d).unwrap().is_empty());
        let a = Publication { target: "/pods/a/mount".into(), readonly: false, block: false };
        let b = Publication { target: "/pods/b/mount".into(), readonly: true, block: false };
        mark(&d, &a).unwrap();
        mark(&d, &b).unwrap();
        mark(&d, &a).unwrap();
        let mut found: Vec<_> = markers(&d).unwrap().into_iter().filter_map(|(_, p)| p).collect();
        found.sort_by(|x, y| x.target.cmp(&y.target));
        assert_eq!(found, vec![a.clone(), b.clone()]);
        unmark(&d, &a.target).unwrap();
        unmark(&d, &a.target).unwrap();
        assert_eq!(markers(&d).unwrap().into_iter().filter_map(|(_, p)| p).collect::<Vec<_>>(), vec![b]);
        std::fs::write(d.published().join("junk"), b"{").unwrap();
        assert!(markers(&d).unwrap().iter().any(|(f, p)| f.ends_with("junk") && p.is_none()));
        remove_all(&d).unwrap();
        assert!(!d.published().exists());
    }

    #[test]
    fn marker_names_differ_and_are_stable() {
        assert_eq!(marker_name(Path::new("")), "cbf29ce484222325");
        assert_ne!(marker_name(Path::new("/a/mount")), marker_name(Path::new("/b/mount")));
    }
}
