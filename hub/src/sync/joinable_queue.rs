//! `JoinableQueue<T>`: a queue that knows when every item was processed.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::queue_core::{Fifo, Names, QueueCore, from_items, peek_methods, queue_methods};
use super::waitlist::{WaitList, wait_on};
use crate::hub::hub;
use crate::task::WaitKind;

const NAMES: Names = Names {
    get: "a joinable queue get",
    put: "a joinable queue put (the queue is full)",
};

const JOIN: WaitKind = WaitKind::Sync("a joinable queue join (unfinished items)");

/// A FIFO [`Queue`](super::Queue) that counts unfinished items, as gevent's
/// `JoinableQueue`: every item put raises the count, every
/// [`task_done`](JoinableQueue::task_done) lowers it, and
/// [`join`](JoinableQueue::join) parks until it is zero.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use sylvan::sync::JoinableQueue;
///
/// let q = Rc::new(JoinableQueue::unbounded());
/// for _ in 0..2 {
///     let q = q.clone();
///     sylvan::spawn(move || {
///         for job in q.iter() {
///             let _ = job * 2; // process it
///             q.task_done();
///         }
///     });
/// }
/// for job in 0..10 {
///     q.put(job).unwrap();
/// }
/// q.join(); // every job was taken and marked done
/// assert_eq!(q.unfinished(), 0);
/// q.close(); // the workers' loops end
/// ```
pub struct JoinableQueue<T> {
    core: QueueCore<T, Fifo<T>>,
    done: Cell<u64>,
    joiners: RefCell<WaitList<()>>,
}

impl<T> JoinableQueue<T> {
    /// A joinable queue that holds at most `capacity` items.
    pub fn bounded(capacity: usize) -> JoinableQueue<T> {
        JoinableQueue::with_core(QueueCore::new(Some(capacity), NAMES))
    }

    /// A joinable queue with no bound.
    pub fn unbounded() -> JoinableQueue<T> {
        JoinableQueue::with_core(QueueCore::new(None, NAMES))
    }

    fn with_core(core: QueueCore<T, Fifo<T>>) -> JoinableQueue<T> {
        JoinableQueue {
            core,
            done: Cell::new(0),
            joiners: RefCell::new(WaitList::new()),
        }
    }

    /// Items put and not yet marked done.
    pub fn unfinished(&self) -> u64 {
        self.core.accepted() - self.done.get()
    }

    /// Marks one item as processed; at zero unfinished items, wakes every
    /// greenlet in [`join`](JoinableQueue::join).
    ///
    /// # Panics
    ///
    /// When called more times than items were put.
    pub fn task_done(&self) {
        assert!(
            self.unfinished() > 0,
            "sylvan: JoinableQueue::task_done called more times than items were put"
        );
        self.done.set(self.done.get() + 1);
        if self.unfinished() == 0 && !self.joiners.borrow().is_empty() {
            self.joiners.borrow_mut().wake_all(hub());
        }
    }

    /// Parks until every item put so far is marked done. Once woken by
    /// the count reaching zero it returns, even if items were put again
    /// before it ran (as gevent's). Returns at once when the caller is
    /// unwinding (it cannot wait).
    pub fn join(&self) {
        self.join_until(None);
    }

    /// Like [`join`](JoinableQueue::join), for at most `timeout`; true when
    /// the count of unfinished items reached zero in time.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_until(crate::time::deadline_after(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> bool {
        if self.unfinished() == 0 {
            return true;
        }
        if std::thread::panicking() {
            return false;
        }
        // Woken when the count reached zero: done, even if items were put
        // again before this greenlet ran (as gevent's join returns).
        wait_on(&self.joiners, JOIN, deadline) || self.unfinished() == 0
    }
}

impl<T> Default for JoinableQueue<T> {
    /// An unbounded joinable queue.
    fn default() -> Self {
        JoinableQueue::unbounded()
    }
}

queue_methods!(JoinableQueue, []);
from_items!(JoinableQueue, []);
peek_methods!(JoinableQueue, []);
