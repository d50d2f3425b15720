//! Seeded random programs over the coordination primitives, `iwait` and
//! links, checked against the invariants no interleaving may break: a
//! queue loses, duplicates or invents no item; a semaphore, mutex or pool
//! never lets more in than its bound and ends with every permit or slot
//! back; no greenlet stays parked for what is there (an item, room, a
//! permit, a ready object); `iwait` reports each object once and leaves no
//! registration; link callbacks run once each, in order, for the outcomes
//! their kind names. Each program runs several greenlets through random
//! blocking, non-blocking and zero-timeout operations while they kill one
//! another (`kill_nowait`), so waiters are cut at every point: chosen and
//! not yet run, parked, holding.
//!
//! Deterministic: a seed gives one program and one schedule. A failure
//! names its seed.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use sylvan::pool::Pool;
use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, JoinableQueue, LifoQueue, Mutex, PriorityQueue,
    Queue, Semaphore,
};
use sylvan::{Greenlet, Waitable};

/// A roomier limit than `util::bounded`'s: thousands of programs take about
/// a second each in debug, more on a loaded machine, and only a hang should
/// fail here.
fn bounded<T>(f: impl FnOnce() -> T) -> T {
    crate::util::bounded_by(Duration::from_secs(60), f)
}

/// xorshift64, seeded so that seed 0 works too.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, salt: u64) -> Rng {
        Rng(seed.wrapping_add(1).wrapping_mul(salt) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Kills (without waiting) one greenlet of `hs`, chosen by `pick`.
fn kill_one(hs: &RefCell<Vec<Greenlet<()>>>, pick: usize) {
    let hs = hs.borrow();
    if !hs.is_empty() {
        hs[pick % hs.len()].kill_nowait();
    }
}

/// Yields until every greenlet of `hs` is dead; kills the rest after 2,000
/// rounds (a random program may leave some parked for good), then joins
/// them all. Panics if one failed other than by a kill. Those left parked
/// must be parked for a reason: `lost_wakeup` says what is wrong when one
/// waits for what is there (an item, room, a permit).
fn settle(
    seed: u64,
    hs: &RefCell<Vec<Greenlet<()>>>,
    lost_wakeup: impl Fn() -> Option<String>,
) -> usize {
    for round in 0..3000 {
        if hs.borrow().iter().all(|h| h.is_dead()) {
            break;
        }
        if round == 2000 {
            if let Some(what) = lost_wakeup() {
                panic!("seed {seed}: a lost wake-up: {what}");
            }
            for h in hs.borrow().iter() {
                h.kill_nowait();
            }
        }
        sylvan::yield_now();
    }
    let all: Vec<_> = hs.borrow_mut().drain(..).collect();
    let mut killed = 0;
    for h in all {
        match h.join() {
            Ok(()) => {}
            Err(e) if e.is_killed() => killed += 1,
            Err(e) => panic!("seed {seed}: a greenlet failed: {e}"),
        }
    }
    killed
}

/// The queue operations the programs use, over every queue type.
trait AnyQueue {
    fn put(&self, v: u32) -> bool;
    fn put_now(&self, v: u32) -> bool;
    fn try_put(&self, v: u32) -> bool;
    fn get(&self) -> Option<u32>;
    fn get_now(&self) -> Option<u32>;
    fn try_get(&self) -> Option<u32>;
    fn close(&self);
    /// (len, getters, putters, is_full, capacity)
    fn state(&self) -> (usize, usize, usize, bool, Option<usize>);
}

macro_rules! any_queue {
    ($($q:ty),*) => {$(
        impl AnyQueue for $q {
            fn put(&self, v: u32) -> bool {
                <$q>::put(self, v).is_ok()
            }
            fn put_now(&self, v: u32) -> bool {
                self.put_timeout(v, Duration::ZERO).is_ok()
            }
            fn try_put(&self, v: u32) -> bool {
                <$q>::try_put(self, v).is_ok()
            }
            fn get(&self) -> Option<u32> {
                <$q>::get(self)
            }
            fn get_now(&self) -> Option<u32> {
                self.get_timeout(Duration::ZERO).ok()
            }
            fn try_get(&self) -> Option<u32> {
                <$q>::try_get(self).ok()
            }
            fn close(&self) {
                <$q>::close(self)
            }
            fn state(&self) -> (usize, usize, usize, bool, Option<usize>) {
                (self.len(), self.getters(), self.putters(), self.is_full(), self.capacity())
            }
        }
    )*};
}

any_queue!(
    Queue<u32>,
    LifoQueue<u32>,
    PriorityQueue<u32>,
    JoinableQueue<u32>,
    Channel<u32>
);

fn any_queue(kind: u64) -> Rc<dyn AnyQueue> {
    match kind {
        0 => Rc::new(Queue::bounded(0)),
        1 => Rc::new(Queue::bounded(1)),
        2 => Rc::new(Queue::bounded(2)),
        3 => Rc::new(Queue::unbounded()),
        4 => Rc::new(LifoQueue::bounded(2)),
        5 => Rc::new(PriorityQueue::bounded(1)),
        6 => Rc::new(JoinableQueue::bounded(1)),
        _ => Rc::new(Channel::new()),
    }
}

/// What became of the items of one program.
#[derive(Default)]
struct Ledger {
    /// Puts that returned success: the queue took the item.
    accepted: HashSet<u32>,
    /// Puts that returned failure: the item came back, never delivered.
    refused: HashSet<u32>,
    /// Every item a get returned, in order.
    got: Vec<u32>,
}

/// One program: 2-5 greenlets, each running up to 8 random operations on
/// one queue, with unique item values. Puts cut by a kill or a timeout may
/// or may not have delivered their item; every other item is accounted.
fn queue_program(seed: u64) -> usize {
    let mut rng = Rng::new(seed, 0x9E37_79B9_7F4A_7C15);
    let q = any_queue(rng.below(8));
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let next = Rc::new(Cell::new(0u32));
    let hs: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..2 + rng.below(4) {
        let ops: Vec<(u64, u64)> = (0..1 + rng.below(8))
            .map(|_| (rng.below(100), rng.below(8)))
            .collect();
        let (q, ledger, next, others) = (q.clone(), ledger.clone(), next.clone(), hs.clone());
        let g = sylvan::spawn(move || {
            for (op, r) in ops {
                let v = next.get();
                next.set(v + 1);
                let put = |ok: bool| {
                    let mut l = ledger.borrow_mut();
                    if ok {
                        l.accepted.insert(v);
                    } else {
                        l.refused.insert(v);
                    }
                };
                let got = |item: Option<u32>| ledger.borrow_mut().got.extend(item);
                match op {
                    0..=19 => put(q.put(v)),
                    20..=29 => put(q.put_now(v)),
                    30..=37 => put(q.try_put(v)),
                    38..=57 => got(q.get()),
                    58..=67 => got(q.get_now()),
                    68..=75 => got(q.try_get()),
                    76..=83 => sylvan::yield_now(),
                    84..=88 => got(sylvan::with_timeout(Duration::ZERO, || q.get())
                        .ok()
                        .flatten()),
                    89..=92 => {
                        if let Ok(ok) = sylvan::with_timeout(Duration::ZERO, || q.put(v)) {
                            put(ok);
                        }
                    }
                    93..=98 => kill_one(&others, r as usize),
                    _ => q.close(),
                }
            }
        });
        hs.borrow_mut().push(g);
    }
    let killed = settle(seed, &hs, || {
        let (len, getters, putters, full, cap) = q.state();
        // A getter waits while an item is there (in the buffer or a
        // putter's hands), or a putter while there is room.
        let wrong =
            (len > 0 || putters > 0) && getters > 0 || cap != Some(0) && !full && putters > 0;
        wrong.then(|| format!("{len} items, {getters} getters and {putters} putters waiting"))
    });
    let l = ledger.borrow();
    let mut seen = HashSet::new();
    let rest: Vec<u32> = std::iter::from_fn(|| q.try_get()).collect();
    for &v in l.got.iter().chain(&rest) {
        assert!(seen.insert(v), "seed {seed}: item {v} came out twice");
        assert!(
            !l.refused.contains(&v),
            "seed {seed}: item {v} came out though its put failed"
        );
        assert!(v < next.get(), "seed {seed}: item {v} was never put");
    }
    for v in &l.accepted {
        assert!(seen.contains(v), "seed {seed}: accepted item {v} was lost");
    }
    killed
}

#[test]
fn queues_lose_duplicate_or_invent_no_item_under_random_kills_and_timeouts() {
    bounded(|| {
        let killed: usize = (0..3000).map(queue_program).sum();
        // The programs do cut waiters: the check is not vacuous.
        assert!(killed > 1000, "only {killed} greenlets were killed");
    });
}

/// Counts the greenlets inside a section bounded by `max`, for `rounds`
/// yields.
fn inside(count: &Cell<i64>, max: i64, rounds: u64) {
    struct Leave<'a>(&'a Cell<i64>);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }
    count.set(count.get() + 1);
    let _leave = Leave(count);
    assert!(
        count.get() <= max,
        "{} inside a section bounded by {max}",
        count.get()
    );
    for _ in 0..rounds {
        sylvan::yield_now();
    }
}

enum Lock {
    Sem(Semaphore),
    Bounded(BoundedSemaphore),
    Mutex(Mutex<u32>),
}

impl Lock {
    /// Runs `f` holding a permit taken by `how`: 0 waits, 1 tries, 2 waits
    /// a zero timeout. Returns whether it got one.
    fn with(&self, how: u64, f: impl FnOnce()) -> bool {
        let d = Duration::ZERO;
        macro_rules! take {
            ($wait:expr, $try:expr, $timed:expr) => {
                match how {
                    0 => Some($wait),
                    1 => $try,
                    _ => $timed,
                }
                .map(|guard| {
                    f();
                    drop(guard)
                })
                .is_some()
            };
        }
        match self {
            Lock::Sem(s) => take!(s.acquire(), s.try_acquire(), s.acquire_timeout(d)),
            Lock::Bounded(s) => take!(s.acquire(), s.try_acquire(), s.acquire_timeout(d)),
            Lock::Mutex(m) => take!(m.lock(), m.try_lock(), m.lock_timeout(d)),
        }
    }

    /// (free permits, waiters) now.
    fn state(&self) -> (usize, usize) {
        match self {
            Lock::Sem(s) => (s.available(), s.waiters()),
            Lock::Bounded(s) => (s.available(), s.waiters()),
            Lock::Mutex(m) => (usize::from(!m.is_locked()), m.waiters()),
        }
    }
}

fn lock_program(seed: u64) -> usize {
    let mut rng = Rng::new(seed, 0xD1B5_4A32_D192_ED03);
    let n = 1 + rng.below(3) as usize;
    let (lock, max) = match rng.below(3) {
        0 => (Lock::Sem(Semaphore::new(n)), n),
        1 => (Lock::Bounded(BoundedSemaphore::new(n)), n),
        _ => (Lock::Mutex(Mutex::new(0)), 1),
    };
    let lock = Rc::new(lock);
    let count = Rc::new(Cell::new(0i64));
    let hs: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..2 + rng.below(5) {
        let ops: Vec<(u64, u64)> = (0..1 + rng.below(6))
            .map(|_| (rng.below(100), rng.below(4)))
            .collect();
        let (lock, count, others) = (lock.clone(), count.clone(), hs.clone());
        let g = sylvan::spawn(move || {
            for (op, r) in ops {
                let hold = || inside(&count, max as i64, r);
                match op {
                    0..=59 => {
                        lock.with(op % 3, hold);
                    }
                    60..=74 => {
                        let _ = sylvan::with_timeout(Duration::ZERO, || lock.with(0, hold));
                    }
                    75..=84 => kill_one(&others, (r + op) as usize),
                    _ => sylvan::yield_now(),
                }
            }
        });
        hs.borrow_mut().push(g);
    }
    let killed = settle(seed, &hs, || {
        let (free, waiters) = lock.state();
        (free > 0 && waiters > 0).then(|| format!("{free} permits free, {waiters} waiting"))
    });
    assert_eq!(count.get(), 0, "seed {seed}: still inside");
    assert_eq!(
        lock.state(),
        (max, 0),
        "seed {seed}: every permit back and no waiter left (free, waiters)"
    );
    killed
}

#[test]
fn semaphores_and_mutexes_keep_their_bound_and_permits_under_random_kills_and_timeouts() {
    bounded(|| {
        let killed: usize = (0..3000).map(lock_program).sum();
        assert!(killed > 1000, "only {killed} greenlets were killed");
    });
}

fn pool_program(seed: u64) {
    let mut rng = Rng::new(seed, 0x2545_F491_4F6C_DD1D);
    let n = 1 + rng.below(3) as usize;
    let pool = Rc::new(Pool::new(n));
    let count = Rc::new(Cell::new(0i64));
    let hs: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..1 + rng.below(3) {
        let ops: Vec<(u64, u64)> = (0..1 + rng.below(6))
            .map(|_| (rng.below(100), rng.below(4)))
            .collect();
        let (pool, count) = (pool.clone(), count.clone());
        let g = sylvan::spawn(move || {
            let mut mine = Vec::new();
            for (op, r) in ops {
                let task = {
                    let count = count.clone();
                    move || inside(&count, n as i64, r)
                };
                match op {
                    0..=39 => mine.push(pool.spawn(task)),
                    40..=49 => {
                        let _ = sylvan::with_timeout(Duration::ZERO, || pool.spawn(task));
                    }
                    50..=59 => {
                        if let Some(g) = mine.get(r as usize) {
                            g.kill_nowait();
                        }
                    }
                    60..=69 => {
                        let count = count.clone();
                        let results = pool.map(0..r, move |i| inside(&count, n as i64, i));
                        assert_eq!(results.len() as u64, r, "seed {seed}: map's results");
                    }
                    70..=74 => pool.kill(),
                    75..=79 => {
                        let _ = pool.join_timeout(Duration::ZERO);
                    }
                    80..=84 => {
                        let _ = pool.wait_available(Some(Duration::ZERO));
                    }
                    _ => sylvan::yield_now(),
                }
            }
        });
        hs.borrow_mut().push(g);
    }
    // A spawner parked for a slot is not visible from outside; the slots
    // are checked once all is done.
    settle(seed, &hs, || None);
    pool.join();
    assert_eq!(count.get(), 0, "seed {seed}: still inside");
    assert_eq!(
        (pool.len(), pool.free_count()),
        (0, n),
        "seed {seed}: every slot back (len, free)"
    );
}

#[test]
fn pools_keep_their_bound_and_slots_under_random_kills_and_timeouts() {
    bounded(|| (0..3000).for_each(pool_program));
}

/// The objects of a wait program: three events, an async result, a
/// semaphore and two greenlets that yield a few times and end.
struct Objects {
    events: [Event; 3],
    result: AsyncResult<u32>,
    sem: Semaphore,
    targets: Vec<Greenlet<()>>,
}

impl Objects {
    fn get(&self, i: usize) -> &dyn Waitable {
        match i {
            0..=2 => &self.events[i],
            3 => &self.result,
            4 => &self.sem,
            _ => &self.targets[i - 5],
        }
    }
}

const OBJECTS: usize = 7;

fn wait_program(seed: u64) -> usize {
    let mut rng = Rng::new(seed, 0x94D0_49BB_1331_11EB);
    let targets = (0..2)
        .map(|_| {
            let rounds = rng.below(20);
            sylvan::spawn(move || {
                for _ in 0..rounds {
                    sylvan::yield_now();
                }
            })
        })
        .collect();
    let objs = Rc::new(Objects {
        events: [Event::new(), Event::new(), Event::new()],
        result: AsyncResult::new(),
        sem: Semaphore::new(0),
        targets,
    });
    // What each worker waits on right now: the indices not yet reported,
    // when it waits without a timeout.
    let waiting: Rc<RefCell<Vec<Option<Vec<usize>>>>> = Rc::new(RefCell::new(Vec::new()));
    let hs: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::new(RefCell::new(Vec::new()));
    for w in 0..2 + rng.below(4) as usize {
        waiting.borrow_mut().push(None);
        let ops: Vec<(u64, u64)> = (0..1 + rng.below(6))
            .map(|_| (rng.below(100), rng.below(1 << 12)))
            .collect();
        let (objs, waiting, others) = (objs.clone(), waiting.clone(), hs.clone());
        let g = sylvan::spawn(move || {
            for (op, r) in ops {
                match op {
                    0..=14 => objs.events[r as usize % 3].set(),
                    15..=22 => objs.events[r as usize % 3].clear(),
                    23..=26 => {
                        let _ = objs.result.set(7);
                    }
                    27..=31 => objs.sem.release(),
                    32..=35 => {
                        if let Some(p) = objs.sem.try_acquire() {
                            p.forget();
                        }
                    }
                    36..=69 => {
                        // iwait over a random subset, taking up to `take`.
                        let subset: Vec<usize> = (0..OBJECTS).filter(|i| r >> i & 1 == 1).collect();
                        let list: Vec<&dyn Waitable> =
                            subset.iter().map(|&i| objs.get(i)).collect();
                        let timeout = (op % 2 == 0).then_some(Duration::ZERO);
                        let take = (r >> 8) as usize % (subset.len() + 1);
                        let mut seen = vec![false; subset.len()];
                        let mut it = sylvan::iwait(&list, timeout);
                        for _ in 0..take {
                            if timeout.is_none() {
                                let left =
                                    (0..subset.len()).filter(|&k| !seen[k]).map(|k| subset[k]);
                                waiting.borrow_mut()[w] = Some(left.collect());
                            }
                            // Cleared however `next` ends, a kill included.
                            struct Done<'a>(&'a RefCell<Vec<Option<Vec<usize>>>>, usize);
                            impl Drop for Done<'_> {
                                fn drop(&mut self) {
                                    self.0.borrow_mut()[self.1] = None;
                                }
                            }
                            let done = Done(&waiting, w);
                            let next = it.next();
                            drop(done);
                            let Some(k) = next else { break };
                            assert!(!seen[k], "iwait reported object {} twice", subset[k]);
                            seen[k] = true;
                            if r & 1 == 1 {
                                sylvan::yield_now();
                            }
                        }
                    }
                    70..=79 => {
                        let subset: Vec<usize> = (0..OBJECTS).filter(|i| r >> i & 1 == 1).collect();
                        let list: Vec<&dyn Waitable> =
                            subset.iter().map(|&i| objs.get(i)).collect();
                        let count = (r >> 8) as usize % 3;
                        let got = sylvan::wait(&list, Some(Duration::ZERO), Some(count));
                        assert!(got.len() <= count.min(subset.len()));
                        for &k in &got {
                            assert!(k < subset.len());
                        }
                    }
                    80..=84 => {
                        let _ = sylvan::with_timeout(Duration::ZERO, || {
                            let list: Vec<&dyn Waitable> =
                                (0..OBJECTS).map(|i| objs.get(i)).collect();
                            sylvan::wait(&list, None, Some(1))
                        });
                    }
                    85..=92 => kill_one(&others, r as usize),
                    _ => sylvan::yield_now(),
                }
            }
        });
        hs.borrow_mut().push(g);
    }
    let killed = settle(seed, &hs, || {
        for (w, left) in waiting.borrow().iter().enumerate() {
            if let Some(left) = left
                && let Some(&i) = left.iter().find(|&&i| objs.get(i).is_ready())
            {
                return Some(format!("worker {w} waits in iwait with object {i} ready"));
            }
        }
        None
    });
    for g in &objs.targets {
        g.kill();
    }
    let left = (
        objs.events.iter().map(Event::waiters).sum::<usize>(),
        objs.result.waiters(),
        objs.sem.watchers(),
    );
    assert_eq!(left, (0, 0, 0), "seed {seed}: registrations left behind");
    killed
}

#[test]
fn iwait_reports_each_object_once_and_leaves_nothing_behind_under_random_kills() {
    bounded(|| {
        let killed: usize = (0..3000).map(wait_program).sum();
        assert!(killed > 1000, "only {killed} greenlets were killed");
    });
}

/// Which callback a link registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkKind {
    Any,
    Value,
    Exception,
}

/// How a target ended: it returned, it panicked, or (neither) was killed.
const RETURNED: u8 = 1;
const PANICKED: u8 = 2;

fn link_program(seed: u64) -> usize {
    let mut rng = Rng::new(seed, 0xBF58_476D_1CE4_E5B9);
    let ended: Rc<Vec<Cell<u8>>> = Rc::new((0..4).map(|_| Cell::new(0)).collect());
    let targets: Rc<Vec<Greenlet<u32>>> = Rc::new(
        (0..2 + rng.below(3) as usize)
            .map(|t| {
                let (rounds, how, ended) = (rng.below(6), rng.below(3), ended.clone());
                sylvan::spawn(move || {
                    for _ in 0..rounds {
                        sylvan::yield_now();
                    }
                    match how {
                        0 => {
                            ended[t].set(RETURNED);
                            t as u32
                        }
                        1 => {
                            ended[t].set(PANICKED);
                            panic!("target {t} fails")
                        }
                        // Yields until killed.
                        _ => loop {
                            sylvan::yield_now();
                        },
                    }
                })
            })
            .collect(),
    );
    // Every registration: (target, kind, cancelled by unlink_all).
    let links: Rc<RefCell<Vec<(usize, LinkKind, bool)>>> = Rc::default();
    // Every callback run: (link, target it was told of).
    let fired: Rc<RefCell<Vec<usize>>> = Rc::default();
    let running = Rc::new(Cell::new(0usize));
    let hs: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::default();
    for _ in 0..2 + rng.below(3) {
        let ops: Vec<(u64, u64)> = (0..1 + rng.below(8))
            .map(|_| (rng.below(100), rng.below(64)))
            .collect();
        let (targets, links, fired, running, others) = (
            targets.clone(),
            links.clone(),
            fired.clone(),
            running.clone(),
            hs.clone(),
        );
        let g = sylvan::spawn(move || {
            for (op, r) in ops {
                let t = r as usize % targets.len();
                let target = &targets[t];
                match op {
                    0..=39 => {
                        let kind =
                            [LinkKind::Any, LinkKind::Value, LinkKind::Exception][op as usize % 3];
                        let id = {
                            let mut links = links.borrow_mut();
                            links.push((t, kind, false));
                            links.len() - 1
                        };
                        let (fired, running) = (fired.clone(), running.clone());
                        let rounds = r / 16;
                        let run = move || {
                            fired.borrow_mut().push(id);
                            running.set(running.get() + 1);
                            for _ in 0..rounds {
                                sylvan::yield_now();
                            }
                            running.set(running.get() - 1);
                        };
                        match kind {
                            LinkKind::Any => target.link(move |_| run()),
                            LinkKind::Value => target.link_value(move |_| run()),
                            LinkKind::Exception => target.link_exception(move |_| run()),
                        }
                    }
                    40..=44 => {
                        if !target.is_dead() {
                            target.unlink_all();
                            for l in links.borrow_mut().iter_mut().filter(|l| l.0 == t) {
                                l.2 = true;
                            }
                        }
                    }
                    45..=54 => target.kill_nowait(),
                    55..=64 => {
                        target.kill();
                        assert!(target.is_dead(), "kill returned before the target died");
                    }
                    65..=74 => {
                        let _ = target.wait(Some(Duration::ZERO));
                    }
                    75..=84 => kill_one(&others, r as usize),
                    _ => sylvan::yield_now(),
                }
            }
        });
        hs.borrow_mut().push(g);
    }
    let killed = settle(seed, &hs, || None);
    for t in targets.iter() {
        t.kill();
    }
    crate::util::yield_until("every link callback done", || {
        running.get() == 0 && fired.borrow().len() >= expected(&links.borrow(), &ended).len()
    });
    for _ in 0..4 {
        sylvan::yield_now();
    }
    let want = expected(&links.borrow(), &ended);
    let fired = fired.borrow();
    let mut got = fired.clone();
    got.sort_unstable();
    assert_eq!(got, want, "seed {seed}: the callbacks that ran (link ids)");
    let links = links.borrow();
    for t in 0..targets.len() {
        let order: Vec<usize> = fired.iter().copied().filter(|&l| links[l].0 == t).collect();
        assert!(
            order.is_sorted(),
            "seed {seed}: target {t}'s callbacks ran out of registration order: {order:?}"
        );
    }
    killed
}

/// The links that must run once each, by id: those not cancelled whose
/// kind matches how their target ended.
fn expected(links: &[(usize, LinkKind, bool)], ended: &[Cell<u8>]) -> Vec<usize> {
    (0..links.len())
        .filter(|&l| {
            let (t, kind, cancelled) = links[l];
            !cancelled
                && match kind {
                    LinkKind::Any => true,
                    LinkKind::Value => ended[t].get() == RETURNED,
                    LinkKind::Exception => ended[t].get() == PANICKED,
                }
        })
        .collect()
}

#[test]
fn links_run_once_each_in_order_for_the_right_outcomes_under_random_kills() {
    bounded(|| {
        sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(|_| {})));
        let killed: usize = (0..2000).map(link_program).sum();
        sylvan::set_error_policy(sylvan::ErrorPolicy::Report);
        assert!(killed > 500, "only {killed} greenlets were killed");
    });
}
