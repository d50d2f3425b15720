//! `Event`: a flag greenlets wait on.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::{Duration, Instant};

use super::waitlist::{self, WaitList, let_notified_run_first, wait_on};
use crate::hub::hub;
use crate::task::WaitKind;
use crate::wait::{Waitable, Waiter};

const WAIT: WaitKind = WaitKind::Sync("an event");

/// A flag that greenlets wait on until another greenlet sets it, as gevent's
/// `Event`.
///
/// [`set`](Event::set) wakes every waiter, in the order they started
/// waiting, and later waits return at once until [`clear`](Event::clear).
/// A waiter woken by `set` returns true even if the event was cleared again
/// before it ran. Share it with [`Rc`](std::rc::Rc); like every sylvan
/// primitive it is `!Sync`, and waits on it are served by the hub of the
/// thread they are made on.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use sylvan::sync::Event;
///
/// let ready = Rc::new(Event::new());
/// let r = ready.clone();
/// let g = sylvan::spawn(move || {
///     r.wait(); // parks this greenlet until `set`
///     "released"
/// });
/// sylvan::yield_now(); // g starts and parks
/// assert!(!g.is_dead());
/// ready.set();
/// assert_eq!(g.join().unwrap(), "released");
/// ```
#[derive(Default)]
pub struct Event {
    flag: Cell<bool>,
    waiters: RefCell<WaitList<()>>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.flag.get())
            .field("waiters", &self.waiters())
            .finish()
    }
}

impl Event {
    /// A cleared event.
    pub const fn new() -> Event {
        Event {
            flag: Cell::new(false),
            waiters: RefCell::new(WaitList::new()),
        }
    }

    /// Sets the flag and wakes every greenlet waiting, in FIFO order (they
    /// run when the caller next blocks). Setting a set event does nothing.
    #[inline]
    pub fn set(&self) {
        if !self.flag.replace(true) && !self.waiters.borrow().is_empty() {
            self.wake_all();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_all(&self) {
        self.waiters.borrow_mut().wake_all(hub());
    }

    /// Clears the flag: later waits park until the next [`set`](Event::set).
    #[inline]
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// True while the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// Parks the calling greenlet until the event is set; returns at once if
    /// it is set already. Returns true.
    ///
    /// A wait on a set event whose [`set`](Event::set) woke greenlets that
    /// have not run yet yields once first, so that they go first, as in
    /// gevent (its issue 1520): the greenlets an event releases run in the
    /// order they began waiting.
    ///
    /// Called while the greenlet is unwinding (from a destructor during a
    /// kill, timeout or panic), it does not wait: it returns whether the
    /// flag is set.
    #[inline]
    pub fn wait(&self) -> bool {
        if self.flag.get() {
            self.after_notified();
            return true;
        }
        self.wait_slow(None)
    }

    /// Like [`wait`](Event::wait), for at most `timeout`. True if the event
    /// was set (or this waiter was woken by a `set`), false on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.flag.get() {
            self.after_notified();
            return true;
        }
        self.wait_slow(crate::time::deadline_after(timeout))
    }

    /// Like [`wait`](Event::wait), until `deadline` at the latest.
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        if self.flag.get() {
            self.after_notified();
            return true;
        }
        self.wait_slow(Some(deadline))
    }

    #[inline]
    fn after_notified(&self) {
        let_notified_run_first(&self.waiters);
    }

    #[inline(never)]
    fn wait_slow(&self, deadline: Option<Instant>) -> bool {
        if std::thread::panicking() {
            return self.flag.get();
        }
        wait_on(&self.waiters, WAIT, deadline)
    }

    /// Greenlets parked in [`wait`](Event::wait) right now (and waits of
    /// [`wait`](fn@crate::wait)/[`iwait`](crate::iwait) registered on it).
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }

    fn watch(&self, waiter: Waiter) -> usize {
        waitlist::watch(&self.waiters, waiter)
    }

    fn unwatch(&self, _waiter: Waiter, token: usize) {
        waitlist::unwatch(&self.waiters, token)
    }

    /// A `set` chose this registration (even if the event was cleared
    /// since).
    fn fired(&self, _waiter: Waiter, token: usize) -> bool {
        waitlist::fired(&self.waiters, token)
    }
}
