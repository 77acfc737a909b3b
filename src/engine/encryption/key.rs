//! Key material of encrypted volumes: the Secret's `key` entry as a stage receives it, and the
//! per-volume master key derived from it. Both live in [`Locked`] memory for the call and are
//! zeroed when dropped; neither has a `Display`, and their `Debug` shows no byte of them.

use super::super::{Error, Result};
use crate::sys::fscrypt::{self, KEY_SIZE, KeyId};
use crate::sys::locked::Locked;
use std::collections::HashMap;
use zeroize::Zeroize;

/// The entry of the Secret that holds the key.
pub const SECRET_KEY: &str = "key";
/// The shortest `key` accepted, in bytes.
pub const MIN_SECRET: usize = 32;
/// The longest `key` accepted, in bytes (one page of locked memory).
pub const MAX_SECRET: usize = 4096;
/// The HKDF info prefix; the key derivation id follows it.
pub const INFO: &[u8] = b"strata.csi.dev/fscrypt/v1\0";

/// The bytes of a Secret's `key` entry (at least [`MIN_SECRET`]), in locked memory.
pub struct Secret {
    bytes: Locked<[u8; MAX_SECRET]>,
    len: usize,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Copies `bytes` into locked memory; refuses a key shorter than [`MIN_SECRET`] or longer
    /// than [`MAX_SECRET`] (the message never quotes it, nor says its length).
    pub fn new(bytes: &[u8]) -> Result<Secret> {
        if bytes.len() < MIN_SECRET {
            return Err(Error::InvalidArgument(format!(
                "the Secret's entry {SECRET_KEY:?} is shorter than {MIN_SECRET} bytes; use random bytes in hex or \
                 base64 (such as `openssl rand -hex 32`) or a long passphrase"
            )));
        }
        if bytes.len() > MAX_SECRET {
            return Err(Error::InvalidArgument(format!(
                "the Secret's entry {SECRET_KEY:?} is longer than {MAX_SECRET} bytes"
            )));
        }
        let mut locked = Locked::<[u8; MAX_SECRET]>::zeroed().map_err(locked_error)?;
        locked[..bytes.len()].copy_from_slice(bytes);
        Ok(Secret { bytes: locked, len: bytes.len() })
    }

    fn expose(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The key a stage was given, or why it has none; checked only when the volume is encrypted, so
/// a CO that passes secrets to every stage does not break unencrypted volumes.
#[derive(Debug, Default)]
pub struct StageKey(Option<std::result::Result<Secret, NoKey>>);

/// Why the secrets a stage was given hold no usable key.
#[derive(Debug, thiserror::Error)]
pub enum NoKey {
    /// The `key` entry is not a key strata can use.
    #[error(transparent)]
    Invalid(Box<Error>),
    /// No `key` entry; the names of the entries that came (names are not secret), clipped.
    #[error("the stage secrets have no entry {:?} (they have {names})", SECRET_KEY)]
    Missing { names: String },
}

impl StageKey {
    /// No secrets at all.
    pub fn none() -> StageKey {
        StageKey(None)
    }

    /// A key given as bytes (FlexVolume's decoded `kubernetes.io/secret/key`).
    pub fn from_bytes(bytes: &[u8]) -> StageKey {
        StageKey(Some(Secret::new(bytes).map_err(|e| NoKey::Invalid(Box::new(e)))))
    }

    /// Takes the `key` entry out of a CSI secrets map, and wipes every value of the map (the
    /// caller drops it): after this call the request holds no secret bytes.
    pub fn take_csi(secrets: &mut HashMap<String, String>) -> StageKey {
        if secrets.is_empty() {
            return StageKey(None);
        }
        let found = match secrets.get(SECRET_KEY) {
            Some(value) => StageKey::from_bytes(value.as_bytes()),
            None => StageKey::missing(&secrets.keys().map(String::as_str).collect::<Vec<_>>()),
        };
        for value in secrets.values_mut() {
            value.zeroize();
        }
        secrets.clear();
        found
    }

    /// Secrets without a `key` entry (their names, which are not secret, say what came).
    pub fn missing(names: &[&str]) -> StageKey {
        let mut names = names.to_vec();
        names.sort_unstable();
        let names = crate::engine::clip(&names.join(", "));
        StageKey(Some(Err(NoKey::Missing { names })))
    }

    /// The key, or INVALID_ARGUMENT saying why there is none.
    pub fn require(&self, id: &str) -> Result<&Secret> {
        match &self.0 {
            Some(Ok(secret)) => Ok(secret),
            Some(Err(why)) => Err(Error::InvalidArgument(format!("volume {id} is encrypted: {why}"))),
            None => Err(Error::InvalidArgument(format!(
                "volume {id} is encrypted and the stage carries no secrets: its StorageClass must set \
                 csi.storage.k8s.io/node-stage-secret-name and -namespace (FlexVolume: secretRef) naming a \
                 Secret with an entry {SECRET_KEY:?}"
            ))),
        }
    }
}

/// A volume's fscrypt master key and the identifier the kernel gives it.
#[derive(Debug)]
pub struct MasterKey {
    key: Locked<[u8; KEY_SIZE]>,
    pub id: KeyId,
}

impl MasterKey {
    /// HKDF-SHA256 of the Secret's key (no salt), info [`INFO`] followed by the key derivation id:
    /// 64 bytes, one key per volume (and its clones and restores) from one Secret.
    pub fn derive(secret: &Secret, derivation_id: &str) -> Result<MasterKey> {
        let mut key = Locked::<[u8; KEY_SIZE]>::zeroed().map_err(locked_error)?;
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, secret.expose());
        hk.expand_multi_info(&[INFO, derivation_id.as_bytes()], &mut key[..])
            .map_err(|_| Error::InvalidArgument("HKDF cannot make a 64-byte key".into()))?;
        let id = fscrypt::identifier(&key);
        Ok(MasterKey { key, id })
    }

    pub fn bytes(&self) -> &[u8; KEY_SIZE] {
        &self.key
    }
}

fn locked_error(e: crate::sys::locked::LockError) -> Error {
    Error::KeyMemory(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    #[test]
    fn short_missing_and_long_keys_are_refused_without_quoting_them() {
        let short = Secret::new(b"hunter2-hunter2").unwrap_err().to_string();
        assert!(short.contains("shorter than 32") && !short.contains("hunter2"), "{short}");
        assert!(Secret::new(&[b'x'; MAX_SECRET + 1]).is_err());
        let mut map = HashMap::from([("password".to_owned(), SECRET.to_owned())]);
        let none = StageKey::take_csi(&mut map);
        let why = none.require("v").unwrap_err().to_string();
        assert!(why.contains("no entry \"key\"") && why.contains("password") && !why.contains(SECRET), "{why}");
        assert!(map.is_empty());
        let why = StageKey::none().require("v").unwrap_err().to_string();
        assert!(why.contains("node-stage-secret-name"), "{why}");
    }

    #[test]
    fn the_csi_map_is_wiped_and_the_key_kept() {
        let mut map = HashMap::from([("key".to_owned(), SECRET.to_owned()), ("other".to_owned(), "x".into())]);
        let key = StageKey::take_csi(&mut map);
        assert!(map.is_empty());
        assert_eq!(key.require("v").unwrap().expose(), SECRET.as_bytes());
        assert!(!format!("{key:?}").contains("secret"), "{key:?}");
    }

    #[test]
    fn derivation_is_per_id_stable_and_matches_hkdf() {
        let s = Secret::new(SECRET.as_bytes()).unwrap();
        let (a, b) = (MasterKey::derive(&s, "vol-a").unwrap(), MasterKey::derive(&s, "vol-b").unwrap());
        assert_ne!(a.bytes(), b.bytes());
        assert_ne!(a.id, b.id);
        assert_eq!(MasterKey::derive(&s, "vol-a").unwrap().id, a.id);
        let mut want = [0u8; KEY_SIZE];
        let info = [INFO, b"vol-a".as_slice()].concat();
        hkdf::Hkdf::<sha2::Sha256>::new(None, SECRET.as_bytes()).expand(&info, &mut want).unwrap();
        assert_eq!(a.bytes(), &want);
        assert_eq!(a.id, fscrypt::identifier(&want));
        assert!(format!("{a:?}").contains("redacted"), "{a:?}");
    }
}
