//! Why a background copy failed, as a record keeps it: a leaf below the record and the error.

use serde::{Deserialize, Serialize};

/// The kind of a copy's failure, which decides the code the next call answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// Space, inodes, open files or memory ran out.
    Exhausted,
    /// The tree kept changing, or the source's point in time was lost (a restart): worth a retry.
    Interrupted,
    /// Anything else (an I/O error).
    Failed,
}
