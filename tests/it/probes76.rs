//! Hostile review of ef43083 (a panicking `unwatch` in `take_notified`
//! loses only that object's registration: its index goes to `lost`, looked
//! at again by readiness when the iterator is used again, reported if
//! ready, else watched anew; while the thread unwinds the panic is
//! dropped, as is a `watch` panic undone then) and 15b9844 (teardown drops
//! the failures queued for main and sets `main_over`, so that none is
//! raised into main's greenlet-local destructors).
//!
//! * wait: the iterator dropped with `lost` non-empty unwatches nothing
//!   twice and leaves nothing registered (wt02); a `lost` object whose
//!   re-watch panics: the undo takes every registration back, the
//!   iterator used again registers anew and reports (wt03); the deadline
//!   passing with a `lost` object watched anew leaves nothing registered,
//!   each token unwatched once (wt04). Hold. BUG (wt01): the panicking
//!   object's own firing is lost: an `Event` set and cleared while waited
//!   on (which `iwait` reports through `fired`, and which `take_notified`
//!   asked just before the `unwatch`) goes to `lost`, where only
//!   `is_ready` is asked, so it is watched anew and the iterator parks to
//!   its deadline. BUG (wt05): while the thread unwinds, an object whose
//!   `unwatch` always panics and whose `watch` notifies a firing at once
//!   spins `next` for ever (lost, re-watched, notified, fired, unwatch
//!   panic dropped, `continue`, lost again ...) in the destructor.
//! * signal (15b9844): on a spawned thread, a handler's failure arriving
//!   while main's greenlet-local destructor sleeps is printed once and
//!   not raised into it; a failure queued at exit (its wake-up timer for
//!   main still pending) does not cut a destructor's sleep short; the
//!   destructor runs to its end, nothing printed as a destructor's panic
//!   (sg01). Holds.
//!
//! 6 tests, 2 BUGs, both fixed: a `lost` object keeps whether it had
//! fired and is reported if it did; while the thread unwinds a `lost`
//! object is not watched anew (wt03 now makes its notice with a spurious
//! wake-up, as a fired object is reported instead of watched anew).

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{Waitable, Waiter, spawn};

use crate::util::{bounded, child_texts, yield_until};

const MS: Duration = Duration::from_millis(1);

fn message(p: &(dyn std::any::Any + Send)) -> String {
    sylvan::runtime::payload_message(p)
}

// ================================================================ wait

/// An `Event` whose `unwatch` (done first) then panics the first
/// `panics` times, and whose `watch` panics at the watch numbered
/// `watch_panic_at` (1-based; 0: never).
#[derive(Default)]
struct Flaky {
    ev: Event,
    panics: Cell<usize>,
    watches: Cell<usize>,
    watch_panic_at: Cell<usize>,
    unwatches: Cell<usize>,
    /// Every waiter it was given, for a spurious wake-up ([`poke`]).
    seen: RefCell<Vec<Waiter>>,
}

impl Flaky {
    fn panics(n: usize) -> Flaky {
        let f = Flaky::default();
        f.panics.set(n);
        f
    }
}

impl Waitable for Flaky {
    fn is_ready(&self) -> bool {
        self.ev.is_ready()
    }
    fn watch(&self, w: Waiter) -> usize {
        let n = self.watches.get() + 1;
        self.watches.set(n);
        if n == self.watch_panic_at.get() {
            panic!("flaky watch {n} panics");
        }
        self.seen.borrow_mut().push(w);
        self.ev.watch(w)
    }
    fn unwatch(&self, w: Waiter, token: usize) {
        self.ev.unwatch(w, token);
        self.unwatches.set(self.unwatches.get() + 1);
        let left = self.panics.get();
        if left > 0 {
            self.panics.set(left - 1);
            panic!("flaky unwatch panics");
        }
    }
    fn fired(&self, w: Waiter, token: usize) -> bool {
        self.ev.fired(w, token)
    }
}

/// Sets and clears the event at once (fired, not ready).
fn pulse(f: &Rc<Flaky>) {
    let f = f.clone();
    spawn(move || {
        f.ev.set();
        f.ev.clear();
    });
}

/// Wakes its waiters without setting the event: a spurious wake-up
/// (neither fired nor ready).
fn poke(f: &Rc<Flaky>) {
    let f = f.clone();
    spawn(move || {
        for w in f.seen.borrow().iter() {
            w.wake();
        }
    });
}

/// The object whose `unwatch` panics had itself fired (an `Event` set and
/// cleared while waited on). Without the panic `iwait` reports it (through
/// `fired`, as gevent notifies every link of a set event). With it, the
/// object goes to `lost`, where the iterator used again asks only
/// `is_ready`: not set, it is watched anew, and `next` parks to its
/// deadline (`None`); the firing is lost although `take_notified` had
/// asked `fired` (true) just before the `unwatch`.
/// Fix: keep the answer with the index (`lost: Vec<(u32, bool)>`, or a
/// `lost_fired` set) and report a `lost` object if it fired or is ready.
#[test]
fn wt01_a_lost_object_that_fired_is_reported() {
    bounded(|| {
        // Control: without the panic, the cleared Event is reported.
        let f = Rc::new(Flaky::panics(0));
        let objs: [&dyn Waitable; 1] = [&*f];
        let mut it = sylvan::iwait(&objs, Some(300 * MS));
        pulse(&f);
        assert_eq!(it.next(), Some(0), "control");
        drop(it);

        let f = Rc::new(Flaky::panics(1));
        let objs: [&dyn Waitable; 1] = [&*f];
        let mut it = sylvan::iwait(&objs, Some(300 * MS));
        pulse(&f);
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert_eq!(message(&*p), "flaky unwatch panics");
        let t = Instant::now();
        let again = it.next();
        let waited = t.elapsed();
        drop(it);
        assert_eq!(f.ev.waiters(), 0);
        assert_eq!(
            again,
            Some(0),
            "the Event fired while waited on (after {waited:?}; the deadline is 300 ms)"
        );
    })
}

/// The iterator dropped while the panicking object is in `lost`: its
/// registration is not taken back a second time, the other object's is,
/// nothing is watched anew, and the drop itself does not panic.
#[test]
fn wt02_dropped_with_lost_nothing_unwatched_twice() {
    bounded(|| {
        let f = Rc::new(Flaky::panics(1));
        let e = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*e, &*f];
        let mut it = sylvan::iwait(&objs, None);
        let f2 = f.clone();
        spawn(move || f2.ev.set());
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert_eq!(message(&*p), "flaky unwatch panics");
        assert_eq!((e.waiters(), f.ev.waiters()), (1, 0));
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(it)));
        assert!(dropped.is_ok(), "the drop does not panic");
        assert_eq!((e.waiters(), f.ev.waiters()), (0, 0));
        assert_eq!((f.watches.get(), f.unwatches.get()), (1, 1));
    })
}

/// A `lost` object (a spurious notice, neither fired nor ready, then the
/// `unwatch` panic) whose re-watch panics: every registration is taken
/// back and the panic goes on; the iterator used again registers anew on
/// both and reports the one set later; nothing stays registered. (It
/// used a set-and-cleared event for the notice until the fix of wt01,
/// which reports such a fired object instead of watching it anew.)
#[test]
fn wt03_lost_rewatch_panics() {
    bounded(|| {
        let f = Rc::new(Flaky::panics(1));
        f.watch_panic_at.set(2);
        let e = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*e, &*f];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        poke(&f);
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert_eq!(message(&*p), "flaky unwatch panics");
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("watch panics");
        assert_eq!(message(&*p), "flaky watch 2 panics");
        assert_eq!((e.waiters(), f.ev.waiters()), (0, 0), "all taken back");
        let e2 = e.clone();
        spawn(move || e2.set());
        assert_eq!(it.next(), Some(0));
        assert_eq!(f.ev.waiters(), 1, "f registered anew");
        drop(it);
        assert_eq!((e.waiters(), f.ev.waiters()), (0, 0));
        assert_eq!(f.watches.get(), 3);
        assert_eq!(f.unwatches.get(), 2, "tokens 1 and 3, each once");
    })
}

/// Wakes its waiters without being ready (a spurious notice), never
/// fires; its `unwatch` panics once.
#[derive(Default)]
struct Poked {
    list: RefCell<Vec<(usize, Waiter)>>,
    watches: Cell<usize>,
    unwatched: RefCell<Vec<usize>>,
    panicked: Cell<bool>,
}

impl Waitable for Poked {
    fn is_ready(&self) -> bool {
        false
    }
    fn watch(&self, w: Waiter) -> usize {
        let n = self.watches.get() + 1;
        self.watches.set(n);
        self.list.borrow_mut().push((n, w));
        n
    }
    fn unwatch(&self, _w: Waiter, token: usize) {
        self.list.borrow_mut().retain(|&(t, _)| t != token);
        self.unwatched.borrow_mut().push(token);
        if !self.panicked.replace(true) {
            panic!("poked unwatch panics");
        }
    }
}

/// The deadline passes while the `lost` object is watched anew: `next`
/// returns `None` at the deadline, and at once (before the drop) nothing
/// is registered, each token unwatched once; `next` stays `None`.
#[test]
fn wt04_deadline_with_a_lost_object() {
    bounded(|| {
        let p = Rc::new(Poked::default());
        let e = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*e, &*p];
        let mut it = sylvan::iwait(&objs, Some(80 * MS));
        let p2 = p.clone();
        spawn(move || {
            let ws: Vec<Waiter> = p2.list.borrow().iter().map(|&(_, w)| w).collect();
            for w in ws {
                w.wake();
            }
        });
        let r = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert_eq!(message(&*r), "poked unwatch panics");
        let t = Instant::now();
        assert_eq!(it.next(), None);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(p.watches.get(), 2, "watched anew once");
        assert!(p.list.borrow().is_empty(), "nothing left on p");
        assert_eq!(e.waiters(), 0, "nothing left on e");
        assert_eq!(*p.unwatched.borrow(), [1, 2]);
        assert_eq!(it.next(), None);
        drop(it);
        assert_eq!(*p.unwatched.borrow(), [1, 2], "none twice");
    })
}

/// Fires from inside each `watch` (wakes the waiter, `fired` true) but is
/// never ready; its `unwatch` always panics. Counts the unwatches.
#[derive(Default)]
struct Pulsing {
    unwatches: Cell<usize>,
}

impl Waitable for Pulsing {
    fn is_ready(&self) -> bool {
        false
    }
    fn watch(&self, w: Waiter) -> usize {
        w.wake();
        0
    }
    fn unwatch(&self, _w: Waiter, _token: usize) {
        let n = self.unwatches.get() + 1;
        self.unwatches.set(n);
        if n == 1_000 {
            // The loop does not end by itself: say so and stop the child.
            println!("SPUN {n}");
            std::process::exit(0);
        }
        panic!("pulsing unwatch panics");
    }
    fn fired(&self, _w: Waiter, _token: usize) -> bool {
        true
    }
}

/// The iterator, registered and with the object `lost` after a first
/// `unwatch` panic, is drained in a destructor while the greenlet unwinds.
/// `take_notified` pops `lost` (not ready), watches anew (the watch
/// notifies a firing), takes the notice, `fired`, `unwatch` panics: the
/// panic is dropped (unwinding) and the loop `continue`s with the object
/// in `lost` again: for ever, inside the destructor (the object stops the
/// child after 1 000 rounds; before ef43083 this aborted). Out of an
/// unwind every such round is a panic out of `next`, so it ends.
/// Fix: while the thread unwinds, do not watch `lost` objects anew
/// (`next` returns `None` then anyway): after the dropped panic, return
/// `None` (or report the object if it fired), instead of `continue`.
#[test]
fn wt05_unwinding_drain_ends() {
    let out = crate::util::limited_child(
        "probes76::wt05_unwinding_drain_ends",
        "p76-wt05",
        &[],
        Duration::from_secs(10),
        || {
            // Each round is a panic: no message (fast, and short).
            std::panic::set_hook(Box::new(|_| {}));
            bounded(|| {
                crate::util::quiet();
                let p = Rc::new(Pulsing::default());
                let objs: [&dyn Waitable; 1] = [&*p];
                let mut it = sylvan::iwait(&objs, None);
                let r = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch");
                assert_eq!(message(&*r), "pulsing unwatch panics");
                struct Drain<'a, 'b>(&'a mut sylvan::Iwait<'b>);
                impl Drop for Drain<'_, '_> {
                    fn drop(&mut self) {
                        let got = self.0.next();
                        println!("DRAINED {got:?}");
                    }
                }
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let _d = Drain(&mut it);
                    panic!("outer");
                }));
                assert_eq!(message(&*r.expect_err("outer")), "outer");
                drop(it);
                println!("UNWATCHES {}", p.unwatches.get());
            })
        },
    );
    if let Some(out) = out {
        let (o, e) = crate::util::texts(&out);
        assert!(!crate::util::aborted(&out), "aborted\n{o}\n{e}");
        assert!(!o.contains("SPUN"), "spun in the destructor\n{o}\n{e}");
        assert!(o.contains("DRAINED"), "{o}\n{e}");
    }
}

// ============================================================== signals

fn raise(sig: i32) {
    // SAFETY: a signal to this thread, which handles it.
    unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
}

fn ignore(sig: i32) {
    // SAFETY: ignores `sig` in this child process until a handler is set.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// `n` runs of a handler of `sig`, each parked on the returned `Event`;
/// once it is set they panic in one turn, in order ("p76 {tag} 1" ...).
fn primed(sig: i32, n: usize, tag: &'static str) -> (sylvan::SignalHandler, Rc<Event>) {
    let go = Rc::new(Event::new());
    let started = Rc::new(Cell::new(0usize));
    let (go2, s2) = (go.clone(), started.clone());
    let h = sylvan::signal(sig, move || {
        let k = s2.get() + 1;
        s2.set(k);
        go2.wait();
        panic!("p76 {tag} {k}");
    })
    .unwrap();
    for k in 1..=n {
        raise(sig);
        yield_until("the handler ran", || started.get() == k);
    }
    (h, go)
}

/// Main's greenlet-local whose destructor sleeps (measured), then lets a
/// handler run fail, sleeps again meanwhile, and says how long it slept.
struct LateFailure {
    go: Rc<Event>,
    _handlers: Vec<sylvan::SignalHandler>,
}

impl Drop for LateFailure {
    fn drop(&mut self) {
        let t = Instant::now();
        sylvan::sleep(10 * MS);
        let first = t.elapsed();
        self.go.set();
        let t = Instant::now();
        sylvan::sleep(20 * MS);
        let second = t.elapsed();
        println!("LOCAL WHOLE {} {}", first >= 10 * MS, second >= 20 * MS);
    }
}

sylvan::greenlet_local! {
    static LATE: RefCell<Option<LateFailure>> = RefCell::new(None);
}

/// On a spawned thread: two failures queue (main catches the first in a
/// sleep and ends, the second queued with its wake-up timer for main
/// pending); main's greenlet-local destructor then sleeps (not cut short
/// by that timer), lets a third handler run fail, and sleeps again while
/// it does: that failure is reported once and not raised into the
/// destructor; nothing is printed as a destructor's panic; the thread
/// ends well.
#[test]
fn sg01_failure_during_mains_local_destructor_reported_once() {
    let texts = child_texts(
        "probes76::sg01_failure_during_mains_local_destructor_reported_once",
        "p76-sg01",
        || {
            ignore(libc::SIGUSR1);
            ignore(libc::SIGUSR2);
            let th = std::thread::spawn(|| {
                let (h1, go1) = primed(libc::SIGUSR2, 2, "queued");
                let (h2, go2) = primed(libc::SIGUSR1, 1, "late");
                LATE.with(|l| {
                    *l.borrow_mut() = Some(LateFailure {
                        go: go2,
                        _handlers: vec![h1, h2],
                    })
                });
                go1.set();
                let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(20))))
                    .expect_err("first");
                assert_eq!(message(&*p), "p76 queued 1");
            });
            th.join().expect("the thread ends well");
            println!("JOINED");
        },
    );
    if let Some((o, e)) = texts {
        assert!(o.contains("JOINED"), "{o}\n{e}");
        assert!(o.contains("LOCAL WHOLE true true"), "cut short\n{o}\n{e}");
        let once = crate::util::count(&e, "p76 queued 1");
        assert!(once >= 1, "{e}");
        assert_eq!(crate::util::count(&e, "p76 queued 2"), once, "{e}");
        assert_eq!(crate::util::count(&e, "p76 late 1"), once, "{e}");
        assert!(!e.contains("thread exit"), "{e}");
    }
}
