//! Whose the data root is. Volume ids embed the node's id (`<name>@<node>`), so the root records
//! the node id it was first served under (`<root>/identity.json`), and a later start under
//! another id is refused unless it asks to rename (`--rename-node`): a forgotten `--node-id`
//! would otherwise relabel every volume. And one server serves a root at a time: it holds
//! `<root>/server.lock` (an `flock`, released by the kernel when the process ends, however
//! it ends) and writes its pid and socket there, so a second server is refused by name.

pub use super::holder::Holder;

use super::record::{self, Durability};
use super::{Error, Result, perm};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The file recording the root's node id.
const IDENTITY: &str = "identity.json";
/// The lock a serving server holds (beside `locks/`, whose old files reconcile removes).
const SERVER_LOCK: &str = "server.lock";
const FORMAT: u32 = 1;

/// What the root records about its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    format: u32,
    node_id: String,
}

/// The root, held by this process until dropped (the process's end releases it too).
#[derive(Debug)]
pub struct RootClaim {
    _lock: File,
    /// What the claim did to the recorded node id.
    pub identity: IdentityChange,
}

/// What a claim found or did about the recorded node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityChange {
    /// The root records this node id already.
    Same,
    /// The root had no node id; this one is recorded now.
    Recorded,
    /// `--rename-node`: the root's volumes moved from the old node id to this one.
    Renamed { from: String, volumes: usize, snapshots: usize },
}

/// Claims `root` for a server of node `node_id` listening at `endpoint`: refused while another
/// live process holds it ([`Error::RootHeld`]) and, unless `rename`, when the root records
/// another node id ([`Error::NodeMismatch`]). Makes the root if it is missing.
pub fn claim(root: &Path, node_id: &str, endpoint: &str, rename: bool) -> Result<RootClaim> {
    perm::open_root(root)?;
    let lock = hold(root, &Holder { pid: std::process::id(), endpoint: endpoint.to_owned() })?;
    let identity = settle_identity(root, node_id, rename)?;
    Ok(RootClaim { _lock: lock, identity })
}

/// The node id the root records, if any (`strata-csi inspect` reads it).
pub fn recorded_node(root: &Path) -> Result<Option<String>> {
    Ok(record::load_json::<Identity>(&root.join(IDENTITY))?.map(|i| i.node_id))
}

/// The live server holding `root`, if one does (`strata-csi repair` names it).
pub fn holder(root: &Path) -> Result<Option<Holder>> {
    let path = root.join(SERVER_LOCK);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", &path)(e)),
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(None),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(Some(read_holder(&mut file))),
        Err(e) => Err(Error::io("lock", &path)(e.into())),
    }
}

/// Takes the server lock and writes `me` into it.
fn hold(root: &Path, me: &Holder) -> Result<File> {
    let path = root.join(SERVER_LOCK);
    let mut file = perm::private_file()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open", &path))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            return Err(Error::RootHeld { root: root.to_owned(), holder: read_holder(&mut file) });
        }
        Err(e) => return Err(Error::io("lock", &path)(e.into())),
    }
    let text = serde_json::to_string(me).map_err(|e| Error::Record { path: path.clone(), reason: e.to_string() })?;
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        f.write_all(text.as_bytes())
    };
    write(&mut file).map_err(Error::io("write", &path))?;
    Ok(file)
}

/// What a held lock's file says; a holder that wrote nothing yet (or garbage) shows pid 0.
fn read_holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or(Holder { pid: 0, endpoint: "(not yet written)".into() })
}

/// Checks, records or renames the root's node id.
fn settle_identity(root: &Path, node_id: &str, rename: bool) -> Result<IdentityChange> {
    let path = root.join(IDENTITY);
    let save =
        || record::save_json(&path, &Identity { format: FORMAT, node_id: node_id.to_owned() }, Durability::Durable);
    match recorded_node(root)? {
        None => save().map(|()| IdentityChange::Recorded),
        Some(had) if had == node_id => Ok(IdentityChange::Same),
        Some(had) if rename => {
            save()?;
            Ok(IdentityChange::Renamed {
                from: had,
                volumes: count(&root.join("volumes")),
                snapshots: count(&root.join("snapshots")),
            })
        }
        Some(had) => Err(Error::NodeMismatch { root: root.to_owned(), recorded: had, asked: node_id.to_owned() }),
    }
}

/// Entries of a directory that name a volume or a snapshot (not the hidden ones).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_records_the_node_and_another_node_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let c = claim(&root, "demo-node", "unix:///a.sock", false).unwrap();
        assert_eq!(c.identity, IdentityChange::Recorded);
        drop(c);
        assert_eq!(claim(&root, "demo-node", "unix:///a.sock", false).unwrap().identity, IdentityChange::Same);
        let err = claim(&root, "vm", "unix:///a.sock", false).unwrap_err();
        assert!(
            matches!(&err, Error::NodeMismatch { recorded, asked, .. } if recorded == "demo-node" && asked == "vm")
        );
        let msg = err.to_string();
        assert!(msg.contains("demo-node") && msg.contains("vm") && msg.contains("--rename-node"), "{msg}");
        assert_eq!(recorded_node(&root).unwrap().as_deref(), Some("demo-node"), "a refused start changes nothing");
    }

    #[test]
    fn a_rename_moves_the_volumes_and_says_how_many() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        drop(claim(&root, "old", "unix:///a.sock", false).unwrap());
        for v in ["a", "b", ".b.del"] {
            std::fs::create_dir(root.join("volumes").join(v)).unwrap();
        }
        let c = claim(&root, "new", "unix:///a.sock", true).unwrap();
        assert_eq!(c.identity, IdentityChange::Renamed { from: "old".into(), volumes: 2, snapshots: 0 });
        drop(c);
        assert_eq!(recorded_node(&root).unwrap().as_deref(), Some("new"));
        assert_eq!(claim(&root, "new", "unix:///a.sock", true).unwrap().identity, IdentityChange::Same);
    }

    #[test]
    fn a_second_claim_names_the_holder_until_it_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let first = claim(&root, "n", "unix:///first.sock", false).unwrap();
        assert_eq!(
            holder(&root).unwrap(),
            Some(Holder { pid: std::process::id(), endpoint: "unix:///first.sock".into() })
        );
        let err = claim(&root, "n", "unix:///second.sock", false).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())) && err.contains("unix:///first.sock"), "{err}");
        drop(first);
        assert_eq!(holder(&root).unwrap(), None);
        claim(&root, "n", "unix:///second.sock", false).unwrap();
    }
}
