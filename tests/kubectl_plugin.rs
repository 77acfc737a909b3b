//! `kubectl-strata` against recorded API responses: a fake `kubectl` (`KUBECTL`) answers
//! `kubectl get -o json` with real object shapes (PVs of strata's CSI driver, of `strata/flex`,
//! of another driver and hostPath; PVCs; pods; CSIStorageCapacity; VolumeSnapshotContent) and
//! fails the ways kubectl fails (no cluster, Forbidden, no snapshot CRD, NotFound).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-strata");

/// One run of the plugin with the fake kubectl, its argv log and what it was asked to apply.
struct Run {
    out: Output,
    dir: tempfile::TempDir,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8(self.out.stdout.clone()).unwrap()
    }
    fn stderr(&self) -> String {
        String::from_utf8(self.out.stderr.clone()).unwrap()
    }
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default().lines().map(str::to_owned).collect()
    }
    fn applied(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("applied")).ok()
    }
    #[track_caller]
    fn ok(self) -> Run {
        assert!(self.out.status.success(), "exit {:?}\nstderr: {}", self.out.status, self.stderr());
        self
    }
    #[track_caller]
    fn fails(self, says: &str) -> Run {
        assert_eq!(self.out.status.code(), Some(1), "stdout: {}", self.stdout());
        assert!(self.stderr().contains(says), "stderr lacks {says:?}: {}", self.stderr());
        self
    }
}

fn fake() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubectl_fixtures/fake-kubectl")
}

fn plugin(args: &[&str], mode: &str) -> Run {
    plugin_with(&fake(), args, mode)
}

fn plugin_with(kubectl: &Path, args: &[&str], mode: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(args)
        .env("KUBECTL", kubectl)
        .env("FAKE_KUBECTL_LOG", dir.path().join("calls"))
        .env("FAKE_KUBECTL_APPLIED", dir.path().join("applied"))
        .env("FAKE_KUBECTL_MODE", mode)
        .output()
        .unwrap();
    Run { out, dir }
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap()
}

fn names(v: &serde_json::Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect()
}

#[test]
fn volumes_of_the_current_namespace_as_a_table() {
    let run = plugin(&["volumes", "--kubeconfig", "/home/me/.kube/prod", "--context", "prod"], "").ok();
    assert_eq!(
        run.stdout(),
        "\
NAME                                       KIND   NODE     BACKEND   SIZE    PHASE   CLAIM              PODS
pvc-3f6d2a1e-8c4b-4d3e-9a51-2b7c9e0f1a11   csi    node-a   loop      1Gi     Bound   shop/web-data      shop/web-7c9d8f6b5-x2x8q,shop/web-7c9d8f6b5-kq7zt
pv-legacy                                  flex   node-b   loop      256Mi   Bound   shop/legacy-data   shop/legacy-0
"
    );
    assert_eq!(
        run.calls(),
        [
            "--kubeconfig=/home/me/.kube/prod --context=prod get persistentvolumes -o json",
            "--kubeconfig=/home/me/.kube/prod --context=prod get persistentvolumeclaims -o json",
            "--kubeconfig=/home/me/.kube/prod --context=prod get pods -o json",
        ],
        "the user's flags reach every kubectl call"
    );
}

#[test]
fn volumes_of_all_namespaces_one_namespace_and_one_node() {
    let all = plugin(&["volumes", "-A", "-o", "json"], "").ok();
    let v = json(&all);
    assert_eq!(
        names(&v),
        ["pvc-3f6d2a1e-8c4b-4d3e-9a51-2b7c9e0f1a11", "pvc-77b1c0d4-2e6f-4a9b-8c3d-5e1f0a2b3c44", "pv-legacy", "pv-old"],
        "the ebs.csi.aws.com and hostPath PVs are not strata's"
    );
    let old = &v[3];
    assert_eq!(old["kind"], "flex");
    assert_eq!(old["node"], "node-a");
    assert_eq!(old["backend"], "dir", "strata-flex makes dir volumes when the options name no backend");
    assert_eq!(old["volume_id"], "old-data-vol");
    assert_eq!(old["phase"], "Released");
    assert_eq!(v[1]["pods"], serde_json::json!(["ci/runner-5f7b9-abcde"]));
    assert!(all.calls().iter().all(|c| !c.contains("persistentvolumeclaims")), "-A needs no claims");
    assert!(all.calls().contains(&"get pods --all-namespaces -o json".to_owned()));

    let ci = plugin(&["volumes", "-n", "ci", "-o", "json"], "").ok();
    assert_eq!(names(&json(&ci)), ["pvc-77b1c0d4-2e6f-4a9b-8c3d-5e1f0a2b3c44"]);
    assert!(ci.calls().contains(&"get persistentvolumeclaims --namespace=ci -o json".to_owned()));

    let b = plugin(&["volumes", "-A", "--node", "node-b", "-o", "yaml"], "").ok();
    let rows: serde_json::Value = serde_norway::from_str(&b.stdout()).unwrap();
    assert_eq!(names(&rows), ["pvc-77b1c0d4-2e6f-4a9b-8c3d-5e1f0a2b3c44", "pv-legacy"]);
}

#[test]
fn nodes_show_strata_capacity_per_storage_class_and_volume_counts() {
    let run = plugin(&["nodes"], "").ok();
    assert_eq!(
        run.stdout(),
        "\
NODE     STORAGECLASS       FREE     MAX VOLUME   VOLUMES
node-a   strata-dir         49.5Gi   49.5Gi       0
node-a   strata-flex        <none>   <none>       1
node-a   strata-loop-ext4   49.5Gi   49.5Gi       1
node-b   strata-dir         10Gi     10Gi         1
node-b   strata-flex        <none>   <none>       1
",
        "the ebs.csi.aws.com capacity of eu-west-1a is not strata's"
    );
    let v = json(&plugin(&["nodes", "-o", "json"], "").ok());
    assert_eq!(v[0]["free"], "53115920384", "json keeps the quantity as Kubernetes wrote it");
}

#[test]
fn snapshots_of_strata_only() {
    let run = plugin(&["snapshots"], "").ok();
    assert_eq!(
        run.stdout(),
        "\
NAME                                               SNAPSHOT                       SOURCE VOLUME                                     NODE     SIZE   READY   POLICY
snapcontent-4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d   shop/web-data-before-upgrade   pvc-3f6d2a1e-8c4b-4d3e-9a51-2b7c9e0f1a11@node-a   node-a   1Gi    true    Delete
"
    );
    let v = json(&plugin(&["snapshots", "-o", "json"], "").ok());
    assert_eq!(v[0]["restore_size"], 1073741824);
    assert_eq!(v.as_array().unwrap().len(), 1);
    plugin(&["snapshots"], "no-snapshot-crd")
        .fails("the cluster has no volumesnapshotcontents.snapshot.storage.k8s.io (is the CRD installed?)");
}

#[test]
fn migrate_prints_the_csi_pv_of_a_flex_pv() {
    let run = plugin(&["migrate", "pv/pv-legacy"], "").ok();
    let out = run.stdout();
    let doc = out.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let pv: serde_json::Value = serde_norway::from_str(&doc).unwrap();
    assert_eq!(pv["spec"]["csi"]["driver"], "strata.csi.dev");
    assert_eq!(pv["spec"]["csi"]["volumeHandle"], "pv-legacy@node-b");
    assert_eq!(pv["spec"]["csi"]["volumeAttributes"]["backend"], "loop");
    assert_eq!(run.calls(), ["get persistentvolume pv-legacy -o json"]);
    assert!(run.applied().is_none());
}

#[test]
fn migrate_refuses_other_drivers_missing_pvs_and_bound_pvs() {
    plugin(&["migrate", "pv/pvc-0a0b0c0d-1111-2222-3333-444455556666"], "").fails("does not use strata/flex");
    plugin(&["migrate", "pv/nope"], "").fails("not found: Error from server (NotFound)");
    plugin(&["migrate", "pvc/web-data"], "").fails("is not a PV: use pv/NAME");
    let bound =
        plugin(&["migrate", "pv/pv-legacy", "--apply"], "").fails("PV pv-legacy is Bound (its claim still exists)");
    assert_eq!(bound.calls(), ["get persistentvolume pv-legacy -o json"], "nothing deleted, nothing applied");
}

#[test]
fn migrate_apply_replaces_a_released_flex_pv() {
    let run = plugin(&["migrate", "pv/pv-old", "--apply"], "").ok();
    assert_eq!(run.calls(), ["get persistentvolume pv-old -o json", "delete pv pv-old --wait=true", "apply -f -"]);
    let applied = run.applied().unwrap();
    assert!(applied.contains("volumeHandle: \"old-data-vol@node-a\""), "{applied}");
    assert!(run.stdout().contains(&applied), "the CSI PV is printed before the flex PV is deleted");
    assert!(run.stdout().ends_with("persistentvolume \"pv-old\" deleted\npersistentvolume/pv-old created\n"));
    let failed = plugin(&["migrate", "pv/pv-old", "--apply"], "apply-fails");
    let failed = failed.fails("the FlexVolume PV pv-old was deleted but applying its CSI PV failed");
    assert!(failed.stdout().contains("volumeHandle: \"old-data-vol@node-a\""));
}

#[test]
fn no_cluster_no_permission_and_no_kubectl_are_errors() {
    for args in [&["volumes"][..], &["nodes"], &["snapshots"], &["migrate", "pv/pv-old"]] {
        let run = plugin(args, "no-cluster").fails("kubectl strata: error: cannot reach the cluster:");
        assert!(run.stderr().contains("connection refused"), "kubectl's reason is quoted: {}", run.stderr());
        assert!(run.stdout().is_empty());
        plugin(args, "forbidden").fails("no permission: Error from server (Forbidden): persistentvolumes is forbidden");
    }
    plugin_with(Path::new("/nonexistent/kubectl"), &["volumes"], "").fails("cannot run /nonexistent/kubectl");
}

/// kubectl without any kubeconfig tries localhost:8080; the plugin says what is missing.
#[test]
fn no_kubeconfig_is_said_plainly() {
    let home = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &std::ffi::OsStr)]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("volumes").env("KUBECTL", fake()).env("FAKE_KUBECTL_MODE", "no-kubeconfig").env_remove("KUBECONFIG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[("HOME", home.path().as_os_str())]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("kubectl strata: error: no kubeconfig found:") && err.contains("KUBECONFIG is not set"),
        "{err}"
    );
    assert!(!err.contains("memcache.go"), "{err}");
    // With a kubeconfig that points there, it is a cluster that cannot be reached.
    let cfg = home.path().join("config");
    std::fs::write(&cfg, "apiVersion: v1\nkind: Config\n").unwrap();
    let out = run(&[("HOME", home.path().as_os_str()), ("KUBECONFIG", cfg.as_os_str())]);
    assert!(String::from_utf8(out.stderr).unwrap().contains("cannot reach the cluster"));
}

/// A reader that stops early (`| head`) ends the plugin quietly.
#[test]
fn a_closed_stdout_ends_the_plugin_quietly() {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let out = Command::new(BIN)
        .args(["volumes", "-A", "-o", "json"])
        .env("KUBECTL", fake())
        .stdout(std::process::Stdio::from(writer))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `-o wide` and `-o name`, as `kubectl get` has them.
#[test]
fn wide_and_name_outputs_as_kubectl_has_them() {
    let wide = plugin(&["volumes", "-o", "wide"], "").ok().stdout();
    let header = wide.lines().next().unwrap();
    let columns: Vec<&str> = header.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(columns[7..], ["PODS", "STORAGECLASS", "VOLUME ID"], "{header}");
    assert!(wide.contains("pvc-3f6d2a1e-8c4b-4d3e-9a51-2b7c9e0f1a11@node-a"), "{wide}");
    let names = plugin(&["volumes", "-A", "-o", "name"], "").ok().stdout();
    assert_eq!(
        names,
        "persistentvolume/pvc-3f6d2a1e-8c4b-4d3e-9a51-2b7c9e0f1a11\npersistentvolume/pvc-77b1c0d4-2e6f-4a9b-8c3d-5e1f0a2b3c44\n\
         persistentvolume/pv-legacy\npersistentvolume/pv-old\n"
    );
    assert_eq!(plugin(&["nodes", "-o", "name"], "").ok().stdout(), "node/node-a\nnode/node-b\n");
    let snaps = plugin(&["snapshots", "-o", "wide"], "").ok().stdout();
    assert!(
        snaps.lines().next().unwrap().contains("POLICY") && snaps.lines().next().unwrap().ends_with("SNAPSHOT HANDLE")
    );
    let snap_names = plugin(&["snapshots", "-o", "name"], "").ok().stdout();
    assert!(snap_names.lines().all(|l| l.starts_with("volumesnapshotcontent/")) && !snap_names.is_empty());
}
