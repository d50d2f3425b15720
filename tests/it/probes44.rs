//! Probe round 44: gevent's own test suite (test__queue, test__pool,
//! test__semaphore, test__event, test__greenlet, test__timeout,
//! test__local, test__socket, test__iwait) translated into sylvan's API,
//! aimed at the places where bugs were found last: FIFO among waiters after
//! kills and timeouts, wake-one vs wake-all, a wake-up passed on by a
//! waiter that leaves, registration cleanup, and receivers shared by
//! greenlets fed from another thread.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, Channel, Event, GetError, JoinableQueue, LifoQueue, Mutex, PriorityQueue, Queue,
    Semaphore, TryGetError, TryPutError,
};
use sylvan::{Error, Outcome, Timeout};

use crate::util::{DropFlag, Log, bounded, quiet, tcp_pair, yield_until};

const MS: Duration = Duration::from_millis(1);

/// Spawns `f` and lets it run until it parks.
fn parked<T: 'static>(f: impl FnOnce() -> T + 'static) -> sylvan::Greenlet<T> {
    let g = sylvan::spawn(f);
    sylvan::yield_now();
    g
}

// ================================================================ queues

/// test__queue `TestGetInterrupt`: of five getters parked in line, the
/// second is killed and the fourth times out; the items then go to the
/// others in the order they began waiting, and none is lost.
#[test]
fn queue_getters_stay_fifo_around_killed_and_timed_out_ones() {
    bounded(|| {
        let q = Rc::new(Queue::unbounded());
        let log = Log::default();
        let mut gs = Vec::new();
        for i in 0..5 {
            let (q, log) = (q.clone(), log.clone());
            gs.push(parked(move || {
                let got = if i == 3 {
                    q.get_timeout(5 * MS).ok()
                } else {
                    q.get()
                };
                log.push(format!("{i}:{got:?}"));
            }));
        }
        assert_eq!(q.getters(), 5);
        gs[1].kill();
        sylvan::sleep(20 * MS); // the fourth times out
        assert_eq!(log.take(), ["3:None"]);
        assert_eq!(q.getters(), 3);
        for v in ["a", "b", "c"] {
            q.put(v).unwrap();
        }
        for g in gs {
            let _ = g.join();
        }
        assert_eq!(
            log.take(),
            ["0:Some(\"a\")", "2:Some(\"b\")", "4:Some(\"c\")"]
        );
        assert!(q.is_empty());
    });
}

/// A getter woken for an item but killed before it runs takes nothing: the
/// item goes to the next getter in line (gevent: the item stays in the
/// queue until a getter takes it).
#[test]
fn queue_item_passes_from_a_woken_getter_killed_before_it_ran() {
    bounded(|| {
        let q = Rc::new(Queue::unbounded());
        let (q1, q2) = (q.clone(), q.clone());
        let first = parked(move || q1.get());
        let second = parked(move || q2.get());
        q.put(1).unwrap(); // wakes `first`, which has not run yet
        first.kill();
        assert!(first.join().unwrap_err().is_killed());
        assert_eq!(second.join().unwrap(), Some(1));
        assert_eq!(q.len(), 0);
    });
}

/// test__queue `TestPutInterrupt`: putters parked on a full bounded queue
/// are served FIFO; one killed in the middle does not put its item, and one
/// whose timeout passes gets it back.
#[test]
fn bounded_queue_putters_fifo_with_kill_and_timeout() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        q.put(0).unwrap();
        let mut gs = Vec::new();
        for i in 1..=4 {
            let q = q.clone();
            gs.push(parked(move || {
                if i == 3 {
                    match q.put_timeout(i, 5 * MS) {
                        Err(TryPutError::Full(v)) => v * 100,
                        other => panic!("{other:?}"),
                    }
                } else {
                    q.put(i).unwrap();
                    i
                }
            }));
        }
        assert_eq!(q.putters(), 4);
        gs[1].kill();
        sylvan::sleep(20 * MS);
        assert_eq!(q.putters(), 2);
        let got: Vec<i32> = (0..3).map(|_| q.get().unwrap()).collect();
        assert_eq!(got, [0, 1, 4]);
        let outs: Vec<_> = gs.into_iter().map(|g| g.join()).collect();
        assert_eq!(outs[0], Ok(1));
        assert!(outs[1].as_ref().unwrap_err().is_killed());
        assert_eq!(outs[2], Ok(300), "the timed-out putter got its item back");
        assert_eq!(outs[3], Ok(4));
        assert!(q.is_empty());
    });
}

/// gevent's `Queue.peek` returns the item without taking it, and
/// `peek(timeout=...)` raises `Empty` when none comes; peekers parked when
/// the item comes see it, and so does the getter.
#[test]
fn queue_peek_leaves_the_item_and_times_out_empty() {
    bounded(|| {
        let q: Rc<Queue<u32>> = Rc::new(Queue::unbounded());
        assert_eq!(q.peek_timeout(5 * MS), Err(TryGetError::Empty));
        let peekers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                parked(move || q.peek())
            })
            .collect();
        q.put(7).unwrap();
        for p in peekers {
            assert_eq!(p.join().unwrap(), Some(7));
        }
        assert_eq!(q.len(), 1, "peeking took nothing");
        assert_eq!(q.try_peek(), Ok(7));
        assert_eq!(q.get(), Some(7));
        q.close();
        assert_eq!(q.peek(), None);
    });
}

/// test__queue `TestJoinableQueue`: `join` returns once every item put was
/// marked done; `unfinished` counts them; join with a timeout returns false
/// while some are unfinished, and two joiners both wake.
#[test]
fn joinable_queue_counts_task_done_and_wakes_every_joiner() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::unbounded());
        for i in 0..4 {
            q.put(i).unwrap();
        }
        assert_eq!(q.unfinished(), 4);
        assert!(!q.join_timeout(5 * MS));
        let joiners: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                parked(move || q.join())
            })
            .collect();
        let done = Rc::new(Cell::new(0));
        let worker = {
            let (q, done) = (q.clone(), done.clone());
            sylvan::spawn(move || {
                while let Ok(_item) = q.try_get() {
                    sylvan::sleep(MS);
                    done.set(done.get() + 1);
                    q.task_done();
                }
            })
        };
        for j in joiners {
            j.join().unwrap();
            assert_eq!(done.get(), 4, "a joiner woke before every task was done");
        }
        worker.join().unwrap();
        assert_eq!(q.unfinished(), 0);
        assert!(q.join_timeout(MS));
        // A new put makes it unfinished again.
        q.put(9).unwrap();
        assert_eq!(q.unfinished(), 1);
        assert!(!q.join_timeout(2 * MS));
    });
}

/// gevent's `Channel`: a `put` waits until a getter takes the item; a
/// `try_put` goes through only while a getter waits; putters are FIFO.
#[test]
fn channel_rendezvous_put_waits_for_a_getter_and_putters_are_fifo() {
    bounded(|| {
        let ch = Rc::new(Channel::new());
        assert!(ch.try_put(0).unwrap_err().is_full());
        let log = Log::default();
        let putters: Vec<_> = (1..=3)
            .map(|i| {
                let (ch, log) = (ch.clone(), log.clone());
                parked(move || {
                    ch.put(i).unwrap();
                    log.push(format!("put {i}"));
                })
            })
            .collect();
        assert_eq!(ch.putters(), 3);
        assert!(log.get().is_empty(), "no put returned without a getter");
        putters[1].kill();
        assert_eq!(ch.get(), Some(1));
        assert_eq!(ch.get(), Some(3));
        for p in putters {
            let _ = p.join();
        }
        assert_eq!(log.take(), ["put 1", "put 3"]);
        // try_put with a getter waiting goes through, to that getter.
        let g = {
            let ch = ch.clone();
            parked(move || ch.get())
        };
        ch.try_put(42).unwrap();
        assert_eq!(g.join().unwrap(), Some(42));
    });
}

/// gevent's `PriorityQueue` gives the smallest item first and `LifoQueue`
/// the last, also when the items come from putters that waited on a full
/// queue.
#[test]
fn priority_and_lifo_queues_order_items_from_waiting_putters() {
    bounded(|| {
        let pq = Rc::new(PriorityQueue::bounded(2));
        pq.put(5).unwrap();
        pq.put(3).unwrap();
        let p = {
            let pq = pq.clone();
            parked(move || pq.put(1).unwrap())
        };
        assert_eq!(pq.get(), Some(3));
        // The putter's item moved in when room came.
        assert_eq!(pq.get(), Some(1));
        assert_eq!(pq.get(), Some(5));
        p.join().unwrap();

        let lq = Rc::new(LifoQueue::bounded(2));
        lq.put("a").unwrap();
        lq.put("b").unwrap();
        let p = {
            let lq = lq.clone();
            parked(move || lq.put("c").unwrap())
        };
        assert_eq!(lq.get(), Some("b"));
        assert_eq!(lq.get(), Some("c"));
        assert_eq!(lq.get(), Some("a"));
        p.join().unwrap();
    });
}

/// gevent's JoinableQueue counts every item put: one moved in from a
/// putter that waited on a full queue counts once, one whose put timed out
/// not at all, so `join` returns once the items gotten are marked done.
#[test]
fn joinable_queue_counts_refilled_puts_once_and_timed_out_ones_never() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::bounded(1));
        q.put(0).unwrap();
        let putters: Vec<_> = (1..=3)
            .map(|i| {
                let q = q.clone();
                parked(move || {
                    if i == 2 {
                        q.put_timeout(i, 5 * MS).is_ok()
                    } else {
                        q.put(i).is_ok()
                    }
                })
            })
            .collect();
        sylvan::sleep(15 * MS);
        assert_eq!(q.unfinished(), 1);
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(q.get().unwrap());
            q.task_done();
        }
        assert_eq!(got, [0, 1, 3]);
        let puts: Vec<bool> = putters.into_iter().map(|p| p.join().unwrap()).collect();
        assert_eq!(puts, [true, false, true]);
        assert_eq!(q.unfinished(), 0);
        assert!(q.join_timeout(MS));
    });
}

// ================================================================ semaphores, mutex

/// test__semaphore: waiters get permits FIFO; one killed and one timed out
/// in the middle of the line leave no trace and take no permit.
#[test]
fn semaphore_fifo_with_killed_and_timed_out_waiters() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let log = Log::default();
        let mut gs = Vec::new();
        for i in 0..5 {
            let (sem, log) = (sem.clone(), log.clone());
            gs.push(parked(move || {
                if i == 2 {
                    let got = sem.acquire_timeout(5 * MS).is_some();
                    log.push(format!("{i}:{got}"));
                } else {
                    sem.acquire().forget();
                    log.push(format!("{i}"));
                }
            }));
        }
        gs[3].kill();
        sylvan::sleep(20 * MS);
        assert_eq!(log.take(), ["2:false"]);
        assert_eq!(sem.waiters(), 3);
        for _ in 0..4 {
            sem.release(); // one more than the waiters: kept
        }
        for g in gs {
            let _ = g.join();
        }
        assert_eq!(log.take(), ["0", "1", "4"]);
        assert_eq!(sem.available(), 1);
    });
}

/// A mutex handed to a waiter that is killed before it runs passes to the
/// next one; a waiter timed out in the middle is skipped.
#[test]
fn mutex_handoff_skips_killed_and_timed_out_waiters() {
    bounded(|| {
        let m = Rc::new(Mutex::new(Vec::new()));
        let held = m.lock();
        let mut gs = Vec::new();
        for i in 0..4 {
            let m = m.clone();
            gs.push(parked(move || {
                if i == 2 {
                    return m.lock_timeout(5 * MS).is_some();
                }
                m.lock().push(i);
                true
            }));
        }
        sylvan::sleep(20 * MS); // the third times out
        drop(held); // handed to the first waiter, which has not run yet
        gs[0].kill();
        let outs: Vec<_> = gs.into_iter().map(|g| g.join()).collect();
        assert!(outs[0].as_ref().unwrap_err().is_killed());
        assert_eq!(outs[2], Ok(false));
        assert_eq!(*m.lock(), [1, 3]);
        assert!(!m.is_locked());
    });
}

/// gevent's `timeout=0` is a non-blocking try: each primitive answers at
/// once and leaves no waiter behind; `with_timeout(0, f)` returns f's value
/// when f does not block and fails when it does.
#[test]
fn zero_timeouts_answer_at_once_and_leave_no_waiter() {
    bounded(|| {
        assert_eq!(sylvan::with_timeout(Duration::ZERO, || 5), Ok(5));
        assert!(sylvan::with_timeout(Duration::ZERO, || sylvan::sleep(10 * MS)).is_err());
        let s = Semaphore::new(0);
        assert!(s.acquire_timeout(Duration::ZERO).is_none());
        assert_eq!(s.waiters(), 0);
        let q = Queue::unbounded();
        q.put(1).unwrap();
        assert_eq!(q.get_timeout(Duration::ZERO), Ok(1));
        assert_eq!(q.get_timeout(Duration::ZERO), Err(TryGetError::Empty));
        assert_eq!(q.getters(), 0);
        let m = Mutex::new(0);
        let held = m.lock();
        assert!(m.lock_timeout(Duration::ZERO).is_none());
        assert_eq!(m.waiters(), 0);
        drop(held);
        let e = Event::new();
        assert!(!e.wait_timeout(Duration::ZERO));
        assert_eq!(e.waiters(), 0);
    });
}

// ================================================================ events, async results

/// test__event `TestEvent_SetThenClear`: waiters released by a `set` that
/// is cleared again before they run all return true; a later wait waits
/// again.
#[test]
fn event_set_then_clear_releases_every_waiter() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let ws: Vec<_> = (0..4)
            .map(|_| {
                let ev = ev.clone();
                parked(move || ev.wait_timeout(Duration::from_secs(2)))
            })
            .collect();
        ev.set();
        ev.clear();
        for w in ws {
            assert!(w.join().unwrap());
        }
        assert_eq!(ev.waiters(), 0);
        assert!(!ev.wait_timeout(3 * MS), "cleared: waits again");
        assert_eq!(ev.waiters(), 0);
    });
}

/// test__event `TestAsyncResult`: `get` with a timeout fails with a timeout
/// when nothing is set; `set_exception` makes every waiter's `get` fail;
/// a second set is refused and the first value stays.
#[test]
fn async_result_get_timeout_exception_and_second_set() {
    bounded(|| {
        let r: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
        assert_eq!(r.get_timeout(3 * MS), Err(GetError::TimedOut));
        assert_eq!(r.waiters(), 0);
        let gs: Vec<_> = (0..3)
            .map(|_| {
                let r = r.clone();
                parked(move || r.get())
            })
            .collect();
        r.fail("boom".to_string()).unwrap();
        for g in gs {
            assert_eq!(g.join().unwrap(), Err(GetError::Failed("boom".to_string())));
        }
        assert!(r.set(1).is_err());
        assert_eq!(r.is_ok(), Some(false));

        let v: AsyncResult<u32> = AsyncResult::new();
        v.set(5).unwrap();
        assert_eq!(v.set(6).unwrap_err().0, 6);
        assert_eq!(v.get().unwrap(), 5);
    });
}

// ================================================================ timeouts

/// Runs `f` under a timeout expiring at `deadline`: `Err(())` if it did.
fn within<T>(deadline: Instant, f: impl FnOnce() -> T) -> Result<T, ()> {
    let t = Timeout::start_at(deadline);
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(p) if t.is_own_payload(&*p) => Err(()),
        Err(p) => {
            drop(t);
            resume_unwind(p)
        }
    }
}

/// test__timeout `test_nested_timeout`: an outer timeout that expires first
/// passes through an inner `with_timeout`, and an inner one that expires
/// first is reported by its own `with_timeout` while the outer goes on.
#[test]
fn nested_timeouts_report_the_one_that_expired() {
    bounded(|| {
        let r = sylvan::with_timeout(5 * MS, || {
            sylvan::with_timeout(Duration::from_secs(2), || {
                sylvan::sleep(Duration::from_secs(3))
            })
        });
        assert!(r.is_err(), "the outer expired: {r:?}");
        let r = sylvan::with_timeout(Duration::from_secs(2), || {
            let inner = sylvan::with_timeout(5 * MS, || sylvan::sleep(Duration::from_secs(3)));
            sylvan::sleep(5 * MS);
            inner
        });
        assert!(matches!(r, Ok(Err(_))), "{r:?}");
    });
}

/// Two nested timeouts with the same deadline: exactly one is reported,
/// and the other, fired too, does not unwind the greenlet later.
#[test]
fn nested_timeouts_with_one_deadline_leave_no_stray_throw() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            let deadline = Instant::now() + 5 * MS;
            let r = within(deadline, || {
                within(deadline, || sylvan::sleep(Duration::from_secs(2)))
            });
            // Only one of them caught it.
            assert!(matches!(r, Err(()) | Ok(Err(()))), "{r:?}");
            sylvan::sleep(20 * MS); // a stray throw would unwind here
            let ev = Event::new();
            assert!(!ev.wait_timeout(5 * MS));
            "survived"
        });
        assert_eq!(g.join().unwrap(), "survived");
    });
}

/// A timeout that expires while the greenlet blocks inside a destructor
/// running at the normal end of a scope (not during an unwind) unwinds out
/// of it, as gevent's `Timeout` interrupts a blocking `__del__`/`finally`.
#[test]
fn timeout_interrupts_a_destructor_blocking_at_scope_end() {
    struct SleepsOnDrop(Rc<Cell<u32>>);
    impl Drop for SleepsOnDrop {
        fn drop(&mut self) {
            self.0.set(1);
            sylvan::sleep(Duration::from_secs(2));
            self.0.set(2);
        }
    }
    bounded(|| {
        let state = Rc::new(Cell::new(0));
        let s = state.clone();
        let t = Instant::now();
        let r = sylvan::with_timeout(10 * MS, move || {
            let _d = SleepsOnDrop(s);
        });
        assert!(r.is_err());
        assert_eq!(state.get(), 1, "the sleep in drop was interrupted");
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

/// A `Timeout` cancelled before it expires never fires; one that escapes a
/// greenlet ends it as timed out and fires `link_exception` (gevent: an
/// uncaught `Timeout` is the greenlet's exception).
#[test]
fn cancelled_timeout_never_fires_escaped_one_is_an_exception() {
    bounded(|| {
        let t = Timeout::start(3 * MS);
        assert!(t.is_pending());
        t.cancel();
        sylvan::sleep(10 * MS); // would have unwound main

        quiet();
        let g = sylvan::spawn(|| {
            let _t = Timeout::start(3 * MS);
            sylvan::sleep(Duration::from_secs(2));
        });
        let seen = Rc::new(Cell::new(false));
        let s = seen.clone();
        g.link_exception(move |e| s.set(e.is_timeout()));
        assert_eq!(g.join(), Err(Error::TimedOut));
        assert!(seen.get());
    });
}

// ================================================================ greenlet lifecycle

/// test__greenlet `test_kill_scheduled`: a greenlet killed before it
/// started never runs, is dead at once, and its links fire (link: killed;
/// link_exception: not, a kill being a normal exit).
#[test]
fn kill_before_start_fires_links_and_never_runs() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let dropped = Rc::new(Cell::new(0));
        let flag = DropFlag(dropped.clone());
        let g = sylvan::spawn(move || {
            let _f = flag;
            r.set(true);
        });
        let log = Log::default();
        let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
        g.link(move |o| l1.push(format!("link:{}", matches!(o, Outcome::Killed))));
        g.link_value(move |_| l2.push("value"));
        g.link_exception(move |_| l3.push("exception"));
        g.kill_nowait();
        assert!(g.is_dead(), "dead when kill_nowait returns");
        assert!(!g.is_started());
        assert_eq!(dropped.get(), 1, "its closure was dropped");
        assert!(g.join().unwrap_err().is_killed());
        assert!(!ran.get());
        assert_eq!(log.take(), ["link:true"]);
    });
}

/// A greenlet that catches its first kill and parks again dies of the
/// second: every kill is thrown (gevent throws `GreenletExit` each time);
/// `kill_timeout` reports the survivor.
#[test]
fn every_kill_is_thrown_and_kill_timeout_reports_a_survivor() {
    bounded(|| {
        let caught = Rc::new(Cell::new(0));
        let c = caught.clone();
        let g = parked(move || {
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(2))));
            if r.is_err() {
                c.set(c.get() + 1);
            }
            sylvan::sleep(Duration::from_secs(2));
            "unreachable"
        });
        assert!(
            !g.kill_timeout(10 * MS),
            "it swallowed the kill and went on"
        );
        assert_eq!(caught.get(), 1);
        assert!(!g.is_dead());
        g.kill();
        assert!(g.is_dead());
        assert!(g.join().unwrap_err().is_killed());
    });
}

/// test__greenlet link semantics: links fire in registration order, a link
/// added after death still fires, link_value only for a value and
/// link_exception only for a panic.
#[test]
fn links_fire_in_order_and_after_death() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let ok = sylvan::spawn(|| 7);
        let bad = sylvan::spawn(|| -> u32 { panic!("bad") });
        for (name, g) in [("ok", &ok), ("bad", &bad)] {
            let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
            g.link_value(move |v| l1.push(format!("{name} value {v}")));
            g.link_exception(move |e| l2.push(format!("{name} exc {}", e.is_panic())));
            g.link(move |_| l3.push(format!("{name} link")));
        }
        assert!(ok.wait(Some(Duration::from_secs(1))));
        assert!(bad.wait(Some(Duration::from_secs(1))));
        yield_until("callbacks ran", || log.get().len() == 4);
        assert_eq!(
            log.take(),
            ["ok value 7", "ok link", "bad exc true", "bad link"]
        );
        let l = log.clone();
        ok.link_value(move |v| l.push(format!("late {v}")));
        assert_eq!(ok.join().unwrap(), 7);
        assert_eq!(log.take(), ["late 7"]);
    });
}

/// test__greenlet `test_joinall_timeout` / `killall`: joinall with a
/// timeout reports false while one lives; killall kills the rest, started
/// or not, and runs their destructors.
#[test]
fn joinall_timeout_then_killall_started_and_unstarted() {
    bounded(|| {
        let dropped = Rc::new(Cell::new(0));
        let mut gs = Vec::new();
        for i in 0..4u64 {
            let f = DropFlag(dropped.clone());
            gs.push(sylvan::spawn(move || {
                let _f = f;
                sylvan::sleep(Duration::from_millis(if i == 0 { 1 } else { 2000 }));
            }));
        }
        assert!(!sylvan::joinall(&gs, Some(10 * MS)));
        assert!(gs[0].is_dead());
        let late = {
            let f = DropFlag(dropped.clone());
            sylvan::spawn(move || {
                let _f = f;
            })
        };
        gs.push(late); // never started
        assert!(sylvan::killall(&gs, Some(Duration::from_secs(1))).is_ok());
        assert!(gs.iter().all(|g| g.is_dead()));
        assert_eq!(dropped.get(), 5);
        assert!(sylvan::joinall(&gs, None));
    });
}

// ================================================================ locals

sylvan::greenlet_local! {
    static ID: Cell<u32> = Cell::new(0);
    static DROPS: RefCell<Option<DropFlag>> = RefCell::new(None);
}

/// test__local: each greenlet sees its own value (main too), a spawned
/// greenlet does not inherit its parent's, and the value is dropped when
/// the greenlet is killed.
#[test]
fn greenlet_locals_are_separate_not_inherited_and_dropped_on_kill() {
    bounded(|| {
        ID.with(|v| v.set(100));
        let child_saw = Rc::new(Cell::new(u32::MAX));
        let c = child_saw.clone();
        let parent = sylvan::spawn(move || {
            ID.with(|v| v.set(1));
            let inner = sylvan::spawn(move || ID.with(|v| c.set(v.get())));
            inner.join().unwrap();
            ID.with(|v| v.get())
        });
        assert_eq!(parent.join().unwrap(), 1);
        assert_eq!(child_saw.get(), 0, "not inherited");
        assert_eq!(ID.with(|v| v.get()), 100, "main's own");

        let dropped = Rc::new(Cell::new(0));
        let d = dropped.clone();
        let g = parked(move || {
            DROPS.with(|s| *s.borrow_mut() = Some(DropFlag(d)));
            sylvan::sleep(Duration::from_secs(2));
        });
        assert_eq!(dropped.get(), 0);
        g.kill();
        assert_eq!(dropped.get(), 1, "dropped when killed");
    });
}

// ================================================================ pools

/// test__pool `test_pool_full`: `spawn` on a full pool parks the spawner;
/// killing a member frees its slot for the first parked spawner (FIFO), a
/// spawner killed while parked takes no slot.
#[test]
fn pool_full_spawners_fifo_and_killed_member_frees_a_slot() {
    bounded(|| {
        let pool = Pool::new(1);
        let member = pool.spawn(|| sylvan::sleep(Duration::from_secs(2)));
        assert!(pool.is_full());
        let log = Log::default();
        let spawners: Vec<_> = (0..3)
            .map(|i| {
                let (pool, log) = (pool.clone(), log.clone());
                parked(move || {
                    let l = log.clone();
                    let g = pool.spawn(move || l.push(format!("ran {i}")));
                    log.push(format!("spawned {i}"));
                    g.join().unwrap();
                })
            })
            .collect();
        spawners[0].kill(); // parked in spawn: takes no slot with it
        member.kill();
        for s in spawners {
            let _ = s.join();
        }
        assert_eq!(log.take(), ["spawned 1", "ran 1", "spawned 2", "ran 2"]);
        assert_eq!(pool.free_count(), 1);
        assert!(pool.is_empty());
    });
}

/// test__pool: `join(timeout)` is false while members run, true once they
/// ended; `wait_available` returns the free count when a slot frees.
#[test]
fn pool_join_timeout_and_wait_available() {
    bounded(|| {
        let pool = Pool::new(2);
        pool.spawn(|| sylvan::sleep(5 * MS));
        pool.spawn(|| sylvan::sleep(Duration::from_millis(40)));
        assert_eq!(pool.free_count(), 0);
        assert_eq!(pool.wait_available(Some(MS)), 0);
        assert_eq!(pool.wait_available(Some(Duration::from_secs(1))), 1);
        assert!(!pool.join_timeout(2 * MS));
        assert!(pool.join_timeout(Duration::from_secs(1)));
        assert_eq!(pool.free_count(), 2);
        let empty = Group::new();
        assert!(
            empty.join_timeout(Duration::ZERO),
            "an empty group joins at once"
        );
    });
}

/// test__pool `TestErrorInHandler` / `test_map`: `map` keeps input order,
/// and a panicking item is an error in its place while the others succeed.
#[test]
fn pool_map_keeps_order_and_reports_a_panic_in_place() {
    bounded(|| {
        quiet();
        let pool = Pool::new(3);
        let out = pool.map(0..6u64, |i| {
            sylvan::sleep(Duration::from_millis(6 - i));
            assert!(i != 3, "item three");
            i * 10
        });
        assert_eq!(out.len(), 6);
        for (i, r) in out.iter().enumerate() {
            if i == 3 {
                let e = r.as_ref().unwrap_err();
                assert!(e.is_panic());
                assert!(e.panic().unwrap().message().contains("item three"));
            } else {
                assert_eq!(r.as_ref().unwrap(), &(i as u64 * 10));
            }
        }
        assert!(pool.is_empty());
    });
}

/// test__pool `test_imap` / `test_imap_unordered`: imap yields in input
/// order, imap_unordered in finishing order, at most `size` at once.
#[test]
fn imap_orders_by_input_and_imap_unordered_by_finish() {
    bounded(|| {
        let pool = Pool::new(4);
        let live = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let (l, m) = (live.clone(), most.clone());
        let delays = [30u64, 5, 20, 1, 10, 2];
        let got: Vec<u64> = pool
            .imap(delays, move |d| {
                l.set(l.get() + 1);
                m.set(m.get().max(l.get()));
                sylvan::sleep(Duration::from_millis(d));
                l.set(l.get() - 1);
                d
            })
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, delays);
        assert!(most.get() <= 4);
        let pool = Pool::new(6);
        let got: Vec<u64> = pool
            .imap_unordered(delays, |d| {
                sylvan::sleep(Duration::from_millis(d * 5));
                d
            })
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, [1, 2, 5, 10, 20, 30]);
    });
}

/// test__pool `TestErrorInIterator`: an input iterator that panics makes
/// `next` panic; dropping the imap then kills the tasks still running, and
/// the pool is free again.
#[test]
fn imap_input_panic_propagates_and_running_tasks_are_killed() {
    bounded(|| {
        quiet();
        let pool = Pool::new(4);
        let dropped = Rc::new(Cell::new(0));
        let started = Rc::new(Cell::new(0));
        let (d, st) = (dropped.clone(), started.clone());
        let items = (0..10u32).inspect(|&i| assert!(i != 2, "input two"));
        let r = catch_unwind(AssertUnwindSafe(|| {
            let it = pool.imap(items, move |i| {
                st.set(st.get() + 1);
                let _f = DropFlag(d.clone());
                sylvan::sleep(Duration::from_secs(2));
                i
            });
            it.count()
        }));
        assert!(r.is_err(), "the input's panic came out of next");
        yield_until("the tasks were killed", || pool.is_empty());
        assert_eq!(pool.free_count(), 4);
        assert_eq!(dropped.get(), started.get(), "the started tasks unwound");
    });
}

// ================================================================ wait / iwait

/// gevent's `wait(objects, count=N)` returns once N are ready, in readiness
/// order, and `wait(..., timeout)` returns the ready subset; neither leaves
/// a registration on an event.
#[test]
fn wait_count_and_timeout_leave_no_registration() {
    bounded(|| {
        let a = Rc::new(Event::new());
        let b = Rc::new(Event::new());
        let c = Rc::new(Event::new());
        let (a2, c2) = (a.clone(), c.clone());
        let setter = sylvan::spawn(move || {
            sylvan::sleep(2 * MS);
            c2.set();
            sylvan::sleep(2 * MS);
            a2.set();
        });
        let objs: [&dyn sylvan::Waitable; 3] = [&*a, &*b, &*c];
        assert_eq!(sylvan::wait(&objs, None, Some(2)), [2, 0]);
        assert_eq!(b.waiters(), 0);
        assert_eq!(sylvan::wait(&objs, Some(5 * MS), None), [0, 2]);
        assert_eq!(b.waiters(), 0);
        assert!(sylvan::wait(&objs, None, Some(0)).is_empty());
        assert!(sylvan::wait(&[], None, None).is_empty());
        setter.join().unwrap();
    });
}

/// iwait over the same event twice reports both places; a semaphore
/// watched through `wait` takes no permit and keeps no watcher.
#[test]
fn iwait_duplicates_and_semaphore_watchers_cleaned() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let setter = sylvan::spawn(move || {
            sylvan::sleep(2 * MS);
            e.set();
        });
        let objs: [&dyn sylvan::Waitable; 2] = [&*ev, &*ev];
        let got: Vec<usize> = sylvan::iwait(&objs, Some(Duration::from_secs(1))).collect();
        assert_eq!(got, [0, 1]);
        setter.join().unwrap();
        assert_eq!(ev.waiters(), 0);

        let sem = Semaphore::new(0);
        assert!(sylvan::wait(&[&sem], Some(3 * MS), None).is_empty());
        assert_eq!(sem.watchers(), 0);
        sem.release();
        assert_eq!(sylvan::wait(&[&sem], None, None), [0]);
        assert_eq!(sem.available(), 1);
    });
}

/// A greenlet killed while parked in `wait` on several events leaves no
/// registration on any of them, and a set afterwards wakes only the live
/// waiters.
#[test]
fn killed_waiter_in_wait_leaves_no_registration() {
    bounded(|| {
        let evs: Vec<Rc<Event>> = (0..3).map(|_| Rc::new(Event::new())).collect();
        let e2 = evs.clone();
        let g = parked(move || {
            let objs: Vec<&dyn sylvan::Waitable> =
                e2.iter().map(|e| &**e as &dyn sylvan::Waitable).collect();
            sylvan::wait(&objs, None, None)
        });
        assert!(evs.iter().all(|e| e.waiters() == 1));
        g.kill();
        assert!(evs.iter().all(|e| e.waiters() == 0));
        for e in &evs {
            e.set();
        }
    });
}

// ================================================================ sockets

/// test__socket: a half-closed stream: the peer reads to end of stream (0,
/// and 0 again) and can still write back; the closer reads the reply, then
/// 0 once the peer closes.
#[test]
fn tcp_half_close_and_reads_after_close_return_zero() {
    bounded(|| {
        let (c, s) = tcp_pair();
        (&c).write_all(b"ping").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let server = sylvan::spawn(move || {
            let mut got = Vec::new();
            (&s).read_to_end(&mut got).unwrap();
            let mut b = [0u8; 8];
            assert_eq!((&s).read(&mut b).unwrap(), 0, "end of stream again");
            (&s).write_all(b"pong").unwrap();
            got
        });
        let mut reply = [0u8; 4];
        (&c).read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"pong");
        assert_eq!(server.join().unwrap(), b"ping");
        let mut b = [0u8; 8];
        assert_eq!((&c).read(&mut b).unwrap(), 0);
        assert_eq!((&c).read(&mut b).unwrap(), 0);
    });
}

/// Sets SO_LINGER to zero so that closing `s` sends a reset.
fn linger_zero(s: &impl std::os::fd::AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a valid linger struct of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// test__socket: a reader parked when the peer resets gets
/// `ConnectionReset`; a write after that fails with a reset or broken
/// pipe, never hangs or succeeds for ever.
#[test]
fn tcp_reset_by_peer_gives_reset_errors() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let c = Rc::new(c);
        let c2 = c.clone();
        let reader = parked(move || {
            let mut b = [0u8; 16];
            (&*c2).read(&mut b).map_err(|e| e.kind())
        });
        linger_zero(&s);
        drop(s);
        assert_eq!(
            reader.join().unwrap(),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        let e = crate::util::write_until_error(&*c);
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e:?}"
        );
    });
}

/// Socket timeouts set through the API: a read times out with `TimedOut`
/// (gevent's `socket.timeout`), a write to a peer that never reads times
/// out once the buffers fill, and the socket stays usable.
#[test]
fn tcp_read_and_write_timeouts_are_timed_out_and_leave_it_usable() {
    bounded(|| {
        let (c, s) = tcp_pair();
        c.set_read_timeout(Some(5 * MS)).unwrap();
        let mut b = [0u8; 4];
        let t = Instant::now();
        let e = (&c).read(&mut b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= 5 * MS);
        (&s).write_all(b"late").unwrap();
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"late");

        s.set_write_timeout(Some(20 * MS)).unwrap();
        let chunk = vec![0u8; 64 << 10];
        let e = loop {
            if let Err(e) = (&s).write(&chunk) {
                break e;
            }
        };
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        // Drain a little: writes go through again.
        let mut sink = vec![0u8; 256 << 10];
        let _ = (&c).read(&mut sink).unwrap();
        s.set_write_timeout(None).unwrap();
        assert_eq!(s.write_timeout().unwrap(), None);
    });
}

/// A connect to a listener whose accept queue is full (backlog 0, nobody
/// accepting) times out with `TimedOut` under `connect_timeout`.
#[test]
fn connect_timeout_to_a_full_backlog_times_out() {
    bounded(|| {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor made here and owned by
        // the std listener afterwards.
        let listener = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let mut a: libc::sockaddr_in = std::mem::zeroed();
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let rc = libc::bind(
                fd,
                (&a as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0);
            assert_eq!(libc::listen(fd, 0), 0);
            std::net::TcpListener::from_raw_fd(fd)
        };
        let addr = listener.local_addr().unwrap();
        let mut kept = Vec::new();
        let mut timed_out = None;
        for _ in 0..8 {
            match sylvan::net::TcpStream::connect_timeout(addr, 50 * MS) {
                Ok(c) => kept.push(c),
                Err(e) => {
                    timed_out = Some(e.kind());
                    break;
                }
            }
        }
        assert_eq!(timed_out, Some(std::io::ErrorKind::TimedOut));
        assert!(kept.len() <= 3, "the backlog held {}", kept.len());
    });
}

/// Several greenlets reading one stream (shared `&TcpStream`) are served in
/// the order they began waiting: one write of three full buffers gives
/// each its chunk in turn (the first reader is woken, reads a full buffer,
/// and passes the readiness on).
#[test]
fn readers_of_one_stream_are_served_in_order_chunk_by_chunk() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let s = Rc::new(s);
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                parked(move || {
                    let mut b = [0u8; 4];
                    let n = (&*s).read(&mut b).unwrap();
                    b[..n].to_vec()
                })
            })
            .collect();
        (&c).write_all(b"aaaabbbbcccc").unwrap();
        let got: Vec<Vec<u8>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(got, [b"aaaa".to_vec(), b"bbbb".to_vec(), b"cccc".to_vec()]);
    });
}

/// Every greenlet parked reading one stream wakes with end of stream when
/// the peer closes, and with 0 after `shutdown(Read)` on another stream
/// (wake-one plus pass-on must reach all of them).
#[test]
fn all_readers_of_one_stream_see_end_of_stream() {
    bounded(|| {
        for how in ["peer close", "shutdown read"] {
            let (c, s) = tcp_pair();
            let s = Rc::new(s);
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let s = s.clone();
                    parked(move || {
                        let mut b = [0u8; 16];
                        (&*s).read(&mut b).map_err(|e| e.kind())
                    })
                })
                .collect();
            if how == "peer close" {
                drop(c);
            } else {
                s.shutdown(std::net::Shutdown::Read).unwrap();
            }
            for r in readers {
                let got = sylvan::with_timeout(Duration::from_secs(1), || r.join().unwrap());
                assert_eq!(got, Ok(Ok(0)), "{how}");
            }
        }
    });
}

/// Many connections, a reader parked on each; the server writes to them in
/// reverse order, and each reader gets its own bytes.
#[test]
fn many_concurrent_readers_each_get_their_own_data() {
    bounded(|| {
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let n = 50;
        let readers: Vec<_> = (0..n)
            .map(|i| {
                sylvan::spawn(move || {
                    let c = sylvan::net::TcpStream::connect(addr).unwrap();
                    (&c).write_all(&[i as u8]).unwrap();
                    let mut b = [0u8; 3];
                    (&c).read_exact(&mut b).unwrap();
                    assert_eq!(b, [i as u8; 3]);
                    i
                })
            })
            .collect();
        let mut conns = Vec::new();
        for _ in 0..n {
            let (s, _) = l.accept().unwrap();
            let mut id = [0u8; 1];
            (&s).read_exact(&mut id).unwrap();
            conns.push((id[0], s));
        }
        for (id, s) in conns.iter().rev() {
            (&*s).write_all(&[*id; 3]).unwrap();
        }
        let got: Vec<u32> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    });
}

/// Two greenlets reading one UDP socket each get one of two datagrams.
#[test]
fn udp_readers_of_one_socket_each_get_a_datagram() {
    bounded(|| {
        let rx = Rc::new(sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = rx.local_addr().unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                parked(move || {
                    let mut b = [0u8; 16];
                    let n = rx.recv(&mut b).unwrap();
                    b[..n].to_vec()
                })
            })
            .collect();
        let tx = sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"one", addr).unwrap();
        tx.send_to(b"two", addr).unwrap();
        let got: Vec<Vec<u8>> = readers
            .into_iter()
            .map(|r| {
                sylvan::with_timeout(Duration::from_secs(1), || r.join().unwrap())
                    .expect("a reader was left parked with a datagram queued")
            })
            .collect();
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    });
}

// ================================================================ cross-thread

/// Greenlets sharing one mpsc receiver fed from another thread: every value
/// is received exactly once, one receiver killed midway loses none, and
/// the last sender's drop ends every receiver.
#[test]
fn shared_mpsc_receiver_across_threads_loses_nothing() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let got = Rc::new(RefCell::new(Vec::new()));
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let (rx, got) = (rx.clone(), got.clone());
                parked(move || {
                    while let Ok(v) = rx.recv() {
                        got.borrow_mut().push(v);
                    }
                })
            })
            .collect();
        let go = std::sync::Arc::new(std::sync::Barrier::new(2));
        let go2 = go.clone();
        let sender = std::thread::spawn(move || {
            for i in 0..40 {
                tx.send(i).unwrap();
                if i == 20 {
                    go2.wait(); // main kills a receiver now
                    go2.wait();
                }
                if i % 5 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        yield_until("half sent", || got.borrow().len() >= 15);
        sylvan::spawn_blocking({
            let go = go.clone();
            move || go.wait()
        });
        receivers[0].kill();
        sylvan::spawn_blocking(move || go.wait());
        for r in receivers.into_iter().skip(1) {
            r.join().unwrap();
        }
        sylvan::spawn_blocking(move || sender.join().unwrap());
        let mut all = got.borrow().clone();
        all.sort();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
    });
}

/// Three greenlets in `recv_timeout` on one shared receiver, one value sent
/// from another thread: exactly one gets it (the first parked), the others
/// time out.
#[test]
fn shared_mpsc_receiver_one_value_goes_to_one_timed_receiver() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let gs: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                parked(move || rx.recv_timeout(20 * MS).ok())
            })
            .collect();
        let t = std::thread::spawn(move || {
            tx.send(5).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        });
        let got: Vec<_> = gs.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(got, [Some(5), None, None]);
        sylvan::spawn_blocking(move || t.join().unwrap());
    });
}
