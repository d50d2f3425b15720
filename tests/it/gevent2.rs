//! A second round of behaviours from gevent's test suite (test__timeout,
//! test__api_timeout, test__greenlet, test__greenletset, test__pool,
//! test__queue, test__event, test__semaphore, test__api, test__joinall,
//! test__hub_join, test__sleep0), probing lifecycle, timers and timeouts,
//! and the sync/pool primitives. Each test names the gevent case it comes
//! from. Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug; the rest
//! are regression tests. Every test runs under a 3 s `with_timeout` (except
//! the few that need main to be able to deadlock), so none can hang.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::UnixStream;
use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, Event, GetError, JoinableQueue, LifoQueue, Mutex, PriorityQueue, Queue, Semaphore,
    TryPutError,
};
use sylvan::{
    ErrorPolicy, Greenlet, Outcome, Timeout, joinall, killall, sleep, sleep_until, spawn,
    spawn_later, with_timeout, yield_now,
};

use crate::util::{DropFlag, Log, bounded, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(10);

/// Counts the failures the error policy sees (and keeps them off stderr).
fn count_reports() -> Rc<Cell<u32>> {
    let n = Rc::new(Cell::new(0));
    let r = n.clone();
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| r.set(r.get() + 1))));
    n
}

// ================================================================ timeouts

// test__api_timeout.py Test.test_nested_timeout, first case: two nested
// guards, the outer one shorter; the outer fires, and the inner is still
// pending afterwards (then cancelled when dropped).
#[test]
fn tp01_nested_guards_outer_fires_inner_still_pending() {
    bounded(|| {
        let t1 = Timeout::start(5 * MS);
        let t2 = Timeout::start(Duration::from_secs(1));
        let r = catch_unwind(|| sleep(Duration::from_secs(2)));
        let payload = r.unwrap_err();
        assert!(
            t1.is_own_payload(&*payload),
            "the outer (shorter) one fired"
        );
        assert!(!t2.is_own_payload(&*payload));
        assert!(!t1.is_pending());
        assert!(t2.is_pending());
        drop(t2);
        drop(t1);
        // and the reverse: the inner one is shorter
        let t1 = Timeout::start(Duration::from_secs(1));
        let t2 = Timeout::start(5 * MS);
        let payload = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(t2.is_own_payload(&*payload));
        assert!(t1.is_pending());
        assert!(!t2.is_pending());
        drop(t1);
        drop(t2);
        sleep(10 * MS); // nothing fires later
    })
}

// Timeout guards dropped in a different order than they were created: the
// one dropped is cancelled, the other still fires (test__timeout.py
// test_cancel; test__api_timeout.py "cancel the timer inside the block").
#[test]
fn tp02_guards_dropped_out_of_order() {
    bounded(|| {
        // the first created is dropped first: the second fires
        let t1 = Timeout::start(5 * MS);
        let t2 = Timeout::start(20 * MS);
        drop(t1);
        let start = Instant::now();
        let payload = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(t2.is_own_payload(&*payload));
        assert!(start.elapsed() >= 10 * MS, "t1 was cancelled");
        drop(t2);
        // the second created is dropped first: the first fires
        let t1 = Timeout::start(20 * MS);
        let t2 = Timeout::start(5 * MS);
        drop(t2);
        let payload = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(t1.is_own_payload(&*payload));
        drop(t1);
        // the shorter fires and is caught; the longer, still held, fires next
        let short = Timeout::start(5 * MS);
        let long = Timeout::start(25 * MS);
        let p = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(short.is_own_payload(&*p));
        drop(short);
        let p = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
        assert!(long.is_own_payload(&*p));
        drop(long);
        sleep(10 * MS);
    })
}

// Timeouts created and never waited on leave nothing behind: no timer left
// armed, nothing fires later (gevent: a Timeout closed without switching).
#[test]
fn tp03_timeouts_never_waited_on_leave_no_timer() {
    bounded(|| {
        let base = sylvan::stats().timers;
        for _ in 0..1000 {
            let _t = Timeout::start(MS);
        }
        for i in 0..100 {
            assert_eq!(with_timeout(Duration::from_secs(1), || i).unwrap(), i);
        }
        for _ in 0..20 {
            assert!(with_timeout(Duration::ZERO, || sleep(Duration::from_secs(1))).is_err());
        }
        assert_eq!(sylvan::stats().timers, base);
        let g = spawn(|| {
            for _ in 0..100 {
                let _t = Timeout::start(MS);
            }
            sleep(10 * MS);
            "not interrupted"
        });
        assert_eq!(g.join().unwrap(), "not interrupted");
        assert_eq!(sylvan::stats().timers, base);
    })
}

// A Timeout whose deadline passed while the greenlet computed without
// switching fires at its next blocking call (gevent raises it at the next
// switch into the hub).
#[test]
fn tp04_overdue_unwaited_timeout_fires_at_next_block() {
    bounded(|| {
        let t = Timeout::start(MS);
        std::thread::sleep(5 * MS);
        assert!(t.is_pending(), "nothing fired it yet: no switch happened");
        let start = Instant::now();
        let payload = catch_unwind(|| sleep(Duration::from_secs(1))).unwrap_err();
        assert!(t.is_own_payload(&*payload));
        assert!(start.elapsed() < Duration::from_millis(500));
        drop(t);
    })
}

// A Timeout fires into the greenlet that started it (gevent: the Timeout
// throws into `getcurrent()` at start), whoever holds the guard; and the
// guard dropped by another greenlet cancels it.
#[test]
fn tp05_timeout_belongs_to_its_starter_wherever_the_guard_goes() {
    bounded(|| {
        // dropped by another greenlet before it fires: main is not hit
        let t = Timeout::start(10 * MS);
        let g = spawn(move || drop(t));
        g.join().unwrap();
        sleep(30 * MS);
        // held by another greenlet: it still fires into main
        let t = Timeout::start(5 * MS);
        let holder = spawn(move || {
            let _t = t;
            sleep(Duration::from_secs(1));
        });
        let start = Instant::now();
        let payload = catch_unwind(|| sleep(Duration::from_secs(1))).unwrap_err();
        assert!(sylvan::is_unwind_payload(&*payload));
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(!holder.is_dead());
        holder.kill();
    })
}

// A Timeout that was due in the same turn as another greenlet's wake-up,
// and that greenlet drops (cancels) it before the owner runs: in gevent
// the first timer callback runs the other greenlet at once, whose cancel
// stops the second timer before its callback runs, so it never fires.
// sylvan documents that a cancelled timeout never fires later.
#[test]
fn tp06_timeout_cancelled_after_its_timer_fired_does_not_throw() {
    bounded(|| {
        let now = Instant::now();
        let t = Timeout::start_at(now + 10 * MS);
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let h = spawn(move || {
            sleep_until(now + 5 * MS);
            drop(t);
            d.set(true);
        });
        yield_now(); // h parks in its sleep
        std::thread::sleep(20 * MS); // both deadlines pass while the hub is busy
        let r = catch_unwind(|| sleep(30 * MS));
        assert!(dropped.get());
        h.join().unwrap();
        assert!(
            r.is_ok(),
            "main was unwound by a Timeout that had been dropped (cancelled) before main ran"
        );
    })
}

struct SleepyDrop(Log);
impl Drop for SleepyDrop {
    fn drop(&mut self) {
        self.0.push("drop start");
        sleep(Duration::from_secs(1));
        self.0.push("drop end");
    }
}

// A timeout expiring while the greenlet blocks inside a destructor run by
// a normal scope exit unwinds out of that destructor (gevent: the Timeout
// is raised inside the `finally`/`__exit__` that blocks); one run during
// an unwind does not block at all.
#[test]
fn tp07_timeout_fires_inside_a_blocking_drop() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let start = Instant::now();
        let r = with_timeout(10 * MS, move || {
            let _d = SleepyDrop(l);
        });
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(log.take(), ["drop start"]);
        // the same destructor during a timeout's unwind does not switch
        let l = log.clone();
        let start = Instant::now();
        let r = with_timeout(10 * MS, move || {
            let _d = SleepyDrop(l);
            sleep(Duration::from_secs(1));
        });
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(log.take(), ["drop start", "drop end"]);
    })
}

// A Timeout escaping a link callback ends that callback (reported once by
// the error policy) and does not hold up join, which waits for callbacks
// (test__greenlet.py test_multiple_listeners_error: a failing listener
// does not stop the others).
#[test]
fn tp08_timeout_escaping_a_link_callback() {
    bounded(|| {
        let reports = count_reports();
        let log = Log::default();
        let g = spawn(|| 7);
        let l = log.clone();
        g.link(move |_| {
            l.push("cb1 start");
            let _t = Timeout::start(5 * MS);
            sleep(Duration::from_secs(1));
            l.push("cb1 end");
        });
        let l = log.clone();
        g.link(move |_| l.push("cb2"));
        let start = Instant::now();
        assert_eq!(g.join().unwrap(), 7);
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(log.get(), ["cb1 start", "cb2"]);
        assert_eq!(reports.get(), 1);
    })
}

// A Timeout of main expiring while main's join waits for a dead greenlet's
// link callbacks: join is unwound, the callback goes on and finishes.
#[test]
fn tp09_main_timeout_while_join_waits_for_callbacks() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let done = Rc::new(Cell::new(false));
        let g = spawn(|| 1);
        let (e, d) = (ev.clone(), done.clone());
        g.link(move |_| {
            e.wait();
            d.set(true);
        });
        let r = with_timeout(10 * MS, move || g.join());
        assert!(r.is_err());
        assert!(!done.get());
        ev.set();
        sleep(5 * MS);
        assert!(done.get());
        assert_eq!(ev.waiters(), 0);
    })
}

// Zero-duration timeouts around calls that do not need to wait: nothing
// switches, so nothing is interrupted (gevent: Timeout(0) only fires at a
// switch into the hub).
#[test]
fn tp10_zero_timeout_around_ready_operations() {
    bounded(|| {
        let ev = Event::new();
        ev.set();
        assert_eq!(with_timeout(Duration::ZERO, || ev.wait()), Ok(true));
        let q: Queue<u32> = Queue::unbounded();
        q.put(3).unwrap();
        assert_eq!(with_timeout(Duration::ZERO, || q.get()), Ok(Some(3)));
        let s = Semaphore::new(1);
        assert!(with_timeout(Duration::ZERO, || s.acquire().forget()).is_ok());
        s.release();
        let m = Mutex::new(5);
        assert_eq!(with_timeout(Duration::ZERO, || *m.lock()), Ok(5));
        let ar: AsyncResult<u32, String> = AsyncResult::new();
        ar.set(9).unwrap();
        assert_eq!(with_timeout(Duration::ZERO, || ar.get()), Ok(Ok(9)));
        let g = spawn(|| 1);
        assert!(g.wait(None));
        assert_eq!(with_timeout(Duration::ZERO, || g.wait(None)), Ok(true));
        assert!(g.wait(Some(Duration::ZERO)));
    })
}

// Zero-duration timeouts around calls that must wait: they fire at the
// first park and leave no registration behind (test__queue.py
// test_waiters_that_cancel with a zero timeout).
#[test]
fn tp11_zero_timeout_around_waiting_operations() {
    bounded(|| {
        let t = Timeout::start(Duration::ZERO);
        let p = catch_unwind(|| sleep(MS)).unwrap_err();
        assert!(t.is_own_payload(&*p));
        drop(t);
        let q: Queue<u32> = Queue::unbounded();
        assert!(with_timeout(Duration::ZERO, || q.get()).is_err());
        assert_eq!(q.getters(), 0);
        let ev = Event::new();
        assert!(with_timeout(Duration::ZERO, || ev.wait()).is_err());
        assert_eq!(ev.waiters(), 0);
        let s = Semaphore::new(0);
        assert!(with_timeout(Duration::ZERO, || s.acquire().forget()).is_err());
        assert_eq!(s.waiters(), 0);
        s.release();
        assert_eq!(
            s.available(),
            1,
            "the permit was not handed to a dead waiter"
        );
    })
}

// Many greenlets with identical deadlines wake in FIFO order (libev fires
// equal timers in the order they were started; gevent test__sleep0 /
// timer ordering).
#[test]
fn tp12_identical_deadlines_fire_fifo() {
    bounded(|| {
        let log = Log::default();
        let deadline = Instant::now() + 20 * MS;
        let gs: Vec<_> = (0..50)
            .map(|i| {
                let l = log.clone();
                spawn(move || {
                    sleep_until(deadline);
                    l.push(i.to_string());
                })
            })
            .collect();
        assert!(joinall(&gs, None));
        let want: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(log.get(), want);
    })
}

// The same for Timeouts with one deadline in many greenlets: each is
// thrown into its own greenlet, in the order they were started.
#[test]
fn tp13_identical_timeout_deadlines_fire_fifo() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let deadline = Instant::now() + 20 * MS;
        let gs: Vec<_> = (0..20)
            .map(|i| {
                let l = log.clone();
                spawn(move || {
                    let t = Timeout::start_at(deadline);
                    let p = catch_unwind(|| sleep(Duration::from_secs(2))).unwrap_err();
                    assert!(t.is_own_payload(&*p));
                    l.push(i.to_string());
                })
            })
            .collect();
        assert!(joinall(&gs, None));
        for g in gs {
            g.join().unwrap();
        }
        let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(log.get(), want);
    })
}

// Timers armed in reverse deadline order, all overdue by the time the hub
// looks: they fire in deadline order, not arming order.
#[test]
fn tp14_overdue_timers_fire_in_deadline_order() {
    bounded(|| {
        let log = Log::default();
        let now = Instant::now();
        let gs: Vec<_> = (0..5u32)
            .rev()
            .map(|i| {
                let l = log.clone();
                spawn(move || {
                    sleep_until(now + (i + 1) * MS);
                    l.push(i.to_string());
                })
            })
            .collect();
        yield_now(); // all park
        std::thread::sleep(20 * MS);
        assert!(joinall(&gs, None));
        assert_eq!(log.get(), ["0", "1", "2", "3", "4"]);
    })
}

// ================================================================ lifecycle

// test__api.py Test.test_killing_dormant: a greenlet that catches the kill
// and finishes; kill() returns only once it is done.
#[test]
fn gp01_killing_dormant_kill_waits_for_finish() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let g = spawn(move || {
            l.push("start");
            if catch_unwind(|| sleep(Duration::from_secs(1))).is_err() {
                l.push("except");
            }
            l.push("finished");
            5
        });
        sleep(5 * MS);
        assert_eq!(log.get(), ["start"]);
        g.kill();
        assert_eq!(log.get(), ["start", "except", "finished"]);
        assert_eq!(g.join().unwrap(), 5);
    })
}

// test__greenletset.py test_kill_fires_once: a kill shoots once. gevent's
// Greenlet.kill throws one GreenletExit per call (the test's coalescing of
// three kills comes from Group.kill's `dying` set, see pool tests), so
// three kill_nowait in one turn shoot three times, one per turn.
#[test]
fn gp02_kill_fires_once_per_delivery() {
    bounded(|| {
        let shots = Rc::new(Cell::new(0));
        let stop = Rc::new(Cell::new(false));
        let (s, st) = (shots.clone(), stop.clone());
        let undead = spawn(move || {
            for _ in 0..100 {
                if st.get() {
                    break;
                }
                if catch_unwind(|| sleep(Duration::from_secs(1))).is_err() {
                    s.set(s.get() + 1);
                }
            }
        });
        sleep(5 * MS);
        assert_eq!(shots.get(), 0);
        undead.kill_nowait();
        undead.kill_nowait();
        undead.kill_nowait();
        assert_eq!(shots.get(), 0);
        yield_now();
        sleep(5 * MS);
        assert_eq!(shots.get(), 3);
        undead.kill_nowait();
        sleep(5 * MS);
        assert_eq!(shots.get(), 4);
        assert!(!undead.is_dead());
        stop.set(true);
        undead.kill_nowait();
        assert!(undead.wait(Some(Duration::from_secs(1))));
        assert_eq!(shots.get(), 5);
    })
}

// Killing a greenlet that is itself parked in kill() of another (one that
// survives the kill): the killer dies, the survivor lives on, and a later
// kill of the survivor works (no stale waiter left on it).
#[test]
fn gp03_kill_a_greenlet_blocked_in_kill() {
    bounded(|| {
        let survivor = Rc::new(spawn(|| {
            let _ = catch_unwind(|| sleep(LONG));
            sleep(LONG);
        }));
        yield_now();
        let s = survivor.clone();
        let after = Rc::new(Cell::new(false));
        let a = after.clone();
        let killer = spawn(move || {
            s.kill(); // waits forever: the survivor caught it
            a.set(true);
        });
        sleep(10 * MS);
        assert!(!killer.is_dead());
        assert!(!survivor.is_dead());
        killer.kill();
        assert!(killer.is_dead());
        assert!(!after.get());
        assert!(killer.join().unwrap_err().is_killed());
        assert!(!survivor.is_dead());
        assert!(survivor.kill_timeout(Duration::from_secs(1)));
    })
}

// test__greenlet.py TestKillAfterStartLater: a spawn_later greenlet killed
// before its delay: dead at once, never runs, `link` fires (as a kill),
// link_value and link_exception do not, and its start timer is gone.
#[test]
fn gp04_spawn_later_killed_before_start_links_fire() {
    bounded(|| {
        let base = sylvan::stats().timers;
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = spawn_later(30 * MS, move || {
            r.set(true);
            1
        });
        assert_eq!(sylvan::stats().timers, base + 1);
        assert!(!g.is_started());
        let log = Log::default();
        let l = log.clone();
        g.link(move |o| {
            l.push(if matches!(o, Outcome::Killed) {
                "killed"
            } else {
                "other"
            })
        });
        let l = log.clone();
        g.link_value(move |_| l.push("value"));
        let l = log.clone();
        g.link_exception(move |_| l.push("exception"));
        g.kill();
        assert!(g.is_dead());
        assert_eq!(
            sylvan::stats().timers,
            base,
            "its start timer was cancelled"
        );
        sleep(50 * MS);
        assert!(!ran.get());
        assert!(!g.is_started());
        assert_eq!(log.get(), ["killed"]);
        // kill second time must not hurt
        g.kill();
        assert!(killall(std::slice::from_ref(&g), None).is_ok());
        assert_eq!(log.get(), ["killed"]);
        assert!(g.join().unwrap_err().is_killed());
    })
}

// spawn_later: not started nor dead before its delay; wait(0) says so.
#[test]
fn gp05_spawn_later_before_its_delay() {
    bounded(|| {
        let g = spawn_later(20 * MS, || 3);
        yield_now();
        assert!(!g.is_started());
        assert!(!g.is_dead());
        assert!(!g.wait(Some(Duration::ZERO)));
        assert!(!g.wait(Some(5 * MS)));
        assert!(g.wait(Some(Duration::from_secs(1))));
        assert!(g.is_started());
        assert_eq!(g.join().unwrap(), 3);
    })
}

// test__api.py TestTimers.test_spawn_is_not_cancelled and test_timer_fired:
// a greenlet spawned (or spawned later) by one that then exits still runs.
#[test]
fn gp06_children_outlive_their_spawner() {
    bounded(|| {
        let lst = Rc::new(RefCell::new(vec![1, 2]));
        let l = lst.clone();
        let parent = spawn(move || {
            let l2 = l.clone();
            spawn(move || l2.borrow_mut().pop());
            spawn_later(10 * MS, move || l.borrow_mut().pop());
        });
        assert_eq!(lst.borrow().len(), 2, "nothing ran yet");
        parent.join().unwrap();
        sleep(30 * MS);
        assert!(lst.borrow().is_empty());
    })
}

// killall with a mixture: dead, sleeping, unstarted, spawn_later and one
// that survives the kill (test__greenletset.py
// test_killall_iterable_argument_timeout_started).
#[test]
fn gp07_killall_mixed_with_survivor() {
    bounded(|| {
        let dead = spawn(|| ());
        assert!(dead.wait(None));
        let sleeper = spawn(|| sleep(LONG));
        let survivor = spawn(|| {
            let _ = catch_unwind(|| sleep(LONG));
            sleep(LONG);
        });
        yield_now();
        let unstarted = spawn(|| sleep(LONG));
        let later = spawn_later(5 * MS, || sleep(LONG));
        let gs = vec![dead, sleeper, survivor, unstarted, later];
        let start = Instant::now();
        let err = killall(&gs, Some(30 * MS)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(err.0, vec![gs[2].id()]);
        for (i, g) in gs.iter().enumerate() {
            assert_eq!(g.is_dead(), i != 2, "greenlet {i}");
        }
        assert!(!gs[3].is_started() && !gs[4].is_started());
        // the survivor dies at a second kill
        assert!(killall(&gs, Some(Duration::from_secs(1))).is_ok());
        let mut it = gs.into_iter();
        assert!(it.next().unwrap().join().is_ok());
        for g in it {
            assert!(g.join().unwrap_err().is_killed());
        }
    })
}

// test__greenlet.py TestJoinAll: joinall with a zero or short timeout over
// a mixture of dead and alive greenlets.
#[test]
fn gp08_joinall_zero_timeout_mixed() {
    bounded(|| {
        let a = spawn(|| ());
        let b = spawn(|| ());
        let ab = vec![a, b];
        assert!(joinall(&ab, None));
        assert!(joinall(&ab, Some(Duration::ZERO)), "all dead: true at once");
        let gs = vec![spawn(|| ()), spawn(|| sleep(LONG)), spawn(|| sleep(5 * MS))];
        let start = Instant::now();
        assert!(!joinall(&gs, Some(Duration::ZERO)));
        assert!(!joinall(&gs, Some(20 * MS)));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(gs[0].is_dead() && gs[2].is_dead() && !gs[1].is_dead());
        gs[1].kill();
        assert!(joinall(&gs, Some(Duration::ZERO)));
    })
}

// A link callback kills the greenlet that is parked in join() waiting for
// that very callback to finish: the joiner dies, the callback finishes.
#[test]
fn gp09_link_callback_kills_joiner_waiting_for_it() {
    bounded(|| {
        type J = Greenlet<Result<i32, sylvan::Error>>;
        let slot: Rc<RefCell<Option<Rc<J>>>> = Rc::default();
        let done = Rc::new(Cell::new(false));
        let g = spawn(|| 1);
        let (s, d) = (slot.clone(), done.clone());
        g.link(move |_| {
            sleep(10 * MS); // the joiner is parked in join by now
            let j = s.borrow().clone();
            if let Some(j) = j {
                j.kill();
            }
            d.set(true);
        });
        let joiner = Rc::new(spawn(move || g.join()));
        *slot.borrow_mut() = Some(joiner.clone());
        assert!(joiner.wait(Some(Duration::from_secs(1))));
        sleep(5 * MS);
        assert!(done.get());
        slot.borrow_mut().take();
        let joiner = Rc::try_unwrap(joiner).unwrap();
        assert!(joiner.join().unwrap_err().is_killed());
    })
}

// test__greenlet.py TestBasic.test_simple_exit / test_error_exit: the
// states through a greenlet's life, and a link that fires once.
#[test]
fn gp10_simple_and_error_exit_states() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let g = spawn(|| {
            sleep(10 * MS);
            5
        });
        let l = log.clone();
        g.link(move |o| l.push(format!("{}", matches!(o, Outcome::Returned(5)))));
        assert!(!g.is_started() && !g.is_dead());
        yield_now();
        assert!(g.is_started() && !g.is_dead());
        assert!(log.get().is_empty());
        sleep(30 * MS);
        assert!(g.is_dead());
        assert_eq!(
            g.with_outcome(|o| matches!(o, Outcome::Returned(5))),
            Some(true)
        );
        assert_eq!(log.get(), ["true"]);
        assert_eq!(g.join().unwrap(), 5);

        let g = spawn(|| -> i32 {
            sleep(MS);
            panic!("test_error_exit")
        });
        let l = log.clone();
        g.link(move |o| l.push(format!("{}", matches!(o, Outcome::Panicked(_)))));
        sleep(20 * MS);
        assert!(g.is_dead());
        assert_eq!(log.get(), ["true", "true"]);
        let e = g.join().unwrap_err();
        assert_eq!(e.panic().unwrap().message(), "test_error_exit");
    })
}

// ================================================================ wait / iwait

// test__event.py TestEvent_SetThenClear, through gevent.wait: gevent
// notifies every link of an Event even if it is cleared before the
// notification runs (Event._notify_all), so wait([event]) returns it. A
// set immediately followed by clear must not be missed by wait/iwait.
#[test]
fn wp01_wait_reports_event_set_then_cleared() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let setter = spawn(move || {
            sleep(5 * MS);
            e.set();
            e.clear();
        });
        // Event::wait itself sees it
        let e = ev.clone();
        let plain = spawn(move || e.wait());
        let r = sylvan::wait(&[&*ev], Some(Duration::from_millis(200)), None);
        assert!(plain.join().unwrap());
        setter.join().unwrap();
        assert_eq!(r, [0], "wait() missed the set; Event::wait saw it");
    })
}

// gevent.wait with count and timeout mixtures (test__event.py TestWait*,
// test__greenlet.py test_joinall_count_raise_error).
#[test]
fn wp02_wait_count_and_timeout_mixtures() {
    bounded(|| {
        let fast = spawn(|| sleep(MS));
        let mid = spawn(|| sleep(3 * MS));
        let never = spawn(|| sleep(LONG));
        let objs: [&dyn sylvan::Waitable; 3] = [&never, &fast, &mid];
        // count 0: nothing, at once
        assert!(sylvan::wait(&objs, None, Some(0)).is_empty());
        // count larger than the objects that can finish, with a timeout
        let start = Instant::now();
        let r = sylvan::wait(&objs, Some(30 * MS), Some(3));
        assert_eq!(r, [1, 2]);
        assert!(start.elapsed() >= 20 * MS);
        // one ready already: count 1 returns at once, even with a long timeout
        let start = Instant::now();
        assert_eq!(
            sylvan::wait(&objs, Some(Duration::from_secs(2)), Some(1)),
            [1]
        );
        assert!(start.elapsed() < Duration::from_millis(500));
        // zero timeout: the ready ones, in index order
        assert_eq!(sylvan::wait(&objs, Some(Duration::ZERO), None), [1, 2]);
        // iwait with zero timeout: the ready ones only
        let got: Vec<usize> = sylvan::iwait(&objs, Some(Duration::ZERO)).collect();
        assert_eq!(got, [1, 2]);
        never.kill();
        assert_eq!(sylvan::wait(&objs, Some(Duration::ZERO), None), [0, 1, 2]);
    })
}

// test__joinall.py: joinall([a, b, a]) with a greenlet listed twice; here
// through gevent.wait, which takes any list of objects.
#[test]
fn wp03_wait_with_duplicates() {
    bounded(|| {
        let a = spawn(|| sleep(2 * MS));
        let b = spawn(|| ());
        let r = sylvan::wait(&[&a, &b, &a], Some(Duration::from_secs(1)), None);
        assert_eq!(r.len(), 3);
        let mut sorted = r.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);
        let ev = Event::new();
        let e2 = Rc::new(Event::new());
        let e = e2.clone();
        spawn(move || {
            sleep(MS);
            e.set();
        });
        let r = sylvan::wait(&[&*e2, &ev, &*e2], Some(50 * MS), None);
        let mut r = r;
        r.sort();
        assert_eq!(r, [0, 2]);
        assert_eq!(e2.waiters(), 0);
        assert_eq!(ev.waiters(), 0);
    })
}

// iwait consumed one item at a time with blocking work in between: every
// object is reported once, and an AsyncResult failure counts as ready.
#[test]
fn wp04_iwait_with_work_between_items() {
    bounded(|| {
        let ars: Vec<Rc<AsyncResult<u32, String>>> = (0..4).map(|_| Rc::default()).collect();
        let a2 = ars.clone();
        let setter = spawn(move || {
            for (i, a) in a2.iter().enumerate().rev() {
                sleep(2 * MS);
                if i == 1 {
                    a.fail("bad".into()).unwrap();
                } else {
                    a.set(i as u32).unwrap();
                }
            }
        });
        let objs: Vec<&dyn sylvan::Waitable> = ars.iter().map(|a| &**a as _).collect();
        let mut seen = Vec::new();
        for i in sylvan::iwait(&objs, Some(Duration::from_secs(1))) {
            seen.push(i);
            sleep(3 * MS);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        assert_eq!(
            ars[1].get_timeout(Duration::ZERO),
            Err(GetError::Failed("bad".into()))
        );
        setter.join().unwrap();
        assert!(ars.iter().all(|a| a.waiters() == 0));
    })
}

// ================================================================ sleep(0) / idle

// sleep(0) fairness against IO: a greenlet spinning on yield_now does not
// starve a greenlet blocked on a socket (gevent test__sleep0 / the loop
// polls IO between callbacks).
#[test]
fn fp01_yield_loop_does_not_starve_io() {
    bounded(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let got = Rc::new(Cell::new(0usize));
        let g = got.clone();
        let reader = spawn(move || {
            let mut buf = [0u8; 16];
            let n = (&a).read(&mut buf).unwrap();
            g.set(n);
        });
        yield_now(); // reader parks on the socket
        (&b).write_all(b"hello").unwrap();
        let mut spins = 0;
        while got.get() == 0 && spins < 100_000 {
            yield_now();
            spins += 1;
        }
        assert_eq!(got.get(), 5, "reader starved after {spins} yields");
        assert!(spins < 1000, "took {spins} yields");
        reader.join().unwrap();
    })
}

// gevent.idle() returns when nothing is ready, before pending timers
// (test__hub_join.py: the hub can be joined / idles with timers pending).
#[test]
fn fp02_idle_returns_before_pending_timers() {
    bounded(|| {
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let later = spawn_later(Duration::from_secs(3), move || f.set(true));
        let log = Log::default();
        let l = log.clone();
        spawn(move || {
            for i in 0..3 {
                l.push(i.to_string());
                yield_now();
            }
        });
        let start = Instant::now();
        sylvan::idle();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(log.get(), ["0", "1", "2"]);
        assert!(!fired.get());
        later.kill();
    })
}

// ================================================================ pool

// test__pool.py TestErrorInHandler.test_imap / test_imap_unordered with a
// pool of 1: the panicking item gives its error in place, the others their
// values, then the end.
#[test]
fn pp01_imap_panic_in_middle_size_one() {
    bounded(|| {
        quiet();
        let divide = |x: u32| -> u32 {
            if x == 0 {
                panic!("division by zero");
            }
            100 / x
        };
        let p = Pool::new(1);
        let mut it = p.imap([1u32, 0, 2], divide);
        assert_eq!(it.next().unwrap().unwrap(), 100);
        assert!(it.next().unwrap().unwrap_err().is_panic());
        assert_eq!(it.next().unwrap().unwrap(), 50);
        assert!(it.next().is_none());
        drop(it);
        let mut it = p.imap_unordered([1u32, 0, 2], divide);
        assert_eq!(it.next().unwrap().unwrap(), 100);
        assert!(it.next().unwrap().unwrap_err().is_panic());
        assert_eq!(it.next().unwrap().unwrap(), 50);
        assert!(it.next().is_none());
        drop(it);
        let r = p.map([1u32, 0, 2], divide);
        assert_eq!(*r[0].as_ref().unwrap(), 100);
        assert!(r[1].as_ref().unwrap_err().is_panic());
        assert_eq!(*r[2].as_ref().unwrap(), 50);
        assert_eq!(p.free_count(), 1);
    })
}

// test__pool.py test_imap_unordered_sleep: completion order, which with a
// pool of one is input order.
#[test]
fn pp02_imap_unordered_sleep_order_by_size() {
    bounded(|| {
        let f = |x: u64| {
            sleep(Duration::from_millis(x));
            x
        };
        let p1 = Pool::new(1);
        let r: Vec<u64> = p1
            .imap_unordered([20u64, 2, 5], f)
            .map(Result::unwrap)
            .collect();
        assert_eq!(r, [20, 2, 5]);
        let p3 = Pool::new(3);
        let r: Vec<u64> = p3
            .imap_unordered([20u64, 2, 5], f)
            .map(Result::unwrap)
            .collect();
        assert_eq!(r, [2, 5, 20]);
        // empty inputs
        assert_eq!(p3.imap(Vec::<u64>::new(), f).count(), 0);
        assert_eq!(p3.imap_unordered(Vec::<u64>::new(), f).count(), 0);
        assert_eq!(p1.free_count(), 1);
        assert_eq!(p3.free_count(), 3);
    })
}

// test__pool.py test_imap_no_stop / test_imap_final_sleep (issues 423 and
// 311): imap over an iterator that blocks (a queue, a generator that
// sleeps after its last item) yields every item and then ends.
#[test]
fn pp03_imap_over_blocking_iterators() {
    bounded(|| {
        let p = Pool::new(2);
        let q: Rc<Queue<u32>> = Rc::new(Queue::unbounded());
        q.put(123).unwrap();
        let q2 = q.clone();
        let closer = spawn_later(20 * MS, move || q2.close());
        let r: Vec<u32> = p.imap(q.iter(), |x| x).map(Result::unwrap).collect();
        assert_eq!(r, [123]);
        closer.join().unwrap();

        let q: Rc<Queue<u32>> = Rc::new(Queue::unbounded());
        q.put(1234).unwrap();
        let q2 = q.clone();
        let closer = spawn_later(20 * MS, move || q2.close());
        let r: Vec<u32> = p
            .imap_unordered(q.iter(), |x| x)
            .map(Result::unwrap)
            .collect();
        assert_eq!(r, [1234]);
        closer.join().unwrap();

        let final_sleep = || {
            let mut i = 0u32;
            std::iter::from_fn(move || {
                if i < 3 {
                    i += 1;
                    Some(i - 1)
                } else {
                    sleep(20 * MS);
                    None
                }
            })
        };
        let r: Vec<u32> = p
            .imap(final_sleep(), |x| x * x)
            .map(Result::unwrap)
            .collect();
        assert_eq!(r, [0, 1, 4]);
        let mut r: Vec<u32> = p
            .imap_unordered(final_sleep(), |x| x * x)
            .map(Result::unwrap)
            .collect();
        r.sort();
        assert_eq!(r, [0, 1, 4]);
        assert_eq!(p.free_count(), 2);
    })
}

/// Yields 1 and 2, then panics (test__pool.py `error_iter`).
fn error_iter() -> impl Iterator<Item = u32> {
    let mut i = 0;
    std::iter::from_fn(move || {
        i += 1;
        if i > 2 {
            panic!("ExpectedException from the iterator");
        }
        Some(i)
    })
}

// test__pool.py TestErrorInIterator: an iterator that raises makes map /
// imap / imap_unordered raise in the caller. gevent's pool takes a slot
// only for an item it got from the iterator, so none is lost; the pool
// must be whole again once the started tasks are gone.
#[test]
fn pp04_map_error_in_iterator_no_slot_leak() {
    bounded(|| {
        quiet();
        let p = Pool::new(3);
        let r = catch_unwind(AssertUnwindSafe(|| p.map(error_iter(), |x| x)));
        assert!(r.is_err());
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.free_count(), 3, "map");
    })
}

#[test]
fn pp05_imap_error_in_iterator_no_slot_leak() {
    bounded(|| {
        quiet();
        let p = Pool::new(3);
        let r = catch_unwind(AssertUnwindSafe(|| p.imap(error_iter(), |x| x).count()));
        assert!(r.is_err());
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.free_count(), 3, "imap leaked a slot");
        let r = catch_unwind(AssertUnwindSafe(|| {
            p.imap_unordered(error_iter(), |x| x).count()
        }));
        assert!(r.is_err());
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.free_count(), 3, "imap_unordered leaked a slot");
    })
}

// The same leak through a kill or a timeout: the consumer of an imap over
// a blocking iterator (test_imap_no_stop) is unwound while the iterator
// blocks. Every slot must come back.
#[test]
fn pp06_imap_consumer_unwound_inside_blocking_iterator_no_slot_leak() {
    bounded(|| {
        let p = Pool::new(2);
        let q: Rc<Queue<u32>> = Rc::new(Queue::unbounded());
        let (p2, q2) = (p.clone(), q.clone());
        let consumer = spawn(move || p2.imap(q2.iter(), |x| x).count());
        sleep(5 * MS); // parked in the queue's get, inside imap
        consumer.kill();
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.free_count(), 2, "imap (kill) leaked a slot");
        let r = with_timeout(5 * MS, || p.imap_unordered(q.iter(), |x| x).count());
        assert!(r.is_err());
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.free_count(), 2, "imap_unordered (timeout) leaked a slot");
    })
}

// test__pool.py TestCoroutinePool.test_multiple_coros.
#[test]
fn pp07_multiple_coros_order() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let log = Log::default();
        let p = Pool::new(2);
        let (e, l) = (ev.clone(), log.clone());
        let done = p.spawn(move || {
            l.push("cons1");
            e.wait();
            l.push("cons2");
        });
        let (e, l) = (ev.clone(), log.clone());
        p.spawn(move || {
            sleep(MS);
            l.push("prod");
            e.set();
        });
        done.join().unwrap();
        assert_eq!(log.get(), ["cons1", "prod", "cons2"]);
        p.join();
    })
}

// test__pool.py PoolBasicTests.test_execute_async: free_count as tasks are
// spawned and finish; a spawn into a full pool waits.
#[test]
fn pp08_execute_async_free_count() {
    bounded(|| {
        let p = Pool::new(2);
        assert_eq!(p.free_count(), 2);
        let r = Rc::new(RefCell::new(Vec::new()));
        let r1 = r.clone();
        let first = p.spawn(move || r1.borrow_mut().push(1));
        assert_eq!(p.free_count(), 1);
        first.join().unwrap();
        assert_eq!(*r.borrow(), [1]);
        assert_eq!(p.free_count(), 2);
        let r2 = r.clone();
        p.spawn(move || r2.borrow_mut().push(2));
        assert_eq!(p.free_count(), 1);
        let r3 = r.clone();
        p.spawn(move || r3.borrow_mut().push(3));
        assert_eq!(p.free_count(), 0);
        assert_eq!(*r.borrow(), [1], "spawned only: nothing ran");
        let r4 = r.clone();
        p.spawn(move || r4.borrow_mut().push(4)); // waits for a slot
        sleep(10 * MS);
        let mut got = r.borrow().clone();
        got.sort();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(p.free_count(), 2);
    })
}

// test__pool.py TestPool.test_terminate: pool.kill while a map is running
// in another greenlet ends quickly; the map sees its tasks killed.
#[test]
fn pp09_terminate_while_map_runs() {
    bounded(|| {
        let p = Pool::new(3);
        let p2 = p.clone();
        let mapper = spawn(move || p2.map(0..6u32, |_| sleep(100 * MS)));
        sleep(20 * MS);
        let start = Instant::now();
        p.kill();
        assert!(start.elapsed() < Duration::from_millis(500));
        // the mapper may start more tasks after the first ones died; it
        // finishes, and every task it got was killed or ran to the end
        let r = mapper.join().unwrap();
        assert_eq!(r.len(), 6);
        assert!(r[0].as_ref().unwrap_err().is_killed());
        p.join();
        assert_eq!(p.free_count(), 3);
    })
}

// A timeout around pool.map: the tasks started are killed, every slot comes
// back (the pool is whole again).
#[test]
fn pp10_map_under_timeout_gives_back_every_slot() {
    bounded(|| {
        let p = Pool::new(2);
        let started = Rc::new(Cell::new(0));
        let s = started.clone();
        let r = with_timeout(10 * MS, || {
            p.map(0..10u32, move |_| {
                s.set(s.get() + 1);
                sleep(LONG)
            })
        });
        assert!(r.is_err());
        assert_eq!(started.get(), 2);
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.free_count(), 2);
        sleep(10 * MS);
        assert_eq!(started.get(), 2, "no further item started");
    })
}

// pool.kill while the pool is full and a spawner waits for a slot: kill
// returns, no slot is lost, and the pool works afterwards.
#[test]
fn pp11_kill_while_full_with_waiting_spawner() {
    bounded(|| {
        let p = Pool::new(1);
        p.spawn(|| sleep(LONG));
        let p2 = p.clone();
        let spawner = spawn(move || {
            let g = p2.spawn(|| sleep(LONG));
            g.id()
        });
        yield_now();
        assert!(!spawner.is_dead());
        p.kill();
        // the spawner got the freed slot; whatever it spawned is killable
        spawner.join().unwrap();
        p.kill();
        assert!(p.is_empty());
        assert_eq!(p.free_count(), 1);
        assert_eq!(p.spawn(|| 8).join().unwrap(), 8);
        assert_eq!(p.free_count(), 1);
    })
}

// test__pool.py TestSpawn.testSpawnAndWait / TestJoinEmpty: join with a
// timeout on a full pool is false, then true; an empty pool joins at once.
#[test]
fn pp12_join_timeout_then_join() {
    bounded(|| {
        let p = Pool::new(1);
        assert!(p.join_timeout(Duration::ZERO), "empty: true at once");
        p.spawn(|| sleep(30 * MS));
        assert_eq!(p.len(), 1);
        assert!(!p.join_timeout(5 * MS));
        assert!(!p.join_timeout(Duration::ZERO));
        assert!(p.join_timeout(Duration::from_secs(1)));
        assert_eq!(p.len(), 0);
        assert_eq!(p.wait_available(Some(Duration::ZERO)), 1);
    })
}

// test__greenletset.py test_basic / test_waitall / test_kill_block.
#[test]
fn pp13_group_basic_waitall_kill_block() {
    bounded(|| {
        // Members end when told (gevent's test sleeps; events make the
        // order certain on a loaded machine).
        let s = Group::new();
        let (first, second) = (Rc::new(Event::new()), Rc::new(Event::new()));
        let (a, b) = (first.clone(), second.clone());
        s.spawn(move || a.wait());
        assert_eq!(s.len(), 1);
        s.spawn(move || b.wait());
        assert_eq!(s.len(), 2);
        first.set();
        yield_until("the first member ends", || s.len() == 1);
        second.set();
        yield_until("the second member ends", || s.is_empty());

        s.spawn(|| sleep(10 * MS));
        s.spawn(|| sleep(20 * MS));
        let start = Instant::now();
        s.join();
        assert!(start.elapsed() >= 15 * MS);
        assert!(s.is_empty());

        s.spawn(|| sleep(Duration::from_secs(3)));
        s.spawn(|| sleep(Duration::from_secs(4)));
        let start = Instant::now();
        s.kill();
        assert!(s.is_empty());
        assert!(start.elapsed() < Duration::from_millis(1500));
    })
}

// ================================================================ queues

// JoinableQueue.join while items keep being put: join returns only once
// every item put (including those put after join began) is done.
#[test]
fn qp01_joinable_join_with_concurrent_puts() {
    bounded(|| {
        let q: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
        let processed = Rc::new(Cell::new(0));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (q, n) = (q.clone(), processed.clone());
                spawn(move || {
                    for _item in q.iter() {
                        sleep(MS);
                        n.set(n.get() + 1);
                        q.task_done();
                    }
                })
            })
            .collect();
        let q2 = q.clone();
        let producer = spawn(move || {
            for i in 0..30 {
                q2.put(i).unwrap();
                if i % 5 == 0 {
                    sleep(2 * MS);
                }
            }
        });
        q.put(100).unwrap();
        sleep(MS);
        // join may see the count reach zero between bursts: loop until the
        // producer is done, as gevent's users do. (No check that the count
        // is zero as join returns: a join woken by the count reaching zero
        // returns even if the producer, woken in the same turn, put more
        // before it ran, as `JoinableQueue::join` documents.)
        let mut rounds = 0;
        while rounds < 100 {
            q.join();
            rounds += 1;
            if producer.is_dead() && q.unfinished() == 0 {
                break;
            }
            sleep(MS);
        }
        assert_eq!(processed.get(), 31);
        q.close();
        assert!(joinall(&workers, Some(Duration::from_secs(1))));
    })
}

// JoinableQueue: an item handed to a waiting getter that is killed before
// it runs goes back to the queue and is counted once.
#[test]
fn qp02_joinable_handoff_to_killed_getter_counted_once() {
    bounded(|| {
        let q: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
        let q2 = q.clone();
        let getter = spawn(move || q2.get());
        yield_now();
        q.put(1).unwrap();
        assert_eq!(q.unfinished(), 1);
        getter.kill();
        assert_eq!(q.len(), 1, "item back in the queue");
        assert_eq!(q.unfinished(), 1);
        assert_eq!(q.get(), Some(1));
        q.task_done();
        assert_eq!(q.unfinished(), 0);
        assert!(q.join_timeout(Duration::ZERO));
        // a failed put is not counted
        let b: JoinableQueue<u32> = JoinableQueue::bounded(1);
        b.put(1).unwrap();
        assert!(b.put_timeout(2, MS).is_err());
        assert_eq!(b.unfinished(), 1);
    })
}

// PriorityQueue with equal priorities: (priority, item) tuples order by
// item for ties (heapq compares tuples). With a getter already waiting,
// all three go into the heap, as in gevent, and the getter, running later,
// takes the smallest first.
#[test]
fn qp03_priority_queue_equal_priorities() {
    bounded(|| {
        let q = PriorityQueue::unbounded();
        for item in [(1, "b"), (0, "z"), (1, "a"), (2, "c"), (1, "c")] {
            q.put(item).unwrap();
        }
        let got: Vec<_> = (0..5).map(|_| q.get().unwrap()).collect();
        assert_eq!(got, [(0, "z"), (1, "a"), (1, "b"), (1, "c"), (2, "c")]);

        let q: Rc<PriorityQueue<(u32, u32)>> = Rc::new(PriorityQueue::unbounded());
        let q2 = q.clone();
        let getter = spawn(move || {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(q2.get().unwrap());
            }
            v
        });
        yield_now();
        q.put((5, 0)).unwrap(); // wakes the waiting getter
        q.put((3, 1)).unwrap();
        q.put((1, 2)).unwrap();
        assert_eq!(getter.join().unwrap(), [(1, 2), (3, 1), (5, 0)]);
    })
}

// LifoQueue with a putter waiting on a full queue: after a get (and a
// turn of the loop, as gevent's unlock runs from the hub), the putter's
// item is the newest.
#[test]
fn qp04_lifo_queue_with_waiting_putter() {
    bounded(|| {
        let q: Rc<LifoQueue<u32>> = Rc::new(LifoQueue::bounded(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let q2 = q.clone();
        let putter = spawn(move || q2.put(3));
        yield_now();
        assert_eq!(q.putters(), 1);
        assert_eq!(q.get(), Some(2));
        yield_now();
        putter.join().unwrap().unwrap();
        assert_eq!(q.get(), Some(3));
        assert_eq!(q.get(), Some(1));
        assert!(q.is_empty());
    })
}

// A bounded queue never holds more than its capacity (gevent's put checks
// qsize() < maxsize): not even when an item handed to a getter comes back
// because the getter was killed before it ran.
#[test]
fn qp05_bounded_queue_never_exceeds_capacity_after_handoff_returns() {
    bounded(|| {
        let q: Rc<Queue<u32>> = Rc::new(Queue::bounded(1));
        let q2 = q.clone();
        let getter = spawn(move || q2.get());
        yield_now(); // the getter parks
        // A putter that will run before the getter does.
        let q3 = q.clone();
        let putter = spawn(move || q3.put(3));
        q.put(1).unwrap(); // handed to the getter, which has not run yet
        // gevent: put_nowait raises Full (qsize 1 == maxsize)
        assert!(matches!(q.try_put(2), Err(TryPutError::Full(2))));
        assert!(q.is_full());
        // The putter runs first and parks for room; then the getter dies
        // before it ran, and the item handed over comes back.
        getter.kill();
        assert!(
            q.len() <= 1,
            "bounded(1) queue holds {} items after a hand-off came back",
            q.len()
        );
        assert_eq!(q.putters(), 1, "the putter still waits for room");
        assert_eq!(q.try_get(), Ok(1));
        putter.join().unwrap().unwrap();
        assert_eq!(q.try_get(), Ok(3));
    })
}

// gevent's full() is qsize() >= maxsize, and an item handed to a getter
// that has not run is still in the queue: with a second getter waiting, a
// bounded(1) queue holding one hand-off is full, and a put waits.
#[test]
fn qp05c_full_while_a_handoff_holds_the_room_even_with_getters_waiting() {
    bounded(|| {
        let q: Rc<Queue<u32>> = Rc::new(Queue::bounded(1));
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now(); // both park
        q.put(1).unwrap(); // handed to the first
        assert_eq!(q.getters(), 1);
        assert!(q.is_full());
        assert!(matches!(q.try_put(2), Err(TryPutError::Full(2))));
        yield_now(); // the first getter takes 1: room again
        assert!(!q.is_full());
        q.put(2).unwrap();
        let got: Vec<_> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [Some(1), Some(2)]);
    })
}

// When the getter does take the handed item, its room frees for a parked
// putter at once (gevent: the putter is unlocked once qsize drops).
#[test]
fn qp05b_room_held_for_a_handoff_frees_when_the_getter_takes_it() {
    bounded(|| {
        let q: Rc<Queue<u32>> = Rc::new(Queue::bounded(1));
        let q2 = q.clone();
        let getter = spawn(move || q2.get());
        yield_now();
        q.put(1).unwrap(); // handed over
        let q3 = q.clone();
        let putter = spawn(move || q3.put(2));
        yield_now(); // the getter takes 1; the putter's 2 moves in
        assert_eq!(getter.join().unwrap(), Some(1));
        putter.join().unwrap().unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_get(), Ok(2));
    })
}

// ================================================================ semaphore / mutex / events

fn acquire_then_spawn(sem: Rc<Semaphore>, quit: Rc<Cell<bool>>, n: Rc<Cell<u32>>) {
    if quit.get() {
        return;
    }
    sem.acquire().forget();
    n.set(n.get() + 1);
    if n.get() > 2000 {
        quit.set(true); // the unfair case would spin forever
    }
    let g = spawn(move || release_then_spawn(sem, quit, n));
    let _ = g.join();
}

fn release_then_spawn(sem: Rc<Semaphore>, quit: Rc<Cell<bool>>, n: Rc<Cell<u32>>) {
    sem.release();
    if quit.get() {
        return;
    }
    let g = spawn(move || acquire_then_spawn(sem, quit, n));
    let _ = g.join();
}

// test__semaphore.py TestSemaphoreFair.test_fair_or_hangs (issue 1487): a
// fair semaphore lets the third greenlet in; the others then deadlock and
// main's joinall fails with LoopExit ("would block forever" here).
#[test]
fn sp01_semaphore_fair_or_hangs() {
    let sem = Rc::new(Semaphore::new(1));
    let quit = Rc::new(Cell::new(false));
    let n = Rc::new(Cell::new(0));
    let mk = |exit: bool| {
        let (s, q, n) = (sem.clone(), quit.clone(), n.clone());
        spawn(move || {
            if exit {
                s.acquire().forget();
                q.set(true);
            } else {
                acquire_then_spawn(s, q, n)
            }
        })
    };
    let keep_going1 = mk(false);
    let keep_going2 = mk(false);
    let exiting = mk(true);
    let gs = [keep_going1, keep_going2, exiting];
    let r = catch_unwind(AssertUnwindSafe(|| joinall(&gs, None)));
    let e = r.unwrap_err();
    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("would block forever"), "{msg}");
    assert!(n.get() < 100, "unfair: spun {} times", n.get());
    assert!(gs[2].is_dead(), "exiting");
    assert!(gs[1].is_dead(), "keep_going2");
    assert!(!gs[0].is_dead(), "keep_going1");
    // let the rest finish
    sem.release();
    assert!(bounded(|| joinall(&gs, None)));
}

// A permit handed to waiters that are killed one after another before
// they run passes down the line to the first live one.
#[test]
fn sp02_permit_passes_down_a_chain_of_killed_waiters() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let log = Log::default();
        let gs: Vec<_> = (0..4)
            .map(|i| {
                let (s, l) = (sem.clone(), log.clone());
                spawn(move || {
                    let _p = s.acquire();
                    l.push(i.to_string());
                })
            })
            .collect();
        yield_now();
        assert_eq!(sem.waiters(), 4);
        sem.release(); // chosen: waiter 0
        gs[0].kill_nowait();
        gs[1].kill_nowait();
        let (s2, l2) = (sem.clone(), log.clone());
        let timed = spawn(move || {
            // joins the line behind 3 with a zero timeout: gives up
            let got = s2.acquire_timeout(Duration::ZERO).is_some();
            l2.push(format!("timed {got}"));
        });
        assert!(joinall(&gs[2..], Some(Duration::from_secs(1))));
        timed.join().unwrap();
        assert_eq!(log.get()[..2], ["2".to_string(), "3".to_string()]);
        assert!(gs[0].is_dead() && gs[1].is_dead());
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
    })
}

// Mutex hand-off through a chain of waiters that time out (lock_timeout,
// with_timeout) or are killed: the lock reaches the one that waits, and
// nothing is left locked or queued (gevent test__lock.py: release while
// waiters time out).
#[test]
fn sp03_mutex_handoff_through_timeouts_and_kills() {
    bounded(|| {
        let m = Rc::new(Mutex::new(Vec::<&str>::new()));
        let m0 = m.clone();
        let gate = Rc::new(Event::new());
        let g0 = gate.clone();
        let holder = spawn(move || {
            let _g = m0.lock();
            g0.wait(); // held until w1 and w2 have timed out
        });
        yield_now();
        let m1 = m.clone();
        let w1 = spawn(move || m1.lock_timeout(5 * MS).is_some());
        let m2 = m.clone();
        let w2 = spawn(move || with_timeout(5 * MS, || m2.lock().push("w2")).is_ok());
        let m3 = m.clone();
        let w3 = spawn(move || m3.lock().push("w3"));
        let m4 = m.clone();
        let w4 = spawn(move || m4.lock().push("w4"));
        yield_now();
        assert_eq!(m.waiters(), 4);
        w3.kill();
        assert!(!w1.join().unwrap());
        assert!(!w2.join().unwrap());
        gate.set();
        w4.join().unwrap();
        holder.join().unwrap();
        assert!(!m.is_locked());
        assert_eq!(m.waiters(), 0);
        assert_eq!(*m.lock(), ["w4"]);
    })
}

// Mutex released in the same turn as a waiter's lock_timeout expires: the
// waiter may get it or not, but the lock is never lost and the next
// waiter proceeds.
#[test]
fn sp04_mutex_release_racing_a_lock_timeout() {
    bounded(|| {
        let m = Rc::new(Mutex::new(0u32));
        let now = Instant::now();
        let m0 = m.clone();
        let holder = spawn(move || {
            let _g = m0.lock();
            sleep_until(now + 5 * MS);
        });
        yield_now();
        let m1 = m.clone();
        let racer = spawn(move || match m1.lock_timeout(5 * MS) {
            Some(mut g) => {
                *g += 1;
                true
            }
            None => false,
        });
        let m2 = m.clone();
        let patient = spawn(move || *m2.lock() += 10);
        yield_now();
        std::thread::sleep(20 * MS); // the release and the expiry fall due together
        holder.join().unwrap();
        let got = racer.join().unwrap();
        patient.join().unwrap();
        assert_eq!(*m.lock(), if got { 11 } else { 10 });
        assert!(!m.is_locked());
        assert_eq!(m.waiters(), 0);
    })
}

// test__event.py TestAsyncResult.test_set_with_timeout and friends:
// getters with timeouts that expire before the set get TimedOut, those
// still waiting get the value; no waiter is left behind.
#[test]
fn sp05_async_result_set_while_waiters_time_out() {
    bounded(|| {
        let ar: Rc<AsyncResult<&'static str, String>> = Rc::default();
        let gs: Vec<_> = [2u64, 5, 2000, 4000]
            .into_iter()
            .map(|ms| {
                let a = ar.clone();
                spawn(move || a.get_timeout(Duration::from_millis(ms)))
            })
            .collect();
        let a = ar.clone();
        let plain = spawn(move || with_timeout(Duration::from_millis(3), || a.get()));
        // Set once the short waits are over (no race with their timers).
        yield_until("the short waits time out", || {
            gs[0].is_dead() && gs[1].is_dead() && plain.is_dead()
        });
        ar.set("hello").unwrap();
        let r: Vec<_> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(
            r,
            [
                Err(GetError::TimedOut),
                Err(GetError::TimedOut),
                Ok("hello"),
                Ok("hello")
            ]
        );
        assert!(plain.join().unwrap().is_err());
        assert_eq!(ar.waiters(), 0);
        assert_eq!(ar.get_timeout(Duration::ZERO), Ok("hello"));
    })
}

// test__event.py: Event waiters with timeouts, set in the same turn as
// some of their timeouts expire: each returns true or false, none is
// left registered, and later waits see the set.
#[test]
fn sp06_event_set_while_waiters_time_out() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let now = Instant::now();
        let gs: Vec<_> = (0..10u32)
            .map(|i| {
                let e = ev.clone();
                spawn(move || e.wait_deadline(now + (i % 3) * 5 * MS))
            })
            .collect();
        let e = ev.clone();
        let setter = spawn(move || {
            sleep_until(now + 5 * MS);
            e.set();
        });
        yield_now();
        std::thread::sleep(20 * MS);
        setter.join().unwrap();
        let r: Vec<bool> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        // deadline `now`: due before the set (a timer queued earlier)
        assert!(!r[0] && !r[3]);
        assert_eq!(ev.waiters(), 0);
        assert!(ev.wait_timeout(Duration::ZERO));
    })
}

// Killed greenlets' captures are released and waiters removed when a
// kill arrives while they wait on a JoinableQueue join.
#[test]
fn sp07_kill_while_joining_joinable_queue_releases_captures() {
    bounded(|| {
        let q: Rc<JoinableQueue<u32>> = Rc::new(JoinableQueue::unbounded());
        q.put(1).unwrap();
        let drops = Rc::new(Cell::new(0));
        let d = DropFlag(drops.clone());
        let q2 = q.clone();
        let joiner = spawn(move || {
            let _d = d;
            q2.join();
        });
        yield_now();
        joiner.kill();
        assert_eq!(drops.get(), 1);
        assert_eq!(q.get(), Some(1));
        q.task_done();
        assert!(q.join_timeout(Duration::ZERO));
    })
}

// ================================================================ more probes

// Three nested timeouts all due in one turn of the hub: each is delivered
// in turn (gevent fires every expired timer), so the outermost one still
// ends its with_timeout.
#[test]
fn tp15_three_nested_timeouts_due_together() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let l = log.clone();
        // Deadlines from one instant, so that however long arming takes
        // they fall in the intended order.
        let t0 = Instant::now();
        let left = move |d: Duration| (t0 + d).saturating_duration_since(Instant::now());
        let g = spawn(move || {
            with_timeout(left(7 * MS), || {
                let l2 = l.clone();
                let mid = with_timeout(left(6 * MS), move || {
                    let inner = with_timeout(left(5 * MS), || sleep(LONG));
                    l2.push(format!("inner {}", inner.is_err()));
                    sleep(Duration::from_secs(1));
                });
                l.push(format!("mid {}", mid.is_err()));
                sleep(Duration::from_secs(1));
            })
        });
        yield_now();
        std::thread::sleep(20 * MS);
        let start = Instant::now();
        let r = g.join().unwrap();
        assert!(r.is_err(), "outer timeout lost");
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(log.get(), ["inner true", "mid true"]);
    })
}

// A Timeout of a greenlet parked in kill() of a greenlet that survives the
// kill: the kill's wait is unwound, and the survivor can still be killed.
#[test]
fn tp16_timeout_while_parked_in_kill() {
    bounded(|| {
        let survivor = spawn(|| {
            let _ = catch_unwind(|| sleep(LONG));
            sleep(LONG);
        });
        yield_now();
        let start = Instant::now();
        assert!(with_timeout(10 * MS, || survivor.kill()).is_err());
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(!survivor.is_dead());
        assert!(survivor.kill_timeout(Duration::from_secs(1)));
    })
}

// A greenlet with its own stack size (its body is placed on its stack at
// spawn) killed before it starts: never runs, its captures drop at once,
// its links fire; the same for one spawned later.
#[test]
fn gp11_custom_stack_greenlet_killed_before_start() {
    bounded(|| {
        for later in [false, true] {
            let drops = Rc::new(Cell::new(0));
            let flag = DropFlag(drops.clone());
            let ran = Rc::new(Cell::new(false));
            let r = ran.clone();
            let b = sylvan::Builder::new().stack_size(64 << 10);
            let body = move || {
                let _keep = &flag;
                r.set(true);
            };
            let g = if later {
                b.spawn_later(5 * MS, body).unwrap()
            } else {
                b.spawn(body).unwrap()
            };
            let linked = Rc::new(Cell::new(0));
            let l = linked.clone();
            g.link(move |o| {
                if matches!(o, Outcome::Killed) {
                    l.set(l.get() + 1)
                }
            });
            g.kill();
            assert!(g.is_dead());
            assert_eq!(
                drops.get(),
                1,
                "captures dropped with the kill (later={later})"
            );
            sleep(10 * MS);
            assert!(!ran.get());
            assert_eq!(linked.get(), 1);
            assert!(g.join().unwrap_err().is_killed());
        }
    })
}

struct KillOnDrop(Rc<Greenlet<()>>);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill(); // during an unwind: throws, does not wait
    }
}

// A kill made by a destructor while its greenlet unwinds from a kill (a
// `finally: other.kill()` in gevent) is delivered, though it cannot wait.
#[test]
fn gp12_kill_from_a_destructor_during_a_kill() {
    bounded(|| {
        let b = Rc::new(spawn(|| sleep(LONG)));
        let b2 = b.clone();
        let a = spawn(move || {
            let _k = KillOnDrop(b2);
            sleep(LONG);
        });
        yield_now();
        a.kill();
        assert!(a.is_dead());
        assert!(
            b.wait(Some(Duration::from_secs(1))),
            "the destructor's kill was lost"
        );
        let b = Rc::try_unwrap(b).unwrap();
        assert!(b.join().unwrap_err().is_killed());
    })
}

// gevent's IMap consumes the input iterable in its own greenlet, so a
// result is yielded as soon as its task is done even while the iterable
// blocks waiting for more input (a queue fed over time: test__pool.py
// test_imap_no_stop, issue 423). A streaming pipeline must not stall the
// results behind the input.
#[test]
#[ignore = "LIMIT (documented on Pool::imap): the input is pulled by the consumer, so a blocking input holds back finished results"]
fn pp14_imap_results_not_held_back_by_a_blocking_input() {
    bounded(|| {
        let p = Pool::new(4);
        for unordered in [false, true] {
            let q: Rc<Queue<u32>> = Rc::new(Queue::unbounded());
            q.put(1).unwrap();
            let q2 = q.clone();
            let closer = spawn_later(Duration::from_millis(300), move || q2.close());
            let start = Instant::now();
            let first = if unordered {
                p.imap_unordered(q.iter(), |x| x * 10).next()
            } else {
                p.imap(q.iter(), |x| x * 10).next()
            };
            let took = start.elapsed();
            assert_eq!(first.unwrap().unwrap(), 10);
            closer.join().unwrap();
            assert!(
                took < Duration::from_millis(150),
                "first result held back {took:?} behind the blocked input (unordered={unordered})"
            );
        }
    })
}

// Many tasks, some panicking, through a small pool and a slow consumer:
// every result arrives, in order, errors in place (test__pool.py
// TestErrorInHandler at scale).
#[test]
fn pp15_imap_many_with_panics_no_lost_results() {
    bounded(|| {
        quiet();
        let p = Pool::new(3);
        let f = |x: u32| {
            sleep(Duration::from_micros(u64::from(x % 5) * 200));
            if x % 7 == 3 {
                panic!("item {x}");
            }
            x * 2
        };
        let mut got = Vec::new();
        for r in p.imap(0..40u32, f) {
            got.push(r.map_err(|e| e.panic().map(|p| p.message().to_string())));
            if got.len() % 4 == 0 {
                sleep(MS);
            }
        }
        assert_eq!(got.len(), 40);
        for (x, r) in got.iter().enumerate() {
            let x = x as u32;
            if x % 7 == 3 {
                assert_eq!(r, &Err(Some(format!("item {x}"))));
            } else {
                assert_eq!(r, &Ok(x * 2));
            }
        }
        let mut un: Vec<_> = p.imap_unordered(0..40u32, f).collect();
        assert_eq!(un.len(), 40);
        un.retain(|r| r.is_err());
        assert_eq!(un.len(), 6);
        let m = p.map(0..40u32, f);
        assert_eq!(m.iter().filter(|r| r.is_err()).count(), 6);
        assert_eq!(p.free_count(), 3);
    })
}

// A BoundedSemaphore permit handed to a waiter killed before it runs goes
// to the next waiter; the count ends at its bound, no "released too many
// times" panic.
#[test]
fn sp08_bounded_semaphore_handoff_to_killed_waiter() {
    bounded(|| {
        let sem = Rc::new(sylvan::sync::BoundedSemaphore::new(1));
        let g = sem.acquire();
        let ws: Vec<_> = (0..3)
            .map(|i| {
                let s = sem.clone();
                spawn(move || {
                    let _p = s.acquire();
                    sleep(MS);
                    i
                })
            })
            .collect();
        yield_now();
        assert_eq!(sem.waiters(), 3);
        drop(g); // handed to waiter 0
        ws[0].kill_nowait();
        let mut it = ws.into_iter();
        assert!(it.next().unwrap().join().unwrap_err().is_killed());
        assert_eq!(it.next().unwrap().join().unwrap(), 1);
        assert_eq!(it.next().unwrap().join().unwrap(), 2);
        assert_eq!(sem.available(), 1);
        assert!(sem.release().is_err());
    })
}

// gevent.wait on a greenlet that another greenlet kills meanwhile: it is
// reported as ready (dead), with the others.
#[test]
fn wp05_wait_sees_a_greenlet_killed_by_another() {
    bounded(|| {
        let victim = Rc::new(spawn(|| sleep(LONG)));
        // dies once the victim is dead: the order is fixed
        let killed = Rc::new(Event::new());
        let k = killed.clone();
        let other = spawn(move || {
            k.wait();
        });
        let v = victim.clone();
        let killer = spawn(move || {
            sleep(2 * MS);
            v.kill();
            killed.set();
        });
        let r = sylvan::wait(&[&*victim, &other], Some(Duration::from_secs(1)), None);
        assert_eq!(r, [0, 1]);
        killer.join().unwrap();
    })
}

// sleep(0) fairness against timers: with many greenlets yielding in a
// loop, a timer that is due still fires within a bounded number of
// switches (the loop runs timers at least every POLL_EVERY resumes).
#[test]
fn fp03_timers_fire_amid_many_yielders() {
    bounded(|| {
        let yields = Rc::new(Cell::new(0u32));
        let at_start = Rc::new(Cell::new(None));
        let gs: Vec<_> = (0..100)
            .map(|_| {
                let y = yields.clone();
                spawn(move || {
                    for _ in 0..50 {
                        y.set(y.get() + 1);
                        yield_now();
                    }
                })
            })
            .collect();
        let (y, s) = (yields.clone(), at_start.clone());
        let timed = spawn_later(Duration::ZERO, move || s.set(Some(y.get())));
        assert!(joinall(&gs, None));
        timed.join().unwrap();
        let n = at_start.get().unwrap();
        assert!(
            n < 5 * sylvan::POLL_EVERY,
            "a due timer waited for {n} of 5000 yields"
        );
    })
}

// gevent.killall(greenlets) called from one of the greenlets in the list:
// gevent throws into every listed greenlet from the hub, so all of them
// die, the caller included. sylvan throws into the caller at once when it
// meets itself in the list, before it has killed the ones after it.
#[test]
fn gp13_killall_including_the_caller_kills_everyone() {
    bounded(|| {
        for self_first in [false, true] {
            let list: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::default();
            let l = list.clone();
            let caller = spawn(move || {
                sleep(2 * MS);
                let gs = l.borrow();
                let _ = killall(&gs, Some(Duration::from_secs(1)));
            });
            let a = spawn(|| sleep(LONG));
            let b = spawn(|| sleep(LONG));
            {
                let mut v = list.borrow_mut();
                if self_first {
                    v.extend([caller, a, b]);
                } else {
                    v.extend([a, b, caller]);
                }
            }
            let v = list.borrow();
            for (i, g) in v.iter().enumerate() {
                assert!(
                    g.wait(Some(Duration::from_secs(2))),
                    "greenlet {i} alive (caller first: {self_first})"
                );
            }
            drop(v);
            let _ = killall(&list.borrow(), None);
        }
    })
}

// test__greenletset.py test_waitall: Group.join waits until the group is
// empty, including members that members spawned while it waited.
#[test]
fn pp16_group_join_waits_for_members_spawned_meanwhile() {
    bounded(|| {
        let grp = Group::new();
        let g2 = grp.clone();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        grp.spawn(move || {
            sleep(2 * MS);
            g2.spawn(move || {
                sleep(10 * MS);
                d.set(true);
            });
        });
        grp.join();
        assert!(done.get(), "join returned before the sub-member finished");
        assert!(grp.is_empty());
    })
}

// A timeout around pool.spawn on a full pool (gevent test__pool.py
// test_add_method: `with Timeout: p.add(second)` raises, the pool is
// unchanged): no slot is lost, the waiting spawner leaves no trace.
#[test]
fn pp17_timeout_in_spawn_on_a_full_pool() {
    bounded(|| {
        let p = Pool::new(1);
        let first = p.spawn(|| sleep(LONG));
        let r = with_timeout(5 * MS, || {
            p.spawn(|| ());
        });
        assert!(r.is_err());
        assert_eq!(p.len(), 1);
        assert_eq!(p.free_count(), 0);
        first.kill();
        assert_eq!(p.free_count(), 1);
        assert_eq!(p.spawn(|| 2).join().unwrap(), 2);
    })
}
