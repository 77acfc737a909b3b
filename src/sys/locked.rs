//! [`Locked`]: a value kept in its own page-aligned allocation that is locked in memory (`mlock`,
//! never swapped), left out of core dumps (`MADV_DONTDUMP`) and zeroed before it is freed: where
//! key material lives for the duration of one call.

use std::alloc::Layout;
use std::fmt;
use std::ptr::NonNull;
use zeroize::Zeroize;

/// Plain old data: a type for which every byte pattern, all zeroes included, is a valid value
/// and which owns no other memory, so it can be made zeroed and wiped as bytes.
///
/// # Safety
/// Implement only for `repr(C)` types (or arrays) of integers and arrays of integers.
pub unsafe trait Pod: Sized {}

// SAFETY: an array of bytes is valid for any bit pattern and owns nothing.
unsafe impl<const N: usize> Pod for [u8; N] {}

/// Why memory could not be locked.
#[derive(Debug, thiserror::Error)]
#[error("lock {bytes} bytes of memory for key material (mlock): {source}")]
pub struct LockError {
    bytes: usize,
    source: std::io::Error,
}

/// A `T` in locked memory, zeroed when dropped. `Debug` never shows its contents.
pub struct Locked<T: Pod> {
    ptr: NonNull<T>,
    layout: Layout,
}

// SAFETY: `Locked` owns its allocation exclusively, like a `Box<T>`; `T: Pod` holds only
// integers, which are `Send` and `Sync`.
unsafe impl<T: Pod> Send for Locked<T> {}
// SAFETY: as above: shared references give only `&T`.
unsafe impl<T: Pod> Sync for Locked<T> {}

fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers; a failure returns -1, handled below.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|s| s.is_power_of_two()).unwrap_or(4096)
}

impl<T: Pod> Locked<T> {
    /// A zeroed `T` in a locked allocation of whole pages.
    pub fn zeroed() -> Result<Locked<T>, LockError> {
        let page = page_size();
        let size = std::mem::size_of::<T>().max(1).div_ceil(page) * page;
        let fail = |source| LockError { bytes: size, source };
        let layout = Layout::from_size_align(size, page.max(std::mem::align_of::<T>()))
            .map_err(|_| fail(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            return Err(fail(std::io::Error::from_raw_os_error(libc::ENOMEM)));
        };
        // SAFETY: `raw` is a live allocation of `size` bytes, page-aligned, owned here.
        if unsafe { libc::mlock(raw.cast(), size) } != 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: allocated above with this layout and not yet handed out.
            unsafe { std::alloc::dealloc(raw, layout) };
            return Err(fail(err));
        }
        // Best effort: a kernel without MADV_DONTDUMP still has the memory locked.
        // SAFETY: the same live, page-aligned allocation of `size` bytes.
        let _ = unsafe { libc::madvise(raw.cast(), size, libc::MADV_DONTDUMP) };
        Ok(Locked { ptr, layout })
    }

    /// The whole allocation as bytes (the value and the page's slack).
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `layout.size()` bytes, owned exclusively by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.layout.size()) }
    }
}

impl<T: Pod> std::ops::Deref for Locked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the allocation holds an initialised `T` (zeroed is valid for `Pod`) for the
        // life of `self`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Pod> std::ops::DerefMut for Locked<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Pod> Drop for Locked<T> {
    fn drop(&mut self) {
        self.bytes_mut().zeroize();
        let (raw, size) = (self.ptr.as_ptr().cast::<u8>(), self.layout.size());
        // SAFETY: the allocation made and locked in `zeroed`, released exactly once here.
        unsafe {
            libc::munlock(raw.cast(), size);
            std::alloc::dealloc(raw, self.layout);
        }
    }
}

impl<T: Pod> fmt::Debug for Locked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locked<{} bytes, redacted>", std::mem::size_of::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_locked_writable_and_redacted() {
        let mut k = Locked::<[u8; 64]>::zeroed().unwrap();
        assert!(k.iter().all(|b| *b == 0));
        k[..4].copy_from_slice(b"abcd");
        assert_eq!(&k[..4], b"abcd");
        let shown = format!("{k:?}");
        assert!(!shown.contains("abcd") && !shown.contains("97"), "{shown}");
        // The page is locked: mincore says it is resident, and /proc/self/status counts it.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vmlck = status.lines().find(|l| l.starts_with("VmLck:")).unwrap().to_owned();
        assert!(!vmlck.ends_with(" 0 kB"), "{vmlck}");
    }

    #[test]
    fn drop_wipes_the_bytes() {
        let mut k = Locked::<[u8; 32]>::zeroed().unwrap();
        k.fill(0xAA);
        k.bytes_mut().zeroize();
        assert!(k.iter().all(|b| *b == 0));
    }
}
