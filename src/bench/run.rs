//! The order of a run: floors, the self-started strata (CSI figures, btrfs, loop ext4), the
//! other endpoint, FlexVolume; then the targets.

use super::budget::Budget;
use super::csi::{Class, Target};
use super::figures::{self, Population};
use super::goals::{self, SELF_LABEL};
use super::report::{Driver, Meta, Report};
use super::server::{SelfServer, memory};
use super::workdir::WorkDir;
use super::{BenchArgs, Error, Result, Section, flex, floor, loopext4};
use crate::backend::Kind;
use crate::csi::client::connect;
use crate::sys::{Host, LinuxHost};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MIB: i64 = 1 << 20;

/// Runs every section asked for.
pub async fn all(args: &BenchArgs) -> Result<Report> {
    let start = Instant::now();
    let mut r = Report { meta: meta(), ..Report::default() };
    let work = WorkDir::new(&args.work_dir, "strata-bench")?;
    let on = |s| args.sections.contains(&s);
    if on(Section::Floor) {
        let b = Budget { iterations: args.floor_iterations, warmup: args.warmup * 10, cap: cap(args) };
        r.floor = Some(floor::measure(&work, b)?);
    }
    let csi = csi_figures(args);
    if (csi || on(Section::Loop)) && !args.own.no_self {
        own_server(args, &work, &mut r).await?;
    }
    if let (true, Some(endpoint)) = (csi, &args.other.endpoint) {
        let t = other_target(args, endpoint).await?;
        let class = Class {
            label: match args.other.params.is_empty() {
                true => "no parameters".into(),
                false => args.other.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            },
            params: args.other.params.iter().cloned().collect(),
            fs_type: args.other.fs_type.clone(),
            bytes: 64 * MIB,
        };
        r.drivers.push(driver(args, &t, &[class]).await?);
    }
    if on(Section::Flex) {
        let flex_bin = match args.flex_bin.is_empty() {
            true => vec![beside_me("strata-flex")?],
            false => args.flex_bin.clone(),
        };
        let programs = flex::Programs::prepare(&work, flex_bin, args.noop_bin.clone())?;
        r.flex = Some(flex::measure(&work, &programs, args.flex_rounds)?);
    }
    r.meta.load_after = load();
    r.meta.seconds = start.elapsed().as_secs_f64();
    r.targets = goals::evaluate(&r);
    Ok(r)
}

/// Whether CSI figures are asked for: all of them (`csi`) or the node cycles alone (`cycle`).
fn csi_figures(args: &BenchArgs) -> bool {
    args.sections.contains(&Section::Csi) || args.sections.contains(&Section::Cycle)
}

fn meta() -> Meta {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Meta {
        version: env!("CARGO_PKG_VERSION").into(),
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        seconds: 0.0,
        kernel: kernel.trim().to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        load_before: load(),
        load_after: [0.0; 3],
        mounts_before: LinuxHost.mount_table().map_or(0, |t| t.len()),
    }
}

/// The 1, 5 and 15 minute load averages.
fn load() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut f = text.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    [f.next().unwrap_or(0.0), f.next().unwrap_or(0.0), f.next().unwrap_or(0.0)]
}

fn cap(args: &BenchArgs) -> Duration {
    Duration::from_secs(args.time_cap)
}

fn budget(args: &BenchArgs) -> Budget {
    Budget { iterations: args.iterations, warmup: args.warmup, cap: cap(args) }
}

/// A program that sits beside this one.
fn beside_me(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().map_err(Error::io("find", "the current executable"))?;
    Ok(me.with_file_name(name))
}

fn class(kind: Kind, fs_type: &str, bytes: i64) -> Class {
    let label = if fs_type.is_empty() { kind.as_str().to_owned() } else { format!("{} {fs_type}", kind.as_str()) };
    let params = HashMap::from([("backend".to_owned(), kind.as_str().to_owned())]);
    Class { label, params, fs_type: fs_type.into(), bytes }
}

/// The class the cycle of `kind` is measured with.
fn class_of(kind: Kind) -> Class {
    match kind {
        Kind::Loop => class(kind, "ext4", 256 * MIB),
        _ => class(kind, "", 64 * MIB),
    }
}

/// A target on a self-started server: kubelet's paths under its kubelet directory.
async fn self_target(label: &str, server: &mut SelfServer) -> Result<Target> {
    let channel = server.ready().await?;
    let mut t = Target {
        label: label.into(),
        endpoint: server.endpoint.clone(),
        channel,
        pid: Some(server.pid()),
        staging_dir: server.kubelet.join("plugins/kubernetes.io/csi/strata.csi.dev"),
        target_dir: server.kubelet.join("pods/bench-pod/volumes/kubernetes.io~csi"),
        stages: true,
        prefix: format!("bench{}", std::process::id()),
    };
    t.probe_stages().await?;
    Ok(t)
}

async fn own_server(args: &BenchArgs, work: &WorkDir, r: &mut Report) -> Result<()> {
    let exe = std::env::current_exe().map_err(Error::io("find", "the current executable"))?;
    let sub = WorkDir::new(work.path(), "strata")?;
    let mut backends = args.own.backends.clone();
    if args.sections.contains(&Section::Loop) && !backends.contains(&Kind::Loop) {
        backends.push(Kind::Loop);
    }
    let mut server = SelfServer::start(&exe, &sub, None, &backends, &args.own.serve_args)?;
    let t = self_target(SELF_LABEL, &mut server).await?;
    if csi_figures(args) {
        let classes: Vec<Class> = args.own.backends.iter().map(|k| class_of(*k)).collect();
        let mut d = driver(args, &t, &classes).await?;
        if let Some(root) = &args.own.btrfs_root {
            d.cycles.push(btrfs_cycle(args, &exe, root).await?);
        }
        r.drivers.push(d);
    }
    if args.sections.contains(&Section::Loop) {
        let bytes = crate::quantity::parse_bytes(&args.loop_size)
            .map_err(|reason| Error::Setup(format!("--loop-size {:?} {reason}", args.loop_size)))?;
        r.loop_ext4 = Some(loopext4::measure(&t, &sub, bytes, args.loop_rounds).await?);
    }
    server.stop()
}

/// The btrfs cycle, on a second server whose root lies under `root` (on btrfs).
async fn btrfs_cycle(args: &BenchArgs, exe: &Path, root: &Path) -> Result<super::report::CycleFigures> {
    let sub = WorkDir::new(root, "strata-bench")?;
    let data = sub.sub("root")?;
    let mut server = SelfServer::start(exe, &sub, Some(&data), &[Kind::Btrfs], &args.own.serve_args)?;
    let t = self_target("strata btrfs", &mut server).await?;
    let figures = figures::cycle(&t, &class_of(Kind::Btrfs), "cy-btrfs", budget(args)).await?;
    server.stop()?;
    Ok(figures)
}

async fn other_target(args: &BenchArgs, endpoint: &crate::csi::server::Endpoint) -> Result<Target> {
    let o = &args.other;
    let need = |d: &Option<PathBuf>, flag: &str| {
        d.clone().ok_or_else(|| Error::Setup(format!("--endpoint needs {flag} (a directory the driver accepts)")))
    };
    let channel =
        connect(endpoint).await.map_err(|source| Error::Connect { endpoint: endpoint.to_string(), source })?;
    let mut t = Target {
        label: o.label.clone(),
        endpoint: endpoint.clone(),
        channel,
        pid: o.server_pid,
        staging_dir: need(&o.staging_dir, "--staging-dir")?,
        target_dir: need(&o.target_dir, "--target-dir")?,
        stages: true,
        prefix: format!("bench{}", std::process::id()),
    };
    t.probe_stages().await?;
    Ok(t)
}

/// Every CSI figure of one endpoint; the first class is the one of create+delete, throughput
/// and the population.
async fn driver(args: &BenchArgs, t: &Target, classes: &[Class]) -> Result<Driver> {
    let mem = || t.pid.and_then(|p| memory(p).ok());
    let mut d =
        Driver { label: t.label.clone(), endpoint: t.endpoint.to_string(), stages: t.stages, ..Driver::default() };
    d.memory.pid = t.pid;
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.memory.at_rest = mem();
    let Some(primary) = classes.first() else { return Ok(d) };
    let all = args.sections.contains(&Section::Csi);
    (d.rpc_floor, d.rpc_floor_cpu_us) = figures::rpc_floor(t, budget(args)).await?;
    if all {
        d.create_delete = Some(figures::create_delete(t, primary, budget(args)).await?);
    }
    for c in classes {
        d.cycles.push(figures::cycle(t, c, &format!("cy-{}", c.label.replace(' ', "-")), budget(args)).await?);
    }
    d.cycle_kernel_cpu_us = Some(floor::cycle_kernel(&t.staging_dir, &t.target_dir, budget(args))?);
    if !all {
        d.memory.after_run = mem();
        return Ok(d);
    }
    d.volume_stats = Some(figures::volume_stats(t, primary, "vs", budget(args)).await?);
    let secs = Duration::from_secs(args.throughput_seconds);
    for &n in &args.clients {
        d.throughput.push(figures::throughput(t, primary, n, secs, args.iterations.max(1) * 100).await?);
    }
    if !args.idle_population.is_empty() {
        d.scale = super::scale::levels(t, primary, &args.idle_population, budget(args)).await?;
    }
    if args.population > 0 {
        let pop = Population::build(t, primary, args.population).await?;
        let lines = LinuxHost.mount_table().map_or(0, |t| t.len());
        let cycle = figures::cycle(t, primary, "scale", budget(args)).await;
        let stats = figures::volume_stats(t, primary, "scale-vs", budget(args)).await;
        d.memory.after_population = mem();
        let base = d.cycles.first().cloned().unwrap_or_default();
        let at = cycle.map(|c| figures::at_scale(&pop, &base, c, lines));
        let teardown = pop.teardown(t).await;
        let mut at = at?;
        at.teardown_seconds = teardown?;
        at.volume_stats = Some(stats?);
        d.at_scale = Some(at);
    }
    d.memory.after_run = mem();
    Ok(d)
}
