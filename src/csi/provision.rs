//! Controller-side work behind the thin handlers: create (idempotent by name, see `reuse`; from a
//! content source in `source`), capacity, capability validation and paged listing with volume
//! health.

use super::convert::{self, i64_of, invalid};
use super::copies::Pending;
use super::proto::validate_volume_capabilities_response::Confirmed;
use super::proto::{
    CapacityRange, CreateVolumeRequest, GetCapacityRequest, GetCapacityResponse, ListVolumesRequest,
    ListVolumesResponse, ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse, VolumeCondition,
    list_volumes_response::Entry, list_volumes_response::VolumeStatus,
};
use super::reuse::reuse;
use super::source::create_from;
use super::volume_id::VolumeId;
use super::{Driver, paging, require};
use crate::backend::Kind;
use crate::engine::{Condition, CreateRequest, Engine, Quarantine, Volume, size};
use tonic::Status;

impl Driver {
    pub(super) async fn create(&self, r: CreateVolumeRequest) -> Result<Volume, Status> {
        require(&r.name, "name")?;
        if r.volume_capabilities.is_empty() {
            return Err(invalid("volume_capabilities is required".into()));
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
        let with_topology = r.accessibility_requirements.is_some();
        let source = r.volume_content_source.as_ref().map(|s| self.source_of(s, with_topology)).transpose()?;
        let req = CreateRequest {
            id: VolumeId::for_name(&r.name, &self.node_tag).local,
            capacity: convert::capacity(r.capacity_range.as_ref(), &want)?,
            name: r.name,
            backend: want.kind,
            fs_type: want.fs_type,
            parameters: convert::sorted(&r.parameters),
        };
        let range = r.capacity_range;
        let Some(source) = source else {
            return self.quick(move |e| create_or_reuse(e, req.clone(), range.as_ref())).await;
        };
        let start = std::sync::Arc::new(move |e: &Engine| {
            create_from(e, req.clone(), range.as_ref(), &source).map(|(vol, job)| (vol, job.into_iter().collect()))
        });
        let vol = self.with_copy(start, super::copies::VOLUME_WAIT).await?;
        match vol.pending() {
            Some(key) => Err(self.engine.copying(&key).into()),
            None => Ok(vol),
        }
    }

    /// GetCapacity. A backend this server does not enable has no capacity here: 0 bytes, an
    /// answer (said once at start, see `log_readiness`), not an error the capacity tracker would
    /// log at every poll; the scheduler then never places that class's volumes on this node.
    pub(super) async fn capacity(&self, r: GetCapacityRequest) -> Result<GetCapacityResponse, Status> {
        let want = convert::wanted(&r.parameters, &r.volume_capabilities, &Kind::ALL)?;
        let elsewhere = r.accessible_topology.as_ref().is_some_and(|t| !convert::is_here(t, &self.opts.node_id));
        let here = !elsewhere && self.opts.backends.contains(&want.kind);
        let free = if here { self.blocking(move |e| e.free_bytes(want.kind)).await? } else { 0 };
        Ok(GetCapacityResponse {
            available_capacity: i64_of(free),
            maximum_volume_size: Some(i64_of(free)),
            minimum_volume_size: Some(i64_of(size::minimum(want.kind, want.fs_type))),
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
        let (token, max) = (r.starting_token, r.max_entries);
        let (page, conditions, next_token) = self
            .blocking(move |e| -> Result<_, Status> {
                // The page is cut from the names; only its records are read.
                let (ids, next) = paging::page(e.volume_names()?, String::as_str, &token, max, "volume")?;
                let mut page = Vec::with_capacity(ids.len());
                for id in &ids {
                    match e.listed(id)? {
                        Some(Ok(v)) => page.push(Listed::Good(Box::new(v))),
                        Some(Err(q)) => page.push(Listed::Quarantined(q)),
                        None => {}
                    }
                }
                let good: Vec<Volume> = page
                    .iter()
                    .filter_map(|l| if let Listed::Good(v) = l { Some((**v).clone()) } else { None })
                    .collect();
                let conditions = e.volume_conditions(&good)?;
                Ok((page, conditions, next))
            })
            .await?;
        let mut conditions = conditions.into_iter();
        let entries = page
            .iter()
            .map(|l| {
                let (volume, c) = match l {
                    Listed::Good(v) => (convert::volume(v, &self.node_tag, &self.opts.node_id), conditions.next()),
                    Listed::Quarantined(q) => (self.quarantined_volume(q), Some(quarantined_condition(q))),
                };
                let status = VolumeStatus { published_node_ids: Vec::new(), volume_condition: c.map(condition) };
                Entry { volume: Some(volume), status: Some(status) }
            })
            .collect();
        Ok(ListVolumesResponse { entries, next_token })
    }

    /// What CSI shows of a quarantined volume: its id on this node, no capacity.
    pub(super) fn quarantined_volume(&self, q: &Quarantine) -> super::proto::Volume {
        super::proto::Volume {
            volume_id: VolumeId::new(&q.id, &self.node_tag).to_string(),
            accessible_topology: vec![convert::topology(&self.opts.node_id)],
            ..Default::default()
        }
    }
}

/// A volume as ListVolumes shows it: readable, or in quarantine.
#[derive(Debug)]
enum Listed {
    Good(Box<Volume>),
    Quarantined(Quarantine),
}

/// The abnormal condition of a quarantined volume, saying what is wrong and where.
pub(super) fn quarantined_condition(q: &Quarantine) -> Condition {
    Condition { abnormal: true, message: format!("quarantined: {}; see `strata-csi repair`", q.reason) }
}

/// Returns the volume of this name if it exists and fits the range, else creates it.
fn create_or_reuse(engine: &Engine, mut req: CreateRequest, range: Option<&CapacityRange>) -> Result<Volume, Status> {
    reuse(engine, &mut req, range)?;
    Ok(engine.create_volume(&req)?)
}

/// An engine condition as CSI's.
pub(super) fn condition(c: Condition) -> VolumeCondition {
    VolumeCondition { abnormal: c.abnormal, message: c.message }
}

/// The volume's record with its live publications, or NOT_FOUND.
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
