//! Issue 6's cost check: W1 and W1d with the blocking detector off and on,
//! in one run. The hub publishes its beacon (three relaxed stores) on every
//! resume either way; the detector adds only a watchdog thread sampling it.
//!
//! `cargo bench --bench inspect`

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;
use common::{criterion, line, record, take_median};

fn ping_pong(n: u64, depth3: bool) -> Duration {
    let body = move || {
        for _ in 0..n {
            if depth3 {
                depth_a()
            } else {
                sylvan::yield_now()
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
                    let e = ping_pong(n, deep);
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
