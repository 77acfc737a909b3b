//! `strata-csi migrate-pv` on real FlexVolume PV manifests (tests/migrate_pv_fixtures/): the
//! output parses, is a CSI PV of this driver (and passes scripts/validate-manifests, which CI
//! installs), foreign PVs are refused; and, as root, a volume written through `strata-flex`
//! (called as kubelet calls it) is read through `strata-csi` at the new PV's volumeHandle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flex_support;
mod packaging_support;

use packaging_support::{CSI_BIN, Serve, parse_docs, repo};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use strata::csi::convert::TOPOLOGY_KEY;
use strata::csi::volume_id::VolumeId;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/migrate_pv_fixtures").join(name)
}

fn migrate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(CSI_BIN)
        .arg("migrate-pv")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs migrate-pv, asserts success, and returns the CSI PVs and the notes.
#[track_caller]
fn migrated(args: &[&str]) -> (Vec<Value>, String) {
    let out = migrate(args, None);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "migrate-pv {args:?}: {stderr}");
    for line in stderr.lines() {
        assert!(line.starts_with("note: "), "stderr holds only notes: {line}");
    }
    let docs = parse_docs(&stdout);
    for pv in &docs {
        check_csi_pv(pv);
    }
    validate_with_schemas(&stdout);
    (docs, stderr)
}

/// The structure kube-apiserver and kubelet need from a CSI PV of strata.
#[track_caller]
fn check_csi_pv(pv: &Value) {
    assert_eq!(pv["apiVersion"], "v1");
    assert_eq!(pv["kind"], "PersistentVolume");
    assert!(pv["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty()));
    let spec = &pv["spec"];
    assert!(spec.get("flexVolume").is_none());
    assert!(spec["capacity"]["storage"].is_string());
    assert!(!spec["accessModes"].as_array().unwrap().is_empty());
    for mode in spec["accessModes"].as_array().unwrap() {
        assert!(mode == "ReadWriteOnce" || mode == "ReadWriteOncePod", "strata-csi serves single-node modes: {mode}");
    }
    let csi = &spec["csi"];
    assert_eq!(csi["driver"], "strata.csi.dev");
    let handle = csi["volumeHandle"].as_str().unwrap();
    assert!(VolumeId::parse(handle).is_some(), "{handle} is not a strata volume id");
    let term = &spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(term["key"], TOPOLOGY_KEY);
    assert_eq!(term["operator"], "In");
    let node = term["values"][0].as_str().unwrap();
    assert_eq!(VolumeId::parse(handle).unwrap().node_tag, strata::csi::volume_id::node_tag(node));
    for key in ["status", "uid", "resourceVersion", "creationTimestamp", "finalizers"] {
        assert!(pv.get(key).is_none() && pv["metadata"].get(key).is_none(), "{key} must not be carried over");
    }
}

/// Validates against the Kubernetes schemas with scripts/validate-manifests when its venv exists,
/// and always in CI (the script installs its pinned validator into the venv on first use).
fn validate_with_schemas(yaml: &str) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let venv = std::env::var_os("STRATA_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join("target/venv"));
    if !venv.join("bin/python").exists() && std::env::var_os("CI").is_none() {
        eprintln!(
            "note: {} is missing; run scripts/validate-manifests to check the output against the schemas",
            venv.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("csi-pv.yaml");
    std::fs::write(&file, yaml).unwrap();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(repo().join("scripts/validate-manifests")).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "schema validation failed:\n{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_pv_without_options_takes_its_node_from_the_affinity() {
    let (docs, notes) = migrated(&[fixture("bare.yaml").to_str().unwrap()]);
    let csi = &docs[0]["spec"]["csi"];
    assert_eq!(csi["volumeHandle"], "pv-bare@node-a");
    assert_eq!(csi["volumeAttributes"]["backend"], "dir");
    assert!(csi.get("fsType").is_none(), "a dir volume has no fs type");
    assert_eq!(docs[0]["spec"]["storageClassName"], "manual");
    assert!(notes.contains("no backend"), "{notes}");
}

#[test]
fn a_pv_with_options_keeps_volume_id_fs_type_and_mount_options() {
    let file = fixture("loop-options.yaml");
    // No nodeAffinity in this PV: the node must be given.
    let out = migrate(&[file.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node"), "{out:?}");
    let (docs, _) = migrated(&[file.to_str().unwrap(), "--node", "node-b"]);
    let spec = &docs[0]["spec"];
    assert_eq!(spec["csi"]["volumeHandle"], "db-data@node-b");
    assert_eq!(spec["csi"]["fsType"], "xfs");
    assert_eq!(spec["csi"]["volumeAttributes"], serde_json::json!({"backend": "loop", "fsType": "xfs", "size": "2Gi"}));
    assert_eq!(spec["mountOptions"], serde_json::json!(["noatime", "nodiscard"]));
    assert_eq!(spec["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(docs[0]["metadata"]["labels"]["app"], "db");
}

#[test]
fn secret_ref_read_only_and_read_only_many_are_carried_as_strata_csi_serves_them() {
    let (docs, notes) = migrated(&[fixture("secret-readonly.yaml").to_str().unwrap(), "--node", "node-a"]);
    let spec = &docs[0]["spec"];
    assert_eq!(spec["csi"]["readOnly"], true);
    assert_eq!(spec["accessModes"], serde_json::json!(["ReadWriteOnce"]));
    assert_eq!(spec["storageClassName"], "");
    assert!(spec["csi"].get("nodePublishSecretRef").is_none());
    assert!(notes.contains("secretRef apps/strata-creds dropped"), "{notes}");
    assert!(notes.contains("ReadOnlyMany became ReadWriteOnce"), "{notes}");
    assert!(notes.contains("reclaim policy Delete"), "{notes}");
}

#[test]
fn kubectl_json_output_loses_what_the_cluster_owns() {
    let (docs, notes) = migrated(&[fixture("kubectl-get.json").to_str().unwrap()]);
    let pv = &docs[0];
    assert_eq!(pv["spec"]["csi"]["volumeHandle"], "pv-web@node-a");
    assert_eq!(pv["spec"]["csi"]["fsType"], "ext4");
    assert_eq!(pv["spec"]["claimRef"], serde_json::json!({"namespace": "shop", "name": "web-data"}));
    assert_eq!(pv["metadata"]["annotations"], serde_json::json!({"strata.csi.dev/migrated-from": "strata/flex"}));
    assert!(notes.contains("shop/web-data"), "{notes}");
}

#[test]
fn lists_and_stdin_are_read() {
    let text = std::fs::read_to_string(fixture("list.yaml")).unwrap();
    let out = migrate(&["--node", "node-c"], Some(&text));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = parse_docs(&String::from_utf8(out.stdout).unwrap());
    let handles: Vec<&str> = docs.iter().map(|d| d["spec"]["csi"]["volumeHandle"].as_str().unwrap()).collect();
    assert_eq!(handles, ["pv-one@node-c", "pv-two@node-c"]);
    assert_eq!(docs[1]["spec"]["accessModes"], serde_json::json!(["ReadWriteOncePod"]));
    let (from_file, _) = migrated(&[fixture("list.yaml").to_str().unwrap(), "--node", "node-c"]);
    assert_eq!(from_file, docs);
}

#[test]
fn pvs_of_other_drivers_and_other_objects_are_refused_with_nothing_printed() {
    let cases = [
        (fixture("not-strata.yaml").to_str().unwrap().to_owned(), "FlexVolume driver \"k8s/nfs\""),
        (repo().join("deploy/examples/pvc-dir.yaml").to_str().unwrap().to_owned(), "PersistentVolumeClaim"),
        ("/nonexistent/pv.yaml".to_owned(), "cannot read"),
    ];
    for (file, want) in cases {
        let out = migrate(&[&file, "--node", "n"], None);
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert!(out.stdout.is_empty(), "{file}: nothing on stdout");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:") && err.contains(want), "{file}: {err}");
    }
    // A CSI PV (migrate-pv's own output) is not adopted twice.
    let first = migrate(&[fixture("bare.yaml").to_str().unwrap()], None);
    let out = migrate(&[], Some(&String::from_utf8(first.stdout).unwrap()));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CSI volume of driver \"strata.csi.dev\""));
}

/// The shipped FlexVolume example (a PV, its claim and a pod): the PV is converted, and the
/// claim and the pod are named as left out.
#[test]
fn the_shipped_example_converts_its_pv_and_names_the_rest() {
    let example = repo().join("deploy/flex/examples/pv-pvc-pod.yaml");
    let (docs, notes) = migrated(&[example.to_str().unwrap()]);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["csi"]["volumeHandle"], "flex-data@worker-1");
    assert!(notes.contains("left out: document 2 is a v1 PersistentVolumeClaim \"flex-data\""), "{notes}");
    assert!(notes.contains("left out: document 3 is a v1 Pod \"flex-writer\""), "{notes}");
}

// ---- root tier: flex writes, CSI reads -------------------------------------------------------

/// The flex PV of one root-tier case, as a manifest.
fn flex_pv(name: &str, fs_type: &str, read_only: bool, options: &[(&str, &str)]) -> String {
    let options: serde_json::Map<String, Value> =
        options.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "320Mi"},
            "accessModes": ["ReadWriteOnce"],
            "flexVolume": {"driver": "strata/flex", "fsType": fs_type, "readOnly": read_only,
                           "secretRef": {"name": "s"}, "options": options},
        }
    })
    .to_string()
}

/// strata-csi serving the flex world's root and kubelet dir as node `node-a`.
fn serve(w: &flex_support::World) -> Serve {
    let sock = w.tmp.path().join("csi.sock");
    let args: Vec<String> = [
        "serve",
        "--endpoint",
        &format!("unix://{}", sock.display()),
        "--node-id",
        "node-a",
        "--root",
        w.root.to_str().unwrap(),
        "--allowed-path-prefix",
        w.kubelet.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Serve::start(&args, &sock, &w.tmp.path().join("serve.log"))
}

/// Writes through strata-flex (mount as kubelet does, write, unmount), migrates the PV, and
/// reads the data back through strata-csi at the new PV's volumeHandle; then cleans up.
fn flex_then_csi(
    pv: &str,
    fs_type: &str,
    read_only: bool,
    options: &[(&str, &str)],
    pre: Option<(&str, &[(&str, &str)])>,
) {
    let w = flex_support::World::new();
    if let Some((name, opts)) = pre {
        // The volume a volumeID option names must exist: make it through its own PV first.
        w.mount("pod-0", name, "rw", opts).ok();
        w.unmount("pod-0", name).ok();
    }
    let mut user: Vec<(&str, &str)> = options.to_vec();
    if !fs_type.is_empty() {
        user.push(("kubernetes.io/fsType", fs_type));
    }
    w.mount("pod-a", pv, "rw", &user).ok();
    let data = format!("written by strata-flex into {pv}\n");
    std::fs::write(w.pod_path("pod-a", pv).join("data.txt"), &data).unwrap();

    let manifest = flex_pv(pv, fs_type, read_only, options);
    let out = migrate(&["--node", "node-a"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let csi_pv = parse_docs(&yaml).remove(0);
    check_csi_pv(&csi_pv);
    validate_with_schemas(&yaml);
    let csi = &csi_pv["spec"]["csi"];
    let handle = csi["volumeHandle"].as_str().unwrap().to_owned();
    let fs = csi["fsType"].as_str().unwrap_or("").to_owned();

    let server = serve(&w);
    let staging = w.kubelet.join(format!("plugins/kubernetes.io/csi/strata.csi.dev/{pv}/globalmount"));
    std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
    let stage =
        |s: &Serve| s.client(&["stage", &handle, "--staging-path", staging.to_str().unwrap(), "--fs-type", &fs]);
    // While strata-flex still has the volume staged, CSI cannot take it: stop the pods first.
    let busy = stage(&server);
    assert!(!busy.status.success(), "stage while flex holds it");
    assert!(String::from_utf8_lossy(&busy.stdout).contains("ALREADY_EXISTS"), "{busy:?}");
    w.unmount("pod-a", pv).ok();

    let staged = stage(&server);
    assert!(staged.status.success(), "{staged:?}\n{}", server.log_text());
    let target = w.kubelet.join(format!("pods/uid-csi/volumes/kubernetes.io~csi/{pv}/mount"));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let mut publish = vec!["publish", &handle, "--target-path", target.to_str().unwrap()];
    publish.extend(["--staging-path", staging.to_str().unwrap(), "--fs-type", &fs]);
    if csi["readOnly"] == true {
        publish.push("--readonly");
    }
    server.client_ok(&publish);
    assert_eq!(std::fs::read_to_string(target.join("data.txt")).unwrap(), data, "the data strata-flex wrote");
    let write = std::fs::write(target.join("more.txt"), "x");
    assert_eq!(write.is_err(), read_only, "readOnly: {read_only}: {write:?}");

    server.client_ok(&["unpublish", &handle, "--target-path", target.to_str().unwrap()]);
    server.client_ok(&["unstage", &handle, "--staging-path", staging.to_str().unwrap()]);
    drop(server);
    w.finish();
}

#[test]
fn root_a_dir_volume_written_through_flex_is_read_through_csi() {
    flex_then_csi("pv-mig-dir", "", false, &[("backend", "dir"), ("size", "64Mi")], None);
}

#[test]
fn root_a_read_only_dir_volume_stays_read_only_under_csi() {
    flex_then_csi("pv-mig-ro", "", true, &[("backend", "dir")], None);
}

#[test]
fn root_a_loop_ext4_volume_named_by_volume_id_is_read_through_csi() {
    let shared: &[(&str, &str)] = &[("backend", "loop"), ("size", "64Mi")];
    flex_then_csi(
        "pv-mig-alias",
        "",
        false,
        &[("backend", "loop"), ("volumeID", "vol-shared")],
        Some(("vol-shared", shared)),
    );
}

#[test]
fn root_a_loop_xfs_volume_written_through_flex_is_read_through_csi() {
    flex_then_csi("pv-mig-xfs", "xfs", false, &[("backend", "loop"), ("size", "320Mi")], None);
}
