//! W2 (spawn + join) and W6 (20,000 timers) of BENCHMARKS.md.
//!
//! `cargo bench --bench lifecycle`
//!
//! W2 runs with a warmed stack pool (its bound raised to hold every stack,
//! and one warm-up round before measuring) and, separately, cold: a fresh
//! thread whose hub has an empty pool, so every spawn maps a stack.
//! W6 uses the xorshift64* delays of BENCHMARKS.md with a warmed pool; each
//! greenlet checks that it woke at or after its deadline.

use std::time::Duration;

mod common;
use common::{criterion, line, median, record, spawn_join, take_median, w6_delays, w6_run};

fn main() {
    let mut c = criterion();
    sylvan::set_stack_pool_limit(25_000);
    spawn_join(20_000); // warm the pool

    c.bench_function("W2 spawn+join 1k alive [warm pool]", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(1000) {
                total += spawn_join(1000);
            }
            record(total, iters.div_ceil(1000) * 1000);
            total.mul_f64(iters as f64 / (iters.div_ceil(1000) * 1000) as f64)
        })
    });
    let w2_1k = take_median();

    c.bench_function("W2 spawn+join 20k alive [warm pool]", |b| {
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(20_000);
            let mut total = Duration::ZERO;
            for _ in 0..rounds {
                total += spawn_join(20_000);
            }
            record(total, rounds * 20_000);
            total.mul_f64(iters as f64 / (rounds * 20_000) as f64)
        })
    });
    let w2_20k = take_median();

    // Cold: each sample on a fresh thread, so its hub starts with no stacks.
    // This thread's pool is emptied first: both pools together would pass the
    // kernel's map limit.
    sylvan::set_stack_pool_limit(0);
    let cold: Vec<f64> = (0..5)
        .map(|_| {
            std::thread::spawn(|| spawn_join(20_000).as_nanos() as f64 / 20_000.0)
                .join()
                .unwrap()
        })
        .collect();
    let w2_cold = median(cold);
    sylvan::set_stack_pool_limit(25_000);

    let delays = w6_delays();
    w6_run(&delays); // warm-up (and warms the pool to 20,000 stacks)
    let runs: Vec<_> = (0..7).map(|_| w6_run(&delays)).collect();
    let overshoot = median(runs.iter().map(|r| r.overshoot).collect());
    let cpu = median(runs.iter().map(|r| r.cpu).collect());

    c.final_summary();
    println!();
    line(
        "W2",
        "spawn+join 1k alive [warm pool]",
        w2_1k,
        "ns/greenlet",
    );
    line(
        "W2",
        "spawn+join 20k alive [warm pool]",
        w2_20k,
        "ns/greenlet",
    );
    line(
        "W2",
        "spawn+join 20k alive [cold pool]",
        w2_cold,
        "ns/greenlet",
    );
    line(
        "W6",
        "timers 20k overshoot [warm pool]",
        overshoot,
        "ns/timer",
    );
    line("W6", "timers 20k cpu [warm pool]", cpu, "ns/timer");
}
