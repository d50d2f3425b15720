//! `Mutex<T>`: a lock that parks greenlets, handed off in FIFO order.

use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::waitlist::{NodeKey, WaitList, cannot_wait_while_unwinding, park_until_chosen};
use crate::hub::hub;
use crate::task::WaitKind;

const WAIT: WaitKind = WaitKind::Sync("a mutex");

/// A mutual-exclusion lock around a `T` for greenlets of one hub (what
/// gevent code does with `gevent.lock.Semaphore(1)`), with a guard like
/// std's.
///
/// [`lock`](Mutex::lock) parks the calling greenlet while another one holds
/// the guard. Unlocking with waiters hands the lock straight to the first
/// one (FIFO, no barging); if that waiter is killed or times out before it
/// runs, the lock passes to the next.
///
/// **Kill or panic while holding the guard:** the guard is dropped during
/// the unwind, which unlocks and hands the lock to the next waiter. There is
/// no poisoning: in gevent style a kill is ordinary control flow, and
/// poisoning would turn every kill of a lock holder into a failure for all
/// later users. Code that leaves `T` half-updated across a blocking call
/// must restore its invariants itself (for example with a drop guard).
///
/// It is not reentrant: a greenlet that locks it twice waits for itself
/// (and main then panics with "would block forever"). Share it with
/// [`Rc`](std::rc::Rc).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use sylvan::sync::Mutex;
///
/// let log = Rc::new(Mutex::new(Vec::new()));
/// let gs: Vec<_> = (0..3)
///     .map(|i| {
///         let log = log.clone();
///         sylvan::spawn(move || {
///             let mut entries = log.lock();
///             entries.push(i);
///             sylvan::yield_now(); // others wait: the lock is held
///             entries.push(i);
///         })
///     })
///     .collect();
/// sylvan::joinall(&gs, None);
/// assert_eq!(*log.lock(), [0, 0, 1, 1, 2, 2]);
/// ```
pub struct Mutex<T: ?Sized> {
    locked: Cell<bool>,
    waiters: RefCell<WaitList<()>>,
    value: RefCell<T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("value", &&*g),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.field("waiters", &self.waiters()).finish()
    }
}

impl<T> From<T> for Mutex<T> {
    /// An unlocked mutex holding `value`, as `Mutex::new`.
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

/// Exclusive access to the value of a locked [`Mutex`]; unlocks (handing
/// the lock to the next waiter) when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    value: RefMut<'a, T>,
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // The `RefMut` field is dropped right after this; the next owner
        // only runs after the current greenlet blocks, by which time it is.
        self.mutex.unlock();
    }
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            locked: Cell::new(false),
            waiters: RefCell::new(WaitList::new()),
            value: RefCell::new(value),
        }
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks it, parking the calling greenlet (FIFO) while another holds it.
    ///
    /// # Aborts
    ///
    /// Called while the greenlet is unwinding (from a destructor during a
    /// kill, timeout or panic) when another greenlet holds the lock, it
    /// cannot wait (a greenlet never switches while unwinding) and cannot
    /// return without the lock: it aborts the process with a message saying
    /// so. Destructors should use [`try_lock`](Mutex::try_lock).
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.locked.replace(true) && !self.lock_slow(None) {
            cannot_wait_while_unwinding("Mutex::lock");
        }
        self.guard()
    }

    /// Locks it if it is free, without waiting.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        (!self.locked.replace(true)).then(|| self.guard())
    }

    /// Locks it, waiting at most `timeout`; `None` if it stayed locked (or
    /// the caller is unwinding and it was locked).
    pub fn lock_timeout(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        if self.locked.replace(true) && !self.lock_slow(crate::time::deadline_after(timeout)) {
            return None;
        }
        Some(self.guard())
    }

    #[inline]
    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            value: self.value.borrow_mut(),
        }
    }

    /// Parks until the lock is handed over (true) or the deadline passes
    /// (false). False at once when the caller is unwinding.
    #[inline(never)]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        if std::thread::panicking() {
            return false;
        }
        let hub = hub();
        let key = self.waiters.borrow_mut().push(hub.current(), ());
        let guard = Waiting { mutex: self, key };
        let got = park_until_chosen(hub, WAIT, deadline, || self.waiters.borrow().is_linked(key));
        if got {
            std::mem::forget(guard);
            self.waiters.borrow_mut().remove(key);
        }
        got
    }

    #[inline]
    fn unlock(&self) {
        if self.waiters.borrow().is_empty() {
            self.locked.set(false);
        } else {
            self.hand_over();
        }
    }

    #[cold]
    #[inline(never)]
    fn hand_over(&self) {
        // `locked` stays true: the lock goes to the first waiter.
        self.waiters.borrow_mut().pop_wake(hub());
    }

    /// True while some greenlet holds the lock (or it is being handed over).
    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }

    /// The value, through a unique reference (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Greenlets parked in [`lock`](Mutex::lock) right now.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Removes a waiter's node when its wait ends without the lock (timeout,
/// kill); if the lock had been handed to it already, passes it on.
struct Waiting<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    key: NodeKey,
}

impl<T: ?Sized> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        let (chosen, ()) = self.mutex.waiters.borrow_mut().remove(self.key);
        if chosen {
            self.mutex.unlock();
        }
    }
}
