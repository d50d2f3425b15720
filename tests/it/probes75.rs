//! Hostile review of 3e443c7 (a panicking `unwatch` in `take_notified`
//! goes through `undo_and_resume`: every registration taken back, the
//! iterator used again scans and registers anew; the undo's own `unwatch`
//! panics are dropped) and 06850cf (signal handlers' failures queue in
//! `main_raise`, raised in main one per blocking call, a timer due at once
//! waking main for the next; at most 64 wait; dropped at teardown).
//!
//! * wait: the iterator used again after the `unwatch` panic reports the
//!   ready object, then the others in readiness order, each once, ends
//!   without parking once all are reported, and leaves nothing registered
//!   (wt02). Holds. BUG (wt01): an `Event` set and cleared while waited on
//!   (which `iwait` reports through `fired`) is lost when another object's
//!   `unwatch` panics in the same `next`: the undo takes its registration
//!   back without asking `fired`, the scan finds it not ready, and the
//!   re-used iterator parks to its deadline. Before 3e443c7 (by reading) it
//!   stayed registered and reported the Event. BUG (wt03): the same `unwatch`
//!   panic met while the thread unwinds (the iterator drained in a
//!   destructor) is resumed by `undo_and_resume` out of that destructor:
//!   the process aborts, where `unregister` drops such a panic.
//! * signal: main catching the first of twelve queued failures gets each
//!   next one at once in `yield_now`, `sleep(0)`, `wait_all(Some(0))`, a
//!   join, `Event::wait`, `Queue::get`, its own `with_timeout`, `iwait`, a
//!   socket read, `spawn_blocking`, in order (sg01); 65 failures in one
//!   turn: 64 raised in turn, the 65th only reported (sg02); main's own
//!   `Timeout` expiring in the turn that raises a queued failure is
//!   deferred and delivered once, after it (sg03); a spawned thread's hub
//!   ending with failures queued drops them quietly (sg04). Hold. BUG
//!   (sg05): failures still queued at thread exit are raised into main's
//!   greenlet-local destructors that block (teardown clears the locals
//!   before it drops `main_raise`): the destructor is cut short and the
//!   failure printed a second time as "a destructor of main's
//!   greenlet-local values panicked at thread exit".
//!
//! 8 tests, 3 BUGs, all fixed: a panicking `unwatch` in `take_notified`
//! now loses only its own registration (the object is looked at again by
//! readiness when the iterator is used again; wt02 updated to that), and
//! on a thread unwinding already its panic is dropped; teardown drops the
//! queued failures and stops raising in main before main's locals go.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sylvan::sync::Event;
use sylvan::{ErrorPolicy, Waitable, Waiter, spawn, yield_now};

use crate::util::{bounded, child_texts, in_child, yield_until};

const MS: Duration = Duration::from_millis(1);

fn message(p: &(dyn std::any::Any + Send)) -> String {
    sylvan::runtime::payload_message(p)
}

// ================================================================ wait

/// Ready when `up`; its `unwatch` panics the first `unwatch_panics` times;
/// records its registrations and the tokens unwatched.
#[derive(Default)]
struct Bad {
    up: Cell<bool>,
    unwatch_panics: Cell<usize>,
    list: RefCell<Vec<(usize, Waiter)>>,
    watches: Cell<usize>,
    unwatched: RefCell<Vec<usize>>,
}

impl Bad {
    fn unwatch_panics(n: usize) -> Bad {
        let b = Bad::default();
        b.unwatch_panics.set(n);
        b
    }
    /// Ready, and wakes every waiter.
    fn raise(&self) {
        self.up.set(true);
        let ws: Vec<Waiter> = self.list.borrow().iter().map(|&(_, w)| w).collect();
        for w in ws {
            w.wake();
        }
    }
    fn live(&self) -> usize {
        self.list.borrow().len()
    }
}

impl Waitable for Bad {
    fn is_ready(&self) -> bool {
        self.up.get()
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
        let left = self.unwatch_panics.get();
        if left > 0 {
            self.unwatch_panics.set(left - 1);
            panic!("unwatch of {token} panics");
        }
    }
}

/// Object 0's `unwatch` panics when `next` takes its notice; in the same
/// turn object 1, an `Event`, was set and cleared again (fired, not
/// ready). Without the panic `iwait` reports both ([0, 1]: the `Event`
/// through `fired`, as gevent notifies every link of a set event). With
/// it, `undo_and_resume` takes the `Event`'s registration back without
/// asking `fired`; the iterator used again reports 0 by its scan, then
/// finds the `Event` not set, registers anew and parks to its deadline:
/// `None`, the `Event`'s firing lost. Before 3e443c7 the iterator stayed
/// registered and reported it from its notice (by reading the old code).
/// Fix: before the undo in `take_notified`, note each registration that
/// `fired` (or each queued notice whose object fired) and report those
/// first when the iterator is used again (or keep the other registrations
/// and only put the panicking object back to be scanned).
#[test]
fn wt01_a_fired_event_survives_another_objects_unwatch_panic() {
    bounded(|| {
        // Control: without the panic, the cleared Event is reported.
        let b = Rc::new(Bad::unwatch_panics(0));
        let ev = Rc::new(Event::new());
        let (b2, ev2) = (b.clone(), ev.clone());
        spawn(move || {
            b2.raise();
            ev2.set();
            ev2.clear();
        });
        let objs: [&dyn Waitable; 2] = [&*b, &*ev];
        assert_eq!(sylvan::wait(&objs, Some(300 * MS), None), [0, 1]);

        let b = Rc::new(Bad::unwatch_panics(1));
        let ev = Rc::new(Event::new());
        let objs: [&dyn Waitable; 2] = [&*b, &*ev];
        let mut it = sylvan::iwait(&objs, Some(300 * MS));
        let (b2, ev2) = (b.clone(), ev.clone());
        spawn(move || {
            b2.raise();
            ev2.set();
            ev2.clear();
        });
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert!(message(&*p).contains("unwatch of 1"), "{}", message(&*p));
        assert_eq!(it.next(), Some(0), "the ready one, by the scan");
        let t = Instant::now();
        let again = it.next();
        let waited = t.elapsed();
        drop(it);
        assert_eq!((b.live(), ev.waiters()), (0, 0));
        assert_eq!(
            again,
            Some(1),
            "the Event fired while waited on (after {waited:?}; the deadline is 300 ms)"
        );
    })
}

/// The iterator used again after an `unwatch` panic out of `next`: the
/// ready object first (looked at again by readiness), then the others in the order they
/// become ready (2 before 1), each once; with all reported, `next` ends
/// at once (`remaining`), though the deadline is far; each token is
/// unwatched once and nothing stays registered.
#[test]
fn wt02_reused_iterator_reports_each_once_in_readiness_order() {
    bounded(|| {
        let b = Rc::new(Bad::unwatch_panics(1));
        let e1 = Rc::new(Event::new());
        let e2 = Rc::new(Event::new());
        let objs: [&dyn Waitable; 3] = [&*b, &*e1, &*e2];
        let mut it = sylvan::iwait(&objs, Some(Duration::from_secs(3)));
        let b2 = b.clone();
        spawn(move || b2.raise());
        let p = catch_unwind(AssertUnwindSafe(|| it.next())).expect_err("unwatch panics");
        assert!(message(&*p).contains("unwatch of 1"), "{}", message(&*p));
        // Since the fix of wt01, only the panicking object's registration
        // is gone; the others stay until reported or the iterator drops.
        assert_eq!(
            (b.live(), e1.waiters(), e2.waiters()),
            (0, 1, 1),
            "only the panicking object's registration gone"
        );
        assert_eq!(it.next(), Some(0));
        let (e1b, e2b) = (e1.clone(), e2.clone());
        spawn(move || {
            e2b.set();
            sylvan::sleep(2 * MS);
            e1b.set();
        });
        assert_eq!(it.next(), Some(2));
        assert_eq!(it.next(), Some(1));
        let t = Instant::now();
        assert_eq!(it.next(), None);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        drop(it);
        assert_eq!(*b.unwatched.borrow(), [1], "each token of b unwatched once");
        assert_eq!(b.watches.get(), 1, "b not registered again once reported");
        assert_eq!((e1.waiters(), e2.waiters()), (0, 0));
    })
}

/// An iterator registered earlier is drained in a destructor while the
/// greenlet unwinds; the notified object's `unwatch` panics. `unregister`
/// drops such a panic while unwinding, and `iwait` called while unwinding
/// "returns the objects ready already"; but `take_notified` hands it to
/// `undo_and_resume`, whose `resume_unwind` leaves the destructor during
/// the unwind: a panic in cleanup, and the process aborts.
/// Fix: in `undo_and_resume`, when `std::thread::panicking()`, drop the
/// panic (as `unregister` does) and return `None` (or scan).
#[test]
fn wt03_unwatch_panic_while_unwinding_does_not_abort() {
    let out = crate::util::limited_child(
        "probes75::wt03_unwatch_panic_while_unwinding_does_not_abort",
        "p75-wt03",
        &[],
        Duration::from_secs(10),
        || {
            bounded(|| {
                crate::util::quiet();
                let a = Rc::new(Event::new());
                let b = Rc::new(Bad::unwatch_panics(1));
                let objs: [&dyn Waitable; 2] = [&*a, &*b];
                let mut it = sylvan::iwait(&objs, None);
                let a2 = a.clone();
                spawn(move || a2.set());
                assert_eq!(it.next(), Some(0), "registered on both, a reported");
                assert_eq!(b.live(), 1);
                let b2 = b.clone();
                spawn(move || b2.raise());
                yield_now(); // b's notice is queued for the iterator
                struct Drain<'a, 'b>(&'a mut sylvan::Iwait<'b>, Rc<Cell<Option<usize>>>);
                impl Drop for Drain<'_, '_> {
                    fn drop(&mut self) {
                        self.1.set(self.0.next());
                    }
                }
                let got = Rc::new(Cell::new(Some(99)));
                let g2 = got.clone();
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let _d = Drain(&mut it, g2);
                    panic!("outer");
                }));
                assert_eq!(message(&*r.expect_err("outer")), "outer");
                drop(it);
                assert_eq!(b.live(), 0);
                println!("DRAINED {:?}", got.get());
            })
        },
    );
    if let Some(out) = out {
        let (o, e) = crate::util::texts(&out);
        assert!(!crate::util::aborted(&out), "aborted\n{o}\n{e}");
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

/// Counts the failures the error policy gets.
fn counting() -> Rc<Cell<usize>> {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |_| n2.set(n2.get() + 1))));
    n
}

/// `n` runs of a handler of `sig`, each parked on the returned `Event`;
/// once it is set they panic in one turn, in order ("p75 failure 1" ...).
fn primed(sig: i32, n: usize) -> (sylvan::SignalHandler, Rc<Event>) {
    let go = Rc::new(Event::new());
    let started = Rc::new(Cell::new(0usize));
    let (go2, s2) = (go.clone(), started.clone());
    let h = sylvan::signal(sig, move || {
        let k = s2.get() + 1;
        s2.set(k);
        go2.wait();
        panic!("p75 failure {k}");
    })
    .unwrap();
    for k in 1..=n {
        raise(sig);
        yield_until("the handler ran", || started.get() == k);
    }
    (h, go)
}

/// Twelve failures queued in one turn. Main catches the first (in a
/// sleep), then blocks in a different call each time: each gets the next
/// failure at once and in order, those with a deadline of zero included
/// (`yield_now`, `sleep(0)`, `wait_all(Some(0))`), none runs to its end.
/// After the last, a sleep is whole.
#[test]
fn sg01_each_blocking_call_of_main_gets_the_next_at_once() {
    in_child(
        "probes75::sg01_each_blocking_call_of_main_gets_the_next_at_once",
        "p75-sg01",
        || {
            use std::io::Read;
            ignore(libc::SIGUSR1);
            let seen = counting();
            let (_h, go) = primed(libc::SIGUSR1, 12);
            go.set();
            let long = Duration::from_secs(20);
            let mut next = 1;
            let mut expect = |what: &str, f: &mut dyn FnMut()| {
                let t = Instant::now();
                let p = catch_unwind(AssertUnwindSafe(f)).expect_err(what);
                assert_eq!(message(&*p), format!("p75 failure {next}"), "{what}");
                assert!(
                    t.elapsed() < Duration::from_millis(500),
                    "{what}: {:?}",
                    t.elapsed()
                );
                next += 1;
            };
            expect("sleep", &mut || sylvan::sleep(long));
            expect("yield_now", &mut yield_now);
            expect("sleep(0)", &mut || sylvan::sleep(Duration::ZERO));
            expect("wait_all(Some(0))", &mut || {
                sylvan::wait_all(Some(Duration::ZERO));
            });
            let g = spawn(move || sylvan::sleep(long));
            expect("join", &mut || {
                g.wait(None);
            });
            let ev = Event::new();
            expect("Event::wait", &mut || {
                ev.wait();
            });
            let q = sylvan::sync::Queue::<u32>::unbounded();
            expect("Queue::get", &mut || {
                q.get();
            });
            expect("with_timeout", &mut || {
                let _ = sylvan::with_timeout(long, || sylvan::sleep(long));
            });
            expect("iwait", &mut || {
                let objs: [&dyn Waitable; 2] = [&ev, &g];
                let _ = sylvan::iwait(&objs, None).count();
            });
            assert_eq!(ev.waiters(), 0);
            let (mut c, _s) = crate::util::tcp_pair();
            expect("read", &mut || {
                let _ = c.read(&mut [0; 8]);
            });
            expect("spawn_blocking", &mut || {
                sylvan::spawn_blocking(|| std::thread::sleep(Duration::from_millis(600)));
            });
            expect("sleep again", &mut || sylvan::sleep(long));
            let t = Instant::now();
            sylvan::sleep(100 * MS);
            assert!(t.elapsed() >= 100 * MS, "none left: {:?}", t.elapsed());
            assert!(!g.is_dead());
            g.kill();
            assert_eq!(seen.get(), 12);
        },
    );
}

/// 65 handler runs fail in one turn: the first 64 are raised in main in
/// turn (one per sleep, at once), the 65th is only reported; main's next
/// sleep is whole.
#[test]
fn sg02_the_65th_failure_is_only_reported() {
    in_child(
        "probes75::sg02_the_65th_failure_is_only_reported",
        "p75-sg02",
        || {
            ignore(libc::SIGUSR1);
            let seen = counting();
            let (_h, go) = primed(libc::SIGUSR1, 65);
            go.set();
            for k in 1..=64 {
                let t = Instant::now();
                let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(20))))
                    .expect_err("raised");
                assert_eq!(message(&*p), format!("p75 failure {k}"));
                assert!(t.elapsed() < Duration::from_millis(500), "{k}");
            }
            assert_eq!(seen.get(), 65, "all reported");
            let t = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(150 * MS)));
            assert!(r.is_ok(), "the 65th is not raised");
            assert!(t.elapsed() >= 150 * MS);
        },
    );
}

/// Main's own `with_timeout` expires (overdue) in the turn where the
/// timer for the second queued failure wakes main: the failure is raised
/// and the timeout, deferred, reaches main at its next block inside the
/// `with_timeout`, which returns `Err(Elapsed)`; it is not thrown again
/// later (the sleep after is whole).
#[test]
fn sg03_main_timeout_in_the_same_turn_is_delivered_once_after() {
    in_child(
        "probes75::sg03_main_timeout_in_the_same_turn_is_delivered_once_after",
        "p75-sg03",
        || {
            ignore(libc::SIGUSR1);
            let _seen = counting();
            let (_h, go) = primed(libc::SIGUSR1, 2);
            go.set();
            let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(20))))
                .expect_err("first");
            assert_eq!(message(&*p), "p75 failure 1");
            let mut second = None;
            let r = sylvan::with_timeout(MS, || {
                // Time is the behaviour: the timeout is overdue at the
                // next park, so it fires in the turn of the wake-up timer.
                std::thread::sleep(5 * MS);
                let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(20))))
                    .expect_err("second");
                second = Some(message(&*p));
                sylvan::sleep(Duration::from_secs(20));
            });
            assert_eq!(second.as_deref(), Some("p75 failure 2"));
            assert!(r.is_err(), "the deferred timeout ends the with_timeout");
            let t = Instant::now();
            sylvan::sleep(100 * MS);
            assert!(t.elapsed() >= 100 * MS, "not thrown twice");
        },
    );
}

/// On a spawned thread, main catches the first of three failures and
/// returns: the hub tears down with two queued, dropped without an abort
/// or a panic at thread exit; each failure is printed once (the default
/// policy's report), the dropped ones no more than the raised one.
#[test]
fn sg04_thread_hub_ends_with_failures_queued() {
    let texts = child_texts(
        "probes75::sg04_thread_hub_ends_with_failures_queued",
        "p75-sg04",
        || {
            ignore(libc::SIGUSR2);
            let th = std::thread::spawn(|| {
                let (_h, go) = primed(libc::SIGUSR2, 3);
                go.set();
                let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(20))))
                    .expect_err("first");
                assert_eq!(message(&*p), "p75 failure 1");
            });
            th.join().expect("the thread ends well");
            println!("JOINED");
        },
    );
    if let Some((o, e)) = texts {
        assert!(o.contains("JOINED"), "{o}\n{e}");
        let once = crate::util::count(&e, "p75 failure 1");
        assert!(once >= 1, "{e}");
        for k in 2..=3 {
            assert_eq!(
                crate::util::count(&e, &format!("p75 failure {k}")),
                once,
                "{k}\n{e}"
            );
        }
        assert!(!e.contains("thread exit"), "{e}");
    }
}

sylvan::greenlet_local! {
    static SLOW_DROP: RefCell<Option<SleepsOnDrop>> = RefCell::new(None);
}

/// Sleeps in its destructor, then says so.
struct SleepsOnDrop;

impl Drop for SleepsOnDrop {
    fn drop(&mut self) {
        sylvan::sleep(5 * MS);
        println!("LOCAL DROPPED WHOLE");
    }
}

/// As sg04, with a greenlet-local of main whose destructor sleeps. The
/// teardown clears main's locals (a blocking call of main) before it
/// drops `main_raise`: the queued failure is raised into the destructor,
/// which is cut short, and printed again ("a destructor of main's
/// greenlet-local values panicked at thread exit: p75 failure 2"). The
/// commit means failures left at teardown to be dropped, each reported
/// once already. Fix: take `main_raise` (drop the payloads) before
/// `locals.clear()` in `teardown`, or have `park` skip the raise once
/// main's body has ended.
#[test]
fn sg05_failures_queued_at_thread_exit_spare_mains_locals() {
    let texts = child_texts(
        "probes75::sg05_failures_queued_at_thread_exit_spare_mains_locals",
        "p75-sg05",
        || {
            ignore(libc::SIGUSR2);
            let th = std::thread::spawn(|| {
                let (_h, go) = primed(libc::SIGUSR2, 3);
                SLOW_DROP.with(|s| *s.borrow_mut() = Some(SleepsOnDrop));
                go.set();
                let p = catch_unwind(AssertUnwindSafe(|| sylvan::sleep(Duration::from_secs(20))))
                    .expect_err("first");
                assert_eq!(message(&*p), "p75 failure 1");
            });
            th.join().expect("the thread ends well");
            println!("JOINED");
        },
    );
    if let Some((o, e)) = texts {
        assert!(o.contains("JOINED"), "{o}\n{e}");
        let once = crate::util::count(&e, "p75 failure 1");
        assert_eq!(
            crate::util::count(&e, "p75 failure 2"),
            once,
            "printed again\n{e}"
        );
        assert!(!e.contains("thread exit"), "{e}");
        assert!(o.contains("LOCAL DROPPED WHOLE"), "cut short\n{o}\n{e}");
    }
}
