//! Client commands that describe the plugin: `info` (name, version, readiness, node) and `caps`
//! (plugin, controller and node capabilities).

use super::render;
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::identity_client::IdentityClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::{self as p};
use serde_json::Value;
use tonic::Status;
use tonic::transport::Channel;

/// GetPluginInfo and Probe, and NodeGetInfo when the endpoint serves the Node service.
pub async fn info(id: &mut IdentityClient<Channel>, node: &mut NodeClient<Channel>) -> Result<Value, Status> {
    let info = id.get_plugin_info(p::GetPluginInfoRequest {}).await?.into_inner();
    let probe = id.probe(p::ProbeRequest {}).await?.into_inner();
    let node_info = node.node_get_info(p::NodeGetInfoRequest {}).await.ok();
    Ok(render::info(&info, &probe, node_info.map(|r| r.into_inner()).as_ref()))
}

/// The plugin's capabilities, and the controller's and node's where those services answer.
pub async fn caps(
    id: &mut IdentityClient<Channel>,
    ctl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
) -> Result<Value, Status> {
    let plugin = id.get_plugin_capabilities(p::GetPluginCapabilitiesRequest {}).await?.into_inner();
    let c = ctl.controller_get_capabilities(p::ControllerGetCapabilitiesRequest {}).await.ok().map(|r| r.into_inner());
    let n = node.node_get_capabilities(p::NodeGetCapabilitiesRequest {}).await.ok().map(|r| r.into_inner());
    Ok(render::caps(&plugin, c.as_ref(), n.as_ref()))
}
