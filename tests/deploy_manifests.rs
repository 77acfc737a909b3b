//! Invariants of deploy/ that a typo would break: the socket the registrar registers is the one
//! the driver serves, the CSIDriver name is the one the binary reports (asked of a real
//! `strata-csi serve` started with the manifest's own arguments), Bidirectional propagation,
//! the privileged driver, pinned images, StorageClasses of this driver, the kustomizations, the
//! Dockerfile's paths, and the FlexVolume installer's layout (install.sh run into a temp dir).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod packaging_support;

use packaging_support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMESPACE: &str = "strata-system";
const KUBELET_PODS: &str = "/var/lib/kubelet/pods";
const KUBELET_PLUGINS: &str = "/var/lib/kubelet/plugins";
const DATA_ROOT: &str = "/var/lib/strata";
const FLEX_PLUGIN_DIR: &str = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec";

fn csi_driver_name(docs: &[Doc]) -> String {
    let drivers: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "CSIDriver").collect();
    assert_eq!(drivers.len(), 1);
    drivers[0].name().to_owned()
}

/// The unix socket path of a `unix://` endpoint argument.
fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or_else(|| panic!("{endpoint} is not unix://")))
}

/// The container's mount of pod volume `name`.
fn mount<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap_or_else(|| {
        panic!("container {} does not mount {name}", c["name"]);
    })
}

/// The pod volume whose hostPath is `host`, and the driver's mount of it.
fn mount_of_host_path<'a>(ds: &'a Value, c: &'a Value, host: &str) -> (&'a Value, &'a Value) {
    let vols = ds["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let vol = vols.iter().find(|v| v["hostPath"]["path"] == host).unwrap_or_else(|| panic!("no hostPath {host}"));
    (vol, mount(c, vol["name"].as_str().unwrap()))
}

#[test]
fn the_registrar_registers_the_socket_the_driver_serves() {
    let docs = manifests("kubernetes");
    let ds = find(&docs, "DaemonSet", "strata-node");
    let driver = container(ds, "strata-csi");
    let sock = socket_path(&setting("kubernetes", driver, "STRATA_ENDPOINT").unwrap());
    let sock_dir = sock.parent().unwrap();
    // The directory of the socket inside the pod is a hostPath volume...
    let socket_mount = driver["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == sock_dir)
        .expect("the driver's socket directory is a volume mount");
    let host_dir = volume(ds, socket_mount["name"].as_str().unwrap())["hostPath"]["path"].as_str().unwrap();
    // ...whose host path plus the socket's name is what kubelet is told to dial.
    let registrar = container(ds, "node-driver-registrar");
    let registered = arg(registrar, "--kubelet-registration-path").unwrap();
    assert_eq!(Path::new(registered), Path::new(host_dir).join(sock.file_name().unwrap()));
    let name = csi_driver_name(&docs);
    assert_eq!(host_dir, format!("{KUBELET_PLUGINS}/{name}"), "kubelet's convention: plugins/<driver name>");
    // Every sidecar talks to that same socket through the same volume.
    for c in ["csi-provisioner", "csi-snapshotter", "node-driver-registrar", "liveness-probe"] {
        let side = container(ds, c);
        assert_eq!(arg(side, "--csi-address").map(Path::new), Some(sock.as_path()), "{c}");
        assert_eq!(mount(side, socket_mount["name"].as_str().unwrap())["mountPath"], socket_mount["mountPath"], "{c}");
    }
    assert_eq!(volume(ds, "registration-dir")["hostPath"]["path"], "/var/lib/kubelet/plugins_registry");
    assert_eq!(mount(registrar, "registration-dir")["mountPath"], "/registration");
    // The controller pod's resizer and strata-csi share their socket too.
    let dep = find(&docs, "Deployment", "strata-controller");
    let ctl_sock = socket_path(&setting("kubernetes", container(dep, "strata-csi"), "STRATA_ENDPOINT").unwrap());
    for c in ["csi-resizer", "liveness-probe"] {
        assert_eq!(arg(container(dep, c), "--csi-address").map(Path::new), Some(ctl_sock.as_path()), "{c}");
    }
}

#[test]
fn the_driver_name_is_the_one_the_binary_reports_and_every_object_uses_it() {
    let docs = manifests("kubernetes");
    let name = csi_driver_name(&docs);
    for (workload_kind, workload) in [("DaemonSet", "strata-node"), ("Deployment", "strata-controller")] {
        let w = find(&docs, workload_kind, workload);
        let dir = tempfile::tempdir().unwrap();
        let fields = [("spec.nodeName", "node-1")];
        let (args, env, sock) = local_serve("kubernetes", container(w, "strata-csi"), &fields, dir.path());
        let server = Serve::start_with_env(&args, &env, &sock, &dir.path().join("serve.log"));
        let info = server.client_ok(&["info"]);
        assert_eq!(info["name"], name.as_str(), "{workload}: GetPluginInfo");
        assert_eq!(info["vendor_version"], env!("CARGO_PKG_VERSION"));
        if workload == "strata-node" {
            assert_eq!(info["node"]["node_id"], "node-1", "--node-id is the node name");
        }
    }
    let examples = manifests("examples");
    let all: Vec<&Doc> = docs.iter().chain(examples.iter()).collect();
    let mut classes = 0;
    for d in &all {
        match d.kind() {
            "StorageClass" => {
                classes += 1;
                assert_eq!(d.value["provisioner"], name.as_str(), "{}", d.name());
            }
            "VolumeSnapshotClass" => assert_eq!(d.value["driver"], name.as_str()),
            _ => {}
        }
    }
    assert_eq!(classes, 5, "four in the base, the encrypted one in examples");
    let inline = find(&examples, "Pod", "inline-scratch");
    assert_eq!(inline["spec"]["volumes"][0]["csi"]["driver"], name.as_str());
}

#[test]
fn the_node_serves_metrics_on_every_pod_address_at_the_port_its_annotations_name() {
    let docs = manifests("kubernetes");
    let ds = find(&docs, "DaemonSet", "strata-node");
    let driver = container(ds, "strata-csi");
    let addr = setting("kubernetes", driver, "STRATA_METRICS_ADDRESS").expect("the node serves metrics");
    let (host, port) = addr.rsplit_once(':').unwrap();
    assert_eq!(host, "", "every address of the pod (its pod IP among them), as the sidecars' :9809");
    let ports = driver["ports"].as_array().unwrap();
    let metrics = ports.iter().find(|p| p["name"] == "metrics").expect("a port named metrics");
    assert_eq!(metrics["containerPort"].to_string(), port);
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port);
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
}

#[test]
fn the_driver_is_privileged_and_its_mounts_reach_the_host() {
    let docs = manifests("kubernetes");
    let ds = find(&docs, "DaemonSet", "strata-node");
    let driver = container(ds, "strata-csi");
    assert_eq!(driver["securityContext"]["privileged"], true);
    for host in [KUBELET_PODS, KUBELET_PLUGINS, DATA_ROOT] {
        let (vol, m) = mount_of_host_path(ds, driver, host);
        assert_eq!(m["mountPropagation"], "Bidirectional", "{host}");
        assert_eq!(m["mountPath"], host, "{host}: kubelet's paths must mean the same inside the container");
        assert!(vol["hostPath"]["type"].is_string(), "{host}");
    }
    assert_eq!(mount_of_host_path(ds, driver, "/dev").1["mountPath"], "/dev");
    assert_eq!(setting("kubernetes", driver, "STRATA_ROOT").as_deref(), Some(DATA_ROOT));
    // Staging and target paths lie under the kubelet dir.
    let prefix = setting("kubernetes", driver, "STRATA_ALLOWED_PATH_PREFIX");
    assert_eq!(prefix.as_deref(), Some(Path::new(KUBELET_PODS).parent().unwrap().to_str().unwrap()));
    // Only the driver is privileged; no sidecar is, and only two hold an API token.
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["automountServiceAccountToken"], false);
    for c in spec["containers"].as_array().unwrap() {
        let n = c["name"].as_str().unwrap();
        if n != "strata-csi" {
            assert_ne!(c["securityContext"]["privileged"], true, "{n}");
        }
        let api = c["volumeMounts"].as_array().unwrap().iter().any(|m| m["name"] == "api-access");
        assert_eq!(api, n == "csi-provisioner" || n == "csi-snapshotter", "{n}");
    }
    let node_name = spec["containers"].as_array().unwrap().iter().filter_map(|c| c["env"].as_array()).flatten();
    for env in node_name.filter(|e| e["name"] == "NODE_NAME" || e["name"] == "STRATA_NODE_ID") {
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    }
    assert_eq!(setting("kubernetes", driver, "STRATA_NODE_ID").as_deref(), Some("node-1"), "the node's name");
}

#[test]
fn the_sidecars_run_in_the_modes_a_node_local_driver_needs() {
    let docs = manifests("kubernetes");
    let ds = find(&docs, "DaemonSet", "strata-node");
    let p = container(ds, "csi-provisioner");
    for (flag, want) in [
        ("--node-deployment", "true"),
        ("--strict-topology", "true"),
        ("--immediate-topology", "false"),
        ("--capacity-ownerref-level", "1"),
    ] {
        assert_eq!(arg(p, flag), Some(want), "{flag}");
    }
    assert!(strings(&p["args"]).contains(&"--enable-capacity"));
    let env: BTreeSet<&str> = p["env"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(env, BTreeSet::from(["NAMESPACE", "NODE_NAME", "POD_NAME"]));
    assert_eq!(find(&docs, "CSIDriver", &csi_driver_name(&docs))["spec"]["storageCapacity"], true);
    let s = container(ds, "csi-snapshotter");
    assert_eq!(arg(s, "--node-deployment"), Some("true"));
    assert!(!strings(&s["args"]).iter().any(|a| a.starts_with("--leader-election")), "refused with node-deployment");
    let dep = find(&docs, "Deployment", "strata-controller");
    assert_eq!(dep["spec"]["replicas"], 1);
    assert!(strings(&container(dep, "csi-resizer")["args"]).contains(&"--leader-election"));
    let spec = find(&docs, "CSIDriver", &csi_driver_name(&docs))["spec"].clone();
    assert_eq!(spec["attachRequired"], false);
    assert_eq!(spec["podInfoOnMount"], true);
    assert_eq!(spec["fsGroupPolicy"], "File");
    assert_eq!(spec["volumeLifecycleModes"], serde_json::json!(["Persistent", "Ephemeral"]));
}

/// Every image of every pod template and pod under deploy/.
fn images() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for d in manifests("") {
        let pod_spec = match d.kind() {
            "Pod" => &d.value["spec"],
            _ => &d.value["spec"]["template"]["spec"],
        };
        for list in ["containers", "initContainers"] {
            for c in pod_spec[list].as_array().into_iter().flatten() {
                out.push((d.file.clone(), c["image"].as_str().unwrap().to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_image_is_pinned_to_a_release() {
    let images = images();
    assert!(images.len() >= 15, "{images:?}");
    let want_sidecars = [
        "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0",
        "registry.k8s.io/sig-storage/csi-snapshotter:v8.6.0",
        "registry.k8s.io/sig-storage/csi-resizer:v2.2.1",
        "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0",
        "registry.k8s.io/sig-storage/livenessprobe:v2.19.0",
    ];
    let strata = format!("ghcr.io/strata-csi/strata:{}", env!("CARGO_PKG_VERSION"));
    for (file, image) in &images {
        let (repo, tag) = image.rsplit_once(':').unwrap_or_else(|| panic!("{}: {image} has no tag", file.display()));
        assert!(!repo.contains('@') && !tag.is_empty() && !tag.contains('/'), "{}: {image}", file.display());
        assert_ne!(tag, "latest", "{}: {image}", file.display());
        if repo.starts_with("registry.k8s.io/sig-storage/") {
            assert!(want_sidecars.contains(&image.as_str()), "{}: {image} is not the pinned release", file.display());
        }
        if repo.starts_with("ghcr.io/strata-csi/") {
            assert_eq!(image, &strata, "{}: the image tag follows Cargo.toml's version", file.display());
        }
    }
    let used: BTreeSet<&str> = images.iter().map(|(_, i)| i.as_str()).collect();
    for want in want_sidecars.iter().chain([&strata.as_str()]) {
        assert!(used.contains(want), "{want} is not used");
    }
}

#[test]
fn storage_classes_cover_every_backend_and_bind_where_the_pod_runs() {
    let docs = manifests("kubernetes");
    let ds = find(&docs, "DaemonSet", "strata-node");
    let backends = setting("kubernetes", container(ds, "strata-csi"), "STRATA_BACKENDS").unwrap();
    let enabled: BTreeSet<&str> = backends.split(',').collect();
    let mut backends = BTreeSet::new();
    for d in docs.iter().filter(|d| d.kind() == "StorageClass") {
        let sc = &d.value;
        assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer", "{}", d.name());
        assert_eq!(sc["allowVolumeExpansion"], true, "{}", d.name());
        let backend = sc["parameters"]["backend"].as_str().unwrap();
        assert!(strata::backend::Kind::parse(backend).is_some(), "{backend}");
        let fs = sc["parameters"]["csi.storage.k8s.io/fstype"].as_str();
        assert_eq!(fs.is_some(), backend == "loop", "{}: only loop volumes have a filesystem of their own", d.name());
        let want_name = match fs {
            Some(fs) => format!("strata-{backend}-{fs}"),
            None => format!("strata-{backend}"),
        };
        assert_eq!(d.name(), want_name);
        // btrfs needs a btrfs data root, so it is enabled per node (docs/operations.md).
        assert!(enabled.contains(backend) || backend == "btrfs", "{backend} is not enabled by --backends");
        backends.insert(backend.to_owned());
    }
    assert_eq!(backends, BTreeSet::from(["btrfs".into(), "dir".into(), "loop".into()]));
    // tmpfs serves CSI inline volumes.
    assert!(enabled.contains("tmpfs"));
}

#[test]
fn namespaced_objects_live_in_strata_system_and_rbac_names_real_subjects() {
    let docs = manifests("kubernetes");
    let cluster_scoped = [
        "Namespace",
        "CSIDriver",
        "ClusterRole",
        "ClusterRoleBinding",
        "StorageClass",
        "VolumeSnapshotClass",
        "VolumeGroupSnapshotClass",
    ];
    let accounts: BTreeSet<&str> = docs.iter().filter(|d| d.kind() == "ServiceAccount").map(Doc::name).collect();
    for d in docs.iter().filter(|d| d.kind() != "Kustomization") {
        if cluster_scoped.contains(&d.kind()) {
            assert!(d.value["metadata"].get("namespace").is_none(), "{} {}", d.kind(), d.name());
        } else {
            assert_eq!(d.value["metadata"]["namespace"], NAMESPACE, "{} {}", d.kind(), d.name());
        }
        if d.kind().ends_with("Binding") {
            let role = &d.value["roleRef"];
            let want_kind = if d.kind() == "RoleBinding" { "Role" } else { "ClusterRole" };
            assert_eq!(role["kind"], want_kind);
            find(&docs, want_kind, role["name"].as_str().unwrap());
            for s in d.value["subjects"].as_array().unwrap() {
                assert_eq!(s["kind"], "ServiceAccount");
                assert_eq!(s["namespace"], NAMESPACE);
                assert!(accounts.contains(s["name"].as_str().unwrap()), "{s}");
            }
        }
        if let Some(sa) = d.value["spec"]["template"]["spec"]["serviceAccountName"].as_str() {
            assert!(accounts.contains(sa), "{sa}");
        }
    }
    assert_eq!(
        find(&docs, "Namespace", NAMESPACE)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn each_kustomization_lists_exactly_the_manifests_beside_it() {
    for sub in ["kubernetes", "kubernetes/snapshots", "flex"] {
        let dir = repo().join("deploy").join(sub);
        let k = parse_docs(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).remove(0);
        let listed: BTreeSet<String> = strings(&k["resources"]).into_iter().map(str::to_owned).collect();
        let present: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        assert_eq!(listed, present, "deploy/{sub}/kustomization.yaml");
    }
}

/// The objects `kubectl apply -k deploy/<sub>` creates: the kustomization's resources, following
/// directories (other kustomizations) and components.
fn rendered(sub: &Path) -> Vec<Value> {
    let dir = repo().join("deploy").join(sub);
    let k = parse_docs(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).remove(0);
    let mut out = Vec::new();
    for res in strings(&k["resources"]).into_iter().chain(strings(&k["components"])) {
        let path = dir.join(res);
        if path.is_dir() {
            out.extend(rendered(&sub.join(res)));
        } else {
            out.extend(parse_docs(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn the_base_installs_without_the_snapshot_crds_and_the_snapshot_step_adds_the_classes() {
    let base = rendered(Path::new("kubernetes"));
    assert!(base.iter().any(|o| o["kind"] == "DaemonSet"), "the base renders the driver");
    let crd = |o: &&Value| o["apiVersion"].as_str().unwrap().contains("snapshot.storage.k8s.io/");
    let crd_kinds: Vec<&Value> = base.iter().filter(crd).collect();
    assert!(crd_kinds.is_empty(), "the base needs the VolumeSnapshot CRDs: {crd_kinds:?}");
    let snapshots = rendered(Path::new("kubernetes/snapshots"));
    let added: Vec<&str> = snapshots.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(added, ["VolumeSnapshotClass", "VolumeGroupSnapshotClass", "ClusterRole", "ClusterRoleBinding"]);
    for class in snapshots.iter().filter(crd) {
        assert_eq!(class["driver"], "strata.csi.dev");
    }
    let ops = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(ops.contains("kubectl apply -k deploy/kubernetes/snapshots"), "operations.md documents the step");
}

/// strata-csi's settings reach it by name: no container argument but the subcommand, a
/// generated ConfigMap per workload whose every key is the variable of a serve flag (as `serve
/// --help` names them), and overlays (operations.md) that change a key, never an arg position.
#[test]
fn settings_come_by_name_and_overlays_patch_keys() {
    let docs = manifests("kubernetes");
    let help = Command::new(CSI_BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for (kind, name) in [("DaemonSet", "strata-node"), ("Deployment", "strata-controller")] {
        let c = container(find(&docs, kind, name), "strata-csi");
        assert_eq!(strings(&c["command"]), ["/usr/local/bin/strata-csi", "serve"], "{name}");
        assert!(c.get("args").is_none(), "{name}: settings as args");
        let from = c["envFrom"].as_array().unwrap();
        assert_eq!(from.len(), 1, "{name}");
        let config = generated_config("kubernetes", from[0]["configMapRef"]["name"].as_str().unwrap());
        assert!(config.len() >= 6, "{name}: {config:?}");
        let own = c["env"].as_array().into_iter().flatten().filter_map(|e| e["name"].as_str());
        for key in config.keys().map(String::as_str).chain(own) {
            assert!(help.contains(&format!("[env: {key}=")), "{name}: {key} is no serve setting");
        }
    }
    assert_eq!(generated_config("kubernetes", "strata-controller")["STRATA_CONTROLLER_ONLY"], "true");
    let ops = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(!ops.contains("/args/"), "operations.md patches an argument by position");
    assert!(ops.contains("behavior: merge") && ops.contains("- STRATA_BACKENDS=dir,loop,btrfs,tmpfs"), "the overlay");
}

/// The snapshot step's patch of the node's csi-snapshotter: the base's arguments, unchanged,
/// plus the group snapshot feature gate (external-snapshotter v8.6.0 has it off by default).
#[test]
fn the_snapshot_step_turns_group_snapshots_on_in_the_node_snapshotter_and_may_use_them() {
    let file = "deploy/kubernetes/snapshots/csi-snapshotter-group-snapshots.patch";
    let patch = parse_docs(&std::fs::read_to_string(repo().join(file)).unwrap()).remove(0);
    let ops = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(ops.contains(&format!("--patch-file {file}")), "operations.md documents the patch");
    let patched = container(&patch, "csi-snapshotter");
    let docs = manifests("kubernetes");
    let base = container(find(&docs, "DaemonSet", "strata-node"), "csi-snapshotter");
    let mut want = strings(&base["args"]);
    want.push("--feature-gates=CSIVolumeGroupSnapshot=true");
    assert_eq!(strings(&patched["args"]), want, "the base's arguments and the gate, nothing else");
    let step = rendered(Path::new("kubernetes/snapshots"));
    let role = step
        .iter()
        .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "strata-csi-snapshotter-groups")
        .unwrap();
    let resources: BTreeSet<&str> =
        role["rules"].as_array().unwrap().iter().flat_map(|r| strings(&r["resources"])).collect();
    let want = ["volumegroupsnapshotclasses", "volumegroupsnapshotcontents", "volumegroupsnapshotcontents/status"];
    assert_eq!(resources, BTreeSet::from(want));
    let binding = step
        .iter()
        .find(|o| o["kind"] == "ClusterRoleBinding" && o["roleRef"]["name"] == "strata-csi-snapshotter-groups")
        .unwrap();
    let sa = find(&docs, "DaemonSet", "strata-node")["spec"]["template"]["spec"]["serviceAccountName"].clone();
    assert_eq!(binding["subjects"][0]["name"], sa, "bound to the node's service account");
}

#[test]
fn one_drain_time_everywhere() {
    let secs = strata::program::csi::cli::DRAIN_SECONDS;
    let docs = manifests("kubernetes");
    for name in ["strata-node", "strata-controller"] {
        let workload = docs.iter().find(|d| d.name() == name).unwrap();
        let c = container(&workload.value, "strata-csi");
        assert_eq!(setting("kubernetes", c, "STRATA_DRAIN_SECONDS"), Some(secs.to_string()), "{name}");
        let grace = workload.value["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(grace > secs, "{name}: the grace period {grace} s must outlast the drain {secs} s");
        let text = std::fs::read_to_string(&workload.file).unwrap();
        assert!(text.contains(&format!("for up to {secs} s (--drain-seconds)")), "{name}'s comment");
    }
    let ops = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    assert!(ops.contains(&format!("for up to {secs} s")), "docs/operations.md states the drain time");
    let help = Command::new(CSI_BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains(&format!("[default: {secs}]")), "{help}");
}

#[test]
fn the_dockerfile_copies_what_make_static_builds_to_where_the_manifests_run_it() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let makefile = std::fs::read_to_string(repo().join("Makefile")).unwrap();
    assert!(dockerfile.lines().any(|l| l == "RUN make static"));
    assert!(makefile.contains("STATIC_DIR := target/static"));
    assert!(makefile.contains("BINARIES := strata-csi strata-flex"));
    assert!(makefile.contains("target-feature=+crt-static"));
    let workdir = dockerfile.lines().find_map(|l| l.strip_prefix("WORKDIR ")).unwrap();
    let mut dests = BTreeSet::new();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (src, dest) = (parts[parts.len() - 2], parts[parts.len() - 1]);
        if parts[1] == "--from=builder" {
            let bin = Path::new(src).file_name().unwrap().to_str().unwrap();
            assert_eq!(src, format!("{workdir}/target/static/{bin}"));
            assert_eq!(dest, format!("/usr/local/bin/{bin}"));
            dests.insert(dest.to_owned());
        } else if src.starts_with("deploy/") {
            assert!(repo().join(src).is_file(), "{src}");
            dests.insert(dest.to_owned());
        }
    }
    for pkg in ["e2fsprogs", "xfsprogs", "btrfs-progs", "util-linux"] {
        assert!(dockerfile.contains(pkg), "the runtime image lacks {pkg}");
    }
    // Every command the manifests run from strata's image is a file the image has.
    for d in manifests("") {
        for c in d.value["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten() {
            if c["image"].as_str().unwrap().starts_with("ghcr.io/strata-csi/") {
                let cmd = strings(&c["command"]);
                assert!(dests.contains(cmd[0]), "{}: {} is not in the image", d.file.display(), cmd[0]);
            }
        }
    }
    assert!(dests.contains("/usr/local/bin/strata-flex"));
}

#[test]
fn the_flex_installer_places_the_driver_and_its_settings_atomically() {
    let docs = manifests("flex");
    let ds = find(&docs, "DaemonSet", "strata-flex-installer");
    let c = container(ds, "install");
    assert_eq!(strings(&c["command"]), ["/usr/local/bin/strata-flex-install"]);
    let plugin_mount = mount(c, "plugin-dir")["mountPath"].as_str().unwrap();
    assert_eq!(arg(c, "--plugin-dir"), Some(plugin_mount));
    assert_eq!(volume(ds, "plugin-dir")["hostPath"]["path"], FLEX_PLUGIN_DIR);
    let script = repo().join("deploy/flex/install.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains(&format!("plugin_dir=${{FLEX_PLUGIN_DIR:-{FLEX_PLUGIN_DIR}}}")), "the script's default");
    let env: Vec<(String, String)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].as_str().unwrap().to_owned()))
        .collect();
    for (name, _) in &env {
        assert!(text.contains(&format!("${{{name}:-")), "install.sh does not read {name}");
    }

    // Run it as the DaemonSet does (its env, a plugin dir of our own) with the built binary.
    let tmp = tempfile::tempdir().unwrap();
    let plugin_dir = tmp.path().join("exec");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new("sh");
        // The test build is dynamically linked; the refusal of that is tested below.
        cmd.arg(&script)
            .args(["--plugin-dir", plugin_dir.to_str().unwrap(), "--source", FLEX_BIN, "--allow-dynamic"])
            .args(extra);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let driver_dir = plugin_dir.join("strata~flex");
    let exe = driver_dir.join("flex");
    assert_eq!(std::fs::read(&exe).unwrap(), std::fs::read(FLEX_BIN).unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&exe).unwrap().permissions().mode() & 0o777, 0o755);
    let names: BTreeSet<String> =
        std::fs::read_dir(&driver_dir).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["flex".to_owned(), ".strata-flex.json".to_owned()]), "no temp file left");
    // The settings are what the DaemonSet asked for, as strata-flex itself reads them.
    let cfg = strata::flex::config::load(Some(&exe), &|_| None).unwrap();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(cfg.root, PathBuf::from(get("FLEX_DATA_ROOT")));
    assert_eq!(cfg.kubelet_dir, PathBuf::from(get("FLEX_KUBELET_DIR")));
    assert_eq!(cfg.log_file, Some(PathBuf::from(get("FLEX_LOG_FILE"))));
    assert_eq!(cfg.log_level, get("FLEX_LOG_LEVEL"));
    assert_eq!(cfg.lock_wait.as_secs().to_string(), get("FLEX_LOCK_WAIT_SECONDS"));
    // kubelet's view: driver strata/flex is <plugin dir>/strata~flex/flex, and it answers init.
    let examples = manifests("flex/examples");
    let mut drivers = 0;
    for d in &examples {
        let spec = if d.kind() == "Pod" { &d.value["spec"]["volumes"][0] } else { &d.value["spec"] };
        if let Some(driver) = spec["flexVolume"]["driver"].as_str() {
            drivers += 1;
            let (vendor, name) = driver.split_once('/').unwrap();
            assert_eq!(plugin_dir.join(format!("{vendor}~{name}")).join(name), exe, "{driver}");
        }
    }
    assert_eq!(drivers, 2, "the PV example and the inline pod");
    let init = Command::new(&exe)
        .arg("init")
        .env("STRATA_FLEX_LOG", "off")
        .env("STRATA_FLEX_ROOT", tmp.path().join("root"))
        .env("STRATA_FLEX_KUBELET_DIR", tmp.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&init.stdout).contains("\"status\":\"Success\""));

    // Running it again changes nothing (kubelet re-probes on every write in the driver dir).
    let before = std::fs::metadata(&exe).unwrap().modified().unwrap();
    let again = run(&[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"), "{again:?}");
    assert_eq!(std::fs::metadata(&exe).unwrap().modified().unwrap(), before);

    // Settings strata-flex would refuse are refused before anything is replaced.
    let bad = run(&["--log-file", driver_dir.join("flex.log").to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("beside the driver"), "{bad:?}");
    for (flag, value) in [("--data-root", "relative"), ("--log-level", "loud"), ("--lock-wait", "soon")] {
        let out = run(&[flag, value]);
        assert!(!out.status.success(), "{flag} {value}");
    }
    let names_after: BTreeSet<String> =
        std::fs::read_dir(&driver_dir).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    assert_eq!(names_after, names);
    assert_eq!(strata::flex::config::load(Some(&exe), &|_| None).unwrap(), cfg);

    // Settings it is not given are kept: a hand edit survives the next install, and overcommit
    // (which the DaemonSet does not set) is one more setting it takes.
    let file = driver_dir.join(".strata-flex.json");
    let mut edited: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    edited["overcommit"] = serde_json::json!({"tmpfs": 2.0});
    edited["lock_wait_seconds"] = serde_json::json!(7);
    std::fs::write(&file, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let out = Command::new("sh")
        .arg(&script)
        .args(["--plugin-dir", plugin_dir.to_str().unwrap(), "--source", FLEX_BIN, "--allow-dynamic"])
        .args(["--log-level", "debug", "--overcommit", "loop=1.5,tmpfs=2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kept = strata::flex::config::load(Some(&exe), &|_| None).unwrap();
    assert_eq!(kept.lock_wait.as_secs(), 7, "the hand edit stays");
    assert_eq!((kept.log_level.as_str(), kept.root.clone()), ("debug", cfg.root.clone()));
    assert_eq!(kept.overcommit.permille(strata::backend::Kind::Loop), 1500);
    assert_eq!(kept.overcommit.permille(strata::backend::Kind::Tmpfs), 2000);
    let bad = run(&["--overcommit", "ram=2"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown backend"), "{bad:?}");
    assert_eq!(strata::flex::config::load(Some(&exe), &|_| None).unwrap(), kept, "a refused run changes nothing");

    // --uninstall removes the driver directory, and says so only when there was one.
    let out = run(&["--uninstall"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed strata/flex"), "{out:?}");
    assert!(!driver_dir.exists());
    let again = run(&["--uninstall"]);
    assert!(again.status.success());
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("not installed") && !said.contains("removed strata/flex"), "{said}");
}

fn install_sh(args: &[&str]) -> std::process::Output {
    Command::new("sh").arg(repo().join("deploy/flex/install.sh")).args(args).output().unwrap()
}

#[test]
fn the_flex_installer_refuses_a_binary_it_cannot_tell_is_static() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin_dir = tmp.path().join("exec");
    let base = ["--plugin-dir", plugin_dir.to_str().unwrap(), "--log-file", "off", "--source"];
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // The test build of strata-flex is dynamically linked (it has a PT_INTERP header).
    let dynamic = install_sh(&[&base[..], &[FLEX_BIN]].concat());
    assert!(!dynamic.status.success());
    assert!(stderr(&dynamic).contains("is dynamically linked") && stderr(&dynamic).contains("--allow-dynamic"));
    assert!(!plugin_dir.join("strata~flex/flex").exists(), "nothing installed");
    // Not an ELF at all: refused as unknown.
    let script = repo().join("deploy/flex/install.sh");
    let not_elf = install_sh(&[&base[..], &[script.to_str().unwrap()]].concat());
    assert!(stderr(&not_elf).contains("not a 64-bit little-endian ELF"), "{}", stderr(&not_elf));
    // A static-pie executable passes the check (and then fails init, not being strata-flex).
    let static_pie = Path::new("/sbin/ldconfig");
    assert!(static_pie.is_file(), "Debian's ldconfig (libc-bin) is the static-pie test subject");
    let out = install_sh(&[&base[..], &["/sbin/ldconfig"]].concat());
    assert!(!stderr(&out).contains("linked") && stderr(&out).contains("does not answer init"), "{}", stderr(&out));
    // With the flag the dynamic build installs.
    let ok = install_sh(&[&base[..], &[FLEX_BIN, "--allow-dynamic"]].concat());
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(plugin_dir.join("strata~flex/flex").is_file());
}

#[test]
fn the_flex_installer_help_is_text_not_shell() {
    let out = install_sh(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("Usage: install.sh [options]\n"), "{help}");
    for flag in ["--plugin-dir", "--source", "--allow-dynamic", "--uninstall", "--wait", "--help", "--overcommit"] {
        assert!(help.contains(flag), "--help omits {flag}");
    }
    for shell in ["set -eu", "sed ", "$(", "#"] {
        assert!(!help.contains(shell), "--help prints shell ({shell:?}): {help}");
    }
    let bad = install_sh(&["--frobnicate"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument --frobnicate"));
}
