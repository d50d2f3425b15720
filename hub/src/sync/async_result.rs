//! `AsyncResult<T, E>`: a value or a failure, set once, waited for by many.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::{Duration, Instant};

use super::error::{AlreadySet, GetError, SharedError};
use super::waitlist::{self, WaitList, let_notified_run_first, wait_on};
use crate::hub::hub;
use crate::task::WaitKind;
use crate::wait::{Waitable, Waiter};

const WAIT: WaitKind = WaitKind::Sync("an async result");

/// A value or a failure that one greenlet sets once and any number of
/// greenlets wait for, as gevent's `AsyncResult`.
///
/// * [`set`](AsyncResult::set) stores a value, [`fail`](AsyncResult::fail)
///   a failure of the error type `E`; either wakes every waiter. Setting it
///   a second time is an error that hands the new value back
///   ([`AlreadySet`]), never a silent overwrite.
/// * Every getter gets its own clone ([`get`](AsyncResult::get) needs
///   `T: Clone` and `E: Clone`), and `get` can be called again and again, as
///   in gevent. For a value that is not `Clone`, store an `Rc<T>`, or take it
///   out once with [`into_inner`](AsyncResult::into_inner) when the result is
///   no longer shared.
/// * `E` is yours to choose; by default it is [`SharedError`]
///   (`Rc<dyn std::error::Error>`), so any error type fits.
///
/// Share it with [`Rc`](std::rc::Rc).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use sylvan::sync::{AsyncResult, GetError};
///
/// let answer: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
/// let waiters: Vec<_> = (0..3)
///     .map(|_| {
///         let a = answer.clone();
///         sylvan::spawn(move || a.get())
///     })
///     .collect();
/// sylvan::yield_now(); // the three park in `get`
/// answer.set(42).unwrap();
/// assert!(answer.set(7).is_err()); // set once
/// for w in waiters {
///     assert_eq!(w.join().unwrap(), Ok(42));
/// }
///
/// let failed: AsyncResult<u32, String> = AsyncResult::new();
/// failed.fail("no route".to_string()).unwrap();
/// assert_eq!(failed.get(), Err(GetError::Failed("no route".to_string())));
/// ```
pub struct AsyncResult<T, E = SharedError> {
    ready: Cell<bool>,
    value: RefCell<Option<Result<T, E>>>,
    waiters: RefCell<WaitList<()>>,
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        AsyncResult::new()
    }
}

impl<T: fmt::Debug, E: fmt::Debug> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AsyncResult");
        match self.value.try_borrow() {
            Ok(v) => d.field("value", &*v),
            Err(_) => d.field("value", &"<borrowed>"),
        };
        d.field("waiters", &self.waiters()).finish()
    }
}

impl<T, E> AsyncResult<T, E> {
    /// An empty result.
    pub const fn new() -> AsyncResult<T, E> {
        AsyncResult {
            ready: Cell::new(false),
            value: RefCell::new(None),
            waiters: RefCell::new(WaitList::new()),
        }
    }

    /// Stores the value and wakes every waiter (FIFO).
    ///
    /// # Errors
    ///
    /// [`AlreadySet`] with `value` when a value or failure was stored before.
    pub fn set(&self, value: T) -> Result<(), AlreadySet<T>> {
        if self.ready.get() {
            return Err(AlreadySet(value));
        }
        self.store(Ok(value));
        Ok(())
    }

    /// Stores a failure and wakes every waiter (FIFO): getters see
    /// [`GetError::Failed`].
    ///
    /// # Errors
    ///
    /// [`AlreadySet`] with `error` when a value or failure was stored before.
    pub fn fail(&self, error: E) -> Result<(), AlreadySet<E>> {
        if self.ready.get() {
            return Err(AlreadySet(error));
        }
        self.store(Err(error));
        Ok(())
    }

    fn store(&self, r: Result<T, E>) {
        *self.value.borrow_mut() = Some(r);
        self.ready.set(true);
        if !self.waiters.borrow().is_empty() {
            self.waiters.borrow_mut().wake_all(hub());
        }
    }

    /// True once a value or a failure is stored.
    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// `Some(true)` once a value is stored, `Some(false)` once a failure is,
    /// `None` before.
    pub fn is_ok(&self) -> Option<bool> {
        self.value.borrow().as_ref().map(Result::is_ok)
    }

    /// Parks until a value or failure is stored; true then. Returns false
    /// without waiting when the caller is unwinding and it is not ready.
    ///
    /// As [`Event::wait`](super::Event::wait), a wait on a ready result
    /// while greenlets its storing woke have not run yet yields once, so
    /// that they go first.
    pub fn wait(&self) -> bool {
        if self.ready.get() {
            let_notified_run_first(&self.waiters);
            return true;
        }
        self.wait_slow(None)
    }

    /// Like [`wait`](AsyncResult::wait), for at most `timeout`; false on
    /// timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.ready.get() {
            let_notified_run_first(&self.waiters);
            return true;
        }
        self.wait_slow(crate::time::deadline_after(timeout))
    }

    #[inline(never)]
    fn wait_slow(&self, deadline: Option<Instant>) -> bool {
        if std::thread::panicking() {
            return self.ready.get();
        }
        wait_on(&self.waiters, WAIT, deadline)
    }

    /// Takes the value or failure out, if one was stored.
    pub fn into_inner(self) -> Option<Result<T, E>> {
        self.value.into_inner()
    }

    /// Greenlets parked waiting for it right now.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

impl<T: Clone, E: Clone> AsyncResult<T, E> {
    /// Parks until a value or failure is stored, and returns a clone of it.
    ///
    /// # Errors
    ///
    /// [`GetError::Failed`] with a clone of the stored failure;
    /// [`GetError::Unwinding`] when the caller is unwinding and nothing is
    /// stored yet (it cannot wait).
    pub fn get(&self) -> Result<T, GetError<E>> {
        self.wait();
        self.peek().unwrap_or(Err(GetError::Unwinding))
    }

    /// Like [`get`](AsyncResult::get), for at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`get`](AsyncResult::get), and [`GetError::TimedOut`] when nothing
    /// was stored in time.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError<E>> {
        if !self.wait_timeout(timeout) && !std::thread::panicking() {
            return Err(GetError::TimedOut);
        }
        self.peek().unwrap_or(Err(GetError::Unwinding))
    }

    /// A clone of what is stored, without waiting: `None` when nothing is.
    pub fn peek(&self) -> Option<Result<T, GetError<E>>> {
        if !self.ready.get() {
            return None;
        }
        let v = self.value.borrow();
        v.as_ref().map(|r| match r {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(GetError::Failed(e.clone())),
        })
    }
}

impl<T, E> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        self.ready.get()
    }

    fn watch(&self, waiter: Waiter) -> usize {
        waitlist::watch(&self.waiters, waiter)
    }

    fn unwatch(&self, _waiter: Waiter, token: usize) {
        waitlist::unwatch(&self.waiters, token)
    }
}
