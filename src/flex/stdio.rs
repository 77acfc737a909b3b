//! Guards kubelet's pipes: the reply goes to a private copy of stdout, and descriptors 1 and 2
//! point at `/dev/null`, so no stray write, library message or child process (which would
//! inherit them and keep kubelet waiting) can add to the reply.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;

/// Returns the stream for the reply; afterwards stdout and stderr write to `/dev/null`.
/// If the copy cannot be made, the reply goes to plain stdout, which is still correct.
pub fn take_reply_stream() -> Box<dyn Write + Send> {
    // `try_clone_to_owned` duplicates with F_DUPFD_CLOEXEC: children never get the copy.
    let Ok(copy) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return Box::new(std::io::stdout());
    };
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    Box::new(File::from(copy))
}
