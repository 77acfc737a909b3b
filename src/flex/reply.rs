//! The one JSON reply kubelet reads, and the one place that turns a result into it.

use super::Result;
use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;

/// `status` as kubelet reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Success,
    #[serde(rename = "Not supported")]
    NotSupported,
    Failure,
}

/// What `init` reports. Every field is stated: kubelet keeps its defaults for missing ones.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Capabilities {
    pub attach: bool,
    #[serde(rename = "selinuxRelabel")]
    pub selinux_relabel: bool,
    #[serde(rename = "fsGroup")]
    pub fs_group: bool,
    #[serde(rename = "supportsMetrics")]
    pub supports_metrics: bool,
    #[serde(rename = "requiresFSResize")]
    pub requires_fs_resize: bool,
}

/// strata-flex's capabilities: no attach/detach (mount does everything), kubelet relabels,
/// chowns for fsGroup, reads metrics with statfs, and calls `expandfs` after a resize.
pub const CAPABILITIES: Capabilities = Capabilities {
    attach: false,
    selinux_relabel: true,
    fs_group: true,
    supports_metrics: true,
    requires_fs_resize: true,
};

/// One reply object.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached: Option<bool>,
}

impl Reply {
    pub fn success(message: impl Into<String>) -> Reply {
        Reply { status: Status::Success, message: message.into(), capabilities: None, attached: None }
    }

    pub fn not_supported(message: impl Into<String>) -> Reply {
        Reply { status: Status::NotSupported, ..Reply::success(message) }
    }

    pub fn failure(message: impl Into<String>) -> Reply {
        Reply { status: Status::Failure, ..Reply::success(message) }
    }

    /// Exit code: 0 for Success and Not supported, 1 for Failure.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            Status::Success | Status::NotSupported => 0,
            Status::Failure => 1,
        }
    }
}

/// The one error mapping of the front-end: an error becomes a Failure carrying its message.
pub fn from_result(result: Result<Reply>) -> Reply {
    match result {
        Ok(reply) => reply,
        Err(e) => {
            tracing::warn!(error = %e, "failed");
            Reply::failure(e.to_string())
        }
    }
}

/// Where the reply goes; taken by the first [`emit`], so there is never a second object.
static OUT: Mutex<Option<Box<dyn Write + Send>>> = Mutex::new(None);

/// Sets the stream the reply is written to (stdout, or the descriptor saved from it).
pub fn set_output(out: Box<dyn Write + Send>) {
    if let Ok(mut slot) = OUT.lock() {
        *slot = Some(out);
    }
}

/// Writes the reply (one compact JSON object and a newline) and returns the exit code.
/// Only the first call writes; later calls (a panic after the reply) write nothing.
pub fn emit(reply: &Reply) -> i32 {
    let out = match OUT.lock() {
        Ok(mut slot) => slot.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(mut out) = out {
        let mut text = serde_json::to_vec(reply)
            .unwrap_or_else(|_| br#"{"status":"Failure","message":"strata-flex could not encode its reply"}"#.to_vec());
        text.push(b'\n');
        let _ = out.write_all(&text).and_then(|()| out.flush());
    }
    reply.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_reply_states_every_capability() {
        let reply = Reply { capabilities: Some(CAPABILITIES), ..Reply::success("") };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"status":"Success","message":"","capabilities":{"attach":false,"selinuxRelabel":true,"fsGroup":true,"supportsMetrics":true,"requiresFSResize":true}}"#
        );
    }

    #[test]
    fn statuses_and_exit_codes() {
        let ns = Reply::not_supported("x");
        assert_eq!(serde_json::to_string(&ns).unwrap(), r#"{"status":"Not supported","message":"x"}"#);
        assert_eq!(ns.exit_code(), 0);
        assert_eq!(Reply::success("").exit_code(), 0);
        assert_eq!(Reply::failure("").exit_code(), 1);
    }

    #[test]
    fn errors_become_failures_with_their_message() {
        let err = super::super::Error::Option { key: "size".into(), reason: "is zero".into() };
        let reply = from_result(Err(err));
        assert_eq!(reply.status, Status::Failure);
        assert_eq!(reply.message, "option \"size\" is zero");
    }
}
