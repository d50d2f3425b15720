//! Coordination between greenlets: events, results, semaphores, a mutex,
//! queues and channels, with gevent's semantics.
//!
//! Every blocking call here parks only the calling greenlet; the hub runs
//! others meanwhile. The rules every primitive keeps:
//!
//! * **FIFO.** Waiters are served in the order they started waiting. A
//!   permit or the lock is handed straight to the first waiter, so no
//!   greenlet arriving later can take it first. A queue item stays in the
//!   queue until a getter takes it, as in gevent: a put wakes the first
//!   waiting getter, which takes the next item when it runs (a greenlet
//!   already running may get first; the woken getter then waits again at
//!   the head of the line).
//! * **Wake-ups queue one at a time.** A waiter woken goes to the back of
//!   the hub's ready queue when it is woken. gevent runs every waiter that
//!   one notification wakes from a single callback, so the orders differ
//!   around greenlets readied in between: two releases (or puts) in one
//!   turn with a greenlet spawned between them run it between the two
//!   waiters here, after both in gevent; and a permit that a woken waiter
//!   passes on reaches the next waiter behind the greenlets already ready,
//!   where gevent runs the whole chain first. Among the waiters the order
//!   is the same.
//! * **Nothing lost, nothing left behind.** A waiter that is killed or whose
//!   timeout expires while parked leaves no trace in the wait list; if it
//!   had already been handed a permit or the lock, or woken for an item,
//!   that passes on to the next waiter.
//! * **Timeouts** come in two forms: `*_timeout(d)` methods that return a
//!   value saying so, and [`with_timeout`](crate::with_timeout) /
//!   [`Timeout`](crate::Timeout) around any blocking call, which unwind it.
//! * **No switching while unwinding.** A greenlet never switches while it
//!   unwinds (std counts panics per thread), so a blocking call made from a
//!   destructor during a kill, timeout or panic never waits: waits and gets
//!   report "not ready" (`Event::wait` returns false, `Queue::get` returns
//!   `None`), a queue put is accepted past the bound, and `Mutex::lock` /
//!   `Semaphore::acquire`, which cannot return without the lock, abort the
//!   process with a message; destructors should use `try_lock` /
//!   `try_acquire`.
//! * **Sharing.** The types are plain values, `!Sync`: share one between
//!   greenlets with [`Rc`](std::rc::Rc) (which keeps it on its thread), as
//!   std types are shared with `Arc`. One owned outright may be moved to
//!   another thread (when its items are `Send`): a greenlet waiting on it
//!   borrows it, so a primitive that moves has no waiter on the old hub;
//!   for traffic between threads use [`mpsc`](crate::mpsc). None of them is poisoned by a kill or
//!   a panic. Do not hold a `RefCell` borrow (or a `std::sync::MutexGuard`)
//!   across a call that can park: other greenlets run meanwhile, and one
//!   that borrows the same cell panics (`BorrowMutError`). Copy out what
//!   you need first, or use [`Mutex`], whose guard may be held across
//!   parks.
//!
//! ```
//! # extern crate sylvan_hub as sylvan;
//! use std::rc::Rc;
//! use sylvan::sync::{Event, Queue};
//!
//! let jobs = Rc::new(Queue::bounded(4));
//! let start = Rc::new(Event::new());
//! let workers: Vec<_> = (0..3)
//!     .map(|_| {
//!         let (jobs, start) = (jobs.clone(), start.clone());
//!         sylvan::spawn(move || {
//!             start.wait();
//!             jobs.iter().map(|n: u64| n * n).sum::<u64>()
//!         })
//!     })
//!     .collect();
//! start.set();
//! for n in 1..=10 {
//!     jobs.put(n).unwrap();
//! }
//! jobs.close();
//! let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
//! assert_eq!(total, 385);
//! ```

mod async_result;
mod bounded_semaphore;
mod channel;
mod error;
mod event;
mod joinable_queue;
mod lifo_queue;
mod mutex;
mod priority_queue;
mod queue;
mod queue_core;
mod semaphore;
mod waitlist;

pub use async_result::AsyncResult;
pub use bounded_semaphore::BoundedSemaphore;
pub use channel::Channel;
pub use error::{
    AlreadySet, Closed, GetError, ReleaseError, SharedError, TryGetError, TryPutError,
};
pub use event::Event;
pub use joinable_queue::JoinableQueue;
pub use lifo_queue::LifoQueue;
pub use mutex::{Mutex, MutexGuard};
pub use priority_queue::PriorityQueue;
pub use queue::Queue;
pub use queue_core::Iter;
pub use semaphore::{Semaphore, SemaphoreGuard};

pub(crate) use waitlist::{WaitList, wait_on};
