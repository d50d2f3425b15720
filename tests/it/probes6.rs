//! Sixth round of probes: time (`sleep`, `sleep_until`, `spawn_later`,
//! `Timeout`, `with_timeout`, timer ordering and mass cancellation),
//! `sylvan::signal`, the dump and stats, and the cross-thread
//! `sylvan::mpsc` channel. Each test cites the gevent behaviour
//! (test__sleep0, test__timeout, test__api_timeout, test__signal,
//! test__hub, test__core_timer) or the sylvan doc comment it checks.
//! Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug; the rest are
//! regression tests. Signals are raised only in child processes.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{
    Timeout, WaitKind, joinall, killall, sleep, sleep_until, spawn, spawn_later, with_timeout,
    yield_now,
};

use crate::util::{Log, bounded, in_child, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(10);

fn raise(sig: i32) {
    // SAFETY: raise only sends a signal to this thread; the tests call it
    // only for signals a registration handles.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// The current disposition of `sig` (handler address or SIG_DFL/SIG_IGN).
fn disposition(sig: i32) -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is a valid value to be overwritten.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: queries the action only, into a valid out-pointer.
    let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    assert_eq!(r, 0);
    old.sa_sigaction
}

// ================================================================ time

// test__core_timer / sylvan timer.rs: "equal deadlines fire first-in
// first-out". spawn_later with one delay, called in a row, starts the
// greenlets in the order they were spawned.
#[test]
fn tm01_spawn_later_equal_delays_start_in_spawn_order() {
    bounded(|| {
        let log = Log::default();
        let gs: Vec<_> = (0..60)
            .map(|i| {
                let l = log.clone();
                spawn_later(30 * MS, move || l.push(i.to_string()))
            })
            .collect();
        assert!(joinall(&gs, None));
        let want: Vec<String> = (0..60).map(|i| i.to_string()).collect();
        assert_eq!(log.get(), want);
    })
}

// sylvan timer.rs: the heap orders by deadline, insertion order only breaks
// ties. Deadlines one nanosecond apart, armed in reverse order, fire in
// deadline order (libev's timer heap is ordered by `at` the same way).
#[test]
fn tm02_nanosecond_apart_deadlines_fire_in_deadline_order() {
    bounded(|| {
        let log = Log::default();
        let base = Instant::now() + 40 * MS;
        let gs: Vec<_> = (0..20u32)
            .rev()
            .map(|i| {
                let l = log.clone();
                spawn(move || {
                    sleep_until(base + Duration::from_nanos(u64::from(i)));
                    l.push(i.to_string());
                })
            })
            .collect();
        assert!(joinall(&gs, None));
        let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(log.get(), want);
    })
}

// gevent.sleep(seconds <= 0) yields once (test__sleep0). sylvan: a deadline
// already past is due at once; sleep_until returns promptly, after the
// ready greenlets had their turn.
#[test]
fn tm03_sleep_until_a_past_deadline_yields_and_returns_promptly() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = spawn(move || r.set(true));
        let t = Instant::now();
        let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        sleep_until(past);
        assert!(
            ran.get(),
            "the ready greenlet ran before sleep_until returned"
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        g.join().unwrap();
    })
}

// gevent: killing a greenlet from spawn_later before it starts cancels its
// timer; it never runs (test__greenlet TestBasic kill of a dormant one).
// sylvan: stats().timers counts armed timers.
#[test]
fn tm04_kill_unstarted_spawn_later_removes_its_timer() {
    bounded(|| {
        let base = sylvan::stats().timers;
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = spawn_later(LONG, move || r.set(true));
        assert_eq!(sylvan::stats().timers, base + 1);
        assert!(!g.is_started());
        g.kill();
        assert_eq!(sylvan::stats().timers, base, "the start timer is gone");
        assert!(g.join().unwrap_err().is_killed());
        sleep(20 * MS);
        assert!(!ran.get());
    })
}

// sylvan Timeout docs / gevent Timeout: "A greenlet that never blocks
// cannot be interrupted". Its timer stays pending past the deadline (the
// hub never turned), the body finishes with its value, and the guard's drop
// removes the timer.
#[test]
fn tm05_a_greenlet_that_never_blocks_is_not_interrupted() {
    bounded(|| {
        let base = sylvan::stats().timers;
        let g = spawn(|| {
            let t = Timeout::start(20 * MS);
            let start = Instant::now();
            let mut spins = 0u64;
            while start.elapsed() < 100 * MS {
                spins += 1;
                std::hint::black_box(spins);
            }
            (t.is_pending(), 7)
        });
        assert_eq!(g.join().unwrap(), (true, 7));
        assert_eq!(sylvan::stats().timers, base);
    })
}

// gevent Timeout.pending is False once it fired (test__timeout). After a
// caught expiry the guard is no longer pending, cancelling it is harmless,
// and nothing is thrown later.
#[test]
fn tm06_expired_timeout_is_not_pending_and_never_throws_again() {
    bounded(|| {
        let t = Timeout::start(20 * MS);
        assert!(t.is_pending());
        let p = catch_unwind(|| sleep(LONG)).unwrap_err();
        assert!(t.is_own_payload(&*p));
        assert!(sylvan::is_unwind_payload(&*p));
        assert!(!t.is_pending());
        t.cancel();
        let s = Instant::now();
        sleep(60 * MS);
        assert!(s.elapsed() >= 60 * MS);
    })
}

// sylvan Timeout::is_own_payload: true only for this timeout's unwind; not
// for another timeout's, a panic's, or a kill's (gevent: `except Timeout as
// t: if t is not timeout: raise`).
#[test]
fn tm07_is_own_payload_tells_payloads_apart() {
    bounded(|| {
        quiet();
        let outer = Timeout::start(LONG);
        let inner = Timeout::start(20 * MS);
        let p = catch_unwind(|| sleep(LONG)).unwrap_err();
        assert!(inner.is_own_payload(&*p));
        assert!(!outer.is_own_payload(&*p));
        let p = catch_unwind(|| panic!("plain")).unwrap_err();
        assert!(!outer.is_own_payload(&*p));
        assert!(!sylvan::is_unwind_payload(&*p));
        drop(outer);
        let g = spawn(|| {
            let t = Timeout::start(LONG);
            let p = catch_unwind(|| sleep(LONG)).unwrap_err();
            let own = t.is_own_payload(&*p);
            let unwind = sylvan::is_unwind_payload(&*p);
            if !own && unwind {
                resume_unwind(p);
            }
            panic!("own={own} unwind={unwind}");
        });
        yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
    })
}

// sylvan Timeout docs: a timeout is thrown into "the greenlet that armed
// it". A guard that outlives its (dead) owner, moved to main, throws into
// nobody: neither main nor a greenlet spawned later (which may reuse the
// owner's table slot) is interrupted.
#[test]
fn tm08_guard_outliving_its_owner_interrupts_nobody() {
    bounded(|| {
        let guard = spawn(|| Timeout::start(30 * MS)).join().unwrap();
        assert!(guard.is_pending());
        let b = spawn(|| {
            sleep(150 * MS);
            "b done"
        });
        let s = Instant::now();
        sleep(100 * MS);
        assert!(s.elapsed() >= 100 * MS);
        assert_eq!(b.join().unwrap(), "b done");
        assert!(!guard.is_pending());
        drop(guard);
    })
}

// FIFO among equal deadlines (sylvan timer.rs): a Timeout armed before a
// sleep with the same absolute deadline fires first, so the body is
// interrupted and with_timeout reports Elapsed.
#[test]
fn tm09_timeout_and_sleep_due_together_timeout_armed_first_wins() {
    bounded(|| {
        let deadline = Instant::now() + 30 * MS;
        let after = Rc::new(Cell::new(false));
        let a = after.clone();
        let t = Timeout::start_at(deadline);
        let r = catch_unwind(AssertUnwindSafe(|| {
            sleep_until(deadline);
            a.set(true);
        }));
        let p = r.expect_err("the timeout, armed first, fires first");
        assert!(t.is_own_payload(&*p));
        assert!(!after.get());
    })
}

// sylvan with_timeout docs: a panic that is not its own expiry passes
// through, and the timeout is cancelled (gevent: `with Timeout(...)` exits
// and cancels on any exception). No timer is left behind.
#[test]
fn tm10_panic_through_with_timeout_cancels_its_timer() {
    bounded(|| {
        let base = sylvan::stats().timers;
        let p = catch_unwind(|| {
            let _ = with_timeout(LONG, || -> () { panic!("through") });
        })
        .unwrap_err();
        assert_eq!(sylvan::runtime::payload_message(&*p), "through");
        assert_eq!(sylvan::stats().timers, base);
        let s = Instant::now();
        sleep(30 * MS);
        assert!(s.elapsed() >= 30 * MS);
    })
}

// sylvan timer.rs: "100,000 pending timers with heavy cancellation keep
// every hub turn at O(log n)". 100k Timeouts with scattered deadlines,
// dropped in a pseudo-random order, are all gone quickly, the dump no longer
// shows main with a timeout armed, and a sleep still works.
#[test]
fn tm11_hundred_thousand_timeouts_cancelled_in_random_order() {
    bounded(|| {
        let base = sylvan::stats().timers;
        let (armed_ev, go) = (Rc::new(Event::new()), Rc::new(Event::new()));
        let (a2, go2) = (armed_ev.clone(), go.clone());
        let took = Rc::new(Cell::new(None));
        let took2 = took.clone();
        let g = spawn(move || {
            let mut x = 0x9e37_79b9_7f4a_7c15_u64;
            let mut next = move || {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D)
            };
            let now = Instant::now();
            let mut guards: Vec<Option<Timeout>> = (0..100_000)
                .map(|_| {
                    let d = Duration::from_secs(60) + Duration::from_micros(next() % 1_000_000);
                    Some(Timeout::start_at(now + d))
                })
                .collect();
            a2.set();
            go2.wait();
            let t = Instant::now();
            for _ in 0..200_000 {
                let i = (next() % 100_000) as usize;
                guards[i] = None;
            }
            guards.clear();
            took2.set(Some(t.elapsed()));
            sleep(LONG);
        });
        armed_ev.wait();
        let info = |id| {
            sylvan::dump()
                .greenlets
                .into_iter()
                .find(|g| g.id == id)
                .unwrap()
        };
        assert_eq!(sylvan::stats().timers, base + 100_000);
        assert!(info(g.id()).timeout_armed);
        go.set();
        yield_until("cancelled and asleep", || {
            took.get().is_some() && info(g.id()).wait == WaitKind::Sleep
        });
        assert!(!info(g.id()).timeout_armed, "no Timeout of it is pending");
        assert_eq!(sylvan::stats().timers, base + 1, "only its sleep");
        let took = took.get().unwrap();
        assert!(took < Duration::from_secs(3), "cancelling took {took:?}");
        g.kill();
        assert_eq!(sylvan::stats().timers, base);
    })
}

// gevent: a Timeout around a blocking get leaves the channel intact
// (test__queue timeouts). sylvan mpsc + with_timeout: the parked receive is
// unwound, and a value sent afterwards is not lost.
#[test]
fn tm12_with_timeout_around_mpsc_recv_loses_nothing() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        assert!(with_timeout(30 * MS, || rx.recv()).is_err());
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(5).unwrap();
        });
        assert_eq!(rx.recv(), Ok(5));
        assert_eq!(rx.recv(), Err(RecvError));
        th.join().unwrap();
    })
}

// test__api_timeout: nested with_timeout, the outer one shorter, around a
// socket read: the outer expires, the inner with_timeout lets it through,
// and the socket is usable afterwards.
#[test]
fn tm13_outer_timeout_through_inner_with_timeout_around_a_socket_read() {
    use std::io::{Read, Write};
    bounded(|| {
        let (mut a, mut b) = sylvan::net::UnixStream::pair().unwrap();
        let inner_saw = Rc::new(Cell::new(None));
        let s = inner_saw.clone();
        let r = with_timeout(30 * MS, || {
            let mut buf = [0u8; 4];
            let inner = with_timeout(LONG, || a.read(&mut buf).map(|_| ()));
            s.set(Some(inner.is_err()));
        });
        assert!(
            r.is_err(),
            "the outer timeout is reported by the outer call"
        );
        assert_eq!(inner_saw.get(), None, "the inner call did not return");
        b.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    })
}

// ================================================================ signals

// test__signal: a handler runs on signal; sylvan::signal: several
// registrations for different signals each run their own handler, each in
// a greenlet named "signal N".
#[test]
fn sg01_two_signals_run_their_own_handlers_in_named_greenlets() {
    in_child(
        "probes6::sg01_two_signals_run_their_own_handlers_in_named_greenlets",
        "p6_sg01",
        || {
            type Seen = Vec<(i32, Option<String>, u64)>;
            let log: Rc<RefCell<Seen>> = Rc::default();
            let (l1, l2) = (log.clone(), log.clone());
            let _h1 = sylvan::signal(libc::SIGUSR1, move || {
                l1.borrow_mut().push((
                    libc::SIGUSR1,
                    sylvan::current_name(),
                    sylvan::current().as_u64(),
                ))
            })
            .unwrap();
            let _h2 = sylvan::signal(libc::SIGUSR2, move || {
                l2.borrow_mut().push((
                    libc::SIGUSR2,
                    sylvan::current_name(),
                    sylvan::current().as_u64(),
                ))
            })
            .unwrap();
            raise(libc::SIGUSR1);
            yield_until("USR1 handled", || log.borrow().len() == 1);
            raise(libc::SIGUSR2);
            yield_until("USR2 handled", || log.borrow().len() == 2);
            let log = log.borrow();
            assert_eq!(log[0].0, libc::SIGUSR1);
            assert_eq!(log[0].1.as_deref(), Some("signal 10"));
            assert_eq!(log[1].0, libc::SIGUSR2);
            assert_eq!(log[1].1.as_deref(), Some("signal 12"));
            assert!(log[0].2 != 0 && log[1].2 != 0 && log[0].2 != log[1].2);
        },
    );
}

// sylvan::signal docs: several registrations for one signal all run;
// dropping one unregisters only it; the previous disposition (SIG_DFL) is
// restored when the last one goes (gevent: signal watcher cancel()).
#[test]
fn sg02_two_registrations_one_dropped_then_disposition_restored() {
    in_child(
        "probes6::sg02_two_registrations_one_dropped_then_disposition_restored",
        "p6_sg02",
        || {
            let (a, b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
            let (a2, b2) = (a.clone(), b.clone());
            let ha = sylvan::signal(libc::SIGUSR1, move || a2.set(a2.get() + 1)).unwrap();
            let hb = sylvan::signal(libc::SIGUSR1, move || b2.set(b2.get() + 1)).unwrap();
            assert_eq!(ha.signum(), libc::SIGUSR1);
            raise(libc::SIGUSR1);
            yield_until("both ran", || a.get() == 1 && b.get() == 1);
            ha.cancel();
            assert_ne!(disposition(libc::SIGUSR1), libc::SIG_DFL);
            raise(libc::SIGUSR1);
            yield_until("b ran again", || b.get() == 2);
            sleep(30 * MS);
            assert_eq!(a.get(), 1, "the dropped registration did not run");
            drop(hb);
            assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
        },
    );
}

// sylvan::signal docs: "its previous disposition (default action, ignore,
// or another handler) is replaced; it is restored when the last one is
// dropped": SIG_IGN comes back.
#[test]
fn sg03_previous_sig_ign_is_restored() {
    in_child(
        "probes6::sg03_previous_sig_ign_is_restored",
        "p6_sg03",
        || {
            // SAFETY: sets SIGUSR2 to be ignored in this child process.
            unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
            let hit = Rc::new(Cell::new(false));
            let h2 = hit.clone();
            let h = sylvan::signal(libc::SIGUSR2, move || h2.set(true)).unwrap();
            raise(libc::SIGUSR2);
            yield_until("handled", || hit.get());
            drop(h);
            assert_eq!(disposition(libc::SIGUSR2), libc::SIG_IGN);
            raise(libc::SIGUSR2); // ignored again: the child lives on
            sleep(10 * MS);
        },
    );
}

// gevent: a signal watcher stopped before the loop runs its callback never
// calls it. sylvan: a registration dropped after the signal arrived but
// before the hub drained its pipe does not run the handler.
#[test]
fn sg04_registration_dropped_before_the_hub_drains_does_not_run() {
    in_child(
        "probes6::sg04_registration_dropped_before_the_hub_drains_does_not_run",
        "p6_sg04",
        || {
            let hit = Rc::new(Cell::new(false));
            let h2 = hit.clone();
            let keep = sylvan::signal(libc::SIGUSR2, || {}).unwrap(); // keeps USR2 caught
            let h = sylvan::signal(libc::SIGUSR1, move || h2.set(true)).unwrap();
            let keep1 = sylvan::signal(libc::SIGUSR1, || {}).unwrap();
            raise(libc::SIGUSR1);
            drop(h);
            sleep(50 * MS);
            assert!(!hit.get());
            drop((keep, keep1));
        },
    );
}

// gevent.signal_handler spawns a new greenlet per signal, so a handler that
// blocks does not hold back the next signal's handler. sylvan::signal: "The
// handler is ordinary greenlet code: it may block".
#[test]
fn sg05_a_blocking_handler_does_not_hold_back_the_next_signal() {
    in_child(
        "probes6::sg05_a_blocking_handler_does_not_hold_back_the_next_signal",
        "p6_sg05",
        || {
            let started = Rc::new(Cell::new(0));
            let ended = Rc::new(Cell::new(0));
            let (s, e) = (started.clone(), ended.clone());
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                s.set(s.get() + 1);
                sleep(150 * MS);
                e.set(e.get() + 1);
            })
            .unwrap();
            raise(libc::SIGUSR1);
            yield_until("first handler started", || started.get() == 1);
            raise(libc::SIGUSR1);
            yield_until("second handler started", || started.get() == 2);
            assert_eq!(ended.get(), 0, "both run at once");
            yield_until("both ended", || ended.get() == 2);
        },
    );
}

// test__signal: the handler runs while main sleeps; sylvan sleep docs:
// "Only the timer ends the sleep": main's sleep is not cut short by the
// handler greenlet running meanwhile.
#[test]
fn sg06_signal_during_mains_sleep_runs_the_handler_and_the_sleep_is_whole() {
    in_child(
        "probes6::sg06_signal_during_mains_sleep_runs_the_handler_and_the_sleep_is_whole",
        "p6_sg06",
        || {
            let hit = Rc::new(Cell::new(false));
            let h2 = hit.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || h2.set(true)).unwrap();
            let th = std::thread::spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                // SAFETY: the process handles SIGUSR1.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
            });
            let s = Instant::now();
            sleep(300 * MS);
            assert!(s.elapsed() >= 300 * MS, "{:?}", s.elapsed());
            assert!(hit.get());
            th.join().unwrap();
        },
    );
}

// sylvan::signal: the handler is greenlet code, so a panic in it is a
// greenlet failure reported by the error policy (then raised in main, as
// gevent does); the registration stays and the next signal runs it again.
#[test]
fn sg07_a_panicking_handler_stays_installed() {
    in_child(
        "probes6::sg07_a_panicking_handler_stays_installed",
        "p6_sg07",
        || {
            let reports = Rc::new(Cell::new(0));
            let r = reports.clone();
            sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |_| {
                r.set(r.get() + 1)
            })));
            let runs = Rc::new(Cell::new(0));
            let c = runs.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                c.set(c.get() + 1);
                panic!("handler boom");
            })
            .unwrap();
            for n in 1..=2 {
                raise(libc::SIGUSR1);
                let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    yield_until("the handler's panic raised in main", || false)
                }))
                .expect_err("raised in main");
                assert_eq!(p.downcast_ref::<&str>(), Some(&"handler boom"));
                assert_eq!(reports.get(), n, "reported before it was raised");
            }
            assert_eq!(runs.get(), 2);
        },
    );
}

// sylvan::signal docs: InvalidInput for SIGKILL, SIGSTOP, the fault signals
// and numbers out of range (nothing is installed, so no child is needed).
#[test]
fn sg08_uncatchable_and_out_of_range_signals_are_rejected() {
    for sig in [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        0,
        -1,
        libc::SIGRTMAX() + 1,
    ] {
        let e = sylvan::signal(sig, || {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "signal {sig}");
    }
}

// sylvan::signal docs: "an error when 64 registrations already exist
// process-wide"; a freed slot can be used again, and every registration
// for the signal runs.
#[test]
fn sg09_sixty_four_registrations_then_an_error_then_slot_reuse() {
    in_child(
        "probes6::sg09_sixty_four_registrations_then_an_error_then_slot_reuse",
        "p6_sg09",
        || {
            let runs = Rc::new(Cell::new(0));
            let mut hs: Vec<_> = (0..64)
                .map(|_| {
                    let c = runs.clone();
                    sylvan::signal(libc::SIGUSR1, move || c.set(c.get() + 1)).unwrap()
                })
                .collect();
            assert!(sylvan::signal(libc::SIGUSR2, || {}).is_err());
            hs.swap_remove(10);
            let c = runs.clone();
            hs.push(sylvan::signal(libc::SIGUSR1, move || c.set(c.get() + 1)).unwrap());
            raise(libc::SIGUSR1);
            yield_until("all 64 ran", || runs.get() == 64);
            sleep(20 * MS);
            assert_eq!(runs.get(), 64);
            drop(hs);
            assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
        },
    );
}

// ================================================================ inspect

// sylvan HubStats docs: alive/spawned/ready/timers move with spawns,
// parks and kills (gevent: hub bookkeeping after killall).
#[test]
fn in01_stats_follow_spawn_park_and_killall() {
    bounded(|| {
        let before = sylvan::stats();
        let gs: Vec<_> = (0..10).map(|_| spawn(|| sleep(LONG))).collect();
        let s = sylvan::stats();
        assert_eq!(s.alive, before.alive + 10);
        assert_eq!(s.spawned, before.spawned + 10);
        assert_eq!(s.ready, before.ready + 10);
        yield_now();
        let s = sylvan::stats();
        assert_eq!(s.ready, 0);
        assert_eq!(s.timers, before.timers + 10);
        killall(&gs, None).unwrap();
        let s = sylvan::stats();
        assert_eq!(s.alive, before.alive);
        assert_eq!(s.timers, before.timers);
        assert_eq!(s.spawned, before.spawned + 10);
    })
}

// sylvan dump docs: "what each waits on": a kill waiting for a greenlet
// that catches GreenletExit and sleeps, `idle`, a channel receive, and an
// unstarted spawn_later (state "created").
#[test]
fn in02_dump_shows_kill_idle_channel_and_created() {
    bounded(|| {
        quiet();
        let stubborn = spawn(|| {
            let p = catch_unwind(|| sleep(LONG)).unwrap_err();
            sleep(200 * MS);
            resume_unwind(p);
        });
        let sid = stubborn.id();
        let stubborn = Rc::new(stubborn);
        let s2 = stubborn.clone();
        yield_now();
        let killer = spawn(move || s2.kill());
        let idler = spawn(sylvan::idle);
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let receiver = spawn(move || rx.recv());
        let later = spawn_later(LONG, || ());
        // let all of them park; idle stays parked while the others block
        yield_now();
        yield_now();
        let dump = sylvan::dump();
        let find = |id| {
            dump.greenlets
                .iter()
                .find(|g| g.id == id)
                .unwrap_or_else(|| panic!("{id} not in\n{dump}"))
        };
        assert_eq!(find(killer.id()).wait, WaitKind::Kill(sid), "{dump}");
        assert_eq!(find(sid).wait, WaitKind::Sleep, "{dump}");
        assert_eq!(
            find(receiver.id()).wait,
            WaitKind::Sync("a channel receive"),
            "{dump}"
        );
        assert_eq!(find(later.id()).state, "created", "{dump}");
        assert_eq!(find(later.id()).wait, WaitKind::Nothing, "{dump}");
        let _ = find(idler.id());
        killer.join().unwrap();
        assert!(stubborn.is_dead());
        tx.send(1).unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(1));
        later.kill();
        idler.join().unwrap();
    })
}

// sylvan GreenletInfo docs: `waiting_for` is how long it has waited and
// `switches` how many times the hub resumed it.
#[test]
fn in03_dump_waiting_for_and_switch_counts() {
    bounded(|| {
        let g = spawn(|| {
            for _ in 0..5 {
                yield_now();
            }
            sleep(LONG);
        });
        for _ in 0..7 {
            yield_now();
        }
        sleep(100 * MS);
        let dump = sylvan::dump();
        let info = dump.greenlets.iter().find(|i| i.id == g.id()).unwrap();
        assert_eq!(info.switches, 6, "{dump}");
        assert_eq!(info.wait, WaitKind::Sleep);
        let w = info.waiting_for.unwrap();
        assert!(w >= 50 * MS && w < LONG, "{w:?}");
        g.kill();
    })
}

// sylvan: one hub per thread; the dump and stats of a fresh thread's hub
// see only its own main greenlet.
#[test]
fn in04_another_threads_hub_has_its_own_dump_and_stats() {
    bounded(|| {
        let here = spawn(|| sleep(LONG));
        yield_now();
        let (n, alive) = std::thread::spawn(|| {
            let d = sylvan::dump();
            (d.greenlets.len(), sylvan::stats().alive)
        })
        .join()
        .unwrap();
        assert_eq!((n, alive), (1, 0));
        here.kill();
    })
}

// ================================================================ mpsc

// sylvan mpsc docs: "When the last sender is dropped the receiver wakes and
// sees the channel disconnected" — here the sender is dropped by another
// greenlet of the same hub (the direct wake path).
#[test]
fn mp01_sender_dropped_by_a_greenlet_wakes_the_parked_receiver() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let r = spawn(move || rx.recv());
        yield_now();
        let d = spawn(move || {
            sleep(20 * MS);
            drop(tx);
        });
        assert_eq!(r.join().unwrap(), Err(RecvError));
        d.join().unwrap();
    })
}

// sylvan mpsc docs: "Called on a plain thread (no greenlets), recv simply
// blocks that thread"; recv_timeout waits its time there.
#[test]
fn mp02_plain_thread_receives_from_a_greenlet() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let th = std::thread::spawn(move || {
            let s = Instant::now();
            let first = rx.recv_timeout(Duration::from_millis(30));
            let waited = s.elapsed();
            (first, waited, rx.recv(), rx.recv())
        });
        let g = spawn(move || {
            sleep(100 * MS);
            tx.send(9).unwrap();
        });
        g.join().unwrap();
        let mut out = None;
        yield_until("thread done", || th.is_finished());
        if let Ok(v) = th.join() {
            out = Some(v);
        }
        let (first, waited, second, third) = out.unwrap();
        assert_eq!(first, Err(RecvTimeoutError::Timeout));
        assert!(waited >= 30 * MS, "{waited:?}");
        assert_eq!(second, Ok(9));
        assert_eq!(third, Err(RecvError));
    })
}

// sylvan mpsc docs: the Receiver is `Send` ("move it to the thread that
// will receive"): after parking (and timing out) on one hub it receives on
// another thread's hub, woken by a sender on the first.
#[test]
fn mp03_receiver_moved_to_another_hub_after_a_timeout() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        assert_eq!(rx.recv_timeout(20 * MS), Err(RecvTimeoutError::Timeout));
        let th = std::thread::spawn(move || {
            let g = sylvan::spawn(move || rx.recv());
            g.join().unwrap()
        });
        sleep(50 * MS);
        tx.send(4).unwrap();
        yield_until("other hub received", || th.is_finished());
        assert_eq!(th.join().unwrap(), Ok(4));
    })
}

// gevent queue: several getters parked on one queue each get one item.
// sylvan mpsc: greenlets sharing a receiver (through an Rc) each receive
// one of the values a thread sends; none is lost or duplicated.
#[test]
fn mp04_greenlets_sharing_a_receiver_each_get_one_value() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let gs: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || rx.recv().unwrap())
            })
            .collect();
        yield_now();
        let th = std::thread::spawn(move || {
            for v in [1, 10, 100] {
                std::thread::sleep(Duration::from_millis(10));
                tx.send(v).unwrap();
            }
        });
        let mut got: Vec<u32> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, [1, 10, 100]);
        th.join().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    })
}

// sylvan OneshotReceiver::recv_timeout docs: "on timeout the receiver is
// still usable".
#[test]
fn mp05_oneshot_recv_timeout_then_the_value() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::oneshot::<&'static str>();
        assert_eq!(rx.recv_timeout(20 * MS), Err(RecvTimeoutError::Timeout));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let th = std::thread::spawn(move || tx.send("late").unwrap());
        assert_eq!(rx.recv_timeout(LONG), Ok("late"));
        th.join().unwrap();
    })
}

// sylvan DESIGN: a thread's exit kills its live greenlets and runs their
// destructors; senders they held are dropped, so a receiver on another hub
// sees the channel disconnected instead of waiting forever.
#[test]
fn mp06_senders_held_by_greenlets_of_an_exiting_thread_disconnect() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let th = std::thread::spawn(move || {
            for i in 0..3 {
                let tx = tx.clone();
                sylvan::spawn(move || {
                    tx.send(i).unwrap();
                    sleep(Duration::from_secs(3600));
                    drop(tx);
                });
            }
            drop(tx);
            sleep(20 * MS);
        });
        let mut got: Vec<u32> = rx.iter().collect();
        got.sort();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        th.join().unwrap();
    })
}

// sylvan mpsc recv_timeout: std's meaning of the edge durations: zero
// returns at once (a queued value or Timeout), Duration::MAX waits as long
// as it takes.
#[test]
fn mp07_recv_timeout_zero_and_max() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let s = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(s.elapsed() < Duration::from_secs(1));
        tx.send(1).unwrap();
        assert_eq!(rx.recv_timeout(Duration::ZERO), Ok(1));
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(2).unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(2));
        th.join().unwrap();
    })
}

// sylvan mpsc: the bridge between hubs. A thousand round trips between a
// greenlet on this hub and one on another thread's hub lose no wake-up.
#[test]
fn mp08_ping_pong_between_two_hubs() {
    bounded(|| {
        let (to_b, b_rx) = sylvan::mpsc::channel::<u32>();
        let (to_a, a_rx) = sylvan::mpsc::channel::<u32>();
        let th = std::thread::spawn(move || {
            let ticker = sylvan::spawn(|| {
                loop {
                    sleep(MS);
                }
            });
            let g = sylvan::spawn(move || {
                let mut n = 0;
                for v in b_rx.iter() {
                    to_a.send(v + 1).unwrap();
                    n += 1;
                }
                n
            });
            let n = g.join().unwrap();
            ticker.kill();
            n
        });
        let pinger = spawn(move || {
            for i in 0..1000 {
                to_b.send(i).unwrap();
                assert_eq!(a_rx.recv(), Ok(i + 1));
            }
        });
        pinger.join().unwrap();
        yield_until("other hub done", || th.is_finished());
        assert_eq!(th.join().unwrap(), 1000);
    })
}

/// Counts drops across threads.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// std::sync::mpsc semantics (sylvan mpsc: "The error types are
// std::sync::mpsc's"): dropping the receiver drops the queued values, and a
// later send hands its value back.
#[test]
fn mp09_dropping_the_receiver_drops_queued_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = sylvan::mpsc::channel::<Counted>();
    for _ in 0..3 {
        tx.send(Counted(drops.clone())).unwrap();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    let back = tx.send(Counted(drops.clone())).unwrap_err().0;
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    drop(back);
    assert_eq!(drops.load(Ordering::SeqCst), 4);
}

// gevent: an Event set while its waiter's timeout is pending wakes it;
// sylvan: a receiver parked with recv_timeout in main while a greenlet of
// the same hub sends wakes with the value, well before its deadline.
#[test]
fn mp10_same_hub_send_wakes_recv_timeout_before_its_deadline() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = spawn(move || {
            e.wait();
            tx.send(3).unwrap();
            sleep(LONG);
        });
        ev.set();
        let s = Instant::now();
        assert_eq!(rx.recv_timeout(LONG), Ok(3));
        assert!(s.elapsed() < Duration::from_secs(2));
        g.kill();
    })
}

// ================================================================ round 2

// sylvan with_timeout docs: "If f catches the expiry itself and returns,
// the result is Ok"; gevent Timeout fires once, so the body's later block is
// not interrupted again.
#[test]
fn tm14_body_that_swallows_its_expiry_is_not_interrupted_again() {
    bounded(|| {
        let r = with_timeout(20 * MS, || {
            let p = catch_unwind(|| sleep(LONG)).unwrap_err();
            assert!(sylvan::is_unwind_payload(&*p));
            let s = Instant::now();
            sleep(60 * MS);
            assert!(s.elapsed() >= 60 * MS);
            5
        });
        assert_eq!(r, Ok(5));
    })
}

// gevent: `with Timeout(0.05): Event().wait()` raises the Timeout (the
// timer is a referenced watcher), never a LoopExit. sylvan DESIGN: "would
// block forever" only when nothing can wake main; an armed Timeout can.
#[test]
fn tm15_main_on_an_event_with_only_a_timeout_armed_gets_the_timeout() {
    let r = std::thread::spawn(|| {
        catch_unwind(|| {
            let ev = Event::new();
            let s = Instant::now();
            let r = with_timeout(50 * MS, || ev.wait());
            (r.is_err(), s.elapsed() >= 50 * MS)
        })
        .map_err(|p| sylvan::runtime::payload_message(&*p).to_string())
    })
    .join()
    .unwrap();
    assert_eq!(r, Ok((true, true)));
}

// gevent test__greenlet: join(timeout) on a greenlet from spawn_later that
// has not started returns without it; the greenlet still starts on time.
#[test]
fn tm16_wait_with_a_timeout_on_an_unstarted_spawn_later() {
    bounded(|| {
        let g = spawn_later(100 * MS, || 3);
        assert!(!g.wait(Some(20 * MS)));
        assert!(!g.is_started());
        assert!(g.wait(Some(LONG)));
        assert_eq!(g.join().unwrap(), 3);
    })
}

// gevent: killall of greenlets from spawn_later before they start: none
// runs (test__greenlet kill dormant). sylvan: no timer or ready entry left.
#[test]
fn in05_killing_unstarted_greenlets_leaves_no_ready_or_timer_entry() {
    bounded(|| {
        let before = sylvan::stats();
        let ran = Rc::new(Cell::new(0));
        let mut gs = Vec::new();
        for _ in 0..5 {
            let r = ran.clone();
            gs.push(spawn(move || r.set(r.get() + 1)));
            let r = ran.clone();
            gs.push(spawn_later(LONG, move || r.set(r.get() + 1)));
        }
        let mid = sylvan::stats();
        assert_eq!(mid.ready, before.ready + 5);
        assert_eq!(mid.timers, before.timers + 5);
        killall(&gs, None).unwrap();
        assert!(gs.iter().all(|g| g.is_dead()));
        let after = sylvan::stats();
        assert_eq!(after.timers, before.timers);
        // HubStats::alive: "Greenlets alive now (spawned, not dead)"; the
        // dump (which skips the dead) agrees with it before the kill.
        assert_eq!(
            after.alive,
            sylvan::dump().greenlets.len() - 1,
            "stats().alive counts the 5 killed-before-start greenlets still in the ready ring"
        );
        assert_eq!(after.alive, before.alive);
        yield_now();
        assert_eq!(ran.get(), 0);
        assert_eq!(sylvan::stats().alive, before.alive);
    })
}

// gevent test__signal: a handler may cancel its own watcher; sylvan: a
// SignalHandler dropped by its own handler greenlet stops further runs
// (another registration keeps the signal caught).
#[test]
fn sg10_a_handler_that_drops_its_own_registration_runs_once() {
    in_child(
        "probes6::sg10_a_handler_that_drops_its_own_registration_runs_once",
        "p6_sg10",
        || {
            let keep_runs = Rc::new(Cell::new(0));
            let k = keep_runs.clone();
            let _keep = sylvan::signal(libc::SIGUSR1, move || k.set(k.get() + 1)).unwrap();
            let slot: Rc<RefCell<Option<sylvan::SignalHandler>>> = Rc::default();
            let runs = Rc::new(Cell::new(0));
            let (s2, r2) = (slot.clone(), runs.clone());
            let h = sylvan::signal(libc::SIGUSR1, move || {
                r2.set(r2.get() + 1);
                drop(s2.borrow_mut().take());
            })
            .unwrap();
            *slot.borrow_mut() = Some(h);
            raise(libc::SIGUSR1);
            yield_until("first", || keep_runs.get() == 1 && runs.get() == 1);
            assert!(slot.borrow().is_none());
            raise(libc::SIGUSR1);
            yield_until("second", || keep_runs.get() == 2);
            sleep(30 * MS);
            assert_eq!(runs.get(), 1);
        },
    );
}

// sylvan dump docs + signal docs: a handler greenlet that blocks is a live
// greenlet named "signal N", shown waiting on its sleep.
#[test]
fn sg11_a_blocked_handler_shows_in_the_dump() {
    in_child(
        "probes6::sg11_a_blocked_handler_shows_in_the_dump",
        "p6_sg11",
        || {
            let started = Rc::new(Cell::new(false));
            let s = started.clone();
            let _h = sylvan::signal(libc::SIGUSR2, move || {
                s.set(true);
                sleep(LONG);
            })
            .unwrap();
            let before = sylvan::stats().alive;
            raise(libc::SIGUSR2);
            yield_until("handler started", || started.get());
            let dump = sylvan::dump();
            let h = dump
                .greenlets
                .iter()
                .find(|g| g.name.as_deref() == Some("signal 12"))
                .unwrap_or_else(|| panic!("{dump}"));
            assert_eq!(h.wait, WaitKind::Sleep);
            assert_eq!(sylvan::stats().alive, before + 1);
            assert!(dump.to_string().contains("signal 12"));
        },
    );
}

// FIFO among equal deadlines (sylvan timer.rs) holds across kinds of
// timer: sleepers and a Timeout with one absolute deadline fire in the order
// they were armed.
#[test]
fn tm17_equal_deadline_sleeps_and_timeouts_fire_in_arming_order() {
    bounded(|| {
        let log = Log::default();
        let d = Instant::now() + 40 * MS;
        let mut gs = Vec::new();
        for i in 0..6 {
            let l = log.clone();
            gs.push(spawn(move || {
                if i % 2 == 0 {
                    sleep_until(d);
                } else {
                    let t = Timeout::start_at(d);
                    let p = catch_unwind(|| sleep(LONG)).unwrap_err();
                    assert!(t.is_own_payload(&*p));
                }
                l.push(i.to_string());
            }));
            yield_now(); // arm in order
        }
        assert!(joinall(&gs, None));
        assert_eq!(log.get(), ["0", "1", "2", "3", "4", "5"]);
    })
}

// sylvan mpsc: many senders on many threads, each dropped when done, while
// the receiver parks again and again with recv_timeout: every value arrives
// and the last drop is seen as Disconnected, promptly.
#[test]
fn mp11_many_thread_senders_dropping_while_recv_timeout_parks() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let ths: Vec<_> = (0..8)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        tx.send(t * 1000 + i).unwrap();
                        if i % 25 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut n = 0;
        let s = Instant::now();
        loop {
            match rx.recv_timeout(LONG) {
                Ok(_) => n += 1,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("timed out after {n}"),
            }
        }
        assert_eq!(n, 800);
        assert!(s.elapsed() < Duration::from_secs(3));
        for t in ths {
            t.join().unwrap();
        }
    })
}

// sylvan DESIGN: a thread's exit kills its live greenlets and runs their
// destructors; a SignalHandler owned by such a greenlet is dropped then
// (unregistering cleanly), and later signals go only to live registrations.
#[test]
fn sg12_registration_owned_by_a_greenlet_killed_at_thread_exit() {
    in_child(
        "probes6::sg12_registration_owned_by_a_greenlet_killed_at_thread_exit",
        "p6_sg12",
        || {
            let hits = Arc::new(AtomicUsize::new(0));
            let h2 = hits.clone();
            std::thread::spawn(move || {
                let h = sylvan::signal(libc::SIGUSR1, move || {
                    h2.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                sylvan::spawn(move || {
                    let _h = h;
                    sleep(Duration::from_secs(3600));
                });
                yield_now();
            })
            .join()
            .unwrap();
            assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
            let here = Rc::new(Cell::new(0));
            let c = here.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || c.set(c.get() + 1)).unwrap();
            raise(libc::SIGUSR1);
            yield_until("main's handler ran", || here.get() == 1);
            assert_eq!(hits.load(Ordering::SeqCst), 0);
        },
    );
}

// sylvan Timeout::is_own_payload: "True when payload is this timeout's
// unwind" (gevent: `except Timeout as t: if t is not timeout: raise`). A
// timeout unwind from another thread's hub (here carried by a thread's
// join; spawn_blocking resumes a job's payload the same way) is not this
// timeout's: with_timeout must let it through, not report its own Elapsed.
#[test]
fn tm18_another_hubs_timeout_unwind_is_not_this_timeouts() {
    /// The payload of the first Timeout of a fresh thread's hub.
    fn foreign() -> Box<dyn std::any::Any + Send> {
        std::thread::spawn(|| {
            catch_unwind(|| {
                let _t = Timeout::start(10 * MS);
                sleep(LONG);
            })
            .unwrap_err()
        })
        .join()
        .unwrap()
    }
    // the first Timeout of another fresh hub, far from expiry
    let own = std::thread::spawn(|| {
        let p = foreign();
        assert!(sylvan::is_unwind_payload(&*p));
        Timeout::start(LONG).is_own_payload(&*p)
    })
    .join()
    .unwrap();
    // with_timeout (that hub's first Timeout) around code that resumes it
    let through = std::thread::spawn(|| {
        let p = foreign();
        catch_unwind(AssertUnwindSafe(|| {
            with_timeout(LONG, || resume_unwind(p)).is_err()
        }))
        .is_err()
    })
    .join()
    .unwrap();
    assert_eq!(
        (own, through),
        (false, true),
        "(is_own_payload, with_timeout let it through)"
    );
}

/// As probes3's helper: runs `op` in a greenlet G whose Timeout fired and
/// had its throw queued, then was dropped by another greenlet before G ran,
/// so that G gets the plain (spurious) wake-up of a withdrawn throw.
fn spurious_wake_in<T: 'static>(op: impl FnOnce() -> T + 'static) -> sylvan::Greenlet<T> {
    let t0 = Instant::now();
    let slot: Rc<RefCell<Option<Timeout>>> = Rc::default();
    let s = slot.clone();
    let g = spawn(move || {
        *s.borrow_mut() = Some(Timeout::start_at(t0 + 10 * MS));
        op()
    });
    let h = spawn(move || {
        sleep_until(t0 + 5 * MS);
        drop(slot.borrow_mut().take().expect("G armed its Timeout"));
    });
    yield_now(); // G parks in `op`, H in its sleep
    std::thread::sleep(20 * MS); // both deadlines pass while the hub is busy
    h.join().unwrap(); // one turn fires both timers; H runs first
    yield_now(); // G has taken its wake-up
    g
}

// hub.rs withdraw_deferred_timeout: "the plain wake-up left by a withdrawn
// throw is spurious and every park re-checks what it waits for" — here
// the mpsc receive (recv and recv_timeout), which must keep waiting.
#[test]
fn mp12_mpsc_recv_survives_a_withdrawn_throw() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let g = spurious_wake_in(move || rx.recv());
        assert!(!g.is_dead(), "recv returned on a spurious wake-up");
        tx.send(1).unwrap();
        assert_eq!(g.join().unwrap(), Ok(1));

        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let g = spurious_wake_in(move || {
            let s = Instant::now();
            (rx.recv_timeout(200 * MS), s.elapsed())
        });
        assert!(!g.is_dead(), "recv_timeout returned on a spurious wake-up");
        let (r, waited) = g.join().unwrap();
        assert_eq!(r, Err(RecvTimeoutError::Timeout));
        assert!(waited >= 200 * MS, "{waited:?}");
        drop(tx);
    })
}

// The same for a greenlet waiting on spawn_blocking (its result comes
// through a oneshot): the spurious wake-up does not end the wait.
#[test]
fn mp13_spawn_blocking_wait_survives_a_withdrawn_throw() {
    bounded(|| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = spurious_wake_in(move || {
            sylvan::spawn_blocking(move || {
                rx.recv_timeout(Duration::from_secs(4)).ok();
                11
            })
        });
        assert!(!g.is_dead());
        tx.send(()).unwrap();
        assert_eq!(g.join().unwrap(), 11);
    })
}

// gevent: a signal interrupting the hub's poll (EINTR) is not an error and
// wakes nobody by itself. sylvan poll.rs: "EINTR counts as an empty
// wake-up": main's sleep, interrupted by a signal aimed at its thread whose
// registration lives on another thread's hub, is whole, and that hub runs
// the handler.
#[test]
fn sg13_signal_aimed_at_a_sleeping_main_thread_handled_on_another_hub() {
    in_child(
        "probes6::sg13_signal_aimed_at_a_sleeping_main_thread_handled_on_another_hub",
        "p6_sg13",
        || {
            let hits = Arc::new(AtomicUsize::new(0));
            let h2 = hits.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = sylvan::mpsc::channel::<()>();
            let other = std::thread::spawn(move || {
                let _h = sylvan::signal(libc::SIGUSR1, move || {
                    h2.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                ready_tx.send(()).unwrap();
                let _ = stop_rx.recv();
            });
            ready_rx.recv().unwrap();
            // SAFETY: pthread_self is this (main test) thread's id.
            let me = unsafe { libc::pthread_self() } as usize;
            let th = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                // SAFETY: the target thread is alive (it joins us later) and
                // the process handles SIGUSR1.
                unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
            });
            let s = Instant::now();
            sleep(300 * MS);
            assert!(s.elapsed() >= 300 * MS, "{:?}", s.elapsed());
            th.join().unwrap();
            yield_until("handled on the other hub", || {
                hits.load(Ordering::SeqCst) == 1
            });
            stop_tx.send(()).unwrap();
            other.join().unwrap();
        },
    );
}

/// Parks a greenlet in `op` (which waits with a long timeout), checks that
/// exactly one more timer is armed, wakes it with `satisfy`, and checks the
/// timer is gone once it returned.
fn early_wake_leaves_no_timer<T: 'static>(
    what: &str,
    op: impl FnOnce() -> T + 'static,
    satisfy: impl FnOnce(),
) -> T {
    let base = sylvan::stats().timers;
    let g = spawn(op);
    yield_now();
    assert!(!g.is_dead(), "{what}: returned at once");
    assert_eq!(sylvan::stats().timers, base + 1, "{what}: its timer");
    satisfy();
    let v = g.join().unwrap();
    assert_eq!(sylvan::stats().timers, base, "{what}: timer left behind");
    v
}

// gevent: a wait with a timeout that is satisfied early stops its timer
// (test__core_timer: no timer stays active). sylvan timer.rs: "a cancelled
// timer leaves nothing behind"; stats().timers counts armed timers.
#[test]
fn in07_waits_satisfied_early_leave_no_timer() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let r = early_wake_leaves_no_timer("mpsc recv_timeout", move || rx.recv_timeout(LONG), {
            move || tx.send(1).unwrap()
        });
        assert_eq!(r, Ok(1));

        let ev = Rc::new(Event::new());
        let e = ev.clone();
        assert!(early_wake_leaves_no_timer(
            "event wait_timeout",
            move || e.wait_timeout(LONG),
            || ev.set()
        ));

        let ar: Rc<sylvan::sync::AsyncResult<u8>> = Rc::new(sylvan::sync::AsyncResult::new());
        let a = ar.clone();
        let r = early_wake_leaves_no_timer(
            "async result get_timeout",
            move || a.get_timeout(LONG).ok(),
            || ar.set(2).unwrap(),
        );
        assert_eq!(r, Some(2));

        let q = Rc::new(sylvan::sync::Queue::<u8>::unbounded());
        let q2 = q.clone();
        let r = early_wake_leaves_no_timer(
            "queue get_timeout",
            move || q2.get_timeout(LONG).ok(),
            || q.put(3).unwrap(),
        );
        assert_eq!(r, Some(3));

        let sem = Rc::new(sylvan::sync::Semaphore::new(0));
        let s2 = sem.clone();
        assert!(early_wake_leaves_no_timer(
            "semaphore acquire_timeout",
            move || s2.acquire_timeout(LONG).is_some(),
            || sem.release()
        ));

        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let other = Rc::new(spawn(move || {
            e.wait();
        }));
        let o = other.clone();
        assert!(early_wake_leaves_no_timer(
            "greenlet wait(Some)",
            move || o.wait(Some(LONG)),
            || ev.set()
        ));

        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let gs = Rc::new(vec![spawn(move || {
            e.wait();
        })]);
        let g2 = gs.clone();
        assert!(early_wake_leaves_no_timer(
            "joinall(Some)",
            move || joinall(&g2, Some(LONG)),
            || ev.set()
        ));
    })
}

// sylvan::signal docs: "until the returned SignalHandler is dropped";
// dropping it releases the handler closure and what it captured (gevent:
// signal.cancel() drops the callback).
#[test]
fn sg14_dropping_the_registration_releases_the_handler_closure() {
    in_child(
        "probes6::sg14_dropping_the_registration_releases_the_handler_closure",
        "p6_sg14",
        || {
            let flag = Rc::new(Cell::new(0));
            let d = crate::util::DropFlag(flag.clone());
            let runs = Rc::new(Cell::new(0));
            let r = runs.clone();
            let h = sylvan::signal(libc::SIGUSR2, move || {
                let _keep = &d;
                r.set(r.get() + 1);
            })
            .unwrap();
            raise(libc::SIGUSR2);
            yield_until("ran", || runs.get() == 1);
            sleep(10 * MS); // the handler greenlet is done
            assert_eq!(flag.get(), 0);
            drop(h);
            assert_eq!(
                flag.get(),
                1,
                "the closure was dropped with its registration"
            );
        },
    );
}

/// Runs `f` on a fresh thread (its own hub) and returns the message of the
/// panic it ended with, or None; fails if it runs past 5 s.
fn panic_message_on_fresh_thread(f: impl FnOnce() + Send + 'static) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(
            r.err()
                .map(|p| sylvan::runtime::payload_message(&*p).to_string()),
        );
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("HANG: main waited although nothing could wake it")
}

// sylvan DESIGN: main blocked with nothing able to wake it fails with
// "would block forever" — also after wake sources that existed are gone:
// a receive that timed out, a dropped signal registration (gevent: an
// unreferenced/stopped watcher does not keep the loop alive).
#[test]
fn in08_finished_waits_do_not_keep_counting_as_wake_sources() {
    let msg = panic_message_on_fresh_thread(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        assert_eq!(rx.recv_timeout(10 * MS), Err(RecvTimeoutError::Timeout));
        let g = spawn(move || rx.recv());
        yield_now();
        g.kill();
        let _ = g.join();
        let v = sylvan::spawn_blocking(|| 1);
        assert_eq!(v, 1);
        let _keep = tx; // a sender nobody will use, but no receiver parked
        Event::new().wait();
    });
    let msg = msg.expect("main's wait on a never-set Event returned");
    assert!(msg.contains("would block forever"), "{msg}");
}

// The same after a signal registration is dropped (sylvan::signal: "A
// registration counts as a wake source while it lives").
#[test]
fn sg15_dropped_registration_no_longer_a_wake_source() {
    in_child(
        "probes6::sg15_dropped_registration_no_longer_a_wake_source",
        "p6_sg15",
        || {
            let msg = panic_message_on_fresh_thread(|| {
                let h = sylvan::signal(libc::SIGUSR1, || {}).unwrap();
                drop(h);
                Event::new().wait();
            });
            let msg = msg.expect("main's wait on a never-set Event returned");
            assert!(msg.contains("would block forever"), "{msg}");
        },
    );
}

// sylvan Receiver::recv docs: "Called while the greenlet unwinds (from a
// destructor during a kill or panic), it does not park: it returns a
// queued value or RecvError" (DESIGN: a greenlet never switches out while
// unwinding).
#[test]
fn mp14_recv_in_a_destructor_during_a_kill_does_not_park() {
    struct RecvOnDrop(Rc<sylvan::mpsc::Receiver<u8>>, Log);
    impl Drop for RecvOnDrop {
        fn drop(&mut self) {
            let first = self.0.recv();
            let second = self.0.recv();
            self.1.push(format!("{first:?} {second:?}"));
        }
    }
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let rx = Rc::new(rx);
        let log = Log::default();
        let (r, l) = (rx.clone(), log.clone());
        let g = spawn(move || {
            let _d = RecvOnDrop(r, l);
            sleep(LONG);
        });
        yield_now();
        tx.send(4).unwrap();
        let s = Instant::now();
        g.kill();
        assert!(s.elapsed() < Duration::from_secs(1));
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(log.get(), ["Ok(4) Err(RecvError)"]);
        drop(tx);
    })
}

// FIFO among equal deadlines at scale (sylvan timer.rs; gevent/libev fire
// equal timers in start order): 3000 greenlets, alternating sleep_until
// and Timeout::start_at on one absolute deadline, finish in arming order.
#[test]
fn tm19_three_thousand_equal_deadlines_mixed_kinds_fifo() {
    bounded(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let d = Instant::now() + 300 * MS;
        let gs: Vec<_> = (0..3000u32)
            .map(|i| {
                let l = log.clone();
                spawn(move || {
                    if i % 2 == 0 {
                        sleep_until(d);
                    } else {
                        let t = Timeout::start_at(d);
                        let p = catch_unwind(|| sleep(LONG)).unwrap_err();
                        assert!(t.is_own_payload(&*p));
                    }
                    l.borrow_mut().push(i);
                })
            })
            .collect();
        assert!(joinall(&gs, None));
        assert!(Instant::now() >= d);
        let got = log.borrow().clone();
        let want: Vec<u32> = (0..3000).collect();
        assert!(
            got == want,
            "first out of order at {:?}",
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    })
}
