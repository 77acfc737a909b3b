//! Root tier, real kernel: encrypted volumes (`encryption: fscrypt`) through the real server.
//! An unstaged volume is ciphertext (no plaintext in the image, encrypted names in its
//! directory), a restage with the right key reads the data, a wrong key fails and leaves no key
//! in the keyring, snapshots and restores stay encrypted and need the same Secret, and no key
//! material reaches the log (at trace level), the records, inspect, metrics or an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod csi_support;
mod metrics_support;

use csi_support::*;
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use strata::csi::proto as p;
use strata::engine::encryption::{MasterKey, Secret};
use strata::sys::fscrypt::{self, KeyStatus};
use tonic::Code;

const KEY: &str = "7f3a9c2e51b84d06a1f0c3e9b27d4a58e6c1f09b3d72a4e8";
const WRONG: &str = "c4d9e2a7f06b3158d2e4a6c8b0f1e3d5a7c9b1d3e5f7a9c2";
const MARKER: &str = "STRATA-PLAINTEXT-MARKER-5b1d";
const NAME: &str = "plaintext-name-marker-93c4";

fn encrypted_loop() -> [(&'static str, &'static str); 2] {
    [("backend", "loop"), ("encryption", "fscrypt")]
}

fn secrets(key: &str) -> HashMap<String, String> {
    HashMap::from([("key".to_owned(), key.to_owned())])
}

fn keyed_stage(id: &str, staging: &str, key: &str) -> p::NodeStageVolumeRequest {
    p::NodeStageVolumeRequest { secrets: secrets(key), ..stage_req(id, staging, mount_cap()) }
}

/// A server whose log is at trace level: everything strata and its libraries say.
fn traced(s: &mut Server) {
    s.stop(Signal::SIGTERM);
    std::fs::write(&s.log, "").unwrap(); // the log starts again with this server's lines
    s.env = vec![("RUST_LOG".to_owned(), "trace".to_owned())];
    s.spawn();
}

/// The id of the key `key` derives for the volume first encrypted as `derivation_id`.
fn key_id(key: &str, derivation_id: &str) -> fscrypt::KeyId {
    MasterKey::derive(&Secret::new(key.as_bytes()).unwrap(), derivation_id).unwrap().id
}

/// The status of `id` in the keyring of the filesystem holding `dir`.
fn status(dir: &Path, id: &fscrypt::KeyId) -> KeyStatus {
    let f = std::fs::File::open(dir).unwrap();
    fscrypt::status(f.as_fd(), id).unwrap()
}

fn local(id: &str) -> &str {
    id.rsplit_once('@').unwrap().0
}

/// Whether `needle` occurs anywhere in `file` (grep over its bytes).
fn contains(file: &Path, needle: &str) -> bool {
    let st = Command::new("grep").args(["-q", "-a", "-F", needle]).arg(file).status().unwrap();
    assert!(st.code().is_some_and(|c| c <= 1), "grep failed on {}", file.display());
    st.success()
}

/// Writes the marker file into a published volume.
fn write_marker(target: &str) {
    std::fs::write(Path::new(target).join(NAME), MARKER.repeat(512)).unwrap();
    nix::unistd::sync();
}

/// Creates volume `name` with `params`, stages it with [`KEY`], publishes it and writes the
/// marker file; returns its id, staging and target.
async fn written(c: &mut Clients, s: &Server, name: &str, params: &[(&str, &str)]) -> (String, String, String) {
    let id = create(c, name, 64 << 20, params).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    c.node.node_stage_volume(keyed_stage(&id, &st, KEY)).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &st, &t, mount_cap())).await.unwrap();
    write_marker(&t);
    (id, st, t)
}

/// Stages and publishes with `key`, checks the marker reads back, and closes.
async fn reads_back(c: &mut Clients, id: &str, st: &str, t: &str, key: &str) {
    c.node.node_stage_volume(keyed_stage(id, st, key)).await.expect("stage with the right key");
    c.node.node_publish_volume(publish_req(id, st, t, mount_cap())).await.expect("publish");
    assert_eq!(std::fs::read_to_string(Path::new(t).join(NAME)).unwrap(), MARKER.repeat(512));
    close(c, id, st, t).await;
}

/// The names in `dir` and whether `name` can be read there (what root on the node sees).
fn seen_without_key(dir: &Path) -> (Vec<String>, bool) {
    let names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let readable = names.iter().any(|n| std::fs::read(dir.join(n)).is_ok());
    (names, readable)
}

/// A loop image mounted read-only at a scratch directory (mount's own loop device, autocleared).
struct RoMount(PathBuf);

impl RoMount {
    fn new(image: &Path, at: PathBuf) -> RoMount {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount").args(["-o", "ro,loop,noload"]).arg(image).arg(&at).status().unwrap();
        assert!(st.success(), "mount {} read-only", image.display());
        RoMount(at)
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstaged_loop_volume_is_ciphertext_and_only_its_key_opens_it() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let (id, st, t) = written(&mut c, &s, "pvc-enc", &encrypted_loop()).await;
    let listed: Vec<_> = std::fs::read_dir(&t).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(listed, [NAME], "the pod sees the encrypted directory, not the filesystem root");
    let right = key_id(KEY, local(&id));
    assert_eq!(status(Path::new(&st), &right), KeyStatus::Present);
    // A wrong key at the same staging: refused, and nothing of it reaches the keyring.
    let wrong = c.node.node_stage_volume(keyed_stage(&id, &st, WRONG)).await.unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    assert_eq!(status(Path::new(&st), &key_id(WRONG, local(&id))), KeyStatus::Absent);
    close(&mut c, &id, &st, &t).await;
    let image = s.root.join("volumes").join(local(&id)).join("disk.img");
    assert!(!contains(&image, MARKER) && !contains(&image, NAME), "plaintext in the image");
    {
        let ro = RoMount::new(&image, s.dir.path().join("ro"));
        let (names, readable) = seen_without_key(&ro.0.join("data"));
        assert_eq!(names.len(), 1);
        assert!(names[0] != NAME && !readable, "root without the key sees {names:?}, readable: {readable}");
    }
    let wrong = c.node.node_stage_volume(keyed_stage(&id, &st, WRONG)).await.unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    assert!(loops_under(&s.root).is_empty() && mount_at(&st).is_none(), "a wrong key leaves nothing attached");
    reads_back(&mut c, &id, &st, &t, KEY).await;
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_restore_stay_encrypted_and_need_the_same_secret() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let (id, st, t) = written(&mut c, &s, "pvc-src", &encrypted_loop()).await;
    let req = p::CreateSnapshotRequest { name: "snap".into(), source_volume_id: id.clone(), ..Default::default() };
    let snap = c.ctl.create_snapshot(req).await.unwrap().into_inner().snapshot.unwrap();
    close(&mut c, &id, &st, &t).await;
    let copy = s.root.join("snapshots").join(local(&snap.snapshot_id)).join("disk.img");
    assert!(!contains(&copy, MARKER) && !contains(&copy, NAME), "plaintext in the snapshot");
    let source = p::VolumeContentSource {
        r#type: Some(p::volume_content_source::Type::Snapshot(p::volume_content_source::SnapshotSource {
            snapshot_id: snap.snapshot_id.clone(),
        })),
    };
    let plain = p::CreateVolumeRequest {
        volume_content_source: Some(source.clone()),
        ..create_req("pvc-plain", 64 << 20, &[("backend", "loop")])
    };
    assert_eq!(c.ctl.create_volume(plain).await.unwrap_err().code(), Code::InvalidArgument);
    let restore = p::CreateVolumeRequest {
        volume_content_source: Some(source),
        ..create_req("pvc-r", 64 << 20, &encrypted_loop())
    };
    let r = c.ctl.create_volume(restore).await.unwrap().into_inner().volume.unwrap().volume_id;
    let wrong = c.node.node_stage_volume(keyed_stage(&r, &st, WRONG)).await.unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    reads_back(&mut c, &r, &st, &t, KEY).await;
    c.ctl
        .delete_snapshot(p::DeleteSnapshotRequest { snapshot_id: snap.snapshot_id, ..Default::default() })
        .await
        .unwrap();
    for v in [r, id] {
        c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: v, ..Default::default() }).await.unwrap();
    }
}

/// An ext4 filesystem made with `-O encrypt` on a loop device, mounted for a test's data root.
struct EncryptFs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl EncryptFs {
    fn new() -> EncryptFs {
        let dir = tempfile::tempdir().unwrap();
        let (image, mnt) = (dir.path().join("fs.img"), dir.path().join("mnt"));
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&image).unwrap().set_len(256 << 20).unwrap();
        let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(Command::new("mkfs.ext4").args(["-q", "-O", "encrypt"]).arg(&image));
        ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mnt));
        EncryptFs { _dir: dir, mnt }
    }
}

impl Drop for EncryptFs {
    fn drop(&mut self) {
        cleanup(&self.mnt.join("root"));
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dir_volume_on_an_encrypt_capable_root_locks_at_unstage() {
    require_root();
    // The sandbox's own root cannot encrypt: a dir volume asking for it is refused clearly.
    let plain = Server::start();
    let mut c = plain.clients().await;
    let refused = c.ctl.create_volume(create_req("pvc-d", 1 << 20, &[("encryption", "fscrypt")])).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("cannot"), "{}", refused.message());
    drop(plain);
    let fs = EncryptFs::new();
    let s = Server::start_as(NODE, Some(fs.mnt.join("root")), &[]);
    let mut c = s.clients().await;
    let (id, st, t) = written(&mut c, &s, "pvc-d", &[("encryption", "fscrypt")]).await;
    close(&mut c, &id, &st, &t).await;
    let vdir = s.root.join("volumes").join(local(&id));
    let (right, wrong_id) = (key_id(KEY, local(&id)), key_id(WRONG, local(&id)));
    assert_eq!(status(&vdir, &right), KeyStatus::Absent, "unstage removes the key");
    let (names, readable) = seen_without_key(&vdir.join("data"));
    assert!(names.len() == 1 && names[0] != NAME && !readable, "after unstage: {names:?}, readable: {readable}");
    let wrong = c.node.node_stage_volume(keyed_stage(&id, &st, WRONG)).await.unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    assert_eq!((status(&vdir, &right), status(&vdir, &wrong_id)), (KeyStatus::Absent, KeyStatus::Absent));
    assert!(mount_at(&st).is_none());
    reads_back(&mut c, &id, &st, &t, KEY).await;
    assert_eq!(status(&vdir, &right), KeyStatus::Absent);
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
}

/// Every place key material could leak to, as text: the log, the records and node state,
/// inspect's output, the metrics page.
fn everything_said(s: &Server, id: &str, metrics: &str) -> String {
    let mut all = s.log_text();
    for dir in ["volumes", "snapshots"] {
        for entry in walk(&s.root.join(dir)) {
            if entry.extension().is_some_and(|e| e == "json") || entry.ends_with(".node.json.next") {
                all.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
            }
        }
    }
    let inspect = Command::new(BIN).args(["inspect", "--root"]).arg(&s.root).arg(id).output().unwrap();
    let shown = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(shown.contains("key_identifier") && shown.contains("key_in_kernel"), "{shown}");
    all.push_str(&shown);
    all.push_str(&metrics_support::scrape(metrics));
    all
}

/// The files under `dir`, not following symlinks and never into volume data.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() && e.file_name() != "data" {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_material_in_logs_records_inspect_metrics_or_errors() {
    require_root();
    let mut s = Server::start_with(&["--metrics-address", "127.0.0.1:0"]);
    traced(&mut s);
    let metrics = metrics_support::metrics_address(&|| s.log_text());
    let mut c = s.clients().await;
    let id = create(&mut c, "pvc-quiet", 64 << 20, &encrypted_loop()).await;
    let (st, t) = (s.path("staging"), s.path("pods/a/vol"));
    std::fs::create_dir_all(s.path("pods/a")).unwrap();
    let mut errors = String::new();
    let short = c.node.node_stage_volume(keyed_stage(&id, &st, &KEY[..20])).await.unwrap_err();
    errors.push_str(short.message());
    c.node.node_stage_volume(keyed_stage(&id, &st, KEY)).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &st, &t, mount_cap())).await.unwrap();
    errors.push_str(c.node.node_stage_volume(keyed_stage(&id, &st, WRONG)).await.unwrap_err().message());
    let said = everything_said(&s, &id, &metrics) + &errors;
    close(&mut c, &id, &st, &t).await;
    let master = MasterKey::derive(&Secret::new(KEY.as_bytes()).unwrap(), local(&id)).unwrap();
    let hex: String = master.bytes().iter().map(|b| format!("{b:02x}")).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
    assert!(s.log_text().contains("TRACE") || s.log_text().contains("trace"), "the log is at trace level");
    for (what, secret) in
        [("the key", KEY), ("the wrong key", WRONG), ("the key's base64", &b64), ("the master key", &hex)]
    {
        assert!(!said.contains(secret), "{what} leaked:\n{said}");
        assert!(!said.contains(&secret[..16]), "part of {what} leaked");
    }
    assert!(said.contains(&master.id.hex()), "the identifier is shown (it is not secret)");
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unstage_while_files_are_open_says_so_and_its_retry_finishes() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let (id, st, t) = written(&mut c, &s, "pvc-busy", &encrypted_loop()).await;
    c.node.node_unpublish_volume(unpublish_req(&id, &t)).await.unwrap();
    // A process on the node still holds a file of the volume open.
    let held = std::fs::File::open(Path::new(&st).join("data").join(NAME)).unwrap();
    let busy = c.node.node_unstage_volume(unstage_req(&id, &st)).await.unwrap_err();
    assert_eq!(busy.code(), Code::FailedPrecondition, "{busy:?}");
    assert!(busy.message().contains("still open"), "{}", busy.message());
    assert_ne!(status(Path::new(&st), &key_id(KEY, local(&id))), KeyStatus::Present, "the key is gone at once");
    drop(held);
    c.node.node_unstage_volume(unstage_req(&id, &st)).await.unwrap();
    assert!(mount_at(&st).is_none() && loops_under(&s.root).is_empty());
    reads_back(&mut c, &id, &st, &t, KEY).await;
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_volume_grows_and_keeps_its_data() {
    require_root();
    let s = Server::start();
    let mut c = s.clients().await;
    let (id, st, t) = written(&mut c, &s, "pvc-grow", &encrypted_loop()).await;
    let grow = p::ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: Some(p::CapacityRange { required_bytes: 256 << 20, limit_bytes: 0 }),
        ..Default::default()
    };
    c.ctl.controller_expand_volume(grow).await.unwrap();
    let node_grow = p::NodeExpandVolumeRequest {
        volume_id: id.clone(),
        volume_path: t.clone(),
        capacity_range: Some(p::CapacityRange { required_bytes: 256 << 20, limit_bytes: 0 }),
        ..Default::default()
    };
    // Online where the driver may resize (CAP_SYS_RESOURCE; this sandbox withholds it): then
    // the filesystem follows at the next stage, offline, before the key is added.
    match c.node.node_expand_volume(node_grow).await {
        Ok(_) => assert!(fs_bytes(&t) > 200 << 20, "grown online to {} bytes", fs_bytes(&t)),
        Err(e) => assert!(e.message().contains("next staged"), "{e:?}"),
    }
    close(&mut c, &id, &st, &t).await;
    c.node.node_stage_volume(keyed_stage(&id, &st, KEY)).await.unwrap();
    c.node.node_publish_volume(publish_req(&id, &st, &t, mount_cap())).await.unwrap();
    assert!(fs_bytes(&t) > 200 << 20, "grown to {} bytes", fs_bytes(&t));
    assert_eq!(std::fs::read_to_string(Path::new(&t).join(NAME)).unwrap(), MARKER.repeat(512));
    std::fs::write(Path::new(&t).join("more"), vec![7u8; 100 << 20]).unwrap();
    close(&mut c, &id, &st, &t).await;
    c.ctl.delete_volume(p::DeleteVolumeRequest { volume_id: id, ..Default::default() }).await.unwrap();
}
