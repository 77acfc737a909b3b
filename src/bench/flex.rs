//! FlexVolume exec latency as kubelet sees it: `strata-flex init` and a `dir` mount + unmount,
//! next to a static binary that does nothing (the exec floor) and a bash script that echoes the
//! init JSON, round-robin in one run so that load hits every row alike.

use super::report::{ExecRow, Flex};
use super::stats::{Samples, ratio};
use super::workdir::WorkDir;
use super::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const INIT_JSON: &str = r#"{"status":"Success","message":"strata-flex is ready","capabilities":{"attach":false,"selinuxRelabel":true,"fsGroup":true,"supportsMetrics":true,"requiresFSResize":true}}"#;
/// Rounds run before measuring.
const WARMUP: usize = 10;

/// The programs of the exec figures.
#[derive(Debug)]
pub struct Programs {
    /// One or more strata-flex builds (for example the dynamic and the static one).
    pub flex: Vec<PathBuf>,
    pub noop: PathBuf,
    pub script: PathBuf,
}

impl Programs {
    /// Uses `noop` if given, else builds a static no-op with rustc in `work`; writes the script.
    pub fn prepare(work: &WorkDir, flex: Vec<PathBuf>, noop: Option<PathBuf>) -> Result<Programs> {
        let dir = work.sub("flex")?;
        let noop = match noop {
            Some(p) => p,
            None => build_noop(&dir)?,
        };
        let script = dir.join("init.sh");
        std::fs::write(&script, format!("#!/bin/bash\necho '{INIT_JSON}'\n")).map_err(Error::io("write", &script))?;
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&script, mode).map_err(Error::io("chmod", &script))?;
        Ok(Programs { flex, noop, script })
    }
}

/// Compiles `fn main() {}` with a static C runtime.
fn build_noop(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("noop.rs");
    let out = dir.join("noop");
    std::fs::write(&src, "fn main() {}\n").map_err(Error::io("write", &src))?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let res = Command::new(&rustc)
        .args(["-O", "-C", "panic=abort", "-C", "target-feature=+crt-static", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| Error::Command {
            what: "rustc (for the static no-op; or pass --noop-bin)".into(),
            detail: e.to_string(),
        })?;
    if !res.status.success() {
        let detail = String::from_utf8_lossy(&res.stderr).into_owned();
        return Err(Error::Command { what: "rustc -C target-feature=+crt-static noop.rs".into(), detail });
    }
    Ok(out)
}

/// Whether an ELF file has no program interpreter (a static binary). Not ELF: false.
pub fn is_static(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| elf_is_static(&b))
}

/// ELF64 little-endian: no PT_INTERP program header.
pub fn elf_is_static(b: &[u8]) -> bool {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let u64_at = |o: usize| b.get(o..o + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
    if b.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else { return false };
    let Ok(phoff) = usize::try_from(phoff) else { return false };
    (0..count).all(|i| b.get(phoff + i * size..phoff + i * size + 4) != Some(&3u32.to_le_bytes()[..]))
}

/// Where one strata-flex build keeps its world.
struct World {
    exe: PathBuf,
    root: PathBuf,
    kubelet: PathBuf,
    pod: PathBuf,
    json: String,
}

impl World {
    fn new(work: &WorkDir, exe: &Path, n: usize) -> Result<World> {
        let kubelet = work.sub(&format!("flex/{n}/kubelet"))?;
        let vol = "pv-bench";
        let json = format!(
            r#"{{"backend":"dir","kubernetes.io/fsType":"","kubernetes.io/pod.name":"bench","kubernetes.io/pod.namespace":"default","kubernetes.io/pod.uid":"uid-1","kubernetes.io/pvOrVolumeName":"{vol}","kubernetes.io/readwrite":"rw","kubernetes.io/serviceAccount.name":"default","size":"1Gi"}}"#
        );
        let pod = kubelet.join("pods/uid-1/volumes/strata~flex").join(vol);
        Ok(World { exe: exe.to_owned(), root: kubelet.with_file_name("root"), kubelet, pod, json })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env("STRATA_FLEX_ROOT", &self.root)
            .env("STRATA_FLEX_KUBELET_DIR", &self.kubelet)
            .env("STRATA_FLEX_LOG", self.root.with_file_name("flex.log"));
        cmd
    }

    /// init, mount, unmount, mount + unmount; kubelet's mkdir of the pod dir is not timed.
    fn round(&self) -> Result<[Duration; 4]> {
        std::fs::create_dir_all(&self.pod).map_err(Error::io("create", &self.pod))?;
        let pod = self.pod.to_str().ok_or_else(|| Error::Setup("non-UTF-8 temp path".into()))?;
        let init = exec(&mut self.command(&["init"]), true)?;
        let mount = exec(&mut self.command(&["mount", pod, &self.json]), true)?;
        let unmount = exec(&mut self.command(&["unmount", pod]), true)?;
        Ok([init, mount, unmount, mount + unmount])
    }
}

/// Runs a command to its end; returns its wall time. `success`: it must answer Success.
fn exec(cmd: &mut Command, success: bool) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd.output().map_err(|e| Error::Command { what: format!("{cmd:?}"), detail: e.to_string() })?;
    let spent = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || (success && !text.contains(r#""status":"Success""#)) {
        return Err(Error::Command { what: format!("{cmd:?}"), detail: format!("{}: {text}", out.status) });
    }
    Ok(spent)
}

/// Measures every row for `rounds` rounds: the floors, then four rows per strata-flex build.
pub fn measure(work: &WorkDir, p: &Programs, rounds: usize) -> Result<Flex> {
    let worlds = p.flex.iter().enumerate().map(|(n, exe)| World::new(work, exe, n)).collect::<Result<Vec<_>>>()?;
    let mut rows = vec![Samples::new(); 2 + 4 * worlds.len()];
    for round in 0..rounds + WARMUP {
        let mut got = vec![exec(&mut Command::new(&p.noop), false)?, exec(&mut Command::new(&p.script), true)?];
        for w in &worlds {
            got.extend(w.round()?);
        }
        if round >= WARMUP {
            rows.iter_mut().zip(got).for_each(|(s, d)| s.push(d));
        }
    }
    let mut names = vec![("static no-op (exec floor)", &p.noop), ("bash echoing the init JSON", &p.script)];
    for exe in &p.flex {
        names.extend(["init", "mount (dir)", "unmount (dir)", "mount + unmount (dir)"].map(|n| (n, exe)));
    }
    let floor = rows[0].summary().p50_us;
    let rows = rows.iter().zip(names).map(|(s, (what, prog))| row(what, prog, s.summary(), floor)).collect();
    Ok(Flex { rounds, rows })
}

fn row(what: &str, program: &Path, latency: super::stats::Summary, floor: f64) -> ExecRow {
    ExecRow {
        what: what.into(),
        program: program.display().to_string(),
        static_binary: is_static(program),
        x_floor: ratio(latency.p50_us, floor),
        latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interpreter_decides_static() {
        // A 64-bit ELF header with one program header of type PT_LOAD (1), then PT_INTERP (3).
        let mut elf = vec![0u8; 0x40 + 2 * 56];
        elf[..5].copy_from_slice(b"\x7fELF\x02");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        elf[0x40 + 56..0x40 + 60].copy_from_slice(&3u32.to_le_bytes());
        assert!(elf_is_static(&elf));
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        assert!(!elf_is_static(&elf));
        assert!(!elf_is_static(b"#!/bin/bash\n"));
        assert!(!is_static(Path::new("/bin/sh")));
    }
}
