//! File contents: shared extents (`FICLONE`) where the filesystem can, else only the data
//! extents (`SEEK_DATA`/`SEEK_HOLE`), each with `copy_file_range`, or read and written where
//! the kernel cannot copy between the two filesystems. A 1 TiB sparse file costs what it holds.

use super::error::Fail;
use rustix::fs::SeekFrom;
use rustix::io::Errno;
use std::os::fd::BorrowedFd;

/// Bytes handed to one `copy_file_range`, and the buffer of a read-and-write copy.
const CHUNK: usize = 1 << 30;
const BUFFER: usize = 256 * 1024;

/// What copying one file's contents did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes of data copied (holes and shared extents count nothing).
    pub bytes: u64,
    /// The whole file shares the source's extents.
    pub reflinked: bool,
}

/// Copies the first `len` bytes of `src` into the empty file `dst`, which ends `len` bytes long.
pub(super) fn copy(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> Result<Copied, Fail> {
    if len > 0 && rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        // The clone is of the whole file as it is now (it may have grown since it was looked at).
        return Ok(Copied { bytes: 0, reflinked: true });
    }
    if len == 0 {
        return Ok(Copied::default());
    }
    // The whole length first: capacity accounting counts an image's unwritten length as
    // promised, so a copy in progress promises all it will hold.
    rustix::fs::ftruncate(dst, len).map_err(Fail::io("set the length of"))?;
    let mut ranges = Ranges { src, dst, kernel_copy: true, buf: Vec::new(), bytes: 0 };
    let mut pos = 0;
    while pos < len {
        let Some(data) = seek(src, SeekFrom::Data(pos))? else { break };
        if data >= len {
            break;
        }
        let hole = seek(src, SeekFrom::Hole(data))?.unwrap_or(len).min(len);
        if !ranges.copy(data, hole - data)? {
            break;
        }
        pos = hole;
    }
    Ok(Copied { bytes: ranges.bytes, reflinked: false })
}

/// `lseek` for data or holes; `None` past the last data (ENXIO).
fn seek(fd: BorrowedFd<'_>, to: SeekFrom) -> Result<Option<u64>, Fail> {
    match rustix::fs::seek(fd, to) {
        Ok(at) => Ok(Some(at)),
        Err(Errno::NXIO) => Ok(None),
        Err(e) => Err(Fail::Io("seek in", e)),
    }
}

struct Ranges<'a> {
    src: BorrowedFd<'a>,
    dst: BorrowedFd<'a>,
    /// `copy_file_range` works between these two files.
    kernel_copy: bool,
    buf: Vec<u8>,
    bytes: u64,
}

impl Ranges<'_> {
    /// Copies `len` bytes at `offset`; false when the source ended early (it shrank).
    fn copy(&mut self, offset: u64, len: u64) -> Result<bool, Fail> {
        let (mut done, mut off_in, mut off_out) = (0, offset, offset);
        while done < len {
            let want = usize::try_from(len - done).unwrap_or(CHUNK).min(CHUNK);
            let n = if self.kernel_copy {
                match rustix::fs::copy_file_range(self.src, Some(&mut off_in), self.dst, Some(&mut off_out), want) {
                    Ok(n) => n,
                    Err(Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP | Errno::NOSYS) if done == 0 => {
                        self.kernel_copy = false;
                        continue;
                    }
                    Err(e) => return Err(Fail::Io("copy data of", e)),
                }
            } else {
                let n = self.read_write(off_in, want)?;
                (off_in, off_out) = (off_in + n as u64, off_out + n as u64);
                n
            };
            if n == 0 {
                return Ok(false);
            }
            done += n as u64;
            self.bytes += n as u64;
        }
        Ok(true)
    }

    /// One read and write of at most `want` bytes at `offset`: what was copied.
    fn read_write(&mut self, offset: u64, want: usize) -> Result<usize, Fail> {
        self.buf.resize(BUFFER, 0);
        let want = want.min(BUFFER);
        let n = rustix::io::pread(self.src, &mut self.buf[..want], offset).map_err(Fail::io("read"))?;
        let mut written = 0;
        while written < n {
            let at = offset + written as u64;
            written += rustix::io::pwrite(self.dst, &self.buf[written..n], at).map_err(Fail::io("write"))?;
        }
        Ok(n)
    }
}
