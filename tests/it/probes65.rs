//! Differential traces against gevent 26.9.0 (greenlet 3.5.6, CPython
//! 3.11) for the areas earlier rounds (probes57-59: lifecycle, sync and
//! pools, sockets) did not trace: the thread pool (`spawn_blocking` vs
//! `ThreadPool.apply`), cross-thread wake-ups (`Handle`, `sylvan::mpsc` vs
//! `loop.run_callback_threadsafe`), descriptor waits (`sylvan::os::Fd`,
//! `wait_child` vs `gevent.os.nb_read`/`nb_write`, `wait_read`,
//! `gevent.subprocess`), signals (`sylvan::signal` vs
//! `gevent.signal_handler`, raised only in re-executed child processes),
//! greenlet-locals (`greenlet_local!` vs `gevent.local.local`) and timers.
//! Each test replays the script of the same name in
//! `tests/it/gevent_traces/<area>_NN_*.py`, which appends strings to a list
//! and prints it, and quotes the trace gevent printed.
//!
//! What sylvan lacks and was not traced: `ThreadPool.spawn`/`map`/`imap`
//! (sylvan has `spawn_blocking` only; a greenlet around it stands in for
//! `spawn`), a per-hub pool (sylvan's is process-wide: the tests that size
//! it run in a child process), `gevent.select`, `tp_read`/`tp_write`
//! (`spawn_blocking` is that), a `fork` wrapper (fd08 forks with `libc`,
//! as gevent's `gevent.os.fork` forks and reinits).
//!
//! 42 scenarios: 33 match gevent; 5 differ as sylvan documents (tp04: a
//! job queued behind a busy pool whose caller was killed never runs, where
//! gevent's pool, which admits one call more than its threads, runs it;
//! x04: an
//! item handed to a greenlet killed before it ran passes on during its
//! unwind, ahead of the killer's wake-up; sg05: a cancelled handler puts
//! the previous disposition back, gevent's libev puts `SIG_DFL`; lo02: a
//! greenlet-local value goes when its greenlet ends, gevent's when the
//! greenlet object is freed; tm06: `join` waits for link callbacks that
//! borrow the outcome); 3 differed undocumented (fd09 `wait_child` of an
//! exited child does not switch, tm01 a timer armed after a stall is due
//! from now, gevent's from its stale loop time, tm05 a `Timeout` and a
//! sleep of the same delay), now listed in the README's differences and
//! asserting sylvan's order; 1 bug (tp10: a job's panic was reported
//! nowhere once its caller was killed or timed out), fixed: the pool
//! thread reports it (tp10, tp10b).

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use sylvan::sync::AsyncResult;
use sylvan::{
    Handle, idle, joinall, killall, sleep, spawn, spawn_blocking, spawn_later, with_timeout,
    yield_now,
};

use crate::util::{Gate, Log, bounded, in_child, quiet, wait_for};

const MS: Duration = Duration::from_millis(1);

fn check(log: &Log, gevent: &[&str]) {
    assert_eq!(log.get(), gevent);
}

/// A log that other OS threads (pool jobs, senders) append to as well.
#[derive(Clone, Default)]
struct SLog(Arc<StdMutex<Vec<String>>>);

impl SLog {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Pushes its text when dropped: a Python `finally:`.
struct SFin(SLog, &'static str);

impl Drop for SFin {
    fn drop(&mut self) {
        self.0.push(self.1);
    }
}

fn msg(p: &(dyn std::any::Any + Send)) -> String {
    sylvan::runtime::payload_message(p)
}

/// Waits (running the hub) until `cond` holds; panics after 3 s.
fn until(what: &str, cond: impl Fn() -> bool) {
    assert!(wait_for(Duration::from_secs(3), cond), "never: {what}");
}

/// Raises `sig` on the calling thread, where it is delivered before this
/// returns (a `kill` of the process may be taken by another thread of the
/// test harness a moment later, after the hub has polled).
fn raise(sig: i32) {
    // SAFETY: raises a signal handled by a `sylvan::signal` registration in
    // this (re-executed child) process.
    unsafe { libc::raise(sig) };
}

// ================================================================ thread pool

// threads_01_apply_completion_order.py, gevent 26.9.0 (jobs of 90, 30 and
// 60 ms there; 150, 50 and 100 here, for a loaded machine):
// ['a-call', 'b-call', 'c-call', 'x', 'b-done', 'c-done', 'a-done', 'main']
#[test]
fn tp01_results_come_back_in_completion_order() {
    bounded(|| {
        let t = Log::default();
        let w = |n: &'static str, ms: u64| {
            let t = t.clone();
            move || {
                t.push(format!("{n}-call"));
                let r = spawn_blocking(move || {
                    std::thread::sleep(MS * ms as u32);
                    n
                });
                t.push(format!("{r}-done"));
            }
        };
        let a = spawn(w("a", 150));
        let b = spawn(w("b", 50));
        let c = spawn(w("c", 100));
        let t2 = t.clone();
        let x = spawn(move || t2.push("x"));
        assert!(joinall(&[a, b, c, x], None));
        t.push("main");
        check(
            &t,
            &[
                "a-call", "b-call", "c-call", "x", "b-done", "c-done", "a-done", "main",
            ],
        );
    })
}

// threads_02_exception_in_thread.py, gevent 26.9.0:
// ['caught-boom', 'again-ok', 'g2-failed-late', 'main']
// (gevent also prints each job's exception on stderr, from the worker
// thread; sylvan reports only the greenlet that failed.)
#[test]
fn tp02_a_panic_in_the_job_is_raised_in_the_caller() {
    bounded(|| {
        quiet();
        let t = Log::default();
        let gate = Gate::default();
        let (t1, gate1) = (t.clone(), gate.clone());
        let a = spawn(move || {
            match catch_unwind(AssertUnwindSafe(|| {
                spawn_blocking::<()>(|| panic!("boom"));
            })) {
                Ok(()) => t1.push("not-raised"),
                Err(p) => t1.push(format!("caught-{}", msg(&*p))),
            }
            let ok = spawn_blocking(|| "ok");
            t1.push(format!("again-{ok}"));
            gate1.open();
        });
        let t2 = t.clone();
        let b = spawn(move || {
            spawn_blocking::<()>(move || {
                gate.wait();
                panic!("late")
            });
            t2.push("g2-not-reached");
        });
        let t3 = t.clone();
        b.link_exception(move |e| {
            t3.push(format!(
                "g2-failed-{}",
                e.panic().map_or("?", |p| p.message())
            ))
        });
        joinall(&[a, b], None);
        sleep(10 * MS);
        t.push("main");
        check(&t, &["caught-boom", "again-ok", "g2-failed-late", "main"]);
    })
}

// threads_03_killed_while_thread_runs.py, gevent 26.9.0 (ThreadPool(1)):
// ['job1-start', 'g-finally', 'killed', 'h-waiting', 'job1-end', 'h-two',
//  'main']
#[test]
fn tp03_killed_while_its_job_runs_the_slot_comes_back() {
    in_child(
        "probes65::tp03_killed_while_its_job_runs_the_slot_comes_back",
        "p65-tp03",
        || {
            sylvan::set_blocking_threads(1);
            let t = SLog::default();
            let (gate, started) = (Gate::default(), Gate::default());
            let a = {
                let (t, gate, started) = (t.clone(), gate.clone(), started.clone());
                spawn(move || {
                    let _f = SFin(t.clone(), "g-finally");
                    let tj = t.clone();
                    let r = spawn_blocking(move || {
                        tj.push("job1-start");
                        started.open();
                        gate.wait();
                        tj.push("job1-end");
                        "one"
                    });
                    t.push(format!("g-got-{r}"));
                })
            };
            yield_now();
            started.wait();
            a.kill();
            t.push("killed");
            let th = t.clone();
            let h = spawn(move || {
                let r = spawn_blocking(|| "two");
                th.push(format!("h-{r}"));
            });
            yield_now();
            t.push("h-waiting");
            gate.open();
            h.join().unwrap();
            t.push("main");
            assert_eq!(
                t.get(),
                [
                    "job1-start",
                    "g-finally",
                    "killed",
                    "h-waiting",
                    "job1-end",
                    "h-two",
                    "main"
                ]
            );
        },
    );
}

// threads_04_killed_while_queued.py, gevent 26.9.0 (ThreadPool(1)):
// ['job1-start', 'g2-killed', 'g1-one', 'job3-ran', 'main-three',
//  'job2-ran=True']
// A documented difference: gevent's pool admits maxsize + 1 calls (its
// slot semaphore starts at one more than the threads), so with one
// thread the second call is already queued and runs although its caller
// was killed; a third would wait in its caller and, killed there, never
// run. sylvan runs no job whose caller stopped waiting before a thread
// took it: here 'job2-ran=False'.
#[test]
fn tp04_killed_while_its_job_is_queued_the_job_never_runs() {
    in_child(
        "probes65::tp04_killed_while_its_job_is_queued_the_job_never_runs",
        "p65-tp04",
        || {
            sylvan::set_blocking_threads(1);
            let t = SLog::default();
            let (gate, started) = (Gate::default(), Gate::default());
            let ran = Arc::new(AtomicBool::new(false));
            let g1 = {
                let (t, gate, started) = (t.clone(), gate.clone(), started.clone());
                spawn(move || {
                    let tj = t.clone();
                    let r = spawn_blocking(move || {
                        tj.push("job1-start");
                        started.open();
                        gate.wait();
                        "one"
                    });
                    t.push(format!("g1-{r}"));
                })
            };
            let g2 = {
                let (t, ran) = (t.clone(), ran.clone());
                spawn(move || {
                    let r = spawn_blocking(move || {
                        ran.store(true, Ordering::SeqCst);
                        "two"
                    });
                    t.push(format!("g2-{r}"));
                })
            };
            yield_now();
            started.wait();
            g2.kill();
            t.push("g2-killed");
            gate.open();
            g1.join().unwrap();
            let t3 = t.clone();
            let r = spawn_blocking(move || {
                t3.push("job3-ran");
                "three"
            });
            t.push(format!("main-{r}"));
            t.push(format!(
                "job2-ran={}",
                if ran.load(Ordering::SeqCst) {
                    "True"
                } else {
                    "False"
                }
            ));
            assert_eq!(
                t.get(),
                [
                    "job1-start",
                    "g2-killed",
                    "g1-one",
                    "job3-ran",
                    "main-three",
                    "job2-ran=False"
                ]
            );
        },
    );
}

// threads_05_timeout_while_waiting.py, gevent 26.9.0 (ThreadPool(1); a
// 20 ms timeout there, 100 ms here so that the job surely started):
// ['slow-start', 'timed-out', 'b-waiting', 'slow-end', 'next-next', 'main']
#[test]
fn tp05_timed_out_while_waiting_the_next_call_waits_behind_the_job() {
    in_child(
        "probes65::tp05_timed_out_while_waiting_the_next_call_waits_behind_the_job",
        "p65-tp05",
        || {
            sylvan::set_blocking_threads(1);
            let t = SLog::default();
            let gate = Gate::default();
            let a = {
                let (t, gate) = (t.clone(), gate.clone());
                spawn(move || {
                    let tj = t.clone();
                    let r = with_timeout(100 * MS, || {
                        spawn_blocking(move || {
                            tj.push("slow-start");
                            gate.wait();
                            tj.push("slow-end");
                            "slow"
                        })
                    });
                    match r {
                        Ok(v) => t.push(format!("got-{v}")),
                        Err(_) => t.push("timed-out"),
                    }
                })
            };
            a.join().unwrap();
            let tb = t.clone();
            let b = spawn(move || {
                let r = spawn_blocking(|| "next");
                tb.push(format!("next-{r}"));
            });
            yield_now();
            t.push("b-waiting");
            gate.open();
            b.join().unwrap();
            t.push("main");
            assert_eq!(
                t.get(),
                [
                    "slow-start",
                    "timed-out",
                    "b-waiting",
                    "slow-end",
                    "next-next",
                    "main"
                ]
            );
        },
    );
}

// threads_06_many_waiters_two_threads.py, gevent 26.9.0 (ThreadPool(2)):
// ['got1', 'starts=[0, 1, 2]', 'got0', 'starts=[0, 1, 2, 3]', 'got3',
//  'starts=[0, 1, 2, 3, 4]', 'got2', 'starts=[0, 1, 2, 3, 4]', 'got4',
//  'starts=[0, 1, 2, 3, 4]', 'max-running=2']
#[test]
fn tp06_five_waiters_two_threads_start_in_call_order() {
    in_child(
        "probes65::tp06_five_waiters_two_threads_start_in_call_order",
        "p65-tp06",
        || {
            sylvan::set_blocking_threads(2);
            let t = Log::default();
            let starts: Arc<StdMutex<Vec<usize>>> = Arc::default();
            let running = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
            let gates: Vec<Gate> = (0..5).map(|_| Gate::default()).collect();
            let gs: Vec<_> = (0..5)
                .map(|i| {
                    let (t, starts, running, gate) =
                        (t.clone(), starts.clone(), running.clone(), gates[i].clone());
                    spawn(move || {
                        let r = spawn_blocking(move || {
                            {
                                let mut s = starts.lock().unwrap();
                                s.push(i);
                                let now = running.0.fetch_add(1, Ordering::SeqCst) + 1;
                                running.1.fetch_max(now, Ordering::SeqCst);
                            }
                            gate.wait();
                            running.0.fetch_sub(1, Ordering::SeqCst);
                            i
                        });
                        t.push(format!("got{r}"));
                    })
                })
                .collect();
            let nstarts = || starts.lock().unwrap().len();
            until("two started", || nstarts() == 2);
            for (i, n) in [(1, 3), (0, 4), (3, 5), (2, 5), (4, 5)] {
                gates[i].open();
                let got = format!("got{i}");
                until(&got, || t.get().contains(&got) && nstarts() == n);
                // Jobs 0 and 1 start at once on the two threads: which one
                // records its start first is the threads' race, not an
                // order the pool gives (the later starts each wait for a
                // thread to free up, in call order).
                let mut v = starts.lock().unwrap().clone();
                v[..2].sort_unstable();
                let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                t.push(format!("starts=[{}]", s.join(", ")));
            }
            joinall(&gs, None);
            t.push(format!("max-running={}", running.1.load(Ordering::SeqCst)));
            check(
                &t,
                &[
                    "got1",
                    "starts=[0, 1, 2]",
                    "got0",
                    "starts=[0, 1, 2, 3]",
                    "got3",
                    "starts=[0, 1, 2, 3, 4]",
                    "got2",
                    "starts=[0, 1, 2, 3, 4]",
                    "got4",
                    "starts=[0, 1, 2, 3, 4]",
                    "max-running=2",
                ],
            );
        },
    );
}

// threads_07_wakeup_vs_ready.py, gevent 26.9.0:
// ['x', 'y', 'main-sleep0', 'g-r', 'main']
#[test]
fn tp07_a_result_that_arrived_during_a_stall_wakes_after_the_ready_ones() {
    bounded(|| {
        let t = Log::default();
        let go = Gate::default();
        let done = Arc::new(AtomicBool::new(false));
        let (t1, d1, go1) = (t.clone(), done.clone(), go.clone());
        let g = spawn(move || {
            let r = spawn_blocking(move || {
                go1.wait();
                d1.store(true, Ordering::SeqCst);
                "r"
            });
            t1.push(format!("g-{r}"));
        });
        yield_now();
        // g has parked for its result. Block the hub (the thread) until
        // the job is done, and then some, so that its result has been
        // sent: `go.set(); done.wait(); time.sleep(0.05)`.
        go.open();
        for _ in 0..5000 {
            if done.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(MS);
        }
        std::thread::sleep(50 * MS);
        let (tx, ty) = (t.clone(), t.clone());
        spawn(move || tx.push("x"));
        spawn(move || ty.push("y"));
        yield_now();
        t.push("main-sleep0");
        g.join().unwrap();
        t.push("main");
        check(&t, &["x", "y", "main-sleep0", "g-r", "main"]);
    })
}

// threads_08_maxsize_raised.py, gevent 26.9.0 (ThreadPool(1), then
// maxsize = 3):
// ['starts=[0]', 'raised', 'starts=[0, 1, 2]', 'got0', 'got1', 'got2']
#[test]
fn tp08_raising_the_bound_starts_the_queued_jobs() {
    in_child(
        "probes65::tp08_raising_the_bound_starts_the_queued_jobs",
        "p65-tp08",
        || {
            sylvan::set_blocking_threads(1);
            let t = Log::default();
            let starts: Arc<StdMutex<Vec<usize>>> = Arc::default();
            let gates: Vec<Gate> = (0..3).map(|_| Gate::default()).collect();
            let gs: Vec<_> = (0..3)
                .map(|i| {
                    let (t, starts, gate) = (t.clone(), starts.clone(), gates[i].clone());
                    spawn(move || {
                        let r = spawn_blocking(move || {
                            starts.lock().unwrap().push(i);
                            gate.wait();
                            i
                        });
                        t.push(format!("got{r}"));
                    })
                })
                .collect();
            let fmt = |s: &Arc<StdMutex<Vec<usize>>>| {
                let mut v = s.lock().unwrap().clone();
                v.sort();
                let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                format!("starts=[{}]", v.join(", "))
            };
            until("one started", || starts.lock().unwrap().len() == 1);
            t.push(fmt(&starts));
            sylvan::set_blocking_threads(3);
            t.push("raised");
            until("three started", || starts.lock().unwrap().len() == 3);
            t.push(fmt(&starts));
            // Opened in order, each result in before the next gate.
            for (i, g) in gates.iter().enumerate() {
                g.open();
                let got = format!("got{i}");
                until(&got, || t.get().contains(&got));
            }
            joinall(&gs, None);
            check(
                &t,
                &[
                    "starts=[0]",
                    "raised",
                    "starts=[0, 1, 2]",
                    "got0",
                    "got1",
                    "got2",
                ],
            );
        },
    );
}

// threads_09_nested_apply_runs_inline.py, gevent 26.9.0:
// ['inline', 'main-thread-differs=True']
#[test]
fn tp09_a_nested_call_from_a_job_runs_inline() {
    bounded(|| {
        let t = Log::default();
        let r = spawn_blocking(|| {
            let me = std::thread::current().id();
            let other = spawn_blocking(|| std::thread::current().id());
            if other == me { "inline" } else { "queued" }
        });
        t.push(r);
        let differs = spawn_blocking(|| std::thread::current().id()) != std::thread::current().id();
        t.push(format!(
            "main-thread-differs={}",
            if differs { "True" } else { "False" }
        ));
        check(&t, &["inline", "main-thread-differs=True"]);
    })
}

// threads_10_job_raises_after_caller_killed.py, gevent 26.9.0:
// ['killed', 'main'], and on stderr the worker's traceback of
// `ValueError: orphan-boom` (gevent's pool prints every job's exception).
// sylvan's panic hook keeps quiet about a job panic whose caller is a
// greenlet, leaving the report to that greenlet; killed, the caller never
// sees it, and the panic is dropped with the orphaned result: nothing
// anywhere says it happened.
#[test]
fn tp10_a_job_that_panics_after_its_caller_was_killed_is_reported() {
    let Some((out, err)) = crate::util::child_texts(
        "probes65::tp10_a_job_that_panics_after_its_caller_was_killed_is_reported",
        "p65-tp10",
        || {
            let t = Log::default();
            let (gate, started) = (Gate::default(), Gate::default());
            let finished = Arc::new(AtomicBool::new(false));
            let g = {
                let (gate, started, finished) = (gate.clone(), started.clone(), finished.clone());
                spawn(move || {
                    spawn_blocking(move || {
                        struct Done(Arc<AtomicBool>);
                        impl Drop for Done {
                            fn drop(&mut self) {
                                self.0.store(true, Ordering::SeqCst);
                            }
                        }
                        let _d = Done(finished);
                        started.open();
                        gate.wait();
                        panic!("orphan-boom");
                    })
                })
            };
            yield_now();
            started.wait();
            g.kill();
            t.push("killed");
            gate.open();
            until("the job finished", || finished.load(Ordering::SeqCst));
            sleep(50 * MS);
            t.push("main");
            println!("TRACE {:?}", t.get());
        },
    ) else {
        return;
    };
    assert!(out.contains(r#"TRACE ["killed", "main"]"#), "{out}");
    assert!(
        err.contains("orphan-boom"),
        "the job's panic was reported nowhere; stderr:\n{err}"
    );
}

/// As tp10, the caller's wait ending by a timeout instead of a kill: the
/// job's panic is reported once, by the pool thread, and the greenlet sees
/// only its timeout.
#[test]
fn tp10b_a_job_that_panics_after_its_caller_timed_out_is_reported_once() {
    let Some((out, err)) = crate::util::child_texts(
        "probes65::tp10b_a_job_that_panics_after_its_caller_timed_out_is_reported_once",
        "p65-tp10b",
        || {
            let (gate, finished) = (Gate::default(), Arc::new(AtomicBool::new(false)));
            let started = Gate::default();
            let g = {
                let (gate, finished, started) = (gate.clone(), finished.clone(), started.clone());
                spawn(move || {
                    with_timeout(20 * MS, || {
                        spawn_blocking(move || {
                            struct Done(Arc<AtomicBool>);
                            impl Drop for Done {
                                fn drop(&mut self) {
                                    self.0.store(true, Ordering::SeqCst);
                                }
                            }
                            let _d = Done(finished);
                            started.open();
                            gate.wait();
                            panic!("late-boom");
                        })
                    })
                    .is_err()
                })
            };
            // The job starts before the hub runs again, so before the
            // timeout can fire: a job not started when its caller stops
            // waiting is not run at all.
            yield_now();
            started.wait();
            assert!(g.join().unwrap(), "the wait timed out");
            gate.open();
            until("the job finished", || finished.load(Ordering::SeqCst));
            sleep(50 * MS);
            println!("TIMED OUT");
        },
    ) else {
        return;
    };
    assert!(out.contains("TIMED OUT"), "{out}");
    assert_eq!(err.matches("late-boom").count(), 1, "stderr:\n{err}");
    assert!(err.contains("stopped waiting"), "stderr:\n{err}");
}

// ================================================================ cross-thread

// remote_01_threadsafe_spawns_vs_local.py, gevent 26.9.0:
// ['x', 'z', 'main-sleep0', 'r1', 'r2', 'r3', 'main']
#[test]
fn x01_spawns_from_another_thread_run_after_main_yields() {
    bounded(|| {
        let t = SLog::default();
        let tx = t.clone();
        spawn(move || tx.push("x"));
        let h = Handle::current();
        let tr = t.clone();
        std::thread::spawn(move || {
            for i in 1..=3 {
                let t = tr.clone();
                h.spawn(move || t.push(format!("r{i}"))).unwrap();
            }
        })
        .join()
        .unwrap();
        let tz = t.clone();
        spawn(move || tz.push("z"));
        yield_now();
        t.push("main-sleep0");
        sleep(10 * MS);
        t.push("main");
        assert_eq!(t.get(), ["x", "z", "main-sleep0", "r1", "r2", "r3", "main"]);
    })
}

// remote_02_two_receivers_three_values.py, gevent 26.9.0 (a gevent Queue
// fed by `run_callback_threadsafe(q.put, i)`):
// ['sent', 'a1', 'a2', 'a3', 'main']
#[test]
fn x02_two_receivers_three_values_from_a_thread() {
    bounded(|| {
        let t = Log::default();
        let (tx, rx) = sylvan::mpsc::channel::<i32>();
        let rx = Rc::new(rx);
        let rx_loop = |n: &'static str| {
            let (t, rx) = (t.clone(), rx.clone());
            move || {
                while let Ok(v) = rx.recv() {
                    t.push(format!("{n}{v}"));
                }
            }
        };
        let a = spawn(rx_loop("a"));
        let b = spawn(rx_loop("b"));
        yield_now();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for i in 1..=3 {
                tx2.send(i).unwrap();
            }
        })
        .join()
        .unwrap();
        t.push("sent");
        sleep(20 * MS);
        t.push("main");
        killall(&[a, b], None).unwrap();
        drop(tx);
        check(&t, &["sent", "a1", "a2", "a3", "main"]);
    })
}

// remote_04_chosen_receiver_killed.py, gevent 26.9.0:
// ['a-finally', 'a-killed', 'b1', 'b-finally', 'main']
// Documented difference (README, "Where the order of events differs",
// first and third items): the value sent to a, which had not run yet,
// passes to b as a unwinds, and b's wake-up joins the ready queue then,
// ahead of main's, which comes at a's death. In gevent the thread's put
// had not run yet when the kill was thrown; it wakes b only after main.
#[test]
fn x04_a_receiver_killed_after_a_value_was_sent_passes_it_on() {
    bounded(|| {
        let t = Log::default();
        let (tx, rx) = sylvan::mpsc::channel::<i32>();
        let rx = Rc::new(rx);
        let recv = |n: &'static str| {
            let (t, rx) = (t.clone(), rx.clone());
            move || {
                struct F(Log, &'static str);
                impl Drop for F {
                    fn drop(&mut self) {
                        self.0.push(format!("{}-finally", self.1));
                    }
                }
                let _f = F(t.clone(), n);
                let v = rx.recv().unwrap();
                t.push(format!("{n}{v}"));
            }
        };
        let a = spawn(recv("a"));
        let b = spawn(recv("b"));
        yield_now();
        let tx2 = tx.clone();
        std::thread::spawn(move || tx2.send(1).unwrap())
            .join()
            .unwrap();
        a.kill();
        t.push("a-killed");
        b.wait(Some(Duration::from_secs(1)));
        t.push("main");
        drop(tx);
        check(&t, &["a-finally", "b1", "b-finally", "a-killed", "main"]);
    })
}

thread_local! {
    static X03: Rc<AsyncResult<&'static str>> = Rc::new(AsyncResult::new());
}

// remote_03_main_waits_on_thread_only.py, gevent 26.9.0:
// ['loop-exit']
// (Main waits on a result that only another thread's callback will set:
// gevent's threadsafe callbacks do not keep the loop alive, nor does a
// sylvan `Handle`: "would block forever", as the README says.) Run on a
// fresh thread: `bounded`'s timer would count as a wake source.
#[test]
fn x03_a_handle_alone_does_not_keep_main_waiting() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let h = Handle::current();
        let other = std::thread::spawn(move || {
            std::thread::sleep(50 * MS);
            let _ = h.spawn(|| {
                X03.with(|r| {
                    let _ = r.set("v");
                })
            });
        });
        let ar = X03.with(|r| r.clone());
        let r = catch_unwind(AssertUnwindSafe(|| ar.get()));
        let t = match r {
            Ok(Ok(v)) => format!("got-{v}"),
            Ok(Err(_)) => "error".to_string(),
            Err(p) if msg(&*p).contains("would block forever") => "loop-exit".to_string(),
            Err(p) => format!("panic-{}", msg(&*p)),
        };
        other.join().unwrap();
        let _ = done_tx.send(t);
    });
    let t = done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("hung: main kept waiting");
    assert_eq!(t, "loop-exit");
}

// ================================================================ descriptors

fn pipe() -> (sylvan::os::Fd<std::io::PipeReader>, std::io::PipeWriter) {
    let (r, w) = std::io::pipe().unwrap();
    (sylvan::os::Fd::new(r).unwrap(), w)
}

fn read_str(mut r: impl Read) -> String {
    let mut buf = [0u8; 10];
    let n = r.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

// fd_01_two_readers_one_pipe.py, gevent 26.9.0:
// ['a-x', 'mid', 'b-y', 'main']
#[test]
fn fd01_two_readers_of_one_pipe_are_served_in_order() {
    bounded(|| {
        let t = Log::default();
        let (r, mut w) = pipe();
        let r = Rc::new(r);
        let reader = |n: &'static str| {
            let (t, r) = (t.clone(), r.clone());
            move || t.push(format!("{n}-{}", read_str(&*r)))
        };
        let a = spawn(reader("a"));
        let b = spawn(reader("b"));
        yield_now();
        w.write_all(b"x").unwrap();
        sleep(10 * MS);
        t.push("mid");
        w.write_all(b"y").unwrap();
        joinall(&[a, b], None);
        t.push("main");
        check(&t, &["a-x", "mid", "b-y", "main"]);
    })
}

// fd_02_read_timeout_then_data.py, gevent 26.9.0:
// ['ticker', 'timeout', 'write', 'got-x', 'main']
#[test]
fn fd02_read_timeout_then_data() {
    bounded(|| {
        let t = Log::default();
        let (r, mut w) = pipe();
        r.set_read_timeout(Some(20 * MS)).unwrap();
        let t1 = t.clone();
        let a = spawn(move || {
            let mut buf = [0u8; 10];
            match (&r).read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => t1.push("timeout"),
                other => t1.push(format!("unexpected-{other:?}")),
            }
            r.set_read_timeout(None).unwrap();
            t1.push(format!("got-{}", read_str(&r)));
        });
        let t2 = t.clone();
        let _ticks = spawn(move || {
            sleep(5 * MS);
            sleep(5 * MS);
            t2.push("ticker");
        });
        assert!(!a.wait(Some(40 * MS)));
        t.push("write");
        w.write_all(b"x").unwrap();
        a.join().unwrap();
        t.push("main");
        check(&t, &["ticker", "timeout", "write", "got-x", "main"]);
    })
}

// fd_03_reader_killed_next_gets.py, gevent 26.9.0:
// ['a-finally', 'killed', 'b-x', 'main']
#[test]
fn fd03_a_killed_reader_leaves_the_data_to_the_next() {
    bounded(|| {
        let t = Log::default();
        let (r, mut w) = pipe();
        let r = Rc::new(r);
        let (t1, r1) = (t.clone(), r.clone());
        let a = spawn(move || {
            struct F(Log);
            impl Drop for F {
                fn drop(&mut self) {
                    self.0.push("a-finally");
                }
            }
            let _f = F(t1.clone());
            t1.push(format!("a-{}", read_str(&*r1)));
        });
        yield_now();
        a.kill();
        t.push("killed");
        let t2 = t.clone();
        let b = spawn(move || t2.push(format!("b-{}", read_str(&*r))));
        yield_now();
        w.write_all(b"x").unwrap();
        b.join().unwrap();
        t.push("main");
        check(&t, &["a-finally", "killed", "b-x", "main"]);
    })
}

// fd_04_writer_parks_on_full_pipe.py, gevent 26.9.0:
// ['w-start', 'r-start', 'w-done', 'r-eof-1048576', 'main']
#[test]
fn fd04_a_writer_parks_on_a_full_pipe_until_the_reader_drains_it() {
    bounded(|| {
        let t = Log::default();
        let (r, w) = std::io::pipe().unwrap();
        let mut r = sylvan::os::Fd::new(r).unwrap();
        let mut w = sylvan::os::Fd::new(w).unwrap();
        let t1 = t.clone();
        let gw = spawn(move || {
            t1.push("w-start");
            w.write_all(&vec![b'z'; 1 << 20]).unwrap();
            t1.push("w-done");
            drop(w);
        });
        let t2 = t.clone();
        let gr = spawn(move || {
            t2.push("r-start");
            let mut got = 0;
            let mut buf = vec![0u8; 65536];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got += n;
            }
            t2.push(format!("r-eof-{got}"));
        });
        joinall(&[gw, gr], None);
        t.push("main");
        check(
            &t,
            &["w-start", "r-start", "w-done", "r-eof-1048576", "main"],
        );
    })
}

// fd_05_close_write_end_wakes_reader.py, gevent 26.9.0:
// ['closing', 'r-eof', 'main']
#[test]
fn fd05_closing_the_write_end_wakes_the_reader_with_eof() {
    bounded(|| {
        let t = Log::default();
        let (r, w) = pipe();
        let t1 = t.clone();
        let g = spawn(move || {
            let mut buf = [0u8; 10];
            let n = (&r).read(&mut buf).unwrap();
            t1.push(if n == 0 { "r-eof" } else { "r-data" });
        });
        yield_now();
        t.push("closing");
        drop(w);
        g.join().unwrap();
        t.push("main");
        check(&t, &["closing", "r-eof", "main"]);
    })
}

// fd_06_wait_child_order.py, gevent 26.9.0:
// ['main-runs', 'b-exit-0', 'a-exit-3', 'main']
#[test]
fn fd06_child_waits_end_in_exit_order() {
    bounded(|| {
        let t = Log::default();
        let waiter = |n: &'static str, cmd: &'static str| {
            let t = t.clone();
            move || {
                let mut c = std::process::Command::new("sh")
                    .args(["-c", cmd])
                    .spawn()
                    .unwrap();
                let st = sylvan::os::wait_child(&mut c).unwrap();
                t.push(format!("{n}-exit-{}", st.code().unwrap()));
            }
        };
        let a = spawn(waiter("a", "sleep 0.2; exit 3"));
        let b = spawn(waiter("b", "sleep 0.05"));
        yield_now();
        t.push("main-runs");
        joinall(&[a, b], None);
        t.push("main");
        check(&t, &["main-runs", "b-exit-0", "a-exit-3", "main"]);
    })
}

// fd_07_write_timeout_on_full_pipe.py, gevent 26.9.0:
// ['full', 'timeout', 'draining', 'wrote-1', 'main']
#[test]
fn fd07_write_timeout_on_a_full_pipe_then_room() {
    bounded(|| {
        let t = Log::default();
        let (mut r, w) = std::io::pipe().unwrap();
        let w = sylvan::os::Fd::new(w).unwrap();
        w.set_nonblocking(true);
        let mut n = 0;
        loop {
            match (&w).write(&[b'z'; 65536]) {
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        w.set_nonblocking(false);
        t.push("full");
        w.set_write_timeout(Some(20 * MS)).unwrap();
        let t1 = t.clone();
        let g = spawn(move || {
            match (&w).write(b"y") {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => t1.push("timeout"),
                other => t1.push(format!("unexpected-{other:?}")),
            }
            w.set_write_timeout(None).unwrap();
            let k = (&w).write(b"y").unwrap();
            t1.push(format!("wrote-{k}"));
        });
        assert!(!g.wait(Some(40 * MS)));
        t.push("draining");
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf).unwrap();
        g.join().unwrap();
        t.push("main");
        check(&t, &["full", "timeout", "draining", "wrote-1", "main"]);
    })
}

// fd_08_fork_greenlets_go_on_in_child.py, gevent 26.9.0 (the child's
// trace, then the parent's):
// ['child', 'g-woke', 'child-joined']
// ['parent', 'g-woke', 'parent-joined', 'child-status-0']
#[test]
fn fd08_a_greenlet_parked_at_a_fork_goes_on_in_both_processes() {
    in_child(
        "probes65::fd08_a_greenlet_parked_at_a_fork_goes_on_in_both_processes",
        "p65-fd08",
        || {
            let t = Log::default();
            let t1 = t.clone();
            let g = spawn(move || {
                sleep(20 * MS);
                t1.push("g-woke");
            });
            yield_now();
            let (mut r, w) = std::io::pipe().unwrap();
            let pid = crate::util::fork_child(|| {
                t.push("child");
                g.wait(None);
                t.push("child-joined");
                let mut w = &w;
                w.write_all(t.get().join(",").as_bytes()).unwrap();
                0
            });
            drop(w);
            t.push("parent");
            g.join().unwrap();
            t.push("parent-joined");
            let code = crate::util::reap(pid, Duration::from_secs(4));
            let mut child = String::new();
            r.read_to_string(&mut child).unwrap();
            t.push(format!("child-status-{code}"));
            assert_eq!(child, "child,g-woke,child-joined");
            check(&t, &["parent", "g-woke", "parent-joined", "child-status-0"]);
        },
    );
}

// fd_09_wait_child_already_exited.py, gevent 26.9.0:
// ['x', 'main-runs', 'b-exit-0', 'main']
// gevent's `Popen.wait` always waits for its loop (the child watcher's
// callback sets the result), so x and main run first. sylvan's
// `wait_child` tries `try_wait` first and returns without switching when
// the child has exited already: b-exit-0 comes before x. The README lists
// this difference ("Where the order of events differs from gevent's").
#[test]
fn fd09_waiting_for_a_child_that_already_exited() {
    bounded(|| {
        let t = Log::default();
        let tb = t.clone();
        let b = spawn(move || {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            std::thread::sleep(100 * MS);
            let st = sylvan::os::wait_child(&mut c).unwrap();
            tb.push(format!("b-exit-{}", st.code().unwrap()));
        });
        let tx = t.clone();
        let _x = spawn(move || tx.push("x"));
        yield_now();
        t.push("main-runs");
        b.join().unwrap();
        t.push("main");
        check(&t, &["b-exit-0", "x", "main-runs", "main"]);
    })
}

// fd_10_child_waiter_killed_then_wait_again.py, gevent 26.9.0:
// ['a-finally', 'a-killed', 'b-exit-3', 'main']
#[test]
fn fd10_a_killed_child_waiter_leaves_the_child_to_the_next() {
    bounded(|| {
        let t = Log::default();
        let child = Rc::new(RefCell::new(
            std::process::Command::new("sh")
                .args(["-c", "sleep 0.05; exit 3"])
                .spawn()
                .unwrap(),
        ));
        let (t1, c1) = (t.clone(), child.clone());
        let a = spawn(move || {
            struct F(Log);
            impl Drop for F {
                fn drop(&mut self) {
                    self.0.push("a-finally");
                }
            }
            let _f = F(t1.clone());
            let st = sylvan::os::wait_child(&mut c1.borrow_mut()).unwrap();
            t1.push(format!("a-exit-{}", st.code().unwrap()));
        });
        yield_now();
        a.kill();
        t.push("a-killed");
        let (t2, c2) = (t.clone(), child.clone());
        spawn(move || {
            let st = sylvan::os::wait_child(&mut c2.borrow_mut()).unwrap();
            t2.push(format!("b-exit-{}", st.code().unwrap()));
        })
        .join()
        .unwrap();
        t.push("main");
        check(&t, &["a-finally", "a-killed", "b-exit-3", "main"]);
    })
}

// ================================================================ signals

// signal_01_handler_vs_ready.py, gevent 26.9.0:
// ['raised', 'x', 'y', 'main-sleep0', 'h', 'main']
#[test]
fn sg01_the_handler_runs_after_the_ready_greenlets() {
    in_child(
        "probes65::sg01_the_handler_runs_after_the_ready_greenlets",
        "p65-sg01",
        || {
            let t = Log::default();
            let th = t.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || th.push("h")).unwrap();
            let tx = t.clone();
            spawn(move || tx.push("x"));
            raise(libc::SIGUSR1);
            t.push("raised");
            let ty = t.clone();
            spawn(move || ty.push("y"));
            yield_now();
            t.push("main-sleep0");
            sleep(20 * MS);
            t.push("main");
            check(&t, &["raised", "x", "y", "main-sleep0", "h", "main"]);
        },
    );
}

// signal_02_two_raises_coalesce.py, gevent 26.9.0:
// ['h', 'main']
#[test]
fn sg02_two_signals_before_the_hub_runs_coalesce() {
    in_child(
        "probes65::sg02_two_signals_before_the_hub_runs_coalesce",
        "p65-sg02",
        || {
            let t = Log::default();
            let th = t.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || th.push("h")).unwrap();
            raise(libc::SIGUSR1);
            raise(libc::SIGUSR1);
            sleep(20 * MS);
            t.push("main");
            check(&t, &["h", "main"]);
        },
    );
}

// signal_03_two_registrations.py, gevent 26.9.0:
// ['h1', 'h2', 'after-first', 'h2', 'main']
#[test]
fn sg03_two_registrations_run_in_registration_order() {
    in_child(
        "probes65::sg03_two_registrations_run_in_registration_order",
        "p65-sg03",
        || {
            let t = Log::default();
            let (t1, t2) = (t.clone(), t.clone());
            let h1 = sylvan::signal(libc::SIGUSR1, move || t1.push("h1")).unwrap();
            let _h2 = sylvan::signal(libc::SIGUSR1, move || t2.push("h2")).unwrap();
            raise(libc::SIGUSR1);
            sleep(20 * MS);
            t.push("after-first");
            h1.cancel();
            raise(libc::SIGUSR1);
            sleep(20 * MS);
            t.push("main");
            check(&t, &["h1", "h2", "after-first", "h2", "main"]);
        },
    );
}

// signal_04_handler_blocks_second_signal.py, gevent 26.9.0:
// ['h1-start', 'main-raise2', 'h2-start', 'h1-end', 'h2-end', 'main']
#[test]
fn sg04_a_second_signal_runs_a_second_handler_alongside() {
    in_child(
        "probes65::sg04_a_second_signal_runs_a_second_handler_alongside",
        "p65-sg04",
        || {
            let t = Log::default();
            let n = Rc::new(Cell::new(0));
            let th = t.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                n.set(n.get() + 1);
                let k = n.get();
                th.push(format!("h{k}-start"));
                sleep(30 * MS);
                th.push(format!("h{k}-end"));
            })
            .unwrap();
            raise(libc::SIGUSR1);
            sleep(10 * MS);
            t.push("main-raise2");
            raise(libc::SIGUSR1);
            sleep(60 * MS);
            t.push("main");
            check(
                &t,
                &[
                    "h1-start",
                    "main-raise2",
                    "h2-start",
                    "h1-end",
                    "h2-end",
                    "main",
                ],
            );
        },
    );
}

// signal_05_cancel_restores_disposition.py, gevent 26.9.0: printed
// ['h', 'cancelled'], then the second SIGUSR2 killed the process (exit
// status 140): libev puts back SIG_DFL when its last watcher stops.
// Documented difference: `sylvan::signal` restores the disposition the
// signal had before (here SIG_IGN), so the process survives.
#[test]
fn sg05_cancel_puts_back_the_previous_disposition() {
    in_child(
        "probes65::sg05_cancel_puts_back_the_previous_disposition",
        "p65-sg05",
        || {
            // SAFETY: ignores SIGUSR2 in this child process.
            unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
            let t = Log::default();
            let th = t.clone();
            let h = sylvan::signal(libc::SIGUSR2, move || th.push("h")).unwrap();
            raise(libc::SIGUSR2);
            sleep(20 * MS);
            drop(h);
            t.push("cancelled");
            raise(libc::SIGUSR2);
            sleep(20 * MS);
            t.push("survived");
            check(&t, &["h", "cancelled", "survived"]);
        },
    );
}

// signal_06_handler_while_main_waits_on_thread.py, gevent 26.9.0:
// ['h', 'main-r', 'main']
#[test]
fn sg06_a_signal_sent_by_a_pool_job_is_handled_while_main_waits() {
    in_child(
        "probes65::sg06_a_signal_sent_by_a_pool_job_is_handled_while_main_waits",
        "p65-sg06",
        || {
            let t = Log::default();
            let th = t.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || th.push("h")).unwrap();
            let r = spawn_blocking(|| {
                raise(libc::SIGUSR1);
                std::thread::sleep(50 * MS);
                "r"
            });
            t.push(format!("main-{r}"));
            sleep(10 * MS);
            t.push("main");
            check(&t, &["h", "main-r", "main"]);
        },
    );
}

// signal_07_handler_raises_in_main.py, gevent 26.9.0 (and the exception
// printed on stderr):
// ['x', 'h', 'main-caught-boom', 'main']
#[test]
fn sg07_a_handler_panic_is_raised_in_main() {
    in_child(
        "probes65::sg07_a_handler_panic_is_raised_in_main",
        "p65-sg07",
        || {
            quiet();
            let t = Log::default();
            let th = t.clone();
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                th.push("h");
                panic!("boom");
            })
            .unwrap();
            let tx = t.clone();
            spawn(move || tx.push("x"));
            raise(libc::SIGUSR1);
            match catch_unwind(AssertUnwindSafe(|| sleep(50 * MS))) {
                Ok(()) => t.push("main-slept"),
                Err(p) => t.push(format!("main-caught-{}", msg(&*p))),
            }
            sleep(10 * MS);
            t.push("main");
            check(&t, &["x", "h", "main-caught-boom", "main"]);
        },
    );
}

// ================================================================ greenlet-locals

sylvan::greenlet_local! {
    static LOC: RefCell<Option<String>> = RefCell::new(None);
    static NOISY1: RefCell<Option<Noisy>> = RefCell::new(None);
    static NOISY2: RefCell<Option<Noisy>> = RefCell::new(None);
}

fn loc_get() -> String {
    LOC.with(|l| l.borrow().clone().unwrap_or_else(|| "none".into()))
}

fn loc_set(v: &str) {
    LOC.with(|l| *l.borrow_mut() = Some(v.into()));
}

/// Logs `drop-<name>` when dropped: a Python object with `__del__`.
struct Noisy(Log, &'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        self.0.push(format!("drop-{}", self.1));
    }
}

// local_01_not_inherited_each_own.py, gevent 26.9.0:
// ['a-sees-none', 'b-sees-none', 'a-keeps-a', 'b-keeps-b',
//  'a-child-sees-none', 'b-child-sees-none', 'main-main']
#[test]
fn lo01_values_are_not_inherited_and_each_keeps_its_own() {
    bounded(|| {
        let t = Log::default();
        loc_set("main");
        let child = |n: &'static str| {
            let t = t.clone();
            move || {
                t.push(format!("{n}-sees-{}", loc_get()));
                loc_set(n);
                yield_now();
                t.push(format!("{n}-keeps-{}", loc_get()));
                let t2 = t.clone();
                spawn(move || t2.push(format!("{n}-child-sees-{}", loc_get())))
                    .join()
                    .unwrap();
            }
        };
        let a = spawn(child("a"));
        let b = spawn(child("b"));
        joinall(&[a, b], None);
        t.push(format!("main-{}", loc_get()));
        check(
            &t,
            &[
                "a-sees-none",
                "b-sees-none",
                "a-keeps-a",
                "b-keeps-b",
                "a-child-sees-none",
                "b-child-sees-none",
                "main-main",
            ],
        );
    })
}

// local_02_value_dropped_when.py, gevent 26.9.0:
// ['r-end', 'r-joined', 'drop-r', 'k-killed', 'r-handle-dropped',
//  'k-handle-dropped', 'drop-k', 'main']
// Documented difference (README, Coordination: "dropped in that greenlet
// when it ends, whether it returned, panicked or was killed"): sylvan
// drops a value as its greenlet ends; gevent's go when the greenlet object
// is freed (whenever the hub lets go of it, here after a later switch),
// not when the last handle goes.
#[test]
fn lo02_a_value_is_dropped_as_its_greenlet_ends() {
    bounded(|| {
        let t = Log::default();
        let body = |n: &'static str, d: Duration| {
            let t = t.clone();
            move || {
                NOISY1.with(|v| *v.borrow_mut() = Some(Noisy(t.clone(), n)));
                sleep(d);
                t.push(format!("{n}-end"));
            }
        };
        let r = spawn(body("r", 10 * MS));
        let k = spawn(body("k", Duration::from_secs(10)));
        r.wait(None);
        t.push("r-joined");
        k.kill();
        t.push("k-killed");
        drop(r);
        t.push("r-handle-dropped");
        drop(k);
        t.push("k-handle-dropped");
        sleep(10 * MS);
        t.push("main");
        check(
            &t,
            &[
                "r-end",
                "drop-r",
                "r-joined",
                "drop-k",
                "k-killed",
                "r-handle-dropped",
                "k-handle-dropped",
                "main",
            ],
        );
    })
}

// local_03_drop_order_two_locals.py, gevent 26.9.0:
// ['drop-l2', 'drop-l1', 'main']
#[test]
fn lo03_values_are_dropped_in_the_order_they_were_made() {
    bounded(|| {
        let t = Log::default();
        let t1 = t.clone();
        let g = spawn(move || {
            NOISY2.with(|v| *v.borrow_mut() = Some(Noisy(t1.clone(), "l2")));
            NOISY1.with(|v| *v.borrow_mut() = Some(Noisy(t1.clone(), "l1")));
        });
        g.join().unwrap();
        sleep(10 * MS);
        t.push("main");
        check(&t, &["drop-l2", "drop-l1", "main"]);
    })
}

// local_04_link_callbacks_see_fresh.py, gevent 26.9.0:
// ['cb1-sees-none', 'cb2-sees-none', 'main-sees-none']
#[test]
fn lo04_link_callbacks_see_fresh_values() {
    bounded(|| {
        let t = Log::default();
        let g = spawn(|| loc_set("g"));
        for n in ["cb1", "cb2"] {
            let t = t.clone();
            g.link(move |_| {
                t.push(format!("{n}-sees-{}", loc_get()));
                loc_set(n);
            });
        }
        g.join().unwrap();
        sleep(10 * MS);
        t.push(format!("main-sees-{}", loc_get()));
        check(&t, &["cb1-sees-none", "cb2-sees-none", "main-sees-none"]);
    })
}

// ================================================================ timers

// time_01_timer_after_thread_stall.py, gevent 26.9.0:
// ['b10', 'a20', 'main']
// gevent counts a new timer's delay from the loop's cached time, which a
// 30 ms `time.sleep` left stale: b (10 ms, armed after the stall) is due
// at 10 ms after the stall began, before a (20 ms). sylvan counts from
// `Instant::now()`: a is due first (listed in the README's differences).
#[test]
fn tm01_timer_armed_after_a_stall() {
    bounded(|| {
        let t = Log::default();
        let (ta, tb) = (t.clone(), t.clone());
        let a = spawn_later(20 * MS, move || ta.push("a20"));
        std::thread::sleep(30 * MS);
        let b = spawn_later(10 * MS, move || tb.push("b10"));
        joinall(&[a, b], None);
        t.push("main");
        check(&t, &["a20", "b10", "main"]);
    })
}

// time_02_zero_timeout_and_yields.py, gevent 26.9.0:
// ['x0', 'a', 'x1', 'b', 'x2', 'c', 'timeout', 'main']
#[test]
fn tm02_a_zero_timeout_fires_at_the_first_real_wait() {
    bounded(|| {
        let t = Log::default();
        let tx = t.clone();
        let x = spawn(move || {
            for i in 0..3 {
                tx.push(format!("x{i}"));
                yield_now();
            }
        });
        let tg = t.clone();
        spawn(move || {
            let r = with_timeout(Duration::ZERO, || {
                tg.push("a");
                yield_now();
                tg.push("b");
                yield_now();
                tg.push("c");
                sleep(10 * MS);
                tg.push("d");
            });
            if r.is_err() {
                tg.push("timeout");
            }
        })
        .join()
        .unwrap();
        x.join().unwrap();
        t.push("main");
        check(&t, &["x0", "a", "x1", "b", "x2", "c", "timeout", "main"]);
    })
}

// time_03_idle_with_timer_pending.py, gevent 26.9.0:
// ['g-start', 'g-idle', 'h-woke', 'main']
#[test]
fn tm03_idle_returns_while_a_timer_is_pending() {
    bounded(|| {
        let t = Log::default();
        let th = t.clone();
        let h = spawn(move || {
            sleep(20 * MS);
            th.push("h-woke");
        });
        let tg = t.clone();
        let i = spawn(move || {
            tg.push("g-start");
            idle();
            tg.push("g-idle");
        });
        joinall(&[h, i], None);
        t.push("main");
        check(&t, &["g-start", "g-idle", "h-woke", "main"]);
    })
}

// time_04_idle_with_due_timer.py, gevent 26.9.0:
// ['y', 'later0', 'main-idle', 'main']
#[test]
fn tm04_idle_waits_for_a_due_timer_too() {
    bounded(|| {
        let t = Log::default();
        let (tl, ty) = (t.clone(), t.clone());
        let _l = spawn_later(Duration::ZERO, move || tl.push("later0"));
        let _y = spawn(move || ty.push("y"));
        idle();
        t.push("main-idle");
        sleep(10 * MS);
        t.push("main");
        check(&t, &["y", "later0", "main-idle", "main"]);
    })
}

// time_05_timeout_and_sleep_same_delay.py, gevent 26.9.0:
// ['slept', 'main']
// gevent arms both timers from one cached loop time, so they are due at
// the same instant, and the sleep's wake-up runs first: the greenlet leaves
// the `with` and cancels the timeout. sylvan's timeout, armed a moment
// earlier, is due first (listed in the README's differences).
#[test]
fn tm05_timeout_and_sleep_of_the_same_delay() {
    bounded(|| {
        let t = Log::default();
        let tg = t.clone();
        spawn(move || {
            let r = with_timeout(10 * MS, || sleep(10 * MS));
            tg.push(if r.is_ok() { "slept" } else { "timeout" });
        })
        .join()
        .unwrap();
        t.push("main");
        check(&t, &["timeout", "main"]);
    })
}

// time_06_sleep_in_link_callback_vs_timer.py, gevent 26.9.0:
// ['g', 'cb-start', 'main-joined', 's-woke', 'cb-end', 'main']
// Documented difference (README, The model: "`join` waits for callbacks
// that borrow the outcome"; `Greenlet::join`'s docs): main's join returns
// once the sleeping callback is done; gevent's returns while it sleeps.
#[test]
fn tm06_join_waits_for_a_link_callback_that_sleeps() {
    bounded(|| {
        let t = Log::default();
        let tg = t.clone();
        let g = spawn(move || tg.push("g"));
        let tc = t.clone();
        g.link(move |_| {
            tc.push("cb-start");
            sleep(10 * MS);
            tc.push("cb-end");
        });
        let ts = t.clone();
        let _s = spawn(move || {
            sleep(5 * MS);
            ts.push("s-woke");
        });
        g.join().unwrap();
        t.push("main-joined");
        sleep(30 * MS);
        t.push("main");
        check(
            &t,
            &["g", "cb-start", "s-woke", "cb-end", "main-joined", "main"],
        );
    })
}

// time_07_idle_while_a_thread_job_runs.py, gevent 26.9.0:
// ['main-idle', 'g-r', 'main']
#[test]
fn tm07_idle_returns_while_a_thread_job_runs() {
    bounded(|| {
        let t = Log::default();
        let gate = Gate::default();
        let (t1, g1) = (t.clone(), gate.clone());
        let g = spawn(move || {
            let r = spawn_blocking(move || {
                g1.wait();
                "r"
            });
            t1.push(format!("g-{r}"));
        });
        idle();
        t.push("main-idle");
        gate.open();
        g.join().unwrap();
        t.push("main");
        check(&t, &["main-idle", "g-r", "main"]);
    })
}
