//! The volume model shared by the engine and the backends, below both: what kinds of volume
//! there are, where a volume's files live, how it is consumed and staged, and the narrow spec a
//! backend makes and serves a volume from. Depends only on leaf modules and `sys`.

mod access;
mod dir;
mod kind;
mod perm;
mod spec;

pub use access::{Access, Staging};
pub use dir::{RECORD_FILE, VolumeDir};
pub use kind::Kind;
pub use perm::{FILE_MODE, private_file};
pub use spec::{Allocation, PARAM_ALLOCATION, Spec};

pub use crate::sys::FsType;
