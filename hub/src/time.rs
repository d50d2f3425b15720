//! Sleeping, yielding and timeouts.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use sylvan_runtime::TimeoutUnwind;

use crate::hub::{TaskRef, TimerAction, TimerGuard, hub};
use crate::task::WaitKind;
use crate::timer::TimerId;

/// Lets every other ready greenlet run once, then continues.
///
/// Takes the same path as every blocking call (a park that puts the caller
/// straight back on the ready queue). Called from main, it runs the ready
/// greenlets until main's turn comes round again.
#[inline]
pub fn yield_now() {
    hub().park(WaitKind::Yield, true);
}

/// Parks the current greenlet for `d`; other greenlets run meanwhile.
/// `sleep(Duration::ZERO)` is [`yield_now`], as in gevent.
///
/// Called while the greenlet unwinds (from a destructor during a kill or
/// panic), it returns at once without switching.
pub fn sleep(d: Duration) {
    if d.is_zero() {
        return yield_now();
    }
    sleep_until(instant_after(d));
}

/// The deadline `d` from now; `None` when that is past what `Instant` can
/// hold (as `Duration::MAX`): no deadline, wait as long as it takes, as
/// std's timeouts read it.
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// [`deadline_after`] for the places that need an instant: a duration too
/// large for `Instant` lands a century away instead of overflowing.
pub(crate) fn instant_after(d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(d).unwrap_or(now + CENTURY)
}

/// Parks the current greenlet until `deadline`.
pub fn sleep_until(deadline: Instant) {
    let hub = hub();
    if std::thread::panicking() {
        return;
    }
    let _timer = TimerGuard::arm(hub, deadline, TimerAction::Wake(hub.current()));
    // Only the timer ends the sleep: a stray wake-up parks again.
    while hub.park(WaitKind::Sleep, false) != crate::hub::Woke::Refused {
        if Instant::now() >= deadline {
            break;
        }
    }
}

/// Waits until the hub has nothing ready to run (every other greenlet is
/// parked, and no socket event or cross-thread job is pending), as
/// gevent's `idle()`. A greenlet that loops on it lets everything else
/// run between its rounds.
pub fn idle() {
    let hub = hub();
    if std::thread::panicking() {
        return;
    }
    let ticket = hub.add_idle_waiter(hub.current());
    struct Unregister(u64);
    impl Drop for Unregister {
        fn drop(&mut self) {
            if let Some(h) = crate::hub::try_hub() {
                h.remove_idle_waiter(self.0)
            }
        }
    }
    let _g = Unregister(ticket);
    // The loop takes the waiter off the list when it wakes it for being
    // idle; any other wake-up is spurious and parks again.
    while hub.park(WaitKind::Idle, false) != crate::hub::Woke::Refused {
        if !hub.is_idle_waiter(ticket) {
            break;
        }
    }
}

/// Parks main until the hub has nothing left to do, or `timeout` passes:
/// gevent's `gevent.wait()` with no arguments (`get_hub().join()`), the
/// usual last line of a program that spawned its work and lets it finish.
///
/// "Nothing left" means no greenlet ready to run and nothing that could
/// wake one: no timer pending (sleeps, `Timeout`s, `spawn_later`), no
/// greenlet waiting on a socket or the thread pool, no cross-thread work
/// ([`Handle`](crate::Handle) jobs, [`KeepAlive`](crate::KeepAlive)s). A
/// registered [`signal`](fn@crate::signal) handler is not work, as gevent's
/// signal watchers are not: a signal delivered before the work runs out
/// is handled before this returns (the hub polls once more, as gevent's
/// loop does), one that a handler raises then is handled at main's next
/// block.
/// Greenlets parked forever on something only another greenlet could set
/// (an `Event` nobody will set) do not count, as in gevent; they stay
/// parked. A server that
/// listens keeps the hub busy: this then waits for ever (or `timeout`).
/// So does a `Timeout` armed around the call (as in gevent): bound the
/// wait with `timeout`, which is not counted as work.
///
/// Returns true when the hub ran out of work, false when `timeout` passed
/// first (or the caller is unwinding, when it cannot wait).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let done = Rc::new(Cell::new(0));
/// for i in 0..3 {
///     let done = done.clone();
///     sylvan::spawn(move || {
///         sylvan::sleep(Duration::from_millis(i));
///         done.set(done.get() + 1);
///     });
/// }
/// assert!(sylvan::wait_all(None));
/// assert_eq!(done.get(), 3);
/// ```
///
/// # Panics
///
/// Called from a spawned greenlet, which would wait for itself: only the
/// thread's main code (its main greenlet) may wait for all the others.
#[doc(alias = "join")]
pub fn wait_all(timeout: Option<Duration>) -> bool {
    use crate::hub::WaitAll;
    let hub = hub();
    let me = hub.current();
    assert!(
        me.key == crate::hub::MAIN,
        "sylvan: wait_all called from greenlet {}: only the thread's main code can wait for \
         the hub to run out of work (a greenlet would wait for itself); join the greenlets \
         it needs instead",
        crate::task::GreenletId(me.id)
    );
    if std::thread::panicking() {
        return false;
    }
    // Put back as it was however this ends: a call refused on the hub
    // itself (from an error policy, say, while main waits here) must
    // leave main's own wait alone.
    struct Restore<'h>(&'h crate::hub::Hub, WaitAll);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0.wait_all.set(self.1);
        }
    }
    let _restore = Restore(hub, hub.wait_all.get());
    hub.wait_all
        .set(WaitAll::Until(timeout.and_then(deadline_after)));
    hub.last_poll_done.set(false);
    loop {
        if hub.park(WaitKind::AllDone, false) == crate::hub::Woke::Refused {
            return false;
        }
        match hub.wait_all.get() {
            WaitAll::Done => return true,
            WaitAll::Expired => return false,
            // A stray wake-up: park again.
            WaitAll::Until(_) | WaitAll::Off => {}
        }
    }
}

/// The error of [`with_timeout`]: the deadline passed first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    /// A signal handler's escaped `Timeout`, raised in main (see
    /// [`signal`](fn@crate::signal)).
    pub(crate) fn new() -> Elapsed {
        Elapsed(())
    }
}

impl fmt::Debug for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Elapsed")
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(_: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "deadline has elapsed")
    }
}

/// A timeout armed on the current greenlet, cancelled when dropped.
///
/// When it expires while the greenlet is parked (or yielding), a timeout
/// unwind is thrown into the greenlet at that point. [`with_timeout`] catches
/// its own; one that escapes the greenlet's body ends the greenlet as
/// [`Error::TimedOut`](crate::Error::TimedOut) and fires `link_exception`.
/// A greenlet that never blocks cannot be interrupted (as in gevent).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::time::Duration;
/// let g = sylvan::spawn(|| {
///     let _t = sylvan::Timeout::start(Duration::from_millis(10));
///     sylvan::sleep(Duration::from_secs(10));
/// });
/// assert!(g.join().unwrap_err().is_timeout());
/// ```
///
/// Catching one's own timeout, as gevent's `except Timeout as t: if t is
/// not timeout: raise` does (other unwinds, a kill or an outer timeout,
/// pass on):
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
/// use std::time::Duration;
/// let timeout = sylvan::Timeout::start(Duration::from_millis(10));
/// let late = match catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10)))) {
///     Ok(()) => false,
///     Err(p) if timeout.is_own_payload(&*p) => true,
///     Err(p) => resume_unwind(p),
/// };
/// assert!(late);
/// ```
///
/// [`with_timeout`] does this for a closure.
///
/// `!Send`: it belongs to the hub of the thread that armed it (dropped on
/// another thread, it could not cancel anything).
///
/// ```compile_fail
/// let t = sylvan_hub::Timeout::start(std::time::Duration::from_secs(1));
/// std::thread::spawn(move || drop(t));
/// ```
#[derive(Debug)]
#[must_use = "a Timeout is disarmed when dropped: keep the guard (`let _t = Timeout::start(d);`)"]
pub struct Timeout {
    id: u64,
    timer: Option<TimerId>,
    /// The greenlet that armed it.
    owner: TaskRef,
    /// The `Hub::uid` of the hub whose timers hold `timer`.
    hub_uid: u64,
    _not_send: PhantomData<*const ()>,
}

impl Timeout {
    /// Arms a timeout of `d` for the current greenlet.
    pub fn start(d: Duration) -> Timeout {
        Timeout::start_at(instant_after(d))
    }

    /// Arms a timeout that expires at `deadline`.
    pub fn start_at(deadline: Instant) -> Timeout {
        let hub = hub();
        let id = hub.next_timeout_id();
        let task = hub.current_task();
        task.timeouts.set(task.timeouts.get() + 1);
        let owner = hub.current();
        let timer = hub
            .timers
            .borrow_mut()
            .insert(deadline, TimerAction::Throw(owner, id));
        Timeout {
            id,
            timer: Some(timer),
            owner,
            hub_uid: hub.uid,
            _not_send: PhantomData,
        }
    }

    /// True while armed: not expired and not cancelled.
    pub fn is_pending(&self) -> bool {
        self.timer.is_some_and(|t| {
            crate::hub::hub_with_uid(self.hub_uid).is_some_and(|h| h.timers.borrow().contains(t))
        })
    }

    /// Disarms it (as dropping it does).
    pub fn cancel(mut self) {
        self.disarm();
    }

    fn disarm(&mut self) {
        // Not on a hub made after its own was torn down: its timer ids
        // name other timers there.
        let own = crate::hub::hub_with_uid(self.hub_uid);
        if let (Some(t), Some(hub)) = (self.timer.take(), own) {
            let cancelled = hub.timers.borrow_mut().cancel(t);
            match cancelled {
                Some(TimerAction::Throw(r, _)) => {
                    if let Some(task) = hub.lookup(r) {
                        task.timeouts.set(task.timeouts.get().saturating_sub(1));
                    }
                }
                // Fired already: its throw may wait behind another one.
                None => hub.withdraw_deferred_timeout(self.owner, self.id),
                Some(_) => {}
            }
        }
    }

    /// True when `payload` (from `catch_unwind`) is this timeout's unwind,
    /// which the caller then handles: it is marked as caught, so dropping
    /// it prints nothing (see [`TimeoutUnwind`]).
    ///
    /// Call it only to swallow the timeout. A payload it matched and that
    /// is then raised again with `resume_unwind` stays marked as caught: if
    /// nothing catches it further up, it ends the greenlet as a timeout as
    /// usual, but escaping main it ends the thread without the message an
    /// uncaught timeout prints. Test with `is_own_payload` only in the arm
    /// that handles the timeout (as in [`Timeout`]'s example).
    pub fn is_own_payload(&self, payload: &(dyn std::any::Any + Send)) -> bool {
        payload
            .downcast_ref::<TimeoutUnwind>()
            .filter(|t| t.id == self.id)
            .inspect(|t| t.caught())
            .is_some()
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// Runs `f` with a timeout of `d` on the current greenlet.
///
/// `Err(Elapsed)` when the timeout expired while `f` was blocked: `f` was
/// unwound at that point (its destructors ran). Nested timeouts work: the one
/// that expires first is reported by its own `with_timeout`, and outer ones
/// pass through inner ones. If `f` catches the expiry itself and returns,
/// the result is `Ok`.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::time::Duration;
/// let r = sylvan::with_timeout(Duration::from_millis(5), || {
///     sylvan::sleep(Duration::from_secs(5));
/// });
/// assert!(r.is_err());
/// ```
///
/// # Errors
///
/// [`Elapsed`] when the deadline passed first.
pub fn with_timeout<T>(d: Duration, f: impl FnOnce() -> T) -> Result<T, Elapsed> {
    let timeout = Timeout::start(d);
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(payload) if timeout.is_own_payload(&*payload) => Err(Elapsed(())),
        Err(payload) => {
            drop(timeout);
            panic::resume_unwind(payload)
        }
    }
}
