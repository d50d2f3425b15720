//! Adversarial probes, round 9 (see the module's tests).
//!
//! Randomized, model-checked scenarios over `sylvan::sync` and
//! `sylvan::pool`: a fixed-seed xorshift drives several greenlets doing
//! random operations (plain, try, timed, under a `Timeout`), kills and
//! closes, and each run is checked against a small model.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, JoinableQueue, LifoQueue, Mutex, PriorityQueue,
    Queue, Semaphore, TryGetError, TryPutError,
};
use sylvan::{Greenlet, Waitable};

use crate::util::{bounded, quiet};

/// xorshift64*, fixed seeds.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        if r.0 == 0 {
            r.0 = 1;
        }
        for _ in 0..4 {
            r.next();
        }
        r
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    /// A short pause: mostly a yield, now and then 1-2 ms.
    fn pause(&mut self) {
        match self.below(10) {
            0 => sylvan::sleep(Duration::from_millis(1 + self.below(2))),
            1 => sylvan::sleep(Duration::ZERO),
            _ => sylvan::yield_now(),
        }
    }
    /// A short timeout for the timed variants: 0-2 ms.
    fn short(&mut self) -> Duration {
        Duration::from_micros(self.below(2000))
    }
}

/// Checks that nothing is left parked or alive on this hub.
fn assert_hub_quiet(what: &str) {
    // Let killed greenlets finish their cleanup.
    for _ in 0..4 {
        sylvan::yield_now();
    }
    // And one turn of the loop: a greenlet killed while another throw was
    // queued for it leaves a follow-up timer, due at once, that the next
    // turn drops (a no-op once the greenlet is dead).
    sylvan::sleep(Duration::from_millis(1));
    let s = sylvan::stats();
    assert_eq!(s.alive, 0, "{what}: greenlets still alive: {s:?}");
    // Only the timer of `bounded` is left.
    assert_eq!(s.timers, 1, "{what}: timers left armed: {s:?}");
    assert_eq!(s.ready, 0, "{what}: ready entries left: {s:?}");
}

// ---------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------

/// The operations every queue kind shares, over `u64` items.
trait Q {
    fn put(&self, v: u64) -> Result<(), u64>;
    fn try_put(&self, v: u64) -> Result<(), u64>;
    fn put_timeout(&self, v: u64, d: Duration) -> Result<(), u64>;
    fn get(&self) -> Option<u64>;
    fn try_get(&self) -> Result<u64, TryGetError>;
    fn get_timeout(&self, d: Duration) -> Result<u64, TryGetError>;
    fn close(&self);
    fn len(&self) -> usize;
    fn cap(&self) -> Option<usize>;
    fn waiters(&self) -> (usize, usize);
    fn task_done(&self) {}
    fn unfinished(&self) -> u64 {
        0
    }
    fn join_timeout(&self, _d: Option<Duration>) -> bool {
        true
    }
}

fn put_err(e: TryPutError<u64>) -> u64 {
    e.into_inner()
}

macro_rules! impl_q {
    ($t:ty) => {
        impl Q for $t {
            fn put(&self, v: u64) -> Result<(), u64> {
                <$t>::put(self, v).map_err(|e| e.0)
            }
            fn try_put(&self, v: u64) -> Result<(), u64> {
                <$t>::try_put(self, v).map_err(put_err)
            }
            fn put_timeout(&self, v: u64, d: Duration) -> Result<(), u64> {
                <$t>::put_timeout(self, v, d).map_err(put_err)
            }
            fn get(&self) -> Option<u64> {
                <$t>::get(self)
            }
            fn try_get(&self) -> Result<u64, TryGetError> {
                <$t>::try_get(self)
            }
            fn get_timeout(&self, d: Duration) -> Result<u64, TryGetError> {
                <$t>::get_timeout(self, d)
            }
            fn close(&self) {
                <$t>::close(self)
            }
            fn len(&self) -> usize {
                <$t>::len(self)
            }
            fn cap(&self) -> Option<usize> {
                <$t>::capacity(self)
            }
            fn waiters(&self) -> (usize, usize) {
                (<$t>::getters(self), <$t>::putters(self))
            }
            impl_q!(@extra $t);
        }
    };
    (@extra JoinableQueue<u64>) => {
        fn task_done(&self) {
            JoinableQueue::task_done(self)
        }
        fn unfinished(&self) -> u64 {
            JoinableQueue::unfinished(self)
        }
        fn join_timeout(&self, d: Option<Duration>) -> bool {
            match d {
                Some(d) => JoinableQueue::join_timeout(self, d),
                None => {
                    JoinableQueue::join(self);
                    true
                }
            }
        }
    };
    (@extra $t:ty) => {};
}

impl_q!(Queue<u64>);
impl_q!(LifoQueue<u64>);
impl_q!(PriorityQueue<u64>);
impl_q!(Channel<u64>);
impl_q!(JoinableQueue<u64>);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Order {
    /// FIFO per producer, as each consumer sees it and in the final drain.
    Fifo,
    /// Smallest first in the final drain.
    Smallest,
    /// No order checked.
    Any,
}

const PROD: u64 = 1_000_000;

#[derive(Default)]
struct QModel {
    /// Items whose put returned `Ok`.
    accepted: HashSet<u64>,
    /// Items whose put never returned (killed or unwound by a timeout).
    uncertain: HashSet<u64>,
    /// Items handed back by a failed put.
    returned: HashSet<u64>,
    /// Every item a get returned, in order.
    got: Vec<u64>,
    /// Per consumer, the items it got.
    per_consumer: Vec<Vec<u64>>,
}

struct QScenario {
    q: Rc<dyn Q>,
    order: Order,
    producers: usize,
    consumers: usize,
    items_per_producer: u64,
    main_steps: usize,
    kills: bool,
    early_close: bool,
}

fn check_len(q: &dyn Q, ctx: &str) {
    if let Some(cap) = q.cap() {
        // A rendezvous keeps an item whose getter was killed before it ran
        // (documented): only bounded buffers are checked.
        if cap > 0 {
            assert!(q.len() <= cap, "{ctx}: len {} > capacity {cap}", q.len());
        }
    }
}

fn producer(q: Rc<dyn Q>, m: Rc<RefCell<QModel>>, id: u64, n: u64, seed: u64) -> impl FnOnce() {
    move || {
        let mut rng = Rng::new(seed);
        for seq in 0..n {
            let v = id * PROD + seq;
            m.borrow_mut().uncertain.insert(v);
            let r = match rng.below(5) {
                0 => q.put(v),
                1 => q.try_put(v),
                2 => q.put_timeout(v, rng.short()),
                3 => match sylvan::with_timeout(rng.short(), || q.put(v)) {
                    Ok(r) => r,
                    // Unwound: the item may or may not have been taken.
                    Err(_) => {
                        check_len(&*q, "producer");
                        rng.pause();
                        continue;
                    }
                },
                _ => {
                    rng.pause();
                    q.put(v)
                }
            };
            {
                let mut m = m.borrow_mut();
                m.uncertain.remove(&v);
                match r {
                    Ok(()) => assert!(m.accepted.insert(v)),
                    Err(back) => {
                        assert_eq!(back, v, "a failed put handed back another item");
                        assert!(m.returned.insert(v));
                    }
                }
            }
            check_len(&*q, "producer");
            if rng.chance(30) {
                rng.pause();
            }
        }
    }
}

fn consumer(q: Rc<dyn Q>, m: Rc<RefCell<QModel>>, c: usize, seed: u64) -> impl FnOnce() {
    move || {
        let mut rng = Rng::new(seed);
        loop {
            let r = match rng.below(5) {
                0 => q.get().ok_or(TryGetError::Closed),
                1 => q.try_get(),
                2 => q.get_timeout(rng.short()),
                3 => match sylvan::with_timeout(rng.short(), || q.get()) {
                    Ok(r) => r.ok_or(TryGetError::Closed),
                    Err(_) => Err(TryGetError::Empty),
                },
                _ => {
                    rng.pause();
                    q.try_get()
                }
            };
            match r {
                Ok(v) => {
                    {
                        let mut m = m.borrow_mut();
                        m.got.push(v);
                        m.per_consumer[c].push(v);
                    }
                    q.task_done();
                }
                Err(TryGetError::Closed) => return,
                Err(TryGetError::Empty) => {}
            }
            check_len(&*q, "consumer");
            if rng.chance(30) {
                rng.pause();
            }
        }
    }
}

fn run_queue_scenario(sc: QScenario, seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let q = sc.q.clone();
    let m = Rc::new(RefCell::new(QModel {
        per_consumer: vec![Vec::new(); sc.consumers],
        ..QModel::default()
    }));
    let mut workers: Vec<Greenlet<()>> = Vec::new();
    // Interleave producers and consumers in a seed-chosen order.
    let (mut p, mut c) = (0, 0);
    while p < sc.producers || c < sc.consumers {
        if c >= sc.consumers || (p < sc.producers && rng.chance(50)) {
            let s = rng.next();
            workers.push(sylvan::spawn(producer(
                q.clone(),
                m.clone(),
                p as u64 + 1,
                sc.items_per_producer,
                s,
            )));
            p += 1;
        } else {
            let s = rng.next();
            workers.push(sylvan::spawn(consumer(q.clone(), m.clone(), c, s)));
            c += 1;
        }
    }
    // A joiner on a JoinableQueue: whenever its join returns true, nothing
    // is unfinished.
    let joiner = {
        let q = q.clone();
        let s = rng.next();
        sylvan::spawn(move || {
            let mut rng = Rng::new(s);
            let mut joined = 0;
            loop {
                let d = if rng.chance(50) {
                    None
                } else {
                    Some(rng.short())
                };
                if q.join_timeout(d) {
                    assert_eq!(q.unfinished(), 0, "join returned with unfinished items");
                    joined += 1;
                    if joined > 3 {
                        return;
                    }
                }
                rng.pause();
            }
        })
    };
    let mut closed = false;
    for _ in 0..sc.main_steps {
        check_len(&*q, &ctx);
        match rng.below(12) {
            0 if sc.kills => {
                let w = &workers[rng.below(workers.len() as u64) as usize];
                if rng.chance(50) {
                    w.kill();
                } else {
                    w.kill_nowait();
                }
            }
            1 if sc.early_close && !closed && rng.chance(20) => {
                q.close();
                closed = true;
            }
            _ => rng.pause(),
        }
    }
    // Let producers finish (or be released by close).
    for w in &workers {
        if rng.chance(50) {
            w.wait(Some(Duration::from_millis(2)));
        }
    }
    q.close();
    for w in workers {
        if let Err(e) = w.join() {
            assert!(e.is_killed(), "{ctx}: a worker failed: {e:?}");
        }
    }
    check_len(&*q, &ctx);
    let mut drained = Vec::new();
    loop {
        match q.try_get() {
            Ok(v) => {
                drained.push(v);
                q.task_done();
            }
            Err(TryGetError::Closed) => break,
            Err(TryGetError::Empty) => panic!("{ctx}: closed queue reports Empty"),
        }
    }
    assert_eq!(q.waiters(), (0, 0), "{ctx}: waiters left");
    assert_eq!(q.unfinished(), 0, "{ctx}: unfinished after all done");
    let jr = joiner.join();
    assert!(jr.is_ok(), "{ctx}: joiner: {jr:?}");

    let m = m.borrow();
    let mut seen = HashSet::new();
    for v in m.got.iter().chain(&drained) {
        assert!(seen.insert(*v), "{ctx}: item {v} delivered twice");
        assert!(
            m.accepted.contains(v) || m.uncertain.contains(v),
            "{ctx}: item {v} delivered but never accepted (returned: {})",
            m.returned.contains(v)
        );
    }
    for v in &m.accepted {
        assert!(seen.contains(v), "{ctx}: accepted item {v} lost");
    }
    let producer_order_ok = |seq: &[u64]| {
        let mut last = std::collections::HashMap::new();
        for &v in seq {
            let (p, s) = (v / PROD, v % PROD);
            if let Some(&prev) = last.get(&p)
                && s < prev
            {
                return Err(format!("producer {p}: {s} after {prev} in {seq:?}"));
            }
            last.insert(p, s);
        }
        Ok(())
    };
    match sc.order {
        Order::Fifo => {
            for (c, seq) in m.per_consumer.iter().enumerate() {
                if let Err(e) = producer_order_ok(seq) {
                    panic!("{ctx}: consumer {c} out of order: {e}");
                }
            }
            if let Err(e) = producer_order_ok(&drained) {
                panic!("{ctx}: drain out of order: {e}");
            }
        }
        Order::Smallest => {
            assert!(
                drained.windows(2).all(|w| w[0] <= w[1]),
                "{ctx}: priority drain not sorted: {drained:?}"
            );
        }
        Order::Any => {}
    }
    drop(m);
    assert_hub_quiet(&ctx);
}

/// Runs `run` for the fixed `seeds`, all under one `bounded`.
/// `SYLVAN_P9_SEEDS=<count>` runs seeds `first * 1000..first * 1000 + count`
/// instead, and `SYLVAN_P9_SEEDS=<a>..<b>` the seeds `a..b` (to rerun one),
/// each under its own `bounded`, for a longer hunt by hand.
fn each_seed(first: u64, seeds: std::ops::Range<u64>, mut run: impl FnMut(u64)) {
    let Ok(v) = std::env::var("SYLVAN_P9_SEEDS") else {
        return bounded(|| {
            quiet();
            for seed in seeds {
                run(seed);
            }
        });
    };
    let range = match v.split_once("..") {
        Some((a, b)) => a
            .trim()
            .parse::<u64>()
            .ok()
            .zip(b.trim().parse::<u64>().ok()),
        None => v
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| (first * 1000, first * 1000 + k)),
    };
    let (a, b) = range.unwrap_or_else(|| panic!("SYLVAN_P9_SEEDS={v:?}: a count or a..b"));
    quiet();
    for seed in a..b {
        bounded(|| run(seed));
    }
}

fn queue_seeds(first: u64, seeds: std::ops::Range<u64>, make: impl Fn(&mut Rng) -> QScenario) {
    each_seed(first, seeds, |seed| {
        let mut rng = Rng::new(seed ^ 0xABCD);
        let sc = make(&mut rng);
        run_queue_scenario(sc, seed);
    })
}

fn small_cap(rng: &mut Rng) -> usize {
    1 + rng.below(3) as usize
}

#[test]
fn random_bounded_queue_no_kills() {
    queue_seeds(1, 0..100, |rng| QScenario {
        q: Rc::new(Queue::<u64>::bounded(small_cap(rng))),
        order: Order::Fifo,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 6,
        main_steps: 10,
        kills: false,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_bounded_queue_with_kills() {
    queue_seeds(2, 0..200, |rng| QScenario {
        q: Rc::new(Queue::<u64>::bounded(small_cap(rng))),
        order: Order::Any,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 6,
        main_steps: 12,
        kills: true,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_unbounded_queue_with_kills() {
    queue_seeds(3, 0..200, |rng| QScenario {
        q: Rc::new(Queue::<u64>::unbounded()),
        order: Order::Any,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 6,
        main_steps: 12,
        kills: true,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_channel_with_kills() {
    queue_seeds(4, 0..200, |rng| QScenario {
        q: Rc::new(Channel::<u64>::new()),
        order: Order::Any,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 5,
        main_steps: 12,
        kills: true,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_channel_no_kills_fifo() {
    queue_seeds(5, 0..100, |rng| QScenario {
        q: Rc::new(Channel::<u64>::new()),
        order: Order::Fifo,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 5,
        main_steps: 10,
        kills: false,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_joinable_queue_with_kills() {
    queue_seeds(6, 0..200, |rng| QScenario {
        q: if rng.chance(50) {
            Rc::new(JoinableQueue::<u64>::bounded(small_cap(rng)))
        } else {
            Rc::new(JoinableQueue::<u64>::unbounded())
        },
        order: Order::Any,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 6,
        main_steps: 12,
        kills: true,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_priority_queue_with_kills() {
    queue_seeds(7, 0..200, |rng| QScenario {
        q: if rng.chance(50) {
            Rc::new(PriorityQueue::<u64>::bounded(small_cap(rng)))
        } else {
            Rc::new(PriorityQueue::<u64>::unbounded())
        },
        order: Order::Smallest,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 6,
        main_steps: 12,
        kills: true,
        early_close: rng.chance(30),
    });
}

#[test]
fn random_lifo_queue_with_kills() {
    queue_seeds(8, 0..200, |rng| QScenario {
        q: if rng.chance(50) {
            Rc::new(LifoQueue::<u64>::bounded(small_cap(rng)))
        } else {
            Rc::new(LifoQueue::<u64>::unbounded())
        },
        order: Order::Any,
        producers: 1 + rng.below(3) as usize,
        consumers: 1 + rng.below(3) as usize,
        items_per_producer: 6,
        main_steps: 12,
        kills: true,
        early_close: rng.chance(30),
    });
}

/// A getter is woken for an item and killed before it runs, after main got
/// from the queue: main must see the producer's items in order (once, the
/// item handed to the getter came back after a later one was got).
#[test]
fn fifo_restore_after_later_item_was_got() {
    bounded(|| {
        quiet();
        let q = Rc::new(Queue::<u64>::unbounded());
        let g = {
            let q = q.clone();
            sylvan::spawn(move || q.get())
        };
        sylvan::yield_now();
        q.put(1).unwrap(); // handed to the parked getter
        q.put(2).unwrap(); // buffered
        let first = q.try_get().unwrap();
        g.kill_nowait();
        assert!(g.join().unwrap_err().is_killed());
        let second = q.try_get().unwrap();
        assert_eq!([first, second], [1, 2], "one consumer saw 2 before 1");
    })
}

/// The LIFO flavour of the same restore: items 1 then 2 handed to two
/// getters both killed before they run; LIFO gives the newest (2) first.
#[test]
fn lifo_restore_of_two_killed_getters_keeps_order() {
    bounded(|| {
        quiet();
        let q = Rc::new(LifoQueue::<u64>::unbounded());
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                sylvan::spawn(move || q.get())
            })
            .collect();
        sylvan::yield_now();
        q.put(1).unwrap();
        q.put(2).unwrap();
        for g in &getters {
            g.kill_nowait();
        }
        for g in getters {
            assert!(g.join().unwrap_err().is_killed());
        }
        let got: Vec<u64> = std::iter::from_fn(|| q.try_get().ok()).collect();
        assert_eq!(got, [2, 1], "restored items out of LIFO order");
    })
}

/// Two getters are handed one item each, then both are killed before they
/// run, the first one first: the items go back to the buffer, and the queue
/// must still give them out oldest first.
#[test]
fn fifo_restore_of_two_killed_getters_keeps_order() {
    bounded(|| {
        quiet();
        let q = Rc::new(Queue::<u64>::unbounded());
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                sylvan::spawn(move || q.get())
            })
            .collect();
        sylvan::yield_now();
        assert_eq!(q.getters(), 2);
        q.put(1).unwrap();
        q.put(2).unwrap();
        // Both killed before either runs (kill_nowait: a kill that waited
        // would let the second getter run meanwhile).
        for g in &getters {
            g.kill_nowait();
        }
        for g in getters {
            assert!(g.join().unwrap_err().is_killed());
        }
        let got: Vec<u64> = std::iter::from_fn(|| q.try_get().ok()).collect();
        assert_eq!(got, [1, 2], "restored items out of FIFO order");
        assert_hub_quiet("restore");
    })
}

// ---------------------------------------------------------------------
// Semaphores
// ---------------------------------------------------------------------

/// Counts holders while alive (dropped before the permit it stands for).
struct Hold<'a> {
    now: &'a Cell<usize>,
}

impl<'a> Hold<'a> {
    fn new(now: &'a Cell<usize>, max: usize, ctx: &str) -> Hold<'a> {
        now.set(now.get() + 1);
        assert!(now.get() <= max, "{ctx}: {} holders > {max}", now.get());
        Hold { now }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.now.set(self.now.get() - 1);
    }
}

enum Sem {
    Plain(Semaphore),
    Bounded(BoundedSemaphore),
}

impl Sem {
    fn acquire(&self) -> sylvan::sync::SemaphoreGuard<'_> {
        match self {
            Sem::Plain(s) => s.acquire(),
            Sem::Bounded(s) => s.acquire(),
        }
    }
    fn try_acquire(&self) -> Option<sylvan::sync::SemaphoreGuard<'_>> {
        match self {
            Sem::Plain(s) => s.try_acquire(),
            Sem::Bounded(s) => s.try_acquire(),
        }
    }
    fn acquire_timeout(&self, d: Duration) -> Option<sylvan::sync::SemaphoreGuard<'_>> {
        match self {
            Sem::Plain(s) => s.acquire_timeout(d),
            Sem::Bounded(s) => s.acquire_timeout(d),
        }
    }
    fn available(&self) -> usize {
        match self {
            Sem::Plain(s) => s.available(),
            Sem::Bounded(s) => s.available(),
        }
    }
    fn waiters(&self) -> usize {
        match self {
            Sem::Plain(s) => s.waiters(),
            Sem::Bounded(s) => s.waiters(),
        }
    }
}

fn run_sem_scenario(seed: u64, bounded_sem: bool) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let n = 1 + rng.below(3) as usize;
    let sem = Rc::new(if bounded_sem {
        Sem::Bounded(BoundedSemaphore::new(n))
    } else {
        Sem::Plain(Semaphore::new(n))
    });
    let now = Rc::new(Cell::new(0usize));
    let acquired = Rc::new(Cell::new(0u64));
    let workers: Vec<Greenlet<()>> = (0..2 + rng.below(4))
        .map(|_| {
            let (sem, now, acquired) = (sem.clone(), now.clone(), acquired.clone());
            let s = rng.next();
            let ctx = ctx.clone();
            sylvan::spawn(move || {
                let mut rng = Rng::new(s);
                for _ in 0..6 {
                    let g = match rng.below(4) {
                        0 => Some(sem.acquire()),
                        1 => sem.try_acquire(),
                        2 => sem.acquire_timeout(rng.short()),
                        _ => sylvan::with_timeout(rng.short(), || sem.acquire()).ok(),
                    };
                    if let Some(g) = g {
                        acquired.set(acquired.get() + 1);
                        let h = Hold::new(&now, n, &ctx);
                        rng.pause();
                        if rng.chance(30) {
                            rng.pause();
                        }
                        drop(h);
                        drop(g);
                    } else {
                        rng.pause();
                    }
                }
            })
        })
        .collect();
    for _ in 0..12 {
        assert!(now.get() <= n);
        assert!(sem.available() + now.get() <= n, "{ctx}: permits created");
        match rng.below(8) {
            0 => {
                let w = &workers[rng.below(workers.len() as u64) as usize];
                if rng.chance(50) {
                    w.kill();
                } else {
                    w.kill_nowait();
                }
            }
            1 => {
                if let Sem::Bounded(b) = &*sem
                    && b.available() == n
                {
                    assert!(b.release().is_err(), "{ctx}: release past the bound");
                    assert_eq!(b.available(), n);
                }
            }
            _ => rng.pause(),
        }
    }
    for w in workers {
        if let Err(e) = w.join() {
            assert!(e.is_killed(), "{ctx}: worker failed: {e:?}");
        }
    }
    assert_eq!(now.get(), 0);
    assert_eq!(sem.available(), n, "{ctx}: permits not conserved");
    assert_eq!(sem.waiters(), 0, "{ctx}: waiters left");
    if let Sem::Bounded(b) = &*sem {
        assert!(b.release().is_err(), "{ctx}: release past the bound");
        assert_eq!(b.available(), n);
    }
    assert!(acquired.get() > 0 || seed > 0 || n == 0);
    assert_hub_quiet(&ctx);
}

#[test]
fn random_semaphore_permits_conserved() {
    each_seed(9, 0..200, |seed| run_sem_scenario(seed, false));
}

#[test]
fn random_bounded_semaphore_permits_conserved() {
    each_seed(10, 0..200, |seed| run_sem_scenario(seed, true));
}

// ---------------------------------------------------------------------
// Mutex
// ---------------------------------------------------------------------

fn run_mutex_scenario(seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let m = Rc::new(Mutex::new(0u64));
    let inside = Rc::new(Cell::new(0usize));
    let tickets = Rc::new(Cell::new(0u64));
    // Tickets of the acquisitions, in the order they happened.
    let order = Rc::new(RefCell::new(Vec::new()));
    let workers: Vec<Greenlet<()>> = (0..2 + rng.below(4))
        .map(|_| {
            let (m, inside, tickets, order) =
                (m.clone(), inside.clone(), tickets.clone(), order.clone());
            let s = rng.next();
            let ctx = ctx.clone();
            sylvan::spawn(move || {
                let mut rng = Rng::new(s);
                for _ in 0..6 {
                    let t = tickets.get();
                    tickets.set(t + 1);
                    let g = match rng.below(4) {
                        0 => Some(m.lock()),
                        1 => m.try_lock(),
                        2 => m.lock_timeout(rng.short()),
                        _ => sylvan::with_timeout(rng.short(), || m.lock()).ok(),
                    };
                    if let Some(mut g) = g {
                        order.borrow_mut().push(t);
                        let h = Hold::new(&inside, 1, &ctx);
                        *g += 1;
                        rng.pause();
                        drop(h);
                        drop(g);
                    } else {
                        rng.pause();
                    }
                }
            })
        })
        .collect();
    for _ in 0..12 {
        match rng.below(8) {
            0 => {
                let w = &workers[rng.below(workers.len() as u64) as usize];
                if rng.chance(50) {
                    w.kill();
                } else {
                    w.kill_nowait();
                }
            }
            _ => rng.pause(),
        }
    }
    for w in workers {
        if let Err(e) = w.join() {
            assert!(e.is_killed(), "{ctx}: worker failed: {e:?}");
        }
    }
    assert!(!m.is_locked(), "{ctx}: lock left held");
    assert_eq!(m.waiters(), 0);
    let order = order.borrow();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{ctx}: lock not handed over FIFO: {order:?}"
    );
    assert_eq!(*m.try_lock().expect("lock usable") as usize, order.len());
    assert_hub_quiet(&ctx);
}

#[test]
fn random_mutex_exclusion_and_fifo() {
    each_seed(11, 0..200, run_mutex_scenario);
}

// ---------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------

fn run_pool_scenario(seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let n = 1 + rng.below(3) as usize;
    let pool = sylvan::pool::Pool::new(n);
    let running = Rc::new(Cell::new(0usize));
    let mut spawned: Vec<Greenlet<u64>> = Vec::new();
    for i in 0..10u64 {
        assert_eq!(
            pool.free_count() + pool.len(),
            n,
            "{ctx}: free_count {} + len {} != {n}",
            pool.free_count(),
            pool.len()
        );
        match rng.below(6) {
            0..=2 => {
                let running = running.clone();
                let s = rng.next();
                let ctx = ctx.clone();
                spawned.push(pool.spawn(move || {
                    let mut rng = Rng::new(s);
                    let _h = Hold::new(&running, n, &ctx);
                    rng.pause();
                    if rng.chance(20) {
                        panic!("task {i} fails");
                    }
                    rng.pause();
                    i
                }));
            }
            3 if !spawned.is_empty() => {
                let g = &spawned[rng.below(spawned.len() as u64) as usize];
                if rng.chance(50) {
                    g.kill();
                } else {
                    g.kill_nowait();
                }
            }
            _ => rng.pause(),
        }
    }
    if rng.chance(20) {
        pool.kill();
    }
    pool.join();
    assert_eq!(pool.len(), 0, "{ctx}");
    assert_eq!(pool.free_count(), n, "{ctx}: slots lost");
    for g in spawned {
        match g.join() {
            Ok(_) => {}
            Err(e) => assert!(e.is_killed() || e.is_panic(), "{ctx}: {e:?}"),
        }
    }
    // map: results in input order, panics and escaped timeouts in place.
    let items: Vec<u64> = (0..8).collect();
    let kinds: Vec<u64> = (0..8).map(|_| rng.below(5)).collect();
    let seeds: Vec<u64> = (0..8).map(|_| rng.next()).collect();
    let (running2, kinds2, ctx2) = (running.clone(), kinds.clone(), ctx.clone());
    let res = pool.map(items, move |i| {
        let mut rng = Rng::new(seeds[i as usize]);
        let _h = Hold::new(&running2, n, &ctx2);
        match kinds2[i as usize] {
            0 => panic!("item {i} fails"),
            1 => {
                // Escapes: the task ends as timed out.
                let _t = sylvan::Timeout::start(Duration::ZERO);
                sylvan::sleep(Duration::from_millis(50));
                unreachable!()
            }
            _ => {
                rng.pause();
                i * 10
            }
        }
    });
    assert_eq!(res.len(), 8, "{ctx}");
    for (i, r) in res.iter().enumerate() {
        match kinds[i] {
            0 => assert!(r.as_ref().is_err_and(|e| e.is_panic()), "{ctx}: {i}: {r:?}"),
            1 => assert!(
                r.as_ref().is_err_and(|e| e.is_timeout()),
                "{ctx}: {i}: {r:?}"
            ),
            _ => assert_eq!(r.as_ref().ok(), Some(&(i as u64 * 10)), "{ctx}: {i}"),
        }
    }
    assert_eq!(pool.free_count(), n, "{ctx}: slots lost after map");
    assert_eq!(pool.len(), 0);
    assert_hub_quiet(&ctx);
}

#[test]
fn random_pool_concurrency_and_slots() {
    each_seed(12, 0..150, run_pool_scenario);
}

// ---------------------------------------------------------------------
// wait / iwait over events, async results and greenlets
// ---------------------------------------------------------------------

fn run_wait_scenario(seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let k = 2 + rng.below(4) as usize;
    let events: Vec<Rc<Event>> = (0..k).map(|_| Rc::new(Event::new())).collect();
    let results: Vec<Rc<AsyncResult<u64>>> = (0..k).map(|_| Rc::new(AsyncResult::new())).collect();
    // Which objects will be made ready, and when.
    let will: Vec<bool> = (0..2 * k).map(|_| rng.chance(60)).collect();
    let ever = Rc::new(RefCell::new(vec![false; 2 * k]));
    let setters: Vec<Greenlet<()>> = (0..2 * k)
        .filter(|&i| will[i])
        .map(|i| {
            let ev = events.get(i).cloned();
            let ar = results.get(i.wrapping_sub(k)).cloned();
            let ever = ever.clone();
            let s = rng.next();
            sylvan::spawn(move || {
                let mut rng = Rng::new(s);
                rng.pause();
                ever.borrow_mut()[i] = true;
                if let Some(e) = ev {
                    e.set();
                } else if let Some(r) = ar {
                    if rng.chance(50) {
                        r.set(i as u64).unwrap();
                    } else {
                        r.fail(Rc::new(std::io::Error::other("x"))).unwrap();
                    }
                }
            })
        })
        .collect();
    let objs: Vec<&dyn Waitable> = events
        .iter()
        .map(|e| &**e as &dyn Waitable)
        .chain(results.iter().map(|r| &**r as &dyn Waitable))
        .collect();
    let ready_count = will.iter().filter(|&&w| w).count();
    let mut reported = Vec::new();
    // Partial waits with a timeout, then the rest without one.
    if rng.chance(50) {
        let t = rng.short();
        for i in sylvan::iwait(&objs, Some(t)) {
            reported.push(i);
        }
    }
    let want = ready_count - reported.iter().collect::<HashSet<_>>().len();
    let rest: Vec<usize> = objs
        .iter()
        .enumerate()
        .filter(|(i, _)| !reported.contains(i))
        .map(|(i, _)| i)
        .collect();
    let rest_objs: Vec<&dyn Waitable> = rest.iter().map(|&i| objs[i]).collect();
    for j in sylvan::wait(&rest_objs, None, Some(want)) {
        reported.push(rest[j]);
    }
    let set: HashSet<usize> = reported.iter().copied().collect();
    assert_eq!(set.len(), reported.len(), "{ctx}: duplicates {reported:?}");
    for &i in &reported {
        assert!(ever.borrow()[i], "{ctx}: {i} reported but never made ready");
        assert!(will[i]);
    }
    assert_eq!(set.len(), ready_count, "{ctx}: {reported:?} vs {will:?}");
    for g in &setters {
        assert!(g.wait(Some(Duration::from_millis(100))));
    }
    let gs: Vec<&dyn Waitable> = setters.iter().map(|g| g as &dyn Waitable).collect();
    let all: Vec<usize> = sylvan::iwait(&gs, None).collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, (0..setters.len()).collect::<Vec<_>>(), "{ctx}");
    for e in &events {
        assert_eq!(e.waiters(), 0, "{ctx}: event watchers left");
    }
    for r in &results {
        assert_eq!(r.waiters(), 0, "{ctx}: result watchers left");
    }
    drop(objs);
    for g in setters {
        g.join().unwrap();
    }
    assert_hub_quiet(&ctx);
}

#[test]
fn random_wait_iwait_reports_ready_once() {
    each_seed(13, 0..200, run_wait_scenario);
}

// ---------------------------------------------------------------------
// Pool: spawners that wait for slots, killed or timed out
// ---------------------------------------------------------------------

fn run_pool_spawners(seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let n = 1 + rng.below(3) as usize;
    let pool = sylvan::pool::Pool::new(n);
    let running = Rc::new(Cell::new(0usize));
    let tasks: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::default();
    let spawners: Vec<Greenlet<()>> = (0..2 + rng.below(3))
        .map(|_| {
            let (pool, running, tasks) = (pool.clone(), running.clone(), tasks.clone());
            let s = rng.next();
            let ctx = ctx.clone();
            sylvan::spawn(move || {
                let mut rng = Rng::new(s);
                for _ in 0..4 {
                    let task = {
                        let running = running.clone();
                        let s = rng.next();
                        let ctx = ctx.clone();
                        move || {
                            let mut rng = Rng::new(s);
                            let _h = Hold::new(&running, n, &ctx);
                            rng.pause();
                            rng.pause();
                        }
                    };
                    match rng.below(3) {
                        0 => {
                            let g = pool.spawn(task);
                            tasks.borrow_mut().push(g);
                        }
                        1 => {
                            if let Ok(g) = sylvan::with_timeout(rng.short(), || pool.spawn(task)) {
                                tasks.borrow_mut().push(g);
                            }
                        }
                        _ => {
                            let free = pool.wait_available(Some(rng.short()));
                            assert!(free <= n, "{ctx}: free {free} > {n}");
                        }
                    }
                    rng.pause();
                }
            })
        })
        .collect();
    for _ in 0..12 {
        assert!(
            pool.free_count() + pool.len() <= n,
            "{ctx}: free {} + len {} > {n}",
            pool.free_count(),
            pool.len()
        );
        match rng.below(6) {
            0 => {
                let w = &spawners[rng.below(spawners.len() as u64) as usize];
                if rng.chance(50) {
                    w.kill();
                } else {
                    w.kill_nowait();
                }
            }
            1 => {
                let tasks = tasks.borrow();
                if !tasks.is_empty() {
                    tasks[rng.below(tasks.len() as u64) as usize].kill_nowait();
                }
            }
            _ => rng.pause(),
        }
    }
    for w in spawners {
        if let Err(e) = w.join() {
            assert!(e.is_killed(), "{ctx}: spawner failed: {e:?}");
        }
    }
    pool.join();
    assert_eq!(pool.len(), 0, "{ctx}");
    assert_eq!(pool.free_count(), n, "{ctx}: slots lost");
    for g in tasks.borrow_mut().drain(..) {
        if let Err(e) = g.join() {
            assert!(e.is_killed(), "{ctx}: task failed: {e:?}");
        }
    }
    assert_eq!(running.get(), 0);
    assert_hub_quiet(&ctx);
}

#[test]
fn random_pool_spawners_killed_keep_slots() {
    each_seed(14, 0..200, run_pool_spawners);
}

fn run_imap_scenario(seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let n = 1 + rng.below(3) as usize;
    let pool = sylvan::pool::Pool::new(n);
    let running = Rc::new(Cell::new(0usize));
    let count = 3 + rng.below(6);
    let kinds: Rc<Vec<u64>> = Rc::new((0..count).map(|_| rng.below(5)).collect());
    let seeds: Rc<Vec<u64>> = Rc::new((0..count).map(|_| rng.next()).collect());
    let task = {
        let (running, kinds, seeds, ctx) =
            (running.clone(), kinds.clone(), seeds.clone(), ctx.clone());
        move |i: u64| {
            let mut rng = Rng::new(seeds[i as usize]);
            let _h = Hold::new(&running, n, &ctx);
            rng.pause();
            match kinds[i as usize] {
                0 => panic!("item {i} fails"),
                1 => {
                    let _t = sylvan::Timeout::start(Duration::ZERO);
                    sylvan::sleep(Duration::from_millis(50));
                    unreachable!()
                }
                _ => {
                    rng.pause();
                    i * 10
                }
            }
        }
    };
    // Now and then a greenlet kills the whole pool midway: any result may
    // then be "killed", but still in its place.
    let killer = rng.chance(30).then(|| {
        let (pool, s) = (pool.clone(), rng.next());
        sylvan::spawn(move || {
            let mut rng = Rng::new(s);
            rng.pause();
            rng.pause();
            pool.kill();
        })
    });
    let may_kill = killer.is_some();
    let check = |i: usize, r: &Result<u64, sylvan::Error>| match kinds[i] {
        _ if may_kill && r.as_ref().is_err_and(|e| e.is_killed()) => {}
        0 => assert!(r.as_ref().is_err_and(|e| e.is_panic()), "{ctx}: {i}: {r:?}"),
        1 => assert!(
            r.as_ref().is_err_and(|e| e.is_timeout()),
            "{ctx}: {i}: {r:?}"
        ),
        _ => assert_eq!(r.as_ref().ok(), Some(&(i as u64 * 10)), "{ctx}: {i}"),
    };
    let stop_after = if rng.chance(30) {
        rng.below(count) as usize
    } else {
        usize::MAX
    };
    if rng.chance(50) {
        let mut seen = 0;
        for (i, r) in pool.imap(0..count, task).enumerate() {
            check(i, &r);
            seen += 1;
            if seen > stop_after {
                break;
            }
        }
        assert!(
            seen == count as usize || seen > stop_after,
            "{ctx}: imap ended at {seen}"
        );
    } else {
        // Unordered: match each result to its item by value or by error.
        let mut oks = Vec::new();
        let mut errs = 0;
        let mut seen = 0;
        for r in pool.imap_unordered(0..count, task) {
            match r {
                Ok(v) => oks.push(v),
                Err(e) => {
                    assert!(
                        e.is_panic() || e.is_timeout() || (may_kill && e.is_killed()),
                        "{ctx}: {e:?}"
                    );
                    errs += 1;
                }
            }
            seen += 1;
            if seen > stop_after {
                break;
            }
        }
        let mut uniq = oks.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), oks.len(), "{ctx}: duplicates {oks:?}");
        for v in &oks {
            assert!(kinds[(*v / 10) as usize] >= 2, "{ctx}: {v}");
        }
        if stop_after == usize::MAX && !may_kill {
            assert_eq!(seen, count as usize, "{ctx}");
            let want_errs = kinds.iter().filter(|&&k| k < 2).count();
            assert_eq!(errs, want_errs, "{ctx}");
        }
    }
    if let Some(k) = killer {
        k.join().unwrap();
    }
    pool.join();
    assert_eq!(pool.len(), 0, "{ctx}");
    assert_eq!(pool.free_count(), n, "{ctx}: slots lost");
    assert_eq!(running.get(), 0);
    assert_hub_quiet(&ctx);
}

#[test]
fn random_pool_imap_in_order_and_slots() {
    each_seed(15, 0..200, run_imap_scenario);
}

// ---------------------------------------------------------------------
// Event and AsyncResult
// ---------------------------------------------------------------------

fn run_event_scenario(seed: u64) {
    let ctx = format!("seed {seed}");
    let mut rng = Rng::new(seed);
    let ev = Rc::new(Event::new());
    // Bumped by every set: a wait that returns true saw one, or found it
    // set when it began.
    let sets = Rc::new(Cell::new(0u64));
    let ar: Rc<AsyncResult<u64>> = Rc::new(AsyncResult::new());
    let waiters: Vec<Greenlet<()>> = (0..2 + rng.below(4))
        .map(|_| {
            let (ev, sets, ar) = (ev.clone(), sets.clone(), ar.clone());
            let s = rng.next();
            let ctx = ctx.clone();
            sylvan::spawn(move || {
                let mut rng = Rng::new(s);
                for _ in 0..5 {
                    let (was_set, before) = (ev.is_set(), sets.get());
                    let ok = match rng.below(4) {
                        0 => ev.wait(),
                        1 => ev.wait_timeout(rng.short()),
                        2 => sylvan::with_timeout(rng.short(), || ev.wait()).unwrap_or(false),
                        _ => match ar.get_timeout(rng.short()) {
                            Ok(v) => {
                                assert_eq!(v, 7, "{ctx}");
                                continue;
                            }
                            Err(_) => false,
                        },
                    };
                    if ok {
                        assert!(
                            was_set || sets.get() > before,
                            "{ctx}: wait returned true with no set"
                        );
                    }
                    rng.pause();
                }
            })
        })
        .collect();
    for _ in 0..12 {
        match rng.below(8) {
            0 => {
                ev.set();
                sets.set(sets.get() + 1);
            }
            1 => ev.clear(),
            2 => {
                let w = &waiters[rng.below(waiters.len() as u64) as usize];
                if rng.chance(50) {
                    w.kill();
                } else {
                    w.kill_nowait();
                }
            }
            3 => {
                if ar.is_ready() {
                    assert!(ar.set(8).is_err(), "{ctx}: set twice");
                } else {
                    ar.set(7).unwrap();
                }
            }
            _ => rng.pause(),
        }
    }
    ev.set();
    sets.set(sets.get() + 1);
    if !ar.is_ready() {
        ar.set(7).unwrap();
    }
    for w in waiters {
        if let Err(e) = w.join() {
            assert!(e.is_killed(), "{ctx}: waiter failed: {e:?}");
        }
    }
    assert_eq!(ev.waiters(), 0, "{ctx}: event waiters left");
    assert_eq!(ar.waiters(), 0, "{ctx}: result waiters left");
    assert_eq!(ar.get().ok(), Some(7));
    assert_hub_quiet(&ctx);
}

#[test]
fn random_event_and_async_result() {
    each_seed(16, 0..200, run_event_scenario);
}

// ---------------------------------------------------------------------
// A put made while unwinding, with a getter waiting
// ---------------------------------------------------------------------

/// Puts its item from its destructor (so while its greenlet unwinds).
struct PutOnDrop(Rc<Queue<u64>>, u64);

impl Drop for PutOnDrop {
    fn drop(&mut self) {
        assert!(std::thread::panicking());
        self.0.put(self.1).unwrap();
    }
}

/// `bounded(1)` with getter A handed item 1 (not run yet) and getter B
/// parked. A greenlet killed before A runs puts 2 from a destructor: the
/// queue is full (A's item holds the room), so the put is accepted past the
/// bound. B waits for an item while 2 is buffered: it must get it.
#[test]
fn put_while_unwinding_reaches_waiting_getter() {
    bounded(|| {
        quiet();
        let q = Rc::new(Queue::<u64>::bounded(1));
        let getters: Vec<Greenlet<Option<u64>>> = (0..2)
            .map(|_| {
                let q = q.clone();
                sylvan::spawn(move || q.get())
            })
            .collect();
        let dropper = {
            let q = q.clone();
            sylvan::spawn(move || {
                let _p = PutOnDrop(q, 2);
                sylvan::sleep(Duration::from_secs(60));
            })
        };
        sylvan::yield_now();
        assert_eq!(q.getters(), 2);
        // The dropper unwinds first, then getter A runs.
        dropper.kill_nowait();
        q.put(1).unwrap();
        assert!(dropper.join().unwrap_err().is_killed());
        for _ in 0..20 {
            sylvan::yield_now();
        }
        let (len, waiting) = (q.len(), q.getters());
        // Unpark B whatever happened, so the test ends either way.
        q.close();
        let got: Vec<Option<u64>> = getters.into_iter().map(|g| g.join().unwrap()).collect();
        assert_eq!(
            (len, waiting),
            (0, 0),
            "item 2 buffered while a getter waits (got {got:?})"
        );
        assert_eq!(got, [Some(1), Some(2)]);
    })
}

// ---------------------------------------------------------------------
// BoundedSemaphore: a permit handed to a waiter that has not run yet
// ---------------------------------------------------------------------

/// `BoundedSemaphore::new(1)`: the holder's release hands the permit to a
/// parked waiter (not run yet). Every permit is then taken, so a further
/// `release` is past the bound and must fail, as in gevent (whose counter
/// still holds the permit until the waiter runs).
#[test]
fn bounded_semaphore_release_counts_handed_permit() {
    bounded(|| {
        quiet();
        let b = Rc::new(BoundedSemaphore::new(1));
        let holders = Rc::new(Cell::new(0usize));
        let max = Rc::new(Cell::new(0usize));
        let g = b.acquire();
        let waiter = {
            let (b, holders, max) = (b.clone(), holders.clone(), max.clone());
            sylvan::spawn(move || {
                let p = b.acquire();
                holders.set(holders.get() + 1);
                max.set(max.get().max(holders.get()));
                sylvan::sleep(Duration::from_millis(2));
                holders.set(holders.get() - 1);
                p.forget();
                let _ = b.release();
            })
        };
        sylvan::yield_now();
        assert_eq!(b.waiters(), 1);
        drop(g); // handed to the waiter
        let extra = b.release();
        // A second holder while the waiter holds the only permit?
        let other = {
            let (b, holders, max) = (b.clone(), holders.clone(), max.clone());
            sylvan::spawn(move || {
                sylvan::yield_now();
                if let Some(p) = b.try_acquire() {
                    holders.set(holders.get() + 1);
                    max.set(max.get().max(holders.get()));
                    sylvan::sleep(Duration::from_millis(1));
                    holders.set(holders.get() - 1);
                    p.forget();
                }
            })
        };
        let _ = waiter.join();
        let _ = other.join();
        assert!(
            extra.is_err(),
            "release past the bound accepted (then {} holders at once)",
            max.get()
        );
        assert_eq!(max.get(), 1, "two holders of a bound-1 semaphore");
    })
}

// ---------------------------------------------------------------------
// Pool kills from odd places
// ---------------------------------------------------------------------

/// A member kills its own pool: the others die, then itself; the pool
/// ends empty with every slot free.
#[test]
fn pool_kill_from_a_member() {
    each_seed(17, 0..50, |seed| {
        let mut rng = Rng::new(seed);
        let n = 2 + rng.below(3) as usize;
        let pool = sylvan::pool::Pool::new(n);
        let others: Vec<Greenlet<()>> = (0..n - 1)
            .map(|_| pool.spawn(|| sylvan::sleep(Duration::from_secs(60))))
            .collect();
        let p2 = pool.clone();
        let s = rng.next();
        let me = pool.spawn(move || {
            Rng::new(s).pause();
            p2.kill();
            unreachable!("a member that kills its pool dies too")
        });
        // A spawner waiting for a slot meanwhile.
        let p3 = pool.clone();
        let late = sylvan::spawn(move || p3.spawn(|| 5).join());
        for g in others {
            assert!(g.join().unwrap_err().is_killed(), "seed {seed}");
        }
        assert!(me.join().unwrap_err().is_killed(), "seed {seed}");
        match late.join() {
            Ok(Ok(5)) => {}
            Ok(Err(e)) => assert!(e.is_killed(), "seed {seed}: {e:?}"),
            r => panic!("seed {seed}: late spawner: {r:?}"),
        }
        pool.join();
        assert_eq!(pool.free_count(), n, "seed {seed}");
        assert_eq!(pool.len(), 0, "seed {seed}");
        assert_hub_quiet(&format!("seed {seed}"));
    });
}

/// The caller of `map` is killed while it waits: every task dies with it
/// and the slots come back.
#[test]
fn pool_map_caller_killed() {
    each_seed(18, 0..50, |seed| {
        let mut rng = Rng::new(seed);
        let n = 1 + rng.below(3) as usize;
        let pool = sylvan::pool::Pool::new(n);
        let started = Rc::new(Cell::new(0));
        let (p2, st) = (pool.clone(), started.clone());
        let caller = sylvan::spawn(move || {
            p2.map(0..6u64, move |i| {
                st.set(st.get() + 1);
                sylvan::sleep(Duration::from_millis(1 + i % 3));
                i
            })
        });
        for _ in 0..1 + rng.below(6) {
            rng.pause();
        }
        caller.kill();
        pool.join();
        assert_eq!(pool.free_count(), n, "seed {seed}: slots lost");
        assert_eq!(pool.len(), 0, "seed {seed}");
        assert_hub_quiet(&format!("seed {seed}"));
    });
}

// ---------------------------------------------------------------------
// JoinableQueue::join and items put after it began
// ---------------------------------------------------------------------

/// `join` waits for "every item put so far": the one item put before it
/// is marked done (waking the joiner), then a new item is put before the
/// joiner runs. The joiner returns (as gevent's, whose woken waiter
/// returns even though the count rose again) rather than wait for the new
/// item too, as it once did.
#[test]
fn joinable_join_returns_once_items_put_before_it_are_done() {
    bounded(|| {
        quiet();
        let q = Rc::new(JoinableQueue::<u64>::unbounded());
        q.put(1).unwrap();
        let joiner = {
            let q = q.clone();
            sylvan::spawn(move || q.join())
        };
        sylvan::yield_now();
        assert!(!joiner.is_dead());
        assert_eq!(q.get(), Some(1));
        q.task_done(); // zero unfinished: the joiner is woken
        q.put(2).unwrap(); // before it runs
        for _ in 0..10 {
            sylvan::yield_now();
        }
        let returned = joiner.is_dead();
        // Let it end either way.
        assert_eq!(q.get(), Some(2));
        q.task_done();
        joiner.join().unwrap();
        assert!(
            returned,
            "join still waiting after every item put before it was done"
        );
    })
}
