//! `kubectl strata migrate pv/NAME [--apply]`: reads the FlexVolume PV from the cluster, turns
//! it into the CSI PV with `strata-csi migrate-pv`'s code ([`crate::migrate`]), prints it, and
//! with `--apply` replaces the PV in the cluster.

use super::cluster::{Kubectl, Scope};
use super::error::Error;
use serde_json::Value;

/// The CSI PV (and notes as YAML comments); with `apply`, kubectl's answers after it.
pub fn run(k: &Kubectl, pv: &str, node: Option<&str>, apply: bool) -> Result<String, Error> {
    let name = pv_name(pv)?;
    let object = k.get(&["persistentvolume", name], Scope::Cluster)?;
    let text = serde_json::to_string(&object).map_err(|e| Error::Encode(e.to_string()))?;
    let migrated = crate::migrate::migrate(&text, node, crate::migrate::CSI_DRIVER)?;
    let mut out: String = migrated.notes.iter().map(|n| format!("# note: {n}\n")).collect();
    out.push_str(&migrated.yaml);
    if !apply {
        return Ok(out);
    }
    replaceable(name, &object)?;
    crate::stdout::print(&out);
    out.clear();
    out.push_str(&k.delete_pv(name)?);
    let applied =
        k.apply(&migrated.yaml).map_err(|e| Error::HalfApplied { name: name.to_owned(), source: Box::new(e) })?;
    out.push_str(&applied);
    Ok(out)
}

/// `NAME` of `pv/NAME`, `persistentvolume/NAME` or `NAME`.
fn pv_name(arg: &str) -> Result<&str, Error> {
    let name = match arg.split_once('/') {
        Some(("pv" | "persistentvolume" | "persistentvolumes", name)) => name,
        Some(_) => return Err(Error::NotPv(arg.to_owned())),
        None => arg,
    };
    if name.is_empty() {
        return Err(Error::NotPv(arg.to_owned()));
    }
    Ok(name)
}

/// Deleting the PV object must not be able to touch the data, and no claim may still hold it.
fn replaceable(name: &str, pv: &Value) -> Result<(), Error> {
    let policy = pv.pointer("/spec/persistentVolumeReclaimPolicy").and_then(Value::as_str).unwrap_or("Retain");
    let phase = pv.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    let refuse = |what: String| Err(Error::NotReplaceable { name: name.to_owned(), what });
    if policy != "Retain" {
        return refuse(format!("reclaim policy {policy}"));
    }
    if !matches!(phase, "Released" | "Available") {
        return refuse(format!("{} (its claim still exists)", if phase.is_empty() { "in no phase" } else { phase }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_arguments() {
        assert_eq!(pv_name("pv/db").unwrap(), "db");
        assert_eq!(pv_name("persistentvolume/db").unwrap(), "db");
        assert_eq!(pv_name("db").unwrap(), "db");
        assert!(matches!(pv_name("pvc/db"), Err(Error::NotPv(_))));
        assert!(matches!(pv_name("pv/"), Err(Error::NotPv(_))));
    }
}
