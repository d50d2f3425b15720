//! Adversarial probes, round 10: the rewritten queue engine
//! (`queue_core.rs`, gevent's model: an item stays in the queue until a
//! getter takes it; a put wakes the first getter, which takes the next item
//! when it runs; a running greenlet may barge; a woken getter killed or
//! timed out passes the wake-up on). Tests marked `#[ignore = "BUG: ..."]`
//! show a sylvan bug; the rest are regression tests. Every test runs under
//! `bounded` so none can hang.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use sylvan::sync::{
    Channel, JoinableQueue, LifoQueue, PriorityQueue, Queue, TryGetError, TryPutError,
};
use sylvan::{Greenlet, Timeout, spawn, with_timeout, yield_now};

use crate::util::{DropFlag, Log, bounded, quiet, yield_until};

/// Lets every ready greenlet run (a quiet point: nothing here uses timers).
fn settle() {
    for _ in 0..8 {
        yield_now();
    }
}

/// Spawns a getter that logs what its `get` returned, without switching in
/// between.
fn getter(q: &Rc<Queue<u32>>, log: &Log, name: &'static str) -> Greenlet<()> {
    let q = q.clone();
    let log = log.clone();
    spawn(move || {
        let v = q.get();
        log.push(format!("{name}:{v:?}"));
    })
}

// ======================================================== wake-up passing

// A woken getter killed before it ran passes the wake-up on: the next
// getter takes the item (README: "the wake-up passes to the next getter").
#[test]
fn a01_killed_woken_getter_passes_wakeup() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let log = Log::default();
        let g1 = getter(&q, &log, "g1");
        let g2 = getter(&q, &log, "g2");
        settle();
        assert_eq!(q.getters(), 2);
        q.put(1).unwrap();
        assert_eq!(q.len(), 1, "the item stays in the queue until taken");
        g1.kill();
        g2.join().unwrap();
        assert!(g1.join().is_err());
        assert_eq!(log.take(), ["g2:Some(1)"]);
        assert_eq!(q.len(), 0);
    })
}

// Barging: the running greenlet takes the item first; the woken getter
// waits again at the head of the line and takes the next put.
#[test]
fn a02_barging_get_then_woken_getter_waits_at_head() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let log = Log::default();
        let g1 = getter(&q, &log, "g1");
        settle();
        let g2 = getter(&q, &log, "g2");
        settle();
        q.put(1).unwrap();
        assert_eq!(q.try_get(), Ok(1), "a running greenlet may get first");
        settle();
        assert_eq!(q.getters(), 2, "g1 waits again");
        assert!(log.get().is_empty());
        q.put(2).unwrap();
        settle();
        assert_eq!(log.take(), ["g1:Some(2)"], "g1 kept its place");
        q.put(3).unwrap();
        g1.join().unwrap();
        g2.join().unwrap();
        assert_eq!(log.take(), ["g2:Some(3)"]);
    })
}

// Barge, then a put that (rightly) wakes nobody since g1 is still woken,
// then g1 killed: the wake-up passes to g2, which takes item 2.
#[test]
fn a03_barge_put_then_kill_woken_getter_no_lost_wakeup() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(3));
        let log = Log::default();
        let g1 = getter(&q, &log, "g1");
        let g2 = getter(&q, &log, "g2");
        settle();
        q.put(1).unwrap(); // wakes g1
        assert_eq!(q.try_get(), Ok(1)); // barge
        q.put(2).unwrap(); // g1 still woken: wakes nobody else
        g1.kill_nowait();
        settle();
        assert_eq!(log.take(), ["g2:Some(2)"]);
        assert!(g1.join().is_err());
        g2.join().unwrap();
        assert_eq!((q.len(), q.getters()), (0, 0));
    })
}

// Two woken getters, both killed before running, in both orders, with a
// third waiting: the third takes item 1, item 2 stays (nobody lost).
#[test]
fn a04_two_woken_getters_killed_in_both_orders() {
    for rev in [false, true] {
        bounded(|| {
            let q = Rc::new(Queue::<u32>::bounded(2));
            let log = Log::default();
            let g1 = getter(&q, &log, "g1");
            let g2 = getter(&q, &log, "g2");
            let g3 = getter(&q, &log, "g3");
            settle();
            q.put(1).unwrap();
            q.put(2).unwrap();
            assert_eq!(q.getters(), 1);
            if rev {
                g2.kill_nowait();
                g1.kill_nowait();
            } else {
                g1.kill_nowait();
                g2.kill_nowait();
            }
            settle();
            assert_eq!(log.take(), ["g3:Some(1)"], "rev={rev}");
            assert_eq!(q.len(), 1);
            assert_eq!(q.try_get(), Ok(2));
            g3.join().unwrap();
        })
    }
}

// A woken getter whose get_timeout deadline passed before it ran, with
// nobody barging: it takes the item (it was chosen in time).
#[test]
fn a05_woken_getter_past_deadline_takes_item() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let g = {
            let q = q.clone();
            spawn(move || q.get_timeout(Duration::from_millis(200)))
        };
        settle();
        q.put(7).unwrap();
        std::thread::sleep(Duration::from_millis(300)); // past g's deadline
        assert_eq!(g.join().unwrap(), Ok(7));
        assert_eq!(q.len(), 0);
    })
}

// Same, but main barges before g runs: g finds nothing, its deadline has
// passed, it reports Empty and leaves no trace; a later put stays.
#[test]
fn a06_woken_getter_past_deadline_barged_reports_empty() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let g = {
            let q = q.clone();
            spawn(move || q.get_timeout(Duration::from_millis(200)))
        };
        settle();
        q.put(7).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(q.try_get(), Ok(7));
        assert_eq!(g.join().unwrap(), Err(TryGetError::Empty));
        assert_eq!(q.getters(), 0);
        q.put(8).unwrap();
        assert_eq!(q.len(), 1);
    })
}

// A woken getter under a with_timeout that expires before it runs: the
// wake-up passes to the next getter, the item stays in order.
#[test]
fn a07_woken_getter_with_timeout_expires_passes_wakeup() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let log = Log::default();
        let g1 = {
            let q = q.clone();
            let log = log.clone();
            spawn(
                move || match with_timeout(Duration::from_millis(200), || q.get()) {
                    Ok(v) => log.push(format!("g1:{v:?}")),
                    Err(_) => log.push("g1:elapsed"),
                },
            )
        };
        settle();
        let g2 = getter(&q, &log, "g2");
        settle();
        q.put(1).unwrap();
        q.put(2).unwrap(); // wakes g2 too
        std::thread::sleep(Duration::from_millis(300));
        g1.join().unwrap();
        g2.join().unwrap();
        let got = log.take();
        // g1 either took 1 (chosen in time) or was timed out: then g2
        // took 1 and 2 stays.
        match got[0].as_str() {
            "g1:Some(1)" => assert_eq!(got[1], "g2:Some(2)"),
            _ => {
                assert_eq!(got, ["g1:elapsed", "g2:Some(1)"]);
                assert_eq!(q.try_get(), Ok(2));
            }
        }
    })
}

// ======================================================== rendezvous

/// Two getters on a rendezvous queue each handed an item by `try_put`
/// (1 then 2), both killed before they run, the first one first: the items
/// go back to the buffer; returns them in get order.
fn handed_then_killed<Q>(
    put: impl Fn(&Q, u32) -> bool,
    get: impl Fn(&Q) -> Option<u32> + Clone + 'static,
    try_get: impl Fn(&Q) -> Option<u32>,
    q: Rc<Q>,
) -> Vec<u32>
where
    Q: 'static,
{
    let gs: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            let get = get.clone();
            spawn(move || get(&q))
        })
        .collect();
    settle();
    assert!(put(&q, 1));
    assert!(put(&q, 2));
    for g in &gs {
        g.kill_nowait();
    }
    for g in gs {
        assert!(g.join().is_err());
    }
    let mut out = Vec::new();
    while let Some(v) = try_get(&q) {
        out.push(v);
        if out.len() == 2 {
            break;
        }
    }
    out
}

// Queue docs: "A getter killed before it runs takes nothing with it: items
// are never lost nor reordered." Queue::bounded(0) is a rendezvous queue.
// One producer puts 1 then 2 (handed to g1, g2); g1 then g2 are killed
// before running: the items come back as [2, 1]. `Fifo::restore` pushes
// to the front, assuming the restored item is older than all buffered,
// but item 1 was restored before item 2.
#[test]
fn b01_rendezvous_killed_handed_getters_reorder_items() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(0));
        let out = handed_then_killed(
            |q: &Queue<u32>, v| q.try_put(v).is_ok(),
            |q: &Queue<u32>| q.get(),
            |q: &Queue<u32>| q.try_get().ok(),
            q,
        );
        assert_eq!(out, [1, 2]);
    })
}

// Same with a Channel.
#[test]
fn b02_channel_killed_handed_getters_reorder_items() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let out = handed_then_killed(
            |q: &Channel<u32>, v| q.try_put(v).is_ok(),
            |q: &Channel<u32>| q.get(),
            |q: &Channel<u32>| q.try_get().ok(),
            ch,
        );
        assert_eq!(out, [1, 2]);
    })
}

// A channel item handed to a killed getter goes to the next getter.
#[test]
fn b04_channel_handed_item_passes_to_next_getter() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let log = Log::default();
        let mk = |name: &'static str| {
            let ch = ch.clone();
            let log = log.clone();
            spawn(move || {
                let v = ch.get();
                log.push(format!("{name}:{v:?}"));
            })
        };
        let g1 = mk("g1");
        let g2 = mk("g2");
        settle();
        ch.try_put(5).unwrap();
        g1.kill();
        g2.join().unwrap();
        assert_eq!(log.take(), ["g2:Some(5)"]);
        assert!(ch.is_empty());
    })
}

// Channel putters: put waits for a getter; putters served FIFO; close
// gives the waiting putters their items back.
#[test]
fn b05_channel_putters_fifo_and_close_returns_items() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let ps: Vec<_> = (1..=3)
            .map(|i| {
                let ch = ch.clone();
                spawn(move || ch.put(i).map_err(|c| c.0))
            })
            .collect();
        settle();
        assert_eq!(ch.putters(), 3);
        assert!(ch.is_full());
        assert_eq!(ch.get(), Some(1));
        assert_eq!(ch.try_get(), Ok(2));
        ch.close();
        let rs: Vec<_> = ps.into_iter().map(|p| p.join().unwrap()).collect();
        assert_eq!(rs, [Ok(()), Ok(()), Err(3)]);
        assert_eq!(ch.get(), None);
    })
}

// A channel putter with put_timeout whose item was taken at the moment its
// deadline passed: the put succeeded.
#[test]
fn b06_channel_put_timeout_taken_at_deadline_is_ok() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let p = {
            let ch = ch.clone();
            spawn(move || ch.put_timeout(4, Duration::from_millis(200)))
        };
        settle();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(ch.try_get(), Ok(4));
        assert!(matches!(p.join().unwrap(), Ok(())));
    })
}

// ======================================================== putters & room

// A putter parked on a full queue moves in when a get makes room; the
// woken getter chain runs; len never exceeds the capacity.
#[test]
fn c01_refill_wakes_getter_and_respects_capacity() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let log = Log::default();
        q.put(1).unwrap();
        let ps: Vec<_> = (2..=4)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).is_ok())
            })
            .collect();
        settle();
        assert_eq!(q.putters(), 3);
        assert!(q.is_full());
        let gs: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|n| getter(&q, &log, n))
            .collect();
        for _ in 0..20 {
            yield_now();
            assert!(q.len() <= 1, "len {}", q.len());
        }
        for g in gs {
            g.join().unwrap();
        }
        for p in ps {
            assert!(p.join().unwrap());
        }
        assert_eq!(
            log.take(),
            ["a:Some(1)", "b:Some(2)", "c:Some(3)", "d:Some(4)"]
        );
    })
}

// put_timeout on a full queue returns Full with the same item after the
// timeout; get_timeout on an empty one returns Empty; on a closed and
// drained one, Closed.
#[test]
fn c02_timeouts_return_the_right_thing() {
    bounded(|| {
        let q = Queue::<String>::bounded(1);
        q.put("a".into()).unwrap();
        match q.put_timeout("b".into(), Duration::from_millis(200)) {
            Err(TryPutError::Full(s)) => assert_eq!(s, "b"),
            r => panic!("{r:?}"),
        }
        assert_eq!(q.putters(), 0);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get_timeout(Duration::from_millis(1)).as_deref(), Ok("a"));
        assert_eq!(
            q.get_timeout(Duration::from_millis(200)),
            Err(TryGetError::Empty)
        );
        assert_eq!(q.getters(), 0);
        q.close();
        assert_eq!(
            q.get_timeout(Duration::from_millis(200)),
            Err(TryGetError::Closed)
        );
        match q.put_timeout("c".into(), Duration::from_millis(200)) {
            Err(TryPutError::Closed(s)) => assert_eq!(s, "c"),
            r => panic!("{r:?}"),
        }
    })
}

// A killed putter takes its item with it (dropped), leaves no trace; the
// next putter moves in when room comes.
#[test]
fn c03_killed_putter_leaves_no_trace() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let q = Rc::new(Queue::<(u32, DropFlag)>::bounded(1));
        q.put((0, DropFlag(drops.clone()))).unwrap();
        let mk = |i| {
            let q = q.clone();
            let d = drops.clone();
            spawn(move || q.put((i, DropFlag(d))).is_ok())
        };
        let p1 = mk(1);
        let p2 = mk(2);
        settle();
        p1.kill();
        assert_eq!(drops.get(), 1, "p1's item dropped with it");
        assert_eq!(q.putters(), 1);
        assert_eq!(q.get().map(|x| x.0), Some(0));
        assert!(p2.join().unwrap());
        assert_eq!(q.get().map(|x| x.0), Some(2));
    })
}

// close(): putters get their items back, getters drain then see None,
// a woken getter drains the buffer past close.
#[test]
fn c04_close_semantics() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let p = {
            let q = q.clone();
            spawn(move || q.put(3).map_err(|c| c.0))
        };
        settle();
        q.close();
        assert_eq!(p.join().unwrap(), Err(3));
        assert!(q.try_put(4).is_err());
        let log = Log::default();
        let gs: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| getter(&q, &log, n))
            .collect();
        for g in gs {
            g.join().unwrap();
        }
        assert_eq!(log.take(), ["a:Some(1)", "b:Some(2)", "c:None"]);
        assert_eq!(q.try_get(), Err(TryGetError::Closed));
    })
}

// close() while getters are parked and one was woken for an item: the
// woken one takes the item, the rest see None.
#[test]
fn c05_close_with_woken_getter() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let log = Log::default();
        let gs: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| getter(&q, &log, n))
            .collect();
        settle();
        q.put(1).unwrap();
        q.close();
        for g in gs {
            g.join().unwrap();
        }
        assert_eq!(log.take(), ["a:Some(1)", "b:None", "c:None"]);
    })
}

// ======================================================== order variants

// LIFO and priority with putters parked on a full queue and getters
// woken: order per kind.
#[test]
fn d01_lifo_and_priority_orders_with_refill() {
    bounded(|| {
        let q = Rc::new(LifoQueue::<u32>::bounded(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let p = {
            let q = q.clone();
            spawn(move || q.put(3).is_ok())
        };
        settle();
        assert_eq!(q.get(), Some(2));
        assert_eq!(q.len(), 2);
        assert!(p.join().unwrap());
        assert_eq!(q.get(), Some(3));
        assert_eq!(q.get(), Some(1));

        let pq = Rc::new(PriorityQueue::<u32>::bounded(2));
        pq.put(5).unwrap();
        pq.put(3).unwrap();
        let p = {
            let pq = pq.clone();
            spawn(move || pq.put(1).is_ok())
        };
        settle();
        assert_eq!(pq.get(), Some(3));
        assert!(p.join().unwrap());
        assert_eq!(pq.get(), Some(1));
        assert_eq!(pq.get(), Some(5));
    })
}

// JoinableQueue: items taken by killed getters are not counted twice; join
// waits for every task_done.
#[test]
fn d02_joinable_queue_counts_with_kills() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::<u32>::unbounded());
        let g1 = {
            let q = q.clone();
            spawn(move || q.get())
        };
        settle();
        q.put(1).unwrap();
        q.put(2).unwrap();
        g1.kill();
        assert_eq!(q.unfinished(), 2);
        assert_eq!(q.len(), 2);
        let w = {
            let q = q.clone();
            spawn(move || {
                for _ in q.iter() {
                    q.task_done();
                }
            })
        };
        q.join();
        assert_eq!(q.unfinished(), 0);
        q.close();
        w.join().unwrap();
    })
}

// Iterators: two consumers `for x in &q`, a producer that closes; every
// item exactly once, each consumer sees its share in FIFO order.
#[test]
fn d03_iterators_two_consumers() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(3));
        let cs: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                spawn(move || {
                    let mut v = Vec::new();
                    for x in &*q {
                        v.push(x);
                        if x % 3 == 0 {
                            yield_now();
                        }
                    }
                    v
                })
            })
            .collect();
        for i in 0..50 {
            q.put(i).unwrap();
        }
        q.close();
        let mut all = Vec::new();
        for c in cs {
            let v = c.join().unwrap();
            assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
            all.extend(v);
        }
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    })
}

// ======================================================== randomized

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random puts (main, try_put and spawned putters), barging try_gets,
/// getters spawned and killed (woken or not); checks at quiet points:
/// len <= capacity, no item left with a getter parked, and at the end
/// every accepted item came out exactly once, FIFO per producer.
fn stress(seed: u64, cap: usize) {
    let q = Rc::new(if cap == usize::MAX {
        Queue::<(u32, u32)>::unbounded()
    } else {
        Queue::<(u32, u32)>::bounded(cap)
    });
    let taken: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
    let accepted: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
    let mut rng = Rng(seed);
    let mut getters: Vec<Greenlet<()>> = Vec::new();
    let mut putters: Vec<Greenlet<()>> = Vec::new();
    let mut seq = [0u32; 4];
    for step in 0..400 {
        match rng.below(10) {
            0..=2 => {
                let q = q.clone();
                let taken = taken.clone();
                getters.push(spawn(move || {
                    while let Some(v) = q.get() {
                        taken.borrow_mut().push(v);
                        if v.1 % 2 == 0 {
                            yield_now();
                        }
                    }
                }));
            }
            3 => {
                // main, never blocks
                seq[0] += 1;
                let v = (0, seq[0]);
                match q.try_put(v) {
                    Ok(()) => accepted.borrow_mut().push(v),
                    Err(_) => seq[0] -= 1,
                }
            }
            4 | 5 => {
                // a spawned producer p (1..=3): puts in its own order; the
                // put may park. It records acceptance when put returns.
                let p = 1 + rng.below(3) as u32;
                seq[p as usize] += 1;
                let v = (p, seq[p as usize]);
                // one outstanding putter per producer keeps its order
                let prev = putters
                    .iter()
                    .position(|g| g.name() == Some(NAMES[p as usize]));
                if let Some(i) = prev {
                    if !putters[i].is_dead() {
                        seq[p as usize] -= 1;
                        continue;
                    }
                    putters.remove(i);
                }
                let q = q.clone();
                let accepted = accepted.clone();
                accepted.borrow_mut().push(v);
                putters.push(
                    sylvan::Builder::new()
                        .name(NAMES[p as usize])
                        .spawn(move || {
                            if q.put(v).is_err() {
                                accepted.borrow_mut().retain(|x| *x != v);
                            }
                        })
                        .unwrap(),
                );
            }
            6 => {
                if let Ok(v) = q.try_get() {
                    taken.borrow_mut().push(v);
                }
            }
            7 if !getters.is_empty() => {
                let i = rng.below(getters.len() as u64) as usize;
                getters.swap_remove(i).kill_nowait();
            }
            _ => {
                for _ in 0..rng.below(3) {
                    yield_now();
                }
            }
        }
        if step % 7 == 0 {
            settle();
            assert!(q.len() <= cap, "seed {seed} step {step}: len {}", q.len());
            assert!(
                q.is_empty() || q.getters() == 0,
                "seed {seed} step {step}: lost wake-up: len {} getters {}",
                q.len(),
                q.getters()
            );
            if q.capacity().is_some() && q.len() < cap {
                assert_eq!(q.putters(), 0, "seed {seed} step {step}: putter stuck");
            }
        }
    }
    settle();
    q.close();
    for p in putters {
        p.join().unwrap();
    }
    for g in getters {
        g.join().unwrap();
    }
    while let Ok(v) = q.try_get() {
        taken.borrow_mut().push(v);
    }
    let taken = taken.take();
    for p in 0..4 {
        let mine: Vec<u32> = taken.iter().filter(|v| v.0 == p).map(|v| v.1).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: producer {p} out of order: {mine:?}"
        );
    }
    let mut t = taken.clone();
    t.sort_unstable();
    let mut a = accepted.take();
    a.sort_unstable();
    assert_eq!(t, a, "seed {seed}: taken != accepted");
}

const NAMES: [&str; 4] = ["main", "p1", "p2", "p3"];

#[test]
fn e01_stress_bounded_queue() {
    bounded(|| {
        quiet();
        for seed in 1..=12 {
            stress(seed * 0x9E37_79B9, 2);
        }
    })
}

#[test]
fn e02_stress_unbounded_queue() {
    bounded(|| {
        quiet();
        for seed in 1..=12 {
            stress(seed * 0x85EB_CA6B + 1, usize::MAX);
        }
    })
}

#[test]
fn e03_stress_capacity_one() {
    bounded(|| {
        quiet();
        for seed in 1..=12 {
            stress(seed * 0xC2B2_AE35 + 7, 1);
        }
    })
}

// A Timeout guard around a get that is woken and then barged, at the
// moment the guard expires: no item is lost, the getter leaves no trace.
#[test]
fn e04_timeout_guard_woken_barged_getter() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let g = {
            let q = q.clone();
            spawn(move || {
                let _t = Timeout::start(Duration::from_millis(200));
                q.get()
            })
        };
        settle();
        q.put(1).unwrap();
        assert_eq!(q.try_get(), Ok(1));
        std::thread::sleep(Duration::from_millis(300));
        yield_until("g dead", || g.is_dead());
        assert!(g.join().is_err());
        assert_eq!(q.getters(), 0);
        q.put(2).unwrap();
        assert_eq!(q.len(), 1);
    })
}

// LIFO variant of b01: a LifoQueue::bounded(0) whose handed getters are
// killed first-handed first gives back the older item first (`Lifo::restore`
// inserts item 2 under item 1), though item 2 is the newer one.
#[test]
fn b07_lifo_rendezvous_killed_handed_getters_reorder_items() {
    bounded(|| {
        let q = Rc::new(LifoQueue::<u32>::bounded(0));
        let out = handed_then_killed(
            |q: &LifoQueue<u32>, v| q.try_put(v).is_ok(),
            |q: &LifoQueue<u32>| q.get(),
            |q: &LifoQueue<u32>| q.try_get().ok(),
            q,
        );
        assert_eq!(out, [2, 1]);
    })
}

// A put made while its greenlet unwinds (from a destructor during a kill)
// is accepted past the bound (documented); nothing is lost and the putters
// parked meanwhile still move in, in order, as room comes.
#[test]
fn c06_unwinding_put_past_bound_then_drain() {
    bounded(|| {
        struct PutOnDrop(Rc<Queue<u32>>);
        impl Drop for PutOnDrop {
            fn drop(&mut self) {
                assert!(self.0.put(9).is_ok());
            }
        }
        let q = Rc::new(Queue::<u32>::bounded(1));
        q.put(1).unwrap();
        let p = {
            let q = q.clone();
            spawn(move || q.put(2).is_ok())
        };
        let k = {
            let q = q.clone();
            spawn(move || {
                let _d = PutOnDrop(q);
                sylvan::sleep(Duration::from_secs(10));
            })
        };
        settle();
        k.kill();
        assert_eq!(q.len(), 2, "accepted past the bound");
        assert_eq!(q.get(), Some(1));
        assert_eq!(q.putters(), 1, "still no room");
        assert_eq!(q.get(), Some(9));
        assert!(p.join().unwrap());
        assert_eq!(q.get(), Some(2));
        assert!(q.is_empty());
    })
}

// README: "Waiters are served first come, first served"; Queue docs:
// "Waiting getters ... are served in FIFO order", and a woken getter that
// finds its item taken "waits again, at the head of the line". With two
// woken getters (g1 first) both barged, each re-parks with `push_front`,
// g2 last, so g2 jumps ahead of g1 and takes the next item.
#[test]
fn a08_two_barged_woken_getters_keep_fifo() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::unbounded());
        let log = Log::default();
        let g1 = getter(&q, &log, "g1");
        settle();
        let g2 = getter(&q, &log, "g2");
        settle();
        q.put(1).unwrap(); // wakes g1
        q.put(2).unwrap(); // wakes g2
        assert_eq!(q.try_get(), Ok(1)); // barge
        assert_eq!(q.try_get(), Ok(2)); // barge
        settle();
        assert_eq!(q.getters(), 2);
        q.put(3).unwrap();
        settle();
        assert_eq!(log.get(), ["g1:Some(3)"]);
        q.put(4).unwrap();
        g1.join().unwrap();
        g2.join().unwrap();
    })
}

/// Getters on a rendezvous (`Channel`), some killed while handed an item,
/// producers putting in order: every item accepted comes out once.
fn stress_channel(seed: u64) -> Vec<(u32, u32)> {
    let ch = Rc::new(Channel::<(u32, u32)>::new());
    let taken: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
    let accepted: Rc<RefCell<Vec<(u32, u32)>>> = Rc::default();
    let mut rng = Rng(seed);
    let mut getters: Vec<Greenlet<()>> = Vec::new();
    let mut seq = 0;
    for _ in 0..300 {
        match rng.below(8) {
            0..=2 => {
                let ch = ch.clone();
                let taken = taken.clone();
                getters.push(spawn(move || {
                    while let Some(v) = ch.get() {
                        taken.borrow_mut().push(v);
                    }
                }));
            }
            3 | 4 => {
                seq += 1;
                if ch.try_put((0, seq)).is_ok() {
                    accepted.borrow_mut().push((0, seq));
                }
            }
            5 if !getters.is_empty() => {
                let i = rng.below(getters.len() as u64) as usize;
                getters.swap_remove(i).kill_nowait();
            }
            6 => {
                if let Ok(v) = ch.try_get() {
                    taken.borrow_mut().push(v);
                }
            }
            _ => {
                for _ in 0..rng.below(3) {
                    yield_now();
                }
            }
        }
    }
    settle();
    ch.close();
    for g in getters {
        g.join().unwrap();
    }
    while let Ok(v) = ch.try_get() {
        taken.borrow_mut().push(v);
    }
    let mut t = taken.borrow().clone();
    t.sort_unstable();
    assert_eq!(t, *accepted.borrow(), "seed {seed}");
    taken.take()
}

#[test]
fn e05_stress_channel_conserves_items() {
    bounded(|| {
        quiet();
        for seed in 1..=12 {
            stress_channel(seed * 0x2545_F491 + 3);
        }
    })
}

// A woken getter killed while the next getter in line has a kill pending
// too (both orders): the wake-up passes over both to the third getter.
#[test]
fn a09_wakeup_passes_over_a_getter_being_killed() {
    for first in [0usize, 1] {
        bounded(|| {
            let q = Rc::new(Queue::<u32>::unbounded());
            let log = Log::default();
            let gs: Vec<_> = ["g1", "g2", "g3"]
                .into_iter()
                .map(|n| getter(&q, &log, n))
                .collect();
            settle();
            q.put(1).unwrap(); // wakes g1
            gs[first].kill_nowait();
            gs[1 - first].kill_nowait();
            settle();
            assert_eq!(log.take(), ["g3:Some(1)"], "first={first}");
            assert_eq!((q.len(), q.getters()), (0, 0));
            for g in gs {
                let _ = g.join();
            }
        })
    }
}

// A putter whose put_timeout deadline passed, chosen by a get (room made)
// before its timer was processed: the put succeeded and the item is in.
#[test]
fn c07_put_timeout_chosen_at_deadline_is_ok() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        q.put(1).unwrap();
        let p = {
            let q = q.clone();
            spawn(move || q.put_timeout(2, Duration::from_millis(200)))
        };
        settle();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(q.try_get(), Ok(1));
        assert_eq!(q.len(), 1);
        assert!(matches!(p.join().unwrap(), Ok(())));
        assert_eq!(q.try_get(), Ok(2));
    })
}

// is_full / is_empty / len follow gevent's full() / empty() / qsize():
// an item a woken getter will take still counts.
#[test]
fn c08_len_full_empty_count_items_until_taken() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(1));
        let log = Log::default();
        let g = getter(&q, &log, "g");
        settle();
        assert!(q.is_empty() && !q.is_full());
        q.put(1).unwrap();
        assert_eq!(q.len(), 1);
        assert!(!q.is_empty() && q.is_full());
        assert!(matches!(q.try_put(2), Err(TryPutError::Full(2))));
        g.join().unwrap();
        assert!(q.is_empty() && !q.is_full());
        assert_eq!(log.take(), ["g:Some(1)"]);
    })
}

/// Conservation, capacity and lost wake-up checks for any queue kind.
macro_rules! stress_kind {
    ($name:ident, $Q:ident, $cap:expr, $seed:expr) => {
        #[test]
        fn $name() {
            bounded(|| {
                quiet();
                for round in 0..8u64 {
                    let cap: usize = $cap;
                    let q = Rc::new($Q::<u32>::bounded(cap));
                    let taken: Rc<RefCell<Vec<u32>>> = Rc::default();
                    let mut accepted = Vec::new();
                    let mut rng = Rng($seed + round * 0x1234_5678_9ABC);
                    let mut gs: Vec<Greenlet<()>> = Vec::new();
                    let mut ps: Vec<Greenlet<Option<u32>>> = Vec::new();
                    let mut next = 0u32;
                    for step in 0..300 {
                        match rng.below(9) {
                            0..=2 => {
                                let q = q.clone();
                                let taken = taken.clone();
                                gs.push(spawn(move || {
                                    while let Some(v) = q.get() {
                                        taken.borrow_mut().push(v);
                                        if v % 3 == 0 {
                                            yield_now();
                                        }
                                    }
                                }));
                            }
                            3 | 4 => {
                                next += 1;
                                let v = (next * 7919) % 1000;
                                let q = q.clone();
                                ps.push(spawn(move || q.put(v).ok().map(|()| v)));
                            }
                            5 => {
                                if let Ok(v) = q.try_get() {
                                    taken.borrow_mut().push(v);
                                }
                            }
                            6 if !gs.is_empty() => {
                                let i = rng.below(gs.len() as u64) as usize;
                                gs.swap_remove(i).kill_nowait();
                            }
                            _ => {
                                for _ in 0..rng.below(3) {
                                    yield_now();
                                }
                            }
                        }
                        if step % 5 == 0 {
                            settle();
                            assert!(q.len() <= cap, "round {round} step {step}: len {}", q.len());
                            assert!(
                                q.is_empty() || q.getters() == 0,
                                "round {round} step {step}: lost wake-up"
                            );
                            assert!(
                                q.len() == cap || q.putters() == 0,
                                "round {round} step {step}: putter stuck with room"
                            );
                        }
                    }
                    settle();
                    q.close();
                    for p in ps {
                        if let Some(v) = p.join().unwrap() {
                            accepted.push(v);
                        }
                    }
                    for g in gs {
                        g.join().unwrap();
                    }
                    while let Ok(v) = q.try_get() {
                        taken.borrow_mut().push(v);
                    }
                    let mut t = taken.take();
                    t.sort_unstable();
                    accepted.sort_unstable();
                    assert_eq!(t, accepted, "round {round}");
                }
            })
        }
    };
}

stress_kind!(e06_stress_lifo_bounded, LifoQueue, 2, 0xDEAD_BEEF);
stress_kind!(e07_stress_priority_bounded, PriorityQueue, 3, 0xFEED_F00D);
stress_kind!(e08_stress_joinable_bounded, JoinableQueue, 1, 0xCAFE_BABE);

// A channel item handed to a getter that is killed after close(): kept
// (past the bound, as documented), drained by the next get, then None.
#[test]
fn b08_channel_handed_item_survives_close_and_kill() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let g = {
            let ch = ch.clone();
            spawn(move || ch.get())
        };
        settle();
        ch.try_put(3).unwrap();
        ch.close();
        g.kill();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch.get(), Some(3));
        assert_eq!(ch.get(), None);
        assert_eq!(ch.try_get(), Err(TryGetError::Closed));
    })
}

// A channel put from a greenlet whose woken getter is killed before it
// ran: the put waits on, item in hand (as gevent's), for the next get.
#[test]
fn b09_channel_put_then_woken_getter_killed() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let g = Rc::new({
            let ch = ch.clone();
            spawn(move || ch.get())
        });
        settle(); // the getter parks
        let p = {
            let ch = ch.clone();
            spawn(move || ch.put(8).is_ok())
        };
        // ready after p, so before the getter p's put wakes
        let killer = {
            let g = g.clone();
            spawn(move || g.kill_nowait())
        };
        killer.join().unwrap();
        yield_until("getter dead", || g.is_dead());
        let g = Rc::try_unwrap(g).ok().unwrap();
        assert!(g.join().is_err(), "killed before it ran");
        assert!(!p.is_dead(), "the put waits for a getter");
        assert_eq!(ch.len(), 0);
        assert_eq!(ch.putters(), 1);
        assert_eq!(ch.try_get(), Ok(8));
        assert!(p.join().unwrap());
        assert!(ch.is_empty());
    })
}
