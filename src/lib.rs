//! # sylvan: gevent-style green threads for Rust
//!
//! Write ordinary blocking code — `sleep`, `join`, a queue's `get`, a
//! socket's `read` — and run thousands of such tasks on one thread. Each
//! blocking call parks only its *greenlet*; a per-thread hub switches to
//! another one and comes back when the timer fires or the value arrives.
//! Greenlets are stackful (each has its own machine stack), so any depth of
//! ordinary Rust code can block, with no `async` colouring.
//!
//! The thread's own stack is the *main greenlet*. `spawn` only schedules:
//! spawned greenlets run when main blocks, exactly as in gevent.
//!
//! ```
//! use std::time::Duration;
//!
//! let workers: Vec<_> = (0..3u64)
//!     .map(|i| sylvan::spawn(move || {
//!         sylvan::sleep(Duration::from_millis(10 * (3 - i)));
//!         i * 10
//!     }))
//!     .collect();
//! // main blocks in join: the three greenlets run, sleeping concurrently.
//! let results: Vec<u64> = workers.into_iter().map(|g| g.join().unwrap()).collect();
//! assert_eq!(results, [0, 10, 20]);
//!
//! // kill unwinds the target where it is parked: destructors run.
//! let g = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(3600)));
//! sylvan::yield_now(); // let it start and park
//! g.kill();
//! assert!(g.join().unwrap_err().is_killed());
//!
//! // timeouts on anything
//! let r = sylvan::with_timeout(Duration::from_millis(5), || sylvan::sleep(Duration::from_secs(1)));
//! assert!(r.is_err());
//! ```
//!
//! ## Semantics worth knowing
//!
//! * A panic inside a greenlet is caught at its entry, becomes its outcome
//!   ([`Error::Panicked`]), and is reported once by the hub's
//!   [`ErrorPolicy`]; it never takes the hub or other greenlets down.
//! * `kill` and timeouts unwind with [`std::panic::resume_unwind`] (nothing is
//!   printed). They are thrown once: code that uses `catch_unwind` should
//!   re-raise payloads for which [`is_unwind_payload`] is true.
//! * A greenlet never switches out while it unwinds: blocking calls made by
//!   destructors during a kill or panic return at once (`sleep` returns,
//!   `join` gives [`Error::Unwinding`], `kill` does not wait, a queue get
//!   or a socket read that would wait reports so). Those that cannot return
//!   without what they wait for abort the process with a message instead
//!   (`Mutex::lock`, `Semaphore::acquire` and a full `Pool`'s `spawn`: use
//!   `try_lock` / `try_acquire` in destructors), and `spawn_blocking` and
//!   `os::wait_child` block the thread.
//! * If main blocks and nothing can ever wake it, the call panics with
//!   "would block forever: main is waiting on ...", never hangs.
//! * Built with `panic = "abort"`, kills of running greenlets and timeouts
//!   cannot unwind: they abort the process with a message saying so.
//! * At thread exit, greenlets still alive are killed (destructors run).

pub use sylvan_hub::*;

/// The greenlet core (stacks, switch, outcomes), for tools and tests.
pub use sylvan_runtime as runtime;

#[cfg(feature = "ureq")]
pub mod ureq;

/// The README's examples, compiled and run by `cargo test --doc`, so that
/// the quick start keeps working when pasted.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
