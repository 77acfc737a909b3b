//! Per-method call counts by status code and a duration histogram per method, kept in fixed
//! tables of atomics: counting a call is three relaxed increments, with no lock and no map.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::Code;

/// Every CSI method strata serves, as the `method` label spells it.
pub const METHODS: [&str; 27] = [
    "GetPluginInfo",
    "GetPluginCapabilities",
    "Probe",
    "CreateVolume",
    "DeleteVolume",
    "ValidateVolumeCapabilities",
    "ListVolumes",
    "GetCapacity",
    "ControllerGetCapabilities",
    "ControllerGetVolume",
    "ControllerExpandVolume",
    "CreateSnapshot",
    "DeleteSnapshot",
    "ListSnapshots",
    "GetSnapshot",
    "GroupControllerGetCapabilities",
    "CreateVolumeGroupSnapshot",
    "DeleteVolumeGroupSnapshot",
    "GetVolumeGroupSnapshot",
    "NodeStageVolume",
    "NodeUnstageVolume",
    "NodePublishVolume",
    "NodeUnpublishVolume",
    "NodeGetVolumeStats",
    "NodeExpandVolume",
    "NodeGetCapabilities",
    "NodeGetInfo",
];

/// Upper bounds of the duration buckets, in seconds: 50 µs to 60 s (strata's calls are
/// sub-millisecond; mkfs and copies take seconds).
pub const BUCKETS: [f64; 19] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// gRPC status codes run from OK (0) to UNAUTHENTICATED (16).
const CODES: usize = 17;

/// One histogram: a count per bucket (not cumulative; the last one is +Inf) and the sum.
#[derive(Debug)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_nanos: AtomicU64::new(0) }
    }

    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, count per bucket)`: the buckets as the encoder takes them (it
    /// makes them cumulative), the count their total, so the two always agree even while calls
    /// are counted during the read.
    fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len() + 1);
        for (i, count) in self.counts.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            total += count;
            buckets.push((BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), count));
        }
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        (sum, total, buckets)
    }
}

/// Call counts and durations of every method.
#[derive(Debug)]
pub struct Ops {
    calls: Vec<[AtomicU64; CODES]>,
    durations: Vec<Histogram>,
}

impl Default for Ops {
    fn default() -> Ops {
        Ops {
            calls: METHODS.iter().map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
            durations: METHODS.iter().map(|_| Histogram::new()).collect(),
        }
    }
}

impl Ops {
    /// Counts one call of `method` that ended with `code` after `took`. A method missing from
    /// [`METHODS`] is not counted (a debug build panics: add it to the list).
    pub fn record(&self, method: &str, code: Code, took: Duration) {
        let Some(m) = METHODS.iter().position(|name| *name == method) else {
            debug_assert!(false, "method {method} is missing from metrics::METHODS");
            return;
        };
        let code = usize::try_from(code as i32).unwrap_or(CODES - 1).min(CODES - 1);
        self.calls[m][code].fetch_add(1, Ordering::Relaxed);
        self.durations[m].observe(took);
    }

    /// Calls of `method` that ended with `code` so far.
    pub fn calls(&self, method: &str, code: Code) -> u64 {
        let code = usize::try_from(code as i32).unwrap_or(0);
        METHODS
            .iter()
            .position(|name| *name == method)
            .and_then(|m| self.calls[m].get(code))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// The `code` label of each status code, spelled as gRPC's Go `codes.Code` (and so the CSI
/// sidecars' metrics) spell them.
const CODE_NAMES: [&str; CODES] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

impl Collector for Ops {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let help = "CSI calls served, by method and gRPC status code.";
        let mut family = encoder.encode_descriptor("strata_operations", help, None, MetricType::Counter)?;
        for (method, codes) in METHODS.iter().zip(&self.calls) {
            for (code, count) in CODE_NAMES.iter().zip(codes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let labels = [("method", *method), ("code", *code)];
                    family.encode_family(&labels)?.encode_counter::<NoLabelSet, _, f64>(&count, None)?;
                }
            }
        }
        let help = "How long CSI calls took, by method.";
        let mut family =
            encoder.encode_descriptor("strata_operation_duration_seconds", help, None, MetricType::Histogram)?;
        for (method, histogram) in METHODS.iter().zip(&self.durations) {
            let (sum, count, buckets) = histogram.read();
            if count > 0 {
                let labels = [("method", *method)];
                family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_their_method_code_and_bucket() {
        let ops = Ops::default();
        ops.record("NodeStageVolume", Code::Ok, Duration::from_micros(40));
        ops.record("NodeStageVolume", Code::Ok, Duration::from_micros(50));
        ops.record("NodeStageVolume", Code::Aborted, Duration::from_secs(61));
        assert_eq!(ops.calls("NodeStageVolume", Code::Ok), 2);
        assert_eq!(ops.calls("NodeStageVolume", Code::Aborted), 1);
        assert_eq!(ops.calls("NodePublishVolume", Code::Ok), 0);
        let m = METHODS.iter().position(|m| *m == "NodeStageVolume").unwrap();
        let (sum, count, buckets) = ops.durations[m].read();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (0.00005, 2), "50 µs is inside the first bucket");
        assert_eq!(buckets[BUCKETS.len()], (f64::INFINITY, 1));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert!((sum - 61.00009).abs() < 1e-9, "{sum}");
        assert_eq!(CODE_NAMES[Code::Aborted as usize], "Aborted");
        assert_eq!(CODE_NAMES[Code::Unauthenticated as usize], "Unauthenticated");
    }
}
