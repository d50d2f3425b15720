//! Probe round 33: a hostile review of four changes that landed together.
//!
//! * `Queue::peek` / `try_peek` / `peek_timeout` (a3a7668): peekers woken by
//!   items arriving through every put path (fast path, `try_put`, a
//!   rendezvous putter, a put from a destructor while unwinding), peekers
//!   killed or timed out (no trace, no stale wake-up of a later park),
//!   `close`, the FIFO and bound rules with peekers around, a `T::clone`
//!   that panics or parks, peek from a lone main (deadlock message), peek
//!   while unwinding, and `JoinableQueue`'s unfinished count.
//! * `Pool::imap` keeping every slot busy (2f6b2e2): order, no loss or
//!   duplicate, concurrency bound, panicked vs killed results, dropping the
//!   iterator early, a consumer killed or timed out inside `next`, other
//!   users of the same pool, `Group::imap`, an empty or panicking input,
//!   imap nested in a task of its own full pool, 10,000 items.
//! * The lock-free cross-thread job list and the fork handlers (a3e74ca):
//!   `Handle::spawn` from many threads (per-thread order, nothing lost or
//!   run twice), jobs racing the hub's teardown, forks from a thread that
//!   is not a hub's, from blocking-pool jobs, `Command` spawns that fork
//!   from many threads while pool work runs, forks while other threads
//!   make `os::Fd`s and register signal handlers.
//! * `sylvan::ureq::agent`'s HTTP CONNECT proxy support (df3d058): plain
//!   http through a tunnel with keep-alive reuse, proxy credentials, a
//!   proxy that refuses, closes or hangs, NO_PROXY (in code and from the
//!   environment), SOCKS refused unless bypassed.
//!
//! Tests marked `BUG` show a defect and fail without their `ignore`.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sylvan::pool::{Group, Pool};
use sylvan::sync::{JoinableQueue, LifoQueue, PriorityQueue, Queue, TryGetError};
use sylvan::ureq::ureq;

use crate::util::{
    DropFlag, HUNG, bounded, fork_child, in_child, quiet, reap_blocking, run_child_limited,
    spare_port, wait_for, yield_until,
};

/// Runs `f` under a hard limit.
fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    sylvan::with_timeout(limit, f).unwrap_or_else(|_| panic!("test hung (hit the {limit:?} bound)"))
}

// ===================================================================== peek

/// A peeker parked on an empty queue is woken by an item arriving through
/// each put path: `put`, `try_put`, a put made by a destructor while its
/// greenlet is killed, on each queue kind; the item stays for the getter.
#[test]
fn p01_peekers_wake_for_every_put_path_and_queue_kind() {
    bounded(|| {
        // put / try_put on a Queue, LifoQueue, PriorityQueue, JoinableQueue
        for how in 0..2 {
            let q = Rc::new(Queue::<u32>::bounded(3));
            let l = Rc::new(LifoQueue::<u32>::unbounded());
            let p = Rc::new(PriorityQueue::<u32>::unbounded());
            let j = Rc::new(JoinableQueue::<u32>::unbounded());
            let peekers: Vec<sylvan::Greenlet<Option<u32>>> = vec![
                {
                    let q = q.clone();
                    sylvan::spawn(move || q.peek())
                },
                {
                    let l = l.clone();
                    sylvan::spawn(move || l.peek())
                },
                {
                    let p = p.clone();
                    sylvan::spawn(move || p.peek())
                },
                {
                    let j = j.clone();
                    sylvan::spawn(move || j.peek())
                },
            ];
            sylvan::yield_now();
            if how == 0 {
                q.put(1).unwrap();
                l.put(2).unwrap();
                p.put(3).unwrap();
                j.put(4).unwrap();
            } else {
                q.try_put(1).unwrap();
                l.try_put(2).unwrap();
                p.try_put(3).unwrap();
                j.try_put(4).unwrap();
            }
            let got: Vec<_> = peekers.into_iter().map(|g| g.join().unwrap()).collect();
            assert_eq!(got, [Some(1), Some(2), Some(3), Some(4)], "how {how}");
            assert_eq!(
                (q.len(), l.len(), p.len(), j.len()),
                (1, 1, 1, 1),
                "peek took something"
            );
            assert_eq!(j.unfinished(), 1);
        }
        // A put from a destructor while the putting greenlet unwinds (kill).
        struct PutOnDrop(Rc<Queue<u32>>);
        impl Drop for PutOnDrop {
            fn drop(&mut self) {
                self.0.put(77).unwrap();
            }
        }
        let q = Rc::new(Queue::<u32>::bounded(1));
        let peeker = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        let victim = {
            let q = q.clone();
            sylvan::spawn(move || {
                let _g = PutOnDrop(q);
                sylvan::sleep(Duration::from_secs(3600));
            })
        };
        sylvan::yield_now();
        victim.kill();
        assert_eq!(peeker.join().unwrap(), Some(77));
        assert_eq!(q.try_get(), Ok(77));
    });
}

/// A rendezvous queue (capacity 0): a peeker parked first is woken by a
/// putter that parks with its item, and a `try_put` handed to a waiting
/// getter; a peek never takes the item, never completes the put, and the
/// queue never holds an item past a getter's take.
#[test]
fn p02_rendezvous_peek_never_takes_or_completes_a_put() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(0));
        let peeker = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        sylvan::yield_now();
        let putter = {
            let q = q.clone();
            sylvan::spawn(move || q.put(5))
        };
        assert_eq!(peeker.join().unwrap(), Some(5));
        assert!(!putter.is_dead(), "a peek completed the rendezvous put");
        assert_eq!(q.putters(), 1);
        assert_eq!(q.len(), 0);
        // peek again: still the same item, still in the putter's hands
        assert_eq!(q.try_peek(), Ok(5));
        assert_eq!(q.get(), Some(5));
        assert!(putter.join().unwrap().is_ok());
        assert_eq!(q.try_peek(), Err(TryGetError::Empty));
        // try_put with a getter waiting and a peeker waiting: the getter
        // gets the item; the peeker (woken after it) waits again and then
        // times out.
        let getter = {
            let q = q.clone();
            sylvan::spawn(move || q.get())
        };
        let peeker = {
            let q = q.clone();
            sylvan::spawn(move || q.peek_timeout(Duration::from_millis(30)))
        };
        sylvan::yield_now();
        q.try_put(9).unwrap();
        assert_eq!(getter.join().unwrap(), Some(9));
        assert_eq!(peeker.join().unwrap(), Err(TryGetError::Empty));
        assert_eq!(q.len(), 0);
        assert!(
            q.try_put(1).is_err(),
            "rendezvous accepted an item with no getter"
        );
    });
}

/// A peeker woken for an item and killed before it runs leaves no trace: the
/// getter gets the item, later puts take the fast path, and the peeker's
/// node does not stop a later peeker from being woken.
#[test]
fn p03_a_peeker_killed_after_its_wake_up_leaves_no_trace() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let p1 = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        let p2 = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        sylvan::yield_now();
        q.put(1).unwrap(); // both peekers chosen, neither has run
        p1.kill_nowait();
        p2.kill();
        assert!(p1.join().unwrap_err().is_killed());
        assert!(p2.join().unwrap_err().is_killed());
        assert_eq!(q.try_get(), Ok(1));
        // A fresh peeker is still woken by the next put.
        let p3 = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        sylvan::yield_now();
        q.put(2).unwrap();
        assert_eq!(p3.join().unwrap(), Some(2));
        assert_eq!(q.len(), 1);
    });
}

/// A `peek_timeout` whose item arrives around its deadline leaves no stale
/// wake-up behind: the greenlet's next park (a sleep) lasts its full time.
#[test]
fn p04_peek_timeout_at_the_deadline_leaves_no_stale_wake_up() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        for i in 0..20u32 {
            let q2 = q.clone();
            // The put comes at about the peek's deadline.
            let putter = sylvan::spawn_later(Duration::from_millis(2), move || {
                q2.put(i).unwrap();
            });
            let r = q.peek_timeout(Duration::from_millis(2));
            assert!(matches!(r, Ok(_) | Err(TryGetError::Empty)), "{r:?}");
            putter.join().unwrap();
            let t = Instant::now();
            sylvan::sleep(Duration::from_millis(5));
            assert!(
                t.elapsed() >= Duration::from_millis(5),
                "round {i}: a stale wake-up cut the next sleep short ({:?})",
                t.elapsed()
            );
            assert_eq!(q.try_get(), Ok(i));
        }
    });
}

/// `close` wakes parked peekers (`None`), `try_peek` on a closed queue
/// drains first then says `Closed`, and on a closed rendezvous the item a
/// putter gets back is not seen by peek.
#[test]
fn p05_close_with_peekers() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let ps: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                sylvan::spawn(move || q.peek())
            })
            .collect();
        sylvan::yield_now();
        q.close();
        for p in ps {
            assert_eq!(p.join().unwrap(), None);
        }
        let q = Queue::<u32>::unbounded();
        q.put(1).unwrap();
        q.close();
        assert_eq!(q.try_peek(), Ok(1));
        assert_eq!(q.peek(), Some(1));
        assert_eq!(q.get(), Some(1));
        assert_eq!(q.try_peek(), Err(TryGetError::Closed));
        assert_eq!(q.peek(), None);

        let r = Rc::new(Queue::<u32>::bounded(0));
        let putter = {
            let r = r.clone();
            sylvan::spawn(move || r.put(3))
        };
        sylvan::yield_now();
        assert_eq!(r.try_peek(), Ok(3));
        r.close();
        assert_eq!(
            r.try_peek(),
            Err(TryGetError::Closed),
            "peek sees an item that goes back to its putter"
        );
        assert_eq!(putter.join().unwrap().unwrap_err().0, 3);
    });
}

/// Many getters, putters and peekers on a bounded queue: every item is got
/// exactly once and in FIFO order, the queue never holds more than its
/// bound, peekers only ever see an item that a get later returns, and the
/// queue ends empty with nobody waiting.
#[test]
fn p06_churn_with_peekers_keeps_fifo_and_the_bound() {
    bounded(|| {
        const N: u32 = 600;
        let q = Rc::new(Queue::<u32>::bounded(2));
        let got = Rc::new(RefCell::new(Vec::new()));
        let peeked = Rc::new(RefCell::new(Vec::new()));
        let max_len = Rc::new(Cell::new(0));
        let stop = Rc::new(Cell::new(false));
        let mut gs = Vec::new();
        for p in 0..3u32 {
            let (q, peeked, stop, max_len) =
                (q.clone(), peeked.clone(), stop.clone(), max_len.clone());
            gs.push(sylvan::spawn(move || {
                let mut k = p;
                while !stop.get() {
                    max_len.set(max_len.get().max(q.len()));
                    if let Ok(v) = q.peek_timeout(Duration::from_millis(1 + u64::from(k % 3))) {
                        peeked.borrow_mut().push(v);
                    }
                    k += 1;
                    if k % 4 == 0 {
                        sylvan::yield_now();
                    }
                }
            }));
        }
        let getter = {
            let (q, got, max_len) = (q.clone(), got.clone(), max_len.clone());
            sylvan::spawn(move || {
                for i in 0..N {
                    max_len.set(max_len.get().max(q.len()));
                    let v = q.get().unwrap();
                    got.borrow_mut().push(v);
                    if i % 7 == 0 {
                        sylvan::yield_now();
                    }
                }
            })
        };
        let putters: Vec<_> = (0..2u32)
            .map(|t| {
                let (q, max_len) = (q.clone(), max_len.clone());
                sylvan::spawn(move || {
                    for i in 0..N / 2 {
                        let v = i * 2 + t;
                        if i % 3 == 0 {
                            let mut item = v;
                            while let Err(e) = q.try_put(item) {
                                item = e.into_inner();
                                sylvan::yield_now();
                            }
                        } else {
                            q.put(v).unwrap();
                        }
                        max_len.set(max_len.get().max(q.len()));
                    }
                })
            })
            .collect();
        for p in putters {
            p.join().unwrap();
        }
        getter.join().unwrap();
        stop.set(true);
        for g in gs {
            g.join().unwrap();
        }
        let got = got.borrow();
        assert_eq!(got.len(), N as usize);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), N as usize, "an item was got twice or lost");
        // Each putter's items come out in its own order (FIFO).
        for t in 0..2 {
            let mine: Vec<_> = got.iter().filter(|v| *v % 2 == t).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "putter {t} reordered");
        }
        assert!(max_len.get() <= 2, "the queue held {} > 2", max_len.get());
        assert!(peeked.borrow().iter().all(|v| *v < N));
        assert!(q.is_empty() && q.getters() == 0 && q.putters() == 0);
    });
}

/// A `T::clone` that panics inside `peek` fails only the peeker: the queue
/// is intact (its borrow released), and the getter gets the item.
#[test]
fn p07_a_clone_that_panics_inside_peek() {
    quiet();
    #[derive(Debug, PartialEq)]
    struct Bomb(u32);
    impl Clone for Bomb {
        fn clone(&self) -> Self {
            panic!("clone of {} refused", self.0)
        }
    }
    bounded(|| {
        let q = Rc::new(Queue::<Bomb>::unbounded());
        let parked = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        sylvan::yield_now();
        q.put(Bomb(1)).unwrap();
        let e = parked.join().unwrap_err();
        assert!(e.is_panic(), "{e:?}");
        let direct = {
            let q = q.clone();
            sylvan::spawn(move || q.try_peek())
        };
        assert!(direct.join().unwrap_err().is_panic());
        assert_eq!(q.len(), 1);
        q.put(Bomb(2)).unwrap();
        assert_eq!(q.get(), Some(Bomb(1)));
        assert_eq!(q.get(), Some(Bomb(2)));
    });
}

// Found by this round (fixed): a `T::clone` that parked (here a
// `yield_now`; in real code a clone that logs over a sylvan socket or takes
// a sylvan lock) parked while `try_peek` held the queue's `RefCell`
// borrowed, so another greenlet's plain `put` panicked with "already
// borrowed", in a greenlet that did nothing wrong. Now a clone run by
// `peek` may not switch: its park panics in the peeking greenlet, with a
// message saying so, and the queue is left as it was.
/// A `T::clone` that parks inside `peek` fails the peeker, clearly, and
/// not other greenlets' use of the queue.
#[test]
fn p08_a_clone_that_parks_does_not_break_other_users() {
    quiet();
    #[derive(Debug, PartialEq)]
    struct Slow(u32);
    impl Clone for Slow {
        fn clone(&self) -> Self {
            sylvan::yield_now();
            Slow(self.0)
        }
    }
    bounded(|| {
        let q = Rc::new(Queue::<Slow>::unbounded());
        q.put(Slow(1)).unwrap();
        let peeker = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        let putter = {
            let q = q.clone();
            sylvan::spawn(move || q.put(Slow(2)).is_ok())
        };
        let e = peeker.join().expect_err("the clone switched");
        let msg = e
            .panic()
            .map(|p| p.message().to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("clone") && msg.contains("peek") && msg.contains("must not block"),
            "{msg}"
        );
        let put = putter.join();
        assert!(
            matches!(put, Ok(true)),
            "the innocent putter failed: {put:?}"
        );
        assert_eq!(q.len(), 2);
        assert_eq!(q.get(), Some(Slow(1)));
    });
}

/// `peek` from main with nothing else that could ever put fails with the
/// "would block forever" message naming the peek, instead of hanging.
#[test]
fn p09_peek_from_a_lone_main_reports_the_deadlock() {
    let r = std::thread::spawn(|| {
        let q = Queue::<u32>::unbounded();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.peek()))
    })
    .join()
    .unwrap();
    let p = r.expect_err("peek returned");
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.contains("would block forever") && msg.contains("peek"),
        "{msg}"
    );
}

/// Called from a destructor while its greenlet is killed, `peek` cannot
/// wait: it returns the item when there is one and `None` (without
/// switching) when there is none; `peek_timeout` returns `Empty` at once.
#[test]
fn p10_peek_while_unwinding() {
    bounded(|| {
        struct PeekOnDrop(Rc<Queue<u32>>, Rc<RefCell<Vec<String>>>);
        impl Drop for PeekOnDrop {
            fn drop(&mut self) {
                let t = Instant::now();
                let a = self.0.peek();
                let b = self.0.peek_timeout(Duration::from_secs(5));
                self.1.borrow_mut().push(format!(
                    "{a:?} {b:?} {}",
                    t.elapsed() < Duration::from_secs(1)
                ));
            }
        }
        let log = Rc::new(RefCell::new(Vec::new()));
        for with_item in [false, true] {
            let q = Rc::new(Queue::<u32>::unbounded());
            if with_item {
                q.put(4).unwrap();
            }
            let g = {
                let (q, log) = (q.clone(), log.clone());
                sylvan::spawn(move || {
                    let _p = PeekOnDrop(q, log);
                    sylvan::sleep(Duration::from_secs(3600));
                })
            };
            sylvan::yield_now();
            g.kill();
            assert_eq!(q.len(), usize::from(with_item));
        }
        assert_eq!(
            *log.borrow(),
            ["None Err(Empty) true", "Some(4) Ok(4) true"]
        );
    });
}

/// `JoinableQueue`: peeking changes neither the unfinished count nor what
/// `join` waits for.
#[test]
fn p11_joinable_queue_peek_leaves_the_unfinished_count() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::<u32>::bounded(1));
        let peeker = {
            let q = q.clone();
            sylvan::spawn(move || (q.peek(), q.peek()))
        };
        sylvan::yield_now();
        q.put(8).unwrap();
        assert_eq!(peeker.join().unwrap(), (Some(8), Some(8)));
        assert_eq!(q.unfinished(), 1);
        assert!(!q.join_timeout(Duration::from_millis(5)));
        assert_eq!(q.get(), Some(8));
        assert_eq!(q.unfinished(), 1);
        q.task_done();
        assert!(q.join_timeout(Duration::from_millis(5)));
    });
}

/// A bounded(1) queue with a peeker parked: the first put goes in (slow
/// path, as a peeker waits), the second waits for room; peek never lets
/// the queue hold two.
#[test]
fn p12_a_parked_peeker_does_not_let_puts_past_the_bound() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let peeker = {
            let q = q.clone();
            sylvan::spawn(move || q.peek())
        };
        sylvan::yield_now();
        let putters: Vec<_> = (0..2)
            .map(|i| {
                let q = q.clone();
                sylvan::spawn(move || q.put(i))
            })
            .collect();
        sylvan::yield_now();
        assert_eq!(q.len(), 1);
        assert_eq!(q.putters(), 1);
        assert_eq!(peeker.join().unwrap(), Some(0));
        assert_eq!(q.get(), Some(0));
        assert_eq!(q.get(), Some(1));
        for p in putters {
            assert!(p.join().unwrap().is_ok());
        }
    });
}

// ===================================================================== imap

/// Tracks how many tasks run at once.
#[derive(Clone, Default)]
struct Conc {
    now: Rc<Cell<usize>>,
    max: Rc<Cell<usize>>,
}

impl Conc {
    fn enter(&self) -> ConcGuard {
        self.now.set(self.now.get() + 1);
        self.max.set(self.max.get().max(self.now.get()));
        ConcGuard(self.now.clone())
    }
}

struct ConcGuard(Rc<Cell<usize>>);

impl Drop for ConcGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Results in input order, each item run once, at most `size` at a time,
/// and while the head item is slow the other slots keep working: the 29
/// quick items all finish before the slow head does.
#[test]
fn i01_imap_order_bound_and_busy_slots() {
    bounded(|| {
        let pool = Pool::new(3);
        let conc = Conc::default();
        let runs = Rc::new(RefCell::new(Vec::new()));
        let finished_before_head = Rc::new(Cell::new(0));
        let head_done = Rc::new(Cell::new(false));
        let (c, r, fb, hd) = (
            conc.clone(),
            runs.clone(),
            finished_before_head.clone(),
            head_done.clone(),
        );
        let out: Vec<u32> = pool
            .imap(0..30u32, move |i| {
                let _g = c.enter();
                r.borrow_mut().push(i);
                if i == 0 {
                    sylvan::sleep(Duration::from_millis(150));
                    hd.set(true);
                } else {
                    sylvan::sleep(Duration::from_millis(u64::from(i % 4)));
                    if !hd.get() {
                        fb.set(fb.get() + 1);
                    }
                }
                i * 10
            })
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..30).map(|i| i * 10).collect::<Vec<_>>());
        let mut runs = runs.borrow().clone();
        runs.sort_unstable();
        assert_eq!(
            runs,
            (0..30).collect::<Vec<_>>(),
            "an item ran twice or never"
        );
        assert_eq!(conc.max.get(), 3, "concurrency");
        assert_eq!(
            finished_before_head.get(),
            29,
            "slots idled behind the slow head"
        );
        assert!(pool.is_empty());
        assert_eq!(pool.free_count(), 3);
    });
}

/// A task that panics is reported as panicked, one that a kill (or a
/// `GreenletExit`) ends as killed, in their places; the others are fine.
#[test]
fn i02_imap_reports_panicked_and_killed_tasks_in_place() {
    quiet();
    bounded(|| {
        let pool = Pool::new(2);
        let tasks: Rc<RefCell<Vec<(u32, sylvan::GreenletId)>>> = Rc::default();
        let t2 = tasks.clone();
        let mut it = pool.imap(0..6u32, move |i| {
            t2.borrow_mut().push((i, sylvan::current()));
            match i {
                1 => panic!("item one"),
                3 => std::panic::resume_unwind(Box::new(sylvan::GreenletExit)),
                _ => {
                    sylvan::sleep(Duration::from_millis(2));
                    i
                }
            }
        });
        let mut kinds = Vec::new();
        for r in it.by_ref() {
            kinds.push(match r {
                Ok(v) => format!("ok {v}"),
                Err(e) if e.is_panic() => "panic".to_string(),
                Err(e) if e.is_killed() => "killed".to_string(),
                Err(e) => format!("other {e:?}"),
            });
        }
        assert_eq!(kinds, ["ok 0", "panic", "ok 2", "killed", "ok 4", "ok 5"]);
        // pool.kill from another greenlet while imap waits: the running
        // tasks come back as killed, the rest go on.
        let pool2 = Pool::new(2);
        let killer = {
            let pool2 = pool2.clone();
            sylvan::spawn(move || {
                sylvan::sleep(Duration::from_millis(20));
                pool2.kill();
            })
        };
        let res: Vec<_> = pool2
            .imap(0..4u32, |i| {
                if i < 2 {
                    sylvan::sleep(Duration::from_secs(3600));
                }
                i
            })
            .collect();
        killer.join().unwrap();
        assert!(res[0].as_ref().unwrap_err().is_killed());
        assert!(res[1].as_ref().unwrap_err().is_killed());
        assert_eq!(res[2].as_ref().ok(), Some(&2));
        assert_eq!(res[3].as_ref().ok(), Some(&3));
    });
}

/// Dropping the iterator after one result kills every task it started and
/// starts no more; the pool empties and each task's destructors ran.
#[test]
fn i03_dropping_imap_early_kills_its_tasks_and_empties_the_pool() {
    bounded(|| {
        let pool = Pool::new(3);
        let started = Rc::new(Cell::new(0));
        let dropped = Rc::new(Cell::new(0));
        let (s, d) = (started.clone(), dropped.clone());
        let mut it = pool.imap(0..20u32, move |i| {
            s.set(s.get() + 1);
            let _flag = DropFlag(d.clone());
            if i > 0 {
                sylvan::sleep(Duration::from_secs(3600));
            }
            i
        });
        assert_eq!(it.next().map(Result::unwrap), Some(0));
        sylvan::yield_now();
        let n = started.get();
        assert!((2..=4).contains(&n), "started {n}");
        drop(it);
        assert!(
            pool.join_timeout(Duration::from_secs(1)),
            "pool never emptied"
        );
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.free_count(), 3);
        assert_eq!(
            dropped.get(),
            started.get(),
            "a task's destructors never ran"
        );
        sylvan::sleep(Duration::from_millis(5));
        assert_eq!(started.get(), n, "items started after the drop");
    });
}

/// A consumer whose `next` times out while the head task is slow can call
/// `next` again: no result is lost or duplicated, order holds.
#[test]
fn i04_imap_next_timed_out_while_waiting_for_the_head_loses_nothing() {
    bounded(|| {
        let pool = Pool::new(2);
        let mut it = pool.imap(0..6u32, |i| {
            sylvan::sleep(Duration::from_millis(if i == 0 { 40 } else { 1 }));
            i
        });
        let mut timeouts = 0;
        let mut out = Vec::new();
        for _ in 0..200 {
            match sylvan::with_timeout(Duration::from_millis(5), || it.next()) {
                Err(_) => timeouts += 1,
                Ok(None) => break,
                Ok(Some(r)) => out.push(r.unwrap()),
            }
        }
        assert!(timeouts > 0);
        assert_eq!(out, [0, 1, 2, 3, 4, 5]);
        assert!(pool.join_timeout(Duration::from_secs(1)));
    });
}

// Found by this round (fixed): `Imap::next` pulls the next input item
// before it takes a slot (the input comes first, as gevent's does), and
// with no result pending it parked in `core.acquire()` holding that item;
// a `next` cut there by a timeout dropped it with the unwind, so the next
// call started from the item after it. The item now stays pending (the
// same spawner serves `imap_unordered`).
/// A consumer whose `next` times out while waiting for a pool slot (the
/// pool full of other work) loses no input item.
#[test]
fn i05_imap_next_timed_out_while_waiting_for_a_slot_loses_no_item() {
    bounded(|| {
        let pool = Pool::new(1);
        let blocker = pool.spawn(|| sylvan::sleep(Duration::from_millis(40)));
        let mut it = pool.imap(0..3u32, |i| i);
        let first = sylvan::with_timeout(Duration::from_millis(5), || it.next());
        assert!(first.is_err(), "next did not wait for the slot");
        blocker.join().unwrap();
        let rest: Vec<u32> = it.map(Result::unwrap).collect();
        assert_eq!(rest, [0, 1, 2], "an input item was lost");
    });
}

/// A consumer killed while parked in `next` kills the tasks the iterator
/// started; the pool empties.
#[test]
fn i06_a_consumer_killed_in_next_kills_the_started_tasks() {
    bounded(|| {
        let pool = Pool::new(4);
        let dropped = Rc::new(Cell::new(0));
        let consumer = {
            let (pool, d) = (pool.clone(), dropped.clone());
            sylvan::spawn(move || {
                let it = pool.imap(0..100u32, move |i| {
                    let _f = DropFlag(d.clone());
                    sylvan::sleep(Duration::from_secs(3600));
                    i
                });
                it.count()
            })
        };
        yield_until("four tasks running", || pool.len() == 4);
        consumer.kill();
        assert!(consumer.join().unwrap_err().is_killed());
        assert!(pool.join_timeout(Duration::from_secs(1)));
        assert_eq!(dropped.get(), 4);
        assert_eq!(pool.free_count(), 4);
    });
}

/// Another greenlet spawning into the same pool while imap runs: the pool
/// never runs more than its size, both sides finish, imap keeps order.
#[test]
fn i07_imap_shares_its_pool_with_pool_spawn() {
    bounded(|| {
        let pool = Pool::new(3);
        let conc = Conc::default();
        let other_done = Rc::new(Cell::new(0));
        let other = {
            let (pool, conc, od) = (pool.clone(), conc.clone(), other_done.clone());
            sylvan::spawn(move || {
                for i in 0..40u64 {
                    let (conc, od) = (conc.clone(), od.clone());
                    pool.spawn(move || {
                        let _g = conc.enter();
                        sylvan::sleep(Duration::from_millis(i % 3));
                        od.set(od.get() + 1);
                    });
                }
            })
        };
        let c = conc.clone();
        let out: Vec<u32> = pool
            .imap(0..60u32, move |i| {
                let _g = c.enter();
                sylvan::sleep(Duration::from_millis(u64::from((i * 7) % 5)));
                i
            })
            .map(Result::unwrap)
            .collect();
        other.join().unwrap();
        pool.join();
        assert_eq!(out, (0..60).collect::<Vec<_>>());
        assert_eq!(other_done.get(), 40);
        assert!(conc.max.get() <= 3, "ran {} at once", conc.max.get());
    });
}

/// `Group::imap` (no bound) keeps input order; an empty input ends at
/// once, and stays ended.
#[test]
fn i08_group_imap_and_empty_input() {
    bounded(|| {
        let g = Group::new();
        let out: Vec<u32> = g
            .imap(0..200u32, |i| {
                sylvan::sleep(Duration::from_millis(u64::from(200 - i) / 40));
                i
            })
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..200).collect::<Vec<_>>());
        assert!(g.is_empty());
        let pool = Pool::new(2);
        let mut it = pool.imap(std::iter::empty::<u32>(), |i| i);
        assert!(it.next().is_none());
        assert!(it.next().is_none());
        let mut it = g.imap(std::iter::empty::<u32>(), |i| i);
        assert!(it.next().is_none());
    });
}

/// An input whose `next` panics on the fourth item: the consumer sees the
/// panic, the tasks already started are killed (their destructors run),
/// one spawned but not started never runs, and the pool empties with every
/// slot back.
#[test]
fn i09_an_input_that_panics_leaves_the_pool_empty() {
    quiet();
    bounded(|| {
        let pool = Pool::new(2);
        let started = Rc::new(Cell::new(0));
        let dropped = Rc::new(Cell::new(0));
        let consumer = {
            let (pool, s, d) = (pool.clone(), started.clone(), dropped.clone());
            sylvan::spawn(move || {
                let input = (0..10u32).inspect(|i| assert!(*i < 3, "input broke at {i}"));
                pool.imap(input, move |i| {
                    s.set(s.get() + 1);
                    let _f = DropFlag(d.clone());
                    sylvan::sleep(Duration::from_millis(if i == 0 { 30 } else { 3_600_000 }));
                    i
                })
                .map(Result::unwrap)
                .collect::<Vec<_>>()
            })
        };
        let e = consumer.join().unwrap_err();
        assert!(e.is_panic(), "{e:?}");
        assert!(format!("{e:?}").contains("input broke at 3"), "{e:?}");
        assert!(
            pool.join_timeout(Duration::from_secs(1)),
            "pool never emptied"
        );
        assert_eq!(pool.free_count(), 2);
        assert!(started.get() >= 2, "started {}", started.get());
        assert_eq!(
            dropped.get(),
            started.get(),
            "a task's destructors never ran"
        );
        sylvan::sleep(Duration::from_millis(5));
        assert_eq!(
            dropped.get(),
            started.get(),
            "a task ran after the consumer died"
        );
    });
}

/// imap called from inside a task of its own full pool cannot start: main
/// waiting on that task gets the "would block forever" error rather than
/// hanging.
#[test]
fn i10_imap_nested_in_its_own_full_pool_reports_the_deadlock() {
    let r = std::thread::spawn(|| {
        let pool = Pool::new(1);
        let p2 = pool.clone();
        let outer = pool.spawn(move || p2.imap(0..3u32, |i| i).count());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| outer.join()))
            .map(|r| r.ok())
            .map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
    });
    let t = Instant::now();
    while !r.is_finished() {
        assert!(t.elapsed() < Duration::from_secs(5), "nested imap hung");
        std::thread::sleep(Duration::from_millis(5));
    }
    let msg = r.join().unwrap().expect_err("nested imap finished");
    assert!(msg.contains("would block forever"), "{msg}");
}

/// 10,000 items through a pool of 16 with uneven task lengths: every result
/// in order, within a couple of seconds.
#[test]
fn i11_ten_thousand_items() {
    bounded(|| {
        let pool = Pool::new(16);
        let conc = Conc::default();
        let c = conc.clone();
        let t = Instant::now();
        let mut n = 0u32;
        for (i, r) in pool
            .imap(0..10_000u32, move |i| {
                let _g = c.enter();
                for _ in 0..(i.wrapping_mul(2_654_435_761) >> 29) {
                    sylvan::yield_now();
                }
                i
            })
            .enumerate()
        {
            assert_eq!(r.unwrap(), i as u32);
            n += 1;
        }
        assert_eq!(n, 10_000);
        assert!(conc.max.get() <= 16);
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "took {:?}",
            t.elapsed()
        );
        assert!(pool.is_empty());
    });
}

// ============================================================ remote / fork

/// Eight threads each hand 500 jobs to one hub with `Handle::spawn` at the
/// same time: every job runs exactly once, each thread's jobs in order.
#[test]
fn f01_handle_spawn_from_many_threads_keeps_order_and_loses_nothing() {
    bounded(|| {
        const T: usize = 8;
        const PER: u32 = 500;
        let handle = sylvan::Handle::current();
        let keep = handle.keep_alive();
        let seen: Arc<std::sync::Mutex<Vec<Vec<u32>>>> =
            Arc::new(std::sync::Mutex::new(vec![Vec::new(); T]));
        let go = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..T)
            .map(|t| {
                let (h, seen, go) = (handle.clone(), seen.clone(), go.clone());
                std::thread::spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    for i in 0..PER {
                        let seen = seen.clone();
                        h.spawn(move || seen.lock().unwrap()[t].push(i)).unwrap();
                        if i % 50 == 0 {
                            h.wake();
                        }
                    }
                })
            })
            .collect();
        go.store(true, Ordering::Release);
        let total = || seen.lock().unwrap().iter().map(Vec::len).sum::<usize>();
        assert!(
            wait_for(Duration::from_secs(4), || total() == T * PER as usize),
            "only {} of {} jobs ran",
            total(),
            T * PER as usize
        );
        for t in threads {
            t.join().unwrap();
        }
        drop(keep);
        sylvan::sleep(Duration::from_millis(2));
        let seen = seen.lock().unwrap();
        for (t, v) in seen.iter().enumerate() {
            assert_eq!(*v, (0..PER).collect::<Vec<_>>(), "thread {t}");
        }
    });
}

/// Jobs sent while the hub's thread exits either run or are dropped (what
/// they hold released), never leaked; after the exit, sends fail with
/// `HubGone` and drop the job at once.
#[test]
fn f02_jobs_racing_the_hub_teardown_are_run_or_dropped() {
    struct Token(Arc<AtomicUsize>);
    impl Drop for Token {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for round in 0..10 {
        let (tx, rx) = std::sync::mpsc::channel();
        let hub_thread = std::thread::spawn(move || {
            tx.send(sylvan::Handle::current()).unwrap();
            for _ in 0..(round % 5) {
                sylvan::yield_now();
                sylvan::sleep(Duration::from_micros(50));
            }
        });
        let h = rx.recv().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(());
        let (mut ok, mut gone) = (0, 0);
        let t = Instant::now();
        // Paced (a few sends every 50 µs), so that the hub keeps up: an
        // unpaced flood only measures how fast the queue grows.
        while t.elapsed() < Duration::from_secs(2) {
            if (ok + gone) % 4 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
            let (r, token, held) = (ran.clone(), Token(dropped.clone()), held.clone());
            match h.spawn(move || {
                let _t = token;
                let _h = held;
                r.fetch_add(1, Ordering::SeqCst);
            }) {
                Ok(()) => ok += 1,
                Err(sylvan::HubGone) => {
                    gone += 1;
                    if gone > 3 {
                        break;
                    }
                }
            }
        }
        hub_thread.join().unwrap();
        assert!(
            gone > 0,
            "round {round}: sends kept succeeding after the thread ended ({ok} sent, ran {})",
            ran.load(Ordering::SeqCst)
        );
        assert!(!h.is_alive());
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "round {round}: a job's captures leaked ({ok} sent, {} ran)",
            ran.load(Ordering::SeqCst)
        );
        // Every job's token was dropped exactly once (ran or not).
        assert_eq!(dropped.load(Ordering::SeqCst), ok + gone, "round {round}");
        assert!(ran.load(Ordering::SeqCst) <= ok);
    }
}

/// Keeps this hub's blocking pool and its cross-thread list busy until the
/// flag goes: two greenlets of short `spawn_blocking` jobs and a thread
/// doing `Handle::spawn`.
fn busy_background(
    stop: &Arc<AtomicBool>,
) -> (Vec<sylvan::Greenlet<()>>, std::thread::JoinHandle<()>) {
    let feeders = (0..2)
        .map(|_| {
            let stop = stop.clone();
            sylvan::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    sylvan::spawn_blocking(|| std::hint::black_box(1));
                }
            })
        })
        .collect();
    let handle = sylvan::Handle::current();
    let queued = Arc::new(AtomicUsize::new(0));
    let stop2 = stop.clone();
    let spawner = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            if queued.load(Ordering::Relaxed) >= 8 {
                std::thread::yield_now();
                continue;
            }
            queued.fetch_add(1, Ordering::Relaxed);
            let q = queued.clone();
            if handle
                .spawn(move || {
                    q.fetch_sub(1, Ordering::Relaxed);
                })
                .is_err()
            {
                break;
            }
        }
    });
    (feeders, spawner)
}

/// What a forked child checks: its hub polls, a blocking job runs, and a
/// `Handle::spawn` from a thread of its own arrives. 0 when all did.
fn child_checks() -> i32 {
    sylvan::sleep(Duration::from_millis(1));
    let job = sylvan::with_timeout(Duration::from_secs(2), || sylvan::spawn_blocking(|| 5));
    if job != Ok(5) {
        return 1;
    }
    let h = sylvan::Handle::current();
    let flag = Arc::new(AtomicBool::new(false));
    let f2 = flag.clone();
    let sent =
        std::thread::spawn(move || h.spawn(move || f2.store(true, Ordering::SeqCst)).is_ok())
            .join()
            .unwrap_or(false);
    if !sent {
        return 2;
    }
    let t = Instant::now();
    while !flag.load(Ordering::SeqCst) {
        if t.elapsed() > Duration::from_secs(2) {
            return 3;
        }
        sylvan::sleep(Duration::from_millis(1));
    }
    0
}

/// Forks from a plain thread that never used sylvan while the hub's thread
/// keeps the pool and its job list busy: each child (whose forking thread
/// gets a fresh hub) polls, runs a blocking job and takes a cross-thread
/// spawn.
#[test]
fn f03_forks_from_a_non_hub_thread() {
    in_child(
        "probes33::f03_forks_from_a_non_hub_thread",
        "p33-f03",
        || {
            let stop = Arc::new(AtomicBool::new(false));
            let (feeders, spawner) = busy_background(&stop);
            // Let the pool threads the feeders need, and the spawner thread,
            // finish starting first: a fork while a thread is being started
            // can leave std's lock for that held in the child, whose first
            // thread then hangs (a documented limit, README "fork"). A
            // fresh-clone CI run hit it once, on the very first fork. No
            // event says "no thread is starting", hence the pause.
            sylvan::sleep(Duration::from_millis(300));
            let done = Arc::new(AtomicBool::new(false));
            let d2 = done.clone();
            let forker = std::thread::spawn(move || {
                let mut codes = Vec::new();
                let t = Instant::now();
                while codes.len() < 20 && t.elapsed() < Duration::from_secs(3) {
                    let pid = fork_child(child_checks);
                    codes.push(reap_blocking(pid, Duration::from_secs(3)));
                }
                d2.store(true, Ordering::SeqCst);
                codes
            });
            assert!(wait_for(Duration::from_secs(4), || done.load(Ordering::SeqCst)));
            stop.store(true, Ordering::Relaxed);
            let codes = forker.join().unwrap();
            for f in feeders {
                f.join().unwrap();
            }
            spawner.join().unwrap();
            assert!(!codes.is_empty());
            assert!(
                codes.iter().all(|&c| c == 0),
                "child codes {codes:?} (HUNG = {HUNG})"
            );
        },
    );
}

/// Forks from blocking-pool jobs (the prepare handler takes the pool's own
/// lock on a pool thread), four at a time, while other greenlets keep the
/// pool busy: no deadlock, every child works.
#[test]
fn f04_forks_from_blocking_pool_jobs() {
    in_child(
        "probes33::f04_forks_from_blocking_pool_jobs",
        "p33-f04",
        || {
            let stop = Arc::new(AtomicBool::new(false));
            let (feeders, spawner) = busy_background(&stop);
            let forkers: Vec<_> = (0..4)
                .map(|_| {
                    sylvan::spawn(|| {
                        (0..5)
                            .map(|_| {
                                sylvan::spawn_blocking(|| {
                                    let pid = fork_child(child_checks);
                                    reap_blocking(pid, Duration::from_secs(3))
                                })
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let codes: Vec<i32> = forkers
                .into_iter()
                .flat_map(|g| g.join().unwrap())
                .collect();
            stop.store(true, Ordering::Relaxed);
            for f in feeders {
                f.join().unwrap();
            }
            spawner.join().unwrap();
            assert_eq!(codes.len(), 20);
            assert!(
                codes.iter().all(|&c| c == 0),
                "child codes {codes:?} (HUNG = {HUNG})"
            );
        },
    );
}

/// `std::process::Command` spawns from four threads (with a `pre_exec`
/// hook, so std forks rather than using posix_spawn and the atfork
/// handlers run), while greenlets keep the blocking pool busy: all 80
/// finish, promptly.
#[test]
fn f05_command_spawns_from_many_threads_while_the_pool_works() {
    in_child(
        "probes33::f05_command_spawns_from_many_threads_while_the_pool_works",
        "p33-f05",
        || {
            use std::os::unix::process::CommandExt;
            let stop = Arc::new(AtomicBool::new(false));
            let (feeders, spawner) = busy_background(&stop);
            let done = Arc::new(AtomicUsize::new(0));
            let t = Instant::now();
            let threads: Vec<_> = (0..4)
                .map(|k| {
                    let done = done.clone();
                    std::thread::spawn(move || {
                        for i in 0..20 {
                            let mut c = std::process::Command::new("/bin/true");
                            if (i + k) % 2 == 0 {
                                // SAFETY: the hook does nothing (it only
                                // makes std fork instead of posix_spawn).
                                unsafe { c.pre_exec(|| Ok(())) };
                            }
                            let s = c.status().expect("spawn /bin/true");
                            assert!(s.success());
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            let all = wait_for(Duration::from_secs(4), || done.load(Ordering::SeqCst) == 80);
            stop.store(true, Ordering::Relaxed);
            assert!(
                all,
                "only {} of 80 spawns in {:?}",
                done.load(Ordering::SeqCst),
                t.elapsed()
            );
            for th in threads {
                th.join().unwrap();
            }
            for f in feeders {
                f.join().unwrap();
            }
            spawner.join().unwrap();
        },
    );
}

/// Forks while another thread (with a hub of its own) keeps making and
/// dropping `os::Fd`s and registering and dropping signal handlers: the
/// tables' locks are free and whole in each child, which makes an `Fd`,
/// registers a handler and gets its own signal.
#[test]
fn f06_forks_while_other_threads_make_fds_and_signal_handlers() {
    in_child(
        "probes33::f06_forks_while_other_threads_make_fds_and_signal_handlers",
        "p33-f06",
        || {
            let stop = Arc::new(AtomicBool::new(false));
            let churners: Vec<_> = (0..2)
                .map(|k| {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let mut n = 0u32;
                        while !stop.load(Ordering::Relaxed) {
                            if k == 0 {
                                let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
                                let fd = sylvan::os::Fd::new(a).unwrap();
                                drop(fd);
                            } else {
                                let h = sylvan::signal(libc::SIGUSR1, || {}).unwrap();
                                drop(h);
                            }
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let mut codes = Vec::new();
            let t = Instant::now();
            while codes.len() < 30 && t.elapsed() < Duration::from_secs(3) {
                let pid = fork_child(|| {
                    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
                    let Ok(fd) = sylvan::os::Fd::new(a) else {
                        return 4;
                    };
                    drop(fd);
                    let got = Rc::new(Cell::new(false));
                    let g2 = got.clone();
                    let Ok(h) = sylvan::signal(libc::SIGUSR2, move || g2.set(true)) else {
                        return 5;
                    };
                    // SAFETY: signals this (child) process, which handles it.
                    unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
                    if !wait_for(Duration::from_secs(2), || got.get()) {
                        return 6;
                    }
                    drop(h);
                    child_checks()
                });
                codes.push(reap_blocking(pid, Duration::from_secs(3)));
                sylvan::sleep(Duration::from_millis(1));
            }
            stop.store(true, Ordering::Relaxed);
            for c in churners {
                assert!(c.join().unwrap() > 0);
            }
            assert!(codes.len() >= 5);
            assert!(
                codes.iter().all(|&c| c == 0),
                "child codes {codes:?} (HUNG = {HUNG})"
            );
        },
    );
}

// ===================================================================== ureq

type AgentConfig = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

fn agent(f: impl FnOnce(AgentConfig) -> AgentConfig) -> ureq::Agent {
    sylvan::ureq::agent(f(ureq::Agent::config_builder().http_status_as_error(false)).build())
}

/// Reads a request or CONNECT head (byte by byte, up to 8 KiB).
fn read_head(c: &sylvan::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return None;
        }
        match (&*c).read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A tiny keep-alive HTTP/1.1 server: answers every GET with its path as the
/// body; counts connections.
struct Http {
    port: u16,
    conns: Rc<Cell<u32>>,
    acceptor: sylvan::Greenlet<()>,
}

impl Drop for Http {
    fn drop(&mut self) {
        self.acceptor.kill_nowait();
    }
}

impl Http {
    fn start(ip: &str) -> Http {
        let listener = sylvan::net::TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = Rc::new(Cell::new(0));
        let n = conns.clone();
        let acceptor = sylvan::spawn(move || {
            while let Ok((c, _)) = listener.accept() {
                n.set(n.get() + 1);
                sylvan::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    while let Some(head) = read_head(&c) {
                        let path = head.split_whitespace().nth(1).unwrap_or("?").to_string();
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                            path.len()
                        );
                        if (&c).write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Http {
            port,
            conns,
            acceptor,
        }
    }
}

/// How a [`Proxy`] answers a CONNECT.
#[derive(Clone, Copy)]
enum Mode {
    Tunnel,
    Status(u16),
    Close,
    Hang,
}

/// A CONNECT proxy on a sylvan listener that records each request head.
struct Proxy {
    port: u16,
    heads: Rc<RefCell<Vec<String>>>,
    acceptor: sylvan::Greenlet<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.kill_nowait();
    }
}

impl Proxy {
    fn start(mode: Mode) -> Proxy {
        Proxy::on(sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn on(listener: sylvan::net::TcpListener, mode: Mode) -> Proxy {
        let port = listener.local_addr().unwrap().port();
        let heads = Rc::new(RefCell::new(Vec::new()));
        let h = heads.clone();
        let acceptor = sylvan::spawn(move || {
            let mut kids = Vec::new();
            while let Ok((c, _)) = listener.accept() {
                let h = h.clone();
                kids.push(sylvan::spawn(move || {
                    let _ = Proxy::serve(c, &h, mode);
                }));
            }
            drop(kids);
        });
        Proxy {
            port,
            heads,
            acceptor,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn tunnels(&self) -> usize {
        self.heads.borrow().len()
    }

    fn serve(
        c: sylvan::net::TcpStream,
        heads: &RefCell<Vec<String>>,
        mode: Mode,
    ) -> std::io::Result<()> {
        use std::net::Shutdown;
        let Some(head) = read_head(&c) else {
            return Ok(());
        };
        heads.borrow_mut().push(head.clone());
        match mode {
            Mode::Status(code) => {
                let msg = format!(
                    "HTTP/1.1 {code} Nope\r\nProxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n"
                );
                (&c).write_all(msg.as_bytes())?;
                sylvan::sleep(Duration::from_millis(50));
                return Ok(());
            }
            Mode::Close => return Ok(()),
            Mode::Hang => {
                sylvan::sleep(Duration::from_secs(30));
                return Ok(());
            }
            Mode::Tunnel => {}
        }
        let Some(target) = head
            .strip_prefix("CONNECT ")
            .and_then(|r| r.split_whitespace().next())
        else {
            (&c).write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(());
        };
        let up = sylvan::net::TcpStream::connect(target)?;
        (&c).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (c2, up2) = (c.try_clone()?, up.try_clone()?);
        let back = sylvan::spawn(move || {
            let _ = std::io::copy(&mut &up2, &mut &c2);
            let _ = c2.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut &c, &mut &up);
        let _ = up.shutdown(Shutdown::Write);
        let _ = back.join();
        Ok(())
    }
}

fn body(agent: &ureq::Agent, url: &str) -> Result<String, ureq::Error> {
    agent.get(url).call()?.body_mut().read_to_string()
}

/// Plain http (not https) through a CONNECT proxy: the request goes through
/// one tunnel (`CONNECT 127.0.0.1:port`), and three requests reuse it
/// (one tunnel, one connection at the server).
#[test]
fn u01_plain_http_through_a_connect_proxy_with_keep_alive() {
    within(Duration::from_secs(8), || {
        let server = Http::start("127.0.0.1");
        let proxy = Proxy::start(Mode::Tunnel);
        let p = ureq::Proxy::new(&proxy.url()).unwrap();
        let a = agent(|b| {
            b.proxy(Some(p))
                .timeout_global(Some(Duration::from_secs(3)))
        });
        for i in 0..3 {
            let url = format!("http://127.0.0.1:{}/n{i}", server.port);
            assert_eq!(body(&a, &url).unwrap(), format!("/n{i}"));
        }
        assert_eq!(proxy.tunnels(), 1, "heads: {:?}", proxy.heads.borrow());
        assert_eq!(server.conns.get(), 1, "the tunnel was not reused");
        let head = proxy.heads.borrow()[0].clone();
        assert!(
            head.starts_with(&format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n", server.port)),
            "{head}"
        );
        assert!(!head.to_ascii_lowercase().contains("proxy-authorization"));
    });
}

/// Proxy credentials in the proxy URL go out as a Basic
/// `Proxy-Authorization` header on the CONNECT.
#[test]
fn u02_proxy_credentials_are_sent() {
    within(Duration::from_secs(8), || {
        let server = Http::start("127.0.0.1");
        let proxy = Proxy::start(Mode::Tunnel);
        let p = ureq::Proxy::new(&format!("http://alice:s3cret@127.0.0.1:{}", proxy.port)).unwrap();
        let a = agent(|b| {
            b.proxy(Some(p))
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let url = format!("http://127.0.0.1:{}/auth", server.port);
        assert_eq!(body(&a, &url).unwrap(), "/auth");
        let head = proxy.heads.borrow()[0].clone();
        // base64("alice:s3cret")
        assert!(
            head.contains("Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n"),
            "{head}"
        );
    });
}

/// A proxy answering 407 or 403, or closing without an answer: the request
/// fails at once with `ConnectProxyFailed` (or an io error for the close),
/// nothing reaches the target, and the agent is usable afterwards.
#[test]
fn u03_a_proxy_that_refuses_or_closes() {
    within(Duration::from_secs(8), || {
        let server = Http::start("127.0.0.1");
        let url = format!("http://127.0.0.1:{}/x", server.port);
        for (mode, name) in [
            (Mode::Status(407), "407"),
            (Mode::Status(403), "403"),
            (Mode::Close, "close"),
        ] {
            let proxy = Proxy::start(mode);
            let p = ureq::Proxy::new(&proxy.url()).unwrap();
            let a = agent(|b| {
                b.proxy(Some(p))
                    .timeout_global(Some(Duration::from_secs(3)))
            });
            let t = Instant::now();
            let e = body(&a, &url).expect_err(name);
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{name}: took {:?}",
                t.elapsed()
            );
            match (&e, mode) {
                (ureq::Error::ConnectProxyFailed(m), Mode::Status(code)) => {
                    assert!(m.contains(&code.to_string()), "{name}: {m}");
                }
                (ureq::Error::ConnectProxyFailed(_) | ureq::Error::Io(_), Mode::Close) => {}
                _ => panic!("{name}: unexpected error {e:?}"),
            }
            assert_eq!(server.conns.get(), 0, "{name}: the target was reached");
        }
        // A plain agent still works.
        let a = agent(|b| b.proxy(None));
        assert_eq!(body(&a, &url).unwrap(), "/x");
    });
}

/// A proxy that accepts and never answers the CONNECT: ureq's timeout
/// fires on time, and a greenlet parked there without a timeout is killed
/// promptly while a ticker keeps running.
#[test]
fn u04_a_proxy_that_hangs() {
    within(Duration::from_secs(8), || {
        let proxy = Proxy::start(Mode::Hang);
        let url = "http://127.0.0.1:9/never".to_string();
        let p = ureq::Proxy::new(&proxy.url()).unwrap();
        let a = agent(|b| {
            b.proxy(Some(p.clone()))
                .timeout_global(Some(Duration::from_millis(300)))
        });
        let t = Instant::now();
        let e = body(&a, &url).expect_err("hung proxy answered");
        let took = t.elapsed();
        assert!(matches!(e, ureq::Error::Timeout(_)), "not a timeout: {e:?}");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "took {took:?}"
        );
        // No timeout at all: kill unwinds it.
        let ticks = Rc::new(Cell::new(0u32));
        let tk = ticks.clone();
        let ticker = sylvan::spawn(move || {
            loop {
                sylvan::sleep(Duration::from_millis(5));
                tk.set(tk.get() + 1);
            }
        });
        let a = agent(|b| b.proxy(Some(p)));
        let g = sylvan::spawn(move || body(&a, &url).map(|_| ()));
        assert!(wait_for(Duration::from_secs(2), || proxy.tunnels() == 2));
        let before = ticks.get();
        sylvan::sleep(Duration::from_millis(30));
        assert!(
            ticks.get() > before,
            "the hub stalled inside the proxy call"
        );
        let t = Instant::now();
        g.kill();
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "kill took {:?}",
            t.elapsed()
        );
        assert!(g.join().unwrap_err().is_killed());
        ticker.kill();
    });
}

/// NO_PROXY set in code: a host it names goes direct (the server on
/// 127.0.0.2 sees the connection, the proxy nothing), another host goes
/// through the proxy. A SOCKS proxy is refused, unless NO_PROXY names the
/// host (then the request goes direct and succeeds).
#[test]
fn u05_no_proxy_bypasses_the_proxy_and_a_socks_proxy() {
    within(Duration::from_secs(8), || {
        let Ok(l2) = sylvan::net::TcpListener::bind("127.0.0.2:0") else {
            eprintln!("127.0.0.2 cannot be bound here: skipped");
            return;
        };
        drop(l2);
        let direct = Http::start("127.0.0.2");
        let proxied = Http::start("127.0.0.1");
        let proxy = Proxy::start(Mode::Tunnel);
        let p = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
            .host("127.0.0.1")
            .port(proxy.port)
            .no_proxy("127.0.0.2")
            .build()
            .unwrap();
        let a = agent(|b| {
            b.proxy(Some(p))
                .timeout_global(Some(Duration::from_secs(3)))
        });
        let u2 = format!("http://127.0.0.2:{}/direct", direct.port);
        let u1 = format!("http://127.0.0.1:{}/via", proxied.port);
        assert_eq!(body(&a, &u2).unwrap(), "/direct");
        assert_eq!(proxy.tunnels(), 0, "NO_PROXY host went through the proxy");
        assert_eq!(body(&a, &u1).unwrap(), "/via");
        assert_eq!(proxy.tunnels(), 1);
        assert_eq!((direct.conns.get(), proxied.conns.get()), (1, 1));

        let socks = ureq::Proxy::builder(ureq::ProxyProtocol::Socks5)
            .host("127.0.0.1")
            .port(9)
            .no_proxy("127.0.0.2")
            .build()
            .unwrap();
        let a = agent(|b| {
            b.proxy(Some(socks))
                .timeout_global(Some(Duration::from_secs(3)))
        });
        assert_eq!(body(&a, &u2).unwrap(), "/direct", "NO_PROXY host refused");
        match body(&a, &u1) {
            Err(ureq::Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::Unsupported),
            other => panic!("SOCKS not refused: {other:?}"),
        }
        assert_eq!(proxied.conns.get(), 1, "went around the SOCKS proxy");
    });
}

/// A proxy read from the environment (`ALL_PROXY`, with `NO_PROXY`) by the
/// default config: the request to a host NO_PROXY names goes direct, the
/// other through the proxy (run in a child process with that environment).
#[test]
fn u06_proxy_and_no_proxy_from_the_environment() {
    const NAME: &str = "p33-u06";
    if crate::util::is_child(NAME) {
        bounded(|| {
            let port: u16 = std::env::var("P33_PROXY_PORT").unwrap().parse().unwrap();
            let proxy = Proxy::on(
                sylvan::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
                Mode::Tunnel,
            );
            let direct = Http::start("127.0.0.2");
            let proxied = Http::start("127.0.0.1");
            let a = sylvan::ureq::agent(
                ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(3)))
                    .build(),
            );
            let p = a
                .config()
                .proxy()
                .expect("no proxy read from the environment");
            assert!(p.is_from_env());
            let u2 = format!("http://127.0.0.2:{}/direct", direct.port);
            let u1 = format!("http://127.0.0.1:{}/via", proxied.port);
            assert_eq!(body(&a, &u2).unwrap(), "/direct");
            assert_eq!(proxy.tunnels(), 0, "NO_PROXY host went through the proxy");
            assert_eq!(body(&a, &u1).unwrap(), "/via");
            assert_eq!(proxy.tunnels(), 1);
        });
        println!("PROBE ok");
        return;
    }
    if std::net::TcpListener::bind("127.0.0.2:0").is_err() {
        eprintln!("127.0.0.2 cannot be bound here: skipped");
        return;
    }
    let port = spare_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_child_limited(
        "probes33::u06_proxy_and_no_proxy_from_the_environment",
        NAME,
        &[
            ("ALL_PROXY", &url),
            ("NO_PROXY", "127.0.0.2"),
            ("P33_PROXY_PORT", &port.to_string()),
        ],
        Duration::from_secs(10),
    )
    .expect("child hung");
    let (o, e) = crate::util::texts(&out);
    assert!(
        out.status.success() && o.contains("PROBE ok"),
        "child failed\n--- stdout\n{o}\n--- stderr\n{e}"
    );
}
