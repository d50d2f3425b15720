//! Probe round 26: gevent's and greenlet's own test files that earlier
//! rounds cited little or never, replayed through sylvan's API:
//! `test__iwait.py`, `test__issue467.py` (iwait), `test__order.py` (link
//! order), `test__hub_join_timeout.py` (`wait` with a timeout or an event),
//! `test__issue639.py` (`idle`), `test__semaphore.py` and `lock_tests.py`
//! (semaphores and events as threads' `Bunch` uses them, here greenlets),
//! `test__threadpool.py` (`spawn_blocking`), `test__greenio.py` and
//! `test__socketpair.py` (sockets that share one descriptor), and greenlet's
//! `test_throw.py`, `test_greenlet.py`, `test_leaks.py` and
//! `test_greenlet_trash.py` (kill into dead or unstarted greenlets, a kill
//! caught and turned into a panic, a kill at depth, what a greenlet keeps
//! alive, destructors that switch). Each test names the case it comes from.
//! Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug and fail without
//! their `ignore`; the rest are regression tests. Every test is bounded.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream, UnixStream};
use sylvan::sync::{Event, Semaphore};
use sylvan::{Outcome, iwait, sleep, spawn, spawn_later, wait, yield_now};

use crate::util::{DropFlag, Log, bounded, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------
// test__iwait.py, test__issue467.py, test__hub_join_timeout.py: wait / iwait
// ---------------------------------------------------------------------------

/// test__iwait.py Testiwait.test_noiter: `next(iwait((sem1, sem2)))` with
/// two free semaphores (both ready before the call) gives the first one.
#[test]
fn iwait_noiter_two_free_semaphores_first_in_index_order() {
    bounded(|| {
        let sem1 = Rc::new(Semaphore::new(1));
        let sem2 = Semaphore::new(1);
        let s = sem1.clone();
        let g = spawn(move || s.release());
        let objs: [&dyn sylvan::Waitable; 2] = [&*sem1, &sem2];
        let first = iwait(&objs, None).next();
        assert_eq!(first, Some(0));
        g.join().unwrap();
    })
}

/// test__iwait.py Testiwait.test_iwait_partial and test_iwait_nogarbage:
/// an iwait consumed partly and dropped leaves no registration behind on
/// the objects it did not report (gevent: `sem2.linkcount() == 0` after
/// the `with` block), here on events, whose `waiters` count iwait
/// registrations.
#[test]
fn iwait_partial_consumption_leaves_no_registration() {
    bounded(|| {
        let ev1 = Rc::new(Event::new());
        let ev2 = Event::new();
        let e = ev1.clone();
        let g = spawn(move || e.set());
        {
            let objs: [&dyn sylvan::Waitable; 2] = [&*ev1, &ev2];
            let mut it = iwait(&objs, Some(10 * MS));
            assert_eq!(it.next(), Some(0));
            assert!(ev2.waiters() <= 1);
        }
        assert_eq!(ev2.waiters(), 0, "the dropped iwait left a registration");
        assert_eq!(ev1.waiters(), 0);
        g.join().unwrap();
        // and the dropped iterator is never woken later
        ev2.set();
        yield_now();
    })
}

/// test__semaphore.py TestSemaphore.test_rawlink_on_unacquired_runs_notifiers
/// (gevent issue 1287): `gevent.wait([s])` on a free semaphore returns at
/// once, from main, with nothing else on the hub (no LoopExit).
#[test]
fn wait_on_free_semaphore_from_main_returns_at_once() {
    bounded(|| {
        let s = Semaphore::new(1);
        let start = Instant::now();
        assert_eq!(wait(&[&s], None, None), [0]);
        assert!(start.elapsed() < 500 * MS);
        assert_eq!(s.available(), 1, "waiting took no permit");
    })
}

/// test__semaphore.py TestSemaphore.test_release_twice: a waiter linked
/// before each of two releases is notified by its release (both links
/// fire). Here: one greenlet waits (`sylvan::wait`) on a locked
/// semaphore, a release wakes it; a second one waits, a second release
/// wakes it.
#[test]
fn semaphore_release_twice_notifies_each_watcher() {
    bounded(|| {
        let s = Rc::new(Semaphore::new(0));
        let log = Log::default();
        let watcher = |name: &'static str| {
            let (s, log) = (s.clone(), log.clone());
            spawn(move || {
                let r = wait(&[&*s], Some(Duration::from_secs(2)), None);
                log.push(format!("{name}{r:?}"));
            })
        };
        let a = watcher("a");
        yield_now();
        s.release();
        a.join().unwrap();
        // take the first release's permit, so b has to wait for the second
        s.try_acquire().expect("a watcher takes no permit").forget();
        let b = watcher("b");
        sleep(2 * MS);
        assert_eq!(log.get(), ["a[0]"]);
        assert!(!b.is_dead());
        s.release();
        b.join().unwrap();
        assert_eq!(log.take(), ["a[0]", "b[0]"]);
        assert_eq!(s.available(), 1);
    })
}

/// test__issue467.py: iterating `iwait` over greenlets (one already dead,
/// one that fails) while the loop body sleeps between items (so greenlets
/// switch and die meanwhile) reports each greenlet exactly once, without a
/// "would block forever".
#[test]
fn iwait_with_sleeps_between_items_reports_each_once() {
    bounded(|| {
        quiet();
        let done = spawn(|| 99u32);
        sylvan::joinall(std::slice::from_ref(&done), None);
        assert!(done.is_dead());
        let mut workers: Vec<_> = (0..3u32)
            .map(|i| {
                spawn(move || {
                    if i == 2 {
                        panic!("worker {i}");
                    }
                    i
                })
            })
            .collect();
        workers.push(done);
        let objs: Vec<&dyn sylvan::Waitable> =
            workers.iter().map(|g| g as &dyn sylvan::Waitable).collect();
        let mut seen = Vec::new();
        for i in iwait(&objs, None) {
            seen.push(i);
            sleep(10 * MS);
        }
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
        let results: Vec<_> = workers.into_iter().map(|g| g.join()).collect();
        assert_eq!(*results[0].as_ref().unwrap(), 0);
        assert!(results[2].as_ref().unwrap_err().is_panic());
        assert_eq!(*results[3].as_ref().unwrap(), 99);
    })
}

/// test__hub_join_timeout.py Test.test_timeout: `wait` with a timeout on
/// a greenlet that sleeps far longer returns nothing after about the
/// timeout, and the greenlet still runs; once it is killed, a wait
/// returns at once.
#[test]
fn wait_times_out_and_the_greenlet_runs_on() {
    bounded(|| {
        for _ in 0..2 {
            let x = spawn_later(Duration::from_secs(10), || 5);
            let start = Instant::now();
            let r = wait(&[&x], Some(50 * MS), None);
            let took = start.elapsed();
            assert!(r.is_empty(), "{r:?}");
            assert!(took >= 45 * MS && took < 2000 * MS, "{took:?}");
            assert!(!x.is_dead());
            x.kill();
            let start = Instant::now();
            assert_eq!(wait(&[&x], None, None), [0]);
            assert!(start.elapsed() < 500 * MS);
            assert!(x.join().unwrap_err().is_killed());
        }
    })
}

/// test__hub_join_timeout.py Test.test_event: `wait([event])` returns
/// `[event]` when a `spawn_later` sets it, after about that delay, while a
/// long greenlet still runs; the setter is dead by then.
#[test]
fn wait_on_event_set_by_spawn_later() {
    bounded(|| {
        for _ in 0..2 {
            let x = spawn_later(Duration::from_secs(10), || 5);
            let event = Rc::new(Event::new());
            let e = event.clone();
            let start = Instant::now();
            let setter = spawn_later(50 * MS, move || e.set());
            assert_eq!(wait(&[&*event], None, None), [0]);
            let took = start.elapsed();
            assert!(took >= 45 * MS && took < 2000 * MS, "{took:?}");
            assert!(!x.is_dead());
            assert!(event.is_set());
            yield_now();
            assert!(setter.is_dead());
            x.kill();
            assert!(x.is_dead());
        }
    })
}

/// test__hub_join_timeout.py Test.test_callback: `wait` on a just-spawned
/// greenlet returns in no time with it dead and its value kept.
#[test]
fn wait_on_just_spawned_greenlet_returns_in_no_time() {
    bounded(|| {
        for _ in 0..2 {
            let x = spawn(|| 5);
            let start = Instant::now();
            assert_eq!(wait(&[&x], Some(Duration::from_secs(10)), None), [0]);
            assert!(start.elapsed() < 500 * MS);
            assert!(x.is_dead());
            assert_eq!(
                x.with_outcome(|o| matches!(o, Outcome::Returned(5))),
                Some(true)
            );
            assert_eq!(x.join().unwrap(), 5);
        }
    })
}

/// test__issue639.py: `sleep(0)` then `idle()` from main with nothing else
/// on the hub both return.
#[test]
fn sleep0_then_idle_from_main_returns() {
    bounded(|| {
        let start = Instant::now();
        sleep(Duration::ZERO);
        sylvan::idle();
        assert!(start.elapsed() < 500 * MS);
    })
}

// ---------------------------------------------------------------------------
// test__order.py: link order
// ---------------------------------------------------------------------------

/// test__order.py TestM.test_greenlet_link (count 1000): the greenlet's
/// own append comes first, then 999 links in the order they were added.
#[test]
fn links_1000_run_in_registration_order() {
    bounded(|| {
        let lst = Rc::new(RefCell::new(Vec::new()));
        let l = lst.clone();
        let g = spawn(move || l.borrow_mut().push(0usize));
        for i in 1..1000usize {
            let l = lst.clone();
            g.link(move |_| l.borrow_mut().push(i));
        }
        g.join().unwrap();
        let got = lst.borrow().clone();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    })
}

/// test__order.py TestSleep0: two greenlets that append, `sleep(0)` and
/// append again interleave as "1A 2A 1B 2B".
#[test]
fn order_sleep0_interleaves_two_greenlets() {
    bounded(|| {
        let log = Log::default();
        let gs: Vec<_> = ["1", "2"]
            .into_iter()
            .map(|p| {
                let log = log.clone();
                spawn(move || {
                    log.push(format!("{p}A"));
                    sleep(Duration::ZERO);
                    log.push(format!("{p}B"));
                })
            })
            .collect();
        sylvan::joinall(&gs, None);
        assert_eq!(log.take().join(" "), "1A 2A 1B 2B");
    })
}

// ---------------------------------------------------------------------------
// lock_tests.py (BaseSemaphoreTests, EventTests) with greenlets as Bunch
// ---------------------------------------------------------------------------

/// lock_tests.BaseSemaphoreTests.test_acquire_contended: a semaphore of 7
/// with one permit taken; 10 greenlets each acquire twice. Phase 0 lets 6
/// through, 7 releases let 7 more, 6 releases 6 more, and it is then
/// still locked.
#[test]
fn semaphore_acquire_contended_in_phases() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(7));
        sem.acquire().forget();
        let phase = Rc::new(Cell::new(0));
        let results = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<_> = (0..10)
            .map(|_| {
                let (sem, phase, results) = (sem.clone(), phase.clone(), results.clone());
                spawn(move || {
                    sem.acquire().forget();
                    results.borrow_mut().push(phase.get());
                    sem.acquire().forget();
                    results.borrow_mut().push(phase.get());
                })
            })
            .collect();
        yield_until("6 acquired", || results.borrow().len() >= 6);
        sleep(2 * MS);
        assert_eq!(*results.borrow(), [0; 6]);
        phase.set(1);
        for _ in 0..7 {
            sem.release();
        }
        yield_until("13 acquired", || results.borrow().len() >= 13);
        sleep(2 * MS);
        let mut got = results.borrow().clone();
        got.sort();
        assert_eq!(got, [[0; 6].as_slice(), &[1; 7]].concat());
        phase.set(2);
        for _ in 0..6 {
            sem.release();
        }
        yield_until("19 acquired", || results.borrow().len() >= 19);
        sleep(2 * MS);
        let mut got = results.borrow().clone();
        got.sort();
        assert_eq!(got, [[0; 6].as_slice(), &[1; 7], &[2; 6]].concat());
        assert!(sem.try_acquire().is_none(), "still locked");
        sem.release();
        sylvan::joinall(&gs, None);
        assert!(gs.iter().all(|g| g.is_dead()));
        assert_eq!(results.borrow().len(), 20);
    })
}

/// lock_tests.BaseSemaphoreTests.test_try_acquire_contended: a semaphore
/// of 4 with one taken, 5 greenlets each try twice without waiting: 3
/// succeed, 7 fail.
#[test]
fn semaphore_try_acquire_contended() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(4));
        sem.acquire().forget();
        let results = Rc::new(RefCell::new(Vec::new()));
        let gs: Vec<_> = (0..5)
            .map(|_| {
                let (sem, results) = (sem.clone(), results.clone());
                spawn(move || {
                    for _ in 0..2 {
                        let ok = sem.try_acquire().map(|g| g.forget()).is_some();
                        results.borrow_mut().push(ok);
                        yield_now();
                    }
                })
            })
            .collect();
        sylvan::joinall(&gs, None);
        let mut got = results.borrow().clone();
        got.sort();
        assert_eq!(got, [[false; 7].as_slice(), &[true; 3]].concat());
    })
}

/// lock_tests.BaseSemaphoreTests.test_default_value: a semaphore of 1
/// held by main; a greenlet that acquires and releases does not finish
/// until main releases.
#[test]
fn semaphore_default_value_blocks_the_second_acquirer() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(1));
        let held = sem.acquire();
        let s = sem.clone();
        let g = spawn(move || {
            let _p = s.acquire();
        });
        sleep(5 * MS);
        assert!(!g.is_dead());
        assert_eq!(sem.waiters(), 1);
        drop(held);
        g.join().unwrap();
        assert_eq!(sem.available(), 1);
    })
}

/// lock_tests.BaseSemaphoreTests.test_with: nested guards on a semaphore
/// of 2, and a panic out of the inner one; both permits come back.
#[test]
fn semaphore_with_nested_guards_and_error() {
    bounded(|| {
        let sem = Semaphore::new(2);
        let with = |err: bool| {
            let _a = sem.acquire();
            let t = sem.try_acquire();
            assert!(t.is_some());
            drop(t);
            let _b = sem.acquire();
            assert!(sem.try_acquire().is_none());
            if err {
                std::panic::panic_any("type error");
            }
        };
        with(false);
        assert!(sem.try_acquire().is_some());
        assert_eq!(sem.available(), 2);
        let r = catch_unwind(AssertUnwindSafe(|| with(true)));
        assert!(r.is_err());
        assert!(sem.try_acquire().is_some());
        assert_eq!(sem.available(), 2);
    })
}

/// lock_tests.EventTests.test_notify: five greenlets wait twice; none
/// returns before `set`; all see it set both times. Again after a
/// `set`/`clear` pair.
#[test]
fn event_notify_all_waiters_twice() {
    bounded(|| {
        let evt = Rc::new(Event::new());
        let check = |evt: &Rc<Event>| {
            let r1 = Rc::new(RefCell::new(Vec::new()));
            let r2 = Rc::new(RefCell::new(Vec::new()));
            let gs: Vec<_> = (0..5)
                .map(|_| {
                    let (evt, r1, r2) = (evt.clone(), r1.clone(), r2.clone());
                    spawn(move || {
                        evt.wait();
                        r1.borrow_mut().push(evt.is_set());
                        evt.wait();
                        r2.borrow_mut().push(evt.is_set());
                    })
                })
                .collect();
            sleep(2 * MS);
            assert!(r1.borrow().is_empty());
            evt.set();
            sylvan::joinall(&gs, None);
            assert_eq!(*r1.borrow(), [true; 5]);
            assert_eq!(*r2.borrow(), [true; 5]);
        };
        check(&evt);
        evt.set();
        evt.clear();
        check(&evt);
    })
}

/// lock_tests.EventTests.test_timeout: `wait(0)` on a clear event is false
/// at once; five waits with a timeout each return false after about it;
/// once set, both are true.
#[test]
fn event_wait_timeouts_in_five_greenlets() {
    bounded(|| {
        let evt = Rc::new(Event::new());
        let run = |evt: &Rc<Event>| -> (Vec<bool>, Vec<(bool, Duration)>) {
            let r1 = Rc::new(RefCell::new(Vec::new()));
            let r2 = Rc::new(RefCell::new(Vec::new()));
            let gs: Vec<_> = (0..5)
                .map(|_| {
                    let (evt, r1, r2) = (evt.clone(), r1.clone(), r2.clone());
                    spawn(move || {
                        evt.wait_timeout(Duration::ZERO);
                        r1.borrow_mut().push(evt.is_set());
                        let t1 = Instant::now();
                        let woke = evt.wait_timeout(50 * MS);
                        r2.borrow_mut().push((woke && evt.is_set(), t1.elapsed()));
                    })
                })
                .collect();
            sylvan::joinall(&gs, None);
            let a = r1.borrow().clone();
            let b = r2.borrow().clone();
            (a, b)
        };
        let (r1, r2) = run(&evt);
        assert_eq!(r1, [false; 5]);
        for (r, dt) in r2 {
            assert!(!r);
            assert!(dt >= 45 * MS && dt < 2000 * MS, "{dt:?}");
        }
        evt.set();
        let (r1, r2) = run(&evt);
        assert_eq!(r1, [true; 5]);
        for (r, dt) in r2 {
            assert!(r);
            assert!(dt < 500 * MS);
        }
    })
}

// ---------------------------------------------------------------------------
// greenlet's test_throw.py, test_greenlet.py, test_leaks.py,
// test_greenlet_trash.py; gevent's test__issue607.py, test__GreenletExit.py
// ---------------------------------------------------------------------------

/// greenlet test_throw.py ThrowTests.test_kill: a second throw into the
/// already-dead greenlet is "immediately eaten": killing a dead greenlet
/// does nothing, and a greenlet that returned keeps its value.
#[test]
fn kill_of_dead_greenlet_is_eaten() {
    bounded(|| {
        let links = Rc::new(Cell::new(0));
        let g = spawn(|| 7);
        let l = links.clone();
        g.link(move |_| l.set(l.get() + 1));
        g.wait(None);
        assert!(g.is_dead());
        g.kill();
        g.kill_nowait();
        assert!(g.kill_timeout(10 * MS));
        yield_now();
        assert_eq!(links.get(), 1);
        assert_eq!(g.join().unwrap(), 7);

        // killed once, killed again: still a single kill, links once
        let links = Rc::new(Cell::new(0));
        let g = spawn(|| sleep(Duration::from_secs(60)));
        let l = links.clone();
        g.link(move |o| {
            assert!(matches!(o, Outcome::Killed));
            l.set(l.get() + 1);
        });
        yield_now();
        g.kill();
        g.kill();
        sleep(2 * MS);
        assert_eq!(links.get(), 1);
        assert!(g.join().unwrap_err().is_killed());
    })
}

/// test__issue330.py / greenlet: a kill into a greenlet that has not
/// started: its body never runs and what its closure captured is dropped
/// by the kill, not kept until the handle goes.
#[test]
fn kill_unstarted_drops_its_closure_at_once() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let ran = Rc::new(Cell::new(false));
        let flag = DropFlag(drops.clone());
        let r = ran.clone();
        let g = spawn(move || {
            let _f = flag;
            r.set(true);
        });
        assert!(!g.is_started());
        g.kill();
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1, "the closure outlived the kill");
        sleep(2 * MS);
        assert!(!ran.get());
        assert!(!g.is_started());
        assert!(g.join().unwrap_err().is_killed());
    })
}

/// greenlet test_greenlet.py test_dealloc_catches_GreenletExit_throws_other
/// and gevent test__issue607.py (a kill that ends in another exception
/// fails the greenlet): a greenlet that catches its kill and panics
/// instead dies as panicked, `link_exception` fires, and `kill` returns.
#[test]
fn kill_caught_and_turned_into_a_panic_fails_the_greenlet() {
    bounded(|| {
        quiet();
        let fired = Rc::new(Cell::new(false));
        let g = spawn(|| {
            let r = catch_unwind(|| sleep(Duration::from_secs(60)));
            let payload = r.unwrap_err();
            assert!(sylvan::is_unwind_payload(&*payload));
            assert!(payload.downcast_ref::<sylvan::GreenletExit>().is_some());
            panic!("SomeError");
        });
        let f = fired.clone();
        g.link_exception(move |e| {
            assert!(e.is_panic());
            f.set(true);
        });
        yield_now();
        let start = Instant::now();
        g.kill();
        assert!(start.elapsed() < 500 * MS);
        assert!(g.is_dead());
        yield_until("link_exception fired", || fired.get());
        let err = g.join().unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(err.panic().unwrap().message(), "SomeError");
    })
}

/// gevent test__GreenletExit.py: GreenletExit is not an ordinary error
/// (a BaseException, not an Exception). In sylvan: the kill payload is
/// recognised by `is_unwind_payload`, an ordinary panic payload is not.
#[test]
fn greenlet_exit_payload_is_recognised_ordinary_panic_is_not() {
    bounded(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let g = spawn(move || {
            let r = catch_unwind(|| std::panic::panic_any("plain"));
            s.borrow_mut()
                .push(sylvan::is_unwind_payload(&*r.unwrap_err()));
            let r = catch_unwind(|| sleep(Duration::from_secs(60)));
            let p = r.unwrap_err();
            s.borrow_mut().push(sylvan::is_unwind_payload(&*p));
            std::panic::resume_unwind(p);
        });
        quiet();
        yield_now();
        g.kill();
        assert_eq!(*seen.borrow(), [false, true]);
        assert!(g.join().unwrap_err().is_killed());
    })
}

/// greenlet test_throw.py (a throw at depth unwinds every frame): a kill
/// into a greenlet parked 50 calls deep runs the destructors of every
/// frame, innermost first.
#[test]
fn kill_at_depth_unwinds_every_frame_innermost_first() {
    struct Frame(usize, Log);
    impl Drop for Frame {
        fn drop(&mut self) {
            self.1.push(self.0.to_string());
        }
    }
    fn dive(depth: usize, log: Log) {
        let _f = Frame(depth, log.clone());
        if depth == 50 {
            sleep(Duration::from_secs(60));
        } else {
            dive(depth + 1, log);
        }
        std::hint::black_box(());
    }
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let g = spawn(move || dive(1, l));
        yield_now();
        g.kill();
        let expect: Vec<String> = (1..=50).rev().map(|i| i.to_string()).collect();
        assert_eq!(log.take(), expect);
        assert!(g.join().unwrap_err().is_killed());
    })
}

/// greenlet test_leaks.py TestLeaks.test_arg_refs: running a greenlet does
/// not keep its arguments alive: once it has returned (handle still held,
/// not joined), what its closure captured is released.
#[test]
fn finished_greenlet_releases_its_captures_before_join() {
    bounded(|| {
        let args = Rc::new(('a', 'b', 'c'));
        let before = Rc::strong_count(&args);
        let gs: Vec<_> = (0..100)
            .map(|_| {
                let a = args.clone();
                spawn(move || a.0)
            })
            .collect();
        sylvan::joinall(&gs, None);
        assert!(gs.iter().all(|g| g.is_dead()));
        assert_eq!(Rc::strong_count(&args), before);
        for g in gs {
            assert_eq!(g.join().unwrap(), 'a');
        }
    })
}

/// greenlet test_leaks.py (a dead greenlet nobody holds leaks nothing):
/// the value of a detached greenlet (handle dropped before it ran) is
/// dropped when it ends, and a finished greenlet's value when its handle
/// is dropped.
#[test]
fn values_of_detached_and_dropped_greenlets_are_dropped() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = spawn(move || DropFlag(d));
        drop(g);
        yield_now();
        sleep(MS);
        assert_eq!(drops.get(), 1, "the detached greenlet's value leaked");

        let d = drops.clone();
        let g = spawn(move || DropFlag(d));
        g.wait(None);
        assert_eq!(drops.get(), 1, "the value is kept for join");
        drop(g);
        assert_eq!(drops.get(), 2);
    })
}

/// greenlet test_greenlet_trash.py (a destructor that switches greenlets
/// while a greenlet is being torn down): a value captured by a greenlet
/// that returns normally has a destructor that sleeps; other greenlets run
/// during it, the greenlet is not dead until it is done, and `join` gets
/// the value.
#[test]
fn destructor_that_switches_at_normal_greenlet_end() {
    struct Slow(Log);
    impl Drop for Slow {
        fn drop(&mut self) {
            self.0.push("drop start");
            sleep(5 * MS);
            self.0.push("drop end");
        }
    }
    bounded(|| {
        let log = Log::default();
        let slow = Slow(log.clone());
        let l = log.clone();
        let g = spawn(move || {
            let _s = slow;
            l.push("body");
            42
        });
        let l = log.clone();
        let other = spawn(move || {
            for _ in 0..3 {
                l.push("tick");
                sleep(MS);
            }
        });
        assert_eq!(g.join().unwrap(), 42);
        let got = log.get();
        assert_eq!(got[0], "body");
        assert_eq!(got[1], "drop start");
        let end = got.iter().position(|s| s == "drop end").unwrap();
        assert!(
            got[..end].iter().any(|s| s == "tick"),
            "nothing else ran while the destructor slept: {got:?}"
        );
        other.join().unwrap();
    })
}

// ---------------------------------------------------------------------------
// test__threadpool.py: spawn_blocking
// ---------------------------------------------------------------------------

/// test__threadpool.py TestRef: a job's function, argument and result are
/// not kept alive by the pool once `apply` returned.
#[test]
fn spawn_blocking_keeps_no_reference_to_args_or_result() {
    bounded(|| {
        let arg = Arc::new(1u32);
        let weak_arg = Arc::downgrade(&arg);
        let result = sylvan::spawn_blocking(move || {
            let r = Arc::new(*arg + 1);
            (Arc::downgrade(&r), r)
        });
        let (weak_result, r) = result;
        assert_eq!(*r, 2);
        assert!(weak_arg.upgrade().is_none(), "the argument is still held");
        drop(r);
        assert!(weak_result.upgrade().is_none(), "the result is still held");
    })
}

/// test__threadpool.py PoolBasicTests.test_apply_raises: a job's panic is
/// raised in the caller, and the hub goes on.
#[test]
fn spawn_blocking_panic_reaches_the_caller() {
    bounded(|| {
        let r = catch_unwind(|| {
            sylvan::spawn_blocking(|| -> u32 { std::panic::panic_any(String::from("expected")) })
        });
        let p = r.unwrap_err();
        assert_eq!(
            p.downcast_ref::<String>().map(String::as_str),
            Some("expected")
        );
        assert_eq!(sylvan::spawn_blocking(|| 5), 5);
    })
}

/// test__threadpool.py PoolBasicTests.test_execute_async: several
/// greenlets each run a job; while the jobs run the caller is not held up,
/// and all results arrive.
#[test]
fn spawn_blocking_from_several_greenlets() {
    bounded(|| {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gs: Vec<_> = (1..=4u32)
            .map(|i| {
                let out = out.clone();
                spawn(move || {
                    sylvan::spawn_blocking(move || {
                        std::thread::sleep(2 * MS);
                        out.lock().unwrap().push(i);
                    })
                })
            })
            .collect();
        assert!(out.lock().unwrap().is_empty(), "spawn only schedules");
        sylvan::joinall(&gs, None);
        let mut got = out.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [1, 2, 3, 4]);
    })
}

// ---------------------------------------------------------------------------
// test__greenio.py, test__socketpair.py: handles that share one socket
// ---------------------------------------------------------------------------

/// test__greenio.py TestGreenIo.test_close_with_makefile ("close early"):
/// the accepted connection is closed but a clone (gevent's makefile) still
/// writes; the client, whose own socket is closed behind its reader
/// clone, reads the line and then end of stream once the server's last
/// handle is gone.
#[test]
fn clone_outlives_closed_original_then_eof() {
    bounded(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut fd = conn.try_clone().unwrap();
            drop(conn);
            fd.write_all(b"hello\n").unwrap();
            drop(fd);
        });
        let client = TcpStream::connect(addr).unwrap();
        let mut fd = client.try_clone().unwrap();
        drop(client);
        fd.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut all = Vec::new();
        fd.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"hello\n");
        server.join().unwrap();
    })
}

/// test__greenio.py test_close_with_makefile ("close late"): the clone is
/// dropped first and the original still sends.
#[test]
fn original_outlives_dropped_clone() {
    bounded(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut fd = conn.try_clone().unwrap();
            fd.write_all(b"hello").unwrap();
            drop(fd);
            conn.write_all(b"\n").unwrap();
        });
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut all = Vec::new();
        client.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"hello\n");
        server.join().unwrap();
    })
}

/// test__socketpair.py TestSocketpair.test_makefile: a socket pair; one
/// end sends and closes, the other reads all of it to end of stream.
#[test]
fn socketpair_send_close_read_all() {
    bounded(|| {
        let (mut x, mut y) = UnixStream::pair().unwrap();
        let msg = b"hello world";
        x.write_all(msg).unwrap();
        drop(x);
        y.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut read = Vec::new();
        y.read_to_end(&mut read).unwrap();
        assert_eq!(read, msg);
    })
}

/// test__socketpair.py TestSocketpair.test_fromfd: each end of a pair is
/// duplicated (`fromfd` dups the descriptor), the original closed, and the
/// duplicates carry the message and the end of stream; here the originals
/// were registered with the hub (used once) before they were dropped.
#[test]
fn socketpair_fromfd_duplicates_after_originals_closed() {
    use std::os::fd::AsFd;
    bounded(|| {
        let (mut x, mut y) = UnixStream::pair().unwrap();
        // use both once so the hub knows them
        x.write_all(b"!").unwrap();
        let mut one = [0u8; 1];
        y.read_exact(&mut one).unwrap();
        let dup = |s: &UnixStream| {
            let owned = s.as_fd().try_clone_to_owned().unwrap();
            UnixStream::from_std(std::os::unix::net::UnixStream::from(owned)).unwrap()
        };
        let mut xx = dup(&x);
        drop(x);
        let mut yy = dup(&y);
        drop(y);
        let msg = b"hello world";
        let reader = spawn(move || {
            yy.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut read = Vec::new();
            yy.read_to_end(&mut read).map(|_| read)
        });
        yield_now();
        xx.write_all(msg).unwrap();
        drop(xx);
        assert_eq!(reader.join().unwrap().unwrap(), msg);
    })
}

// ---------------------------------------------------------------------------
// test__timeout.py / test__api_timeout.py corners
// ---------------------------------------------------------------------------

/// test__api_timeout.py Test.test_api ("passing None as seconds disables
/// the timer"): the longest timeout there is never fires, and dropping it
/// leaves nothing behind.
#[test]
fn timeout_of_duration_max_never_fires() {
    bounded(|| {
        let t = sylvan::Timeout::start(Duration::MAX);
        sleep(5 * MS);
        assert!(t.is_pending());
        drop(t);
        let r = sylvan::with_timeout(Duration::MAX, || {
            sleep(2 * MS);
            3
        });
        assert_eq!(r, Ok(3));
        sleep(2 * MS);
    })
}

/// test__timeout.py (a timeout fires only at a switch) and
/// test__api_timeout.py test_api (the timer is cancelled when the block
/// ends): a body that blocks the thread past its deadline but never
/// switches returns `Ok`; the stale timeout does not hit the greenlet's
/// next sleep.
#[test]
fn timeout_past_due_without_a_switch_is_not_thrown_later() {
    bounded(|| {
        let r = sylvan::with_timeout(5 * MS, || {
            std::thread::sleep(20 * MS);
            1
        });
        assert_eq!(r, Ok(1));
        let start = Instant::now();
        let later = catch_unwind(|| sleep(10 * MS));
        assert!(
            later.is_ok(),
            "the expired, dropped timeout was thrown later"
        );
        assert!(start.elapsed() >= 9 * MS);
    })
}

/// test__api_timeout.py test_nested_timeout with equal deadlines (two
/// timers due in the same turn): the one armed first is thrown first;
/// gevent runs the second timer's callback in the same loop turn, so it is
/// thrown into the greenlet at its next switch, if the greenlet caught the
/// first and goes on inside the second's scope.
#[test]
fn equal_deadlines_both_delivered_one_per_switch() {
    bounded(|| {
        let d = Instant::now() + 5 * MS;
        let t1 = sylvan::Timeout::start_at(d);
        let t2 = sylvan::Timeout::start_at(d);
        let p1 = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(t1.is_own_payload(&*p1), "the first armed is thrown first");
        let start = Instant::now();
        let p2 = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(t2.is_own_payload(&*p2), "the second is thrown next");
        assert!(start.elapsed() < 1000 * MS);
        assert!(!t1.is_pending() && !t2.is_pending());
        // nothing left to throw
        assert!(catch_unwind(|| sleep(2 * MS)).is_ok());
    })
}

/// The same, with the second guard dropped after the first was caught:
/// its pending throw is withdrawn (gevent's `Timeout.close` cancels it).
#[test]
fn equal_deadlines_second_dropped_is_withdrawn() {
    bounded(|| {
        let d = Instant::now() + 5 * MS;
        let t1 = sylvan::Timeout::start_at(d);
        let t2 = sylvan::Timeout::start_at(d);
        let p1 = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(t1.is_own_payload(&*p1));
        drop(t2);
        drop(t1);
        let start = Instant::now();
        assert!(catch_unwind(|| sleep(10 * MS)).is_ok());
        assert!(start.elapsed() >= 9 * MS);
    })
}

/// gevent delivers a kill and an expired timeout one per switch (each is
/// a callback that throws into the greenlet): a greenlet that catches each
/// and blocks again receives both, in some order, and nothing more.
#[test]
fn kill_and_due_timeout_both_delivered_once() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let armed = Rc::new(Event::new());
        let a = armed.clone();
        let g = spawn(move || {
            let t = sylvan::Timeout::start(5 * MS);
            a.set();
            for _ in 0..3 {
                match catch_unwind(|| sleep(300 * MS)) {
                    Ok(()) => l.push("slept"),
                    Err(p) if t.is_own_payload(&*p) => l.push("timeout"),
                    Err(p) if p.downcast_ref::<sylvan::GreenletExit>().is_some() => l.push("kill"),
                    Err(_) => l.push("other"),
                }
            }
        });
        armed.wait();
        yield_now();
        // let the timer fall due while nothing switches, then kill
        std::thread::sleep(15 * MS);
        g.kill_nowait();
        g.join().unwrap();
        let mut got = log.take();
        assert_eq!(got.pop().as_deref(), Some("slept"), "{got:?}");
        got.sort();
        assert_eq!(got, ["kill", "timeout"]);
    })
}

/// test__api_timeout.py (a timeout raised in a handler): a greenlet that
/// caught a panic blocks in its handler; a timeout armed around both
/// unwinds the handler.
#[test]
fn timeout_fires_inside_a_catch_handler() {
    bounded(|| {
        let r = sylvan::with_timeout(10 * MS, || {
            if catch_unwind(|| std::panic::panic_any(1u8)).is_err() {
                sleep(Duration::from_secs(2));
            }
            "not reached"
        });
        assert!(r.is_err());
    })
}

// ---------------------------------------------------------------------------
// test__semaphore.py: acquire with timeouts, release from other greenlets
// ---------------------------------------------------------------------------

/// test__semaphore.py (acquire with a timeout, released by another
/// greenlet in time): the waiter gets the permit when the other greenlet
/// releases, well before its timeout.
#[test]
fn semaphore_acquire_timeout_released_by_another_greenlet() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let s = sem.clone();
        let releaser = spawn(move || {
            sleep(5 * MS);
            s.release();
        });
        let start = Instant::now();
        let got = sem.acquire_timeout(Duration::from_secs(2));
        assert!(got.is_some());
        assert!(start.elapsed() < 1000 * MS);
        drop(got);
        assert_eq!(sem.available(), 1);
        releaser.join().unwrap();
        // acquire(timeout=0) on a locked semaphore fails at once
        let _held = sem.acquire();
        let start = Instant::now();
        assert!(sem.acquire_timeout(Duration::ZERO).is_none());
        assert!(start.elapsed() < 1000 * MS);
        assert_eq!(sem.waiters(), 0);
    })
}

/// test__semaphore.py / lock_tests: waiters with timeouts that expire
/// leave the line; a later release goes to the one that is still waiting,
/// not to a timed-out one, and no permit is lost.
#[test]
fn semaphore_timed_out_waiters_leave_the_line() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let log = Log::default();
        let short: Vec<_> = (0..3)
            .map(|i| {
                let (s, l) = (sem.clone(), log.clone());
                spawn(move || {
                    let r = s.acquire_timeout(5 * MS).map(|g| g.forget()).is_some();
                    l.push(format!("short{i}:{r}"));
                })
            })
            .collect();
        let (s, l) = (sem.clone(), log.clone());
        let long = spawn(move || {
            let r = s.acquire_timeout(Duration::from_secs(2)).is_some();
            l.push(format!("long:{r}"));
        });
        sylvan::joinall(&short, None);
        assert_eq!(sem.waiters(), 1);
        sem.release();
        long.join().unwrap();
        assert_eq!(
            log.take(),
            ["short0:false", "short1:false", "short2:false", "long:true"]
        );
        assert_eq!(sem.available(), 1, "the long waiter's guard gave it back");
    })
}

// ---------------------------------------------------------------------------
// wait / iwait corners: duplicates, kill while waiting
// ---------------------------------------------------------------------------

/// test__joinall.py (`joinall([a, b, a])`) for `wait`: an object listed
/// twice is reported under both indices.
#[test]
fn wait_with_an_object_listed_twice() {
    bounded(|| {
        let a = spawn(|| ());
        let b = spawn(|| ());
        let mut r = wait(&[&a, &b, &a], Some(Duration::from_secs(2)), None);
        r.sort();
        assert_eq!(r, [0, 1, 2]);
        let ev = Event::new();
        let mut r = wait(&[&ev, &ev], Some(5 * MS), None);
        assert!(r.is_empty());
        ev.set();
        r = wait(&[&ev, &ev], Some(5 * MS), None);
        assert_eq!(r, [0, 1]);
        assert_eq!(ev.waiters(), 0);
    })
}

/// A greenlet killed while parked in `wait` on events leaves no
/// registration behind (gevent: iwait's `__exit__` unlinks on any exit).
#[test]
fn kill_while_in_wait_leaves_no_registration() {
    bounded(|| {
        let ev1 = Rc::new(Event::new());
        let ev2 = Rc::new(Event::new());
        let (e1, e2) = (ev1.clone(), ev2.clone());
        let g = spawn(move || wait(&[&*e1, &*e2], None, None));
        yield_now();
        assert_eq!(ev1.waiters(), 1);
        assert_eq!(ev2.waiters(), 1);
        g.kill();
        assert_eq!(ev1.waiters(), 0);
        assert_eq!(ev2.waiters(), 0);
        ev1.set();
        ev2.set();
        yield_now();
        assert!(g.join().unwrap_err().is_killed());
    })
}

// ---------------------------------------------------------------------------
// test__core_timer.py TestTimerResolution
// ---------------------------------------------------------------------------

/// test__core_timer.py TestTimerResolution.test_resolution: an active IO
/// watcher does not throw off timer resolution: with a greenlet parked on
/// a socket, 1 ms sleeps take about 1 ms (bound: 20 of them in 300 ms).
#[test]
fn timer_resolution_with_an_active_io_watcher() {
    bounded(|| {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let l = listener.clone();
        let acceptor = spawn(move || l.accept().map(|_| ()));
        yield_now();
        let start = Instant::now();
        for _ in 0..20 {
            let t = Instant::now();
            sleep(MS);
            assert!(t.elapsed() >= MS);
        }
        let took = start.elapsed();
        assert!(took < 300 * MS, "20 sleeps of 1 ms took {took:?}");
        acceptor.kill();
    })
}

// ---------------------------------------------------------------------------
// test__issue607.py, test__exc_info.py, semaphore links
// ---------------------------------------------------------------------------

/// test__issue607.py TestKillWithException.test_kill_with_exception_after_started:
/// `g.join(0)` right after spawn lets the new greenlet start (gevent's
/// join with a zero timeout goes round the hub once); the kill then
/// unwinds a started greenlet, whose destructors run.
#[test]
fn wait_zero_lets_a_spawned_greenlet_start() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let flag = DropFlag(drops.clone());
        let g = spawn(move || {
            let _f = flag;
            sleep(Duration::from_secs(999));
        });
        assert!(!g.wait(Some(Duration::ZERO)));
        assert!(g.is_started(), "join(0) did not go round the hub");
        g.kill();
        assert_eq!(drops.get(), 1);
        assert!(g.join().unwrap_err().is_killed());
    })
}

/// test__exc_info.py Test.test1: a greenlet spawned while its spawner is
/// handling an exception starts with no exception of its own. Here the
/// spawner is a greenlet being killed, spawning from a destructor during
/// the unwind: the new greenlet runs later and does not see
/// `thread::panicking()`.
#[test]
fn greenlet_spawned_during_an_unwind_sees_no_panic_in_progress() {
    struct SpawnOnDrop(Rc<RefCell<Option<sylvan::Greenlet<bool>>>>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            let g = spawn(|| {
                sleep(MS);
                std::thread::panicking()
            });
            *self.0.borrow_mut() = Some(g);
        }
    }
    bounded(|| {
        let slot = Rc::new(RefCell::new(None));
        let guard = SpawnOnDrop(slot.clone());
        let a = spawn(move || {
            let _g = guard;
            sleep(Duration::from_secs(60));
        });
        yield_now();
        a.kill();
        let b = slot.borrow_mut().take().expect("the destructor spawned");
        assert!(!std::thread::panicking());
        assert!(
            !b.join().unwrap(),
            "the new greenlet saw a panic in progress"
        );
    })
}

/// test__semaphore.py (rawlink callbacks run in the order they were
/// linked): greenlets waiting on a locked semaphore through `wait` run in
/// the order they began waiting when it is released.
#[test]
fn semaphore_watchers_woken_in_order() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let log = Log::default();
        let gs: Vec<_> = (0..4)
            .map(|i| {
                let (s, l) = (sem.clone(), log.clone());
                spawn(move || {
                    wait(&[&*s], Some(Duration::from_secs(2)), None);
                    l.push(i.to_string());
                })
            })
            .collect();
        yield_now();
        sem.release();
        sylvan::joinall(&gs, None);
        assert_eq!(log.take(), ["0", "1", "2", "3"]);
    })
}

/// test__semaphore.py (links are notified on release even when an
/// acquirer takes the permit): a greenlet parked in `acquire` gets the
/// permit, and one parked in `wait` on the same semaphore is still told
/// it was released.
#[test]
fn semaphore_release_wakes_watcher_even_if_acquirer_takes_it() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let s = sem.clone();
        let acquirer = spawn(move || s.acquire().forget());
        let s = sem.clone();
        let watcher = spawn(move || wait(&[&*s], Some(Duration::from_secs(2)), None));
        yield_now();
        sem.release();
        acquirer.join().unwrap();
        assert_eq!(watcher.join().unwrap(), [0]);
        assert_eq!(sem.available(), 0);
    })
}

// ---------------------------------------------------------------------------
// greenlet test_leaks.py / test_greenlet.py: a timeout outliving its greenlet
// ---------------------------------------------------------------------------

/// greenlet test_greenlet.py test_throw_to_dead_thread_doesnt_crash, for
/// timeouts: a `Timeout` armed by a greenlet that then returns it (so it
/// outlives the greenlet) fires into a dead greenlet: nothing happens,
/// not to main that holds it nor to a greenlet that reuses the record.
#[test]
fn timeout_returned_out_of_its_greenlet_fires_into_nothing() {
    bounded(|| {
        let g = spawn(|| sylvan::Timeout::start(5 * MS));
        let t = g.join().unwrap();
        let reuser = spawn(|| catch_unwind(|| sleep(20 * MS)).is_ok());
        let start = Instant::now();
        let main_ok = catch_unwind(|| sleep(20 * MS)).is_ok();
        assert!(main_ok, "main was hit by another greenlet's timeout");
        assert!(start.elapsed() >= 19 * MS);
        assert!(reuser.join().unwrap(), "a later greenlet was hit");
        drop(t);
    })
}

/// The same with the guard leaked (`mem::forget`) by a greenlet that
/// ends: later greenlets, which may reuse its record, are not hit.
#[test]
fn forgotten_timeout_of_a_dead_greenlet_hits_nobody() {
    bounded(|| {
        let g = spawn(|| std::mem::forget(sylvan::Timeout::start(5 * MS)));
        g.join().unwrap();
        let others: Vec<_> = (0..4)
            .map(|_| spawn(|| catch_unwind(|| sleep(20 * MS)).is_ok()))
            .collect();
        for o in others {
            assert!(o.join().unwrap(), "a later greenlet was hit");
        }
    })
}

/// test__threadpool.py TestPool.test_imap_unordered_sleep, for the
/// greenlet `Pool`: results come in completion order, so with one worker
/// that is input order ("10 1 2") and with three the shortest first
/// ("1 2 10").
#[test]
fn imap_unordered_sleep_order_by_pool_size() {
    bounded(|| {
        for (size, expected) in [(1, ["10", "1", "2"]), (3, ["1", "2", "10"])] {
            let pool = sylvan::pool::Pool::new(size);
            let got: Vec<String> = pool
                .imap_unordered([10u64, 1, 2], |x| {
                    sleep(Duration::from_millis(x * 4));
                    x.to_string()
                })
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(got, expected, "pool of {size}");
        }
    })
}
