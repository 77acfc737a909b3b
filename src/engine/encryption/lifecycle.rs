//! The lifecycle of an encrypted volume on the node: the key checked before the host is
//! touched, the policy and the key at stage, the key removed at unstage, publish refused without
//! it, and a dir volume's stray key removed at start.

use super::{Encryption, LOOP_DATA, MasterKey, StageKey};
use crate::backend::Kind;
use crate::engine::{Engine, Error, Result, Volume};
use crate::sys::Place;
use crate::sys::fscrypt::{KeyId, KeyStatus, Policy};
use std::path::PathBuf;

impl Engine {
    /// Refuses `encryption: fscrypt` for a dir volume when the data root's filesystem cannot
    /// encrypt (only ext4 made with `-O encrypt` or given it by `tune2fs -O encrypt` can here).
    pub(in crate::engine) fn check_encryption(&self, kind: Kind) -> Result<()> {
        if kind.formats() {
            return Ok(()); // its own filesystem, made by strata with encryption on
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
    pub(in crate::engine) fn stage_key(&self, vol: &Volume, key: &StageKey) -> Result<Option<MasterKey>> {
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
        match (vol.backend.formats(), staging) {
            (true, Some(staging)) => Ok((None, staging.child(LOOP_DATA).map_err(Error::io("open", staging.path()))?)),
            (true, None) => Err(Error::precondition(&vol.id, "its filesystem is not mounted")),
            (false, _) => {
                let dir = self.dir(&vol.id);
                Ok((Some(crate::sys::place_at(&dir.0)?), crate::sys::place_at(&dir.data())?))
            }
        }
    }

    /// After the backend staged `vol` at `staging`: its directory has strata's policy of `key`
    /// (set now if it has none and is empty: the first stage) and `key` is in its filesystem's
    /// keyring. A directory whose policy names another key is a wrong key: nothing is added.
    /// True when the record learnt the key identifier (the caller saves it).
    pub(in crate::engine) fn unlock(&self, vol: &mut Volume, staging: &Place, key: &MasterKey) -> Result<bool> {
        let (own, dir) = self.crypt_places(vol, Some(staging))?;
        let fs = own.as_ref().unwrap_or(staging);
        if vol.backend.formats() {
            dir.mkdir(0o755).map_err(Error::io("create directory", dir.path()))?;
        }
        let recorded = vol.encryption.as_ref().and_then(Encryption::key_id);
        match self.host.fscrypt_policy(&dir)? {
            Policy::Strata(id) if id != key.id => return Err(wrong_key(&vol.id, &id)),
            Policy::Strata(_) => self.add_key(fs, key)?,
            Policy::None if recorded.is_none() => {
                self.add_key(fs, key)?;
                if let Err(e) = self.host.fscrypt_set_policy(&dir, &key.id) {
                    crate::undo::log("a failed policy: remove the key", self.host.fscrypt_remove_key(fs, &key.id));
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
            crate::undo::log("an unexpected key: remove it", self.host.fscrypt_remove_key(fs, &got));
            let why = format!("the kernel named the key {}, strata computed {}", got.hex(), key.id.hex());
            return Err(Error::Unsupported(format!("this kernel's fscrypt key identifiers ({why})")));
        }
        Ok(())
    }

    /// Removes the volume's key from its filesystem's keyring: a loop volume's on its staging
    /// mount before the unmount (`staging`), a dir volume's after it (`None`). Files still open
    /// keep the key alive: FAILED_PRECONDITION, and the retry asks the kernel again.
    pub(in crate::engine) fn lock_key(&self, vol: &Volume, staging: Option<&Place>) -> Result<()> {
        if vol.encryption.is_none() || vol.backend.formats() != staging.is_some() {
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
    pub(in crate::engine) fn check_unlocked(&self, vol: &Volume, staging: &Place) -> Result<()> {
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
    pub(in crate::engine) fn forget_idle_key(&self, vol: &Volume) -> Result<Option<String>> {
        if vol.encryption.is_none() || vol.backend.formats() || vol.staging.is_some() {
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
    pub(in crate::engine) fn key_in_kernel(&self, vol: &Volume) -> Option<bool> {
        vol.encryption.as_ref()?;
        let staging = match (&vol.staging, vol.backend.formats()) {
            // Inspect runs beside the server with its own prefixes: a recorded staging outside
            // them is still read (only a key's status, never a change).
            (Some(s), true) => match self.node_place_if_any("staging", &s.path) {
                Ok(Some(place)) => Some(place),
                _ => crate::sys::place_at(&s.path).ok(),
            },
            (None, true) => return Some(false),
            _ => None,
        };
        let (own, dir) = self.crypt_places(vol, staging.as_ref()).ok()?;
        let fs = own.as_ref().or(staging.as_ref())?;
        let id = self.key_of(vol, &dir).ok()??;
        Some(self.host.fscrypt_key_status(fs, &id).ok()? == KeyStatus::Present)
    }

    /// A loop volume's publications bind its encrypted directory, not its filesystem root.
    pub(in crate::engine) fn publish_source(&self, vol: &Volume, staged: &std::path::Path) -> PathBuf {
        match (&vol.encryption, vol.backend.formats()) {
            (Some(_), true) => staged.join(LOOP_DATA),
            _ => staged.to_owned(),
        }
    }
}

fn not_encryptable(id: &str, dir: &Place, e: crate::sys::Error) -> Error {
    let errno = match &e {
        crate::sys::Error::Os { action: crate::sys::Action::Fscrypt(_), errno, .. } => Some(*errno),
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
pub(in crate::engine) fn wrong_key(id: &str, recorded: &KeyId) -> Error {
    Error::WrongKey {
        id: id.to_owned(),
        reason: format!(
            "the stage's key does not open it (its key identifier is {}); nothing was changed and no key was added",
            recorded.hex()
        ),
    }
}
