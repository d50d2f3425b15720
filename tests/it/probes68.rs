//! Hostile review of two commits:
//! * e9418f5: a put on a full bounded queue and a get with no putter
//!   waiting go straight to the wait (`put_cold` / `get_cold` shortcuts;
//!   `WaitList::push` inlined). Attacked with every queue kind (`Queue`
//!   bounded and unbounded, `LifoQueue`, `PriorityQueue`, `JoinableQueue`
//!   and its unfinished count, `Channel`, `Queue::bounded(0)`): putters and
//!   getters in FIFO order observed step by step (`len`, `is_full`,
//!   `getters`, `putters`), thousands of waiters, peekers, `close` with
//!   waiters parked, `ZERO` and tiny timeouts, kills of chosen and waiting
//!   putters and getters, getters outrun and re-queued, puts and gets made
//!   by destructors while a greenlet unwinds (kill, timeout, panic), and
//!   iteration. The shortcuts decide as `try_put_cold` / `try_get_cold`
//!   did: no defect found (q01..q24, regression guards).
//! * c74e9ff: a `spawn_blocking` job that panics after its greenlet stopped
//!   waiting is reported by the pool thread. Attacked in re-executed
//!   children (stderr is checked): killed, timed-out and hub-thread-exited
//!   callers, a caller that receives the panic (reported once as its
//!   failure, or not at all when caught), main as the caller (std's hook
//!   prints once), nested inline calls, a payload whose `Drop` panics, an
//!   `Ok` value whose `Drop` panics after its caller left, a `log` logger,
//!   `RUST_BACKTRACE`, and 16 orphaned panics at once (whole lines).
//!
//! 43 tests; 4 BUGs found, fixed since: t03, t04, t17 (one cause: a
//! job's panic that reached the caller's channel before the caller was
//! killed, its hub thread exited or its timeout fired was dropped with the
//! receiver, reported nowhere; the caller's end now reports it when
//! dropped); t18 (an orphaned job's own uncaught `Timeout` was reported as
//! a panic, then again by its payload's drop; kill and timeout payloads
//! are now only dropped).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use sylvan::sync::{
    Channel, Event, JoinableQueue, LifoQueue, PriorityQueue, Queue, TryGetError, TryPutError,
};
use sylvan::{Greenlet, spawn, spawn_blocking, with_timeout, yield_now};

use crate::util::{
    DropFlag, Gate, Log, ORPHAN, block_until, bounded, child_texts, count, drain_pool,
    limited_child_texts, quiet, yield_until,
};

const MS: Duration = Duration::from_millis(1);

// ================================================================ helpers

/// A job for `g`'s caller: opens `started`, waits for `gate`, panics with
/// `msg`.
fn gated_panic(
    started: &Gate,
    gate: &Gate,
    msg: &'static str,
) -> impl FnOnce() -> u32 + Send + 'static {
    let (started, gate) = (started.clone(), gate.clone());
    move || {
        started.open();
        gate.wait();
        panic!("{msg}")
    }
}

/// A greenlet that calls `spawn_blocking(job)`.
fn caller(job: impl FnOnce() -> u32 + Send + 'static) -> Greenlet<u32> {
    spawn(move || spawn_blocking(job))
}

// ================================================================ c74e9ff

/// A killed caller, the job panicking after the kill: one report, by the
/// pool thread, with the panic's location; the greenlet's own death is a
/// kill (nothing reported for it).
#[test]
fn t01_killed_caller_one_report_with_location() {
    let Some((out, err)) = child_texts(
        "probes68::t01_killed_caller_one_report_with_location",
        "p68-t01",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let g = caller(gated_panic(&started, &gate, "t01-boom"));
            yield_now();
            started.wait();
            g.kill();
            assert!(g.join().unwrap_err().is_killed());
            gate.open();
            drain_pool();
            println!("T01 DONE");
        },
    ) else {
        return;
    };
    assert!(out.contains("T01 DONE"), "{out}");
    assert_eq!(count(&err, "t01-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
    let line = err.lines().find(|l| l.contains("t01-boom")).unwrap();
    assert!(
        line.starts_with("sylvan: a spawn_blocking job panicked at ")
            && line.contains("probes68.rs:"),
        "{line}"
    );
}

/// A caller whose `with_timeout` expired: the greenlet sees its `Elapsed`
/// and goes on; the job's later panic is reported once.
#[test]
fn t02_timed_out_caller_goes_on_one_report() {
    let Some((out, err)) = child_texts(
        "probes68::t02_timed_out_caller_goes_on_one_report",
        "p68-t02",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let job = gated_panic(&started, &gate, "t02-boom");
            let g = spawn(move || {
                let r = with_timeout(10 * MS, || spawn_blocking(job));
                assert!(r.is_err());
                "went on"
            });
            // The job starts before the hub runs again (so before the
            // timeout can fire): a job not started when its caller stops
            // waiting is not run at all.
            yield_now();
            started.wait();
            assert_eq!(g.join().unwrap(), "went on");
            gate.open();
            drain_pool();
            println!("T02 DONE");
        },
    ) else {
        return;
    };
    assert!(out.contains("T02 DONE"), "{out}");
    assert_eq!(count(&err, "t02-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
}

/// The job panics and its result reaches the caller's channel; the caller
/// is killed before it runs to take it. The panic was the job's, nobody
/// took it: it must be reported once, as when the kill came first (t01).
/// It is reported nowhere: the send succeeded, so the pool thread leaves
/// it to the caller, whose unwinding receiver drops the payload unread.
#[test]
fn t03_panic_landed_before_the_kill_is_reported_once() {
    let Some((out, err)) = child_texts(
        "probes68::t03_panic_landed_before_the_kill_is_reported_once",
        "p68-t03",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let g = caller(gated_panic(&started, &gate, "t03-boom"));
            // Queued behind the panicking job on the only pool thread: it
            // runs once that job's result was sent.
            let landed = Arc::new(AtomicBool::new(false));
            let l2 = landed.clone();
            let g2 = spawn(move || spawn_blocking(move || l2.store(true, Ordering::SeqCst)));
            yield_now();
            started.wait();
            gate.open();
            block_until("the panic landed", &landed);
            g.kill();
            println!("T03 killed={}", g.join().unwrap_err().is_killed());
            g2.join().unwrap();
            drain_pool();
        },
    ) else {
        return;
    };
    assert!(out.contains("T03 killed=true"), "{out}");
    assert_eq!(count(&err, "t03-boom"), 1, "stderr:\n{err}");
}

/// As t03, the caller's hub thread exiting instead of a kill.
#[test]
fn t04_panic_landed_before_the_thread_exit_is_reported_once() {
    let Some((out, err)) = limited_child_texts(
        "probes68::t04_panic_landed_before_the_thread_exit_is_reported_once",
        "p68-t04",
        &[],
        Duration::from_secs(10),
        || {
            sylvan::set_blocking_threads(1);
            std::thread::spawn(|| {
                let (started, gate) = (Gate::default(), Gate::default());
                let g = caller(gated_panic(&started, &gate, "t04-boom"));
                let landed = Arc::new(AtomicBool::new(false));
                let l2 = landed.clone();
                let g2 = spawn(move || spawn_blocking(move || l2.store(true, Ordering::SeqCst)));
                yield_now();
                started.wait();
                gate.open();
                block_until("the panic landed", &landed);
                drop((g, g2));
            })
            .join()
            .unwrap();
            drain_pool();
            println!("T04 DONE");
        },
    ) else {
        return;
    };
    assert!(out.contains("T04 DONE"), "{out}");
    assert_eq!(count(&err, "t04-boom"), 1, "stderr:\n{err}");
}

/// As t03, the caller's `with_timeout` expiring in the same turn as the
/// result lands (the hub was stalled past the deadline after the send):
/// the timeout wins, and the landed panic is dropped with the receiver,
/// reported nowhere. Either way (timeout or panic first) it must be
/// reported once.
#[test]
fn t17_panic_landed_in_the_turn_of_the_timeout_is_reported_once() {
    let Some((out, err)) = child_texts(
        "probes68::t17_panic_landed_in_the_turn_of_the_timeout_is_reported_once",
        "p68-t17",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let job = gated_panic(&started, &gate, "t17-boom");
            let g = spawn(move || with_timeout(5 * MS, || spawn_blocking(job)).is_err());
            let landed = Arc::new(AtomicBool::new(false));
            let l2 = landed.clone();
            let g2 = spawn(move || spawn_blocking(move || l2.store(true, Ordering::SeqCst)));
            yield_now();
            started.wait();
            gate.open();
            block_until("the panic landed", &landed);
            std::thread::sleep(10 * MS);
            println!("T17 {:?}", g.join().map_err(|e| e.is_panic()));
            g2.join().unwrap();
            drain_pool();
        },
    ) else {
        return;
    };
    assert!(out.contains("T17 "), "{out}");
    assert_eq!(count(&err, "t17-boom"), 1, "stdout:\n{out}\nstderr:\n{err}");
}

/// An orphaned job unwound by a `Timeout` it armed itself on the pool
/// thread and did not catch: that is not a panic. A greenlet caller that
/// receives it ends "by an expired timeout", reported once; orphaned, it
/// is reported twice, once as "a spawn_blocking job panicked ...:
/// Box<dyn Any>" and once by the payload's drop ("a Timeout expired and
/// nothing caught it"). `report_orphaned_panic` does not tell sylvan's
/// unwind payloads from panics (DESIGN: sylvan's own `catch_unwind`s
/// report them as kills or timeouts, never as panics).
#[test]
fn t18_orphan_unwound_by_its_own_timeout_is_not_a_panic() {
    let Some((_, err)) = child_texts(
        "probes68::t18_orphan_unwound_by_its_own_timeout_is_not_a_panic",
        "p68-t18",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let (s2, g2) = (started.clone(), gate.clone());
            let g = caller(move || {
                s2.open();
                g2.wait();
                let _t = sylvan::Timeout::start(MS);
                sylvan::sleep(Duration::from_secs(1));
                5
            });
            yield_now();
            started.wait();
            g.kill();
            gate.open();
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "panicked"), 0, "stderr:\n{err}");
    assert_eq!(count(&err, "Box<dyn Any>"), 0, "stderr:\n{err}");
    assert_eq!(count(&err, "Timeout expired"), 1, "stderr:\n{err}");
}

/// The same job with its caller still waiting: the greenlet ends by an
/// expired timeout, reported once as such (a guard for t18's fix).
#[test]
fn t19_received_job_timeout_ends_the_caller_as_timed_out() {
    let Some((_, err)) = child_texts(
        "probes68::t19_received_job_timeout_ends_the_caller_as_timed_out",
        "p68-t19",
        || {
            let g = spawn(|| {
                spawn_blocking(|| {
                    let _t = sylvan::Timeout::start(MS);
                    sylvan::sleep(Duration::from_secs(1));
                    5u32
                })
            });
            assert!(matches!(g.join(), Err(sylvan::Error::TimedOut)));
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "expired timeout"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, "panicked"), 0, "stderr:\n{err}");
}

/// The hub thread of the caller exits while the job still runs (teardown
/// kills the caller); the job's later panic is reported once.
#[test]
fn t05_hub_thread_exited_before_the_panic_one_report() {
    let Some((out, err)) = limited_child_texts(
        "probes68::t05_hub_thread_exited_before_the_panic_one_report",
        "p68-t05",
        &[],
        Duration::from_secs(10),
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let (s2, g2) = (started.clone(), gate.clone());
            std::thread::spawn(move || {
                let g = caller(gated_panic(&s2, &g2, "t05-boom"));
                yield_now();
                s2.wait();
                drop(g);
            })
            .join()
            .unwrap();
            gate.open();
            drain_pool();
            println!("T05 DONE");
        },
    ) else {
        return;
    };
    assert!(out.contains("T05 DONE"), "{out}");
    assert_eq!(count(&err, "t05-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
}

/// A caller that receives the panic and does not catch it: reported once,
/// as the greenlet's failure, not as an orphan.
#[test]
fn t06_received_uncaught_reported_once_as_the_failure() {
    let Some((_, err)) = child_texts(
        "probes68::t06_received_uncaught_reported_once_as_the_failure",
        "p68-t06",
        || {
            let g = spawn(|| spawn_blocking(|| -> u32 { panic!("t06-boom") }));
            assert!(g.join().unwrap_err().is_panic());
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "t06-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 0, "stderr:\n{err}");
    assert_eq!(count(&err, "sylvan-blocking"), 0, "stderr:\n{err}");
}

/// A caller that catches the job's panic: nothing on stderr at all.
#[test]
fn t07_received_and_caught_reported_nowhere() {
    let Some((_, err)) = child_texts(
        "probes68::t07_received_and_caught_reported_nowhere",
        "p68-t07",
        || {
            let g = spawn(|| {
                catch_unwind(|| spawn_blocking(|| -> u32 { panic!("t07-boom") })).is_err()
            });
            assert!(g.join().unwrap());
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "t07-boom"), 0, "stderr:\n{err}");
}

/// A caller that catches the job's panic and later panics itself: its
/// failure is reported once, with its own message and location, not the
/// job's (recorded for the caught panic).
#[test]
fn t16_caught_job_panic_then_own_panic_reports_the_own() {
    let Some((out, err)) = child_texts(
        "probes68::t16_caught_job_panic_then_own_panic_reports_the_own",
        "p68-t16",
        || {
            let g = spawn(|| -> u32 {
                let r = catch_unwind(|| spawn_blocking(|| -> u32 { panic!("t16-first") }));
                assert!(r.is_err());
                println!("T16AT {}", line!() + 1);
                panic!("t16-second")
            });
            assert!(g.join().unwrap_err().is_panic());
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "t16-first"), 0, "stderr:\n{err}");
    assert_eq!(count(&err, "t16-second"), 1, "stderr:\n{err}");
    let line = out.split_once("T16AT ").unwrap().1.lines().next().unwrap();
    let me = format!("probes68.rs:{line}:");
    assert!(
        err.contains(&me),
        "location of the second panic ({me}) missing:\n{err}"
    );
}

/// Main (not a greenlet) as the caller, inside `with_timeout`: std's hook
/// prints the job's panic once on the pool thread; no orphan report.
#[test]
fn t08_main_caller_timed_out_std_prints_once() {
    let Some((_, err)) = child_texts(
        "probes68::t08_main_caller_timed_out_std_prints_once",
        "p68-t08",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let job = gated_panic(&started, &gate, "t08-boom");
            // Run by the hub once main parks for the job: blocks the
            // thread until the job starts, so the timeout fires only then
            // (a job not started when its caller stops waiting is not run).
            let s2 = started.clone();
            spawn(move || s2.wait());
            assert!(with_timeout(10 * MS, || spawn_blocking(job)).is_err());
            started.wait();
            gate.open();
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "t08-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 0, "stderr:\n{err}");
    let std_lines = err
        .lines()
        .filter(|l| l.starts_with("thread 'sylvan-blocking'") && l.contains(" panicked at "))
        .count();
    assert_eq!(std_lines, 1, "stderr:\n{err}");
}

/// Main receiving the panic (and catching it): std's hook printed it once.
#[test]
fn t09_main_caller_receives_std_prints_once() {
    let Some((_, err)) = child_texts(
        "probes68::t09_main_caller_receives_std_prints_once",
        "p68-t09",
        || {
            let r = catch_unwind(|| spawn_blocking(|| -> u32 { panic!("t09-boom") }));
            assert!(r.is_err());
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "t09-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 0, "stderr:\n{err}");
}

/// A nested `spawn_blocking` (run inline on the pool thread) panics after
/// the greenlet timed out: one report, at the inner closure's line.
#[test]
fn t10_nested_inline_panic_of_an_orphan_one_report() {
    let Some((_, err)) = child_texts(
        "probes68::t10_nested_inline_panic_of_an_orphan_one_report",
        "p68-t10",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let inner = gated_panic(&started, &gate, "t10-boom");
            let g = spawn(move || {
                with_timeout(10 * MS, || spawn_blocking(move || spawn_blocking(inner))).is_err()
            });
            // Started before the timeout can fire (see t02).
            yield_now();
            started.wait();
            assert!(g.join().unwrap());
            started.wait();
            gate.open();
            drain_pool();
        },
    ) else {
        return;
    };
    assert_eq!(count(&err, "t10-boom"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
}

/// Panics when dropped.
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// An orphaned panic whose payload's `Drop` panics: the job's panic is
/// reported once, the drop's panic does not abort or lose the pool thread
/// (std's hook prints it once), and the pool still works.
#[test]
fn t11_orphan_payload_whose_drop_panics() {
    let Some((out, err)) = child_texts(
        "probes68::t11_orphan_payload_whose_drop_panics",
        "p68-t11",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let (s2, g2) = (started.clone(), gate.clone());
            let g = caller(move || {
                s2.open();
                g2.wait();
                std::panic::panic_any(Bomb("t11-payload-drop"))
            });
            yield_now();
            started.wait();
            g.kill();
            gate.open();
            drain_pool();
            drain_pool();
            println!("T11 DONE");
        },
    ) else {
        return;
    };
    assert!(out.contains("T11 DONE"), "{out}");
    assert_eq!(count(&err, ORPHAN), 1, "stderr:\n{err}");
    assert_eq!(count(&err, "t11-payload-drop"), 1, "stderr:\n{err}");
}

/// A job whose `Ok` value panics when dropped, after its caller timed out:
/// the value's drop panic is printed once (not as an orphaned job panic),
/// and the pool survives it.
#[test]
fn t12_orphan_ok_value_whose_drop_panics() {
    let Some((out, err)) = child_texts(
        "probes68::t12_orphan_ok_value_whose_drop_panics",
        "p68-t12",
        || {
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let (s2, g2) = (started.clone(), gate.clone());
            let g = spawn(move || {
                with_timeout(10 * MS, || {
                    spawn_blocking(move || {
                        s2.open();
                        g2.wait();
                        Bomb("t12-ok-drop")
                    })
                })
                .is_err()
            });
            // Started before the timeout can fire (see t02).
            yield_now();
            started.wait();
            assert!(g.join().unwrap());
            gate.open();
            drain_pool();
            println!("T12 DONE");
        },
    ) else {
        return;
    };
    assert!(out.contains("T12 DONE"), "{out}");
    assert_eq!(count(&err, "t12-ok-drop"), 1, "stderr:\n{err}");
    assert_eq!(count(&err, ORPHAN), 0, "stderr:\n{err}");
}

/// Records what reaches `log`.
struct Recorder(StdMutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {} {}", r.target(), r.level(), r.args()));
    }
    fn flush(&self) {}
}

/// With a logger installed, the orphan report goes through `log` (target
/// `sylvan`, error level), once, and not to stderr.
#[test]
fn t13_orphan_report_goes_through_log() {
    static RECORDER: Recorder = Recorder(StdMutex::new(Vec::new()));
    let Some((out, err)) = child_texts(
        "probes68::t13_orphan_report_goes_through_log",
        "p68-t13",
        || {
            log::set_logger(&RECORDER).unwrap();
            log::set_max_level(log::LevelFilter::Trace);
            sylvan::set_blocking_threads(1);
            let (started, gate) = (Gate::default(), Gate::default());
            let g = caller(gated_panic(&started, &gate, "t13-boom"));
            yield_now();
            started.wait();
            g.kill();
            gate.open();
            drain_pool();
            for line in RECORDER.0.lock().unwrap().iter() {
                println!("LOGGED {}", line.replace('\n', " | "));
            }
        },
    ) else {
        return;
    };
    let logged: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once("LOGGED ").map(|(_, r)| r))
        .filter(|l| l.contains("t13-boom"))
        .collect();
    assert_eq!(logged.len(), 1, "{out}");
    assert!(
        logged[0].starts_with("sylvan ERROR sylvan: a spawn_blocking job panicked at ")
            && logged[0].contains(ORPHAN),
        "{logged:?}"
    );
    assert_eq!(count(&err, "t13-boom"), 0, "stderr:\n{err}");
}

#[inline(never)]
fn t14_orphan_frame(gate: &Gate) -> u32 {
    gate.wait();
    panic!("t14-boom")
}

/// The child of t14: a killed caller's job panics in `t14_orphan_frame`.
fn t14_body() {
    bounded(|| {
        sylvan::set_blocking_threads(1);
        let (started, gate) = (Gate::default(), Gate::default());
        let (s2, g2) = (started.clone(), gate.clone());
        let g = caller(move || {
            s2.open();
            t14_orphan_frame(&g2)
        });
        yield_now();
        started.wait();
        g.kill();
        gate.open();
        drain_pool();
    });
}

/// `RUST_BACKTRACE=1` in the child: the orphan report carries the job's
/// frames, cut as std cuts a thread's (no pool internals); without it, no
/// backtrace.
#[test]
fn t14_rust_backtrace_set_or_not() {
    let path = "probes68::t14_rust_backtrace_set_or_not";
    let Some((_, with)) = limited_child_texts(
        path,
        "p68-t14",
        &[("RUST_BACKTRACE", "1")],
        Duration::from_secs(20),
        t14_body,
    ) else {
        return;
    };
    assert_eq!(count(&with, "t14-boom"), 1, "stderr:\n{with}");
    assert!(with.contains("t14_orphan_frame"), "stderr:\n{with}");
    assert_eq!(count(&with, "Some details are omitted"), 1, "{with}");
    assert!(!with.contains("work_loop"), "stderr:\n{with}");
    let (_, without) = limited_child_texts(
        path,
        "p68-t14",
        &[("RUST_BACKTRACE", "0")],
        Duration::from_secs(20),
        t14_body,
    )
    .unwrap();
    assert_eq!(count(&without, "t14-boom"), 1, "stderr:\n{without}");
    assert!(!without.contains("t14_orphan_frame"), "{without}");
}

/// 16 orphaned panics at once on 16 pool threads, with long messages:
/// 16 reports, each whole on its own line.
#[test]
fn t15_many_orphans_at_once_whole_lines() {
    const N: usize = 16;
    let long = "x".repeat(3000);
    let Some((_, err)) = child_texts(
        "probes68::t15_many_orphans_at_once_whole_lines",
        "p68-t15",
        || {
            sylvan::set_blocking_threads(N);
            let gate = Gate::default();
            let started = Arc::new(AtomicUsize::new(0));
            let gs: Vec<_> = (0..N)
                .map(|i| {
                    let (gate, started, long) = (gate.clone(), started.clone(), long.clone());
                    caller(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        gate.wait();
                        panic!("storm-{i:02}-{long}-end")
                    })
                })
                .collect();
            yield_until("all started", || started.load(Ordering::SeqCst) == N);
            assert!(sylvan::killall(&gs, None).is_ok());
            gate.open();
            // Every pool thread must be free (its job and report done)
            // for these to pass the barrier together.
            let barrier = Arc::new(std::sync::Barrier::new(N));
            let ws: Vec<_> = (0..N)
                .map(|_| {
                    let b = barrier.clone();
                    spawn(move || {
                        spawn_blocking(move || {
                            b.wait();
                        })
                    })
                })
                .collect();
            sylvan::joinall(&ws, None);
        },
    ) else {
        return;
    };
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("storm-")).collect();
    assert_eq!(lines.len(), N, "stderr:\n{err}");
    let mut seen: Vec<usize> = Vec::new();
    for l in &lines {
        let head = "sylvan: a spawn_blocking job panicked at ";
        assert!(l.starts_with(head), "mangled line: {l}");
        let (_, msg) = l.split_once(&format!("{ORPHAN}: ")).expect("whole line");
        let (n, rest) = msg
            .strip_prefix("storm-")
            .and_then(|m| m.split_once('-'))
            .expect("message");
        assert_eq!(rest, format!("{long}-end"), "cut message in {l}");
        seen.push(n.parse().unwrap());
    }
    seen.sort();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
}

// ================================================================ e9418f5

/// `Queue::bounded(1)` full: putters park in order, each get moves the
/// first putter's item in at once (no wait), `len` stays at the bound,
/// `putters` drops by one per get; 2,000 putters.
#[test]
fn q01_full_bounded_putters_fifo_step_by_step() {
    bounded(|| {
        const N: u32 = 2000;
        let q = Rc::new(Queue::bounded(1));
        q.put(u32::MAX).unwrap();
        let gs: Vec<_> = (0..N)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).unwrap())
            })
            .collect();
        yield_now();
        assert_eq!(q.putters(), N as usize);
        assert!(q.is_full());
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_get(), Ok(u32::MAX));
        for i in 0..N {
            assert_eq!(q.len(), 1, "step {i}");
            assert!(q.is_full());
            assert_eq!(q.putters(), (N - i - 1) as usize);
            assert_eq!(q.try_get(), Ok(i), "step {i}");
        }
        assert_eq!(q.len(), 0);
        assert_eq!(q.try_get(), Err(TryGetError::Empty));
        sylvan::joinall(&gs, None);
        assert!(gs.iter().all(|g| g.is_dead()));
    })
}

/// A get with no putter parks, on every kind; getters are served first
/// come, first served; `getters` counts them.
#[test]
fn q02_getters_fifo_every_kind() {
    fn run<Q: 'static>(
        q: Rc<Q>,
        get: fn(&Q) -> Option<u32>,
        put: fn(&Q, u32),
        getters: fn(&Q) -> usize,
    ) -> Vec<String> {
        let t = Log::default();
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let (q, t) = (q.clone(), t.clone());
                spawn(move || t.push(format!("g{i}:{}", get(&q).unwrap())))
            })
            .collect();
        yield_now();
        assert_eq!(getters(&q), 5);
        for v in [10, 11, 12, 13, 14] {
            put(&q, v);
        }
        sylvan::joinall(&gs, None);
        assert_eq!(getters(&q), 0);
        t.take()
    }
    bounded(|| {
        let want: Vec<String> = (0..5).map(|i| format!("g{i}:{}", 10 + i)).collect();
        let r = run(
            Rc::new(Queue::unbounded()),
            |q| q.get(),
            |q, v| q.put(v).unwrap(),
            |q| q.getters(),
        );
        assert_eq!(r, want);
        let r = run(
            Rc::new(Queue::bounded(2)),
            |q| q.get(),
            |q, v| q.put(v).unwrap(),
            |q| q.getters(),
        );
        assert_eq!(r, want);
        let r = run(
            Rc::new(JoinableQueue::bounded(1)),
            |q| q.get(),
            |q, v| q.put(v).unwrap(),
            |q| q.getters(),
        );
        assert_eq!(r, want);
        // Items are put one after another, each taken by the getter it
        // woke before the next: the order does not depend on the buffer.
        let r = run(
            Rc::new(LifoQueue::unbounded()),
            |q| q.get(),
            |q, v| {
                q.put(v).unwrap();
                yield_now();
            },
            |q| q.getters(),
        );
        assert_eq!(r, want);
        let r = run(
            Rc::new(PriorityQueue::unbounded()),
            |q| q.get(),
            |q, v| {
                q.put(v).unwrap();
                yield_now();
            },
            |q| q.getters(),
        );
        assert_eq!(r, want);
        let r = run(
            Rc::new(Channel::new()),
            |q| q.get(),
            |q, v| q.put(v).unwrap(),
            |q| q.getters(),
        );
        assert_eq!(r, want);
    })
}

/// `put_timeout(ZERO)` and a tiny timeout on a full queue of each bounded
/// kind: `Full` with the item back, no putter left, nothing changed
/// (`JoinableQueue`'s unfinished count included).
#[test]
fn q03_put_timeout_zero_and_tiny_on_full() {
    bounded(|| {
        for d in [Duration::ZERO, Duration::from_micros(1), MS] {
            let q = Queue::bounded(1);
            q.put(1).unwrap();
            assert!(matches!(q.put_timeout(2, d), Err(TryPutError::Full(2))));
            assert_eq!((q.len(), q.putters()), (1, 0));
            assert_eq!(q.try_get(), Ok(1));
            let q = LifoQueue::bounded(2);
            q.put(1).unwrap();
            q.put(2).unwrap();
            assert!(matches!(q.put_timeout(3, d), Err(TryPutError::Full(3))));
            assert_eq!((q.try_get(), q.try_get()), (Ok(2), Ok(1)));
            let q = PriorityQueue::bounded(2);
            q.put(5).unwrap();
            q.put(3).unwrap();
            assert!(matches!(q.put_timeout(1, d), Err(TryPutError::Full(1))));
            assert_eq!((q.try_get(), q.try_get()), (Ok(3), Ok(5)));
            let q = JoinableQueue::bounded(1);
            q.put(1).unwrap();
            assert!(matches!(q.put_timeout(2, d), Err(TryPutError::Full(2))));
            assert_eq!(q.unfinished(), 1);
            assert_eq!(q.putters(), 0);
            let c = Channel::new();
            assert!(matches!(c.put_timeout(1, d), Err(TryPutError::Full(1))));
            assert_eq!((c.len(), c.putters()), (0, 0));
        }
    })
}

/// `get_timeout(ZERO)` and tiny timeouts on an empty queue of every kind:
/// `Empty`, no getter left; on a channel with a putter waiting it takes
/// the putter's item at once.
#[test]
fn q04_get_timeout_zero_and_tiny_on_empty() {
    bounded(|| {
        for d in [Duration::ZERO, Duration::from_micros(1), MS] {
            assert_eq!(
                Queue::<u8>::unbounded().get_timeout(d),
                Err(TryGetError::Empty)
            );
            assert_eq!(
                Queue::<u8>::bounded(1).get_timeout(d),
                Err(TryGetError::Empty)
            );
            assert_eq!(
                LifoQueue::<u8>::bounded(1).get_timeout(d),
                Err(TryGetError::Empty)
            );
            assert_eq!(
                PriorityQueue::<u8>::unbounded().get_timeout(d),
                Err(TryGetError::Empty)
            );
            let j = JoinableQueue::<u8>::unbounded();
            assert_eq!(j.get_timeout(d), Err(TryGetError::Empty));
            assert_eq!((j.getters(), j.unfinished()), (0, 0));
            let c = Rc::new(Channel::new());
            assert_eq!(c.get_timeout(d), Err(TryGetError::Empty));
            assert_eq!(c.getters(), 0);
            let c2 = c.clone();
            let p = spawn(move || c2.put(9u8).is_ok());
            yield_now();
            assert_eq!(c.putters(), 1);
            assert_eq!(c.get_timeout(d), Ok(9));
            assert!(!p.is_dead(), "the putter returns when it next runs");
            assert!(p.join().unwrap());
        }
    })
}

/// Closing a full queue with putters parked gives each its item back;
/// getters then drain what is buffered and see the end. A get after close
/// with nothing buffered does not wait.
#[test]
fn q05_close_with_putters_parked_every_kind() {
    fn run<Q: 'static>(
        q: Rc<Q>,
        put: fn(&Q, u32) -> Result<(), u32>,
        close: fn(&Q),
        get: fn(&Q) -> Option<u32>,
        putters: fn(&Q) -> usize,
    ) -> (Vec<Result<(), u32>>, Vec<u32>) {
        let gs: Vec<_> = (100..103)
            .map(|i| {
                let q = q.clone();
                spawn(move || put(&q, i))
            })
            .collect();
        yield_now();
        assert_eq!(putters(&q), 3);
        close(&q);
        let back = gs.into_iter().map(|g| g.join().unwrap()).collect();
        let mut drained = Vec::new();
        while let Some(v) = get(&q) {
            drained.push(v);
        }
        assert_eq!(putters(&q), 0);
        (back, drained)
    }
    bounded(|| {
        let back = vec![Err(100), Err(101), Err(102)];
        let q = Rc::new(Queue::bounded(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let r = run(
            q,
            |q, v| q.put(v).map_err(|e| e.0),
            |q| q.close(),
            |q| q.get(),
            |q| q.putters(),
        );
        assert_eq!(r, (back.clone(), vec![1, 2]));
        let q = Rc::new(LifoQueue::bounded(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let r = run(
            q,
            |q, v| q.put(v).map_err(|e| e.0),
            |q| q.close(),
            |q| q.get(),
            |q| q.putters(),
        );
        assert_eq!(r, (back.clone(), vec![2, 1]));
        let q = Rc::new(PriorityQueue::bounded(2));
        q.put(7).unwrap();
        q.put(3).unwrap();
        let r = run(
            q,
            |q, v| q.put(v).map_err(|e| e.0),
            |q| q.close(),
            |q| q.get(),
            |q| q.putters(),
        );
        assert_eq!(r, (back.clone(), vec![3, 7]));
        let q = Rc::new(JoinableQueue::bounded(1));
        q.put(1).unwrap();
        let q2 = q.clone();
        let r = run(
            q,
            |q, v| q.put(v).map_err(|e| e.0),
            |q| q.close(),
            |q| q.get(),
            |q| q.putters(),
        );
        assert_eq!(r, (back.clone(), vec![1]));
        assert_eq!(q2.unfinished(), 1, "only the accepted item counts");
        let r = run(
            Rc::new(Channel::new()),
            |q, v| q.put(v).map_err(|e| e.0),
            |q| q.close(),
            |q| q.get(),
            |q| q.putters(),
        );
        assert_eq!(r, (back, vec![]));
    })
}

/// Close with getters and peekers parked: every one wakes and sees the
/// end.
#[test]
fn q06_close_with_getters_and_peekers_parked() {
    bounded(|| {
        let q = Rc::new(Queue::<u32>::bounded(3));
        let t = Log::default();
        let mut gs = Vec::new();
        for i in 0..3 {
            let (q1, t1) = (q.clone(), t.clone());
            gs.push(spawn(move || t1.push(format!("g{i}:{:?}", q1.get()))));
            let (q2, t2) = (q.clone(), t.clone());
            gs.push(spawn(move || t2.push(format!("p{i}:{:?}", q2.peek()))));
        }
        yield_now();
        assert_eq!(q.getters(), 3);
        q.close();
        sylvan::joinall(&gs, None);
        let mut got = t.take();
        got.sort();
        assert_eq!(
            got,
            [
                "g0:None", "g1:None", "g2:None", "p0:None", "p1:None", "p2:None"
            ]
        );
        assert_eq!(q.get(), None);
        assert_eq!(q.get_timeout(Duration::ZERO), Err(TryGetError::Closed));
        assert!(matches!(q.put(1), Err(sylvan::sync::Closed(1))));
    })
}

/// Puts on a full bounded queue made by destructors while the greenlet
/// unwinds from a kill, a timeout and a panic: accepted past the bound,
/// counted as unfinished, no switch; a putter already parked still waits
/// behind.
#[test]
fn q07_puts_while_unwinding_accepted_past_the_bound() {
    struct PutOnDrop(Rc<JoinableQueue<u32>>, u32);
    impl Drop for PutOnDrop {
        fn drop(&mut self) {
            let before = sylvan::stats().switches;
            assert!(self.0.put(self.1).is_ok());
            assert!(
                self.0
                    .put_timeout(self.1 + 100, Duration::from_secs(1))
                    .is_ok()
            );
            assert_eq!(sylvan::stats().switches, before, "switched while unwinding");
        }
    }
    bounded(|| {
        quiet();
        let q = Rc::new(JoinableQueue::bounded(1));
        q.put(0).unwrap();
        let q2 = q.clone();
        let parked = spawn(move || q2.put(99).unwrap());
        yield_now();
        assert_eq!(q.putters(), 1);
        let ev = Rc::new(Event::new());
        // Killed.
        let (q2, ev2) = (q.clone(), ev.clone());
        let k = spawn(move || {
            let _p = PutOnDrop(q2, 1);
            ev2.wait();
        });
        yield_now();
        k.kill();
        assert_eq!(q.len(), 3);
        // Timed out.
        let q2 = q.clone();
        let t = spawn(move || {
            with_timeout(MS, || {
                let _p = PutOnDrop(q2, 2);
                sylvan::sleep(Duration::from_secs(2));
            })
            .is_err()
        });
        assert!(t.join().unwrap());
        assert_eq!(q.len(), 5);
        // Panicked.
        let q2 = q.clone();
        let p = spawn(move || {
            let _p = PutOnDrop(q2, 3);
            panic!("q07");
        });
        assert!(p.join().unwrap_err().is_panic());
        assert_eq!(q.len(), 7);
        assert_eq!(q.unfinished(), 7);
        assert_eq!(q.putters(), 1, "the parked putter still waits");
        let mut got = Vec::new();
        while got.len() < 8 {
            got.push(q.get().unwrap());
        }
        assert_eq!(got, [0, 1, 101, 2, 102, 3, 103, 99]);
        assert_eq!(q.unfinished(), 8);
        parked.join().unwrap();
    })
}

/// A channel put while unwinding (no getter) is kept in the channel for
/// the next getter; a channel get while unwinding takes a waiting
/// putter's item, and with none returns at once.
#[test]
fn q08_channel_put_and_get_while_unwinding() {
    struct OnDrop(Rc<Channel<u32>>, Rc<RefCell<Vec<Option<u32>>>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.put(7).unwrap();
            self.1.borrow_mut().push(self.0.get());
            self.1.borrow_mut().push(self.0.get());
            self.1.borrow_mut().push(self.0.get());
        }
    }
    bounded(|| {
        let c = Rc::new(Channel::new());
        let c2 = c.clone();
        let putter = spawn(move || c2.put(5).is_ok());
        yield_now();
        assert_eq!(c.putters(), 1);
        let got = Rc::new(RefCell::new(Vec::new()));
        let (c2, got2, ev) = (c.clone(), got.clone(), Rc::new(Event::new()));
        let ev2 = ev.clone();
        let k = spawn(move || {
            let _d = OnDrop(c2, got2);
            ev2.wait();
        });
        yield_now();
        k.kill();
        // The put went into the channel; the gets take it, then the
        // putter's item, then find nothing.
        assert_eq!(*got.borrow(), [Some(7), Some(5), None]);
        assert!(putter.join().unwrap());
        assert_eq!(c.len(), 0);
    })
}

/// A get that makes room moves the first putter's item in, and that
/// putter killed before it runs still had its put go through; a putter
/// killed while waiting takes its item with it (dropped, not queued).
#[test]
fn q09_kill_chosen_putter_and_waiting_putter() {
    bounded(|| {
        let dropped = Rc::new(Cell::new(0));
        let q = Rc::new(Queue::bounded(1));
        q.put((0, None)).unwrap();
        let (q1, q2) = (q.clone(), q.clone());
        let d = dropped.clone();
        let a = spawn(move || q1.put((1, None)).is_ok());
        let b = spawn(move || q2.put((2, Some(DropFlag(d)))).is_ok());
        yield_now();
        assert_eq!(q.putters(), 2);
        // b waits in line: killed, its item is dropped with it.
        b.kill();
        assert_eq!(dropped.get(), 1);
        assert_eq!(q.putters(), 1);
        // a's item is moved in by this get; a is killed before it runs.
        assert_eq!(q.try_get().unwrap().0, 0);
        assert_eq!(q.putters(), 0);
        assert_eq!(q.len(), 1);
        a.kill();
        assert_eq!(q.len(), 1);
        assert_eq!(q.try_get().unwrap().0, 1);
        assert_eq!(q.try_get().err(), Some(TryGetError::Empty));
    })
}

/// A getter chosen for an item and killed before it runs passes the item
/// to the next getter.
#[test]
fn q10_kill_chosen_getter_passes_the_item_on() {
    bounded(|| {
        for cap in [None, Some(1), Some(0)] {
            let q = Rc::new(match cap {
                None => Queue::unbounded(),
                Some(n) => Queue::bounded(n),
            });
            let t = Log::default();
            let gs: Vec<_> = (0..3)
                .map(|i| {
                    let (q, t) = (q.clone(), t.clone());
                    spawn(move || t.push(format!("g{i}:{:?}", q.get())))
                })
                .collect();
            yield_now();
            assert_eq!(q.getters(), 3);
            if cap == Some(0) {
                assert!(q.try_put(1).is_ok(), "a getter waits");
            } else {
                q.put(1).unwrap();
            }
            assert_eq!(q.getters(), 2);
            gs[0].kill();
            yield_now();
            assert_eq!(t.take(), ["g1:Some(1)"], "cap {cap:?}");
            assert_eq!(q.getters(), 1);
            q.close();
            sylvan::joinall(&gs, None);
            assert_eq!(t.take(), ["g2:None"]);
        }
    })
}

/// A woken getter outrun by a running greenlet waits again at the head of
/// the line: the next item is its, before later getters.
#[test]
fn q11_outrun_getter_requeued_at_the_head() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(4));
        let t = Log::default();
        let gs: Vec<_> = (0..3)
            .map(|i| {
                let (q, t) = (q.clone(), t.clone());
                spawn(move || t.push(format!("g{i}:{}", q.get().unwrap())))
            })
            .collect();
        yield_now();
        q.put("a").unwrap();
        assert_eq!(q.try_get(), Ok("a"), "main outruns g0");
        assert_eq!(q.len(), 0);
        yield_now(); // g0 finds nothing and waits again
        assert_eq!(q.getters(), 3);
        assert!(t.get().is_empty());
        q.put("b").unwrap();
        q.put("c").unwrap();
        // Each put woke one getter: g0 (first in line again), then g1.
        assert_eq!(q.getters(), 1);
        q.put("d").unwrap();
        sylvan::joinall(&gs, None);
        assert_eq!(t.take(), ["g0:b", "g1:c", "g2:d"]);
    })
}

/// Peekers and a getter parked on an empty `bounded(1)` queue; two puts:
/// the first goes in (waking the getter, then the peekers), the second
/// finds the queue full and waits until the getter made room.
#[test]
fn q12_peekers_and_getter_then_a_put_on_full() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let t = Log::default();
        let (q1, t1) = (q.clone(), t.clone());
        let g = spawn(move || t1.push(format!("g:{}", q1.get().unwrap())));
        let (q2, t2) = (q.clone(), t.clone());
        let p = spawn(move || t2.push(format!("p:{}", q2.peek().unwrap())));
        yield_now();
        assert_eq!(q.getters(), 1);
        q.put("a").unwrap();
        assert_eq!(q.len(), 1);
        t.push("put-b");
        q.put("b").unwrap(); // full: waits until g takes "a"
        t.push("b-in");
        sylvan::joinall(&[g, p], None);
        assert_eq!(t.take(), ["put-b", "g:a", "p:b", "b-in"]);
        assert_eq!(q.try_peek(), Ok("b"));
        assert_eq!(q.len(), 1);
    })
}

/// `peek_timeout` with `ZERO` on an empty queue: `Empty`, nothing left
/// parked; a `put` with no peeker or getter left takes the fast path and
/// the item stays.
#[test]
fn q13_peek_timeout_zero() {
    bounded(|| {
        let q = Queue::bounded(1);
        assert_eq!(q.peek_timeout(Duration::ZERO), Err(TryGetError::Empty));
        q.put(1).unwrap();
        assert_eq!(q.peek_timeout(Duration::ZERO), Ok(1));
        assert!(matches!(q.try_put(2), Err(TryPutError::Full(2))));
        assert_eq!(q.len(), 1);
    })
}

/// `JoinableQueue::bounded(1)`: items in waiting putters' hands are not
/// unfinished until they are moved in; `join` waits for them too.
#[test]
fn q14_joinable_unfinished_follows_the_moves() {
    bounded(|| {
        let q = Rc::new(JoinableQueue::bounded(1));
        q.put(0).unwrap();
        let ps: Vec<_> = (1..4)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).unwrap())
            })
            .collect();
        yield_now();
        assert_eq!((q.unfinished(), q.putters()), (1, 3));
        // The joiner parks first: four items unfinished once moved in.
        let q3 = q.clone();
        let joiner = spawn(move || q3.join());
        let q2 = q.clone();
        let worker = spawn(move || {
            let mut n = 0;
            while let Some(v) = q2.get() {
                n += v;
                q2.task_done();
            }
            n
        });
        yield_now();
        assert_eq!(q.getters(), 1);
        assert_eq!(q.unfinished(), 0);
        joiner.join().unwrap();
        sylvan::joinall(&ps, None);
        q.close();
        assert_eq!(worker.join().unwrap(), 6);
    })
}

/// 3,000 getters parked on a `bounded(1)` queue and 3,000 putters behind a
/// full one, paired through it: every getter gets one item, in FIFO order
/// both ways, and nothing is left.
#[test]
fn q15_thousands_of_waiters_both_ways() {
    bounded(|| {
        const N: usize = 3000;
        let q = Rc::new(Queue::bounded(1));
        let got = Rc::new(RefCell::new(vec![usize::MAX; N]));
        let gs: Vec<_> = (0..N)
            .map(|i| {
                let (q, got) = (q.clone(), got.clone());
                spawn(move || got.borrow_mut()[i] = q.get().unwrap())
            })
            .collect();
        yield_now();
        assert_eq!(q.getters(), N);
        let ps: Vec<_> = (0..N)
            .map(|i| {
                let q = q.clone();
                spawn(move || q.put(i).unwrap())
            })
            .collect();
        sylvan::joinall(&ps, None);
        sylvan::joinall(&gs, None);
        assert_eq!(*got.borrow(), (0..N).collect::<Vec<_>>());
        assert_eq!((q.len(), q.getters(), q.putters()), (0, 0, 0));
    })
}

/// Iterating over a `bounded(1)` queue while a producer puts 300 items and
/// closes: all come, in order; the producer waits for room each time.
#[test]
fn q16_iteration_through_a_full_queue() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let q2 = q.clone();
        let producer = spawn(move || {
            for i in 0..300 {
                q2.put(i).unwrap();
            }
            q2.close();
        });
        let got: Vec<i32> = q.iter().collect();
        assert_eq!(got, (0..300).collect::<Vec<_>>());
        producer.join().unwrap();
    })
}

/// `PriorityQueue` and `LifoQueue` bounded and full: putters are served
/// FIFO, and the buffer orders what was moved in.
#[test]
fn q17_priority_and_lifo_full_with_putters() {
    bounded(|| {
        let q = Rc::new(PriorityQueue::bounded(2));
        q.put(50).unwrap();
        q.put(40).unwrap();
        let ps: Vec<_> = [30, 10, 20]
            .into_iter()
            .map(|v| {
                let q = q.clone();
                spawn(move || q.put(v).unwrap())
            })
            .collect();
        yield_now();
        assert_eq!(q.putters(), 3);
        // 40 out; 30 (first putter) in; then 30; 10 in; then 10; 20 in.
        let got: Vec<_> = (0..5).map(|_| q.try_get().unwrap()).collect();
        assert_eq!(got, [40, 30, 10, 20, 50]);
        sylvan::joinall(&ps, None);
        let q = Rc::new(LifoQueue::bounded(2));
        q.put(1).unwrap();
        q.put(2).unwrap();
        let ps: Vec<_> = [3, 4]
            .into_iter()
            .map(|v| {
                let q = q.clone();
                spawn(move || q.put(v).unwrap())
            })
            .collect();
        yield_now();
        let got: Vec<_> = (0..4).map(|_| q.try_get().unwrap()).collect();
        assert_eq!(got, [2, 3, 4, 1]);
        sylvan::joinall(&ps, None);
    })
}

/// A channel: a put waits until a getter took its item; `try_put` goes
/// through only while a getter waits; a get with a putter waiting takes
/// at once; `Queue::bounded(0)` behaves the same.
#[test]
fn q18_channel_and_bounded_zero() {
    fn run<Q: 'static>(
        q: Rc<Q>,
        put: fn(&Q, u32) -> bool,
        try_put: fn(&Q, u32) -> bool,
        get: fn(&Q) -> Option<u32>,
        counts: fn(&Q) -> (usize, usize, usize),
    ) {
        assert!(!try_put(&q, 1), "no getter waits");
        let q2 = q.clone();
        let p = spawn(move || put(&q2, 2));
        yield_now();
        assert_eq!(counts(&q), (0, 0, 1));
        assert!(!p.is_dead());
        assert_eq!(get(&q), Some(2));
        assert_eq!(counts(&q), (0, 0, 0));
        assert!(p.join().unwrap());
        let q2 = q.clone();
        let g = spawn(move || get(&q2));
        yield_now();
        assert_eq!(counts(&q), (0, 1, 0));
        assert!(try_put(&q, 3));
        assert_eq!(counts(&q), (1, 0, 0));
        assert!(!try_put(&q, 4), "the getter's item is there");
        assert_eq!(g.join().unwrap(), Some(3));
    }
    bounded(|| {
        run(
            Rc::new(Channel::new()),
            |q, v| q.put(v).is_ok(),
            |q, v| q.try_put(v).is_ok(),
            |q| q.get(),
            |q| (q.len(), q.getters(), q.putters()),
        );
        run(
            Rc::new(Queue::bounded(0)),
            |q, v| q.put(v).is_ok(),
            |q, v| q.try_put(v).is_ok(),
            |q| q.get(),
            |q| (q.len(), q.getters(), q.putters()),
        );
    })
}

/// A channel `put_timeout(ZERO)` with a getter already waiting: the getter
/// is there to take it (gevent's `Channel.put(timeout=0)` hands the item
/// over in its unlock callback, which runs before the zero timer).
#[test]
fn q19_channel_put_timeout_zero_with_a_getter_waiting() {
    bounded(|| {
        let c = Rc::new(Channel::new());
        let c2 = c.clone();
        let g = spawn(move || c2.get());
        yield_now();
        assert_eq!(c.getters(), 1);
        let r = c.put_timeout(1, Duration::ZERO);
        assert!(r.is_ok(), "the waiting getter did not get to take it");
        assert_eq!(g.join().unwrap(), Some(1));
    })
}

/// A getter parked with a timeout on an empty queue, woken by a put in the
/// same turn as its deadline: it takes the item (a chosen getter never
/// loses it to its own deadline).
#[test]
fn q20_getter_chosen_at_its_deadline_takes_the_item() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        let q2 = q.clone();
        let g = spawn(move || q2.get_timeout(5 * MS));
        yield_now();
        q.put(1).unwrap();
        // Stall the hub past the getter's deadline: its wake-up and its
        // timer are both due when it next runs.
        std::thread::sleep(10 * MS);
        assert_eq!(g.join().unwrap(), Ok(1));
        assert_eq!(q.len(), 0);
    })
}

/// A putter parked with a timeout on a full queue, its item moved in by a
/// get in the same turn as its deadline: the put succeeded.
#[test]
fn q21_putter_chosen_at_its_deadline_succeeded() {
    bounded(|| {
        let q = Rc::new(Queue::bounded(1));
        q.put(0).unwrap();
        let q2 = q.clone();
        let p = spawn(move || q2.put_timeout(1, 5 * MS).is_ok());
        yield_now();
        assert_eq!(q.putters(), 1);
        assert_eq!(q.try_get(), Ok(0));
        std::thread::sleep(10 * MS);
        assert!(p.join().unwrap());
        assert_eq!(q.try_get(), Ok(1));
    })
}

/// A seeded random mix of puts, gets, timed ones, kills and closes on each
/// bounded kind, checked against the rules at every step: `len` never
/// exceeds the bound, waiting putters mean a full queue, and every item
/// accepted is got exactly once.
#[test]
fn q22_random_mix_keeps_the_invariants() {
    bounded(|| {
        let mut x: u64 = 0x68_5eed;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for cap in [1usize, 2, 3] {
            let q = Rc::new(Queue::bounded(cap));
            let accepted = Rc::new(RefCell::new(Vec::new()));
            let got = Rc::new(RefCell::new(Vec::new()));
            let mut live: Vec<Greenlet<()>> = Vec::new();
            let mut next = 0u32;
            for _step in 0..600 {
                match rand(7) {
                    0 | 1 => {
                        let (q, a, v) = (q.clone(), accepted.clone(), next);
                        next += 1;
                        let timed = rand(2) == 0;
                        live.push(spawn(move || {
                            let ok = if timed {
                                q.put_timeout(v, 2 * MS).is_ok()
                            } else {
                                q.put(v).is_ok()
                            };
                            if ok {
                                a.borrow_mut().push(v);
                            }
                        }));
                    }
                    2 | 3 => {
                        let (q, g) = (q.clone(), got.clone());
                        let timed = rand(2) == 0;
                        live.push(spawn(move || {
                            let v = if timed {
                                q.get_timeout(2 * MS).ok()
                            } else {
                                q.get()
                            };
                            if let Some(v) = v {
                                g.borrow_mut().push(v);
                            }
                        }));
                    }
                    4 => {
                        if let Ok(v) = q.try_get() {
                            got.borrow_mut().push(v);
                        }
                    }
                    5 => {
                        if !live.is_empty() {
                            let i = rand(live.len() as u64) as usize;
                            live.swap_remove(i).kill_nowait();
                        }
                    }
                    _ => {
                        if rand(3) == 0 {
                            sylvan::sleep(MS);
                        } else {
                            yield_now();
                        }
                    }
                }
                live.retain(|g| !g.is_dead());
                assert!(q.len() <= cap, "len {} over {cap}", q.len());
                if q.putters() > 0 {
                    assert!(q.is_full(), "putters wait on a queue with room");
                }
            }
            q.close();
            sylvan::joinall(&live, None);
            while let Some(v) = q.get() {
                got.borrow_mut().push(v);
            }
            let mut a = accepted.borrow().clone();
            let mut g = got.borrow().clone();
            a.sort();
            g.sort();
            // An accepted item whose putter was killed after the item
            // moved in is got but not recorded as accepted: got may hold
            // more, never fewer, and no duplicate.
            let mut dedup = g.clone();
            dedup.dedup();
            assert_eq!(dedup, g, "an item was got twice");
            assert!(
                a.iter().all(|v| g.binary_search(v).is_ok()),
                "an item was lost"
            );
        }
    })
}

/// Main alone waiting on a queue nothing can fill or empty: the get (no
/// putter waiting) and the put (full) fail with "would block forever"
/// naming the wait, never hang; the queue is left as it was.
#[test]
fn q23_main_alone_would_block_forever() {
    // `bounded`'s own timer would count as something that can wake main:
    // the waits run on a thread of their own, whose hub has nothing else.
    let (get, put, counts) = std::thread::spawn(|| {
        let msg = |r: std::thread::Result<()>| {
            sylvan::runtime::payload_message(&*r.expect_err("the wait returned"))
        };
        let q = Queue::<u32>::bounded(1);
        let get = msg(catch_unwind(AssertUnwindSafe(|| {
            q.get();
        })));
        q.put(1).unwrap();
        let put = msg(catch_unwind(AssertUnwindSafe(|| {
            let _ = q.put(2);
        })));
        (get, put, (q.getters(), q.putters(), q.len()))
    })
    .join()
    .unwrap();
    assert!(
        get.contains("would block forever") && get.contains("a queue get"),
        "{get}"
    );
    assert!(
        put.contains("would block forever") && put.contains("a queue put"),
        "{put}"
    );
    assert_eq!(counts, (0, 0, 1));
}

/// Timed gets in a destructor while the greenlet unwinds: an item is
/// taken, an empty queue answers `Empty` at once, without switching.
#[test]
fn q24_timed_get_while_unwinding() {
    struct GetOnDrop(
        Rc<LifoQueue<u32>>,
        Rc<RefCell<Vec<Result<u32, TryGetError>>>>,
    );
    impl Drop for GetOnDrop {
        fn drop(&mut self) {
            let before = sylvan::stats().switches;
            for _ in 0..2 {
                let r = self.0.get_timeout(Duration::from_secs(1));
                self.1.borrow_mut().push(r);
            }
            assert_eq!(sylvan::stats().switches, before, "switched while unwinding");
        }
    }
    bounded(|| {
        let q = Rc::new(LifoQueue::bounded(2));
        q.put(4).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let (q2, got2, ev) = (q.clone(), got.clone(), Rc::new(Event::new()));
        let ev2 = ev.clone();
        let k = spawn(move || {
            let _d = GetOnDrop(q2, got2);
            ev2.wait();
        });
        yield_now();
        k.kill();
        assert_eq!(*got.borrow(), [Ok(4), Err(TryGetError::Empty)]);
        assert_eq!(q.getters(), 0);
    })
}
