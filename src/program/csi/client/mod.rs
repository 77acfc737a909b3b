//! `strata-csi client`: call any CSI endpoint from a shell. Tables (lists, capacity) or text by
//! default, `-o json|yaml` (or `--json`) for scripts; a gRPC error prints its code and message on
//! one line and exits non-zero.

mod args;
mod controller;
mod dispatch;
mod identity;
mod node;
pub(crate) mod output;
mod render;
mod snapshots;
mod table;

use super::cli::{ClientArgs, OutputFormat};
use crate::csi::client::{connect, why_unreachable};
use std::process::ExitCode;
use std::time::Duration;

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
    match tokio::time::timeout(timeout, dispatch::call(channel, args.command)).await {
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
