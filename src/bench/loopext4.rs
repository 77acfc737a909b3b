//! A loop ext4 volume through strata (CreateVolume, NodeStage, NodeUnstage, DeleteVolume) next
//! to the same work done with the bare tools (truncate, losetup, mkfs.ext4, mount, umount,
//! losetup -d, unlink), alternating in one run.

use super::csi::{Class, Target};
use super::report::LoopExt4;
use super::stats::{Samples, ratio};
use super::workdir::WorkDir;
use super::{Error, Result};
use crate::csi::proto::node_client::NodeClient;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Rounds run before measuring.
const WARMUP: usize = 1;

/// Measures `rounds` rounds of both paths.
pub async fn measure(t: &Target, work: &WorkDir, bytes: u64, rounds: usize) -> Result<LoopExt4> {
    let class = Class {
        label: "loop ext4".into(),
        params: HashMap::from([("backend".to_owned(), "loop".to_owned())]),
        fs_type: "ext4".into(),
        bytes: i64::try_from(bytes).map_err(|_| Error::Setup("the loop size is too large".into()))?,
    };
    let dir = work.sub("loopfloor")?;
    let (mut strata, mut tools) = (Samples::new(), Samples::new());
    for round in 0..rounds + WARMUP {
        let floor = tool_floor(&dir, bytes)?;
        let ours = through_strata(t, &class, round).await?;
        if round >= WARMUP {
            tools.push(floor);
            strata.push(ours);
        }
    }
    let (strata, tools) = (strata.summary(), tools.summary());
    Ok(LoopExt4 { size_bytes: bytes, ratio_p50: ratio(strata.p50_us, tools.p50_us), strata, tools })
}

async fn through_strata(t: &Target, class: &Class, round: usize) -> Result<Duration> {
    let name = t.name("loop", round);
    let mut node = NodeClient::new(t.channel.clone());
    let start = Instant::now();
    let id = t.create(class, &name).await?;
    let v = t.place(id, &name)?;
    t.stage(&mut node, class, &v).await?;
    t.unstage(&mut node, &v).await?;
    t.delete(&v.id).await?;
    Ok(start.elapsed())
}

/// The same steps by hand.
fn tool_floor(dir: &Path, bytes: u64) -> Result<Duration> {
    let image = dir.join("disk.img");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(Error::io("create", &mnt))?;
    let start = Instant::now();
    run("truncate", &[OsStr::new("-s"), OsStr::new(&bytes.to_string()), image.as_os_str()])?;
    let dev = run("losetup", &[OsStr::new("--find"), OsStr::new("--show"), image.as_os_str()])?;
    let dev = OsStr::new(dev.trim());
    let steps = run("mkfs.ext4", &[OsStr::new("-q"), OsStr::new("-E"), OsStr::new("nodiscard"), dev])
        .and_then(|_| run("mount", &[dev, mnt.as_os_str()]))
        .and_then(|_| run("umount", &[mnt.as_os_str()]));
    let detached = run("losetup", &[OsStr::new("-d"), dev]);
    std::fs::remove_file(&image).map_err(Error::io("remove", &image))?;
    let spent = start.elapsed();
    steps?;
    detached?;
    Ok(spent)
}

/// Runs a system tool (found in PATH or the sbin directories); returns its stdout.
fn run(tool: &str, args: &[&OsStr]) -> Result<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let out = Command::new(tool)
        .args(args)
        .env("PATH", format!("{path}:/usr/sbin:/sbin"))
        .output()
        .map_err(|e| Error::Command { what: tool.to_owned(), detail: e.to_string() })?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(Error::Command { what: format!("{tool} {args:?}"), detail });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
