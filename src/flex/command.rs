//! kubelet's argv, exactly as `pkg/volume/flexvolume` builds it, turned into a [`Command`].

use super::{Error, Result};
use std::ffi::OsString;
use std::path::PathBuf;

/// One call, with the arguments strata uses.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Init,
    /// `mount <podVolumeDir> <json>`
    Mount {
        target: PathBuf,
        json: String,
    },
    /// `unmount <podVolumeDir>`
    Unmount {
        target: PathBuf,
    },
    /// `expandvolume <json> <deviceMountPath> <newBytes> <oldBytes>`, from kube-controller-manager
    /// on its own host.
    ExpandVolume {
        json: String,
        new_bytes: u64,
    },
    /// `expandfs <json> <devicePath> <deviceMountPath> <newBytes> <oldBytes>`, from kubelet on
    /// the volume's node.
    ExpandFs {
        json: String,
        new_bytes: u64,
    },
    /// `isattached`: never called for attach:false, but must say "attached" if it is.
    IsAttached,
    /// `mountdevice` / `unmountdevice`: nothing to do; `Not supported` would make kubelet
    /// format and mount a device itself.
    NoOp(&'static str),
    /// `getvolumename`, `attach`, `detach`, `waitforattach` and anything unknown.
    NotSupported(String),
}

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Command> {
    let Some(name) = args.first() else {
        return Err(usage("strata-flex", "<command> [arguments...]", 0));
    };
    let rest = &args[1..];
    let Some(name) = name.to_str() else {
        return Ok(Command::NotSupported(name.to_string_lossy().into_owned()));
    };
    Ok(match name {
        "init" => Command::Init,
        "mount" => {
            expect(rest, 2, "mount", "mount <podVolumeDir> <json>")?;
            Command::Mount { target: PathBuf::from(&rest[0]), json: text(rest, 1)? }
        }
        "unmount" => {
            expect(rest, 1, "unmount", "unmount <podVolumeDir>")?;
            Command::Unmount { target: PathBuf::from(&rest[0]) }
        }
        "expandvolume" => {
            let u = "expandvolume <json> <deviceMountPath> <newBytes> <oldBytes>";
            expect(rest, 4, "expandvolume", u)?;
            let (json, new_bytes) = expand(rest, 2)?;
            Command::ExpandVolume { json, new_bytes }
        }
        "expandfs" => {
            let u = "expandfs <json> <devicePath> <deviceMountPath> <newBytes> <oldBytes>";
            expect(rest, 5, "expandfs", u)?;
            let (json, new_bytes) = expand(rest, 3)?;
            Command::ExpandFs { json, new_bytes }
        }
        "isattached" => Command::IsAttached,
        "mountdevice" => Command::NoOp("mountdevice"),
        "unmountdevice" => Command::NoOp("unmountdevice"),
        other => Command::NotSupported(other.to_owned()),
    })
}

/// The options and the new size of an expand call.
fn expand(rest: &[OsString], bytes_at: usize) -> Result<(String, u64)> {
    let value = text(rest, bytes_at)?;
    let new_bytes = value.parse().map_err(|_| Error::Bytes { what: "newBytes", value: value.clone() })?;
    Ok((text(rest, 0)?, new_bytes))
}

fn expect(rest: &[OsString], n: usize, command: &'static str, usage_text: &'static str) -> Result<()> {
    if rest.len() == n { Ok(()) } else { Err(usage(command, usage_text, rest.len())) }
}

fn usage(command: &'static str, usage: &'static str, got: usize) -> Error {
    Error::Usage { command, usage, got }
}

fn text(rest: &[OsString], i: usize) -> Result<String> {
    rest[i].to_str().map(str::to_owned).ok_or(Error::NotUtf8 { index: i + 2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    #[test]
    fn kubelet_argv_forms() {
        assert_eq!(parse_strs(&["init"]).unwrap(), Command::Init);
        assert_eq!(
            parse_strs(&["mount", "/k/p", "{}"]).unwrap(),
            Command::Mount { target: "/k/p".into(), json: "{}".into() }
        );
        assert_eq!(parse_strs(&["unmount", "/k/p"]).unwrap(), Command::Unmount { target: "/k/p".into() });
        assert_eq!(
            parse_strs(&["expandvolume", "{}", "", "2048", "1024"]).unwrap(),
            Command::ExpandVolume { json: "{}".into(), new_bytes: 2048 }
        );
        assert_eq!(
            parse_strs(&["expandfs", "{}", "/dev/x", "/m", "4096", "1024"]).unwrap(),
            Command::ExpandFs { json: "{}".into(), new_bytes: 4096 }
        );
        assert_eq!(parse_strs(&["isattached", "{}", "node"]).unwrap(), Command::IsAttached);
        assert_eq!(parse_strs(&["mountdevice", "/m", "", "{}"]).unwrap(), Command::NoOp("mountdevice"));
        for cmd in ["getvolumename", "attach", "detach", "waitforattach", "frobnicate"] {
            assert_eq!(parse_strs(&[cmd, "x"]).unwrap(), Command::NotSupported(cmd.into()));
        }
    }

    #[test]
    fn wrong_argv_is_a_usage_error() {
        for (args, want) in [
            (vec![], "<command>"),
            (vec!["mount", "/k/p"], "mount <podVolumeDir> <json>"),
            (vec!["mount", "/k/p", "{}", "x"], "got 3"),
            (vec!["unmount"], "unmount <podVolumeDir>"),
            (vec!["expandvolume", "{}", "", "2048"], "<oldBytes>"),
            (vec!["expandfs", "{}", "d", "m", "ten", "1"], "\"ten\" is not a decimal"),
        ] {
            let err = parse_strs(&args).unwrap_err().to_string();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }
}
