//! Hostile review of 55bc463: a parking greenlet switches straight to the
//! next ready one (`Hub::relay_target` + `Core::switch_to`) instead of going
//! greenlet -> loop -> greenlet; the claim is that order and turns are the
//! loop's.
//!
//! Attacked (each test passes on the default build and on the corosensei
//! build, which never relays, unless marked otherwise):
//! strict round robin across many `POLL_EVERY` turns (pr01), a greenlet
//! that wakes waiters and then parks, the woken one being the relay target
//! (pr02), a random program of yields, events, queues and semaphores whose
//! trace digest must match the corosensei build's (pr03), a greenlet at the
//! front of the ready queue killed just before someone parks (pr04), an
//! unstarted custom-stack greenlet (not `FRESH`, so a relay target before
//! its first run) cancelled at the front (pr05), a relay target killing the
//! greenlet that just switched to it (pr06), a greenlet catching its kills
//! and yielding on (pr07), a `Timeout` firing in a yield loop among
//! spinning yielders (pr08), timers, a loopback TCP read, a
//! `spawn_blocking` result and `Handle::spawn` from another thread served
//! among spinning yielders (pr09), identity (`current`, `current_name`,
//! greenlet-locals) and `dump` in relay-run greenlets (pr10), hub and
//! per-greenlet switch counts (pr11), returns, panics, links and the
//! error policy's name for greenlets that end while relay-run (pr12), the
//! stack pool over many spawn/yield/finish rounds (pr13), unstarted
//! custom-stack greenlets started by relay in spawn order (pr14),
//! `wait`/`iwait` (pr15), four threads relaying at once with
//! `Handle::spawn` from outside (pr16), thread exit with greenlets parked
//! in chains, one catching its kill and yielding (pr17), a stack overflow
//! in a greenlet entered by relay (pr18), a stack that runs out exactly at
//! the relay switch's pushes (pr19: a bug at 55bc463, seen outside this
//! binary: `Core::switch_to` named the target's stack for the overflow
//! handler before `Switch::switch_to` pushed three words on the parking
//! greenlet's stack; a fault there was not in the named stack's guard, so
//! the process died of a bare SIGSEGV with no "greenlet '..' overflowed"
//! line. Fixed: the switch names the target's stack itself, after its
//! pushes).
//!
//! Verdicts: pr01-pr19 pass on both builds (pr03's digests were taken
//! from the corosensei build and match the relaying one). pr19 passed
//! even at 55bc463 in this binary (debug and `--release`: park writes
//! deeper before the rename there), but its child's code, built as a
//! release example, died of a bare SIGSEGV at shifts 1-3 (named at
//! 55bc463^). That child is now `examples/overflow_edge.rs`, which pr19
//! runs (debug build); `cargo run --release --example overflow_edge`
//! names all 24 shifts since the fix.

use std::cell::{Cell, RefCell};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sylvan::sync::{Event, Queue, Semaphore};
use sylvan::{Builder, Greenlet, GreenletExit, spawn, yield_now};

use crate::util::{DropFlag, Log, bounded, is_child, quiet, run_child};

/// Spawns `n` greenlets that yield until `stop` is set (bounded: at most
/// `limit` yields each), counting their rounds in `spins`.
fn spinners(n: usize, stop: &Rc<Cell<bool>>, spins: &Rc<Cell<u64>>) -> Vec<Greenlet<()>> {
    (0..n)
        .map(|_| {
            let (stop, spins) = (stop.clone(), spins.clone());
            spawn(move || {
                for _ in 0..2_000_000u32 {
                    if stop.get() {
                        return;
                    }
                    spins.set(spins.get() + 1);
                    yield_now();
                }
                panic!("spinner never told to stop");
            })
        })
        .collect()
}

/// gevent's hub runs ready greenlets FIFO: three greenlets that each log
/// and `sleep(0)` 300 times interleave strictly a0 b0 c0 a1 b1 c1 ... The
/// turns of timers and IO every `POLL_EVERY` switches (here about 14 of
/// them) must not reorder anything, relay or not.
#[test]
fn pr01_round_robin_across_turns() {
    bounded(|| {
        const ROUNDS: usize = 300;
        let log = Log::default();
        let gs: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| {
                let log = log.clone();
                spawn(move || {
                    for i in 0..ROUNDS {
                        log.push(format!("{n}{i}"));
                        yield_now();
                    }
                })
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        let want: Vec<String> = (0..ROUNDS)
            .flat_map(|i| ["a", "b", "c"].map(|n| format!("{n}{i}")))
            .collect();
        assert_eq!(log.take(), want);
    });
}

/// A sets an event B and C wait on, then parks on a second event: the relay
/// target is D (queued before the woken ones), then B and C in the order
/// they began waiting (gevent wakes an `Event`'s waiters FIFO); C's `set`
/// of the second event readies A behind D and B.
#[test]
fn pr02_wake_then_park_order() {
    bounded(|| {
        let log = Log::default();
        let (ev, ev2) = (Rc::new(Event::new()), Rc::new(Event::new()));
        let b = {
            let (log, ev) = (log.clone(), ev.clone());
            spawn(move || {
                log.push("B wait");
                ev.wait();
                log.push("B woke");
                yield_now();
                log.push("B2");
            })
        };
        let c = {
            let (log, ev, ev2) = (log.clone(), ev.clone(), ev2.clone());
            spawn(move || {
                log.push("C wait");
                ev.wait();
                log.push("C woke");
                ev2.set();
                log.push("C set2");
            })
        };
        let d = {
            let log = log.clone();
            spawn(move || {
                log.push("D1");
                yield_now();
                log.push("D2");
                yield_now();
                log.push("D3");
            })
        };
        let a = {
            let (log, ev, ev2) = (log.clone(), ev.clone(), ev2.clone());
            spawn(move || {
                log.push("A set");
                ev.set();
                log.push("A wait2");
                ev2.wait();
                log.push("A woke");
            })
        };
        for g in [a, b, c, d] {
            g.join().unwrap();
        }
        assert_eq!(
            log.take(),
            [
                "B wait", "C wait", "D1", "A set", "A wait2", "D2", "B woke", "C woke", "C set2",
                "D3", "B2", "A woke"
            ]
        );
    });
}

/// xorshift64*, for the random program of pr03.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The trace of a random program: 12 greenlets, each taking 400 random
/// steps (yield, set/clear/wait an event, put/get a bounded queue,
/// acquire/release a semaphore, spawn a short child), logging each step.
/// Returns the trace's length and a hash of it.
fn random_program(seed: u64) -> (usize, u64) {
    let trace: Rc<RefCell<Vec<(u32, u32, u64)>>> = Rc::default();
    let events: Rc<Vec<Event>> = Rc::new((0..3).map(|_| Event::new()).collect());
    let queue: Rc<Queue<u64>> = Rc::new(Queue::bounded(4));
    let sem = Rc::new(Semaphore::new(2));
    let stop = Rc::new(Cell::new(false));
    let gs: Vec<Greenlet<()>> = (0..12u32)
        .map(|me| {
            let (trace, events, queue, sem, stop) = (
                trace.clone(),
                events.clone(),
                queue.clone(),
                sem.clone(),
                stop.clone(),
            );
            spawn(move || {
                let mut rng = Rng(seed ^ (u64::from(me) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let log = |step: u32, v: u64| trace.borrow_mut().push((me, step, v));
                for step in 0..400u32 {
                    if stop.get() {
                        break;
                    }
                    match rng.below(9) {
                        0 | 1 => {
                            log(step, 0);
                            yield_now();
                        }
                        2 => {
                            let e = rng.below(3) as usize;
                            log(step, 10 + e as u64);
                            events[e].set();
                        }
                        3 => {
                            let e = rng.below(3) as usize;
                            log(step, 20 + e as u64);
                            events[e].clear();
                        }
                        4 => {
                            let e = rng.below(3) as usize;
                            let ok = events[e].wait_timeout(Duration::from_secs(60));
                            log(step, 30 + e as u64 + 100 * u64::from(ok));
                        }
                        5 => {
                            let v = rng.below(1000);
                            // A full queue blocks; bounded by the stop flag
                            // and the drain at the end.
                            let ok = queue.put_timeout(v, Duration::from_secs(60)).is_ok();
                            log(step, 1000 + v + 10_000 * u64::from(ok));
                        }
                        6 => {
                            let got = queue.try_get().ok();
                            log(step, 50_000 + got.unwrap_or(9999));
                        }
                        7 => {
                            let g = sem.acquire();
                            log(step, 60_000);
                            yield_now();
                            drop(g);
                            log(step, 60_001);
                        }
                        _ => {
                            let t = trace.clone();
                            let child = spawn(move || {
                                t.borrow_mut().push((100 + me, step, 1));
                                yield_now();
                                t.borrow_mut().push((100 + me, step, 2));
                            });
                            log(step, 70_000);
                            if rng.below(2) == 0 {
                                child.join().unwrap();
                                log(step, 70_001);
                            }
                        }
                    }
                }
                trace.borrow_mut().push((me, u32::MAX, 0));
            })
        })
        .collect();
    // Unblock the stragglers: greenlets waiting for an event or a queue
    // slot once the others finished.
    let mut done = 0;
    for round in 0..10_000u32 {
        done = gs.iter().filter(|g| g.is_dead()).count();
        if done == gs.len() {
            break;
        }
        if round % 2 == 0 {
            for e in events.iter() {
                e.set();
            }
        }
        while queue.try_get().is_ok() {}
        yield_now();
    }
    assert_eq!(done, gs.len(), "random program did not finish");
    stop.set(true);
    let trace = trace.take();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    trace.hash(&mut h);
    (trace.len(), h.finish())
}

/// Differential: the same random program (events woken FIFO, queues,
/// semaphores, joins, spawns) must produce the very same trace whether
/// greenlets relay or go through the loop. The expected digests are those
/// of the corosensei build, which never relays.
#[test]
fn pr03_random_program_trace_matches_the_loop() {
    bounded(|| {
        let got: Vec<(usize, u64)> = (1..=4u64).map(random_program).collect();
        println!("pr03 digests: {got:?}");
        assert_eq!(got, WANT_PR03);
    });
}

/// Digests of pr03 on the corosensei build.
const WANT_PR03: [(usize, u64); 4] = [
    (6706, 7_912_614_416_214_949_210),
    (6742, 9_614_940_434_800_208_054),
    (6738, 12_021_821_314_912_702_412),
    (6719, 7_579_859_557_449_352_931),
];

/// X is queued (it yielded) and is killed by K, which then parks: X is the
/// relay target, so it must take its kill there (its code after the yield
/// never runs, its destructors do), as the loop would have thrown it.
#[test]
fn pr04_kill_front_of_queue_then_park() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let drops = Rc::new(Cell::new(0));
        let x = Rc::new({
            let (log, d) = (log.clone(), drops.clone());
            spawn(move || {
                let _f = DropFlag(d);
                log.push("x1");
                yield_now();
                log.push("x after kill (never)");
            })
        });
        let k = {
            let (log, x) = (log.clone(), x.clone());
            spawn(move || {
                log.push("k1");
                // X yielded: it is at the front of the ready queue.
                assert!(x.is_started() && !x.is_dead());
                x.kill_nowait();
                log.push("k killed");
                yield_now();
                log.push("k2");
                assert!(x.is_dead());
            })
        };
        k.join().unwrap();
        let x = Rc::try_unwrap(x).unwrap();
        assert!(x.join().unwrap_err().is_killed());
        assert_eq!(drops.get(), 1);
        assert_eq!(log.take(), ["x1", "k1", "k killed", "k2"]);
        assert_eq!(sylvan::stats().alive, 0);
    });
}

/// An unstarted custom-stack greenlet is queued without the `FRESH` mark
/// (its body is placed at spawn), so relay may pick it; cancelled (killed
/// before it ran) while at the front of the ready queue, it must be reaped
/// by the loop, never entered, and the next one (also unstarted, custom
/// stack) runs in its place.
#[test]
fn pr05_unstarted_custom_stack_cancelled_at_front() {
    bounded(|| {
        let log = Log::default();
        let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
        let a = {
            let (log, slot) = (log.clone(), slot.clone());
            spawn(move || {
                log.push("a1");
                let u = slot.borrow_mut().take().unwrap();
                // Ready queue: u v; u is cancelled on the spot.
                u.kill_nowait();
                log.push(format!("u dead={} started={}", u.is_dead(), u.is_started()));
                yield_now();
                log.push("a2");
                u.join().unwrap_err().is_killed()
            })
        };
        let u = {
            let log = log.clone();
            Builder::new()
                .stack_size(128 << 10)
                .spawn(move || log.push("u ran (never)"))
                .unwrap()
        };
        let v = {
            let log = log.clone();
            Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    log.push("v1");
                    yield_now();
                    log.push("v2");
                })
                .unwrap()
        };
        *slot.borrow_mut() = Some(u);
        assert!(a.join().unwrap());
        v.join().unwrap();
        assert_eq!(
            log.take(),
            ["a1", "u dead=true started=false", "v1", "a2", "v2"]
        );
        assert_eq!(sylvan::stats().alive, 0);
    });
}

/// A yields and relays to B; B kills A (parked inside `switch_to`) and
/// waits for its death: A is relayed to again, unwinds out of
/// `switch_to`, finishes to the loop, and its death wakes B.
#[test]
fn pr06_relay_target_kills_its_switcher() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let drops = Rc::new(Cell::new(0));
        let slot: Rc<RefCell<Option<Rc<Greenlet<()>>>>> = Rc::default();
        let a = {
            let (log, d) = (log.clone(), drops.clone());
            spawn(move || {
                let _f = DropFlag(d);
                for i in 0..3 {
                    log.push(format!("a{i}"));
                    yield_now();
                }
                log.push("a survived (never)");
            })
        };
        let b = {
            let (log, slot) = (log.clone(), slot.clone());
            spawn(move || {
                log.push("b0");
                yield_now();
                log.push("b1 kills a");
                let a = slot.borrow().clone().unwrap();
                a.kill();
                log.push(format!("b2 a dead={}", a.is_dead()));
            })
        };
        let a = Rc::new(a);
        *slot.borrow_mut() = Some(a.clone());
        b.join().unwrap();
        drop(slot.borrow_mut().take());
        let a = Rc::try_unwrap(a).unwrap();
        assert!(a.join().unwrap_err().is_killed());
        assert_eq!(drops.get(), 1);
        assert_eq!(
            log.take(),
            ["a0", "b0", "a1", "b1 kills a", "b2 a dead=true"]
        );
    });
}

/// A greenlet that catches its kill (gevent: `except GreenletExit`) and
/// yields on among other yielders: each kill lands at the next resume, be
/// it by relay or by the loop; the second kill ends it.
#[test]
fn pr07_catch_kill_and_yield_again() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let x = Rc::new({
            let log = log.clone();
            spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    for i in 0..1000 {
                        log.push(format!("x{i}"));
                        yield_now();
                    }
                }));
                let e = r.unwrap_err();
                assert!(e.is::<GreenletExit>());
                log.push("x caught");
                for i in 0..3 {
                    yield_now();
                    log.push(format!("x again {i}"));
                }
                yield_now();
                log.push("x never");
            })
        });
        let y = {
            let log = log.clone();
            spawn(move || {
                for i in 0..6 {
                    log.push(format!("y{i}"));
                    yield_now();
                }
            })
        };
        let k = {
            let (log, x) = (log.clone(), x.clone());
            spawn(move || {
                yield_now();
                log.push("k kill1");
                x.kill_nowait();
                yield_now();
                yield_now();
                log.push("k kill2");
                x.kill_nowait();
            })
        };
        k.join().unwrap();
        y.join().unwrap();
        let x = Rc::try_unwrap(x).unwrap();
        assert!(x.join().unwrap_err().is_killed());
        assert_eq!(
            log.take(),
            [
                "x0",
                "y0",
                "x1",
                "y1",
                "k kill1",
                "x caught",
                "y2",
                "x again 0",
                "y3",
                "k kill2",
                "y4",
                "y5"
            ]
        );
    });
}

/// A `Timeout` of 20 ms around a yield loop fires while six other
/// greenlets yield for ever: turns come every `POLL_EVERY` switches, relay
/// or not (gevent's loop checks its timers on every iteration).
#[test]
fn pr08_timeout_fires_in_a_yield_loop() {
    bounded(|| {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0));
        let gs = spinners(6, &stop, &spins);
        let t0 = Instant::now();
        let n = Cell::new(0u64);
        let r = sylvan::with_timeout(Duration::from_millis(20), || {
            loop {
                n.set(n.get() + 1);
                yield_now();
            }
        });
        let took = t0.elapsed();
        assert!(r.is_err(), "the timeout fired");
        assert!(took >= Duration::from_millis(20));
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(n.get() > 10 && spins.get() > 60);
        stop.set(true);
        for g in gs {
            g.join().unwrap();
        }
    });
}

/// With eight greenlets yielding for ever, a sleeper, a loopback TCP
/// reader, a `spawn_blocking` caller and a `Handle::spawn` job from another
/// thread are all served within a generous bound.
#[test]
fn pr09_turns_served_among_spinners() {
    bounded(|| {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0));
        let gs = spinners(8, &stop, &spins);
        let t0 = Instant::now();
        // Timer.
        sylvan::sleep(Duration::from_millis(5));
        // TCP read of bytes written by a std thread.
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            b
        });
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        s.write_all(b"pong").unwrap();
        // A blocking job's result.
        let v = sylvan::spawn_blocking(|| 6 * 7);
        assert_eq!(v, 42);
        // A job handed over from another thread.
        let ran = Rc::new(Event::new());
        let flag = Arc::new(AtomicBool::new(false));
        let h = sylvan::Handle::current();
        let f2 = flag.clone();
        std::thread::spawn(move || {
            h.spawn(move || f2.store(true, Ordering::SeqCst)).unwrap();
        })
        .join()
        .unwrap();
        let r2 = ran.clone();
        let f3 = flag.clone();
        let watcher = spawn(move || {
            for _ in 0..100_000 {
                if f3.load(Ordering::SeqCst) {
                    r2.set();
                    return;
                }
                yield_now();
            }
        });
        assert!(ran.wait_timeout(Duration::from_secs(3)));
        watcher.join().unwrap();
        assert_eq!(&writer.join().unwrap(), b"pong");
        assert!(t0.elapsed() < Duration::from_secs(4));
        assert!(spins.get() > 0);
        stop.set(true);
        for g in gs {
            g.join().unwrap();
        }
    });
}

sylvan::greenlet_local! {
    static MINE: Cell<u64> = Cell::new(0);
}

/// In greenlets resumed by relay, `current()`, `current_name()`,
/// greenlet-local values and `dump()` (exactly one greenlet "running":
/// the caller) name the right greenlet, round after round.
#[test]
fn pr10_identity_in_relay_run_greenlets() {
    bounded(|| {
        let bad = Rc::new(Cell::new(0u32));
        let gs: Vec<Greenlet<u64>> = (0..5u64)
            .map(|i| {
                let bad = bad.clone();
                Builder::new()
                    .name(format!("id{i}"))
                    .spawn(move || {
                        let me = sylvan::current();
                        MINE.with(|m| m.set(1000 + i));
                        for round in 0..200 {
                            yield_now();
                            let ok = sylvan::current() == me
                                && sylvan::current_name().as_deref() == Some(&*format!("id{i}"))
                                && MINE.with(Cell::get) == 1000 + i;
                            if !ok {
                                bad.set(bad.get() + 1);
                            }
                            if round % 37 == 0 {
                                let d = sylvan::dump();
                                let running: Vec<_> = d
                                    .greenlets
                                    .iter()
                                    .filter(|g| g.state == "running")
                                    .map(|g| g.id)
                                    .collect();
                                if running != [me] {
                                    bad.set(bad.get() + 1000);
                                }
                            }
                        }
                        me.as_u64()
                    })
                    .unwrap()
            })
            .collect();
        for g in gs {
            let id = g.id().as_u64();
            assert_eq!(g.join().unwrap(), id);
        }
        assert_eq!(bad.get(), 0);
        assert_eq!(MINE.with(Cell::get), 0, "main's own value untouched");
    });
}

/// Four greenlets each yield 100 times: 4 x 101 resumes plus main's own,
/// 405 switches whether they go through the loop or not; and each
/// greenlet's own count in `dump()` is its resumes so far.
#[test]
fn pr11_switch_counts() {
    bounded(|| {
        let bad = Rc::new(Cell::new(0u32));
        let before = sylvan::stats().switches;
        let gs: Vec<Greenlet<()>> = (0..4)
            .map(|_| {
                let bad = bad.clone();
                spawn(move || {
                    let me = sylvan::current();
                    for i in 0..100u64 {
                        let d = sylvan::dump();
                        let mine = d.greenlets.iter().find(|g| g.id == me).unwrap();
                        if mine.switches != i + 1 {
                            bad.set(bad.get() + 1);
                        }
                        yield_now();
                    }
                })
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        let after = sylvan::stats().switches;
        assert_eq!(bad.get(), 0);
        assert_eq!(after - before, 405);
    });
}

/// Greenlets that end while relay-run: a return, a panic (the error policy
/// sees the right name, `join` the right message) and a kill; their
/// `link`/`link_exception` callbacks run once each with the right outcome.
#[test]
fn pr12_finishing_while_relay_run() {
    bounded(|| {
        let seen: Rc<RefCell<Vec<String>>> = Rc::default();
        {
            let seen = seen.clone();
            sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |f| {
                seen.borrow_mut()
                    .push(format!("policy {:?} {}", f.name, f.error.is_panic()));
            })));
        }
        let log = Log::default();
        let mk = |name: &'static str, rounds: u32, end: u32| {
            let log = log.clone();
            Builder::new()
                .name(name)
                .spawn(move || {
                    for _ in 0..rounds {
                        yield_now();
                    }
                    log.push(format!("{name} ends"));
                    match end {
                        0 => 7u32,
                        _ => panic!("boom-{name}"),
                    }
                })
                .unwrap()
        };
        let r = mk("ret", 5, 0);
        let p = mk("pan", 6, 1);
        let s = mk("spin", 50, 0);
        for g in [&r, &p, &s] {
            let (l, name) = (log.clone(), g.name().unwrap().to_owned());
            g.link(move |o| {
                l.push(format!(
                    "link {name} {}",
                    matches!(o, sylvan::Outcome::Returned(_))
                ))
            });
            let (l, name) = (log.clone(), g.name().unwrap().to_owned());
            g.link_exception(move |e| l.push(format!("exc {name} {}", e.is_panic())));
        }
        let s = Rc::new(s);
        let s2 = s.clone();
        let killer = spawn(move || {
            for _ in 0..10 {
                yield_now();
            }
            s2.kill();
        });
        killer.join().unwrap();
        let s = Rc::try_unwrap(s).unwrap();
        assert_eq!(r.join().unwrap(), 7);
        let e = p.join().unwrap_err();
        assert_eq!(e.panic().unwrap().message(), "boom-pan");
        assert!(s.join().unwrap_err().is_killed());
        // The callbacks run in greenlets of their own.
        crate::util::yield_until("six log lines", || log.get().len() >= 6);
        let mut got = log.take();
        got.sort();
        assert_eq!(
            got,
            [
                "exc pan true",
                "link pan false",
                "link ret true",
                "link spin false",
                "pan ends",
                "ret ends"
            ]
        );
        assert_eq!(*seen.borrow(), ["policy Some(\"pan\") true"]);
    });
}

/// 300 rounds of eight greenlets that yield three times and finish: every
/// stack goes back to the pool whoever resumed its greenlet last, so the
/// number of stacks mapped stays at a round's worth.
#[test]
fn pr13_stack_pool_does_not_grow() {
    bounded(|| {
        let mapped0 = sylvan::stats().stacks_mapped;
        for _ in 0..300 {
            let gs: Vec<_> = (0..8)
                .map(|_| {
                    spawn(|| {
                        for _ in 0..3 {
                            yield_now();
                        }
                    })
                })
                .collect();
            for g in gs {
                g.join().unwrap();
            }
        }
        let st = sylvan::stats();
        assert_eq!(st.alive, 0);
        assert!(
            st.stacks_mapped <= mapped0 + 16,
            "mapped {} (was {mapped0})",
            st.stacks_mapped
        );
    });
}

/// Custom-stack greenlets are queued with their body placed (not
/// `FRESH`): a yielder in front relays into them for their very first run.
/// They start in spawn order, interleaved with default-stack ones.
#[test]
fn pr14_unstarted_custom_stack_entered_by_relay() {
    bounded(|| {
        let log = Log::default();
        let gs: Vec<Greenlet<()>> = (0..6)
            .map(|i| {
                let log = log.clone();
                let b = if i % 2 == 1 {
                    Builder::new().stack_size(96 << 10)
                } else {
                    Builder::new()
                };
                b.spawn(move || {
                    for r in 0..3 {
                        log.push(format!("{i}.{r}"));
                        yield_now();
                    }
                })
                .unwrap()
            })
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        let want: Vec<String> = (0..3)
            .flat_map(|r| (0..6).map(move |i| format!("{i}.{r}")))
            .collect();
        assert_eq!(log.take(), want);
    });
}

/// `wait`/`iwait` on greenlets that finish while relay-run report them in
/// the order they died.
#[test]
fn pr15_wait_and_iwait() {
    bounded(|| {
        let mk = |n: u32| {
            spawn(move || {
                for _ in 0..n {
                    yield_now();
                }
                n
            })
        };
        let (a, b, c) = (mk(9), mk(3), mk(6));
        let order: Vec<usize> = sylvan::iwait(&[&a, &b, &c], None).collect();
        assert_eq!(order, [1, 2, 0]);
        let (d, e) = (mk(4), mk(2));
        assert_eq!(sylvan::wait(&[&d, &e], None, Some(1)), [1]);
        assert_eq!(d.join().unwrap(), 4);
        assert_eq!(a.join().unwrap(), 9);
    });
}

/// Four OS threads, each with its own hub, relay at once (round robin of
/// four greenlets, 3000 yields each), while a fifth thread hands each hub
/// jobs with `Handle::spawn`.
#[test]
fn pr16_threads_relay_concurrently() {
    let (tx, rx) = std::sync::mpsc::channel::<sylvan::Handle>();
    let jobs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (tx, jobs) = (tx.clone(), jobs.clone());
            std::thread::spawn(move || {
                bounded(|| {
                    let _keep = sylvan::Handle::current().keep_alive();
                    tx.send(sylvan::Handle::current()).unwrap();
                    let log = Log::default();
                    let gs: Vec<_> = (0..4)
                        .map(|i| {
                            let log = log.clone();
                            spawn(move || {
                                for r in 0..3000 {
                                    log.push(format!("{t}:{i}.{r}"));
                                    yield_now();
                                }
                            })
                        })
                        .collect();
                    for g in gs {
                        g.join().unwrap();
                    }
                    let want: Vec<String> = (0..3000)
                        .flat_map(|r| (0..4).map(move |i| format!("{t}:{i}.{r}")))
                        .collect();
                    assert_eq!(log.take(), want);
                    // Every handed job arrives.
                    for _ in 0..10_000 {
                        if jobs.load(Ordering::SeqCst) >= 4 * 50 {
                            break;
                        }
                        sylvan::sleep(Duration::from_millis(1));
                    }
                });
            })
        })
        .collect();
    drop(tx);
    let handles: Vec<sylvan::Handle> = rx.iter().take(4).collect();
    for _ in 0..50 {
        for h in &handles {
            let jobs = jobs.clone();
            h.spawn(move || {
                jobs.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(jobs.load(Ordering::SeqCst), 200);
}

/// Thread exit with greenlets yielding in a chain and parked on events,
/// one catching its kill and yielding again: teardown unwinds each (no
/// relay while closing), all destructors run, the thread ends.
#[test]
fn pr17_teardown_with_chains() {
    let dropped = Arc::new(AtomicUsize::new(0));
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let d = dropped.clone();
    let t = std::thread::spawn(move || {
        let ev = Rc::new(Event::new());
        for i in 0..6 {
            let d = D(d.clone());
            let ev = ev.clone();
            spawn(move || {
                let _d = d;
                if i % 3 == 0 {
                    ev.wait();
                } else if i % 3 == 1 {
                    for _ in 0..1_000_000 {
                        yield_now();
                    }
                } else {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        for _ in 0..1_000_000 {
                            yield_now();
                        }
                    }));
                    assert!(r.is_err());
                    yield_now();
                    yield_now();
                }
            });
        }
        // Let them run a few rounds (chains of relays), then leave.
        for _ in 0..100 {
            yield_now();
        }
    });
    let t0 = Instant::now();
    t.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(dropped.load(Ordering::SeqCst), 6);
}

/// A custom-stack greenlet first entered by relay (a yielder is queued in
/// front of it) overflows its stack: the report names it, as the loop's
/// resume would have.
#[test]
fn pr18_overflow_in_relay_entered_greenlet_named() {
    const NAME: &str = "p79-pr18";
    if is_child(NAME) {
        #[inline(never)]
        fn forever(n: u64) -> u64 {
            let buf = std::hint::black_box([n; 64]);
            if std::hint::black_box(n) == u64::MAX {
                return 0;
            }
            forever(n + 1) + buf[3]
        }
        let other = spawn(|| {
            for _ in 0..10 {
                yield_now();
            }
        });
        let g = Builder::new()
            .name("relayed")
            .stack_size(64 << 10)
            .spawn(|| {
                yield_now();
                forever(0)
            })
            .unwrap();
        let _ = g.join();
        drop(other);
        unreachable!();
    }
    let out = run_child(
        "probes79::pr18_overflow_in_relay_entered_greenlet_named",
        NAME,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(6), "{stderr}");
    assert!(
        stderr.contains("greenlet 'relayed' overflowed its stack"),
        "{stderr}"
    );
}

/// A greenlet whose stack runs out exactly at a relayed `yield_now` (the
/// three pushes of `Switch::switch_to`, made after 55bc463's
/// `Core::switch_to` named the *target's* stack for the overflow handler)
/// must still be reported as "greenlet 'edge' overflowed its stack", not
/// die of a bare SIGSEGV: the old path (`suspend`) never renamed the
/// running stack before its pushes. `examples/overflow_edge.rs` (written
/// from this test's first version) places its stack pointer so that the
/// deepest 1..=24 words written by the yield fall in the guard page, one
/// child process per shift, and fails unless all 24 are named. Run here on
/// the test build's example (debug: park writes deeper before the switch,
/// so this passed even before the fix); the release build showed the bug
/// at shifts 1-3 and is run by hand (`cargo run --release --example
/// overflow_edge`).
#[test]
fn pr19_overflow_at_the_relay_switch_named() {
    let bin = crate::crawler::example_bin("overflow_edge");
    let out = std::process::Command::new(&bin).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": named (").count(), 24, "{stdout}");
}
