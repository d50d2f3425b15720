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

/// W2: spawns `n` greenlets that return at once, then joins them all.
pub fn spawn_join(n: usize) -> Duration {
    let t = Instant::now();
    let gs: Vec<_> = (0..n).map(|i| sylvan::spawn(move || i)).collect();
    let mut sum = 0;
    for g in gs {
        sum += g.join().unwrap();
    }
    let e = t.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    e
}

/// W8: a producer and a consumer pass `n` items through a bounded(1)
/// queue.
pub fn queue_handoff(n: u64) -> Duration {
    let q = std::rc::Rc::new(sylvan::sync::Queue::bounded(1));
    let producer = {
        let q = q.clone();
        sylvan::spawn(move || {
            for i in 0..n {
                q.put(i).unwrap();
            }
        })
    };
    let consumer = sylvan::spawn(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(q.get().unwrap());
        }
        sum
    });
    let t = Instant::now();
    producer.join().unwrap();
    let sum = consumer.join().unwrap();
    let e = t.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    e
}

/// The 20,000 W6 delays of BENCHMARKS.md (xorshift64*, 0..100 ms).
pub fn w6_delays() -> Vec<Duration> {
    let mut x: u64 = 0x5eed0006;
    (0..20_000)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            Duration::from_micros(x.wrapping_mul(0x2545F4914F6CDD1D) % 100_000)
        })
        .collect()
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One W6 run, per timer in ns where not said otherwise.
pub struct W6 {
    /// Wall time from the first spawn to the last exit beyond the longest
    /// delay.
    pub overshoot: f64,
    /// CPU time of the hub's thread.
    pub cpu: f64,
    /// Time to spawn them all.
    pub spawning: f64,
    /// From the first spawn until the last greenlet began its sleep.
    pub started: f64,
    /// The latest wake-up after its deadline (one greenlet, not per timer).
    pub latest: Duration,
}

/// One W6 run: each greenlet sleeps its delay and checks that it woke at
/// or after its deadline.
pub fn w6_run(delays: &[Duration]) -> W6 {
    let longest = *delays.iter().max().unwrap();
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let gs: Vec<_> = delays
        .iter()
        .map(|&d| {
            sylvan::spawn(move || {
                let start = Instant::now();
                let deadline = start + d;
                sylvan::sleep(d);
                let now = Instant::now();
                assert!(now >= deadline, "a timer fired early");
                (start, now, now - deadline)
            })
        })
        .collect();
    let spawning = t0.elapsed();
    let ends: Vec<_> = gs.into_iter().map(|g| g.join().unwrap()).collect();
    let cpu = thread_cpu() - cpu0;
    let started = ends.iter().map(|e| e.0).max().unwrap() - t0;
    let last = ends.iter().map(|e| e.1).max().unwrap();
    let per = |d: Duration| d.as_nanos() as f64 / delays.len() as f64;
    W6 {
        overshoot: per((last - t0).saturating_sub(longest)),
        cpu: per(cpu),
        spawning: per(spawning),
        started: per(started),
        latest: ends.iter().map(|e| e.2).max().unwrap(),
    }
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
