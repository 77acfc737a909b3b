//! The `<json>` argument: kubelet's `kubernetes.io/*` keys merged with the user's options.

use super::secret::{Secret, Secrets};
use super::{Error, Result};
use crate::backend::Kind;
use crate::engine::{quote, validate};
use crate::quantity::parse_bytes;
use crate::sys::FsType;
use std::collections::BTreeMap;

pub const FS_TYPE: &str = "kubernetes.io/fsType";
pub const READ_WRITE: &str = "kubernetes.io/readwrite";
pub const VOLUME_NAME: &str = "kubernetes.io/pvOrVolumeName";
pub const FS_GROUP: &str = "kubernetes.io/mounterArgs.FsGroup";
pub const FS_GROUP_OLD: &str = "kubernetes.io/fsGroup";
pub const SECRET_PREFIX: &str = "kubernetes.io/secret/";
/// kubelet's keys; one strata does not know is kubelet's business, not a user's typo.
const KUBELET_PREFIX: &str = "kubernetes.io/";
pub const VOLUME_ID: &str = "volumeID";
pub const BACKEND: &str = "backend";
pub const SIZE: &str = "size";
pub const MOUNT_OPTIONS: &str = "mountOptions";
/// `thick` preallocates a loop image (as the CSI StorageClass parameter of the same name).
pub const ALLOCATION: &str = crate::engine::capacity::PARAM_ALLOCATION;
/// `allow` lets a `dir` volume's mounts reach device nodes (as the CSI parameter of that name).
pub const DEVICES: &str = crate::engine::mount_policy::PARAM_DEVICES;

/// Keys strata reads, or knows and ignores (pod identity, for the log).
const KNOWN: [&str; 17] = [
    super::encryption::OPTION,
    FS_TYPE,
    READ_WRITE,
    VOLUME_NAME,
    FS_GROUP,
    FS_GROUP_OLD,
    VOLUME_ID,
    BACKEND,
    SIZE,
    MOUNT_OPTIONS,
    ALLOCATION,
    DEVICES,
    "kubernetes.io/pod.name",
    "kubernetes.io/pod.namespace",
    "kubernetes.io/pod.uid",
    "kubernetes.io/serviceAccount.name",
    "kubernetes.io/mountsDir",
];

/// Everything strata takes from the options of one call. `Debug` shows no secret.
#[derive(Debug)]
pub struct Options {
    /// The volume's id: `volumeID` if given, else the PV or inline volume name.
    pub id: String,
    /// The PV or inline volume name kubelet sent.
    pub name: String,
    /// Whether the id came from `volumeID` (then the volume must exist).
    pub by_volume_id: bool,
    /// `backend`, if the user named one.
    pub backend: Option<Kind>,
    /// `size` in bytes, if given.
    pub size: Option<u64>,
    /// `kubernetes.io/fsType`, empty when unset.
    pub fs_type: String,
    /// `allocation` (`thin` or `thick`), if given.
    pub allocation: Option<String>,
    /// `devices` (`allow` or `deny`), if given.
    pub devices: Option<String>,
    /// `mountOptions`, split at commas.
    pub mount_flags: Vec<String>,
    pub readonly: bool,
    /// The pod's fsGroup; kubelet applies it (init says fsGroup: true), strata only checks it.
    pub fs_group: Option<u32>,
    pub secrets: Secrets,
    /// `encryption` (`fscrypt` or `none`), if given (see [`super::encryption`]).
    pub encryption: Option<String>,
    /// Option keys strata does not know: kubelet's own (`kubernetes.io/*`, which a newer kubelet
    /// may add) are logged, a user's refused by [`parse_for_mount`].
    pub ignored: Vec<String>,
}

/// [`parse`] for a `mount`, which also refuses options strata does not know outside kubelet's
/// `kubernetes.io/` keys: a misspelt `sise` must not give a default-sized volume. (`expandfs` and
/// `expandvolume` take what `mount` took; `strata-csi migrate-pv` notes them.)
pub fn parse_for_mount(json: &str) -> Result<Options> {
    let opts = parse(json)?;
    let unknown: Vec<String> = opts.ignored.iter().filter(|k| !k.starts_with(KUBELET_PREFIX)).cloned().collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownOptions { keys: unknown });
    }
    Ok(opts)
}

/// Parses and checks the options; nothing on the host is touched.
pub fn parse(json: &str) -> Result<Options> {
    let mut map = parse_map(json)?;
    let secrets = take_secrets(&mut map)?;
    let (id, name, by_volume_id) = identity(&map)?;
    let backend = map.get(BACKEND).map(|b| backend(b)).transpose()?;
    let fs_type = map.get(FS_TYPE).cloned().unwrap_or_default();
    if backend.is_some_and(Kind::formats) {
        loop_fs_type(&fs_type)?;
    }
    Ok(Options {
        id,
        name,
        by_volume_id,
        backend,
        size: map.get(SIZE).map(|s| size(s)).transpose()?,
        fs_type,
        allocation: map.get(ALLOCATION).cloned(),
        devices: map.get(DEVICES).cloned(),
        mount_flags: map.get(MOUNT_OPTIONS).map(|m| flags(m)).unwrap_or_default(),
        readonly: readonly(map.get(READ_WRITE))?,
        fs_group: fs_group(&map)?,
        secrets,
        encryption: map.get(super::encryption::OPTION).cloned(),
        ignored: map.keys().filter(|k| !KNOWN.contains(&k.as_str())).cloned().collect(),
    })
}

/// The options as a map of strings; any other JSON is refused.
fn parse_map(json: &str) -> Result<BTreeMap<String, String>> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::Json { reason: e.to_string() })?;
    let serde_json::Value::Object(object) = value else {
        return Err(Error::Json { reason: "it is not an object".into() });
    };
    object
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            _ => Err(Error::Json { reason: format!("the value of {} is not a string", quote(&k)) }),
        })
        .collect()
}

/// Moves the `kubernetes.io/secret/*` entries out of the map, decoded.
fn take_secrets(map: &mut BTreeMap<String, String>) -> Result<Secrets> {
    let keys: Vec<String> = map.keys().filter(|k| k.starts_with(SECRET_PREFIX)).cloned().collect();
    let mut secrets = Secrets::default();
    for key in keys {
        let encoded = map.remove(&key).unwrap_or_default();
        let secret = Secret::decode(&encoded).map_err(|e| Error::Option { key: key.clone(), reason: e.to_string() })?;
        secrets.0.insert(key[SECRET_PREFIX.len()..].to_owned(), secret);
    }
    Ok(secrets)
}

/// The volume id and name: `volumeID` wins over `kubernetes.io/pvOrVolumeName`.
fn identity(map: &BTreeMap<String, String>) -> Result<(String, String, bool)> {
    let name = map.get(VOLUME_NAME).cloned().unwrap_or_default();
    let (key, id) = match map.get(VOLUME_ID) {
        Some(id) => (VOLUME_ID, id.clone()),
        None => (VOLUME_NAME, name.clone()),
    };
    if id.is_empty() {
        return Err(Error::Option {
            key: key.into(),
            reason: "is missing or empty; kubelet always sends the PV or volume name".into(),
        });
    }
    validate::id("volume", &id)
        .map_err(|e| Error::Option { key: key.into(), reason: format!("cannot name a strata volume: {e}") })?;
    Ok((id, name, key == VOLUME_ID))
}

fn backend(value: &str) -> Result<Kind> {
    Kind::parse(value).ok_or_else(|| Error::Option {
        key: BACKEND.into(),
        reason: format!("is {}; use one of dir, loop, btrfs, tmpfs", quote(value)),
    })
}

/// The fs type of a loop volume: ext4 (also when unset) or xfs.
pub fn loop_fs_type(name: &str) -> Result<FsType> {
    if name.is_empty() {
        return Ok(FsType::Ext4);
    }
    FsType::parse(name).ok_or_else(|| Error::Option {
        key: FS_TYPE.into(),
        reason: format!("is {}; a loop volume is ext4 or xfs", quote(name)),
    })
}

fn size(value: &str) -> Result<u64> {
    parse_bytes(value)
        .map_err(|reason| Error::Option { key: SIZE.into(), reason: format!("{} {reason}", quote(value)) })
}

fn flags(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()
}

fn readonly(value: Option<&String>) -> Result<bool> {
    match value.map(String::as_str) {
        None | Some("rw") => Ok(false),
        Some("ro") => Ok(true),
        Some(other) => Err(Error::Option {
            key: READ_WRITE.into(),
            reason: format!("is {}; kubelet sends \"ro\" or \"rw\"", quote(other)),
        }),
    }
}

/// fsGroup from the current key, else the pre-1.15 one.
fn fs_group(map: &BTreeMap<String, String>) -> Result<Option<u32>> {
    let Some((key, value)) = [FS_GROUP, FS_GROUP_OLD].into_iter().find_map(|k| map.get(k).map(|v| (k, v))) else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| Error::Option { key: key.into(), reason: format!("is {}, not a group id", quote(value)) })
}

#[cfg(test)]
mod tests;
