//! Probe round 42: scale. No operation may cost more per item as the
//! number of parked greenlets grows ("thousands of such tasks on one
//! thread").
//!
//! Method: each probe times one operation over `n` and over `8n` items
//! (after a warm-up at `n`) in this thread's CPU time (see `cpu_clock`),
//! takes the best of three runs of each, and
//! compares the per-item costs (measuring again, at most twice, when the
//! ratio reads above 3: see `settled`). Linear work keeps the ratio near 1; a path
//! whose per-item cost grows with `n` (quadratic in total) shows about 8.
//! Stacks are all pooled for the measurement (`set_stack_pool_limit`):
//! past the default bound of 1024 every ending greenlet unmaps its stack,
//! a fixed cost per item that would read as growth (event set: 619 ns/item
//! at 1,000, 5,694 at 8,000 with the default bound; 697 and 923 pooled).
//! Guards assert only that the per-item cost at `8n` is at most 6 times
//! that at `n`: coarse fences against a quadratic path, not benchmarks
//! (the sizes are measured in turn; with the other test thread busy, the
//! worst linear path seen was x1.83, event set).
//! Defects were ignored tests asserting the growth criterion (below 3x),
//! which they failed with their numbers; all six are fixed and now guard
//! that criterion.
//!
//! Measured (debug build, 2 shared cores; per item at n / 8n, ratio):
//!
//! | operation | n | per item | ratio |
//! |---|---|---|---|
//! | kill `Event` waiters, last first | 1000 | 7.9 / 8.5 us | 1.09 |
//! | `Event::set`, all N wake and end | 1000 | 0.70 / 0.92 us | 1.32 |
//! | `Semaphore` waiters time out, reverse order | 1000 | 1.43 / 1.27 us | 0.89 |
//! | `Queue` getters time out, reverse order | 1000 | 1.82 / 1.27 us | 0.70 |
//! | bounded `Queue` putters time out, reverse | 1000 | 1.56 / 1.32 us | 0.84 |
//! | `Mutex` waiters time out, reverse | 1000 | 1.42 / 1.41 us | 1.00 |
//! | `spawn_later` x N, killed before start | 1000 | 287 / 307 ns | 1.07 |
//! | N link callbacks on one greenlet | 1000 | 1.53 / 1.61 us | 1.06 |
//! | `Group::kill` | 1000 | 8.6 / 8.6 us | 1.00 |
//! | `Pool(1)`: queued spawners killed, reverse | 1000 | 8.7 / 9.3 us | 1.07 |
//! | `Pool(1)`: queued spawners released | 1000 | 4.8 / 3.8 us | 0.80 |
//! | `Group::imap_unordered` | 1000 | 1.52 / 1.58 us | 1.03 |
//! | `Pool(100)::imap_unordered` / `imap` | 1000 | 1.7 / 1.8, 2.5 / 2.5 us | 1.02 |
//! | `dump()` per greenlet | 1000 | 118 / 128 ns | 1.08 |
//! | kill a greenlet in `wait()` over N events, per event | 1000 | 62 / 54 ns | 0.87 |
//! | N sockets, parked reader each, closed in reverse | 200 | 27 / 31 us | 1.14 |
//! | `StreamServer`: N connections closed in reverse | 200 | 24 / 35 us | 1.44 |
//! | `StreamServer::stop` with N connections | 200 | 21 / 30 us | 1.43 |
//! | sleepers killed, reverse (timer heap) | 1000 | 6.3 / 6.7 us | 1.08 |
//! | readers of one UDP socket time out, in order | 1000 | 7.3 / 11.6 us | 1.59 |
//! | **joiners of one greenlet time out** | 500 | 4.4 / 33.7 us | **7.63** |
//! | **`idle()` waiters killed** | 1000 | 15.5 / 82.0 us | **5.29** |
//! | **`idle()` rounds (4 each)** | 500 | 20.0 / 84.6 us | **4.22** |
//! | **`wait()` on events set one by one** | 250 | 21.8 / 170 us | **7.79** |
//! | **`wait()` on greenlets ending one by one** | 250 | 17.4 / 130 us | **7.48** |
//! | **getters outrun, back in line** | 500 | 3.5 / 27.0 us | **7.66** |
//! | **one datagram, N readers parked on the socket** | 250 | 52 / 411 us | **7.90** |
//! | **one mpsc send, N greenlets parked on the receiver** | 250 | 0.33 / 16.5 ms | **50.7** |
//!
//! Found: six paths whose cost grows with the number of parked greenlets.
//! (1) A greenlet's links are a `Vec`: a joiner that leaves by timeout or
//! kill removes itself with `retain` over all of them (task.rs:563), so N
//! timed joins of one greenlet cost O(N^2). (2) `idle()` waiters are a
//! `Vec` with `retain`/`contains` (hub.rs:1107, 1113): each waiter leaving
//! scans the list. (3) `iwait` registers on every remaining object at each
//! `next()` and unregisters them all after (wait.rs:318): `wait(objs)` over
//! N objects that become ready one at a time is O(N^2). (4) A queue getter
//! woken for an item that another greenlet took first goes back in line
//! with `push_sorted`, walking the line from its head (waitlist.rs:341,
//! queue_core.rs:509): N outrun getters are O(N^2). Fixed since: the
//! place is searched from both ends at once. (5) Every readiness
//! event on a socket wakes all of its parked readers, each retrying the
//! syscall (io.rs:274; their list is a `Vec` with O(N) removal,
//! io.rs:161): one datagram costs O(N). (6) An mpsc send wakes every
//! greenlet parked on the receiver (shared through an `Rc`, as the types
//! allow; mpsc.rs:167), and each re-parks after a `retain` over the list
//! (mpsc.rs:221): O(N^2) per send. Everything else probed stays linear.
//! Fixed since: (1), a waiter's entry becomes a tombstone in place; (2),
//! idle waiters are kept by ticket in a `BTreeMap`; (3), `iwait` registers
//! once, through proxy waiters that note each ready object in a set the
//! iterator drains into a min-heap (O(log n) per item); (5), an event
//! wakes only the first reader, and whoever leaves while the direction is
//! still flagged ready wakes the next; (6), a send chooses one parked
//! receiver per queued value, and a chosen one that leaves without taking
//! a value passes the choice on.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use cpu_clock::Instant;

use sylvan::Waitable;
use sylvan::sync::{Event, Mutex, Queue, Semaphore};

/// The probes time this thread's CPU time, not the wall clock: the suite's
/// other test thread shares the two cores, and a probe preempted half-way
/// would read as growth (the wall clock once gave x6.3 for `Event::set`,
/// whose own runs measure x2.7-x4.3).
mod cpu_clock {
    use std::time::Duration;

    /// A reading of `CLOCK_THREAD_CPUTIME_ID` (user and system time of
    /// this thread), with the two methods the probes use.
    #[derive(Clone, Copy)]
    pub struct Instant(Duration);

    impl Instant {
        pub fn now() -> Instant {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec for the call.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
            Instant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
        }

        pub fn elapsed(&self) -> Duration {
            Instant::now().0.saturating_sub(self.0)
        }
    }
}

/// How much bigger the big case is.
const GROWTH: usize = 8;

/// The criterion of a defect: per-item cost at `GROWTH * n` more than this
/// many times that at `n`.
const NOT_GROWING: f64 = 3.0;

/// Per-item cost at `n` and at `GROWTH * n`.
struct Growth {
    what: &'static str,
    n: usize,
    small: f64,
    big: f64,
}

impl Growth {
    fn ratio(&self) -> f64 {
        self.big / self.small
    }
}

impl fmt::Display for Growth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:.0} ns/item at n={}, {:.0} ns/item at n={}: x{:.2}",
            self.what,
            self.small,
            self.n,
            self.big,
            GROWTH * self.n,
            self.ratio()
        )
    }
}

/// Measures `run` at `n` (after a warm-up there) and at `GROWTH * n`: the
/// best (smallest) per-item time of three runs of each, the sizes taken in
/// turn so that a burst of load from the other test threads hits both.
/// `run(n)` returns the time of its measured part.
fn growth(what: &'static str, n: usize, run: impl Fn(usize) -> Duration) -> Growth {
    // Stacks past the pool's bound (1024 by default) are unmapped when their
    // greenlet ends: a constant per item above that count, which would
    // read as growth. Pooling them all measures the runtime's own paths.
    sylvan::set_stack_pool_limit(GROWTH * n + 64);
    run(n);
    settled(|| {
        let (mut small, mut big) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            small = small.min(run(n));
            big = big.min(run(GROWTH * n));
        }
        Growth {
            what,
            n,
            small: small.as_nanos() as f64 / n as f64,
            big: big.as_nanos() as f64 / (GROWTH * n) as f64,
        }
    })
}

/// Takes `measure`'s growth, measuring again (up to twice) while it reads
/// as a defect, and keeps the lowest ratio seen. A path whose per-item cost
/// really grows with `n` reads as growth every time; a linear one read
/// above 3x only when the other test thread's load or cache pressure hit
/// the big case (seen in CI: x3.18 for a linear path, best of three).
fn settled(mut measure: impl FnMut() -> Growth) -> Growth {
    let mut best = measure();
    for _ in 0..2 {
        if best.ratio() <= NOT_GROWING {
            break;
        }
        eprintln!("{best} (measuring again)");
        let g = measure();
        if g.ratio() < best.ratio() {
            best = g;
        }
    }
    eprintln!("{best}");
    best
}

/// A longer bound than `bounded`'s.
fn long<T>(f: impl FnOnce() -> T) -> T {
    crate::util::bounded_by(Duration::from_secs(60), f)
}

/// `n` greenlets parked in `wait` on one event.
fn parked_on_event(n: usize) -> (Rc<Event>, Vec<sylvan::Greenlet<()>>) {
    let ev = Rc::new(Event::new());
    let gs = (0..n)
        .map(|_| {
            let ev = ev.clone();
            sylvan::spawn(move || {
                ev.wait();
            })
        })
        .collect();
    sylvan::yield_now();
    assert_eq!(ev.waiters(), n);
    (ev, gs)
}

/// Lets deadlines pass without running the hub.
fn let_deadlines_pass(d: Duration) {
    std::thread::sleep(d);
}

/// The coarse guard: per-item cost at `GROWTH * n` at most 6 times that at
/// `n`.
fn assert_linear(g: &Growth) {
    assert!(
        g.ratio() <= 6.0,
        "per-item cost grew more than 6x for 8x the items: {g}"
    );
}

/// The criterion of a defect: per-item cost growing more than 3x for 8x
/// the items.
fn assert_not_growing(g: &Growth) {
    assert!(
        g.ratio() <= NOT_GROWING,
        "per-item cost grows with the number of items (quadratic in total): {g}"
    );
}

/// A per-operation cost measured with `n` and with `GROWTH * n` greenlets
/// parked (`run(n)` returns nanoseconds per operation, best of its runs).
fn growth_per_op(what: &'static str, n: usize, run: impl Fn(usize) -> f64) -> Growth {
    sylvan::set_stack_pool_limit(GROWTH * n + 64);
    run(n);
    settled(|| {
        let (mut small, mut big) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            small = small.min(run(n));
            big = big.min(run(GROWTH * n));
        }
        Growth {
            what,
            n,
            small,
            big,
        }
    })
}

// ---------------------------------------------------------------- guards

// 7.9 / 8.5 us per kill (x1.09); killall 7.3 / 9.7 us (x1.33).
#[test]
fn event_waiters_killed_last_first_or_all_at_once_stay_linear() {
    long(|| {
        assert_linear(&growth("event waiters killed, last first", 1000, |n| {
            let (_ev, gs) = parked_on_event(n);
            let t = Instant::now();
            for g in gs.iter().rev() {
                g.kill();
            }
            t.elapsed()
        }));
        assert_linear(&growth("event waiters killall", 1000, |n| {
            let (_ev, gs) = parked_on_event(n);
            let t = Instant::now();
            sylvan::killall(&gs, None).unwrap();
            t.elapsed()
        }));
    });
}

// 0.70 / 0.92 us per waiter (x1.32).
#[test]
fn event_set_with_many_waiters_stays_linear() {
    long(|| {
        assert_linear(&growth("event set, all wake and end", 1000, |n| {
            let (ev, gs) = parked_on_event(n);
            let t = Instant::now();
            ev.set();
            assert!(sylvan::joinall(&gs, None));
            t.elapsed()
        }));
    });
}

/// Spawns `n` greenlets running `f(i, timeout)`, the timeouts in reverse
/// order of arrival (the last to park times out first); lets every
/// deadline pass without running the hub; times the `joinall` that then
/// fires them all.
fn timeouts_in_reverse(n: usize, f: impl Fn(usize, Duration) + Clone + 'static) -> Duration {
    let base = Duration::from_millis(2);
    let gs: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            sylvan::spawn(move || f(i, base + Duration::from_micros((n - i) as u64)))
        })
        .collect();
    sylvan::yield_now();
    let_deadlines_pass(base + Duration::from_micros(n as u64) + Duration::from_millis(3));
    let t = Instant::now();
    assert!(sylvan::joinall(&gs, None));
    t.elapsed()
}

// Semaphore 1.43 / 1.27 us (x0.89), queue getters 1.82 / 1.27 (x0.70),
// bounded queue putters 1.56 / 1.32 (x0.84), mutex 1.42 / 1.41 (x1.00).
#[test]
fn waiters_timing_out_last_first_stay_linear() {
    long(|| {
        assert_linear(&growth("semaphore waiters time out", 1000, |n| {
            let sem = Rc::new(Semaphore::new(0));
            timeouts_in_reverse(n, move |_, d| assert!(sem.acquire_timeout(d).is_none()))
        }));
        assert_linear(&growth("queue getters time out", 1000, |n| {
            let q = Rc::new(Queue::<u32>::unbounded());
            timeouts_in_reverse(n, move |_, d| assert!(q.get_timeout(d).is_err()))
        }));
        assert_linear(&growth("bounded queue putters time out", 1000, |n| {
            let q = Rc::new(Queue::<u32>::bounded(1));
            q.put(0).unwrap();
            timeouts_in_reverse(n, move |i, d| assert!(q.put_timeout(i as u32, d).is_err()))
        }));
        assert_linear(&growth("mutex waiters time out", 1000, |n| {
            let m = Rc::new(Mutex::new(0));
            let m2 = m.clone();
            let holder = sylvan::spawn(move || {
                let _g = m2.lock();
                sylvan::sleep(Duration::from_secs(3600));
            });
            sylvan::yield_now();
            let d = timeouts_in_reverse(n, move |_, d| assert!(m.lock_timeout(d).is_none()));
            holder.kill();
            d
        }));
    });
}

// spawn_later killed before start 287 / 307 ns (x1.07); sleepers killed
// last first 6.3 / 6.7 us (x1.08): the timer heap.
#[test]
fn timers_cancelled_in_bulk_stay_linear() {
    long(|| {
        assert_linear(&growth("spawn_later, killed before start", 1000, |n| {
            let gs: Vec<_> = (0..n)
                .map(|i| sylvan::spawn_later(Duration::from_secs(10 + i as u64), || ()))
                .collect();
            let t = Instant::now();
            for g in gs.iter().rev() {
                g.kill();
            }
            t.elapsed()
        }));
        assert_linear(&growth("sleepers killed, last first", 1000, |n| {
            let gs: Vec<_> = (0..n)
                .map(|i| sylvan::spawn(move || sylvan::sleep(Duration::from_secs(100 + i as u64))))
                .collect();
            sylvan::yield_now();
            let t = Instant::now();
            for g in gs.iter().rev() {
                g.kill();
            }
            t.elapsed()
        }));
    });
}

// 1.53 / 1.61 us per callback (x1.06).
#[test]
fn many_link_callbacks_on_one_greenlet_stay_linear() {
    long(|| {
        assert_linear(&growth("link callbacks on one greenlet", 1000, |n| {
            let (ev, mut gs) = parked_on_event(1);
            let target = gs.pop().unwrap();
            let count = Rc::new(Cell::new(0usize));
            for _ in 0..n {
                let count = count.clone();
                target.link(move |_| count.set(count.get() + 1));
            }
            let t = Instant::now();
            ev.set();
            target.join().unwrap();
            while count.get() < n {
                sylvan::yield_now();
            }
            t.elapsed()
        }));
    });
}

// Group::kill 8.6 / 8.6 us (x1.00); Pool(1) spawners killed last first
// 8.7 / 9.3 (x1.07), released 4.8 / 3.8 (x0.80).
#[test]
fn group_kill_and_queued_pool_spawners_stay_linear() {
    long(|| {
        assert_linear(&growth("Group::kill", 1000, |n| {
            let ev = Rc::new(Event::new());
            let group = sylvan::pool::Group::new();
            for _ in 0..n {
                let ev = ev.clone();
                group.spawn(move || {
                    ev.wait();
                });
            }
            sylvan::yield_now();
            let t = Instant::now();
            group.kill();
            t.elapsed()
        }));
        for release in [false, true] {
            let what = if release {
                "Pool(1) spawners released"
            } else {
                "Pool(1) spawners killed, last first"
            };
            assert_linear(&growth(what, 1000, |n| {
                let ev = Rc::new(Event::new());
                let pool = Rc::new(sylvan::pool::Pool::new(1));
                let e = ev.clone();
                pool.spawn(move || {
                    e.wait();
                });
                let gs: Vec<_> = (0..n)
                    .map(|_| {
                        let pool = pool.clone();
                        sylvan::spawn(move || {
                            pool.spawn(|| ());
                        })
                    })
                    .collect();
                sylvan::yield_now();
                let t = Instant::now();
                if release {
                    ev.set();
                    assert!(sylvan::joinall(&gs, None));
                    pool.join();
                    return t.elapsed();
                }
                for g in gs.iter().rev() {
                    g.kill();
                }
                let d = t.elapsed();
                ev.set();
                pool.join();
                d
            }));
        }
    });
}

// Group::imap_unordered 1.52 / 1.58 us (x1.03); Pool(100)::imap_unordered
// 1.72 / 1.76 (x1.02); Pool(100)::imap 2.46 / 2.50 (x1.01).
#[test]
fn imap_over_many_items_stays_linear() {
    long(|| {
        assert_linear(&growth("Group::imap_unordered", 1000, |n| {
            let group = sylvan::pool::Group::new();
            let t = Instant::now();
            assert_eq!(group.imap_unordered(0..n, |i| i).count(), n);
            t.elapsed()
        }));
        assert_linear(&growth("Pool(100)::imap_unordered", 1000, |n| {
            let pool = sylvan::pool::Pool::new(100);
            let t = Instant::now();
            assert_eq!(pool.imap_unordered(0..n, |i| i).count(), n);
            t.elapsed()
        }));
        assert_linear(&growth("Pool(100)::imap", 1000, |n| {
            let pool = sylvan::pool::Pool::new(100);
            let t = Instant::now();
            assert_eq!(pool.imap(0..n, |i| i).count(), n);
            t.elapsed()
        }));
    });
}

// 118 / 128 ns per greenlet (x1.08).
#[test]
fn dump_stays_linear() {
    long(|| {
        assert_linear(&growth("dump() per greenlet", 1000, |n| {
            let (ev, gs) = parked_on_event(n);
            let t = Instant::now();
            let d = sylvan::dump();
            let el = t.elapsed();
            assert!(d.greenlets.len() > n);
            ev.set();
            assert!(sylvan::joinall(&gs, None));
            el
        }));
    });
}

// A kill of a greenlet parked in `wait()` over n unset events removes n
// registrations: per event, 62 / 54 ns (x0.87).
#[test]
fn leaving_wait_over_many_objects_stays_linear() {
    long(|| {
        assert_linear(&growth("leave wait() over n events", 1000, |n| {
            let evs: Rc<Vec<Event>> = Rc::new((0..n).map(|_| Event::new()).collect());
            let e2 = evs.clone();
            let g = sylvan::spawn(move || {
                let objs: Vec<&dyn Waitable> = e2.iter().map(|e| e as &dyn Waitable).collect();
                sylvan::wait(&objs, None, None);
            });
            sylvan::yield_now();
            assert!(evs.iter().all(|e| e.waiters() == 1));
            let t = Instant::now();
            g.kill();
            let d = t.elapsed();
            assert!(evs.iter().all(|e| e.waiters() == 0));
            d
        }));
    });
}

// N sockets with a reader parked on each, closed last first: 27 / 31 us
// (x1.14). StreamServer with N connections closed last first: 24 / 35 us
// (x1.44); stopped: 21 / 30 us (x1.43).
#[test]
fn many_sockets_and_server_connections_closed_stay_linear() {
    long(|| {
        assert_linear(&growth("sockets with a parked reader closed", 200, |n| {
            use std::io::Read;
            let mut clients = Vec::new();
            let mut gs = Vec::new();
            for _ in 0..n {
                let (c, s) = crate::util::tcp_pair();
                clients.push(c);
                gs.push(sylvan::spawn(move || {
                    let mut b = [0u8; 8];
                    let _ = (&s).read(&mut b);
                }));
            }
            sylvan::yield_now();
            let t = Instant::now();
            while let Some(c) = clients.pop() {
                drop(c);
            }
            assert!(sylvan::joinall(&gs, None));
            t.elapsed()
        }));
        for stop in [false, true] {
            let what = if stop {
                "StreamServer::stop with n connections"
            } else {
                "StreamServer connections closed, last first"
            };
            assert_linear(&growth(what, 200, |n| {
                let server = sylvan::net::StreamServer::bind("127.0.0.1:0", crate::util::echo)
                    .unwrap()
                    .start()
                    .unwrap();
                let addr = server.local_addr().unwrap();
                let mut clients: Vec<_> = (0..n)
                    .map(|_| sylvan::net::TcpStream::connect(addr).unwrap())
                    .collect();
                let limit = Duration::from_secs(10);
                assert!(crate::util::wait_for(limit, || server.handlers() == n));
                let t = Instant::now();
                if stop {
                    server.stop(Some(Duration::ZERO));
                } else {
                    while let Some(c) = clients.pop() {
                        drop(c);
                    }
                    assert!(crate::util::wait_for(limit, || server.handlers() == 0));
                }
                let d = t.elapsed();
                assert_eq!(server.handlers(), 0);
                server.stop(None);
                d
            }));
        }
    });
}

// Readers parked on one UDP socket, timing out first-parked first:
// 7.3 / 11.6 us (x1.59); last-parked first: 15.7 / 9.6 us (x0.61), when
// their list was a `Vec` (`remove(0)` and `position`, O(n) per removal).
// Now a deque searched from both ends: O(1) in either order.
#[test]
fn readers_of_one_socket_timing_out_stay_under_the_bound() {
    long(|| {
        for last_first in [false, true] {
            let what = if last_first {
                "readers of one socket time out, last first"
            } else {
                "readers of one socket time out, first first"
            };
            assert_linear(&growth(what, 1000, |n| {
                let s = Rc::new(sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap());
                timeouts_in_reverse(n, move |i, d| {
                    let d = if last_first {
                        d
                    } else {
                        Duration::from_millis(2) + Duration::from_micros(i as u64)
                    };
                    let r = sylvan::with_timeout(d, || {
                        let mut b = [0u8; 8];
                        let _ = s.recv_from(&mut b);
                    });
                    assert!(r.is_err());
                })
            }));
        }
    });
}

// ---------------------------------------------------------------- defects

// 4.4 / 33.7 us per joiner at 500 / 4000 (x7.63).
#[test]
fn joiners_of_one_greenlet_timing_out_stay_linear() {
    long(|| {
        assert_not_growing(&growth("joiners of one greenlet time out", 500, |n| {
            let (ev, mut gs) = parked_on_event(1);
            let target = Rc::new(gs.pop().unwrap());
            let t2 = target.clone();
            let d = timeouts_in_reverse(n, move |_, d| assert!(!t2.wait(Some(d))));
            ev.set();
            d
        }));
    });
}

// Killed: 15.5 / 82.0 us per waiter at 1000 / 8000 (x5.29). Rounds of
// four `idle()` each: 20.0 / 84.6 us at 500 / 4000 (x4.22).
#[test]
fn idle_waiters_leaving_stay_linear() {
    long(|| {
        assert_not_growing(&growth("idle() waiters killed", 1000, |n| {
            let gs: Vec<_> = (0..n).map(|_| sylvan::spawn(sylvan::idle)).collect();
            sylvan::yield_now();
            let t = Instant::now();
            sylvan::killall(&gs, None).unwrap();
            t.elapsed()
        }));
    });
}

// Events: 21.8 / 170 us per object at 250 / 2000 (x7.79); greenlets:
// 17.4 / 130 us (x7.48).
#[test]
fn wait_over_objects_ready_one_by_one_stays_linear() {
    long(|| {
        /// Sets the events one at a time, letting the waiter run between.
        fn driver(evs: Rc<Vec<Event>>) -> sylvan::Greenlet<()> {
            sylvan::spawn(move || {
                for e in evs.iter() {
                    e.set();
                    sylvan::yield_now();
                }
            })
        }
        let events = growth("wait() on events set one by one", 250, |n| {
            let evs: Rc<Vec<Event>> = Rc::new((0..n).map(|_| Event::new()).collect());
            let _driver = driver(evs.clone());
            let objs: Vec<&dyn Waitable> = evs.iter().map(|e| e as &dyn Waitable).collect();
            let t = Instant::now();
            assert_eq!(sylvan::wait(&objs, None, None).len(), n);
            t.elapsed()
        });
        let greenlets = growth("wait() on greenlets ending one by one", 250, |n| {
            let evs: Rc<Vec<Event>> = Rc::new((0..n).map(|_| Event::new()).collect());
            let gs: Vec<_> = (0..n)
                .map(|i| {
                    let evs = evs.clone();
                    sylvan::spawn(move || {
                        evs[i].wait();
                    })
                })
                .collect();
            sylvan::yield_now();
            let _driver = driver(evs);
            let objs: Vec<&dyn Waitable> = gs.iter().map(|g| g as &dyn Waitable).collect();
            let t = Instant::now();
            assert_eq!(sylvan::wait(&objs, None, None).len(), n);
            t.elapsed()
        });
        assert_not_growing(&events);
        assert_not_growing(&greenlets);
    });
}

// 3.5 / 27.0 us per getter at 500 / 4000 (x7.66).
#[test]
fn outrun_queue_getters_going_back_in_line_stay_linear() {
    long(|| {
        assert_not_growing(&growth("queue getters outrun, back in line", 500, |n| {
            let q = Rc::new(Queue::<u32>::unbounded());
            let gs: Vec<_> = (0..n)
                .map(|_| {
                    let q = q.clone();
                    sylvan::spawn(move || {
                        let _ = q.get();
                    })
                })
                .collect();
            sylvan::yield_now();
            // Each put chooses a getter; main takes every item back before
            // any of them runs.
            for i in 0..n {
                q.put(i as u32).unwrap();
            }
            for _ in 0..n {
                q.try_get().unwrap();
            }
            let t = Instant::now();
            sylvan::yield_now(); // every getter runs, finds nothing, goes back
            let d = t.elapsed();
            assert_eq!(q.getters(), n);
            q.close();
            assert!(sylvan::joinall(&gs, None));
            d
        }));
    });
}

/// Nanoseconds per message, best of three rounds of `K`: `n` greenlets
/// receive in a loop through `recv`, bumping `got`; `send` sends one.
fn per_message(
    n: usize,
    spawn_reader: &dyn Fn(Rc<Cell<usize>>) -> sylvan::Greenlet<()>,
    send: &dyn Fn(),
) -> f64 {
    const K: usize = 32;
    let got = Rc::new(Cell::new(0usize));
    let gs: Vec<_> = (0..n).map(|_| spawn_reader(got.clone())).collect();
    sylvan::yield_now();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..K {
            let before = got.get();
            send();
            while got.get() == before {
                sylvan::yield_now();
            }
        }
        best = best.min(t.elapsed());
    }
    sylvan::killall(&gs, None).unwrap();
    best.as_nanos() as f64 / K as f64
}

// 52 / 411 us per datagram with 250 / 2000 readers parked (x7.90): every
// readable edge wakes every reader, and each retries `recvfrom`.
#[test]
fn one_datagram_costs_the_same_however_many_readers_wait() {
    long(|| {
        let g = growth_per_op("one datagram, n readers parked on the socket", 250, |n| {
            let s = Rc::new(sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap());
            let addr = s.local_addr().unwrap();
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            per_message(
                n,
                &|got| {
                    let s = s.clone();
                    sylvan::spawn(move || {
                        let mut b = [0u8; 8];
                        loop {
                            let _ = s.recv_from(&mut b);
                            got.set(got.get() + 1);
                        }
                    })
                },
                &|| {
                    c.send_to(b"x", addr).unwrap();
                },
            )
        });
        assert_not_growing(&g);
    });
}

// 0.33 / 16.5 ms per send with 250 / 2000 greenlets parked on the receiver
// (x50.7).
#[test]
fn one_mpsc_send_costs_the_same_however_many_greenlets_wait() {
    long(|| {
        let g = growth_per_op(
            "one mpsc send, n greenlets parked on the receiver",
            250,
            |n| {
                let (tx, rx) = sylvan::mpsc::channel::<u32>();
                let rx = Rc::new(rx);
                per_message(
                    n,
                    &|got| {
                        let rx = rx.clone();
                        sylvan::spawn(move || {
                            while rx.recv().is_ok() {
                                got.set(got.get() + 1);
                            }
                        })
                    },
                    &|| tx.send(1).unwrap(),
                )
            },
        );
        assert_not_growing(&g);
    });
}
