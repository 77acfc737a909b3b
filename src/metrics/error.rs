//! Why the metrics address could not be bound or served, or a scrape not encoded.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("metrics address {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("serving metrics on {addr}: {source}")]
    Accept { addr: String, source: std::io::Error },
    #[error("encoding the metrics failed")]
    Encode(#[from] std::fmt::Error),
}
