//! Shared bench helpers: W-lines from criterion's own measurements.

#![allow(dead_code)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

thread_local! {
    static SAMPLES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Records one measurement of `total` for `ops` operations, and returns it
/// unchanged (for `iter_custom`).
pub fn record(total: Duration, ops: u64) -> Duration {
    SAMPLES.with(|s| s.borrow_mut().push(total.as_nanos() as f64 / ops as f64));
    total
}

/// Median ns per op of the samples recorded since the last call; `None`
/// when the workload did not run (filtered out on the command line).
pub fn take() -> Option<f64> {
    let v = SAMPLES.with(|s| std::mem::take(&mut *s.borrow_mut()));
    (!v.is_empty()).then(|| median(v))
}

/// Median of the samples recorded since the last call, in ns per op.
pub fn take_median() -> f64 {
    take().expect("no samples recorded")
}

/// Two greenlets each yield `n` times through the hub, both running the
/// *same* closure, so that they block at the very same code addresses, as W1
/// and W1d ask. (Two closure types would be two copies of the loop: each
/// return out of the yield would go to an address other than the one the
/// other greenlet's call pushed, one mispredicted return per yield.) Returns
/// the time for the 2n yields.
pub fn ping_pong(n: u64, f: impl Fn() + Copy + 'static) -> Duration {
    let body = move || (0..n).for_each(|_| f());
    let (a, b) = (sylvan::spawn(body), sylvan::spawn(body));
    let t = Instant::now();
    a.join().unwrap();
    b.join().unwrap();
    t.elapsed()
}

/// The W1 yield, inline in the caller's loop.
#[inline(always)]
pub fn inline_yield() {
    sylvan::yield_now();
}

/// The W1d yield: three non-inlined calls deep.
#[inline(never)]
pub fn depth_a() {
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

pub fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no samples recorded");
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Prints one line in the BENCHMARKS.md format.
pub fn line(id: &str, label: &str, figure: f64, unit: &str) {
    println!("{id} {label}: {figure:.1} {unit}");
}

/// A criterion configured for short, repeatable runs on a 2-core machine.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}
