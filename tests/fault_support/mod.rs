//! Support for the fault tester: a seeded PRNG, the run's tally and its one-line summary, content
//! hashes, simulated reboots, and the host checks (mounts, loop devices, frozen filesystems, files).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod call;
pub mod co;
pub mod kubelet;

use sha2::{Digest, Sha256};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use strata::sys::{Host, LinuxHost};

/// The seed used when `STRATA_FAULT_SEED` is unset.
pub const DEFAULT_SEED: u64 = 0x5eed13;

/// The seed and the number of operations of this run, from the environment or the defaults.
pub fn settings(default_ops: usize) -> (u64, usize) {
    let seed = std::env::var("STRATA_FAULT_SEED").ok().map_or(DEFAULT_SEED, |s| parse_seed(&s));
    let ops = std::env::var("STRATA_FAULT_OPS")
        .ok()
        .map_or(default_ops, |s| s.parse().expect("STRATA_FAULT_OPS is a number of operations"));
    (seed, ops)
}

fn parse_seed(s: &str) -> u64 {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.expect("STRATA_FAULT_SEED is a decimal or 0x-prefixed hex number")
}

/// A small deterministic PRNG (splitmix64): the same seed gives the same workload.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).expect("below n, which is a usize")
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index drawn with the given weights (not all zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = u32::try_from(self.next_u64() % u64::from(total)).expect("below total, which is a u32");
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        unreachable!("weights sum to {total}")
    }

    /// `len` bytes of content.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// What a run did and what went wrong; printed as one line.
#[derive(Debug, Default)]
pub struct Tally {
    pub seed: u64,
    pub ops: usize,
    pub calls: usize,
    pub kills: usize,
    pub mid_call_kills: usize,
    pub reboots: usize,
    pub ns_restarts: usize,
    pub writes: usize,
    pub lost_writes: usize,
    pub stuck: usize,
    pub leaks: usize,
    /// Every broken invariant, with the operation number and the call.
    pub violations: Vec<String>,
}

impl Tally {
    pub fn new(seed: u64) -> Tally {
        Tally { seed, ..Tally::default() }
    }

    pub fn violation(&mut self, op: usize, what: String) {
        eprintln!("VIOLATION at op {op}: {what}");
        self.violations.push(format!("op {op}: {what}"));
    }

    pub fn summary(&self, what: &str) -> String {
        format!(
            "{what}: seed {:#x}: {} operations ({} calls, {} writes), {} kills ({} mid-call), {} reboots, \
             {} namespace restarts, {} lost writes, {} stuck calls, {} leaks, {} violations",
            self.seed,
            self.ops,
            self.calls,
            self.writes,
            self.kills,
            self.mid_call_kills,
            self.reboots,
            self.ns_restarts,
            self.lost_writes,
            self.stuck,
            self.leaks,
            self.violations.len()
        )
    }

    /// Fails the test with the summary and every violation, if any.
    #[track_caller]
    pub fn assert_clean(&self, what: &str) {
        let summary = self.summary(what);
        let detail: Vec<&str> = self.violations.iter().take(40).map(String::as_str).collect();
        assert!(
            self.violations.is_empty(),
            "{summary}\nreproduce with STRATA_FAULT_SEED={:#x} STRATA_FAULT_OPS={}\n{}",
            self.seed,
            self.ops,
            detail.join("\n")
        );
    }
}

/// Hex sha256 of `data`.
pub fn hash(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `data` to `path` durably (fsync before it counts as acknowledged); returns its hash.
pub fn write_acknowledged(path: &Path, data: &[u8]) -> std::io::Result<String> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(hash(data))
}

/// The hash of the file at `path`, or why it cannot be read.
pub fn read_hash(path: &Path) -> Result<String, String> {
    std::fs::read(path).map(|d| hash(&d)).map_err(|e| e.to_string())
}

/// Thaws the filesystem holding `path` if it is frozen; true when it was (FITHAW answers EINVAL
/// on a filesystem that is not frozen). Never blocks, unlike a write to a frozen filesystem.
pub fn thaw_if_frozen(path: &Path) -> bool {
    let Ok(dir) = std::fs::File::open(path) else { return false };
    nix::ioctl_readwrite!(fithaw, b'X', 120, libc::c_int);
    let mut arg: libc::c_int = 0;
    // SAFETY: FITHAW takes an int argument it ignores; the fd is open for the call's duration and
    // `arg` outlives it.
    let r = unsafe { fithaw(dir.as_raw_fd(), &mut arg) };
    r.is_ok()
}

/// Whether `a` and `b` lie on the same filesystem (device number). A loop or tmpfs volume's
/// publication on the kubelet dir's filesystem is a bind of a bare directory, not the volume.
pub fn same_fs(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

/// The mount table of this process's namespace.
fn table() -> Vec<strata::sys::MountEntry> {
    LinuxHost.mount_table().expect("read the mount table").to_vec()
}

/// Mount points strictly below `dir`, deepest first; a data root's own `volumes` mount (the
/// server binds it onto itself where the root is private) is not counted.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let own = dir.join("volumes");
    let mut out: Vec<PathBuf> =
        table().into_iter().map(|m| m.mount_point).filter(|m| m.starts_with(dir) && m != dir && *m != own).collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    out.dedup();
    out
}

/// Loop devices whose backing file's path contains `needle`. For a server run in mount
/// namespaces, `/<root dir name>/` with a name unique to the run: a loop attached in a namespace
/// that is gone shows its file relative to that namespace's mount, not by its full path.
pub fn loops_of(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(backing) = std::fs::read_to_string(e.path().join("loop/backing_file")) else { continue };
        if backing.contains(needle) {
            out.push(format!("/dev/{} -> {}", e.file_name().to_string_lossy(), backing.trim_end()));
        }
    }
    out
}

/// Every entry (file or directory) below `dir`, recursively.
pub fn entries_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(entries_below(&p));
        }
        out.push(p);
    }
    out
}

/// What a reboot does to the host: no filesystem frozen any more, every mount below `dirs` gone
/// (lazily, deepest first), every loop device of the run (found by `loop_needle`, see
/// [`loops_of`]) detached. Returns the mounts that were found frozen (a leak of a freeze).
pub fn power_cycle(dirs: &[&Path], loop_needle: &str) -> Vec<PathBuf> {
    let mut frozen: Vec<PathBuf> = dirs.iter().flat_map(|d| mounts_below(d)).filter(|m| thaw_if_frozen(m)).collect();
    frozen.dedup();
    for _ in 0..4 {
        let mut all: Vec<PathBuf> = dirs.iter().flat_map(|d| mounts_below(d)).collect();
        all.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        if all.is_empty() {
            break;
        }
        for m in all {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    for _ in 0..50 {
        let loops = loops_of(loop_needle);
        if loops.is_empty() {
            break;
        }
        for l in loops {
            let dev = l.split(' ').next().unwrap_or_default();
            let _ = LinuxHost.loop_detach(Path::new(dev));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    frozen
}

/// `dir` bound onto itself and made shared, as a Bidirectional hostPath is: mounts made below
/// it from a child mount namespace reach the host. Unmounted (lazily) and removed on drop.
#[derive(Debug)]
pub struct SharedDir(pub PathBuf);

impl SharedDir {
    pub fn new(dir: &Path) -> SharedDir {
        share(dir);
        SharedDir(dir.to_owned())
    }
}

/// Binds `dir` onto itself and makes the bind shared.
pub fn share(dir: &Path) {
    use nix::mount::{MsFlags, mount};
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).expect("bind the dir onto itself");
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED, None::<&str>).expect("make the bind shared");
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        for m in mounts_below(&self.0) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines of `log` that tell of a panic.
pub fn panics_in(log: &str) -> Vec<String> {
    log.lines().filter(|l| l.contains("panicked at") || l.contains("RUST_BACKTRACE")).map(str::to_owned).collect()
}
