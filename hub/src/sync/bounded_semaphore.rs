//! `BoundedSemaphore`: a semaphore that refuses releases past its count.

use std::fmt;
use std::time::Duration;

use super::error::ReleaseError;
use super::semaphore::{Semaphore, SemaphoreGuard};

/// A [`Semaphore`] that remembers its initial count: a manual
/// [`release`](BoundedSemaphore::release) that would raise the free
/// permits past it is an error (it means a permit was released twice), as
/// gevent's `BoundedSemaphore` raises `ValueError`.
///
/// Acquiring works as on [`Semaphore`] (FIFO hand-off, guards, timeouts).
/// The count never exceeds the bound: dropping a guard whose permit was
/// also given back with `release` panics (during an unwind, it is ignored).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::sync::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(1);
/// sem.acquire().forget(); // taken, to be released by hand
/// assert_eq!(sem.available(), 0);
/// sem.release().unwrap();
/// assert!(sem.release().is_err()); // one release too many
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
    bound: usize,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available", &self.available())
            .field("bound", &self.bound)
            .field("waiters", &self.waiters())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A semaphore with `permits` free permits, never more.
    pub const fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Semaphore::new(permits),
            bound: permits,
        }
    }

    /// Takes a permit, parking (FIFO) while none is free. See
    /// [`Semaphore::acquire`], including what it does while the caller
    /// unwinds.
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.bounded(self.sem.acquire())
    }

    /// Takes a permit if one is free, without waiting.
    #[inline]
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.sem.try_acquire().map(|g| self.bounded(g))
    }

    /// Takes a permit, waiting at most `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.sem.acquire_timeout(timeout).map(|g| self.bounded(g))
    }

    /// A guard whose drop keeps to the bound: dropping it when every permit
    /// is already free (its permit was also released by hand) panics.
    #[inline]
    fn bounded<'a>(&self, mut g: SemaphoreGuard<'a>) -> SemaphoreGuard<'a> {
        g.bound = Some(self.bound);
        g
    }

    /// Gives a permit back by hand (one taken with
    /// [`SemaphoreGuard::forget`]).
    ///
    /// # Errors
    ///
    /// [`ReleaseError`] when every permit is already free (counting those
    /// handed to waiters that have not run yet, as gevent does).
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.sem.at_bound(self.bound) {
            return Err(ReleaseError);
        }
        self.sem.release();
        Ok(())
    }

    /// Free permits now.
    pub fn available(&self) -> usize {
        self.sem.available()
    }

    /// The initial (and largest) count.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// True when no permit is free.
    pub fn is_locked(&self) -> bool {
        self.sem.is_locked()
    }

    /// Greenlets parked in [`acquire`](BoundedSemaphore::acquire) right now.
    pub fn waiters(&self) -> usize {
        self.sem.waiters()
    }

    /// Registrations by [`wait`](fn@crate::wait)/[`iwait`](crate::iwait); see
    /// [`Semaphore::watchers`](super::Semaphore::watchers).
    pub fn watchers(&self) -> usize {
        self.sem.watchers()
    }
}

/// As for [`Semaphore`]: ready while a permit is free.
impl crate::wait::Waitable for BoundedSemaphore {
    fn is_ready(&self) -> bool {
        self.sem.is_ready()
    }

    fn watch(&self, waiter: crate::wait::Waiter) -> usize {
        self.sem.watch(waiter)
    }

    fn unwatch(&self, waiter: crate::wait::Waiter, token: usize) {
        self.sem.unwatch(waiter, token)
    }

    fn fired(&self, waiter: crate::wait::Waiter, token: usize) -> bool {
        self.sem.fired(waiter, token)
    }
}
