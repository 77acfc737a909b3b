//! This process's effective capabilities, from `/proc/self/status`: whether it may mount (the
//! CSI Probe of a node server, and strata-flex's node checks).

/// `CAP_SYS_ADMIN`: mount, umount and the loop ioctls.
pub const CAP_SYS_ADMIN: u32 = 21;

const STATUS: &str = "/proc/self/status";

/// The effective capability set.
pub fn effective() -> super::Result<u64> {
    let status = std::fs::read_to_string(STATUS).map_err(super::Error::on(super::Action::Other("read"), STATUS))?;
    // No CapEff line: the kernel's answer has no such data (ENODATA).
    parse_cap_eff(&status).ok_or_else(|| super::Error::io("find CapEff in", STATUS, super::Errno::ENODATA))
}

/// Whether `caps` hold CAP_SYS_ADMIN.
pub fn may_mount(caps: u64) -> bool {
    caps & (1 << CAP_SYS_ADMIN) != 0
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_come_from_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
        assert!(may_mount(0x1ff_ffff_ffff) && !may_mount(0));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
