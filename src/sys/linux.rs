//! [`LinuxHost`]: the real host, through mount(2), loop ioctls, statvfs and system tools.

use super::{
    Action, Errno, Error, FsStats, FsType, Host, LoopDevice, MountOptions, Place, Result, fdmount, fscrypt, loopdev,
    tools,
};
use nix::mount::MsFlags;
use std::ffi::OsStr;
use std::path::Path;

/// The host strata runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxHost;

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

/// Splits user mount options into MS_* flags and the filesystem's data string.
pub fn split_options(opts: &MountOptions) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in &opts.options {
        match opt.as_str() {
            "ro" => flags.insert(MsFlags::MS_RDONLY),
            "rw" | "defaults" | "" => {}
            "noatime" => flags.insert(MsFlags::MS_NOATIME),
            "nodiratime" => flags.insert(MsFlags::MS_NODIRATIME),
            "relatime" => flags.insert(MsFlags::MS_RELATIME),
            "strictatime" => flags.insert(MsFlags::MS_STRICTATIME),
            "lazytime" => flags.insert(MsFlags::MS_LAZYTIME),
            "nosuid" => flags.insert(MsFlags::MS_NOSUID),
            "nodev" => flags.insert(MsFlags::MS_NODEV),
            "noexec" => flags.insert(MsFlags::MS_NOEXEC),
            "sync" => flags.insert(MsFlags::MS_SYNCHRONOUS),
            "dirsync" => flags.insert(MsFlags::MS_DIRSYNC),
            "suid" | "dev" | "exec" | "async" | "atime" | "diratime" => {}
            other => data.push(other),
        }
    }
    if opts.readonly {
        flags.insert(MsFlags::MS_RDONLY);
    }
    (flags, data.join(","))
}

fn data_arg(data: &str) -> Option<&str> {
    if data.is_empty() { None } else { Some(data) }
}

impl Host for LinuxHost {
    fn bind_mount(&self, source: &Path, target: &Place, opts: &MountOptions) -> Result<()> {
        let (flags, _data) = split_options(opts);
        fdmount::bind(source, target, fdmount::Attrs::from_flags(flags))
            .map_err(Error::on(Action::Bind { source: source.to_owned() }, target.path()))
    }

    fn mount(&self, source: &Path, target: &Place, fstype: &str, opts: &MountOptions) -> Result<()> {
        let (flags, data) = split_options(opts);
        let action = Action::Mount { source: source.to_owned(), fstype: fstype.to_owned() };
        fdmount::mount_on(Some(source), target, Some(fstype), flags, data_arg(&data))
            .map_err(Error::on(action, target.path()))
    }

    fn remount(&self, target: &Place, opts: &MountOptions) -> Result<()> {
        let (flags, data) = split_options(opts);
        fdmount::mount_on(None, target, None, flags | MsFlags::MS_REMOUNT, data_arg(&data))
            .map_err(Error::on(Action::Remount, target.path()))
    }

    fn make_private(&self, target: &Place) -> Result<()> {
        fdmount::mount_on(None, target, None, MsFlags::MS_PRIVATE, None)
            .map_err(Error::on(Action::Remount, target.path()))
    }

    fn unmount(&self, target: &Place, lazy: bool) -> Result<()> {
        fdmount::unmount(target, lazy).map_err(Error::on(Action::Unmount, target.path()))
    }

    fn mount_table(&self) -> Result<super::MountTable> {
        super::mounttable::read()
    }

    fn is_mount_point(&self, place: &Place) -> Result<bool> {
        match place.stat() {
            Ok(None) => Ok(false),
            Ok(Some(st)) if st.mount_root.is_some() => Ok(st.mount_root == Some(true)),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(false),
            Ok(Some(_)) | Err(_) => Ok(super::mount_at(&self.mount_table()?, place.path()).is_some()),
        }
    }

    fn same_mount_root(&self, mount_point: &Place, dir: &Path) -> Option<bool> {
        let (m, d) = (mount_point.stat().ok()??, super::statx::identity(dir).ok()?);
        Some(m.mount_root? && (m.dev, m.ino) == (d.dev, d.ino))
    }

    fn mounted_from(&self, mount_point: &Place, device: &Path) -> Option<bool> {
        let (m, d) = (mount_point.stat().ok()??, std::fs::metadata(device).ok()?);
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        Some(d.file_type().is_block_device() && m.mount_root? && m.dev == d.rdev())
    }

    fn fs_facts(&self, place: &Place) -> Option<super::FsFacts> {
        let st = rustix::fs::fstatfs(place.open_path().ok()?).ok()?;
        let read_only = u64::try_from(st.f_flags).ok()? & libc::ST_RDONLY != 0;
        Some(super::FsFacts { read_only, magic: u64::try_from(st.f_type).ok()? })
    }

    fn loop_attach(&self, file: &Path, readonly: bool) -> Result<std::path::PathBuf> {
        loopdev::attach(file, readonly)
    }

    fn loop_detach(&self, device: &Path) -> Result<()> {
        loopdev::detach(device)
    }

    fn loop_list(&self) -> Result<Vec<LoopDevice>> {
        loopdev::list()
    }

    fn loop_detach_backing(&self, device: &Path, file: &Path) -> Result<bool> {
        loopdev::detach_if_backing(device, file)
    }

    fn unopened(&self, file: &Path) -> Option<bool> {
        loopdev::unopened(file).ok()
    }

    fn loop_backs(&self, device: &Path, file: &Path) -> Result<bool> {
        let backing = loopdev::backing(device).map_err(Error::on(Action::Loop("status"), device))?;
        Ok(backing.is_some() && backing == super::file_identity(file))
    }

    fn loop_set_capacity(&self, device: &Path) -> Result<()> {
        loopdev::set_capacity(device)
    }

    fn probe_fs(&self, device: &Path) -> Result<Option<String>> {
        let args = [OsStr::new("-p"), OsStr::new("-o"), OsStr::new("export"), device.as_os_str()];
        let out = tools::output("blkid", &args)?;
        match out.status.code() {
            Some(0) => Ok(parse_blkid_export(&String::from_utf8_lossy(&out.stdout))),
            Some(2) => Ok(None),
            _ => Err(Error::Tool { tool: "blkid".into(), path: device.to_owned(), detail: tools::detail(&out) }),
        }
    }

    fn mkfs(&self, device: &Path, fs: FsType, encrypt: bool) -> Result<()> {
        let dev = device.as_os_str();
        match (fs, encrypt) {
            (FsType::Ext4, _) => {
                let mut args = vec![OsStr::new("-q"), OsStr::new("-E"), OsStr::new("nodiscard")];
                if encrypt {
                    args.extend([OsStr::new("-O"), OsStr::new("encrypt")]);
                }
                args.push(dev);
                tools::run("mkfs.ext4", &args, device)
            }
            (FsType::Xfs, false) => tools::run("mkfs.xfs", &[OsStr::new("-q"), OsStr::new("-K"), dev], device),
            (FsType::Xfs, true) => Err(Error::Tool {
                tool: "mkfs.xfs".into(),
                path: device.to_owned(),
                detail: "xfs has no fscrypt support here; encrypted volumes are ext4".into(),
            }),
        }
        .map(drop)
    }

    fn grow_fs(&self, fs: FsType, device: &Path, mountpoint: &Path) -> Result<()> {
        match fs {
            FsType::Ext4 => tools::run("resize2fs", &[device.as_os_str()], device).map_err(name_the_capability),
            FsType::Xfs => tools::run("xfs_growfs", &[OsStr::new("-d"), mountpoint.as_os_str()], mountpoint),
        }
        .map(drop)
    }

    fn grow_fs_offline(&self, fs: FsType, device: &Path) -> Result<()> {
        if fs == FsType::Xfs {
            let detail = "xfs can only grow while mounted".to_owned();
            return Err(Error::Tool { tool: "xfs_growfs".into(), path: device.to_owned(), detail });
        }
        // e2fsck exits 1 when it fixed something, which still leaves a clean filesystem.
        let out = tools::output("e2fsck", &[OsStr::new("-f"), OsStr::new("-p"), device.as_os_str()])?;
        if !matches!(out.status.code(), Some(0 | 1)) {
            return Err(Error::Tool { tool: "e2fsck".into(), path: device.to_owned(), detail: tools::detail(&out) });
        }
        tools::run("resize2fs", &[device.as_os_str()], device).map(drop)
    }

    fn statvfs(&self, path: &Path) -> Result<FsStats> {
        let st = nix::sys::statvfs::statvfs(path).map_err(Error::on(Action::Statvfs, path))?;
        let frag = st.fragment_size();
        let total = st.blocks() * frag;
        let free = st.blocks_free() * frag;
        Ok(FsStats {
            total_bytes: total,
            available_bytes: st.blocks_available() * frag,
            used_bytes: total.saturating_sub(free),
            total_inodes: st.files(),
            free_inodes: st.files_free(),
            used_inodes: st.files().saturating_sub(st.files_free()),
        })
    }

    fn btrfs_subvolume_create(&self, path: &Path) -> Result<()> {
        btrfs(&["subvolume", "create"], &[path])
    }

    fn btrfs_subvolume_delete(&self, path: &Path) -> Result<()> {
        btrfs(&["subvolume", "delete", "--commit-after"], &[path])
    }

    fn btrfs_snapshot(&self, source: &Path, dest: &Path, readonly: bool) -> Result<()> {
        let args: &[&str] = if readonly { &["subvolume", "snapshot", "-r"] } else { &["subvolume", "snapshot"] };
        btrfs(args, &[source, dest])
    }

    fn btrfs_quota_enable(&self, path: &Path) -> Result<()> {
        btrfs(&["quota", "enable"], &[path])
    }

    fn btrfs_qgroup_limit(&self, path: &Path, bytes: u64) -> Result<()> {
        let limit = bytes.to_string();
        let args = [OsStr::new("qgroup"), OsStr::new("limit"), OsStr::new(&limit), path.as_os_str()];
        tools::run("btrfs", &args, path).map(drop)
    }

    fn btrfs_qgroup_usage(&self, path: &Path) -> Result<u64> {
        let args = [OsStr::new("qgroup"), OsStr::new("show"), OsStr::new("-f"), OsStr::new("--raw"), path.as_os_str()];
        let out = tools::run("btrfs", &args, path)?;
        parse_qgroup_referenced(&out.stdout).ok_or_else(|| Error::Tool {
            tool: "btrfs".into(),
            path: path.to_owned(),
            detail: format!("no qgroup row in output: {}", out.stdout.trim()),
        })
    }

    fn is_btrfs(&self, path: &Path) -> Result<bool> {
        let st = nix::sys::statfs::statfs(path).map_err(Error::on(Action::Statvfs, path))?;
        Ok(st.filesystem_type().0 == BTRFS_SUPER_MAGIC)
    }

    fn copy_tree(
        &self,
        source: &Path,
        dest: &Path,
        progress: &super::tree::Progress,
    ) -> Result<super::tree::CopyReport> {
        Ok(super::tree::copy_tree_with(source, dest, progress)?)
    }

    fn freeze(&self, mountpoint: &Place) -> Result<()> {
        super::freeze::ioctl(mountpoint, super::freeze::FIFREEZE, "freeze")
    }

    fn thaw(&self, mountpoint: &Place) -> Result<()> {
        super::freeze::ioctl(mountpoint, super::freeze::FITHAW, "thaw")
    }

    fn memory_available(&self) -> Result<u64> {
        let text =
            std::fs::read_to_string("/proc/meminfo").map_err(Error::on(Action::Other("read"), "/proc/meminfo"))?;
        let kib = text
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        // No MemAvailable line: the kernel's answer has no such data (ENODATA).
        kib.map(|k| k * 1024).ok_or_else(|| Error::io("parse MemAvailable in", "/proc/meminfo", Errno::ENODATA))
    }

    fn reflink_file(&self, source: &Path, dest: &Path) -> Result<bool> {
        Ok(super::tree::reflink_file(source, dest)?)
    }

    fn copy_file(&self, source: &Path, dest: &Path, progress: &super::tree::Progress) -> Result<super::tree::Copied> {
        Ok(super::tree::copy_file_with(source, dest, progress)?)
    }

    fn rename_dir(&self, from: &Path, to: &Path) -> Result<()> {
        rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, rustix::fs::RenameFlags::NOREPLACE)
            .map_err(Error::on(Action::Other("rename"), from))
    }

    fn fscrypt_policy(&self, dir: &Place) -> Result<fscrypt::Policy> {
        fscrypt::at("read the policy of", dir, fscrypt::policy)
    }

    fn fscrypt_set_policy(&self, dir: &Place, id: &fscrypt::KeyId) -> Result<()> {
        fscrypt::at("set the policy of", dir, |fd| fscrypt::set(fd, id))
    }

    fn fscrypt_add_key(&self, fs: &Place, key: &[u8; fscrypt::KEY_SIZE]) -> Result<fscrypt::KeyId> {
        fscrypt::at("add a key to the filesystem of", fs, |fd| fscrypt::add(fd, key))
    }

    fn fscrypt_remove_key(&self, fs: &Place, id: &fscrypt::KeyId) -> Result<fscrypt::Removal> {
        fscrypt::at("remove a key from the filesystem of", fs, |fd| fscrypt::remove(fd, id))
    }

    fn fscrypt_key_status(&self, fs: &Place, id: &fscrypt::KeyId) -> Result<fscrypt::KeyStatus> {
        fscrypt::at("read a key's status on the filesystem of", fs, |fd| fscrypt::status(fd, id))
    }
}

fn btrfs(verb: &[&str], paths: &[&Path]) -> Result<()> {
    let mut args: Vec<&OsStr> = verb.iter().map(OsStr::new).collect();
    args.extend(paths.iter().map(|p| p.as_os_str()));
    tools::run("btrfs", &args, paths[0]).map(drop)
}

/// The TYPE (or PTTYPE, a partition table) from `blkid -o export`.
pub fn parse_blkid_export(text: &str) -> Option<String> {
    let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
    value("TYPE=").or_else(|| value("PTTYPE=").map(|t| format!("partition table {t}")))
}

/// The referenced bytes of the first `0/N` row of `btrfs qgroup show --raw`.
pub fn parse_qgroup_referenced(text: &str) -> Option<u64> {
    text.lines().map(str::split_whitespace).find_map(|mut cols| {
        let id = cols.next()?;
        if !id.starts_with("0/") {
            return None;
        }
        cols.next()?.parse().ok()
    })
}

/// resize2fs only says "Permission denied to resize filesystem" when the kernel refuses to grow
/// a mounted ext4 (EXT4_IOC_RESIZE_FS) for a process without CAP_SYS_RESOURCE: name it.
fn name_the_capability(e: Error) -> Error {
    match e {
        Error::Tool { tool, path, detail } if detail.contains("Permission denied") => {
            let detail = format!(
                "{detail}: growing a mounted ext4 filesystem needs CAP_SYS_RESOURCE, which this process lacks \
                 (run the driver with that capability)"
            );
            Error::Tool { tool, path, detail }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts = MountOptions {
            readonly: false,
            options: vec!["noatime".into(), "nouuid".into(), "ro".into(), "size=1m".into()],
        };
        let (flags, data) = split_options(&opts);
        assert!(flags.contains(MsFlags::MS_NOATIME | MsFlags::MS_RDONLY));
        assert_eq!(data, "nouuid,size=1m");
    }

    #[test]
    fn readonly_sets_rdonly() {
        let (flags, data) = split_options(&MountOptions { readonly: true, options: vec![] });
        assert_eq!(flags, MsFlags::MS_RDONLY);
        assert_eq!(data, "");
    }

    #[test]
    fn statx_agrees_with_the_mount_table() {
        let host = LinuxHost;
        let at = |p: &Path| Place::at(p).unwrap();
        for m in host.mount_table().unwrap().iter() {
            if m.mount_point != Path::new("/") {
                assert!(host.is_mount_point(&at(&m.mount_point)).unwrap(), "{}", m.mount_point.display());
            }
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(!host.is_mount_point(&at(dir.path())).unwrap());
        assert!(!host.is_mount_point(&at(&dir.path().join("missing"))).unwrap());
        assert_eq!(host.same_mount_root(&at(Path::new("/proc")), Path::new("/proc")), Some(true));
        assert_eq!(host.same_mount_root(&at(dir.path()), dir.path()), Some(false));
        assert_eq!(host.same_mount_root(&at(Path::new("/proc")), Path::new("/")), Some(false));
        assert_eq!(host.same_mount_root(&at(&dir.path().join("missing")), dir.path()), None);
        assert_eq!(host.mounted_from(&at(dir.path()), Path::new("/dev/null")), Some(false));
        assert_eq!(host.mounted_from(&at(Path::new("/proc")), Path::new("/dev/null")), Some(false));
        assert_eq!(host.mounted_from(&at(dir.path()), &dir.path().join("missing")), None);
    }

    #[test]
    fn statfs_agrees_with_the_mount_table() {
        let host = LinuxHost;
        let table = host.mount_table().unwrap();
        let mut seen = 0;
        for m in table.iter() {
            // Only the topmost mount at a point shows through its path, and only directories.
            let top = super::super::mount_at(&table, &m.mount_point).is_some_and(|t| t.mount_id == m.mount_id);
            let Some(facts) = Place::at(&m.mount_point).ok().filter(|_| top).and_then(|p| host.fs_facts(&p)) else {
                continue;
            };
            seen += 1;
            assert_eq!(facts.read_only, m.is_readonly(), "{}", m.mount_point.display());
            if m.fs_type == "tmpfs" {
                assert_eq!(facts.magic, 0x0102_1994, "{}", m.mount_point.display());
            }
        }
        assert!(seen > 1, "statfs answered for {seen} mounts of {}", table.len());
        let proc = host.fs_facts(&Place::at(Path::new("/proc")).unwrap()).unwrap();
        assert_eq!(proc.magic, 0x9fa0, "PROC_SUPER_MAGIC");
    }

    #[test]
    fn blkid_export_is_parsed() {
        assert_eq!(parse_blkid_export("DEVNAME=/dev/loop0\nUUID=x\nTYPE=xfs\n").as_deref(), Some("xfs"));
        assert_eq!(parse_blkid_export("PTUUID=1\nPTTYPE=gpt\n").as_deref(), Some("partition table gpt"));
        assert_eq!(parse_blkid_export("DEVNAME=/dev/loop0\n"), None);
    }

    #[test]
    fn qgroup_rows_are_parsed() {
        let text = "qgroupid         rfer         excl     max_rfer     max_excl \n--------         ----         ----     --------     -------- \n0/257        16384        16384    104857600         none \n";
        assert_eq!(parse_qgroup_referenced(text), Some(16384));
        assert_eq!(parse_qgroup_referenced("Qgroupid Referenced Exclusive Path\n0/258 4096 4096 data\n"), Some(4096));
        assert_eq!(parse_qgroup_referenced("nothing"), None);
    }
}
