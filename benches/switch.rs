//! W1 (yield ping-pong), W1d (yield from depth 3), W1r (raw switch) and the
//! bare corosensei baseline, with criterion; prints the W/B lines of
//! BENCHMARKS.md from criterion's own samples (median ns per op).
//!
//! `cargo bench --bench switch`

use std::hint::black_box;
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult};

mod common;
use common::{criterion, line, record, take_median};

/// Two greenlets each yield `n` times through the hub. Returns ns elapsed for
/// 2n yields.
fn ping_pong(n: u64, depth3: bool) -> std::time::Duration {
    let body = move || {
        for _ in 0..n {
            if depth3 {
                depth_a();
            } else {
                sylvan::yield_now();
            }
        }
    };
    let a = sylvan::spawn(body);
    let b = sylvan::spawn(body);
    let t = Instant::now();
    a.join().unwrap();
    b.join().unwrap();
    t.elapsed()
}

#[inline(never)]
fn depth_a() {
    depth_b();
    black_box(());
}
#[inline(never)]
fn depth_b() {
    depth_c();
    black_box(());
}
#[inline(never)]
fn depth_c() {
    sylvan::yield_now();
    black_box(());
}

fn main() {
    let mut c = criterion();

    c.bench_function("W1 yield ping-pong", |b| {
        b.iter_custom(|iters| record(ping_pong(iters.max(1000), false), 2 * iters.max(1000)))
    });
    let w1 = take_median();

    c.bench_function("W1d yield from depth 3", |b| {
        b.iter_custom(|iters| record(ping_pong(iters.max(1000), true), 2 * iters.max(1000)))
    });
    let w1d = take_median();

    // W1r: one greenlet core resumed and suspended with no hub.
    c.bench_function("W1r raw switch", |b| {
        b.iter_custom(|iters| {
            let mut pool = sylvan::runtime::stack::StackPool::new(4);
            let stack = pool.get(sylvan::DEFAULT_STACK_SIZE).unwrap();
            let core = Box::new(sylvan::runtime::Core::new());
            let p: *const sylvan::runtime::Core = &*core;
            let body = move || {
                loop {
                    // SAFETY: the body runs on the core's own stack.
                    unsafe { (*p).suspend() };
                }
            };
            // SAFETY: `core` is boxed (a stable address) and outlives its
            // body: dropping the record force-unwinds the body.
            unsafe { core.start(stack, body) };
            let t = Instant::now();
            for _ in 0..iters {
                // SAFETY: called from the thread's own stack.
                unsafe { core.resume() };
            }
            let e = t.elapsed();
            // The body loops forever; dropping the record force-unwinds it.
            drop(core);
            record(e, iters)
        })
    });
    let w1r = take_median();

    c.bench_function("B corosensei bare round trip", |b| {
        b.iter_custom(|iters| {
            let mut co = Coroutine::new(|y, ()| {
                loop {
                    y.suspend(());
                }
            });
            let t = Instant::now();
            for _ in 0..iters {
                if let CoroutineResult::Return(()) = co.resume(()) {
                    unreachable!()
                }
            }
            record(t.elapsed(), iters)
        })
    });
    let bare = take_median();

    c.final_summary();
    println!();
    line("W1", "yield ping-pong", w1, "ns/yield");
    line("W1d", "yield from depth 3", w1d, "ns/yield");
    line("W1r", "raw switch", w1r, "ns/round-trip");
    line("B", "corosensei bare round trip", bare, "ns/round-trip");
}
