//! Controller-side work behind the thin handlers: create (idempotent by name), capacity,
//! capability validation and paged listing.

use super::convert::{self, i64_of, invalid};
use super::proto::validate_volume_capabilities_response::Confirmed;
use super::proto::{
    CapacityRange, CreateVolumeRequest, GetCapacityRequest, GetCapacityResponse, ListVolumesRequest,
    ListVolumesResponse, ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse,
    list_volumes_response::Entry,
};
use super::volume_id::VolumeId;
use super::{Driver, require};
use crate::engine::{CreateRequest, Engine, Volume};
use tonic::Status;

/// Prefix of ListVolumes tokens; the rest is the last engine id already returned.
const TOKEN_PREFIX: &str = "after:";

impl Driver {
    pub(super) async fn create(&self, r: CreateVolumeRequest) -> Result<Volume, Status> {
        require(&r.name, "name")?;
        if r.volume_capabilities.is_empty() {
            return Err(invalid("volume_capabilities is required".into()));
        }
        if r.volume_content_source.is_some() {
            return Err(invalid("creating a volume from a snapshot or another volume is not supported".into()));
        }
        if !r.mutable_parameters.is_empty() {
            return Err(invalid("mutable_parameters are not supported".into()));
        }
        let want = convert::wanted(&r.parameters, &r.volume_capabilities, &self.opts.backends)?;
        if !convert::accessible(r.accessibility_requirements.as_ref(), &self.opts.node_id) {
            return Err(Status::resource_exhausted(format!(
                "volumes of this driver live on the node that creates them ({}), which the \
                 requisite topology excludes",
                self.opts.node_id
            )));
        }
        let req = CreateRequest {
            id: VolumeId::for_name(&r.name, &self.node_tag).local,
            capacity: convert::capacity(r.capacity_range.as_ref(), &want)?,
            name: r.name,
            backend: want.kind,
            fs_type: want.fs_type,
            parameters: convert::sorted(&r.parameters),
        };
        let range = r.capacity_range;
        self.blocking(move |e| create_or_reuse(e, req, range.as_ref())).await
    }

    pub(super) async fn capacity(&self, r: GetCapacityRequest) -> Result<GetCapacityResponse, Status> {
        let want = convert::wanted(&r.parameters, &r.volume_capabilities, &self.opts.backends)?;
        let elsewhere = r.accessible_topology.as_ref().is_some_and(|t| !convert::is_here(t, &self.opts.node_id));
        let free = if elsewhere { 0 } else { self.blocking(move |e| e.free_bytes(want.kind)).await? };
        Ok(GetCapacityResponse {
            available_capacity: i64_of(free),
            maximum_volume_size: Some(i64_of(free)),
            minimum_volume_size: Some(i64_of(convert::min_capacity(&want))),
        })
    }

    pub(super) async fn validate(
        &self,
        r: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Status> {
        require(&r.volume_id, "volume_id")?;
        if r.volume_capabilities.is_empty() {
            return Err(invalid("volume_capabilities is required".into()));
        }
        let local = self.local(&r.volume_id)?;
        let vol = self.blocking(move |e| existing(e, &local)).await?;
        let want = convert::wanted_of(&vol);
        let refusal = r
            .volume_capabilities
            .iter()
            .find_map(|c| convert::check_capability(c, &want).err())
            .or_else(|| params_differ(&r, &vol));
        Ok(match refusal {
            Some(message) => ValidateVolumeCapabilitiesResponse { confirmed: None, message },
            None => ValidateVolumeCapabilitiesResponse {
                confirmed: Some(Confirmed {
                    volume_context: r.volume_context,
                    volume_capabilities: r.volume_capabilities,
                    parameters: r.parameters,
                    mutable_parameters: r.mutable_parameters,
                }),
                message: String::new(),
            },
        })
    }

    pub(super) async fn list(&self, r: ListVolumesRequest) -> Result<ListVolumesResponse, Status> {
        let after = parse_token(&r.starting_token)?;
        let max = usize::try_from(r.max_entries).map_err(|_| invalid("max_entries is negative".into()))?;
        let vols = self.blocking(|e| e.list_volumes()).await?;
        let mut rest = vols.into_iter().filter(|v| after.as_deref().is_none_or(|a| v.id.as_str() > a)).peekable();
        let mut entries = Vec::new();
        let mut last = None;
        while max == 0 || entries.len() < max {
            let Some(v) = rest.next() else { break };
            entries.push(Entry { volume: Some(convert::volume(&v, &self.node_tag, &self.opts.node_id)), status: None });
            last = Some(v.id);
        }
        let more = rest.peek().is_some();
        Ok(ListVolumesResponse {
            entries,
            next_token: match (more, last) {
                (true, Some(id)) => format!("{TOKEN_PREFIX}{id}"),
                _ => String::new(),
            },
        })
    }
}

/// Returns the volume of this name if it exists and fits the range (reusing its size so the
/// engine sees the same request), else creates it; ALREADY_EXISTS when it does not fit.
fn create_or_reuse(engine: &Engine, mut req: CreateRequest, range: Option<&CapacityRange>) -> Result<Volume, Status> {
    if let Some(old) = engine.get_volume(&req.id)? {
        if old.name != req.name {
            return Err(Status::already_exists(format!(
                "volume id {} already belongs to the volume named {:?}",
                req.id, old.name
            )));
        }
        if !convert::fits(old.capacity, range)? {
            return Err(Status::already_exists(format!(
                "volume {:?} exists with {} bytes, outside the requested capacity range",
                req.name, old.capacity
            )));
        }
        req.capacity = old.capacity;
    }
    Ok(engine.create_volume(&req)?)
}

/// The volume's record, or NOT_FOUND.
pub(super) fn existing(engine: &Engine, local: &str) -> Result<Volume, Status> {
    engine.get_volume(local)?.ok_or_else(|| Status::not_found(format!("volume {local} does not exist")))
}

/// Why the request's parameters do not describe the volume, if they do not.
fn params_differ(r: &ValidateVolumeCapabilitiesRequest, vol: &Volume) -> Option<String> {
    if r.parameters.is_empty() {
        return None;
    }
    match convert::wanted(&r.parameters, &[], &crate::backend::Kind::ALL) {
        Ok(w) if w.kind == vol.backend && w.fs_type.is_none_or(|f| Some(f) == vol.fs_type) => None,
        Ok(_) => Some(format!(
            "the parameters describe another kind of volume than {} ({}{})",
            vol.id,
            vol.backend.as_str(),
            vol.fs_type.map(|f| format!(", {}", f.as_str())).unwrap_or_default()
        )),
        Err(e) => Some(e.message().to_owned()),
    }
}

/// The last id a previous page returned; ABORTED for a token this driver did not hand out.
fn parse_token(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(TOKEN_PREFIX)
        .filter(|id| crate::engine::validate::id("volume", id).is_ok())
        .map(|id| Some(id.to_owned()))
        .ok_or_else(|| Status::aborted(format!("starting_token {token:?} is not a token of this driver")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_abort() {
        assert_eq!(parse_token("").unwrap(), None);
        assert_eq!(parse_token("after:pvc-1").unwrap().as_deref(), Some("pvc-1"));
        for bad in ["invalid-token", "after:", "after:../x", "12"] {
            assert_eq!(parse_token(bad).unwrap_err().code(), tonic::Code::Aborted, "{bad}");
        }
    }
}
