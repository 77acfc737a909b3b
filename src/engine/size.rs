//! Size policy, the same for every front-end: the default size, each kind's minimum and alignment
//! (its backend's [`crate::backend::Rules`]: mkfs.xfs refuses less than 300 MiB, loop images are
//! whole 4 KiB blocks), and limits.

use super::{Error, Result};
use crate::backend::Kind;
use crate::sys::FsType;

/// The size of a volume whose request names none.
pub const DEFAULT: u64 = 1 << 30;
/// The smallest volume of `kind` with `fs` (its backend's rules: ext4 for a loop volume without one).
pub fn minimum(kind: Kind, fs: Option<FsType>) -> u64 {
    crate::backend::rules(kind).minimum(fs)
}

/// `bytes` rounded up to what a volume of `kind` is sized in (whole 4 KiB blocks for loop images).
pub fn aligned(kind: Kind, bytes: u64) -> u64 {
    crate::backend::rules(kind).aligned(bytes)
}

/// The size to create for `required` bytes (0: the default) under `limit` (0: none): raised to
/// the minimum and aligned; [`Error::SizeOutOfRange`] when that breaks the limit.
pub fn for_new(kind: Kind, fs: Option<FsType>, required: u64, limit: u64) -> Result<u64> {
    let base = match (required, limit) {
        (0, 0) => DEFAULT,
        (0, l) => DEFAULT.min(l),
        (r, _) => r,
    };
    within(kind, aligned(kind, base.max(minimum(kind, fs))), limit)
}

/// The size of a copy of a source of `source` bytes: at least the source and `required`, aligned.
pub fn for_copy(kind: Kind, required: u64, source: u64, limit: u64) -> Result<u64> {
    within(kind, aligned(kind, required.max(source)), limit)
}

/// The size to grow to for `bytes` under `limit` (0: none): aligned, unless alignment alone
/// would break the limit (then exactly `bytes`).
pub fn for_growth(kind: Kind, bytes: u64, limit: u64) -> u64 {
    match aligned(kind, bytes) {
        b if limit != 0 && b > limit => bytes,
        b => b,
    }
}

fn within(kind: Kind, bytes: u64, limit: u64) -> Result<u64> {
    if limit != 0 && bytes > limit {
        return Err(Error::SizeOutOfRange { kind: kind.as_str(), needed: bytes, limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::{fixture, req};
    use crate::engine::{CreateRequest, Volume, record};

    const XFS: Option<FsType> = Some(FsType::Xfs);

    #[test]
    fn new_volumes_get_the_default_the_minimum_and_alignment() {
        assert_eq!(for_new(Kind::Dir, None, 0, 0).unwrap(), DEFAULT);
        assert_eq!(for_new(Kind::Dir, None, 0, 4096).unwrap(), 4096);
        assert_eq!(for_new(Kind::Dir, None, 1000, 0).unwrap(), 1000);
        assert_eq!(for_new(Kind::Loop, None, (20 << 20) + 1, 0).unwrap(), (20 << 20) + 4096);
        assert_eq!(for_new(Kind::Loop, None, 1 << 20, 0).unwrap(), 16 << 20);
        assert_eq!(for_new(Kind::Loop, XFS, 64 << 20, 0).unwrap(), 300 << 20);
        assert_eq!(for_new(Kind::Tmpfs, None, 1, 0).unwrap(), 1);
    }

    #[test]
    fn a_limit_below_the_minimum_is_out_of_range() {
        let err = for_new(Kind::Loop, XFS, 1, 100 << 20).unwrap_err();
        assert!(
            matches!(err, Error::SizeOutOfRange { needed, limit, .. } if needed == 300 << 20 && limit == 100 << 20)
        );
        let msg = err.to_string();
        assert!(
            msg.contains("a loop volume needs at least 300Mi (314572800 bytes) here, more than the limit of 100Mi"),
            "{msg}"
        );
    }

    #[test]
    fn copies_and_growth() {
        assert_eq!(for_copy(Kind::Loop, 0, 5000, 0).unwrap(), 8192);
        assert_eq!(for_copy(Kind::Dir, 7000, 5000, 0).unwrap(), 7000);
        assert!(for_copy(Kind::Loop, 0, 5000, 6000).is_err());
        assert_eq!(for_growth(Kind::Loop, 4097, 0), 8192);
        assert_eq!(for_growth(Kind::Loop, 4097, 5000), 4097);
        assert_eq!(for_growth(Kind::Dir, 4097, 0), 4097);
        assert_eq!(aligned(Kind::Loop, 4097), 8192);
        assert_eq!(minimum(Kind::Btrfs, None), 1);
    }

    #[test]
    fn the_engine_applies_the_policy_and_stays_idempotent() {
        let f = fixture();
        let xfs = |capacity| CreateRequest { fs_type: XFS, ..req("x", Kind::Loop, capacity) };
        assert_eq!(f.engine.create_volume(&xfs(64 << 20)).unwrap().capacity, 300 << 20);
        assert_eq!(f.engine.create_volume(&xfs(64 << 20)).unwrap().capacity, 300 << 20, "the same request");
        assert_eq!(f.engine.create_volume(&xfs(300 << 20)).unwrap().capacity, 300 << 20, "the same volume");
        assert!(matches!(f.engine.create_volume(&xfs(400 << 20)), Err(Error::AlreadyExists { .. })));
        // A volume recorded before the policy, smaller than the minimum: its own size still matches.
        let old = f.engine.create_volume(&req("old", Kind::Loop, 16 << 20)).unwrap();
        let path = f.root.join("volumes/old/volume.json");
        record::save_json(&path, &Volume { capacity: 1 << 20, ..old }, record::Durability::Durable).unwrap();
        assert_eq!(f.engine.create_volume(&req("old", Kind::Loop, 1 << 20)).unwrap().capacity, 1 << 20);
    }
}
