//! Bounded measurement loops: a warm-up, then up to `iterations` timed runs or until the time
//! cap runs out, whichever comes first.

use super::Result;
use super::stats::Samples;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub iterations: usize,
    pub warmup: usize,
    /// The most wall time the loop may take, warm-up included (at least one run is measured).
    pub cap: Duration,
}

impl Budget {
    /// Runs `f` (given the iteration number) and collects the durations it returns.
    pub fn run(&self, mut f: impl FnMut(usize) -> Result<Duration>) -> Result<Samples> {
        let start = Instant::now();
        for i in 0..self.warmup {
            if start.elapsed() > self.cap {
                break;
            }
            f(i)?;
        }
        let mut samples = Samples::new();
        for i in 0..self.iterations {
            if start.elapsed() > self.cap && !samples.is_empty() {
                break;
            }
            samples.push(f(self.warmup + i)?);
        }
        Ok(samples)
    }

    /// [`Budget::run`] for async work.
    pub async fn run_async(&self, mut f: impl AsyncFnMut(usize) -> Result<Duration>) -> Result<Samples> {
        let start = Instant::now();
        for i in 0..self.warmup {
            if start.elapsed() > self.cap {
                break;
            }
            f(i).await?;
        }
        let mut samples = Samples::new();
        for i in 0..self.iterations {
            if start.elapsed() > self.cap && !samples.is_empty() {
                break;
            }
            samples.push(f(self.warmup + i).await?);
        }
        Ok(samples)
    }
}

/// Times one call.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_warmup_and_iterations() {
        let mut calls = Vec::new();
        let b = Budget { iterations: 3, warmup: 2, cap: Duration::from_secs(60) };
        let s = b
            .run(|i| {
                calls.push(i);
                Ok(Duration::from_micros(1))
            })
            .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(calls, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_time_cap_stops_the_loop_after_one_sample() {
        let b = Budget { iterations: 1000, warmup: 5, cap: Duration::ZERO };
        let s = b.run(|_| Ok(Duration::from_micros(1))).unwrap();
        assert_eq!(s.len(), 1);
    }
}
