//! sleep, spawn_later, Timeout, with_timeout.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::util::Log;

const MS: Duration = Duration::from_millis(1);

#[test]
fn sleepers_wake_in_deadline_order_and_never_early() {
    let log = Log::default();
    let gs: Vec<_> = [30u64, 10, 20, 0, 15]
        .into_iter()
        .map(|ms| {
            let log = log.clone();
            sylvan::spawn(move || {
                let d = Duration::from_millis(ms);
                let t = Instant::now();
                sylvan::sleep(d);
                assert!(t.elapsed() >= d, "woke early");
                log.push(ms.to_string());
            })
        })
        .collect();
    sylvan::joinall(&gs, None);
    assert_eq!(log.take(), ["0", "10", "15", "20", "30"]);
}

#[test]
fn spawn_later_starts_after_its_delay() {
    let t = Instant::now();
    let g = sylvan::spawn_later(20 * MS, move || t.elapsed());
    assert!(!g.is_started());
    let started_after = g.join().unwrap();
    assert!(started_after >= 20 * MS);
}

#[test]
fn with_timeout_returns_elapsed_and_unwinds_the_body() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let t = Instant::now();
    let r = sylvan::with_timeout(10 * MS, move || {
        let _g = crate::util::DropFlag(Rc::new(Cell::new(0)));
        struct Mark(Rc<Cell<bool>>);
        impl Drop for Mark {
            fn drop(&mut self) {
                self.0.set(true)
            }
        }
        let _m = Mark(d);
        sylvan::sleep(Duration::from_secs(60));
        "finished"
    });
    assert!(r.is_err());
    assert!(dropped.get());
    assert!(t.elapsed() >= 10 * MS && t.elapsed() < Duration::from_secs(10));
    assert_eq!(sylvan::stats().timers, 0);
}

#[test]
fn with_timeout_returns_ok_when_the_body_finishes_first() {
    let r = sylvan::with_timeout(Duration::from_secs(5), || {
        sylvan::sleep(MS);
        3
    });
    assert_eq!(r, Ok(3));
    assert_eq!(sylvan::stats().timers, 0, "the timeout was cancelled");
    // A cancelled timeout never fires later.
    sylvan::sleep(10 * MS);
}

#[test]
fn nested_timeouts_report_the_one_that_expires_first() {
    // inner expires first: inner reports, outer completes
    let outer = sylvan::with_timeout(Duration::from_secs(5), || {
        sylvan::with_timeout(5 * MS, || sylvan::sleep(Duration::from_secs(60)))
    });
    assert!(matches!(outer, Ok(Err(_))));

    // outer expires first: it passes through the inner with_timeout
    let inner_saw = Rc::new(Cell::new(false));
    let s = inner_saw.clone();
    let outer = sylvan::with_timeout(5 * MS, || {
        let inner = sylvan::with_timeout(Duration::from_secs(5), || {
            sylvan::sleep(Duration::from_secs(60))
        });
        s.set(true);
        inner
    });
    assert!(outer.is_err());
    assert!(!inner_saw.get());
    assert_eq!(sylvan::stats().timers, 0);
}

#[test]
fn timeout_and_completion_racing_give_one_clear_answer() {
    // The body finishes at the same tick its timeout expires: either it
    // returns Ok or Elapsed, never both, and nothing fires afterwards.
    for _ in 0..50 {
        let r = sylvan::with_timeout(MS, || sylvan::sleep(MS));
        assert!(matches!(r, Ok(()) | Err(_)));
    }
    let g = sylvan::spawn(|| {
        let r = sylvan::with_timeout(2 * MS, || sylvan::sleep(2 * MS));
        sylvan::sleep(5 * MS); // a stale expiry would unwind here
        r.is_ok()
    });
    g.join()
        .expect("no stray timeout after with_timeout returned");
}

#[test]
fn a_timeout_interrupts_a_greenlet_that_only_yields() {
    let g = sylvan::spawn(|| {
        sylvan::with_timeout(5 * MS, || {
            loop {
                sylvan::yield_now();
            }
        })
    });
    assert!(g.join().unwrap().is_err());
}

#[test]
fn timeout_guard_on_main_unwinds_main_blocking_call() {
    let r = std::panic::catch_unwind(|| {
        let t = sylvan::Timeout::start(5 * MS);
        assert!(t.is_pending());
        sylvan::sleep(Duration::from_secs(60));
    });
    assert!(sylvan::is_unwind_payload(&*r.unwrap_err()));
}

#[test]
fn a_hundred_thousand_timers_with_cancellation() {
    let t0 = Instant::now();
    let fired = Rc::new(Cell::new(0u32));
    let mut guards = Vec::new();
    // 100,000 armed timeouts, most cancelled again
    for i in 0..100_000u32 {
        let t = sylvan::Timeout::start(Duration::from_secs(3600) + Duration::from_micros(i as u64));
        if i % 10 == 0 {
            guards.push(t);
        }
    }
    assert_eq!(sylvan::stats().timers, 10_000);
    let gs: Vec<_> = (0..100u64)
        .map(|i| {
            let fired = fired.clone();
            sylvan::spawn(move || {
                sylvan::sleep(Duration::from_micros(100 * i));
                fired.set(fired.get() + 1);
            })
        })
        .collect();
    sylvan::joinall(&gs, None);
    assert_eq!(fired.get(), 100);
    drop(guards);
    assert_eq!(sylvan::stats().timers, 0);
    assert!(t0.elapsed() < Duration::from_secs(60));
}

#[test]
fn idle_waits_until_nothing_is_ready() {
    let log = Log::default();
    for i in 0..3 {
        let log = log.clone();
        sylvan::spawn(move || {
            sylvan::yield_now();
            log.push(format!("g{i}"));
        });
    }
    sylvan::idle();
    log.push("idle");
    assert_eq!(log.take(), ["g0", "g1", "g2", "idle"]);
}

/// A timeout that escapes everything does not vanish: its payload, dropped
/// uncaught (here by the test harness, at the top of `main` by the Rust
/// runtime), says so on stderr, as gevent prints an uncaught `Timeout`.
/// Caught ones stay silent, and so does one that escapes a greenlet (its
/// outcome reports it) or that code matches with `is_own_payload`.
#[test]
fn an_uncaught_timeout_says_so_when_it_is_dropped() {
    const PATH: &str = "time::an_uncaught_timeout_says_so_when_it_is_dropped";
    const SAID: &str = "a Timeout expired and nothing caught it";
    if crate::util::is_child("uncaught_timeout") {
        let _t = sylvan::Timeout::start(Duration::from_millis(5));
        sylvan::sleep(Duration::from_secs(5));
        unreachable!("the timeout unwinds the sleep");
    }
    if crate::util::is_child("caught_timeouts") {
        let r = sylvan::with_timeout(Duration::from_millis(1), || {
            sylvan::sleep(Duration::from_secs(5))
        });
        assert!(r.is_err());
        let g = sylvan::spawn(|| {
            let _t = sylvan::Timeout::start(Duration::from_millis(1));
            sylvan::sleep(Duration::from_secs(5));
        });
        assert!(g.join().unwrap_err().is_timeout());
        let t = sylvan::Timeout::start(Duration::from_millis(1));
        let caught = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(5)));
        assert!(t.is_own_payload(&*caught.unwrap_err()));
        println!("PROBE ok");
        return;
    }
    let out = crate::util::run_child(PATH, "uncaught_timeout");
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches(SAID).count(), 1, "{stdout}\n{stderr}");

    let out = crate::util::run_child(PATH, "caught_timeouts");
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(
        out.status.success() && stdout.contains("PROBE ok"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains(SAID), "{stderr}");
}

/// `wait_all` (gevent's `gevent.wait()`): main waits until every greenlet
/// is done with what can wake it; one parked on an event nobody will set
/// does not count, as in gevent. Not under `util::bounded`: its timeout
/// would be work left (each `wait_all` here is bounded by its own).
#[test]
fn wait_all_returns_when_the_hub_runs_out_of_work() {
    let limit = Some(Duration::from_secs(5));
    {
        assert!(sylvan::wait_all(None), "nothing to wait for");
        let log = Log::default();
        for i in (0..4u64).rev() {
            let log = log.clone();
            sylvan::spawn(move || {
                sylvan::sleep(Duration::from_millis(i * 3));
                log.push(format!("slept {i}"));
                let inner = log.clone();
                sylvan::spawn(move || inner.push(format!("child of {i}")));
            });
        }
        let never = Rc::new(sylvan::sync::Event::new());
        let parked = {
            let never = never.clone();
            sylvan::spawn(move || never.wait())
        };
        assert!(sylvan::wait_all(limit));
        assert_eq!(
            log.take(),
            [
                "slept 0",
                "child of 0",
                "slept 1",
                "child of 1",
                "slept 2",
                "child of 2",
                "slept 3",
                "child of 3"
            ]
        );
        assert!(!parked.is_dead(), "parked for good, and left so");
        never.set();
        parked.join().unwrap();
    }
}

#[test]
fn wait_all_with_a_timeout_gives_up_while_work_remains() {
    {
        let sleeper = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
        let t0 = Instant::now();
        assert!(!sylvan::wait_all(Some(Duration::from_millis(20))));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // A listener with a greenlet blocked in accept is work left too.
        let listener = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let acceptor = sylvan::spawn(move || listener.accept().map(drop));
        sleeper.kill();
        assert!(!sylvan::wait_all(Some(Duration::from_millis(10))));
        acceptor.kill();
        // Busy greenlets do not keep the deadline from passing.
        let spinner = sylvan::spawn(|| {
            loop {
                sylvan::yield_now();
            }
        });
        assert!(!sylvan::wait_all(Some(Duration::from_millis(10))));
        spinner.kill();
        assert!(sylvan::wait_all(Some(Duration::from_secs(3))));
        // A timeout armed by main is work left too, as in gevent: the
        // wait ends when it fires (and it fires into main).
        let r = sylvan::with_timeout(Duration::from_millis(10), || sylvan::wait_all(None));
        assert!(r.is_err());
    }
}

#[test]
fn wait_all_from_a_spawned_greenlet_is_refused_clearly() {
    crate::util::quiet();
    crate::util::bounded(|| {
        let g = sylvan::spawn(|| sylvan::wait_all(None));
        let err = g.join().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("wait_all called from greenlet") && msg.contains("main"),
            "{msg}"
        );
    });
}
