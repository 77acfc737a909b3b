//! fscrypt v2 through its ioctls (`linux/fscrypt.h`): read and set a directory's policy, add a
//! key to a filesystem's keyring, ask for its status and remove it. The structures are written
//! out here as the kernel's uapi header defines them; the key itself only ever sits in
//! [`Locked`] memory.

use super::locked::{Locked, Pod};
use std::os::fd::{AsRawFd, BorrowedFd};

/// The size of a master key strata adds: the most the kernel takes, and what AES-256-XTS needs.
pub const KEY_SIZE: usize = 64;
/// The size of a key identifier (`FSCRYPT_KEY_IDENTIFIER_SIZE`).
pub const ID_SIZE: usize = 16;

/// A master key identifier: a one-way hash of the key, which the kernel computes and policies name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; ID_SIZE]);

impl KeyId {
    /// Lowercase hex, as `fscryptctl` and the records show it.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`KeyId::hex`].
    pub fn parse(text: &str) -> Option<KeyId> {
        if text.len() != 2 * ID_SIZE || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; ID_SIZE];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyId(out))
    }
}

/// The identifier the kernel gives `key` (`fs/crypto/keyring.c`): HKDF-SHA512 of the key, no
/// salt, info `"fscrypt\0"` and context byte 1 (`HKDF_CONTEXT_KEY_IDENTIFIER`), 16 bytes. Known
/// before the key is added, so a wrong key is told without ever reaching the kernel.
pub fn identifier(key: &[u8; KEY_SIZE]) -> KeyId {
    let mut out = [0u8; ID_SIZE];
    let hk = hkdf::Hkdf::<sha2::Sha512>::new(None, key);
    // 16 bytes is far below HKDF's limit of 255 hash lengths: expand cannot fail.
    let _ = hk.expand(b"fscrypt\0\x01", &mut out);
    KeyId(out)
}

/// `FSCRYPT_MODE_AES_256_XTS`: file contents.
pub const MODE_AES_256_XTS: u8 = 1;
/// `FSCRYPT_MODE_AES_256_CTS`: file names.
pub const MODE_AES_256_CTS: u8 = 4;
/// `FSCRYPT_POLICY_FLAGS_PAD_32`: names padded to 32 bytes (hides their length best).
pub const FLAGS_PAD_32: u8 = 0x03;
const POLICY_V2: u8 = 2;
const KEY_SPEC_TYPE_IDENTIFIER: u32 = 2;

/// What a directory's encryption policy is, as far as strata cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The filesystem cannot encrypt (no fscrypt, or ext4 without the `encrypt` feature).
    Unsupported,
    /// The filesystem can; this directory has no policy.
    None,
    /// A v2 policy of strata's modes and flags, naming this key.
    Strata(KeyId),
    /// Any other policy (v1, other modes or flags).
    Other,
}

/// The state of a key in a filesystem's keyring (`FSCRYPT_KEY_STATUS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Absent,
    Present,
    /// Removed while files were still open: they keep their keys until closed.
    IncompletelyRemoved,
}

/// What a removal left: whether files still use the key (`FILES_BUSY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// The key was not there at all.
    pub absent: bool,
    pub files_busy: bool,
}

/// `struct fscrypt_policy_v2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct PolicyV2 {
    version: u8,
    contents_mode: u8,
    filenames_mode: u8,
    flags: u8,
    log2_data_unit_size: u8,
    reserved: [u8; 3],
    identifier: [u8; ID_SIZE],
}

impl PolicyV2 {
    fn strata(id: &KeyId) -> PolicyV2 {
        PolicyV2 {
            version: POLICY_V2,
            contents_mode: MODE_AES_256_XTS,
            filenames_mode: MODE_AES_256_CTS,
            flags: FLAGS_PAD_32,
            identifier: id.0,
            ..PolicyV2::default()
        }
    }
}

/// `struct fscrypt_get_policy_ex_arg` with room for a v2 policy.
#[repr(C)]
#[derive(Debug, Default)]
struct GetPolicyEx {
    policy_size: u64,
    policy: PolicyV2,
}

/// `struct fscrypt_key_specifier` naming a key by identifier.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct KeySpec {
    kind: u32,
    reserved: u32,
    identifier: [u8; 32],
}

impl KeySpec {
    fn of(id: &KeyId) -> KeySpec {
        let mut identifier = [0u8; 32];
        identifier[..ID_SIZE].copy_from_slice(&id.0);
        KeySpec { kind: KEY_SPEC_TYPE_IDENTIFIER, reserved: 0, identifier }
    }

    fn id(&self) -> KeyId {
        let mut out = [0u8; ID_SIZE];
        out.copy_from_slice(&self.identifier[..ID_SIZE]);
        KeyId(out)
    }
}

/// `struct fscrypt_add_key_arg` with its flexible `raw[]` as a fixed array of [`KEY_SIZE`].
#[repr(C)]
struct AddKey {
    spec: KeySpec,
    raw_size: u32,
    key_id: u32,
    reserved: [u32; 8],
    raw: [u8; KEY_SIZE],
}

// SAFETY: repr(C) of integers and integer arrays only; zeroed is a valid value.
unsafe impl Pod for AddKey {}

/// `struct fscrypt_remove_key_arg`.
#[repr(C)]
#[derive(Debug, Default)]
struct RemoveKey {
    spec: KeySpec,
    status_flags: u32,
    reserved: [u32; 5],
}

/// `struct fscrypt_get_key_status_arg`.
#[repr(C)]
#[derive(Debug, Default)]
struct KeyStatusArg {
    spec: KeySpec,
    reserved: [u32; 6],
    status: u32,
    status_flags: u32,
    user_count: u32,
    out_reserved: [u32; 13],
}

const REMOVAL_FILES_BUSY: u32 = 0x1;

// The request numbers, as linux/fscrypt.h encodes them (the set ioctl names the v1 size: the
// kernel reads the version byte, then the policy of that version).
nix::ioctl_write_ptr_bad!(set_policy, nix::request_code_read!(b'f', 19, 12), PolicyV2);
nix::ioctl_readwrite_bad!(get_policy_ex, nix::request_code_readwrite!(b'f', 22, 9), GetPolicyEx);
nix::ioctl_readwrite_bad!(add_key, nix::request_code_readwrite!(b'f', 23, 80), AddKey);
nix::ioctl_readwrite_bad!(remove_key, nix::request_code_readwrite!(b'f', 24, 64), RemoveKey);
nix::ioctl_readwrite_bad!(key_status, nix::request_code_readwrite!(b'f', 26, 128), KeyStatusArg);

const _: () = assert!(std::mem::size_of::<PolicyV2>() == 24);
const _: () = assert!(std::mem::size_of::<KeySpec>() == 40);
const _: () = assert!(std::mem::size_of::<AddKey>() == 80 + KEY_SIZE);
const _: () = assert!(std::mem::size_of::<RemoveKey>() == 64);
const _: () = assert!(std::mem::size_of::<KeyStatusArg>() == 128);

/// The policy of the directory open at `dir`.
pub fn policy(dir: BorrowedFd<'_>) -> nix::Result<Policy> {
    let mut arg = GetPolicyEx { policy_size: std::mem::size_of::<PolicyV2>() as u64, ..GetPolicyEx::default() };
    // SAFETY: `dir` is open for the call; `arg` is a live, writable `fscrypt_get_policy_ex_arg`
    // whose `policy_size` says how much room follows, which is all the kernel writes.
    match unsafe { get_policy_ex(dir.as_raw_fd(), &mut arg) } {
        Ok(_) => {}
        Err(nix::errno::Errno::ENODATA) => return Ok(Policy::None),
        Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOTTY) => return Ok(Policy::Unsupported),
        // A v1 policy reports ENOTTY only for too small a buffer; an unknown one EINVAL.
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EOVERFLOW) => return Ok(Policy::Other),
        Err(e) => return Err(e),
    }
    let p = arg.policy;
    let ours = PolicyV2::strata(&KeyId(p.identifier));
    let same = (p.version, p.contents_mode, p.filenames_mode, p.flags, p.log2_data_unit_size)
        == (ours.version, ours.contents_mode, ours.filenames_mode, ours.flags, 0);
    Ok(if same { Policy::Strata(KeyId(p.identifier)) } else { Policy::Other })
}

/// Sets strata's v2 policy naming `id` on the empty directory open at `dir` (the key must be in
/// the filesystem's keyring).
pub fn set(dir: BorrowedFd<'_>, id: &KeyId) -> nix::Result<()> {
    let p = PolicyV2::strata(id);
    // SAFETY: `dir` is open for the call; `p` is a live `fscrypt_policy_v2` the kernel only reads.
    unsafe { set_policy(dir.as_raw_fd(), &p) }.map(drop)
}

/// Adds `key` to the keyring of the filesystem holding `fs`; returns the identifier the kernel
/// computed for it. Adding a key that is there already is no change.
pub fn add(fs: BorrowedFd<'_>, key: &[u8; KEY_SIZE]) -> nix::Result<KeyId> {
    let mut arg = Locked::<AddKey>::zeroed().map_err(|_| nix::errno::Errno::ENOMEM)?;
    arg.spec.kind = KEY_SPEC_TYPE_IDENTIFIER;
    arg.raw_size = u32::try_from(KEY_SIZE).map_err(|_| nix::errno::Errno::EOVERFLOW)?;
    arg.raw.copy_from_slice(key);
    let ptr: *mut AddKey = &mut *arg;
    // SAFETY: `fs` is open for the call; `ptr` points to a live `fscrypt_add_key_arg` whose
    // `raw_size` bytes of `raw` follow it in the same allocation; the kernel writes only the
    // identifier into `spec`.
    unsafe { add_key(fs.as_raw_fd(), ptr) }?;
    Ok(arg.spec.id())
}

/// Removes the key `id` from the keyring of the filesystem holding `fs` (this user's claim,
/// which is strata's only one); says whether files still use it.
pub fn remove(fs: BorrowedFd<'_>, id: &KeyId) -> nix::Result<Removal> {
    let mut arg = RemoveKey { spec: KeySpec::of(id), ..RemoveKey::default() };
    // SAFETY: `fs` is open for the call; `arg` is a live, writable `fscrypt_remove_key_arg`.
    match unsafe { remove_key(fs.as_raw_fd(), &mut arg) } {
        Ok(_) => Ok(Removal { absent: false, files_busy: arg.status_flags & REMOVAL_FILES_BUSY != 0 }),
        Err(nix::errno::Errno::ENOKEY) => Ok(Removal { absent: true, files_busy: false }),
        Err(e) => Err(e),
    }
}

/// The status of key `id` in the keyring of the filesystem holding `fs`.
pub fn status(fs: BorrowedFd<'_>, id: &KeyId) -> nix::Result<KeyStatus> {
    let mut arg = KeyStatusArg { spec: KeySpec::of(id), ..KeyStatusArg::default() };
    // SAFETY: `fs` is open for the call; `arg` is a live, writable `fscrypt_get_key_status_arg`.
    unsafe { key_status(fs.as_raw_fd(), &mut arg) }?;
    Ok(match arg.status {
        2 => KeyStatus::Present,
        3 => KeyStatus::IncompletelyRemoved,
        _ => KeyStatus::Absent,
    })
}

/// Runs one fscrypt call `f` on the directory at `place`, opened for it without following a
/// symlink; a failure names the action and the path.
pub(super) fn at<T>(
    what: &'static str,
    place: &super::Place,
    f: impl FnOnce(BorrowedFd<'_>) -> nix::Result<T>,
) -> super::Result<T> {
    let action = super::Action::Fscrypt(what);
    let dir = place.open_dir().map_err(super::Error::on(action.clone(), place.path()))?;
    use std::os::fd::AsFd;
    f(dir.as_fd()).map_err(super::Error::on(action, place.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_round_trip_as_hex() {
        let id = KeyId([0xab; ID_SIZE]);
        assert_eq!(id.hex(), "ab".repeat(16));
        assert_eq!(KeyId::parse(&id.hex()), Some(id));
        assert_eq!(KeyId::parse("ab"), None);
        assert_eq!(KeyId::parse(&"zz".repeat(16)), None);
    }

    #[test]
    fn the_request_numbers_are_the_headers() {
        // From linux/fscrypt.h as the C preprocessor expands it on x86_64 and aarch64.
        assert_eq!(nix::request_code_read!(b'f', 19, 12), 0x800c_6613);
        assert_eq!(nix::request_code_readwrite!(b'f', 22, 9), 0xc009_6616);
        assert_eq!(nix::request_code_readwrite!(b'f', 23, 80), 0xc050_6617);
        assert_eq!(nix::request_code_readwrite!(b'f', 24, 64), 0xc040_6618);
        assert_eq!(nix::request_code_readwrite!(b'f', 26, 128), 0xc080_661a);
    }

    #[test]
    fn a_filesystem_without_fscrypt_says_so() {
        // /proc cannot encrypt; the ioctl answers ENOTTY there.
        let dir = std::fs::File::open("/proc").unwrap();
        use std::os::fd::AsFd;
        assert_eq!(policy(dir.as_fd()).unwrap(), Policy::Unsupported);
    }
}
