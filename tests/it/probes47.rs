//! Probe round 47: the less-trodden edges, translated from gevent's and
//! greenlet's own suites (test__greenlet, greenlet's test_greenlet /
//! test_throw / test_leaks, test__threadpool, test__signal, test__os fork,
//! test__hub, test__timeout, test__api, test__exc_info): kills thrown into
//! destructors, link callbacks, thread-pool waits and joins; kills that are
//! caught; odd panic payloads and panicking destructors; hub teardown at
//! thread exit; two hubs talking; the blocking pool; extreme timer values;
//! greenlet-locals across kills; ids, names and the text of handles and
//! errors; signals and fork.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{Error, ErrorPolicy, GreenletExit, Timeout};

use crate::util::{DropFlag, Log, bounded, fork_child, in_child, quiet, reap, yield_until};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

/// Spawns `f` and lets it run until it parks.
fn parked<T: 'static>(f: impl FnOnce() -> T + 'static) -> sylvan::Greenlet<T> {
    let g = sylvan::spawn(f);
    sylvan::yield_now();
    g
}

/// Counts drops across threads (a `Send` `DropFlag`).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records the failures the hub's error policy sees: (name, error text,
/// observed, spawn file).
type Seen = Rc<RefCell<Vec<(Option<String>, String, bool, String)>>>;

fn recording_policy() -> Seen {
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

// ======================================================= kill and throw

/// greenlet test_throw: a kill thrown into a greenlet parked *inside a
/// destructor* (a plain scope exit, not an unwind, so the destructor may
/// block). The destructor unwinds from its park; the struct's fields and
/// the frames below are still dropped; the greenlet dies killed.
#[test]
fn kill_thrown_into_a_destructor_that_blocks_on_scope_exit() {
    struct Sleepy {
        log: Log,
        _field: DropFlag,
    }
    impl Drop for Sleepy {
        fn drop(&mut self) {
            self.log.push("drop-start");
            sylvan::sleep(HOUR);
            self.log.push("drop-end");
        }
    }
    bounded(|| {
        let log = Log::default();
        let (field, outer) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (l, f, o) = (log.clone(), field.clone(), outer.clone());
        let g = parked(move || {
            let _outer = DropFlag(o);
            let s = Sleepy {
                log: l.clone(),
                _field: DropFlag(f),
            };
            drop(s);
            l.push("after");
        });
        assert_eq!(log.get(), ["drop-start"]);
        assert!(!g.is_dead());
        g.kill();
        assert!(g.is_dead());
        assert_eq!(g.join(), Err(Error::Killed));
        assert_eq!(log.take(), ["drop-start"]);
        assert_eq!(
            field.get(),
            1,
            "the field of the unwound destructor was dropped"
        );
        assert_eq!(outer.get(), 1, "frames below were unwound");
    });
}

/// test__greenlet: a timeout thrown into a link callback. One callback
/// catches it with `with_timeout`, one lets a `Timeout` escape (the
/// callback's greenlet dies timed out, reported by the error policy); the
/// third runs; `join` of the linked greenlet is not wedged by the callback
/// that died and returns the value.
#[test]
fn timeouts_thrown_into_link_callbacks_do_not_wedge_join() {
    bounded(|| {
        let seen = recording_policy();
        let log = Log::default();
        let g = sylvan::spawn(|| 5);
        let l = log.clone();
        g.link(move |_| {
            let r = sylvan::with_timeout(5 * MS, || sylvan::sleep(HOUR));
            l.push(format!("cb1 {r:?}"));
        });
        let l = log.clone();
        g.link(move |_| {
            let _t = Timeout::start(5 * MS);
            sylvan::sleep(HOUR);
            l.push("cb2 not reached");
        });
        let l = log.clone();
        g.link(move |o| l.push(format!("cb3 {o:?}")));
        assert_eq!(g.join(), Ok(5));
        let mut got = log.take();
        got.sort();
        assert_eq!(got, ["cb1 Err(Elapsed)", "cb3 Returned(5)"]);
        // The escaped timeout of cb2 is reported once, as a failure of the
        // link greenlet, spawned at the linked greenlet's site.
        yield_until("the escaped timeout is reported", || {
            !seen.borrow().is_empty()
        });
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0.as_deref(), Some("link"));
        assert!(seen[0].1.contains("timeout"), "{seen:?}");
        assert!(seen[0].3.ends_with("probes47.rs"), "{seen:?}");
    });
}

/// test__greenlet `test_kill_from_link`: the link callback of a killed
/// greenlet kills a third greenlet (and, harmlessly, the dead one again);
/// join of the first returns once that callback is done.
#[test]
fn link_callback_of_a_killed_greenlet_kills_another_and_its_own_target() {
    bounded(|| {
        let log = Log::default();
        let other_dropped = Rc::new(Cell::new(0));
        let od = other_dropped.clone();
        let other = Rc::new(parked(move || {
            let _f = DropFlag(od);
            sylvan::sleep(HOUR);
        }));
        let victim = Rc::new(parked(|| sylvan::sleep(HOUR)));
        let (l, o, v) = (log.clone(), other.clone(), victim.clone());
        victim.link(move |out| {
            l.push(format!("cb {out:?}"));
            v.kill(); // the dead victim again: nothing happens
            o.kill();
            l.push(format!("other dead {}", o.is_dead()));
        });
        victim.kill();
        assert!(victim.is_dead());
        yield_until("the callback finished", || Rc::strong_count(&victim) == 1);
        let g = Rc::try_unwrap(victim).ok().unwrap();
        assert_eq!(g.join(), Err(Error::Killed));
        assert_eq!(log.take(), ["cb Killed", "other dead true"]);
        assert_eq!(other_dropped.get(), 1);
    });
}

/// test__threadpool `test_kill_while_waiting`: a greenlet killed while it
/// waits for a `spawn_blocking` job dies at once; the job still runs to the
/// end on its thread, and its result is dropped exactly once, there.
#[test]
fn kill_while_waiting_for_a_blocking_job_drops_the_result_once() {
    struct Res(sylvan::mpsc::Sender<&'static str>);
    impl Drop for Res {
        fn drop(&mut self) {
            let _ = self.0.send("dropped");
        }
    }
    bounded(|| {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (ev_tx, ev_rx) = sylvan::mpsc::channel::<&'static str>();
        let after = Rc::new(Cell::new(false));
        let a = after.clone();
        // The job has started before the kill: one not started when its
        // caller is killed is not run at all.
        let (st_tx, st_rx) = std::sync::mpsc::channel::<()>();
        let g = parked(move || {
            let r = sylvan::spawn_blocking(move || {
                st_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                let _ = ev_tx.send("ran");
                Res(ev_tx)
            });
            a.set(true);
            drop(r);
        });
        assert!(g.is_started() && !g.is_dead());
        st_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let t = Instant::now();
        g.kill();
        assert!(g.is_dead());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "kill did not wait for the job"
        );
        assert_eq!(g.join(), Err(Error::Killed));
        go_tx.send(()).unwrap();
        assert_eq!(ev_rx.recv_timeout(Duration::from_secs(3)), Ok("ran"));
        assert_eq!(ev_rx.recv_timeout(Duration::from_secs(3)), Ok("dropped"));
        // the result, and with it the last sender, is gone: nothing more
        assert_eq!(
            ev_rx.recv_timeout(Duration::from_secs(3)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
        assert!(!after.get());
    });
}

/// test__greenlet: greenlets parked in `join`/`wait` of another one; the
/// first is killed there. The joined greenlet is untouched, the other
/// waiter still wakes when it ends, and its own join works.
#[test]
fn kill_of_a_greenlet_parked_in_join_of_another() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let target = Rc::new(parked(move || {
            e.wait();
            "done"
        }));
        let (t1, t2) = (target.clone(), target.clone());
        let w1 = parked(move || t1.wait(None));
        let w2 = parked(move || t2.wait(None));
        w1.kill();
        assert_eq!(w1.join(), Err(Error::Killed));
        assert!(!target.is_dead());
        ev.set();
        assert_eq!(w2.join(), Ok(true));
        let target = Rc::try_unwrap(target).ok().unwrap();
        assert_eq!(target.join(), Ok("done"));
    });
}

/// greenlet test_greenlet `test_kill_self`: a greenlet killing itself
/// unwinds at once (nothing after the kill runs, destructors do) and dies
/// killed; `killall` listing the caller in the middle kills the ones after
/// it too.
#[test]
fn a_greenlet_killing_itself_unwinds_at_once() {
    bounded(|| {
        let log = Log::default();
        let dropped = Rc::new(Cell::new(0));
        let me: Rc<RefCell<Option<sylvan::Greenlet<()>>>> = Rc::default();
        let (l, d, m) = (log.clone(), dropped.clone(), me.clone());
        *me.borrow_mut() = Some(sylvan::spawn(move || {
            let _f = DropFlag(d);
            l.push("before");
            m.borrow().as_ref().unwrap().kill();
            l.push("after");
        }));
        sylvan::yield_now();
        let g = me.borrow_mut().take().unwrap();
        assert!(g.is_dead());
        assert_eq!(g.join(), Err(Error::Killed));
        assert_eq!(log.take(), ["before"]);
        assert_eq!(dropped.get(), 1);

        // `killall` with the caller in the list (in the middle): the ones
        // after it are killed too, then the caller unwinds.
        let gs: Rc<RefCell<Vec<sylvan::Greenlet<()>>>> = Rc::default();
        let log = Log::default(); // fresh
        let l = log.clone();
        gs.borrow_mut().push(sylvan::spawn(|| sylvan::sleep(HOUR)));
        let g2 = gs.clone();
        gs.borrow_mut().push(sylvan::spawn(move || {
            sylvan::yield_now(); // the others park
            let list = g2.borrow();
            let _ = sylvan::killall(&list, None);
            l.push("after killall");
        }));
        gs.borrow_mut().push(sylvan::spawn(|| sylvan::sleep(HOUR)));
        sylvan::sleep(5 * MS);
        let all = std::mem::take(&mut *gs.borrow_mut());
        assert!(sylvan::joinall(&all, Some(Duration::from_secs(2))));
        for g in all {
            assert_eq!(g.join(), Err(Error::Killed));
        }
        assert!(log.take().is_empty());
    });
}

/// test__greenlet: a kill issued in the same hub turn as the wake-up that
/// would let the greenlet finish wins (gevent throws `GreenletExit` even
/// into a greenlet that was about to run): nothing after the wait runs.
/// A kill after the body returned (links not yet run) does nothing.
#[test]
fn kill_racing_with_the_end_of_a_greenlet_in_one_turn() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let log = Log::default();
        let (e, l) = (ev.clone(), log.clone());
        let g = parked(move || {
            e.wait();
            l.push("woke");
        });
        ev.set();
        g.kill_nowait();
        assert_eq!(g.join(), Err(Error::Killed));
        assert!(log.take().is_empty());

        // The other side of the race: the body has returned, its link
        // callback has not run yet. A kill then does nothing: the value
        // stands and the callback sees it.
        let log = Log::default();
        let g = sylvan::spawn(|| 7);
        let l = log.clone();
        g.link(move |o| l.push(format!("{o:?}")));
        sylvan::yield_now();
        assert!(g.is_dead());
        g.kill();
        assert_eq!(g.join(), Ok(7));
        assert_eq!(log.take(), ["Returned(7)"]);
    });
}

/// greenlet test_throw / gevent `Greenlet.kill` docs: a greenlet that
/// catches the kill and goes on survives `kill_timeout` (false); each kill
/// is thrown anew, so a later `kill` that it lets through ends it.
#[test]
fn a_greenlet_that_catches_a_kill_survives_kill_timeout_and_dies_of_the_next() {
    bounded(|| {
        let caught = Rc::new(Cell::new(0));
        let c = caught.clone();
        let g = parked(move || {
            loop {
                match catch_unwind(|| sylvan::sleep(HOUR)) {
                    Err(p) if p.is::<GreenletExit>() => {
                        c.set(c.get() + 1);
                        if c.get() == 2 {
                            resume_unwind(p);
                        }
                    }
                    Err(p) => resume_unwind(p),
                    Ok(()) => {}
                }
            }
        });
        assert!(!g.kill_timeout(20 * MS), "it caught the kill and went on");
        assert!(!g.is_dead());
        assert_eq!(caught.get(), 1);
        g.kill();
        assert!(g.is_dead());
        assert_eq!(caught.get(), 2);
        assert_eq!(g.join(), Err(Error::Killed));
    });
}

/// gevent: a greenlet that catches `GreenletExit` and returns a value has
/// succeeded with that value. And two kills sent back to back while it is
/// parked are both thrown (the second after the first was caught).
#[test]
fn caught_kill_then_return_gives_the_value_and_back_to_back_kills_both_land() {
    bounded(|| {
        let g = parked(|| match catch_unwind(|| sylvan::sleep(HOUR)) {
            Err(p) if sylvan::is_unwind_payload(&*p) => "caught",
            _ => "slept",
        });
        g.kill();
        assert_eq!(g.join(), Ok("caught"));

        let caught = Rc::new(Cell::new(0));
        let c = caught.clone();
        let g = parked(move || {
            if catch_unwind(|| sylvan::sleep(HOUR)).is_err() {
                c.set(c.get() + 1);
            }
            sylvan::sleep(HOUR); // the second kill lands here
            "survived both"
        });
        g.kill_nowait();
        g.kill_nowait();
        assert_eq!(g.join(), Err(Error::Killed));
        assert_eq!(caught.get(), 1);
    });
}

// =============================================================== panics

/// test__greenlet `test_exc_info` with a payload that is not a string
/// (`panic_any(42u32)`): the message says so, the location is the panic's,
/// the payload is kept, and `Error::resume` re-raises that very payload. A
/// payload whose destructor panics is contained.
#[test]
fn a_non_string_panic_payload_survives_join_and_resume() {
    struct Nasty;
    impl Drop for Nasty {
        fn drop(&mut self) {
            panic!("payload drop boom");
        }
    }
    bounded(|| {
        quiet();
        let g = sylvan::spawn(|| -> u8 { std::panic::panic_any(42u32) });
        let e = g.join().unwrap_err();
        let p = e.panic().expect("a panic");
        assert_eq!(p.message(), "Box<dyn Any>");
        assert!(
            p.location().is_some_and(|l| l.contains("probes47.rs")),
            "{:?}",
            p.location()
        );
        let payload = catch_unwind(AssertUnwindSafe(|| e.resume())).unwrap_err();
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));

        // A payload whose own destructor panics: dropping the error, or the
        // handle unjoined, never lets that second panic out.
        let e = sylvan::spawn(|| -> u8 { std::panic::panic_any(Nasty) })
            .join()
            .unwrap_err();
        assert_eq!(e.panic().map(|p| p.message()), Some("Box<dyn Any>"));
        assert!(catch_unwind(AssertUnwindSafe(|| drop(e))).is_ok());
        let g = sylvan::spawn(|| -> u8 { std::panic::panic_any(Nasty) });
        drop(g); // detached: the failure is dropped by the hub
        sylvan::yield_now();
        sylvan::yield_now();
        assert_eq!(sylvan::spawn(|| 1).join(), Ok(1));
    });
}

/// A greenlet-local whose destructor panics. When the greenlet was killed
/// (already unwinding) the panic is reported, the process does not abort
/// and the greenlet is killed; when it returned normally, it fails with
/// that panic (documented on `GreenletLocal`).
#[test]
fn a_panicking_greenlet_local_destructor_during_a_kill_does_not_abort() {
    struct Bomb(Cell<bool>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0.get() {
                panic!("local bomb");
            }
        }
    }
    sylvan::greenlet_local! {
        static BOMB: Bomb = Bomb(Cell::new(false));
    }
    bounded(|| {
        quiet();
        let g = parked(|| {
            BOMB.with(|b| b.0.set(true));
            sylvan::sleep(HOUR);
        });
        g.kill();
        assert_eq!(g.join(), Err(Error::Killed));

        let g = sylvan::spawn(|| {
            BOMB.with(|b| b.0.set(true));
            3
        });
        let e = g.join().unwrap_err();
        assert_eq!(e.panic().map(|p| p.message()), Some("local bomb"));
        // the hub is fine
        assert_eq!(sylvan::spawn(|| 1).join(), Ok(1));
    });
}

/// A greenlet killed before it started whose captured closure panics when
/// dropped: the panic is resumed in the caller of `kill` (documented via
/// `resume_or_report`), and the greenlet is still dead and killed.
#[test]
fn kill_before_start_of_a_body_whose_captures_panic_on_drop() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("capture bomb");
        }
    }
    bounded(|| {
        let bomb = Bomb;
        let g = sylvan::spawn(move || {
            let _b = &bomb;
        });
        let r = catch_unwind(AssertUnwindSafe(|| g.kill()));
        let p = r.unwrap_err();
        assert_eq!(sylvan::runtime::payload_message(&*p), "capture bomb");
        assert!(g.is_dead() && !g.is_started());
        assert_eq!(g.join(), Err(Error::Killed));
    });
}

/// A panic inside a link callback: reported once by the error policy as a
/// failure of the callback's greenlet; the callbacks after it still run
/// and `join` of the linked greenlet returns its value.
#[test]
fn a_panic_in_a_link_callback_is_reported_and_harms_nothing() {
    bounded(|| {
        let seen = recording_policy();
        let log = Log::default();
        let g = sylvan::spawn(|| 11);
        g.link(|_| panic!("callback boom"));
        let l = log.clone();
        g.link_value(move |v| l.push(format!("value {v}")));
        assert_eq!(g.join(), Ok(11));
        assert_eq!(log.take(), ["value 11"]);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0.as_deref(), Some("link"));
        assert!(seen[0].1.contains("callback boom"), "{seen:?}");
    });
}

/// `ErrorPolicy::Custom`: `observed` tells a failure a link or joiner saw
/// from one nobody saw; a policy that panics or blocks is caught and the
/// hub goes on; a policy may spawn a greenlet.
#[test]
fn custom_error_policy_sees_observed_and_survives_its_own_panic_and_block() {
    bounded(|| {
        let seen = recording_policy();
        let watched = sylvan::Builder::new()
            .name("watched")
            .spawn(|| -> u8 { panic!("pw") })
            .unwrap();
        watched.link_exception(|_| {});
        let joined = sylvan::spawn(|| -> u8 { panic!("pj") });
        let lonely = sylvan::spawn(|| -> u8 { panic!("pl") });
        assert!(joined.join().is_err());
        assert!(lonely.wait(None));
        assert!(watched.join().is_err());
        {
            let s = seen.borrow();
            let by = |m: &str| {
                s.iter()
                    .find(|f| f.1.contains(&format!("panicked: {m} ")))
                    .cloned()
            };
            let w = by("pw").expect("watched reported");
            assert_eq!(w.0.as_deref(), Some("watched"));
            assert!(w.2, "a link_exception observes it");
            assert!(by("pj").expect("joined reported").2, "a joiner observes it");
            assert!(!by("pl").expect("lonely reported").2, "nobody observed it");
            assert!(s.iter().all(|f| f.3.ends_with("probes47.rs")), "{s:?}");
        }
        // A policy that panics, then one that blocks.
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| panic!("policy boom"))));
        assert!(sylvan::spawn(|| -> u8 { panic!("x") }).join().is_err());
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(|_| sylvan::sleep(MS))));
        assert!(sylvan::spawn(|| -> u8 { panic!("y") }).join().is_err());
        quiet();
        assert_eq!(sylvan::spawn(|| 2).join(), Ok(2));

        // gevent error handlers often spawn: a policy may spawn a greenlet
        // (spawning does not block), and it runs.
        let log = Log::default();
        let l = log.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |f| {
            let (msg, l) = (f.error.to_string(), l.clone());
            sylvan::spawn(move || {
                sylvan::sleep(MS); // the spawned greenlet may block
                l.push(msg);
            });
        })));
        assert!(sylvan::spawn(|| -> u8 { panic!("routed") }).join().is_err());
        yield_until("the policy's greenlet ran", || !log.get().is_empty());
        let got = log.take();
        assert!(got[0].contains("routed"), "{got:?}");
        quiet();
    });
}

// ======================================================== hub lifecycle

/// test__hub / greenlet test_leaks: greenlets still alive when their
/// thread exits are killed and their destructors run: parked on a sleep,
/// an event, inside a link callback, in a `spawn_blocking` wait, and never
/// started. A greenlet spawned by a destructor then never runs, but what
/// it captured is dropped. The blocking job still completes and its result
/// is dropped.
#[test]
fn thread_exit_kills_every_kind_of_parked_greenlet_and_runs_destructors() {
    bounded(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let spawned_ran = Arc::new(AtomicBool::new(false));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (res_tx, res_rx) = std::sync::mpsc::channel::<&'static str>();
        let (d, ran) = (drops.clone(), spawned_ran.clone());
        let t = std::thread::spawn(move || {
            struct SpawnsOnDrop(Arc<AtomicUsize>, Arc<AtomicBool>);
            impl Drop for SpawnsOnDrop {
                fn drop(&mut self) {
                    let c = Counted(self.0.clone());
                    let r = self.1.clone();
                    let _ = sylvan::spawn(move || {
                        let _c = c;
                        r.store(true, Ordering::SeqCst);
                    });
                }
            }
            let c = Counted(d.clone());
            sylvan::spawn(move || {
                let _c = c;
                sylvan::sleep(HOUR);
            });
            let c = Counted(d.clone());
            let ev = Rc::new(Event::new());
            let e = ev.clone();
            sylvan::spawn(move || {
                let _c = c;
                e.wait();
            });
            let c = Counted(d.clone());
            let g = sylvan::spawn(|| 1);
            g.link(move |_| {
                let _c = c;
                sylvan::sleep(HOUR);
            });
            let s = SpawnsOnDrop(d.clone(), ran);
            sylvan::spawn(move || {
                let _s = s;
                sylvan::sleep(HOUR);
            });
            struct Res(std::sync::mpsc::Sender<&'static str>);
            impl Drop for Res {
                fn drop(&mut self) {
                    let _ = self.0.send("result dropped");
                }
            }
            let c = Counted(d.clone());
            // Its job starts before the thread exits: one not started when
            // its caller is killed is not run at all.
            let (st_tx, st_rx) = std::sync::mpsc::channel::<()>();
            sylvan::spawn(move || {
                let _c = c;
                sylvan::spawn_blocking(move || {
                    st_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    Res(res_tx)
                })
            });
            sylvan::sleep(5 * MS); // all of them park
            st_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            let c = Counted(d.clone());
            sylvan::spawn(move || drop(c)); // never starts
            drop(g);
        });
        t.join().expect("the thread exits cleanly");
        // sleep, event, link callback, spawn_blocking waiter, never
        // started, and the capture of the greenlet spawned by a destructor
        assert_eq!(drops.load(Ordering::SeqCst), 6);
        assert!(!spawned_ran.load(Ordering::SeqCst));
        go_tx.send(()).unwrap();
        assert_eq!(
            res_rx.recv_timeout(Duration::from_secs(3)),
            Ok("result dropped")
        );
    });
}

/// A greenlet that catches every kill at thread exit: teardown throws at
/// most three kills, then leaks it (documented) instead of hanging.
#[test]
fn thread_exit_with_a_greenlet_that_catches_every_kill_does_not_hang() {
    bounded(|| {
        let caught = Arc::new(AtomicUsize::new(0));
        let c = caught.clone();
        let t = std::thread::spawn(move || {
            sylvan::spawn(move || {
                loop {
                    if catch_unwind(|| sylvan::sleep(HOUR)).is_err() {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            sylvan::yield_now();
        });
        let t0 = Instant::now();
        while !t.is_finished() {
            assert!(t0.elapsed() < Duration::from_secs(3), "thread exit hangs");
            std::thread::sleep(MS);
        }
        t.join().unwrap();
        assert_eq!(caught.load(Ordering::SeqCst), 3);
    });
}

/// test__hub with two threads: a hub on another thread and this one play
/// ping-pong through `sylvan::mpsc` channels while a ticker runs here; the
/// other thread also spawns a greenlet here through a `Handle`, which runs
/// on this thread.
#[test]
fn two_hubs_ping_pong_over_mpsc_and_spawn_through_handles() {
    bounded(|| {
        let (to_t, t_rx) = sylvan::mpsc::channel::<u32>();
        let (to_main, main_rx) = sylvan::mpsc::channel::<u32>();
        let handle = sylvan::Handle::current();
        let ran_on = Arc::new(StdMutex::new(None));
        let r = ran_on.clone();
        let t = std::thread::spawn(move || {
            let r2 = r.clone();
            handle
                .spawn(move || {
                    *r2.lock().unwrap() = Some((std::thread::current().id(), sylvan::current()));
                })
                .unwrap();
            let echo = sylvan::spawn(move || {
                for v in t_rx.iter() {
                    to_main.send(v + 1).unwrap();
                }
            });
            echo.join().unwrap();
        });
        let ticks = Rc::new(Cell::new(0u32));
        let tk = ticks.clone();
        let stop = Rc::new(Cell::new(false));
        let st = stop.clone();
        let ticker = sylvan::spawn(move || {
            while !st.get() {
                tk.set(tk.get() + 1);
                sylvan::sleep(MS);
            }
        });
        let pinger = sylvan::spawn(move || {
            for i in 0..200 {
                to_t.send(i).unwrap();
                assert_eq!(main_rx.recv(), Ok(i + 1));
            }
        });
        pinger.join().unwrap();
        stop.set(true);
        ticker.join().unwrap();
        t.join().unwrap();
        yield_until("the handle's greenlet ran", || {
            ran_on.lock().unwrap().is_some()
        });
        assert!(ticks.get() > 0);
        let (tid, gid) = ran_on.lock().unwrap().expect("the handle's greenlet ran");
        assert_eq!(tid, std::thread::current().id());
        assert_ne!(gid.as_u64(), 0, "it ran in a greenlet, not on main");
    });
}

/// A `Handle` whose hub's thread ended: a job queued before the end that
/// the hub never ran is dropped with the hub (not run); later spawns fail
/// with `HubGone` and drop their closure. A send to a receiver whose
/// greenlet was killed at its thread's exit fails and gives the value back.
#[test]
fn handle_jobs_of_a_hub_that_never_ran_them_are_dropped_at_thread_exit() {
    bounded(|| {
        let (h_tx, h_rx) = std::sync::mpsc::channel();
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            h_tx.send(sylvan::Handle::current()).unwrap();
            exit_rx.recv().unwrap(); // blocks the thread: the hub never runs
        });
        let handle = h_rx.recv().unwrap();
        assert!(handle.is_alive());
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicBool::new(false));
        let (c, r) = (Counted(drops.clone()), ran.clone());
        handle
            .spawn(move || {
                let _c = c;
                r.store(true, Ordering::SeqCst);
            })
            .unwrap();
        exit_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(!handle.is_alive());
        let c = Counted(drops.clone());
        let e = handle.spawn(move || drop(c)).unwrap_err();
        assert_eq!(e, sylvan::HubGone);
        assert_eq!(e.to_string(), "the hub's thread has ended");
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        handle.wake(); // harmless on a dead hub

        // A greenlet parked on a `sylvan::mpsc` receiver when its thread
        // exits is killed and the receiver dropped: a later send from
        // another thread fails and hands the value back.
        let drops = Arc::new(AtomicUsize::new(0)); // a fresh count
        let (tx, rx) = sylvan::mpsc::channel::<Counted>();
        let got = Arc::new(AtomicBool::new(false));
        let g2 = got.clone();
        std::thread::spawn(move || {
            let rx = Rc::new(rx);
            sylvan::spawn(move || {
                if rx.recv().is_ok() {
                    g2.store(true, Ordering::SeqCst);
                }
            });
            sylvan::yield_now();
        })
        .join()
        .unwrap();
        let back = tx.send(Counted(drops.clone())).unwrap_err();
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the value came back");
        drop(back);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(!got.load(Ordering::SeqCst));
    });
}

/// Stray cross-thread wake-ups (`Handle::wake` from another thread) do not
/// cut a sleep short.
#[test]
fn stray_handle_wakes_do_not_shorten_a_sleep() {
    bounded(|| {
        let handle = sylvan::Handle::current();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                handle.wake();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let t0 = Instant::now();
        sylvan::sleep(30 * MS);
        let slept = t0.elapsed();
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        assert!(slept >= 30 * MS, "slept only {slept:?}");
    });
}

// ==================================================== blocking thread pool

/// test__threadpool `test_exception`: a job's panic reaches the greenlet
/// that waited; with a string it names the job's panic site; with a
/// non-string payload the payload survives.
#[test]
fn spawn_blocking_panics_reach_the_greenlet_with_site_and_payload() {
    bounded(|| {
        quiet();
        let g = sylvan::spawn(|| sylvan::spawn_blocking(|| -> u8 { panic!("job boom") }));
        let e = g.join().unwrap_err();
        let p = e.panic().unwrap();
        assert_eq!(p.message(), "job boom");
        assert!(
            p.location().is_some_and(|l| l.contains("probes47.rs")),
            "{:?}",
            p.location()
        );
        let g = sylvan::spawn(|| sylvan::spawn_blocking(|| -> u8 { std::panic::panic_any(7u64) }));
        let e = g.join().unwrap_err();
        let payload = catch_unwind(AssertUnwindSafe(|| e.resume())).unwrap_err();
        assert_eq!(payload.downcast_ref::<u64>(), Some(&7));
        // the pool is still fine
        assert_eq!(sylvan::spawn(|| sylvan::spawn_blocking(|| 5)).join(), Ok(5));
    });
}

/// test__threadpool `test_apply_in_pool`/`test_nested`: a `spawn_blocking`
/// made by a job runs inline on the job's thread; one made while the
/// greenlet unwinds (a destructor during a kill) runs inline on the hub's
/// thread. `with_timeout` around a job gives `Elapsed`, the job finishing
/// later.
#[test]
fn spawn_blocking_nested_inline_during_unwind_and_under_timeout() {
    bounded(|| {
        let (outer, inner) = sylvan::spawn_blocking(|| {
            let me = std::thread::current().id();
            (
                me,
                sylvan::spawn_blocking(move || std::thread::current().id()),
            )
        });
        assert_eq!(outer, inner);
        assert_ne!(outer, std::thread::current().id());

        struct InDrop(Rc<Cell<Option<std::thread::ThreadId>>>);
        impl Drop for InDrop {
            fn drop(&mut self) {
                self.0
                    .set(Some(sylvan::spawn_blocking(|| std::thread::current().id())));
            }
        }
        let seen = Rc::new(Cell::new(None));
        let s = seen.clone();
        let g = parked(move || {
            let _d = InDrop(s);
            sylvan::sleep(HOUR);
        });
        g.kill();
        assert_eq!(seen.get(), Some(std::thread::current().id()));

        let (tx, rx) = sylvan::mpsc::oneshot();
        // Run once main parks for the job: blocks the thread until the job
        // has started, so the timeout fires only then (a job not started
        // when its caller stops waiting is not run at all).
        let (st_tx, st_rx) = std::sync::mpsc::channel::<()>();
        sylvan::spawn(move || st_rx.recv_timeout(Duration::from_secs(5)).unwrap());
        let r = sylvan::with_timeout(5 * MS, || {
            sylvan::spawn_blocking(move || {
                st_tx.send(()).unwrap();
                std::thread::sleep(30 * MS);
                let _ = tx.send("finished");
            })
        });
        assert!(r.is_err());
        assert_eq!(rx.recv_timeout(Duration::from_secs(3)), Ok("finished"));
    });
}

/// test__threadpool `test_queue_order` (and `set_blocking_threads(0)` is
/// refused): with one pool thread, twelve jobs
/// from twelve greenlets queue and run in the order they were submitted;
/// raising the bound while jobs wait lets them finish; lowering it back
/// works. (In a child process: the bound is process-wide.)
#[test]
fn blocking_jobs_beyond_the_pool_size_run_in_submission_order() {
    in_child(
        "probes47::blocking_jobs_beyond_the_pool_size_run_in_submission_order",
        "p47-pool-order",
        || {
            assert!(catch_unwind(|| sylvan::set_blocking_threads(0)).is_err());
            assert_eq!(sylvan::blocking_threads(), sylvan::DEFAULT_BLOCKING_THREADS);
            sylvan::set_blocking_threads(1);
            let order = Arc::new(StdMutex::new(Vec::new()));
            let gs: Vec<_> = (0..12)
                .map(|i| {
                    let o = order.clone();
                    sylvan::spawn(move || {
                        sylvan::spawn_blocking(move || {
                            std::thread::sleep(MS);
                            o.lock().unwrap().push(i);
                            i * 2
                        })
                    })
                })
                .collect();
            let got: Vec<_> = gs.into_iter().map(|g| g.join().unwrap()).collect();
            assert_eq!(got, (0..12).map(|i| i * 2).collect::<Vec<_>>());
            assert_eq!(*order.lock().unwrap(), (0..12).collect::<Vec<_>>());

            // queued behind a stuck job, then the bound is raised
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let stuck = sylvan::spawn(move || sylvan::spawn_blocking(move || go_rx.recv().is_ok()));
            sylvan::yield_now();
            let queued = sylvan::spawn(|| sylvan::spawn_blocking(|| 9));
            sylvan::sleep(5 * MS);
            assert!(!queued.is_dead(), "one thread, busy: the job waits");
            sylvan::set_blocking_threads(2);
            assert_eq!(queued.join(), Ok(9));
            go_tx.send(()).unwrap();
            assert_eq!(stuck.join(), Ok(true));
            sylvan::set_blocking_threads(1);
            assert_eq!(sylvan::spawn(|| sylvan::spawn_blocking(|| 1)).join(), Ok(1));
        },
    );
}

// ================================================================ timers

/// test__api `test_sleep0`: `sleep(0)` yields, so two greenlets calling it
/// alternate.
#[test]
fn sleep_zero_yields_and_greenlets_alternate() {
    bounded(|| {
        let log = Log::default();
        let gs: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|n| {
                let l = log.clone();
                sylvan::spawn(move || {
                    for i in 0..3 {
                        l.push(format!("{n}{i}"));
                        sylvan::sleep(Duration::ZERO);
                    }
                })
            })
            .collect();
        assert!(sylvan::joinall(&gs, None));
        assert_eq!(log.take(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

/// test__timeout: huge values do not overflow. A sleep of `Duration::MAX`
/// (and of `u64::MAX` seconds) is cut by a short timeout; `Timeout`,
/// `with_timeout`, `wait`, `kill_timeout`, `Event::wait_timeout` and
/// `spawn_later` accept `Duration::MAX`.
#[test]
fn duration_max_everywhere_without_overflow() {
    bounded(|| {
        let t0 = Instant::now();
        assert!(sylvan::with_timeout(5 * MS, || sylvan::sleep(Duration::MAX)).is_err());
        assert!(
            sylvan::with_timeout(5 * MS, || sylvan::sleep(Duration::from_secs(u64::MAX))).is_err()
        );
        assert!(t0.elapsed() < Duration::from_secs(2));

        let t = Timeout::start(Duration::MAX);
        assert!(t.is_pending());
        t.cancel();
        assert_eq!(sylvan::with_timeout(Duration::MAX, || 3), Ok(3));

        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let setter = sylvan::spawn(move || {
            sylvan::sleep(MS);
            e.set();
        });
        assert!(ev.wait_timeout(Duration::MAX));
        assert!(setter.wait(Some(Duration::MAX)));
        let e2 = ev.clone();
        let r = sylvan::with_timeout(Duration::MAX, move || e2.wait());
        assert_eq!(r, Ok(true));

        let sleeper = parked(|| sylvan::sleep(Duration::MAX));
        assert!(sleeper.kill_timeout(Duration::MAX));

        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let timers = sylvan::stats().timers;
        let later = sylvan::spawn_later(Duration::MAX, move || r.set(true));
        later.kill();
        assert!(later.is_dead() && !later.is_started());
        assert_eq!(sylvan::stats().timers, timers, "its start timer is gone");
        assert!(!ran.get());
    });
}

/// test__timeout `test_ref`/past deadlines: `sleep_until` a past instant
/// still yields (like gevent's `sleep(-1)`); a `Timeout` whose deadline is
/// past throws at the next park; a zero `with_timeout` does not interrupt
/// code that never blocks but does interrupt code that parks.
#[test]
fn deadlines_in_the_past() {
    bounded(|| {
        let past = Instant::now() - Duration::from_secs(1);
        let other = sylvan::spawn(|| ());
        sylvan::sleep_until(past);
        assert!(other.is_dead(), "sleep_until(past) yielded");

        let t = Timeout::start_at(past);
        let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(HOUR)));
        assert!(t.is_own_payload(&*r.unwrap_err()));

        assert_eq!(sylvan::with_timeout(Duration::ZERO, || 5), Ok(5));
        assert!(sylvan::with_timeout(Duration::ZERO, || sylvan::sleep(MS)).is_err());
    });
}

/// test__hub timers: timers with one and the same deadline fire in the
/// order they were armed, not the order the greenlets were spawned; the
/// same for `Timeout`s.
#[test]
fn identical_deadlines_fire_in_arming_order() {
    bounded(|| {
        const N: usize = 30;
        let deadline = Instant::now() + 20 * MS;
        let log = Log::default();
        let evs: Vec<Rc<Event>> = (0..N).map(|_| Rc::new(Event::new())).collect();
        let gs: Vec<_> = (0..N)
            .map(|i| {
                let (e, l) = (evs[i].clone(), log.clone());
                sylvan::spawn(move || {
                    e.wait();
                    if i % 2 == 0 {
                        sylvan::sleep_until(deadline);
                        l.push(format!("s{i}"));
                    } else {
                        let t = Timeout::start_at(deadline);
                        if let Err(p) = catch_unwind(|| sylvan::sleep(HOUR)) {
                            assert!(t.is_own_payload(&*p));
                            l.push(format!("t{i}"));
                        }
                    }
                })
            })
            .collect();
        sylvan::yield_now();
        // arm in reverse: each set lets one greenlet run and arm its timer
        for e in evs.iter().rev() {
            e.set();
            sylvan::yield_now();
        }
        assert!(sylvan::joinall(&gs, Some(Duration::from_secs(2))));
        let want: Vec<String> = (0..N)
            .rev()
            .map(|i| format!("{}{i}", if i % 2 == 0 { "s" } else { "t" }))
            .collect();
        assert_eq!(log.take(), want);
    });
}

// ============================================== locals, ids, text of things

static LOCAL_DROPS: AtomicUsize = AtomicUsize::new(0);

struct Tracker(Cell<u32>);

impl Drop for Tracker {
    fn drop(&mut self) {
        LOCAL_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

sylvan::greenlet_local! {
    static TRACK: Tracker = Tracker(Cell::new(0));
}

/// test__local: a greenlet-local value is dropped when its greenlet is
/// killed; the same code respawned gets a fresh value; a destructor run by
/// the kill still sees the greenlet's own value; main's value is separate.
#[test]
fn greenlet_local_across_kill_and_respawn() {
    struct ReadsLocal(Rc<Cell<u32>>);
    impl Drop for ReadsLocal {
        fn drop(&mut self) {
            self.0.set(TRACK.with(|t| t.0.get()));
        }
    }
    bounded(|| {
        TRACK.with(|t| t.0.set(1));
        let body = |seen: Rc<Cell<u32>>| {
            move || {
                let before = TRACK.with(|t| t.0.get());
                TRACK.with(|t| t.0.set(7));
                let _r = ReadsLocal(seen);
                sylvan::sleep(HOUR);
                before
            }
        };
        let before = LOCAL_DROPS.load(Ordering::SeqCst);
        let seen = Rc::new(Cell::new(0));
        let g = parked(body(seen.clone()));
        g.kill();
        assert_eq!(seen.get(), 7, "the destructor saw the greenlet's own value");
        assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), before + 1);
        let seen2 = Rc::new(Cell::new(0));
        let g2 = parked(body(seen2.clone()));
        assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), before + 1);
        g2.kill_nowait();
        assert_eq!(g2.join(), Err(Error::Killed));
        assert_eq!(seen2.get(), 7);
        assert_eq!(LOCAL_DROPS.load(Ordering::SeqCst), before + 2);
        // a fresh value for a fresh greenlet
        assert_eq!(sylvan::spawn(|| TRACK.with(|t| t.0.get())).join(), Ok(0));
        assert_eq!(TRACK.with(|t| t.0.get()), 1, "main's own value");
    });
}

/// test__greenlet `test_kill_before_start` with `spawn_later`: killed
/// before its delay passed, it never runs, its captures are dropped then,
/// links see it killed, and its timer no longer keeps the hub busy.
#[test]
fn spawn_later_killed_before_start() {
    bounded(|| {
        let log = Log::default();
        let dropped = Rc::new(Cell::new(0));
        let (l, d) = (log.clone(), dropped.clone());
        let f = DropFlag(d);
        let timers = sylvan::stats().timers;
        let g = sylvan::Builder::new()
            .name("later")
            .spawn_later(HOUR, move || {
                let _f = f;
                l.push("ran");
            })
            .unwrap();
        let l = log.clone();
        g.link(move |o| l.push(format!("link {o:?}")));
        sylvan::yield_now();
        assert!(!g.is_started() && !g.is_dead());
        g.kill();
        assert!(g.is_dead() && !g.is_started());
        assert_eq!(dropped.get(), 1);
        assert_eq!(sylvan::stats().timers, timers, "its start timer is gone");
        assert_eq!(g.name(), Some("later"));
        assert_eq!(g.join(), Err(Error::Killed));
        assert_eq!(log.take(), ["link Killed"]);
    });
}

/// greenlet `getcurrent`: main is `#0` named "main"; a greenlet sees its
/// own id and name; a link callback runs in a greenlet of its own; a pool
/// thread's job sees its own thread's main; ids are unique and increasing.
#[test]
fn current_ids_and_names_from_main_greenlets_callbacks_and_pool_threads() {
    bounded(|| {
        assert_eq!(sylvan::current().as_u64(), 0);
        assert_eq!(sylvan::current_name().as_deref(), Some("main"));
        let g = sylvan::Builder::new()
            .name("named")
            .spawn(|| (sylvan::current(), sylvan::current_name()))
            .unwrap();
        let id = g.id();
        let cb = Rc::new(Cell::new(None));
        let c = cb.clone();
        g.link(move |_| c.set(Some((sylvan::current(), sylvan::current_name()))));
        let (seen_id, seen_name) = g.join().unwrap();
        assert_eq!(seen_id, id);
        assert_eq!(seen_name.as_deref(), Some("named"));
        let (cb_id, cb_name) = cb.take().expect("callback ran");
        assert_ne!(cb_id, id);
        assert_ne!(cb_id.as_u64(), 0);
        assert_eq!(cb_name.as_deref(), Some("link"));
        assert_eq!(
            sylvan::spawn(|| sylvan::spawn_blocking(|| sylvan::current().as_u64())).join(),
            Ok(0)
        );
        let ids: Vec<u64> = (0..500)
            .map(|_| sylvan::spawn(|| ()).id().as_u64())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "unique, increasing");
        assert!(ids[0] > cb_id.as_u64());
        sylvan::yield_now();
    });
}

/// test__greenlet `test_repr`/`test__exc_info`: handles, ids, errors and
/// dumps say what they are.
#[test]
fn debug_and_display_of_handles_and_errors_are_informative() {
    bounded(|| {
        quiet();
        let g = sylvan::Builder::new()
            .name("napper")
            .spawn(|| sylvan::sleep(HOUR))
            .unwrap();
        sylvan::yield_now();
        let dbg = format!("{g:?}");
        assert!(
            dbg.contains("Greenlet") && dbg.contains("napper") && dbg.contains("Suspended"),
            "{dbg}"
        );
        assert!(dbg.contains(&format!("{:?}", g.id())), "{dbg}");
        assert_eq!(g.id().to_string(), format!("#{}", g.id().as_u64()));
        let dump = sylvan::dump().to_string();
        assert!(
            dump.contains("napper") && dump.contains("a sleep"),
            "{dump}"
        );
        let id = g.id();
        let survivor = parked(|| {
            let _ = catch_unwind(|| sylvan::sleep(HOUR));
            sylvan::sleep(HOUR);
        });
        let sid = survivor.id();
        let err = sylvan::killall(std::slice::from_ref(&survivor), Some(5 * MS)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("1 greenlet(s) survived the kill: {sid}")
        );
        survivor.kill();
        g.kill();
        assert_eq!(g.join().unwrap_err().to_string(), "greenlet was killed");
        let e = sylvan::spawn(|| -> u8 { panic!("shown") })
            .join()
            .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("panicked") && s.contains("shown") && s.contains("probes47.rs"),
            "{s}"
        );
        assert!(format!("{e:?}").contains("shown"));
        let t = sylvan::spawn(|| {
            let _t = Timeout::start(MS);
            sylvan::sleep(HOUR);
        })
        .join()
        .unwrap_err();
        assert!(t.is_timeout() && t.to_string().contains("timeout"), "{t}");
        let io: std::io::Error = t.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        let el = sylvan::with_timeout(MS, || sylvan::sleep(HOUR)).unwrap_err();
        assert_eq!(format!("{el:?}"), "Elapsed");
        assert_eq!(el.to_string(), "deadline has elapsed");
        assert!(
            sylvan::WaitKind::Join(id)
                .to_string()
                .contains(&id.to_string())
        );
        assert!(format!("{:?}", sylvan::Handle::current()).contains("alive: true"));
    });
}

// ========================================================= signals, fork

/// test__signal: the handler runs in a greenlet of the hub (named after the
/// signal, not main); five signals that arrive before the hub looks
/// coalesce into one run; the handler may block; a later signal runs it
/// again. (In a child process: signal dispositions are process-wide.)
#[test]
fn signal_handler_is_a_greenlet_and_signals_coalesce() {
    in_child(
        "probes47::signal_handler_is_a_greenlet_and_signals_coalesce",
        "p47-signal-coalesce",
        || {
            let runs = Rc::new(RefCell::new(Vec::new()));
            let ev = Rc::new(Event::new());
            let (r, e) = (runs.clone(), ev.clone());
            let _h = sylvan::signal(libc::SIGUSR1, move || {
                sylvan::sleep(MS); // a handler may block
                r.borrow_mut()
                    .push((sylvan::current().as_u64(), sylvan::current_name()));
                e.set();
            })
            .unwrap();
            for _ in 0..5 {
                // SAFETY: a thread-directed signal to this very thread is
                // delivered (our handler writes its byte) before this returns.
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) };
            }
            assert!(ev.wait_timeout(Duration::from_secs(2)));
            sylvan::sleep(20 * MS); // a second run, if there were one, would show
            {
                let runs = runs.borrow();
                assert_eq!(runs.len(), 1, "coalesced: {runs:?}");
                assert_ne!(runs[0].0, 0, "not on main");
                assert_eq!(
                    runs[0].1.as_deref(),
                    Some(&*format!("signal {}", libc::SIGUSR1))
                );
            }
            ev.clear();
            // SAFETY: as above.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) };
            assert!(ev.wait_timeout(Duration::from_secs(2)));
            assert_eq!(runs.borrow().len(), 2);
        },
    );
}

/// test__signal: two registrations for one signal both run; dropping one
/// stops its delivery only; dropping the last restores the previous
/// disposition (here `SIG_IGN`, so a later signal is ignored, not fatal).
#[test]
fn dropping_a_signal_handler_stops_its_delivery_and_restores_the_disposition() {
    in_child(
        "probes47::dropping_a_signal_handler_stops_its_delivery_and_restores_the_disposition",
        "p47-signal-drop",
        || {
            // SAFETY: sets SIGUSR2 to ignored in this child process.
            unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
            let send = || {
                // SAFETY: a signal to this thread, handled or ignored.
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            };
            let (a, b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
            let (a2, b2) = (a.clone(), b.clone());
            let ha = sylvan::signal(libc::SIGUSR2, move || a2.set(a2.get() + 1)).unwrap();
            let hb = sylvan::signal(libc::SIGUSR2, move || b2.set(b2.get() + 1)).unwrap();
            assert_eq!(ha.signum(), libc::SIGUSR2);
            send();
            yield_until("both handlers ran", || a.get() == 1 && b.get() == 1);
            drop(ha);
            send();
            yield_until("b ran again", || b.get() == 2);
            sylvan::sleep(10 * MS);
            assert_eq!(a.get(), 1, "a dropped handler is not run");
            hb.cancel();
            // SAFETY: reads the current disposition of SIGUSR2.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a null new action only queries.
            unsafe { libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old) };
            assert_eq!(
                old.sa_sigaction,
                libc::SIG_IGN,
                "the disposition is restored"
            );
            send(); // ignored
            sylvan::sleep(10 * MS);
            assert_eq!((a.get(), b.get()), (1, 2));
        },
    );
}

/// test__os `test_fork`: after a fork the child's hub works: a greenlet
/// parked before the fork goes on there, new greenlets, timeouts and the
/// blocking pool (new threads in the child) work; the parent's hub goes
/// on too.
#[test]
fn the_hub_works_in_a_forked_child() {
    in_child(
        "probes47::the_hub_works_in_a_forked_child",
        "p47-fork",
        || {
            // pool threads exist (idle) at the fork
            assert_eq!(sylvan::spawn_blocking(|| 1), 1);
            let ticks = Rc::new(Cell::new(0u32));
            let t = ticks.clone();
            let ticker = sylvan::spawn(move || {
                for _ in 0..5 {
                    sylvan::sleep(MS);
                    t.set(t.get() + 1);
                }
            });
            sylvan::yield_now();
            let pid = fork_child(|| {
                let ok = sylvan::with_timeout(Duration::from_secs(3), || {
                    let g = sylvan::spawn(|| sylvan::spawn_blocking(|| 40) + 2);
                    let v = g.join().unwrap();
                    let timed = sylvan::with_timeout(2 * MS, || sylvan::sleep(HOUR)).is_err();
                    v == 42 && timed
                });
                let ticker_ok = ticker.wait(Some(Duration::from_secs(2))) && ticks.get() == 5;
                if ok == Ok(true) && ticker_ok { 0 } else { 1 }
            });
            assert_eq!(
                reap(pid, Duration::from_secs(5)),
                0,
                "the forked child's hub failed"
            );
            assert!(ticker.wait(Some(Duration::from_secs(1))));
            assert_eq!(ticks.get(), 5);
        },
    );
}

// ================================================ round two: finer edges

/// greenlet test_throw `test_throw_while_scheduled`: a kill thrown while a
/// timeout of the same greenlet is due but not fired yet, and the other
/// way round (the timeout fired, the kill arrives before the greenlet
/// ran). Both throws land, in arrival order: with the kill first,
/// `with_timeout` passes it through; with the timeout first, it is caught
/// and the deferred kill ends the greenlet at its next park.
#[test]
fn kill_and_timeout_due_in_the_same_turn_both_land_in_order() {
    bounded(|| {
        let log = Log::default();
        let l = log.clone();
        let g = parked(move || {
            let r = sylvan::with_timeout(Duration::ZERO, || sylvan::sleep(HOUR));
            l.push(format!("with_timeout {r:?}"));
            sylvan::sleep(HOUR);
        });
        g.kill_nowait(); // before any turn of the loop fired the timeout
        assert_eq!(g.join(), Err(Error::Killed));
        assert!(
            log.take().is_empty(),
            "the kill unwound through with_timeout"
        );

        let deadline = Instant::now() + 5 * MS;
        let l = log.clone();
        let g = sylvan::spawn(move || {
            let t = Timeout::start_at(deadline);
            match catch_unwind(|| sylvan::sleep(HOUR)) {
                Err(p) if t.is_own_payload(&*p) => l.push("timeout caught"),
                Err(p) => resume_unwind(p),
                Ok(()) => {}
            }
            drop(t);
            sylvan::sleep(HOUR);
            l.push("not reached");
        });
        // Main's timer is armed before the greenlet's timeout, for the same
        // instant: in the turn where both fire, main runs first.
        sylvan::sleep_until(deadline);
        assert!(
            !g.is_dead() && log.get().is_empty(),
            "the timeout is queued, not taken"
        );
        g.kill_nowait();
        assert_eq!(g.join(), Err(Error::Killed));
        assert_eq!(log.take(), ["timeout caught"]);
    });
}

/// A greenlet killed while parked in `idle()` leaves no idle waiter
/// behind; another idle waiter still wakes. Kills cancel the timers of the
/// sleeps and timeouts they unwind.
#[test]
fn kill_in_idle_and_kill_with_pending_timeouts_leave_no_timers() {
    bounded(|| {
        let a = parked(sylvan::idle);
        let b = parked(|| {
            sylvan::idle();
            "b idle"
        });
        a.kill();
        assert_eq!(a.join(), Err(Error::Killed));
        assert_eq!(b.join(), Ok("b idle"));

        let timers = sylvan::stats().timers;
        let g = parked(|| {
            let _t1 = Timeout::start(HOUR);
            let _t2 = Timeout::start(2 * HOUR);
            let _ = sylvan::with_timeout(3 * HOUR, || sylvan::sleep(HOUR));
        });
        assert_eq!(sylvan::stats().timers, timers + 4);
        g.kill();
        assert_eq!(sylvan::stats().timers, timers, "every timer cancelled");
    });
}

/// The one abort Rust leaves no way around: a destructor that panics while
/// a kill unwinds the greenlet ("panic in a destructor during cleanup").
/// sylvan's hook says so, naming the earlier panic, before std aborts.
#[test]
fn a_destructor_panicking_during_a_kill_unwind_aborts_with_a_clear_message() {
    const NAME: &str = "p47-cleanup";
    if crate::util::is_child(NAME) {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("bomb in cleanup");
            }
        }
        let g = parked(|| {
            let _b = Bomb;
            sylvan::sleep(HOUR);
        });
        g.kill();
        println!("PROBE survived");
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let out = crate::util::run_child(
        "probes47::a_destructor_panicking_during_a_kill_unwind_aborts_with_a_clear_message",
        NAME,
    );
    let (stdout, stderr) = crate::util::texts(&out);
    assert!(!stdout.contains("PROBE survived"), "{stdout}");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("a destructor panicked while a greenlet was already unwinding")
            && stderr.contains("bomb in cleanup"),
        "{stderr}"
    );
}

/// gevent's `signal_handler` hands a handler's exception to
/// `hub.handle_error` with no context, which prints it and throws it into
/// main: a `Timeout` that escapes a handler is raised in main (checked
/// against gevent 26.9: `main got <Timeout ... seconds=0.01> after 0.01`,
/// the handler's traceback printed first). Here: reported as the failure
/// of the handler's greenlet, then raised in main as `Elapsed`.
#[test]
fn signal_handler_whose_timeout_escapes_raises_elapsed_in_main() {
    in_child(
        "probes47::signal_handler_whose_timeout_escapes_raises_elapsed_in_main",
        "p47-signal-timeout",
        || {
            // SAFETY: SIGUSR1 ignored in this child process.
            unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
            let seen = recording_policy();
            let _h = sylvan::signal(libc::SIGUSR1, || {
                let _t = Timeout::start(Duration::from_millis(10));
                sylvan::sleep(Duration::from_secs(5));
            })
            .unwrap();
            // SAFETY: a signal to this thread, which handles it.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) };
            let t = Instant::now();
            let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(5))))
                .expect_err("the handler's timeout raised in main");
            assert!(p.downcast_ref::<sylvan::Elapsed>().is_some());
            assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
            let s = seen.borrow();
            assert_eq!(s.len(), 1, "{s:?}");
            assert_eq!(
                s[0].0.as_deref(),
                Some(&*format!("signal {}", libc::SIGUSR1))
            );
        },
    );
}

/// test__signal: a handler that panics is reported (as the failure of a
/// greenlet named after the signal), then raised in main, and runs again
/// on the next signal; a
/// handler may drop its own registration, which stops later deliveries
/// and restores the previous disposition.
#[test]
fn signal_handler_that_panics_or_unregisters_itself() {
    in_child(
        "probes47::signal_handler_that_panics_or_unregisters_itself",
        "p47-signal-self",
        || {
            // SAFETY: SIGUSR1 ignored in this child process.
            unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
            let send = || {
                // SAFETY: a signal to this thread, handled or ignored.
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) };
            };
            let seen = recording_policy();
            let runs = Rc::new(Cell::new(0));
            let r = runs.clone();
            let h = sylvan::signal(libc::SIGUSR1, move || {
                r.set(r.get() + 1);
                if r.get() == 1 {
                    panic!("handler boom");
                }
            })
            .unwrap();
            send();
            // Reported, then raised in main, as gevent raises a handler's
            // exception in the main greenlet.
            let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                yield_until("the handler's panic raised in main", || false)
            }))
            .expect_err("raised in main");
            assert_eq!(p.downcast_ref::<&str>(), Some(&"handler boom"));
            {
                let s = seen.borrow();
                assert_eq!(
                    s[0].0.as_deref(),
                    Some(&*format!("signal {}", libc::SIGUSR1))
                );
                assert!(s[0].1.contains("handler boom"), "{s:?}");
            }
            send();
            yield_until("the handler ran again", || runs.get() == 2);

            let slot: Rc<RefCell<Option<sylvan::SignalHandler>>> = Rc::default();
            let (sl, c) = (slot.clone(), Rc::new(Cell::new(0)));
            let c2 = c.clone();
            let h2 = sylvan::signal(libc::SIGUSR1, move || {
                c2.set(c2.get() + 1);
                drop(sl.borrow_mut().take());
            })
            .unwrap();
            *slot.borrow_mut() = Some(h2);
            drop(h);
            send();
            yield_until("the self-dropping handler ran", || c.get() == 1);
            assert!(slot.borrow().is_none());
            send(); // ignored now
            sylvan::sleep(10 * MS);
            assert_eq!((runs.get(), c.get()), (2, 1));
            // SAFETY: reads the disposition of SIGUSR1.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a null new action only queries.
            unsafe { libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old) };
            assert_eq!(old.sa_sigaction, libc::SIG_IGN);
        },
    );
}

/// test__hub at exit: main's greenlet-local values are dropped first at
/// thread exit, "while the hub still works fully" (documented): a
/// destructor there may spawn a greenlet and join it, and that greenlet
/// runs.
#[test]
fn main_greenlet_local_destructor_at_thread_exit_may_spawn_and_join() {
    struct AtExit(Arc<AtomicUsize>);
    impl Drop for AtExit {
        fn drop(&mut self) {
            let g = sylvan::spawn(|| {
                sylvan::sleep(MS);
                41
            });
            let v = g.join().unwrap_or(0);
            self.0.store(v + 1, Ordering::SeqCst);
        }
    }
    sylvan::greenlet_local! {
        static AT_EXIT: RefCell<Option<AtExit>> = RefCell::new(None);
    }
    bounded(|| {
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        std::thread::spawn(move || {
            AT_EXIT.with(|a| *a.borrow_mut() = Some(AtExit(g)));
        })
        .join()
        .unwrap();
        assert_eq!(got.load(Ordering::SeqCst), 42);
    });
}

/// The late hub (documented): a `thread_local!` first used before the
/// thread's first sylvan call is destroyed after the hub; sylvan still
/// works in its destructor (a second hub serves it, then is torn down).
#[test]
fn a_thread_local_destroyed_after_the_hub_may_still_use_sylvan() {
    struct Late(RefCell<Option<Arc<AtomicUsize>>>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some(out) = self.0.borrow_mut().take() {
                let parked = sylvan::spawn(|| sylvan::sleep(HOUR)); // killed at the late teardown
                let v = sylvan::spawn(|| {
                    sylvan::sleep(MS);
                    6 * 7
                })
                .join()
                .unwrap_or(0);
                drop(parked);
                out.store(v, Ordering::SeqCst);
            }
        }
    }
    thread_local! {
        static LATE: Late = const { Late(RefCell::new(None)) };
    }
    bounded(|| {
        let got = Arc::new(AtomicUsize::new(0));
        let g = got.clone();
        std::thread::spawn(move || {
            LATE.with(|l| *l.0.borrow_mut() = Some(g)); // before any sylvan call
            sylvan::spawn(|| sylvan::sleep(HOUR)); // the first hub, killed at exit
            sylvan::yield_now();
        })
        .join()
        .unwrap();
        assert_eq!(got.load(Ordering::SeqCst), 42);
    });
}

/// test__hub `test_blocking_forever`: main parked on an event nobody will
/// set while another thread holds a `KeepAlive` waits; once the guard is
/// dropped (on that thread), main gets the "would block forever" panic
/// instead of hanging. (On a thread of its own: `bounded`'s timeout would
/// count as something that can wake the hub.)
#[test]
fn dropping_the_last_keepalive_turns_a_wait_into_a_deadlock_panic() {
    let t = std::thread::spawn(|| {
        let keep = sylvan::Handle::current().keep_alive();
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(keep);
        });
        let ev = Event::new();
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| ev.wait()));
        let waited = t0.elapsed();
        dropper.join().unwrap();
        let msg = sylvan::runtime::payload_message(&*r.unwrap_err());
        (waited, msg)
    });
    let t0 = Instant::now();
    while !t.is_finished() {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "main hangs after the KeepAlive went"
        );
        std::thread::sleep(MS);
    }
    let (waited, msg) = t.join().unwrap();
    assert!(
        waited >= Duration::from_millis(20),
        "it waited for the guard: {waited:?}"
    );
    assert!(msg.contains("would block forever"), "{msg}");
}
