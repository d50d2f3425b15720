//! Adversarial probes, round 12: gevent's own greenlet and timeout tests
//! (test__greenlet, test__timeout, test__api_timeout, test__joinall,
//! test__event, test__pool, test__sleep0, test__spawn_later...) replayed
//! against sylvan's API.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::pool::{Group, Pool};
use sylvan::sync::{AsyncResult, Event, GetError};
use sylvan::{Greenlet, Outcome, Timeout};

use crate::util::{DropFlag, Log, bounded, quiet, yield_until};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn outcome_name<T>(o: &Outcome<'_, T>) -> &'static str {
    match o {
        Outcome::Returned(_) => "returned",
        Outcome::Panicked(_) => "panicked",
        Outcome::Killed => "killed",
        Outcome::TimedOut => "timedout",
    }
}

// ---- links (test__greenlet: LinksTestCase) ----

#[test]
fn links_fire_in_order_once_each() {
    bounded(|| {
        let log = Log::default();
        let g = sylvan::spawn(|| 5);
        for name in ["a", "b", "c"] {
            let l = log.clone();
            g.link(move |o| l.push(format!("{name}:{}", outcome_name(o))));
        }
        let l = log.clone();
        g.link_value(move |v| l.push(format!("v:{v}")));
        let l = log.clone();
        g.link_exception(move |_| l.push("exc"));
        assert_eq!(g.join().unwrap(), 5);
        sylvan::sleep(MS(20));
        assert_eq!(
            log.take(),
            ["a:returned", "b:returned", "c:returned", "v:5"]
        );
    });
}

#[test]
fn link_on_dead_greenlet_fires_once() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let g = sylvan::spawn(|| -> u8 { panic!("boom") });
        assert!(g.wait(None));
        let l = log.clone();
        g.link(move |o| l.push(outcome_name(o)));
        let l = log.clone();
        g.link_exception(move |e| l.push(format!("exc:{}", e.is_panic())));
        let l = log.clone();
        g.link_value(move |_| l.push("value"));
        sylvan::sleep(MS(20));
        assert_eq!(log.take(), ["panicked", "exc:true"]);
        sylvan::sleep(MS(20));
        assert!(log.take().is_empty());
        assert!(g.join().unwrap_err().is_panic());
    });
}

#[test]
fn unlink_all_inside_callback_stops_later_ones() {
    bounded(|| {
        let log = Log::default();
        let g: Rc<Greenlet<u32>> = Rc::new(sylvan::spawn(|| 1));
        let l = log.clone();
        let gg = g.clone();
        g.link(move |_| {
            l.push("first");
            gg.unlink_all();
        });
        let l = log.clone();
        g.link(move |_| l.push("second"));
        let l = log.clone();
        g.link_value(move |_| l.push("third"));
        assert!(g.wait(None));
        sylvan::sleep(MS(20));
        assert_eq!(log.take(), ["first"]);
        let g = Rc::try_unwrap(g).unwrap_or_else(|_| panic!("callbacks kept their handle"));
        assert_eq!(g.join().unwrap(), 1);
    });
}

#[test]
fn blocking_callback_does_not_hold_back_next() {
    bounded(|| {
        let log = Log::default();
        let g = sylvan::spawn(|| 1);
        let l = log.clone();
        g.link(move |_| {
            l.push("a1");
            sylvan::sleep(MS(30));
            l.push("a2");
        });
        let l = log.clone();
        g.link(move |_| l.push("b"));
        assert_eq!(g.join().unwrap(), 1);
        assert_eq!(log.take(), ["a1", "b", "a2"]);
    });
}

#[test]
fn kill_before_start_never_runs_body_but_fires_links() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let drops = Rc::new(Cell::new(0));
        let flag = DropFlag(drops.clone());
        let g = sylvan::spawn(move || {
            let _f = flag;
            r.set(true);
        });
        let log = Log::default();
        let l = log.clone();
        g.link(move |o| l.push(outcome_name(o)));
        let l = log.clone();
        g.link_exception(move |_| l.push("exc"));
        assert!(!g.is_started());
        g.kill();
        assert!(g.is_dead());
        assert!(!g.is_started());
        assert_eq!(drops.get(), 1, "the body's captures are dropped");
        sylvan::sleep(MS(20));
        assert!(!ran.get());
        assert_eq!(log.take(), ["killed"]);
        assert!(g.join().unwrap_err().is_killed());
    });
}

#[test]
fn greenlet_spawned_from_link_callback_runs() {
    bounded(|| {
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        let g = sylvan::spawn(|| 3);
        g.link_value(move |v| {
            let v = *v;
            *o.borrow_mut() = Some(sylvan::spawn(move || {
                sylvan::sleep(MS(5));
                v * 2
            }));
        });
        assert_eq!(g.join().unwrap(), 3);
        let child = out
            .borrow_mut()
            .take()
            .expect("callback ran before join returned");
        assert_eq!(child.join().unwrap(), 6);
    });
}

#[test]
fn link_exception_fires_on_escaped_timeout_not_on_kill() {
    bounded(|| {
        let log = Log::default();
        let t = sylvan::spawn(|| {
            let _t = Timeout::start(MS(5));
            sylvan::sleep(Duration::from_secs(10));
        });
        let l = log.clone();
        t.link_exception(move |e| l.push(format!("t:{}", e.is_timeout())));
        let k = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let l = log.clone();
        k.link_exception(move |_| l.push("k-exc"));
        let l = log.clone();
        k.link(move |o| l.push(format!("k:{}", outcome_name(o))));
        sylvan::yield_now();
        k.kill();
        assert!(t.join().unwrap_err().is_timeout());
        assert!(k.join().unwrap_err().is_killed());
        assert_eq!(log.take(), ["k:killed", "t:true"]);
    });
}

#[test]
fn greenlet_killing_itself_unwinds_at_once() {
    bounded(|| {
        let slot: Rc<RefCell<Option<Rc<Greenlet<u32>>>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let after = Rc::new(Cell::new(false));
        let a = after.clone();
        let drops = Rc::new(Cell::new(0));
        let flag = DropFlag(drops.clone());
        let g = Rc::new(sylvan::spawn(move || {
            let _f = flag;
            let me = s.borrow().clone().unwrap();
            me.kill();
            a.set(true);
            7
        }));
        *slot.borrow_mut() = Some(g.clone());
        assert!(g.wait(None));
        assert!(!after.get());
        assert_eq!(drops.get(), 1);
        slot.borrow_mut().take();
        let g = Rc::try_unwrap(g).ok().unwrap();
        assert!(g.join().unwrap_err().is_killed());
    });
}

// ---- kill and timeouts ----

#[test]
fn kill_in_nested_timeouts_is_a_kill_and_leaves_no_timer() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let g = sylvan::spawn(move || {
            let _f = DropFlag(d);
            let r = sylvan::with_timeout(MS(200), || {
                sylvan::with_timeout(MS(300), || sylvan::sleep(Duration::from_secs(10)))
            });
            format!("{r:?}")
        });
        sylvan::yield_now();
        assert!(g.is_started());
        g.kill();
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1);
        assert!(g.join().unwrap_err().is_killed());
        // a greenlet spawned now (likely on the same record slot) must not
        // see the killed greenlet's timers
        let h = sylvan::spawn(|| {
            sylvan::sleep(MS(400));
            1
        });
        assert_eq!(h.join().unwrap(), 1);
    });
}

#[test]
fn timeout_returned_out_of_dead_greenlet_does_not_hit_another() {
    bounded(|| {
        let g = sylvan::spawn(|| Timeout::start(MS(200)));
        let t = g.join().unwrap();
        let h = sylvan::spawn(|| {
            sylvan::sleep(MS(400));
            2
        });
        assert_eq!(h.join().unwrap(), 2);
        drop(t);
    });
}

#[test]
fn forgotten_timeout_of_finished_greenlet_does_not_hit_another() {
    bounded(|| {
        let g = sylvan::spawn(|| std::mem::forget(Timeout::start(MS(200))));
        g.join().unwrap();
        let h = sylvan::spawn(|| {
            sylvan::sleep(MS(400));
            3
        });
        assert_eq!(h.join().unwrap(), 3);
    });
}

#[test]
fn timeout_expiring_in_link_callback_ends_callback_only() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let g = sylvan::spawn(|| 9);
        let l = log.clone();
        g.link_value(move |v| {
            let r = sylvan::with_timeout(MS(200), || sylvan::sleep(Duration::from_secs(10)));
            l.push(format!("inner:{v}:{}", r.is_err()));
            let _t = Timeout::start(MS(200));
            sylvan::sleep(Duration::from_secs(10));
            l.push("unreachable");
        });
        let l = log.clone();
        g.link(move |_| l.push("second"));
        let t0 = Instant::now();
        assert_eq!(g.join().unwrap(), 9);
        assert!(t0.elapsed() >= MS(400));
        assert_eq!(log.take(), ["second", "inner:9:true"]);
    });
}

#[test]
fn timeout_expiring_in_join_leaves_target_running() {
    bounded(|| {
        let target = sylvan::spawn(|| {
            sylvan::sleep(MS(400));
            "done"
        });
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        target.link(move |_| e.set());
        let r = sylvan::with_timeout(MS(200), || target.join());
        assert!(r.is_err());
        // the handle went with the closure (detached); the greenlet goes on
        assert!(ev.wait_timeout(Duration::from_secs(2)));
        let waiter = sylvan::spawn(|| 1);
        let r = sylvan::with_timeout(MS(200), || waiter.wait(None));
        assert_eq!(r.ok(), Some(true));
    });
}

#[test]
fn timeout_in_join_of_greenlet_via_guard() {
    bounded(|| {
        let target = Rc::new(sylvan::spawn(|| {
            sylvan::sleep(MS(400));
            4
        }));
        let t2 = target.clone();
        let j = sylvan::spawn(move || {
            let _t = Timeout::start(MS(200));
            t2.wait(None)
        });
        assert!(j.join().unwrap_err().is_timeout());
        assert!(!target.is_dead());
        let target = Rc::try_unwrap(target).ok().unwrap();
        assert_eq!(target.join().unwrap(), 4);
    });
}

#[test]
fn kill_then_overdue_timeout_in_one_turn_is_a_kill() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            let r = sylvan::with_timeout(MS(200), || sylvan::sleep(Duration::from_secs(10)));
            // if the kill were lost we would get here and return
            sylvan::sleep(MS(300));
            r.is_err()
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250)); // the timeout is overdue
        g.kill_nowait();
        let e = g.join().unwrap_err();
        assert!(e.is_killed(), "{e:?}");
    });
}

#[test]
fn overdue_timeout_then_kill_from_greenlet_is_a_kill() {
    bounded(|| {
        let g = Rc::new(sylvan::spawn(|| {
            let r = sylvan::with_timeout(MS(200), || sylvan::sleep(Duration::from_secs(10)));
            sylvan::sleep(MS(300));
            r.is_err()
        }));
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        let g2 = g.clone();
        let k = sylvan::spawn(move || g2.kill_nowait());
        sylvan::sleep(Duration::ZERO);
        k.join().unwrap();
        let g = Rc::try_unwrap(g).ok().unwrap();
        let e = g.join().unwrap_err();
        assert!(e.is_killed(), "{e:?}");
    });
}

#[test]
fn timeout_swallowed_then_kill_is_not_lost() {
    bounded(|| {
        // The greenlet catches its timeout and goes on: a kill queued in the
        // same turn must still land.
        let g = sylvan::spawn(|| {
            let t = Timeout::start(MS(200));
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10))));
            if let Err(p) = r {
                assert!(t.is_own_payload(&*p) || sylvan::is_unwind_payload(&*p));
                if !t.is_own_payload(&*p) {
                    resume_unwind(p);
                }
            }
            sylvan::sleep(MS(300));
            "survived"
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        g.kill_nowait();
        let e = g.join().unwrap_err();
        assert!(e.is_killed(), "{e:?}");
    });
}

#[test]
fn nested_timeouts_report_the_first_to_expire() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            sylvan::with_timeout(Duration::from_secs(10), || {
                sylvan::sleep(Duration::from_secs(10))
            })
        });
        assert!(r.is_err());
        let r = sylvan::with_timeout(Duration::from_secs(10), || {
            sylvan::with_timeout(MS(200), || sylvan::sleep(Duration::from_secs(10)))
        });
        assert!(matches!(r, Ok(Err(_))));
        // same deadline: the inner one was armed last
        let r = sylvan::with_timeout(MS(200), || {
            sylvan::with_timeout(MS(200), || sylvan::sleep(Duration::from_secs(10)))
        });
        assert!(r.is_err() || matches!(r, Ok(Err(_))));
        // nothing left armed
        sylvan::sleep(MS(300));
    });
}

#[test]
fn zero_timeout_fires_only_if_blocking() {
    bounded(|| {
        assert_eq!(sylvan::with_timeout(Duration::ZERO, || 5).ok(), Some(5));
        assert!(sylvan::with_timeout(Duration::ZERO, || sylvan::sleep(MS(200))).is_err());
        let t = Timeout::start(MS(200));
        assert!(t.is_pending());
        t.cancel();
        sylvan::sleep(MS(300)); // cancelled: never fires
    });
}

#[test]
fn timeout_guard_is_not_pending_after_expiry_and_drop_is_harmless() {
    bounded(|| {
        let t = Timeout::start(MS(200));
        let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10))));
        let p = r.unwrap_err();
        assert!(t.is_own_payload(&*p));
        assert!(!t.is_pending());
        drop(t);
        sylvan::sleep(MS(250));
    });
}

#[test]
fn spawn_later_cancelled_by_kill() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = sylvan::spawn_later(MS(200), move || r.set(true));
        let log = Log::default();
        let l = log.clone();
        g.link(move |o| l.push(outcome_name(o)));
        sylvan::sleep(MS(20));
        assert!(!g.is_started());
        assert!(!g.is_dead());
        g.kill();
        assert!(g.is_dead());
        sylvan::sleep(MS(300));
        assert!(!ran.get());
        assert_eq!(log.take(), ["killed"]);
        assert!(g.join().unwrap_err().is_killed());
    });
}

#[test]
fn spawn_later_runs_after_delay_and_in_order() {
    bounded(|| {
        let log = Log::default();
        let t0 = Instant::now();
        let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
        let c = sylvan::spawn_later(MS(400), move || l3.push("c"));
        let a = sylvan::spawn_later(MS(200), move || l1.push("a"));
        let b = sylvan::spawn_later(MS(200), move || l2.push("b"));
        assert!(sylvan::joinall(&[a, b, c], None));
        assert!(t0.elapsed() >= MS(400));
        assert_eq!(log.take(), ["a", "b", "c"]);
    });
}

// ---- joinall / killall ----

#[test]
fn joinall_timeout_false_while_some_run() {
    bounded(|| {
        let gs: Vec<Greenlet<u64>> = [0u64, 0, 1000]
            .into_iter()
            .map(|ms| {
                sylvan::spawn(move || {
                    sylvan::sleep(MS(ms));
                    ms
                })
            })
            .collect();
        let t0 = Instant::now();
        assert!(!sylvan::joinall(&gs, Some(MS(200))));
        assert!(t0.elapsed() >= MS(200) && t0.elapsed() < MS(900));
        assert!(gs[0].is_dead() && gs[1].is_dead() && !gs[2].is_dead());
        assert!(sylvan::joinall(&gs[..2], Some(MS(200))));
        assert!(sylvan::joinall::<u8>(&[], Some(Duration::ZERO)));
        assert!(sylvan::killall(&gs, None).is_ok());
        assert!(sylvan::joinall(&gs, Some(Duration::ZERO)));
    });
}

#[test]
fn killall_with_survivor() {
    bounded(|| {
        let stubborn = |n: u32| {
            sylvan::spawn(move || {
                for _ in 0..n {
                    let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
                    assert!(r.is_err());
                }
                sylvan::sleep(Duration::from_secs(10));
            })
        };
        let gs = vec![
            sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10))),
            stubborn(1),
            sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10))),
        ];
        sylvan::yield_now();
        let id = gs[1].id();
        let err = sylvan::killall(&gs, Some(MS(200))).unwrap_err();
        assert_eq!(err.0, vec![id]);
        assert!(gs[0].is_dead() && gs[2].is_dead());
        // a second kill lands (thrown once per kill)
        assert!(gs[1].kill_timeout(MS(200)));
        // a kill_timeout on a stubborn one says false
        let s = stubborn(1);
        sylvan::yield_now();
        assert!(!s.kill_timeout(MS(200)));
        s.kill();
        assert!(s.join().unwrap_err().is_killed());
    });
}

#[test]
fn killall_from_member_kills_everyone() {
    bounded(|| {
        let gs: Rc<RefCell<Vec<Greenlet<()>>>> = Rc::new(RefCell::new(Vec::new()));
        let g2 = gs.clone();
        let after = Rc::new(Cell::new(false));
        let a = after.clone();
        let long = || sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let first = long();
        let killer = sylvan::spawn(move || {
            sylvan::sleep(MS(5));
            let list = g2.borrow();
            let _ = sylvan::killall(&list, None);
            a.set(true);
        });
        let last = long();
        gs.borrow_mut().extend([first, killer, last]);
        yield_until("all dead", || gs.borrow().iter().all(|g| g.is_dead()));
        assert!(!after.get());
        let v = std::mem::take(&mut *gs.borrow_mut());
        for g in v {
            assert!(g.join().unwrap_err().is_killed());
        }
    });
}

// ---- kill while in spawn_blocking ----

#[test]
fn kill_while_in_spawn_blocking_returns_promptly() {
    bounded(|| {
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        // The job holds its thread until the test opens the gate (3 s at
        // most): a kill that waited for it would take that long.
        let (gate, gated) = std::sync::mpsc::channel::<()>();
        let g = sylvan::spawn(move || {
            let _f = DropFlag(d);
            sylvan::spawn_blocking(move || {
                let _ = gated.recv_timeout(MS(3000));
                1
            })
        });
        sylvan::yield_now();
        assert!(g.is_started());
        let t0 = Instant::now();
        g.kill();
        assert!(t0.elapsed() < MS(1500), "kill waited for the job");
        drop(gate);
        assert_eq!(drops.get(), 1);
        assert!(g.join().unwrap_err().is_killed());
        // the hub still serves other blocking jobs meanwhile
        assert_eq!(sylvan::spawn_blocking(|| 5), 5);
    });
}

#[test]
fn timeout_while_in_spawn_blocking() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            sylvan::spawn_blocking(|| {
                std::thread::sleep(MS(600));
                1
            })
        });
        assert!(r.is_err());
    });
}

// ---- sleep(0) / yield ----

#[test]
fn sleep0_and_yield_interleave_round_robin() {
    bounded(|| {
        let log = Log::default();
        let mk = |name: &'static str, zero: bool| {
            let l = log.clone();
            sylvan::spawn(move || {
                for i in 0..3 {
                    l.push(format!("{name}{i}"));
                    if zero {
                        sylvan::sleep(Duration::ZERO);
                    } else {
                        sylvan::yield_now();
                    }
                }
            })
        };
        let a = mk("a", true);
        let b = mk("b", false);
        assert!(sylvan::joinall(&[a, b], None));
        assert_eq!(log.take(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

#[test]
fn sleep0_does_not_starve_timers() {
    bounded(|| {
        // test__sleep0 / gevent issue: a loop of sleep(0) must let a due
        // timer fire.
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let _t = sylvan::spawn(move || {
            sylvan::sleep(MS(200));
            f.set(true);
        });
        let t0 = Instant::now();
        while !fired.get() {
            sylvan::sleep(Duration::ZERO);
            assert!(t0.elapsed() < Duration::from_secs(2), "timer starved");
        }
    });
}

#[test]
fn spawned_greenlets_start_in_spawn_order_when_main_blocks() {
    bounded(|| {
        let log = Log::default();
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let l = log.clone();
                sylvan::spawn(move || l.push(i.to_string()))
            })
            .collect();
        assert!(log.get().is_empty(), "spawn only schedules");
        sylvan::idle();
        assert_eq!(log.take(), ["0", "1", "2", "3", "4"]);
        assert!(sylvan::joinall(&gs, Some(Duration::ZERO)));
    });
}

// ---- Event / AsyncResult (test__event) ----

#[test]
fn event_set_then_clear_still_wakes_waiters() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let ws: Vec<_> = (0..3)
            .map(|_| {
                let e = ev.clone();
                sylvan::spawn(move || e.wait_timeout(MS(500)))
            })
            .collect();
        sylvan::yield_now();
        assert_eq!(ev.waiters(), 3);
        ev.set();
        ev.clear();
        for w in ws {
            assert!(w.join().unwrap());
        }
        assert!(!ev.is_set());
        // a later waiter parks again
        assert!(!ev.wait_timeout(MS(200)));
    });
}

#[test]
fn event_wait_timeout_false_then_true() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        assert!(!ev.wait_timeout(MS(200)));
        assert_eq!(ev.waiters(), 0, "a timed-out waiter leaves no trace");
        let e = ev.clone();
        let _s = sylvan::spawn_later(MS(200), move || e.set());
        assert!(ev.wait_timeout(Duration::from_secs(2)));
        assert!(ev.wait());
    });
}

#[test]
fn event_waiter_killed_leaves_no_trace_and_others_wake() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let mk = || {
            let e = ev.clone();
            sylvan::spawn(move || e.wait())
        };
        let a = mk();
        let b = mk();
        sylvan::yield_now();
        a.kill();
        assert_eq!(ev.waiters(), 1);
        ev.set();
        assert!(b.join().unwrap());
    });
}

#[test]
fn async_result_set_fail_get() {
    bounded(|| {
        let r: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
        assert_eq!(r.get_timeout(MS(200)), Err(GetError::TimedOut));
        assert_eq!(r.waiters(), 0);
        let r2 = r.clone();
        let _s = sylvan::spawn_later(MS(200), move || r2.set(7).unwrap());
        assert_eq!(r.get_timeout(Duration::from_secs(2)), Ok(7));
        assert_eq!(r.get(), Ok(7));
        assert!(r.fail("x".into()).is_err());
        assert_eq!(r.is_ok(), Some(true));

        let f: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
        let getters: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                sylvan::spawn(move || f.get())
            })
            .collect();
        sylvan::yield_now();
        f.fail("bad".into()).unwrap();
        assert_eq!(f.set(1).unwrap_err().0, 1);
        for g in getters {
            assert_eq!(g.join().unwrap(), Err(GetError::Failed("bad".into())));
        }
        assert_eq!(
            f.get_timeout(Duration::ZERO),
            Err(GetError::Failed("bad".into()))
        );
    });
}

#[test]
fn wait_reports_event_set_and_cleared() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = sylvan::spawn(move || {
            sylvan::sleep(MS(5));
            e.set();
            e.clear();
            sylvan::sleep(Duration::from_secs(10));
        });
        let r = sylvan::wait(&[&g, &*ev], Some(Duration::from_secs(2)), Some(1));
        assert_eq!(r, [1]);
        g.kill();
        let r = sylvan::wait(&[&g, &*ev], Some(MS(200)), None);
        assert_eq!(r, [0]);
    });
}

// ---- Pool / Group (test__pool) ----

#[test]
fn pool_spawn_while_full_parks_fifo() {
    bounded(|| {
        let pool = Pool::new(2);
        let log = Log::default();
        for i in 0..2 {
            let l = log.clone();
            pool.spawn(move || {
                sylvan::sleep(MS(200));
                l.push(format!("w{i}"));
            });
        }
        assert!(pool.is_full());
        assert_eq!(pool.free_count(), 0);
        let spawners: Vec<_> = (0..2)
            .map(|i| {
                let p = pool.clone();
                let l = log.clone();
                sylvan::spawn(move || {
                    let l2 = l.clone();
                    p.spawn(move || l2.push(format!("late{i}")));
                    l.push(format!("spawned{i}"));
                })
            })
            .collect();
        sylvan::yield_now();
        assert!(log.get().is_empty());
        assert!(!spawners[0].is_dead());
        assert!(sylvan::joinall(&spawners, Some(Duration::from_secs(2))));
        pool.join();
        let got = log.take();
        assert_eq!(&got[..2], ["w0", "w1"]);
        let s0 = got.iter().position(|s| s == "spawned0").unwrap();
        let s1 = got.iter().position(|s| s == "spawned1").unwrap();
        assert!(s0 < s1, "{got:?}");
        assert_eq!(pool.free_count(), 2);
    });
}

#[test]
fn pool_join_timeout_and_kill() {
    bounded(|| {
        let pool = Pool::new(3);
        let drops = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let d = drops.clone();
            pool.spawn(move || {
                let _f = DropFlag(d);
                sylvan::sleep(Duration::from_secs(10));
            });
        }
        assert!(!pool.join_timeout(MS(200)));
        assert_eq!(pool.len(), 3);
        pool.kill();
        assert_eq!(drops.get(), 3);
        assert!(pool.is_empty());
        assert!(pool.join_timeout(Duration::ZERO));
        assert_eq!(pool.free_count(), 3);
    });
}

#[test]
fn pool_kill_frees_slots_for_parked_spawner() {
    bounded(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let p = pool.clone();
        let spawner = sylvan::spawn(move || p.spawn(|| 5).join());
        sylvan::yield_now();
        assert!(!spawner.is_dead());
        pool.kill();
        // the spawner takes the slot after the kill (gevent: spawn waits for
        // a free slot; the pool's kill does not cancel spawners)
        let r = spawner.join().unwrap();
        assert!(
            r.as_ref().map_or_else(|e| e.is_killed(), |v| *v == 5),
            "{r:?}"
        );
    });
}

#[test]
fn group_join_timeout_and_kill_with_unstarted() {
    bounded(|| {
        let g = Group::new();
        let ran = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let r = ran.clone();
            g.spawn(move || {
                r.set(r.get() + 1);
                sylvan::sleep(Duration::from_secs(10));
            });
        }
        assert_eq!(g.len(), 3);
        g.kill(); // none started
        assert_eq!(ran.get(), 0);
        assert!(g.is_empty());
        for _ in 0..2 {
            g.spawn(|| sylvan::sleep(MS(200)));
        }
        assert!(!g.join_timeout(MS(20)));
        assert!(g.join_timeout(Duration::from_secs(2)));
    });
}

#[test]
fn pool_map_ordering_with_exceptions() {
    bounded(|| {
        quiet();
        let pool = Pool::new(2);
        let r = pool.map(0..6u64, |i| {
            sylvan::sleep(MS((6 - i) * 3));
            if i == 3 {
                panic!("three");
            }
            i * 10
        });
        assert_eq!(r.len(), 6);
        for (i, v) in r.iter().enumerate() {
            if i == 3 {
                assert!(v.as_ref().unwrap_err().is_panic());
            } else {
                assert_eq!(*v.as_ref().unwrap(), i as u64 * 10);
            }
        }
        let r: Vec<_> = pool
            .imap(0..6u64, |i| {
                sylvan::sleep(MS((6 - i) * 3));
                if i == 2 {
                    panic!("two");
                }
                i
            })
            .map(|r| r.map_err(|e| e.is_panic()))
            .collect();
        assert_eq!(r, [Ok(0), Ok(1), Err(true), Ok(3), Ok(4), Ok(5)]);
        let mut r: Vec<_> = pool
            .imap_unordered(0..6u64, |i| {
                sylvan::sleep(MS((6 - i) * 3));
                i
            })
            .map(Result::unwrap)
            .collect();
        r.sort();
        assert_eq!(r, [0, 1, 2, 3, 4, 5]);
        assert_eq!(pool.free_count(), 2);
    });
}

#[test]
fn group_map_with_killed_member() {
    bounded(|| {
        let g = Group::new();
        let g2 = g.clone();
        let killer = sylvan::spawn(move || {
            sylvan::sleep(MS(20));
            g2.kill();
        });
        let r = g.map(0..3u64, |i| {
            if i == 1 {
                sylvan::sleep(Duration::from_secs(10));
            }
            i
        });
        killer.join().unwrap();
        assert_eq!(r[0].as_ref().ok(), Some(&0));
        assert!(r[1].as_ref().unwrap_err().is_killed());
        assert_eq!(r[2].as_ref().ok(), Some(&2));
    });
}

#[test]
fn pool_wait_available() {
    bounded(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(MS(200)));
        assert_eq!(pool.wait_available(Some(MS(20))), 0);
        assert_eq!(pool.wait_available(Some(Duration::from_secs(2))), 1);
    });
}

// ---- round 2: ordering of waiters and links, stale wakes, double throws ----

#[test]
fn links_and_join_waiters_in_registration_order() {
    bounded(|| {
        let log = Log::default();
        let g = Rc::new(sylvan::spawn(|| sylvan::sleep(MS(20))));
        let l = log.clone();
        g.link(move |_| l.push("link1"));
        let (l, g2) = (log.clone(), g.clone());
        let w = sylvan::spawn(move || {
            g2.wait(None);
            l.push("waiter");
        });
        sylvan::yield_now(); // w parks in wait: registered second
        let l = log.clone();
        g.link(move |_| l.push("link2"));
        w.join().unwrap();
        sylvan::sleep(MS(10));
        assert_eq!(log.take(), ["link1", "waiter", "link2"]);
    });
}

#[test]
fn timed_out_wait_leaves_no_stale_wake() {
    bounded(|| {
        let g = sylvan::spawn(|| sylvan::sleep(MS(300)));
        assert!(sylvan::with_timeout(MS(200), || g.wait(None)).is_err());
        assert!(!g.wait(Some(MS(20))));
        // g dies during this sleep: it must not cut it short
        let t0 = Instant::now();
        sylvan::sleep(MS(400));
        assert!(t0.elapsed() >= MS(400), "woken early: {:?}", t0.elapsed());
        assert!(g.is_dead());
    });
}

#[test]
fn timed_out_event_and_result_waits_leave_no_stale_wake() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let ar: Rc<AsyncResult<u8, String>> = Rc::new(AsyncResult::new());
        assert!(sylvan::with_timeout(MS(200), || ev.wait()).is_err());
        assert!(sylvan::with_timeout(MS(200), || ar.get()).is_err());
        assert_eq!(ev.waiters() + ar.waiters(), 0);
        let (e, a) = (ev.clone(), ar.clone());
        let _s = sylvan::spawn(move || {
            sylvan::sleep(MS(50));
            e.set();
            a.set(1).unwrap();
        });
        let t0 = Instant::now();
        sylvan::sleep(MS(300));
        assert!(t0.elapsed() >= MS(300), "woken early: {:?}", t0.elapsed());
    });
}

#[test]
fn killed_joinall_caller_leaves_no_waiters() {
    bounded(|| {
        let gs: Rc<Vec<Greenlet<()>>> = Rc::new(
            (0..3)
                .map(|_| sylvan::spawn(|| sylvan::sleep(MS(200))))
                .collect(),
        );
        let g2 = gs.clone();
        let j = sylvan::spawn(move || sylvan::joinall(&g2, None));
        sylvan::yield_now();
        j.kill();
        assert!(j.join().unwrap_err().is_killed());
        let t0 = Instant::now();
        sylvan::sleep(MS(400));
        assert!(t0.elapsed() >= MS(400));
        assert!(gs.iter().all(|g| g.is_dead()));
    });
}

#[test]
fn two_kills_in_one_turn_reach_a_greenlet_that_catches_one() {
    // gevent throws one GreenletExit per kill (was dropped by the dedup in
    // Hub::defer_throw until that was fixed).
    bounded(|| {
        let g = sylvan::spawn(|| {
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
            assert!(r.is_err());
            sylvan::sleep(MS(500));
            "survived"
        });
        sylvan::yield_now();
        g.kill_nowait();
        g.kill_nowait();
        let e = g.join().unwrap_err();
        assert!(e.is_killed(), "{e:?}");
    });
}

#[test]
fn deferred_throw_to_greenlet_that_returned_hits_nobody() {
    bounded(|| {
        // g catches the first kill and returns at once: the second kill,
        // queued behind it, has no one to go to.
        let g = sylvan::spawn(|| {
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
            r.is_err()
        });
        sylvan::yield_now();
        g.kill_nowait();
        g.kill_nowait();
        assert!(g.join().unwrap());
        let h = sylvan::spawn(|| {
            sylvan::sleep(MS(300));
            9
        });
        assert_eq!(h.join().unwrap(), 9);
    });
}

#[test]
fn deferred_timeout_behind_kill_withdrawn_by_drop() {
    bounded(|| {
        // kill arrives first, the timeout fires right behind it; g catches
        // the kill and drops its Timeout: the queued timeout is withdrawn.
        let g = sylvan::spawn(|| {
            let t = Timeout::start(MS(200));
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10))));
            let p = r.unwrap_err();
            let own = t.is_own_payload(&*p);
            drop(t);
            sylvan::sleep(MS(300));
            if own { "timeout" } else { "kill" }
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        g.kill_nowait();
        let r = g.join();
        assert!(matches!(r, Ok("kill") | Ok("timeout")), "{r:?}");
    });
}

#[test]
fn deferred_kill_behind_timeout_still_lands() {
    bounded(|| {
        // The timeout fires first (the hub sees it overdue before the
        // killer runs), the kill comes right behind; g catches the timeout
        // and goes on: the kill must still land.
        let g = Rc::new(sylvan::spawn(|| {
            let t = Timeout::start(MS(200));
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10))));
            let p = r.unwrap_err();
            if !t.is_own_payload(&*p) {
                resume_unwind(p);
            }
            drop(t);
            sylvan::sleep(MS(300));
            "survived"
        }));
        sylvan::yield_now();
        let g2 = g.clone();
        let _k = sylvan::spawn(move || {
            std::thread::sleep(MS(250));
            sylvan::yield_now();
            g2.kill_nowait();
        });
        let g = {
            yield_until("g dead", || g.is_dead());
            Rc::try_unwrap(g).ok().unwrap()
        };
        let e = g.join().unwrap_err();
        assert!(e.is_killed(), "{e:?}");
    });
}

#[test]
fn parked_pool_spawner_killed_or_timed_out_leaks_no_slot() {
    bounded(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(MS(200)));
        let p = pool.clone();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let spawner = sylvan::spawn(move || {
            p.spawn(move || r.set(true));
        });
        sylvan::yield_now();
        spawner.kill();
        assert!(sylvan::with_timeout(MS(20), || pool.spawn(|| ())).is_err());
        pool.join();
        assert!(!ran.get());
        assert_eq!(pool.free_count(), 1);
        assert!(pool.is_empty());
        assert_eq!(pool.spawn(|| 3).join().unwrap(), 3);
    });
}

#[test]
fn pool_map_caller_killed_kills_tasks() {
    bounded(|| {
        let pool = Pool::new(2);
        let p = pool.clone();
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let m = sylvan::spawn(move || {
            let d = d.clone();
            p.map(0..4, move |_| {
                let _f = DropFlag(d.clone());
                sylvan::sleep(Duration::from_secs(10));
            })
        });
        sylvan::sleep(MS(10));
        assert_eq!(pool.len(), 2);
        m.kill();
        yield_until("pool empty", || pool.is_empty());
        assert_eq!(drops.get(), 2);
        assert_eq!(pool.free_count(), 2);
    });
}

#[test]
fn imap_dropped_early_kills_started() {
    bounded(|| {
        let g = Group::new();
        let mut it = g.imap(0..4u64, |i| {
            sylvan::sleep(MS(if i == 0 { 1 } else { 10_000 }));
            i
        });
        assert_eq!(it.next().unwrap().unwrap(), 0);
        drop(it);
        yield_until("group empty", || g.is_empty());
    });
}

#[test]
fn event_set_lets_woken_waiters_run_before_a_later_wait() {
    bounded(|| {
        let log = Log::default();
        let ev = Rc::new(Event::new());
        let ws: Vec<_> = (0..2)
            .map(|i| {
                let (e, l) = (ev.clone(), log.clone());
                sylvan::spawn(move || {
                    e.wait();
                    l.push(format!("w{i}"));
                })
            })
            .collect();
        sylvan::yield_now();
        ev.set();
        ev.wait();
        log.push("main");
        assert_eq!(log.take(), ["w0", "w1", "main"]);
        assert!(sylvan::joinall(&ws, None));
    });
}

#[test]
fn join_from_destructor_during_kill_is_unwinding() {
    bounded(|| {
        struct JoinOnDrop(Option<Greenlet<u8>>, Rc<RefCell<String>>);
        impl Drop for JoinOnDrop {
            fn drop(&mut self) {
                let r = self.0.take().unwrap().join();
                *self.1.borrow_mut() = format!("{r:?}");
            }
        }
        let out = Rc::new(RefCell::new(String::new()));
        let o = out.clone();
        let g = sylvan::spawn(move || {
            let inner = sylvan::spawn(|| {
                sylvan::sleep(Duration::from_secs(10));
                1
            });
            let _j = JoinOnDrop(Some(inner), o);
            sylvan::sleep(Duration::from_secs(10));
        });
        sylvan::yield_now();
        g.kill();
        assert!(out.borrow().contains("Unwinding"), "{}", out.borrow());
    });
}

#[test]
fn wait_zero_on_live_greenlet_is_false() {
    bounded(|| {
        let g = sylvan::spawn(|| 1);
        assert!(!g.wait(Some(Duration::ZERO)) || g.is_dead());
        assert!(g.wait(None));
        assert!(g.wait(Some(Duration::ZERO)));
    });
}

#[test]
fn current_in_link_callback_is_a_fresh_greenlet() {
    bounded(|| {
        let ids = Rc::new(RefCell::new(Vec::new()));
        let i = ids.clone();
        let g = sylvan::spawn(move || {
            i.borrow_mut().push(sylvan::current());
        });
        let gid = g.id();
        let i = ids.clone();
        g.link(move |_| i.borrow_mut().push(sylvan::current()));
        g.join().unwrap();
        let ids = ids.borrow();
        assert_eq!(ids[0], gid);
        assert_ne!(ids[1], gid);
        assert_ne!(ids[1], sylvan::current());
    });
}

// ---- round 3 ----

#[test]
fn panicking_link_callback_does_not_stop_others_or_join() {
    bounded(|| {
        quiet();
        let log = Log::default();
        let g = sylvan::spawn(|| 4);
        g.link(|_| panic!("callback boom"));
        let l = log.clone();
        g.link_value(move |v| l.push(format!("after:{v}")));
        assert_eq!(g.join().unwrap(), 4);
        assert_eq!(log.take(), ["after:4"]);
    });
}

#[test]
fn join_waits_for_blocking_callbacks() {
    bounded(|| {
        let g = sylvan::spawn(|| 1);
        g.link_value(|_| sylvan::sleep(MS(200)));
        let t0 = Instant::now();
        assert_eq!(g.join().unwrap(), 1);
        assert!(t0.elapsed() >= MS(200));
    });
}

#[test]
fn with_timeout_panic_propagates_and_disarms() {
    bounded(|| {
        quiet();
        let r = catch_unwind(|| sylvan::with_timeout(MS(200), || -> u8 { panic!("inner") }));
        assert!(r.is_err());
        let t0 = Instant::now();
        sylvan::sleep(MS(300));
        assert!(t0.elapsed() >= MS(300));
    });
}

#[test]
fn with_timeout_f_swallows_its_expiry_is_ok() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
            r.is_err()
        });
        assert_eq!(r.ok(), Some(true));
        sylvan::sleep(MS(50));
    });
}

#[test]
fn kill_greenlet_in_yield_loop_and_woken_but_not_run() {
    bounded(|| {
        let spins = sylvan::spawn(|| {
            loop {
                sylvan::yield_now();
            }
        });
        sylvan::yield_now();
        spins.kill();
        assert!(spins.join().unwrap_err().is_killed());

        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let w = sylvan::spawn(move || e.wait());
        sylvan::yield_now();
        ev.set(); // w is woken, has not run
        w.kill_nowait();
        assert!(w.join().unwrap_err().is_killed());
    });
}

#[test]
fn group_join_waits_for_members_spawned_by_members() {
    bounded(|| {
        let g = Group::new();
        let done = Rc::new(Cell::new(false));
        let (g2, d) = (g.clone(), done.clone());
        g.spawn(move || {
            sylvan::sleep(MS(10));
            g2.spawn(move || {
                sylvan::sleep(MS(200));
                d.set(true);
            });
        });
        g.join();
        assert!(done.get());
        assert!(g.is_empty());
    });
}

#[test]
fn pool_kill_from_member_kills_it_last() {
    bounded(|| {
        let pool = Pool::new(3);
        let log = Log::default();
        for i in 0..2 {
            let l = log.clone();
            pool.spawn(move || {
                struct Bye(Log, u32);
                impl Drop for Bye {
                    fn drop(&mut self) {
                        self.0.push(format!("bye{}", self.1));
                    }
                }
                let _b = Bye(l, i);
                sylvan::sleep(Duration::from_secs(10));
            });
        }
        let (p, l) = (pool.clone(), log.clone());
        let k = pool.spawn(move || {
            sylvan::sleep(MS(5));
            p.kill();
            l.push("unreachable");
        });
        assert!(k.join().unwrap_err().is_killed());
        assert!(pool.is_empty());
        let mut got = log.take();
        got.sort();
        assert_eq!(got, ["bye0", "bye1"]);
    });
}

#[test]
fn empty_map_and_unstarted_killall() {
    bounded(|| {
        let pool = Pool::new(2);
        assert!(pool.map(Vec::<u8>::new(), |x| x).is_empty());
        assert_eq!(pool.imap(Vec::<u8>::new(), |x| x).count(), 0);
        let ran = Rc::new(Cell::new(false));
        let gs: Vec<_> = (0..3)
            .map(|_| {
                let r = ran.clone();
                sylvan::spawn(move || r.set(true))
            })
            .collect();
        assert!(sylvan::killall(&gs, Some(Duration::ZERO)).is_ok());
        assert!(gs[0].kill_timeout(Duration::ZERO));
        sylvan::sleep(MS(10));
        assert!(!ran.get());
    });
}

#[test]
fn async_result_set_and_timeout_in_one_turn_gives_value() {
    bounded(|| {
        let ar: Rc<AsyncResult<u8, String>> = Rc::new(AsyncResult::new());
        let a = ar.clone();
        let _s = sylvan::spawn(move || {
            std::thread::sleep(MS(300)); // main's deadline passes meanwhile
            a.set(8).unwrap();
        });
        let r = ar.get_timeout(MS(200));
        assert!(ar.is_ready());
        assert_eq!(r, Ok(8), "set before main's timeout was seen");
    });
}

#[test]
fn event_set_and_timeout_in_one_turn_is_true() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let _s = sylvan::spawn(move || {
            std::thread::sleep(MS(300));
            e.set();
        });
        assert!(ev.wait_timeout(MS(200)));
    });
}

#[test]
fn greenlet_wait_and_death_in_one_turn_is_true() {
    bounded(|| {
        let g = sylvan::spawn(|| std::thread::sleep(MS(300)));
        assert!(g.wait(Some(MS(200))));
        let gs = vec![sylvan::spawn(|| std::thread::sleep(MS(300)))];
        assert!(sylvan::joinall(&gs, Some(MS(200))));
    });
}

#[test]
fn iwait_timeout_partial_and_semaphore() {
    bounded(|| {
        let sem = Rc::new(sylvan::sync::Semaphore::new(0));
        let s = sem.clone();
        let fast = sylvan::spawn(|| sylvan::sleep(MS(5)));
        let slow = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let _rel = sylvan::spawn_later(MS(20), move || s.release());
        let got: Vec<usize> = sylvan::iwait(&[&slow, &fast, &*sem], Some(MS(250))).collect();
        assert_eq!(got, [1, 2]);
        slow.kill();
    });
}

#[test]
fn link_to_async_result_pattern() {
    bounded(|| {
        quiet();
        let ar: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
        let (a1, a2) = (ar.clone(), ar.clone());
        let g = sylvan::spawn(|| -> u32 { panic!("nope") });
        g.link_value(move |v| a1.set(*v).unwrap());
        g.link_exception(move |e| a2.fail(format!("{}", e.is_panic())).unwrap());
        assert_eq!(ar.get(), Err(GetError::Failed("true".into())));
        assert!(g.join().unwrap_err().is_panic());
    });
}

#[test]
fn timeout_started_in_main_expires_in_pool_join() {
    bounded(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(MS(400)));
        let t = Timeout::start(MS(200));
        let r = catch_unwind(AssertUnwindSafe(|| pool.join()));
        assert!(t.is_own_payload(&*r.unwrap_err()));
        drop(t);
        assert!(!pool.is_empty());
        assert!(pool.join_timeout(Duration::from_secs(2)));
    });
}

// ---- round 4: timeouts withdrawn between firing and delivery ----

#[test]
fn timeout_dropped_by_other_greenlet_after_firing_is_withdrawn() {
    bounded(|| {
        let cell: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
        let c = cell.clone();
        let a = sylvan::spawn(move || {
            *c.borrow_mut() = Some(Timeout::start(MS(200)));
            sylvan::sleep(MS(400));
            "slept"
        });
        let c = cell.clone();
        // due before a's timeout, so it fires first in the same turn and
        // runs before a does
        let b = sylvan::spawn(move || {
            sylvan::sleep(MS(190));
            drop(c.borrow_mut().take());
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        b.join().unwrap();
        let r = a.join();
        assert!(matches!(r, Ok("slept")), "{r:?}");
    });
}

#[test]
fn main_timeout_dropped_by_other_greenlet_after_firing_is_withdrawn() {
    bounded(|| {
        let cell: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
        *cell.borrow_mut() = Some(Timeout::start(MS(200)));
        let c = cell.clone();
        let b = sylvan::spawn(move || {
            sylvan::sleep(MS(190));
            drop(c.borrow_mut().take());
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        let t0 = Instant::now();
        let r = catch_unwind(|| sylvan::sleep(MS(200)));
        assert!(r.is_ok(), "a dropped Timeout was thrown");
        assert!(t0.elapsed() >= MS(200), "{:?}", t0.elapsed());
        b.join().unwrap();
    });
}

#[test]
fn inner_code_catches_outer_timeout_blocks_then_reraises() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
            let p = r.unwrap_err();
            assert!(sylvan::is_unwind_payload(&*p));
            sylvan::sleep(MS(50)); // blocking is fine here: not unwinding
            resume_unwind(p)
        });
        assert!(r.is_err());
        let t0 = Instant::now();
        sylvan::sleep(MS(250));
        assert!(t0.elapsed() >= MS(250));
    });
}

#[test]
fn kill_while_join_waits_for_callbacks() {
    bounded(|| {
        let target = Rc::new(RefCell::new(Some(sylvan::spawn(|| 1))));
        let release = Rc::new(Event::new());
        let r = release.clone();
        target.borrow().as_ref().unwrap().link_value(move |_| {
            r.wait();
        });
        let t = target.clone();
        let j = sylvan::spawn(move || {
            let g = t.borrow_mut().take().unwrap();
            g.join()
        });
        sylvan::sleep(MS(10));
        assert!(!j.is_dead(), "join waits for the blocked callback");
        j.kill();
        assert!(j.join().unwrap_err().is_killed());
        release.set();
        sylvan::sleep(MS(10));
    });
}

#[test]
fn pool_imap_bounded_concurrency_and_panic_in_order() {
    bounded(|| {
        quiet();
        let pool = Pool::new(2);
        let busy = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let (b, m) = (busy.clone(), most.clone());
        let r: Vec<_> = pool
            .imap(0..6u64, move |i| {
                b.set(b.get() + 1);
                m.set(m.get().max(b.get()));
                sylvan::sleep(MS(3 * (6 - i)));
                b.set(b.get() - 1);
                if i == 4 {
                    panic!("four")
                }
                i
            })
            .map(|r| r.map_err(|e| e.is_panic()))
            .collect();
        assert_eq!(most.get(), 2);
        assert_eq!(r, [Ok(0), Ok(1), Ok(2), Ok(3), Err(true), Ok(5)]);
    });
}

#[test]
fn group_imap_unordered_completion_order_with_panic() {
    bounded(|| {
        quiet();
        let g = Group::new();
        let r: Vec<_> = g
            .imap_unordered([30u64, 10, 20], |ms| {
                sylvan::sleep(MS(ms));
                if ms == 10 {
                    panic!("ten");
                }
                ms
            })
            .map(|r| r.map_err(|e| e.is_panic()))
            .collect();
        assert_eq!(r, [Err(true), Ok(20), Ok(30)]);
    });
}

#[test]
fn async_result_woken_getter_killed_others_still_get() {
    bounded(|| {
        let ar: Rc<AsyncResult<u8, String>> = Rc::new(AsyncResult::new());
        let mk = || {
            let a = ar.clone();
            sylvan::spawn(move || a.get())
        };
        let (x, y) = (mk(), mk());
        sylvan::yield_now();
        ar.set(3).unwrap();
        x.kill_nowait();
        assert!(x.join().unwrap_err().is_killed());
        assert_eq!(y.join().unwrap(), Ok(3));
        assert_eq!(ar.waiters(), 0);
    });
}

#[test]
fn with_outcome_after_join_is_none_and_before_death_none() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            sylvan::sleep(MS(5));
            1
        });
        assert!(g.with_outcome(|_| ()).is_none());
        g.wait(None);
        assert_eq!(g.with_outcome(outcome_name), Some("returned"));
    });
}

// ---- round 5 ----

#[test]
fn spawn_later_killed_when_its_start_is_overdue() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = sylvan::spawn_later(MS(200), move || r.set(true));
        std::thread::sleep(MS(250)); // start timer overdue, not fired yet
        g.kill_nowait();
        assert!(g.is_dead());
        sylvan::sleep(MS(50));
        assert!(!ran.get());
        // and killed by a greenlet after the start timer fired (scheduled,
        // not started)
        let ran2 = Rc::new(Cell::new(false));
        let r2 = ran2.clone();
        let h = Rc::new(sylvan::spawn_later(MS(200), move || r2.set(true)));
        let h2 = h.clone();
        let k = sylvan::spawn(move || {
            sylvan::sleep(MS(190));
            std::thread::sleep(MS(30)); // h's start comes due meanwhile
            sylvan::yield_now(); // the turn fires h's start: h is queued
            h2.kill_nowait();
            h2.is_started()
        });
        assert!(!k.join().unwrap());
        assert!(h.is_dead());
        sylvan::sleep(MS(20));
        assert!(!ran2.get());
    });
}

#[test]
fn pool_wait_available_lets_waiting_spawner_go_first() {
    bounded(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(MS(200)));
        let p = pool.clone();
        let s = sylvan::spawn(move || {
            p.spawn(|| sylvan::sleep(MS(200)));
        });
        sylvan::yield_now();
        let t0 = Instant::now();
        let n = pool.wait_available(Some(Duration::from_secs(2)));
        assert_eq!(n, 1);
        assert!(t0.elapsed() >= MS(350), "{:?}", t0.elapsed());
        s.join().unwrap();
    });
}

#[test]
fn wait_count_above_len_and_zero() {
    bounded(|| {
        let a = sylvan::spawn(|| sylvan::sleep(MS(5)));
        let b = sylvan::spawn(|| sylvan::sleep(MS(10)));
        assert!(sylvan::wait(&[&a, &b], Some(Duration::ZERO), Some(0)).is_empty());
        let t0 = Instant::now();
        let r = sylvan::wait(&[&a, &b], Some(Duration::from_secs(2)), Some(5));
        assert_eq!(r, [0, 1]);
        assert!(t0.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn iwait_reports_object_ready_while_consumer_was_elsewhere() {
    bounded(|| {
        let a = sylvan::spawn(|| sylvan::sleep(MS(5)));
        let b = sylvan::spawn(|| sylvan::sleep(MS(100)));
        let objs: [&dyn sylvan::Waitable; 2] = [&a, &b];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(2)));
        assert_eq!(it.next(), Some(0));
        sylvan::sleep(MS(300));
        let t0 = Instant::now();
        assert_eq!(it.next(), Some(1));
        assert!(t0.elapsed() < MS(1000));
        assert_eq!(it.next(), None);
    });
}

#[test]
fn huge_durations_do_not_overflow() {
    bounded(|| {
        let g = sylvan::spawn(|| sylvan::sleep(Duration::MAX));
        sylvan::yield_now();
        assert!(!g.wait(Some(Duration::MAX.saturating_sub(MS(1))).min(Some(MS(20)))));
        g.kill();
        assert_eq!(sylvan::with_timeout(Duration::MAX, || 3).ok(), Some(3));
        let t = Timeout::start(Duration::MAX);
        sylvan::sleep(MS(1));
        drop(t);
        let ev = Event::new();
        ev.set();
        assert!(ev.wait_timeout(Duration::MAX));
    });
}

#[test]
fn event_set_clear_set_wakes_old_and_new_waiters() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let log = Log::default();
        let mk = |n: &'static str| {
            let (e, l) = (ev.clone(), log.clone());
            sylvan::spawn(move || {
                e.wait();
                l.push(n);
            })
        };
        let a = mk("a");
        sylvan::yield_now();
        ev.set();
        ev.clear();
        let b = mk("b");
        sylvan::yield_now(); // a runs (woken), b parks
        assert_eq!(log.get(), ["a"]);
        assert!(!b.is_dead());
        ev.set();
        assert!(sylvan::joinall(&[a, b], Some(Duration::from_secs(2))));
        assert_eq!(log.take(), ["a", "b"]);
    });
}

// ---- round 6: nested timeouts due in one turn ----

#[test]
fn nested_timeouts_due_together_inner_first_outer_withdrawn() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(210), || {
            sylvan::with_timeout(MS(200), || {
                std::thread::sleep(MS(250)); // both overdue
                sylvan::sleep(Duration::from_secs(10));
            })
        });
        assert!(matches!(r, Ok(Err(_))), "{r:?}");
        let t0 = Instant::now();
        let r = catch_unwind(|| sylvan::sleep(MS(300)));
        assert!(r.is_ok(), "the withdrawn outer timeout was thrown later");
        assert!(t0.elapsed() >= MS(300));
    });
}

#[test]
fn nested_timeouts_due_together_inner_first_outer_delivered_on_block() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(210), || {
            let inner = sylvan::with_timeout(MS(200), || {
                std::thread::sleep(MS(250));
                sylvan::sleep(Duration::from_secs(10));
            });
            assert!(inner.is_err());
            sylvan::sleep(Duration::from_secs(10));
        });
        assert!(r.is_err(), "{r:?}");
        let t0 = Instant::now();
        sylvan::sleep(MS(300));
        assert!(t0.elapsed() >= MS(300));
    });
}

#[test]
fn nested_timeouts_due_together_outer_first() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            sylvan::with_timeout(MS(210), || {
                std::thread::sleep(MS(250));
                sylvan::sleep(Duration::from_secs(10));
            })
        });
        assert!(r.is_err(), "{r:?}");
        let t0 = Instant::now();
        let r = catch_unwind(|| sylvan::sleep(MS(300)));
        assert!(r.is_ok(), "the withdrawn inner timeout was thrown later");
        assert!(t0.elapsed() >= MS(300));
    });
}

#[test]
fn kill_timeout_false_leaves_no_stale_wake() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(10)));
            assert!(r.is_err());
            sylvan::sleep(MS(300));
        });
        sylvan::yield_now();
        assert!(!g.kill_timeout(MS(100)));
        let t0 = Instant::now();
        sylvan::sleep(MS(400)); // g dies meanwhile
        assert!(t0.elapsed() >= MS(400), "{:?}", t0.elapsed());
        assert!(g.is_dead());
        g.join().unwrap();
    });
}

#[test]
fn link_added_inside_callback_and_after_unlink_all_fires() {
    bounded(|| {
        let log = Log::default();
        let g: Rc<Greenlet<u8>> = Rc::new(sylvan::spawn(|| 2));
        let (l, gg) = (log.clone(), g.clone());
        g.link(move |_| {
            l.push("first");
            gg.unlink_all();
            let l2 = l.clone();
            gg.link_value(move |v| l2.push(format!("late:{v}")));
        });
        let l = log.clone();
        g.link(move |_| l.push("cut"));
        assert!(g.wait(None));
        sylvan::sleep(MS(20));
        assert_eq!(log.take(), ["first", "late:2"]);
    });
}

// ---- round 7 ----

#[test]
fn unlink_all_before_death_keeps_join_and_waiters() {
    bounded(|| {
        let log = Log::default();
        let g = Rc::new(sylvan::spawn(|| {
            sylvan::sleep(MS(20));
            1
        }));
        let l = log.clone();
        g.link(move |_| l.push("cut"));
        let g2 = g.clone();
        let w = sylvan::spawn(move || g2.wait(None));
        sylvan::yield_now();
        g.unlink_all();
        assert!(w.join().unwrap());
        let g = Rc::try_unwrap(g).ok().unwrap();
        assert_eq!(g.join().unwrap(), 1);
        assert!(log.take().is_empty());
    });
}

#[test]
fn timeout_in_join_waiting_for_callbacks_leaves_no_stale_wake() {
    bounded(|| {
        let b = sylvan::spawn(|| 5);
        b.link_value(|_| sylvan::sleep(MS(300)));
        sylvan::yield_now(); // b dies, its callback starts and sleeps
        assert!(b.is_dead());
        let r = sylvan::with_timeout(MS(100), || b.join());
        assert!(r.is_err());
        let t0 = Instant::now();
        sylvan::sleep(MS(400)); // the callback ends meanwhile
        assert!(t0.elapsed() >= MS(400), "{:?}", t0.elapsed());
    });
}

#[test]
fn with_timeout_in_destructor_during_kill_does_not_switch() {
    bounded(|| {
        struct D(Rc<RefCell<String>>);
        impl Drop for D {
            fn drop(&mut self) {
                // A sleep that switched would take 3 s.
                let r = sylvan::with_timeout(MS(4000), || sylvan::sleep(MS(3000)));
                *self.0.borrow_mut() = format!("{r:?}");
            }
        }
        let out = Rc::new(RefCell::new(String::new()));
        let o = out.clone();
        let g = sylvan::spawn(move || {
            let _d = D(o);
            sylvan::sleep(Duration::from_secs(10));
        });
        sylvan::yield_now();
        let t0 = Instant::now();
        g.kill();
        assert!(t0.elapsed() < MS(1000));
        assert_eq!(*out.borrow(), "Ok(())");
        // the Timeout armed during the unwind left nothing behind
        let t0 = Instant::now();
        sylvan::sleep(MS(300));
        assert!(t0.elapsed() >= MS(300));
    });
}

#[test]
fn pool_kill_from_map_task_ends_map() {
    bounded(|| {
        let pool = Pool::new(3);
        let p = pool.clone();
        let t0 = Instant::now();
        let r = pool.map(0..3u32, move |i| {
            if i == 0 {
                sylvan::sleep(MS(5));
                p.kill();
            }
            sylvan::sleep(Duration::from_secs(10));
            i
        });
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(
            r.iter().all(|r| r.as_ref().is_err_and(|e| e.is_killed())),
            "{r:?}"
        );
        assert!(pool.is_empty());
    });
}

#[test]
fn builder_names_and_spawn_later() {
    bounded(|| {
        let g = sylvan::Builder::new()
            .name("later")
            .stack_size(1)
            .spawn_later(MS(200), sylvan::current_name)
            .unwrap();
        assert_eq!(g.name(), Some("later"));
        let t0 = Instant::now();
        assert_eq!(g.join().unwrap().as_deref(), Some("later"));
        assert!(t0.elapsed() >= MS(200));
    });
}

#[test]
fn killed_caller_of_panicking_spawn_blocking_job() {
    bounded(|| {
        quiet();
        let g = sylvan::spawn(|| {
            sylvan::spawn_blocking(|| -> u8 {
                std::thread::sleep(MS(200));
                panic!("late job panic")
            })
        });
        sylvan::yield_now();
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        sylvan::sleep(MS(300)); // the job panics on its thread meanwhile
        assert_eq!(sylvan::spawn_blocking(|| 6), 6);
        let r = catch_unwind(|| sylvan::spawn_blocking(|| -> u8 { panic!("direct") }));
        assert!(r.is_err());
    });
}

// ---- round 8: what the error policy is told ----

fn observed_log() -> Rc<RefCell<Vec<(String, bool)>>> {
    let seen: Rc<RefCell<Vec<(String, bool)>>> = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    sylvan::set_error_policy(sylvan::ErrorPolicy::Custom(Rc::new(move |f| {
        s.borrow_mut()
            .push((f.name.unwrap_or("?").to_string(), f.observed));
    })));
    seen
}

fn failing(name: &str) -> Greenlet<()> {
    sylvan::Builder::new()
        .name(name)
        .spawn(|| {
            sylvan::sleep(MS(20));
            panic!("fail")
        })
        .unwrap()
}

#[test]
fn error_policy_observed_flag() {
    bounded(|| {
        let seen = observed_log();
        let a = failing("exc");
        a.link_exception(|_| {});
        let b = failing("value-only");
        b.link_value(|_| {});
        let c = failing("unlinked");
        c.link_exception(|_| {});
        c.unlink_all();
        let d = failing("joined");
        let e = failing("timed-out-waiter");
        assert!(sylvan::with_timeout(MS(5), || e.wait(None)).is_err());
        let f = failing("link");
        f.link(|_| {});
        assert!(d.join().unwrap_err().is_panic());
        assert!(sylvan::joinall(&[a, b, c, e, f], None));
        sylvan::sleep(MS(10));
        let mut got = seen.borrow().clone();
        got.sort();
        assert_eq!(
            got,
            [
                ("exc".to_string(), true),
                ("joined".to_string(), true),
                ("link".to_string(), true),
                ("timed-out-waiter".to_string(), false),
                ("unlinked".to_string(), false),
                ("value-only".to_string(), false),
            ]
        );
    });
}

#[test]
fn escaped_timeout_is_reported_once() {
    bounded(|| {
        let seen = observed_log();
        let g = sylvan::Builder::new()
            .name("t")
            .spawn(|| {
                let _t = Timeout::start(MS(5));
                sylvan::sleep(Duration::from_secs(10));
            })
            .unwrap();
        assert!(g.join().unwrap_err().is_timeout());
        let k = sylvan::Builder::new()
            .name("k")
            .spawn(|| sylvan::sleep(Duration::from_secs(10)))
            .unwrap();
        sylvan::yield_now();
        k.kill();
        assert_eq!(*seen.borrow(), [("t".to_string(), true)]);
    });
}

// ---- round 9: more of gevent's tests ----

#[test]
fn kill_twice_link_fires_once() {
    bounded(|| {
        let log = Log::default();
        let g = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(10)));
        let l = log.clone();
        g.link(move |o| l.push(outcome_name(o)));
        sylvan::yield_now();
        g.kill();
        g.kill();
        g.kill_nowait();
        sylvan::sleep(MS(20));
        assert_eq!(log.take(), ["killed"]);
    });
}

#[test]
fn event_set_then_clear_many_waiters() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let ws: Vec<_> = (0..200)
            .map(|_| {
                let e = ev.clone();
                sylvan::spawn(move || e.wait_timeout(Duration::from_secs(2)))
            })
            .collect();
        sylvan::yield_now();
        ev.set();
        ev.clear();
        for w in ws {
            assert!(w.join().unwrap());
        }
    });
}

struct PanicsAfter(u32);
impl Iterator for PanicsAfter {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            panic!("input failed");
        }
        self.0 -= 1;
        Some(self.0)
    }
}

#[test]
fn imap_input_panic_propagates_and_kills_started_tasks() {
    bounded(|| {
        quiet();
        let g = Group::new();
        let drops = Rc::new(Cell::new(0));
        let d = drops.clone();
        let r = catch_unwind(AssertUnwindSafe(|| {
            g.imap(PanicsAfter(2), move |_| {
                let _f = DropFlag(d.clone());
                sylvan::sleep(Duration::from_secs(10));
            })
            .count()
        }));
        assert!(r.is_err());
        yield_until("group empty", || g.is_empty());
        // killed before they started (group imap starts all on first next)
        assert_eq!(drops.get(), 0);
    });
}

#[test]
fn map_input_panic_propagates_and_kills_started_tasks() {
    bounded(|| {
        quiet();
        let pool = Pool::new(4);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.map(PanicsAfter(2), |_| sylvan::sleep(Duration::from_secs(10)))
        }));
        assert!(r.is_err());
        yield_until("pool empty", || pool.is_empty());
        assert_eq!(pool.free_count(), 4);
    });
}

#[test]
fn map_with_pool_size_one_keeps_order_and_bound() {
    bounded(|| {
        let pool = Pool::new(1);
        let busy = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let (b, m) = (busy.clone(), most.clone());
        let r = pool.map(0..5u64, move |i| {
            b.set(b.get() + 1);
            m.set(m.get().max(b.get()));
            sylvan::sleep(MS(5 - i));
            b.set(b.get() - 1);
            i
        });
        assert_eq!(most.get(), 1);
        let r: Vec<u64> = r.into_iter().map(Result::unwrap).collect();
        assert_eq!(r, [0, 1, 2, 3, 4]);
    });
}

#[test]
fn pool_member_spawning_into_full_pool_waits_for_slot() {
    bounded(|| {
        // gevent test__pool test_reentrant-like: a member spawns into its own
        // pool; it gets a slot once another member ends.
        let pool = Pool::new(2);
        pool.spawn(|| sylvan::sleep(MS(200)));
        let p = pool.clone();
        let m = pool.spawn(move || p.spawn(|| 7).join());
        let t0 = Instant::now();
        assert_eq!(m.join().unwrap().unwrap(), 7);
        assert!(t0.elapsed() >= MS(200));
        pool.join();
    });
}

#[test]
fn pool_slot_handed_to_killed_spawner_passes_on() {
    bounded(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sylvan::sleep(MS(200)));
        let log = Log::default();
        let mk = |n: &'static str| {
            let (p, l) = (pool.clone(), log.clone());
            Rc::new(sylvan::spawn(move || {
                let l2 = l.clone();
                p.spawn(move || l2.push(format!("task-{n}")));
                l.push(format!("spawned-{n}"));
            }))
        };
        let s1 = mk("s1");
        let s2 = mk("s2");
        let s1k = s1.clone();
        // due just after the member ends, in the same turn: runs after the
        // member handed its slot to s1, before s1 runs
        let _k = sylvan::spawn(move || {
            sylvan::sleep(MS(210));
            s1k.kill_nowait();
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        yield_until("s2 dead", || s2.is_dead());
        pool.join();
        assert!(s1.is_dead());
        assert_eq!(log.take(), ["spawned-s2", "task-s2"]);
        assert_eq!(pool.free_count(), 1);
    });
}

#[test]
fn imap_unordered_member_killed_externally() {
    bounded(|| {
        let g = Group::new();
        let g2 = g.clone();
        let _k = sylvan::spawn(move || {
            sylvan::sleep(MS(20));
            g2.kill();
        });
        let r: Vec<_> = g
            .imap_unordered([5u64, 10_000], |ms| {
                sylvan::sleep(MS(ms));
                ms
            })
            .map(|r| r.map_err(|e| e.is_killed()))
            .collect();
        assert_eq!(r, [Ok(5), Err(true)]);
    });
}

// ---- round 10: stale completions of abandoned spawn_blocking jobs ----

#[test]
fn abandoned_blocking_job_does_not_wake_next_blocking_call() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            sylvan::spawn_blocking(|| {
                std::thread::sleep(MS(300));
                1
            })
        });
        assert!(r.is_err());
        let t0 = Instant::now();
        let v = sylvan::spawn_blocking(|| {
            std::thread::sleep(MS(400));
            2
        });
        assert_eq!(v, 2);
        assert!(t0.elapsed() >= MS(400));
    });
}

#[test]
fn abandoned_blocking_job_of_killed_greenlet_does_not_wake_another() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            sylvan::spawn_blocking(|| {
                std::thread::sleep(MS(200));
                1
            })
        });
        sylvan::yield_now();
        g.kill();
        let h = sylvan::spawn(|| {
            let t0 = Instant::now();
            let v = sylvan::spawn_blocking(|| {
                std::thread::sleep(MS(400));
                2
            });
            (v, t0.elapsed())
        });
        let (v, took) = h.join().unwrap();
        assert_eq!(v, 2);
        assert!(took >= MS(400));
    });
}

#[test]
fn abandoned_blocking_job_does_not_cut_a_sleep_short() {
    bounded(|| {
        let r = sylvan::with_timeout(MS(200), || {
            sylvan::spawn_blocking(|| std::thread::sleep(MS(300)))
        });
        assert!(r.is_err());
        let t0 = Instant::now();
        sylvan::sleep(MS(400));
        assert!(t0.elapsed() >= MS(400));
    });
}

// ---- round 11 ----

#[test]
fn detached_greenlet_runs_and_fires_links() {
    bounded(|| {
        let log = Log::default();
        let g = sylvan::spawn(|| 3);
        let l = log.clone();
        g.link_value(move |v| l.push(format!("v{v}")));
        drop(g);
        sylvan::sleep(MS(10));
        assert_eq!(log.take(), ["v3"]);
    });
}

#[test]
fn idle_under_timeout_with_spinner_and_killed_idle_waiter() {
    bounded(|| {
        let spinner = sylvan::spawn(|| {
            loop {
                sylvan::yield_now();
            }
        });
        assert!(sylvan::with_timeout(MS(200), sylvan::idle).is_err());
        spinner.kill();
        let w = sylvan::spawn(sylvan::idle);
        let s = sylvan::spawn(|| sylvan::sleep(MS(50)));
        // w parks in idle until nothing is ready; kill it there
        sylvan::yield_now();
        w.kill();
        assert!(w.join().unwrap_err().is_killed());
        sylvan::idle();
        s.join().unwrap();
    });
}

#[test]
fn joinall_with_unstarted_spawn_later_and_deadline_before_start() {
    bounded(|| {
        let gs = vec![sylvan::spawn_later(MS(400), || 1), sylvan::spawn(|| 2)];
        assert!(!sylvan::joinall(&gs, Some(MS(200))));
        assert!(!gs[0].is_started());
        assert!(sylvan::joinall(&gs, Some(Duration::from_secs(2))));
    });
}

#[test]
fn timers_fire_while_greenlets_spin_on_yield() {
    bounded(|| {
        let stop = Rc::new(Cell::new(false));
        let spinners: Vec<_> = (0..3)
            .map(|_| {
                let s = stop.clone();
                sylvan::spawn(move || {
                    while !s.get() {
                        sylvan::yield_now();
                    }
                })
            })
            .collect();
        let t0 = Instant::now();
        sylvan::sleep(MS(200));
        let took = t0.elapsed();
        stop.set(true);
        assert!(sylvan::joinall(&spinners, None));
        assert!(took >= MS(200) && took < Duration::from_secs(1), "{took:?}");
    });
}

#[test]
fn deferred_timeout_behind_caught_kill_is_delivered() {
    bounded(|| {
        let g = sylvan::spawn(|| {
            let t = Timeout::start(MS(200));
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10))));
            let first_own = t.is_own_payload(&*r.unwrap_err());
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(10))));
            let second_own = r.as_ref().is_err_and(|p| t.is_own_payload(&**p));
            (first_own, second_own)
        });
        sylvan::yield_now();
        std::thread::sleep(MS(250));
        g.kill_nowait();
        let r = g.join().unwrap();
        assert!(r == (false, true) || r == (true, false), "{r:?}");
    });
}
