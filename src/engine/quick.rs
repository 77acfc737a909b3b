//! Engine calls that a server runs on its polling thread (see `csi::inline`): saved are the two
//! thread wake-ups of a hand-off to a blocking thread, about a sixth of a node call's CPU. Only
//! calls of bounded time may run there, since every connection waits while one runs: the engine
//! declines, before it changes anything, a call on a kind whose create, delete, stage or unstage
//! formats, allocates, flushes or detaches (see [`crate::backend::Rules::quick_calls`]), a call
//! on an encrypted volume (removing its key evicts its cached files), a delete whose storage goes
//! in the call (a tmpfs's unmount frees its memory) or that must wait (behind an earlier removal
//! of its id); the caller then runs the call again on a blocking thread.

use super::{Error, Result};
use std::cell::Cell;

thread_local! {
    /// Whether this thread runs a call for [`on_poller`].
    static ON_POLLER: Cell<bool> = const { Cell::new(false) };
    /// Whether the engine declined the call [`on_poller`] runs.
    static DECLINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call` as a call on the polling thread: `None` when the engine declined it (nothing
/// was changed; run it on a blocking thread).
pub fn on_poller<R>(call: impl FnOnce() -> R) -> Option<R> {
    ON_POLLER.with(|p| p.set(true));
    DECLINED.with(|d| d.set(false));
    let done = call();
    ON_POLLER.with(|p| p.set(false));
    (!DECLINED.with(Cell::take)).then_some(done)
}

/// Whether the calls on a volume of `kind` take bounded time: a quick kind, and no key to add or
/// remove (`encrypted`).
pub(super) fn kind(kind: crate::backend::Kind, encrypted: bool) -> bool {
    crate::backend::rules(kind).quick_calls() && !encrypted
}

/// [`kind`] of the volume `vol`.
pub(super) fn volume(vol: &super::Volume) -> bool {
    kind(vol.backend, vol.encryption.is_some())
}

/// Declines the call when it runs on the polling thread and `quick` says it may take long.
pub(super) fn unless_quick(quick: bool) -> Result<()> {
    if quick || !ON_POLLER.with(Cell::get) {
        return Ok(());
    }
    DECLINED.with(|d| d.set(true));
    Err(Error::NotQuick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Kind;
    use crate::engine::tests::{fixture, mount_access, req};

    #[test]
    fn declines_only_slow_calls_on_the_poller() {
        assert!(unless_quick(false).is_ok(), "off the poller every call runs");
        assert_eq!(on_poller(|| unless_quick(true).is_ok()), Some(true));
        assert_eq!(on_poller(|| unless_quick(false).is_ok()), None, "a slow call is declined");
        assert!(unless_quick(false).is_ok(), "the flag ends with the call");
        assert_eq!(on_poller(|| 7), Some(7), "a decline does not outlive its call");
    }

    #[test]
    fn slow_kinds_are_declined_before_anything_changes_and_quick_ones_run() {
        let f = fixture();
        let calls = f.host.calls().len();
        assert!(on_poller(|| f.engine.create_volume(&req("l", Kind::Loop, 64 << 20))).is_none());
        assert_eq!(f.volume_entries(), Vec::<String>::new(), "a declined create makes nothing");
        assert_eq!(f.host.calls().len(), calls, "nor asks the host for anything");

        f.engine.create_volume(&req("l", Kind::Loop, 64 << 20)).unwrap();
        let staging = f.staging("l");
        assert!(on_poller(|| f.engine.stage_volume("l", &staging, &mount_access())).is_none());
        f.engine.stage_volume("l", &staging, &mount_access()).unwrap();
        let calls = f.host.calls().len();
        assert!(on_poller(|| f.engine.unstage_volume("l", &staging)).is_none());
        assert_eq!(f.host.calls().len(), calls, "a declined unstage unmounts nothing");
        f.engine.unstage_volume("l", &staging).unwrap();
        assert!(on_poller(|| f.engine.delete_volume("l")).is_none());
        assert!(f.engine.get_volume("l").unwrap().is_some(), "a declined delete keeps the volume");

        let made = on_poller(|| f.engine.create_volume(&req("d", Kind::Dir, 1 << 20)));
        assert!(made.expect("a dir create runs on the poller").is_ok());
        let staging = f.staging("d");
        assert!(on_poller(|| f.engine.stage_volume("d", &staging, &mount_access())).unwrap().is_ok());
        assert!(on_poller(|| f.engine.unstage_volume("d", &staging)).unwrap().is_ok());
        // Without a background removal, the delete would remove the pod's files in the call.
        assert!(on_poller(|| f.engine.delete_volume("d")).is_none());
        let (queue, _held) = std::sync::mpsc::channel();
        assert!(f.engine.removals.start(queue));
        assert!(on_poller(|| f.engine.delete_volume("d")).unwrap().is_ok());
        assert!(f.engine.get_volume("d").unwrap().is_none());

        // A tmpfs's unmount frees its memory in the delete: not on the poller.
        assert!(on_poller(|| f.engine.create_volume(&req("t", Kind::Tmpfs, 1 << 20))).unwrap().is_ok());
        assert!(on_poller(|| f.engine.delete_volume("t")).is_none());
        assert!(f.engine.get_volume("t").unwrap().is_some());
    }

    #[test]
    fn a_delete_behind_a_pending_removal_of_its_id_is_declined() {
        let f = fixture();
        f.engine.create_volume(&req("d", Kind::Dir, 1 << 20)).unwrap();
        let (queue, _held) = std::sync::mpsc::channel();
        assert!(f.engine.removals.start(queue));
        assert!(f.engine.removals.hand_over("d"), "an earlier volume of the id is still being removed");
        assert!(on_poller(|| f.engine.delete_volume("d")).is_none(), "it would wait for that removal");
        assert!(f.engine.get_volume("d").unwrap().is_some());
    }
}
