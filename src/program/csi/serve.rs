//! `strata-csi`'s entry point (`main`: parse the command line, build the runtime, run the
//! command) and the wiring of `serve`: claim the root, open and reconcile the engine, start the
//! background work and the metrics address, then serve the CSI services until a signal.

use super::cli::{Cli, Command, LogFormat, LogLevel, ServeArgs};
use super::client;
use crate::csi::{Driver, Options, server};
use crate::engine::{self, Engine, Wait};
use crate::metrics;
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Entry point of the `strata-csi` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    limit_malloc_arenas();
    let runtime = match runtime(matches!(cli.command, Command::Serve(_))) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strata-csi: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_format, args.log_level);
            match runtime.block_on(serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "strata-csi failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Client(args) => runtime.block_on(client::run(args)),
        Command::Bench(args) => crate::bench::main(*args, &runtime),
        Command::MigratePv(args) => crate::migrate::run(args),
        Command::Repair(args) => super::repair::run(&args),
        Command::Inspect(args) => super::inspect::run(args),
        Command::Completions { shell } => super::manual::completions(shell),
        Command::Man { dir } => super::manual::man(&dir),
    }
}

/// The async runtime. The server polls its connections on one thread: engine calls run on
/// blocking threads, so a second poller adds only wake-ups and work stealing (one poller: 15 %
/// less server CPU per node cycle, and more cycles per second at 8 clients, measured with
/// `strata-csi bench`). Idle blocking threads exit soon, so a burst of calls does not leave
/// dozens of threads (and their allocator caches) behind. Clients and the benchmark keep one
/// poller per CPU.
fn runtime(serve: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if serve {
        builder.worker_threads(1);
    }
    builder.enable_all().max_blocking_threads(64).thread_keep_alive(Duration::from_secs(2)).build()
}

/// Caps glibc's malloc arenas at two: one arena per thread that ever allocated keeps tens of
/// megabytes of freed mount tables resident after a burst of concurrent calls.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other thread
    // exists, and an unsupported parameter is reported by its return value, not undefined.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Why `strata-csi serve` could not start, or stopped.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    /// `--overcommit` (its parser's own words).
    #[error("{0}")]
    Overcommit(String),
    #[error("no --node-id given and {path} is unreadable: {source}")]
    HostnameUnreadable { path: &'static str, source: std::io::Error },
    #[error("no --node-id given and the hostname is empty")]
    HostnameEmpty,
    #[error(transparent)]
    Server(#[from] server::Error),
    #[error(transparent)]
    Metrics(#[from] metrics::Error),
    #[error("{0} (no --node-id was given: the hostname)")]
    ClaimByHostname(engine::Error),
    #[error(transparent)]
    Claim(engine::Error),
    #[error("opening the engine did not finish: {0}")]
    OpenUnfinished(tokio::task::JoinError),
    #[error("cannot open the data root {}: {source}", root.display())]
    Open { root: std::path::PathBuf, source: engine::Error },
    #[error("reconcile of {} failed: {source}", root.display())]
    Reconcile { root: std::path::PathBuf, source: engine::Error },
}

/// Opens the engine, reconciles the root with the host, and serves.
async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let overcommit = args.overcommit().map_err(ServeError::Overcommit)?;
    let (node_id, from_hostname) = match args.node_id.clone() {
        Some(n) if !n.is_empty() => (n, false),
        _ => (hostname()?, true),
    };
    // Before the engine touches the root (isolates it, reconciles): a second server on a live
    // socket, or a metrics address that cannot be bound, stops the start here.
    server::preflight(&args.endpoint)?;
    let metrics_listener = match &args.metrics_address {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    tracing::info!(
        node_id = %node_id,
        root = %args.root.display(),
        driver = %args.driver_name,
        version = crate::BUILD,
        "starting"
    );
    // Held until the server ends: the root is this server's, and its volumes this node's.
    let _claim = claim_root(&args, &node_id, from_hostname)?;
    let cfg = engine::Config {
        root: args.root.clone(),
        allowed_prefixes: args.allowed_path_prefixes.clone(),
        wait: Wait::No,
        overcommit,
    };
    let rate = args.copy_rate.unwrap_or(0);
    let (engine, start, copies) =
        tokio::task::spawn_blocking(move || open(cfg, rate)).await.map_err(ServeError::OpenUnfinished)??;
    start_background_work(&engine, copies, (!args.controller_only).then_some(&args.backends[..]));
    let driver = Arc::new(driver(engine.clone(), &args, node_id, metrics_listener, start));
    driver.log_readiness().await;
    let drain = Duration::from_secs(args.drain_seconds);
    let max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    let served = server::serve(driver, &args.endpoint, drain, max_connections).await;
    stop_background_work(engine).await;
    Ok(served?)
}

/// A server stopped on purpose leaves no directory made ahead behind (a kill's are removed at
/// the next start), and its journal is checkpointed, so that start has nothing to replay.
async fn stop_background_work(engine: Arc<Engine>) {
    let stopped = tokio::task::spawn_blocking(move || {
        engine.stop_pool();
        engine.checkpoint_now()
    });
    if let Ok(Err(e)) = stopped.await {
        tracing::warn!(error = %e, "the last journal checkpoint failed; the next start replays the journal");
    }
}

/// Starts what runs beside the calls: removals left to finish, the ledger's recount, the copies
/// a stopped server left and, for the backends `pooled` (none on a controller-only server), the
/// volume directories made ahead.
fn start_background_work(engine: &Arc<Engine>, copies: Vec<engine::CopyJob>, pooled: Option<&[crate::backend::Kind]>) {
    engine.remove_in_background();
    if let Some(kinds) = pooled {
        engine.start_pool(kinds);
    }
    count_capacity_every(engine.clone(), LEDGER_RECOUNT);
    for job in copies {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || engine.run_copy(job));
    }
}

/// The CSI driver over `engine`, counting its calls for the metrics address if there is one
/// (which starts answering scrapes here).
fn driver(
    engine: Arc<Engine>,
    args: &ServeArgs,
    node_id: String,
    metrics_listener: Option<tokio::net::TcpListener>,
    start: metrics::Start,
) -> Driver {
    let driver = Driver::new(
        engine.clone(),
        Options {
            name: args.driver_name.clone(),
            node_id,
            max_volumes_per_node: args.max_volumes_per_node,
            backends: args.backends.clone(),
            controller_only: args.controller_only,
        },
    );
    let Some(listener) = metrics_listener else { return driver };
    let ops = Arc::new(metrics::Ops::default());
    let survey_every = Duration::from_secs(args.metrics_survey_seconds);
    serve_metrics(listener, metrics::Metrics::new(ops.clone(), engine, args.backends.clone(), start, survey_every));
    driver.counted(ops)
}

/// How often the server counts the capacity ledger again (what sparse images and tmpfs volumes
/// wrote since shrinks their promise, so GetCapacity follows it).
const LEDGER_RECOUNT: Duration = Duration::from_secs(300);

/// Counts the capacity ledger again every `period`, in the background.
fn count_capacity_every(engine: Arc<Engine>, period: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticks.tick().await;
            let engine = engine.clone();
            match tokio::task::spawn_blocking(move || engine.recount_capacity(false)).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot count the capacity ledger"),
                Err(e) => tracing::warn!(error = %e, "counting the capacity ledger did not finish"),
                Ok(Ok(())) => {}
            }
        }
    });
}

/// Claims the data root for this server and node (see [`engine::claim`]) before anything else
/// touches it, and says what that did to the node id it records.
fn claim_root(args: &ServeArgs, node_id: &str, from_hostname: bool) -> Result<engine::claim::RootClaim, ServeError> {
    let claim = engine::claim::claim(&args.root, node_id, &args.endpoint.to_string(), args.rename_node).map_err(
        |e| match e {
            engine::Error::NodeMismatch { .. } if from_hostname => ServeError::ClaimByHostname(e),
            e => ServeError::Claim(e),
        },
    )?;
    log_identity(&claim.identity, node_id);
    Ok(claim)
}

/// Says what the claim of the root did to the node id it records.
fn log_identity(change: &engine::claim::IdentityChange, node_id: &str) {
    use engine::claim::IdentityChange;
    let tag = crate::csi::volume_id::node_tag(node_id);
    match change {
        IdentityChange::Same => {}
        IdentityChange::Recorded => {
            tracing::info!(node_id, "the data root records this node id: its volume ids end in @{tag}")
        }
        IdentityChange::Renamed { from, volumes, snapshots } => tracing::warn!(
            node_id,
            from = %from,
            volumes,
            snapshots,
            "node renamed (--rename-node): the data root's volumes and snapshots now have ids <name>@{tag}, not \
             <name>@{}; PersistentVolumes and VolumeSnapshotContents that name the old ids no longer reach them \
             (docs/operations.md, \"Renaming a node\")",
            crate::csi::volume_id::node_tag(from)
        ),
    }
}

/// Answers scrapes on the metrics address, bound before the engine was opened.
fn serve_metrics(listener: tokio::net::TcpListener, all: metrics::Metrics) {
    tokio::spawn(async move {
        if let Err(e) = metrics::serve(all, listener).await {
            tracing::error!(error = %e, "metrics stopped");
        }
    });
}

/// Opens the engine, replays its intent journal, resumes the copies a stopped server left and
/// reconciles, logging each action and each problem; the resumed copies come back to be run.
fn open(
    cfg: engine::Config,
    copy_rate: u64,
) -> Result<(Arc<Engine>, metrics::Start, Vec<engine::CopyJob>), ServeError> {
    let root = cfg.root.clone();
    let engine = Engine::new(cfg, Arc::new(crate::sys::LinuxHost))
        .map_err(|source| ServeError::Open { root: root.clone(), source })?
        .with_copy_rate(copy_rate);
    let engine = Arc::new(engine);
    // Before the volumes are isolated: a start refused here leaves no mount.
    let replayed = engine.start_journal().map_err(|source| ServeError::Reconcile { root: root.clone(), source })?;
    log_isolation(engine.isolate_volumes());
    let mut resumed = engine::reconcile::Report { actions: replayed, ..Default::default() };
    let copies = engine.resume_copies(&mut resumed);
    let mut report = engine.reconcile().map_err(|source| ServeError::Reconcile { root, source })?;
    report.actions.splice(0..0, resumed.actions);
    report.errors.splice(0..0, resumed.errors);
    for action in &report.actions {
        tracing::info!(action = %action, "reconcile");
    }
    for problem in &report.errors {
        tracing::warn!(problem = %problem, "reconcile");
    }
    tracing::info!(actions = report.actions.len(), errors = report.errors.len(), "reconcile done");
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok((
        engine,
        metrics::Start { reconcile_actions: count(report.actions.len()), reconcile_errors: count(report.errors.len()) },
        copies,
    ))
}

/// Says what [`Engine::isolate_volumes`] found: a warning only when it could have worked.
fn log_isolation(result: engine::Result<engine::Isolation>) {
    use engine::Isolation;
    match result {
        Ok(Isolation::Skipped(m)) => tracing::warn!(
            mount = %m.display(),
            "volumes stay on the root's mount (something is mounted below them); stage binds cost more with many mounts"
        ),
        Ok(Isolation::Shared(m)) => tracing::info!(
            mount = %m.display(),
            "volumes stay on the root's mount, which is shared (mounts below it must reach the host)"
        ),
        Ok(Isolation::NotPermitted) => {
            tracing::info!("no permission to mount (a controller-only server?): volumes stay on the root's mount")
        }
        Ok(done) => tracing::debug!(?done, "volumes on a mount of their own"),
        Err(e) => tracing::warn!(error = %e, "cannot give the volumes a mount of their own"),
    }
}

fn hostname() -> Result<String, ServeError> {
    let path = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(path).map_err(|source| ServeError::HostnameUnreadable { path, source })?;
    let name = name.trim();
    if name.is_empty() {
        return Err(ServeError::HostnameEmpty);
    }
    Ok(name.to_owned())
}

/// Logs go to stderr, as text or JSON (one object per line, each key once: an event's own
/// `message` is never also a field's name). `--log-level` filters; without it `RUST_LOG`'s
/// directives do (default `info`).
fn init_logging(format: LogFormat, level: Option<LogLevel>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l.directive()),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal, never into a file or the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
