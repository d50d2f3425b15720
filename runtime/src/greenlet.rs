//! The greenlet record: switch state, lifecycle state and outcome.

use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::{Mutex, PoisonError};

use crate::overflow;
use crate::stack::{Stack, StackMeta};
use crate::switch::Switch;
use crate::unwind::{GreenletExit, TimeoutUnwind};

/// Where a greenlet is in its life.
///
/// ```text
/// Created --schedule--> Scheduled --resume--> Running --park--> Suspended
///                           ^                    |                  |
///                           +------ yield -------+                  |
///                           +------------- wake --------------------+
/// Running --body returns, panics or is unwound--> Dead
/// Created/Scheduled (never run) --kill--> Dead
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Spawned but not yet put on the ready queue (for example `spawn_later`
    /// before its delay has passed).
    Created,
    /// On the ready queue, waiting for the hub to resume it.
    Scheduled,
    /// Its code is executing: it is the current greenlet.
    Running,
    /// Parked: waiting for a wake-up (a timer, an event, IO, a join).
    Suspended,
    /// Finished: its outcome is final and its stack is back in the pool.
    Dead,
}

/// How a greenlet ended (or `Pending` while it has not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still alive (or never started and not killed).
    Pending,
    /// Its body returned a value.
    Returned,
    /// Its body panicked; the [`Panic`] is kept in the record.
    Panicked,
    /// It was killed: a [`GreenletExit`] unwound it, or it was cancelled
    /// before it started.
    Killed,
    /// A timeout armed inside it expired and the unwind escaped its body.
    TimedOut(u64),
}

/// A panic caught at a greenlet's entry: its message, where it happened, the
/// backtrace when `RUST_BACKTRACE` asked for one, and the payload.
///
/// `Send + Sync`, so that a failure travels into `Box<dyn Error + Send +
/// Sync>` (and `anyhow`) with `?`. Two panics compare equal when their
/// messages and locations do.
pub struct Panic {
    message: String,
    location: Option<String>,
    backtrace: Option<String>,
    /// Behind a lock only to make `Panic` `Sync` (the payload is
    /// `Send` alone): it is reached only through `&mut self`.
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Panic {
    /// Builds a record from a caught payload and what the panic hook saw.
    pub fn new(
        payload: Box<dyn Any + Send>,
        location: Option<String>,
        backtrace: Option<String>,
    ) -> Panic {
        let message = payload_message(&*payload);
        Panic {
            message,
            location,
            backtrace,
            payload: Mutex::new(Some(payload)),
        }
    }

    /// The panic message (`"Box<dyn Any>"` when the payload is not a string).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `file:line:column` of the panic, when the panic hook saw it.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The backtrace, when `RUST_BACKTRACE` asked for one.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// Takes the original payload, to re-raise it with
    /// [`std::panic::resume_unwind`]. `None` if it was taken before.
    pub fn take_payload(&mut self) -> Option<Box<dyn Any + Send>> {
        self.payload
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic")
            .field("message", &self.message)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        Ok(())
    }
}

impl PartialEq for Panic {
    fn eq(&self, other: &Panic) -> bool {
        self.message == other.message && self.location == other.location
    }
}

impl Eq for Panic {}

impl Drop for Panic {
    fn drop(&mut self) {
        if let Some(payload) = self.take_payload() {
            drop_payload(payload);
        }
    }
}

/// Drops a caught panic payload, whose own destructor may panic: that
/// second panic is caught and its payload forgotten (leaked), so dropping a
/// failure never unwinds into the code that drops it (the hub's loop, a
/// report, a `join`'s caller).
pub fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The message of a panic payload, as std's hook would print it.
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// What [`Core::resume`] came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// The greenlet suspended itself (parked or yielded).
    Suspended,
    /// The greenlet's body is over; see [`Core::outcome`].
    Finished,
}

/// One greenlet's core record.
///
/// The hub keeps each `Core` at a stable address (inside its task record) from
/// [`start`](Core::start) until the greenlet is dead: the running body refers
/// back to it.
pub struct Core {
    switch: UnsafeCell<Switch>,
    state: Cell<State>,
    outcome: Cell<Outcome>,
    /// Boxed, like `panic_site`: rare, and the record stays small (it is
    /// copied and touched on every spawn).
    panic: RefCell<Option<Box<Panic>>>,
    /// Message, location and backtrace of the panics in progress, from the
    /// panic hook (the last few: a destructor may panic, and catch it,
    /// while the greenlet unwinds from its own panic).
    panic_site: RefCell<Option<Box<PanicSites>>>,
    meta: Cell<*const StackMeta>,
    stack_size: Cell<usize>,
    /// Set while the record drops a body that is still suspended: the
    /// switch's forced unwind must then pass the entry's `catch_unwind`.
    dropping: Cell<bool>,
}

/// Where a panic happened, and its backtrace when one was captured.
type PanicSite = (String, String, Option<String>);

/// The sites of [`Core::panic_site`], boxed as one word in the record.
#[derive(Default)]
struct PanicSites(Vec<PanicSite>);

/// Panic sites kept per greenlet while it unwinds.
const PANIC_SITES: usize = 4;

impl Default for Core {
    fn default() -> Self {
        Core::new()
    }
}

impl Core {
    /// A record in state [`State::Created`] with no body yet.
    pub const fn new() -> Core {
        Core {
            switch: UnsafeCell::new(Switch::empty()),
            state: Cell::new(State::Created),
            outcome: Cell::new(Outcome::Pending),
            panic: RefCell::new(None),
            panic_site: RefCell::new(None),
            meta: Cell::new(ptr::null()),
            stack_size: Cell::new(0),
            dropping: Cell::new(false),
        }
    }

    /// Places `body` on `stack`; it runs at the first [`resume`](Core::resume).
    ///
    /// The body's panics, kills and timeouts are caught at its entry and
    /// recorded as the [`outcome`](Core::outcome).
    ///
    /// # Safety
    ///
    /// `self` must stay at its address, and alive, until the body has finished
    /// or the record is dropped. `start` is called at most once.
    pub unsafe fn start(&self, stack: Stack, body: impl FnOnce() + 'static) {
        self.meta.set(stack.meta());
        self.stack_size.set(stack.size());
        let this: *const Core = self;
        let entry = move || {
            let result = panic::catch_unwind(AssertUnwindSafe(body));
            // SAFETY: the caller of `start` keeps the record alive and in place
            // until the body has finished, which is after this line.
            let core = unsafe { &*this };
            if let Err(payload) = result {
                if core.dropping.get() {
                    // The record is being dropped with the body suspended:
                    // the switch's forced unwind must reach the switch's
                    // own entry, which catches it and finishes the body.
                    panic::resume_unwind(payload);
                }
                core.record_unwind(payload);
            } else {
                core.outcome.set(Outcome::Returned);
            }
        };
        // SAFETY: the caller keeps `self` in place while the body lives (so
        // the switch does not move) and `entry` never unwinds: everything
        // but the forced unwind of a dropped record is caught above.
        unsafe { (*self.switch.get()).init(stack, entry) };
    }

    #[cold]
    fn record_unwind(&self, payload: Box<dyn Any + Send>) {
        let outcome = if payload.is::<GreenletExit>() {
            Outcome::Killed
        } else if let Some(t) = payload.downcast_ref::<TimeoutUnwind>() {
            // Reported as the greenlet's outcome, not lost.
            t.caught();
            Outcome::TimedOut(t.id)
        } else {
            let mut panic = Panic::new(payload, None, None);
            // The site of this payload's panic: the last one recorded with
            // its message (others were panics caught on the way).
            if let Some(PanicSites(mut sites)) = self.panic_site.borrow_mut().take().map(|b| *b) {
                let at = sites.iter().rposition(|s| s.0 == panic.message);
                if let Some((_, location, backtrace)) = match at {
                    Some(i) => Some(sites.swap_remove(i)),
                    None => sites.pop(),
                } {
                    panic.location = Some(location);
                    panic.backtrace = backtrace;
                }
            }
            *self.panic.borrow_mut() = Some(Box::new(panic));
            Outcome::Panicked
        };
        self.outcome.set(outcome);
    }

    /// Runs the greenlet until it suspends or finishes.
    ///
    /// Marks it [`State::Running`] while it runs and [`State::Dead`] when it
    /// finished; after a suspend the caller sets the state it parked in. A
    /// resumer whose greenlets may [`switch_to`](Self::switch_to) one another
    /// uses [`resume_relay`](Self::resume_relay) instead.
    ///
    /// # Safety
    ///
    /// Called from the thread's own stack (the hub loop), never from inside a
    /// greenlet; the record was [`start`](Core::start)ed and is not dead; no
    /// `RefCell` borrow that the greenlet may need is held across the call.
    #[inline(always)]
    pub unsafe fn resume(&self) -> Resumed {
        // SAFETY: the same contract; with no `switch_to` among the greenlets
        // of this resumer, the one that comes back is `self`.
        if unsafe { self.resume_relay() } {
            self.state.set(State::Dead);
            Resumed::Finished
        } else {
            Resumed::Suspended
        }
    }

    /// [`resume`](Self::resume) for a resumer that lets its greenlets pass
    /// control among themselves with [`switch_to`](Self::switch_to): the
    /// greenlet that comes back (suspends or finishes) may be another one
    /// than `self`, and the caller must know which (the one it last saw
    /// `switch_to` enter). Returns whether that greenlet finished; unlike
    /// `resume`, it is not marked [`State::Dead`] here: the caller marks it.
    ///
    /// # Safety
    ///
    /// As for [`resume`](Self::resume).
    #[inline(always)]
    pub unsafe fn resume_relay(&self) -> bool {
        self.state.set(State::Running);
        overflow::set_running(self.meta.get());
        // SAFETY: per this function's contract the switch is initialised, not
        // finished, and we are on the thread's own stack, so the caller is not
        // the body. The switch is only ever borrowed shared while bodies run.
        let finished = unsafe { (*self.switch.get()).resume() };
        overflow::set_running(ptr::null());
        finished
    }

    /// Whether this build's switch has [`switch_to`](Self::switch_to)
    /// (sylvan's own x86-64 switch does; the corosensei one does not).
    pub const CAN_SWITCH_TO: bool = cfg!(all(
        target_arch = "x86_64",
        target_os = "linux",
        not(sylvan_corosensei)
    ));

    /// Passes control from this running greenlet straight to `next`, without
    /// going back to the resumer: `next` runs ([`State::Running`]), and its
    /// next suspend (or its end) returns to the resumer of this greenlet,
    /// which must have resumed it with [`resume_relay`](Self::resume_relay).
    /// This greenlet waits as after [`suspend`](Self::suspend) (the caller
    /// sets the state it parked in first), until resumed or switched to.
    ///
    /// One switch instead of two (a suspend, then a resume of `next`).
    ///
    /// # Panics
    ///
    /// When [`CAN_SWITCH_TO`](Self::CAN_SWITCH_TO) is false: check it first.
    ///
    /// # Safety
    ///
    /// Called by this greenlet, on its own stack, while it runs; `next` is
    /// another greenlet of this thread, [`start`](Core::start)ed (its body
    /// placed; it may not have run yet), not running and not dead, and no
    /// `RefCell` borrow that it may need is held across the call.
    #[inline(always)]
    pub unsafe fn switch_to(&self, next: &Core) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei)))]
        {
            next.state.set(State::Running);
            // SAFETY: per this function's contract, we run on our switch's
            // stack and `next`'s switch is initialised, not running, not
            // dead, and pinned in its record. Both switches are only ever
            // borrowed shared while bodies run. The switch names `next`'s
            // stack as the running one (`overflow::set_running`'s cell)
            // after it saved our context, so an overflow of ours in that
            // save is still named as ours.
            unsafe {
                (*self.switch.get()).switch_to(
                    &*next.switch.get(),
                    overflow::running_cell().cast::<usize>(),
                    next.meta.get() as usize,
                )
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(sylvan_corosensei))))]
        {
            let _ = next;
            panic!(
                "sylvan-runtime: Core::switch_to needs sylvan's own x86-64 switch; this build uses \
                 corosensei's (check Core::CAN_SWITCH_TO before calling it)"
            )
        }
    }

    /// Suspends the running greenlet back to the hub.
    ///
    /// # Safety
    ///
    /// Must be called by this greenlet, on its own stack, while it runs.
    #[inline(always)]
    pub unsafe fn suspend(&self) {
        // SAFETY: per contract we run on this switch's stack.
        unsafe { (*self.switch.get()).suspend() }
    }

    /// Cancels a greenlet that is not mid-way through its body: it is dead
    /// (as killed, unless it has an outcome already), a body that never ran
    /// is dropped unrun, and the stack is returned: `None` when no body was
    /// ever placed here (the greenlet is still marked dead).
    ///
    /// Does nothing and returns `None` while the body is suspended mid-way
    /// (or running): unwind it with a throw instead.
    pub fn cancel_unstarted(&self) -> Option<Stack> {
        if self.is_mid_body() {
            return None;
        }
        // SAFETY: the body is not mid-way, so it neither runs nor is
        // suspended: no `resume` frame or body holds a reference into the
        // switch.
        let switch = unsafe { &mut *self.switch.get() };
        // Dead first: dropping the body runs user destructors, which may
        // reach the hub and must find this greenlet settled.
        if self.outcome.get() == Outcome::Pending {
            self.outcome.set(Outcome::Killed);
        }
        self.state.set(State::Dead);
        switch.take_stack()
    }

    /// Takes the stack back from a dead greenlet, for the pool. `None` for
    /// a greenlet not marked [`State::Dead`]: its body may still need the
    /// stack, or be running on it.
    pub fn take_stack(&self) -> Option<Stack> {
        if self.state.get() != State::Dead {
            return None;
        }
        // SAFETY: the greenlet is dead: its body no longer runs and holds no
        // reference into the switch, and no `resume` is in progress.
        unsafe { (*self.switch.get()).take_stack() }
    }

    /// Whether the body has started and not finished (it has live frames).
    pub fn is_mid_body(&self) -> bool {
        // SAFETY: a shared read of the coroutine's flags; the switch is only
        // mutated by `resume`/`take_stack`, which are not running now (we are
        // either on the hub stack between resumes or inside the greenlet, where
        // the hub's `resume` frame holds no live reference across the switch).
        unsafe { (*self.switch.get()).is_mid_body() }
    }

    /// Hints the CPU to fetch the suspended body's saved context (its stack
    /// line and TLB entry), for a greenlet that was just made ready after a
    /// long sleep: the resume then does not stall on it. Only a hint; a no-op
    /// on the corosensei switch.
    #[inline]
    pub fn prefetch_context(&self) {
        // SAFETY: as in `is_mid_body`.
        unsafe { (*self.switch.get()).prefetch_context() }
    }

    /// Whether a body was placed with [`start`](Core::start) and not dropped.
    pub fn has_body(&self) -> bool {
        // SAFETY: as in `is_mid_body`.
        unsafe { (*self.switch.get()).is_init() }
    }

    /// The lifecycle state.
    #[inline]
    pub fn state(&self) -> State {
        self.state.get()
    }

    /// Sets the lifecycle state (the hub tracks Scheduled and Suspended).
    #[inline]
    pub fn set_state(&self, state: State) {
        self.state.set(state)
    }

    /// How the greenlet ended, or [`Outcome::Pending`].
    #[inline]
    pub fn outcome(&self) -> Outcome {
        self.outcome.get()
    }

    /// Takes the caught panic, when the outcome is [`Outcome::Panicked`]
    /// (once: later calls return `None`).
    pub fn take_panic(&self) -> Option<Panic> {
        self.panic.borrow_mut().take().map(|p| *p)
    }

    /// Called by the panic hook while this greenlet panics: remembers the
    /// message, where, and the backtrace, for the [`Panic`] record (which
    /// takes the last site recorded with its payload's message, so a panic
    /// that a destructor caught meanwhile does not replace it).
    pub fn record_panic_site(&self, message: String, location: String, backtrace: Option<String>) {
        if let Ok(mut sites) = self.panic_site.try_borrow_mut() {
            let sites = &mut sites.get_or_insert_with(Box::default).0;
            if sites.len() == PANIC_SITES {
                sites.remove(0);
            }
            sites.push((message, location, backtrace));
        }
    }

    /// The message and location of each panic recorded by
    /// [`record_panic_site`](Self::record_panic_site) and not yet taken
    /// into a [`Panic`], oldest first (at most a few).
    pub fn recorded_panics(&self) -> Vec<(String, String)> {
        match self.panic_site.try_borrow() {
            Ok(sites) => sites
                .as_ref()
                .map(|s| s.0.iter().map(|(m, l, _)| (m.clone(), l.clone())).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// The usable size of the greenlet's stack in bytes (0 before start).
    pub fn stack_size(&self) -> usize {
        self.stack_size.get()
    }

    /// The stack's metadata, for the overflow handler (null before start).
    pub fn stack_meta(&self) -> *const StackMeta {
        self.meta.get()
    }

    /// Bytes of stack left below the caller's frame, when called by this
    /// greenlet on its own stack (`None` before start). Meaningless from
    /// any other stack.
    #[inline(never)]
    pub fn stack_room(&self) -> Option<usize> {
        let meta = self.meta.get();
        if meta.is_null() {
            return None;
        }
        let here = 0u8;
        let sp = std::hint::black_box(&here) as *const u8 as usize;
        // SAFETY: a non-null `meta` is the header of the stack this core was
        // started on, which it keeps until it is dead.
        let limit = unsafe { (*meta).guard_hi() };
        Some(sp.saturating_sub(limit))
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if self.switch.get_mut().is_mid_body() {
            // Dropping a suspended body force-unwinds it (its destructors run).
            // The hub avoids this by killing greenlets before it lets go of
            // them; this is the backstop.
            self.dropping.set(true);
            // The unwind runs on the body's stack: name it for the overflow
            // handler meanwhile (a destructor may overflow too), then give
            // back whatever stack the dropper runs on.
            let dropper = overflow::running();
            overflow::set_running(self.meta.get());
            self.switch.get_mut().drop_body();
            overflow::set_running(dropper);
        }
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("state", &self.state.get())
            .field("outcome", &self.outcome.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::stack::MIN_STACK_SIZE;

    /// `take_stack` gives the stack back only once the greenlet is dead:
    /// not while its body waits to start nor while it is suspended.
    #[test]
    fn take_stack_waits_for_the_greenlet_to_be_dead() {
        let core = Box::new(Core::new());
        let p: *const Core = &*core;
        let body = move || {
            // SAFETY: the body runs on the core's own stack.
            unsafe { (*p).suspend() };
        };
        // SAFETY: `core` is boxed and outlives its body; resumed from the
        // thread's own stack.
        unsafe { core.start(Stack::new(MIN_STACK_SIZE, 0).unwrap(), body) };
        assert!(core.take_stack().is_none(), "not started");
        // SAFETY: as above.
        unsafe { core.resume() };
        assert!(core.is_mid_body());
        assert!(core.take_stack().is_none(), "suspended");
        // SAFETY: as above.
        unsafe { core.resume() };
        assert_eq!(core.state(), State::Dead);
        assert!(core.take_stack().is_some(), "dead");
        assert!(core.take_stack().is_none(), "taken once");
    }

    /// Dropping a record whose body is suspended unwinds the body on its
    /// own stack: code there that catches the unwind sees a sylvan unwind
    /// (own switch), and the overflow handler sees that stack meanwhile.
    #[test]
    fn dropping_a_suspended_record_unwinds_it_as_a_sylvan_unwind() {
        let seen = Rc::new(Cell::new((false, false)));
        let core = Box::new(Core::new());
        let stack = Stack::new(MIN_STACK_SIZE, 0).unwrap();
        let meta = stack.meta();
        let p: *const Core = &*core;
        let s = seen.clone();
        let body = move || {
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: the body runs on the core's own stack.
                unsafe { (*p).suspend() };
            }));
            let payload = caught.expect_err("only a forced unwind ends the suspend");
            s.set((
                crate::is_unwind_payload(&*payload),
                overflow::running() == meta,
            ));
            panic::resume_unwind(payload);
        };
        // SAFETY: `core` is boxed and outlives its body (dropping it unwinds
        // the body); resumed from the thread's own stack.
        unsafe {
            core.start(stack, body);
            core.resume();
        }
        assert!(core.is_mid_body());
        drop(core);
        let (is_sylvan, named) = seen.get();
        assert!(named, "the overflow handler knows the unwinding stack");
        assert!(
            overflow::running().is_null(),
            "the thread's own stack again"
        );
        if cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            not(sylvan_corosensei)
        )) {
            assert!(is_sylvan, "the forced unwind is not a panic");
        }
    }
}
