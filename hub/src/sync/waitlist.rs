//! The FIFO wait list every primitive parks its waiters on.
//!
//! A doubly linked list threaded through a [`Slab`], so that registering,
//! choosing the first waiter and removing any waiter are O(1), and the slab's
//! free slots are reused: a wait allocates nothing once the list has grown
//! to its working size. The list lives in the primitive (hub-side memory),
//! never on a greenlet's stack.
//!
//! A node goes through two states:
//!
//! * **linked**: the greenlet is waiting in line.
//! * **chosen**: [`WaitList::pop`] took it out of the line (the first
//!   waiter): what it waited for is now its (a permit, the lock, a wake-up
//!   to take an item), or, through [`WaitList::take_first`], a putter's
//!   item was taken from its slot. The node stays in the slab, unlinked,
//!   until its owner removes it, so the owner can tell "I was chosen" from
//!   "I timed out".
//!
//! The waiter itself always removes its node ([`WaitList::remove`]), from a
//! guard whose `Drop` also runs when the greenlet is killed or a timeout
//! unwinds it while parked. A guard that finds its node *chosen* but its
//! owner leaving passes what it was handed on to the next waiter: that is
//! how no permit, lock or item is lost.

use std::cell::RefCell;
use std::fmt;
use std::time::Instant;

use slab::Slab;

use crate::hub::{Hub, TaskRef, Wake, Woke, hub};
use crate::task::WaitKind;
use crate::wait::Waiter;

const NIL: u32 = u32::MAX;

/// The key of a node: stable until the node is removed.
pub(crate) type NodeKey = u32;

struct Node<S> {
    task: TaskRef,
    prev: u32,
    next: u32,
    linked: bool,
    slot: S,
}

/// A FIFO list of parked greenlets, each with a slot `S` for what a waker
/// hands it.
pub(crate) struct WaitList<S> {
    nodes: Slab<Node<S>>,
    head: u32,
    tail: u32,
    linked: usize,
}

impl<S> fmt::Debug for WaitList<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitList")
            .field("waiting", &self.linked)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl<S> Default for WaitList<S> {
    fn default() -> Self {
        WaitList::new()
    }
}

impl<S> WaitList<S> {
    pub(crate) const fn new() -> WaitList<S> {
        WaitList {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
            linked: 0,
        }
    }

    /// True when nobody waits in line (chosen nodes not counted).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.linked == 0
    }

    /// Greenlets waiting in line.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.linked
    }

    /// True while some waiter was chosen and woken but has not run yet to
    /// remove its node.
    #[inline]
    pub(crate) fn has_chosen(&self) -> bool {
        self.nodes.len() > self.linked
    }

    /// Waiters chosen and woken that have not run yet to remove their node.
    #[inline]
    pub(crate) fn chosen(&self) -> usize {
        self.nodes.len() - self.linked
    }

    /// Puts `task` at the end of the line with `slot`.
    #[inline(always)]
    pub(crate) fn push(&mut self, task: TaskRef, slot: S) -> NodeKey {
        let tail = self.tail;
        let key = self.nodes.insert(Node {
            task,
            prev: tail,
            next: NIL,
            linked: true,
            slot,
        });
        assert!(
            key < NIL as usize,
            "sylvan: too many waiters on one primitive"
        );
        let key = key as NodeKey;
        if tail == NIL {
            self.head = key;
        } else {
            self.nodes[tail as usize].next = key;
        }
        self.tail = key;
        self.linked += 1;
        key
    }

    /// Chooses the first waiter: takes it out of the line (its node stays
    /// until its owner removes it). The caller wakes [`task`](Self::task);
    /// [`take_first`](Self::take_first) also takes the item in its slot.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NodeKey> {
        let key = self.head;
        if key == NIL {
            return None;
        }
        let node = &mut self.nodes[key as usize];
        node.linked = false;
        let next = node.next;
        self.head = next;
        if next == NIL {
            self.tail = NIL;
        } else {
            self.nodes[next as usize].prev = NIL;
        }
        self.linked -= 1;
        Some(key)
    }

    /// Removes a node, chosen or not: returns whether it had been chosen,
    /// and its slot.
    #[inline]
    pub(crate) fn remove(&mut self, key: NodeKey) -> (bool, S) {
        let chosen = !self.nodes[key as usize].linked;
        if !chosen {
            self.unlink(key);
        }
        (chosen, self.nodes.remove(key as usize).slot)
    }

    /// Chooses the first waiter and wakes it; true if there was one.
    #[inline]
    pub(crate) fn pop_wake(&mut self, hub: &Hub) -> bool {
        match self.pop() {
            Some(k) => {
                hub.wake(self.task(k), Wake::Ready);
                true
            }
            None => false,
        }
    }

    /// Chooses and wakes every waiter in line, first to last.
    pub(crate) fn wake_all(&mut self, hub: &Hub) {
        while self.pop_wake(hub) {}
    }

    /// Takes a node out of the line (not chosen: leaving).
    fn unlink(&mut self, key: NodeKey) {
        let node = &mut self.nodes[key as usize];
        debug_assert!(node.linked);
        node.linked = false;
        let (prev, next) = (node.prev, node.next);
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        self.linked -= 1;
    }

    /// The slot of the first waiter in line.
    pub(crate) fn front(&self) -> Option<&S> {
        (self.head != NIL).then(|| &self.nodes[self.head as usize].slot)
    }

    /// The greenlet of a node.
    #[inline]
    pub(crate) fn task(&self, key: NodeKey) -> TaskRef {
        self.nodes[key as usize].task
    }

    /// True while the node waits in line (not chosen yet).
    #[inline]
    pub(crate) fn is_linked(&self, key: NodeKey) -> bool {
        self.nodes[key as usize].linked
    }

    /// Removes a node if it was chosen, returning its slot; `None` (the
    /// node stays) while it still waits in line.
    #[inline]
    pub(crate) fn take_chosen(&mut self, key: NodeKey) -> Option<S> {
        if self.nodes[key as usize].linked {
            None
        } else {
            Some(self.nodes.remove(key as usize).slot)
        }
    }
}

/// Parks the current greenlet until `still_waiting` turns false (its node
/// was chosen: true) or `deadline` passes while it still waits (false).
///
/// Wake-ups that leave it waiting (spurious ones) park it again, in the same
/// place in line. Unwinds when the greenlet is killed or a `Timeout` expires:
/// the caller's guard settles the node. The caller has checked that it is
/// not unwinding (so the park is never refused).
#[inline]
pub(crate) fn park_until_chosen(
    hub: &Hub,
    what: WaitKind,
    deadline: Option<Instant>,
    still_waiting: impl Fn() -> bool,
) -> bool {
    loop {
        let woke = hub.park_until(what, deadline);
        if !still_waiting() {
            return true;
        }
        if woke != Woke::Ready {
            return false;
        }
    }
}

/// Parks the current greenlet in `list` until a waker chooses it (true) or
/// `deadline` passes (false). For lists that hand nothing over (events,
/// joins): the node is removed however the wait ends, unwinding included.
/// The caller has checked that it is not unwinding.
pub(crate) fn wait_on(
    list: &RefCell<WaitList<()>>,
    what: WaitKind,
    deadline: Option<Instant>,
) -> bool {
    let hub = hub();
    let key = list.borrow_mut().push(hub.current(), ());
    let _registered = Registered { list, key };
    park_until_chosen(hub, what, deadline, || list.borrow().is_linked(key))
}

/// [`Waitable`](crate::Waitable) registrations kept in a primitive's own
/// wait list (events, async results, semaphores): a node in line, which the
/// wake-up that fires it chooses. Returns the token for [`unwatch`].
pub(crate) fn watch(list: &RefCell<WaitList<()>>, waiter: Waiter) -> usize {
    list.borrow_mut().push(waiter.task(), ()) as usize
}

/// Removes a [`watch`] registration, fired or not.
pub(crate) fn unwatch(list: &RefCell<WaitList<()>>, token: usize) {
    list.borrow_mut().remove(token as NodeKey);
}

/// Whether a [`watch`] registration was chosen by a wake-up (even if the
/// primitive is no longer ready).
pub(crate) fn fired(list: &RefCell<WaitList<()>>, token: usize) -> bool {
    !list.borrow().is_linked(token as NodeKey)
}

/// A wait that finds its primitive ready already: when greenlets that the
/// primitive's last wake-up chose have not run yet, yields once so that
/// they go first (they are on the ready queue), as gevent does (its issue
/// 1520): the greenlets a `set` releases run in the order they began
/// waiting, before a later waiter. Not on the hub, nor while unwinding.
#[inline]
pub(crate) fn let_notified_run_first(list: &RefCell<WaitList<()>>) {
    if list.borrow().has_chosen() {
        yield_to_notified();
    }
}

#[cold]
#[inline(never)]
fn yield_to_notified() {
    if !hub().on_hub() && !std::thread::panicking() {
        crate::yield_now();
    }
}

struct Registered<'a> {
    list: &'a RefCell<WaitList<()>>,
    key: NodeKey,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.list.borrow_mut().remove(self.key);
    }
}

/// What a lock or permit acquisition does when it would have to wait but
/// the calling greenlet is unwinding (a destructor running during a kill,
/// timeout or panic): it cannot switch, and it cannot return without the
/// lock, so it stops the process with a message that says why.
#[cold]
#[inline(never)]
pub(crate) fn cannot_wait_while_unwinding(what: &str) -> ! {
    stderr!(
        "sylvan: {what} would have to wait, but the calling greenlet is unwinding (a destructor \
         running during a kill, timeout or panic) and a greenlet never switches while it \
         unwinds; use the try_* variant in destructors. Aborting."
    );
    std::process::abort()
}

impl<S: Ord> WaitList<S> {
    /// Puts `task` in line before the first waiter whose slot is greater
    /// than `slot` (at the end if none is): for a waiter that was chosen,
    /// found nothing left when it ran, and goes back to its place in a
    /// line ordered by arrival.
    ///
    /// The place is searched from both ends at once, a step from each in
    /// turn: many waiters going back to places near either end (all of a
    /// line woken and outrun, or one early waiter among many) cost a few
    /// steps each, not a walk of the whole line.
    pub(crate) fn push_sorted(&mut self, task: TaskRef, slot: S) -> NodeKey {
        let (mut fwd, mut back) = (self.head, self.tail);
        let next = loop {
            // From the head: the first waiter whose slot is greater.
            if fwd == NIL || self.nodes[fwd as usize].slot > slot {
                break fwd;
            }
            fwd = self.nodes[fwd as usize].next;
            // From the tail: the last whose slot is not; the place is after it.
            if back == NIL {
                break self.head;
            }
            if self.nodes[back as usize].slot <= slot {
                break self.nodes[back as usize].next;
            }
            back = self.nodes[back as usize].prev;
        };
        if next == NIL {
            return self.push(task, slot);
        }
        let prev = self.nodes[next as usize].prev;
        let key = self.nodes.insert(Node {
            task,
            prev,
            next,
            linked: true,
            slot,
        });
        assert!(
            key < NIL as usize,
            "sylvan: too many waiters on one primitive"
        );
        let key = key as NodeKey;
        self.nodes[next as usize].prev = key;
        match prev {
            NIL => self.head = key,
            p => self.nodes[p as usize].next = key,
        }
        self.linked += 1;
        key
    }
}

impl<T> WaitList<Option<T>> {
    /// Chooses the first waiter and takes the item from its slot; returns
    /// the item and the greenlet to wake.
    #[inline]
    pub(crate) fn take_first(&mut self) -> Option<(T, TaskRef)> {
        let key = self.pop()?;
        let node = &mut self.nodes[key as usize];
        let v = node
            .slot
            .take()
            .expect("sylvan: a waiting putter holds its item");
        Some((v, node.task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: u64) -> TaskRef {
        TaskRef { key: 0, id }
    }

    #[test]
    fn fifo_pop_and_remove_from_the_middle() {
        let mut l = WaitList::new();
        let a = l.push(r(1), 'a');
        let b = l.push(r(2), 'b');
        let c = l.push(r(3), 'c');
        assert_eq!(l.len(), 3);
        assert_eq!(l.remove(b), (false, 'b'));
        assert_eq!(l.pop(), Some(a));
        assert!(!l.is_linked(a));
        assert_eq!(l.remove(a), (true, 'a'));
        let d = l.push(r(4), 'd');
        assert_eq!(l.pop(), Some(c));
        assert_eq!(l.pop(), Some(d));
        assert_eq!(l.pop(), None);
        assert!(l.is_empty());
        assert_eq!(l.remove(c), (true, 'c'));
        assert_eq!(l.remove(d), (true, 'd'));
        assert_eq!(l.nodes.len(), 0);
    }

    #[test]
    fn push_sorted_goes_back_to_its_place() {
        let mut l = WaitList::new();
        let a = l.push(r(1), 1u64);
        let c = l.push(r(3), 3);
        let b = l.push_sorted(r(2), 2);
        let z = l.push_sorted(r(9), 9);
        let first = l.push_sorted(r(0), 0);
        assert_eq!(l.len(), 5);
        assert_eq!(l.pop(), Some(first));
        assert_eq!(l.pop(), Some(a));
        assert_eq!(l.chosen(), 2);
        l.remove(c);
        assert_eq!(l.pop(), Some(b));
        assert_eq!(l.pop(), Some(z));
        assert_eq!(l.pop(), None);
        let d = l.push_sorted(r(4), 4);
        assert_eq!(l.pop(), Some(d));
    }

    /// Every interleaving of places near the head, the tail and the middle,
    /// against a sorted `Vec`: popping gives the slots in order.
    #[test]
    fn push_sorted_from_both_ends_matches_a_sorted_vec() {
        let mut x: u64 = 0x5eed;
        let mut rand = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..200 {
            let mut l = WaitList::new();
            let mut want = Vec::new();
            for i in 0..(round % 13) {
                l.push(r(i), i * 10);
                want.push(i * 10);
            }
            for _ in 0..(round % 7 + 1) {
                let s = rand(150);
                l.push_sorted(r(0), s);
                want.push(s);
            }
            want.sort();
            let mut got = Vec::new();
            while let Some(k) = l.pop() {
                got.push(l.nodes[k as usize].slot);
            }
            assert_eq!(got, want, "round {round}");
        }
    }

    #[test]
    fn removing_head_and_tail_keeps_the_links() {
        let mut l = WaitList::new();
        let a = l.push(r(1), ());
        let b = l.push(r(2), ());
        let c = l.push(r(3), ());
        l.remove(a);
        l.remove(c);
        assert_eq!(l.pop(), Some(b));
        assert_eq!(l.pop(), None);
        let e = l.push(r(5), ());
        assert_eq!(l.task(e), r(5));
        assert_eq!(l.pop(), Some(e));
    }
}
