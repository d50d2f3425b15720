//! Hubs per thread, handles, thread exit, and the cross-thread `mpsc` channel.

use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn thread_exit_kills_live_greenlets_and_runs_their_destructors() {
    let (tx, rx) = mpsc::channel::<&'static str>();
    std::thread::spawn(move || {
        struct Tell(mpsc::Sender<&'static str>);
        impl Drop for Tell {
            fn drop(&mut self) {
                // reaching the hub from a destructor during teardown is fine
                let _ = sylvan::current();
                sylvan::sleep(Duration::from_millis(1));
                let _ = self.0.send("dropped");
            }
        }
        let t = Tell(tx.clone());
        let started = sylvan::spawn(move || {
            let _t = t;
            sylvan::sleep(Duration::from_secs(3600));
        });
        sylvan::yield_now();
        assert!(started.is_started());
        let t2 = Tell(tx);
        let unstarted = sylvan::spawn(move || {
            let _t = t2;
        });
        drop(unstarted);
        drop(started);
        // the thread ends with one greenlet parked and one never started
    })
    .join()
    .unwrap();
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got, ["dropped", "dropped"]);
}

#[test]
fn handle_spawns_on_another_threads_hub() {
    let handle = sylvan::Handle::current();
    let keep = handle.keep_alive();
    let (tx, rx) = mpsc::channel();
    let other = std::thread::spawn(move || {
        handle
            .spawn(move || {
                tx.send(sylvan::current_name()).unwrap();
            })
            .unwrap();
        drop(keep);
    });
    let mut got = None;
    for _ in 0..5000 {
        if let Ok(v) = rx.try_recv() {
            got = Some(v);
            break;
        }
        sylvan::sleep(Duration::from_millis(1));
    }
    other.join().unwrap();
    assert!(got.is_some(), "the handle's greenlet ran on this hub");
}

#[test]
fn a_handle_to_a_finished_thread_says_so() {
    let h = std::thread::spawn(sylvan::Handle::current).join().unwrap();
    assert!(!h.is_alive());
    assert_eq!(h.spawn(|| ()), Err(sylvan::HubGone));
}

/// Forks while other threads hand work to the hub (`Handle::spawn`) and
/// blocking-pool threads take jobs and send results back. Only the forking
/// thread goes on in the child, so a lock one of those threads held at that
/// instant would stay held there forever: the child's hub would hang
/// draining its cross-thread jobs, or in its first `spawn_blocking`. Each
/// child polls (draining the jobs queued around the fork), runs a blocking
/// job and takes a `Handle::spawn` from a thread of its own.
#[test]
fn forks_while_threads_hand_work_to_the_hub_and_the_pool() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use crate::util::{HUNG, fork_child, in_child, reap_blocking};

    in_child(
        "threads::forks_while_threads_hand_work_to_the_hub_and_the_pool",
        "threads-fork-busy",
        || {
            let stop = Arc::new(AtomicBool::new(false));
            let handle = sylvan::Handle::current();
            // At most 8 of its greenlets wait to run at a time.
            let queued = Arc::new(AtomicUsize::new(0));
            let spawner = {
                let (stop, queued) = (stop.clone(), queued.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if queued.load(Ordering::Relaxed) >= 8 {
                            std::thread::yield_now();
                            continue;
                        }
                        queued.fetch_add(1, Ordering::Relaxed);
                        let q = queued.clone();
                        let job = move || {
                            q.fetch_sub(1, Ordering::Relaxed);
                        };
                        if handle.spawn(job).is_err() {
                            break;
                        }
                    }
                })
            };
            // Greenlets keeping the pool's threads busy with short jobs:
            // some on this hub, some on another thread's, which goes on
            // handing jobs over while this thread forks.
            let busy = Rc::new(std::cell::Cell::new(true));
            let feeders: Vec<_> = (0..2)
                .map(|_| {
                    let busy = busy.clone();
                    sylvan::spawn(move || {
                        while busy.get() {
                            sylvan::spawn_blocking(|| std::hint::black_box(1));
                        }
                    })
                })
                .collect();
            let other_hub = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let feeders: Vec<_> = (0..4)
                        .map(|_| {
                            let stop = stop.clone();
                            sylvan::spawn(move || {
                                while !stop.load(Ordering::Relaxed) {
                                    sylvan::spawn_blocking(|| std::hint::black_box(1));
                                }
                            })
                        })
                        .collect();
                    for f in feeders {
                        f.join().unwrap();
                    }
                })
            };
            // Let the pool start the threads this load needs before the
            // first fork: std's own thread-start lock, held by a thread
            // starting at the instant of a fork, would hang the child's
            // first new thread (see the README on fork).
            for _ in 0..200 {
                sylvan::spawn_blocking(|| ());
            }
            // The exit code of each child that failed (1: its blocking job
            // timed out, 2: the `Handle` job never ran, 99: it panicked,
            // below 0: the signal that ended it), for the message below.
            let (mut hung, mut failed, mut forks) = (0, Vec::new(), 0);
            let t = Instant::now();
            while forks < 100 && t.elapsed() < Duration::from_millis(2500) {
                forks += 1;
                let pid = fork_child(|| {
                    sylvan::sleep(Duration::from_millis(1));
                    let job = sylvan::with_timeout(Duration::from_secs(2), || {
                        sylvan::spawn_blocking(|| 5)
                    });
                    if job != Ok(5) {
                        return 1;
                    }
                    let ran = Rc::new(std::cell::Cell::new(false));
                    let (h, flag) = (sylvan::Handle::current(), Arc::new(AtomicBool::new(false)));
                    let f2 = flag.clone();
                    let sent = std::thread::spawn(move || {
                        h.spawn(move || f2.store(true, Ordering::SeqCst)).is_ok()
                    })
                    .join()
                    .unwrap_or(false);
                    let deadline = Instant::now() + Duration::from_secs(2);
                    while sent && !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                        sylvan::sleep(Duration::from_millis(1));
                    }
                    ran.set(flag.load(Ordering::SeqCst));
                    if ran.get() { 0 } else { 2 }
                });
                match reap_blocking(pid, Duration::from_secs(3)) {
                    0 => {}
                    HUNG => hung += 1,
                    code => failed.push(code),
                }
                sylvan::sleep(Duration::from_millis(1));
            }
            stop.store(true, Ordering::Relaxed);
            busy.set(false);
            spawner.join().unwrap();
            other_hub.join().unwrap();
            for f in feeders {
                f.join().unwrap();
            }
            assert_eq!(
                (hung, failed.as_slice()),
                (0, &[][..]),
                "of {forks} children forked while threads handed work over: (hung, the exit \
                 codes of those that failed)"
            );
        },
    );
}

/// Greenlets sharing one `sylvan::mpsc::Receiver` (through an `Rc`) each
/// get a value: a send wakes one of them, not all.
#[test]
fn greenlets_sharing_an_mpsc_receiver_each_get_a_value() {
    crate::util::bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let receivers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                sylvan::spawn(move || rx.recv().unwrap())
            })
            .collect();
        sylvan::yield_now(); // all four park
        let sender = std::thread::spawn(move || {
            for v in 0..4 {
                tx.send(v).unwrap();
            }
        });
        let mut got: Vec<u32> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
        sender.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3]);
    });
}

/// A receiver chosen for a value and killed before it ran passes the value
/// to the next parked receiver; one that timed out before left no entry
/// behind to be chosen instead.
#[test]
fn an_mpsc_value_passes_on_from_a_killed_chosen_receiver() {
    crate::util::bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<&'static str>();
        let rx = Rc::new(rx);
        let recv = |rx: &Rc<sylvan::mpsc::Receiver<&'static str>>| {
            let rx = rx.clone();
            sylvan::spawn(move || rx.recv().unwrap())
        };
        let first = recv(&rx);
        let timed = {
            let rx = rx.clone();
            sylvan::spawn(move || rx.recv_timeout(Duration::from_millis(1)))
        };
        let second = recv(&rx);
        sylvan::yield_now(); // all three park, in order
        assert_eq!(
            timed.join().unwrap(),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        tx.send("value").unwrap(); // chooses `first`, which has not run
        first.kill();
        assert_eq!(second.join().unwrap(), "value");
        assert!(rx.try_recv().is_err());
    });
}

/// A receiver chosen for a value that another took first (with
/// `try_recv`, before the chosen one ran) parks again in its old place:
/// the next value still goes to it, the one that has waited longest.
#[test]
fn an_outrun_mpsc_receiver_keeps_its_place_in_line() {
    crate::util::bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<&'static str>();
        let rx = Rc::new(rx);
        let recv = |rx: &Rc<sylvan::mpsc::Receiver<&'static str>>| {
            let rx = rx.clone();
            sylvan::spawn(move || rx.recv().unwrap())
        };
        let first = recv(&rx);
        let second = recv(&rx);
        sylvan::yield_now(); // both park, `first` ahead
        tx.send("taken").unwrap(); // chooses `first`, which has not run
        assert_eq!(rx.try_recv(), Ok("taken")); // outruns it
        sylvan::yield_now(); // `first` finds nothing and parks again
        assert!(!first.is_dead() && !second.is_dead());
        tx.send("next").unwrap();
        sylvan::yield_now();
        assert!(
            first.is_dead(),
            "the value went to the receiver parked later"
        );
        assert!(!second.is_dead());
        assert_eq!(first.join().unwrap(), "next");
        second.kill();
    });
}

/// The last sender's drop wakes every parked receiver, each seeing the
/// channel disconnected.
#[test]
fn dropping_the_last_mpsc_sender_wakes_every_parked_receiver() {
    crate::util::bounded(|| {
        let (tx, rx) = sylvan::mpsc::channel::<u32>();
        let rx = Rc::new(rx);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                sylvan::spawn(move || rx.recv())
            })
            .collect();
        sylvan::yield_now();
        std::thread::spawn(move || drop(tx)).join().unwrap();
        for r in receivers {
            assert_eq!(r.join().unwrap(), Err(std::sync::mpsc::RecvError));
        }
    });
}
