//! A fixed workload for instruction counting under callgrind: two greenlets
//! yield N times each through the hub (W1), from depth 3 (W1d), or one raw
//! core is resumed N times (W1r). `scripts/callgrind.sh` runs it at two N
//! and prints the difference per operation, which cancels start-up costs.
//!
//! `cargo run --release --example yield_loop -- w1 1000000`

use std::hint::black_box;

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
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "w1".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    match mode.as_str() {
        "w1" | "w1d" => {
            let deep = mode == "w1d";
            let body = move || {
                for _ in 0..n {
                    if deep { depth_a() } else { sylvan::yield_now() }
                }
            };
            let a = sylvan::spawn(body);
            let b = sylvan::spawn(body);
            a.join().unwrap();
            b.join().unwrap();
        }
        "w1r" => {
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
            for _ in 0..n {
                // SAFETY: called from the thread's own stack.
                unsafe { core.resume() };
            }
        }
        "bare" => {
            let mut co = corosensei::Coroutine::new(|y, ()| {
                loop {
                    y.suspend(());
                }
            });
            for _ in 0..n {
                co.resume(());
            }
        }
        other => panic!("unknown mode {other:?}: use w1, w1d, w1r or bare"),
    }
}
