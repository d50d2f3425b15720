//! The bare baselines of the switch benchmarks, on the raw switches (no hub,
//! no greenlet record): a round trip into one body and back (W1r), and a
//! ring-buffer scheduler running two bodies that each push themselves back on
//! the ring and suspend, inline or from three non-inlined calls deep (the `B`
//! lines the hub's W1/W1d are measured against). Shared by
//! `benches/switch.rs` and `examples/yield_loop.rs`.

#![allow(dead_code)]

use std::cell::Cell;
use std::hint::black_box;

use sylvan::runtime::stack::{DEFAULT_STACK_SIZE, Stack};
use sylvan::runtime::switch_impls::RawSwitch;

/// A switch on the heap (a stable address) running `body(&switch)`.
fn boxed<S: RawSwitch + 'static>(colour: usize, body: impl FnOnce(*const S) + 'static) -> Box<S> {
    let stack = Stack::new(DEFAULT_STACK_SIZE, colour).expect("map a stack");
    let mut s = Box::new(S::new());
    let me: *const S = &*s;
    // SAFETY: the switch stays in its box until it is dropped, which unwinds
    // the body (the bodies here loop forever and never panic).
    unsafe { s.init(stack, move || body(me)) };
    s
}

/// One body resumed and suspended `n` times: the W1r round trip.
pub struct Raw<S: RawSwitch>(Box<S>);

impl<S: RawSwitch + 'static> Raw<S> {
    pub fn new() -> Self {
        Raw(boxed::<S>(0, |me| {
            loop {
                // SAFETY: the body of `*me`, on its stack.
                unsafe { (*me).suspend() };
            }
        }))
    }

    #[inline(never)]
    pub fn run(&self, n: u64) {
        for _ in 0..n {
            // SAFETY: the body never finishes and we are its resumer.
            unsafe { self.0.resume() };
        }
    }
}

const CAP: usize = 4;

/// The ring buffer of runnable bodies.
struct Queue {
    buf: [Cell<u32>; CAP],
    head: Cell<u32>,
    tail: Cell<u32>,
}

impl Queue {
    #[inline(always)]
    fn push(&self, v: u32) {
        let t = self.tail.get();
        self.buf[t as usize % CAP].set(v);
        self.tail.set(t.wrapping_add(1));
    }

    #[inline(always)]
    fn pop(&self) -> u32 {
        let h = self.head.get();
        self.head.set(h.wrapping_add(1));
        self.buf[h as usize % CAP].get()
    }
}

/// Pushes `i` back on the ring and suspends: the yield of the bare ring.
#[inline(always)]
fn yield_now<S: RawSwitch>(me: *const S, q: &Queue, i: u32) {
    q.push(i);
    // SAFETY: the body of `*me`, on its stack.
    unsafe { (*me).suspend() };
}

#[inline(never)]
fn depth1<S: RawSwitch>(me: *const S, q: &Queue, i: u32) {
    yield_now(me, q, i);
    black_box(());
}

#[inline(never)]
fn depth3a<S: RawSwitch>(me: *const S, q: &Queue, i: u32) {
    depth3b(me, q, i);
    black_box(());
}

#[inline(never)]
fn depth3b<S: RawSwitch>(me: *const S, q: &Queue, i: u32) {
    depth1(me, q, i);
    black_box(());
}

/// Two bodies taking turns through a ring buffer, yielding at `depth` (0, 1
/// or 3) non-inlined calls below their loop.
pub struct Ring<S: RawSwitch> {
    bodies: Vec<Box<S>>,
    queue: Box<Queue>,
}

impl<S: RawSwitch + 'static> Ring<S> {
    pub fn new(depth: u32) -> Self {
        let queue = Box::new(Queue {
            buf: Default::default(),
            head: Cell::new(0),
            tail: Cell::new(0),
        });
        let q: *const Queue = &*queue;
        let bodies = (0..2u32)
            .map(|i| {
                let s = boxed::<S>(i as usize + 1, move |me| {
                    // SAFETY: the queue is boxed (a stable address) and the
                    // ring drops, so unwinds, its bodies before its queue.
                    let q = unsafe { &*q };
                    match depth {
                        0 => loop {
                            yield_now(me, q, i)
                        },
                        1 => loop {
                            depth1(me, q, i)
                        },
                        _ => loop {
                            depth3a(me, q, i)
                        },
                    }
                });
                queue.push(i);
                s
            })
            .collect();
        Ring { bodies, queue }
    }

    /// Runs `n` yields (each one suspend and one resume).
    #[inline(never)]
    pub fn run(&self, n: u64) {
        for _ in 0..n {
            let i = self.queue.pop();
            // SAFETY: the bodies never finish and we are their resumer.
            unsafe { self.bodies[i as usize].resume() };
        }
    }
}
