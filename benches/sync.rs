//! W8 (queue handoff) and W3 (idle memory) of BENCHMARKS.md, with the W1
//! yield measured in the same run as the baseline for W8's ratio.
//!
//! `cargo bench --bench sync`
//!
//! W8: one producer and one consumer greenlet pass N items through a
//! `Queue::bounded(1)` (criterion, median ns per item). Also a rendezvous
//! `Channel` for comparison.
//!
//! `SYNC_BENCH_ONLY=w8 SYNC_BENCH_N=200000` runs W8 once without criterion
//! (`w1` likewise), for `valgrind --tool=callgrind` instruction counts.
//!
//! W3: 20,000 greenlets (default stack size) each parked on one shared
//! `Event`; resident memory (VmRSS) per greenlet, measured on a fresh thread
//! (so its hub starts with an empty stack pool) after asserting that every
//! greenlet has started and is parked on the event. Then the largest count
//! reachable under the default kernel limits, with 16 KiB stacks, spawning
//! until `Builder::spawn` returns its error (printed).

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::{Channel, Event};

mod common;
use common::{criterion, line, queue_handoff, record, take_median};

/// Two greenlets each yield `n` times through the hub (W1). Returns the
/// time for 2n yields.
fn ping_pong(n: u64) -> Duration {
    let body = move || {
        for _ in 0..n {
            sylvan::yield_now();
        }
    };
    let a = sylvan::spawn(body);
    let b = sylvan::spawn(body);
    let t = Instant::now();
    a.join().unwrap();
    b.join().unwrap();
    t.elapsed()
}

/// The same through a rendezvous channel.
fn channel_handoff(n: u64) -> Duration {
    let ch = Rc::new(Channel::new());
    let producer = {
        let ch = ch.clone();
        sylvan::spawn(move || {
            for i in 0..n {
                ch.put(i).unwrap();
            }
        })
    };
    let consumer = sylvan::spawn(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(ch.get().unwrap());
        }
        black_box(sum)
    });
    let t = Instant::now();
    producer.join().unwrap();
    consumer.join().unwrap();
    t.elapsed()
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Resident set size of the process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm's resident field");
    pages * page_size()
}

/// Peak resident set size (VmHWM), in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// Yields until `n` greenlets are parked on `ev`, and asserts it.
fn settle(ev: &Event, gs: &[sylvan::Greenlet<()>]) {
    for _ in 0..10 {
        if ev.waiters() == gs.len() {
            break;
        }
        sylvan::yield_now();
    }
    assert_eq!(
        ev.waiters(),
        gs.len(),
        "every greenlet is parked on the event"
    );
    assert!(gs.iter().all(|g| g.is_started() && !g.is_dead()));
    assert_eq!(sylvan::stats().ready, 0, "nothing is runnable");
}

/// W3 at 20,000 greenlets: RSS bytes per greenlet and the peak RSS.
fn w3_20k() -> (f64, usize) {
    const N: usize = 20_000;
    let ev = Rc::new(Event::new());
    // Warm the hub itself (its tables) with one greenlet, so the figure is
    // the greenlets' own cost.
    sylvan::spawn(|| ()).join().unwrap();
    let before = rss();
    let gs: Vec<_> = (0..N)
        .map(|_| {
            let ev = ev.clone();
            sylvan::spawn(move || {
                ev.wait();
            })
        })
        .collect();
    settle(&ev, &gs);
    let after = rss();
    let peak = peak_rss();
    ev.set();
    assert!(sylvan::joinall(&gs, None));
    ((after - before) as f64 / N as f64, peak)
}

/// The largest number of parked greenlets with 16 KiB stacks: spawns until
/// the kernel refuses a stack. Returns (count, RSS bytes per greenlet,
/// the error).
fn w3_largest() -> (usize, f64, String) {
    let ev = Rc::new(Event::new());
    sylvan::spawn(|| ()).join().unwrap();
    let before = rss();
    let mut gs = Vec::new();
    let err = loop {
        let ev2 = ev.clone();
        match sylvan::Builder::new().stack_size(16 << 10).spawn(move || {
            ev2.wait();
        }) {
            Ok(g) => gs.push(g),
            Err(e) => break e,
        }
        if gs.len() % 1024 == 0 {
            // Park them as we go: the ready queue stays short.
            sylvan::yield_now();
        }
        assert!(gs.len() < 10_000_000, "no limit reached");
    };
    settle(&ev, &gs);
    let after = rss();
    let n = gs.len();
    ev.set();
    assert!(sylvan::joinall(&gs, None));
    (n, (after - before) as f64 / n as f64, err.to_string())
}

fn main() {
    // One plain run for callgrind or perf: `SYNC_BENCH_ONLY=w8` (or `w1`)
    // with `SYNC_BENCH_N` items, no criterion.
    if let Ok(only) = std::env::var("SYNC_BENCH_ONLY") {
        let n: u64 = std::env::var("SYNC_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let s0 = sylvan::stats().switches;
        let (t, ops) = match only.as_str() {
            "w1" => (ping_pong(n), 2 * n),
            "w8" => (queue_handoff(n), n),
            other => panic!("SYNC_BENCH_ONLY: unknown workload {other:?} (w1 or w8)"),
        };
        let switches = sylvan::stats().switches - s0;
        println!(
            "{only}: {:.1} ns/op over {ops} ops, {:.3} switches/op",
            t.as_nanos() as f64 / ops as f64,
            switches as f64 / ops as f64
        );
        return;
    }
    // W3 first, each part on a fresh thread: its hub starts with no stacks,
    // so every greenlet's stack pages are its own.
    let (w3_per, w3_peak) = std::thread::spawn(w3_20k).join().unwrap();
    let (largest, largest_per, limit_error) = std::thread::spawn(w3_largest).join().unwrap();

    let mut c = criterion();
    c.bench_function("W1 yield ping-pong", |b| {
        b.iter_custom(|iters| record(ping_pong(iters.max(1000)), 2 * iters.max(1000)))
    });
    let w1 = take_median();

    c.bench_function("W8 queue handoff", |b| {
        b.iter_custom(|iters| record(queue_handoff(iters.max(1000)), iters.max(1000)))
    });
    let w8 = take_median();

    c.bench_function("W8 channel handoff [rendezvous]", |b| {
        b.iter_custom(|iters| record(channel_handoff(iters.max(1000)), iters.max(1000)))
    });
    let w8_channel = take_median();

    c.final_summary();
    println!();
    line("W8", "queue handoff", w8, "ns/item");
    line("W8", "channel handoff [rendezvous]", w8_channel, "ns/item");
    line("B", "W1 yield ping-pong [same run]", w1, "ns/yield");
    println!("W8 queue handoff per W1 yield: {:.2} ratio", w8 / w1);
    line("W3", "idle memory 20k", w3_per, "bytes/greenlet");
    println!("W3 idle memory 20k peak RSS: {w3_peak} bytes");
    println!("W3 largest count [16 KiB stacks]: {largest} greenlets");
    line(
        "W3",
        "idle memory at largest count [16 KiB stacks]",
        largest_per,
        "bytes/greenlet",
    );
    println!("# W3 limit reached: {limit_error}");
}
