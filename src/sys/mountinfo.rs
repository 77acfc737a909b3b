//! Parser for `/proc/self/mountinfo` lines, with the kernel's octal escapes decoded.

use std::path::PathBuf;

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// The path inside the source filesystem that is mounted here (`/` unless a bind of a subtree).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `ro`, `nosuid`, ...).
    pub mount_options: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Per-superblock options (`rw`, `size=...`, ...).
    pub super_options: Vec<String>,
    /// Whether the mount propagates to and from peers (a `shared:N` optional field).
    pub shared: bool,
}

/// What a mount shows: the device and the path inside its filesystem. Two mounts with the same
/// identity show the same subtree (one is a bind of the other).
pub type Identity = (u32, u32, PathBuf);

impl MountEntry {
    pub fn identity(&self) -> Identity {
        (self.major, self.minor, self.root.clone())
    }

    /// Whether this mount point is read-only (per mount or per superblock).
    pub fn is_readonly(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro") || self.super_options.iter().any(|o| o == "ro")
    }
}

/// Parses a whole mountinfo text; malformed lines are skipped (the kernel never writes them).
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// Parses one mountinfo line.
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let mount_id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let root = PathBuf::from(unescape(fields.next()?));
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let mount_options = split_options(fields.next()?);
    // Optional fields (shared:N, master:N, ...) end at a lone "-".
    let mut shared = false;
    for field in fields.by_ref() {
        if field == "-" {
            break;
        }
        shared |= field.starts_with("shared:");
    }
    let fs_type = unescape(fields.next()?);
    let source = unescape(fields.next()?);
    let super_options = split_options(fields.next().unwrap_or(""));
    Some(MountEntry {
        mount_id,
        parent_id,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root,
        mount_point,
        mount_options,
        fs_type,
        source,
        super_options,
        shared,
    })
}

fn split_options(field: &str) -> Vec<String> {
    field.split(',').filter(|o| !o.is_empty()).map(unescape).collect()
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash, ...).
pub fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Some(b) = octal(&bytes[i + 1..i + 4]) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal(digits: &[u8]) -> Option<u8> {
    let mut v: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v * 8 + u32::from(d - b'0');
    }
    u8::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const FIXTURE: &str = "\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro
35 22 0:32 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,size=65536k
101 22 253:0 /var/lib/strata/volumes/v1/data /var/lib/kubelet/pods/a/volumes/x\\040y rw,relatime shared:1 - ext4 /dev/vda rw
102 22 7:3 / /var/lib/kubelet/plugins/st\\011age ro,relatime - xfs /dev/loop3 ro,nouuid
103 22 0:50 / /mnt/back\\134slash rw master:7 propagate_from:2 - tmpfs none rw
";

    #[test]
    fn parses_root_and_options() {
        let t = parse(FIXTURE);
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].mount_point, Path::new("/"));
        assert_eq!(t[0].fs_type, "ext4");
        assert_eq!(t[0].source, "/dev/vda");
        assert_eq!((t[0].major, t[0].minor), (253, 0));
        assert_eq!(t[1].super_options, vec!["rw", "size=65536k"]);
        assert_eq!(t.iter().map(|m| m.shared).collect::<Vec<_>>(), vec![true, true, true, false, false]);
    }

    #[test]
    fn bind_mount_keeps_subtree_root_and_decodes_space() {
        let t = parse(FIXTURE);
        assert_eq!(t[2].root, Path::new("/var/lib/strata/volumes/v1/data"));
        assert_eq!(t[2].mount_point, Path::new("/var/lib/kubelet/pods/a/volumes/x y"));
        assert_eq!(t[2].parent_id, 22);
    }

    #[test]
    fn decodes_tab_and_backslash_and_readonly() {
        let t = parse(FIXTURE);
        assert_eq!(t[3].mount_point, Path::new("/var/lib/kubelet/plugins/st\tage"));
        assert!(t[3].is_readonly());
        assert!(!t[2].is_readonly());
        assert_eq!(t[4].mount_point, Path::new("/mnt/back\\slash"));
        assert_eq!(t[4].fs_type, "tmpfs");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("1 2 x:y / / rw - ext4 /dev/a rw").is_none());
        assert_eq!(parse("\n\n").len(), 0);
    }

    #[test]
    fn unescape_leaves_invalid_sequences() {
        assert_eq!(unescape("a\\9zz"), "a\\9zz");
        assert_eq!(unescape("end\\04"), "end\\04");
        assert_eq!(unescape("\\040lead"), " lead");
    }
}
