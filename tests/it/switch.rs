//! The context switch under the hub: many greenlets switching in random
//! order, panics and kills at depth, recursion near the stack limit, and
//! backtraces. Runs on whichever switch this build uses (`--cfg
//! sylvan_corosensei` selects corosensei on x86-64 Linux; CI runs both).

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use sylvan::runtime::switch_impls::{Active, RawSwitch};

use crate::util::DropFlag;

/// Whether this build uses sylvan's own switch (else corosensei).
fn own_switch() -> bool {
    Active::LABEL == "own switch"
}

/// xorshift64*.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Yields `n` times from `depth` non-inlined calls deep, checking the
/// values each frame holds after every switch.
#[inline(never)]
fn yield_at(depth: u32, seed: u64, n: u32) -> u64 {
    let mine = black_box([seed, !seed, seed.rotate_left(7)]);
    let f = black_box(seed as f64 / 3.0);
    let r = if depth == 0 {
        for _ in 0..n {
            sylvan::yield_now();
            assert_eq!(mine, [seed, !seed, seed.rotate_left(7)], "a frame changed");
        }
        seed
    } else {
        yield_at(depth - 1, seed ^ u64::from(depth), n)
    };
    assert_eq!(mine, [seed, !seed, seed.rotate_left(7)], "a frame changed");
    assert_eq!(f, seed as f64 / 3.0, "a float changed");
    r
}

#[test]
fn ten_thousand_greenlets_switching_in_random_order_keep_their_values() {
    const N: u64 = 10_000;
    let mut rng = 0x5eed_0007u64;
    let gs: Vec<_> = (0..N)
        .map(|i| {
            // Random depth and yield count; sleeps of random length mix the
            // order in which the hub resumes them.
            let r = next(&mut rng);
            let (depth, yields, nap) = ((r % 5) as u32, (r >> 8) % 4 + 1, (r >> 16) % 3);
            sylvan::Builder::new()
                .stack_size(16 << 10)
                .spawn(move || {
                    let before = black_box(i * 31);
                    let mut acc = 0;
                    for round in 0..yields {
                        acc ^= yield_at(depth, i << 8 | round, 1);
                        if nap > 0 {
                            sylvan::sleep(Duration::from_micros(nap * 50));
                        }
                    }
                    assert_eq!(before, i * 31);
                    (i, acc)
                })
                .unwrap()
        })
        .collect();
    for (i, g) in (0..N).zip(gs) {
        let (id, _) = g.join().expect("every greenlet returns");
        assert_eq!(id, i, "each greenlet returned its own value");
    }
}

#[inline(never)]
fn panic_at(depth: u32, drops: &Rc<Cell<u32>>) {
    let _g = DropFlag(drops.clone());
    if depth == 0 {
        sylvan::yield_now();
        panic!("boom at depth");
    }
    panic_at(depth - 1, drops);
    black_box(());
}

#[test]
fn a_panic_at_depth_is_caught_at_the_greenlet_entry() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let bad = sylvan::spawn(move || panic_at(6, &d));
    let good = sylvan::spawn(|| yield_at(3, 42, 5));
    let err = bad.join().unwrap_err();
    assert_eq!(err.panic().expect("a panic").message(), "boom at depth");
    assert_eq!(drops.get(), 7, "every frame's guard dropped");
    assert_eq!(good.join().unwrap(), 42 ^ 3 ^ 2 ^ 1);
}

#[inline(never)]
fn park_at(depth: u32, drops: &Rc<Cell<u32>>, reached: &Cell<bool>) {
    let _g = DropFlag(drops.clone());
    if depth == 0 {
        reached.set(true);
        sylvan::sleep(Duration::from_secs(3600));
        unreachable!("killed while asleep");
    }
    park_at(depth - 1, drops, reached);
    black_box(());
}

#[test]
fn a_kill_at_depth_unwinds_every_frame() {
    let drops = Rc::new(Cell::new(0));
    let reached = Rc::new(Cell::new(false));
    let (d, r) = (drops.clone(), reached.clone());
    let g = sylvan::spawn(move || park_at(8, &d, &r));
    sylvan::yield_now();
    assert!(reached.get(), "parked at the bottom");
    assert_eq!(drops.get(), 0);
    g.kill();
    assert_eq!(drops.get(), 9, "nine frames, nine guards dropped");
    assert!(g.join().unwrap_err().is_killed());
}

/// Recurses with 512-byte frames, yielding every 8 frames, until `budget`
/// bytes below `top` are in use (measured by address, so it holds in debug
/// and release builds alike); yields at the bottom and checks every frame on
/// the way back. Returns the bytes used.
#[inline(never)]
fn recurse_to(top: usize, budget: usize, n: u32) -> usize {
    let frame = black_box([n; 128]);
    let here = &frame as *const _ as usize;
    if n.is_multiple_of(8) {
        sylvan::yield_now();
    }
    let used = if top - here >= budget {
        sylvan::yield_now();
        top - here
    } else {
        recurse_to(top, budget, n + 1)
    };
    assert_eq!(frame, [n; 128], "frame {n} intact after the switches");
    used
}

#[test]
fn recursion_down_to_near_the_stack_limit_survives_switches() {
    let spin = sylvan::spawn(|| (0..1000).for_each(|_| sylvan::yield_now()));
    // 52 KiB of a 64 KiB stack, switching all the way down and back up: the
    // rest is the entry's frames and room for a debug build's larger ones.
    let g = sylvan::Builder::new()
        .stack_size(64 << 10)
        .spawn(|| {
            let top = black_box(0u8);
            recurse_to(&top as *const u8 as usize, 52 << 10, 1)
        })
        .unwrap();
    assert!(g.join().unwrap() >= 52 << 10);
    spin.join().unwrap();
}

#[inline(never)]
fn trace_at(depth: u32) -> String {
    if depth == 0 {
        sylvan::yield_now();
        return std::backtrace::Backtrace::force_capture().to_string();
    }
    let t = trace_at(depth - 1);
    black_box(t)
}

#[test]
fn a_backtrace_taken_in_a_greenlet_ends_at_its_entry() {
    let trace = sylvan::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| trace_at(3))
        .unwrap()
        .join()
        .unwrap();
    let frames: Vec<&str> = trace
        .lines()
        .map(str::trim_start)
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    assert!(
        frames.iter().filter(|f| f.contains("trace_at")).count() >= 4,
        "the body's frames are in the trace:\n{trace}"
    );
    if own_switch() {
        let last = frames.last().expect("frames");
        assert!(
            last.contains("sylvan_greenlet_entry"),
            "the trace ends at the greenlet entry:\n{trace}"
        );
        assert!(
            !frames
                .iter()
                .any(|f| f.contains("run_loop") || f.contains("Hub::park")),
            "nothing of the hub's stack is in the trace:\n{trace}"
        );
    }
}
