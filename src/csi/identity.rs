//! The Identity service: who the plugin is, what it offers, and whether it is ready.

use super::Driver;
use super::proto::identity_server::Identity;
use super::proto::plugin_capability::{Service, Type, VolumeExpansion, service, volume_expansion};
use super::proto::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest, GetPluginInfoResponse,
    PluginCapability, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl Identity for Driver {
    async fn get_plugin_info(
        &self,
        _req: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        self.query("GetPluginInfo", "", async {
            Ok(GetPluginInfoResponse {
                name: self.opts.name.clone(),
                vendor_version: env!("CARGO_PKG_VERSION").to_owned(),
                manifest: Default::default(),
            })
        })
        .await
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let service = |t: service::Type| PluginCapability { r#type: Some(Type::Service(Service { r#type: t as i32 })) };
        // Volumes grow while pods use them (see `expand` for ext4 without CAP_SYS_RESOURCE).
        let online_expansion = PluginCapability {
            r#type: Some(Type::VolumeExpansion(VolumeExpansion { r#type: volume_expansion::Type::Online as i32 })),
        };
        self.query("GetPluginCapabilities", "", async {
            Ok(GetPluginCapabilitiesResponse {
                capabilities: vec![
                    service(service::Type::ControllerService),
                    service(service::Type::VolumeAccessibilityConstraints),
                    service(service::Type::GroupControllerService),
                    online_expansion,
                ],
            })
        })
        .await
    }

    async fn probe(&self, _req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        self.query("Probe", "", async {
            let problems = self.problems().await?;
            for p in &problems {
                tracing::warn!(problem = %p, "not ready");
            }
            Ok(ProbeResponse { ready: Some(problems.is_empty()) })
        })
        .await
    }
}
