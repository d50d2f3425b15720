//! Third round of probes, aimed at the latest changes: queue items handed
//! to a getter that has not run (`State::handed`), wait/iwait reporting an
//! Event set then cleared, a dropped Timeout withdrawing its queued throw
//! (and the plain wake-up every park must treat as spurious), re-entrant
//! `StreamServer::stop` / `serve_forever`, and `Pool::imap*` giving the slot
//! back when the input panics or blocks through an unwind. Each test cites
//! the gevent behaviour or the invariant it checks. Tests marked
//! `#[ignore = "BUG: ..."]` show a sylvan bug; the rest are regression
//! tests. Every test runs under `bounded` so none can hang.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpStream, UnixStream};
use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, Channel, Event, JoinableQueue, LifoQueue, Mutex, PriorityQueue, Queue, Semaphore,
    TryGetError, TryPutError,
};
use sylvan::{Greenlet, Timeout, idle, sleep, sleep_until, spawn, with_timeout, yield_now};

use crate::util::{DropFlag, Log, bounded, quiet, yield_until};

const MS: Duration = Duration::from_millis(1);

// ======================================================= withdrawn throws

/// Runs `op` in a fresh greenlet G that first arms a `Timeout` due at
/// t0+10ms; another greenlet drops that Timeout at t0+5ms, but only after
/// both timers have fired in one turn of the hub (main keeps the thread
/// busy past both deadlines), so G's throw was already queued when it was
/// withdrawn: G gets the plain (spurious) wake-up of
/// `withdraw_deferred_timeout`. Returns G once that wake-up was processed.
fn spurious_wake_in<T: 'static>(op: impl FnOnce() -> T + 'static) -> Greenlet<T> {
    let t0 = Instant::now();
    let slot: Rc<RefCell<Option<Timeout>>> = Rc::default();
    let s = slot.clone();
    let g = spawn(move || {
        *s.borrow_mut() = Some(Timeout::start_at(t0 + 10 * MS));
        op()
    });
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let h = spawn(move || {
        sleep_until(t0 + 5 * MS);
        drop(slot.borrow_mut().take().expect("G armed its Timeout"));
        d.set(true);
    });
    yield_now(); // G parks in `op`, H in its sleep
    std::thread::sleep(20 * MS); // both deadlines pass while the hub is busy
    h.join().unwrap(); // the turn fires both timers; H runs first
    assert!(dropped.get());
    yield_now(); // G has taken its wake-up
    g
}

// Invariant (hub.rs withdraw_deferred_timeout doc): the plain wake-up left
// by a withdrawn throw is spurious and every park re-checks what it waits
// for. gevent: a cancelled Timeout never raises (test__timeout.py
// test_cancel_after_fire-style); Event.wait returns only once set.
#[test]
fn sw01_event_wait_survives_withdrawn_throw() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = spurious_wake_in(move || e.wait());
        assert!(!g.is_dead(), "Event::wait returned on a spurious wake-up");
        assert_eq!(ev.waiters(), 1);
        ev.set();
        assert!(g.join().unwrap());
    })
}

// Event::wait_timeout must run its full timeout after a spurious wake-up
// (gevent Event.wait(timeout) returns False only when the time is up).
#[test]
fn sw02_event_wait_timeout_not_cut_short() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let start = Instant::now();
        let g = spurious_wake_in(move || (e.wait_timeout(80 * MS), Instant::now()));
        assert!(!g.is_dead());
        let (got, at) = g.join().unwrap();
        assert!(!got);
        assert!(at - start >= 80 * MS, "returned after {:?}", at - start);
        assert_eq!(ev.waiters(), 0);
    })
}

// Semaphore.acquire blocks until a release (gevent test__semaphore.py);
// a spurious wake-up must not hand out a permit that does not exist.
#[test]
fn sw03_semaphore_acquire_survives_withdrawn_throw() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let s = sem.clone();
        let g = spurious_wake_in(move || {
            s.acquire().forget();
            s.available()
        });
        assert!(!g.is_dead(), "acquire returned without a permit");
        assert_eq!(sem.waiters(), 1);
        sem.release();
        assert_eq!(g.join().unwrap(), 0);
        assert_eq!(sem.available(), 0);
    })
}

// Mutex.lock: only one holder at a time (gevent RLock/Semaphore(1)).
#[test]
fn sw04_mutex_lock_survives_withdrawn_throw() {
    bounded(|| {
        let m = Rc::new(Mutex::new(0u32));
        let guard = m.lock();
        let m2 = m.clone();
        let g = spurious_wake_in(move || {
            let mut v = m2.lock();
            *v += 1;
            *v
        });
        assert!(!g.is_dead(), "lock returned while main holds it");
        drop(guard);
        assert_eq!(g.join().unwrap(), 1);
        assert!(!m.is_locked());
    })
}

// Queue.get blocks until an item comes (gevent test__queue.py); after a
// spurious wake-up the getter is still in line and gets the next item.
#[test]
fn sw05_queue_get_survives_withdrawn_throw() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let q2 = q.clone();
        let g = spurious_wake_in(move || q2.get());
        assert!(!g.is_dead(), "get returned with no item");
        assert_eq!(q.getters(), 1);
        q.put(7).unwrap();
        assert_eq!(g.join().unwrap(), Some(7));
        assert!(q.is_empty());
    })
}

// Queue.put on a full queue blocks until room (gevent test__queue.py
// TestQueue put blocking); the item is neither lost nor accepted early.
#[test]
fn sw06_queue_put_survives_withdrawn_throw() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        q.put(1).unwrap();
        let q2 = q.clone();
        let g = spurious_wake_in(move || q2.put(2).is_ok());
        assert!(!g.is_dead(), "put returned on a full queue");
        assert_eq!(q.putters(), 1);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get(), Some(1));
        assert!(g.join().unwrap());
        assert_eq!(q.try_get(), Ok(2));
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
    })
}

// Channel.put waits for a getter (gevent Channel); a spurious wake-up does
// not make it return as if taken.
#[test]
fn sw07_channel_put_and_get_survive_withdrawn_throw() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let c = ch.clone();
        let g = spurious_wake_in(move || c.put(5).is_ok());
        assert!(!g.is_dead(), "channel put returned without a getter");
        assert_eq!(ch.get(), Some(5));
        assert!(g.join().unwrap());
        let c = ch.clone();
        let g = spurious_wake_in(move || c.get());
        assert!(!g.is_dead(), "channel get returned without a putter");
        ch.put(6).unwrap();
        assert_eq!(g.join().unwrap(), Some(6));
    })
}

// Greenlet.join waits for death (gevent Greenlet.join).
#[test]
fn sw08_join_survives_withdrawn_throw() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let k = spawn(move || {
            e.wait();
            42
        });
        let g = spurious_wake_in(move || k.join().unwrap());
        assert!(!g.is_dead(), "join returned before the target died");
        ev.set();
        assert_eq!(g.join().unwrap(), 42);
    })
}

// socket.recv blocks until data (gevent test__socket.py); a spurious
// wake-up must not return WouldBlock, 0 or an error.
#[test]
fn sw09_socket_read_survives_withdrawn_throw() {
    bounded(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        let g = spurious_wake_in(move || {
            let mut buf = [0u8; 8];
            let n = (&b).read(&mut buf);
            n.map(|n| buf[..n].to_vec())
        });
        assert!(!g.is_dead(), "read returned with no data");
        a.write_all(b"x").unwrap();
        assert_eq!(g.join().unwrap().unwrap(), b"x");
    })
}

// gevent.sleep(d) sleeps at least d (test__sleep0 / test__timeout).
#[test]
fn sw10_sleep_not_cut_short() {
    bounded(|| {
        let start = Instant::now();
        let g = spurious_wake_in(move || {
            sleep(60 * MS);
            Instant::now()
        });
        let end = g.join().unwrap();
        assert!(end - start >= 60 * MS, "slept only {:?}", end - start);
    })
}

// gevent.wait([event]) returns only once the event is set; after a
// spurious wake-up, no registration is leaked either.
#[test]
fn sw11_wait_and_iwait_survive_withdrawn_throw() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = spurious_wake_in(move || sylvan::wait(&[&*e], None, None));
        assert!(!g.is_dead(), "wait returned with nothing ready");
        assert_eq!(ev.waiters(), 1);
        ev.set();
        assert_eq!(g.join().unwrap(), [0]);
        assert_eq!(ev.waiters(), 0);
        ev.clear();
        let e = ev.clone();
        let g = spurious_wake_in(move || sylvan::iwait(&[&*e], None).next());
        assert!(!g.is_dead(), "iwait yielded with nothing ready");
        ev.set();
        assert_eq!(g.join().unwrap(), Some(0));
        assert_eq!(ev.waiters(), 0);
    })
}

// AsyncResult.get blocks until set (gevent test__event.py
// TestAsyncResult); a spurious wake-up is not "Unwinding" or "TimedOut".
#[test]
fn sw12_async_result_get_survives_withdrawn_throw() {
    bounded(|| {
        let r = Rc::new(AsyncResult::<u32>::new());
        let r2 = r.clone();
        let g = spurious_wake_in(move || r2.get().ok());
        assert!(!g.is_dead(), "get returned before the value was set");
        r.set(9).unwrap();
        assert_eq!(g.join().unwrap(), Some(9));
    })
}

// JoinableQueue.join waits until every item is task_done (gevent
// test__queue.py TestJoinableQueue).
#[test]
fn sw13_joinable_join_survives_withdrawn_throw() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::<u32>::unbounded());
        q.put(1).unwrap();
        let q2 = q.clone();
        let g = spurious_wake_in(move || {
            q2.join();
            q2.unfinished()
        });
        assert!(!g.is_dead(), "join returned with an unfinished item");
        assert_eq!(q.get(), Some(1));
        q.task_done();
        assert_eq!(g.join().unwrap(), 0);
    })
}

// Pool.spawn blocks while the pool is full and wait_available() blocks
// until a slot frees (gevent test__pool.py test_wait_available).
#[test]
fn sw14_pool_spawn_and_wait_available_survive_withdrawn_throw() {
    bounded(|| {
        let pool = Pool::new(1);
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let busy = pool.spawn(move || {
            e.wait();
        });
        let p = pool.clone();
        let g = spurious_wake_in(move || p.wait_available(None));
        assert!(!g.is_dead(), "wait_available returned with no slot free");
        let p = pool.clone();
        let g2 = spurious_wake_in(move || p.spawn(|| 5).join().unwrap());
        assert!(!g2.is_dead(), "pool.spawn went past the bound");
        assert_eq!(pool.len(), 1);
        ev.set();
        busy.join().unwrap();
        assert_eq!(g.join().unwrap(), 1);
        assert_eq!(g2.join().unwrap(), 5);
        pool.join();
        assert_eq!(pool.free_count(), 1);
    })
}

// gevent.idle() returns only when the loop has nothing else to run; a
// spurious wake-up must not make it return while other greenlets are
// ready (here: main, woken by H's death, is ready and has not run).
#[test]
fn sw15_idle_survives_withdrawn_throw() {
    bounded(|| {
        let g = spurious_wake_in(idle);
        assert!(
            !g.is_dead(),
            "idle() returned while main was ready to run (spurious wake-up)"
        );
        g.join().unwrap();
    })
}

// Control for sw15: without a withdrawn throw, idle() in a greenlet does
// not return while main is running, and does return once every other
// greenlet (main included) is parked (gevent.idle()).
#[test]
fn sw15b_idle_control_returns_only_when_all_parked() {
    bounded(|| {
        let g = spawn(idle);
        let h = spawn(|| sleep(5 * MS));
        yield_now();
        std::thread::sleep(10 * MS);
        h.join().unwrap();
        yield_now();
        assert!(!g.is_dead(), "idle() returned while main was running");
        assert!(
            g.wait(Some(Duration::from_secs(1))),
            "idle() never returned"
        );
    })
}

// Greenlet.wait(None) (gevent Greenlet.join(timeout=None)) parks until
// the target is dead: a spurious wake-up must not make it return early,
// and a kill of the target from elsewhere then ends the wait.
#[test]
fn sw16_kill_wait_survives_withdrawn_throw() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let k = spawn(move || {
            e.wait();
        });
        let k = Rc::new(k);
        let k2 = k.clone();
        let g = spurious_wake_in(move || {
            let ok = k2.wait(None);
            (ok, k2.is_dead())
        });
        assert!(!g.is_dead(), "Greenlet::wait returned before death");
        k.kill();
        assert_eq!(g.join().unwrap(), (true, true));
    })
}

// Nested timeouts due in the same turn: the first throw is queued, the
// second deferred behind it. Dropping the first (from another greenlet)
// must promote the second, which then fires: gevent's inner/outer
// Timeouts both still apply (test__api_timeout.py test_nested_timeout).
#[test]
fn sw17_withdrawn_throw_promotes_the_deferred_one() {
    bounded(|| {
        let t0 = Instant::now();
        let first: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let f = first.clone();
        let g = spawn(move || {
            *f.borrow_mut() = Some(Timeout::start_at(t0 + 10 * MS));
            let second = Timeout::start_at(t0 + 12 * MS);
            let ev = Event::new();
            let r = catch_unwind(AssertUnwindSafe(|| ev.wait()));
            let caught_second = r.as_ref().is_err_and(|p| second.is_own_payload(&**p));
            // nothing else is thrown later
            sleep(20 * MS);
            caught_second
        });
        let h = spawn(move || {
            sleep_until(t0 + 5 * MS);
            drop(first.borrow_mut().take());
        });
        yield_now();
        std::thread::sleep(25 * MS);
        h.join().unwrap();
        assert!(
            g.join().unwrap(),
            "the deferred (second) timeout did not fire"
        );
    })
}

// The other way round: the deferred throw is withdrawn (its Timeout
// dropped) while the first one is queued: the first fires once, and the
// withdrawn one never fires later (a cancelled timeout never raises).
#[test]
fn sw18_withdrawn_deferred_throw_never_fires() {
    bounded(|| {
        let t0 = Instant::now();
        let second: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let s = second.clone();
        let g = spawn(move || {
            let first = Timeout::start_at(t0 + 10 * MS);
            *s.borrow_mut() = Some(Timeout::start_at(t0 + 12 * MS));
            let ev = Event::new();
            let r = catch_unwind(AssertUnwindSafe(|| ev.wait()));
            let caught_first = r.as_ref().is_err_and(|p| first.is_own_payload(&**p));
            let later = catch_unwind(|| sleep(30 * MS));
            (caught_first, later.is_ok())
        });
        let h = spawn(move || {
            sleep_until(t0 + 5 * MS);
            drop(second.borrow_mut().take());
        });
        yield_now();
        std::thread::sleep(25 * MS);
        h.join().unwrap();
        assert_eq!(g.join().unwrap(), (true, true));
    })
}

// Both queued and deferred throws withdrawn: the owner sees only a
// spurious wake-up and keeps waiting; then a kill still works and is
// reported as a kill (gevent: kill raises GreenletExit).
#[test]
fn sw19_all_throws_withdrawn_then_killed() {
    bounded(|| {
        let t0 = Instant::now();
        let slots: Rc<RefCell<Vec<Timeout>>> = Rc::default();
        let s = slots.clone();
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = spawn(move || {
            s.borrow_mut().push(Timeout::start_at(t0 + 10 * MS));
            s.borrow_mut().push(Timeout::start_at(t0 + 11 * MS));
            e.wait()
        });
        let h = spawn(move || {
            sleep_until(t0 + 5 * MS);
            slots.borrow_mut().clear();
        });
        yield_now();
        std::thread::sleep(25 * MS);
        h.join().unwrap();
        yield_now();
        assert!(!g.is_dead(), "a withdrawn throw still unwound the owner");
        assert_eq!(ev.waiters(), 1);
        sleep(5 * MS); // no late throw either
        assert!(!g.is_dead());
        g.kill();
        assert!(matches!(g.join(), Err(sylvan::Error::Killed)));
        assert_eq!(ev.waiters(), 0);
    })
}

// A kill that arrives while a timeout throw is queued is deferred behind
// it; withdrawing the timeout must promote the kill, not lose it (gevent
// delivers every kill).
#[test]
fn sw20_withdrawn_throw_promotes_a_deferred_kill() {
    bounded(|| {
        let t0 = Instant::now();
        let slot: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let s = slot.clone();
        let g = Rc::new(spawn(move || {
            *s.borrow_mut() = Some(Timeout::start_at(t0 + 10 * MS));
            Event::new().wait();
        }));
        let g2 = g.clone();
        let h = spawn(move || {
            sleep_until(t0 + 5 * MS);
            g2.kill_nowait(); // deferred behind the queued timeout throw
            drop(slot.borrow_mut().take());
        });
        yield_now();
        std::thread::sleep(20 * MS);
        h.join().unwrap();
        let Ok(g) = Rc::try_unwrap(g) else {
            panic!("only handle")
        };
        assert!(matches!(g.join(), Err(sylvan::Error::Killed)));
    })
}

// ================================================================ wait

// gevent.wait(objects) (hub.py wait / _WaitIterator with MultipleWaiter):
// every link notification is collected, so two events each set and
// cleared before the waiter runs are both reported. The change in
// 9387553 reports one; the other's fired registration is dropped with
// the watches and never seen again.
#[test]
fn wi01_two_events_set_and_cleared_both_reported() {
    bounded(|| {
        let a = Rc::new(Event::new());
        let b = Rc::new(Event::new());
        let (a2, b2) = (a.clone(), b.clone());
        let setter = spawn(move || {
            a2.set();
            a2.clear();
            b2.set();
            b2.clear();
        });
        let r = sylvan::wait(&[&*a, &*b], Some(200 * MS), None);
        setter.join().unwrap();
        assert_eq!(r, [0, 1], "a fired registration was lost");
        assert_eq!(a.waiters() + b.waiters(), 0);
    })
}

// Same loss with a greenlet that dies in the same turn: the dead greenlet
// is reported first (it is still ready), and the fired Event registration
// is dropped with the watches (gevent reports both).
#[test]
fn wi02_dead_greenlet_and_cleared_event_in_one_turn() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = spawn(move || {
            e.set();
            e.clear();
        });
        let r = sylvan::wait(&[&g, &*ev], Some(200 * MS), None);
        assert_eq!(r.len(), 2, "got {r:?}: the event's notification was lost");
    })
}

// wait(count=1) on an event set and cleared: reported once, and no
// registration is left behind (iwait doc: dropping early leaves none).
#[test]
fn wi03_count_one_set_and_cleared_leaves_no_registration() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let setter = spawn(move || {
            for _ in 0..3 {
                e.set();
                e.clear();
            }
        });
        let other = Event::new();
        let r = sylvan::wait(&[&other, &*ev], Some(200 * MS), Some(1));
        setter.join().unwrap();
        assert_eq!(r, [1]);
        assert_eq!(ev.waiters(), 0);
        assert_eq!(other.waiters(), 0);
    })
}

// iwait dropped while parked (its consumer killed) leaves no registration
// on any object, so later sets wake nobody stale (gevent _WaitIterator
// _cleanup unlinks everything).
#[test]
fn wi04_iwait_consumer_killed_leaves_no_registration() {
    bounded(|| {
        let a = Rc::new(Event::new());
        let b = Rc::new(Event::new());
        let (a2, b2) = (a.clone(), b.clone());
        let got = Rc::new(RefCell::new(Vec::new()));
        let gt = got.clone();
        let g = spawn(move || {
            for i in sylvan::iwait(&[&*a2, &*b2], None) {
                gt.borrow_mut().push(i);
            }
        });
        yield_now();
        assert_eq!(a.waiters() + b.waiters(), 2);
        a.set();
        a.clear();
        yield_now();
        assert_eq!(*got.borrow(), [0]);
        assert_eq!(b.waiters(), 1);
        g.kill();
        assert_eq!(a.waiters() + b.waiters(), 0);
        b.set();
        yield_now();
        assert_eq!(*got.borrow(), [0]);
    })
}

// iwait timing out after some objects were reported: the remaining ones
// are not reported later and no registration remains (gevent iwait with
// timeout stops the iteration).
#[test]
fn wi05_iwait_timeout_after_partial_results() {
    bounded(|| {
        let a = Rc::new(Event::new());
        let b = Rc::new(Event::new());
        let a2 = a.clone();
        let setter = spawn(move || {
            sleep(2 * MS);
            a2.set();
            a2.clear();
        });
        let objs: [&dyn sylvan::Waitable; 2] = [&*a, &*b];
        let mut it = sylvan::iwait(&objs, Some(40 * MS));
        assert_eq!(it.next(), Some(0));
        let start = Instant::now();
        assert_eq!(it.next(), None);
        assert!(start.elapsed() < 200 * MS);
        b.set();
        assert_eq!(it.next(), None, "iteration ended at the timeout");
        drop(it);
        setter.join().unwrap();
        assert_eq!(a.waiters() + b.waiters(), 0);
    })
}

// ================================================================ queues

// gevent Queue(maxsize): qsize never exceeds maxsize. The commit claims an
// item handed back by a getter killed before it ran "always fits"; with
// two getters handed an item each on a bounded(1) queue (sylvan hands a
// second put straight to the second waiting getter, where gevent's put
// would wait since the first item still sits in the queue), killing both
// leaves two items in a queue of capacity one.
#[test]
fn q01_two_handed_getters_killed_overfill_bounded_queue() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let gs: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now();
        assert_eq!(q.getters(), 2);
        q.try_put(1).unwrap();
        let second = q.try_put(2).is_ok();
        // both killed before either runs
        for g in &gs {
            g.kill_nowait();
        }
        for g in &gs {
            g.wait(None);
        }
        assert!(
            q.len() <= 1,
            "capacity 1 but len {} (second try_put ok: {second})",
            q.len()
        );
    })
}

// Items are never lost or duplicated when handed getters are killed:
// whatever the capacity question above, every accepted item comes out
// exactly once, in FIFO order (gevent Queue is FIFO).
#[test]
fn q02_handed_items_conserved_when_getters_killed() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(2));
        let gs: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now();
        let mut accepted = Vec::new();
        for i in 1..=5 {
            if q.try_put(i).is_ok() {
                accepted.push(i);
            }
        }
        gs[0].kill();
        gs[2].kill();
        let mut out = Vec::new();
        while let Ok(v) = q.try_get() {
            out.push(v);
        }
        for g in gs {
            if let Ok(Some(v)) = g.join() {
                out.push(v);
            }
        }
        out.sort_unstable();
        assert_eq!(out, accepted);
    })
}

// The item handed to a getter killed before it ran goes to the next
// waiting getter (FIFO among getters, gevent test__queue.py
// TestGetInterrupt): the second getter gets item 1, then 2.
#[test]
fn q03_killed_getter_passes_item_to_next_getter() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let log = Log::default();
        let mk = |name: &'static str| {
            let q = q.clone();
            let log = log.clone();
            spawn(move || {
                let v = q.get();
                log.push(format!("{name}:{v:?}"));
            })
        };
        let g1 = mk("g1");
        let g2 = mk("g2");
        yield_now();
        q.put(1).unwrap(); // handed to g1
        g1.kill(); // passes 1 to g2
        q.put(2).unwrap();
        g2.join().unwrap();
        assert_eq!(log.take(), ["g2:Some(1)"]);
        assert_eq!(q.try_get(), Ok(2));
    })
}

// When the getter takes its handed item, the room goes to a waiting
// putter (the refill): no putter is left waiting with room in the queue.
#[test]
fn q04_refill_after_handoff_wakes_putter() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let q2 = q.clone();
        let g = spawn(move || q2.get());
        yield_now();
        q.try_put(1).unwrap(); // in the queue until the woken getter runs
        assert!(q.is_full());
        assert_eq!(
            q.len(),
            1,
            "counted until the getter takes it, as gevent's qsize"
        );
        assert!(matches!(q.try_put(9), Err(TryPutError::Full(9))));
        let q3 = q.clone();
        let p = spawn(move || q3.put(2).is_ok());
        yield_now(); // p parks (room held), g takes 1 and refills from p
        assert_eq!(g.join().unwrap(), Some(1));
        assert!(p.join().unwrap());
        assert_eq!(q.putters(), 0);
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_get(), Ok(2));
        assert!(!q.is_full());
    })
}

// put_timeout while the room is held by a handed item: the getter runs
// during the wait, frees the room, and the put succeeds well before its
// timeout (gevent: put(timeout) succeeds as soon as there is room).
#[test]
fn q05_put_timeout_succeeds_when_handed_getter_runs() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let q2 = q.clone();
        let g = spawn(move || q2.get());
        yield_now();
        q.try_put(1).unwrap();
        let start = Instant::now();
        assert!(q.put_timeout(2, Duration::from_secs(2)).is_ok());
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(g.join().unwrap(), Some(1));
        assert_eq!(q.try_get(), Ok(2));
    })
}

// get_timeout whose deadline passes in the same turn as a put hands it an
// item: the item is returned, not dropped (gevent: no item is lost).
#[test]
fn q06_get_timeout_chosen_at_deadline_keeps_item() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let q2 = q.clone();
        let g = spawn(move || q2.get_timeout(5 * MS));
        yield_now();
        std::thread::sleep(10 * MS); // its deadline has passed
        q.try_put(3).unwrap(); // handed before the timer is seen
        let r = g.join().unwrap();
        match r {
            Ok(v) => assert_eq!(v, 3),
            Err(e) => {
                assert_eq!(e, TryGetError::Empty);
                assert_eq!(q.try_get(), Ok(3), "item lost");
            }
        }
        assert!(q.is_empty());
        assert!(!q.is_full());
    })
}

// A getter chosen with an item and then unwound by a Timeout firing in the
// same turn passes the item on (gevent TestGetInterrupt with a Timeout).
#[test]
fn q07_getter_timed_out_after_handoff_passes_item_on() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let q2 = q.clone();
        let g1 = spawn(move || with_timeout(5 * MS, || q2.get()));
        let q3 = q.clone();
        let g2 = spawn(move || q3.get());
        yield_now();
        std::thread::sleep(10 * MS);
        q.try_put(4).unwrap(); // handed to g1, whose Timeout is due
        let r1 = g1.join().unwrap();
        if r1.is_err() {
            assert_eq!(g2.join().unwrap(), Some(4));
        } else {
            assert_eq!(r1, Ok(Some(4)));
            g2.kill();
        }
        assert!(q.is_empty());
        assert_eq!(q.getters(), 0);
    })
}

// LifoQueue (gevent LifoQueue): the last item put comes out first. An item
// handed to a getter that is killed before it ran "sat in the queue" since
// it was put (gevent's own model, cited by the commit), so items put after
// it come out before it. sylvan restores it on top instead.
#[test]
fn q08_lifo_order_after_handed_item_given_back() {
    bounded(|| {
        let q = Rc::new(LifoQueue::<u32>::unbounded());
        let q2 = q.clone();
        let g = spawn(move || q2.get());
        yield_now();
        q.put(1).unwrap(); // handed to g
        q.put(2).unwrap();
        q.put(3).unwrap();
        g.kill(); // 1 comes back
        let out: Vec<u32> = std::iter::from_fn(|| q.try_get().ok()).collect();
        assert_eq!(out, [3, 2, 1]);
    })
}

// PriorityQueue (gevent PriorityQueue): smallest first, including an item
// given back by a killed getter; capacity holds.
#[test]
fn q09_priority_order_after_handed_item_given_back() {
    bounded(|| {
        let q = Rc::new(PriorityQueue::<u32>::bounded(3));
        let q2 = q.clone();
        let g = spawn(move || q2.get());
        yield_now();
        q.put(5).unwrap(); // handed to g
        q.put(7).unwrap();
        q.put(1).unwrap();
        assert!(q.is_full(), "the handed item holds its room");
        assert!(matches!(q.try_put(0), Err(TryPutError::Full(0))));
        g.kill();
        assert_eq!(q.len(), 3);
        let out: Vec<u32> = std::iter::from_fn(|| q.try_get().ok()).collect();
        assert_eq!(out, [1, 5, 7]);
    })
}

// Channel (gevent Channel): a getter killed before it ran does not lose
// the item; the next get receives it, and later rendezvous still work.
#[test]
fn q10_channel_killed_getter_does_not_lose_item() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let c = ch.clone();
        let g = spawn(move || c.get());
        yield_now();
        assert!(ch.try_put(1).is_ok());
        g.kill();
        assert_eq!(ch.try_get(), Ok(1));
        assert_eq!(ch.try_get(), Err(TryGetError::Empty));
        let c = ch.clone();
        let p = spawn(move || c.put(2).is_ok());
        yield_now();
        assert_eq!(ch.putters(), 1);
        assert_eq!(ch.get(), Some(2));
        assert!(p.join().unwrap());
        assert!(ch.is_empty());
    })
}

// JoinableQueue (gevent test__queue.py TestJoinableQueue): an item handed
// to a getter killed before it ran is counted once; join returns after it
// is processed by another consumer.
#[test]
fn q11_joinable_counts_with_killed_handed_getter() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::<u32>::bounded(1));
        let q2 = q.clone();
        let g = spawn(move || q2.get());
        yield_now();
        q.put(1).unwrap();
        assert_eq!(q.unfinished(), 1);
        g.kill();
        assert_eq!(q.unfinished(), 1);
        assert!(!q.join_timeout(5 * MS));
        let q3 = q.clone();
        let worker = spawn(move || {
            while let Ok(_v) = q3.try_get() {
                q3.task_done();
            }
        });
        q.join();
        worker.join().unwrap();
        assert_eq!(q.unfinished(), 0);
    })
}

// A putter killed while waiting never had its item accepted: it does not
// count as unfinished and is not in the queue (gevent: put raises, item
// not added).
#[test]
fn q12_killed_putter_item_not_accepted() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::<u32>::bounded(1));
        q.put(1).unwrap();
        let q2 = q.clone();
        let p = spawn(move || q2.put(2).is_ok());
        yield_now();
        assert_eq!(q.putters(), 1);
        p.kill();
        assert_eq!(q.putters(), 0);
        assert_eq!(q.unfinished(), 1);
        assert_eq!(q.try_get(), Ok(1));
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
        q.task_done();
        assert!(q.join_timeout(MS));
    })
}

// close() with a handed item outstanding: the chosen getter still gets its
// item; a getter killed after close gives it back for the drain; getters
// then see the end (gevent has no close; sylvan documents drain-then-end).
#[test]
fn q13_close_with_handed_items_outstanding() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(2));
        let gs: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                spawn(move || q.get())
            })
            .collect();
        yield_now();
        q.put(1).unwrap(); // g0
        q.put(2).unwrap(); // g1
        q.close();
        gs[1].kill(); // 2 comes back, and can be drained
        assert_eq!(q.len(), 1);
        let mut it = gs.into_iter();
        assert_eq!(it.next().unwrap().join().unwrap(), Some(1));
        assert_eq!(q.get(), Some(2));
        assert_eq!(q.get(), None);
        assert_eq!(q.try_get(), Err(TryGetError::Closed));
        assert!(matches!(q.try_put(3), Err(TryPutError::Closed(3))));
    })
}

// try_get while a handed item holds the room and a putter waits: no item
// lost or duplicated, and no waiter is left stranded with room available.
#[test]
fn q14_try_get_with_handed_item_and_waiting_putter() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let q2 = q.clone();
        let g = spawn(move || q2.get());
        yield_now();
        q.try_put(1).unwrap(); // handed
        let q3 = q.clone();
        let p = spawn(move || q3.put(2).is_ok());
        let q4 = q.clone();
        let p2 = spawn(move || q4.put(3).is_ok());
        // p and p2 park before g runs? g was woken first: let all run.
        yield_now();
        let mut got = vec![g.join().unwrap().unwrap()];
        while q.putters() > 0 || !q.is_empty() {
            got.push(q.get().unwrap());
        }
        assert!(p.join().unwrap());
        assert!(p2.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        assert!(q.is_empty());
        assert!(!q.is_full());
    })
}

/// A tiny deterministic generator for the stress test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Drives a queue of capacity `cap` through random getters, putters, kills
/// and timeouts, and checks conservation: every accepted item comes out
/// exactly once, and the buffer never holds more than its capacity.
fn stress<Q: 'static>(
    seed: u64,
    cap: usize,
    q: Rc<Q>,
    put: fn(&Q, u32, Duration) -> bool,
    get: fn(&Q, Duration) -> Option<u32>,
    try_get: fn(&Q) -> Option<u32>,
    len: fn(&Q) -> usize,
) {
    let mut rng = Lcg(seed);
    let accepted = Rc::new(RefCell::new(Vec::new()));
    let got = Rc::new(RefCell::new(Vec::new()));
    let mut live: Vec<Greenlet<()>> = Vec::new();
    let mut killed: Vec<Greenlet<()>> = Vec::new();
    let mut max_len = 0;
    let mut next_item = 0u32;
    for _ in 0..300 {
        match rng.next(6) {
            0 | 1 => {
                next_item += 1;
                let item = next_item;
                let (q, acc) = (q.clone(), accepted.clone());
                let t = Duration::from_millis(rng.next(3));
                live.push(spawn(move || {
                    // recorded before the put: a kill mid-put may still
                    // have the item accepted
                    acc.borrow_mut().push((item, false));
                    let ok = put(&q, item, t);
                    for e in acc.borrow_mut().iter_mut() {
                        if e.0 == item {
                            e.1 = ok;
                        }
                    }
                }));
            }
            2 | 3 => {
                let (q, got) = (q.clone(), got.clone());
                let t = Duration::from_millis(rng.next(3));
                live.push(spawn(move || {
                    if let Some(v) = get(&q, t) {
                        got.borrow_mut().push(v);
                    }
                }));
            }
            4 if !live.is_empty() => {
                let i = rng.next(live.len() as u64) as usize;
                let g = live.swap_remove(i);
                g.kill_nowait();
                killed.push(g);
            }
            _ => yield_now(),
        }
        max_len = max_len.max(len(&q));
    }
    for g in live.iter().chain(&killed) {
        g.wait(None);
    }
    while let Some(v) = try_get(&q) {
        got.borrow_mut().push(v);
    }
    let mut got = got.borrow().clone();
    got.sort_unstable();
    let n = got.len();
    got.dedup();
    assert_eq!(got.len(), n, "an item came out twice");
    // Every item that came out was put; every put that returned Ok came out.
    let acc = accepted.borrow();
    for &(item, ok) in acc.iter() {
        if ok {
            assert!(
                got.binary_search(&item).is_ok(),
                "accepted item {item} lost"
            );
        }
    }
    for v in &got {
        assert!(acc.iter().any(|e| e.0 == *v), "item {v} never put");
    }
    assert!(
        max_len <= cap.max(1),
        "buffer held {max_len} items, capacity {cap}"
    );
}

/// [`stress`] on any queue type of `sylvan::sync` (they share their
/// method names, not a trait).
macro_rules! stress {
    ($seed:expr, $cap:expr, $queue:expr) => {
        stress(
            $seed,
            $cap,
            Rc::new($queue),
            |q, v, t| q.put_timeout(v, t).is_ok(),
            |q, t| q.get_timeout(t).ok(),
            |q| q.try_get().ok(),
            |q| q.len(),
        )
    };
}

// Conservation under random kills and timeouts for Queue (gevent
// test__queue.py: no item lost, none duplicated, qsize <= maxsize).
#[test]
fn q15_stress_queue_conservation() {
    bounded(|| {
        for (seed, cap) in [(1, 1), (2, 2), (3, 3), (4, 1)] {
            stress!(seed, cap, Queue::<u32>::bounded(cap));
        }
    })
}

// Same for LifoQueue and PriorityQueue.
#[test]
fn q16_stress_lifo_and_priority_conservation() {
    bounded(|| {
        for (seed, cap) in [(5, 1), (6, 2)] {
            stress!(seed, cap, LifoQueue::<u32>::bounded(cap));
            stress!(seed + 10, cap, PriorityQueue::<u32>::bounded(cap));
        }
    })
}

// Same for Channel: conservation (its buffer may hold an item handed back
// by a killed getter, hence the bound of one).
#[test]
fn q17_stress_channel_conservation() {
    bounded(|| {
        for seed in [7, 8, 9] {
            stress!(seed, 0, Channel::<u32>::new());
        }
    })
}

// ================================================================ server

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    TcpStream::connect(addr).unwrap()
}

fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(
        TcpStream::connect(addr).map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionRefused)
    )
}

/// A server whose handlers park on `gate` until it is set, counting drops
/// (kills included) in `dropped`, and completions in `done`.
fn gated_server(gate: &Rc<Event>, dropped: &Rc<Cell<u32>>, done: &Rc<Cell<u32>>) -> StreamServer {
    let (g, d, c) = (gate.clone(), dropped.clone(), done.clone());
    StreamServer::bind("127.0.0.1:0", move |_conn: TcpStream, _| {
        let _flag = DropFlag(d.clone());
        g.wait();
        c.set(c.get() + 1);
    })
    .unwrap()
}

// gevent BaseServer.stop may be called from several places; every call
// returns, and together they kill the stuck handler. sylvan: every stop()
// finishes the job (re-entrant).
#[test]
fn s01_concurrent_stops_all_return_and_kill_handler() {
    bounded(|| {
        let (gate, dropped, done) = (Rc::default(), Rc::default(), Rc::default());
        let server = gated_server(&gate, &dropped, &done).start().unwrap();
        let addr = server.local_addr().unwrap();
        let _c = connect(addr);
        yield_until("handler runs", || server.handlers() == 1);
        let timeouts = [None, Some(20 * MS), Some(50 * MS), None];
        let stoppers: Vec<_> = timeouts
            .into_iter()
            .map(|t| {
                let s = server.clone();
                spawn(move || s.stop(t))
            })
            .collect();
        for s in stoppers {
            s.join().unwrap();
        }
        assert_eq!(dropped.get(), 1);
        assert_eq!(done.get(), 0);
        assert_eq!(server.handlers(), 0);
        assert!(server.is_stopped());
        assert!(!server.is_started());
        assert!(refused(addr));
        server.stop(None); // once more: cheap, no hang
    })
}

// gevent test__server.py: a handler may stop its own server; serve_forever
// then returns, and the handler that stopped it runs to its end (stop does
// not kill its caller), while another stuck handler is killed.
#[test]
fn s02_stop_from_handler_while_serve_forever() {
    bounded(|| {
        let me: Rc<RefCell<Option<StreamServer>>> = Rc::default();
        let log = Log::default();
        let (m, l) = (me.clone(), log.clone());
        let server = StreamServer::bind("127.0.0.1:0", move |mut conn: TcpStream, _| {
            let mut b = [0u8; 1];
            if conn.read_exact(&mut b).is_err() {
                return;
            }
            if b[0] == b's' {
                let s = m.borrow().clone().expect("set");
                s.stop(Some(30 * MS));
                l.push("stopper finished");
            } else {
                l.push("stuck");
                sleep(Duration::from_secs(3600));
            }
        })
        .unwrap();
        *me.borrow_mut() = Some(server.clone());
        let addr = server.local_addr().unwrap();
        let client = spawn(move || {
            let mut stuck = connect(addr);
            stuck.write_all(b"x").unwrap();
            sleep(5 * MS);
            let mut stopper = connect(addr);
            stopper.write_all(b"s").unwrap();
            let mut rest = Vec::new();
            let _ = stopper.read_to_end(&mut rest);
            drop(stuck);
        });
        let r = server.serve_forever();
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(log.get(), ["stuck", "stopper finished"]);
        assert_eq!(server.handlers(), 0);
        client.join().unwrap();
        me.borrow_mut().take();
    })
}

// A stopped server cannot be served again: serve_forever returns an error
// at once instead of parking forever (sylvan docs; gevent raises on a
// closed server's start).
#[test]
fn s03_stop_then_serve_forever_errors_at_once() {
    bounded(|| {
        let server = StreamServer::bind("127.0.0.1:0", |_c: TcpStream, _| {}).unwrap();
        server.stop(None);
        let start = Instant::now();
        assert!(server.serve_forever().is_err());
        assert!(start.elapsed() < Duration::from_secs(1));
        let server = StreamServer::bind("127.0.0.1:0", |_c: TcpStream, _| {})
            .unwrap()
            .start()
            .unwrap();
        server.stop(Some(MS));
        assert!(server.serve_forever().is_err());
    })
}

// serve_forever killed: the accept loop and handlers are killed as it
// unwinds (sylvan doc); nothing keeps running or accepting.
#[test]
fn s04_serve_forever_killed_kills_handlers() {
    bounded(|| {
        let (gate, dropped, done) = (Rc::default(), Rc::default(), Rc::default());
        let server = gated_server(&gate, &dropped, &done);
        let addr = server.local_addr().unwrap();
        let s = server.clone();
        let g = spawn(move || s.serve_forever());
        let _c = connect(addr);
        yield_until("handler runs", || server.handlers() == 1);
        g.kill();
        yield_until("handler killed", || dropped.get() == 1);
        assert_eq!(done.get(), 0);
        yield_until("handler gone", || server.handlers() == 0);
        assert!(server.is_stopped());
        assert!(refused(addr));
    })
}

// A pooled server (gevent StreamServer(spawn=Pool(1))): stop kills the
// running handler, gives its pool slot back, and the connection waiting in
// the backlog is never handled.
#[test]
fn s05_pooled_server_stop_frees_pool() {
    bounded(|| {
        let (gate, dropped, done) = (Rc::default(), Rc::default(), Rc::default());
        let pool = Pool::new(1);
        let server = gated_server(&gate, &dropped, &done)
            .with_pool(pool.clone())
            .start()
            .unwrap();
        let addr = server.local_addr().unwrap();
        let _c1 = connect(addr);
        let _c2 = connect(addr);
        yield_until("handler runs", || server.handlers() == 1);
        sleep(5 * MS);
        assert_eq!(server.accepted(), 1, "pool full: the second waits");
        server.stop(Some(10 * MS));
        assert_eq!(dropped.get(), 1);
        assert_eq!(server.handlers(), 0);
        assert_eq!(pool.free_count(), 1);
        assert_eq!(pool.len(), 0);
        assert_eq!(server.accepted(), 1);
    })
}

// A stop cut short (its caller killed while waiting for handlers) is
// finished by the next stop (sylvan doc of stop: every call does the
// whole job).
#[test]
fn s06_interrupted_stop_finished_by_next() {
    bounded(|| {
        let (gate, dropped, done) = (Rc::default(), Rc::default(), Rc::default());
        let server = gated_server(&gate, &dropped, &done).start().unwrap();
        let addr = server.local_addr().unwrap();
        let _c = connect(addr);
        yield_until("handler runs", || server.handlers() == 1);
        let s = server.clone();
        let g = spawn(move || s.stop(None));
        yield_now();
        g.kill();
        assert_eq!(dropped.get(), 0, "the interrupted stop killed nobody");
        assert_eq!(server.handlers(), 1);
        server.stop(Some(5 * MS));
        assert_eq!(dropped.get(), 1);
        assert_eq!(server.handlers(), 0);
    })
}

// gevent serve_forever ends with stop(): when it returns, handlers are
// dealt with. Here a stop(None) elsewhere waits for a handler that then
// finishes normally: serve_forever must wait for that stop, and the
// handler must complete (not be killed by serve_forever's own stop).
#[test]
fn s07_serve_forever_waits_for_stop_in_progress() {
    bounded(|| {
        let (gate, dropped, done): (Rc<Event>, _, _) =
            (Rc::default(), Rc::default(), Rc::default());
        let server = gated_server(&gate, &dropped, &done);
        let addr = server.local_addr().unwrap();
        let s = server.clone();
        let gt = gate.clone();
        let stopper = spawn(move || {
            let _c = connect(addr);
            yield_until("handler runs", || s.handlers() == 1);
            let s2 = s.clone();
            let st = spawn(move || s2.stop(None));
            yield_now();
            sleep(20 * MS);
            gt.set();
            st.join().unwrap();
        });
        server.serve_forever().unwrap();
        assert_eq!(done.get(), 1, "the handler completed");
        assert_eq!(dropped.get(), 1);
        assert_eq!(server.handlers(), 0);
        stopper.join().unwrap();
    })
}

// serve_forever with a handler that never ends, stopped by stop(Some(0))
// elsewhere racing serve_forever's own grace: every path returns, and the
// handler is killed (gevent stop(timeout) kills what is left).
#[test]
fn s08_stop_zero_timeout_kills_at_once() {
    bounded(|| {
        let (gate, dropped, done) = (Rc::default(), Rc::default(), Rc::default());
        let server = gated_server(&gate, &dropped, &done).start().unwrap();
        let addr = server.local_addr().unwrap();
        let _c = connect(addr);
        yield_until("handler runs", || server.handlers() == 1);
        let start = Instant::now();
        server.stop(Some(Duration::ZERO));
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(dropped.get(), 1);
        assert_eq!(done.get(), 0);
        assert_eq!(server.handlers(), 0);
    })
}

// gevent serve_forever after a fatal accept error (is_fatal_error ->
// close) still ends with stop(stop_timeout): a handler that finishes within
// the grace completes normally, and serve_forever returns the error only
// after it (sylvan 840bb11).
#[test]
fn s09_fatal_accept_error_lets_running_handler_finish() {
    use std::os::fd::AsRawFd;
    bounded(|| {
        let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = l.as_raw_fd();
        let addr = l.local_addr().unwrap();
        let done = Rc::new(Cell::new(0u32));
        let dropped = Rc::new(Cell::new(0u32));
        let (d, k) = (done.clone(), dropped.clone());
        let server = StreamServer::new(l, move |_c: TcpStream, _| {
            let _f = DropFlag(k.clone());
            sleep(30 * MS);
            d.set(d.get() + 1);
        });
        let s2 = server.clone();
        let breaker = spawn(move || {
            let _c = connect(addr);
            yield_until("handler runs", || s2.handlers() == 1);
            // SAFETY: shutdown(2) on the listener's open descriptor.
            assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
            sleep(100 * MS);
        });
        let start = Instant::now();
        let e = server.serve_forever().expect_err("the fatal accept error");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        assert_eq!(done.get(), 1, "the handler finished within the grace");
        assert_eq!(dropped.get(), 1);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(server.handlers(), 0);
        breaker.join().unwrap();
    })
}

// Two greenlets in serve_forever on one server (gevent allows several
// waiters on the stop event): one stop ends both, each returns Ok.
#[test]
fn s10_two_serve_forever_callers_both_return() {
    bounded(|| {
        let (gate, dropped, done) = (Rc::default(), Rc::default(), Rc::default());
        let server = gated_server(&gate, &dropped, &done);
        let addr = server.local_addr().unwrap();
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let s = server.clone();
                spawn(move || s.serve_forever().is_ok())
            })
            .collect();
        let _c = connect(addr);
        yield_until("handler runs", || server.handlers() == 1);
        server.stop(Some(5 * MS));
        for c in callers {
            assert!(c.join().unwrap());
        }
        assert_eq!(dropped.get(), 1);
        assert_eq!(server.handlers(), 0);
    })
}

// ================================================================ pool

/// An input that panics when it reaches `at`.
fn panicking_input(n: u32, at: u32) -> impl Iterator<Item = u32> {
    (0..n).inspect(move |&i| {
        if i == at {
            panic!("input broke at {at}");
        }
    })
}

// gevent Pool.imap: an exception in the input iterator propagates to the
// consumer; the pool must not leak the slot it took for that item
// (0524a29). Checked at several positions, including the first.
#[test]
fn p01_imap_input_panic_releases_slot() {
    bounded(|| {
        quiet();
        for at in [0, 1, 2, 5] {
            let pool = Pool::new(2);
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.imap(panicking_input(8, at), |i| i * 10)
                    .map(|r| r.unwrap())
                    .collect::<Vec<_>>()
            }));
            assert!(r.is_err());
            pool.join();
            assert_eq!(pool.free_count(), 2, "slot leaked (panic at {at})");
            assert_eq!(pool.len(), 0);
            let all: Vec<_> = pool.imap(0..4, |i| i).map(|r| r.unwrap()).collect();
            assert_eq!(all, [0, 1, 2, 3]);
        }
    })
}

// Results before the panic are correct and in order, and the iteration can
// be resumed after catching the panic (the input goes on after it): every
// later result is correct too, none duplicated or lost.
#[test]
fn p02_imap_resumes_after_caught_input_panic() {
    bounded(|| {
        quiet();
        let pool = Pool::new(3);
        let mut n = 0u32;
        let input = std::iter::from_fn(move || {
            n += 1;
            match n {
                4 => panic!("blip"),
                10.. => None,
                _ => Some(n),
            }
        });
        let mut it = pool.imap(input, |i| {
            sleep(Duration::from_millis(u64::from(i % 3)));
            i * 2
        });
        let mut out = Vec::new();
        let mut panics = 0;
        loop {
            match catch_unwind(AssertUnwindSafe(|| it.next())) {
                Ok(Some(r)) => out.push(r.unwrap()),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
            assert!(panics <= 1);
        }
        drop(it);
        assert_eq!(panics, 1);
        assert_eq!(out, [2, 4, 6, 10, 12, 14, 16, 18]);
        pool.join();
        assert_eq!(pool.free_count(), 3);
    })
}

// Same for imap_unordered: set of results correct, slots all back.
#[test]
fn p03_imap_unordered_input_panic_results_and_slots() {
    bounded(|| {
        quiet();
        let pool = Pool::new(2);
        let mut n = 0u32;
        let input = std::iter::from_fn(move || {
            n += 1;
            match n {
                3 | 6 => panic!("blip"),
                9.. => None,
                _ => Some(n),
            }
        });
        let mut it = pool.imap_unordered(input, |i| {
            yield_now();
            i + 100
        });
        let mut out = Vec::new();
        let mut panics = 0;
        for _ in 0..50 {
            match catch_unwind(AssertUnwindSafe(|| it.next())) {
                Ok(Some(r)) => out.push(r.unwrap()),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
        }
        drop(it);
        out.sort_unstable();
        assert_eq!(panics, 2);
        assert_eq!(out, [101, 102, 104, 105, 107, 108]);
        pool.join();
        assert_eq!(pool.free_count(), 2);
    })
}

// A consumer timed out / killed while the input blocks (a queue's iter()
// waiting for more) gives the slot back (0524a29), and the tasks it
// started are killed or finished; the pool is whole afterwards.
#[test]
fn p04_imap_consumer_unwound_while_input_blocks() {
    bounded(|| {
        let pool = Pool::new(2);
        let feed = Rc::new(Queue::<u32>::unbounded());
        feed.put(1).unwrap();
        let f = feed.clone();
        let p = pool.clone();
        let r = with_timeout(20 * MS, move || {
            p.imap(f.iter(), |i| i)
                .map(|r| r.unwrap())
                .collect::<Vec<_>>()
        });
        assert!(r.is_err());
        pool.join();
        assert_eq!(pool.free_count(), 2);
        // and killed instead of timed out, for imap_unordered
        let f = feed.clone();
        let p = pool.clone();
        let got = Rc::new(RefCell::new(Vec::new()));
        let gt = got.clone();
        let g = spawn(move || {
            for r in p.imap_unordered(f.iter(), |i| i) {
                gt.borrow_mut().push(r.unwrap());
            }
        });
        feed.put(2).unwrap();
        yield_now();
        sleep(2 * MS);
        g.kill();
        // the blocked input holds back the result (documented limit)
        assert!(got.borrow().len() <= 1);
        pool.join();
        assert_eq!(pool.free_count(), 2);
        assert_eq!(feed.getters(), 0);
    })
}

// Group (no bound) with a panicking input: nothing to leak, but the tasks
// started before the panic are not lost either when the iterator is kept.
#[test]
fn p05_group_imap_input_panic() {
    bounded(|| {
        quiet();
        let group = Group::new();
        let mut it = group.imap(panicking_input(5, 3), |i| i + 1);
        let mut out = Vec::new();
        let mut panics = 0;
        for _ in 0..20 {
            match catch_unwind(AssertUnwindSafe(|| it.next())) {
                Ok(Some(r)) => out.push(r.unwrap()),
                Ok(None) => break,
                Err(_) => panics += 1,
            }
        }
        drop(it);
        group.join();
        assert!(group.is_empty());
        // the tasks started before the panic are kept, and the input goes
        // on after it (the range moved past 3)
        assert_eq!(panics, 1);
        assert_eq!(out, [1, 2, 3, 5]);
    })
}
