//! Full kubelet sequences per backend: init, two pods on one volume, unmounts, idempotent
//! unmount, mount again with the data still there. Root only; never skipped.

mod flex_support;

use flex_support::{World, kubelet_json};
use std::path::Path;

/// init → mount A → mount B → data in both → unmount A → unmount B → unmount B again →
/// mount C → data still there → unmount C. `user` are the PV's options.
fn sequence(w: &World, vol: &str, user: &[(&str, &str)]) {
    let init = w.run(&["init"]);
    init.ok();
    assert_eq!(
        init.json["capabilities"],
        serde_json::json!({"attach": false, "selinuxRelabel": true, "fsGroup": true,
                           "supportsMetrics": true, "requiresFSResize": true})
    );

    w.mount("pod-a", vol, "rw", user).ok();
    let a = w.pod_path("pod-a", vol);
    std::fs::write(a.join("hello.txt"), "from pod a").expect("write in pod a");

    w.mount("pod-b", vol, "rw", user).ok();
    let b = w.pod_path("pod-b", vol);
    assert_eq!(std::fs::read_to_string(b.join("hello.txt")).expect("read in pod b"), "from pod a");
    std::fs::write(b.join("reply.txt"), "from pod b").expect("write in pod b");
    assert_eq!(std::fs::read_to_string(a.join("reply.txt")).expect("read in pod a"), "from pod b");
    assert_eq!(w.mounts_at(&w.staging(vol)), 1, "one staging per node, shared: {:#?}", w.mounts());
    assert_eq!((w.mounts_at(&a), w.mounts_at(&b)), (1, 1));

    w.unmount("pod-a", vol).ok();
    assert!(!a.exists(), "unmount leaves the pod dir removed");
    assert_eq!(std::fs::read_to_string(b.join("hello.txt")).expect("pod b still reads"), "from pod a");
    assert_eq!(w.mounts_at(&w.staging(vol)), 1, "pod b still uses the staging");

    let last = w.unmount("pod-b", vol);
    last.ok();
    assert!(last.message().contains("unstaged"), "{last:?}");
    assert_eq!(w.node_mounts(), Vec::<String>::new(), "the last unmount unstages");
    assert_eq!(w.loops(), Vec::<String>::new(), "the last unmount detaches");

    w.unmount("pod-b", vol).ok();
    w.unmount("pod-b", vol).ok();

    w.mount("pod-c", vol, "rw", user).ok();
    let c = w.pod_path("pod-c", vol);
    assert_eq!(std::fs::read_to_string(c.join("hello.txt")).expect("data survives"), "from pod a");
    assert_eq!(std::fs::read_to_string(c.join("reply.txt")).expect("data survives"), "from pod b");
    w.unmount("pod-c", vol).ok();
}

#[test]
fn dir_volume_full_sequence() {
    let w = World::new();
    sequence(&w, "pv-dir", &[("backend", "dir"), ("size", "64Mi")]);
    w.finish();
}

#[test]
fn default_backend_is_dir() {
    let w = World::new();
    sequence(&w, "pv-default", &[]);
    let record = std::fs::read_to_string(w.root.join("volumes/pv-default/volume.json")).expect("record");
    assert!(record.contains("\"backend\": \"dir\""), "{record}");
    w.finish();
}

#[test]
fn loop_ext4_full_sequence() {
    let w = World::new();
    sequence(&w, "pv-loop-ext4", &[("backend", "loop"), ("size", "64Mi")]);
    assert_fs(&w, "pv-loop-ext4", "ext4");
    w.finish();
}

#[test]
fn loop_xfs_full_sequence() {
    let w = World::new();
    // kubernetes.io/fsType comes from the PV's fsType; a user option may override it, as here.
    sequence(&w, "pv-loop-xfs", &[("backend", "loop"), ("size", "300Mi"), ("kubernetes.io/fsType", "xfs")]);
    assert_fs(&w, "pv-loop-xfs", "xfs");
    w.finish();
}

#[test]
fn tmpfs_full_sequence() {
    let w = World::new();
    sequence(&w, "pv-tmpfs", &[("backend", "tmpfs"), ("size", "16Mi")]);
    w.finish();
}

/// Mounts the volume once more and checks its filesystem type in the mount table.
fn assert_fs(w: &World, vol: &str, fs: &str) {
    w.mount("pod-fs", vol, "rw", &[]).ok();
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let staging = w.staging(vol);
    let line = table
        .lines()
        .find(|l| l.split(' ').nth(4) == staging.to_str())
        .unwrap_or_else(|| panic!("no staging mount: {table}"));
    assert!(line.contains(&format!(" - {fs} /dev/loop")), "{line}");
    w.unmount("pod-fs", vol).ok();
}

#[test]
fn read_only_pod_and_user_override_of_readwrite() {
    let w = World::new();
    let vol = "pv-ro";
    w.mount("writer", vol, "rw", &[]).ok();
    std::fs::write(w.pod_path("writer", vol).join("f"), "x").expect("rw pod writes");
    w.mount("reader", vol, "ro", &[]).ok();
    let err = std::fs::write(w.pod_path("reader", vol).join("g"), "y").expect_err("ro pod cannot write");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // The user's options win over kubelet's keys: readwrite "ro" makes a read-only mount.
    w.mount("forced", vol, "rw", &[("kubernetes.io/readwrite", "ro")]).ok();
    assert!(std::fs::write(w.pod_path("forced", vol).join("h"), "z").is_err());
    for pod in ["writer", "reader", "forced"] {
        w.unmount(pod, vol).ok();
    }
    w.finish();
}

#[test]
fn remount_of_a_mounted_pod_dir_is_idempotent() {
    let w = World::new();
    w.mount("p", "pv-again", "rw", &[("size", "1Mi")]).ok();
    w.mount("p", "pv-again", "rw", &[("size", "1Mi")]).ok();
    assert_eq!(w.mounts_at(&w.pod_path("p", "pv-again")), 1);
    w.unmount("p", "pv-again").ok();
    w.finish();
}

#[test]
fn kubelet_escapes_and_pod_keys_are_accepted() {
    let w = World::new();
    let dir = w.pod_dir("p", "pv-esc");
    let json = kubelet_json(&[
        &[("kubernetes.io/fsType", ""), ("kubernetes.io/pvOrVolumeName", "pv-esc"), ("kubernetes.io/readwrite", "rw")],
        &[("kubernetes.io/pod.name", "<web>&co"), ("kubernetes.io/mounterArgs.FsGroup", "2000")],
        &[("kubernetes.io/pod.namespace", "a<b>&c\u{2028}"), ("size", "1Mi")],
    ]);
    assert!(json.contains("\\u003cweb\\u003e\\u0026co") && json.contains("\\u2028"), "{json}");
    w.run(&["mount", dir.to_str().expect("utf-8"), &json]).ok();
    w.unmount("p", "pv-esc").ok();
    w.finish();
}

#[test]
fn volume_id_adopts_an_existing_volume() {
    let w = World::new();
    w.mount("first", "pv-origin", "rw", &[("size", "1Mi")]).ok();
    std::fs::write(w.pod_path("first", "pv-origin").join("f"), "shared").expect("write");
    // Another PV name, but volumeID names the existing volume: same data, same staging.
    w.mount("second", "pv-alias", "rw", &[("volumeID", "pv-origin")]).ok();
    assert_eq!(std::fs::read_to_string(w.pod_path("second", "pv-alias").join("f")).expect("read"), "shared");
    assert!(!w.root.join("volumes/pv-alias").exists(), "no volume under the PV name");
    // unmount only gets the dir, whose name is not the volume id: found through the records.
    w.unmount("second", "pv-alias").ok();
    w.unmount("first", "pv-origin").ok();
    w.finish();
}

#[test]
fn an_xfs_volume_of_64mi_is_raised_to_the_xfs_minimum() {
    let w = World::new();
    let vol = "pv-xfs-small";
    // mkfs.xfs refuses less than 300 MiB; the engine's size policy raises the size, as for CSI.
    let user = [("backend", "loop"), ("size", "64Mi"), ("kubernetes.io/fsType", "xfs")];
    w.mount("p", vol, "rw", &user).ok();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.root.join("volumes").join(vol).join("volume.json")).unwrap())
            .unwrap();
    assert_eq!(record["capacity"], 300u64 << 20, "{record}");
    let bytes = fs_bytes(&w.pod_path("p", vol));
    // xfs keeps its log out of statvfs: a 300 MiB xfs shows about 236 MiB.
    assert!(bytes > 200 << 20 && bytes <= 300 << 20, "an xfs of about 300 MiB: {bytes} bytes");
    w.unmount("p", vol).ok();
    assert_fs(&w, vol, "xfs");
    w.finish();
}

#[test]
fn a_failing_mkfs_is_reported_by_its_first_meaningful_line() {
    let w = World::new();
    let vol = "pv-xfs-shrunk";
    // A 64 MiB image under an xfs record (as an older strata could leave): mkfs.xfs refuses it.
    let engine = csi_engine(&w);
    let req = strata::engine::CreateRequest {
        id: vol.into(),
        name: vol.into(),
        backend: strata::backend::Kind::Loop,
        capacity: 300 << 20,
        fs_type: Some(strata::sys::FsType::Xfs),
        parameters: Default::default(),
    };
    engine.create_volume(&req).expect("create");
    let image = std::fs::OpenOptions::new().write(true).open(w.root.join("volumes").join(vol).join("disk.img"));
    image.expect("image").set_len(64 << 20).expect("shrink");
    let r = w.mount("p", vol, "rw", &[("backend", "loop"), ("kubernetes.io/fsType", "xfs")]);
    r.failed("mkfs.xfs failed on /dev/loop");
    assert!(r.message().contains(": Filesystem must be larger than 300MB. (and "), "{r:?}");
    assert!(!r.message().contains("blocksize") && !r.message().contains('\n'), "no usage text: {r:?}");
    assert_eq!((w.node_mounts(), w.loops()), (vec![], vec![]), "the failed mount leaves nothing behind");
    w.finish();
}

/// kube-controller-manager's `expandvolume` on its own host, which holds no volume: Success,
/// and nothing made there (not even the data root).
fn expand_as_controller(json: &str, new: &str, old: &str) {
    let kcm = World::new();
    let r = kcm.run(&["expandvolume", json, "", new, old]);
    r.ok();
    assert!(r.message().contains("kubelet's expandfs grows"), "{r:?}");
    assert!(!kcm.root.exists(), "expandvolume made state on the controller's host");
    kcm.finish();
}

#[test]
fn expand_as_controller_then_kubelet_grows_a_mounted_xfs_filesystem() {
    let w = World::new();
    let vol = "pv-grow";
    // xfs, mounted: growing ext4 online needs CAP_SYS_RESOURCE, which this sandbox's root lacks.
    let user = [("backend", "loop"), ("size", "64Mi"), ("kubernetes.io/fsType", "xfs")];
    w.mount("p", vol, "rw", &user).ok();
    let dir = w.pod_path("p", vol);
    let before = fs_bytes(&dir);
    let json = w.mount_json("p", vol, "rw", &user);
    let (new, old) = ((1200u64 << 20).to_string(), (300u64 << 20).to_string());
    expand_as_controller(&json, &new, &old);
    assert_eq!(fs_bytes(&dir), before, "expandvolume changes nothing on the node");
    let staging = w.staging(vol);
    let mount_path = staging.to_str().expect("utf-8");
    let r = w.run(&["expandfs", &json, "/dev/loop-unused", mount_path, &new, &old]);
    assert!(r.ok().message().contains("has 1.2Gi (1258291200 bytes); its filesystem grew"), "{r:?}");
    let after = fs_bytes(&dir);
    assert!(after > before * 3, "filesystem grew from {before} to {after} bytes");
    w.run(&["expandfs", &json, "", mount_path, &new, &old]).ok();
    assert_eq!(fs_bytes(&dir), after, "a repeated expandfs changes nothing");
    w.unmount("p", vol).ok();
    w.finish();
}

fn fs_bytes(path: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).expect("statvfs");
    s.blocks() * s.fragment_size()
}

#[test]
fn unmount_of_missing_or_unmounted_dirs_succeeds() {
    let w = World::new();
    w.unmount("never", "pv-none").ok();
    let empty = w.pod_dir("empty", "pv-none");
    w.unmount("empty", "pv-none").ok();
    assert!(!empty.exists(), "an empty, unmounted pod dir is removed");
    w.finish();
}

#[test]
fn unmount_never_deletes_files_in_an_unmounted_dir() {
    let w = World::new();
    let dir = w.pod_dir("full", "pv-none");
    std::fs::write(dir.join("precious"), "data").expect("write");
    w.run(&["unmount", dir.to_str().expect("utf-8")]).failed("holds files");
    assert_eq!(std::fs::read_to_string(dir.join("precious")).expect("still there"), "data");
    w.finish();
}

#[test]
fn unmount_of_a_mount_no_volume_claims_leaves_it_alone() {
    let w = World::new();
    let dir = w.pod_dir("stray", "pv-stray");
    let src = w.tmp.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("theirs"), "data").expect("write");
    nix::mount::mount(Some(&src), &dir, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).expect("bind");
    w.run(&["unmount", dir.to_str().expect("utf-8")]).failed("no strata volume claims");
    assert_eq!(std::fs::read_to_string(dir.join("theirs")).expect("still mounted"), "data");
    nix::mount::umount2(&dir, nix::mount::MntFlags::empty()).expect("unmount by hand");
    w.run(&["unmount", dir.to_str().expect("utf-8")]).ok();
    assert!(!dir.exists());
    w.finish();
}

#[test]
fn expandfs_of_an_unmounted_ext4_volume_grows_it_at_the_next_mount() {
    let w = World::new();
    let vol = "pv-grow-ext4";
    let user = [("backend", "loop"), ("size", "64Mi")];
    w.mount("p", vol, "rw", &user).ok();
    let before = fs_bytes(&w.pod_path("p", vol));
    w.unmount("p", vol).ok();
    let json = w.mount_json("p", vol, "rw", &user);
    let (new, old) = ((256u64 << 20).to_string(), (64u64 << 20).to_string());
    expand_as_controller(&json, &new, &old);
    // Unstaged: the storage grows now and ext4 grows offline at the next stage (online ext4
    // growth needs CAP_SYS_RESOURCE, which this sandbox's root lacks).
    let r = w.run(&["expandfs", &json, "", w.staging(vol).to_str().expect("utf-8"), &new, &old]);
    assert!(r.ok().message().contains("grows at the next mount"), "{r:?}");
    let image = w.root.join("volumes").join(vol).join("disk.img");
    assert_eq!(std::fs::metadata(&image).expect("image").len(), 256 << 20, "the loop file grew");
    w.mount("p", vol, "rw", &user).ok();
    let after = fs_bytes(&w.pod_path("p", vol));
    assert!(after > before * 3, "filesystem grew from {before} to {after} bytes");
    w.unmount("p", vol).ok();
    w.finish();
}

#[test]
fn expandfs_grows_a_mounted_tmpfs() {
    let w = World::new();
    let vol = "pv-grow-tmpfs";
    let user = [("backend", "tmpfs"), ("size", "16Mi")];
    w.mount("p", vol, "rw", &user).ok();
    let dir = w.pod_path("p", vol);
    assert_eq!(fs_bytes(&dir), 16 << 20);
    let json = w.mount_json("p", vol, "rw", &user);
    let (new, old) = ((48u64 << 20).to_string(), (16u64 << 20).to_string());
    expand_as_controller(&json, &new, &old);
    w.run(&["expandfs", &json, "", w.staging(vol).to_str().expect("utf-8"), &new, &old]).ok();
    assert_eq!(fs_bytes(&dir), 48 << 20, "the pod sees the larger tmpfs");
    w.unmount("p", vol).ok();
    w.finish();
}

#[test]
fn unmount_finds_the_volume_from_the_mount_table_when_the_record_forgot_the_pod() {
    let w = World::new();
    let vol = "pv-forgot";
    // A dir name that is not the volume id, and a record that lists no publication.
    w.mount("p", "some-name", "rw", &[("volumeID", vol)]).failed("does not exist");
    w.mount("q", vol, "rw", &[("backend", "loop"), ("size", "16Mi")]).ok();
    w.mount("p", "some-name", "rw", &[("volumeID", vol)]).ok();
    let record = w.root.join("volumes").join(vol).join("volume.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).expect("read")).expect("parse");
    json.as_object_mut().expect("object").remove("publications");
    std::fs::write(&record, json.to_string()).expect("write");
    std::fs::write(w.pod_path("q", vol).join("f"), "still here").expect("write");
    w.unmount("p", "some-name").ok();
    assert_eq!(w.mounts_at(&w.pod_path("p", "some-name")), 0);
    // The record no longer knows pod q either, but q's bind keeps the staging in place.
    assert_eq!(w.mounts_at(&w.staging(vol)), 1, "pod q still uses the staging");
    assert_eq!(std::fs::read_to_string(w.pod_path("q", vol).join("f")).expect("q reads"), "still here");
    w.unmount("q", vol).ok();
    assert_eq!(w.node_mounts(), Vec::<String>::new());
    assert_eq!(w.loops(), Vec::<String>::new());
    w.finish();
}

#[test]
fn flex_locks_keep_one_file_whatever_the_volumes() {
    let w = World::new();
    let lock_files = || {
        let mut names: Vec<String> = std::fs::read_dir(w.root.join("locks/flex"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    w.mount("pod-a", "pv-locked", "rw", &[("backend", "dir")]).ok();
    w.unmount("pod-a", "pv-locked").ok();
    assert_eq!(lock_files(), ["ids.lock"], "every flex lock is a byte of one file");
    // A mount naming a volume that does not exist creates nothing.
    let r = w.mount("pod-b", "pv-other", "rw", &[("volumeID", "no-such-volume")]);
    r.failed("does not exist");
    assert_eq!(lock_files(), ["ids.lock"]);
    // DeleteVolume (here the engine's, as strata-csi calls it) leaves no lock file behind either.
    let engine = csi_engine(&w);
    engine.delete_volume("pv-locked").expect("delete");
    assert_eq!(lock_files(), ["ids.lock"]);
    w.finish();
}

/// The engine over the world's root, as strata-csi opens it (paths under the kubelet dir).
fn csi_engine(w: &World) -> strata::engine::Engine {
    let cfg =
        strata::engine::Config { allowed_prefixes: vec![w.kubelet.clone()], ..strata::engine::Config::new(&w.root) };
    strata::engine::Engine::new(cfg, std::sync::Arc::new(strata::sys::LinuxHost)).expect("engine")
}

#[test]
fn a_flex_mount_of_a_volume_the_csi_driver_staged_says_so_and_where() {
    let w = World::new();
    w.mount("pod-a", "pv-shared", "rw", &[("backend", "dir")]).ok();
    w.unmount("pod-a", "pv-shared").ok();
    let engine = csi_engine(&w);
    let csi_staging = w.kubelet.join("plugins/kubernetes.io/csi/strata.csi.dev/x/globalmount");
    std::fs::create_dir_all(csi_staging.parent().unwrap()).unwrap();
    let access = strata::engine::Access::Mount { flags: vec![] };
    engine.stage_volume("pv-shared", &csi_staging, &access).expect("CSI stage");
    let r = w.mount("pod-b", "pv-shared", "rw", &[("backend", "dir")]);
    r.failed("is staged by strata-csi at");
    assert!(r.message().contains(csi_staging.to_str().unwrap()), "{r:?}");
    engine.unstage_volume("pv-shared", &csi_staging).expect("CSI unstage");
    w.finish();
}

/// The other way round: a CSI stage of a volume a FlexVolume pod uses names strata-flex.
#[test]
fn a_csi_stage_of_a_volume_strata_flex_holds_says_so() {
    let w = World::new();
    w.mount("pod-a", "pv-held", "rw", &[("backend", "dir")]).ok();
    let engine = csi_engine(&w);
    let csi_staging = w.kubelet.join("plugins/kubernetes.io/csi/strata.csi.dev/y/globalmount");
    std::fs::create_dir_all(csi_staging.parent().unwrap()).unwrap();
    let access = strata::engine::Access::Mount { flags: vec![] };
    let err = engine.stage_volume("pv-held", &csi_staging, &access).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("volume pv-held is staged by strata-flex at") && msg.contains("FlexVolume"), "{msg}");
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::AlreadyExists, "the code operations.md names");
    w.unmount("pod-a", "pv-held").ok();
    w.finish();
}

#[test]
fn an_ext4_online_grow_refused_for_lack_of_cap_sys_resource_names_the_capability() {
    let w = World::new();
    let vol = "pv-grow-ext4";
    let user = [("backend", "loop"), ("size", "32Mi")];
    w.mount("p", vol, "rw", &user).ok();
    let json = w.mount_json("p", vol, "rw", &user);
    let staging = w.staging(vol);
    let (new, old) = ((64u64 << 20).to_string(), (32u64 << 20).to_string());
    // expandfs as kubelet calls it, in a process without CAP_SYS_RESOURCE (dropped here so that
    // the test means the same on machines whose root has it).
    let args = ["expandfs", &json, "", staging.to_str().unwrap(), &new, &old];
    let inner = w.command(&args);
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--inh-caps=-sys_resource", "--bounding-set=-sys_resource", "--"]).arg(inner.get_program());
    cmd.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let r = flex_support::parse_output(&cmd.output().expect("setpriv"));
    r.failed("CAP_SYS_RESOURCE");
    assert!(r.message().contains("Permission denied"), "{r:?}");
    w.unmount("p", vol).ok();
    w.finish();
}

#[test]
fn an_encrypted_loop_volume_opens_only_with_its_secret() {
    use base64::Engine as _;
    let w = World::new();
    let b64 = |k: &str| base64::engine::general_purpose::STANDARD.encode(k);
    let (key, wrong) =
        ("flex-volume-key-0f9e8d7c6b5a49382716a5b4c3d2e1f0", "flex-volume-key-but-not-the-right-one-123456789");
    let mount = |pod: &str, k: Option<&str>| {
        let secret = k.map(b64);
        let mut user = vec![("backend", "loop"), ("size", "64Mi"), ("encryption", "fscrypt")];
        user.extend(secret.as_deref().map(|s| ("kubernetes.io/secret/key", s)));
        w.mount(pod, "pv-enc", "rw", &user)
    };
    mount("pod-a", Some(key)).ok();
    let a = w.pod_path("pod-a", "pv-enc");
    std::fs::write(a.join("note.txt"), "FLEX-PLAINTEXT-MARKER").unwrap();
    w.unmount("pod-a", "pv-enc").ok();
    assert_eq!(w.loops(), Vec::<String>::new());
    let image = w.root.join("volumes/pv-enc/disk.img");
    let grep = std::process::Command::new("grep").args(["-q", "-a", "FLEX-PLAINTEXT-MARKER"]).arg(&image).status();
    assert_eq!(grep.unwrap().code(), Some(1), "plaintext in the image");
    mount("pod-b", Some(wrong)).failed("does not open it");
    mount("pod-b", None).failed("carries no secrets");
    assert_eq!((w.node_mounts(), w.loops()), (Vec::<String>::new(), Vec::<String>::new()));
    mount("pod-b", Some(key)).ok();
    let b = w.pod_path("pod-b", "pv-enc");
    assert_eq!(std::fs::read_to_string(b.join("note.txt")).unwrap(), "FLEX-PLAINTEXT-MARKER");
    w.unmount("pod-b", "pv-enc").ok();
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(!log.contains(key) && !log.contains(&b64(key)) && !log.contains(&b64(wrong)), "{log}");
    w.finish();
}

/// The options of the mount at `path`, from the kernel's table.
fn options_at(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let table = strata::sys::mountinfo::parse(&text);
    let m = table.iter().rev().find(|m| m.mount_point == path).expect("a mount at the pod dir");
    m.mount_options.clone()
}

#[test]
fn a_dir_volume_is_nodev_unless_its_options_allow_devices() {
    let w = World::new();
    w.mount("pod-a", "pv-nodev", "rw", &[("backend", "dir")]).ok();
    assert!(options_at(&w.pod_dir("pod-a", "pv-nodev")).iter().any(|o| o == "nodev"));
    w.mount("pod-b", "pv-dev", "rw", &[("backend", "dir"), ("devices", "allow")]).ok();
    assert!(!options_at(&w.pod_dir("pod-b", "pv-dev")).iter().any(|o| o == "nodev"), "devices: allow");
    w.mount("pod-c", "pv-bad", "rw", &[("backend", "loop"), ("devices", "allow")])
        .failed("devices: allow is for dir volumes");
    for (pod, pv) in [("pod-a", "pv-nodev"), ("pod-b", "pv-dev")] {
        w.unmount(pod, pv).ok();
    }
    w.finish();
}
