//! The driver: an engine over the configured root, a per-volume flex lock, and finding or
//! creating the volume that a call's options name.

use super::config::Config;
use super::options::{ALLOCATION, Options, loop_fs_type};
use super::{Error, Result};
use crate::backend::Kind;
use crate::engine::lock::VolumeLock;
use crate::engine::{self, CreateRequest, Engine, Volume, Wait, size};
use crate::sys::{FsType, LinuxHost};
use std::path::PathBuf;
use std::sync::Arc;

/// The engine plus the settings of this call.
#[derive(Debug)]
pub struct Driver {
    pub engine: Engine,
    pub cfg: Config,
}

impl Driver {
    /// Opens the engine: targets must lie under the kubelet dir, locks wait as kubelet does.
    pub fn open(cfg: Config) -> Result<Driver> {
        let engine_cfg = engine::Config {
            root: cfg.root.clone(),
            allowed_prefixes: vec![cfg.kubelet_dir.clone()],
            wait: Wait::Upto(cfg.lock_wait),
            overcommit: cfg.overcommit.clone(),
        };
        let engine = Engine::new(engine_cfg, Arc::new(LinuxHost))?;
        Ok(Driver { engine, cfg })
    }

    /// Holds volume `id` for a whole mount or unmount, which is several engine calls: a
    /// concurrent unmount must not unstage between this mount's stage and publish. It is a
    /// lock of its own (a byte of `<root>/locks/flex/ids.lock`), taken before any engine lock.
    pub fn hold(&self, id: &str) -> Result<VolumeLock> {
        let dir = self.engine.flex_lock_dir();
        engine::perm::make_dir(&dir)?;
        Ok(VolumeLock::acquire(&dir, id, Wait::Upto(self.cfg.lock_wait))?)
    }

    /// The flex staging path of a volume: one per node, shared by every pod.
    pub fn staging(&self, id: &str) -> PathBuf {
        self.engine.default_staging(id)
    }

    /// The volume the options name; created (and `true`) if it is new.
    pub fn find_or_create(&self, opts: &Options) -> Result<(Volume, bool)> {
        if let Some(vol) = self.existing(opts)? {
            matches(&vol, opts)?;
            return Ok((vol, false));
        }
        let req = create_request(opts)?;
        Ok((self.engine.create_volume(&req)?, true))
    }
}

impl Driver {
    /// The volume the options name if it exists; a `volumeID` that names none is an error.
    pub fn existing(&self, opts: &Options) -> Result<Option<Volume>> {
        let vol = self.engine.get_volume(&opts.id)?;
        if vol.is_none() && opts.by_volume_id {
            return Err(Error::NoSuchVolume { id: opts.id.clone() });
        }
        Ok(vol)
    }
}

/// The create request for a new volume, sized by the engine's policy (1 GiB when `size` is
/// unset, raised to the kind's minimum, e.g. 300 MiB for xfs). Only volume-defining options go
/// in, never pod keys, so a second pod's mount is the same request.
fn create_request(opts: &Options) -> Result<CreateRequest> {
    let backend = opts.backend.unwrap_or(Kind::Dir);
    let fs_type = fs_type(backend, &opts.fs_type)?;
    Ok(CreateRequest {
        id: opts.id.clone(),
        name: opts.name.clone(),
        backend,
        capacity: size::for_new(backend, fs_type, opts.size.unwrap_or(0), 0)?,
        fs_type,
        parameters: opts
            .allocation
            .iter()
            .map(|a| (ALLOCATION.to_owned(), a.clone()))
            .chain(opts.devices.iter().map(|d| (super::options::DEVICES.to_owned(), d.clone())))
            .chain(super::encryption::parameter(opts.encryption.as_ref()))
            .collect(),
    })
}

/// The fs type for `backend`: ext4 or xfs for loop (ext4 when unset); others ignore it.
fn fs_type(backend: Kind, name: &str) -> Result<Option<FsType>> {
    if backend.formats() {
        return loop_fs_type(name).map(Some);
    }
    if !name.is_empty() {
        tracing::info!(fs_type = name, backend = backend.as_str(), "fsType ignored");
    }
    Ok(None)
}

/// An existing volume must agree with what the options state explicitly. A different size is
/// fine: the volume may have been expanded since the PV was written.
fn matches(vol: &Volume, opts: &Options) -> Result<()> {
    let differ = |what, had: &str, asked: &str| Error::Mismatch {
        id: vol.id.clone(),
        what,
        had: had.to_owned(),
        asked: asked.to_owned(),
    };
    if let Some(b) = opts.backend {
        if b != vol.backend {
            return Err(differ("backend", vol.backend.as_str(), b.as_str()));
        }
    }
    if vol.backend.formats() && !opts.fs_type.is_empty() {
        let had = vol.fs_type.unwrap_or(FsType::Ext4);
        if FsType::parse(&opts.fs_type) != Some(had) {
            return Err(differ("fsType", had.as_str(), &opts.fs_type));
        }
    }
    let wanted = opts.encryption.as_deref().is_some_and(|e| !e.is_empty() && e != "none");
    if opts.encryption.is_some() && wanted != vol.encryption.is_some() {
        let (had, asked) = if wanted { ("none", "fscrypt") } else { ("fscrypt", "none") };
        return Err(differ("encryption", had, asked));
    }
    if let Some(size) = opts.size.filter(|s| *s != vol.capacity) {
        tracing::info!(id = %vol.id, capacity = vol.capacity, size, "size option differs from the volume; using the volume");
    }
    Ok(())
}
