//! How a greenlet failed, and what the hub does about failures nobody joined.

use std::fmt;
use std::panic::Location;
use std::rc::Rc;

pub use sylvan_runtime::Panic;

use crate::task::GreenletId;

/// Why [`Greenlet::join`](crate::Greenlet::join) returned no value.
///
/// `Send + Sync + 'static`, so `?` carries it into `Box<dyn Error + Send +
/// Sync>` (or `anyhow::Error`), and into [`io::Error`](std::io::Error)
/// (kind `TimedOut` for [`TimedOut`](Error::TimedOut), `Other` for the
/// rest, this error inside). Compares equal by variant, and panics by
/// message and location, so `assert_eq!(g.join(), Err(Error::Killed))`
/// works.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The greenlet was killed ([`Greenlet::kill`](crate::Greenlet::kill)),
    /// possibly before it started. Links treat this as a normal exit.
    Killed,
    /// The greenlet panicked; the [`Panic`] has the message, location and
    /// payload.
    Panicked(Panic),
    /// A [`Timeout`](crate::Timeout) armed inside the greenlet expired and
    /// nothing caught it, so it ended the greenlet.
    TimedOut,
    /// The call could not wait: the calling greenlet is unwinding (a kill,
    /// timeout or panic is in progress), and a greenlet never switches out
    /// while it unwinds. Returned by blocking calls made from destructors.
    Unwinding,
}

impl Error {
    /// True for [`Error::Killed`].
    pub fn is_killed(&self) -> bool {
        matches!(self, Error::Killed)
    }

    /// True for [`Error::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, Error::Panicked(_))
    }

    /// True for [`Error::TimedOut`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut)
    }

    /// The panic, for [`Error::Panicked`].
    pub fn panic(&self) -> Option<&Panic> {
        match self {
            Error::Panicked(p) => Some(p),
            _ => None,
        }
    }

    /// Re-raises the failure on the current stack: a panic resumes with its
    /// original payload, a kill or timeout as a panic naming it.
    pub fn resume(self) -> ! {
        match self {
            Error::Panicked(mut p) => match p.take_payload() {
                Some(payload) => std::panic::resume_unwind(payload),
                None => panic!("{}", p.message()),
            },
            other => panic!("{other}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Killed => f.write_str("greenlet was killed"),
            Error::Panicked(p) => write!(f, "greenlet panicked: {p}"),
            Error::TimedOut => f.write_str("greenlet ended by an expired timeout"),
            Error::Unwinding => f.write_str(
                "cannot block: the calling greenlet is unwinding (a kill, timeout or panic is in progress)",
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        let kind = match e {
            Error::TimedOut => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// The greenlets that survived [`killall`](crate::killall) within its
/// timeout (they caught the kill and went on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivors(pub Vec<GreenletId>);

impl fmt::Display for Survivors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} greenlet(s) survived the kill:", self.0.len())?;
        for id in &self.0 {
            write!(f, " {id}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Survivors {}

/// A greenlet failure, as handed to the [`ErrorPolicy`].
#[derive(Debug)]
pub struct Failure<'a> {
    /// The greenlet's id.
    pub id: GreenletId,
    /// The greenlet's name, if it was given one.
    pub name: Option<&'a str>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// What went wrong: [`Error::Panicked`] or [`Error::TimedOut`].
    pub error: &'a Error,
    /// Whether a `link`/`link_exception` callback was registered on this
    /// greenlet, or a greenlet was waiting for its death (in `join`,
    /// `wait`, `kill`, `joinall` / `killall`, or [`wait`](fn@crate::wait) /
    /// [`iwait`](crate::iwait)), when it died. Failures reach the policy
    /// only at the death; a later report (a callback that never ran, under
    /// `IgnoreObserved`) is printed directly.
    pub observed: bool,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(n) => write!(f, "greenlet '{n}' ({})", self.id)?,
            None => write!(f, "greenlet {}", self.id)?,
        }
        write!(f, " spawned at {}", self.spawned_at)?;
        match self.error {
            Error::Panicked(p) => {
                write!(f, " panicked")?;
                if let Some(loc) = p.location() {
                    write!(f, " at {loc}")?;
                }
                write!(f, ":\n{}", p.message())?;
                if let Some(bt) = p.backtrace() {
                    write!(f, "\nstack backtrace:\n{bt}")?;
                }
                Ok(())
            }
            other => write!(f, ": {other}"),
        }
    }
}

/// What the hub does with a greenlet that died by a panic or an escaped
/// timeout. Set per thread with [`set_error_policy`](crate::set_error_policy).
#[derive(Clone, Default)]
pub enum ErrorPolicy {
    /// Report every failure once (the default, as gevent prints every
    /// greenlet traceback): through the `log` crate at error level (target
    /// `sylvan`) when a logger takes it, on stderr otherwise.
    #[default]
    Report,
    /// Report a failure at its death only if nothing observes it: no link
    /// callback and no greenlet waiting for the death (see
    /// [`Failure::observed`]). A failure left to `link`/`link_exception`
    /// callbacks is not lost when none of them runs: one dropped without
    /// running (the thread exits before its greenlet starts, say right
    /// after `Pool::join`, or `unlink_all` cuts it) prints it then, as
    /// `Report` would, unless another callback ran with it or a `join`
    /// takes it. A failure observed only by a waiter (in `wait`, `kill`,
    /// `joinall`, `iwait`) is left to that code: it is not printed if it
    /// never joins. A `join` that ends without taking it (its greenlet
    /// killed or timed out while it waited, as a thread exit kills it)
    /// prints it then. Reported once at most.
    IgnoreObserved,
    /// Print the report and abort the process.
    Abort,
    /// Hand each failure to this function, at the greenlet's death. It
    /// runs on the hub itself, so it must not block (a blocking call there
    /// panics): spawn a greenlet for blocking work. A failure raised once
    /// the thread's exit has begun killing the greenlets still alive (after
    /// main's greenlet-local values are dropped, on a working hub), or
    /// reported later by a callback that never ran or a `join` that did not
    /// take it, is printed as `Report` prints instead, since the function
    /// may count on the hub. A panic inside it is caught and printed; it harms
    /// neither the hub nor other greenlets. It runs before the failed
    /// greenlet's link callbacks: joining it there returns at once with a
    /// copy of the failure (its panic payload replaced by the message; the
    /// original stays with the [`Failure`]) only when it has no link
    /// callbacks, since `join` waits for them, and waiting panics on the
    /// hub. [`Greenlet::wait`](crate::Greenlet::wait) and the `Failure`
    /// itself never wait.
    Custom(Rc<dyn Fn(&Failure<'_>)>),
}

impl fmt::Debug for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorPolicy::Report => f.write_str("Report"),
            ErrorPolicy::IgnoreObserved => f.write_str("IgnoreObserved"),
            ErrorPolicy::Abort => f.write_str("Abort"),
            ErrorPolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

pub(crate) fn print_report(failure: &Failure<'_>) {
    crate::report(log::Level::Error, format_args!("{failure}"));
}

impl ErrorPolicy {
    pub(crate) fn handle(&self, failure: &Failure<'_>) {
        match self {
            ErrorPolicy::Report => print_report(failure),
            ErrorPolicy::IgnoreObserved => {
                if !failure.observed {
                    print_report(failure)
                }
            }
            ErrorPolicy::Abort => {
                print_report(failure);
                stderr!("sylvan: aborting because the error policy is ErrorPolicy::Abort");
                std::process::abort();
            }
            ErrorPolicy::Custom(f) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(failure)));
                if let Err(payload) = r {
                    stderr!("sylvan: the custom error policy panicked while handling: {failure}");
                    sylvan_runtime::drop_payload(payload);
                }
            }
        }
    }
}
