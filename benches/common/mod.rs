//! Shared bench helpers: W-lines from criterion's own measurements.

#![allow(dead_code)]

use std::cell::RefCell;
use std::time::Duration;

thread_local! {
    static SAMPLES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Records one measurement of `total` for `ops` operations, and returns it
/// unchanged (for `iter_custom`).
pub fn record(total: Duration, ops: u64) -> Duration {
    SAMPLES.with(|s| s.borrow_mut().push(total.as_nanos() as f64 / ops as f64));
    total
}

/// Median of the samples recorded since the last call, in ns per op.
pub fn take_median() -> f64 {
    SAMPLES.with(|s| median(std::mem::take(&mut *s.borrow_mut())))
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
