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

pub use key::{MIN_SECRET, MasterKey, SECRET_KEY, Secret, StageKey};

use super::{Engine, Error, Result, Volume};
use crate::backend::Kind;
use crate::sys::fscrypt::{KeyId, KeyStatus, Policy};
use crate::sys::{FsType, Place};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
        Some(FSCRYPT) => match (kind, fs) {
            (Kind::Loop, None | Some(FsType::Ext4)) | (Kind::Dir, _) => Ok(true),
            (Kind::Loop, Some(FsType::Xfs)) => Err(Error::InvalidArgument(
                "encryption: fscrypt needs ext4 (xfs has no fscrypt support in strata); leave fsType empty or ext4"
                    .into(),
            )),
            (other, _) => Err(Error::InvalidArgument(format!(
                "encryption: fscrypt is for loop (ext4) and dir volumes; a {} volume cannot be encrypted",
                other.as_str()
            ))),
        },
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
    if enc.is_none() || kind == Kind::Loop {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "snapshots and clones of encrypted {} volumes are not supported (the copy would need the volume's key and \
         share it with the source); encrypted volumes that need snapshots use backend: loop",
        kind.as_str()
    )))
}

impl Engine {
    /// Refuses `encryption: fscrypt` for a dir volume when the data root's filesystem cannot
    /// encrypt (only ext4 made with `-O encrypt` or given it by `tune2fs -O encrypt` can here).
    pub(super) fn check_encryption(&self, kind: Kind) -> Result<()> {
        if kind != Kind::Dir {
            return Ok(());
        }
        let volumes = self.cfg.root.join("volumes");
        let place = crate::sys::place_at(&volumes)?;
        if self.host.fscrypt_policy(&place)? == Policy::Unsupported {
            return Err(Error::InvalidArgument(format!(
                "encryption: fscrypt for dir volumes needs a data root on a filesystem that can encrypt, and the \
                 filesystem of {} cannot (ext4 needs its encrypt feature: tune2fs -O encrypt while unmounted, or \
                 mkfs.ext4 -O encrypt); use backend: loop, whose volumes carry their own filesystem",
                volumes.display()
            )));
        }
        Ok(())
    }

    /// The master key a stage of `vol` needs, derived from `key` and checked against the
    /// identifier its record keeps, before the host is touched: a wrong key changes nothing.
    /// `None` for a volume that is not encrypted.
    pub(super) fn stage_key(&self, vol: &Volume, key: &StageKey) -> Result<Option<MasterKey>> {
        let Some(enc) = &vol.encryption else { return Ok(None) };
        let master = MasterKey::derive(key.require(&vol.id)?, &enc.key_derivation_id)?;
        if let Some(recorded) = enc.key_id().filter(|r| *r != master.id) {
            return Err(wrong_key(&vol.id, &recorded));
        }
        Ok(Some(master))
    }

    /// The volume's encrypted directory and, when it is not `staging` itself, a place in its
    /// filesystem (for the keyring): a loop volume's `data` on its staging mount, a dir volume's
    /// `data` under the root.
    fn crypt_places(&self, vol: &Volume, staging: Option<&Place>) -> Result<(Option<Place>, Place)> {
        match (vol.backend, staging) {
            (Kind::Loop, Some(staging)) => {
                Ok((None, staging.child(LOOP_DATA).map_err(Error::io("open", staging.path()))?))
            }
            (Kind::Loop, None) => Err(Error::precondition(&vol.id, "its filesystem is not mounted")),
            _ => {
                let dir = self.dir(&vol.id);
                Ok((Some(crate::sys::place_at(&dir.0)?), crate::sys::place_at(&dir.data())?))
            }
        }
    }

    /// After the backend staged `vol` at `staging`: its directory has strata's policy of `key`
    /// (set now if it has none and is empty: the first stage) and `key` is in its filesystem's
    /// keyring. A directory whose policy names another key is a wrong key: nothing is added.
    /// True when the record learnt the key identifier (the caller saves it).
    pub(super) fn unlock(&self, vol: &mut Volume, staging: &Place, key: &MasterKey) -> Result<bool> {
        let (own, dir) = self.crypt_places(vol, Some(staging))?;
        let fs = own.as_ref().unwrap_or(staging);
        if vol.backend == Kind::Loop {
            dir.mkdir(0o755).map_err(Error::io("create directory", dir.path()))?;
        }
        let recorded = vol.encryption.as_ref().and_then(Encryption::key_id);
        match self.host.fscrypt_policy(&dir)? {
            Policy::Strata(id) if id != key.id => return Err(wrong_key(&vol.id, &id)),
            Policy::Strata(_) => self.add_key(fs, key)?,
            Policy::None if recorded.is_none() => {
                self.add_key(fs, key)?;
                if let Err(e) = self.host.fscrypt_set_policy(&dir, &key.id) {
                    let _ = self.host.fscrypt_remove_key(fs, &key.id);
                    return Err(not_encryptable(&vol.id, &dir, e));
                }
            }
            found => return Err(unexpected_policy(&vol.id, &dir, found)),
        }
        let Some(enc) = vol.encryption.as_mut().filter(|e| e.key_identifier.is_none()) else { return Ok(false) };
        enc.key_identifier = Some(key.id.hex());
        Ok(true)
    }

    /// Adds `key` to the keyring of `fs`, checking the kernel gave it the identifier strata computed.
    fn add_key(&self, fs: &Place, key: &MasterKey) -> Result<()> {
        let got = self.host.fscrypt_add_key(fs, key.bytes())?;
        if got != key.id {
            let _ = self.host.fscrypt_remove_key(fs, &got);
            let why = format!("the kernel named the key {}, strata computed {}", got.hex(), key.id.hex());
            return Err(Error::Unsupported(format!("this kernel's fscrypt key identifiers ({why})")));
        }
        Ok(())
    }

    /// Removes the volume's key from its filesystem's keyring: a loop volume's on its staging
    /// mount before the unmount (`staging`), a dir volume's after it (`None`). Files still open
    /// keep the key alive: FAILED_PRECONDITION, and the retry asks the kernel again.
    pub(super) fn lock_key(&self, vol: &Volume, staging: Option<&Place>) -> Result<()> {
        if vol.encryption.is_none() || (vol.backend == Kind::Loop) != staging.is_some() {
            return Ok(());
        }
        let (own, dir) = self.crypt_places(vol, staging)?;
        let Some(fs) = own.as_ref().or(staging) else { return Ok(()) };
        let Some(id) = self.key_of(vol, &dir)? else { return Ok(()) };
        let removal = self.host.fscrypt_remove_key(fs, &id)?;
        if removal.files_busy {
            return Err(Error::precondition(
                &vol.id,
                "files in it are still open: its key is gone from the keyring, but open files keep theirs until \
                 they are closed; unstage again once nothing uses them",
            ));
        }
        if !removal.absent {
            tracing::info!(id = %vol.id, key_identifier = %id.hex(), "key removed from the kernel");
        }
        Ok(())
    }

    /// The key identifier of an encrypted volume: its directory's policy, else its record's.
    fn key_of(&self, vol: &Volume, dir: &Place) -> Result<Option<KeyId>> {
        let recorded = vol.encryption.as_ref().and_then(Encryption::key_id);
        // A directory that cannot be read (a stage cut short before it made `data`) leaves the
        // record's word: nothing to remove when that has none either.
        Ok(match self.host.fscrypt_policy(dir) {
            Ok(Policy::Strata(id)) => Some(id),
            _ => recorded,
        })
    }

    /// Refuses to publish an encrypted volume whose key is not in the kernel (a reboot, an
    /// unstage that found files busy): a pod would see names it cannot open.
    pub(super) fn check_unlocked(&self, vol: &Volume, staging: &Place) -> Result<()> {
        let Some(enc) = &vol.encryption else { return Ok(()) };
        let (own, dir) = self.crypt_places(vol, Some(staging))?;
        let fs = own.as_ref().unwrap_or(staging);
        let id = enc.key_id().map_or_else(|| self.key_of(vol, &dir), |id| Ok(Some(id)))?;
        let status = match id {
            Some(id) => self.host.fscrypt_key_status(fs, &id)?,
            None => KeyStatus::Absent,
        };
        if status == KeyStatus::Present {
            return Ok(());
        }
        Err(Error::precondition(
            &vol.id,
            "its key is not in the kernel (an unstage that found files busy removed it, or it was removed by hand): \
             stage it again with its Secret",
        ))
    }

    /// A dir volume that is not staged keeps no key in the kernel: one left by a stage that was
    /// killed after adding it and never retried nor unstaged is removed (at start). Says so.
    pub(super) fn forget_idle_key(&self, vol: &Volume) -> Result<Option<String>> {
        if vol.encryption.is_none() || vol.backend != Kind::Dir || vol.staging.is_some() {
            return Ok(None);
        }
        let (own, dir) = self.crypt_places(vol, None)?;
        let (Some(fs), Some(id)) = (own, self.key_of(vol, &dir)?) else { return Ok(None) };
        if self.host.fscrypt_key_status(&fs, &id)? == KeyStatus::Absent {
            return Ok(None);
        }
        self.lock_key(vol, None)?;
        Ok(Some(format!("removed its key {} from the kernel (it is not staged)", id.hex())))
    }

    /// Whether an encrypted volume's key is in the kernel now (for inspect); `None` when the
    /// volume is not encrypted or the kernel cannot say (a loop volume that is not staged has no
    /// keyring at all: `Some(false)`).
    pub(super) fn key_in_kernel(&self, vol: &Volume) -> Option<bool> {
        vol.encryption.as_ref()?;
        let staging = match (&vol.staging, vol.backend) {
            // Inspect runs beside the server with its own prefixes: a recorded staging outside
            // them is still read (only a key's status, never a change).
            (Some(s), Kind::Loop) => match self.node_place_if_any("staging", &s.path) {
                Ok(Some(place)) => Some(place),
                _ => crate::sys::place_at(&s.path).ok(),
            },
            (None, Kind::Loop) => return Some(false),
            _ => None,
        };
        let (own, dir) = self.crypt_places(vol, staging.as_ref()).ok()?;
        let fs = own.as_ref().or(staging.as_ref())?;
        let id = self.key_of(vol, &dir).ok()??;
        Some(self.host.fscrypt_key_status(fs, &id).ok()? == KeyStatus::Present)
    }

    /// A loop volume's publications bind its encrypted directory, not its filesystem root.
    pub(super) fn publish_source(&self, vol: &Volume, staged: &std::path::Path) -> PathBuf {
        match (&vol.encryption, vol.backend) {
            (Some(_), Kind::Loop) => staged.join(LOOP_DATA),
            _ => staged.to_owned(),
        }
    }
}

fn not_encryptable(id: &str, dir: &Place, e: crate::sys::Error) -> Error {
    let errno = match &e {
        crate::sys::Error::Fscrypt { errno, .. } => Some(*errno),
        _ => None,
    };
    match errno {
        Some(nix::errno::Errno::ENOTEMPTY) => Error::precondition(
            id,
            format!(
                "{} holds files but has no encryption policy; strata never encrypts over files",
                dir.path().display()
            ),
        ),
        _ => e.into(),
    }
}

fn unexpected_policy(id: &str, dir: &Place, found: Policy) -> Error {
    let what = match found {
        Policy::Unsupported => "is on a filesystem that cannot encrypt (an ext4 made without -O encrypt?)",
        Policy::None => "has no encryption policy although its record says the volume was encrypted",
        _ => "has an encryption policy strata did not set",
    };
    Error::precondition(id, format!("its directory {} {what}", dir.path().display()))
}

/// PERMISSION_DENIED: the Secret's key does not open the volume.
pub(super) fn wrong_key(id: &str, recorded: &KeyId) -> Error {
    Error::WrongKey {
        id: id.to_owned(),
        reason: format!(
            "the stage's key does not open it (its key identifier is {}); nothing was changed and no key was added",
            recorded.hex()
        ),
    }
}
