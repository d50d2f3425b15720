//! `Semaphore`: a count of permits greenlets acquire and release.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::{Duration, Instant};

use super::waitlist::{self, NodeKey, WaitList, cannot_wait_while_unwinding, park_until_chosen};
use crate::hub::hub;
use crate::task::WaitKind;
use crate::wait::{Waitable, Waiter};

const WAIT: WaitKind = WaitKind::Sync("a semaphore");

/// A counting semaphore: [`acquire`](Semaphore::acquire) takes a permit,
/// parking the greenlet while none is free; dropping the returned guard
/// gives it back.
///
/// Waiters get permits in FIFO order: a release with waiters hands the
/// permit straight to the first one (no later acquirer can barge in). If
/// that waiter is killed or times out before it runs, the permit passes to
/// the next waiter. A guard dropped while its greenlet unwinds (killed,
/// timed out, panicking) releases the permit like any other drop.
///
/// [`release`](Semaphore::release) without a guard adds a permit (even past
/// the initial count: use [`BoundedSemaphore`](super::BoundedSemaphore) to
/// forbid that). Share it with [`Rc`](std::rc::Rc).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use sylvan::sync::Semaphore;
///
/// let slots = Rc::new(Semaphore::new(2));
/// let inside = Rc::new(Cell::new(0));
/// let most = Rc::new(Cell::new(0));
/// let gs: Vec<_> = (0..6)
///     .map(|_| {
///         let (slots, inside, most) = (slots.clone(), inside.clone(), most.clone());
///         sylvan::spawn(move || {
///             let _permit = slots.acquire();
///             inside.set(inside.get() + 1);
///             most.set(most.get().max(inside.get()));
///             sylvan::yield_now();
///             inside.set(inside.get() - 1);
///         })
///     })
///     .collect();
/// sylvan::joinall(&gs, None);
/// assert_eq!(most.get(), 2);
/// ```
pub struct Semaphore {
    permits: Cell<usize>,
    waiters: RefCell<WaitList<()>>,
    /// [`wait`](fn@crate::wait)/[`iwait`](crate::iwait) registrations: woken
    /// when a release leaves a permit free. Separate from `waiters`, which
    /// are handed permits.
    watchers: RefCell<WaitList<()>>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available())
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// A permit of a [`Semaphore`] (or [`BoundedSemaphore`](super::BoundedSemaphore)),
/// given back when dropped.
#[must_use = "the permit is released at once if the guard is not kept"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
    /// The most free permits a release may leave: a
    /// [`BoundedSemaphore`](super::BoundedSemaphore)'s bound, else `None`
    /// (no limit).
    pub(super) bound: Option<usize>,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken without a guard: give it back later with
    /// [`Semaphore::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(bound) = self.bound
            && self.sem.at_bound(bound)
        {
            released_too_often(bound);
        } else {
            self.sem.release();
        }
    }
}

/// Ready while a permit is free (an acquire would not wait), as gevent's
/// `Semaphore.ready()`; [`wait`](fn@crate::wait) and [`iwait`](crate::iwait)
/// report it when a release frees a permit, even if another greenlet takes
/// that permit before the waiter runs (as gevent notifies its links).
/// Waiting on it takes no permit.
impl Waitable for Semaphore {
    fn is_ready(&self) -> bool {
        self.permits.get() > 0
    }

    fn watch(&self, waiter: Waiter) -> usize {
        waitlist::watch(&self.watchers, waiter)
    }

    fn unwatch(&self, _waiter: Waiter, token: usize) {
        waitlist::unwatch(&self.watchers, token)
    }

    fn fired(&self, _waiter: Waiter, token: usize) -> bool {
        waitlist::fired(&self.watchers, token)
    }
}

/// A [`BoundedSemaphore`](super::BoundedSemaphore) guard dropped while every
/// permit is already free: its permit was also released by hand. The count
/// stays at the bound; the mistake panics, as gevent raises `ValueError`,
/// except during an unwind (a second panic would abort).
#[cold]
#[inline(never)]
fn released_too_often(bound: usize) {
    if !std::thread::panicking() {
        panic!(
            "sylvan: BoundedSemaphore released too many times: a guard was dropped while all \
             {bound} permits were free (was its permit also given back with `release`? use \
             `SemaphoreGuard::forget` before releasing by hand)"
        );
    }
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            waiters: RefCell::new(WaitList::new()),
            watchers: RefCell::new(WaitList::new()),
        }
    }

    /// Takes a permit, parking the calling greenlet (FIFO) while none is
    /// free.
    ///
    /// # Aborts
    ///
    /// Called while the greenlet is unwinding (from a destructor during a
    /// kill, timeout or panic) when no permit is free, it cannot wait (a
    /// greenlet never switches while unwinding) and cannot return without a
    /// permit: it aborts the process with a message saying so. Destructors
    /// should use [`try_acquire`](Semaphore::try_acquire).
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        if !self.take() && !self.acquire_slow(None) {
            cannot_wait_while_unwinding("Semaphore::acquire");
        }
        self.guard()
    }

    /// The guard of a permit just taken (no bound: see `BoundedSemaphore`).
    #[inline]
    fn guard(&self) -> SemaphoreGuard<'_> {
        SemaphoreGuard {
            sem: self,
            bound: None,
        }
    }

    /// Takes a permit if one is free, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.take().then(|| self.guard())
    }

    /// Takes a permit, waiting at most `timeout`; `None` if none came in
    /// time (or the caller is unwinding and none was free).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        (self.take() || self.acquire_slow(crate::time::deadline_after(timeout)))
            .then(|| self.guard())
    }

    #[inline]
    fn take(&self) -> bool {
        // With waiters in line there are no free permits: a release hands
        // its permit straight to the first waiter.
        let n = self.permits.get();
        if n > 0 {
            self.permits.set(n - 1);
            true
        } else {
            false
        }
    }

    /// Parks until the next [`release`](Self::release) (true), which may
    /// hand its permit to a waiting acquirer, or until the deadline passes
    /// (false); takes no permit. As a [`wait`](fn@crate::wait) on it, without
    /// the iterator: gevent's `Semaphore.wait`, which its `Pool` waits in
    /// for a free slot. The caller has checked that it is not unwinding.
    pub(crate) fn wait_released(&self, what: WaitKind, deadline: Option<Instant>) -> bool {
        waitlist::wait_on(&self.watchers, what, deadline)
    }

    /// Parks until a permit is handed over (true) or the deadline passes
    /// (false). False at once when the caller is unwinding.
    #[inline(never)]
    pub(crate) fn acquire_slow(&self, deadline: Option<Instant>) -> bool {
        if std::thread::panicking() {
            return false;
        }
        let hub = hub();
        let key = self.waiters.borrow_mut().push(hub.current(), ());
        let guard = Waiting { sem: self, key };
        let got = park_until_chosen(hub, WAIT, deadline, || self.waiters.borrow().is_linked(key));
        if got {
            // The permit is ours: remove the node without passing it on.
            std::mem::forget(guard);
            self.waiters.borrow_mut().remove(key);
        }
        got
    }

    /// Gives a permit back: to the first waiter if there is one, else to
    /// the free count. Either way greenlets in [`wait`](fn@crate::wait) or
    /// [`iwait`](crate::iwait) on it are woken, as gevent notifies every
    /// link of a released semaphore (its acquirer takes the permit only
    /// when it runs): a watcher learns that it was released, even if an
    /// acquirer got the permit.
    ///
    /// # Panics
    ///
    /// When the free count would pass `usize::MAX`.
    #[inline]
    pub fn release(&self) {
        if self.waiters.borrow().is_empty() {
            let n = self.permits.get().checked_add(1);
            self.permits
                .set(n.expect("sylvan: Semaphore released past usize::MAX free permits"));
        } else {
            self.hand_over();
        }
        if !self.watchers.borrow().is_empty() {
            self.notify_watchers();
        }
    }

    #[cold]
    #[inline(never)]
    fn notify_watchers(&self) {
        self.watchers.borrow_mut().wake_all(hub());
    }

    #[cold]
    #[inline(never)]
    fn hand_over(&self) {
        self.waiters.borrow_mut().pop_wake(hub());
    }

    /// Whether a release would pass `bound`: the free permits, and those
    /// handed to waiters that have not run yet (they hold them already, as
    /// gevent counts them until they run).
    #[inline]
    pub(crate) fn at_bound(&self, bound: usize) -> bool {
        self.permits
            .get()
            .saturating_add(self.waiters.borrow().chosen())
            >= bound
    }

    /// Free permits now.
    pub fn available(&self) -> usize {
        self.permits.get()
    }

    /// True when no permit is free (an acquire would wait).
    pub fn is_locked(&self) -> bool {
        self.permits.get() == 0
    }

    /// Greenlets parked in [`acquire`](Semaphore::acquire) right now.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Registrations made by [`wait`](fn@crate::wait)/[`iwait`](crate::iwait)
    /// that watch for a free permit without taking one (gevent's
    /// `linkcount`). An `iwait` keeps one per pending object until it is
    /// dropped.
    pub fn watchers(&self) -> usize {
        self.watchers.borrow().len()
    }
}

/// Removes a waiter's node when its wait ends without the permit (timeout,
/// kill); if it had been handed a permit already, passes it on.
struct Waiting<'a> {
    sem: &'a Semaphore,
    key: NodeKey,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let (chosen, ()) = self.sem.waiters.borrow_mut().remove(self.key);
        if chosen {
            self.sem.release();
        }
    }
}
