//! Reading the input: YAML or JSON documents (or a `List`) into the fields of FlexVolume PVs.

use super::error::Error;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The FlexVolume driver name of strata (`<plugin dir>/strata~flex/flex`).
pub const FLEX_DRIVER: &str = "strata/flex";

/// Node labels and fields whose `In` value is a node name.
const NODE_KEYS: [&str; 2] = [crate::csi::convert::TOPOLOGY_KEY, "kubernetes.io/hostname"];
const NODE_FIELD: &str = "metadata.name";

/// What `migrate-pv` takes from one FlexVolume PV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlexPv {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.capacity` (resource name to quantity).
    pub capacity: BTreeMap<String, String>,
    pub access_modes: Vec<String>,
    pub reclaim_policy: Option<String>,
    pub storage_class: Option<String>,
    pub mount_options: Vec<String>,
    pub volume_mode: Option<String>,
    /// `spec.claimRef` as (namespace, name).
    pub claim_ref: Option<(String, String)>,
    /// The nodes the PV's nodeAffinity allows, when every term pins it to named nodes.
    pub affinity_nodes: Option<Vec<String>>,
    pub fs_type: String,
    pub read_only: bool,
    /// `secretRef` as `namespace/name` (or `name`), if any.
    pub secret_ref: Option<String>,
    pub options: BTreeMap<String, String>,
}

/// What the input holds: the strata/flex PVs, and a line for each document left out.
#[derive(Debug)]
pub struct Input {
    pub pvs: Vec<FlexPv>,
    pub left_out: Vec<String>,
}

/// Every strata/flex PersistentVolume in `text`. Other documents (the claim and the pod of a
/// shipped example, PVs of other drivers) are left out and said so; an input with none to
/// convert is an error that says what it held, and a strata/flex PV that cannot be read is one.
pub fn read(text: &str) -> Result<Input, Error> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| Error::Parse { reason: e.to_string() })?;
        match value {
            Value::Null => {}
            Value::Object(_) => expand(value, &mut docs),
            other => return Err(Error::Parse { reason: format!("a document is {other}, not an object") }),
        }
    }
    if docs.is_empty() {
        return Err(Error::Empty);
    }
    let mut input = Input { pvs: Vec::new(), left_out: Vec::new() };
    for (i, doc) in docs.iter().enumerate() {
        match pv(i + 1, doc) {
            Ok(pv) => input.pvs.push(pv),
            Err(e @ (Error::NotAPv { .. } | Error::NotStrataFlex { .. })) => input.left_out.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    if input.pvs.is_empty() {
        return Err(Error::NoFlexPv { held: input.left_out.join("; ") });
    }
    Ok(input)
}

/// A `List` (or `PersistentVolumeList`) contributes its items; any other object itself.
fn expand(value: Value, docs: &mut Vec<Value>) {
    let is_list = value["kind"].as_str().is_some_and(|k| k == "List" || k.ends_with("List"));
    match (is_list, value.get("items")) {
        (true, Some(Value::Array(items))) => docs.extend(items.iter().cloned()),
        _ => docs.push(value),
    }
}

/// Document `index` as a strata flex PV; NotAPv or NotStrataFlex for one that is left out.
fn pv(index: usize, doc: &Value) -> Result<FlexPv, Error> {
    is_pv(index, doc)?;
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if name.is_empty() {
        return Err(field_error(&name, "metadata.name", "is missing"));
    }
    let spec = &doc["spec"];
    let flex = flex_source(spec, &name)?;
    Ok(FlexPv {
        labels: strings(&doc["metadata"]["labels"], "metadata.labels", &name)?,
        annotations: strings(&doc["metadata"]["annotations"], "metadata.annotations", &name)?,
        capacity: quantities(&spec["capacity"], &name)?,
        access_modes: string_list(&spec["accessModes"], "spec.accessModes", &name)?,
        reclaim_policy: opt_string(
            &spec["persistentVolumeReclaimPolicy"],
            "spec.persistentVolumeReclaimPolicy",
            &name,
        )?,
        storage_class: opt_string(&spec["storageClassName"], "spec.storageClassName", &name)?,
        mount_options: string_list(&spec["mountOptions"], "spec.mountOptions", &name)?,
        volume_mode: opt_string(&spec["volumeMode"], "spec.volumeMode", &name)?,
        claim_ref: claim_ref(&spec["claimRef"]),
        affinity_nodes: affinity_nodes(&spec["nodeAffinity"]),
        fs_type: opt_string(&flex["fsType"], "spec.flexVolume.fsType", &name)?.unwrap_or_default(),
        read_only: read_only(&flex["readOnly"], &name)?,
        secret_ref: secret_ref(&flex["secretRef"]),
        options: strings(&flex["options"], "spec.flexVolume.options", &name)?,
        name,
    })
}

/// NotAPv unless `doc` is a v1 PersistentVolume.
fn is_pv(index: usize, doc: &Value) -> Result<(), Error> {
    let kind = doc["kind"].as_str().unwrap_or("document without a kind");
    if kind != "PersistentVolume" || doc["apiVersion"].as_str() != Some("v1") {
        let api = doc["apiVersion"].as_str().unwrap_or("?");
        let name = doc["metadata"]["name"].as_str().map_or(String::new(), |n| format!(" {n:?}"));
        return Err(Error::NotAPv { index, kind: format!("{api} {kind}{name}") });
    }
    Ok(())
}

/// The PV's `flexVolume` source; NotStrataFlex unless it is one of strata's.
fn flex_source<'a>(spec: &'a Value, name: &str) -> Result<&'a Value, Error> {
    match spec.get("flexVolume") {
        Some(f) if f["driver"].as_str() == Some(FLEX_DRIVER) => Ok(f),
        Some(f) => {
            let driver = f["driver"].as_str().unwrap_or("(no driver)");
            Err(Error::NotStrataFlex { name: name.to_owned(), found: format!("FlexVolume driver {driver:?}") })
        }
        None => Err(Error::NotStrataFlex { name: name.to_owned(), found: source_kind(spec) }),
    }
}

/// `spec.flexVolume.readOnly`: false when absent.
fn read_only(value: &Value, name: &str) -> Result<bool, Error> {
    match value {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        _ => Err(field_error(name, "spec.flexVolume.readOnly", "is not true or false")),
    }
}

/// A field of PV `name` that is not what it should be.
fn field_error(name: &str, field: &str, reason: &str) -> Error {
    Error::Field { name: name.to_owned(), field: field.to_owned(), reason: reason.to_owned() }
}

/// What kind of volume source a PV without `flexVolume` has, for the refusal.
fn source_kind(spec: &Value) -> String {
    if let Some(driver) = spec["csi"]["driver"].as_str() {
        return format!("a CSI volume of driver {driver:?}");
    }
    const NOT_SOURCES: [&str; 8] = [
        "accessModes",
        "capacity",
        "claimRef",
        "mountOptions",
        "nodeAffinity",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "volumeMode",
    ];
    let sources: Vec<&str> = spec
        .as_object()
        .map(|m| m.keys().map(String::as_str).filter(|k| !NOT_SOURCES.contains(k)).collect())
        .unwrap_or_default();
    match sources.as_slice() {
        [] => "a PV without a volume source".to_owned(),
        s => format!("a {} volume", s.join("/")),
    }
}

fn opt_string(v: &Value, field: &str, name: &str) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(Error::Field { name: name.to_owned(), field: field.to_owned(), reason: "is not a string".into() }),
    }
}

fn string_list(v: &Value, field: &str, name: &str) -> Result<Vec<String>, Error> {
    let bad =
        || Error::Field { name: name.to_owned(), field: field.to_owned(), reason: "is not a list of strings".into() };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(bad)).collect(),
        _ => Err(bad()),
    }
}

/// A map of strings, as Kubernetes requires for labels, annotations and flex options.
fn strings(v: &Value, field: &str, name: &str) -> Result<BTreeMap<String, String>, Error> {
    let Some(map) = v.as_object() else {
        return if v.is_null() {
            Ok(BTreeMap::new())
        } else {
            Err(Error::Field { name: name.to_owned(), field: field.to_owned(), reason: "is not a map".into() })
        };
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(Error::Field {
                name: name.to_owned(),
                field: format!("{field}.{k}"),
                reason: format!("is {other}; Kubernetes takes only strings here (quote it)"),
            }),
        })
        .collect()
}

/// `spec.capacity`; a bare number (hand-written YAML) is kept as its decimal text.
fn quantities(v: &Value, name: &str) -> Result<BTreeMap<String, String>, Error> {
    let bad =
        |reason: &str| Error::Field { name: name.to_owned(), field: "spec.capacity".into(), reason: reason.into() };
    let map = v.as_object().ok_or_else(|| bad("is missing; a PV needs capacity.storage"))?;
    let out: BTreeMap<String, String> = map
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            _ => Err(bad("holds a value that is not a quantity")),
        })
        .collect::<Result<_, _>>()?;
    if !out.contains_key("storage") {
        return Err(bad("has no storage quantity"));
    }
    Ok(out)
}

fn claim_ref(v: &Value) -> Option<(String, String)> {
    let name = v["name"].as_str()?;
    Some((v["namespace"].as_str().unwrap_or("default").to_owned(), name.to_owned()))
}

fn secret_ref(v: &Value) -> Option<String> {
    let name = v["name"].as_str()?;
    Some(match v["namespace"].as_str() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    })
}

/// The nodes a PV may be used on, if its required node affinity pins every term to named nodes
/// (`In` on the node name field, the hostname label or strata's topology key). `None` when
/// there is no such affinity or some term allows nodes that are not named.
pub fn affinity_nodes(affinity: &Value) -> Option<Vec<String>> {
    let terms = affinity["required"]["nodeSelectorTerms"].as_array()?;
    let mut all: Vec<String> = Vec::new();
    for term in terms {
        let mut pinned: Option<Vec<String>> = None;
        let requirements = [("matchExpressions", &NODE_KEYS[..]), ("matchFields", &[NODE_FIELD][..])];
        for (list, keys) in requirements {
            for req in term[list].as_array().into_iter().flatten() {
                let key = req["key"].as_str().unwrap_or("");
                if !keys.contains(&key) || req["operator"].as_str() != Some("In") {
                    continue;
                }
                let values: Vec<String> =
                    req["values"].as_array()?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
                pinned = Some(match pinned {
                    None => values,
                    Some(before) => before.into_iter().filter(|n| values.contains(n)).collect(),
                });
            }
        }
        all.extend(pinned?);
    }
    all.sort();
    all.dedup();
    Some(all)
}
