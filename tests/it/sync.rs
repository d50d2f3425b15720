//! sylvan::sync: Event, AsyncResult, semaphores, Mutex, queues, Channel.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Channel, Closed, Event, GetError, JoinableQueue, LifoQueue,
    Mutex, PriorityQueue, Queue, Semaphore, TryGetError, TryPutError,
};

use crate::util::{DropFlag, Log};

const MS: Duration = Duration::from_millis(1);

/// Spawns `n` greenlets running `f(i)`, then yields until all have started
/// (and so, for the bodies here, parked).
fn spawn_parked<T: 'static>(
    n: usize,
    f: impl Fn(usize) -> T + 'static,
) -> Vec<sylvan::Greenlet<T>> {
    let f = Rc::new(f);
    let gs: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            sylvan::spawn(move || f(i))
        })
        .collect();
    sylvan::yield_now();
    assert!(gs.iter().all(|g| g.is_started() && !g.is_dead()));
    gs
}

fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

// ----- Event ---------------------------------------------------------------

#[test]
fn event_set_wakes_every_waiter_in_fifo_order() {
    let ev = Rc::new(Event::new());
    let log = Log::default();
    let gs = {
        let (ev, log) = (ev.clone(), log.clone());
        spawn_parked(4, move |i| {
            assert!(ev.wait());
            log.push(format!("w{i}"));
        })
    };
    assert_eq!(ev.waiters(), 4);
    assert!(!ev.is_set());
    ev.set();
    ev.set(); // idempotent
    sylvan::joinall(&gs, None);
    assert_eq!(log.take(), ["w0", "w1", "w2", "w3"]);
    assert_eq!(ev.waiters(), 0);
    // Set: waits return at once; cleared: they park again.
    assert!(ev.wait());
    ev.clear();
    assert!(!ev.wait_timeout(5 * MS));
}

#[test]
fn event_waiter_woken_by_set_returns_true_even_if_cleared_before_it_runs() {
    let ev = Rc::new(Event::new());
    let gs = {
        let ev = ev.clone();
        spawn_parked(2, move |_| ev.wait_timeout(Duration::from_secs(10)))
    };
    ev.set();
    ev.clear();
    for g in gs {
        assert!(g.join().unwrap());
    }
}

#[test]
fn event_wait_timeout_returns_false_on_timeout_and_true_when_set() {
    let ev = Rc::new(Event::new());
    let t = Instant::now();
    assert!(!ev.wait_timeout(10 * MS));
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(ev.waiters(), 0, "a timed-out waiter leaves no trace");
    let e = ev.clone();
    sylvan::spawn(move || {
        sylvan::sleep(2 * MS);
        e.set()
    });
    assert!(ev.wait_timeout(Duration::from_secs(10)));
}

#[test]
fn event_kill_while_parked_leaves_no_trace() {
    let ev = Rc::new(Event::new());
    let dropped = counter();
    let gs = {
        let (ev, dropped) = (ev.clone(), dropped.clone());
        spawn_parked(3, move |_| {
            let _flag = DropFlag(dropped.clone());
            ev.wait();
        })
    };
    gs[1].kill();
    assert_eq!(dropped.get(), 1);
    assert_eq!(ev.waiters(), 2);
    ev.set();
    assert!(sylvan::joinall(&gs, None));
    assert!(gs[0].is_dead() && gs[2].is_dead());
    assert_eq!(dropped.get(), 3);
    assert_eq!(ev.waiters(), 0);
}

#[test]
fn event_wait_under_with_timeout_unwinds_and_leaves_no_trace() {
    let ev = Event::new();
    let r = sylvan::with_timeout(5 * MS, || ev.wait());
    assert!(r.is_err());
    assert_eq!(ev.waiters(), 0);
}

// ----- AsyncResult ---------------------------------------------------------

#[test]
fn async_result_every_getter_gets_a_clone_and_a_second_set_is_an_error() {
    let r: Rc<AsyncResult<String, String>> = Rc::new(AsyncResult::new());
    let gs = {
        let r = r.clone();
        spawn_parked(3, move |_| r.get())
    };
    assert_eq!(r.waiters(), 3);
    assert!(r.peek().is_none());
    r.set("v".to_string()).unwrap();
    let again = r.set("w".to_string()).unwrap_err();
    assert_eq!(again.0, "w", "the rejected value is handed back");
    assert!(r.fail("e".to_string()).is_err());
    for g in gs {
        assert_eq!(g.join().unwrap(), Ok("v".to_string()));
    }
    assert_eq!(r.get(), Ok("v".to_string()));
    assert_eq!(r.is_ok(), Some(true));
}

#[test]
fn async_result_failure_reaches_every_getter() {
    let r: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
    let gs = {
        let r = r.clone();
        spawn_parked(2, move |_| r.get())
    };
    r.fail("down".to_string()).unwrap();
    for g in gs {
        assert_eq!(g.join().unwrap(), Err(GetError::Failed("down".to_string())));
    }
    assert_eq!(r.is_ok(), Some(false));
}

#[test]
fn async_result_default_error_type_takes_any_error() {
    let r: AsyncResult<u32> = AsyncResult::new();
    r.fail(Rc::new(std::io::Error::other("boom"))).unwrap();
    match r.get() {
        Err(GetError::Failed(e)) => assert_eq!(e.to_string(), "boom"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn async_result_get_timeout_and_kill_while_parked() {
    let r: Rc<AsyncResult<u32, ()>> = Rc::new(AsyncResult::new());
    let t = Instant::now();
    assert_eq!(r.get_timeout(10 * MS), Err(GetError::TimedOut));
    assert!(t.elapsed() >= 10 * MS);
    assert!(!r.wait_timeout(MS));
    let gs = {
        let r = r.clone();
        spawn_parked(2, move |_| r.get())
    };
    gs[0].kill();
    assert_eq!(r.waiters(), 1);
    r.set(5).unwrap();
    assert!(gs[0].is_dead());
    let gs: Vec<_> = gs.into_iter().collect();
    let mut it = gs.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert_eq!(it.next().unwrap().join().unwrap(), Ok(5));
    assert_eq!(r.waiters(), 0);
}

// ----- Semaphore -----------------------------------------------------------

#[test]
fn semaphore_hands_permits_out_in_fifo_order() {
    let sem = Rc::new(Semaphore::new(1));
    let log = Log::default();
    let held = sem.acquire();
    let gs = {
        let (sem, log) = (sem.clone(), log.clone());
        spawn_parked(4, move |i| {
            let _p = sem.acquire();
            log.push(format!("g{i}"));
            sylvan::yield_now();
        })
    };
    assert_eq!(sem.waiters(), 4);
    drop(held);
    // No barging: the permit went to g0, not to a new acquirer.
    assert!(sem.try_acquire().is_none());
    sylvan::joinall(&gs, None);
    assert_eq!(log.take(), ["g0", "g1", "g2", "g3"]);
    assert_eq!(sem.available(), 1);
}

#[test]
fn semaphore_acquire_timeout_returns_none_then_some() {
    let sem = Rc::new(Semaphore::new(0));
    let t = Instant::now();
    assert!(sem.acquire_timeout(10 * MS).is_none());
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(sem.waiters(), 0);
    let s = sem.clone();
    sylvan::spawn(move || s.release());
    let p = sem.acquire_timeout(Duration::from_secs(10));
    assert!(p.is_some());
    drop(p);
    assert_eq!(sem.available(), 1);
}

#[test]
fn semaphore_kill_while_parked_leaves_no_trace_and_the_next_proceeds() {
    let sem = Rc::new(Semaphore::new(0));
    let gs = {
        let sem = sem.clone();
        spawn_parked(3, move |i| {
            let _p = sem.acquire();
            i
        })
    };
    gs[0].kill();
    assert_eq!(sem.waiters(), 2);
    sem.release();
    sem.release();
    let mut it = gs.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert_eq!(it.next().unwrap().join().unwrap(), 1);
    assert_eq!(it.next().unwrap().join().unwrap(), 2);
    assert_eq!(sem.available(), 2);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn semaphore_permit_handed_to_a_killed_waiter_passes_to_the_next() {
    let sem = Rc::new(Semaphore::new(0));
    let gs = {
        let sem = sem.clone();
        spawn_parked(2, move |i| {
            let p = sem.acquire();
            p.forget(); // keep it: the test counts permits
            i
        })
    };
    sem.release(); // handed to g0, which has not run yet
    gs[0].kill_nowait(); // g0 dies before it runs: the permit passes on
    let mut it = gs.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert_eq!(it.next().unwrap().join().unwrap(), 1);
    assert_eq!(sem.available(), 0, "exactly one permit, now held by g1");
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn semaphore_permit_held_by_a_killed_greenlet_is_released() {
    let sem = Rc::new(Semaphore::new(1));
    let holder = {
        let sem = sem.clone();
        sylvan::spawn(move || {
            let _p = sem.acquire();
            sylvan::sleep(Duration::from_secs(60));
        })
    };
    sylvan::yield_now();
    let waiter = {
        let sem = sem.clone();
        sylvan::spawn(move || sem.acquire().forget())
    };
    sylvan::yield_now();
    assert_eq!(sem.waiters(), 1);
    holder.kill();
    waiter.join().unwrap();
    assert_eq!(sem.available(), 0);
}

#[test]
fn bounded_semaphore_refuses_release_past_its_bound() {
    let sem = BoundedSemaphore::new(2);
    assert!(sem.release().is_err());
    let a = sem.acquire();
    sem.acquire().forget();
    assert!(sem.is_locked());
    assert!(sem.try_acquire().is_none());
    sem.release().unwrap();
    drop(a);
    assert_eq!(sem.available(), 2);
    assert!(sem.release().is_err());
    assert_eq!(sem.bound(), 2);
}

// ----- Mutex ---------------------------------------------------------------

#[test]
fn mutex_parks_greenlets_and_hands_off_in_fifo_order() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let held = m.lock();
    let gs = {
        let m = m.clone();
        spawn_parked(3, move |i| {
            let mut v = m.lock();
            v.push(i);
            sylvan::yield_now();
            v.push(i);
        })
    };
    assert_eq!(m.waiters(), 3);
    assert!(m.try_lock().is_none());
    drop(held);
    assert!(m.try_lock().is_none(), "the lock went to the first waiter");
    sylvan::joinall(&gs, None);
    assert_eq!(*m.lock(), [0, 0, 1, 1, 2, 2]);
    assert!(!m.is_locked());
}

#[test]
fn mutex_lock_timeout_returns_none_while_held() {
    let m = Rc::new(Mutex::new(1));
    let g = m.lock();
    let m2 = m.clone();
    let waiter = sylvan::spawn(move || m2.lock_timeout(10 * MS).map(|v| *v));
    assert_eq!(waiter.join().unwrap(), None);
    assert_eq!(m.waiters(), 0);
    drop(g);
    assert_eq!(m.lock_timeout(MS).map(|v| *v), Some(1));
}

#[test]
fn mutex_killed_holder_releases_to_the_next_waiter() {
    let m = Rc::new(Mutex::new(0));
    let holder = {
        let m = m.clone();
        sylvan::spawn(move || {
            let mut v = m.lock();
            *v = 1;
            sylvan::sleep(Duration::from_secs(60));
            *v = 99;
        })
    };
    sylvan::yield_now();
    let next = {
        let m = m.clone();
        spawn_parked(1, move |_| {
            let mut v = m.lock();
            *v += 10;
            *v
        })
    };
    holder.kill();
    assert_eq!(next.into_iter().next().unwrap().join().unwrap(), 11);
    assert!(!m.is_locked());
}

#[test]
fn mutex_panicking_holder_releases_and_nothing_is_poisoned() {
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
    let m = Rc::new(Mutex::new(0));
    let holder = {
        let m = m.clone();
        sylvan::spawn(move || {
            let _v = m.lock();
            sylvan::yield_now();
            panic!("holder fails");
        })
    };
    sylvan::yield_now();
    let m2 = m.clone();
    let next = sylvan::spawn(move || *m2.lock() + 1);
    assert!(holder.join().unwrap_err().is_panic());
    assert_eq!(next.join().unwrap(), 1);
}

#[test]
fn mutex_lock_handed_to_a_killed_waiter_passes_to_the_next() {
    let m = Rc::new(Mutex::new(Vec::new()));
    let held = m.lock();
    let gs = {
        let m = m.clone();
        spawn_parked(3, move |i| m.lock().push(i))
    };
    gs[1].kill(); // not chosen yet: leaves the line
    assert_eq!(m.waiters(), 2);
    drop(held); // hands the lock to g0...
    gs[0].kill_nowait(); // ...which is killed before it runs
    sylvan::joinall(&gs, None);
    assert_eq!(*m.lock(), [2]);
    assert_eq!(m.waiters(), 0);
}

// ----- Queue ---------------------------------------------------------------

#[test]
fn queue_getters_are_served_in_fifo_order() {
    let q = Rc::new(Queue::unbounded());
    let gs = {
        let q = q.clone();
        spawn_parked(3, move |i| (i, q.get().unwrap()))
    };
    assert_eq!(q.getters(), 3);
    for v in ["a", "b", "c"] {
        q.put(v).unwrap();
    }
    let got: Vec<_> = gs.into_iter().map(|g| g.join().unwrap()).collect();
    assert_eq!(got, [(0, "a"), (1, "b"), (2, "c")]);
}

#[test]
fn queue_putters_are_served_in_fifo_order() {
    let q = Rc::new(Queue::bounded(1));
    q.put(100).unwrap();
    let gs = {
        let q = q.clone();
        spawn_parked(3, move |i| q.put(i).unwrap())
    };
    assert_eq!(q.putters(), 3);
    let got: Vec<_> = (0..4).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, [100, 0, 1, 2]);
    sylvan::joinall(&gs, None);
}

#[test]
fn bounded_queue_applies_back_pressure_to_a_fast_producer() {
    let q = Rc::new(Queue::bounded(3));
    let produced = counter();
    let consumed = counter();
    let producer = {
        let (q, produced, consumed) = (q.clone(), produced.clone(), consumed.clone());
        sylvan::spawn(move || {
            for i in 0..50 {
                q.put(i).unwrap();
                produced.set(produced.get() + 1);
                assert!(q.len() <= 3);
                // Never more than the bound ahead, plus one handed over.
                assert!(produced.get() - consumed.get() <= 4);
            }
            q.close();
        })
    };
    let mut max_putters = 0;
    let mut got = Vec::new();
    loop {
        max_putters = max_putters.max(q.putters());
        let Some(v) = q.get() else { break };
        consumed.set(consumed.get() + 1);
        got.push(v);
        sylvan::sleep(Duration::ZERO); // a slow consumer
        sylvan::yield_now();
    }
    producer.join().unwrap();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert_eq!(max_putters, 1, "the producer was parked by the bound");
}

#[test]
fn queue_timeouts_return_the_item_or_empty() {
    let q = Queue::bounded(1);
    q.put("a").unwrap();
    let t = Instant::now();
    assert_eq!(q.put_timeout("b", 10 * MS), Err(TryPutError::Full("b")));
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(q.putters(), 0);
    assert_eq!(q.get_timeout(MS), Ok("a"));
    let t = Instant::now();
    assert_eq!(q.get_timeout(10 * MS), Err(TryGetError::Empty));
    assert!(t.elapsed() >= 10 * MS);
    assert_eq!(q.getters(), 0);
}

#[test]
fn queue_try_put_and_try_get() {
    let q = Queue::bounded(1);
    assert_eq!(q.try_get(), Err(TryGetError::Empty));
    q.try_put(1).unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_put(2), Err(TryPutError::Full(2)));
    assert_eq!(q.try_get(), Ok(1));
    q.close();
    assert_eq!(q.try_put(3), Err(TryPutError::Closed(3)));
    assert_eq!(q.try_get(), Err(TryGetError::Closed));
    assert_eq!(q.capacity(), Some(1));
    assert_eq!(Queue::<u8>::unbounded().capacity(), None);
}

#[test]
fn queue_close_drains_then_ends_and_returns_items_to_putters() {
    let q = Rc::new(Queue::bounded(2));
    q.put(1).unwrap();
    q.put(2).unwrap();
    let putter = {
        let q = q.clone();
        spawn_parked(1, move |_| q.put(3))
    };
    q.close();
    assert!(q.is_closed());
    let put_result = putter.into_iter().next().unwrap().join().unwrap();
    assert_eq!(
        put_result,
        Err(Closed(3)),
        "a pending putter gets its item back"
    );
    assert_eq!(q.put(4), Err(Closed(4)));
    // Getters drain what is buffered, then see the end.
    assert_eq!(q.iter().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(q.get(), None);

    // Pending getters are released by close.
    let q = Rc::new(Queue::<u32>::unbounded());
    let getters = {
        let q = q.clone();
        spawn_parked(2, move |_| q.get())
    };
    q.close();
    for g in getters {
        assert_eq!(g.join().unwrap(), None);
    }
}

#[test]
fn queue_for_loop_ends_when_closed() {
    let q = Rc::new(Queue::unbounded());
    let q2 = q.clone();
    sylvan::spawn(move || {
        for i in 0..5 {
            q2.put(i).unwrap();
            sylvan::yield_now();
        }
        q2.close();
    });
    let mut sum = 0;
    for v in &*q {
        sum += v;
    }
    assert_eq!(sum, 10);
}

#[test]
fn queue_killed_getter_leaves_no_trace() {
    let q = Rc::new(Queue::unbounded());
    let gs = {
        let q = q.clone();
        spawn_parked(2, move |_| q.get().unwrap())
    };
    gs[0].kill();
    assert_eq!(q.getters(), 1);
    q.put("x").unwrap();
    let mut it = gs.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert_eq!(it.next().unwrap().join().unwrap(), "x");
    assert!(q.is_empty());
}

#[test]
fn queue_item_handed_to_a_killed_getter_goes_to_the_next_getter() {
    let q = Rc::new(Queue::unbounded());
    let gs = {
        let q = q.clone();
        spawn_parked(2, move |_| q.get().unwrap())
    };
    q.put("item").unwrap(); // handed to g0
    gs[0].kill_nowait(); // g0 dies before it runs
    let mut it = gs.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert_eq!(it.next().unwrap().join().unwrap(), "item");
}

#[test]
fn queue_item_handed_to_a_killed_getter_goes_back_to_the_front() {
    let q = Rc::new(Queue::unbounded());
    let g = {
        let q = q.clone();
        spawn_parked(1, move |_| q.get().unwrap())
    };
    q.put(1).unwrap(); // handed to the getter
    q.put(2).unwrap(); // buffered
    g[0].kill();
    assert_eq!(q.len(), 2);
    assert_eq!(q.try_get(), Ok(1), "the handed-over item is first again");
    assert_eq!(q.try_get(), Ok(2));
}

#[test]
fn queue_with_timeout_on_a_chosen_getter_loses_nothing() {
    // The getter's Timeout and the put land in the same turn: whichever
    // wins, the item is either returned or still in the queue.
    for delay in [0u64, 1, 2] {
        let q = Rc::new(Queue::unbounded());
        let q2 = q.clone();
        let g = sylvan::spawn(move || sylvan::with_timeout(2 * MS, || q2.get().unwrap()));
        let q3 = q.clone();
        sylvan::spawn_later(Duration::from_millis(delay), move || q3.put(7).unwrap());
        let r = g.join().unwrap();
        sylvan::sleep(3 * MS);
        match r {
            Ok(v) => assert_eq!((v, q.len()), (7, 0)),
            Err(_) => assert_eq!(q.try_get(), Ok(7)),
        }
        assert_eq!(q.getters(), 0);
    }
}

#[test]
fn queue_killed_putter_drops_its_item_and_the_next_putter_proceeds() {
    let q = Rc::new(Queue::bounded(1));
    q.put(DropFlag(counter())).unwrap();
    let dropped = counter();
    let gs = {
        let (q, dropped) = (q.clone(), dropped.clone());
        spawn_parked(2, move |_| q.put(DropFlag(dropped.clone())).is_ok())
    };
    gs[0].kill();
    assert_eq!(dropped.get(), 1, "the killed putter's item was dropped");
    assert_eq!(q.putters(), 1);
    drop(q.get().unwrap());
    let mut it = gs.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert!(it.next().unwrap().join().unwrap());
    assert_eq!(q.len(), 1);
    assert_eq!(dropped.get(), 1);
}

#[test]
fn queue_put_made_while_unwinding_is_accepted_past_the_bound() {
    struct PutOnDrop(Rc<Queue<&'static str>>);
    impl Drop for PutOnDrop {
        fn drop(&mut self) {
            self.0.put("from a destructor").unwrap();
        }
    }
    let q = Rc::new(Queue::bounded(1));
    q.put("first").unwrap();
    let g = {
        let q = q.clone();
        sylvan::spawn(move || {
            let _p = PutOnDrop(q);
            sylvan::sleep(Duration::from_secs(60));
        })
    };
    sylvan::yield_now();
    g.kill();
    assert_eq!(q.len(), 2);
    assert_eq!(q.try_get(), Ok("first"));
    assert_eq!(q.try_get(), Ok("from a destructor"));
}

#[test]
fn lifo_queue_gives_the_newest_first() {
    let q = LifoQueue::bounded(3);
    for i in 0..3 {
        q.put(i).unwrap();
    }
    assert_eq!(q.try_put(9), Err(TryPutError::Full(9)));
    assert_eq!([q.get(), q.get(), q.get()], [Some(2), Some(1), Some(0)]);
}

#[test]
fn priority_queue_gives_the_smallest_first() {
    let q = Rc::new(PriorityQueue::unbounded());
    for v in [5, 1, 4, 2, 3] {
        q.put(v).unwrap();
    }
    assert_eq!(q.iter().take(5).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    // A bounded one: putters refill in FIFO order, the heap orders items.
    let q = Rc::new(PriorityQueue::bounded(2));
    q.put(10).unwrap();
    q.put(20).unwrap();
    let gs = {
        let q = q.clone();
        spawn_parked(2, move |i| q.put(5 - i as i32).unwrap())
    };
    assert_eq!(q.get(), Some(10)); // 5 moves in
    assert_eq!(q.get(), Some(5)); // 4 moves in
    assert_eq!(q.get(), Some(4));
    assert_eq!(q.get(), Some(20));
    sylvan::joinall(&gs, None);
}

#[test]
fn joinable_queue_join_waits_for_every_task_done() {
    let q = Rc::new(JoinableQueue::bounded(2));
    let processed = counter();
    let workers = {
        let (q, processed) = (q.clone(), processed.clone());
        spawn_parked(2, move |_| {
            for _job in q.iter() {
                sylvan::sleep(MS);
                processed.set(processed.get() + 1);
                q.task_done();
            }
        })
    };
    for job in 0..10 {
        q.put(job).unwrap();
    }
    assert!(!q.join_timeout(Duration::ZERO) || processed.get() == 10);
    q.join();
    assert_eq!(processed.get(), 10);
    assert_eq!(q.unfinished(), 0);
    assert!(q.join_timeout(MS));
    q.close();
    sylvan::joinall(&workers, None);
}

#[test]
#[should_panic(expected = "task_done called more times")]
fn joinable_queue_task_done_too_often_panics() {
    let q = JoinableQueue::unbounded();
    q.put(1).unwrap();
    q.task_done();
    q.task_done();
}

// ----- Channel -------------------------------------------------------------

#[test]
fn channel_put_completes_only_when_a_getter_takes_it() {
    let ch = Rc::new(Channel::new());
    let log = Log::default();
    let putter = {
        let (ch, log) = (ch.clone(), log.clone());
        sylvan::spawn(move || {
            ch.put(1).unwrap();
            log.push("put 1 done");
            ch.put(2).unwrap();
            log.push("put 2 done");
        })
    };
    sylvan::yield_now();
    sylvan::yield_now();
    assert!(log.take().is_empty(), "no getter yet: put waits");
    assert_eq!(ch.putters(), 1);
    assert_eq!(ch.len(), 0);
    log.push("get");
    assert_eq!(ch.get(), Some(1));
    assert_eq!(ch.get(), Some(2));
    putter.join().unwrap();
    assert_eq!(log.take(), ["get", "put 1 done", "put 2 done"]);
}

#[test]
fn channel_try_put_needs_a_waiting_getter() {
    let ch = Rc::new(Channel::new());
    assert_eq!(ch.try_put(1), Err(TryPutError::Full(1)));
    assert_eq!(ch.try_get(), Err(TryGetError::Empty));
    let getter = {
        let ch = ch.clone();
        spawn_parked(1, move |_| ch.get())
    };
    ch.try_put(2).unwrap();
    assert_eq!(getter.into_iter().next().unwrap().join().unwrap(), Some(2));
    assert_eq!(ch.capacity(), Some(0));
}

#[test]
fn channel_pairs_putters_and_getters_in_fifo_order_and_close_ends_it() {
    let ch = Rc::new(Channel::new());
    let putters = {
        let ch = ch.clone();
        spawn_parked(3, move |i| ch.put(i))
    };
    assert_eq!(ch.putters(), 3);
    assert_eq!(ch.get(), Some(0));
    ch.close();
    let results: Vec<_> = putters.into_iter().map(|g| g.join().unwrap()).collect();
    assert_eq!(results, [Ok(()), Err(Closed(1)), Err(Closed(2))]);
    assert_eq!(ch.get(), None);
}

#[test]
fn channel_put_whose_woken_getter_is_killed_waits_for_the_next_getter() {
    let ch = Rc::new(Channel::new());
    let getter = {
        let ch = ch.clone();
        Rc::new(spawn_parked(1, move |_| ch.get()).remove(0))
    };
    // Queued before the getter is woken: it kills the getter before the
    // getter runs, then starts another one.
    let second = Rc::new(std::cell::RefCell::new(None));
    let killer = {
        let (getter, ch, second) = (getter.clone(), ch.clone(), second.clone());
        sylvan::spawn(move || {
            getter.kill_nowait();
            *second.borrow_mut() = Some(sylvan::spawn(move || ch.get()));
        })
    };
    // As gevent's: the put waits until a getter has taken the item.
    ch.put("kept").unwrap();
    killer.join().unwrap();
    assert!(getter.is_dead());
    let second = second.borrow_mut().take().unwrap();
    assert_eq!(second.join().unwrap(), Some("kept"));
    assert!(ch.is_empty());
}

#[test]
fn channel_killed_putter_leaves_no_trace_and_drops_its_item() {
    let ch = Rc::new(Channel::new());
    let dropped = counter();
    let putters = {
        let (ch, dropped) = (ch.clone(), dropped.clone());
        spawn_parked(2, move |i| ch.put((i, DropFlag(dropped.clone()))).is_ok())
    };
    putters[0].kill();
    assert_eq!(dropped.get(), 1);
    assert_eq!(ch.putters(), 1);
    let (i, _flag) = ch.get().unwrap();
    assert_eq!(i, 1);
    let mut it = putters.into_iter();
    assert!(it.next().unwrap().join().unwrap_err().is_killed());
    assert!(it.next().unwrap().join().unwrap());
}

#[test]
fn joinable_queue_join_timeout_and_kill_while_joining() {
    let q = Rc::new(JoinableQueue::unbounded());
    q.put(1).unwrap();
    assert!(!q.join_timeout(5 * MS));
    let joiner = {
        let q = q.clone();
        spawn_parked(1, move |_| q.join())
    };
    joiner[0].kill();
    assert_eq!(q.get(), Some(1));
    q.task_done();
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn killed_waiters_release_their_captures_on_every_primitive() {
    // One greenlet parked on each primitive, all killed: every destructor
    // runs, and every wait list is empty again.
    let dropped = counter();
    let ev = Rc::new(Event::new());
    let res: Rc<AsyncResult<u8, ()>> = Rc::new(AsyncResult::new());
    let sem = Rc::new(Semaphore::new(0));
    let m = Rc::new(Mutex::new(()));
    let q = Rc::new(Queue::<u8>::unbounded());
    let full = Rc::new(Queue::<u8>::bounded(0));
    let ch = Rc::new(Channel::<u8>::new());
    let held = m.lock();
    let mut gs = Vec::new();
    macro_rules! park_on {
        ($obj:expr, |$o:ident| $body:expr) => {{
            let ($o, d) = ($obj.clone(), dropped.clone());
            gs.push(sylvan::spawn(move || {
                let _flag = DropFlag(d);
                let _ = $body;
            }));
        }};
    }
    park_on!(ev, |o| o.wait());
    park_on!(res, |o| o.get());
    park_on!(sem, |o| o.acquire().forget());
    park_on!(m, |o| drop(o.lock()));
    park_on!(q, |o| o.get());
    park_on!(full, |o| o.put(1));
    park_on!(ch, |o| o.get());
    sylvan::yield_now();
    let waiting = ev.waiters()
        + res.waiters()
        + sem.waiters()
        + m.waiters()
        + q.getters()
        + full.putters()
        + ch.getters();
    assert_eq!(waiting, 7);
    sylvan::killall(&gs, None).unwrap();
    assert_eq!(dropped.get(), 7);
    let waiting = ev.waiters()
        + res.waiters()
        + sem.waiters()
        + m.waiters()
        + q.getters()
        + full.putters()
        + ch.getters();
    assert_eq!(waiting, 0);
    drop(held);
    assert!(!m.is_locked());
    assert_eq!(sem.available(), 0);
}

// ----- peek (gevent's Queue.peek) -------------------------------------------

/// `peek` parks until an item comes and leaves it in the queue; every
/// greenlet peeking is woken by the one put, and the getter still takes it.
#[test]
fn peek_waits_for_an_item_and_leaves_it_in_the_queue() {
    let q = Rc::new(Queue::<u32>::unbounded());
    let peekers = spawn_parked(3, {
        let q = q.clone();
        move |_| q.peek()
    });
    q.put(7).unwrap();
    for p in peekers {
        assert_eq!(p.join().unwrap(), Some(7));
    }
    assert_eq!(q.len(), 1, "peeking took nothing");
    assert_eq!(q.try_peek(), Ok(7));
    assert_eq!(q.get(), Some(7));
    assert_eq!(q.try_peek(), Err(TryGetError::Empty));
}

/// A getter and a peeker both wait; one put: the getter gets the item and
/// the peeker, finding the queue empty again when it runs, waits for the
/// next one.
#[test]
fn a_peeker_that_finds_the_item_taken_waits_for_the_next() {
    let q = Rc::new(Queue::<u32>::unbounded());
    let getter = spawn_parked(1, {
        let q = q.clone();
        move |_| q.get()
    });
    let peeker = spawn_parked(1, {
        let q = q.clone();
        move |_| q.peek()
    });
    q.put(1).unwrap();
    assert_eq!(getter.into_iter().next().unwrap().join().unwrap(), Some(1));
    let peeker = peeker.into_iter().next().unwrap();
    // Run the woken peeker: it found nothing and parked again.
    sylvan::yield_now();
    assert!(!peeker.is_dead(), "the peeker saw an item that was taken");
    q.put(2).unwrap();
    assert_eq!(peeker.join().unwrap(), Some(2));
    assert_eq!(q.get(), Some(2));
}

/// Each queue kind peeks at the item its `get` takes next.
#[test]
fn peek_sees_what_get_takes_next_in_each_queue_kind() {
    let fifo = Queue::unbounded();
    let lifo = LifoQueue::unbounded();
    let prio = PriorityQueue::unbounded();
    let joinable = JoinableQueue::unbounded();
    for v in [3, 1, 2] {
        fifo.put(v).unwrap();
        lifo.put(v).unwrap();
        prio.put(v).unwrap();
        joinable.put(v).unwrap();
    }
    assert_eq!((fifo.try_peek(), fifo.get()), (Ok(3), Some(3)));
    assert_eq!((lifo.try_peek(), lifo.get()), (Ok(2), Some(2)));
    assert_eq!((prio.try_peek(), prio.get()), (Ok(1), Some(1)));
    assert_eq!((joinable.try_peek(), joinable.get()), (Ok(3), Some(3)));
}

/// A rendezvous queue's items are in putters' hands: peek sees the first
/// waiting putter's item and takes nothing from it.
#[test]
fn peek_on_a_rendezvous_queue_sees_the_first_putters_item() {
    let q = Rc::new(Queue::<&str>::bounded(0));
    let peeker = spawn_parked(1, {
        let q = q.clone();
        move |_| q.peek()
    });
    let putters = spawn_parked(2, {
        let q = q.clone();
        move |i| q.put(["a", "b"][i]).is_ok()
    });
    assert_eq!(
        peeker.into_iter().next().unwrap().join().unwrap(),
        Some("a")
    );
    assert_eq!(q.putters(), 2, "peeking took no item");
    assert_eq!(q.get(), Some("a"));
    assert_eq!(q.get(), Some("b"));
    for p in putters {
        assert!(p.join().unwrap());
    }
}

/// `peek_timeout` gives up with `Empty` after about its timeout; on a
/// closed queue `peek` ends with `None` once it is drained, and `close`
/// wakes a parked peeker.
#[test]
fn peek_timeout_and_close() {
    let q = Rc::new(Queue::<u32>::unbounded());
    let t = Instant::now();
    assert_eq!(q.peek_timeout(20 * MS), Err(TryGetError::Empty));
    let waited = t.elapsed();
    assert!(waited >= 20 * MS, "gave up early: {waited:?}");
    assert!(waited < Duration::from_secs(5), "gave up late: {waited:?}");
    let peeker = spawn_parked(1, {
        let q = q.clone();
        move |_| q.peek()
    });
    q.put(5).unwrap();
    q.close();
    assert_eq!(peeker.into_iter().next().unwrap().join().unwrap(), Some(5));
    assert_eq!(q.peek(), Some(5), "closed but not drained");
    assert_eq!(q.get(), Some(5));
    assert_eq!(q.try_peek(), Err(TryGetError::Closed));
    assert_eq!(q.peek(), None);
    let q2 = Rc::new(Queue::<u32>::unbounded());
    let parked = spawn_parked(1, {
        let q2 = q2.clone();
        move |_| q2.peek()
    });
    q2.close();
    assert_eq!(parked.into_iter().next().unwrap().join().unwrap(), None);
}

/// A peeker killed or timed out while parked leaves nothing behind: a
/// later put goes through the fast path (no stale wake-up), and a getter
/// waiting behind it still gets the item.
#[test]
fn a_killed_peeker_leaves_no_trace() {
    let q = Rc::new(Queue::<u32>::bounded(1));
    let peeker = spawn_parked(1, {
        let q = q.clone();
        move |_| q.peek()
    });
    let timed = spawn_parked(1, {
        let q = q.clone();
        move |_| q.peek_timeout(MS)
    });
    peeker.into_iter().next().unwrap().kill();
    assert_eq!(
        timed.into_iter().next().unwrap().join().unwrap(),
        Err(TryGetError::Empty)
    );
    let getter = spawn_parked(1, {
        let q = q.clone();
        move |_| q.get()
    });
    q.put(9).unwrap();
    assert_eq!(getter.into_iter().next().unwrap().join().unwrap(), Some(9));
    assert!(q.is_empty());
    assert_eq!(sylvan::stats().alive, 0);
}
