use super::output::MIGRATED_FROM;
use super::*;
use serde_json::{Value, json};

fn one(input: &str, node: Option<&str>) -> (Value, output::Migrated) {
    let out = migrate(input, node, CSI_DRIVER).unwrap();
    let docs: Vec<Value> =
        serde_norway::Deserializer::from_str(&out.yaml).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    assert_eq!(docs.len(), 1, "{}", out.yaml);
    (docs[0].clone(), out)
}

const BARE: &str = "
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-bare
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  flexVolume:
    driver: strata/flex
";

#[test]
fn a_bare_pv_becomes_a_csi_pv_of_the_volume_named_after_it() {
    let (pv, out) = one(BARE, Some("node-1"));
    assert_eq!(
        pv,
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-bare", "annotations": {MIGRATED_FROM: "strata/flex"}},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "csi": {
                    "driver": "strata.csi.dev",
                    "volumeHandle": "pv-bare@node-1",
                    "volumeAttributes": {"backend": "dir"}
                },
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.strata.csi.dev/node", "operator": "In", "values": ["node-1"]}
                ]}]}}
            }
        })
    );
    assert_eq!(out.volumes[0].engine_id, "pv-bare");
    assert!(out.notes.iter().any(|n| n.contains("no backend")), "{:?}", out.notes);
}

const LOOP: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-loop
  labels: {app: db}
  annotations:
    pv.kubernetes.io/bound-by-controller: "yes"
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    team: "storage"
  uid: 1234
  resourceVersion: "99"
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local-flex
  mountOptions: [noatime]
  volumeMode: Filesystem
  claimRef: {namespace: shop, name: data, uid: abc, kind: PersistentVolumeClaim}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [worker-2]}
  flexVolume:
    driver: strata/flex
    fsType: xfs
    options: {backend: loop, size: 2Gi, volumeID: vol-db, mountOptions: "nodiscard,noatime"}
status: {phase: Bound}
"#;

#[test]
fn a_loop_pv_keeps_its_volume_id_fs_type_node_and_mount_options() {
    let (pv, out) = one(LOOP, None);
    let spec = &pv["spec"];
    assert_eq!(spec["csi"]["volumeHandle"], "vol-db@worker-2");
    assert_eq!(spec["csi"]["fsType"], "xfs");
    assert_eq!(spec["csi"]["volumeAttributes"], json!({"backend": "loop", "fsType": "xfs", "size": "2Gi"}));
    assert_eq!(spec["csi"].get("readOnly"), None);
    assert_eq!(spec["mountOptions"], json!(["noatime", "nodiscard"]));
    assert_eq!(spec["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(spec["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(spec["storageClassName"], "local-flex");
    assert_eq!(spec["volumeMode"], "Filesystem");
    assert_eq!(spec["claimRef"], json!({"namespace": "shop", "name": "data"}));
    assert_eq!(
        spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["worker-2"])
    );
    assert_eq!(pv["metadata"]["labels"], json!({"app": "db"}));
    assert_eq!(pv["metadata"]["annotations"], json!({"team": "storage", MIGRATED_FROM: "strata/flex"}));
    assert_eq!(pv.get("status"), None);
    assert_eq!(pv["metadata"].get("uid"), None);
    assert_eq!(out.volumes[0].node, "worker-2");
    assert!(out.notes.iter().any(|n| n.contains("ReadOnlyMany dropped")), "{:?}", out.notes);
    // --node that agrees with the affinity is fine; one that does not is refused.
    assert!(migrate(LOOP, Some("worker-2"), CSI_DRIVER).is_ok());
    let err = migrate(LOOP, Some("worker-3"), CSI_DRIVER).unwrap_err();
    assert!(matches!(err, Error::NodeConflict { .. }), "{err}");
}

#[test]
fn secret_ref_and_read_only_are_handled_and_said() {
    let input = BARE.replace(
        "    driver: strata/flex\n",
        "    driver: strata/flex\n    readOnly: true\n    secretRef: {name: creds, namespace: ns}\n    \
         options: {backend: dir, color: blue}\n",
    );
    let (pv, out) = one(&input, Some("n1"));
    assert_eq!(pv["spec"]["csi"]["readOnly"], true);
    assert_eq!(pv["spec"]["csi"].get("nodePublishSecretRef"), None);
    let notes = out.notes.join("\n");
    assert!(notes.contains("secretRef ns/creds dropped"), "{notes}");
    assert!(notes.contains("\"color\" dropped"), "{notes}");
}

#[test]
fn an_encrypted_volume_keeps_its_key_secret_as_the_stage_secret() {
    let input = BARE.replace(
        "    driver: strata/flex\n",
        "    driver: strata/flex\n    secretRef: {name: vol-key}\n    options: {backend: loop, encryption: fscrypt}\n",
    );
    let (pv, out) = one(&input, Some("n1"));
    let csi = &pv["spec"]["csi"];
    assert_eq!(csi["nodeStageSecretRef"]["name"], "vol-key");
    assert!(csi["nodeStageSecretRef"]["namespace"].is_string(), "{csi}");
    assert_eq!(csi["volumeAttributes"]["encryption"], "fscrypt");
    let notes = out.notes.join("\n");
    assert!(notes.contains("became nodeStageSecretRef") && !notes.contains("dropped;"), "{notes}");
}

#[test]
fn read_only_many_alone_becomes_a_read_only_single_node_pv_and_rwx_is_refused() {
    let rox = BARE.replace("[ReadWriteOnce]", "[ReadOnlyMany]");
    let (pv, _) = one(&rox, Some("n1"));
    assert_eq!(pv["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(pv["spec"]["csi"]["readOnly"], true);
    let rwx = BARE.replace("[ReadWriteOnce]", "[ReadWriteMany]");
    let err = migrate(&rwx, Some("n1"), CSI_DRIVER).unwrap_err().to_string();
    assert!(err.contains("ReadWriteMany"), "{err}");
}

#[test]
fn other_volumes_and_other_objects_are_refused() {
    let csi = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: a}\nspec:\n  capacity: {storage: 1Gi}\n  \
               accessModes: [ReadWriteOnce]\n  csi: {driver: strata.csi.dev, volumeHandle: a@n}\n";
    let host = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: b}\nspec:\n  capacity: {storage: 1Gi}\n  \
                hostPath: {path: /x}\n";
    let other = BARE.replace("strata/flex", "acme/nfs");
    let pvc = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {}\n";
    for (input, want) in [
        (csi, "CSI volume of driver \"strata.csi.dev\""),
        (host, "hostPath volume"),
        (other.as_str(), "FlexVolume driver \"acme/nfs\""),
        (
            pvc,
            "no PersistentVolume of strata/flex: document 1 is a v1 PersistentVolumeClaim \"c\", not a PersistentVolume",
        ),
        ("", "no PersistentVolume"),
        ("- a\n- b\n", "not an object"),
        ("{not yaml", "not YAML or JSON"),
    ] {
        let err = migrate(input, Some("n1"), CSI_DRIVER).unwrap_err().to_string();
        assert!(err.contains(want), "{err} lacks {want}");
    }
    // Beside a strata/flex PV, a foreign PV and a claim are left out and said so.
    let all = format!("{BARE}---\n{csi}---\n{pvc}");
    let out = migrate(&all, Some("n1"), CSI_DRIVER).unwrap();
    assert_eq!(out.volumes.len(), 1);
    let notes = out.notes.join("\n");
    assert!(notes.contains("left out: PV \"a\" does not use strata/flex"), "{notes}");
    assert!(notes.contains("left out: document 3 is a v1 PersistentVolumeClaim \"c\""), "{notes}");
    // A strata/flex PV that cannot be read still refuses the whole input.
    let broken = BARE.replace("[ReadWriteOnce]", "[ReadWriteMany]");
    assert!(migrate(&format!("{broken}---\n{pvc}"), Some("n1"), CSI_DRIVER).is_err());
}

#[test]
fn json_lists_and_several_documents_are_read() {
    let pv = |name: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
               "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                        "flexVolume": {"driver": "strata/flex", "options": {"backend": "tmpfs"}}}})
    };
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [pv("a"), pv("b")]}).to_string();
    let out = migrate(&list, Some("n1"), CSI_DRIVER).unwrap();
    assert_eq!(out.volumes.iter().map(|v| v.volume_handle.as_str()).collect::<Vec<_>>(), ["a@n1", "b@n1"]);
    assert_eq!(out.yaml.matches("---\n").count(), 1);
    assert!(out.notes.iter().any(|n| n.contains("tmpfs")));
    let docs = format!("{}\n---\n{}\n", pv("c"), pv("d"));
    let out = migrate(&docs, Some("n1"), CSI_DRIVER).unwrap();
    assert_eq!(out.volumes.len(), 2);
}

#[test]
fn the_node_comes_from_the_affinity_or_must_be_given() {
    let err = migrate(BARE, None, CSI_DRIVER).unwrap_err();
    assert!(matches!(err, Error::NoNode { .. }), "{err}");
    let two = BARE.replace(
        "  flexVolume:",
        "  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchFields:\n        \
         - {key: metadata.name, operator: In, values: [a, b]}\n  flexVolume:",
    );
    assert!(matches!(migrate(&two, None, CSI_DRIVER).unwrap_err(), Error::NoNode { .. }));
    assert_eq!(migrate(&two, Some("b"), CSI_DRIVER).unwrap().volumes[0].volume_handle, "pv-bare@b");
    // A node id that is not a short valid id gets a hashed tag, exactly as strata-csi computes it.
    let out = migrate(BARE, Some("Node_With_Caps.example.com"), CSI_DRIVER).unwrap();
    let tag = crate::csi::volume_id::node_tag("Node_With_Caps.example.com");
    assert_eq!(out.volumes[0].volume_handle, format!("pv-bare@{tag}"));
}

#[test]
fn ids_that_do_not_fit_a_csi_volume_id_and_bad_options_are_refused() {
    let long = BARE.replace(
        "    driver: strata/flex\n",
        &format!("    driver: strata/flex\n    options: {{volumeID: {}}}\n", "v".repeat(125)),
    );
    let err = migrate(&long, Some("node-1"), CSI_DRIVER).unwrap_err();
    assert!(matches!(err, Error::IdTooLong { len: 132, .. }), "{err}");
    for (options, want) in [
        ("{backend: zfs}", "backend"),
        ("{backend: loop}\n    fsType: btrfs", "fsType"),
        ("{volumeID: ../etc}", "volumeID"),
        ("{size: 1}", "only strings"),
    ] {
        let input =
            BARE.replace("    driver: strata/flex\n", &format!("    driver: strata/flex\n    options: {options}\n"));
        let err = migrate(&input, Some("n1"), CSI_DRIVER).unwrap_err().to_string();
        assert!(err.contains(want), "{options}: {err}");
    }
}

#[test]
fn an_options_override_of_fs_type_wins_as_in_kubelet() {
    let input = BARE.replace(
        "    driver: strata/flex\n",
        "    driver: strata/flex\n    fsType: ext4\n    options: {backend: loop, kubernetes.io/fsType: xfs}\n",
    );
    let (pv, _) = one(&input, Some("n1"));
    assert_eq!(pv["spec"]["csi"]["fsType"], "xfs");
}
