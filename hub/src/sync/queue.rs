//! `Queue<T>`: FIFO, bounded or unbounded.

use super::queue_core::{Fifo, Names, QueueCore, from_items, peek_methods, queue_methods};

const NAMES: Names = Names {
    get: "a queue get",
    put: "a queue put (the queue is full)",
};

/// A first-in, first-out queue between greenlets, bounded or unbounded, as
/// gevent's `Queue`.
///
/// [`get`](Queue::get) parks while it is empty; on a bounded queue
/// [`put`](Queue::put) parks while it is full, which applies back-pressure
/// to a fast producer. Waiting getters and putters are served in FIFO
/// order. As in gevent, an item stays in the queue until a getter takes it:
/// a put wakes the first waiting getter, which takes the next item when it
/// runs (a greenlet already running may get first; the woken getter then
/// waits again at the head of the line). A getter killed before it runs
/// takes nothing with it: items are never lost nor reordered.
///
/// Unlike gevent's, a get that makes room in a full queue moves the first
/// waiting putter's item in at once: that put is done (the putter returns
/// when it next runs), [`len`](Queue::len) stays at the bound, and a second
/// get takes the item without waiting. gevent moves it only when the
/// putter next runs. So a producer and a consumer on `bounded(1)` switch
/// once per item rather than twice.
///
/// [`close`](Queue::close) ends it: getters drain what is left and then
/// see `None`, which also ends a `for` loop over `&queue`.
///
/// `Queue::bounded(0)` is a rendezvous queue, like [`Channel`](super::Channel).
/// Share it with [`Rc`](std::rc::Rc).
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use sylvan::sync::Queue;
///
/// let q = Rc::new(Queue::bounded(2));
/// let producer = {
///     let q = q.clone();
///     sylvan::spawn(move || {
///         for i in 0..5 {
///             q.put(i).unwrap(); // parks while two items wait
///         }
///         q.close();
///     })
/// };
/// let got: Vec<i32> = q.iter().collect(); // until closed and drained
/// assert_eq!(got, [0, 1, 2, 3, 4]);
/// producer.join().unwrap();
/// ```
pub struct Queue<T> {
    core: QueueCore<T, Fifo<T>>,
}

impl<T> Queue<T> {
    /// A queue that holds at most `capacity` items; `bounded(0)` holds none
    /// (every put waits for a getter).
    pub fn bounded(capacity: usize) -> Queue<T> {
        Queue {
            core: QueueCore::new(Some(capacity), NAMES),
        }
    }

    /// A queue with no bound: `put` never waits.
    pub fn unbounded() -> Queue<T> {
        Queue {
            core: QueueCore::new(None, NAMES),
        }
    }
}

impl<T> Default for Queue<T> {
    /// An unbounded queue.
    fn default() -> Self {
        Queue::unbounded()
    }
}

queue_methods!(Queue, []);
from_items!(Queue, []);
peek_methods!(Queue, []);
