//! Which mount options a request may ask for, per backend and per mount: a pure allowlist.
//!
//! Per-mount flags that a bind carries are allowed everywhere. A loop volume's own filesystem
//! mount (its stage) also takes a few superblock options of its filesystem. Everything else is
//! refused with [`Error::InvalidArgument`], in particular what would change how strata mounts
//! (`remount`, `bind`, `move`), what strata sets itself (`size=`, `mode=`, `uid=`), what widens
//! a mount (`suid`, `dev`) and what can take the node down (`errors=panic`). tmpfs volumes
//! always carry `nosuid,nodev`: a bind remount without them would clear them. `dir` volumes
//! carry `nodev` unless their class says `devices: allow`: a device node a pod makes in its
//! volume is never a way to reach a device from another pod that mounts it.

use super::{Error, Result, quote};
use crate::backend::{DeviceNodes, Kind, rules};
use crate::sys::FsType;

/// Which mount the options are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The volume's own filesystem mount (loop) or the bind at the staging path (dir, btrfs, tmpfs).
    Stage,
    /// A bind into a pod.
    Publish,
}

/// Flags of one mount (`MS_*` that a bind remount applies): allowed on every mount.
const PER_MOUNT: [&str; 9] =
    ["ro", "rw", "noexec", "nosuid", "nodev", "noatime", "relatime", "nodiratime", "strictatime"];

/// What the kernel does anyway: accepted and dropped.
const DEFAULTS: [&str; 5] = ["defaults", "exec", "async", "atime", "diratime"];

/// The parameter that lets a `dir` volume's mounts reach device nodes (`devices: allow`).
pub const PARAM_DEVICES: &str = "devices";

/// Whether a volume's parameters let its mounts reach device nodes: `devices: allow`, for `dir`
/// volumes only (tmpfs volumes never do; strata does not make loop and btrfs mounts `nodev`).
pub fn devices(kind: Kind, params: &std::collections::BTreeMap<String, String>) -> Result<bool> {
    match params.get(PARAM_DEVICES).map(String::as_str) {
        None | Some("" | "deny") => Ok(false),
        Some("allow") => match rules(kind).device_nodes() {
            DeviceNodes::Optional => Ok(true),
            nodes => Err(Error::InvalidArgument(format!(
                "devices: allow is for dir volumes; a {} volume's mounts are {}",
                kind.as_str(),
                if nodes == DeviceNodes::Never { "always nodev" } else { "never made nodev by strata" }
            ))),
        },
        Some(other) => Err(Error::InvalidArgument(format!("devices {} is neither allow nor deny", quote(other)))),
    }
}

/// [`check`] for a mount of `vol`, with `nodev` added to a `dir` volume's mounts unless its
/// parameters allow devices.
pub fn for_volume(vol: &super::Volume, at: Use, options: &[String]) -> Result<Vec<String>> {
    let mut out = check(vol.backend, vol.fs_type, at, options)?;
    let optional = rules(vol.backend).device_nodes() == DeviceNodes::Optional;
    if optional && !devices(vol.backend, &vol.parameters)? && !out.iter().any(|o| o == "nodev") {
        out.push("nodev".to_owned());
    }
    Ok(out)
}

/// Splits every entry on commas, trims, drops empties and checks each option against what a
/// `kind` volume (of filesystem `fs`, for loop; ext4 when unset) allows for `at`. Returns the
/// options to apply: deduplicated, in the order given, without no-op defaults; for tmpfs with
/// `nosuid` and `nodev` always present.
pub fn check(kind: Kind, fs: Option<FsType>, at: Use, options: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for opt in options.iter().flat_map(|entry| entry.split(',')).map(str::trim).filter(|o| !o.is_empty()) {
        if DEFAULTS.contains(&opt) {
            continue;
        }
        if !allowed(kind, fs, at, opt) {
            return Err(refused(kind, fs, at, opt));
        }
        if !out.iter().any(|o| o == opt) {
            out.push(opt.to_owned());
        }
    }
    for &flag in rules(kind).always_options() {
        if !out.iter().any(|o| o == flag) {
            out.push(flag.to_owned());
        }
    }
    Ok(out)
}

fn allowed(kind: Kind, fs: Option<FsType>, at: Use, opt: &str) -> bool {
    PER_MOUNT.contains(&opt) || fs_stage_options(kind, fs, at).contains(&opt)
}

/// The superblock options this mount takes beyond the per-mount flags.
fn fs_stage_options(kind: Kind, fs: Option<FsType>, at: Use) -> Vec<&'static str> {
    match at {
        Use::Stage => rules(kind).stage_fs_options(fs),
        Use::Publish => Vec::new(),
    }
}

fn refused(kind: Kind, fs: Option<FsType>, at: Use, opt: &str) -> Error {
    let why = match opt.split_once('=').map_or(opt, |(k, _)| k) {
        "remount" | "bind" | "rbind" | "move" | "make-private" | "make-shared" | "make-slave" => {
            "it changes how strata mounts"
        }
        "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks" | "huge" => "strata sets it",
        "suid" | "dev" => "it would let the volume run setuid programs or reach devices",
        "errors" if opt == "errors=panic" => "it would panic the node's kernel on a filesystem error",
        _ => "it is not on the allowlist",
    };
    let own_fs = !rules(kind).stage_fs_options(fs).is_empty();
    let mount = match at {
        Use::Stage if own_fs => {
            format!("the {} mount of a {} volume", fs.unwrap_or(FsType::Ext4).as_str(), kind.as_str())
        }
        Use::Stage => format!("the staging bind of a {} volume", kind.as_str()),
        Use::Publish => format!("a publish bind of a {} volume", kind.as_str()),
    };
    let allowed: Vec<&str> = PER_MOUNT.iter().copied().chain(fs_stage_options(kind, fs, at)).collect();
    Error::InvalidArgument(format!(
        "mount option {} is not allowed for {mount}: {why}; allowed: {}",
        quote(opt),
        allowed.join(", ")
    ))
}

#[cfg(test)]
mod tests;
