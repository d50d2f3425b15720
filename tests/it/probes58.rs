//! Sync and pool traces checked against gevent 26.9.0: each test replays a
//! script of `tests/it/gevent_traces/sync_NN_*.py` (run with gevent 26.9.0,
//! greenlet 3.5.6, CPython 3.11) and asserts that sylvan logs the same
//! events in the same order. `gevent.sleep(0)` is `yield_now()`. Where
//! sylvan documents a deliberate difference, the test asserts sylvan's
//! documented trace and says how gevent's differs. The ten differences
//! this round found undocumented (s07, s11, s14-s19, s23, s35) are now
//! listed in the README ("Where the order of events differs from
//! gevent's") and the docs of `sync`, `Queue` and `Channel`, and pinned
//! the same way.

use std::rc::Rc;
use std::time::Duration;

use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, GetError, JoinableQueue, LifoQueue, Mutex,
    PriorityQueue, Queue, Semaphore, TryGetError,
};
use sylvan::{Waitable, joinall, sleep, spawn, yield_now};

use crate::util::{Log, bounded, quiet};

const MS: Duration = Duration::from_millis(1);

fn py(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

fn check(log: &Log, gevent: &[&str]) {
    assert_eq!(log.get(), gevent);
}

// ---------------------------------------------------------------- Event

// sync_01_event_set_fifo_vs_spawned.py (gevent 26.9.0): set() wakes the
// waiters in FIFO order when the setter blocks; a greenlet spawned before
// the set runs before them, one spawned after it runs after them.
#[test]
fn s01_event_set_fifo_vs_spawned() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let l = Log::default();
        for i in 0..3 {
            let (e, l) = (ev.clone(), l.clone());
            spawn(move || {
                l.push(format!("w{i} wait"));
                e.wait();
                l.push(format!("w{i} woke"));
            });
        }
        yield_now();
        let l2 = l.clone();
        spawn(move || l2.push("A ran"));
        ev.set();
        l.push("main after set");
        let l2 = l.clone();
        spawn(move || l2.push("B ran"));
        yield_now();
        l.push("main back");
        check(
            &l,
            &[
                "w0 wait",
                "w1 wait",
                "w2 wait",
                "main after set",
                "A ran",
                "w0 woke",
                "w1 woke",
                "w2 woke",
                "B ran",
                "main back",
            ],
        );
    })
}

// sync_02_event_set_clear_before_waiters_run.py (gevent 26.9.0): waiters
// woken by a set that was cleared before they ran return true and see the
// flag down; a waiter arriving after the clear parks until the next set.
#[test]
fn s02_event_set_clear_before_waiters_run() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let l = Log::default();
        let waiter = |name: &'static str| {
            let (e, l) = (ev.clone(), l.clone());
            spawn(move || {
                l.push(format!("{name} wait"));
                let r = e.wait();
                l.push(format!("{name} woke {} set={}", py(r), py(e.is_set())));
            })
        };
        waiter("w0");
        waiter("w1");
        yield_now();
        ev.set();
        ev.clear();
        l.push("main set+clear");
        let late = waiter("late");
        yield_now();
        l.push(format!("main: late dead={}", py(late.is_dead())));
        ev.set();
        l.push("main set again");
        late.join().unwrap();
        l.push("main done");
        check(
            &l,
            &[
                "w0 wait",
                "w1 wait",
                "main set+clear",
                "w0 woke True set=False",
                "w1 woke True set=False",
                "late wait",
                "main: late dead=False",
                "main set again",
                "late woke True set=True",
                "main done",
            ],
        );
    })
}

// sync_03_event_waiter_clears_others_still_woken.py (gevent 26.9.0): the
// first woken waiter clears the event; the others were notified by the set
// and still return true; the setter resumes after all of them.
#[test]
fn s03_event_waiter_clears_others_still_woken() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let l = Log::default();
        for i in 0..3 {
            let (e, l) = (ev.clone(), l.clone());
            spawn(move || {
                l.push(format!("w{i} wait"));
                let r = e.wait();
                l.push(format!("w{i} woke {} set={}", py(r), py(e.is_set())));
                if i == 0 {
                    e.clear();
                    l.push("w0 cleared");
                }
            });
        }
        yield_now();
        let (e, l2) = (ev.clone(), l.clone());
        let s = spawn(move || {
            e.set();
            l2.push("setter set");
            yield_now();
            l2.push(format!("setter resumed set={}", py(e.is_set())));
        });
        s.join().unwrap();
        l.push("main done");
        check(
            &l,
            &[
                "w0 wait",
                "w1 wait",
                "w2 wait",
                "setter set",
                "w0 woke True set=True",
                "w0 cleared",
                "w1 woke True set=False",
                "w2 woke True set=False",
                "setter resumed set=False",
                "main done",
            ],
        );
    })
}

// sync_04_event_mixed_wait_and_wait_timeout_fifo.py (gevent 26.9.0): plain
// and timed waiters share one FIFO line; the one whose timeout passed is
// gone from it (time is the behaviour here: 10 ms against 100 ms).
#[test]
fn s04_event_mixed_wait_and_wait_timeout_fifo() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let l = Log::default();
        for (i, t) in [(0, None), (1, Some(5000)), (2, Some(10)), (3, None)] {
            let (e, l) = (ev.clone(), l.clone());
            spawn(move || {
                l.push(format!("w{i} wait"));
                let r = match t {
                    None => e.wait(),
                    Some(ms) => e.wait_timeout(ms * MS),
                };
                l.push(format!("w{i} -> {}", py(r)));
            });
        }
        sleep(100 * MS);
        l.push("main set");
        ev.set();
        yield_now();
        l.push("main done");
        check(
            &l,
            &[
                "w0 wait",
                "w1 wait",
                "w2 wait",
                "w3 wait",
                "w2 -> False",
                "main set",
                "w0 -> True",
                "w1 -> True",
                "w3 -> True",
                "main done",
            ],
        );
    })
}

// sync_35_event_kill_after_set_before_run.py (gevent 26.9.0): gevent's
// kill is a callback queued behind the set's notification, so a waiter
// woken by set() and killed before it ran still wakes first, returns, and
// the kill finds it dead; a kill requested before the set is delivered
// first (the second half, which sylvan matches). sylvan throws the kill
// over the pending wake-up (tests/it/gevent.rs x12 asserts that; its
// comment called it gevent's behaviour, and nothing documented it).
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s35_event_kill_after_set_before_run() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let l = Log::default();
        let waiter = || {
            let (e, l) = (ev.clone(), l.clone());
            spawn(move || {
                l.push("w wait");
                e.wait();
                l.push("w woke");
                "returned"
            })
        };
        let g = waiter();
        yield_now();
        ev.set();
        g.kill();
        match g.join() {
            Ok(v) => l.push(format!("main: killed=False value={v}")),
            Err(e) => l.push(format!("main: killed={}", py(e.is_killed()))),
        }
        ev.clear();
        let g2 = waiter();
        yield_now();
        g2.kill_nowait();
        ev.set();
        let r = g2.join();
        l.push(format!(
            "main: g2 killed={}",
            py(r.is_err_and(|e| e.is_killed()))
        ));
        check(
            &l,
            &[
                "w wait",
                "main: killed=True",
                "w wait",
                "main: g2 killed=True",
            ],
        );
    })
}

// ---------------------------------------------------------------- AsyncResult

// sync_05_asyncresult_getters_and_exception.py (gevent 26.9.0):
// set_exception reaches every getter in FIFO order (timed or not); a later
// get sees it at once; a get with a timeout on an empty result times out.
#[test]
fn s05_asyncresult_getters_and_exception() {
    bounded(|| {
        let ar: Rc<AsyncResult<u32, String>> = Rc::default();
        let l = Log::default();
        for (i, t) in [(0, None), (1, Some(10)), (2, None)] {
            let (a, l) = (ar.clone(), l.clone());
            spawn(move || {
                l.push(format!("g{i} get"));
                let r = match t {
                    None => a.get(),
                    Some(s) => a.get_timeout(Duration::from_secs(s)),
                };
                match r {
                    Ok(v) => l.push(format!("g{i} value {v}")),
                    Err(GetError::Failed(e)) => l.push(format!("g{i} exc {e}")),
                    Err(e) => l.push(format!("g{i} {e:?}")),
                }
            });
        }
        yield_now();
        ar.fail("boom".to_string()).unwrap();
        l.push(format!("main set_exception ready={}", py(ar.is_ready())));
        yield_now();
        if let Err(GetError::Failed(e)) = ar.get_timeout(Duration::ZERO) {
            l.push(format!("main exc {e}"));
        }
        let ar2: AsyncResult<u32, String> = AsyncResult::new();
        if ar2.get_timeout(10 * MS) == Err(GetError::TimedOut) {
            l.push("main ar2 timeout");
        }
        check(
            &l,
            &[
                "g0 get",
                "g1 get",
                "g2 get",
                "main set_exception ready=True",
                "g0 exc boom",
                "g1 exc boom",
                "g2 exc boom",
                "main exc boom",
                "main ar2 timeout",
            ],
        );
    })
}

// sync_06_asyncresult_get_timeout_then_value.py (gevent 26.9.0): a getter
// whose timeout passes leaves; the others get the value in FIFO order.
#[test]
fn s06_asyncresult_get_timeout_then_value() {
    bounded(|| {
        let ar: Rc<AsyncResult<u32, String>> = Rc::default();
        let l = Log::default();
        let gs: Vec<_> = [(0, Some(10)), (1, None), (2, Some(10_000))]
            .into_iter()
            .map(|(i, t)| {
                let (a, l) = (ar.clone(), l.clone());
                spawn(move || {
                    l.push(format!("g{i} get"));
                    let r = match t {
                        None => a.get(),
                        Some(ms) => a.get_timeout(ms * MS),
                    };
                    match r {
                        Ok(v) => l.push(format!("g{i} value {v}")),
                        Err(GetError::TimedOut) => l.push(format!("g{i} timeout")),
                        Err(e) => l.push(format!("g{i} {e:?}")),
                    }
                })
            })
            .collect();
        sleep(100 * MS);
        l.push("main set");
        ar.set(42).unwrap();
        joinall(&gs, None);
        l.push(format!("main {}", ar.get().unwrap()));
        check(
            &l,
            &[
                "g0 get",
                "g1 get",
                "g2 get",
                "g0 timeout",
                "main set",
                "g1 value 42",
                "g2 value 42",
                "main 42",
            ],
        );
    })
}

// ---------------------------------------------------------------- Semaphore

// sync_07_semaphore_fifo_handoff.py (gevent 26.9.0): each waiter gets the
// permit in turn, releases it and goes on before the next runs, all before
// main's yield returns: one notification callback runs every waiter while
// a permit is free. sylvan hands w0's release to w1, which is queued
// behind main's yield, so main comes back with w1 and w2 still waiting
// (trace "... w0 released, main back free=0"). Same cause as s14.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s07_semaphore_fifo_handoff() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(1));
        let l = Log::default();
        sem.acquire().forget();
        l.push("main acquired");
        for i in 0..3 {
            let (s, l) = (sem.clone(), l.clone());
            spawn(move || {
                l.push(format!("w{i} acquire"));
                let g = s.acquire();
                l.push(format!("w{i} got"));
                drop(g);
                l.push(format!("w{i} released"));
            });
        }
        yield_now();
        sem.release();
        l.push("main released");
        yield_now();
        l.push(format!("main back free={}", sem.available()));
        check(
            &l,
            &[
                "main acquired",
                "w0 acquire",
                "w1 acquire",
                "w2 acquire",
                "main released",
                "w0 got",
                "w0 released",
                "main back free=0",
            ],
        );
    })
}

// sync_08_semaphore_release_then_reacquire.py: gevent 26.9.0 lets the
// releaser take the permit back at once (acquire(blocking=False) is True:
// ["w acquire", "main try_acquire True", "main after yield: w dead=False",
// "w got", "main done counter=1"]). sylvan hands the permit to the first
// waiter on release, deliberately: "no greenlet arriving later can take it
// first" (hub/src/sync/mod.rs, README "Coordination"). sylvan's trace:
#[test]
fn s08_semaphore_release_then_reacquire_is_handed_off() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(1));
        let l = Log::default();
        sem.acquire().forget();
        let (s, l2) = (sem.clone(), l.clone());
        let g = spawn(move || {
            l2.push("w acquire");
            let _p = s.acquire();
            l2.push("w got");
        });
        yield_now();
        sem.release();
        let got = sem.try_acquire().map(|p| p.forget()).is_some();
        l.push(format!("main try_acquire {}", py(got)));
        yield_now();
        l.push(format!("main after yield: w dead={}", py(g.is_dead())));
        if got {
            sem.release();
        }
        g.join().unwrap();
        l.push(format!("main done counter={}", sem.available()));
        check(
            &l,
            &[
                "w acquire",
                "main try_acquire False",
                "w got",
                "main after yield: w dead=True",
                "main done counter=1",
            ],
        );
    })
}

// sync_09_bounded_semaphore_release_past_bound_with_waiter.py (gevent
// 26.9.0): a permit released to a waiter that has not run yet still counts
// as free for the bound, so a second release is refused (ValueError).
#[test]
fn s09_bounded_semaphore_release_past_bound_with_waiter() {
    bounded(|| {
        let sem = Rc::new(BoundedSemaphore::new(1));
        let l = Log::default();
        sem.acquire().forget();
        let (s, l2) = (sem.clone(), l.clone());
        let g = spawn(move || {
            l2.push("w acquire");
            s.acquire().forget();
            l2.push("w got");
            s.release().unwrap();
            l2.push("w released");
            if s.release().is_err() {
                l2.push("w second release ValueError");
            }
        });
        yield_now();
        sem.release().unwrap();
        l.push("main released");
        if sem.release().is_err() {
            l.push("main second release ValueError");
        }
        g.join().unwrap();
        l.push("main done");
        check(
            &l,
            &[
                "w acquire",
                "main released",
                "main second release ValueError",
                "w got",
                "w released",
                "w second release ValueError",
                "main done",
            ],
        );
    })
}

// sync_10_semaphore_acquire_timeout.py (gevent 26.9.0): timed-out
// acquirers (zero and 10 ms) take nothing; the plain one gets the release.
#[test]
fn s10_semaphore_acquire_timeout() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(1));
        let l = Log::default();
        sem.acquire().forget();
        let gs: Vec<_> = [(0, Some(10)), (1, None), (2, Some(0))]
            .into_iter()
            .map(|(i, t)| {
                let (s, l) = (sem.clone(), l.clone());
                spawn(move || {
                    l.push(format!("w{i} acquire"));
                    let p = match t {
                        None => Some(s.acquire()),
                        Some(ms) => s.acquire_timeout(ms * MS),
                    };
                    l.push(format!("w{i} -> {}", py(p.is_some())));
                })
            })
            .collect();
        sleep(100 * MS);
        l.push("main release");
        sem.release();
        joinall(&gs, None);
        l.push(format!("main counter={}", sem.available()));
        check(
            &l,
            &[
                "w0 acquire",
                "w1 acquire",
                "w2 acquire",
                "w2 -> False",
                "w0 -> False",
                "main release",
                "w1 -> True",
                "main counter=1",
            ],
        );
    })
}

fn kill_scenario(kill_before_release: bool, l: &Log) -> usize {
    let sem = Rc::new(Semaphore::new(1));
    sem.acquire().forget();
    let gs: Vec<_> = (0..3)
        .map(|i| {
            let (s, l) = (sem.clone(), l.clone());
            spawn(move || {
                struct Killed(Log, usize);
                impl Drop for Killed {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            self.0.push(format!("w{} killed", self.1));
                        }
                    }
                }
                l.push(format!("w{i} acquire"));
                let k = Killed(l.clone(), i);
                let _p = s.acquire();
                l.push(format!("w{i} got"));
                if !kill_before_release {
                    yield_now();
                    l.push(format!("w{i} release"));
                }
                std::mem::forget(k);
            })
        })
        .collect();
    yield_now();
    if kill_before_release {
        gs[0].kill_nowait();
        l.push("main kill_nowait w0");
        sem.release();
        l.push("main released");
    } else {
        sem.release();
        l.push("main released");
        gs[0].kill();
        l.push("main killed w0");
    }
    joinall(&gs, None);
    sem.available()
}

// sync_11_semaphore_waiter_killed_after_release.py (gevent 26.9.0): the
// kill is queued behind the release's notification, so w0 gets the permit
// first and the kill lands at its next block; its `with` gives the permit
// back and w1, w2 follow. sylvan throws the kill over w0's pending wake-up
// (the permit passes on to w1, as documented, but w0 never ran): see s35.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s11_semaphore_waiter_killed_after_release() {
    bounded(|| {
        let l = Log::default();
        let free = kill_scenario(false, &l);
        l.push(format!("main counter={free}"));
        check(
            &l,
            &[
                "w0 acquire",
                "w1 acquire",
                "w2 acquire",
                "main released",
                "w0 killed",
                "w1 got",
                "main killed w0",
                "w1 release",
                "w2 got",
                "w2 release",
                "main counter=1",
            ],
        );
    })
}

// sync_12_semaphore_waiter_killed_before_release.py (gevent 26.9.0): a
// kill requested before the release reaches w0 first; the permit goes to
// w1, then w2; nothing is lost.
#[test]
fn s12_semaphore_waiter_killed_before_release() {
    bounded(|| {
        let l = Log::default();
        let free = kill_scenario(true, &l);
        l.push(format!("main counter={free}"));
        check(
            &l,
            &[
                "w0 acquire",
                "w1 acquire",
                "w2 acquire",
                "main kill_nowait w0",
                "main released",
                "w0 killed",
                "w1 got",
                "w2 got",
                "main counter=1",
            ],
        );
    })
}

// sync_13_lock_fifo_holder_relocks.py: with gevent 26.9.0's
// Semaphore(1) as a lock, a holder that unlocks and locks again without
// blocking barges ahead of the waiters: ["w0 in 0", "w0 out 0", "w0 in 1",
// "w0 out 1", "w1 in 0", ...]. sylvan's Mutex hands the lock to the first
// waiter on unlock ("FIFO, no barging", hub/src/sync/mutex.rs), so the
// workers alternate. sylvan's trace:
#[test]
fn s13_mutex_fifo_holder_relocks_waits_its_turn() {
    bounded(|| {
        let lock = Rc::new(Mutex::new(()));
        let l = Log::default();
        let gs: Vec<_> = (0..3)
            .map(|i| {
                let (m, l) = (lock.clone(), l.clone());
                spawn(move || {
                    for r in 0..2 {
                        let _g = m.lock();
                        l.push(format!("w{i} in {r}"));
                        yield_now();
                        l.push(format!("w{i} out {r}"));
                    }
                })
            })
            .collect();
        joinall(&gs, None);
        let mut want = Vec::new();
        for r in 0..2 {
            for i in 0..3 {
                want.push(format!("w{i} in {r}"));
                want.push(format!("w{i} out {r}"));
            }
        }
        assert_eq!(l.get(), want);
    })
}

// sync_14_semaphore_two_releases_vs_spawned.py (gevent 26.9.0): two
// releases in one turn are delivered by one notification callback, queued
// at the first release, so both waiters run before a greenlet spawned
// between the releases. sylvan wakes each waiter at its release, so the
// spawned greenlet runs between them.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s14_semaphore_two_releases_vs_spawned() {
    bounded(|| {
        let sem = Rc::new(Semaphore::new(0));
        let l = Log::default();
        let gs: Vec<_> = (0..2)
            .map(|i| {
                let (s, l) = (sem.clone(), l.clone());
                spawn(move || {
                    l.push(format!("w{i} acquire"));
                    s.acquire().forget();
                    l.push(format!("w{i} got"));
                })
            })
            .collect();
        yield_now();
        sem.release();
        let l2 = l.clone();
        spawn(move || l2.push("X ran"));
        sem.release();
        l.push("main released twice");
        joinall(&gs, None);
        l.push("main done");
        check(
            &l,
            &[
                "w0 acquire",
                "w1 acquire",
                "main released twice",
                "w0 got",
                "X ran",
                "w1 got",
                "main done",
            ],
        );
    })
}

// ---------------------------------------------------------------- Queue

// sync_15_queue_bounded1_producer_consumer.py (gevent 26.9.0): on a
// bounded(1) queue the producer and the consumer alternate item by item,
// each seeing the queue full after its put and empty after its get.
// sylvan's get refills the queue from the parked producer at once (see
// s16), so the consumer takes two items per turn: ["put 0 q=1",
// "got 0 q=1", "got 1 q=0", "put 1 q=0", "put 2 q=1", "got 2 q=1", ...].
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s15_queue_bounded1_producer_consumer() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let l = Log::default();
        let (q1, l1) = (q.clone(), l.clone());
        let c = spawn(move || {
            for _ in 0..4 {
                let x = q1.get().unwrap();
                l1.push(format!("got {x} q={}", q1.len()));
            }
        });
        let (q2, l2) = (q.clone(), l.clone());
        let p = spawn(move || {
            for i in 0..4 {
                q2.put(i).unwrap();
                l2.push(format!("put {i} q={}", q2.len()));
            }
        });
        c.join().unwrap();
        p.join().unwrap();
        l.push(format!("main q={}", q.len()));
        check(
            &l,
            &[
                "put 0 q=1",
                "got 0 q=1",
                "got 1 q=0",
                "put 1 q=0",
                "put 2 q=1",
                "got 2 q=1",
                "got 3 q=0",
                "put 3 q=0",
                "main q=0",
            ],
        );
    })
}

fn parked_putters(q: &Rc<Queue<&'static str>>, l: &Log, names: &[&'static str]) {
    for &x in names {
        let (q, l) = (q.clone(), l.clone());
        let p = spawn(move || {
            l.push(format!("put {x} start"));
            q.put(x).unwrap();
            l.push(format!("put {x} done"));
        });
        drop(p);
    }
}

// sync_16_queue_putters_parked_get_order.py (gevent 26.9.0): a get from a
// full bounded(1) queue with putters parked leaves it empty (qsize 0) until
// the first putter runs: gevent moves a parked putter's item in when that
// putter is resumed (its `_unlock` callback), not inside the get. sylvan
// moves it in during the get ("refill"), so `len` is 1 right after the get.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s16_queue_putters_parked_get_order() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let l = Log::default();
        q.put("a").unwrap();
        parked_putters(&q, &l, &["b", "c", "d"]);
        yield_now();
        l.push(format!("main q={}", q.len()));
        for _ in 0..4 {
            let x = q.get().unwrap();
            l.push(format!("main got {x} q={}", q.len()));
            yield_now();
        }
        l.push(format!("main end q={}", q.len()));
        check(
            &l,
            &[
                "put b start",
                "put c start",
                "put d start",
                "main q=1",
                "main got a q=1",
                "put b done",
                "main got b q=1",
                "put c done",
                "main got c q=1",
                "put d done",
                "main got d q=0",
                "main end q=0",
            ],
        );
    })
}

// sync_17_queue_get_nowait_after_get_with_waiting_putter.py (gevent
// 26.9.0): right after a get, with a putter parked, get_nowait finds the
// queue empty (the putter has not run). sylvan's try_get takes the
// putter's item, refilled during the first get. Same cause as s16.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s17_queue_get_nowait_after_get_with_waiting_putter() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let l = Log::default();
        q.put("a").unwrap();
        let (q2, l2) = (q.clone(), l.clone());
        spawn(move || {
            l2.push("p put b");
            q2.put("b").unwrap();
            l2.push("p put done");
        });
        yield_now();
        let x = q.get().unwrap();
        l.push(format!("main get {x} q={}", q.len()));
        match q.try_get() {
            Ok(x) => l.push(format!("main get_nowait {x}")),
            Err(_) => l.push("main get_nowait Empty"),
        }
        // gevent's plain get returns "b" at once; a bounded wait keeps
        // sylvan (whose try_get took "b") from waiting for ever.
        match q.get_timeout(Duration::from_secs(1)) {
            Ok(x) => l.push(format!("main get {x} q={}", q.len())),
            Err(e) => l.push(format!("main get {e:?}")),
        }
        yield_now();
        l.push("main done");
        check(
            &l,
            &[
                "p put b",
                "main get a q=1",
                "main get_nowait b",
                "p put done",
                "main get Empty",
                "main done",
            ],
        );
    })
}

// sync_18_queue_two_gets_in_a_row_with_waiting_putter.py (gevent 26.9.0):
// a second get right after the first parks, and the putter returns from
// its put (seeing qsize 1) before the getter gets its item. sylvan's second
// get takes the refilled item without parking. Same cause as s16.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s18_queue_two_gets_in_a_row_with_waiting_putter() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let l = Log::default();
        q.put("a").unwrap();
        let (q2, l2) = (q.clone(), l.clone());
        spawn(move || {
            l2.push("p put b");
            q2.put("b").unwrap();
            l2.push(format!("p put done q={}", q2.len()));
        });
        yield_now();
        l.push(format!("main got {}", q.get().unwrap()));
        l.push(format!("main got {}", q.get().unwrap()));
        l.push(format!("main done q={}", q.len()));
        check(
            &l,
            &["p put b", "main got a", "main got b", "main done q=0"],
        );
    })
}

// sync_19_queue_puts_wake_getters_vs_spawned.py (gevent 26.9.0): items put
// in one turn are handed out by one `_unlock` callback, queued at the first
// put: both getters run before a greenlet spawned between the puts. sylvan
// wakes a getter per put, so the spawned greenlet runs between them (the
// same as s14 for semaphores).
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s19_queue_puts_wake_getters_vs_spawned() {
    bounded(|| {
        let q = Rc::new(Queue::unbounded());
        let l = Log::default();
        let gs: Vec<_> = (0..2)
            .map(|i| {
                let (q, l) = (q.clone(), l.clone());
                spawn(move || {
                    l.push(format!("g{i} get"));
                    l.push(format!("g{i} got {}", q.get().unwrap()));
                })
            })
            .collect();
        yield_now();
        q.put(1).unwrap();
        let l2 = l.clone();
        spawn(move || l2.push("X ran"));
        q.put(2).unwrap();
        l.push(format!("main put twice q={}", q.len()));
        joinall(&gs, None);
        l.push("main done");
        check(
            &l,
            &[
                "g0 get",
                "g1 get",
                "main put twice q=2",
                "g0 got 1",
                "X ran",
                "g1 got 2",
                "main done",
            ],
        );
    })
}

// sync_20_lifo_priority_waiting_getters.py (gevent 26.9.0): items stay in
// the queue until the woken getters run, so with 3, 1, 2 put in one turn a
// LIFO queue's getters take 2 then 1 and a priority queue's 1 then 2.
#[test]
fn s20_lifo_priority_waiting_getters() {
    bounded(|| {
        let l = Log::default();
        let lifo = Rc::new(LifoQueue::unbounded());
        let gs: Vec<_> = (0..2)
            .map(|i| {
                let (q, l) = (lifo.clone(), l.clone());
                spawn(move || l.push(format!("LifoQueue g{i} got {}", q.get().unwrap())))
            })
            .collect();
        yield_now();
        for x in [3, 1, 2] {
            lifo.put(x).unwrap();
        }
        l.push(format!("LifoQueue main put q={}", lifo.len()));
        joinall(&gs, None);
        l.push(format!("LifoQueue left {}", lifo.get().unwrap()));
        let prio = Rc::new(PriorityQueue::unbounded());
        let gs: Vec<_> = (0..2)
            .map(|i| {
                let (q, l) = (prio.clone(), l.clone());
                spawn(move || l.push(format!("PriorityQueue g{i} got {}", q.get().unwrap())))
            })
            .collect();
        yield_now();
        for x in [3, 1, 2] {
            prio.put(x).unwrap();
        }
        l.push(format!("PriorityQueue main put q={}", prio.len()));
        joinall(&gs, None);
        l.push(format!("PriorityQueue left {}", prio.get().unwrap()));
        check(
            &l,
            &[
                "LifoQueue main put q=3",
                "LifoQueue g0 got 2",
                "LifoQueue g1 got 1",
                "LifoQueue left 3",
                "PriorityQueue main put q=3",
                "PriorityQueue g0 got 1",
                "PriorityQueue g1 got 2",
                "PriorityQueue left 3",
            ],
        );
    })
}

// sync_21_joinable_task_done_join_order.py (gevent 26.9.0): joiners wake
// in the order they joined, after the worker that made the count zero
// blocks; a join with nothing unfinished returns at once.
#[test]
fn s21_joinable_task_done_join_order() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::unbounded());
        let l = Log::default();
        let (q1, l1) = (q.clone(), l.clone());
        spawn(move || {
            while let Some(x) = q1.get() {
                l1.push(format!("w got {x}"));
                yield_now();
                q1.task_done();
                l1.push(format!("w done {x} unfinished={}", q1.unfinished()));
            }
        });
        q.put(1).unwrap();
        q.put(2).unwrap();
        let (q2, l2) = (q.clone(), l.clone());
        let j = spawn(move || {
            l2.push("J join");
            q2.join();
            l2.push("J joined");
        });
        l.push("main join");
        q.join();
        l.push("main joined");
        j.join().unwrap();
        q.join();
        l.push("main: join on empty -> True");
        q.close();
        check(
            &l,
            &[
                "main join",
                "w got 1",
                "J join",
                "w done 1 unfinished=1",
                "w got 2",
                "w done 2 unfinished=0",
                "main joined",
                "J joined",
                "main: join on empty -> True",
            ],
        );
    })
}

// sync_22_channel_put_returns_vs_get.py (gevent 26.9.0): at a rendezvous
// the getter runs with the item first, then the putter's put returns,
// whichever came first; main getting from a parked putter goes on before
// the putter runs.
#[test]
fn s22_channel_put_returns_vs_get() {
    bounded(|| {
        let ch = Rc::new(Channel::new());
        let l = Log::default();
        let getter = |n: &'static str| {
            let (c, l) = (ch.clone(), l.clone());
            spawn(move || {
                l.push(format!("{n} get"));
                l.push(format!("{n} got {}", c.get().unwrap()));
            })
        };
        let putter = |n: &'static str, x: &'static str| {
            let (c, l) = (ch.clone(), l.clone());
            spawn(move || {
                l.push(format!("{n} put {x}"));
                c.put(x).unwrap();
                l.push(format!("{n} put returned"));
            })
        };
        let g = getter("g1");
        yield_now();
        let p = putter("p1", "x");
        g.join().unwrap();
        p.join().unwrap();
        let p = putter("p2", "y");
        yield_now();
        let g = getter("g2");
        g.join().unwrap();
        p.join().unwrap();
        let p = putter("p3", "z");
        yield_now();
        l.push(format!("main got {}", ch.get().unwrap()));
        l.push(format!("main after get p3 dead={}", py(p.is_dead())));
        p.join().unwrap();
        check(
            &l,
            &[
                "g1 get",
                "p1 put x",
                "g1 got x",
                "p1 put returned",
                "p2 put y",
                "g2 get",
                "g2 got y",
                "p2 put returned",
                "p3 put z",
                "main got z",
                "main after get p3 dead=False",
                "p3 put returned",
            ],
        );
    })
}

// sync_23_channel_two_putters_two_getters.py (gevent 26.9.0): a greenlet
// (not the hub) that gets from a channel always parks, and the `_unlock`
// callback pairs each getter with a putter in turn: g0 got a, p0 returns,
// g1 got b, p1 returns. sylvan's get takes a parked putter's item at once,
// so both getters finish before either putter returns; the Channel docs
// say only that a put waits until a getter takes its item.
// sylvan's order differs here, as the README says ("Where the order of
// events differs from gevent's"); the test pins sylvan's, gevent's is above.
#[test]
fn s23_channel_two_putters_two_getters() {
    bounded(|| {
        let ch = Rc::new(Channel::new());
        let l = Log::default();
        let mut gs = Vec::new();
        for (n, x) in [("p0", "a"), ("p1", "b")] {
            let (c, l) = (ch.clone(), l.clone());
            gs.push(spawn(move || {
                l.push(format!("{n} put {x}"));
                c.put(x).unwrap();
                l.push(format!("{n} put returned"));
            }));
        }
        for n in ["g0", "g1"] {
            let (c, l) = (ch.clone(), l.clone());
            gs.push(spawn(move || {
                l.push(format!("{n} get"));
                l.push(format!("{n} got {}", c.get().unwrap()));
            }));
        }
        joinall(&gs, None);
        l.push("main done");
        check(
            &l,
            &[
                "p0 put a",
                "p1 put b",
                "g0 get",
                "g0 got a",
                "g1 get",
                "g1 got b",
                "p0 put returned",
                "p1 put returned",
                "main done",
            ],
        );
    })
}

// sync_24_queue_peek_and_get_waiters.py: in gevent 26.9.0 a peeker waits
// in the getters' line, so the peeker that came first sees x, then the
// getter takes it: ["P peek", "G get", "main put x", "P peeked x",
// "G got x", "main q=0 P dead=True", "main put y", "main q=1"]. sylvan
// documents that peekers are woken after the getter the item is for and
// wait again when it took the item (`peek`'s docs in
// hub/src/sync/queue_core.rs), so P sees y, which stays. sylvan's trace:
#[test]
fn s24_queue_peek_and_get_waiters_peeker_after_getter() {
    bounded(|| {
        let q = Rc::new(Queue::unbounded());
        let l = Log::default();
        let (q1, l1) = (q.clone(), l.clone());
        let a = spawn(move || {
            l1.push("P peek");
            l1.push(format!("P peeked {}", q1.peek().unwrap()));
        });
        let (q2, l2) = (q.clone(), l.clone());
        let b = spawn(move || {
            l2.push("G get");
            l2.push(format!("G got {}", q2.get().unwrap()));
        });
        yield_now();
        q.put("x").unwrap();
        l.push("main put x");
        yield_now();
        l.push(format!("main q={} P dead={}", q.len(), py(a.is_dead())));
        q.put("y").unwrap();
        l.push("main put y");
        a.join().unwrap();
        b.join().unwrap();
        l.push(format!("main q={}", q.len()));
        check(
            &l,
            &[
                "P peek",
                "G get",
                "main put x",
                "G got x",
                "main q=0 P dead=False",
                "main put y",
                "P peeked y",
                "main q=1",
            ],
        );
    })
}

// sync_25_queue_shutdown_vs_close.py (gevent 26.9.0): gevent's
// `Queue.shutdown()` (Python 3.13's) is sylvan's `close`: a parked putter
// is released with an error (ShutDown; sylvan hands its item back in
// `Closed`), gets drain what is left and then end (ShutDown; sylvan: None),
// a put fails, and parked getters end in FIFO order.
#[test]
fn s25_queue_close_like_gevent_shutdown() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let l = Log::default();
        q.put("a").unwrap();
        let (q1, l1) = (q.clone(), l.clone());
        spawn(move || {
            l1.push("p put b");
            match q1.put("b") {
                Ok(()) => l1.push("p put ok"),
                Err(_) => l1.push("p ShutDown"),
            }
        });
        yield_now();
        q.close();
        l.push("main shutdown");
        yield_now();
        l.push(format!("main get {}", q.get().unwrap()));
        if q.get().is_none() {
            l.push("main get ShutDown");
        }
        if q.put("c").is_err() {
            l.push("main put ShutDown");
        }
        let q2: Rc<Queue<&str>> = Rc::new(Queue::unbounded());
        let gs: Vec<_> = (0..2)
            .map(|i| {
                let (q, l) = (q2.clone(), l.clone());
                spawn(move || {
                    l.push(format!("g{i} get"));
                    match q.get() {
                        Some(x) => l.push(format!("g{i} got {x}")),
                        None => l.push(format!("g{i} ShutDown")),
                    }
                })
            })
            .collect();
        yield_now();
        q2.close();
        l.push("main shutdown q2");
        joinall(&gs, None);
        assert_eq!(q2.try_get(), Err(TryGetError::Closed));
        check(
            &l,
            &[
                "p put b",
                "main shutdown",
                "p ShutDown",
                "main get a",
                "main get ShutDown",
                "main put ShutDown",
                "g0 get",
                "g1 get",
                "main shutdown q2",
                "g0 ShutDown",
                "g1 ShutDown",
            ],
        );
    })
}

// ---------------------------------------------------------------- Pool, Group

// sync_26_pool_spawn_blocks_when_full.py (gevent 26.9.0): spawn into a
// full pool parks main until both members are done (they run in turn, each
// seeing the pool full), then main fills the pool again.
#[test]
fn s26_pool_spawn_blocks_when_full() {
    bounded(|| {
        let pool = Pool::new(2);
        let l = Log::default();
        for i in 0..4 {
            l.push(format!("main spawn t{i} free={}", pool.free_count()));
            let (p, l2) = (pool.clone(), l.clone());
            pool.spawn(move || {
                l2.push(format!(
                    "t{i} start free={} len={}",
                    p.free_count(),
                    p.len()
                ));
                yield_now();
                l2.push(format!("t{i} end"));
            });
            l.push(format!(
                "main spawned t{i} free={} len={}",
                pool.free_count(),
                pool.len()
            ));
        }
        pool.join();
        l.push(format!(
            "main joined free={} len={}",
            pool.free_count(),
            pool.len()
        ));
        check(
            &l,
            &[
                "main spawn t0 free=2",
                "main spawned t0 free=1 len=1",
                "main spawn t1 free=1",
                "main spawned t1 free=0 len=2",
                "main spawn t2 free=0",
                "t0 start free=0 len=2",
                "t1 start free=0 len=2",
                "t0 end",
                "t1 end",
                "main spawned t2 free=1 len=1",
                "main spawn t3 free=1",
                "main spawned t3 free=0 len=2",
                "t2 start free=0 len=2",
                "t3 start free=0 len=2",
                "t2 end",
                "t3 end",
                "main joined free=2 len=0",
            ],
        );
    })
}

// sync_27_pool_two_spawners_waiting.py (gevent 26.9.0): spawners parked
// on a full Pool(1) get the slot in FIFO order, each new member running
// to its end before the next spawner goes on.
#[test]
fn s27_pool_two_spawners_waiting() {
    bounded(|| {
        let pool = Pool::new(1);
        let l = Log::default();
        let task = |n: &'static str, l: Log| {
            move || {
                l.push(format!("{n} start"));
                yield_now();
                l.push(format!("{n} end"));
            }
        };
        pool.spawn(task("t0", l.clone()));
        let gs: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|n| {
                let (p, l) = (pool.clone(), l.clone());
                spawn(move || {
                    l.push(format!("S{n} spawn"));
                    p.spawn(task(n, l.clone()));
                    l.push(format!("S{n} spawned free={}", p.free_count()));
                })
            })
            .collect();
        joinall(&gs, None);
        pool.join();
        l.push("main done");
        check(
            &l,
            &[
                "t0 start",
                "Sa spawn",
                "Sb spawn",
                "t0 end",
                "Sa spawned free=0",
                "a start",
                "a end",
                "Sb spawned free=0",
                "b start",
                "b end",
                "main done",
            ],
        );
    })
}

// sync_28_pool_imap_unordered_start_and_finish.py (gevent 26.9.0, sleeps
// of x * 10 ms there, x * 50 ms here): imap_unordered starts a task as a
// slot frees and yields in finish order; imap keeps input order. The
// durations leave one unit between any two deadlines (an earlier version
// had two tasks due at the same instant, whose order was luck).
#[test]
fn s28_pool_imap_unordered_start_and_finish() {
    bounded(|| {
        let pool = Pool::new(2);
        let l = Log::default();
        let f = |l: Log| {
            move |x: u32| {
                l.push(format!("start {x}"));
                sleep(x * 50 * MS);
                l.push(format!("end {x}"));
                x
            }
        };
        for r in pool.imap_unordered([5, 2, 4, 2], f(l.clone())) {
            l.push(format!("result {}", r.unwrap()));
        }
        l.push("---");
        for r in pool.imap([5, 2, 4], f(l.clone())) {
            l.push(format!("result {}", r.unwrap()));
        }
        check(
            &l,
            &[
                "start 5", "start 2", "end 2", "result 2", "start 4", "end 5", "result 5",
                "start 2", "end 4", "result 4", "end 2", "result 2", "---", "start 5", "start 2",
                "end 2", "start 4", "end 5", "result 5", "result 2", "end 4", "result 4",
            ],
        );
    })
}

// sync_29_pool_map_start_order.py (gevent 26.9.0): map on a Pool(2)
// starts the third item when both first ones are gone (one slot left
// after it); a Group starts every item at once.
#[test]
fn s29_pool_map_start_order() {
    bounded(|| {
        let pool = Pool::new(2);
        let l = Log::default();
        let f = |p: Pool, l: Log| {
            move |x: u32| {
                l.push(format!("start {x} free={}", p.free_count()));
                yield_now();
                l.push(format!("end {x}"));
                x * 10
            }
        };
        let r: Vec<u32> = pool
            .map([1, 2, 3], f(pool.clone(), l.clone()))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        l.push(format!("map {r:?}"));
        let g = Group::new();
        let r: Vec<u32> = g
            .map([1, 2, 3], f(pool.clone(), l.clone()))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        l.push(format!("group map {r:?}"));
        check(
            &l,
            &[
                "start 1 free=0",
                "start 2 free=0",
                "end 1",
                "end 2",
                "start 3 free=1",
                "end 3",
                "map [10, 20, 30]",
                "start 1 free=2",
                "start 2 free=2",
                "start 3 free=2",
                "end 1",
                "end 2",
                "end 3",
                "group map [10, 20, 30]",
            ],
        );
    })
}

// sync_30_pool_member_raises.py (gevent 26.9.0): a member that fails frees
// its slot like any other (t2 starts in it); the others' values are kept.
#[test]
fn s30_pool_member_panics() {
    bounded(|| {
        quiet();
        let pool = Pool::new(2);
        let l = Log::default();
        let gs: Vec<_> = (0..3)
            .map(|i| {
                let l = l.clone();
                pool.spawn(move || {
                    l.push(format!("t{i} start"));
                    yield_now();
                    if i == 1 {
                        panic!("boom");
                    }
                    l.push(format!("t{i} end"));
                    i
                })
            })
            .collect();
        pool.join();
        for (i, g) in gs.into_iter().enumerate() {
            match g.join() {
                Ok(v) => l.push(format!("t{i} ok=True {v}")),
                Err(e) => l.push(format!(
                    "t{i} ok=False {}",
                    e.panic().map(|p| p.message()).unwrap_or("?")
                )),
            }
        }
        l.push(format!("free={}", pool.free_count()));
        check(
            &l,
            &[
                "t0 start",
                "t1 start",
                "t0 end",
                "t2 start",
                "t2 end",
                "t0 ok=True 0",
                "t1 ok=False boom",
                "t2 ok=True 2",
                "free=2",
            ],
        );
    })
}

// sync_31_pool_kill_with_spawner_and_finally.py (gevent 26.9.0): kill
// unwinds every member (their cleanup runs) and frees every slot before it
// returns; the pool takes new members afterwards.
#[test]
fn s31_pool_kill_and_cleanup() {
    bounded(|| {
        let pool = Pool::new(2);
        let l = Log::default();
        let task = |i: u32, l: Log| {
            move || {
                struct Fin(Log, u32);
                impl Drop for Fin {
                    fn drop(&mut self) {
                        self.0.push(format!("t{} finally", self.1));
                    }
                }
                let _f = Fin(l.clone(), i);
                l.push(format!("t{i} start"));
                sleep(Duration::from_secs(10));
            }
        };
        pool.spawn(task(0, l.clone()));
        pool.spawn(task(1, l.clone()));
        yield_now();
        l.push(format!(
            "main kill free={} len={}",
            pool.free_count(),
            pool.len()
        ));
        pool.kill();
        l.push(format!(
            "main killed free={} len={}",
            pool.free_count(),
            pool.len()
        ));
        pool.spawn(task(2, l.clone()));
        yield_now();
        pool.kill();
        l.push(format!("main done len={}", pool.len()));
        check(
            &l,
            &[
                "t0 start",
                "t1 start",
                "main kill free=0 len=2",
                "t0 finally",
                "t1 finally",
                "main killed free=2 len=0",
                "t2 start",
                "t2 finally",
                "main done len=0",
            ],
        );
    })
}

// sync_32_group_join_kill.py (gevent 26.9.0): join waits for every member;
// join with a timeout gives false while one lives; kill unwinds it.
#[test]
fn s32_group_join_kill() {
    bounded(|| {
        let group = Group::new();
        let l = Log::default();
        let task = |n: &'static str, ms: u32, l: Log| {
            move || {
                struct Fin(Log, &'static str);
                impl Drop for Fin {
                    fn drop(&mut self) {
                        self.0.push(format!("{} finally", self.1));
                    }
                }
                let _f = Fin(l.clone(), n);
                l.push(format!("{n} start"));
                sleep(ms * MS);
                l.push(format!("{n} end"));
            }
        };
        group.spawn(task("a", 10, l.clone()));
        group.spawn(task("b", 40, l.clone()));
        group.join();
        l.push(format!("joined len={}", group.len()));
        group.spawn(task("c", 10_000, l.clone()));
        yield_now();
        let r = group.join_timeout(10 * MS);
        l.push(format!("join timeout -> {} len={}", py(r), group.len()));
        group.kill();
        l.push(format!("killed len={}", group.len()));
        check(
            &l,
            &[
                "a start",
                "b start",
                "a end",
                "a finally",
                "b end",
                "b finally",
                "joined len=0",
                "c start",
                "join timeout -> False len=1",
                "c finally",
                "killed len=0",
            ],
        );
    })
}

// ---------------------------------------------------------------- wait, iwait

// sync_33_wait_iwait_readiness.py: gevent 26.9.0 reports objects made
// ready in one turn in the order they were notified (set ev2, ar, ev1:
// "iwait same turn [1, 2, 0]"); sylvan documents index order for objects
// that became ready while the waiter had not run (`iwait`'s docs in
// hub/src/wait.rs, "Readiness order"), so it gives [0, 1, 2]. The rest
// (count, timeout, greenlets finishing at different times) is gevent's
// trace. Time is the behaviour here (10 ms steps).
#[test]
fn s33_wait_iwait_readiness() {
    bounded(|| {
        let l = Log::default();
        let (ev1, ev2) = (Rc::new(Event::new()), Rc::new(Event::new()));
        let ar: Rc<AsyncResult<u32, String>> = Rc::default();
        let (e1, e2, a) = (ev1.clone(), ev2.clone(), ar.clone());
        spawn(move || {
            e2.set();
            a.set(1).unwrap();
            e1.set();
        });
        let objs: [&dyn Waitable; 3] = [&*ev1, &*ev2, &*ar];
        let order: Vec<usize> = sylvan::iwait(&objs, None).collect();
        l.push(format!("iwait same turn {order:?}"));
        let (a, b, c) = (
            Rc::new(Event::new()),
            Rc::new(Event::new()),
            Rc::new(Event::new()),
        );
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        spawn(move || {
            sleep(10 * MS);
            c2.set();
            sleep(10 * MS);
            a2.set();
            sleep(10 * MS);
            b2.set();
        });
        let objs: [&dyn Waitable; 3] = [&*a, &*b, &*c];
        let r = sylvan::wait(&objs, None, Some(2));
        l.push(format!("wait count=2 {r:?}"));
        let mut r = sylvan::wait(&objs, None, None);
        r.sort();
        l.push(format!("wait all {r:?}"));
        let x = Event::new();
        let r = sylvan::wait(&[&x, &*a], Some(10 * MS), None);
        l.push(format!("wait timeout {r:?}"));
        let g1 = spawn(|| sleep(20 * MS));
        let g2 = spawn(|| sleep(10 * MS));
        let objs: [&dyn Waitable; 2] = [&g1, &g2];
        let r: Vec<usize> = sylvan::iwait(&objs, None).collect();
        l.push(format!("iwait greenlets {r:?}"));
        check(
            &l,
            &[
                "iwait same turn [0, 1, 2]",
                "wait count=2 [2, 0]",
                "wait all [0, 1, 2]",
                "wait timeout [1]",
                "iwait greenlets [1, 0]",
            ],
        );
    })
}

// sync_34_wait_count_event_and_greenlets.py: gevent 26.9.0 gives
// "first [2]" (g0, whose death was notified first) and "three [2, 3, 0]"
// for objs [g2, ev, g0, g1] when g0, g1 (which sets ev) and g2 all run in
// the turn before main looks. sylvan reports objects that became ready
// before the waiter ran in index order (documented in `iwait`, see s33):
// first [0], then [0, 1, 2]. sylvan's trace:
#[test]
fn s34_wait_count_event_and_greenlets_index_order() {
    bounded(|| {
        let l = Log::default();
        let ev = Rc::new(Event::new());
        let body = |n: &'static str| {
            let (e, l) = (ev.clone(), l.clone());
            spawn(move || {
                l.push(format!("{n} ran"));
                if n == "g1" {
                    e.set();
                }
            })
        };
        let g0 = body("g0");
        let g1 = body("g1");
        let g2 = body("g2");
        let objs: [&dyn Waitable; 4] = [&g2, &*ev, &g0, &g1];
        let r = sylvan::wait(&objs, None, Some(1));
        l.push(format!("first {r:?}"));
        let r = sylvan::wait(&objs, None, Some(3));
        l.push(format!("three {r:?}"));
        check(
            &l,
            &["g0 ran", "g1 ran", "g2 ran", "first [0]", "three [0, 1, 2]"],
        );
    })
}
