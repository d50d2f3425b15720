//! Probe round 56: a hostile review of 1b335d8 (at teardown only link
//! callbacks keep a failure from being printed) and 180da8f
//! (`Hub::print_failure` goes through `ErrorPolicy::Abort.handle`), with
//! the failure-reporting rules they complete (`ErrorPolicy`'s docs): a
//! failure reaches the policy only at the death, on the hub; it is settled
//! once the policy handled it or a callback ran with it; a callback dropped
//! unrun prints an unsettled failure once (aborting under `Abort`); a
//! waiting `join` takes it; at teardown waiters do not count.
//!
//! * `c01..c04`: failures that outlive their death unsettled (under
//!   `IgnoreObserved`) and the join they were left to; `set_error_policy`.
//! * `c05..c12`: teardown on spawned threads and at process exit, per
//!   policy: killed, panicked and timed-out greenlets, callbacks added or
//!   cut around the teardown, greenlets spawned during it, `Abort` that
//!   must not abort.
//! * `c13..c22`: `Custom` (where and how often it is called, `observed`,
//!   `unlink_all` from inside it, main's greenlet-locals at exit), a join
//!   that returns a failure that was printed already, `Abort` after settled
//!   deaths, `Pool::join` then exit, several threads exiting at once.
//!
//! Bugs found (fixed since): `c01` and `c02`, under `IgnoreObserved` a
//! failure left to a `join` before the teardown was lost when the thread
//! exited before the join returned (the teardown kills the joiner; a
//! `join` that ends without taking the failure now prints it). `c04`:
//! `set_error_policy` dropped the old policy while it held the policy's
//! `RefCell` mutably, so a `Custom` policy whose captured state yields on
//! drop made the next failure's report panic on the hub.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use sylvan::sync::Event;
use sylvan::{Error, ErrorPolicy, Greenlet, Timeout, spawn, yield_now};

use crate::util::{
    CHILD_ENV, ExitProbe, YieldOnDrop, aborted, bounded, fail_on, is_child, on_thread,
    run_child_limited, settle, texts, yield_until,
};

const LONG: Duration = Duration::from_secs(3600);

const P: &str = "probes56::";

const PROBE: ExitProbe = ExitProbe(P);

/// A greenlet that catches the kill thrown at thread exit, then runs
/// `then` (which ends it: a panic, a rethrown timeout, a return).
fn catches_exit_kill(then: impl FnOnce() -> u32 + 'static) -> Greenlet<u32> {
    spawn(move || -> u32 {
        let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
        println!("CAUGHT-KILL {}", r.is_err());
        then()
    })
}

// ------------------------------------------- c01..c04: left to a join

/// `IgnoreObserved`: a failure observed at its death only by a greenlet in
/// `join` is left to that join ("a `join` takes it"); 1b335d8: "At
/// teardown waiters do not count ... teardown kills them, so a `join`
/// never returns it". Here the death comes just before the thread exits:
/// the joiner is woken but has not run yet when the teardown kills it, so
/// the join never returns the failure, and nothing prints it. `Hub::report`
/// left it unsettled for the waiter, and the teardown only looks at
/// failures raised during it (`report_closing`) or held by link callbacks
/// it drops (`report_unobserved`): b06 of probes55, one turn earlier.
/// Fixed: a `join` that ends without taking the failure prints it.
#[test]
fn c01_ignore_observed_failure_left_to_a_join_killed_at_exit_is_lost() {
    let Some((out, err)) = PROBE.thread_child(
        "c01_ignore_observed_failure_left_to_a_join_killed_at_exit_is_lost",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let ev = Rc::new(Event::new());
                let g = fail_on(&ev, "p56-c01-boom");
                let _j = spawn(move || {
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now(); // g parks on the event, the joiner in `join`
                ev.set();
                yield_now(); // g dies; the joiner is queued behind main
                assert_eq!(sylvan::stats().alive, 1, "only the joiner is left");
                println!("EXITING");
            });
        },
    ) else {
        return;
    };
    assert!(out.contains("EXITING") && !out.contains("JOINED"), "{out}");
    assert_eq!(err.matches("p56-c01-boom").count(), 1, "{out}\n{err}");
}

/// As c01 without a thread exit: the joiner is killed by main after the
/// death, before it ran to take the failure. The join ends without it, so
/// it prints it, once; the rest of the thread goes on.
#[test]
fn c23_ignore_observed_failure_left_to_a_join_whose_joiner_is_killed() {
    let Some((out, err)) = PROBE.thread_child(
        "c23_ignore_observed_failure_left_to_a_join_whose_joiner_is_killed",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let ev = Rc::new(Event::new());
                let g = fail_on(&ev, "p56-c23-boom");
                let j = spawn(move || {
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now(); // g parks on the event, the joiner in `join`
                ev.set();
                yield_now(); // g dies; the joiner is queued behind main
                j.kill();
                println!("KILLED {}", j.join().unwrap_err().is_killed());
                settle();
                println!("AFTER");
            });
        },
    ) else {
        return;
    };
    assert!(
        out.contains("KILLED true") && out.contains("AFTER") && !out.contains("JOINED"),
        "{out}"
    );
    assert_eq!(err.matches("p56-c23-boom").count(), 1, "{out}\n{err}");
}

/// `Hub::report_unobserved`: "A `join` waiting for the callbacks takes the
/// failure next", so a cut callback defers to it. The join waits for the
/// cut callback's greenlet; that greenlet drops the callback, defers and
/// wakes the join; the thread exits before the join runs: the teardown
/// kills it and the failure is printed nowhere (the deferral happened
/// before the hub was closing, where 1b335d8 stops deferring). Fixed as
/// c01.
#[test]
fn c02_a_cut_callback_defers_to_a_join_that_the_exit_kills() {
    let Some((out, err)) = PROBE.thread_child(
        "c02_a_cut_callback_defers_to_a_join_that_the_exit_kills",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let ev = Rc::new(Event::new());
                let g = Rc::new(fail_on(&ev, "p56-c02-boom"));
                // Cuts the callbacks once g is dead (woken first).
                let gc = g.clone();
                let _c = spawn(move || {
                    assert!(gc.wait(None));
                    gc.unlink_all();
                });
                // Waits, then joins (when it is the only handle left):
                // in the join it waits for the cut callback's greenlet.
                let gj = g.clone();
                let _j = spawn(move || {
                    assert!(gj.wait(None));
                    let g = Rc::try_unwrap(gj).expect("the only handle");
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now(); // g parks, the cutter and the joiner wait
                g.link_exception(|_| println!("CB-RAN"));
                drop(g);
                ev.set();
                yield_now(); // g dies: cutter, joiner, callback queued
                yield_now(); // cut; join waits; callback dropped, join woken
                assert_eq!(sylvan::stats().alive, 1, "only the joiner is left");
                println!("EXITING");
            });
        },
    ) else {
        return;
    };
    assert!(
        out.contains("EXITING") && !out.contains("JOINED") && !out.contains("CB-RAN"),
        "{out}"
    );
    assert_eq!(err.matches("p56-c02-boom").count(), 1, "{out}\n{err}");
}

/// The documented half of c02 (probes54 a08 with the cut made by another
/// greenlet): the join waits for the cut callback, which defers to it; it
/// returns the failure and nothing is printed.
#[test]
fn c03_a_cut_callback_defers_to_a_waiting_join_that_returns() {
    let Some((out, err)) = PROBE.child(
        "c03_a_cut_callback_defers_to_a_waiting_join_that_returns",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let ev = Rc::new(Event::new());
            let g = Rc::new(fail_on(&ev, "p56-c03-boom"));
            let gc = g.clone();
            let _c = spawn(move || {
                assert!(gc.wait(None));
                gc.unlink_all();
            });
            let gj = g.clone();
            let _j = spawn(move || {
                assert!(gj.wait(None));
                let g = Rc::try_unwrap(gj).expect("the only handle");
                let r = g.join();
                println!("JOINED {}", matches!(r, Err(Error::Panicked(_))));
            });
            yield_now();
            g.link_exception(|_| println!("CB-RAN"));
            drop(g);
            ev.set();
            settle();
        },
    ) else {
        return;
    };
    assert!(
        out.contains("JOINED true") && !out.contains("CB-RAN"),
        "{out}"
    );
    assert!(!err.contains("p56-c03-boom"), "{err}");
}

/// `set_error_policy` replaces the policy with `*policy.borrow_mut() =
/// policy`: the old one is dropped while the `RefCell` is borrowed. A
/// `Custom` policy whose captured state switches on drop (here a yield)
/// lets a greenlet die meanwhile; `Hub::report` then borrows the policy
/// and panics ("already mutably borrowed") on the hub, instead of handing
/// the failure to either policy. Fixed: the old policy is dropped after
/// the cell is released.
#[test]
fn c04_replacing_a_policy_whose_drop_yields_while_a_greenlet_fails() {
    let Some((out, err)) = PROBE.thread_child(
        "c04_replacing_a_policy_whose_drop_yields_while_a_greenlet_fails",
        || {
            let held = YieldOnDrop;
            let calls = Rc::new(Cell::new(0u32));
            let c = calls.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                let _ = &held;
                c.set(c.get() + 1);
            })));
            let g = spawn(|| -> u32 { panic!("p56-c04-boom") });
            let r = catch_unwind(AssertUnwindSafe(|| {
                sylvan::set_error_policy(ErrorPolicy::Report)
            }));
            println!("SET-OK {}", r.is_ok());
            let r = g.join();
            println!("JOINED {}", matches!(r, Err(Error::Panicked(_))));
        },
    ) else {
        return;
    };
    assert!(out.contains("SET-OK true"), "{out}\n{err}");
    assert!(out.contains("JOINED true"), "{out}\n{err}");
    assert!(!err.contains("already"), "{err}");
}

// ------------------------------------------- c05..c12: teardown

/// c01 under `Report`: the failure is printed at the death (the joiner
/// counts as an observer, which `Report` ignores), once; killing the
/// joiner at exit adds nothing.
#[test]
fn c05_report_failure_left_to_a_join_killed_at_exit_printed_once() {
    let Some((out, err)) = PROBE.thread_child(
        "c05_report_failure_left_to_a_join_killed_at_exit_printed_once",
        || {
            on_thread(|| {
                let ev = Rc::new(Event::new());
                let g = fail_on(&ev, "p56-c05-boom");
                let _j = spawn(move || {
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now();
                ev.set();
                yield_now();
                assert_eq!(sylvan::stats().alive, 1);
                println!("EXITING");
            });
        },
    ) else {
        return;
    };
    assert!(out.contains("EXITING") && !out.contains("JOINED"), "{out}");
    assert_eq!(err.matches("p56-c05-boom").count(), 1, "{err}");
}

/// `IgnoreObserved`, failure before the exit, a `join` waiting for a
/// `link_exception` callback whose greenlet has not started when the
/// thread exits: the teardown drops the callback unrun (it prints the
/// failure: waiters do not count then) and kills the joiner: once, whichever
/// the teardown reaches first.
#[test]
fn c06_ignore_observed_unrun_callback_and_waiting_join_at_exit_once() {
    let Some((out, err)) = PROBE.thread_child(
        "c06_ignore_observed_unrun_callback_and_waiting_join_at_exit_once",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let ev = Rc::new(Event::new());
                let g = fail_on(&ev, "p56-c06-boom");
                g.link_exception(|_| println!("CB-RAN"));
                let _j = spawn(move || {
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now(); // g parks, the joiner joins
                ev.set();
                yield_now(); // g dies: callback greenlet and joiner queued
                assert_eq!(sylvan::stats().alive, 2);
                println!("EXITING");
            });
        },
    ) else {
        return;
    };
    assert!(
        out.contains("EXITING") && !out.contains("JOINED") && !out.contains("CB-RAN"),
        "{out}"
    );
    assert_eq!(err.matches("p56-c06-boom").count(), 1, "{err}");
}

/// `Abort` in force at a thread's exit with no failure: parked greenlets
/// with `link`, `link_value` and `link_exception` callbacks killed, one
/// that catches the kill and returns, one that never started: no abort,
/// nothing printed, callbacks dropped unrun.
#[test]
fn c07_abort_at_exit_without_a_failure_does_not_abort() {
    let Some(out) = PROBE.raw_child("c07_abort_at_exit_without_a_failure_does_not_abort", || {
        on_thread(|| {
            sylvan::set_error_policy(ErrorPolicy::Abort);
            let a = spawn(|| -> u32 {
                sylvan::sleep(LONG);
                1
            });
            a.link(|_| println!("CB-RAN"));
            a.link_value(|_| println!("CB-RAN"));
            a.link_exception(|_| println!("CB-RAN"));
            let b = catches_exit_kill(|| 2);
            b.link(|_| println!("CB-RAN"));
            b.link_exception(|_| println!("CB-RAN"));
            yield_now();
            let c = spawn(|| -> u32 { panic!("p56-c07-never-runs") });
            c.link_exception(|_| println!("CB-RAN"));
        });
        println!("THREAD-EXITED");
    }) else {
        return;
    };
    let (o, e) = texts(&out);
    assert!(
        out.status.success() && o.contains("THREAD-EXITED") && o.contains("PROBE ok"),
        "{:?}\n{o}\n{e}",
        out.status
    );
    assert!(
        o.contains("CAUGHT-KILL true") && !o.contains("CB-RAN"),
        "{o}"
    );
    assert!(!e.contains("aborting") && !e.contains("p56-c07"), "{e}");
}

/// Re-raises, after the exit's kill, the timeout a greenlet caught
/// earlier: it dies timed out during the teardown.
fn timed_out_at_exit(fired: &Rc<Cell<bool>>) -> Greenlet<u32> {
    let fired = fired.clone();
    spawn(move || -> u32 {
        let t = Timeout::start(Duration::from_millis(1));
        let expired = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG))).unwrap_err();
        drop(t);
        fired.set(true);
        let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
        println!("CAUGHT-KILL {}", r.is_err());
        std::panic::resume_unwind(expired)
    })
}

/// A timeout that escapes a greenlet during the teardown is a failure as a
/// panic is (`Error::TimedOut`): printed once under `Report`, with
/// `link_exception` callbacks dropped unrun.
#[test]
fn c08_a_timeout_escaping_at_teardown_is_printed_once() {
    let Some((out, err)) =
        PROBE.thread_child("c08_a_timeout_escaping_at_teardown_is_printed_once", || {
            on_thread(|| {
                let fired = Rc::new(Cell::new(false));
                let g = timed_out_at_exit(&fired);
                g.link_exception(|_| println!("CB-RAN"));
                g.link(|_| println!("CB-RAN"));
                yield_until("the timeout fired", || fired.get());
                yield_now(); // it parks again, for the exit's kill
            });
        })
    else {
        return;
    };
    assert!(
        out.contains("CAUGHT-KILL true") && !out.contains("CB-RAN"),
        "{out}"
    );
    assert_eq!(
        err.matches("greenlet ended by an expired timeout").count(),
        1,
        "{err}"
    );
}

/// c08 under `IgnoreObserved` (with a callback: left to it, printed by its
/// drop) and under `Custom` (not called at teardown: printed as `Report`
/// prints), each once.
#[test]
fn c09_a_timeout_escaping_at_teardown_other_policies() {
    let Some((out, err)) =
        PROBE.thread_child("c09_a_timeout_escaping_at_teardown_other_policies", || {
            for custom in [false, true] {
                on_thread(move || {
                    if custom {
                        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| {
                            println!("POLICY-CALLED")
                        })));
                    } else {
                        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                    }
                    let fired = Rc::new(Cell::new(false));
                    let g = timed_out_at_exit(&fired);
                    g.link_exception(|_| println!("CB-RAN"));
                    yield_until("the timeout fired", || fired.get());
                    yield_now();
                });
            }
        })
    else {
        return;
    };
    assert_eq!(out.matches("CAUGHT-KILL true").count(), 2, "{out}");
    assert!(
        !out.contains("CB-RAN") && !out.contains("POLICY-CALLED"),
        "{out}"
    );
    assert_eq!(
        err.matches("greenlet ended by an expired timeout").count(),
        2,
        "{err}"
    );
}

/// `IgnoreObserved`: callbacks registered or cut by the failing greenlet
/// itself after it caught the exit's kill. One adds a `link_exception` to
/// itself (observed: left to the callback, whose drop prints it), one cuts
/// the callback registered before (`unlink_all` outside callbacks: no
/// observer left, `report_closing` prints it): each once.
#[test]
fn c10_ignore_observed_callbacks_added_or_cut_after_the_exit_kill() {
    let Some((out, err)) = PROBE.thread_child(
        "c10_ignore_observed_callbacks_added_or_cut_after_the_exit_kill",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let me: Rc<RefCell<Option<Rc<Greenlet<u32>>>>> = Rc::default();
                let m = me.clone();
                let adds = Rc::new(catches_exit_kill(move || {
                    let g = m.borrow_mut().take().unwrap();
                    g.link_exception(|_| println!("CB-RAN"));
                    drop(g);
                    panic!("p56-c10-adds")
                }));
                *me.borrow_mut() = Some(adds.clone());
                drop(adds);
                let me2: Rc<RefCell<Option<Rc<Greenlet<u32>>>>> = Rc::default();
                let m2 = me2.clone();
                let cuts = Rc::new(catches_exit_kill(move || {
                    let g = m2.borrow_mut().take().unwrap();
                    g.unlink_all();
                    drop(g);
                    panic!("p56-c10-cuts")
                }));
                cuts.link_exception(|_| println!("CB-RAN"));
                cuts.link(|_| println!("CB-RAN"));
                *me2.borrow_mut() = Some(cuts.clone());
                drop(cuts);
                yield_now();
            });
        },
    ) else {
        return;
    };
    assert_eq!(out.matches("CAUGHT-KILL true").count(), 2, "{out}");
    assert!(!out.contains("CB-RAN"), "{out}");
    assert_eq!(err.matches("p56-c10-adds").count(), 1, "{err}");
    assert_eq!(err.matches("p56-c10-cuts").count(), 1, "{err}");
}

/// Greenlets spawned during the teardown (by a killed greenlet's
/// destructor, and by one that caught the kill) never run: their panics
/// never happen, their callbacks are dropped unrun, nothing is printed and
/// the exit does not hang, under each policy (`Abort` included).
#[test]
fn c11_greenlets_spawned_during_teardown_never_run() {
    struct SpawnOnDrop;
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let g = spawn(|| -> u32 { panic!("p56-c11-from-drop") });
            g.link_exception(|_| println!("CB-RAN"));
            g.link(|_| println!("CB-RAN"));
        }
    }
    let Some(out) = PROBE.raw_child("c11_greenlets_spawned_during_teardown_never_run", || {
        for name in ["Report", "IgnoreObserved", "Abort"] {
            on_thread(move || {
                sylvan::set_error_policy(match name {
                    "Report" => ErrorPolicy::Report,
                    "IgnoreObserved" => ErrorPolicy::IgnoreObserved,
                    _ => ErrorPolicy::Abort,
                });
                let _a = spawn(|| {
                    let _d = SpawnOnDrop;
                    sylvan::sleep(LONG);
                });
                let _b = catches_exit_kill(|| {
                    let g = spawn(|| -> u32 { panic!("p56-c11-after-kill") });
                    g.link_exception(|_| println!("CB-RAN"));
                    let r = g.join();
                    println!("JOINED {r:?}");
                    1
                });
                yield_now();
            });
            println!("EXITED {name}");
        }
    }) else {
        return;
    };
    let (o, e) = texts(&out);
    assert!(out.status.success() && o.contains("PROBE ok"), "{o}\n{e}");
    assert_eq!(o.matches("EXITED").count(), 3, "{o}");
    assert!(!o.contains("CB-RAN"), "{o}");
    assert!(!e.contains("p56-c11") && !e.contains("aborting"), "{e}");
}

/// Process exit from the thread that owns the hub (`std::process::exit`,
/// as `main` returning does): its thread-locals are destroyed by `exit`,
/// and the teardown runs there as at a thread's exit. A greenlet that
/// catches the kill and panics is printed once (a join waiting on it does
/// not count, under `IgnoreObserved` too), and `Abort` aborts.
#[test]
fn c12_process_exit_tears_the_hub_down_like_a_thread_exit() {
    fn body(policy: ErrorPolicy, msg: &'static str) {
        sylvan::set_error_policy(policy);
        let g = catches_exit_kill(move || panic!("{msg}"));
        let _j = spawn(move || {
            let r = g.join();
            println!("JOINED {}", r.is_err());
        });
        yield_now();
        println!("PROBE ok");
        std::process::exit(0);
    }
    let cases: [(&str, fn()); 3] = [
        ("c12_report", || body(ErrorPolicy::Report, "p56-c12-boom")),
        ("c12_ignore", || {
            body(ErrorPolicy::IgnoreObserved, "p56-c12-boom")
        }),
        ("c12_abort", || body(ErrorPolicy::Abort, "p56-c12-boom")),
    ];
    for (name, f) in cases {
        if is_child(name) {
            f();
        }
    }
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    for (name, _) in cases {
        let out = run_child_limited(
            &format!("{P}c12_process_exit_tears_the_hub_down_like_a_thread_exit"),
            name,
            &[],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("{name} hung"));
        let (o, e) = texts(&out);
        assert!(
            o.contains("PROBE ok") && o.contains("CAUGHT-KILL true"),
            "{name}\n{o}\n{e}"
        );
        assert!(!o.contains("JOINED"), "{name}\n{o}");
        assert_eq!(e.matches("p56-c12-boom").count(), 1, "{name}\n{e}");
        if name == "c12_abort" {
            assert!(aborted(&out) && e.contains("aborting"), "{name}\n{e}");
        } else {
            assert!(out.status.success(), "{name} {:?}\n{e}", out.status);
        }
    }
}

// ------------------------------------------- c13..c20: Custom, joins

/// `Custom`: "Hand each failure to this function, at the greenlet's death".
/// A failure whose `link_exception` callbacks are still queued when the
/// thread exits: called once at the death (on the hub: a blocking call
/// there panics), nothing printed at the teardown (settled), the callbacks
/// dropped unrun.
#[test]
fn c13_custom_called_once_at_death_nothing_at_exit() {
    let Some((out, err)) =
        PROBE.thread_child("c13_custom_called_once_at_death_nothing_at_exit", || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|f| {
                    let blocked = catch_unwind(AssertUnwindSafe(yield_now)).is_err();
                    println!(
                        "POLICY-CALLED observed={} blocked-panics={blocked}",
                        f.observed
                    );
                })));
                let g = spawn(|| -> u32 { panic!("p56-c13-boom") });
                g.link_exception(|_| println!("CB-RAN"));
                g.link(|_| println!("CB-RAN"));
                yield_now(); // g dies; its callbacks are queued behind main
                assert!(g.is_dead());
            });
        })
    else {
        return;
    };
    assert_eq!(
        out.matches("POLICY-CALLED observed=true blocked-panics=true")
            .count(),
        1,
        "{out}"
    );
    assert!(!out.contains("CB-RAN"), "{out}");
    assert!(!err.contains("p56-c13-boom"), "{err}");
}

/// A `Custom` policy that cuts the failed greenlet's callbacks with
/// `unlink_all` from inside the policy (before they are spawned): called
/// once, the callbacks never run, nothing printed (the policy settled it),
/// and a later `join` still returns the panic.
#[test]
fn c14_custom_policy_that_unlinks_the_failed_greenlet() {
    let Some((out, err)) =
        PROBE.child("c14_custom_policy_that_unlinks_the_failed_greenlet", || {
            let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
            let s = slot.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                println!("POLICY-CALLED");
                if let Some(g) = s.borrow().as_ref() {
                    g.unlink_all();
                }
            })));
            let g = spawn(|| -> u32 { panic!("p56-c14-boom") });
            g.link_exception(|_| println!("CB-RAN"));
            g.link(|_| println!("CB-RAN"));
            *slot.borrow_mut() = Some(g);
            settle();
            let g = slot.borrow_mut().take().unwrap();
            let r = g.join();
            println!("JOINED {}", matches!(r, Err(Error::Panicked(_))));
        })
    else {
        return;
    };
    assert_eq!(out.matches("POLICY-CALLED").count(), 1, "{out}");
    assert!(
        !out.contains("CB-RAN") && out.contains("JOINED true"),
        "{out}"
    );
    assert!(!err.contains("p56-c14-boom"), "{err}");
}

/// `Failure::observed` at the death, as a `Custom` policy is told it: a
/// `link_value` is no observer, a `link` or a joiner is, callbacks cut by
/// `unlink_all` before the death no longer are.
#[test]
fn c15_custom_observed_flag_per_observer() {
    bounded(|| {
        let seen: Rc<RefCell<Vec<(String, bool)>>> = Rc::default();
        let s = seen.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
            let msg = f.error.panic().map(|p| p.message().to_owned()).unwrap();
            s.borrow_mut().push((msg, f.observed));
        })));
        let ev = Rc::new(Event::new());
        let a = fail_on(&ev, "value-only");
        a.link_value(|_| ());
        let b = fail_on(&ev, "link");
        b.link(|_| ());
        let c = fail_on(&ev, "cut");
        c.link_exception(|_| ());
        c.link(|_| ());
        c.unlink_all();
        let d = fail_on(&ev, "joined");
        let j = spawn(move || d.join().is_err());
        yield_now();
        ev.set();
        assert!(j.join().unwrap());
        settle();
        let mut got = seen.borrow().clone();
        got.sort();
        assert_eq!(
            got,
            [
                ("cut".to_owned(), false),
                ("joined".to_owned(), true),
                ("link".to_owned(), true),
                ("value-only".to_owned(), false),
            ]
        );
        drop((a, b, c));
        sylvan::set_error_policy(ErrorPolicy::Report);
    });
}

sylvan::greenlet_local! {
    static AT_EXIT: RefCell<Option<JoinAtExit>> = RefCell::new(None);
}

/// Joins a greenlet when main's greenlet-locals are dropped at thread
/// exit.
struct JoinAtExit(Option<Greenlet<u32>>);

impl Drop for JoinAtExit {
    fn drop(&mut self) {
        let r = self.0.take().unwrap().join();
        println!("JOINED-AT-EXIT {}", matches!(r, Err(Error::Panicked(_))));
    }
}

/// `Hub::teardown` drops main's greenlet-locals first, "while the hub
/// still works fully". A greenlet that fails while a main-local's
/// destructor joins it there is handed to a `Custom` policy (on the hub,
/// once: the hub is not closing yet), though the thread is exiting
/// (`Custom`'s doc: "A failure raised while the thread's hub tears down
/// ... is printed as `Report` prints instead"; this one is not). Under
/// `IgnoreObserved` the join takes it and nothing is printed.
#[test]
fn c16_a_failure_joined_by_a_main_local_destructor_at_exit() {
    let Some((out, err)) = PROBE.thread_child(
        "c16_a_failure_joined_by_a_main_local_destructor_at_exit",
        || {
            for custom in [true, false] {
                on_thread(move || {
                    if custom {
                        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|f| {
                            println!("POLICY-CALLED observed={}", f.observed)
                        })));
                    } else {
                        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                    }
                    let ev = Rc::new(Event::new());
                    let g = fail_on(&ev, "p56-c16-boom");
                    let e = ev.clone();
                    let _setter = spawn(move || {
                        sylvan::sleep(Duration::from_millis(1));
                        e.set();
                    });
                    AT_EXIT.with(|s| *s.borrow_mut() = Some(JoinAtExit(Some(g))));
                });
            }
        },
    ) else {
        return;
    };
    assert_eq!(out.matches("JOINED-AT-EXIT true").count(), 2, "{out}");
    assert_eq!(
        out.matches("POLICY-CALLED observed=true").count(),
        1,
        "{out}"
    );
    assert!(!err.contains("p56-c16-boom"), "{err}");
}

/// `Abort` put in force after an `IgnoreObserved` death whose failure a
/// callback ran with, and after one a `join` took: the thread exits
/// without aborting (both settled).
#[test]
fn c17_abort_after_settled_ignore_observed_deaths_does_not_abort() {
    let Some(out) = PROBE.raw_child(
        "c17_abort_after_settled_ignore_observed_deaths_does_not_abort",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let a = spawn(|| -> u32 { panic!("p56-c17-a") });
                a.link_exception(|_| println!("CB-RAN"));
                let ev = Rc::new(Event::new());
                let b = fail_on(&ev, "p56-c17-b");
                let j = spawn(move || b.join().is_err());
                yield_now(); // a dies (its callback queued), b parks, j joins
                ev.set();
                settle();
                assert!(j.join().unwrap());
                sylvan::set_error_policy(ErrorPolicy::Abort);
                drop(a);
            });
            println!("THREAD-EXITED");
        },
    ) else {
        return;
    };
    let (o, e) = texts(&out);
    assert!(
        out.status.success() && o.contains("THREAD-EXITED") && o.contains("CB-RAN"),
        "{:?}\n{o}\n{e}",
        out.status
    );
    assert!(!e.contains("p56-c17") && !e.contains("aborting"), "{e}");
}

/// `Abort` at teardown with callbacks on the failing greenlet: the report
/// is printed once and the process aborts, before any callback's drop
/// could print it again.
#[test]
fn c18_abort_at_teardown_with_callbacks_prints_once() {
    let Some(out) = PROBE.raw_child("c18_abort_at_teardown_with_callbacks_prints_once", || {
        on_thread(|| {
            sylvan::set_error_policy(ErrorPolicy::Abort);
            let g = catches_exit_kill(|| panic!("p56-c18-boom"));
            g.link_exception(|_| println!("CB-RAN"));
            g.link(|_| println!("CB-RAN"));
            yield_now();
        });
        println!("THREAD-EXITED");
    }) else {
        return;
    };
    let (o, e) = texts(&out);
    assert!(aborted(&out), "{:?}\n{o}\n{e}", out.status);
    assert!(!o.contains("THREAD-EXITED") && !o.contains("CB-RAN"), "{o}");
    assert_eq!(e.matches("p56-c18-boom").count(), 1, "{e}");
    assert_eq!(
        e.matches("aborting because the error policy is ErrorPolicy::Abort")
            .count(),
        1,
        "{e}"
    );
}

/// `IgnoreObserved`, "unless another callback ran with it or a `join`
/// takes it": a join that comes after the cut callback was dropped (it
/// waited with `wait`, so it was no join when the callback dropped) gets
/// the failure that the drop printed already. Pinned as it stands
/// (doubtful: the user sees the failure twice, on stderr and from `join`;
/// but the drop cannot know a join will come).
#[test]
fn c19_a_join_after_the_cut_callback_dropped_gets_a_printed_failure() {
    let Some((out, err)) = PROBE.child(
        "c19_a_join_after_the_cut_callback_dropped_gets_a_printed_failure",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let ev = Rc::new(Event::new());
            let g = Rc::new(fail_on(&ev, "p56-c19-boom"));
            let gc = g.clone();
            let _c = spawn(move || {
                assert!(gc.wait(None));
                gc.unlink_all();
            });
            yield_now();
            g.link_exception(|_| println!("CB-RAN"));
            let gj = g.clone();
            let _j = spawn(move || {
                assert!(gj.wait(None));
                let g = Rc::try_unwrap(gj).expect("the only handle");
                let r = g.join();
                println!("JOINED {}", matches!(r, Err(Error::Panicked(_))));
            });
            drop(g);
            yield_now(); // the joiner waits, after the callback
            ev.set();
            settle();
        },
    ) else {
        return;
    };
    assert!(
        out.contains("JOINED true") && !out.contains("CB-RAN"),
        "{out}"
    );
    assert_eq!(err.matches("p56-c19-boom").count(), 1, "{err}");
}

/// `IgnoreObserved`: a greenlet killed (not failed) during the teardown
/// and one that returns after catching the kill, each with a joiner and
/// callbacks: nothing printed; one that panics after catching it beside
/// them is printed once (killed vs returned vs panicked at exit).
#[test]
fn c20_killed_returned_and_panicked_at_exit_with_joiners() {
    let Some((out, err)) = PROBE.thread_child(
        "c20_killed_returned_and_panicked_at_exit_with_joiners",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let killed = spawn(|| -> u32 {
                    sylvan::sleep(LONG);
                    0
                });
                let returned = catches_exit_kill(|| 1);
                let panicked = catches_exit_kill(|| panic!("p56-c20-boom"));
                let mut joiners = Vec::new();
                for g in [killed, returned, panicked] {
                    g.link_exception(|_| println!("CB-RAN"));
                    g.link(|_| println!("CB-RAN"));
                    joiners.push(spawn(move || {
                        let r = g.join();
                        println!("JOINED {r:?}");
                    }));
                }
                yield_now();
            });
        },
    ) else {
        return;
    };
    assert_eq!(out.matches("CAUGHT-KILL true").count(), 2, "{out}");
    assert!(!out.contains("CB-RAN") && !out.contains("JOINED"), "{out}");
    assert_eq!(err.matches("p56-c20-boom").count(), 1, "{err}");
    assert!(!err.contains("greenlet was killed"), "{err}");
}

/// `IgnoreObserved`'s doc: a callback "dropped without running (the thread
/// exits before its greenlet starts, say right after `Pool::join`...)
/// prints it then, as `Report` would". Pool members with `link_exception`
/// callbacks, the thread exiting right after `Pool::join`: each failure
/// printed once, the one whose member returned not at all.
#[test]
fn c21_pool_join_then_thread_exit_prints_each_failure_once() {
    let Some((out, err)) = PROBE.thread_child(
        "c21_pool_join_then_thread_exit_prints_each_failure_once",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let pool = sylvan::pool::Pool::new(4);
                let a = pool.spawn(|| -> u32 { panic!("p56-c21-a") });
                let b = pool.spawn(|| -> u32 {
                    yield_now();
                    panic!("p56-c21-b")
                });
                let c = pool.spawn(|| -> u32 { 3 });
                for g in [&a, &b, &c] {
                    g.link_exception(|_| println!("CB-RAN"));
                }
                pool.join();
                assert!(a.is_dead() && b.is_dead() && c.is_dead());
                println!("EXITING");
            });
        },
    ) else {
        return;
    };
    // a died first: its callback ran while `Pool::join` waited for b; b's
    // callback greenlet had not started when the thread exited.
    assert!(out.contains("EXITING"), "{out}");
    assert_eq!(out.matches("CB-RAN").count(), 1, "{out}");
    assert!(!err.contains("p56-c21-a"), "{err}");
    assert_eq!(err.matches("p56-c21-b").count(), 1, "{err}");
}

/// Hubs are per thread: several threads exiting at once, each with a
/// failure raised during its teardown (under `Report` and
/// `IgnoreObserved`, with a callback or a joiner), print each failure once
/// and never another thread's twice.
#[test]
fn c22_several_threads_exiting_with_teardown_failures() {
    let Some((out, err)) =
        PROBE.thread_child("c22_several_threads_exiting_with_teardown_failures", || {
            let threads: Vec<_> = (0..4u32)
                .map(|i| {
                    std::thread::spawn(move || {
                        sylvan::set_error_policy(if i % 2 == 0 {
                            ErrorPolicy::Report
                        } else {
                            ErrorPolicy::IgnoreObserved
                        });
                        let g = catches_exit_kill(move || panic!("p56-c22-t{i}-boom"));
                        if i < 2 {
                            g.link_exception(|_| println!("CB-RAN"));
                        } else {
                            let _j = spawn(move || {
                                let r = g.join();
                                println!("JOINED {}", r.is_err());
                            });
                        }
                        yield_now();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        })
    else {
        return;
    };
    assert_eq!(out.matches("CAUGHT-KILL true").count(), 4, "{out}");
    assert!(!out.contains("CB-RAN") && !out.contains("JOINED"), "{out}");
    for i in 0..4 {
        assert_eq!(
            err.matches(&format!("p56-c22-t{i}-boom")).count(),
            1,
            "{err}"
        );
    }
}
