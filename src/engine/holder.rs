//! Who holds the data root (the server lock file's contents): a leaf below the claim and the
//! error that names it.

use serde::{Deserialize, Serialize};

/// Who holds the root: what the server lock's file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub endpoint: String,
}
