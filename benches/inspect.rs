//! Issue 6's cost check: W1 and W1d with the blocking detector off and on,
//! in one run. The hub publishes its beacon (three relaxed stores) on every
//! resume either way; the detector adds only a watchdog thread sampling it.
//!
//! `cargo bench --bench inspect`

use std::time::Duration;

mod common;
use common::{criterion, depth_a, inline_yield, line, ping_pong, record, take_median};

fn main() {
    let mut c = criterion();
    let mut figures = Vec::new();
    for detector in [false, true] {
        let guard = detector.then(|| sylvan::BlockingDetector::start(Duration::from_millis(100)));
        let tag = if detector {
            "detector on"
        } else {
            "detector off"
        };
        for (id, label, deep) in [
            ("W1", "yield ping-pong", false),
            ("W1d", "yield from depth 3", true),
        ] {
            c.bench_function(&format!("{id} {label} [{tag}]"), |b| {
                b.iter_custom(|iters| {
                    let n = iters.div_ceil(2).max(500);
                    let e = if deep {
                        ping_pong(n, depth_a)
                    } else {
                        ping_pong(n, inline_yield)
                    };
                    record(e, 2 * n);
                    e.mul_f64(iters as f64 / (2 * n) as f64)
                })
            });
            figures.push((id, format!("{label} [{tag}]"), take_median()));
        }
        drop(guard);
    }
    c.final_summary();
    println!();
    for (id, label, ns) in figures {
        line(id, &label, ns, "ns/yield");
    }
}
