//! Encrypted volumes (`encryption: fscrypt`): the volume's data directory gets a v2 policy at its
//! first stage (AES-256-XTS contents, AES-256-CTS names), every stage adds the volume's key to
//! its filesystem's keyring and every unstage removes it, so an unstaged volume is ciphertext on
//! the node. The key comes from the stage's secrets ([`StageKey`]) and is derived per volume
//! ([`MasterKey`]); records keep its identifier, never the key.
//!
//! The encrypted directory: a `loop` volume's filesystem root holds `lost+found`, and a policy
//! needs an empty directory, so the volume is the directory `data` in it (the staging mount is
//! the filesystem root; publications bind `data`). A `dir` volume's `data` is the volume itself.

mod key;
mod lifecycle;

pub use key::{MIN_SECRET, MasterKey, SECRET_KEY, Secret, StageKey};

use super::{Error, Result};
use crate::backend::Kind;
use crate::sys::FsType;
use crate::sys::fscrypt::KeyId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The StorageClass parameter (and FlexVolume option) that asks for encryption.
pub const PARAM_ENCRYPTION: &str = "encryption";
/// Its one value besides `none`.
pub const FSCRYPT: &str = "fscrypt";
/// The directory inside a loop volume's filesystem that holds the volume.
pub const LOOP_DATA: &str = "data";

/// What a record says about a volume's encryption. Never a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `fscrypt`: a v2 policy, AES-256-XTS contents, AES-256-CTS names padded to 32 bytes.
    pub scheme: String,
    /// The id the key is derived from: the volume's own, or for a clone or a restore the id of
    /// the volume that was first encrypted (the copy is the same ciphertext, so the same key).
    pub key_derivation_id: String,
    /// The fscrypt identifier of the key (hex), once the first stage set the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_identifier: Option<String>,
}

impl Encryption {
    fn key_id(&self) -> Option<KeyId> {
        self.key_identifier.as_deref().and_then(KeyId::parse)
    }
}

/// Whether `params` ask for encryption, checked against the kind and fs type: `loop` ext4 and
/// `dir` only (a dir volume's root filesystem is checked by [`Engine::check_encryption`]).
pub fn wanted(kind: Kind, fs: Option<FsType>, params: &BTreeMap<String, String>) -> Result<bool> {
    match params.get(PARAM_ENCRYPTION).map(String::as_str) {
        None | Some("" | "none") => Ok(false),
        Some(FSCRYPT) => crate::backend::rules(kind)
            .encryptable(fs)
            .map(|()| true)
            .map_err(|e| Error::InvalidArgument(e.to_string())),
        Some(other) => {
            Err(Error::InvalidArgument(format!("encryption {} is neither fscrypt nor none", super::quote(other))))
        }
    }
}

/// The encryption of a new, empty volume `id`: its key is derived from its own id.
pub fn for_new(id: &str) -> Encryption {
    Encryption { scheme: FSCRYPT.into(), key_derivation_id: id.into(), key_identifier: None }
}

/// The encryption of a volume copied from a source that has `source`: the same key, and the
/// request must ask for what the source is (a copy is the source's ciphertext, or its plaintext).
pub fn inherit(wanted: bool, source: Option<&Encryption>) -> Result<Option<Encryption>> {
    match (wanted, source) {
        (true, Some(enc)) => Ok(Some(enc.clone())),
        (false, None) => Ok(None),
        (false, Some(_)) => Err(Error::InvalidArgument(
            "the source is encrypted (fscrypt): the new volume's class must say encryption: fscrypt, and its \
             stages need the source's Secret"
                .into(),
        )),
        (true, None) => Err(Error::InvalidArgument(
            "the source is not encrypted; an encrypted copy of it is a new encrypted volume and a copy of the files"
                .into(),
        )),
    }
}

/// Whether a volume of `kind` with `enc` can be copied (snapshot, clone): a loop volume's copy is
/// its image, ciphertext that needs no key. A dir volume's copy goes through the filesystem: it
/// would need the key at a controller call (the CO passes it only to stages) and a copy with the
/// same key would share its keyring with the source, so one's unstage would lock the other.
pub fn check_copy(kind: Kind, enc: Option<&Encryption>) -> Result<()> {
    if enc.is_none() || crate::backend::rules(kind).copies_ciphertext() {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "snapshots and clones of encrypted {} volumes are not supported (the copy would need the volume's key and \
         share it with the source); encrypted volumes that need snapshots use backend: loop",
        kind.as_str()
    )))
}
