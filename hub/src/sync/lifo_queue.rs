//! `LifoQueue<T>`: last in, first out.

use super::queue_core::{Lifo, Names, QueueCore, from_items, peek_methods, queue_methods};

const NAMES: Names = Names {
    get: "a LIFO queue get",
    put: "a LIFO queue put (the queue is full)",
};

/// A last-in, first-out queue (a stack) between greenlets, as gevent's
/// `LifoQueue`: [`get`](LifoQueue::get) takes the newest item.
///
/// Everything else is as on [`Queue`](super::Queue): bounded or unbounded,
/// FIFO among waiting greenlets, an item kept in the queue until a woken
/// getter takes the one `get` gives then (as in gevent), `close` and
/// iteration.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::sync::LifoQueue;
///
/// let q = LifoQueue::unbounded();
/// for i in 1..=3 {
///     q.put(i).unwrap();
/// }
/// assert_eq!(q.get(), Some(3));
/// assert_eq!(q.get(), Some(2));
/// ```
pub struct LifoQueue<T> {
    core: QueueCore<T, Lifo<T>>,
}

impl<T> LifoQueue<T> {
    /// A LIFO queue that holds at most `capacity` items. With a capacity of
    /// zero nothing is held: each item goes from a putter's hands to a
    /// getter, putters first come first served, as through a
    /// [`Channel`](super::Channel) (the order needs items to wait in the
    /// queue).
    pub fn bounded(capacity: usize) -> LifoQueue<T> {
        LifoQueue {
            core: QueueCore::new(Some(capacity), NAMES),
        }
    }

    /// A LIFO queue with no bound.
    pub fn unbounded() -> LifoQueue<T> {
        LifoQueue {
            core: QueueCore::new(None, NAMES),
        }
    }
}

impl<T> Default for LifoQueue<T> {
    /// An unbounded LIFO queue.
    fn default() -> Self {
        LifoQueue::unbounded()
    }
}

queue_methods!(LifoQueue, []);
from_items!(LifoQueue, []);
peek_methods!(LifoQueue, []);
