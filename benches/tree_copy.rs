//! The tree engine against `cp -a --reflink=auto` on the same trees, side by side: many small
//! files, one large file, a sparse file, on a tmpfs, an ext4 and an xfs (reflinks) of their own;
//! and a usage walk (`strata::sys::tree::measure`) against `du -s` over 200,000 files.
//! `cargo bench --bench tree_copy` as root (it mounts its scratch filesystems); prints a
//! markdown table. Best of 5 rounds each, strata and cp taking turns.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use strata::sys::tree;
use strata::sys::{Host, LinuxHost};

/// A scratch filesystem mounted at `<dir>/<name>`, taken down on drop.
struct Scratch {
    mount: PathBuf,
    device: Option<PathBuf>,
}

impl Scratch {
    fn tmpfs(dir: &Path) -> Scratch {
        let mount = dir.join("tmpfs");
        std::fs::create_dir(&mount).expect("mkdir");
        mount_fs("tmpfs".as_ref(), &mount, "tmpfs", Some("size=6g,nr_inodes=2m"));
        Scratch { mount, device: None }
    }

    fn disk(dir: &Path, fs: &str, name: &str) -> Scratch {
        let image = dir.join(format!("{name}.img"));
        std::fs::File::create(&image).and_then(|f| f.set_len(8 << 30)).expect("image");
        let device = LinuxHost.loop_attach(&image, false).expect("loop device");
        let args: &[&str] = if fs == "ext4" { &["-q", "-F", "-N", "1200000"] } else { &["-q", "-f"] };
        let mkfs = Command::new(format!("/usr/sbin/mkfs.{fs}")).args(args).arg(&device).output().expect("mkfs");
        assert!(mkfs.status.success(), "mkfs.{fs}: {}", String::from_utf8_lossy(&mkfs.stderr));
        let mount = dir.join(name);
        std::fs::create_dir(&mount).expect("mkdir");
        mount_fs(&device, &mount, fs, None);
        Scratch { mount, device: Some(device) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        if let Some(d) = &self.device {
            let _ = LinuxHost.loop_detach(d);
        }
    }
}

fn mount_fs(source: &Path, at: &Path, fs: &str, data: Option<&str>) {
    nix::mount::mount(Some(source), at, Some(fs), nix::mount::MsFlags::empty(), data).expect("mount");
}

/// The trees copied: a name and what makes it.
/// What makes a tree at a path.
type Maker = fn(&Path);

const TREES: [(&str, Maker); 3] = [
    ("50,000 files of 1 KiB", small_files),
    ("one 1 GiB file", large_file),
    ("a 64 GiB sparse file (16 MiB of data)", sparse_file),
];

fn small_files(at: &Path) {
    for d in 0..500 {
        let dir = at.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}")), [b'x'; 1024]).expect("write");
        }
    }
}

fn large_file(at: &Path) {
    std::fs::create_dir_all(at).expect("mkdir");
    let chunk = vec![0x5a; 1 << 20];
    let mut f = std::fs::File::create(at.join("big")).expect("create");
    for _ in 0..1024 {
        std::io::Write::write_all(&mut f, &chunk).expect("write");
    }
    f.sync_all().expect("sync");
}

fn sparse_file(at: &Path) {
    std::fs::create_dir_all(at).expect("mkdir");
    let f = std::fs::File::create(at.join("sparse")).expect("create");
    f.set_len(64 << 30).expect("length");
    let chunk = vec![0x33; 1 << 20];
    for i in 0..16u64 {
        rustix::io::pwrite(&f, &chunk, i * (4 << 30)).expect("write");
    }
    f.sync_all().expect("sync");
}

/// One run of `run` into `dest`, synced, then removed: how long it took.
fn once(dest: &Path, run: &mut dyn FnMut(&Path)) -> Duration {
    let start = Instant::now();
    run(dest);
    rustix::fs::sync();
    let took = start.elapsed();
    tree::remove_tree(dest).expect("remove");
    took
}

/// The best of 5 rounds of each of the two copies, taking turns (so both meet the same noise).
fn side_by_side(dest: &Path, mut a: impl FnMut(&Path), mut b: impl FnMut(&Path)) -> (Duration, Duration) {
    let (mut best_a, mut best_b) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        best_a = best_a.min(once(dest, &mut a));
        best_b = best_b.min(once(dest, &mut b));
    }
    (best_a, best_b)
}

fn cp(src: &Path, dest: &Path) {
    let status = Command::new("cp").args(["-a", "--reflink=auto", "--no-target-directory"]).arg(src).arg(dest).status();
    assert!(status.expect("cp").success());
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn copies(fs: &Scratch, name: &str) {
    for (what, make) in TREES {
        let src = fs.mount.join("src");
        make(&src);
        rustix::fs::sync();
        let dest = fs.mount.join("dest");
        let (strata, cp) = side_by_side(
            &dest,
            |d| {
                tree::copy_tree(&src, d).expect("copy");
            },
            |d| cp(&src, d),
        );
        let ratio = cp.as_secs_f64() / strata.as_secs_f64().max(1e-9);
        println!("| {name} | {what} | {} | {} | {ratio:.2} |", ms(strata), ms(cp));
        tree::remove_tree(&src).expect("remove");
    }
}

fn usage(fs: &Scratch) {
    let src = fs.mount.join("walk");
    for d in 0..2000 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}")), b"x").expect("write");
        }
    }
    let time = |mut run: Box<dyn FnMut()>| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let walk = src.clone();
    let strata = time(Box::new(move || {
        tree::measure(&walk).expect("measure");
    }));
    let du =
        time(Box::new(move || assert!(Command::new("du").arg("-s").arg(&src).output().expect("du").status.success())));
    println!("\n| usage walk of 200,000 files (ext4) | strata ms | du -s ms | du / strata |\n|---|---:|---:|---:|");
    println!("| measure | {} | {} | {:.2} |", ms(strata), ms(du), du.as_secs_f64() / strata.as_secs_f64().max(1e-9));
}

fn main() {
    assert!(nix::unistd::geteuid().is_root(), "tree_copy mounts scratch filesystems: run it as root");
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| filesystem | tree | strata ms | cp -a ms | cp / strata |\n|---|---|---:|---:|---:|");
    copies(&Scratch::tmpfs(dir.path()), "tmpfs");
    copies(&Scratch::disk(dir.path(), "ext4", "ext4"), "ext4");
    copies(&Scratch::disk(dir.path(), "xfs", "xfs"), "xfs (reflink)");
    usage(&Scratch::disk(dir.path(), "ext4", "walk"));
}
