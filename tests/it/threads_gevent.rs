//! spawn_blocking, Handle, mpsc, signals, wait/iwait, pools and links,
//! checked against gevent's (and std's, for channels) behaviour. Every test
//! is bounded; the ones that change process-wide state (signal
//! dispositions, the blocking pool's size) run in a child process.

use std::cell::{Cell, RefCell};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc as stdmpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sylvan::pool::{Group, Pool};
use sylvan::sync::{AsyncResult, Event};

use crate::util::{CHILD_ENV, Log, is_child, quiet};

const T3: Duration = Duration::from_secs(3);

/// Runs `f` on a fresh OS thread (its own hub, no timers of ours) and waits
/// at most `limit` for it.
fn on_thread<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::Result<T> {
    let (tx, rx) = stdmpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("HANG: the probe thread did not finish within {limit:?}"),
    }
}

fn payload_str(p: &(dyn std::any::Any + Send)) -> String {
    sylvan::runtime::payload_message(p)
}

/// Re-runs one test of this binary as a child, bounded in time.
fn child(path: &str, name: &str, limit: Duration) -> (String, String) {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", path, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if c.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = c.kill();
            let out = c.wait_with_output().unwrap();
            panic!(
                "HANG: child {name} ran past {limit:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = c.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn probe_value(stdout: &str, key: &str) -> String {
    let tag = format!("PROBE {key}=");
    stdout
        .lines()
        .find_map(|l| l.find(&tag).map(|i| l[i + tag.len()..].trim().to_owned()))
        .unwrap_or_else(|| panic!("no {tag} in child output:\n{stdout}"))
}

// ----- spawn_blocking -----------------------------------------------------

#[test]
fn sb_results_many_concurrent_and_hub_runs_meanwhile() {
    sylvan::with_timeout(T3, || {
        let ticks = Rc::new(Cell::new(0u32));
        let stop = Rc::new(Cell::new(false));
        let (t, s) = (ticks.clone(), stop.clone());
        let ticker = sylvan::spawn(move || {
            while !s.get() {
                sylvan::sleep(Duration::from_millis(2));
                t.set(t.get() + 1);
            }
        });
        let gs: Vec<_> = (0..200u64)
            .map(|i| {
                sylvan::spawn(move || {
                    sylvan::spawn_blocking(move || {
                        std::thread::sleep(Duration::from_millis(5));
                        i * 2
                    })
                })
            })
            .collect();
        for (i, g) in gs.into_iter().enumerate() {
            assert_eq!(g.join().unwrap(), i as u64 * 2);
        }
        stop.set(true);
        ticker.join().unwrap();
        assert!(ticks.get() >= 5, "ticker starved: {}", ticks.get());
    })
    .expect("bounded");
}

#[test]
fn sb_panic_propagates_to_the_caller_with_its_payload() {
    quiet();
    sylvan::with_timeout(T3, || {
        // from main: the original payload, typed
        let r = std::panic::catch_unwind(|| {
            sylvan::spawn_blocking(|| std::panic::panic_any(42u32));
        });
        let p = r.unwrap_err();
        assert_eq!(p.downcast_ref::<u32>(), Some(&42), "payload type kept");
        // from a greenlet: its outcome is Panicked with the message
        let g = sylvan::spawn(|| sylvan::spawn_blocking(|| -> u8 { panic!("boom-in-pool") }));
        let e = g.join().unwrap_err();
        let p = e.panic().expect("panicked");
        assert_eq!(p.message(), "boom-in-pool");
    })
    .expect("bounded");
}

#[test]
fn sb_panic_of_a_greenlets_job_is_reported_once_with_its_site() {
    const NAME: &str = "sb_site";
    if is_child(NAME) {
        let g = sylvan::Builder::new()
            .name("caller")
            .spawn(|| {
                sylvan::spawn_blocking(|| -> u32 { panic!("boom-in-pool") });
            })
            .unwrap();
        let e = g.join().unwrap_err();
        let p = e.panic().expect("a panic");
        println!("PROBE message={}", p.message());
        println!(
            "PROBE located={}",
            p.location()
                .is_some_and(|l| l.contains("threads_gevent.rs"))
        );
        return;
    }
    let (stdout, stderr) = child(
        "threads_gevent::sb_panic_of_a_greenlets_job_is_reported_once_with_its_site",
        NAME,
        Duration::from_secs(10),
    );
    assert_eq!(probe_value(&stdout, "message"), "boom-in-pool");
    assert_eq!(probe_value(&stdout, "located"), "true", "{stderr}");
    assert!(
        !stderr.contains("thread 'sylvan-blocking' panicked"),
        "std's hook printed it with the pool thread's name:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("boom-in-pool").count(),
        1,
        "reported once:\n{stderr}"
    );
}

#[test]
fn sb_kill_of_the_waiting_greenlet() {
    struct Tell(Arc<Mutex<Option<String>>>);
    impl Drop for Tell {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = std::thread::current().name().map(str::to_owned);
        }
    }
    // The jobs wait for a gate that the test opens only after the kill or
    // timeout returned: a kill that waited for its job would hang (cut by
    // the job's own 5 s bound, then by T3).
    sylvan::with_timeout(T3, || {
        let started = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let dropped_on = Arc::new(Mutex::new(None));
        let (gate, gated) = stdmpsc::channel::<()>();
        let (s, d, w) = (started.clone(), done.clone(), dropped_on.clone());
        let g = sylvan::spawn(move || {
            sylvan::spawn_blocking(move || {
                s.store(true, Ordering::SeqCst);
                let _ = gated.recv_timeout(Duration::from_secs(5));
                d.store(true, Ordering::SeqCst);
                Tell(w)
            })
        });
        // Running on a pool thread (a job not started yet is cancelled).
        assert!(
            crate::util::wait_for(Duration::from_secs(2), || started.load(Ordering::SeqCst)),
            "the job never started"
        );
        g.kill();
        assert!(!done.load(Ordering::SeqCst), "kill waited for the job");
        assert!(g.join().err().expect("killed").is_killed());
        gate.send(()).unwrap();
        assert!(
            crate::util::wait_for(Duration::from_secs(2), || dropped_on
                .lock()
                .unwrap()
                .is_some()),
            "the job's result was never dropped"
        );
        assert!(done.load(Ordering::SeqCst), "job ran to the end");
        assert_eq!(
            dropped_on.lock().unwrap().as_deref(),
            Some("sylvan-blocking"),
            "result dropped on the pool thread"
        );
        // with_timeout around it: Elapsed while the job still waits.
        let (gate, gated) = stdmpsc::channel::<()>();
        let (d2, done2) = {
            let d = Arc::new(AtomicBool::new(false));
            (d.clone(), d)
        };
        let r = sylvan::with_timeout(Duration::from_millis(30), move || {
            sylvan::spawn_blocking(move || {
                let _ = gated.recv_timeout(Duration::from_secs(5));
                d2.store(true, Ordering::SeqCst);
            })
        });
        assert!(r.is_err());
        assert!(
            !done2.load(Ordering::SeqCst),
            "the timeout waited for the job"
        );
        gate.send(()).unwrap();
    })
    .expect("bounded");
}

#[test]
fn sb_pool_size_knob_bounds_concurrency() {
    const NAME: &str = "sb_knob";
    if is_child(NAME) {
        sylvan::set_blocking_threads(2);
        assert_eq!(sylvan::blocking_threads(), 2);
        let live = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let gs: Vec<_> = (0..6)
            .map(|_| {
                let (live, max) = (live.clone(), max.clone());
                sylvan::spawn(move || {
                    sylvan::spawn_blocking(move || {
                        let n = live.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(40));
                        live.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        sylvan::joinall(&gs, Some(T3));
        let threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|e| {
                let p = e.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(p).unwrap_or_default().trim() == "sylvan-blocking"
            })
            .count();
        println!(
            "PROBE max={} elapsed_ms={} threads={threads}",
            max.load(Ordering::SeqCst),
            t.elapsed().as_millis()
        );
        let r = std::panic::catch_unwind(|| sylvan::set_blocking_threads(0));
        println!("PROBE zero={}", payload_str(&*r.unwrap_err()));
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::sb_pool_size_knob_bounds_concurrency",
        NAME,
        Duration::from_secs(10),
    );
    assert!(stdout.contains("PROBE max=2 "), "{stdout}");
    assert!(stdout.contains("threads=2"), "{stdout}");
    assert!(stdout.contains("at least one thread"), "{stdout}");
}

#[test]
fn sb_raising_the_bound_starts_queued_jobs_now() {
    const NAME: &str = "sb_raise";
    if is_child(NAME) {
        sylvan::set_blocking_threads(1);
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        // The long job holds the one thread until the short ones are done
        // (at most 5 s: queued jobs that waited for it take that long).
        let (gate, gated) = stdmpsc::channel::<()>();
        let long = sylvan::spawn(move || {
            sylvan::spawn_blocking(move || {
                s.store(true, Ordering::SeqCst);
                let _ = gated.recv_timeout(Duration::from_secs(5));
            })
        });
        // the one pool thread is busy with the long job
        assert!(crate::util::wait_for(Duration::from_secs(5), || started.load(Ordering::SeqCst)));
        let shorts: Vec<_> = (0..3)
            .map(|_| sylvan::spawn(|| sylvan::spawn_blocking(Instant::now)))
            .collect();
        // the three are queued
        assert!(crate::util::wait_for(Duration::from_secs(5), || {
            sylvan::stats().thread_pool_queue == 3
        }));
        let raised = Instant::now();
        sylvan::set_blocking_threads(4);
        let worst = shorts
            .into_iter()
            .map(|g| g.join().unwrap().saturating_duration_since(raised))
            .max()
            .unwrap();
        gate.send(()).unwrap();
        long.join().unwrap();
        println!("PROBE worst_ms={}", worst.as_millis());
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::sb_raising_the_bound_starts_queued_jobs_now",
        NAME,
        Duration::from_secs(10),
    );
    let ms: u128 = probe_value(&stdout, "worst_ms").parse().unwrap();
    assert!(
        ms < 2500,
        "queued jobs started only {ms} ms after set_blocking_threads(4) (waited for the long job)"
    );
}

#[test]
fn sb_from_several_hub_threads_at_once() {
    let (tx, rx) = stdmpsc::channel();
    for t in 0..4u64 {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = sylvan::with_timeout(T3, || {
                let gs: Vec<_> = (0..25u64)
                    .map(|i| {
                        sylvan::spawn(move || {
                            sylvan::spawn_blocking(move || {
                                std::thread::sleep(Duration::from_millis(3));
                                t * 1000 + i
                            })
                        })
                    })
                    .collect();
                let direct = sylvan::spawn_blocking(move || t);
                let sum: u64 = gs.into_iter().map(|g| g.join().unwrap()).sum();
                (direct, sum)
            });
            let _ = tx.send((t, r.is_ok(), r.ok()));
        });
    }
    drop(tx);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(
            rx.recv_timeout(Duration::from_secs(6))
                .expect("HANG: a hub thread"),
        );
    }
    got.sort();
    for (t, ok, r) in got {
        assert!(ok, "thread {t} timed out");
        let expect: u64 = (0..25).map(|i| t * 1000 + i).sum();
        assert_eq!(r, Some((t, expect)));
    }
}

// ----- Handle ---------------------------------------------------------------

#[test]
fn handle_spawns_run_in_order_and_from_many_threads() {
    sylvan::with_timeout(T3, || {
        let handle = sylvan::Handle::current();
        let (tx, rx) = sylvan::mpsc::channel::<(u32, u32)>();
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let (h, tx) = (handle.clone(), tx.clone());
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let tx = tx.clone();
                        h.spawn(move || tx.send((t, i)).unwrap()).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let mut last = [None::<u32>; 8];
        let mut n = 0;
        for (t, i) in rx.iter() {
            let prev = last[t as usize].replace(i);
            assert_eq!(prev.map_or(0, |p| p + 1), i, "order from thread {t}");
            n += 1;
        }
        assert_eq!(n, 400);
        for t in threads {
            t.join().unwrap();
        }
    })
    .expect("bounded");
}

#[test]
fn handle_wakes_the_hub_from_an_idle_poll() {
    let handle = sylvan::Handle::current();
    let ran_at = Arc::new(Mutex::new(None::<Instant>));
    let r = ran_at.clone();
    let (tx, rx) = stdmpsc::channel();
    let th = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        handle
            .spawn(move || *r.lock().unwrap() = Some(Instant::now()))
            .unwrap();
        tx.send(t0).unwrap();
    });
    // The hub's idle poll waits for this timer: unwoken, the greenlet
    // would run only after it, about 2 s after the spawn.
    sylvan::sleep(Duration::from_secs(2));
    th.join().unwrap();
    let t0 = rx.recv().unwrap();
    let ran = ran_at.lock().unwrap().expect("the handle's greenlet ran");
    let lag = ran.saturating_duration_since(t0);
    assert!(lag < Duration::from_secs(1), "woke after {lag:?}");
}

#[test]
fn handle_wakes_main_parked_on_an_event_with_keep_alive() {
    thread_local! { static EV: RefCell<Option<Rc<Event>>> = const { RefCell::new(None) }; }
    let r = on_thread(T3, || {
        let ev = Rc::new(Event::new());
        EV.with(|e| *e.borrow_mut() = Some(ev.clone()));
        let handle = sylvan::Handle::current();
        let keep = handle.keep_alive();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            handle
                .spawn(|| EV.with(|e| e.borrow().as_ref().unwrap().set()))
                .unwrap();
            drop(keep);
        });
        ev.wait(); // no timer: only the handle can wake main
        th.join().unwrap();
    });
    if let Err(p) = r {
        panic!(
            "main parked on an Event with a KeepAlive: {}",
            payload_str(&*p)
        );
    }
}

#[test]
fn handle_after_its_thread_ended_is_a_clear_error() {
    let h = on_thread(T3, sylvan::Handle::current).unwrap();
    // on_thread hands the value back before the thread's TLS teardown
    let t = Instant::now();
    while h.is_alive() && t.elapsed() < T3 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!h.is_alive());
    h.wake(); // no crash
    let dropped = Arc::new(AtomicBool::new(false));
    struct D(Arc<AtomicBool>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let d = D(dropped.clone());
    let err = h.spawn(move || drop(d)).unwrap_err();
    assert_eq!(err, sylvan::HubGone);
    assert_eq!(err.to_string(), "the hub's thread has ended");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the refused closure is dropped"
    );
}

#[test]
fn handle_spawn_accepted_before_thread_exit_is_not_leaked() {
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (htx, hrx) = stdmpsc::channel();
    let (gotx, gorx) = stdmpsc::channel::<()>();
    let th = std::thread::spawn(move || {
        htx.send(sylvan::Handle::current()).unwrap();
        // the OS thread blocks (not the hub) and then ends: the hub never turns
        let _ = gorx.recv_timeout(T3);
    });
    let handle = hrx.recv_timeout(T3).unwrap();
    let ran_or_dropped = Arc::new(AtomicUsize::new(0));
    let d = D(ran_or_dropped.clone());
    assert!(handle.spawn(move || drop(d)).is_ok(), "hub alive: accepted");
    gotx.send(()).unwrap();
    th.join().unwrap();
    assert!(!handle.is_alive());
    let t = Instant::now();
    while ran_or_dropped.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let while_held = ran_or_dropped.load(Ordering::SeqCst);
    drop(handle);
    let after_drop = ran_or_dropped.load(Ordering::SeqCst);
    assert_eq!(
        while_held, 1,
        "an accepted Handle::spawn closure was neither run nor dropped at hub teardown; \
         it was dropped only when the last Handle went (after_drop={after_drop})"
    );
}

// ----- mpsc -----------------------------------------------------------------

#[test]
fn mpsc_blocking_recv_parks_only_the_greenlet() {
    sylvan::with_timeout(T3, || {
        let (tx, rx) = sylvan::mpsc::channel();
        // The sender waits for five ticks: a recv that blocked the hub
        // would starve the ticker, and the sender would give up after 2 s.
        let ticks = Arc::new(AtomicUsize::new(0));
        let t2 = ticks.clone();
        let ticker = sylvan::spawn(move || {
            for _ in 0..20 {
                sylvan::sleep(Duration::from_millis(5));
                t2.fetch_add(1, Ordering::SeqCst);
            }
        });
        let t3 = ticks.clone();
        let th = std::thread::spawn(move || {
            let t = Instant::now();
            while t3.load(Ordering::SeqCst) < 5 && t.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(1));
            }
            tx.send(7).unwrap();
        });
        let g = sylvan::spawn(move || rx.recv());
        assert_eq!(g.join().unwrap(), Ok(7));
        assert!(
            ticks.load(Ordering::SeqCst) >= 5,
            "ticker ran while recv parked: {}",
            ticks.load(Ordering::SeqCst)
        );
        ticker.join().unwrap();
        th.join().unwrap();
    })
    .expect("bounded");
}

#[test]
fn mpsc_close_and_disconnect_like_std() {
    use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
    sylvan::with_timeout(T3, || {
        // sylvan
        let (tx, rx) = sylvan::mpsc::channel();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let t = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        let tx2 = tx.clone();
        let th = std::thread::spawn(move || {
            for i in 0..3 {
                tx2.send(i).unwrap();
            }
        });
        th.join().unwrap();
        drop(tx);
        assert_eq!(rx.recv(), Ok(0));
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(2));
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        let t = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(RecvTimeoutError::Disconnected)
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "waited for the timeout"
        );
        // receiver gone: send gives the value back
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        drop(rx);
        assert_eq!(tx.send(9).unwrap_err().0, 9);
        // oneshot sender dropped
        let (otx, orx) = sylvan::mpsc::oneshot::<u8>();
        std::thread::spawn(move || drop(otx)).join().unwrap();
        assert_eq!(orx.recv(), Err(RecvError));
    })
    .expect("bounded");
}

#[test]
fn mpsc_parked_recv_timeout_sees_disconnect_at_once() {
    use std::sync::mpsc::RecvTimeoutError;
    sylvan::with_timeout(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(40));
            drop(tx);
        });
        let t = Instant::now();
        let g = sylvan::spawn(move || rx.recv_timeout(Duration::from_secs(2)));
        assert_eq!(g.join().unwrap(), Err(RecvTimeoutError::Disconnected));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        th.join().unwrap();
    })
    .expect("bounded");
}

#[test]
fn mpsc_many_senders_threads_and_greenlets() {
    sylvan::with_timeout(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<(u32, u32)>();
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        tx.send((t, i)).unwrap();
                    }
                })
            })
            .collect();
        for t in 8..12u32 {
            let tx = tx.clone();
            sylvan::spawn(move || {
                for i in 0..100 {
                    tx.send((t, i)).unwrap();
                    if i % 10 == 0 {
                        sylvan::yield_now();
                    }
                }
            });
        }
        drop(tx);
        let recv = sylvan::spawn(move || {
            let mut last = [None::<u32>; 12];
            let mut n = 0u32;
            for (t, i) in rx.iter() {
                let prev = last[t as usize].replace(i);
                assert_eq!(prev.map_or(0, |p| p + 1), i);
                n += 1;
            }
            n
        });
        assert_eq!(recv.join().unwrap(), 8400);
        for t in threads {
            t.join().unwrap();
        }
    })
    .expect("bounded");
}

#[test]
fn mpsc_killed_receiver_leaves_no_stale_park() {
    sylvan::with_timeout(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let rx = Rc::new(rx);
        let r1 = rx.clone();
        let a = sylvan::spawn(move || r1.recv());
        sylvan::yield_now();
        a.kill();
        assert!(a.join().unwrap_err().is_killed());
        let r2 = rx.clone();
        let b = sylvan::spawn(move || r2.recv());
        sylvan::yield_now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(5).unwrap();
        });
        assert_eq!(b.join().unwrap(), Ok(5));
    })
    .expect("bounded");
}

// ----- deadlock detection ------------------------------------------------

#[test]
fn deadlock_recv_with_sender_dropped_by_a_thread_is_recv_error() {
    let r = on_thread(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(tx);
        });
        rx.recv()
    });
    match r {
        Ok(v) => assert_eq!(v, Err(std::sync::mpsc::RecvError)),
        Err(p) => panic!("main panicked: {}", payload_str(&*p)),
    }
}

#[test]
fn deadlock_recv_with_no_sender_left_returns_at_once() {
    let r = on_thread(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        drop(tx);
        rx.recv()
    });
    assert_eq!(r.unwrap(), Err(std::sync::mpsc::RecvError));
}

#[test]
fn deadlock_no_false_positive_through_a_join_and_spawn_blocking() {
    let r = on_thread(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let th = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(80));
            tx.send(3).unwrap();
        });
        let g = sylvan::spawn(move || rx.recv());
        let a = g.join().unwrap().unwrap();
        th.join().unwrap();
        // main waits on an Event that a greenlet sets after a pool job
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        sylvan::spawn(move || {
            sylvan::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)));
            e.set();
        });
        ev.wait();
        a
    });
    match r {
        Ok(v) => assert_eq!(v, 3),
        Err(p) => panic!("false positive: {}", payload_str(&*p)),
    }
}

#[test]
fn deadlock_on_an_event_is_detected_with_a_clear_message() {
    let r = on_thread(T3, || {
        let ev = Event::new();
        ev.wait();
    });
    let msg = payload_str(&*r.unwrap_err());
    assert!(msg.contains("would block forever"), "{msg}");
}

// ----- signals (in child processes) --------------------------------------

#[test]
fn signal_handler_runs_in_a_greenlet_and_stays_installed() {
    const NAME: &str = "sig_basic";
    if is_child(NAME) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let _h = sylvan::signal(libc::SIGUSR1, move || {
            s.borrow_mut()
                .push((sylvan::current().as_u64(), sylvan::current_name()));
        })
        .unwrap();
        for round in 1..=2 {
            // SAFETY: SIGUSR1 is handled now.
            assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
            let t = Instant::now();
            while seen.borrow().len() < round && t.elapsed() < T3 {
                sylvan::sleep(Duration::from_millis(1));
            }
        }
        println!("PROBE seen={:?}", seen.borrow());
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::signal_handler_runs_in_a_greenlet_and_stays_installed",
        NAME,
        Duration::from_secs(10),
    );
    let seen = probe_value(&stdout, "seen");
    assert_eq!(seen.matches("Some(").count(), 2, "{seen}");
    assert!(!seen.contains("(0,"), "ran on main: {seen}");
}

#[test]
fn signal_raised_three_times_before_the_hub_drains_coalesces() {
    const NAME: &str = "sig_coalesce";
    if is_child(NAME) {
        let n = Rc::new(Cell::new(0u32));
        let c = n.clone();
        let _h = sylvan::signal(libc::SIGUSR1, move || c.set(c.get() + 1)).unwrap();
        for _ in 0..3 {
            // SAFETY: SIGUSR1 is handled now.
            unsafe { libc::raise(libc::SIGUSR1) };
        }
        sylvan::sleep(Duration::from_millis(100));
        println!("PROBE runs={}", n.get());
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::signal_raised_three_times_before_the_hub_drains_coalesces",
        NAME,
        Duration::from_secs(10),
    );
    let runs = probe_value(&stdout, "runs");
    assert_eq!(
        runs, "1",
        "3 signals before one hub turn ran the handler {runs} times (docs: they coalesce; gevent/libev: once)"
    );
}

#[test]
fn signal_sigint_handled_then_disposition_restored() {
    const NAME: &str = "sig_int";
    if is_child(NAME) {
        // What the process started with: SIG_DFL, or SIG_IGN when a shell
        // started it in the background.
        let disposition = || {
            // SAFETY: a zeroed sigaction is a valid value to be overwritten.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: queries the current action only, into a valid
            // out-pointer.
            unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) };
            old.sa_sigaction
        };
        let before = disposition();
        let hit = Rc::new(Cell::new(false));
        let c = hit.clone();
        let h = sylvan::signal(libc::SIGINT, move || c.set(true)).unwrap();
        // SAFETY: SIGINT is handled now.
        unsafe { libc::raise(libc::SIGINT) };
        let t = Instant::now();
        while !hit.get() && t.elapsed() < T3 {
            sylvan::sleep(Duration::from_millis(1));
        }
        drop(h);
        println!(
            "PROBE hit={} restored={}",
            hit.get(),
            disposition() == before
        );
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::signal_sigint_handled_then_disposition_restored",
        NAME,
        Duration::from_secs(10),
    );
    assert!(stdout.contains("PROBE hit=true restored=true"), "{stdout}");
}

#[test]
fn signal_from_another_thread_wakes_main_parked_on_an_event() {
    const NAME: &str = "sig_wake";
    if is_child(NAME) {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let _h = sylvan::signal(libc::SIGUSR1, move || e.set()).unwrap();
        let th = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: the process handles SIGUSR1.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
        });
        ev.wait(); // no timer: only the signal can wake main
        th.join().unwrap();
        println!("PROBE woke=true");
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::signal_from_another_thread_wakes_main_parked_on_an_event",
        NAME,
        Duration::from_secs(10),
    );
    assert!(stdout.contains("PROBE woke=true"), "{stdout}");
}

// As gevent raises a signal handler's exception in the main greenlet, the
// handler's panic is reported, then raised in main's blocking call.
#[test]
fn signal_handler_panic_is_raised_in_main() {
    const NAME: &str = "sig_panic";
    if is_child(NAME) {
        let _h = sylvan::signal(libc::SIGUSR1, || panic!("from-the-handler")).unwrap();
        // SAFETY: SIGUSR1 is handled now.
        unsafe { libc::raise(libc::SIGUSR1) };
        let r = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(5)));
        let payload = r.map_err(|p| p.downcast_ref::<&str>().copied());
        println!("PROBE main_saw={payload:?}");
        return;
    }
    let (stdout, stderr) = child(
        "threads_gevent::signal_handler_panic_is_raised_in_main",
        NAME,
        Duration::from_secs(10),
    );
    assert!(
        stdout.contains(r#"PROBE main_saw=Err(Some("from-the-handler"))"#),
        "{stdout}"
    );
    assert!(stderr.contains("from-the-handler"), "{stderr}");
    println!("signal handler panic report:\n{stderr}");
}

// ----- wait / iwait / joinall / killall ------------------------------------

#[test]
fn wait_over_mixed_waitables_in_readiness_order() {
    sylvan::with_timeout(T3, || {
        let ev = Rc::new(Event::new());
        let ar: Rc<AsyncResult<u32>> = Rc::new(AsyncResult::new());
        // The greenlet dies last: it waits for the async result, then lets
        // the waiter (woken with it) run once before it ends.
        let a = ar.clone();
        let g = sylvan::spawn(move || {
            a.wait();
            sylvan::yield_now();
        });
        let (e, a) = (ev.clone(), ar.clone());
        sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(10));
            e.set();
            sylvan::sleep(Duration::from_millis(10));
            a.set(1).unwrap();
        });
        let objs: [&dyn sylvan::Waitable; 3] = [&g, &*ev, &*ar];
        assert_eq!(sylvan::wait(&objs, None, Some(1)), [1]);
        assert_eq!(sylvan::wait(&objs, None, None), [1, 2, 0]);
        // the same object twice
        let twice: [&dyn sylvan::Waitable; 2] = [&*ev, &*ev];
        assert_eq!(sylvan::wait(&twice, None, None), [0, 1]);
        // empty and zero count return at once
        assert!(sylvan::wait(&[], None, None).is_empty());
    })
    .expect("bounded");
}

#[test]
fn iwait_with_timeout_yields_the_ready_ones_then_stops() {
    sylvan::with_timeout(T3, || {
        let never = Event::new();
        let g = sylvan::spawn(|| sylvan::sleep(Duration::from_millis(10)));
        let killed = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10)));
        sylvan::yield_now();
        let k = &killed;
        let t = Instant::now();
        let objs: [&dyn sylvan::Waitable; 3] = [&never, &g, k];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_millis(80)));
        let first = it.next();
        killed.kill_nowait();
        let rest: Vec<usize> = it.collect();
        assert_eq!(first, Some(1));
        assert_eq!(rest, [2]);
        let el = t.elapsed();
        assert!(
            el >= Duration::from_millis(75) && el < Duration::from_millis(400),
            "{el:?}"
        );
        // timeout 0 on a non-ready object
        let t = Instant::now();
        let objs: [&dyn sylvan::Waitable; 1] = [&never];
        assert!(sylvan::wait(&objs, Some(Duration::ZERO), None).is_empty());
        assert!(t.elapsed() < Duration::from_millis(500));
    })
    .expect("bounded");
}

#[test]
fn joinall_and_killall_with_timeouts() {
    quiet();
    sylvan::with_timeout(T3, || {
        // Margins of 130 ms and more on either side of the timeout.
        let gs: Vec<_> = [20u64, 300, 400]
            .into_iter()
            .map(|d| sylvan::spawn(move || sylvan::sleep(Duration::from_millis(d))))
            .collect();
        assert!(!sylvan::joinall(&gs, Some(Duration::from_millis(150))));
        assert!(gs[0].is_dead() && !gs[2].is_dead());
        assert!(sylvan::joinall(&gs, None));
        // a survivor that swallows the kill once
        let stubborn = sylvan::spawn(|| {
            let _ = std::panic::catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
            sylvan::sleep(Duration::from_millis(1500));
            1
        });
        let meek = sylvan::spawn(|| {
            sylvan::sleep(Duration::from_secs(10));
            2
        });
        sylvan::yield_now();
        let id = stubborn.id();
        let both = [stubborn, meek];
        let t = Instant::now();
        let r = sylvan::killall(&both, Some(Duration::from_millis(50)));
        assert_eq!(r, Err(sylvan::Survivors(vec![id])));
        // At its timeout, not when the stubborn one ends 1.5 s later.
        assert!(t.elapsed() < Duration::from_secs(1));
        let [stubborn, meek] = both;
        assert!(meek.join().unwrap_err().is_killed());
        assert_eq!(stubborn.join().unwrap(), 1);
    })
    .expect("bounded");
}

// ----- Group / Pool ---------------------------------------------------------

#[test]
fn pool_imap_unordered_with_a_panicking_task() {
    quiet();
    sylvan::with_timeout(T3, || {
        let pool = Pool::new(3);
        let got: Vec<_> = pool
            .imap_unordered(0..6u64, |i| {
                sylvan::sleep(Duration::from_millis(2 * (6 - i)));
                if i == 2 {
                    panic!("task two");
                }
                i
            })
            .collect();
        assert_eq!(got.len(), 6);
        let mut oks: Vec<u64> = got
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        oks.sort();
        assert_eq!(oks, [0, 1, 3, 4, 5]);
        let err = got.into_iter().find_map(Result::err).unwrap();
        assert_eq!(err.panic().unwrap().message(), "task two");
        assert!(pool.is_empty());
        assert_eq!(pool.free_count(), 3);
        // map, same failure
        let m = pool.map(0..4u64, |i| if i == 1 { panic!("m") } else { i });
        assert!(m[1].as_ref().unwrap_err().is_panic());
        assert_eq!(*m[3].as_ref().unwrap(), 3);
    })
    .expect("bounded");
}

#[test]
fn group_join_waits_for_members_added_meanwhile() {
    sylvan::with_timeout(T3, || {
        let group = Group::new();
        let done = Rc::new(Cell::new(0u32));
        let (g2, d) = (group.clone(), done.clone());
        group.spawn(move || {
            sylvan::sleep(Duration::from_millis(20));
            let d2 = d.clone();
            g2.spawn(move || {
                sylvan::sleep(Duration::from_millis(50));
                d2.set(d2.get() + 1);
            });
            d.set(d.get() + 1);
        });
        // another greenlet adds to a pool while main joins it
        let pool = Rc::new(Pool::new(2));
        let p = pool.clone();
        let d = done.clone();
        pool.spawn(|| sylvan::sleep(Duration::from_millis(10)));
        sylvan::spawn(move || {
            sylvan::sleep(Duration::from_millis(5));
            for _ in 0..3 {
                let d = d.clone();
                p.spawn(move || {
                    sylvan::sleep(Duration::from_millis(15));
                    d.set(d.get() + 1);
                });
            }
        });
        let t = Instant::now();
        group.join();
        assert!(t.elapsed() >= Duration::from_millis(65));
        pool.join();
        assert!(group.is_empty() && pool.is_empty());
        assert_eq!(done.get(), 5);
    })
    .expect("bounded");
}

#[test]
fn group_kill_from_inside_a_member() {
    sylvan::with_timeout(T3, || {
        let group = Group::new();
        let dead = Rc::new(Cell::new(0u32));
        let mut gs = Vec::new();
        for _ in 0..3 {
            let d = crate::util::DropFlag(dead.clone());
            gs.push(group.spawn(move || {
                let _d = d;
                sylvan::sleep(Duration::from_secs(10));
            }));
        }
        let after = Rc::new(Cell::new(false));
        let (g2, a) = (group.clone(), after.clone());
        let killer = group.spawn(move || {
            sylvan::sleep(Duration::from_millis(5));
            g2.kill();
            a.set(true);
        });
        let t = Instant::now();
        group.join();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(dead.get(), 3);
        assert!(!after.get(), "the killing member is killed last");
        assert!(killer.join().unwrap_err().is_killed());
        for g in gs {
            assert!(g.join().unwrap_err().is_killed());
        }
    })
    .expect("bounded");
}

// ----- links ----------------------------------------------------------------

#[test]
fn link_registered_from_inside_its_own_body() {
    sylvan::with_timeout(T3, || {
        let cell: Rc<RefCell<Option<sylvan::Greenlet<u32>>>> = Rc::default();
        let log = Log::default();
        let (c, l) = (cell.clone(), log.clone());
        let g = sylvan::spawn(move || {
            {
                let me = c.borrow();
                let l = l.clone();
                me.as_ref().unwrap().link(move |o| {
                    if let sylvan::Outcome::Returned(v) = o {
                        l.push(format!("returned {v}"));
                    }
                });
            }
            l.push("body end");
            5
        });
        *cell.borrow_mut() = Some(g);
        let g = {
            sylvan::yield_now();
            cell.borrow_mut().take().unwrap()
        };
        assert_eq!(g.join().unwrap(), 5);
        assert_eq!(log.take(), ["body end", "returned 5"]);
    })
    .expect("bounded");
}

#[test]
fn link_callbacks_spawn_block_and_run_in_fresh_greenlets() {
    sylvan::with_timeout(T3, || {
        let log = Log::default();
        let ids = Rc::new(RefCell::new(Vec::new()));
        let g = sylvan::spawn(|| 1u8);
        let gid = g.id();
        let (l, i) = (log.clone(), ids.clone());
        g.link(move |_| {
            i.borrow_mut()
                .push((sylvan::current(), sylvan::current_name()));
            l.push("a start");
            sylvan::sleep(Duration::from_millis(30));
            l.push("a end");
        });
        let (l, i) = (log.clone(), ids.clone());
        g.link(move |_| {
            i.borrow_mut()
                .push((sylvan::current(), sylvan::current_name()));
            let l2 = l.clone();
            sylvan::spawn(move || l2.push("spawned by b"));
            l.push("b");
        });
        let done = Rc::new(Event::new());
        let d = done.clone();
        g.link(move |_| d.set());
        done.wait();
        sylvan::sleep(Duration::from_millis(60));
        assert_eq!(log.take(), ["a start", "b", "spawned by b", "a end"]);
        let ids = ids.borrow();
        assert_ne!(ids[0].0, ids[1].0);
        assert!(ids.iter().all(|(id, _)| *id != gid && id.as_u64() != 0));
        assert_eq!(ids[0].1.as_deref(), Some("link"));
        drop(g);
    })
    .expect("bounded");
}

#[test]
fn a_panicking_link_callback_does_not_spoil_join() {
    quiet();
    sylvan::with_timeout(T3, || {
        let g = sylvan::spawn(|| 7u8);
        g.link(|_| panic!("in link"));
        let hit = Rc::new(Cell::new(false));
        let h = hit.clone();
        g.link(move |_| h.set(true));
        assert_eq!(g.join().unwrap(), 7);
        assert!(hit.get());
    })
    .expect("bounded");
}

// ----- more: values, keep-alive, several hubs ------------------------------

#[test]
fn mpsc_value_sent_to_a_receiver_killed_before_it_ran_is_not_lost() {
    sylvan::with_timeout(T3, || {
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        let rx = Rc::new(rx);
        let r1 = rx.clone();
        let a = sylvan::spawn(move || r1.recv());
        sylvan::yield_now(); // a parks in recv
        std::thread::spawn(move || tx.send(4).unwrap())
            .join()
            .unwrap();
        // the wake is queued for the hub; kill a before it runs
        a.kill();
        assert!(a.join().unwrap_err().is_killed());
        assert_eq!(rx.try_recv(), Ok(4), "the value stays queued");
    })
    .expect("bounded");
}

#[test]
fn handle_spawned_closure_that_panics_is_reported_and_the_hub_goes_on() {
    quiet();
    sylvan::with_timeout(T3, || {
        let handle = sylvan::Handle::current();
        let (tx, rx) = sylvan::mpsc::channel::<u8>();
        std::thread::spawn(move || {
            handle.spawn(|| panic!("remote boom")).unwrap();
            handle.spawn(move || tx.send(1).unwrap()).unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(rx.recv(), Ok(1));
    })
    .expect("bounded");
}

#[test]
fn keep_alive_dropped_without_work_gives_would_block_forever_not_a_hang() {
    let r = on_thread(T3, || {
        let handle = sylvan::Handle::current();
        let keep = handle.keep_alive();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(keep);
        });
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| Event::new().wait());
        (t.elapsed(), r.map_err(|p| payload_str(&*p)))
    })
    .unwrap();
    let (el, r) = r;
    let msg = r.unwrap_err();
    assert!(msg.contains("would block forever"), "{msg}");
    assert!(el < Duration::from_millis(1000), "{el:?}");
}

#[test]
fn signal_registered_on_two_hubs_runs_on_both() {
    const NAME: &str = "sig_two_hubs";
    if is_child(NAME) {
        let (ready_tx, ready_rx) = stdmpsc::channel();
        let (done_tx, done_rx) = stdmpsc::channel();
        let th = std::thread::spawn(move || {
            let hit = Rc::new(Cell::new(false));
            let h = hit.clone();
            let _reg = sylvan::signal(libc::SIGUSR1, move || h.set(true)).unwrap();
            ready_tx.send(()).unwrap();
            let t = Instant::now();
            while !hit.get() && t.elapsed() < T3 {
                sylvan::sleep(Duration::from_millis(1));
            }
            done_tx.send(hit.get()).unwrap();
        });
        let hit = Rc::new(Cell::new(false));
        let h = hit.clone();
        let _reg = sylvan::signal(libc::SIGUSR1, move || h.set(true)).unwrap();
        ready_rx.recv().unwrap();
        // SAFETY: both registrations handle SIGUSR1.
        unsafe { libc::raise(libc::SIGUSR1) };
        let t = Instant::now();
        while !hit.get() && t.elapsed() < T3 {
            sylvan::sleep(Duration::from_millis(1));
        }
        let other = done_rx.recv_timeout(Duration::from_secs(4)).unwrap();
        th.join().unwrap();
        println!("PROBE main={} other={other}", hit.get());
        return;
    }
    let (stdout, _) = child(
        "threads_gevent::signal_registered_on_two_hubs_runs_on_both",
        NAME,
        Duration::from_secs(10),
    );
    assert!(stdout.contains("PROBE main=true other=true"), "{stdout}");
}

#[test]
fn pool_kill_from_a_member_while_a_spawner_waits_for_a_slot() {
    sylvan::with_timeout(T3, || {
        let pool = Rc::new(Pool::new(2));
        let p = pool.clone();
        let late_ran = Rc::new(Cell::new(false));
        let l = late_ran.clone();
        pool.spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let killer = pool.spawn(move || {
            sylvan::sleep(Duration::from_millis(10));
            p.kill();
        });
        let p2 = pool.clone();
        let spawner = sylvan::spawn(move || {
            // parks: the pool is full
            let g = p2.spawn(move || l.set(true));
            g.wait(None);
            g.is_started()
        });
        let t = Instant::now();
        pool.join();
        // Not after the 10 s sleeper's end: it was killed.
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(killer.join().unwrap_err().is_killed());
        // The kill goes on until no other member is left and kills the
        // killer last. A member leaving wakes the killer before it
        // releases its slot to the waiting spawner (gevent's `discard`
        // order), so the killer's last look comes before the spawner adds
        // its member, which survives the kill and runs, as in gevent.
        let started = spawner.join().unwrap();
        assert!(started && late_ran.get(), "the late member did not run");
        assert!(pool.is_empty());
        assert_eq!(pool.free_count(), 2);
    })
    .expect("bounded");
}
