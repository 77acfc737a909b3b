//! CreateVolume + DeleteVolume among other volumes that exist (created, not staged): what a
//! create and a delete cost as a node fills, measured at each of the levels asked for.

use super::budget::Budget;
use super::csi::{Class, Target};
use super::report::ScalePoint;
use super::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Volumes made or removed at once while the population grows or goes.
const TASKS: usize = 8;

/// Create + delete at each population level (ascending), growing one population of volumes
/// from level to level and removing it at the end.
pub async fn levels(t: &Target, class: &Class, levels: &[usize], b: Budget) -> Result<Vec<ScalePoint>> {
    let mut ids: Vec<String> = Vec::new();
    let mut points = Vec::new();
    let mut sorted = levels.to_vec();
    sorted.sort_unstable();
    let mut result = Ok(());
    for n in sorted {
        let start = Instant::now();
        match grow(t, class, &mut ids, n).await {
            Ok(()) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        let build_seconds = start.elapsed().as_secs_f64();
        match super::figures::create_delete(t, class, b).await {
            Ok(cd) => points.push(ScalePoint { volumes: ids.len(), build_seconds, create_delete: cd }),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let removed = remove(t, ids).await;
    result.and(removed).map(|()| points)
}

/// Creates volumes until there are `n`.
async fn grow(t: &Target, class: &Class, ids: &mut Vec<String>, n: usize) -> Result<()> {
    let have = ids.len();
    if have >= n {
        return Ok(());
    }
    let next = Arc::new(AtomicUsize::new(have));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (t, class, next) = (t.clone(), class.clone(), next.clone());
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, Error>(made);
                }
                made.push(t.create(&class, &t.name("idle", i)).await?);
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| Error::Setup(format!("a benchmark task failed: {e}"))) {
            Ok(Ok(made)) => ids.extend(made),
            Ok(Err(e)) | Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn remove(t: &Target, ids: Vec<String>) -> Result<()> {
    let chunk = ids.len().div_ceil(TASKS).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for part in ids.chunks(chunk) {
        let (t, part) = (t.clone(), part.to_vec());
        tasks.spawn(async move {
            for id in &part {
                t.delete(id).await?;
            }
            Ok::<_, Error>(())
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(|e| Error::Setup(format!("a benchmark task failed: {e}"))).and_then(|r| r) {
            first_error = first_error.or(Some(e));
        }
    }
    first_error.map_or(Ok(()), Err)
}
