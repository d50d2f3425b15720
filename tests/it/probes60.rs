//! Probe round 60: a hostile review of 7471320 (a `join` that ends without
//! taking a failure prints it: `UntakenFailure` in task.rs; and
//! `set_error_policy` drops the old policy outside its cell).
//!
//! The rules (`ErrorPolicy`'s docs): a failure reaches the policy only at
//! the death, on the hub; it is settled once the policy handled it or a
//! `link`/`link_exception` callback ran with it; a callback dropped unrun
//! prints an unsettled failure once (aborting under `Abort`); under
//! `IgnoreObserved` a failure observed only by waiters is left to them, a
//! `join` takes it, and a `join` that ends without taking it prints it.
//! Reported once at most; `Custom` is never called off the hub.
//!
//! * `d01..d03`: a `join` that ends while the failure's `link_exception`
//!   callback is still queued (from a destructor while unwinding, from a
//!   `Custom` policy on the hub), and one that ends after the callback
//!   started.
//! * `d04..d12`: the joiner killed or timed out at each stage (before the
//!   death, after it, at thread exit on a std thread and at process exit
//!   on the main thread), per outcome (panicked, timed out, caught its
//!   kill then panicked, killed, returned) and per policy (`Report`,
//!   `Custom`, `Abort`, a policy changed after the death).
//! * `d13..d15`: `join` called while unwinding, from inside the target's
//!   own link callback, from a main-local destructor at thread exit.
//! * `d16..d19`: `set_error_policy` from inside a `Custom` policy, from a
//!   policy's own drop, many times while greenlets fail.
//!
//! Bugs found (fixed since): `d01`, `d02`: a `join` that ends early while the
//! failure's `link_exception` callback is queued but not started prints
//! the failure, and the callback then runs with it ("settled once ... a
//! callback ran with it": it must not be printed). `UntakenFailure` does
//! not look at the callbacks still to run (`borrowers`); its
//! `report_unobserved` only defers to a join in `borrow_waiters`. `d16`: a
//! `Custom` policy that replaces itself from inside its call is dropped on
//! the hub by `Hub::report` (which holds the last clone), so captures that
//! yield on drop panic on the hub. Fixed: the guard holds back while
//! callbacks are to come, and `report` drops a replaced `Custom` policy in
//! a greenlet of its own.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use sylvan::sync::Event;
use sylvan::{Error, ErrorPolicy, Greenlet, Timeout, spawn, yield_now};

use crate::util::{
    CHILD_ENV, DropFlag, ExitProbe, YieldOnDrop, aborted, fail_on, is_child, on_thread,
    run_child_limited, settle, texts, yield_until,
};

const LONG: Duration = Duration::from_secs(3600);

const P: &str = "probes60::";

const PROBE: ExitProbe = ExitProbe(P);

/// A greenlet named `name` whose timeout expires (caught), then that parks
/// until `ev` is set and lets that timeout escape (`Error::TimedOut`).
/// `fired` is set once the timeout was caught.
fn time_out_on(ev: &Rc<Event>, name: &str, fired: &Rc<Cell<bool>>) -> Greenlet<u32> {
    let ev = ev.clone();
    let fired = fired.clone();
    sylvan::Builder::new()
        .name(name)
        .spawn(move || -> u32 {
            let t = Timeout::start(Duration::from_millis(1));
            let expired = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG))).unwrap_err();
            drop(t);
            fired.set(true);
            ev.wait();
            std::panic::resume_unwind(expired)
        })
        .unwrap()
}

/// Joins its greenlet when dropped, saying how the join ended.
struct JoinOnDrop(Option<Greenlet<u32>>, &'static str);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        let r = self.0.take().unwrap().join();
        let how = match &r {
            Err(Error::Unwinding) => "unwinding",
            Err(Error::Panicked(_)) => "panicked",
            Err(Error::Killed) => "killed",
            Err(_) => "other",
            Ok(_) => "ok",
        };
        println!("{} {how} panicking={}", self.1, std::thread::panicking());
    }
}

// ------------------------------------- d01..d03: callbacks still to run

/// `IgnoreObserved`: a failure with a `link_exception` callback is left to
/// it, and "settled once ... a callback ran with it". Here the callback is
/// queued (behind main) when main, unwinding, drops a value that joins the
/// dead greenlet: the join must wait for the callback, cannot (it is
/// unwinding) and returns `Error::Unwinding`. `UntakenFailure` then prints
/// the failure (it checks only `failure_settled`, which the callback sets
/// when it starts), and the callback runs with it just after: printed
/// although a callback ran with it.
#[test]

fn d01_unwinding_join_while_the_callback_is_queued_leaves_it_to_the_callback() {
    let Some((out, err)) = PROBE.child(
        "d01_unwinding_join_while_the_callback_is_queued_leaves_it_to_the_callback",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let g = spawn(|| -> u32 { panic!("p60-d01-boom") });
            g.link_exception(|e| println!("CB-RAN {}", e.is_panic()));
            yield_now(); // g dies; its callback is queued behind main
            assert!(g.is_dead());
            let r = catch_unwind(AssertUnwindSafe(|| {
                let _j = JoinOnDrop(Some(g), "D01-JOIN");
                panic!("p60-d01-unwind")
            }));
            assert!(r.is_err());
            settle();
        },
    ) else {
        return;
    };
    assert!(
        out.contains("D01-JOIN unwinding panicking=true") && out.contains("CB-RAN true"),
        "{out}"
    );
    assert!(!err.contains("p60-d01-boom"), "{err}");
}

/// d01 from a `Custom` policy (on the hub): g died under `IgnoreObserved`
/// with a queued `link_exception` callback; the policy then in force is a
/// `Custom` one that joins g when another greenlet fails. The join cannot
/// wait on the hub (it panics there, caught by the policy), and the guard
/// prints g's failure; g's callback runs with it just after.
#[test]

fn d02_join_from_custom_while_the_callback_is_queued_leaves_it_to_the_callback() {
    let Some((out, err)) = PROBE.child(
        "d02_join_from_custom_while_the_callback_is_queued_leaves_it_to_the_callback",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
            let g = spawn(|| -> u32 { panic!("p60-d02-boom") });
            g.link_exception(|e| println!("CB-RAN {}", e.is_panic()));
            let s = slot.clone();
            let _switch = spawn(move || {
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
                    println!("POLICY-CALLED {}", f.error.panic().unwrap().message());
                    if let Some(g) = s.borrow_mut().take() {
                        let r = catch_unwind(AssertUnwindSafe(|| g.join()));
                        println!("POLICY-JOIN panicked={}", r.is_err());
                    }
                })));
            });
            let _h = spawn(|| -> u32 { panic!("p60-d02-other") });
            *slot.borrow_mut() = Some(g);
            // g dies (its callback queued behind main), the policy is
            // switched, h dies and the policy joins g: all before main.
            yield_now();
            settle();
            sylvan::set_error_policy(ErrorPolicy::Report);
        },
    ) else {
        return;
    };
    assert!(
        out.contains("POLICY-CALLED p60-d02-other")
            && out.contains("POLICY-JOIN panicked=true")
            && out.contains("CB-RAN true"),
        "{out}"
    );
    assert!(!out.contains("POLICY-CALLED p60-d02-boom"), "{out}");
    assert!(!err.contains("p60-d02-boom"), "{err}");
}

/// The joiner is killed while it waits for a callback that already started
/// (it sleeps with the failure): the callback ran with it, so nothing is
/// printed, and the callback finishes.
#[test]
fn d03_joiner_killed_while_a_started_callback_sleeps_prints_nothing() {
    let Some((out, err)) = PROBE.child(
        "d03_joiner_killed_while_a_started_callback_sleeps_prints_nothing",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let ev = Rc::new(Event::new());
            let g = fail_on(&ev, "p60-d03-boom");
            g.link_exception(|e| {
                println!("CB-RAN {}", e.is_panic());
                sylvan::sleep(Duration::from_millis(5));
                println!("CB-DONE");
            });
            let j = spawn(move || {
                let r = g.join();
                println!("JOINED {}", r.is_err());
            });
            yield_now(); // g parks, j in join
            ev.set();
            yield_now(); // g dies: callback, then j, queued behind main
            yield_now(); // the callback starts and sleeps; j waits for it
            j.kill();
            println!("KILLED");
            settle();
        },
    ) else {
        return;
    };
    assert!(
        out.contains("CB-RAN true") && out.contains("CB-DONE") && out.contains("KILLED"),
        "{out}"
    );
    assert!(!out.contains("JOINED"), "{out}");
    assert!(!err.contains("p60-d03-boom"), "{err}");
}

// ------------------------------------- d04..d12: the joiner killed

/// A joiner killed before the death (on a std thread): the guard has no
/// dead greenlet to print; the death, with no waiter left, is unobserved
/// and printed at once by `IgnoreObserved`. Once.
#[test]
fn d04_joiner_killed_before_the_death_printed_once_at_the_death() {
    let Some((out, err)) = PROBE.thread_child(
        "d04_joiner_killed_before_the_death_printed_once_at_the_death",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let ev = Rc::new(Event::new());
                let g = fail_on(&ev, "p60-d04-boom");
                let j = spawn(move || {
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now();
                j.kill();
                println!("KILLED");
                ev.set();
                settle();
                println!("AFTER");
            });
        },
    ) else {
        return;
    };
    assert!(
        out.contains("KILLED") && out.contains("AFTER") && !out.contains("JOINED"),
        "{out}"
    );
    assert_eq!(err.matches("p60-d04-boom").count(), 1, "{err}");
}

/// c23 of probes56 with an escaped timeout (`Error::TimedOut`) instead of
/// a panic: the joiner killed after the death, before it ran, prints it
/// once.
#[test]
fn d05_timed_out_target_joiner_killed_after_the_death_printed_once() {
    let Some((out, err)) = PROBE.child(
        "d05_timed_out_target_joiner_killed_after_the_death_printed_once",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let ev = Rc::new(Event::new());
            let fired = Rc::new(Cell::new(false));
            let g = time_out_on(&ev, "p60-d05-g", &fired);
            let j = spawn(move || {
                let r = g.join();
                println!("JOINED {r:?}");
            });
            yield_until("the timeout fired", || fired.get());
            yield_now(); // g parks on the event, j in join
            ev.set();
            yield_now(); // g dies timed out; j queued behind main
            j.kill();
            println!("KILLED");
            settle();
        },
    ) else {
        return;
    };
    assert!(out.contains("KILLED") && !out.contains("JOINED"), "{out}");
    assert_eq!(err.matches("p60-d05-g").count(), 1, "{err}");
    assert_eq!(
        err.matches("greenlet ended by an expired timeout").count(),
        1,
        "{err}"
    );
}

/// A target that catches its kill, then panics (its killer does not wait:
/// `kill_nowait`); the joiner is killed after the death, before it ran:
/// printed once (by the guard), on a std thread.
#[test]
fn d06_target_caught_its_kill_then_panicked_joiner_killed_once() {
    let Some((out, err)) = PROBE.thread_child(
        "d06_target_caught_its_kill_then_panicked_joiner_killed_once",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let ev = Rc::new(Event::new());
                let e = ev.clone();
                let g = Rc::new(spawn(move || -> u32 {
                    let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
                    println!("CAUGHT-KILL {}", r.is_err());
                    e.wait();
                    panic!("p60-d06-boom")
                }));
                yield_now(); // g sleeps
                g.kill_nowait();
                yield_now(); // g catches the kill, parks on the event
                let j = spawn(move || {
                    let g = Rc::try_unwrap(g).expect("the only handle");
                    let r = g.join();
                    println!("JOINED {}", r.is_err());
                });
                yield_now(); // j in join
                ev.set();
                yield_now(); // g dies; j queued behind main
                j.kill();
                println!("KILLED-J");
                settle();
            });
        },
    ) else {
        return;
    };
    assert!(
        out.contains("CAUGHT-KILL true") && out.contains("KILLED-J") && !out.contains("JOINED"),
        "{out}"
    );
    assert_eq!(err.matches("p60-d06-boom").count(), 1, "{err}");
}

/// `Report`: the failure is printed at the death (once); killing the joiner
/// afterwards adds nothing. `Custom`: called once at the death, nothing
/// printed, nothing more when the joiner is killed. Each on a std thread.
#[test]
fn d07_report_and_custom_joiner_killed_after_the_death_nothing_more() {
    let Some((out, err)) = PROBE.thread_child(
        "d07_report_and_custom_joiner_killed_after_the_death_nothing_more",
        || {
            for custom in [false, true] {
                on_thread(move || {
                    if custom {
                        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|f| {
                            println!("POLICY-CALLED observed={}", f.observed)
                        })));
                    }
                    let ev = Rc::new(Event::new());
                    let g = fail_on(&ev, if custom { "p60-d07-c" } else { "p60-d07-r" });
                    let j = spawn(move || {
                        let r = g.join();
                        println!("JOINED {}", r.is_err());
                    });
                    yield_now();
                    ev.set();
                    yield_now(); // g dies; j queued behind main
                    j.kill();
                    println!("KILLED {custom}");
                    settle();
                });
            }
        },
    ) else {
        return;
    };
    assert!(
        out.contains("KILLED false") && out.contains("KILLED true") && !out.contains("JOINED"),
        "{out}"
    );
    assert_eq!(
        out.matches("POLICY-CALLED observed=true").count(),
        1,
        "{out}"
    );
    assert_eq!(err.matches("p60-d07-r").count(), 1, "{err}");
    assert!(!err.contains("p60-d07-c"), "{err}");
}

/// A failure left to a join under `IgnoreObserved`, then a `Custom`
/// policy put in force before the joiner is killed: the guard prints it as
/// `Report` prints ("reported later by ... a `join` that did not take it,
/// is printed as `Report` prints instead"), and `Custom` is not called.
#[test]
fn d08_policy_changed_to_custom_before_the_joiner_is_killed() {
    let Some((out, err)) = PROBE.child(
        "d08_policy_changed_to_custom_before_the_joiner_is_killed",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let ev = Rc::new(Event::new());
            let g = fail_on(&ev, "p60-d08-boom");
            let j = spawn(move || {
                let r = g.join();
                println!("JOINED {}", r.is_err());
            });
            yield_now();
            ev.set();
            yield_now(); // g dies; j queued behind main
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| println!("POLICY-CALLED"))));
            j.kill();
            println!("KILLED");
            settle();
            sylvan::set_error_policy(ErrorPolicy::Report);
        },
    ) else {
        return;
    };
    assert!(
        out.contains("KILLED") && !out.contains("JOINED") && !out.contains("POLICY-CALLED"),
        "{out}"
    );
    assert_eq!(err.matches("p60-d08-boom").count(), 1, "{err}");
}

/// `Abort` put in force after an `IgnoreObserved` death left to a join:
/// the killed join reports it as a callback dropped unrun does, "aborting
/// under `Abort`": printed once, then the process aborts. And the same
/// with the join taking the failure: no abort.
#[test]
fn d09_abort_after_the_death_the_killed_join_aborts_the_taking_one_not() {
    for take in [false, true] {
        let name = if take { "d09_take" } else { "d09_kill" };
        if is_child(name) {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let ev = Rc::new(Event::new());
            let g = fail_on(&ev, "p60-d09-boom");
            let j = spawn(move || {
                let r = g.join();
                println!("JOINED {}", r.is_err());
            });
            yield_now();
            ev.set();
            yield_now(); // g dies; j queued behind main
            sylvan::set_error_policy(ErrorPolicy::Abort);
            if take {
                j.join().unwrap();
            } else {
                j.kill();
            }
            println!("AFTER");
            return;
        }
    }
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    for take in [false, true] {
        let name = if take { "d09_take" } else { "d09_kill" };
        let out = run_child_limited(
            &format!("{P}d09_abort_after_the_death_the_killed_join_aborts_the_taking_one_not"),
            name,
            &[],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("{name} hung"));
        let (o, e) = texts(&out);
        if take {
            assert!(
                out.status.success() && o.contains("JOINED true") && o.contains("AFTER"),
                "{name} {:?}\n{o}\n{e}",
                out.status
            );
            assert!(
                !e.contains("p60-d09-boom") && !e.contains("aborting"),
                "{e}"
            );
        } else {
            assert!(aborted(&out), "{name} {:?}\n{o}\n{e}", out.status);
            assert!(!o.contains("AFTER") && !o.contains("JOINED"), "{o}");
            assert_eq!(e.matches("p60-d09-boom").count(), 1, "{e}");
            assert_eq!(e.matches("aborting because").count(), 1, "{e}");
        }
    }
}

/// A joiner in `with_timeout` whose timeout expires in the same turn as
/// the target's sleep (the hub's thread blocked past both): the target is
/// woken first (earlier deadline) and dies; the joiner's wake-up is the
/// timeout, so its join ends without the failure and prints it, once. And
/// the plain case: a join that takes the failure under `with_timeout`
/// prints nothing.
#[test]
fn d10_timeout_around_join_expiring_with_the_death_prints_once() {
    let Some((out, err)) = PROBE.child(
        "d10_timeout_around_join_expiring_with_the_death_prints_once",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let join_under = |g: Greenlet<u32>, d: Duration, tag: &'static str| {
                spawn(move || match sylvan::with_timeout(d, || g.join()) {
                    Ok(Err(Error::Panicked(_))) => println!("{tag} TOOK"),
                    Err(_) => println!("{tag} ELAPSED"),
                    Ok(other) => println!("{tag} ODD {other:?}"),
                })
            };
            let g = spawn(|| -> u32 {
                sylvan::sleep(Duration::from_millis(5));
                panic!("p60-d10-raced")
            });
            let _j = join_under(g, Duration::from_millis(10), "RACED");
            yield_now(); // g sleeps, j in join under its timeout
            std::thread::sleep(Duration::from_millis(30)); // both overdue
            settle();
            let ev = Rc::new(Event::new());
            let g = fail_on(&ev, "p60-d10-taken");
            let _j = join_under(g, Duration::from_millis(500), "PLAIN");
            yield_now(); // g parks, j in join
            ev.set();
            settle();
        },
    ) else {
        return;
    };
    assert!(
        out.contains("RACED ELAPSED") && out.contains("PLAIN TOOK"),
        "{out}"
    );
    assert_eq!(err.matches("p60-d10-raced").count(), 1, "{out}\n{err}");
    assert!(!err.contains("p60-d10-taken"), "{err}");
}

/// The hub of the process's main thread torn down by `process::exit`
/// (c12 of probes56) just after a failure left to a join: the exit kills
/// the joiner, whose join prints the failure, once.
#[test]
fn d11_process_exit_kills_a_joiner_after_the_death_printed_once() {
    let name = "d11_child";
    if is_child(name) {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        let ev = Rc::new(Event::new());
        let g = fail_on(&ev, "p60-d11-boom");
        let _j = spawn(move || {
            let r = g.join();
            println!("JOINED {}", r.is_err());
        });
        yield_now();
        ev.set();
        yield_now(); // g dies; j queued behind main
        println!("EXITING");
        std::process::exit(0);
    }
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let out = run_child_limited(
        &format!("{P}d11_process_exit_kills_a_joiner_after_the_death_printed_once"),
        name,
        &[],
        Duration::from_secs(10),
    )
    .expect("hung");
    let (o, e) = texts(&out);
    assert!(out.status.success(), "{:?}\n{o}\n{e}", out.status);
    assert!(o.contains("EXITING") && !o.contains("JOINED"), "{o}");
    assert_eq!(e.matches("p60-d11-boom").count(), 1, "{o}\n{e}");
}

/// Joins of greenlets that were killed (a `GreenletExit` unwind) or
/// returned, the joiners killed after the deaths: nothing to print (no
/// failure), under `IgnoreObserved` and under `Abort` (which must not
/// abort), each on a std thread.
#[test]
fn d12_killed_or_returned_targets_joiners_killed_nothing_printed() {
    let Some(out) = PROBE.raw_child(
        "d12_killed_or_returned_targets_joiners_killed_nothing_printed",
        || {
            for abort in [false, true] {
                on_thread(move || {
                    sylvan::set_error_policy(if abort {
                        ErrorPolicy::Abort
                    } else {
                        ErrorPolicy::IgnoreObserved
                    });
                    let ev = Rc::new(Event::new());
                    let e = ev.clone();
                    let returned = spawn(move || -> u32 {
                        e.wait();
                        7
                    });
                    let e = ev.clone();
                    let killed = spawn(move || -> u32 {
                        e.wait();
                        std::panic::resume_unwind(Box::new(sylvan::GreenletExit))
                    });
                    let ja = spawn(move || {
                        let r = returned.join();
                        println!("JOINED {r:?}");
                    });
                    let jb = spawn(move || {
                        let r = killed.join();
                        println!("JOINED {r:?}");
                    });
                    yield_now(); // both park, both joiners in join
                    ev.set();
                    yield_now(); // both die; the joiners queued behind main
                    assert_eq!(sylvan::stats().alive, 2);
                    ja.kill_nowait();
                    jb.kill_nowait();
                    settle();
                    println!("KILLED {abort}");
                });
            }
            println!("THREADS-EXITED");
        },
    ) else {
        return;
    };
    let (o, e) = texts(&out);
    assert!(
        out.status.success()
            && o.contains("KILLED false")
            && o.contains("KILLED true")
            && o.contains("THREADS-EXITED")
            && !o.contains("JOINED"),
        "{:?}\n{o}\n{e}",
        out.status
    );
    assert!(
        !e.contains("aborting") && !e.contains("greenlet was killed"),
        "{e}"
    );
}

// ------------------------------------- d13..d15: where join is called

/// `join` called while unwinding: on a live target it returns
/// `Error::Unwinding` at once, and the later death (no waiter left) is
/// printed once at the death; on a dead target whose failure was left to
/// a `wait`er, it takes the failure (returned, not printed).
#[test]
fn d13_join_while_unwinding_live_and_dead_targets() {
    let Some((out, err)) = PROBE.child("d13_join_while_unwinding_live_and_dead_targets", || {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        let ev = Rc::new(Event::new());
        let live = fail_on(&ev, "p60-d13-live");
        let dead = Rc::new(fail_on(&ev, "p60-d13-dead"));
        let d = dead.clone();
        let _w = spawn(move || println!("WAITED {}", d.wait(None)));
        yield_now(); // both park, the waiter waits on `dead`
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _j = JoinOnDrop(Some(live), "D13-LIVE");
            panic!("p60-d13-unwind")
        }));
        assert!(r.is_err());
        ev.set();
        settle();
        let dead = Rc::try_unwrap(dead).expect("the only handle");
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _j = JoinOnDrop(Some(dead), "D13-DEAD");
            panic!("p60-d13-unwind")
        }));
        assert!(r.is_err());
        settle();
    }) else {
        return;
    };
    assert!(
        out.contains("D13-LIVE unwinding panicking=true")
            && out.contains("D13-DEAD panicked panicking=true")
            && out.contains("WAITED true"),
        "{out}"
    );
    assert_eq!(err.matches("p60-d13-live").count(), 1, "{err}");
    assert!(!err.contains("p60-d13-dead"), "{err}");
}

/// `join` from inside the target's own link callback panics by design; the
/// callback had settled the failure when it started, so the unwinding
/// join's guard prints nothing of it (the callback's own panic, caught
/// there, is no failure).
#[test]
fn d14_join_from_its_own_callback_panics_and_prints_nothing() {
    let Some((out, err)) = PROBE.child(
        "d14_join_from_its_own_callback_panics_and_prints_nothing",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
            let g = spawn(|| -> u32 { panic!("p60-d14-boom") });
            let s = slot.clone();
            g.link_exception(move |_| {
                let g = s.borrow_mut().take().unwrap();
                let r = catch_unwind(AssertUnwindSafe(|| g.join()));
                let msg = r
                    .err()
                    .and_then(|p| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                println!(
                    "CB-JOIN own-callback={}",
                    msg.contains("own link callbacks")
                );
            });
            *slot.borrow_mut() = Some(g);
            settle();
        },
    ) else {
        return;
    };
    assert!(out.contains("CB-JOIN own-callback=true"), "{out}\n{err}");
    assert!(!err.contains("p60-d14-boom"), "{err}");
}

sylvan::greenlet_local! {
    static AT_EXIT: RefCell<Option<JoinOnDrop>> = const { RefCell::new(None) };
}

/// Main's greenlet-local destructor joins, at thread exit, a greenlet
/// that failed just before under `IgnoreObserved` with a queued
/// `link_exception` callback: the hub still works then, so the join waits
/// for the callback, which runs; the join returns the failure; nothing is
/// printed.
#[test]
fn d15_main_local_join_at_exit_waits_for_the_queued_callback() {
    let Some((out, err)) = PROBE.thread_child(
        "d15_main_local_join_at_exit_waits_for_the_queued_callback",
        || {
            on_thread(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let g = spawn(|| -> u32 { panic!("p60-d15-boom") });
                g.link_exception(|e| println!("CB-RAN {}", e.is_panic()));
                yield_now(); // g dies; its callback queued behind main
                AT_EXIT.with(|s| *s.borrow_mut() = Some(JoinOnDrop(Some(g), "D15-JOIN")));
            });
        },
    ) else {
        return;
    };
    assert!(
        out.contains("CB-RAN true") && out.contains("D15-JOIN panicked panicking=false"),
        "{out}"
    );
    assert!(!err.contains("p60-d15-boom"), "{err}");
}

// ------------------------------------- d16..d19: set_error_policy

/// A `Custom` policy that replaces itself from inside its call: the
/// replacement drops nothing (`Hub::report` holds a clone for the call),
/// and the old policy is dropped at the end of `report`, on the hub. Its
/// captures yield on drop (c04 of probes56, the case 7471320 was about):
/// a yield on the hub panics there. Expected: the next failure goes to the
/// new policy, nothing panics.
#[test]

fn d16_custom_replacing_itself_with_captures_that_yield_on_drop() {
    let Some((out, err)) = PROBE.thread_child(
        "d16_custom_replacing_itself_with_captures_that_yield_on_drop",
        || {
            on_thread(|| {
                let held = YieldOnDrop;
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                    let _ = &held;
                    println!("POLICY-CALLED");
                    sylvan::set_error_policy(ErrorPolicy::Report);
                })));
                let a = spawn(|| -> u32 { panic!("p60-d16-a") });
                let ra = a.join();
                let b = spawn(|| -> u32 { panic!("p60-d16-b") });
                let rb = b.join();
                println!(
                    "JOINED {} {}",
                    matches!(ra, Err(Error::Panicked(_))),
                    matches!(rb, Err(Error::Panicked(_)))
                );
            });
        },
    ) else {
        return;
    };
    assert_eq!(out.matches("POLICY-CALLED").count(), 1, "{out}\n{err}");
    assert!(out.contains("JOINED true true"), "{out}\n{err}");
    assert!(!err.contains("p60-d16-a"), "{err}");
    assert_eq!(err.matches("p60-d16-b").count(), 1, "{err}");
    assert!(!err.contains("cannot") && !err.contains("hub"), "{err}");
}

/// A `Custom` policy replacing itself from inside its call (plain
/// captures): the call finishes, the next failure goes to the new policy,
/// and the old policy's captures are dropped once, after its call.
#[test]
fn d17_custom_replacing_itself_next_failure_goes_to_the_new_policy() {
    let Some((out, err)) = PROBE.child(
        "d17_custom_replacing_itself_next_failure_goes_to_the_new_policy",
        || {
            let drops = Rc::new(Cell::new(0));
            let flag = DropFlag(drops.clone());
            let d = drops.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
                let _ = &flag;
                let msg = f.error.panic().unwrap().message().to_owned();
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
                    println!("SECOND {}", f.error.panic().unwrap().message())
                })));
                println!("FIRST {msg} dropped-yet={}", d.get());
            })));
            let a = spawn(|| -> u32 { panic!("p60-d17-a") });
            assert!(a.join().is_err());
            println!("DROPS {}", drops.get());
            let b = spawn(|| -> u32 { panic!("p60-d17-b") });
            assert!(b.join().is_err());
            sylvan::set_error_policy(ErrorPolicy::Report);
        },
    ) else {
        return;
    };
    assert!(
        out.contains("FIRST p60-d17-a dropped-yet=0")
            && out.contains("DROPS 1")
            && out.contains("SECOND p60-d17-b"),
        "{out}"
    );
    assert_eq!(out.matches("FIRST").count(), 1, "{out}");
    assert!(!err.contains("p60-d17"), "{err}");
}

/// Sets a policy from its destructor.
struct SetOnDrop(Rc<Cell<u32>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        let n = self.0.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
            let _ = &n;
            println!("SET-BY-DROP-CALLED");
        })));
    }
}

/// `set_error_policy` from the old policy's own drop: the old policy is
/// dropped after the new one is in, so the nested call replaces the
/// policy just set (pinned: the policy set by the drop wins), without a
/// borrow panic, and the replaced one is dropped once.
#[test]
fn d18_set_error_policy_from_the_old_policys_drop() {
    let Some((out, err)) = PROBE.child("d18_set_error_policy_from_the_old_policys_drop", || {
        let drops = Rc::new(Cell::new(0));
        let on_drop = SetOnDrop(drops.clone());
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
            let _ = &on_drop;
            println!("OLD-CALLED");
        })));
        let r = catch_unwind(AssertUnwindSafe(|| {
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| println!("NEW-CALLED"))))
        }));
        println!("SET-OK {} drops={}", r.is_ok(), drops.get());
        let g = spawn(|| -> u32 { panic!("p60-d18-boom") });
        assert!(g.join().is_err());
        sylvan::set_error_policy(ErrorPolicy::Report);
    }) else {
        return;
    };
    assert!(out.contains("SET-OK true drops=1"), "{out}\n{err}");
    assert_eq!(
        out.matches("SET-BY-DROP-CALLED").count()
            + out.matches("NEW-CALLED").count()
            + out.matches("OLD-CALLED").count(),
        1,
        "{out}"
    );
    assert!(out.contains("SET-BY-DROP-CALLED"), "{out}");
    assert!(
        !err.contains("p60-d18-boom") && !err.contains("already"),
        "{err}"
    );
}

/// Many replacements while greenlets fail: each policy's drop yields (a
/// failure queued then dies meanwhile, under the policy just set), every
/// failure reaches exactly the policy in force at its death, once, and
/// every replaced policy is dropped.
#[test]
fn d19_many_replacements_while_greenlets_fail() {
    let Some((out, err)) = PROBE.child("d19_many_replacements_while_greenlets_fail", || {
        let seen: Rc<RefCell<Vec<(u32, String)>>> = Rc::default();
        let drops = Rc::new(Cell::new(0));
        let mut expected = Vec::new();
        for i in 0..30u32 {
            let s = seen.clone();
            let flag = DropFlag(drops.clone());
            let held = YieldOnDrop;
            // Dies during the yield of the previous policy's drop.
            let g = spawn(move || -> u32 { panic!("p60-d19-{i}") });
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
                let _ = (&flag, &held);
                let msg = f.error.panic().unwrap().message().to_owned();
                s.borrow_mut().push((i, msg));
            })));
            expected.push((i, format!("p60-d19-{i}")));
            if i == 0 {
                yield_now(); // no old Custom policy to yield the first time
            }
            assert!(g.is_dead(), "{i}");
            assert!(g.join().is_err());
        }
        sylvan::set_error_policy(ErrorPolicy::Report);
        assert_eq!(*seen.borrow(), expected);
        println!("DROPS {}", drops.get());
    }) else {
        return;
    };
    assert!(out.contains("DROPS 30"), "{out}\n{err}");
    assert!(!err.contains("p60-d19"), "{err}");
}
