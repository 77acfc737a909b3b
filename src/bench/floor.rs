//! Floors every other figure is read against: a bind mount + unmount pair in a tight loop, one
//! `statx` of a mount point, one read + parse of the mount table, the two record writes, and
//! the kernel work CSI asks of a node cycle.

use super::budget::{Budget, timed};
use super::report::Floor;
use super::workdir::WorkDir;
use super::{Error, Result};
use crate::engine::record::{self, Durability};
use crate::sys::{Host, LinuxHost};
use nix::mount::{MntFlags, MsFlags};
use std::path::Path;

/// Measures the floors in `work`.
pub fn measure(work: &WorkDir, b: Budget) -> Result<Floor> {
    let src = work.sub("floor/src")?;
    let dst = work.sub("floor/dst")?;
    let bind_pair = b.run(|_| bind_pair(&src, &dst))?.summary();
    bind(&src, &dst)?;
    let statx = b.run(|_| timed(|| mount_id(&dst)).map(|(_, d)| d));
    let _ = nix::mount::umount2(&dst, MntFlags::empty());
    let (mountinfo, lines) = mount_table(b)?;
    let records = work.sub("floor/records")?;
    let value = sample_record();
    let path = records.join("volume.json");
    let cached = b.run(|_| timed(|| save(&path, &value, Durability::Cached)).map(|(_, d)| d))?;
    let durable = b.run(|_| timed(|| save(&path, &value, Durability::Durable)).map(|(_, d)| d))?;
    Ok(Floor {
        bind_pair,
        statx: statx?.summary(),
        mountinfo,
        mountinfo_lines: lines,
        record_cached: cached.summary(),
        record_durable: durable.summary(),
    })
}

/// Read + parse of the mount table as it is now; also returns its length.
pub fn mount_table(b: Budget) -> Result<(super::stats::Summary, usize)> {
    let host = LinuxHost;
    let mut lines = 0;
    let samples = b.run(|_| {
        let (table, d) = timed(|| host.mount_table().map_err(|e| Error::Setup(e.to_string())))?;
        lines = table.len();
        Ok(d)
    })?;
    Ok((samples.summary(), lines))
}

fn bind(src: &Path, dst: &Path) -> Result<()> {
    nix::mount::mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(Error::sys("bind onto", dst))
}

fn bind_pair(src: &Path, dst: &Path) -> Result<std::time::Duration> {
    timed(|| {
        bind(src, dst)?;
        nix::mount::umount2(dst, MntFlags::empty()).map_err(Error::sys("unmount", dst))
    })
    .map(|((), d)| d)
}

/// The mount id of `path` and whether it is the root of a mount, by `statx(2)`.
pub fn mount_id(path: &Path) -> Result<(u64, bool)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Setup(format!("{} holds a NUL byte", path.display())))?;
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    let flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;
    // SAFETY: `c` is a NUL-terminated path and `buf` is a writable statx buffer of the right size.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, libc::STATX_MNT_ID, buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(Error::sys("statx", path)(nix::errno::Errno::last()));
    }
    // SAFETY: statx returned 0, so the kernel filled the buffer.
    let st = unsafe { buf.assume_init() };
    let root = crate::sys::mount_root_attr(st.stx_attributes_mask, st.stx_attributes) == Some(true);
    Ok((st.stx_mnt_id, root))
}

fn save(path: &Path, value: &serde_json::Value, d: Durability) -> Result<()> {
    record::save_json(path, value, d).map_err(|e| Error::Setup(e.to_string()))
}

/// A record the size of a staged loop volume's.
fn sample_record() -> serde_json::Value {
    serde_json::json!({
        "format": 1, "id": "pvc-0f6c3a3e-6d7b-4c53-9d7e-3c1f0b9a2e11", "name": "pvc-0f6c3a3e-6d7b-4c53-9d7e-3c1f0b9a2e11",
        "backend": "loop", "capacity": 1_073_741_824u64, "fs_type": "ext4",
        "parameters": {"backend": "loop", "csi.storage.k8s.io/fstype": "ext4"}, "created_unix": 1_700_000_000u64,
        "staging": {"path": "/var/lib/kubelet/plugins/kubernetes.io/csi/strata.csi.dev/0123456789abcdef/globalmount",
                    "access": {"type": "mount"}, "device": "/dev/loop7"}
    })
}

/// CPU (µs, this thread's) of the kernel work CSI asks of one `dir` node cycle, done directly
/// with the same kind of paths a driver gets: a bind onto the staging directory, `mkdir` of the
/// target and a bind onto it, then `umount` and `rmdir` of the target and `umount` of the
/// staging directory. A node cycle of any driver costs at least this much of its server's CPU.
pub fn cycle_kernel(staging_dir: &Path, target_dir: &Path, b: Budget) -> Result<f64> {
    let base = format!("floor-{}", std::process::id());
    let (src, stage, pod) = (staging_dir.join(format!("{base}-src")), staging_dir.join(&base), target_dir.join(&base));
    for d in [&src, &stage, &pod] {
        std::fs::create_dir_all(d).map_err(Error::io("create", d))?;
    }
    let target = pod.join("mount");
    let one = || -> Result<()> {
        bind(&src, &stage)?;
        std::fs::create_dir(&target).map_err(Error::io("create", &target))?;
        bind(&stage, &target)?;
        nix::mount::umount2(&target, MntFlags::empty()).map_err(Error::sys("unmount", &target))?;
        std::fs::remove_dir(&target).map_err(Error::io("remove", &target))?;
        nix::mount::umount2(&stage, MntFlags::empty()).map_err(Error::sys("unmount", &stage))
    };
    let mut cpu = std::time::Duration::ZERO;
    let runs = b.run(|i| {
        let start = thread_cpu();
        one()?;
        if i >= b.warmup {
            cpu += thread_cpu().saturating_sub(start);
        }
        Ok(std::time::Duration::ZERO)
    });
    // A failure part-way leaves mounts: they go before the directories.
    for m in [&target, &stage] {
        let _ = nix::mount::umount2(m, MntFlags::MNT_DETACH);
    }
    for d in [&target, &pod, &stage, &src] {
        let _ = std::fs::remove_dir(d);
    }
    let n = runs?.len().max(1);
    Ok(cpu.as_secs_f64() * 1e6 / n as f64)
}

/// This thread's CPU time.
fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant the kernel knows.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}
