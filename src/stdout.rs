//! What the command lines print. Every subcommand writes its stdout through here, so that a
//! reader that stops early (`strata-csi client list-volumes -o json | head -2`) ends the program
//! quietly, as it ends `ls`: exit code 141 (128 + SIGPIPE, what a shell shows for a program
//! killed by SIGPIPE), no panic and no message. `println!` would panic there instead ("failed
//! printing to stdout: Broken pipe"), so the library denies it (`clippy::print_stdout`).
//! Never used by strata-flex's kubelet path, which writes its one reply itself (`flex::reply`).

use std::io::Write;
use std::process::ExitCode;

/// The exit code when stdout's reader has gone away.
pub const CLOSED: u8 = 141;

/// Writes `text` to stdout and flushes it; when the reader has gone, ends the process with
/// [`CLOSED`]: nothing more can be said to it.
pub fn print(text: &str) {
    put(text.as_bytes());
}

/// [`print`] for a subcommand's whole answer: success once it is written.
pub fn write(bytes: &[u8]) -> ExitCode {
    put(bytes);
    ExitCode::SUCCESS
}

/// One line on stderr; a closed stderr loses it, but never ends the program in a panic.
pub fn error(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn put(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(i32::from(CLOSED)),
        Err(e) => {
            error(&format!("error: cannot write to stdout: {e}"));
            std::process::exit(1);
        }
    }
}
