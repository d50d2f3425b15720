//! Adversarial probes, round 13: `sylvan::mpsc`, `sylvan::signal`,
//! `dump`/`stats` and the `BlockingDetector`. Tests marked
//! `#[ignore = "BUG: ..."]` show a sylvan bug; the rest are regression
//! checks. Signals are raised only in child processes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self as stdmpsc, RecvError, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{BlockingDetector, BlockingReport, WaitKind, sleep, spawn, yield_now};

use crate::util::{bounded, in_child, quiet, stall_until, yield_until};

const MS: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(3);

/// Runs `f` on a fresh OS thread and returns its result, failing (instead
/// of hanging) if it does not finish within `limit`. Blocks this thread.
fn on_thread<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = stdmpsc::channel();
    let th = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    let r = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("HANG: thread did not finish within {limit:?}"));
    let t = Instant::now();
    while !th.is_finished() {
        assert!(t.elapsed() < limit, "HANG: thread teardown");
        std::thread::sleep(2 * MS);
    }
    th.join().unwrap();
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Joins a std thread without blocking the hub (yields until it finished).
fn join_green<T>(th: std::thread::JoinHandle<T>) -> T {
    // Generous: the thread may stall up to 3 s waiting for its watchdog.
    assert!(
        crate::util::wait_for(Duration::from_secs(10), || th.is_finished()),
        "std thread never finished"
    );
    th.join().unwrap()
}

fn kill_self(sig: i32) {
    // SAFETY: sends a signal this (child) process handles to itself.
    assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
}

fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn collect(threshold: Duration) -> (Arc<Mutex<Vec<BlockingReport>>>, BlockingDetector) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let d =
        BlockingDetector::with_callback(threshold, move |rep| r.lock().unwrap().push(rep.clone()));
    (reports, d)
}

// ================================================================ mpsc

/// Counts drops of values sent through channels.
struct Counted(u32, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

// A flood from four threads and two greenlets into a receiver greenlet
// iterating: every value arrives once, in order per sender, and the
// iteration ends when the last sender goes.
#[test]
fn mp_flood_from_threads_and_greenlets_exact_and_ordered() {
    bounded(|| {
        const N: u32 = 5000;
        let (tx, rx) = sylvan::mpsc::channel::<(u32, u32)>();
        let r = spawn(move || {
            let mut last = [None::<u32>; 6];
            let mut count = 0u32;
            for (who, i) in rx.iter() {
                let w = who as usize;
                assert!(
                    last[w].is_none_or(|l| l + 1 == i),
                    "sender {who}: {last:?} then {i}"
                );
                last[w] = Some(i);
                count += 1;
            }
            (count, last)
        });
        let threads: Vec<_> = (0..4u32)
            .map(|who| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        tx.send((who, i)).unwrap();
                    }
                })
            })
            .collect();
        let greens: Vec<_> = (4..6u32)
            .map(|who| {
                let tx = tx.clone();
                spawn(move || {
                    for i in 0..N {
                        tx.send((who, i)).unwrap();
                        if i % 64 == 0 {
                            yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for g in greens {
            g.join().unwrap();
        }
        for th in threads {
            join_green(th);
        }
        let (count, last) = r.join().unwrap();
        assert_eq!(count, 6 * N);
        assert!(last.iter().all(|l| *l == Some(N - 1)), "{last:?}");
    })
}

// A receiver woken by a same-hub send and killed before it runs takes
// nothing with it: the value stays queued.
#[test]
fn mp_receiver_woken_then_killed_before_running_leaves_the_value() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let r2 = rx.clone();
        let g = spawn(move || r2.recv());
        yield_now();
        tx.send(7).unwrap();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(rx.try_recv(), Ok(7));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    })
}

// A greenlet iterating a shared receiver is killed while parked; later
// values from a thread reach main's recv; nothing is lost.
#[test]
fn mp_killed_iterator_then_thread_values_reach_main() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let r2 = rx.clone();
        let seen = Rc::new(Cell::new(0));
        let s2 = seen.clone();
        let g = spawn(move || {
            for _ in r2.iter() {
                s2.set(s2.get() + 1);
            }
        });
        tx.send(1).unwrap();
        yield_until("first value seen", || seen.get() == 1);
        g.kill();
        let th = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            for v in 10..13 {
                tx.send(v).unwrap();
            }
        });
        let got: Vec<u32> = rx.iter().collect();
        assert_eq!(got, [10, 11, 12]);
        join_green(th);
        assert_eq!(seen.get(), 1);
        assert_eq!(sylvan::stats().alive, 0);
    })
}

// Receiver dropped while threads send: every value is dropped exactly
// once, either with the receiver's queue or inside the SendError handed
// back to its sender.
#[test]
fn mp_receiver_dropped_while_threads_send_drops_each_value_once() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = sylvan::mpsc::channel::<Counted>();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (tx, drops, refused) = (tx.clone(), drops.clone(), refused.clone());
                std::thread::spawn(move || {
                    for i in 0..3000 {
                        if let Err(e) = tx.send(Counted(i, drops.clone())) {
                            assert_eq!(e.0.0, i);
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // take a few, then drop the receiver mid-flood
        let mut taken = 0;
        while taken < 100 {
            match rx.recv_timeout(LONG) {
                Ok(_) => taken += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        drop(rx);
        for th in threads {
            join_green(th);
        }
        assert_eq!(drops.load(Ordering::SeqCst), 9000);
    })
}

// A thread whose greenlet is parked in recv (the sender lives on another
// thread) exits promptly: teardown kills the receiver, which is dropped,
// and the sender sees SendError.
#[test]
fn mp_thread_exit_with_a_greenlet_parked_in_recv() {
    let (tx, rx) = sylvan::mpsc::channel::<u32>();
    let (ready_tx, ready_rx) = stdmpsc::channel();
    on_thread(LONG, move || {
        let g = spawn(move || rx.recv());
        yield_now();
        ready_tx.send(()).unwrap();
        assert!(!g.is_dead());
        // returns with g still parked: thread exit kills it
    });
    ready_rx.recv_timeout(LONG).unwrap();
    assert_eq!(tx.send(5).unwrap_err().0, 5);
}

// README: "A sylvan::mpsc receiver counts as waiting while any sender
// lives": main receiving from a thread that sends after 200 ms waits.
#[test]
fn mp_main_recv_waits_for_a_slow_thread_sender() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let th = std::thread::spawn(move || {
            std::thread::sleep(200 * MS);
            tx.send(3).unwrap();
        });
        assert_eq!(rx.recv(), Ok(3));
        assert_eq!(rx.recv(), Err(RecvError));
        join_green(th);
    })
}

// Main parked in recv; the only sender is held by a greenlet that is
// killed: main sees the disconnection.
#[test]
fn mp_sender_in_killed_greenlet_disconnects_main() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let g = spawn(move || {
            let _tx = tx;
            sleep(LONG * 10);
        });
        let k = spawn(move || {
            sleep(50 * MS);
            g.kill();
        });
        assert_eq!(rx.recv(), Err(RecvError));
        k.join().unwrap();
    })
}

// A receiver parked with recv_timeout on another thread's hub wakes with
// Disconnected as soon as the last sender (here, on this thread) drops,
// not at its deadline.
#[test]
fn mp_cross_thread_disconnect_wakes_recv_timeout_early() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let tx2 = tx.clone();
        let th = std::thread::spawn(move || {
            let g = spawn(move || {
                let t = Instant::now();
                (rx.recv_timeout(Duration::from_secs(2)), t.elapsed())
            });
            g.join().unwrap()
        });
        sleep(100 * MS);
        drop(tx);
        sleep(100 * MS);
        drop(tx2);
        let (r, waited) = join_green(th);
        assert_eq!(r, Err(RecvTimeoutError::Disconnected));
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    })
}

// oneshot: the sender dropped unsent on another thread is RecvError;
// try_recv after the value is Disconnected.
#[test]
fn mp_oneshot_semantics() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::oneshot::<u32>();
        let th = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            drop(tx);
        });
        assert_eq!(rx.recv(), Err(RecvError));
        join_green(th);

        let (tx, rx) = sylvan::mpsc::oneshot::<u32>();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(1).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv_timeout(LONG), Err(RecvTimeoutError::Disconnected));

        let (tx, rx) = sylvan::mpsc::oneshot::<u32>();
        drop(rx);
        assert_eq!(tx.send(2).unwrap_err().0, 2);
    })
}

// Receivers parked with recv_timeout in a loop, killed at random points
// while a thread floods: values are neither lost nor duplicated.
#[test]
fn mp_recv_timeout_loops_killed_mid_flood_lose_nothing() {
    bounded(|| {
        const N: u32 = 3000;
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let got: Rc<RefCell<Vec<u32>>> = Rc::default();
        let th = std::thread::spawn(move || {
            for i in 0..N {
                tx.send(i).unwrap();
                if i % 500 == 0 {
                    std::thread::sleep(MS);
                }
            }
        });
        let mut round = 0;
        loop {
            let (rx2, got2) = (rx.clone(), got.clone());
            let g = spawn(move || {
                loop {
                    match rx2.recv_timeout(5 * MS) {
                        Ok(v) => got2.borrow_mut().push(v),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return true,
                    }
                }
            });
            for _ in 0..(round % 7 + 1) {
                yield_now();
            }
            round += 1;
            g.kill();
            if let Ok(true) = g.join() {
                break;
            }
            if round > 100_000 {
                panic!("never finished");
            }
        }
        join_green(th);
        let got = got.borrow();
        assert_eq!(got.len(), N as usize);
        assert!(got.windows(2).all(|w| w[0] + 1 == w[1]));
    })
}

// ================================================================ signals

// sylvan::signal docs: "A registration counts as a wake source while it
// lives": main waiting on an Event that only the handler sets waits for the
// signal (sent by another thread after 200 ms) instead of failing.
#[test]
fn sg_main_waits_on_an_event_only_a_signal_sets() {
    in_child(
        "probes13::sg_main_waits_on_an_event_only_a_signal_sets",
        "p13_sg_event",
        || {
            let ev = Rc::new(Event::new());
            let e2 = ev.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || e2.set()).unwrap();
            let th = std::thread::spawn(|| {
                std::thread::sleep(200 * MS);
                kill_self(libc::SIGUSR1);
            });
            assert!(ev.wait());
            th.join().unwrap();
        },
    );
}

// Signals keep being handled while the hub never goes idle (100 greenlets
// yielding in a loop), each delivery running the handler.
#[test]
fn sg_signals_under_heavy_greenlet_load() {
    in_child(
        "probes13::sg_signals_under_heavy_greenlet_load",
        "p13_sg_load",
        || {
            let hits = Rc::new(Cell::new(0u32));
            let h2 = hits.clone();
            let _h = sylvan::signal(libc::SIGUSR2, move || h2.set(h2.get() + 1)).unwrap();
            let stop = Rc::new(Cell::new(false));
            let gs: Vec<_> = (0..100)
                .map(|_| {
                    let stop = stop.clone();
                    spawn(move || {
                        while !stop.get() {
                            yield_now();
                        }
                    })
                })
                .collect();
            for n in 1..=5 {
                kill_self(libc::SIGUSR2);
                let t = Instant::now();
                while hits.get() < n {
                    assert!(
                        t.elapsed() < Duration::from_secs(2),
                        "signal {n} not handled"
                    );
                    yield_now();
                }
            }
            stop.set(true);
            assert!(sylvan::joinall(&gs, Some(LONG)));
            assert_eq!(hits.get(), 5);
        },
    );
}

// Two hubs on two threads registered for one signal: one kill runs both.
#[test]
fn sg_two_hubs_on_two_threads_both_run() {
    in_child(
        "probes13::sg_two_hubs_on_two_threads_both_run",
        "p13_sg_two",
        || {
            let (reg_tx, reg_rx) = stdmpsc::channel();
            let th = std::thread::spawn(move || {
                let ev = Rc::new(Event::new());
                let e2 = ev.clone();
                let _h = sylvan::signal(libc::SIGUSR1, move || e2.set()).unwrap();
                reg_tx.send(()).unwrap();
                ev.wait_timeout(LONG)
            });
            reg_rx.recv_timeout(LONG).unwrap();
            let hit = Rc::new(Cell::new(false));
            let h2 = hit.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || h2.set(true)).unwrap();
            kill_self(libc::SIGUSR1);
            yield_until("this hub's handler", || hit.get());
            assert!(join_green(th));
        },
    );
}

static CUSTOM_HITS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn custom_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    CUSTOM_HITS.fetch_add(1, Ordering::SeqCst);
}

// A previous SA_SIGINFO handler is restored when the registration goes
// (and is not called while sylvan's is installed).
#[test]
fn sg_previous_siginfo_handler_restored() {
    in_child(
        "probes13::sg_previous_siginfo_handler_restored",
        "p13_sg_prev",
        || {
            // SAFETY: installs a handler that only touches an atomic.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = custom_handler
                    as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                    as libc::sighandler_t;
                act.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut act.sa_mask);
                assert_eq!(
                    libc::sigaction(libc::SIGUSR2, &act, std::ptr::null_mut()),
                    0
                );
            }
            let hit = Rc::new(Cell::new(0));
            let h2 = hit.clone();
            let h = sylvan::signal(libc::SIGUSR2, move || h2.set(h2.get() + 1)).unwrap();
            kill_self(libc::SIGUSR2);
            yield_until("sylvan handler", || hit.get() == 1);
            assert_eq!(CUSTOM_HITS.load(Ordering::SeqCst), 0);
            h.cancel();
            // SAFETY: thread-directed, so handled before raise returns.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
            assert_eq!(CUSTOM_HITS.load(Ordering::SeqCst), 1);
            sleep(50 * MS);
            assert_eq!(hit.get(), 1);
        },
    );
}

// ================================================================ dump / stats

// dump() from inside a link callback: the callback runs, the dead
// greenlet is gone, and main shows its join.
#[test]
fn in_dump_from_a_link_callback() {
    bounded(|| {
        let seen: Rc<RefCell<Option<sylvan::Dump>>> = Rc::default();
        let s2 = seen.clone();
        let g = sylvan::Builder::new()
            .name("linked")
            .spawn(|| sleep(20 * MS))
            .unwrap();
        let gid = g.id();
        g.link(move |_| {
            *s2.borrow_mut() = Some(sylvan::dump());
        });
        g.join().unwrap();
        let d = seen.borrow_mut().take().expect("callback ran");
        assert!(d.greenlets.iter().all(|i| i.id != gid), "{d}");
        let me: Vec<_> = d
            .greenlets
            .iter()
            .filter(|i| i.state == "running")
            .collect();
        assert_eq!(me.len(), 1, "{d}");
        assert_ne!(me[0].id.as_u64(), 0, "{d}");
        let main = &d.greenlets[0];
        assert_eq!(main.id.as_u64(), 0);
        // main's join was woken at the death (links and join waiters in
        // registration order): it is queued behind this callback
        assert!(
            main.state == "scheduled"
                || matches!(main.wait, WaitKind::Join(id) | WaitKind::LinkCallbacks(id) if id == gid),
            "{d}"
        );
    })
}

// dump() names the waits of greenlets parked in mpsc recv, recv_timeout,
// join, kill and spawn_blocking, with their states.
#[test]
fn in_dump_names_channel_join_kill_and_pool_waits() {
    bounded(|| {
        quiet();
        let base_timers = sylvan::stats().timers;
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let (tx2, rx2) = sylvan::mpsc::channel::<u8>();
        let chan = spawn(move || rx.recv().ok());
        let chan_t = spawn(move || rx2.recv_timeout(LONG).ok());
        let (gate_tx, gate_rx) = stdmpsc::channel::<()>();
        let pool =
            spawn(move || sylvan::spawn_blocking(move || gate_rx.recv_timeout(LONG).is_ok()));
        let sleeper = Rc::new(spawn(|| sleep(LONG)));
        let s2 = sleeper.clone();
        let joiner = spawn(move || s2.wait(None));
        sleep(20 * MS);
        let d = sylvan::dump();
        let find = |id: sylvan::GreenletId| {
            d.greenlets
                .iter()
                .find(|i| i.id == id)
                .unwrap_or_else(|| panic!("{id} missing in {d}"))
                .clone()
        };
        let c = find(chan.id());
        assert_eq!(c.state, "suspended");
        assert_eq!(c.wait, WaitKind::Sync("a channel receive"), "{d}");
        let ct = find(chan_t.id());
        assert_eq!(ct.wait, WaitKind::Sync("a channel receive"), "{d}");
        assert_eq!(find(pool.id()).wait, WaitKind::ThreadPool, "{d}");
        assert_eq!(find(sleeper.id()).wait, WaitKind::Sleep, "{d}");
        assert_eq!(find(joiner.id()).wait, WaitKind::Join(sleeper.id()), "{d}");
        assert!(find(chan.id()).waiting_for.unwrap() >= 10 * MS, "{d}");
        // clean up
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        gate_tx.send(()).unwrap();
        assert_eq!(chan.join().unwrap(), Some(1));
        assert_eq!(chan_t.join().unwrap(), Some(2));
        assert!(pool.join().unwrap());
        sleeper.kill();
        assert!(joiner.join().unwrap());
        let st = sylvan::stats();
        assert_eq!(st.alive, 0, "{st:?}");
        assert_eq!(st.timers, base_timers, "{st:?}");
    })
}

// stats after kills: alive, timers and ready fall back to zero;
// spawned counts every spawn.
#[test]
fn in_stats_consistent_after_kills() {
    bounded(|| {
        let before = sylvan::stats();
        let gs: Vec<_> = (0..10).map(|_| spawn(|| sleep(LONG))).collect();
        let unstarted: Vec<_> = (0..5).map(|_| spawn(|| sleep(LONG))).collect();
        let st = sylvan::stats();
        assert_eq!(st.alive, 15, "{st:?}");
        assert_eq!(st.spawned - before.spawned, 15);
        for u in &unstarted {
            u.kill();
        }
        sleep(10 * MS);
        let st = sylvan::stats();
        assert_eq!(st.alive, 10, "{st:?}");
        assert_eq!(st.timers, before.timers + 10, "{st:?}");
        sylvan::killall(&gs, None).unwrap();
        let st = sylvan::stats();
        assert_eq!((st.alive, st.timers), (0, before.timers), "{st:?}");
        yield_now();
        assert_eq!(sylvan::stats().ready, 0, "{:?}", sylvan::stats());
        assert_eq!(sylvan::dump().greenlets.len(), 1);
    })
}

// ================================================================ detector

// Two stalls in a row by two greenlets: two reports, each naming its
// greenlet.
#[test]
fn bd_two_stalls_two_reports_with_their_greenlets() {
    bounded(|| {
        let (reports, det) = collect(100 * MS);
        let (ra, rb) = (reports.clone(), reports.clone());
        let a = spawn(move || stall_until(|| !ra.lock().unwrap().is_empty()));
        let b = spawn(move || stall_until(|| rb.lock().unwrap().len() >= 2));
        let (ia, ib) = (a.id(), b.id());
        a.join().unwrap();
        b.join().unwrap();
        sleep(60 * MS);
        drop(det);
        let r = reports.lock().unwrap();
        let ids: Vec<_> = r.iter().map(|r| r.greenlet).collect();
        assert_eq!(ids, [ia, ib], "{r:?}");
    })
}

// Main blocking the hub is reported as main (#0, no spawn site).
#[test]
fn bd_main_blocking_is_reported_as_main() {
    bounded(|| {
        let (reports, det) = collect(100 * MS);
        let g = spawn(|| 1);
        stall_until(|| !reports.lock().unwrap().is_empty());
        assert_eq!(g.join().unwrap(), 1);
        sleep(60 * MS);
        drop(det);
        let r = reports.lock().unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].greenlet.as_u64(), 0);
        assert!(r[0].spawned_at.is_none());
        assert!(r[0].to_string().contains("(main)"), "{}", r[0]);
    })
}

// A second detector replaces the first: dropping the replaced one does not
// stop the second; dropping the second stops reports.
#[test]
fn bd_replacement_and_drop() {
    bounded(|| {
        let (r1, d1) = collect(100 * MS);
        let (r2, d2) = collect(100 * MS);
        drop(d1);
        sleep(60 * MS);
        let seen = r2.clone();
        spawn(move || stall_until(|| !seen.lock().unwrap().is_empty()))
            .join()
            .unwrap();
        sleep(60 * MS);
        assert!(r1.lock().unwrap().is_empty());
        assert_eq!(r2.lock().unwrap().len(), 1);
        drop(d2);
        sleep(100 * MS);
        spawn(|| std::thread::sleep(300 * MS)).join().unwrap();
        sleep(60 * MS);
        assert_eq!(r2.lock().unwrap().len(), 1);
    })
}

// A callback that panics does not stop the watchdog.
#[test]
fn bd_panicking_callback_keeps_watching() {
    bounded(|| {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let det = BlockingDetector::with_callback(100 * MS, move |_| {
            if n2.fetch_add(1, Ordering::SeqCst) == 0 {
                std::panic::panic_any(());
            }
        });
        let (n1, n2) = (n.clone(), n.clone());
        spawn(move || stall_until(|| n1.load(Ordering::SeqCst) >= 1))
            .join()
            .unwrap();
        sleep(60 * MS);
        spawn(move || stall_until(|| n2.load(Ordering::SeqCst) >= 2))
            .join()
            .unwrap();
        sleep(60 * MS);
        drop(det);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    })
}

// Two hubs with a detector each: a stall on the other thread is reported
// there (with its thread name), not here.
#[test]
fn bd_two_hubs_each_their_own_reports() {
    bounded(|| {
        let (here, det) = collect(100 * MS);
        let th = std::thread::Builder::new()
            .name("p13-other-hub".into())
            .spawn(|| {
                let (there, det) = collect(100 * MS);
                let seen = there.clone();
                let g = spawn(move || stall_until(|| !seen.lock().unwrap().is_empty()));
                let id = g.id();
                g.join().unwrap();
                sleep(60 * MS);
                drop(det);
                let r = there.lock().unwrap().clone();
                (id, r)
            })
            .unwrap();
        let (id, there) = join_green(th);
        drop(det);
        assert!(
            here.lock().unwrap().is_empty(),
            "{:?}",
            here.lock().unwrap()
        );
        assert_eq!(there.len(), 1, "{there:?}");
        assert_eq!(there[0].greenlet, id);
        assert_eq!(there[0].thread.as_deref(), Some("p13-other-hub"));
    })
}

// Dropped detectors (and replaced ones, and one whose hub thread exited)
// leave no watchdog thread behind.
#[test]
fn bd_no_watchdog_thread_leak() {
    in_child(
        "probes13::bd_no_watchdog_thread_leak",
        "p13_bd_leak",
        || {
            sleep(MS);
            let base = threads_now();
            for _ in 0..5 {
                let d = BlockingDetector::start(Duration::from_secs(10));
                drop(d);
            }
            let _a = BlockingDetector::start(Duration::from_secs(10));
            let _b = BlockingDetector::start(Duration::from_secs(10));
            let leaked = std::thread::spawn(|| {
                std::mem::forget(BlockingDetector::start(Duration::from_secs(10)));
            });
            join_green(leaked);
            drop(_b);
            drop(_a);
            let t = Instant::now();
            while threads_now() != base {
                assert!(
                    t.elapsed() < Duration::from_secs(1),
                    "{} threads, {base} at start",
                    threads_now()
                );
                sleep(10 * MS);
            }
        },
    );
}

// ================================================================ more

// README: "A thread-local destroyed after the hub ... may still use sylvan
// in its destructor: a second hub serves it". Such a destructor receiving
// from a thread that sends 200 ms later gets the value.
#[test]
fn mp_recv_in_a_thread_local_destructor_after_the_hub() {
    struct Late(
        Option<sylvan::mpsc::Receiver<u32>>,
        stdmpsc::Sender<Result<u32, String>>,
    );
    impl Drop for Late {
        fn drop(&mut self) {
            let rx = self.0.take().unwrap();
            let r = rx.recv_timeout(LONG).map_err(|e| format!("{e:?}"));
            let _ = self.1.send(r);
        }
    }
    thread_local! {
        static LATE: RefCell<Option<Late>> = const { RefCell::new(None) };
    }
    let (tx, rx) = sylvan::mpsc::channel::<u32>();
    let (out_tx, out_rx) = stdmpsc::channel();
    let th = std::thread::spawn(move || {
        // registered before the hub: destroyed after it
        LATE.with(|l| *l.borrow_mut() = Some(Late(Some(rx), out_tx)));
        sylvan::spawn(|| sleep(MS)).join().unwrap();
    });
    let sender = std::thread::spawn(move || {
        std::thread::sleep(200 * MS);
        let _ = tx.send(42);
    });
    let r = out_rx.recv_timeout(LONG).expect("destructor reported");
    assert_eq!(r, Ok(42));
    th.join().unwrap();
    sender.join().unwrap();
}

// A greenlet parked in recv (sender on another thread) is a wake source:
// main waiting on an Event that greenlet sets does not fail with "would
// block forever".
#[test]
fn mp_greenlet_receiver_keeps_main_waiting() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let ev = Rc::new(Event::new());
        let e2 = ev.clone();
        let got = Rc::new(Cell::new(0));
        let g2 = got.clone();
        spawn(move || {
            g2.set(rx.recv().unwrap());
            e2.set();
        });
        let th = std::thread::spawn(move || {
            std::thread::sleep(200 * MS);
            tx.send(8).unwrap();
        });
        assert!(ev.wait());
        assert_eq!(got.get(), 8);
        join_green(th);
    })
}

#[ignore = "LIMIT (documented on GreenletInfo::waiting_for): measured on the coarse clock of the last turn, so a stall just before the park counts"]
// dump's `waiting_for` of a greenlet that has just parked, right after the
// hub was blocked for 300 ms, is small (it has not waited through the
// stall).
#[test]
fn in_waiting_for_of_a_fresh_park_after_a_stall() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e2 = ev.clone();
        let g = spawn(move || {
            e2.wait();
        });
        std::thread::sleep(300 * MS);
        yield_now(); // g runs now and parks
        let d = sylvan::dump();
        let info = d.greenlets.iter().find(|i| i.id == g.id()).unwrap().clone();
        ev.set();
        g.join().unwrap();
        assert_eq!(info.wait, WaitKind::Sync("an event"), "{d}");
        let w = info.waiting_for.unwrap();
        assert!(w < 150 * MS, "parked just now, dump says {w:?}\n{d}");
    })
}

// A killer waiting for a target that caught its kill and keeps running
// shows "the death of killed greenlet #n".
#[test]
fn in_dump_shows_a_kill_wait() {
    bounded(|| {
        let target = spawn(|| {
            let r = std::panic::catch_unwind(|| sleep(LONG));
            // swallow the kill (against the advice), then go on a while
            assert!(r.is_err());
            sleep(100 * MS);
        });
        yield_now();
        let tid = target.id();
        let t = Rc::new(target);
        let t2 = t.clone();
        let killer = spawn(move || t2.kill());
        sleep(30 * MS);
        let d = sylvan::dump();
        let k = d.greenlets.iter().find(|i| i.id == killer.id()).unwrap();
        assert_eq!(k.wait, WaitKind::Kill(tid), "{d}");
        killer.join().unwrap();
        assert!(t.is_dead());
    })
}

// An idle hub is never reported: main parked 400 ms in an mpsc recv (a
// thread sends late) or in spawn_blocking.
#[test]
fn bd_idle_in_recv_or_spawn_blocking_is_not_reported() {
    bounded(|| {
        let (reports, det) = collect(100 * MS);
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let th = std::thread::spawn(move || {
            std::thread::sleep(400 * MS);
            tx.send(1).unwrap();
        });
        assert_eq!(rx.recv(), Ok(1));
        let v = sylvan::spawn_blocking(|| {
            std::thread::sleep(400 * MS);
            2
        });
        assert_eq!(v, 2);
        join_green(th);
        drop(det);
        assert!(
            reports.lock().unwrap().is_empty(),
            "{:?}",
            reports.lock().unwrap()
        );
    })
}

// dump gives the peer of a socket read on IPv6 loopback.
#[test]
fn in_dump_peer_of_an_ipv6_socket_read() {
    bounded(|| {
        let Ok(l) = sylvan::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 here
        };
        let addr = l.local_addr().unwrap();
        let client = spawn(move || {
            let c = sylvan::net::TcpStream::connect(addr).unwrap();
            let local = c.local_addr().unwrap();
            let mut b = [0u8; 1];
            let _ = std::io::Read::read(&mut &c, &mut b);
            local
        });
        let (conn, peer) = l.accept().unwrap();
        sleep(20 * MS);
        let d = sylvan::dump();
        let info = d
            .greenlets
            .iter()
            .find(|i| i.id == client.id())
            .unwrap()
            .clone();
        drop(conn);
        let local = client.join().unwrap();
        assert_eq!(peer, local);
        assert!(matches!(info.wait, WaitKind::Io { op: "read", .. }), "{d}");
        assert_eq!(info.peer, Some(addr), "{d}");
    })
}

// README: a thread-local destroyed after the hub "may still use sylvan in
// its destructor: a second hub serves it". Such a destructor that uses
// sylvan and then drops a signal registration made on the first hub
// unregisters it cleanly (no panic, previous disposition back).
#[test]
fn sg_registration_dropped_by_a_late_thread_local_after_using_sylvan() {
    in_child(
        "probes13::sg_registration_dropped_by_a_late_thread_local_after_using_sylvan",
        "p13_sg_late",
        || {
            struct Late(Option<sylvan::SignalHandler>);
            impl Drop for Late {
                fn drop(&mut self) {
                    sylvan::sleep(MS); // served by a second hub
                    drop(self.0.take());
                }
            }
            thread_local! {
                static LATE: RefCell<Option<Late>> = const { RefCell::new(None) };
            }
            let th = std::thread::spawn(|| {
                LATE.with(|l| *l.borrow_mut() = Some(Late(None)));
                let h = sylvan::signal(libc::SIGUSR2, || {}).unwrap();
                LATE.with(|l| l.borrow_mut().as_mut().unwrap().0 = Some(h));
            });
            let t = Instant::now();
            while !th.is_finished() {
                assert!(t.elapsed() < LONG, "thread hung");
                std::thread::sleep(2 * MS);
            }
            assert!(th.join().is_ok());
            // SAFETY: queries the action only.
            let old = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                assert_eq!(
                    libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old),
                    0
                );
                old.sa_sigaction
            };
            assert_eq!(old, libc::SIG_DFL);
        },
    );
}

// spawn_later greenlets: alive and timed before they start; killing them
// unstarted brings alive and timers back.
#[test]
fn in_stats_and_dump_of_unstarted_spawn_later() {
    bounded(|| {
        let before = sylvan::stats();
        let gs: Vec<_> = (0..5).map(|_| sylvan::spawn_later(LONG, || 1)).collect();
        let st = sylvan::stats();
        assert_eq!(st.alive, before.alive + 5, "{st:?}");
        assert_eq!(st.timers, before.timers + 5, "{st:?}");
        let d = sylvan::dump();
        assert_eq!(d.greenlets.len(), 6, "{d}");
        for g in &gs {
            g.kill();
        }
        let st = sylvan::stats();
        assert_eq!(
            (st.alive, st.timers),
            (before.alive, before.timers),
            "{st:?}"
        );
        assert_eq!(sylvan::dump().greenlets.len(), 1);
        for g in gs {
            assert!(g.join().unwrap_err().is_killed());
        }
    })
}

// timeout_armed follows the Timeouts of each greenlet: set while one is
// pending, cleared after one expired or was cancelled.
#[test]
fn in_timeout_armed_follows_timeouts() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let (e1, e2, e3) = (ev.clone(), ev.clone(), ev.clone());
        let expired = spawn(move || {
            assert!(sylvan::with_timeout(10 * MS, || sleep(LONG)).is_err());
            e1.wait();
        });
        let cancelled = spawn(move || {
            let t = sylvan::Timeout::start(LONG);
            t.cancel();
            e2.wait();
        });
        let armed = spawn(move || {
            let _outer = sylvan::Timeout::start(LONG);
            assert!(sylvan::with_timeout(10 * MS, || sleep(LONG)).is_err());
            e3.wait();
        });
        sleep(60 * MS);
        let d = sylvan::dump();
        let get = |id| d.greenlets.iter().find(|i| i.id == id).unwrap().clone();
        assert!(!get(expired.id()).timeout_armed, "{d}");
        assert!(!get(cancelled.id()).timeout_armed, "{d}");
        assert!(get(armed.id()).timeout_armed, "{d}");
        ev.set();
        expired.join().unwrap();
        cancelled.join().unwrap();
        armed.join().unwrap();
    })
}

// Three hub threads, each with 20 sending greenlets (all killed after
// 5 ms, holding their sender): main receives, per sender, a gap-free
// prefix of its values, and sees the channel disconnect when every thread
// is done.
#[test]
fn mp_senders_in_killed_greenlets_on_other_hubs_disconnect_in_order() {
    bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<(u32, u32)>();
        let sent: Arc<Vec<AtomicUsize>> = Arc::new((0..300).map(|_| AtomicUsize::new(0)).collect());
        let threads: Vec<_> = (0..3u32)
            .map(|t| {
                let tx = tx.clone();
                let sent = sent.clone();
                std::thread::spawn(move || {
                    let gs: Vec<_> = (0..20u32)
                        .map(|k| {
                            let tx = tx.clone();
                            let who = t * 100 + k;
                            let sent = sent.clone();
                            spawn(move || {
                                for i in 0..200 {
                                    tx.send((who, i)).unwrap();
                                    sent[who as usize].fetch_add(1, Ordering::SeqCst);
                                    if i % 10 == 0 {
                                        yield_now();
                                    }
                                }
                                sleep(LONG * 10); // the killed ones end here
                            })
                        })
                        .collect();
                    drop(tx);
                    sleep(5 * MS);
                    // some are killed mid-send, some in their final sleep
                    for g in &gs {
                        g.kill();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = std::collections::HashMap::<u32, u32>::new();
        let mut n = 0;
        for (who, i) in rx.iter() {
            let e = next.entry(who).or_insert(0);
            assert_eq!(*e, i, "sender {who}");
            *e += 1;
            n += 1;
        }
        for th in threads {
            join_green(th);
        }
        let total: usize = sent.iter().map(|a| a.load(Ordering::SeqCst)).sum();
        assert_eq!(n, total);
        for (who, got) in next {
            assert_eq!(got as usize, sent[who as usize].load(Ordering::SeqCst));
        }
    })
}

// Contrast with the test above: the same late thread-local dropping its
// registration without using sylvan first (no second hub) is clean.
#[test]
fn sg_registration_dropped_by_a_late_thread_local_alone() {
    in_child(
        "probes13::sg_registration_dropped_by_a_late_thread_local_alone",
        "p13_sg_late_alone",
        || {
            thread_local! {
                static LATE: RefCell<Option<sylvan::SignalHandler>> = const { RefCell::new(None) };
            }
            let th = std::thread::spawn(|| {
                LATE.with(|l| l.borrow_mut().take());
                let h = sylvan::signal(libc::SIGUSR2, || {}).unwrap();
                LATE.with(|l| *l.borrow_mut() = Some(h));
            });
            let t = Instant::now();
            while !th.is_finished() {
                assert!(t.elapsed() < LONG, "thread hung");
                std::thread::sleep(2 * MS);
            }
            assert!(th.join().is_ok());
            // SAFETY: queries the action only.
            let old = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                assert_eq!(
                    libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old),
                    0
                );
                old.sa_sigaction
            };
            assert_eq!(old, libc::SIG_DFL);
        },
    );
}
