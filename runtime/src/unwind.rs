//! The two unwinds sylvan throws into a greenlet: a kill and a timeout.
//!
//! Both are raised with [`std::panic::resume_unwind`], so the panic hook does
//! not run and nothing is printed; destructors on the greenlet's stack run as
//! for any panic. As in gevent they are thrown once: code that catches them
//! with `catch_unwind` may go on, and should re-raise them when it is not the
//! intended catcher. [`is_unwind_payload`] tells them apart from panics.

use std::any::Any;
use std::cell::Cell;
use std::io::{self, Write};
use std::panic;

/// The payload of a kill: thrown into a greenlet by `Greenlet::kill`.
///
/// A greenlet that lets it escape dies as *killed*, which links treat as a
/// normal exit (as gevent treats `GreenletExit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreenletExit;

/// The payload of an expired timeout: thrown into the greenlet that armed the
/// timeout, carrying that timeout's id so that the matching `with_timeout`
/// (and only it) turns the unwind into an `Elapsed` error.
///
/// A timeout that nothing catches must not vanish silently, as a panic does
/// not: dropped without having been [caught](Self::caught), say by the
/// runtime at the top of `main` or by a `JoinHandle::join` result thrown
/// away, the payload prints a line on stderr saying so. gevent prints the
/// `Timeout`'s traceback in that case.
#[derive(Debug)]
pub struct TimeoutUnwind {
    /// The id of the timeout that expired.
    pub id: u64,
    caught: Cell<bool>,
}

impl TimeoutUnwind {
    /// Marks the unwind as handled: dropping it then prints nothing. Code
    /// that catches a timeout with `catch_unwind` and means to swallow it
    /// calls this (sylvan's `with_timeout`, `Timeout::is_own_payload` and
    /// a greenlet's entry, which turns it into the greenlet's outcome, do).
    pub fn caught(&self) {
        self.caught.set(true);
    }
}

impl PartialEq for TimeoutUnwind {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for TimeoutUnwind {}

impl Drop for TimeoutUnwind {
    fn drop(&mut self) {
        if !self.caught.get() {
            // Not `eprintln!`: a closed stderr must not turn this into a
            // panic (a drop that panics here, at the top of `main`, aborts).
            let _ = writeln!(
                io::stderr(),
                "sylvan: a Timeout expired and nothing caught it: it unwound the code that armed \
                 it to the top of its thread (catch it with `with_timeout`, or match the unwind \
                 with `Timeout::is_own_payload`)"
            );
        }
    }
}

/// What the hub throws into a parked greenlet when it resumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throw {
    /// Unwind with [`GreenletExit`].
    Kill,
    /// Unwind with [`TimeoutUnwind`] carrying this timeout id.
    Timeout(u64),
}

/// Unwinds the current stack with the payload of `t`.
///
/// With `panic = "abort"` there is no unwinding: this panics with a message
/// that says so, which aborts the process loudly instead of leaving a killed
/// greenlet running.
#[cold]
#[inline(never)]
pub fn throw(t: Throw) -> ! {
    if cfg!(panic = "abort") {
        match t {
            Throw::Kill => panic!(
                "sylvan: cannot kill a running greenlet: this program is built with \
                 panic = \"abort\", and a kill unwinds the greenlet's stack; build with \
                 panic = \"unwind\" to use kill and timeouts"
            ),
            Throw::Timeout(_) => panic!(
                "sylvan: a timeout expired but this program is built with panic = \"abort\", \
                 and a timeout unwinds the greenlet's stack; build with panic = \"unwind\" \
                 to use timeouts"
            ),
        }
    }
    match t {
        Throw::Kill => panic::resume_unwind(Box::new(GreenletExit)),
        Throw::Timeout(id) => panic::resume_unwind(Box::new(TimeoutUnwind {
            id,
            caught: Cell::new(false),
        })),
    }
}

/// True when `payload` (from `catch_unwind`) is a sylvan kill or timeout
/// rather than a panic.
///
/// Code that catches unwinds should re-raise these with
/// [`std::panic::resume_unwind`] unless it means to swallow the kill or
/// timeout.
///
/// ```
/// use std::panic;
/// let caught = panic::catch_unwind(|| sylvan_runtime::throw(sylvan_runtime::Throw::Kill));
/// assert!(sylvan_runtime::is_unwind_payload(&*caught.unwrap_err()));
/// ```
///
/// It also recognises the unwind that sylvan's own switch throws into a
/// suspended body whose record is dropped (the backstop that runs its
/// destructors). With the `corosensei` switch that unwind carries
/// corosensei's private payload, which no predicate can recognise; such code
/// should re-raise every payload it does not understand.
pub fn is_unwind_payload(payload: &(dyn Any + Send)) -> bool {
    payload.is::<GreenletExit>() || payload.is::<TimeoutUnwind>() || payload.is::<ForcedUnwind>()
}

/// The payload of the unwind that drops a suspended body (sylvan's own
/// switch): like a kill, code must not swallow it.
pub(crate) struct ForcedUnwind;
