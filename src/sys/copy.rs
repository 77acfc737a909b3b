//! File copies that share extents (FICLONE) where the filesystem can, else keep holes.

use super::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Copies `source` to the new file `dest`; a reflink when possible, else a sparse copy.
pub fn copy_file(source: &Path, dest: &Path) -> Result<()> {
    let err = |source_err| Error::Copy { from: source.to_owned(), to: dest.to_owned(), source: source_err };
    let src = File::open(source).map_err(err)?;
    // Images are root's alone (0600), as the engine's own files are.
    let dst = OpenOptions::new().write(true).create_new(true).mode(0o600).open(dest).map_err(err)?;
    let result = reflink(&src, &dst).or_else(|_| sparse_copy(&src, &dst)).and_then(|()| dst.sync_all());
    if let Err(e) = result {
        drop(dst);
        let _ = std::fs::remove_file(dest);
        return Err(err(e));
    }
    Ok(())
}

fn reflink(src: &File, dst: &File) -> std::io::Result<()> {
    // SAFETY: both descriptors are open for the whole call; FICLONE takes the source fd as an int.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Copies only the data extents (SEEK_DATA/SEEK_HOLE), then sets the full length.
fn sparse_copy(src: &File, dst: &File) -> std::io::Result<()> {
    let len = src.metadata()?.len();
    // Whole length first: capacity accounting counts an image's unwritten length as promised,
    // so a copy in progress promises all it will hold, not the little it has copied so far.
    dst.set_len(len)?;
    let mut pos: i64 = 0;
    let end = i64::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    while pos < end {
        let Some(data) = seek(src, pos, libc::SEEK_DATA)? else {
            break;
        };
        let hole = seek(src, data, libc::SEEK_HOLE)?.unwrap_or(end);
        copy_range(src, dst, data, hole - data)?;
        pos = hole;
    }
    dst.set_len(len)
}

/// lseek that maps ENXIO (no more data) to None.
fn seek(file: &File, offset: i64, whence: libc::c_int) -> std::io::Result<Option<i64>> {
    // SAFETY: plain lseek on an open descriptor; no memory is passed.
    let rc = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if rc >= 0 {
        return Ok(Some(rc));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) { Ok(None) } else { Err(e) }
}

fn copy_range(src: &File, dst: &File, offset: i64, mut len: i64) -> std::io::Result<()> {
    let (mut off_in, mut off_out) = (offset, offset);
    while len > 0 {
        let chunk = usize::try_from(len.min(1 << 30)).unwrap_or(1 << 30);
        // SAFETY: the offsets are live locals the kernel updates; both descriptors stay open.
        let n = unsafe { libc::copy_file_range(src.as_raw_fd(), &mut off_in, dst.as_raw_fd(), &mut off_out, chunk, 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        len -= n as i64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut f = File::create(&a).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(64 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
        drop(f);
        copy_file(&a, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let meta = std::fs::metadata(&b).unwrap();
        assert_eq!(meta.len(), (64 << 20) + 4);
        assert!(meta.blocks() * 512 < 8 << 20, "copy is not sparse: {} blocks", meta.blocks());
    }

    #[test]
    fn existing_destination_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        assert!(copy_file(&a, &b).is_err());
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
    }
}
