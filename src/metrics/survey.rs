//! The part of the node's gauges that needs a look at every volume (what node state says is
//! staged and published, quarantined and abnormal volumes, snapshots, loop devices): taken in
//! the background, at most once per interval and only while metrics are scraped, so a scrape
//! costs the same with 10,000 volumes as with one. A scrape shows the latest survey and its age.
//! A survey also counts the capacity ledger again, so the promised bytes follow what sparse
//! images and tmpfs volumes wrote.

use crate::backend::Kind;
use crate::engine::Engine;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// What one survey counted.
#[derive(Debug, Default, Clone)]
pub struct Counted {
    pub staged: usize,
    pub published: usize,
    pub publications: usize,
    pub quarantined: usize,
    pub abnormal: usize,
    pub unreadable_snapshots: usize,
    pub snapshots: BTreeMap<Kind, u64>,
    pub loops: Option<usize>,
}

/// A survey and when it was taken.
#[derive(Debug, Clone)]
pub struct Taken {
    pub at: SystemTime,
    pub took: Duration,
    pub counted: Counted,
}

#[derive(Debug, Default)]
struct State {
    latest: Option<Arc<Taken>>,
    running: bool,
}

/// The surveys of one server.
#[derive(Debug)]
pub struct Surveys {
    engine: Arc<Engine>,
    every: Duration,
    state: Mutex<State>,
}

impl Surveys {
    pub fn new(engine: Arc<Engine>, every: Duration) -> Arc<Surveys> {
        Arc::new(Surveys { engine, every, state: Mutex::new(State::default()) })
    }

    /// The latest survey (none before the first ends); starts a new one in the background when
    /// it is older than the interval and none runs.
    pub fn latest(self: &Arc<Self>) -> Option<Arc<Taken>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = state.latest.as_ref().is_none_or(|t| t.at.elapsed().unwrap_or(Duration::MAX) >= self.every);
        if due && !state.running {
            state.running = true;
            let me = self.clone();
            let started = std::thread::Builder::new().name("survey".into()).spawn(move || me.take());
            if started.is_err() {
                state.running = false;
            }
        }
        state.latest.clone()
    }

    fn take(&self) {
        let (at, start) = (SystemTime::now(), Instant::now());
        let counted = count(&self.engine);
        let taken = Arc::new(Taken { at, took: start.elapsed(), counted });
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.latest = Some(taken);
        state.running = false;
    }
}

/// Reads every record and node state, the snapshots, the mount table and the loop devices once,
/// and counts the capacity ledger again (what images and tmpfs volumes wrote since).
fn count(engine: &Engine) -> Counted {
    if let Err(e) = engine.recount_capacity(false) {
        tracing::warn!(error = %e, "metrics: cannot count the capacity ledger");
    }
    let mut c = Counted::default();
    match engine.survey() {
        Ok(s) => {
            c.staged = s.volumes.iter().filter(|v| v.staging.is_some()).count();
            c.published = s.volumes.iter().filter(|v| !v.marked.is_empty()).count();
            c.publications = s.volumes.iter().map(|v| v.marked.len()).sum();
            c.quarantined = s.quarantined;
            c.abnormal = s.abnormal;
            c.unreadable_snapshots = s.unreadable_snapshots;
            for snap in &s.snapshots {
                *c.snapshots.entry(snap.backend).or_default() += 1;
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot survey the volumes"),
    }
    c.loops = engine
        .loop_devices_attached()
        .map_err(|e| tracing::warn!(error = %e, "metrics: cannot list loop devices"))
        .ok();
    c
}
