//! The switch workloads of BENCHMARKS.md, with criterion: W1 (yield
//! ping-pong), W1d (yield from depth 3, and the same with the two greenlets
//! blocking through different call chains) through the hub on the switch this
//! build uses; W1r (raw round trip) and the bare ring scheduler (`B` lines, at
//! depth 0, 1 and 3) on **both** switches, plus a bare corosensei coroutine.
//! Prints the W/B lines from criterion's own samples (median ns per op), and
//! each hub figure's ratio to the bare ring at the same depth.
//!
//! `cargo bench --bench switch` (this build's switch for W1/W1d);
//! `scripts/bench-switch.sh` runs it on both switches and prints all lines.
//! A criterion filter selects workloads (`cargo bench --bench switch -- W1d`);
//! lines are printed for the workloads that ran.

use std::hint::black_box;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use sylvan::runtime::switch_impls::Own;
use sylvan::runtime::switch_impls::{Active, Corosensei, RawSwitch};

mod common;
use common::{criterion, depth_a, inline_yield, line, ping_pong, record, take};

#[path = "switch/ring.rs"]
mod ring;
use ring::{Raw, Ring};

/// As [`ping_pong`], but each greenlet runs its own closure and call chain.
fn ping_pong_apart(n: u64, f: impl Fn() + 'static, g: impl Fn() + 'static) -> Duration {
    let a = sylvan::spawn(move || (0..n).for_each(|_| f()));
    let b = sylvan::spawn(move || (0..n).for_each(|_| g()));
    let t = Instant::now();
    a.join().unwrap();
    b.join().unwrap();
    t.elapsed()
}

// A second chain of three calls, for the greenlet that blocks elsewhere.
#[inline(never)]
fn other_a() {
    other_b();
    black_box(1);
}
#[inline(never)]
fn other_b() {
    other_c();
    black_box(2);
}
#[inline(never)]
fn other_c() {
    sylvan::yield_now();
    black_box(3);
}

/// Measures `f(iters)` for `iters` operations under criterion's name `name`.
fn bench(c: &mut criterion::Criterion, name: &str, ops: impl Fn(u64) -> Duration) -> Option<f64> {
    c.bench_function(name, |b| b.iter_custom(&ops));
    take()
}

/// Bare ring at depths 0, 1 and 3 on switch `S`.
fn rings<S: RawSwitch + 'static>(c: &mut criterion::Criterion) -> [Option<f64>; 3] {
    [0, 1, 3].map(|depth| {
        let name = format!("B bare ring depth {depth} [{}]", S::LABEL);
        let ring = Ring::<S>::new(depth);
        bench(c, &name, |iters| {
            let t = Instant::now();
            ring.run(iters);
            record(t.elapsed(), iters)
        })
    })
}

fn raw<S: RawSwitch + 'static>(c: &mut criterion::Criterion) -> Option<f64> {
    let raw = Raw::<S>::new();
    bench(c, &format!("W1r raw switch [{}]", S::LABEL), |iters| {
        let t = Instant::now();
        raw.run(iters);
        record(t.elapsed(), iters)
    })
}

/// Measures a ping-pong through the hub (`ping_pong` or `ping_pong_apart`
/// with its yield functions bound) under criterion's name `name`.
fn hub(c: &mut criterion::Criterion, name: String, run: impl Fn(u64) -> Duration) -> Option<f64> {
    bench(c, &name, |iters| {
        let n = iters.max(1000);
        record(run(n), 2 * n)
    })
}

fn main() {
    let mut c = criterion();
    let active = Active::LABEL;
    let w1 = hub(&mut c, format!("W1 yield ping-pong [{active}]"), |n| {
        ping_pong(n, inline_yield)
    });
    let w1d = hub(&mut c, format!("W1d yield from depth 3 [{active}]"), |n| {
        ping_pong(n, depth_a)
    });
    let w1d_mixed = hub(
        &mut c,
        format!("W1d yield from depth 3, different chains [{active}]"),
        |n| ping_pong_apart(n, depth_a, other_a),
    );

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    let (own_raw, own_rings) = (raw::<Own>(&mut c), rings::<Own>(&mut c));
    let (coro_raw, coro_rings) = (raw::<Corosensei>(&mut c), rings::<Corosensei>(&mut c));

    let bare = bench(&mut c, "B corosensei bare round trip", |iters| {
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
    });

    c.final_summary();
    println!();
    let print = |id: &str, label: String, figure: Option<f64>, unit: &str| {
        if let Some(f) = figure {
            line(id, &label, f, unit);
        }
    };
    print("W1", format!("yield ping-pong [{active}]"), w1, "ns/yield");
    print(
        "W1d",
        format!("yield from depth 3 [{active}]"),
        w1d,
        "ns/yield",
    );
    print(
        "W1d",
        format!("yield from depth 3, different chains [{active}]"),
        w1d_mixed,
        "ns/yield",
    );
    let mut all_rings = vec![(Corosensei::LABEL, coro_raw, coro_rings)];
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    all_rings.insert(0, (Own::LABEL, own_raw, own_rings));
    for (label, raw, rings) in &all_rings {
        print(
            "W1r",
            format!("raw switch [{label}]"),
            *raw,
            "ns/round-trip",
        );
        for (depth, ns) in [0, 1, 3].iter().zip(rings) {
            print(
                "B",
                format!("bare ring depth {depth} [{label}]"),
                *ns,
                "ns/yield",
            );
        }
    }
    print(
        "B",
        "corosensei bare round trip".into(),
        bare,
        "ns/round-trip",
    );

    // The hub's cost over the floor: W1 against the ring at depth 0, W1d
    // against depth 3, on the same switch (target: at most 1.3x).
    let floor = all_rings.iter().find(|(l, ..)| *l == active).map(|r| r.2);
    for (id, what, hub, depth) in [
        ("W1", "yield ping-pong", w1, 0),
        ("W1d", "yield from depth 3", w1d, 2),
    ] {
        if let (Some(h), Some(Some(f))) = (hub, floor.map(|f| f[depth])) {
            let d = [0, 1, 3][depth];
            println!(
                "{id} {what} over bare ring depth {d} [{active}]: {:.2} x",
                h / f
            );
            if h / f > 1.3 {
                eprintln!(
                    "warning: {id} is {:.2}x the bare ring (target: at most 1.3x)",
                    h / f
                );
            }
        }
    }
}
