//! The node's gauges at a scrape: per backend from the capacity ledger (kept as volumes come and
//! go) and the pools' free space, the rest from the latest background survey (see
//! [`super::survey`]). FlexVolume's volumes share the root, so they show here too.

use super::survey::Taken;
use crate::backend::Kind;
use crate::engine::Engine;
use crate::sys::FsStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the server did once at start, exported as it stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    pub reconcile_actions: u64,
    pub reconcile_errors: u64,
}

/// The figures of one backend.
#[derive(Debug, Default)]
struct PerBackend {
    volumes: u64,
    provisioned: u64,
    promised: u64,
    snapshots: u64,
    /// What GetCapacity reports for it; `None` for a backend this server does not offer.
    free: Option<u64>,
}

/// A per-backend gauge: its name, its help and how to read it.
type Row = (&'static str, &'static str, fn(&PerBackend) -> Option<u64>);

/// The node's figures, read once for one scrape.
#[derive(Debug, Default)]
pub struct Figures {
    backends: BTreeMap<Kind, PerBackend>,
    survey: Option<Arc<Taken>>,
    root: Option<FsStats>,
    lock_waits: u64,
    lock_wait_seconds: f64,
    start: Start,
}

impl Figures {
    /// Reads the engine's state (the ledger, free space, lock counts) and takes the latest
    /// survey; a part that cannot be read is logged and left out.
    pub fn take(engine: &Engine, offered: &[Kind], start: Start, survey: Option<Arc<Taken>>) -> Figures {
        let mut f = Figures { start, ..Figures::default() };
        for kind in offered {
            let free = engine.free_bytes(*kind).map_err(|e| warn("free bytes", &e)).ok();
            f.backends.entry(*kind).or_default().free = free;
        }
        if let Ok(ledger) = engine.ledger().map_err(|e| warn("the capacity ledger", &e)) {
            for kind in Kind::ALL {
                let t = ledger.tally(kind);
                if t.volumes == 0 && !f.backends.contains_key(&kind) {
                    continue;
                }
                let b = f.backends.entry(kind).or_default();
                b.volumes = t.volumes;
                b.provisioned = t.capacity;
                // A btrfs qgroup limit is handed out whole; dir volumes promise nothing.
                b.promised = if kind == Kind::Btrfs { t.capacity } else { t.promised() };
            }
        }
        if let Some(s) = &survey {
            for (kind, n) in &s.counted.snapshots {
                f.backends.entry(*kind).or_default().snapshots = *n;
            }
        }
        f.survey = survey;
        f.root = engine.root_stats().map_err(|e| warn("root size", &e)).ok();
        f.lock_waits = engine.lock_stats().waits();
        f.lock_wait_seconds = engine.lock_stats().wait_seconds();
        f
    }
}

fn warn(what: &str, e: &crate::engine::Error) {
    tracing::warn!(error = %e, "metrics: cannot read {what}");
}

impl Collector for Figures {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_backends(&mut enc)?;
        if let Some(taken) = &self.survey {
            let s = &taken.counted;
            gauge(&mut enc, "strata_volumes_staged", "Volumes staged on this node.", s.staged)?;
            gauge(&mut enc, "strata_volumes_published", "Volumes published into at least one pod.", s.published)?;
            gauge(&mut enc, "strata_publications", "Binds of volumes into pods on this node.", s.publications)?;
            let help = "Volumes whose record or node state does not read (destructive calls refused).";
            gauge(&mut enc, "strata_volumes_quarantined", help, s.quarantined)?;
            let help = "Volumes whose storage or staging has a problem (the CSI volume condition).";
            gauge(&mut enc, "strata_volumes_abnormal", help, s.abnormal)?;
            let help = "Snapshot records that do not read.";
            gauge(&mut enc, "strata_snapshots_unreadable", help, s.unreadable_snapshots)?;
            if let Some(loops) = s.loops {
                gauge(&mut enc, "strata_loop_devices_attached", "Loop devices attached to volume images.", loops)?;
            }
            let at = taken.at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let help = "When the survey behind the staged, published, quarantined, abnormal, snapshot and loop device gauges was taken (Unix seconds).";
            gauge(&mut enc, "strata_survey_timestamp_seconds", help, at)?;
            let help = "How long that survey took.";
            gauge(&mut enc, "strata_survey_duration_seconds", help, taken.took.as_secs_f64())?;
        }
        if let Some(root) = &self.root {
            gauge(
                &mut enc,
                "strata_root_capacity_bytes",
                "Size of the filesystem of the data root.",
                root.total_bytes,
            )?;
            let help = "Bytes available on the filesystem of the data root.";
            gauge(&mut enc, "strata_root_free_bytes", help, root.available_bytes)?;
        }
        let help = "Actions the reconcile at start took (re-attached loops, finished or rolled back operations).";
        gauge(&mut enc, "strata_reconcile_actions", help, self.start.reconcile_actions)?;
        gauge(
            &mut enc,
            "strata_reconcile_errors",
            "Problems the reconcile at start found.",
            self.start.reconcile_errors,
        )?;
        let help = "Lock acquisitions that found the volume or snapshot busy.";
        counter(&mut enc, "strata_lock_waits", help, self.lock_waits)?;
        let help = "Time spent waiting for busy volume or snapshot locks.";
        counter(&mut enc, "strata_lock_wait_seconds", help, self.lock_wait_seconds)
    }
}

impl Figures {
    fn encode_backends(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: [Row; 5] = [
            ("strata_volumes", "Volumes under the data root, by backend.", |b| Some(b.volumes)),
            ("strata_provisioned_bytes", "Capacity of the volumes, by backend.", |b| Some(b.provisioned)),
            (
                "strata_promised_bytes",
                "Capacity handed out that the storage does not hold yet (sparse images, tmpfs and qgroup limits).",
                |b| Some(b.promised),
            ),
            ("strata_snapshots", "Snapshots under the data root, by backend.", |b| Some(b.snapshots)),
            ("strata_free_bytes", "Bytes a new volume could get, as GetCapacity reports, by backend.", |b| b.free),
        ];
        for (name, help, value) in rows {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (kind, b) in &self.backends {
                if let Some(v) = value(b) {
                    family.encode_family(&[("backend", kind.as_str())])?.encode_gauge(&v)?;
                }
            }
        }
        Ok(())
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: impl EncodeGaugeValue) -> Result<(), std::fmt::Error> {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)
}

fn counter<V>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: V) -> Result<(), std::fmt::Error>
where
    V: prometheus_client::encoding::EncodeCounterValue,
{
    enc.encode_descriptor(name, help, None, MetricType::Counter)?.encode_counter::<NoLabelSet, _, f64>(&v, None)
}
