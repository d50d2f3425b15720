//! The errors of the sync primitives.
//!
//! Errors that carry a value back (`AlreadySet<T>`, `Closed<T>`,
//! `TryPutError<T>`) print it in `Debug` only as `..`, so `unwrap` works for
//! any `T`, as with std's channel errors.

use std::error::Error as StdError;
use std::fmt;
use std::rc::Rc;

/// The default failure type of [`AsyncResult`](super::AsyncResult): any
/// error, shared so that every getter gets a clone.
pub type SharedError = Rc<dyn StdError>;

/// [`AsyncResult::set`](super::AsyncResult::set) or
/// [`fail`](super::AsyncResult::fail) on a result that already holds a value
/// or failure. Carries the rejected value back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AlreadySet<T>(pub T);

impl<T> fmt::Debug for AlreadySet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlreadySet(..)")
    }
}

impl<T> fmt::Display for AlreadySet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the async result was already set")
    }
}

impl<T> StdError for AlreadySet<T> {}

/// Why [`AsyncResult::get`](super::AsyncResult::get) returned no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetError<E> {
    /// The result was failed with this error.
    Failed(E),
    /// Nothing was stored before the timeout passed.
    TimedOut,
    /// Nothing was stored and the caller is unwinding (a destructor running
    /// during a kill, timeout or panic), so it could not wait.
    Unwinding,
}

impl<E: fmt::Display> fmt::Display for GetError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Failed(e) => write!(f, "the async result failed: {e}"),
            GetError::TimedOut => f.write_str("timed out waiting for the async result"),
            GetError::Unwinding => {
                f.write_str("cannot wait for the async result: the calling greenlet is unwinding")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> StdError for GetError<E> {}

/// [`BoundedSemaphore::release`](super::BoundedSemaphore::release) past the
/// initial count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseError;

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore released too many times")
    }
}

impl StdError for ReleaseError {}

/// A put on a closed queue or channel; carries the item back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("put on a closed queue")
    }
}

impl<T> StdError for Closed<T> {}

/// Why a non-blocking or timed put failed; carries the item back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TryPutError<T> {
    /// The queue is full (for a timed put: it stayed full until the
    /// timeout; for a channel: no getter was waiting).
    Full(T),
    /// The queue is closed.
    Closed(T),
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(v) | TryPutError::Closed(v) => v,
        }
    }

    /// True for [`TryPutError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, TryPutError::Full(_))
    }

    /// True for [`TryPutError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, TryPutError::Closed(_))
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("the queue is full"),
            TryPutError::Closed(_) => f.write_str("put on a closed queue"),
        }
    }
}

impl<T> StdError for TryPutError<T> {}

impl<T> From<Closed<T>> for TryPutError<T> {
    fn from(c: Closed<T>) -> Self {
        TryPutError::Closed(c.0)
    }
}

/// Why a non-blocking or timed get returned no item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryGetError {
    /// Nothing to get (for a timed get: nothing came before the timeout;
    /// called while unwinding: nothing was there and it could not wait).
    Empty,
    /// The queue is closed and drained.
    Closed,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("the queue is empty"),
            TryGetError::Closed => f.write_str("the queue is closed and drained"),
        }
    }
}

impl StdError for TryGetError {}
