//! `PriorityQueue<T>`: smallest item first.

use super::queue_core::{Names, QueueCore, Smallest, from_items, peek_methods, queue_methods};

const NAMES: Names = Names {
    get: "a priority queue get",
    put: "a priority queue put (the queue is full)",
};

/// A queue that hands out its **smallest** item first, as gevent's
/// `PriorityQueue` (Python's `heapq`), unlike std's max-first
/// [`BinaryHeap`](std::collections::BinaryHeap). Use
/// [`Reverse`](std::cmp::Reverse) for largest first, and `(priority, item)`
/// tuples to attach data.
///
/// Everything else is as on [`Queue`](super::Queue): bounded or unbounded,
/// FIFO among waiting greenlets, an item kept in the queue until a woken
/// getter takes the one `get` gives then (as in gevent), `close` and
/// iteration.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use sylvan::sync::PriorityQueue;
///
/// let q = PriorityQueue::unbounded();
/// q.put((2, "write")).unwrap();
/// q.put((0, "urgent")).unwrap();
/// q.put((1, "read")).unwrap();
/// assert_eq!(q.get(), Some((0, "urgent")));
/// assert_eq!(q.get(), Some((1, "read")));
/// ```
pub struct PriorityQueue<T: Ord> {
    core: QueueCore<T, Smallest<T>>,
}

impl<T: Ord> PriorityQueue<T> {
    /// A priority queue that holds at most `capacity` items. With a
    /// capacity of zero nothing is held: each item goes from a putter's
    /// hands to a getter, putters first come first served, as through a
    /// [`Channel`](super::Channel) (the order needs items to wait in the
    /// queue).
    pub fn bounded(capacity: usize) -> PriorityQueue<T> {
        PriorityQueue {
            core: QueueCore::new(Some(capacity), NAMES),
        }
    }

    /// A priority queue with no bound.
    pub fn unbounded() -> PriorityQueue<T> {
        PriorityQueue {
            core: QueueCore::new(None, NAMES),
        }
    }
}

impl<T: Ord> Default for PriorityQueue<T> {
    /// An unbounded priority queue.
    fn default() -> Self {
        PriorityQueue::unbounded()
    }
}

queue_methods!(PriorityQueue, [: Ord]);
from_items!(PriorityQueue, [: Ord]);
peek_methods!(PriorityQueue, [+ Ord]);
