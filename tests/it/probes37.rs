//! Probe round 37: edge values for every public parameter.
//!
//! * Durations (`d..`): `Duration::ZERO`, 1 ns, `Duration::MAX`,
//!   `from_secs(u64::MAX)` and instants far in the past or future, through
//!   `sleep`, `sleep_until`, `Timeout`, `with_timeout`, `spawn_later`,
//!   `Event`, `Queue`, `Semaphore`, `Mutex`, `AsyncResult`,
//!   `JoinableQueue`, `Pool`, `Greenlet::{wait, kill_timeout}`,
//!   `joinall`, `killall`, `wait`, `iwait`, `wait_all`, `mpsc`, the
//!   blocking detector and socket timeouts. ZERO polls (returns at once
//!   with the "nothing" answer, never "would block forever"); a far value
//!   never overflows and means "as long as it takes".
//! * Sizes (`s..`): 0, 1 and `usize::MAX` for queue capacities,
//!   semaphore permits, pool sizes, wait counts, the blocking pool's bound,
//!   stack sizes (0, 1, not a page multiple, `usize::MAX`, beyond the
//!   address space) and the stack pool's limit.
//! * Names (`n..`): empty, 100 KB, with NUL, newline and non-ASCII, in
//!   `name()`, `dump()`, the failure report and the stack-overflow report
//!   (in a child).
//! * Addresses and buffers (`a..`): port 0, unspecified addresses, `[::1]`,
//!   `.invalid` names, a closed port, empty address lists, empty buffers on
//!   TCP and UDP, `read_exact` at EOF, `write_all` to a closed peer with
//!   SIGPIPE at its default action (child), TTL and Unix path edges,
//!   `StreamServer::stop` with ZERO and MAX, each against what `std` does.
//!   (On Linux a std `TcpStream::read(&mut [])` with nothing to read
//!   blocks until data or its timeout; sylvan parks the same way, `a06`.)
//! * Odd contexts (`c..`): a link callback, a destructor running during a
//!   kill unwind, inside a `with_timeout` that already expired, a
//!   thread-local destructor after the hub's teardown (child), a `Handle`
//!   whose thread ended, a fresh thread with no hub, `wait_all` from a
//!   greenlet, bad signal numbers, `Fd` on a regular file, `spawn_blocking`
//!   and `Handle`s on hubless threads, senders outliving their receiver's
//!   thread, and what "would block forever" names.
//!
//! Found, and fixed since (each failed at 91ea7b8):
//! * `s08_stack_beyond_address_space_is_not_blamed_on_max_map_count`: a
//!   stack size that fits `usize` but no address space (`1 << 62`) failed
//!   with `OutOfMemory` and advice to raise `vm.max_map_count`, which
//!   cannot help. Sizes past `MAX_STACK_SIZE` (1 TiB) are now
//!   `InvalidInput`, "too large"; and a failed mapping with the map count
//!   far from its limit says that the memory limits have no room and to
//!   use a smaller stack (`s08b`).
//! * `s09b_stack_pool_limit_usize_max`: `set_stack_pool_limit` of
//!   `usize::MAX` (or anything past `usize::MAX / 2`) panicked in debug
//!   builds with "attempt to multiply with overflow" in
//!   `StackPool::set_limit` (`limit.max(16) * 2`); it saturates now.
//! * `n01b_dump_table_keeps_one_row_per_greenlet`: `Dump`'s table printed
//!   names raw, so a newline in a name split its row (and could forge
//!   one); control characters are escaped now.
//! * `n03_overflow_report_cuts_names_on_a_char_boundary`: the overflow
//!   report cut names at 160 bytes, in the middle of a multi-byte
//!   character (invalid UTF-8 on stderr); it backs up to a boundary now.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use sylvan::pool::{Group, Pool};
use sylvan::sync::{
    AsyncResult, BoundedSemaphore, Event, GetError, JoinableQueue, LifoQueue, Mutex, PriorityQueue,
    Queue, Semaphore, TryGetError, TryPutError,
};
use sylvan::{Builder, Error, Handle, Timeout};

use crate::util::{
    Log, bounded, first_error, in_child, is_child, quiet, run_child_limited, tcp_pair, texts,
    yield_until,
};

/// Ten years: an instant that far back or ahead of now.
const DECADE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// An instant far in the past (as far as `Instant` goes on this machine).
fn far_past() -> Instant {
    let now = Instant::now();
    now.checked_sub(DECADE)
        .or_else(|| now.checked_sub(Duration::from_secs(3600)))
        .unwrap_or(now)
}

/// An instant a thousand years ahead.
fn far_future() -> Instant {
    Instant::now() + 100 * DECADE
}

/// The message of a panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs `f` and returns its panic message (`None` if it did not panic).
fn panics(f: impl FnOnce()) -> Option<String> {
    catch_unwind(AssertUnwindSafe(f))
        .err()
        .map(|p| panic_text(&*p))
}

/// Runs `f` on a fresh OS thread (a fresh hub) and returns its result,
/// failing if it takes longer than `limit` (the thread is then left).
fn on_fresh_thread<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the fresh thread hung or panicked")
}

// ====================================================================== durations

/// gevent: `sleep(0)` is a yield. sylvan's doc: "`sleep(Duration::ZERO)`
/// is [`yield_now`]". From main with nothing else to run it returns, and
/// a ready greenlet runs during it.
#[test]
fn d01_sleep_zero_is_a_yield_even_alone() {
    bounded(|| {
        sylvan::sleep(Duration::ZERO); // nothing else: returns, no "would block forever"
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = sylvan::spawn(move || r.set(true));
        sylvan::sleep(Duration::ZERO);
        assert!(ran.get(), "sleep(ZERO) did not let a ready greenlet run");
        g.join().unwrap();
    });
}

/// `sleep(Duration::MAX)` and `sleep(from_secs(u64::MAX))` overflow
/// `Instant`: the doc of `instant_after` says "lands a century away
/// instead of overflowing". A timeout around it still interrupts it, and
/// 1 ns sleeps return.
#[test]
fn d02_sleep_of_unrepresentable_durations_is_interruptible() {
    bounded(|| {
        for d in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            let t = Instant::now();
            let r = sylvan::with_timeout(Duration::from_millis(5), || sylvan::sleep(d));
            assert!(r.is_err(), "sleep({d:?}) returned");
            assert!(t.elapsed() < Duration::from_secs(2));
        }
        let t = Instant::now();
        for _ in 0..10 {
            sylvan::sleep(Duration::from_nanos(1));
        }
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

/// `sleep_until` an instant ten years back returns promptly (as a sleep of
/// a negative time in gevent returns at once); one a thousand years ahead
/// is interrupted by a timeout and leaves no timer behind.
#[test]
fn d03_sleep_until_far_past_and_far_future() {
    bounded(|| {
        let t = Instant::now();
        sylvan::sleep_until(far_past());
        sylvan::sleep_until(Instant::now());
        assert!(t.elapsed() < Duration::from_millis(500));
        let timers = sylvan::stats().timers;
        let r = sylvan::with_timeout(Duration::from_millis(5), || {
            sylvan::sleep_until(far_future())
        });
        assert!(r.is_err());
        // The far timer is gone.
        assert_eq!(sylvan::stats().timers, timers);
    });
}

/// `Timeout::start(Duration::MAX)` and `start_at` a far instant are
/// pending and cancel cleanly; `start_at` a past instant fires at the next
/// block and is recognised as its own by `is_own_payload`.
#[test]
fn d04_timeout_guard_edges() {
    bounded(|| {
        let t = Timeout::start(Duration::MAX);
        assert!(t.is_pending());
        drop(t);
        let t = Timeout::start_at(far_future());
        assert!(t.is_pending());
        t.cancel();
        let t = Timeout::start_at(far_past());
        let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(5))));
        let p = r.expect_err("a Timeout at a past instant did not fire");
        assert!(t.is_own_payload(&*p));
        assert!(!t.is_pending());
        drop(t);
        // Nothing stale: a later sleep is not interrupted.
        sylvan::sleep(Duration::from_millis(2));
    });
}

/// gevent: `with_timeout(0, f)` where `f` does not switch returns `f`'s
/// value (the timer only fires in the loop). sylvan's doc: `Err(Elapsed)`
/// "when the timeout expired while `f` was blocked". And the zero timeout
/// leaves nothing behind for a later block.
#[test]
fn d05_with_timeout_zero_on_a_body_that_never_blocks() {
    bounded(|| {
        assert_eq!(sylvan::with_timeout(Duration::ZERO, || 5), Ok(5));
        assert_eq!(sylvan::with_timeout(Duration::from_nanos(1), || 6), Ok(6));
        {
            let _t = Timeout::start(Duration::ZERO);
        }
        sylvan::sleep(Duration::from_millis(2)); // no stale throw
    });
}

/// A ZERO or 1 ns `with_timeout` around a body that blocks elapses; MAX and
/// `from_secs(u64::MAX)` let it finish.
#[test]
fn d06_with_timeout_zero_elapses_max_never() {
    bounded(|| {
        for d in [Duration::ZERO, Duration::from_nanos(1)] {
            let r = sylvan::with_timeout(d, || sylvan::sleep(Duration::from_millis(1)));
            assert!(r.is_err(), "with_timeout({d:?}) around a sleep returned Ok");
        }
        for d in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            let r = sylvan::with_timeout(d, || {
                sylvan::sleep(Duration::from_millis(1));
                7
            });
            assert_eq!(r, Ok(7));
        }
    });
}

/// gevent's `Event.wait(timeout=0)` polls. sylvan: `wait_timeout(ZERO)`
/// is false at once, even from main alone (a zero deadline is no "would
/// block forever"); `wait_deadline` in the far past polls too; MAX and a
/// far deadline wait until set.
#[test]
fn d07_event_wait_edges() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        assert!(!ev.wait_timeout(Duration::ZERO));
        assert!(!ev.wait_timeout(Duration::from_nanos(1)));
        assert!(!ev.wait_deadline(far_past()));
        assert_eq!(ev.waiters(), 0);
        let e = ev.clone();
        let g = sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(1));
            e.set();
        });
        assert!(ev.wait_timeout(Duration::MAX));
        ev.clear();
        let e = ev.clone();
        let g2 = sylvan::spawn(move || e.set());
        assert!(ev.wait_deadline(far_future()));
        assert!(ev.wait_timeout(Duration::ZERO)); // set: true at once
        g.join().unwrap();
        g2.join().unwrap();
    });
}

/// `Duration::MAX` means "no deadline" (`deadline_after` returns `None`,
/// "as std's timeouts read it"): from main with nothing that could wake
/// it, a MAX wait is "would block forever" (the design's promise), a
/// clear panic rather than a century-long hang; the hub works after.
#[test]
fn d08_max_timeout_from_lonely_main_is_would_block_forever() {
    let msgs = on_fresh_thread(Duration::from_secs(5), || {
        let ev = Event::new();
        let a = panics(|| {
            ev.wait_timeout(Duration::MAX);
        });
        let q: Queue<u8> = Queue::unbounded();
        let b = panics(|| {
            let _ = q.get_timeout(Duration::from_secs(u64::MAX));
        });
        let sem = Semaphore::new(0);
        let c = panics(|| {
            let _ = sem.acquire_timeout(Duration::MAX);
        });
        // Still usable.
        let g = sylvan::spawn(|| 3);
        (a, b, c, g.join().unwrap())
    });
    for m in [&msgs.0, &msgs.1, &msgs.2] {
        let m = m
            .as_deref()
            .expect("a MAX wait from lonely main did not panic");
        assert!(m.contains("would block forever"), "{m}");
    }
    assert_eq!(msgs.3, 3);
}

/// gevent's `get(block=False)` / `timeout=0`: the "nothing" answer at
/// once, keeping the item. sylvan: `put_timeout(ZERO)` on a full queue is
/// `Full(item)`, `get_timeout`/`peek_timeout(ZERO)` on an empty one
/// `Empty`; `acquire_timeout`, `lock_timeout`, `get_timeout` of
/// `AsyncResult`, `join_timeout` of `JoinableQueue` and `Pool`,
/// `wait_available(Some(ZERO))` all answer "no" without waiting.
#[test]
fn d09_zero_timeouts_on_sync_and_pools_poll() {
    bounded(|| {
        let t = Instant::now();
        let q = Queue::bounded(1);
        q.put(1).unwrap();
        assert!(matches!(
            q.put_timeout(2, Duration::ZERO),
            Err(TryPutError::Full(2))
        ));
        assert_eq!(q.get_timeout(Duration::ZERO), Ok(1));
        assert_eq!(q.get_timeout(Duration::ZERO), Err(TryGetError::Empty));
        assert_eq!(q.peek_timeout(Duration::ZERO), Err(TryGetError::Empty));
        assert_eq!((q.getters(), q.putters()), (0, 0));

        let sem = Semaphore::new(0);
        assert!(sem.acquire_timeout(Duration::ZERO).is_none());
        assert_eq!(sem.waiters(), 0);
        let m = Mutex::new(0);
        let held = m.lock();
        assert!(m.lock_timeout(Duration::ZERO).is_none());
        drop(held);
        assert!(m.lock_timeout(Duration::ZERO).is_some());

        let r: AsyncResult<i32, String> = AsyncResult::new();
        assert!(matches!(
            r.get_timeout(Duration::ZERO),
            Err(GetError::TimedOut)
        ));
        r.set(4).unwrap();
        assert_eq!(r.get_timeout(Duration::ZERO), Ok(4));

        let jq = JoinableQueue::unbounded();
        jq.put(1).unwrap();
        assert!(!jq.join_timeout(Duration::ZERO));
        jq.get().unwrap();
        jq.task_done();
        assert!(jq.join_timeout(Duration::ZERO));

        let pool = Pool::new(1);
        let g = pool.spawn(|| sylvan::sleep(Duration::from_millis(20)));
        assert_eq!(pool.wait_available(Some(Duration::ZERO)), 0);
        assert!(!pool.join_timeout(Duration::ZERO));
        g.kill();
        assert!(pool.join_timeout(Duration::ZERO));
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

/// The same calls with `Duration::MAX` (and `from_secs(u64::MAX)`) wait
/// until another greenlet provides, without overflowing.
#[test]
fn d10_max_timeouts_on_sync_and_pools_wait_until_woken() {
    bounded(|| {
        let max = Duration::MAX;
        let huge = Duration::from_secs(u64::MAX);
        let q = Rc::new(Queue::bounded(1));
        let sem = Rc::new(Semaphore::new(0));
        let r: Rc<AsyncResult<i32, String>> = Rc::new(AsyncResult::new());
        let jq = Rc::new(JoinableQueue::unbounded());
        q.put(0).unwrap();
        jq.put(0).unwrap();
        let (q2, s2, r2, j2) = (q.clone(), sem.clone(), r.clone(), jq.clone());
        let helper = sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(1));
            assert_eq!(q2.get(), Some(0)); // room for main's put
            sylvan::sleep(Duration::from_millis(1));
            q2.put(9).unwrap();
            s2.release();
            r2.set(5).unwrap();
            j2.get().unwrap();
            j2.task_done();
        });
        assert!(q.put_timeout(1, max).is_ok());
        assert_eq!(q.get_timeout(huge), Ok(1));
        assert_eq!(q.get_timeout(max), Ok(9));
        assert!(sem.acquire_timeout(max).is_some());
        assert_eq!(r.get_timeout(huge), Ok(5));
        assert!(jq.join_timeout(max));
        helper.join().unwrap();

        let m = Rc::new(Mutex::new(0));
        let m2 = m.clone();
        let holder = sylvan::spawn(move || {
            let _g = m2.lock();
            sylvan::sleep(Duration::from_millis(2));
        });
        sylvan::yield_now();
        assert!(m.lock_timeout(huge).is_some());
        holder.join().unwrap();

        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(Duration::from_millis(2)));
        assert_eq!(pool.wait_available(Some(max)), 1);
        pool.spawn(|| sylvan::sleep(Duration::from_millis(2)));
        assert!(pool.join_timeout(max));
        let group = Group::new();
        group.spawn(|| sylvan::sleep(Duration::from_millis(2)));
        assert!(group.join_timeout(huge));
    });
}

/// gevent's `Greenlet.join(timeout=0)` polls; sylvan's `wait(Some(ZERO))`
/// is false for a live greenlet, `wait(Some(MAX))` waits it out;
/// `kill_timeout(ZERO)` of a greenlet that swallows the kill is false (it
/// "survived"), `kill_timeout(MAX)` true; `joinall`/`killall` with empty
/// lists and ZERO/MAX.
#[test]
fn d11_greenlet_wait_and_kill_timeouts() {
    bounded(|| {
        let g = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(3)));
        assert!(!g.wait(Some(Duration::ZERO)));
        assert!(g.wait(Some(Duration::MAX)));
        assert!(g.wait(Some(Duration::ZERO)));

        let stubborn = sylvan::spawn(|| {
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(60)));
            assert!(r.is_err());
            sylvan::sleep(Duration::from_millis(3));
            1
        });
        sylvan::yield_now();
        assert!(!stubborn.kill_timeout(Duration::ZERO));
        assert!(!stubborn.is_dead());
        assert_eq!(stubborn.join().unwrap(), 1);

        let plain = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
        sylvan::yield_now();
        assert!(plain.kill_timeout(Duration::MAX));
        assert!(plain.join().unwrap_err().is_killed());

        let none: [sylvan::Greenlet<()>; 0] = [];
        assert!(sylvan::joinall(&none, Some(Duration::ZERO)));
        assert!(sylvan::killall(&none, Some(Duration::ZERO)).is_ok());
        let gs: Vec<_> = (0..3)
            .map(|_| sylvan::spawn(|| sylvan::sleep(Duration::from_millis(2))))
            .collect();
        assert!(!sylvan::joinall(&gs, Some(Duration::ZERO)));
        assert!(sylvan::joinall(&gs, Some(Duration::MAX)));
        let gs: Vec<_> = (0..3)
            .map(|_| sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60))))
            .collect();
        assert!(sylvan::killall(&gs, Some(Duration::from_secs(u64::MAX))).is_ok());
        assert!(gs.iter().all(|g| g.is_dead()));
    });
}

/// `wait`/`iwait`: the doc says "with `Some(0)` objects or an empty slice
/// it returns at once"; a count past the slice is clamped to it; a ZERO
/// timeout reports only what is ready now; MAX waits for all.
#[test]
fn d12_wait_and_iwait_counts_and_timeouts() {
    bounded(|| {
        let t = Instant::now();
        assert!(sylvan::wait(&[], None, None).is_empty());
        assert!(sylvan::wait(&[], Some(Duration::ZERO), Some(usize::MAX)).is_empty());
        let ev = Event::new();
        let slow = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(3)));
        assert!(sylvan::wait(&[&ev, &slow], None, Some(0)).is_empty());
        assert!(sylvan::wait(&[&ev, &slow], Some(Duration::ZERO), None).is_empty());
        assert_eq!(
            sylvan::iwait(&[&ev, &slow], Some(Duration::ZERO)).count(),
            0
        );
        ev.set();
        assert_eq!(
            sylvan::wait(&[&ev, &slow], Some(Duration::ZERO), Some(usize::MAX)),
            [0]
        );
        assert_eq!(
            sylvan::wait(&[&ev, &slow], Some(Duration::MAX), Some(usize::MAX)),
            [0, 1]
        );
        let order: Vec<usize> = sylvan::iwait(&[&slow, &ev], Some(Duration::MAX)).collect();
        assert_eq!(order, [0, 1]);
        assert_eq!(ev.waiters(), 0);
        assert!(t.elapsed() < Duration::from_secs(2));
    });
}

/// `spawn_later(ZERO)` starts at the next turn, as gevent's
/// `spawn_later(0, f)`; `spawn_later(MAX)` (and `Builder::spawn_later` of
/// `from_secs(u64::MAX)`) never overflows, never starts, and a kill
/// cancels it on the spot ("a greenlet that has not started never runs").
#[test]
fn d13_spawn_later_edges() {
    bounded(|| {
        let timers = sylvan::stats().timers;
        let now = sylvan::spawn_later(Duration::ZERO, || 1);
        assert_eq!(now.join().unwrap(), 1);
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let never = sylvan::spawn_later(Duration::MAX, move || r.set(true));
        let r = ran.clone();
        let never2 = Builder::new()
            .name("later")
            .spawn_later(Duration::from_secs(u64::MAX), move || r.set(true))
            .unwrap();
        sylvan::sleep(Duration::from_millis(2));
        assert!(!never.is_started() && !never2.is_started());
        never.kill_nowait();
        assert!(never.is_dead());
        never2.kill();
        assert!(never2.join().unwrap_err().is_killed());
        assert!(!ran.get());
        // No far timer left.
        assert_eq!(sylvan::stats().timers, timers);
    });
}

/// gevent's `gevent.wait(timeout=0)`: false while work remains; with MAX
/// (no deadline, not a century) it returns as soon as the work is done.
#[test]
fn d14_wait_all_edges() {
    // Not under `bounded`: a Timeout armed around `wait_all` counts as
    // work (its doc), so it would wait for the bound.
    let got = on_fresh_thread(Duration::from_secs(5), || {
        let g = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(3)));
        let zero = sylvan::wait_all(Some(Duration::ZERO));
        let t = Instant::now();
        let max = sylvan::wait_all(Some(Duration::MAX));
        let fast = t.elapsed() < Duration::from_secs(1);
        let far = sylvan::spawn_later(Duration::MAX, || ());
        let with_far = sylvan::wait_all(Some(Duration::from_millis(5)));
        far.kill();
        let huge = sylvan::wait_all(Some(Duration::from_secs(u64::MAX)));
        (zero, max, fast, g.is_dead(), with_far, huge)
    });
    // A pending spawn_later (even at MAX) is work, as any timer.
    assert_eq!(got, (false, true, true, true, false, true));
}

/// `mpsc`: as std's `recv_timeout`, ZERO gives `Timeout` at once, MAX
/// waits for a value from another thread (std's own `recv_timeout(MAX)`
/// is fine too); oneshot likewise.
#[test]
fn d15_mpsc_recv_timeout_edges() {
    use std::sync::mpsc::RecvTimeoutError;
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Timeout)
        );
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            tx.send(8).unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok(8));
        th.join().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::MAX),
            Err(RecvTimeoutError::Disconnected)
        );
        let (otx, orx) = sylvan::mpsc::oneshot::<u32>();
        assert_eq!(
            orx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Timeout)
        );
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            otx.send(9).unwrap();
        });
        assert_eq!(orx.recv_timeout(Duration::from_secs(u64::MAX)), Ok(9));
        th.join().unwrap();
    });
}

/// The blocking detector with a ZERO threshold reports a busy stretch
/// (and does not spin: its tick is clamped to at least 1 ms); with MAX it
/// never reports. Neither panics nor overflows.
#[test]
fn d16_blocking_detector_threshold_edges() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    bounded(|| {
        sylvan::yield_now();
        let busy = |ms| {
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(ms) {
                std::hint::spin_loop();
            }
        };
        let zero = Arc::new(AtomicUsize::new(0));
        let z = zero.clone();
        let d = sylvan::BlockingDetector::with_callback(Duration::ZERO, move |_| {
            z.fetch_add(1, Ordering::Relaxed);
        });
        busy(60);
        sylvan::sleep(Duration::from_millis(5));
        drop(d);
        assert!(
            zero.load(Ordering::Relaxed) >= 1,
            "a ZERO threshold reported nothing"
        );
        let max = Arc::new(AtomicUsize::new(0));
        let m = max.clone();
        let d = sylvan::BlockingDetector::with_callback(Duration::MAX, move |_| {
            m.fetch_add(1, Ordering::Relaxed);
        });
        busy(60);
        sylvan::sleep(Duration::from_millis(5));
        drop(d);
        assert_eq!(max.load(Ordering::Relaxed), 0);
    });
}

/// Socket timeouts, against std: `set_read_timeout(Some(ZERO))` is
/// `InvalidInput` (std's rule), 1 ns makes a read time out at once, MAX is
/// accepted and a read then waits for data; `connect_timeout(ZERO)` is
/// `InvalidInput`, `connect_timeout(MAX)` connects; `into_std` carries a
/// MAX timeout into a std stream (std clamps it) without error.
#[test]
fn d17_socket_timeout_edges() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_c = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
        assert_eq!(
            std_c
                .set_read_timeout(Some(Duration::ZERO))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );

        c.set_read_timeout(Some(Duration::from_nanos(1))).unwrap();
        let t = Instant::now();
        let e = (&c).read(&mut [0u8; 4]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
            "{e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(1));

        c.set_read_timeout(Some(Duration::MAX)).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(Duration::MAX));
        let w = sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(2));
            (&s).write_all(b"hi").unwrap();
            s
        });
        let mut b = [0u8; 2];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
        let _s = w.join().unwrap();
        let std_stream = c.into_std().unwrap();
        // std keeps "MAX" as the kernel's "no timeout" (None): the same.
        let rt = std_stream.read_timeout().unwrap();
        assert!(rt.is_none_or(|d| d > DECADE), "{rt:?}");

        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let e = TcpStream::connect_timeout(addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = std::net::TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        TcpStream::connect_timeout(addr, Duration::MAX).unwrap();
        // 1 ns: connected (loopback completes in connect) or timed out.
        match TcpStream::connect_timeout(addr, Duration::from_nanos(1)) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}"),
        }
    });
}

// ====================================================================== sizes

/// gevent (since 1.1b3) reads `Queue(0)` as unbounded and offers
/// `Channel` for a rendezvous; sylvan documents `bounded(0)` as a
/// rendezvous queue (a deliberate, documented choice; `unbounded()` is
/// explicit): `try_put` is `Full` with no getter, a put completes against
/// a waiting getter.
/// `bounded(usize::MAX)` allocates nothing up front and acts unbounded.
/// Same for the LIFO, priority and joinable queues.
#[test]
fn s01_queue_capacity_edges() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(0));
        assert!(q.is_full());
        assert!(matches!(q.try_put(1), Err(TryPutError::Full(1))));
        let q2 = q.clone();
        let getter = sylvan::spawn(move || q2.get());
        sylvan::yield_now();
        q.put(5).unwrap();
        assert_eq!(getter.join().unwrap(), Some(5));

        let big: Queue<u64> = Queue::bounded(usize::MAX);
        assert_eq!(big.capacity(), Some(usize::MAX));
        for i in 0..1000 {
            big.try_put(i).unwrap();
        }
        assert!(!big.is_full());
        assert_eq!(big.len(), 1000);
        let l: LifoQueue<u8> = LifoQueue::bounded(usize::MAX);
        l.try_put(1).unwrap();
        let p: PriorityQueue<u8> = PriorityQueue::bounded(usize::MAX);
        p.try_put(2).unwrap();
        p.try_put(1).unwrap();
        assert_eq!(p.try_get(), Ok(1));
        let j: JoinableQueue<u8> = JoinableQueue::bounded(usize::MAX);
        j.try_put(1).unwrap();
        assert_eq!(j.unfinished(), 1);
        let l0: LifoQueue<u8> = LifoQueue::bounded(0);
        assert!(matches!(l0.try_put(1), Err(TryPutError::Full(1))));
        let j0: JoinableQueue<u8> = JoinableQueue::bounded(0);
        assert!(matches!(j0.try_put(1), Err(TryPutError::Full(1))));
        assert_eq!(j0.unfinished(), 0);
    });
}

/// `Semaphore::new(usize::MAX)`: acquire/release round trip; one release
/// past `usize::MAX` panics with a message that says so (no wrap to 0),
/// and the count stays. `new(0)`: `try_acquire` is `None`, a release makes
/// one permit.
#[test]
fn s02_semaphore_permit_edges() {
    bounded(|| {
        let s = Semaphore::new(usize::MAX);
        drop(s.acquire());
        assert_eq!(s.available(), usize::MAX);
        let m = panics(|| s.release()).expect("release past usize::MAX did not panic");
        assert!(m.contains("usize::MAX"), "{m}");
        assert_eq!(s.available(), usize::MAX);
        assert!(s.try_acquire().is_some());

        let z = Semaphore::new(0);
        assert!(z.is_locked());
        assert!(z.try_acquire().is_none());
        z.release();
        assert_eq!(z.available(), 1);
    });
}

/// gevent's `BoundedSemaphore(0).release()` raises `ValueError`; sylvan
/// returns `Err(ReleaseError)`. `new(usize::MAX)` works at the top of its
/// range: a forgotten permit released by hand, then once too many is Err.
#[test]
fn s03_bounded_semaphore_edges() {
    bounded(|| {
        let z = BoundedSemaphore::new(0);
        assert!(z.release().is_err());
        assert_eq!(z.available(), 0);
        assert!(z.try_acquire().is_none());
        assert_eq!(z.bound(), 0);

        let b = BoundedSemaphore::new(usize::MAX);
        b.acquire().forget();
        assert_eq!(b.available(), usize::MAX - 1);
        b.release().unwrap();
        assert!(b.release().is_err());
        assert_eq!(b.available(), usize::MAX);
    });
}

/// `Pool::new(0)` panics with a message naming the fix ("use Group");
/// `new(1)` serialises; `new(usize::MAX)` reports `usize::MAX` free slots
/// and runs members.
#[test]
fn s04_pool_size_edges() {
    bounded(|| {
        let m = panics(|| {
            let _ = Pool::new(0);
        })
        .expect("Pool::new(0) did not panic");
        assert!(m.contains("Group"), "{m}");

        let one = Pool::new(1);
        let busy = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let (b, m) = (busy.clone(), most.clone());
            one.spawn(move || {
                b.set(b.get() + 1);
                m.set(m.get().max(b.get()));
                sylvan::sleep(Duration::from_millis(1));
                b.set(b.get() - 1);
            });
        }
        one.join();
        assert_eq!(most.get(), 1);

        let huge = Pool::new(usize::MAX);
        assert_eq!(huge.free_count(), usize::MAX);
        assert_eq!(huge.size(), usize::MAX);
        let out = huge.map(0..5u32, |i| i * 2);
        let out: Vec<u32> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(out, [0, 2, 4, 6, 8]);
        assert_eq!(huge.free_count(), usize::MAX);
    });
}

/// `set_blocking_threads(0)` panics with a clear message and leaves the
/// bound alone; a bound of `usize::MAX` works (threads start on demand).
#[test]
fn s05_blocking_threads_edges() {
    // In a child: the bound is process-wide.
    in_child("probes37::s05_blocking_threads_edges", "p37-s05", || {
        let before = sylvan::blocking_threads();
        let m = panics(|| sylvan::set_blocking_threads(0)).expect("0 threads accepted");
        assert!(m.contains("at least one thread"), "{m}");
        assert_eq!(sylvan::blocking_threads(), before);
        sylvan::set_blocking_threads(usize::MAX);
        assert_eq!(sylvan::blocking_threads(), usize::MAX);
        let gs: Vec<_> = (0..4u32)
            .map(|i| sylvan::spawn(move || sylvan::spawn_blocking(move || i + 1)))
            .collect();
        let sum: u32 = gs.into_iter().map(|g| g.join().unwrap()).sum();
        assert_eq!(sum, 10);
        sylvan::set_blocking_threads(1);
        assert_eq!(sylvan::spawn_blocking(|| 11), 11);
    });
}

/// `Builder::stack_size`: "rounded up to whole pages, and to at least
/// `MIN_STACK_SIZE`". 0, 1, one byte past a page and `MIN - 1` all spawn
/// and run a body that uses a few KiB of stack.
#[test]
fn s06_small_and_odd_stack_sizes_are_rounded() {
    // In a child: a stack too small after all would abort.
    in_child(
        "probes37::s06_small_and_odd_stack_sizes_are_rounded",
        "p37-s06",
        || {
            for size in [0, 1, 4097, sylvan::MIN_STACK_SIZE - 1, 3 * 4096 + 5] {
                let g = Builder::new()
                    .stack_size(size)
                    .spawn(|| {
                        let buf = std::hint::black_box([7u8; 1 << 10]);
                        sylvan::sleep(Duration::from_micros(10));
                        buf.iter().map(|&b| u32::from(b)).sum::<u32>()
                    })
                    .unwrap_or_else(|e| panic!("stack_size({size}): {e}"));
                assert_eq!(g.join().unwrap(), 7 * 1024);
            }
        },
    );
}

/// `stack_size(usize::MAX)` cannot be represented: `InvalidInput` ("too
/// large"), no greenlet left behind, the hub fine.
#[test]
fn s07_stack_size_usize_max_is_invalid_input() {
    bounded(|| {
        let before = sylvan::dump().greenlets.len();
        for size in [usize::MAX, usize::MAX - 4095] {
            let e = Builder::new()
                .name("huge")
                .stack_size(size)
                .spawn(|| ())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("too large"), "{e}");
        }
        assert_eq!(sylvan::dump().greenlets.len(), before);
        assert_eq!(sylvan::spawn(|| 1).join().unwrap(), 1);
    });
}

/// A size that fits `usize` but no address space (`1 << 62` bytes: 4 EiB,
/// more than the 128 TiB a user process can map) fails, but the error
/// blames `vm.max_map_count` and says to raise it, which cannot help: the
/// standard asks for "a clear error ... never a misleading OOM". It
/// should say the size is too large (as `usize::MAX` gets).
#[test]
fn s08_stack_beyond_address_space_is_not_blamed_on_max_map_count() {
    bounded(|| {
        let e = Builder::new().stack_size(1 << 62).spawn(|| ()).unwrap_err();
        let msg = e.to_string();
        assert!(
            !msg.contains("max_map_count"),
            "misleading advice for a 4 EiB stack ({:?}): {msg}",
            e.kind()
        );
    });
}

/// A size the system's limits cannot hold, with the map count far from
/// its limit (here `RLIMIT_AS` of 4 GiB against an 8 GiB stack, in a
/// child): the error says so and asks for a smaller stack, instead of
/// blaming `vm.max_map_count`.
#[test]
fn s08b_a_stack_past_the_memory_limits_asks_for_a_smaller_size() {
    in_child(
        "probes37::s08b_a_stack_past_the_memory_limits_asks_for_a_smaller_size",
        "p37-s08b",
        || {
            crate::util::set_soft_limit(libc::RLIMIT_AS, 4 << 30);
            let e = Builder::new().stack_size(8 << 30).spawn(|| ()).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("use a smaller stack size") && !msg.contains("sysctl"),
                "{:?}: {msg}",
                e.kind()
            );
            // Within the limit, spawning still works.
            assert_eq!(sylvan::spawn(|| 5).join().unwrap(), 5);
        },
    );
}

/// `set_stack_pool_limit(0)` (no reuse: every stack unmapped on return),
/// 1 and a huge but halvable limit keep spawning working; the doc's
/// "lowering it unmaps the excess at once" leaves no stack pooled.
#[test]
fn s09_stack_pool_limit_edges() {
    bounded(|| {
        for limit in [0, 1 << 40, 1, 0] {
            sylvan::set_stack_pool_limit(limit);
            let gs: Vec<_> = (0..20u32)
                .map(|i| {
                    sylvan::spawn(move || {
                        sylvan::yield_now();
                        i
                    })
                })
                .collect();
            let sum: u32 = gs.into_iter().map(|g| g.join().unwrap()).sum();
            assert_eq!(sum, 190);
            sylvan::trim_stack_pool();
        }
        assert_eq!(sylvan::stats().stacks_pooled, 0);
        sylvan::set_stack_pool_limit(sylvan::DEFAULT_POOL_LIMIT);
    });
}

/// `set_stack_pool_limit(usize::MAX)`, the natural "no bound", panics in a
/// debug build with "attempt to multiply with overflow" in
/// `StackPool::set_limit` (`limit.max(16) * 2`), after the pool took the
/// new limit but before the record cache did; in release it wraps. It
/// should saturate (or document a bound and say so in a panic).
#[test]
fn s09b_stack_pool_limit_usize_max() {
    bounded(|| {
        for limit in [usize::MAX, usize::MAX / 2 + 1] {
            let r = panics(|| sylvan::set_stack_pool_limit(limit));
            assert_eq!(r, None, "set_stack_pool_limit({limit}) panicked");
        }
        assert_eq!(sylvan::spawn(|| 1).join().unwrap(), 1);
        sylvan::set_stack_pool_limit(sylvan::DEFAULT_POOL_LIMIT);
    });
}

// ====================================================================== names

/// The names used below: empty, NUL, newline, non-ASCII, 100 KB.
fn odd_names() -> Vec<String> {
    vec![
        String::new(),
        "a\0b".to_owned(),
        "line1\nline2".to_owned(),
        "Grüße 🌲 ñ".to_owned(),
        "x".repeat(100 << 10),
    ]
}

/// `Builder::name` keeps any string as given: `name()`, `current_name()`
/// inside it and `dump()` see it byte for byte, and the dump's table
/// prints (long names cut with `~`).
#[test]
fn n01_odd_names_survive_in_name_and_dump() {
    bounded(|| {
        let names = odd_names();
        let gs: Vec<_> = names
            .iter()
            .map(|n| {
                let want = n.clone();
                Builder::new()
                    .name(n.clone())
                    .spawn(move || {
                        assert_eq!(sylvan::current_name().as_deref(), Some(want.as_str()));
                        sylvan::sleep(Duration::from_secs(60));
                    })
                    .unwrap()
            })
            .collect();
        sylvan::yield_now();
        let dump = sylvan::dump();
        for (g, n) in gs.iter().zip(&names) {
            assert_eq!(g.name(), Some(n.as_str()));
            let info = dump.greenlets.iter().find(|i| i.id == g.id()).unwrap();
            assert_eq!(info.name.as_deref(), Some(n.as_str()));
        }
        let text = dump.to_string();
        assert!(text.len() < 10_000, "the 100 KB name was not cut");
        assert!(text.contains("Grüße 🌲 ñ"));
        assert!(text.contains('~'));
        sylvan::killall(&gs, None).unwrap();
    });
}

/// `Dump`'s `Display` is "a readable table": one header, one row per
/// greenlet. A name with a newline splits its row in two (and a crafted
/// name can forge a row); names should be escaped (`{:?}`-style) or have
/// control characters replaced.
#[test]
fn n01b_dump_table_keeps_one_row_per_greenlet() {
    bounded(|| {
        let g = Builder::new()
            .name("evil\n     9  forged           suspended")
            .spawn(|| sylvan::sleep(Duration::from_secs(60)))
            .unwrap();
        sylvan::yield_now();
        let dump = sylvan::dump();
        let text = dump.to_string();
        let lines = text.lines().count();
        g.kill();
        assert_eq!(
            lines,
            dump.greenlets.len() + 2,
            "the table has extra rows:\n{text}"
        );
    });
}

/// The default error policy's report names the greenlet as given (gevent
/// prints the greenlet's repr, name included): each odd name appears in
/// full in the failure report on stderr, the empty one as `''`.
#[test]
fn n02_odd_names_in_failure_reports() {
    let Some((_, err)) = crate::util::child_texts(
        "probes37::n02_odd_names_in_failure_reports",
        "p37-n02",
        || {
            for (i, n) in odd_names().into_iter().enumerate() {
                let g = Builder::new()
                    .name(n)
                    .spawn(move || panic!("boom-{i}"))
                    .unwrap();
                assert!(g.join().unwrap_err().is_panic());
            }
        },
    ) else {
        return;
    };
    for (i, n) in odd_names().iter().enumerate() {
        assert!(
            err.contains(&format!("greenlet '{n}' (")),
            "report {i} lacks its name"
        );
        assert!(err.contains(&format!("boom-{i}")));
    }
}

/// Recursion that overflows any stack.
fn recurse(n: u64) -> u64 {
    let buf = std::hint::black_box([n as u8; 1024]);
    if n == u64::MAX {
        return 0;
    }
    recurse(n + 1).wrapping_add(u64::from(buf[0]))
}

/// The overflow report cuts names longer than 160 bytes "and ends in
/// `...`" (runtime/src/overflow.rs). It cuts bytes, not characters: a name
/// of 3-byte characters is cut mid-character and stderr gets invalid
/// UTF-8. The cut should back off to a char boundary. (Child: the
/// overflow aborts it.)
#[test]
fn n03_overflow_report_cuts_names_on_a_char_boundary() {
    const CHILD: &str = "p37-n03";
    if is_child(CHILD) {
        let g = Builder::new()
            .name("€".repeat(100))
            .stack_size(0)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = g.join();
        return;
    }
    let out = run_child_limited(
        "probes37::n03_overflow_report_cuts_names_on_a_char_boundary",
        CHILD,
        &[],
        Duration::from_secs(20),
    )
    .expect("the overflowing child hung");
    assert!(!out.status.success());
    let line = out
        .stderr
        .split(|&b| b == b'\n')
        .find(|l| l.windows(10).any(|w| w == b"overflowed"))
        .unwrap_or_else(|| panic!("no overflow report: {}", texts(&out).1));
    assert!(line.windows(3).any(|w| w == b"..."), "not cut");
    assert!(
        std::str::from_utf8(line).is_ok(),
        "invalid UTF-8 in the overflow report: {}",
        String::from_utf8_lossy(line)
    );
}

/// The overflow report of a greenlet with a short odd name (non-ASCII and
/// empty): "greenlet '<name>' overflowed its stack of N KiB" plus the
/// hint, and the process dies by abort, not a plain SIGSEGV.
#[test]
fn n04_overflow_report_with_short_non_ascii_name() {
    const CHILD: &str = "p37-n04";
    if is_child(CHILD) {
        let g = Builder::new()
            .name("Grüße🌲")
            .stack_size(1)
            .spawn(|| recurse(0))
            .unwrap();
        let _ = g.join();
        return;
    }
    let out = run_child_limited(
        "probes37::n04_overflow_report_with_short_non_ascii_name",
        CHILD,
        &[],
        Duration::from_secs(20),
    )
    .expect("the overflowing child hung");
    let (_, err) = texts(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("greenlet 'Grüße🌲' overflowed its stack of 16 KiB"),
        "{err}"
    );
    assert!(err.contains("Builder::new().stack_size"), "{err}");
}

// ====================================================================== addresses

/// Port 0 and the unspecified address, as std: the OS picks a port, and
/// the listener on `0.0.0.0` is reached through `127.0.0.1`; a UDP socket
/// on `0.0.0.0:0` sends to a loopback one.
#[test]
fn a01_port_zero_and_unspecified_addresses() {
    bounded(|| {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(l.local_addr().unwrap().ip().is_unspecified());
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        drop(s);
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        let v = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.send_to(b"ok", v.local_addr().unwrap()).unwrap();
        let mut b = [0u8; 4];
        let (n, _) = v.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ok");
        // Connecting to port 0 fails as std's does (same error kind).
        let ours = TcpStream::connect("127.0.0.1:0").unwrap_err();
        let theirs = std::net::TcpStream::connect("127.0.0.1:0").unwrap_err();
        assert_eq!(ours.kind(), theirs.kind(), "{ours} vs {theirs}");
    });
}

/// IPv6 loopback: bind, connect and echo over `[::1]` for TCP and UDP;
/// skipped (with a line saying so) where the machine has no IPv6.
#[test]
fn a02_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    bounded(|| {
        let l = TcpListener::bind("[::1]:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let srv = sylvan::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut b = [0u8; 3];
            (&s).read_exact(&mut b).unwrap();
            (&s).write_all(&b).unwrap();
        });
        let c = TcpStream::connect(addr).unwrap();
        (&c).write_all(b"v6!").unwrap();
        let mut b = [0u8; 3];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"v6!");
        srv.join().unwrap();
        let u = UdpSocket::bind("[::1]:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        u.send(b"me").unwrap();
        let mut b = [0u8; 2];
        assert_eq!(u.recv(&mut b).unwrap(), 2);
    });
}

/// A `.invalid` name (RFC 6761: never resolves) fails fast with an error
/// naming the host, for `connect`, `lookup_host`, `send_to` and `bind`;
/// a name with a NUL is `InvalidInput` as in std; no panic, the hub fine.
#[test]
fn a03_unresolvable_and_malformed_names() {
    bounded(|| {
        let host = "no-such-host.invalid";
        if crate::util::bad_host_fails_fast() {
            let e = TcpStream::connect((host, 80)).unwrap_err();
            assert!(e.to_string().contains(host), "{e}");
            let e = sylvan::net::lookup_host(format!("{host}:0")).unwrap_err();
            assert!(e.to_string().contains(host), "{e}");
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let e = u.send_to(b"x", (host, 9)).unwrap_err();
            assert!(e.to_string().contains(host), "{e}");
            let e = TcpListener::bind((host, 0)).unwrap_err();
            assert!(e.to_string().contains(host), "{e}");
        }

        let theirs = std::net::ToSocketAddrs::to_socket_addrs(&("a\0b", 80)).unwrap_err();
        let ours = sylvan::net::lookup_host(("a\0b", 80)).unwrap_err();
        assert_eq!(ours.kind(), theirs.kind(), "{ours} vs {theirs}");
        let e = sylvan::net::lookup_host("no port here").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(sylvan::spawn(|| 2).join().unwrap(), 2);
    });
}

/// An empty address list, as std: `connect(&[][..])` and
/// `send_to(.., &[][..])` are `InvalidInput`, not a panic or a hang.
#[test]
fn a04_empty_address_lists() {
    bounded(|| {
        let none: &[SocketAddr] = &[];
        let ours = TcpStream::connect(none).unwrap_err();
        let theirs = std::net::TcpStream::connect(none).unwrap_err();
        assert_eq!(ours.kind(), theirs.kind(), "{ours} vs {theirs}");
        let e = TcpListener::bind(none).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = u.send_to(b"x", none).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    });
}

/// A connect to a closed loopback port is `ConnectionRefused`, as std, for
/// `connect` and `connect_timeout`.
#[test]
fn a05_connect_to_a_closed_port_is_refused() {
    bounded(|| {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = first_error(|| TcpStream::connect(addr));
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        let e = first_error(|| TcpStream::connect_timeout(addr, Duration::from_secs(1)));
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    });
}

/// Empty buffers on TCP. The brief's premise, "std returns `Ok(0)` for an
/// empty read buffer without blocking", does not hold on Linux: a
/// blocking std `TcpStream::read(&mut [])` or `peek(&mut [])` waits for
/// data (or its timeout), because the kernel's `recv` of 0 bytes waits for
/// readability (checked with a std program: `Ok(0)` after its 300 ms read
/// timeout). sylvan does the same: the call parks until data arrives, then
/// returns `Ok(0)` consuming nothing; with a read timeout it ends with
/// `Ok(0)` too, as std's on Linux (not sylvan's usual `TimedOut`: the
/// kernel's copy loop runs only while bytes are wanted, so a blocking
/// empty read reports no timeout). `write(&[])`, an empty
/// `read_exact`/`write_all` and `read_vectored(&mut [])` return `Ok` at
/// once, as std's.
#[test]
fn a06_empty_buffers_on_tcp_as_std() {
    bounded(|| {
        let (c, s) = tcp_pair();
        let at_once = |what: &str, f: &dyn Fn() -> std::io::Result<usize>| {
            let r = sylvan::with_timeout(Duration::from_millis(100), f);
            format!("{what}={:?}", r.map(|r| r.map_err(|e| e.kind())))
        };
        let got = [
            at_once("write", &|| (&c).write(&[])),
            at_once("read_exact", &|| (&c).read_exact(&mut []).map(|()| 0)),
            at_once("write_all", &|| (&c).write_all(&[]).map(|()| 0)),
            at_once("read_vectored", &|| (&c).read_vectored(&mut [])),
        ];
        assert_eq!(
            got,
            [
                "write=Ok(Ok(0))",
                "read_exact=Ok(Ok(0))",
                "write_all=Ok(Ok(0))",
                "read_vectored=Ok(Ok(0))",
            ]
        );
        c.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let t = std::time::Instant::now();
        assert_eq!((&c).read(&mut []).unwrap(), 0);
        assert_eq!(c.peek(&mut []).unwrap(), 0);
        assert!(t.elapsed() >= Duration::from_millis(8), "both waited");
        c.set_read_timeout(None).unwrap();
        let w = sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(2));
            (&s).write_all(b"kept").unwrap();
            s
        });
        assert_eq!((&c).read(&mut []).unwrap(), 0);
        assert_eq!(c.peek(&mut []).unwrap(), 0);
        let mut b = [0u8; 4];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"kept");
        drop(w.join().unwrap());
    });
}

/// UDP, as std: `send(&[])` sends an empty datagram (`Ok(0)`), which the
/// peer receives as `Ok(0)`; `send_to(&[], addr)` likewise; a
/// `recv_from(&mut [])` takes a waiting datagram and returns 0 with its
/// sender.
#[test]
fn a07_empty_datagrams() {
    bounded(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        assert_eq!(a.send(&[]).unwrap(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 0);
        assert_eq!(b.send_to(&[], a.local_addr().unwrap()).unwrap(), 0);
        assert_eq!(a.recv(&mut buf).unwrap(), 0);
        a.send(b"xyz").unwrap();
        let (n, from) = b.recv_from(&mut []).unwrap();
        assert_eq!((n, from), (0, a.local_addr().unwrap()));
    });
}

/// std: `read_exact` hitting end of stream is `UnexpectedEof`, and a read
/// after it is `Ok(0)`; sylvan the same, for TCP and Unix streams.
#[test]
fn a08_read_exact_on_eof() {
    bounded(|| {
        let (c, s) = tcp_pair();
        (&s).write_all(b"abc").unwrap();
        drop(s);
        let mut b = [0u8; 8];
        let e = (&c).read_exact(&mut b).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert_eq!((&c).read(&mut b).unwrap(), 0);
        let (u, v) = UnixStream::pair().unwrap();
        (&v).write_all(b"ab").unwrap();
        drop(v);
        let e = (&u).read_exact(&mut b).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert_eq!((&u).read(&mut b).unwrap(), 0);
    });
}

/// `write_all` to a closed peer with SIGPIPE at its default action (as
/// in a program whose runtime does not ignore it, or a C host): std's
/// sockets use `MSG_NOSIGNAL`, so the write fails with `BrokenPipe` (or
/// `ConnectionReset`) and the process lives. Checked for TCP and Unix
/// streams (child, which SIGPIPE would kill).
#[test]
fn a09_write_all_to_closed_peer_with_sigpipe_default() {
    in_child(
        "probes37::a09_write_all_to_closed_peer_with_sigpipe_default",
        "p37-a09",
        || {
            // SAFETY: resets SIGPIPE in this child process only.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let big = vec![7u8; 256 << 10];
            let (c, s) = tcp_pair();
            drop(s);
            let e = first_error(|| (&c).write_all(&big));
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{e:?}"
            );
            let (u, v) = UnixStream::pair().unwrap();
            drop(v);
            let e = first_error(|| (&u).write_all(&big));
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "{e:?}"
            );
        },
    );
}

/// TTL edges, against std on the same values: 0 is refused by the kernel
/// (`InvalidInput`), `u32::MAX` (-1 for the kernel: "the default") and
/// 255 behave as std's; no panic.
#[test]
fn a10_ttl_edges_match_std() {
    bounded(|| {
        let (c, _s) = tcp_pair();
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_c = std::net::TcpStream::connect(std_l.local_addr().unwrap()).unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let std_u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for ttl in [0, 1, 255, 256, u32::MAX] {
            let ours = c.set_ttl(ttl).map_err(|e| e.kind());
            let theirs = std_c.set_ttl(ttl).map_err(|e| e.kind());
            assert_eq!(ours, theirs, "TcpStream::set_ttl({ttl})");
            let ours = u.set_ttl(ttl).map_err(|e| e.kind());
            let theirs = std_u.set_ttl(ttl).map_err(|e| e.kind());
            assert_eq!(ours, theirs, "UdpSocket::set_ttl({ttl})");
        }
        assert_eq!(c.ttl().unwrap(), std_c.ttl().unwrap());
    });
}

/// Unix socket paths, against std: a path past `sun_path` (108 bytes) and
/// one with a NUL are errors of std's kinds; a missing path is `NotFound`
/// for connect.
#[test]
fn a11_unix_path_edges_match_std() {
    bounded(|| {
        let long = format!("/tmp/{}", "p".repeat(200));
        let ours = UnixListener::bind(&long).unwrap_err();
        let theirs = std::os::unix::net::UnixListener::bind(&long).unwrap_err();
        assert_eq!(ours.kind(), theirs.kind(), "{ours} vs {theirs}");
        let ours = UnixStream::connect(&long).unwrap_err();
        assert_eq!(ours.kind(), theirs.kind(), "{ours}");
        let nul = "/tmp/a\0b";
        let ours = UnixListener::bind(nul).unwrap_err();
        let theirs = std::os::unix::net::UnixListener::bind(nul).unwrap_err();
        assert_eq!(ours.kind(), theirs.kind(), "{ours} vs {theirs}");
        let missing = format!("/tmp/sylvan-p37-missing-{}", std::process::id());
        let e = UnixStream::connect(&missing).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    });
}

// ====================================================================== contexts

/// A link callback runs in a fresh greenlet and may block (the design):
/// from one, sleep, spawn + join, a ZERO `with_timeout` around a sleep,
/// `spawn_blocking`, a socket round trip and `kill_timeout(ZERO)` all work.
#[test]
fn c01_apis_from_a_link_callback() {
    bounded(|| {
        let log = Log::default();
        let done = Rc::new(Event::new());
        let g = sylvan::spawn(|| 1);
        let (l, d) = (log.clone(), done.clone());
        g.link(move |_| {
            sylvan::sleep(Duration::from_millis(1));
            l.push(format!("join={:?}", sylvan::spawn(|| 2).join().ok()));
            let r =
                sylvan::with_timeout(Duration::ZERO, || sylvan::sleep(Duration::from_millis(1)));
            l.push(format!("zero={}", r.is_err()));
            l.push(format!("blocking={}", sylvan::spawn_blocking(|| 3)));
            let (c, s) = tcp_pair();
            (&c).write_all(b"z").unwrap();
            let mut b = [0u8];
            (&s).read_exact(&mut b).unwrap();
            l.push(format!("io={}", b[0] as char));
            let other = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
            sylvan::yield_now();
            other.kill_timeout(Duration::ZERO);
            l.push(format!("killed={}", other.wait(Some(Duration::MAX))));
            d.set();
        });
        assert!(done.wait_timeout(Duration::from_secs(3)));
        assert_eq!(g.join().unwrap(), 1);
        assert_eq!(
            log.take(),
            [
                "join=Some(2)",
                "zero=true",
                "blocking=3",
                "io=z",
                "killed=true"
            ]
        );
    });
}

/// Calls made by a destructor running during a kill unwind, with
/// MAX timeouts: the doc says blocking calls "return at once" then
/// (`sleep` returns, `join` gives `Error::Unwinding`, `kill` does not
/// wait; waits report "not ready"). None may hang or switch; `spawn`
/// still schedules a greenlet, which runs later. (Child: a panic inside
/// the destructor would abort.)
#[test]
fn c02_apis_from_a_destructor_during_a_kill() {
    in_child(
        "probes37::c02_apis_from_a_destructor_during_a_kill",
        "p37-c02",
        || {
            struct Probe {
                log: Log,
                ev: Rc<Event>,
                other: Option<sylvan::Greenlet<()>>,
                conn: Option<TcpStream>,
                later: Rc<Cell<bool>>,
            }
            impl Drop for Probe {
                fn drop(&mut self) {
                    let t = Instant::now();
                    let l = &self.log;
                    sylvan::sleep(Duration::MAX);
                    l.push("slept");
                    l.push(format!("ev={}", self.ev.wait_timeout(Duration::MAX)));
                    let q: Queue<u8> = Queue::unbounded();
                    l.push(format!("q={:?}", q.get_timeout(Duration::MAX)));
                    let sem = Semaphore::new(0);
                    l.push(format!(
                        "sem={}",
                        sem.acquire_timeout(Duration::MAX).is_some()
                    ));
                    let r = sylvan::with_timeout(Duration::from_millis(1), || {
                        sylvan::sleep(Duration::from_secs(5));
                        4
                    });
                    l.push(format!("wt={r:?}"));
                    let other = self.other.take().unwrap();
                    l.push(format!("wait={}", other.wait(Some(Duration::MAX))));
                    other.kill_nowait();
                    l.push(format!(
                        "join={:?}",
                        other.join().err().map(|e| e.is_killed())
                    ));
                    l.push(format!("blocking={}", sylvan::spawn_blocking(|| 5)));
                    let mut b = [0u8; 1];
                    let conn = self.conn.take().unwrap();
                    l.push(format!("read={:?}", (&conn).read(&mut b).is_err()));
                    let all = sylvan::wait(&[&*self.ev], Some(Duration::MAX), None);
                    l.push(format!("wait_many={all:?}"));
                    let later = self.later.clone();
                    drop(sylvan::spawn(move || later.set(true)));
                    l.push(format!("fast={}", t.elapsed() < Duration::from_millis(500)));
                }
            }
            let log = Log::default();
            let later = Rc::new(Cell::new(false));
            let (c, _s) = tcp_pair();
            let probe = Probe {
                log: log.clone(),
                ev: Rc::new(Event::new()),
                other: Some(sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)))),
                conn: Some(c),
                later: later.clone(),
            };
            let victim = sylvan::spawn(move || {
                let _p = probe;
                sylvan::sleep(Duration::from_secs(60));
            });
            yield_until("victim parked", || victim.is_started());
            sylvan::yield_now();
            victim.kill();
            assert!(victim.join().unwrap_err().is_killed());
            yield_until("spawned from the destructor ran", || later.get());
            let got = log.take();
            assert_eq!(
                got,
                [
                    "slept",
                    "ev=false",
                    "q=Err(Empty)",
                    "sem=false",
                    "wt=Ok(4)",
                    "wait=false",
                    "join=Some(false)",
                    "blocking=5",
                    "read=true",
                    "wait_many=[]",
                    "fast=true",
                ]
            );
        },
    );
}

/// Inside a `with_timeout` whose deadline already passed and whose expiry
/// `f` swallowed (`catch_unwind`), the doc promises `Ok`; blocking calls
/// after it work normally (the unwind is thrown once), and a fresh inner
/// `with_timeout(MAX)` returns `Ok`. An expired outer timeout passes
/// through an inner `with_timeout(MAX)` to its own call.
#[test]
fn c03_inside_an_already_expired_with_timeout() {
    bounded(|| {
        let r = sylvan::with_timeout(Duration::ZERO, || {
            let caught = catch_unwind(|| sylvan::sleep(Duration::from_millis(50)));
            let p = caught.expect_err("the zero timeout did not fire");
            assert!(sylvan::is_unwind_payload(&*p));
            std::mem::forget(p); // swallowed (dropping it would report it)
            sylvan::sleep(Duration::from_millis(1));
            let ev = Event::new();
            let a = ev.wait_timeout(Duration::from_millis(1));
            let b = sylvan::with_timeout(Duration::MAX, || {
                sylvan::sleep(Duration::from_millis(1));
                8
            });
            (a, b)
        });
        assert_eq!(r, Ok((false, Ok(8))));

        let r = sylvan::with_timeout(Duration::ZERO, || {
            sylvan::with_timeout(Duration::MAX, || sylvan::sleep(Duration::from_millis(20)))
        });
        assert!(
            r.is_err(),
            "the outer zero timeout was not reported by its own call"
        );
        sylvan::sleep(Duration::from_millis(1));
    });
}

/// At thread exit the hub is torn down from a thread-local destructor; a
/// thread-local destroyed after it that uses sylvan gets a late hub (the
/// design: "must not reach the hub through a thread-local that panics on
/// access (a panic there aborts)"): spawn + join, sleep, a ZERO event wait
/// and `Handle::current` all work, and the thread ends cleanly. (Child:
/// the failure mode is an abort.)
#[test]
fn c04_sylvan_from_a_tls_destructor_after_hub_teardown() {
    in_child(
        "probes37::c04_sylvan_from_a_tls_destructor_after_hub_teardown",
        "p37-c04",
        || {
            struct LateUser(Option<std::sync::mpsc::Sender<String>>);
            impl Drop for LateUser {
                fn drop(&mut self) {
                    let Some(tx) = self.0.take() else { return };
                    let j = sylvan::spawn(|| 7).join().ok();
                    let _ = tx.send(format!("join={j:?}"));
                    sylvan::sleep(Duration::from_millis(1));
                    let _ = tx.send("slept".into());
                    let ev = Event::new();
                    let _ = tx.send(format!("ev={}", ev.wait_timeout(Duration::ZERO)));
                    let _ = tx.send(format!("handle={}", Handle::current().is_alive()));
                }
            }
            thread_local! {
                static LATE: std::cell::RefCell<LateUser> =
                    const { std::cell::RefCell::new(LateUser(None)) };
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let th = std::thread::spawn(move || {
                // Registered before the hub exists: destroyed after it.
                LATE.with(|l| l.borrow_mut().0 = Some(tx));
                let g = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(60)));
                sylvan::yield_now();
                drop(g); // detached: killed at thread exit
            });
            th.join().expect("the thread panicked");
            let got: Vec<String> = rx.iter().collect();
            assert_eq!(got, ["join=Some(7)", "slept", "ev=false", "handle=true"]);
        },
    );
}

/// A `Handle` whose thread ended: `spawn` is `Err(HubGone)` (the doc),
/// `is_alive` false, `wake` and `keep_alive` harmless.
#[test]
fn c05_handle_after_its_thread_ended() {
    let h = std::thread::spawn(|| {
        let h = Handle::current();
        sylvan::spawn(|| ()).join().unwrap();
        h
    })
    .join()
    .unwrap();
    assert!(!h.is_alive());
    assert!(h.spawn(|| ()).is_err());
    h.wake();
    drop(h.keep_alive());
}

/// A thread with no hub yet: the first sylvan call of any kind makes one
/// (the design: "created lazily on first use"): `current()` is `#0`
/// named main, `dump()` lists main, a ZERO event wait is false, and a
/// `Timeout` at a past instant fires at the first block.
#[test]
fn c06_first_calls_on_a_fresh_thread() {
    let probes: [fn() -> String; 5] = [
        || sylvan::current().to_string(),
        || format!("{:?}", sylvan::current_name()),
        || sylvan::dump().greenlets.len().to_string(),
        || Event::new().wait_timeout(Duration::ZERO).to_string(),
        || {
            let t = Timeout::start_at(far_past());
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(5))));
            r.is_err_and(|p| t.is_own_payload(&*p)).to_string()
        },
    ];
    let got: Vec<String> = probes
        .into_iter()
        .map(|f| on_fresh_thread(Duration::from_secs(5), f))
        .collect();
    assert_eq!(got, ["#0", "Some(\"main\")", "1", "false", "true"]);
}

/// `wait_all` from a spawned greenlet is documented to panic with a message
/// naming the fix; the greenlet dies `Panicked` with it and the hub goes
/// on. Likewise a greenlet waiting for itself.
#[test]
fn c07_main_only_and_self_waits_from_a_greenlet() {
    bounded(|| {
        quiet();
        let g = sylvan::spawn(|| sylvan::wait_all(Some(Duration::ZERO)));
        let e = g.join().unwrap_err();
        let m = e.panic().expect("not a panic").message().to_owned();
        assert!(m.contains("only the thread's main code"), "{m}");
        let slot: Rc<std::cell::RefCell<Option<sylvan::Greenlet<()>>>> = Rc::default();
        let s = slot.clone();
        let me = sylvan::spawn(move || {
            let own = s.borrow_mut().take().unwrap();
            own.wait(Some(Duration::ZERO));
        });
        let seen = Rc::new(std::cell::RefCell::new(String::new()));
        let s2 = seen.clone();
        me.link_exception(move |e| *s2.borrow_mut() = e.to_string());
        *slot.borrow_mut() = Some(me);
        yield_until("self-waiter's report", || !seen.borrow().is_empty());
        assert!(
            seen.borrow().contains("cannot wait for itself"),
            "{}",
            seen.borrow()
        );
        assert_eq!(sylvan::spawn(|| 5).join().unwrap(), 5);
    });
}

/// `signal` with numbers that cannot be handled: 0, negative, past
/// SIGRTMAX, `i32::MAX`, SIGKILL, SIGSTOP and the fault signals sylvan's
/// overflow detection uses are `InvalidInput` naming the signal (the doc).
#[test]
fn c08_signal_numbers_out_of_range() {
    bounded(|| {
        for signum in [
            0,
            -1,
            i32::MIN,
            i32::MAX,
            libc::SIGRTMAX() + 1,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
        ] {
            let e = sylvan::signal(signum, || {}).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{signum}: {e}");
            assert!(e.to_string().contains(&signum.to_string()), "{e}");
        }
    });
}

/// `os::Fd::new` on a descriptor that cannot be polled (a regular file)
/// is `InvalidInput` (the doc) and drops the file; `set_read_timeout(ZERO)`
/// on a pipe `Fd` is `InvalidInput` as std's sockets; MAX is accepted.
#[test]
fn c09_fd_edges() {
    bounded(|| {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let e = sylvan::os::Fd::new(f).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let (r, _w) = std::io::pipe().unwrap();
        let fd = sylvan::os::Fd::new(r).unwrap();
        let e = fd.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        fd.set_read_timeout(Some(Duration::MAX)).unwrap();
        assert_eq!(fd.read_timeout(), Some(Duration::MAX));
        fd.set_read_timeout(Some(Duration::from_nanos(1))).unwrap();
        let e = fd.read_with(|mut p| p.read(&mut [0u8; 4])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    });
}

/// `JoinableQueue::task_done` once too often: gevent raises
/// `ValueError('task_done() called too many times')`; sylvan panics with
/// a message saying so, and the count stays at zero.
#[test]
fn c10_task_done_too_often() {
    bounded(|| {
        let q: JoinableQueue<u8> = JoinableQueue::unbounded();
        let m = panics(|| q.task_done()).expect("no panic");
        assert!(m.contains("more times than items were put"), "{m}");
        assert_eq!(q.unfinished(), 0);
        q.put(1).unwrap();
        assert_eq!(q.unfinished(), 1);
    });
}

/// A `kill_timeout(ZERO)` from a link callback of another greenlet, on a
/// parked greenlet with a 100 KB name: it returns at once (false: not dead
/// yet) and the kill still lands; the victim ends `Killed`.
#[test]
fn c11_kill_from_link_callback_with_zero_timeout() {
    bounded(|| {
        let victim = Rc::new(
            Builder::new()
                .name("v".repeat(100 << 10))
                .spawn(|| sylvan::sleep(Duration::from_secs(60)))
                .unwrap(),
        );
        let trigger = sylvan::spawn(|| ());
        let v = victim.clone();
        let survived = Rc::new(Cell::new(None));
        let s = survived.clone();
        trigger.link(move |_| s.set(Some(v.kill_timeout(Duration::ZERO))));
        trigger.join().unwrap();
        // join waited for the callback: it ran, and the kill was thrown.
        assert!(survived.get().is_some());
        assert!(victim.wait(Some(Duration::from_secs(2))));
        let victim = Rc::try_unwrap(victim).unwrap();
        assert!(matches!(victim.join(), Err(Error::Killed)));
    });
}

// ====================================================================== more

/// `StreamServer::stop(Some(ZERO))` lets handlers no time: a sleeping one
/// is killed at once; `stop(Some(MAX))` (no deadline) waits for a handler
/// that finishes; binding a `.invalid` name is an error naming it.
#[test]
fn a12_stream_server_stop_timeouts() {
    use sylvan::net::StreamServer;
    bounded(|| {
        if crate::util::bad_host_fails_fast() {
            let e = StreamServer::bind("no-such-host.invalid:0", |_c, _p| ()).unwrap_err();
            assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        }
        for (timeout, nap, killed) in [
            (Duration::ZERO, Duration::from_secs(60), true),
            (Duration::MAX, Duration::from_millis(3), false),
        ] {
            let finished = Rc::new(Cell::new(false));
            let f = finished.clone();
            let server = StreamServer::bind("127.0.0.1:0", move |_c, _p| {
                sylvan::sleep(nap);
                f.set(true);
            })
            .unwrap()
            .with_pool(Pool::new(1))
            .start()
            .unwrap();
            let _c = TcpStream::connect(server.local_addr().unwrap()).unwrap();
            yield_until("handler running", || server.handlers() == 1);
            let t = Instant::now();
            server.stop(Some(timeout));
            assert!(t.elapsed() < Duration::from_secs(2));
            assert_eq!(server.handlers(), 0);
            assert_eq!(finished.get(), !killed, "stop({timeout:?})");
        }
    });
}

/// Socket timeouts of 1 ns on the other socket types: a Unix stream read,
/// a UDP recv and a Unix datagram recv each fail with `TimedOut` at once;
/// a 1 ns write timeout with room in the buffer still writes.
#[test]
fn d18_one_nanosecond_timeouts_on_every_socket_type() {
    bounded(|| {
        let ns = Some(Duration::from_nanos(1));
        let t = Instant::now();
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_read_timeout(ns).unwrap();
        a.set_write_timeout(ns).unwrap();
        assert_eq!((&a).write(b"x").unwrap(), 1);
        let e = (&a).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(ns).unwrap();
        let e = u.recv_from(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        let (d, _e) = sylvan::net::UnixDatagram::pair().unwrap();
        d.set_read_timeout(ns).unwrap();
        let e = d.recv(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert!(t.elapsed() < Duration::from_secs(1));
    });
}

/// From a plain thread with no hub yet (no greenlet ever spawned there):
/// `spawn_blocking` parks that thread's main until the pool answers, and
/// a `Handle` made elsewhere spawns into a hub made on first use.
#[test]
fn c12_thread_pool_and_handles_from_hubless_threads() {
    let v = on_fresh_thread(Duration::from_secs(5), || sylvan::spawn_blocking(|| 5));
    assert_eq!(v, 5);
    let got = on_fresh_thread(Duration::from_secs(5), || {
        let h = Handle::current();
        let (tx, rx) = sylvan::mpsc::channel();
        let th = std::thread::spawn(move || h.spawn(move || tx.send(6).unwrap()).is_ok());
        let spawned = th.join().unwrap();
        (spawned, rx.recv_timeout(Duration::from_secs(2)).ok())
    });
    assert_eq!(got, (true, Some(6)));
}

/// From lonely main: `idle()` and `yield_now()` return at once (nothing
/// else to run; no "would block forever"), as gevent's `idle()` with an
/// empty loop.
#[test]
fn c13_idle_and_yield_from_lonely_main() {
    let fast = on_fresh_thread(Duration::from_secs(5), || {
        let t = Instant::now();
        sylvan::idle();
        sylvan::yield_now();
        sylvan::sleep(Duration::ZERO);
        t.elapsed() < Duration::from_millis(500)
    });
    assert!(fast);
}

/// `mpsc` senders outliving the receiver's thread: `send` hands the value
/// back in `Err(SendError)`, as std's, for both channel kinds; no panic.
#[test]
fn c14_send_after_the_receivers_thread_ended() {
    let (tx, otx) = std::thread::spawn(|| {
        let (tx, rx) = sylvan::mpsc::channel::<String>();
        let (otx, orx) = sylvan::mpsc::oneshot::<String>();
        drop((rx, orx));
        (tx, otx)
    })
    .join()
    .unwrap();
    let e = tx.send("kept".into()).unwrap_err();
    assert_eq!(e.0, "kept");
    let e = otx.send("kept too".into()).unwrap_err();
    assert_eq!(e.0, "kept too");
}

/// "Would block forever" from lonely main names what main waits on, for
/// an `AsyncResult` get, a `JoinableQueue` join and a join of a greenlet
/// parked on an `Event` nobody sets; the hub works after each.
#[test]
fn c15_would_block_forever_names_the_wait() {
    let msgs = on_fresh_thread(Duration::from_secs(5), || {
        let r: AsyncResult<u8, String> = AsyncResult::new();
        let a = panics(|| {
            let _ = r.get();
        });
        let q: JoinableQueue<u8> = JoinableQueue::unbounded();
        q.put(1).unwrap();
        let b = panics(|| q.join());
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = sylvan::spawn(move || {
            e.wait();
        });
        let id = g.id();
        let c = panics(move || {
            let _ = g.join();
        });
        let after = sylvan::spawn(|| 1).join().unwrap();
        (a, b, c, id.to_string(), after)
    });
    for m in [&msgs.0, &msgs.1, &msgs.2] {
        let m = m.as_deref().expect("no panic");
        assert!(m.contains("would block forever"), "{m}");
    }
    assert!(msgs.2.as_deref().unwrap().contains(&msgs.3), "{:?}", msgs.2);
    assert_eq!(msgs.4, 1);
}
