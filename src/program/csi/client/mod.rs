//! `strata-csi client`: call any CSI endpoint from a shell. Tables (lists, capacity) or text by
//! default, `-o json|yaml` (or `--json`) for scripts; a gRPC error prints its code and message on
//! one line and exits non-zero.

mod data;
pub(crate) mod output;
mod render;
mod request;
mod table;

use super::cli::{ClientArgs, ClientCommand, OutputFormat};
use crate::csi::client::{connect, why_unreachable};
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::identity_client::IdentityClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::{self as p};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::Channel;

/// Runs one client command and prints its result; the exit code says whether it worked.
pub async fn run(args: ClientArgs) -> ExitCode {
    let format = args.format();
    let channel = match connect(&args.endpoint).await {
        Ok(c) => c,
        Err(e) => {
            let msg = why_unreachable(&args.endpoint, &e);
            return fail(format, "UNAVAILABLE", &msg);
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    let table = table::for_command(&args.command);
    match tokio::time::timeout(timeout, call(channel, args.command)).await {
        Ok(Ok(value)) => {
            output::answer(&value, format, table);
            ExitCode::SUCCESS
        }
        Ok(Err(st)) => fail(format, render::code_name(st.code()), st.message()),
        Err(_) => fail(format, "DEADLINE_EXCEEDED", "no answer within the timeout"),
    }
}

fn fail(format: Option<OutputFormat>, code: &str, message: &str) -> ExitCode {
    output::failure(format, code, message);
    ExitCode::FAILURE
}

/// Makes the call(s) a command stands for and returns the answer as JSON.
async fn call(ch: Channel, cmd: ClientCommand) -> Result<Value, tonic::Status> {
    let mut id = IdentityClient::new(ch.clone());
    let mut ctl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch);
    Ok(match cmd {
        ClientCommand::Info => {
            let info = id.get_plugin_info(p::GetPluginInfoRequest {}).await?.into_inner();
            let probe = id.probe(p::ProbeRequest {}).await?.into_inner();
            let node_info = node.node_get_info(p::NodeGetInfoRequest {}).await.ok();
            render::info(&info, &probe, node_info.map(|r| r.into_inner()).as_ref())
        }
        ClientCommand::Caps => {
            let plugin = id.get_plugin_capabilities(p::GetPluginCapabilitiesRequest {}).await?.into_inner();
            let c = ctl
                .controller_get_capabilities(p::ControllerGetCapabilitiesRequest {})
                .await
                .ok()
                .map(|r| r.into_inner());
            let n = node.node_get_capabilities(p::NodeGetCapabilitiesRequest {}).await.ok().map(|r| r.into_inner());
            render::caps(&plugin, c.as_ref(), n.as_ref())
        }
        ClientCommand::ListVolumes { max_entries, starting_token } => {
            list(&mut ctl, max_entries, starting_token).await?
        }
        other => request::single(&mut ctl, &mut node, other).await?,
    })
}

/// One page if `max_entries` is set, else every page.
async fn list(
    ctl: &mut ControllerClient<Channel>,
    max_entries: i32,
    mut token: String,
) -> Result<Value, tonic::Status> {
    let mut entries = Vec::new();
    loop {
        let page = ctl.list_volumes(p::ListVolumesRequest { max_entries, starting_token: token }).await?.into_inner();
        for e in &page.entries {
            let Some(v) = e.volume.as_ref() else { continue };
            let mut entry = render::volume(v);
            if let Some(status) = &e.status {
                if let Some(c) = &status.volume_condition {
                    entry["condition"] = render::condition(c);
                }
                if !status.published_node_ids.is_empty() {
                    entry["published_node_ids"] = json!(status.published_node_ids);
                }
            }
            entries.push(entry);
        }
        token = page.next_token;
        if max_entries != 0 || token.is_empty() {
            break;
        }
    }
    Ok(json!({"volumes": entries, "next_token": token}))
}
