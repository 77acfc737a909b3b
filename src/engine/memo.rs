//! The last few results of a pure function, kept beside their arguments: sealing a record or node
//! state (checksum, pretty JSON) and unsealing one (parse, checksum check) cost more than the
//! syscalls around them, and a volume's node cycle seals and unseals the same few states over and
//! over. A result is taken only for an argument equal to the one it came from, so a hit returns
//! exactly what the function would; nothing here is a view of the disk.

use std::sync::Mutex;

/// How many results a memo keeps: enough for the states a handful of volumes cycle through at
/// once, few enough that a look-up (a length check, then a compare) costs next to nothing.
const SLOTS: usize = 32;

/// The largest file (in bytes) whose result is kept: a node state with many long publication
/// paths can reach hundreds of KiB, and 32 of those are not worth their memory.
pub(super) const LARGEST: usize = 16 << 10;

/// Up to [`SLOTS`] argument–result pairs; the oldest goes first.
#[derive(Debug)]
pub(super) struct Memo<K, V> {
    slots: Mutex<Ring<K, V>>,
}

#[derive(Debug)]
struct Ring<K, V> {
    pairs: Vec<(K, V)>,
    next: usize,
}

impl<K, V: Clone> Memo<K, V> {
    pub const fn new() -> Memo<K, V> {
        Memo { slots: Mutex::new(Ring { pairs: Vec::new(), next: 0 }) }
    }

    /// The result kept for the argument `is` accepts.
    pub fn find(&self, is: impl Fn(&K) -> bool) -> Option<V> {
        let ring = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.pairs.iter().find(|(k, _)| is(k)).map(|(_, v)| v.clone())
    }

    /// The result for `key`: the one kept, or `make`'s, kept when `bytes` (the file's size,
    /// whichever side of the pair it is) is at most [`LARGEST`].
    pub fn through<E>(
        &self,
        key: K,
        bytes: impl FnOnce(&K, &V) -> usize,
        make: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: PartialEq,
    {
        if let Some(value) = self.find(|k| *k == key) {
            return Ok(value);
        }
        let value = make(&key)?;
        if bytes(&key, &value) <= LARGEST {
            self.keep(key, value.clone());
        }
        Ok(value)
    }

    /// Keeps `value` as the result for `key`, in place of the oldest pair when full.
    pub fn keep(&self, key: K, value: V) {
        let mut ring = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.pairs.len() < SLOTS {
            ring.pairs.push((key, value));
            return;
        }
        let at = ring.next;
        ring.pairs[at] = (key, value);
        ring.next = (at + 1) % SLOTS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_kept_and_forgets_the_oldest_when_full() {
        let memo: Memo<usize, String> = Memo::new();
        assert_eq!(memo.find(|k| *k == 1), None);
        for k in 0..SLOTS {
            memo.keep(k, format!("v{k}"));
        }
        assert_eq!(memo.find(|k| *k == 0).as_deref(), Some("v0"));
        memo.keep(999, "new".into());
        assert_eq!(memo.find(|k| *k == 0), None, "the oldest pair made room");
        assert_eq!(memo.find(|k| *k == 1).as_deref(), Some("v1"));
        assert_eq!(memo.find(|k| *k == 999).as_deref(), Some("new"));
    }

    #[test]
    fn through_makes_once_and_keeps_only_what_is_small() {
        let memo: Memo<usize, String> = Memo::new();
        let made = std::cell::Cell::new(0);
        let make = |k: &usize| -> Result<String, ()> {
            made.set(made.get() + 1);
            Ok("x".repeat(*k))
        };
        assert_eq!(memo.through(3, |_, v| v.len(), make).unwrap(), "xxx");
        assert_eq!(memo.through(3, |_, v| v.len(), make).unwrap(), "xxx");
        assert_eq!(made.get(), 1, "the second came from the memo");
        memo.through(LARGEST + 1, |_, v| v.len(), make).unwrap();
        memo.through(LARGEST + 1, |_, v| v.len(), make).unwrap();
        assert_eq!(made.get(), 3, "a large result is made each time");
        assert!(memo.through(7, |_, _: &String| 0, |_| Err::<String, _>("no")).is_err());
        assert_eq!(memo.find(|k| *k == 7), None, "an error is not kept");
    }
}
