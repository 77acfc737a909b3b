//! Building the CSI PV of an adopted FlexVolume PV, and the notes about what changed.

use super::error::Error;
use super::flex_pv::{self, FLEX_DRIVER, FlexPv};
use super::yaml::{self, Node};
use crate::backend::Kind;
use crate::csi::convert::{PARAM_BACKEND, TOPOLOGY_KEY};
use crate::csi::volume_id::{MAX_VOLUME_ID, VolumeId, node_tag};
use crate::engine::encryption::{FSCRYPT, PARAM_ENCRYPTION};
use crate::flex::options::{self, Options};

/// Annotation on the CSI PV that records where it came from.
pub const MIGRATED_FROM: &str = "strata.csi.dev/migrated-from";
/// The backend of a new flex volume whose options name none (strata-flex makes `dir` volumes).
const FLEX_DEFAULT_BACKEND: Kind = Kind::Dir;

/// The result of a migration: the CSI PVs as YAML, one line per change a person should know
/// about, and what each adopted volume became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub yaml: String,
    pub notes: Vec<String>,
    pub volumes: Vec<Adopted>,
}

/// One adopted volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The PV name (the same before and after).
    pub pv: String,
    /// The engine's id of the volume on its node.
    pub engine_id: String,
    /// The node that holds it.
    pub node: String,
    /// The CSI volume id: `<engine id>@<node tag>`.
    pub volume_handle: String,
}

/// Reads FlexVolume PVs of `strata/flex` from `text` and returns their CSI PVs for `driver`.
/// `node` names the node that holds the volumes, unless their nodeAffinity does.
pub fn migrate(text: &str, node: Option<&str>, driver: &str) -> Result<Migrated, Error> {
    let input = flex_pv::read(text)?;
    let mut docs = Vec::new();
    let mut notes: Vec<String> = input.left_out.iter().map(|d| format!("left out: {d}")).collect();
    let mut volumes = Vec::new();
    for pv in &input.pvs {
        let (doc, adopted) = convert(pv, node, driver, &mut notes)?;
        docs.push(yaml::to_string(&doc));
        volumes.push(adopted);
    }
    Ok(Migrated { yaml: docs.join("---\n"), notes, volumes })
}

/// The CSI PV of one flex PV.
fn convert(pv: &FlexPv, node: Option<&str>, driver: &str, notes: &mut Vec<String>) -> Result<(Node, Adopted), Error> {
    let opts = flex_options(pv)?;
    let node = owning_node(pv, node)?;
    let handle = volume_handle(pv, &opts, &node)?;
    let backend = opts.backend.unwrap_or(FLEX_DEFAULT_BACKEND);
    let fs_type = if backend.formats() {
        let fs =
            options::loop_fs_type(&opts.fs_type).map_err(|source| Error::Options { name: pv.name.clone(), source })?;
        Some(fs.as_str())
    } else {
        None
    };
    let mut read_only = pv.read_only;
    let access_modes = access_modes(pv, &mut read_only, notes)?;
    note_dropped(pv, &opts, backend, notes);
    let target = Target { driver, handle: &handle, backend, fs_type, read_only };
    let csi = csi_source(pv, &opts, &target, notes);
    let spec = spec(pv, &opts, access_modes, csi, &node, notes);
    let doc = Node::Map(vec![
        ("apiVersion".to_owned(), Node::str("v1")),
        ("kind".to_owned(), Node::str("PersistentVolume")),
        ("metadata".to_owned(), metadata(pv)),
        ("spec".to_owned(), spec),
    ]);
    let adopted = Adopted { pv: pv.name.clone(), engine_id: opts.id, node, volume_handle: handle };
    Ok((doc, adopted))
}

/// The CSI volume id of the PV's volume on `node`; an error if it would not be a valid one.
fn volume_handle(pv: &FlexPv, opts: &Options, node: &str) -> Result<String, Error> {
    let handle = VolumeId::new(&opts.id, &node_tag(node)).to_string();
    if handle.len() > MAX_VOLUME_ID || VolumeId::parse(&handle).is_none() {
        return Err(Error::IdTooLong { name: pv.name.clone(), len: handle.len(), id: handle });
    }
    Ok(handle)
}

/// What the CSI source of a PV says about its volume.
#[derive(Debug)]
struct Target<'a> {
    driver: &'a str,
    handle: &'a str,
    backend: Kind,
    /// The filesystem of a backend that formats its volumes.
    fs_type: Option<&'a str>,
    read_only: bool,
}

/// The PV's `spec.csi`: driver, handle, fs type, read-only, the stage secret of an encrypted
/// volume and the volume attributes (the StorageClass parameters that made such a volume).
fn csi_source(pv: &FlexPv, opts: &Options, target: &Target, notes: &mut Vec<String>) -> Node {
    let mut attributes = vec![(PARAM_BACKEND.to_owned(), Node::str(target.backend.as_str()))];
    if let Some(fs) = target.fs_type {
        attributes.push(("fsType".to_owned(), Node::str(fs)));
    }
    if let Some(size) = pv.options.get(options::SIZE) {
        attributes.push((options::SIZE.to_owned(), Node::str(size)));
    }
    let mut csi =
        vec![("driver".to_owned(), Node::str(target.driver)), ("volumeHandle".to_owned(), Node::str(target.handle))];
    if let Some(fs) = target.fs_type {
        csi.push(("fsType".to_owned(), Node::str(fs)));
    }
    if target.read_only {
        csi.push(("readOnly".to_owned(), Node::Bool(true)));
    }
    if let Some(secret) = stage_secret(pv, opts, notes) {
        attributes.push((PARAM_ENCRYPTION.to_owned(), Node::str(FSCRYPT)));
        csi.push(("nodeStageSecretRef".to_owned(), secret));
    }
    csi.push(("volumeAttributes".to_owned(), Node::Map(attributes)));
    Node::Map(csi)
}

/// The PV's `spec`: what the flex PV's spec said, with `csi` for its source and node affinity to
/// `node`.
fn spec(
    pv: &FlexPv,
    opts: &Options,
    access_modes: Vec<String>,
    csi: Node,
    node: &str,
    notes: &mut Vec<String>,
) -> Node {
    let mut spec = vec![
        ("capacity".to_owned(), Node::Map(pv.capacity.iter().map(|(k, v)| (k.clone(), Node::str(v))).collect())),
        ("accessModes".to_owned(), Node::List(access_modes.into_iter().map(Node::Str).collect())),
    ];
    if let Some(mode) = &pv.volume_mode {
        spec.push(("volumeMode".to_owned(), Node::str(mode)));
    }
    if let Some(policy) = &pv.reclaim_policy {
        spec.push(("persistentVolumeReclaimPolicy".to_owned(), Node::str(policy)));
    }
    if let Some(class) = &pv.storage_class {
        spec.push(("storageClassName".to_owned(), Node::str(class)));
    }
    let mount_options = mount_options(pv, opts);
    if !mount_options.is_empty() {
        spec.push(("mountOptions".to_owned(), Node::List(mount_options.into_iter().map(Node::Str).collect())));
    }
    if let Some(claim_ref) = claim_ref(pv, notes) {
        spec.push(("claimRef".to_owned(), claim_ref));
    }
    spec.push(("csi".to_owned(), csi));
    spec.push(("nodeAffinity".to_owned(), node_affinity(node)));
    Node::Map(spec)
}

/// The PV's claimRef, kept without its uid, with a note on how to bind the claim again.
fn claim_ref(pv: &FlexPv, notes: &mut Vec<String>) -> Option<Node> {
    let (namespace, claim) = pv.claim_ref.as_ref()?;
    let name = &pv.name;
    notes.push(format!(
        "PV {name:?} keeps its claimRef to {namespace}/{claim} (without uid): delete that PVC before \
         applying, then create it again with volumeName: {name}"
    ));
    Some(Node::map([("namespace", Node::str(namespace)), ("name", Node::str(claim))]))
}

/// The PV's `metadata`: its name, labels and the annotations worth keeping, with where it came
/// from.
fn metadata(pv: &FlexPv) -> Node {
    let mut metadata = vec![("name".to_owned(), Node::str(&pv.name))];
    if !pv.labels.is_empty() {
        metadata
            .push(("labels".to_owned(), Node::Map(pv.labels.iter().map(|(k, v)| (k.clone(), Node::str(v))).collect())));
    }
    let mut annotations: Vec<(String, Node)> =
        pv.annotations.iter().filter(|(k, _)| keep_annotation(k)).map(|(k, v)| (k.clone(), Node::str(v))).collect();
    annotations.push((MIGRATED_FROM.to_owned(), Node::str(FLEX_DRIVER)));
    metadata.push(("annotations".to_owned(), Node::Map(annotations)));
    Node::Map(metadata)
}

/// The options as strata-flex reads them at mount: kubelet's base keys, then the PV's options
/// on top (kubelet lets options override `kubernetes.io/*` keys).
fn flex_options(pv: &FlexPv) -> Result<Options, Error> {
    let mut map = std::collections::BTreeMap::from([
        (options::FS_TYPE.to_owned(), pv.fs_type.clone()),
        (options::VOLUME_NAME.to_owned(), pv.name.clone()),
        (options::READ_WRITE.to_owned(), if pv.read_only { "ro" } else { "rw" }.to_owned()),
    ]);
    map.extend(pv.options.iter().map(|(k, v)| (k.clone(), v.clone())));
    let json = serde_json::to_string(&map).map_err(|e| Error::Parse { reason: e.to_string() })?;
    options::parse(&json).map_err(|source| Error::Options { name: pv.name.clone(), source })
}

/// The node that holds the volume: `--node`, which must agree with the PV's node affinity, or
/// the one node that affinity names.
fn owning_node(pv: &FlexPv, given: Option<&str>) -> Result<String, Error> {
    let pinned = pv.affinity_nodes.clone().unwrap_or_default();
    match given {
        Some("") => Err(Error::NoNode { name: pv.name.clone() }),
        Some(node) if pinned.is_empty() || pinned.iter().any(|n| n == node) => Ok(node.to_owned()),
        Some(node) => {
            Err(Error::NodeConflict { name: pv.name.clone(), given: node.to_owned(), affinity: pinned.join(", ") })
        }
        None => match pinned.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(Error::NoNode { name: pv.name.clone() }),
        },
    }
}

/// strata-csi serves single-node access modes only (SINGLE_NODE_WRITER and _READER_ONLY, which
/// kubelet sends for ReadWriteOnce and ReadWriteOncePod). ReadOnlyMany alone becomes a
/// read-only ReadWriteOnce PV; ReadWriteMany is refused.
fn access_modes(pv: &FlexPv, read_only: &mut bool, notes: &mut Vec<String>) -> Result<Vec<String>, Error> {
    let refuse = |reason: String| Error::Field { name: pv.name.clone(), field: "spec.accessModes".into(), reason };
    if pv.access_modes.is_empty() {
        return Err(refuse("is empty".into()));
    }
    let mut keep = Vec::new();
    for mode in &pv.access_modes {
        match mode.as_str() {
            "ReadWriteOnce" | "ReadWriteOncePod" => keep.push(mode.clone()),
            "ReadOnlyMany" => {}
            "ReadWriteMany" => {
                return Err(refuse(
                    "has ReadWriteMany; strata volumes live on one node and strata-csi serves single-node \
                     access modes only"
                        .into(),
                ));
            }
            other => return Err(refuse(format!("has {other:?}, which is not a Kubernetes access mode"))),
        }
    }
    let has_rox = pv.access_modes.iter().any(|m| m == "ReadOnlyMany");
    if has_rox && keep.is_empty() {
        keep.push("ReadWriteOnce".into());
        *read_only = true;
        notes.push(format!(
            "PV {:?}: ReadOnlyMany became ReadWriteOnce with csi.readOnly: true (strata-csi serves one node, \
             read-only)",
            pv.name
        ));
    } else if has_rox {
        notes.push(format!("PV {:?}: ReadOnlyMany dropped; strata-csi serves single-node access modes", pv.name));
    }
    keep.dedup();
    Ok(keep)
}

/// The PV's mountOptions, then the flex `mountOptions` option (strata-flex applied both).
fn mount_options(pv: &FlexPv, opts: &Options) -> Vec<String> {
    let mut out = pv.mount_options.clone();
    for flag in &opts.mount_flags {
        if !out.contains(flag) {
            out.push(flag.clone());
        }
    }
    out
}

/// Whether the options ask for an encrypted volume.
fn encrypted(opts: &Options) -> bool {
    opts.encryption.as_deref().is_some_and(|e| !e.is_empty() && e != "none")
}

/// An encrypted volume's key Secret as the CSI PV's `nodeStageSecretRef` (its namespace is the
/// secretRef's, else the claim's, where kubelet looked for it under FlexVolume).
fn stage_secret(pv: &FlexPv, opts: &Options, notes: &mut Vec<String>) -> Option<Node> {
    let name = &pv.name;
    if !encrypted(opts) {
        return None;
    }
    let Some(secret) = &pv.secret_ref else {
        notes.push(format!("PV {name:?} is encrypted but names no secretRef: add nodeStageSecretRef for its key"));
        return None;
    };
    let (namespace, secret_name) = match secret.split_once('/') {
        Some((ns, n)) => (ns.to_owned(), n.to_owned()),
        None => (pv.claim_ref.as_ref().map_or("default".to_owned(), |(ns, _)| ns.clone()), secret.clone()),
    };
    notes.push(format!(
        "PV {name:?} is encrypted: secretRef {secret} became nodeStageSecretRef {namespace}/{secret_name} (CSI \
         ignores the Secret's type strata/flex; its entry key is the volume's key)"
    ));
    Some(Node::map([("name", Node::str(&secret_name)), ("namespace", Node::str(&namespace))]))
}

/// Notes for what the CSI PV leaves out because strata never used it.
fn note_dropped(pv: &FlexPv, opts: &Options, backend: Kind, notes: &mut Vec<String>) {
    let name = &pv.name;
    if let Some(secret) = pv.secret_ref.as_ref().filter(|_| !encrypted(opts)) {
        notes.push(format!("PV {name:?}: secretRef {secret} dropped; strata-flex uses secrets only for encryption"));
    }
    for key in &opts.ignored {
        notes.push(format!("PV {name:?}: option {key:?} dropped; strata-flex ignored it too"));
    }
    if !backend.formats() && !opts.fs_type.is_empty() {
        notes.push(format!(
            "PV {name:?}: fsType {:?} dropped; a {} volume has no filesystem of its own",
            opts.fs_type,
            backend.as_str()
        ));
    }
    if opts.backend.is_none() {
        notes.push(format!(
            "PV {name:?}: its options name no backend; volumeAttributes say {} (what strata-flex makes then), \
             which is informational: strata-csi serves the volume as its record describes it",
            FLEX_DEFAULT_BACKEND.as_str()
        ));
    }
    if backend == Kind::Tmpfs {
        notes.push(format!("PV {name:?}: a tmpfs volume keeps its data in memory; a reboot empties it, as before"));
    }
    if pv.reclaim_policy.as_deref() == Some("Delete") {
        notes.push(format!(
            "PV {name:?}: reclaim policy Delete kept, but the PV has no pv.kubernetes.io/provisioned-by \
             annotation, so releasing it never deletes the data (as under FlexVolume)"
        ));
    }
}

/// Annotations that Kubernetes manages are left for it to set again.
fn keep_annotation(key: &str) -> bool {
    !key.starts_with("pv.kubernetes.io/") && key != "kubectl.kubernetes.io/last-applied-configuration"
}

fn node_affinity(node: &str) -> Node {
    let requirement = Node::map([
        ("key", Node::str(TOPOLOGY_KEY)),
        ("operator", Node::str("In")),
        ("values", Node::List(vec![Node::str(node)])),
    ]);
    let term = Node::map([("matchExpressions", Node::List(vec![requirement]))]);
    Node::map([("required", Node::map([("nodeSelectorTerms", Node::List(vec![term]))]))])
}
