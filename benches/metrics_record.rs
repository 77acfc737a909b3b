//! What counting one CSI call costs with metrics on (`strata::metrics::Ops::record`: a method
//! lookup, a status-code counter, a histogram bucket and the sum), alone and with 8 threads
//! counting the same methods at once (contention on shared atomics). `cargo bench --bench
//! metrics_record`; `STRATA_METRICS_BENCH_ITERS` sets the calls per thread.

use std::sync::Arc;
use std::time::{Duration, Instant};
use strata::metrics::Ops;
use tonic::Code;

const CYCLE: [&str; 4] = ["NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"];

fn count(ops: &Ops, calls: usize) {
    for i in 0..calls {
        let method = CYCLE[i % CYCLE.len()];
        let took = Duration::from_micros(150 + (i % 300) as u64);
        ops.record(std::hint::black_box(method), Code::Ok, took);
    }
}

/// Nanoseconds per recorded call with `threads` threads counting at once.
fn per_call(threads: usize, calls: usize) -> f64 {
    let ops = Arc::new(Ops::default());
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let ops = ops.clone();
            std::thread::spawn(move || count(&ops, calls))
        })
        .collect();
    for w in workers {
        if w.join().is_err() {
            eprintln!("a counting thread panicked");
            std::process::exit(1);
        }
    }
    let elapsed = start.elapsed().as_nanos() as f64;
    assert_eq!(ops.calls("NodeStageVolume", Code::Ok), (threads * calls).div_ceil(4) as u64);
    elapsed / calls as f64
}

fn main() {
    let calls: usize =
        std::env::var("STRATA_METRICS_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    per_call(1, calls / 10);
    for threads in [1, 2, 8] {
        let ns = per_call(threads, calls);
        println!("Ops::record, {threads} thread(s) at once: {ns:.1} ns of wall time per call per thread");
    }
    let clock = Instant::now();
    let mut last = clock;
    for _ in 0..calls {
        last = std::hint::black_box(Instant::now());
    }
    let ns = (last - clock).as_nanos() as f64 / calls as f64;
    println!("Instant::now (taken twice per call): {ns:.1} ns");
}
