//! Fault injection at the host seam: for every operation and backend, the fake host fails the
//! Nth host call, for every N the operation makes; the operation either completes or leaves the
//! host (mounts, loop devices) and the records exactly as they were.

use super::tests::{Fixture, fixture_in, mount_access, req};
use super::*;
use crate::sys::{Host, MountOptions};
use std::collections::BTreeMap;
use std::path::Path;

/// What the host and the data root hold, with paths relative to the fixture's temp dir.
#[derive(Debug, PartialEq, Eq)]
struct World {
    mounts: Vec<String>,
    loops: Vec<String>,
    /// Each file's length and a digest of its contents; directories as `dir`.
    files: BTreeMap<String, String>,
    node_states: BTreeMap<String, String>,
}

fn summary(p: &Path) -> String {
    use sha2::Digest;
    if p.is_dir() {
        return "dir".into();
    }
    let bytes = std::fs::read(p).unwrap_or_default();
    let digest = sha2::Sha256::digest(&bytes);
    format!("{} bytes {:02x}{:02x}{:02x}{:02x}", bytes.len(), digest[0], digest[1], digest[2], digest[3])
}

/// What differs between two worlds, one line per difference.
fn diff(before: &World, after: &World) -> String {
    let mut out = Vec::new();
    if before.mounts != after.mounts {
        out.push(format!("mounts {:?} -> {:?}", before.mounts, after.mounts));
    }
    if before.loops != after.loops {
        out.push(format!("loops {:?} -> {:?}", before.loops, after.loops));
    }
    for (name, a, b) in [("file", &before.files, &after.files), ("node state", &before.node_states, &after.node_states)]
    {
        for k in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
            if a.get(k) != b.get(k) {
                out.push(format!("{name} {k}: {:?} -> {:?}", a.get(k), b.get(k)));
            }
        }
    }
    out.join("; ")
}

fn world(f: &Fixture) -> World {
    let base = f.root.parent().unwrap().to_owned();
    let rel = |p: &Path| p.strip_prefix(&base).unwrap_or(p).display().to_string();
    let mounts =
        f.host.mount_table().unwrap().iter().map(|m| format!("{} {}", rel(&m.mount_point), m.source)).collect();
    let loops = f.host.loop_list().unwrap().iter().map(|l| rel(&l.backing_file)).collect();
    let (mut files, mut node_states) = (BTreeMap::new(), BTreeMap::new());
    walk(&base, &mut |p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.starts_with(f.root.join("locks")) || name == ".node.json.next" {
            return;
        }
        if name == "node.json" {
            node_states.insert(rel(p), node_state_of(p));
            return;
        }
        files.insert(rel(p), summary(p));
    });
    // A volume without node state and one with an empty one are the same volume.
    node_states.retain(|_, v| v != "{}");
    World { mounts, loops, files, node_states }
}

/// A node state's meaning: its staging and publications, without checksum or format.
fn node_state_of(p: &Path) -> String {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("checksum");
    obj.remove("format");
    v.to_string()
}

fn walk(dir: &Path, each: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            each(&p);
            walk(&p, each);
        } else {
            each(&p);
        }
    }
}

type Step = fn(&Fixture) -> Result<()>;

struct Scenario {
    name: &'static str,
    kind: Kind,
    setup: Step,
    op: Step,
}

fn create(f: &Fixture, kind: Kind) -> Result<()> {
    f.engine.create_volume(&req("v", kind, 64 << 20)).map(drop)
}

fn stage(f: &Fixture) -> Result<()> {
    f.engine.stage_volume("v", &f.staging("v"), &mount_access())
}

fn publish(f: &Fixture, readonly: bool) -> Result<()> {
    let opts = MountOptions { readonly, options: vec!["nosuid".into(), "noatime".into()] };
    f.engine.publish_volume_with("v", &f.staging("v"), &f.target("a"), &opts)
}

fn snapshot(f: &Fixture) -> Result<()> {
    let r = SnapshotRequest { id: "s".into(), name: "s".into(), source_volume: "v".into() };
    f.engine.create_snapshot(&r).map(drop)
}

/// Every operation after the setup it needs, for one backend.
fn scenarios(kind: Kind) -> Vec<Scenario> {
    macro_rules! with_kind {
        ($k:expr, $($body:tt)*) => {{
            match $k {
                Kind::Dir => { const K: Kind = Kind::Dir; $($body)* }
                Kind::Loop => { const K: Kind = Kind::Loop; $($body)* }
                Kind::Tmpfs => { const K: Kind = Kind::Tmpfs; $($body)* }
                Kind::Btrfs => { const K: Kind = Kind::Btrfs; $($body)* }
            }
        }};
    }
    with_kind!(kind, {
        vec![
            Scenario { name: "create", kind: K, setup: |_| Ok(()), op: |f| create(f, K) },
            Scenario { name: "stage", kind: K, setup: |f| create(f, K), op: stage },
            Scenario {
                name: "publish",
                kind: K,
                setup: |f| create(f, K).and_then(|()| stage(f)),
                op: |f| publish(f, false),
            },
            Scenario {
                name: "publish read-only",
                kind: K,
                setup: |f| create(f, K).and_then(|()| stage(f)),
                op: |f| publish(f, true),
            },
            Scenario {
                name: "unpublish",
                kind: K,
                setup: |f| create(f, K).and_then(|()| stage(f)).and_then(|()| publish(f, false)),
                op: |f| f.engine.unpublish_volume("v", &f.target("a")),
            },
            Scenario {
                name: "unstage",
                kind: K,
                setup: |f| create(f, K).and_then(|()| stage(f)),
                op: |f| f.engine.unstage_volume("v", &f.staging("v")),
            },
            Scenario { name: "delete", kind: K, setup: |f| create(f, K), op: |f| f.engine.delete_volume("v") },
            Scenario {
                name: "expand",
                kind: K,
                setup: |f| create(f, K),
                op: |f| f.engine.expand_volume("v", 128 << 20).map(drop),
            },
            Scenario { name: "snapshot", kind: K, setup: |f| create(f, K), op: snapshot },
            Scenario {
                name: "snapshot staged",
                kind: K,
                setup: |f| create(f, K).and_then(|()| stage(f)),
                op: snapshot,
            },
            Scenario {
                name: "restore",
                kind: K,
                setup: |f| create(f, K).and_then(|()| snapshot(f)),
                op: |f| f.engine.create_volume_from(&req("r", K, 64 << 20), &Source::Snapshot("s".into())).map(drop),
            },
        ]
    })
}

/// Runs `s` with the Nth host call failing, for every N its successful run makes; returns the
/// failures that left something changed.
fn run(s: &Scenario) -> Vec<String> {
    let fixture = || {
        let f = fixture_in(&shm());
        f.staging("v"); // kubelet makes the staging and the target's parent before the calls
        f.target("a");
        f
    };
    let f = fixture();
    (s.setup)(&f).unwrap_or_else(|e| panic!("{} {:?}: setup: {e}", s.name, s.kind));
    let start = f.host.call_count();
    (s.op)(&f).unwrap_or_else(|e| panic!("{} {:?}: the operation fails without a fault: {e}", s.name, s.kind));
    let calls = f.host.call_count() - start;
    let mut bad = Vec::new();
    for n in 1..=calls {
        let f = fixture();
        (s.setup)(&f).unwrap();
        let before = world(&f);
        f.host.fail_nth(n);
        if let Err(e) = (s.op)(&f) {
            let after = world(&f);
            if after != before {
                bad.push(format!(
                    "{} {:?}, call {n} of {calls} failing ({e}): {}",
                    s.name,
                    s.kind,
                    diff(&before, &after)
                ));
            }
        }
    }
    bad
}

/// A tmpfs for the fixtures where the machine has one, else the usual temp dir.
fn shm() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm.to_owned() } else { std::env::temp_dir() }
}

fn check(kind: Kind) {
    let bad: Vec<String> = scenarios(kind).iter().flat_map(run).collect();
    assert!(bad.is_empty(), "{} failures:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn dir_operations_complete_or_change_nothing_whichever_host_call_fails() {
    check(Kind::Dir);
}

#[test]
fn loop_operations_complete_or_change_nothing_whichever_host_call_fails() {
    check(Kind::Loop);
}

#[test]
fn tmpfs_operations_complete_or_change_nothing_whichever_host_call_fails() {
    check(Kind::Tmpfs);
}

#[test]
fn btrfs_operations_complete_or_change_nothing_whichever_host_call_fails() {
    check(Kind::Btrfs);
}
