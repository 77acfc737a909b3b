//! The CSI figures of one endpoint: create+delete, the node cycle per class, the cycle among a
//! population of published volumes, and throughput with concurrent clients.

use super::budget::Budget;
use super::csi::{Class, Cycle, Target, Vol};
use super::report::{AtScale, CreateDelete, CycleFigures, StatsFigure, Throughput};
use super::server::CpuMeter;
use super::stats::{Samples, Summary};
use super::{Error, Result};
use crate::csi::client::connect;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::{NodeGetCapabilitiesRequest, NodeGetVolumeStatsRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Volumes made, staged or removed at once while a population is built or torn down.
const POPULATION_TASKS: usize = 8;
/// The most a population may take to build.
const POPULATION_CAP: Duration = Duration::from_secs(900);

/// CreateVolume + DeleteVolume of fresh volumes.
pub async fn create_delete(t: &Target, class: &Class, b: Budget) -> Result<CreateDelete> {
    let (mut create, mut delete) = (Samples::new(), Samples::new());
    let (cpu, mut ops) = (CpuMeter::start(t.pid), 0);
    let pairs = b
        .run_async(async |i| {
            let name = t.name("cd", i);
            let start = Instant::now();
            let id = t.create(class, &name).await?;
            let made = start.elapsed();
            t.delete(&id).await?;
            let pair = start.elapsed();
            ops += 1;
            if i >= b.warmup {
                create.push(made);
                delete.push(pair - made);
            }
            Ok(pair)
        })
        .await?;
    Ok(CreateDelete {
        class: class.label.clone(),
        create: create.summary(),
        delete: delete.summary(),
        pair: pairs.summary(),
        server_cpu_us: cpu.settled_per_op_us(ops).await,
    })
}

/// The transport floor of one endpoint: NodeGetCapabilities, a call that does no work, and the
/// server CPU it takes.
pub async fn rpc_floor(t: &Target, b: Budget) -> Result<(Summary, Option<f64>)> {
    let mut node = NodeClient::new(t.channel.clone());
    let (cpu, mut ops) = (CpuMeter::start(t.pid), 0);
    let samples = b
        .run_async(async |_| {
            let start = Instant::now();
            node.node_get_capabilities(NodeGetCapabilitiesRequest {})
                .await
                .map_err(Error::rpc("NodeGetCapabilities"))?;
            ops += 1;
            Ok(start.elapsed())
        })
        .await?;
    Ok((samples.summary(), cpu.per_op_us(ops)))
}

/// Per-call samples of many cycles.
#[derive(Debug, Default)]
struct Parts([Samples; 4]);

impl Parts {
    fn add(&mut self, c: Cycle) {
        for (s, d) in self.0.iter_mut().zip(c) {
            s.push(d);
        }
    }

    fn figures(&self, class: &str, cycles: &Samples) -> CycleFigures {
        let [stage, publish, unpublish, unstage] = &self.0;
        CycleFigures {
            class: class.to_owned(),
            cycle: cycles.summary(),
            stage: stage.summary(),
            publish: publish.summary(),
            unpublish: unpublish.summary(),
            unstage: unstage.summary(),
            server_cpu_us: None,
        }
    }
}

/// The node cycle of one volume of `class`, repeated.
pub async fn cycle(t: &Target, class: &Class, tag: &str, b: Budget) -> Result<CycleFigures> {
    let vol = t.make(class, &t.name(tag, 0)).await?;
    let mut node = NodeClient::new(t.channel.clone());
    let mut parts = Parts::default();
    let (cpu, mut ops) = (CpuMeter::start(t.pid), 0);
    let result = b
        .run_async(async |i| {
            let c = t.cycle(&mut node, class, &vol).await?;
            ops += 1;
            if i >= b.warmup {
                parts.add(c);
            }
            Ok(c.iter().sum())
        })
        .await;
    let server_cpu_us = cpu.per_op_us(ops);
    t.delete(&vol.id).await?;
    Ok(CycleFigures { server_cpu_us, ..parts.figures(&class.label, &result?) })
}

/// NodeGetVolumeStats of one staged and published volume of `class`, repeated.
pub async fn volume_stats(t: &Target, class: &Class, tag: &str, b: Budget) -> Result<StatsFigure> {
    let vol = t.make(class, &t.name(tag, 0)).await?;
    let mut node = NodeClient::new(t.channel.clone());
    t.up(&mut node, class, &vol).await?;
    let (cpu, mut ops) = (CpuMeter::start(t.pid), 0);
    let req = NodeGetVolumeStatsRequest {
        volume_id: vol.id.clone(),
        volume_path: vol.target.to_string_lossy().into_owned(),
        ..Default::default()
    };
    let result = b
        .run_async(async |_| {
            let start = Instant::now();
            node.node_get_volume_stats(req.clone())
                .await
                .map_err(Error::rpc(format!("NodeGetVolumeStats {}", vol.id)))?;
            ops += 1;
            Ok(start.elapsed())
        })
        .await;
    let server_cpu_us = cpu.per_op_us(ops);
    t.down(&mut node, &vol).await?;
    t.delete(&vol.id).await?;
    Ok(StatsFigure { class: class.label.clone(), call: result?.summary(), server_cpu_us })
}

/// Other volumes, staged and published, present while a figure is measured.
#[derive(Debug)]
pub struct Population {
    pub vols: Vec<Vol>,
    pub build_seconds: f64,
}

impl Population {
    /// Creates, stages and publishes up to `n` volumes (fewer if the time cap runs out).
    pub async fn build(t: &Target, class: &Class, n: usize) -> Result<Population> {
        let start = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..POPULATION_TASKS.min(n) {
            let (t, class, next) = (t.clone(), class.clone(), next.clone());
            tasks.spawn(async move {
                let mut node = NodeClient::new(t.channel.clone());
                let mut made = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n || start.elapsed() > POPULATION_CAP {
                        return Ok::<_, Error>(made);
                    }
                    let v = t.make(&class, &t.name("pop", i)).await?;
                    t.up(&mut node, &class, &v).await?;
                    made.push(v);
                }
            });
        }
        let vols = join_all(tasks).await?;
        Ok(Population { vols, build_seconds: start.elapsed().as_secs_f64() })
    }

    /// Unpublishes, unstages and deletes every volume; returns the seconds it took.
    pub async fn teardown(self, t: &Target) -> Result<f64> {
        let start = Instant::now();
        let chunk = self.vols.len().div_ceil(POPULATION_TASKS).max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for part in self.vols.chunks(chunk) {
            let (t, part) = (t.clone(), part.to_vec());
            tasks.spawn(async move {
                let mut node = NodeClient::new(t.channel.clone());
                for v in &part {
                    t.down(&mut node, v).await?;
                    t.delete(&v.id).await?;
                }
                Ok::<_, Error>(Vec::<Vol>::new())
            });
        }
        join_all(tasks).await?;
        Ok(start.elapsed().as_secs_f64())
    }
}

async fn join_all(mut tasks: tokio::task::JoinSet<Result<Vec<Vol>>>) -> Result<Vec<Vol>> {
    let mut all = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| Error::Setup(format!("a benchmark task failed: {e}"))) {
            Ok(Ok(v)) => all.extend(v),
            Ok(Err(e)) | Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    first_error.map_or(Ok(all), Err)
}

/// The cycle measured again among a population; `lines` is the mount table size then.
pub fn at_scale(pop: &Population, base: &CycleFigures, cycle: CycleFigures, lines: usize) -> AtScale {
    let mut a = AtScale::new(pop.vols.len(), lines, &base.cycle, cycle);
    a.build_seconds = pop.build_seconds;
    a
}

/// Cycles of `clients` volumes at once, each client on its own connection, for `secs`.
pub async fn throughput(t: &Target, class: &Class, clients: usize, secs: Duration, cap: usize) -> Result<Throughput> {
    let mut vols = Vec::with_capacity(clients);
    for i in 0..clients {
        vols.push(t.make(class, &t.name(&format!("tp{clients}"), i)).await?);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for v in vols.clone() {
        let (t, class) = (t.clone(), class.clone());
        tasks.spawn(async move {
            let ch = connect(&t.endpoint)
                .await
                .map_err(|source| Error::Connect { endpoint: t.endpoint.to_string(), source })?;
            let mut node = NodeClient::new(ch);
            let mut samples = Samples::new();
            while start.elapsed() < secs && samples.len() < cap {
                samples.push(t.cycle(&mut node, &class, &v).await?.iter().sum());
            }
            Ok::<_, Error>(samples)
        });
    }
    let mut all = Samples::new();
    let mut failed = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| Error::Setup(format!("a throughput client failed: {e}"))) {
            Ok(Ok(s)) => all.extend(s),
            Ok(Err(e)) | Err(e) => failed = failed.or(Some(e)),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    for v in &vols {
        t.delete(&v.id).await?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let cycles = all.len();
    Ok(Throughput {
        clients,
        cycles,
        seconds,
        cycles_per_second: cycles as f64 / seconds,
        calls_per_second: (cycles * t.calls_per_cycle()) as f64 / seconds,
        cycle: all.summary(),
    })
}
