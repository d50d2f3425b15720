//! The ready queue: a power-of-two ring of slab keys.
//!
//! `VecDeque` does the same job, but its push and pop carry a capacity
//! check, a wrap computation and an `Option` each; on the yield path those
//! are a fifth of the hub's own instructions. Here head and tail are free-
//! running `u32` counters and the slot is `counter & mask`, so a push is a
//! compare, a store and an add, a pop a compare, a load and an add; growing is a cold
//! path. The one `unsafe` is the unchecked slot access ([`Ring::slot`]),
//! which the model test below drives across growth and wrap-around.

/// A FIFO of `u32` keys that can also push at the front.
#[derive(Debug)]
pub(crate) struct Ring {
    buf: Vec<u32>,
    mask: u32,
    head: u32,
    tail: u32,
}

impl Ring {
    /// An empty ring with room for `capacity` keys (rounded up to a power
    /// of two).
    pub(crate) fn with_capacity(capacity: usize) -> Ring {
        let cap = capacity.max(2).next_power_of_two();
        Ring {
            buf: vec![0; cap],
            mask: (cap - 1) as u32,
            head: 0,
            tail: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    #[inline(always)]
    pub(crate) fn push_back(&mut self, key: u32) {
        if self.len() == self.buf.len() {
            self.grow();
        }
        *self.slot(self.tail) = key;
        self.tail = self.tail.wrapping_add(1);
    }

    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<u32> {
        if self.head == self.tail {
            return None;
        }
        let key = *self.slot(self.head);
        self.head = self.head.wrapping_add(1);
        Some(key)
    }

    /// The key [`pop_front`](Self::pop_front) would return, left in place.
    #[inline(always)]
    pub(crate) fn front(&mut self) -> Option<u32> {
        if self.head == self.tail {
            return None;
        }
        Some(*self.slot(self.head))
    }

    pub(crate) fn push_front(&mut self, key: u32) {
        if self.len() == self.buf.len() {
            self.grow();
        }
        self.head = self.head.wrapping_sub(1);
        *self.slot(self.head) = key;
    }

    /// The slot of free-running counter `c`. Unchecked: the bounds check
    /// of indexing cost two of the yield path's instructions on each of
    /// push and pop (the compiler cannot see that a masked index is in
    /// bounds).
    #[inline(always)]
    fn slot(&mut self, c: u32) -> &mut u32 {
        let i = (c & self.mask) as usize;
        debug_assert!(i < self.buf.len(), "ring mask out of step with its buffer");
        // SAFETY: `mask` is `buf.len() - 1` at all times (they are set
        // together in `with_capacity` and `grow`, with `buf.len()` a power
        // of two), so `c & mask` is below `buf.len()`.
        unsafe { self.buf.get_unchecked_mut(i) }
    }

    /// Doubles the buffer, keeping the order.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let len = self.len();
        let mut buf = Vec::with_capacity(self.buf.len() * 2);
        for i in 0..len as u32 {
            buf.push(self.buf[(self.head.wrapping_add(i) & self.mask) as usize]);
        }
        buf.resize(self.buf.len() * 2, 0);
        self.mask = (buf.len() - 1) as u32;
        self.buf = buf;
        self.head = 0;
        self.tail = len as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;
    use std::collections::VecDeque;

    #[test]
    fn behaves_like_a_deque_across_growth_and_wrap() {
        let mut r = Ring::with_capacity(2);
        let mut model = VecDeque::new();
        let mut x: u64 = 0x5eed;
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 7 {
                0..=2 => {
                    r.push_back(i);
                    model.push_back(i);
                }
                3 => {
                    r.push_front(i);
                    model.push_front(i);
                }
                _ => assert_eq!(r.pop_front(), model.pop_front()),
            }
            assert_eq!(r.len(), model.len());
        }
        while let Some(k) = model.pop_front() {
            assert_eq!(r.pop_front(), Some(k));
        }
        assert_eq!(r.pop_front(), None);
    }
}
