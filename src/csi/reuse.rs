//! A repeated CreateVolume: the volume its name already made, if any, checked against the new
//! request (same name, capacity within the range), so that a retry gets the same volume.

use super::convert;
use super::proto::CapacityRange;
use crate::engine::{CreateRequest, Engine, quote};
use tonic::Status;

/// Whether the volume `req` names exists; if so, checks that it has this name and fits the range,
/// and takes over its size so that the engine sees the same request. ALREADY_EXISTS otherwise.
pub(super) fn reuse(engine: &Engine, req: &mut CreateRequest, range: Option<&CapacityRange>) -> Result<bool, Status> {
    let Some(old) = engine.get_volume(&req.id)? else { return Ok(false) };
    if old.name != req.name {
        return Err(Status::already_exists(format!(
            "volume id {} already belongs to the volume named {}",
            req.id,
            quote(&old.name)
        )));
    }
    if !convert::fits(old.capacity, range)? {
        return Err(Status::already_exists(format!(
            "volume {} exists with {} bytes, outside the requested capacity range",
            quote(&req.name),
            old.capacity
        )));
    }
    req.capacity = old.capacity;
    Ok(true)
}
