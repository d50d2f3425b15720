//! Hostile review of 1130f3f: a `spawn_blocking` job whose caller left
//! before a pool thread took it is dropped unrun.
//!
//! Attacked: idle-thread kills and zero timeouts (pb01, pb02: BUG, a race:
//! gevent runs a call submitted to a free worker; the docs say `f` is
//! dropped only when "all were busy"; fixed since: a job submitted while
//! the pool had a thread for it is admitted and runs whatever its caller
//! does), a dead job ahead of a live one and `stats().thread_pool_queue`
//! (pb03: the dead job is counted until a thread takes it, as its doc now
//! says), a capture panicking when dropped unrun (pb04: was printed by
//! std's hook plus a generic line; now reported as an orphaned job's
//! panic), hub thread
//! exit (pb05), main under `with_timeout` (pb06), a caller catching its kill
//! (pb07), 200 timed-out name lookups (pb08), a started job's panic still
//! reported once (pb09), a raised bound (pb10), plain-thread and nested
//! calls (pb11), `fork` with a dead job queued (pb12).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sylvan::{spawn, spawn_blocking, with_timeout, yield_now};

use crate::util::{Gate, ORPHAN, child_texts, count, drain_pool, in_child, yield_until};

const ROUNDS: usize = 5000;
const MS: Duration = Duration::from_millis(1);

/// Sets `flag` when dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Panics when dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("p78 drop boom");
    }
}

/// Occupies the (one-thread) pool from a greenlet until `gate` opens;
/// returns once the job runs.
fn occupy(gate: &Gate) -> sylvan::Greenlet<()> {
    let (gate, started) = (gate.clone(), Gate::default());
    let g = {
        let started = started.clone();
        spawn(move || {
            spawn_blocking(move || {
                started.open();
                gate.wait();
            })
        })
    };
    yield_now();
    started.wait();
    g
}

/// gevent's `ThreadPool(1).spawn` with its worker idle queues the call at
/// once, and a caller killed right after it parked still has its call run
/// (gevent 26.9, `ThreadPool(1)`, 50 rounds of `g = spawn(caller)`
/// where `caller` does `pool.spawn(f).get()`, `sleep(0)`, `g.kill()`,
/// `pool.apply(noop)`: all 50 `f` ran); `spawn_blocking`'s
/// docs say `f` never runs only when "no pool thread had started `f` by
/// then (all were busy)". Here the one thread is idle each round, yet a
/// caller killed right after it parked usually has its job dropped: the
/// idle thread had not yet woken to take it. (Fixed: such a job is
/// admitted at submission and runs whatever its caller does.)
#[test]
fn pb01_idle_thread_caller_killed_at_once_job_still_runs() {
    in_child(
        "probes78::pb01_idle_thread_caller_killed_at_once_job_still_runs",
        "p78-pb01",
        || {
            sylvan::set_blocking_threads(1);
            drain_pool();
            let ran = Arc::new(AtomicUsize::new(0));
            for _ in 0..ROUNDS {
                let g = {
                    let ran = ran.clone();
                    spawn(move || {
                        spawn_blocking(move || {
                            ran.fetch_add(1, Ordering::SeqCst);
                        })
                    })
                };
                yield_now(); // g submits and parks
                g.kill();
                drain_pool(); // the job ran or was dropped by now
            }
            println!("PB01 ran {}", ran.load(Ordering::SeqCst));
            assert_eq!(
                ran.load(Ordering::SeqCst),
                ROUNDS,
                "jobs submitted to an idle thread that ran"
            );
        },
    );
}

/// gevent's `with_timeout(0, pool.apply, f)` with the worker idle times
/// out every time and runs `f` every time (gevent 26.9, `ThreadPool(1)`,
/// 200 rounds: timed out 200, ran 200): the call was submitted before the caller parked.
/// Here the zero timeout often fires before the idle thread wakes and the
/// job is dropped (2,000 rounds lost 3-13 jobs idle, 660 under load).
/// (Fixed, as pb01.)
#[test]
fn pb02_zero_timeout_idle_thread_job_still_runs() {
    in_child(
        "probes78::pb02_zero_timeout_idle_thread_job_still_runs",
        "p78-pb02",
        || {
            sylvan::set_blocking_threads(1);
            drain_pool();
            let (ran, timed_out) = (Arc::new(AtomicUsize::new(0)), AtomicUsize::new(0));
            for _ in 0..2000 {
                let r = ran.clone();
                let res = with_timeout(Duration::ZERO, move || {
                    spawn_blocking(move || {
                        r.fetch_add(1, Ordering::SeqCst);
                    })
                });
                if res.is_err() {
                    timed_out.fetch_add(1, Ordering::SeqCst);
                }
                drain_pool();
            }
            println!(
                "PB02 timed out {} ran {}",
                timed_out.load(Ordering::SeqCst),
                ran.load(Ordering::SeqCst)
            );
            assert_eq!(
                ran.load(Ordering::SeqCst),
                2000,
                "jobs submitted to an idle thread that ran"
            );
        },
    );
}

/// A killed caller's job queued behind a busy thread: its `f` is dropped
/// unrun on the pool thread (what it captured is dropped, not leaked), and
/// a live caller queued behind it gets its result as soon as the busy job
/// ends (the dead job does not hold the pool).
#[test]
fn pb03_dead_job_dropped_unrun_live_one_behind_it_runs() {
    in_child(
        "probes78::pb03_dead_job_dropped_unrun_live_one_behind_it_runs",
        "p78-pb03",
        || {
            sylvan::set_blocking_threads(1);
            let gate = Gate::default();
            let busy = occupy(&gate);
            let (ran, dropped) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let dead = {
                let (ran, d) = (ran.clone(), Dropped(dropped.clone()));
                spawn(move || {
                    spawn_blocking(move || {
                        let _d = &d;
                        ran.store(true, Ordering::SeqCst);
                    })
                })
            };
            let live = spawn(|| spawn_blocking(|| 42));
            yield_now(); // both queued, parked
            assert_eq!(sylvan::stats().thread_pool_queue, 2);
            dead.kill();
            assert!(dead.join().is_err_and(|e| e.is_killed()));
            // stats still counts the dead job: nobody took it yet.
            assert_eq!(sylvan::stats().thread_pool_queue, 2);
            assert!(!dropped.load(Ordering::SeqCst));
            gate.open();
            assert_eq!(live.join().unwrap(), 42);
            busy.join().unwrap();
            assert!(!ran.load(Ordering::SeqCst), "the killed caller's job ran");
            assert!(
                dropped.load(Ordering::SeqCst),
                "the unrun job was not dropped"
            );
            assert_eq!(sylvan::stats().thread_pool_queue, 0);
        },
    );
}

/// The caller's captured value panics when the unrun job is dropped on the
/// pool thread: no abort, the pool keeps its thread (the next job runs),
/// and the panic is reported once, as an orphaned job's panic (`ORPHAN`,
/// through `log` if set), as when the value was dropped inside a job that
/// ran. (Found printed by std's hook plus the pool's generic "outside its
/// caller's reach" line, which named neither; fixed since.)
#[test]
fn pb04_unrun_job_whose_capture_panics_on_drop() {
    let Some((out, err)) = child_texts(
        "probes78::pb04_unrun_job_whose_capture_panics_on_drop",
        "p78-pb04",
        || {
            sylvan::set_blocking_threads(1);
            let gate = Gate::default();
            let busy = occupy(&gate);
            let dead = spawn(move || {
                let p = PanicsOnDrop;
                spawn_blocking(move || {
                    let _p = &p;
                    println!("PB04 ran");
                })
            });
            yield_now();
            dead.kill();
            gate.open();
            busy.join().unwrap();
            drain_pool();
            drain_pool();
            println!("PB04 DONE");
        },
    ) else {
        return;
    };
    assert!(
        out.contains("PB04 DONE") && !out.contains("PB04 ran"),
        "{out}"
    );
    assert_eq!(count(&err, "p78 drop boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
    assert_eq!(count(&err, "thread 'sylvan-blocking'"), 0, "stderr:\n{err}");
    assert_eq!(
        count(&err, "outside its caller's reach"),
        0,
        "stderr:\n{err}"
    );
}

/// The caller's hub thread exits while its greenlet is parked on a job
/// queued behind a busy thread: the teardown kills the greenlet, its
/// `Landing` closes the channel, and the job is dropped unrun.
#[test]
fn pb05_hub_thread_exit_drops_the_queued_job_unrun() {
    in_child(
        "probes78::pb05_hub_thread_exit_drops_the_queued_job_unrun",
        "p78-pb05",
        || {
            sylvan::set_blocking_threads(1);
            let gate = Gate::default();
            let busy = occupy(&gate);
            let (ran, dropped) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let parked = Gate::default();
            {
                let (ran, d, parked) = (ran.clone(), Dropped(dropped.clone()), parked.clone());
                std::thread::spawn(move || {
                    let _g = spawn(move || {
                        spawn_blocking(move || {
                            let _d = &d;
                            ran.store(true, Ordering::SeqCst);
                        })
                    });
                    yield_now();
                    parked.open();
                })
                .join()
                .unwrap();
            }
            parked.wait();
            gate.open();
            busy.join().unwrap();
            drain_pool();
            assert!(
                !ran.load(Ordering::SeqCst),
                "a job of a torn-down caller ran"
            );
            assert!(dropped.load(Ordering::SeqCst));
        },
    );
}

/// Main (not a greenlet) under `with_timeout` behind a busy thread: it
/// times out, its job never runs, and main's next `spawn_blocking` gets
/// its value.
#[test]
fn pb06_main_timed_out_its_job_dropped_next_call_fine() {
    in_child(
        "probes78::pb06_main_timed_out_its_job_dropped_next_call_fine",
        "p78-pb06",
        || {
            sylvan::set_blocking_threads(1);
            let gate = Gate::default();
            let busy = occupy(&gate);
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let res = with_timeout(5 * MS, move || {
                spawn_blocking(move || r.store(true, Ordering::SeqCst))
            });
            assert!(res.is_err());
            gate.open();
            assert_eq!(spawn_blocking(|| 9), 9);
            busy.join().unwrap();
            assert!(!ran.load(Ordering::SeqCst));
        },
    );
}

/// A caller that catches its kill and calls `spawn_blocking` again: the
/// first job (queued) is dropped unrun, the second runs and returns.
#[test]
fn pb07_caller_catches_its_kill_and_calls_again() {
    in_child(
        "probes78::pb07_caller_catches_its_kill_and_calls_again",
        "p78-pb07",
        || {
            sylvan::set_blocking_threads(1);
            let gate = Gate::default();
            let busy = occupy(&gate);
            let ran = Arc::new(AtomicUsize::new(0));
            let g = {
                let ran = ran.clone();
                spawn(move || {
                    let r1 = ran.clone();
                    let first = catch_unwind(AssertUnwindSafe(|| {
                        spawn_blocking(move || r1.fetch_add(1, Ordering::SeqCst))
                    }));
                    assert!(first.is_err());
                    spawn_blocking(move || ran.fetch_add(10, Ordering::SeqCst) + 100)
                })
            };
            yield_now();
            g.kill_nowait();
            yield_until("g caught its kill and queued again", || {
                sylvan::stats().thread_pool_queue == 2
            });
            gate.open();
            busy.join().unwrap();
            assert_eq!(g.join().unwrap(), 100);
            assert_eq!(ran.load(Ordering::SeqCst), 10, "only the second job ran");
        },
    );
}

/// 200 greenlets resolve "localhost" (`TcpStream::connect` through
/// `lookup_host`, on the pool) under timeouts from 0 to 2 ms on a
/// two-thread pool: many are cut while queued. Afterwards the pool is
/// healthy: the queue empties and a fresh connect by name works.
#[test]
fn pb08_many_timed_out_lookups_pool_stays_healthy() {
    in_child(
        "probes78::pb08_many_timed_out_lookups_pool_stays_healthy",
        "p78-pb08",
        || {
            sylvan::set_blocking_threads(2);
            let l = sylvan::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let acc = spawn(move || while l.accept().is_ok() {});
            let gs: Vec<_> = (0..200u64)
                .map(|i| {
                    spawn(move || {
                        with_timeout(Duration::from_micros(i * 10), || {
                            sylvan::net::TcpStream::connect(("localhost", port)).map(drop)
                        })
                        .is_ok()
                    })
                })
                .collect();
            let done = gs
                .into_iter()
                .map(|g| g.join().unwrap())
                .filter(|ok| *ok)
                .count();
            println!("PB08 finished {done} of 200");
            yield_until("queue empty", || sylvan::stats().thread_pool_queue == 0);
            sylvan::net::TcpStream::connect(("localhost", port)).unwrap();
            acc.kill();
        },
    );
}

/// A started job whose caller timed out while it ran, and which then
/// panics, is still reported once (as an orphan), next to an unrun job of
/// a killed caller, reported nowhere.
#[test]
fn pb09_started_job_panic_still_reported_once() {
    let Some((_out, err)) = child_texts(
        "probes78::pb09_started_job_panic_still_reported_once",
        "p78-pb09",
        || {
            sylvan::set_blocking_threads(1);
            let (gate, started) = (Gate::default(), Gate::default());
            let g = {
                let (gate, started) = (gate.clone(), started.clone());
                spawn(move || {
                    with_timeout(5 * MS, move || {
                        spawn_blocking(move || {
                            started.open();
                            gate.wait();
                            panic!("p78 started boom");
                        })
                    })
                })
            };
            yield_now();
            started.wait();
            let dead = spawn(|| spawn_blocking(|| panic!("p78 unrun boom")));
            yield_now();
            dead.kill();
            assert!(g.join().unwrap().is_err());
            gate.open();
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "p78 started boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
    assert_eq!(count(&err, "p78 unrun boom"), 0, "stderr:\n{err}");
}

/// One pool thread, held by `occupy` until the returned gate opens (the
/// greenlet holding it is returned second), and a caller (returned last)
/// whose job, queued behind it, sets the returned flag if it runs.
fn queued_behind_a_busy_thread() -> (
    Gate,
    sylvan::Greenlet<()>,
    Arc<AtomicBool>,
    sylvan::Greenlet<()>,
) {
    sylvan::set_blocking_threads(1);
    let gate = Gate::default();
    let busy = occupy(&gate);
    let ran = Arc::new(AtomicBool::new(false));
    let dead = {
        let ran = ran.clone();
        spawn(move || spawn_blocking(move || ran.store(true, Ordering::SeqCst)))
    };
    (gate, busy, ran, dead)
}

/// A killed caller's job is queued when `set_blocking_threads` raises the
/// bound: the new thread takes it and drops it unrun; a live job queued
/// after it runs on that new thread while the first is still busy.
#[test]
fn pb10_raised_bound_thread_skips_dead_job_runs_live_one() {
    in_child(
        "probes78::pb10_raised_bound_thread_skips_dead_job_runs_live_one",
        "p78-pb10",
        || {
            let (gate, busy, ran, dead) = queued_behind_a_busy_thread();
            let live = spawn(|| spawn_blocking(|| 5));
            yield_now();
            dead.kill();
            sylvan::set_blocking_threads(2);
            assert_eq!(live.join().unwrap(), 5);
            assert!(!ran.load(Ordering::SeqCst));
            gate.open();
            busy.join().unwrap();
        },
    );
}

/// `spawn_blocking` from a plain (non-hub) thread and, nested, from a job
/// on the pool (inline): both still run and return, with the pool's one
/// thread busy for the nested case.
#[test]
fn pb11_plain_thread_and_nested_calls_still_run() {
    in_child(
        "probes78::pb11_plain_thread_and_nested_calls_still_run",
        "p78-pb11",
        || {
            sylvan::set_blocking_threads(1);
            let v = std::thread::spawn(|| spawn_blocking(|| spawn_blocking(|| 3) + 1))
                .join()
                .unwrap();
            assert_eq!(v, 4);
            assert_eq!(spawn_blocking(|| spawn_blocking(|| 5) * 2), 10);
        },
    );
}

/// `fork` with a killed caller's job still queued (the one thread busy):
/// the forked child keeps the queue and has no pool thread; its first
/// `spawn_blocking` starts one, which drops the dead job unrun and runs the
/// new one. The parent does the same once its busy job ends.
#[test]
fn pb12_fork_with_a_dead_job_queued() {
    in_child(
        "probes78::pb12_fork_with_a_dead_job_queued",
        "p78-pb12",
        || {
            let (gate, busy, ran, dead) = queued_behind_a_busy_thread();
            yield_now();
            dead.kill();
            assert_eq!(sylvan::stats().thread_pool_queue, 1);
            let child_ran = ran.clone();
            let pid = crate::util::fork_child(move || {
                let v = spawn_blocking(|| 11);
                let q = sylvan::stats().thread_pool_queue;
                i32::from(!(v == 11 && q == 0 && !child_ran.load(Ordering::SeqCst)))
            });
            assert_eq!(crate::util::reap(pid, Duration::from_secs(4)), 0);
            gate.open();
            busy.join().unwrap();
            assert_eq!(spawn_blocking(|| 12), 12);
            assert!(!ran.load(Ordering::SeqCst));
        },
    );
}
