//! The one table of client commands: which call (or calls) each command makes. The calls
//! themselves are in `identity`, `controller`, `snapshots` and `node`.

use super::args::{content_source, range};
use super::node::Publication;
use super::{controller, identity, node, snapshots};
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::identity_client::IdentityClient;
use crate::csi::proto::node_client::NodeClient;
use crate::program::csi::cli::ClientCommand as C;
use serde_json::Value;
use tonic::Status;
use tonic::transport::Channel;

/// Makes the call(s) a command stands for and returns the answer as JSON.
pub async fn call(ch: Channel, cmd: C) -> Result<Value, Status> {
    let mut id = IdentityClient::new(ch.clone());
    let mut ctl = ControllerClient::new(ch.clone());
    let mut n = NodeClient::new(ch);
    match cmd {
        C::Info => identity::info(&mut id, &mut n).await,
        C::Caps => identity::caps(&mut id, &mut ctl, &mut n).await,
        C::CreateVolume { name, size, limit, params, node, from_snapshot, from_volume, cap } => {
            let source = content_source(from_snapshot, from_volume);
            controller::create_volume(&mut ctl, name, range(size, limit), params, node, source, &cap).await
        }
        C::DeleteVolume { volume_id } => controller::delete_volume(&mut ctl, volume_id).await,
        C::GetVolume { volume_id } => controller::get_volume(&mut ctl, volume_id).await,
        C::ListVolumes { max_entries, starting_token } => {
            controller::list_volumes(&mut ctl, max_entries, starting_token).await
        }
        C::Capacity { params, node, cap } => controller::capacity(&mut ctl, params, node, &cap).await,
        C::Expand { volume_id, size } => controller::expand(&mut ctl, volume_id, size).await,
        C::CreateSnapshot { name, source } => snapshots::create(&mut ctl, name, source).await,
        C::DeleteSnapshot { snapshot_id } => snapshots::delete(&mut ctl, snapshot_id).await,
        C::GetSnapshot { snapshot_id } => snapshots::get(&mut ctl, snapshot_id).await,
        C::ListSnapshots { snapshot_id, source_volume_id, max_entries, starting_token } => {
            snapshots::list(&mut ctl, snapshot_id, source_volume_id, max_entries, starting_token).await
        }
        C::Stage { volume_id, staging_path, secret_files, cap } => {
            node::stage(&mut n, volume_id, &staging_path, &secret_files, &cap).await
        }
        C::Unstage { volume_id, staging_path } => node::unstage(&mut n, volume_id, &staging_path).await,
        C::Publish { volume_id, target_path, staging_path, readonly, context, cap } => {
            let to = Publication { target_path, staging_path, readonly, context };
            node::publish(&mut n, volume_id, to, &cap).await
        }
        C::Unpublish { volume_id, target_path } => node::unpublish(&mut n, volume_id, &target_path).await,
        C::Stats { volume_id, path } => node::stats(&mut n, volume_id, &path).await,
        C::NodeExpand { volume_id, path, size } => node::expand(&mut n, volume_id, &path, size).await,
    }
}
