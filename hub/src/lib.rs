//! The per-thread hub of [sylvan](https://docs.rs/sylvan): the scheduler,
//! timers, the `mio` poll loop and the greenlet lifecycle.
//!
//! Most users depend on the `sylvan` facade, which re-exports this crate.
//!
//! ```
//! # extern crate sylvan_hub as sylvan;
//! use std::time::Duration;
//! let a = sylvan::spawn(|| { sylvan::sleep(Duration::from_millis(2)); "a" });
//! let b = sylvan::spawn(|| "b");
//! assert_eq!(b.join().unwrap(), "b");
//! assert_eq!(a.join().unwrap(), "a");
//! ```

/// `eprintln!` that never panics: a report written while stderr is closed
/// or a broken pipe is lost instead of panicking the hub, the accept loop
/// or the thread that made it (`eprintln!` panics when the write fails).
/// It is still `eprintln!` when it can be, so a test harness captures it
/// like any output; while unwinding (where a caught panic would abort)
/// it writes to stderr directly.
macro_rules! stderr {
    ($($arg:tt)*) => {{
        if std::thread::panicking() {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), $($arg)*);
        } else {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                eprintln!($($arg)*)
            }));
        }
    }};
}

/// Reports trouble through the `log` crate (target `sylvan`) when a logger
/// takes `level`, else on stderr (through [`stderr!`]).
pub(crate) fn report(level: log::Level, what: std::fmt::Arguments<'_>) {
    if log::log_enabled!(target: "sylvan", level) {
        log::log!(target: "sylvan", level, "{what}");
    } else {
        stderr!("{what}");
    }
}

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn std::any::Any + Send>;

/// Drops each value in a `catch_unwind` of its own, so that a second
/// panicking destructor never runs inside the unwind of the first (a panic
/// in cleanup, which aborts the process). Returns the first panic; the
/// others are dropped.
pub(crate) fn drop_each<T>(values: impl IntoIterator<Item = T>) -> Option<Payload> {
    let mut first = None;
    for value in values {
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value)));
        if let Err(p) = dropped {
            keep_first(&mut first, p);
        }
    }
    first
}

/// Keeps `p` as the first panic caught, unless there is one already: then
/// `p` is dropped.
pub(crate) fn keep_first(first: &mut Option<Payload>, p: Payload) {
    match first {
        None => *first = Some(p),
        Some(_) => sylvan_runtime::drop_payload(p),
    }
}

/// Hands on a panic caught while dropping `what`: resumed in the caller,
/// as an uncaught one would have gone; reported on stderr instead when the
/// caller is already unwinding (a second panic there would abort).
pub(crate) fn resume_or_report(panic: Option<Payload>, what: &str) {
    match panic {
        Some(p) if !std::thread::panicking() => std::panic::resume_unwind(p),
        panic => report_panic(panic, what),
    }
}

/// Reports a panic caught while dropping `what` on stderr, and drops it:
/// the panic stops there.
#[cold]
pub(crate) fn report_panic(panic: Option<Payload>, what: impl std::fmt::Display) {
    let Some(p) = panic else { return };
    stderr!(
        "sylvan: a destructor panicked while dropping {what}: {}; the panic stops there",
        sylvan_runtime::payload_message(&*p)
    );
    sylvan_runtime::drop_payload(p);
}

/// Owns a value whose destructor runs user code (a captured closure), and
/// drops it through [`drop_each`] and [`resume_or_report`]: a panic there
/// while the owner unwinds (a kill) is reported instead of aborting.
pub(crate) struct DropCaught<T> {
    value: Option<T>,
    what: &'static str,
}

impl<T> DropCaught<T> {
    pub(crate) fn new(value: T, what: &'static str) -> Self {
        DropCaught {
            value: Some(value),
            what,
        }
    }
}

impl<T> std::ops::Deref for DropCaught<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value.as_ref().expect("present until dropped")
    }
}

impl<T> Drop for DropCaught<T> {
    fn drop(&mut self) {
        resume_or_report(drop_each(self.value.take()), self.what);
    }
}

mod error;
mod handle;
mod hook;
mod hub;
mod inspect;
mod io;
mod local;
pub mod mpsc;
pub mod net;
pub mod os;
mod poll;
mod record;
mod remote;
mod ring;
mod signal;
mod task;
mod threadpool;
mod time;
mod timer;

pub mod pool;
pub mod sync;
mod wait;

pub use error::{Error, ErrorPolicy, Failure, Panic, Survivors};
pub use handle::{Handle, HubGone, KeepAlive};
pub use hub::{HubStats, POLL_EVERY};
pub use inspect::{
    BlockingDetector, BlockingReport, DEFAULT_BLOCKING_THRESHOLD, Dump, GreenletInfo,
};
pub use local::GreenletLocal;
pub use signal::{SignalHandler, signal};
pub use task::{
    Builder, Greenlet, GreenletId, Outcome, WaitKind, current, current_name, joinall, killall,
    spawn, spawn_later,
};
pub use threadpool::{
    DEFAULT_BLOCKING_THREADS, blocking_threads, set_blocking_threads, spawn_blocking,
};
pub use time::{Elapsed, Timeout, idle, sleep, sleep_until, wait_all, with_timeout, yield_now};
pub use wait::{Iwait, Waitable, Waiter, iwait, wait};

pub use sylvan_runtime::stack::{
    DEFAULT_POOL_LIMIT, DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE,
};
pub use sylvan_runtime::{GreenletExit, is_unwind_payload};

/// Sets what this thread's hub does with greenlet failures nobody handled
/// (see [`ErrorPolicy`]; the default reports them).
pub fn set_error_policy(policy: ErrorPolicy) {
    // The old policy is dropped after the cell is released: a `Custom`
    // closure's captures may yield in their destructors, and a greenlet
    // that fails meanwhile needs the policy.
    let old = hub::hub().policy.replace(policy);
    drop(old);
}

/// A snapshot of this thread's live greenlets: id, name, state, what each
/// waits on and since when, spawn site and switch count. Print it for a
/// readable table.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// let g = sylvan::Builder::new()
///     .name("napper")
///     .spawn(|| sylvan::sleep(std::time::Duration::from_secs(60)))
///     .unwrap();
/// sylvan::yield_now();
/// let dump = sylvan::dump();
/// println!("{dump}");
/// assert!(dump.greenlets.iter().any(|i| i.name.as_deref() == Some("napper")));
/// g.kill();
/// ```
pub fn dump() -> Dump {
    hub::hub().dump()
}

/// This thread's hub counters.
pub fn stats() -> HubStats {
    hub::hub().stats()
}

/// Sets how many free stacks this thread's hub keeps for reuse (default
/// [`DEFAULT_POOL_LIMIT`]); stacks returned past the bound are unmapped, and
/// lowering it unmaps the excess at once. The hub keeps as many free
/// greenlet records (a few hundred bytes each) under the same bound.
pub fn set_stack_pool_limit(stacks: usize) {
    let hub = hub::hub();
    hub.pool.borrow_mut().set_limit(stacks);
    hub.records.set_limit(stacks);
}

/// Gives back the memory of the pooled free stacks without unmapping them
/// (each keeps its top page resident).
pub fn trim_stack_pool() {
    hub::hub().pool.borrow_mut().trim();
}
