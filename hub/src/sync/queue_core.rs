//! The engine shared by every queue: `Queue`, `LifoQueue`, `PriorityQueue`,
//! `JoinableQueue` and `Channel` differ only in how the buffer orders items
//! and in its capacity (a channel is a queue of capacity zero).
//!
//! The state (buffer, waiting getters, waiting putters) sits in one
//! `RefCell`, borrowed once per operation and never across a park.
//!
//! The rules, gevent's, which keep waiters FIFO and lose no item:
//!
//! * An item stays in the queue until a getter takes it, as in gevent. A
//!   put with getters waiting buffers the item and wakes the first getter
//!   in line (at most one woken getter per buffered item); the getter takes
//!   the next item when it runs. A greenlet already running may get first,
//!   as in gevent: the woken getter then waits again, at the head of the
//!   line. So a getter killed or timed out before it ran takes nothing
//!   with it, and the items keep their order; the wake-up passes to the
//!   next getter in line.
//! * A put with no room parks the putter with its item in its slot. When a
//!   get makes room, the first waiting putter's item moves into the buffer
//!   (waking a getter as a put would) at once; gevent moves it when the
//!   putter next runs, which costs a second switch per item on a
//!   `bounded(1)` queue. So waiting putters imply no room.
//! * A rendezvous (capacity zero) has no room: a put parks with its item
//!   until a getter takes it (gevent's `Channel.put`), waking the first
//!   waiting getter if any; a get takes the first waiting putter's item. A
//!   `try_put` goes through only while a getter waits for it: its item then
//!   waits in the queue for the getter it woke (if that getter is killed
//!   before it runs, for the next one).
//! * A getter that finds nothing when it runs waits again in its place in
//!   line: before every getter that came after it.
//! * A putter whose wait ends (timeout, kill) before its item was taken
//!   takes the item back (the put failed); once taken, the put succeeded
//!   whatever happens to the putter afterwards.
//! * Called while the greenlet unwinds, a put that would wait accepts the
//!   item past the bound instead (nothing is lost, nothing switches); a get
//!   that would wait reports "empty".
//! * `close` wakes every waiter: getters find the buffer drained and see
//!   "closed"; putters get their item back with "closed".

use std::cell::{Cell, RefCell, RefMut};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Instant;

use super::error::{TryGetError, TryPutError};
use super::waitlist::{NodeKey, WaitList, wait_on};
use crate::hub::{TaskRef, Wake, Woke, hub};
use crate::task::WaitKind;

/// How a queue orders its buffered items.
pub(crate) trait Buffer<T>: Default {
    fn push(&mut self, v: T);
    fn pop(&mut self) -> Option<T>;
    /// The item `pop` would take.
    fn peek(&self) -> Option<&T>;
    fn len(&self) -> usize;
}

/// First in, first out.
pub(crate) struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Buffer<T> for Fifo<T> {
    #[inline]
    fn push(&mut self, v: T) {
        self.0.push_back(v)
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    #[inline]
    fn peek(&self) -> Option<&T> {
        self.0.front()
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
pub(crate) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Buffer<T> for Lifo<T> {
    #[inline]
    fn push(&mut self, v: T) {
        self.0.push(v)
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    #[inline]
    fn peek(&self) -> Option<&T> {
        self.0.last()
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first.
pub(crate) struct Smallest<T>(BinaryHeap<Reverse<T>>);

impl<T: Ord> Default for Smallest<T> {
    fn default() -> Self {
        Smallest(BinaryHeap::new())
    }
}

impl<T: Ord> Buffer<T> for Smallest<T> {
    #[inline]
    fn push(&mut self, v: T) {
        self.0.push(Reverse(v))
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(v)| v)
    }
    #[inline]
    fn peek(&self) -> Option<&T> {
        self.0.peek().map(|Reverse(v)| v)
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
}

struct State<T, B> {
    buf: B,
    /// Waiting getters, each with its place in line (a sequence number).
    getters: WaitList<u64>,
    /// Capacity zero: the items getters wait for are in putters' hands.
    rendezvous: bool,
    getter_seq: u64,
    putters: WaitList<Option<T>>,
    /// Items accepted so far (for `JoinableQueue`'s unfinished count).
    /// Counted under the state's borrow: a separate `Cell` next to the
    /// borrow flag invites the compiler to merge the two updates into one
    /// wide store that later loads cannot forward from.
    accepted: u64,
}

impl<T, B: Buffer<T>> State<T, B> {
    /// Items that count against the capacity.
    #[inline]
    fn held(&self) -> usize {
        self.buf.len()
    }

    /// Items getters may take now: those in the queue, and for a
    /// rendezvous those in waiting putters' hands.
    #[inline]
    fn takeable(&self) -> usize {
        if self.rendezvous {
            self.buf.len() + self.putters.len()
        } else {
            self.buf.len()
        }
    }

    /// A rendezvous has no room: a put goes through only while a getter
    /// waits for it, that is while the items getters may take are fewer
    /// than the getters woken for one or waiting in line.
    #[inline]
    fn rendezvous_full(&self) -> bool {
        self.takeable() >= self.getters.chosen() + self.getters.len()
    }

    /// The getter to wake for the items getters may take: the first in
    /// line, when fewer getters were woken (and have not run yet) than
    /// items wait.
    #[inline]
    fn getter_to_wake(&mut self) -> Option<TaskRef> {
        if self.getters.is_empty() || self.getters.chosen() >= self.takeable() {
            return None;
        }
        let key = self.getters.pop()?;
        Some(self.getters.task(key))
    }
}

/// Wakes the getter [`State::getter_to_wake`] chose, if any.
#[inline]
fn wake_getter(getter: Option<TaskRef>) {
    if let Some(g) = getter
        && let Some(hub) = crate::hub::try_hub()
    {
        hub.wake(g, Wake::Ready);
    }
}

/// A queue of capacity `cap` over the buffer `B`.
pub(crate) struct QueueCore<T, B> {
    /// The bound; `usize::MAX` for an unbounded queue too.
    cap: usize,
    /// Made with a bound (which may be `usize::MAX`).
    bounded: bool,
    closed: Cell<bool>,
    get_what: WaitKind,
    put_what: WaitKind,
    st: RefCell<State<T, B>>,
    /// Greenlets parked in `peek`: every one is woken when an item comes
    /// (they take nothing, so none of the rules above concern them).
    peekers: RefCell<WaitList<()>>,
}

impl<T, B: Buffer<T>> fmt::Debug for QueueCore<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Queue");
        d.field("len", &self.len());
        if let Some(cap) = self.capacity() {
            d.field("capacity", &cap);
        }
        d.field("closed", &self.closed.get())
            .field("getters", &self.getters())
            .field("putters", &self.putters())
            .finish()
    }
}

/// Names what a greenlet parked on a queue waits on.
pub(crate) struct Names {
    pub(crate) get: &'static str,
    pub(crate) put: &'static str,
}

impl<T, B: Buffer<T>> QueueCore<T, B> {
    /// A queue holding at most `cap` items; `None`: unbounded.
    pub(crate) fn new(cap: Option<usize>, names: Names) -> Self {
        let bounded = cap.is_some();
        let cap = cap.unwrap_or(usize::MAX);
        QueueCore {
            cap,
            bounded,
            closed: Cell::new(false),
            get_what: WaitKind::Sync(names.get),
            put_what: WaitKind::Sync(names.put),
            st: RefCell::new(State {
                buf: B::default(),
                getters: WaitList::new(),
                rendezvous: cap == 0,
                getter_seq: 0,
                putters: WaitList::new(),
                accepted: 0,
            }),
            peekers: RefCell::new(WaitList::new()),
        }
    }

    /// Wakes every greenlet parked in `peek`: an item came. Called after
    /// waking the getter the item is for, which goes first.
    #[inline]
    fn wake_peekers(&self) {
        if !self.peekers.borrow().is_empty() {
            self.wake_peekers_cold();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_peekers_cold(&self) {
        if let Some(hub) = crate::hub::try_hub() {
            self.peekers.borrow_mut().wake_all(hub);
        }
    }

    pub(crate) fn accepted(&self) -> u64 {
        self.st.borrow().accepted
    }

    /// Accepts `v` into the buffer under the caller's borrow and wakes the
    /// first waiting getter, if one waits for it, and the peekers. The
    /// caller has checked that there is room (or must not wait).
    #[inline]
    fn push_locked(&self, mut st: RefMut<'_, State<T, B>>, v: T) {
        st.buf.push(v);
        st.accepted += 1;
        let getter = st.getter_to_wake();
        drop(st);
        wake_getter(getter);
        self.wake_peekers();
    }

    /// Puts without waiting.
    #[inline]
    pub(crate) fn try_put(&self, v: T) -> Result<(), TryPutError<T>> {
        let st = self.st.borrow_mut();
        if self.closed.get() {
            return Err(TryPutError::Closed(v));
        }
        let full = if self.cap == 0 {
            st.rendezvous_full()
        } else {
            st.held() >= self.cap
        };
        if full {
            return Err(TryPutError::Full(v));
        }
        self.push_locked(st, v);
        Ok(())
    }

    /// Puts, waiting for room until `deadline` (forever when `None`).
    ///
    /// One borrow of the state from the check to the accept or the wait.
    /// A rendezvous always waits: its putter waits with its item until a
    /// getter takes it (gevent's `Channel.put`), waking one if any waits.
    #[inline]
    pub(crate) fn put(&self, v: T, deadline: Option<Instant>) -> Result<(), TryPutError<T>> {
        let st = self.st.borrow_mut();
        if self.closed.get() {
            return Err(TryPutError::Closed(v));
        }
        if st.held() < self.cap {
            self.push_locked(st, v);
            return Ok(());
        }
        self.put_slow(st, v, deadline)
    }

    // Inlined, like the park below it: each call level between the caller
    // and `Hub::park` is one more return the CPU mispredicts after a switch.
    #[inline(always)]
    fn put_slow(
        &self,
        mut st: RefMut<'_, State<T, B>>,
        v: T,
        deadline: Option<Instant>,
    ) -> Result<(), TryPutError<T>> {
        if std::thread::panicking() {
            // Cannot wait: accept it past the bound rather than lose it.
            self.push_locked(st, v);
            return Ok(());
        }
        let hub = hub();
        let key = st.putters.push(hub.current(), Some(v));
        // A rendezvous getter may wait for this very item, and a peeker
        // may look at it.
        let getter = if self.cap == 0 {
            st.getter_to_wake()
        } else {
            None
        };
        drop(st);
        wake_getter(getter);
        if self.cap == 0 {
            self.wake_peekers();
        }
        let guard = PutWaiting { core: self, key };
        loop {
            let woke = hub.park_until(self.put_what, deadline);
            let mut st = self.st.borrow_mut();
            if let Some(slot) = st.putters.take_chosen(key) {
                drop(st);
                std::mem::forget(guard);
                // Taken: done. Still in hand: the queue was closed.
                return match slot {
                    None => Ok(()),
                    Some(v) => Err(TryPutError::Closed(v)),
                };
            }
            if woke != Woke::Ready {
                let (_, slot) = st.putters.remove(key);
                drop(st);
                std::mem::forget(guard);
                return Err(TryPutError::Full(slot.expect("still in hand")));
            }
        }
    }

    /// Takes an item under the caller's borrow: from the buffer (refilling
    /// it from a waiting putter) or, for a rendezvous, from a putter's
    /// hands; else "closed" or "empty".
    #[inline]
    fn take_locked(&self, mut st: RefMut<'_, State<T, B>>) -> Result<T, TryGetError> {
        if let Some(v) = st.buf.pop() {
            if !st.putters.is_empty() {
                self.refill(st);
            }
            return Ok(v);
        }
        if !st.putters.is_empty() {
            return Ok(self.take_from_putter(st));
        }
        if self.closed.get() {
            Err(TryGetError::Closed)
        } else {
            Err(TryGetError::Empty)
        }
    }

    /// Room again: moves the first waiting putter's item into the buffer.
    #[inline(never)]
    fn refill(&self, mut st: RefMut<'_, State<T, B>>) {
        if st.held() >= self.cap {
            return;
        }
        if let Some((item, putter)) = st.putters.take_first() {
            st.accepted += 1;
            st.buf.push(item);
            let getter = st.getter_to_wake();
            drop(st);
            hub().wake(putter, Wake::Ready);
            wake_getter(getter);
            self.wake_peekers();
        }
    }

    /// A get from an empty buffer with putters waiting, which only a
    /// rendezvous has (a bounded queue's putters wait for room, so its
    /// buffer is full): takes the first putter's item from its hands.
    #[inline(never)]
    fn take_from_putter(&self, mut st: RefMut<'_, State<T, B>>) -> T {
        let (item, task) = st.putters.take_first().expect("a waiting putter");
        st.accepted += 1;
        drop(st);
        hub().wake(task, Wake::Ready);
        item
    }

    /// Gets without waiting.
    #[inline]
    pub(crate) fn try_get(&self) -> Result<T, TryGetError> {
        self.take_locked(self.st.borrow_mut())
    }

    /// Gets, waiting for an item until `deadline` (forever when `None`).
    #[inline]
    pub(crate) fn get(&self, deadline: Option<Instant>) -> Result<T, TryGetError> {
        match self.try_get() {
            Err(TryGetError::Empty) => self.get_slow(deadline),
            r => r,
        }
    }

    /// Gets, waiting as long as it takes: `None` once closed and drained
    /// (or when it cannot wait because the caller unwinds).
    #[inline]
    pub(crate) fn get_or_end(&self) -> Option<T> {
        self.get(None).ok()
    }

    // Inlined for the same reason as `put_slow`.
    #[inline(always)]
    fn get_slow(&self, deadline: Option<Instant>) -> Result<T, TryGetError> {
        if std::thread::panicking() {
            return Err(TryGetError::Empty);
        }
        let hub = hub();
        let mut place = None;
        loop {
            let key = {
                let mut st = self.st.borrow_mut();
                match place {
                    // Woken for an item another greenlet took first: back
                    // in its place in line.
                    Some(seq) => st.getters.push_sorted(hub.current(), seq),
                    None => {
                        st.getter_seq += 1;
                        let seq = st.getter_seq;
                        place = Some(seq);
                        st.getters.push(hub.current(), seq)
                    }
                }
            };
            let guard = GetWaiting { core: self, key };
            // Chosen: the state stays borrowed from the check to the take.
            let chosen = loop {
                let woke = hub.park_until(self.get_what, deadline);
                let mut st = self.st.borrow_mut();
                if st.getters.take_chosen(key).is_some() {
                    break Some(st);
                }
                if woke != Woke::Ready {
                    break st.getters.remove(key).0.then_some(st);
                }
            };
            std::mem::forget(guard);
            let Some(st) = chosen else {
                return Err(TryGetError::Empty);
            };
            // Woken for an item (or by `close`: drain what is left, then
            // see "closed").
            match self.take_locked(st) {
                Err(TryGetError::Empty) => {}
                r => return r,
            }
        }
    }

    /// A clone of the item a get would take now: the first in the buffer
    /// or, for a rendezvous, in the first waiting putter's hands.
    pub(crate) fn try_peek(&self) -> Result<T, TryGetError>
    where
        T: Clone,
    {
        let st = self.st.borrow();
        let front = match st.buf.peek() {
            Some(v) => Some(v),
            None if self.cap == 0 => st.putters.front().and_then(Option::as_ref),
            None => None,
        };
        match front {
            Some(v) => {
                // `clone` runs while the queue is borrowed: were it to
                // switch, other greenlets would find the queue borrowed.
                let _no_switch = crate::hub::try_hub().map(|h| h.no_switch(PEEK_CLONE));
                Ok(v.clone())
            }
            None if self.closed.get() => Err(TryGetError::Closed),
            None => Err(TryGetError::Empty),
        }
    }

    /// [`try_peek`](Self::try_peek), waiting for an item until `deadline`
    /// (forever when `None`).
    pub(crate) fn peek(&self, deadline: Option<Instant>) -> Result<T, TryGetError>
    where
        T: Clone,
    {
        loop {
            match self.try_peek() {
                Err(TryGetError::Empty) => {}
                r => return r,
            }
            if std::thread::panicking() {
                return Err(TryGetError::Empty);
            }
            if !wait_on(&self.peekers, PEEK, deadline) {
                // Out of time: one last look (an item may have come with
                // the deadline).
                return self.try_peek();
            }
        }
    }

    pub(crate) fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let hub = hub();
        let mut st = self.st.borrow_mut();
        st.getters.wake_all(hub);
        self.peekers.borrow_mut().wake_all(hub);
        // Putters keep their items in their slots: they get them back.
        st.putters.wake_all(hub);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn len(&self) -> usize {
        self.st.borrow().buf.len()
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.bounded.then_some(self.cap)
    }

    pub(crate) fn is_full(&self) -> bool {
        let st = self.st.borrow();
        if self.cap == 0 {
            st.rendezvous_full()
        } else {
            st.held() >= self.cap
        }
    }

    pub(crate) fn getters(&self) -> usize {
        self.st.borrow().getters.len()
    }

    pub(crate) fn putters(&self) -> usize {
        self.st.borrow().putters.len()
    }
}

/// Settles a putter whose wait was unwound (kill, timeout): removes its
/// node; its item, if still in the slot, was never accepted and is dropped
/// with the putter.
struct PutWaiting<'a, T, B: Buffer<T>> {
    core: &'a QueueCore<T, B>,
    key: NodeKey,
}

impl<T, B: Buffer<T>> Drop for PutWaiting<'_, T, B> {
    fn drop(&mut self) {
        let (_, item) = self.core.st.borrow_mut().putters.remove(self.key);
        // Dropped here, after the borrow ended: T's destructor may be
        // arbitrary code.
        drop(item);
    }
}

/// What a greenlet parked in `peek` waits on.
const PEEK: WaitKind = WaitKind::Sync("a queue peek");

/// Where a switch is refused (see `try_peek`).
const PEEK_CLONE: &str = "the item's `clone` in a queue's `peek`";

/// Settles a getter whose wait was unwound (kill, timeout): removes its
/// node; if it had been woken for an item, wakes the next getter in line
/// instead.
struct GetWaiting<'a, T, B: Buffer<T>> {
    core: &'a QueueCore<T, B>,
    key: NodeKey,
}

impl<T, B: Buffer<T>> Drop for GetWaiting<'_, T, B> {
    fn drop(&mut self) {
        let mut st = self.core.st.borrow_mut();
        let (chosen, _) = st.getters.remove(self.key);
        if chosen {
            // Woken for an item it will not take: the next getter in line
            // is woken instead.
            let getter = st.getter_to_wake();
            drop(st);
            wake_getter(getter);
        }
    }
}

/// Lets one iterator type serve every queue.
pub(crate) trait Source<T> {
    fn next_item(&self) -> Option<T>;
}

impl<T, B: Buffer<T>> Source<T> for QueueCore<T, B> {
    fn next_item(&self) -> Option<T> {
        self.get_or_end()
    }
}

/// Iterates over a queue's items, parking for each, until the queue is
/// closed and drained (from `iter()` on any queue or channel, or a `for`
/// loop over `&queue`).
pub struct Iter<'a, T> {
    pub(crate) src: &'a dyn Source<T>,
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.src.next_item()
    }
}

/// The methods every queue type shares, with their docs.
macro_rules! queue_methods {
    ($Q:ident, [$($bound:tt)*]) => {
        impl<T $($bound)*> $Q<T> {
            /// Puts `item`, parking the calling greenlet (FIFO among putters)
            /// while there is no room: for a channel, until a getter takes it.
            /// With getters waiting, the first one is woken and takes the
            /// next item when it runs (as in gevent, the item stays in the
            /// queue until then).
            ///
            /// Called while the greenlet unwinds (from a destructor during a
            /// kill, timeout or panic), it cannot wait: the item is accepted
            /// past the bound instead, so it is never lost.
            ///
            /// # Errors
            ///
            /// [`Closed`](crate::sync::Closed) with the item when the queue
            /// is closed, or is closed while this put waits.
            #[inline]
            pub fn put(&self, item: T) -> Result<(), $crate::sync::Closed<T>> {
                match self.core.put(item, None) {
                    Ok(()) => Ok(()),
                    Err(e) => Err($crate::sync::Closed(e.into_inner())),
                }
            }

            /// Puts `item` if there is room now (for a channel: if a getter
            /// is waiting), without waiting.
            ///
            /// # Errors
            ///
            /// [`TryPutError::Full`](crate::sync::TryPutError::Full) or
            /// [`TryPutError::Closed`](crate::sync::TryPutError::Closed),
            /// with the item.
            #[inline]
            pub fn try_put(&self, item: T) -> Result<(), $crate::sync::TryPutError<T>> {
                self.core.try_put(item)
            }

            /// Like [`put`](Self::put), waiting at most `timeout` for room.
            ///
            /// # Errors
            ///
            /// [`TryPutError::Full`](crate::sync::TryPutError::Full) with
            /// the item when there was no room in time,
            /// [`TryPutError::Closed`](crate::sync::TryPutError::Closed) when
            /// the queue is closed.
            pub fn put_timeout(
                &self,
                item: T,
                timeout: std::time::Duration,
            ) -> Result<(), $crate::sync::TryPutError<T>> {
                self.core.put(item, crate::time::deadline_after(timeout))
            }

            /// Takes the next item, parking the calling greenlet (FIFO among
            /// getters) while there is none. `None` once the queue is closed
            /// and drained.
            ///
            /// Called while the greenlet unwinds, it cannot wait: `None` when
            /// nothing is there.
            #[inline]
            pub fn get(&self) -> Option<T> {
                self.core.get_or_end()
            }

            /// Takes the next item if there is one now, without waiting.
            ///
            /// # Errors
            ///
            /// [`TryGetError::Empty`](crate::sync::TryGetError::Empty), or
            /// [`TryGetError::Closed`](crate::sync::TryGetError::Closed) when
            /// closed and drained.
            #[inline]
            pub fn try_get(&self) -> Result<T, $crate::sync::TryGetError> {
                self.core.try_get()
            }

            /// Like [`get`](Self::get), waiting at most `timeout`.
            ///
            /// # Errors
            ///
            /// [`TryGetError::Empty`](crate::sync::TryGetError::Empty) when
            /// no item came in time,
            /// [`TryGetError::Closed`](crate::sync::TryGetError::Closed) when
            /// closed and drained.
            pub fn get_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> Result<T, $crate::sync::TryGetError> {
                self.core.get(crate::time::deadline_after(timeout))
            }

            /// Closes it: later puts fail with the item handed back, putters
            /// waiting now get theirs back, and getters drain what is
            /// buffered, then see the end (`None`). Closing twice does
            /// nothing.
            pub fn close(&self) {
                self.core.close()
            }

            /// True once [`close`](Self::close) was called.
            pub fn is_closed(&self) -> bool {
                self.core.is_closed()
            }

            /// Items in the queue now, including those a woken getter will
            /// take when it runs (as gevent's `qsize`), not counting items
            /// in waiting putters' hands.
            pub fn len(&self) -> usize {
                self.core.len()
            }

            /// True when no item is in the queue (see [`len`](Self::len)).
            pub fn is_empty(&self) -> bool {
                self.core.len() == 0
            }

            /// True when a `try_put` would fail for lack of room (a `put`
            /// would wait). With capacity zero, as a `Channel`, it is false
            /// while a getter waits for an item, yet a `put` still waits
            /// until a getter has taken its item.
            pub fn is_full(&self) -> bool {
                self.core.is_full()
            }

            /// The bound, `None` when unbounded.
            pub fn capacity(&self) -> Option<usize> {
                self.core.capacity()
            }

            /// Greenlets parked in [`get`](Self::get) right now.
            pub fn getters(&self) -> usize {
                self.core.getters()
            }

            /// Greenlets parked in [`put`](Self::put) right now.
            pub fn putters(&self) -> usize {
                self.core.putters()
            }

            /// Iterates over the items, parking for each, until the queue is
            /// closed and drained.
            pub fn iter(&self) -> $crate::sync::Iter<'_, T> {
                $crate::sync::Iter { src: &self.core }
            }
        }

        impl<'a, T $($bound)*> IntoIterator for &'a $Q<T> {
            type Item = T;
            type IntoIter = $crate::sync::Iter<'a, T>;
            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }

        impl<T $($bound)*> std::fmt::Debug for $Q<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.core, f)
            }
        }
    };
}

pub(crate) use queue_methods;

/// `peek`, `try_peek` and `peek_timeout`, for the queues that have them (not
/// [`Channel`](super::Channel), whose items are in putters' hands).
macro_rules! peek_methods {
    ($Q:ident, [$($bound:tt)*]) => {
        impl<T: Clone $($bound)*> $Q<T> {
            /// A clone of the item [`get`](Self::get) would take next, left
            /// in the queue, parking the calling greenlet while there is
            /// none (gevent's `Queue.peek`). `None` once the queue is closed
            /// and drained.
            ///
            /// Each greenlet parked here is woken by the next item that
            /// comes, after the getter that item wakes: when that getter
            /// takes it first, the peeker waits again. The clone is made
            /// while the queue is borrowed: `T::clone` must not use this
            /// queue, nor block (a clone that waits for anything panics,
            /// in the peeking greenlet, saying so).
            /// Called while the greenlet unwinds, it cannot wait: `None`
            /// when nothing is there.
            pub fn peek(&self) -> Option<T> {
                self.core.peek(None).ok()
            }

            /// Like [`peek`](Self::peek), without waiting.
            ///
            /// # Errors
            ///
            /// [`TryGetError::Empty`](crate::sync::TryGetError::Empty), or
            /// [`TryGetError::Closed`](crate::sync::TryGetError::Closed) when
            /// closed and drained.
            pub fn try_peek(&self) -> Result<T, $crate::sync::TryGetError> {
                self.core.try_peek()
            }

            /// Like [`peek`](Self::peek), waiting at most `timeout`.
            ///
            /// # Errors
            ///
            /// [`TryGetError::Empty`](crate::sync::TryGetError::Empty) when
            /// no item came in time,
            /// [`TryGetError::Closed`](crate::sync::TryGetError::Closed) when
            /// closed and drained.
            pub fn peek_timeout(
                &self,
                timeout: std::time::Duration,
            ) -> Result<T, $crate::sync::TryGetError> {
                self.core.peek(crate::time::deadline_after(timeout))
            }
        }
    };
}

pub(crate) use peek_methods;

/// `FromIterator` and `From<Vec<T>>` for the queues that can be unbounded:
/// a new unbounded queue holding the items (gevent's `Queue(items=...)`).
macro_rules! from_items {
    ($Q:ident, [$($bound:tt)*]) => {
        impl<T $($bound)*> FromIterator<T> for $Q<T> {
            /// An unbounded queue holding the items, in the order the
            /// queue gives them out.
            fn from_iter<I: IntoIterator<Item = T>>(items: I) -> $Q<T> {
                let q = $Q::unbounded();
                for item in items {
                    // An unbounded queue nobody has closed takes every item.
                    let _ = q.try_put(item);
                }
                q
            }
        }

        impl<T $($bound)*> From<Vec<T>> for $Q<T> {
            /// An unbounded queue holding the items, as `collect` makes it.
            fn from(items: Vec<T>) -> $Q<T> {
                items.into_iter().collect()
            }
        }
    };
}

pub(crate) use from_items;
