//! CSI volume IDs: `<engine id>@<node tag>`, deterministic from (CSI name, node id), at most
//! 128 bytes, and parseable back so that every call knows which node owns the volume.
//!
//! - The engine id is the CSI name itself when it is a valid engine id that fits; otherwise (and
//!   whenever the name already looks like a hashed id) it is a readable prefix of the name plus
//!   `--` and 32 hex digits of its SHA-256. Verbatim and hashed ids therefore never collide.
//! - The node tag is the node id when it is a short valid id; otherwise `n--` plus 16 hex digits
//!   of its SHA-256 (node ids may be 256 bytes; hostnames up to 253).
//! - `@` appears in neither part, so the last `@` splits an id.
//!
//! A FlexVolume volume with engine id `X` is adopted by CSI as the volume id `X@<node tag>`.
//!
//! Snapshot ids have the same form, `<engine snapshot id>@<node tag>`, derived the same way from
//! the snapshot's CSI name: a snapshot lives on the node of its source volume, and every call
//! about it (delete, get, restore) must know which node that is. Volume and snapshot engine ids
//! are separate namespaces, so the same text naming a volume and a snapshot is no conflict.

use crate::engine::validate;
use sha2::{Digest, Sha256};

/// Longest CSI volume id (the spec's bound on string fields we return).
pub const MAX_VOLUME_ID: usize = 128;
/// Longest node id used verbatim in a volume id.
const MAX_NODE_TAG: usize = 63;
/// Hex digits of SHA-256 in a hashed engine id.
const NAME_HASH_HEX: usize = 32;
/// Hex digits of SHA-256 in a hashed node tag.
const NODE_HASH_HEX: usize = 16;
/// Marker before the hash in a hashed engine id.
const HASH_MARK: &str = "--";
/// Prefix of a hashed node tag.
const NODE_HASH_PREFIX: &str = "n--";

/// A parsed CSI volume id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeId {
    /// The engine's id of the volume on its node.
    pub local: String,
    /// The tag of the node that owns it (see [`node_tag`]).
    pub node_tag: String,
}

/// A parsed CSI snapshot id: the same shape as a volume id (see the module docs).
pub type SnapshotId = VolumeId;

impl VolumeId {
    /// Parses `<local>@<tag>`; `None` if the id is not of that form or a part is not valid.
    pub fn parse(id: &str) -> Option<VolumeId> {
        if id.len() > MAX_VOLUME_ID {
            return None;
        }
        let (local, tag) = id.rsplit_once('@')?;
        if validate::id("volume", local).is_err() || validate::id("node", tag).is_err() {
            return None;
        }
        Some(VolumeId { local: local.to_owned(), node_tag: tag.to_owned() })
    }

    /// The CSI volume id of engine volume `local` on the node with tag `node_tag`.
    pub fn new(local: &str, node_tag: &str) -> VolumeId {
        VolumeId { local: local.to_owned(), node_tag: node_tag.to_owned() }
    }

    /// The id for a CSI name created on the node with tag `node_tag`.
    pub fn for_name(name: &str, node_tag: &str) -> VolumeId {
        let budget = MAX_VOLUME_ID - 1 - node_tag.len();
        let verbatim = name.len() <= budget && validate::id("volume", name).is_ok() && !looks_hashed(name);
        if verbatim {
            return VolumeId::new(name, node_tag);
        }
        VolumeId::new(&hashed("name", name, name, budget), node_tag)
    }
}

impl std::fmt::Display for VolumeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.node_tag)
    }
}

/// The tag of a node id inside volume ids.
pub fn node_tag(node_id: &str) -> String {
    let verbatim = node_id.len() <= MAX_NODE_TAG
        && validate::id("node", node_id).is_ok()
        && !node_id.starts_with(NODE_HASH_PREFIX);
    if verbatim {
        return node_id.to_owned();
    }
    format!("{NODE_HASH_PREFIX}{}", hex_sha256(node_id, NODE_HASH_HEX))
}

/// The engine id of an ephemeral inline volume, from the volume id kubelet made up for it.
/// Always hashed, in its own hash domain, so it never equals the id of a persistent volume.
pub fn ephemeral_local(kubelet_volume_id: &str) -> String {
    let readable = format!("eph-{kubelet_volume_id}");
    hashed("ephemeral", kubelet_volume_id, &readable, MAX_VOLUME_ID - 1 - MAX_NODE_TAG)
}

/// A hashed engine id of at most `budget` bytes: a readable prefix, `--`, and the SHA-256 of
/// `domain:text` (the domain keeps names and kubelet ids apart).
fn hashed(domain: &str, text: &str, readable: &str, budget: usize) -> String {
    let keep = budget - HASH_MARK.len() - NAME_HASH_HEX;
    let mut prefix: String = readable
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .skip_while(|c| *c == '.' || *c == '-')
        .take(keep)
        .collect();
    if prefix.is_empty() {
        prefix.push('v');
    }
    let hash = hex_sha256(&format!("{domain}:{text}"), NAME_HASH_HEX);
    format!("{prefix}{HASH_MARK}{hash}")
}

/// Whether `name` ends like a hashed engine id (`--` and 32 lowercase hex digits).
fn looks_hashed(name: &str) -> bool {
    let Some(split) = name.len().checked_sub(NAME_HASH_HEX) else {
        return false;
    };
    let (head, hash) = name.split_at(split);
    head.ends_with(HASH_MARK) && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_sha256(text: &str, digits: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    out.truncate(digits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_nodes_are_kept_verbatim() {
        let id = VolumeId::for_name("pvc-0123", &node_tag("node-1.example"));
        assert_eq!(id.to_string(), "pvc-0123@node-1.example");
        assert_eq!(VolumeId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn odd_or_long_names_are_hashed_deterministically_within_128_bytes() {
        let tag = node_tag(&"n".repeat(63));
        for name in ["a/b", ".hidden", "ü", &"x".repeat(200), "-", "x@y"] {
            let id = VolumeId::for_name(name, &tag);
            let text = id.to_string();
            assert!(text.len() <= MAX_VOLUME_ID, "{text}");
            assert_eq!(VolumeId::for_name(name, &tag), id, "deterministic");
            assert_eq!(VolumeId::parse(&text), Some(id), "{text}");
        }
        let a = VolumeId::for_name(&"x".repeat(200), &tag);
        let b = VolumeId::for_name(&"x".repeat(201), &tag);
        assert_ne!(a, b);
    }

    #[test]
    fn a_name_shaped_like_a_hash_is_hashed_again() {
        let hashed = VolumeId::for_name("a/b", "n1").local;
        assert!(looks_hashed(&hashed));
        let again = VolumeId::for_name(&hashed, "n1").local;
        assert_ne!(again, hashed);
        assert!(looks_hashed(&again));
    }

    #[test]
    fn long_or_odd_node_ids_get_a_hashed_tag() {
        assert_eq!(node_tag("worker-7"), "worker-7");
        for node in [&"h".repeat(64), "node with space", "n--abc"] {
            let tag = node_tag(node);
            assert!(tag.starts_with(NODE_HASH_PREFIX) && tag.len() == 19, "{tag}");
            assert_eq!(node_tag(node), tag);
        }
        assert_ne!(node_tag(&"h".repeat(64)), node_tag(&"h".repeat(65)));
    }

    #[test]
    fn foreign_and_malformed_ids_do_not_parse() {
        for bad in ["", "fake-vol-id", "@n", "v@", "v@n/x", "../v@n", &format!("{}@n", "x".repeat(127))] {
            assert_eq!(VolumeId::parse(bad), None, "{bad}");
        }
        assert_eq!(VolumeId::parse("a@b@c"), None, "'@' is not allowed in the local part");
    }

    #[test]
    fn snapshot_ids_carry_the_node_like_volume_ids() {
        let tag = node_tag("worker-7");
        let id = SnapshotId::for_name("snapshot-6f1c", &tag);
        assert_eq!(id.to_string(), "snapshot-6f1c@worker-7");
        let long = SnapshotId::for_name(&"s".repeat(128), &tag);
        assert!(long.to_string().len() <= MAX_VOLUME_ID);
        assert_eq!(SnapshotId::parse(&long.to_string()), Some(long));
        assert_eq!(SnapshotId::parse("reallyfakesnapshotid"), None);
    }

    #[test]
    fn ephemeral_ids_never_equal_persistent_ones() {
        let eph = ephemeral_local("csi-abc");
        assert!(looks_hashed(&eph));
        assert_ne!(eph, VolumeId::for_name("csi-abc", "n").local);
        assert_ne!(eph, VolumeId::for_name("ephemeral:csi-abc", "n").local);
        assert_ne!(eph, VolumeId::for_name("eph-csi-abc", "n").local);
        assert!(eph.starts_with("eph-csi-abc--"), "{eph}");
        validate::id("volume", &eph).unwrap();
    }
}
