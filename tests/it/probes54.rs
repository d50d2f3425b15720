//! Probe round 54: a hostile review of 51c8bbf (a failure is "settled"
//! once the policy handled it at the death or a `link`/`link_exception`
//! callback ran with it; a callback dropped unrun reports an unsettled
//! failure once, through the error policy in force then).
//!
//! * `a..`: the rule as `ErrorPolicy::IgnoreObserved`'s doc and
//!   `Failure::observed`'s doc word it: waiters that never look at the
//!   failure, a `join` that takes it after a cut callback, `Custom` and
//!   `Abort` policies switched in after the death (at a cut and at thread
//!   exit), a `Custom` policy that blocks, spawns, joins or panics where
//!   it is called from a dropped callback, escaped timeouts, kills,
//!   `link` / `link_exception` / `link_value`, late callbacks, several
//!   greenlets, `Pool` and `Group` members.
//!
//! Eight tests show bugs (ignored): `a01`/`a02` a failure whose only
//! observer was a `wait`/`joinall` waiter is never reported (nothing
//! settles it, nothing reports it later); `a03` `Failure::observed` is
//! false for a failure that had a callback at its death; `a06` a `Custom`
//! policy called for a cut callback runs in that callback's greenlet, not
//! on the hub (blocking does not panic); `a08` `unlink_all` then `join`
//! reports the failure that `join` returns; `a17` a kill of a `Custom`
//! policy blocked there is caught as the policy's panic; `a19` a failure
//! during thread-exit teardown is never reported when it has no callback;
//! `a21` a blocking `Custom` policy called at thread exit hangs the exit.
//!
//! Resolved after the round: a report made after the death (a callback
//! dropped unrun) is printed as `Report` prints, or aborts under `Abort`,
//! and never calls a `Custom` policy (which is promised the hub), so `a03`,
//! `a06`, `a17` and `a21` now check that it is not called; a cut callback
//! reports before it releases a `join` waiting for it, which then takes
//! the failure (`a08` passes); `a01`/`a02` describe the documented rule
//! (a failure observed only by a waiter is left to it) and check it.
//! `a19`: a failure raised while the hub tears down is now printed too
//! (`Hub::report_closing`), and passes.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use sylvan::pool::{Group, Pool};
use sylvan::{Error, ErrorPolicy, Greenlet, Timeout, spawn, yield_now};

use crate::util::{
    bounded, child_texts, is_child, limited_child_texts, run_child, run_child_limited, settle,
    texts,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const LONG: Duration = Duration::from_secs(3600);

const P: &str = "probes54::";

/// Runs `body` in a child process under `IgnoreObserved` (bounded, ending
/// with every greenlet done), and returns its stdout and stderr in the
/// parent.
fn ignore_observed_child(test: &str, body: impl FnOnce()) -> Option<(String, String)> {
    child_texts(&format!("{P}{test}"), test, || {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        body();
        settle();
        println!("after settle");
    })
}

/// Runs `body` (which may exit threads: not under `bounded`, whose timer
/// cannot cut a blocked `std` join) in a child killed after 10 s; in the
/// parent, asserts it ended well and returns its stdout and stderr.
fn thread_child(test: &str, body: impl FnOnce()) -> Option<(String, String)> {
    thread_child_within(test, Duration::from_secs(10), body)
}

/// [`thread_child`] with the child killed after `limit`.
fn thread_child_within(
    test: &str,
    limit: Duration,
    body: impl FnOnce(),
) -> Option<(String, String)> {
    limited_child_texts(&format!("{P}{test}"), test, &[], limit, body)
}

/// Spawns a greenlet that waits for `g`'s death and cuts its callbacks
/// with `unlink_all` before any of them starts (it is woken first: its
/// wait is registered before the callbacks, which must come after this
/// call and a yield).
fn cutter<T: 'static>(g: &Rc<Greenlet<T>>) -> Greenlet<()> {
    let g = g.clone();
    let c = spawn(move || {
        assert!(g.wait(None));
        g.unlink_all();
    });
    yield_now();
    c
}

/// What a recording policy saw: (error text, observed) per call.
type Calls = Rc<RefCell<Vec<(String, bool)>>>;

/// A `Custom` policy that records each call.
fn recording_policy() -> (ErrorPolicy, Calls) {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    let policy = ErrorPolicy::Custom(Rc::new(move |f| {
        c.borrow_mut().push((f.error.to_string(), f.observed));
    }));
    (policy, calls)
}

// ---------------------------------------------------------------- a: settled failures (51c8bbf)

/// `IgnoreObserved`: "A failure observed only by a waiter (in `wait`,
/// `kill`, `joinall`, `iwait`) is left to that code: it is not printed if
/// it never joins." Round 54 first read the older wording ("not lost when
/// the observers never look at it") as covering waiters; the docs now say
/// which observers a dropped one reports for (callbacks).
#[test]
fn a01_a_failure_only_waited_for_is_left_to_the_waiter() {
    let Some((_, err)) = ignore_observed_child(
        "a01_a_failure_only_waited_for_is_left_to_the_waiter",
        || {
            let g = spawn(|| -> u32 {
                sylvan::sleep(ms(2));
                panic!("p54-a01-boom")
            });
            assert!(g.wait(None));
            drop(g);
            let h = spawn(|| -> u32 {
                sylvan::sleep(ms(2));
                panic!("p54-a01-joinall")
            });
            assert!(sylvan::joinall(std::slice::from_ref(&h), None));
            drop(h);
        },
    ) else {
        return;
    };
    assert_eq!(err.matches("p54-a01-boom").count(), 0, "{err}");
    assert_eq!(err.matches("p54-a01-joinall").count(), 0, "{err}");
}

/// The thread-exit half of a01: the waited-for failure stays unprinted
/// when the thread's hub goes away too (as documented).
#[test]
fn a02_a_waited_failure_stays_unprinted_at_thread_exit_too() {
    let Some((_, err)) = thread_child(
        "a02_a_waited_failure_stays_unprinted_at_thread_exit_too",
        || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let g = spawn(|| -> u32 {
                    sylvan::sleep(ms(2));
                    panic!("p54-a02-boom")
                });
                assert!(g.wait(None));
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert_eq!(err.matches("p54-a02-boom").count(), 0, "{err}");
}

/// `Failure::observed`: "Failures reach the policy only at the death; a
/// later report ... is printed directly." A `Custom` policy put in force
/// after the death is not called when the callback registered at the
/// death is cut (round 54 first found it called, told `observed: false`).
#[test]
fn a03_a_custom_policy_after_the_death_is_not_called_at_a_cut() {
    bounded(|| {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        let g = spawn(|| -> u32 { panic!("p54-a03-boom") });
        g.link_exception(|_| unreachable!("cut before it runs"));
        yield_now();
        assert!(g.is_dead());
        let (policy, calls) = recording_policy();
        sylvan::set_error_policy(policy);
        g.unlink_all();
        settle();
        sylvan::set_error_policy(ErrorPolicy::Report);
        let calls = calls.borrow();
        assert!(calls.is_empty(), "{calls:?}");
    });
}

/// 51c8bbf: a cut callback reports "through the error policy in force
/// then". `Abort` put in force after the death: the cut aborts the
/// process, with the report first.
#[test]
fn a04_abort_put_in_force_after_the_death_aborts_at_the_cut() {
    const NAME: &str = "a04_abort_put_in_force_after_the_death_aborts_at_the_cut";
    if is_child(NAME) {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        let g = spawn(|| -> u32 { panic!("p54-a04-boom") });
        g.link_exception(|_| println!("CB-RAN"));
        yield_now();
        assert!(g.is_dead());
        println!("before the cut");
        sylvan::set_error_policy(ErrorPolicy::Abort);
        g.unlink_all();
        settle();
        println!("PROBE survived");
        return;
    }
    let out = run_child(&format!("{P}{NAME}"), NAME);
    let (o, e) = texts(&out);
    assert!(!out.status.success(), "{o}\n{e}");
    assert!(
        o.contains("before the cut") && !o.contains("PROBE survived"),
        "{o}"
    );
    assert!(!o.contains("CB-RAN"), "{o}");
    assert_eq!(e.matches("p54-a04-boom").count(), 1, "{e}");
    assert!(e.contains("ErrorPolicy::Abort"), "{e}");
}

/// The thread-exit half of a04: `Abort` put in force after the death, the
/// callback's greenlet never started when the thread exits: the drop at
/// teardown aborts, with the report.
#[test]
fn a05_abort_put_in_force_after_the_death_aborts_at_thread_exit() {
    const NAME: &str = "a05_abort_put_in_force_after_the_death_aborts_at_thread_exit";
    if is_child(NAME) {
        std::thread::spawn(|| {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let g = spawn(|| -> u32 { panic!("p54-a05-boom") });
            g.link_exception(|_| println!("CB-RAN"));
            yield_now();
            assert!(g.is_dead());
            sylvan::set_error_policy(ErrorPolicy::Abort);
            println!("thread exits");
        })
        .join()
        .unwrap();
        println!("PROBE survived");
        return;
    }
    let out = run_child_limited(&format!("{P}{NAME}"), NAME, &[], Duration::from_secs(10))
        .expect("the child hung");
    let (o, e) = texts(&out);
    assert!(!out.status.success(), "{o}\n{e}");
    assert!(
        o.contains("thread exits") && !o.contains("PROBE survived"),
        "{o}"
    );
    assert_eq!(e.matches("p54-a05-boom").count(), 1, "{e}");
}

/// `ErrorPolicy::Custom`: "It runs on the hub itself". Round 54 found it
/// called for a callback cut by `unlink_all`, from that callback's
/// greenlet, where a sleep blocked instead of panicking; it is no longer
/// called there at all.
#[test]
fn a06_a_custom_policy_is_not_called_at_a_cut() {
    bounded(|| {
        sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
        let g = spawn(|| -> u32 { panic!("p54-a06-boom") });
        g.link_exception(|_| {});
        yield_now();
        let slept = Rc::new(Cell::new(None));
        let s = slept.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(ms(1))));
            s.set(Some(r.is_ok()));
        })));
        g.unlink_all();
        settle();
        sylvan::set_error_policy(ErrorPolicy::Report);
        assert_eq!(slept.get(), None, "the policy was called at the cut");
    });
}

/// A `Custom` policy put in force after the death is not called at thread
/// exit from the drop of a callback that never ran: the failure is printed
/// once instead.
/// (Rule settled after round 54: a later report is printed as `Report`
/// would, or aborts under `Abort`; a `Custom` policy is called only at the
/// death, on the hub.)
#[test]
fn a07_a_custom_policy_called_at_thread_exit_blocks_spawns_panics() {
    let Some((o, e)) = thread_child(
        "a07_a_custom_policy_called_at_thread_exit_blocks_spawns_panics",
        || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let g = spawn(|| -> u32 { panic!("p54-a07-boom") });
                g.link_exception(|_| println!("CB-RAN"));
                yield_now();
                assert!(g.is_dead());
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|f| {
                    println!("policy called observed={} {}", f.observed, f.error);
                    let slept = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(ms(1))));
                    println!("policy sleep ok={}", slept.is_ok());
                    let spawned = catch_unwind(AssertUnwindSafe(|| {
                        spawn(|| println!("policy's greenlet ran"))
                    }));
                    println!("policy spawn ok={}", spawned.is_ok());
                    panic!("p54-a07-policy-panic");
                })));
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert!(!o.contains("CB-RAN"), "{o}");
    assert_eq!(o.matches("policy called").count(), 0, "{o}\n{e}");
    assert_eq!(e.matches("p54-a07-boom").count(), 1, "{e}");
}

/// `IgnoreObserved`: a callback dropped unrun reports the failure "unless
/// another callback ran with it or a `join` took it". `unlink_all` after
/// the death, then `join`: the join is already waiting (for the cut
/// callback's greenlet, which borrows the outcome) when that callback
/// drops, and it takes the failure right after; but the drop reported it
/// first. The user gets the failure from `join` and on stderr.
#[test]
fn a08_a_join_waiting_on_a_cut_callback_takes_the_failure_unreported() {
    let Some((out, err)) = ignore_observed_child(
        "a08_a_join_waiting_on_a_cut_callback_takes_the_failure_unreported",
        || {
            let g = spawn(|| -> u32 { panic!("p54-a08-boom") });
            g.link_exception(|e| println!("callback saw {e}"));
            yield_now();
            assert!(g.is_dead());
            g.unlink_all();
            let r = g.join();
            assert!(matches!(r, Err(Error::Panicked(_))), "{r:?}");
            println!("join returned the panic");
        },
    ) else {
        return;
    };
    assert!(!out.contains("callback saw"), "{out}");
    assert!(out.contains("join returned the panic"), "{out}");
    assert!(!err.contains("p54-a08-boom"), "{err}");
}

/// An escaped timeout is a failure as a panic is: `link_exception` cut
/// after the death reports it once, as timed out.
#[test]
fn a09_an_escaped_timeout_with_a_cut_callback_is_reported_once() {
    let Some((out, err)) = ignore_observed_child(
        "a09_an_escaped_timeout_with_a_cut_callback_is_reported_once",
        || {
            let g = Rc::new(
                sylvan::Builder::new()
                    .name("p54-a09")
                    .spawn(|| {
                        let _t = Timeout::start(ms(1));
                        sylvan::sleep(LONG);
                    })
                    .unwrap(),
            );
            let _c = cutter(&g);
            g.link_exception(|e| println!("CB-SAW {e}"));
            g.link(|_| println!("LINK-RAN"));
            g.link_value(|_| println!("VALUE-RAN"));
        },
    ) else {
        return;
    };
    assert!(!out.contains("CB-SAW") && !out.contains("-RAN"), "{out}");
    assert_eq!(err.matches("p54-a09").count(), 1, "{err}");
    assert!(err.contains("expired timeout"), "{err}");
}

/// Several greenlets, each with callbacks cut after its death: each
/// failure is reported once; one whose callback ran is not reported.
#[test]
fn a10_several_greenlets_each_reported_once() {
    let Some((out, err)) =
        ignore_observed_child("a10_several_greenlets_each_reported_once", || {
            let gs: Vec<Greenlet<u32>> = (0..4)
                .map(|i| spawn(move || -> u32 { panic!("p54-a10-g{i}-boom") }))
                .collect();
            for g in &gs {
                g.link_exception(|_| println!("CB-RAN"));
                g.link(|_| println!("link ran"));
            }
            yield_now();
            assert!(gs.iter().all(|g| g.is_dead()));
            for g in &gs[..3] {
                g.unlink_all();
            }
        })
    else {
        return;
    };
    for i in 0..3 {
        assert_eq!(
            err.matches(&format!("p54-a10-g{i}-boom")).count(),
            1,
            "{err}"
        );
    }
    assert_eq!(err.matches("p54-a10-g3-boom").count(), 0, "{err}");
    assert_eq!(out.matches("CB-RAN").count(), 1, "{out}");
}

/// A callback added after the failure was settled by one that ran, then
/// cut: nothing is reported ("Reported once at most"; "unless another
/// callback ran with it").
#[test]
fn a11_a_late_callback_cut_after_one_ran_reports_nothing() {
    let Some((out, err)) = ignore_observed_child(
        "a11_a_late_callback_cut_after_one_ran_reports_nothing",
        || {
            let g = spawn(|| -> u32 { panic!("p54-a11-boom") });
            g.link_exception(|_| println!("FIRST-CB"));
            settle();
            g.link_exception(|_| println!("LATE-CB"));
            g.link(|_| println!("LATE-LINK"));
            g.unlink_all();
        },
    ) else {
        return;
    };
    assert!(out.contains("FIRST-CB"), "{out}");
    assert!(!out.contains("LATE-"), "{out}");
    assert!(!err.contains("p54-a11-boom"), "{err}");
}

/// `link_value` is no observer: the failure is reported at the death, and
/// a `link_exception` added later and cut reports nothing more.
#[test]
fn a12_link_value_only_reported_at_the_death_once() {
    let Some((out, err)) =
        ignore_observed_child("a12_link_value_only_reported_at_the_death_once", || {
            let g = spawn(|| -> u32 { panic!("p54-a12-boom") });
            g.link_value(|_| println!("VALUE-CB"));
            yield_now();
            assert!(g.is_dead());
            g.link_exception(|_| println!("LATE-CB"));
            g.unlink_all();
        })
    else {
        return;
    };
    assert!(!out.contains("ran"), "{out}");
    assert_eq!(err.matches("p54-a12-boom").count(), 1, "{err}");
}

/// "unless another callback ran with it or a `join` took it": joined
/// after the death (waiting for the callback, which runs), nothing is
/// reported and `join` returns the panic (a08 without the cut).
#[test]
fn a13_a_join_after_a_callback_ran_takes_it_and_nothing_is_reported() {
    let Some((out, err)) = ignore_observed_child(
        "a13_a_join_after_a_callback_ran_takes_it_and_nothing_is_reported",
        || {
            let g = spawn(|| -> u32 { panic!("p54-a13-boom") });
            g.link_exception(|_| println!("CB-RAN"));
            yield_now();
            assert!(g.is_dead());
            let r = g.join();
            assert!(matches!(r, Err(Error::Panicked(_))), "{r:?}");
        },
    ) else {
        return;
    };
    assert!(out.contains("CB-RAN"), "{out}");
    assert!(!err.contains("p54-a13-boom"), "{err}");
}

/// `Pool` and `Group` members are greenlets like others: a failed member
/// whose `link_exception` is cut after `join` is reported once; one whose
/// callback ran is not.
#[test]
fn a14_pool_and_group_members_cut_after_join_reported_once() {
    let Some((out, err)) = ignore_observed_child(
        "a14_pool_and_group_members_cut_after_join_reported_once",
        || {
            let pool = Pool::new(2);
            let p1 = Rc::new(pool.spawn(|| -> u32 {
                sylvan::sleep(ms(2));
                panic!("p54-a14-pool-cut")
            }));
            let p2 = pool.spawn(|| -> u32 { panic!("p54-a14-pool-ran") });
            p2.link_exception(|_| println!("POOL-CB-2"));
            let _c1 = cutter(&p1);
            p1.link_exception(|_| println!("POOL-CB-1"));
            pool.join();
            let group = Group::new();
            let g1 = Rc::new(group.spawn(|| -> u32 {
                sylvan::sleep(ms(2));
                panic!("p54-a14-group-cut")
            }));
            let _c2 = cutter(&g1);
            g1.link(|_| println!("GROUP-CB"));
            group.join();
        },
    ) else {
        return;
    };
    assert!(
        !out.contains("POOL-CB-1") && !out.contains("GROUP-CB"),
        "{out}"
    );
    assert!(out.contains("POOL-CB-2"), "{out}");
    assert_eq!(err.matches("p54-a14-pool-cut").count(), 1, "{err}");
    assert_eq!(err.matches("p54-a14-pool-ran").count(), 0, "{err}");
    assert_eq!(err.matches("p54-a14-group-cut").count(), 1, "{err}");
}

/// Thread exit with the callbacks queued and the policy switched between
/// the death and the exit: to `Report`, each unsettled failure is
/// reported once; to a `Custom`, it is printed once per failure (the
/// policy is not called after the death).
#[test]
fn a15_thread_exit_after_a_policy_switch_reports_once() {
    let Some((out, err)) =
        thread_child("a15_thread_exit_after_a_policy_switch_reports_once", || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let a = spawn(|| -> u32 { panic!("p54-a15-a") });
                a.link_exception(|_| println!("CB-RAN"));
                a.link_exception(|_| println!("CB-RAN"));
                yield_now();
                assert!(a.is_dead());
                sylvan::set_error_policy(ErrorPolicy::Report);
            })
            .join()
            .unwrap();
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let b = spawn(|| -> u32 { panic!("p54-a15-b") });
                b.link(|_| println!("CB-RAN"));
                let c = spawn(|| -> u32 { panic!("p54-a15-c") });
                c.link_exception(|_| println!("CB-RAN"));
                yield_now();
                assert!(b.is_dead() && c.is_dead());
                c.unlink_all();
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|f| {
                    println!("custom got {} observed={}", f.error, f.observed)
                })));
            })
            .join()
            .unwrap();
        })
    else {
        return;
    };
    assert!(!out.contains("CB-RAN"), "{out}");
    assert_eq!(err.matches("p54-a15-a").count(), 1, "{err}");
    assert_eq!(out.matches("custom got").count(), 0, "{out}\n{err}");
    assert_eq!(err.matches("p54-a15-b").count(), 1, "{err}");
    assert_eq!(err.matches("p54-a15-c").count(), 1, "{err}");
}

/// A `Custom` policy that would join the failed greenlet, put in force
/// after the death: not called at the cut (the failure is printed once),
/// so the greenlet is left for the test to join.
#[test]
fn a16_a_custom_policy_that_joins_at_a_cut() {
    let Some((out, err)) = child_texts(
        &format!("{P}a16_a_custom_policy_that_joins_at_a_cut"),
        "a16_a_custom_policy_that_joins_at_a_cut",
        || {
            sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
            let g = spawn(|| -> u32 { panic!("p54-a16-boom") });
            g.link_exception(|_| println!("CB-RAN"));
            yield_now();
            assert!(g.is_dead());
            let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::new(RefCell::new(None));
            let s = slot.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                if let Some(g) = s.borrow_mut().take() {
                    let r = g.join();
                    println!("policy joined: {}", r.unwrap_err());
                }
            })));
            g.unlink_all();
            *slot.borrow_mut() = Some(g);
            settle();
            let left = slot.borrow_mut().take();
            println!("left for the test: {}", left.is_some());
        },
    ) else {
        return;
    };
    assert!(!out.contains("CB-RAN"), "{out}");
    assert_eq!(out.matches("policy joined").count(), 0, "{out}\n{err}");
    assert!(out.contains("left for the test: true"), "{out}");
    assert_eq!(err.matches("p54-a16-boom").count(), 1, "{err}");
}

/// `ErrorPolicy::Custom`: "A panic inside it is caught and printed". Since
/// 51c8bbf a cut callback calls the policy in force from the callback's
/// own greenlet, so a policy that blocks there can be killed: the thread's
/// exit kills it, and `ErrorPolicy::handle`'s `catch_unwind` takes the
/// kill (a `GreenletExit` unwind, no panic) for the policy's panic:
/// "the custom error policy panicked while handling" is printed, and the
/// kill is swallowed (the policy's code after the block is skipped, the
/// callback's greenlet then ends normally).
/// Since the fix a `Custom` policy is no longer called at a cut, so it
/// cannot block there: the failure is printed once.
/// (Rule settled after round 54: a later report is printed as `Report`
/// would, or aborts under `Abort`; a `Custom` policy is called only at the
/// death, on the hub.)
#[test]
fn a17_a_custom_policy_blocked_at_a_cut_is_killed_not_panicked() {
    let Some((out, err)) = thread_child(
        "a17_a_custom_policy_blocked_at_a_cut_is_killed_not_panicked",
        || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let g = spawn(|| -> u32 { panic!("p54-a17-boom") });
                g.link_exception(|_| println!("CB-RAN"));
                yield_now();
                assert!(g.is_dead());
                let blocked = Rc::new(Cell::new(false));
                let b = blocked.clone();
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| {
                    println!("POLICY-BLOCKS");
                    b.set(true);
                    sylvan::sleep(LONG);
                    println!("POLICY-WOKE");
                })));
                g.unlink_all();
                settle();
                assert!(!blocked.get(), "the policy was called at the cut");
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert!(!out.contains("POLICY-BLOCKS"), "{out}");
    assert!(!out.contains("CB-RAN"), "{out}");
    assert_eq!(err.matches("p54-a17-boom").count(), 1, "{err}");
}

/// A kill is no failure, whatever the callbacks: killed with a `link` and
/// a `link_exception` both cut, at thread exit, nothing is reported.
#[test]
fn a18_a_kill_with_callbacks_dropped_at_thread_exit_reports_nothing() {
    let Some((out, err)) = thread_child(
        "a18_a_kill_with_callbacks_dropped_at_thread_exit_reports_nothing",
        || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let g = spawn(|| -> u32 {
                    sylvan::sleep(LONG);
                    1
                });
                g.link(|_| println!("CB-RAN"));
                g.link_exception(|_| println!("CB-RAN"));
                yield_now();
                g.kill_nowait();
                yield_now();
                assert!(g.is_dead());
                sylvan::set_error_policy(ErrorPolicy::Report);
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert!(!out.contains("CB-RAN"), "{out}");
    assert!(!err.contains("greenlet"), "{err}");
}

/// `ErrorPolicy::Report`: "Report every failure once". A greenlet that
/// catches the kill thrown at thread exit and then panics fails during
/// teardown; `Hub::on_dead` skipped `report` while the hub was closing, so
/// the failure was never reported (fixed: printed once). With a `link_exception` callback (a20)
/// the very same failure is reported, by the callback's drop: an observer
/// makes a failure more visible, not less.
#[test]
fn a19_a_failure_during_teardown_is_reported() {
    let Some((out, err)) = thread_child("a19_a_failure_during_teardown_is_reported", || {
        std::thread::spawn(|| {
            let _g = spawn(|| -> u32 {
                let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
                println!("CAUGHT-KILL {}", r.is_err());
                panic!("p54-a19-late")
            });
            yield_now();
        })
        .join()
        .unwrap();
    }) else {
        return;
    };
    assert!(out.contains("CAUGHT-KILL true"), "{out}");
    assert_eq!(err.matches("p54-a19-late").count(), 1, "{err}");
}

/// a19 with a `link_exception` callback on the greenlet: dropped unrun at
/// teardown, it reports the failure (once) through the policy in force.
#[test]
fn a20_a_failure_during_teardown_with_a_callback_is_reported_once() {
    let Some((out, err)) = thread_child(
        "a20_a_failure_during_teardown_with_a_callback_is_reported_once",
        || {
            std::thread::spawn(|| {
                let g = spawn(|| -> u32 {
                    let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
                    println!("CAUGHT-KILL {}", r.is_err());
                    panic!("p54-a20-late")
                });
                g.link_exception(|_| println!("CB-RAN"));
                yield_now();
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert!(
        out.contains("CAUGHT-KILL true") && !out.contains("CB-RAN"),
        "{out}"
    );
    assert_eq!(err.matches("p54-a20-late").count(), 1, "{err}");
}

/// `ErrorPolicy::Custom`: "it must not block (a blocking call there
/// panics)". Put in force after the death and called at thread exit, from
/// a callback whose greenlet never started (dropped by the teardown, on the
/// thread's own stack), a policy that blocks is not stopped by a panic: the
/// thread's exit waits for it (here an hour: the child is killed after 3 s).
/// Before 51c8bbf such a drop printed the report and never called the
/// policy.
/// Since the fix the policy is not called there: the thread exits, the
/// failure is printed.
/// (Rule settled after round 54: a later report is printed as `Report`
/// would, or aborts under `Abort`; a `Custom` policy is called only at the
/// death, on the hub.)
#[test]
fn a21_a_blocking_custom_policy_at_thread_exit_does_not_hang_it() {
    let Some((out, err)) = thread_child_within(
        "a21_a_blocking_custom_policy_at_thread_exit_does_not_hang_it",
        Duration::from_secs(3),
        || {
            std::thread::spawn(|| {
                sylvan::set_error_policy(ErrorPolicy::IgnoreObserved);
                let g = spawn(|| -> u32 { panic!("p54-a21-boom") });
                g.link_exception(|_| println!("CB-RAN"));
                yield_now();
                assert!(g.is_dead());
                sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| {
                    println!("POLICY-BLOCKS");
                    let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(LONG)));
                    println!("POLICY-SLEEP-PANICKED {}", r.is_err());
                })));
            })
            .join()
            .unwrap();
        },
    ) else {
        return;
    };
    assert!(!out.contains("POLICY-BLOCKS"), "{out}");
    assert_eq!(err.matches("p54-a21-boom").count(), 1, "{err}");
}
