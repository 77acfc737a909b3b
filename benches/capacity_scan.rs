//! What capacity accounting costs a CreateVolume (and a GetCapacity) on a node with many
//! volumes: `Engine::budget` of the disk pool (dir, loop, btrfs creates) and of the memory pool
//! (tmpfs creates), in-process on a real root under `STRATA_CAPACITY_BENCH_DIR` (default: the
//! temp dir) holding `STRATA_CAPACITY_BENCH_VOLUMES` dir volumes (default 1000).
//! `cargo bench --bench capacity_scan`. Needs no root: dir volumes mount nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use strata::backend::Kind;
use strata::engine::{Config, CreateRequest, Engine};
use strata::sys::LinuxHost;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Best of 5 rounds of 20 calls, in µs per call.
fn best_of(engine: &Engine, kind: Kind) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(engine.budget(kind).expect("budget"));
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / 20.0);
    }
    best
}

fn main() {
    let volumes = env_number("STRATA_CAPACITY_BENCH_VOLUMES", 1000);
    let base = std::env::var_os("STRATA_CAPACITY_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::tempdir_in(base).expect("temp dir");
    let engine = Engine::new(Config::new(tmp.path().join("root")), Arc::new(LinuxHost)).expect("engine");
    println!("| volumes | disk pool µs/call | memory pool µs/call |\n|---:|---:|---:|");
    let mut made = 0;
    for target in [0, volumes / 10, volumes] {
        while made < target {
            let req = CreateRequest {
                id: format!("v{made}"),
                name: format!("v{made}"),
                backend: Kind::Dir,
                capacity: 1 << 20,
                fs_type: None,
                parameters: BTreeMap::new(),
            };
            engine.create_volume(&req).expect("create");
            made += 1;
        }
        println!("| {made} | {:.1} | {:.1} |", best_of(&engine, Kind::Dir), best_of(&engine, Kind::Tmpfs));
    }
}
