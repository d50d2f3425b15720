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
//! ## Where things are
//!
//! | need | items |
//! |---|---|
//! | start, wait for and stop greenlets | [`spawn`], [`spawn_later`], [`Builder`] (name, stack size), [`Greenlet`] (`join`, `wait`, `kill`, `link*`), [`joinall`], [`killall`], [`wait_all`] |
//! | time | [`sleep`], [`yield_now`], [`Timeout`] (a guard), [`with_timeout`] -> `Result<T, `[`Elapsed`]`>` |
//! | wait for several things | [`wait`], [`iwait`] over [`Waitable`]s |
//! | coordinate | [`sync`]: `Event`, `AsyncResult`, `Semaphore`, `BoundedSemaphore`, `Mutex`, `Queue` and its kinds, `Channel` |
//! | bound concurrency | [`pool`]: `Pool`, `Group` (`spawn`, `map`, `imap`, `imap_unordered`) |
//! | sockets | [`net`]: `TcpListener`, `TcpStream`, `UdpSocket`, Unix sockets, `StreamServer` |
//! | pipes, child processes, other descriptors | [`os`] |
//! | blocking calls and other threads | [`spawn_blocking`], [`Handle`], [`mpsc`] |
//! | per-greenlet values | [`greenlet_local!`], [`GreenletLocal`] |
//! | failures | [`Error`], [`ErrorPolicy`] and [`set_error_policy`] |
//! | looking inside | [`dump`], [`stats`], [`BlockingDetector`], [`signal`] |
//! | HTTP | `sylvan::ureq` (with the `ureq` feature): ureq 3 over sylvan sockets |
//!
//! ## Coming from gevent
//!
//! * There is no monkey-patching. Only sylvan's own calls park a greenlet:
//!   [`std::thread::sleep`], a [`std::net`] socket or a blocking library
//!   call blocks the whole thread, every greenlet with it. Use [`sleep`],
//!   [`net`], or run the call on a thread with [`spawn_blocking`]
//!   ([`BlockingDetector`] names greenlets that hold the thread too long).
//! * Greenlets run only while main blocks. A program that spawns and then
//!   returns from `main` runs nothing: end `main` by blocking on what it
//!   waits for (`join`, a pool's `join`) or with [`wait_all`]`(None)`, gevent's
//!   `gevent.wait()`.
//! * A timeout is a value where it is caught: [`with_timeout`] returns
//!   `Err(Elapsed)`; socket timeouts return an `io::Error` of kind
//!   `TimedOut` (where `std` on Linux says `WouldBlock`); and a
//!   [`Timeout`] guard's expiry unwinds the greenlet that started it:
//!   uncaught, it ends that greenlet with [`Error::TimedOut`] (and fires
//!   its `link_exception` callbacks).
//! * Exceptions are `Result`s: `join` returns `Err(`[`Error`]`)` telling a
//!   kill, a panic (with its message) and a timeout apart.
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
