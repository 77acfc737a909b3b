//! FlexVolume's side of encrypted volumes: the `encryption` option (`fscrypt`, as the CSI
//! StorageClass parameter) and the key from the PV's `secretRef` Secret, which kubelet passes
//! to `mount` as `kubernetes.io/secret/key` (see [`crate::engine::encryption`]).

use super::secret::Secrets;
use crate::engine::encryption::{PARAM_ENCRYPTION, SECRET_KEY, StageKey};
use std::collections::BTreeMap;

/// The option that asks for encryption, named as the StorageClass parameter.
pub const OPTION: &str = PARAM_ENCRYPTION;

/// The create parameter the option becomes (nothing when it is absent).
pub fn parameter(value: Option<&String>) -> BTreeMap<String, String> {
    value.map(|v| (OPTION.to_owned(), v.clone())).into_iter().collect()
}

/// The stage key from the call's secrets: `kubernetes.io/secret/key`, decoded once by
/// [`super::options`]; no secrets at all is no key.
pub fn stage_key(secrets: &Secrets) -> StageKey {
    match secrets.0.get(SECRET_KEY) {
        Some(key) => StageKey::from_bytes(key.expose()),
        None if secrets.0.is_empty() => StageKey::none(),
        None => {
            let names: Vec<&str> = secrets.0.keys().map(String::as_str).collect();
            StageKey::missing(&names)
        }
    }
}
