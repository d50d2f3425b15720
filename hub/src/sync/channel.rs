//! `Channel<T>`: a rendezvous between a putter and a getter.

use super::queue_core::{Fifo, Names, QueueCore, queue_methods};

const NAMES: Names = Names {
    get: "a channel get",
    put: "a channel put (waiting for a getter)",
};

/// A rendezvous channel, as gevent's `Channel`: it buffers nothing, so
/// [`put`](Channel::put) completes only when a getter takes the item, and
/// [`get`](Channel::get) waits for a putter. Waiting putters and getters
/// pair up in FIFO order.
///
/// A put always waits, its item in hand, until a getter takes it, as in
/// gevent; a getter already waiting is woken and takes it when it runs.
/// If that getter is killed first, the next getter in line is woken
/// instead. [`try_put`](Channel::try_put) never switches: it goes through
/// only while a getter waits for its item, which then waits in the channel
/// for that getter (for the next one if it is killed first, or for the
/// next `get`): items are never lost. So does a put made while its greenlet
/// unwinds, which cannot wait.
///
/// A get that finds a putter waiting takes its item at once, without
/// parking (gevent's `get` parks until the hub hands the item over); the
/// putter returns when it next runs.
///
/// ```
/// # extern crate sylvan_hub as sylvan;
/// use std::rc::Rc;
/// use sylvan::sync::Channel;
///
/// let ch = Rc::new(Channel::new());
/// let c = ch.clone();
/// let putter = sylvan::spawn(move || {
///     c.put("hello").unwrap(); // returns once main has taken it
///     "delivered"
/// });
/// sylvan::yield_now();
/// assert!(!putter.is_dead()); // nobody took it yet
/// assert_eq!(ch.get(), Some("hello"));
/// assert_eq!(putter.join().unwrap(), "delivered");
/// ```
pub struct Channel<T> {
    core: QueueCore<T, Fifo<T>>,
}

impl<T> Channel<T> {
    /// A channel.
    pub fn new() -> Channel<T> {
        Channel {
            core: QueueCore::new(Some(0), NAMES),
        }
    }
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Channel::new()
    }
}

queue_methods!(Channel, []);
