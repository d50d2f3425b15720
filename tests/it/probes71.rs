//! Hostile review of bc3035d (fixes from probes69).
//!
//! * pool: `Member::drop` wakes `exits` and `empty` before it releases its
//!   slot. Attacked with `Pool::kill` from outside and from a member with
//!   spawners parked (plus a joiner), `join`/`join_timeout` racing a parked
//!   spawner and expiring with one parked, `imap` on a full pool with a
//!   competing spawner, `Timeout`s and a kill (every result, in order,
//!   concurrency counted), `map`/`imap_unordered` bound and results, and a
//!   thread exiting with members and spawners parked (a guard dropped after
//!   the hub's teardown sees the slots released). Holds.
//! * wait: `take_notified` drops a notice its own re-watch made. A genuinely
//!   ready object (ready inside the re-watch, or an `Event` set by a
//!   destructor run in `unwatch`) is still reported. BUG (wk01, wk02; both
//!   pass at bc3035d~1): a `Waitable` whose re-watch wakes at once and so
//!   forgets the waiter (a change pending, told immediately, as one that
//!   "forgets a waiter once it has woken it") keeps no registration, yet
//!   iwait kept the token and parked: its later readiness woke nobody, the
//!   wait ran to its timeout (or for ever). Fixed: such a notice is
//!   postponed, not dropped; the waiter lets the hub run a turn, then
//!   re-watches.
//! * threadpool: `Landing::close_and_take`: 5,000 quick calls from 50
//!   greenlets all return their value; callers killed among quick calls
//!   leave each value dropped once. Holds.
//!
//! 13 tests, all passing (the 2 BUGs, wk01 and wk02, fixed since).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use sylvan::pool::Pool;
use sylvan::sync::Event;
use sylvan::{Error, Waitable, Waiter, spawn, spawn_blocking, yield_now};

use crate::util::{bounded, limited_child_texts, quiet, settle, yield_until};

const MS: Duration = Duration::from_millis(1);

// ================================================================ wait

/// A `Waitable` that tells its watcher of every change and forgets it once
/// it has woken it (as `take_notified`'s comment allows). Its `watch`
/// number `wake_on_watch` sees a change pending and wakes at once, without
/// keeping the waiter; number `ready_on_watch` becomes ready and wakes.
#[derive(Default)]
struct Forgetful {
    up: Cell<bool>,
    kept: RefCell<Option<Waiter>>,
    watches: Cell<u32>,
    wake_on_watch: u32,
    ready_on_watch: u32,
}

impl Waitable for Forgetful {
    fn is_ready(&self) -> bool {
        self.up.get()
    }
    fn watch(&self, w: Waiter) -> usize {
        let n = self.watches.get() + 1;
        self.watches.set(n);
        if n == self.ready_on_watch {
            self.up.set(true);
            w.wake();
        } else if n == self.wake_on_watch {
            w.wake(); // a change was pending: told at once, not kept
        } else {
            *self.kept.borrow_mut() = Some(w);
        }
        n as usize
    }
    fn unwatch(&self, _w: Waiter, _token: usize) {
        self.kept.borrow_mut().take();
    }
}

impl Forgetful {
    /// A change: every kept waiter is told, and forgotten.
    fn change(&self) {
        if let Some(w) = self.kept.borrow_mut().take() {
            w.wake();
        }
    }
    fn fire(&self) {
        self.up.set(true);
        self.change();
    }
}

/// The object's re-watch (after a change) wakes at once and forgets the
/// waiter; `take_notified` now drops that notice and keeps the token, as if
/// the object still held the waiter. The object then becomes ready and
/// wakes nobody: the `wait` sleeps to its timeout. Before bc3035d the
/// re-watch was made again and registered for good.
#[test]
fn wk01_forgetful_rewatch_is_not_lost() {
    bounded(|| {
        let f = Rc::new(Forgetful {
            wake_on_watch: 2,
            ..Forgetful::default()
        });
        let f2 = f.clone();
        let g = spawn(move || {
            let t = Instant::now();
            (sylvan::wait(&[&*f2], Some(400 * MS), None), t.elapsed())
        });
        yield_now();
        f.change(); // spurious for iwait: not ready
        yield_now();
        sylvan::sleep(2 * MS);
        f.fire();
        let (got, took) = g.join().unwrap();
        assert_eq!(got, [0], "ready object not reported (took {took:?})");
        // `got` already tells a wake-up from the timeout; this only bounds it.
        assert!(took < 400 * MS, "{took:?}");
    })
}

/// As wk01 with count 1 over three objects: the middle one is lost.
#[test]
fn wk02_forgetful_rewatch_among_others() {
    bounded(|| {
        let a = Rc::new(Forgetful::default());
        let f = Rc::new(Forgetful {
            wake_on_watch: 2,
            ..Forgetful::default()
        });
        let b = Rc::new(Forgetful::default());
        let (a2, f2, b2) = (a.clone(), f.clone(), b.clone());
        let g = spawn(move || {
            let objs: [&dyn Waitable; 3] = [&*a2, &*f2, &*b2];
            sylvan::wait(&objs, Some(300 * MS), Some(1))
        });
        yield_now();
        f.change();
        yield_now();
        f.fire();
        assert_eq!(g.join().unwrap(), [1]);
    })
}

/// The re-watch itself makes the object ready and wakes: reported at once
/// (no lost wake-up for a genuinely ready object), with `wait` count 1 and
/// over several objects.
#[test]
fn wk03_ready_during_rewatch_is_reported() {
    bounded(|| {
        for several in [false, true] {
            let a = Rc::new(Forgetful::default());
            let f = Rc::new(Forgetful {
                ready_on_watch: 2,
                ..Forgetful::default()
            });
            let (a2, f2) = (a.clone(), f.clone());
            let g = spawn(move || {
                let t = Instant::now();
                let got = if several {
                    let objs: [&dyn Waitable; 2] = [&*a2, &*f2];
                    sylvan::wait(&objs, Some(300 * MS), Some(1))
                } else {
                    sylvan::wait(&[&*f2], Some(300 * MS), Some(1))
                        .iter()
                        .map(|_| 1)
                        .collect()
                };
                (got, t.elapsed())
            });
            yield_now();
            f.change();
            let (got, took) = g.join().unwrap();
            assert_eq!(got, [1], "several={several}");
            assert!(took < 300 * MS, "{took:?}");
            assert_eq!(f.watches.get(), 2);
        }
    })
}

/// Sets an event when dropped.
struct SetOnDrop(Rc<Event>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// An object whose `unwatch` drops a guard that sets an `Event` watched in
/// the same `wait` (count 1): the event is reported, promptly.
struct DropsInUnwatch {
    guard: RefCell<Option<SetOnDrop>>,
    kept: RefCell<Option<Waiter>>,
}

impl Waitable for DropsInUnwatch {
    fn is_ready(&self) -> bool {
        false
    }
    fn watch(&self, w: Waiter) -> usize {
        *self.kept.borrow_mut() = Some(w);
        0
    }
    fn unwatch(&self, _w: Waiter, _t: usize) {
        self.kept.borrow_mut().take();
        drop(self.guard.borrow_mut().take());
    }
}

#[test]
fn wk04_event_set_by_a_destructor_inside_unwatch() {
    bounded(|| {
        for order in [false, true] {
            let ev = Rc::new(Event::new());
            let d = Rc::new(DropsInUnwatch {
                guard: RefCell::new(Some(SetOnDrop(ev.clone()))),
                kept: RefCell::new(None),
            });
            let (ev2, d2) = (ev.clone(), d.clone());
            let g = spawn(move || {
                let t = Instant::now();
                let got = if order {
                    let objs: [&dyn Waitable; 2] = [&*d2, &*ev2];
                    sylvan::wait(&objs, Some(300 * MS), Some(1))
                } else {
                    let objs: [&dyn Waitable; 2] = [&*ev2, &*d2];
                    sylvan::wait(&objs, Some(300 * MS), Some(1))
                        .into_iter()
                        .map(|i| 1 - i)
                        .collect()
                };
                (got, t.elapsed())
            });
            yield_now();
            let w = d.kept.borrow_mut().take().expect("watched");
            w.wake(); // spurious: unwatch sets the event
            let (got, took) = g.join().unwrap();
            assert_eq!(got, [1], "order={order}");
            assert!(took < 300 * MS, "{took:?}");
        }
    })
}

// ================================================================ pool

fn accounted(pool: &Pool) {
    assert_eq!(
        pool.len() + pool.free_count(),
        pool.size(),
        "len={} free={}",
        pool.len(),
        pool.free_count()
    );
}

/// `Pool::kill` from outside with three spawners parked on a full pool:
/// the kill returns, what was spawned into the freed slots can be killed
/// by a second kill, the bound holds throughout, the accounting adds up.
#[test]
fn pl01_kill_from_outside_with_spawners_parked() {
    bounded(|| {
        quiet();
        let pool = Pool::new(2);
        let live = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let member = |live: &Rc<Cell<usize>>, peak: &Rc<Cell<usize>>| {
            let (live, peak) = (live.clone(), peak.clone());
            move || {
                live.set(live.get() + 1);
                peak.set(peak.get().max(live.get()));
                struct Down(Rc<Cell<usize>>);
                impl Drop for Down {
                    fn drop(&mut self) {
                        self.0.set(self.0.get() - 1);
                    }
                }
                let _d = Down(live);
                sylvan::sleep(Duration::from_secs(30));
            }
        };
        let first: Vec<_> = (0..2).map(|_| pool.spawn(member(&live, &peak))).collect();
        yield_now();
        let spawners: Vec<_> = (0..3)
            .map(|_| {
                let (p, m) = (pool.clone(), member(&live, &peak));
                spawn(move || p.spawn(m))
            })
            .collect();
        yield_now();
        assert_eq!(pool.free_count(), 0);
        pool.kill();
        for g in &first {
            assert!(g.is_dead());
        }
        // Second and later kills take what the spawners got in.
        let t = Instant::now();
        while !pool.is_empty() || spawners.iter().any(|s| !s.is_dead()) {
            pool.kill();
            yield_now();
            assert!(t.elapsed() < Duration::from_secs(2), "never emptied");
        }
        settle();
        assert!(peak.get() <= 2, "peak {}", peak.get());
        assert_eq!(live.get(), 0);
        accounted(&pool);
        assert_eq!(pool.free_count(), 2);
    })
}

/// `Pool::join` and `join_timeout` racing a parked spawner: each returns
/// with the pool empty at that moment, the spawner's member then runs,
/// and the accounting adds up after every settle.
#[test]
fn pl02_join_racing_a_spawner() {
    bounded(|| {
        let pool = Pool::new(1);
        let ev = Rc::new(Event::new());
        let e2 = ev.clone();
        let m = pool.spawn(move || e2.wait());
        yield_now();
        let p = pool.clone();
        let s = spawn(move || p.spawn(|| 5).join());
        let p = pool.clone();
        let j = spawn(move || {
            p.join();
            p.len()
        });
        let p = pool.clone();
        let jt = spawn(move || (p.join_timeout(Duration::from_secs(2)), p.len()));
        yield_now();
        ev.set();
        assert_eq!(j.join().unwrap(), 0);
        assert_eq!(jt.join().unwrap(), (true, 0));
        assert!(m.join().is_ok());
        assert!(matches!(s.join().unwrap(), Ok(5)));
        settle();
        accounted(&pool);
        assert_eq!(pool.free_count(), 1);
    })
}

/// `imap` on a full pool with a competing spawner, a `Timeout` cutting
/// some items and a kill from another greenlet: every item yields exactly
/// one result, in order, and no more than `size` run at once.
#[test]
fn pl03_imap_full_pool_kills_and_timeouts() {
    bounded(|| {
        quiet();
        let pool = Pool::new(3);
        let live = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let started = Rc::new(Cell::new(0usize));
        // A competitor keeps one slot busy now and then (counted too).
        let (p, l, pk) = (pool.clone(), live.clone(), peak.clone());
        let comp = spawn(move || {
            for _ in 0..5 {
                let (l, pk) = (l.clone(), pk.clone());
                let _ = p
                    .spawn(move || {
                        let _c = Counted::new(&l, &pk);
                        sylvan::sleep(MS)
                    })
                    .join();
            }
        });
        // Kills the pool once twelve items have started (the twelfth is
        // asleep then: at least one Killed).
        let (p, st) = (pool.clone(), started.clone());
        let killer = spawn(move || {
            while st.get() < 12 {
                yield_now();
            }
            p.kill();
        });
        let (l2, p2, st2) = (live.clone(), peak.clone(), started.clone());
        let got: Vec<_> = pool
            .imap(0..40u32, move |i| {
                let _c = Counted::new(&l2, &p2);
                st2.set(st2.get() + 1);
                // Every fourth item is cut by its timeout, the others end.
                let (limit, nap) = if i % 4 == 3 {
                    (MS, Duration::from_secs(10))
                } else {
                    (Duration::from_secs(1), Duration::from_micros(200))
                };
                let r = sylvan::with_timeout(limit, || sylvan::sleep(nap));
                (i, r.is_ok())
            })
            .collect();
        assert_eq!(got.len(), 40);
        let mut killed = 0;
        for (k, r) in got.iter().enumerate() {
            match r {
                Ok((i, ok)) => {
                    assert_eq!(*i as usize, k);
                    assert_eq!(*ok, i % 4 != 3, "{k}");
                }
                Err(Error::Killed) => killed += 1,
                Err(e) => panic!("{k}: {e:?}"),
            }
        }
        assert!((1..=3).contains(&killed), "killed {killed}");
        killer.join().unwrap();
        let _ = comp.join();
        settle();
        assert!(peak.get() <= 3, "peak {}", peak.get());
        assert_eq!(live.get(), 0);
        accounted(&pool);
        assert_eq!(pool.free_count(), 3);
    })
}

/// Counts a running member (its drop, on return or kill, uncounts it) and
/// keeps the peak.
struct Counted(Rc<Cell<usize>>);

impl Counted {
    fn new(live: &Rc<Cell<usize>>, peak: &Rc<Cell<usize>>) -> Counted {
        live.set(live.get() + 1);
        peak.set(peak.get().max(live.get()));
        Counted(live.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// `join_timeout` that expires while a spawner is parked on a full pool:
/// false, the pool untouched; then the member leaves, the spawner's
/// member runs, and a second `join_timeout` returns true.
#[test]
fn pl06_join_timeout_expiring_with_a_spawner_parked() {
    bounded(|| {
        let pool = Pool::new(1);
        let ev = Rc::new(Event::new());
        let e2 = ev.clone();
        pool.spawn(move || e2.wait());
        yield_now();
        let p = pool.clone();
        let s = spawn(move || p.spawn(|| 9).join());
        yield_now();
        assert!(!pool.join_timeout(3 * MS));
        assert_eq!((pool.len(), pool.free_count()), (1, 0));
        ev.set();
        assert!(pool.join_timeout(Duration::from_secs(2)));
        assert!(matches!(s.join().unwrap(), Ok(9)));
        settle();
        accounted(&pool);
    })
}

/// `Pool::kill` from a member, with two spawners parked and a joiner: the
/// joiner returns, the accounting adds up once every spawner's member has
/// ended, and no more than `size` ran at once.
#[test]
fn pl07_kill_from_a_member_with_spawners_and_a_joiner() {
    bounded(|| {
        quiet();
        let pool = Pool::new(2);
        let live = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let (l, pk) = (live.clone(), peak.clone());
        let sleeper = pool.spawn(move || {
            let _c = Counted::new(&l, &pk);
            sylvan::sleep(Duration::from_secs(30));
        });
        let (p, l, pk) = (pool.clone(), live.clone(), peak.clone());
        let killer = pool.spawn(move || {
            let _c = Counted::new(&l, &pk);
            yield_now();
            yield_now();
            p.kill();
        });
        yield_now();
        let spawners: Vec<_> = (0..2u32)
            .map(|k| {
                let (p, l, pk) = (pool.clone(), live.clone(), peak.clone());
                spawn(move || {
                    p.spawn(move || {
                        let _c = Counted::new(&l, &pk);
                        yield_now();
                        k
                    })
                    .join()
                })
            })
            .collect();
        let p = pool.clone();
        let joiner = spawn(move || p.join());
        assert!(matches!(killer.join(), Err(Error::Killed)));
        assert!(matches!(sleeper.join(), Err(Error::Killed)));
        joiner.join().unwrap();
        for (k, s) in spawners.into_iter().enumerate() {
            assert!(matches!(s.join().unwrap(), Ok(v) if v as usize == k));
        }
        settle();
        assert!(peak.get() <= 2, "peak {}", peak.get());
        assert_eq!(live.get(), 0);
        accounted(&pool);
        assert_eq!(pool.free_count(), 2);
    })
}

/// `map` and `imap_unordered` on a full pool: all results, bound held.
#[test]
fn pl04_map_and_unordered_bound_and_results() {
    bounded(|| {
        let pool = Pool::new(4);
        let live = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let body = |live: &Rc<Cell<usize>>, peak: &Rc<Cell<usize>>| {
            let (l, p) = (live.clone(), peak.clone());
            move |i: u32| {
                l.set(l.get() + 1);
                p.set(p.get().max(l.get()));
                for _ in 0..(i % 3) {
                    yield_now();
                }
                l.set(l.get() - 1);
                i * 3
            }
        };
        let blockers: Vec<_> = (0..4)
            .map(|_| pool.spawn(|| sylvan::sleep(2 * MS)))
            .collect();
        let r: Vec<u32> = pool
            .map(0..100u32, body(&live, &peak))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(r, (0..100).map(|i| i * 3).collect::<Vec<_>>());
        let mut u: Vec<u32> = pool
            .imap_unordered(0..100u32, body(&live, &peak))
            .map(Result::unwrap)
            .collect();
        u.sort_unstable();
        assert_eq!(u, (0..100).map(|i| i * 3).collect::<Vec<_>>());
        drop(blockers);
        settle();
        assert!(peak.get() <= 4, "peak {}", peak.get());
        accounted(&pool);
    })
}

/// A std thread exits with members and spawners parked in its pool: the
/// hub's teardown drops them with no hub (`try_hub()` None). No panic, no
/// abort, and the slots are released: a pool handle kept in a thread-local
/// guard registered before the hub (so dropped after it) sees len 0 and
/// both slots free.
#[test]
fn pl05_thread_exit_with_members_and_spawners_parked() {
    let Some((out, err)) = limited_child_texts(
        "probes71::pl05_thread_exit_with_members_and_spawners_parked",
        "p71-pl05",
        &[],
        Duration::from_secs(10),
        || {
            let seen = Arc::new(StdMutex::new(Vec::new()));
            let s2 = seen.clone();
            struct Last(Pool, Arc<StdMutex<Vec<(usize, usize)>>>);
            impl Drop for Last {
                fn drop(&mut self) {
                    self.1
                        .lock()
                        .unwrap()
                        .push((self.0.len(), self.0.free_count()));
                }
            }
            thread_local! {
                static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
            }
            std::thread::spawn(move || {
                // Registered before the hub exists: dropped after it.
                LAST.with(|_| ());
                let pool = Pool::new(2);
                for _ in 0..2 {
                    pool.spawn(|| sylvan::sleep(Duration::from_secs(60)));
                }
                yield_now();
                for _ in 0..3 {
                    let p = pool.clone();
                    spawn(move || {
                        p.spawn(|| ());
                    });
                }
                yield_now();
                assert_eq!(pool.free_count(), 0);
                LAST.with(|l| *l.borrow_mut() = Some(Last(pool.clone(), s2)));
            })
            .join()
            .expect("thread exit panicked");
            println!("SEEN {:?}", seen.lock().unwrap());
        },
    ) else {
        return;
    };
    assert!(!err.contains("panicked"), "{err}");
    // The guard, dropped after the hub's teardown, sees both slots free
    // and no member left.
    assert!(out.contains("SEEN [(0, 2)]"), "{out}");
}

// ================================================================ threadpool

/// 5,000 quick `spawn_blocking` calls from 50 greenlets: every value comes
/// back (Landing's close_and_take never loses a normal result).
#[test]
fn tp01_five_thousand_quick_calls() {
    bounded(|| {
        let gs: Vec<_> = (0..50u64)
            .map(|g| {
                spawn(move || {
                    let mut bad = 0;
                    for k in 0..100u64 {
                        let v = spawn_blocking(move || g * 1000 + k);
                        if v != g * 1000 + k {
                            bad += 1;
                        }
                    }
                    bad
                })
            })
            .collect();
        let bad: u32 = gs.into_iter().map(|g| g.join().unwrap()).sum();
        assert_eq!(bad, 0);
    })
}

/// Quick calls whose callers are killed while waiting: the others' values
/// all land, and a killed caller's value is dropped once.
#[test]
fn tp02_kills_among_quick_calls() {
    bounded(|| {
        quiet();
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        struct D(Arc<std::sync::atomic::AtomicUsize>, u32);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        // Jobs whose caller was killed before a thread took them never run:
        // those that ran are counted.
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gs: Vec<_> = (0..200u32)
            .map(|i| {
                let (d, m) = (drops.clone(), made.clone());
                spawn(move || {
                    let v = spawn_blocking(move || {
                        m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        D(d, i)
                    });
                    v.1
                })
            })
            .collect();
        yield_now();
        for (i, g) in gs.iter().enumerate() {
            if i % 3 == 0 {
                g.kill();
            }
        }
        let mut ok = 0;
        for (i, g) in gs.into_iter().enumerate() {
            match g.join() {
                Ok(v) => {
                    assert_eq!(v as usize, i);
                    ok += 1;
                }
                Err(Error::Killed) => assert_eq!(i % 3, 0),
                Err(e) => panic!("{i}: {e:?}"),
            }
        }
        assert!(ok >= 133);
        let all_dropped = || {
            sylvan::stats().thread_pool_queue == 0
                && drops.load(std::sync::atomic::Ordering::SeqCst)
                    == made.load(std::sync::atomic::Ordering::SeqCst)
        };
        yield_until("every value dropped", all_dropped);
        sylvan::sleep(std::time::Duration::from_millis(20));
        yield_until("every value dropped", all_dropped);
        let made = made.load(std::sync::atomic::Ordering::SeqCst);
        assert!((ok..=200).contains(&made), "{made} jobs ran, {ok} returned");
    })
}
