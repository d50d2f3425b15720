//! Cross-thread access to a hub: [`Handle`] and [`KeepAlive`].

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::hub::{Remote, hub};

/// A `Send + Clone` handle to one thread's hub: other threads use it to spawn
/// greenlets there and to wake it.
///
/// A `Handle` does not by itself keep the hub's main greenlet waiting: like
/// gevent's unreferenced watchers, it does not count as something that can
/// wake a blocked main, so main blocked on nothing else still gets the
/// "would block forever" error. Hold a [`KeepAlive`] (from
/// [`Handle::keep_alive`]) while another thread is expected to send work.
///
/// Work done on another thread, then handed to a greenlet of this hub:
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::sync::Event;
///
/// thread_local!(static DONE: Event = Event::new());
///
/// let handle = sylvan::Handle::current();
/// // Main is about to wait for something only the other thread provides:
/// // without this guard the hub could see nothing able to wake main (the
/// // job not sent yet) and the wait would panic with "would block forever".
/// let keep = handle.keep_alive();
/// let worker = std::thread::spawn(move || {
///     let answer = 6 * 7; // the thread's own work
///     handle
///         .spawn(move || {
///             assert_eq!(answer, 42);
///             DONE.with(|done| done.set());
///         })
///         .expect("the hub's thread is still running");
///     drop(keep); // the job is queued: the hub counts it from here on
/// });
/// DONE.with(|done| done.wait());
/// worker.join().unwrap();
/// ```
#[derive(Clone)]
pub struct Handle {
    remote: Arc<Remote>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// The hub a [`Handle`] points to has been torn down (its thread ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubGone;

impl fmt::Display for HubGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hub's thread has ended")
    }
}

impl std::error::Error for HubGone {}

impl Handle {
    /// The handle of this thread's hub (created if needed).
    pub fn current() -> Handle {
        Handle {
            remote: hub().remote.clone(),
        }
    }

    /// Spawns `f` in a new greenlet on the handle's hub, from any thread.
    ///
    /// Never waits: jobs queue without bound until the hub's loop takes
    /// them (it takes all queued at each turn). A thread that spawns faster
    /// than the hub runs greenlets grows the queue, and memory, without
    /// limit; pace it (a counter the greenlets decrement, or a
    /// [`mpsc`](crate::mpsc) channel back) when it could.
    ///
    /// # Errors
    ///
    /// [`HubGone`] when the hub's thread has ended. `Ok` means the job was
    /// queued: it still does not run if the hub's thread exits before the
    /// loop takes it (the closure is dropped unrun), or if no stack can be
    /// mapped for it then (reported on stderr).
    #[track_caller]
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) -> Result<(), HubGone> {
        let site = Location::caller();
        let job = Box::new(move || {
            let _ = crate::task::spawn_from_remote(site, f);
        });
        self.remote.send(job).map_err(|_| HubGone)
    }

    /// Interrupts the hub's poll so its loop runs a turn.
    pub fn wake(&self) {
        self.remote.wake();
    }

    /// True while the hub's thread runs.
    pub fn is_alive(&self) -> bool {
        self.remote.alive.load(Ordering::Acquire)
    }

    /// A guard that counts as a wake source while it lives: main blocked on
    /// something only this handle's thread will provide does not get the
    /// "would block forever" error.
    pub fn keep_alive(&self) -> KeepAlive {
        self.remote.keepalive.fetch_add(1, Ordering::AcqRel);
        KeepAlive {
            remote: self.remote.clone(),
        }
    }
}

/// Keeps a hub's blocked main waiting for cross-thread work (see
/// [`Handle::keep_alive`]). `Send`: drop it on the thread that does the work.
pub struct KeepAlive {
    remote: Arc<Remote>,
}

impl fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive").finish_non_exhaustive()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.remote.keepalive.fetch_sub(1, Ordering::AcqRel);
        // The hub may be blocked in poll waiting for this very guard: wake it
        // so it re-checks whether anything can still wake main.
        self.remote.wake();
    }
}
