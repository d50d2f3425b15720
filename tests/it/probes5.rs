//! Probes of the greenlet lifecycle (hub/src/task.rs, hub/src/hub.rs):
//! spawn / spawn_later / Builder, join / wait / kill, links and their
//! ordering, joinall / killall, the error policy, destructors that run
//! during kills or on the hub, re-entrancy, deep chains and stack sizes.
//! Each test cites the gevent behaviour (gevent's test__greenlet.py,
//! test__joinall.py, test__killall*, test__spawn*, test__api.py,
//! test__hub*.py) or the sylvan invariant (DESIGN.md, doc comments) it
//! checks. Tests marked `#[ignore = "BUG: ..."]` show a sylvan bug.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{
    Builder, ErrorPolicy, Greenlet, GreenletId, Outcome, Timeout, current, current_name, idle,
    joinall, killall, sleep, spawn, spawn_later, with_timeout, yield_now,
};

use crate::stacks::recurse;
use crate::util::{DropFlag, Log, bounded, is_child, quiet, run_child};

const MS: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(10);

/// What the error policy saw: (name, message, observed, spawn file).
type Seen = Rc<RefCell<Vec<(Option<String>, String, bool, String)>>>;

/// Records every failure the error policy sees (and keeps them off stderr).
fn record_reports() -> Seen {
    let seen: Seen = Rc::default();
    let s = seen.clone();
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
        s.borrow_mut().push((
            f.name.map(str::to_owned),
            f.error.to_string(),
            f.observed,
            f.spawned_at.file().to_owned(),
        ));
    })));
    seen
}

/// Counts drops into a shared counter (usable in many captures at once).
fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

/// A greenlet that catches its first kill and then sleeps on (a survivor
/// of one kill).
fn stubborn() -> Greenlet<()> {
    spawn(|| {
        let r = catch_unwind(|| sleep(LONG));
        assert!(sylvan::is_unwind_payload(&*r.unwrap_err()));
        sleep(LONG);
    })
}

// ================================================================ detached greenlets

// DESIGN.md: "dropping it detaches (the greenlet runs on)"; gevent
// test__api.py TestTimers.test_spawn_is_not_cancelled: a spawned greenlet
// nobody keeps a reference to still runs, and so does a spawn_later one
// after its delay.
#[test]
fn lp01_detached_greenlets_still_run() {
    bounded(|| {
        let log = Log::default();
        let done = Rc::new(Event::new());
        let (l, d) = (log.clone(), done.clone());
        drop(spawn(move || {
            l.push("now");
            yield_now();
            l.push("now after sleep");
            d.set();
        }));
        let later_done = Rc::new(Event::new());
        let (l, d) = (log.clone(), later_done.clone());
        drop(spawn_later(30 * MS, move || {
            l.push("later");
            d.set();
        }));
        assert!(done.wait_timeout(Duration::from_secs(2)));
        assert!(later_done.wait_timeout(Duration::from_secs(2)));
        assert_eq!(log.take(), ["now", "now after sleep", "later"]);
        sleep(MS);
        assert_eq!(sylvan::stats().alive, 0);
    })
}

// A link registered before the handle is dropped still fires with the
// value (gevent: the greenlet object lives on in the hub while it runs and
// notifies its links); the value is dropped once, after the callback.
#[test]
fn lp02_link_fires_after_the_handle_is_dropped() {
    bounded(|| {
        let drops = counter();
        let seen = Rc::new(Cell::new(0u32));
        let fired = Rc::new(Event::new());
        let d = drops.clone();
        let g = spawn(move || {
            sleep(MS);
            (DropFlag(d), 42u32)
        });
        let (s, f, d2) = (seen.clone(), fired.clone(), drops.clone());
        g.link_value(move |(_, v)| {
            // The value is still alive while the callback borrows it.
            assert_eq!(d2.get(), 0);
            s.set(*v);
            f.set();
        });
        drop(g);
        assert!(fired.wait_timeout(Duration::from_secs(2)));
        assert_eq!(seen.get(), 42);
        sleep(2 * MS);
        assert_eq!(
            drops.get(),
            1,
            "the value of a detached greenlet is dropped once"
        );
    })
}

// DESIGN.md error policy: a panic is "reported once by the hub's error
// policy", with its name, also for a detached greenlet nobody joins
// (gevent prints the traceback of every failed greenlet); nobody observed
// it.
#[test]
fn lp03_detached_panic_is_reported_once_with_its_name() {
    bounded(|| {
        let seen = record_reports();
        drop(
            Builder::new()
                .name("detached-worker")
                .spawn(|| -> u32 { panic!("detached boom") })
                .unwrap(),
        );
        yield_until_reports(&seen, 1);
        sleep(2 * MS);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0.as_deref(), Some("detached-worker"));
        assert!(seen[0].1.contains("detached boom"), "{seen:?}");
        assert!(!seen[0].2, "nobody observed it");
        assert!(seen[0].3.ends_with("probes5.rs"), "{seen:?}");
    })
}

fn yield_until_reports(seen: &Seen, n: usize) {
    crate::util::yield_until("failure reports", || seen.borrow().len() >= n);
}

// ================================================================ error policy

// error.rs `Failure::observed`: "Whether a link/link_exception callback or
// a joiner was waiting for this greenlet when it died" (gevent's
// Greenlet._report_error prints regardless; IgnoreObserved relies on this
// flag). A joiner whose wait timed out before the death no longer waits,
// and a link_value callback does not observe failures.
#[test]
fn lp04_failure_observed_flag() {
    bounded(|| {
        let seen = record_reports();
        let fail = || {
            spawn(|| -> u32 {
                sleep(2 * MS);
                panic!("x")
            })
        };
        // 0: nothing registered
        let g = fail();
        sleep(10 * MS);
        assert!(g.is_dead());
        // 1: a joiner waiting
        let g = fail();
        assert!(g.wait(None));
        // 2: only link_value
        let g = fail();
        g.link_value(|_| {});
        sleep(10 * MS);
        assert!(g.is_dead());
        // 3: link_exception
        let g = fail();
        g.link_exception(|_| {});
        sleep(10 * MS);
        // 4: link
        let g = fail();
        g.link(|_| {});
        sleep(10 * MS);
        // 5: a joiner that gave up before the death
        let g = fail();
        assert!(!g.wait(Some(Duration::ZERO)));
        sleep(10 * MS);
        assert!(g.is_dead());
        let observed: Vec<bool> = seen.borrow().iter().map(|s| s.2).collect();
        assert_eq!(observed, [false, true, false, true, true, false]);
    })
}

// The same flag after unlink_all: the link_exception callback was removed
// before the death, so no callback observed the failure (gevent's
// unlink_all removes every callback). `observers` is counted up in
// task.rs add_callback and never down, so the failure reads as observed
// and ErrorPolicy::IgnoreObserved drops its only report.
#[test]
fn lp05_unlink_all_before_death_leaves_the_failure_unobserved() {
    bounded(|| {
        let seen = record_reports();
        let g = spawn(|| -> u32 {
            sleep(2 * MS);
            panic!("after unlink")
        });
        g.link_exception(|_| unreachable!("unlinked"));
        g.link(|_| unreachable!("unlinked"));
        g.unlink_all();
        sleep(10 * MS);
        assert!(g.is_dead());
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1);
        assert!(!seen[0].2, "no callback was registered when it died");
    })
}

// A panicking link callback is reported once, under the name of the
// callback greenlet ("link") and the spawn site of the greenlet it was
// linked to; the greenlet's own failure is reported separately, once
// (gevent test__greenlet.py test_multiple_listeners_error: the listener's
// error is printed, the greenlet's result stands).
#[test]
fn lp06_panicking_link_exception_callback_two_reports() {
    bounded(|| {
        let seen = record_reports();
        let log = Log::default();
        let g = Builder::new()
            .name("target")
            .spawn(|| -> u32 { panic!("target failed") })
            .unwrap();
        g.link_exception(|e| panic!("callback saw: {}", e.panic().unwrap().message()));
        let l = log.clone();
        g.link(move |o| l.push(format!("second:{}", matches!(o, Outcome::Panicked(_)))));
        let err = g.join().unwrap_err();
        assert_eq!(err.panic().unwrap().message(), "target failed");
        sleep(2 * MS);
        assert_eq!(log.take(), ["second:true"]);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0.as_deref(), Some("target"));
        assert_eq!(seen[1].0.as_deref(), Some("link"));
        assert!(
            seen[1].1.contains("callback saw: target failed"),
            "{seen:?}"
        );
        assert!(seen[1].3.ends_with("probes5.rs"), "{seen:?}");
    })
}

// Error::resume re-raises the original panic payload (gevent: `raise
// g.exception` re-raises the same exception object); a non-string
// payload's message reads "Box<dyn Any>" as std's hook prints it.
#[test]
fn lp07_error_resume_reraises_the_original_payload() {
    bounded(|| {
        quiet();
        let g = spawn(|| -> u32 { std::panic::panic_any(42u64) });
        let err = g.join().unwrap_err();
        assert_eq!(err.panic().unwrap().message(), "Box<dyn Any>");
        let payload = catch_unwind(AssertUnwindSafe(|| err.resume())).unwrap_err();
        assert_eq!(payload.downcast_ref::<u64>(), Some(&42));
    })
}

// ================================================================ links

// gevent Greenlet.unlink_all + rawlink: links added after unlink_all are
// registered afresh and fire (unlink_all only removes those present).
#[test]
fn lp08_link_after_unlink_all_fires() {
    bounded(|| {
        let log = Log::default();
        let g = spawn(|| {
            sleep(2 * MS);
            3
        });
        let l = log.clone();
        g.link(move |_| l.push("old"));
        g.unlink_all();
        let l = log.clone();
        g.link_value(move |v| l.push(format!("new:{v}")));
        assert_eq!(g.join().unwrap(), 3);
        assert_eq!(log.take(), ["new:3"]);
    })
}

// unlink_all called after the death but before the callbacks ran (here:
// the synchronous cancel of an unstarted greenlet spawns them) stops them
// (task.rs doc: "stops those not yet started"; gevent: unlink_all empties
// _links before the notifier pops them), and join does not wait for them.
#[test]
fn lp09_unlink_all_after_death_stops_callbacks_not_yet_started() {
    bounded(|| {
        let log = Log::default();
        let g = spawn(|| 1);
        for i in 0..3 {
            let l = log.clone();
            g.link(move |_| l.push(format!("cb{i}")));
        }
        g.kill_nowait();
        assert!(g.is_dead());
        g.unlink_all();
        assert!(g.join().unwrap_err().is_killed());
        sleep(2 * MS);
        assert!(log.take().is_empty());
    })
}

// A link registered from inside a link callback of the same (dead)
// greenlet fires, after the callbacks registered before it (gevent
// _notify_links pops _links until empty, so one appended meanwhile runs
// last) and sees the same value.
#[test]
fn lp10_link_registered_inside_a_callback_runs_after_the_earlier_ones() {
    bounded(|| {
        let log = Log::default();
        let g = Rc::new(spawn(|| {
            sleep(MS);
            9
        }));
        let (l, weak) = (log.clone(), Rc::downgrade(&g));
        g.link(move |_| {
            l.push("a");
            let g = weak.upgrade().unwrap();
            let l2 = l.clone();
            g.link_value(move |v| l2.push(format!("c:{v}")));
        });
        let l = log.clone();
        g.link(move |_| l.push("b"));
        assert!(g.wait(None));
        sleep(5 * MS);
        assert_eq!(log.take(), ["a", "b", "c:9"]);
        let g = Rc::try_unwrap(g).unwrap();
        assert_eq!(g.join().unwrap(), 9);
    })
}

// Inside its own link callback a greenlet is dead and started, wait()
// returns true without blocking, and current() is the callback's fresh
// greenlet named "link", not the dead one (DESIGN.md: callbacks run in a
// fresh greenlet; gevent: link callbacks get the dead greenlet as
// argument).
#[test]
fn lp11_state_seen_from_inside_own_callback() {
    bounded(|| {
        let g = Rc::new(spawn(|| 5));
        let weak: Weak<Greenlet<i32>> = Rc::downgrade(&g);
        let out = Rc::new(RefCell::new(None));
        let o = out.clone();
        g.link(move |_| {
            let g = weak.upgrade().unwrap();
            let t = Instant::now();
            let waited = g.wait(None);
            *o.borrow_mut() = Some((
                g.is_dead(),
                g.is_started(),
                waited,
                t.elapsed() < Duration::from_millis(100),
                current() != g.id(),
                current_name(),
            ));
        });
        assert!(g.wait(None));
        sleep(2 * MS);
        let got = out.borrow_mut().take().unwrap();
        assert_eq!(got, (true, true, true, true, true, Some("link".to_owned())));
    })
}

// join() from inside a link callback of the same greenlet: in gevent the
// greenlet is ready, so join() returns at once. sylvan's join waits until
// every callback that may borrow the outcome is done, the calling one
// included, so it waits for itself forever, silently (task.rs `join`,
// the `borrowers` loop; `wait_until` does refuse a self-wait with a
// panic). It should return (an error, if the value cannot be taken while
// borrowed) or panic with a clear message, never hang.
#[test]
fn lp12_join_inside_own_link_callback_does_not_hang() {
    bounded(|| {
        quiet();
        let slot: Rc<RefCell<Option<Greenlet<u32>>>> = Rc::default();
        let hung = Rc::new(Cell::new(None));
        let done = Rc::new(Event::new());
        let g = spawn(|| 5u32);
        let (s, h, d) = (slot.clone(), hung.clone(), done.clone());
        g.link(move |_| {
            let g = s.borrow_mut().take().unwrap();
            // A panic with a message is an acceptable answer; the timeout's
            // own unwind is re-raised so that with_timeout sees it.
            let r = with_timeout(Duration::from_secs(1), || {
                match catch_unwind(AssertUnwindSafe(|| g.join())) {
                    Err(p) if sylvan::is_unwind_payload(&*p) => std::panic::resume_unwind(p),
                    other => other.is_ok(),
                }
            });
            h.set(Some(r.is_err()));
            d.set();
        });
        *slot.borrow_mut() = Some(g);
        assert!(done.wait_timeout(Duration::from_secs(3)));
        assert_eq!(hung.get(), Some(false), "join hung inside its own callback");
    })
}

// A kill of a dead greenlet whose link callback is still blocked returns at
// once (gevent: kill of a dead greenlet is a no-op), while join keeps
// waiting for the callback, which borrows the value (task.rs join doc).
#[test]
fn lp13_kill_of_a_dead_greenlet_with_a_blocked_callback() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let g = spawn(|| String::from("kept"));
        let e = ev.clone();
        g.link_value(move |v| {
            e.wait();
            assert_eq!(v, "kept");
        });
        assert!(g.wait(None));
        let t = Instant::now();
        g.kill();
        assert!(g.kill_timeout(Duration::ZERO));
        assert!(t.elapsed() < Duration::from_secs(1));
        let e = ev.clone();
        drop(spawn(move || {
            sleep(5 * MS);
            e.set();
        }));
        let t = Instant::now();
        assert_eq!(g.join().unwrap(), "kept");
        assert!(t.elapsed() >= 4 * MS, "join waited for the callback");
    })
}

// ================================================================ kill and destructors

// A destructor running during a kill cancels an unstarted greenlet: the
// cancel is synchronous (no switch needed), so that greenlet never runs,
// is dead at once, and its links still fire (gevent test__issue330:
// a greenlet killed before it starts is never switched to).
#[test]
fn lp14_destructor_during_a_kill_cancels_an_unstarted_greenlet() {
    bounded(|| {
        let log = Log::default();
        let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
        struct CancelOnDrop(Rc<RefCell<Option<Greenlet<()>>>>, Log);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                let g = self.0.borrow();
                let g = g.as_ref().unwrap();
                assert!(std::thread::panicking());
                g.kill();
                self.1
                    .push(format!("dead:{} started:{}", g.is_dead(), g.is_started()));
            }
        }
        let guard = CancelOnDrop(slot.clone(), log.clone());
        let a = spawn(move || {
            let _g = guard;
            sleep(LONG);
        });
        yield_now();
        // The kill goes on the ready queue first, then b: a unwinds (and
        // its destructor kills b) before b's turn comes.
        a.kill_nowait();
        let l = log.clone();
        let b = spawn(move || l.push("b ran"));
        let l = log.clone();
        b.link(move |o| l.push(format!("b link killed:{}", matches!(o, Outcome::Killed))));
        *slot.borrow_mut() = Some(b);
        assert!(a.wait(None));
        sleep(2 * MS);
        assert_eq!(
            log.take(),
            ["dead:true started:false", "b link killed:true"]
        );
    })
}

// Blocking calls from a destructor during a kill do not switch (DESIGN.md:
// "fail fast or finish without switching"): join of a dead greenlet gives
// its value, join of a live one Err(Unwinding) at once, wait() and
// kill_timeout() of a live one return false at once, idle() returns; the
// live greenlet is untouched by the join/wait (only the kill hits it).
#[test]
fn lp15_lifecycle_calls_in_a_destructor_during_a_kill() {
    bounded(|| {
        let dead = spawn(|| 11);
        assert!(dead.wait(None));
        let live = Rc::new(spawn(|| sleep(LONG)));
        let live_for_kill = Rc::new(stubborn());
        yield_now();
        let out = Rc::new(RefCell::new(Vec::new()));
        struct Probe {
            dead: Option<Greenlet<i32>>,
            live: Rc<Greenlet<()>>,
            stubborn: Rc<Greenlet<()>>,
            out: Rc<RefCell<Vec<String>>>,
        }
        impl Drop for Probe {
            fn drop(&mut self) {
                let t = Instant::now();
                let mut o = self.out.borrow_mut();
                o.push(format!("{:?}", self.dead.take().unwrap().join().ok()));
                o.push(format!(
                    "wait:{}",
                    self.live.wait(Some(Duration::from_secs(1)))
                ));
                o.push(format!("wait none:{}", self.live.wait(None)));
                idle();
                o.push(format!(
                    "kill_timeout:{}",
                    self.stubborn.kill_timeout(Duration::from_secs(1))
                ));
                o.push(format!("fast:{}", t.elapsed() < Duration::from_millis(200)));
            }
        }
        let probe = Probe {
            dead: Some(dead),
            live: live.clone(),
            stubborn: live_for_kill.clone(),
            out: out.clone(),
        };
        let a = spawn(move || {
            let _p = probe;
            sleep(LONG);
        });
        yield_now();
        a.kill();
        assert_eq!(
            *out.borrow(),
            [
                "Some(11)",
                "wait:false",
                "wait none:false",
                "kill_timeout:false",
                "fast:true"
            ]
        );
        // The join that could not wait says so.
        struct JoinOnDrop(Option<Greenlet<()>>, Rc<Cell<bool>>);
        impl Drop for JoinOnDrop {
            fn drop(&mut self) {
                let r = self.0.take().unwrap().join();
                self.1.set(matches!(r, Err(sylvan::Error::Unwinding)));
            }
        }
        let unwinding = Rc::new(Cell::new(false));
        let other = spawn(|| sleep(LONG));
        let j = JoinOnDrop(Some(other), unwinding.clone());
        let b = spawn(move || {
            let _j = j;
            sleep(LONG);
        });
        yield_now();
        b.kill();
        assert!(
            unwinding.get(),
            "join during an unwind gives Error::Unwinding"
        );
        sleep(2 * MS);
        assert!(!live.is_dead(), "wait/join do not kill");
        // The stubborn one got the kill and survived it (it caught it).
        assert!(!live_for_kill.is_dead());
        live.kill();
        assert!(live_for_kill.kill_timeout(Duration::from_secs(1)));
    })
}

// A greenlet spawned from a destructor during a kill runs later (spawn only
// schedules, so it is allowed while unwinding; gevent: spawn from a
// `finally` during GreenletExit works).
#[test]
fn lp16_spawn_from_a_destructor_during_a_kill_runs_later() {
    bounded(|| {
        let ran = Rc::new(Event::new());
        struct SpawnOnDrop(Rc<Event>);
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                let e = self.0.clone();
                drop(spawn(move || {
                    sleep(MS);
                    e.set();
                }));
            }
        }
        let s = SpawnOnDrop(ran.clone());
        let a = spawn(move || {
            let _s = s;
            sleep(LONG);
        });
        yield_now();
        a.kill();
        assert!(a.join().unwrap_err().is_killed());
        assert!(ran.wait_timeout(Duration::from_secs(2)));
    })
}

// A greenlet killing itself from a destructor while it already unwinds
// (from a kill or a panic) does nothing more (task.rs kill_task: no second
// throw while panicking, which would abort): kill, kill_nowait and
// kill_timeout return, and the outcome stays the first cause.
#[test]
fn lp17_self_kill_while_unwinding_is_a_no_op() {
    bounded(|| {
        quiet();
        type Slot = Rc<RefCell<Weak<Greenlet<()>>>>;
        struct KillSelf(Slot, Rc<Cell<u32>>);
        impl Drop for KillSelf {
            fn drop(&mut self) {
                let g = self.0.borrow().upgrade().unwrap();
                g.kill();
                g.kill_nowait();
                // No assert here: a panic while unwinding aborts.
                if !g.kill_timeout(Duration::from_secs(1)) {
                    self.1.set(self.1.get() + 1);
                }
            }
        }
        let hits = counter();
        for panics in [false, true] {
            let slot: Slot = Rc::default();
            let k = KillSelf(slot.clone(), hits.clone());
            let g = Rc::new(spawn(move || {
                let _k = k;
                sleep(2 * MS);
                if panics {
                    panic!("first cause");
                }
                sleep(LONG);
            }));
            *slot.borrow_mut() = Rc::downgrade(&g);
            yield_now();
            if !panics {
                g.kill();
            }
            assert!(g.wait(Some(Duration::from_secs(1))));
            let g = Rc::try_unwrap(g).unwrap();
            let err = g.join().unwrap_err();
            assert_eq!(err.is_panic(), panics, "{err}");
            assert_eq!(err.is_killed(), !panics, "{err}");
        }
        assert_eq!(hits.get(), 2);
    })
}

// A kill that arrives while the target blocks inside a destructor run by a
// normal scope exit (not an unwind, so it may switch) unwinds out of that
// destructor, and the remaining locals are still dropped (gevent: the
// GreenletExit is raised inside the blocking `finally` block).
#[test]
fn lp18_kill_while_the_target_blocks_in_a_destructor() {
    bounded(|| {
        let log = Log::default();
        struct SlowClose(Log);
        impl Drop for SlowClose {
            fn drop(&mut self) {
                self.0.push("close start");
                sleep(LONG);
                self.0.push("close end");
            }
        }
        let drops = counter();
        let (l, d) = (log.clone(), drops.clone());
        let g = spawn(move || {
            let _other = DropFlag(d);
            let _s = SlowClose(l);
            "done"
        });
        sleep(5 * MS);
        assert_eq!(log.get(), ["close start"]);
        let t = Instant::now();
        g.kill();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(log.take(), ["close start"]);
        assert_eq!(drops.get(), 1, "the other local was dropped");
        assert!(g.join().unwrap_err().is_killed());
    })
}

// Killing an unstarted greenlet whose captures block when dropped: the
// killer is not unwinding, so the drop may switch (other greenlets run
// meanwhile); the greenlet still never runs, its link fires once, join
// gives Killed, and the hub's table is clean afterwards (hub.rs
// cancel_unstarted: "user destructors run during a cancel may let the
// loop reap it first").
#[test]
fn lp19_cancel_whose_captures_block_when_dropped() {
    bounded(|| {
        let log = Log::default();
        // Blocks when dropped, until the ticker has run meanwhile.
        struct SleepsOnDrop(Log, Rc<Event>);
        impl Drop for SleepsOnDrop {
            fn drop(&mut self) {
                self.0.push("drop start");
                self.1.wait();
                self.0.push("drop end");
            }
        }
        let ticked = Rc::new(Event::new());
        let (l, t) = (log.clone(), ticked.clone());
        let ticker = spawn(move || {
            sleep(MS);
            l.push("ticker");
            t.set();
        });
        let s = SleepsOnDrop(log.clone(), ticked);
        let g = spawn(move || {
            let _s = &s;
            unreachable!("a cancelled greenlet never runs");
        });
        let links = counter();
        let c = links.clone();
        g.link(move |o| {
            assert!(matches!(o, Outcome::Killed));
            c.set(c.get() + 1);
        });
        g.kill();
        assert!(g.is_dead() && !g.is_started());
        assert_eq!(log.get(), ["drop start", "ticker", "drop end"]);
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(links.get(), 1);
        ticker.join().unwrap();
        sleep(MS);
        assert_eq!(sylvan::stats().alive, 0);
    })
}

// A spawn_later greenlet whose start timer has fired (it sits on the ready
// queue) but which has not run yet is still "not started": a kill then
// cancels it, it never runs and its links fire (gevent
// test__greenlet.py TestKillAfterStartLater / test__issue330). With the
// default stack (body kept in the record) and a custom one (body already
// on its stack).
#[test]
fn lp20_kill_spawn_later_after_its_timer_fired_before_it_ran() {
    bounded(|| {
        for custom in [false, true] {
            let log = Log::default();
            let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
            let (s, l) = (slot.clone(), log.clone());
            let killer = spawn(move || {
                sleep(2 * MS);
                let g = s.borrow();
                let g = g.as_ref().unwrap();
                l.push(format!("killer: started {}", g.is_started()));
                g.kill_nowait();
                l.push(format!("killer: dead {}", g.is_dead()));
            });
            yield_now(); // the killer's deadline is set now, before g's
            let l = log.clone();
            let mut b = Builder::new();
            if custom {
                b = b.stack_size(64 << 10);
            }
            let g = b.spawn_later(3 * MS, move || l.push("g ran")).unwrap();
            let l = log.clone();
            g.link(move |o| l.push(format!("link killed {}", matches!(o, Outcome::Killed))));
            *slot.borrow_mut() = Some(g);
            // Both timers are overdue when the loop next looks: they fire in
            // one turn, killer first, and g is put on the ready queue.
            std::thread::sleep(10 * MS);
            killer.join().unwrap();
            sleep(2 * MS);
            assert_eq!(
                log.take(),
                [
                    "killer: started false",
                    "killer: dead true",
                    "link killed true"
                ],
                "custom stack: {custom}"
            );
            let g = slot.borrow_mut().take().unwrap();
            assert!(g.join().unwrap_err().is_killed());
            assert_eq!(sylvan::stats().alive, 0);
        }
    })
}

// kill / kill_timeout(ZERO) of an unstarted greenlet is synchronous: it is
// dead on return without a switch, so even a zero timeout reports success
// and no other greenlet ran meanwhile (task.rs kill_nowait doc).
#[test]
fn lp21_kill_timeout_zero_on_an_unstarted_greenlet() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = spawn(move || r.set(true));
        let g = spawn(|| unreachable!());
        assert!(g.kill_timeout(Duration::ZERO));
        assert!(g.is_dead());
        assert!(!ran.get(), "no switch happened");
        other.join().unwrap();
        let later = spawn_later(LONG, || unreachable!());
        assert!(later.kill_timeout(Duration::ZERO));
        assert!(later.join().unwrap_err().is_killed());
    })
}

// kill_nowait of a parked greenlet only schedules the kill: it is alive
// when kill_nowait returns and dies (destructors run) once the hub runs it
// (gevent kill(block=False)).
#[test]
fn lp22_kill_nowait_of_a_started_greenlet_returns_before_its_death() {
    bounded(|| {
        let drops = counter();
        let d = drops.clone();
        let g = spawn(move || {
            let _f = DropFlag(d);
            sleep(LONG);
        });
        yield_now();
        g.kill_nowait();
        assert!(!g.is_dead());
        assert_eq!(drops.get(), 0);
        yield_now();
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1);
        assert!(g.join().unwrap_err().is_killed());
    })
}

// ================================================================ destructors on the hub

/// A value whose destructor panics (when not already unwinding).
struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("destructor of a greenlet's value panics");
        }
    }
}

// The value of a detached greenlet is dropped by the hub loop when it
// reaps the greenlet (hub.rs finish -> reap). A panic in that destructor
// escapes run_loop into whatever main happens to be blocked on (here a
// plain sleep), and leaves `current` at ON_HUB: every later blocking call
// of main panics with "made from the hub itself". DESIGN.md: a failure
// "never takes the hub or other greenlets down"; gevent prints exceptions
// raised in __del__ and goes on. It should be caught and reported.
#[test]
fn lp23_panic_in_a_detached_value_destructor_leaves_the_hub_intact() {
    bounded(|| {
        quiet();
        drop(spawn(|| PanicsOnDrop));
        let r = catch_unwind(|| sleep(5 * MS));
        let hub_ok = catch_unwind(|| spawn(|| 3).join().unwrap()).ok();
        assert_eq!(hub_ok, Some(3), "the hub no longer works");
        assert!(
            r.is_ok(),
            "main's sleep was hit by another greenlet's destructor"
        );
    })
}

// Re-entrancy: a link callback that does not match the outcome (here a
// link_value on a killed greenlet) is dropped by the hub loop in on_dead,
// so its captures' destructors run on the hub. A destructor that kills
// another greenlet there (kill waits, which the hub cannot) panics, and the
// panic escapes into main's join with the hub left broken (as lp23). The
// kill should be delivered and the hub stay usable.
#[test]
fn lp24_kill_from_a_destructor_run_on_the_hub() {
    bounded(|| {
        struct KillOnDrop(Rc<Greenlet<()>>);
        impl Drop for KillOnDrop {
            fn drop(&mut self) {
                self.0.kill();
            }
        }
        let victim = Rc::new(spawn(|| sleep(LONG)));
        let target = spawn(|| sleep(LONG));
        yield_now();
        let k = KillOnDrop(victim.clone());
        target.link_value(move |_| {
            let _k = &k;
        });
        let r = catch_unwind(AssertUnwindSafe(|| target.kill()));
        let hub_ok = catch_unwind(|| spawn(|| 3).join().unwrap()).ok();
        assert_eq!(hub_ok, Some(3), "the hub no longer works");
        assert!(
            r.is_ok(),
            "main's kill was hit by the callback's destructor"
        );
        assert!(
            victim.wait(Some(Duration::from_secs(1))),
            "the victim was killed"
        );
    })
}

// The non-blocking half of the same re-entrancy: spawn from a destructor
// that the hub runs (the value of a detached greenlet) works: the new
// greenlet runs (gevent: spawning from __del__ schedules normally).
#[test]
fn lp25_spawn_from_a_destructor_run_on_the_hub() {
    bounded(|| {
        struct SpawnOnDrop(Rc<Event>);
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                let e = self.0.clone();
                drop(spawn(move || e.set()));
            }
        }
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        drop(spawn(move || SpawnOnDrop(e)));
        assert!(ev.wait_timeout(Duration::from_secs(2)));
    })
}

// ================================================================ joinall / killall

// test__joinall.py / gevent.joinall(timeout): the timeout bounds the whole
// call, not each greenlet: ten greenlets that never finish, 50 ms, returns
// false after about 50 ms (not 500).
#[test]
fn lp26_joinall_timeout_is_for_the_whole_call() {
    bounded(|| {
        let gs: Vec<_> = (0..10).map(|_| spawn(|| sleep(LONG))).collect();
        let t = Instant::now();
        assert!(!joinall(&gs, Some(50 * MS)));
        let took = t.elapsed();
        assert!(took >= 45 * MS && took < 300 * MS, "{took:?}");
        assert!(gs.iter().all(|g| !g.is_dead()));
        killall(&gs, None).unwrap();
    })
}

// test__killall / gevent.killall(timeout): the same for killall with
// several survivors: one deadline for all, and Survivors lists each, in
// list order; Display names the count and ids. A second killall ends them
// (each kill is thrown once).
#[test]
fn lp27_killall_timeout_is_for_the_whole_call_and_lists_every_survivor() {
    bounded(|| {
        let mut gs: Vec<_> = (0..8).map(|_| stubborn()).collect();
        gs.insert(3, spawn(|| sleep(LONG)));
        yield_now();
        let t = Instant::now();
        let err = killall(&gs, Some(50 * MS)).unwrap_err();
        let took = t.elapsed();
        assert!(took < 300 * MS, "{took:?}");
        let want: Vec<GreenletId> = gs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, g)| g.id())
            .collect();
        assert_eq!(err.0, want);
        let text = err.to_string();
        assert!(text.starts_with("8 greenlet(s) survived"), "{text}");
        assert!(text.contains(&gs[0].id().to_string()), "{text}");
        assert!(gs[3].is_dead());
        assert!(killall(&gs, Some(Duration::from_secs(2))).is_ok());
    })
}

// gevent.killall over a large set (test__killall: every greenlet gets
// GreenletExit): 10,000 greenlets, half parked in sleep and half not yet
// started, some with links: all dead, every destructor ran once, every
// link fired, nothing left alive, within the 5 s bound.
#[test]
fn lp28_killall_ten_thousand_started_and_unstarted() {
    bounded(|| {
        let drops = counter();
        let links = counter();
        let mk = |drops: &Rc<Cell<u32>>| {
            // Captured, so an unstarted greenlet's cancel drops it too.
            let f = DropFlag(drops.clone());
            spawn(move || {
                let _f = f;
                sleep(LONG);
            })
        };
        let mut gs: Vec<_> = (0..5000).map(|_| mk(&drops)).collect();
        yield_now();
        assert!(gs.iter().all(|g| g.is_started()));
        gs.extend((0..5000).map(|_| mk(&drops)));
        for g in gs.iter().step_by(10) {
            let l = links.clone();
            g.link(move |o| {
                assert!(matches!(o, Outcome::Killed));
                l.set(l.get() + 1);
            });
        }
        killall(&gs, None).unwrap();
        assert!(gs.iter().all(|g| g.is_dead()));
        assert_eq!(drops.get(), 10_000);
        assert_eq!(gs.iter().filter(|g| g.is_started()).count(), 5000);
        let results: Vec<_> = gs.into_iter().map(|g| g.join()).collect();
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(sylvan::Error::Killed)))
        );
        assert_eq!(links.get(), 1000);
        sleep(MS);
        assert_eq!(sylvan::stats().alive, 0);
    })
}

// ================================================================ deep chains

// A chain of 2,000 greenlets, each joining the one before it, all parked
// at once; the values and then a panic's error travel up the whole chain
// (gevent test__greenlet.py joins of joins; wake-ups are queued, not
// recursive, so depth costs no machine stack).
#[test]
fn lp29_deep_chain_of_greenlets_joining_each_other() {
    bounded(|| {
        quiet();
        for fail in [false, true] {
            let mut prev: Option<Greenlet<Result<u64, String>>> = None;
            for _ in 0..2000 {
                let p = prev.take();
                prev = Some(spawn(move || match p {
                    Some(p) => match p.join() {
                        Ok(r) => r.map(|v| v + 1),
                        Err(e) => Err(format!("first: {e}")),
                    },
                    None => {
                        sleep(2 * MS);
                        if fail {
                            panic!("bottom of the chain");
                        }
                        Ok(1)
                    }
                }));
            }
            let got = prev.unwrap().join().unwrap();
            if fail {
                let e = got.unwrap_err();
                assert!(e.contains("bottom of the chain"), "{e}");
            } else {
                assert_eq!(got, Ok(2000));
            }
        }
        assert_eq!(sylvan::stats().alive, 0);
    })
}

/// Greenlets nested `depth` deep, each spawning and joining the next.
fn nest(depth: u32) -> u32 {
    if depth == 0 {
        sleep(MS);
        return 0;
    }
    spawn(move || nest(depth - 1)).join().unwrap() + 1
}

// Greenlets spawning greenlets and joining them, 500 deep (gevent: nested
// spawn/join from greenlets); then killing the outermost kills only it and
// the inner ones run on (detached, as their handles unwound with it).
#[test]
fn lp30_nested_spawn_and_join_500_deep() {
    bounded(|| {
        assert_eq!(spawn(|| nest(500)).join().unwrap(), 500);
        let finished = Rc::new(Event::new());
        let f = finished.clone();
        let outer = spawn(move || {
            let inner = spawn(move || {
                sleep(5 * MS);
                f.set();
            });
            inner.join().unwrap();
        });
        yield_now();
        outer.kill();
        assert!(outer.join().unwrap_err().is_killed());
        assert!(finished.wait_timeout(Duration::from_secs(2)));
    })
}

// ================================================================ stacks

// The smallest stack (Builder::stack_size(0) and (1) round up to
// MIN_STACK_SIZE, per the Builder doc) still supports the whole lifecycle:
// a value, a sleep, a panic caught and reported with its message, a kill
// unwinding destructors, an escaped timeout. Run in a child process, since
// overflowing a stack aborts.
#[test]
fn lp31_smallest_stack_supports_the_whole_lifecycle() {
    const NAME: &str = "probes5_min_stack";
    if is_child(NAME) {
        let seen = record_reports();
        for size in [0, 1, sylvan::MIN_STACK_SIZE] {
            let b = || Builder::new().name("small").stack_size(size);
            let g = b()
                .spawn(|| {
                    sleep(MS);
                    7
                })
                .unwrap();
            assert_eq!(g.join().unwrap(), 7);
            let g = b().spawn(|| -> u32 { panic!("small {}", 1) }).unwrap();
            assert_eq!(g.join().unwrap_err().panic().unwrap().message(), "small 1");
            let drops = counter();
            let d = drops.clone();
            let g = b()
                .spawn(move || {
                    let _f = DropFlag(d);
                    sleep(LONG);
                })
                .unwrap();
            yield_now();
            g.kill();
            assert_eq!(drops.get(), 1);
            let g = b()
                .spawn(|| {
                    let _t = Timeout::start(MS);
                    sleep(LONG);
                })
                .unwrap();
            assert!(g.join().unwrap_err().is_timeout());
        }
        assert_eq!(seen.borrow().len(), 6);
        println!("CHILD OK");
        std::process::exit(0);
    }
    let out = run_child(
        "probes5::lp31_smallest_stack_supports_the_whole_lifecycle",
        NAME,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "{:?}\n{stdout}\n{stderr}",
        out.status
    );
}

// An absurd stack size is an error from Builder (its doc: "When no stack
// can be mapped"), not a panic or an abort, for sizes that overflow the
// rounding too; the hub works afterwards.
#[test]
fn lp32_stack_size_near_usize_max_is_an_error() {
    bounded(|| {
        for size in [usize::MAX, usize::MAX - 4096, usize::MAX / 2 + 1] {
            let r = catch_unwind(|| Builder::new().stack_size(size).spawn(|| ()).map(drop));
            let r = r.unwrap_or_else(|_| panic!("stack_size({size}) panicked"));
            assert!(r.is_err(), "stack_size({size}) spawned");
            let r = catch_unwind(|| {
                Builder::new()
                    .stack_size(size)
                    .spawn_later(MS, || ())
                    .map(drop)
            });
            assert!(r.unwrap().is_err());
        }
        assert_eq!(spawn(|| 2).join().unwrap(), 2);
        assert_eq!(sylvan::stats().alive, 0);
    })
}

// ================================================================ durations

// Rust's std treats a huge timeout as "practically forever"
// (mpsc::Receiver::recv_timeout, Condvar::wait_timeout, thread::sleep all
// accept Duration::MAX); gevent accepts any float timeout. sylvan adds the
// duration to Instant::now() unchecked (task.rs wait_inner, kill_timeout,
// joinall, killall), which panics with "overflow when adding duration to
// instant".
#[test]
fn lp33_huge_timeouts_mean_forever() {
    bounded(|| {
        let g = spawn(|| {
            sleep(MS);
            1
        });
        assert!(g.wait(Some(Duration::MAX)));
        let gs = vec![spawn(|| sleep(MS))];
        assert!(joinall(&gs, Some(Duration::MAX)));
        let gs = vec![spawn(|| sleep(LONG))];
        yield_now();
        assert!(killall(&gs, Some(Duration::MAX)).is_ok());
        let k = spawn(|| sleep(LONG));
        yield_now();
        assert!(k.kill_timeout(Duration::MAX));
    })
}

// The same for spawn_later with a delay too large for Instant: it should
// be scheduled "never" (killable, never runs), not panic.
#[test]
fn lp34_spawn_later_with_a_huge_delay() {
    bounded(|| {
        let r = catch_unwind(|| {
            let g = spawn_later(Duration::MAX, || unreachable!());
            yield_now();
            assert!(!g.is_started());
            g.kill();
            g.join().unwrap_err().is_killed()
        });
        assert!(r.unwrap_or(false));
    })
}

// ================================================================ misc

// Ids are unique and increase with every spawn, dead greenlets' ids are
// never reused (greenlet.rs doc: "unique on its hub for the life of the
// thread"; gevent minimal_ident grows), main is #0.
#[test]
fn lp35_ids_increase_and_are_never_reused() {
    bounded(|| {
        assert_eq!(current().as_u64(), 0);
        let mut last = spawn(|| ()).id();
        for i in 0..200 {
            let g = if i % 2 == 0 {
                spawn(current)
            } else {
                let g = spawn(current);
                g.kill_nowait();
                g
            };
            let id = g.id();
            assert!(id > last, "{id} after {last}");
            last = id;
            if let Ok(seen) = g.join() {
                assert_eq!(seen, id);
            }
        }
    })
}

// current() inside a destructor run by a kill is the killed greenlet's id
// (the unwind runs on its own stack), and a link callback sees a different
// id (its own fresh greenlet).
#[test]
fn lp36_current_inside_a_killed_destructor_and_a_callback() {
    bounded(|| {
        struct Who(Rc<Cell<Option<GreenletId>>>);
        impl Drop for Who {
            fn drop(&mut self) {
                self.0.set(Some(current()));
            }
        }
        let who = Rc::new(Cell::new(None));
        let w = Who(who.clone());
        let g = spawn(move || {
            let _w = w;
            sleep(LONG);
        });
        let cb = Rc::new(Cell::new(None));
        let c = cb.clone();
        g.link(move |_| c.set(Some(current())));
        yield_now();
        g.kill();
        assert_eq!(who.get(), Some(g.id()));
        let id = g.id();
        assert!(g.join().unwrap_err().is_killed());
        let cb = cb.get().expect("join waited for the callback");
        assert_ne!(cb, id);
        assert_ne!(cb.as_u64(), 0);
    })
}

// gevent.idle(): every greenlet waiting in idle() is woken once nothing
// else is ready; one killed while it waits leaves no registration and is
// not woken (time.rs idle: the Unregister guard).
#[test]
fn lp37_idle_waiters_woken_together_and_a_killed_one_is_gone() {
    bounded(|| {
        let log = Log::default();
        let mk = |name: &'static str| {
            let l = log.clone();
            spawn(move || {
                idle();
                l.push(name);
            })
        };
        let a = mk("a");
        let b = mk("b");
        let c = mk("c");
        // Keep main ready (a yield loop) until all three are registered,
        // then kill b while main stays ready, so idle cannot fire.
        yield_now();
        assert!(a.is_started() && b.is_started() && c.is_started());
        b.kill_nowait();
        yield_now();
        assert!(b.is_dead());
        assert!(log.get().is_empty(), "main stayed ready: no idle yet");
        joinall(&[a, c], None);
        assert_eq!(log.take(), ["a", "c"]);
        assert!(b.join().unwrap_err().is_killed());
        // A later idle in main returns once nothing is ready.
        idle();
    })
}

// Greenlet::with_outcome: None while alive, then how it ended (Returned,
// Panicked with its message, Killed, TimedOut; gevent: g.value /
// g.exception after g.ready()).
#[test]
fn lp38_with_outcome_reports_each_ending() {
    bounded(|| {
        quiet();
        let v = spawn(|| {
            sleep(MS);
            4
        });
        assert_eq!(v.with_outcome(|_| ()), None);
        assert!(v.wait(None));
        assert_eq!(
            v.with_outcome(|o| matches!(o, Outcome::Returned(4))),
            Some(true)
        );
        let p = spawn(|| -> i32 { panic!("why") });
        assert!(p.wait(None));
        let msg = p.with_outcome(|o| match o {
            Outcome::Panicked(p) => p.message().to_owned(),
            _ => String::new(),
        });
        assert_eq!(msg.as_deref(), Some("why"));
        let k = spawn(|| 0);
        k.kill();
        assert_eq!(k.with_outcome(|o| matches!(o, Outcome::Killed)), Some(true));
        let t = spawn(|| {
            let _t = Timeout::start(MS);
            sleep(LONG);
            0
        });
        assert!(t.wait(None));
        assert_eq!(
            t.with_outcome(|o| matches!(o, Outcome::TimedOut)),
            Some(true)
        );
        // Twice: the outcome is not consumed by reading it.
        assert_eq!(
            v.with_outcome(|o| matches!(o, Outcome::Returned(4))),
            Some(true)
        );
        assert_eq!(v.join().unwrap(), 4);
    })
}

// yield_now from main with nothing else ready returns at once, even with a
// spawn_later pending (it does not wait for the timer; gevent sleep(0)).
#[test]
fn lp39_yield_now_does_not_wait_for_pending_timers() {
    bounded(|| {
        let later = spawn_later(Duration::from_secs(2), || ());
        let t = Instant::now();
        for _ in 0..100 {
            yield_now();
        }
        assert!(t.elapsed() < Duration::from_millis(500));
        assert!(!later.is_started() && !later.is_dead());
        later.kill();
        assert!(later.is_dead());
    })
}

// Thread exit (hub teardown) drops a pending spawn_later that never ran
// (its captures' destructors run, its body never does) and unwinds a
// greenlet parked in join of it (DESIGN.md: at thread exit the hub is torn
// down; greenlets are unwound).
#[test]
fn lp40_thread_exit_with_a_pending_spawn_later_and_its_joiner() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    struct Count(Arc<AtomicU32>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicU32::new(0));
    let ran = Arc::new(AtomicU32::new(0));
    let (d, r) = (drops.clone(), ran.clone());
    std::thread::spawn(move || {
        let c = Count(d.clone());
        let r2 = r.clone();
        let later = spawn_later(Duration::from_secs(3600), move || {
            let _c = c;
            r2.fetch_add(1, Ordering::SeqCst);
        });
        let c2 = Count(d);
        drop(spawn(move || {
            let _c = c2;
            let _ = later.join();
            r.fetch_add(1, Ordering::SeqCst);
        }));
        yield_now();
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

// unlink_all inside a callback stops the callbacks registered before it
// and not yet started, but a link registered afterwards (even from the
// same callback) is new and fires (gevent: unlink_all clears the current
// _links; a later rawlink appends afresh).
#[test]
fn lp41_link_registered_after_unlink_all_inside_a_callback_fires() {
    bounded(|| {
        let log = Log::default();
        let g = Rc::new(spawn(|| 2));
        let (l, weak) = (log.clone(), Rc::downgrade(&g));
        g.link(move |_| {
            l.push("first");
            let g = weak.upgrade().unwrap();
            g.unlink_all();
            let l2 = l.clone();
            g.link_value(move |v| l2.push(format!("fresh:{v}")));
        });
        let l = log.clone();
        g.link(move |_| l.push("stopped"));
        assert!(g.wait(None));
        sleep(5 * MS);
        assert_eq!(log.take(), ["first", "fresh:2"]);
        assert_eq!(Rc::try_unwrap(g).unwrap().join().unwrap(), 2);
    })
}

// A greenlet that drops the last handle to itself while it runs goes on
// and finishes (the hub's table keeps it; DESIGN.md: dropping the handle
// detaches), and its links registered before still fire.
#[test]
fn lp42_a_greenlet_dropping_its_own_handle_runs_on() {
    bounded(|| {
        let log = Log::default();
        let slot: Rc<RefCell<Option<Greenlet<()>>>> = Rc::default();
        let (s, l) = (slot.clone(), log.clone());
        let g = spawn(move || {
            drop(s.borrow_mut().take());
            sleep(MS);
            l.push("body end");
        });
        let l = log.clone();
        g.link(move |_| l.push("link"));
        *slot.borrow_mut() = Some(g);
        crate::util::yield_until("link", || log.get().len() == 2);
        assert_eq!(log.take(), ["body end", "link"]);
        assert!(slot.borrow().is_none());
    })
}

// The error policy runs on the hub, where blocking is refused; spawning
// (which only schedules) and kill_nowait (which does not wait) are fine
// there: a policy that hands each failure to a fresh greenlet and cancels
// a watchdog works (gevent: a hub's handle_error may spawn).
#[test]
fn lp43_error_policy_may_spawn_and_kill_nowait() {
    bounded(|| {
        let log = Log::default();
        let watchdog = Rc::new(spawn(|| sleep(LONG)));
        let (l, w) = (log.clone(), watchdog.clone());
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
            let msg = f.error.to_string();
            let l = l.clone();
            drop(spawn(move || {
                sleep(MS);
                l.push(msg);
            }));
            w.kill_nowait();
        })));
        yield_now();
        let g = spawn(|| -> u32 { panic!("handled elsewhere") });
        assert!(g.wait(None));
        assert!(watchdog.wait(Some(Duration::from_secs(1))));
        crate::util::yield_until("policy greenlet", || !log.get().is_empty());
        let got = log.take();
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("handled elsewhere"), "{got:?}");
    })
}

// The stack size asked for is usable: a Builder greenlet asking for the
// default size explicitly (the reserved-stack path), one page more (its own
// bucket) and 1 MiB each recurse through all but 16 KiB of it, and a
// killed one gives its stack back for the next (stack pool).
#[test]
fn lp44_stack_sizes_at_and_above_the_default_are_usable() {
    bounded(|| {
        for size in [
            sylvan::DEFAULT_STACK_SIZE,
            sylvan::DEFAULT_STACK_SIZE + 4096,
            1 << 20,
        ] {
            let g = Builder::new()
                .stack_size(size)
                .spawn(move || {
                    let marker = 0u8;
                    recurse(&marker as *const _ as usize, size - (16 << 10))
                })
                .unwrap();
            assert!(g.join().unwrap() >= size - (16 << 10), "size {size}");
            let k = Builder::new()
                .stack_size(size)
                .spawn(|| sleep(LONG))
                .unwrap();
            yield_now();
            k.kill();
            assert!(k.join().unwrap_err().is_killed());
        }
        assert_eq!(sylvan::stats().alive, 0);
    })
}

// DESIGN.md links: callbacks "are notified in the order they were
// registered". A kill of an unstarted greenlet marks it dead, then drops
// its body (user destructors, which may block), then fires its links
// (hub.rs cancel_unstarted -> on_dead). A link added by another greenlet
// while the destructor blocks sees a dead greenlet and is spawned at once
// (task.rs add_callback), so it runs before the link registered earlier.
#[test]
fn lp45_link_added_during_a_blocking_cancel_runs_after_earlier_links() {
    bounded(|| {
        let log = Log::default();
        struct SleepsOnDrop;
        impl Drop for SleepsOnDrop {
            fn drop(&mut self) {
                sleep(5 * MS);
            }
        }
        let slot: Rc<RefCell<Weak<Greenlet<()>>>> = Rc::default();
        let (s, l) = (slot.clone(), log.clone());
        let late = spawn(move || {
            sleep(MS);
            let g = s.borrow().upgrade().unwrap();
            let l2 = l.clone();
            g.link(move |_| l2.push("registered second"));
        });
        let body = SleepsOnDrop;
        let g = Rc::new(spawn(move || {
            let _b = &body;
        }));
        *slot.borrow_mut() = Rc::downgrade(&g);
        let l = log.clone();
        g.link(move |_| l.push("registered first"));
        g.kill();
        late.join().unwrap();
        sleep(5 * MS);
        assert_eq!(log.take(), ["registered first", "registered second"]);
    })
}
