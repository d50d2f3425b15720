//! Round 49: behaviours from gevent's and greenlet's own test files that
//! earlier rounds never cited. From greenlet: `test_generator_nested.py`
//! and `test_generator_deeply_nested2.py` (generators built from a greenlet
//! and a rendezvous `Channel`: `Genlet` below), `test_gc.py` (what a dead,
//! unstarted, self-referencing or suspended greenlet keeps alive),
//! `test_tracing.py` (switch counts instead of a trace function),
//! `test_contextvars.py` (`greenlet_local!`) and
//! `test_interpreter_shutdown.py` (process exit, `atexit` handlers). From
//! gevent: `test__hub.py` (errors during main's sleep, `Waiter`, the
//! blocking monitor), `test__util.py` (`dump`, `assert_switches`),
//! `testing/timing.py` (every wait with a timeout: the outer timeout is
//! not lost, the wait's own one is kept), `test__destroy.py` (a hub per
//! thread, torn down and made again), `test__close_backend_fd.py`,
//! `test__issue1686.py`, `test__issue230.py`, `test__fork_child_waits.py`
//! and `test__fork_child_greenlets.py` (fork), `test__issue600.py` and
//! `test__monkey_sigchld.py` (children and SIGCHLD), `test__issue6.py`
//! (stdin read in a greenlet), `test__issues461_471.py` (SIGINT while
//! joining), `test__issue1864.py` (subnormal floats), `test__memleak.py`
//! (expired timeouts leave nothing behind), `test__socket_ex.py`,
//! `test__socket_send_memoryview.py`, `test__semaphore.py`'s finalizer
//! case, `test__issue2013.py`, `test__contextvars.py`,
//! `test__core_async.py` and `test___ident.py`.
//!
//! No new bug turned up. Deliberate differences asserted as sylvan
//! documents them: greenlet ids are never reused, a forked child that
//! blocks runs copies of the parent's greenlets (gevent issues 2202/2204
//! now forbid that), a hub whose epoll descriptor was closed behind its
//! back panics clearly at its next wait.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sylvan::net::{TcpListener, TcpStream};
use sylvan::os::{Fd, wait_child};
use sylvan::sync::{AsyncResult, BoundedSemaphore, Channel, Event, GetError};
use sylvan::{Builder, ErrorPolicy, WaitKind};

use crate::util::{DropFlag, bounded, child_command, in_child, is_child, yield_until};

// ------------------------------------------------------------ genlets

/// greenlet's `genlet`: a generator whose body runs in a greenlet of its
/// own and hands each value over a rendezvous [`Channel`]; the consumer's
/// `next` is a `get`, so the body runs only while the consumer waits for a
/// value, as a genlet's body runs only between `switch`es. Dropping it
/// early kills the body where it is parked, as collecting a suspended
/// genlet throws `GreenletExit` into it.
struct Genlet<T: 'static> {
    ch: Rc<Channel<T>>,
    body: Option<sylvan::Greenlet<()>>,
}

/// What a genlet's body yields through: greenlet's `Yield(value)`.
struct Yielder<T>(Rc<Channel<T>>);

impl<T> Clone for Yielder<T> {
    fn clone(&self) -> Self {
        Yielder(self.0.clone())
    }
}

impl<T> Yielder<T> {
    fn yield_(&self, v: T) {
        // Err only once the consumer is gone; the body is killed then.
        let _ = self.0.put(v);
    }
}

/// Closes the channel when the body ends, however it ends.
struct CloseOnDrop<T>(Rc<Channel<T>>);

impl<T> Drop for CloseOnDrop<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn genlet<T: 'static>(f: impl FnOnce(&Yielder<T>) + 'static) -> Genlet<T> {
    let ch = Rc::new(Channel::new());
    let y = Yielder(ch.clone());
    let body = sylvan::spawn(move || {
        let _close = CloseOnDrop(y.0.clone());
        f(&y);
    });
    Genlet {
        ch,
        body: Some(body),
    }
}

impl<T> Iterator for Genlet<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.ch.get()
    }
}

impl<T> Drop for Genlet<T> {
    fn drop(&mut self) {
        if let Some(g) = self.body.take() {
            g.kill();
        }
    }
}

type Seen = Rc<RefCell<Vec<u32>>>;

/// greenlet test_generator_nested.py `test_genlet_simple`: a genlet that
/// yields from its own loop (g2) and one that yields from a nested function
/// call (g3, which a stackless generator cannot do) both interleave with
/// their consumer exactly like a Python generator (g1): the body appends
/// `i + 1` before yielding `i`, the consumer appends what it got.
#[test]
fn genlet_simple_interleaves_like_a_generator() {
    bounded(|| {
        fn g1(n: u32, seen: Seen) -> impl Iterator<Item = u32> {
            (0..n).inspect(move |i| seen.borrow_mut().push(i + 1))
        }
        fn g2(n: u32, seen: Seen) -> Genlet<u32> {
            genlet(move |y| {
                for i in 0..n {
                    seen.borrow_mut().push(i + 1);
                    y.yield_(i);
                }
            })
        }
        fn nested(y: &Yielder<u32>, i: u32) {
            y.yield_(i);
        }
        fn g3(n: u32, seen: Seen) -> Genlet<u32> {
            genlet(move |y| {
                for i in 0..n {
                    seen.borrow_mut().push(i + 1);
                    nested(y, i);
                }
            })
        }
        let expected: Vec<u32> = [1, 0, 2, 1, 3, 2, 4, 3, 5, 4].repeat(3);
        let seen = Seen::default();
        for _ in 0..3 {
            for j in g1(5, seen.clone()) {
                seen.borrow_mut().push(j);
            }
        }
        assert_eq!(*seen.borrow(), expected, "the plain iterator");
        for make in [g2 as fn(u32, Seen) -> Genlet<u32>, g3] {
            let seen = Seen::default();
            for _ in 0..3 {
                for j in make(5, seen.clone()) {
                    seen.borrow_mut().push(j);
                }
            }
            assert_eq!(*seen.borrow(), expected);
        }
    });
}

fn ax(n: u32) -> Genlet<u32> {
    genlet(move |y| {
        if n == 0 {
            return;
        }
        for ii in ax(n - 1) {
            y.yield_(ii);
        }
        y.yield_(n);
    })
}

/// greenlet test_generator_nested.py `test_nested_genlets`: a genlet that
/// iterates a genlet of its own (recursively, five deep) relays its values
/// in order.
#[test]
fn nested_genlets_relay_in_order() {
    bounded(|| {
        assert_eq!(ax(5).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    });
}

/// greenlet test_generator_nested.py `test_layered_genlets`: `Yield(v, 2)`
/// yields past the immediate consumer to *its* consumer. Here the inner
/// genlet is handed its consumer's yielder; values reach the two levels in
/// the same interleaving as greenlet's.
#[test]
fn layered_genlets_yield_two_levels_up() {
    bounded(|| {
        fn gr1(n: u32, up: Yielder<u32>) -> Genlet<u32> {
            genlet(move |y| {
                for ii in 1..n {
                    y.yield_(ii);
                    up.yield_(ii * ii);
                }
            })
        }
        fn gr2(n: u32, seen: Seen) -> Genlet<u32> {
            genlet(move |y| {
                for ii in gr1(n, y.clone()) {
                    seen.borrow_mut().push(ii);
                }
            })
        }
        let seen = Seen::default();
        for ii in gr2(5, seen.clone()) {
            seen.borrow_mut().push(ii);
        }
        assert_eq!(*seen.borrow(), [1, 1, 2, 4, 3, 9, 4, 16]);
    });
}

fn perms(l: Vec<u32>) -> Genlet<Vec<u32>> {
    genlet(move |y| {
        if l.len() > 1 {
            for &e in &l {
                let rest: Vec<u32> = l.iter().copied().filter(|&x| x != e).collect();
                for p in perms(rest) {
                    let mut v = vec![e];
                    v.extend(p);
                    y.yield_(v);
                }
            }
        } else {
            y.yield_(l.clone());
        }
    })
}

/// greenlet test_generator_nested.py `test_permutations`: a recursive
/// genlet (65 greenlets for four items) gives all 24 permutations in
/// order, and two of them zipped advance in lock step; the longer one,
/// dropped when the shorter ends, is killed with the genlets nested in it.
#[test]
fn recursive_genlet_permutations() {
    bounded(|| {
        let all: Vec<Vec<u32>> = perms((0..4).collect()).collect();
        assert_eq!(all.len(), 24);
        assert!(all.contains(&vec![0, 1, 2, 3]));
        assert!(all.contains(&vec![3, 2, 1, 0]));
        let res: Vec<(Vec<u32>, Vec<u32>)> = perms((0..4).collect())
            .zip(perms((0..3).collect()))
            .collect();
        let expected: Vec<(Vec<u32>, Vec<u32>)> = vec![
            (vec![0, 1, 2, 3], vec![0, 1, 2]),
            (vec![0, 1, 3, 2], vec![0, 2, 1]),
            (vec![0, 2, 1, 3], vec![1, 0, 2]),
            (vec![0, 2, 3, 1], vec![1, 2, 0]),
            (vec![0, 3, 1, 2], vec![2, 0, 1]),
            (vec![0, 3, 2, 1], vec![2, 1, 0]),
        ];
        assert_eq!(res, expected);
        // the abandoned genlets go away: nothing is left alive but bounded's
        // own bookkeeping (no greenlet of its own)
        yield_until("abandoned genlets die", || sylvan::stats().alive == 0);
    });
}

/// greenlet test_generator_nested.py `test_genlet_bad`: `Yield` outside a
/// genlet raises `RuntimeError`. sylvan has no parent to yield to; the
/// nearest mistake, main putting on a channel nobody will ever read,
/// panics with "would block forever" instead of hanging (documented), and
/// the hub serves genlets normally afterwards. Not under `bounded`: its
/// timer would count as something that could wake main.
#[test]
fn yield_outside_a_genlet_panics_instead_of_hanging() {
    let y = Yielder(Rc::new(Channel::new()));
    let err = catch_unwind(AssertUnwindSafe(|| y.yield_(10))).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("would block forever"), "{msg}");
    assert_eq!(ax(3).collect::<Vec<_>>(), [1, 2, 3]);
}

fn hanoi(n: u32, a: char, b: char, c: char) -> Genlet<String> {
    genlet(move |y| {
        if n > 1 {
            for m in hanoi(n - 1, a, c, b) {
                y.yield_(m);
            }
        }
        y.yield_(format!("{a} -> {c}"));
        if n > 1 {
            for m in hanoi(n - 1, b, a, c) {
                y.yield_(m);
            }
        }
    })
}

/// greenlet test_generator_deeply_nested2.py `test_hanoi`: nested genlets
/// (a greenlet per call) produce the moves of the towers of Hanoi in order.
#[test]
fn hanoi_from_nested_genlets() {
    bounded(|| {
        let moves: Vec<String> = hanoi(3, 'A', 'B', 'C').collect();
        assert_eq!(
            moves,
            [
                "A -> C", "A -> B", "C -> B", "A -> C", "B -> A", "B -> C", "A -> C"
            ]
        );
    });
}

/// greenlet test_generator_deeply_nested2.py `test_make_integer_sequence`
/// and `test_empty_gen`: one genlet runs a trampoline (a heap stack of
/// delegated iterators, `yield from` 2000 deep without recursion) and
/// yields 1..=2000; a genlet whose body yields nothing ends the consumer's
/// loop at once.
#[test]
fn trampoline_genlet_and_empty_genlet() {
    bounded(|| {
        enum Step {
            Value(u32),
            From(u32),
        }
        fn make_integer_sequence(n: u32) -> std::vec::IntoIter<Step> {
            let mut v = Vec::new();
            if n > 1 {
                v.push(Step::From(n - 1));
            }
            v.push(Step::Value(n));
            v.into_iter()
        }
        let g = genlet(|y| {
            let mut stack = vec![make_integer_sequence(2000)];
            while let Some(top) = stack.last_mut() {
                match top.next() {
                    Some(Step::Value(v)) => y.yield_(v),
                    Some(Step::From(n)) => stack.push(make_integer_sequence(n)),
                    None => {
                        stack.pop();
                    }
                }
            }
        });
        assert_eq!(g.collect::<Vec<_>>(), (1..=2000).collect::<Vec<_>>());
        let empty = genlet::<u32>(|_| {});
        assert_eq!(
            empty.count(),
            0,
            "empty generator should not yield anything"
        );
    });
}

/// greenlet test_gc.py `test_finalizer_crash` (a suspended greenlet that
/// holds an object with a finalizer catches `GreenletExit` and runs its
/// `finally` when it is collected): an abandoned genlet is killed at its
/// `put`; its body sees the kill (a payload `is_unwind_payload` accepts),
/// its destructors run before the drop returns, and it re-raises.
#[test]
fn abandoned_genlet_sees_greenlet_exit_and_runs_destructors() {
    bounded(|| {
        let log = crate::util::Log::default();
        let drops = Rc::new(Cell::new(0));
        let (l, d) = (log.clone(), drops.clone());
        let mut g = genlet(move |y| {
            let _object = DropFlag(d);
            let r = catch_unwind(AssertUnwindSafe(|| {
                for i in 0.. {
                    y.yield_(i);
                }
            }));
            if let Err(p) = r {
                l.push(format!("got exit: {}", sylvan::is_unwind_payload(&*p)));
                resume_unwind(p);
            }
        });
        assert_eq!((g.next(), g.next(), g.next()), (Some(0), Some(1), Some(2)));
        drop(g);
        assert_eq!(log.take(), ["got exit: true"]);
        assert_eq!(drops.get(), 1);
    });
}

// ------------------------------------------------------------ test_gc

/// greenlet test_gc.py `test_dead_circular_ref`: nothing keeps a dead
/// greenlet's things alive. What the body captured is dropped when the body
/// ends (the handle still alive); the returned value is kept for `join`
/// and dropped with the handle when nobody joins.
#[test]
fn dead_greenlet_keeps_nothing_alive() {
    bounded(|| {
        let captured = Rc::new("captured");
        let returned = Rc::new("returned");
        let (wc, wr) = (Rc::downgrade(&captured), Rc::downgrade(&returned));
        let g = sylvan::spawn(move || {
            let _c = captured;
            returned
        });
        assert!(g.wait(None));
        assert!(wc.upgrade().is_none(), "the body's captures outlived it");
        assert!(wr.upgrade().is_some(), "the value is kept for join");
        drop(g);
        assert!(
            wr.upgrade().is_none(),
            "an unjoined value outlived its handle"
        );
    });
}

/// greenlet test_gc.py `test_inactive_ref`: a raw greenlet never switched
/// to is simply collected. A spawned greenlet is scheduled, as gevent's
/// `spawn`: dropping its handle before it starts detaches it (documented:
/// "dropping it detaches (the greenlet runs on)"), so it still runs, and
/// what it captured is freed when it ends.
#[test]
fn unstarted_greenlet_whose_handle_is_dropped_still_runs() {
    bounded(|| {
        let ran = Rc::new(Cell::new(false));
        let token = Rc::new(());
        let w = Rc::downgrade(&token);
        let r = ran.clone();
        let g = sylvan::spawn(move || {
            let _t = token;
            r.set(true);
        });
        assert!(!g.is_started());
        drop(g);
        assert!(w.upgrade().is_some());
        sylvan::yield_now();
        assert!(ran.get());
        assert!(w.upgrade().is_none());
    });
}

/// greenlet test_gc.py `test_finalizer_crash`, at thread exit: a greenlet
/// suspended for good while it holds an object with a destructor gets the
/// kill when its thread ends; it sees `GreenletExit` (an unwind payload),
/// its `finally` and the destructor run, and the thread exits normally.
#[test]
fn suspended_greenlet_is_unwound_at_thread_exit() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        struct Object(Arc<Mutex<Vec<String>>>);
        impl Drop for Object {
            fn drop(&mut self) {
                self.0.lock().unwrap().push("object dropped".into());
            }
        }
        let l2 = l.clone();
        let _g = sylvan::spawn(move || {
            let _object = Object(l2.clone());
            let r = catch_unwind(|| sylvan::sleep(Duration::from_secs(3600)));
            if let Err(p) = r {
                l2.lock()
                    .unwrap()
                    .push(format!("got exit: {}", sylvan::is_unwind_payload(&*p)));
                resume_unwind(p);
            }
        });
        sylvan::yield_now();
        l.lock().unwrap().push("thread returns".into());
    })
    .join()
    .expect("the thread exits normally");
    assert_eq!(
        *log.lock().unwrap(),
        ["thread returns", "got exit: true", "object dropped"]
    );
}

// ------------------------------------------------------------ test_tracing

/// greenlet test_tracing.py `test_a_greenlet_tracing` records each switch
/// into and out of a greenlet. sylvan has no trace hook; `dump` counts the
/// times the hub resumed each greenlet: a greenlet that started, yielded
/// twice and parked on an event was resumed three times.
#[test]
fn dump_counts_each_resume_of_a_greenlet() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let e = ev.clone();
        let g = sylvan::spawn(move || {
            sylvan::yield_now();
            sylvan::yield_now();
            e.wait();
        });
        let id = g.id();
        let info = || {
            sylvan::dump()
                .greenlets
                .into_iter()
                .find(|i| i.id == id)
                .expect("g is alive")
        };
        yield_until("g parks on the event", || {
            matches!(info().wait, WaitKind::Sync(_))
        });
        assert_eq!(info().switches, 3);
        ev.set();
        g.join().unwrap();
    });
}

// ------------------------------------------------------------ test_contextvars

sylvan::greenlet_local! {
    static ID_VAR: Cell<Option<u32>> = const { Cell::new(None) };
}

/// greenlet test_contextvars.py `test_context_not_propagated`: main sets
/// the variable to 0; four greenlets each start with the default (nothing
/// is inherited from the spawner), set their own id and keep it across
/// switches; every id is counted exactly twice. (The "share", "set" and
/// "run" variants need a greenlet's context as a value to hand around,
/// which `greenlet_local!` does not offer.)
#[test]
fn greenlet_locals_are_not_propagated_and_survive_switches() {
    bounded(|| {
        ID_VAR.with(|v| v.set(Some(0)));
        let counts: Rc<RefCell<HashMap<u32, u32>>> =
            Rc::new(RefCell::new((0..5).map(|i| (i, 0)).collect()));
        let bump = |c: &RefCell<HashMap<u32, u32>>| {
            let id = ID_VAR.with(|v| v.get()).expect("set");
            *c.borrow_mut().get_mut(&id).unwrap() += 1;
        };
        let lets: Vec<_> = (1..5)
            .map(|i| {
                let c = counts.clone();
                sylvan::spawn(move || {
                    assert_eq!(ID_VAR.with(|v| v.get()), None, "inherited");
                    ID_VAR.with(|v| v.set(Some(i)));
                    for _ in 0..2 {
                        bump(&c);
                        sylvan::yield_now();
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            bump(&counts);
            sylvan::yield_now();
        }
        assert!(sylvan::joinall(&lets, None));
        for g in lets {
            g.join().unwrap();
        }
        assert!(counts.borrow().values().all(|&n| n == 2), "{counts:?}");
        assert_eq!(ID_VAR.with(|v| v.get()), Some(0));
    });
}

// ------------------------------------------------------------ test__util

/// gevent test__util.py `TestFormat.test_basic` / `test_with_Greenlet`:
/// `format_run_info` run from a greenlet named "Printer" lists it by name
/// with where it was spawned, and main. sylvan's `dump` (documented) does
/// the same; it lists live greenlets only (gevent's tree also shows
/// finished ones), so a greenlet that already ended is not in it.
#[test]
fn dump_from_a_named_greenlet_lists_it_and_main() {
    bounded(|| {
        let done = sylvan::spawn(|| ());
        let done_id = done.id();
        done.join().unwrap();
        let g = Builder::new()
            .name("Printer")
            .spawn(|| sylvan::dump().to_string())
            .unwrap();
        let printer_id = g.id();
        let text = g.join().unwrap();
        assert!(text.contains("greenlet(s) on this hub"), "{text}");
        let row = text
            .lines()
            .find(|l| l.contains("Printer"))
            .unwrap_or_else(|| panic!("no Printer row:\n{text}"));
        assert!(row.contains("running"), "{row}");
        assert!(row.contains("probes49.rs"), "{row}");
        assert!(row.contains(&printer_id.to_string()), "{row}");
        assert!(text.lines().any(|l| l.contains("main")), "{text}");
        assert!(
            !text.contains(&format!("{done_id} ")),
            "a dead greenlet is listed:\n{text}"
        );
    });
}

/// gevent test__util.py `TestAssertSwitches.test_time_sleep`: a real
/// blocking call (`std::thread::sleep`) makes no switch, while a green
/// `sleep(0)` goes through the hub; sylvan's counters show both.
#[test]
fn blocking_sleep_makes_no_switch_green_sleep_zero_does() {
    bounded(|| {
        let s0 = sylvan::stats().switches;
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(sylvan::stats().switches, s0);
        sylvan::sleep(Duration::ZERO);
        assert!(sylvan::stats().switches > s0, "sleep(0) did not switch");
        let s1 = sylvan::stats().switches;
        sylvan::yield_now();
        assert!(sylvan::stats().switches > s1, "yield_now did not switch");
    });
}

// ------------------------------------------------------------ test__hub

/// gevent test__hub.py `TestExceptionInMainloop.test_sleep`: an error
/// raised by a timer callback while main sleeps is reported, and main's
/// sleep still lasts its delay (within a wide margin), before and after.
#[test]
fn failure_during_main_sleep_neither_cuts_nor_stretches_it() {
    bounded(|| {
        let failures = Rc::new(RefCell::new(Vec::<String>::new()));
        let f = failures.clone();
        sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |fl| {
            f.borrow_mut().push(fl.error.to_string());
        })));
        let delay = Duration::from_millis(100);
        let timed_sleep = || {
            let t = Instant::now();
            sylvan::sleep(delay);
            t.elapsed()
        };
        let d = timed_sleep();
        assert!(d >= delay && d < Duration::from_secs(2), "{d:?}");
        let _g = sylvan::spawn_later(Duration::from_millis(1), || -> () {
            panic!("TestExceptionInMainloop.test_sleep/fail")
        });
        let d = timed_sleep();
        assert!(d >= delay && d < Duration::from_secs(2), "{d:?}");
        let fs = failures.borrow();
        assert_eq!(fs.len(), 1, "{fs:?}");
        assert!(fs[0].contains("TestExceptionInMainloop"), "{fs:?}");
    });
}

/// gevent test__hub.py `TestWaiter.test`: a value switched into a waiter
/// before `get` is returned at once; an exception thrown into it is raised
/// by `get`; a greenlet named "AName" blocked in `get` shows by name. The
/// sylvan counterpart of a one-shot `Waiter` is `AsyncResult`: a stored
/// value comes back without switching, a failure comes back as
/// `GetError::Failed`, and `dump` names the greenlet parked in `get`.
#[test]
fn async_result_as_a_one_shot_waiter() {
    bounded(|| {
        let r = AsyncResult::<i32, String>::new();
        r.set(25).unwrap();
        let s0 = sylvan::stats().switches;
        assert_eq!(r.get(), Ok(25));
        assert_eq!(sylvan::stats().switches, s0, "get of a set result switched");

        let r = AsyncResult::<i32, String>::new();
        r.fail("ZeroDivisionError".into()).unwrap();
        assert_eq!(r.get(), Err(GetError::Failed("ZeroDivisionError".into())));

        let r = Rc::new(AsyncResult::<i32, String>::new());
        let rc = r.clone();
        let g = Builder::new()
            .name("AName")
            .spawn(move || rc.get())
            .unwrap();
        sylvan::sleep(Duration::ZERO);
        let d = sylvan::dump();
        let info = d
            .greenlets
            .iter()
            .find(|i| i.name.as_deref() == Some("AName"))
            .expect("AName is listed");
        assert_eq!(info.state, "suspended");
        assert!(matches!(info.wait, WaitKind::Sync(_)), "{:?}", info.wait);
        assert_eq!(r.waiters(), 1);
        g.kill();
        assert!(g.join().unwrap_err().is_killed());
        assert_eq!(r.waiters(), 0);
    });
}

/// gevent test__hub.py `TestPeriodicMonitoringThread.test_blocking_this_thread`:
/// after at least one switch, a greenlet that blocks the thread with a
/// real sleep three times the threshold is reported as blocking the hub,
/// by name.
#[test]
fn detector_reports_a_greenlet_blocking_this_thread() {
    bounded(|| {
        let reports = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
        let r = reports.clone();
        let det = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), move |rep| {
            r.lock().unwrap().push(rep.name.clone())
        });
        sylvan::sleep(Duration::from_millis(1));
        let seen = reports.clone();
        Builder::new()
            .name("blocker")
            .spawn(move || crate::util::stall_until(|| !seen.lock().unwrap().is_empty()))
            .unwrap()
            .join()
            .unwrap();
        drop(det);
        let reps = reports.lock().unwrap();
        assert!(!reps.is_empty(), "no report");
        assert!(
            reps.iter().all(|n| n.as_deref() == Some("blocker")),
            "{reps:?}"
        );
    });
}

/// gevent test__hub.py
/// `TestPeriodicMonitoringThread.test_blocking_threadpool_thread_one_greenlet`:
/// the thread pool is meant to run tasks that block, so a pool job that
/// sleeps three times the threshold is not reported, nor is the hub that
/// waits for it (an idle hub waiting in poll is never reported,
/// documented).
#[test]
fn detector_does_not_report_a_blocking_pool_job() {
    bounded(|| {
        let reports = Arc::new(AtomicU32::new(0));
        let r = reports.clone();
        let det = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), move |_| {
            r.fetch_add(1, Ordering::Relaxed);
        });
        sylvan::sleep(Duration::from_millis(1));
        sylvan::spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)));
        drop(det);
        assert_eq!(reports.load(Ordering::Relaxed), 0);
    });
}

/// gevent test__hub.py
/// `TestPeriodicMonitoringThread.test_blocking_threadpool_thread_multi_greenlet`:
/// a second thread with a hub of its own and greenlets that switch is
/// watched like any other: a greenlet there that blocks its thread is
/// reported, with that thread's name.
#[test]
fn detector_on_another_threads_hub_reports_that_thread() {
    let reports = Arc::new(Mutex::new(Vec::<(Option<String>, Option<String>)>::new()));
    let r = reports.clone();
    std::thread::Builder::new()
        .name("worker-hub".into())
        .spawn(move || {
            bounded(|| {
                let det = sylvan::BlockingDetector::with_callback(
                    Duration::from_millis(50),
                    move |rep| {
                        r.lock()
                            .unwrap()
                            .push((rep.thread.clone(), rep.name.clone()))
                    },
                );
                sylvan::sleep(Duration::from_millis(1));
                let g = Builder::new()
                    .name("task")
                    .spawn(|| std::thread::sleep(Duration::from_millis(300)))
                    .unwrap();
                g.join().unwrap();
                drop(det);
            })
        })
        .unwrap()
        .join()
        .unwrap();
    let reps = reports.lock().unwrap();
    assert!(!reps.is_empty(), "no report");
    assert!(
        reps.iter()
            .all(|(t, n)| t.as_deref() == Some("worker-hub") && n.as_deref() == Some("task")),
        "{reps:?}"
    );
}

// ------------------------------------------------------------ test__destroy

/// gevent test__destroy.py `test_destroy_hub`: a hub destroyed and asked
/// for again is a working new one. sylvan's hub is made per thread on
/// first use and destroyed at thread exit (documented); a thread-local
/// whose destructor runs after that (first used before any sylvan call)
/// may still use sylvan: a second hub serves it, fresh, and is torn down in
/// turn. Each new thread starts with a fresh hub too.
#[test]
fn hub_recreated_after_teardown_and_per_thread() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    struct Late(RefCell<Option<Arc<Mutex<Vec<String>>>>>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some(log) = self.0.borrow_mut().take() {
                let st = sylvan::stats();
                let v = sylvan::spawn(|| 7).join().unwrap();
                log.lock()
                    .unwrap()
                    .push(format!("late: spawned {} value {v}", st.spawned));
            }
        }
    }
    thread_local! {
        static LATE: Late = const { Late(RefCell::new(None)) };
    }
    for round in 0..2 {
        let l = log.clone();
        std::thread::spawn(move || {
            LATE.with(|late| *late.0.borrow_mut() = Some(l.clone()));
            let st = sylvan::stats();
            assert_eq!((st.spawned, st.alive), (0, 0), "round {round}: not fresh");
            let _parked = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(3600)));
            assert_eq!(sylvan::spawn(move || round).join().unwrap(), round);
            l.lock().unwrap().push(format!("round {round} done"));
        })
        .join()
        .expect("thread exits normally");
    }
    assert_eq!(
        *log.lock().unwrap(),
        [
            "round 0 done",
            "late: spawned 0 value 7",
            "round 1 done",
            "late: spawned 0 value 7"
        ]
    );
}

// ------------------------------------------------------------ fork

/// Waits for `pid` without blocking the hub (a 5 ms poll), killing it
/// after `limit`: its wait status, or `None` if it had to be killed.
fn wait_pid(pid: libc::pid_t, limit: Duration) -> Option<libc::c_int> {
    let t = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "{}", std::io::Error::last_os_error());
        if r == pid {
            return Some(status);
        }
        if t.elapsed() > limit {
            // SAFETY: kill and reap our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        sylvan::sleep(Duration::from_millis(5));
    }
}

/// gevent test__issue1686.py: fork while a greenlet is scheduled but has
/// not run, with its data ready in a pipe; the child leaves at once (gevent
/// destroys its hub there) without running it, and the parent's greenlet
/// runs exactly once and reads the data. (sylvan has no `destroy`: a child
/// that kept going would run the greenlet too, as its hub carries on after
/// a fork, documented.)
#[test]
fn fork_with_a_scheduled_greenlet() {
    in_child(
        "probes49::fork_with_a_scheduled_greenlet",
        "p49-fork1686",
        || {
            let (r, mut w) = std::io::pipe().unwrap();
            w.write_all(b"test").unwrap();
            let mut r = Fd::new(r).unwrap();
            let run = Rc::new(Cell::new(0));
            let rn = run.clone();
            let reader = sylvan::spawn(move || {
                rn.set(rn.get() + 1);
                let mut buf = [0u8; 4096];
                let n = r.read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            // SAFETY: the child only calls async-signal-safe `_exit`.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let code = if run.get() == 0 { 0 } else { 3 };
                // SAFETY: leaves the forked child at once.
                unsafe { libc::_exit(code) };
            }
            // "hang(0.5)": keep the loop from spinning for a moment
            std::thread::sleep(Duration::from_millis(50));
            let status = wait_pid(pid, Duration::from_secs(3)).expect("child hung");
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{status:#x}"
            );
            assert_eq!(reader.join().unwrap(), b"test");
            assert_eq!(run.get(), 1);
        },
    );
}

/// gevent test__issue230.py: resolving a name in a forked child after the
/// parent resolved one does not hang. sylvan resolves on its thread pool;
/// after a fork the child's pool starts threads of its own (documented).
#[test]
fn resolver_works_in_a_forked_child() {
    in_child(
        "probes49::resolver_works_in_a_forked_child",
        "p49-fork230",
        || {
            let addrs = sylvan::net::lookup_host(("localhost", 8001)).unwrap();
            assert!(!addrs.is_empty());
            // SAFETY: the child runs only this greenlet's code, then `_exit`s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let ok = sylvan::with_timeout(Duration::from_secs(3), || {
                    sylvan::net::lookup_host(("localhost", 8001)).map(|a| !a.is_empty())
                });
                let code = if matches!(ok, Ok(Ok(true))) { 0 } else { 3 };
                // SAFETY: leaves the forked child without running the
                // parent's destructors.
                unsafe { libc::_exit(code) };
            }
            let status = wait_pid(pid, Duration::from_secs(4)).expect("child hung");
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{status:#x}"
            );
        },
    );
}

// ------------------------------------------------------------ processes

/// gevent test__issue600.py: gevent's child watchers must not break
/// `waitpid` on other processes. `wait_child` waits through a pidfd for its
/// own child only: another child, waited for by std's `Child::wait` on the
/// thread pool at the same time, is still there to be reaped and exits 0.
#[test]
fn wait_child_does_not_reap_other_children() {
    bounded(|| {
        let mut mine = Command::new("true").spawn().unwrap();
        let mut other = Command::new("sleep").arg("0.05").spawn().unwrap();
        let by_std = sylvan::spawn(move || sylvan::spawn_blocking(move || other.wait()));
        let st = wait_child(&mut mine).unwrap();
        assert!(st.success(), "{st}");
        let st = by_std.join().unwrap().expect("std's wait");
        assert!(st.success(), "{st}");
    });
}

/// gevent test__issue6.py: a child process whose greenlet reads a line from
/// stdin (a pipe) and prints its length: "hello world\n" gives "11 chars.".
/// Here the child wraps its stdin in `sylvan::os::Fd`.
#[test]
fn child_reads_stdin_in_a_greenlet() {
    const PATH: &str = "probes49::child_reads_stdin_in_a_greenlet";
    const NAME: &str = "p49-issue6";
    if is_child(NAME) {
        bounded(|| {
            let stdin = Fd::new(std::io::stdin()).unwrap();
            let g = sylvan::spawn(move || {
                let mut line = String::new();
                BufReader::new(stdin).read_line(&mut line).unwrap();
                println!("{} chars.", line.trim_end().len());
            });
            g.join().unwrap();
        });
        println!("PROBE ok");
        return;
    }
    bounded(|| {
        let mut child = child_command(PATH, NAME)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = Fd::new(child.stdin.take().unwrap()).unwrap();
        stdin.write_all(b"hello world\n").unwrap();
        drop(stdin);
        let out = sylvan::spawn_blocking(move || child.wait_with_output()).unwrap();
        let (o, e) = crate::util::texts(&out);
        assert!(out.status.success(), "{o}\n{e}");
        assert!(
            o.contains("11 chars.") && o.contains("PROBE ok"),
            "{o}\n{e}"
        );
    });
}

/// gevent test__issues461_471.py: Ctrl-C in a process whose main waits for
/// a greenlet sleeping 30 s makes it exit promptly with status 0 (gevent
/// raises `KeyboardInterrupt` in main). sylvan delivers signals to a
/// handler greenlet (documented), so the child installs a SIGINT handler
/// that kills the sleeper; main's wait returns and the process exits 0.
#[test]
fn sigint_while_main_waits_for_a_sleeper() {
    const PATH: &str = "probes49::sigint_while_main_waits_for_a_sleeper";
    const NAME: &str = "p49-sigint";
    if is_child(NAME) {
        // not under `bounded`: the parent kills this child if it hangs
        let task = Rc::new(sylvan::spawn(|| sylvan::sleep(Duration::from_secs(30))));
        let t = task.clone();
        let _h = sylvan::signal(libc::SIGINT, move || t.kill_nowait()).unwrap();
        println!("ready");
        std::io::stdout().flush().unwrap();
        assert!(task.wait(None));
        println!("PROBE ok");
        return;
    }
    bounded(|| {
        let mut child = child_command(PATH, NAME)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = Fd::new(child.stdout.take().unwrap()).unwrap();
        let mut lines = BufReader::new(out).lines();
        let ready = lines
            .by_ref()
            .take(50)
            .any(|l| l.map(|l| l.trim_end().ends_with("ready")).unwrap_or(false));
        assert!(ready, "the child never said ready");
        let pid = child.id() as libc::pid_t;
        // SAFETY: sends SIGINT to our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let st = sylvan::with_timeout(Duration::from_secs(3), || wait_child(&mut child));
        let Ok(st) = st else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit after SIGINT");
        };
        assert!(st.unwrap().success());
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(rest.iter().any(|l| l.contains("PROBE ok")), "{rest:?}");
    });
}

// ------------------------------------------------------------ odds and ends

/// gevent test__issue1864.py: importing gevent must not turn subnormal
/// floats off (a `-Ofast` build did, through MXCSR). sylvan's switch does
/// not save MXCSR (documented: it is shared by a thread's greenlets), so
/// check that neither the hub nor a greenlet switch flushes subnormals.
#[test]
fn subnormal_floats_survive_the_hub_and_switches() {
    bounded(|| {
        let tiny = || std::hint::black_box(f64::MIN_POSITIVE) / 2.0;
        let tiny32 = || std::hint::black_box(f32::MIN_POSITIVE) / 2.0;
        sylvan::yield_now();
        assert!(tiny() > 0.0 && tiny32() > 0.0, "main");
        let g = sylvan::spawn(move || {
            let a = tiny() > 0.0;
            sylvan::yield_now();
            a && tiny() > 0.0 && tiny32() > 0.0
        });
        assert!(g.join().unwrap(), "in a greenlet");
        assert!(tiny() > 0.0, "main after the greenlet");
    });
}

/// gevent test__memleak.py: a `Timeout` that expires in `sleep`, fifteen
/// times over, leaves nothing behind (refcounts do not grow). sylvan: each
/// expiry is `Err(Elapsed)` and the hub holds no more timers and no more
/// greenlets than before.
#[test]
fn expired_timeouts_leave_no_timers_behind() {
    bounded(|| {
        let before = sylvan::stats();
        for _ in 0..15 {
            let r = sylvan::with_timeout(Duration::from_millis(10), || {
                sylvan::sleep(Duration::from_millis(100))
            });
            assert!(r.is_err());
            let now = sylvan::stats();
            assert_eq!(now.timers, before.timers);
            assert_eq!(now.alive, before.alive);
        }
    });
}

/// gevent test__socket_ex.py `TestClosedSocket` (`switch_expected =
/// False`): sending on a closed socket fails at once with EBADF, without a
/// switch. A sylvan socket cannot be used after it is closed (ownership);
/// the nearest case, a send after `shutdown(Write)`, fails at once with
/// `BrokenPipe` (as std's, EPIPE) and makes no switch, write timeout or
/// not.
#[test]
fn send_after_shutdown_fails_at_once_without_switching() {
    bounded(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, _) = l.accept().unwrap();
        c.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let s0 = sylvan::stats().switches;
        let e = (&c).write(b"a").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        assert_eq!(sylvan::stats().switches, s0);
    });
}

/// gevent test__issue2013.py `test_gevent_producer_release_wakes_waiters`:
/// a `BoundedSemaphore(1)` held by its owner, two greenlets waiting to
/// acquire and one watcher (`rawlink`; here `sylvan::wait`) registered, so
/// `linkcount() == count + 1`; a release made by another greenlet wakes the
/// watcher exactly once and lets both waiters acquire and release in turn.
#[test]
fn release_by_a_producer_greenlet_wakes_waiters_and_watcher_once() {
    bounded(|| {
        let sem = Rc::new(BoundedSemaphore::new(1));
        sem.acquire().forget();
        let notified = Rc::new(Cell::new(0));
        let resumed = Rc::new(RefCell::new(Vec::new()));
        let (s, n) = (sem.clone(), notified.clone());
        let watcher = sylvan::spawn(move || {
            assert_eq!(sylvan::wait(&[&*s], None, None), [0]);
            n.set(n.get() + 1);
        });
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let (s, r) = (sem.clone(), resumed.clone());
                sylvan::spawn(move || {
                    let _g = s.acquire();
                    r.borrow_mut().push(i);
                })
            })
            .collect();
        yield_until("all registered", || sem.waiters() + sem.watchers() == 2 + 1);
        let s = sem.clone();
        let producer = sylvan::spawn(move || s.release().unwrap());
        producer.join().unwrap();
        assert!(sylvan::joinall(&waiters, Some(Duration::from_secs(2))));
        watcher.join().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(notified.get(), 1);
        assert_eq!(*resumed.borrow(), [0, 1]);
        assert_eq!(sem.available(), 1);
    });
}

/// gevent test___ident.py `test_basic` / `test_circle`: gevent's minimal
/// idents are reused once their greenlet is gone, so they stay small.
/// sylvan's `GreenletId` is documented as unique on its hub for the life of
/// the thread: a deliberate difference, checked here (1000 greenlets, three
/// alive at a time: every id new and increasing).
#[test]
fn greenlet_ids_are_never_reused() {
    bounded(|| {
        let mut keep: Vec<Option<sylvan::Greenlet<()>>> = vec![None, None, None];
        let mut last = sylvan::current();
        for i in 0..1000 {
            let g = sylvan::spawn(|| ());
            assert!(g.id() > last, "{} after {}", g.id(), last);
            last = g.id();
            keep[i % 3] = Some(g);
            if i % 50 == 0 {
                sylvan::yield_now();
            }
        }
        drop(keep);
        sylvan::yield_now();
    });
}

// ------------------------------------------------------------ timing.py

/// One wait of the table below: performs a wait that nothing satisfies,
/// bounded by its own timeout `d`, and says whether it reported that
/// timeout the way its docs say.
type TimedWait = Box<dyn Fn(Duration) -> bool>;

/// Every wait that takes a timeout (or none: `spawn_blocking`,
/// `wait_child`, `accept`), each set up so that nothing will satisfy it.
/// Returns the cases and what must outlive them.
fn timed_waits() -> (Vec<(&'static str, TimedWait)>, Box<dyn std::any::Any>) {
    use sylvan::pool::{Group, Pool};
    use sylvan::sync::{JoinableQueue, Mutex as GMutex, Queue, Semaphore};
    let long = || sylvan::sleep(Duration::from_secs(3600));
    let ev = Rc::new(Event::new());
    let ar = Rc::new(AsyncResult::<u8, String>::new());
    let sleeper = Rc::new(sylvan::spawn(long));
    let sem0 = Rc::new(Semaphore::new(0));
    let bsem = Rc::new(BoundedSemaphore::new(1));
    bsem.acquire().forget();
    let mutex = Rc::new(GMutex::new(0u8));
    let held = Rc::new(RefCell::new(None::<sylvan::Greenlet<()>>));
    {
        let m = mutex.clone();
        *held.borrow_mut() = Some(sylvan::spawn(move || {
            let _g = m.lock();
            sylvan::sleep(Duration::from_secs(3600));
        }));
    }
    let q = Rc::new(Queue::<u8>::unbounded());
    let full = Rc::new(Queue::<u8>::bounded(1));
    full.put(1).unwrap();
    let ch = Rc::new(Channel::<u8>::new());
    let jq = Rc::new(JoinableQueue::<u8>::unbounded());
    jq.put(1).unwrap();
    let pool = Rc::new(Pool::new(1));
    let _busy = pool.spawn(long);
    let group = Rc::new(Group::new());
    let _gbusy = group.spawn(long);
    let stubborn = Rc::new(sylvan::spawn(|| {
        let _ = catch_unwind(|| sylvan::sleep(Duration::from_secs(3600)));
        sylvan::sleep(Duration::from_secs(3600));
    }));
    let (l, backlog, c) = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        // `l` keeps `c` in its backlog; accept waits on a listener of its own
        (TcpListener::bind("127.0.0.1:0").unwrap(), l, Rc::new(c))
    };
    let l = Rc::new(l);
    let udp = Rc::new(sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let (pr, pw) = std::io::pipe().unwrap();
    let pr = Rc::new(RefCell::new(Fd::new(pr).unwrap()));
    let (tx, rx) = sylvan::mpsc::channel::<u8>();
    let rx = Rc::new(rx);

    let mut v: Vec<(&'static str, TimedWait)> = Vec::new();
    v.push((
        "sleep",
        Box::new(|d| {
            sylvan::sleep(d);
            true
        }),
    ));
    v.push((
        "sleep_until",
        Box::new(|d| {
            sylvan::sleep_until(Instant::now() + d);
            true
        }),
    ));
    let e = ev.clone();
    v.push(("Event::wait_timeout", Box::new(move |d| !e.wait_timeout(d))));
    let e = ev.clone();
    v.push((
        "Event::wait_deadline",
        Box::new(move |d| !e.wait_deadline(Instant::now() + d)),
    ));
    let a = ar.clone();
    v.push((
        "AsyncResult::get_timeout",
        Box::new(move |d| a.get_timeout(d) == Err(GetError::TimedOut)),
    ));
    let s = sleeper.clone();
    v.push(("Greenlet::wait", Box::new(move |d| !s.wait(Some(d)))));
    let s = stubborn.clone();
    v.push((
        "Greenlet::kill_timeout (survivor)",
        Box::new(move |d| !s.kill_timeout(d)),
    ));
    let e = ev.clone();
    v.push((
        "sylvan::wait",
        Box::new(move |d| sylvan::wait(&[&*e], Some(d), None).is_empty()),
    ));
    let e = ev.clone();
    v.push((
        "sylvan::iwait",
        Box::new(move |d| sylvan::iwait(&[&*e], Some(d)).next().is_none()),
    ));
    let s = sem0.clone();
    v.push((
        "Semaphore::acquire_timeout",
        Box::new(move |d| s.acquire_timeout(d).is_none()),
    ));
    let s = bsem.clone();
    v.push((
        "BoundedSemaphore::acquire_timeout",
        Box::new(move |d| s.acquire_timeout(d).is_none()),
    ));
    let m = mutex.clone();
    v.push((
        "Mutex::lock_timeout",
        Box::new(move |d| m.lock_timeout(d).is_none()),
    ));
    let qq = q.clone();
    v.push((
        "Queue::get_timeout",
        Box::new(move |d| qq.get_timeout(d).is_err()),
    ));
    let qq = q.clone();
    v.push((
        "Queue::peek_timeout",
        Box::new(move |d| qq.peek_timeout(d).is_err()),
    ));
    let f = full.clone();
    v.push((
        "Queue::put_timeout (full)",
        Box::new(move |d| f.put_timeout(2, d).is_err()),
    ));
    let cc = ch.clone();
    v.push((
        "Channel::get_timeout",
        Box::new(move |d| cc.get_timeout(d).is_err()),
    ));
    let cc = ch.clone();
    v.push((
        "Channel::put_timeout",
        Box::new(move |d| cc.put_timeout(1, d).is_err()),
    ));
    let j = jq.clone();
    v.push((
        "JoinableQueue::join_timeout",
        Box::new(move |d| !j.join_timeout(d)),
    ));
    let p = pool.clone();
    v.push((
        "Pool::wait_available",
        Box::new(move |d| p.wait_available(Some(d)) == 0),
    ));
    let p = pool.clone();
    v.push(("Pool::join_timeout", Box::new(move |d| !p.join_timeout(d))));
    let g = group.clone();
    v.push(("Group::join_timeout", Box::new(move |d| !g.join_timeout(d))));
    v.push(("wait_all", Box::new(|d| !sylvan::wait_all(Some(d)))));
    let cs = c.clone();
    v.push((
        "TcpStream read (read timeout)",
        Box::new(move |d| {
            cs.set_read_timeout(Some(d)).unwrap();
            let r = (&*cs).read(&mut [0u8; 8]);
            matches!(r, Err(e) if e.kind() == std::io::ErrorKind::TimedOut)
        }),
    ));
    let u = udp.clone();
    v.push((
        "UdpSocket recv (read timeout)",
        Box::new(move |d| {
            u.set_read_timeout(Some(d)).unwrap();
            matches!(u.recv(&mut [0u8; 8]), Err(e) if e.kind() == std::io::ErrorKind::TimedOut)
        }),
    ));
    let p = pr.clone();
    v.push((
        "Fd read (read timeout)",
        Box::new(move |d| {
            let p = p.borrow_mut();
            p.set_read_timeout(Some(d)).unwrap();
            let r = p.read_with(|r| (&*r).read(&mut [0u8; 8]));
            matches!(r, Err(e) if e.kind() == std::io::ErrorKind::TimedOut)
        }),
    ));
    let r = rx.clone();
    v.push((
        "mpsc::Receiver::recv_timeout",
        Box::new(move |d| r.recv_timeout(d).is_err()),
    ));
    // no timeout of their own: only the outer one applies
    let ll = l.clone();
    v.push((
        "TcpListener::accept (no timeout)",
        Box::new(move |d| {
            let _ = sylvan::with_timeout(d, || ll.accept());
            true
        }),
    ));
    v.push((
        "spawn_blocking (no timeout)",
        Box::new(|d| {
            let _ = sylvan::with_timeout(d, || {
                sylvan::spawn_blocking(|| std::thread::sleep(Duration::from_millis(300)))
            });
            true
        }),
    ));
    let keep: Box<dyn std::any::Any> = Box::new((
        (ev, ar, sleeper, sem0, bsem, mutex, held),
        (q, full, ch, jq, pool, _busy, group, _gbusy, stubborn),
        (l, backlog, c, udp, pr, pw, tx, rx),
    ));
    (v, keep)
}

/// gevent testing/timing.py `_DelayWaitMixin.test_outer_timeout_is_not_lost`
/// (run by test__hub's `TestSleep`/`TestWaiterGet` and by many more
/// files' wait tests): a `Timeout` of 1 ms armed outside a wait whose own
/// timeout is 1 s is raised from that wait, at once. Checked for every
/// sylvan wait that takes a timeout; and after the outer timeout cut it
/// short, the hub holds no timer more than before the wait (the inner
/// timeout was disarmed, nothing leaks).
#[test]
fn outer_timeout_is_not_lost_in_any_wait() {
    bounded(|| {
        let (cases, _keep) = timed_waits();
        sylvan::yield_now(); // let the helpers park
        let mut bad = Vec::new();
        for (name, wait) in &cases {
            let timers = sylvan::stats().timers;
            let t = Instant::now();
            let r = sylvan::with_timeout(Duration::from_millis(5), || wait(Duration::from_secs(1)));
            let took = t.elapsed();
            if r.is_ok() {
                bad.push(format!("{name}: the outer timeout was lost ({took:?})"));
            } else if took > Duration::from_millis(500) {
                bad.push(format!("{name}: the outer timeout came late ({took:?})"));
            }
            let after = sylvan::stats().timers;
            if after > timers {
                bad.push(format!("{name}: {timers} timers before, {after} after"));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    });
}

/// gevent testing/timing.py `AbstractGenericWaitTestCase.test_returns_none_after_timeout`
/// and `AbstractGenericGetTestCase.test_raises_timeout_number`: a wait
/// whose timeout passes returns (or reports the timeout) after about that
/// long, not before it and not much after, and leaves no timer armed.
#[test]
fn every_wait_returns_after_its_own_timeout() {
    bounded(|| {
        let (cases, _keep) = timed_waits();
        sylvan::yield_now();
        let d = Duration::from_millis(30);
        let mut bad = Vec::new();
        for (name, wait) in cases.iter().filter(|(n, _)| !n.contains("no timeout")) {
            let timers = sylvan::stats().timers;
            let t = Instant::now();
            let ok = wait(d);
            let took = t.elapsed();
            if !ok {
                bad.push(format!("{name}: did not report its timeout"));
            }
            if took < d || took > Duration::from_millis(1000) {
                bad.push(format!("{name}: took {took:?} for a timeout of {d:?}"));
            }
            let after = sylvan::stats().timers;
            if after > timers {
                bad.push(format!("{name}: {timers} timers before, {after} after"));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    });
}

// ------------------------------------------------------------ more test_gc

/// greenlet test_gc.py `test_circular_greenlet`: a greenlet that refers to
/// itself is collected. In sylvan a greenlet whose closure holds its own
/// handle (an `Rc` cycle through the closure) breaks the cycle when its
/// body ends: the closure is dropped then, and the handle with it, from
/// within the dying greenlet.
#[test]
fn greenlet_holding_its_own_handle_is_freed_when_it_ends() {
    bounded(|| {
        let slot: Rc<RefCell<Option<sylvan::Greenlet<u32>>>> = Rc::default();
        let weak = Rc::downgrade(&slot);
        let s = slot.clone();
        let g = sylvan::spawn(move || {
            sylvan::yield_now();
            let me = s.borrow().as_ref().map(|g| g.id());
            assert_eq!(me, Some(sylvan::current()));
            7
        });
        *slot.borrow_mut() = Some(g);
        drop(slot);
        assert!(weak.upgrade().is_some(), "the cycle keeps it");
        yield_until("the greenlet ends", || weak.upgrade().is_none());
        assert_eq!(sylvan::stats().alive, 0);
    });
}

/// gevent test__semaphore.py `test_semaphore_in_class_with_del` (issue
/// 704): an object whose finalizer acquires its own semaphore must not
/// crash when collected. In sylvan a `Drop` that acquires a free permit
/// works in main and in a greenlet, and in a greenlet being killed (the
/// permit is free, so the acquire need not wait).
#[test]
fn drop_that_acquires_its_own_semaphore() {
    bounded(|| {
        use sylvan::sync::Semaphore;
        struct X(Semaphore, Rc<Cell<u32>>);
        impl Drop for X {
            fn drop(&mut self) {
                let _g = self.0.acquire();
                self.1.set(self.1.get() + 1);
            }
        }
        let n = Rc::new(Cell::new(0));
        drop(X(Semaphore::new(1), n.clone()));
        let n2 = n.clone();
        sylvan::spawn(move || drop(X(Semaphore::new(1), n2)))
            .join()
            .unwrap();
        let n3 = n.clone();
        let g = sylvan::spawn(move || {
            let _x = X(Semaphore::new(1), n3);
            sylvan::sleep(Duration::from_secs(3600));
        });
        sylvan::yield_now();
        g.kill();
        assert_eq!(n.get(), 3);
    });
}

// ------------------------------------------------------------ locals and threads

sylvan::greenlet_local! {
    static CVAR: Cell<Option<u32>> = const { Cell::new(None) };
}

/// gevent test__contextvars.py `test_context_threads_1`: ten threads each
/// set a context variable, sleep a little (pseudo-random) and find their own
/// value again. Here each thread runs three greenlets that do the same with
/// one `greenlet_local!` declared once for the process: no value crosses a
/// greenlet or a thread.
#[test]
fn greenlet_local_across_threads_and_greenlets() {
    let threads: Vec<_> = (0..10u32)
        .map(|num| {
            std::thread::spawn(move || {
                bounded(|| {
                    let gs: Vec<_> = (0..3u32)
                        .map(|k| {
                            sylvan::spawn(move || {
                                let mine = num * 100 + k * 10;
                                for i in 0..10 {
                                    CVAR.with(|c| c.set(Some(mine + i)));
                                    let ms = u64::from((num * 7 + k * 3 + i * 5) % 4);
                                    sylvan::sleep(Duration::from_millis(ms));
                                    assert_eq!(CVAR.with(|c| c.get()), Some(mine + i));
                                }
                                num
                            })
                        })
                        .collect();
                    gs.into_iter().map(|g| g.join().unwrap()).sum::<u32>()
                })
            })
        })
        .collect();
    let results: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results, (0..10).map(|n| 3 * n).collect::<Vec<_>>());
}

/// The descriptors of this process that are epoll instances.
fn epoll_fds() -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(t) = std::fs::read_link(e.path())
            && t.to_string_lossy().contains("eventpoll")
        {
            v.push(fd);
        }
    }
    v
}

/// gevent test__close_backend_fd.py: closing the loop's backend
/// descriptor behind its back; gevent expects the epoll backend to go on
/// sleeping. sylvan's hub does not survive it, and says so: the next wait
/// panics with "polling for IO failed: Bad file descriptor" in the waiting
/// greenlet (catchable; no hang, no abort). Asserted as sylvan's behaviour:
/// closing a descriptor one does not own is the program's bug, and a clear
/// panic is the documented answer to a poll that fails.
#[test]
fn hub_whose_epoll_fd_was_closed_behind_its_back() {
    in_child(
        "probes49::hub_whose_epoll_fd_was_closed_behind_its_back",
        "p49-closefd",
        || {
            sylvan::sleep(Duration::from_millis(1));
            let fds = epoll_fds();
            assert!(!fds.is_empty());
            for fd in fds {
                // SAFETY: closes the hub's epoll behind its back, on purpose.
                unsafe { libc::close(fd) };
            }
            let p = catch_unwind(|| sylvan::sleep(Duration::from_millis(1))).unwrap_err();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(
                msg.contains("polling for IO failed") && msg.contains("Bad file descriptor"),
                "{msg}"
            );
        },
    );
}

/// greenlet test_generator_nested.py's consumers advance a genlet with a
/// plain `switch`; a sylvan genlet's consumer may also give up on `next`
/// (a timeout) or be killed while waiting for it. Items handed over a
/// `Channel` are then neither lost nor duplicated (documented: "items are
/// never lost"): 300 values, taken by main with `get_timeout`s of 0-3 ms,
/// by `get`s cut short by an outer `with_timeout`, and by getter
/// greenlets of which every other one is killed, all arrive exactly once.
#[test]
fn channel_handoff_survives_getters_that_give_up_or_die() {
    bounded(|| {
        let ch = Rc::new(Channel::<u32>::new());
        let c = ch.clone();
        let producer = sylvan::spawn(move || {
            let _close = CloseOnDrop(c.clone());
            for i in 0..300 {
                if i % 7 == 0 {
                    sylvan::sleep(Duration::from_millis(1));
                }
                c.put(i).unwrap();
            }
        });
        let mut got = Vec::new();
        let mut done = false;
        for round in 0u64..20_000 {
            if done {
                break;
            }
            match round % 4 {
                0 => match ch.get_timeout(Duration::from_micros((round % 7) * 500)) {
                    Ok(v) => got.push(v),
                    Err(_) => done = ch.is_closed() && producer.is_dead(),
                },
                1 => {
                    if let Ok(Some(v)) =
                        sylvan::with_timeout(Duration::from_micros(700), || ch.get())
                    {
                        got.push(v);
                    }
                }
                _ => {
                    let c = ch.clone();
                    let g = sylvan::spawn(move || c.get());
                    sylvan::yield_now();
                    if round % 8 == 2 {
                        g.kill();
                    }
                    match g.join() {
                        Ok(Some(v)) => got.push(v),
                        Ok(None) => done = true,
                        Err(e) => assert!(e.is_killed(), "{e}"),
                    }
                }
            }
        }
        assert!(done, "the channel never closed");
        producer.join().unwrap();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "duplicates");
        assert_eq!(sorted, (0..300).collect::<Vec<_>>(), "lost items");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    });
}

// ------------------------------------------------------------ fork and copies

/// Runs four workers that each write `worker=N pid=P` lines to an
/// `O_APPEND` file (parked on a 2 ms timer between lines, as in gevent
/// test__fork_child_waits.py), forks `forks` times with `child` as the
/// child's whole life, and returns the pids other than ours that wrote
/// lines: copies of our greenlets run by a child.
fn fork_strangers(forks: usize, child: fn() -> !) -> Vec<u32> {
    let path = std::env::temp_dir().join(format!("sylvan-p49-fork-{}", std::process::id()));
    let file = Rc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap(),
    );
    let stop = Rc::new(Cell::new(false));
    let workers: Vec<_> = (0..4)
        .map(|n| {
            let (f, stop) = (file.clone(), stop.clone());
            sylvan::spawn(move || {
                while !stop.get() {
                    sylvan::sleep(Duration::from_millis(2));
                    let line = format!("worker={n} pid={}\n", std::process::id());
                    // SAFETY: one write(2) of a short line, appended whole.
                    unsafe { libc::write(f.as_raw_fd(), line.as_ptr().cast(), line.len()) };
                }
            })
        })
        .collect();
    sylvan::sleep(Duration::from_millis(20));
    for _ in 0..forks {
        // SAFETY: the child runs `child`, which ends in `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            child();
        }
        let st = wait_pid(pid, Duration::from_secs(3)).expect("child hung");
        assert!(libc::WIFEXITED(st), "{st:#x}");
        sylvan::sleep(Duration::from_millis(5));
    }
    stop.set(true);
    assert!(sylvan::joinall(&workers, Some(Duration::from_secs(2))));
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let me = std::process::id();
    let mut pids: Vec<u32> = text
        .lines()
        .filter_map(|l| l.rsplit_once("pid=").and_then(|(_, p)| p.parse().ok()))
        .filter(|&p| p != me)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// gevent test__fork_child_waits.py (issue 2204) and
/// test__fork_child_greenlets.py (issue 2202): a forked child that does
/// nothing but `_exit(0)` resumes none of the parent's greenlets, parked
/// on timers or queued: no line is written with a child's pid.
#[test]
fn forked_child_that_exits_at_once_runs_no_copies() {
    in_child(
        "probes49::forked_child_that_exits_at_once_runs_no_copies",
        "p49-fork2204",
        || {
            fn child() -> ! {
                // SAFETY: leaves the forked child at once.
                unsafe { libc::_exit(0) }
            }
            assert_eq!(fork_strangers(20, child), Vec::<u32>::new());
        },
    );
}

/// gevent test__fork_child_waits.py (issue 2204) states that "a forked
/// child must not resume greenlets that were blocked at the fork": only the
/// forking greenlet survives, the rest are copies. sylvan deliberately
/// differs (README, fork: "the child's hub carries on ... greenlets parked
/// on IO go on in the child", which serves the pre-fork server): a child
/// that blocks (here a 20 ms `sleep`) before leaving runs copies of the
/// parent's workers, which write lines with the child's pid. Asserted as
/// sylvan's documented behaviour; gevent (since 2202/2204) would find no
/// strangers here.
#[test]
fn forked_child_that_blocks_runs_copies_of_the_parents_greenlets() {
    in_child(
        "probes49::forked_child_that_blocks_runs_copies_of_the_parents_greenlets",
        "p49-fork2204b",
        || {
            fn child() -> ! {
                sylvan::sleep(Duration::from_millis(20));
                // SAFETY: leaves the forked child without the parent's
                // destructors.
                unsafe { libc::_exit(0) }
            }
            let strangers = fork_strangers(3, child);
            assert_eq!(strangers.len(), 3, "{strangers:?}");
        },
    );
}

/// gevent test__socket_send_memoryview.py (issue 466): `send` and
/// `sendall` of a 4-byte structure on a connected UDP socket to a port
/// nobody listens on succeed, with a timeout set or not, each on a fresh
/// socket. sylvan's `UdpSocket::send` takes any byte slice (a `#[repr(C)]`
/// struct's bytes here) and does the same.
#[test]
fn udp_send_of_a_small_struct_to_a_silent_port() {
    bounded(|| {
        #[repr(C)]
        struct AnStructure {
            x: i32,
        }
        let s = AnStructure { x: 0x0102_0304 };
        // SAFETY: a #[repr(C)] struct of one i32 has no padding.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&raw const s).cast::<u8>(),
                std::mem::size_of::<AnStructure>(),
            )
        };
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // free again once this socket is dropped
        for timeout in [None, Some(Duration::from_secs(1))] {
            let sock = sylvan::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.connect(("127.0.0.1", port)).unwrap();
            sock.set_write_timeout(timeout).unwrap();
            assert_eq!(sock.send(bytes).unwrap(), 4, "timeout {timeout:?}");
        }
    });
}

/// gevent test__hub.py `TestPeriodicMonitoringThread.test_kill_removes_trace`:
/// killing the monitor removes its tracing. sylvan: a dropped detector
/// reports nothing more (a block after the drop goes unreported), and a
/// detector started while another runs replaces it (documented): only the
/// new one's callback hears of the next block.
#[test]
fn dropped_or_replaced_detector_reports_nothing_more() {
    bounded(|| {
        let first = Arc::new(AtomicU32::new(0));
        let second = Arc::new(AtomicU32::new(0));
        let block = || {
            sylvan::sleep(Duration::from_millis(1));
            sylvan::spawn(|| std::thread::sleep(Duration::from_millis(200)))
                .join()
                .unwrap();
        };
        let f = first.clone();
        let det = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), move |_| {
            f.fetch_add(1, Ordering::Relaxed);
        });
        drop(det);
        block();
        assert_eq!(
            first.load(Ordering::Relaxed),
            0,
            "a dropped detector reported"
        );

        let f = first.clone();
        let _old = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), move |_| {
            f.fetch_add(1, Ordering::Relaxed);
        });
        let s = second.clone();
        let _new = sylvan::BlockingDetector::with_callback(Duration::from_millis(50), move |_| {
            s.fetch_add(1, Ordering::Relaxed);
        });
        block();
        assert_eq!(
            first.load(Ordering::Relaxed),
            0,
            "the replaced detector reported"
        );
        assert_eq!(second.load(Ordering::Relaxed), 1);
    });
}

/// gevent test__monkey_sigchld.py: a SIGCHLD handler that blocks
/// (`gevent.sleep()`) and then raises (printed, ignored) runs once the
/// child exits; the child is still there to be reaped by
/// `waitpid(-1, WNOHANG)`, and a second such call fails with ECHILD.
/// sylvan's handler runs in a greenlet, so it may block; its panic is
/// reported through the error policy and harms nothing; sylvan reaps
/// nothing behind the program's back.
#[test]
fn sigchld_handler_may_block_and_leaves_the_child_to_waitpid() {
    in_child(
        "probes49::sigchld_handler_may_block_and_leaves_the_child_to_waitpid",
        "p49-sigchld",
        || {
            let failures = Rc::new(RefCell::new(Vec::<String>::new()));
            let f = failures.clone();
            sylvan::set_error_policy(ErrorPolicy::Custom(Rc::new(move |fl| {
                f.borrow_mut().push(fl.error.to_string());
            })));
            let ran = Rc::new(Cell::new(0));
            let r = ran.clone();
            let _h = sylvan::signal(libc::SIGCHLD, move || {
                sylvan::sleep(Duration::ZERO); // a blocking operation
                r.set(r.get() + 1);
                panic!("This should be ignored but printed");
            })
            .unwrap();
            let child = Command::new("sleep").arg("0.1").spawn().unwrap();
            let pid = child.id() as libc::pid_t;
            for _ in 0..600 {
                if ran.get() > 0 {
                    break;
                }
                sylvan::sleep(Duration::from_millis(5));
            }
            let mut status = 0;
            // SAFETY: reaps any child of this process, without blocking.
            let wpid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            assert_eq!(wpid, pid, "{}", std::io::Error::last_os_error());
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            // SAFETY: as above.
            let again = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            assert_eq!(again, -1);
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::ECHILD)
            );
            assert_eq!(ran.get(), 1);
            let fs = failures.borrow();
            assert_eq!(fs.len(), 1, "{fs:?}");
            assert!(
                fs[0].contains("This should be ignored but printed"),
                "{fs:?}"
            );
            drop(child);
        },
    );
}

// ------------------------------------------------------------ process exit

/// Writes `s` to stdout with one `write(2)`: usable at any point of exit.
fn raw_print(s: &str) {
    // SAFETY: writes a buffer we own to fd 1.
    unsafe { libc::write(1, s.as_ptr().cast(), s.len()) };
}

/// Runs this test's body in a re-executed child (which ends by calling
/// `std::process::exit` itself) and returns its exit status and stdout.
fn exit_child(path: &str, name: &str) -> (Option<i32>, String, String) {
    let out = crate::util::run_child_limited(path, name, &[], Duration::from_secs(20))
        .expect("child hung");
    let (o, e) = crate::util::texts(&out);
    (out.status.code(), o, e)
}

/// greenlet test_interpreter_shutdown.py `test_multiple_active_greenlets_at_shutdown`
/// and `test_many_greenlets_with_cleanup_at_shutdown`: a process that exits
/// with suspended greenlets does not crash, and their cleanup runs. sylvan
/// (documented): `std::process::exit` called from main unwinds the
/// thread's greenlets as a thread exit does, so each one's destructor
/// runs, and the process exits with the status asked for.
#[test]
fn process_exit_from_main_with_suspended_greenlets() {
    const PATH: &str = "probes49::process_exit_from_main_with_suspended_greenlets";
    const NAME: &str = "p49-exit-active";
    if is_child(NAME) {
        struct Cleanup(u32);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                raw_print(&format!("CLEANUP {}\n", self.0));
            }
        }
        let _gs: Vec<_> = (0..50)
            .map(|i| {
                sylvan::spawn(move || {
                    let _c = Cleanup(i);
                    sylvan::sleep(Duration::from_secs(3600));
                })
            })
            .collect();
        sylvan::yield_now();
        raw_print("OK: 50 greenlets about to shut down\n");
        std::process::exit(0);
    }
    let (code, o, e) = exit_child(PATH, NAME);
    assert_eq!(code, Some(0), "{o}\n{e}");
    assert!(o.contains("OK: 50 greenlets about to shut down"), "{o}");
    assert_eq!(o.matches("CLEANUP ").count(), 50, "{o}\n{e}");
}

/// greenlet test_interpreter_shutdown.py `test_getcurrent_during_atexit_no_crash`
/// (and the group D tests: `getcurrent()` after greenlet's own cleanup
/// must not crash): code run at process exit after the hub is gone may
/// still ask which greenlet runs and may spawn and join. Here a C
/// `atexit` handler, registered after sylvan's first use, runs after the
/// exiting thread's thread-locals (the hub among them) were destroyed; it
/// calls `sylvan::current()` and spawns and joins a greenlet, inside
/// `catch_unwind` (a panic escaping an `extern "C"` function aborts).
/// The process must exit with status 0; sylvan answers there (main is
/// current, and a spawned greenlet runs and is joined: a fresh hub serves
/// the call, as README says for thread-locals destroyed after the hub).
#[test]
fn sylvan_used_from_an_atexit_handler_after_the_hub_is_gone() {
    const PATH: &str = "probes49::sylvan_used_from_an_atexit_handler_after_the_hub_is_gone";
    const NAME: &str = "p49-atexit";
    if is_child(NAME) {
        extern "C" fn at_exit() {
            let r = catch_unwind(|| {
                let me = sylvan::current();
                let v = sylvan::spawn(|| 5).join().map_err(|e| e.to_string());
                format!("current {me}, joined {v:?}")
            });
            match r {
                Ok(s) => raw_print(&format!("OK: {s}\n")),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    raw_print(&format!("PANIC: {msg}\n"));
                }
            }
        }
        sylvan::spawn(|| ()).join().unwrap();
        let _parked = sylvan::spawn(|| sylvan::sleep(Duration::from_secs(3600)));
        // SAFETY: registers a plain extern "C" function.
        assert_eq!(unsafe { libc::atexit(at_exit) }, 0);
        raw_print("OK: atexit registered\n");
        std::process::exit(0);
    }
    let (code, o, e) = exit_child(PATH, NAME);
    assert_eq!(code, Some(0), "{o}\n{e}");
    assert!(o.contains("OK: atexit registered"), "{o}");
    assert!(o.contains("OK: current"), "{o}\n{e}");
}

/// greenlet test_interpreter_shutdown.py `test_getcurrent_with_active_greenlets_during_atexit`,
/// with the exit made from a greenlet: README says `std::process::exit`
/// called from a greenlet exits at once, without unwinding the other
/// greenlets. A C `atexit` handler that then asks for the current greenlet
/// and spawns and joins one must not crash the process, which exits with
/// the status asked for; sylvan answers there as anywhere (the exiting
/// greenlet is current, and a spawned greenlet runs and is joined).
#[test]
fn atexit_handler_after_an_exit_made_from_a_greenlet() {
    const PATH: &str = "probes49::atexit_handler_after_an_exit_made_from_a_greenlet";
    const NAME: &str = "p49-atexit-greenlet";
    if is_child(NAME) {
        extern "C" fn at_exit() {
            let r = catch_unwind(|| {
                let me = sylvan::current();
                let v = sylvan::spawn(|| 5).join().map_err(|e| e.to_string());
                format!("current {me}, joined {v:?}")
            });
            match r {
                Ok(s) => raw_print(&format!("OK: {s}\n")),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    raw_print(&format!("PANIC: {msg}\n"));
                }
            }
        }
        struct Loud;
        impl Drop for Loud {
            fn drop(&mut self) {
                raw_print("OTHER UNWOUND\n");
            }
        }
        let _parked = sylvan::spawn(|| {
            let _l = Loud;
            sylvan::sleep(Duration::from_secs(3600));
        });
        // SAFETY: registers a plain extern "C" function.
        assert_eq!(unsafe { libc::atexit(at_exit) }, 0);
        let g = sylvan::spawn(|| {
            raw_print("OK: exiting from a greenlet\n");
            std::process::exit(3)
        });
        let _ = g.join();
        unreachable!("process::exit returned");
    }
    let (code, o, e) = exit_child(PATH, NAME);
    assert_eq!(code, Some(3), "{o}\n{e}");
    assert!(o.contains("OK: exiting from a greenlet"), "{o}");
    assert!(!o.contains("OTHER UNWOUND"), "{o}");
    assert!(o.contains("OK: current"), "{o}\n{e}");
}

/// gevent test__core_async.py: an async watcher sent from a thread that a
/// greenlet starts 0.1 s later wakes the hub waiting on it, well within a
/// second. sylvan: main waits on an `Event` that a `Handle::spawn` job,
/// sent from a thread started by a `spawn_later`, sets; the thread holds a
/// `KeepAlive` meanwhile (documented: a `Handle` alone does not count).
#[test]
fn handle_job_from_a_thread_started_later_wakes_the_hub() {
    bounded(|| {
        let ev = Rc::new(Event::new());
        let handle = sylvan::Handle::current();
        let keep = handle.keep_alive();
        let e = ev.clone();
        // the job runs on this hub; it reaches the event through a
        // greenlet-independent slot of this thread
        thread_local! {
            static SLOT: RefCell<Option<Rc<Event>>> = const { RefCell::new(None) };
        }
        SLOT.with(|s| *s.borrow_mut() = Some(e));
        let _later = sylvan::spawn_later(Duration::from_millis(100), move || {
            std::thread::spawn(move || {
                let _keep = keep;
                handle
                    .spawn(|| SLOT.with(|s| s.borrow().as_ref().unwrap().set()))
                    .expect("the hub is alive");
            });
        });
        let t = Instant::now();
        assert!(ev.wait_timeout(Duration::from_secs(2)));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(1),
            "{took:?}"
        );
        SLOT.with(|s| s.borrow_mut().take());
    });
}
