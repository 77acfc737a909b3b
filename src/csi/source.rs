//! CreateVolume with a content source: restore a snapshot or clone a volume, on the node that
//! holds the source, into the same backend and fs type and at least the source's size.
//!
//! A source id of another node names something that exists but cannot be copied here. The
//! answer is not NOT_FOUND (the source exists, and NOT_FOUND is final for the provisioner) but:
//! - RESOURCE_EXHAUSTED when the request carries accessibility requirements: the spec's "unable
//!   to provision in accessible_topology". With late binding, external-provisioner then gives the
//!   volume back to the scheduler (ProvisioningReschedule), which may pick the source's node;
//! - INVALID_ARGUMENT without them: the spec's "source incompatible", since this instance can
//!   only make volumes here.
//!
//! Ids strata never makes are NOT_FOUND, as are sources of this node that do not exist.

use super::convert::{self, invalid};
use super::proto::volume_content_source::Type;
use super::proto::{CapacityRange, VolumeContentSource};
use super::reuse::reuse;
use super::volume_id::VolumeId;
use super::{Driver, require};
use crate::engine::{CopyJob, CreateRequest, Engine, Error, Source, Volume};
use tonic::Status;

impl Driver {
    /// The engine source a content source names, if it lies on this node.
    pub(super) fn source_of(&self, src: &VolumeContentSource, with_topology: bool) -> Result<Source, Status> {
        let (kind, id) = match &src.r#type {
            Some(Type::Snapshot(s)) => ("snapshot", s.snapshot_id.as_str()),
            Some(Type::Volume(v)) => ("volume", v.volume_id.as_str()),
            None => return Err(invalid("volume_content_source names neither a snapshot nor a volume".into())),
        };
        require(id, &format!("volume_content_source.{kind}_id"))?;
        let Some(parsed) = VolumeId::parse(id) else {
            return Err(Status::not_found(format!("source {kind} {id} does not exist (not a strata {kind} id)")));
        };
        if parsed.node_tag != self.node_tag {
            let msg = format!(
                "source {kind} {id} lives on node {}; strata copies it only there, and this is node {}",
                parsed.node_tag, self.opts.node_id
            );
            return Err(if with_topology { Status::resource_exhausted(msg) } else { invalid(msg) });
        }
        Ok(match kind {
            "snapshot" => Source::Snapshot(parsed.local),
            _ => Source::Volume(parsed.local),
        })
    }
}

/// Creates the volume from `source` (or finds it if this request made it before), with the copy
/// still to run, if any. Its size is the larger of the required bytes and the source's size;
/// OUT_OF_RANGE if that breaks the limit.
pub fn create_from(
    engine: &Engine,
    mut req: CreateRequest,
    range: Option<&CapacityRange>,
    source: &Source,
) -> Result<(Volume, Option<CopyJob>), Status> {
    if !reuse(engine, &mut req, range)? {
        let (required, limit) = convert::bounds(range)?;
        let size = source_size(engine, source)?;
        req.capacity = crate::engine::size::for_copy(req.backend, required, size, limit)?;
    }
    Ok(engine.start_volume_from(&req, source)?)
}

/// The size of a source: the snapshot's recorded size or the volume's capacity.
fn source_size(engine: &Engine, source: &Source) -> Result<u64, Status> {
    Ok(match source {
        Source::Snapshot(id) => engine.get_snapshot(id)?.ok_or_else(|| Error::SnapshotNotFound(id.clone()))?.size_bytes,
        Source::Volume(id) => engine.get_volume(id)?.ok_or_else(|| Error::VolumeNotFound(id.clone()))?.capacity,
    })
}
