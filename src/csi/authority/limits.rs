//! The HTTP/2 sizes the adapter works with: a frame header's length, and the limits the server
//! gives h2 and holds itself to, in one place so that the two cannot drift (the largest header
//! list and the largest frame).

/// The length of a frame header: 3 bytes of length, type, flags and 4 of stream id.
pub(super) const HEAD_LEN: usize = 9;

/// The largest header list the server takes, as RFC 7541 section 4.1 sizes it (each field's name
/// and value and 32 bytes). It is given to h2 (SETTINGS_MAX_HEADER_LIST_SIZE, which h2 enforces
/// on the decoded list: over it the stream is refused with 431) and bounds what the adapter keeps
/// of one block, in both forms: encoded, a block over it ends the connection (the adapter would
/// otherwise have to hold it); decoded, h2 is handed the fields until the sum reaches it, enough
/// for h2 to refuse the stream as over the limit, and the rest is only decoded. An encoded block
/// is no longer than its decoded list for any encoder that uses Huffman only where it is shorter
/// (a literal spends a few bytes of the 32 on its type and lengths; an index is smaller still),
/// so every block h2 would take fits. 16 KiB, hyper's default, set here so the two cannot drift.
pub const MAX_HEADER_LIST: u32 = 16 * 1024;

/// The largest frame the server takes (SETTINGS_MAX_FRAME_SIZE): the HTTP/2 default and least,
/// and hyper's, set here for the same reason.
pub const MAX_FRAME: u32 = 16 * 1024;
