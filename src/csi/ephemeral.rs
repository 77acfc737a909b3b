//! CSI ephemeral inline volumes: kubelet sends NodePublishVolume with
//! `csi.storage.k8s.io/ephemeral=true` and a volume id of its own. strata then creates a `tmpfs`
//! (or `dir`) volume, stages it at the engine's default staging path and binds it into the pod;
//! NodeUnpublishVolume tears all of that down again.

use super::Driver;
use super::convert::{self, invalid};
use super::proto::NodePublishVolumeRequest;
use super::volume_id::{VolumeId, ephemeral_local};
use crate::backend::Kind;
use crate::engine::{Access, CreateRequest, Engine, quote};
use crate::sys::MountOptions;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tonic::Status;

/// The volume context key that marks an ephemeral inline volume.
pub const EPHEMERAL_KEY: &str = "csi.storage.k8s.io/ephemeral";
/// Volume attribute choosing the size (`64Mi`, `1G`, bytes).
pub const SIZE_KEY: &str = "size";
/// The pod information kubelet passes that is recorded with an ephemeral volume.
const RECORDED_POD_INFO: [&str; 4] = [
    "csi.storage.k8s.io/pod.name",
    "csi.storage.k8s.io/pod.namespace",
    "csi.storage.k8s.io/pod.uid",
    "csi.storage.k8s.io/serviceAccount.name",
];
/// Size of an ephemeral volume whose attributes name none.
const DEFAULT_SIZE: u64 = 256 << 20;

/// Whether a publish asks for an ephemeral inline volume.
pub fn requested(ctx: &HashMap<String, String>) -> bool {
    ctx.get(EPHEMERAL_KEY).is_some_and(|v| v == "true")
}

impl Driver {
    pub(super) async fn publish_ephemeral(
        &self,
        r: NodePublishVolumeRequest,
    ) -> Result<super::proto::NodePublishVolumeResponse, Status> {
        let cap = r.volume_capability.clone().unwrap_or_default();
        let Access::Mount { flags } = convert::access(&cap)? else {
            return Err(invalid("ephemeral volumes are filesystems, not block devices".into()));
        };
        if self.persistent(&r.volume_id) {
            return Err(invalid(format!(
                "ephemeral volume id {} has the form of a persistent strata volume id",
                r.volume_id
            )));
        }
        let req = create_request(&r.volume_id, &r.volume_context)?;
        if !self.opts.backends.contains(&req.backend) {
            return Err(invalid(format!(
                "backend {} is not enabled on this driver (see --backends)",
                req.backend.as_str()
            )));
        }
        let readonly = r.readonly || convert::reader_only(&cap);
        let target = PathBuf::from(&r.target_path);
        tracing::info!(local = %VolumeId::new(&req.id, &self.node_tag), "ephemeral volume");
        self.blocking(move |e| setup(e, &req, Access::Mount { flags }, &target, readonly)).await?;
        Ok(super::proto::NodePublishVolumeResponse {})
    }

    pub(super) async fn unpublish_ephemeral(
        &self,
        kubelet_id: &str,
        target: PathBuf,
    ) -> Result<super::proto::NodeUnpublishVolumeResponse, Status> {
        let local = ephemeral_local(kubelet_id);
        self.blocking(move |e| teardown(e, &local, &target)).await?;
        Ok(super::proto::NodeUnpublishVolumeResponse {})
    }

    /// Whether `volume_id` has the form of a persistent strata volume id (of any node).
    pub(super) fn persistent(&self, volume_id: &str) -> bool {
        VolumeId::parse(volume_id).is_some()
    }

    /// The engine id for a persistent id of this node, or for a kubelet-made ephemeral id.
    pub(super) fn local_or_ephemeral(&self, volume_id: &str) -> Result<String, Status> {
        if self.persistent(volume_id) { self.local(volume_id) } else { Ok(ephemeral_local(volume_id)) }
    }
}

/// The engine volume for an ephemeral publish: backend and size from the volume attributes.
fn create_request(kubelet_id: &str, ctx: &HashMap<String, String>) -> Result<CreateRequest, Status> {
    let known = |k: &str| k == SIZE_KEY || k == convert::PARAM_BACKEND || k.starts_with(convert::K8S_PREFIX);
    if let Some(k) = ctx.keys().find(|k| !known(k)) {
        return Err(invalid(format!(
            "unknown volume attribute {}; ephemeral volumes take {SIZE_KEY:?} and {:?}",
            quote(k),
            convert::PARAM_BACKEND
        )));
    }
    let backend = match ctx.get(convert::PARAM_BACKEND).map(String::as_str) {
        None | Some("") | Some("tmpfs") => Kind::Tmpfs,
        Some("dir") => Kind::Dir,
        Some(other) => {
            return Err(invalid(format!("ephemeral volumes use backend tmpfs or dir, not {}", quote(other))));
        }
    };
    let capacity = match ctx.get(SIZE_KEY) {
        None => DEFAULT_SIZE,
        Some(s) => crate::quantity::parse_bytes(s).map_err(|reason| invalid(format!("size {} {reason}", quote(s))))?,
    };
    // Only stable attributes are recorded: kubelet may add service account tokens that change
    // on every publish (and must never be written to disk).
    let mut parameters: BTreeMap<String, String> = ctx
        .iter()
        .filter(|(k, _)| !k.starts_with(convert::K8S_PREFIX) || RECORDED_POD_INFO.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    parameters.insert(EPHEMERAL_KEY.to_owned(), "true".to_owned());
    Ok(CreateRequest {
        id: ephemeral_local(kubelet_id),
        name: kubelet_id.to_owned(),
        backend,
        capacity,
        fs_type: None,
        parameters,
    })
}

/// Creates, stages and publishes; a volume this call created is removed again on failure.
fn setup(e: &Engine, req: &CreateRequest, access: Access, target: &Path, readonly: bool) -> Result<(), Status> {
    let created = e.get_volume(&req.id)?.is_none();
    let staging = e.default_staging(&req.id);
    let flags = match &access {
        Access::Mount { flags } => flags.clone(),
        Access::Block => Vec::new(),
    };
    let opts = MountOptions { readonly, options: flags };
    let result = e
        .create_volume(req)
        .and_then(|_| e.stage_volume(&req.id, &staging, &access))
        .and_then(|()| e.publish_volume_with(&req.id, &staging, target, &opts));
    if let Err(err) = result {
        if created {
            if let Err(undo) = teardown(e, &req.id, target) {
                tracing::warn!(error = %undo, "could not remove the half-made ephemeral volume");
            }
        }
        return Err(err.into());
    }
    Ok(())
}

/// Unpublishes `target`; when no other publication remains, unstages and deletes the volume.
fn teardown(e: &Engine, local: &str, target: &Path) -> Result<(), Status> {
    e.unpublish_volume(local, target)?;
    let Some(vol) = e.get_volume(local)? else {
        return Ok(());
    };
    if vol.parameters.get(EPHEMERAL_KEY).is_none_or(|v| v != "true") {
        return Err(Status::failed_precondition(format!("volume {local} is not an ephemeral volume")));
    }
    if !e.live_publications(local)?.is_empty() {
        return Ok(());
    }
    e.unstage_volume(local, &e.default_staging(local))?;
    e.delete_volume(local)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn attributes_choose_backend_and_size() {
        let base = [(EPHEMERAL_KEY, "true"), ("csi.storage.k8s.io/pod.name", "p")];
        let mut with_token = base.to_vec();
        with_token.push(("csi.storage.k8s.io/serviceAccount.tokens", "{\"secret\"}"));
        let r = create_request("csi-1", &ctx(&with_token)).unwrap();
        assert!(!r.parameters.keys().any(|k| k.contains("tokens")), "{:?}", r.parameters);
        assert_eq!(r.parameters.get("csi.storage.k8s.io/pod.name").map(String::as_str), Some("p"));
        assert_eq!((r.backend, r.capacity), (Kind::Tmpfs, DEFAULT_SIZE));
        assert_eq!(r.id, ephemeral_local("csi-1"));
        assert_eq!(r.parameters.get(EPHEMERAL_KEY).map(String::as_str), Some("true"));
        let mut more = base.to_vec();
        more.extend([("backend", "dir"), ("size", "64Mi")]);
        let r = create_request("csi-1", &ctx(&more)).unwrap();
        assert_eq!((r.backend, r.capacity), (Kind::Dir, 64 << 20));
    }

    #[test]
    fn bad_attributes_are_refused() {
        for bad in [[("backend", "loop")], [("size", "lots")], [("colour", "red")], [("size", "0")]] {
            let err = create_request("csi-1", &ctx(&bad)).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }
}
