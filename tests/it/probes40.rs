//! Probe round 40: seeded chaos with whole-hub invariants.
//!
//! Rounds 9 and 16 model-checked `sylvan::sync` and the sockets each on
//! their own. Here one hub holds everything at once: a fixed-seed xorshift
//! drives a director (main) and actor greenlets that park on TCP reads,
//! writes, accepts and connects, UDP receives, Unix stream pairs, six queue
//! kinds (getters, putters, peekers), `Event`, `AsyncResult`, both
//! semaphores, `Mutex`, `Pool`/`Group` (`spawn`, `map`, `imap`,
//! `imap_unordered`), `sleep`/`spawn_later`, `wait`/`iwait`,
//! `spawn_blocking`, `Handle::spawn` from another thread, `with_timeout` /
//! `Timeout::start` nested at random depths, `link`/`link_exception`
//! callbacks that block and panic, greenlet-locals whose destructors panic
//! during a kill unwind, and stack guards whose destructors put into a
//! queue while unwinding. The director injects kills, `kill_nowait`,
//! dropped handles, queue `close`, socket `shutdown`, `Pool::kill`,
//! `Group::kill` and `StreamServer::stop` at random moments.
//!
//! After each scenario (seed printed in every message) the hub is driven
//! until quiet with `wait_all` (outside `bounded`, whose `Timeout` would
//! count as work; `wait_all` returning true proves there are no timers, IO
//! waiters, pool jobs or cross-thread work left, since the hub's wake-source
//! count is not in `HubStats`), then checked whole:
//! `stats()` (`alive`, `timers`, `ready`, `thread_pool_queue` back to 0,
//! `stacks_mapped - stacks_unmapped == stacks_pooled`), `dump()` lists only
//! main, the shared world (every closure's `Rc`) is gone, open descriptors
//! are back to the start count (the chaos runs in a re-executed child, so
//! no concurrent test's sockets are counted), every queued token was got
//! exactly once or bounced back or dropped in the hands of an unwound
//! putter (never a token whose `put` returned `Ok` lost, never one dropped
//! twice), permits and the mutex free with mutual exclusion held
//! throughout, each `AsyncResult` set at most once, every guard and
//! greenlet-local destructor run exactly once, `JoinableQueue::unfinished`
//! back to 0, and a fresh socket ping-pong, queue handoff and sleep work.
//!
//! Deterministic soaks (thousands of operations each) cover the
//! "chosen waiter killed passes the item / permit on" rule across every
//! queue kind and both semaphores, IO waiters killed and timed out on
//! every socket kind, nested timeouts, and link storms.
//!
//! Found, and fixed since (it aborted before the fix): two greenlet-locals
//! whose destructors both panic aborted the process ("thread caused
//! non-unwinding panic"), seen first in the chaos runs (`chaos_seeds_a`,
//! seed 5, before the probe held one panicking value per greenlet):
//! `Locals::clear` dropped all values in one `catch_unwind`, so the second
//! panic ran in the first one's cleanup. Each value is dropped on its own
//! now (`two_panicking_greenlet_local_destructors`).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sylvan::net::{StreamServer, TcpListener, TcpStream, UdpSocket, UnixStream};
use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Channel, Event, JoinableQueue, LifoQueue, Mutex, PriorityQueue,
    Queue, Semaphore, TryGetError,
};
use sylvan::{Greenlet, Handle, Timeout, Waitable};

use crate::util::{bounded, limited_child_texts, quiet, tcp_pair};

// ------------------------------------------------------------------ rng

/// xorshift64*, fixed seeds.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D);
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
        self.next() % n.max(1)
    }
}

// ------------------------------------------------------------------ child runner

/// Runs `body` in a re-executed child (only this test there, so the
/// descriptor count is ours alone), killed after 20 s. The body bounds its
/// own chaos (with `bounded`) and checks the hub outside it.
fn child(path: &str, name: &str, body: impl FnOnce()) {
    seeds_child(path, name, 0, body);
}

/// [`child`] for `n` chaos seeds: killed after 20 s, or one second per
/// seed when there are more (a long hunt, see [`seeds`]).
fn seeds_child(path: &str, name: &str, n: usize, body: impl FnOnce()) {
    let limit = Duration::from_secs(20.max(n as u64));
    limited_child_texts(path, name, &[], limit, || {
        quiet();
        body();
    });
}

/// The fixed `list`; `SYLVAN_P40_SEEDS=<count>` runs seeds
/// `first * 1000..first * 1000 + count` instead, and
/// `SYLVAN_P40_SEEDS=<a>..<b>` the seeds `a..b` (to rerun one), for a
/// longer hunt by hand. The re-executed child inherits the variable.
fn seeds(first: u64, list: &[u64]) -> Vec<u64> {
    let Ok(v) = std::env::var("SYLVAN_P40_SEEDS") else {
        return list.to_vec();
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
    let (a, b) = range.unwrap_or_else(|| panic!("SYLVAN_P40_SEEDS={v:?}: a count or a..b"));
    (a..b).collect()
}

/// Open descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The hub-wide invariants once everything was joined; `what` names the
/// seed or soak. Must run outside `bounded` (its `Timeout` is work).
fn check_quiet(what: &str, fd0: Option<usize>) {
    assert!(
        sylvan::wait_all(Some(Duration::from_secs(3))),
        "{what}: the hub never ran out of work (timers, IO waiters or pool jobs left): {:?}\n{}",
        sylvan::stats(),
        sylvan::dump()
    );
    let s = sylvan::stats();
    assert_eq!(
        s.alive,
        0,
        "{what}: greenlets left: {s:?}\n{}",
        sylvan::dump()
    );
    assert_eq!(s.timers, 0, "{what}: timers left: {s:?}");
    assert_eq!(s.ready, 0, "{what}: ready entries left: {s:?}");
    // `thread_pool_queue` is process-wide, and a job whose caller was
    // killed while it waited for a pool thread stays queued (no longer a
    // wake source of this hub: `f` still runs to the end, its result
    // dropped there, as `spawn_blocking` documents). It drains once a pool
    // thread is free (each job here sleeps at most 3 ms).
    let t = Instant::now();
    while sylvan::stats().thread_pool_queue > 0 && t.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = sylvan::stats();
    assert_eq!(s.thread_pool_queue, 0, "{what}: pool jobs queued: {s:?}");
    // Nothing alive: every mapped stack not unmapped is back in the pool.
    assert_eq!(
        s.stacks_mapped - s.stacks_unmapped,
        s.stacks_pooled as u64,
        "{what}: stacks mapped - unmapped != pooled with nothing alive: {s:?}"
    );
    let d = sylvan::dump();
    assert_eq!(
        d.greenlets.len(),
        1,
        "{what}: dump lists more than main:\n{d}"
    );
    if let Some(fd0) = fd0 {
        // Closed sockets in TIME_WAIT hold no descriptor; the blocking
        // pool's threads open none. So the count is exact.
        let now = fds();
        assert_eq!(now, fd0, "{what}: descriptors {fd0} -> {now}");
    }
}

/// The hub still works: a socket ping-pong, a queue handoff, a sleep.
fn hub_works(what: &str) {
    bounded(|| {
        let (c, s) = tcp_pair();
        let echo = sylvan::spawn(move || {
            let mut b = [0u8; 4];
            (&s).read_exact(&mut b).unwrap();
            (&s).write_all(&b).unwrap();
        });
        (&c).write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping", "{what}");
        echo.join().unwrap();
        let q = Rc::new(Queue::bounded(1));
        let q2 = q.clone();
        let g = sylvan::spawn(move || q2.get());
        sylvan::yield_now();
        q.put(7u32).unwrap();
        assert_eq!(g.join().unwrap(), Some(7), "{what}");
        let t = Instant::now();
        sylvan::sleep(Duration::from_millis(2));
        assert!(t.elapsed() >= Duration::from_millis(2), "{what}");
    });
    check_quiet(&format!("{what} (after the health check)"), None);
}

// ------------------------------------------------------------------ tokens

/// Where every token went.
#[derive(Default)]
struct Ledger {
    dropped: RefCell<Vec<u32>>,
    got: RefCell<Vec<u32>>,
    put_ok: RefCell<Vec<u32>>,
}

impl Ledger {
    fn make(self: &Rc<Self>) -> Token {
        let id = self.dropped.borrow().len();
        self.dropped.borrow_mut().push(0);
        self.got.borrow_mut().push(0);
        self.put_ok.borrow_mut().push(0);
        Token {
            id: id as u32,
            led: Some(self.clone()),
        }
    }
    fn got(&self, t: Token) {
        assert!(t.led.is_some(), "a queue handed out a peek clone");
        self.got.borrow_mut()[t.id as usize] += 1;
    }
    fn put_ok(&self, id: u32) {
        self.put_ok.borrow_mut()[id as usize] += 1;
    }
    /// Every token dropped once; got at most once; got if its put said Ok.
    fn check(&self, what: &str) -> usize {
        let (d, g, p) = (
            self.dropped.borrow(),
            self.got.borrow(),
            self.put_ok.borrow(),
        );
        for id in 0..d.len() {
            assert_eq!(d[id], 1, "{what}: token {id} dropped {} times", d[id]);
            assert!(g[id] <= 1, "{what}: token {id} got {} times", g[id]);
            assert!(p[id] <= 1, "{what}: token {id} put Ok {} times", p[id]);
            assert!(
                p[id] == 0 || g[id] == 1,
                "{what}: token {id}: its put returned Ok but nobody got it (lost)"
            );
        }
        d.len()
    }
}

/// A queued value; a clone (from `peek`) does not count.
struct Token {
    id: u32,
    led: Option<Rc<Ledger>>,
}

impl Clone for Token {
    fn clone(&self) -> Token {
        Token {
            id: self.id,
            led: None,
        }
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if let Some(l) = &self.led {
            l.dropped.borrow_mut()[self.id as usize] += 1;
        }
    }
}

impl PartialEq for Token {
    fn eq(&self, o: &Token) -> bool {
        self.id == o.id
    }
}
impl Eq for Token {}
impl PartialOrd for Token {
    fn partial_cmp(&self, o: &Token) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Token {
    fn cmp(&self, o: &Token) -> std::cmp::Ordering {
        self.id.cmp(&o.id)
    }
}

// ------------------------------------------------------------------ greenlet-local

/// A greenlet-local value: counts its drop; may panic in it.
struct LocalProbe {
    dropped: Rc<Cell<usize>>,
    panic: bool,
}

impl Drop for LocalProbe {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
        if self.panic {
            panic!("chaos: greenlet-local destructor panics");
        }
    }
}

sylvan::greenlet_local! {
    static PROBE: RefCell<Vec<LocalProbe>> = RefCell::new(Vec::new());
}

// ------------------------------------------------------------------ the world

struct ArSlot {
    r: AsyncResult<u64>,
    sets: Cell<u32>,
}

const SEM_N: usize = 2;
const BSEM_N: usize = 2;

/// Everything one scenario shares; every closure holds an `Rc` of it, so
/// its `Weak` dying proves every greenlet and callback is gone.
struct World {
    seed: u64,
    rng: RefCell<Rng>,
    led: Rc<Ledger>,
    fifo: Queue<Token>,
    unb: Queue<Token>,
    lifo: LifoQueue<Token>,
    prio: PriorityQueue<Token>,
    chan: Channel<Token>,
    jq: JoinableQueue<Token>,
    ev: Event,
    ar: RefCell<Rc<ArSlot>>,
    ars: RefCell<Vec<Rc<ArSlot>>>,
    sem: Semaphore,
    sem_held: Cell<usize>,
    bsem: BoundedSemaphore,
    bsem_held: Cell<usize>,
    mx: Mutex<u64>,
    mx_in: Cell<bool>,
    pool: Pool,
    group: Group,
    tcp: (TcpStream, TcpStream),
    unix: (UnixStream, UnixStream),
    udp: (UdpSocket, UdpSocket),
    listener: RefCell<Option<Rc<TcpListener>>>,
    laddr: SocketAddr,
    server: RefCell<Option<StreamServer>>,
    saddr: SocketAddr,
    guards: (Cell<usize>, Cell<usize>),
    locals_made: Cell<usize>,
    locals_dropped: Rc<Cell<usize>>,
    links_ran: Cell<usize>,
    fails: RefCell<Vec<String>>,
    trace: RefCell<Vec<String>>,
}

impl World {
    fn new(seed: u64) -> Rc<World> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let laddr = listener.local_addr().unwrap();
        let server =
            StreamServer::new(TcpListener::bind("127.0.0.1:0").unwrap(), crate::util::echo)
                .start()
                .unwrap();
        let saddr = server.local_addr().unwrap();
        let u0 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let u1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let slot = Rc::new(ArSlot {
            r: AsyncResult::new(),
            sets: Cell::new(0),
        });
        Rc::new(World {
            seed,
            rng: RefCell::new(Rng::new(seed)),
            led: Rc::new(Ledger::default()),
            fifo: Queue::bounded(2),
            unb: Queue::unbounded(),
            lifo: LifoQueue::bounded(3),
            prio: PriorityQueue::bounded(2),
            chan: Channel::new(),
            jq: JoinableQueue::bounded(2),
            ev: Event::new(),
            ar: RefCell::new(slot.clone()),
            ars: RefCell::new(vec![slot]),
            sem: Semaphore::new(SEM_N),
            sem_held: Cell::new(0),
            bsem: BoundedSemaphore::new(BSEM_N),
            bsem_held: Cell::new(0),
            mx: Mutex::new(0),
            mx_in: Cell::new(false),
            pool: Pool::new(3),
            group: Group::new(),
            tcp: tcp_pair(),
            unix: UnixStream::pair().unwrap(),
            udp: (u0, u1),
            listener: RefCell::new(Some(Rc::new(listener))),
            laddr,
            server: RefCell::new(Some(server)),
            saddr,
            guards: (Cell::new(0), Cell::new(0)),
            locals_made: Cell::new(0),
            locals_dropped: Rc::new(Cell::new(0)),
            links_ran: Cell::new(0),
            fails: RefCell::new(Vec::new()),
            trace: RefCell::new(Vec::new()),
        })
    }
    fn r(&self, n: u64) -> u64 {
        self.rng.borrow_mut().below(n)
    }
    fn ms(&self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.r(hi - lo + 1))
    }
    fn chance(&self, pct: u64) -> bool {
        self.r(100) < pct
    }
    fn fail(&self, s: String) {
        self.fails
            .borrow_mut()
            .push(format!("seed {}: {s}", self.seed));
    }
    fn note(&self, s: impl Into<String>) {
        let mut t = self.trace.borrow_mut();
        if t.len() > 40 {
            t.remove(0);
        }
        t.push(s.into());
    }
}

/// Counts one holder of something exclusive; fails the world when more
/// than `max` hold it.
struct Held<'a>(&'a Cell<usize>);

impl<'a> Held<'a> {
    fn new(w: &World, c: &'a Cell<usize>, max: usize, what: &str) -> Held<'a> {
        c.set(c.get() + 1);
        if c.get() > max {
            w.fail(format!("{what}: {} holders, at most {max}", c.get()));
        }
        Held(c)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// On every actor's stack: counts its drop; while unwinding it puts a token
/// (accepted past the bound, as documented) and sleeps (returns at once).
struct StackGuard(Rc<World>);

impl Drop for StackGuard {
    fn drop(&mut self) {
        let w = &self.0;
        w.guards.1.set(w.guards.1.get() + 1);
        if std::thread::panicking() {
            let t = w.led.make();
            let id = t.id;
            // No park while unwinding: accepted past the bound, or bounced
            // when closed.
            if w.fifo.put(t).is_ok() {
                w.led.put_ok(id);
            }
            // Returns at once; a sleep that parked would take seconds.
            let before = Instant::now();
            sylvan::sleep(Duration::from_secs(2));
            if before.elapsed() > Duration::from_secs(1) {
                w.fail("sleep in a destructor during an unwind waited".into());
            }
        }
    }
}

// ------------------------------------------------------------------ actors

macro_rules! qput {
    ($w:expr, $q:expr, $how:expr) => {{
        let w: &World = $w;
        let t = w.led.make();
        let id = t.id;
        let ok = match $how {
            0 => $q.put(t).is_ok(),
            1 => $q.try_put(t).is_ok(),
            _ => $q.put_timeout(t, w.ms(0, 5)).is_ok(),
        };
        if ok {
            w.led.put_ok(id);
        }
    }};
}

macro_rules! qget {
    ($w:expr, $q:expr, $how:expr) => {{
        let w: &World = $w;
        let got = match $how {
            0 => $q.get(),
            1 => $q.try_get().ok(),
            _ => $q.get_timeout(w.ms(0, 5)).ok(),
        };
        let some = got.is_some();
        if let Some(t) = got {
            w.led.got(t);
        }
        some
    }};
}

/// Runs `f` under 0..3 nested timeouts (mostly `with_timeout`, sometimes a
/// `Timeout::start` guard whose expiry escapes to the greenlet's entry).
fn nest(w: &Rc<World>, depth: u64, f: &mut dyn FnMut()) {
    if depth == 0 {
        f();
        return;
    }
    let d = w.ms(0, 20);
    if w.chance(4) {
        let _t = Timeout::start(d);
        nest(w, depth - 1, f);
    } else {
        let _ = sylvan::with_timeout(d, || nest(w, depth - 1, f));
    }
}

fn one_op(w: &Rc<World>) {
    let k = w.r(44);
    let how = w.r(3);
    w.note(format!("g{} op{k}/{how}", sylvan::current()));
    match k {
        0 | 1 => qput!(w, w.fifo, how),
        2 | 3 => {
            qget!(w, w.fifo, how);
        }
        4 => {
            let _ = if how == 0 {
                w.fifo.peek()
            } else {
                w.fifo.peek_timeout(w.ms(0, 5)).ok()
            };
        }
        5 => qput!(w, w.unb, how),
        6 => {
            qget!(w, w.unb, how);
        }
        7 => qput!(w, w.lifo, how),
        8 => {
            qget!(w, w.lifo, how);
        }
        9 => qput!(w, w.prio, how),
        10 => {
            if how == 0 {
                let _ = w.prio.peek();
            } else {
                qget!(w, w.prio, how);
            }
        }
        11 => qput!(w, w.chan, how),
        12 => {
            qget!(w, w.chan, how);
        }
        13 => qput!(w, w.jq, how),
        14 => {
            if qget!(w, w.jq, how) {
                w.jq.task_done();
            }
        }
        15 => {
            let _ = w.jq.join_timeout(w.ms(0, 5));
        }
        16 => match how {
            0 => {
                w.ev.wait();
            }
            1 => w.ev.set(),
            _ => {
                if w.chance(30) {
                    w.ev.clear();
                } else {
                    w.ev.wait_timeout(w.ms(0, 5));
                }
            }
        },
        17 => {
            let slot = w.ar.borrow().clone();
            if how == 0 {
                let v = w.r(1000);
                if slot.r.set(v).is_ok() {
                    slot.sets.set(slot.sets.get() + 1);
                }
            } else {
                let _ = slot.r.get_timeout(w.ms(0, 5));
            }
        }
        18 => {
            let g = match how {
                0 => Some(w.sem.acquire()),
                1 => w.sem.try_acquire(),
                _ => w.sem.acquire_timeout(w.ms(0, 5)),
            };
            if let Some(g) = g {
                let _h = Held::new(w, &w.sem_held, SEM_N, "semaphore");
                sylvan::sleep(w.ms(0, 3));
                drop(_h);
                drop(g);
            }
        }
        19 => {
            if how == 2 && w.chance(20) {
                // A release past the bound must fail, not raise the count.
                // Not while an acquirer waits: a release hands it the
                // permit (documented), which the `try_acquire` below
                // can't take back, so it would be a third holder (a
                // mistake of this model, seen as "3 holders" in a long
                // seed hunt).
                if w.bsem.waiters() > 0 {
                    return;
                }
                let before = w.bsem.available();
                let r = w.bsem.release();
                if before == BSEM_N && r.is_ok() {
                    w.fail("BoundedSemaphore released past its bound".into());
                }
                if r.is_ok() {
                    // It was a permit someone else's guard will give back
                    // too: take it again so the books balance (with no
                    // waiter, the released permit is free to take).
                    match w.bsem.try_acquire() {
                        Some(g) => g.forget(),
                        None => w.fail("bsem: a released permit was not free".into()),
                    }
                }
                return;
            }
            let g = if how == 0 {
                Some(w.bsem.acquire())
            } else {
                w.bsem.acquire_timeout(w.ms(0, 5))
            };
            if let Some(g) = g {
                let _h = Held::new(w, &w.bsem_held, BSEM_N, "bounded semaphore");
                sylvan::sleep(w.ms(0, 3));
                drop(_h);
                drop(g);
            }
        }
        20 => {
            let g = match how {
                0 => Some(w.mx.lock()),
                1 => w.mx.try_lock(),
                _ => w.mx.lock_timeout(w.ms(0, 5)),
            };
            if let Some(mut g) = g {
                if w.mx_in.replace(true) {
                    w.fail("mutex held twice".into());
                }
                struct Out<'a>(&'a Cell<bool>);
                impl Drop for Out<'_> {
                    fn drop(&mut self) {
                        self.0.set(false);
                    }
                }
                let _out = Out(&w.mx_in);
                *g += 1;
                sylvan::sleep(w.ms(0, 2));
            }
        }
        21 => {
            let d = w.ms(0, 4);
            let w2 = w.clone();
            let g = w.pool.spawn(move || {
                sylvan::sleep(d);
                let _ = w2.unb.try_get().map(|t| w2.led.got(t));
            });
            if how == 0 {
                let _ = g.join();
            }
        }
        22 => {
            let n = w.r(5);
            for (i, r) in w
                .pool
                .map(0..n, |i| {
                    sylvan::sleep(Duration::from_millis(i));
                    i * 2
                })
                .into_iter()
                .enumerate()
            {
                match r {
                    Ok(v) if v == i as u64 * 2 => {}
                    Err(e) if e.is_killed() => {}
                    other => w.fail(format!("pool.map item {i}: {other:?}")),
                }
            }
        }
        23 => {
            let n = w.r(5);
            let mut it = w.pool.imap(0..n, move |i| {
                sylvan::sleep(Duration::from_millis(n - i));
                i + 100
            });
            let mut i = 0;
            let stop = w.r(n + 1);
            while i < stop {
                match it.next() {
                    Some(Ok(v)) if v == i + 100 => {}
                    Some(Err(e)) if e.is_killed() => {}
                    other => w.fail(format!("pool.imap item {i}: {other:?}")),
                }
                i += 1;
            }
        }
        24 => {
            let n = w.r(5);
            let it = w.group.imap_unordered(0..n, |i| {
                sylvan::sleep(Duration::from_millis(i % 3));
                i
            });
            let take = w.r(n + 1) as usize;
            for r in it.take(take) {
                if let Err(e) = r
                    && !e.is_killed()
                {
                    w.fail(format!("imap_unordered: {e:?}"));
                }
            }
        }
        25 => {
            let w2 = w.clone();
            let d = w.ms(0, 3);
            let g = w.group.spawn(move || {
                sylvan::sleep(d);
                w2.ev.wait_timeout(Duration::from_millis(2));
            });
            if how == 0 {
                let _ = g.join();
            }
        }
        26 => sylvan::sleep(w.ms(0, 4)),
        27 => sylvan::yield_now(),
        28 => {
            let w2 = w.clone();
            let d = w.ms(0, 6);
            drop(sylvan::spawn_later(d, move || {
                let _ = w2
                    .fifo
                    .get_timeout(Duration::from_millis(2))
                    .map(|t| w2.led.got(t));
            }));
        }
        29 => {
            let slot = w.ar.borrow().clone();
            let d = w.ms(0, 3);
            let child = sylvan::spawn(move || sylvan::sleep(d));
            let objs: [&dyn Waitable; 5] = [&w.ev, &slot.r, &w.sem, &child, &w.bsem];
            if how == 0 {
                let c = 1 + w.r(3) as usize;
                let _ = sylvan::wait(&objs, Some(w.ms(0, 5)), Some(c));
            } else {
                let take = w.r(4) as usize;
                for _ in sylvan::iwait(&objs, Some(w.ms(0, 5))).take(take) {}
            }
            if w.chance(50) {
                child.kill_nowait();
            }
        }
        30 => {
            let d = w.ms(0, 3);
            let v = sylvan::spawn_blocking(move || {
                std::thread::sleep(d);
                7u32
            });
            if v != 7 {
                w.fail(format!("spawn_blocking gave {v}"));
            }
        }
        31 => {
            let mut b = [0u8; 4096];
            let _ = (&w.tcp.1).read(&mut b);
        }
        32 => {
            let buf = vec![0x5a; 64 << 10];
            for _ in 0..w.r(20) {
                if (&w.tcp.0).write(&buf).is_err() {
                    break;
                }
            }
        }
        33 => {
            let l = w.listener.borrow().clone();
            if let Some(l) = l
                && let Ok((s, _)) = l.accept()
            {
                let mut b = [0u8; 1];
                let _ = sylvan::with_timeout(w.ms(0, 3), || (&s).read(&mut b));
            }
        }
        34 => {
            let c = if how == 0 {
                TcpStream::connect(w.laddr)
            } else {
                TcpStream::connect_timeout(w.laddr, w.ms(1, 10))
            };
            if let Ok(c) = c {
                let _ = (&c).write(b"x");
                sylvan::sleep(w.ms(0, 3));
            }
        }
        35 => {
            let mut b = [0u8; 64];
            let _ = w.udp.0.recv_from(&mut b);
        }
        36 => {
            let a = w.udp.0.local_addr().unwrap();
            let _ = w.udp.1.send_to(b"dgram", a);
        }
        37 => {
            if how == 0 {
                let _ = (&w.unix.0).write(&[1u8; 512]);
            } else {
                let mut b = [0u8; 256];
                let _ = (&w.unix.1).read(&mut b);
            }
        }
        38 => {
            let msg = b"chaos-echo";
            match crate::util::exchange(w.saddr, msg) {
                Ok(v) if msg.starts_with(&v) => {}
                Ok(v) => w.fail(format!("echo gave {v:?}")),
                Err(_) => {} // stopped server: refused or reset
            }
        }
        39..=41 => links_op(w, how),
        42 => {
            if w.chance(25) {
                panic!("chaos: actor panics");
            }
        }
        _ => {
            // Greenlet-local with a destructor that may panic.
            // At most one panicking probe per greenlet: two in one `Vec`
            // would abort in the `Vec`'s own drop (std, not sylvan).
            let panic = w.chance(30) && !PROBE.with(|v| v.borrow().iter().any(|p| p.panic));
            w.locals_made.set(w.locals_made.get() + 1);
            let dropped = w.locals_dropped.clone();
            PROBE.with(|v| v.borrow_mut().push(LocalProbe { dropped, panic }));
        }
    }
}

/// A child whose `link` / `link_exception` callbacks block (sleep, queue
/// get) and may panic; the child is joined, killed or detached.
fn links_op(w: &Rc<World>, how: u64) {
    let d = w.ms(0, 4);
    let child_panics = w.chance(30);
    let cb_panics = w.chance(20);
    let w0 = w.clone();
    let c = sylvan::spawn(move || {
        let _g = {
            w0.guards.0.set(w0.guards.0.get() + 1);
            StackGuard(w0.clone())
        };
        sylvan::sleep(d);
        if child_panics {
            panic!("chaos: linked child panics");
        }
        5u64
    });
    let w1 = w.clone();
    c.link(move |o| {
        w1.links_ran.set(w1.links_ran.get() + 1);
        if let sylvan::Outcome::Returned(v) = o
            && **v != 5
        {
            w1.fail(format!("link saw {v}"));
        }
        let _ = w1
            .fifo
            .get_timeout(Duration::from_millis(1))
            .map(|t| w1.led.got(t));
        sylvan::sleep(Duration::from_millis(1));
        if cb_panics {
            panic!("chaos: link callback panics");
        }
    });
    let w2 = w.clone();
    c.link_exception(move |e| {
        if e.is_killed() {
            w2.fail("link_exception saw a kill".into());
        }
        sylvan::sleep(Duration::from_millis(1));
    });
    match how {
        0 => match c.join() {
            Ok(5) => {}
            Err(e) if child_panics && e.is_panic() => {}
            Err(e) if e.is_killed() => {}
            other => w.fail(format!("linked child: {other:?}")),
        },
        1 => {
            sylvan::sleep(w.ms(0, 3));
            c.kill();
        }
        _ => {
            if w.chance(50) {
                c.kill_nowait();
            }
            drop(c);
        }
    }
}

fn actor(w: Rc<World>, ops: u64, limit: Duration) {
    w.guards.0.set(w.guards.0.get() + 1);
    let _g = StackGuard(w.clone());
    let _ = sylvan::with_timeout(limit, || {
        for _ in 0..ops {
            let depth = w.r(4);
            nest(&w, depth, &mut || one_op(&w));
        }
    });
}

// ------------------------------------------------------------------ the director

#[derive(Clone, Copy)]
struct Shape {
    steps: u32,
    max_actors: usize,
}

fn spawn_actor(w: &Rc<World>) -> Greenlet<()> {
    let ops = 2 + w.r(12);
    let limit = w.ms(10, 200);
    let w2 = w.clone();
    if w.chance(20) {
        sylvan::Builder::new()
            .name(format!("actor-{}", w.r(1000)))
            .spawn(move || actor(w2, ops, limit))
            .unwrap()
    } else {
        sylvan::spawn(move || actor(w2, ops, limit))
    }
}

/// One scenario; the checks that need the world are made here, the
/// hub-wide ones by the caller, outside `bounded`.
fn scenario(seed: u64, shape: Shape) -> (Weak<World>, Rc<Ledger>, Rc<Cell<usize>>, usize) {
    let w = World::new(seed);
    let led = w.led.clone();
    let what = format!("seed {seed}");
    let ran = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let remote = {
        let handle = Handle::current();
        let (ran, sent) = (ran.clone(), sent.clone());
        let n = 3 + (seed % 5) as usize;
        std::thread::spawn(move || {
            for i in 0..n {
                let ran = ran.clone();
                let ok = handle.spawn(move || {
                    sylvan::sleep(Duration::from_millis(i as u64 % 3));
                    ran.fetch_add(1, Ordering::SeqCst);
                });
                if ok.is_ok() {
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut actors: Vec<Greenlet<()>> = Vec::new();
    for _ in 0..shape.steps {
        let k = w.r(100);
        w.note(format!("dir {k}"));
        match k {
            0..=29 => {
                if actors.len() < shape.max_actors {
                    actors.push(spawn_actor(&w));
                }
            }
            30..=34 => drop(spawn_actor(&w)), // detached at once
            35..=44 => {
                if !actors.is_empty() {
                    let i = w.r(actors.len() as u64) as usize;
                    actors.swap_remove(i).kill();
                }
            }
            45..=52 => {
                if !actors.is_empty() {
                    let i = w.r(actors.len() as u64) as usize;
                    actors[i].kill_nowait();
                }
            }
            53..=56 => {
                if !actors.is_empty() {
                    let i = w.r(actors.len() as u64) as usize;
                    drop(actors.swap_remove(i)); // detach: it runs on
                }
            }
            57..=60 => {
                if !actors.is_empty() {
                    let i = w.r(actors.len() as u64) as usize;
                    let _ = actors[i].wait(Some(w.ms(0, 5)));
                }
            }
            61 => match w.r(6) {
                0 => w.fifo.close(),
                1 => w.lifo.close(),
                2 => w.prio.close(),
                3 => w.chan.close(),
                4 => w.jq.close(),
                _ => w.unb.close(),
            },
            62 | 63 => {
                let how = [Shutdown::Read, Shutdown::Write, Shutdown::Both][w.r(3) as usize];
                let _ = match w.r(4) {
                    0 => w.tcp.0.shutdown(how),
                    1 => w.tcp.1.shutdown(how),
                    2 => w.unix.0.shutdown(how),
                    _ => w.unix.1.shutdown(how),
                };
            }
            64 | 65 => w.pool.kill(),
            66 => w.group.kill(),
            67 => {
                let s = w.server.borrow().clone();
                if let Some(s) = s {
                    s.stop(Some(w.ms(0, 5)));
                }
            }
            68 => drop(w.listener.borrow_mut().take()),
            69..=72 => w.ev.set(),
            73 | 74 => w.ev.clear(),
            75 => {
                let slot = Rc::new(ArSlot {
                    r: AsyncResult::new(),
                    sets: Cell::new(0),
                });
                w.ars.borrow_mut().push(slot.clone());
                *w.ar.borrow_mut() = slot;
            }
            76..=79 => qput!(&w, w.fifo, 1),
            80 | 81 => {
                qget!(&w, w.fifo, 1);
            }
            _ => sylvan::sleep(w.ms(0, 3)),
        }
    }
    // Wind down: wake, close and stop everything, then kill what is left.
    w.ev.set();
    w.fifo.close();
    w.unb.close();
    w.lifo.close();
    w.prio.close();
    w.chan.close();
    w.jq.close();
    for s in [&w.tcp.0, &w.tcp.1] {
        let _ = s.shutdown(Shutdown::Both);
    }
    for s in [&w.unix.0, &w.unix.1] {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(w.listener.borrow_mut().take());
    let server = w.server.borrow_mut().take();
    if let Some(s) = server {
        s.stop(Some(Duration::from_millis(20)));
        assert_eq!(s.handlers(), 0, "{what}: handlers alive after stop");
    }
    w.pool.kill();
    w.group.kill();
    assert!(
        sylvan::killall(&actors, Some(Duration::from_secs(2))).is_ok(),
        "{what}: actors survived killall\n{}",
        sylvan::dump()
    );
    for g in actors {
        assert!(g.is_dead(), "{what}");
        if let Err(e) = g.join() {
            assert!(
                e.is_killed() || e.is_panic() || e.is_timeout(),
                "{what}: actor ended with {e:?}"
            );
        }
    }
    remote.join().unwrap();
    // Let the detached actors (each bounded by its own `with_timeout`),
    // spawn_later sleepers, link callbacks and Handle greenlets finish;
    // `wait_all` can't be used here (inside `bounded`).
    let t = Instant::now();
    while sylvan::stats().alive > 0 && t.elapsed() < Duration::from_secs(2) {
        sylvan::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        sylvan::stats().alive,
        0,
        "{what}: greenlets never ended\n{}\ntrace: {:?}",
        sylvan::dump(),
        w.trace.borrow()
    );
    assert_eq!(
        ran.load(Ordering::SeqCst),
        sent.load(Ordering::SeqCst),
        "{what}: Handle::spawn greenlets lost"
    );
    // Drain: everything a put reported Ok is here or was got.
    macro_rules! drain {
        ($q:expr, $jq:expr) => {
            loop {
                match $q.try_get() {
                    Ok(t) => {
                        w.led.got(t);
                        if $jq {
                            w.jq.task_done();
                        }
                    }
                    Err(TryGetError::Closed) => break,
                    Err(e) => panic!("{what}: closed queue said {e:?}"),
                }
            }
        };
    }
    drain!(w.fifo, false);
    drain!(w.unb, false);
    drain!(w.lifo, false);
    drain!(w.prio, false);
    drain!(w.chan, false);
    drain!(w.jq, true);
    assert_eq!(w.jq.unfinished(), 0, "{what}: JoinableQueue unfinished");
    // Exclusive things free, nobody waiting.
    assert_eq!(w.sem.available(), SEM_N, "{what}: semaphore permits");
    assert_eq!(
        w.bsem.available(),
        BSEM_N,
        "{what}: bounded semaphore permits"
    );
    assert!(!w.mx.is_locked(), "{what}: mutex still locked");
    for (n, v) in [
        ("sem", w.sem.waiters()),
        ("bsem", w.bsem.waiters()),
        ("mutex", w.mx.waiters()),
        ("event", w.ev.waiters()),
        ("fifo getters", w.fifo.getters()),
        ("fifo putters", w.fifo.putters()),
        ("chan putters", w.chan.putters()),
        ("jq getters", w.jq.getters()),
    ] {
        assert_eq!(v, 0, "{what}: {n} waiters left");
    }
    for slot in w.ars.borrow().iter() {
        assert!(slot.sets.get() <= 1, "{what}: AsyncResult set twice");
        assert_eq!(slot.r.waiters(), 0, "{what}: AsyncResult waiters left");
        assert_eq!(slot.sets.get() == 1, slot.r.is_ready(), "{what}");
    }
    assert_eq!(w.pool.len(), 0, "{what}: pool members left");
    assert_eq!(w.pool.free_count(), 3, "{what}: pool slots");
    assert!(w.group.is_empty(), "{what}: group members left");
    assert_eq!(
        w.guards.0.get(),
        w.guards.1.get(),
        "{what}: stack-guard destructors ran {} of {}",
        w.guards.1.get(),
        w.guards.0.get()
    );
    assert_eq!(
        w.locals_dropped.get(),
        w.locals_made.get(),
        "{what}: greenlet-local destructors"
    );
    let fails = w.fails.borrow().clone();
    assert!(
        fails.is_empty(),
        "{what}: {fails:?}\ntrace: {:?}",
        w.trace.borrow()
    );
    let locals = (w.locals_dropped.clone(), w.locals_made.get());
    let weak = Rc::downgrade(&w);
    drop(w);
    (weak, led, locals.0, locals.1)
}

fn run_seeds(seeds: &[u64], shape: Shape) {
    // Warm up: the hub, a pool thread, a stack; then count descriptors.
    let _ = sylvan::spawn_blocking(|| 1);
    sylvan::spawn(|| ()).join().unwrap();
    check_quiet("warm-up", None);
    let fd0 = fds();
    let t = Instant::now();
    for &seed in seeds {
        let what = format!("seed {seed}");
        let (weak, led, locals_dropped, locals_made) = bounded(|| scenario(seed, shape));
        check_quiet(&what, Some(fd0));
        assert!(
            weak.upgrade().is_none(),
            "{what}: the world outlived every greenlet (a closure was kept)"
        );
        let n = led.check(&what);
        assert_eq!(locals_dropped.get(), locals_made, "{what}: locals");
        println!("{what}: {n} tokens, {:?} so far", t.elapsed());
        hub_works(&what);
    }
}

const SHAPE: Shape = Shape {
    steps: 120,
    max_actors: 12,
};

const CROWD: Shape = Shape {
    steps: 300,
    max_actors: 40,
};

#[test]
fn chaos_seeds_a() {
    let seeds = seeds(1, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15]);
    seeds_child(
        "probes40::chaos_seeds_a",
        "p40-chaos-a",
        seeds.len(),
        || run_seeds(&seeds, SHAPE),
    );
}

#[test]
fn chaos_seeds_b() {
    let seeds = seeds(
        2,
        &[
            0xC0FFEE, 77, 4242, 1337, 9001, 31337, 0xBEEF, 2024, 65537, 808, 5150, 123_456,
        ],
    );
    seeds_child(
        "probes40::chaos_seeds_b",
        "p40-chaos-b",
        seeds.len(),
        || run_seeds(&seeds, SHAPE),
    );
}

#[test]
fn chaos_crowd() {
    let seeds = seeds(3, &[11, 12, 13, 16, 17, 18]);
    seeds_child(
        "probes40::chaos_crowd",
        "p40-chaos-crowd",
        seeds.len(),
        || run_seeds(&seeds, CROWD),
    );
}

// ------------------------------------------------------------------ findings

struct Boom(Rc<Cell<usize>>, &'static str);

impl Drop for Boom {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("{}", self.1);
    }
}

sylvan::greenlet_local! {
    static BOOM_A: RefCell<Option<Boom>> = RefCell::new(None);
    static BOOM_B: RefCell<Option<Boom>> = RefCell::new(None);
}

/// Two greenlet-locals (two keys) whose destructors both panic: the docs
/// (`GreenletLocal`: "a destructor that panics does not stop the others:
/// all are dropped, then the greenlet fails with that panic") promise both
/// run and the greenlet fails with the first panic. Found by the chaos
/// runs (seed 5 of `chaos_seeds_a` before the probe limited itself to one
/// panicking value per greenlet). `Locals::clear` (hub/src/local.rs:65)
/// drops the whole `Vec` of values inside one `catch_unwind`: when the
/// first value's drop panics, std drops the rest of the slice in the
/// unwind's cleanup, and the second panic there is a panic in cleanup:
/// "thread caused non-unwinding panic. aborting." The process died,
/// whether the greenlet returned or was killed (fixed: each value is
/// dropped in its own `catch_unwind`).
#[test]
fn two_panicking_greenlet_local_destructors() {
    child(
        "probes40::two_panicking_greenlet_local_destructors",
        "p40-two-booms",
        || {
            bounded(|| {
                for kill in [false, true] {
                    let n = Rc::new(Cell::new(0));
                    let (a, b) = (n.clone(), n.clone());
                    let g = sylvan::spawn(move || {
                        BOOM_A.with(|v| *v.borrow_mut() = Some(Boom(a, "boom a")));
                        BOOM_B.with(|v| *v.borrow_mut() = Some(Boom(b, "boom b")));
                        if kill {
                            sylvan::sleep(Duration::from_secs(60));
                        }
                    });
                    sylvan::yield_now();
                    if kill {
                        g.kill();
                        // Already unwinding from the kill: reported on stderr.
                        assert!(g.join().unwrap_err().is_killed(), "kill={kill}");
                    } else {
                        let e = g.join().unwrap_err();
                        assert!(e.is_panic(), "kill={kill}: {e:?}");
                    }
                    assert_eq!(n.get(), 2, "kill={kill}: both destructors ran");
                }
            });
            hub_works("two panicking locals");
        },
    );
}

// ------------------------------------------------------------------ soaks

/// Two waiters parked on the same object; one item / permit comes, which
/// wakes the first; that first waiter is killed before it runs. The docs
/// promise the item (permit, lock) passes to the second, never lost:
/// 300 rounds of each of nine kinds.
#[test]
fn soak_chosen_waiter_killed_passes_on() {
    quiet();
    bounded(|| {
        macro_rules! queue_round {
            ($q:expr, $put:ident, $round:expr) => {{
                let q = Rc::new($q);
                let (q1, q2) = (q.clone(), q.clone());
                let first = sylvan::spawn(move || q1.get());
                let second = sylvan::spawn(move || q2.get());
                sylvan::yield_now();
                assert_eq!(q.getters(), 2, "round {}", $round);
                q.$put($round).unwrap();
                first.kill_nowait();
                assert_eq!(
                    second.join().unwrap(),
                    Some($round),
                    "round {}: the killed getter's item was lost",
                    $round
                );
                assert!(first.join().unwrap_err().is_killed());
                assert_eq!(q.getters(), 0, "round {}", $round);
            }};
        }
        for round in 0..300u32 {
            queue_round!(Queue::bounded(1), put, round);
            queue_round!(Queue::unbounded(), put, round);
            queue_round!(LifoQueue::bounded(2), put, round);
            queue_round!(PriorityQueue::unbounded(), put, round);
            queue_round!(JoinableQueue::unbounded(), put, round);
            queue_round!(Channel::new(), try_put, round);
            // Semaphore, BoundedSemaphore, Mutex: the permit / lock.
            let sem = Rc::new(Semaphore::new(1));
            let held = sem.try_acquire().unwrap();
            let (s1, s2) = (sem.clone(), sem.clone());
            let first = sylvan::spawn(move || drop(s1.acquire()));
            let second =
                sylvan::spawn(move || s2.acquire_timeout(Duration::from_secs(2)).is_some());
            sylvan::yield_now();
            drop(held);
            first.kill_nowait();
            assert!(
                second.join().unwrap(),
                "round {round}: semaphore permit lost"
            );
            assert_eq!(sem.available(), 1, "round {round}");
            let b = Rc::new(BoundedSemaphore::new(1));
            let held = b.try_acquire().unwrap();
            let (b1, b2) = (b.clone(), b.clone());
            let first = sylvan::spawn(move || drop(b1.acquire()));
            let second =
                sylvan::spawn(move || b2.acquire_timeout(Duration::from_secs(2)).is_some());
            sylvan::yield_now();
            drop(held);
            first.kill_nowait();
            assert!(second.join().unwrap(), "round {round}: bounded permit lost");
            assert_eq!(b.available(), 1, "round {round}");
            let m = Rc::new(Mutex::new(0u32));
            let g = m.lock();
            let (m1, m2) = (m.clone(), m.clone());
            let first = sylvan::spawn(move || *m1.lock() += 1);
            let second = sylvan::spawn(move || {
                m2.lock_timeout(Duration::from_secs(2))
                    .map(|mut g| *g += 10)
                    .is_some()
            });
            sylvan::yield_now();
            drop(g);
            first.kill_nowait();
            assert!(second.join().unwrap(), "round {round}: mutex lost");
            assert!(!m.is_locked(), "round {round}");
            assert_eq!(*m.lock(), 10, "round {round}");
        }
    });
    check_quiet("soak_chosen_waiter_killed_passes_on", None);
    hub_works("soak_chosen_waiter_killed_passes_on");
}

/// IO waiters killed or timed out while parked, on every socket kind, 150
/// rounds each: the next waiter gets the data, no IO registration, timer
/// or descriptor is left (checked in a child, whose descriptors are ours).
#[test]
fn soak_io_waiters_unwound() {
    child("probes40::soak_io_waiters_unwound", "p40-soak-io", || {
        sylvan::spawn(|| ()).join().unwrap();
        let fd0 = fds();
        bounded(|| {
            let mut rng = Rng::new(40);
            for round in 0..150u32 {
                let kill = rng.below(2) == 0;
                // The first waiter is unwound (killed or timed out),
                // the second gets what comes.
                macro_rules! two_readers {
                    ($a:expr, $b:expr, $read:expr, $send:expr) => {{
                        let (a, b) = (Rc::new($a), Rc::new($b));
                        let (b1, b2) = (b.clone(), b.clone());
                        let first = sylvan::spawn(move || {
                            let r = sylvan::with_timeout(Duration::from_millis(1), || $read(&b1));
                            assert!(r.is_err() || kill, "round {round}: {:?}", r.is_ok());
                        });
                        let second = sylvan::spawn(move || $read(&b2));
                        sylvan::yield_now();
                        if kill {
                            first.kill();
                        } else {
                            first.join().unwrap();
                        }
                        $send(&a);
                        let got = second.join().unwrap();
                        assert_eq!(got, 4, "round {round} kill={kill}");
                    }};
                }
                let rd = |s: &Rc<TcpStream>| {
                    let mut b = [0u8; 8];
                    (&**s).read(&mut b).unwrap()
                };
                let (c, s) = tcp_pair();
                two_readers!(c, s, rd, |a: &Rc<TcpStream>| (&**a)
                    .write_all(b"tcp!")
                    .unwrap());
                let rd = |s: &Rc<UnixStream>| {
                    let mut b = [0u8; 8];
                    (&**s).read(&mut b).unwrap()
                };
                let (c, s) = UnixStream::pair().unwrap();
                two_readers!(c, s, rd, |a: &Rc<UnixStream>| (&**a)
                    .write_all(b"unx!")
                    .unwrap());
                let u0 = UdpSocket::bind("127.0.0.1:0").unwrap();
                let u1 = UdpSocket::bind("127.0.0.1:0").unwrap();
                let to = u1.local_addr().unwrap();
                let rd = |s: &Rc<UdpSocket>| {
                    let mut b = [0u8; 8];
                    s.recv(&mut b).unwrap()
                };
                two_readers!(u0, u1, rd, |a: &Rc<UdpSocket>| {
                    a.send_to(b"udp!", to).unwrap();
                });
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let rd = |l: &Rc<TcpListener>| {
                    let (c, _) = l.accept().unwrap();
                    drop(c);
                    4usize
                };
                two_readers!((), l, rd, |_: &Rc<()>| {
                    TcpStream::connect(addr).unwrap();
                });
                // A writer parked on a full socket, unwound.
                let (c, s) = tcp_pair();
                let c = Rc::new(c);
                let c1 = c.clone();
                let w = sylvan::spawn(move || {
                    let buf = vec![1u8; 256 << 10];
                    loop {
                        (&*c1).write_all(&buf).unwrap();
                    }
                });
                sylvan::sleep(Duration::from_millis(1));
                if kill {
                    w.kill();
                } else {
                    drop(w); // detached; ends when its peer goes
                    drop(s);
                    sylvan::sleep(Duration::from_millis(1));
                }
            }
        });
        check_quiet("soak_io_waiters_unwound", Some(fd0));
        hub_works("soak_io_waiters_unwound");
    });
}

/// Nested `with_timeout`s with random deadlines around random sleeps, 1500
/// times: at most one level reports its expiry, only one whose deadline
/// had passed, and the body finished exactly when none did.
#[test]
fn soak_nested_timeouts() {
    bounded(|| {
        let mut rng = Rng::new(4040);
        for round in 0..1500u32 {
            let depth = 1 + rng.below(4) as usize;
            let ds: Vec<Duration> = (0..depth)
                .map(|_| Duration::from_micros(rng.below(1500)))
                .collect();
            let sleep = Duration::from_micros(rng.below(1200));
            let errs = RefCell::new(Vec::new());
            let done = Cell::new(false);
            fn level(
                i: usize,
                ds: &[Duration],
                sleep: Duration,
                errs: &RefCell<Vec<(usize, Duration)>>,
                done: &Cell<bool>,
            ) {
                if i == ds.len() {
                    sylvan::sleep(sleep);
                    done.set(true);
                    return;
                }
                let t = Instant::now();
                if sylvan::with_timeout(ds[i], || level(i + 1, ds, sleep, errs, done)).is_err() {
                    errs.borrow_mut().push((i, t.elapsed()));
                }
            }
            level(0, &ds, sleep, &errs, &done);
            let errs = errs.into_inner();
            assert!(errs.len() <= 1, "round {round}: {ds:?} {sleep:?}: {errs:?}");
            assert_eq!(
                done.get(),
                errs.is_empty(),
                "round {round}: {ds:?} {errs:?}"
            );
            if let Some(&(i, took)) = errs.first() {
                assert!(
                    took >= ds[i],
                    "round {round}: level {i} expired early: {took:?}"
                );
            }
        }
    });
    check_quiet("soak_nested_timeouts", None);
}

/// 1500 greenlets, each with a blocking `link` and `link_exception`,
/// returning, panicking, killed before or after starting, or detached;
/// every link fires once, `link_exception` only for panics, and the hub
/// is quiet after.
#[test]
fn soak_link_storm() {
    quiet();
    let links = Rc::new(Cell::new(0usize));
    let excs = Rc::new(Cell::new(0usize));
    let mut panics = 0usize;
    bounded(|| {
        let mut rng = Rng::new(99);
        let mut gs = Vec::new();
        for i in 0..1500u32 {
            let fate = rng.below(5);
            if fate == 1 {
                panics += 1;
            }
            let g = sylvan::spawn(move || {
                if i % 3 == 0 {
                    sylvan::yield_now();
                }
                if fate == 1 {
                    panic!("storm {i}");
                }
                i
            });
            let l = links.clone();
            g.link(move |_| {
                sylvan::yield_now();
                l.set(l.get() + 1);
            });
            let e = excs.clone();
            g.link_exception(move |err| {
                assert!(err.is_panic());
                sylvan::sleep(Duration::from_micros(100));
                e.set(e.get() + 1);
            });
            match fate {
                2 => g.kill_nowait(), // before it starts: never runs
                3 => drop(g),
                _ => gs.push(g),
            }
            if i % 50 == 0 {
                sylvan::yield_now();
                if let Some(g) = gs.pop() {
                    // After it may have started.
                    g.kill();
                    gs.push(g);
                }
            }
        }
        for g in gs {
            let _ = g.join();
        }
        let t = Instant::now();
        while links.get() < 1500 && t.elapsed() < Duration::from_secs(2) {
            sylvan::sleep(Duration::from_millis(1));
        }
    });
    check_quiet("soak_link_storm", None);
    assert_eq!(links.get(), 1500, "every link fired once");
    // A greenlet killed after the loop's `kill` (i % 50) may have
    // panicked first; never more exceptions than panics.
    assert!(
        excs.get() <= panics,
        "{} exceptions, {panics} panics",
        excs.get()
    );
    assert!(
        excs.get() + 40 >= panics,
        "{} exceptions, {panics} panics",
        excs.get()
    );
    hub_works("soak_link_storm");
}
