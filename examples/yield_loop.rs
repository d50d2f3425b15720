//! A fixed workload for instruction counting under callgrind (and for timing
//! with `/usr/bin/time`). `scripts/callgrind.sh` runs it at two N and prints
//! the difference per operation, which cancels start-up costs.
//!
//! Modes, through the hub on the switch this build uses:
//! * `w1`: two greenlets yield N times each (W1);
//! * `w1d`: the same from three non-inlined calls deep (W1d);
//! * `w1d-chains`: W1d with the two greenlets on different call chains;
//! * `w1r-core`: one greenlet record resumed N times, no hub;
//! * `w2-1k`, `w2-20k`: N greenlets spawned and joined in batches of 1,000
//!   or 20,000 alive at once (W2, stack pool warmed and sized to hold them);
//! * `w8`: N items through a bounded(1) queue (W8);
//! * `w6`: N rounds of W6 (20,000 sleeping greenlets, warmed pool), printing
//!   each round's overshoot per timer.
//!
//! On a given switch, with no hub and no greenlet record (`<sw>` is `own` or
//! `coro`):
//! * `w1r-<sw>`: one body resumed N times (W1r);
//! * `ring<d>-<sw>`: the bare ring scheduler, N yields at depth d = 0, 1, 3.
//!
//! And `bare`: a bare corosensei coroutine resumed N times; `switch`: prints
//! the label of the switch this build uses.
//!
//! `cargo run --release --example yield_loop -- w1 1000000`

use std::hint::black_box;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use sylvan::runtime::switch_impls::Own;
use sylvan::runtime::switch_impls::{Active, Corosensei, RawSwitch};

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "../benches/switch/ring.rs"]
mod ring;
use ring::{Raw, Ring};

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

/// Two greenlets each yield `n` times through the hub, both running the
/// *same* closure, so that they block at the very same code addresses, as W1
/// and W1d ask. (Two closure types would be two copies of the loop: each
/// return out of the yield would go to an address other than the one the
/// other greenlet's call pushed, one mispredicted return per yield.)
fn ping_pong(n: u64, f: impl Fn() + Copy + 'static) {
    let body = move || (0..n).for_each(|_| f());
    let (a, b) = (sylvan::spawn(body), sylvan::spawn(body));
    a.join().unwrap();
    b.join().unwrap();
}

/// As [`ping_pong`], but each greenlet runs its own closure and call chain.
fn ping_pong_apart(n: u64, f: impl Fn() + 'static, g: impl Fn() + 'static) {
    let a = sylvan::spawn(move || (0..n).for_each(|_| f()));
    let b = sylvan::spawn(move || (0..n).for_each(|_| g()));
    a.join().unwrap();
    b.join().unwrap();
}

fn raw_switch<S: RawSwitch + 'static>(mode: &str, n: u64) {
    match mode {
        "w1r" => Raw::<S>::new().run(n),
        "ring0" => Ring::<S>::new(0).run(n),
        "ring1" => Ring::<S>::new(1).run(n),
        "ring3" => Ring::<S>::new(3).run(n),
        other => panic!("unknown mode {other:?}"),
    }
}

/// Spawns and joins `n` greenlets whose body returns at once, `batch` alive
/// at a time (rounded up to whole batches), after one warm-up batch.
fn spawn_join_batches(n: u64, batch: usize) {
    sylvan::set_stack_pool_limit(batch + 16);
    for _ in 0..=n.div_ceil(batch as u64) {
        black_box(common::spawn_join(batch));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "w1".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    match mode.as_str() {
        "switch" => println!("{}", Active::LABEL),
        "w1" => ping_pong(n, sylvan::yield_now),
        "w1d" => ping_pong(n, depth_a),
        "w1d-chains" => ping_pong_apart(n, depth_a, other_a),
        "w2-1k" => spawn_join_batches(n, 1_000),
        "w2-20k" => spawn_join_batches(n, 20_000),
        "w6" => {
            spawn_join_batches(1, 20_000);
            let delays = common::w6_delays();
            for _ in 0..n {
                let r = common::w6_run(&delays);
                println!(
                    "W6 overshoot {:.0} ns/timer (spawning took {:.0} ns/greenlet, all started \
                     after {:.0} ns/greenlet; latest wake-up {:?} after its deadline)",
                    r.overshoot, r.spawning, r.started, r.latest
                );
            }
        }
        "w8" => {
            black_box(common::queue_handoff(n));
        }
        "w1r-core" => {
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
            // body: dropping the record unwinds the body.
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
        other => match other.rsplit_once('-') {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Some((m, "own")) => raw_switch::<Own>(m, n),
            Some((m, "coro")) => raw_switch::<Corosensei>(m, n),
            _ => panic!(
                "unknown mode {other:?}: use w1, w1d, w1d-chains, w2-1k, w2-20k, w6, w8, w1r-core, \
                 w1r-<sw>, \
                 ring<0|1|3>-<sw> (sw: own or coro), bare or switch"
            ),
        },
    }
}
