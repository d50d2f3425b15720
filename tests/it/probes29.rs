//! Probe round 29: the rest of the memcheck audit, and the thread checkers.
//!
//! memcheck (`--track-origins=yes --leak-check=full
//! --errors-for-leak-kinds=definite`, one test thread, no
//! `--trace-children`) ran, on the own x86-64 switch, the modules
//! `threads`, `threads_io`, `threads_gevent`, `inspect`, `wait`, `links`,
//! `failures`, `gevent`, `gevent2`, `net_std`, `net_gevent`, `os`,
//! `probes8`, `probes13`, `probes14`, `probes17` and `probes25`, and on
//! `--cfg sylvan_corosensei` `probes23`, `sync`, `pool`, `time`, `net`,
//! `os` and `probes27`. No invalid read or write, no use of an
//! uninitialised value and no definitely-lost block came from sylvan's
//! own code on either switch.
//!
//! One definitely-lost block is expected and documented: 96 bytes in
//! `probes17::a_value_that_recreates_itself_is_dropped_eight_times_then_leaked`,
//! the `Vec` that `Locals::clear` (`hub/src/local.rs`) `mem::forget`s
//! after eight rounds of a greenlet-local re-creating itself in its own
//! destructor ("the rest are leaked (logged)"). A user whose destructor
//! does that sees it in a valgrind run. On the corosensei build `net` drew
//! one more, 96 bytes, glibc's per-thread resolver state (`getaddrinfo`
//! on a blocking-pool thread via `sylvan_hub::net::resolve`): glibc's, not
//! sylvan's.
//!
//! Valgrind's own limits, not sylvan's: a process with about ten thousand
//! live guarded stacks (`probes8::t19`, and `probes8` run as one process,
//! whose hub threads keep pooled stacks) stops valgrind with "FATAL:
//! VG_N_SEGMENTS is too low" (each stack is two mappings). Tests that
//! bound their work by wall time (5 s `bounded`, 3 s hang guards, slow
//! readers of several MiB, crawler runs) fail by timing alone under the
//! slowdown.
//!
//! helgrind and drd on `threads`, `threads_io`, `probes8` and the
//! `probes13` channel tests: unusable. Every report is on data that a
//! `std::sync::Mutex` guards (the hub's remote queue in `Remote::send` /
//! `Hub::run_remote`, the channel state in `mpsc.rs`) or on atomics
//! (`Remote::pending`, the beacon): std's mutex is built on futexes and
//! atomics, which neither tool sees as synchronisation, and std's own
//! `mpsc` draws the same reports. No race was found in sylvan's code.
//!
//! The tests below drive the cross-thread paths read in this round through
//! the public API and check the counts a race there would break; the last
//! one re-runs them under memcheck when valgrind is installed.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::bounded;

/// Values sent by threads while the receiving greenlet loops on short
/// `recv_timeout`s: every value arrives exactly once and in each sender's
/// order, and a wake-up queued for a receive that already timed out never
/// cuts short the greenlet's next park (a sleep between receives).
///
/// Leans on `mpsc::wake_all` (the `live` flag checked on the receiver's
/// hub thread) and `ParkGuard::drop` (`live` cleared and the entry removed
/// before the greenlet parks elsewhere).
#[test]
fn thread_senders_racing_receive_timeouts_lose_and_misdirect_nothing() {
    const PER: usize = 300;
    let (tx, rx) = sylvan::mpsc::channel::<(usize, usize)>();
    let senders: Vec<_> = (0..3)
        .map(|s| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    tx.send((s, i)).unwrap();
                    if i % 32 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let early = Rc::new(Cell::new(0u32));
    let e = early.clone();
    let g = sylvan::spawn(move || {
        let mut next = [0usize; 3];
        let mut timeouts = 0u32;
        loop {
            match rx.recv_timeout(Duration::from_micros(50)) {
                Ok((s, i)) => {
                    assert_eq!(i, next[s], "sender {s}'s values in order, once each");
                    next[s] += 1;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    timeouts += 1;
                    if timeouts % 8 == 1 {
                        // A wake-up a sender queued for the receive that
                        // just timed out must not end this sleep early.
                        let t = Instant::now();
                        sylvan::sleep(Duration::from_millis(1));
                        if t.elapsed() < Duration::from_micros(500) {
                            e.set(e.get() + 1);
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        next
    });
    let next = sylvan::with_timeout(Duration::from_secs(60), || g.join())
        .expect("the receiver finished")
        .unwrap();
    assert_eq!(next, [PER; 3]);
    assert_eq!(early.get(), 0, "a sleep ended early by a stale wake-up");
    for s in senders {
        s.join().unwrap();
    }
}

/// Threads spawn greenlets on this hub through a `Handle` while main
/// parks on a `sylvan::mpsc` receiver and `KeepAlive` guards come and go
/// on those threads: every spawned closure runs once and reports back,
/// and main is never told it would block forever.
///
/// Leans on `Remote::send` (one wake per batch: `pending` swapped after the
/// job is queued) and `Hub::run_remote` (`pending` cleared before the
/// queue is taken).
#[test]
fn handle_spawns_and_keep_alives_from_threads_each_run_once() {
    const PER: usize = 200;
    let handle = sylvan::Handle::current();
    let (tx, rx) = sylvan::mpsc::channel::<usize>();
    let ran = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let (handle, tx, ran) = (handle.clone(), tx.clone(), ran.clone());
            std::thread::spawn(move || {
                for i in 0..PER {
                    let keep = (i % 10 == 0).then(|| handle.keep_alive());
                    let (tx, ran) = (tx.clone(), ran.clone());
                    handle
                        .spawn(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                            sylvan::yield_now();
                            tx.send(t * PER + i).unwrap();
                        })
                        .unwrap();
                    drop(keep);
                    if i % 50 == 0 {
                        handle.wake();
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut seen = vec![false; 3 * PER];
    let got = sylvan::with_timeout(Duration::from_secs(60), || {
        let mut n = 0;
        while n < 3 * PER {
            let v = rx.recv().expect("a sender lives until its greenlet ran");
            assert!(!seen[v], "value {v} twice");
            seen[v] = true;
            n += 1;
        }
        n
    })
    .expect("every spawned greenlet reported back");
    assert_eq!(got, 3 * PER);
    assert_eq!(ran.load(Ordering::SeqCst), 3 * PER);
    for t in threads {
        t.join().unwrap();
    }
    bounded(|| assert!(rx.recv().is_err(), "all senders gone"));
}

/// The two tests above, and `threads::` (cross-thread spawns and the
/// blocking pool), run clean under `valgrind --tool=memcheck`. Skipped,
/// saying so, where valgrind is not installed.
#[test]
fn memcheck_accepts_the_cross_thread_paths() {
    crate::util::memcheck(
        &[
            "probes29::thread_senders_racing_receive_timeouts_lose_and_misdirect_nothing",
            "probes29::handle_spawns_and_keep_alives_from_threads_each_run_once",
            "threads::handle_spawns_on_another_threads_hub",
        ],
        &["--leak-check=full", "--errors-for-leak-kinds=definite"],
        Duration::from_secs(240),
    );
}
